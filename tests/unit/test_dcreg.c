/*
 * test_dcreg.c - the DC's registration decisions (lib/core/dcreg.c) as a table:
 * old state + REG_REQ + a literal time in, the verdict and the actions out.
 * keepalive 25 s, online while seen within 3 keepalives (75 s).
 */
#include <netinet/in.h>

#include "dcreg.h"
#include "unit.h"

#define KA	25
#define FACTOR	3

/* Old state: has_loc, agent, stopped_ctr, reflexive (NULL: none), one
 * local (NULL: none), last_seen, saved. */
struct old_text {
	int		has_loc, agent;
	uint64_t	stopped;
	const char	*reflexive, *local;
	int64_t		last_seen, saved;
};

struct row {
	const char	*what;
	struct old_text	old;
	/* the request: counter, flags, one local address with port 0 (the
	 * local_port 4000 applies), where it came from, when */
	uint64_t	ctr;
	uint8_t		flags;
	const char	*local, *from;
	int64_t		now;
	/* expected */
	enum ntm_dcreg_verdict verdict;
	int		log, store, offline, answer, moved, came_online;
	int		has_loc, natted;
	uint64_t	stopped;
	int64_t		last_seen;
};

static void
sa(struct sockaddr_storage *ss, const char *text)
{
	socklen_t len;

	if (ntm_sa_parse(ss, &len, text) < 0) {
		fprintf(stderr, "bad test address %s\n", text);
		abort();
	}
}

static void
mkold(struct ntm_dcreg *st, const struct old_text *t)
{
	memset(st, 0, sizeof(*st));
	st->has_loc = t->has_loc;
	st->agent = t->agent;
	st->stopped_ctr = t->stopped;
	if (t->reflexive)
		sa(&st->loc.reflexive, t->reflexive);
	if (t->local)
		sa(&st->loc.locals[st->loc.nlocals++], t->local);
	if (t->reflexive)
		st->loc.natted = ntm_location_natted(&st->loc);
	st->last_seen = t->last_seen;
	st->saved = t->saved;
}

/* A client behind NAT: reflexive 198.18.0.1:4000, local 100.64.0.2:4000. */
#define NAT	1, 1, 0, "198.18.0.1:4000", "100.64.0.2:4000"

static const struct row rows[] = {
	{ "never seen: first", { 0 }, 5, NTM_REG_F_AGENT, "100.64.0.2:0",
	  "198.18.0.1:4000", 1000,
	  NTM_DCREG_FIRST, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1000 },
	{ "same again within the keepalive: refresh, nothing stored",
	  { NAT, 1000, 1000 }, 6, NTM_REG_F_AGENT, "100.64.0.2:0", "198.18.0.1:4000", 1010,
	  NTM_DCREG_REFRESH, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1010 },
	{ "same again a keepalive after the last store: stored",
	  { NAT, 1020, 1000 }, 7, NTM_REG_F_AGENT, "100.64.0.2:0", "198.18.0.1:4000", 1025,
	  NTM_DCREG_REFRESH, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1025 },
	{ "the v4-mapped form of the same address is the same",
	  { NAT, 1000, 1000 }, 8, NTM_REG_F_AGENT, "100.64.0.2:0",
	  "[::ffff:198.18.0.1]:4000", 1010,
	  NTM_DCREG_REFRESH, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1010 },
	{ "new NAT port, still natted, same family: moved",
	  { NAT, 1000, 1000 }, 9, NTM_REG_F_AGENT, "100.64.0.2:0", "198.18.0.1:4001", 1010,
	  NTM_DCREG_MOVED, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1010 },
	{ "natted to global (reflexive is its own local): changed, not moved",
	  { NAT, 1000, 1000 }, 10, NTM_REG_F_AGENT, "198.18.0.7:0", "198.18.0.7:4000", 1010,
	  NTM_DCREG_CHANGED, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1010 },
	{ "IPv4 to IPv6: changed, not moved",
	  { NAT, 1000, 1000 }, 11, NTM_REG_F_AGENT, "100.64.0.2:0", "[fd00::9]:4000", 1010,
	  NTM_DCREG_CHANGED, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1010 },
	{ "the agent flag alone changed: changed",
	  { NAT, 1000, 1000 }, 12, 0, "100.64.0.2:0", "198.18.0.1:4000", 1010,
	  NTM_DCREG_CHANGED, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1010 },
	{ "silent for 3 keepalives (74 s): still online, refresh",
	  { NAT, 1000, 1050 }, 13, NTM_REG_F_AGENT, "100.64.0.2:0", "198.18.0.1:4000", 1074,
	  NTM_DCREG_REFRESH, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1074 },
	{ "silent for 3 keepalives (75 s): came online",
	  { NAT, 1000, 1000 }, 14, NTM_REG_F_AGENT, "100.64.0.2:0", "198.18.0.1:4000", 1075,
	  NTM_DCREG_ONLINE, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1075 },
	{ "came online from elsewhere: moved and online both",
	  { NAT, 1000, 1000 }, 15, NTM_REG_F_AGENT, "100.64.0.2:0", "198.18.0.1:4009", 2000,
	  NTM_DCREG_MOVED, 1, 1, 0, 1, 1, 1, 1, 1, 0, 2000 },
	{ "goodbye: offline at once, stored as offline, no answer",
	  { NAT, 1000, 1000 }, 50, NTM_REG_F_AGENT | NTM_REG_F_OFFLINE, "100.64.0.2:0",
	  "198.18.0.1:4000", 1010,
	  NTM_DCREG_GOODBYE, 1, 1, 1, 0, 0, 0, 0, 1, 50, 1000 },
	{ "a second, older goodbye: nothing to store, the higher counter kept",
	  { 0, 1, 50, "198.18.0.1:4000", "100.64.0.2:4000", 1000, 1010 }, 40,
	  NTM_REG_F_OFFLINE, NULL, "198.18.0.1:4000", 1011,
	  NTM_DCREG_GOODBYE, 0, 0, 0, 0, 0, 0, 0, 1, 50, 1000 },
	{ "sent before the goodbye, delivered after: stale",
	  { 0, 1, 50, "198.18.0.1:4000", "100.64.0.2:4000", 1000, 1010 }, 49,
	  NTM_REG_F_AGENT, "100.64.0.2:0", "198.18.0.1:4000", 1012,
	  NTM_DCREG_STALE, 0, 0, 0, 0, 0, 0, 0, 1, 50, 1000 },
	{ "after the goodbye, a new start: came online, the goodbye forgotten",
	  { 0, 1, 50, "198.18.0.1:4000", "100.64.0.2:4000", 1000, 1010 }, 51,
	  NTM_REG_F_AGENT, "100.64.0.2:0", "198.18.0.1:4000", 1013,
	  NTM_DCREG_ONLINE, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1013 },
};

TEST(table)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct ntm_dcreg old, next;
		struct ntm_dcreg_act act;
		struct ntm_reg_req req;
		struct sockaddr_storage from;
		socklen_t fromlen;
		int before = unit_failed_checks;

		mkold(&old, &r->old);
		memset(&req, 0, sizeof(req));
		req.ctr = r->ctr;
		req.flags = r->flags;
		req.local_port = 4000;
		if (r->local)
			sa(&req.addrs[req.naddrs++], r->local);
		CHECK_EQ(ntm_sa_parse(&from, &fromlen, r->from), 0);
		CHECK_EQ(ntm_dcreg_decide(&old, &req, &from, fromlen, r->now, KA, FACTOR,
		    &next, &act), 0);
		CHECK_EQ(act.verdict, r->verdict);
		CHECK_EQ(act.log, r->log);
		CHECK_EQ(act.store, r->store);
		CHECK_EQ(act.offline, r->offline);
		CHECK_EQ(act.answer, r->answer);
		CHECK_EQ(act.echo, r->answer ? r->ctr : 0);
		CHECK_EQ(act.moved, r->moved);
		CHECK_EQ(act.came_online, r->came_online);
		CHECK_EQ(next.has_loc, r->has_loc);
		CHECK_EQ(next.loc.natted, r->natted);
		CHECK_EQ(next.stopped_ctr, r->stopped);
		CHECK_EQ(next.last_seen, r->last_seen);
		CHECK_EQ(next.saved, old.saved);	/* set by the caller once stored */
		if (r->answer) {
			/* The reflexive address stored is unmapped, the local
			 * address has the client's port. */
			CHECK_EQ(next.loc.reflexive.ss_family,
			    strchr(r->from, '[') && !strstr(r->from, "ffff") ? AF_INET6 : AF_INET);
			CHECK_EQ(ntohs(((struct sockaddr_in *)&next.loc.locals[0])->sin_port),
			    4000);
		}
		if (unit_failed_checks != before)
			fprintf(stderr, "  in row %zu: %s\n", i, r->what);
	}
}

/* Three REG_REQs in a row through the same state, as udp.c keeps it:
 * first seen, a refresh, then moved. */
TEST(sequence)
{
	struct ntm_dcreg st;
	struct ntm_dcreg_act act;
	struct ntm_reg_req req;
	struct sockaddr_storage from;
	socklen_t len;

	memset(&st, 0, sizeof(st));
	memset(&req, 0, sizeof(req));
	req.local_port = 4000;
	sa(&req.addrs[req.naddrs++], "100.64.0.2:0");
	CHECK_EQ(ntm_sa_parse(&from, &len, "198.18.0.1:4000"), 0);
	req.ctr = 1;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &from, len, 1, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_FIRST);
	CHECK_EQ(ntm_dcreg_online(&st, 1, KA, FACTOR), 1);
	st.saved = 1;
	req.ctr = 2;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &from, len, 2, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_REFRESH);
	CHECK_EQ(act.store, 0);
	CHECK_EQ(ntm_sa_parse(&from, &len, "198.18.0.1:5000"), 0);
	req.ctr = 3;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &from, len, 3, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_MOVED);
	CHECK_EQ(act.echo, 3);
	CHECK_EQ(ntm_dcreg_online(&st, 3 + 3 * KA - 1, KA, FACTOR), 1);
	CHECK_EQ(ntm_dcreg_online(&st, 3 + 3 * KA, KA, FACTOR), 0);
	CHECK_EQ(ntm_dcreg_decide(NULL, &req, &from, len, 4, KA, FACTOR, &st, &act),
	    NTM_ERR_INVAL);
}

/* A client rotating its source port: a burst of changes goes, then one
 * every NTM_DCREG_CHANGE_EVERY_S; the rest is answered but neither stored
 * nor told to the peers; what was held back is paid, with the latest
 * location, at the first REG_REQ the limit lets through. */
TEST(change_limit)
{
	struct ntm_dcreg st;
	struct ntm_dcreg_act act;
	struct ntm_reg_req req;
	struct sockaddr_storage from;
	socklen_t len;
	char a[64];
	int stored = 0, moved = 0, limited = 0;

	memset(&st, 0, sizeof(st));
	memset(&req, 0, sizeof(req));
	req.local_port = 4000;
	sa(&req.addrs[req.naddrs++], "100.64.0.2:0");
	CHECK_EQ(ntm_sa_parse(&from, &len, "198.18.0.1:4000"), 0);
	req.ctr = 1;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &from, len, 1000, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_FIRST);
	CHECK_EQ(act.store, 1);
	/* 1,000 new ports within the same second. */
	for (int i = 1; i <= 1000; i++) {
		snprintf(a, sizeof(a), "198.18.0.1:%d", 4000 + i);
		CHECK_EQ(ntm_sa_parse(&from, &len, a), 0);
		req.ctr = 1 + (uint64_t)i;
		CHECK_EQ(ntm_dcreg_decide(&st, &req, &from, len, 1000, KA, FACTOR, &st,
		    &act), 0);
		CHECK_EQ(act.answer, 1);	/* always answered: its reflexive address */
		stored += act.store;
		moved += act.moved;
		limited += act.limited;
		CHECK_EQ(ntohs(((struct sockaddr_in *)&st.loc.reflexive)->sin_port), 4000 + i);
	}
	CHECK_EQ(stored, NTM_DCREG_CHANGE_BURST);
	CHECK_EQ(moved, NTM_DCREG_CHANGE_BURST);
	CHECK_EQ(limited, 1000 - NTM_DCREG_CHANGE_BURST);
	CHECK_EQ(st.owe_store, 1);
	CHECK_EQ(st.owe_moved, 1);
	/* One period later, a keepalive from the last address: what was held
	 * back is paid now, once. */
	req.ctr = 2000;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &from, len, 1000 + NTM_DCREG_CHANGE_EVERY_S, KA,
	    FACTOR, &st, &act), 0);
	CHECK_EQ(act.store, 1);
	CHECK_EQ(act.moved, 1);
	CHECK_EQ(act.limited, 0);
	CHECK_EQ(st.owe_store, 0);
	CHECK_EQ(st.owe_moved, 0);
	req.ctr = 2001;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &from, len, 1000 + NTM_DCREG_CHANGE_EVERY_S, KA,
	    FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_REFRESH);
	CHECK_EQ(act.moved, 0);
	/* Sustained: one change every NTM_DCREG_CHANGE_EVERY_S goes, at most. */
	stored = 0;
	for (int i = 0; i < 100; i++) {
		snprintf(a, sizeof(a), "198.18.0.1:%d", 9000 + i);
		CHECK_EQ(ntm_sa_parse(&from, &len, a), 0);
		req.ctr = 3000 + (uint64_t)i;
		CHECK_EQ(ntm_dcreg_decide(&st, &req, &from, len, 2000 + i, KA, FACTOR, &st,
		    &act), 0);
		stored += act.store;
	}
	CHECK(stored <= NTM_DCREG_CHANGE_BURST + 100 / NTM_DCREG_CHANGE_EVERY_S);
	CHECK(stored >= 100 / NTM_DCREG_CHANGE_EVERY_S);
}

/* A second family (NTM_REG_F_ALSO): kept beside the location, answered,
 * never stored; dropped with no location to go with, or of the same
 * family; forgotten when a REG_REQ's locals no longer name its family or
 * the location moves to its family, and at the goodbye. */
TEST(also)
{
	struct ntm_dcreg st;
	struct ntm_dcreg_act act;
	struct ntm_reg_req req;
	struct sockaddr_storage v4, v6;
	socklen_t l4, l6;

	memset(&st, 0, sizeof(st));
	memset(&req, 0, sizeof(req));
	req.local_port = 4000;
	req.flags = NTM_REG_F_AGENT | NTM_REG_F_ALSO;
	sa(&req.addrs[req.naddrs++], "100.64.0.2:0");
	sa(&req.addrs[req.naddrs++], "[fd00::9]:0");
	CHECK_EQ(ntm_sa_parse(&v4, &l4, "198.18.0.1:4000"), 0);
	CHECK_EQ(ntm_sa_parse(&v6, &l6, "[fd00::9]:4000"), 0);
	/* before any location: not taken */
	req.ctr = 1;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v6, l6, 1, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_ALSO_DROPPED);
	CHECK_EQ(act.answer, 0);
	CHECK_EQ(st.has_loc, 0);
	CHECK_EQ(st.has_alt, 0);
	req.flags = NTM_REG_F_AGENT;
	req.ctr = 2;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v4, l4, 2, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_FIRST);
	st.saved = 2;
	/* the same family as the location: not taken */
	req.flags = NTM_REG_F_AGENT | NTM_REG_F_ALSO;
	req.ctr = 3;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v4, l4, 3, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_ALSO_DROPPED);
	CHECK_EQ(st.has_alt, 0);
	/* the other family: kept, answered, not stored; the location stays */
	req.ctr = 4;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v6, l6, 4, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_ALSO);
	CHECK_EQ(act.answer, 1);
	CHECK_EQ(act.echo, 4);
	CHECK_EQ(act.store, 0);
	CHECK_EQ(act.log, 1);
	CHECK_EQ(act.moved, 0);
	CHECK_EQ(st.has_alt, 1);
	CHECK_EQ(st.alt.natted, 0);
	CHECK_EQ(st.alt.reflexive.ss_family, AF_INET6);
	CHECK_EQ(st.loc.reflexive.ss_family, AF_INET);
	CHECK_EQ(st.loc.natted, 1);
	CHECK_EQ(st.last_seen, 2);
	CHECK_EQ(ntm_dcreg_alt_online(&st, 4 + 3 * KA - 1, KA, FACTOR), 1);
	CHECK_EQ(ntm_dcreg_alt_online(&st, 4 + 3 * KA, KA, FACTOR), 0);
	/* again: nothing to log */
	req.ctr = 5;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v6, l6, 5, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_ALSO);
	CHECK_EQ(act.log, 0);
	/* a keepalive of the location that still names an IPv6 address */
	req.flags = NTM_REG_F_AGENT;
	req.ctr = 6;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v4, l4, 6, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_REFRESH);
	CHECK_EQ(act.alt_gone, 0);
	CHECK_EQ(st.has_alt, 1);
	/* the host lost IPv6: its locals say so */
	req.naddrs = 1;
	memset(&req.addrs[1], 0, sizeof(req.addrs[1]));
	req.ctr = 7;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v4, l4, 7, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.alt_gone, 1);
	CHECK_EQ(st.has_alt, 0);
	CHECK_EQ(ntm_dcreg_alt_online(&st, 7, KA, FACTOR), 0);
	/* back, then the location moves to IPv6 (IPv4 lost): one family */
	sa(&req.addrs[req.naddrs++], "[fd00::9]:0");
	req.ctr = 8;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v4, l4, 8, KA, FACTOR, &st, &act), 0);
	req.flags = NTM_REG_F_AGENT | NTM_REG_F_ALSO;
	req.ctr = 9;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v6, l6, 9, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(st.has_alt, 1);
	req.flags = NTM_REG_F_AGENT;
	req.naddrs = 1;
	sa(&req.addrs[0], "[fd00::9]:0");
	memset(&req.addrs[1], 0, sizeof(req.addrs[1]));
	req.ctr = 10;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v6, l6, 10, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_CHANGED);
	CHECK_EQ(act.alt_gone, 1);
	CHECK_EQ(st.has_alt, 0);
	CHECK_EQ(st.loc.reflexive.ss_family, AF_INET6);
	/* the goodbye forgets it too */
	req.naddrs = 2;
	sa(&req.addrs[0], "100.64.0.2:0");
	sa(&req.addrs[1], "[fd00::9]:0");
	req.ctr = 11;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v6, l6, 11, KA, FACTOR, &st, &act), 0);
	req.flags = NTM_REG_F_AGENT | NTM_REG_F_ALSO;
	req.ctr = 12;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v4, l4, 12, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_ALSO);
	CHECK_EQ(st.has_alt, 1);
	req.flags = NTM_REG_F_OFFLINE;
	req.ctr = 13;
	CHECK_EQ(ntm_dcreg_decide(&st, &req, &v6, l6, 13, KA, FACTOR, &st, &act), 0);
	CHECK_EQ(act.verdict, NTM_DCREG_GOODBYE);
	CHECK_EQ(st.has_alt, 0);
}

UNIT_MAIN(T(table), T(sequence), T(change_limit), T(also))
