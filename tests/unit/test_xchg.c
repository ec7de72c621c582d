/* test_xchg.c - the key exchange object, fingerprints and the data object. */
#include "unit.h"
#include "ntm-io.h"
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

/*
 * OpenSSL's AEAD (lib/io/xaead.c) makes the same bytes as libsodium's
 * secretstream and leaves the same state, message by message: sizes
 * around the 16- and 64-byte edges, with and without additional data, a
 * FINAL tag, and the counter's wrap (a rekey). Each opens what the other
 * made; a flipped byte anywhere in a message is refused and leaves no
 * plaintext.
 */
TEST(data_aead_openssl_same_bytes)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 32, 63, 64, 65, 1000, 4096,
	    NTM_XDATA_CHUNK - 16, NTM_XDATA_CHUNK - 1, NTM_XDATA_CHUNK };
	static uint8_t m[NTM_XDATA_CHUNK], a[4 + NTM_XDATA_MSG_MAX], b[4 + NTM_XDATA_MSG_MAX];
	static uint8_t out[NTM_XDATA_MSG_MAX], hdr[NTM_XDATA_HDR_MAX];
	uint8_t ids[1][NTM_XKEY_ID], keys[1][NTM_KEY_LEN];
	struct ntm_xseal s1, s2;
	struct ntm_xopen o1, o2;
	long n1, n2, r;
	int h, i, round, fin = 0;
	size_t at, k, bad;

	CHECK_EQ(ntm_crypto_init(), 0);
	ntm_random(m, sizeof(m));
	memcpy(ids[0], kid, NTM_XKEY_ID);
	ntm_random(keys[0], sizeof(keys[0]));
	ntm_xdata_aead(NULL);
	h = ntm_xseal_init(&s1, hdr, sizeof(hdr), 1, (const uint8_t (*)[NTM_XKEY_ID])ids,
	    (const uint8_t (*)[NTM_KEY_LEN])keys);
	CHECK(h > 0);
	s2 = s1;
	CHECK_EQ(ntm_xopen_init(&o1, hdr, (size_t)h, ids[0], keys[0]), 0);
	o2 = o1;
	for (round = 0; round < 3; round++) {
		for (i = 0; i < (int)(sizeof(sizes) / sizeof(sizes[0])); i++) {
			int last = round == 2 && i == (int)(sizeof(sizes) / sizeof(sizes[0])) - 1;

			if (round == 1 && i == 3) {
				/* The counter about to wrap: both rekey. */
				memset(s1.st.nonce, 0xff, 4);
				memset(s2.st.nonce, 0xff, 4);
				memset(o1.st.nonce, 0xff, 4);
				memset(o2.st.nonce, 0xff, 4);
			}
			ntm_xdata_aead(NULL);
			n1 = ntm_xseal_push(&s1, a, sizeof(a), m, sizes[i], last);
			ntm_xaead_openssl();
			n2 = ntm_xseal_push(&s2, b, sizeof(b), m, sizes[i], last);
			CHECK_EQ(n1, (long)(4 + sizes[i] + NTM_XDATA_ABYTES));
			CHECK_EQ(n1, n2);
			CHECK(memcmp(a, b, (size_t)n1) == 0);
			CHECK(memcmp(&s1, &s2, sizeof(s1)) == 0);
			/* Each opens the other's: OpenSSL libsodium's, libsodium OpenSSL's. */
			if (i % 4 == 1) {
				/* A flipped byte: the tag byte, the middle, the MAC. */
				for (at = 4; at < (size_t)n1; at += (size_t)(n1 - 4) / 2 + 1) {
					a[at] ^= 0x10;
					memset(out, 0xaa, sizeof(out));
					CHECK_EQ(ntm_xopen_pull(&o1, out, sizeof(out), a + 4,
					    (size_t)n1 - 4, &fin), NTM_ERR_CRYPTO);
					/* Untouched (libsodium checks first) or wiped. */
					for (bad = 0, k = 0; k < sizes[i]; k++)
						bad += out[k] != 0xaa && out[k] != 0;
					CHECK_EQ(bad, 0);
					a[at] ^= 0x10;
				}
			}
			r = ntm_xopen_pull(&o1, out, sizeof(out), a + 4, (size_t)n1 - 4, &fin);
			CHECK_EQ(r, (long)sizes[i]);
			CHECK(memcmp(out, m, sizes[i]) == 0);
			CHECK_EQ(fin, last);
			ntm_xdata_aead(NULL);
			r = ntm_xopen_pull(&o2, out, sizeof(out), b + 4, (size_t)n2 - 4, &fin);
			CHECK_EQ(r, (long)sizes[i]);
			CHECK(memcmp(out, m, sizes[i]) == 0);
			CHECK(memcmp(&o1.st, &o2.st, sizeof(o1.st)) == 0);
		}
	}
	ntm_xdata_aead(NULL);
}

UNIT_MAIN(T(key_wrap), T(fingerprint), T(temporal_key_sealed_to_the_device), T(data_object),
    T(data_aead_openssl_same_bytes))
