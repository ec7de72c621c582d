/*
 * store.c - the AS's storage seam: one small interface over two backends,
 * SQLite (the embedded default, a file at `db`) and PostgreSQL through
 * libpq (`database = postgresql://...` or a conninfo), so that several AS
 * processes can share one store.
 *
 * The queries of db.c and push.c are written once, in the SQL both engines
 * share, with ?1, ?2, ... placeholders. What differs is handled here and
 * only here (sql_dialect): placeholders become $1, $2 for PostgreSQL, and a
 * few words in braces name what each spells its own way:
 *
 *   {serial}    an id the store assigns: INTEGER PRIMARY KEY AUTOINCREMENT,
 *               BIGSERIAL PRIMARY KEY
 *   {rowid}     an id the store assigns, may reuse: INTEGER PRIMARY KEY,
 *               BIGSERIAL PRIMARY KEY
 *   {int}       a 64-bit integer column: INTEGER, BIGINT
 *   {greatest}  the larger of two values: MAX, GREATEST
 *
 * The one list of migrations (db.c) goes through the same translation.
 * SQLite keeps its version in user_version; PostgreSQL in a table
 * ntm_schema, migrated under an advisory lock so two AS starting at once
 * migrate once.
 *
 * Transactions: as_sql_begin/as_sql_end nest (only the outermost commits).
 * On PostgreSQL every transaction takes one advisory lock first, so writers
 * are serialised as SQLite's BEGIN IMMEDIATE serialises them: a check and
 * the insert it guards never interleave with another AS's, and the ids of
 * the revocation queue commit in the order they were assigned (a push
 * cursor past an id never skips one that commits later).
 *
 * Every call runs on the daemon's loop thread, synchronously, as SQLite's
 * always did.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "ntm-as.h"

#define SQL_MAX		4096	/* one statement after translation */
#define SQL_PARAMS	16
#define PG_LOCK_KEY	"7237098274357219328"	/* advisory lock of the AS's writers */
#define PG_CONNECT_TIMEOUT "5"	/* seconds, unless the conninfo says */
#define PG_OID_INT4	23
#define PG_OID_INT8	20
#define PG_OID_TEXT	25

struct as_store {
	int		 pg;
	sqlite3		*lite;
	PGconn		*conn;
	int		 depth;		/* as_sql_begin nesting */
	int		 failed;	/* an inner as_sql_end failed: roll back */
	char		 err[256];	/* the last error, for as_store_errmsg */
};

struct as_rows {
	struct as_store	*st;
	sqlite3_stmt	*stmt;
	PGresult	*res;
	int		 row, nrows;	/* PostgreSQL: the current row, how many */
};

int
as_store_is_pg(const char *database)
{
	return database != NULL && (strncmp(database, "postgresql://", 13) == 0 ||
	    strncmp(database, "postgres://", 11) == 0 || strchr(database, '=') != NULL);
}

int
as_store_shared(const struct as_store *st)
{
	return st != NULL && st->pg;
}

/* ---- the dialect ---------------------------------------------------------- */

static const struct {
	const char	*word, *lite, *pg;
} words[] = {
	{ "{serial}",	"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY" },
	{ "{rowid}",	"INTEGER PRIMARY KEY",	"BIGSERIAL PRIMARY KEY" },
	{ "{int}",	"INTEGER",		"BIGINT" },
	{ "{greatest}",	"MAX",			"GREATEST" },
};

/* sql in the common dialect into out for the store's engine: 0, or
 * NTM_ERR_TOOBIG. Quoted text is copied as it is. */
static int
sql_dialect(int pg, const char *sql, char *out, size_t cap)
{
	size_t n = 0, w;
	int quoted = 0;

	while (*sql != '\0') {
		const char *put = NULL;
		size_t skip = 1, len;

		if (*sql == '\'')
			quoted = !quoted;
		if (!quoted && *sql == '{') {
			for (w = 0; w < sizeof(words) / sizeof(words[0]); w++)
				if (strncmp(sql, words[w].word, strlen(words[w].word)) == 0) {
					put = pg ? words[w].pg : words[w].lite;
					skip = strlen(words[w].word);
					break;
				}
		} else if (!quoted && pg && *sql == '?' && isdigit((unsigned char)sql[1]))
			put = "$";
		if (put == NULL) {
			if (n + 1 >= cap)
				return NTM_ERR_TOOBIG;
			out[n++] = *sql;
		} else {
			if ((len = strlen(put)) + n >= cap)
				return NTM_ERR_TOOBIG;
			memcpy(out + n, put, len);
			n += len;
		}
		sql += skip;
	}
	out[n] = '\0';
	return 0;
}

static void
set_err(struct as_store *st, const char *fmt, ...) NTM_PRINTF(2, 3);

static void
set_err(struct as_store *st, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	n = strlen(st->err);
	while (n > 0 && (st->err[n - 1] == '\n' || st->err[n - 1] == ' '))
		st->err[--n] = '\0';
}

const char *
as_store_errmsg(const struct as_store *st)
{
	if (st == NULL)
		return "no database";
	if (!st->pg && st->err[0] == '\0')
		return sqlite3_errmsg(st->lite);
	return st->err[0] ? st->err : "no error";
}

/* ---- PostgreSQL ------------------------------------------------------------ */

/* The error of res (or of the connection): NTM_ERR_EXISTS for an integrity
 * constraint (SQLSTATE class 23), else NTM_ERR_DB; logged. */
static int
pg_err(struct as_store *st, PGresult *res, const char *sql)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(st->conn);

	set_err(st, "postgresql: %s", msg && *msg ? msg : "no result");
	if (state && strncmp(state, "23", 2) == 0)
		return NTM_ERR_EXISTS;
	log_warnx("%s (in: %.80s)", st->err, sql);
	return NTM_ERR_DB;
}

/* A connection lost (the server restarted, or failed over) is opened again
 * before the next statement, outside a transaction only. */
static void
pg_check(struct as_store *st)
{
	if (PQstatus(st->conn) == CONNECTION_BAD && st->depth == 0) {
		log_warnx("postgresql: connection lost, connecting again");
		PQreset(st->conn);
	}
}

static int
pg_run(struct as_store *st, PGresult **out, const char *sql, const char *types, va_list ap)
{
	char buf[SQL_MAX], ints[SQL_PARAMS][24];
	const char *vals[SQL_PARAMS];
	Oid oids[SQL_PARAMS];
	PGresult *res;
	int n = 0, ret;

	*out = NULL;
	if ((ret = sql_dialect(1, sql, buf, sizeof(buf))) < 0)
		return ret;
	for (; types != NULL && types[n] != '\0'; n++) {
		if (n == SQL_PARAMS)
			return NTM_ERR_INVAL;
		switch (types[n]) {
		case 's':
			vals[n] = va_arg(ap, const char *);
			oids[n] = PG_OID_TEXT;
			break;
		case 'i':
			snprintf(ints[n], sizeof(ints[n]), "%d", va_arg(ap, int));
			vals[n] = ints[n];
			oids[n] = PG_OID_INT4;
			break;
		case 'I':
			snprintf(ints[n], sizeof(ints[n]), "%lld", (long long)va_arg(ap, int64_t));
			vals[n] = ints[n];
			oids[n] = PG_OID_INT8;
			break;
		default:
			return NTM_ERR_INVAL;
		}
	}
	pg_check(st);
	res = PQexecParams(st->conn, buf, n, oids, vals, NULL, NULL, 0);
	/* The server restarted since the last statement: once more, on a
	 * new connection (outside a transaction only; nothing was done). */
	if (PQstatus(st->conn) == CONNECTION_BAD && st->depth == 0) {
		PQclear(res);
		pg_check(st);
		res = PQexecParams(st->conn, buf, n, oids, vals, NULL, NULL, 0);
	}
	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK)) {
		ret = pg_err(st, res, buf);
		PQclear(res);
		return ret;
	}
	*out = res;
	return 0;
}

static int
pg_exec(struct as_store *st, const char *sql)
{
	char buf[SQL_MAX * 2];
	PGresult *res;
	int ret;

	if ((ret = sql_dialect(1, sql, buf, sizeof(buf))) < 0)
		return ret;
	pg_check(st);
	res = PQexec(st->conn, buf);
	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK))
		ret = pg_err(st, res, buf);
	PQclear(res);
	return ret;
}

/* The schema's version on PostgreSQL: ntm_schema's one row (made at 0). */
static int
pg_migrate(struct as_store *st, const char *const *migrations, int nmig, int create)
{
	char sql[96];
	PGresult *res = NULL;
	int ver, ret;

	/* One transaction for all the steps, under the writers' lock: a
	 * second AS starting at once waits, then finds them done. */
	if ((ret = pg_exec(st, "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_KEY "); "
	    "CREATE TABLE IF NOT EXISTS ntm_schema (version INTEGER NOT NULL); "
	    "INSERT INTO ntm_schema (version) SELECT 0 WHERE NOT EXISTS "
	    "(SELECT 1 FROM ntm_schema)")) < 0)
		goto fail;
	res = PQexec(st->conn, "SELECT version FROM ntm_schema");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		ret = pg_err(st, res, "SELECT version FROM ntm_schema");
		goto fail;
	}
	ver = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	res = NULL;
	if (ver > nmig) {
		set_err(st, "database schema %d is newer than this program's %d", ver, nmig);
		ret = NTM_ERR_VERSION;
		goto fail;
	}
	if (ver == 0 && !create) {
		set_err(st, "no AS schema in this database");
		ret = NTM_ERR_NOTFOUND;
		goto fail;
	}
	for (; ver < nmig; ver++)
		if ((ret = pg_exec(st, migrations[ver])) < 0) {
			log_warnx("postgresql: migration %d failed", ver + 1);
			goto fail;
		}
	snprintf(sql, sizeof(sql), "UPDATE ntm_schema SET version = %d; COMMIT", nmig);
	if ((ret = pg_exec(st, sql)) < 0)
		goto fail;
	return 0;
fail:
	PQclear(res);
	PQclear(PQexec(st->conn, "ROLLBACK"));
	return ret == NTM_ERR_EXISTS ? NTM_ERR_DB : ret;
}

static int
pg_open(struct as_store *st, const char *conninfo, const char *const *migrations,
    int nmig, int create)
{
	/* A bound on connecting (and on reconnecting, which blocks the loop)
	 * unless the conninfo sets its own: it comes later, so it wins. */
	static const char *const keys[] = { "connect_timeout", "dbname", NULL };
	const char *vals[] = { PG_CONNECT_TIMEOUT, conninfo, NULL };

	st->pg = 1;
	if ((st->conn = PQconnectdbParams(keys, vals, 1)) == NULL) {
		set_err(st, "postgresql: out of memory");
		return NTM_ERR_NOMEM;
	}
	if (PQstatus(st->conn) != CONNECTION_OK) {
		set_err(st, "postgresql: %s", PQerrorMessage(st->conn));
		return NTM_ERR_CONNECT;
	}
	/* Quiet: the NOTICEs of IF NOT EXISTS are not news. */
	PQclear(PQexec(st->conn, "SET client_min_messages = warning"));
	return pg_migrate(st, migrations, nmig, create);
}

/* ---- SQLite ------------------------------------------------------------------ */

/* Prepares the translated sql and binds ?1.. from ap as types says. */
static int
lite_query(struct as_store *st, sqlite3_stmt **out, const char *sql, const char *types,
    va_list ap)
{
	char buf[SQL_MAX];
	sqlite3_stmt *stmt;
	const char *s;
	int i, ret, rc = SQLITE_OK;

	*out = NULL;
	if ((ret = sql_dialect(0, sql, buf, sizeof(buf))) < 0 ||
	    (ret = ntm_db_prepare(st->lite, &stmt, buf)) < 0)
		return ret;
	for (i = 1; types != NULL && types[i - 1] != '\0' && rc == SQLITE_OK; i++) {
		switch (types[i - 1]) {
		case 's':
			s = va_arg(ap, const char *);
			rc = s ? sqlite3_bind_text(stmt, i, s, -1, SQLITE_STATIC) :
			    sqlite3_bind_null(stmt, i);
			break;
		case 'i':
			rc = sqlite3_bind_int(stmt, i, va_arg(ap, int));
			break;
		case 'I':
			rc = sqlite3_bind_int64(stmt, i, va_arg(ap, int64_t));
			break;
		default:
			rc = SQLITE_MISUSE;
		}
	}
	if (rc != SQLITE_OK) {
		log_warnx("sqlite: bind \"%s\" to %.80s", types, sql);
		sqlite3_finalize(stmt);
		return NTM_ERR_DB;
	}
	*out = stmt;
	return 0;
}

/* ---- the interface ------------------------------------------------------------ */

int
as_store_open(const char *database, const char *path, const char *const *migrations,
    int nmig, int create, struct as_store **out)
{
	const char *tr[64];
	char *bufs[64];
	struct as_store *st;
	int ret, i;

	*out = NULL;
	if (nmig > (int)(sizeof(bufs) / sizeof(bufs[0])))
		return NTM_ERR_INVAL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NTM_ERR_NOMEM;
	if (as_store_is_pg(database)) {
		char (*mig)[SQL_MAX] = calloc((size_t)nmig + 1, SQL_MAX);

		ret = mig ? 0 : NTM_ERR_NOMEM;
		for (i = 0; ret == 0 && i < nmig; i++) {
			ret = sql_dialect(1, migrations[i], mig[i], SQL_MAX);
			tr[i] = mig[i];
		}
		if (ret == 0)
			ret = pg_open(st, database, tr, nmig, create);
		free(mig);
	} else {
		memset(bufs, 0, sizeof(bufs));
		ret = 0;
		for (i = 0; ret == 0 && i < nmig; i++) {
			if ((bufs[i] = malloc(SQL_MAX)) == NULL)
				ret = NTM_ERR_NOMEM;
			else
				ret = sql_dialect(0, migrations[i], bufs[i], SQL_MAX);
			tr[i] = bufs[i];
		}
		if (ret == 0)
			ret = ntm_db_open(path, tr, nmig, &st->lite);
		for (i = 0; i < nmig; i++)
			free(bufs[i]);
	}
	if (ret < 0) {
		if (st->err[0] && ret != NTM_ERR_NOTFOUND)
			log_warnx("%s", st->err);
		as_store_close(st);
		return ret;
	}
	*out = st;
	return 0;
}

void
as_store_close(struct as_store *st)
{
	if (st == NULL)
		return;
	if (st->conn)
		PQfinish(st->conn);
	ntm_db_close(st->lite);
	free(st);
}

int
as_sql_query(struct as_store *st, struct as_rows **out, const char *sql, const char *types,
    ...)
{
	struct as_rows *r;
	va_list ap;
	int ret;

	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NTM_ERR_NOMEM;
	r->st = st;
	r->row = -1;
	st->err[0] = '\0';
	va_start(ap, types);
	if (st->pg) {
		if ((ret = pg_run(st, &r->res, sql, types, ap)) == 0)
			r->nrows = PQntuples(r->res);
	} else
		ret = lite_query(st, &r->stmt, sql, types, ap);
	va_end(ap);
	if (ret < 0) {
		free(r);
		return ret;
	}
	*out = r;
	return 0;
}

int
as_rows_next(struct as_rows *r)
{
	if (r->res)
		return ++r->row < r->nrows ? NTM_DB_ROW : 0;
	return ntm_db_step(r->st->lite, r->stmt);
}

int
as_rows_one(struct as_rows *r)
{
	int rc = as_rows_next(r);

	if (rc == NTM_DB_ROW)
		return 0;
	return rc == 0 ? NTM_ERR_NOTFOUND : rc;
}

int
as_rows_null(const struct as_rows *r, int col)
{
	if (r->res)
		return PQgetisnull(r->res, r->row, col);
	return sqlite3_column_type(r->stmt, col) == SQLITE_NULL;
}

int64_t
as_rows_int(const struct as_rows *r, int col)
{
	if (r->res)
		return strtoll(PQgetvalue(r->res, r->row, col), NULL, 10);
	return sqlite3_column_int64(r->stmt, col);
}

const char *
as_rows_text(const struct as_rows *r, int col)
{
	if (r->res)
		return PQgetisnull(r->res, r->row, col) ? NULL : PQgetvalue(r->res, r->row, col);
	return (const char *)sqlite3_column_text(r->stmt, col);
}

void
as_rows_col(char *dst, size_t cap, const struct as_rows *r, int col)
{
	const char *v = as_rows_text(r, col);

	snprintf(dst, cap, "%s", v ? v : "");
}

void
as_rows_free(struct as_rows *r)
{
	if (r == NULL)
		return;
	PQclear(r->res);
	sqlite3_finalize(r->stmt);
	free(r);
}

/* Runs sql once: how many rows it changed, or an error. */
int
as_sql_run(struct as_store *st, const char *sql, const char *types, ...)
{
	sqlite3_stmt *stmt;
	PGresult *res;
	va_list ap;
	int ret;

	st->err[0] = '\0';
	va_start(ap, types);
	if (st->pg) {
		if ((ret = pg_run(st, &res, sql, types, ap)) == 0) {
			ret = atoi(PQcmdTuples(res));
			PQclear(res);
		}
	} else if ((ret = lite_query(st, &stmt, sql, types, ap)) == 0) {
		if ((ret = ntm_db_done(st->lite, stmt)) == 0)
			ret = sqlite3_changes(st->lite);
		sqlite3_finalize(stmt);
	}
	va_end(ap);
	return ret;
}

int
as_sql_int(struct as_store *st, int64_t *out, const char *sql, const char *types, ...)
{
	sqlite3_stmt *stmt;
	PGresult *res;
	va_list ap;
	int ret;

	st->err[0] = '\0';
	va_start(ap, types);
	if (st->pg) {
		if ((ret = pg_run(st, &res, sql, types, ap)) == 0) {
			if (PQntuples(res) < 1 || PQnfields(res) < 1)
				ret = NTM_ERR_NOTFOUND;
			else
				*out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			PQclear(res);
		}
	} else if ((ret = lite_query(st, &stmt, sql, types, ap)) == 0) {
		if ((ret = ntm_db_row(st->lite, stmt)) == 0)
			*out = sqlite3_column_int64(stmt, 0);
		sqlite3_finalize(stmt);
	}
	va_end(ap);
	return ret;
}

int
as_sql_begin(struct as_store *st)
{
	int ret;

	if (st->depth > 0) {
		st->depth++;
		return 0;
	}
	st->failed = 0;
	if (st->pg)
		pg_check(st);	/* before the transaction: a lost connection is made again */
	st->depth = 1;
	if (st->pg) {
		ret = pg_exec(st, "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_KEY ")");
		if (ret < 0 && PQstatus(st->conn) == CONNECTION_BAD) {
			st->depth = 0;	/* as pg_run: once more, on a new connection */
			pg_check(st);
			st->depth = 1;
			ret = pg_exec(st, "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_KEY ")");
		}
		if (ret < 0)
			PQclear(PQexec(st->conn, "ROLLBACK"));
	} else
		ret = ntm_db_begin(st->lite);
	if (ret < 0)
		st->depth = 0;
	return ret;
}

int
as_sql_end(struct as_store *st, int ret)
{
	if (st->depth <= 0)
		return NTM_ERR_STATE;
	if (ret < 0)
		st->failed = 1;
	if (--st->depth > 0)
		return ret;
	if (st->failed && ret >= 0)
		ret = NTM_ERR_DB;
	if (!st->pg) {
		int e = ntm_db_end(st->lite, ret < 0 ? ret : 0);

		return ret < 0 ? ret : e < 0 ? e : ret;
	}
	if (ret >= 0) {
		int e = pg_exec(st, "COMMIT");

		if (e < 0) {
			PQclear(PQexec(st->conn, "ROLLBACK"));
			return e;
		}
		return ret;
	}
	PQclear(PQexec(st->conn, "ROLLBACK"));
	return ret;
}
