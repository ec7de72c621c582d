/*
 * peer.c - the agent's side of one peer (see peer.h): route, endpoint,
 * relay binds, the handshake gate and the queue around the tunnel core.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntm-core.h"
#include "peer.h"
#include "punch.h"
#include "relay.h"
#include "route.h"

#define SA(x)	((const struct sockaddr *)(x))

static void punch_sendv(struct ntm_peer *p, int sock, const struct sockaddr_storage *to,
    const struct ntm_tun_out *out);
static void bday_ask(struct ntm_peer *p, int64_t now);

/*
 * The core's datagrams to the endpoint. A punched tunnel's handshake
 * messages go through the RS as well (the copy that comes second is
 * dropped as a replay): the RS learns the session's indices from them,
 * so that it can still route either end's DATA when the tunnel falls back
 * to it (§4.4: an address bound in several sessions is routed by indices).
 */
static void
out_ep(struct ntm_peer *p, const struct ntm_tun_out *out)
{
	struct ntm_tun_out hs;

	punch_sendv(p, p->punched ? p->ep_sock : 0, &p->ep, out);
	if (!p->punched)
		return;
	hs.n = 0;
	for (int i = 0; i < out->n; i++)
		if (out->buf[i][0] == NTM_MSG_HS_INIT || out->buf[i][0] == NTM_MSG_HS_RESP) {
			memcpy(hs.buf[hs.n], out->buf[i], out->len[i]);
			hs.len[hs.n++] = out->len[i];
		}
	if (hs.n)
		p->hooks->output(p, &p->relay_ep, &hs);
}

static void
hs_start(struct ntm_peer *p, int64_t now)
{
	struct ntm_tun_out out;

	p->hs_started = 1;
	if (ntm_tunnel_start(p->t, now, &out) == 0)
		out_ep(p, &out);
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
	p->hooks->output(p, p->kind == NTM_ROUTE_RELAY ? &p->relay_ep : &p->ep, &out);
	p->bind_next = now + NTM_PEER_REBIND_MS;	/* until the ACK says otherwise */
}

/* ---- hole punching (docs/protocol.md §4.8) ------------------------------- */

/* out to to, from our socket sock: 0 the main one, else an extra one of
 * birthday probing (never without the hook). */
static void
punch_sendv(struct ntm_peer *p, int sock, const struct sockaddr_storage *to,
    const struct ntm_tun_out *out)
{
	if (sock == 0)
		p->hooks->output(p, to, out);
	else if (p->hooks->output_via)
		p->hooks->output_via(p, sock, to, out);
}

/* A PUNCH of kind to to from socket sock; a probe's txid is this attempt's
 * with i (the candidate) last, unless txid is given. */
static void
punch_send(struct ntm_peer *p, int sock, int i, int kind, const uint8_t *txid,
    const struct sockaddr_storage *to)
{
	struct ntm_tun_out out;
	uint8_t tx[NTM_PUNCH_TXID_LEN];

	if (txid == NULL) {
		memcpy(tx, p->punch_txid, sizeof(tx));
		tx[NTM_PUNCH_TXID_LEN - 1] = (uint8_t)i;
		txid = tx;
	}
	out.n = 1;
	out.len[0] = (size_t)ntm_punch_make(out.buf[0], p->tid, kind, p->initiator, txid,
	    p->punch_key);
	punch_sendv(p, sock, to, &out);
	if (kind == NTM_PUNCH_PROBE)
		p->punch_sent++;
}

/* This end takes the hard end's part: its NAT maps per destination, and
 * the caller can open the extra sockets. */
static int
bday_hard(const struct ntm_peer *p)
{
	return p->bday == NTM_BDAY_HARD && p->hooks->output_via != NULL && p->ncand > 0;
}

static int
rounds_max(const struct ntm_peer *p)
{
	return bday_hard(p) || p->bday_want > 0 ? NTM_PEER_BDAY_ROUNDS : NTM_PEER_PUNCH_ROUNDS;
}

static void
punch_round(struct ntm_peer *p, int64_t now)
{
	int max = rounds_max(p);

	if (p->punch_round >= max) {
		p->punch = NTM_PUNCH_FAILED;
		if (bday_hard(p))
			snprintf(p->path_why, sizeof(p->path_why), "no answer from the peer's "
			    "%d candidate%s to our %d mappings in %d s: relayed", p->ncand,
			    p->ncand == 1 ? "" : "s", NTM_PEER_BDAY_SOCKS,
			    max * NTM_PEER_PUNCH_EVERY_MS / 1000);
		else if (p->bday_want > 0)
			snprintf(p->path_why, sizeof(p->path_why), "no answer from the peer's "
			    "%d candidate%s nor %d predicted ports in %d s: relayed", p->ncand,
			    p->ncand == 1 ? "" : "s", p->bday_sent,
			    max * NTM_PEER_PUNCH_EVERY_MS / 1000);
		else
			snprintf(p->path_why, sizeof(p->path_why), "no answer from the peer's %d "
			    "candidate%s in %d s: relayed", p->ncand, p->ncand == 1 ? "" : "s",
			    max * NTM_PEER_PUNCH_EVERY_MS / 1000);
		return;
	}
	for (int i = 0; i < p->ncand; i++)
		punch_send(p, 0, i, NTM_PUNCH_PROBE, NULL, &p->cand[i]);
	/* The hard end: each extra socket opens (and keeps) its own mapping
	 * towards the easy end's reflexive address. */
	if (bday_hard(p) && p->punch_round % NTM_PEER_BDAY_OPEN_EVERY == 0)
		for (int k = 1; k <= NTM_PEER_BDAY_SOCKS; k++) {
			punch_send(p, k, 0, NTM_PUNCH_PROBE, NULL, &p->cand[0]);
			p->bday_probes++;
		}
	memset(p->punch_trig, 0, sizeof(p->punch_trig));
	p->punch_round++;
	p->punch_next = now + NTM_PEER_PUNCH_EVERY_MS;
	bday_ask(p, now);
}

/* Start (again) on the relay; with candidates, punch. The easy end's
 * spray of the last SPRAY taken, if still going, goes on from its first
 * port to the new first candidate, once per SPRAY: the peer's SPRAY of a
 * route given again comes before the route's direction here when the
 * peer's came first (the DC answers the requester, then tells us). */
static void
punch_start(struct ntm_peer *p, int64_t now)
{
	int spray = p->bday == NTM_BDAY_EASY && p->bday_sent < p->bday_want && !p->bday_again;

	p->punched = 0;
	p->ep = p->relay_ep;
	p->ep_sock = 0;
	p->direct_rx = p->direct_at = 0;
	p->nprflx = 0;
	p->bday_asks = 0;
	p->bday_sent = 0;
	if (spray && p->ncand > 0) {
		p->bday_again = 1;
		p->bday_next = now;
	} else
		p->bday_want = 0;
	if (p->ncand <= 0) {
		p->punch = NTM_PUNCH_OFF;
		p->path_why[0] = '\0';
		return;
	}
	p->punch = NTM_PUNCH_TRYING;
	p->punch_round = 0;
	p->punch_start = now;
	p->punch_ms = 0;
	ntm_random(p->punch_txid, sizeof(p->punch_txid));
	if (bday_hard(p)) {
		p->bday_attempt++;
		snprintf(p->path_why, sizeof(p->path_why), "punching: %d candidate%s from "
		    "%d mappings, relayed meanwhile", p->ncand, p->ncand == 1 ? "" : "s",
		    NTM_PEER_BDAY_SOCKS);
	} else if (p->bday_want > 0)
		snprintf(p->path_why, sizeof(p->path_why), "punching: %d candidate%s and %d "
		    "predicted ports, relayed meanwhile", p->ncand, p->ncand == 1 ? "" : "s",
		    p->bday_want);
	else
		snprintf(p->path_why, sizeof(p->path_why), "punching: %d candidate%s, "
		    "relayed meanwhile", p->ncand, p->ncand == 1 ? "" : "s");
	punch_round(p, now);
}

/* The hard end asks the easy end (SPRAY, in the tunnel) to probe its
 * predicted ports, once the tunnel is up (the relay carries it), a copy a
 * round, NTM_PEER_BDAY_ASKS in all. */
static void
bday_ask(struct ntm_peer *p, int64_t now)
{
	struct ntm_tun_stats st;
	struct ntm_tun_out out;
	uint8_t m[NTM_PUNCH_SPRAY_LEN];

	if (!bday_hard(p) || p->punch != NTM_PUNCH_TRYING || p->bday_asks >= NTM_PEER_BDAY_ASKS)
		return;
	ntm_tunnel_stats(p->t, &st);
	if (st.state != NTM_TUN_UP ||
	    ntm_punch_spray_make(m, NTM_PEER_BDAY_SOCKS, p->bday_attempt) < 0)
		return;
	if (ntm_tunnel_send(p->t, m, sizeof(m), now, &out) == 0) {
		out_ep(p, &out);
		p->bday_asks++;
	}
}

/* A SPRAY from the peer: the easy end probes the ports of the hard end's
 * reflexive IP (the first candidate), each once, in an order of its own. */
static void
bday_rx(struct ntm_peer *p, const uint8_t *m, size_t len, int64_t now)
{
	uint32_t attempt, r;
	int mappings;

	if (ntm_punch_spray_open(m, len, &mappings, &attempt) < 0 ||
	    p->kind != NTM_ROUTE_RELAY || p->bday != NTM_BDAY_EASY || p->ncand <= 0 ||
	    p->punched || (p->punch != NTM_PUNCH_TRYING && p->punch != NTM_PUNCH_FAILED) ||
	    attempt <= p->bday_rx)
		return;
	p->bday_rx = attempt;
	p->bday_again = 0;
	p->bday_want = NTM_PEER_BDAY_ODDS * NTM_PEER_BDAY_PORTS / (mappings + 1);
	if (p->bday_want > NTM_PEER_BDAY_PROBES_MAX)
		p->bday_want = NTM_PEER_BDAY_PROBES_MAX;
	p->bday_sent = 0;
	ntm_random(&r, sizeof(r));
	p->bday_off = r % NTM_PEER_BDAY_PORTS;
	/* a stride prime to the number of ports (2^10 * 3^2 * 7) walks them all */
	ntm_random(&r, sizeof(r));
	r = (r % NTM_PEER_BDAY_PORTS) | 1;
	while (r % 3 == 0 || r % 7 == 0)
		r = (r + 2) % NTM_PEER_BDAY_PORTS;
	p->bday_stride = r;
	ntm_random(p->bday_txid, sizeof(p->bday_txid));
	p->bday_next = now;
	if (p->punch == NTM_PUNCH_FAILED) {
		p->punch = NTM_PUNCH_TRYING;
		p->punch_next = now + NTM_PEER_PUNCH_EVERY_MS;
	}
	snprintf(p->path_why, sizeof(p->path_why), "punching: %d candidate%s and %d "
	    "predicted ports, relayed meanwhile", p->ncand, p->ncand == 1 ? "" : "s",
	    p->bday_want);
}

/* The easy end's next burst of probes to predicted ports. */
static void
bday_spray(struct ntm_peer *p, int64_t now)
{
	struct sockaddr_storage to = p->cand[0];
	uint8_t tx[NTM_PUNCH_TXID_LEN];

	for (int k = 0; k < NTM_PEER_BDAY_BURST && p->bday_sent < p->bday_want; k++) {
		uint16_t port = (uint16_t)(NTM_PEER_BDAY_PORT_MIN + ((uint64_t)p->bday_off +
		    (uint64_t)p->bday_sent * p->bday_stride) % NTM_PEER_BDAY_PORTS);

		if (to.ss_family == AF_INET)
			((struct sockaddr_in *)&to)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&to)->sin6_port = htons(port);
		memcpy(tx, p->bday_txid, sizeof(tx));
		tx[NTM_PUNCH_TXID_LEN - 2] = (uint8_t)(port >> 8);
		tx[NTM_PUNCH_TXID_LEN - 1] = (uint8_t)port;
		punch_send(p, 0, 0, NTM_PUNCH_PROBE, tx, &to);
		p->bday_probes++;
		p->bday_sent++;
	}
	p->bday_next = now + NTM_PEER_BDAY_EVERY_MS;
}

static int
bday_spraying(const struct ntm_peer *p)
{
	return p->punch == NTM_PUNCH_TRYING && p->bday_sent < p->bday_want;
}

/* An answer to one of our predicted-port probes: its txid is this
 * attempt's, and names the port it came from, on the hard end's IP. */
static int
bday_answer(const struct ntm_peer *p, const uint8_t *txid, const struct sockaddr_storage *from)
{
	uint16_t port = (uint16_t)(txid[NTM_PUNCH_TXID_LEN - 2] << 8 |
	    txid[NTM_PUNCH_TXID_LEN - 1]);

	return p->bday_want > 0 && p->ncand > 0 &&
	    memcmp(txid, p->bday_txid, NTM_PUNCH_TXID_LEN - 2) == 0 &&
	    ntm_sa_same_host(SA(from), SA(&p->cand[0])) &&
	    ntohs(from->ss_family == AF_INET ? ((const struct sockaddr_in *)from)->sin_port :
	    ((const struct sockaddr_in6 *)from)->sin6_port) == port;
}

static int
cand_of(const struct ntm_peer *p, const struct sockaddr_storage *from)
{
	for (int i = 0; i < p->ncand; i++)
		if (ntm_sa_equal(SA(&p->cand[i]), SA(from)))
			return i;
	return -1;
}

/* 1 if from is at a candidate's address, another port: a NAT that maps
 * per destination gave the peer a new one towards us. */
static int
cand_host_of(const struct ntm_peer *p, const struct sockaddr_storage *from)
{
	for (int i = 0; i < p->ncand; i++)
		if (ntm_sa_same_host(SA(&p->cand[i]), SA(from)))
			return 1;
	return 0;
}

static int
prflx_of(const struct ntm_peer *p, const struct sockaddr_storage *from)
{
	for (int i = 0; i < p->nprflx; i++)
		if (ntm_sa_equal(SA(&p->prflx[i]), SA(from)))
			return i;
	return -1;
}

/* An authentic probe came from from, not a candidate: the peer can reach
 * us from there (a mapping its NAT made towards us). Kept, a few per
 * attempt, so that its packets from there move the path (relay_path). */
static void
prflx_add(struct ntm_peer *p, const struct sockaddr_storage *from)
{
	if (p->nprflx < NTM_PEER_PRFLX && prflx_of(p, from) < 0)
		p->prflx[p->nprflx++] = *from;
}

static void
hs_start(struct ntm_peer *p, int64_t now);

/* The path moves to to: what we send goes there; the RS keeps our bind. */
static void
punch_done(struct ntm_peer *p, const struct sockaddr_storage *to, int sock, int64_t now,
    const char *how)
{
	char b[64];

	p->punched = 1;
	p->punch = NTM_PUNCH_DONE;
	p->ep = *to;
	p->ep_sock = sock;
	p->direct_at = now;
	p->punch_ms = now - p->punch_start;
	snprintf(p->path_why, sizeof(p->path_why), "punched to %s in %lld ms (%s)",
	    ntm_sa_str(SA(to), b, sizeof(b)), (long long)p->punch_ms, how);
	if (p->initiator && !p->hs_started)
		hs_start(p, now);
	else
		ntm_peer_keepalive(p, now);	/* the peer sees it come direct */
}

/*
 * Back on the relay, why. Our bind there was kept alive all along; with
 * wall_ms (we moved) it goes again at once, from the new address. The
 * initiator shakes hands again through the RS (after its ACK, when we
 * moved): a handshake made on the punched path never showed the RS the
 * session's indices, and an RS that holds either end's address in more
 * than one session routes DATA only by indices it has seen (§4.4).
 */
static void relay_bind(struct ntm_peer *p, int64_t now, uint64_t wall_ms);

static void
punch_lost(struct ntm_peer *p, int64_t now, uint64_t wall_ms, const char *why)
{
	p->punched = 0;
	p->punch = NTM_PUNCH_LOST;
	p->ep = p->relay_ep;
	p->ep_sock = 0;
	snprintf(p->path_why, sizeof(p->path_why), "%s: back on the relay", why);
	if (wall_ms) {
		p->ka_on_ack = 1;
		relay_bind(p, now, wall_ms);
		if (p->initiator) {
			p->hs_started = 0;	/* at the ACK, or the gate */
			p->hs_gate = now + NTM_PEER_HS_GATE_MS;
		}
	} else if (p->initiator)
		hs_start(p, now);
	else
		ntm_peer_keepalive(p, now);
}

int
ntm_peer_punch_via(struct ntm_peer *p, const uint8_t *pkt, size_t n,
    const struct sockaddr_storage *from, int sock, int64_t now)
{
	uint8_t txid[NTM_PUNCH_TXID_LEN];
	int kind, initiator, r, i;

	if (p->kind != NTM_ROUTE_RELAY || p->t == NULL)
		return NTM_ERR_STATE;
	if ((r = ntm_punch_open(pkt, n, p->punch_key, &kind, &initiator, txid)) < 0)
		return r;
	if (initiator == p->initiator)
		return NTM_ERR_PROTO;	/* our own, reflected */
	i = cand_of(p, from);
	if (kind == NTM_PUNCH_PROBE) {
		/* One answer, as long as the probe, the way it came. */
		punch_send(p, sock, 0, NTM_PUNCH_ANSWER, txid, from);
		/* Its probe came through, so ours may now too: at once. */
		if (p->punch == NTM_PUNCH_TRYING && i >= 0 && !p->punch_trig[i]) {
			p->punch_trig[i] = 1;
			punch_send(p, sock, i, NTM_PUNCH_PROBE, NULL, &p->cand[i]);
		}
		if (i < 0 && !p->punched &&
		    (p->punch == NTM_PUNCH_TRYING || p->punch == NTM_PUNCH_FAILED))
			prflx_add(p, from);
		return 0;
	}
	if (p->punch != NTM_PUNCH_TRYING && p->punch != NTM_PUNCH_FAILED)
		return NTM_ERR_STATE;
	/* An answer counts only from where its probe went: the candidate, or
	 * the predicted port its txid names. */
	if (i >= 0 && txid[NTM_PUNCH_TXID_LEN - 1] == (uint8_t)i &&
	    memcmp(txid, p->punch_txid, NTM_PUNCH_TXID_LEN - 1) == 0) {
		p->punch_answered++;
		punch_done(p, &p->cand[i], sock, now, "our probe answered");
		return 1;
	}
	if (bday_answer(p, txid, from)) {
		p->punch_answered++;
		punch_done(p, from, sock, now, "a predicted port answered");
		return 1;
	}
	return NTM_ERR_STATE;
}

int
ntm_peer_punch(struct ntm_peer *p, const uint8_t *pkt, size_t n,
    const struct sockaddr_storage *from, int64_t now)
{
	return ntm_peer_punch_via(p, pkt, n, from, 0, now);
}

int
ntm_peer_sock_used(const struct ntm_peer *p, int sock)
{
	if (sock < 1 || sock > NTM_PEER_BDAY_SOCKS || p->kind != NTM_ROUTE_RELAY)
		return 0;
	return (bday_hard(p) && p->punch == NTM_PUNCH_TRYING) ||
	    (p->punched && p->ep_sock == sock);
}

enum ntm_path
ntm_peer_path(const struct ntm_peer *p)
{
	return p->kind != NTM_ROUTE_RELAY ? NTM_PATH_DIRECT : p->punched ? NTM_PATH_PUNCHED :
	    NTM_PATH_RELAYED;
}

const char *
ntm_path_name(enum ntm_path path)
{
	switch (path) {
	case NTM_PATH_DIRECT:	return "direct";
	case NTM_PATH_RELAYED:	return "relayed";
	case NTM_PATH_PUNCHED:	return "punched";
	}
	return "?";
}

int
ntm_peer_start(struct ntm_peer *p, const struct ntm_tunnel_cfg *cfg, int64_t now)
{
	if ((p->t = ntm_tunnel_new(cfg, now)) == NULL)
		return NTM_ERR_NOMEM;
	memcpy(p->tid, cfg->tunnel_id, sizeof(p->tid));
	ntm_punch_key(p->punch_key, cfg->temporal_key);
	return 0;
}

void
ntm_peer_begin(struct ntm_peer *p, int64_t now, uint64_t wall_ms)
{
	if (p->kind == NTM_ROUTE_RELAY) {
		p->relay_ep = p->ep;
		relay_bind(p, now, wall_ms);
		p->hs_gate = now + NTM_PEER_HS_GATE_MS;	/* or at once on peer_bound */
		punch_start(p, now);
	} else if (p->initiator)
		hs_start(p, now);
}

void
ntm_peer_keepalive(struct ntm_peer *p, int64_t now)
{
	struct ntm_tun_out out;

	if (ntm_tunnel_send(p->t, NULL, 0, now, &out) == 0)
		out_ep(p, &out);
}

/*
 * A route remade onto the relay from elsewhere (a direct or local route,
 * or another RS address) keeps its session, but the RS never forwarded a
 * handshake of it: an RS that holds either end's address in more than one
 * session (a closed tunnel's idles there; another tunnel through it)
 * routes DATA only by indices it has seen (§4.4), and would drop this
 * tunnel's until the next rekey. So the initiator shakes hands again
 * through the RS, once it is bound there (the ACK, or the gate); the old
 * session carries on until the new one is made. The same RS again (hole
 * punching starting over, a punched path given up) has seen them: its
 * handshakes went through it, or a copy of them (out_ep).
 */
static int
relay_new(const struct ntm_peer *p, const struct ntm_peer *np)
{
	return np->kind == NTM_ROUTE_RELAY && (p->kind != NTM_ROUTE_RELAY ||
	    (np->has_ep && !ntm_sa_equal(SA(&np->ep), SA(&p->relay_ep))));
}

void
ntm_peer_reroute(struct ntm_peer *p, const struct ntm_peer *np, int64_t now,
    uint64_t wall_ms)
{
	int rehs = relay_new(p, np);

	p->kind = np->kind;
	p->bday = np->bday;
	p->punched = 0;
	p->punch = NTM_PUNCH_OFF;
	p->path_why[0] = '\0';
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
		p->relay_ep = p->ep;
		if (rehs && p->initiator && p->hs_started) {
			p->hs_started = 0;	/* at the ACK, or the gate */
			p->hs_gate = now + NTM_PEER_HS_GATE_MS;
		}
		relay_bind(p, now, wall_ms);
		p->ncand = np->ncand;
		memcpy(p->cand, np->cand, sizeof(p->cand));
		punch_start(p, now);
	} else {
		p->ep_sock = 0;
		ntm_peer_keepalive(p, now);
	}
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
	ntm_wipe(p->punch_key, sizeof(p->punch_key));
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
		out_ep(p, &out);
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
		out_ep(p, &out);
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
	if (p->kind == NTM_ROUTE_RELAY && p->punched)
		/* Our NAT mapping is new: the peer's NAT does not know it. */
		punch_lost(p, now, wall_ms, "this end moved");
	else if (p->kind == NTM_ROUTE_RELAY) {
		p->ka_on_ack = 1;
		relay_bind(p, now, wall_ms);
	} else
		ntm_peer_keepalive(p, now);
}

/* An authentic datagram of a relayed tunnel from from (on our socket
 * sock): the path follows. */
static void
relay_path(struct ntm_peer *p, int type, const struct sockaddr_storage *from, int sock,
    int64_t now, struct ntm_peer_event *ev)
{
	int via_rs = sock == 0 && ntm_sa_equal(SA(from), SA(&p->relay_ep)), i;

	if (p->punched && via_rs && type != NTM_MSG_DATA)
		return;		/* a handshake's copy through the RS (out_ep) */
	if (p->punched && via_rs) {
		/* Through the RS well after both ends switched (what was on its
		 * way through it when we did has come by then): the peer went
		 * back to the relay. */
		if (now - p->direct_at > NTM_PEER_DIRECT_QUIET_MS)
			punch_lost(p, now, 0, "the peer went back to the relay");
		return;
	}
	if (p->punched) {
		p->direct_rx = now;
		if (!ntm_sa_equal(SA(from), SA(&p->ep)) || sock != p->ep_sock) {
			ev->moved = 1;
			ev->had_ep = 1;
			ev->old_ep = p->ep;
			p->ep = *from;
			p->ep_sock = sock;
			p->endpoint_moves++;
		}
		return;
	}
	if (via_rs || (p->punch != NTM_PUNCH_TRYING && p->punch != NTM_PUNCH_FAILED))
		return;
	/* The peer punched and sends direct: its probe was answered by us,
	 * so the path works both ways. From a candidate, or peer-reflexive:
	 * from where an authentic probe of the peer came, or from another
	 * port of a candidate's address (its NAT maps per destination; the
	 * probes that came from there may have been more than we keep). */
	if ((i = cand_of(p, from)) >= 0)
		punch_done(p, &p->cand[i], sock, now, "the peer's packets came direct");
	else if (prflx_of(p, from) >= 0 || cand_host_of(p, from))
		punch_done(p, from, sock, now, "the peer's packets came direct, peer-reflexive");
	else
		return;
	p->direct_rx = now;
	ev->moved = 1;
	ev->had_ep = 1;
	ev->old_ep = p->relay_ep;
}

int
ntm_peer_recv(struct ntm_peer *p, uint8_t *pkt, size_t n,
    const struct sockaddr_storage *from, int64_t now, struct ntm_peer_event *ev)
{
	return ntm_peer_recv_via(p, pkt, n, from, 0, now, ev);
}

int
ntm_peer_recv_via(struct ntm_peer *p, uint8_t *pkt, size_t n,
    const struct sockaddr_storage *from, int sock, int64_t now, struct ntm_peer_event *ev)
{
	struct ntm_tun_event tev;
	struct ntm_tun_out out;
	int r, type;

	memset(ev, 0, sizeof(*ev));
	type = n > 0 ? pkt[0] : 0;
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
	if (tev.authentic && p->kind == NTM_ROUTE_RELAY)
		relay_path(p, type, from, sock, now, ev);
	out_ep(p, &out);
	if (tev.established) {
		ev->established = 1;
		flush(p, now);
		bday_ask(p, now);
	}
	if (r == 0 && tev.payload && tev.len > 0 && tev.payload[0] == NTM_TUN_CTL_SPRAY) {
		bday_rx(p, tev.payload, tev.len, now);	/* the core's own */
		return 0;
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

static int64_t
direct_dead(const struct ntm_peer *p)
{
	return (p->direct_rx > p->direct_at ? p->direct_rx : p->direct_at) +
	    NTM_PEER_DIRECT_DEAD_MS;
}

int64_t
ntm_peer_deadline(const struct ntm_peer *p)
{
	int64_t d = ntm_tunnel_deadline(p->t);

	if (p->kind == NTM_ROUTE_RELAY && p->bind_next < d)
		d = p->bind_next;
	if (p->initiator && !p->hs_started && p->hs_gate < d)
		d = p->hs_gate;
	if (p->kind == NTM_ROUTE_RELAY && p->punch == NTM_PUNCH_TRYING && p->punch_next < d)
		d = p->punch_next;
	if (p->kind == NTM_ROUTE_RELAY && bday_spraying(p) && p->bday_next < d)
		d = p->bday_next;
	if (p->punched && direct_dead(p) < d)
		d = direct_dead(p);
	return d;
}

void
ntm_peer_tick(struct ntm_peer *p, int64_t now, uint64_t wall_ms)
{
	struct ntm_tun_out out;

	if (ntm_tunnel_deadline(p->t) <= now && ntm_tunnel_tick(p->t, now, &out) == 0)
		out_ep(p, &out);
	if (p->kind == NTM_ROUTE_RELAY && now >= p->bind_next)
		relay_bind(p, now, wall_ms);
	if (p->initiator && !p->hs_started && now >= p->hs_gate)
		hs_start(p, now);
	if (p->kind == NTM_ROUTE_RELAY && p->punch == NTM_PUNCH_TRYING && now >= p->punch_next)
		punch_round(p, now);
	if (p->kind == NTM_ROUTE_RELAY && bday_spraying(p) && now >= p->bday_next)
		bday_spray(p, now);
	if (p->punched && now >= direct_dead(p))
		punch_lost(p, now, 0, "the direct path fell silent");
}
