/*
 * crypto.c - thin libsodium wrappers with libntm's sizes and error codes.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ntm-core.h"

int
ntm_crypto_init(void)
{
	if (sodium_init() < 0)
		return NTM_ERR_CRYPTO;
	return 0;
}

void
ntm_random(void *p, size_t n)
{
	randombytes_buf(p, n);
}

void
ntm_wipe(void *p, size_t n)
{
	if (p != NULL)
		sodium_memzero(p, n);
}

int
ntm_memcmp(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0 ? 0 : 1;
}

void
ntm_hash(uint8_t out[NTM_HASH_LEN], const void *p, size_t n)
{
	crypto_hash_sha256(out, p, n);
}

int
ntm_sign_keypair(uint8_t pk[NTM_SIGN_PK], uint8_t sk[NTM_SIGN_SK])
{
	if (crypto_sign_keypair(pk, sk) != 0)
		return NTM_ERR_CRYPTO;
	return 0;
}

void
ntm_sign_pk(uint8_t pk[NTM_SIGN_PK], const uint8_t sk[NTM_SIGN_SK])
{
	crypto_sign_ed25519_sk_to_pk(pk, sk);
}

void
ntm_sign(uint8_t sig[NTM_SIG_LEN], const void *m, size_t n,
    const uint8_t sk[NTM_SIGN_SK])
{
	crypto_sign_detached(sig, NULL, m, n, sk);
}

int
ntm_sign_verify(const uint8_t sig[NTM_SIG_LEN], const void *m, size_t n,
    const uint8_t pk[NTM_SIGN_PK])
{
	if (crypto_sign_verify_detached(sig, m, n, pk) != 0)
		return NTM_ERR_CRYPTO;
	return 0;
}

int
ntm_kx_keypair(uint8_t pk[NTM_KX_PK], uint8_t sk[NTM_KX_SK])
{
	if (crypto_kx_keypair(pk, sk) != 0)
		return NTM_ERR_CRYPTO;
	return 0;
}

int
ntm_kx_session(uint8_t rx[NTM_KEY_LEN], uint8_t tx[NTM_KEY_LEN], int is_client,
    const uint8_t my_pk[NTM_KX_PK], const uint8_t my_sk[NTM_KX_SK],
    const uint8_t peer_pk[NTM_KX_PK])
{
	int r;

	if (is_client)
		r = crypto_kx_client_session_keys(rx, tx, my_pk, my_sk, peer_pk);
	else
		r = crypto_kx_server_session_keys(rx, tx, my_pk, my_sk, peer_pk);
	if (r != 0) {
		/* A low-order peer key: leave nothing usable behind. */
		sodium_memzero(rx, NTM_KEY_LEN);
		sodium_memzero(tx, NTM_KEY_LEN);
		return NTM_ERR_CRYPTO;
	}
	return 0;
}

void
ntm_aead_seal(uint8_t *out, const void *m, size_t n, const void *ad, size_t adlen,
    const uint8_t nonce[NTM_AEAD_NONCE], const uint8_t key[NTM_KEY_LEN])
{
	crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, m, n, ad, adlen,
	    NULL, nonce, key);
}

int
ntm_aead_open(uint8_t *out, const void *c, size_t n, const void *ad, size_t adlen,
    const uint8_t nonce[NTM_AEAD_NONCE], const uint8_t key[NTM_KEY_LEN])
{
	if (n < NTM_AEAD_TAG)
		return NTM_ERR_CRYPTO;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, c, n,
	    ad, adlen, nonce, key) != 0)
		return NTM_ERR_CRYPTO;
	return 0;
}

int
ntm_pwhash(char out[NTM_PWHASH_STR], const char *pw, size_t len)
{
	unsigned long long ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
	size_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;

	if (getenv("NTM_PWHASH_FAST") != NULL) {
		ops = crypto_pwhash_OPSLIMIT_MIN;
		mem = crypto_pwhash_MEMLIMIT_MIN;
	}
	if (len > crypto_pwhash_PASSWD_MAX)
		return NTM_ERR_TOOBIG;
	if (crypto_pwhash_str_alg(out, pw, len, ops, mem,
	    crypto_pwhash_ALG_ARGON2ID13) != 0)
		return NTM_ERR_NOMEM;
	return 0;
}

int
ntm_pwhash_verify(const char *str, const char *pw, size_t len)
{
	if (str == NULL || strnlen(str, NTM_PWHASH_STR) == NTM_PWHASH_STR)
		return NTM_ERR_INVAL;
	if (crypto_pwhash_str_verify(str, pw, len) != 0)
		return NTM_ERR_BADPASS;
	return 0;
}
