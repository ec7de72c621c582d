/*
 * db.c - SQLite with WAL, foreign keys and versioned migrations.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ntm.h"

#define DB_BUSY_MS	5000

/* How deep this thread is in ntm_db_nowait (they nest: a callback of a
 * put-off read may put off a write): a busy database is then expected,
 * not logged. */
static _Thread_local int db_nowait;

static int
db_err(sqlite3 *db, const char *what)
{
	int rc = sqlite3_extended_errcode(db);

	if (!db_nowait || !ntm_db_busy(db))
		ntm_log(NTM_LOG_ERR, "sqlite: %s: %s", what, sqlite3_errmsg(db));
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return NTM_ERR_EXISTS;
	return NTM_ERR_DB;
}

int
ntm_db_prepare(sqlite3 *db, sqlite3_stmt **st, const char *sql)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
		ntm_log(NTM_LOG_ERR, "db: %s", sqlite3_errmsg(db));
		*st = NULL;
		return NTM_ERR_DB;
	}
	return 0;
}

/* Binds ?1.. from ap as types says; NTM_ERR_INVAL on an unknown letter. */
static int
db_bind(sqlite3_stmt *st, const char *types, va_list ap)
{
	const char *s;
	int i, rc = SQLITE_OK;

	for (i = 1; types != NULL && types[i - 1] != '\0' && rc == SQLITE_OK; i++) {
		switch (types[i - 1]) {
		case 's':
			s = va_arg(ap, const char *);
			rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) :
			    sqlite3_bind_null(st, i);
			break;
		case 'i':
			rc = sqlite3_bind_int(st, i, va_arg(ap, int));
			break;
		case 'I':
			rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
			break;
		default:
			return NTM_ERR_INVAL;
		}
	}
	return rc == SQLITE_OK ? 0 : NTM_ERR_DB;
}

static int
db_vquery(sqlite3 *db, sqlite3_stmt **st, const char *sql, const char *types,
    va_list ap)
{
	int ret;

	if ((ret = ntm_db_prepare(db, st, sql)) < 0)
		return ret;
	if ((ret = db_bind(*st, types, ap)) < 0) {
		ntm_log(NTM_LOG_ERR, "db: bind \"%s\" to %s", types, sql);
		sqlite3_finalize(*st);
		*st = NULL;
	}
	return ret;
}

int
ntm_db_query(sqlite3 *db, sqlite3_stmt **st, const char *sql, const char *types, ...)
{
	va_list ap;
	int ret;

	va_start(ap, types);
	ret = db_vquery(db, st, sql, types, ap);
	va_end(ap);
	return ret;
}

int
ntm_db_step(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return NTM_DB_ROW;
	if (rc == SQLITE_DONE)
		return 0;
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return NTM_ERR_EXISTS;
	if (!db_nowait || !ntm_db_busy(db))
		ntm_log(NTM_LOG_ERR, "db: %s", sqlite3_errmsg(db));
	return NTM_ERR_DB;
}

void
ntm_db_nowait(sqlite3 *db, int on)
{
	db_nowait += on ? 1 : db_nowait > 0 ? -1 : 0;
	(void)sqlite3_busy_timeout(db, db_nowait > 0 ? 0 : DB_BUSY_MS);
}

int
ntm_db_busy(sqlite3 *db)
{
	int rc = sqlite3_extended_errcode(db) & 0xff;

	return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

int
ntm_db_row(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = ntm_db_step(db, st);

	if (rc == NTM_DB_ROW)
		return 0;
	return rc == 0 ? NTM_ERR_NOTFOUND : NTM_ERR_DB;
}

int
ntm_db_done(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = ntm_db_step(db, st);

	return rc == NTM_DB_ROW ? NTM_ERR_DB : rc;
}

/* Prepares, binds and runs sql once, then finalizes it: with out NULL to
 * the end (no rows), else for one row whose first column goes to *out. */
static int
db_vonce(sqlite3 *db, int64_t *out, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *st;
	int ret;

	if ((ret = db_vquery(db, &st, sql, types, ap)) < 0)
		return ret;
	if (out == NULL)
		ret = ntm_db_done(db, st);
	else if ((ret = ntm_db_row(db, st)) == 0)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return ret;
}

int
ntm_db_run(sqlite3 *db, const char *sql, const char *types, ...)
{
	va_list ap;
	int ret;

	va_start(ap, types);
	ret = db_vonce(db, NULL, sql, types, ap);
	va_end(ap);
	return ret;
}

int
ntm_db_int(sqlite3 *db, int64_t *out, const char *sql, const char *types, ...)
{
	va_list ap;
	int ret;

	if (out == NULL)
		return NTM_ERR_INVAL;
	va_start(ap, types);
	ret = db_vonce(db, out, sql, types, ap);
	va_end(ap);
	return ret;
}

int
ntm_db_begin(sqlite3 *db)
{
	return ntm_db_exec(db, "BEGIN IMMEDIATE");
}

int
ntm_db_end(sqlite3 *db, int ret)
{
	if (ret == 0)
		ret = ntm_db_exec(db, "COMMIT");
	if (ret < 0)
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

void
ntm_db_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *v = sqlite3_column_text(st, col);

	snprintf(dst, cap, "%s", v ? (const char *)v : "");
}

int
ntm_db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc;

	if (db == NULL || sql == NULL)
		return NTM_ERR_INVAL;
	if ((rc = sqlite3_exec(db, sql, NULL, NULL, &msg)) != SQLITE_OK) {
		sqlite3_free(msg);
		return db_err(db, "exec");
	}
	return 0;
}

static int
db_int(sqlite3 *db, const char *sql, int *out)
{
	sqlite3_stmt *st = NULL;
	int ret = NTM_ERR_DB;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_err(db, sql);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		ret = 0;
	} else
		ret = db_err(db, sql);
	sqlite3_finalize(st);
	return ret;
}

static int
db_text_is(sqlite3 *db, const char *sql, const char *want1, const char *want2)
{
	sqlite3_stmt *st = NULL;
	const char *v;
	int ret = NTM_ERR_DB;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_err(db, sql);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    (v = (const char *)sqlite3_column_text(st, 0)) != NULL &&
	    (strcmp(v, want1) == 0 || strcmp(v, want2) == 0))
		ret = 0;
	else
		ntm_log(NTM_LOG_ERR, "sqlite: %s: unexpected result", sql);
	sqlite3_finalize(st);
	return ret;
}

static int
db_migrate(sqlite3 *db, const char *const *migrations, int nmig)
{
	char sql[64];
	int ver = 0, ret;

	if ((ret = db_int(db, "PRAGMA user_version", &ver)) < 0)
		return ret;
	if (ver > nmig) {
		ntm_log(NTM_LOG_ERR, "database schema %d is newer than this "
		    "program's %d", ver, nmig);
		return NTM_ERR_VERSION;
	}
	for (; ver < nmig; ver++) {
		/* One transaction per step: a failed step leaves the database
		 * at the previous version, never half-migrated. */
		if ((ret = ntm_db_exec(db, "BEGIN IMMEDIATE")) < 0)
			return ret;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", ver + 1);
		if ((ret = ntm_db_exec(db, migrations[ver])) < 0 ||
		    (ret = ntm_db_exec(db, sql)) < 0 ||
		    (ret = ntm_db_exec(db, "COMMIT")) < 0) {
			ntm_log(NTM_LOG_ERR, "sqlite: migration %d failed", ver + 1);
			(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return ret == NTM_ERR_EXISTS ? NTM_ERR_DB : ret;
		}
	}
	return 0;
}

int
ntm_db_open(const char *path, const char *const *migrations, int nmig,
    sqlite3 **out)
{
	sqlite3 *db = NULL;
	int fd, ret = NTM_ERR_DB;

	*out = NULL;
	if (path == NULL || nmig < 0 || (nmig > 0 && migrations == NULL))
		return NTM_ERR_INVAL;
	for (int i = 0; i < nmig; i++)
		if (migrations[i] == NULL)
			return NTM_ERR_INVAL;
	/* Create the file ourselves so it is 0600 from the start; SQLite
	 * gives the -wal and -shm files the same mode. Only when it does not
	 * exist: closing a descriptor of a file drops every POSIX lock this
	 * process holds on it, so a second connection opened beside a first
	 * (the DC's location writer) would let another process take the
	 * database for unused, checkpoint and delete the WAL under the first. */
	if (strcmp(path, ":memory:") != 0 && access(path, F_OK) != 0) {
		if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
			if (errno != EEXIST)
				return NTM_ERR_IO;
		} else
			close(fd);
	}
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    NULL) != SQLITE_OK) {
		if (db != NULL)
			ntm_log(NTM_LOG_ERR, "sqlite: open %s: %s", path,
			    sqlite3_errmsg(db));
		goto fail;
	}
	sqlite3_extended_result_codes(db, 1);
	if (sqlite3_busy_timeout(db, DB_BUSY_MS) != SQLITE_OK)
		goto fail;
	if ((ret = db_text_is(db, "PRAGMA journal_mode = WAL", "wal", "memory")) < 0)
		goto fail;
	/* Nothing acknowledged may be lost on a crash. */
	if ((ret = ntm_db_exec(db, "PRAGMA synchronous = FULL")) < 0 ||
	    (ret = ntm_db_exec(db, "PRAGMA foreign_keys = ON")) < 0)
		goto fail;
	if ((ret = db_migrate(db, migrations, nmig)) < 0)
		goto fail;
	*out = db;
	return 0;

fail:
	sqlite3_close_v2(db);
	return ret;
}

void
ntm_db_close(sqlite3 *db)
{
	if (db != NULL)
		sqlite3_close_v2(db);
}
