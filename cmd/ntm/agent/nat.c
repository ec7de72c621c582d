/*
 * nat.c - NAT behaviour discovery from the agent's own UDP socket, the one
 * its tunnels use (docs/protocol.md §4.7): reflection probes to the DC and
 * to the RS once registered, and again whenever the reflexive address, the
 * NAT or the family changes (a move). The two reflexive addresses tell no
 * NAT, an endpoint-independent mapping or one that varies by destination
 * (lib/core/probe.c); the kind goes to the DC in the next REG_REQ, which
 * is sent at once when it changed. Only to a DC that answered a probe: one
 * from before the probe would refuse the REG_REQ's NAT bits. The verdict
 * also goes to the tunnels (tunnels.c): after a move, those that punched
 * punch again from the new address, or say why they cannot.
 *
 * To the RS also the filtering test: probes asking it to answer from its
 * other port and its other address; whether those answers get in says how
 * this end's NAT or firewall filters (`ntm status`; and the DC, when its
 * GET /v1/session lists reg_filtering, in the next REG_REQ). It goes on
 * after the NAT verdict, which it never delays.
 */
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "common.h"
#include "probe.h"
#include "agentd.h"

enum { P_DC, P_RELAY };

/* ---- the RS's addresses ---------------------------------------------------- */

static void start(struct agent *a);

static void
on_session(const struct ntm_http_result *res, void *arg)
{
	struct agent *a = arg;
	static const char *const keys[] = { "relay_udp4", "relay_udp6" };

	a->relay_state = 2;
	if (res->err == 0 && res->status == 200 && res->json) {
		json_t *feat = json_object_get(res->json, "features"), *v;
		size_t i;

		json_array_foreach(feat, i, v)
			if (json_is_string(v) && strcmp(json_string_value(v),
			    NTM_REG_FEATURE_FILTER) == 0)
				a->filter_dc_ok = 1;
		for (int k = 0; k < 2; k++) {
			const char *rv = json_string_value(json_object_get(res->json, keys[k]));
			struct sockaddr_storage ss;
			socklen_t len;

			if (rv == NULL || ntm_sa_parse(&ss, &len, rv) < 0)
				continue;
			ntm_sa_unmap(&ss, &len);
			if (ss.ss_family == AF_INET)
				a->relay4 = ss;
			else
				a->relay6 = ss;
		}
	} else {
		log_debug("nat: the relay's address is unknown (GET /v1/session: %s)",
		    res->err ? ntm_strerror(res->err) : "not 200");
		a->relay_state = 0;	/* asked again at the next discovery */
	}
	if (a->nat_wanted)
		start(a);
}

/* ---- probing --------------------------------------------------------------- */

static void
send_probe(struct agent *a, struct agent_probe *p)
{
	uint8_t out[NTM_PROBE_LEN];

	randombytes_buf(p->txid[p->sent], NTM_PROBE_TXID_LEN);
	ntm_probe_make(out, p->txid[p->sent]);
	p->sent++;
	(void)agent_udp_send(a, out, sizeof(out), &p->to);	/* a loss is retried */
}

static int
filt_pending(const struct agent_probe *p)
{
	return p->filt && ntm_filt_pending(&p->ft);
}

static void
send_filt(struct agent *a, struct agent_probe *p)
{
	uint8_t out[NTM_FILT_PER_ROUND][NTM_PROBE_LEN];
	int np = ntm_filt_round(&p->ft, out);

	for (int i = 0; i < np; i++)
		(void)agent_udp_send(a, out[i], NTM_PROBE_LEN, &p->to);
}

/* Both the NAT verdict and the filtering test are in: the filtering. */
static void
filt_finish(struct agent *a)
{
	const struct agent_probe *r = &a->probe[P_RELAY];
	enum ntm_filter f;

	a->filt_running = 0;
	f = ntm_filt_verdict(&r->ft, (enum ntm_nat)a->nat_run);
	if ((int)f == a->filter)
		return;
	log_info("nat: filtering %s (%s)", ntm_filter_name(f), ntm_filt_why(&r->ft, f));
	a->filter = (int)f;
	/* Only to a DC that takes it: an older one refuses the bits. */
	if (a->filter_dc_ok)
		agent_reg_send_now(a);
}

/* This end moved and is still global (no NAT, the same family): a route
 * that punched between two global ends (§4.5 rule 5) is made again by the
 * requester's DC, which gives both ends a direction with the new
 * candidates: both punch again at once, through their firewalls (§4.8),
 * the relay carrying the traffic meanwhile. The requester (side 0 at the
 * relay, whatever its handshake role) asks here; the other end tells it
 * in a CANDIDATES of kind none (agent_tun_nat_found), since the relay
 * takes a session's tickets only from the DC that opened it. A move that changed the NAT situation or the
 * family is being remade already (§4.6 step 6). */
static void
repunch_global(struct agent *a)
{
	for (int i = 0; i < a->ntun; i++) {
		struct tun *t = a->tuns[i];

		if (!t->repunch_wanted || t->recreating || t->p.kind != NTM_ROUTE_RELAY ||
		    t->npcand <= 0 || agent_tun_peer_remakes(t))
			continue;
		log_info("tunnel %s: this end moved and is global: asking the DC for "
		    "new candidates", t->peer);
		if (agent_request_tunnel(a, t->peer, t->tid, 0) == 0)
			t->recreating = 1;
	}
}

/* Every answer is in, or every probe had its second: the verdict. */
static void
finish(struct agent *a)
{
	struct agent_probe *d = &a->probe[P_DC], *r = &a->probe[P_RELAY];
	const struct sockaddr *seen_d = d->answered ? (struct sockaddr *)&d->seen : NULL;
	const struct sockaddr *seen_r = r->answered ? (struct sockaddr *)&r->seen : NULL;
	const struct sockaddr *local = NULL;
	enum ntm_nat nat;
	char b1[64], b2[64];

	a->nat_running = 0;
	if (!a->filt_running)
		evtimer_del(a->nat_timer);
	/* The local address:port, if a server saw one of ours. */
	if (d->answered && agent_among_locals(a, &d->seen))
		local = seen_d;
	else if (r->answered && agent_among_locals(a, &r->seen))
		local = seen_r;
	nat = ntm_nat_classify(local, seen_d, seen_r);
	a->nat_run = (int)nat;
	if (d->answered)
		a->nat_dc_ok = 1;
	if (nat == NTM_NAT_NONE)
		repunch_global(a);
	/* tunnels that lost their punched path to a move punch again now */
	agent_tun_nat_found(a, (int)nat, d->answered ? &d->seen : r->answered ? &r->seen :
	    NULL);
	if (nat == NTM_NAT_UNKNOWN) {
		log_debug("nat: no answer to the probes");
		return;
	}
	if ((int)nat == a->nat)
		return;
	log_info("nat: %s (the DC saw %s, the relay %s)", ntm_nat_name(nat),
	    seen_d ? ntm_sa_str(seen_d, b1, sizeof(b1)) : "nothing",
	    seen_r ? ntm_sa_str(seen_r, b2, sizeof(b2)) : r->known ? "nothing" : "(unknown)");
	a->nat = (int)nat;
	if (a->nat_dc_ok)
		agent_reg_send_now(a);
}

static void
on_nat_timer(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	struct timeval tv = { 1, 0 };
	int more = 0;

	for (int i = 0; i < 2; i++) {
		struct agent_probe *p = &a->probe[i];

		if (!p->known)
			continue;
		if (a->nat_running && !p->answered && p->sent < AGENT_NAT_TRIES) {
			send_probe(a, p);
			more = 1;
		}
		if (a->filt_running && filt_pending(p) && p->ft.rounds < NTM_FILT_ROUNDS) {
			send_filt(a, p);
			more = 1;
		}
	}
	if (more) {
		evtimer_add(a->nat_timer, &tv);
		return;
	}
	if (a->nat_running)
		finish(a);
	if (a->filt_running)
		filt_finish(a);
}

static void
start(struct agent *a)
{
	const struct sockaddr_storage *rs = a->dc.ss_family == AF_INET6 ? &a->relay6 : &a->relay4;

	a->nat_wanted = 0;
	a->nat_net = a->net_changes;
	memset(a->probe, 0, sizeof(a->probe));
	a->probe[P_DC].known = 1;
	a->probe[P_DC].to = a->dc;
	if (rs->ss_family != 0) {
		a->probe[P_RELAY].known = 1;
		a->probe[P_RELAY].to = *rs;
		a->probe[P_RELAY].filt = 1;
		ntm_filt_start(&a->probe[P_RELAY].ft, (const struct sockaddr *)rs);
	}
	a->nat_running = 1;
	a->filt_running = 1;
	a->nat_runs++;
	evtimer_del(a->nat_timer);
	on_nat_timer(-1, 0, a);
}

void
agent_nat_discover(struct agent *a, const char *why)
{
	char url[NTM_URL_MAX + 16];

	if (a->nat_timer == NULL &&
	    (a->nat_timer = evtimer_new(a->base, on_nat_timer, a)) == NULL)
		return;
	/* A run from this network already under way (a move starts one at
	 * once; its REG_RESP would start another): its verdict stands. */
	if (a->nat_running && a->nat_net == a->net_changes) {
		log_debug("nat: already probing from this network (%s)", why);
		return;
	}
	log_debug("nat: probing the DC and the relay (%s)", why);
	if (a->relay_state == 2) {
		start(a);
		return;
	}
	a->nat_wanted = 1;
	if (a->relay_state == 1)
		return;
	snprintf(url, sizeof(url), "%s/v1/session", a->s.dc_url);
	if (a->http && ntm_httpc_request(a->http, "GET", url, NULL, a->s.token, 10000,
	    on_session, a) == 0)
		a->relay_state = 1;
	else
		start(a);		/* the DC alone */
}

int
agent_nat_input(struct agent *a, const uint8_t *p, size_t n,
    const struct sockaddr_storage *from)
{
	struct sockaddr_storage seen;
	socklen_t len;
	int all = 1, filt_all = 1, ours = 0;

	if (!a->nat_running && !a->filt_running)
		return -1;
	for (int i = 0; i < 2; i++) {
		struct agent_probe *pr = &a->probe[i];

		for (int k = 0; a->nat_running && k < pr->sent && !pr->answered; k++)
			if (ntm_probe_resp_open(p, n, pr->txid[k], &seen, &len) == 0) {
				pr->answered = 1;
				pr->seen = seen;
				ours = 1;
			}
		if (a->filt_running && pr->filt && ntm_filt_input(&pr->ft, p, n,
		    (const struct sockaddr *)from, sizeof(*from)))
			ours = 1;
		if (pr->known && !pr->answered)
			all = 0;
		if (pr->known && filt_pending(pr))
			filt_all = 0;
	}
	if (all && a->nat_running)
		finish(a);
	if (filt_all && a->filt_running && !a->nat_running) {
		evtimer_del(a->nat_timer);
		filt_finish(a);
	}
	return ours ? 0 : -1;
}

void
agent_nat_stop(struct agent *a)
{
	if (a->nat_timer)
		event_free(a->nat_timer);
	a->nat_timer = NULL;
	a->nat_running = 0;
	a->filt_running = 0;
}
