/*
 * dcreg.h - the DC's registration decisions (docs/protocol.md §4.2, §4.6):
 * what one REG_REQ, already authenticated and opened (ntm_reg_req_open),
 * does to what the DC knows of the client. I/O free and clock free: the
 * caller passes the time; it reads the answer and does what it says
 * (store the location, send the REG_RESP, tell the peers, ...).
 */
#ifndef NTM_DCREG_H
#define NTM_DCREG_H

#include "reg.h"
#include "route.h"

/* Location changes a session may make: a burst of NTM_DCREG_CHANGE_BURST,
 * then one every NTM_DCREG_CHANGE_EVERY_S. Over that, the DC still answers
 * with the new reflexive address but neither stores the location nor tells
 * the peers (MOVED) at once: it owes both, and pays them, with the latest
 * location, at the first REG_REQ the limit lets through (a keepalive at the
 * latest). A client rotating its source port cannot make its DC write and
 * sign without bound. */
#define NTM_DCREG_CHANGE_BURST		4
#define NTM_DCREG_CHANGE_EVERY_S	2

/* What the DC keeps of a client between two REG_REQs. All zero: never seen. */
struct ntm_dcreg {
	int			has_loc;	/* a live location (no goodbye since) */
	int			agent;		/* its last REG_REQ had NTM_REG_F_AGENT */
	uint64_t		stopped_ctr;	/* counter of its goodbye; 0 = none */
	struct ntm_location	loc;
	int64_t			last_seen;	/* of the last registration, unix s */
	int64_t			saved;		/* the location was last stored then */
	int			changes;	/* location changes it may make now */
	int64_t			changes_at;	/* counted then; 0: a full burst */
	int			owe_store;	/* a change held back by the limit */
	int			owe_moved;	/* ... and a MOVED */
	/* Its location in a second address family (REG_REQ with
	 * NTM_REG_F_ALSO, protocol.md §4.2; the DC stores it apart, in
	 * cmd/ntm-dc/udp.c save_also, not by act->store): valid while
	 * loc is, of the other family, and loc's locals name an address of
	 * its family; online while alt_seen is recent (ntm_dcreg_alt_online). */
	int			has_alt;
	struct ntm_location	alt;
	int64_t			alt_seen;
};

enum ntm_dcreg_verdict {
	NTM_DCREG_GOODBYE = 1,	/* its agent stops (NTM_REG_F_OFFLINE): offline now */
	NTM_DCREG_STALE,	/* sent before its goodbye, delivered after: a replay */
	NTM_DCREG_FIRST,	/* no location was known */
	NTM_DCREG_MOVED,	/* same NAT situation and family, new reflexive address */
	NTM_DCREG_ONLINE,	/* came back after DC_ONLINE_FACTOR keepalives of silence */
	NTM_DCREG_CHANGED,	/* the location or the agent flag changed otherwise */
	NTM_DCREG_REFRESH,	/* nothing changed: a keepalive */
	NTM_DCREG_ALSO,		/* the location in its second family (kept in alt) */
	NTM_DCREG_ALSO_DROPPED,	/* ... with no location of the other family to
				 * go with: not taken, not answered */
};

/* What to do. The flags, not the verdict, say every action. */
struct ntm_dcreg_act {
	enum ntm_dcreg_verdict	verdict;
	int			log;		/* worth an info line */
	int			store;		/* store next's location now */
	int			offline;	/* ... marked offline (goodbye) */
	int			answer;		/* send a REG_RESP: reflexive, echo */
	uint64_t		echo;		/* the counter answered */
	int			moved;		/* MOVED to the peers of its direct tunnels */
	int			came_online;	/* was not online: entries waiting get a NUDGE */
	int			limited;	/* a change over the limit: held back */
	int			alt_gone;	/* the second family's location was dropped */
};

/* Online: registered within online_factor keepalives and no goodbye since. */
int ntm_dcreg_online(const struct ntm_dcreg *st, int64_t now, int keepalive_s,
    int online_factor);

/* The second family's location is known and registered within
 * online_factor keepalives. */
int ntm_dcreg_alt_online(const struct ntm_dcreg *st, int64_t now, int keepalive_s,
    int online_factor);

/*
 * Decides one REG_REQ req (borrowed; req->ctr is the counter it was sealed
 * with) received from the address from (as received, maybe v4-mapped) at
 * now. old is what was kept; next gets what to keep (it may be old itself).
 * next->saved is left as it was: set it once the location is stored.
 * 0, or NTM_ERR_INVAL for a NULL argument.
 */
int ntm_dcreg_decide(const struct ntm_dcreg *old, const struct ntm_reg_req *req,
    const struct sockaddr_storage *from, socklen_t fromlen, int64_t now,
    int keepalive_s, int online_factor, struct ntm_dcreg *next,
    struct ntm_dcreg_act *act) NTM_WUR;

#endif
