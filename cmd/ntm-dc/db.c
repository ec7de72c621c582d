/*
 * db.c - the DC's storage: client devices with their FQDN and stable
 * virtual address pair, one login session per device, and the location
 * (or two: one per address family) it last registered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "dc.h"

static const char *const migrations[] = {
	/* 1: clients and sessions */
	"CREATE TABLE clients ("
	"  id INTEGER PRIMARY KEY,"
	"  user TEXT NOT NULL,"
	"  device TEXT NOT NULL,"
	"  fqdn TEXT NOT NULL UNIQUE,"
	"  host INTEGER NOT NULL UNIQUE,"
	"  vip4 TEXT NOT NULL UNIQUE,"
	"  vip6 TEXT NOT NULL UNIQUE,"
	"  created INTEGER NOT NULL,"
	"  last_login INTEGER NOT NULL,"
	"  UNIQUE (user, device));"
	"CREATE TABLE sessions ("
	"  client_id INTEGER PRIMARY KEY REFERENCES clients(id) ON DELETE CASCADE,"
	"  session_id TEXT NOT NULL UNIQUE,"
	"  token_id TEXT NOT NULL,"
	"  rx TEXT NOT NULL,"
	"  tx TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  ended INTEGER);"
	"CREATE INDEX sessions_token ON sessions (token_id);",
	/* 2: the last UDP registration of each client */
	"CREATE TABLE locations ("
	"  client_id INTEGER PRIMARY KEY REFERENCES clients(id) ON DELETE CASCADE,"
	"  reflexive TEXT NOT NULL,"
	"  locals TEXT NOT NULL,"
	"  natted INTEGER NOT NULL,"
	"  agent INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL);",
	/* 3: the push webhook URL a device gave at its last login (NULL: none) */
	"ALTER TABLE clients ADD COLUMN push TEXT;",
	/* 4: the non-real-time path: temporal keys and cache entries waiting
	 * for a client (exchange.c, xdb.c) */
	"CREATE TABLE temporal_keys ("
	"  id INTEGER PRIMARY KEY,"
	"  client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,"
	"  key_id TEXT NOT NULL,"
	"  sender TEXT NOT NULL,"
	"  tkey TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  UNIQUE (client_id, key_id));"
	"CREATE TABLE cache_entries ("
	"  id INTEGER PRIMARY KEY,"
	"  client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,"
	"  kind TEXT NOT NULL,"
	"  sender TEXT NOT NULL,"
	"  cs TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  app TEXT NOT NULL, service TEXT NOT NULL, item TEXT NOT NULL, notify TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  UNIQUE (client_id, sha256));",
	/* 5: the exchange key (X25519 public key, b64) a device gave at its last
	 * login, to which senders seal temporal keys (NULL: none) */
	"ALTER TABLE clients ADD COLUMN xkey TEXT;",
	/* 6: tokens that ended here (logout, or a newer login of the device),
	 * until the AS took their revocation (ended.c) */
	"CREATE TABLE ended_tokens ("
	"  token_id TEXT PRIMARY KEY,"
	"  expires INTEGER NOT NULL,"
	"  tries INTEGER NOT NULL DEFAULT 0,"
	"  next_try INTEGER NOT NULL DEFAULT 0);",
	/* 7: the device said it goes offline (its agent stopped, REG_REQ
	 * flag offline): the location is its last, not a live one */
	"ALTER TABLE locations ADD COLUMN offline INTEGER NOT NULL DEFAULT 0;",
	/* 8: the device certificate the AS issued at the last login (b64,
	 * NULL: none), carried to the device's peers in their directions */
	"ALTER TABLE clients ADD COLUMN device_cert TEXT;",
	/* 9: the NAT kind the device found with reflection probes (enum
	 * ntm_nat, 0: unknown) and sent in its registration */
	"ALTER TABLE locations ADD COLUMN nat INTEGER NOT NULL DEFAULT 0;",
	/* 10: clients deleted so far (by any process): the running DC looks
	 * for sessions of deleted clients only when this moved, not whenever
	 * another connection (its own location writer) committed */
	"CREATE TABLE client_deletions (id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  n INTEGER NOT NULL);"
	"INSERT INTO client_deletions VALUES (1, 0);"
	"CREATE TRIGGER clients_deleted AFTER DELETE ON clients BEGIN"
	"  UPDATE client_deletions SET n = n + 1 WHERE id = 1; END;",
	/* 11: the filtering the device found (enum ntm_filter, 0: unknown)
	 * and sent in its registration */
	"ALTER TABLE locations ADD COLUMN filter INTEGER NOT NULL DEFAULT 0;",
	/* 12: the location of the device's second address family (REG_REQ
	 * flag also, docs/protocol.md §4.2), of the login session that
	 * registered it: a restarted DC knows both families at once */
	"CREATE TABLE locations_also ("
	"  client_id INTEGER PRIMARY KEY REFERENCES clients(id) ON DELETE CASCADE,"
	"  session_id TEXT NOT NULL,"
	"  reflexive TEXT NOT NULL,"
	"  locals TEXT NOT NULL,"
	"  natted INTEGER NOT NULL,"
	"  nat INTEGER NOT NULL,"
	"  filter INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL);",
};

int
dc_db_open(const char *path, sqlite3 **db, char *err, size_t errlen)
{
	int e;

	e = ntm_db_open(path, migrations, (int)(sizeof(migrations) / sizeof(migrations[0])), db);
	if (e < 0) {
		snprintf(err, errlen, "db %s: %s", path,
		    e == NTM_ERR_VERSION ? "made by a newer ntm-dc" : ntm_strerror(e));
		*db = NULL;
		return e;
	}
	return 0;
}

#define CLIENT_COLS "c.id, c.user, c.device, c.fqdn, c.host, c.vip4, c.vip6, " \
		    "c.created, c.last_login"

/* Reads CLIENT_COLS starting at column 0. */
static void
read_client(sqlite3_stmt *st, struct dc_client *c)
{
	c->id = sqlite3_column_int64(st, 0);
	ntm_db_col(c->user, sizeof(c->user), st, 1);
	ntm_db_col(c->device, sizeof(c->device), st, 2);
	ntm_db_col(c->fqdn, sizeof(c->fqdn), st, 3);
	c->host = sqlite3_column_int64(st, 4);
	ntm_db_col(c->vip4, sizeof(c->vip4), st, 5);
	ntm_db_col(c->vip6, sizeof(c->vip6), st, 6);
	c->created = sqlite3_column_int64(st, 7);
	c->last_login = sqlite3_column_int64(st, 8);
}

static int
find_client(sqlite3 *db, const char *user, const char *device, struct dc_client *c)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = ntm_db_query(db, &st, "SELECT " CLIENT_COLS " FROM clients c "
	    "WHERE c.user = ?1 AND c.device = ?2", "ss", user, device)) < 0)
		return ret;
	if ((ret = ntm_db_row(db, st)) == 0)
		read_client(st, c);
	sqlite3_finalize(st);
	return ret;
}

/*
 * A new device of user: the first gets user.domain, the N-th user-N.domain.
 * Names taken by someone else (user "bob-2" vs bob's second device) are
 * skipped, so the name is always unique.
 */
static int
new_client(sqlite3 *db, const struct ntm_prefix *p4, const struct ntm_prefix *p6,
    const char *domain, const char *user, const char *device, int64_t now,
    struct dc_client *c)
{
	int64_t ndev, n, taken, host;
	int ret;

	memset(c, 0, sizeof(*c));
	if ((ret = ntm_db_int(db, &ndev, "SELECT COUNT(*) FROM clients WHERE user = ?1",
	    "s", user)) < 0)
		return ret;
	for (n = ndev + 1; ; n++) {
		if (n == 1)
			ret = snprintf(c->fqdn, sizeof(c->fqdn), "%s.%s", user, domain);
		else
			ret = snprintf(c->fqdn, sizeof(c->fqdn), "%s-%lld.%s", user,
			    (long long)n, domain);
		if (ret < 0 || (size_t)ret >= sizeof(c->fqdn))
			return NTM_ERR_NOSPACE;
		if ((ret = ntm_db_int(db, &taken, "SELECT COUNT(*) FROM clients "
		    "WHERE fqdn = ?1", "s", c->fqdn)) < 0)
			return ret;
		if (taken == 0)
			break;
	}
	/* Clients are never deleted yet, so the next number is the first free. */
	if ((ret = ntm_db_int(db, &host, "SELECT COALESCE(MAX(host), 1) + 1 FROM clients",
	    NULL)) < 0)
		return ret;
	if (host < DC_FIRST_HOST)
		host = DC_FIRST_HOST;
	if ((ret = ntm_prefix_host(p4, (uint64_t)host, c->vip4, sizeof(c->vip4))) < 0 ||
	    (ret = ntm_prefix_host(p6, (uint64_t)host, c->vip6, sizeof(c->vip6))) < 0)
		return ret;

	if ((ret = ntm_db_run(db, "INSERT INTO clients (user, device, fqdn, host, vip4, "
	    "vip6, created, last_login) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)", "sssIssI",
	    user, device, c->fqdn, host, c->vip4, c->vip6, now)) < 0)
		return ret;
	c->id = sqlite3_last_insert_rowid(db);
	snprintf(c->user, sizeof(c->user), "%s", user);
	snprintf(c->device, sizeof(c->device), "%s", device);
	c->host = host;
	c->created = c->last_login = now;
	return 0;
}

static int
store_session(sqlite3 *db, int64_t client_id, const struct dc_session *s)
{
	return ntm_db_run(db, "INSERT OR REPLACE INTO sessions (client_id, "
	    "session_id, token_id, rx, tx, created, expires, ended) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)", "IssssII", client_id,
	    s->session_id, s->token_id, s->rx, s->tx, s->created, s->expires);
}

static long max_devices;	/* per user; 0: no cap */

void
dc_db_set_max_devices(long n)
{
	max_devices = n;
}

/* A new device of user: NTM_ERR_TOOBIG when user has max_devices already. */
static int
device_allowed(sqlite3 *db, const char *user)
{
	int64_t n = 0;
	int ret;

	if (max_devices <= 0)
		return 0;
	if ((ret = ntm_db_int(db, &n, "SELECT count(*) FROM clients WHERE user = ?1", "s",
	    user)) < 0)
		return ret;
	return n >= max_devices ? NTM_ERR_TOOBIG : 0;
}

int
dc_db_login(sqlite3 *db, const struct ntm_prefix *p4, const struct ntm_prefix *p6,
    const char *domain, const char *user, const char *device, const char *push,
    const char *xkey, const struct dc_session *sess, int64_t now, struct dc_client *out)
{
	int ret;

	if ((ret = ntm_db_begin(db)) < 0)
		return ret;
	ret = find_client(db, user, device, out);
	if (ret == NTM_ERR_NOTFOUND && (ret = device_allowed(db, user)) == 0)
		ret = new_client(db, p4, p6, domain, user, device, now, out);
	/* Every login states the push URL and exchange key afresh: none given
	 * clears them. */
	if (ret == 0 && (ret = ntm_db_run(db, "UPDATE clients SET last_login = ?1, "
	    "push = ?2, xkey = ?4 WHERE id = ?3", "IsIs", now, push, out->id, xkey)) == 0)
		out->last_login = now;
	/* The session it replaces ends: its token is to be revoked at the CS. */
	if (ret == 0)
		ret = ntm_db_run(db, "INSERT OR IGNORE INTO ended_tokens "
		    "(token_id, expires) SELECT token_id, expires FROM sessions "
		    "WHERE client_id = ?1 AND ended IS NULL AND expires > ?2 "
		    "AND token_id != ?3", "IIs", out->id, now, sess->token_id);
	if (ret == 0)
		ret = store_session(db, out->id, sess);
	/* The new session has registered nothing yet (its first location
	 * stays, as the device's last one, for the admin's list). */
	if (ret == 0)
		ret = ntm_db_run(db, "DELETE FROM locations_also WHERE client_id = ?1", "I",
		    out->id);
	return ntm_db_end(db, ret);
}

#define SESSION_COLS CLIENT_COLS ", s.session_id, s.token_id, s.rx, s.tx, s.created, s.expires"

/* Reads the session columns that follow CLIENT_COLS in SESSION_COLS. */
static void
read_session(sqlite3_stmt *st, struct dc_session *sess)
{
	ntm_db_col(sess->session_id, sizeof(sess->session_id), st, 9);
	ntm_db_col(sess->token_id, sizeof(sess->token_id), st, 10);
	ntm_db_col(sess->rx, sizeof(sess->rx), st, 11);
	ntm_db_col(sess->tx, sizeof(sess->tx), st, 12);
	sess->created = sqlite3_column_int64(st, 13);
	sess->expires = sqlite3_column_int64(st, 14);
}

int
dc_db_session(sqlite3 *db, const char *token_id, const char *user,
    const char *device, int64_t now, struct dc_client *cl, struct dc_session *sess)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = ntm_db_query(db, &st, "SELECT " SESSION_COLS " FROM sessions s "
	    "JOIN clients c ON c.id = s.client_id "
	    "WHERE s.token_id = ?1 AND c.user = ?2 AND c.device = ?3 "
	    "AND s.ended IS NULL AND s.expires > ?4", "sssI", token_id, user, device,
	    now)) < 0)
		return ret;
	if ((ret = ntm_db_row(db, st)) == 0) {
		read_client(st, cl);
		read_session(st, sess);
	}
	sqlite3_finalize(st);
	return ret;
}

int
dc_db_logout(sqlite3 *db, const char *token_id, int64_t now)
{
	int ret;

	if ((ret = ntm_db_begin(db)) < 0)
		return ret;
	/* In the same transaction: the AS is to hear of it (ended.c). */
	ret = ntm_db_run(db, "INSERT OR IGNORE INTO ended_tokens "
	    "(token_id, expires) SELECT token_id, expires FROM sessions "
	    "WHERE token_id = ?2 AND ended IS NULL AND expires > ?1", "Is", now, token_id);
	/* Its second location goes with the session, as in the DC's memory. */
	if (ret == 0)
		ret = ntm_db_run(db, "DELETE FROM locations_also WHERE client_id IN "
		    "(SELECT client_id FROM sessions WHERE token_id = ?1 AND ended IS NULL)",
		    "s", token_id);
	if (ret == 0)
		ret = ntm_db_run(db, "UPDATE sessions SET ended = ?1 "
		    "WHERE token_id = ?2 AND ended IS NULL", "Is", now, token_id);
	return ntm_db_end(db, ret);
}

/* Deletes client ids matching where (SQL on clients c, ?1 = now, ?2 = arg)
 * with everything of theirs; their live sessions' tokens go to ended_tokens
 * (the AS hears of it, as at logout). *n: how many. */
static int
clients_delete(sqlite3 *db, const char *where, int64_t now, const char *arg, int64_t iarg,
    int *n)
{
	char sql[1024];
	int ret;

	*n = 0;
	if ((ret = ntm_db_begin(db)) < 0)
		return ret;
	snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO ended_tokens (token_id, expires) "
	    "SELECT s.token_id, s.expires FROM sessions s JOIN clients c ON c.id = s.client_id "
	    "WHERE s.ended IS NULL AND s.expires > ?1 AND (%s)", where);
	ret = arg ? ntm_db_run(db, sql, "Is", now, arg) : ntm_db_run(db, sql, "II", now, iarg);
	if (ret == 0) {
		snprintf(sql, sizeof(sql), "DELETE FROM clients AS c WHERE (%s) AND ?1 = ?1",
		    where);
		ret = arg ? ntm_db_run(db, sql, "Is", now, arg) : ntm_db_run(db, sql, "II",
		    now, iarg);
		if (ret == 0)
			*n = sqlite3_changes(db);
	}
	return ntm_db_end(db, ret);
}

int
dc_db_client_del(sqlite3 *db, const char *fqdn, int64_t now)
{
	int n, ret;

	if ((ret = clients_delete(db, "c.fqdn = ?2", now, fqdn, 0, &n)) < 0)
		return ret;
	return n ? 0 : NTM_ERR_NOTFOUND;
}

int
dc_db_clients_reclaim(sqlite3 *db, int64_t before, int64_t now, int *n)
{
	/* Not logged in since before, not registered since before, and no
	 * session that is still good. */
	return clients_delete(db, "c.last_login < ?2 AND "
	    "coalesce((SELECT l.last_seen FROM locations l WHERE l.client_id = c.id), 0) "
	    "< ?2 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.client_id = c.id AND "
	    "s.ended IS NULL AND s.expires > ?1)", now, NULL, before, n);
}

int
dc_db_client_ids(sqlite3 *db, int64_t **ids, size_t *n)
{
	sqlite3_stmt *st;
	int64_t *v = NULL, *nv;
	size_t cap = 0, k = 0;
	int rc, ret;

	*ids = NULL;
	*n = 0;
	if ((ret = ntm_db_prepare(db, &st, "SELECT id FROM clients")) < 0)
		return ret;
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW) {
		if (k == cap) {
			cap = cap ? 2 * cap : 1024;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				rc = NTM_ERR_NOMEM;
				break;
			}
			v = nv;
		}
		v[k++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*ids = v;
	*n = k;
	return 0;
}

int
dc_db_ended_due(sqlite3 *db, int64_t now, int max,
    int (*fn)(const char *token_id, int tries, void *arg), void *arg)
{
	sqlite3_stmt *st;
	int rc, ret;

	if ((ret = ntm_db_run(db, "DELETE FROM ended_tokens WHERE expires <= ?1", "I",
	    now)) < 0)
		return ret;
	if ((ret = ntm_db_query(db, &st, "SELECT token_id, tries FROM ended_tokens "
	    "WHERE next_try <= ?1 ORDER BY next_try LIMIT ?2", "Ii", now, max)) < 0)
		return ret;
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW)
		if ((ret = fn((const char *)sqlite3_column_text(st, 0),
		    sqlite3_column_int(st, 1), arg)) < 0)
			break;
	sqlite3_finalize(st);
	return ret < 0 ? ret : rc;
}

int
dc_db_ended_result(sqlite3 *db, const char *token_id, int64_t next_try)
{
	/* next_try 0: the AS took it, forget it; else try again then. */
	if (next_try)
		return ntm_db_run(db, "UPDATE ended_tokens SET tries = tries + 1, "
		    "next_try = ?2 WHERE token_id = ?1", "sI", token_id, next_try);
	return ntm_db_run(db, "DELETE FROM ended_tokens WHERE token_id = ?1", "s",
	    token_id);
}

int
dc_db_ended_count(sqlite3 *db, int64_t *n)
{
	*n = 0;
	return ntm_db_int(db, n, "SELECT count(*) FROM ended_tokens", NULL);
}

int
dc_db_clients(sqlite3 *db, int64_t now,
    int (*fn)(const struct dc_client *c, int online, void *arg), void *arg)
{
	sqlite3_stmt *st;
	struct dc_client c;
	int rc, ret;

	if ((ret = ntm_db_query(db, &st, "SELECT " CLIENT_COLS ", "
	    "(s.client_id IS NOT NULL AND s.ended IS NULL AND s.expires > ?1) "
	    "FROM clients c LEFT JOIN sessions s ON s.client_id = c.id "
	    "ORDER BY c.host", "I", now)) < 0)
		return ret;
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW) {
		read_client(st, &c);
		if ((ret = fn(&c, sqlite3_column_int(st, 9), arg)) < 0)
			break;
	}
	sqlite3_finalize(st);
	return ret < 0 ? ret : rc;
}

int
dc_db_location_store(sqlite3 *db, const struct dc_loc_row *r)
{
	return ntm_db_run(db, "INSERT OR REPLACE INTO locations (client_id, "
	    "reflexive, locals, natted, agent, last_seen, offline, nat, filter) VALUES (?1, "
	    "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", "IssiiIiii", r->client_id, r->reflexive,
	    r->locals, r->natted, r->agent, r->last_seen, r->offline, r->nat, r->filter);
}

#define LOC_INTO " INTO locations (client_id, reflexive, locals, natted, agent, " \
	"last_seen, offline, nat, filter) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"

/* The statements of one kind of rows (changes or keepalive times), each
 * prepared at its first row and bound again for each next one. */
enum { ST_LOC, ST_DROP_ALSO, ST_ALSO, ST_N };

static int
bind_loc(sqlite3_stmt *st, const struct dc_loc_row *r)
{
	return sqlite3_bind_int64(st, 1, r->client_id) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, r->reflexive, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, r->locals, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(st, 4, r->natted) != SQLITE_OK ||
	    sqlite3_bind_int(st, 5, r->agent) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, r->last_seen) != SQLITE_OK ||
	    sqlite3_bind_int(st, 7, r->offline) != SQLITE_OK ||
	    sqlite3_bind_int(st, 8, r->nat) != SQLITE_OK ||
	    sqlite3_bind_int(st, 9, r->filter) != SQLITE_OK ? NTM_ERR_DB : 0;
}

/* ?1 client, ?2 session, ?3 last_seen, ?4 reflexive; and ?5 locals,
 * ?6 natted, ?7 nat, ?8 filter where the statement has them. */
static int
bind_also(sqlite3_stmt *st, const struct dc_loc_row *r)
{
	if (sqlite3_bind_int64(st, 1, r->client_id) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, r->session_id, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, r->last_seen) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, r->reflexive, -1, SQLITE_STATIC) != SQLITE_OK)
		return NTM_ERR_DB;
	if (sqlite3_bind_parameter_count(st) < 8)
		return 0;
	return sqlite3_bind_text(st, 5, r->locals, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(st, 6, r->natted) != SQLITE_OK ||
	    sqlite3_bind_int(st, 7, r->nat) != SQLITE_OK ||
	    sqlite3_bind_int(st, 8, r->filter) != SQLITE_OK ? NTM_ERR_DB : 0;
}

/* Runs sql[kind] for r (prepared into st[kind] at first use). */
static int
row_run(sqlite3 *db, sqlite3_stmt **st, const char *const *sql, int kind,
    const struct dc_loc_row *r)
{
	int ret;

	if (st[kind] == NULL && (ret = ntm_db_prepare(db, &st[kind], sql[kind])) < 0)
		return ret;
	if (kind == ST_ALSO)
		ret = bind_also(st[kind], r);
	else if (kind == ST_DROP_ALSO)
		ret = sqlite3_bind_int64(st[kind], 1, r->client_id) != SQLITE_OK ? NTM_ERR_DB : 0;
	else
		ret = bind_loc(st[kind], r);
	if (ret == 0 && (ret = ntm_db_done(db, st[kind])) == NTM_ERR_EXISTS)
		ret = 0;
	sqlite3_reset(st[kind]);
	return ret;
}

/* The rows in order, inside the caller's transaction: a first location
 * with sql[ST_LOC] (then sql[ST_DROP_ALSO] where it drops the second one,
 * if sql has it), a second one with sql[ST_ALSO]. A row of a client
 * deleted meanwhile is left out. */
static int
locations_rows(sqlite3 *db, const char *const sql[ST_N], const struct dc_loc_row *r,
    size_t n)
{
	sqlite3_stmt *st[ST_N] = { NULL };
	int ret = 0;

	for (size_t i = 0; i < n && ret == 0; i++) {
		if (r[i].also)
			ret = row_run(db, st, sql, ST_ALSO, &r[i]);
		else if ((ret = row_run(db, st, sql, ST_LOC, &r[i])) == 0 &&
		    r[i].drop_also && sql[ST_DROP_ALSO])
			ret = row_run(db, st, sql, ST_DROP_ALSO, &r[i]);
	}
	for (int k = 0; k < ST_N; k++)
		sqlite3_finalize(st[k]);
	return ret;
}

int
dc_db_locations_write(sqlite3 *db, const struct dc_loc_row *changes, size_t n,
    const struct dc_loc_row *times, size_t nt)
{
	static const char *const change_sql[ST_N] = {
		[ST_LOC] = "INSERT OR REPLACE" LOC_INTO,
		[ST_DROP_ALSO] = "DELETE FROM locations_also WHERE client_id = ?1",
		[ST_ALSO] = "INSERT OR REPLACE INTO locations_also (client_id, session_id, "
		    "last_seen, reflexive, locals, natted, nat, filter) "
		    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	};
	/* Never over a row stored since (a change, a goodbye): only a later
	 * last_seen replaces one. A second location's time never makes a
	 * row: one dropped since stays dropped. */
	static const char *const time_sql[ST_N] = {
		[ST_LOC] = "INSERT" LOC_INTO " ON CONFLICT (client_id) DO UPDATE "
		    "SET reflexive = excluded.reflexive, locals = excluded.locals, "
		    "natted = excluded.natted, agent = excluded.agent, "
		    "last_seen = excluded.last_seen, offline = excluded.offline, "
		    "nat = excluded.nat, filter = excluded.filter "
		    "WHERE excluded.last_seen > locations.last_seen",
		[ST_ALSO] = "UPDATE locations_also SET last_seen = ?3 WHERE client_id = ?1 "
		    "AND session_id = ?2 AND reflexive = ?4 AND last_seen < ?3",
	};
	int ret;

	if (n + nt == 0)
		return 0;
	if ((ret = ntm_db_begin(db)) < 0)
		return ret;
	ret = locations_rows(db, change_sql, changes, n);
	if (ret == 0)
		ret = locations_rows(db, time_sql, times, nt);
	return ntm_db_end(db, ret);
}

int
dc_db_locations(sqlite3 *db, int (*fn)(const struct dc_loc_row *r, void *arg), void *arg)
{
	sqlite3_stmt *st;
	struct dc_loc_row r;
	int rc, ret;

	if ((ret = ntm_db_prepare(db, &st, "SELECT client_id, reflexive, locals, natted, agent, "
	    "last_seen, offline, nat, filter FROM locations ORDER BY last_seen")) < 0)
		return ret;
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW) {
		memset(&r, 0, sizeof(r));
		r.client_id = sqlite3_column_int64(st, 0);
		ntm_db_col(r.reflexive, sizeof(r.reflexive), st, 1);
		ntm_db_col(r.locals, sizeof(r.locals), st, 2);
		r.natted = sqlite3_column_int(st, 3);
		r.agent = sqlite3_column_int(st, 4);
		r.last_seen = sqlite3_column_int64(st, 5);
		r.offline = sqlite3_column_int(st, 6);
		r.nat = sqlite3_column_int(st, 7);
		r.filter = sqlite3_column_int(st, 8);
		if ((ret = fn(&r, arg)) < 0)
			break;
	}
	sqlite3_finalize(st);
	return ret < 0 ? ret : rc;
}

int
dc_db_locations_also(sqlite3 *db, int64_t now,
    int (*fn)(const struct dc_loc_row *r, void *arg), void *arg)
{
	sqlite3_stmt *st;
	struct dc_loc_row r;
	int rc, ret;

	if ((ret = ntm_db_query(db, &st, "SELECT a.client_id, a.session_id, a.reflexive, "
	    "a.locals, a.natted, a.nat, a.filter, a.last_seen FROM locations_also a "
	    "JOIN sessions s ON s.client_id = a.client_id AND s.session_id = a.session_id "
	    "WHERE s.ended IS NULL AND s.expires > ?1 ORDER BY a.last_seen", "I", now)) < 0)
		return ret;
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW) {
		memset(&r, 0, sizeof(r));
		r.also = 1;
		r.client_id = sqlite3_column_int64(st, 0);
		ntm_db_col(r.session_id, sizeof(r.session_id), st, 1);
		ntm_db_col(r.reflexive, sizeof(r.reflexive), st, 2);
		ntm_db_col(r.locals, sizeof(r.locals), st, 3);
		r.natted = sqlite3_column_int(st, 4);
		r.nat = sqlite3_column_int(st, 5);
		r.filter = sqlite3_column_int(st, 6);
		r.last_seen = sqlite3_column_int64(st, 7);
		if ((ret = fn(&r, arg)) < 0)
			break;
	}
	sqlite3_finalize(st);
	return ret < 0 ? ret : rc;
}

int
dc_db_live_sessions(sqlite3 *db, int64_t now,
    int (*fn)(const struct dc_client *c, const struct dc_session *s, void *arg), void *arg)
{
	sqlite3_stmt *st;
	struct dc_client c;
	struct dc_session sess;
	int rc, ret;

	if ((ret = ntm_db_query(db, &st, "SELECT " SESSION_COLS " FROM sessions s "
	    "JOIN clients c ON c.id = s.client_id "
	    "WHERE s.ended IS NULL AND s.expires > ?1", "I", now)) < 0)
		return ret;
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW) {
		read_client(st, &c);
		read_session(st, &sess);
		ret = fn(&c, &sess, arg);
		ntm_wipe(&sess, sizeof(sess));
		if (ret < 0)
			break;
	}
	sqlite3_finalize(st);
	return ret < 0 ? ret : rc;
}

int
dc_db_session_by_id(sqlite3 *db, const char *session_id, int64_t now,
    struct dc_client *cl, struct dc_session *sess)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = ntm_db_query(db, &st, "SELECT " SESSION_COLS " FROM sessions s "
	    "JOIN clients c ON c.id = s.client_id "
	    "WHERE s.session_id = ?1 AND s.ended IS NULL AND s.expires > ?2", "sI",
	    session_id, now)) < 0)
		return ret;
	if ((ret = ntm_db_row(db, st)) == 0) {
		read_client(st, cl);
		read_session(st, sess);
	}
	sqlite3_finalize(st);
	return ret;
}

int
dc_db_client_by_fqdn(sqlite3 *db, const char *fqdn, struct dc_client *cl)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = ntm_db_query(db, &st, "SELECT " CLIENT_COLS " FROM clients c "
	    "WHERE c.fqdn = ?1", "s", fqdn)) < 0)
		return ret;
	if ((ret = ntm_db_row(db, st)) == 0)
		read_client(st, cl);
	sqlite3_finalize(st);
	return ret;
}

/* One text column of a client ("" for NULL). */
static int
client_text(sqlite3 *db, const char *sql, int64_t client_id, char *out, size_t cap)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = ntm_db_query(db, &st, sql, "I", client_id)) < 0)
		return ret;
	if ((ret = ntm_db_row(db, st)) == 0)
		ntm_db_col(out, cap, st, 0);
	sqlite3_finalize(st);
	return ret;
}

int
dc_db_client_push(sqlite3 *db, int64_t client_id, char *out, size_t cap)
{
	return client_text(db, "SELECT push FROM clients WHERE id = ?1", client_id, out, cap);
}

int
dc_db_client_xkey(sqlite3 *db, int64_t client_id, char *out, size_t cap)
{
	return client_text(db, "SELECT xkey FROM clients WHERE id = ?1", client_id, out, cap);
}

int
dc_db_client_cert(sqlite3 *db, int64_t client_id, char *out, size_t cap)
{
	return client_text(db, "SELECT device_cert FROM clients WHERE id = ?1", client_id,
	    out, cap);
}

int
dc_db_client_deletions(sqlite3 *db, int64_t *n)
{
	*n = 0;
	return ntm_db_int(db, n, "SELECT n FROM client_deletions WHERE id = 1", NULL);
}

int
dc_db_client_set_cert(sqlite3 *db, int64_t client_id, const char *cert)
{
	return ntm_db_run(db, "UPDATE clients SET device_cert = ?2 WHERE id = ?1", "Is",
	    client_id, cert);
}
