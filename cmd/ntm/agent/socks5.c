/*
 * socks5.c - the SOCKS5 messages the agent's proxy reads (socks5.h).
 */
#include <string.h>

#include "ntm.h"
#include "socks5.h"

long
socks_greeting(const uint8_t *p, size_t n, int *none)
{
	*none = 0;
	if (n < 2)
		return 0;
	if (p[0] != 5)
		return -1;
	if (n < 2 + (size_t)p[1])
		return 0;
	for (int i = 0; i < p[1]; i++)
		*none |= p[2 + i] == 0;
	return 2 + (long)p[1];
}

long
socks_dst(const uint8_t *p, size_t n, struct socks_dst *d)
{
	size_t need;

	if (n < 1)
		return 0;
	d->atyp = p[0];
	if (p[0] == 1)
		d->alen = 4, d->addr = p + 1;
	else if (p[0] == 4)
		d->alen = 16, d->addr = p + 1;
	else if (p[0] == 3) {
		if (n < 2)
			return 0;
		d->alen = p[1], d->addr = p + 2;
	} else
		return -1;
	need = (size_t)(d->addr - p) + d->alen + 2;
	if (n < need)
		return 0;
	d->port = (uint16_t)(d->addr[d->alen] << 8 | d->addr[d->alen + 1]);
	return (long)need;
}

long
socks_request(const uint8_t *p, size_t n, uint8_t *cmd, struct socks_dst *d)
{
	long h;

	if (n < 4)
		return 0;
	if (p[0] != 5 || p[2] != 0)
		return SOCKS_EHDR;
	*cmd = p[1];
	if ((h = socks_dst(p + 3, n - 3, d)) < 0)
		return SOCKS_EATYP;
	return h == 0 ? 0 : 3 + h;
}

long
socks_udp_header(const uint8_t *p, size_t n, struct socks_dst *d)
{
	long h;

	if (n < 4 || p[0] || p[1] || p[2] != 0 || (h = socks_dst(p + 3, n - 3, d)) <= 0)
		return -1;
	return 3 + h;
}

int
socks_fqdn(const struct socks_dst *d, char *name, size_t nlen)
{
	/* A NUL inside would cut the name short: the peer dialled would not
	 * be the one asked for (found by fuzz_socks). */
	if (d->atyp != 3 || d->alen == 0 || d->alen >= nlen ||
	    memchr(d->addr, '\0', d->alen) != NULL)
		return -1;
	memcpy(name, d->addr, d->alen);
	name[d->alen] = '\0';
	if (!ntm_valid_dnsname(name) || strchr(name, '.') == NULL)
		return -1;
	return 0;
}
