/*
 * ratelim.h - token buckets per key (a source address, a prefix, a user
 * name) in a table of fixed size, for what an outsider can make a server
 * spend. I/O free: the caller passes the time. Keys are hashed with a
 * secret (SipHash), so an outsider cannot aim two keys at one slot; a key
 * that finds no slot takes the one used longest ago in its 4-way bucket
 * and starts full. Memory: slots x 40 bytes, fixed at creation.
 */
#ifndef NTM_RATELIM_H
#define NTM_RATELIM_H

#include <stddef.h>
#include <stdint.h>

struct ntm_ratelim;

/* A table of about slots keys (rounded up to 4-way buckets), each allowed
 * rate per second with bursts of burst; key16 is the hash's secret (16
 * bytes, random). NULL on a zero or huge size, or out of memory. */
struct ntm_ratelim *ntm_ratelim_new(size_t slots, double rate, double burst,
    const uint8_t key16[16]);
void ntm_ratelim_free(struct ntm_ratelim *l);
/* Takes one token for key k (klen bytes) at now_ms: 1 if there was one,
 * 0 if the key is over its rate. */
int  ntm_ratelim_take(struct ntm_ratelim *l, const void *k, size_t klen, int64_t now_ms);

/* The key of a source address for ntm_ratelim_take: the address itself
 * (plen 0) or its prefix (/24 of IPv4, /56 of IPv6, or plen bits). Reads
 * "ip:port", "[ip6]:port" or a bare address; 0 with out/outlen filled, or
 * -1 for text that is no address. */
int  ntm_ratelim_addr_key(const char *addr, int prefix, uint8_t out[18], size_t *outlen);

#endif
