/* test_ctr.c - counters that never repeat (lib/io/ctr.c): a new run starts
 * above the stored limit whatever the clock says; the limit is stored
 * before a value near it is handed out; a damaged file is refused. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ntm.h"
#include "unit.h"

static char dir[] = "/tmp/ntm-test-ctr.XXXXXX";

static uint64_t
stored(const char *path)
{
	char *t = NULL;
	size_t n;
	uint64_t v = 0;

	if (ntm_file_read(path, 64, &t, &n) == 0)
		v = strtoull(t, NULL, 10);
	free(t);
	return v;
}

TEST(restart_after_clock_step)
{
	struct ntm_ctr_floor f;
	char path[256];
	uint64_t v, w, last;
	struct stat st;

	snprintf(path, sizeof(path), "%s/reg-counter", dir);
	/* First run at t = 1,000,000 us: values from the clock, above each other. */
	CHECK_EQ(ntm_ctr_floor_open(&f, path, 1000000), 0);
	CHECK_EQ(stored(path), 1000000 + NTM_CTR_RESERVE);
	CHECK_EQ(stat(path, &st), 0);
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK_EQ(ntm_ctr_floor_take(&f, 1000005, &v), 0);
	CHECK_EQ(v, 1000005);
	CHECK_EQ(ntm_ctr_floor_take(&f, 1000005, &w), 0);	/* same clock reading */
	CHECK_EQ(w, 1000006);
	/* A session sent 100 more on its own, then left the cache. */
	ntm_ctr_floor_note(&f, w + 100);
	CHECK_EQ(ntm_ctr_floor_take(&f, 900000, &v), 0);	/* clock stepped back */
	CHECK_EQ(v, w + 101);
	last = v;
	ntm_ctr_floor_free(&f);
	/* Restart with the clock an hour behind: above everything before. */
	CHECK_EQ(ntm_ctr_floor_open(&f, path, 1000000 - 999999), 0);
	CHECK_EQ(ntm_ctr_floor_take(&f, 5, &v), 0);
	CHECK(v > last);
	CHECK(v > 1000000 + NTM_CTR_RESERVE - 1);
	ntm_ctr_floor_free(&f);
}

TEST(reserve_ahead)
{
	struct ntm_ctr_floor f;
	char path[256];
	uint64_t v, lim;

	snprintf(path, sizeof(path), "%s/reserve", dir);
	CHECK_EQ(ntm_ctr_floor_open(&f, path, 7), 0);
	lim = stored(path);
	CHECK_EQ(lim, 7 + NTM_CTR_RESERVE);
	/* Below the margin: nothing written. */
	CHECK_EQ(ntm_ctr_floor_take(&f, lim - NTM_CTR_MARGIN - 1, &v), 0);
	CHECK_EQ(stored(path), lim);
	/* Within the margin: a new limit first. */
	CHECK_EQ(ntm_ctr_floor_take(&f, lim - 10, &v), 0);
	CHECK_EQ(v, lim - 10);
	CHECK_EQ(stored(path), lim - 10 + NTM_CTR_RESERVE);
	CHECK(v < stored(path));
	ntm_ctr_floor_free(&f);
}

TEST(damaged_file_refused)
{
	static const char *const bad[] = { "", "x\n", "12x\n", "-1\n",
		"99999999999999999999999\n" };
	struct ntm_ctr_floor f;
	char path[256];

	snprintf(path, sizeof(path), "%s/bad", dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(ntm_file_write(path, bad[i], strlen(bad[i]), 0600), 0);
		if (ntm_ctr_floor_open(&f, path, 1) != NTM_ERR_INVAL) {
			fprintf(stderr, "bad[%zu] '%s' not refused as invalid\n", i, bad[i]);
			CHECK(0);
		}
	}
	/* A directory that cannot be written: the open fails, nothing handed out. */
	snprintf(path, sizeof(path), "%s/no/such/dir/ctr", dir);
	CHECK(ntm_ctr_floor_open(&f, path, 1) < 0);
}

static void
cleanup(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

static void
setup(void)
{
	if (mkdtemp(dir) == NULL)
		abort();
	atexit(cleanup);
}

TEST(setup_dir)
{
	setup();
}

UNIT_MAIN(T(setup_dir), T(restart_after_clock_step), T(reserve_ahead), T(damaged_file_refused))
