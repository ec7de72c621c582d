/* test_fw.c - TUN mode's inbound filter (lib/core/fw.c): default deny,
 * flows this host opened, rules, ICMP, fragments and expiry, with literal
 * packets and times. */
#include <stdint.h>
#include <string.h>

#include "fw.h"
#include "unit.h"

static const uint8_t ME4[4] = { 100, 64, 1, 2 }, PEER4[4] = { 100, 64, 2, 2 },
    OTHER4[4] = { 100, 64, 2, 3 };
static const uint8_t ME6[16] = { 0xfd, 0, 0x6e, 0x74, 0, 1, [15] = 2 },
    PEER6[16] = { 0xfd, 0, 0x6e, 0x74, 0, 2, [15] = 2 };

#define T0	1700000000000LL		/* ms */

/* An IPv4 packet src -> dst of proto with an upper-layer header l4 (n
 * bytes); frag: the fragment offset field. Returns the length. */
static size_t
ip4(uint8_t *b, const uint8_t src[4], const uint8_t dst[4], uint8_t proto,
    const uint8_t *l4, size_t n, uint16_t frag)
{
	memset(b, 0, 20);
	b[0] = 0x45;
	b[2] = (uint8_t)((20 + n) >> 8);
	b[3] = (uint8_t)(20 + n);
	b[6] = (uint8_t)(frag >> 8);
	b[7] = (uint8_t)frag;
	b[8] = 64;
	b[9] = proto;
	memcpy(b + 12, src, 4);
	memcpy(b + 16, dst, 4);
	memcpy(b + 20, l4, n);
	return 20 + n;
}

static size_t
ip6(uint8_t *b, const uint8_t src[16], const uint8_t dst[16], uint8_t nh,
    const uint8_t *l4, size_t n)
{
	memset(b, 0, 40);
	b[0] = 0x60;
	b[4] = (uint8_t)(n >> 8);
	b[5] = (uint8_t)n;
	b[6] = nh;
	b[7] = 64;
	memcpy(b + 8, src, 16);
	memcpy(b + 24, dst, 16);
	memcpy(b + 40, l4, n);
	return 40 + n;
}

/* TCP header sport -> dport with flags; UDP; ICMP type with echo id. */
static const uint8_t *
tcp(uint16_t sport, uint16_t dport, uint8_t flags)
{
	static uint8_t h[20];

	memset(h, 0, sizeof(h));
	h[0] = (uint8_t)(sport >> 8); h[1] = (uint8_t)sport;
	h[2] = (uint8_t)(dport >> 8); h[3] = (uint8_t)dport;
	h[12] = 0x50;
	h[13] = flags;
	return h;
}

static const uint8_t *
udp(uint16_t sport, uint16_t dport)
{
	static uint8_t h[8];

	memset(h, 0, sizeof(h));
	h[0] = (uint8_t)(sport >> 8); h[1] = (uint8_t)sport;
	h[2] = (uint8_t)(dport >> 8); h[3] = (uint8_t)dport;
	h[5] = 8;
	return h;
}

static const uint8_t *
icmp(uint8_t type, uint16_t id)
{
	static uint8_t h[8];

	memset(h, 0, sizeof(h));
	h[0] = type;
	h[4] = (uint8_t)(id >> 8); h[5] = (uint8_t)id;
	return h;
}

#define SYN	0x02
#define ACK	0x10

static struct ntm_fw *
fw_with(const char *const *rules)
{
	struct ntm_fw *fw = ntm_fw_new(42);
	struct ntm_fw_rule r;
	char err[160];

	for (; rules && *rules; rules++) {
		CHECK_EQ(ntm_fw_rule_parse(&r, *rules, err, sizeof(err)), 0);
		CHECK_EQ(ntm_fw_add(fw, &r), 0);
	}
	return fw;
}

TEST(default_deny)
{
	struct ntm_fw *fw = fw_with(NULL);
	uint8_t b[128];

	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 6,
	    tcp(40000, 22, SYN), 20, 0), T0), NTM_FW_DROP);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 17,
	    udp(40000, 53), 8, 0), T0), NTM_FW_DROP);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 1,
	    icmp(8, 7), 8, 0), T0), NTM_FW_DROP);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip6(b, PEER6, ME6, 6,
	    tcp(40000, 22, SYN), 20), T0), NTM_FW_DROP);
	/* Garbage and short packets. */
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, 0, T0), NTM_FW_DROP);
	b[0] = 0x45;
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, 10, T0), NTM_FW_DROP);
	b[0] = 0x75;
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, 60, T0), NTM_FW_DROP);
	/* An unexpired ACK with no flow: dropped too (not a SYN check). */
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 6,
	    tcp(40000, 22, ACK), 20, 0), T0), NTM_FW_DROP);
	ntm_fw_free(fw);
}

TEST(flows_we_opened)
{
	struct ntm_fw *fw = fw_with(NULL);
	uint8_t b[128];
	size_t n;

	/* We connect to the peer's port 80 from 50000: its answers pass. */
	n = ip4(b, ME4, PEER4, 6, tcp(50000, 80, SYN), 20, 0);
	ntm_fw_out(fw, b, n, T0);
	CHECK_EQ(ntm_fw_flows(fw, T0), 1);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 6,
	    tcp(80, 50000, SYN | ACK), 20, 0), T0 + 10), NTM_FW_PASS_FLOW);
	/* Not from another port of the peer, another peer, or to another port. */
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 6,
	    tcp(81, 50000, ACK), 20, 0), T0 + 10), NTM_FW_DROP);
	CHECK_EQ(ntm_fw_in(fw, "carol.dc2.example", b, ip4(b, OTHER4, ME4, 6,
	    tcp(80, 50000, ACK), 20, 0), T0 + 10), NTM_FW_DROP);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 6,
	    tcp(80, 50001, ACK), 20, 0), T0 + 10), NTM_FW_DROP);
	/* Nor UDP on the same ports. */
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 17,
	    udp(80, 50000), 8, 0), T0 + 10), NTM_FW_DROP);
	/* A UDP flow expires NTM_FW_UDP_MS after its last packet, either way. */
	n = ip4(b, ME4, PEER4, 17, udp(5353, 9000), 8, 0);
	ntm_fw_out(fw, b, n, T0);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 17,
	    udp(9000, 5353), 8, 0), T0 + NTM_FW_UDP_MS - 1), NTM_FW_PASS_FLOW);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 17,
	    udp(9000, 5353), 8, 0), T0 + 2 * NTM_FW_UDP_MS - 2), NTM_FW_PASS_FLOW);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 17,
	    udp(9000, 5353), 8, 0), T0 + 3 * NTM_FW_UDP_MS), NTM_FW_DROP);
	/* IPv6 too. */
	n = ip6(b, ME6, PEER6, 6, tcp(50002, 443, SYN), 20);
	ntm_fw_out(fw, b, n, T0);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip6(b, PEER6, ME6, 6,
	    tcp(443, 50002, ACK), 20), T0 + 1), NTM_FW_PASS_FLOW);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip6(b, PEER6, ME6, 6,
	    tcp(443, 50003, ACK), 20), T0 + 1), NTM_FW_DROP);
	ntm_fw_free(fw);
}

TEST(icmp)
{
	struct ntm_fw *fw = fw_with(NULL);
	uint8_t b[128];
	size_t n;

	/* Our ping's replies pass; the peer's pings do not (no rule). */
	n = ip4(b, ME4, PEER4, 1, icmp(8, 77), 8, 0);
	ntm_fw_out(fw, b, n, T0);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 1,
	    icmp(0, 77), 8, 0), T0 + 5), NTM_FW_PASS_FLOW);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 1,
	    icmp(0, 78), 8, 0), T0 + 5), NTM_FW_DROP);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 1,
	    icmp(8, 77), 8, 0), T0 + 5), NTM_FW_DROP);
	/* Errors pass: path MTU discovery needs them. */
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 1,
	    icmp(3, 0), 8, 0), T0), NTM_FW_PASS_ICMPERR);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip6(b, PEER6, ME6, 58,
	    icmp(2, 0), 8), T0), NTM_FW_PASS_ICMPERR);
	/* ICMPv6 echo of ours. */
	n = ip6(b, ME6, PEER6, 58, icmp(128, 9), 8);
	ntm_fw_out(fw, b, n, T0);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip6(b, PEER6, ME6, 58,
	    icmp(129, 9), 8), T0 + 1), NTM_FW_PASS_FLOW);
	/* An ICMP type on the wrong family is no ICMP error. */
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip6(b, PEER6, ME6, 1,
	    icmp(3, 0), 8), T0), NTM_FW_DROP);
	ntm_fw_free(fw);
}

TEST(rules)
{
	static const char *const rules[] = { "22/tcp", "53/udp", "8080",
		"bob.dc2.example:icmp", "carol.dc2.example:5000/tcp", NULL };
	struct ntm_fw *fw = fw_with(rules);
	uint8_t b[128];

	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 6,
	    tcp(40000, 22, SYN), 20, 0), T0), NTM_FW_PASS_RULE);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 17,
	    udp(40000, 22), 8, 0), T0), NTM_FW_DROP);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 17,
	    udp(40000, 53), 8, 0), T0), NTM_FW_PASS_RULE);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 6,
	    tcp(40000, 53, SYN), 20, 0), T0), NTM_FW_DROP);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 6,
	    tcp(40000, 8080, SYN), 20, 0), T0), NTM_FW_PASS_RULE);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip6(b, PEER6, ME6, 17,
	    udp(40000, 8080), 8), T0), NTM_FW_PASS_RULE);
	/* Per peer (FQDNs compare without case). */
	CHECK_EQ(ntm_fw_in(fw, "Bob.DC2.example", b, ip4(b, PEER4, ME4, 1,
	    icmp(8, 1), 8, 0), T0), NTM_FW_PASS_RULE);
	CHECK_EQ(ntm_fw_in(fw, "carol.dc2.example", b, ip4(b, OTHER4, ME4, 1,
	    icmp(8, 1), 8, 0), T0), NTM_FW_DROP);
	CHECK_EQ(ntm_fw_in(fw, "carol.dc2.example", b, ip4(b, OTHER4, ME4, 6,
	    tcp(1, 5000, SYN), 20, 0), T0), NTM_FW_PASS_RULE);
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 6,
	    tcp(1, 5000, SYN), 20, 0), T0), NTM_FW_DROP);
	/* A later fragment has no ports: only "all" lets it through. */
	CHECK_EQ(ntm_fw_in(fw, "bob.dc2.example", b, ip4(b, PEER4, ME4, 6,
	    tcp(40000, 22, 0), 20, 100), T0), NTM_FW_DROP);
	ntm_fw_free(fw);
	{
		static const char *const all[] = { "all", NULL };

		fw = fw_with(all);
		CHECK_EQ(ntm_fw_in(fw, "x.dc2.example", b, ip4(b, PEER4, ME4, 6,
		    tcp(40000, 22, 0), 20, 100), T0), NTM_FW_PASS_RULE);
		CHECK_EQ(ntm_fw_in(fw, "x.dc2.example", b, ip4(b, PEER4, ME4, 47,
		    tcp(1, 2, 0), 20, 0), T0), NTM_FW_PASS_RULE);
		ntm_fw_free(fw);
	}
}

TEST(rule_syntax)
{
	static const struct { const char *in, *out; } ok[] = {
		{ "22", "22" }, { "22/tcp", "22/tcp" }, { "53/UDP", "53/udp" },
		{ "icmp", "icmp" }, { "ALL", "all" }, { "65535", "65535" },
		{ "bob.dc2.example:22", "bob.dc2.example:22" },
		{ "bob.dc2.example:icmp", "bob.dc2.example:icmp" },
		{ "bob.dc2.example:all", "bob.dc2.example:all" },
	};
	static const char *const bad[] = { "", "0", "65536", "-1", "+22", "22/sctp",
		"22/", "x", "bob:22", ":22", "bob.dc2.example:", "bad_name.example:22",
		"22 ", "1e3" };
	struct ntm_fw_rule r;
	char err[160], buf[300];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK_EQ(ntm_fw_rule_parse(&r, ok[i].in, err, sizeof(err)), 0);
		CHECK_STR(ntm_fw_rule_str(&r, buf, sizeof(buf)), ok[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_EQ(ntm_fw_rule_parse(&r, bad[i], err, sizeof(err)), NTM_ERR_INVAL);
		CHECK(strstr(err, bad[i]) != NULL);
	}
}

TEST(table_bounded)
{
	struct ntm_fw *fw = ntm_fw_new(1);
	uint8_t b[128], dst[4] = { 100, 64, 9, 0 };
	size_t n;

	CHECK(fw != NULL);
	/* Far more flows than slots: the table stays its size, the newest
	 * flows are kept, and the flow of a packet just sent always is. */
	for (uint32_t i = 0; i < 3 * NTM_FW_BUCKETS * NTM_FW_WAYS; i++) {
		dst[2] = (uint8_t)(i >> 8);
		dst[3] = (uint8_t)i;
		n = ip4(b, ME4, dst, 17, udp((uint16_t)(1024 + i % 60000), 9), 8, 0);
		ntm_fw_out(fw, b, n, T0 + i);
		n = ip4(b, dst, ME4, 17, udp(9, (uint16_t)(1024 + i % 60000)), 8, 0);
		CHECK_EQ(ntm_fw_in(fw, "p.dc2.example", b, n, T0 + i), NTM_FW_PASS_FLOW);
	}
	CHECK(ntm_fw_flows(fw, T0) <= NTM_FW_BUCKETS * NTM_FW_WAYS);
	CHECK(ntm_fw_flows(fw, T0) > NTM_FW_BUCKETS * NTM_FW_WAYS / 2);
	ntm_fw_free(fw);
}

UNIT_MAIN(T(default_deny), T(flows_we_opened), T(icmp), T(rules), T(rule_syntax),
    T(table_bounded))
