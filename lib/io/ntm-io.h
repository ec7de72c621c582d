/*
 * ntm-io.h - libntm's I/O glue (lib/io/): key and configuration files,
 * SQLite, the worker thread, TLS material, the HTTPS server (libevent +
 * OpenSSL) and client (libcurl multi on libevent), and bulk SHA-256 by
 * OpenSSL. Public (installed). Built on ntm-core.h; the same error and
 * ownership rules.
 */
#ifndef NTM_IO_H
#define NTM_IO_H

#include "ntm-core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- rate-limited log lines on the monotonic clock (lib/io/httpd.c) ---- */

/* ntm_log_rl_at and ntm_log_rl_flush_at (ntm-core.h) at the current time. */
void ntm_log_rl(int level, const char *kind, const char *source,
    const char *fmt, ...) NTM_PRINTF(4, 5);
void ntm_log_rl_flush(void);

/* ---- bulk hashing (lib/io/hash.c), by OpenSSL --------------------------- */

/* Streaming SHA-256 for bulk data, by OpenSSL (which uses the CPU's SHA
 * instructions where there are some: several times libsodium's speed).
 * init: 0, or NTM_ERR_NOMEM. final writes the digest and releases the
 * state; free releases a state that will not be finished (both idempotent;
 * a zeroed struct is a released state). */
struct ntm_sha256 {
	void	*ctx;
};
int  ntm_sha256_init(struct ntm_sha256 *h) NTM_WUR;
void ntm_sha256_update(struct ntm_sha256 *h, const void *p, size_t n);
int  ntm_sha256_final(struct ntm_sha256 *h, uint8_t out[NTM_HASH_LEN]) NTM_WUR;
void ntm_sha256_free(struct ntm_sha256 *h);

/* Installs OpenSSL's ChaCha20-Poly1305 for the messages of data objects
 * (lib/io/xaead.c; ntm_xdata_aead in xchg.h): the same bytes as
 * libsodium's, made in about a third of the time. Call it once at start. */
void ntm_xaead_openssl(void);

/* ---- key files (lib/io/keyfile.c) --------------------------------------- */

/* Writes the secret key as base64url + "\n" to path, mode 0600, via a temp
 * file + fsync + rename. */
int ntm_key_save(const char *path, const void *key, size_t n) NTM_WUR;
/* Reads exactly n bytes; NTM_ERR_INVAL if the file is group/world readable
 * (mode & 077) or malformed. */
int ntm_key_load(const char *path, void *key, size_t n) NTM_WUR;
/* Atomic write of a whole file with the given mode (temp + fsync + rename). */
int ntm_file_write(const char *path, const void *p, size_t n, int mode) NTM_WUR;
/* The same without the fsyncs: a reader sees the old file or the new one,
 * but a power cut may lose the change. For files rewritten often whose
 * loss means nothing (a daemon's status file). */
int ntm_file_replace(const char *path, const void *p, size_t n, int mode) NTM_WUR;
/* Reads a whole file up to max bytes into a new NUL-terminated buffer
 * (free with free()); *len gets its length. */
int ntm_file_read(const char *path, size_t max, char **out, size_t *len) NTM_WUR;
/* mkdir -p with mode for each created component; fails if the last one exists
 * with group/world permissions when strict is set. */
int ntm_mkdirs(const char *path, int mode) NTM_WUR;

/* ---- counters that never repeat (lib/io/ctr.c) --------------------------- */

/*
 * The nonce counters of a key that outlives a process (a registration
 * session's, used by the DC and by the device across restarts). Counters
 * follow the wall clock in microseconds, but a clock step back plus a
 * restart must not bring old values back: every value handed out is below
 * a limit stored durably in path first (NTM_CTR_RESERVE above the value
 * that needed it; rewritten when values come within NTM_CTR_MARGIN of it,
 * about once a day), and a new run starts above the limit it finds.
 */
#define NTM_CTR_RESERVE	(86400ULL * 1000000)	/* a day of microseconds */
#define NTM_CTR_MARGIN	(1ULL << 32)

struct ntm_ctr_floor {
	char		*path;
	uint64_t	 hi;		/* the highest value handed out or noted */
	uint64_t	 limit;		/* stored: nothing at or above it was used */
};
/* Reads path (none: a first run), starts above its limit and above now (the
 * wall clock, microseconds), and stores a new limit. 0, NTM_ERR_INVAL for a
 * file that is not one number (never guessed), or the write's error. */
int  ntm_ctr_floor_open(struct ntm_ctr_floor *f, const char *path, uint64_t now) NTM_WUR;
/* A value at least at_least and above every one before; stores a new limit
 * first when needed (an error then: send nothing). */
int  ntm_ctr_floor_take(struct ntm_ctr_floor *f, uint64_t at_least, uint64_t *out) NTM_WUR;
/* A counter that went up by itself from a taken value (a session's, as it
 * sent): later takes stay above it. */
void ntm_ctr_floor_note(struct ntm_ctr_floor *f, uint64_t used);
void ntm_ctr_floor_free(struct ntm_ctr_floor *f);

/* ---- configuration files (lib/io/conf.c) -------------------------------- */

/* "key = value" lines, '#' comments, blank lines. Unknown keys, duplicates and
 * malformed lines are errors naming the line. */
enum ntm_ctype { NTM_C_STR, NTM_C_INT, NTM_C_BOOL };
struct ntm_citem {
	const char	*key;
	enum ntm_ctype	 type;
	void		*out;	/* char ** (new, free()), long *, int * */
	long		 min, max;	/* for NTM_C_INT */
};
/* Outputs are written only if the whole file is good. A string output is
 * overwritten, never freed: free an earlier value yourself. errbuf gets
 * "path:line: message". */
int ntm_conf_load(const char *path, const struct ntm_citem *items, size_t n,
    char *errbuf, size_t errlen) NTM_WUR;

/* ---- SQLite helpers (lib/io/db.c) --------------------------------------- */

typedef struct sqlite3 sqlite3;
/* Opens (creating) path with WAL, foreign keys, busy timeout; applies
 * migrations[user_version..nmig-1] in one transaction each and sets
 * user_version = nmig. Refuses a database newer than nmig (NTM_ERR_VERSION).
 * The file is created 0600. */
int  ntm_db_open(const char *path, const char *const *migrations, int nmig,
    sqlite3 **out) NTM_WUR;
void ntm_db_close(sqlite3 *db);
/* Runs SQL with no results (may hold several statements). */
int  ntm_db_exec(sqlite3 *db, const char *sql) NTM_WUR;
typedef struct sqlite3_stmt sqlite3_stmt;
/*
 * Statements. One finalize rule: a statement is finalized by whoever prepared
 * it. ntm_db_prepare and ntm_db_query return a new statement (the caller
 * ends it with sqlite3_finalize); ntm_db_step, ntm_db_row, ntm_db_done and
 * ntm_db_col borrow it and never finalize; ntm_db_run and ntm_db_int
 * prepare, run and finalize their own, so nothing escapes them.
 *
 * types binds ?1, ?2, ... from the arguments that follow, one letter each:
 * 's' const char * (borrowed for the statement's life; NULL binds SQL NULL),
 * 'i' int, 'I' int64_t (pass an int64_t, never a bare literal). NULL or ""
 * binds nothing.
 *
 * Errors: NTM_ERR_EXISTS for a constraint (UNIQUE, PRIMARY KEY, ...),
 * NTM_ERR_DB for any other failure (logged).
 */
#define NTM_DB_ROW	1
/* Prepares one statement; 0 and *st new, or NTM_ERR_DB (logged), *st NULL. */
int  ntm_db_prepare(sqlite3 *db, sqlite3_stmt **st, const char *sql) NTM_WUR;
/* ntm_db_prepare, then binds as types says; *st new, NULL on error. */
int  ntm_db_query(sqlite3 *db, sqlite3_stmt **st, const char *sql,
    const char *types, ...) NTM_WUR;
/* Steps st once (borrowed): NTM_DB_ROW with a row to read, 0 when done. */
int  ntm_db_step(sqlite3 *db, sqlite3_stmt *st) NTM_WUR;
/* Steps st once (borrowed) for one row: 0 with the row to read,
 * NTM_ERR_NOTFOUND if there is none, NTM_ERR_DB. */
int  ntm_db_row(sqlite3 *db, sqlite3_stmt *st) NTM_WUR;
/* Steps st (borrowed), a statement that returns no rows: 0 when done. */
int  ntm_db_done(sqlite3 *db, sqlite3_stmt *st) NTM_WUR;
/* Prepares sql, binds, runs it to the end and finalizes it: 0 when done;
 * sqlite3_changes(db) then says how many rows it changed. */
int  ntm_db_run(sqlite3 *db, const char *sql, const char *types, ...) NTM_WUR;
/* The first column of sql's first row into *out (untouched unless 0);
 * NTM_ERR_NOTFOUND if no row. */
int  ntm_db_int(sqlite3 *db, int64_t *out, const char *sql,
    const char *types, ...) NTM_WUR;
/* The one way to hold a transaction: ntm_db_begin (BEGIN IMMEDIATE), the
 * work, then ntm_db_end(db, ret) which COMMITs when ret is 0 and else ROLLs
 * BACK; it returns ret, or the COMMIT's error (then rolled back). */
int  ntm_db_begin(sqlite3 *db) NTM_WUR;
int  ntm_db_end(sqlite3 *db, int ret) NTM_WUR;
/* Copies text column col of the current row into dst ("" for NULL). */
void ntm_db_col(char *dst, size_t cap, sqlite3_stmt *st, int col);
/* For the writes an event loop may put off to its next round (sweeps,
 * retries' bookkeeping): with on, a statement that finds another writer
 * (another process) holding the database fails at once, unlogged, instead
 * of stopping the loop for up to the busy timeout (5 s); off (after the
 * work) restores the wait. Calls nest (one off per on), on one thread and
 * its one connection. ntm_db_busy tells that failure from others. */
void ntm_db_nowait(sqlite3 *db, int on);
/* Whether db's last failure was the database held by another writer. */
int  ntm_db_busy(sqlite3 *db);

/* ---- worker thread (lib/io/worker.c) ------------------------------------ */

struct event_base;
struct ntm_worker;
/* Requires evthread_use_pthreads() before the base was made. */
struct ntm_worker *ntm_worker_new(struct event_base *base, int nthreads);
void ntm_worker_free(struct ntm_worker *w);	/* joins after running queued jobs */
/* The CPU priority (nice, -20..19) the threads take for their next jobs:
 * a pool of less urgent work yields the CPU to others. */
void ntm_worker_set_nice(struct ntm_worker *w, int nice);
/* work(arg) runs on a worker thread; then done(arg) runs on base's loop. */
int  ntm_worker_submit(struct ntm_worker *w, void (*work)(void *),
    void (*done)(void *), void *arg) NTM_WUR;

/* ---- TLS material for the demo CA (lib/io/tls.c) ------------------------ */

/* Creates a self-signed CA (EC P-256, PEM) valid for days. */
int ntm_tls_make_ca(const char *cert_path, const char *key_path, const char *cn,
    int days) NTM_WUR;
/* Issues a server certificate from the CA for the DNS names and IP addresses
 * in sans (NULL-terminated; entries that parse as IPs become IP SANs). */
int ntm_tls_issue(const char *ca_cert, const char *ca_key, const char *cert_path,
    const char *key_path, const char *const *sans, int days) NTM_WUR;

/* ---- HTTPS server glue (lib/io/httpd.c) --------------------------------- */

struct ntm_httpd;
struct ntm_req;
struct evhttp_request;

#define NTM_BODY_MAX	(64 * 1024)

enum {
	NTM_ROUTE_JSON	    = 1 << 0,	/* body must be one JSON object: req json set */
	NTM_ROUTE_SIGNED    = 1 << 1,	/* server signature required: req cert set */
	NTM_ROUTE_BEARER    = 1 << 2,	/* "Authorization: Bearer", passed by the
					   bearer hook (ntm_httpd_set_bearer) */
	NTM_ROUTE_VERSIONED = 1 << 3,	/* JSON body whose "version" is
					   NTM_PROTOCOL_VERSION (implies JSON) */
	NTM_ROUTE_STREAM    = 1 << 4,	/* body never held whole: the handler
					   runs once the head is in and takes
					   the body in pieces (ntm_req_body_read) */
	NTM_ROUTE_VERSION2  = 1 << 5,	/* with VERSIONED: version 2 taken as
					   well (the handler reads which) */
};
/* A caller role allowed on a signed route, for struct ntm_http_route.roles. */
#define NTM_ROUTE_ROLE(role)	(1u << (role))
typedef void ntm_route_fn(struct ntm_req *req, void *arg);
/* Decides whether a verified server certificate is still accepted (e.g. not
 * revoked); return 0 to accept or a negative error. */
typedef int ntm_cert_check_fn(const struct ntm_cert *c, void *arg);
/* Checks the token of a bearer route (the text after "Bearer "): returns 0
 * to let the handler run, or replies to req itself and returns -1. It may
 * leave what it learnt on req with ntm_req_set_auth. */
typedef int ntm_bearer_fn(struct ntm_req *req, const char *token, void *arg);

/*
 * One row of a daemon's static route table. Before fn runs, the server
 * checks, in this order and with these answers:
 *   body over body_max (0: the server's limit)	413 body_too_large
 *   NTM_ROUTE_SIGNED: the signature		401 unauthorized
 *   roles (signed routes; 0: any role)		deny (0: 401 unauthorized,
 *						or 403 forbidden)
 *   NTM_ROUTE_BEARER: the token		401 unauthorized, or the hook's
 *   JSON / VERSIONED: the body			400 bad_json, not_object,
 *						missing_field, bad_field or
 *						bad_version (field "version")
 * so fn may assume all of them.
 */
struct ntm_http_route {
	const char	*method;
	const char	*path;
	unsigned	 flags;		/* NTM_ROUTE_* */
	ntm_route_fn	*fn;
	unsigned	 roles;		/* NTM_ROUTE_ROLE() bits */
	int		 deny;		/* status for another role: 401 or 403 */
	size_t		 body_max;
};

/* new; serves HTTPS only with the PEM certificate and key. A plain-HTTP
 * request to the port gets 400 {"code":"tls_required"}. */
struct ntm_httpd *ntm_httpd_new(struct event_base *base, const char *cert_pem,
    const char *key_pem, size_t max_body);
void ntm_httpd_free(struct ntm_httpd *h);
/*
 * Limits on the connections of a server (ntm.conf(5), the http_* keys).
 * A connection over max_conns_per_addr from one source (an IPv4 address,
 * or an IPv6 /64) is closed at once; at max_conns the server stops
 * accepting until one closes. The TLS handshake and each request head must
 * be complete within header_timeout_s of the connection (or of the head's
 * first byte); a body must arrive within body_timeout_s plus one second per
 * body_min_rate bytes received. A Content-Length over the route's limit is
 * answered 413 before the body is read; one that would take the bodies
 * being read or handled past body_mem_max, 503 busy. 0 in a field keeps its
 * default.
 */
struct ntm_httpd_limits {
	unsigned	max_conns;
	unsigned	max_conns_per_addr;
	unsigned	header_timeout_s;
	unsigned	body_timeout_s;
	unsigned	body_min_rate;		/* bytes per second */
	size_t		body_mem_max;		/* bytes of bodies held at once */
	/* The replay cache of signed requests (docs/protocol.md 2.2), per
	 * signing certificate; read by ntm_httpd_set_trust. */
	unsigned	signed_rate;		/* accepted per second */
	unsigned	signed_burst;
	unsigned	replay_per_peer;	/* signatures remembered */
};
#define NTM_HTTPD_MAX_CONNS		1024
#define NTM_HTTPD_MAX_CONNS_PER_ADDR	64
#define NTM_HTTPD_HEADER_TIMEOUT_S	20
#define NTM_HTTPD_BODY_TIMEOUT_S	20
#define NTM_HTTPD_BODY_MIN_RATE		500
#define NTM_HTTPD_BODY_MEM_MAX		(128 * 1024 * 1024)
#define NTM_HTTPD_SIGNED_RATE		200
#define NTM_HTTPD_SIGNED_BURST		2000
#define NTM_HTTPD_REPLAY_PER_PEER	16384
void ntm_httpd_set_limits(struct ntm_httpd *h, const struct ntm_httpd_limits *l);
/* addr "127.0.0.1", "::1", "0.0.0.0"...; port 0 picks one; *bound gets it. */
int  ntm_httpd_listen(struct ntm_httpd *h, const char *addr, uint16_t port,
    uint16_t *bound) NTM_WUR;
/* For NTM_ROUTE_SIGNED routes: trust anchor and revocation hook. */
void ntm_httpd_set_trust(struct ntm_httpd *h, const uint8_t as_pk[NTM_SIGN_PK],
    ntm_cert_check_fn *check, void *arg);
/* For NTM_ROUTE_BEARER routes: the token check (without it they answer 500). */
void ntm_httpd_set_bearer(struct ntm_httpd *h, ntm_bearer_fn *fn, void *arg);
/* Answers to signed requests are signed with sk, cert sent along
 * (docs/protocol.md §2.2: NTM-Cert, NTM-Signature). 0 or NTM_ERR_INVAL. */
int  ntm_httpd_set_identity(struct ntm_httpd *h, const uint8_t sk[NTM_SIGN_SK],
    const struct ntm_cert *cert);
/*
 * For NTM_ROUTE_BEARER routes whose Content-Length is over
 * NTM_HTTPD_PRECHECK_BODY: fn checks the token as soon as the request head
 * is in, before the body is read (0 good, -1 not); a missing or refused
 * token gets 401 unauthorized and the connection closes unread. Cheap
 * checks only (signature, expiry, revocation): the bearer hook still runs
 * on the request as usual.
 */
#define NTM_HTTPD_PRECHECK_BODY	(64 * 1024)
typedef int ntm_bearer_precheck_fn(const char *token, void *arg);
void ntm_httpd_set_bearer_precheck(struct ntm_httpd *h, ntm_bearer_precheck_fn *fn,
    void *arg);
/*
 * Called once per request as it ends (replied, or given up when the client
 * went away): route is its row's index in the order the rows were added,
 * and rt that row (borrowed for the call), or NTM_HTTPD_NO_ROUTE and NULL
 * for a request no row took (404, 405, plain HTTP); status is the one
 * answered (0: none); us the microseconds from the complete request to the
 * end of the reply (a streamed reply's last byte). For metrics: a bounded
 * set of routes, whatever paths clients send.
 */
#define NTM_HTTPD_NO_ROUTE	((size_t)-1)
typedef void ntm_httpd_observe_fn(size_t route, const struct ntm_http_route *rt, int status,
    uint64_t us, void *arg);
void ntm_httpd_set_observer(struct ntm_httpd *h, ntm_httpd_observe_fn *fn, void *arg);
/* How many rows were added (the routes an observer sees: 0 to n-1). */
size_t ntm_httpd_nroutes(const struct ntm_httpd *h);
/* Adds the n rows of table (borrowed: static), each handler called with arg.
 * Exact paths; wrong method on a known path is 405, unknown path 404. */
int  ntm_httpd_routes(struct ntm_httpd *h, const struct ntm_http_route *table, size_t n,
    void *arg) NTM_WUR;
/* One route without role or body limit (tests, the simplest servers). */
int  ntm_httpd_route(struct ntm_httpd *h, const char *method, const char *path,
    unsigned flags, ntm_route_fn *fn, void *arg) NTM_WUR;
/* The flags of a route as "json,signed,..." ("-" for none) into buf. */
const char *ntm_route_flags_str(unsigned flags, char *buf, size_t cap);
/* The roles of a route as "dc,cs" ("any" for none) into buf. */
const char *ntm_route_roles_str(unsigned roles, char *buf, size_t cap);

/*
 * Streamed bodies (NTM_ROUTE_STREAM routes with a Content-Length over 0).
 * The handler runs as soon as the head is in and the route's checks passed;
 * ntm_req_body_len is the declared length, ntm_req_body is empty. It either
 * answers at once (the body is then not read and the connection closes
 * after the answer) or calls ntm_req_body_read: fn then gets the body in
 * pieces of at most about NTM_HTTPD_STREAM_WINDOW bytes (data new: fn
 * frees it), and after each piece no other until ntm_req_body_next(r).
 * Meanwhile the server reads up to NTM_HTTPD_STREAM_WINDOW more bytes, then
 * stops reading the socket (the client waits): a connection holds at most
 * about two windows of its body. The last call has data NULL and state
 * NTM_BODY_END (every declared byte was delivered) or NTM_BODY_GONE (the
 * client went away or was too slow: what it sent was delivered first).
 * The handler still answers once, at any time; an answer before
 * NTM_BODY_END closes the connection. On any other request (a body held
 * whole) ntm_req_body_read hands that body over as one piece.
 * A piece starts at an address aligned to NTM_HTTPD_PIECE_ALIGN and, but
 * for the body's last, is a multiple of it long: a handler can write it
 * to a file with O_DIRECT as it is.
 */
#define NTM_HTTPD_STREAM_WINDOW	(512 * 1024)
#define NTM_HTTPD_PIECE_ALIGN	4096
enum { NTM_BODY_PIECE, NTM_BODY_END, NTM_BODY_GONE };
typedef void ntm_body_fn(struct ntm_req *r, uint8_t *data, size_t len, int state,
    void *arg);
void ntm_req_body_read(struct ntm_req *r, ntm_body_fn *fn, void *arg);
void ntm_req_body_next(struct ntm_req *r);
/* The body's length: declared (a streamed body) or held. */
uint64_t ntm_req_body_len(const struct ntm_req *r);

/* Request accessors (borrowed, valid until the reply is sent). */
const char *ntm_req_method(const struct ntm_req *r);
const char *ntm_req_path(const struct ntm_req *r);
const char *ntm_req_header(const struct ntm_req *r, const char *name);
const uint8_t *ntm_req_body(const struct ntm_req *r, size_t *len);
/* Takes the body (new, free() it; NULL if none): r no longer holds it. */
uint8_t *ntm_req_take_body(struct ntm_req *r, size_t *len);
json_t *ntm_req_json(const struct ntm_req *r);			/* borrowed */
const struct ntm_cert *ntm_req_cert(const struct ntm_req *r);	/* signed routes */
const char *ntm_req_peer(const struct ntm_req *r);		/* "addr:port" */
/* Bearer token from "Authorization: Bearer ..." or NULL. */
const char *ntm_req_bearer(const struct ntm_req *r);
/* Value of the URL query parameter name (decoded, borrowed) or NULL. */
const char *ntm_req_query(struct ntm_req *r, const char *name);
/* What the bearer hook learnt about the caller: p is stolen (freed with
 * free_fn, which may be NULL, when the request ends); ntm_req_auth returns
 * it borrowed, or NULL. */
void ntm_req_set_auth(struct ntm_req *r, void *p, void (*free_fn)(void *));
void *ntm_req_auth(const struct ntm_req *r);
/*
 * A request answered later (a long poll): fn(r, arg) runs, once, if its
 * client shuts its side of the connection before the answer. fn must still
 * answer r (the answer goes nowhere, the connection is closed after it, r
 * is freed); it runs from the loop, never after ntm_httpd_free. fn NULL
 * forgets an earlier one; any answer does too.
 */
typedef void ntm_req_gone_fn(struct ntm_req *r, void *arg);
void ntm_req_on_gone(struct ntm_req *r, ntm_req_gone_fn *fn, void *arg);
/*
 * Exactly one reply per request, now or later from the same loop (the
 * request may be answered after asynchronous work; if the client went away
 * the reply is dropped and the request freed).
 */
void ntm_reply_json(struct ntm_req *r, int status, json_t *body);	/* body stolen */
/* len bytes of text (borrowed) as the body, with Content-Type ctype. */
void ntm_reply_text(struct ntm_req *r, int status, const char *ctype, const char *text,
    size_t len);
void ntm_reply_error(struct ntm_req *r, int status, const char *code,
    const char *field, const char *fmt, ...) NTM_PRINTF(5, 6);
/* Maps a library error to status + code (e.g. NTM_ERR_BADPASS -> 401). */
void ntm_reply_err(struct ntm_req *r, int err, const char *fmt, ...) NTM_PRINTF(3, 4);
int  ntm_err_http_status(int err);
/*
 * Streamed reply of exactly len bytes with bounded memory: rd(buf, cap, arg)
 * is called for the next piece each time the previous one has been written
 * to the socket, and returns 1..cap bytes or a negative error (the
 * connection is then closed short of len, so the client notices). end(arg,
 * err) is called exactly once: err 0 when all len bytes went out, else the
 * error or NTM_ERR_CONNECT if the client went away. end may be called
 * before ntm_reply_stream returns. This is the reply to r.
 */
typedef long ntm_stream_fn(void *buf, size_t cap, void *arg);
typedef void ntm_stream_end_fn(void *arg, int err);
void ntm_reply_stream(struct ntm_req *r, int status, const char *ctype, uint64_t len,
    ntm_stream_fn *rd, ntm_stream_end_fn *end, void *arg);
/* Reply set as a JSON error from an unpack failure (400 + code + field). */
void ntm_reply_jerr(struct ntm_req *r, const struct ntm_jerr *e);

/* ---- HTTPS client glue (lib/io/httpc.c): libcurl multi on the libevent loop -- */

struct ntm_httpc;
/* new; cafile: PEM bundle that server certificates must chain to (NULL: the
 * system store). */
struct ntm_httpc *ntm_httpc_new(struct event_base *base, const char *cafile);
void ntm_httpc_free(struct ntm_httpc *c);	/* cancels pending requests (no callbacks) */
/* Signs every request with this identity (NTM-Date/Cert/Signature). */
int  ntm_httpc_set_identity(struct ntm_httpc *c, const uint8_t sk[NTM_SIGN_SK],
    const struct ntm_cert *cert) NTM_WUR;
/*
 * Pins host:port to addr (IPv4 or IPv6 text) for every later request of c
 * (CURLOPT_RESOLVE): the connection goes to addr while TLS still verifies
 * host. A pin for the same host:port is replaced; at most 64 are kept (the
 * oldest is dropped). NTM_ERR_INVAL for a bad host, port 0 or bad address.
 */
/*
 * Every later request of c for host:port connects to addr (IPv4 or IPv6
 * text) instead, the same port (CURLOPT_CONNECT_TO), while TLS still
 * verifies host: the DC of a URL with an IPv4 literal, reached over IPv6
 * on an IPv6-only network. One such entry; addr NULL removes it.
 */
int  ntm_httpc_connect_to(struct ntm_httpc *c, const char *host, uint16_t port,
    const char *addr) NTM_WUR;
/* The AS key that the certificates of signed answers must be signed with. */
int  ntm_httpc_set_trust(struct ntm_httpc *c, const uint8_t as_pk[NTM_SIGN_PK]);
int  ntm_httpc_resolve(struct ntm_httpc *c, const char *host, uint16_t port,
    const char *addr) NTM_WUR;
/*
 * reuse 0: every later request opens a new connection and closes it after.
 * For a mobile client: a kept-alive connection may be bound to an address
 * the host no longer has, and a request on it would hang until its timeout.
 */
void ntm_httpc_set_reuse(struct ntm_httpc *c, int reuse);

/*
 * Result of one request. err is 0 when an HTTP response arrived (any status),
 * else NTM_ERR_CONNECT / NTM_ERR_TIMEOUT / NTM_ERR_TLS / NTM_ERR_TOOBIG, or
 * NTM_ERR_UNTRUSTED when no trusted CA vouches for the server's certificate
 * (errmsg is then the verifier's reason alone, e.g. "unable to get local
 * issuer certificate").
 * json: the parsed body if it was a JSON object (borrowed), else NULL.
 */
struct ntm_http_result {
	int		 err;
	long		 status;
	const char	*body;
	size_t		 len;
	json_t		*json;
	char		 errmsg[256];
	/* A signed request's answer (err 0): the certificate of the server
	 * that signed it, checked against the AS key of ntm_httpc_set_trust
	 * (docs/protocol.md §2.2), or NULL with peer_err and peer_why saying
	 * why not. Borrowed for the callback. */
	const struct ntm_cert *peer;
	int		 peer_err;
	char		 peer_why[384];
};
typedef void ntm_httpc_cb(const struct ntm_http_result *res, void *arg);
/* body: JSON to send (borrowed; NULL for none). bearer: Authorization token
 * or NULL. timeout_ms bounds the whole request. */
int  ntm_httpc_request(struct ntm_httpc *c, const char *method, const char *url,
    json_t *body, const char *bearer, long timeout_ms, ntm_httpc_cb *cb, void *arg) NTM_WUR;
/* The same, signed as naming its receiver: to, the receiver's certificate
 * name (NTM-To, docs/protocol.md §2.2); needs the identity. */
int  ntm_httpc_request_to(struct ntm_httpc *c, const char *method, const char *url,
    const char *to, json_t *body, const char *bearer, long timeout_ms, ntm_httpc_cb *cb,
    void *arg) NTM_WUR;
/*
 * A request with a body of any type: ctype its Content-Type (NULL: none),
 * body and blen copied (body NULL: none). *handle (handle may be NULL)
 * names the request for ntm_httpc_cancel until its callback runs. The
 * response body is capped at 1 MiB (NTM_ERR_TOOBIG beyond).
 */
struct ntm_httpc_req;
int  ntm_httpc_send(struct ntm_httpc *c, const char *method, const char *url,
    const char *ctype, const void *body, size_t blen, const char *bearer, long timeout_ms,
    ntm_httpc_cb *cb, void *arg, struct ntm_httpc_req **handle) NTM_WUR;
/* Ends a request that has not called back yet; its callback never runs. */
void ntm_httpc_cancel(struct ntm_httpc_req *r);
/* The NTM_ERR_* a libcurl result code (CURLcode) maps to, as for
 * ntm_httpc_request's err: 0 for CURLE_OK. For callers driving libcurl
 * themselves. */
int  ntm_http_curl_err(int curlcode);
/* Blocking convenience for the CLI: runs its own loop until done. On return
 * *status and *json (new reference or NULL) are set; returns res.err. */
int  ntm_https_call(const char *cafile, const char *method, const char *url,
    json_t *body, const char *bearer, long timeout_ms, long *status, json_t **json,
    char *errmsg, size_t errlen) NTM_WUR;

#ifdef __cplusplus
}
#endif
#endif
