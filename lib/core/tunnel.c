/*
 * tunnel.c - the end-to-end tunnel core (HS_INIT, HS_RESP, DATA;
 * docs/protocol.md §4.3), WireGuard-like. I/O free and clock free.
 *
 * Sessions. Each end holds up to three:
 *   cur   the one we send on;
 *   prev  the one cur replaced, kept for decryption only, until 3 minutes
 *         after it was made or 10 s after cur was confirmed (first DATA
 *         received on cur), whichever comes first;
 *   next  responder only: keys made by an HS_INIT but not yet confirmed by
 *         the initiator's first DATA on them. The responder never sends on
 *         next; the first DATA received on it promotes it to cur.
 * The initiator's pending handshake (hs) holds its ephemeral secret until
 * the HS_RESP for the latest HS_INIT comes back (then it becomes cur at
 * once) or until 5 tries are unanswered (then the tunnel is DEAD).
 *
 * The handshake (protocol §4.3) has the shape of Noise KK with the temporal
 * key K as a pre-shared key: each end knows its own static X25519 key s and
 * the peer device's S (from its AS certificate). A chaining key mixes, in
 * order, K, the tunnel id, both static keys and DH(s_i, S_r); then
 * DH(e_i, S_r) (HS_INIT's sealed timestamp proves the initiator's static
 * key); then the whole HS_INIT, e_r, DH(e_r, e_i) and DH(e_r, S_i)
 * (HS_RESP's tag proves the responder's). The session keys come from the
 * last chaining key, so they need K, one static secret and one ephemeral
 * secret. The outer MAC keyed by K alone is checked first: a message that
 * passes it but not the AEAD was made by a holder of K without the
 * device's key (NTM_ERR_IDENTITY), such as a DC in the middle.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bytes.h"
#include "tunnel.h"

#define HS_TRIES		5		/* HS_INIT sends per attempt */
#define HS_RETRY_MS		1000		/* 1 s, 2 s, 4 s, 8 s, 16 s */
#define REJECT_AFTER_MS		180000		/* old keys live at most 3 min */
#define PREV_GRACE_MS		10000		/* ... or 10 s after cur confirmed */
#define CTR_LIMIT		(UINT64_MAX - 0xffffULL)	/* 2^64 - 2^16 */
#define DEF_KEEPALIVE_MS	10000
#define DEF_REKEY_MS		120000
#define DEF_REKEY_PACKETS	(1ULL << 48)

static const char CK_LABEL[] = "ntm tunnel v2";
static const char MAC_LABEL[] = "ntm hs mac";

/* Byte offsets. */
#define INIT_SENDER	4
#define INIT_TID	8
#define INIT_EPH	24
#define INIT_TS		56		/* 8-byte timestamp + tag, sealed */
#define INIT_MAC	80
#define RESP_SENDER	4
#define RESP_RECEIVER	8
#define RESP_EPH	12
#define RESP_TAG	44		/* AEAD tag over nothing */
#define RESP_MAC	60
#define DATA_RECEIVER	4
#define DATA_CTR	8

struct session {
	int			valid;
	int			confirmed;	/* a DATA was received on it */
	uint32_t		local, remote;	/* receiver indices: ours, peer's */
	uint8_t			tx[NTM_KEY_LEN], rx[NTM_KEY_LEN];
	uint64_t		send_ctr;	/* next counter to send */
	struct ntm_window	win;
	int64_t			created;
	int64_t			expires;	/* prev only; INT64_MAX: none */
};

struct handshake {
	int			active;
	int			tries;		/* HS_INITs sent in this attempt */
	int64_t			next;		/* retransmit or give up at */
	uint32_t		local;
	uint8_t			eph_pub[32], eph_sk[32];
	uint8_t			init_mac[NTM_MAC_LEN];
	uint8_t			ck1[32];		/* after DH(e_i, S_r) */
	uint8_t			init[NTM_HS_INIT_LEN];	/* as sent */
};

struct ntm_tunnel {
	struct ntm_tunnel_cfg	cfg;
	uint8_t			mac_key[32];
	uint8_t			static_pk[32];
	uint8_t			ck0[32];	/* K, tunnel id, S_i, S_r, DH(s_i, S_r) */
	enum ntm_tun_state	state;
	struct session		cur, prev, next;
	struct handshake	hs;
	uint64_t		last_ts;	/* HS_INIT timestamp last sent / accepted */
	int64_t			last_tx;	/* last DATA sent */
	struct ntm_tun_stats	st;
};

/* ---- small helpers ------------------------------------------------------ */

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* a + b without overflow past INT64_MAX. */
static int64_t
add64(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static void
session_wipe(struct session *s)
{
	sodium_memzero(s, sizeof(*s));
}

/* Moves *from into *to (wiping what *to held and then *from). */
static void
session_move(struct session *to, struct session *from)
{
	session_wipe(to);
	memcpy(to, from, sizeof(*to));
	session_wipe(from);
}

static void
hs_wipe(struct handshake *h)
{
	sodium_memzero(h, sizeof(*h));
}

static void
set_state(struct ntm_tunnel *t, enum ntm_tun_state s)
{
	t->state = s;
}

/* A fresh random receiver index, non-zero and unlike any we hold. */
static uint32_t
fresh_index(const struct ntm_tunnel *t)
{
	uint32_t i;

	do {
		i = randombytes_random();
	} while (i == 0 || ntm_tunnel_owns_index(t, i));
	return i;
}

/* BLAKE2b-128 keyed with mac_key over a || b (b may be empty). */
static void
hs_mac(const struct ntm_tunnel *t, uint8_t mac[NTM_MAC_LEN], const uint8_t *a,
    size_t alen, const uint8_t *b, size_t blen)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, t->mac_key, sizeof(t->mac_key), NTM_MAC_LEN);
	crypto_generichash_update(&st, a, alen);
	if (blen)
		crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, mac, NTM_MAC_LEN);
	sodium_memzero(&st, sizeof(st));
}

/* out = BLAKE2b-256 keyed with ck over label || parts (NULL-ended pairs). */
static void
mix(uint8_t out[32], const uint8_t ck[32], const char *label, ...)
{
	crypto_generichash_state st;
	const uint8_t *p;
	va_list ap;

	crypto_generichash_init(&st, ck, 32, 32);
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
	va_start(ap, label);
	while ((p = va_arg(ap, const uint8_t *)) != NULL)
		crypto_generichash_update(&st, p, va_arg(ap, size_t));
	va_end(ap);
	crypto_generichash_final(&st, out, 32);
	sodium_memzero(&st, sizeof(st));
}

/* ChaCha20-Poly1305 with nonce 0 (each key is used once) over m (mlen may
 * be 0) with ad; c gets mlen + 16 bytes. */
static void
hs_seal(uint8_t *c, const uint8_t *m, size_t mlen, const uint8_t *ad, size_t adlen,
    const uint8_t key[32])
{
	static const uint8_t zero[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
	static const uint8_t empty[1];

	crypto_aead_chacha20poly1305_ietf_encrypt(c, NULL, mlen ? m : empty, mlen, ad,
	    adlen, NULL, zero, key);
}

static int
hs_open(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
    const uint8_t key[32])
{
	static const uint8_t zero[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
	uint8_t dummy[1];

	return crypto_aead_chacha20poly1305_ietf_decrypt(m ? m : dummy, NULL, NULL, c,
	    clen, ad, adlen, zero, key) == 0 ? 0 : NTM_ERR_IDENTITY;
}

/* ck1 and the HS_INIT key from ck0, e_i and DH(e_i, S_r). */
static void
chain1(const struct ntm_tunnel *t, uint8_t ck1[32], uint8_t k1[32],
    const uint8_t init_pub[32], const uint8_t es[32])
{
	mix(ck1, t->ck0, "ck1", init_pub, (size_t)32, es, (size_t)32, NULL);
	mix(k1, ck1, "k1", NULL);
}

/* ck2 and the HS_RESP key from ck1, the HS_INIT, e_r, DH(e_r, e_i) and
 * DH(e_r, S_i). */
static void
chain2(uint8_t ck2[32], uint8_t k2[32], const uint8_t ck1[32], const uint8_t *init,
    const uint8_t resp_pub[32], const uint8_t ee[32], const uint8_t se[32])
{
	mix(ck2, ck1, "ck2", init, (size_t)NTM_HS_INIT_LEN, resp_pub, (size_t)32,
	    ee, (size_t)32, se, (size_t)32, NULL);
	mix(k2, ck2, "k2", NULL);
}

/*
 * Session keys: BLAKE2b-512 keyed with the last chaining key over
 * "ntm tunnel keys". First half initiator -> responder, second half
 * responder -> initiator.
 */
static void
derive(const struct ntm_tunnel *t, struct session *s, const uint8_t ck2[32])
{
	static const char label[] = "ntm tunnel keys";
	uint8_t okm[64];

	crypto_generichash(okm, sizeof(okm), (const uint8_t *)label, sizeof(label) - 1,
	    ck2, 32);
	if (t->cfg.initiator) {
		memcpy(s->tx, okm, 32);
		memcpy(s->rx, okm + 32, 32);
	} else {
		memcpy(s->rx, okm, 32);
		memcpy(s->tx, okm + 32, 32);
	}
	sodium_memzero(okm, sizeof(okm));
}

/* Two DH results at once; NTM_ERR_CRYPTO (outputs zeroed) on a low-order
 * point. */
static int
dh2(uint8_t o1[32], const uint8_t sk1[32], const uint8_t pk1[32], uint8_t o2[32],
    const uint8_t sk2[32], const uint8_t pk2[32])
{
	if (crypto_scalarmult(o1, sk1, pk1) != 0 || crypto_scalarmult(o2, sk2, pk2) != 0) {
		sodium_memzero(o1, 32);
		sodium_memzero(o2, 32);
		return NTM_ERR_CRYPTO;
	}
	return 0;
}

/* Drops sessions past their lifetime. */
static void
expire(struct ntm_tunnel *t, int64_t now)
{
	if (t->prev.valid && now >= t->prev.expires)
		session_wipe(&t->prev);
	if (t->next.valid && now >= add64(t->next.created, REJECT_AFTER_MS))
		session_wipe(&t->next);
}

/* cur becomes prev (decrypt only) with its bounded lifetime. */
static void
retire_cur(struct ntm_tunnel *t)
{
	if (!t->cur.valid)
		return;
	session_move(&t->prev, &t->cur);
	t->prev.expires = add64(t->prev.created, REJECT_AFTER_MS);
}

static void
cur_confirmed(struct ntm_tunnel *t, int64_t now)
{
	t->cur.confirmed = 1;
	if (t->prev.valid)
		t->prev.expires = min64(t->prev.expires, add64(now, PREV_GRACE_MS));
}

static uint8_t *
out_slot(struct ntm_tun_out *out)
{
	if (out->n >= NTM_TUN_OUT_MAX)
		return NULL;
	return out->buf[out->n];
}

int
ntm_tunnel_is_ctl(const uint8_t *p, size_t len)
{
	return len > 0 && p[0] >> 4 == 0;
}

static int
inner_ok(const uint8_t *p, size_t len)
{
	if (len == 0)
		return 1;
	return len <= NTM_INNER_MTU && (p[0] >> 4 == 4 || p[0] >> 4 == 6 ||
	    ntm_tunnel_is_ctl(p, len));
}

/* ---- DATA --------------------------------------------------------------- */

static void
data_nonce(uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES], uint64_t ctr)
{
	memset(nonce, 0, crypto_aead_chacha20poly1305_ietf_NPUBBYTES);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(ctr >> (8 * i));	/* little-endian */
}

/* Seals payload on cur into the next out slot. */
static int
seal_data(struct ntm_tunnel *t, const uint8_t *payload, size_t len, int64_t now,
    struct ntm_tun_out *out)
{
	static const uint8_t empty[1];
	uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
	struct session *s = &t->cur;
	unsigned long long clen;
	uint8_t *b;
	uint64_t ctr;

	if ((b = out_slot(out)) == NULL)
		return NTM_ERR_NOSPACE;
	if (s->send_ctr >= CTR_LIMIT)
		return NTM_ERR_EXPIRED;
	ctr = s->send_ctr++;
	ntm_msg_header(b, NTM_MSG_DATA);
	put_be32(b + DATA_RECEIVER, s->remote);
	put_be64(b + DATA_CTR, ctr);
	data_nonce(nonce, ctr);
	crypto_aead_chacha20poly1305_ietf_encrypt(b + NTM_DATA_HDR_LEN, &clen,
	    len ? payload : empty, len, b, NTM_DATA_HDR_LEN, NULL, nonce, s->tx);
	out->len[out->n++] = NTM_DATA_HDR_LEN + (size_t)clen;
	t->last_tx = now;
	if (len && !ntm_tunnel_is_ctl(payload, len)) {
		t->st.tx_packets++;
		t->st.tx_bytes += len;
	}
	return 0;
}

/* ---- handshake ---------------------------------------------------------- */

/* Initiator: a fresh HS_INIT (new ephemeral, newer timestamp) into out. */
static int
hs_send(struct ntm_tunnel *t, int64_t now, struct ntm_tun_out *out)
{
	struct handshake *h = &t->hs;
	uint8_t es[32], k1[32], tsb[8];
	uint8_t *b;
	uint64_t ts;

	if ((b = out_slot(out)) == NULL)
		return NTM_ERR_NOSPACE;
	if (crypto_box_keypair(h->eph_pub, h->eph_sk) != 0)
		return NTM_ERR_CRYPTO;
	if (crypto_scalarmult(es, h->eph_sk, t->cfg.peer_static) != 0)
		return NTM_ERR_CRYPTO;		/* checked at ntm_tunnel_new */
	/* Strictly increasing even if the caller's clock is not. */
	ts = now > 0 && (uint64_t)now > t->last_ts ? (uint64_t)now : t->last_ts + 1;
	t->last_ts = ts;
	ntm_msg_header(b, NTM_MSG_HS_INIT);
	put_be32(b + INIT_SENDER, h->local);
	memcpy(b + INIT_TID, t->cfg.tunnel_id, NTM_TUNNEL_ID_LEN);
	memcpy(b + INIT_EPH, h->eph_pub, 32);
	chain1(t, h->ck1, k1, h->eph_pub, es);
	put_be64(tsb, ts);
	hs_seal(b + INIT_TS, tsb, sizeof(tsb), b, INIT_TS, k1);
	sodium_memzero(es, sizeof(es));
	sodium_memzero(k1, sizeof(k1));
	hs_mac(t, b + INIT_MAC, b, INIT_MAC, NULL, 0);
	memcpy(h->init_mac, b + INIT_MAC, NTM_MAC_LEN);
	memcpy(h->init, b, NTM_HS_INIT_LEN);
	out->len[out->n++] = NTM_HS_INIT_LEN;
	h->tries++;
	h->next = add64(now, (int64_t)HS_RETRY_MS << (h->tries - 1));
	return 0;
}

/* Initiator: begins a new handshake attempt (first of HS_TRIES sends). */
static int
hs_begin(struct ntm_tunnel *t, int64_t now, struct ntm_tun_out *out)
{
	hs_wipe(&t->hs);
	t->hs.local = fresh_index(t);
	t->hs.active = 1;
	if (!t->cur.valid)
		set_state(t, NTM_TUN_HANDSHAKE);
	return hs_send(t, now, out);
}

/* Responder: HS_INIT -> next session + HS_RESP. */
static int
recv_init(struct ntm_tunnel *t, const uint8_t *p, int64_t now, struct ntm_tun_event *ev,
    struct ntm_tun_out *out)
{
	uint8_t mac[NTM_MAC_LEN], eph_pub[32], eph_sk[32], es[32], ee[32], se[32];
	uint8_t ck1[32], k1[32], ck2[32], k2[32], tsb[8];
	struct session s;
	uint64_t ts;
	uint8_t *b;
	int r;

	if (t->cfg.initiator)
		return NTM_ERR_STATE;
	if (memcmp(p + INIT_TID, t->cfg.tunnel_id, NTM_TUNNEL_ID_LEN) != 0)
		return NTM_ERR_PROTO;
	hs_mac(t, mac, p, INIT_MAC, NULL, 0);
	if (sodium_memcmp(mac, p + INIT_MAC, NTM_MAC_LEN) != 0)
		return NTM_ERR_CRYPTO;
	/* Made with K: now the initiator's device key. */
	if (crypto_scalarmult(es, t->cfg.static_sk, p + INIT_EPH) != 0)
		return NTM_ERR_CRYPTO;	/* low-order point */
	chain1(t, ck1, k1, p + INIT_EPH, es);
	sodium_memzero(es, sizeof(es));
	r = hs_open(tsb, p + INIT_TS, 8 + NTM_TAG_LEN, p, INIT_TS, k1);
	sodium_memzero(k1, sizeof(k1));
	if (r < 0) {
		sodium_memzero(ck1, sizeof(ck1));
		return r;
	}
	ts = get_be64(tsb);
	if (ts <= t->last_ts) {
		sodium_memzero(ck1, sizeof(ck1));
		return NTM_ERR_REPLAY;
	}
	if ((b = out_slot(out)) == NULL || crypto_box_keypair(eph_pub, eph_sk) != 0) {
		sodium_memzero(ck1, sizeof(ck1));
		return b == NULL ? NTM_ERR_NOSPACE : NTM_ERR_CRYPTO;
	}
	r = dh2(ee, eph_sk, p + INIT_EPH, se, eph_sk, t->cfg.peer_static);
	sodium_memzero(eph_sk, sizeof(eph_sk));
	if (r < 0) {
		sodium_memzero(ck1, sizeof(ck1));
		return r;
	}
	chain2(ck2, k2, ck1, p, eph_pub, ee, se);
	sodium_memzero(ck1, sizeof(ck1));
	sodium_memzero(ee, sizeof(ee));
	sodium_memzero(se, sizeof(se));
	memset(&s, 0, sizeof(s));
	derive(t, &s, ck2);
	sodium_memzero(ck2, sizeof(ck2));
	s.valid = 1;
	s.remote = get_be32(p + INIT_SENDER);
	s.created = now;
	s.expires = INT64_MAX;
	ntm_window_init(&s.win);
	session_wipe(&t->next);		/* an older unconfirmed answer */
	s.local = fresh_index(t);
	session_move(&t->next, &s);
	t->last_ts = ts;

	ntm_msg_header(b, NTM_MSG_HS_RESP);
	put_be32(b + RESP_SENDER, t->next.local);
	put_be32(b + RESP_RECEIVER, t->next.remote);
	memcpy(b + RESP_EPH, eph_pub, 32);
	hs_seal(b + RESP_TAG, NULL, 0, b, RESP_TAG, k2);
	sodium_memzero(k2, sizeof(k2));
	hs_mac(t, b + RESP_MAC, b, RESP_MAC, p + INIT_MAC, NTM_MAC_LEN);
	out->len[out->n++] = NTM_HS_RESP_LEN;
	if (!t->cur.valid)
		set_state(t, NTM_TUN_HANDSHAKE);
	ev->authentic = 1;
	t->st.last_rx = now;
	return 0;
}

/* Initiator: HS_RESP for the latest HS_INIT -> cur, and a confirming DATA. */
static int
recv_resp(struct ntm_tunnel *t, const uint8_t *p, int64_t now, struct ntm_tun_event *ev,
    struct ntm_tun_out *out)
{
	struct handshake *h = &t->hs;
	uint8_t mac[NTM_MAC_LEN], ee[32], se[32], ck2[32], k2[32];
	struct session s;
	int r;

	if (!t->cfg.initiator)
		return NTM_ERR_STATE;
	if (!h->active || get_be32(p + RESP_RECEIVER) != h->local)
		return NTM_ERR_STATE;	/* no attempt, or a stale one */
	hs_mac(t, mac, p, RESP_MAC, h->init_mac, NTM_MAC_LEN);
	if (sodium_memcmp(mac, p + RESP_MAC, NTM_MAC_LEN) != 0)
		return NTM_ERR_CRYPTO;	/* forged, or answers an older HS_INIT */
	if ((r = dh2(ee, h->eph_sk, p + RESP_EPH, se, t->cfg.static_sk, p + RESP_EPH)) < 0)
		return r;
	chain2(ck2, k2, h->ck1, h->init, p + RESP_EPH, ee, se);
	sodium_memzero(ee, sizeof(ee));
	sodium_memzero(se, sizeof(se));
	if ((r = hs_open(NULL, p + RESP_TAG, NTM_TAG_LEN, p, RESP_TAG, k2)) < 0) {
		/* Made with K by someone without the peer's device key: no
		 * later answer to this attempt can be trusted more. */
		sodium_memzero(ck2, sizeof(ck2));
		sodium_memzero(k2, sizeof(k2));
		hs_wipe(h);
		set_state(t, NTM_TUN_DEAD);
		return r;
	}
	sodium_memzero(k2, sizeof(k2));
	memset(&s, 0, sizeof(s));
	derive(t, &s, ck2);
	sodium_memzero(ck2, sizeof(ck2));
	s.valid = 1;
	s.local = h->local;
	s.remote = get_be32(p + RESP_SENDER);
	s.created = now;
	s.expires = INT64_MAX;
	ntm_window_init(&s.win);
	hs_wipe(h);
	retire_cur(t);
	session_move(&t->cur, &s);
	set_state(t, NTM_TUN_UP);
	t->st.handshakes++;
	t->st.last_handshake = now;
	ev->established = 1;
	ev->authentic = 1;
	t->st.last_rx = now;
	/* Lets the responder confirm the keys and start sending. */
	return seal_data(t, NULL, 0, now, out);
}

static struct session *
find_session(struct ntm_tunnel *t, uint32_t idx)
{
	if (t->cur.valid && t->cur.local == idx)
		return &t->cur;
	if (t->prev.valid && t->prev.local == idx)
		return &t->prev;
	if (t->next.valid && t->next.local == idx)
		return &t->next;
	return NULL;
}

static int
recv_data(struct ntm_tunnel *t, uint8_t *p, size_t n, int64_t now, struct ntm_tun_event *ev)
{
	uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
	unsigned long long mlen;
	struct session *s;
	uint64_t ctr;

	if ((s = find_session(t, get_be32(p + DATA_RECEIVER))) == NULL)
		return NTM_ERR_STATE;
	ctr = get_be64(p + DATA_CTR);
	if (ntm_window_check(&s->win, ctr) != 0)
		return NTM_ERR_REPLAY;
	data_nonce(nonce, ctr);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(p + NTM_DATA_HDR_LEN, &mlen, NULL,
	    p + NTM_DATA_HDR_LEN, n - NTM_DATA_HDR_LEN, p, NTM_DATA_HDR_LEN, nonce,
	    s->rx) != 0)
		return NTM_ERR_CRYPTO;
	ntm_window_update(&s->win, ctr);
	ev->authentic = 1;
	t->st.last_rx = now;
	if (s == &t->next) {
		/* The initiator uses these keys: switch to them. */
		retire_cur(t);
		if (t->prev.valid)
			t->prev.expires = min64(t->prev.expires, add64(now, PREV_GRACE_MS));
		session_move(&t->cur, &t->next);
		t->cur.confirmed = 1;
		if (t->state != NTM_TUN_UP) {
			set_state(t, NTM_TUN_UP);
			t->last_tx = now;	/* keepalive clock starts */
		}
		t->st.handshakes++;
		t->st.last_handshake = now;
		ev->established = 1;
	} else if (s == &t->cur && !s->confirmed) {
		cur_confirmed(t, now);
	}
	/* Authentic but neither an IP packet nor a control message: dropped,
	 * yet the session events above (established, authentic) stand and are
	 * reported. */
	if (!inner_ok(p + NTM_DATA_HDR_LEN, (size_t)mlen))
		return NTM_ERR_PROTO;
	if (mlen) {
		ev->payload = p + NTM_DATA_HDR_LEN;
		ev->len = (size_t)mlen;
		if (!ntm_tunnel_is_ctl(ev->payload, ev->len)) {
			t->st.rx_packets++;
			t->st.rx_bytes += mlen;
		}
	}
	return 0;
}

/* ---- API ---------------------------------------------------------------- */

struct ntm_tunnel *
ntm_tunnel_new(const struct ntm_tunnel_cfg *cfg, int64_t now)
{
	struct ntm_tunnel *t;

	uint8_t ss[32];
	const uint8_t *si, *sr;

	if (cfg == NULL || cfg->keepalive_ms < 0 || cfg->rekey_ms < 0 ||
	    sodium_is_zero(cfg->temporal_key, NTM_KEY_LEN) ||
	    sodium_is_zero(cfg->static_sk, NTM_KEY_LEN))
		return NULL;
	if (sodium_init() < 0)
		return NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->cfg = *cfg;
	t->cfg.initiator = cfg->initiator ? 1 : 0;
	if (t->cfg.keepalive_ms == 0)
		t->cfg.keepalive_ms = DEF_KEEPALIVE_MS;
	if (t->cfg.rekey_ms == 0)
		t->cfg.rekey_ms = DEF_REKEY_MS;
	if (t->cfg.rekey_packets == 0)
		t->cfg.rekey_packets = DEF_REKEY_PACKETS;
	crypto_generichash(t->mac_key, sizeof(t->mac_key), (const uint8_t *)MAC_LABEL,
	    sizeof(MAC_LABEL) - 1, t->cfg.temporal_key, NTM_KEY_LEN);
	if (crypto_scalarmult_base(t->static_pk, t->cfg.static_sk) != 0 ||
	    crypto_scalarmult(ss, t->cfg.static_sk, t->cfg.peer_static) != 0) {
		ntm_tunnel_free(t);		/* a peer key of low order */
		return NULL;
	}
	si = t->cfg.initiator ? t->static_pk : t->cfg.peer_static;
	sr = t->cfg.initiator ? t->cfg.peer_static : t->static_pk;
	mix(t->ck0, t->cfg.temporal_key, CK_LABEL, t->cfg.tunnel_id,
	    (size_t)NTM_TUNNEL_ID_LEN, si, (size_t)32, sr, (size_t)32, ss, (size_t)32, NULL);
	sodium_memzero(ss, sizeof(ss));
	t->state = NTM_TUN_NEW;
	t->last_tx = now;
	return t;
}

void
ntm_tunnel_free(struct ntm_tunnel *t)
{
	if (t == NULL)
		return;
	sodium_memzero(t, sizeof(*t));
	free(t);
}

int
ntm_tunnel_start(struct ntm_tunnel *t, int64_t now, struct ntm_tun_out *out)
{
	out->n = 0;
	if (!t->cfg.initiator)
		return NTM_ERR_STATE;
	expire(t, now);
	if (t->state == NTM_TUN_DEAD)
		set_state(t, t->cur.valid ? NTM_TUN_UP : NTM_TUN_NEW);
	return hs_begin(t, now, out);
}

int
ntm_tunnel_recv(struct ntm_tunnel *t, uint8_t *p, size_t n, int64_t now,
    struct ntm_tun_event *ev, struct ntm_tun_out *out)
{
	int r;

	memset(ev, 0, sizeof(*ev));
	out->n = 0;
	expire(t, now);
	switch ((r = ntm_msg_validate(p, n))) {
	case NTM_MSG_HS_INIT:
		r = recv_init(t, p, now, ev, out);
		break;
	case NTM_MSG_HS_RESP:
		r = recv_resp(t, p, now, ev, out);
		break;
	case NTM_MSG_DATA:
		r = recv_data(t, p, n, now, ev);
		break;
	default:
		if (r >= 0)
			r = NTM_ERR_PROTO;	/* a valid type not for tunnels */
		break;
	}
	if (r < 0) {
		/* Only recv_data fails after authenticating (a payload that is
		 * not an IP packet): ev keeps its established/authentic flags. */
		t->st.dropped++;
		t->st.last_error = r;
		if (r == NTM_ERR_IDENTITY)
			t->st.identity_failures++;
		ev->payload = NULL;
		ev->len = 0;
	}
	return r < 0 ? r : 0;
}

int
ntm_tunnel_send(struct ntm_tunnel *t, const uint8_t *payload, size_t len, int64_t now,
    struct ntm_tun_out *out)
{
	int r;

	out->n = 0;
	if (len > NTM_INNER_MTU)
		return NTM_ERR_TOOBIG;
	if (len && (payload == NULL || !inner_ok(payload, len)))
		return NTM_ERR_INVAL;
	expire(t, now);
	if (t->state == NTM_TUN_DEAD || !t->cur.valid)
		return NTM_ERR_STATE;
	if ((r = seal_data(t, payload, len, now, out)) < 0)
		return r;
	if (t->cfg.initiator && !t->hs.active && t->cur.send_ctr >= t->cfg.rekey_packets)
		(void)hs_begin(t, now, out);	/* second out slot */
	return 0;
}

int64_t
ntm_tunnel_deadline(const struct ntm_tunnel *t)
{
	int64_t d = INT64_MAX;

	if (t->prev.valid)
		d = min64(d, t->prev.expires);
	if (t->next.valid)
		d = min64(d, add64(t->next.created, REJECT_AFTER_MS));
	if (t->state == NTM_TUN_DEAD)
		return d;
	if (t->hs.active)
		d = min64(d, t->hs.next);
	else if (t->cfg.initiator && t->cur.valid)
		d = min64(d, add64(t->cur.created, t->cfg.rekey_ms));
	if (t->cur.valid)
		d = min64(d, add64(t->last_tx, t->cfg.keepalive_ms));
	return d;
}

int
ntm_tunnel_tick(struct ntm_tunnel *t, int64_t now, struct ntm_tun_out *out)
{
	int r = 0;

	out->n = 0;
	expire(t, now);
	if (t->state == NTM_TUN_DEAD)
		return 0;
	if (t->hs.active && now >= t->hs.next) {
		if (t->hs.tries >= HS_TRIES) {
			hs_wipe(&t->hs);
			set_state(t, NTM_TUN_DEAD);
			return 0;
		}
		if ((r = hs_send(t, now, out)) < 0)
			return r;
	} else if (t->cfg.initiator && !t->hs.active && t->cur.valid &&
	    (now >= add64(t->cur.created, t->cfg.rekey_ms) ||
	    t->cur.send_ctr >= t->cfg.rekey_packets)) {
		if ((r = hs_begin(t, now, out)) < 0)
			return r;
	}
	if (t->cur.valid && now >= add64(t->last_tx, t->cfg.keepalive_ms)) {
		if ((r = seal_data(t, NULL, 0, now, out)) < 0)
			t->last_tx = now;	/* no busy loop on a spent counter */
	}
	return r;
}

uint32_t
ntm_tunnel_index(const struct ntm_tunnel *t)
{
	return t->cur.valid ? t->cur.local : 0;
}

int
ntm_tunnel_owns_index(const struct ntm_tunnel *t, uint32_t idx)
{
	if (idx == 0)
		return 0;
	return (t->cur.valid && t->cur.local == idx) ||
	    (t->prev.valid && t->prev.local == idx) ||
	    (t->next.valid && t->next.local == idx) ||
	    (t->hs.active && t->hs.local == idx);
}

uint32_t
ntm_msg_receiver_index(const uint8_t *p, size_t n)
{
	if (p == NULL || n < NTM_HDR_LEN)
		return 0;
	if (p[0] == NTM_MSG_HS_RESP && n >= NTM_HS_RESP_LEN)
		return get_be32(p + RESP_RECEIVER);
	if (p[0] == NTM_MSG_DATA && n >= NTM_DATA_MIN_LEN)
		return get_be32(p + DATA_RECEIVER);
	return 0;
}

const uint8_t *
ntm_msg_tunnel_id(const uint8_t *p, size_t n)
{
	if (p == NULL || n < NTM_HS_INIT_LEN || p[0] != NTM_MSG_HS_INIT)
		return NULL;
	return p + INIT_TID;
}

int
ntm_tunnel_set_keepalive(struct ntm_tunnel *t, int64_t ms)
{
	if (ms < 0)
		return NTM_ERR_INVAL;
	t->cfg.keepalive_ms = ms ? ms : DEF_KEEPALIVE_MS;
	return 0;
}

void
ntm_tunnel_stats(const struct ntm_tunnel *t, struct ntm_tun_stats *st)
{
	*st = t->st;
	st->state = t->state;
	st->index = ntm_tunnel_index(t);
}

const char *
ntm_tun_state_name(enum ntm_tun_state s)
{
	switch (s) {
	case NTM_TUN_NEW:	return "new";
	case NTM_TUN_HANDSHAKE:	return "handshake";
	case NTM_TUN_UP:	return "up";
	case NTM_TUN_DEAD:	return "dead";
	}
	return "?";
}
