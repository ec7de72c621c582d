/*
 * dc.h - ntm-dc, the Direction Coordinator: one config struct, the storage
 * interface and the prototypes, grouped by file.
 */
#ifndef NTM_DC_H
#define NTM_DC_H

#include <stdint.h>

#include "srv.h"
#include "route.h"

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

struct dc;
struct dc_login;
struct dc_rt;
struct dc_cache;
struct dc_status;
struct dc_sess;

/*
 * Events of the registration path (udp.c) for the rooms above it, which
 * register a table at start (main.c); called in the order registered.
 * A NULL entry is skipped.
 */
struct dc_hooks {
	/* The client registered after being offline. */
	void (*online)(struct dc *dc, struct dc_sess *s);
	/* The client registered from a new reflexive address, same NAT
	 * situation and family: its direct routes stay, the address moved. */
	void (*moved)(struct dc *dc, const char *fqdn,
	    const struct sockaddr_storage *endpoint);
};
#define DC_HOOKS_MAX	4
struct dc_tunnels;
struct dc_push;
struct dc_exchange;
struct dc_ended;
struct dc_cstok;
struct dc_asreq;

/* Temporal keys past their exchange, dropped every DC_XSWEEP_S (xdb.c). */
struct dc_xsweep {
	struct event	*ev;			/* every DC_XSWEEP_S */
	int64_t		waiting;		/* keys waiting at the last one */
	uint64_t	expired, orphaned;	/* dropped since the start */
};

struct dc {
	struct srv		*srv;
	sqlite3			*db;
	struct ntm_httpc	*httpc;
	struct ntm_prefix	 p4, p6;
	size_t			 as_cur;	/* asclient.c: the AS of as_url asked now */
	uint64_t		 as_failovers;	/* ... moved on from a silent one */
	uint64_t		 as_resent;	/* requests sent again to the next */
	struct dc_asreq		*asreqs;	/* requests to the AS in flight */
	struct dc_login		*pending;	/* logins waiting for the AS */
	struct login_src	*login_srcs;	/* sources with logins waiting for a turn */
	struct login_src	*login_turn;	/* the source whose turn is next */
	struct login_src	*login_known;	/* known devices' logins: first */
	long			 login_inflight, login_waiting;
	long			 login_known_inflight;	/* known devices': their own budget */
	struct dc_cstok		*cstoks;	/* CS token requests waiting for the AS */
	/* dns.c (dns.h): DNS server; discover.h: discovery of other DCs */
	struct dc_dns		*dns;		/* NULL when dns_listen is unset */
	struct disc		*disc;		/* NULL when resolver is unset */
	struct dc_cache		*cache;		/* sess.c: the session cache */
	struct dc_rt		*rt;		/* udp.c: the registration socket */
	struct dc_status	*status;	/* status.c: state_dir/status.json */
	const struct dc_hooks	*hooks[DC_HOOKS_MAX];	/* borrowed (static tables) */
	int			 nhooks;
	struct dc_tunnels	*tunnels;	/* tunnel.c: tunnels, requests waiting */
	struct dc_push		*push;		/* push.c: webhook requests in flight */
	struct dc_exchange	*xch;		/* exchange.c: fan-outs and long-polls */
	struct dc_ended		*ended;		/* ended.c: ended tokens for the AS */
	struct dc_xsweep	 xsweep;	/* xdb.c: temporal keys dropped */
};

/* asclient.c - requests to the AS of as_url, the next one asked when one
 * does not answer. POST {as}/v1/as/{what} with body (copied), signed; cb
 * gets the answer of the AS that gave one, or the last failure. 0 or an
 * error (then cb never runs). */
int  dc_as_post(struct dc *dc, const char *what, json_t *body, ntm_httpc_cb *cb,
    void *arg);
/* {"failovers": N, "resent": N} for the metrics (new reference). */
json_t *dc_as_stats(struct dc *dc);
/* The AS asked now (for messages). */
const char *dc_as_current(const struct dc *dc);
/* After ntm_httpc_free: frees what was in flight (no callback runs). */
void dc_as_cancel(struct dc *dc);

/* db.c - the DC's SQLite storage. Functions return 0 or a negative NTM_ERR_*. */
int  dc_db_open(const char *path, sqlite3 **db, char *err, size_t errlen);
/*
 * In one transaction: finds the (user, device) client or allocates its
 * FQDN and host number (NTM_ERR_NOSPACE when a prefix is full), sets
 * last_login, its push URL and exchange key (NULL clears each), and stores sess as its
 * session (replacing the previous one).
 */
/* The most devices one user may have at this DC (max_devices; 0: any): a
 * login of one more fails with NTM_ERR_TOOBIG. */
void dc_db_set_max_devices(long n);
/* Deletes the client fqdn and everything of its (sessions, location,
 * waiting keys and entries); its live session's token is ended as at
 * logout. NTM_ERR_NOTFOUND when there is none. */
int  dc_db_client_del(sqlite3 *db, const char *fqdn, int64_t now);
/* Deletes the clients neither logged in nor registered since before, with
 * no session still good at now; *n: how many. */
int  dc_db_clients_reclaim(sqlite3 *db, int64_t before, int64_t now, int *n);
/* How many clients were deleted so far, by any process (a trigger counts). */
int  dc_db_client_deletions(sqlite3 *db, int64_t *n);
/* The ids of every client: *ids new (free), *n of them. */
int  dc_db_client_ids(sqlite3 *db, int64_t **ids, size_t *n);
int  dc_db_login(sqlite3 *db, const struct ntm_prefix *p4, const struct ntm_prefix *p6,
    const char *domain, const char *user, const char *device, const char *push,
    const char *xkey, const struct dc_session *sess, int64_t now, struct dc_client *out);
/* The client's push URL into out ("" when it has none): 0, or
 * NTM_ERR_NOTFOUND for no such client. */
int  dc_db_client_push(sqlite3 *db, int64_t client_id, char *out, size_t cap);
/* The client's exchange key (b64) into out ("" when it gave none). */
int  dc_db_client_xkey(sqlite3 *db, int64_t client_id, char *out, size_t cap);
/* The device certificate (b64) of the client's last login; "" if none.
 * The setter takes NULL for none. */
int  dc_db_client_cert(sqlite3 *db, int64_t client_id, char *out, size_t cap);
int  dc_db_client_set_cert(sqlite3 *db, int64_t client_id, const char *cert);
/* The live (not ended, not expired) session holding token_id for user/device:
 * 0, or NTM_ERR_NOTFOUND. */
int  dc_db_session(sqlite3 *db, const char *token_id, const char *user,
    const char *device, int64_t now, struct dc_client *cl, struct dc_session *sess);
/* Marks that session ended. */
int  dc_db_logout(sqlite3 *db, const char *token_id, int64_t now);
/* Tokens that ended here, for the AS (ended.c): calls fn for up to max due
 * now (expired ones are dropped first); records a try (next_try 0: done,
 * forget it); counts those waiting. */
int  dc_db_ended_due(sqlite3 *db, int64_t now, int max,
    int (*fn)(const char *token_id, int tries, void *arg), void *arg);
int  dc_db_ended_result(sqlite3 *db, const char *token_id, int64_t next_try);
int  dc_db_ended_count(sqlite3 *db, int64_t *n);
/* Calls fn for each client ordered by host number; online means a live session. */
int  dc_db_clients(sqlite3 *db, int64_t now,
    int (*fn)(const struct dc_client *c, int online, void *arg), void *arg);

/* A client's last registration as stored (text forms, for "client list"). */
struct dc_loc_row {
	int64_t	client_id;
	char	reflexive[64];			/* "ip:port" */
	char	locals[4 * 64];			/* "ip:port,ip:port" */
	int	natted, agent;
	int	nat;				/* enum ntm_nat the device reported */
	int	filter;				/* enum ntm_filter the device reported */
	int64_t	last_seen;
	int	offline;			/* its agent said it stops */
	/* A first location's row: the second family's stored location goes
	 * with it (the DC keeps none: goodbye, the host lost that family). */
	int	drop_also;
	/* The row is the second family's location (NTM_REG_F_ALSO, table
	 * locations_also), of the login session session_id (hex); agent,
	 * offline and drop_also are not used. */
	int	also;
	char	session_id[2 * DC_SESSION_ID + 1];
};
/* Stores (replaces) the location of a client. */
int  dc_db_location_store(sqlite3 *db, const struct dc_loc_row *r);
/* In one transaction (all or none): the n changes in order (a later row of
 * the same client wins), then the nt keepalive times, each replacing only
 * an older last_seen (a second location's time only moves the one stored
 * for the same session and reflexive address, never makes one). A row of a
 * client deleted meanwhile is left out. */
int  dc_db_locations_write(sqlite3 *db, const struct dc_loc_row *changes, size_t n,
    const struct dc_loc_row *times, size_t nt);
/* Calls fn for each stored location, the oldest last_seen first. */
int  dc_db_locations(sqlite3 *db, int (*fn)(const struct dc_loc_row *r, void *arg),
    void *arg);
/* Calls fn for each stored second-family location (also set) of a live
 * session at now, the oldest last_seen first. */
int  dc_db_locations_also(sqlite3 *db, int64_t now,
    int (*fn)(const struct dc_loc_row *r, void *arg), void *arg);
/* Calls fn for each live (not ended, not expired) session with its client. */
int  dc_db_live_sessions(sqlite3 *db, int64_t now,
    int (*fn)(const struct dc_client *c, const struct dc_session *s, void *arg), void *arg);
/* The live session with this id (hex): 0 or NTM_ERR_NOTFOUND. */
int  dc_db_session_by_id(sqlite3 *db, const char *session_id, int64_t now,
    struct dc_client *cl, struct dc_session *sess);
/* The client with this FQDN: 0 or NTM_ERR_NOTFOUND. */
int  dc_db_client_by_fqdn(sqlite3 *db, const char *fqdn, struct dc_client *cl);

/* login.c - the client-facing HTTP endpoints (a route table ending with a
 * NULL method). */
extern const struct ntm_http_route dc_login_routes[];
void dc_cancel_logins(struct dc *dc);
/* Logins at the AS now (known devices' included), and waiting for a turn. */
void dc_login_counts(const struct dc *dc, long *at_as, long *waiting);
/* auth.c: the bearer check of the DC's routes (ntm_bearer_fn, arg the dc): the token
 * is the AS's, for this DC, with a live session. */
int  dc_bearer(struct ntm_req *req, const char *token, void *arg);
/* revoke.c: srv_spec.revoke, the AS's push of revocations. */
int  dc_revoke(struct srv *s, struct ntm_req *req, const struct ntm_m_revoke *m);
/* What dc_bearer found for req; on failure replies 500 and returns -1. */
int  dc_authenticate(struct dc *dc, struct ntm_req *req, struct ntm_token *tok,
    struct dc_client *cl, struct dc_session *sess);

/* ---- the real-time path (udp.c, tunnel.c) -------------------------------- */

#define DC_SESS_MAX		262144	/* registration sessions cached (~1.7 KiB each) */
#define DC_PENDING_MAX		16	/* route directions queued per client */
#define DC_TUNNELS_MAX		65536	/* tunnels remembered for recreation (tuntab.c) */
#define DC_TUNNEL_TTL_S		86400	/* a tunnel (and its relay ticket) lives this long */
#define DC_MOVED_INFLIGHT	64	/* POST /v1/dc/moved in flight at most */
#define DC_MISS_RATE		100	/* database look-ups of unknown session ids per second */
#define DC_ONLINE_FACTOR	3	/* online while last_seen < 3 x keepalive_s */

/* One logged-in client as the UDP path knows it (sess.c). */
struct dc_sess_info {
	int64_t			client_id;
	char			fqdn[NTM_NAME_MAX + 1];
	char			vip4[48], vip6[48];
	int			online;		/* registered within 3 x keepalive */
	int			stopped;	/* offline because its agent said so */
	int			has_loc;
	struct ntm_location	loc;		/* lib/core/route.h */
	int			family;		/* 4 or 6: of loc.reflexive */
	int			has_alt;	/* alt: its location in the other family,
						 * registered within 3 x keepalive */
	struct ntm_location	alt;
	int64_t			last_seen;
	unsigned		pending;
};
struct dc_sess_counts {
	size_t		sessions;
	uint64_t	evicted;	/* dropped to make room */
	uint64_t	dropped;	/* directions dropped from a full queue */
	size_t		nat[5];		/* online devices by the NAT kind they
					 * registered (enum ntm_nat) */
	size_t		filter[6];	/* and by their filtering (enum ntm_filter) */
};

/* sess.c: the session cache, loaded from the database at start. */
int  dc_sess_start(struct dc *dc, char *err, size_t errlen);
void dc_sess_stop(struct dc *dc);
/* Session cache updates for login.c (sid raw, keys b64 as stored). */
void dc_sess_login(struct dc *dc, const struct dc_client *c, const struct dc_session *s);
void dc_sess_logout(struct dc *dc, int64_t client_id);
/* The cached session of a client (borrowed), or NULL. */
struct dc_sess *dc_sess_by_client(struct dc *dc, int64_t client_id);
void dc_sess_info(struct dc *dc, const struct dc_sess *s, struct dc_sess_info *out);
int64_t dc_sess_client(const struct dc_sess *s);	/* its client's id */
/* The pending directions (new array, emptied from the queue). */
json_t *dc_sess_take(struct dc *dc, struct dc_sess *s);
void dc_sess_counts(struct dc *dc, struct dc_sess_counts *out);
/* Registers a table of hooks (borrowed: static); called by udp.c through
 * dc_hooks_online and dc_hooks_moved. */
void dc_hooks_add(struct dc *dc, const struct dc_hooks *h);
void dc_hooks_online(struct dc *dc, struct dc_sess *s);
void dc_hooks_moved(struct dc *dc, const char *fqdn, const struct sockaddr_storage *endpoint);

/* udp.c: the registration socket. */
int  dc_udp_start(struct dc *dc, char *err, size_t errlen);
void dc_udp_stop(struct dc *dc);
/* Sends the client a NUDGE of kind (NTM_NUDGE_*) saying pending wait.
 * 0, or NTM_ERR_NOTFOUND when it has not registered since the DC started. */
int  dc_sess_nudge(struct dc *dc, struct dc_sess *s, uint32_t kind, uint32_t pending);
/* Queues a direction (stolen) for the client, NUDGEs it and calls its
 * webhook: the number now pending, or NTM_ERR_* (the oldest is dropped when
 * the queue is full). */
int  dc_sess_queue(struct dc *dc, struct dc_sess *s, json_t *direction);
/* Sends the client a MOVED (its peer on tunnel tid is now at endpoint) on
 * its registration channel, to where it last registered from. 0 or NTM_ERR_*. */
int  dc_sess_moved(struct dc *dc, struct dc_sess *s, const uint8_t tid[NTM_TUNNEL_ID_LEN],
    const struct sockaddr_storage *endpoint);
/* Counters as JSON (new). */
json_t *dc_udp_stats(struct dc *dc);
/* Logs the counters at -v when they changed and a while has passed. */
void dc_udp_tick(struct dc *dc);

/* status.c: state_dir/status.json while udp_listen is open, and the
 * "status" subcommand: ntm-dc [-f FILE] status [--json]. */
int  dc_status_start(struct dc *dc, char *err, size_t errlen);
void dc_status_stop(struct dc *dc);
extern const struct cmd_entry dc_status_entry;
/* GET /metrics: the same counters (srv_spec.metrics). */
struct ntm_prom;
void dc_metrics(struct srv *s, struct ntm_prom *p);

/* tunnel.c: POST /v1/tunnel, GET /v1/directions, POST /v1/dc/locate,
 * /v1/dc/direction and /v1/dc/moved; dc_tunnel_init makes their state. */
extern const struct ntm_http_route dc_tunnel_routes[];
int  dc_tunnel_init(struct dc *dc, char *err, size_t errlen);
/* Answers and frees the tunnel requests still waiting (at shutdown). */
void dc_tunnel_cancel(struct dc *dc);
/* Its hooks: a client that moved (MOVED to the peers of its direct tunnels,
 * here or through POST /v1/dc/moved). */
extern const struct dc_hooks dc_tunnel_hooks;
/* Counters of dc_tunnel_moved and POST /v1/dc/moved, and the directions
 * made by route kind ("directions"), as JSON (new). */
json_t *dc_tunnel_stats(struct dc *dc);

/* push.c: the push webhook (docs/protocol.md §3.2). */
#define DC_PUSH_INFLIGHT	64	/* webhook requests in flight at most */
#define DC_PUSH_TIMEOUT_MS	5000	/* per request, no retry */
int  dc_push_init(struct dc *dc, char *err, size_t errlen);
/* Cancels the requests in flight (no callbacks). */
void dc_push_free(struct dc *dc);
/* A direction was queued for the client (pending now waiting): POSTs the
 * notice to its push URL, if it gave one at login. Never blocks. */
void dc_push_direction(struct dc *dc, int64_t client_id, const char *fqdn, int pending);
/* The same for any notice type ("direction", "cache"). */
void dc_push_notice(struct dc *dc, int64_t client_id, const char *fqdn, const char *type,
    int pending);
/* Counters as JSON (new). */
json_t *dc_push_stats(struct dc *dc);

/* ---- the non-real-time path (exchange.c, xdb.c; protocol §3.4) ----------- */

#define DC_XKEYS_MAX		64	/* temporal keys waiting per client */
#define DC_XENTRIES_MAX		256	/* cache entries waiting per client */
#define DC_XKEY_TTL_S		(7 * 86400)	/* a temporal key waits this long at most */
#define DC_XSWEEP_S		10	/* temporal keys past their time dropped every */
#define DC_XSWEEP_MAX		256	/* ... at most this many of each kind at once */
#define DC_XENTRY_TTL_MAX	(365L * 86400)	/* latest expiry of a cache entry */
#define DC_XWAIT_MAX		256	/* long-polls waiting at once */
#define DC_XWAIT_S_MAX		60	/* longest wait of one long-poll */
#define DC_XKEY_ID		16	/* bytes; hex on the wire */
#define DC_XTKEY_LEN		80	/* a temporal key sealed to the recipient (NTM_XTKEY_SEALED_LEN) */

/* A temporal key waiting for a client (tkey: b64 as stored). */
struct dc_tkey {
	char	key_id[2 * DC_XKEY_ID + 1];
	char	from[NTM_NAME_MAX + 1];
	char	tkey[NTM_B64_LEN(DC_XTKEY_LEN)];	/* opaque to the DC */
	int64_t	created, expires;
};

/* A cache entry: an object at a CS waiting for a client. */
struct dc_entry {
	int64_t	id;
	char	kind[8];			/* "key" or "data" */
	char	from[NTM_NAME_MAX + 1];
	char	cs[NTM_PUSH_URL_MAX + 1];
	char	sha256[65];
	int64_t	size;
	char	app[65], service[65], item[129], notify[513];
	int64_t	created, expires;
};

/* xdb.c. Each returns 0 or NTM_ERR_*; puts fail with NTM_ERR_NOSPACE when
 * the client's queue is full and NTM_ERR_EXISTS for a duplicate. */
int  dc_db_tkey_put(sqlite3 *db, int64_t client_id, const struct dc_tkey *k, int64_t now);
int  dc_db_tkeys(sqlite3 *db, int64_t client_id, int64_t now,
    int (*fn)(const struct dc_tkey *k, void *arg), void *arg);
int  dc_db_tkey_get(sqlite3 *db, int64_t client_id, const char *key_id, int64_t now,
    struct dc_tkey *k);
int  dc_db_tkey_del(sqlite3 *db, int64_t client_id, const char *key_id);
/*
 * A temporal key lives as long as its exchange: once the sender's CS
 * announced the key object (a cache entry of kind "key" from the same
 * sender whose item is the key id), until that entry's expires; with no
 * such entry, xkey_orphan_s from its arrival. Drops up to DC_XSWEEP_MAX
 * keys past their expiry and as many orphans (created at or before
 * orphan_before with no live key entry): 0 with the counts, or an error.
 */
int  dc_db_tkeys_sweep(sqlite3 *db, int64_t now, int64_t orphan_before, int64_t *expired,
    int64_t *orphaned);
/* Temporal keys waiting (not expired) for all clients. */
int  dc_db_tkeys_waiting(sqlite3 *db, int64_t now, int64_t *out);
/* The sweep every DC_XSWEEP_S from start to stop (stop: NULL-safe), and
 * its counters as JSON (new): waiting, expired, orphaned. */
int  dc_xsweep_start(struct dc *dc, char *err, size_t errlen);
void dc_xsweep_stop(struct dc *dc);
json_t *dc_xsweep_stats(struct dc *dc);
/* Sets e->id. */
int  dc_db_entry_put(sqlite3 *db, int64_t client_id, struct dc_entry *e, int64_t now);
/* from NULL: every sender. */
int  dc_db_entries(sqlite3 *db, int64_t client_id, const char *from, int64_t now,
    int (*fn)(const struct dc_entry *e, void *arg), void *arg);
int  dc_db_entry_count(sqlite3 *db, int64_t client_id, int64_t now, int64_t *out);
/* The same for n clients at once (out[i] for client_ids[i]), in one read
 * transaction with one statement. */
int  dc_db_entry_counts(sqlite3 *db, const int64_t *client_ids, size_t n, int64_t now,
    int64_t *out);
int  dc_db_entry_del(sqlite3 *db, int64_t client_id, int64_t id);

/* exchange.c: the routes of the exchange; dc_exchange_init makes their state. */
extern const struct ntm_http_route dc_exchange_routes[];
int  dc_exchange_init(struct dc *dc, char *err, size_t errlen);
/* Answers the long-polls and fan-outs still waiting (at shutdown). */
void dc_exchange_free(struct dc *dc);
/* Its hooks: a client back online is NUDGEd if entries wait. */
extern const struct dc_hooks dc_exchange_hooks;
/* Counters as JSON (new). */
json_t *dc_exchange_stats(struct dc *dc);

/* ended.c: tokens that ended here (logout, a newer login of the device) are
 * told to the AS, durably, so that the CSs refuse them too. */
int  dc_ended_start(struct dc *dc, char *err, size_t errlen);
/* Sends what is due now (after a logout or login). */
void dc_ended_kick(struct dc *dc);
void dc_ended_stop(struct dc *dc);
/* {"waiting", "sent", "failed_tries"} (new). */
json_t *dc_ended_stats(struct dc *dc);

/* client.c - the "client" subcommand; in the daemon, every few seconds:
 * sessions of clients deleted by another process end, and (hourly) devices
 * unseen for client_idle_days are reclaimed. */
extern const struct cmd_entry dc_client_entry;
void dc_client_tick(struct dc *dc);
/* From now on, changes to the database by other processes are noticed. */
void dc_client_watch(struct dc *dc);

#endif
