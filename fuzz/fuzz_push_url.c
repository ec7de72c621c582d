/* fuzz_push_url.c - libFuzzer harness for the push webhook URL check. */
#include <stdlib.h>
#include <string.h>

#include "ntm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, shown[64];
	size_t i;

	if (size > 2 * NTM_PUSH_URL_MAX)
		return 0;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	/* Valid: https://, within the limit, printable ASCII only. */
	if (ntm_valid_push_url(text)) {
		if (strncmp(text, "https://", 8) != 0 || strlen(text) > NTM_PUSH_URL_MAX)
			abort();
		for (i = 0; text[i]; i++)
			if ((unsigned char)text[i] <= 0x20 || (unsigned char)text[i] >= 0x7f)
				abort();
	}
	/* The loggable form is a prefix without the query or fragment. */
	ntm_push_url_loggable(text, shown, sizeof(shown));
	if (strpbrk(shown, "?#") != NULL || strncmp(shown, text, strlen(shown)) != 0)
		abort();
	free(text);
	return 0;
}
