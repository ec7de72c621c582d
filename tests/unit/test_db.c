/* test_db.c - SQLite open, pragmas and migrations. */
#include <sys/stat.h>

#include <stdlib.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ntm.h"
#include "unit.h"

static char dir[64], path[96];

static const char *const migs[] = {
	"CREATE TABLE a (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);",
	"CREATE TABLE b (id INTEGER PRIMARY KEY,"
	" a INTEGER NOT NULL REFERENCES a(id));"
	"INSERT INTO a (name) VALUES ('first');",
};

static long
query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	long v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -2;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

TEST(setup)
{
	snprintf(dir, sizeof(dir), "/tmp/ntm-test-db.XXXXXX");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/t.db", dir);
}

TEST(open_migrate)
{
	sqlite3 *db = NULL;
	struct stat st;

	CHECK_EQ(ntm_db_open(path, migs, 1, &db), 0);
	CHECK(db != NULL);
	CHECK_EQ(query_int(db, "PRAGMA user_version"), 1);
	CHECK_EQ(query_int(db, "PRAGMA foreign_keys"), 1);
	CHECK_EQ(query_int(db, "PRAGMA busy_timeout"), 5000);
	CHECK_EQ(query_int(db, "SELECT count(*) FROM a"), 0);
	ntm_db_close(db);
	CHECK_EQ(stat(path, &st), 0);
	CHECK_EQ(st.st_mode & 0777, 0600);

	/* Upgrade applies only the new step. */
	CHECK_EQ(ntm_db_open(path, migs, 2, &db), 0);
	CHECK_EQ(query_int(db, "PRAGMA user_version"), 2);
	CHECK_EQ(query_int(db, "SELECT count(*) FROM a"), 1);
	{
		sqlite3_stmt *s;
		const char *mode = NULL;

		CHECK_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s,
		    NULL), SQLITE_OK);
		if (sqlite3_step(s) == SQLITE_ROW)
			mode = (const char *)sqlite3_column_text(s, 0);
		CHECK_STR(mode, "wal");
		sqlite3_finalize(s);
	}
	/* Foreign keys are enforced; unique violations map to EXISTS. */
	CHECK_EQ(ntm_db_exec(db, "INSERT INTO b (a) VALUES (42)"), NTM_ERR_DB);
	CHECK_EQ(ntm_db_exec(db, "INSERT INTO b (a) VALUES (1)"), 0);
	CHECK_EQ(ntm_db_exec(db, "INSERT INTO a (name) VALUES ('first')"),
	    NTM_ERR_EXISTS);
	CHECK_EQ(ntm_db_exec(db, "NOT SQL"), NTM_ERR_DB);
	ntm_db_close(db);

	/* Idempotent: reopening changes nothing. */
	CHECK_EQ(ntm_db_open(path, migs, 2, &db), 0);
	CHECK_EQ(query_int(db, "PRAGMA user_version"), 2);
	CHECK_EQ(query_int(db, "SELECT count(*) FROM a"), 1);
	CHECK_EQ(query_int(db, "SELECT count(*) FROM b"), 1);
	ntm_db_close(db);

	/* A newer database is refused. */
	CHECK_EQ(ntm_db_open(path, migs, 1, &db), NTM_ERR_VERSION);
	CHECK(db == NULL);
	ntm_db_close(NULL);
}

TEST(bad_migration)
{
	static const char *const bad[] = {
		"CREATE TABLE x (id INTEGER);",
		"CREATE TABLE y (id INTEGER); THIS IS NOT SQL;",
	};
	char p[128];
	sqlite3 *db = NULL;

	snprintf(p, sizeof(p), "%s/bad.db", dir);
	CHECK_EQ(ntm_db_open(p, bad, 2, &db), NTM_ERR_DB);
	CHECK(db == NULL);
	/* The failed step rolled back: version 1, no table y. */
	CHECK_EQ(ntm_db_open(p, bad, 1, &db), 0);
	CHECK_EQ(query_int(db, "PRAGMA user_version"), 1);
	CHECK_EQ(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name='y'"), 0);
	ntm_db_close(db);

	CHECK_EQ(ntm_db_open(":memory:", migs, 2, &db), 0);
	CHECK_EQ(query_int(db, "SELECT count(*) FROM a"), 1);
	ntm_db_close(db);
	snprintf(p, sizeof(p), "%s/nodir/x.db", dir);
	CHECK_EQ(ntm_db_open(p, migs, 2, &db), NTM_ERR_IO);
}

/* The statement helpers: binding by letters, one finalize rule, one way to
 * end a transaction. */
TEST(statements)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t n = -1, big = INT64_C(1) << 40;
	char name[8];
	int rc, rows = 0;

	CHECK_EQ(ntm_db_open(":memory:", migs, 2, &db), 0);
	CHECK_EQ(ntm_db_run(db, "INSERT INTO a (id, name) VALUES (?1, ?2)", "Is", big,
	    "second"), 0);
	CHECK_EQ(sqlite3_changes(db), 1);
	CHECK_EQ(ntm_db_run(db, "INSERT INTO a (name) VALUES (?1)", "s", "second"),
	    NTM_ERR_EXISTS);
	CHECK_EQ(ntm_db_run(db, "INSERT INTO a (name) VALUES (?1)", "s", NULL),
	    NTM_ERR_EXISTS);		/* NOT NULL is a constraint too */
	CHECK_EQ(ntm_db_run(db, "INSERT INTO a (name) VALUES (?1)", "x", "bad"),
	    NTM_ERR_INVAL);
	CHECK_EQ(ntm_db_run(db, "NOT SQL", NULL), NTM_ERR_DB);
	CHECK_EQ(ntm_db_run(db, "SELECT 1", NULL), NTM_ERR_DB);	/* a row: not done */

	CHECK_EQ(ntm_db_int(db, &n, "SELECT id FROM a WHERE name = ?1", "s", "second"), 0);
	CHECK_EQ(n, big);
	n = -1;
	CHECK_EQ(ntm_db_int(db, &n, "SELECT id FROM a WHERE name = ?1", "s", "none"),
	    NTM_ERR_NOTFOUND);
	CHECK_EQ(n, -1);
	CHECK_EQ(ntm_db_int(db, &n, "SELECT count(*) FROM a WHERE id > ?1", "i", 0), 0);
	CHECK_EQ(n, 2);

	CHECK_EQ(ntm_db_query(db, &st, "SELECT name FROM a WHERE id = ?1", "I", big), 0);
	CHECK_EQ(ntm_db_row(db, st), 0);
	ntm_db_col(name, sizeof(name), st, 0);
	CHECK_STR(name, "second");
	sqlite3_finalize(st);
	CHECK_EQ(ntm_db_query(db, &st, "SELECT name FROM a WHERE id = ?1", "I",
	    (int64_t)7), 0);
	CHECK_EQ(ntm_db_row(db, st), NTM_ERR_NOTFOUND);
	sqlite3_finalize(st);
	CHECK_EQ(ntm_db_query(db, &st, "NOT SQL", NULL), NTM_ERR_DB);
	CHECK(st == NULL);
	CHECK_EQ(ntm_db_query(db, &st, "SELECT ?1", "ss", "a", "b"), NTM_ERR_DB);
	CHECK(st == NULL);	/* more letters than parameters */

	CHECK_EQ(ntm_db_prepare(db, &st, "SELECT name FROM a ORDER BY id"), 0);
	while ((rc = ntm_db_step(db, st)) == NTM_DB_ROW)
		rows++;
	CHECK_EQ(rc, 0);
	CHECK_EQ(rows, 2);
	sqlite3_finalize(st);

	/* ntm_db_end commits on 0, rolls back on an error and returns it. */
	CHECK_EQ(ntm_db_begin(db), 0);
	CHECK_EQ(ntm_db_run(db, "DELETE FROM b", NULL), 0);
	CHECK_EQ(ntm_db_run(db, "DELETE FROM a", NULL), 0);
	CHECK_EQ(ntm_db_end(db, NTM_ERR_NOTFOUND), NTM_ERR_NOTFOUND);
	CHECK_EQ(query_int(db, "SELECT count(*) FROM a"), 2);
	CHECK_EQ(ntm_db_begin(db), 0);
	CHECK_EQ(ntm_db_run(db, "DELETE FROM a WHERE name = ?1", "s", "second"), 0);
	CHECK_EQ(ntm_db_end(db, 0), 0);
	CHECK_EQ(query_int(db, "SELECT count(*) FROM a"), 1);
	/* A COMMIT that fails (none is open) is returned. */
	CHECK_EQ(ntm_db_end(db, 0), NTM_ERR_DB);
	ntm_db_close(db);
}

/*
 * A second connection opened in the same process (the DC's location
 * writer) must not drop the first one's locks: else another process that
 * opens and closes the database takes it for unused, checkpoints and
 * deletes the WAL, and the first connection's later commits are lost.
 */
TEST(second_connection)
{
	sqlite3 *a = NULL, *b = NULL, *c = NULL;
	char wal[128], cmd[256];

	snprintf(wal, sizeof(wal), "%s-wal", path);
	CHECK_EQ(ntm_db_open(path, migs, 2, &a), 0);
	CHECK_EQ(ntm_db_run(a, "INSERT INTO a (name) VALUES ('before')", NULL), 0);
	CHECK_EQ(ntm_db_open(path, migs, 2, &b), 0);
	/* Another process (a fresh one: the sqlite3 shell) opens and closes it. */
	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' 'SELECT count(*) FROM a' >/dev/null", path);
	CHECK_EQ(system(cmd), 0);
	/* The other process saw connections open: the WAL is still there. */
	CHECK_EQ(access(wal, F_OK), 0);
	CHECK_EQ(ntm_db_run(a, "INSERT INTO a (name) VALUES ('after')", NULL), 0);
	CHECK_EQ(query_int(b, "SELECT count(*) FROM a WHERE name IN ('before', 'after')"), 2);
	ntm_db_close(a);
	ntm_db_close(b);
	CHECK_EQ(ntm_db_open(path, migs, 2, &c), 0);
	CHECK_EQ(query_int(c, "SELECT count(*) FROM a WHERE name IN ('before', 'after')"), 2);
	ntm_db_close(c);
}

/*
 * A write a loop puts off: with ntm_db_nowait on, a statement that finds
 * another connection holding the write lock fails at once and
 * ntm_db_busy says why; the calls nest; off restores the 5 s wait.
 */
TEST(nowait)
{
	sqlite3 *a = NULL, *b = NULL;

	CHECK_EQ(ntm_db_open(path, migs, 2, &a), 0);
	CHECK_EQ(ntm_db_open(path, migs, 2, &b), 0);
	CHECK_EQ(ntm_db_begin(b), 0);
	CHECK_EQ(ntm_db_run(b, "INSERT INTO a (name) VALUES ('held')", NULL), 0);
	ntm_db_nowait(a, 1);
	CHECK_EQ(query_int(a, "PRAGMA busy_timeout"), 0);
	CHECK_EQ(ntm_db_run(a, "DELETE FROM a WHERE name = 'none'", NULL), NTM_ERR_DB);
	CHECK(ntm_db_busy(a));
	/* reads go on meanwhile (WAL) */
	CHECK_EQ(query_int(a, "SELECT count(*) FROM a WHERE name = 'held'"), 0);
	ntm_db_nowait(a, 1);
	ntm_db_nowait(a, 0);
	CHECK_EQ(query_int(a, "PRAGMA busy_timeout"), 0);
	ntm_db_nowait(a, 0);
	CHECK_EQ(query_int(a, "PRAGMA busy_timeout"), 5000);
	ntm_db_nowait(a, 0);	/* one off too many changes nothing */
	CHECK_EQ(query_int(a, "PRAGMA busy_timeout"), 5000);
	CHECK_EQ(ntm_db_end(b, 0), 0);
	CHECK_EQ(ntm_db_run(a, "DELETE FROM a WHERE name = 'held'", NULL), 0);
	CHECK(!ntm_db_busy(a));
	ntm_db_close(a);
	ntm_db_close(b);
}

TEST(teardown)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_EQ(system(cmd), 0);
}

UNIT_MAIN(T(setup), T(open_migrate), T(bad_migration), T(statements), T(second_connection),
    T(nowait), T(teardown))
