/*
 * route.h - the DC's route decision (docs/protocol.md §4.5), a pure
 * function of the two ends' locations, tested as a table.
 */
#ifndef NTM_ROUTE_H
#define NTM_ROUTE_H

#include "ntm-rt.h"

struct ntm_location {
	struct sockaddr_storage	reflexive;		/* what the DC saw */
	int			natted;			/* reflexive not among locals */
	int			nat;			/* enum ntm_nat (probe.h) the device
							 * found itself; 0 unknown */
	int			nlocals;
	struct sockaddr_storage	locals[NTM_REG_ADDRS];	/* with the client's port */
};

enum ntm_route_kind { NTM_ROUTE_DIRECT = 1, NTM_ROUTE_LOCAL = 2, NTM_ROUTE_RELAY = 3 };

struct ntm_route {
	enum ntm_route_kind	kind;
	int			requester_initiates;	/* else the peer initiates */
	struct sockaddr_storage	endpoint;	/* where the initiator sends (direct/local) */
	int			punch;		/* relay: both ends punch (rules 3, 5) */
	char			reason[96];
};

/* Decides the route between the requester a and the peer b; punch: hole
 * punching is allowed (the DC punches and has a relay for the family). */
int ntm_route_decide(const struct ntm_location *a, const struct ntm_location *b,
    int punch, struct ntm_route *out) NTM_WUR;
const char *ntm_route_kind_name(enum ntm_route_kind k);	/* "direct", "local", "relay" */
/* 1 if l->reflexive (address and port) is not among l->locals, else 0. */
int ntm_location_natted(const struct ntm_location *l);

#endif
