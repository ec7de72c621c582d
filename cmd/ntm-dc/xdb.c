/*
 * xdb.c - the DC's storage for the non-real-time path (docs/protocol.md
 * §3.4): temporal keys and cache entries waiting for one of its clients.
 * Expired rows are deleted by every read, so nothing stale is ever listed.
 */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "dc.h"

/* Runs one statement binding (client_id, now); 0 or NTM_ERR_DB. */
static int
run2(sqlite3 *db, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = ntm_db_prepare(db, &st, sql)) < 0)
		return ret;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	ret = sqlite3_step(st) == SQLITE_DONE ? 0 : NTM_ERR_DB;
	sqlite3_finalize(st);
	return ret;
}

static int
count2(sqlite3 *db, const char *sql, int64_t a, int64_t b, int64_t *out)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = ntm_db_prepare(db, &st, sql)) < 0)
		return ret;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	ret = NTM_ERR_DB;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		ret = 0;
	}
	sqlite3_finalize(st);
	return ret;
}

/* ---- temporal keys ---------------------------------------------------------- */

int
dc_db_tkey_put(sqlite3 *db, int64_t client_id, const struct dc_tkey *k, int64_t now)
{
	sqlite3_stmt *st;
	int64_t n = 0;
	int ret, rc;

	if ((ret = run2(db, "DELETE FROM temporal_keys WHERE client_id = ?1 AND expires <= ?2",
	    client_id, now)) < 0 ||
	    (ret = count2(db, "SELECT count(*) FROM temporal_keys WHERE client_id = ?1 "
	    "AND expires > ?2", client_id, now, &n)) < 0)
		return ret;
	if (n >= DC_XKEYS_MAX)
		return NTM_ERR_NOSPACE;
	if ((ret = ntm_db_prepare(db, &st, "INSERT INTO temporal_keys (client_id, key_id, sender, "
	    "tkey, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")) < 0)
		return ret;
	sqlite3_bind_int64(st, 1, client_id);
	sqlite3_bind_text(st, 2, k->key_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, k->from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, k->tkey, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, k->created);
	sqlite3_bind_int64(st, 6, k->expires);
	rc = sqlite3_step(st);
	ret = rc == SQLITE_DONE ? 0 : rc == SQLITE_CONSTRAINT ? NTM_ERR_EXISTS : NTM_ERR_DB;
	sqlite3_finalize(st);
	return ret;
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

	if ((ret = run2(db, "DELETE FROM temporal_keys WHERE client_id = ?1 AND expires <= ?2",
	    client_id, now)) < 0 ||
	    (ret = ntm_db_prepare(db, &st, "SELECT " TKEY_COLS " FROM temporal_keys "
	    "WHERE client_id = ?1 ORDER BY id")) < 0)
		return ret;
	sqlite3_bind_int64(st, 1, client_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		read_tkey(st, &k);
		ret = fn(&k, arg);
		ntm_wipe(&k, sizeof(k));
		if (ret < 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = NTM_ERR_DB;
	sqlite3_finalize(st);
	return ret;
}

int
dc_db_tkey_get(sqlite3 *db, int64_t client_id, const char *key_id, int64_t now,
    struct dc_tkey *k)
{
	sqlite3_stmt *st;
	int ret, rc;

	if ((ret = ntm_db_prepare(db, &st, "SELECT " TKEY_COLS " FROM temporal_keys "
	    "WHERE client_id = ?1 AND key_id = ?2 AND expires > ?3")) < 0)
		return ret;
	sqlite3_bind_int64(st, 1, client_id);
	sqlite3_bind_text(st, 2, key_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_tkey(st, k);
		ret = 0;
	} else
		ret = rc == SQLITE_DONE ? NTM_ERR_NOTFOUND : NTM_ERR_DB;
	sqlite3_finalize(st);
	return ret;
}

int
dc_db_tkey_del(sqlite3 *db, int64_t client_id, const char *key_id)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = ntm_db_prepare(db, &st, "DELETE FROM temporal_keys WHERE client_id = ?1 "
	    "AND key_id = ?2")) < 0)
		return ret;
	sqlite3_bind_int64(st, 1, client_id);
	sqlite3_bind_text(st, 2, key_id, -1, SQLITE_STATIC);
	ret = sqlite3_step(st) != SQLITE_DONE ? NTM_ERR_DB :
	    sqlite3_changes(db) == 0 ? NTM_ERR_NOTFOUND : 0;
	sqlite3_finalize(st);
	return ret;
}

/* ---- cache entries ---------------------------------------------------------- */

int
dc_db_entry_put(sqlite3 *db, int64_t client_id, struct dc_entry *e, int64_t now)
{
	sqlite3_stmt *st;
	int64_t n = 0;
	int ret, rc;

	if ((ret = run2(db, "DELETE FROM cache_entries WHERE client_id = ?1 AND expires <= ?2",
	    client_id, now)) < 0 ||
	    (ret = count2(db, "SELECT count(*) FROM cache_entries WHERE client_id = ?1 "
	    "AND expires > ?2", client_id, now, &n)) < 0)
		return ret;
	if (n >= DC_XENTRIES_MAX)
		return NTM_ERR_NOSPACE;
	if ((ret = ntm_db_prepare(db, &st, "INSERT INTO cache_entries (client_id, kind, sender, cs, "
	    "sha256, size, app, service, item, notify, created, expires) VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")) < 0)
		return ret;
	sqlite3_bind_int64(st, 1, client_id);
	sqlite3_bind_text(st, 2, e->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, e->cs, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, e->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, e->size);
	sqlite3_bind_text(st, 7, e->app, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, e->service, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, e->item, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, e->notify, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 11, e->created);
	sqlite3_bind_int64(st, 12, e->expires);
	rc = sqlite3_step(st);
	ret = rc == SQLITE_DONE ? 0 : rc == SQLITE_CONSTRAINT ? NTM_ERR_EXISTS : NTM_ERR_DB;
	if (ret == 0)
		e->id = sqlite3_last_insert_rowid(db);
	sqlite3_finalize(st);
	return ret;
}

int
dc_db_entries(sqlite3 *db, int64_t client_id, const char *from, int64_t now,
    int (*fn)(const struct dc_entry *e, void *arg), void *arg)
{
	sqlite3_stmt *st;
	struct dc_entry e;
	int ret, rc;

	if ((ret = run2(db, "DELETE FROM cache_entries WHERE client_id = ?1 AND expires <= ?2",
	    client_id, now)) < 0 ||
	    (ret = ntm_db_prepare(db, &st, "SELECT id, kind, sender, cs, sha256, size, app, service, "
	    "item, notify, created, expires FROM cache_entries WHERE client_id = ?1 "
	    "AND (?2 IS NULL OR sender = ?2) ORDER BY id")) < 0)
		return ret;
	sqlite3_bind_int64(st, 1, client_id);
	if (from)
		sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
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
	if (ret == 0 && rc != SQLITE_DONE)
		ret = NTM_ERR_DB;
	sqlite3_finalize(st);
	return ret;
}

int
dc_db_entry_count(sqlite3 *db, int64_t client_id, int64_t now, int64_t *out)
{
	return count2(db, "SELECT count(*) FROM cache_entries WHERE client_id = ?1 "
	    "AND expires > ?2", client_id, now, out);
}

int
dc_db_entry_del(sqlite3 *db, int64_t client_id, int64_t id)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = ntm_db_prepare(db, &st, "DELETE FROM cache_entries WHERE client_id = ?1 "
	    "AND id = ?2")) < 0)
		return ret;
	sqlite3_bind_int64(st, 1, client_id);
	sqlite3_bind_int64(st, 2, id);
	ret = sqlite3_step(st) != SQLITE_DONE ? NTM_ERR_DB :
	    sqlite3_changes(db) == 0 ? NTM_ERR_NOTFOUND : 0;
	sqlite3_finalize(st);
	return ret;
}
