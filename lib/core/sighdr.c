/*
 * sighdr.c - the headers of a signed server-to-server request (sighdr.h,
 * docs/protocol.md §2.2).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntm-core.h"
#include "sighdr.h"

/* Strict decimal int64 (optional leading '-'), nothing else. */
static int
parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || !*s || (*s != '-' && (*s < '0' || *s > '9')) || strlen(s) > 20)
		return NTM_ERR_INVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return NTM_ERR_INVAL;
	*out = v;
	return 0;
}

int
ntm_sighdr_parse(const struct ntm_sighdr *hd, const uint8_t as_pk[NTM_SIGN_PK],
    int64_t now, struct ntm_cert *cert, int64_t *date, uint8_t sig[NTM_SIG_LEN],
    char *why, size_t wlen)
{
	int err;

	if (!hd->date || !hd->cert || !hd->sig || !hd->nonce) {
		snprintf(why, wlen, "missing %s header", !hd->date ? NTM_HDR_DATE :
		    !hd->cert ? NTM_HDR_CERT : !hd->sig ? NTM_HDR_SIG : NTM_HDR_NONCE);
		return NTM_ERR_UNAUTH;
	}
	if (parse_i64(hd->date, date)) {
		snprintf(why, wlen, "malformed %s header", NTM_HDR_DATE);
		return NTM_ERR_UNAUTH;
	}
	if (ntm_b64_decode_exact(sig, NTM_SIG_LEN, hd->sig) < 0) {
		snprintf(why, wlen, "malformed %s header", NTM_HDR_SIG);
		return NTM_ERR_UNAUTH;
	}
	if (ntm_cert_from_b64(cert, hd->cert) < 0) {
		snprintf(why, wlen, "certificate does not decode");
		return NTM_ERR_UNAUTH;
	}
	if ((err = ntm_cert_verify(cert, as_pk, now)) != 0) {
		snprintf(why, wlen, "certificate of '%s' %s", cert->name,
		    err == NTM_ERR_EXPIRED ? "is outside its validity period" :
		    "is not signed by the account server");
		return err;
	}
	return 0;
}
