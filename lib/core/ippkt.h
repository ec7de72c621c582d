/*
 * ippkt.h - the inner packets carried in a tunnel: IPv4 and IPv6 headers
 * with UDP, ICMP echo or ICMPv6 echo, built and parsed by hand with their
 * checksums (pseudo-headers included). I/O free. Parsing is strict: the
 * version, header and total lengths must agree with the bytes given,
 * fragments are refused, IPv4 options and the IPv6 hop-by-hop, routing and
 * destination-options headers are skipped.
 */
#ifndef NTM_IPPKT_H
#define NTM_IPPKT_H

#include <stddef.h>
#include <stdint.h>

#include "ntm-core.h"

#define NTM_IP4_HDR		20
#define NTM_IP6_HDR		40
#define NTM_UDP_HDR		8
#define NTM_ICMP_HDR		8	/* echo: type code csum id seq */
#define NTM_IP_EXT_MAX		4	/* IPv6 extension headers skipped at most */

#define NTM_PROTO_ICMP		1
#define NTM_PROTO_TCP		6
#define NTM_PROTO_UDP		17
#define NTM_PROTO_ICMP6		58

#define NTM_ICMP_ECHO_REPLY	0
#define NTM_ICMP_ECHO_REQUEST	8
#define NTM_ICMP6_ECHO_REQUEST	128
#define NTM_ICMP6_ECHO_REPLY	129

/* One packet, parsed or to build. Addresses are raw (4 or 16 bytes used). */
struct ntm_ip {
	int		 version;	/* 4 or 6 */
	uint8_t		 src[16], dst[16];
	uint8_t		 proto;		/* upper-layer protocol (after extensions) */
	uint8_t		 ttl;		/* TTL / hop limit; 0 when building: 64 */
	uint16_t	 ident;		/* IPv4 identification (build: as given) */
	/* UDP */
	uint16_t	 sport, dport;
	/* ICMP / ICMPv6 */
	uint8_t		 icmp_type, icmp_code;
	uint16_t	 echo_id, echo_seq;	/* echo request/reply only */
	int		 is_echo;		/* parse: type is an echo request/reply */
	/* UDP payload, echo data, or (other protocols) the upper-layer bytes.
	 * Borrowed: points into the parsed packet / the caller's data. */
	const uint8_t	*payload;
	size_t		 len;
};

/*
 * Parses one packet of exactly n bytes. Returns 0 with ip filled (for
 * protocols other than UDP/ICMP/ICMPv6 only the IP part and payload),
 * NTM_ERR_SHORT (truncated), NTM_ERR_TRAILING (bytes after the IP total
 * length), NTM_ERR_PROTO (bad version, header length, fragment, too many
 * extension headers, ICMP on the wrong family, UDP length mismatch) or
 * NTM_ERR_INVAL (a checksum is wrong; IPv4 UDP checksum 0 means none).
 */
int ntm_ip_parse(struct ntm_ip *ip, const uint8_t *p, size_t n) NTM_WUR;

/*
 * Builds ip (version, src, dst, proto UDP / ICMP / ICMPv6, ports or
 * icmp_type/code/echo_id/echo_seq, payload) into out with every checksum;
 * IPv4 gets DF and no options, IPv6 no extension headers. Returns the
 * length, NTM_ERR_TOOBIG if cap is short, NTM_ERR_INVAL for a bad version,
 * protocol or a payload that cannot fit in an IP packet.
 */
int ntm_ip_build(uint8_t *out, size_t cap, const struct ntm_ip *ip) NTM_WUR;

/* The echo reply to a parsed echo request (addresses swapped, same id, seq
 * and data). Returns the length or an error as ntm_ip_build(). */
int ntm_ip_echo_reply(uint8_t *out, size_t cap, const struct ntm_ip *req) NTM_WUR;

/* Internet checksum (RFC 1071): add bytes to a running sum (every chunk but
 * the last must have an even length), then fold and complement. */
uint32_t ntm_csum_add(uint32_t sum, const void *p, size_t n);
uint16_t ntm_csum_fold(uint32_t sum);

#endif
