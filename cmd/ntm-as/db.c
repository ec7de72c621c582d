/*
 * db.c - the AS database: users, server certificates, issued tokens,
 * device certificates.
 *
 * One list of migrations and one set of queries for both backends, in the
 * common dialect of store.c ("user" quoted: PostgreSQL reserves the word).
 * The schema is versioned by the store (user_version, or ntm_schema);
 * append a migration to change it, never edit one that has shipped (what
 * the braces stand for on SQLite is what those migrations always said).
 */
#include <string.h>

#include "ntm-as.h"

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE users ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  pwhash TEXT NOT NULL,"
	"  locked {int} NOT NULL DEFAULT 0,"
	"  created {int} NOT NULL,"
	"  updated {int} NOT NULL"
	");"
	"CREATE TABLE servers ("
	"  serial {serial},"
	"  role TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  pubkey TEXT NOT NULL,"
	"  not_before {int} NOT NULL,"
	"  not_after {int} NOT NULL,"
	"  revoked_at {int},"
	"  created {int} NOT NULL"
	");"
	"CREATE TABLE tokens ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  \"user\" TEXT NOT NULL,"
	"  device TEXT NOT NULL,"
	"  dc TEXT NOT NULL,"
	"  issued {int} NOT NULL,"
	"  expires {int} NOT NULL"
	");"
	"CREATE INDEX tokens_user ON tokens(\"user\");",
	/* 2: account revocations waiting to be pushed to the CS (push.c) */
	"CREATE TABLE revocations ("
	"  id {rowid},"
	"  \"user\" TEXT NOT NULL,"
	"  dc TEXT NOT NULL,"
	"  before {int} NOT NULL,"
	"  created {int} NOT NULL,"
	"  pushed {int}"
	");",
	/* 3: one token revoked (a logout at its DC): token_id set, before = the
	 * token's expiry (push.c) */
	"ALTER TABLE revocations ADD COLUMN token_id TEXT;",
	/* 4: one cursor per CS, the highest revocation id it answered 200 for
	 * (push.c); revocations.pushed is no longer used. What the one cs_url
	 * of before was sent (the prefix of the ids marked pushed) becomes the
	 * cursor of cs '', handed over by the daemon's next start. */
	"CREATE TABLE push_cursor ("
	"  cs TEXT PRIMARY KEY NOT NULL,"
	"  last_id {int} NOT NULL"
	");"
	"INSERT INTO push_cursor (cs, last_id) SELECT '', COALESCE("
	"  (SELECT MIN(id) FROM revocations WHERE pushed IS NULL) - 1, MAX(id)) "
	"  FROM revocations HAVING COUNT(*) > 0;",
	/* 5: device certificates issued (serial), and the first binding of
	 * each FQDN to a user's device, which no later one may change */
	"CREATE TABLE IF NOT EXISTS devices ("
	"  serial {serial},"
	"  fqdn TEXT NOT NULL,"
	"  \"user\" TEXT NOT NULL,"
	"  device TEXT NOT NULL,"
	"  dc TEXT NOT NULL,"
	"  pubkey TEXT NOT NULL,"
	"  not_before {int} NOT NULL,"
	"  not_after {int} NOT NULL,"
	"  created {int} NOT NULL"
	");"
	"CREATE INDEX IF NOT EXISTS devices_fqdn ON devices(fqdn);",
	/* 6: the device key a sealed login carried, per token (b64; no row:
	 * not sealed): the only key POST /v1/as/device certifies for it */
	"CREATE TABLE IF NOT EXISTS token_keys ("
	"  token_id TEXT PRIMARY KEY NOT NULL,"
	"  device_key TEXT NOT NULL"
	");",
	/* 7: a server certificate revoked (`server revoke`): serial set, dc =
	 * the server's name, user '' (push.c) */
	"ALTER TABLE revocations ADD COLUMN serial {int};",
	/* 8: the account's `updated` when a device certificate was issued: a
	 * renewal without the password (serve.c) needs it unchanged since */
	"ALTER TABLE devices ADD COLUMN account_updated {int};",
	/* 9: a device revoked (`device revoke`): it renews no more */
	"ALTER TABLE devices ADD COLUMN revoked_at {int};",
	/* 10: failed logins per user name, when several AS share the store
	 * (serve.c; a single AS on SQLite keeps them in memory): last_ms is
	 * wall-clock milliseconds */
	"CREATE TABLE IF NOT EXISTS login_fails ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  fails {int} NOT NULL,"
	"  last_ms {int} NOT NULL"
	");",
};

int
as_db_open(const struct srv_conf *conf, int create, struct as_store **db)
{
	return as_store_open(conf->database, conf->db, migrations,
	    (int)(sizeof(migrations) / sizeof(migrations[0])), create, db);
}

const char *
as_db_errmsg(const struct as_store *db)
{
	return as_store_errmsg(db);
}

const char *
as_db_where(const struct srv_conf *conf)
{
	return as_store_is_pg(conf->database) ? "postgresql" : conf->db;
}

static void
row_user(const struct as_rows *r, struct as_user *u)
{
	memset(u, 0, sizeof(*u));
	as_rows_col(u->name, sizeof(u->name), r, 0);
	as_rows_col(u->pwhash, sizeof(u->pwhash), r, 1);
	u->locked = as_rows_int(r, 2) != 0;
	u->created = as_rows_int(r, 3);
	u->updated = as_rows_int(r, 4);
}

int
as_db_user_get(struct as_store *db, const char *name, struct as_user *u)
{
	struct as_rows *r;
	int ret;

	if ((ret = as_sql_query(db, &r, "SELECT name, pwhash, locked, created, updated "
	    "FROM users WHERE name = ?1", "s", name)) < 0)
		return ret;
	if ((ret = as_rows_one(r)) == 0)
		row_user(r, u);
	as_rows_free(r);
	return ret;
}

/* 0, or the error of a statement that changes rows. */
static int
done(int ret)
{
	return ret < 0 ? ret : 0;
}

int
as_db_user_add(struct as_store *db, const char *name, const char *pwhash, int64_t now)
{
	return done(as_sql_run(db, "INSERT INTO users (name, pwhash, locked, created, "
	    "updated) VALUES (?1, ?2, 0, ?3, ?3)", "ssI", name, pwhash, now));
}

/* The result of an UPDATE/DELETE of one row: NOTFOUND if no row changed. */
static int
changed_one(int ret)
{
	return ret == 0 ? NTM_ERR_NOTFOUND : done(ret);
}

int
as_db_user_del(struct as_store *db, const char *name)
{
	int ret;

	if ((ret = as_sql_begin(db)) < 0)
		return ret;
	ret = done(as_sql_run(db, "DELETE FROM tokens WHERE \"user\" = ?1", "s", name));
	if (ret == 0)
		ret = changed_one(as_sql_run(db, "DELETE FROM users WHERE name = ?1", "s", name));
	return as_sql_end(db, ret);
}

int
as_db_user_set_pw(struct as_store *db, const char *name, const char *pwhash, int64_t now)
{
	/* `updated` only grows, by 1 at least: it versions the account (a
	 * renewal without the password needs it unchanged, serve.c). */
	return changed_one(as_sql_run(db, "UPDATE users SET pwhash = ?2, "
	    "updated = {greatest}(?3, updated + 1) "
	    "WHERE name = ?1", "ssI", name, pwhash, now));
}

int
as_db_user_set_locked(struct as_store *db, const char *name, int locked, int64_t now)
{
	return changed_one(as_sql_run(db, "UPDATE users SET locked = ?2, "
	    "updated = {greatest}(?3, updated + 1) "
	    "WHERE name = ?1", "sII", name, (int64_t)(locked ? 1 : 0), now));
}

int
as_db_user_each(struct as_store *db, int (*fn)(const struct as_user *, void *), void *arg)
{
	struct as_user u;
	struct as_rows *r;
	int rc, ret;

	if ((ret = as_sql_query(db, &r, "SELECT name, pwhash, locked, created, updated "
	    "FROM users ORDER BY name", NULL)) < 0)
		return ret;
	while ((rc = as_rows_next(r)) == NTM_DB_ROW) {
		row_user(r, &u);
		ret = fn(&u, arg);
		ntm_wipe(u.pwhash, sizeof(u.pwhash));
		if (ret != 0)
			break;
	}
	if (rc < 0)
		ret = rc;
	as_rows_free(r);
	return ret;
}

/* A row of servers into s; NTM_ERR_DB if the stored key or role is bad. */
static int
row_server(const struct as_rows *r, struct as_server *s)
{
	char role[8], key[NTM_B64_LEN(NTM_SIGN_PK) + 8];

	memset(s, 0, sizeof(*s));
	s->serial = as_rows_int(r, 0);
	as_rows_col(role, sizeof(role), r, 1);
	as_rows_col(s->name, sizeof(s->name), r, 2);
	as_rows_col(key, sizeof(key), r, 3);
	s->not_before = as_rows_int(r, 4);
	s->not_after = as_rows_int(r, 5);
	s->revoked_at = as_rows_null(r, 6) ? 0 : as_rows_int(r, 6);
	s->created = as_rows_int(r, 7);
	if ((s->role = ntm_role_parse(role)) < 0 ||
	    ntm_b64_decode_exact(s->pk, sizeof(s->pk), key) < 0) {
		ntm_log(NTM_LOG_WARN, "server serial %lld: bad role or key in the database",
		    (long long)s->serial);
		return NTM_ERR_DB;
	}
	return 0;
}

#define SERVER_COLS "serial, role, name, pubkey, not_before, not_after, revoked_at, created"

int
as_db_server_add(struct as_store *db, struct as_server *s)
{
	char key[NTM_B64_LEN(NTM_SIGN_PK)];

	if (ntm_b64_encode(key, sizeof(key), s->pk, sizeof(s->pk)) < 0)
		return NTM_ERR_INVAL;
	return as_sql_int(db, &s->serial, "INSERT INTO servers (role, name, pubkey, "
	    "not_before, not_after, revoked_at, created) VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6) "
	    "RETURNING serial", "sssIII", ntm_role_name(s->role), s->name, key, s->not_before,
	    s->not_after, s->created);
}

int
as_db_server_get(struct as_store *db, int64_t serial, struct as_server *s)
{
	struct as_rows *r;
	int ret;

	if ((ret = as_sql_query(db, &r, "SELECT " SERVER_COLS " FROM servers "
	    "WHERE serial = ?1", "I", serial)) < 0)
		return ret;
	if ((ret = as_rows_one(r)) == 0)
		ret = row_server(r, s);
	as_rows_free(r);
	return ret;
}

int
as_db_server_renew(struct as_store *db, int64_t serial, int64_t not_before, int64_t not_after)
{
	/* Never for a revoked one: the caller checked, and so does this. */
	return changed_one(as_sql_run(db, "UPDATE servers SET not_before = ?2, "
	    "not_after = {greatest}(not_after, ?3) WHERE serial = ?1 AND revoked_at IS NULL",
	    "III", serial, not_before, not_after));
}

int
as_db_server_revoke(struct as_store *db, int64_t serial, int64_t now)
{
	struct as_server sv;
	int ret;

	if ((ret = as_sql_begin(db)) < 0)
		return ret;
	/* Revoking twice keeps the first revocation time, and pushes it to
	 * every server again (each keeps it once). */
	if ((ret = as_db_server_get(db, serial, &sv)) == 0 &&
	    (ret = changed_one(as_sql_run(db, "UPDATE servers SET revoked_at = "
	    "COALESCE(revoked_at, ?2) WHERE serial = ?1", "II", serial, now))) == 0)
		ret = as_revoke_queue_server(db, serial, sv.name, now);
	return as_sql_end(db, ret);
}

int
as_db_server_each(struct as_store *db, int (*fn)(const struct as_server *, void *), void *arg)
{
	struct as_server s;
	struct as_rows *r;
	int rc, ret;

	if ((ret = as_sql_query(db, &r, "SELECT " SERVER_COLS " FROM servers ORDER BY serial",
	    NULL)) < 0)
		return ret;
	while ((rc = as_rows_next(r)) == NTM_DB_ROW) {
		if ((ret = row_server(r, &s)) < 0 || (ret = fn(&s, arg)) != 0)
			break;
	}
	if (ret == 0 && rc < 0)
		ret = rc;
	as_rows_free(r);
	return ret;
}

int
as_db_token_add(struct as_store *db, const struct ntm_token *t)
{
	char id[NTM_TOKEN_ID * 2 + 1];

	if (ntm_hex_encode(id, sizeof(id), t->id, sizeof(t->id)) < 0)
		return NTM_ERR_INVAL;
	return done(as_sql_run(db, "INSERT INTO tokens (id, \"user\", device, dc, issued, "
	    "expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", "ssssII", id, t->user, t->device, t->dc,
	    t->issued, t->expires));
}

int
as_db_token_live(struct as_store *db, const struct ntm_token *t, int64_t now)
{
	char id[NTM_TOKEN_ID * 2 + 1];
	int64_t n;
	int ret;

	if (ntm_hex_encode(id, sizeof(id), t->id, sizeof(t->id)) < 0)
		return NTM_ERR_INVAL;
	if ((ret = as_sql_int(db, &n, "SELECT COUNT(*) FROM tokens t WHERE t.id = ?1 AND "
	    "t.\"user\" = ?2 AND t.device = ?3 AND t.dc = ?4 AND t.expires >= ?5 AND NOT EXISTS "
	    "(SELECT 1 FROM revocations r WHERE r.token_id = ?1) AND NOT EXISTS "
	    "(SELECT 1 FROM revocations r WHERE r.token_id IS NULL AND r.\"user\" = t.\"user\" "
	    "AND r.dc = t.dc AND r.before > t.issued)", "ssssI", id, t->user, t->device, t->dc,
	    now)) < 0)
		return ret;
	return n > 0 ? 0 : NTM_ERR_REVOKED;
}

int
as_db_device_add(struct as_store *db, struct ntm_dcert *c, const char *dc, const char *pk_b64,
    int64_t now)
{
	int64_t other, serial = 0;
	int ret;

	if ((ret = as_sql_begin(db)) < 0)
		return ret;
	/* A name stays with its user; it may move to another device of the
	 * same user (the DC deleted the old one: ntm-dc client del, or
	 * client_idle_days), which that user's own login proved. */
	if ((ret = as_sql_int(db, &other, "SELECT COUNT(*) FROM devices WHERE fqdn = ?1 AND "
	    "\"user\" != ?2", "ss", c->fqdn, c->user)) == 0 && other > 0)
		ret = NTM_ERR_EXISTS;
	if (ret == 0 && (ret = as_sql_int(db, &serial, "INSERT INTO devices (fqdn, \"user\", "
	    "device, dc, pubkey, not_before, not_after, created, account_updated) VALUES (?1, "
	    "?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT updated FROM users WHERE name = ?2)) "
	    "RETURNING serial", "sssssIII", c->fqdn, c->user, c->device, dc, pk_b64,
	    c->not_before, c->not_after, now)) == 0)
		c->serial = (uint64_t)serial;
	return as_sql_end(db, ret);
}

int
as_db_device_last(struct as_store *db, const char *user, const char *device, const char *dc,
    const char *pk_b64, int64_t *not_before, int64_t *not_after, int64_t *account_updated)
{
	struct as_rows *r;
	int ret;

	if ((ret = as_sql_query(db, &r, "SELECT not_before, not_after, CASE WHEN revoked_at "
	    "IS NULL THEN account_updated ELSE -2 END FROM devices WHERE "
	    "\"user\" = ?1 AND device = ?2 AND dc = ?3 AND pubkey = ?4 ORDER BY serial DESC "
	    "LIMIT 1", "ssss", user, device, dc, pk_b64)) < 0)
		return ret;
	if ((ret = as_rows_one(r)) == 0) {
		*not_before = as_rows_int(r, 0);
		*not_after = as_rows_int(r, 1);
		*account_updated = as_rows_null(r, 2) ? -1 : as_rows_int(r, 2);
	}
	as_rows_free(r);
	return ret;
}

int
as_db_device_revoke(struct as_store *db, const char *fqdn, int64_t now)
{
	int64_t n = 0;
	int ret;

	if ((ret = as_sql_begin(db)) < 0)
		return ret;
	if ((ret = as_sql_int(db, &n, "SELECT COUNT(*) FROM devices WHERE fqdn = ?1", "s",
	    fqdn)) == 0 && n == 0)
		ret = NTM_ERR_NOTFOUND;
	/* Its live tokens, for the servers (as at a logout: one entry each). */
	if (ret == 0 && (ret = as_sql_run(db, "INSERT INTO revocations (\"user\", dc, before, "
	    "created, token_id) SELECT DISTINCT t.\"user\", t.dc, t.expires, ?2, t.id FROM "
	    "tokens t JOIN devices d ON d.\"user\" = t.\"user\" AND d.device = t.device AND "
	    "d.dc = t.dc WHERE d.fqdn = ?1 AND t.expires > ?2", "sI", fqdn, now)) >= 0) {
		n = ret;
		ret = 0;
	}
	if (ret == 0)
		ret = done(as_sql_run(db, "UPDATE devices SET revoked_at = COALESCE(revoked_at, "
		    "?2) WHERE fqdn = ?1", "sI", fqdn, now));
	if ((ret = as_sql_end(db, ret)) < 0)
		return ret;
	return (int)n;
}

int
as_db_token_set_key(struct as_store *db, const struct ntm_token *t, const char *key)
{
	char id[NTM_TOKEN_ID * 2 + 1];

	if (ntm_hex_encode(id, sizeof(id), t->id, sizeof(t->id)) < 0)
		return NTM_ERR_INVAL;
	return done(as_sql_run(db, "INSERT INTO token_keys (token_id, device_key) "
	    "VALUES (?1, ?2) ON CONFLICT (token_id) DO UPDATE SET device_key = "
	    "excluded.device_key", "ss", id, key));
}

int
as_db_token_key(struct as_store *db, const struct ntm_token *t, char *out, size_t cap)
{
	char id[NTM_TOKEN_ID * 2 + 1];
	struct as_rows *r;
	int ret;

	out[0] = '\0';
	if (ntm_hex_encode(id, sizeof(id), t->id, sizeof(t->id)) < 0)
		return NTM_ERR_INVAL;
	if ((ret = as_sql_query(db, &r, "SELECT device_key FROM token_keys WHERE "
	    "token_id = ?1", "s", id)) < 0)
		return ret;
	if ((ret = as_rows_one(r)) == 0)
		as_rows_col(out, cap, r, 0);
	as_rows_free(r);
	return ret == NTM_ERR_NOTFOUND ? 0 : ret;
}

int
as_db_fails_get(struct as_store *db, const char *name, int64_t *fails, int64_t *last_ms)
{
	struct as_rows *r;
	int ret;

	if ((ret = as_sql_query(db, &r, "SELECT fails, last_ms FROM login_fails WHERE "
	    "name = ?1", "s", name)) < 0)
		return ret;
	if ((ret = as_rows_one(r)) == 0) {
		*fails = as_rows_int(r, 0);
		*last_ms = as_rows_int(r, 1);
	}
	as_rows_free(r);
	return ret;
}

int
as_db_fails_add(struct as_store *db, const char *name, int64_t now_ms, int64_t forget_ms)
{
	/* One statement: two AS counting the same name at once both count. */
	return done(as_sql_run(db, "INSERT INTO login_fails (name, fails, last_ms) VALUES "
	    "(?1, 1, ?2) ON CONFLICT (name) DO UPDATE SET fails = CASE WHEN ?2 - "
	    "login_fails.last_ms > ?3 THEN 1 ELSE login_fails.fails + 1 END, last_ms = ?2",
	    "sII", name, now_ms, forget_ms));
}

int
as_db_fails_clear(struct as_store *db, const char *name)
{
	return done(as_sql_run(db, "DELETE FROM login_fails WHERE name = ?1", "s", name));
}

int
as_db_fails_sweep(struct as_store *db, int64_t before_ms)
{
	return done(as_sql_run(db, "DELETE FROM login_fails WHERE last_ms < ?1", "I",
	    before_ms));
}

int
as_db_cs_names(struct as_store *db, int64_t now, char names[][NTM_NAME_MAX + 1], int max)
{
	struct as_rows *r;
	int ret, n = 0;

	if ((ret = as_sql_query(db, &r, "SELECT DISTINCT name FROM servers WHERE role = 'cs' "
	    "AND revoked_at IS NULL AND not_before <= ?1 AND not_after > ?1 ORDER BY name "
	    "LIMIT ?2", "Ii", now, max)) < 0)
		return ret;
	while (n < max && (ret = as_rows_next(r)) == NTM_DB_ROW)
		as_rows_col(names[n++], NTM_NAME_MAX + 1, r, 0);
	as_rows_free(r);
	return ret < 0 ? ret : n;
}
