/*
 * relay.h - relay tickets and binds (docs/protocol.md §4.4). The DC makes
 * tickets; clients wrap them in RELAY_BIND; the RS checks them. I/O free.
 */
#ifndef NTM_RELAY_H
#define NTM_RELAY_H

#include "ntm-rt.h"

/* DC: make a ticket for rs_name (whose Ed25519 public key is rs_pk) that
 * carries relay_key sealed to the RS. Returns the length written. */
int ntm_ticket_make(uint8_t *out, size_t cap,
    const uint8_t tunnel_id[NTM_TUNNEL_ID_LEN], int64_t expires,
    const char *rs_name, const uint8_t rs_pk[NTM_SIGN_PK],
    const uint8_t relay_key[NTM_KEY_LEN],
    const struct ntm_cert *dc_cert, const uint8_t dc_sk[NTM_SIGN_SK]) NTM_WUR;

struct ntm_ticket_info {
	uint8_t		tunnel_id[NTM_TUNNEL_ID_LEN];
	int64_t		expires;
	char		dc[NTM_NAME_MAX + 1];		/* the issuing DC */
	uint8_t		relay_key[NTM_KEY_LEN];
};
/* RS: decode strictly and verify (DC cert by as_pk with role dc, signature,
 * expiry against now (unix s), rs name == my_name), then open the relay key
 * with the RS's own Ed25519 secret key. 0 or NTM_ERR_PROTO / NTM_ERR_CRYPTO
 * / NTM_ERR_EXPIRED / NTM_ERR_INVAL (other RS). */
int ntm_ticket_open(struct ntm_ticket_info *out, const uint8_t *p, size_t n,
    const uint8_t as_pk[NTM_SIGN_PK], const char *my_name,
    const uint8_t my_sk[NTM_SIGN_SK], int64_t now) NTM_WUR;

/* Client: RELAY_BIND for side (0 initiator, 1 responder). Returns length. */
int ntm_relay_bind_make(uint8_t *out, size_t cap, int side, uint64_t counter,
    const uint8_t *ticket, size_t tlen, const uint8_t relay_key[NTM_KEY_LEN]) NTM_WUR;
/* RS: the parts of a validated RELAY_BIND (ticket points into p); the MAC
 * is checked separately once the ticket gave the relay key. */
struct ntm_relay_bind {
	int		 side;
	uint64_t	 counter;
	const uint8_t	*ticket;
	size_t		 tlen;
};
int ntm_relay_bind_parse(struct ntm_relay_bind *b, const uint8_t *p, size_t n) NTM_WUR;
int ntm_relay_bind_verify(const uint8_t *p, size_t n, const uint8_t relay_key[NTM_KEY_LEN]) NTM_WUR;

/* RS -> client. */
int ntm_relay_ack_make(uint8_t out[NTM_RELAY_ACK_LEN], int side, int peer_bound,
    uint64_t counter, const uint8_t relay_key[NTM_KEY_LEN]);
int ntm_relay_ack_open(const uint8_t *p, size_t n, const uint8_t relay_key[NTM_KEY_LEN],
    int *side, int *peer_bound, uint64_t *counter) NTM_WUR;

#endif
