/*
 * sighdr.h - the headers of a signed server-to-server request
 * (docs/protocol.md §2.2) as the receiver reads them: all four present,
 * the date and signature well formed, the certificate decoded and signed
 * by the AS key, valid now. Pure (no clock, no state): the HTTP server
 * (lib/io/httpd.c) goes on with its own checks of the certificate, the
 * signature over the request (ntm_req_verify) and the replay cache.
 */
#ifndef NTM_SIGHDR_H
#define NTM_SIGHDR_H

#include "ntm-core.h"

/* The headers as received, NULL when absent. */
struct ntm_sighdr {
	const char	*date;		/* NTM-Date */
	const char	*nonce;		/* NTM-Nonce */
	const char	*cert;		/* NTM-Cert */
	const char	*sig;		/* NTM-Signature */
};

/*
 * Reads hd at time now into *cert (as decoded, whatever the outcome after
 * decoding), *date and sig: 0, or with the reason in why (naming the
 * header, or the certificate's name) NTM_ERR_UNAUTH (a header missing or
 * malformed, a certificate that does not decode) or ntm_cert_verify's
 * error (NTM_ERR_CRYPTO not signed by as_pk, NTM_ERR_EXPIRED). The nonce is
 * only required here; ntm_req_verify checks its form.
 */
int ntm_sighdr_parse(const struct ntm_sighdr *hd, const uint8_t as_pk[NTM_SIGN_PK],
    int64_t now, struct ntm_cert *cert, int64_t *date, uint8_t sig[NTM_SIG_LEN],
    char *why, size_t wlen) NTM_WUR;

#endif
