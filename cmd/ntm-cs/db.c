/*
 * db.c - the CS's metadata: committed objects and their destinations,
 * unfinished uploads, and the token revocations pushed by the AS. The bytes
 * themselves are files (store.c); a row exists only for a file that is
 * complete, hashed and durable.
 */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "cs.h"

static const char *const migrations[] = {
	/* 1: objects, destinations, uploads, revocations */
	"CREATE TABLE objects ("
	"  sha256 TEXT PRIMARY KEY,"
	"  user TEXT NOT NULL, dc TEXT NOT NULL, from_fqdn TEXT NOT NULL,"
	"  size INTEGER NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL,"
	"  app TEXT NOT NULL, service TEXT NOT NULL, item TEXT NOT NULL,"
	"  notify TEXT NOT NULL);"
	"CREATE INDEX objects_owner ON objects (user, dc);"
	"CREATE INDEX objects_expires ON objects (expires);"
	"CREATE TABLE dests ("
	"  sha256 TEXT NOT NULL REFERENCES objects(sha256) ON DELETE CASCADE,"
	"  fqdn TEXT NOT NULL,"
	"  delivered INTEGER,"
	"  PRIMARY KEY (sha256, fqdn));"
	"CREATE TABLE uploads ("
	"  id TEXT PRIMARY KEY,"
	"  user TEXT NOT NULL, dc TEXT NOT NULL, from_fqdn TEXT NOT NULL,"
	"  size INTEGER NOT NULL, ttl INTEGER NOT NULL,"
	"  created INTEGER NOT NULL, touched INTEGER NOT NULL,"
	"  app TEXT NOT NULL, service TEXT NOT NULL, item TEXT NOT NULL,"
	"  notify TEXT NOT NULL, dests TEXT NOT NULL);"
	"CREATE INDEX uploads_owner ON uploads (user, dc);"
	"CREATE TABLE revoked_tokens ("
	"  id TEXT PRIMARY KEY, until INTEGER NOT NULL);"
	"CREATE TABLE revoked_accounts ("
	"  user TEXT NOT NULL, dc TEXT NOT NULL, before INTEGER NOT NULL,"
	"  PRIMARY KEY (user, dc));",
	/* 2: the CS announces each object to its recipients' DCs (announce.c):
	 * per destination, when its DC took it, or gave it up for good, and
	 * the retry state. Objects stored before were announced by their
	 * senders. */
	"ALTER TABLE objects ADD COLUMN kind TEXT NOT NULL DEFAULT 'data';"
	"ALTER TABLE uploads ADD COLUMN kind TEXT NOT NULL DEFAULT 'data';"
	"ALTER TABLE dests ADD COLUMN announced INTEGER;"
	"ALTER TABLE dests ADD COLUMN failed INTEGER;"
	"ALTER TABLE dests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE dests ADD COLUMN next_try INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE dests ADD COLUMN error_code TEXT;"
	"ALTER TABLE dests ADD COLUMN error_message TEXT;"
	"UPDATE dests SET announced = (SELECT created FROM objects o "
	"  WHERE o.sha256 = dests.sha256);"
	"CREATE INDEX dests_due ON dests (next_try) "
	"  WHERE announced IS NULL AND failed IS NULL;",
};

int
cs_db_open(const char *path, sqlite3 **db, char *err, size_t errlen)
{
	int e;

	e = ntm_db_open(path, migrations, (int)(sizeof(migrations) / sizeof(migrations[0])), db);
	if (e < 0) {
		snprintf(err, errlen, "db %s: %s", path,
		    e == NTM_ERR_VERSION ? "made by a newer ntm-cs" : ntm_strerror(e));
		*db = NULL;
		return e;
	}
	return 0;
}

/* Statements follow lib/io/db.c's rule: whoever prepares one finalizes it. */

/* Bytes held: committed objects plus the declared size of open uploads. */
int
cs_db_used(sqlite3 *db, const char *user, const char *dc, int64_t *used)
{
	return ntm_db_int(db, used, "SELECT (SELECT COALESCE(SUM(size), 0) FROM objects "
	    "WHERE user = ?1 AND dc = ?2) + (SELECT COALESCE(SUM(size), 0) FROM uploads "
	    "WHERE user = ?1 AND dc = ?2)", "ss", user, dc);
}

int
cs_db_uploads_of(sqlite3 *db, const char *user, const char *dc, int64_t *n)
{
	return ntm_db_int(db, n, "SELECT COUNT(*) FROM uploads WHERE user = ?1 AND dc = ?2",
	    "ss", user, dc);
}

int
cs_db_has_obj(sqlite3 *db, const char *sha256)
{
	int64_t n = 0;

	return ntm_db_int(db, &n, "SELECT COUNT(*) FROM objects WHERE sha256 = ?1", "s",
	    sha256) == 0 && n > 0;
}

int
cs_db_has_upload(sqlite3 *db, const char *id)
{
	int64_t n = 0;

	return ntm_db_int(db, &n, "SELECT COUNT(*) FROM uploads WHERE id = ?1", "s",
	    id) == 0 && n > 0;
}

/* ---- uploads ------------------------------------------------------------- */

#define UP_COLS "id, user, dc, from_fqdn, size, ttl, created, touched, app, service, " \
		"item, notify, dests, kind"

/*
 * A write not waited for on disk (synchronous = NORMAL for it): the WAL is
 * written in order, so the next fsynced write makes it durable; a process
 * that dies loses nothing, a power cut may lose it. For rows whose loss
 * the protocol already allows for (§7.6).
 */
static int
lazy_begin(sqlite3 *db)
{
	return ntm_db_exec(db, "PRAGMA synchronous = NORMAL");
}

static int
lazy_end(sqlite3 *db, int ret)
{
	if (ntm_db_exec(db, "PRAGMA synchronous = FULL") < 0 && ret >= 0)
		ret = NTM_ERR_DB;
	return ret;
}

/* A new upload: after a power cut it may be gone, as its chunks may be
 * (a chunk's answer says nothing about durability; the commit does). */
int
cs_db_upload_add(sqlite3 *db, const struct cs_up *u)
{
	int ret;

	if ((ret = lazy_begin(db)) < 0)
		return ret;
	ret = ntm_db_run(db, "INSERT INTO uploads (" UP_COLS ") VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)", "ssssIIIIssssss",
	    u->id, u->user, u->dc, u->from, u->size, u->ttl, u->created, u->touched,
	    u->app, u->service, u->item, u->notify, u->dests, u->kind);
	return lazy_end(db, ret);
}

int
cs_db_upload_get(sqlite3 *db, const char *id, struct cs_up *u)
{
	sqlite3_stmt *st;
	int ret;

	memset(u, 0, sizeof(*u));
	if ((ret = ntm_db_query(db, &st, "SELECT " UP_COLS " FROM uploads WHERE id = ?1",
	    "s", id)) < 0)
		return ret;
	if ((ret = ntm_db_row(db, st)) == 0) {
		ntm_db_col(u->id, sizeof(u->id), st, 0);
		ntm_db_col(u->user, sizeof(u->user), st, 1);
		ntm_db_col(u->dc, sizeof(u->dc), st, 2);
		ntm_db_col(u->from, sizeof(u->from), st, 3);
		u->size = sqlite3_column_int64(st, 4);
		u->ttl = sqlite3_column_int64(st, 5);
		u->created = sqlite3_column_int64(st, 6);
		u->touched = sqlite3_column_int64(st, 7);
		ntm_db_col(u->app, sizeof(u->app), st, 8);
		ntm_db_col(u->service, sizeof(u->service), st, 9);
		ntm_db_col(u->item, sizeof(u->item), st, 10);
		ntm_db_col(u->notify, sizeof(u->notify), st, 11);
		u->dests = xstrdup((const char *)sqlite3_column_text(st, 12));
		ntm_db_col(u->kind, sizeof(u->kind), st, 13);
	}
	sqlite3_finalize(st);
	return ret;
}

/* Lazy: a touch lost to a power cut lets the collector take the upload
 * that much earlier, which a client resuming already allows for (§7.6). */
int
cs_db_upload_touch(sqlite3 *db, const char *id, int64_t now)
{
	int ret;

	if ((ret = lazy_begin(db)) < 0)
		return ret;
	ret = ntm_db_run(db, "UPDATE uploads SET touched = ?2 WHERE id = ?1", "sI", id, now);
	return lazy_end(db, ret);
}

int
cs_db_upload_del(sqlite3 *db, const char *id)
{
	return ntm_db_run(db, "DELETE FROM uploads WHERE id = ?1", "s", id);
}

/* ---- objects ------------------------------------------------------------- */

static int
commit_rows(sqlite3 *db, const struct cs_up *u, const char *sha256, int64_t now)
{
	int ret;

	if ((ret = ntm_db_run(db, "INSERT INTO objects (sha256, user, dc, from_fqdn, "
	    "size, created, expires, app, service, item, notify, kind) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", "ssssIIIsssss",
	    sha256, u->user, u->dc, u->from, u->size, now, now + u->ttl, u->app,
	    u->service, u->item, u->notify, u->kind)) < 0)
		return ret;
	/* The destinations were validated into a JSON array of names. */
	if ((ret = ntm_db_run(db, "INSERT INTO dests (sha256, fqdn) "
	    "SELECT ?1, value FROM json_each(?2)", "ss", sha256, u->dests)) < 0)
		return ret;
	return cs_db_upload_del(db, u->id);
}

int
cs_db_commit(sqlite3 *db, const struct cs_up *u, const char *sha256, int64_t now)
{
	int ret;

	if ((ret = ntm_db_begin(db)) < 0)
		return ret;
	return ntm_db_end(db, commit_rows(db, u, sha256, now));
}

int
cs_db_obj_get(sqlite3 *db, const char *sha256, struct cs_obj *o)
{
	sqlite3_stmt *st;
	int ret;

	memset(o, 0, sizeof(*o));
	if ((ret = ntm_db_query(db, &st, "SELECT sha256, user, dc, from_fqdn, size, created, "
	    "expires, app, service, item, notify, kind FROM objects WHERE sha256 = ?1", "s",
	    sha256)) < 0)
		return ret;
	if ((ret = ntm_db_row(db, st)) == 0) {
		ntm_db_col(o->sha256, sizeof(o->sha256), st, 0);
		ntm_db_col(o->user, sizeof(o->user), st, 1);
		ntm_db_col(o->dc, sizeof(o->dc), st, 2);
		ntm_db_col(o->from, sizeof(o->from), st, 3);
		o->size = sqlite3_column_int64(st, 4);
		o->created = sqlite3_column_int64(st, 5);
		o->expires = sqlite3_column_int64(st, 6);
		ntm_db_col(o->app, sizeof(o->app), st, 7);
		ntm_db_col(o->service, sizeof(o->service), st, 8);
		ntm_db_col(o->item, sizeof(o->item), st, 9);
		ntm_db_col(o->notify, sizeof(o->notify), st, 10);
		ntm_db_col(o->kind, sizeof(o->kind), st, 11);
	}
	sqlite3_finalize(st);
	return ret;
}

int
cs_db_obj_del(sqlite3 *db, const char *sha256)
{
	return ntm_db_run(db, "DELETE FROM objects WHERE sha256 = ?1", "s", sha256);
}

int
cs_db_dests(sqlite3 *db, const char *sha256, int (*fn)(const struct cs_dest *d, void *arg),
    void *arg)
{
	sqlite3_stmt *st;
	struct cs_dest d;
	int rc, ret;

	if ((ret = ntm_db_query(db, &st, "SELECT fqdn, COALESCE(delivered, 0), "
	    "COALESCE(announced, 0), COALESCE(failed, 0), attempts, error_code, "
	    "error_message FROM dests WHERE sha256 = ?1 ORDER BY fqdn", "s", sha256)) < 0)
		return ret;
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW) {
		d.fqdn = (const char *)sqlite3_column_text(st, 0);
		d.delivered = sqlite3_column_int64(st, 1);
		d.announced = sqlite3_column_int64(st, 2);
		d.failed = sqlite3_column_int64(st, 3);
		d.attempts = sqlite3_column_int(st, 4);
		d.code = (const char *)sqlite3_column_text(st, 5);
		d.message = (const char *)sqlite3_column_text(st, 6);
		if ((ret = fn(&d, arg)) < 0)
			break;
	}
	sqlite3_finalize(st);
	return ret < 0 ? ret : rc;
}

int
cs_db_due(sqlite3 *db, int64_t now, int max,
    int (*fn)(const char *sha256, const char *fqdn, int attempts, void *arg), void *arg)
{
	sqlite3_stmt *st;
	int rc, ret, n = 0;

	if ((ret = ntm_db_query(db, &st, "SELECT d.sha256, d.fqdn, d.attempts FROM dests d "
	    "JOIN objects o ON o.sha256 = d.sha256 WHERE d.announced IS NULL AND "
	    "d.failed IS NULL AND d.next_try <= ?1 AND o.expires > ?1 "
	    "ORDER BY d.next_try LIMIT ?2", "Ii", now, max)) < 0)
		return ret;
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW) {
		if ((ret = fn((const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1), sqlite3_column_int(st, 2),
		    arg)) < 0)
			break;
		n++;
	}
	sqlite3_finalize(st);
	if (ret < 0)
		return ret;
	return rc == 0 ? n : rc;
}

int
cs_db_announced(sqlite3 *db, const char *sha256, const char *fqdn, enum cs_ann_result r,
    int64_t when, const char *code, const char *message)
{
	int ret;

	/* ANNOUNCED: when = now; FAILED: when = now; RETRY: when = next try. */
	if (r == CS_ANN_OK) {
		/*
		 * Not waited for on disk (the sender's meta long-poll waits for
		 * it): at the latest the recipient's confirm makes it durable,
		 * and a mark a power cut takes first only means one
		 * announcement more.
		 */
		if ((ret = lazy_begin(db)) < 0)
			return ret;
		ret = ntm_db_run(db, "UPDATE dests SET announced = ?3, attempts = attempts + 1, "
		    "error_code = NULL, error_message = NULL WHERE sha256 = ?1 AND fqdn = ?2",
		    "ssI", sha256, fqdn, when);
		return lazy_end(db, ret);
	}
	return ntm_db_run(db, r == CS_ANN_FAILED ?
	    "UPDATE dests SET failed = ?3, attempts = attempts + 1, error_code = ?4, "
	    "error_message = ?5 WHERE sha256 = ?1 AND fqdn = ?2" :
	    "UPDATE dests SET next_try = ?3, attempts = attempts + 1, error_code = ?4, "
	    "error_message = ?5 WHERE sha256 = ?1 AND fqdn = ?2", "ssIss", sha256, fqdn,
	    when, code, message);
}

/* The first delivery time is kept when a recipient confirms twice. */
int
cs_db_deliver(sqlite3 *db, const char *sha256, const char *fqdn, int64_t now)
{
	return ntm_db_run(db, "UPDATE dests SET delivered = COALESCE(delivered, ?3) "
	    "WHERE sha256 = ?1 AND fqdn = ?2", "ssI", sha256, fqdn, now);
}

/* ---- revocations --------------------------------------------------------- */

int
cs_db_revoke_token(sqlite3 *db, const char *id_b64, int64_t until)
{
	return ntm_db_run(db, "INSERT INTO revoked_tokens (id, until) VALUES (?1, ?2) "
	    "ON CONFLICT (id) DO UPDATE SET until = MAX(until, excluded.until)", "sI",
	    id_b64, until);
}

int
cs_db_revoke_account(sqlite3 *db, const char *user, const char *dc, int64_t before)
{
	return ntm_db_run(db, "INSERT INTO revoked_accounts (user, dc, before) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT (user, dc) DO UPDATE SET "
	    "before = MAX(before, excluded.before)", "ssI", user, dc, before);
}

int
cs_db_revoked(sqlite3 *db, const char *id_b64, const char *user, const char *dc,
    int64_t issued)
{
	int64_t n = 0, before = 0;
	int ret;

	if ((ret = ntm_db_int(db, &n, "SELECT COUNT(*) FROM revoked_tokens WHERE id = ?1",
	    "s", id_b64)) < 0)
		return ret;
	if (n > 0)
		return NTM_ERR_REVOKED;
	ret = ntm_db_int(db, &before, "SELECT before FROM revoked_accounts WHERE user = ?1 "
	    "AND dc = ?2", "ss", user, dc);
	if (ret == NTM_ERR_NOTFOUND)
		return 0;
	if (ret < 0)
		return ret;
	return issued <= before ? NTM_ERR_REVOKED : 0;
}

int
cs_db_forget_revoked(sqlite3 *db, int64_t now)
{
	return ntm_db_run(db, "DELETE FROM revoked_tokens WHERE until < ?1", "I", now);
}

/* ---- garbage ------------------------------------------------------------- */

static int
collect_text(sqlite3 *db, const char *sql, int64_t t, char *out, size_t width, int max)
{
	sqlite3_stmt *st;
	int ret, n = 0;

	if ((ret = ntm_db_query(db, &st, sql, "Ii", t, max)) < 0)
		return ret;
	while (n < max && ntm_db_step(db, st) == NTM_DB_ROW)
		ntm_db_col(out + (size_t)n++ * width, width, st, 0);
	sqlite3_finalize(st);
	return n;
}

int
cs_db_expired(sqlite3 *db, int64_t now, char (*out)[CS_HEX_HASH + 1], int max)
{
	return collect_text(db, "SELECT sha256 FROM objects WHERE expires <= ?1 LIMIT ?2",
	    now, out[0], CS_HEX_HASH + 1, max);
}

int
cs_db_idle_uploads(sqlite3 *db, int64_t before, char (*out)[CS_HEX_ID + 1], int max)
{
	return collect_text(db, "SELECT id FROM uploads WHERE touched <= ?1 LIMIT ?2",
	    before, out[0], CS_HEX_ID + 1, max);
}

int
cs_db_untried(sqlite3 *db, const char *sha256)
{
	int64_t n = 0;
	int ret;

	if ((ret = ntm_db_int(db, &n, "SELECT count(*) FROM dests WHERE sha256 = ?1 AND "
	    "announced IS NULL AND failed IS NULL AND delivered IS NULL AND attempts = 0",
	    "s", sha256)) < 0)
		return ret == NTM_ERR_NOTFOUND ? NTM_ERR_DB : ret;
	return (int)n;
}
