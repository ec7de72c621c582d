/* test_probe.c - the reflection probe (lib/core/probe.c): the answer is
 * never longer than what it answers, floods from one source are cut to the
 * rate, and the NAT kinds, with literal times. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "probe.h"
#include "unit.h"

static const uint8_t K[16] = "probe-test-key-x";
static const uint8_t TX[NTM_PROBE_TXID_LEN] = "0123456789abcdef";

static struct sockaddr_storage
sa(const char *text)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memset(&ss, 0, sizeof(ss));
	if (ntm_sa_parse(&ss, &len, text) < 0)
		abort();
	return ss;
}

static socklen_t
salen(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

TEST(round_trip)
{
	struct ntm_probe_srv *s = ntm_probe_srv_new(10, 20, 1000, K);
	struct sockaddr_storage from = sa("198.18.2.1:40000"), from6 = sa("[fd00:18::10]:5"),
	    mapped = sa("[::ffff:198.18.2.1]:40001"), seen;
	uint8_t q[NTM_PROBE_LEN], a[NTM_UDP_MAX];
	socklen_t seenlen;
	char buf[64];
	size_t n;

	CHECK(s != NULL);
	CHECK_EQ(ntm_probe_make(q, TX), NTM_PROBE_LEN);
	CHECK_EQ(ntm_msg_validate(q, sizeof(q)), NTM_MSG_PROBE);
	n = ntm_probe_srv_input(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from), 1, a,
	    sizeof(a));
	CHECK_EQ(n, NTM_PROBE_RESP_LEN);
	CHECK(n <= sizeof(q));
	CHECK_EQ(ntm_msg_validate(a, n), NTM_MSG_PROBE_RESP);
	CHECK_EQ(ntm_probe_resp_open(a, n, TX, &seen, &seenlen), 0);
	CHECK_STR(ntm_sa_str((struct sockaddr *)&seen, buf, sizeof(buf)), "198.18.2.1:40000");
	/* Another probe's answer, a truncated or padded one, a probe itself. */
	CHECK_EQ(ntm_probe_resp_open(a, n, (const uint8_t *)"fedcba9876543210", &seen, &seenlen),
	    NTM_ERR_INVAL);
	CHECK_EQ(ntm_probe_resp_open(a, n - 1, TX, &seen, &seenlen), NTM_ERR_SHORT);
	CHECK_EQ(ntm_probe_resp_open(a, n + 1, TX, &seen, &seenlen), NTM_ERR_TOOBIG);
	CHECK_EQ(ntm_probe_resp_open(q, sizeof(q), TX, &seen, &seenlen), NTM_ERR_PROTO);
	a[NTM_PROBE_RESP_LEN - 1] = 1;
	CHECK_EQ(ntm_probe_resp_open(a, n, TX, &seen, &seenlen), NTM_ERR_PROTO);
	memset(a + NTM_HDR_LEN + NTM_PROBE_TXID_LEN, 0, NTM_PROBE_RESP_LEN - NTM_HDR_LEN -
	    NTM_PROBE_TXID_LEN);
	CHECK_EQ(ntm_probe_resp_open(a, n, TX, &seen, &seenlen), NTM_ERR_PROTO);	/* empty */

	/* IPv6, and IPv4 on a dual-stack socket (answered as IPv4). */
	n = ntm_probe_srv_input(s, q, sizeof(q), (struct sockaddr *)&from6, salen(&from6), 2, a,
	    sizeof(a));
	CHECK_EQ(ntm_probe_resp_open(a, n, TX, &seen, &seenlen), 0);
	CHECK_STR(ntm_sa_str((struct sockaddr *)&seen, buf, sizeof(buf)), "[fd00:18::10]:5");
	n = ntm_probe_srv_input(s, q, sizeof(q), (struct sockaddr *)&mapped, salen(&mapped), 3, a,
	    sizeof(a));
	CHECK_EQ(ntm_probe_resp_open(a, n, TX, &seen, &seenlen), 0);
	CHECK_EQ(seen.ss_family, AF_INET);
	CHECK_STR(ntm_sa_str((struct sockaddr *)&seen, buf, sizeof(buf)), "198.18.2.1:40001");
	ntm_probe_srv_free(s);
	ntm_probe_srv_free(NULL);
}

TEST(never_answers_more_than_it_got)
{
	struct ntm_probe_srv *s = ntm_probe_srv_new(1e6, 1e6, 1e6, K);
	struct sockaddr_storage from = sa("198.18.2.1:40000");
	uint8_t q[NTM_UDP_MAX + 8], a[NTM_UDP_MAX];
	struct ntm_probe_stats st;
	size_t n;

	/* Every length and every type byte: an answer only to an exact PROBE,
	 * and never longer than the datagram it answers. */
	for (int type = 0; type < 256; type++)
		for (size_t len = 0; len <= sizeof(q); len++) {
			memset(q, 0, sizeof(q));
			if (len > 0)
				q[0] = (uint8_t)type;
			if (len > 1)
				q[1] = NTM_UDP_VERSION;
			n = ntm_probe_srv_input(s, q, len, (struct sockaddr *)&from,
			    sizeof(struct sockaddr_in), 1, a, sizeof(a));
			CHECK(n <= len);
			CHECK(n == 0 || (type == NTM_MSG_PROBE && len == NTM_PROBE_LEN));
		}
	/* Padding that is not zero, a wrong version: no answer. */
	ntm_probe_make(q, TX);
	q[NTM_PROBE_LEN - 1] = 0xff;
	CHECK_EQ(ntm_probe_srv_input(s, q, NTM_PROBE_LEN, (struct sockaddr *)&from,
	    sizeof(struct sockaddr_in), 1, a, sizeof(a)), 0);
	ntm_probe_make(q, TX);
	q[1] = NTM_UDP_VERSION + 1;
	CHECK_EQ(ntm_probe_srv_input(s, q, NTM_PROBE_LEN, (struct sockaddr *)&from,
	    sizeof(struct sockaddr_in), 1, a, sizeof(a)), 0);
	/* Every flags byte: an answer (never longer, alt or not) only to the
	 * known flags. */
	for (int f = 0; f < 256; f++) {
		int alt;

		ntm_probe_make_flags(q, TX, (uint8_t)f);
		n = ntm_probe_srv_answer(s, q, NTM_PROBE_LEN, (struct sockaddr *)&from,
		    sizeof(struct sockaddr_in), 1, 3479, a, sizeof(a), &alt);
		CHECK(n <= NTM_PROBE_LEN);
		CHECK_EQ(n > 0, (f & ~NTM_PROBE_F_ALL) == 0 && f != NTM_PROBE_F_ADDR);
		/* no other address here: CHANGE|ADDR from this port */
		CHECK_EQ(alt, n > 0 && (f & NTM_PROBE_F_CHANGE) && !(f & NTM_PROBE_F_ADDR));
	}
	/* Too small a buffer for the answer: nothing. */
	ntm_probe_make(q, TX);
	CHECK_EQ(ntm_probe_srv_input(s, q, NTM_PROBE_LEN, (struct sockaddr *)&from,
	    sizeof(struct sockaddr_in), 1, a, NTM_PROBE_RESP_LEN - 1), 0);
	ntm_probe_srv_stats(s, &st);
	CHECK_EQ(st.answered, 1 + 7);
	CHECK_EQ(st.alt_answered, 2);
	CHECK_EQ(st.limited, 0);
	ntm_probe_srv_free(s);
}

TEST(flood_limited)
{
	struct ntm_probe_srv *s = ntm_probe_srv_new(10, 20, 100, K);
	struct sockaddr_storage from = sa("198.18.2.1:1"), other = sa("198.18.9.9:1");
	struct ntm_probe_stats st;
	uint8_t q[NTM_PROBE_LEN], a[NTM_PROBE_RESP_LEN];
	int n = 0;

	ntm_probe_make(q, TX);
	/* 10,000 probes from one address, from changing ports, at one time:
	 * the burst is answered, the rest not. */
	for (int i = 0; i < 10000; i++) {
		((struct sockaddr_in *)&from)->sin_port = htons((uint16_t)(1 + i));
		n += ntm_probe_srv_input(s, q, sizeof(q), (struct sockaddr *)&from,
		    sizeof(struct sockaddr_in), 1000, a, sizeof(a)) > 0;
	}
	CHECK_EQ(n, 20);
	/* Another address is answered meanwhile. */
	CHECK(ntm_probe_srv_input(s, q, sizeof(q), (struct sockaddr *)&other,
	    sizeof(struct sockaddr_in), 1000, a, sizeof(a)) > 0);
	/* A second later, 10 more. */
	n = 0;
	for (int i = 0; i < 100; i++)
		n += ntm_probe_srv_input(s, q, sizeof(q), (struct sockaddr *)&from,
		    sizeof(struct sockaddr_in), 2000, a, sizeof(a)) > 0;
	CHECK_EQ(n, 10);
	ntm_probe_srv_stats(s, &st);
	CHECK_EQ(st.answered, 31);
	CHECK_EQ(st.limited, 10000 - 20 + 100 - 10);
	ntm_probe_srv_free(s);

	/* The total: many sources at once get no more than total_rate. */
	s = ntm_probe_srv_new(10, 20, 100, K);
	n = 0;
	for (int i = 0; i < 1000; i++) {
		((struct sockaddr_in *)&other)->sin_addr.s_addr = htonl(0xc6120000u + (uint32_t)i);
		n += ntm_probe_srv_input(s, q, sizeof(q), (struct sockaddr *)&other,
		    sizeof(struct sockaddr_in), 5000, a, sizeof(a)) > 0;
	}
	CHECK_EQ(n, 100);
	ntm_probe_srv_free(s);
	CHECK(ntm_probe_srv_new(10, 20, 0, K) == NULL);
	CHECK(ntm_probe_srv_new(0, 20, 10, K) == NULL);
}

TEST(classify)
{
	struct sockaddr_storage local = sa("100.64.2.10:40000"), nat = sa("198.18.2.1:40000"),
	    nat2 = sa("198.18.2.1:51234"), glob = sa("198.18.1.10:40000");
	const struct sockaddr *l = (struct sockaddr *)&local, *n1 = (struct sockaddr *)&nat,
	    *n2 = (struct sockaddr *)&nat2, *g = (struct sockaddr *)&glob;
	static const struct { int k; const char *name; } names[] = {
		{ NTM_NAT_UNKNOWN, "unknown" }, { NTM_NAT_NONE, "none" },
		{ NTM_NAT_NATTED, "natted" }, { NTM_NAT_EI, "endpoint-independent" },
		{ NTM_NAT_PER_DEST, "varies-by-destination" }, { 99, "unknown" },
	};

	CHECK_EQ(ntm_nat_classify(l, NULL, NULL), NTM_NAT_UNKNOWN);
	CHECK_EQ(ntm_nat_classify(l, n1, n1), NTM_NAT_EI);
	CHECK_EQ(ntm_nat_classify(l, n1, n2), NTM_NAT_PER_DEST);
	CHECK_EQ(ntm_nat_classify(l, n1, NULL), NTM_NAT_NATTED);
	CHECK_EQ(ntm_nat_classify(l, NULL, n2), NTM_NAT_NATTED);
	CHECK_EQ(ntm_nat_classify(g, g, g), NTM_NAT_NONE);
	CHECK_EQ(ntm_nat_classify(g, NULL, g), NTM_NAT_NONE);
	CHECK_EQ(ntm_nat_classify(NULL, g, g), NTM_NAT_EI);	/* local unknown */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK_STR(ntm_nat_name(names[i].k), names[i].name);
}

/* The filtering test: a probe asking for the other port. */
TEST(change_port)
{
	struct ntm_probe_srv *s = ntm_probe_srv_new(10, 20, 1000, K);
	struct sockaddr_storage from = sa("198.18.2.1:40000"), seen;
	uint8_t q[NTM_PROBE_LEN], a[NTM_UDP_MAX], flags;
	struct ntm_probe_stats st;
	uint16_t other;
	socklen_t seenlen;
	char buf[64];
	size_t n;
	int alt;

	CHECK_EQ(ntm_probe_make_flags(q, TX, NTM_PROBE_F_CHANGE), NTM_PROBE_LEN);
	/* A server with an other port: answered from there, naming it. */
	n = ntm_probe_srv_answer(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from), 1,
	    7001, a, sizeof(a), &alt);
	CHECK_EQ(n, NTM_PROBE_RESP_LEN);
	CHECK(n <= sizeof(q));
	CHECK_EQ(alt, 1);
	CHECK_EQ(ntm_probe_resp_open_flags(a, n, TX, &seen, &seenlen, &flags, &other), 0);
	CHECK_EQ(flags, NTM_PROBE_R_CHANGED);
	CHECK_EQ(other, 7001);
	CHECK_STR(ntm_sa_str((struct sockaddr *)&seen, buf, sizeof(buf)), "198.18.2.1:40000");
	/* An older client (zero padding only) refuses it: it never asks. */
	CHECK_EQ(ntm_probe_resp_open(a, n, TX, &seen, &seenlen), NTM_ERR_PROTO);
	/* Without an other port (a DC; an RS with probe_alt_port 0): from this
	 * port, saying so. */
	n = ntm_probe_srv_answer(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from), 2, 0,
	    a, sizeof(a), &alt);
	CHECK_EQ(alt, 0);
	CHECK_EQ(ntm_probe_resp_open_flags(a, n, TX, &seen, &seenlen, &flags, &other), 0);
	CHECK_EQ(flags, 0);
	CHECK_EQ(other, 0);
	n = ntm_probe_srv_input(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from), 3, a,
	    sizeof(a));
	CHECK_EQ(ntm_probe_resp_open_flags(a, n, TX, &seen, &seenlen, &flags, &other), 0);
	CHECK_EQ(other, 0);
	/* Asking for the other port only: from this port, naming it. */
	ntm_probe_make_flags(q, TX, NTM_PROBE_F_ASK);
	n = ntm_probe_srv_answer(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from), 4,
	    7001, a, sizeof(a), &alt);
	CHECK_EQ(alt, 0);
	CHECK_EQ(ntm_probe_resp_open_flags(a, n, TX, &seen, &seenlen, &flags, &other), 0);
	CHECK_EQ(flags, 0);
	CHECK_EQ(other, 7001);
	/* A plain probe gets the old answer, all zero padding. */
	ntm_probe_make(q, TX);
	n = ntm_probe_srv_answer(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from), 5,
	    7001, a, sizeof(a), &alt);
	CHECK_EQ(alt, 0);
	CHECK_EQ(ntm_probe_resp_open(a, n, TX, &seen, &seenlen), 0);
	/* Unknown flag bits, or an answer with them: malformed. */
	ntm_probe_make_flags(q, TX, 0x04);
	CHECK_EQ(ntm_probe_srv_answer(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from),
	    6, 7001, a, sizeof(a), &alt), 0);
	ntm_probe_make_flags(q, TX, NTM_PROBE_F_CHANGE);
	n = ntm_probe_srv_answer(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from), 7,
	    7001, a, sizeof(a), &alt);
	a[NTM_HDR_LEN + NTM_PROBE_TXID_LEN + NTM_WADDR_LEN] |= 0x80;
	CHECK_EQ(ntm_probe_resp_open_flags(a, n, TX, &seen, &seenlen, &flags, &other),
	    NTM_ERR_PROTO);
	ntm_probe_srv_stats(s, &st);
	CHECK_EQ(st.answered, 6);
	CHECK_EQ(st.alt_answered, 2);
	CHECK_EQ(st.malformed, 1);
	/* The same per-source rate: 20 in a burst, whichever port answers. */
	n = 0;
	for (int i = 0; i < 100; i++)
		n += ntm_probe_srv_answer(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from),
		    7, 7001, a, sizeof(a), &alt) > 0;
	CHECK_EQ(n, 20 - 6);
	ntm_probe_srv_free(s);
}

TEST(filter_classify)
{
	CHECK_EQ(ntm_filter_classify(NTM_NAT_UNKNOWN, 1, 1), NTM_FILTER_UNKNOWN);
	CHECK_EQ(ntm_filter_classify(NTM_NAT_EI, 0, 0), NTM_FILTER_UNKNOWN);
	CHECK_EQ(ntm_filter_classify(NTM_NAT_EI, 1, 0), NTM_FILTER_PORT);
	CHECK_EQ(ntm_filter_classify(NTM_NAT_EI, 1, 1), NTM_FILTER_ADDR);
	CHECK_EQ(ntm_filter_classify(NTM_NAT_PER_DEST, 1, 1), NTM_FILTER_ADDR);
	CHECK_EQ(ntm_filter_classify(NTM_NAT_NONE, 1, 1), NTM_FILTER_NONE);
	CHECK_EQ(ntm_filter_classify(NTM_NAT_NONE, 1, 0), NTM_FILTER_PORT);
	CHECK_STR(ntm_filter_name(NTM_FILTER_UNKNOWN), "unknown");
	CHECK_STR(ntm_filter_name(NTM_FILTER_NONE), "none");
	CHECK_STR(ntm_filter_name(NTM_FILTER_ADDR), "address-dependent-or-less");
	CHECK_STR(ntm_filter_name(NTM_FILTER_PORT), "port-dependent");
}

/* The client side against a server (lib/core/probe.c's own), answers
 * taken only from where they must come from. */
TEST(filt_client)
{
	struct ntm_probe_srv *s = ntm_probe_srv_new(100, 200, 1000, K);
	struct sockaddr_storage srv = sa("198.18.0.4:3478"), alt = sa("198.18.0.4:3479"),
	    wrong = sa("198.18.0.9:3479"), me = sa("198.18.2.1:40000"),
	    mapped = sa("[::ffff:198.18.0.4]:3479");
	uint8_t out[NTM_FILT_PER_ROUND][NTM_PROBE_LEN], a1[NTM_PROBE_LEN], a2[NTM_PROBE_LEN],
	    a3[NTM_PROBE_LEN];
	struct ntm_filt_test t;
	size_t n1, n2, n3;
	int alt1, alt2, alt3;

	ntm_filt_start(&t, (struct sockaddr *)&srv);
	CHECK(ntm_filt_pending(&t));
	CHECK_EQ(ntm_filt_verdict(&t, NTM_NAT_EI), NTM_FILTER_UNKNOWN);
	/* CHANGE, ASK|ADDR, CHANGE|ADDR (a plain ASK only from round 2) */
	CHECK_EQ(ntm_filt_round(&t, out), 3);
	n2 = ntm_probe_srv_answer(s, out[0], NTM_PROBE_LEN, (struct sockaddr *)&me, salen(&me),
	    1, 3479, a2, sizeof(a2), &alt2);
	/* No other address: the ASK|ADDR's answer says so, naming the port. */
	n3 = ntm_probe_srv_answer(s, out[1], NTM_PROBE_LEN, (struct sockaddr *)&me, salen(&me),
	    1, 3479, a3, sizeof(a3), &alt3);
	CHECK_EQ(alt2, 1);
	CHECK_EQ(alt3, 0);
	/* The ASK's answer from elsewhere than the server: refused. */
	CHECK_EQ(ntm_filt_input(&t, a3, n3, (struct sockaddr *)&alt, salen(&alt)), 0);
	CHECK_EQ(ntm_filt_input(&t, a3, n3, (struct sockaddr *)&srv, salen(&srv)), 1);
	CHECK(ntm_filt_pending(&t));
	/* Only the ASK's answer (the CHANGE's filtered): port-dependent. */
	CHECK_EQ(ntm_filt_verdict(&t, NTM_NAT_EI), NTM_FILTER_PORT);
	CHECK_EQ(ntm_filt_verdict(&t, NTM_NAT_NONE), NTM_FILTER_PORT);
	/* The CHANGE's answer from another address, or the server's own
	 * port: refused; from the other port (as a dual-stack socket gives
	 * it): taken. */
	CHECK_EQ(ntm_filt_input(&t, a2, n2, (struct sockaddr *)&wrong, salen(&wrong)), 0);
	CHECK_EQ(ntm_filt_input(&t, a2, n2, (struct sockaddr *)&srv, salen(&srv)), 0);
	CHECK_EQ(ntm_filt_input(&t, a2, n2, (struct sockaddr *)&mapped, salen(&mapped)), 1);
	CHECK(!ntm_filt_pending(&t));
	CHECK_EQ(ntm_filt_round(&t, out), 0);
	CHECK_EQ(ntm_filt_verdict(&t, NTM_NAT_EI), NTM_FILTER_ADDR);
	CHECK_EQ(ntm_filt_verdict(&t, NTM_NAT_NONE), NTM_FILTER_NONE);
	CHECK_EQ(ntm_filt_verdict(&t, NTM_NAT_UNKNOWN), NTM_FILTER_UNKNOWN);
	/* A plain probe's answer is not the test's. */
	ntm_probe_make(out[0], TX);
	n1 = ntm_probe_srv_input(s, out[0], NTM_PROBE_LEN, (struct sockaddr *)&me, salen(&me),
	    2, a1, sizeof(a1));
	CHECK_EQ(ntm_filt_input(&t, a1, n1, (struct sockaddr *)&srv, salen(&srv)), 0);

	/* A server with no other port and no other address: its answers to
	 * the CHANGEs end the test, unknown. */
	ntm_filt_start(&t, (struct sockaddr *)&srv);
	CHECK_EQ(ntm_filt_round(&t, out), 3);
	n2 = ntm_probe_srv_answer(s, out[0], NTM_PROBE_LEN, (struct sockaddr *)&me, salen(&me),
	    3, 0, a2, sizeof(a2), &alt2);
	CHECK_EQ(ntm_filt_input(&t, a2, n2, (struct sockaddr *)&srv, salen(&srv)), 1);
	CHECK(ntm_filt_pending(&t));
	n3 = ntm_probe_srv_answer(s, out[2], NTM_PROBE_LEN, (struct sockaddr *)&me, salen(&me),
	    3, 0, a3, sizeof(a3), &alt3);
	CHECK_EQ(ntm_filt_input(&t, a3, n3, (struct sockaddr *)&srv, salen(&srv)), 1);
	CHECK(!ntm_filt_pending(&t));
	CHECK_EQ(ntm_filt_verdict(&t, NTM_NAT_EI), NTM_FILTER_UNKNOWN);

	/* A server from before ADDR (it drops the ADDR probes as malformed):
	 * the second round's plain ASK gets the other port named, which the
	 * filtered CHANGE makes port-dependent at the end. */
	ntm_filt_start(&t, (struct sockaddr *)&srv);
	CHECK_EQ(ntm_filt_round(&t, out), 3);
	CHECK_EQ(ntm_filt_round(&t, out), 4);
	n1 = ntm_probe_srv_answer(s, out[3], NTM_PROBE_LEN, (struct sockaddr *)&me, salen(&me),
	    4, 3479, a1, sizeof(a1), &alt1);
	CHECK_EQ(alt1, 0);
	CHECK_EQ(ntm_filt_input(&t, a1, n1, (struct sockaddr *)&alt, salen(&alt)), 0);
	CHECK_EQ(ntm_filt_input(&t, a1, n1, (struct sockaddr *)&srv, salen(&srv)), 1);
	CHECK_EQ(ntm_filt_round(&t, out), 3);	/* CHANGE, ASK|ADDR, CHANGE|ADDR */
	CHECK_EQ(ntm_filt_round(&t, out), 0);
	CHECK_EQ(ntm_filt_verdict(&t, NTM_NAT_EI), NTM_FILTER_PORT);

	/* A server from before the flags answers nothing: 3 rounds (the ASKs
	 * dropped each time), then unknown. */
	ntm_filt_start(&t, (struct sockaddr *)&srv);
	CHECK_EQ(ntm_filt_round(&t, out), 3);
	CHECK_EQ(ntm_filt_round(&t, out), 4);
	CHECK_EQ(ntm_filt_round(&t, out), 4);
	CHECK_EQ(ntm_filt_round(&t, out), 0);
	CHECK_EQ(ntm_filt_verdict(&t, NTM_NAT_EI), NTM_FILTER_UNKNOWN);
	ntm_probe_srv_free(s);
}

/* The address test: a server with another address answers a CHANGE|ADDR
 * from there and names it in answers to probes with ADDR only. */
TEST(change_addr)
{
	struct ntm_probe_srv *s = ntm_probe_srv_new(10, 20, 1000, K);
	struct sockaddr_storage from = sa("198.18.2.1:40000"), from6 = sa("[fd00:18::10]:5"),
	    other = sa("198.18.0.6:50000"), mapped = sa("[::ffff:198.18.2.1]:40000"), seen, oa;
	uint8_t q[NTM_PROBE_LEN], a[NTM_UDP_MAX], flags;
	struct ntm_probe_stats st;
	uint16_t port;
	socklen_t seenlen;
	char buf[64];
	size_t n;
	int alt;

	ntm_probe_make_flags(q, TX, NTM_PROBE_F_CHANGE | NTM_PROBE_F_ADDR);
	n = ntm_probe_srv_answer_addr(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from),
	    1, 7001, (struct sockaddr *)&other, a, sizeof(a), &alt);
	CHECK_EQ(n, NTM_PROBE_RESP_LEN);
	CHECK_EQ(alt, NTM_PROBE_ALT_ADDR);
	CHECK_EQ(ntm_probe_resp_open_addr(a, n, TX, &seen, &seenlen, &flags, &port, &oa), 0);
	CHECK_EQ(flags, NTM_PROBE_R_ADDR);
	CHECK_EQ(port, 7001);
	CHECK_STR(ntm_sa_str((struct sockaddr *)&oa, buf, sizeof(buf)), "198.18.0.6:50000");
	/* A client that asked for the port only refuses the address field. */
	CHECK_EQ(ntm_probe_resp_open_flags(a, n, TX, &seen, &seenlen, &flags, &port),
	    NTM_ERR_PROTO);
	/* The same from an IPv4-mapped source. */
	n = ntm_probe_srv_answer_addr(s, q, sizeof(q), (struct sockaddr *)&mapped,
	    salen(&mapped), 2, 7001, (struct sockaddr *)&other, a, sizeof(a), &alt);
	CHECK_EQ(alt, NTM_PROBE_ALT_ADDR);
	/* An IPv6 source: the IPv4 other address is none for it, answered
	 * from this port, naming none. */
	n = ntm_probe_srv_answer_addr(s, q, sizeof(q), (struct sockaddr *)&from6, salen(&from6),
	    3, 7001, (struct sockaddr *)&other, a, sizeof(a), &alt);
	CHECK_EQ(alt, 0);
	CHECK_EQ(ntm_probe_resp_open_addr(a, n, TX, &seen, &seenlen, &flags, &port, &oa), 0);
	CHECK_EQ(flags, 0);
	CHECK_EQ(oa.ss_family, 0);
	/* ASK|ADDR: from this port, naming both. */
	ntm_probe_make_flags(q, TX, NTM_PROBE_F_ASK | NTM_PROBE_F_ADDR);
	n = ntm_probe_srv_answer_addr(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from),
	    4, 7001, (struct sockaddr *)&other, a, sizeof(a), &alt);
	CHECK_EQ(alt, 0);
	CHECK_EQ(ntm_probe_resp_open_addr(a, n, TX, &seen, &seenlen, &flags, &port, &oa), 0);
	CHECK_EQ(flags, 0);
	CHECK_EQ(port, 7001);
	CHECK_STR(ntm_sa_str((struct sockaddr *)&oa, buf, sizeof(buf)), "198.18.0.6:50000");
	/* The port test's probes get no address (older clients check). */
	ntm_probe_make_flags(q, TX, NTM_PROBE_F_ASK);
	n = ntm_probe_srv_answer_addr(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from),
	    5, 7001, (struct sockaddr *)&other, a, sizeof(a), &alt);
	CHECK_EQ(ntm_probe_resp_open_flags(a, n, TX, &seen, &seenlen, &flags, &port), 0);
	/* ADDR alone: malformed; an answer from the other address that names
	 * none: malformed. */
	ntm_probe_make_flags(q, TX, NTM_PROBE_F_ADDR);
	CHECK_EQ(ntm_probe_srv_answer_addr(s, q, sizeof(q), (struct sockaddr *)&from,
	    salen(&from), 6, 7001, (struct sockaddr *)&other, a, sizeof(a), &alt), 0);
	ntm_probe_make_flags(q, TX, NTM_PROBE_F_CHANGE | NTM_PROBE_F_ADDR);
	n = ntm_probe_srv_answer_addr(s, q, sizeof(q), (struct sockaddr *)&from, salen(&from),
	    7, 7001, (struct sockaddr *)&other, a, sizeof(a), &alt);
	memset(a + NTM_HDR_LEN + NTM_PROBE_TXID_LEN + NTM_WADDR_LEN + 3, 0, NTM_WADDR_LEN);
	CHECK_EQ(ntm_probe_resp_open_addr(a, n, TX, &seen, &seenlen, &flags, &port, &oa),
	    NTM_ERR_PROTO);
	ntm_probe_srv_stats(s, &st);
	CHECK_EQ(st.answered, 6);
	CHECK_EQ(st.alt_addr_answered, 3);
	CHECK_EQ(st.alt_answered, 0);
	CHECK_EQ(st.malformed, 1);
	ntm_probe_srv_free(s);
}

/* The whole test against a server with an other port and an other
 * address, through each kind of filter: what gets in decides. */
TEST(filt_kinds)
{
	static const struct {
		const char	*name;
		int		 port_in, addr_in;	/* the filter lets in */
		int		 has_addr;		/* the server has an other address */
		enum ntm_nat	 nat;
		enum ntm_filter	 want;
	} tab[] = {
		{ "open, no NAT", 1, 1, 1, NTM_NAT_NONE, NTM_FILTER_NONE },
		{ "endpoint-independent", 1, 1, 1, NTM_NAT_EI, NTM_FILTER_EI },
		{ "address-dependent", 1, 0, 1, NTM_NAT_EI, NTM_FILTER_ADDR_DEP },
		{ "address-dependent firewall", 1, 0, 1, NTM_NAT_NONE, NTM_FILTER_ADDR_DEP },
		{ "port-dependent", 0, 0, 1, NTM_NAT_EI, NTM_FILTER_PORT },
		{ "no other address, port in", 1, 1, 0, NTM_NAT_EI, NTM_FILTER_ADDR },
		{ "no other address, port out", 0, 1, 0, NTM_NAT_EI, NTM_FILTER_PORT },
		{ "no NAT verdict", 1, 1, 1, NTM_NAT_UNKNOWN, NTM_FILTER_UNKNOWN },
	};
	struct sockaddr_storage srv = sa("198.18.0.4:3478"), altp = sa("198.18.0.4:3479"),
	    alta = sa("198.18.0.6:50000"), me = sa("198.18.2.1:40000");

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		struct ntm_probe_srv *s = ntm_probe_srv_new(100, 200, 1000, K);
		uint8_t out[NTM_FILT_PER_ROUND][NTM_PROBE_LEN], a[NTM_PROBE_LEN];
		struct ntm_filt_test t;
		int np, rounds = 0, alt;

		ntm_filt_start(&t, (struct sockaddr *)&srv);
		while ((np = ntm_filt_round(&t, out)) > 0) {
			rounds++;
			for (int k = 0; k < np; k++) {
				size_t n = ntm_probe_srv_answer_addr(s, out[k], NTM_PROBE_LEN,
				    (struct sockaddr *)&me, salen(&me), rounds, 3479,
				    tab[i].has_addr ? (struct sockaddr *)&alta : NULL, a,
				    sizeof(a), &alt);
				const struct sockaddr_storage *src = alt == NTM_PROBE_ALT_ADDR ?
				    &alta : alt ? &altp : &srv;

				if ((alt == NTM_PROBE_ALT_PORT && !tab[i].port_in) ||
				    (alt == NTM_PROBE_ALT_ADDR && !tab[i].addr_in))
					continue;
				CHECK_EQ(ntm_filt_input(&t, a, n, (const struct sockaddr *)src,
				    salen(src)), 1);
			}
		}
		if (ntm_filt_verdict(&t, tab[i].nat) != tab[i].want)
			fprintf(stderr, "filt_kinds: %s: %s\n", tab[i].name,
			    ntm_filter_name(ntm_filt_verdict(&t, tab[i].nat)));
		CHECK_EQ(ntm_filt_verdict(&t, tab[i].nat), tab[i].want);
		/* What came in ends the test at once; a filtered answer is
		 * waited for to the last round. */
		CHECK_EQ(rounds, tab[i].addr_in && tab[i].has_addr ? 1 :
		    !tab[i].has_addr && tab[i].port_in ? 1 : NTM_FILT_ROUNDS);
		ntm_probe_srv_free(s);
	}
	CHECK_EQ(ntm_filter_parse("endpoint-independent"), NTM_FILTER_EI);
	CHECK_EQ(ntm_filter_parse("address-dependent"), NTM_FILTER_ADDR_DEP);
	CHECK_EQ(ntm_filter_parse("unknown"), NTM_FILTER_UNKNOWN);
	CHECK_EQ(ntm_filter_parse("full-cone"), -1);
	CHECK_STR(ntm_filter_name((enum ntm_filter)99), "unknown");
}

UNIT_MAIN(T(round_trip), T(never_answers_more_than_it_got), T(flood_limited), T(classify),
    T(change_port), T(filter_classify), T(filt_client), T(change_addr), T(filt_kinds))
