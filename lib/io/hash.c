/*
 * hash.c - streaming SHA-256 for bulk data (content addresses of CS
 * objects), by OpenSSL: it uses the CPU's SHA instructions where there are
 * some, several times libsodium's speed. In the I/O glue because the core
 * links no OpenSSL.
 */
#include <string.h>

#include <openssl/evp.h>

#include "ntm-io.h"

int
ntm_sha256_init(struct ntm_sha256 *h)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	h->ctx = NULL;
	if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return NTM_ERR_NOMEM;
	}
	h->ctx = c;
	return 0;
}

void
ntm_sha256_update(struct ntm_sha256 *h, const void *p, size_t n)
{
	if (h->ctx && n > 0 && EVP_DigestUpdate(h->ctx, p, n) != 1)
		ntm_sha256_free(h);	/* final then fails */
}

int
ntm_sha256_final(struct ntm_sha256 *h, uint8_t out[NTM_HASH_LEN])
{
	unsigned int len = 0;
	int ok = h->ctx && EVP_DigestFinal_ex(h->ctx, out, &len) == 1 && len == NTM_HASH_LEN;

	ntm_sha256_free(h);
	if (!ok) {
		memset(out, 0, NTM_HASH_LEN);
		return NTM_ERR_NOMEM;
	}
	return 0;
}

void
ntm_sha256_free(struct ntm_sha256 *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}
