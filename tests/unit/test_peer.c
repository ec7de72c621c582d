/* test_peer.c - the agent's peer core: handshake and queue, endpoint
 * moves, relay binds and their ACKs, the handshake gate, timers. Two peers
 * talk through the public API with literal times; every datagram a peer
 * sends is caught by its output hook. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>

#include <sodium.h>

#include "ntm.h"
#include <sodium.h>

#include "peer.h"
#include "punch.h"
#include "relay.h"
#include "route.h"
#include "unit.h"

static const uint8_t TID[NTM_TUNNEL_ID_LEN] = {
	0x7e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

#define CAP	4096	/* a whole spray of predicted ports, and more */
struct side {
	struct ntm_peer	 p;
	int		 n, bind_failed;
	size_t		 len[CAP];
	uint8_t		 b[CAP][NTM_UDP_MAX];
	struct sockaddr_storage to[CAP];
	int		 sock[CAP];		/* 0 the main socket, else an extra one */
};

static struct side *
side_of(struct ntm_peer *p)
{
	return (struct side *)((char *)p - offsetof(struct side, p));
}

static void
output(struct ntm_peer *p, const struct sockaddr_storage *to, const struct ntm_tun_out *out)
{
	struct side *s = side_of(p);

	for (int i = 0; i < out->n && s->n < CAP; i++) {
		s->to[s->n] = *to;
		s->sock[s->n] = 0;
		s->len[s->n] = out->len[i];
		memcpy(s->b[s->n++], out->buf[i], out->len[i]);
	}
}

static void
output_via(struct ntm_peer *p, int sock, const struct sockaddr_storage *to,
    const struct ntm_tun_out *out)
{
	struct side *s = side_of(p);
	int n = s->n;

	output(p, to, out);
	for (int i = n; i < s->n; i++)
		s->sock[i] = sock;
}

static void
bind_failed(struct ntm_peer *p, int err)
{
	side_of(p)->bind_failed = err;
}

static const struct ntm_peer_hooks hooks = { output, bind_failed, output_via };

static void
addr(struct sockaddr_storage *ss, socklen_t *len, const char *ip, int port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &s4->sin_addr);
	*len = sizeof(*s4);
}

/* A peer on route kind; relay: ticket of 100 bytes, relay key 7s, side. */
static void
mk(struct side *s, int kind, int initiator, int side, const char *ep)
{
	struct ntm_tunnel_cfg cfg;

	memset(s, 0, sizeof(*s));
	s->p.hooks = &hooks;
	s->p.keepalive_ms = 15000;
	s->p.kind = kind;
	s->p.initiator = initiator;
	if (ep) {
		addr(&s->p.ep, &s->p.eplen, ep, 4000);
		s->p.has_ep = 1;
	}
	if (kind == NTM_ROUTE_RELAY) {
		memset(s->p.ticket, 0xaa, 100);
		s->p.tlen = 100;
		memset(s->p.rkey, 7, sizeof(s->p.rkey));
		s->p.side = side;
	}
	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.tunnel_id, TID, sizeof(TID));
	memset(cfg.temporal_key, 3, sizeof(cfg.temporal_key));
	{
		uint8_t psk[32];

		memset(cfg.static_sk, initiator ? 0x11 : 0x22, sizeof(cfg.static_sk));
		memset(psk, initiator ? 0x22 : 0x11, sizeof(psk));
		CHECK_EQ(crypto_scalarmult_base(cfg.peer_static, psk), 0);
	}
	cfg.initiator = initiator;
	CHECK_EQ(ntm_peer_start(&s->p, &cfg, 1000), 0);
}

static int
type(const struct side *s, int i)
{
	return i < s->n ? ntm_msg_validate(s->b[i], s->len[i]) : -1;
}

/* Datagram i of from, into to (a copy: recv decrypts in place). */
static int
pass(struct side *from, int i, struct side *to, const char *src, int64_t now,
    struct ntm_peer_event *ev)
{
	uint8_t b[NTM_UDP_MAX];
	struct sockaddr_storage ss;
	socklen_t len;

	addr(&ss, &len, src, 4000);
	memcpy(b, from->b[i], from->len[i]);
	return ntm_peer_recv(&to->p, b, from->len[i], &ss, now, ev);
}

static uint64_t
bind_counter(const struct side *s, int i)
{
	struct ntm_relay_bind b;

	CHECK_EQ(ntm_relay_bind_parse(&b, s->b[i], s->len[i]), 0);
	return b.counter;
}

static int
ack(struct side *s, int side, int peer_bound, uint8_t kbyte, int64_t now)
{
	uint8_t a[NTM_RELAY_ACK_LEN], key[NTM_KEY_LEN];

	memset(key, kbyte, sizeof(key));
	CHECK(ntm_relay_ack_make(a, side, peer_bound, 1, key) > 0);
	return ntm_peer_relay_ack(&s->p, a, sizeof(a), now);
}

/* A direct handshake with two packets queued at the initiator, which go
 * out the moment it is up; the responder learns the initiator's address. */
TEST(handshake_and_queue)
{
	static struct side i, r;
	struct ntm_peer_event ev;
	uint8_t ip[40] = { 0x45 };

	mk(&i, NTM_ROUTE_DIRECT, 1, 0, "198.18.0.2");
	mk(&r, NTM_ROUTE_DIRECT, 0, 0, NULL);
	ntm_peer_begin(&i.p, 1000, 0);
	ntm_peer_begin(&r.p, 1000, 0);
	CHECK_EQ(i.n, 1);
	CHECK_EQ(type(&i, 0), NTM_MSG_HS_INIT);
	CHECK_EQ(r.n, 0);
	CHECK_EQ(ntm_peer_send(&i.p, ip, sizeof(ip), 1001), 1);
	CHECK_EQ(ntm_peer_send(&i.p, ip, sizeof(ip), 1001), 1);
	CHECK_EQ(i.p.nq, 2);
	CHECK_EQ(i.n, 1);

	CHECK_EQ(pass(&i, 0, &r, "198.18.0.1", 1002, &ev), 0);
	CHECK(ev.authentic && ev.moved && !ev.had_ep);
	CHECK(r.p.has_ep);
	CHECK_EQ(r.p.endpoint_moves, 1);
	CHECK_EQ(type(&r, 0), NTM_MSG_HS_RESP);

	CHECK_EQ(pass(&r, 0, &i, "198.18.0.2", 1003, &ev), 0);
	CHECK(ev.established && !ev.moved);
	CHECK_EQ(i.p.nq, 0);
	/* HS_INIT, the core's confirmation, then the two queued */
	CHECK_EQ(i.n, 4);
	CHECK_EQ(type(&i, 2), NTM_MSG_DATA);
	CHECK_EQ(type(&i, 3), NTM_MSG_DATA);
	CHECK_EQ(ntm_peer_send(&i.p, ip, sizeof(ip), 1004), 0);
	CHECK_EQ(i.n, 5);

	for (int k = 1; k < 5; k++) {
		CHECK_EQ(pass(&i, k, &r, "198.18.0.1", 1005, &ev), 0);
		CHECK(k == 1 ? ev.payload == NULL : ev.payload != NULL && ev.len == sizeof(ip));
	}
	ntm_peer_free(&i.p);
	ntm_peer_free(&r.p);
}

/* Queue limits: NTM_PEER_QUEUE_MAX packets wait, the next is refused, and
 * so is one longer than the inner MTU. */
TEST(queue_limits)
{
	static struct side i;
	uint8_t ip[NTM_INNER_MTU + 1] = { 0x45 };

	mk(&i, NTM_ROUTE_DIRECT, 1, 0, "198.18.0.2");
	for (int k = 0; k < NTM_PEER_QUEUE_MAX; k++)
		CHECK_EQ(ntm_peer_send(&i.p, ip, 40, 1000 + k), 1);
	CHECK_EQ(ntm_peer_send(&i.p, ip, 40, 1100), -1);
	CHECK_EQ(ntm_peer_send(&i.p, ip, sizeof(ip), 1100), -1);
	CHECK_EQ(i.p.nq, NTM_PEER_QUEUE_MAX);
	ntm_peer_free(&i.p);
	CHECK_EQ(i.p.nq, 0);
}

/* The endpoint follows authentic datagrams only; MOVED moves a direct
 * tunnel, not a relayed one. */
TEST(endpoint_moves)
{
	static struct side i, r, x;
	struct ntm_peer_event ev;
	struct sockaddr_storage ep;
	socklen_t len;
	uint8_t ip[40] = { 0x45 };
	static const struct {
		const char	*src;
		int		 forged, moved;
		uint64_t	 moves;
	} steps[] = {
		{ "198.18.0.9", 0, 1, 1 },	/* the peer moved */
		{ "198.18.0.9", 0, 0, 1 },	/* and stays */
		{ "198.18.0.7", 1, 0, 1 },	/* a forgery moves nothing */
		{ "100.64.0.5", 0, 1, 2 },	/* behind a NAT now */
	};

	mk(&i, NTM_ROUTE_DIRECT, 1, 0, "198.18.0.2");
	mk(&r, NTM_ROUTE_DIRECT, 0, 0, "198.18.0.1");
	ntm_peer_begin(&i.p, 1000, 0);
	CHECK_EQ(pass(&i, 0, &r, "198.18.0.1", 1001, &ev), 0);
	CHECK_EQ(pass(&r, 0, &i, "198.18.0.2", 1002, &ev), 0);
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		int n = i.n;

		CHECK_EQ(ntm_peer_send(&i.p, ip, sizeof(ip), 1010 + (int64_t)k), 0);
		CHECK_EQ(i.n, n + 1);
		if (steps[k].forged)
			i.b[n][i.len[n] - 1] ^= 1;
		CHECK_EQ(pass(&i, n, &r, steps[k].src, 1010 + (int64_t)k, &ev) == 0,
		    !steps[k].forged);
		CHECK_EQ(ev.moved, steps[k].moved);
		CHECK_EQ(r.p.endpoint_moves, steps[k].moves);
	}
	CHECK_STR(inet_ntoa(((struct sockaddr_in *)&r.p.ep)->sin_addr), "100.64.0.5");

	/* MOVED: a new address (a keepalive goes there), the same, a relay */
	addr(&ep, &len, "198.18.0.50", 5000);
	CHECK_EQ(ntm_peer_moved(&i.p, &ep, len, 1100), 1);
	CHECK_EQ(type(&i, i.n - 1), NTM_MSG_DATA);
	CHECK_EQ(i.p.endpoint_moves, 1);
	CHECK_EQ(ntm_peer_moved(&i.p, &ep, len, 1101), 0);
	mk(&x, NTM_ROUTE_RELAY, 1, 0, "198.18.0.3");
	CHECK_EQ(ntm_peer_moved(&x.p, &ep, len, 1102), -1);
	CHECK_EQ(x.p.endpoint_moves, 0);
	ntm_peer_free(&i.p);
	ntm_peer_free(&r.p);
	ntm_peer_free(&x.p);
}

/* A relayed initiator: binds every second until an ACK, then every
 * keepalive; its handshake waits for the peer's bind; counters only rise. */
TEST(relay_bind_and_ack)
{
	static struct side s;
	static const struct {
		int64_t		 now;
		int		 ack_side, ack_bound;	/* -1: a tick, no ACK */
		uint8_t		 key;
		int		 ret, acked, bound, hs_started;
		int64_t		 bind_next;
		int		 sent;			/* datagrams out by now */
	} steps[] = {
		{ 1500, -1, 0, 7, 0, 0, 0, 0, 2000, 1 },	/* not due yet */
		{ 2000, -1, 0, 7, 0, 0, 0, 0, 3000, 2 },	/* rebind */
		{ 2100, 1, 0, 7, -1, 0, 0, 0, 3000, 2 },	/* the other side's */
		{ 2100, 0, 0, 9, -1, 0, 0, 0, 3000, 2 },	/* another key */
		{ 2200, 0, 0, 7, 1, 1, 0, 0, 3200, 2 },	/* acked, peer not bound */
		{ 2300, 0, 0, 7, 0, 1, 0, 0, 3300, 2 },	/* the same: no news */
		{ 2400, 0, 1, 7, 1, 1, 1, 1, 17400, 3 },	/* peer bound: HS_INIT */
		{ 2500, 0, 1, 7, 0, 1, 1, 1, 17500, 3 },
	};

	mk(&s, NTM_ROUTE_RELAY, 1, 0, "198.18.0.3");
	ntm_peer_begin(&s.p, 1000, 5000);
	CHECK_EQ(s.n, 1);
	CHECK_EQ(type(&s, 0), NTM_MSG_RELAY_BIND);
	CHECK(bind_counter(&s, 0) == 5000);
	CHECK_EQ(s.p.bind_next, 2000);
	CHECK_EQ(s.p.hs_gate, 3000);
	CHECK_EQ(ntm_peer_deadline(&s.p), 2000);
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		if (steps[k].ack_side < 0)
			ntm_peer_tick(&s.p, steps[k].now, 4000);	/* wall clock went back */
		else
			CHECK_EQ(ack(&s, steps[k].ack_side, steps[k].ack_bound, steps[k].key,
			    steps[k].now), steps[k].ret);
		CHECK_EQ(s.p.acked, steps[k].acked);
		CHECK_EQ(s.p.peer_bound, steps[k].bound);
		CHECK_EQ(s.p.hs_started, steps[k].hs_started);
		CHECK_EQ(s.p.bind_next, steps[k].bind_next);
		CHECK_EQ(s.n, steps[k].sent);
	}
	CHECK(bind_counter(&s, 1) == 5001);		/* above the first, not 4000 */
	CHECK_EQ(type(&s, 2), NTM_MSG_HS_INIT);
	ntm_peer_free(&s.p);
}

/* An RS under load answers a bind with a RELAY_COOKIE: the peer binds again
 * at once with it (and every bind for the next 2 minutes carries it); a
 * copy of the reply, a reply to another bind or tunnel is not taken. */
TEST(relay_cookie)
{
	static struct side s;
	struct ntm_relay_bind b;
	uint8_t c[NTM_RELAY_COOKIE], r[NTM_RELAY_COOKIE_LEN], mac[NTM_MAC_LEN], tid[NTM_TUNNEL_ID_LEN];
	uint8_t want[NTM_MAC_LEN];

	mk(&s, NTM_ROUTE_RELAY, 1, 0, "198.18.0.3");
	ntm_peer_begin(&s.p, 1000, 5000);
	CHECK_EQ(s.n, 1);
	CHECK_EQ(ntm_relay_bind_parse(&b, s.b[0], s.len[0]), 0);
	CHECK(b.cookie_mac == NULL);
	memcpy(mac, b.mac, sizeof(mac));
	memcpy(tid, s.p.ticket + 1, sizeof(tid));
	memset(c, 0xc5, sizeof(c));
	/* a reply to another bind (MAC), or for another tunnel: not ours */
	mac[0] ^= 1;
	CHECK_EQ(ntm_relay_cookie_make(r, tid, mac, c), NTM_RELAY_COOKIE_LEN);
	CHECK_EQ(ntm_peer_relay_cookie(&s.p, r, sizeof(r), 1100, 5100), -1);
	mac[0] ^= 1;
	tid[0] ^= 1;
	CHECK_EQ(ntm_relay_cookie_make(r, tid, mac, c), NTM_RELAY_COOKIE_LEN);
	CHECK_EQ(ntm_peer_relay_cookie(&s.p, r, sizeof(r), 1100, 5100), -1);
	tid[0] ^= 1;
	CHECK_EQ(s.n, 1);
	/* ours: a bind at once, with the cookie's MAC over it */
	CHECK_EQ(ntm_relay_cookie_make(r, tid, mac, c), NTM_RELAY_COOKIE_LEN);
	CHECK_EQ(ntm_peer_relay_cookie(&s.p, r, sizeof(r), 1100, 5100), 0);
	CHECK_EQ(s.n, 2);
	CHECK_EQ(ntm_relay_bind_parse(&b, s.b[1], s.len[1]), 0);
	CHECK(b.counter == 5100);
	CHECK(b.cookie_mac != NULL);
	crypto_generichash(want, sizeof(want), s.b[1], s.len[1] - NTM_MAC_LEN, c, sizeof(c));
	CHECK(memcmp(want, b.cookie_mac, sizeof(want)) == 0);
	CHECK_EQ(ntm_relay_bind_verify(s.b[1], s.len[1], s.p.rkey), 0);
	CHECK_EQ(s.p.bind_next, 2100);
	CHECK_EQ(s.p.cookies, 1);
	/* the same reply again: no bind (it answered the bind before) */
	CHECK_EQ(ntm_peer_relay_cookie(&s.p, r, sizeof(r), 1200, 5200), -1);
	CHECK_EQ(s.n, 2);
	/* the rebind a second later still carries it ... */
	ntm_peer_tick(&s.p, 2100, 6100);
	CHECK_EQ(s.n, 3);
	CHECK_EQ(ntm_relay_bind_parse(&b, s.b[2], s.len[2]), 0);
	CHECK(b.cookie_mac != NULL);
	/* ... until 2 minutes after it came */
	ntm_peer_tick(&s.p, 1100 + NTM_RELAY_COOKIE_ROTATE_MS, 200000);
	CHECK_EQ(s.n, 5);		/* the bind, and the HS_INIT the gate let go */
	CHECK_EQ(type(&s, 4), NTM_MSG_HS_INIT);
	CHECK_EQ(ntm_relay_bind_parse(&b, s.b[3], s.len[3]), 0);
	CHECK(b.cookie_mac == NULL);
	/* a ticket too long to carry the cookie MAC as well: the bind goes
	 * without it */
	ntm_peer_free(&s.p);
	mk(&s, NTM_ROUTE_RELAY, 1, 0, "198.18.0.3");
	memset(s.p.ticket, 0xaa, NTM_TICKET_MAX);
	s.p.tlen = NTM_TICKET_MAX;
	ntm_peer_begin(&s.p, 1000, 5000);
	CHECK_EQ(ntm_relay_bind_parse(&b, s.b[0], s.len[0]), 0);
	CHECK_EQ(ntm_relay_cookie_make(r, tid, b.mac, c), NTM_RELAY_COOKIE_LEN);
	CHECK_EQ(ntm_peer_relay_cookie(&s.p, r, sizeof(r), 1100, 5100), 0);
	CHECK_EQ(s.n, 2);
	CHECK_EQ(s.bind_failed, 0);
	CHECK_EQ(ntm_relay_bind_parse(&b, s.b[1], s.len[1]), 0);
	CHECK(b.cookie_mac == NULL);
	/* a direct tunnel takes none */
	ntm_peer_free(&s.p);
	mk(&s, NTM_ROUTE_DIRECT, 1, 0, "198.18.0.3");
	CHECK_EQ(ntm_peer_relay_cookie(&s.p, r, sizeof(r), 1100, 5100), -1);
	ntm_peer_free(&s.p);
}

/* Without the peer's bind, the relayed initiator starts its handshake at
 * the gate anyway; a responder never does. */
TEST(handshake_gate)
{
	static struct side i, r;

	mk(&i, NTM_ROUTE_RELAY, 1, 0, "198.18.0.3");
	mk(&r, NTM_ROUTE_RELAY, 0, 1, "198.18.0.3");
	ntm_peer_begin(&i.p, 1000, 1000);
	ntm_peer_begin(&r.p, 1000, 1000);
	CHECK_EQ(ack(&i, 0, 0, 7, 1100), 1);
	CHECK_EQ(ack(&r, 1, 0, 7, 1100), 1);
	CHECK_EQ(ntm_peer_deadline(&i.p), 2100);
	ntm_peer_tick(&i.p, 2100, 2100);
	ntm_peer_tick(&r.p, 2100, 2100);
	CHECK_EQ(ntm_peer_deadline(&i.p), 3000);	/* the gate */
	CHECK(!i.p.hs_started);
	ntm_peer_tick(&i.p, 3000, 3000);
	ntm_peer_tick(&r.p, 3000, 3000);
	CHECK(i.p.hs_started);
	CHECK_EQ(type(&i, i.n - 1), NTM_MSG_HS_INIT);
	CHECK(!r.p.hs_started);
	for (int k = 0; k < r.n; k++)
		CHECK_EQ(type(&r, k), NTM_MSG_RELAY_BIND);
	ntm_peer_free(&i.p);
	ntm_peer_free(&r.p);
}

/* After our address changed, a relayed tunnel binds again and sends its
 * keepalive once the RS confirms; a direct one sends a keepalive at once.
 * A new route keeps the keys; one onto a relay it was not on has the
 * initiator shake hands again there; a bind that cannot be made waits a
 * keepalive. */
TEST(rebind_reroute)
{
	static struct side i, r, np;
	struct ntm_peer_event ev;
	int n, m;

	mk(&i, NTM_ROUTE_DIRECT, 1, 0, "198.18.0.2");
	mk(&r, NTM_ROUTE_DIRECT, 0, 0, NULL);
	ntm_peer_begin(&i.p, 1000, 0);
	CHECK_EQ(pass(&i, 0, &r, "198.18.0.1", 1001, &ev), 0);
	CHECK_EQ(pass(&r, 0, &i, "198.18.0.2", 1002, &ev), 0);
	CHECK(ev.established);
	CHECK_EQ(pass(&i, 1, &r, "198.18.0.1", 1003, &ev), 0);
	CHECK(ev.established);
	n = i.n;
	ntm_peer_rebind(&i.p, 1100, 1100);
	CHECK_EQ(i.n, n + 1);
	CHECK_EQ(type(&i, n), NTM_MSG_DATA);

	/* the DC reroutes it through the RS: same tunnel, a bind */
	memset(&np, 0, sizeof(np));
	np.p.kind = NTM_ROUTE_RELAY;
	addr(&np.p.ep, &np.p.eplen, "198.18.0.3", 3478);
	np.p.has_ep = 1;
	memset(np.p.ticket, 0xbb, 50);
	np.p.tlen = 50;
	memset(np.p.rkey, 7, sizeof(np.p.rkey));
	ntm_peer_reroute(&i.p, &np.p, 1200, 9000);
	CHECK_EQ(i.p.kind, NTM_ROUTE_RELAY);
	CHECK_EQ(type(&i, i.n - 1), NTM_MSG_RELAY_BIND);
	CHECK(i.p.ka_on_ack);
	/* the RS never saw this session's handshake (§4.4): the initiator
	 * shakes hands again through it once the peer is bound there */
	CHECK(!i.p.hs_started);
	CHECK_EQ(i.p.hs_gate, 1200 + NTM_PEER_HS_GATE_MS);
	n = i.n;
	CHECK_EQ(ack(&i, 0, 1, 7, 1300), 1);
	CHECK_EQ(i.n, n + 2);				/* the HS_INIT, the keepalive */
	CHECK_EQ(type(&i, n), NTM_MSG_HS_INIT);
	CHECK_EQ(type(&i, n + 1), NTM_MSG_DATA);
	CHECK(i.p.hs_started);
	CHECK(!i.p.ka_on_ack);
	/* the responder, rerouted too, starts none: it answers */
	memset(&np, 0, sizeof(np));
	np.p.kind = NTM_ROUTE_RELAY;
	addr(&np.p.ep, &np.p.eplen, "198.18.0.3", 3478);
	np.p.has_ep = 1;
	memset(np.p.ticket, 0xbb, 50);
	np.p.tlen = 50;
	memset(np.p.rkey, 7, sizeof(np.p.rkey));
	np.p.side = 1;
	ntm_peer_reroute(&r.p, &np.p, 1200, 9000);
	m = r.n;
	CHECK_EQ(ack(&r, 1, 1, 7, 1300), 1);
	CHECK_EQ(r.n, m + 1);				/* the keepalive only */
	CHECK_EQ(type(&r, m), NTM_MSG_DATA);
	ntm_peer_tick(&r.p, 3300, 9100);		/* past any gate */
	for (int k = m; k < r.n; k++)
		CHECK(type(&r, k) != NTM_MSG_HS_INIT);
	/* the new handshake; the old session went on meanwhile */
	CHECK_EQ(pass(&r, m, &i, "198.18.0.3", 1301, &ev), 0);
	CHECK(ev.authentic);
	CHECK_EQ(pass(&i, n, &r, "198.18.0.3", 1302, &ev), 0);
	CHECK_EQ(type(&r, r.n - 1), NTM_MSG_HS_RESP);
	CHECK_EQ(pass(&r, r.n - 1, &i, "198.18.0.3", 1303, &ev), 0);
	CHECK(ev.established);
	CHECK_EQ(pass(&i, i.n - 1, &r, "198.18.0.3", 1304, &ev), 0);
	CHECK(ev.established);
	/* the same RS again (punching starts over): no new handshake */
	n = i.n;
	np.p.side = 0;
	ntm_peer_reroute(&i.p, &np.p, 1350, 9050);
	CHECK(i.p.hs_started);
	CHECK_EQ(ack(&i, 0, 1, 7, 1360), 1);
	CHECK_EQ(i.n, n + 2);				/* the bind, the keepalive */
	CHECK_EQ(type(&i, n + 1), NTM_MSG_DATA);
	/* another RS address: again */
	addr(&np.p.ep, &np.p.eplen, "198.18.0.4", 3478);
	ntm_peer_reroute(&i.p, &np.p, 1370, 9070);
	CHECK(!i.p.hs_started);
	n = i.n;
	CHECK_EQ(ack(&i, 0, 1, 7, 1380), 1);
	CHECK_EQ(type(&i, n), NTM_MSG_HS_INIT);
	CHECK_EQ(pass(&i, n, &r, "198.18.0.4", 1381, &ev), 0);
	CHECK_EQ(pass(&r, r.n - 1, &i, "198.18.0.4", 1382, &ev), 0);
	CHECK(ev.established);
	ntm_peer_rebind(&i.p, 1400, 9000);
	CHECK(i.p.ka_on_ack);
	CHECK_EQ(type(&i, i.n - 1), NTM_MSG_RELAY_BIND);

	n = i.n;
	i.p.tlen = 0;					/* no ticket: no bind */
	ntm_peer_tick(&i.p, 20000, 20000);
	CHECK_EQ(i.bind_failed, NTM_ERR_INVAL);
	CHECK_EQ(i.p.bind_next, 20000 + 15000);
	CHECK(i.n <= n + 1);				/* at most the core's keepalive */
	ntm_peer_free(&i.p);
	ntm_peer_free(&r.p);
}

/* ---- hole punching ------------------------------------------------------- */

static const char *
to_str(const struct side *s, int i)
{
	static char b[64];

	return ntm_sa_str((const struct sockaddr *)&s->to[i], b, sizeof(b));
}

static const char *
ep_str(const struct side *s)
{
	static char b[64];

	return ntm_sa_str((const struct sockaddr *)&s->p.ep, b, sizeof(b));
}

/* Two relayed ends behind NATs, each given the other's two candidates. */
static void
mk_punch(struct side *i, struct side *r)
{
	socklen_t len;

	mk(i, NTM_ROUTE_RELAY, 1, 0, "198.18.0.4");
	mk(r, NTM_ROUTE_RELAY, 0, 1, "198.18.0.4");
	addr(&i->p.cand[0], &len, "198.18.3.1", 4000);
	addr(&i->p.cand[1], &len, "100.64.3.10", 4000);
	addr(&r->p.cand[0], &len, "198.18.2.1", 4000);
	addr(&r->p.cand[1], &len, "100.64.2.10", 4000);
	i->p.ncand = r->p.ncand = 2;
}

static int
punch_in(struct side *from, int k, struct side *to, const char *src, int64_t now)
{
	struct sockaddr_storage ss;
	socklen_t len;

	addr(&ss, &len, src, 4000);
	return ntm_peer_punch(&to->p, from->b[k], from->len[k], &ss, now);
}

/* Probes to every candidate at once, the relay bound meanwhile; a forged
 * or reflected probe and an answer from elsewhere change nothing; the
 * answer from the candidate moves the path there (the handshake goes
 * direct), and the peer follows the first authentic datagram that comes
 * direct from its candidate. Same session all along. */
TEST(punch)
{
	static struct side i, r;
	struct ntm_peer_event ev;
	uint8_t forged[NTM_PUNCH_LEN];
	int n;

	mk_punch(&i, &r);
	ntm_peer_begin(&i.p, 1000, 5000);
	ntm_peer_begin(&r.p, 1000, 5000);
	CHECK_EQ(i.n, 3);
	CHECK_EQ(type(&i, 0), NTM_MSG_RELAY_BIND);
	CHECK_STR(to_str(&i, 0), "198.18.0.4:4000");
	CHECK_EQ(type(&i, 1), NTM_MSG_PUNCH);
	CHECK_STR(to_str(&i, 1), "198.18.3.1:4000");
	CHECK_EQ(type(&i, 2), NTM_MSG_PUNCH);
	CHECK_STR(to_str(&i, 2), "100.64.3.10:4000");
	CHECK_EQ(i.p.punch, NTM_PUNCH_TRYING);
	CHECK_EQ(ntm_peer_path(&i.p), NTM_PATH_RELAYED);
	CHECK_EQ(ntm_peer_deadline(&i.p), 1500);	/* the next round */

	/* a probe without K's MAC, and our own reflected: dropped */
	memcpy(forged, i.b[1], sizeof(forged));
	forged[NTM_PUNCH_LEN - 1] ^= 1;
	n = r.n;
	{
		struct sockaddr_storage ss;
		socklen_t len;

		addr(&ss, &len, "198.18.2.1", 4000);
		CHECK_EQ(ntm_peer_punch(&r.p, forged, sizeof(forged), &ss, 1010),
		    NTM_ERR_CRYPTO);
	}
	CHECK_EQ(punch_in(&i, 1, &i, "198.18.3.1", 1010), NTM_ERR_PROTO);
	CHECK_EQ(r.n, n);

	/* i's probe reaches r: answered, and r probes back at once */
	CHECK_EQ(punch_in(&i, 1, &r, "198.18.2.1", 1020), 0);
	CHECK_EQ(r.n, n + 2);
	CHECK_STR(to_str(&r, n), "198.18.2.1:4000");
	CHECK_STR(to_str(&r, n + 1), "198.18.2.1:4000");
	CHECK_EQ(ntm_peer_path(&r.p), NTM_PATH_RELAYED);	/* not on a probe */

	/* the answer from another address is refused; from the candidate, the
	 * path moves and the handshake starts there */
	CHECK_EQ(punch_in(&r, n, &i, "198.18.9.9", 1030), NTM_ERR_STATE);
	CHECK_EQ(i.p.punch, NTM_PUNCH_TRYING);
	CHECK_EQ(punch_in(&r, n, &i, "198.18.3.1", 1030), 1);
	CHECK_EQ(ntm_peer_path(&i.p), NTM_PATH_PUNCHED);
	CHECK_EQ(i.p.punch_ms, 30);
	CHECK_STR(ep_str(&i), "198.18.3.1:4000");
	CHECK(i.p.hs_started);
	/* the HS_INIT goes there, and a copy through the RS (which learns the
	 * session's indices from it) */
	CHECK_EQ(type(&i, i.n - 2), NTM_MSG_HS_INIT);
	CHECK_STR(to_str(&i, i.n - 2), "198.18.3.1:4000");
	CHECK_EQ(type(&i, i.n - 1), NTM_MSG_HS_INIT);
	CHECK_STR(to_str(&i, i.n - 1), "198.18.0.4:4000");
	CHECK(memcmp(i.b[i.n - 1], i.b[i.n - 2], i.len[i.n - 1]) == 0);
	CHECK(strncmp(i.p.path_why, "punched to 198.18.3.1:4000 in 30 ms", 35) == 0);
	/* the same answer again: nothing more */
	CHECK_EQ(punch_in(&r, n, &i, "198.18.3.1", 1031), NTM_ERR_STATE);

	/* the HS_INIT comes direct from r's candidate: r follows, answers there
	 * and through the RS; the copy of the HS_INIT through the RS is a
	 * replay, and moves nothing */
	CHECK_EQ(pass(&i, i.n - 2, &r, "198.18.2.1", 1040, &ev), 0);
	CHECK_EQ(ntm_peer_path(&r.p), NTM_PATH_PUNCHED);
	CHECK_STR(ep_str(&r), "198.18.2.1:4000");
	CHECK_EQ(type(&r, r.n - 2), NTM_MSG_HS_RESP);
	CHECK_STR(to_str(&r, r.n - 2), "198.18.2.1:4000");
	CHECK_STR(to_str(&r, r.n - 1), "198.18.0.4:4000");
	n = r.n;
	CHECK(pass(&i, i.n - 1, &r, "198.18.0.4", 1045, &ev) < 0);
	CHECK_EQ(r.n, n);
	CHECK_EQ(ntm_peer_path(&r.p), NTM_PATH_PUNCHED);
	CHECK_EQ(pass(&r, r.n - 2, &i, "198.18.3.1", 1050, &ev), 0);
	CHECK(ev.established);
	CHECK(pass(&r, r.n - 1, &i, "198.18.0.4", 1051, &ev) < 0);
	CHECK_EQ(ntm_peer_path(&i.p), NTM_PATH_PUNCHED);
	/* binds still go to the RS: the fallback stays ready */
	ntm_peer_tick(&i.p, 2000, 6000);
	CHECK_EQ(type(&i, i.n - 1), NTM_MSG_RELAY_BIND);
	CHECK_STR(to_str(&i, i.n - 1), "198.18.0.4:4000");
	/* no more rounds once punched */
	CHECK(ntm_peer_deadline(&i.p) > 2000);
	ntm_peer_free(&i.p);
	ntm_peer_free(&r.p);
}

/* Nothing answers: NTM_PEER_PUNCH_ROUNDS rounds, then relayed for good,
 * with the reason. */
TEST(punch_gives_up)
{
	static struct side i, r;
	int64_t t;

	mk_punch(&i, &r);
	ntm_peer_begin(&i.p, 1000, 5000);
	for (t = 1000; t <= 1000 + NTM_PEER_PUNCH_ROUNDS * NTM_PEER_PUNCH_EVERY_MS; t += 100)
		ntm_peer_tick(&i.p, t, 5000 + (uint64_t)t);
	CHECK_EQ(i.p.punch, NTM_PUNCH_FAILED);
	CHECK_EQ(i.p.punch_sent, 2 * NTM_PEER_PUNCH_ROUNDS);
	CHECK_EQ(ntm_peer_path(&i.p), NTM_PATH_RELAYED);
	CHECK_STR(i.p.path_why, "no answer from the peer's 2 candidates in 5 s: relayed");
	CHECK_STR(ep_str(&i), "198.18.0.4:4000");
	/* no candidates (the DC gave none): nothing sent, no reason of its own */
	ntm_peer_free(&i.p);
	ntm_peer_free(&r.p);
	mk(&r, NTM_ROUTE_RELAY, 0, 1, "198.18.0.4");
	ntm_peer_begin(&r.p, 1000, 5000);
	CHECK_EQ(r.n, 1);
	CHECK_EQ(r.p.punch, NTM_PUNCH_OFF);
	CHECK_STR(r.p.path_why, "");
	ntm_peer_free(&r.p);
}

/* Punched, then back on the relay: the direct path silent for
 * NTM_PEER_DIRECT_DEAD_MS; the peer's packets only through the RS; our
 * own move (a bind from the new address at once). */
TEST(punch_lost)
{
	static struct side i, r;
	struct ntm_peer_event ev;
	int64_t t;

	for (int how = 0; how < 3; how++) {
		mk_punch(&i, &r);
		ntm_peer_begin(&i.p, 1000, 5000);
		ntm_peer_begin(&r.p, 1000, 5000);
		CHECK_EQ(punch_in(&i, 1, &r, "198.18.2.1", 1010), 0);
		CHECK_EQ(punch_in(&r, r.n - 2, &i, "198.18.3.1", 1020), 1);
		CHECK_EQ(pass(&i, i.n - 2, &r, "198.18.2.1", 1030, &ev), 0);	/* direct */
		CHECK_EQ(pass(&r, r.n - 2, &i, "198.18.3.1", 1040, &ev), 0);
		CHECK(ev.established);
		CHECK_EQ(i.p.direct_rx, 1040);
		if (how == 0) {
			t = 1040 + NTM_PEER_DIRECT_DEAD_MS;
			CHECK(ntm_peer_deadline(&i.p) <= t);
			ntm_peer_tick(&i.p, t - 1, 5000 + (uint64_t)t);
			CHECK_EQ(ntm_peer_path(&i.p), NTM_PATH_PUNCHED);
			ntm_peer_tick(&i.p, t, 5000 + (uint64_t)t);
			CHECK_STR(i.p.path_why, "the direct path fell silent: back on the relay");
			/* the initiator shakes hands again, through the RS */
			CHECK_EQ(type(&i, i.n - 1), NTM_MSG_HS_INIT);
			CHECK_STR(to_str(&i, i.n - 1), "198.18.0.4:4000");
		} else if (how == 1) {
			/* r went back: its keepalive comes through the RS (once
			 * i's confirmation let it send) */
			CHECK_EQ(type(&i, i.n - 1), NTM_MSG_DATA);
			CHECK_EQ(pass(&i, i.n - 1, &r, "198.18.2.1", 1045, &ev), 0);
			ntm_peer_keepalive(&r.p, 1500);
			CHECK_EQ(pass(&r, r.n - 1, &i, "198.18.0.4", 1500, &ev), 0);
			CHECK_EQ(ntm_peer_path(&i.p), NTM_PATH_PUNCHED);	/* in flight */
			ntm_peer_keepalive(&r.p, 2100);
			CHECK_EQ(pass(&r, r.n - 1, &i, "198.18.0.4", 2100, &ev), 0);
			CHECK_STR(i.p.path_why, "the peer went back to the relay: back on the relay");
		} else {
			ntm_peer_rebind(&i.p, 1500, 9000);
			CHECK_EQ(type(&i, i.n - 1), NTM_MSG_RELAY_BIND);
			CHECK_STR(to_str(&i, i.n - 1), "198.18.0.4:4000");
			CHECK_STR(i.p.path_why, "this end moved: back on the relay");
			/* the handshake again once the RS has our new bind: the
			 * keepalive, then the HS_INIT, both to the RS */
			CHECK(!i.p.hs_started);
			CHECK_EQ(ack(&i, 0, 1, 7, 1600), 1);
			CHECK(i.p.hs_started);
			CHECK_EQ(type(&i, i.n - 1), NTM_MSG_DATA);
			CHECK_EQ(type(&i, i.n - 2), NTM_MSG_HS_INIT);
			CHECK_STR(to_str(&i, i.n - 2), "198.18.0.4:4000");
		}
		CHECK_EQ(i.p.punch, NTM_PUNCH_LOST);
		CHECK_EQ(ntm_peer_path(&i.p), NTM_PATH_RELAYED);
		CHECK_STR(ep_str(&i), "198.18.0.4:4000");
		ntm_peer_free(&i.p);
		ntm_peer_free(&r.p);
	}
}

/* The PUNCH codec: the MAC is over every byte, the key is K's. */
TEST(punch_codec)
{
	uint8_t k[NTM_KEY_LEN], key[NTM_KEY_LEN], other[NTM_KEY_LEN], m[NTM_PUNCH_LEN];
	uint8_t tx[NTM_PUNCH_TXID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 }, got[NTM_PUNCH_TXID_LEN];
	int kind, ini;

	memset(k, 3, sizeof(k));
	ntm_punch_key(key, k);
	k[0] ^= 1;
	ntm_punch_key(other, k);
	CHECK_EQ(ntm_punch_make(m, TID, NTM_PUNCH_ANSWER, 1, tx, key), NTM_PUNCH_LEN);
	CHECK(memcmp(ntm_punch_tunnel_id(m, sizeof(m)), TID, sizeof(TID)) == 0);
	CHECK_EQ(ntm_punch_open(m, sizeof(m), key, &kind, &ini, got), 0);
	CHECK_EQ(kind, NTM_PUNCH_ANSWER);
	CHECK_EQ(ini, 1);
	CHECK(memcmp(got, tx, sizeof(tx)) == 0);
	CHECK_EQ(ntm_punch_open(m, sizeof(m), other, &kind, &ini, got), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_punch_open(m, sizeof(m) - 1, key, &kind, &ini, got), NTM_ERR_SHORT);
	for (size_t b = 0; b < sizeof(m); b++) {
		m[b] ^= 0x80;
		CHECK(ntm_punch_open(m, sizeof(m), key, &kind, &ini, got) < 0);
		m[b] ^= 0x80;
	}
}

/* Datagram k of from into to as if from src:port, on to's socket sock. */
static int
pass_via(struct side *from, int k, struct side *to, const char *src, int port, int sock,
    int64_t now, struct ntm_peer_event *ev)
{
	uint8_t b[NTM_UDP_MAX];
	struct sockaddr_storage ss;
	socklen_t len;

	addr(&ss, &len, src, port);
	memcpy(b, from->b[k], from->len[k]);
	return ntm_peer_recv_via(&to->p, b, from->len[k], &ss, sock, now, ev);
}

static int
punch_via(struct side *from, int k, struct side *to, const char *src, int port, int sock,
    int64_t now)
{
	struct sockaddr_storage ss;
	socklen_t len;

	addr(&ss, &len, src, port);
	return ntm_peer_punch_via(&to->p, from->b[k], from->len[k], &ss, sock, now);
}

/* Peer-reflexive: i's NAT maps per destination, so its probe reaches r
 * from a port r was not told of. r answers there (one answer, nothing
 * more) and keeps the address; i's answer-driven switch sends its
 * handshake from there, and r follows it: punched both ways. An
 * authentic datagram from an address no probe came from moves nothing. */
TEST(punch_peer_reflexive)
{
	static struct side i, r;
	struct ntm_peer_event ev;
	int n, k;

	mk_punch(&i, &r);
	ntm_peer_begin(&i.p, 1000, 5000);
	ntm_peer_begin(&r.p, 1000, 5000);
	n = r.n;
	CHECK_EQ(punch_via(&i, 1, &r, "198.18.2.1", 31337, 0, 1010), 0);
	CHECK_EQ(r.n, n + 1);			/* the answer only */
	CHECK_EQ(type(&r, n), NTM_MSG_PUNCH);
	CHECK_STR(to_str(&r, n), "198.18.2.1:31337");
	CHECK_EQ(r.p.nprflx, 1);
	CHECK_EQ(ntm_peer_path(&r.p), NTM_PATH_RELAYED);
	/* the same probe again: answered again, kept once */
	CHECK_EQ(punch_via(&i, 1, &r, "198.18.2.1", 31337, 0, 1011), 0);
	CHECK_EQ(r.n, n + 2);
	CHECK_EQ(r.p.nprflx, 1);
	/* r's answer comes back from its candidate: i's path is punched */
	CHECK_EQ(punch_in(&r, n, &i, "198.18.3.1", 1020), 1);
	CHECK_EQ(ntm_peer_path(&i.p), NTM_PATH_PUNCHED);
	k = i.n - 2;
	CHECK_EQ(type(&i, k), NTM_MSG_HS_INIT);
	/* the HS_INIT from an address that sent no probe, not a candidate's:
	 * r stays relayed, and answers through the RS */
	CHECK_EQ(pass_via(&i, k, &r, "198.18.9.9", 40000, 0, 1030, &ev), 0);
	CHECK_EQ(ntm_peer_path(&r.p), NTM_PATH_RELAYED);
	CHECK_EQ(type(&r, r.n - 1), NTM_MSG_HS_RESP);
	CHECK_STR(to_str(&r, r.n - 1), "198.18.0.4:4000");
	CHECK_EQ(pass(&r, r.n - 1, &i, "198.18.0.4", 1035, &ev), 0);
	CHECK(ev.established);
	/* i's keepalive from the peer-reflexive address: r follows there */
	ntm_peer_keepalive(&i.p, 1040);
	CHECK_EQ(type(&i, i.n - 1), NTM_MSG_DATA);
	CHECK_EQ(pass_via(&i, i.n - 1, &r, "198.18.2.1", 31337, 0, 1045, &ev), 0);
	CHECK_EQ(ntm_peer_path(&r.p), NTM_PATH_PUNCHED);
	CHECK_STR(ep_str(&r), "198.18.2.1:31337");
	CHECK(strstr(r.p.path_why, "peer-reflexive") != NULL);
	/* authentic packets from another port of a candidate's address (a
	 * per-destination NAT's, whose probe we did not keep): followed too */
	ntm_peer_free(&i.p);
	ntm_peer_free(&r.p);
	mk_punch(&i, &r);
	ntm_peer_begin(&i.p, 1000, 5000);
	ntm_peer_begin(&r.p, 1000, 5000);
	n = r.n;
	CHECK_EQ(punch_in(&i, 1, &r, "198.18.2.1", 1010), 0);
	CHECK_EQ(punch_in(&r, n, &i, "198.18.3.1", 1020), 1);
	k = i.n - 2;
	CHECK_EQ(type(&i, k), NTM_MSG_HS_INIT);
	CHECK_EQ(pass_via(&i, k, &r, "198.18.2.1", 6000, 0, 1030, &ev), 0);
	CHECK_EQ(ntm_peer_path(&r.p), NTM_PATH_PUNCHED);
	CHECK_STR(ep_str(&r), "198.18.2.1:6000");
	/* bounded: a few addresses per attempt */
	ntm_peer_free(&i.p);
	ntm_peer_free(&r.p);
	mk_punch(&i, &r);
	ntm_peer_begin(&i.p, 1000, 5000);
	ntm_peer_begin(&r.p, 1000, 5000);
	for (int port = 5000; port < 5000 + 2 * NTM_PEER_PRFLX; port++)
		CHECK_EQ(punch_via(&i, 1, &r, "198.18.2.1", port, 0, 1010), 0);
	CHECK_EQ(r.p.nprflx, NTM_PEER_PRFLX);
	ntm_peer_free(&i.p);
	ntm_peer_free(&r.p);
}

/* Birthday probing: h's NAT maps per destination, e's is
 * endpoint-independent. h probes e's reflexive address from
 * NTM_PEER_BDAY_SOCKS extra sockets, and once the tunnel is up asks e
 * (SPRAY, through the relay) to probe its predicted ports; e probes that
 * many distinct ports of h's IP, a burst at a time. One probe reaches h's
 * extra socket 77 (the port of its mapping): h answers from that socket;
 * the answer from that port moves e's path there, and e's packets on
 * socket 77 move h's. Nothing on the main socket. */
TEST(punch_birthday)
{
	static struct side h, e;
	struct ntm_peer_event ev;
	uint8_t seen[65536 / 8];
	int n, k, dup = 0, hit = -1, spray0;
	socklen_t len;

	mk_punch(&h, &e);	/* h the initiator, e the responder */
	/* e's candidates on a port below the predicted ones, so that its
	 * rounds to them are told apart from its probes below (one of which
	 * could be to 4000) */
	addr(&e.p.cand[0], &len, "198.18.2.1", NTM_PEER_BDAY_PORT_MIN - 1);
	addr(&e.p.cand[1], &len, "100.64.2.10", NTM_PEER_BDAY_PORT_MIN - 1);
	h.p.bday = NTM_BDAY_HARD;
	e.p.bday = NTM_BDAY_EASY;
	ntm_peer_begin(&h.p, 1000, 5000);
	ntm_peer_begin(&e.p, 1000, 5000);
	/* the bind, a probe to each candidate, one from each extra socket */
	CHECK_EQ(h.n, 3 + NTM_PEER_BDAY_SOCKS);
	for (k = 3; k < h.n; k++) {
		CHECK_EQ(h.sock[k], k - 2);
		CHECK_STR(to_str(&h, k), "198.18.3.1:4000");
	}
	CHECK(ntm_peer_sock_used(&h.p, 1));
	CHECK(ntm_peer_sock_used(&h.p, NTM_PEER_BDAY_SOCKS));
	CHECK(!ntm_peer_sock_used(&e.p, 1));
	CHECK(strncmp(h.p.path_why, "punching: 2 candidates from 256 mappings", 40) == 0);
	/* up through the relay */
	CHECK_EQ(ack(&h, 0, 1, 7, 1010), 1);
	k = h.n - 1;
	CHECK_EQ(type(&h, k), NTM_MSG_HS_INIT);
	CHECK_EQ(pass(&h, k, &e, "198.18.0.4", 1020, &ev), 0);
	CHECK_EQ(pass(&e, e.n - 1, &h, "198.18.0.4", 1030, &ev), 0);
	CHECK(ev.established);
	/* h asks at once, through the relay, sealed */
	k = h.n - 1;
	CHECK_EQ(type(&h, k), NTM_MSG_DATA);
	CHECK_STR(to_str(&h, k), "198.18.0.4:4000");
	CHECK_EQ(h.p.bday_asks, 1);
	n = e.n;
	CHECK_EQ(pass(&h, k, &e, "198.18.0.4", 1040, &ev), 0);
	CHECK(ev.payload == NULL);		/* the core's own */
	CHECK_EQ(e.p.bday_want, NTM_PEER_BDAY_ODDS * NTM_PEER_BDAY_PORTS /
	    (NTM_PEER_BDAY_SOCKS + 1));
	CHECK(ntm_peer_deadline(&e.p) <= 1040);
	/* the same SPRAY again (a copy): nothing new */
	CHECK_EQ(pass(&h, k, &e, "198.18.0.4", 1041, &ev), NTM_ERR_REPLAY);
	spray0 = e.n;
	CHECK_EQ(spray0, n);
	/* e sprays a burst every NTM_PEER_BDAY_EVERY_MS, each port once */
	memset(seen, 0, sizeof(seen));
	for (int64_t t = 1040; t < 1040 + 6000 && e.n < CAP; t += 10) {
		n = e.n;
		ntm_peer_tick(&e.p, t, 5000 + (uint64_t)t);
		if (e.n - n > NTM_PEER_BDAY_BURST + 3)
			fprintf(stderr, "t %lld: %d sent\n", (long long)t, e.n - n);
		CHECK(e.n - n <= NTM_PEER_BDAY_BURST + 3);	/* + a round, a bind */
	}
	n = 0;
	for (k = spray0; k < e.n; k++) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&e.to[k];
		int port = ntohs(s4->sin_port);

		if (type(&e, k) != NTM_MSG_PUNCH || port == NTM_PEER_BDAY_PORT_MIN - 1)
			continue;	/* the rounds to the candidates */
		n++;
		CHECK_EQ(e.sock[k], 0);
		CHECK(port >= NTM_PEER_BDAY_PORT_MIN);
		if (seen[port / 8] & (1 << (port % 8)))
			dup++;
		seen[port / 8] |= (uint8_t)(1 << (port % 8));
		if (hit < 0 && n == 700)
			hit = k;
	}
	CHECK_EQ(n, e.p.bday_want);
	CHECK_EQ(dup, 0);
	CHECK_EQ((int)e.p.bday_probes, e.p.bday_want);
	/* probe 700 reaches h's extra socket 77 from e's reflexive address:
	 * answered from that socket, and h probes back from it */
	n = h.n;
	CHECK_EQ(punch_via(&e, hit, &h, "198.18.3.1", 4000, 77, 3000), 0);
	CHECK_EQ(h.n, n + 2);
	CHECK_EQ(h.sock[n], 77);
	CHECK_EQ(h.sock[n + 1], 77);
	/* the answer from another port of h's IP, or from another IP: refused */
	{
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&e.to[hit];
		int port = ntohs(s4->sin_port);

		CHECK_EQ(punch_via(&h, n, &e, "198.18.2.1", port == 9999 ? 9998 : 9999, 0,
		    3010), NTM_ERR_STATE);
		CHECK_EQ(punch_via(&h, n, &e, "198.18.2.2", port, 0, 3010), NTM_ERR_STATE);
		CHECK_EQ(punch_via(&h, n, &e, "198.18.2.1", port, 0, 3010), 1);
		CHECK_EQ(ntm_peer_path(&e.p), NTM_PATH_PUNCHED);
		CHECK_EQ(ntohs(((const struct sockaddr_in *)&e.p.ep)->sin_port), port);
		CHECK(strstr(e.p.path_why, "(a predicted port answered)") != NULL);
		/* e's keepalive there reaches h on socket 77: h follows */
		k = e.n - 1;
		CHECK_EQ(type(&e, k), NTM_MSG_DATA);
		CHECK_EQ(e.sock[k], 0);
		CHECK_EQ(pass_via(&e, k, &h, "198.18.3.1", 4000, 77, 3020, &ev), 0);
		CHECK_EQ(ntm_peer_path(&h.p), NTM_PATH_PUNCHED);
		CHECK_EQ(h.p.ep_sock, 77);
	}
	/* h's datagrams go from socket 77; binds still from the main one; the
	 * other extra sockets are no longer used */
	ntm_peer_keepalive(&h.p, 3030);
	CHECK_EQ(h.sock[h.n - 1], 77);
	CHECK_STR(to_str(&h, h.n - 1), "198.18.3.1:4000");
	n = h.n;
	ntm_peer_tick(&h.p, 1010 + 15000, 5000 + 16010);
	for (k = n; k < h.n && type(&h, k) != NTM_MSG_RELAY_BIND; k++)
		;
	CHECK(k < h.n);
	CHECK_EQ(h.sock[k], 0);
	CHECK_STR(to_str(&h, k), "198.18.0.4:4000");
	CHECK(ntm_peer_sock_used(&h.p, 77));
	CHECK(!ntm_peer_sock_used(&h.p, 76));
	/* back on the relay: socket 77 no more */
	ntm_peer_rebind(&h.p, 17000, 22000);
	CHECK(!ntm_peer_sock_used(&h.p, 77));
	ntm_peer_free(&h.p);
	ntm_peer_free(&e.p);
}

/* h the hard end of birthday probing, e the easy one, both begun and up
 * through the relay: the index of h's SPRAY, sent at once, not yet
 * passed to e. */
static int
bday_up(struct side *h, struct side *e)
{
	struct ntm_peer_event ev;
	int k;

	h->p.bday = NTM_BDAY_HARD;
	e->p.bday = NTM_BDAY_EASY;
	ntm_peer_begin(&h->p, 1000, 5000);
	ntm_peer_begin(&e->p, 1000, 5000);
	CHECK_EQ(ack(h, 0, 1, 7, 1010), 1);
	CHECK_EQ(pass(h, h->n - 1, e, "198.18.0.4", 1020, &ev), 0);
	CHECK_EQ(pass(e, e->n - 1, h, "198.18.0.4", 1030, &ev), 0);
	k = h->n - 1;
	CHECK_EQ(type(h, k), NTM_MSG_DATA);	/* the SPRAY */
	return k;
}

/* The route given again (the DC's new candidates for a moved hard end)
 * reaches the easy end after the hard end's SPRAY of the new attempt: the
 * spray goes on from its first port to the new first candidate, and only
 * once for that SPRAY. */
TEST(punch_birthday_spray_before_route)
{
	static struct side h, e;
	struct ntm_peer_event ev;
	struct side np;
	socklen_t len;
	int k, n, old_host = 0, new_host = 0;

	mk_punch(&h, &e);
	k = bday_up(&h, &e);
	CHECK_EQ(pass(&h, k, &e, "198.18.0.4", 1040, &ev), 0);
	CHECK(e.p.bday_want > 0);
	ntm_peer_tick(&e.p, 1040, 6040);
	ntm_peer_tick(&e.p, 1080, 6080);
	CHECK_EQ(e.p.bday_sent, 2 * NTM_PEER_BDAY_BURST);
	/* the new route: h's new address first */
	memset(&np, 0, sizeof(np));
	np.p.kind = NTM_ROUTE_RELAY;
	addr(&np.p.ep, &np.p.eplen, "198.18.0.4", 4000);
	np.p.has_ep = 1;
	memset(np.p.ticket, 0xbb, 50);
	np.p.tlen = 50;
	memset(np.p.rkey, 7, sizeof(np.p.rkey));
	np.p.side = 1;
	np.p.bday = NTM_BDAY_EASY;
	addr(&np.p.cand[0], &len, "198.18.8.1", 4100);
	np.p.ncand = 1;
	ntm_peer_reroute(&e.p, &np.p, 1100, 6100);
	CHECK_EQ(e.p.bday_sent, 0);
	CHECK(e.p.bday_want > 0);
	CHECK(strstr(e.p.path_why, "predicted ports") != NULL);
	n = e.n;
	ntm_peer_tick(&e.p, 1100, 6100);
	ntm_peer_tick(&e.p, 1140, 6140);
	CHECK_EQ(e.p.bday_sent, 2 * NTM_PEER_BDAY_BURST);
	for (k = n; k < e.n; k++) {
		if (type(&e, k) != NTM_MSG_PUNCH)
			continue;
		if (strncmp(to_str(&e, k), "198.18.8.1:", 11) == 0)
			new_host++;
		else if (strncmp(to_str(&e, k), "198.18.3.1:", 11) == 0)
			old_host++;
	}
	CHECK_EQ(old_host, 0);
	CHECK(new_host >= 2 * NTM_PEER_BDAY_BURST);
	/* a route given again once more: that SPRAY is not sprayed again */
	ntm_peer_reroute(&e.p, &np.p, 1200, 6200);
	CHECK_EQ(e.p.bday_want, 0);
	CHECK(strstr(e.p.path_why, "predicted ports") == NULL);
	ntm_peer_free(&h.p);
	ntm_peer_free(&e.p);
}

/* A SPRAY that comes after the easy end gave up on the candidates alone
 * (NTM_PEER_PUNCH_ROUNDS: it had not heard of one by then; the peer's
 * CANDIDATES or its handshake through the relay was slow): the easy end
 * punches again, with rounds enough for every predicted port. */
TEST(punch_birthday_late_spray)
{
	static struct side h, e;
	struct ntm_peer_event ev;
	int64_t t, t0;
	int k, n, sprayed = 0;
	socklen_t len;
	char want[64];

	mk_punch(&h, &e);
	addr(&e.p.cand[0], &len, "198.18.2.1", NTM_PEER_BDAY_PORT_MIN - 1);
	addr(&e.p.cand[1], &len, "100.64.2.10", NTM_PEER_BDAY_PORT_MIN - 1);
	k = bday_up(&h, &e);			/* the SPRAY, held back */
	CHECK_EQ(e.p.bday_want, 0);
	for (t = 1000; t <= 1000 + (NTM_PEER_PUNCH_ROUNDS + 1) * NTM_PEER_PUNCH_EVERY_MS;
	    t += 100)
		ntm_peer_tick(&e.p, t, 5000 + (uint64_t)t);
	CHECK_EQ(e.p.punch, NTM_PUNCH_FAILED);
	t0 = t;
	CHECK_EQ(pass(&h, k, &e, "198.18.0.4", t0, &ev), 0);
	CHECK(e.p.bday_want > 0);
	CHECK_EQ(e.p.punch, NTM_PUNCH_TRYING);
	n = e.n;
	for (t = t0; t < t0 + NTM_PEER_BDAY_ROUNDS * NTM_PEER_PUNCH_EVERY_MS && e.n < CAP;
	    t += 10)
		ntm_peer_tick(&e.p, t, 5000 + (uint64_t)t);
	for (k = n; k < e.n; k++)
		if (type(&e, k) == NTM_MSG_PUNCH && ntohs(((const struct sockaddr_in *)
		    &e.to[k])->sin_port) != NTM_PEER_BDAY_PORT_MIN - 1)
			sprayed++;
	CHECK_EQ(sprayed, e.p.bday_want);
	CHECK_EQ(e.p.punch, NTM_PUNCH_FAILED);
	snprintf(want, sizeof(want), "nor %d predicted ports in 10 s", e.p.bday_want);
	CHECK(strstr(e.p.path_why, want) != NULL);
	ntm_peer_free(&h.p);
	ntm_peer_free(&e.p);
}

/* Nobody answers the predicted ports: both give up after
 * NTM_PEER_BDAY_ROUNDS rounds with the reason; the hard end's sockets are
 * released; a SPRAY to an end that is not the easy one is ignored. */
TEST(punch_birthday_gives_up)
{
	static struct side h, e;
	struct ntm_peer_event ev;
	int64_t t;

	mk_punch(&h, &e);
	h.p.bday = NTM_BDAY_HARD;
	ntm_peer_begin(&h.p, 1000, 5000);
	ntm_peer_begin(&e.p, 1000, 5000);
	CHECK_EQ(ack(&h, 0, 1, 7, 1010), 1);
	CHECK_EQ(pass(&h, h.n - 1, &e, "198.18.0.4", 1020, &ev), 0);
	CHECK_EQ(pass(&e, e.n - 1, &h, "198.18.0.4", 1030, &ev), 0);
	CHECK_EQ(pass(&h, h.n - 1, &e, "198.18.0.4", 1040, &ev), 0);
	CHECK_EQ(e.p.bday_want, 0);		/* e is not the easy end */
	for (t = 1000; t <= 1000 + NTM_PEER_BDAY_ROUNDS * NTM_PEER_PUNCH_EVERY_MS; t += 100)
		ntm_peer_tick(&h.p, t, 5000 + (uint64_t)t);
	CHECK_EQ(h.p.punch, NTM_PUNCH_FAILED);
	CHECK_EQ(h.p.bday_asks, NTM_PEER_BDAY_ASKS);
	CHECK_EQ((int)h.p.bday_probes, NTM_PEER_BDAY_SOCKS * NTM_PEER_BDAY_ROUNDS /
	    NTM_PEER_BDAY_OPEN_EVERY);
	CHECK_STR(h.p.path_why, "no answer from the peer's 2 candidates to our 256 mappings "
	    "in 10 s: relayed");
	CHECK(!ntm_peer_sock_used(&h.p, 1));
	ntm_peer_free(&h.p);
	ntm_peer_free(&e.p);
}

/* The SPRAY codec. */
TEST(spray_codec)
{
	uint8_t m[NTM_PUNCH_SPRAY_LEN + 1];
	uint32_t at;
	int maps;

	CHECK_EQ(ntm_punch_spray_make(m, 256, 7), NTM_PUNCH_SPRAY_LEN);
	CHECK_EQ(ntm_punch_spray_open(m, NTM_PUNCH_SPRAY_LEN, &maps, &at), 0);
	CHECK_EQ(maps, 256);
	CHECK_EQ(at, 7);
	CHECK_EQ(ntm_punch_spray_make(m, 0, 7), NTM_ERR_INVAL);
	CHECK_EQ(ntm_punch_spray_make(m, NTM_PUNCH_SPRAY_MAPPINGS_MAX + 1, 7), NTM_ERR_INVAL);
	CHECK_EQ(ntm_punch_spray_make(m, 1, 0), NTM_ERR_INVAL);
	CHECK_EQ(ntm_punch_spray_open(m, NTM_PUNCH_SPRAY_LEN - 1, &maps, &at), NTM_ERR_SHORT);
	CHECK_EQ(ntm_punch_spray_open(m, NTM_PUNCH_SPRAY_LEN + 1, &maps, &at), NTM_ERR_TOOBIG);
	m[1] = 1;
	CHECK_EQ(ntm_punch_spray_open(m, NTM_PUNCH_SPRAY_LEN, &maps, &at), NTM_ERR_PROTO);
	CHECK_EQ(ntm_punch_spray_make(m, 256, 7), NTM_PUNCH_SPRAY_LEN);
	m[7] = 0;
	CHECK_EQ(ntm_punch_spray_open(m, NTM_PUNCH_SPRAY_LEN, &maps, &at), NTM_ERR_PROTO);
	m[0] = NTM_TUN_CTL_CANDS;
	CHECK_EQ(ntm_punch_spray_open(m, NTM_PUNCH_SPRAY_LEN, &maps, &at), NTM_ERR_PROTO);
}

UNIT_MAIN(T(handshake_and_queue), T(queue_limits), T(endpoint_moves),
    T(relay_bind_and_ack), T(relay_cookie), T(handshake_gate), T(rebind_reroute),
    T(punch), T(punch_gives_up), T(punch_lost), T(punch_codec), T(punch_peer_reflexive),
    T(punch_birthday), T(punch_birthday_spray_before_route),
    T(punch_birthday_late_spray), T(punch_birthday_gives_up), T(spray_codec))
