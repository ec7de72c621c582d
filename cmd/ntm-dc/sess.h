/*
 * sess.h - the DC's session cache as its two rooms see it: sess.c keeps it,
 * udp.c (the registration socket) reads and updates the sessions in it.
 * Nothing else includes this header; the rest of the DC uses dc.h.
 */
#ifndef NTM_DC_SESS_H
#define NTM_DC_SESS_H

#include "dc.h"
#include "dcreg.h"

struct dc_dir {
	json_t		*dir;
	int64_t		 expires;
};

struct dc_sess {
	struct dc_sess		*snext;		/* bucket by session id */
	struct dc_sess		*cnext;		/* bucket by client id */
	struct dc_sess		*lprev, *lnext;	/* seen longest ago first */
	int			 counted;	/* 1 + its NAT kind in the online
						 * counts; 0: not counted (sess.c) */
	int			 counted_filter; /* 1 + its filtering, likewise */
	uint8_t			 sid[NTM_SID_LEN];
	int64_t			 client_id;
	char			 fqdn[NTM_NAME_MAX + 1];
	char			 vip4[48], vip6[48];
	int64_t			 expires;	/* of the login session */
	struct ntm_chan		 chan;
	struct ntm_dcreg	 reg;		/* location and liveness (lib/core/dcreg.h) */
	/* reg.alt on the disk (udp.c): last queued for the writer then (a
	 * change at most every NTM_DCREG_CHANGE_EVERY_S, its time every
	 * keepalive), and whether the one in memory is not the one stored. */
	int64_t			 alt_saved;
	int			 alt_dirty;
	struct sockaddr_storage	 peer;		/* as received (maybe v4-mapped) */
	socklen_t		 peerlen;
	struct sockaddr_storage	 local;		/* where its last REG_REQ came to */
	int			 has_local;
	struct dc_dir		 pend[DC_PENDING_MAX];
	int			 npend;
};

/* The cached session with this id, or NULL. */
struct dc_sess *dc_sess_by_sid(struct dc *dc, const uint8_t sid[NTM_SID_LEN]);
/* Adds (replacing the client's previous session) from stored text: the
 * session (borrowed, owned by the cache), or NULL. */
struct dc_sess *dc_sess_add(struct dc *dc, const struct dc_client *c,
    const struct dc_session *ss);
/* The session registered (its reg changed): the last to be evicted, and
 * counted online under its NAT kind if it is online. */
void dc_sess_touch(struct dc *dc, struct dc_sess *s);
/* Drops the directions that expired by now. */
void dc_sess_expire(struct dc_sess *s, int64_t now);
/* Queues a direction (stolen): the number now pending, the oldest dropped
 * when the queue is full. */
int  dc_sess_enqueue(struct dc *dc, struct dc_sess *s, json_t *direction);
/* Registered within DC_ONLINE_FACTOR keepalives (and not said goodbye). */
int  dc_sess_online(const struct dc *dc, const struct dc_sess *s, int64_t now);
/* Drops the cached sessions of clients no longer in the database (deleted
 * by `ntm-dc client del` or reclaimed): how many. */
int  dc_sess_forget_gone(struct dc *dc);
/* The keepalive asked of clients, in seconds. */
int  dc_keepalive(const struct dc *dc);

#endif
