/*
 * dc.h - ntm-dc, the Direction Coordinator: one config struct, the storage
 * interface and the prototypes, grouped by file.
 */
#ifndef NTM_DC_H
#define NTM_DC_H

#include <stdint.h>

#include "srv.h"

#define DC_SESSION_ID	16		/* bytes; hex on the wire */
#define DC_FIRST_HOST	2		/* host 1 is the DC's own virtual address */
#define DC_PASSWORD_MAX	256

/* One client device, as stored. */
struct dc_client {
	int64_t	id;
	char	user[NTM_USER_MAX + 1];
	char	device[NTM_DEVICE_MAX + 1];
	char	fqdn[NTM_NAME_MAX + 1];
	int64_t	host;
	char	vip4[48], vip6[48];
	int64_t	created, last_login;
};

/* A session as stored (keys as b64 text). */
struct dc_session {
	char	session_id[2 * DC_SESSION_ID + 1];
	char	token_id[2 * NTM_TOKEN_ID + 1];
	char	rx[NTM_B64_LEN(NTM_KEY_LEN)], tx[NTM_B64_LEN(NTM_KEY_LEN)];
	int64_t	created, expires;
};

struct dc_login;

struct dc {
	struct srv		*srv;
	sqlite3			*db;
	struct ntm_httpc	*httpc;
	struct ntm_prefix	 p4, p6;
	char			*as_login_url;	/* {as_url}/v1/as/login */
	struct dc_login		*pending;	/* logins waiting for the AS */
	/* dns.c / discover.c (dns.h): DNS server and discovery of other DCs */
	struct dc_dns		*dns;		/* NULL when dns_listen is unset */
	struct dc_disc		*disc;		/* NULL when resolver is unset */
};

/* db.c - the DC's SQLite storage. Functions return 0 or a negative NTM_ERR_*. */
int  dc_db_open(const char *path, sqlite3 **db, char *err, size_t errlen);
/*
 * In one transaction: finds the (user, device) client or allocates its
 * FQDN and host number (NTM_ERR_NOSPACE when a prefix is full), sets
 * last_login, and stores sess as its session (replacing the previous one).
 */
int  dc_db_login(sqlite3 *db, const struct ntm_prefix *p4, const struct ntm_prefix *p6,
    const char *domain, const char *user, const char *device,
    const struct dc_session *sess, int64_t now, struct dc_client *out);
/* The live (not ended, not expired) session holding token_id for user/device:
 * 0, or NTM_ERR_NOTFOUND. */
int  dc_db_session(sqlite3 *db, const char *token_id, const char *user,
    const char *device, int64_t now, struct dc_client *cl, struct dc_session *sess);
/* Marks that session ended. */
int  dc_db_logout(sqlite3 *db, const char *token_id, int64_t now);
/* Calls fn for each client ordered by host number; online means a live session. */
int  dc_db_clients(sqlite3 *db, int64_t now,
    int (*fn)(const struct dc_client *c, int online, void *arg), void *arg);

/* login.c - the client-facing HTTP endpoints. */
int  dc_routes(struct dc *dc, char *err, size_t errlen);
void dc_cancel_logins(struct dc *dc);

/* client.c - the "client" subcommand. */
int  dc_cmd_client(struct srv *s, int argc, char *argv[]);

#endif
