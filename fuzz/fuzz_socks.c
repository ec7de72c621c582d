/*
 * fuzz_socks.c - libFuzzer harness for the agent's SOCKS5 proxy
 * (cmd/ntm/agent/socks.c): the input is what a client sends on TCP, read
 * as the proxy reads it (a greeting, then a request, through its 262-byte
 * window), and the same bytes as a UDP ASSOCIATE datagram.
 *
 * Each message parses the same at every length it may arrive in: a prefix
 * of it asks for more bytes, never an answer; what parses lies inside the
 * bytes given; a domain name taken as a peer is a valid FQDN; a datagram
 * the proxy builds for the client parses back to its source and data.
 *
 * Sources: cmd/ntm/agent/socks5.c
 */
#include <stdlib.h>
#include <string.h>

#include "ntm.h"
#include "socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WINDOW	(4 + 1 + 255 + 2)	/* socks.c's on_sc_read */

static void
check_dst(const uint8_t *p, size_t n, long h, const struct socks_dst *d)
{
	char name[NTM_NAME_MAX + 1];

	if (h <= 0)
		return;
	if ((size_t)h > n || d->addr < p || d->addr + d->alen + 2 > p + h)
		abort();
	if (socks_fqdn(d, name, sizeof(name)) == 0 &&
	    (d->atyp != 3 || strlen(name) != d->alen || !ntm_valid_dnsname(name) ||
	    memcmp(name, d->addr, d->alen) != 0))
		abort();
}

/* The UDP datagram header the proxy writes for the client (socks.c's
 * agent_socks_udp), parsed back. */
static void
udp_roundtrip(const struct socks_dst *d, const uint8_t *payload, size_t plen)
{
	uint8_t b[4 + 16 + 2 + 64];
	struct socks_dst back;
	size_t n = d->atyp == 1 ? 4 : 16;
	long h;

	if (d->atyp != 1 && d->atyp != 4)
		return;
	if (plen > 64)
		plen = 64;
	b[0] = b[1] = b[2] = 0;
	b[3] = d->atyp;
	memcpy(b + 4, d->addr, n);
	b[4 + n] = (uint8_t)(d->port >> 8);
	b[5 + n] = (uint8_t)d->port;
	memcpy(b + 6 + n, payload, plen);
	if ((h = socks_udp_header(b, 6 + n + plen, &back)) != (long)(6 + n) ||
	    back.atyp != d->atyp || back.port != d->port || back.alen != n ||
	    memcmp(back.addr, d->addr, n) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks_dst d;
	size_t w = size < WINDOW ? size : WINDOW, k;
	long g, h;
	uint8_t cmd;
	int none;

	/* UDP ASSOCIATE: the whole input as one datagram */
	if ((h = socks_udp_header(data, size, &d)) > 0) {
		check_dst(data, size, h, &d);
		udp_roundtrip(&d, data + h, size - (size_t)h);
	}

	/* TCP: the greeting */
	if ((g = socks_greeting(data, w, &none)) > (long)w)
		abort();
	for (k = 0; g > 0 && k < (size_t)g; k++)
		if (socks_greeting(data, k, &none) != 0)
			abort();
	if (g <= 0)
		return 0;
	(void)socks_greeting(data, (size_t)g, &none);
	if (!none)
		return 0;
	data += g, size -= (size_t)g;

	/* then the request */
	w = size < WINDOW ? size : WINDOW;
	h = socks_request(data, w, &cmd, &d);
	if (h == 0 || h == SOCKS_EHDR || h == SOCKS_EATYP)
		return 0;
	if (h < 0 || (size_t)h > w)
		abort();
	check_dst(data + 3, w - 3, h - 3, &d);
	for (k = 4; k < (size_t)h; k++) {
		struct socks_dst e;

		if (socks_request(data, k, &cmd, &e) != 0)
			abort();
	}
	udp_roundtrip(&d, data + h, size - (size_t)h);
	return 0;
}
