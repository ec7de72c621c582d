/*
 * relay.c - relay tickets, RELAY_BIND / RELAY_ACK, and the RS forwarding
 * core (docs/protocol.md §4.4). I/O free: the caller passes datagrams,
 * addresses and the time, and sends what it is told to.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "relay.h"

/* The signed context names the version: "ntm-ticket-v1" or "-v2". */
#define TICKET_CTX_V1	"ntm-ticket-v1"
#define TICKET_CTX_V2	"ntm-ticket-v2"
#define TICKET_CTX_LEN	(sizeof(TICKET_CTX_V1) - 1)
#define ACCOUNT_CTX	"ntm-ticket-account-v1"
#define SEALED_LEN	(crypto_box_SEALBYTES + NTM_KEY_LEN)	/* 80 */
/* version, tunnel_id, expires, name length, sealed key, cert length, sig;
 * version 2 adds the account after expires */
#define TICKET_FIXED	(1 + NTM_TUNNEL_ID_LEN + 8 + 1 + SEALED_LEN + 2 + NTM_SIG_LEN)
/* RELAY_BIND: hdr, side, zero[3], counter, ticket length */
#define BIND_HDR	(NTM_HDR_LEN + 4 + 8 + 2)

/* ---- tickets ------------------------------------------------------------- */

int
ntm_ticket_account(uint8_t out[NTM_TICKET_ACCOUNT_LEN], const char *user,
    const uint8_t dc_sk[NTM_SIGN_SK])
{
	uint8_t key[crypto_generichash_KEYBYTES];

	if (out == NULL || user == NULL || user[0] == '\0' || dc_sk == NULL)
		return NTM_ERR_INVAL;
	/* A key of its own, from the seed half of the DC's signing key: the
	 * same across restarts, no new secret to keep. */
	crypto_generichash(key, sizeof(key), (const uint8_t *)ACCOUNT_CTX,
	    sizeof(ACCOUNT_CTX) - 1, dc_sk, 32);
	crypto_generichash(out, NTM_TICKET_ACCOUNT_LEN, (const uint8_t *)user, strlen(user),
	    key, sizeof(key));
	ntm_wipe(key, sizeof(key));
	return 0;
}

int
ntm_ticket_make(uint8_t *out, size_t cap,
    const uint8_t tunnel_id[NTM_TUNNEL_ID_LEN], int64_t expires,
    const char *rs_name, const uint8_t rs_pk[NTM_SIGN_PK],
    const uint8_t relay_key[NTM_KEY_LEN], const uint8_t *account,
    const struct ntm_cert *dc_cert, const uint8_t dc_sk[NTM_SIGN_SK])
{
	uint8_t buf[TICKET_CTX_LEN + NTM_TICKET_MAX];
	uint8_t cert[NTM_CERT_MAX], curve_pk[crypto_box_PUBLICKEYBYTES];
	uint8_t sealed[SEALED_LEN], sig[NTM_SIG_LEN];
	struct ntm_wr w;
	size_t namelen;
	long len;
	int clen;

	if (out == NULL || tunnel_id == NULL || rs_name == NULL || rs_pk == NULL ||
	    relay_key == NULL || dc_cert == NULL || dc_sk == NULL)
		return NTM_ERR_INVAL;
	namelen = strnlen(rs_name, NTM_NAME_MAX + 1);
	if (namelen == 0 || namelen > NTM_NAME_MAX || !ntm_valid_dnsname(rs_name))
		return NTM_ERR_INVAL;
	if ((clen = ntm_cert_encode(dc_cert, cert, sizeof(cert))) < 0)
		return clen;
	if (crypto_sign_ed25519_pk_to_curve25519(curve_pk, rs_pk) != 0)
		return NTM_ERR_INVAL;
	if (crypto_box_seal(sealed, relay_key, NTM_KEY_LEN, curve_pk) != 0)
		return NTM_ERR_CRYPTO;

	ntm_wr_init(&w, buf, sizeof(buf));
	ntm_wr_bytes(&w, account ? TICKET_CTX_V2 : TICKET_CTX_V1, TICKET_CTX_LEN);
	ntm_wr_u8(&w, account ? NTM_TICKET_V2 : NTM_TICKET_V1);
	ntm_wr_bytes(&w, tunnel_id, NTM_TUNNEL_ID_LEN);
	ntm_wr_u64(&w, (uint64_t)expires);
	if (account)
		ntm_wr_bytes(&w, account, NTM_TICKET_ACCOUNT_LEN);
	ntm_wr_u8(&w, (uint8_t)namelen);
	ntm_wr_bytes(&w, rs_name, namelen);
	ntm_wr_bytes(&w, sealed, sizeof(sealed));
	ntm_wr_u16(&w, (uint16_t)clen);
	ntm_wr_bytes(&w, cert, (size_t)clen);
	if ((len = ntm_wr_done(&w)) < 0)
		return NTM_ERR_TOOBIG;
	if ((size_t)len + NTM_SIG_LEN > sizeof(buf))
		return NTM_ERR_TOOBIG;
	ntm_sign(sig, buf, (size_t)len, dc_sk);
	len -= (long)TICKET_CTX_LEN;
	if (cap < (size_t)len + NTM_SIG_LEN)
		return NTM_ERR_TOOBIG;
	memcpy(out, buf + TICKET_CTX_LEN, (size_t)len);
	memcpy(out + len, sig, NTM_SIG_LEN);
	return (int)(len + NTM_SIG_LEN);
}

/* As ntm_ticket_open, with the RS's key pair already in Curve25519 form;
 * the ticket is good from *not_before (the DC cert's) to *valid_until
 * (min(expires, DC cert not_after)). */
static int
ticket_open(struct ntm_ticket_info *out, int64_t *not_before, int64_t *valid_until,
    const uint8_t *p, size_t n, const uint8_t as_pk[NTM_SIGN_PK], const char *my_name,
    const uint8_t curve_pk[crypto_box_PUBLICKEYBYTES],
    const uint8_t curve_sk[crypto_box_SECRETKEYBYTES], int64_t now)
{
	uint8_t buf[TICKET_CTX_LEN + NTM_TICKET_MAX];
	uint8_t version = 0, namelen = 0, key[NTM_KEY_LEN];
	const uint8_t *sealed, *certp, *sig;
	char name[NTM_NAME_MAX + 1];
	struct ntm_ticket_info t;
	struct ntm_cert cert;
	struct ntm_cur c;
	uint64_t exp = 0;
	uint16_t clen = 0;
	size_t signed_len;
	int e;

	if (out == NULL || p == NULL || as_pk == NULL || my_name == NULL)
		return NTM_ERR_INVAL;
	if (n < TICKET_FIXED + 1 || n > NTM_TICKET_MAX)
		return NTM_ERR_PROTO;
	memset(&t, 0, sizeof(t));
	ntm_cur_init(&c, p, n);
	(void)ntm_cur_u8(&c, &version);
	(void)ntm_cur_bytes(&c, t.tunnel_id, NTM_TUNNEL_ID_LEN);
	(void)ntm_cur_u64(&c, &exp);
	if (version == NTM_TICKET_V2)
		(void)ntm_cur_bytes(&c, t.account, NTM_TICKET_ACCOUNT_LEN);
	(void)ntm_cur_u8(&c, &namelen);
	if (namelen > NTM_NAME_MAX)	/* before it is read into name[] */
		return NTM_ERR_PROTO;
	(void)ntm_cur_bytes(&c, name, namelen);
	sealed = ntm_cur_ptr(&c, SEALED_LEN);
	(void)ntm_cur_u16(&c, &clen);
	certp = ntm_cur_ptr(&c, clen);
	sig = ntm_cur_ptr(&c, NTM_SIG_LEN);
	if (ntm_cur_end(&c) < 0 || (version != NTM_TICKET_V1 && version != NTM_TICKET_V2) ||
	    namelen == 0)
		return NTM_ERR_PROTO;
	t.version = version;
	name[namelen] = '\0';
	if (strlen(name) != namelen || !ntm_valid_dnsname(name))
		return NTM_ERR_PROTO;
	if (ntm_cert_decode(&cert, certp, clen) < 0)
		return NTM_ERR_PROTO;

	/* Authenticity first, so that every later verdict is about bytes a DC
	 * really signed. */
	if ((e = ntm_cert_verify(&cert, as_pk, now)) < 0)
		return e == NTM_ERR_EXPIRED ? NTM_ERR_EXPIRED : NTM_ERR_CRYPTO;
	if (cert.role != NTM_ROLE_DC)
		return NTM_ERR_CRYPTO;
	signed_len = n - NTM_SIG_LEN;
	memcpy(buf, version == NTM_TICKET_V2 ? TICKET_CTX_V2 : TICKET_CTX_V1, TICKET_CTX_LEN);
	memcpy(buf + TICKET_CTX_LEN, p, signed_len);
	if (ntm_sign_verify(sig, buf, TICKET_CTX_LEN + signed_len, cert.pk) < 0)
		return NTM_ERR_CRYPTO;
	t.expires = (int64_t)exp;
	if (now > t.expires)
		return NTM_ERR_EXPIRED;
	if (strcmp(name, my_name) != 0)
		return NTM_ERR_INVAL;

	if (crypto_box_seal_open(key, sealed, SEALED_LEN, curve_pk, curve_sk) != 0)
		return NTM_ERR_CRYPTO;
	memcpy(t.relay_key, key, NTM_KEY_LEN);
	ntm_wipe(key, sizeof(key));
	memcpy(t.dc, cert.name, sizeof(t.dc));
	t.dc_serial = cert.serial;
	*out = t;
	ntm_wipe(&t, sizeof(t));
	*not_before = cert.not_before;
	*valid_until = cert.not_after < out->expires ? cert.not_after : out->expires;
	return 0;
}

/* The RS's Ed25519 key pair as the Curve25519 pair the relay key is sealed
 * to. 0 or NTM_ERR_INVAL. */
static int
curve_keys(uint8_t curve_pk[crypto_box_PUBLICKEYBYTES],
    uint8_t curve_sk[crypto_box_SECRETKEYBYTES], const uint8_t my_sk[NTM_SIGN_SK])
{
	if (crypto_sign_ed25519_pk_to_curve25519(curve_pk, my_sk + 32) != 0 ||
	    crypto_sign_ed25519_sk_to_curve25519(curve_sk, my_sk) != 0) {
		ntm_wipe(curve_sk, crypto_box_SECRETKEYBYTES);
		return NTM_ERR_INVAL;
	}
	return 0;
}

int
ntm_ticket_open(struct ntm_ticket_info *out, const uint8_t *p, size_t n,
    const uint8_t as_pk[NTM_SIGN_PK], const char *my_name,
    const uint8_t my_sk[NTM_SIGN_SK], int64_t now)
{
	uint8_t curve_pk[crypto_box_PUBLICKEYBYTES], curve_sk[crypto_box_SECRETKEYBYTES];
	int64_t nb, vu;
	int e;

	if (out == NULL || p == NULL || as_pk == NULL || my_name == NULL || my_sk == NULL)
		return NTM_ERR_INVAL;
	if (curve_keys(curve_pk, curve_sk, my_sk) < 0)
		return NTM_ERR_INVAL;
	e = ticket_open(out, &nb, &vu, p, n, as_pk, my_name, curve_pk, curve_sk, now);
	ntm_wipe(curve_sk, sizeof(curve_sk));
	return e;
}

/* ---- RELAY_BIND / RELAY_ACK ---------------------------------------------- */

static void
mac16(uint8_t out[NTM_MAC_LEN], const uint8_t *p, size_t n, const uint8_t key[NTM_KEY_LEN])
{
	crypto_generichash(out, NTM_MAC_LEN, p, n, key, NTM_KEY_LEN);
}

int
ntm_relay_bind_make_cookie(uint8_t *out, size_t cap, int side, uint64_t counter,
    const uint8_t *ticket, size_t tlen, const uint8_t relay_key[NTM_KEY_LEN],
    const uint8_t *cookie)
{
	struct ntm_wr w;
	uint8_t hdr[NTM_HDR_LEN];
	size_t extra = cookie ? NTM_MAC_LEN : 0;
	long len;

	if (out == NULL || ticket == NULL || relay_key == NULL || (side != 0 && side != 1) ||
	    tlen == 0 || tlen > NTM_TICKET_MAX)
		return NTM_ERR_INVAL;
	ntm_msg_header(hdr, NTM_MSG_RELAY_BIND);
	ntm_wr_init(&w, out, cap);
	ntm_wr_bytes(&w, hdr, sizeof(hdr));
	ntm_wr_u8(&w, (uint8_t)side);
	ntm_wr_u8(&w, cookie ? NTM_RELAY_BIND_F_COOKIE : 0);
	ntm_wr_u16(&w, 0);
	ntm_wr_u64(&w, counter);
	ntm_wr_u16(&w, (uint16_t)tlen);
	ntm_wr_bytes(&w, ticket, tlen);
	if ((len = ntm_wr_done(&w)) < 0 || (size_t)len + NTM_MAC_LEN + extra > cap ||
	    (size_t)len + NTM_MAC_LEN + extra > NTM_RELAY_BIND_MAX)
		return NTM_ERR_TOOBIG;
	mac16(out + len, out, (size_t)len, relay_key);
	len += NTM_MAC_LEN;
	if (cookie) {
		crypto_generichash(out + len, NTM_MAC_LEN, out, (size_t)len, cookie,
		    NTM_RELAY_COOKIE);
		len += NTM_MAC_LEN;
	}
	return (int)len;
}

int
ntm_relay_bind_make(uint8_t *out, size_t cap, int side, uint64_t counter,
    const uint8_t *ticket, size_t tlen, const uint8_t relay_key[NTM_KEY_LEN])
{
	return ntm_relay_bind_make_cookie(out, cap, side, counter, ticket, tlen, relay_key,
	    NULL);
}

int
ntm_relay_bind_parse(struct ntm_relay_bind *b, const uint8_t *p, size_t n)
{
	struct ntm_cur c;
	uint8_t side = 0, flags = 0;
	uint16_t z16 = 0, tlen = 0;
	int t;

	if (b == NULL)
		return NTM_ERR_INVAL;
	if ((t = ntm_msg_validate(p, n)) < 0)
		return t;
	if (t != NTM_MSG_RELAY_BIND)
		return NTM_ERR_PROTO;
	memset(b, 0, sizeof(*b));
	ntm_cur_init(&c, p + NTM_HDR_LEN, n - NTM_HDR_LEN);
	(void)ntm_cur_u8(&c, &side);
	(void)ntm_cur_u8(&c, &flags);
	(void)ntm_cur_u16(&c, &z16);
	(void)ntm_cur_u64(&c, &b->counter);
	(void)ntm_cur_u16(&c, &tlen);
	b->ticket = ntm_cur_ptr(&c, tlen);
	b->mac = ntm_cur_ptr(&c, NTM_MAC_LEN);
	if (flags & NTM_RELAY_BIND_F_COOKIE)
		b->cookie_mac = ntm_cur_ptr(&c, NTM_MAC_LEN);
	if (ntm_cur_end(&c) < 0 || tlen == 0 || tlen > NTM_TICKET_MAX)
		return NTM_ERR_PROTO;
	/* Unknown flags are refused, so that a later meaning is never taken
	 * for none. */
	if (side > 1 || (flags & ~NTM_RELAY_BIND_F_COOKIE) != 0 || z16 != 0)
		return NTM_ERR_PROTO;
	b->side = side;
	b->flags = flags;
	b->tlen = tlen;
	return 0;
}

int
ntm_relay_bind_verify(const uint8_t *p, size_t n, const uint8_t relay_key[NTM_KEY_LEN])
{
	uint8_t mac[NTM_MAC_LEN];
	size_t end;

	if (p == NULL || relay_key == NULL || n < NTM_RELAY_BIND_MIN)
		return NTM_ERR_PROTO;
	end = n - NTM_MAC_LEN;		/* where the relay key's MAC starts */
	if (p[NTM_HDR_LEN + 1] & NTM_RELAY_BIND_F_COOKIE) {
		if (end < NTM_RELAY_BIND_MIN)
			return NTM_ERR_PROTO;
		end -= NTM_MAC_LEN;
	}
	mac16(mac, p, end, relay_key);
	return ntm_memcmp(mac, p + end, NTM_MAC_LEN) == 0 ? 0 : NTM_ERR_CRYPTO;
}

/* ---- RELAY_COOKIE --------------------------------------------------------- */

#define COOKIE_CTX	"ntm-relay-cookie-v1"

/* The sealing key: public (the tunnel id), like WireGuard's cookie key
 * from the responder's public key; what makes a reply unforgeable off the
 * path is the bind's MAC as associated data. */
static void
cookie_seal_key(uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES],
    const uint8_t tid[NTM_TUNNEL_ID_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
	crypto_generichash_update(&st, (const uint8_t *)COOKIE_CTX, sizeof(COOKIE_CTX) - 1);
	crypto_generichash_update(&st, tid, NTM_TUNNEL_ID_LEN);
	crypto_generichash_final(&st, key, crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
}

/* associated data: header, tunnel id, the bind's relay-key MAC */
#define COOKIE_AD_LEN	(NTM_HDR_LEN + NTM_TUNNEL_ID_LEN + NTM_MAC_LEN)

static void
cookie_ad(uint8_t ad[COOKIE_AD_LEN], const uint8_t *p, const uint8_t bind_mac[NTM_MAC_LEN])
{
	memcpy(ad, p, NTM_HDR_LEN + NTM_TUNNEL_ID_LEN);
	memcpy(ad + NTM_HDR_LEN + NTM_TUNNEL_ID_LEN, bind_mac, NTM_MAC_LEN);
}

/* With the nonce given (NULL: random). */
static int
cookie_make(uint8_t out[NTM_RELAY_COOKIE_LEN], const uint8_t tunnel_id[NTM_TUNNEL_ID_LEN],
    const uint8_t bind_mac[NTM_MAC_LEN], const uint8_t cookie[NTM_RELAY_COOKIE],
    const uint8_t *the_nonce)
{
	uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES], ad[COOKIE_AD_LEN];
	uint8_t *nonce = out + NTM_HDR_LEN + NTM_TUNNEL_ID_LEN;

	if (out == NULL || tunnel_id == NULL || bind_mac == NULL || cookie == NULL)
		return NTM_ERR_INVAL;
	ntm_msg_header(out, NTM_MSG_RELAY_COOKIE);
	memcpy(out + NTM_HDR_LEN, tunnel_id, NTM_TUNNEL_ID_LEN);
	if (the_nonce)
		memcpy(nonce, the_nonce, NTM_RELAY_COOKIE_NONCE);
	else
		ntm_random(nonce, NTM_RELAY_COOKIE_NONCE);
	cookie_seal_key(key, tunnel_id);
	cookie_ad(ad, out, bind_mac);
	crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + NTM_RELAY_COOKIE_NONCE, NULL,
	    cookie, NTM_RELAY_COOKIE, ad, sizeof(ad), NULL, nonce, key);
	ntm_wipe(key, sizeof(key));
	return NTM_RELAY_COOKIE_LEN;
}

int
ntm_relay_cookie_make(uint8_t out[NTM_RELAY_COOKIE_LEN],
    const uint8_t tunnel_id[NTM_TUNNEL_ID_LEN], const uint8_t bind_mac[NTM_MAC_LEN],
    const uint8_t cookie[NTM_RELAY_COOKIE])
{
	return cookie_make(out, tunnel_id, bind_mac, cookie, NULL);
}

/* Type, version, reserved bytes and exact length (ntm_msg_validate does
 * not know this type: it is checked here, before any crypto). */
static int
cookie_validate(const uint8_t *p, size_t n)
{
	if (p == NULL || n < NTM_HDR_LEN)
		return NTM_ERR_SHORT;
	if (p[0] != NTM_MSG_RELAY_COOKIE || p[2] != 0 || p[3] != 0)
		return NTM_ERR_PROTO;
	if (p[1] != NTM_UDP_VERSION)
		return NTM_ERR_VERSION;
	if (n < NTM_RELAY_COOKIE_LEN)
		return NTM_ERR_SHORT;
	if (n > NTM_RELAY_COOKIE_LEN)
		return NTM_ERR_TOOBIG;
	return 0;
}

const uint8_t *
ntm_relay_cookie_tunnel_id(const uint8_t *p, size_t n)
{
	return cookie_validate(p, n) == 0 ? p + NTM_HDR_LEN : NULL;
}

int
ntm_relay_cookie_open(const uint8_t *p, size_t n,
    const uint8_t tunnel_id[NTM_TUNNEL_ID_LEN], const uint8_t bind_mac[NTM_MAC_LEN],
    uint8_t cookie[NTM_RELAY_COOKIE])
{
	uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES], ad[COOKIE_AD_LEN];
	uint8_t c[NTM_RELAY_COOKIE];
	const uint8_t *nonce;
	int e;

	if (tunnel_id == NULL || bind_mac == NULL || cookie == NULL)
		return NTM_ERR_INVAL;
	if ((e = cookie_validate(p, n)) < 0)
		return e;
	if (ntm_memcmp(p + NTM_HDR_LEN, tunnel_id, NTM_TUNNEL_ID_LEN) != 0)
		return NTM_ERR_CRYPTO;
	nonce = p + NTM_HDR_LEN + NTM_TUNNEL_ID_LEN;
	cookie_seal_key(key, tunnel_id);
	cookie_ad(ad, p, bind_mac);
	e = crypto_aead_xchacha20poly1305_ietf_decrypt(c, NULL, NULL,
	    nonce + NTM_RELAY_COOKIE_NONCE, NTM_RELAY_COOKIE + NTM_TAG_LEN, ad, sizeof(ad),
	    nonce, key);
	ntm_wipe(key, sizeof(key));
	if (e != 0)
		return NTM_ERR_CRYPTO;
	memcpy(cookie, c, NTM_RELAY_COOKIE);
	ntm_wipe(c, sizeof(c));
	return 0;
}

int
ntm_relay_ack_make(uint8_t out[NTM_RELAY_ACK_LEN], int side, int peer_bound,
    uint64_t counter, const uint8_t relay_key[NTM_KEY_LEN])
{
	struct ntm_wr w;
	uint8_t hdr[NTM_HDR_LEN];

	if (out == NULL || relay_key == NULL || (side != 0 && side != 1))
		return NTM_ERR_INVAL;
	ntm_msg_header(hdr, NTM_MSG_RELAY_ACK);
	ntm_wr_init(&w, out, NTM_RELAY_ACK_LEN);
	ntm_wr_bytes(&w, hdr, sizeof(hdr));
	ntm_wr_u8(&w, (uint8_t)side);
	ntm_wr_u8(&w, peer_bound ? 1 : 0);
	ntm_wr_u16(&w, 0);
	ntm_wr_u64(&w, counter);
	mac16(out + NTM_RELAY_ACK_LEN - NTM_MAC_LEN, out, NTM_RELAY_ACK_LEN - NTM_MAC_LEN,
	    relay_key);
	return NTM_RELAY_ACK_LEN;
}

int
ntm_relay_ack_open(const uint8_t *p, size_t n, const uint8_t relay_key[NTM_KEY_LEN],
    int *side, int *peer_bound, uint64_t *counter)
{
	uint8_t mac[NTM_MAC_LEN];
	struct ntm_cur c;
	uint8_t s = 0, pb = 0;
	uint16_t z = 0;
	uint64_t ctr = 0;
	int t;

	if (relay_key == NULL)
		return NTM_ERR_INVAL;
	if ((t = ntm_msg_validate(p, n)) < 0)
		return t;
	if (t != NTM_MSG_RELAY_ACK)
		return NTM_ERR_PROTO;
	mac16(mac, p, n - NTM_MAC_LEN, relay_key);
	if (ntm_memcmp(mac, p + n - NTM_MAC_LEN, NTM_MAC_LEN) != 0)
		return NTM_ERR_CRYPTO;
	ntm_cur_init(&c, p + NTM_HDR_LEN, n - NTM_HDR_LEN - NTM_MAC_LEN);
	(void)ntm_cur_u8(&c, &s);
	(void)ntm_cur_u8(&c, &pb);
	(void)ntm_cur_u16(&c, &z);
	(void)ntm_cur_u64(&c, &ctr);
	if (ntm_cur_end(&c) < 0 || s > 1 || pb > 1 || z != 0)
		return NTM_ERR_PROTO;
	if (side)
		*side = s;
	if (peer_bound)
		*peer_bound = pb;
	if (counter)
		*counter = ctr;
	return 0;
}

/* ---- the forwarding core ------------------------------------------------- */

#define IDX_KEEP	4	/* receiver indices remembered per side (rekeys overlap) */
#define BUCKETS_MAX	(1u << 18)

struct rsess;

struct rside {
	struct rsess		*sess;
	int			 which;		/* 0 or 1 */
	int			 bound;
	struct sockaddr_storage	 addr, local;
	socklen_t		 addrlen, locallen;
	struct rside		*anext;		/* address hash chain */
	uint64_t		 last_ctr;
	uint8_t			 key[NTM_KEY_LEN];
	uint8_t			 thash[NTM_MAC_LEN];	/* ticket accepted with key */
	int			 has_key;
	int64_t			 valid_until;	/* unix s */
	int64_t			 bound_ms;
	char			 dc[NTM_NAME_MAX + 1];
	uint64_t		 dc_serial;	/* of the DC certificate of its ticket */
	int			 version;	/* of its ticket */
	uint8_t			 acct[NTM_TICKET_ACCOUNT_LEN];	/* its ticket's (v2) */
	uint32_t		 idx[IDX_KEEP];	/* indices this side named itself by */
	unsigned		 nidx;
	uint64_t		 packets, bytes;
};

struct rsess {
	uint8_t		 tid[NTM_TUNNEL_ID_LEN];
	char		 dc[NTM_NAME_MAX + 1];	/* the DC whose ticket opened it */
	int		 version;		/* of that ticket */
	uint8_t		 acct[NTM_TICKET_ACCOUNT_LEN];	/* v2: the account it names */
	struct rside	 side[2];
	struct rsess	*tnext;			/* tunnel_id hash chain */
	struct rsess	*prev, *next;		/* all sessions, newest first */
	int64_t		 created_ms, last_ms;
	int64_t		 tokens, tok_ms;	/* token bucket, in 1/1000 packet */
};

/* A token bucket of the per-source table; tag 0: free. */
struct srcent {
	uint64_t	 tag;
	int64_t		 tokens, last_ms;
};
#define SRC_WAYS	4

/* How many session sides one client address holds, or sessions one DC or
 * one account (DC name, 0, account id) opened: a chained table of counts,
 * an entry only while it is above 0. */
#define QKEY_MAX	(NTM_NAME_MAX + 1 + NTM_TICKET_ACCOUNT_LEN)
struct qcnt {
	struct qcnt	*next;
	size_t		 n;
	size_t		 klen;
	uint8_t		 key[QKEY_MAX];
};

/*
 * Tickets opened before, so that one seen again (a client re-binding a new
 * side or after its session ended, a replayed bind, binds refused at a
 * quota) costs a hash instead of two signature verifications and a sealed
 * box: keyed by a keyed BLAKE2b of the whole ticket, what ticket_open
 * found. Only tickets that opened are kept; the time window (the DC cert's
 * and the ticket's) and revocation are checked on every bind as before.
 * TCACHE_SETS sets of TCACHE_WAYS, the least recently used replaced.
 */
#define TCACHE_SETS	64
#define TCACHE_WAYS	4
struct tcent {
	uint8_t		 h[32];			/* of the ticket */
	uint64_t	 used;			/* 0: free; else a use clock */
	int64_t		 not_before, valid_until;	/* unix s */
	struct ntm_ticket_info	 ti;
};

struct ntm_relay {
	struct ntm_relay_limits	 lim;
	size_t			 dc_cap;	/* sessions one DC may open */
	ntm_relay_revoked_fn	*revoked;
	void			*revoked_arg;
	char			 name[NTM_NAME_MAX + 1];
	uint8_t			 curve_pk[crypto_box_PUBLICKEYBYTES];	/* ours, for tickets */
	uint8_t			 curve_sk[crypto_box_SECRETKEYBYTES];
	uint8_t			 as_pk[NTM_SIGN_PK];
	uint8_t			 hkey[crypto_shorthash_KEYBYTES];
	uint8_t			 tkey[crypto_generichash_KEYBYTES];	/* tcache's */
	struct tcent		(*tcache)[TCACHE_WAYS];	/* TCACHE_SETS sets */
	uint64_t		 tclock;
	size_t			 nbuckets;	/* power of two */
	struct rsess		**tbl;		/* by tunnel_id */
	struct rside		**abl;		/* by side address */
	struct rsess		*all;
	int64_t			 btokens, btok_ms;	/* ticket checks bucket */
	int			 bstarted;
	struct srcent		*src[2];	/* address; prefix: NTM_RELAY_SOURCE_SLOTS each */
	uint8_t			 csecret[2][crypto_generichash_KEYBYTES];	/* now, before */
	uint8_t			 cnonce[NTM_RELAY_COOKIE_NONCE];	/* random, then a count */
	uint64_t		 cnonces;
	int64_t			 csecret_ms;	/* when csecret[0] was made */
	int			 has_csecret;
	struct qcnt		**ccnt, **dcnt, **acnt;	/* by client address; DC; account */
	struct ntm_relay_stats	 st;
};

static const char *const drop_names[NTM_RELAY_DROP__N] = {
	[NTM_RELAY_DROP_MALFORMED]	= "malformed",
	[NTM_RELAY_DROP_BAD_TICKET]	= "bad_ticket",
	[NTM_RELAY_DROP_EXPIRED]	= "expired",
	[NTM_RELAY_DROP_BAD_MAC]	= "bad_mac",
	[NTM_RELAY_DROP_REPLAY]		= "replay",
	[NTM_RELAY_DROP_UNBOUND]	= "unbound",
	[NTM_RELAY_DROP_RATE]		= "rate",
	[NTM_RELAY_DROP_FULL]		= "full",
	[NTM_RELAY_DROP_SOURCE_RATE]	= "source_rate",
	[NTM_RELAY_DROP_LOAD]		= "load",
	[NTM_RELAY_DROP_CLIENT_QUOTA]	= "client_quota",
	[NTM_RELAY_DROP_DC_QUOTA]	= "dc_quota",
	[NTM_RELAY_DROP_OTHER_DC]	= "other_dc",
	[NTM_RELAY_DROP_REVOKED]	= "revoked",
	[NTM_RELAY_DROP_ACCOUNT_QUOTA]	= "account_quota",
};

const char *
ntm_relay_drop_name(int reason)
{
	if (reason < 0 || reason >= NTM_RELAY_DROP__N)
		return "unknown";
	return drop_names[reason];
}

struct ntm_relay *
ntm_relay_new(const struct ntm_relay_limits *lim, const char *my_name,
    const uint8_t my_sk[NTM_SIGN_SK], const uint8_t as_pk[NTM_SIGN_PK])
{
	struct ntm_relay *r;
	size_t nb = 16;

	if (my_name == NULL || my_sk == NULL || as_pk == NULL ||
	    strlen(my_name) > NTM_NAME_MAX)
		return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if (lim)
		r->lim = *lim;
	if (r->lim.max_sessions == 0)
		r->lim.max_sessions = 1024;
	if (r->lim.idle_ms <= 0)
		r->lim.idle_ms = 120000;
	if (r->lim.session_pps == 0)
		r->lim.session_pps = 200000;
	if (r->lim.bind_pps == 0)
		r->lim.bind_pps = 2000;
	if (r->lim.source_bind_pps == 0)
		r->lim.source_bind_pps = 20;
	if (r->lim.prefix_bind_pps == 0)
		r->lim.prefix_bind_pps = 100;
	if (r->lim.client_sessions == 0)
		r->lim.client_sessions = 64;
	if (r->lim.account_sessions == 0)
		r->lim.account_sessions = 64;
	if (r->lim.dc_share == 0 || r->lim.dc_share > 100)
		r->lim.dc_share = 50;
	r->dc_cap = r->lim.max_sessions / 100 * r->lim.dc_share +
	    r->lim.max_sessions % 100 * r->lim.dc_share / 100;
	if (r->dc_cap == 0)
		r->dc_cap = 1;
	while (nb < 2 * r->lim.max_sessions && nb < BUCKETS_MAX)
		nb <<= 1;
	r->nbuckets = nb;
	r->tbl = calloc(nb, sizeof(*r->tbl));
	r->abl = calloc(nb, sizeof(*r->abl));
	r->ccnt = calloc(nb, sizeof(*r->ccnt));
	r->dcnt = calloc(nb, sizeof(*r->dcnt));
	r->acnt = calloc(nb, sizeof(*r->acnt));
	r->src[0] = calloc(NTM_RELAY_SOURCE_SLOTS, sizeof(*r->src[0]));
	r->src[1] = calloc(NTM_RELAY_SOURCE_SLOTS, sizeof(*r->src[1]));
	r->tcache = calloc(TCACHE_SETS, sizeof(*r->tcache));
	if (r->tbl == NULL || r->abl == NULL || r->ccnt == NULL || r->dcnt == NULL ||
	    r->acnt == NULL || r->src[0] == NULL || r->src[1] == NULL || r->tcache == NULL) {
		ntm_relay_free(r);
		return NULL;
	}
	strcpy(r->name, my_name);
	/* Once here, not for every ticket. */
	if (curve_keys(r->curve_pk, r->curve_sk, my_sk) < 0) {
		ntm_relay_free(r);
		return NULL;
	}
	memcpy(r->as_pk, as_pk, NTM_SIGN_PK);
	/* Keyed hashing, so that a peer cannot choose addresses or tunnel ids
	 * that pile up in one bucket (or tickets in one tcache set). */
	ntm_random(r->hkey, sizeof(r->hkey));
	ntm_random(r->tkey, sizeof(r->tkey));
	return r;
}

static void
sess_free(struct rsess *s)
{
	ntm_wipe(s, sizeof(*s));
	free(s);
}

void
ntm_relay_set_revoked(struct ntm_relay *r, ntm_relay_revoked_fn *fn, void *arg)
{
	r->revoked = fn;
	r->revoked_arg = arg;
}

size_t
ntm_relay_end_serial(struct ntm_relay *r, uint64_t serial)
{
	struct rsess *s;
	size_t n = 0;

	for (s = r->all; s; s = s->next)
		for (int i = 0; i < 2; i++)
			if (s->side[i].has_key && s->side[i].dc_serial == serial &&
			    s->side[i].valid_until != 0) {
				s->side[i].valid_until = 0;
				n++;
			}
	return n;
}

void
ntm_relay_free(struct ntm_relay *r)
{
	struct rsess *s, *next;

	if (r == NULL)
		return;
	for (s = r->all; s; s = next) {
		next = s->next;
		sess_free(s);
	}
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct qcnt *q, *qn;

		for (q = r->ccnt ? r->ccnt[i] : NULL; q; q = qn) {
			qn = q->next;
			free(q);
		}
		for (q = r->dcnt ? r->dcnt[i] : NULL; q; q = qn) {
			qn = q->next;
			free(q);
		}
		for (q = r->acnt ? r->acnt[i] : NULL; q; q = qn) {
			qn = q->next;
			free(q);
		}
	}
	free(r->ccnt);
	free(r->dcnt);
	free(r->acnt);
	free(r->tbl);
	free(r->abl);
	/* Only the tcache entries in use: wiping all of it would touch pages
	 * never used. The struct holds the other secrets (curve_sk, the hash
	 * and cookie keys). */
	for (int i = 0; r->tcache && i < TCACHE_SETS; i++)
		for (int j = 0; j < TCACHE_WAYS; j++)
			if (r->tcache[i][j].used)
				ntm_wipe(&r->tcache[i][j], sizeof(r->tcache[i][j]));
	free(r->tcache);
	free(r->src[0]);
	free(r->src[1]);
	ntm_wipe(r, sizeof(*r));
	free(r);
}

static size_t
hash_bytes(const struct ntm_relay *r, const void *p, size_t n)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, p, n, r->hkey);
	memcpy(&v, h, sizeof(v));
	return (size_t)(v & (r->nbuckets - 1));
}

/* Address key: family, port, address; from an unmapped sockaddr. */
static size_t
addr_key(const struct sockaddr_storage *ss, uint8_t key[19])
{
	memset(key, 0, 19);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		key[0] = 4;
		memcpy(key + 1, &s4->sin_port, 2);
		memcpy(key + 3, &s4->sin_addr, 4);
		return 7;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		key[0] = 6;
		memcpy(key + 1, &s6->sin6_port, 2);
		memcpy(key + 3, &s6->sin6_addr, 16);
		return 19;
	}
	return 1;
}

static size_t
addr_bucket(const struct ntm_relay *r, const struct sockaddr_storage *ss)
{
	uint8_t key[19];
	size_t n = addr_key(ss, key);

	return hash_bytes(r, key, n);
}

/* Client key: family and address, port ignored (one host, many sockets). */
static size_t
ip_key(const struct sockaddr_storage *ss, uint8_t key[17])
{
	uint8_t k[19];
	size_t n = addr_key(ss, k);

	key[0] = k[0];
	if (n < 3)
		return 1;
	memcpy(key + 1, k + 3, n - 3);
	return n - 2;
}

static struct qcnt **
qcnt_slot(const struct ntm_relay *r, struct qcnt **tbl, const void *key, size_t klen)
{
	struct qcnt **pp;

	for (pp = &tbl[hash_bytes(r, key, klen)]; *pp; pp = &(*pp)->next)
		if ((*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
			break;
	return pp;
}

static size_t
qcnt_get(const struct ntm_relay *r, struct qcnt **tbl, const void *key, size_t klen)
{
	struct qcnt **pp = qcnt_slot(r, tbl, key, klen);

	return *pp ? (*pp)->n : 0;
}

/* Adds d (+1 or -1); an entry that falls to 0 is freed. -1: no memory. */
static int
qcnt_add(struct ntm_relay *r, struct qcnt **tbl, const void *key, size_t klen, int d)
{
	struct qcnt **pp = qcnt_slot(r, tbl, key, klen), *q = *pp;

	if (klen > sizeof(q->key))
		return -1;
	if (q == NULL) {
		if (d < 0)
			return 0;
		if ((q = calloc(1, sizeof(*q))) == NULL)
			return -1;
		memcpy(q->key, key, klen);
		q->klen = klen;
		*pp = q;
	}
	if (d < 0 && q->n > 0)
		q->n--;
	else if (d > 0)
		q->n++;
	if (q->n == 0) {
		*pp = q->next;
		free(q);
	}
	return 0;
}

static size_t
client_count(const struct ntm_relay *r, const struct sockaddr_storage *ss)
{
	uint8_t k[17];
	size_t n = ip_key(ss, k);

	return qcnt_get(r, r->ccnt, k, n);
}

static void
client_add(struct ntm_relay *r, const struct sockaddr_storage *ss, int d)
{
	uint8_t k[17];
	size_t n = ip_key(ss, k);

	(void)qcnt_add(r, r->ccnt, k, n, d);
}

/* The account key of a v2 ticket: its DC's name, 0, the account id. An
 * account id means something only to the DC that made it, and a DC cannot
 * spend another DC's accounts' quotas. */
static size_t
acct_key(uint8_t k[QKEY_MAX], const char *dc, const uint8_t acct[NTM_TICKET_ACCOUNT_LEN])
{
	size_t n = strnlen(dc, NTM_NAME_MAX);

	memcpy(k, dc, n);
	k[n] = 0;
	memcpy(k + n + 1, acct, NTM_TICKET_ACCOUNT_LEN);
	return n + 1 + NTM_TICKET_ACCOUNT_LEN;
}

static size_t
acct_count(const struct ntm_relay *r, const char *dc, const uint8_t acct[NTM_TICKET_ACCOUNT_LEN])
{
	uint8_t k[QKEY_MAX];
	size_t n = acct_key(k, dc, acct);

	return qcnt_get(r, r->acnt, k, n);
}

static int
acct_add(struct ntm_relay *r, const struct rsess *s, int d)
{
	uint8_t k[QKEY_MAX];
	size_t n;

	if (s->version != NTM_TICKET_V2)
		return 0;
	n = acct_key(k, s->dc, s->acct);
	return qcnt_add(r, r->acnt, k, n, d);
}

static struct rsess *
sess_find(const struct ntm_relay *r, const uint8_t tid[NTM_TUNNEL_ID_LEN])
{
	struct rsess *s;

	for (s = r->tbl[hash_bytes(r, tid, NTM_TUNNEL_ID_LEN)]; s; s = s->tnext)
		if (memcmp(s->tid, tid, NTM_TUNNEL_ID_LEN) == 0)
			return s;
	return NULL;
}

static void
addr_unlink(struct ntm_relay *r, struct rside *sd)
{
	struct rside **pp;

	if (!sd->bound)
		return;
	for (pp = &r->abl[addr_bucket(r, &sd->addr)]; *pp; pp = &(*pp)->anext)
		if (*pp == sd) {
			*pp = sd->anext;
			break;
		}
	sd->anext = NULL;
	sd->bound = 0;
	client_add(r, &sd->addr, -1);
}

static void
addr_link(struct ntm_relay *r, struct rside *sd)
{
	size_t b = addr_bucket(r, &sd->addr);

	sd->anext = r->abl[b];
	r->abl[b] = sd;
	sd->bound = 1;
	client_add(r, &sd->addr, +1);
}

static void
sess_remove(struct ntm_relay *r, struct rsess *s)
{
	struct rsess **pp;

	addr_unlink(r, &s->side[0]);
	addr_unlink(r, &s->side[1]);
	for (pp = &r->tbl[hash_bytes(r, s->tid, NTM_TUNNEL_ID_LEN)]; *pp; pp = &(*pp)->tnext)
		if (*pp == s) {
			*pp = s->tnext;
			break;
		}
	if (s->prev)
		s->prev->next = s->next;
	else
		r->all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	r->st.sessions--;
	(void)qcnt_add(r, r->dcnt, s->dc, strlen(s->dc), -1);
	(void)acct_add(r, s, -1);
	sess_free(s);
}

/* A session opened by a ticket of dc, of that version and account (v2). */
static struct rsess *
sess_add(struct ntm_relay *r, const uint8_t tid[NTM_TUNNEL_ID_LEN], const char *dc,
    int version, const uint8_t acct[NTM_TICKET_ACCOUNT_LEN], int64_t now_ms)
{
	struct rsess *s;
	size_t b;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	snprintf(s->dc, sizeof(s->dc), "%s", dc);
	s->version = version;
	memcpy(s->acct, acct, NTM_TICKET_ACCOUNT_LEN);
	if (acct_add(r, s, +1) < 0) {
		free(s);
		return NULL;
	}
	if (qcnt_add(r, r->dcnt, s->dc, strlen(s->dc), +1) < 0) {
		(void)acct_add(r, s, -1);
		free(s);
		return NULL;
	}
	memcpy(s->tid, tid, NTM_TUNNEL_ID_LEN);
	for (int i = 0; i < 2; i++) {
		s->side[i].sess = s;
		s->side[i].which = i;
	}
	s->created_ms = s->last_ms = now_ms;
	s->tokens = (int64_t)r->lim.session_pps * 1000;
	s->tok_ms = now_ms;
	b = hash_bytes(r, tid, NTM_TUNNEL_ID_LEN);
	s->tnext = r->tbl[b];
	r->tbl[b] = s;
	s->next = r->all;
	if (r->all)
		r->all->prev = s;
	r->all = s;
	r->st.sessions++;
	r->st.sessions_created++;
	return s;
}

/* Token bucket: rate per second, burst one second's worth; tokens in
 * 1/1000 of a packet. */
static void
bucket_refill(int64_t *tokens, int64_t *last_ms, uint32_t rate, int64_t now_ms)
{
	int64_t cap = (int64_t)rate * 1000, dt = now_ms - *last_ms;

	if (dt > 0) {
		*tokens = dt >= 1000 ? cap : *tokens + dt * (int64_t)rate;
		if (*tokens > cap)
			*tokens = cap;
		*last_ms = now_ms;
	} else if (dt < 0)
		*last_ms = now_ms;	/* the clock went back: restart from here */
}

static int
bucket_take(int64_t *tokens, int64_t *last_ms, uint32_t rate, int64_t now_ms)
{
	bucket_refill(tokens, last_ms, rate, now_ms);
	if (*tokens < 1000)
		return -1;
	*tokens -= 1000;
	return 0;
}

/* One ticket check from key (level 0: an address, 1: a prefix) at rate:
 * 0 or -1 (over). A source not in its 4-way set takes the least recently
 * used entry, with a full bucket: the table never grows, and a flood of
 * new sources buys no more than the global budget gives. */
static int
source_take(struct ntm_relay *r, int level, const uint8_t *key, size_t klen, uint32_t rate,
    int64_t now_ms)
{
	uint8_t h[crypto_shorthash_BYTES];
	struct srcent *set, *e = NULL, *old = NULL;
	uint64_t tag;
	size_t i;

	crypto_shorthash(h, key, klen, r->hkey);
	memcpy(&tag, h, sizeof(tag));
	set = &r->src[level][(tag % (NTM_RELAY_SOURCE_SLOTS / SRC_WAYS)) * SRC_WAYS];
	tag |= 1;
	for (i = 0; i < SRC_WAYS && e == NULL; i++) {
		if (set[i].tag == tag)
			e = &set[i];
		else if (old == NULL || set[i].tag == 0 ||
		    (old->tag != 0 && set[i].last_ms < old->last_ms))
			old = &set[i];
	}
	if (e == NULL) {
		e = old;
		e->tag = tag;
		e->tokens = (int64_t)rate * 1000;
		e->last_ms = now_ms;
	}
	return bucket_take(&e->tokens, &e->last_ms, rate, now_ms);
}

/* Address, then its /24 (IPv4) or /56 (IPv6): a check refused for the
 * address takes nothing from its prefix. */
static int
source_limit(struct ntm_relay *r, const struct sockaddr_storage *from, int64_t now_ms)
{
	uint8_t k[17], pk[8];
	size_t n = ip_key(from, k), pn;

	pk[0] = (uint8_t)(k[0] | 0x80);
	pn = k[0] == 4 ? 1 + 3 : 1 + 7;
	memcpy(pk + 1, k + 1, pn - 1);
	if (source_take(r, 0, k, n, r->lim.source_bind_pps, now_ms) < 0)
		return -1;
	return source_take(r, 1, pk, pn, r->lim.prefix_bind_pps, now_ms);
}

/* The cookie of from under secret sec: a MAC of its address and port. */
static void
cookie_of(uint8_t c[NTM_RELAY_COOKIE], const uint8_t sec[crypto_generichash_KEYBYTES],
    const struct sockaddr_storage *from)
{
	uint8_t k[19];
	size_t n = addr_key(from, k);

	crypto_generichash(c, NTM_RELAY_COOKIE, k, n, sec, crypto_generichash_KEYBYTES);
}

/* The secret is new every NTM_RELAY_COOKIE_ROTATE_MS; a cookie made under
 * the one before is still taken, so a cookie lives 2 to 4 minutes. */
static void
cookie_rotate(struct ntm_relay *r, int64_t now_ms)
{
	int64_t age = now_ms - r->csecret_ms;

	if (r->has_csecret && age >= 0 && age < NTM_RELAY_COOKIE_ROTATE_MS)
		return;
	if (r->has_csecret && age >= 0 && age < 2 * NTM_RELAY_COOKIE_ROTATE_MS)
		memcpy(r->csecret[1], r->csecret[0], sizeof(r->csecret[1]));
	else
		ntm_random(r->csecret[1], sizeof(r->csecret[1]));
	ntm_random(r->csecret[0], sizeof(r->csecret[0]));
	/* Nonces for the replies: 16 random bytes per secret and a count, so a
	 * flood costs no system call per reply. */
	ntm_random(r->cnonce, sizeof(r->cnonce));
	r->cnonces = 0;
	r->csecret_ms = now_ms;
	r->has_csecret = 1;
}

static int
cookie_valid(struct ntm_relay *r, const uint8_t *p, size_t n,
    const struct ntm_relay_bind *b, const struct sockaddr_storage *from)
{
	uint8_t c[NTM_RELAY_COOKIE], mac[NTM_MAC_LEN];
	int ok = 0;

	for (int i = 0; i < 2 && !ok; i++) {
		cookie_of(c, r->csecret[i], from);
		crypto_generichash(mac, sizeof(mac), p, n - NTM_MAC_LEN, c, sizeof(c));
		ok = ntm_memcmp(mac, b->cookie_mac, NTM_MAC_LEN) == 0;
	}
	ntm_wipe(c, sizeof(c));
	return ok;
}

static int
drop(struct ntm_relay *r, struct ntm_relay_out *out, int reason)
{
	out->action = NTM_RELAY_DROP;
	out->reason = reason;
	r->st.drops[reason]++;
	return NTM_RELAY_DROP;
}

static void
copy_sa(struct sockaddr_storage *dst, socklen_t *dlen, const struct sockaddr *sa,
    socklen_t len)
{
	memset(dst, 0, sizeof(*dst));
	*dlen = 0;
	if (sa == NULL || len == 0 || len > sizeof(*dst))
		return;
	memcpy(dst, sa, len);
	*dlen = len;
	ntm_sa_unmap(dst, dlen);
}

static int drop(struct ntm_relay *r, struct ntm_relay_out *out, int reason);

static int
gate_drop(struct ntm_relay *r, struct ntm_relay_out *out, int reason)
{
	drop(r, out, reason);
	return -1;
}

/*
 * May this bind have a full ticket check (two signature verifications)?
 * 0: yes (budget taken). Otherwise out says what to do: a RELAY_COOKIE
 * when the RS is under load and the bind has no valid cookie, else a drop.
 */
static int
bind_gate(struct ntm_relay *r, const struct ntm_relay_bind *b, const uint8_t *p, size_t n,
    const struct sockaddr_storage *from, socklen_t fromlen,
    const struct sockaddr_storage *local, socklen_t locallen,
    int64_t now_ms, struct ntm_relay_out *out)
{
	int64_t cap = (int64_t)r->lim.bind_pps * 1000;
	int64_t floor = (int64_t)(r->lim.bind_pps / 2) * 1000;	/* whole checks */
	int cookie_ok = 0;

	if (!r->bstarted) {
		r->btokens = cap;
		r->btok_ms = now_ms;
		r->bstarted = 1;
	}
	bucket_refill(&r->btokens, &r->btok_ms, r->lim.bind_pps, now_ms);
	cookie_rotate(r, now_ms);
	if (b->cookie_mac) {
		if ((cookie_ok = cookie_valid(r, p, n, b, from)) == 0)
			r->st.bad_cookies++;
	}
	/* Without a cookie only the upper half of the budget: the rest is
	 * kept for binds that proved they receive at their address. */
	if (!cookie_ok && r->btokens - 1000 < floor) {
		uint8_t c[NTM_RELAY_COOKIE];

		/* never more bytes back than came in */
		if (n < NTM_RELAY_COOKIE_LEN)
			return gate_drop(r, out, NTM_RELAY_DROP_LOAD);
		cookie_of(c, r->csecret[0], from);
		r->cnonces++;
		for (int i = 0; i < 8; i++)
			r->cnonce[NTM_RELAY_COOKIE_NONCE - 8 + i] = (uint8_t)(r->cnonces >> (56 - 8 * i));
		if (cookie_make(out->reply, b->ticket + 1, b->mac, c, r->cnonce) < 0) {
			ntm_wipe(c, sizeof(c));
			return gate_drop(r, out, NTM_RELAY_DROP_LOAD);
		}
		ntm_wipe(c, sizeof(c));
		r->st.cookies_sent++;
		out->action = NTM_RELAY_REPLY;
		out->to = *from;
		out->tolen = fromlen;
		out->src = *local;
		out->srclen = locallen;
		out->reply_len = NTM_RELAY_COOKIE_LEN;
		return -1;
	}
	if (source_limit(r, from, now_ms) < 0)
		return gate_drop(r, out, NTM_RELAY_DROP_SOURCE_RATE);
	if (r->btokens < 1000)
		return gate_drop(r, out, NTM_RELAY_DROP_RATE);
	r->btokens -= 1000;
	if (cookie_ok)
		r->st.cookie_binds++;
	return 0;
}

static struct tcent *
tcache_find(struct ntm_relay *r, const uint8_t h[32])
{
	struct tcent *set = r->tcache[h[0] % TCACHE_SETS];

	for (int i = 0; i < TCACHE_WAYS; i++)
		if (set[i].used && ntm_memcmp(set[i].h, h, sizeof(set[i].h)) == 0) {
			set[i].used = ++r->tclock;
			return &set[i];
		}
	return NULL;
}

static void
tcache_put(struct ntm_relay *r, const uint8_t h[32], const struct ntm_ticket_info *ti,
    int64_t not_before, int64_t valid_until)
{
	struct tcent *set = r->tcache[h[0] % TCACHE_SETS], *e = &set[0];

	for (int i = 1; i < TCACHE_WAYS && e->used; i++)
		if (set[i].used < e->used)
			e = &set[i];
	memcpy(e->h, h, sizeof(e->h));
	e->ti = *ti;
	e->not_before = not_before;
	e->valid_until = valid_until;
	e->used = ++r->tclock;
}

static int
side_live(const struct rside *sd, int64_t now_unix)
{
	return sd->bound && now_unix <= sd->valid_until;
}

static int
on_bind(struct ntm_relay *r, const uint8_t *p, size_t n,
    const struct sockaddr_storage *from, socklen_t fromlen,
    const struct sockaddr_storage *local, socklen_t locallen,
    int64_t now_ms, int64_t now_unix, struct ntm_relay_out *out)
{
	struct ntm_relay_bind b;
	struct ntm_ticket_info ti;
	struct rsess *s;
	struct rside *sd;
	uint8_t th[32], key[NTM_KEY_LEN];
	struct tcent *tc;
	int64_t not_before, valid_until;
	uint64_t dc_serial;
	const char *dc;
	int e, cached = 0, was_live, version;
	uint8_t acct[NTM_TICKET_ACCOUNT_LEN];

	if (ntm_relay_bind_parse(&b, p, n) < 0)
		return drop(r, out, NTM_RELAY_DROP_MALFORMED);
	if (b.tlen < 1 + NTM_TUNNEL_ID_LEN)
		return drop(r, out, NTM_RELAY_DROP_BAD_TICKET);
	/* Clients re-bind every keepalive with the same ticket: when it is the
	 * one this side was last bound with, skip the signature checks. (One
	 * hash of the ticket, keyed, for this and for the tcache.) */
	crypto_generichash(th, sizeof(th), b.ticket, b.tlen, r->tkey, sizeof(r->tkey));
	s = sess_find(r, b.ticket + 1);
	sd = s ? &s->side[b.side] : NULL;
	if (sd && sd->has_key && ntm_memcmp(sd->thash, th, sizeof(sd->thash)) == 0) {
		memcpy(key, sd->key, sizeof(key));
		valid_until = sd->valid_until;
		dc = sd->dc;
		dc_serial = sd->dc_serial;
		version = sd->version;
		memcpy(acct, sd->acct, sizeof(acct));
		cached = 1;
		if (r->revoked && r->revoked(dc_serial, r->revoked_arg))
			return drop(r, out, NTM_RELAY_DROP_REVOKED);
	} else {
		if (bind_gate(r, &b, p, n, from, fromlen, local, locallen, now_ms, out) < 0)
			return out->action;
		if ((tc = tcache_find(r, th)) != NULL) {
			/* Its signatures held; its time window is checked as
			 * ticket_open would. */
			r->st.ticket_cache_hits++;
			if (now_unix < tc->not_before || now_unix > tc->valid_until)
				return drop(r, out, NTM_RELAY_DROP_EXPIRED);
			ti = tc->ti;
			valid_until = tc->valid_until;
		} else {
			r->st.ticket_checks++;
			e = ticket_open(&ti, &not_before, &valid_until, b.ticket, b.tlen, r->as_pk,
			    r->name, r->curve_pk, r->curve_sk, now_unix);
			if (e == NTM_ERR_EXPIRED)
				return drop(r, out, NTM_RELAY_DROP_EXPIRED);
			if (e < 0)
				return drop(r, out, NTM_RELAY_DROP_BAD_TICKET);
			tcache_put(r, th, &ti, not_before, valid_until);
		}
		if (r->revoked && r->revoked(ti.dc_serial, r->revoked_arg)) {
			ntm_wipe(&ti, sizeof(ti));
			return drop(r, out, NTM_RELAY_DROP_REVOKED);
		}
		memcpy(key, ti.relay_key, sizeof(key));
		dc = ti.dc;
		dc_serial = ti.dc_serial;
		version = ti.version;
		memcpy(acct, ti.account, sizeof(acct));
	}
	if (ntm_relay_bind_verify(p, n, key) < 0) {
		e = NTM_RELAY_DROP_BAD_MAC;
		goto fail;
	}
	if (now_unix > valid_until) {
		e = NTM_RELAY_DROP_EXPIRED;
		goto fail;
	}
	if (sd && b.counter <= sd->last_ctr) {
		e = NTM_RELAY_DROP_REPLAY;
		goto fail;
	}
	if (b.counter == 0) {
		e = NTM_RELAY_DROP_REPLAY;	/* 0 is never sent */
		goto fail;
	}
	/* A session belongs to the DC whose ticket opened it: another DC's
	 * ticket for the same tunnel id neither takes a side nor refreshes it. */
	if (s && strcmp(s->dc, dc) != 0) {
		e = NTM_RELAY_DROP_OTHER_DC;
		goto fail;
	}
	/* A side bound from a new host counts against that host's quota. */
	if ((sd == NULL || !sd->bound || !ntm_sa_same_host((const struct sockaddr *)&sd->addr,
	    (const struct sockaddr *)from)) &&
	    client_count(r, from) >= r->lim.client_sessions) {
		e = NTM_RELAY_DROP_CLIENT_QUOTA;
		goto fail;
	}
	if (s == NULL) {
		if (r->st.sessions >= r->lim.max_sessions) {
			e = NTM_RELAY_DROP_FULL;
			goto fail;
		}
		/* A v1 ticket names no account: only the quotas above and the
		 * DC's share hold it (docs/protocol.md §4.4, transition). */
		if (version == NTM_TICKET_V2 &&
		    acct_count(r, dc, acct) >= r->lim.account_sessions) {
			e = NTM_RELAY_DROP_ACCOUNT_QUOTA;
			goto fail;
		}
		if (qcnt_get(r, r->dcnt, dc, strlen(dc)) >= r->dc_cap) {
			e = NTM_RELAY_DROP_DC_QUOTA;
			goto fail;
		}
		if ((s = sess_add(r, b.ticket + 1, dc, version, acct, now_ms)) == NULL) {
			e = NTM_RELAY_DROP_FULL;
			goto fail;
		}
		sd = &s->side[b.side];
	}
	if (!cached) {
		memcpy(sd->key, key, sizeof(key));
		memcpy(sd->thash, th, sizeof(sd->thash));
		sd->has_key = 1;
		sd->valid_until = valid_until;
		snprintf(sd->dc, sizeof(sd->dc), "%s", dc);
		sd->dc_serial = dc_serial;
		sd->version = version;
		memcpy(sd->acct, acct, sizeof(sd->acct));
	}
	was_live = side_live(sd, now_unix) &&
	    ntm_sa_equal((const struct sockaddr *)&sd->addr, (const struct sockaddr *)from);
	sd->last_ctr = b.counter;
	sd->bound_ms = now_ms;
	if (!sd->bound || !ntm_sa_equal((const struct sockaddr *)&sd->addr,
	    (const struct sockaddr *)from)) {
		addr_unlink(r, sd);
		sd->addr = *from;
		sd->addrlen = fromlen;
		addr_link(r, sd);
	}
	sd->local = *local;
	sd->locallen = locallen;
	s->last_ms = now_ms;
	r->st.binds++;

	out->action = NTM_RELAY_REPLY;
	out->to = *from;
	out->tolen = fromlen;
	out->src = *local;
	out->srclen = locallen;
	out->reply_len = (size_t)ntm_relay_ack_make(out->reply, b.side,
	    side_live(&s->side[1 - b.side], now_unix), b.counter, key);
	/* This side just came up and the other waits: tell the other now. */
	if (!was_live && side_live(&s->side[1 - b.side], now_unix) &&
	    s->side[1 - b.side].has_key) {
		const struct rside *o = &s->side[1 - b.side];

		out->notify_len = (size_t)ntm_relay_ack_make(out->notify, o->which, 1,
		    o->last_ctr, o->key);
		out->notify_to = o->addr;
		out->notify_tolen = o->addrlen;
		out->notify_src = o->local;
		out->notify_srclen = o->locallen;
		r->st.notifies++;
	}
	ntm_wipe(key, sizeof(key));
	if (!cached)
		ntm_wipe(&ti, sizeof(ti));
	return NTM_RELAY_REPLY;
fail:
	ntm_wipe(key, sizeof(key));
	if (!cached)
		ntm_wipe(&ti, sizeof(ti));
	return drop(r, out, e);
}

static int
has_idx(const struct rside *sd, uint32_t idx)
{
	for (unsigned i = 0; i < sd->nidx; i++)
		if (sd->idx[i] == idx)
			return 1;
	return 0;
}

static void
learn_idx(struct rside *sd, uint32_t idx)
{
	if (has_idx(sd, idx))
		return;
	if (sd->nidx < IDX_KEEP)
		sd->nidx++;
	memmove(sd->idx + 1, sd->idx, (sd->nidx - 1) * sizeof(sd->idx[0]));
	sd->idx[0] = idx;
}

static uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * A client has one UDP socket for all its tunnels, so one address may be
 * bound in several sessions. HS_INIT names its tunnel; HS_RESP and DATA
 * name the receiver's index, which the RS learns from the handshakes (and
 * from DATA while the address is in one session only).
 */
static int
on_forward(struct ntm_relay *r, int type, const uint8_t *p, size_t n,
    const struct sockaddr_storage *from, int64_t now_ms, int64_t now_unix,
    struct ntm_relay_out *out)
{
	struct rside *sd, *hit = NULL, *only = NULL, *peer;
	size_t ncand = 0;
	uint32_t ridx = 0;

	if (type != NTM_MSG_HS_INIT)
		ridx = get_u32(p + (type == NTM_MSG_HS_RESP ? 8 : 4));
	for (sd = r->abl[addr_bucket(r, from)]; sd; sd = sd->anext) {
		if (!ntm_sa_equal((const struct sockaddr *)&sd->addr,
		    (const struct sockaddr *)from))
			continue;
		ncand++;
		only = sd;
		peer = &sd->sess->side[1 - sd->which];
		if (type == NTM_MSG_HS_INIT) {
			if (memcmp(sd->sess->tid, p + 8, NTM_TUNNEL_ID_LEN) == 0) {
				hit = sd;
				break;
			}
		} else if (has_idx(peer, ridx)) {
			hit = sd;
			break;
		}
	}
	if (hit == NULL && ncand == 1 && type != NTM_MSG_HS_INIT)
		hit = only;
	if (hit == NULL)
		return drop(r, out, NTM_RELAY_DROP_UNBOUND);
	peer = &hit->sess->side[1 - hit->which];
	if (!peer->bound)
		return drop(r, out, NTM_RELAY_DROP_UNBOUND);
	if (!side_live(hit, now_unix) || !side_live(peer, now_unix))
		return drop(r, out, NTM_RELAY_DROP_EXPIRED);
	if (bucket_take(&hit->sess->tokens, &hit->sess->tok_ms, r->lim.session_pps,
	    now_ms) < 0)
		return drop(r, out, NTM_RELAY_DROP_RATE);
	if (type == NTM_MSG_HS_INIT || type == NTM_MSG_HS_RESP)
		learn_idx(hit, get_u32(p + 4));
	if (type != NTM_MSG_HS_INIT)
		learn_idx(peer, ridx);
	hit->packets++;
	hit->bytes += n;
	hit->sess->last_ms = now_ms;
	r->st.fwd_packets++;
	r->st.fwd_bytes += n;
	out->action = NTM_RELAY_FORWARD;
	out->to = peer->addr;
	out->tolen = peer->addrlen;
	out->src = peer->local;
	out->srclen = peer->locallen;
	out->reply_len = 0;
	return NTM_RELAY_FORWARD;
}

int
ntm_relay_input(struct ntm_relay *r, const uint8_t *p, size_t n,
    const struct sockaddr *from, socklen_t fromlen,
    const struct sockaddr *local, socklen_t locallen,
    int64_t now_ms, int64_t now_unix, struct ntm_relay_out *out)
{
	struct sockaddr_storage f, l;
	socklen_t flen, llen;
	int t;

	memset(out, 0, sizeof(*out));
	r->st.rx_packets++;
	r->st.rx_bytes += n;
	copy_sa(&f, &flen, from, fromlen);
	copy_sa(&l, &llen, local, locallen);
	if (flen == 0 || (f.ss_family != AF_INET && f.ss_family != AF_INET6))
		return drop(r, out, NTM_RELAY_DROP_MALFORMED);
	if ((t = ntm_msg_validate(p, n)) < 0)
		return drop(r, out, NTM_RELAY_DROP_MALFORMED);
	switch (t) {
	case NTM_MSG_RELAY_BIND:
		return on_bind(r, p, n, &f, flen, &l, llen, now_ms, now_unix, out);
	case NTM_MSG_HS_INIT:
	case NTM_MSG_HS_RESP:
	case NTM_MSG_DATA:
		return on_forward(r, t, p, n, &f, now_ms, now_unix, out);
	default:
		return drop(r, out, NTM_RELAY_DROP_MALFORMED);
	}
}

size_t
ntm_relay_expire(struct ntm_relay *r, int64_t now_ms)
{
	struct rsess *s, *next;
	size_t n = 0;

	for (s = r->all; s; s = next) {
		next = s->next;
		if (now_ms - s->last_ms > r->lim.idle_ms) {
			sess_remove(r, s);
			n++;
		}
	}
	r->st.sessions_expired += n;
	return n;
}

void
ntm_relay_get_stats(const struct ntm_relay *r, struct ntm_relay_stats *st)
{
	*st = r->st;
}

void
ntm_relay_walk(const struct ntm_relay *r, int64_t now_ms, ntm_relay_walk_fn *fn, void *arg)
{
	struct ntm_relay_sess_info info;
	const struct rsess *s;

	for (s = r->all; s; s = s->next) {
		memset(&info, 0, sizeof(info));
		memcpy(info.tunnel_id, s->tid, NTM_TUNNEL_ID_LEN);
		memcpy(info.dc, s->dc, sizeof(info.dc));
		info.ticket_version = s->version;
		memcpy(info.account, s->acct, sizeof(info.account));
		for (int i = 0; i < 2; i++) {
			const struct rside *sd = &s->side[i];
			struct ntm_relay_side_info *si = &info.side[i];

			si->bound = sd->bound;
			si->addr = sd->addr;
			si->addrlen = sd->addrlen;
			si->local = sd->local;
			si->locallen = sd->locallen;
			si->packets = sd->packets;
			si->bytes = sd->bytes;
			si->expires = sd->valid_until;
			si->bound_ms = sd->bound_ms;
			memcpy(si->dc, sd->dc, sizeof(si->dc));
		}
		info.idle_ms = now_ms - s->last_ms;
		info.age_ms = now_ms - s->created_ms;
		fn(&info, arg);
	}
}
