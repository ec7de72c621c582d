/*
 * reg.c - the sealed registration channel between a client and its DC:
 * REG_REQ, REG_RESP, NUDGE and MOVED (docs/protocol.md §4.2). I/O free.
 *
 * Sealed message = hdr(4) | session_id(16) | counter u64 | XChaCha20-
 * Poly1305(payload) + tag(16). Nonce = 16 zero bytes || counter (big-endian),
 * AD = the 28 bytes before the ciphertext, key = the sender's tx.
 */
#include <string.h>

#include <sodium.h>

#include "bytes.h"
#include "reg.h"

/* Largest payload of the three, for the stack buffer openers decrypt into. */
#define PAYLOAD_MAX	NTM_REG_REQ_PAYLOAD

void
ntm_chan_init(struct ntm_chan *c, const uint8_t sid[NTM_SID_LEN],
    const uint8_t tx[NTM_KEY_LEN], const uint8_t rx[NTM_KEY_LEN])
{
	memset(c, 0, sizeof(*c));
	memcpy(c->sid, sid, NTM_SID_LEN);
	memcpy(c->tx, tx, NTM_KEY_LEN);
	memcpy(c->rx, rx, NTM_KEY_LEN);
	c->send_ctr = 0;
	ntm_window_init(&c->win);
}

void
ntm_chan_wipe(struct ntm_chan *c)
{
	if (c != NULL)
		sodium_memzero(c, sizeof(*c));
}

const uint8_t *
ntm_reg_sid(const uint8_t *p, size_t n)
{
	if (p == NULL || n < NTM_SEALED_HDR)
		return NULL;
	return p + NTM_HDR_LEN;
}

static void
make_nonce(uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], uint64_t ctr)
{
	memset(nonce, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	put_be64(nonce + 16, ctr);
}

/* Seals payload (plen bytes) as a message of type into out. */
static int
seal(struct ntm_chan *c, enum ntm_msg type, const uint8_t *payload, size_t plen,
    uint8_t *out, size_t cap, uint64_t *ctr_out)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	size_t total = NTM_SEALED_HDR + plen + NTM_TAG_LEN;
	unsigned long long clen;
	uint64_t ctr;

	if (out == NULL || cap < total)
		return NTM_ERR_TOOBIG;
	/* The window refuses UINT64_MAX; stop well before a counter repeats. */
	if (c->send_ctr >= UINT64_MAX - 1)
		return NTM_ERR_EXPIRED;
	ctr = ++c->send_ctr;
	ntm_msg_header(out, type);
	memcpy(out + NTM_HDR_LEN, c->sid, NTM_SID_LEN);
	put_be64(out + NTM_HDR_LEN + NTM_SID_LEN, ctr);
	make_nonce(nonce, ctr);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + NTM_SEALED_HDR, &clen,
	    payload, plen, out, NTM_SEALED_HDR, NULL, nonce, c->tx);
	if (ctr_out != NULL)
		*ctr_out = ctr;
	return (int)total;
}

/*
 * Checks type, exact length and session id, the replay window, and opens
 * into payload (plen bytes). The counter is not recorded yet: the caller
 * does that once the payload parsed (commit()).
 */
static int
open_msg(struct ntm_chan *c, enum ntm_msg type, const uint8_t *p, size_t n,
    uint8_t *payload, size_t plen, uint64_t *ctr)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long mlen;
	int r;

	if ((r = ntm_msg_validate(p, n)) < 0)
		return r;
	if (r != (int)type || n != NTM_SEALED_HDR + plen + NTM_TAG_LEN)
		return NTM_ERR_PROTO;
	if (sodium_memcmp(p + NTM_HDR_LEN, c->sid, NTM_SID_LEN) != 0)
		return NTM_ERR_PROTO;
	*ctr = get_be64(p + NTM_HDR_LEN + NTM_SID_LEN);
	if (*ctr == 0 || ntm_window_check(&c->win, *ctr) != 0)
		return NTM_ERR_REPLAY;		/* 0 is never sent */
	make_nonce(nonce, *ctr);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(payload, &mlen, NULL,
	    p + NTM_SEALED_HDR, n - NTM_SEALED_HDR, p, NTM_SEALED_HDR, nonce,
	    c->rx) != 0 || mlen != plen)
		return NTM_ERR_CRYPTO;
	return 0;
}

static int
addr_ok(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET || ss->ss_family == AF_INET6;
}

/* ---- REG_REQ ------------------------------------------------------------ */

/* u16 local_port | u8 n_addrs (bits 0..3; 4..6 filtering) | u8 flags |
 * 4 x waddr (unused slots zero) */
int
ntm_reg_req_seal(struct ntm_chan *c, const struct ntm_reg_req *r, uint8_t *out,
    size_t cap, uint64_t *ctr_out)
{
	uint8_t pl[NTM_REG_REQ_PAYLOAD];
	int ret;

	if (r->naddrs < 0 || r->naddrs > NTM_REG_ADDRS || (r->flags & ~NTM_REG_F_ALL) ||
	    r->nat > NTM_REG_NAT_MAX || r->filter > NTM_REG_FILTER_MAX)
		return NTM_ERR_INVAL;
	memset(pl, 0, sizeof(pl));
	pl[0] = (uint8_t)(r->local_port >> 8);
	pl[1] = (uint8_t)r->local_port;
	pl[2] = (uint8_t)(r->naddrs | r->filter << NTM_REG_FILTER_SHIFT);
	pl[3] = (uint8_t)(r->flags | r->nat << NTM_REG_NAT_SHIFT);
	for (int i = 0; i < r->naddrs; i++) {
		if (!addr_ok(&r->addrs[i]) || ntm_waddr_put(pl + 4 + i * NTM_WADDR_LEN,
		    (const struct sockaddr *)&r->addrs[i]) != 0)
			return NTM_ERR_INVAL;
	}
	ret = seal(c, NTM_MSG_REG_REQ, pl, sizeof(pl), out, cap, ctr_out);
	sodium_memzero(pl, sizeof(pl));
	return ret;
}

int
ntm_reg_req_open(struct ntm_chan *c, const uint8_t *p, size_t n, struct ntm_reg_req *out)
{
	uint8_t pl[PAYLOAD_MAX];
	struct ntm_reg_req r;
	uint64_t ctr;
	socklen_t len;
	int ret;

	memset(&r, 0, sizeof(r));
	if ((ret = open_msg(c, NTM_MSG_REG_REQ, p, n, pl, NTM_REG_REQ_PAYLOAD, &ctr)) < 0)
		goto out;
	ret = NTM_ERR_PROTO;
	r.local_port = (uint16_t)(pl[0] << 8 | pl[1]);
	r.naddrs = pl[2] & NTM_REG_NADDRS_MASK;
	r.filter = (uint8_t)(pl[2] >> NTM_REG_FILTER_SHIFT & NTM_REG_FILTER_MASK);
	if ((pl[2] & 0x80) || r.filter > NTM_REG_FILTER_MAX)
		goto out;
	r.flags = pl[3] & NTM_REG_F_ALL;
	r.nat = (uint8_t)(pl[3] >> NTM_REG_NAT_SHIFT & NTM_REG_NAT_MASK);
	if (r.naddrs > NTM_REG_ADDRS || r.nat > NTM_REG_NAT_MAX ||
	    (pl[3] & ~(NTM_REG_F_ALL | NTM_REG_NAT_MASK << NTM_REG_NAT_SHIFT)))
		goto out;
	for (int i = 0; i < NTM_REG_ADDRS; i++) {
		const uint8_t *w = pl + 4 + i * NTM_WADDR_LEN;

		if (i >= r.naddrs) {
			if (!sodium_is_zero(w, NTM_WADDR_LEN))
				goto out;
		} else if (ntm_waddr_get(&r.addrs[i], &len, w) != 0) {
			goto out;		/* malformed or an empty used slot */
		}
	}
	ntm_window_update(&c->win, ctr);
	r.ctr = ctr;
	*out = r;
	ret = 0;
out:
	sodium_memzero(pl, sizeof(pl));
	return ret;
}

/* ---- REG_RESP ----------------------------------------------------------- */

/* waddr reflexive | u32 keepalive_s | u32 pending | u64 echo */
int
ntm_reg_resp_seal(struct ntm_chan *c, const struct ntm_reg_resp *r, uint8_t *out,
    size_t cap)
{
	uint8_t pl[NTM_REG_RESP_PAYLOAD];
	struct ntm_wr w;

	memset(pl, 0, sizeof(pl));
	if (r->reflexive.ss_family != AF_UNSPEC &&
	    (!addr_ok(&r->reflexive) ||
	    ntm_waddr_put(pl, (const struct sockaddr *)&r->reflexive) != 0))
		return NTM_ERR_INVAL;
	ntm_wr_init(&w, pl + NTM_WADDR_LEN, sizeof(pl) - NTM_WADDR_LEN);
	ntm_wr_u32(&w, r->keepalive_s);
	ntm_wr_u32(&w, r->pending);
	ntm_wr_u64(&w, r->echo);
	if (ntm_wr_done(&w) != (long)(sizeof(pl) - NTM_WADDR_LEN))
		return NTM_ERR_INVAL;
	return seal(c, NTM_MSG_REG_RESP, pl, sizeof(pl), out, cap, NULL);
}

int
ntm_reg_resp_open(struct ntm_chan *c, const uint8_t *p, size_t n, struct ntm_reg_resp *out)
{
	uint8_t pl[PAYLOAD_MAX];
	struct ntm_reg_resp r;
	struct ntm_cur cur;
	uint64_t ctr;
	socklen_t len;
	int ret;

	memset(&r, 0, sizeof(r));
	if ((ret = open_msg(c, NTM_MSG_REG_RESP, p, n, pl, NTM_REG_RESP_PAYLOAD, &ctr)) < 0)
		goto out;
	ret = NTM_ERR_PROTO;
	if (ntm_waddr_get(&r.reflexive, &len, pl) < 0)
		goto out;			/* 1 (empty) leaves AF_UNSPEC */
	ntm_cur_init(&cur, pl + NTM_WADDR_LEN, NTM_REG_RESP_PAYLOAD - NTM_WADDR_LEN);
	ntm_cur_u32(&cur, &r.keepalive_s);
	ntm_cur_u32(&cur, &r.pending);
	ntm_cur_u64(&cur, &r.echo);
	if (ntm_cur_end(&cur) != 0)
		goto out;
	ntm_window_update(&c->win, ctr);
	*out = r;
	ret = 0;
out:
	sodium_memzero(pl, sizeof(pl));
	return ret;
}

/* ---- NUDGE -------------------------------------------------------------- */

/* u32 kind | u32 pending */
int
ntm_nudge_seal(struct ntm_chan *c, const struct ntm_nudge *nu, uint8_t *out, size_t cap)
{
	uint8_t pl[NTM_NUDGE_PAYLOAD];
	struct ntm_wr w;

	if (!NTM_NUDGE_KIND_OK(nu->kind))
		return NTM_ERR_INVAL;
	ntm_wr_init(&w, pl, sizeof(pl));
	ntm_wr_u32(&w, nu->kind);
	ntm_wr_u32(&w, nu->pending);
	if (ntm_wr_done(&w) != (long)sizeof(pl))
		return NTM_ERR_INVAL;
	return seal(c, NTM_MSG_NUDGE, pl, sizeof(pl), out, cap, NULL);
}

int
ntm_nudge_open(struct ntm_chan *c, const uint8_t *p, size_t n, struct ntm_nudge *out)
{
	uint8_t pl[PAYLOAD_MAX];
	struct ntm_nudge nu;
	struct ntm_cur cur;
	uint64_t ctr;
	int ret;

	memset(&nu, 0, sizeof(nu));
	if ((ret = open_msg(c, NTM_MSG_NUDGE, p, n, pl, NTM_NUDGE_PAYLOAD, &ctr)) < 0)
		goto out;
	ret = NTM_ERR_PROTO;
	ntm_cur_init(&cur, pl, NTM_NUDGE_PAYLOAD);
	ntm_cur_u32(&cur, &nu.kind);
	ntm_cur_u32(&cur, &nu.pending);
	if (ntm_cur_end(&cur) != 0 || !NTM_NUDGE_KIND_OK(nu.kind))
		goto out;
	ntm_window_update(&c->win, ctr);
	*out = nu;
	ret = 0;
out:
	sodium_memzero(pl, sizeof(pl));
	return ret;
}

/* ---- MOVED -------------------------------------------------------------- */

/* tunnel_id(16) | waddr endpoint */
int
ntm_moved_seal(struct ntm_chan *c, const struct ntm_moved *m, uint8_t *out, size_t cap)
{
	uint8_t pl[NTM_MOVED_PAYLOAD];

	memset(pl, 0, sizeof(pl));
	memcpy(pl, m->tunnel_id, NTM_TUNNEL_ID_LEN);
	if (!addr_ok(&m->endpoint) || ntm_waddr_put(pl + NTM_TUNNEL_ID_LEN,
	    (const struct sockaddr *)&m->endpoint) != 0)
		return NTM_ERR_INVAL;
	return seal(c, NTM_MSG_MOVED, pl, sizeof(pl), out, cap, NULL);
}

int
ntm_moved_open(struct ntm_chan *c, const uint8_t *p, size_t n, struct ntm_moved *out)
{
	uint8_t pl[PAYLOAD_MAX];
	struct ntm_moved m;
	uint64_t ctr;
	socklen_t len;
	int ret;

	memset(&m, 0, sizeof(m));
	if ((ret = open_msg(c, NTM_MSG_MOVED, p, n, pl, NTM_MOVED_PAYLOAD, &ctr)) < 0)
		goto out;
	ret = NTM_ERR_PROTO;
	memcpy(m.tunnel_id, pl, NTM_TUNNEL_ID_LEN);
	if (ntm_waddr_get(&m.endpoint, &len, pl + NTM_TUNNEL_ID_LEN) != 0)
		goto out;			/* malformed or empty */
	ntm_window_update(&c->win, ctr);
	*out = m;
	ret = 0;
out:
	sodium_memzero(pl, sizeof(pl));
	return ret;
}
