/* test_xchg.c - the key exchange object, fingerprints and the data object. */
#include "unit.h"
#include "xchg.h"

static const uint8_t kid[NTM_XKEY_ID] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

TEST(key_wrap)
{
	uint8_t shared[NTM_KEY_LEN], tkey[NTM_KEY_LEN], other[NTM_KEY_LEN], got[NTM_KEY_LEN];
	uint8_t obj[NTM_XKEY_OBJ_LEN], kid2[NTM_XKEY_ID];
	const char *a = "alice.dc1.ntm.test", *b = "bob.dc2.ntm.test";

	CHECK_EQ(ntm_crypto_init(), 0);
	ntm_random(shared, sizeof(shared));
	ntm_random(tkey, sizeof(tkey));
	ntm_random(other, sizeof(other));
	CHECK_EQ(ntm_xkey_wrap(obj, shared, tkey, kid, a, b), 0);
	CHECK(memcmp(obj, "NTK1", 4) == 0);
	CHECK_EQ(ntm_xkey_unwrap(got, obj, sizeof(obj), tkey, kid, a, b), 0);
	CHECK(memcmp(got, shared, sizeof(got)) == 0);
	/* Wrong key, swapped names, other key id, short, tampered: all refused. */
	CHECK_EQ(ntm_xkey_unwrap(got, obj, sizeof(obj), other, kid, a, b), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_xkey_unwrap(got, obj, sizeof(obj), tkey, kid, b, a), NTM_ERR_CRYPTO);
	memcpy(kid2, kid, sizeof(kid2));
	kid2[0] ^= 1;
	CHECK_EQ(ntm_xkey_unwrap(got, obj, sizeof(obj), tkey, kid2, a, b), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_xkey_unwrap(got, obj, sizeof(obj) - 1, tkey, kid, a, b), NTM_ERR_PROTO);
	obj[40] ^= 0x20;
	CHECK_EQ(ntm_xkey_unwrap(got, obj, sizeof(obj), tkey, kid, a, b), NTM_ERR_CRYPTO);
	obj[40] ^= 0x20;
	obj[0] = 'X';
	CHECK_EQ(ntm_xkey_unwrap(got, obj, sizeof(obj), tkey, kid, a, b), NTM_ERR_PROTO);
}

TEST(fingerprint)
{
	uint8_t k[NTM_KEY_LEN] = { 0 }, xpk[NTM_XPK_LEN] = { 0 };
	char fp[NTM_XFP_LEN], fp2[NTM_XFP_LEN];

	ntm_xkey_fingerprint(fp, kid, k, xpk);
	CHECK_EQ(strlen(fp), NTM_XFP_LEN - 1);
	CHECK_EQ(fp[4], ' ');
	ntm_xkey_fingerprint(fp2, kid, k, xpk);
	CHECK_STR(fp, fp2);
	k[31] = 1;
	ntm_xkey_fingerprint(fp2, kid, k, xpk);
	CHECK(strcmp(fp, fp2) != 0);
	/* Another exchange key (one a DC substituted): another fingerprint. */
	ntm_xkey_fingerprint(fp, kid, k, xpk);
	xpk[0] = 9;
	ntm_xkey_fingerprint(fp2, kid, k, xpk);
	CHECK(strcmp(fp, fp2) != 0);
}

TEST(temporal_key_sealed_to_the_device)
{
	uint8_t pk[NTM_XPK_LEN], sk[NTM_XSK_LEN], pk2[NTM_XPK_LEN], sk2[NTM_XSK_LEN];
	uint8_t t[NTM_KEY_LEN], got[NTM_KEY_LEN], sealed[NTM_XTKEY_SEALED_LEN];

	ntm_xkeypair(pk, sk);
	ntm_xkeypair(pk2, sk2);
	CHECK_EQ(ntm_xpk_of(got, sk), 0);
	CHECK(memcmp(got, pk, NTM_XPK_LEN) == 0);
	ntm_random(t, sizeof(t));
	CHECK_EQ(ntm_xtkey_seal(sealed, t, pk), 0);
	/* Nothing of T in the sealed bytes; only the device key opens it. */
	CHECK(memmem(sealed, sizeof(sealed), t, sizeof(t)) == NULL);
	CHECK_EQ(ntm_xtkey_open(got, sealed, sizeof(sealed), pk, sk), 0);
	CHECK(memcmp(got, t, sizeof(t)) == 0);
	CHECK_EQ(ntm_xtkey_open(got, sealed, sizeof(sealed), pk2, sk2), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_xtkey_open(got, sealed, sizeof(sealed) - 1, pk, sk), NTM_ERR_PROTO);
	sealed[50] ^= 1;
	CHECK_EQ(ntm_xtkey_open(got, sealed, sizeof(sealed), pk, sk), NTM_ERR_CRYPTO);
}

/* Seals meta + payload pieces for two recipients into buf; returns its length. */
static size_t
seal_obj(uint8_t *buf, size_t cap, uint8_t keys[2][NTM_KEY_LEN], uint8_t ids[2][NTM_XKEY_ID])
{
	struct ntm_xseal s;
	static uint8_t piece[NTM_XDATA_CHUNK];
	size_t off;
	long n;
	int h;

	memset(piece, 'x', sizeof(piece));
	h = ntm_xseal_init(&s, buf, cap, 2, (const uint8_t (*)[NTM_XKEY_ID])ids,
	    (const uint8_t (*)[NTM_KEY_LEN])keys);
	CHECK_EQ(h, 5 + 2 * NTM_XDATA_ENTRY + NTM_XDATA_SSHDR);
	off = (size_t)h;
	n = ntm_xseal_push(&s, buf + off, cap - off, "{\"name\":\"f\"}", 12, 0);
	CHECK_EQ(n, 4 + 12 + NTM_XDATA_ABYTES);
	off += (size_t)n;
	n = ntm_xseal_push(&s, buf + off, cap - off, piece, sizeof(piece), 0);
	off += (size_t)n;
	n = ntm_xseal_push(&s, buf + off, cap - off, piece, 10, 1);
	off += (size_t)n;
	CHECK_EQ(ntm_xseal_push(&s, buf, cap, piece, NTM_XDATA_CHUNK + 1, 0), NTM_ERR_TOOBIG);
	ntm_xseal_wipe(&s);
	return off;
}

/* Opens buf as recipient i: total payload bytes, or a negative error. */
static long
open_obj(const uint8_t *buf, size_t len, const uint8_t key[NTM_KEY_LEN],
    const uint8_t id[NTM_XKEY_ID])
{
	static uint8_t out[NTM_XDATA_MSG_MAX];
	struct ntm_xopen o;
	size_t off;
	long total = 0, n;
	int h, fin = 0, e, msgs = 0;

	if ((h = ntm_xopen_hdrlen(buf)) < 0)
		return h;
	if ((e = ntm_xopen_init(&o, buf, (size_t)h, id, key)) < 0)
		return e;
	for (off = (size_t)h; off + 4 <= len && !fin; ) {
		size_t cl = (size_t)buf[off] << 24 | (size_t)buf[off + 1] << 16 |
		    (size_t)buf[off + 2] << 8 | buf[off + 3];

		if (off + 4 + cl > len)
			return NTM_ERR_SHORT;
		if ((n = ntm_xopen_pull(&o, out, sizeof(out), buf + off + 4, cl, &fin)) < 0)
			return n;
		if (msgs++ > 0)
			total += n;
		off += 4 + cl;
	}
	ntm_xopen_wipe(&o);
	return fin && off == len ? total : NTM_ERR_SHORT;
}

TEST(data_object)
{
	static uint8_t buf[2 * NTM_XDATA_MSG_MAX + 1024];
	uint8_t keys[2][NTM_KEY_LEN], ids[2][NTM_XKEY_ID], stranger[NTM_XKEY_ID];
	size_t len;

	ntm_random(keys, sizeof(keys));
	ntm_random(ids, sizeof(ids));
	len = seal_obj(buf, sizeof(buf), keys, ids);
	CHECK_EQ(open_obj(buf, len, keys[0], ids[0]), NTM_XDATA_CHUNK + 10);
	CHECK_EQ(open_obj(buf, len, keys[1], ids[1]), NTM_XDATA_CHUNK + 10);
	/* Not a recipient; right id, wrong key. */
	ntm_random(stranger, sizeof(stranger));
	CHECK_EQ(open_obj(buf, len, keys[0], stranger), NTM_ERR_NOTFOUND);
	CHECK_EQ(open_obj(buf, len, keys[1], ids[0]), NTM_ERR_CRYPTO);
	/* Truncated: no FINAL message. */
	CHECK_EQ(open_obj(buf, len - (4 + 10 + NTM_XDATA_ABYTES), keys[0], ids[0]),
	    NTM_ERR_SHORT);
	/* One flipped byte anywhere: in the other recipient's entry (bound by
	 * the header hash), in the stream header, in a payload message. */
	for (size_t at = 5 + NTM_XDATA_ENTRY + 30; at < len; at += 7919) {
		buf[at] ^= 1;
		CHECK(open_obj(buf, len, keys[0], ids[0]) < 0);
		buf[at] ^= 1;
	}
	CHECK_EQ(open_obj(buf, len, keys[0], ids[0]), NTM_XDATA_CHUNK + 10);
	buf[4] = 17;
	CHECK_EQ(open_obj(buf, len, keys[0], ids[0]), NTM_ERR_PROTO);
}

UNIT_MAIN(T(key_wrap), T(fingerprint), T(temporal_key_sealed_to_the_device), T(data_object))
