/* fuzz_json.c - libFuzzer harness for request body parsing and unpacking. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ntm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Error bodies are sent as JSON: every field must make a valid string. */
static void
check_jerr(const struct ntm_jerr *e)
{
	const char *const s[] = { e->code, e->field, e->message };
	const size_t len[] = { sizeof(e->code), sizeof(e->field),
	    sizeof(e->message) };

	for (size_t i = 0; i < 3; i++) {
		json_t *j;

		if (memchr(s[i], '\0', len[i]) == NULL)
			abort();
		if ((j = json_string(s[i])) == NULL)
			abort();
		json_decref(j);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *user = NULL, *note = NULL;
	int64_t version = 0;
	int flag = 0;
	json_t *obj = NULL, *arr = NULL;
	const struct ntm_jfield f[] = {
		{ "version", NTM_J_INT, 1, &version, 0 },
		{ "user", NTM_J_STR, 1, &user, 32 },
		{ "note", NTM_J_STR, 0, &note, 0 },
		{ "flag", NTM_J_BOOL, 0, &flag, 0 },
		{ "obj", NTM_J_OBJ, 0, &obj, 0 },
		{ "arr", NTM_J_ARR, 0, &arr, 0 },
	};
	struct ntm_jerr e;
	json_t *j;

	if ((j = ntm_json_parse(data, size, &e)) == NULL) {
		check_jerr(&e);
		return 0;
	}
	if (ntm_json_unpack(j, f, sizeof(f) / sizeof(f[0]), &e) == 0) {
		if (user == NULL || strlen(user) > 32)
			abort();
		if (note != NULL && strlen(note) > 1024)
			abort();
	} else
		check_jerr(&e);
	json_decref(j);
	return 0;
}
