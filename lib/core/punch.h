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

#endif
