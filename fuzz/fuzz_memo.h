/*
 * fuzz_memo.h - libsodium's public-key operations remembered, for the
 * sealed harnesses: the same keys, tickets and handshakes come back in
 * nearly every input (the keys are fixed, the random bytes deterministic),
 * and without this ~85% of the time went to recomputing X25519, Ed25519
 * verifications and sealed boxes whose answers were already known.
 *
 * Each wrapper takes libsodium's own name, so the code under test calls it
 * unchanged; it answers from a table keyed by a BLAKE2b-256 of the
 * operation and all its inputs, and otherwise calls libsodium's function
 * (dlsym RTLD_NEXT) and keeps what it answered. The answer is the one
 * libsodium gives for those inputs, so behaviour, coverage (libsodium is
 * not instrumented, nor are these wrappers) and replay are the same as
 * without the table; only the time differs.
 *
 * crypto_box_keypair draws random bytes: it is remembered only with
 * fuzz_rng.h included first, keyed by the draw counter (the bytes drawn
 * depend on nothing else), and a remembered answer moves the counter on as
 * the call did.
 */
#ifndef FUZZ_MEMO_H
#define FUZZ_MEMO_H

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define MEMO_SLOTS	65536		/* direct-mapped, the newest kept (7 MB) */
#define MEMO_OUT	64

struct memo {
	uint8_t		key[32];
	int		used;
	int		ret;
	uint8_t		out[MEMO_OUT];
	uint64_t	rng_adv;	/* draws the call made (keypair) */
};

static struct memo memo_tab[MEMO_SLOTS];

#define MEMO_FN	__attribute__((no_sanitize("coverage"), unused))

MEMO_FN static void *
memo_real(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	if (f == NULL)
		abort();
	return f;
}

/* The slot for key; *hit: it holds key's answer. */
MEMO_FN static struct memo *
memo_slot(const uint8_t key[32], int *hit)
{
	struct memo *m = &memo_tab[(key[0] | (unsigned)key[1] << 8) % MEMO_SLOTS];

	*hit = m->used && memcmp(m->key, key, sizeof(m->key)) == 0;
	return m;
}

MEMO_FN static void
memo_key(uint8_t key[32], const char *op, const void *a, size_t an, const void *b,
    size_t bn, const void *c, size_t cn)
{
	crypto_generichash_state st;
	uint64_t len[3] = { an, bn, cn };

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)op, strlen(op) + 1);
	crypto_generichash_update(&st, (const uint8_t *)len, sizeof(len));
	crypto_generichash_update(&st, a, an);
	crypto_generichash_update(&st, b, bn);
	crypto_generichash_update(&st, c, cn);
	crypto_generichash_final(&st, key, 32);
}

MEMO_FN static void
memo_keep(struct memo *m, const uint8_t key[32], int ret, const void *out, size_t n)
{
	memcpy(m->key, key, sizeof(m->key));
	m->ret = ret;
	if (n)
		memcpy(m->out, out, n);
	m->rng_adv = 0;
	m->used = 1;
}

MEMO_FN int
crypto_scalarmult(unsigned char *q, const unsigned char *n, const unsigned char *p)
{
	static int (*real)(unsigned char *, const unsigned char *, const unsigned char *);
	uint8_t key[32];
	struct memo *m;
	int hit, ret;

	memo_key(key, "scalarmult", n, 32, p, 32, NULL, 0);
	if ((m = memo_slot(key, &hit)), hit) {
		memcpy(q, m->out, 32);
		return m->ret;
	}
	if (real == NULL)
		real = memo_real("crypto_scalarmult");
	ret = real(q, n, p);
	memo_keep(m, key, ret, q, 32);
	return ret;
}

MEMO_FN int
crypto_scalarmult_base(unsigned char *q, const unsigned char *n)
{
	static int (*real)(unsigned char *, const unsigned char *);
	uint8_t key[32];
	struct memo *m;
	int hit, ret;

	memo_key(key, "scalarmult_base", n, 32, NULL, 0, NULL, 0);
	if ((m = memo_slot(key, &hit)), hit) {
		memcpy(q, m->out, 32);
		return m->ret;
	}
	if (real == NULL)
		real = memo_real("crypto_scalarmult_base");
	ret = real(q, n);
	memo_keep(m, key, ret, q, 32);
	return ret;
}

MEMO_FN int
crypto_sign_verify_detached(const unsigned char *sig, const unsigned char *msg,
    unsigned long long mlen, const unsigned char *pk)
{
	static int (*real)(const unsigned char *, const unsigned char *, unsigned long long,
	    const unsigned char *);
	uint8_t key[32];
	struct memo *m;
	int hit, ret;

	memo_key(key, "sign_verify", sig, crypto_sign_BYTES, pk, crypto_sign_PUBLICKEYBYTES,
	    msg, (size_t)mlen);
	if ((m = memo_slot(key, &hit)), hit)
		return m->ret;
	if (real == NULL)
		real = memo_real("crypto_sign_verify_detached");
	ret = real(sig, msg, mlen, pk);
	memo_keep(m, key, ret, NULL, 0);
	return ret;
}

MEMO_FN int
crypto_sign_ed25519_pk_to_curve25519(unsigned char *curve_pk, const unsigned char *ed_pk)
{
	static int (*real)(unsigned char *, const unsigned char *);
	uint8_t key[32];
	struct memo *m;
	int hit, ret;

	memo_key(key, "pk_to_curve25519", ed_pk, 32, NULL, 0, NULL, 0);
	if ((m = memo_slot(key, &hit)), hit) {
		memcpy(curve_pk, m->out, 32);
		return m->ret;
	}
	if (real == NULL)
		real = memo_real("crypto_sign_ed25519_pk_to_curve25519");
	ret = real(curve_pk, ed_pk);
	memo_keep(m, key, ret, curve_pk, 32);
	return ret;
}

/* Only what opened is kept: a box that does not open writes nothing, and
 * is asked of libsodium again. */
MEMO_FN int
crypto_box_seal_open(unsigned char *msg, const unsigned char *c, unsigned long long clen,
    const unsigned char *pk, const unsigned char *sk)
{
	static int (*real)(unsigned char *, const unsigned char *, unsigned long long,
	    const unsigned char *, const unsigned char *);
	uint8_t key[32];
	struct memo *m;
	int hit, ret;

	if (real == NULL)
		real = memo_real("crypto_box_seal_open");
	if (clen < crypto_box_SEALBYTES || clen - crypto_box_SEALBYTES > MEMO_OUT)
		return real(msg, c, clen, pk, sk);
	memo_key(key, "box_seal_open", c, (size_t)clen, pk, crypto_box_PUBLICKEYBYTES, sk,
	    crypto_box_SECRETKEYBYTES);
	if ((m = memo_slot(key, &hit)), hit) {
		memcpy(msg, m->out, (size_t)clen - crypto_box_SEALBYTES);
		return 0;
	}
	if ((ret = real(msg, c, clen, pk, sk)) == 0)
		memo_keep(m, key, 0, msg, (size_t)clen - crypto_box_SEALBYTES);
	return ret;
}

#ifdef FUZZ_RNG_H
MEMO_FN int
crypto_box_keypair(unsigned char *pk, unsigned char *sk)
{
	static int (*real)(unsigned char *, unsigned char *);
	uint64_t before = rng_ctr;
	uint8_t key[32], both[64];
	struct memo *m;
	int hit, ret;

	memo_key(key, "box_keypair", &before, sizeof(before), NULL, 0, NULL, 0);
	if ((m = memo_slot(key, &hit)), hit) {
		memcpy(pk, m->out, 32);
		memcpy(sk, m->out + 32, 32);
		rng_ctr += m->rng_adv;
		return m->ret;
	}
	if (real == NULL)
		real = memo_real("crypto_box_keypair");
	ret = real(pk, sk);
	memcpy(both, pk, 32);
	memcpy(both + 32, sk, 32);
	memo_keep(m, key, ret, both, sizeof(both));
	m->rng_adv = rng_ctr - before;
	return ret;
}
#endif

#endif
