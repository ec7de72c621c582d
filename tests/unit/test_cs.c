/*
 * test_cs.c - the Cache Server's I/O-free rules (lib/core/csrule.c):
 * hex names, strict offsets, which FQDNs belong to an account, object
 * paths, the upload offset rule, the commit checks and the quota.
 */
#include "csrule.h"
#include "unit.h"

TEST(hex)
{
	CHECK(ntm_cs_valid_hex("00ff", 4));
	CHECK(!ntm_cs_valid_hex("00FF", 4));	/* lowercase only */
	CHECK(!ntm_cs_valid_hex("00f", 4));
	CHECK(!ntm_cs_valid_hex("00ff0", 4));
	CHECK(!ntm_cs_valid_hex("0g00", 4));
	CHECK(!ntm_cs_valid_hex(NULL, 4));
	CHECK(!ntm_cs_valid_hex("../x", 4));
}

TEST(u64)
{
	static const struct { const char *s; int ok; uint64_t v; } t[] = {
		{ "0", 1, 0 }, { "4194304", 1, 4194304 }, { "1099511627776", 1, 1ULL << 40 },
		{ "1099511627777", 0, 0 }, { "", 0, 0 }, { "-1", 0, 0 }, { "+1", 0, 0 },
		{ "01", 0, 0 }, { " 1", 0, 0 }, { "1 ", 0, 0 }, { "1x", 0, 0 },
		{ "99999999999999999999", 0, 0 },
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		v = 77;
		CHECK_EQ(ntm_cs_parse_u64(t[i].s, 1ULL << 40, &v) == 0, t[i].ok);
		if (t[i].ok)
			CHECK_EQ(v, t[i].v);
	}
	CHECK(ntm_cs_parse_u64(NULL, 10, &v) < 0);
}

TEST(fqdn_account)
{
	static const struct { const char *f; int ok; } t[] = {
		{ "bob.dc2.ntm.test", 1 }, { "bob-2.dc2.ntm.test", 1 },
		{ "bob-17.dc2.ntm.test", 1 }, { "bob-.dc2.ntm.test", 0 },
		{ "bob-x.dc2.ntm.test", 0 }, { "bobby.dc2.ntm.test", 0 },
		{ "bob.dc1.ntm.test", 0 }, { "bob.xdc2.ntm.test", 0 },
		{ "bob.a.dc2.ntm.test", 0 }, { "bob", 0 }, { "dc2.ntm.test", 0 },
		{ "bob.dc2.ntm.test.", 0 }, { "", 0 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (ntm_cs_fqdn_is_account(t[i].f, "bob", "dc2.ntm.test") != t[i].ok) {
			fprintf(stderr, "fqdn '%s'\n", t[i].f);
			CHECK(0);
		}
	CHECK(!ntm_cs_fqdn_is_account(NULL, "bob", "dc2.ntm.test"));
	CHECK(!ntm_cs_fqdn_is_account("bob.dc2.ntm.test", "", "dc2.ntm.test"));
}

TEST(path)
{
	char out[128];

	CHECK_EQ(ntm_cs_object_path(out, sizeof(out), "/s/objects", "abcdef"), 0);
	CHECK_STR(out, "/s/objects/ab/abcdef");
	CHECK_EQ(ntm_cs_object_path(out, 10, "/s/objects", "abcdef"), NTM_ERR_TOOBIG);
}

TEST(chunk)
{
	/* size 10, holding 4 */
	CHECK_EQ(ntm_cs_chunk_check(10, 4, 4, 6), NTM_CS_CHUNK_OK);
	CHECK_EQ(ntm_cs_chunk_check(10, 4, 4, 1), NTM_CS_CHUNK_OK);
	CHECK_EQ(ntm_cs_chunk_check(10, 4, 4, 7), NTM_CS_CHUNK_TOOLONG);
	CHECK_EQ(ntm_cs_chunk_check(10, 4, 0, 4), NTM_CS_CHUNK_OFFSET);	/* resent */
	CHECK_EQ(ntm_cs_chunk_check(10, 4, 8, 2), NTM_CS_CHUNK_OFFSET);	/* a gap */
	CHECK_EQ(ntm_cs_chunk_check(10, 4, 4, 0), NTM_CS_CHUNK_EMPTY);
	CHECK_EQ(ntm_cs_chunk_check(10, 10, 10, 1), NTM_CS_CHUNK_TOOLONG);
	CHECK_EQ(ntm_cs_chunk_check(UINT64_MAX, 0, 0, NTM_CS_CHUNK_MAX + 1), NTM_CS_CHUNK_BIG);
	CHECK_EQ(ntm_cs_chunk_check(0, 0, 0, 1), NTM_CS_CHUNK_TOOLONG);
}

TEST(commit)
{
	uint8_t a[NTM_HASH_LEN], b[NTM_HASH_LEN];

	memset(a, 1, sizeof(a));
	memset(b, 1, sizeof(b));
	CHECK_EQ(ntm_cs_commit_check(10, 10, 10, a, b), NTM_CS_COMMIT_OK);
	CHECK_EQ(ntm_cs_commit_check(10, 10, 11, a, b), NTM_CS_COMMIT_SIZE);
	CHECK_EQ(ntm_cs_commit_check(10, 9, 10, a, b), NTM_CS_COMMIT_INCOMPLETE);
	b[31] ^= 1;
	CHECK_EQ(ntm_cs_commit_check(10, 10, 10, a, b), NTM_CS_COMMIT_HASH);
	CHECK_EQ(ntm_cs_commit_check(10, 10, 10, NULL, NULL), NTM_CS_COMMIT_OK);
	CHECK_EQ(ntm_cs_commit_check(0, 0, 0, NULL, NULL), NTM_CS_COMMIT_OK);
}

TEST(quota)
{
	CHECK(ntm_cs_quota_ok(0, 100, 100));
	CHECK(!ntm_cs_quota_ok(1, 100, 100));
	CHECK(ntm_cs_quota_ok(60, 40, 100));
	CHECK(!ntm_cs_quota_ok(60, 41, 100));
	CHECK(!ntm_cs_quota_ok(200, 0, 100));	/* quota lowered below usage */
	CHECK(!ntm_cs_quota_ok(1, UINT64_MAX, 100));	/* no wrap-around */
}

UNIT_MAIN(T(hex), T(u64), T(fqdn_account), T(path), T(chunk), T(commit), T(quota))
