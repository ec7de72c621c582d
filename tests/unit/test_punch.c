/* test_punch.c - CANDIDATES, the candidates a moved end sends its peer
 * inside the tunnel (docs/protocol.md §4.8), with literal bytes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "punch.h"
#include "probe.h"
#include "tunnel.h"
#include "unit.h"

static struct sockaddr_storage
sa(const char *s)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memset(&ss, 0, sizeof(ss));
	CHECK_EQ(ntm_sa_parse(&ss, &len, s), 0);
	return ss;
}

static const char *
str(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
	return ntm_sa_str((const struct sockaddr *)ss, buf, cap);
}

TEST(roundtrip)
{
	struct sockaddr_storage c[2] = { sa("198.18.0.7:40000"), sa("[fd00::7]:4500") };
	struct sockaddr_storage got[NTM_PUNCH_CANDS_MAX];
	uint8_t m[NTM_PUNCH_CANDS_LEN(NTM_PUNCH_CANDS_MAX)];
	char buf[64];
	uint32_t gen;
	int len, nat, n;

	len = ntm_punch_cands_make(m, sizeof(m), NTM_NAT_EI, 0x01020304, c, 2);
	CHECK_EQ(len, NTM_PUNCH_CANDS_LEN(2));
	CHECK_EQ(len, 48);
	/* The header as the protocol fixes it. */
	CHECK_EQ(m[0], NTM_TUN_CTL_CANDS);
	CHECK_EQ(m[1], NTM_NAT_EI);
	CHECK_EQ(m[2], 2);
	CHECK_EQ(m[3], 0);
	CHECK_EQ(m[4], 1);
	CHECK_EQ(m[7], 4);
	CHECK_EQ(ntm_punch_cands_open(m, (size_t)len, &nat, &gen, got, &n), 0);
	CHECK_EQ(nat, NTM_NAT_EI);
	CHECK_EQ(gen, 0x01020304);
	CHECK_EQ(n, 2);
	CHECK_STR(str(&got[0], buf, sizeof(buf)), "198.18.0.7:40000");
	CHECK_STR(str(&got[1], buf, sizeof(buf)), "[fd00::7]:4500");
	/* Behind a NAT that varies by destination: none, and none allowed. */
	len = ntm_punch_cands_make(m, sizeof(m), NTM_NAT_PER_DEST, 9, NULL, 0);
	CHECK_EQ(len, NTM_PUNCH_CANDS_HDR);
	CHECK_EQ(ntm_punch_cands_open(m, (size_t)len, &nat, &gen, got, &n), 0);
	CHECK_EQ(nat, NTM_NAT_PER_DEST);
	CHECK_EQ(n, 0);
	CHECK_EQ(ntm_punch_cands_make(m, sizeof(m), NTM_NAT_PER_DEST, 9, c, 1), NTM_ERR_INVAL);
	CHECK_EQ(ntm_punch_cands_make(m, sizeof(m), NTM_NAT_EI, 9, NULL, 0), NTM_ERR_INVAL);
	CHECK_EQ(ntm_punch_cands_make(m, sizeof(m), 77, 9, NULL, 0), NTM_ERR_INVAL);
	CHECK_EQ(ntm_punch_cands_make(m, 20, NTM_NAT_EI, 9, c, 2), NTM_ERR_NOSPACE);
}

TEST(refused)
{
	struct sockaddr_storage c[1] = { sa("[::ffff:198.18.0.9]:7") };
	struct sockaddr_storage got[NTM_PUNCH_CANDS_MAX];
	uint8_t m[NTM_PUNCH_CANDS_LEN(NTM_PUNCH_CANDS_MAX) + 1], x[sizeof(m)];
	char buf[64];
	uint32_t gen;
	int len, nat, n;

	len = ntm_punch_cands_make(m, sizeof(m), NTM_NAT_EI, 1, c, 1);
	CHECK_EQ(len, 28);
	/* An IPv4-mapped candidate comes back as IPv4. */
	CHECK_EQ(ntm_punch_cands_open(m, (size_t)len, &nat, &gen, got, &n), 0);
	CHECK_STR(str(&got[0], buf, sizeof(buf)), "198.18.0.9:7");
	/* Short, long, truncated header. */
	CHECK_EQ(ntm_punch_cands_open(m, (size_t)len - 1, &nat, &gen, got, &n), NTM_ERR_SHORT);
	CHECK_EQ(ntm_punch_cands_open(m, (size_t)len + 1, &nat, &gen, got, &n), NTM_ERR_TOOBIG);
	CHECK_EQ(ntm_punch_cands_open(m, 7, &nat, &gen, got, &n), NTM_ERR_SHORT);
	CHECK_EQ(ntm_punch_cands_open(NULL, 0, &nat, &gen, got, &n), NTM_ERR_SHORT);
	/* Each header byte wrong in turn. */
	memcpy(x, m, (size_t)len);
	x[0] = NTM_TUN_CTL_CANDS + 1;
	CHECK_EQ(ntm_punch_cands_open(x, (size_t)len, &nat, &gen, got, &n), NTM_ERR_PROTO);
	memcpy(x, m, (size_t)len);
	x[1] = NTM_NAT_PER_DEST;		/* candidates for a per-destination NAT */
	CHECK_EQ(ntm_punch_cands_open(x, (size_t)len, &nat, &gen, got, &n), NTM_ERR_PROTO);
	memcpy(x, m, (size_t)len);
	x[1] = 9;				/* no such NAT kind */
	CHECK_EQ(ntm_punch_cands_open(x, (size_t)len, &nat, &gen, got, &n), NTM_ERR_PROTO);
	memcpy(x, m, (size_t)len);
	x[2] = NTM_PUNCH_CANDS_MAX + 1;
	CHECK_EQ(ntm_punch_cands_open(x, (size_t)len, &nat, &gen, got, &n), NTM_ERR_PROTO);
	memcpy(x, m, (size_t)len);
	x[3] = 1;
	CHECK_EQ(ntm_punch_cands_open(x, (size_t)len, &nat, &gen, got, &n), NTM_ERR_PROTO);
	/* An empty address. */
	memcpy(x, m, (size_t)len);
	memset(x + NTM_PUNCH_CANDS_HDR, 0, NTM_WADDR_LEN);
	CHECK_EQ(ntm_punch_cands_open(x, (size_t)len, &nat, &gen, got, &n), NTM_ERR_PROTO);
}

UNIT_MAIN(T(roundtrip), T(refused))
