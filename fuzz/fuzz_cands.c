/*
 * fuzz_cands.c - libFuzzer harness for CANDIDATES (punch.h), the hole
 * punching candidates a moved end sends its peer inside the tunnel: what
 * opens must make again to the same bytes, an IPv4-mapped candidate aside
 * (it opens as IPv4, so it makes again as IPv4: opened once more, the same).
 */
#include <stdlib.h>
#include <string.h>

#include "punch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage c[NTM_PUNCH_CANDS_MAX], c2[NTM_PUNCH_CANDS_MAX];
	uint8_t out[NTM_PUNCH_CANDS_LEN(NTM_PUNCH_CANDS_MAX)];
	uint32_t gen, gen2;
	int nat, nat2, n, n2, len;

	if (ntm_punch_cands_open(data, size, &nat, &gen, c, &n) != 0)
		return 0;
	if ((len = ntm_punch_cands_make(out, sizeof(out), nat, gen, c, n)) < 0 ||
	    (size_t)len != size)
		abort();
	if (ntm_punch_cands_open(out, (size_t)len, &nat2, &gen2, c2, &n2) != 0 ||
	    nat2 != nat || gen2 != gen || n2 != n)
		abort();
	for (int i = 0; i < n; i++)
		if (!ntm_sa_equal((const struct sockaddr *)&c[i], (const struct sockaddr *)&c2[i]))
			abort();
	return 0;
}
