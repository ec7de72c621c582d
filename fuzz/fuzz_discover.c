/*
 * fuzz_discover.c - libFuzzer harness for the answers the DC and the CS
 * take from their resolver when they look up another DC (cmd/common/
 * discover.c): the first byte picks the query (SRV _ntm._tcp, A, AAAA),
 * the rest is the DNS answer, read by pick_srv() and pick_addr() as the
 * lookup reads it (c-ares parses; discover.c chooses and checks).
 *
 * What a lookup takes must be usable as is: an SRV target is a valid,
 * lower-case DNS name with a port, an address is text that parses back.
 *
 * discover.c is included to reach its static functions.
 *
 * Sources: cmd/common/log.c
 */
#include <limits.h>

#include "../cmd/common/discover.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lookup l;
	uint8_t a[16];
	int which;

	if (size < 1 || size - 1 > INT_MAX)
		return 0;
	which = data[0] % 3;
	memset(&l, 0, sizeof(l));
	if (which == 0) {
		if (pick_srv(&l, data + 1, (int)(size - 1)) == 0) {
			if (l.port == 0 || !ntm_valid_dnsname(l.target))
				abort();
			for (const char *p = l.target; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					abort();
		}
	} else if (pick_addr(&l, which == 1 ? T_A : T_AAAA, data + 1, (int)(size - 1)) == 0 &&
	    inet_pton(which == 1 ? AF_INET : AF_INET6, l.addr, a) != 1)
		abort();
	return 0;
}
