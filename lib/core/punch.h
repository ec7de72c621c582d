/*
 * punch.h - the hole punching probe (docs/protocol.md §4.8): two ends of a
 * relayed tunnel behind NATs send it to each other's candidate addresses;
 * an answer that comes back from the candidate it was sent to shows a
 * direct path both ways. The MAC is keyed from the tunnel's temporal key
 * K, so only the two ends (and the DC that made K) can make one, and a
 * third party cannot offer a path. I/O free.
 */
#ifndef NTM_PUNCH_H
#define NTM_PUNCH_H

#include "ntm-rt.h"

#define NTM_PUNCH_PROBE		0	/* kind: "do you hear me?" */
#define NTM_PUNCH_ANSWER	1	/* kind: "yes", the probe's txid echoed */

/* The punch key of a tunnel: BLAKE2b-256 keyed with K over "ntm punch". */
void ntm_punch_key(uint8_t out[NTM_KEY_LEN], const uint8_t k[NTM_KEY_LEN]);
/* A PUNCH of kind from the end of role (1 initiator, 0 responder).
 * Returns NTM_PUNCH_LEN. */
int  ntm_punch_make(uint8_t out[NTM_PUNCH_LEN], const uint8_t tid[NTM_TUNNEL_ID_LEN],
    int kind, int initiator, const uint8_t txid[NTM_PUNCH_TXID_LEN],
    const uint8_t key[NTM_KEY_LEN]);
/* The tunnel_id of a PUNCH (p validated, n = NTM_PUNCH_LEN), for lookup. */
const uint8_t *ntm_punch_tunnel_id(const uint8_t *p, size_t n);
/* Checks a PUNCH (type, version, length, zero bytes, known kind, the MAC
 * with key) and fills kind, the sender's role and txid. 0; NTM_ERR_PROTO /
 * _SHORT / _TOOBIG / _VERSION (malformed); NTM_ERR_CRYPTO (the MAC). */
int  ntm_punch_open(const uint8_t *p, size_t n, const uint8_t key[NTM_KEY_LEN], int *kind,
    int *initiator, uint8_t txid[NTM_PUNCH_TXID_LEN]) NTM_WUR;

/*
 * CANDIDATES (docs/protocol.md §4.8, "Punching again after a move"): a
 * tunnel control message (tunnel.h), so sealed in a DATA of the tunnel's
 * session: only the peer device can make one, not a DC or the RS that
 * carries it. The end that moved says its NAT kind now (enum ntm_nat,
 * probe.h) and, behind an endpoint-independent NAT, where it can be
 * punched: its reflexive address, then its local ones. The generation
 * grows with each move, so the copies sent again count once.
 *
 *   u8 kind (NTM_TUN_CTL_CANDS), u8 nat, u8 count, u8 zero,
 *   u32 generation, count wire addresses (§4.1, none empty)
 */
#define NTM_PUNCH_CANDS_MAX	(1 + NTM_REG_ADDRS)
#define NTM_PUNCH_CANDS_HDR	8
#define NTM_PUNCH_CANDS_LEN(n)	(NTM_PUNCH_CANDS_HDR + (n) * NTM_WADDR_LEN)

/* CANDIDATES into out (cap bytes): nat, generation gen and the n
 * candidates c (n > 0 only with NTM_NAT_EI). Its length, or NTM_ERR_INVAL
 * (n, nat or an address) / NTM_ERR_NOSPACE. */
int  ntm_punch_cands_make(uint8_t *out, size_t cap, int nat, uint32_t gen,
    const struct sockaddr_storage *c, int n) NTM_WUR;
/* Checks a CANDIDATES (kind, exact length for its count, zero byte, a
 * known NAT kind, candidates only and at least one with NTM_NAT_EI, no
 * empty or malformed address) and fills nat, gen, c (IPv4-mapped folded
 * to IPv4) and *n. 0, or NTM_ERR_PROTO / _SHORT / _TOOBIG. */
int  ntm_punch_cands_open(const uint8_t *p, size_t len, int *nat, uint32_t *gen,
    struct sockaddr_storage c[NTM_PUNCH_CANDS_MAX], int *n) NTM_WUR;

/*
 * SPRAY (docs/protocol.md §4.8, "one end maps per destination"): a tunnel
 * control message too, sealed in a DATA of the session, from the end
 * whose NAT maps per destination (the hard end) to the other (the easy
 * end): "my extra sockets hold that many mappings towards your reflexive
 * address: probe the ports of my reflexive IP". The attempt grows with
 * each punching attempt, so the copies count once.
 *
 *   u8 kind (NTM_TUN_CTL_SPRAY), u8 zero, u16 mappings (1 .. 1024),
 *   u32 attempt (not 0)
 */
#define NTM_PUNCH_SPRAY_LEN		8
#define NTM_PUNCH_SPRAY_MAPPINGS_MAX	1024

/* A SPRAY into out: NTM_PUNCH_SPRAY_LEN, or NTM_ERR_INVAL (mappings or
 * attempt out of range). */
int  ntm_punch_spray_make(uint8_t out[NTM_PUNCH_SPRAY_LEN], int mappings, uint32_t attempt);
/* Checks a SPRAY (kind, exact length, zero byte, mappings and attempt in
 * range) and fills them. 0, or NTM_ERR_PROTO / _SHORT / _TOOBIG. */
int  ntm_punch_spray_open(const uint8_t *p, size_t len, int *mappings,
    uint32_t *attempt) NTM_WUR;

#endif
