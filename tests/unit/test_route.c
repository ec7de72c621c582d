/* test_route.c - the route decision of docs/protocol.md §4.5, as a table. */
#include <netinet/in.h>

#include "probe.h"
#include "route.h"
#include "unit.h"

/* A location as text: reflexive and up to 4 locals (NULL ends); natted is
 * computed the way the DC does it. */
struct loc_text {
	const char	*reflexive;
	const char	*locals[NTM_REG_ADDRS + 1];
};

static void
mkloc(struct ntm_location *l, const struct loc_text *t)
{
	socklen_t len;
	int i;

	memset(l, 0, sizeof(*l));
	if (ntm_sa_parse(&l->reflexive, &len, t->reflexive) < 0) {
		fprintf(stderr, "bad test address %s\n", t->reflexive);
		abort();
	}
	for (i = 0; i < NTM_REG_ADDRS && t->locals[i]; i++)
		if (ntm_sa_parse(&l->locals[l->nlocals++], &len, t->locals[i]) < 0) {
			fprintf(stderr, "bad test address %s\n", t->locals[i]);
			abort();
		}
	l->natted = ntm_location_natted(l);
}

TEST(table)
{
	static const struct {
		const char	*name;
		struct loc_text	 a, b;		/* requester, peer */
		int		 a_natted, b_natted;
		int		 kind;
		int		 requester_initiates;
		const char	*endpoint;	/* NULL for relay */
		const char	*reason;
	} v[] = {
		/* 5. neither natted: the requester initiates to the peer. */
		{ "both global v4",
		  { "198.18.0.10:5000", { "198.18.0.10:5000" } },
		  { "198.18.1.20:6000", { "10.1.0.2:6000", "198.18.1.20:6000" } },
		  0, 0, NTM_ROUTE_DIRECT, 1, "198.18.1.20:6000", "both global" },
		{ "both global v6",
		  { "[fd00:1::10]:5000", { "[fd00:1::10]:5000" } },
		  { "[fd00:2::20]:6000", { "[fe80::1]:6000", "[fd00:2::20]:6000" } },
		  0, 0, NTM_ROUTE_DIRECT, 1, "[fd00:2::20]:6000", "both global" },
		/* 4. exactly one natted: that side initiates to the other's reflexive. */
		{ "requester natted",
		  { "198.18.0.1:40001", { "100.64.1.2:5000" } },
		  { "198.18.1.20:6000", { "198.18.1.20:6000" } },
		  1, 0, NTM_ROUTE_DIRECT, 1, "198.18.1.20:6000", "requester behind NAT initiates" },
		{ "peer natted",
		  { "198.18.0.10:5000", { "198.18.0.10:5000" } },
		  { "198.18.0.1:40002", { "100.64.2.3:6000" } },
		  0, 1, NTM_ROUTE_DIRECT, 0, "198.18.0.10:5000", "peer behind NAT initiates" },
		{ "peer natted (port rewritten, same address)",
		  { "[fd00:1::10]:5000", { "[fd00:1::10]:5000" } },
		  { "[fd00:2::20]:61000", { "[fd00:2::20]:6000" } },
		  0, 1, NTM_ROUTE_DIRECT, 0, "[fd00:1::10]:5000", "peer behind NAT initiates" },
		{ "requester natted v6 (NAT66)",
		  { "[fd00:9::1]:40001", { "[fd00:a::2]:5000" } },
		  { "[fd00:2::20]:6000", { "[fd00:2::20]:6000" } },
		  1, 0, NTM_ROUTE_DIRECT, 1, "[fd00:2::20]:6000", "requester behind NAT initiates" },
		/* 3. both natted, different NATs. */
		{ "both natted, two NATs",
		  { "198.18.0.1:40001", { "100.64.1.2:5000" } },
		  { "198.18.0.2:40002", { "100.64.2.3:6000" } },
		  1, 1, NTM_ROUTE_RELAY, 1, NULL, "both behind NAT" },
		/* 2. both natted, same NAT: local address of the same family. */
		{ "same NAT v4",
		  { "198.18.0.1:40001", { "100.64.1.2:5000" } },
		  { "198.18.0.1:40002", { "[fd00:b::3]:6000", "100.64.1.3:6000" } },
		  1, 1, NTM_ROUTE_LOCAL, 1, "100.64.1.3:6000", "same NAT" },
		{ "same NAT v6 skips link-local",
		  { "[fd00:9::1]:40001", { "[fd00:a::2]:5000" } },
		  { "[fd00:9::1]:40002", { "[fe80::3]:6000", "100.64.1.3:6000", "[fd00:a::3]:6000" } },
		  1, 1, NTM_ROUTE_LOCAL, 1, "[fd00:a::3]:6000", "same NAT" },
		{ "same NAT, peer has no local of the family",
		  { "198.18.0.1:40001", { "100.64.1.2:5000" } },
		  { "198.18.0.1:40002", { "[fd00:b::3]:6000" } },
		  1, 1, NTM_ROUTE_RELAY, 1, NULL,
		  "same NAT but the peer has no local address of the family: relay" },
		/* 1. families differ. */
		{ "v4 requester, v6 peer",
		  { "198.18.0.10:5000", { "198.18.0.10:5000" } },
		  { "[fd00:2::20]:6000", { "[fd00:2::20]:6000" } },
		  0, 0, NTM_ROUTE_RELAY, 1, NULL, "IPv4 and IPv6: relay bridges" },
		{ "v6 requester natted, v4 peer natted",
		  { "[fd00:9::1]:40001", { "[fd00:a::2]:5000" } },
		  { "198.18.0.1:40002", { "100.64.2.3:6000" } },
		  1, 1, NTM_ROUTE_RELAY, 1, NULL, "IPv4 and IPv6: relay bridges" },
		{ "v4-mapped reflexive counts as IPv4",
		  { "[::ffff:198.18.0.10]:5000", { "198.18.0.10:5000" } },
		  { "198.18.1.20:6000", { "198.18.1.20:6000" } },
		  0, 0, NTM_ROUTE_DIRECT, 1, "198.18.1.20:6000", "both global" },
		{ "no locals at all: natted",
		  { "198.18.0.10:5000", { NULL } },
		  { "198.18.1.20:6000", { "198.18.1.20:6000" } },
		  1, 0, NTM_ROUTE_DIRECT, 1, "198.18.1.20:6000", "requester behind NAT initiates" },
	};
	struct ntm_location a, b;
	struct ntm_route r;
	char buf[64];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		mkloc(&a, &v[i].a);
		mkloc(&b, &v[i].b);
		if (a.natted != v[i].a_natted || b.natted != v[i].b_natted)
			fprintf(stderr, "row '%s':\n", v[i].name);
		CHECK_EQ(a.natted, v[i].a_natted);
		CHECK_EQ(b.natted, v[i].b_natted);
		CHECK_EQ(ntm_route_decide(&a, &b, 1, &r), 0);
		if ((int)r.kind != v[i].kind || r.requester_initiates != v[i].requester_initiates)
			fprintf(stderr, "row '%s':\n", v[i].name);
		CHECK_EQ(r.kind, v[i].kind);
		CHECK_EQ(r.requester_initiates, v[i].requester_initiates);
		CHECK_STR(r.reason, v[i].reason);
		if (v[i].endpoint)
			CHECK_STR(ntm_sa_str((struct sockaddr *)&r.endpoint, buf, sizeof(buf)),
			    v[i].endpoint);
		else
			CHECK_EQ(r.endpoint.ss_family, 0);
	}
}

TEST(invalid)
{
	static const struct loc_text ok = { "198.18.0.10:5000", { "198.18.0.10:5000" } };
	struct ntm_location a, b;
	struct ntm_route r;

	mkloc(&a, &ok);
	memset(&b, 0, sizeof(b));			/* no reflexive address */
	CHECK_EQ(ntm_route_decide(&a, &b, 1, &r), NTM_ERR_INVAL);
	CHECK_EQ(ntm_route_decide(&b, &a, 1, &r), NTM_ERR_INVAL);
	mkloc(&b, &ok);
	b.nlocals = NTM_REG_ADDRS + 1;
	CHECK_EQ(ntm_route_decide(&a, &b, 1, &r), NTM_ERR_INVAL);
	CHECK_EQ(ntm_route_decide(NULL, &a, 1, &r), NTM_ERR_INVAL);
	CHECK_EQ(ntm_route_decide(&a, &a, 1, NULL), NTM_ERR_INVAL);
}

TEST(names)
{
	CHECK_STR(ntm_route_kind_name(NTM_ROUTE_DIRECT), "direct");
	CHECK_STR(ntm_route_kind_name(NTM_ROUTE_LOCAL), "local");
	CHECK_STR(ntm_route_kind_name(NTM_ROUTE_RELAY), "relay");
	CHECK_STR(ntm_route_kind_name((enum ntm_route_kind)0), "?");
}

/* Rules 3 and 5 by the NAT kinds the ends registered (§4.5, §4.8):
 * punching between two endpoint-independent mappings, and between two
 * hosts that found no NAT (stateful firewalls), only when the DC allows
 * it, and between one that varies by destination and an
 * endpoint-independent one (ports predicted); the reason names a mapping
 * that varies by destination; the kinds
 * change nothing elsewhere. */
TEST(nat_kinds)
{
	static const struct loc_text na = { "198.18.0.1:40001", { "100.64.1.2:5000" } };
	static const struct loc_text nb = { "198.18.0.2:40002", { "100.64.2.3:6000" } };
	static const struct loc_text same = { "198.18.0.1:40003", { "100.64.1.4:6000" } };
	static const struct loc_text glob = { "198.18.1.20:6000", { "198.18.1.20:6000" } };
	static const struct loc_text glob2 = { "198.18.1.30:7000", { "198.18.1.30:7000" } };
	static const struct loc_text glob_same = { "198.18.1.20:7000", { "198.18.1.20:7000" } };
	static const struct loc_text g6a = { "[fd00:18::a]:5000", { "[fd00:18::a]:5000" } };
	static const struct loc_text g6b = { "[fd00:19::b]:6000",
		{ "[fe80::b]:6000", "[fd00:19::b]:6000" } };
	static const struct {
		const struct loc_text *a, *b;
		int		 allow;		/* the DC punches */
		int		 nat_a, nat_b, kind, punch;
		const char	*reason;
	} v[] = {
		{ &na, &nb, 1, NTM_NAT_EI, NTM_NAT_EI, NTM_ROUTE_RELAY, 1,
		  "both behind endpoint-independent NATs: relay, punching" },
		/* one end per destination, the other endpoint-independent:
		 * punching, the hard end's ports predicted */
		{ &na, &nb, 1, NTM_NAT_EI, NTM_NAT_PER_DEST, NTM_ROUTE_RELAY, 1,
		  "peer's NAT varies by destination: relay, predicting ports" },
		{ &na, &nb, 1, NTM_NAT_PER_DEST, NTM_NAT_EI, NTM_ROUTE_RELAY, 1,
		  "requester's NAT varies by destination: relay, predicting ports" },
		{ &na, &nb, 0, NTM_NAT_EI, NTM_NAT_PER_DEST, NTM_ROUTE_RELAY, 0,
		  "peer's NAT varies by destination: relay" },
		{ &na, &nb, 1, NTM_NAT_PER_DEST, NTM_NAT_NATTED, NTM_ROUTE_RELAY, 0,
		  "requester's NAT varies by destination: relay" },
		{ &na, &nb, 1, NTM_NAT_PER_DEST, NTM_NAT_PER_DEST, NTM_ROUTE_RELAY, 0,
		  "both NATs vary by destination: relay" },
		{ &na, &nb, 1, NTM_NAT_EI, NTM_NAT_UNKNOWN, NTM_ROUTE_RELAY, 0, "both behind NAT" },
		{ &na, &nb, 1, NTM_NAT_NATTED, NTM_NAT_EI, NTM_ROUTE_RELAY, 0, "both behind NAT" },
		{ &na, &same, 1, NTM_NAT_EI, NTM_NAT_EI, NTM_ROUTE_LOCAL, 0, "same NAT" },
		{ &na, &glob, 1, NTM_NAT_PER_DEST, NTM_NAT_NONE, NTM_ROUTE_DIRECT, 0,
		  "requester behind NAT initiates" },
		/* the DC does not punch: relayed, neither learns the other's address */
		{ &na, &nb, 0, NTM_NAT_EI, NTM_NAT_EI, NTM_ROUTE_RELAY, 0, "both behind NAT" },
		/* 5. two global hosts that found no NAT: both punch through
		 * their firewalls, the relay meanwhile and as the fallback */
		{ &glob, &glob2, 1, NTM_NAT_NONE, NTM_NAT_NONE, NTM_ROUTE_RELAY, 1,
		  "both global: relay, punching through their firewalls" },
		{ &g6a, &g6b, 1, NTM_NAT_NONE, NTM_NAT_NONE, NTM_ROUTE_RELAY, 1,
		  "both global: relay, punching through their firewalls" },
		{ &glob, &glob2, 0, NTM_NAT_NONE, NTM_NAT_NONE, NTM_ROUTE_DIRECT, 0, "both global" },
		/* one agent did not find its NAT kind (an older one): direct */
		{ &glob, &glob2, 1, NTM_NAT_NONE, NTM_NAT_UNKNOWN, NTM_ROUTE_DIRECT, 0, "both global" },
		{ &glob, &glob2, 1, NTM_NAT_UNKNOWN, NTM_NAT_NONE, NTM_ROUTE_DIRECT, 0, "both global" },
		/* one host (loopback, say): no firewall between them */
		{ &glob, &glob_same, 1, NTM_NAT_NONE, NTM_NAT_NONE, NTM_ROUTE_DIRECT, 0, "both global" },
	};
	struct ntm_location a, b;
	struct ntm_route r;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		mkloc(&a, v[i].a);
		mkloc(&b, v[i].b);
		a.nat = v[i].nat_a;
		b.nat = v[i].nat_b;
		CHECK_EQ(ntm_route_decide(&a, &b, v[i].allow, &r), 0);
		if ((int)r.kind != v[i].kind || r.punch != v[i].punch)
			fprintf(stderr, "row %zu:\n", i);
		CHECK_EQ(r.kind, v[i].kind);
		CHECK_EQ(r.punch, v[i].punch);
		if (v[i].kind == NTM_ROUTE_RELAY)
			CHECK_EQ(r.endpoint.ss_family, 0);
		CHECK_STR(r.reason, v[i].reason);
	}
}

/* The filtering the ends found (§4.7) changes no decision; a punching
 * reason names the ends whose NAT lets in any port of an address it sent
 * to (a probe of the other end then gets in at once), each end reading it
 * from its own side. */
TEST(filtering)
{
	static const struct loc_text na = { "198.18.0.1:40001", { "100.64.1.2:5000" } };
	static const struct loc_text nb = { "198.18.0.2:40002", { "100.64.2.3:6000" } };
	static const struct {
		int		 nat_a, nat_b, filt_a, filt_b, punch;
		const char	*reason, *peer_reads;
	} v[] = {
		{ NTM_NAT_EI, NTM_NAT_EI, NTM_FILTER_PORT, NTM_FILTER_PORT, 1,
		  "both behind endpoint-independent NATs: relay, punching",
		  "both behind endpoint-independent NATs: relay, punching" },
		{ NTM_NAT_EI, NTM_NAT_EI, NTM_FILTER_PORT, NTM_FILTER_ADDR_DEP, 1,
		  "both behind endpoint-independent NATs: relay, punching; peer's NAT filters by address",
		  "both behind endpoint-independent NATs: relay, punching; requester's NAT filters by address" },
		{ NTM_NAT_EI, NTM_NAT_EI, NTM_FILTER_EI, NTM_FILTER_ADDR, 1,
		  "both behind endpoint-independent NATs: relay, punching; both NATs filter by address",
		  "both behind endpoint-independent NATs: relay, punching; both NATs filter by address" },
		/* the hard end's own filtering does not help: its ports are new */
		{ NTM_NAT_PER_DEST, NTM_NAT_EI, NTM_FILTER_EI, NTM_FILTER_PORT, 1,
		  "requester's NAT varies by destination: relay, predicting ports",
		  "peer's NAT varies by destination: relay, predicting ports" },
		{ NTM_NAT_PER_DEST, NTM_NAT_EI, NTM_FILTER_PORT, NTM_FILTER_EI, 1,
		  "requester's NAT varies by destination: relay, predicting ports; peer's NAT filters by address",
		  "peer's NAT varies by destination: relay, predicting ports; requester's NAT filters by address" },
		{ NTM_NAT_PER_DEST, NTM_NAT_PER_DEST, NTM_FILTER_EI, NTM_FILTER_EI, 0,
		  "both NATs vary by destination: relay", "both NATs vary by destination: relay" },
		{ NTM_NAT_EI, NTM_NAT_EI, NTM_FILTER_UNKNOWN, NTM_FILTER_UNKNOWN, 1,
		  "both behind endpoint-independent NATs: relay, punching",
		  "both behind endpoint-independent NATs: relay, punching" },
	};
	struct ntm_location a, b;
	struct ntm_route r;
	char buf[96];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		mkloc(&a, &na);
		mkloc(&b, &nb);
		a.nat = v[i].nat_a;
		b.nat = v[i].nat_b;
		a.filter = v[i].filt_a;
		b.filter = v[i].filt_b;
		CHECK_EQ(ntm_route_decide(&a, &b, 1, &r), 0);
		CHECK_EQ(r.kind, NTM_ROUTE_RELAY);
		CHECK_EQ(r.punch, v[i].punch);
		CHECK_STR(r.reason, v[i].reason);
		CHECK(strlen(r.reason) <= 95);
		ntm_route_reason(&r, 1, buf, sizeof(buf));
		CHECK_STR(buf, v[i].peer_reads);
	}
}

/* Two families (§4.5 "Two families"): each end's first location and its
 * other family's (NULL: one family only); every family both have is
 * decided, direct beats a punching relay beats a relay, a tie keeps the
 * firsts; the reason names the family, and the other family's as each
 * end reads it. */
TEST(dual)
{
	static const struct loc_text g4a = { "198.18.1.10:5000", { "198.18.1.10:5000" } };
	static const struct loc_text g4b = { "198.18.1.20:6000", { "198.18.1.20:6000" } };
	static const struct loc_text n4a = { "198.18.2.1:40001", { "100.64.2.10:5000" } };
	static const struct loc_text n4b = { "198.18.3.1:40002", { "100.64.3.10:6000" } };
	static const struct loc_text g6a = { "[fd00:18::10]:5000",
		{ "100.64.2.10:5000", "[fd00:18::10]:5000" } };
	static const struct loc_text g6b = { "[fd00:18::20]:6000",
		{ "100.64.3.10:6000", "[fd00:18::20]:6000" } };
	static const struct loc_text g6c = { "[fd00:18::30]:7000", { "[fd00:18::30]:7000" } };
	static const struct {
		const char	*name;
		const struct loc_text *a, *a_alt, *b, *b_alt;
		int		 nat_a, nat_b, allow;
		int		 kind, punch, family, a_loc, b_loc;
		const char	*endpoint;	/* NULL for relay */
		const char	*mine, *theirs;	/* each end's reason */
	} v[] = {
		{ "one family each, the same: as ntm_route_decide",
		  &g4a, NULL, &g4b, NULL, NTM_NAT_NONE, NTM_NAT_NONE, 0,
		  NTM_ROUTE_DIRECT, 0, 4, 0, 0, "198.18.1.20:6000", "both global", "both global" },
		{ "one family each, different: the relay bridges",
		  &g4a, NULL, &g6c, NULL, NTM_NAT_NONE, NTM_NAT_NONE, 0,
		  NTM_ROUTE_RELAY, 0, 0, 0, 0, NULL, "IPv4 and IPv6: relay bridges",
		  "IPv4 and IPv6: relay bridges" },
		{ "dual stack and IPv6 only: direct over IPv6",
		  &g4a, &g6a, &g6c, NULL, NTM_NAT_NONE, NTM_NAT_NONE, 0,
		  NTM_ROUTE_DIRECT, 0, 6, 1, 0, "[fd00:18::30]:7000", "IPv6: both global",
		  "IPv6: both global" },
		{ "IPv6 only and dual stack (the peer's second family)",
		  &g6c, NULL, &g4a, &g6a, NTM_NAT_NONE, NTM_NAT_NONE, 0,
		  NTM_ROUTE_DIRECT, 0, 6, 0, 1, "[fd00:18::10]:5000", "IPv6: both global",
		  "IPv6: both global" },
		{ "dual stack and IPv4 only: the firsts, as before",
		  &g4a, &g6a, &g4b, NULL, NTM_NAT_NONE, NTM_NAT_NONE, 0,
		  NTM_ROUTE_DIRECT, 0, 4, 0, 0, "198.18.1.20:6000", "both global", "both global" },
		{ "both dual, both direct: the firsts win the tie",
		  &g4a, &g6a, &g4b, &g6b, NTM_NAT_NONE, NTM_NAT_NONE, 0,
		  NTM_ROUTE_DIRECT, 0, 4, 0, 0, "198.18.1.20:6000",
		  "IPv4: both global; IPv6: both global", "IPv4: both global; IPv6: both global" },
		{ "both dual, IPv4 NAT x NAT: direct over IPv6",
		  &n4a, &g6a, &n4b, &g6b, NTM_NAT_PER_DEST, NTM_NAT_EI, 0,
		  NTM_ROUTE_DIRECT, 0, 6, 1, 1, "[fd00:18::20]:6000",
		  "IPv6: both global; IPv4: requester's NAT varies by destination: relay",
		  "IPv6: both global; IPv4: peer's NAT varies by destination: relay" },
		{ "both dual, IPv4 NAT x NAT, IPv6 firewalls: punching over IPv6",
		  &n4a, &g6a, &n4b, &g6b, NTM_NAT_PER_DEST, NTM_NAT_PER_DEST, 1,
		  NTM_ROUTE_RELAY, 1, 6, 1, 1, NULL,
		  "IPv6: both global: relay, punching through their firewalls",
		  "IPv6: both global: relay, punching through their firewalls" },
		{ "IPv4 behind NAT x global beats an IPv6 punch",
		  &n4a, &g6a, &g4b, &g6b, NTM_NAT_NONE, NTM_NAT_NONE, 1,
		  NTM_ROUTE_DIRECT, 0, 4, 0, 0, "198.18.1.20:6000",
		  /* both would pass 95 bytes: the other family's reason goes */
		  "IPv4: requester behind NAT initiates", "IPv4: peer behind NAT initiates" },
	};
	struct ntm_location a, aa, b, ba;
	struct ntm_route r;
	char why[96];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		mkloc(&a, v[i].a);
		mkloc(&b, v[i].b);
		if (v[i].a_alt)
			mkloc(&aa, v[i].a_alt);
		if (v[i].b_alt)
			mkloc(&ba, v[i].b_alt);
		/* the NAT kinds are the firsts'; a second family found none */
		a.nat = v[i].nat_a;
		b.nat = v[i].nat_b;
		aa.nat = ba.nat = NTM_NAT_NONE;
		CHECK_EQ(ntm_route_decide_dual(&a, v[i].a_alt ? &aa : NULL, &b,
		    v[i].b_alt ? &ba : NULL, v[i].allow, &r), 0);
		if ((int)r.kind != v[i].kind || r.family != v[i].family)
			fprintf(stderr, "row %zu: %s\n", i, v[i].name);
		CHECK_EQ(r.kind, v[i].kind);
		CHECK_EQ(r.punch, v[i].punch);
		CHECK_EQ(r.family, v[i].family);
		CHECK_EQ(r.a_loc, v[i].a_loc);
		CHECK_EQ(r.b_loc, v[i].b_loc);
		if (v[i].endpoint) {
			char e[64];

			CHECK_STR(ntm_sa_str((struct sockaddr *)&r.endpoint, e, sizeof(e)),
			    v[i].endpoint);
		} else
			CHECK_EQ(r.endpoint.ss_family, 0);
		ntm_route_reason(&r, 0, why, sizeof(why));
		CHECK_STR(why, v[i].mine);
		ntm_route_reason(&r, 1, why, sizeof(why));
		CHECK_STR(why, v[i].theirs);
	}
	CHECK_EQ(ntm_route_decide_dual(NULL, NULL, &a, NULL, 0, &r), NTM_ERR_INVAL);
}

UNIT_MAIN(T(table), T(invalid), T(names), T(nat_kinds), T(dual), T(filtering))
