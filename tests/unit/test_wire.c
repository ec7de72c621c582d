/* test_wire.c - UDP header checks, wire addresses, the replay window. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "ntm-rt.h"
#include "unit.h"

TEST(validate)
{
	static const struct { int type; size_t len; int want; } v[] = {
		{ NTM_MSG_REG_REQ, NTM_REG_REQ_LEN, NTM_MSG_REG_REQ },
		{ NTM_MSG_REG_REQ, NTM_REG_REQ_LEN - 1, NTM_ERR_SHORT },
		{ NTM_MSG_REG_REQ, NTM_REG_REQ_LEN + 1, NTM_ERR_TOOBIG },
		{ NTM_MSG_REG_RESP, NTM_REG_RESP_LEN, NTM_MSG_REG_RESP },
		{ NTM_MSG_NUDGE, NTM_NUDGE_LEN, NTM_MSG_NUDGE },
		{ NTM_MSG_MOVED, NTM_MOVED_LEN, NTM_MSG_MOVED },
		{ NTM_MSG_MOVED, NTM_MOVED_LEN - 1, NTM_ERR_SHORT },
		{ NTM_MSG_MOVED, NTM_MOVED_LEN + 1, NTM_ERR_TOOBIG },
		{ NTM_MSG_HS_INIT, NTM_HS_INIT_LEN, NTM_MSG_HS_INIT },
		{ NTM_MSG_HS_INIT, NTM_HS_INIT_LEN + 1, NTM_ERR_TOOBIG },
		{ NTM_MSG_HS_RESP, NTM_HS_RESP_LEN, NTM_MSG_HS_RESP },
		{ NTM_MSG_DATA, NTM_DATA_MIN_LEN, NTM_MSG_DATA },
		{ NTM_MSG_DATA, NTM_DATA_MIN_LEN - 1, NTM_ERR_SHORT },
		{ NTM_MSG_DATA, NTM_DATA_MAX_LEN, NTM_MSG_DATA },
		{ NTM_MSG_DATA, NTM_DATA_MAX_LEN + 1, NTM_ERR_TOOBIG },
		{ NTM_MSG_RELAY_BIND, NTM_RELAY_BIND_MIN, NTM_MSG_RELAY_BIND },
		{ NTM_MSG_RELAY_BIND, NTM_RELAY_BIND_MAX + 1, NTM_ERR_TOOBIG },
		{ NTM_MSG_RELAY_ACK, NTM_RELAY_ACK_LEN, NTM_MSG_RELAY_ACK },
		{ NTM_MSG_PROBE, NTM_PROBE_LEN, NTM_MSG_PROBE },
		{ NTM_MSG_PROBE, NTM_PROBE_LEN - 1, NTM_ERR_SHORT },
		{ NTM_MSG_PROBE, NTM_PROBE_LEN + 1, NTM_ERR_TOOBIG },
		{ NTM_MSG_PROBE_RESP, NTM_PROBE_RESP_LEN, NTM_MSG_PROBE_RESP },
		{ NTM_MSG_PROBE_RESP, NTM_PROBE_RESP_LEN + 1, NTM_ERR_TOOBIG },
		{ 0, 64, NTM_ERR_PROTO },
		{ 10, 64, NTM_ERR_PROTO },
		{ NTM_MSG_PUNCH, NTM_PUNCH_LEN, NTM_MSG_PUNCH },
		{ NTM_MSG_PUNCH, NTM_PUNCH_LEN - 1, NTM_ERR_SHORT },
		{ NTM_MSG_PUNCH, NTM_PUNCH_LEN + 1, NTM_ERR_TOOBIG },
		{ 14, 64, NTM_ERR_PROTO },
		{ 255, 64, NTM_ERR_PROTO },
	};
	uint8_t buf[NTM_UDP_MAX + 8];

	CHECK_EQ(NTM_REG_REQ_LEN, 128);
	CHECK_EQ(NTM_REG_RESP_LEN, 80);
	CHECK_EQ(NTM_NUDGE_LEN, 52);
	CHECK_EQ(NTM_MOVED_LEN, 80);
	CHECK_EQ(NTM_HS_INIT_LEN, 96);
	CHECK_EQ(NTM_HS_RESP_LEN, 76);
	CHECK_EQ(NTM_PUNCH_LEN, 48);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		memset(buf, 0, sizeof(buf));
		ntm_msg_header(buf, (enum ntm_msg)v[i].type);
		CHECK_EQ(ntm_msg_validate(buf, v[i].len), v[i].want);
	}
	ntm_msg_header(buf, NTM_MSG_DATA);
	buf[1] = 1;		/* a peer from before the device-key handshake */
	CHECK_EQ(ntm_msg_validate(buf, NTM_DATA_MIN_LEN), NTM_ERR_VERSION);
	buf[1] = NTM_UDP_VERSION + 1;
	CHECK_EQ(ntm_msg_validate(buf, NTM_DATA_MIN_LEN), NTM_ERR_VERSION);
	buf[1] = NTM_UDP_VERSION;
	buf[3] = 1;
	CHECK_EQ(ntm_msg_validate(buf, NTM_DATA_MIN_LEN), NTM_ERR_PROTO);
	CHECK_EQ(ntm_msg_validate(buf, 3), NTM_ERR_SHORT);
	CHECK_EQ(ntm_msg_validate(NULL, 0), NTM_ERR_SHORT);
}

TEST(waddr)
{
	static const char *const ok[] = { "198.18.0.1:7000", "[fd00::1]:1", "100.64.1.2:65535" };
	struct sockaddr_storage ss, back;
	socklen_t len, blen;
	uint8_t w[NTM_WADDR_LEN];
	char buf[64];

	for (size_t i = 0; i < 3; i++) {
		CHECK_EQ(ntm_sa_parse(&ss, &len, ok[i]), 0);
		CHECK_EQ(ntm_waddr_put(w, (struct sockaddr *)&ss), 0);
		CHECK_EQ(ntm_waddr_get(&back, &blen, w), 0);
		CHECK_EQ(blen, len);
		CHECK(ntm_sa_equal((struct sockaddr *)&ss, (struct sockaddr *)&back));
		CHECK_STR(ntm_sa_str((struct sockaddr *)&back, buf, sizeof(buf)), ok[i]);
	}
	/* IPv4-mapped IPv6 travels and prints as IPv4. */
	CHECK_EQ(ntm_sa_parse(&ss, &len, "[::ffff:198.18.0.9]:53"), 0);
	CHECK_EQ(ss.ss_family, AF_INET);
	struct sockaddr_in6 m = { .sin6_family = AF_INET6, .sin6_port = htons(9) };
	inet_pton(AF_INET6, "::ffff:1.2.3.4", &m.sin6_addr);
	CHECK_EQ(ntm_waddr_put(w, (struct sockaddr *)&m), 0);
	CHECK_EQ(w[0], 4);
	CHECK_STR(ntm_sa_str((struct sockaddr *)&m, buf, sizeof(buf)), "1.2.3.4:9");
	CHECK_EQ(ntm_sa_parse(&ss, &len, "1.2.3.4:9"), 0);
	CHECK(ntm_sa_equal((struct sockaddr *)&m, (struct sockaddr *)&ss));
	/* Empty slot, and malformed ones. */
	memset(w, 0, sizeof(w));
	CHECK_EQ(ntm_waddr_get(&back, &blen, w), 1);
	w[0] = 5;
	CHECK(ntm_waddr_get(&back, &blen, w) < 0);
	w[0] = 4; w[1] = 1;
	CHECK(ntm_waddr_get(&back, &blen, w) < 0);
	w[1] = 0; w[10] = 1;	/* IPv4 with junk after the address */
	CHECK(ntm_waddr_get(&back, &blen, w) < 0);
	static const char *const bad[] = { "", "1.2.3.4", "1.2.3.4:", "1.2.3.4:70000",
	    "fd00::1:5", "[fd00::1]5", "1.2.3.4:-1", "[zz]:1", "x:1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(ntm_sa_parse(&ss, &len, bad[i]) < 0);
}

TEST(window)
{
	struct ntm_window w;
	/* (counter, expected check result, record it after) */
	static const struct { uint64_t ctr; int want; } seq[] = {
		{ 0, 0 }, { 0, NTM_ERR_REPLAY }, { 1, 0 }, { 5, 0 }, { 3, 0 },
		{ 3, NTM_ERR_REPLAY }, { 2, 0 }, { 4, 0 }, { 5, NTM_ERR_REPLAY },
		{ 2000, 0 }, { 10, 0 },			/* still inside the window */
		{ 10, NTM_ERR_REPLAY },
		{ 10000, 0 }, { 2000, NTM_ERR_REPLAY },	/* slid past: too old */
		{ 10000 - 1900, 0 }, { 10000 - 1900, NTM_ERR_REPLAY },
		{ 10001, 0 }, { 9999, 0 },
		{ UINT64_MAX, NTM_ERR_REPLAY },
	};

	ntm_window_init(&w);
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		int got = ntm_window_check(&w, seq[i].ctr);
		if (got != seq[i].want)
			fprintf(stderr, "step %zu: counter %llu\n", i,
			    (unsigned long long)seq[i].ctr);
		CHECK_EQ(got, seq[i].want);
		if (got == 0)
			ntm_window_update(&w, seq[i].ctr);
	}
	/* Exhaustive: nothing within the window is ever accepted twice, and
	 * every counter older than the window is refused. */
	ntm_window_init(&w);
	for (uint64_t c = 0; c < 5000; c += 3) {
		CHECK_EQ(ntm_window_check(&w, c), 0);
		ntm_window_update(&w, c);
	}
	for (uint64_t c = 0; c < 5000; c += 3)
		CHECK_EQ(ntm_window_check(&w, c), NTM_ERR_REPLAY);
	CHECK_EQ(ntm_window_check(&w, 3998), 0);	/* never seen, in window */
	CHECK_EQ(ntm_window_check(&w, 1), NTM_ERR_REPLAY);	/* too old */
}

/* Stride-1 reordering over many laps: every pair of neighbours arrives
 * swapped (1 0 3 2 5 4 ...), so each even counter comes one place late.
 * Each must be accepted once and refused the second time, on every lap of
 * the window, including the packet that enters a word after the window
 * has wrapped (top a multiple of 64). */
TEST(window_swapped_neighbours)
{
	struct ntm_window w;
	unsigned refused = 0, replayed = 0;
	uint64_t first_bad = 0;

	ntm_window_init(&w);
	for (uint64_t c = 0; c < 100000; c += 2) {
		const uint64_t order[2] = { c + 1, c };
		for (int k = 0; k < 2; k++) {
			if (ntm_window_check(&w, order[k]) != 0) {
				if (refused++ == 0)
					first_bad = order[k];
				continue;
			}
			ntm_window_update(&w, order[k]);
			if (ntm_window_check(&w, order[k]) == 0)
				replayed++;
		}
	}
	if (refused)
		fprintf(stderr, "first refused: counter %llu\n",
		    (unsigned long long)first_bad);
	CHECK_EQ(refused, 0);
	CHECK_EQ(replayed, 0);
	/* Every counter of the last full window is now a replay, the one
	 * just below it too old to judge. */
	for (uint64_t c = 100000 - NTM_WINDOW_BITS + 64; c < 100000; c++)
		CHECK_EQ(ntm_window_check(&w, c), NTM_ERR_REPLAY);
	CHECK_EQ(ntm_window_check(&w, 100000 - 2 * NTM_WINDOW_BITS),
	    NTM_ERR_REPLAY);
	CHECK_EQ(ntm_window_check(&w, 100000), 0);
}

/* Late arrivals at every distance inside the window, lap after lap: the
 * counter d places late is accepted once for d below the window's span. */
TEST(window_late_by_d)
{
	static const unsigned dist[] = { 1, 2, 63, 64, 65, 127, 1000, 1983 };
	for (size_t j = 0; j < sizeof(dist) / sizeof(dist[0]); j++) {
		struct ntm_window w;
		unsigned d = dist[j], refused = 0;

		ntm_window_init(&w);
		/* Send 0..N-1 but hold back every counter divisible by
		 * (d + 1) until d newer ones have gone. */
		for (uint64_t c = 0; c < 20000; c++) {
			if (c % (d + 1) != 0) {
				if (ntm_window_check(&w, c) != 0)
					refused++;
				else
					ntm_window_update(&w, c);
			}
			if (c >= d && (c - d) % (d + 1) == 0) {
				if (ntm_window_check(&w, c - d) != 0)
					refused++;
				else
					ntm_window_update(&w, c - d);
			}
		}
		if (refused)
			fprintf(stderr, "late by %u: %u refused\n", d, refused);
		CHECK_EQ(refused, 0);
	}
}

UNIT_MAIN(T(validate), T(waddr), T(window), T(window_swapped_neighbours),
    T(window_late_by_d))
