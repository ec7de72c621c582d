/* test_addr.c - prefixes: parsing, overlap, host addresses; push URLs. */
#include <sys/socket.h>
#include <netinet/in.h>

#include "ntm.h"
#include "ntm-rt.h"
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

TEST(push_url)
{
	static const struct { const char *s; int ok; } v[] = {
		{ "https://push.example.org/up/abc?token=x", 1 },
		{ "https://127.0.0.1:8443/up/bob", 1 },
		{ "https://[::1]:8443/up", 1 },
		{ "https://[fd00::1]", 1 },
		{ "https://Push.Example.ORG", 1 },
		{ "https://h:65535#frag", 1 },
		{ "https://h?q", 1 },
		{ "http://push.example.org/up", 0 },	/* not https */
		{ "HTTPS://push.example.org/", 0 },
		{ "https:/push.example.org/", 0 },
		{ "push.example.org/up", 0 },
		{ "https://", 0 },			/* no host */
		{ "https:///up", 0 },
		{ "https://:443/up", 0 },
		{ "https://h:/up", 0 },			/* bad ports */
		{ "https://h:0/up", 0 },
		{ "https://h:65536/up", 0 },
		{ "https://h:080/up", 0 },
		{ "https://h:123456/up", 0 },
		{ "https://h:8a/up", 0 },
		{ "https://user:pw@h/up", 0 },		/* credentials */
		{ "https://h/up bob", 0 },		/* space, control, non-ASCII */
		{ "https://h/up\tbob", 0 },
		{ "https://h/up\x7f", 0 },
		{ "https://h/\xc3\xa9", 0 },
		{ "https://h_x/up", 0 },
		{ "https://::1/up", 0 },
		{ "https://[::1/up", 0 },
		{ "https://[::g]/up", 0 },
		{ "https://[]/up", 0 },
		{ "https://[::1]x/up", 0 },
	};
	char longurl[NTM_PUSH_URL_MAX + 2], out[32];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (ntm_valid_push_url(v[i].s) != v[i].ok) {
			fprintf(stderr, "push url \"%s\": want %d\n", v[i].s, v[i].ok);
			CHECK(0);
		}
	CHECK_EQ(ntm_valid_push_url(NULL), 0);
	/* exactly the maximum is fine, one more byte is not */
	memset(longurl, 'a', sizeof(longurl));
	memcpy(longurl, "https://h/", 10);
	longurl[NTM_PUSH_URL_MAX] = '\0';
	CHECK_EQ(ntm_valid_push_url(longurl), 1);
	longurl[NTM_PUSH_URL_MAX] = 'a';
	longurl[NTM_PUSH_URL_MAX + 1] = '\0';
	CHECK_EQ(ntm_valid_push_url(longurl), 0);

	ntm_push_url_loggable("https://h:1/up/bob?token=secret#f", out, sizeof(out));
	CHECK_STR(out, "https://h:1/up/bob");
	ntm_push_url_loggable("https://h/a#f?x", out, sizeof(out));
	CHECK_STR(out, "https://h/a");
	ntm_push_url_loggable("https://a-rather-long-host-name.example/x", out, 8);
	CHECK_STR(out, "https:/");
}

/* The host a CS URL names: what a CS token's audience and an
 * announcement's CS name are compared with. */
TEST(url_host)
{
	static const struct { const char *url, *host; int ret; } v[] = {
		{ "https://cs1.localhost:8443", "cs1.localhost", 0 },
		{ "https://CS1.Example.ORG/x?y", "cs1.example.org", 0 },
		{ "https://cs1.example.org", "cs1.example.org", 0 },
		{ "https://cs1.example.org?a=b", "cs1.example.org", 0 },
		{ "https://127.0.0.1:9", "127.0.0.1", 0 },
		{ "https://[fd00:18::5]:8445/", "fd00:18::5", 0 },
		{ "http://cs1.example.org", "", NTM_ERR_INVAL },
		{ "https://user@cs1.example.org", "", NTM_ERR_INVAL },
		{ "https://", "", NTM_ERR_INVAL },
	};
	char out[NTM_NAME_MAX + 1];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		CHECK_EQ(ntm_url_host(v[i].url, out, sizeof(out)), v[i].ret);
		CHECK_STR(out, v[i].host);
	}
	CHECK_EQ(ntm_url_host("https://cs1.example.org", out, 4), NTM_ERR_TOOBIG);
	CHECK_EQ(ntm_url_host_is("https://CS1.example.org:1/", "cs1.example.org"), 1);
	CHECK_EQ(ntm_url_host_is("https://cs1.example.org.evil:1", "cs1.example.org"), 0);
	CHECK_EQ(ntm_url_host_is("https://cs1.example:1", "cs1.example.org"), 0);
	CHECK_EQ(ntm_url_host_is("https://127.0.0.1:1", "cs1.example.org"), 0);
	CHECK_EQ(ntm_url_host_is("https://cs1.example.org", NULL), 0);
}

/* The family of an address, IPv4-mapped IPv6 counted as IPv4. */
TEST(sa_family)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	CHECK_EQ(ntm_sa_family(&ss), 0);
	ss.ss_family = AF_INET;
	CHECK_EQ(ntm_sa_family(&ss), AF_INET);
	ss.ss_family = AF_INET6;
	s6->sin6_addr.s6_addr[15] = 1;			/* ::1 */
	CHECK_EQ(ntm_sa_family(&ss), AF_INET6);
	s6->sin6_addr.s6_addr[10] = 0xff;		/* ::ffff:0.0.0.1 */
	s6->sin6_addr.s6_addr[11] = 0xff;
	CHECK_EQ(ntm_sa_family(&ss), AF_INET);
	ss.ss_family = AF_UNIX;
	CHECK_EQ(ntm_sa_family(&ss), 0);
}

UNIT_MAIN(T(parse), T(overlap), T(host), T(push_url), T(url_host), T(sa_family))
