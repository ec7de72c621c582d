/*
 * xchg.c - the end-to-end formats of the non-real-time path (xchg.h,
 * docs/protocol.md §8). I/O free.
 */
#include <string.h>

#include <sodium.h>

#include "xchg.h"

/* "ntm-key-v1" | key_id | from | NUL | to | NUL */
static long
key_ad(uint8_t *ad, size_t cap, const uint8_t key_id[NTM_XKEY_ID], const char *from,
    const char *to)
{
	struct ntm_wr w;

	ntm_wr_init(&w, ad, cap);
	ntm_wr_bytes(&w, "ntm-key-v1", 10);
	ntm_wr_bytes(&w, key_id, NTM_XKEY_ID);
	ntm_wr_bytes(&w, from, strlen(from) + 1);
	ntm_wr_bytes(&w, to, strlen(to) + 1);
	return ntm_wr_done(&w);
}

int
ntm_xkey_wrap(uint8_t out[NTM_XKEY_OBJ_LEN], const uint8_t shared[NTM_KEY_LEN],
    const uint8_t tkey[NTM_KEY_LEN], const uint8_t key_id[NTM_XKEY_ID],
    const char *from, const char *to)
{
	uint8_t ad[10 + NTM_XKEY_ID + 2 * (NTM_NAME_MAX + 1)];
	long adlen = key_ad(ad, sizeof(ad), key_id, from, to);

	if (adlen < 0)
		return NTM_ERR_INVAL;
	memcpy(out, NTM_XKEY_MAGIC, 4);
	ntm_random(out + 4, NTM_AEAD_NONCE);
	ntm_aead_seal(out + 4 + NTM_AEAD_NONCE, shared, NTM_KEY_LEN, ad, (size_t)adlen,
	    out + 4, tkey);
	return 0;
}

int
ntm_xkey_unwrap(uint8_t shared[NTM_KEY_LEN], const uint8_t *obj, size_t n,
    const uint8_t tkey[NTM_KEY_LEN], const uint8_t key_id[NTM_XKEY_ID],
    const char *from, const char *to)
{
	uint8_t ad[10 + NTM_XKEY_ID + 2 * (NTM_NAME_MAX + 1)];
	long adlen = key_ad(ad, sizeof(ad), key_id, from, to);

	if (adlen < 0 || n != NTM_XKEY_OBJ_LEN || memcmp(obj, NTM_XKEY_MAGIC, 4) != 0)
		return NTM_ERR_PROTO;
	return ntm_aead_open(shared, obj + 4 + NTM_AEAD_NONCE, NTM_KEY_LEN + NTM_AEAD_TAG,
	    ad, (size_t)adlen, obj + 4, tkey);
}

void
ntm_xkeypair(uint8_t pk[NTM_XPK_LEN], uint8_t sk[NTM_XSK_LEN])
{
	crypto_box_keypair(pk, sk);
}

int
ntm_xpk_of(uint8_t pk[NTM_XPK_LEN], const uint8_t sk[NTM_XSK_LEN])
{
	return crypto_scalarmult_base(pk, sk) == 0 ? 0 : NTM_ERR_CRYPTO;
}

int
ntm_xtkey_seal(uint8_t out[NTM_XTKEY_SEALED_LEN], const uint8_t tkey[NTM_KEY_LEN],
    const uint8_t pk[NTM_XPK_LEN])
{
	return crypto_box_seal(out, tkey, NTM_KEY_LEN, pk) == 0 ? 0 : NTM_ERR_CRYPTO;
}

int
ntm_xtkey_open(uint8_t tkey[NTM_KEY_LEN], const uint8_t *in, size_t n,
    const uint8_t pk[NTM_XPK_LEN], const uint8_t sk[NTM_XSK_LEN])
{
	if (n != NTM_XTKEY_SEALED_LEN)
		return NTM_ERR_PROTO;
	return crypto_box_seal_open(tkey, in, n, pk, sk) == 0 ? 0 : NTM_ERR_CRYPTO;
}

void
ntm_xkey_fingerprint(char out[NTM_XFP_LEN], const uint8_t key_id[NTM_XKEY_ID],
    const uint8_t shared[NTM_KEY_LEN], const uint8_t xpk[NTM_XPK_LEN])
{
	crypto_generichash_state st;
	uint8_t h[16];
	char hex[33];
	int i;

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)"ntm-fp-v2", 9);
	crypto_generichash_update(&st, key_id, NTM_XKEY_ID);
	crypto_generichash_update(&st, shared, NTM_KEY_LEN);
	crypto_generichash_update(&st, xpk, NTM_XPK_LEN);
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	for (i = 0; i < 8; i++) {
		memcpy(out + i * 5, hex + i * 4, 4);
		out[i * 5 + 4] = i == 7 ? '\0' : ' ';
	}
	sodium_memzero(&st, sizeof(st));
}

/* ---- the data object ---------------------------------------------------------- */

static const struct ntm_xaead *xaead;

void
ntm_xdata_aead(const struct ntm_xaead *a)
{
	xaead = a;
}

/*
 * The installed AEAD is used for messages whose length is a multiple of 16
 * (every whole piece of NTM_XDATA_CHUNK): secretstream pads the ciphertext
 * for Poly1305 with len % 16 zero bytes where RFC 8439 pads to the next
 * multiple of 16, so the two agree only when there is no padding. Other
 * messages (the metadata, a last short piece) are libsodium's.
 */

/* The state's nonce: a 4-byte little-endian counter, then 8 bytes that
 * each message's MAC changes (libsodium's secretstream). */
#define SS_COUNTER	4
#define SS_INONCE	8
_Static_assert(sizeof(((crypto_secretstream_xchacha20poly1305_state *)0)->nonce) ==
    SS_COUNTER + SS_INONCE, "secretstream nonce");
_Static_assert(sizeof(((crypto_secretstream_xchacha20poly1305_state *)0)->k) == 32,
    "secretstream key");

/* The stream's state after a message with mac and tag (as libsodium's). */
static void
ss_next(crypto_secretstream_xchacha20poly1305_state *st, const uint8_t *mac, uint8_t tag)
{
	int i;

	for (i = 0; i < SS_INONCE; i++)
		st->nonce[SS_COUNTER + i] ^= mac[i];
	sodium_increment(st->nonce, SS_COUNTER);
	if ((tag & crypto_secretstream_xchacha20poly1305_TAG_REKEY) != 0 ||
	    sodium_is_zero(st->nonce, SS_COUNTER))
		crypto_secretstream_xchacha20poly1305_rekey(st);
}

/* One message into out (ABYTES + mlen bytes): 0, or -1. */
static int
ss_push(crypto_secretstream_xchacha20poly1305_state *st, uint8_t *out, const uint8_t *m,
    size_t mlen, const uint8_t *ad, size_t adlen, uint8_t tag)
{
	uint8_t blk[64], cblk[64];
	int ret;

	if (xaead == NULL || mlen % 16 != 0)
		return crypto_secretstream_xchacha20poly1305_push(st, out, NULL, m, mlen, ad,
		    adlen, tag);
	memset(blk, 0, sizeof(blk));
	blk[0] = tag;
	if ((ret = xaead->seal(st->k, st->nonce, ad, adlen, blk, m, mlen, cblk, out + 1,
	    out + 1 + mlen)) == 0) {
		out[0] = cblk[0];
		ss_next(st, out + 1 + mlen, tag);
	}
	sodium_memzero(cblk, sizeof(cblk));
	return ret == 0 ? 0 : -1;
}

/* One message in (inlen bytes) opened into m: 0 with *mlen, *tag, or -1. */
static int
ss_pull(crypto_secretstream_xchacha20poly1305_state *st, uint8_t *m, size_t *mlen,
    uint8_t *tag, const uint8_t *in, size_t inlen, const uint8_t *ad, size_t adlen)
{
	unsigned long long ml;
	uint8_t blk[64], cblk[64];
	size_t n;
	int ret;

	if (xaead == NULL || inlen < crypto_secretstream_xchacha20poly1305_ABYTES ||
	    (inlen - crypto_secretstream_xchacha20poly1305_ABYTES) % 16 != 0) {
		ret = crypto_secretstream_xchacha20poly1305_pull(st, m, &ml, tag, in, inlen, ad,
		    adlen);
		*mlen = (size_t)ml;
		return ret;
	}
	n = inlen - crypto_secretstream_xchacha20poly1305_ABYTES;
	/* The tag block's ciphertext: its first byte, then the key stream. */
	memset(cblk, 0, sizeof(cblk));
	crypto_stream_chacha20_ietf_xor_ic(cblk, cblk, sizeof(cblk), st->nonce, 1U, st->k);
	cblk[0] = in[0];
	if ((ret = xaead->open(st->k, st->nonce, ad, adlen, cblk, in + 1, n, in + 1 + n, blk,
	    m)) == 0) {
		*tag = blk[0];
		*mlen = n;
		ss_next(st, in + 1 + n, blk[0]);
	} else
		sodium_memzero(m, n);
	sodium_memzero(cblk, sizeof(cblk));
	sodium_memzero(blk, sizeof(blk));
	return ret == 0 ? 0 : -1;
}

static void
entry_ad(uint8_t ad[11 + NTM_XKEY_ID], const uint8_t key_id[NTM_XKEY_ID])
{
	memcpy(ad, "ntm-data-v1", 11);
	memcpy(ad + 11, key_id, NTM_XKEY_ID);
}

int
ntm_xseal_init(struct ntm_xseal *s, uint8_t *out, size_t cap, int n,
    const uint8_t key_ids[][NTM_XKEY_ID], const uint8_t keys[][NTM_KEY_LEN])
{
	uint8_t ck[crypto_secretstream_xchacha20poly1305_KEYBYTES], ad[11 + NTM_XKEY_ID];
	size_t len = 5 + (size_t)n * NTM_XDATA_ENTRY + NTM_XDATA_SSHDR, off;
	int i;

	if (n < 1 || n > NTM_XDATA_DEST_MAX)
		return NTM_ERR_INVAL;
	if (cap < len)
		return NTM_ERR_TOOBIG;
	memset(s, 0, sizeof(*s));
	crypto_secretstream_xchacha20poly1305_keygen(ck);
	memcpy(out, NTM_XDATA_MAGIC, 4);
	out[4] = (uint8_t)n;
	for (i = 0, off = 5; i < n; i++, off += NTM_XDATA_ENTRY) {
		memcpy(out + off, key_ids[i], NTM_XKEY_ID);
		ntm_random(out + off + NTM_XKEY_ID, NTM_AEAD_NONCE);
		entry_ad(ad, key_ids[i]);
		ntm_aead_seal(out + off + NTM_XKEY_ID + NTM_AEAD_NONCE, ck, sizeof(ck), ad,
		    sizeof(ad), out + off + NTM_XKEY_ID, keys[i]);
	}
	crypto_secretstream_xchacha20poly1305_init_push(&s->st, out + off, ck);
	sodium_memzero(ck, sizeof(ck));
	ntm_hash(s->hdr_hash, out, len);
	s->first = 1;
	return (int)len;
}

long
ntm_xseal_push(struct ntm_xseal *s, uint8_t *out, size_t cap, const void *m, size_t len,
    int final)
{
	size_t need = 4 + len + NTM_XDATA_ABYTES;

	if (len > NTM_XDATA_CHUNK || cap < need)
		return NTM_ERR_TOOBIG;
	out[0] = (uint8_t)((len + NTM_XDATA_ABYTES) >> 24);
	out[1] = (uint8_t)((len + NTM_XDATA_ABYTES) >> 16);
	out[2] = (uint8_t)((len + NTM_XDATA_ABYTES) >> 8);
	out[3] = (uint8_t)(len + NTM_XDATA_ABYTES);
	if (ss_push(&s->st, out + 4, m, len, s->first ? s->hdr_hash : NULL,
	    s->first ? sizeof(s->hdr_hash) : 0,
	    final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0) < 0)
		return NTM_ERR_CRYPTO;
	s->first = 0;
	return (long)need;
}

void
ntm_xseal_wipe(struct ntm_xseal *s)
{
	sodium_memzero(s, sizeof(*s));
}

int
ntm_xopen_hdrlen(const uint8_t first5[5])
{
	if (memcmp(first5, NTM_XDATA_MAGIC, 4) != 0 || first5[4] < 1 ||
	    first5[4] > NTM_XDATA_DEST_MAX)
		return NTM_ERR_PROTO;
	return 5 + first5[4] * NTM_XDATA_ENTRY + (int)NTM_XDATA_SSHDR;
}

int
ntm_xopen_init(struct ntm_xopen *o, const uint8_t *hdr, size_t len,
    const uint8_t key_id[NTM_XKEY_ID], const uint8_t key[NTM_KEY_LEN])
{
	uint8_t ck[crypto_secretstream_xchacha20poly1305_KEYBYTES], ad[11 + NTM_XKEY_ID];
	size_t off;
	int n, i, ret = NTM_ERR_NOTFOUND;

	memset(o, 0, sizeof(*o));
	if (len < 5 || (n = ntm_xopen_hdrlen(hdr)) < 0 || (size_t)n != len)
		return NTM_ERR_PROTO;
	for (i = 0, off = 5; i < hdr[4]; i++, off += NTM_XDATA_ENTRY) {
		if (memcmp(hdr + off, key_id, NTM_XKEY_ID) != 0)
			continue;
		entry_ad(ad, key_id);
		ret = ntm_aead_open(ck, hdr + off + NTM_XKEY_ID + NTM_AEAD_NONCE,
		    NTM_KEY_LEN + NTM_AEAD_TAG, ad, sizeof(ad), hdr + off + NTM_XKEY_ID, key);
		break;
	}
	if (ret == 0 && crypto_secretstream_xchacha20poly1305_init_pull(&o->st,
	    hdr + len - NTM_XDATA_SSHDR, ck) != 0)
		ret = NTM_ERR_CRYPTO;
	sodium_memzero(ck, sizeof(ck));
	if (ret == 0) {
		ntm_hash(o->hdr_hash, hdr, len);
		o->first = 1;
	}
	return ret;
}

long
ntm_xopen_pull(struct ntm_xopen *o, uint8_t *out, size_t cap, const uint8_t *c, size_t clen,
    int *final)
{
	size_t mlen;
	uint8_t tag = 0;

	if (o->done || clen < NTM_XDATA_ABYTES || clen > NTM_XDATA_MSG_MAX)
		return NTM_ERR_PROTO;
	if (cap < clen - NTM_XDATA_ABYTES)
		return NTM_ERR_TOOBIG;
	if (ss_pull(&o->st, out, &mlen, &tag, c, clen, o->first ? o->hdr_hash : NULL,
	    o->first ? sizeof(o->hdr_hash) : 0) != 0)
		return NTM_ERR_CRYPTO;
	o->first = 0;
	*final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
	if (*final)
		o->done = 1;
	return (long)mlen;
}

void
ntm_xopen_wipe(struct ntm_xopen *o)
{
	sodium_memzero(o, sizeof(*o));
}
