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

/* ---- logins sealed to the AS (docs/protocol.md §3.1) -------------------- */

#define LOGIN_BOX_VERSION	1
#define LOGIN_BOX_RENEW		2	/* a proof of the device key, no password */
#define LOGIN_RENEW_PROOF	32
#define LOGIN_RENEW_CTX		"ntm-renew-v1"

static void
wr_name(struct ntm_wr *w, const char *s)
{
	size_t n = strlen(s);

	ntm_wr_u8(w, (uint8_t)n);
	ntm_wr_bytes(w, s, n);
}

static int
cur_str(struct ntm_cur *c, char *out, size_t max)
{
	uint8_t n = 0;

	if (ntm_cur_u8(c, &n) < 0 || n == 0 || n > max || ntm_cur_bytes(c, out, n) < 0)
		return -1;
	out[n] = '\0';
	return strlen(out) == n ? 0 : -1;
}

/* The renewal proof's key: BLAKE2b-256("ntm-renew-v1" || shared). */
static int
renew_key(uint8_t key[32], const uint8_t sk[32], const uint8_t pk[32])
{
	uint8_t shared[crypto_scalarmult_BYTES];
	crypto_generichash_state st;

	if (crypto_scalarmult(shared, sk, pk) != 0)
		return NTM_ERR_CRYPTO;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)LOGIN_RENEW_CTX, sizeof(LOGIN_RENEW_CTX) - 1);
	crypto_generichash_update(&st, shared, sizeof(shared));
	crypto_generichash_final(&st, key, 32);
	sodium_memzero(shared, sizeof(shared));
	return 0;
}

static int
login_seal(char *out, size_t cap, const struct ntm_login_box *b,
    const uint8_t as_pk[NTM_SIGN_PK], const uint8_t *device_sk)
{
	uint8_t plain[NTM_LOGIN_PLAIN_MAX], sealed[NTM_LOGIN_SEALED_MAX], xpk[32], key[32];
	struct ntm_wr w;
	size_t pwlen = strnlen(b->password, sizeof(b->password));
	long n;
	int ret;

	if (!ntm_valid_user(b->user) || !ntm_valid_device(b->device) ||
	    !ntm_valid_dnsname(b->dc) || (device_sk ? pwlen != 0 : pwlen == 0) || pwlen > 256)
		return NTM_ERR_INVAL;
	if (crypto_sign_ed25519_pk_to_curve25519(xpk, as_pk) != 0)
		return NTM_ERR_CRYPTO;
	ntm_wr_init(&w, plain, sizeof(plain));
	ntm_wr_u8(&w, device_sk ? LOGIN_BOX_RENEW : LOGIN_BOX_VERSION);
	wr_name(&w, b->user);
	wr_name(&w, b->device);
	wr_name(&w, b->dc);
	ntm_wr_u64(&w, (uint64_t)b->time);
	ntm_wr_bytes(&w, b->nonce, sizeof(b->nonce));
	ntm_wr_bytes(&w, b->device_key, sizeof(b->device_key));
	if (device_sk == NULL) {
		ntm_wr_u16(&w, (uint16_t)pwlen);
		ntm_wr_bytes(&w, b->password, pwlen);
	}
	if ((n = ntm_wr_done(&w)) < 0) {
		sodium_memzero(plain, sizeof(plain));
		return (int)n;
	}
	if (device_sk) {
		if (renew_key(key, device_sk, xpk) < 0 || (size_t)n + LOGIN_RENEW_PROOF >
		    sizeof(plain)) {
			sodium_memzero(plain, sizeof(plain));
			return NTM_ERR_CRYPTO;
		}
		crypto_generichash(plain + n, LOGIN_RENEW_PROOF, plain, (size_t)n, key,
		    sizeof(key));
		sodium_memzero(key, sizeof(key));
		n += LOGIN_RENEW_PROOF;
	}
	ret = crypto_box_seal(sealed, plain, (unsigned long long)n, xpk) == 0 ?
	    ntm_b64_encode(out, cap, sealed, (size_t)n + crypto_box_SEALBYTES) : NTM_ERR_CRYPTO;
	sodium_memzero(plain, sizeof(plain));
	return ret;
}

int
ntm_login_seal(char *out, size_t cap, const struct ntm_login_box *b,
    const uint8_t as_pk[NTM_SIGN_PK])
{
	return login_seal(out, cap, b, as_pk, NULL);
}

int
ntm_login_seal_renew(char *out, size_t cap, const struct ntm_login_box *b,
    const uint8_t as_pk[NTM_SIGN_PK], const uint8_t device_sk[NTM_DEVKEY_LEN])
{
	if (device_sk == NULL)
		return NTM_ERR_INVAL;
	return login_seal(out, cap, b, as_pk, device_sk);
}

int
ntm_login_open(struct ntm_login_box *b, const char *b64, const uint8_t as_sk[NTM_SIGN_SK])
{
	uint8_t sealed[NTM_LOGIN_SEALED_MAX], plain[NTM_LOGIN_PLAIN_MAX];
	uint8_t xsk[32], xpk[32], key[32], want[LOGIN_RENEW_PROOF];
	const uint8_t *proof;
	struct ntm_cur c;
	uint64_t t = 0;
	uint16_t pwlen = 0;
	uint8_t v = 0;
	size_t plen;
	int n, ret = NTM_ERR_INVAL;

	memset(b, 0, sizeof(*b));
	if (b64 == NULL || strnlen(b64, NTM_B64_LEN(NTM_LOGIN_SEALED_MAX) + 1) >
	    NTM_B64_LEN(NTM_LOGIN_SEALED_MAX) ||
	    (n = ntm_b64_decode(sealed, sizeof(sealed), b64)) < (int)crypto_box_SEALBYTES)
		return NTM_ERR_INVAL;
	if (crypto_sign_ed25519_sk_to_curve25519(xsk, as_sk) != 0 ||
	    crypto_scalarmult_base(xpk, xsk) != 0) {
		sodium_memzero(xsk, sizeof(xsk));
		return NTM_ERR_CRYPTO;
	}
	if (crypto_box_seal_open(plain, sealed, (unsigned long long)n, xpk, xsk) != 0) {
		sodium_memzero(xsk, sizeof(xsk));
		return NTM_ERR_CRYPTO;
	}
	plen = (size_t)n - crypto_box_SEALBYTES;
	ntm_cur_init(&c, plain, plen);
	if (ntm_cur_u8(&c, &v) < 0 || (v != LOGIN_BOX_VERSION && v != LOGIN_BOX_RENEW) ||
	    cur_str(&c, b->user, NTM_USER_MAX) < 0 ||
	    cur_str(&c, b->device, NTM_DEVICE_MAX) < 0 ||
	    cur_str(&c, b->dc, NTM_NAME_MAX) < 0 || ntm_cur_u64(&c, &t) < 0 ||
	    ntm_cur_bytes(&c, b->nonce, sizeof(b->nonce)) < 0 ||
	    ntm_cur_bytes(&c, b->device_key, sizeof(b->device_key)) < 0)
		goto out;
	if (v == LOGIN_BOX_VERSION) {
		if (ntm_cur_u16(&c, &pwlen) < 0 || pwlen == 0 || pwlen > 256 ||
		    ntm_cur_bytes(&c, b->password, pwlen) < 0 || ntm_cur_end(&c) < 0 ||
		    strlen(b->password) != pwlen)
			goto out;
	} else {
		/* The proof: over everything before it, with the key only the
		 * device and we can make. */
		if ((proof = ntm_cur_ptr(&c, LOGIN_RENEW_PROOF)) == NULL || ntm_cur_end(&c) < 0)
			goto out;
		if (renew_key(key, xsk, b->device_key) < 0) {
			ret = NTM_ERR_CRYPTO;
			goto out;
		}
		crypto_generichash(want, sizeof(want), plain, plen - LOGIN_RENEW_PROOF, key,
		    sizeof(key));
		sodium_memzero(key, sizeof(key));
		if (sodium_memcmp(want, proof, sizeof(want)) != 0) {
			ret = NTM_ERR_CRYPTO;
			goto out;
		}
		b->renew = 1;
	}
	b->time = (int64_t)t;
	if (ntm_valid_user(b->user) && ntm_valid_device(b->device) && ntm_valid_dnsname(b->dc))
		ret = 0;
out:
	sodium_memzero(xsk, sizeof(xsk));
	sodium_memzero(plain, sizeof(plain));
	if (ret < 0)
		sodium_memzero(b, sizeof(*b));
	return ret;
}
