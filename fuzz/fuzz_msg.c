/* fuzz_msg.c - libFuzzer harness for the JSON message codecs (lib/core/msg.c):
 * the first byte picks the message, the rest is its body. A body that
 * decodes must encode again to an equal object that decodes to the same
 * struct; a refusal must make a valid JSON error. Every body is also read
 * as a failed answer's error (ntm_error_read): what that lenient reader
 * takes, the strict error encoder must take too. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_jerr(const struct ntm_jerr *e)
{
	const char *const s[] = { e->code, e->field, e->message };
	const size_t len[] = { sizeof(e->code), sizeof(e->field), sizeof(e->message) };

	for (size_t i = 0; i < 3; i++) {
		json_t *j;

		if (memchr(s[i], 0, len[i]) == NULL || (i == 0 && s[i][0] == 0))
			abort();
		if ((j = json_string(s[i])) == NULL)
			abort();
		json_decref(j);
	}
}

static void
check_error(json_t *j)
{
	struct ntm_m_error er;
	json_t *enc = NULL;

	if (ntm_error_read(j, &er) < 0) {
		if (er.code || er.message || er.field || ntm_error_code(j))
			abort();
		return;
	}
	if (er.code == NULL || !ntm_error_is(j, er.code))
		abort();
	if (er.message == NULL)
		er.message = "";
	if (ntm_msg_error_encode(&er, &enc, NULL) < 0)
		abort();
	json_decref(enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct ntm_jmsg *m;
	_Alignas(max_align_t) uint8_t a[NTM_MSG_STRUCT_MAX], b[NTM_MSG_STRUCT_MAX];
	struct ntm_jerr e;
	size_t n = 0;
	json_t *j, *enc = NULL;

	if (size < 1)
		return 0;
	while (ntm_jmsgs[n])
		n++;
	m = ntm_jmsgs[data[0] % n];
	if ((j = ntm_json_parse(data + 1, size - 1, &e)) == NULL) {
		check_jerr(&e);
		return 0;
	}
	check_error(j);
	if (ntm_jmsg_decode(m, j, a, &e) < 0) {
		check_jerr(&e);
		json_decref(j);
		return 0;
	}
	if (ntm_jmsg_encode(m, a, &enc, &e) < 0 || !json_equal(j, enc))
		abort();
	if (ntm_jmsg_decode(m, enc, b, &e) < 0 || memcmp(a, b, sizeof(uint32_t)) != 0)
		abort();
	json_decref(enc);
	json_decref(j);
	return 0;
}
