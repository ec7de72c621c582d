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
	int			filter;			/* enum ntm_filter (probe.h) the
							 * device found; 0 unknown */
	int			nlocals;
	struct sockaddr_storage	locals[NTM_REG_ADDRS];	/* with the client's port */
};

enum ntm_route_kind { NTM_ROUTE_DIRECT = 1, NTM_ROUTE_LOCAL = 2, NTM_ROUTE_RELAY = 3 };

struct ntm_route {
	enum ntm_route_kind	kind;
	int			requester_initiates;	/* else the peer initiates */
	struct sockaddr_storage	endpoint;	/* where the initiator sends (direct/local) */
	int			punch;		/* relay: both ends punch (rules 3, 5) */
	char			reason[96];	/* told from the requester's side */
	/* ntm_route_decide_dual: the family decided in (4 or 6; 0 for two ends
	 * of different families), the location of each end it used (0 its
	 * first, 1 its other family's), whether the reason names the family
	 * (a route over a second family, or two families weighed), and the
	 * other shared family's reason ("" if none). */
	int			family;
	int			a_loc, b_loc;
	int			dual;
	int			other_family;
	char			other[96];
};

/* Decides the route between the requester a and the peer b; punch: hole
 * punching is allowed (the DC punches and has a relay for the family). */
int ntm_route_decide(const struct ntm_location *a, const struct ntm_location *b,
    int punch, struct ntm_route *out) NTM_WUR;
/*
 * The same, for ends that registered a location in each family (protocol.md
 * §4.2 NTM_REG_F_ALSO, §4.5 "Two families"): a and b are each end's first
 * location, a_alt and b_alt its other family's (NULL: none). Every family
 * both ends have is decided as above; a direct or local route beats a
 * punching relay, which beats a relay; on a tie the ends' first locations
 * win. Without a shared family: as ntm_route_decide(a, b) (the relay
 * bridges). With neither alt: exactly ntm_route_decide.
 */
int ntm_route_decide_dual(const struct ntm_location *a, const struct ntm_location *a_alt,
    const struct ntm_location *b, const struct ntm_location *b_alt, int punch,
    struct ntm_route *out) NTM_WUR;
/* r's reason as one end reads it (peer_side 0: the requester's, 1: the
 * peer's, "requester" and "peer" swapped), with the family and the other
 * family's reason when r->dual, cut to what fits a direction (95 bytes). */
void ntm_route_reason(const struct ntm_route *r, int peer_side, char *out, size_t cap);
const char *ntm_route_kind_name(enum ntm_route_kind k);	/* "direct", "local", "relay" */
/* 1 if l->reflexive (address and port) is not among l->locals, else 0. */
int ntm_location_natted(const struct ntm_location *l);

#endif
