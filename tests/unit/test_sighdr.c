/*
 * test_sighdr.c - the headers of a signed request as the receiver reads
 * them (lib/core/sighdr.c, docs/protocol.md §2.2), with literal headers:
 * keys from fixed seeds (AS 0x01 x 32, the DC 0x02 x 32, another "AS"
 * 0x03 x 32), a certificate for dc1.ntm.test (role dc, serial 7, valid
 * 1700000000..1800000000) and the signature of one request.
 */
#include "ntm.h"
#include "sighdr.h"
#include "unit.h"

#define AS_PK	"iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w"
#define DC_PK	"gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5Q"
#define CERT	"AQIMZGMxLm50bS50ZXN0gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5QAAAAAAAAABwAA" \
		"AABlU_EAAAAAAGtJ0gAWOs6uURJfDsoSLA6yce_W5qAeya0mnasHg_YCYXlyNn9bFkKf3UUz5fly" \
		"UcwjerDu2PE7Gxql55K7JILDzZIG"
/* The same certificate signed by the other key. */
#define CERT_OTHER_AS "AQIMZGMxLm50bS50ZXN0gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5QAAAAAAAAABwAA" \
		"AABlU_EAAAAAAGtJ0gDC6LxnO_Nt9S1AkhUVj99lISO5v4BY5SItzznYxhyeBsgFKaVMIKFlz2dY" \
		"7wC80V5a-dtI_5l2pVzXoZgPZ1UC"
/* POST /v1/dc/locate, date 1767225600, this nonce and body, by the DC. */
#define SIG	"biD9-a8IJ_0c_UUF17qbg3A8ozEF0a68tcAywoCQYCirYQrapwm7tkr0bSDkYDAZg0p0gsiLiYPVk" \
		"-0aTLA2CA"
#define NONCE	"AAAAAAAAAAAAAAAAAAAAAA"
#define BODY	"{\"fqdn\":\"carol.dc2.ntm.test\"}"
#define DATE	"1767225600"
#define NOW	1767225600

static uint8_t as_pk[NTM_SIGN_PK];

static int
parse(const char *date, const char *nonce, const char *cert, const char *sig, int64_t now,
    char *why, size_t wlen)
{
	const struct ntm_sighdr hd = { date, nonce, cert, sig };
	struct ntm_cert c;
	uint8_t s[NTM_SIG_LEN];
	int64_t d;

	why[0] = '\0';
	return ntm_sighdr_parse(&hd, as_pk, now, &c, &d, s, why, wlen);
}

TEST(init)
{
	CHECK_EQ(ntm_crypto_init(), 0);
	CHECK_EQ(ntm_b64_decode_exact(as_pk, sizeof(as_pk), AS_PK), NTM_SIGN_PK);
}

/* Good headers: the certificate, date and signature come out, and the
 * signature verifies over the request they were made for. */
TEST(good)
{
	const struct ntm_sighdr hd = { DATE, NONCE, CERT, SIG };
	struct ntm_cert c;
	uint8_t sig[NTM_SIG_LEN], want_sig[NTM_SIG_LEN], dc_pk[NTM_SIGN_PK];
	int64_t date = 0;
	char why[128] = "";

	CHECK_EQ(ntm_sighdr_parse(&hd, as_pk, NOW, &c, &date, sig, why, sizeof(why)), 0);
	CHECK_STR(why, "");
	CHECK_STR(c.name, "dc1.ntm.test");
	CHECK_EQ(c.role, NTM_ROLE_DC);
	CHECK_EQ(c.serial, 7);
	CHECK_EQ(c.not_before, 1700000000);
	CHECK_EQ(c.not_after, 1800000000);
	CHECK_EQ(ntm_b64_decode_exact(dc_pk, sizeof(dc_pk), DC_PK), NTM_SIGN_PK);
	CHECK(memcmp(c.pk, dc_pk, sizeof(dc_pk)) == 0);
	CHECK_EQ(date, 1767225600);
	CHECK_EQ(ntm_b64_decode_exact(want_sig, sizeof(want_sig), SIG), NTM_SIG_LEN);
	CHECK(memcmp(sig, want_sig, sizeof(sig)) == 0);
	CHECK_EQ(ntm_req_verify(SIG, c.pk, "POST", "/v1/dc/locate", date, NONCE, BODY,
	    strlen(BODY)), 0);
	CHECK_EQ(ntm_req_verify(SIG, c.pk, "POST", "/v1/dc/moved", date, NONCE, BODY,
	    strlen(BODY)), NTM_ERR_CRYPTO);
	/* The validity period includes its ends. */
	CHECK_EQ(ntm_sighdr_parse(&hd, as_pk, 1700000000, &c, &date, sig, why, sizeof(why)), 0);
	CHECK_EQ(ntm_sighdr_parse(&hd, as_pk, 1800000000, &c, &date, sig, why, sizeof(why)), 0);
}

/* A missing header is named, in the order date, cert, signature, nonce. */
TEST(missing)
{
	char why[128];

	CHECK_EQ(parse(NULL, NONCE, CERT, SIG, NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
	CHECK_STR(why, "missing NTM-Date header");
	CHECK_EQ(parse(DATE, NONCE, NULL, SIG, NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
	CHECK_STR(why, "missing NTM-Cert header");
	CHECK_EQ(parse(DATE, NONCE, CERT, NULL, NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
	CHECK_STR(why, "missing NTM-Signature header");
	CHECK_EQ(parse(DATE, NULL, CERT, SIG, NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
	CHECK_STR(why, "missing NTM-Nonce header");
	CHECK_EQ(parse(NULL, NULL, NULL, NULL, NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
	CHECK_STR(why, "missing NTM-Date header");
}

/* NTM-Date is a decimal integer and nothing else. */
TEST(date)
{
	static const char *const bad[] = {
		"", "abc", "+1767225600", " 1767225600", "1767225600 ", "1767225600\n",
		"0x10", "1.5", "1e9", "-", "--1", "99999999999999999999",
		"-99999999999999999999", "123456789012345678901", "00000000000000000000001",
	};
	static const struct { const char *s; int64_t v; } good[] = {
		{ "0", 0 }, { "-1", -1 }, { "0001767225600", 1767225600 },
		{ "9223372036854775807", INT64_MAX }, { "-9223372036854775808", INT64_MIN },
	};
	char why[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(parse(bad[i], NONCE, CERT, SIG, NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
		CHECK_STR(why, "malformed NTM-Date header");
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct ntm_sighdr hd = { good[i].s, NONCE, CERT, SIG };
		struct ntm_cert c;
		uint8_t s[NTM_SIG_LEN];
		int64_t d = 42;

		CHECK_EQ(ntm_sighdr_parse(&hd, as_pk, NOW, &c, &d, s, why, sizeof(why)), 0);
		CHECK_EQ(d, good[i].v);
	}
}

/* NTM-Signature is exactly 64 bytes of base64url. */
TEST(signature)
{
	static const char *const bad[] = {
		"", "AAAA", SIG "A", SIG "AA", SIG "AAAA", "=" SIG,
		"biD9+a8IJ_0c_UUF17qbg3A8ozEF0a68tcAywoCQYCirYQrapwm7tkr0bSDkYDAZg0p0gsiLiYPVk"
		"-0aTLA2CA",
		"biD9-a8IJ_0c_UUF17qbg3A8ozEF0a68tcAywoCQYCirYQrapwm7tkr0bSDkYDAZg0p0gsiLiYPVk"
		"-0aTLA2C",
		"biD9-a8IJ_0c_UUF17qbg3A8ozEF0a68tcAywoCQYCirYQrapwm7tkr0bSDkYDAZg0p0gsiLiYPVk"
		"-0aTLA2CA==",
	};
	char why[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(parse(DATE, NONCE, CERT, bad[i], NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
		CHECK_STR(why, "malformed NTM-Signature header");
	}
}

/* The certificate decodes, is the AS's and is valid now. */
TEST(certificate)
{
	char why[128];

	CHECK_EQ(parse(DATE, NONCE, "", SIG, NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
	CHECK_STR(why, "certificate does not decode");
	CHECK_EQ(parse(DATE, NONCE, "garbage", SIG, NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
	CHECK_STR(why, "certificate does not decode");
	CHECK_EQ(parse(DATE, NONCE, CERT "A", SIG, NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
	CHECK_STR(why, "certificate does not decode");
	CHECK_EQ(parse(DATE, NONCE, SIG, SIG, NOW, why, sizeof(why)), NTM_ERR_UNAUTH);
	CHECK_STR(why, "certificate does not decode");
	CHECK_EQ(parse(DATE, NONCE, CERT_OTHER_AS, SIG, NOW, why, sizeof(why)), NTM_ERR_CRYPTO);
	CHECK_STR(why, "certificate of 'dc1.ntm.test' is not signed by the account server");
	CHECK_EQ(parse(DATE, NONCE, CERT, SIG, 1800000001, why, sizeof(why)), NTM_ERR_EXPIRED);
	CHECK_STR(why, "certificate of 'dc1.ntm.test' is outside its validity period");
	CHECK_EQ(parse(DATE, NONCE, CERT, SIG, 1699999999, why, sizeof(why)), NTM_ERR_EXPIRED);
	CHECK_STR(why, "certificate of 'dc1.ntm.test' is outside its validity period");
}

/* The reason fits the caller's buffer, cut if it must be. */
TEST(why_cut)
{
	char why[8];

	memset(why, 'x', sizeof(why));
	CHECK_EQ(parse(DATE, NONCE, CERT_OTHER_AS, SIG, NOW, why, sizeof(why)), NTM_ERR_CRYPTO);
	CHECK_STR(why, "certifi");
}

UNIT_MAIN(T(init), T(good), T(missing), T(date), T(signature), T(certificate), T(why_cut))
