/* test_addr.c - prefixes: parsing, overlap, host addresses. */
#include <sys/socket.h>
#include <netinet/in.h>

#include "ntm.h"
#include "unit.h"

TEST(parse)
{
	static const struct { const char *s; int ok, family, len; } v[] = {
		{ "100.64.1.0/24", 1, AF_INET, 24 },
		{ "100.64.0.0/10", 1, AF_INET, 10 },
		{ "0.0.0.0/0", 1, AF_INET, 0 },
		{ "10.1.2.3/32", 1, AF_INET, 32 },
		{ "fd00:6e74:1::/64", 1, AF_INET6, 64 },
		{ "::/0", 1, AF_INET6, 0 },
		{ "fd00::1/128", 1, AF_INET6, 128 },
		{ "100.64.1.1/24", 0, 0, 0 },		/* host bits set */
		{ "fd00::1/64", 0, 0, 0 },
		{ "100.64.1.0/33", 0, 0, 0 },
		{ "fd00::/129", 0, 0, 0 },
		{ "100.64.1.0", 0, 0, 0 },
		{ "100.64.1.0/", 0, 0, 0 },
		{ "100.64.1.0/024", 0, 0, 0 },
		{ "100.64.1.0/+24", 0, 0, 0 },
		{ "100.64.1.0/24/1", 0, 0, 0 },
		{ "100.64.1.0/ 24", 0, 0, 0 },
		{ "100.64.1/24", 0, 0, 0 },
		{ "100.64.1.0.0/24", 0, 0, 0 },
		{ "fd00::g/64", 0, 0, 0 },
		{ "", 0, 0, 0 },
		{ "/24", 0, 0, 0 },
		{ "0000:0000:0000:0000:0000:ffff:100.64.1.0/120", 1, AF_INET6, 120 },
		{ "0000:0000:0000:0000:0000:ffff:100.64.1.0/120xxxxxxxxxxxx", 0, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct ntm_prefix p;
		int r = ntm_prefix_parse(&p, v[i].s);

		if (!v[i].ok) {
			CHECK_EQ(r, NTM_ERR_INVAL);
			continue;
		}
		CHECK_EQ(r, 0);
		CHECK_EQ(p.family, v[i].family);
		CHECK_EQ(p.len, v[i].len);
	}
	CHECK_EQ(ntm_prefix_parse(&(struct ntm_prefix){ 0 }, NULL), NTM_ERR_INVAL);
}

TEST(overlap)
{
	static const struct { const char *a, *b; int overlap; } v[] = {
		{ "100.64.1.0/24", "100.64.1.0/24", 1 },
		{ "100.64.1.0/24", "100.64.2.0/24", 0 },
		{ "100.64.0.0/10", "100.64.2.0/24", 1 },
		{ "100.64.2.0/24", "100.64.0.0/10", 1 },
		{ "100.64.0.0/23", "100.64.1.0/24", 1 },
		{ "100.64.0.0/24", "100.64.1.0/24", 0 },
		{ "100.64.0.0/10", "100.128.0.0/10", 0 },
		{ "0.0.0.0/0", "198.18.0.0/15", 1 },
		{ "fd00:6e74:1::/64", "fd00:6e74:2::/64", 0 },
		{ "fd00:6e74::/32", "fd00:6e74:2::/64", 1 },
		{ "fd00:6e74:1::/48", "fd00:6e74:1:ff00::/56", 1 },
		{ "fd00:6e74:1::/49", "fd00:6e74:1:8000::/49", 0 },
		{ "100.64.0.0/10", "::/0", 0 },	/* families never overlap */
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct ntm_prefix a, b;

		CHECK_EQ(ntm_prefix_parse(&a, v[i].a), 0);
		CHECK_EQ(ntm_prefix_parse(&b, v[i].b), 0);
		CHECK_EQ(ntm_prefix_overlap(&a, &b), v[i].overlap);
		CHECK_EQ(ntm_prefix_overlap(&b, &a), v[i].overlap);
	}
}

TEST(host)
{
	static const struct {
		const char *p;
		uint64_t idx;
		int err;
		const char *want;
	} v[] = {
		{ "100.64.1.0/24", 1, 0, "100.64.1.1" },
		{ "100.64.1.0/24", 254, 0, "100.64.1.254" },
		{ "100.64.1.0/24", 255, NTM_ERR_NOSPACE, NULL },	/* broadcast */
		{ "100.64.1.0/24", 256, NTM_ERR_NOSPACE, NULL },
		{ "100.64.1.0/24", 0, NTM_ERR_INVAL, NULL },
		{ "100.64.0.0/10", 4194302, 0, "100.127.255.254" },
		{ "100.64.0.0/10", 4194303, NTM_ERR_NOSPACE, NULL },
		{ "100.64.0.0/16", 257, 0, "100.64.1.1" },
		{ "100.64.1.0/30", 2, 0, "100.64.1.2" },
		{ "100.64.1.0/30", 3, NTM_ERR_NOSPACE, NULL },
		{ "100.64.1.0/31", 1, NTM_ERR_NOSPACE, NULL },
		{ "100.64.1.1/32", 1, NTM_ERR_NOSPACE, NULL },
		{ "fd00:6e74:1::/64", 1, 0, "fd00:6e74:1::1" },
		{ "fd00:6e74:1::/64", 0x10000, 0, "fd00:6e74:1::1:0" },
		{ "fd00:6e74:1::/64", UINT64_MAX, 0,
		  "fd00:6e74:1:0:ffff:ffff:ffff:ffff" },
		{ "fd00:6e74:1::/120", 255, 0, "fd00:6e74:1::ff" },
		{ "fd00:6e74:1::/120", 256, NTM_ERR_NOSPACE, NULL },
		{ "fd00::/8", 1, 0, "fd00::1" },
		{ "fd00::1/128", 1, NTM_ERR_NOSPACE, NULL },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct ntm_prefix p;
		char out[64];

		CHECK_EQ(ntm_prefix_parse(&p, v[i].p), 0);
		CHECK_EQ(ntm_prefix_host(&p, v[i].idx, out, sizeof(out)), v[i].err);
		if (v[i].want != NULL)
			CHECK_STR(out, v[i].want);
	}
	{
		struct ntm_prefix p;
		char out[8];

		CHECK_EQ(ntm_prefix_parse(&p, "100.64.1.0/24"), 0);
		CHECK_EQ(ntm_prefix_host(&p, 100, out, sizeof(out)), NTM_ERR_TOOBIG);
	}
}

UNIT_MAIN(T(parse), T(overlap), T(host))
