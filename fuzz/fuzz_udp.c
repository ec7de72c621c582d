/*
 * fuzz_udp.c - libFuzzer harness for everything a peer can send over UDP
 * to the registration channel and the tunnel core: ntm_msg_validate, the
 * REG_REQ / REG_RESP / NUDGE / MOVED openers with a fixed channel, and
 * the DC's registration decision on what a REG_REQ opens to (twice, the
 * second time from what the first kept), ntm_tunnel_recv on a responder and an initiator (one waiting for its
 * HS_RESP, one pair already up). Each datagram is fed as is, then with its
 * session id / tunnel id / receiver index patched to ours so that the
 * checks behind the routing step (MACs, windows, AEAD, payload parsing)
 * are reached too. Must never crash; nothing forged may authenticate.
 *
 * The handshake proves the device keys behind an outer MAC keyed by the
 * temporal key K (protocol §4.3). The fuzz K is public here, so each
 * HS_INIT / HS_RESP is also fed with its MAC made good with K (what a DC
 * in the middle can do), to a fresh responder and to a fresh initiator
 * whose attempt it answers: the AEAD behind the MAC is reached, and a
 * failure there must be NTM_ERR_IDENTITY, counted, with nothing sent (an
 * initiator then DEAD). The seeds (fuzz/corpus/udp) are made with the
 * harness's keys, device keys 0x51 / 0x52 included.
 *
 * The reflection probe (probe.h) too: the server's answer to any datagram
 * is never longer than it, and only a PROBE gets one; the client's opener
 * takes any bytes. And the hole punching probe (punch.h): what opens with
 * the punch key made of K is exactly what ntm_punch_make makes of the
 * fields it opens to; a 48-byte datagram is fed again with its MAC made
 * good, so the checks behind the MAC are reached.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dcreg.h"
#include "probe.h"
#include "punch.h"
#include "reg.h"
#include "tunnel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fixed material; the seed corpus (fuzz/corpus/udp) is sealed with it. */
static const uint8_t SID[NTM_SID_LEN] = "fuzz-session-id";
static const uint8_t TID[NTM_TUNNEL_ID_LEN] = "fuzz-tunnel-id!";
#define CKEY	0xc1		/* client tx == DC rx */
#define DKEY	0xd2		/* DC tx == client rx */
#define TKEY	0x4b		/* temporal key */
#define SKEY_I	0x51		/* the initiator device's static secret */
#define SKEY_R	0x52		/* the responder device's */
#define NOW	5000

static struct ntm_chan dc_chan, cl_chan;
static struct ntm_tunnel *init_wait;	/* initiator waiting for HS_RESP */
static struct ntm_tunnel *up_i, *up_r;	/* an established pair */
static uint32_t wait_index;

static struct ntm_tunnel *
mk(int initiator)
{
	struct ntm_tunnel_cfg cfg;
	struct ntm_tunnel *t;
	uint8_t psk[32];

	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.tunnel_id, TID, sizeof(TID));
	memset(cfg.temporal_key, TKEY, sizeof(cfg.temporal_key));
	memset(cfg.static_sk, initiator ? SKEY_I : SKEY_R, sizeof(cfg.static_sk));
	memset(psk, initiator ? SKEY_R : SKEY_I, sizeof(psk));
	if (crypto_scalarmult_base(cfg.peer_static, psk) != 0)
		abort();
	cfg.initiator = initiator;
	if ((t = ntm_tunnel_new(&cfg, 1000)) == NULL)
		abort();
	return t;
}

static void
setup(void)
{
	static struct ntm_tun_out o, o2;
	struct ntm_tun_event ev;
	uint8_t c[NTM_KEY_LEN], d[NTM_KEY_LEN];

	if (sodium_init() < 0)
		abort();
	memset(c, CKEY, sizeof(c));
	memset(d, DKEY, sizeof(d));
	ntm_chan_init(&dc_chan, SID, d, c);
	ntm_chan_init(&cl_chan, SID, c, d);

	init_wait = mk(1);
	if (ntm_tunnel_start(init_wait, 1000, &o) != 0 || o.n != 1)
		abort();
	wait_index = (uint32_t)o.buf[0][4] << 24 | (uint32_t)o.buf[0][5] << 16 |
	    (uint32_t)o.buf[0][6] << 8 | o.buf[0][7];

	up_i = mk(1);
	up_r = mk(0);
	if (ntm_tunnel_start(up_i, 1000, &o) != 0 ||
	    ntm_tunnel_recv(up_r, o.buf[0], o.len[0], 1001, &ev, &o2) != 0 ||
	    ntm_tunnel_recv(up_i, o2.buf[0], o2.len[0], 1002, &ev, &o) != 0 ||
	    ntm_tunnel_recv(up_r, o.buf[0], o.len[0], 1003, &ev, &o2) != 0)
		abort();
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
reg(const uint8_t *p, size_t n)
{
	struct ntm_chan dc = dc_chan, cl = cl_chan;	/* fresh windows */
	struct ntm_reg_req rq;
	struct ntm_reg_resp rs;
	struct ntm_nudge nu;
	struct ntm_moved mv;

	if (ntm_reg_req_open(&dc, p, n, &rq) == 0) {
		struct ntm_dcreg st;
		struct ntm_dcreg_act act;
		struct sockaddr_storage from;

		if (rq.naddrs < 0 || rq.naddrs > NTM_REG_ADDRS)
			abort();
		memset(&st, 0, sizeof(st));
		memset(&from, 0, sizeof(from));
		from.ss_family = AF_INET;
		for (int i = 0; i < 2; i++) {
			if (ntm_dcreg_decide(&st, &rq, &from, sizeof(struct sockaddr_in),
			    NOW + i, 25, 3, &st, &act) < 0 ||
			    st.loc.nlocals > NTM_REG_ADDRS ||
			    (act.answer && act.echo != rq.ctr) ||
			    (act.verdict == NTM_DCREG_GOODBYE && st.has_loc))
				abort();
		}
	}
	if (ntm_reg_resp_open(&cl, p, n, &rs) == 0 &&
	    ntm_reg_resp_open(&cl, p, n, &rs) != NTM_ERR_REPLAY)
		abort();
	if (ntm_nudge_open(&cl, p, n, &nu) == 0 && nu.kind != NTM_NUDGE_DIRECTION)
		abort();
	if (ntm_moved_open(&cl, p, n, &mv) == 0 && mv.endpoint.ss_family != AF_INET &&
	    mv.endpoint.ss_family != AF_INET6)
		abort();
	(void)ntm_reg_sid(p, n);
}

/* Feeds a copy of p to t; checks the event is consistent. The long-lived
 * tunnels hold keys from random ephemerals: nothing may authenticate. */
static void
tun(struct ntm_tunnel *t, const uint8_t *p, size_t n, uint8_t *scratch)
{
	static struct ntm_tun_out o;
	struct ntm_tun_event ev;
	int r;

	memcpy(scratch, p, n);
	r = ntm_tunnel_recv(t, scratch, n, NOW, &ev, &o);
	if (r < 0 && (ev.payload != NULL || o.n != 0))
		abort();
	if (ev.payload != NULL && (ev.payload < scratch || ev.payload + ev.len > scratch + n))
		abort();
	if ((t == init_wait || t == up_i || t == up_r) && (ev.authentic || r == 0))
		abort();
	(void)ntm_tunnel_deadline(t);
	(void)ntm_msg_receiver_index(p, n);
	(void)ntm_msg_tunnel_id(p, n);
}

/* A responder that saw nothing yet, made for each input: an HS_INIT
 * sealed with the (public) fuzz key does authenticate and would change
 * the state of a long-lived one. */
static void
fresh_responder(const uint8_t *p, size_t n, uint8_t *scratch)
{
	struct ntm_tunnel *r = mk(0);

	tun(r, p, n, scratch);
	ntm_tunnel_free(r);
}

static void
all_tunnels(const uint8_t *p, size_t n, int type, uint8_t *scratch)
{
	fresh_responder(p, n, scratch);
	tun(init_wait, p, n, scratch);
	tun(up_i, p, n, scratch);
	if (type != NTM_MSG_HS_INIT)
		tun(up_r, p, n, scratch);
}

/* mac_key of the fuzz K, and mac(a || b) with it into out. */
static void
kmac(uint8_t out[NTM_MAC_LEN], const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	static const uint8_t mk_label[] = "ntm hs mac";
	crypto_generichash_state st;
	uint8_t k[NTM_KEY_LEN], mk[32];

	memset(k, TKEY, sizeof(k));
	crypto_generichash(mk, sizeof(mk), mk_label, sizeof(mk_label) - 1, k, sizeof(k));
	crypto_generichash_init(&st, mk, sizeof(mk), NTM_MAC_LEN);
	crypto_generichash_update(&st, a, alen);
	if (blen)
		crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, out, NTM_MAC_LEN);
}

/* The checks on a handshake message whose MAC was made with K. */
static void
check_k_only(struct ntm_tunnel *t, int r, const struct ntm_tun_event *ev,
    const struct ntm_tun_out *o, int initiator)
{
	struct ntm_tun_stats st;

	ntm_tunnel_stats(t, &st);
	if (r == NTM_ERR_IDENTITY && (o->n != 0 || ev->authentic || ev->established ||
	    st.identity_failures != 1 || (initiator && st.state != NTM_TUN_DEAD)))
		abort();
	if (r != NTM_ERR_IDENTITY && st.identity_failures != 0)
		abort();
	/* Without the responder's secrets no HS_RESP can carry a good tag. */
	if (initiator && (r == 0 || ev->established))
		abort();
}

/* The HS_INIT p (validated, NTM_HS_INIT_LEN) with a good MAC, to a fresh
 * responder; the HS_RESP p with a good MAC to a fresh initiator. */
static void
k_only(uint8_t *p, size_t n, int type, uint8_t *scratch)
{
	static struct ntm_tun_out o, o2;
	struct ntm_tun_event ev;
	struct ntm_tunnel *t;
	int r;

	if (type == NTM_MSG_HS_INIT) {
		memcpy(p + 8, TID, NTM_TUNNEL_ID_LEN);
		kmac(p + 80, p, 80, NULL, 0);
		t = mk(0);
		memcpy(scratch, p, n);
		r = ntm_tunnel_recv(t, scratch, n, NOW, &ev, &o);
		check_k_only(t, r, &ev, &o, 0);
		ntm_tunnel_free(t);
	} else if (type == NTM_MSG_HS_RESP) {
		t = mk(1);
		if (ntm_tunnel_start(t, 1000, &o2) != 0 || o2.n != 1)
			abort();
		memcpy(p + 8, o2.buf[0] + 4, 4);		/* our attempt's index */
		kmac(p + 60, p, 60, o2.buf[0] + 80, NTM_MAC_LEN);
		memcpy(scratch, p, n);
		r = ntm_tunnel_recv(t, scratch, n, NOW, &ev, &o);
		check_k_only(t, r, &ev, &o, 1);
		ntm_tunnel_free(t);
	}
}

static void
probe(const uint8_t *p, size_t n)
{
	static struct ntm_probe_srv *srv;
	static const uint8_t key[16], txid[NTM_PROBE_TXID_LEN];
	struct sockaddr_in from = { .sin_family = AF_INET, .sin_port = htons(4242),
	    .sin_addr.s_addr = htonl(0xc6120201) };
	struct sockaddr_storage seen;
	socklen_t seenlen;
	uint8_t out[NTM_UDP_MAX];
	size_t len;

	if (srv == NULL && (srv = ntm_probe_srv_new(1e9, 1e9, 1e9, key)) == NULL)
		abort();
	len = ntm_probe_srv_input(srv, p, n, (struct sockaddr *)&from, sizeof(from), 1, out,
	    sizeof(out));
	if (len > n || (len > 0 && ntm_msg_validate(p, n) != NTM_MSG_PROBE))
		abort();
	if (len > 0 && (ntm_probe_resp_open(out, len, p + NTM_HDR_LEN, &seen, &seenlen) != 0 ||
	    !ntm_sa_equal((struct sockaddr *)&seen, (struct sockaddr *)&from)))
		abort();
	(void)ntm_probe_resp_open(p, n, txid, &seen, &seenlen);

	/* With an other port and an other address: one answer, never longer,
	 * that opens as the answer to a probe with flags; from the other
	 * address only when it asked. */
	{
		struct sockaddr_in other = { .sin_family = AF_INET, .sin_port = htons(50000),
		    .sin_addr.s_addr = htonl(0xc6120006) };
		struct sockaddr_storage oa;
		struct ntm_filt_test t;
		uint16_t oport;
		uint8_t flags;
		int alt;

		len = ntm_probe_srv_answer_addr(srv, p, n, (struct sockaddr *)&from, sizeof(from),
		    1, 3479, (struct sockaddr *)&other, out, sizeof(out), &alt);
		if (len > n || (alt == NTM_PROBE_ALT_ADDR &&
		    (p[NTM_HDR_LEN + NTM_PROBE_TXID_LEN] & (NTM_PROBE_F_CHANGE | NTM_PROBE_F_ADDR)) !=
		    (NTM_PROBE_F_CHANGE | NTM_PROBE_F_ADDR)))
			abort();
		if (len > 0 && (p[NTM_HDR_LEN + NTM_PROBE_TXID_LEN] & NTM_PROBE_F_ADDR) &&
		    ntm_probe_resp_open_addr(out, len, p + NTM_HDR_LEN, &seen, &seenlen, &flags,
		    &oport, &oa) != 0)
			abort();
		(void)ntm_probe_resp_open_addr(p, n, txid, &seen, &seenlen, &flags, &oport, &oa);
		/* The client side of the test takes any bytes from anywhere. */
		ntm_filt_start(&t, (struct sockaddr *)&other);
		{
			uint8_t q[NTM_FILT_PER_ROUND][NTM_PROBE_LEN];

			(void)ntm_filt_round(&t, q);
		}
		(void)ntm_filt_input(&t, p, n, (struct sockaddr *)&from, sizeof(from));
		(void)ntm_filt_input(&t, p, n, (struct sockaddr *)&other, sizeof(other));
		(void)ntm_filt_verdict(&t, NTM_NAT_EI);
	}
}

static void
punch_one(const uint8_t *p, size_t n, const uint8_t key[NTM_KEY_LEN])
{
	uint8_t txid[NTM_PUNCH_TXID_LEN], again[NTM_PUNCH_LEN];
	int kind, ini;

	if (ntm_punch_open(p, n, key, &kind, &ini, txid) != 0)
		return;
	if (n != NTM_PUNCH_LEN || ntm_punch_tunnel_id(p, n) == NULL ||
	    ntm_punch_make(again, ntm_punch_tunnel_id(p, n), kind, ini, txid, key) !=
	    NTM_PUNCH_LEN || memcmp(again, p, NTM_PUNCH_LEN) != 0)
		abort();
}

static void
punch(const uint8_t *p, size_t n)
{
	uint8_t k[NTM_KEY_LEN], key[NTM_KEY_LEN], m[NTM_PUNCH_LEN];

	memset(k, TKEY, sizeof(k));
	ntm_punch_key(key, k);
	punch_one(p, n, key);
	if (n != NTM_PUNCH_LEN)
		return;
	memcpy(m, p, n);
	crypto_generichash(m + n - NTM_MAC_LEN, NTM_MAC_LEN, m, n - NTM_MAC_LEN, key,
	    sizeof(key));
	punch_one(m, n, key);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	uint8_t *p, *scratch;
	int type;

	if (!ready) {
		setup();
		ready = 1;
	}
	type = ntm_msg_validate(data, size);
	if (type >= 0 && (size < NTM_HDR_LEN || data[0] != type || data[1] != NTM_UDP_VERSION))
		abort();
	if ((p = malloc(size + 1)) == NULL || (scratch = malloc(size + 1)) == NULL) {
		free(p);
		return 0;
	}
	memcpy(p, data, size);

	reg(p, size);
	all_tunnels(p, size, type, scratch);
	probe(data, size);
	punch(data, size);

	/* Again, addressed to us. */
	if (size >= NTM_SEALED_HDR && (type == NTM_MSG_REG_REQ || type == NTM_MSG_REG_RESP ||
	    type == NTM_MSG_NUDGE || type == NTM_MSG_MOVED)) {
		memcpy(p + NTM_HDR_LEN, SID, NTM_SID_LEN);
		reg(p, size);
	}
	if (type == NTM_MSG_HS_INIT) {
		memcpy(p + 8, TID, NTM_TUNNEL_ID_LEN);
		fresh_responder(p, size, scratch);
	} else if (type == NTM_MSG_HS_RESP) {
		put_be32(p + 8, wait_index);
		tun(init_wait, p, size, scratch);
	} else if (type == NTM_MSG_DATA) {
		put_be32(p + 4, ntm_tunnel_index(up_r));
		tun(up_r, p, size, scratch);
		put_be32(p + 4, ntm_tunnel_index(up_i));
		tun(up_i, p, size, scratch);
	}
	/* And made good with K, as a DC in the middle could. */
	if (type == NTM_MSG_HS_INIT || type == NTM_MSG_HS_RESP)
		k_only(p, size, type, scratch);
	free(scratch);
	free(p);
	return 0;
}
