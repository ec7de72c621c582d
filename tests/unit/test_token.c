/* test_token.c - client tokens and the name rules. */
#include "ntm.h"
#include "unit.h"

static uint8_t as_pk[NTM_SIGN_PK], as_sk[NTM_SIGN_SK];

static void
make_token(struct ntm_token *t)
{
	memset(t, 0, sizeof(*t));
	t->version = 2;
	snprintf(t->user, sizeof(t->user), "alice");
	snprintf(t->device, sizeof(t->device), "Laptop-1");
	snprintf(t->dc, sizeof(t->dc), "dc1.ntm.test");
	t->aud_role = NTM_ROLE_DC;
	snprintf(t->aud, sizeof(t->aud), "dc1.ntm.test");
	memset(t->id, 0x17, sizeof(t->id));
	t->issued = 10000;
	t->expires = 20000;
	ntm_token_sign(t, as_sk);
}

TEST(init)
{
	CHECK_EQ(ntm_crypto_init(), 0);
	CHECK_EQ(ntm_sign_keypair(as_pk, as_sk), 0);
}

TEST(names)
{
	static const struct { const char *s; int user, device, dns; } v[] = {
		{ "alice",		1, 1, 1 },
		{ "a",			1, 1, 1 },
		{ "a1_b-c",		0, 1, 0 },	/* '_' is no DNS label character */
		{ "a1-b-c",		1, 1, 1 },
		{ "ab-",		0, 1, 0 },	/* a label never ends in '-' */
		{ "Alice",		0, 1, 0 },
		{ "1alice",		0, 1, 1 },
		{ "_x",			0, 1, 0 },
		{ "",			0, 0, 0 },
		{ "al ice",		0, 0, 0 },
		{ "al.ice",		0, 0, 1 },
		{ "abcdefghijklmnopqrstuvwxyz012345",	1, 1, 1 },	/* 32 */
		{ "abcdefghijklmnopqrstuvwxyz0123456",	0, 1, 1 },	/* 33 */
		{ "dc1.ntm.test",	0, 0, 1 },
		{ "dc1.ntm.test.",	0, 0, 0 },
		{ ".ntm.test",		0, 0, 0 },
		{ "a..b",		0, 0, 0 },
		{ "-a.b",		0, 0, 0 },
		{ "a-.b",		0, 0, 0 },
		{ "a.b-",		0, 0, 0 },
		{ "a-b.c",		0, 0, 1 },
		{ "a-b",		1, 1, 1 },
		{ "\xc3\xa9",		0, 0, 0 },
	};
	char s[300];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		CHECK_EQ(ntm_valid_user(v[i].s), v[i].user);
		CHECK_EQ(ntm_valid_device(v[i].s), v[i].device);
		CHECK_EQ(ntm_valid_dnsname(v[i].s), v[i].dns);
	}
	CHECK_EQ(ntm_valid_user(NULL), 0);
	CHECK_EQ(ntm_valid_device(NULL), 0);
	CHECK_EQ(ntm_valid_dnsname(NULL), 0);

	/* Device ids up to 64; labels up to 63; names up to 253. */
	memset(s, 'D', 64);
	s[64] = '\0';
	CHECK_EQ(ntm_valid_device(s), 1);
	s[64] = 'D';
	s[65] = '\0';
	CHECK_EQ(ntm_valid_device(s), 0);
	memset(s, 'a', 63);
	s[63] = '\0';
	CHECK_EQ(ntm_valid_dnsname(s), 1);
	s[63] = 'a';
	s[64] = '\0';
	CHECK_EQ(ntm_valid_dnsname(s), 0);
	memset(s, 'a', 253);
	for (int i = 63; i < 253; i += 64)
		s[i] = '.';
	s[253] = '\0';
	CHECK_EQ(ntm_valid_dnsname(s), 1);
	s[253] = 'a';
	s[254] = '\0';
	CHECK_EQ(ntm_valid_dnsname(s), 0);
}

TEST(roundtrip)
{
	struct ntm_token t, u;
	uint8_t buf[NTM_TOKEN_MAX];
	char b64[NTM_B64_LEN(NTM_TOKEN_MAX)];
	int n;

	make_token(&t);
	n = ntm_token_encode(&t, buf, sizeof(buf));
	/* 1 + 1+5 + 1+8 + 1+12 + 1 + 1+12 + 16 + 8 + 8 + 64 */
	CHECK_EQ(n, 139);
	CHECK_EQ(buf[0], 2);
	CHECK_EQ(buf[29], NTM_ROLE_DC);
	CHECK_EQ(buf[30], 12);
	CHECK_EQ(buf[1], 5);
	CHECK(memcmp(buf + 2, "alice", 5) == 0);
	CHECK_EQ(buf[7], 8);
	CHECK_EQ(ntm_token_decode(&u, buf, (size_t)n), 0);
	CHECK(memcmp(&t, &u, sizeof(t)) == 0);
	CHECK_EQ(ntm_token_verify(&u, as_pk, 15000), 0);
	CHECK(ntm_token_to_b64(&t, b64, sizeof(b64)) > 0);
	CHECK_EQ(ntm_token_from_b64(&u, b64), 0);
	CHECK(memcmp(&t, &u, sizeof(t)) == 0);
	CHECK(ntm_token_from_b64(&u, "") < 0);
	CHECK(ntm_token_from_b64(&u, "a+b") < 0);
	CHECK_EQ(ntm_token_encode(&t, buf, (size_t)n - 1), NTM_ERR_TOOBIG);

	/* Maximal sizes fill NTM_TOKEN_MAX exactly. */
	memset(t.user, 'u', NTM_USER_MAX);
	t.user[NTM_USER_MAX] = '\0';
	memset(t.device, 'd', NTM_DEVICE_MAX);
	t.device[NTM_DEVICE_MAX] = '\0';
	memset(t.dc, 'a', NTM_NAME_MAX);
	for (int i = 63; i < NTM_NAME_MAX; i += 64)
		t.dc[i] = '.';
	t.dc[NTM_NAME_MAX] = '\0';
	memcpy(t.aud, t.dc, sizeof(t.aud));
	ntm_token_sign(&t, as_sk);
	CHECK_EQ(ntm_token_encode(&t, buf, sizeof(buf)), NTM_TOKEN_MAX);
	CHECK_EQ(ntm_token_decode(&u, buf, NTM_TOKEN_MAX), 0);
	CHECK_EQ(ntm_token_verify(&u, as_pk, 20000), 0);
}

TEST(truncation)
{
	struct ntm_token t, u;
	uint8_t buf[NTM_TOKEN_MAX + 1];
	int n;

	make_token(&t);
	n = ntm_token_encode(&t, buf, sizeof(buf));
	for (int i = 0; i < n; i++)
		CHECK_EQ(ntm_token_decode(&u, buf, (size_t)i), NTM_ERR_SHORT);
	buf[n] = 0;
	CHECK_EQ(ntm_token_decode(&u, buf, (size_t)n + 1), NTM_ERR_TRAILING);
}

TEST(bad_fields)
{
	static const struct { size_t off; uint8_t val; int err; } cases[] = {
		{ 0, 1, NTM_ERR_VERSION },	/* a token from before audiences */
		{ 0, 3, NTM_ERR_VERSION },
		{ 1, 0, NTM_ERR_INVAL },	/* empty user */
		{ 1, 33, NTM_ERR_INVAL },	/* user too long */
		{ 2, 'A', NTM_ERR_INVAL },	/* uppercase user */
		{ 3, 0, NTM_ERR_INVAL },	/* NUL in user */
		{ 7, 0, NTM_ERR_INVAL },	/* empty device */
		{ 7, 65, NTM_ERR_INVAL },
		{ 8, '.', NTM_ERR_INVAL },
		{ 16, 0, NTM_ERR_INVAL },	/* empty dc */
		{ 17, 'D', NTM_ERR_INVAL },
		{ 29, 1, NTM_ERR_INVAL },	/* audience role: the AS */
		{ 29, 3, NTM_ERR_INVAL },	/* audience role: an RS */
		{ 30, 0, NTM_ERR_INVAL },	/* empty audience */
		{ 31, 'D', NTM_ERR_INVAL },
		{ 1, 4, NTM_ERR_INVAL },	/* lengths disagree: 'e' read as length */
	};
	struct ntm_token t, u;
	uint8_t buf[NTM_TOKEN_MAX];
	int n;

	make_token(&t);
	n = ntm_token_encode(&t, buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t copy[NTM_TOKEN_MAX];

		memcpy(copy, buf, (size_t)n);
		copy[cases[i].off] = cases[i].val;
		CHECK(ntm_token_decode(&u, copy, (size_t)n) < 0);
		if (cases[i].err != NTM_ERR_INVAL)
			CHECK_EQ(ntm_token_decode(&u, copy, (size_t)n), cases[i].err);
	}
}

TEST(flip)
{
	struct ntm_token t, u;
	uint8_t buf[NTM_TOKEN_MAX];
	int n;

	make_token(&t);
	n = ntm_token_encode(&t, buf, sizeof(buf));
	for (int i = 0; i < n; i++) {
		buf[i] ^= 0x04;
		if (ntm_token_decode(&u, buf, (size_t)n) == 0)
			CHECK_EQ(ntm_token_verify(&u, as_pk, 15000), NTM_ERR_CRYPTO);
		buf[i] ^= 0x04;
	}
}

TEST(validity)
{
	static const struct { int64_t now; int err; } cases[] = {
		{ 10000 - NTM_SIG_WINDOW - 1, NTM_ERR_EXPIRED },
		{ 10000 - NTM_SIG_WINDOW, 0 },	/* issuer's clock a little ahead */
		{ 10000, 0 },
		{ 19999, 0 },
		{ 20000, 0 },
		{ 20001, NTM_ERR_EXPIRED },
		{ INT64_MIN, NTM_ERR_EXPIRED },
		{ INT64_MAX, NTM_ERR_EXPIRED },
	};
	uint8_t other_pk[NTM_SIGN_PK], other_sk[NTM_SIGN_SK];
	struct ntm_token t;

	make_token(&t);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_EQ(ntm_token_verify(&t, as_pk, cases[i].now), cases[i].err);
	CHECK_EQ(ntm_sign_keypair(other_pk, other_sk), 0);
	CHECK_EQ(ntm_token_verify(&t, other_pk, 15000), NTM_ERR_CRYPTO);
	t.expires++;
	CHECK_EQ(ntm_token_verify(&t, as_pk, 15000), NTM_ERR_CRYPTO);
	make_token(&t);
	t.user[0] = 'b';
	CHECK_EQ(ntm_token_verify(&t, as_pk, 15000), NTM_ERR_CRYPTO);
}

/* The audience is signed: a DC token cannot be turned into a CS one. */
TEST(audience)
{
	struct ntm_token t;

	make_token(&t);
	CHECK_EQ(ntm_token_is_for(&t, NTM_ROLE_DC, "dc1.ntm.test"), 1);
	CHECK_EQ(ntm_token_is_for(&t, NTM_ROLE_DC, "dc2.ntm.test"), 0);
	CHECK_EQ(ntm_token_is_for(&t, NTM_ROLE_CS, "dc1.ntm.test"), 0);
	CHECK_EQ(ntm_token_is_for(&t, NTM_ROLE_DC, NULL), 0);
	t.aud_role = NTM_ROLE_CS;
	CHECK_EQ(ntm_token_verify(&t, as_pk, 15000), NTM_ERR_CRYPTO);
	make_token(&t);
	snprintf(t.aud, sizeof(t.aud), "cs1.ntm.test");
	CHECK_EQ(ntm_token_verify(&t, as_pk, 15000), NTM_ERR_CRYPTO);
	t.aud_role = NTM_ROLE_CS;
	ntm_token_sign(&t, as_sk);
	CHECK_EQ(ntm_token_verify(&t, as_pk, 15000), 0);
	CHECK_EQ(ntm_token_is_for(&t, NTM_ROLE_CS, "cs1.ntm.test"), 1);
	t.aud_role = NTM_ROLE_RS;
	ntm_token_sign(&t, as_sk);
	CHECK_EQ(ntm_token_verify(&t, as_pk, 15000), NTM_ERR_CRYPTO);
}

/* A CS token sealed to a device key: only that device opens it. */
TEST(sealed)
{
	uint8_t pk[NTM_DEVKEY_LEN], sk[NTM_DEVKEY_LEN], pk2[NTM_DEVKEY_LEN], sk2[NTM_DEVKEY_LEN];
	char b64[NTM_B64_LEN(NTM_TOKEN_MAX)], box[NTM_B64_LEN(NTM_TOKEN_SEALED_MAX)];
	char out[NTM_B64_LEN(NTM_TOKEN_MAX)];
	struct ntm_token t, u;
	int n;

	make_token(&t);
	t.aud_role = NTM_ROLE_CS;
	snprintf(t.aud, sizeof(t.aud), "cs1.ntm.test");
	ntm_token_sign(&t, as_sk);
	CHECK(ntm_token_to_b64(&t, b64, sizeof(b64)) > 0);
	CHECK_EQ(ntm_kx_keypair(pk, sk), 0);
	CHECK_EQ(ntm_kx_keypair(pk2, sk2), 0);
	CHECK((n = ntm_token_seal(box, sizeof(box), b64, pk)) > 0);
	CHECK(ntm_token_from_b64(&u, box) < 0);		/* no token as it is */
	CHECK(ntm_token_unseal(out, sizeof(out), box, pk, sk) > 0);
	CHECK_STR(out, b64);
	CHECK_EQ(ntm_token_unseal(out, sizeof(out), box, pk2, sk2), NTM_ERR_CRYPTO);
	box[10] = box[10] == 'A' ? 'B' : 'A';
	CHECK_EQ(ntm_token_unseal(out, sizeof(out), box, pk, sk), NTM_ERR_CRYPTO);
	CHECK(ntm_token_unseal(out, sizeof(out), "AAAA", pk, sk) < 0);
	CHECK(ntm_token_seal(box, sizeof(box), "not b64!", pk) < 0);
	CHECK_EQ(ntm_token_seal(box, 16, b64, pk), NTM_ERR_TOOBIG);
}

UNIT_MAIN(T(init), T(names), T(roundtrip), T(truncation), T(bad_fields),
    T(flip), T(validity), T(audience), T(sealed))
