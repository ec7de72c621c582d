/*
 * test_ippkt.c - inner IP packets: byte-exact builds against packets made
 * by an independent implementation (checked with tcpdump -vv: "udp sum ok",
 * "icmp6 sum ok"), checksum vectors, strict parsing of truncated, padded,
 * fragmented and corrupted packets.
 */
#include <arpa/inet.h>

#include "ippkt.h"
#include "unit.h"

/* 100.64.1.2:40000 -> 100.64.2.3:7000 "hello\n", id 0x1234, DF, ttl 64 */
static const uint8_t udp4[] = {
	0x45, 0x00, 0x00, 0x22, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x5d, 0x12,
	0x64, 0x40, 0x01, 0x02, 0x64, 0x40, 0x02, 0x03, 0x9c, 0x40, 0x1b, 0x58,
	0x00, 0x0e, 0x38, 0xd8, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x0a,
};
/* [fd00:6e74:1::2]:40000 -> [fd00:6e74:2::3]:7000 "hello\n" */
static const uint8_t udp6[] = {
	0x60, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x11, 0x40, 0xfd, 0x00, 0x6e, 0x74,
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
	0xfd, 0x00, 0x6e, 0x74, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x03, 0x9c, 0x40, 0x1b, 0x58, 0x00, 0x0e, 0x2d, 0x6b,
	0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x0a,
};
/* echo request id 0x4e54 seq 1 "ntm-ping", 100.64.1.2 -> 100.64.2.3 */
static const uint8_t echo4[] = {
	0x45, 0x00, 0x00, 0x24, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x5d, 0x20,
	0x64, 0x40, 0x01, 0x02, 0x64, 0x40, 0x02, 0x03, 0x08, 0x00, 0xef, 0x37,
	0x4e, 0x54, 0x00, 0x01, 0x6e, 0x74, 0x6d, 0x2d, 0x70, 0x69, 0x6e, 0x67,
};
/* ICMPv6 echo request id 0x4e54 seq 1 "ntm-ping" */
static const uint8_t echo6[] = {
	0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 0x3a, 0x40, 0xfd, 0x00, 0x6e, 0x74,
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
	0xfd, 0x00, 0x6e, 0x74, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x03, 0x80, 0x00, 0x9f, 0xfa, 0x4e, 0x54, 0x00, 0x01,
	0x6e, 0x74, 0x6d, 0x2d, 0x70, 0x69, 0x6e, 0x67,
};
/* odd-length UDP payload "abc", ports 1 -> 2 */
static const uint8_t udp4odd[] = {
	0x45, 0x00, 0x00, 0x1f, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x5d, 0x15,
	0x64, 0x40, 0x01, 0x02, 0x64, 0x40, 0x02, 0x03, 0x00, 0x01, 0x00, 0x02,
	0x00, 0x0b, 0x6f, 0xed, 0x61, 0x62, 0x63,
};

static void
addr(int version, const char *s, uint8_t out[16])
{
	memset(out, 0, 16);
	CHECK_EQ(inet_pton(version == 4 ? AF_INET : AF_INET6, s, out), 1);
}

static void
mk(struct ntm_ip *ip, int version, uint8_t proto)
{
	memset(ip, 0, sizeof(*ip));
	ip->version = version;
	ip->proto = proto;
	ip->ident = 0x1234;
	addr(version, version == 4 ? "100.64.1.2" : "fd00:6e74:1::2", ip->src);
	addr(version, version == 4 ? "100.64.2.3" : "fd00:6e74:2::3", ip->dst);
}

TEST(csum_vectors)
{
	/* RFC 1071 §3 example: sum ddf2, checksum 220d. */
	static const uint8_t rfc[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	/* A textbook IPv4 header whose checksum field is b861. */
	static const uint8_t hdr[] = { 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00,
	    0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7 };
	uint8_t h2[sizeof(hdr)];

	CHECK_EQ(ntm_csum_add(0, rfc, sizeof(rfc)) % 0xffff, 0x2ddf0 % 0xffff);
	CHECK_EQ(ntm_csum_fold(ntm_csum_add(0, rfc, sizeof(rfc))), 0x220d);
	CHECK_EQ(ntm_csum_fold(ntm_csum_add(0, hdr, sizeof(hdr))), 0xb861);
	memcpy(h2, hdr, sizeof(h2));
	h2[10] = 0xb8;
	h2[11] = 0x61;
	CHECK_EQ(ntm_csum_fold(ntm_csum_add(0, h2, sizeof(h2))), 0);
	/* odd length: the last byte is padded with zero */
	CHECK_EQ(ntm_csum_add(0, "\x01", 1), 0x100);
	CHECK_EQ(ntm_csum_fold(0), 0xffff);
	CHECK_EQ(ntm_csum_fold(0xffff), 0);
	CHECK_EQ(ntm_csum_fold(0x1fffe), 0);
}

/* The word-at-a-time sum folds to RFC 1071's byte-pair sum for every
 * length, alignment and starting sum. */
static uint16_t
csum_ref(uint32_t sum, const uint8_t *b, size_t n)
{
	uint64_t acc = sum;

	for (; n >= 2; b += 2, n -= 2)
		acc += (uint32_t)(b[0] << 8 | b[1]);
	if (n)
		acc += (uint32_t)b[0] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

TEST(csum_matches_reference)
{
	static uint8_t buf[1600];
	uint32_t x = 0x12345678;
	size_t i, n, off;

	for (i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	for (n = 0; n <= 1500; n += (n < 40 ? 1 : 37))
		for (off = 0; off < 4; off++) {
			uint32_t start = (uint32_t)(n * 2654435761u) & 0x3ffff;

			CHECK_EQ(ntm_csum_fold(ntm_csum_add(start, buf + off, n)),
			    csum_ref(start, buf + off, n));
		}
	memset(buf, 0xff, sizeof(buf));
	CHECK_EQ(ntm_csum_fold(ntm_csum_add(0, buf, 1500)), csum_ref(0, buf, 1500));
}

TEST(build_exact)
{
	static const struct {
		const char *name; int version; uint8_t proto; uint8_t type;
		uint16_t sp, dp; const char *data;
		const uint8_t *want; size_t wlen;
	} v[] = {
		{ "udp4", 4, NTM_PROTO_UDP, 0, 40000, 7000, "hello\n", udp4, sizeof(udp4) },
		{ "udp6", 6, NTM_PROTO_UDP, 0, 40000, 7000, "hello\n", udp6, sizeof(udp6) },
		{ "udp4odd", 4, NTM_PROTO_UDP, 0, 1, 2, "abc", udp4odd, sizeof(udp4odd) },
		{ "echo4", 4, NTM_PROTO_ICMP, NTM_ICMP_ECHO_REQUEST, 0, 0, "ntm-ping",
		  echo4, sizeof(echo4) },
		{ "echo6", 6, NTM_PROTO_ICMP6, NTM_ICMP6_ECHO_REQUEST, 0, 0, "ntm-ping",
		  echo6, sizeof(echo6) },
	};
	uint8_t out[128];
	struct ntm_ip ip;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		mk(&ip, v[i].version, v[i].proto);
		ip.sport = v[i].sp;
		ip.dport = v[i].dp;
		ip.icmp_type = v[i].type;
		ip.echo_id = 0x4e54;
		ip.echo_seq = 1;
		ip.payload = (const uint8_t *)v[i].data;
		ip.len = strlen(v[i].data);
		CHECK_EQ(ntm_ip_build(out, sizeof(out), &ip), v[i].wlen);
		if (memcmp(out, v[i].want, v[i].wlen) != 0) {
			fprintf(stderr, "build %s differs\n", v[i].name);
			CHECK(0);
		}
		/* too small a buffer */
		CHECK_EQ(ntm_ip_build(out, v[i].wlen - 1, &ip), NTM_ERR_TOOBIG);
	}
	mk(&ip, 4, NTM_PROTO_ICMP6);
	CHECK_EQ(ntm_ip_build(out, sizeof(out), &ip), NTM_ERR_INVAL);
	mk(&ip, 6, NTM_PROTO_ICMP);
	CHECK_EQ(ntm_ip_build(out, sizeof(out), &ip), NTM_ERR_INVAL);
	mk(&ip, 5, NTM_PROTO_UDP);
	CHECK_EQ(ntm_ip_build(out, sizeof(out), &ip), NTM_ERR_INVAL);
	mk(&ip, 4, 6);
	CHECK_EQ(ntm_ip_build(out, sizeof(out), &ip), NTM_ERR_INVAL);
}

TEST(parse_good)
{
	struct ntm_ip ip;
	uint8_t a[16];

	CHECK_EQ(ntm_ip_parse(&ip, udp4, sizeof(udp4)), 0);
	CHECK_EQ(ip.version, 4);
	CHECK_EQ(ip.proto, NTM_PROTO_UDP);
	CHECK_EQ(ip.ttl, 64);
	CHECK_EQ(ip.ident, 0x1234);
	CHECK_EQ(ip.sport, 40000);
	CHECK_EQ(ip.dport, 7000);
	CHECK_EQ(ip.len, 6);
	CHECK(memcmp(ip.payload, "hello\n", 6) == 0);
	addr(4, "100.64.1.2", a);
	CHECK(memcmp(ip.src, a, 4) == 0);
	addr(4, "100.64.2.3", a);
	CHECK(memcmp(ip.dst, a, 4) == 0);

	CHECK_EQ(ntm_ip_parse(&ip, udp6, sizeof(udp6)), 0);
	CHECK_EQ(ip.version, 6);
	CHECK_EQ(ip.dport, 7000);
	CHECK_EQ(ip.len, 6);
	addr(6, "fd00:6e74:2::3", a);
	CHECK(memcmp(ip.dst, a, 16) == 0);

	CHECK_EQ(ntm_ip_parse(&ip, udp4odd, sizeof(udp4odd)), 0);
	CHECK_EQ(ip.len, 3);

	CHECK_EQ(ntm_ip_parse(&ip, echo4, sizeof(echo4)), 0);
	CHECK(ip.is_echo);
	CHECK_EQ(ip.icmp_type, NTM_ICMP_ECHO_REQUEST);
	CHECK_EQ(ip.echo_id, 0x4e54);
	CHECK_EQ(ip.echo_seq, 1);
	CHECK_EQ(ip.len, 8);

	CHECK_EQ(ntm_ip_parse(&ip, echo6, sizeof(echo6)), 0);
	CHECK(ip.is_echo);
	CHECK_EQ(ip.icmp_type, NTM_ICMP6_ECHO_REQUEST);
	CHECK(memcmp(ip.payload, "ntm-ping", 8) == 0);
}

TEST(parse_truncated)
{
	static const struct { const uint8_t *p; size_t n; } v[] = {
		{ udp4, sizeof(udp4) }, { udp6, sizeof(udp6) }, { echo4, sizeof(echo4) },
		{ echo6, sizeof(echo6) }, { udp4odd, sizeof(udp4odd) },
	};
	struct ntm_ip ip;

	/* Every strict prefix fails; none is accepted as a shorter packet. */
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		for (size_t n = 0; n < v[i].n; n++)
			CHECK_EQ(ntm_ip_parse(&ip, v[i].p, n), NTM_ERR_SHORT);
	CHECK_EQ(ntm_ip_parse(&ip, NULL, 0), NTM_ERR_SHORT);
}

/* Copies p, applies one change, fixes the IPv4 header checksum if asked. */
static int
mutated(const uint8_t *p, size_t n, size_t at, uint8_t val, int fixhdr, size_t extra)
{
	uint8_t b[256];
	struct ntm_ip ip;

	memcpy(b, p, n);
	memset(b + n, 0, extra);
	if (at < n)
		b[at] = val;
	if (fixhdr) {
		size_t hl = (size_t)(b[0] & 15) * 4;

		b[10] = b[11] = 0;
		if (hl <= n) {
			uint16_t c = ntm_csum_fold(ntm_csum_add(0, b, hl));
			b[10] = (uint8_t)(c >> 8);
			b[11] = (uint8_t)c;
		}
	}
	return ntm_ip_parse(&ip, b, n + extra);
}

TEST(parse_bad)
{
	/* version nibble */
	CHECK_EQ(mutated(udp4, sizeof(udp4), 0, 0x55, 0, 0), NTM_ERR_PROTO);
	CHECK_EQ(mutated(udp4, sizeof(udp4), 0, 0x05, 0, 0), NTM_ERR_PROTO);
	CHECK_EQ(mutated(udp6, sizeof(udp6), 0, 0x70, 0, 0), NTM_ERR_PROTO);
	/* IHL < 5 */
	CHECK_EQ(mutated(udp4, sizeof(udp4), 0, 0x44, 1, 0), NTM_ERR_PROTO);
	/* IHL beyond the packet */
	CHECK_EQ(mutated(udp4, sizeof(udp4), 0, 0x4f, 0, 0), NTM_ERR_SHORT);
	/* trailing bytes after the total length */
	CHECK_EQ(mutated(udp4, sizeof(udp4), 99, 0, 0, 1), NTM_ERR_TRAILING);
	CHECK_EQ(mutated(udp6, sizeof(udp6), 99, 0, 0, 2), NTM_ERR_TRAILING);
	/* total length shorter than the header */
	CHECK_EQ(mutated(udp4, sizeof(udp4), 3, 0x10, 1, 0), NTM_ERR_PROTO);
	/* header checksum */
	CHECK_EQ(mutated(udp4, sizeof(udp4), 10, 0x5d ^ 1, 0, 0), NTM_ERR_INVAL);
	CHECK_EQ(mutated(udp4, sizeof(udp4), 8, 63, 0, 0), NTM_ERR_INVAL);
	/* fragments: MF set, or an offset */
	CHECK_EQ(mutated(udp4, sizeof(udp4), 6, 0x60, 1, 0), NTM_ERR_PROTO);
	CHECK_EQ(mutated(udp4, sizeof(udp4), 7, 0x01, 1, 0), NTM_ERR_PROTO);
	CHECK_EQ(mutated(udp6, sizeof(udp6), 6, 44, 0, 0), NTM_ERR_PROTO);
	/* UDP checksum and payload corruption */
	CHECK_EQ(mutated(udp4, sizeof(udp4), 27, 0xd9, 0, 0), NTM_ERR_INVAL);
	CHECK_EQ(mutated(udp4, sizeof(udp4), 33, 0x0b, 0, 0), NTM_ERR_INVAL);
	CHECK_EQ(mutated(udp6, sizeof(udp6), 49, 0x66, 0, 0), NTM_ERR_INVAL);
	/* a changed address breaks the pseudo-header sum */
	CHECK_EQ(mutated(udp6, sizeof(udp6), 39, 0x04, 0, 0), NTM_ERR_INVAL);
	CHECK_EQ(mutated(echo6, sizeof(echo6), 23, 0x09, 0, 0), NTM_ERR_INVAL);
	CHECK_EQ(mutated(echo4, sizeof(echo4), 35, 0x00, 0, 0), NTM_ERR_INVAL);
	/* IPv4 UDP checksum 0 = none; IPv6 UDP checksum 0 is invalid */
	{
		uint8_t b[sizeof(udp4)];
		struct ntm_ip ip;

		memcpy(b, udp4, sizeof(b));
		b[26] = b[27] = 0;
		CHECK_EQ(ntm_ip_parse(&ip, b, sizeof(b)), 0);
		CHECK_EQ(mutated(udp6, sizeof(udp6), 46, 0, 0, 0) , NTM_ERR_INVAL);
	}
	/* UDP length field disagrees with the IP length */
	CHECK_EQ(mutated(udp4, sizeof(udp4), 25, 0x0d, 0, 0), NTM_ERR_PROTO);
	CHECK_EQ(mutated(udp4, sizeof(udp4), 25, 0x07, 0, 0), NTM_ERR_PROTO);
	/* ICMP inside IPv6 / ICMPv6 inside IPv4 */
	CHECK_EQ(mutated(echo4, sizeof(echo4), 9, NTM_PROTO_ICMP6, 1, 0), NTM_ERR_PROTO);
	CHECK_EQ(mutated(echo6, sizeof(echo6), 6, NTM_PROTO_ICMP, 0, 0), NTM_ERR_PROTO);
}

TEST(parse_options_ext)
{
	/* IPv4 with 4 bytes of options (NOP NOP NOP EOL): skipped. */
	uint8_t b[128];
	struct ntm_ip ip;
	size_t n = sizeof(udp4) + 4;
	uint16_t c;

	memcpy(b, udp4, 20);
	b[0] = 0x46;
	b[3] = (uint8_t)n;
	b[10] = b[11] = 0;
	b[20] = b[21] = b[22] = 1;
	b[23] = 0;
	memcpy(b + 24, udp4 + 20, sizeof(udp4) - 20);
	c = ntm_csum_fold(ntm_csum_add(0, b, 24));
	b[10] = (uint8_t)(c >> 8);
	b[11] = (uint8_t)c;
	CHECK_EQ(ntm_ip_parse(&ip, b, n), 0);
	CHECK_EQ(ip.dport, 7000);
	CHECK_EQ(ip.len, 6);

	/* IPv6 with a destination-options header (8 bytes, PadN): skipped. */
	memcpy(b, udp6, 40);
	b[5] = (uint8_t)(sizeof(udp6) - 40 + 8);
	b[6] = 60;
	memset(b + 40, 0, 8);
	b[40] = NTM_PROTO_UDP;
	b[41] = 0;
	b[42] = 1;	/* PadN, 4 bytes */
	b[43] = 4;
	memcpy(b + 48, udp6 + 40, sizeof(udp6) - 40);
	CHECK_EQ(ntm_ip_parse(&ip, b, sizeof(udp6) + 8), 0);
	CHECK_EQ(ip.proto, NTM_PROTO_UDP);
	CHECK_EQ(ip.sport, 40000);
	/* extension header running past the end */
	b[41] = 5;
	CHECK_EQ(ntm_ip_parse(&ip, b, sizeof(udp6) + 8), NTM_ERR_SHORT);
	/* a fragment header after it */
	b[41] = 0;
	b[40] = 44;
	CHECK_EQ(ntm_ip_parse(&ip, b, sizeof(udp6) + 8), NTM_ERR_PROTO);
	/* hop-by-hop later than first: refused */
	b[40] = 0;
	CHECK_EQ(ntm_ip_parse(&ip, b, sizeof(udp6) + 8), NTM_ERR_PROTO);
	/* other protocols parse with the upper-layer bytes as payload */
	CHECK_EQ(mutated(udp4, sizeof(udp4), 9, 6, 1, 0), 0);
}

TEST(echo_reply)
{
	static const uint8_t *const reqs[] = { echo4, echo6 };
	static const size_t lens[] = { sizeof(echo4), sizeof(echo6) };
	uint8_t out[128];
	struct ntm_ip req, rep;
	int n;

	for (size_t i = 0; i < 2; i++) {
		CHECK_EQ(ntm_ip_parse(&req, reqs[i], lens[i]), 0);
		n = ntm_ip_echo_reply(out, sizeof(out), &req);
		CHECK_EQ(n, lens[i]);
		CHECK_EQ(ntm_ip_parse(&rep, out, (size_t)n), 0);
		CHECK(rep.is_echo);
		CHECK_EQ(rep.icmp_type, i == 0 ? NTM_ICMP_ECHO_REPLY : NTM_ICMP6_ECHO_REPLY);
		CHECK_EQ(rep.echo_id, 0x4e54);
		CHECK_EQ(rep.echo_seq, 1);
		CHECK(memcmp(rep.src, req.dst, 16) == 0);
		CHECK(memcmp(rep.dst, req.src, 16) == 0);
		CHECK_EQ(rep.len, 8);
		/* a reply is not answered */
		CHECK_EQ(ntm_ip_echo_reply(out, sizeof(out), &rep), NTM_ERR_INVAL);
	}
	CHECK_EQ(ntm_ip_parse(&req, udp4, sizeof(udp4)), 0);
	CHECK_EQ(ntm_ip_echo_reply(out, sizeof(out), &req), NTM_ERR_INVAL);
}

TEST(roundtrip_sizes)
{
	uint8_t data[1400], out[1500];
	struct ntm_ip ip, back;
	int n;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	for (int v = 4; v <= 6; v += 2)
		for (size_t len = 0; len <= 1400; len += 97) {
			mk(&ip, v, NTM_PROTO_UDP);
			ip.sport = 5;
			ip.dport = 6;
			ip.payload = data;
			ip.len = len;
			n = ntm_ip_build(out, sizeof(out), &ip);
			CHECK_EQ(n, (v == 4 ? 20 : 40) + 8 + (long long)len);
			CHECK_EQ(ntm_ip_parse(&back, out, (size_t)n), 0);
			CHECK_EQ(back.len, len);
			CHECK(len == 0 || memcmp(back.payload, data, len) == 0);
		}
}

UNIT_MAIN(T(csum_vectors), T(csum_matches_reference), T(build_exact), T(parse_good), T(parse_truncated),
    T(parse_bad), T(parse_options_ext), T(echo_reply), T(roundtrip_sizes))
