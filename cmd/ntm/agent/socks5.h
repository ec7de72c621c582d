/*
 * socks5.h - the SOCKS5 messages the agent's proxy reads (RFC 1928;
 * socks.c): pure functions on bytes, no state, so that the fuzzer
 * (fuzz/fuzz_socks.c) reaches them as the proxy does.
 */
#ifndef NTM_AGENT_SOCKS5_H
#define NTM_AGENT_SOCKS5_H

#include <stddef.h>
#include <stdint.h>

#define SOCKS_CONNECT	1
#define SOCKS_ASSOCIATE	3

/* ATYP ADDR PORT: addr points into the message, alen bytes. */
struct socks_dst {
	uint8_t		 atyp;		/* 1 IPv4, 3 domain name, 4 IPv6 */
	const uint8_t	*addr;
	size_t		 alen;
	uint16_t	 port;
};

/*
 * The greeting at p (n bytes): VER NMETHODS METHODS. Its length, 0 while
 * more bytes are needed, -1 if it is not SOCKS5. *none: method 0 (no
 * authentication) is offered.
 */
long socks_greeting(const uint8_t *p, size_t n, int *none);
/* ATYP ADDR PORT at p: its length, 0 while more bytes are needed, -1 for an
 * unknown address type. */
long socks_dst(const uint8_t *p, size_t n, struct socks_dst *d);
/*
 * A request: VER CMD RSV DST. Its length, 0 while more bytes are needed,
 * SOCKS_EHDR (reply 1) if VER or RSV is wrong, SOCKS_EATYP (reply 8) for an
 * unknown address type.
 */
#define SOCKS_EHDR	(-1)
#define SOCKS_EATYP	(-2)
long socks_request(const uint8_t *p, size_t n, uint8_t *cmd, struct socks_dst *d);
/* A UDP ASSOCIATE datagram's header (RSV RSV FRAG DST, no fragments): its
 * length (the data follows), -1 if malformed or cut short. */
long socks_udp_header(const uint8_t *p, size_t n, struct socks_dst *d);
/* A domain-name destination as a peer's FQDN in name (nlen bytes): 0, or
 * -1 if it is not a valid DNS name with at least one dot (or holds a NUL). */
int  socks_fqdn(const struct socks_dst *d, char *name, size_t nlen);

#endif
