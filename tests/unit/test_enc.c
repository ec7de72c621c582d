/* test_enc.c - base64url and hex, strict decoding. */
#include "ntm.h"
#include "unit.h"

TEST(b64_vectors)
{
	/* RFC 4648 test vectors, URL-safe alphabet, no padding. */
	static const struct { const char *in, *out; } v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" }, { "\xfb\xff\xbf", "-_-_" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char enc[32];
		uint8_t dec[32];
		size_t n = strlen(v[i].in);

		CHECK_EQ(ntm_b64_encode(enc, sizeof(enc), v[i].in, n),
		    (int)strlen(v[i].out));
		CHECK_STR(enc, v[i].out);
		CHECK_EQ(NTM_B64_LEN(n), strlen(v[i].out) + 1);
		CHECK_EQ(ntm_b64_decode(dec, sizeof(dec), v[i].out), (int)n);
		CHECK(memcmp(dec, v[i].in, n) == 0);
		CHECK_EQ(ntm_b64_decode_exact(dec, n, v[i].out), (int)n);
	}
}

TEST(b64_bad)
{
	static const char *const bad[] = {
		"Zg==",		/* padding */
		"Zm9v+g",	/* standard alphabet */
		"Zm9v/g",
		"Z",		/* impossible length */
		"Zh",		/* non-zero trailing bits */
		"Zm9 v",
		"Zm9v\n",
		"\xc7" "A",	/* libsodium 1.0.18 took this for "ZA" */
		"Zm9v\xc7" "A",
	};
	uint8_t dec[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(ntm_b64_decode(dec, sizeof(dec), bad[i]), NTM_ERR_INVAL);
	CHECK_EQ(ntm_b64_decode(dec, sizeof(dec), NULL), NTM_ERR_INVAL);
	CHECK_EQ(ntm_b64_decode(dec, 5, "Zm9vYmFy"), NTM_ERR_TOOBIG);
	CHECK_EQ(ntm_b64_decode_exact(dec, 5, "Zm9vYmFy"), NTM_ERR_INVAL);
	CHECK_EQ(ntm_b64_decode_exact(dec, 7, "Zm9vYmFy"), NTM_ERR_INVAL);
}

TEST(b64_cap)
{
	char out[5];

	CHECK_EQ(ntm_b64_encode(out, sizeof(out), "foo", 3), 4);
	CHECK_EQ(ntm_b64_encode(out, 4, "foo", 3), NTM_ERR_TOOBIG);
	CHECK_EQ(ntm_b64_encode(out, sizeof(out), "foob", 4), NTM_ERR_TOOBIG);
}

TEST(hex)
{
	char out[9];
	uint8_t dec[4];
	static const uint8_t in[4] = { 0xde, 0xad, 0xbe, 0xef };

	CHECK_EQ(ntm_hex_encode(out, sizeof(out), in, 4), 8);
	CHECK_STR(out, "deadbeef");
	CHECK_EQ(ntm_hex_encode(out, 8, in, 4), NTM_ERR_TOOBIG);
	CHECK_EQ(ntm_hex_decode_exact(dec, 4, "deadbeef"), 4);
	CHECK(memcmp(dec, in, 4) == 0);
	CHECK_EQ(ntm_hex_decode_exact(dec, 4, "DEADBEEF"), 4);
	CHECK_EQ(ntm_hex_decode_exact(dec, 4, "deadbee"), NTM_ERR_INVAL);
	CHECK_EQ(ntm_hex_decode_exact(dec, 4, "deadbeef0"), NTM_ERR_INVAL);
	CHECK_EQ(ntm_hex_decode_exact(dec, 4, "deadbeeg"), NTM_ERR_INVAL);
	CHECK_EQ(ntm_hex_decode_exact(dec, 4, "dead:eef"), NTM_ERR_INVAL);
	CHECK_EQ(ntm_hex_decode_exact(dec, 4, NULL), NTM_ERR_INVAL);
	CHECK_EQ(ntm_hex_decode_exact(dec, 1, "\xc7" "a"), NTM_ERR_INVAL);
}

UNIT_MAIN(T(b64_vectors), T(b64_bad), T(b64_cap), T(hex))
