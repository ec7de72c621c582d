/* test_cert.c - server certificate codec, signature and validity. */
#include "ntm.h"
#include "unit.h"

static uint8_t as_pk[NTM_SIGN_PK], as_sk[NTM_SIGN_SK];

static void
make_cert(struct ntm_cert *c)
{
	memset(c, 0, sizeof(*c));
	c->version = 1;
	c->role = NTM_ROLE_DC;
	snprintf(c->name, sizeof(c->name), "dc1.ntm.test");
	memset(c->pk, 0x42, sizeof(c->pk));
	c->serial = 7;
	c->not_before = 1000;
	c->not_after = 2000;
	ntm_cert_sign(c, as_sk);
}

TEST(init)
{
	CHECK_EQ(ntm_crypto_init(), 0);
	CHECK_EQ(ntm_sign_keypair(as_pk, as_sk), 0);
}

TEST(roles)
{
	static const struct { int role; const char *name; } r[] = {
		{ NTM_ROLE_AS, "as" }, { NTM_ROLE_DC, "dc" },
		{ NTM_ROLE_RS, "rs" }, { NTM_ROLE_CS, "cs" },
	};

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		CHECK_STR(ntm_role_name(r[i].role), r[i].name);
		CHECK_EQ(ntm_role_parse(r[i].name), r[i].role);
	}
	CHECK(ntm_role_name(0) == NULL);
	CHECK(ntm_role_name(5) == NULL);
	CHECK_EQ(ntm_role_parse("DC"), NTM_ERR_INVAL);
	CHECK_EQ(ntm_role_parse(""), NTM_ERR_INVAL);
	CHECK_EQ(ntm_role_parse(NULL), NTM_ERR_INVAL);
}

TEST(layout)
{
	struct ntm_cert c;
	uint8_t buf[NTM_CERT_MAX];
	int n;

	make_cert(&c);
	n = ntm_cert_encode(&c, buf, sizeof(buf));
	/* 1 + 1 + 1 + 12 + 32 + 8 + 8 + 8 + 64 */
	CHECK_EQ(n, 135);
	CHECK_EQ(buf[0], 1);
	CHECK_EQ(buf[1], NTM_ROLE_DC);
	CHECK_EQ(buf[2], 12);
	CHECK(memcmp(buf + 3, "dc1.ntm.test", 12) == 0);
	CHECK_EQ(buf[15], 0x42);
	CHECK_EQ(buf[15 + 32 + 7], 7);		/* serial, big-endian */
	CHECK_EQ(buf[15 + 32 + 8 + 6], 1000 >> 8);
	CHECK_EQ(buf[15 + 32 + 8 + 7], 1000 & 0xff);
	CHECK_EQ(ntm_cert_encode(&c, buf, (size_t)n - 1), NTM_ERR_TOOBIG);
}

TEST(roundtrip)
{
	struct ntm_cert c, d;
	uint8_t buf[NTM_CERT_MAX];
	char b64[NTM_B64_LEN(NTM_CERT_MAX)];
	int n;

	make_cert(&c);
	n = ntm_cert_encode(&c, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK_EQ(ntm_cert_decode(&d, buf, (size_t)n), 0);
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);
	CHECK_EQ(ntm_cert_verify(&d, as_pk, 1500), 0);

	CHECK(ntm_cert_to_b64(&c, b64, sizeof(b64)) > 0);
	CHECK_EQ(ntm_cert_from_b64(&d, b64), 0);
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);
	CHECK_EQ(ntm_cert_from_b64(&d, "AAAA"), NTM_ERR_VERSION);
	CHECK(ntm_cert_from_b64(&d, "!!") < 0);
	CHECK(ntm_cert_from_b64(&d, NULL) < 0);

	/* A maximal name. */
	memset(c.name, 'a', NTM_NAME_MAX);
	for (int i = 63; i < NTM_NAME_MAX; i += 64)
		c.name[i] = '.';
	c.name[NTM_NAME_MAX] = '\0';
	ntm_cert_sign(&c, as_sk);
	n = ntm_cert_encode(&c, buf, sizeof(buf));
	CHECK_EQ(n, NTM_CERT_MAX);
	CHECK_EQ(ntm_cert_decode(&d, buf, (size_t)n), 0);
	CHECK_EQ(ntm_cert_verify(&d, as_pk, 1000), 0);
}

/* Every proper prefix is short; one extra byte is trailing. */
TEST(truncation)
{
	struct ntm_cert c, d;
	uint8_t buf[NTM_CERT_MAX + 1];
	int n;

	make_cert(&c);
	n = ntm_cert_encode(&c, buf, sizeof(buf));
	for (int i = 0; i < n; i++) {
		int r = ntm_cert_decode(&d, buf, (size_t)i);

		CHECK(r < 0);
		if (i > 3)
			CHECK_EQ(r, NTM_ERR_SHORT);
	}
	buf[n] = 0;
	CHECK_EQ(ntm_cert_decode(&d, buf, (size_t)n + 1), NTM_ERR_TRAILING);
}

TEST(bad_fields)
{
	static const struct { size_t off; uint8_t val; int err; } cases[] = {
		{ 0, 2, NTM_ERR_VERSION },	/* version */
		{ 0, 0, NTM_ERR_VERSION },
		{ 1, 0, NTM_ERR_INVAL },	/* role */
		{ 1, 5, NTM_ERR_INVAL },
		{ 2, 0, NTM_ERR_INVAL },	/* name length 0 */
		{ 2, 254, NTM_ERR_INVAL },	/* name length over 253 */
		{ 2, 255, NTM_ERR_INVAL },
		{ 2, 11, NTM_ERR_TRAILING },	/* length disagrees */
		{ 2, 13, NTM_ERR_SHORT },
		{ 3, 'D', NTM_ERR_INVAL },	/* uppercase name */
		{ 5, 0, NTM_ERR_INVAL },	/* NUL in the name */
		{ 3, '.', NTM_ERR_INVAL },
		{ 3, '-', NTM_ERR_INVAL },
	};
	struct ntm_cert c, d;
	uint8_t buf[NTM_CERT_MAX];
	int n;

	make_cert(&c);
	n = ntm_cert_encode(&c, buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t copy[NTM_CERT_MAX];

		memcpy(copy, buf, (size_t)n);
		copy[cases[i].off] = cases[i].val;
		CHECK_EQ(ntm_cert_decode(&d, copy, (size_t)n), cases[i].err);
	}
}

/* Flipping any bit of the encoding breaks either decoding or the signature. */
TEST(flip)
{
	struct ntm_cert c, d;
	uint8_t buf[NTM_CERT_MAX];
	int n;

	make_cert(&c);
	n = ntm_cert_encode(&c, buf, sizeof(buf));
	for (int i = 0; i < n; i++) {
		buf[i] ^= 0x01;
		if (ntm_cert_decode(&d, buf, (size_t)n) == 0)
			CHECK_EQ(ntm_cert_verify(&d, as_pk, 1500), NTM_ERR_CRYPTO);
		buf[i] ^= 0x01;
	}
}

TEST(validity)
{
	static const struct { int64_t now; int err; } cases[] = {
		{ 999, NTM_ERR_EXPIRED },
		{ 1000, 0 },
		{ 1001, 0 },
		{ 1999, 0 },
		{ 2000, 0 },
		{ 2001, NTM_ERR_EXPIRED },
		{ -1, NTM_ERR_EXPIRED },
		{ INT64_MAX, NTM_ERR_EXPIRED },
	};
	uint8_t other_pk[NTM_SIGN_PK], other_sk[NTM_SIGN_SK];
	struct ntm_cert c;

	make_cert(&c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_EQ(ntm_cert_verify(&c, as_pk, cases[i].now), cases[i].err);

	/* Wrong anchor, changed fields. */
	CHECK_EQ(ntm_sign_keypair(other_pk, other_sk), 0);
	CHECK_EQ(ntm_cert_verify(&c, other_pk, 1500), NTM_ERR_CRYPTO);
	c.role = NTM_ROLE_CS;
	CHECK_EQ(ntm_cert_verify(&c, as_pk, 1500), NTM_ERR_CRYPTO);
	make_cert(&c);
	c.not_after = 3000;
	CHECK_EQ(ntm_cert_verify(&c, as_pk, 1500), NTM_ERR_CRYPTO);
	make_cert(&c);
	c.name[0] = 'e';
	CHECK_EQ(ntm_cert_verify(&c, as_pk, 1500), NTM_ERR_CRYPTO);

	/* Invalid certificates neither encode nor verify. */
	make_cert(&c);
	c.name[0] = '\0';
	CHECK_EQ(ntm_cert_encode(&c, (uint8_t[NTM_CERT_MAX]){ 0 }, NTM_CERT_MAX),
	    NTM_ERR_INVAL);
	CHECK_EQ(ntm_cert_verify(&c, as_pk, 1500), NTM_ERR_CRYPTO);
}

/* ---- device certificates ------------------------------------------------- */

static void
make_dcert(struct ntm_dcert *c)
{
	memset(c, 0, sizeof(*c));
	c->version = 1;
	snprintf(c->user, sizeof(c->user), "alice");
	snprintf(c->device, sizeof(c->device), "laptop-1");
	snprintf(c->fqdn, sizeof(c->fqdn), "alice.dc1.ntm.test");
	memset(c->pk, 0x5d, sizeof(c->pk));
	c->serial = 9;
	c->not_before = 1000;
	c->not_after = 2000;
	ntm_dcert_sign(c, as_sk);
}

/* The layout of docs/protocol.md §2.3, byte by byte. */
TEST(dcert_layout)
{
	struct ntm_dcert c, d;
	uint8_t b[NTM_DCERT_MAX + 1];
	int n;

	make_dcert(&c);
	n = ntm_dcert_encode(&c, b, sizeof(b));
	CHECK_EQ(n, 1 + 1 + 1 + 5 + 1 + 8 + 1 + 18 + 32 + 8 + 8 + 8 + 64);
	CHECK_EQ(b[0], 1);
	CHECK_EQ(b[1], 0x44);			/* no server role: 1..4 */
	CHECK_EQ(b[2], 5);
	CHECK(memcmp(b + 3, "alice", 5) == 0);
	CHECK_EQ(b[8], 8);
	CHECK(memcmp(b + 9, "laptop-1", 8) == 0);
	CHECK_EQ(b[17], 18);
	CHECK(memcmp(b + 18, "alice.dc1.ntm.test", 18) == 0);
	CHECK_EQ(b[36], 0x5d);
	CHECK_EQ(b[68 + 7], 9);			/* serial */
	CHECK_EQ(b[76 + 6], 1000 >> 8);		/* not_before */
	CHECK_EQ(b[84 + 6], 2000 >> 8);		/* not_after */
	CHECK_EQ(ntm_dcert_decode(&d, b, (size_t)n), 0);
	CHECK_STR(d.fqdn, "alice.dc1.ntm.test");
	CHECK_STR(d.user, "alice");
	CHECK_STR(d.device, "laptop-1");
	CHECK_EQ(ntm_dcert_verify(&d, as_pk, 1500), 0);
	CHECK_EQ(ntm_dcert_decode(&d, b, (size_t)n - 1), NTM_ERR_SHORT);
	b[n] = 0;
	CHECK_EQ(ntm_dcert_decode(&d, b, (size_t)n + 1), NTM_ERR_TRAILING);
	b[0] = 2;
	CHECK_EQ(ntm_dcert_decode(&d, b, (size_t)n), NTM_ERR_VERSION);
}

/* Never one for the other: a server certificate does not decode as a
 * device certificate, nor the other way round. */
TEST(dcert_not_a_server_cert)
{
	struct ntm_cert sc;
	struct ntm_dcert dc;
	uint8_t b[NTM_DCERT_MAX];
	int n;

	make_cert(&sc);
	CHECK((n = ntm_cert_encode(&sc, b, sizeof(b))) > 0);
	CHECK_EQ(ntm_dcert_decode(&dc, b, (size_t)n), NTM_ERR_INVAL);
	make_dcert(&dc);
	CHECK((n = ntm_dcert_encode(&dc, b, sizeof(b))) > 0);
	CHECK(ntm_cert_decode(&sc, b, (size_t)n) < 0);
}

TEST(dcert_check)
{
	struct ntm_dcert c, d;
	char b64[NTM_B64_LEN(NTM_DCERT_MAX)], fp[NTM_DFP_LEN], fp2[NTM_DFP_LEN];
	uint8_t other_pk[NTM_SIGN_PK], other_sk[NTM_SIGN_SK];

	make_dcert(&c);
	CHECK(ntm_dcert_to_b64(&c, b64, sizeof(b64)) > 0);
	CHECK_EQ(ntm_dcert_from_b64(&d, b64), 0);
	CHECK_EQ(ntm_dcert_check(&d, as_pk, "alice.dc1.ntm.test", 1000), 0);
	CHECK_EQ(ntm_dcert_check(&d, as_pk, "alice.dc1.ntm.test", 2000), 0);
	CHECK_EQ(ntm_dcert_check(&d, as_pk, "alice.dc1.ntm.test", 999), NTM_ERR_EXPIRED);
	CHECK_EQ(ntm_dcert_check(&d, as_pk, "alice.dc1.ntm.test", 2001), NTM_ERR_EXPIRED);
	CHECK_EQ(ntm_dcert_check(&d, as_pk, "bob.dc1.ntm.test", 1500), NTM_ERR_IDENTITY);
	CHECK_EQ(ntm_dcert_check(&d, as_pk, NULL, 1500), NTM_ERR_IDENTITY);
	CHECK_EQ(ntm_sign_keypair(other_pk, other_sk), 0);
	CHECK_EQ(ntm_dcert_check(&d, other_pk, "alice.dc1.ntm.test", 1500), NTM_ERR_CRYPTO);
	/* Any changed field breaks the signature: the key most of all. */
	d.pk[0] ^= 1;
	CHECK_EQ(ntm_dcert_verify(&d, as_pk, 1500), NTM_ERR_CRYPTO);
	d = c;
	snprintf(d.fqdn, sizeof(d.fqdn), "alice.dc2.ntm.test");
	CHECK_EQ(ntm_dcert_verify(&d, as_pk, 1500), NTM_ERR_CRYPTO);
	d = c;
	d.not_after = 3000;
	CHECK_EQ(ntm_dcert_verify(&d, as_pk, 1500), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_dcert_from_b64(&d, "!!"), NTM_ERR_INVAL);
	/* Fingerprints: stable form, differ per key and per name. */
	ntm_dkey_fingerprint(fp, "alice.dc1.ntm.test", c.pk);
	CHECK_EQ(strlen(fp), 39);
	CHECK_EQ(fp[4], '-');
	ntm_dkey_fingerprint(fp2, "alice.dc1.ntm.test", c.pk);
	CHECK_STR(fp, fp2);
	c.pk[31] ^= 1;
	ntm_dkey_fingerprint(fp2, "alice.dc1.ntm.test", c.pk);
	CHECK(strcmp(fp, fp2) != 0);
	CHECK(ntm_name_in_domain("alice.dc1.ntm.test", "dc1.ntm.test"));
	CHECK(!ntm_name_in_domain("dc1.ntm.test", "dc1.ntm.test"));
	CHECK(!ntm_name_in_domain("alice.xdc1.ntm.test", "dc1.ntm.test"));
	CHECK(!ntm_name_in_domain("alicedc1.ntm.test", "dc1.ntm.test"));
}

UNIT_MAIN(T(init), T(roles), T(dcert_layout), T(dcert_not_a_server_cert),
    T(dcert_check), T(layout), T(roundtrip), T(truncation),
    T(bad_fields), T(flip), T(validity))
