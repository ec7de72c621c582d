/*
 * fuzz_sealed_peer.c - libFuzzer harness for the agent's side of a peer
 * (lib/core/peer.c) with authentic datagrams: two peers of one tunnel
 * (shared keys, as two agents would have them), a direct or a relayed
 * route (with or without hole punching candidates), and a network the
 * input drives: which datagram arrives, from where (its sender, the RS, or
 * a new address: a NAT that rebinds), copied, lost or reordered; what the
 * RS answers a RELAY_BIND (a RELAY_ACK, the peer bound or not, or a
 * RELAY_COOKIE, each made with the tunnel's keys); MOVED from the DC,
 * rebinds, keepalives, payloads and time. So the endpoint moves, the relay
 * path, the handshake gate, the queue, punching (PUNCH probes and answers
 * made with the punch key) and the fall back to the relay all run on
 * datagrams that authenticate.
 *
 * Input: byte 0 the route (bit 0 relayed, bit 1 with candidates, bit 2 the
 * responder knows the initiator's address), then operations (op byte):
 *
 *   0  deliver datagram (op>>3) of the queue     1  the same, kept (a copy)
 *   2  lose one                                  3  deliver it from a new address
 *   4  the initiator sends a payload (u8 length, bytes)   5  the responder
 *   6  time passes ((op>>3) x 100 ms), timers run
 *   7  (op>>3)&3: MOVED to the initiator, to the responder, the initiator
 *      rebinds, the responder sends a keepalive
 * A RELAY_BIND delivered to the RS takes one more byte: bit 0 a cookie
 * answers it, bit 1 the ACK says the peer is not bound.
 *
 * Checked: a payload that opens is one that was sent; nothing crashes.
 * libsodium's random bytes are deterministic, reset for each input; its
 * X25519 answers, which therefore come back input after input, are
 * remembered (fuzz_memo.h), so each input still makes its handshakes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peer.h"
#include "punch.h"
#include "relay.h"
#include "route.h"
#include "fuzz_rng.h"
#include "fuzz_memo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t TID[NTM_TUNNEL_ID_LEN] = "fuzz-tunnel-id!";


/* ---- the network ------------------------------------------------------------- */

enum { A_I, A_R, A_RS, A_NEW, A_DEAD, A_N };	/* addresses */
static struct sockaddr_storage addr[A_N];
static uint8_t pub[2][32];

static void
mkaddr(int i, uint32_t ip, uint16_t port)
{
	struct sockaddr_in *s = (struct sockaddr_in *)&addr[i];

	memset(&addr[i], 0, sizeof(addr[i]));
	s->sin_family = AF_INET;
	s->sin_addr.s_addr = htonl(ip);
	s->sin_port = htons(port);
}

static int
addr_of(const struct sockaddr_storage *ss)
{
	for (int i = 0; i < A_N; i++)
		if (ntm_sa_equal((const struct sockaddr *)ss, (const struct sockaddr *)&addr[i]))
			return i;
	return -1;
}

#define QMAX	24
struct dgram {
	int	from;		/* 0 initiator, 1 responder, 2 the RS */
	int	to;		/* A_* */
	size_t	len;
	uint8_t	buf[NTM_UDP_MAX];
};
/* The queue: pointers into slots, so taking one out of the middle moves
 * pointers, not datagrams (moving those was a fifth of the time). */
static struct dgram slots[QMAX], *q[QMAX], *freel[QMAX];
static int qn, nfree;

static struct ntm_peer peers[2];

#define SENT_MAX	32
static uint8_t sent[SENT_MAX][NTM_INNER_MTU];
static size_t sentlen[SENT_MAX];
static int nsent;

static void
push(int from, int to, const uint8_t *b, size_t len)
{
	struct dgram *d;

	if (qn >= QMAX || len > sizeof(d->buf))
		return;
	d = freel[--nfree];
	d->from = from;
	d->to = to;
	d->len = len;
	memcpy(d->buf, b, len);
	q[qn++] = d;
}

static void
output(struct ntm_peer *p, const struct sockaddr_storage *to, const struct ntm_tun_out *out)
{
	int a = addr_of(to);

	if (a < 0)
		abort();	/* the peer sends only where it was told or learnt */
	for (int i = 0; i < out->n; i++)
		push(p == &peers[0] ? 0 : 1, a, out->buf[i], out->len[i]);
}

static void
bind_failed(struct ntm_peer *p, int err)
{
	(void)p;
	(void)err;
}

static const struct ntm_peer_hooks hooks = { output, bind_failed };

static void
setup(void)
{
	uint8_t sk[32];

	if (randombytes_set_implementation(&rng) != 0 || sodium_init() < 0)
		abort();
	mkaddr(A_I, 0xc6120001u, 1000);
	mkaddr(A_R, 0xc6120002u, 2000);
	mkaddr(A_RS, 0xc6120009u, 3478);
	mkaddr(A_NEW, 0xc6120001u, 1001);	/* the initiator's NAT rebinds */
	mkaddr(A_DEAD, 0xc6120042u, 4242);	/* a candidate nobody answers at */
	memset(sk, 0x52, sizeof(sk));
	if (crypto_scalarmult_base(pub[0], sk) != 0)
		abort();
	memset(sk, 0x51, sizeof(sk));
	if (crypto_scalarmult_base(pub[1], sk) != 0)
		abort();
}

static void
peer_init(struct ntm_peer *p, int initiator, uint8_t route)
{
	struct ntm_tunnel_cfg cfg;

	memset(p, 0, sizeof(*p));
	p->hooks = &hooks;
	p->keepalive_ms = 10000;
	p->initiator = initiator;
	if (route & 1) {
		p->kind = NTM_ROUTE_RELAY;
		p->ep = addr[A_RS];
		p->has_ep = 1;
		p->ticket[0] = 1;
		memcpy(p->ticket + 1, TID, NTM_TUNNEL_ID_LEN);
		p->tlen = 64;
		memset(p->rkey, 0x77, sizeof(p->rkey));
		p->side = !initiator;
		if (route & 2) {
			p->ncand = 2;
			p->cand[0] = addr[initiator ? A_R : A_I];
			p->cand[1] = addr[A_DEAD];
		}
	} else {
		p->kind = NTM_ROUTE_DIRECT;
		if (initiator || (route & 4)) {
			p->ep = addr[initiator ? A_R : A_I];
			p->has_ep = 1;
		}
	}
	p->eplen = sizeof(struct sockaddr_in);
	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.tunnel_id, TID, sizeof(TID));
	memset(cfg.temporal_key, 0x4b, sizeof(cfg.temporal_key));
	memset(cfg.static_sk, initiator ? 0x51 : 0x52, sizeof(cfg.static_sk));
	memcpy(cfg.peer_static, pub[initiator ? 0 : 1], sizeof(cfg.peer_static));
	cfg.initiator = initiator;
	cfg.keepalive_ms = 10000;
	cfg.rekey_ms = 20000;
	if (ntm_peer_start(p, &cfg, 1000) != 0)
		abort();
}

/* What the agent does with a payload (tunnels.c). */
static void
payload(const uint8_t *b, size_t n)
{
	struct sockaddr_storage c[NTM_PUNCH_CANDS_MAX];
	uint32_t gen;
	int nat, k, i;

	for (i = 0; i < nsent; i++)
		if (sentlen[i] == n && memcmp(sent[i], b, n) == 0)
			break;
	if (i == nsent)
		abort();	/* opened to something nobody sent */
	if (ntm_tunnel_is_ctl(b, n))
		(void)ntm_punch_cands_open(b, n, &nat, &gen, c, &k);
}

/* The RS: an ACK or a cookie for a bind, the rest to the other side. */
static void
rs(const struct dgram *d, uint8_t how, int *bound)
{
	struct ntm_relay_bind b;
	uint8_t out[NTM_RELAY_COOKIE_LEN], cookie[NTM_RELAY_COOKIE], key[NTM_KEY_LEN];
	int type = ntm_msg_validate(d->buf, d->len);

	if (type == NTM_MSG_RELAY_BIND) {
		if (ntm_relay_bind_parse(&b, d->buf, d->len) != 0 || b.side != d->from)
			abort();
		memset(key, 0x77, sizeof(key));
		if (ntm_relay_bind_verify(d->buf, d->len, key) != 0)
			abort();
		if (how & 1) {
			memset(cookie, 0xc0, sizeof(cookie));
			if (ntm_relay_cookie_make(out, TID, b.mac, cookie) < 0)
				abort();
			push(2, d->from == 0 ? A_I : A_R, out, NTM_RELAY_COOKIE_LEN);
			return;
		}
		bound[b.side] = 1;
		ntm_relay_ack_make(out, b.side, !(how & 2) && bound[!b.side], b.counter, key);
		push(2, d->from == 0 ? A_I : A_R, out, NTM_RELAY_ACK_LEN);
	} else if (type == NTM_MSG_HS_INIT || type == NTM_MSG_HS_RESP || type == NTM_MSG_DATA) {
		push(2, d->from == 0 ? A_R : A_I, d->buf, d->len);
	}
}

static void
deliver(int i, int from_new, uint8_t how, int64_t now, int *bound)
{
	static uint8_t buf[NTM_UDP_MAX];
	struct ntm_peer_event ev;
	struct ntm_peer *p;
	struct dgram *d = q[i];
	int src, type, r;

	if (d->to == A_RS) {
		rs(d, how, bound);
		return;
	}
	if (d->to == A_DEAD)
		return;		/* nobody there */
	p = &peers[d->to == A_R ? 1 : 0];	/* A_NEW: the initiator's NAT */
	src = d->from == 2 ? A_RS : d->from == 0 ? A_I : A_R;
	if (from_new)
		src = A_NEW;
	memcpy(buf, d->buf, d->len);
	type = ntm_msg_validate(buf, d->len);
	if (d->len > 0 && buf[0] == NTM_MSG_RELAY_COOKIE)
		type = NTM_MSG_RELAY_COOKIE;	/* validated by its opener */
	switch (type) {
	case NTM_MSG_HS_INIT:
	case NTM_MSG_HS_RESP:
	case NTM_MSG_DATA:
		r = ntm_peer_recv(p, buf, d->len, &addr[src], now, &ev);
		if (r < 0 && ev.payload != NULL)
			abort();
		if (ev.payload)
			payload(ev.payload, ev.len);
		break;
	case NTM_MSG_PUNCH:
		(void)ntm_peer_punch(p, buf, d->len, &addr[src], now);
		break;
	case NTM_MSG_RELAY_ACK:
		(void)ntm_peer_relay_ack(p, buf, d->len, now);
		break;
	case NTM_MSG_RELAY_COOKIE:
		(void)ntm_peer_relay_cookie(p, buf, d->len, now, (uint64_t)now + 1700000000000ULL);
		break;
	default:
		break;
	}
	if (ntm_peer_path(p) < NTM_PATH_DIRECT || ntm_peer_path(p) > NTM_PATH_PUNCHED)
		abort();
}

static void
pop(int i)
{
	freel[nfree++] = q[i];
	memmove(&q[i], &q[i + 1], (size_t)(qn - i - 1) * sizeof(q[0]));
	qn--;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	int64_t now = 1000;
	uint64_t wall = 1700000000000ULL;
	int bound[2] = { 0, 0 };
	size_t off = 1;

	if (!ready) {
		setup();
		ready = 1;
	}
	rng_ctr = 1u << 20;
	if (size < 1)
		return 0;
	qn = 0;
	for (nfree = 0; nfree < QMAX; nfree++)
		freel[nfree] = &slots[nfree];
	nsent = 0;
	peer_init(&peers[0], 1, data[0]);
	peer_init(&peers[1], 0, data[0]);
	ntm_peer_begin(&peers[0], now, wall + (uint64_t)now);
	ntm_peer_begin(&peers[1], now, wall + (uint64_t)now);
	while (off < size) {
		uint8_t op = data[off++];
		int i;

		switch (op & 7) {
		case 0:
		case 1:
		case 3:
			if (qn == 0)
				break;
			i = (op >> 3) % qn;
			{
				uint8_t how = 0;

				if (q[i]->to == A_RS && off < size &&
				    q[i]->buf[0] == NTM_MSG_RELAY_BIND)
					how = data[off++];
				now += 1;
				deliver(i, (op & 7) == 3, how, now, bound);
			}
			if ((op & 7) != 1 && i < qn)
				pop(i);
			break;
		case 2:
			if (qn > 0)
				pop((op >> 3) % qn);
			break;
		case 4:
		case 5: {
			struct ntm_peer *p = &peers[(op & 7) == 5];
			size_t len = off < size ? data[off++] : 0;

			if (len > size - off)
				len = size - off;
			if (nsent < SENT_MAX && len <= NTM_INNER_MTU) {
				memcpy(sent[nsent], data + off, len);
				sentlen[nsent++] = len;
				(void)ntm_peer_send(p, data + off, len, now);
			}
			off += len;
			break;
		}
		case 6:
			now += (int64_t)(op >> 3) * 100 + 1;
			ntm_peer_tick(&peers[0], now, wall + (uint64_t)now);
			ntm_peer_tick(&peers[1], now, wall + (uint64_t)now);
			(void)ntm_peer_deadline(&peers[0]);
			(void)ntm_peer_deadline(&peers[1]);
			break;
		default:
			switch ((op >> 3) & 3) {
			case 0:
			case 1:
				(void)ntm_peer_moved(&peers[(op >> 3) & 1],
				    &addr[(op >> 5) & 1 ? A_NEW : ((op >> 3) & 1 ? A_I : A_R)],
				    sizeof(struct sockaddr_in), now);
				break;
			case 2:
				ntm_peer_rebind(&peers[0], now, wall + (uint64_t)now);
				break;
			default:
				ntm_peer_keepalive(&peers[1], now);
				break;
			}
			break;
		}
	}
	ntm_peer_free(&peers[0]);
	ntm_peer_free(&peers[1]);
	return 0;
}
