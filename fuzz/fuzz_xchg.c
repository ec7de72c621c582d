/*
 * fuzz_xchg.c - libFuzzer harness for the end-to-end objects (lib/core/xchg.c):
 * the key exchange object and the data object, opened with fixed keys the
 * way ntm fetch does (header length, header, then length-prefixed messages).
 */
#include <stdlib.h>
#include <string.h>

#include "xchg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[NTM_KEY_LEN] = { 1 }, kid[NTM_XKEY_ID] = { 2 };

static void
data_object(const uint8_t *p, size_t n)
{
	static uint8_t out[NTM_XDATA_CHUNK];
	struct ntm_xopen o;
	size_t off, cl;
	int h, fin = 0;

	if (n < 5 || (h = ntm_xopen_hdrlen(p)) < 0 || (size_t)h > n ||
	    ntm_xopen_init(&o, p, (size_t)h, kid, key) < 0)
		return;
	for (off = (size_t)h; off + 4 <= n && !fin; off += 4 + cl) {
		cl = (size_t)p[off] << 24 | (size_t)p[off + 1] << 16 |
		    (size_t)p[off + 2] << 8 | p[off + 3];
		if (cl > n - off - 4 || ntm_xopen_pull(&o, out, sizeof(out), p + off + 4, cl,
		    &fin) < 0)
			break;
	}
	ntm_xopen_wipe(&o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t shared[NTM_KEY_LEN];

	if (ntm_crypto_init() < 0)
		abort();
	if (ntm_xkey_unwrap(shared, data, size, key, kid, "a.dc1.example", "b.dc2.example") == 0)
		abort();	/* forging a tag is not expected of a fuzzer */
	/* A sealed temporal key as a DC hands it over: any bytes, any length. */
	if (ntm_xtkey_open(shared, data, size, key, key) == 0)
		abort();
	data_object(data, size);
	return 0;
}
