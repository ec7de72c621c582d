/*
 * ntm-rt.h - the real-time path of libntm: the UDP wire format (declared
 * once here; byte layout in docs/protocol.md §4), and the I/O-free cores
 * built on it. No function here does I/O or reads a clock: callers pass
 * datagrams and the current time in milliseconds (any monotonic origin) and
 * get back bytes to send and the next deadline.
 */
#ifndef NTM_RT_H
#define NTM_RT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ntm-core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- wire format (lib/core/wire.c) ------------------------------------------- */

/* Bump when any UDP message changes. */
#define NTM_UDP_VERSION		2	/* 2: HS_INIT / HS_RESP carry the device-key proofs */

/* Every datagram starts with this 4-byte header:
 *   u8 type, u8 version (NTM_UDP_VERSION), u16 zero (reserved). */
#define NTM_HDR_LEN		4

enum ntm_msg {
	NTM_MSG_REG_REQ		= 1,	/* client -> DC, session-key sealed */
	NTM_MSG_REG_RESP	= 2,	/* DC -> client, session-key sealed */
	NTM_MSG_NUDGE		= 3,	/* DC -> client, session-key sealed */
	NTM_MSG_HS_INIT		= 4,	/* peer -> peer (maybe via RS) */
	NTM_MSG_HS_RESP		= 5,	/* peer -> peer (maybe via RS) */
	NTM_MSG_DATA		= 6,	/* peer -> peer (maybe via RS) */
	NTM_MSG_RELAY_BIND	= 7,	/* client -> RS */
	NTM_MSG_RELAY_ACK	= 8,	/* RS -> client */
	NTM_MSG_MOVED		= 9,	/* DC -> client, session-key sealed */
	NTM_MSG_RELAY_COOKIE	= 10,	/* RS -> client, under load (relay.h) */
	NTM_MSG_PROBE		= 11,	/* anyone -> DC or RS, unauthenticated (probe.h) */
	NTM_MSG_PROBE_RESP	= 12,	/* DC or RS -> the prober */
	NTM_MSG_PUNCH		= 13,	/* peer -> peer's candidate, K-keyed MAC (punch.h) */
};

#define NTM_SID_LEN		16	/* client-DC session id */
#define NTM_TUNNEL_ID_LEN	16
#define NTM_WADDR_LEN		20	/* wire address, below */
#define NTM_REG_ADDRS		4	/* local addresses in a registration */
#define NTM_TAG_LEN		16	/* Poly1305 */
#define NTM_MAC_LEN		16	/* keyed BLAKE2b-128 */

/* Registration channel (lib/core/reg.c). Payload sizes before sealing. */
#define NTM_REG_REQ_PAYLOAD	(4 + NTM_REG_ADDRS * NTM_WADDR_LEN)	/* 84 */
#define NTM_REG_RESP_PAYLOAD	(NTM_WADDR_LEN + 4 + 4 + 8)		/* 36 */
#define NTM_NUDGE_PAYLOAD	8
#define NTM_MOVED_PAYLOAD	(NTM_TUNNEL_ID_LEN + NTM_WADDR_LEN)	/* 36 */
#define NTM_SEALED_HDR		(NTM_HDR_LEN + NTM_SID_LEN + 8)		/* hdr sid ctr */
#define NTM_REG_REQ_LEN		(NTM_SEALED_HDR + NTM_REG_REQ_PAYLOAD + NTM_TAG_LEN)	/* 128 */
#define NTM_REG_RESP_LEN	(NTM_SEALED_HDR + NTM_REG_RESP_PAYLOAD + NTM_TAG_LEN)	/* 80 */
#define NTM_NUDGE_LEN		(NTM_SEALED_HDR + NTM_NUDGE_PAYLOAD + NTM_TAG_LEN)	/* 52 */
#define NTM_MOVED_LEN		(NTM_SEALED_HDR + NTM_MOVED_PAYLOAD + NTM_TAG_LEN)	/* 80 */

/* Tunnel (lib/core/tunnel.c). */
#define NTM_HS_INIT_LEN		(NTM_HDR_LEN + 4 + NTM_TUNNEL_ID_LEN + 32 + 8 + NTM_TAG_LEN + \
				 NTM_MAC_LEN)						/* 96 */
#define NTM_HS_RESP_LEN		(NTM_HDR_LEN + 4 + 4 + 32 + NTM_TAG_LEN + NTM_MAC_LEN)	/* 76 */
#define NTM_DATA_HDR_LEN	(NTM_HDR_LEN + 4 + 8)						/* 16 */
#define NTM_DATA_MIN_LEN	(NTM_DATA_HDR_LEN + NTM_TAG_LEN)				/* 32 */
#define NTM_INNER_MTU		1400	/* largest inner IP packet carried */
#define NTM_DATA_MAX_LEN	(NTM_DATA_MIN_LEN + NTM_INNER_MTU)

/* Relay (lib/core/relay.c). */
#define NTM_TICKET_MAX		640
#define NTM_RELAY_BIND_MIN	(NTM_HDR_LEN + 4 + 8 + 2 + 1 + NTM_MAC_LEN)
#define NTM_RELAY_BIND_MAX	(NTM_HDR_LEN + 4 + 8 + 2 + NTM_TICKET_MAX + NTM_MAC_LEN)
#define NTM_RELAY_ACK_LEN	(NTM_HDR_LEN + 4 + 8 + NTM_MAC_LEN)				/* 32 */
#define NTM_RELAY_COOKIE	16	/* the cookie an RS under load hands out */
#define NTM_RELAY_COOKIE_NONCE	24
/* RELAY_COOKIE: hdr, tunnel_id, nonce, sealed cookie (checked by relay.c) */
#define NTM_RELAY_COOKIE_LEN	(NTM_HDR_LEN + NTM_TUNNEL_ID_LEN + NTM_RELAY_COOKIE_NONCE + \
				 NTM_RELAY_COOKIE + NTM_TAG_LEN)				/* 76 */

/* Reflection probe (lib/core/probe.c): a transaction id and padding; the
 * answer is exactly as long, so a server never sends more than it got. */
#define NTM_PROBE_TXID_LEN	16
#define NTM_PROBE_LEN		64	/* hdr, txid, 44 zero */
#define NTM_PROBE_RESP_LEN	NTM_PROBE_LEN	/* hdr, txid, wire address, 24 zero */

/* Hole punching probe (lib/core/punch.c): tunnel id, kind, sender's role,
 * transaction id, MAC keyed from the tunnel's temporal key. */
#define NTM_PUNCH_TXID_LEN	8
#define NTM_PUNCH_LEN		(NTM_HDR_LEN + NTM_TUNNEL_ID_LEN + 4 + NTM_PUNCH_TXID_LEN + \
				 NTM_MAC_LEN)						/* 48 */

/* Largest datagram any ntm peer sends or accepts. */
#define NTM_UDP_MAX		(NTM_DATA_MAX_LEN > NTM_RELAY_BIND_MAX ? NTM_DATA_MAX_LEN : NTM_RELAY_BIND_MAX)

/*
 * Checks the header and that the length is exactly right for the type (or
 * within the type's bounds for DATA and RELAY_BIND) before any crypto runs.
 * Returns the type, or NTM_ERR_PROTO (unknown type, bad reserved bits),
 * NTM_ERR_VERSION, NTM_ERR_SHORT / NTM_ERR_TOOBIG (length wrong for type).
 */
int  ntm_msg_validate(const uint8_t *p, size_t n);
void ntm_msg_header(uint8_t out[NTM_HDR_LEN], enum ntm_msg type);

/*
 * Wire address, 20 bytes: u8 family (0 none, 4 IPv4, 6 IPv6), u8 zero,
 * u16 port, 16 bytes address (IPv4 in the first 4, rest zero).
 * An IPv4-mapped IPv6 sockaddr is written as IPv4.
 */
int  ntm_waddr_put(uint8_t out[NTM_WADDR_LEN], const struct sockaddr *sa);
/* 0 and fills ss (AF_INET or AF_INET6); 1 for an empty slot; <0 if malformed. */
int  ntm_waddr_get(struct sockaddr_storage *ss, socklen_t *len, const uint8_t in[NTM_WADDR_LEN]);
/* "1.2.3.4:5" or "[fd00::1]:5" (IPv4-mapped shown as IPv4). */
const char *ntm_sa_str(const struct sockaddr *sa, char *buf, size_t cap);
/* Parses "1.2.3.4:5" / "[v6]:5" into ss. */
int  ntm_sa_parse(struct sockaddr_storage *ss, socklen_t *len, const char *s) NTM_WUR;
/* Equal family, address and port (IPv4-mapped IPv6 equals IPv4). */
int  ntm_sa_equal(const struct sockaddr *a, const struct sockaddr *b);
/* Same address, port ignored. */
int  ntm_sa_same_host(const struct sockaddr *a, const struct sockaddr *b);
/* Folds IPv4-mapped IPv6 into AF_INET in place. */
void ntm_sa_unmap(struct sockaddr_storage *ss, socklen_t *len);
/* AF_INET (also for IPv4-mapped IPv6), AF_INET6, or 0 for anything else. */
int  ntm_sa_family(const struct sockaddr_storage *ss);

/* ---- anti-replay window (lib/core/wire.c) ------------------------------------ */

/* Sliding window over 64-bit counters (RFC 6479 style, 2048 counters). */
#define NTM_WINDOW_BITS		2048
struct ntm_window {
	uint64_t	top;		/* highest counter accepted + 1; 0 = none yet */
	uint64_t	bits[NTM_WINDOW_BITS / 64];
};
void ntm_window_init(struct ntm_window *w);
/* 0 if ctr may be accepted (not seen, not too old). Does not record it:
 * call ntm_window_update() only after the packet authenticated. */
int  ntm_window_check(const struct ntm_window *w, uint64_t ctr);
void ntm_window_update(struct ntm_window *w, uint64_t ctr);

#ifdef __cplusplus
}
#endif
#endif
