/*
 * csrule.h - the Cache Server's rules that need no I/O (lib/core/csrule.c):
 * names, numbers, object paths, which FQDNs belong to an account, the
 * upload offset rule, the commit checks and the quota. Table-tested in
 * tests/unit/test_cs.c.
 */
#ifndef NTM_CSRULE_H
#define NTM_CSRULE_H

#include <stddef.h>
#include <stdint.h>

#include "ntm-core.h"

#define NTM_CS_CHUNK_MAX	(4 * 1024 * 1024)	/* bytes per PUT */

/* 1 if s is exactly n lowercase hex digits. */
int  ntm_cs_valid_hex(const char *s, size_t n);
/* Strict decimal 0..max (no sign, no spaces, no leading zeros but "0"). */
int  ntm_cs_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* 1 if fqdn names a device of account user at DC domain dc: "user.dc" or
 * "user-N.dc" (N decimal), as the DC assigns names. */
int  ntm_cs_fqdn_is_account(const char *fqdn, const char *user, const char *dc);
/* "dir/ab/abcd..." for a hex hash; NTM_ERR_TOOBIG if it does not fit. */
int  ntm_cs_object_path(char *out, size_t cap, const char *dir, const char *hex);

enum ntm_cs_chunk {
	NTM_CS_CHUNK_OK = 0,
	NTM_CS_CHUNK_OFFSET,	/* offset is not the bytes received so far */
	NTM_CS_CHUNK_TOOLONG,	/* would go past the declared size */
	NTM_CS_CHUNK_EMPTY,		/* no bytes */
	NTM_CS_CHUNK_BIG,		/* over NTM_CS_CHUNK_MAX */
};
/* May a chunk of len bytes at offset go to an upload of size bytes that
 * holds have bytes? */
enum ntm_cs_chunk ntm_cs_chunk_check(uint64_t size, uint64_t have, uint64_t offset, size_t len);

enum ntm_cs_commit {
	NTM_CS_COMMIT_OK = 0,
	NTM_CS_COMMIT_SIZE,		/* claimed size differs from the declared one */
	NTM_CS_COMMIT_INCOMPLETE,	/* fewer bytes received than declared */
	NTM_CS_COMMIT_HASH,		/* content hash differs from the claimed one */
};
enum ntm_cs_commit ntm_cs_commit_check(uint64_t declared, uint64_t have, uint64_t claimed,
    const uint8_t *hash, const uint8_t *want);
/* Would an account holding used bytes stay within quota with size more? */
int  ntm_cs_quota_ok(uint64_t used, uint64_t size, uint64_t quota);

#endif
