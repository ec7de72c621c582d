/*
 * sig.c - signatures over server-to-server HTTP requests
 * (docs/protocol.md 2.2) and the replay cache that goes with them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ntm-core.h"

#define SIG_CTX		"ntm-sig-v1"
#define SIG_METHOD_MAX	16
#define SIG_PATH_MAX	4096
#define SIG_MSG_MAX	(sizeof(SIG_CTX) + SIG_METHOD_MAX + SIG_PATH_MAX + 32 + \
			 2 * NTM_HASH_LEN + NTM_NONCE_B64 + 8)

/*
 * Builds the signed string. Method and path must be non-empty and free of
 * control characters: a newline in either would let one request's fields
 * be read as another's.
 */
static int
sig_message(char *out, size_t cap, const char *method, const char *path,
    int64_t date, const char *nonce, const void *body, size_t len)
{
	uint8_t digest[NTM_HASH_LEN];
	char hex[2 * NTM_HASH_LEN + 1];
	size_t ml, pl;
	int n;

	if (method == NULL || path == NULL)
		return NTM_ERR_INVAL;
	ml = strnlen(method, SIG_METHOD_MAX + 1);
	pl = strnlen(path, SIG_PATH_MAX + 1);
	if (ml == 0 || ml > SIG_METHOD_MAX || pl == 0 || pl > SIG_PATH_MAX)
		return NTM_ERR_INVAL;
	for (size_t i = 0; i < ml; i++)
		if ((unsigned char)method[i] <= ' ' || method[i] == 0x7f)
			return NTM_ERR_INVAL;
	for (size_t i = 0; i < pl; i++)
		if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f)
			return NTM_ERR_INVAL;
	/* The nonce makes two identical requests within one second sign
	 * differently (Ed25519 is deterministic), so the replay cache only
	 * ever refuses a real replay. */
	if (nonce == NULL || strlen(nonce) != NTM_NONCE_B64 - 1)
		return NTM_ERR_INVAL;
	for (const char *q = nonce; *q; q++)
		if (!((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
		    (*q >= '0' && *q <= '9') || *q == '-' || *q == '_'))
			return NTM_ERR_INVAL;
	ntm_hash(digest, len ? body : (const void *)"", len);
	(void)ntm_hex_encode(hex, sizeof(hex), digest, sizeof(digest));
	n = snprintf(out, cap, SIG_CTX "\n%s\n%s\n%" PRId64 "\n%s\n%s",
	    method, path, date, nonce, hex);
	if (n < 0 || (size_t)n >= cap)
		return NTM_ERR_TOOBIG;
	return n;
}

void
ntm_req_sign(char sig_b64[NTM_SIG_B64], const uint8_t sk[NTM_SIGN_SK],
    const char *method, const char *path, int64_t date, const char *nonce,
    const void *body, size_t len)
{
	char msg[SIG_MSG_MAX];
	uint8_t sig[NTM_SIG_LEN];
	int n;

	/* An unsignable request gets an empty signature, which the receiver
	 * rejects; the caller's own checks should have stopped it earlier. */
	sig_b64[0] = '\0';
	if ((n = sig_message(msg, sizeof(msg), method, path, date, nonce, body, len)) < 0)
		return;
	ntm_sign(sig, msg, (size_t)n, sk);
	(void)ntm_b64_encode(sig_b64, NTM_SIG_B64, sig, sizeof(sig));
}

int
ntm_req_verify(const char *sig_b64, const uint8_t pk[NTM_SIGN_PK],
    const char *method, const char *path, int64_t date, const char *nonce,
    const void *body, size_t len)
{
	char msg[SIG_MSG_MAX];
	uint8_t sig[NTM_SIG_LEN];
	int n;

	if (sig_b64 == NULL || ntm_b64_decode_exact(sig, sizeof(sig), sig_b64) < 0)
		return NTM_ERR_CRYPTO;
	if ((n = sig_message(msg, sizeof(msg), method, path, date, nonce, body, len)) < 0)
		return NTM_ERR_CRYPTO;
	return ntm_sign_verify(sig, msg, (size_t)n, pk);
}

/* ---- replay cache -------------------------------------------------------- */

/*
 * Open-addressing hash set of accepted signatures, keyed by SipHash with a
 * random key so nobody can aim collisions. Entries whose date has left the
 * window are dead: a request carrying one would be refused as stale anyway.
 * They are swept out in one rebuild when the table reaches max entries.
 */
struct replay_ent {
	uint8_t		sig[NTM_SIG_LEN];
	int64_t		date;
	int		used;
};

struct ntm_replay {
	struct replay_ent	*tab;
	size_t			 nslots;	/* power of two, >= 2 * max */
	size_t			 count, max;
	int64_t			 swept_at;
	int			 swept;
	uint8_t			 key[crypto_shorthash_KEYBYTES];
};

#define REPLAY_MAX	(1u << 20)

/* |a - b| > w, without overflow. */
static int
outside(int64_t a, int64_t b, uint64_t w)
{
	if (a >= b)
		return (uint64_t)a - (uint64_t)b > w;
	return (uint64_t)b - (uint64_t)a > w;
}

struct ntm_replay *
ntm_replay_new(size_t max_entries)
{
	struct ntm_replay *r;
	size_t slots = 16;

	if (max_entries == 0 || max_entries > REPLAY_MAX)
		return NULL;
	while (slots < 2 * max_entries)
		slots *= 2;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->tab = calloc(slots, sizeof(*r->tab))) == NULL) {
		free(r);
		return NULL;
	}
	r->nslots = slots;
	r->max = max_entries;
	randombytes_buf(r->key, sizeof(r->key));
	return r;
}

void
ntm_replay_free(struct ntm_replay *r)
{
	if (r == NULL)
		return;
	free(r->tab);
	free(r);
}

static size_t
replay_slot(const struct ntm_replay *r, const uint8_t sig[NTM_SIG_LEN])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;

	crypto_shorthash(h, sig, NTM_SIG_LEN, r->key);
	for (size_t i = 0; i < sizeof(h); i++)
		v = v << 8 | h[i];
	return (size_t)v & (r->nslots - 1);
}

static void
replay_insert(struct ntm_replay *r, const uint8_t sig[NTM_SIG_LEN], int64_t date)
{
	size_t i = replay_slot(r, sig);

	while (r->tab[i].used)
		i = (i + 1) & (r->nslots - 1);
	memcpy(r->tab[i].sig, sig, NTM_SIG_LEN);
	r->tab[i].date = date;
	r->tab[i].used = 1;
	r->count++;
}

/* Drops dead entries by reinserting the live ones. */
static void
replay_sweep(struct ntm_replay *r, int64_t now)
{
	struct replay_ent *old = r->tab, *tab;
	size_t n = r->nslots;

	if ((tab = calloc(n, sizeof(*tab))) == NULL)
		return;		/* keep the full table: still correct */
	r->tab = tab;
	r->count = 0;
	for (size_t i = 0; i < n; i++)
		if (old[i].used && !outside(old[i].date, now, NTM_SIG_WINDOW))
			replay_insert(r, old[i].sig, old[i].date);
	free(old);
	r->swept = 1;
	r->swept_at = now;
}

int
ntm_replay_check(struct ntm_replay *r, const uint8_t sig[NTM_SIG_LEN],
    int64_t date, int64_t now)
{
	size_t i;

	if (outside(date, now, NTM_SIG_WINDOW))
		return NTM_ERR_EXPIRED;
	/* Equal signatures cover equal dates, so a stored twin of a fresh
	 * request is itself fresh: a plain lookup is enough. */
	for (i = replay_slot(r, sig); r->tab[i].used; i = (i + 1) & (r->nslots - 1))
		if (sodium_memcmp(r->tab[i].sig, sig, NTM_SIG_LEN) == 0)
			return NTM_ERR_REPLAY;
	if (r->count >= r->max && (!r->swept || r->swept_at != now))
		replay_sweep(r, now);
	if (r->count >= r->max)
		return NTM_ERR_NOSPACE;
	replay_insert(r, sig, date);
	return 0;
}

void
ntm_req_nonce(char nonce_b64[NTM_NONCE_B64])
{
	uint8_t n[NTM_NONCE_LEN];

	ntm_random(n, sizeof(n));
	(void)ntm_b64_encode(nonce_b64, NTM_NONCE_B64, n, sizeof(n));
}
