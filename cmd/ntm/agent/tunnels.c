/*
 * tunnels.c - the agent's tunnel table and each tunnel's life on the
 * wire: the tunnel core (lib/tunnel.c) fed datagrams and the clock, relay
 * binds and their ACKs, the handshake gate of a relayed initiator, the
 * packets queued until the handshake is done, the peer's endpoint moves
 * (an authentic datagram from elsewhere, MOVED from the DC), keepalives,
 * and one timer per tunnel. What happens above (a tunnel up or gone, an
 * inner packet for us) goes up through the agent's hooks.
 */
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common.h"
#include "ippkt.h"
#include "relay.h"
#include "agentd.h"

const char *const agent_drop_names[DROP_N] = {
	"malformed", "unknown_index", "auth", "replay", "state"
};

struct tun *
agent_tun_by_peer(struct agent *a, const char *peer)
{
	for (int i = 0; i < a->ntun; i++)
		if (strcmp(a->tuns[i]->peer, peer) == 0)
			return a->tuns[i];
	return NULL;
}

struct tun *
agent_tun_by_tid(struct agent *a, const uint8_t *tid)
{
	for (int i = 0; i < a->ntun; i++)
		if (memcmp(a->tuns[i]->tid, tid, NTM_TUNNEL_ID_LEN) == 0)
			return a->tuns[i];
	return NULL;
}

struct tun *
agent_tun_by_index(struct agent *a, uint32_t idx)
{
	if (idx == 0)
		return NULL;
	for (int i = 0; i < a->ntun; i++)
		if (ntm_tunnel_owns_index(a->tuns[i]->t, idx))
			return a->tuns[i];
	return NULL;
}

void
agent_tun_free(struct tun *t)
{
	struct agent *a = t->a;

	for (int i = 0; i < a->ntun; i++)
		if (a->tuns[i] == t) {
			a->tuns[i] = a->tuns[--a->ntun];
			break;
		}
	for (int i = 0; i < t->nq; i++)
		free(t->q[i]);
	if (t->timer)
		event_free(t->timer);
	if (agent_tun_by_peer(a, t->peer) == NULL)
		a->hooks->tunnel_gone(a, t);	/* unless a new tunnel took over */
	ntm_tunnel_free(t->t);
	ntm_wipe(t->rkey, sizeof(t->rkey));
	free(t);
}

static void
tun_output(struct tun *t, const struct ntm_tun_out *out)
{
	for (int i = 0; i < out->n; i++) {
		if (!t->has_ep)
			continue;
		if (out->buf[i][0] == NTM_MSG_HS_INIT || out->buf[i][0] == NTM_MSG_HS_RESP)
			t->hs_sent = agent_now_us();
		(void)agent_udp_send(t->a, out->buf[i], out->len[i], &t->ep);
	}
}

static void
tun_start_hs(struct tun *t)
{
	struct ntm_tun_out *out = &t->a->out;

	t->hs_started = 1;
	if (ntm_tunnel_start(t->t, agent_now_ms(), out) == 0)
		tun_output(t, out);
}

void
agent_tun_relay_bind(struct tun *t)
{
	uint8_t b[NTM_RELAY_BIND_MAX];
	uint64_t ctr = agent_wall_us() / 1000;
	int n;

	if (ctr <= t->bind_ctr)
		ctr = t->bind_ctr + 1;
	t->bind_ctr = ctr;
	if ((n = ntm_relay_bind_make(b, sizeof(b), t->side, ctr, t->ticket, t->tlen,
	    t->rkey)) < 0) {
		log_warnx("tunnel %s: cannot make RELAY_BIND: %s", t->peer, ntm_strerror(n));
		t->bind_next = agent_now_ms() + 1000L * t->a->keepalive_s;
		return;
	}
	(void)agent_udp_send(t->a, b, (size_t)n, &t->ep);
	t->bind_next = agent_now_ms() + 1000;	/* until the ACK says otherwise */
}

/* An empty DATA: the peer moves its endpoint to where it came from. */
void
agent_tun_keepalive(struct tun *t)
{
	struct ntm_tun_out *out = &t->a->out;

	if (ntm_tunnel_send(t->t, NULL, 0, agent_now_ms(), out) == 0)
		tun_output(t, out);
}

static void
tun_flush(struct tun *t)
{
	struct ntm_tun_out *out = &t->a->out;
	int i;

	for (i = 0; i < t->nq; i++) {
		if (ntm_tunnel_send(t->t, t->q[i]->b, t->q[i]->len, agent_now_ms(), out) < 0)
			break;
		tun_output(t, out);
		free(t->q[i]);
	}
	memmove(t->q, t->q + i, (size_t)(t->nq - i) * sizeof(t->q[0]));
	t->nq -= i;
}

int
agent_tun_send(struct tun *t, const uint8_t *pkt, size_t len)
{
	struct ntm_tun_out *out = &t->a->out;
	struct qpkt *q;

	if (len > NTM_INNER_MTU)
		return -1;
	if (t->nq == 0 && ntm_tunnel_send(t->t, pkt, len, agent_now_ms(), out) == 0) {
		tun_output(t, out);
		agent_tun_arm(t);
		return 0;
	}
	if (t->nq >= AGENT_QUEUE_MAX || (q = malloc(sizeof(*q))) == NULL)
		return -1;
	memcpy(q->b, pkt, len);
	q->len = len;
	t->q[t->nq++] = q;
	return 0;
}

static void
on_tun_timer(evutil_socket_t fd, short what, void *arg)
{
	struct tun *t = arg;
	struct ntm_tun_out *out = &t->a->out;
	int64_t now = agent_now_ms();

	if (ntm_tunnel_deadline(t->t) <= now && ntm_tunnel_tick(t->t, now, out) == 0)
		tun_output(t, out);
	if (t->kind == NTM_ROUTE_RELAY && now >= t->bind_next)
		agent_tun_relay_bind(t);
	if (t->initiator && !t->hs_started && now >= t->hs_gate)
		tun_start_hs(t);
	agent_tun_arm(t);
}

void
agent_tun_arm(struct tun *t)
{
	int64_t now = agent_now_ms(), d = ntm_tunnel_deadline(t->t);
	struct timeval tv;

	if (t->kind == NTM_ROUTE_RELAY && t->bind_next < d)
		d = t->bind_next;
	if (t->initiator && !t->hs_started && t->hs_gate < d)
		d = t->hs_gate;
	if (d == INT64_MAX) {
		evtimer_del(t->timer);
		t->armed = 0;
		return;
	}
	/* Most packets move the deadline later: a wake-up already set for no
	 * later than it stays (on_tun_timer re-arms), and saves a system call
	 * per packet. */
	if (t->armed && t->armed <= d && evtimer_pending(t->timer, NULL))
		return;
	t->armed = d;
	d = d > now ? d - now : 0;
	tv.tv_sec = d / 1000;
	tv.tv_usec = (d % 1000) * 1000;
	evtimer_add(t->timer, &tv);
}

/* ---- made, rerouted -------------------------------------------------------- */

static const char *
kind_name(int k)
{
	return k == NTM_ROUTE_DIRECT ? "direct" : k == NTM_ROUTE_LOCAL ? "local" :
	    k == NTM_ROUTE_RELAY ? "relay" : "?";
}

void
agent_tun_reroute(struct tun *t, const struct tun *nt)
{
	char b1[64], b2[64];

	if (nt->initiator != t->initiator)
		log_warnx("tunnel %s: the new direction makes us %s; keeping %s",
		    t->peer, nt->initiator ? "initiator" : "responder",
		    t->initiator ? "initiator" : "responder");
	log_info("tunnel %s: route %s -> %s (%s), endpoint %s -> %s", t->peer,
	    kind_name(t->kind), kind_name(nt->kind), nt->reason,
	    t->has_ep ? ntm_sa_str((const struct sockaddr *)&t->ep, b1, sizeof(b1)) : "-",
	    nt->has_ep ? ntm_sa_str((const struct sockaddr *)&nt->ep, b2, sizeof(b2)) : "-");
	t->kind = nt->kind;
	snprintf(t->reason, sizeof(t->reason), "%s", nt->reason);
	if (nt->has_ep) {
		t->ep = nt->ep;
		t->eplen = nt->eplen;
		t->has_ep = 1;
	}
	t->recreating = 0;
	if (nt->kind == NTM_ROUTE_RELAY) {
		memcpy(t->ticket, nt->ticket, nt->tlen);
		t->tlen = nt->tlen;
		memcpy(t->rkey, nt->rkey, sizeof(t->rkey));
		t->side = nt->side;
		t->acked = t->peer_bound = 0;
		t->ka_on_ack = 1;
		agent_tun_relay_bind(t);
	} else
		agent_tun_keepalive(t);
	agent_tun_arm(t);
}

struct tun *
agent_tun_new(struct agent *a, const struct tun *nt, const struct ntm_tunnel_cfg *cfg,
    char *err, size_t errlen)
{
	struct tun *t;
	char b[64];

	/* A new tunnel to a peer replaces any older one to it. */
	if ((t = agent_tun_by_peer(a, nt->peer)) != NULL) {
		log_info("tunnel %s: replaced by a new tunnel", nt->peer);
		agent_tun_free(t);
	}
	if (a->ntun >= AGENT_TUN_MAX) {
		snprintf(err, errlen, "too many tunnels (%d)", AGENT_TUN_MAX);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	*t = *nt;
	t->a = a;
	t->created = agent_now_ms();
	ntm_hex_encode(t->tid_hex, sizeof(t->tid_hex), t->tid, NTM_TUNNEL_ID_LEN);
	if ((t->t = ntm_tunnel_new(cfg, agent_now_ms())) == NULL ||
	    (t->timer = evtimer_new(a->base, on_tun_timer, t)) == NULL) {
		ntm_tunnel_free(t->t);
		free(t);
		snprintf(err, errlen, "cannot make the tunnel");
		return NULL;
	}
	a->tuns[a->ntun++] = t;
	a->hooks->tunnel_new(a, t);
	log_info("tunnel %s: %s route (%s), %s, endpoint %s", t->peer, kind_name(t->kind),
	    t->reason, t->initiator ? "initiator" : "responder",
	    t->has_ep ? ntm_sa_str((struct sockaddr *)&t->ep, b, sizeof(b)) : "-");
	if (t->kind == NTM_ROUTE_RELAY) {
		agent_tun_relay_bind(t);
		t->hs_gate = agent_now_ms() + 2000;	/* or at once on peer_bound */
	} else if (t->initiator)
		tun_start_hs(t);
	agent_tun_arm(t);
	return t;
}

/* ---- input ----------------------------------------------------------------- */

int
agent_drop_reason(int err)
{
	switch (err) {
	case NTM_ERR_CRYPTO:	return DROP_AUTH;
	case NTM_ERR_REPLAY:	return DROP_REPLAY;
	case NTM_ERR_STATE:	return DROP_STATE;
	default:		return DROP_MALFORMED;
	}
}

/* An authentic inner packet: the peer may only send from its own vIPs, to
 * ours. Echo requests on the user-space stack are answered here; the rest
 * goes up (control connections, SOCKS5, lwIP, the TUN interface). */
static void
inner_packet(struct tun *t, const uint8_t *p, size_t len)
{
	struct agent *a = t->a;
	struct ntm_ip ip;
	uint8_t out[NTM_INNER_MTU];
	int n;

	if (ntm_ip_parse(&ip, p, len) != 0) {
		a->inner_drops++;
		return;
	}
	if (ip.version == 4 ? !(t->has4 && memcmp(ip.src, t->pv4, 4) == 0 &&
	    a->has_vip4 && memcmp(ip.dst, a->vip4, 4) == 0) :
	    !(t->has6 && memcmp(ip.src, t->pv6, 16) == 0 &&
	    a->has_vip6 && memcmp(ip.dst, a->vip6, 16) == 0)) {
		a->inner_drops++;
		return;
	}
	if (!a->tun_mode && ip.is_echo && (ip.icmp_type == NTM_ICMP_ECHO_REQUEST ||
	    ip.icmp_type == NTM_ICMP6_ECHO_REQUEST)) {
		if ((n = ntm_ip_echo_reply(out, sizeof(out), &ip)) > 0 &&
		    agent_tun_send(t, out, (size_t)n) == 0)
			a->echo_answered++;
		else
			a->inner_drops++;
		return;
	}
	if (a->hooks->inner(a, t, &ip, p, len) < 0)
		a->inner_drops++;
}

/* MOVED (docs/protocol.md §4.6): the peer of a direct tunnel registered from
 * a new address. Send there at once; the keepalive tells the peer where we
 * are in turn, and opens our NAT towards it. */
void
agent_tun_moved(struct agent *a, const struct ntm_moved *m)
{
	struct sockaddr_storage ep = m->endpoint;
	socklen_t len = ep.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	struct tun *t;
	char b1[64], b2[64];

	a->moved++;
	ntm_sa_unmap(&ep, &len);
	if ((t = agent_tun_by_tid(a, m->tunnel_id)) == NULL || t->kind == NTM_ROUTE_RELAY) {
		log_debug("MOVED for %s tunnel: ignored", t ? "a relayed" : "an unknown");
		return;
	}
	if (t->has_ep && ntm_sa_equal((struct sockaddr *)&t->ep, (struct sockaddr *)&ep))
		return;
	log_info("tunnel %s: the DC says the peer moved: endpoint %s -> %s", t->peer,
	    t->has_ep ? ntm_sa_str((struct sockaddr *)&t->ep, b1, sizeof(b1)) : "-",
	    ntm_sa_str((struct sockaddr *)&ep, b2, sizeof(b2)));
	t->ep = ep;
	t->eplen = len;
	t->has_ep = 1;
	t->endpoint_moves++;
	agent_tun_keepalive(t);
	agent_tun_arm(t);
}

int
agent_tun_relay_ack(struct agent *a, const uint8_t *p, size_t n)
{
	for (int i = 0; i < a->ntun; i++) {
		struct tun *t = a->tuns[i];
		int side, pb;
		uint64_t ctr;

		if (t->kind != NTM_ROUTE_RELAY ||
		    ntm_relay_ack_open(p, n, t->rkey, &side, &pb, &ctr) != 0 ||
		    side != t->side)
			continue;
		if (!t->acked || pb != t->peer_bound)
			log_debug("tunnel %s: relay ACK, peer %sbound", t->peer,
			    pb ? "" : "not ");
		t->acked = 1;
		t->peer_bound = pb;
		t->bind_next = agent_now_ms() + 1000L * (pb ? a->keepalive_s : 1);
		if (t->initiator && !t->hs_started && pb)
			tun_start_hs(t);
		if (t->ka_on_ack && pb) {
			t->ka_on_ack = 0;
			agent_tun_keepalive(t);
		}
		agent_tun_arm(t);
		return 0;
	}
	return -1;
}

void
agent_tun_input(struct tun *t, uint8_t *p, size_t n, const struct sockaddr_storage *from)
{
	struct agent *a = t->a;
	struct ntm_tun_event ev;
	struct ntm_tun_out *out = &a->out;
	int r;

	r = ntm_tunnel_recv(t->t, p, n, agent_now_ms(), &ev, out);
	if (r < 0 && !ev.authentic) {
		a->drops[agent_drop_reason(r)]++;
		agent_tun_arm(t);
		return;
	}
	if (ev.authentic && t->kind != NTM_ROUTE_RELAY &&
	    (!t->has_ep || !ntm_sa_equal((struct sockaddr *)&t->ep,
	    (const struct sockaddr *)from))) {
		char b1[64], b2[64];

		log_info("tunnel %s: endpoint %s -> %s", t->peer,
		    t->has_ep ? ntm_sa_str((struct sockaddr *)&t->ep, b1, sizeof(b1)) : "-",
		    ntm_sa_str((const struct sockaddr *)from, b2, sizeof(b2)));
		t->ep = *from;
		t->has_ep = 1;
		t->endpoint_moves++;
	}
	if (r < 0)
		a->drops[DROP_MALFORMED]++;	/* authentic, but not an IP packet */
	tun_output(t, out);
	if (ev.established) {
		if (t->hs_sent)
			t->rtt_ms = (double)(agent_now_us() - t->hs_sent) / 1000.0;
		tun_flush(t);
		a->hooks->tunnel_up(a, t);
	}
	if (r == 0 && ev.payload)
		inner_packet(t, ev.payload, ev.len);
	agent_tun_arm(t);
}
