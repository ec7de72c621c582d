/*
 * enc.c - base64url (no padding) and hex, strict in both directions: decoding
 * accepts only canonical input with nothing left over.
 */
#include <limits.h>
#include <string.h>

#include <sodium.h>

#include "ntm-core.h"

#define B64V	sodium_base64_VARIANT_URLSAFE_NO_PADDING

int
ntm_b64_encode(char *out, size_t cap, const void *in, size_t n)
{
	size_t need;

	if (n > (INT_MAX / 4) * 3 - 3)
		return NTM_ERR_TOOBIG;
	need = sodium_base64_ENCODED_LEN(n, B64V);
	if (out == NULL || cap < need)
		return NTM_ERR_TOOBIG;
	sodium_bin2base64(out, cap, in, n, B64V);
	return (int)(need - 1);
}

/*
 * libsodium 1.0.18 maps some bytes >= 0x80 to valid base64 digits (signed
 * char arithmetic), so the alphabet is checked here first.
 */
static int
b64_alphabet(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

static int
hex_alphabet(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

int
ntm_b64_decode(void *out, size_t cap, const char *in)
{
	size_t len, want, got = 0;
	const char *end = NULL;

	if (in == NULL)
		return NTM_ERR_INVAL;
	len = strlen(in);
	if (len % 4 == 1 || len > INT_MAX || !b64_alphabet(in, len))
		return NTM_ERR_INVAL;
	want = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
	if (want > cap)
		return NTM_ERR_TOOBIG;
	if (sodium_base642bin(out, cap, in, len, NULL, &got, &end, B64V) != 0 ||
	    end != in + len || got != want)
		return NTM_ERR_INVAL;
	return (int)got;
}

int
ntm_b64_decode_exact(void *out, size_t n, const char *in)
{
	size_t len;
	int ret;

	if (in == NULL)
		return NTM_ERR_INVAL;
	/* Check the length first so a long input never decodes at all. */
	len = strlen(in);
	if (len != sodium_base64_ENCODED_LEN(n, B64V) - 1)
		return NTM_ERR_INVAL;
	if ((ret = ntm_b64_decode(out, n, in)) < 0)
		return NTM_ERR_INVAL;
	if ((size_t)ret != n)
		return NTM_ERR_INVAL;
	return ret;
}

int
ntm_hex_encode(char *out, size_t cap, const void *in, size_t n)
{
	if (n > INT_MAX / 2 - 1 || out == NULL || cap < 2 * n + 1)
		return NTM_ERR_TOOBIG;
	sodium_bin2hex(out, cap, in, n);
	return (int)(2 * n);
}

int
ntm_hex_decode_exact(void *out, size_t n, const char *in)
{
	size_t got = 0;
	const char *end = NULL;

	if (in == NULL || n > INT_MAX / 2 || strlen(in) != 2 * n ||
	    !hex_alphabet(in, 2 * n))
		return NTM_ERR_INVAL;
	if (sodium_hex2bin(out, n, in, 2 * n, NULL, &got, &end) != 0 ||
	    got != n || end != in + 2 * n)
		return NTM_ERR_INVAL;
	return (int)n;
}
