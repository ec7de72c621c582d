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
#define SIG_CTX_TO	"ntm-sig-v2"	/* with the receiver's name */
#define ANS_CTX		"ntm-ans-v1"	/* same length as SIG_CTX */
#define SIG_METHOD_MAX	16
#define SIG_PATH_MAX	4096
#define SIG_MSG_MAX	(sizeof(SIG_CTX) + SIG_METHOD_MAX + SIG_PATH_MAX + 32 + \
			 2 * NTM_HASH_LEN + NTM_NONCE_B64 + NTM_NAME_MAX + 8)

/*
 * Builds the signed string. Method and path must be non-empty and free of
 * control characters: a newline in either would let one request's fields
 * be read as another's.
 */
static int
sig_message_ctx(char *out, size_t cap, const char *ctx, const char *method,
    const char *path, int64_t date, const char *nonce, const char *to, const void *body,
    size_t len)
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
	/* The receiver's name, when given, is a DNS name: no newline. */
	if (to != NULL && !ntm_valid_dnsname(to))
		return NTM_ERR_INVAL;
	ntm_hash(digest, len ? body : (const void *)"", len);
	(void)ntm_hex_encode(hex, sizeof(hex), digest, sizeof(digest));
	if (to != NULL)
		n = snprintf(out, cap, "%s\n%s\n%s\n%" PRId64 "\n%s\n%s\n%s",
		    ctx, method, path, date, nonce, to, hex);
	else
		n = snprintf(out, cap, "%s\n%s\n%s\n%" PRId64 "\n%s\n%s",
		    ctx, method, path, date, nonce, hex);
	if (n < 0 || (size_t)n >= cap)
		return NTM_ERR_TOOBIG;
	return n;
}

static int
sig_message(char *out, size_t cap, const char *method, const char *path,
    int64_t date, const char *nonce, const void *body, size_t len)
{
	return sig_message_ctx(out, cap, SIG_CTX, method, path, date, nonce, NULL, body, len);
}

/* An answer's: its status in the place of the date, the request's nonce. */
static int
ans_message(char *out, size_t cap, const char *method, const char *path,
    long status, const char *nonce, const void *body, size_t len)
{
	if (status < 100 || status > 999)
		return NTM_ERR_INVAL;
	return sig_message_ctx(out, cap, ANS_CTX, method, path, status, nonce, NULL, body, len);
}

/*
 * The three signed strings (a request's, one naming its receiver, an
 * answer's) share their signing and checking: the string of kind k into
 * msg, then signed or checked. n < 0: no string could be made (bad fields),
 * so nothing is signed (an empty signature, which receivers refuse) and
 * nothing verifies.
 */
enum sig_kind { SIG_REQ, SIG_REQ_TO, SIG_ANS };

static int
message_of(char *msg, size_t cap, enum sig_kind k, const char *method, const char *path,
    int64_t num, const char *nonce, const char *to, const void *body, size_t len)
{
	switch (k) {
	case SIG_REQ:
		return sig_message(msg, cap, method, path, num, nonce, body, len);
	case SIG_REQ_TO:
		return to ? sig_message_ctx(msg, cap, SIG_CTX_TO, method, path, num, nonce, to,
		    body, len) : NTM_ERR_INVAL;
	case SIG_ANS:
		return ans_message(msg, cap, method, path, (long)num, nonce, body, len);
	}
	return NTM_ERR_INVAL;
}

static void
sign_kind(char sig_b64[NTM_SIG_B64], const uint8_t sk[NTM_SIGN_SK], enum sig_kind k,
    const char *method, const char *path, int64_t num, const char *nonce, const char *to,
    const void *body, size_t len)
{
	char msg[SIG_MSG_MAX];
	uint8_t sig[NTM_SIG_LEN];
	int n;

	/* An unsignable request gets an empty signature, which the receiver
	 * rejects; the caller's own checks should have stopped it earlier. */
	sig_b64[0] = '\0';
	if ((n = message_of(msg, sizeof(msg), k, method, path, num, nonce, to, body, len)) < 0)
		return;
	ntm_sign(sig, msg, (size_t)n, sk);
	(void)ntm_b64_encode(sig_b64, NTM_SIG_B64, sig, sizeof(sig));
}

static int
verify_kind(const char *sig_b64, const uint8_t pk[NTM_SIGN_PK], enum sig_kind k,
    const char *method, const char *path, int64_t num, const char *nonce, const char *to,
    const void *body, size_t len)
{
	char msg[SIG_MSG_MAX];
	uint8_t sig[NTM_SIG_LEN];
	int n;

	if (sig_b64 == NULL || ntm_b64_decode_exact(sig, sizeof(sig), sig_b64) < 0)
		return NTM_ERR_CRYPTO;
	if ((n = message_of(msg, sizeof(msg), k, method, path, num, nonce, to, body, len)) < 0)
		return NTM_ERR_CRYPTO;
	return ntm_sign_verify(sig, msg, (size_t)n, pk);
}

void
ntm_ans_sign(char sig_b64[NTM_SIG_B64], const uint8_t sk[NTM_SIGN_SK],
    const char *method, const char *path, long status, const char *nonce,
    const void *body, size_t len)
{
	sign_kind(sig_b64, sk, SIG_ANS, method, path, status, nonce, NULL, body, len);
}

int
ntm_ans_verify(const char *sig_b64, const uint8_t pk[NTM_SIGN_PK],
    const char *method, const char *path, long status, const char *nonce,
    const void *body, size_t len)
{
	return verify_kind(sig_b64, pk, SIG_ANS, method, path, status, nonce, NULL, body, len);
}

void
ntm_req_sign_to(char sig_b64[NTM_SIG_B64], const uint8_t sk[NTM_SIGN_SK],
    const char *method, const char *path, int64_t date, const char *nonce, const char *to,
    const void *body, size_t len)
{
	sign_kind(sig_b64, sk, SIG_REQ_TO, method, path, date, nonce, to, body, len);
}

int
ntm_req_verify_to(const char *sig_b64, const uint8_t pk[NTM_SIGN_PK],
    const char *method, const char *path, int64_t date, const char *nonce, const char *to,
    const void *body, size_t len)
{
	return verify_kind(sig_b64, pk, SIG_REQ_TO, method, path, date, nonce, to, body, len);
}

void
ntm_req_sign(char sig_b64[NTM_SIG_B64], const uint8_t sk[NTM_SIGN_SK],
    const char *method, const char *path, int64_t date, const char *nonce,
    const void *body, size_t len)
{
	sign_kind(sig_b64, sk, SIG_REQ, method, path, date, nonce, NULL, body, len);
}

int
ntm_req_verify(const char *sig_b64, const uint8_t pk[NTM_SIGN_PK],
    const char *method, const char *path, int64_t date, const char *nonce,
    const void *body, size_t len)
{
	return verify_kind(sig_b64, pk, SIG_REQ, method, path, date, nonce, NULL, body, len);
}

/* ---- replay cache -------------------------------------------------------- */

/*
 * One cache per server, one part per peer (the public key of the signing
 * certificate), so no peer can fill it for others. A peer's part holds at
 * most per_peer accepted signatures, in a ring in the order accepted, with
 * an open-addressing index keyed by SipHash under a random key (nobody can
 * aim collisions). Entries whose date has left the window are dead and
 * leave from the ring's head. When the ring is full its oldest entry is
 * evicted and the peer's floor rises to that entry's date: from then on a
 * request of this peer dated at or below the floor is refused, so an
 * evicted signature can never be replayed. An honest peer's requests carry
 * the current time and stay above its floor while per_peer covers more
 * than a second or two of its traffic, which the per-peer rate limit
 * (a token bucket: rate per second, burst) guarantees.
 */
struct replay_ent {
	uint8_t		sig[NTM_SIG_LEN];
	int64_t		date;
	uint32_t	home;		/* index slot the hash names */
};

#define IDX_EMPTY	UINT32_MAX

struct replay_peer {
	uint8_t			 pk[NTM_SIGN_PK];
	int			 used;
	int64_t			 floor;		/* INT64_MIN: none */
	int64_t			 refill_at;	/* last token refill (s) */
	uint64_t		 tokens;
	int64_t			 last;		/* last request (s) */
	struct replay_ent	*ring;
	size_t			 cap, head, count;
	uint32_t		*idx;
	size_t			 nslots;	/* power of two, >= 2 * cap */
};

struct ntm_replay {
	struct replay_peer	*peers;
	size_t			 max_peers, per_peer;
	unsigned		 rate, burst;
	uint8_t			 key[crypto_shorthash_KEYBYTES];
};

#define REPLAY_MAX	(1u << 20)
#define RING_FIRST	64

/* |a - b| > w, without overflow. */
static int
outside(int64_t a, int64_t b, uint64_t w)
{
	if (a >= b)
		return (uint64_t)a - (uint64_t)b > w;
	return (uint64_t)b - (uint64_t)a > w;
}

struct ntm_replay *
ntm_replay_new(size_t max_peers, size_t per_peer, unsigned rate, unsigned burst)
{
	struct ntm_replay *r;

	if (max_peers == 0 || max_peers > 65536 || per_peer == 0 ||
	    per_peer > REPLAY_MAX || rate == 0 || burst == 0)
		return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->peers = calloc(max_peers, sizeof(*r->peers))) == NULL) {
		free(r);
		return NULL;
	}
	r->max_peers = max_peers;
	r->per_peer = per_peer;
	r->rate = rate;
	r->burst = burst;
	randombytes_buf(r->key, sizeof(r->key));
	return r;
}

static void
peer_clear(struct replay_peer *p)
{
	free(p->ring);
	free(p->idx);
	memset(p, 0, sizeof(*p));
}

void
ntm_replay_free(struct ntm_replay *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->max_peers; i++)
		peer_clear(&r->peers[i]);
	free(r->peers);
	free(r);
}

static uint32_t
replay_hash(const struct ntm_replay *r, const uint8_t sig[NTM_SIG_LEN])
{
	uint8_t h[crypto_shorthash_BYTES];

	crypto_shorthash(h, sig, NTM_SIG_LEN, r->key);
	return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

static struct replay_ent *
ring_at(const struct replay_peer *p, size_t k)
{
	return &p->ring[(p->head + k) % p->cap];
}

/* The index slot holding sig, or the empty slot where it would go. */
static size_t
idx_find(const struct replay_peer *p, const uint8_t sig[NTM_SIG_LEN], uint32_t h)
{
	size_t mask = p->nslots - 1, i;

	for (i = h & mask; p->idx[i] != IDX_EMPTY; i = (i + 1) & mask)
		if (sodium_memcmp(p->ring[p->idx[i]].sig, sig, NTM_SIG_LEN) == 0)
			break;
	return i;
}

/* Removes index slot i (linear probing: shift the run back). */
static void
idx_del(struct replay_peer *p, size_t i)
{
	size_t mask = p->nslots - 1, j = i, k;

	for (;;) {
		j = (j + 1) & mask;
		if (p->idx[j] == IDX_EMPTY)
			break;
		k = p->ring[p->idx[j]].home & mask;
		/* Move j to the hole at i unless its home lies in (i, j]. */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			p->idx[i] = p->idx[j];
			i = j;
		}
	}
	p->idx[i] = IDX_EMPTY;
}

/* Drops the oldest entry. */
static void
ring_pop(struct replay_peer *p)
{
	struct replay_ent *e = ring_at(p, 0);

	idx_del(p, idx_find(p, e->sig, e->home));
	p->head = (p->head + 1) % p->cap;
	p->count--;
}

/* Rebuilds ring and index with room for cap entries. */
static int
ring_grow(struct replay_peer *p, size_t cap)
{
	struct replay_ent *ring;
	uint32_t *idx;
	size_t slots = 16;

	while (slots < 2 * cap)
		slots *= 2;
	ring = calloc(cap, sizeof(*ring));
	idx = malloc(slots * sizeof(*idx));
	if (ring == NULL || idx == NULL) {
		free(ring);
		free(idx);
		return NTM_ERR_NOMEM;
	}
	for (size_t k = 0; k < p->count; k++)
		ring[k] = *ring_at(p, k);
	for (size_t i = 0; i < slots; i++)
		idx[i] = IDX_EMPTY;
	free(p->ring);
	free(p->idx);
	p->ring = ring;
	p->idx = idx;
	p->cap = cap;
	p->nslots = slots;
	p->head = 0;
	for (size_t k = 0; k < p->count; k++) {
		size_t i = idx_find(p, ring[k].sig, ring[k].home);

		p->idx[i] = (uint32_t)k;
	}
	return 0;
}

static void
peer_purge(struct replay_peer *p, int64_t now)
{
	while (p->count > 0 && ring_at(p, 0)->date < now - NTM_SIG_WINDOW)
		ring_pop(p);
}

/* The part of pk, made if need be (a slot whose entries are all dead is
 * taken over); NULL if every slot is live. */
static struct replay_peer *
peer_get(struct ntm_replay *r, const uint8_t pk[NTM_SIGN_PK], int64_t now)
{
	struct replay_peer *freep = NULL, *p;

	for (size_t i = 0; i < r->max_peers; i++) {
		p = &r->peers[i];
		if (p->used && memcmp(p->pk, pk, NTM_SIGN_PK) == 0)
			return p;
		if (freep == NULL && !p->used)
			freep = p;
	}
	if (freep == NULL)
		for (size_t i = 0; i < r->max_peers && freep == NULL; i++) {
			p = &r->peers[i];
			peer_purge(p, now);
			/* Idle for a whole window: its floor no longer
			 * matters (everything below it is stale anyway). */
			if (p->count == 0 && outside(p->last, now, 2 * NTM_SIG_WINDOW)) {
				peer_clear(p);
				freep = p;
			}
		}
	if (freep == NULL)
		return NULL;
	p = freep;
	memcpy(p->pk, pk, NTM_SIGN_PK);
	p->used = 1;
	p->floor = INT64_MIN;
	p->tokens = r->burst;
	p->refill_at = now;
	p->last = now;
	return p;
}

int
ntm_replay_check(struct ntm_replay *r, const uint8_t pk[NTM_SIGN_PK],
    const uint8_t sig[NTM_SIG_LEN], int64_t date, int64_t now)
{
	struct replay_peer *p;
	uint32_t h;
	size_t i;

	if (outside(date, now, NTM_SIG_WINDOW))
		return NTM_ERR_EXPIRED;
	if ((p = peer_get(r, pk, now)) == NULL)
		return NTM_ERR_NOSPACE;
	p->last = now;
	peer_purge(p, now);
	h = replay_hash(r, sig);
	/* Equal signatures cover equal dates, so a stored twin of a fresh
	 * request is itself fresh: a plain lookup is enough. */
	if (p->count > 0 && p->idx[idx_find(p, sig, h)] != IDX_EMPTY)
		return NTM_ERR_REPLAY;
	if (date <= p->floor)
		return NTM_ERR_REPLAY;		/* may be an evicted one */
	if (now > p->refill_at) {
		uint64_t add = (uint64_t)(now - p->refill_at) * r->rate;

		p->tokens = p->tokens + add > r->burst || add > r->burst ?
		    r->burst : p->tokens + add;
		p->refill_at = now;
	}
	if (p->tokens == 0)
		return NTM_ERR_NOSPACE;		/* over the peer's rate */
	if (p->count == p->cap) {
		if (p->cap < r->per_peer) {
			size_t cap = p->cap ? 2 * p->cap : RING_FIRST;

			if (ring_grow(p, cap < r->per_peer ? cap : r->per_peer) < 0)
				return NTM_ERR_NOMEM;
		} else {
			int64_t d = ring_at(p, 0)->date;

			if (d > p->floor)
				p->floor = d;
			ring_pop(p);
			if (date <= p->floor)
				return NTM_ERR_REPLAY;
		}
	}
	p->tokens--;
	{
		struct replay_ent *e = ring_at(p, p->count);

		memcpy(e->sig, sig, NTM_SIG_LEN);
		e->date = date;
		e->home = h;
		i = idx_find(p, sig, h);
		p->idx[i] = (uint32_t)((p->head + p->count) % p->cap);
		p->count++;
	}
	return 0;
}

void
ntm_req_nonce(char nonce_b64[NTM_NONCE_B64])
{
	uint8_t n[NTM_NONCE_LEN];

	ntm_random(n, sizeof(n));
	(void)ntm_b64_encode(nonce_b64, NTM_NONCE_B64, n, sizeof(n));
}
