/* fuzz_cert.c - libFuzzer harness for the server certificate codec. */
#include <stdlib.h>
#include <string.h>

#include "ntm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pk[NTM_SIGN_PK];
	struct ntm_cert c;
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
	free(text);
	return 0;
}
