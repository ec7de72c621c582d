/*
 * fuzz_sealed_tunnel.c - libFuzzer harness for what travels inside the
 * end-to-end tunnel (docs/protocol.md §4.3), behind its AEAD: the input is
 * PLAINTEXT, sealed by a real tunnel (ntm_tunnel_send) of a pair that
 * shares keys, and opened by its peer, so mutations reach what the agent
 * does with an authentic DATA payload (cmd/ntm/agent/tunnels.c): a control
 * message (CANDIDATES, ntm_punch_cands_open), or an inner packet (the IP
 * parser, the echo answer, TUN mode's inbound filter lib/core/fw.c).
 *
 * The first byte picks the mode:
 *
 *   even: a pair established once, kept across inputs; the rest is
 *         payloads (u16 length, bytes), each sent by one end (the low bit
 *         of the length's first byte) and delivered twice: the first time
 *         it must open to the bytes sent, the second is a replay.
 *   odd:  a fresh pair whose datagrams the input schedules (deliver, copy,
 *         drop, reorder, misdeliver, send a payload, let time pass with
 *         short rekey timers), so the handshake, rekey and session changes
 *         run on authentic messages in any order. What opens must be a
 *         payload that was sent; nothing may crash.
 *
 * libsodium's random bytes are made deterministic (reset for each input),
 * so an input replays the same keys and indexes; the X25519 answers, which
 * therefore come back input after input, are remembered (fuzz_memo.h), so
 * each odd input still makes its handshakes and rekeys.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fw.h"
#include "ippkt.h"
#include "punch.h"
#include "tunnel.h"
#include "fuzz_rng.h"
#include "fuzz_memo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t TID[NTM_TUNNEL_ID_LEN] = "fuzz-tunnel-id!";
#define TKEY	0x4b		/* temporal key */
#define SKEY_I	0x51		/* the initiator device's static secret */
#define SKEY_R	0x52		/* the responder device's */


/* ---- the pair ------------------------------------------------------------ */

static struct ntm_fw *fw;
static struct ntm_tunnel *keep_i, *keep_r;	/* the long-lived pair */

static struct ntm_tunnel *
mk(int initiator, int64_t rekey_ms, uint64_t rekey_packets, int64_t now)
{
	static uint8_t pub[2][32];	/* the devices' public keys, made once */
	static int have_pub;
	struct ntm_tunnel_cfg cfg;
	struct ntm_tunnel *t;
	uint8_t sk[32];

	if (!have_pub) {
		memset(sk, SKEY_R, sizeof(sk));
		if (crypto_scalarmult_base(pub[0], sk) != 0)
			abort();
		memset(sk, SKEY_I, sizeof(sk));
		if (crypto_scalarmult_base(pub[1], sk) != 0)
			abort();
		have_pub = 1;
	}
	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.tunnel_id, TID, sizeof(TID));
	memset(cfg.temporal_key, TKEY, sizeof(cfg.temporal_key));
	memset(cfg.static_sk, initiator ? SKEY_I : SKEY_R, sizeof(cfg.static_sk));
	memcpy(cfg.peer_static, pub[initiator ? 0 : 1], sizeof(cfg.peer_static));
	cfg.initiator = initiator;
	cfg.rekey_ms = rekey_ms;
	cfg.rekey_packets = rekey_packets;
	if ((t = ntm_tunnel_new(&cfg, now)) == NULL)
		abort();
	return t;
}

static void
setup(void)
{
	static const uint8_t out4[] = {		/* this host's TCP SYN to a peer */
		0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 100, 64, 1, 2, 100, 64, 2, 2,
		0xc3, 0x50, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0 };
	static struct ntm_tun_out o, o2;
	struct ntm_tun_event ev;
	struct ntm_fw_rule r;
	char err[128];

	if (randombytes_set_implementation(&rng) != 0 || sodium_init() < 0 ||
	    (fw = ntm_fw_new(1)) == NULL)
		abort();
	if (ntm_fw_rule_parse(&r, "22/tcp", err, sizeof(err)) < 0 || ntm_fw_add(fw, &r) < 0 ||
	    ntm_fw_rule_parse(&r, "bob.dc2.example:icmp", err, sizeof(err)) < 0 ||
	    ntm_fw_add(fw, &r) < 0)
		abort();
	ntm_fw_out(fw, out4, sizeof(out4), 1000);

	keep_i = mk(1, 0, 0, 1000);
	keep_r = mk(0, 0, 0, 1000);
	if (ntm_tunnel_start(keep_i, 1000, &o) != 0 ||
	    ntm_tunnel_recv(keep_r, o.buf[0], o.len[0], 1001, &ev, &o2) != 0 ||
	    ntm_tunnel_recv(keep_i, o2.buf[0], o2.len[0], 1002, &ev, &o) != 0 ||
	    !ev.established ||
	    ntm_tunnel_recv(keep_r, o.buf[0], o.len[0], 1003, &ev, &o2) != 0 ||
	    !ev.established)
		abort();
}

/* What the agent does with an authentic payload (tunnels.c: tun_ctl,
 * inner_packet) and TUN mode with the same packet. */
static void
consume(const uint8_t *p, size_t n)
{
	struct sockaddr_storage c[NTM_PUNCH_CANDS_MAX];
	uint8_t out[NTM_INNER_MTU];
	struct ntm_ip ip, ip2;
	enum ntm_fw_verdict v;
	uint32_t gen;
	int nat, k, len;

	if (n == 0)
		return;
	if (ntm_tunnel_is_ctl(p, n)) {
		if (ntm_punch_cands_open(p, n, &nat, &gen, c, &k) == 0 &&
		    (k < 0 || k > NTM_PUNCH_CANDS_MAX))
			abort();
		return;
	}
	if (ntm_ip_parse(&ip, p, n) == 0 && ip.is_echo &&
	    (ip.icmp_type == NTM_ICMP_ECHO_REQUEST || ip.icmp_type == NTM_ICMP6_ECHO_REQUEST)) {
		if ((len = ntm_ip_echo_reply(out, sizeof(out), &ip)) > 0 &&
		    (ntm_ip_parse(&ip2, out, (size_t)len) != 0 || !ip2.is_echo ||
		    ip2.version != ip.version))
			abort();
	}
	v = ntm_fw_in(fw, "bob.dc2.example", p, n, 2000);
	if (v != NTM_FW_DROP && v != NTM_FW_PASS_FLOW && v != NTM_FW_PASS_RULE &&
	    v != NTM_FW_PASS_ICMPERR)
		abort();
	ntm_fw_out(fw, p, n, 2000);
}

/* ---- even: payloads over the long-lived pair ----------------------------- */

static void
payloads(const uint8_t *d, size_t n)
{
	static struct ntm_tun_out o, o2;
	static uint8_t copy[NTM_UDP_MAX];
	struct ntm_tun_event ev;
	struct ntm_tunnel *from, *to;
	size_t len;
	int r;

	while (n >= 2) {
		len = (size_t)d[0] << 8 | d[1];
		from = d[0] & 1 ? keep_r : keep_i;
		to = from == keep_i ? keep_r : keep_i;
		len %= NTM_INNER_MTU + 8;
		d += 2;
		n -= 2;
		if (len > n)
			len = n;
		r = ntm_tunnel_send(from, d, len, 5000, &o);
		if (r == 0 && (o.n != 1 || o.len[0] > sizeof(copy)))
			abort();	/* no rekey by count or time on this pair */
		if (r == 0) {
			memcpy(copy, o.buf[0], o.len[0]);
			r = ntm_tunnel_recv(to, o.buf[0], o.len[0], 5000, &ev, &o2);
			if (r != 0 || !ev.authentic || o2.n != 0 ||
			    (len == 0) != (ev.payload == NULL) ||
			    (len && (ev.len != len || memcmp(ev.payload, d, len) != 0)))
				abort();
			consume(ev.payload, ev.len);
			if (ntm_tunnel_recv(to, copy, o.len[0], 5000, &ev, &o2) != NTM_ERR_REPLAY)
				abort();
		} else if (r != NTM_ERR_TOOBIG && r != NTM_ERR_INVAL) {
			abort();
		}
		d += len;
		n -= len;
	}
}

/* ---- odd: a fresh pair, its datagrams scheduled by the input ------------- */

#define QMAX	16
struct dgram {
	int	to_r;			/* for the responder */
	size_t	len, plen;
	uint8_t	buf[NTM_UDP_MAX];
	uint8_t	plain[NTM_INNER_MTU];	/* the payload it was sealed from */
	int	has_plain;
};

static struct dgram q[QMAX];
static int qn;

static void
enqueue(const struct ntm_tun_out *o, int to_r, const uint8_t *plain, size_t plen)
{
	for (int i = 0; i < o->n && qn < QMAX; i++, qn++) {
		if (o->len[i] > sizeof(q[qn].buf))
			abort();
		q[qn].to_r = to_r;
		q[qn].len = o->len[i];
		memcpy(q[qn].buf, o->buf[i], o->len[i]);
		/* a DATA made by send() carries the payload; a rekey's
		 * HS_INIT in the second slot does not */
		q[qn].has_plain = plain != NULL && i == 0;
		q[qn].plen = plen;
		if (plain != NULL && plen)
			memcpy(q[qn].plain, plain, plen);
	}
}

static void
pop(int i)
{
	memmove(&q[i], &q[i + 1], (size_t)(qn - i - 1) * sizeof(q[0]));
	qn--;
}

static void
deliver(struct ntm_tunnel *ti, struct ntm_tunnel *tr, int i, int wrong, int64_t now)
{
	static struct ntm_tun_out o;
	static uint8_t buf[NTM_UDP_MAX];
	struct ntm_tun_event ev;
	struct ntm_tunnel *to;
	int to_r, r;

	to_r = q[i].to_r ^ wrong;
	to = to_r ? tr : ti;
	memcpy(buf, q[i].buf, q[i].len);
	r = ntm_tunnel_recv(to, buf, q[i].len, now, &ev, &o);
	if (r < 0 && (ev.payload != NULL || o.n != 0))
		abort();
	if (ev.payload != NULL) {
		/* only what was sealed from that very payload opens */
		if (wrong || !q[i].has_plain || ev.len != q[i].plen ||
		    memcmp(ev.payload, q[i].plain, ev.len) != 0)
			abort();
		consume(ev.payload, ev.len);
	}
	enqueue(&o, !to_r, NULL, 0);
}

static void
schedule(const uint8_t *d, size_t n)
{
	static struct ntm_tun_out o;
	struct ntm_tunnel *ti, *tr, *from;
	int64_t now = 1000, rekey_ms;
	uint64_t rekey_packets;
	size_t len;
	int r;

	if (n < 2)
		return;
	rekey_ms = 500 + (int64_t)d[0] * 100;
	rekey_packets = d[1] >> 4 ? d[1] >> 4 : 0;
	d += 2;
	n -= 2;
	qn = 0;
	ti = mk(1, rekey_ms, rekey_packets, now);
	tr = mk(0, rekey_ms, rekey_packets, now);
	if (ntm_tunnel_start(ti, now, &o) != 0)
		abort();
	enqueue(&o, 1, NULL, 0);
	while (n > 0) {
		uint8_t op = d[0];

		d++;
		n--;
		switch (op & 7) {
		case 0:		/* deliver the first */
		case 1:		/* deliver the first, keep a copy */
		case 7:		/* deliver the first to the wrong end */
			if (qn > 0) {
				int i = (op >> 3) % qn;

				deliver(ti, tr, i, (op & 7) == 7, now);
				if ((op & 7) != 1)
					pop(i);
			}
			break;
		case 2:		/* lose one */
			if (qn > 0)
				pop((op >> 3) % qn);
			break;
		case 3: {	/* reorder */
			struct dgram t;

			if (qn > 1) {
				int i = (op >> 3) % (qn - 1);

				t = q[i];
				q[i] = q[i + 1];
				q[i + 1] = t;
			}
			break;
		}
		case 4:		/* a payload from one end */
		case 5:
			from = (op & 7) == 4 ? ti : tr;
			len = (size_t)(op >> 3) * 8;
			if (n > 0) {
				len += d[0];
				d++;
				n--;
			}
			if (len > n)
				len = n;
			r = ntm_tunnel_send(from, d, len, now, &o);
			if (r == 0)
				enqueue(&o, from == ti, d, len);
			else if (r != NTM_ERR_STATE && r != NTM_ERR_INVAL && r != NTM_ERR_TOOBIG &&
			    r != NTM_ERR_EXPIRED)
				abort();
			d += len;
			n -= len;
			break;
		default:	/* time passes, timers run */
			now += (int64_t)(op >> 3) * 250 + 1;
			if (ntm_tunnel_tick(ti, now, &o) == 0)
				enqueue(&o, 1, NULL, 0);
			if (ntm_tunnel_tick(tr, now, &o) == 0)
				enqueue(&o, 0, NULL, 0);
			(void)ntm_tunnel_deadline(ti);
			(void)ntm_tunnel_deadline(tr);
			break;
		}
	}
	ntm_tunnel_free(ti);
	ntm_tunnel_free(tr);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fw == NULL)
		setup();
	rng_ctr = 1u << 20;	/* the pair made in setup() used the first */
	if (size < 1)
		return 0;
	if (data[0] & 1)
		schedule(data + 1, size - 1);
	else
		payloads(data + 1, size - 1);
	return 0;
}
