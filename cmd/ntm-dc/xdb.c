/*
 * xdb.c - the DC's storage for the non-real-time path (docs/protocol.md
 * §3.4): temporal keys and cache entries waiting for one of its clients.
 * Nothing expired is ever listed: cache entries are deleted by every read;
 * temporal keys, which live as long as their exchange (the key object's
 * cache entry), or xkey_orphan_s when none comes, by a sweep that counts
 * them (dc_xsweep_start).
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <sqlite3.h>

#include "dc.h"

/* ---- temporal keys ---------------------------------------------------------- */

/* Deletes client_id's expired rows of table (a name of ours, never input)
 * when purge is set, and counts the rest: NTM_ERR_NOSPACE when it holds
 * max already. */
static int
room_for_one(sqlite3 *db, const char *table, int64_t client_id, int64_t now, int64_t max,
    int purge)
{
	char del[128], count[128];
	int64_t n = 0;
	int ret;

	snprintf(del, sizeof(del), "DELETE FROM %s WHERE client_id = ?1 AND "
	    "expires <= ?2", table);
	snprintf(count, sizeof(count), "SELECT count(*) FROM %s WHERE client_id = ?1 AND "
	    "expires > ?2", table);
	if ((purge && (ret = ntm_db_run(db, del, "II", client_id, now)) < 0) ||
	    (ret = ntm_db_int(db, &n, count, "II", client_id, now)) < 0)
		return ret;
	return n >= max ? NTM_ERR_NOSPACE : 0;
}

/* The cache entry of the key object of temporal key key_id from sender:
 * the exchange the key belongs to. */
#define KEY_ENTRY "kind = 'key' AND item = ?2 AND sender = ?3"

int
dc_db_tkey_put(sqlite3 *db, int64_t client_id, const struct dc_tkey *k, int64_t now)
{
	int64_t expires = k->expires;
	int ret;

	/* Expired keys are left to the sweep, which counts them. */
	if ((ret = room_for_one(db, "temporal_keys", client_id, now, DC_XKEYS_MAX, 0)) < 0)
		return ret;
	/* Its key object announced first: it lives as long as that. */
	if ((ret = ntm_db_int(db, &expires, "SELECT max(expires) FROM cache_entries WHERE "
	    "client_id = ?1 AND " KEY_ENTRY " AND expires > ?4 HAVING count(*) > 0",
	    "IssI", client_id, k->key_id, k->from, now)) < 0 && ret != NTM_ERR_NOTFOUND)
		return ret;
	return ntm_db_run(db, "INSERT INTO temporal_keys (client_id, key_id, sender, "
	    "tkey, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", "IsssII", client_id,
	    k->key_id, k->from, k->tkey, k->created, expires);
}

#define TKEY_COLS "key_id, sender, tkey, created, expires"

static void
read_tkey(sqlite3_stmt *st, struct dc_tkey *k)
{
	ntm_db_col(k->key_id, sizeof(k->key_id), st, 0);
	ntm_db_col(k->from, sizeof(k->from), st, 1);
	ntm_db_col(k->tkey, sizeof(k->tkey), st, 2);
	k->created = sqlite3_column_int64(st, 3);
	k->expires = sqlite3_column_int64(st, 4);
}

int
dc_db_tkeys(sqlite3 *db, int64_t client_id, int64_t now,
    int (*fn)(const struct dc_tkey *k, void *arg), void *arg)
{
	sqlite3_stmt *st;
	struct dc_tkey k;
	int ret, rc;

	if ((ret = ntm_db_query(db, &st, "SELECT " TKEY_COLS " FROM temporal_keys "
	    "WHERE client_id = ?1 AND expires > ?2 ORDER BY id", "II", client_id, now)) < 0)
		return ret;
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW) {
		read_tkey(st, &k);
		ret = fn(&k, arg);
		ntm_wipe(&k, sizeof(k));
		if (ret < 0)
			break;
	}
	sqlite3_finalize(st);
	return ret < 0 ? ret : rc;
}

int
dc_db_tkey_get(sqlite3 *db, int64_t client_id, const char *key_id, int64_t now,
    struct dc_tkey *k)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = ntm_db_query(db, &st, "SELECT " TKEY_COLS " FROM temporal_keys "
	    "WHERE client_id = ?1 AND key_id = ?2 AND expires > ?3", "IsI", client_id,
	    key_id, now)) < 0)
		return ret;
	if ((ret = ntm_db_row(db, st)) == 0)
		read_tkey(st, k);
	sqlite3_finalize(st);
	return ret;
}

int
dc_db_tkey_del(sqlite3 *db, int64_t client_id, const char *key_id)
{
	int ret = ntm_db_run(db, "DELETE FROM temporal_keys WHERE client_id = ?1 "
	    "AND key_id = ?2", "Is", client_id, key_id);

	return ret == 0 && sqlite3_changes(db) == 0 ? NTM_ERR_NOTFOUND : ret;
}

/* ---- cache entries ---------------------------------------------------------- */

int
dc_db_entry_put(sqlite3 *db, int64_t client_id, struct dc_entry *e, int64_t now)
{
	int ret;

	if ((ret = room_for_one(db, "cache_entries", client_id, now, DC_XENTRIES_MAX, 1)) < 0)
		return ret;
	if ((ret = ntm_db_run(db, "INSERT INTO cache_entries (client_id, kind, sender, cs, "
	    "sha256, size, app, service, item, notify, created, expires) VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", "IssssIssssII",
	    client_id, e->kind, e->from, e->cs, e->sha256, e->size, e->app, e->service,
	    e->item, e->notify, e->created, e->expires)) < 0)
		return ret;
	e->id = sqlite3_last_insert_rowid(db);
	/* A key object: its temporal key now lives as long as it does. */
	if (strcmp(e->kind, "key") == 0)
		ret = ntm_db_run(db, "UPDATE temporal_keys SET expires = ?4 WHERE "
		    "client_id = ?1 AND key_id = ?2 AND sender = ?3", "IssI", client_id,
		    e->item, e->from, e->expires);
	return ret;
}

int
dc_db_entries(sqlite3 *db, int64_t client_id, const char *from, int64_t now,
    int (*fn)(const struct dc_entry *e, void *arg), void *arg)
{
	sqlite3_stmt *st;
	struct dc_entry e;
	int ret, rc;

	if ((ret = ntm_db_run(db, "DELETE FROM cache_entries WHERE client_id = ?1 AND "
	    "expires <= ?2", "II", client_id, now)) < 0 ||
	    (ret = ntm_db_query(db, &st, "SELECT id, kind, sender, cs, sha256, size, app, "
	    "service, item, notify, created, expires FROM cache_entries WHERE client_id = ?1 "
	    "AND (?2 IS NULL OR sender = ?2) ORDER BY id", "Is", client_id, from)) < 0)
		return ret;
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW) {
		e.id = sqlite3_column_int64(st, 0);
		ntm_db_col(e.kind, sizeof(e.kind), st, 1);
		ntm_db_col(e.from, sizeof(e.from), st, 2);
		ntm_db_col(e.cs, sizeof(e.cs), st, 3);
		ntm_db_col(e.sha256, sizeof(e.sha256), st, 4);
		e.size = sqlite3_column_int64(st, 5);
		ntm_db_col(e.app, sizeof(e.app), st, 6);
		ntm_db_col(e.service, sizeof(e.service), st, 7);
		ntm_db_col(e.item, sizeof(e.item), st, 8);
		ntm_db_col(e.notify, sizeof(e.notify), st, 9);
		e.created = sqlite3_column_int64(st, 10);
		e.expires = sqlite3_column_int64(st, 11);
		if ((ret = fn(&e, arg)) < 0)
			break;
	}
	sqlite3_finalize(st);
	return ret < 0 ? ret : rc;
}

int
dc_db_entry_count(sqlite3 *db, int64_t client_id, int64_t now, int64_t *out)
{
	return ntm_db_int(db, out, "SELECT count(*) FROM cache_entries WHERE client_id = ?1 "
	    "AND expires > ?2", "II", client_id, now);
}

int
dc_db_entry_counts(sqlite3 *db, const int64_t *client_ids, size_t n, int64_t now,
    int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int ret;

	/* A plain (deferred) BEGIN: one read transaction for the lot, which
	 * takes the database's locks once, never the write lock. */
	if ((ret = ntm_db_exec(db, "BEGIN")) < 0)
		return ret;
	ret = ntm_db_prepare(db, &st, "SELECT count(*) FROM cache_entries WHERE "
	    "client_id = ?1 AND expires > ?2");
	for (size_t i = 0; ret == 0 && i < n; i++) {
		sqlite3_reset(st);
		if (sqlite3_bind_int64(st, 1, client_ids[i]) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 2, now) != SQLITE_OK)
			ret = NTM_ERR_DB;
		else if ((ret = ntm_db_row(db, st)) == 0)
			out[i] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (ntm_db_exec(db, "COMMIT") < 0) {
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		if (ret == 0)
			ret = NTM_ERR_DB;
	}
	return ret;
}

int
dc_db_entry_del(sqlite3 *db, int64_t client_id, int64_t id)
{
	int ret = ntm_db_run(db, "DELETE FROM cache_entries WHERE client_id = ?1 "
	    "AND id = ?2", "II", client_id, id);

	return ret == 0 && sqlite3_changes(db) == 0 ? NTM_ERR_NOTFOUND : ret;
}

/* ---- the sweep ---------------------------------------------------------------- */

int
dc_db_tkeys_sweep(sqlite3 *db, int64_t now, int64_t orphan_before, int64_t *expired,
    int64_t *orphaned)
{
	int ret;

	*expired = *orphaned = 0;
	if ((ret = ntm_db_run(db, "DELETE FROM temporal_keys WHERE id IN (SELECT id FROM "
	    "temporal_keys WHERE expires <= ?1 LIMIT ?2)", "II", now,
	    (int64_t)DC_XSWEEP_MAX)) < 0)
		return ret;
	*expired = sqlite3_changes(db);
	if ((ret = ntm_db_run(db, "DELETE FROM temporal_keys WHERE id IN (SELECT t.id FROM "
	    "temporal_keys t WHERE t.created <= ?1 AND NOT EXISTS (SELECT 1 FROM "
	    "cache_entries e WHERE e.client_id = t.client_id AND e.kind = 'key' AND "
	    "e.item = t.key_id AND e.sender = t.sender AND e.expires > ?2) LIMIT ?3)", "III",
	    orphan_before, now, (int64_t)DC_XSWEEP_MAX)) < 0)
		return ret;
	*orphaned = sqlite3_changes(db);
	return 0;
}

int
dc_db_tkeys_waiting(sqlite3 *db, int64_t now, int64_t *out)
{
	return ntm_db_int(db, out, "SELECT count(*) FROM temporal_keys WHERE expires > ?1",
	    "I", now);
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct dc *dc = arg;
	struct dc_xsweep *x = &dc->xsweep;
	int64_t now = now_unix(), expired, orphaned;
	int r;

	/* Another process holding the database puts the sweep off to its
	 * next round; the loop does not wait for it. */
	ntm_db_nowait(dc->db, 1);
	r = dc_db_tkeys_sweep(dc->db, now, now - dc->srv->conf.xkey_orphan_s, &expired,
	    &orphaned);
	ntm_db_nowait(dc->db, 0);
	if (r < 0) {
		if (ntm_db_busy(dc->db))
			log_debug("temporal keys: the database is busy, swept next round");
		else
			log_warnx("temporal keys: cannot drop those past their exchange");
		return;
	}
	x->expired += (uint64_t)expired;
	x->orphaned += (uint64_t)orphaned;
	if (orphaned > 0)
		log_info("temporal keys: dropped %lld with no key object after %ld s "
		    "(xkey_orphan_s)", (long long)orphaned, dc->srv->conf.xkey_orphan_s);
	(void)dc_db_tkeys_waiting(dc->db, now, &x->waiting);
}

int
dc_xsweep_start(struct dc *dc, char *err, size_t errlen)
{
	struct timeval tv = { DC_XSWEEP_S, 0 };

	if (dc->srv->check_only)
		return 0;
	if ((dc->xsweep.ev = event_new(dc->srv->base, -1, EV_PERSIST, on_sweep, dc)) == NULL ||
	    event_add(dc->xsweep.ev, &tv) < 0) {
		snprintf(err, errlen, "cannot start the temporal key sweep");
		return -1;
	}
	(void)dc_db_tkeys_waiting(dc->db, now_unix(), &dc->xsweep.waiting);
	return 0;
}

void
dc_xsweep_stop(struct dc *dc)
{
	if (dc->xsweep.ev)
		event_free(dc->xsweep.ev);
	dc->xsweep.ev = NULL;
}

json_t *
dc_xsweep_stats(struct dc *dc)
{
	const struct dc_xsweep *x = &dc->xsweep;

	return json_pack("{s:I, s:I, s:I}", "waiting", (json_int_t)x->waiting, "expired",
	    (json_int_t)x->expired, "orphaned", (json_int_t)x->orphaned);
}
