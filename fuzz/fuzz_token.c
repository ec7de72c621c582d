/* fuzz_token.c - libFuzzer harness for the client token codec. */
#include <stdlib.h>
#include <string.h>

#include "ntm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pk[NTM_SIGN_PK];
	struct ntm_token t;
	uint8_t out[NTM_TOKEN_MAX];
	char *text;
	int n;

	if (ntm_token_decode(&t, data, size) == 0) {
		n = ntm_token_encode(&t, out, sizeof(out));
		if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
			abort();
		(void)ntm_token_verify(&t, pk, 0);
	}
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (ntm_token_from_b64(&t, text) == 0) {
		char b64[NTM_B64_LEN(NTM_TOKEN_MAX)];

		if (ntm_token_to_b64(&t, b64, sizeof(b64)) < 0 ||
		    strcmp(b64, text) != 0)
			abort();
	}
	free(text);
	return 0;
}
