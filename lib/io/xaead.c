/*
 * xaead.c - the IETF ChaCha20-Poly1305 AEAD of data-object messages
 * (lib/core/xchg.c, struct ntm_xaead) by OpenSSL, whose vectorised
 * ChaCha20 and Poly1305 take about a third of libsodium's time on CPUs
 * with AVX2 or AVX-512. Same bytes as libsodium's secretstream: the core
 * does the stream's bookkeeping, this only the AEAD of one message.
 */
#include <limits.h>

#include <openssl/evp.h>

#include "ntm-io.h"
#include "xchg.h"

/* One AEAD pass: enc seals (writes mac), else opens (checks mac). */
static int
xaead_run(int enc, const uint8_t k[32], const uint8_t n[12], const uint8_t *ad,
    size_t adlen, const uint8_t inblk[64], const uint8_t *in, size_t len,
    uint8_t outblk[64], uint8_t *out, uint8_t *mac)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	uint8_t end[16];
	int ol, ok;

	if (len > INT_MAX || adlen > INT_MAX)
		ok = 0;
	else
		ok = c != NULL &&
		    EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, k, n, enc) == 1 &&
		    (adlen == 0 || EVP_CipherUpdate(c, NULL, &ol, ad, (int)adlen) == 1) &&
		    EVP_CipherUpdate(c, outblk, &ol, inblk, 64) == 1 && ol == 64 &&
		    (len == 0 || (EVP_CipherUpdate(c, out, &ol, in, (int)len) == 1 &&
		    ol == (int)len)) &&
		    (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, mac) == 1) &&
		    EVP_CipherFinal_ex(c, end, &ol) == 1 && ol == 0 &&
		    (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, mac) == 1);
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

static int
xaead_seal(const uint8_t k[32], const uint8_t n[12], const uint8_t *ad, size_t adlen,
    const uint8_t blk[64], const uint8_t *m, size_t mlen, uint8_t cblk[64], uint8_t *c,
    uint8_t mac[16])
{
	return xaead_run(1, k, n, ad, adlen, blk, m, mlen, cblk, c, mac);
}

static int
xaead_open(const uint8_t k[32], const uint8_t n[12], const uint8_t *ad, size_t adlen,
    const uint8_t cblk[64], const uint8_t *c, size_t clen, const uint8_t mac[16],
    uint8_t blk[64], uint8_t *m)
{
	return xaead_run(0, k, n, ad, adlen, cblk, c, clen, blk, m, (uint8_t *)mac);
}

static const struct ntm_xaead openssl_xaead = { xaead_seal, xaead_open };

void
ntm_xaead_openssl(void)
{
	ntm_xdata_aead(&openssl_xaead);
}
