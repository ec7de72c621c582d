/* fuzz_cert.c - libFuzzer harness for the server and device certificate
 * codecs (docs/protocol.md §2.1, §2.4): each must round-trip what it
 * accepts, and no input may decode as both; and the opener of logins sealed
 * to the AS (§3.1), which nothing forged may open. */
#include <stdlib.h>
#include <string.h>

#include "ntm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pk[NTM_SIGN_PK];
	struct ntm_cert c;
	struct ntm_dcert d;
	uint8_t out[NTM_CERT_MAX];
	char *text;
	int n;

	if (ntm_cert_decode(&c, data, size) == 0) {
		/* Decoding is strict, so it must round-trip byte for byte. */
		n = ntm_cert_encode(&c, out, sizeof(out));
		if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
			abort();
		(void)ntm_cert_verify(&c, pk, 0);
	}
	/* The same bytes as base64 text. */
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (ntm_cert_from_b64(&c, text) == 0) {
		char b64[NTM_B64_LEN(NTM_CERT_MAX)];

		if (ntm_cert_to_b64(&c, b64, sizeof(b64)) < 0 ||
		    strcmp(b64, text) != 0)
			abort();
	}
	{
		/* A sealed login (§3.1) from text: never opens, never crashes. */
		static uint8_t lpk[NTM_SIGN_PK], lsk[NTM_SIGN_SK];
		struct ntm_login_box lb;

		if (lpk[0] == 0 && lpk[1] == 0 && ntm_sign_keypair(lpk, lsk) < 0)
			abort();
		if (ntm_login_open(&lb, text, lsk) == 0)
			abort();
	}
	if (ntm_dcert_from_b64(&d, text) == 0) {
		char b64[NTM_B64_LEN(NTM_DCERT_MAX)];

		if (ntm_dcert_to_b64(&d, b64, sizeof(b64)) < 0 || strcmp(b64, text) != 0)
			abort();
	}
	free(text);
	if (ntm_dcert_decode(&d, data, size) == 0) {
		uint8_t dout[NTM_DCERT_MAX];
		char fp[NTM_DFP_LEN];

		n = ntm_dcert_encode(&d, dout, sizeof(dout));
		if (n < 0 || (size_t)n != size || memcmp(dout, data, size) != 0)
			abort();
		if (ntm_cert_decode(&c, data, size) == 0)
			abort();		/* one taken for the other */
		(void)ntm_dcert_check(&d, pk, d.fqdn, 0);
		ntm_dkey_fingerprint(fp, d.fqdn, d.pk);
	}
	return 0;
}
