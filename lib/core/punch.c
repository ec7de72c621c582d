/* punch.c - the hole punching probe and its answer (punch.h). */
#include <string.h>

#include <sodium.h>

#include "ntm-core.h"
#include "punch.h"

#define OFF_TID		NTM_HDR_LEN
#define OFF_KIND	(OFF_TID + NTM_TUNNEL_ID_LEN)
#define OFF_ROLE	(OFF_KIND + 1)
#define OFF_ZERO	(OFF_ROLE + 1)			/* 2 zero bytes */
#define OFF_TXID	(OFF_ZERO + 2)
#define OFF_MAC		(OFF_TXID + NTM_PUNCH_TXID_LEN)

_Static_assert(OFF_MAC + NTM_MAC_LEN == NTM_PUNCH_LEN, "the PUNCH layout");

#define PUNCH_CTX	"ntm punch"

void
ntm_punch_key(uint8_t out[NTM_KEY_LEN], const uint8_t k[NTM_KEY_LEN])
{
	crypto_generichash(out, NTM_KEY_LEN, (const uint8_t *)PUNCH_CTX,
	    sizeof(PUNCH_CTX) - 1, k, NTM_KEY_LEN);
}

static void
mac(uint8_t out[NTM_MAC_LEN], const uint8_t *p, const uint8_t key[NTM_KEY_LEN])
{
	crypto_generichash(out, NTM_MAC_LEN, p, OFF_MAC, key, NTM_KEY_LEN);
}

int
ntm_punch_make(uint8_t out[NTM_PUNCH_LEN], const uint8_t tid[NTM_TUNNEL_ID_LEN], int kind,
    int initiator, const uint8_t txid[NTM_PUNCH_TXID_LEN], const uint8_t key[NTM_KEY_LEN])
{
	memset(out, 0, NTM_PUNCH_LEN);
	ntm_msg_header(out, NTM_MSG_PUNCH);
	memcpy(out + OFF_TID, tid, NTM_TUNNEL_ID_LEN);
	out[OFF_KIND] = kind == NTM_PUNCH_ANSWER ? NTM_PUNCH_ANSWER : NTM_PUNCH_PROBE;
	out[OFF_ROLE] = initiator ? 1 : 0;
	memcpy(out + OFF_TXID, txid, NTM_PUNCH_TXID_LEN);
	mac(out + OFF_MAC, out, key);
	return NTM_PUNCH_LEN;
}

const uint8_t *
ntm_punch_tunnel_id(const uint8_t *p, size_t n)
{
	return p && n == NTM_PUNCH_LEN ? p + OFF_TID : NULL;
}

int
ntm_punch_open(const uint8_t *p, size_t n, const uint8_t key[NTM_KEY_LEN], int *kind,
    int *initiator, uint8_t txid[NTM_PUNCH_TXID_LEN])
{
	uint8_t m[NTM_MAC_LEN];
	int t;

	if ((t = ntm_msg_validate(p, n)) < 0)
		return t;
	if (t != NTM_MSG_PUNCH || p[OFF_KIND] > NTM_PUNCH_ANSWER || p[OFF_ROLE] > 1 ||
	    p[OFF_ZERO] != 0 || p[OFF_ZERO + 1] != 0)
		return NTM_ERR_PROTO;
	mac(m, p, key);
	if (ntm_memcmp(m, p + OFF_MAC, NTM_MAC_LEN) != 0)
		return NTM_ERR_CRYPTO;
	*kind = p[OFF_KIND];
	*initiator = p[OFF_ROLE];
	memcpy(txid, p + OFF_TXID, NTM_PUNCH_TXID_LEN);
	return 0;
}
