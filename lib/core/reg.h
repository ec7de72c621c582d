/*
 * reg.h - the sealed registration channel between a client and its DC
 * (REG_REQ, REG_RESP, NUDGE, MOVED; docs/protocol.md §4.2). I/O free.
 */
#ifndef NTM_REG_H
#define NTM_REG_H

#include "ntm-rt.h"

/* One end of a client-DC channel: its keys, send counter, replay window. */
struct ntm_chan {
	uint8_t			sid[NTM_SID_LEN];
	uint8_t			tx[NTM_KEY_LEN], rx[NTM_KEY_LEN];
	uint64_t		send_ctr;	/* last counter sent; 0 = none */
	struct ntm_window	win;
};
void ntm_chan_init(struct ntm_chan *c, const uint8_t sid[NTM_SID_LEN],
    const uint8_t tx[NTM_KEY_LEN], const uint8_t rx[NTM_KEY_LEN]);
void ntm_chan_wipe(struct ntm_chan *c);

struct ntm_reg_req {
	uint64_t		ctr;		/* set by ntm_reg_req_open: the counter
						 * it was sealed with (REG_RESP echo);
						 * ignored by the sealer */
	uint16_t		local_port;
	uint8_t			flags;		/* NTM_REG_F_* */
	uint8_t			nat;		/* enum ntm_nat (probe.h) the client
						 * found; 0 unknown. On the wire in
						 * flags bits 2..4 */
	uint8_t			filter;		/* enum ntm_filter (probe.h) the client
						 * found; 0 unknown. On the wire in
						 * n_addrs bits 4..6 */
	int			naddrs;		/* 0..NTM_REG_ADDRS */
	struct sockaddr_storage	addrs[NTM_REG_ADDRS];
};
#define NTM_REG_F_AGENT	0x01
#define NTM_REG_F_OFFLINE	0x02	/* the agent stops: mark the device offline now */
#define NTM_REG_F_ALSO	0x20	/* the device's location in a second address
					 * family (its source's); the one registered
					 * without this bit stays (protocol.md §4.2) */
#define NTM_REG_F_ALL	(NTM_REG_F_AGENT | NTM_REG_F_OFFLINE | NTM_REG_F_ALSO)
#define NTM_REG_NAT_SHIFT	2	/* flags bits 2..4: the NAT kind */
#define NTM_REG_NAT_MASK	0x07
#define NTM_REG_NAT_MAX		4	/* NTM_NAT_PER_DEST */
/* n_addrs bits 4..6: the filtering (a DC from before them refuses the
 * REG_REQ: the agent sets them only for a DC whose GET /v1/session lists
 * the feature NTM_REG_FEATURE_FILTER). */
#define NTM_REG_NADDRS_MASK	0x0f
#define NTM_REG_FILTER_SHIFT	4
#define NTM_REG_FILTER_MASK	0x07
#define NTM_REG_FILTER_MAX	5	/* NTM_FILTER_ADDR_DEP */
#define NTM_REG_FEATURE_FILTER	"reg_filtering"


struct ntm_reg_resp {
	struct sockaddr_storage	reflexive;	/* AF_UNSPEC if none */
	uint32_t		keepalive_s;
	uint32_t		pending;
	uint64_t		echo;		/* counter of the REG_REQ answered */
};

struct ntm_nudge {
	uint32_t		kind;		/* NTM_NUDGE_* */
	uint32_t		pending;
};
#define NTM_NUDGE_DIRECTION	1	/* route directions wait: GET /v1/directions */
#define NTM_NUDGE_CACHE		2	/* cache entries wait: GET /v1/exchange/cache */
#define NTM_NUDGE_KIND_OK(k)	((k) == NTM_NUDGE_DIRECTION || (k) == NTM_NUDGE_CACHE)

/* A peer of one of the client's tunnels has a new endpoint. */
struct ntm_moved {
	uint8_t			tunnel_id[NTM_TUNNEL_ID_LEN];
	struct sockaddr_storage	endpoint;	/* AF_INET or AF_INET6 */
};

/* The session id of a sealed message whose length was validated. */
const uint8_t *ntm_reg_sid(const uint8_t *p, size_t n);

/* Sealers: write exactly NTM_REG_REQ_LEN / NTM_REG_RESP_LEN / NTM_NUDGE_LEN /
 * NTM_MOVED_LEN bytes into out (cap must allow it) and return that length; bump send_ctr.
 * *ctr_out (may be NULL) gets the counter used. */
int ntm_reg_req_seal(struct ntm_chan *c, const struct ntm_reg_req *r, uint8_t *out,
    size_t cap, uint64_t *ctr_out) NTM_WUR;
int ntm_reg_resp_seal(struct ntm_chan *c, const struct ntm_reg_resp *r, uint8_t *out,
    size_t cap) NTM_WUR;
int ntm_nudge_seal(struct ntm_chan *c, const struct ntm_nudge *n, uint8_t *out,
    size_t cap) NTM_WUR;
int ntm_moved_seal(struct ntm_chan *c, const struct ntm_moved *m, uint8_t *out,
    size_t cap) NTM_WUR;

/* Openers: validate (type, exact length, session id == c->sid), check the
 * window, decrypt, parse strictly, then record the counter. 0 or
 * NTM_ERR_PROTO / NTM_ERR_SHORT / NTM_ERR_REPLAY / NTM_ERR_CRYPTO. */
int ntm_reg_req_open(struct ntm_chan *c, const uint8_t *p, size_t n,
    struct ntm_reg_req *out) NTM_WUR;
int ntm_reg_resp_open(struct ntm_chan *c, const uint8_t *p, size_t n,
    struct ntm_reg_resp *out) NTM_WUR;
int ntm_nudge_open(struct ntm_chan *c, const uint8_t *p, size_t n,
    struct ntm_nudge *out) NTM_WUR;
int ntm_moved_open(struct ntm_chan *c, const uint8_t *p, size_t n,
    struct ntm_moved *out) NTM_WUR;

#endif
