/*
 * ntm-as.h - the Account Server: accounts, server certificates, tokens.
 *
 * One struct for the whole program; admin commands and the daemon each open
 * their own connection to the store (store.c: SQLite WAL + busy timeout, or
 * PostgreSQL), so an admin command runs while daemons serve.
 */
#ifndef NTM_AS_H
#define NTM_AS_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "srv.h"

#define AS_PASSWORD_MAX		256	/* bytes, as in docs/protocol.md §3.1 */
#define AS_CA_DAYS		3650	/* demo CA */
#define AS_TLS_DAYS		825	/* TLS certificates issued by the demo CA */
#define AS_CERT_DAYS		365	/* default for `server add --days` */
#define AS_CERT_DAYS_MAX	3650
#define AS_CERT_SKEW		60	/* not_before = now - AS_CERT_SKEW */
#define AS_WORKERS		2	/* password-hashing threads */
#define AS_NICE			10	/* their CPU priority: below the loop's and the
					 * known devices' thread's */
#define AS_LOGIN_QUEUE		1024	/* logins waiting for a thread, in all */
#define AS_LOGIN_QUEUE_DC	256	/* ... from one DC */
#define AS_IP_MAX		16	/* --ip options to `server add` */

/* Exit codes (documented in ntm-as(8)). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct as {
	struct srv_conf		 conf;		/* borrowed from struct srv */
	const char		*conf_path;
	int			 foreground;	/* -d */
	int			 verbose;	/* -v count */
	int			 check_only;	/* -n */

	/* loaded on demand */
	struct as_store		*db;
	uint8_t			 sk[NTM_SIGN_SK];
	uint8_t			 pk[NTM_SIGN_PK];
	int			 has_key;

	/* daemon only */
	struct event_base	*base;
	struct ntm_httpd	*httpd;
	struct ntm_worker	*worker;		/* hashes any login, at nice AS_NICE */
	struct ntm_worker	*worker_known;	/* only known devices', at nice 0 */
	struct as_push		*push;		/* push.c: revocations to the CSs */
	struct ntm_replay	*sealed_seen;	/* serve.c: nonces of sealed logins */
};

/* serve.c: makes what the logins need before the first one (the dummy
 * password hash of unknown users); 0 or -1. */
int	as_login_prepare(void);

/* admin.c */
/* One-line errors of the admin commands: "ntm-as: message" on stderr;
 * as_err appends strerror(errno). */
void	as_errx(const char *fmt, ...) NTM_PRINTF(1, 2);
void	as_err(const char *fmt, ...) NTM_PRINTF(1, 2);
struct option;
/*
 * Runs fn for an admin command (its exec's ctx is the struct srv, the
 * configuration loaded) on a struct as of its own, closed after: the exit
 * code. AS_EXEC(fn) defines fn_exec, the command entry's exec.
 */
int	as_admin_run(void *ctx, struct cmd_call *c,
	    int (*fn)(struct as *, struct cmd_call *));
#define AS_EXEC(fn) static int fn##_exec(void *ctx, struct cmd_call *c) \
	{ return as_admin_run(ctx, c, fn); }
/* "DB: what: the store's message" on stderr; EXIT_FAIL. */
int	as_db_failed(struct as *as, const char *what);
int	as_load_key(struct as *as);
int	as_open_db(struct as *as, int must_exist);
void	as_close(struct as *as);

/* store.c: the storage seam, SQLite or PostgreSQL (see there). */
struct as_store;
struct as_rows;
/* database (the `database` setting) names PostgreSQL: a postgresql:// or
 * postgres:// URI, or a libpq conninfo (it holds '='). */
int	as_store_is_pg(const char *database);
/* Whether several AS processes may share st (PostgreSQL). */
int	as_store_shared(const struct as_store *st);
/* Opens PostgreSQL at database if as_store_is_pg says so, else SQLite at
 * path, and applies migrations (in the common dialect) past the stored
 * version. Without create, a PostgreSQL database without the AS's schema
 * is NTM_ERR_NOTFOUND. *out new; 0 or an error (NTM_ERR_CONNECT, _DB,
 * _VERSION, ...). */
int	as_store_open(const char *database, const char *path,
	    const char *const *migrations, int nmig, int create, struct as_store **out);
void	as_store_close(struct as_store *st);
/* The last error's text (borrowed; valid until the next call). */
const char *as_store_errmsg(const struct as_store *st);
/*
 * Statements in the common dialect (?1.. placeholders, {greatest} ...);
 * types binds them as in lib/io/ntm-io.h: 's' text (NULL: SQL NULL), 'i'
 * int, 'I' int64_t. Errors: NTM_ERR_EXISTS for a constraint, NTM_ERR_DB.
 * as_sql_run: how many rows changed (>= 0). as_sql_int: the first column
 * of the first row into *out, NTM_ERR_NOTFOUND without a row.
 * as_sql_query: *out new (as_rows_free), read with as_rows_next
 * (NTM_DB_ROW, 0 at the end) or as_rows_one (0, NTM_ERR_NOTFOUND); the
 * text of a column is borrowed until the next row.
 */
int	as_sql_run(struct as_store *st, const char *sql, const char *types, ...) NTM_WUR;
int	as_sql_int(struct as_store *st, int64_t *out, const char *sql,
	    const char *types, ...) NTM_WUR;
int	as_sql_query(struct as_store *st, struct as_rows **out, const char *sql,
	    const char *types, ...) NTM_WUR;
int	as_rows_next(struct as_rows *r) NTM_WUR;
int	as_rows_one(struct as_rows *r) NTM_WUR;
int	as_rows_null(const struct as_rows *r, int col);
int64_t	as_rows_int(const struct as_rows *r, int col);
const char *as_rows_text(const struct as_rows *r, int col);
void	as_rows_col(char *dst, size_t cap, const struct as_rows *r, int col);
void	as_rows_free(struct as_rows *r);
/* A transaction (nested ones join the outer): as_sql_end commits the
 * outermost when ret >= 0 and nothing inside failed, else rolls back;
 * it returns ret, or the commit's error. */
int	as_sql_begin(struct as_store *st) NTM_WUR;
int	as_sql_end(struct as_store *st, int ret) NTM_WUR;

/* db.c: the schema and the queries shared by commands and the daemon */
struct as_user {
	char	name[NTM_USER_MAX + 1];
	char	pwhash[NTM_PWHASH_STR];
	int	locked;
	int64_t	created, updated;
};
struct as_server {
	int64_t	serial;
	int	role;
	char	name[NTM_NAME_MAX + 1];
	uint8_t	pk[NTM_SIGN_PK];
	int64_t	not_before, not_after, revoked_at;	/* revoked_at 0: not revoked */
	int64_t	created;
};
/* The AS's store of conf (its `database`, else the SQLite file `db`);
 * create: `init` may make the schema. */
int	as_db_open(const struct srv_conf *conf, int create, struct as_store **db);
/* 0, NTM_ERR_NOTFOUND or NTM_ERR_DB. */
int	as_db_user_get(struct as_store *db, const char *name, struct as_user *u);
/* 0, NTM_ERR_EXISTS or NTM_ERR_DB. */
int	as_db_user_add(struct as_store *db, const char *name, const char *pwhash, int64_t now);
/* 0, NTM_ERR_NOTFOUND or NTM_ERR_DB. */
int	as_db_user_del(struct as_store *db, const char *name);
int	as_db_user_set_pw(struct as_store *db, const char *name, const char *pwhash, int64_t now);
int	as_db_user_set_locked(struct as_store *db, const char *name, int locked, int64_t now);
/* Calls fn for each user by name; stops on fn's nonzero return. */
int	as_db_user_each(struct as_store *db, int (*fn)(const struct as_user *, void *), void *arg);
/* Inserts a server row and sets s->serial. */
int	as_db_server_add(struct as_store *db, struct as_server *s);
int	as_db_server_get(struct as_store *db, int64_t serial, struct as_server *s);
int	as_db_server_revoke(struct as_store *db, int64_t serial, int64_t now);
/* The enrolled server's validity after a renewal (not revoked): 0 or
 * NTM_ERR_NOTFOUND. */
int	as_db_server_renew(struct as_store *db, int64_t serial, int64_t not_before, int64_t not_after);
int	as_db_server_each(struct as_store *db, int (*fn)(const struct as_server *, void *), void *arg);
int	as_db_token_add(struct as_store *db, const struct ntm_token *t);
/* The names of the CSs enrolled (certificate unrevoked, valid at now), at
 * most max, by name: their count, or a storage error. */
int	as_db_cs_names(struct as_store *db, int64_t now, char names[][NTM_NAME_MAX + 1], int max);
/* 0 if t is recorded, unexpired at now and not revoked; else NTM_ERR_REVOKED. */
int	as_db_token_live(struct as_store *db, const struct ntm_token *t, int64_t now);
/* The device key (b64) sealed in the login token t was issued for: set,
 * and read ("" when the login was not sealed). */
int	as_db_token_set_key(struct as_store *db, const struct ntm_token *t, const char *key);
int	as_db_token_key(struct as_store *db, const struct ntm_token *t, char *out, size_t cap);
/* Records device certificate c (its serial filled in) issued through dc;
 * NTM_ERR_EXISTS if its FQDN was certified for another user or device. */
/* The validity of the last certificate of user's device at dc for the key
 * pk_b64, and the account's `updated` when it was issued (-1: unknown, -2:
 * the device was revoked): 0, NTM_ERR_NOTFOUND (none), or a storage error. */
/* `device revoke`: the device's live tokens queued for the servers, and it
 * renews no more. How many tokens, NTM_ERR_NOTFOUND, or a storage error. */
int	as_db_device_revoke(struct as_store *db, const char *fqdn, int64_t now);
int	as_db_device_last(struct as_store *db, const char *user, const char *device, const char *dc,
    const char *pk_b64, int64_t *not_before, int64_t *not_after, int64_t *account_updated);
int	as_db_device_add(struct as_store *db, struct ntm_dcert *c, const char *dc,
	    const char *pk_b64, int64_t now);
/* Failed logins of a user name kept in the store (when it is shared):
 * get (0 or NTM_ERR_NOTFOUND), count one more at now_ms (from 1 again
 * after forget_ms without one), clear, and drop those older than
 * before_ms. */
int	as_db_fails_get(struct as_store *db, const char *name, int64_t *fails,
	    int64_t *last_ms);
int	as_db_fails_add(struct as_store *db, const char *name, int64_t now_ms,
	    int64_t forget_ms);
int	as_db_fails_clear(struct as_store *db, const char *name);
int	as_db_fails_sweep(struct as_store *db, int64_t before_ms);
/* Human-readable last storage error of db (static or db-owned text). */
const char *as_db_errmsg(const struct as_store *db);
/* Where the store is, for messages: the SQLite file, or "postgresql"
 * (a conninfo may hold a password). */
const char *as_db_where(const struct srv_conf *conf);

/* init.c */
extern const struct cmd_entry as_init_entry, as_pubkey_entry;

/* user.c */
extern const struct cmd_entry as_user_entry;

/* server.c */
extern const struct cmd_entry as_server_entry;
extern const struct cmd_entry as_device_entry;
/* "2025-01-02T03:04:05Z" */
void	as_fmt_time(char *buf, size_t cap, int64_t t);

/* push.c: revocations pushed to the CSs of cs_url (docs/protocol.md §7.5) */
/* Queues an account revocation (before = now) for each DC where user holds
 * unexpired tokens: how many, or NTM_ERR_DB. */
int	as_revoke_queue_user(struct as_store *db, const char *user, int64_t now);
int	as_revoke_queue_token(struct as_store *db, const char *token_hex, const char *dc, int64_t now);
int	as_revoke_queue_server(struct as_store *db, int64_t serial, const char *name, int64_t now);
/* Daemon: sends each CS of cs_url what it was not sent yet, every few
 * seconds. 0 or -1 (logged). */
int	as_push_start(struct as *as);
void	as_push_stop(struct as *as);
/* GET /metrics: pushes per CS and what each has still to take. */
struct ntm_prom;
void	as_push_metrics(struct as *as, struct ntm_prom *p);
/* serve.c: GET /metrics: logins by result. */
void	as_login_metrics(struct ntm_prom *p);

/* serve.c: the routes (ending with a NULL method) and, for every signed
 * request, the check of the caller's certificate against the enrolled
 * servers (arg: the daemon's struct as). */
extern const struct ntm_http_route as_routes[];
int	as_cert_check(const struct ntm_cert *c, void *arg);

#endif
