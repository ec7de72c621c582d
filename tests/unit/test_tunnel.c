/* test_tunnel.c - the tunnel core: handshake, data, replay, timers, rekey.
 * Everything runs through the public API with literal times. */
#include <stdio.h>
#include <time.h>

#include <sodium.h>

#include "tunnel.h"
#include "unit.h"

static const uint8_t TID[NTM_TUNNEL_ID_LEN] = {
	0x7e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

/* One datagram kept aside (the "network"). */
struct pkt {
	size_t	len;
	uint8_t	b[NTM_UDP_MAX + 1];	/* + 1: room for an overlong one */
};

/* The two devices' static keys: literal secrets, public keys derived. */
#define SK_I	0x11
#define SK_R	0x22

/* cfg's static keys: ours from sk_byte, the peer's public from peer_byte. */
static void
statics(struct ntm_tunnel_cfg *cfg, uint8_t sk_byte, uint8_t peer_byte)
{
	uint8_t psk[32];

	memset(cfg->static_sk, sk_byte, sizeof(cfg->static_sk));
	memset(psk, peer_byte, sizeof(psk));
	CHECK_EQ(crypto_scalarmult_base(cfg->peer_static, psk), 0);
}

static struct ntm_tunnel *
mk(int initiator, uint8_t kbyte, int64_t keepalive, int64_t rekey, uint64_t rekey_pk)
{
	struct ntm_tunnel_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.tunnel_id, TID, sizeof(TID));
	memset(cfg.temporal_key, kbyte, sizeof(cfg.temporal_key));
	statics(&cfg, initiator ? SK_I : SK_R, initiator ? SK_R : SK_I);
	cfg.initiator = initiator;
	cfg.keepalive_ms = keepalive;
	cfg.rekey_ms = rekey;
	cfg.rekey_packets = rekey_pk;
	return ntm_tunnel_new(&cfg, 1000);
}

static void
take(struct pkt *p, const struct ntm_tun_out *o, int i)
{
	p->len = o->len[i];
	memcpy(p->b, o->buf[i], o->len[i]);
}

/* Delivers a copy of p (recv decrypts in place). */
static int
deliver(struct ntm_tunnel *t, const struct pkt *p, int64_t now, struct ntm_tun_event *ev,
    struct ntm_tun_out *o)
{
	struct pkt c = *p;

	return ntm_tunnel_recv(t, c.b, c.len, now, ev, o);
}

/* An "IPv4 packet" of len bytes whose content depends on seq. */
static size_t
ippkt(uint8_t *b, size_t len, int seq)
{
	b[0] = 0x45;
	for (size_t i = 1; i < len; i++)
		b[i] = (uint8_t)(seq * 31 + i);
	return len;
}

static enum ntm_tun_state
state(const struct ntm_tunnel *t)
{
	struct ntm_tun_stats st;

	ntm_tunnel_stats(t, &st);
	return st.state;
}

/* The handshake at 1000..1003; leaves both UP. Checks every step. */
static void
handshake(struct ntm_tunnel *i, struct ntm_tunnel *r)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct pkt init, resp, conf;
	uint8_t ip[100];

	CHECK_EQ(state(i), NTM_TUN_NEW);
	CHECK_EQ(ntm_tunnel_send(i, ip, ippkt(ip, 40, 0), 1000, &o), NTM_ERR_STATE);
	CHECK_EQ(ntm_tunnel_start(i, 1000, &o), 0);
	CHECK_EQ(o.n, 1);
	take(&init, &o, 0);
	CHECK_EQ(ntm_msg_validate(init.b, init.len), NTM_MSG_HS_INIT);
	CHECK(memcmp(ntm_msg_tunnel_id(init.b, init.len), TID, sizeof(TID)) == 0);
	CHECK_EQ(state(i), NTM_TUN_HANDSHAKE);
	CHECK_EQ(ntm_tunnel_index(i), 0);

	CHECK_EQ(deliver(r, &init, 1001, &ev, &o), 0);
	CHECK_EQ(o.n, 1);
	CHECK(ev.authentic);
	CHECK(!ev.established);
	take(&resp, &o, 0);
	CHECK_EQ(ntm_msg_validate(resp.b, resp.len), NTM_MSG_HS_RESP);
	CHECK(ntm_tunnel_owns_index(i, ntm_msg_receiver_index(resp.b, resp.len)));
	CHECK_EQ(state(r), NTM_TUN_HANDSHAKE);
	/* The responder may not send before the initiator confirmed. */
	CHECK_EQ(ntm_tunnel_send(r, ip, ippkt(ip, 40, 0), 1001, &o), NTM_ERR_STATE);
	CHECK_EQ(o.n, 0);

	CHECK_EQ(deliver(i, &resp, 1002, &ev, &o), 0);
	CHECK(ev.established);
	CHECK(ev.authentic);
	CHECK_EQ(o.n, 1);			/* the confirming empty DATA */
	take(&conf, &o, 0);
	CHECK_EQ(conf.len, NTM_DATA_MIN_LEN);
	CHECK_EQ(state(i), NTM_TUN_UP);
	CHECK(ntm_tunnel_index(i) != 0);

	CHECK(ntm_tunnel_owns_index(r, ntm_msg_receiver_index(conf.b, conf.len)));
	CHECK_EQ(deliver(r, &conf, 1003, &ev, &o), 0);
	CHECK(ev.established);
	CHECK(ev.authentic);
	CHECK(ev.payload == NULL);
	CHECK_EQ(ev.len, 0);
	CHECK_EQ(o.n, 0);
	CHECK_EQ(state(r), NTM_TUN_UP);
	CHECK_EQ(ntm_tunnel_index(r), ntm_msg_receiver_index(conf.b, conf.len));
}

/* Sends one inner packet from a to b at now and checks it arrives whole. */
static void
flow(struct ntm_tunnel *a, struct ntm_tunnel *b, int seq, size_t len, int64_t now)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	uint8_t ip[NTM_INNER_MTU];
	struct pkt p;

	ippkt(ip, len, seq);
	CHECK_EQ(ntm_tunnel_send(a, ip, len, now, &o), 0);
	CHECK(o.n >= 1);
	take(&p, &o, 0);
	CHECK_EQ(p.len, NTM_DATA_MIN_LEN + len);
	CHECK_EQ(deliver(b, &p, now, &ev, &o), 0);
	CHECK_EQ(ev.len, len);
	CHECK(ev.payload != NULL && memcmp(ev.payload, ip, len) == 0);
}

TEST(handshake_and_data)
{
	static const size_t sizes[] = { 20, 1, 576, 1280, NTM_INNER_MTU };
	struct ntm_tunnel *i, *r;
	struct ntm_tun_stats st;
	uint64_t bytes = 0;

	if (sodium_init() < 0)
		abort();
	i = mk(1, 0x4b, 0, 0, 0);
	r = mk(0, 0x4b, 0, 0, 0);
	CHECK(i && r);
	handshake(i, r);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		flow(i, r, (int)k, sizes[k], 1010 + (int64_t)k);
		flow(r, i, (int)k + 100, sizes[k], 1010 + (int64_t)k);
		bytes += sizes[k];
	}
	ntm_tunnel_stats(i, &st);
	CHECK_EQ(st.state, NTM_TUN_UP);
	CHECK_EQ(st.tx_packets, 5);
	CHECK_EQ(st.rx_packets, 5);
	CHECK_EQ(st.tx_bytes, bytes);		/* inner payload only */
	CHECK_EQ(st.rx_bytes, bytes);
	CHECK_EQ(st.handshakes, 1);
	CHECK_EQ(st.last_handshake, 1002);
	CHECK_EQ(st.dropped, 0);
	CHECK_EQ(st.last_rx, 1014);
	ntm_tunnel_stats(r, &st);
	CHECK_EQ(st.last_handshake, 1003);
	CHECK_EQ(st.last_rx, 1014);
	CHECK_EQ(st.index, ntm_tunnel_index(r));
	CHECK_STR(ntm_tun_state_name(st.state), "up");
	CHECK_STR(ntm_tun_state_name(NTM_TUN_DEAD), "dead");
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
	ntm_tunnel_free(NULL);
}

TEST(bad_args)
{
	static struct ntm_tun_out o;
	struct ntm_tunnel_cfg cfg;
	struct ntm_tunnel *i, *r;
	uint8_t ip[NTM_INNER_MTU + 1];

	memset(&cfg, 0, sizeof(cfg));
	CHECK(ntm_tunnel_new(NULL, 1000) == NULL);
	CHECK(ntm_tunnel_new(&cfg, 1000) == NULL);	/* all-zero key */
	cfg.temporal_key[0] = 1;
	CHECK(ntm_tunnel_new(&cfg, 1000) == NULL);	/* no static key */
	statics(&cfg, SK_I, SK_R);
	memset(cfg.peer_static, 0, sizeof(cfg.peer_static));
	CHECK(ntm_tunnel_new(&cfg, 1000) == NULL);	/* peer key of low order */
	statics(&cfg, SK_I, SK_R);
	cfg.keepalive_ms = -1;
	CHECK(ntm_tunnel_new(&cfg, 1000) == NULL);
	i = mk(1, 1, 0, 0, 0);
	r = mk(0, 1, 0, 0, 0);
	CHECK_EQ(ntm_tunnel_start(r, 1000, &o), NTM_ERR_STATE);	/* responder */
	handshake(i, r);
	CHECK_EQ(ntm_tunnel_send(i, ip, ippkt(ip, NTM_INNER_MTU + 1, 0), 1010, &o),
	    NTM_ERR_TOOBIG);
	ip[0] = 0x55;				/* neither IPv4 nor IPv6 */
	CHECK_EQ(ntm_tunnel_send(i, ip, 40, 1010, &o), NTM_ERR_INVAL);
	ip[0] = 0x60;
	CHECK_EQ(ntm_tunnel_send(i, ip, 40, 1010, &o), 0);
	CHECK_EQ(ntm_tunnel_send(i, NULL, 0, 1010, &o), 0);	/* keepalive */
	CHECK_EQ(o.len[0], NTM_DATA_MIN_LEN);
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

/* Flipping any byte of any message makes it drop, and changes nothing:
 * the genuine message is accepted afterwards. */
TEST(tamper)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r;
	struct pkt init, resp, data, bad;
	struct ntm_tun_stats st;
	uint8_t ip[64];
	size_t drops = 0;

	i = mk(1, 2, 0, 0, 0);
	r = mk(0, 2, 0, 0, 0);
	CHECK_EQ(ntm_tunnel_start(i, 1000, &o), 0);
	take(&init, &o, 0);
	for (size_t k = 0; k < init.len; k++) {
		bad = init;
		bad.b[k] ^= 0x01;
		CHECK(deliver(r, &bad, 1001, &ev, &o) < 0);
		CHECK_EQ(o.n, 0);
		CHECK(!ev.authentic);
		drops++;
	}
	CHECK_EQ(state(r), NTM_TUN_NEW);
	CHECK_EQ(deliver(r, &init, 1001, &ev, &o), 0);
	take(&resp, &o, 0);
	for (size_t k = 0; k < resp.len; k++) {
		bad = resp;
		bad.b[k] ^= 0x80;
		CHECK(deliver(i, &bad, 1002, &ev, &o) < 0);
		CHECK_EQ(o.n, 0);
		CHECK(!ev.established);
	}
	CHECK_EQ(state(i), NTM_TUN_HANDSHAKE);
	CHECK_EQ(deliver(i, &resp, 1002, &ev, &o), 0);
	take(&data, &o, 0);
	CHECK_EQ(deliver(r, &data, 1003, &ev, &o), 0);

	CHECK_EQ(ntm_tunnel_send(i, ip, ippkt(ip, sizeof(ip), 1), 1004, &o), 0);
	take(&data, &o, 0);
	for (size_t k = 0; k < data.len; k++) {
		bad = data;
		bad.b[k] ^= 0x04;
		CHECK(deliver(r, &bad, 1005, &ev, &o) < 0);
		CHECK(ev.payload == NULL);
		CHECK(!ev.authentic);
		drops++;
	}
	CHECK_EQ(deliver(r, &data, 1005, &ev, &o), 0);
	CHECK_EQ(ev.len, sizeof(ip));
	ntm_tunnel_stats(r, &st);
	CHECK_EQ(st.dropped, drops);
	CHECK_EQ(st.rx_packets, 1);
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

/* Each truncated or extended message is refused by the length check. */
TEST(lengths)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r;
	struct pkt init, resp, data, cut;
	uint8_t ip[64];

	i = mk(1, 3, 0, 0, 0);
	r = mk(0, 3, 0, 0, 0);
	CHECK_EQ(ntm_tunnel_start(i, 1000, &o), 0);
	take(&init, &o, 0);
	for (size_t n = 0; n <= init.len + 1; n++) {
		if (n == init.len)
			continue;
		cut = init;
		cut.len = n;
		CHECK_EQ(deliver(r, &cut, 1001, &ev, &o), n < init.len ? NTM_ERR_SHORT :
		    NTM_ERR_TOOBIG);
	}
	CHECK_EQ(deliver(r, &init, 1001, &ev, &o), 0);
	take(&resp, &o, 0);
	for (size_t n = 0; n <= resp.len + 1; n++) {
		if (n == resp.len)
			continue;
		cut = resp;
		cut.len = n;
		CHECK_EQ(deliver(i, &cut, 1002, &ev, &o), n < resp.len ? NTM_ERR_SHORT :
		    NTM_ERR_TOOBIG);
	}
	CHECK_EQ(deliver(i, &resp, 1002, &ev, &o), 0);
	take(&data, &o, 0);
	CHECK_EQ(deliver(r, &data, 1003, &ev, &o), 0);
	/* DATA: below the minimum and above the maximum never reach crypto;
	 * in between, the tag fails. */
	CHECK_EQ(ntm_tunnel_send(i, ip, ippkt(ip, sizeof(ip), 2), 1004, &o), 0);
	take(&data, &o, 0);
	for (size_t n = 0; n < NTM_DATA_MIN_LEN; n++) {
		cut = data;
		cut.len = n;
		CHECK_EQ(deliver(r, &cut, 1005, &ev, &o), NTM_ERR_SHORT);
	}
	for (size_t n = NTM_DATA_MIN_LEN; n < data.len; n++) {
		cut = data;
		cut.len = n;
		CHECK_EQ(deliver(r, &cut, 1005, &ev, &o), NTM_ERR_CRYPTO);
	}
	cut = data;
	memset(cut.b + data.len, 0, sizeof(cut.b) - data.len);
	cut.len = data.len + 1;
	CHECK_EQ(deliver(r, &cut, 1005, &ev, &o), NTM_ERR_CRYPTO);
	cut.len = NTM_DATA_MAX_LEN + 1;
	CHECK(cut.len <= sizeof(cut.b));
	CHECK_EQ(deliver(r, &cut, 1005, &ev, &o), NTM_ERR_TOOBIG);
	CHECK_EQ(deliver(r, &data, 1005, &ev, &o), 0);
	/* Other message types are not the tunnel's. */
	memset(cut.b, 0, sizeof(cut.b));
	ntm_msg_header(cut.b, NTM_MSG_RELAY_ACK);
	cut.len = NTM_RELAY_ACK_LEN;
	CHECK_EQ(deliver(r, &cut, 1005, &ev, &o), NTM_ERR_PROTO);
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

TEST(replay)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r;
	struct pkt init, resp, conf, d[4];
	uint8_t ip[64];

	i = mk(1, 4, 0, 0, 0);
	r = mk(0, 4, 0, 0, 0);
	CHECK_EQ(ntm_tunnel_start(i, 1000, &o), 0);
	take(&init, &o, 0);
	CHECK_EQ(deliver(r, &init, 1001, &ev, &o), 0);
	take(&resp, &o, 0);
	/* The same HS_INIT again: no second answer, no new session. */
	CHECK_EQ(deliver(r, &init, 1002, &ev, &o), NTM_ERR_REPLAY);
	CHECK_EQ(o.n, 0);
	CHECK_EQ(deliver(i, &resp, 1002, &ev, &o), 0);
	take(&conf, &o, 0);
	/* An HS_RESP replayed once the attempt is over. */
	CHECK_EQ(deliver(i, &resp, 1003, &ev, &o), NTM_ERR_STATE);
	CHECK_EQ(deliver(r, &conf, 1003, &ev, &o), 0);
	CHECK_EQ(deliver(r, &conf, 1003, &ev, &o), NTM_ERR_REPLAY);
	/* An HS_INIT replayed after the session is up changes nothing. */
	CHECK_EQ(deliver(r, &init, 1004, &ev, &o), NTM_ERR_REPLAY);
	CHECK_EQ(state(r), NTM_TUN_UP);
	for (int k = 0; k < 4; k++) {
		CHECK_EQ(ntm_tunnel_send(i, ip, ippkt(ip, sizeof(ip), k), 1005, &o), 0);
		take(&d[k], &o, 0);
	}
	/* Reordered is fine, twice is not. */
	static const struct { int k; int want; } seq[] = {
		{ 1, 0 }, { 0, 0 }, { 1, NTM_ERR_REPLAY }, { 3, 0 }, { 2, 0 },
		{ 3, NTM_ERR_REPLAY }, { 0, NTM_ERR_REPLAY },
	};
	for (size_t k = 0; k < sizeof(seq) / sizeof(seq[0]); k++) {
		CHECK_EQ(deliver(r, &d[seq[k].k], 1006, &ev, &o), seq[k].want);
		if (seq[k].want == 0)
			CHECK(ev.payload && ev.payload[1] == (uint8_t)(seq[k].k * 31 + 1));
		else
			CHECK(!ev.authentic);
	}
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

TEST(wrong_key)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r;
	struct pkt init;

	i = mk(1, 5, 0, 0, 0);
	r = mk(0, 6, 0, 0, 0);			/* another temporal key */
	CHECK_EQ(ntm_tunnel_start(i, 1000, &o), 0);
	take(&init, &o, 0);
	CHECK_EQ(deliver(r, &init, 1001, &ev, &o), NTM_ERR_CRYPTO);
	CHECK_EQ(o.n, 0);
	CHECK_EQ(state(r), NTM_TUN_NEW);
	/* Another tunnel id. */
	init.b[8] ^= 1;
	CHECK_EQ(deliver(r, &init, 1001, &ev, &o), NTM_ERR_PROTO);
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

/* HS_RESP is bound to the HS_INIT it answers. */
TEST(resp_binding)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *a, *b, *ra, *rb;
	struct pkt ia, ib, pa, pb, x;
	uint8_t mac[NTM_MAC_LEN];

	a = mk(1, 7, 0, 0, 0);
	b = mk(1, 7, 0, 0, 0);
	ra = mk(0, 7, 0, 0, 0);
	rb = mk(0, 7, 0, 0, 0);
	CHECK_EQ(ntm_tunnel_start(a, 1000, &o), 0);
	take(&ia, &o, 0);
	CHECK_EQ(ntm_tunnel_start(b, 1000, &o), 0);
	take(&ib, &o, 0);
	CHECK_EQ(deliver(ra, &ia, 1001, &ev, &o), 0);
	take(&pa, &o, 0);
	CHECK_EQ(deliver(rb, &ib, 1001, &ev, &o), 0);
	take(&pb, &o, 0);
	/* Swap the MACs: each is bound to the other's HS_INIT. */
	memcpy(mac, pa.b + 44, sizeof(mac));
	memcpy(pa.b + 44, pb.b + 44, sizeof(mac));
	memcpy(pb.b + 44, mac, sizeof(mac));
	CHECK_EQ(deliver(a, &pa, 1002, &ev, &o), NTM_ERR_CRYPTO);
	CHECK_EQ(deliver(b, &pb, 1002, &ev, &o), NTM_ERR_CRYPTO);
	/* Swap back, but send a's answer to b (receiver index rewritten). */
	memcpy(mac, pa.b + 44, sizeof(mac));
	memcpy(pa.b + 44, pb.b + 44, sizeof(mac));
	memcpy(pb.b + 44, mac, sizeof(mac));
	x = pa;
	memcpy(x.b + 8, ib.b + 4, 4);
	CHECK_EQ(deliver(b, &x, 1002, &ev, &o), NTM_ERR_CRYPTO);
	CHECK_EQ(deliver(a, &pa, 1002, &ev, &o), 0);
	CHECK(ev.established);
	CHECK_EQ(deliver(b, &pb, 1002, &ev, &o), 0);
	CHECK(ev.established);
	ntm_tunnel_free(a);
	ntm_tunnel_free(b);
	ntm_tunnel_free(ra);
	ntm_tunnel_free(rb);
}

/* HS_INIT at 1000, then retransmits at 1 s, 2 s, 4 s, 8 s; no answer 16 s
 * after the fifth: DEAD. Each retransmit is a fresh HS_INIT that the
 * responder answers (a new session); an answer to an older one is dropped. */
TEST(retransmit)
{
	static const struct { int64_t now; int sends; int64_t deadline; int st; } v[] = {
		{ 1999, 0, 2000, NTM_TUN_HANDSHAKE },
		{ 2000, 1, 4000, NTM_TUN_HANDSHAKE },
		{ 3999, 0, 4000, NTM_TUN_HANDSHAKE },
		{ 4000, 1, 8000, NTM_TUN_HANDSHAKE },
		{ 8000, 1, 16000, NTM_TUN_HANDSHAKE },
		{ 16001, 1, 32001, NTM_TUN_HANDSHAKE },	/* late tick: from now */
		{ 32000, 0, 32001, NTM_TUN_HANDSHAKE },
		{ 32001, 0, INT64_MAX, NTM_TUN_DEAD },
		{ 40000, 0, INT64_MAX, NTM_TUN_DEAD },
	};
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r;
	struct pkt init, prev, resp_old, resp;
	int answered = 0;

	i = mk(1, 8, 0, 0, 0);
	r = mk(0, 8, 0, 0, 0);
	CHECK_EQ(ntm_tunnel_start(i, 1000, &o), 0);
	take(&init, &o, 0);
	CHECK_EQ(ntm_tunnel_deadline(i), 2000);
	CHECK_EQ(ntm_tunnel_deadline(r), INT64_MAX);
	for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
		CHECK_EQ(ntm_tunnel_tick(i, v[k].now, &o), 0);
		CHECK_EQ(o.n, v[k].sends);
		CHECK_EQ(ntm_tunnel_deadline(i), v[k].deadline);
		CHECK_EQ(state(i), v[k].st);
		if (o.n == 1) {
			prev = init;
			take(&init, &o, 0);
			CHECK(memcmp(init.b + 24, prev.b + 24, 32) != 0);	/* new ephemeral */
			CHECK(memcmp(init.b + 4, prev.b + 4, 4) == 0);	/* same index */
			CHECK_EQ(deliver(r, &init, v[k].now, &ev, &o), 0);
			CHECK_EQ(o.n, 1);
			answered++;
		}
	}
	CHECK_EQ(answered, 4);
	/* Dead: nothing to send, until the caller starts again. */
	CHECK_EQ(ntm_tunnel_send(i, NULL, 0, 40000, &o), NTM_ERR_STATE);
	CHECK_EQ(ntm_tunnel_start(i, 41000, &o), 0);
	CHECK_EQ(state(i), NTM_TUN_HANDSHAKE);
	take(&init, &o, 0);
	CHECK_EQ(deliver(r, &init, 41001, &ev, &o), 0);
	take(&resp_old, &o, 0);
	CHECK_EQ(ntm_tunnel_tick(i, 42000, &o), 0);	/* retransmit */
	CHECK_EQ(o.n, 1);
	take(&init, &o, 0);
	CHECK_EQ(deliver(r, &init, 42001, &ev, &o), 0);
	take(&resp, &o, 0);
	/* The answer to the first attempt arrives late: stale, dropped. */
	CHECK_EQ(deliver(i, &resp_old, 42002, &ev, &o), NTM_ERR_CRYPTO);
	CHECK_EQ(deliver(i, &resp, 42003, &ev, &o), 0);
	CHECK(ev.established);
	take(&init, &o, 0);			/* the confirming DATA */
	CHECK_EQ(deliver(r, &init, 42004, &ev, &o), 0);
	CHECK(ev.established);
	flow(r, i, 1, 100, 42005);
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

/* Keepalive after keepalive_ms of sending nothing, on both ends. */
TEST(keepalive)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r;
	struct pkt ka;

	i = mk(1, 9, 5000, 0, 0);
	r = mk(0, 9, 5000, 0, 0);
	handshake(i, r);
	/* i sent its confirming DATA at 1002; r came up at 1003. */
	static const struct { int who; int64_t now; int sends; int64_t deadline; } v[] = {
		{ 0, 6001, 0, 6002 },
		{ 0, 6002, 1, 11002 },
		{ 1, 6002, 0, 6003 },
		{ 1, 6003, 1, 11003 },
		{ 0, 9000, -1, 14000 },		/* -1: i sends data at 9000 */
		{ 0, 11002, 0, 14000 },
		{ 0, 14000, 1, 19000 },
		{ 1, 20000, 1, 25000 },		/* late tick: one keepalive */
	};
	for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
		struct ntm_tunnel *t = v[k].who ? r : i, *peer = v[k].who ? i : r;

		if (v[k].sends < 0) {
			flow(t, peer, 1, 60, v[k].now);
		} else {
			CHECK_EQ(ntm_tunnel_tick(t, v[k].now, &o), 0);
			CHECK_EQ(o.n, v[k].sends);
			if (o.n) {
				take(&ka, &o, 0);
				CHECK_EQ(ka.len, NTM_DATA_MIN_LEN);
				CHECK_EQ(deliver(peer, &ka, v[k].now, &ev, &o), 0);
				CHECK(ev.authentic);
				CHECK(ev.payload == NULL);
			}
		}
		if (ntm_tunnel_deadline(t) != v[k].deadline)
			fprintf(stderr, "step %zu\n", k);
		CHECK_EQ(ntm_tunnel_deadline(t), v[k].deadline);
	}
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

/* The interval changed on a running tunnel: the next keepalive follows
 * the new one; 0 is the default (10 s); a negative one is refused. */
TEST(keepalive_set)
{
	static struct ntm_tun_out o;
	struct ntm_tunnel *i, *r;

	i = mk(1, 9, 0, 0, 0);
	r = mk(0, 9, 0, 0, 0);
	handshake(i, r);
	/* i sent its confirming DATA at 1002 */
	CHECK_EQ(ntm_tunnel_deadline(i), 11002);
	CHECK_EQ(ntm_tunnel_set_keepalive(i, 2000), 0);
	CHECK_EQ(ntm_tunnel_deadline(i), 3002);
	CHECK_EQ(ntm_tunnel_tick(i, 3001, &o), 0);
	CHECK_EQ(o.n, 0);
	CHECK_EQ(ntm_tunnel_tick(i, 3002, &o), 0);
	CHECK_EQ(o.n, 1);
	CHECK_EQ(ntm_tunnel_deadline(i), 5002);
	CHECK_EQ(ntm_tunnel_set_keepalive(i, -1), NTM_ERR_INVAL);
	CHECK_EQ(ntm_tunnel_deadline(i), 5002);
	CHECK_EQ(ntm_tunnel_set_keepalive(i, 0), 0);
	CHECK_EQ(ntm_tunnel_deadline(i), 13002);
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

/*
 * Rekey at 120 s while both ends keep sending: packets sealed with the old
 * keys and delivered after the switch still decrypt (old index accepted),
 * nothing is lost, and the old keys go 10 s after the new ones confirmed.
 */
TEST(rekey)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r;
	struct pkt init, resp, conf, r_old1, r_old2, i_old, i_new, r_new, r_old3;
	struct ntm_tun_stats st;
	uint8_t ip[200];
	uint32_t i_old_idx, r_old_idx;
	int64_t t0 = 1002 + 120000;		/* i's session was made at 1002 */

	i = mk(1, 10, 0, 0, 0);
	r = mk(0, 10, 0, 0, 0);
	handshake(i, r);
	for (int64_t now = 2000; now < t0; now += 5000) {
		flow(i, r, (int)(now / 5000), 100, now);
		flow(r, i, (int)(now / 5000), 100, now);
	}
	i_old_idx = ntm_tunnel_index(i);
	r_old_idx = ntm_tunnel_index(r);
	CHECK_EQ(ntm_tunnel_deadline(i), t0);
	/* r sends on the old session just before i rekeys. */
	CHECK_EQ(ntm_tunnel_send(r, ip, ippkt(ip, 100, 501), t0, &o), 0);
	take(&r_old1, &o, 0);
	CHECK_EQ(ntm_tunnel_tick(i, t0, &o), 0);
	CHECK_EQ(o.n, 1);
	take(&init, &o, 0);
	CHECK_EQ(ntm_msg_validate(init.b, init.len), NTM_MSG_HS_INIT);
	CHECK_EQ(state(i), NTM_TUN_UP);		/* old session still in use */
	/* i keeps sending on the old session while the handshake runs. */
	CHECK_EQ(ntm_tunnel_send(i, ip, ippkt(ip, 100, 502), t0 + 1, &o), 0);
	take(&i_old, &o, 0);
	CHECK_EQ(ntm_msg_receiver_index(i_old.b, i_old.len), r_old_idx);

	CHECK_EQ(deliver(r, &init, t0 + 2, &ev, &o), 0);
	take(&resp, &o, 0);
	CHECK(!ev.established);
	CHECK_EQ(ntm_tunnel_index(r), r_old_idx);	/* not confirmed yet */
	/* r still sends on the old session. */
	CHECK_EQ(ntm_tunnel_send(r, ip, ippkt(ip, 100, 503), t0 + 3, &o), 0);
	take(&r_old2, &o, 0);
	CHECK_EQ(ntm_msg_receiver_index(r_old2.b, r_old2.len), i_old_idx);

	CHECK_EQ(deliver(i, &resp, t0 + 4, &ev, &o), 0);
	CHECK(ev.established);
	take(&conf, &o, 0);
	CHECK(ntm_tunnel_index(i) != i_old_idx);
	CHECK(ntm_tunnel_owns_index(i, i_old_idx));
	/* Old-session packets from r arrive after i switched. */
	CHECK_EQ(deliver(i, &r_old1, t0 + 5, &ev, &o), 0);
	CHECK(ev.payload && ev.payload[1] == (uint8_t)(501 * 31 + 1));
	CHECK_EQ(deliver(i, &r_old2, t0 + 5, &ev, &o), 0);
	CHECK(ev.payload && ev.payload[1] == (uint8_t)(503 * 31 + 1));
	/* i sends on the new session; it overtakes the confirming DATA. */
	CHECK_EQ(ntm_tunnel_send(i, ip, ippkt(ip, 100, 504), t0 + 6, &o), 0);
	take(&i_new, &o, 0);
	CHECK_EQ(deliver(r, &i_new, t0 + 7, &ev, &o), 0);
	CHECK(ev.established);
	CHECK(ev.payload && ev.payload[1] == (uint8_t)(504 * 31 + 1));
	CHECK(ntm_tunnel_index(r) != r_old_idx);
	CHECK(ntm_tunnel_owns_index(r, r_old_idx));
	CHECK_EQ(deliver(r, &conf, t0 + 8, &ev, &o), 0);
	CHECK(!ev.established);
	/* i's old-session packet arrives late at r: still accepted. */
	CHECK_EQ(deliver(r, &i_old, t0 + 9, &ev, &o), 0);
	CHECK(ev.payload && ev.payload[1] == (uint8_t)(502 * 31 + 1));
	/* r now sends on the new session. */
	CHECK_EQ(ntm_tunnel_send(r, ip, ippkt(ip, 100, 505), t0 + 10, &o), 0);
	take(&r_new, &o, 0);
	CHECK_EQ(ntm_msg_receiver_index(r_new.b, r_new.len), ntm_tunnel_index(i));
	CHECK_EQ(deliver(i, &r_new, t0 + 11, &ev, &o), 0);
	CHECK(ev.payload && ev.payload[1] == (uint8_t)(505 * 31 + 1));
	/* Old keys still decrypt, and still refuse replays. */
	r_old3 = r_old2;
	CHECK_EQ(deliver(i, &r_old3, t0 + 12, &ev, &o), NTM_ERR_REPLAY);
	/* r's old keys: 10 s after r confirmed (t0 + 7). */
	CHECK_EQ(ntm_tunnel_deadline(r) <= t0 + 7 + 10000, 1);
	CHECK_EQ(ntm_tunnel_tick(r, t0 + 7 + 9999, &o), 0);
	CHECK(ntm_tunnel_owns_index(r, r_old_idx));
	CHECK_EQ(ntm_tunnel_tick(r, t0 + 7 + 10000, &o), 0);
	CHECK(!ntm_tunnel_owns_index(r, r_old_idx));
	CHECK_EQ(deliver(r, &i_old, t0 + 7 + 10000, &ev, &o), NTM_ERR_STATE);
	/* i's old keys: 10 s after the first DATA on the new ones (t0 + 11). */
	CHECK_EQ(ntm_tunnel_tick(i, t0 + 11 + 9999, &o), 0);
	CHECK(ntm_tunnel_owns_index(i, i_old_idx));
	CHECK_EQ(ntm_tunnel_tick(i, t0 + 11 + 10000, &o), 0);
	CHECK(!ntm_tunnel_owns_index(i, i_old_idx));
	flow(i, r, 600, 1000, t0 + 20000);
	flow(r, i, 601, 1000, t0 + 20000);
	ntm_tunnel_stats(i, &st);
	CHECK_EQ(st.handshakes, 2);
	CHECK_EQ(st.last_handshake, t0 + 4);
	CHECK_EQ(st.dropped, 1);		/* the replay above */
	ntm_tunnel_stats(r, &st);
	CHECK_EQ(st.handshakes, 2);
	CHECK_EQ(st.last_handshake, t0 + 7);
	CHECK_EQ(st.dropped, 1);		/* the expired one */
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

/* The initiator starts a handshake again on a tunnel that is up, long
 * before its rekey (its path moved onto a relay): the old session carries
 * on meanwhile, the new one takes over, and the rekey counts from it. */
TEST(start_again)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r;
	struct pkt init, resp, conf, old;
	struct ntm_tun_stats st;
	uint8_t ip[100];
	uint32_t i_old, r_old;

	i = mk(1, 12, 0, 0, 0);
	r = mk(0, 12, 0, 0, 0);
	handshake(i, r);
	flow(i, r, 1, 60, 5000);
	i_old = ntm_tunnel_index(i);
	r_old = ntm_tunnel_index(r);
	CHECK_EQ(ntm_tunnel_start(r, 6000, &o), NTM_ERR_STATE);	/* responder */
	CHECK_EQ(ntm_tunnel_start(i, 6000, &o), 0);
	CHECK_EQ(o.n, 1);
	take(&init, &o, 0);
	CHECK_EQ(ntm_msg_validate(init.b, init.len), NTM_MSG_HS_INIT);
	CHECK_EQ(state(i), NTM_TUN_UP);
	CHECK_EQ(ntm_tunnel_deadline(i), 7000);		/* the retransmit */
	/* both still send on the old session */
	CHECK_EQ(ntm_tunnel_send(r, ip, ippkt(ip, 60, 2), 6001, &o), 0);
	take(&old, &o, 0);
	CHECK_EQ(ntm_msg_receiver_index(old.b, old.len), i_old);
	flow(i, r, 3, 60, 6001);
	CHECK_EQ(deliver(r, &init, 6002, &ev, &o), 0);
	take(&resp, &o, 0);
	CHECK_EQ(deliver(i, &resp, 6003, &ev, &o), 0);
	CHECK(ev.established);
	take(&conf, &o, 0);
	CHECK(ntm_tunnel_index(i) != i_old);
	CHECK_EQ(deliver(i, &old, 6004, &ev, &o), 0);	/* the old keys still open */
	CHECK(ev.payload != NULL);
	CHECK_EQ(deliver(r, &conf, 6005, &ev, &o), 0);
	CHECK(ev.established);
	CHECK(ntm_tunnel_index(r) != r_old);
	flow(r, i, 4, 60, 6006);
	flow(i, r, 5, 60, 6007);
	/* the next rekey: 120 s after the new session, not the first */
	CHECK_EQ(ntm_tunnel_tick(i, 1002 + 120000, &o), 0);
	CHECK_EQ(o.n, 1);
	CHECK_EQ(ntm_msg_validate(o.buf[0], o.len[0]), NTM_MSG_DATA);	/* a keepalive */
	CHECK_EQ(ntm_tunnel_tick(i, 6003 + 120000, &o), 0);
	CHECK_EQ(ntm_msg_validate(o.buf[0], o.len[0]), NTM_MSG_HS_INIT);
	ntm_tunnel_stats(i, &st);
	CHECK_EQ(st.handshakes, 2);
	CHECK_EQ(st.dropped, 0);
	ntm_tunnel_stats(r, &st);
	CHECK_EQ(st.handshakes, 2);
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

/* Old keys never outlive 3 minutes, even if the new ones are never
 * confirmed by a DATA from the peer. */
TEST(prev_bound)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r;
	struct pkt init, resp;
	uint32_t old;

	i = mk(1, 11, 0, 100000, 0);
	r = mk(0, 11, 0, 100000, 0);
	handshake(i, r);			/* i's session made at 1002 */
	old = ntm_tunnel_index(i);
	CHECK_EQ(ntm_tunnel_tick(i, 101002, &o), 0);	/* rekey + keepalive */
	CHECK_EQ(o.n, 2);
	take(&init, &o, 0);
	CHECK_EQ(ntm_msg_validate(init.b, init.len), NTM_MSG_HS_INIT);
	CHECK_EQ(deliver(r, &init, 101003, &ev, &o), 0);
	take(&resp, &o, 0);
	CHECK_EQ(deliver(i, &resp, 101004, &ev, &o), 0);
	/* Nothing ever comes back on the new session. */
	CHECK_EQ(ntm_tunnel_deadline(i), 111004);	/* keepalive */
	CHECK_EQ(ntm_tunnel_tick(i, 111004, &o), 0);
	CHECK_EQ(ntm_tunnel_tick(i, 121004, &o), 0);
	CHECK_EQ(ntm_tunnel_tick(i, 131004, &o), 0);
	CHECK_EQ(ntm_tunnel_tick(i, 141004, &o), 0);
	CHECK_EQ(ntm_tunnel_tick(i, 151004, &o), 0);
	CHECK_EQ(ntm_tunnel_tick(i, 161004, &o), 0);
	CHECK_EQ(ntm_tunnel_tick(i, 171004, &o), 0);
	CHECK(ntm_tunnel_owns_index(i, old));
	CHECK_EQ(ntm_tunnel_deadline(i), 181002);	/* 1002 + 3 min */
	CHECK_EQ(ntm_tunnel_tick(i, 181002, &o), 0);
	CHECK(!ntm_tunnel_owns_index(i, old));
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

/* rekey_packets: the send that reaches it also starts the handshake. */
TEST(rekey_packets)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r;
	struct pkt init, resp, conf;
	uint8_t ip[40];

	i = mk(1, 12, 0, 0, 4);
	r = mk(0, 12, 0, 0, 4);
	handshake(i, r);			/* counter 0: the confirming DATA */
	for (int k = 1; k <= 2; k++)
		flow(i, r, k, 40, 1010);
	CHECK_EQ(ntm_tunnel_send(i, ip, ippkt(ip, 40, 3), 1011, &o), 0);
	CHECK_EQ(o.n, 2);
	CHECK_EQ(ntm_msg_validate(o.buf[0], o.len[0]), NTM_MSG_DATA);
	CHECK_EQ(ntm_msg_validate(o.buf[1], o.len[1]), NTM_MSG_HS_INIT);
	take(&init, &o, 1);
	/* The next send does not start another one. */
	flow(i, r, 4, 40, 1012);
	CHECK_EQ(deliver(r, &init, 1013, &ev, &o), 0);
	take(&resp, &o, 0);
	CHECK_EQ(deliver(i, &resp, 1014, &ev, &o), 0);
	take(&conf, &o, 0);
	CHECK_EQ(deliver(r, &conf, 1015, &ev, &o), 0);
	CHECK(ev.established);
	flow(r, i, 5, 40, 1016);
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

/* Messages for the other role, and the routing helpers. */
TEST(roles)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i, *r, *i2;
	struct pkt init, resp;
	uint8_t junk[8] = { 6, 1, 0, 0 };

	i = mk(1, 13, 0, 0, 0);
	i2 = mk(1, 13, 0, 0, 0);
	r = mk(0, 13, 0, 0, 0);
	CHECK_EQ(ntm_tunnel_start(i, 1000, &o), 0);
	take(&init, &o, 0);
	CHECK_EQ(deliver(i2, &init, 1001, &ev, &o), NTM_ERR_STATE);	/* not a responder */
	CHECK_EQ(deliver(r, &init, 1001, &ev, &o), 0);
	take(&resp, &o, 0);
	CHECK_EQ(deliver(r, &resp, 1002, &ev, &o), NTM_ERR_STATE);	/* not an initiator */
	CHECK_EQ(deliver(i2, &resp, 1002, &ev, &o), NTM_ERR_STATE);	/* no attempt */
	CHECK_EQ(ntm_msg_receiver_index(init.b, init.len), 0);
	CHECK(ntm_msg_tunnel_id(resp.b, resp.len) == NULL);
	CHECK(ntm_msg_tunnel_id(init.b, 10) == NULL);
	CHECK_EQ(ntm_msg_receiver_index(junk, sizeof(junk)), 0);
	CHECK(!ntm_tunnel_owns_index(i, 0));
	ntm_tunnel_free(i);
	ntm_tunnel_free(i2);
	ntm_tunnel_free(r);
}


/* BLAKE2b-256 keyed with key over label || a || b || c || d || e (NULL ends). */
static void
h256(uint8_t out[32], const uint8_t key[32], const char *label, const uint8_t *a,
    size_t alen, const uint8_t *b, size_t blen, const uint8_t *c, size_t clen,
    const uint8_t *d, size_t dlen, const uint8_t *e, size_t elen)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, key, 32, 32);
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
	if (a) crypto_generichash_update(&st, a, alen);
	if (b) crypto_generichash_update(&st, b, blen);
	if (c) crypto_generichash_update(&st, c, clen);
	if (d) crypto_generichash_update(&st, d, dlen);
	if (e) crypto_generichash_update(&st, e, elen);
	crypto_generichash_final(&st, out, 32);
}

/* The wire format is what docs/protocol.md §4.3 says: play the responder
 * with libsodium directly, independently of tunnel.c. */
TEST(wire_format)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i;
	crypto_generichash_state st;
	uint8_t K[32], mk_[32], mac[16], rpub[32], rsk[32], okm[64];
	uint8_t si_sk[32], si[32], sr_sk[32], sr[32], ss[32], es[32], ee[32], se[32];
	uint8_t ck0[32], ck1[32], k1[32], ck2[32], k2[32], ts[8];
	uint8_t nonce[12] = { 0 }, plain[64];
	unsigned long long clen, mlen;
	struct pkt init, resp, conf, d;

	i = mk(1, 0x21, 0, 0, 0);
	memset(K, 0x21, sizeof(K));
	memset(si_sk, SK_I, 32);
	memset(sr_sk, SK_R, 32);
	CHECK_EQ(crypto_scalarmult_base(si, si_sk), 0);
	CHECK_EQ(crypto_scalarmult_base(sr, sr_sk), 0);
	CHECK_EQ(ntm_tunnel_start(i, 1000, &o), 0);
	take(&init, &o, 0);
	CHECK_EQ(init.len, 96);
	CHECK(init.b[0] == 4 && init.b[1] == 2 && init.b[2] == 0 && init.b[3] == 0);
	CHECK(memcmp(init.b + 8, TID, 16) == 0);
	crypto_generichash(mk_, 32, (const uint8_t *)"ntm hs mac", 10, K, 32);
	crypto_generichash(mac, 16, init.b, 80, mk_, 32);
	CHECK(memcmp(mac, init.b + 80, 16) == 0);

	/* The chain, as the responder computes it. */
	CHECK_EQ(crypto_scalarmult(ss, sr_sk, si), 0);
	h256(ck0, K, "ntm tunnel v2", TID, 16, si, 32, sr, 32, ss, 32, NULL, 0);
	CHECK_EQ(crypto_scalarmult(es, sr_sk, init.b + 24), 0);
	h256(ck1, ck0, "ck1", init.b + 24, 32, es, 32, NULL, 0, NULL, 0, NULL, 0);
	h256(k1, ck1, "k1", NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
	CHECK_EQ(crypto_aead_chacha20poly1305_ietf_decrypt(ts, &mlen, NULL, init.b + 56,
	    24, init.b, 56, nonce, k1), 0);
	CHECK_EQ(mlen, 8);
	CHECK_EQ(ts[6], 1000 >> 8);		/* timestamp 1000, big-endian */
	CHECK_EQ(ts[7], 1000 & 0xff);

	crypto_box_keypair(rpub, rsk);
	CHECK_EQ(crypto_scalarmult(ee, rsk, init.b + 24), 0);
	CHECK_EQ(crypto_scalarmult(se, rsk, si), 0);
	h256(ck2, ck1, "ck2", init.b, 96, rpub, 32, ee, 32, se, 32, NULL, 0);
	h256(k2, ck2, "k2", NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
	crypto_generichash(okm, 64, (const uint8_t *)"ntm tunnel keys", 15, ck2, 32);
	memset(resp.b, 0, sizeof(resp.b));
	ntm_msg_header(resp.b, NTM_MSG_HS_RESP);
	resp.b[4] = 1; resp.b[5] = 2; resp.b[6] = 3; resp.b[7] = 4;
	memcpy(resp.b + 8, init.b + 4, 4);
	memcpy(resp.b + 12, rpub, 32);
	crypto_aead_chacha20poly1305_ietf_encrypt(resp.b + 44, &clen, NULL, 0, resp.b, 44,
	    NULL, nonce, k2);
	CHECK_EQ(clen, 16);
	crypto_generichash_init(&st, mk_, 32, 16);
	crypto_generichash_update(&st, resp.b, 60);
	crypto_generichash_update(&st, init.b + 80, 16);
	crypto_generichash_final(&st, resp.b + 60, 16);
	resp.len = 76;
	CHECK_EQ(deliver(i, &resp, 1001, &ev, &o), 0);
	CHECK(ev.established);
	take(&conf, &o, 0);

	/* The confirming DATA: to index 0x01020304, counter 0, empty. */
	CHECK_EQ(conf.len, 32);
	CHECK(conf.b[0] == 6 && conf.b[4] == 1 && conf.b[7] == 4);
	for (int k = 8; k < 16; k++)
		CHECK_EQ(conf.b[k], 0);
	CHECK_EQ(crypto_aead_chacha20poly1305_ietf_decrypt(plain, &mlen, NULL, conf.b + 16,
	    16, conf.b, 16, nonce, okm), 0);
	CHECK_EQ(mlen, 0);

	/* Our DATA, counter 258: nonce 4 zero bytes || counter little-endian. */
	memset(d.b, 0, sizeof(d.b));
	ntm_msg_header(d.b, NTM_MSG_DATA);
	memcpy(d.b + 4, init.b + 4, 4);
	d.b[14] = 1; d.b[15] = 2;
	nonce[4] = 2; nonce[5] = 1;
	memset(plain, 0x77, sizeof(plain));
	plain[0] = 0x60;
	crypto_aead_chacha20poly1305_ietf_encrypt(d.b + 16, &clen, plain, sizeof(plain),
	    d.b, 16, NULL, nonce, okm + 32);
	d.len = 16 + (size_t)clen;
	CHECK_EQ(deliver(i, &d, 1002, &ev, &o), 0);
	CHECK_EQ(ev.len, sizeof(plain));
	CHECK(ev.payload && memcmp(ev.payload, plain, sizeof(plain)) == 0);
	/* Authentic, but not an IP packet: dropped. */
	plain[0] = 0x10;
	d.b[15] = 3;
	nonce[4] = 3;
	crypto_aead_chacha20poly1305_ietf_encrypt(d.b + 16, &clen, plain, sizeof(plain),
	    d.b, 16, NULL, nonce, okm + 32);
	CHECK_EQ(deliver(i, &d, 1003, &ev, &o), NTM_ERR_PROTO);
	CHECK(ev.payload == NULL);
	CHECK(ev.authentic);			/* the endpoint may still move */
	sodium_memzero(okm, sizeof(okm));
	ntm_tunnel_free(i);
}

/* A party with K but another static key (a DC in the middle): the
 * responder refuses its HS_INIT, the initiator its HS_RESP, each with
 * NTM_ERR_IDENTITY, counted; the initiator gives up at once. */
TEST(identity)
{
	static struct ntm_tun_out o, o2;
	struct ntm_tun_event ev;
	struct ntm_tunnel_cfg cfg;
	struct ntm_tunnel *i, *r, *mitm;
	struct ntm_tun_stats st;
	struct pkt init, resp;
	uint8_t K[32], mk_[32], esk[32];
	crypto_generichash_state cs;

	/* The DC swapped the responder's certificate: the initiator expects
	 * the key of 0x33, the real responder holds 0x22. */
	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.tunnel_id, TID, sizeof(TID));
	memset(cfg.temporal_key, 5, sizeof(cfg.temporal_key));
	statics(&cfg, SK_I, 0x33);
	cfg.initiator = 1;
	CHECK((i = ntm_tunnel_new(&cfg, 1000)) != NULL);
	r = mk(0, 5, 0, 0, 0);
	CHECK_EQ(ntm_tunnel_start(i, 1000, &o), 0);
	take(&init, &o, 0);
	CHECK_EQ(deliver(r, &init, 1001, &ev, &o2), NTM_ERR_IDENTITY);
	CHECK_EQ(o2.n, 0);
	CHECK(!ev.authentic);
	ntm_tunnel_stats(r, &st);
	CHECK_EQ(st.identity_failures, 1);
	CHECK_EQ(st.last_error, NTM_ERR_IDENTITY);
	CHECK_EQ(st.state, NTM_TUN_NEW);

	/* The party in the middle holds K and its own key 0x33, and believes
	 * the initiator's key: it cannot open the real initiator's HS_INIT... */
	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.tunnel_id, TID, sizeof(TID));
	memset(cfg.temporal_key, 5, sizeof(cfg.temporal_key));
	statics(&cfg, 0x33, SK_I);
	cfg.initiator = 0;
	CHECK((mitm = ntm_tunnel_new(&cfg, 1000)) != NULL);
	ntm_tunnel_free(i);
	i = mk(1, 5, 0, 0, 0);
	CHECK_EQ(ntm_tunnel_start(i, 2000, &o), 0);
	take(&init, &o, 0);
	CHECK_EQ(deliver(mitm, &init, 2001, &ev, &o2), NTM_ERR_IDENTITY);
	/* ... and an HS_RESP it makes with K alone (right MAC, no valid tag)
	 * is refused by the initiator, which stops there. */
	memset(K, 5, sizeof(K));
	crypto_generichash(mk_, 32, (const uint8_t *)"ntm hs mac", 10, K, 32);
	memset(resp.b, 0x5a, sizeof(resp.b));
	ntm_msg_header(resp.b, NTM_MSG_HS_RESP);
	memcpy(resp.b + 8, init.b + 4, 4);
	crypto_box_keypair(resp.b + 12, esk);
	crypto_generichash_init(&cs, mk_, 32, 16);
	crypto_generichash_update(&cs, resp.b, 60);
	crypto_generichash_update(&cs, init.b + 80, 16);
	crypto_generichash_final(&cs, resp.b + 60, 16);
	resp.len = 76;
	CHECK_EQ(deliver(i, &resp, 2002, &ev, &o), NTM_ERR_IDENTITY);
	CHECK(!ev.established);
	CHECK_EQ(o.n, 0);
	ntm_tunnel_stats(i, &st);
	CHECK_EQ(st.state, NTM_TUN_DEAD);
	CHECK_EQ(st.identity_failures, 1);
	CHECK_EQ(ntm_tunnel_send(i, NULL, 0, 2003, &o), NTM_ERR_STATE);
	/* The real pair, with the right keys, still gets through. */
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
	i = mk(1, 5, 0, 0, 0);
	r = mk(0, 5, 0, 0, 0);
	handshake(i, r);
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
	ntm_tunnel_free(mitm);
}

/* Handshake cost: a timing loop, printed (never asserted). */
TEST(handshake_cost)
{
	static struct ntm_tun_out o, o2, o3;
	struct ntm_tun_event ev;
	struct ntm_tunnel *i = mk(1, 9, 0, 0, 0), *r = mk(0, 9, 0, 0, 0);
	struct timespec a, b;
	double ti = 0, tr = 0;
	int n = 200;

	for (int k = 0; k < n; k++) {
		int64_t now = 1000 + 10 * k;

		clock_gettime(CLOCK_MONOTONIC, &a);
		CHECK_EQ(ntm_tunnel_start(i, now, &o), 0);
		clock_gettime(CLOCK_MONOTONIC, &b);
		ti += (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
		CHECK_EQ(ntm_tunnel_recv(r, o.buf[0], o.len[0], now + 1, &ev, &o2), 0);
		clock_gettime(CLOCK_MONOTONIC, &a);
		tr += (a.tv_sec - b.tv_sec) * 1e6 + (a.tv_nsec - b.tv_nsec) / 1e3;
		CHECK_EQ(ntm_tunnel_recv(i, o2.buf[0], o2.len[0], now + 2, &ev, &o3), 0);
		clock_gettime(CLOCK_MONOTONIC, &b);
		ti += (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
		CHECK(ev.established);
		CHECK_EQ(ntm_tunnel_recv(r, o3.buf[0], o3.len[0], now + 3, &ev, &o2), 0);
	}
	fprintf(stderr, "handshake cost: initiator %.1f us, responder %.1f us "
	    "(mean of %d)\n", ti / n, tr / n, n);
	ntm_tunnel_free(i);
	ntm_tunnel_free(r);
}

UNIT_MAIN(T(handshake_and_data), T(identity), T(handshake_cost), T(bad_args), T(tamper), T(lengths), T(replay),
    T(wrong_key), T(resp_binding), T(retransmit), T(keepalive), T(keepalive_set), T(rekey), T(start_again),
    T(prev_bound), T(rekey_packets), T(roles), T(wire_format))
