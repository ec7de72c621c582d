/*
 * probe.h - the reflection probe (docs/protocol.md §4.7): "from which
 * address and port did you see me?", answered by the DC's and the RS's UDP
 * sockets, so that a client can tell whether it is behind NAT and whether
 * its NAT maps endpoint-independently (the same reflexive address toward
 * both servers) or per destination (RFC 5780's mapping test).
 *
 * Unauthenticated by design (the RS holds no client keys, and the answer
 * tells the sender only what it could learn from any server), so it is
 * made harmless instead: the answer is never longer than the probe, and a
 * server answers each source address at a bounded rate. I/O free: the
 * daemons pass the datagram, its source and the time.
 */
#ifndef NTM_PROBE_H
#define NTM_PROBE_H

#include "ntm-rt.h"

/* ---- client ---------------------------------------------------------------- */

/* A PROBE carrying txid (random, chosen per attempt). Returns NTM_PROBE_LEN. */
int ntm_probe_make(uint8_t out[NTM_PROBE_LEN], const uint8_t txid[NTM_PROBE_TXID_LEN]);
/* Checks a PROBE_RESP (type, version, exact length, zero padding) for txid
 * and fills seen with the address:port the server saw. 0; NTM_ERR_PROTO /
 * _SHORT / _TOOBIG / _VERSION (not a PROBE_RESP, or malformed);
 * NTM_ERR_INVAL (the answer to another probe). */
int ntm_probe_resp_open(const uint8_t *p, size_t n, const uint8_t txid[NTM_PROBE_TXID_LEN],
    struct sockaddr_storage *seen, socklen_t *seenlen) NTM_WUR;

/* What the answers say about the path (RFC 5780 §4.3, mapping only). */
enum ntm_nat {
	NTM_NAT_UNKNOWN = 0,	/* no answer */
	NTM_NAT_NONE,		/* every server saw the local address:port */
	NTM_NAT_NATTED,		/* behind NAT; one server answered, mapping not compared */
	NTM_NAT_EI,		/* behind NAT, the same mapping toward both servers */
	NTM_NAT_PER_DEST,	/* behind NAT, the mapping varies by destination */
};
/* From the probing socket's local address:port (NULL: unknown) and what
 * two servers saw from that one socket (NULL: no answer). */
enum ntm_nat ntm_nat_classify(const struct sockaddr *local, const struct sockaddr *seen_a,
    const struct sockaddr *seen_b);
/* "unknown", "none", "natted", "endpoint-independent",
 * "varies-by-destination" (static). */
const char *ntm_nat_name(enum ntm_nat kind);

/* ---- server ---------------------------------------------------------------- */

/* Defaults the daemons use (probe_rate in ntm.conf(5)). */
#define NTM_PROBE_RATE		10	/* answers/s per source address */
#define NTM_PROBE_BURST_S	2	/* burst: this many seconds' worth */
#define NTM_PROBE_TOTAL_RATE	5000	/* answers/s in all */
#define NTM_PROBE_SLOTS		4096	/* source addresses tracked (ratelim.h) */

struct ntm_probe_srv;
struct ntm_probe_stats {
	uint64_t	answered;
	uint64_t	limited;	/* the source, or all sources, over the rate */
	uint64_t	malformed;	/* not a valid PROBE */
};
/* rate answers/s per source address (bursts of burst), total_rate in all;
 * key16 keys the table's hash (random). NULL on bad values or no memory. */
struct ntm_probe_srv *ntm_probe_srv_new(double rate, double burst, double total_rate,
    const uint8_t key16[16]);
void ntm_probe_srv_free(struct ntm_probe_srv *s);
/*
 * Answers the datagram p (n bytes, not yet validated) that came from from
 * at now_ms (monotonic): the PROBE_RESP's length (NTM_PROBE_RESP_LEN, never
 * more than n) written to out, or 0 when nothing is to be sent (counted:
 * malformed or over a rate). cap must be at least NTM_PROBE_RESP_LEN.
 */
size_t ntm_probe_srv_input(struct ntm_probe_srv *s, const uint8_t *p, size_t n,
    const struct sockaddr *from, socklen_t fromlen, int64_t now_ms, uint8_t *out, size_t cap);
void ntm_probe_srv_stats(const struct ntm_probe_srv *s, struct ntm_probe_stats *st);

#endif
