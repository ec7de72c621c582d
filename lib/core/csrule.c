/*
 * csrule.c - the Cache Server's rules that need no I/O: names, numbers,
 * paths, the upload offset rule and the commit checks (csrule.h).
 * Table-tested by tests/unit/test_cs.c.
 */
#include <stdio.h>
#include <string.h>

#include "csrule.h"

int
ntm_cs_valid_hex(const char *s, size_t n)
{
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[n] == '\0';
}

int
ntm_cs_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (s == NULL || s[0] == '\0' || (s[0] == '0' && s[1] != '\0') || strlen(s) > 20)
		return NTM_ERR_INVAL;
	for (i = 0; s[i]; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - d) / 10)
			return NTM_ERR_INVAL;
		v = v * 10 + d;
	}
	if (v > max)
		return NTM_ERR_INVAL;
	*out = v;
	return 0;
}

int
ntm_cs_fqdn_is_account(const char *fqdn, const char *user, const char *dc)
{
	size_t ul = strlen(user), dl = strlen(dc), fl, i;

	if (fqdn == NULL || ul == 0 || dl == 0 || strncmp(fqdn, user, ul) != 0)
		return 0;
	fl = strlen(fqdn);
	if (fl < ul + 1 + dl || strcmp(fqdn + fl - dl, dc) != 0 || fqdn[fl - dl - 1] != '.')
		return 0;
	i = ul;
	if (i == fl - dl - 1)
		return 1;			/* user.dc */
	if (fqdn[i] != '-' || i + 1 == fl - dl - 1)
		return 0;
	for (i++; i < fl - dl - 1; i++)		/* user-N.dc */
		if (fqdn[i] < '0' || fqdn[i] > '9')
			return 0;
	return 1;
}

int
ntm_cs_object_path(char *out, size_t cap, const char *dir, const char *hex)
{
	int n = snprintf(out, cap, "%s/%.2s/%s", dir, hex, hex);

	return n < 0 || (size_t)n >= cap ? NTM_ERR_TOOBIG : 0;
}

enum ntm_cs_chunk
ntm_cs_chunk_check(uint64_t size, uint64_t have, uint64_t offset, size_t len)
{
	if (len == 0)
		return NTM_CS_CHUNK_EMPTY;
	if (len > NTM_CS_CHUNK_MAX)
		return NTM_CS_CHUNK_BIG;
	if (offset != have)
		return NTM_CS_CHUNK_OFFSET;
	if (len > size || offset > size - len)
		return NTM_CS_CHUNK_TOOLONG;
	return NTM_CS_CHUNK_OK;
}

enum ntm_cs_commit
ntm_cs_commit_check(uint64_t declared, uint64_t have, uint64_t claimed,
    const uint8_t *hash, const uint8_t *want)
{
	if (claimed != declared)
		return NTM_CS_COMMIT_SIZE;
	if (have != declared)
		return NTM_CS_COMMIT_INCOMPLETE;
	if (hash && want && ntm_memcmp(hash, want, NTM_HASH_LEN) != 0)
		return NTM_CS_COMMIT_HASH;
	return NTM_CS_COMMIT_OK;
}

int
ntm_cs_quota_ok(uint64_t used, uint64_t size, uint64_t quota)
{
	return used <= quota && size <= quota - used;
}
