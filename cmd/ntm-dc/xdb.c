/*
 * xdb.c - the DC's storage for the non-real-time path (docs/protocol.md
 * §3.4): temporal keys and cache entries waiting for one of its clients.
 * Expired rows are deleted by every read, so nothing stale is ever listed.
 */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "dc.h"

/* ---- temporal keys ---------------------------------------------------------- */

/* Deletes client_id's expired rows of table (a name of ours, never input)
 * and counts the rest: NTM_ERR_NOSPACE when it holds max already. */
static int
room_for_one(sqlite3 *db, const char *table, int64_t client_id, int64_t now, int64_t max)
{
	char purge[128], count[128];
	int64_t n = 0;
	int ret;

	snprintf(purge, sizeof(purge), "DELETE FROM %s WHERE client_id = ?1 AND "
	    "expires <= ?2", table);
	snprintf(count, sizeof(count), "SELECT count(*) FROM %s WHERE client_id = ?1 AND "
	    "expires > ?2", table);
	if ((ret = ntm_db_run(db, purge, "II", client_id, now)) < 0 ||
	    (ret = ntm_db_int(db, &n, count, "II", client_id, now)) < 0)
		return ret;
	return n >= max ? NTM_ERR_NOSPACE : 0;
}

int
dc_db_tkey_put(sqlite3 *db, int64_t client_id, const struct dc_tkey *k, int64_t now)
{
	int ret;

	if ((ret = room_for_one(db, "temporal_keys", client_id, now, DC_XKEYS_MAX)) < 0)
		return ret;
	return ntm_db_run(db, "INSERT INTO temporal_keys (client_id, key_id, sender, "
	    "tkey, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", "IsssII", client_id,
	    k->key_id, k->from, k->tkey, k->created, k->expires);
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

	if ((ret = ntm_db_run(db, "DELETE FROM temporal_keys WHERE client_id = ?1 AND "
	    "expires <= ?2", "II", client_id, now)) < 0 ||
	    (ret = ntm_db_query(db, &st, "SELECT " TKEY_COLS " FROM temporal_keys "
	    "WHERE client_id = ?1 ORDER BY id", "I", client_id)) < 0)
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

	if ((ret = room_for_one(db, "cache_entries", client_id, now, DC_XENTRIES_MAX)) < 0)
		return ret;
	if ((ret = ntm_db_run(db, "INSERT INTO cache_entries (client_id, kind, sender, cs, "
	    "sha256, size, app, service, item, notify, created, expires) VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", "IssssIssssII",
	    client_id, e->kind, e->from, e->cs, e->sha256, e->size, e->app, e->service,
	    e->item, e->notify, e->created, e->expires)) == 0)
		e->id = sqlite3_last_insert_rowid(db);
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
dc_db_entry_del(sqlite3 *db, int64_t client_id, int64_t id)
{
	int ret = ntm_db_run(db, "DELETE FROM cache_entries WHERE client_id = ?1 "
	    "AND id = ?2", "II", client_id, id);

	return ret == 0 && sqlite3_changes(db) == 0 ? NTM_ERR_NOTFOUND : ret;
}
