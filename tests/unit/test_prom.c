/* test_prom.c - the Prometheus text format writer (lib/core/prom.c). */
#include <stdint.h>
#include <string.h>

#include "prom.h"
#include "unit.h"

TEST(counter_and_gauge)
{
	struct ntm_prom p;
	const char *text;
	size_t len;

	ntm_prom_init(&p, 4096);
	ntm_prom_family(&p, "ntm_dc_udp_dropped_total", NTM_PROM_COUNTER,
	    "Datagrams dropped,\nby reason (a \\ stays)");
	ntm_prom_int(&p, (const char *const[]){ "reason", "replay", NULL }, 3);
	ntm_prom_int(&p, (const char *const[]){ "reason", "a\"b\\c\nd", "x", "y", NULL }, 0);
	ntm_prom_family(&p, "ntm_dc_sessions", NTM_PROM_GAUGE, "Sessions \"now\"");
	ntm_prom_int(&p, NULL, -2);
	CHECK_EQ(ntm_prom_end(&p, &text, &len), 0);
	CHECK_STR(text,
	    "# HELP ntm_dc_udp_dropped_total Datagrams dropped,\\nby reason (a \\\\ stays)\n"
	    "# TYPE ntm_dc_udp_dropped_total counter\n"
	    "ntm_dc_udp_dropped_total{reason=\"replay\"} 3\n"
	    "ntm_dc_udp_dropped_total{reason=\"a\\\"b\\\\c\\nd\",x=\"y\"} 0\n"
	    "# HELP ntm_dc_sessions Sessions \"now\"\n"
	    "# TYPE ntm_dc_sessions gauge\n"
	    "ntm_dc_sessions -2\n");
	CHECK_EQ(len, strlen(text));
	ntm_prom_free(&p);
}

TEST(histogram)
{
	struct ntm_hist h;
	struct ntm_prom p;
	const char *text, *line;
	size_t len;

	memset(&h, 0, sizeof(h));
	/* On a bound counts in that bucket; above the last, only in +Inf. */
	ntm_hist_observe(&h, 0);
	ntm_hist_observe(&h, 500);
	ntm_hist_observe(&h, 501);
	ntm_hist_observe(&h, 2000000);
	ntm_hist_observe(&h, 10000001);
	CHECK_EQ(h.count, 5);
	CHECK_EQ(h.bucket[0], 2);
	CHECK_EQ(h.bucket[1], 1);
	CHECK_EQ(h.bucket[11], 1);
	CHECK_EQ(h.sum_us, 12001002);
	CHECK_EQ(ntm_hist_le_us(0), 500);
	CHECK_STR(ntm_hist_le(NTM_HIST_BUCKETS), "+Inf");
	CHECK(ntm_hist_le_us(NTM_HIST_BUCKETS) == UINT64_MAX);

	ntm_prom_init(&p, 8192);
	ntm_prom_family(&p, "ntm_http_request_duration_seconds", NTM_PROM_HISTOGRAM,
	    "Time to answer");
	ntm_prom_hist(&p, (const char *const[]){ "route", "/v1/login", NULL }, &h);
	CHECK_EQ(ntm_prom_end(&p, &text, &len), 0);
	CHECK(strstr(text, "# TYPE ntm_http_request_duration_seconds histogram\n") != NULL);
	CHECK(strstr(text, "ntm_http_request_duration_seconds_bucket"
	    "{route=\"/v1/login\",le=\"0.0005\"} 2\n") != NULL);
	CHECK(strstr(text, "{route=\"/v1/login\",le=\"0.001\"} 3\n") != NULL);
	/* Cumulative: 2.5 s holds the 2 s one; +Inf holds all. */
	CHECK(strstr(text, "{route=\"/v1/login\",le=\"1\"} 3\n") != NULL);
	CHECK(strstr(text, "{route=\"/v1/login\",le=\"2.5\"} 4\n") != NULL);
	CHECK(strstr(text, "{route=\"/v1/login\",le=\"10\"} 4\n") != NULL);
	CHECK(strstr(text, "{route=\"/v1/login\",le=\"+Inf\"} 5\n") != NULL);
	CHECK(strstr(text, "ntm_http_request_duration_seconds_sum{route=\"/v1/login\"} "
	    "12.001002\n") != NULL);
	line = strstr(text, "ntm_http_request_duration_seconds_count{route=\"/v1/login\"} 5\n");
	CHECK(line != NULL && line[strlen(line) - 1] == '\n' &&
	    strchr(line, '\n') == text + len - 1);
	ntm_prom_free(&p);

	/* Without labels: only le. */
	ntm_prom_init(&p, 8192);
	ntm_prom_family(&p, "h_seconds", NTM_PROM_HISTOGRAM, "h");
	ntm_prom_hist(&p, NULL, &h);
	CHECK_EQ(ntm_prom_end(&p, &text, &len), 0);
	CHECK(strstr(text, "\nh_seconds_bucket{le=\"0.0005\"} 2\n") != NULL);
	CHECK(strstr(text, "\nh_seconds_count 5\n") != NULL);
	ntm_prom_free(&p);
}

/* Each mistake sticks: nothing after it is written, ntm_prom_end says. */
TEST(errors)
{
	static const struct {
		const char		*name;
		enum ntm_prom_type	 type;
		const char		*label;		/* one label name, or NULL */
		int			 hist;		/* sample as a histogram */
		int64_t			 v;
		int			 err;
	} t[] = {
		{ "ntm_ok_total", NTM_PROM_COUNTER, NULL, 0, 1, 0 },
		{ "ntm_ok", NTM_PROM_COUNTER, NULL, 0, 1, NTM_ERR_INVAL },	/* no _total */
		{ "ntm_ok_total", NTM_PROM_COUNTER, NULL, 0, -1, NTM_ERR_INVAL },
		{ "9ntm", NTM_PROM_GAUGE, NULL, 0, 1, NTM_ERR_INVAL },
		{ "ntm-dc", NTM_PROM_GAUGE, NULL, 0, 1, NTM_ERR_INVAL },
		{ "", NTM_PROM_GAUGE, NULL, 0, 1, NTM_ERR_INVAL },
		{ "ntm:rule", NTM_PROM_GAUGE, NULL, 0, 1, 0 },
		{ "ntm_g", NTM_PROM_GAUGE, "le", 0, 1, NTM_ERR_INVAL },
		{ "ntm_g", NTM_PROM_GAUGE, "a:b", 0, 1, NTM_ERR_INVAL },
		{ "ntm_g", NTM_PROM_GAUGE, "_ok9", 0, 1, 0 },
		{ "ntm_g", NTM_PROM_GAUGE, NULL, 1, 1, NTM_ERR_INVAL },		/* wrong kind */
		{ "ntm_h", NTM_PROM_HISTOGRAM, NULL, 0, 1, NTM_ERR_INVAL },
		{ "ntm_h", NTM_PROM_HISTOGRAM, NULL, 1, 1, 0 },
	};
	struct ntm_hist h;
	struct ntm_prom p;
	const char *text;
	size_t len;

	memset(&h, 0, sizeof(h));
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *labels[] = { t[i].label, "v", NULL };

		ntm_prom_init(&p, 4096);
		ntm_prom_family(&p, t[i].name, t[i].type, "help");
		if (t[i].hist)
			ntm_prom_hist(&p, t[i].label ? labels : NULL, &h);
		else
			ntm_prom_int(&p, t[i].label ? labels : NULL, t[i].v);
		ntm_prom_family(&p, "ntm_after", NTM_PROM_GAUGE, "after");
		ntm_prom_int(&p, NULL, 1);
		if (ntm_prom_end(&p, &text, &len) != t[i].err)
			fprintf(stderr, "case %zu (%s)\n", i, t[i].name);
		CHECK_EQ(ntm_prom_end(&p, &text, &len), t[i].err);
		ntm_prom_free(&p);
	}
	/* A sample before any family. */
	ntm_prom_init(&p, 4096);
	ntm_prom_int(&p, NULL, 1);
	CHECK_EQ(ntm_prom_end(&p, &text, &len), NTM_ERR_INVAL);
	ntm_prom_free(&p);
	/* A label without a value, and too many labels. */
	ntm_prom_init(&p, 4096);
	ntm_prom_family(&p, "ntm_g", NTM_PROM_GAUGE, "g");
	ntm_prom_int(&p, (const char *const[]){ "a", NULL }, 1);
	CHECK_EQ(ntm_prom_end(&p, &text, &len), NTM_ERR_INVAL);
	ntm_prom_free(&p);
	ntm_prom_init(&p, 4096);
	ntm_prom_family(&p, "ntm_g", NTM_PROM_GAUGE, "g");
	ntm_prom_int(&p, (const char *const[]){ "a", "1", "b", "1", "c", "1", "d", "1",
	    "e", "1", "f", "1", "g", "1", "h", "1", "i", "1", NULL }, 1);
	CHECK_EQ(ntm_prom_end(&p, &text, &len), NTM_ERR_INVAL);
	ntm_prom_free(&p);
}

/* The text never passes max: the sample that would is refused whole. */
TEST(bounded)
{
	struct ntm_prom p;
	const char *text;
	size_t len;
	int i;

	ntm_prom_init(&p, 200);
	ntm_prom_family(&p, "ntm_x", NTM_PROM_GAUGE, "x");
	for (i = 0; i < 100; i++)
		ntm_prom_int(&p, (const char *const[]){ "i", "0123456789", NULL }, i);
	CHECK_EQ(ntm_prom_end(&p, &text, &len), NTM_ERR_TOOBIG);
	CHECK(p.buf.len <= 200);
	CHECK(p.buf.len > 0 && p.buf.data[p.buf.len - 1] == '\n');
	ntm_prom_free(&p);
	ntm_prom_free(NULL);
	/* Nothing written: empty text. */
	ntm_prom_init(&p, 200);
	CHECK_EQ(ntm_prom_end(&p, &text, &len), 0);
	CHECK_STR(text, "");
	CHECK_EQ(len, 0);
	ntm_prom_free(&p);
}

UNIT_MAIN(T(counter_and_gauge), T(histogram), T(errors), T(bounded))
