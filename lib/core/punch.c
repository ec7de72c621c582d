/* punch.c - the hole punching probe and its answer (punch.h). */
#include <string.h>

#include <sodium.h>

#include "ntm-core.h"
#include "probe.h"
#include "punch.h"
#include "tunnel.h"

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

/* ---- CANDIDATES ------------------------------------------------------------ */

static int
nat_known(int nat)
{
	return nat == NTM_NAT_NONE || nat == NTM_NAT_NATTED || nat == NTM_NAT_EI ||
	    nat == NTM_NAT_PER_DEST;
}

int
ntm_punch_cands_make(uint8_t *out, size_t cap, int nat, uint32_t gen,
    const struct sockaddr_storage *c, int n)
{
	size_t len;

	if (n < 0 || n > NTM_PUNCH_CANDS_MAX || !nat_known(nat) ||
	    (nat == NTM_NAT_EI) != (n > 0))
		return NTM_ERR_INVAL;
	len = NTM_PUNCH_CANDS_LEN((size_t)n);
	if (cap < len)
		return NTM_ERR_NOSPACE;
	memset(out, 0, len);
	out[0] = NTM_TUN_CTL_CANDS;
	out[1] = (uint8_t)nat;
	out[2] = (uint8_t)n;
	for (int i = 0; i < 4; i++)
		out[4 + i] = (uint8_t)(gen >> (24 - 8 * i));
	for (int i = 0; i < n; i++)
		if (ntm_waddr_put(out + NTM_PUNCH_CANDS_LEN((size_t)i),
		    (const struct sockaddr *)&c[i]) < 0)
			return NTM_ERR_INVAL;
	return (int)len;
}

int
ntm_punch_cands_open(const uint8_t *p, size_t len, int *nat, uint32_t *gen,
    struct sockaddr_storage c[NTM_PUNCH_CANDS_MAX], int *n)
{
	socklen_t sl;
	int k;

	if (p == NULL || len < NTM_PUNCH_CANDS_HDR)
		return NTM_ERR_SHORT;
	if (p[0] != NTM_TUN_CTL_CANDS || p[3] != 0 || !nat_known(p[1]) ||
	    p[2] > NTM_PUNCH_CANDS_MAX || (p[1] == NTM_NAT_EI) != (p[2] > 0))
		return NTM_ERR_PROTO;
	k = p[2];
	if (len < NTM_PUNCH_CANDS_LEN((size_t)k))
		return NTM_ERR_SHORT;
	if (len > NTM_PUNCH_CANDS_LEN((size_t)k))
		return NTM_ERR_TOOBIG;
	for (int i = 0; i < k; i++) {
		if (ntm_waddr_get(&c[i], &sl, p + NTM_PUNCH_CANDS_LEN((size_t)i)) != 0)
			return NTM_ERR_PROTO;	/* empty or malformed */
		ntm_sa_unmap(&c[i], &sl);
	}
	*nat = p[1];
	*gen = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
	*n = k;
	return 0;
}

/* ---- SPRAY ----------------------------------------------------------------- */

int
ntm_punch_spray_make(uint8_t out[NTM_PUNCH_SPRAY_LEN], int mappings, uint32_t attempt)
{
	if (mappings < 1 || mappings > NTM_PUNCH_SPRAY_MAPPINGS_MAX || attempt == 0)
		return NTM_ERR_INVAL;
	out[0] = NTM_TUN_CTL_SPRAY;
	out[1] = 0;
	out[2] = (uint8_t)(mappings >> 8);
	out[3] = (uint8_t)mappings;
	for (int i = 0; i < 4; i++)
		out[4 + i] = (uint8_t)(attempt >> (24 - 8 * i));
	return NTM_PUNCH_SPRAY_LEN;
}

int
ntm_punch_spray_open(const uint8_t *p, size_t len, int *mappings, uint32_t *attempt)
{
	int m;
	uint32_t a;

	if (p == NULL || len < NTM_PUNCH_SPRAY_LEN)
		return NTM_ERR_SHORT;
	if (len > NTM_PUNCH_SPRAY_LEN)
		return NTM_ERR_TOOBIG;
	m = p[2] << 8 | p[3];
	a = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
	if (p[0] != NTM_TUN_CTL_SPRAY || p[1] != 0 || m < 1 ||
	    m > NTM_PUNCH_SPRAY_MAPPINGS_MAX || a == 0)
		return NTM_ERR_PROTO;
	*mappings = m;
	*attempt = a;
	return 0;
}
