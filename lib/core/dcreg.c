/*
 * dcreg.c - the DC's registration decisions (dcreg.h). No I/O, no clock.
 */
#include <netinet/in.h>
#include <string.h>
#include <arpa/inet.h>

#include "dcreg.h"

int
ntm_dcreg_online(const struct ntm_dcreg *st, int64_t now, int keepalive_s,
    int online_factor)
{
	return st->has_loc && now - st->last_seen < (int64_t)online_factor * keepalive_s;
}

int
ntm_dcreg_alt_online(const struct ntm_dcreg *st, int64_t now, int keepalive_s,
    int online_factor)
{
	return st->has_loc && st->has_alt &&
	    now - st->alt_seen < (int64_t)online_factor * keepalive_s;
}


/* Whether the second family's location still goes with loc: another
 * family, which loc's local addresses still name (a host that lost it
 * lists none). */
static int
alt_valid(const struct ntm_location *loc, const struct ntm_location *alt)
{
	int fam = ntm_sa_family(&alt->reflexive);

	if (fam == ntm_sa_family(&loc->reflexive))
		return 0;
	for (int i = 0; i < loc->nlocals; i++)
		if (ntm_sa_family(&loc->locals[i]) == fam)
			return 1;
	return 0;
}

/* The location the request states: where it came from, and its local
 * addresses with the client's port where it gave none. */
static void
location_of(const struct ntm_reg_req *req, const struct sockaddr_storage *from,
    socklen_t fromlen, struct ntm_location *loc)
{
	socklen_t len = fromlen;

	memset(loc, 0, sizeof(*loc));
	/* Only the address and port: the rest of the storage, and an IPv6
	 * flow label, would make every REG_REQ look like a change. */
	if (from->ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&loc->reflexive;

		memcpy(s6, from, sizeof(*s6));
		s6->sin6_flowinfo = 0;
	} else if (from->ss_family == AF_INET)
		memcpy(&loc->reflexive, from, sizeof(struct sockaddr_in));
	else
		memcpy(&loc->reflexive, from, sizeof(*from));
	ntm_sa_unmap(&loc->reflexive, &len);
	for (int i = 0; i < req->naddrs && i < NTM_REG_ADDRS; i++) {
		struct sockaddr_storage *l = &loc->locals[loc->nlocals];

		*l = req->addrs[i];
		if (l->ss_family == AF_INET && ((struct sockaddr_in *)l)->sin_port == 0)
			((struct sockaddr_in *)l)->sin_port = htons(req->local_port);
		else if (l->ss_family == AF_INET6 &&
		    ((struct sockaddr_in6 *)l)->sin6_port == 0)
			((struct sockaddr_in6 *)l)->sin6_port = htons(req->local_port);
		else if (l->ss_family != AF_INET && l->ss_family != AF_INET6)
			continue;
		loc->nlocals++;
	}
	loc->natted = ntm_location_natted(loc);
	loc->nat = req->nat;
	loc->filter = req->filter;
}

/* Whether one more location change may go now (it is counted if so). */
static int
change_allowed(struct ntm_dcreg *st, int64_t now)
{
	if (st->changes_at == 0) {
		st->changes = NTM_DCREG_CHANGE_BURST;
		st->changes_at = now;
	} else if (now > st->changes_at) {
		int64_t add = (now - st->changes_at) / NTM_DCREG_CHANGE_EVERY_S;

		if (add > 0) {
			st->changes = add >= NTM_DCREG_CHANGE_BURST ? NTM_DCREG_CHANGE_BURST :
			    (int)(st->changes + add > NTM_DCREG_CHANGE_BURST ?
			    NTM_DCREG_CHANGE_BURST : st->changes + add);
			st->changes_at += add * NTM_DCREG_CHANGE_EVERY_S;
		}
	} else if (now < st->changes_at)
		st->changes_at = now;		/* the clock went back */
	if (st->changes <= 0)
		return 0;
	st->changes--;
	return 1;
}

int
ntm_dcreg_decide(const struct ntm_dcreg *old, const struct ntm_reg_req *req,
    const struct sockaddr_storage *from, socklen_t fromlen, int64_t now,
    int keepalive_s, int online_factor, struct ntm_dcreg *next,
    struct ntm_dcreg_act *act)
{
	struct ntm_dcreg o;
	struct ntm_location loc;
	int agent, changed, was_online;

	if (old == NULL || req == NULL || from == NULL || next == NULL || act == NULL)
		return NTM_ERR_INVAL;
	o = *old;
	memset(act, 0, sizeof(*act));
	*next = o;
	if (req->flags & NTM_REG_F_OFFLINE) {
		/* Its agent stops (ntm down): offline at once, so a direction
		 * request for it fails now instead of after 3 keepalives. No
		 * answer: nobody waits for one. */
		act->verdict = NTM_DCREG_GOODBYE;
		act->log = act->store = act->offline = o.has_loc;
		next->has_loc = 0;
		next->has_alt = 0;
		if (req->ctr > o.stopped_ctr)
			next->stopped_ctr = req->ctr;
		return 0;
	}
	if (req->ctr < o.stopped_ctr) {
		act->verdict = NTM_DCREG_STALE;
		return 0;
	}
	location_of(req, from, fromlen, &loc);
	if (req->flags & NTM_REG_F_ALSO) {
		/* The second family: beside the location, never instead of it.
		 * act->store is the first location's only: the DC stores this
		 * one apart (cmd/ntm-dc/udp.c save_also). */
		if (!o.has_loc || !alt_valid(&o.loc, &loc)) {
			act->verdict = NTM_DCREG_ALSO_DROPPED;
			return 0;
		}
		act->verdict = NTM_DCREG_ALSO;
		act->answer = 1;
		act->echo = req->ctr;
		act->log = !o.has_alt || memcmp(&loc, &o.alt, sizeof(loc)) != 0;
		/* Same NAT situation, new reflexive address: the peers of its
		 * direct routes over this family are told (rate limited as the
		 * location's changes). */
		act->moved = o.has_alt && loc.natted == o.alt.natted &&
		    !ntm_sa_equal((const struct sockaddr *)&loc.reflexive,
		    (const struct sockaddr *)&o.alt.reflexive) && change_allowed(&o, now);
		next->changes = o.changes;
		next->changes_at = o.changes_at;
		next->alt = loc;
		next->has_alt = 1;
		next->alt_seen = now;
		return 0;
	}
	agent = !!(req->flags & NTM_REG_F_AGENT);
	was_online = ntm_dcreg_online(&o, now, keepalive_s, online_factor);
	changed = !o.has_loc || o.agent != agent || memcmp(&loc, &o.loc, sizeof(loc)) != 0;
	/* Same NAT situation and family, new reflexive address: the direct
	 * routes stay, only the address moved. (Otherwise the agent has every
	 * route decided again, §4.6 step 6.) */
	act->moved = o.has_loc && loc.natted == o.loc.natted &&
	    loc.reflexive.ss_family == o.loc.reflexive.ss_family &&
	    !ntm_sa_equal((const struct sockaddr *)&loc.reflexive,
	    (const struct sockaddr *)&o.loc.reflexive);
	act->came_online = !was_online;
	act->log = changed || !was_online;
	act->store = changed || now - o.saved >= keepalive_s;
	act->answer = 1;
	act->echo = req->ctr;
	/* The rate of location changes (a first location always goes). */
	if ((changed && o.has_loc) || o.owe_store) {
		if (change_allowed(&o, now)) {
			act->store = 1;
			act->moved = act->moved || o.owe_moved;
			o.owe_store = o.owe_moved = 0;
		} else if (changed && o.has_loc) {
			act->limited = 1;
			o.owe_store = 1;
			o.owe_moved = o.owe_moved || act->moved;
			act->store = act->moved = act->log = 0;
		}
	}
	next->changes = o.changes;
	next->changes_at = o.changes_at;
	next->owe_store = o.owe_store;
	next->owe_moved = o.owe_moved;
	if (!o.has_loc && o.last_seen == 0)
		act->verdict = NTM_DCREG_FIRST;
	else if (act->moved)
		act->verdict = NTM_DCREG_MOVED;
	else if (!was_online)
		act->verdict = NTM_DCREG_ONLINE;
	else if (changed)
		act->verdict = NTM_DCREG_CHANGED;
	else
		act->verdict = NTM_DCREG_REFRESH;
	next->stopped_ctr = 0;
	next->loc = loc;
	next->has_loc = 1;
	next->agent = agent;
	next->last_seen = now;
	/* The host lost the second family, or now registers from it. */
	if (o.has_alt && !alt_valid(&loc, &o.alt)) {
		next->has_alt = 0;
		act->alt_gone = act->log = 1;
	}
	return 0;
}
