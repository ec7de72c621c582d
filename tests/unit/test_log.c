/* test_log.c - rate-limited log lines and their summaries, with literal
 * times (ms). */
#include "ntm-core.h"
#include "unit.h"

static char got[1024][128];
static int ngot, lvl[1024];

static void
capture(int level, const char *msg, void *arg)
{
	if (ngot < 1024) {
		snprintf(got[ngot], sizeof(got[0]), "%s", msg);
		lvl[ngot++] = level;
	}
}

static void
reset(void)
{
	ngot = 0;
	ntm_log_rl_flush_at(UINT64_MAX / 2);	/* end every window */
	ngot = 0;
	ntm_log_set(capture, NULL, NTM_LOG_WARN);
}

/* A flood from one source: three lines, then one summary at WARN when
 * the window has ended, even though the lines were INFO (not shown). */
TEST(flood_one_source)
{
	reset();
	ntm_log_set(capture, NULL, NTM_LOG_INFO);
	for (int i = 0; i < 1000; i++)
		ntm_log_rl_at(1000 + (uint64_t)i, NTM_LOG_INFO, "refused", "192.0.2.1",
		    "refused request %d from 192.0.2.1", i);
	CHECK_EQ(ngot, 3);
	CHECK_STR(got[0], "refused request 0 from 192.0.2.1");
	CHECK_STR(got[2], "refused request 2 from 192.0.2.1");
	ntm_log_rl_flush_at(1000 + 9999);		/* window not over */
	CHECK_EQ(ngot, 3);
	ntm_log_rl_flush_at(1000 + 10000);
	CHECK_EQ(ngot, 4);
	CHECK_STR(got[3], "refused: 1000 times from 192.0.2.1 in the last 10 s (3 written)");
	CHECK_EQ(lvl[3], NTM_LOG_WARN);
	/* The next window starts afresh. */
	ntm_log_rl_at(11000, NTM_LOG_INFO, "refused", "192.0.2.1", "again");
	CHECK_EQ(ngot, 5);
	CHECK_STR(got[4], "again");
}

/* At the default level (WARN) the INFO lines are not written, but the
 * summary is; a quiet source (under the burst) gets no summary. */
TEST(default_level)
{
	reset();
	for (int i = 0; i < 50; i++)
		ntm_log_rl_at(5000, NTM_LOG_INFO, "closed", "198.51.100.7", "closed %d", i);
	ntm_log_rl_at(5000, NTM_LOG_INFO, "closed", "198.51.100.8", "closed one");
	CHECK_EQ(ngot, 0);
	ntm_log_rl_flush_at(15000);
	CHECK_EQ(ngot, 1);
	CHECK_STR(got[0], "closed: 50 times from 198.51.100.7 in the last 10 s (3 written)");
}

/* Kinds and sources are counted apart; past the table's size, new sources
 * of a kind are counted together. */
TEST(kinds_sources_many)
{
	char src[32];
	int summaries = 0, many = 0;

	reset();
	for (int s = 0; s < 200; s++) {
		snprintf(src, sizeof(src), "10.0.%d.%d", s / 256, s % 256);
		for (int i = 0; i < 5; i++) {
			ntm_log_rl_at(20000, NTM_LOG_WARN, "kind-a", src, "a %s", src);
			ntm_log_rl_at(20000, NTM_LOG_WARN, "kind-b", src, "b %s", src);
		}
	}
	/* Every group writes at most three lines: bounded, whatever the
	 * number of sources (64 groups, 3 lines each), not 2000. */
	CHECK(ngot > 0);
	CHECK(ngot <= 3 * NTM_LOG_RL_GROUPS);
	ngot = 0;
	ntm_log_rl_flush_at(30000);
	for (int i = 0; i < ngot; i++) {
		summaries++;
		if (strstr(got[i], "from many sources"))
			many++;
	}
	CHECK(summaries > 0 && summaries <= NTM_LOG_RL_GROUPS);
	CHECK(many >= 1);
}

/* A flood of one kind from 64 sources: 8 sources have their own lines,
 * the other 56 share "many sources"; 27 lines in the window, not 192. */
TEST(sources_per_kind)
{
	char src[32];
	int many = 0;

	reset();
	for (int s = 0; s < 64; s++) {
		snprintf(src, sizeof(src), "203.0.113.%d", s);
		for (int i = 0; i < 10; i++)
			ntm_log_rl_at(40000, NTM_LOG_WARN, "busy", src, "busy %s", src);
	}
	CHECK_EQ(ngot, (NTM_LOG_RL_SOURCES + 1) * NTM_LOG_RL_BURST);
	CHECK_STR(got[0], "busy 203.0.113.0");
	CHECK_STR(got[NTM_LOG_RL_SOURCES * NTM_LOG_RL_BURST], "busy 203.0.113.8");
	ngot = 0;
	ntm_log_rl_flush_at(50000);
	CHECK_EQ(ngot, NTM_LOG_RL_SOURCES + 1);
	for (int i = 0; i < ngot; i++)
		if (strcmp(got[i], "busy: 560 times from many sources in the last 10 s "
		    "(3 written)") == 0)
			many++;
	CHECK_EQ(many, 1);
	/* another kind still gets sources of its own */
	ngot = 0;
	ntm_log_rl_at(50001, NTM_LOG_WARN, "other", "203.0.113.60", "other one");
	CHECK_EQ(ngot, 1);
	CHECK_STR(got[0], "other one");
}

UNIT_MAIN(T(flood_one_source), T(default_level), T(kinds_sources_many), T(sources_per_kind))
