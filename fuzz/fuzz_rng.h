/*
 * fuzz_rng.h - deterministic random bytes for the harnesses that make keys
 * and nonces (libsodium's randombytes replaced): the same input makes the
 * same bytes, so a crash replays. rng_ctr numbers the draws; a harness sets
 * it at the start of each input. Install with
 * randombytes_set_implementation(&rng) before sodium_init().
 */
#ifndef FUZZ_RNG_H
#define FUZZ_RNG_H

#include <stdint.h>
#include <string.h>

#include <sodium.h>

static uint64_t rng_ctr;

static void
rng_buf(void *const buf, const size_t n)
{
	uint8_t seed[randombytes_SEEDBYTES];

	memset(seed, 0, sizeof(seed));
	memcpy(seed, &rng_ctr, sizeof(rng_ctr));
	rng_ctr++;
	randombytes_buf_deterministic(buf, n, seed);
}

static uint32_t
rng_random(void)
{
	uint32_t v;

	rng_buf(&v, sizeof(v));
	return v;
}

static const char *
rng_name(void)
{
	return "fuzz";
}

static struct randombytes_implementation rng = {
	.implementation_name = rng_name,
	.random = rng_random,
	.buf = rng_buf,
};

#endif
