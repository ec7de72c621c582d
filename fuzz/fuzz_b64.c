/* fuzz_b64.c - libFuzzer harness for base64url and hex decoding. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ntm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t bin[4096], small[32];
	char *text, enc[NTM_B64_LEN(sizeof(bin))];
	int n;

	if (size > 4096)
		return 0;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	/* Only canonical input decodes, so it re-encodes to itself. */
	if ((n = ntm_b64_decode(bin, sizeof(bin), text)) >= 0) {
		if (ntm_b64_encode(enc, sizeof(enc), bin, (size_t)n) < 0 ||
		    strcmp(enc, text) != 0)
			abort();
	}
	(void)ntm_b64_decode(small, sizeof(small), text);
	(void)ntm_b64_decode_exact(small, sizeof(small), text);
	if ((n = ntm_hex_decode_exact(bin, size / 2, text)) >= 0) {
		char hex[2 * sizeof(bin) + 1];

		if (ntm_hex_encode(hex, sizeof(hex), bin, (size_t)n) != 2 * n ||
		    strcasecmp(hex, text) != 0)
			abort();
	}
	free(text);
	return 0;
}
