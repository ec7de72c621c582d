/*
 * ntm.h - public API of libntm.
 *
 * libntm never prints and never exits. Functions return 0 (or a length) on
 * success and a negative NTM_ERR_* on failure; ntm_strerror() describes it and
 * ntm_errcode() gives the stable lowercase code used in JSON error bodies.
 *
 * Ownership is stated on every function: "borrowed" pointers stay owned by
 * the caller or the object they came from; "new" results must be freed by the
 * caller with the named function; every *_free(NULL) is a no-op.
 */
#ifndef NTM_H
#define NTM_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NTM_VERSION		"0.1.0"
/* Bump when any HTTP request or response body, header or codec changes. */
#define NTM_PROTOCOL_VERSION	1

#define NTM_WUR __attribute__((warn_unused_result))
#define NTM_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- errors (lib/err.c) -------------------------------------------------- */

enum ntm_err {
	NTM_OK			= 0,
	NTM_ERR_NOMEM		= -1,	/* out of memory */
	NTM_ERR_INVAL		= -2,	/* invalid argument or value */
	NTM_ERR_SHORT		= -3,	/* input ends too early */
	NTM_ERR_TRAILING	= -4,	/* bytes left after a complete message */
	NTM_ERR_TOOBIG		= -5,	/* a size limit was exceeded */
	NTM_ERR_CRYPTO		= -6,	/* authentication or signature check failed */
	NTM_ERR_EXPIRED		= -7,	/* outside its validity period */
	NTM_ERR_REPLAY		= -8,	/* seen before */
	NTM_ERR_IO		= -9,	/* system call failed; see errno */
	NTM_ERR_DB		= -10,	/* storage failure */
	NTM_ERR_JSON		= -11,	/* malformed or unexpected JSON */
	NTM_ERR_NOTFOUND	= -12,	/* no such object */
	NTM_ERR_EXISTS		= -13,	/* object already exists */
	NTM_ERR_BADPASS		= -14,	/* wrong password */
	NTM_ERR_NOUSER		= -15,	/* unknown user */
	NTM_ERR_LOCKED		= -16,	/* account locked */
	NTM_ERR_REVOKED		= -17,	/* certificate or token revoked */
	NTM_ERR_TIMEOUT		= -18,	/* no answer in time */
	NTM_ERR_CONNECT		= -19,	/* could not connect */
	NTM_ERR_TLS		= -20,	/* TLS setup or verification failed */
	NTM_ERR_PROTO		= -21,	/* peer sent something unexpected */
	NTM_ERR_HTTP		= -22,	/* HTTP error status from a peer */
	NTM_ERR_STATE		= -23,	/* wrong state for this call (e.g. not logged in) */
	NTM_ERR_NOSPACE		= -24,	/* address pool or table full */
	NTM_ERR_UNAUTH		= -25,	/* request not authenticated */
	NTM_ERR_UNAVAIL		= -26,	/* upstream server unavailable */
	NTM_ERR_VERSION		= -27,	/* unsupported version */
	NTM_ERR_UNTRUSTED	= -28,	/* peer's certificate not signed by a trusted CA */
	NTM_ERR__LAST		= -29
};

/* Static English text for err (never NULL). */
const char *ntm_strerror(int err);
/* Static stable lowercase identifier for err, e.g. "bad_password". */
const char *ntm_errcode(int err);
/* Reverse of ntm_errcode(); NTM_ERR_PROTO for an unknown code. */
int ntm_err_from_code(const char *code);

/* ---- logging hook (lib/log.c) -------------------------------------------- */

enum ntm_log_level { NTM_LOG_ERR, NTM_LOG_WARN, NTM_LOG_INFO, NTM_LOG_DEBUG };
typedef void ntm_log_fn(int level, const char *msg, void *arg);
/* Install fn (NULL: drop everything). Messages above maxlevel are dropped. */
void ntm_log_set(ntm_log_fn *fn, void *arg, int maxlevel);
void ntm_log(int level, const char *fmt, ...) NTM_PRINTF(2, 3);
void ntm_vlog(int level, const char *fmt, va_list ap);

/* ---- bounded buffers and cursors (lib/buf.c) ----------------------------- */

/* A growable byte buffer that never grows past max. */
struct ntm_buf {
	uint8_t	*data;
	size_t	 len, cap, max;
};
void ntm_buf_init(struct ntm_buf *b, size_t max);
int  ntm_buf_add(struct ntm_buf *b, const void *p, size_t n) NTM_WUR;
int  ntm_buf_printf(struct ntm_buf *b, const char *fmt, ...) NTM_PRINTF(2, 3) NTM_WUR;
/* Keeps a NUL after data[len] (not counted) so text can be used as a string. */
void ntm_buf_reset(struct ntm_buf *b);
/* Wipes and frees the storage; the struct may be reused after ntm_buf_init. */
void ntm_buf_free(struct ntm_buf *b);

/*
 * Cursor reader over borrowed bytes. Every read fails with NTM_ERR_SHORT
 * once input runs out, and the error sticks: later reads fail too, so a
 * parser can read a whole message and check once with ntm_cur_end().
 * Integers are big-endian (network order).
 */
struct ntm_cur {
	const uint8_t	*pos, *end;
	int		 err;
};
void ntm_cur_init(struct ntm_cur *c, const void *p, size_t n);
int  ntm_cur_u8(struct ntm_cur *c, uint8_t *v);
int  ntm_cur_u16(struct ntm_cur *c, uint16_t *v);
int  ntm_cur_u32(struct ntm_cur *c, uint32_t *v);
int  ntm_cur_u64(struct ntm_cur *c, uint64_t *v);
int  ntm_cur_bytes(struct ntm_cur *c, void *out, size_t n);
/* Borrowed pointer to the next n bytes (NULL on short input). */
const uint8_t *ntm_cur_ptr(struct ntm_cur *c, size_t n);
size_t ntm_cur_left(const struct ntm_cur *c);
/* 0 if no read failed and every byte was consumed; else SHORT or TRAILING. */
int  ntm_cur_end(const struct ntm_cur *c);

/* Writers into a fixed buffer; same sticky-error rule (NTM_ERR_TOOBIG). */
struct ntm_wr {
	uint8_t	*pos, *start, *end;
	int	 err;
};
void ntm_wr_init(struct ntm_wr *w, void *p, size_t cap);
void ntm_wr_u8(struct ntm_wr *w, uint8_t v);
void ntm_wr_u16(struct ntm_wr *w, uint16_t v);
void ntm_wr_u32(struct ntm_wr *w, uint32_t v);
void ntm_wr_u64(struct ntm_wr *w, uint64_t v);
void ntm_wr_bytes(struct ntm_wr *w, const void *p, size_t n);
/* Bytes written so far, or the sticky error (negative). */
long ntm_wr_done(const struct ntm_wr *w);

/* ---- encodings (lib/enc.c) ----------------------------------------------- */

/* base64url without padding. Output is NUL-terminated. Returns the encoded
 * length, or NTM_ERR_TOOBIG if cap is too small. */
#define NTM_B64_LEN(n)	(((n) * 4 + 2) / 3 + 1)
int ntm_b64_encode(char *out, size_t cap, const void *in, size_t n);
/* Decodes exactly; returns the decoded length, NTM_ERR_INVAL on bad input,
 * NTM_ERR_TOOBIG if cap is too small. */
int ntm_b64_decode(void *out, size_t cap, const char *in);
/* Decodes into exactly n bytes or fails with NTM_ERR_INVAL. */
int ntm_b64_decode_exact(void *out, size_t n, const char *in);
int ntm_hex_encode(char *out, size_t cap, const void *in, size_t n);
int ntm_hex_decode_exact(void *out, size_t n, const char *in);

/* ---- crypto (lib/crypto.c), thin libsodium wrappers ----------------------- */

#define NTM_SIGN_PK	32
#define NTM_SIGN_SK	64
#define NTM_SIG_LEN	64
#define NTM_KX_PK	32
#define NTM_KX_SK	32
#define NTM_KEY_LEN	32
#define NTM_HASH_LEN	32
#define NTM_AEAD_NONCE	24	/* XChaCha20-Poly1305 */
#define NTM_AEAD_TAG	16
#define NTM_PWHASH_STR	128

/* sodium_init(); call once before any other crypto. */
int  ntm_crypto_init(void) NTM_WUR;
void ntm_random(void *p, size_t n);
void ntm_wipe(void *p, size_t n);
/* Constant-time equality: 0 if equal. */
int  ntm_memcmp(const void *a, const void *b, size_t n);
void ntm_hash(uint8_t out[NTM_HASH_LEN], const void *p, size_t n);	/* SHA-256 */
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
int  ntm_sign_keypair(uint8_t pk[NTM_SIGN_PK], uint8_t sk[NTM_SIGN_SK]);
/* Ed25519 public key from the secret key. */
void ntm_sign_pk(uint8_t pk[NTM_SIGN_PK], const uint8_t sk[NTM_SIGN_SK]);
void ntm_sign(uint8_t sig[NTM_SIG_LEN], const void *m, size_t n, const uint8_t sk[NTM_SIGN_SK]);
int  ntm_sign_verify(const uint8_t sig[NTM_SIG_LEN], const void *m, size_t n,
    const uint8_t pk[NTM_SIGN_PK]) NTM_WUR;
int  ntm_kx_keypair(uint8_t pk[NTM_KX_PK], uint8_t sk[NTM_KX_SK]);
/*
 * Session key agreement (X25519 + BLAKE2b, libsodium crypto_kx). The client
 * calls with is_client=1, the server with 0; both get the same rx/tx pair
 * mirrored (client tx == server rx).
 */
int  ntm_kx_session(uint8_t rx[NTM_KEY_LEN], uint8_t tx[NTM_KEY_LEN], int is_client,
    const uint8_t my_pk[NTM_KX_PK], const uint8_t my_sk[NTM_KX_SK],
    const uint8_t peer_pk[NTM_KX_PK]) NTM_WUR;
/* XChaCha20-Poly1305: out gets n + NTM_AEAD_TAG bytes. */
void ntm_aead_seal(uint8_t *out, const void *m, size_t n, const void *ad, size_t adlen,
    const uint8_t nonce[NTM_AEAD_NONCE], const uint8_t key[NTM_KEY_LEN]);
/* out gets n - NTM_AEAD_TAG bytes; NTM_ERR_CRYPTO if forged. */
int  ntm_aead_open(uint8_t *out, const void *c, size_t n, const void *ad, size_t adlen,
    const uint8_t nonce[NTM_AEAD_NONCE], const uint8_t key[NTM_KEY_LEN]) NTM_WUR;
/* Argon2id (interactive limits unless NTM_PWHASH_FAST is set in the
 * environment for tests). Slow: call from a worker thread in daemons. */
int  ntm_pwhash(char out[NTM_PWHASH_STR], const char *pw, size_t len) NTM_WUR;
/* 0 if pw matches, NTM_ERR_BADPASS if not. */
int  ntm_pwhash_verify(const char *str, const char *pw, size_t len) NTM_WUR;

/* ---- key files (lib/keyfile.c) ------------------------------------------- */

/* Writes the secret key as base64url + "\n" to path, mode 0600, via a temp
 * file + fsync + rename. */
int ntm_key_save(const char *path, const void *key, size_t n) NTM_WUR;
/* Reads exactly n bytes; NTM_ERR_INVAL if the file is group/world readable
 * (mode & 077) or malformed. */
int ntm_key_load(const char *path, void *key, size_t n) NTM_WUR;
/* Atomic write of a whole file with the given mode (temp + fsync + rename). */
int ntm_file_write(const char *path, const void *p, size_t n, int mode) NTM_WUR;
/* Reads a whole file up to max bytes into a new NUL-terminated buffer
 * (free with free()); *len gets its length. */
int ntm_file_read(const char *path, size_t max, char **out, size_t *len) NTM_WUR;
/* mkdir -p with mode for each created component; fails if the last one exists
 * with group/world permissions when strict is set. */
int ntm_mkdirs(const char *path, int mode) NTM_WUR;

/* ---- server certificates (lib/cert.c) ------------------------------------ */

enum ntm_role { NTM_ROLE_AS = 1, NTM_ROLE_DC = 2, NTM_ROLE_RS = 3, NTM_ROLE_CS = 4 };
const char *ntm_role_name(int role);		/* "as", "dc", "rs", "cs" or NULL */
int ntm_role_parse(const char *name);		/* NTM_ROLE_* or NTM_ERR_INVAL */

#define NTM_NAME_MAX	253
#define NTM_CERT_MAX	(1 + 1 + 1 + NTM_NAME_MAX + NTM_SIGN_PK + 8 + 8 + 8 + NTM_SIG_LEN)

/* A server identity signed by the AS key (layout in docs/protocol.md). */
struct ntm_cert {
	uint8_t		version;		/* 1 */
	uint8_t		role;			/* enum ntm_role */
	char		name[NTM_NAME_MAX + 1];
	uint8_t		pk[NTM_SIGN_PK];	/* the server's Ed25519 key */
	uint64_t	serial;
	int64_t		not_before, not_after;	/* unix seconds */
	uint8_t		sig[NTM_SIG_LEN];
};
/* Returns the encoded length or a negative error. */
int ntm_cert_encode(const struct ntm_cert *c, uint8_t *out, size_t cap);
/* Strict: exact length, version 1, known role, non-empty name. */
int ntm_cert_decode(struct ntm_cert *c, const uint8_t *p, size_t n) NTM_WUR;
void ntm_cert_sign(struct ntm_cert *c, const uint8_t as_sk[NTM_SIGN_SK]);
/* Signature by as_pk and now within [not_before, not_after]:
 * 0, NTM_ERR_CRYPTO or NTM_ERR_EXPIRED. */
int ntm_cert_verify(const struct ntm_cert *c, const uint8_t as_pk[NTM_SIGN_PK],
    int64_t now) NTM_WUR;
/* Base64url text form used in headers and files. */
int ntm_cert_to_b64(const struct ntm_cert *c, char *out, size_t cap);
int ntm_cert_from_b64(struct ntm_cert *c, const char *b64) NTM_WUR;

/* ---- client authentication tokens (lib/token.c) -------------------------- */

#define NTM_USER_MAX	32
#define NTM_DEVICE_MAX	64
#define NTM_TOKEN_ID	16
#define NTM_TOKEN_MAX	(1 + 1 + NTM_USER_MAX + 1 + NTM_DEVICE_MAX + 1 + NTM_NAME_MAX + \
			 NTM_TOKEN_ID + 8 + 8 + NTM_SIG_LEN)

/* Issued by the AS to a logged-in client; bearer credential for DC/CS. */
struct ntm_token {
	uint8_t		version;		/* 1 */
	char		user[NTM_USER_MAX + 1];
	char		device[NTM_DEVICE_MAX + 1];
	char		dc[NTM_NAME_MAX + 1];	/* domain of the DC the user logged in at */
	uint8_t		id[NTM_TOKEN_ID];
	int64_t		issued, expires;
	uint8_t		sig[NTM_SIG_LEN];
};
int ntm_token_encode(const struct ntm_token *t, uint8_t *out, size_t cap);
int ntm_token_decode(struct ntm_token *t, const uint8_t *p, size_t n) NTM_WUR;
void ntm_token_sign(struct ntm_token *t, const uint8_t as_sk[NTM_SIGN_SK]);
int ntm_token_verify(const struct ntm_token *t, const uint8_t as_pk[NTM_SIGN_PK],
    int64_t now) NTM_WUR;
int ntm_token_to_b64(const struct ntm_token *t, char *out, size_t cap);
int ntm_token_from_b64(struct ntm_token *t, const char *b64) NTM_WUR;

/* Names: user names are DNS labels [a-z][a-z0-9-]{0,31} not ending in '-'; device ids [A-Za-z0-9_-]{1,64};
 * DNS names are lowercase LDH labels of 1..63, 253 total.
 * Each returns 1 if s is valid, 0 if not. */
int ntm_valid_user(const char *s);
int ntm_valid_device(const char *s);
int ntm_valid_dnsname(const char *s);

/* ---- signed server-to-server requests (lib/sig.c) ------------------------ */

#define NTM_HDR_DATE	"NTM-Date"
#define NTM_HDR_CERT	"NTM-Cert"
#define NTM_HDR_SIG	"NTM-Signature"
#define NTM_HDR_NONCE	"NTM-Nonce"
#define NTM_NONCE_LEN	16
#define NTM_NONCE_B64	NTM_B64_LEN(NTM_NONCE_LEN)	/* 22 characters + NUL */
#define NTM_SIG_WINDOW	300		/* seconds either side of now */
#define NTM_SIG_B64	NTM_B64_LEN(NTM_SIG_LEN)

/*
 * The signed string is
 *   "ntm-sig-v1\n" METHOD "\n" PATH "\n" DATE "\n" NONCE "\n" hex(SHA-256(body))
 * with DATE the decimal unix time sent in NTM-Date and NONCE the base64url
 * of 16 random bytes sent in NTM-Nonce (ntm_req_nonce()).
 */
void ntm_req_nonce(char nonce_b64[NTM_NONCE_B64]);
void ntm_req_sign(char sig_b64[NTM_SIG_B64], const uint8_t sk[NTM_SIGN_SK],
    const char *method, const char *path, int64_t date, const char *nonce,
    const void *body, size_t len);
int  ntm_req_verify(const char *sig_b64, const uint8_t pk[NTM_SIGN_PK],
    const char *method, const char *path, int64_t date, const char *nonce,
    const void *body, size_t len) NTM_WUR;

/* Remembers the signatures accepted within the date window, so a captured
 * request cannot be replayed while its date is still fresh. Bounded. */
struct ntm_replay;
struct ntm_replay *ntm_replay_new(size_t max_entries);	/* new */
void ntm_replay_free(struct ntm_replay *r);
/* 0 and remembers sig if date is within NTM_SIG_WINDOW of now and sig is new;
 * NTM_ERR_EXPIRED if stale, NTM_ERR_REPLAY if seen, NTM_ERR_NOSPACE if full
 * of unexpired entries. */
int ntm_replay_check(struct ntm_replay *r, const uint8_t sig[NTM_SIG_LEN],
    int64_t date, int64_t now) NTM_WUR;

/* ---- strict JSON unpacking (lib/json.c) ---------------------------------- */

typedef struct json_t json_t;

enum ntm_jtype { NTM_J_STR, NTM_J_INT, NTM_J_BOOL, NTM_J_OBJ, NTM_J_ARR };
struct ntm_jfield {
	const char	*name;
	enum ntm_jtype	 type;
	int		 required;
	void		*out;	/* const char ** (borrowed), int64_t *, int *, json_t ** (borrowed) */
	size_t		 maxlen;	/* strings: max bytes (0 = 1024); ints: unused */
};
/* What went wrong, for a JSON error body. */
struct ntm_jerr {
	char	code[32];	/* bad_json, not_object, unknown_field, missing_field, bad_field */
	char	field[64];	/* "" when not about one field */
	char	message[192];	/* names the field and what was expected */
};
/* Unpacks obj against fields: unknown keys, missing required keys, wrong
 * types, strings with NUL or over maxlen all fail with NTM_ERR_JSON and *err
 * filled. Optional absent fields leave *out untouched. */
int ntm_json_unpack(json_t *obj, const struct ntm_jfield *fields, size_t n,
    struct ntm_jerr *err) NTM_WUR;
/* Parses a body (not NUL-terminated) that must be one JSON object; returns
 * new reference or NULL with *err filled (code bad_json / not_object). */
json_t *ntm_json_parse(const void *p, size_t n, struct ntm_jerr *err);

/* ---- configuration files (lib/conf.c) ------------------------------------ */

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

/* ---- SQLite helpers (lib/db.c) ------------------------------------------- */

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

/* ---- worker thread (lib/worker.c) ---------------------------------------- */

struct event_base;
struct ntm_worker;
/* Requires evthread_use_pthreads() before the base was made. */
struct ntm_worker *ntm_worker_new(struct event_base *base, int nthreads);
void ntm_worker_free(struct ntm_worker *w);	/* joins after running queued jobs */
/* work(arg) runs on a worker thread; then done(arg) runs on base's loop. */
int  ntm_worker_submit(struct ntm_worker *w, void (*work)(void *),
    void (*done)(void *), void *arg) NTM_WUR;

/* ---- TLS material for the demo CA (lib/tls.c) ---------------------------- */

/* Creates a self-signed CA (EC P-256, PEM) valid for days. */
int ntm_tls_make_ca(const char *cert_path, const char *key_path, const char *cn,
    int days) NTM_WUR;
/* Issues a server certificate from the CA for the DNS names and IP addresses
 * in sans (NULL-terminated; entries that parse as IPs become IP SANs). */
int ntm_tls_issue(const char *ca_cert, const char *ca_key, const char *cert_path,
    const char *key_path, const char *const *sans, int days) NTM_WUR;

/* ---- HTTPS server glue (lib/httpd.c) ------------------------------------- */

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
/* addr "127.0.0.1", "::1", "0.0.0.0"...; port 0 picks one; *bound gets it. */
int  ntm_httpd_listen(struct ntm_httpd *h, const char *addr, uint16_t port,
    uint16_t *bound) NTM_WUR;
/* For NTM_ROUTE_SIGNED routes: trust anchor and revocation hook. */
void ntm_httpd_set_trust(struct ntm_httpd *h, const uint8_t as_pk[NTM_SIGN_PK],
    ntm_cert_check_fn *check, void *arg);
/* For NTM_ROUTE_BEARER routes: the token check (without it they answer 500). */
void ntm_httpd_set_bearer(struct ntm_httpd *h, ntm_bearer_fn *fn, void *arg);
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
 * Exactly one reply per request, now or later from the same loop (the
 * request may be answered after asynchronous work; if the client went away
 * the reply is dropped and the request freed).
 */
void ntm_reply_json(struct ntm_req *r, int status, json_t *body);	/* body stolen */
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

/* ---- HTTPS client glue (lib/httpc.c): libcurl multi on the libevent loop -- */

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
};
typedef void ntm_httpc_cb(const struct ntm_http_result *res, void *arg);
/* body: JSON to send (borrowed; NULL for none). bearer: Authorization token
 * or NULL. timeout_ms bounds the whole request. */
int  ntm_httpc_request(struct ntm_httpc *c, const char *method, const char *url,
    json_t *body, const char *bearer, long timeout_ms, ntm_httpc_cb *cb, void *arg) NTM_WUR;
/* The NTM_ERR_* a libcurl result code (CURLcode) maps to, as for
 * ntm_httpc_request's err: 0 for CURLE_OK. For callers driving libcurl
 * themselves. */
int  ntm_http_curl_err(int curlcode);
/* Blocking convenience for the CLI: runs its own loop until done. On return
 * *status and *json (new reference or NULL) are set; returns res.err. */
int  ntm_https_call(const char *cafile, const char *method, const char *url,
    json_t *body, const char *bearer, long timeout_ms, long *status, json_t **json,
    char *errmsg, size_t errlen) NTM_WUR;

/* ---- addresses (lib/addr.c) ---------------------------------------------- */

/* Parses "100.64.1.0/24" or "fd00:6e74:1::/64". */
struct ntm_prefix {
	int		family;		/* AF_INET or AF_INET6 */
	uint8_t		addr[16];
	int		len;
};
int ntm_prefix_parse(struct ntm_prefix *p, const char *s) NTM_WUR;
int ntm_prefix_overlap(const struct ntm_prefix *a, const struct ntm_prefix *b);
/* Address number idx (1-based host index) inside p, as text. NTM_ERR_NOSPACE
 * if idx does not fit in the host part or hits the broadcast (IPv4). */
int ntm_prefix_host(const struct ntm_prefix *p, uint64_t idx, char *out, size_t cap) NTM_WUR;

/*
 * A push webhook URL (docs/protocol.md §3.2): "https://HOST[:PORT]" then
 * optionally a path, query or fragment; at most NTM_PUSH_URL_MAX bytes of
 * printable ASCII (no spaces or control characters). HOST is a name
 * ([A-Za-z0-9.-]), an IPv4 address or a bracketed IPv6 address; PORT is
 * 1..65535; no "user:password@". 1 if valid, 0 if not.
 */
#define NTM_PUSH_URL_MAX	512
int ntm_valid_push_url(const char *s);
/*
 * The URL as it may be logged: scheme, host, port and path, without the
 * query or fragment (they often carry the push service's token). Always
 * NUL-terminates out (cap > 0); cut to fit.
 */
void ntm_push_url_loggable(const char *url, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
