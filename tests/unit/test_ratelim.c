/* test_ratelim.c - token buckets per key (lib/core/ratelim.c), literal times. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ratelim.h"
#include "unit.h"

static const uint8_t K[16] = "ratelim-test-key";

TEST(bucket)
{
	struct ntm_ratelim *l = ntm_ratelim_new(64, 2, 10, K);
	int n = 0;

	CHECK(l != NULL);
	/* A burst of 10, then 2 a second. */
	for (int i = 0; i < 100; i++)
		n += ntm_ratelim_take(l, "a", 1, 1000);
	CHECK_EQ(n, 10);
	CHECK_EQ(ntm_ratelim_take(l, "a", 1, 1400), 0);
	CHECK_EQ(ntm_ratelim_take(l, "a", 1, 1500), 1);
	CHECK_EQ(ntm_ratelim_take(l, "a", 1, 1500), 0);
	/* Another key is not touched. */
	CHECK_EQ(ntm_ratelim_take(l, "b", 1, 1500), 1);
	/* Refilled to the burst, not beyond. */
	n = 0;
	for (int i = 0; i < 100; i++)
		n += ntm_ratelim_take(l, "a", 1, 100000);
	CHECK_EQ(n, 10);
	/* Sustained over 10 s at 10 a second: 2 a second pass (and the burst). */
	n = 0;
	for (int t = 0; t < 10000; t += 100)
		n += ntm_ratelim_take(l, "c", 1, 200000 + t);
	CHECK(n >= 28 && n <= 31);
	ntm_ratelim_free(l);
	CHECK(ntm_ratelim_new(0, 1, 1, K) == NULL);
	CHECK(ntm_ratelim_new(8, 0, 1, K) == NULL);
}

TEST(many_keys_bounded)
{
	struct ntm_ratelim *l = ntm_ratelim_new(256, 1, 1, K);
	char k[16];
	int n = 0;

	/* 100,000 keys through 256 slots: each new key starts full, so a
	 * flood of new keys cannot empty an old key's bucket, only evict it. */
	CHECK_EQ(ntm_ratelim_take(l, "old", 3, 0), 1);
	for (int i = 0; i < 100000; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		n += ntm_ratelim_take(l, k, strlen(k), 0);
	}
	CHECK_EQ(n, 100000);
	ntm_ratelim_free(l);
}

TEST(addr_key)
{
	uint8_t a[18], b[18];
	size_t an, bn;

	CHECK_EQ(ntm_ratelim_addr_key("198.18.1.10:4000", 0, a, &an), 0);
	CHECK_EQ(ntm_ratelim_addr_key("198.18.1.10:5000", 0, b, &bn), 0);
	CHECK(an == bn && memcmp(a, b, an) == 0);		/* the port is not the key */
	CHECK_EQ(ntm_ratelim_addr_key("198.18.1.11:4000", 0, b, &bn), 0);
	CHECK(memcmp(a, b, an) != 0);
	CHECK_EQ(ntm_ratelim_addr_key("198.18.1.10", -1, a, &an), 0);	/* /24 */
	CHECK_EQ(ntm_ratelim_addr_key("198.18.1.200:1", -1, b, &bn), 0);
	CHECK(an == bn && memcmp(a, b, an) == 0);
	CHECK_EQ(ntm_ratelim_addr_key("198.18.2.10:1", -1, b, &bn), 0);
	CHECK(memcmp(a, b, an) != 0);
	/* IPv4-mapped is IPv4. */
	CHECK_EQ(ntm_ratelim_addr_key("[::ffff:198.18.1.10]:9", 0, a, &an), 0);
	CHECK_EQ(ntm_ratelim_addr_key("198.18.1.10:1", 0, b, &bn), 0);
	CHECK(an == bn && memcmp(a, b, an) == 0);
	/* IPv6 /56. */
	CHECK_EQ(ntm_ratelim_addr_key("[fd00:1:2:3400::1]:1", -1, a, &an), 0);
	CHECK_EQ(ntm_ratelim_addr_key("[fd00:1:2:34ff:ffff::9]:1", -1, b, &bn), 0);
	CHECK(an == bn && memcmp(a, b, an) == 0);
	CHECK_EQ(ntm_ratelim_addr_key("[fd00:1:2:3500::1]:1", -1, b, &bn), 0);
	CHECK(memcmp(a, b, an) != 0);
	CHECK_EQ(ntm_ratelim_addr_key("fd00::1", 0, a, &an), 0);
	CHECK_EQ(ntm_ratelim_addr_key("not an address", 0, a, &an), -1);
	CHECK_EQ(ntm_ratelim_addr_key("[fd00::1", 0, a, &an), -1);
	CHECK_EQ(ntm_ratelim_addr_key(NULL, 0, a, &an), -1);
}

UNIT_MAIN(T(bucket), T(many_keys_bounded), T(addr_key))
