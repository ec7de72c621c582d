/*
 * route.c - the DC's route decision (docs/protocol.md §4.5): a pure
 * function of the two ends' locations, no I/O, no clock.
 *
 *   1. the ends use different families     -> relay  "IPv4 and IPv6: relay bridges"
 *   2. both natted, same reflexive address -> local  "same NAT" (requester initiates
 *      to the peer's local address of the family both use)
 *   3. both natted, different NATs         -> relay, and
 *      both mappings endpoint-independent -> hole punching too
 *      "both behind endpoint-independent NATs: relay, punching"
 *      one per destination, the other endpoint-independent -> punching too,
 *      predicting the hard end's ports "<side>'s NAT varies by destination:
 *      relay, predicting ports"
 *      a mapping varies by destination   -> "<side>'s NAT varies by destination"
 *      else (a kind unknown)              -> "both behind NAT"
 *   4. exactly one natted                  -> direct "<side> behind NAT initiates"
 *      (the natted side initiates to the global side's reflexive address)
 *   5. neither natted                      -> direct "both global" (requester initiates)
 *      both found no NAT (their agents punch), on two hosts, punching allowed
 *                                          -> relay, and hole punching too
 *      "both global: relay, punching through their firewalls"
 *
 * Rule 2 without a usable local address of that family falls to rule 3.
 * Two families (ntm_route_decide_dual): each family both ends registered is
 * decided as above; direct or local beats a punching relay beats a relay,
 * a tie goes to the ends' first locations, and the reason names the family
 * "IPv6: both global; IPv4: both NATs vary by destination: relay".
 * Without punching (the DC's punch = 0, or no relay for the family) rule 3
 * says "both behind NAT" for two endpoint-independent NATs, and rule 5 is
 * direct.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "probe.h"
#include "route.h"


/* A local address another host behind the same NAT can reach: same family,
 * not IPv6 link-local (it would need a scope), not unspecified. */
static int
usable_local(const struct sockaddr_storage *ss, int family)
{
	struct sockaddr_storage x = *ss;

	ntm_sa_unmap(&x, NULL);
	if (x.ss_family != family)
		return 0;
	if (x.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&x;
		return s4->sin_addr.s_addr != htonl(INADDR_ANY) && s4->sin_port != 0;
	}
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&x;
	return !IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr) &&
	    !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr) && s6->sin6_port != 0;
}

static void
set_endpoint(struct ntm_route *out, const struct sockaddr_storage *ss)
{
	out->endpoint = *ss;
	ntm_sa_unmap(&out->endpoint, NULL);
}

static int
decide(struct ntm_route *out, enum ntm_route_kind kind, int requester_initiates,
    const struct sockaddr_storage *endpoint, const char *reason)
{
	out->kind = kind;
	out->requester_initiates = requester_initiates;
	if (endpoint)
		set_endpoint(out, endpoint);
	snprintf(out->reason, sizeof(out->reason), "%s", reason);
	return 0;
}

/* Whether an end's NAT lets in what the other end sends from any port of
 * an address it sent to (what its agent found, §4.7): a probe of the
 * other end gets in at once, from whichever port its NAT gave it. */
static int
by_address(int filter)
{
	return filter == NTM_FILTER_EI || filter == NTM_FILTER_ADDR_DEP ||
	    filter == NTM_FILTER_ADDR;
}

/* A punching relay whose reason names the ends that filter by address. */
static int
decide_filter(struct ntm_route *out, const char *reason, int a_addr, int b_addr)
{
	char buf[sizeof(out->reason)];

	snprintf(buf, sizeof(buf), "%s%s", reason, a_addr && b_addr ?
	    "; both NATs filter by address" : a_addr ? "; requester's NAT filters by address" :
	    b_addr ? "; peer's NAT filters by address" : "");
	return decide(out, NTM_ROUTE_RELAY, 1, NULL, buf);
}

int
ntm_route_decide(const struct ntm_location *a, const struct ntm_location *b,
    int punch, struct ntm_route *out)
{
	int fa, fb, i;

	if (a == NULL || b == NULL || out == NULL)
		return NTM_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	fa = ntm_sa_family(&a->reflexive);
	fb = ntm_sa_family(&b->reflexive);
	if (fa == 0 || fb == 0 || a->nlocals < 0 || a->nlocals > NTM_REG_ADDRS ||
	    b->nlocals < 0 || b->nlocals > NTM_REG_ADDRS)
		return NTM_ERR_INVAL;

	out->family = fa == fb ? (fa == AF_INET6 ? 6 : 4) : 0;
	if (fa != fb)
		return decide(out, NTM_ROUTE_RELAY, 1, NULL, "IPv4 and IPv6: relay bridges");
	if (a->natted && b->natted) {
		if (ntm_sa_same_host((const struct sockaddr *)&a->reflexive,
		    (const struct sockaddr *)&b->reflexive)) {
			for (i = 0; i < b->nlocals; i++)
				if (usable_local(&b->locals[i], fa))
					return decide(out, NTM_ROUTE_LOCAL, 1,
					    &b->locals[i], "same NAT");
			return decide(out, NTM_ROUTE_RELAY, 1, NULL,
			    "same NAT but the peer has no local address of the family: relay");
		}
		if (a->nat == NTM_NAT_EI && b->nat == NTM_NAT_EI && punch) {
			out->punch = 1;
			return decide_filter(out, "both behind endpoint-independent NATs: relay, "
			    "punching", by_address(a->filter), by_address(b->filter));
		}
		if (a->nat == NTM_NAT_PER_DEST && b->nat == NTM_NAT_PER_DEST)
			return decide(out, NTM_ROUTE_RELAY, 1, NULL,
			    "both NATs vary by destination: relay");
		/* One end per destination, the other endpoint-independent:
		 * birthday probing (§4.8) may find one of the hard end's
		 * mappings. */
		if (a->nat == NTM_NAT_PER_DEST && b->nat == NTM_NAT_EI && punch) {
			out->punch = 1;
			return decide_filter(out, "requester's NAT varies by destination: relay, "
			    "predicting ports", 0, by_address(b->filter));
		}
		if (b->nat == NTM_NAT_PER_DEST && a->nat == NTM_NAT_EI && punch) {
			out->punch = 1;
			return decide_filter(out, "peer's NAT varies by destination: relay, "
			    "predicting ports", by_address(a->filter), 0);
		}
		if (a->nat == NTM_NAT_PER_DEST)
			return decide(out, NTM_ROUTE_RELAY, 1, NULL,
			    "requester's NAT varies by destination: relay");
		if (b->nat == NTM_NAT_PER_DEST)
			return decide(out, NTM_ROUTE_RELAY, 1, NULL,
			    "peer's NAT varies by destination: relay");
		return decide(out, NTM_ROUTE_RELAY, 1, NULL, "both behind NAT");
	}
	if (a->natted)
		return decide(out, NTM_ROUTE_DIRECT, 1, &b->reflexive,
		    "requester behind NAT initiates");
	if (b->natted)
		return decide(out, NTM_ROUTE_DIRECT, 0, &a->reflexive,
		    "peer behind NAT initiates");
	/* Two global hosts may each sit behind a stateful firewall that lets in
	 * only replies to what the host sent: a handshake from one end would be
	 * dropped by the other's. Both ends probing at once opens both (§4.8),
	 * and the relay carries the traffic meanwhile and stays the fallback.
	 * Only ends whose agents found no NAT (so punch, §4.7) on two hosts. */
	if (punch && a->nat == NTM_NAT_NONE && b->nat == NTM_NAT_NONE &&
	    !ntm_sa_same_host((const struct sockaddr *)&a->reflexive,
	    (const struct sockaddr *)&b->reflexive)) {
		out->punch = 1;
		return decide(out, NTM_ROUTE_RELAY, 1, NULL,
		    "both global: relay, punching through their firewalls");
	}
	return decide(out, NTM_ROUTE_DIRECT, 1, &b->reflexive, "both global");
}

/* How good a route is: direct or local, then a relay that punches, then a
 * relay. */
static int
rank(const struct ntm_route *r)
{
	return r->kind != NTM_ROUTE_RELAY ? 3 : r->punch ? 2 : 1;
}

int
ntm_route_decide_dual(const struct ntm_location *a, const struct ntm_location *a_alt,
    const struct ntm_location *b, const struct ntm_location *b_alt, int punch,
    struct ntm_route *out)
{
	const struct ntm_location *la[2] = { a, a_alt }, *lb[2] = { b, b_alt };
	struct ntm_route r[2];
	int n = 0, best, e;

	if (a == NULL || b == NULL || out == NULL)
		return NTM_ERR_INVAL;
	/* Pairs of locations of one family: the firsts first, so a tie keeps
	 * the route the ends would have had with one family each. */
	for (int k = 0; k < 4 && n < 2; k++) {
		int i = k >> 1, j = k & 1;

		if (la[i] == NULL || lb[j] == NULL || ntm_sa_family(&la[i]->reflexive) == 0 ||
		    ntm_sa_family(&la[i]->reflexive) != ntm_sa_family(&lb[j]->reflexive))
			continue;
		if ((e = ntm_route_decide(la[i], lb[j], punch, &r[n])) < 0)
			return e;
		r[n].a_loc = i;
		r[n].b_loc = j;
		n++;
	}
	if (n == 0)
		return ntm_route_decide(a, b, punch, out);
	best = n == 2 && rank(&r[1]) > rank(&r[0]) ? 1 : 0;
	*out = r[best];
	out->dual = n == 2 || out->a_loc != 0 || out->b_loc != 0;
	if (n == 2) {
		out->other_family = r[!best].family;
		snprintf(out->other, sizeof(out->other), "%s", r[!best].reason);
	}
	return 0;
}

/* One reason as the peer reads it: "requester" and "peer" swapped where
 * they name an end (the reasons of rule 3 and 4, and the filtering a
 * punching reason names after "; "). */
static void
reason_swap(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	if (strcmp(in, "requester behind NAT initiates") == 0) {
		snprintf(out, cap, "peer behind NAT initiates");
		return;
	}
	if (strcmp(in, "peer behind NAT initiates") == 0) {
		snprintf(out, cap, "requester behind NAT initiates");
		return;
	}
	if (cap == 0)
		return;
	out[0] = 0;
	for (size_t i = 0; in[i] && o + 1 < cap; ) {
		int start = i == 0 || (i >= 2 && in[i - 2] == ';' && in[i - 1] == ' ');
		const char *w = NULL;
		size_t skip = 0;

		if (start && strncmp(in + i, "requester's ", 12) == 0)
			w = "peer's ", skip = 12;
		else if (start && strncmp(in + i, "peer's ", 7) == 0)
			w = "requester's ", skip = 7;
		if (w) {
			int n = snprintf(out + o, cap - o, "%s", w);

			o += (size_t)n < cap - o ? (size_t)n : cap - o - 1;
			i += skip;
			continue;
		}
		out[o++] = in[i++];
		out[o] = 0;
	}
}

void
ntm_route_reason(const struct ntm_route *r, int peer_side, char *out, size_t cap)
{
	char mine[96], other[96], m2[96], o2[96];
	int both;

	if (cap == 0)
		return;
	reason_swap(r->reason, m2, sizeof(m2));
	reason_swap(r->other, o2, sizeof(o2));
	snprintf(mine, sizeof(mine), "%s", peer_side ? m2 : r->reason);
	snprintf(other, sizeof(other), "%s", peer_side ? o2 : r->other);
	if (!r->dual) {
		snprintf(out, cap, "%s", mine);
		return;
	}
	/* A direction's reason is at most 95 bytes: the other family's reason
	 * is left out when it does not fit both ends' reasons alike. */
	both = other[0] && strlen(r->reason) + strlen(r->other) + 16 <= 95 &&
	    strlen(m2) + strlen(o2) + 16 <= 95;
	if (both)
		snprintf(out, cap, "IPv%d: %.80s; IPv%d: %.80s", r->family, mine,
		    r->other_family, other);
	else
		snprintf(out, cap, "IPv%d: %.80s", r->family, mine);
}

const char *
ntm_route_kind_name(enum ntm_route_kind k)
{
	switch (k) {
	case NTM_ROUTE_DIRECT:	return "direct";
	case NTM_ROUTE_LOCAL:	return "local";
	case NTM_ROUTE_RELAY:	return "relay";
	}
	return "?";
}

int
ntm_location_natted(const struct ntm_location *l)
{
	int i;

	for (i = 0; i < l->nlocals && i < NTM_REG_ADDRS; i++)
		if (ntm_sa_equal((const struct sockaddr *)&l->reflexive,
		    (const struct sockaddr *)&l->locals[i]))
			return 0;
	return 1;
}
