/*
 * addr.c - virtual address prefixes: parsing, overlap, host addresses.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <string.h>

#include "ntm-core.h"

#define PREFIX_TEXT_MAX	(INET6_ADDRSTRLEN + 4)

static int
alen(int family)
{
	return family == AF_INET ? 4 : 16;
}

/* Strict decimal 0..max: digits only, no sign, no leading zeros. */
static int
parse_len(const char *s, int max)
{
	int v = 0;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return NTM_ERR_INVAL;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return NTM_ERR_INVAL;
		v = v * 10 + (*s - '0');
		if (v > max)
			return NTM_ERR_INVAL;
	}
	return v;
}

/* 1 if the first bits bits of a and b are equal. */
static int
bits_equal(const uint8_t *a, const uint8_t *b, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

int
ntm_prefix_parse(struct ntm_prefix *p, const char *s)
{
	char buf[PREFIX_TEXT_MAX + 1], *slash;
	struct ntm_prefix t;
	int len, bits;

	if (s == NULL || strnlen(s, sizeof(buf)) >= sizeof(buf))
		return NTM_ERR_INVAL;
	strcpy(buf, s);
	if ((slash = strchr(buf, '/')) == NULL)
		return NTM_ERR_INVAL;
	*slash = '\0';
	memset(&t, 0, sizeof(t));
	if (inet_pton(AF_INET, buf, t.addr) == 1)
		t.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, t.addr) == 1)
		t.family = AF_INET6;
	else
		return NTM_ERR_INVAL;
	bits = alen(t.family) * 8;
	if ((len = parse_len(slash + 1, bits)) < 0)
		return NTM_ERR_INVAL;
	t.len = len;
	/* Host bits must be zero: "10.0.0.1/8" is more likely a typo than a
	 * prefix. Compare the host part with zeros. */
	{
		uint8_t masked[16];

		memcpy(masked, t.addr, sizeof(masked));
		for (int i = len; i < bits; i++)
			masked[i / 8] &= (uint8_t)~(0x80 >> (i % 8));
		if (memcmp(masked, t.addr, sizeof(masked)) != 0)
			return NTM_ERR_INVAL;
	}
	*p = t;
	return 0;
}

int
ntm_prefix_overlap(const struct ntm_prefix *a, const struct ntm_prefix *b)
{
	int bits;

	if (a->family != b->family)
		return 0;
	bits = a->len < b->len ? a->len : b->len;
	return bits_equal(a->addr, b->addr, bits);
}

int
ntm_prefix_host(const struct ntm_prefix *p, uint64_t idx, char *out, size_t cap)
{
	uint8_t a[16];
	int n, hostbits;

	if (p->family != AF_INET && p->family != AF_INET6)
		return NTM_ERR_INVAL;
	n = alen(p->family);
	hostbits = n * 8 - p->len;
	if (p->len < 0 || hostbits < 0 || idx == 0)
		return NTM_ERR_INVAL;
	if (hostbits < 64) {
		uint64_t size = (uint64_t)1 << hostbits;

		/* IPv4 loses the broadcast address as well. */
		if (idx >= size || (p->family == AF_INET && idx == size - 1))
			return NTM_ERR_NOSPACE;
	}
	memcpy(a, p->addr, sizeof(a));
	for (int i = 0; i < 8 && i < n; i++)
		a[n - 1 - i] |= (uint8_t)(idx >> (8 * i));
	if (inet_ntop(p->family, a, out, (socklen_t)cap) == NULL)
		return NTM_ERR_TOOBIG;
	return 0;
}

/* ---- push webhook URLs ----------------------------------------------------- */

int
ntm_valid_push_url(const char *s)
{
	const char *auth, *end, *colon;
	size_t len, i;

	if (s == NULL || (len = strlen(s)) > NTM_PUSH_URL_MAX || strncmp(s, "https://", 8) != 0)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	auth = s + 8;
	end = auth + strcspn(auth, "/?#");
	if (end == auth || memchr(auth, '@', (size_t)(end - auth)) != NULL)
		return 0;
	if (auth[0] == '[') {
		char a6[INET6_ADDRSTRLEN];
		uint8_t bin[16];
		const char *rb = memchr(auth, ']', (size_t)(end - auth));

		if (rb == NULL || (size_t)(rb - auth - 1) >= sizeof(a6) || rb == auth + 1)
			return 0;
		memcpy(a6, auth + 1, (size_t)(rb - auth - 1));
		a6[rb - auth - 1] = '\0';
		if (inet_pton(AF_INET6, a6, bin) != 1)
			return 0;
		colon = rb + 1 < end ? rb + 1 : NULL;
		if (colon && *colon != ':')
			return 0;
	} else {
		colon = memchr(auth, ':', (size_t)(end - auth));
		len = (size_t)((colon ? colon : end) - auth);
		if (len == 0 || len > NTM_NAME_MAX)
			return 0;
		for (i = 0; i < len; i++) {
			char ch = auth[i];

			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
				return 0;
		}
	}
	if (colon) {
		long port = 0;
		const char *p = colon + 1;

		if (p == end || end - p > 5 || *p == '0')
			return 0;
		for (; p < end; p++) {
			if (*p < '0' || *p > '9')
				return 0;
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535)
			return 0;
	}
	return 1;
}

int
ntm_url_host(const char *url, char *out, size_t cap)
{
	const char *h, *end;
	size_t n, i;

	if (cap == 0)
		return NTM_ERR_INVAL;
	out[0] = '\0';
	if (!ntm_valid_push_url(url))
		return NTM_ERR_INVAL;
	h = url + 8;
	if (*h == '[')
		end = strchr(++h, ']');
	else
		end = h + strcspn(h, ":/?#");
	n = (size_t)(end - h);
	if (n >= cap)
		return NTM_ERR_TOOBIG;
	for (i = 0; i < n; i++)
		out[i] = (h[i] >= 'A' && h[i] <= 'Z') ? (char)(h[i] - 'A' + 'a') : h[i];
	out[n] = '\0';
	return 0;
}

int
ntm_url_host_is(const char *url, const char *name)
{
	char host[NTM_NAME_MAX + 1];

	return name != NULL && ntm_url_host(url, host, sizeof(host)) == 0 &&
	    strcmp(host, name) == 0;
}

void
ntm_push_url_loggable(const char *url, char *out, size_t cap)
{
	size_t n;

	if (cap == 0)
		return;
	n = url ? strcspn(url, "?#") : 0;
	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(out, url, n);
	out[n] = '\0';
}
