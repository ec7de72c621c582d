/*
 * json.c - strict JSON unpacking with error bodies that name the field.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "ntm-core.h"

#define JSTR_DEFAULT_MAX	1024

/* Cuts s back to the last complete UTF-8 sequence, so a truncated name or
 * message still makes a valid JSON string. */
static void
utf8_trim(char *s)
{
	size_t n = strlen(s), i, need;

	if (n == 0)
		return;
	i = n;
	/* Step back over continuation bytes to the start of the last char. */
	while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80 && n - i < 3)
		i--;
	if (i == 0) {
		if (((unsigned char)s[0] & 0xc0) == 0x80)
			s[0] = '\0';
		return;
	}
	i--;
	{
		unsigned char c = (unsigned char)s[i];

		if (c < 0x80)
			return;
		if ((c & 0xe0) == 0xc0)
			need = 2;
		else if ((c & 0xf0) == 0xe0)
			need = 3;
		else if ((c & 0xf8) == 0xf0)
			need = 4;
		else
			need = 0;
	}
	if (n - i != need)
		s[i] = '\0';
}

static void
jerr_set(struct ntm_jerr *e, const char *code, const char *field,
    const char *fmt, ...) NTM_PRINTF(4, 5);

static void
jerr_set(struct ntm_jerr *e, const char *code, const char *field,
    const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return;
	snprintf(e->code, sizeof(e->code), "%s", code);
	snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
	utf8_trim(e->field);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	utf8_trim(e->message);
}

static const char *
jtype_name(enum ntm_jtype t)
{
	switch (t) {
	case NTM_J_STR:		return "string";
	case NTM_J_INT:		return "integer";
	case NTM_J_BOOL:	return "boolean";
	case NTM_J_OBJ:		return "object";
	case NTM_J_ARR:		return "array";
	}
	return "value";
}

static int
jtype_ok(enum ntm_jtype t, const json_t *v)
{
	switch (t) {
	case NTM_J_STR:		return json_is_string(v);
	case NTM_J_INT:		return json_is_integer(v);
	case NTM_J_BOOL:	return json_is_boolean(v);
	case NTM_J_OBJ:		return json_is_object(v);
	case NTM_J_ARR:		return json_is_array(v);
	}
	return 0;
}

static int
field_index(const struct ntm_jfield *fields, size_t n, const char *key,
    size_t keylen)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(fields[i].name) == keylen &&
		    memcmp(fields[i].name, key, keylen) == 0)
			return (int)i;
	return -1;
}

int
ntm_json_unpack(json_t *obj, const struct ntm_jfield *fields, size_t n,
    struct ntm_jerr *err)
{
	const char *key;
	json_t *v;
	void *it;

	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if (!json_is_object(obj)) {
		jerr_set(err, "not_object", NULL, "expected a JSON object");
		return NTM_ERR_JSON;
	}
	for (it = json_object_iter(obj); it != NULL;
	    it = json_object_iter_next(obj, it)) {
		key = json_object_iter_key(it);
		/* A key with an embedded NUL never names a field. */
		if (field_index(fields, n, key, json_object_iter_key_len(it)) < 0) {
			char shown[49];

			snprintf(shown, sizeof(shown), "%s", key);
			utf8_trim(shown);
			jerr_set(err, "unknown_field", key, "unknown field '%s'",
			    shown);
			return NTM_ERR_JSON;
		}
	}

	/* Check everything before storing anything: a failed unpack leaves
	 * the outputs as they were. */
	for (size_t i = 0; i < n; i++) {
		const struct ntm_jfield *f = &fields[i];
		size_t max = f->maxlen ? f->maxlen : JSTR_DEFAULT_MAX;

		if ((v = json_object_get(obj, f->name)) == NULL) {
			if (f->required) {
				jerr_set(err, "missing_field", f->name,
				    "field '%s': missing", f->name);
				return NTM_ERR_JSON;
			}
			continue;
		}
		if (!jtype_ok(f->type, v)) {
			jerr_set(err, "bad_field", f->name,
			    "field '%s': expected %s", f->name, jtype_name(f->type));
			return NTM_ERR_JSON;
		}
		if (f->type == NTM_J_STR) {
			size_t len = json_string_length(v);

			if (strlen(json_string_value(v)) != len) {
				jerr_set(err, "bad_field", f->name,
				    "field '%s': contains a NUL byte", f->name);
				return NTM_ERR_JSON;
			}
			if (len > max) {
				jerr_set(err, "bad_field", f->name,
				    "field '%s': longer than %zu bytes", f->name, max);
				return NTM_ERR_JSON;
			}
		}
	}

	for (size_t i = 0; i < n; i++) {
		const struct ntm_jfield *f = &fields[i];

		if ((v = json_object_get(obj, f->name)) == NULL || f->out == NULL)
			continue;
		switch (f->type) {
		case NTM_J_STR:
			*(const char **)f->out = json_string_value(v);
			break;
		case NTM_J_INT:
			*(int64_t *)f->out = (int64_t)json_integer_value(v);
			break;
		case NTM_J_BOOL:
			*(int *)f->out = json_is_true(v);
			break;
		case NTM_J_OBJ:
		case NTM_J_ARR:
			*(json_t **)f->out = v;
			break;
		}
	}
	return 0;
}

json_t *
ntm_json_parse(const void *p, size_t n, struct ntm_jerr *err)
{
	json_error_t je;
	json_t *j;

	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if (p == NULL && n > 0) {
		jerr_set(err, "bad_json", NULL, "invalid JSON: no data");
		return NULL;
	}
	j = json_loadb(p ? p : "", n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
	    &je);
	if (j == NULL) {
		char text[121];

		snprintf(text, sizeof(text), "%.120s", je.text);
		/* jansson quotes the offending input, which may be any bytes:
		 * keep the message printable ASCII so it can travel as JSON. */
		for (char *c = text; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
				*c = '?';
		jerr_set(err, "bad_json", NULL, "invalid JSON: %s (line %d, column %d)",
		    text, je.line, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		jerr_set(err, "not_object", NULL, "expected a JSON object");
		return NULL;
	}
	return j;
}
