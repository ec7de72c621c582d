/*
 * peer.c - the agent's side of one peer (see peer.h): route, endpoint,
 * relay binds, the handshake gate and the queue around the tunnel core.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ntm-core.h"
#include "peer.h"
#include "relay.h"
#include "route.h"

static void
hs_start(struct ntm_peer *p, int64_t now)
{
	struct ntm_tun_out out;

	p->hs_started = 1;
	if (ntm_tunnel_start(p->t, now, &out) == 0)
		p->hooks->output(p, &out);
}

static void
relay_bind(struct ntm_peer *p, int64_t now, uint64_t wall_ms)
{
	struct ntm_tun_out out;
	uint64_t ctr = wall_ms;
	const uint8_t *cookie = now < p->cookie_until ? p->cookie : NULL;
	int n;

	/* Above every earlier bind, even if the wall clock went back: the RS
	 * keeps the highest counter of each side. */
	if (ctr <= p->bind_ctr)
		ctr = p->bind_ctr + 1;
	p->bind_ctr = ctr;
	n = ntm_relay_bind_make_cookie(out.buf[0], sizeof(out.buf[0]), p->side, ctr, p->ticket,
	    p->tlen, p->rkey, cookie);
	if (n == NTM_ERR_TOOBIG && cookie) {
		/* a ticket too long to carry a cookie MAC too: without it */
		cookie = NULL;
		n = ntm_relay_bind_make(out.buf[0], sizeof(out.buf[0]), p->side, ctr, p->ticket,
		    p->tlen, p->rkey);
	}
	if (n < 0) {
		p->bind_next = now + p->keepalive_ms;
		p->hooks->bind_failed(p, n);
		return;
	}
	memcpy(p->bind_mac, out.buf[0] + n - NTM_MAC_LEN - (cookie ? NTM_MAC_LEN : 0),
	    NTM_MAC_LEN);
	p->has_bind_mac = 1;
	out.n = 1;
	out.len[0] = (size_t)n;
	p->hooks->output(p, &out);
	p->bind_next = now + NTM_PEER_REBIND_MS;	/* until the ACK says otherwise */
}

int
ntm_peer_start(struct ntm_peer *p, const struct ntm_tunnel_cfg *cfg, int64_t now)
{
	if ((p->t = ntm_tunnel_new(cfg, now)) == NULL)
		return NTM_ERR_NOMEM;
	return 0;
}

void
ntm_peer_begin(struct ntm_peer *p, int64_t now, uint64_t wall_ms)
{
	if (p->kind == NTM_ROUTE_RELAY) {
		relay_bind(p, now, wall_ms);
		p->hs_gate = now + NTM_PEER_HS_GATE_MS;	/* or at once on peer_bound */
	} else if (p->initiator)
		hs_start(p, now);
}

void
ntm_peer_keepalive(struct ntm_peer *p, int64_t now)
{
	struct ntm_tun_out out;

	if (ntm_tunnel_send(p->t, NULL, 0, now, &out) == 0)
		p->hooks->output(p, &out);
}

void
ntm_peer_reroute(struct ntm_peer *p, const struct ntm_peer *np, int64_t now,
    uint64_t wall_ms)
{
	p->kind = np->kind;
	if (np->has_ep) {
		p->ep = np->ep;
		p->eplen = np->eplen;
		p->has_ep = 1;
	}
	if (np->kind == NTM_ROUTE_RELAY) {
		memcpy(p->ticket, np->ticket, np->tlen);
		p->tlen = np->tlen;
		memcpy(p->rkey, np->rkey, sizeof(p->rkey));
		p->side = np->side;
		p->acked = p->peer_bound = 0;
		p->ka_on_ack = 1;
		p->cookie_until = 0;	/* it was for the RS before, maybe */
		relay_bind(p, now, wall_ms);
	} else
		ntm_peer_keepalive(p, now);
}

void
ntm_peer_free(struct ntm_peer *p)
{
	for (int i = 0; i < p->nq; i++)
		free(p->q[i]);
	p->nq = 0;
	ntm_tunnel_free(p->t);
	p->t = NULL;
	ntm_wipe(p->rkey, sizeof(p->rkey));
	ntm_wipe(p->cookie, sizeof(p->cookie));
	p->cookie_until = 0;
}

static void
flush(struct ntm_peer *p, int64_t now)
{
	struct ntm_tun_out out;
	int i;

	for (i = 0; i < p->nq; i++) {
		if (ntm_tunnel_send(p->t, p->q[i]->b, p->q[i]->len, now, &out) < 0)
			break;
		p->hooks->output(p, &out);
		free(p->q[i]);
	}
	memmove(p->q, p->q + i, (size_t)(p->nq - i) * sizeof(p->q[0]));
	p->nq -= i;
}

int
ntm_peer_send(struct ntm_peer *p, const uint8_t *pkt, size_t len, int64_t now)
{
	struct ntm_tun_out out;
	struct ntm_peer_qpkt *q;

	if (len > NTM_INNER_MTU)
		return -1;
	if (p->nq == 0 && ntm_tunnel_send(p->t, pkt, len, now, &out) == 0) {
		p->hooks->output(p, &out);
		return 0;
	}
	if (p->nq >= NTM_PEER_QUEUE_MAX || (q = malloc(sizeof(*q))) == NULL)
		return -1;
	memcpy(q->b, pkt, len);
	q->len = len;
	p->q[p->nq++] = q;
	return 1;
}

void
ntm_peer_rebind(struct ntm_peer *p, int64_t now, uint64_t wall_ms)
{
	if (p->kind == NTM_ROUTE_RELAY) {
		p->ka_on_ack = 1;
		relay_bind(p, now, wall_ms);
	} else
		ntm_peer_keepalive(p, now);
}

int
ntm_peer_recv(struct ntm_peer *p, uint8_t *pkt, size_t n,
    const struct sockaddr_storage *from, int64_t now, struct ntm_peer_event *ev)
{
	struct ntm_tun_event tev;
	struct ntm_tun_out out;
	int r;

	memset(ev, 0, sizeof(*ev));
	r = ntm_tunnel_recv(p->t, pkt, n, now, &tev, &out);
	if (r < 0 && !tev.authentic)
		return r;
	ev->authentic = tev.authentic;
	/* Authenticated: a direct peer is where its datagrams come from. */
	if (tev.authentic && p->kind != NTM_ROUTE_RELAY &&
	    (!p->has_ep || !ntm_sa_equal((const struct sockaddr *)&p->ep,
	    (const struct sockaddr *)from))) {
		ev->moved = 1;
		ev->had_ep = p->has_ep;
		ev->old_ep = p->ep;
		p->ep = *from;
		p->has_ep = 1;
		p->endpoint_moves++;
	}
	p->hooks->output(p, &out);
	if (tev.established) {
		ev->established = 1;
		flush(p, now);
	}
	if (r == 0 && tev.payload) {
		ev->payload = tev.payload;
		ev->len = tev.len;
	}
	return r;
}

int
ntm_peer_relay_ack(struct ntm_peer *p, const uint8_t *pkt, size_t n, int64_t now)
{
	int side, pb, news;
	uint64_t ctr;

	if (p->kind != NTM_ROUTE_RELAY || ntm_relay_ack_open(pkt, n, p->rkey, &side, &pb,
	    &ctr) != 0 || side != p->side)
		return -1;
	news = !p->acked || pb != p->peer_bound;
	p->acked = 1;
	p->peer_bound = pb;
	p->bind_next = now + (pb ? p->keepalive_ms : NTM_PEER_REBIND_MS);
	if (p->initiator && !p->hs_started && pb)
		hs_start(p, now);
	if (p->ka_on_ack && pb) {
		p->ka_on_ack = 0;
		ntm_peer_keepalive(p, now);
	}
	return news;
}

int
ntm_peer_relay_cookie(struct ntm_peer *p, const uint8_t *pkt, size_t n, int64_t now,
    uint64_t wall_ms)
{
	uint8_t c[NTM_RELAY_COOKIE];

	if (p->kind != NTM_ROUTE_RELAY || !p->has_bind_mac || p->tlen < 1 + NTM_TUNNEL_ID_LEN ||
	    ntm_relay_cookie_open(pkt, n, p->ticket + 1, p->bind_mac, c) != 0)
		return -1;
	/* One cookie per bind: a copy of this reply cannot make us bind again. */
	p->has_bind_mac = 0;
	memcpy(p->cookie, c, sizeof(c));
	ntm_wipe(c, sizeof(c));
	p->cookie_until = now + NTM_RELAY_COOKIE_ROTATE_MS;
	p->cookies++;
	relay_bind(p, now, wall_ms);
	return 0;
}

int
ntm_peer_moved(struct ntm_peer *p, const struct sockaddr_storage *ep, socklen_t len,
    int64_t now)
{
	if (p->kind == NTM_ROUTE_RELAY)
		return -1;
	if (p->has_ep && ntm_sa_equal((const struct sockaddr *)&p->ep,
	    (const struct sockaddr *)ep))
		return 0;
	p->ep = *ep;
	p->eplen = len;
	p->has_ep = 1;
	p->endpoint_moves++;
	ntm_peer_keepalive(p, now);
	return 1;
}

int64_t
ntm_peer_deadline(const struct ntm_peer *p)
{
	int64_t d = ntm_tunnel_deadline(p->t);

	if (p->kind == NTM_ROUTE_RELAY && p->bind_next < d)
		d = p->bind_next;
	if (p->initiator && !p->hs_started && p->hs_gate < d)
		d = p->hs_gate;
	return d;
}

void
ntm_peer_tick(struct ntm_peer *p, int64_t now, uint64_t wall_ms)
{
	struct ntm_tun_out out;

	if (ntm_tunnel_deadline(p->t) <= now && ntm_tunnel_tick(p->t, now, &out) == 0)
		p->hooks->output(p, &out);
	if (p->kind == NTM_ROUTE_RELAY && now >= p->bind_next)
		relay_bind(p, now, wall_ms);
	if (p->initiator && !p->hs_started && now >= p->hs_gate)
		hs_start(p, now);
}
