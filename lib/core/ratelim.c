/* ratelim.c - token buckets per key in a fixed table (ratelim.h). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ratelim.h"

#define WAYS	4

struct slot {
	uint64_t	 h;		/* 0: free */
	int64_t		 at_ms;		/* tokens counted then */
	double		 tokens;
};

struct ntm_ratelim {
	size_t		 nbuckets;
	double		 rate, burst;
	uint8_t		 key[crypto_shorthash_KEYBYTES];
	struct slot	*s;		/* nbuckets * WAYS */
};

struct ntm_ratelim *
ntm_ratelim_new(size_t slots, double rate, double burst, const uint8_t key16[16])
{
	struct ntm_ratelim *l;

	if (slots == 0 || slots > (1u << 24) || rate <= 0 || burst < 1)
		return NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->nbuckets = (slots + WAYS - 1) / WAYS;
	l->rate = rate;
	l->burst = burst;
	memcpy(l->key, key16, sizeof(l->key));
	if ((l->s = calloc(l->nbuckets * WAYS, sizeof(*l->s))) == NULL) {
		free(l);
		return NULL;
	}
	return l;
}

void
ntm_ratelim_free(struct ntm_ratelim *l)
{
	if (l == NULL)
		return;
	free(l->s);
	free(l);
}

int
ntm_ratelim_take(struct ntm_ratelim *l, const void *k, size_t klen, int64_t now_ms)
{
	uint8_t hb[crypto_shorthash_BYTES];
	struct slot *b, *hit = NULL, *old = NULL;
	uint64_t h;

	crypto_shorthash(hb, k, klen, l->key);
	memcpy(&h, hb, sizeof(h));
	h |= 1;				/* never 0, the free mark */
	b = &l->s[(h >> 1) % l->nbuckets * WAYS];
	for (int i = 0; i < WAYS; i++) {
		if (b[i].h == h) {
			hit = &b[i];
			break;
		}
		if (old == NULL || b[i].h == 0 || (old->h != 0 && b[i].at_ms < old->at_ms))
			old = &b[i];
	}
	if (hit == NULL) {
		hit = old;
		hit->h = h;
		hit->tokens = l->burst;
		hit->at_ms = now_ms;
	} else if (now_ms > hit->at_ms) {
		hit->tokens += (double)(now_ms - hit->at_ms) * l->rate / 1000.0;
		if (hit->tokens > l->burst)
			hit->tokens = l->burst;
		hit->at_ms = now_ms;
	} else if (now_ms < hit->at_ms)
		hit->at_ms = now_ms;		/* a clock that went back */
	if (hit->tokens < 1)
		return 0;
	hit->tokens -= 1;
	return 1;
}

int
ntm_ratelim_addr_key(const char *addr, int prefix, uint8_t out[18], size_t *outlen)
{
	char buf[64];
	const char *p = addr;
	size_t n;
	uint8_t bin[16];
	int v6, bits, full;

	if (addr == NULL)
		return -1;
	if (*p == '[') {
		const char *e = strchr(p, ']');

		if (e == NULL || (n = (size_t)(e - p - 1)) >= sizeof(buf))
			return -1;
		memcpy(buf, p + 1, n);
		buf[n] = '\0';
	} else {
		const char *c = strchr(p, ':'), *c2 = c ? strchr(c + 1, ':') : NULL;

		/* "a.b.c.d:port" has one colon; a bare IPv6 has several. */
		n = c && c2 == NULL ? (size_t)(c - p) : strlen(p);
		if (n >= sizeof(buf))
			return -1;
		memcpy(buf, p, n);
		buf[n] = '\0';
	}
	if (inet_pton(AF_INET6, buf, bin) == 1)
		v6 = 1;
	else if (inet_pton(AF_INET, buf, bin) == 1)
		v6 = 0;
	else
		return -1;
	/* An IPv4-mapped IPv6 address is the IPv4 client. */
	if (v6 && memcmp(bin, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		memmove(bin, bin + 12, 4);
		v6 = 0;
	}
	full = v6 ? 128 : 32;
	bits = prefix == 0 ? full : prefix < 0 ? (v6 ? 56 : 24) : prefix;
	if (bits > full)
		bits = full;
	memset(out, 0, 18);
	out[0] = v6 ? 6 : 4;
	out[1] = (uint8_t)bits;
	for (int i = 0; i < full / 8; i++) {
		int keep = bits - 8 * i;

		out[2 + i] = keep >= 8 ? bin[i] : keep <= 0 ? 0 :
		    (uint8_t)(bin[i] & (0xff << (8 - keep)));
	}
	*outlen = 2 + (size_t)full / 8;
	return 0;
}
