/*
 * probe.h - the reflection probe (docs/protocol.md §4.7): "from which
 * address and port did you see me?", answered by the DC's and the RS's UDP
 * sockets, so that a client can tell whether it is behind NAT and whether
 * its NAT maps endpoint-independently (the same reflexive address toward
 * both servers) or per destination (RFC 5780's mapping test), and, with
 * the RS's answer from its other port, how it filters (the filtering test).
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

/*
 * The filtering test (RFC 5780 §4.4, port change only): a PROBE's first
 * padding byte carries flags. A server from before them counts such a
 * probe as malformed and answers nothing; one that knows them answers
 * with its other port (the answer's flags and other port, below).
 */
#define NTM_PROBE_F_CHANGE	0x01	/* answer from your other port */
#define NTM_PROBE_F_ASK		0x02	/* answer from this port, naming the other */
/* With CHANGE: answer from your other address (not the other port); with
 * ASK: name your other address as well. Never alone. A server from before
 * it answers nothing to a probe with it (malformed). */
#define NTM_PROBE_F_ADDR	0x04
#define NTM_PROBE_F_ALL		(NTM_PROBE_F_CHANGE | NTM_PROBE_F_ASK | NTM_PROBE_F_ADDR)
/* An answer's flags: it was sent from the server's other port, or from
 * its other address. */
#define NTM_PROBE_R_CHANGED	0x01
#define NTM_PROBE_R_ADDR	0x02
/* A PROBE with flags (NTM_PROBE_F_*). Returns NTM_PROBE_LEN. */
int ntm_probe_make_flags(uint8_t out[NTM_PROBE_LEN], const uint8_t txid[NTM_PROBE_TXID_LEN],
    uint8_t flags);
/* Checks a PROBE_RESP (type, version, exact length, zero padding) for txid
 * and fills seen with the address:port the server saw. 0; NTM_ERR_PROTO /
 * _SHORT / _TOOBIG / _VERSION (not a PROBE_RESP, or malformed);
 * NTM_ERR_INVAL (the answer to another probe). */
int ntm_probe_resp_open(const uint8_t *p, size_t n, const uint8_t txid[NTM_PROBE_TXID_LEN],
    struct sockaddr_storage *seen, socklen_t *seenlen) NTM_WUR;
/* The same for the answer to a probe with flags: also its flags
 * (NTM_PROBE_R_*) and the server's other port (host order, 0: none). */
int ntm_probe_resp_open_flags(const uint8_t *p, size_t n, const uint8_t txid[NTM_PROBE_TXID_LEN],
    struct sockaddr_storage *seen, socklen_t *seenlen, uint8_t *flags,
    uint16_t *other_port) NTM_WUR;

/* The same for the answer to a probe with NTM_PROBE_F_ADDR: also the
 * server's other address:port (other_addr's family 0: it has none). */
int ntm_probe_resp_open_addr(const uint8_t *p, size_t n, const uint8_t txid[NTM_PROBE_TXID_LEN],
    struct sockaddr_storage *seen, socklen_t *seenlen, uint8_t *flags,
    uint16_t *other_port, struct sockaddr_storage *other_addr) NTM_WUR;

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

/* What the filtering test says (RFC 5780 §4.4): the answer from the
 * server's other port, and from its other address when it has one (which
 * tells endpoint-independent filtering from address-dependent). The
 * values go on the wire (REG_REQ, docs/protocol.md §4.2): never renumber. */
enum ntm_filter {
	NTM_FILTER_UNKNOWN = 0,	/* no NAT verdict, or nothing to compare */
	NTM_FILTER_NONE,	/* no NAT, and nothing the test sent was filtered */
	NTM_FILTER_ADDR,	/* behind NAT, the other port's answer came in; no
				 * other address to tell EI from ADDR_DEP */
	NTM_FILTER_PORT,	/* the other port's answer never came in */
	NTM_FILTER_EI,		/* behind NAT, the other address's answer came in */
	NTM_FILTER_ADDR_DEP,	/* the other port's answer came in, the other
				 * address's never did */
};
#define NTM_FILTER_MAX	NTM_FILTER_ADDR_DEP
/* From the NAT kind, whether the server named an other port, and whether
 * its answer from there came in (the port test only). */
enum ntm_filter ntm_filter_classify(enum ntm_nat nat, int other_known, int other_came);
/* The same with the address test: whether the server named an other
 * address, and whether its answer from there came in. */
enum ntm_filter ntm_filter_classify2(enum ntm_nat nat, int port_known, int port_came,
    int addr_known, int addr_came);
/* "unknown", "none", "address-dependent-or-less", "port-dependent",
 * "endpoint-independent", "address-dependent" (static). */
const char *ntm_filter_name(enum ntm_filter f);
/* The value ntm_filter_name gives, or -1. */
int ntm_filter_parse(const char *name);

/*
 * The client side of the filtering test, I/O free: each round to one
 * server, a CHANGE probe (until the other port's answer came in), an
 * ASK|ADDR probe (until answered), a CHANGE|ADDR probe (until the other
 * address's answer came in) and, from the second round while no ASK was
 * answered (a server from before ADDR), a plain ASK; until the answers are
 * in or the server said it has no other port and no other address. The caller
 * sends what ntm_filt_round writes and passes every PROBE_RESP with its
 * source to ntm_filt_input.
 */
#define NTM_FILT_ROUNDS	3
#define NTM_FILT_PER_ROUND 4	/* probes a round at most */
struct ntm_filt_test {
	struct sockaddr_storage	 server;	/* where the probes go (unmapped) */
	int			 rounds;
	uint8_t			 ask[NTM_FILT_ROUNDS][NTM_PROBE_TXID_LEN];
	uint8_t			 chg[NTM_FILT_ROUNDS][NTM_PROBE_TXID_LEN];
	uint8_t			 aask[NTM_FILT_ROUNDS][NTM_PROBE_TXID_LEN];
	uint8_t			 achg[NTM_FILT_ROUNDS][NTM_PROBE_TXID_LEN];
	int			 ask_answered;	/* the server named its other port (or none) */
	int			 chg_answered;	/* its answer from the other port came in */
	uint16_t		 other_port;	/* host order; 0: none (or not known) */
	int			 aask_answered;	/* the server named its other address (or none) */
	int			 achg_answered;	/* its answer from the other address came in */
	struct sockaddr_storage	 other_addr;	/* family 0: none (or not known) */
};
/* Starts a test against server (copied; an IPv4-mapped address unmapped). */
void ntm_filt_start(struct ntm_filt_test *t, const struct sockaddr *server);
/* Still going: no answer from the other port yet, and none saying there
 * is no other port (after the last round: waiting for a late answer). */
int ntm_filt_pending(const struct ntm_filt_test *t);
/* The next round's probes (the ones still wanted) into out; returns how
 * many were written, 0 when the test is over. */
int ntm_filt_round(struct ntm_filt_test *t, uint8_t out[NTM_FILT_PER_ROUND][NTM_PROBE_LEN]);
/* A datagram p (n bytes) from `from`: 1 if it answers one of t's probes
 * (taken: an ASK's answer only from the server itself, a CHANGE's from the
 * server's address at the other port it names, a CHANGE|ADDR's from the
 * other address:port it names, or either from the server itself when it
 * has no other), 0 if not. */
int ntm_filt_input(struct ntm_filt_test *t, const uint8_t *p, size_t n,
    const struct sockaddr *from, socklen_t fromlen);
/* The verdict, with the NAT kind found meanwhile. */
enum ntm_filter ntm_filt_verdict(const struct ntm_filt_test *t, enum ntm_nat nat);
/* Why t gave verdict f, for people (static): "the relay's answer from its
 * other port came in", ... (the test is made against the RS). */
const char *ntm_filt_why(const struct ntm_filt_test *t, enum ntm_filter f);

/* ---- server ---------------------------------------------------------------- */

/* Defaults the daemons use (probe_rate in ntm.conf(5)). */
#define NTM_PROBE_RATE		10	/* answers/s per source address */
#define NTM_PROBE_BURST_S	2	/* burst: this many seconds' worth */
#define NTM_PROBE_TOTAL_RATE	5000	/* answers/s in all */
#define NTM_PROBE_SLOTS		4096	/* source addresses tracked (ratelim.h) */

struct ntm_probe_srv;
struct ntm_probe_stats {
	uint64_t	answered;
	uint64_t	alt_answered;	/* of them, sent from the other port */
	uint64_t	alt_addr_answered; /* of them, sent from the other address */
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
/*
 * The same for a server with an other port (other_port, host order; 0:
 * none): a probe with NTM_PROBE_F_CHANGE is to be answered from it (*alt
 * set to 1; the caller sends the answer, to from only, from the other
 * port of the address the probe came to); without an other port it is
 * answered from this one, its answer saying so. One answer per probe,
 * never longer, under the same rates.
 */
size_t ntm_probe_srv_answer(struct ntm_probe_srv *s, const uint8_t *p, size_t n,
    const struct sockaddr *from, socklen_t fromlen, int64_t now_ms, uint16_t other_port,
    uint8_t *out, size_t cap, int *alt);
/*
 * The same for a server that may also have an other address (other_addr,
 * NULL: none; one of another family than the probe's source counts as
 * none): a probe with NTM_PROBE_F_CHANGE | NTM_PROBE_F_ADDR is to be
 * answered from it (*alt set to 2; the caller sends the answer from the
 * other address, to from only); an answer to a probe with
 * NTM_PROBE_F_ADDR names it.
 */
#define NTM_PROBE_ALT_PORT	1
#define NTM_PROBE_ALT_ADDR	2
size_t ntm_probe_srv_answer_addr(struct ntm_probe_srv *s, const uint8_t *p, size_t n,
    const struct sockaddr *from, socklen_t fromlen, int64_t now_ms, uint16_t other_port,
    const struct sockaddr *other_addr, uint8_t *out, size_t cap, int *alt);
void ntm_probe_srv_stats(const struct ntm_probe_srv *s, struct ntm_probe_stats *st);

#endif
