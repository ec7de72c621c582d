/*
 * ippkt.c - IPv4/IPv6 + UDP / ICMP echo / ICMPv6 echo, built and parsed by
 * hand (RFC 791, 8200, 768, 792, 4443; checksum RFC 1071).
 */
#include <endian.h>
#include <string.h>

#include "ippkt.h"

#define IP4_MF		0x2000
#define IP4_DF		0x4000
#define IP4_OFFMASK	0x1fff

#define IP6_HOPOPTS	0
#define IP6_ROUTING	43
#define IP6_FRAGMENT	44
#define IP6_DSTOPTS	60

static uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void
wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/*
 * One's-complement sum in big-endian 16-bit words, eight bytes per step:
 * since 2^16 == 1 (mod 0xffff), summing 32-bit big-endian words gives a
 * value congruent to the 16-bit sum, and ntm_csum_fold() reduces both to
 * the same checksum. The partial sum returned is therefore equal to RFC
 * 1071's only modulo 0xffff; callers chain it and fold it, nothing else.
 */
uint32_t
ntm_csum_add(uint32_t sum, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t acc = sum, w;

	for (; n >= 8; b += 8, n -= 8) {
		memcpy(&w, b, 8);
		w = be64toh(w);
		acc += (w >> 32) + (w & 0xffffffffu);
	}
	for (; n >= 2; b += 2, n -= 2)
		acc += (uint32_t)(b[0] << 8 | b[1]);
	if (n)
		acc += (uint32_t)b[0] << 8;
	while (acc >> 32)
		acc = (acc & 0xffffffffu) + (acc >> 32);
	return (uint32_t)acc;
}

uint16_t
ntm_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Sum of the pseudo-header for an upper-layer checksum. */
static uint32_t
pseudo_sum(int version, const uint8_t *src, const uint8_t *dst, uint8_t proto,
    size_t ulen)
{
	uint8_t tail[8] = { 0 };
	uint32_t sum;

	if (version == 4) {
		sum = ntm_csum_add(0, src, 4);
		sum = ntm_csum_add(sum, dst, 4);
		tail[1] = proto;
		wr16(tail + 2, (uint16_t)ulen);
		return ntm_csum_add(sum, tail, 4);
	}
	sum = ntm_csum_add(0, src, 16);
	sum = ntm_csum_add(sum, dst, 16);
	tail[0] = (uint8_t)(ulen >> 24);
	tail[1] = (uint8_t)(ulen >> 16);
	tail[2] = (uint8_t)(ulen >> 8);
	tail[3] = (uint8_t)ulen;
	tail[7] = proto;
	return ntm_csum_add(sum, tail, 8);
}

static int
parse_upper(struct ntm_ip *ip, const uint8_t *u, size_t ulen)
{
	uint32_t sum;

	ip->payload = u;
	ip->len = ulen;
	switch (ip->proto) {
	case NTM_PROTO_UDP:
		if (ulen < NTM_UDP_HDR)
			return NTM_ERR_SHORT;
		if (rd16(u + 4) != ulen)
			return NTM_ERR_PROTO;
		if (rd16(u + 6) != 0 || ip->version == 6) {
			sum = pseudo_sum(ip->version, ip->src, ip->dst, NTM_PROTO_UDP, ulen);
			if (ntm_csum_fold(ntm_csum_add(sum, u, ulen)) != 0 || rd16(u + 6) == 0)
				return NTM_ERR_INVAL;
		}
		ip->sport = rd16(u);
		ip->dport = rd16(u + 2);
		ip->payload = u + NTM_UDP_HDR;
		ip->len = ulen - NTM_UDP_HDR;
		return 0;
	case NTM_PROTO_ICMP:
	case NTM_PROTO_ICMP6:
		if ((ip->proto == NTM_PROTO_ICMP) != (ip->version == 4))
			return NTM_ERR_PROTO;
		if (ulen < 4)
			return NTM_ERR_SHORT;
		sum = ip->version == 6 ?
		    pseudo_sum(6, ip->src, ip->dst, NTM_PROTO_ICMP6, ulen) : 0;
		if (ntm_csum_fold(ntm_csum_add(sum, u, ulen)) != 0)
			return NTM_ERR_INVAL;
		ip->icmp_type = u[0];
		ip->icmp_code = u[1];
		if (ip->version == 4)
			ip->is_echo = u[0] == NTM_ICMP_ECHO_REQUEST || u[0] == NTM_ICMP_ECHO_REPLY;
		else
			ip->is_echo = u[0] == NTM_ICMP6_ECHO_REQUEST || u[0] == NTM_ICMP6_ECHO_REPLY;
		if (ip->is_echo) {
			if (ulen < NTM_ICMP_HDR)
				return NTM_ERR_SHORT;
			ip->echo_id = rd16(u + 4);
			ip->echo_seq = rd16(u + 6);
			ip->payload = u + NTM_ICMP_HDR;
			ip->len = ulen - NTM_ICMP_HDR;
		} else {
			ip->payload = u + 4;
			ip->len = ulen - 4;
		}
		return 0;
	default:
		return 0;
	}
}

static int
parse4(struct ntm_ip *ip, const uint8_t *p, size_t n)
{
	size_t hlen, total;
	uint16_t frag;

	if (n < NTM_IP4_HDR)
		return NTM_ERR_SHORT;
	hlen = (size_t)(p[0] & 0x0f) * 4;
	if (hlen < NTM_IP4_HDR)
		return NTM_ERR_PROTO;
	if (hlen > n)
		return NTM_ERR_SHORT;
	total = rd16(p + 2);
	if (total < hlen)
		return NTM_ERR_PROTO;
	if (total > n)
		return NTM_ERR_SHORT;
	if (total < n)
		return NTM_ERR_TRAILING;
	if (ntm_csum_fold(ntm_csum_add(0, p, hlen)) != 0)
		return NTM_ERR_INVAL;
	frag = rd16(p + 6);
	if (frag & (IP4_MF | IP4_OFFMASK))
		return NTM_ERR_PROTO;
	ip->version = 4;
	ip->ident = rd16(p + 4);
	ip->ttl = p[8];
	ip->proto = p[9];
	memcpy(ip->src, p + 12, 4);
	memcpy(ip->dst, p + 16, 4);
	return parse_upper(ip, p + hlen, total - hlen);
}

static int
parse6(struct ntm_ip *ip, const uint8_t *p, size_t n)
{
	size_t off = NTM_IP6_HDR, total;
	uint8_t nh;

	if (n < NTM_IP6_HDR)
		return NTM_ERR_SHORT;
	total = NTM_IP6_HDR + (size_t)rd16(p + 4);
	if (total > n)
		return NTM_ERR_SHORT;
	if (total < n)
		return NTM_ERR_TRAILING;
	ip->version = 6;
	ip->ttl = p[7];
	memcpy(ip->src, p + 8, 16);
	memcpy(ip->dst, p + 24, 16);
	nh = p[6];
	for (int i = 0; ; i++) {
		size_t elen;

		if (nh == IP6_FRAGMENT)
			return NTM_ERR_PROTO;
		if (nh != IP6_HOPOPTS && nh != IP6_ROUTING && nh != IP6_DSTOPTS)
			break;
		if (i >= NTM_IP_EXT_MAX || (nh == IP6_HOPOPTS && i > 0))
			return NTM_ERR_PROTO;
		if (total - off < 8)
			return NTM_ERR_SHORT;
		elen = ((size_t)p[off + 1] + 1) * 8;
		if (total - off < elen)
			return NTM_ERR_SHORT;
		nh = p[off];
		off += elen;
	}
	ip->proto = nh;
	return parse_upper(ip, p + off, total - off);
}

int
ntm_ip_parse(struct ntm_ip *ip, const uint8_t *p, size_t n)
{
	memset(ip, 0, sizeof(*ip));
	if (p == NULL || n < 1)
		return NTM_ERR_SHORT;
	switch (p[0] >> 4) {
	case 4:
		return parse4(ip, p, n);
	case 6:
		return parse6(ip, p, n);
	default:
		return NTM_ERR_PROTO;
	}
}

int
ntm_ip_build(uint8_t *out, size_t cap, const struct ntm_ip *ip)
{
	size_t hlen, ulen, total;
	uint8_t *u;
	uint16_t c;

	if (ip->version == 4) {
		if (ip->proto != NTM_PROTO_UDP && ip->proto != NTM_PROTO_ICMP)
			return NTM_ERR_INVAL;
		hlen = NTM_IP4_HDR;
	} else if (ip->version == 6) {
		if (ip->proto != NTM_PROTO_UDP && ip->proto != NTM_PROTO_ICMP6)
			return NTM_ERR_INVAL;
		hlen = NTM_IP6_HDR;
	} else
		return NTM_ERR_INVAL;
	if (ip->len > 65535 || (ip->len && ip->payload == NULL))
		return NTM_ERR_INVAL;
	ulen = NTM_UDP_HDR + ip->len;		/* UDP and echo headers are both 8 */
	total = hlen + ulen;
	if ((ip->version == 4 ? total : ulen) > 65535)
		return NTM_ERR_INVAL;
	if (total > cap)
		return NTM_ERR_TOOBIG;

	memset(out, 0, hlen + NTM_UDP_HDR);
	if (ip->version == 4) {
		out[0] = 0x45;
		wr16(out + 2, (uint16_t)total);
		wr16(out + 4, ip->ident);
		wr16(out + 6, IP4_DF);
		out[8] = ip->ttl ? ip->ttl : 64;
		out[9] = ip->proto;
		memcpy(out + 12, ip->src, 4);
		memcpy(out + 16, ip->dst, 4);
		wr16(out + 10, ntm_csum_fold(ntm_csum_add(0, out, hlen)));
	} else {
		out[0] = 0x60;
		wr16(out + 4, (uint16_t)ulen);
		out[6] = ip->proto;
		out[7] = ip->ttl ? ip->ttl : 64;
		memcpy(out + 8, ip->src, 16);
		memcpy(out + 24, ip->dst, 16);
	}
	u = out + hlen;
	if (ip->len)
		memcpy(u + NTM_UDP_HDR, ip->payload, ip->len);
	if (ip->proto == NTM_PROTO_UDP) {
		wr16(u, ip->sport);
		wr16(u + 2, ip->dport);
		wr16(u + 4, (uint16_t)ulen);
		c = ntm_csum_fold(ntm_csum_add(pseudo_sum(ip->version, ip->src, ip->dst,
		    NTM_PROTO_UDP, ulen), u, ulen));
		wr16(u + 6, c == 0 ? 0xffff : c);
	} else {
		u[0] = ip->icmp_type;
		u[1] = ip->icmp_code;
		wr16(u + 4, ip->echo_id);
		wr16(u + 6, ip->echo_seq);
		c = ntm_csum_fold(ntm_csum_add(ip->version == 6 ?
		    pseudo_sum(6, ip->src, ip->dst, NTM_PROTO_ICMP6, ulen) : 0, u, ulen));
		wr16(u + 2, c);
	}
	return (int)total;
}

int
ntm_ip_echo_reply(uint8_t *out, size_t cap, const struct ntm_ip *req)
{
	struct ntm_ip r;

	if (!req->is_echo || req->icmp_code != 0 ||
	    (req->version == 4 && req->icmp_type != NTM_ICMP_ECHO_REQUEST) ||
	    (req->version == 6 && req->icmp_type != NTM_ICMP6_ECHO_REQUEST))
		return NTM_ERR_INVAL;
	r = *req;
	memcpy(r.src, req->dst, sizeof(r.src));
	memcpy(r.dst, req->src, sizeof(r.dst));
	r.ttl = 64;
	r.icmp_type = req->version == 4 ? NTM_ICMP_ECHO_REPLY : NTM_ICMP6_ECHO_REPLY;
	return ntm_ip_build(out, cap, &r);
}
