/*
 * tuntab.h - the DC's table of the tunnels it made or was handed a
 * direction for (tunnel id -> temporal key and the two ends), kept for the
 * recreation of a route (docs/protocol.md §3.2, tunnel_id) and for MOVED
 * (§4.6). Found by tunnel id and by either end's FQDN in O(1); the tunnel
 * stored longest ago goes first when the table is full. tunnel.c uses it.
 */
#ifndef NTM_DC_TUNTAB_H
#define NTM_DC_TUNTAB_H

#include "dc.h"

struct dc_tun;

/* One end of a tunnel in the index by FQDN. */
struct dc_tun_end {
	struct dc_tun_end	*next;
	struct dc_tun		*t;
};

struct dc_tun {
	struct dc_tun		*next;			/* bucket by id */
	struct dc_tun		*older, *newer;		/* by expiry */
	struct dc_tun_end	 end[2];		/* buckets of a, of b */
	uint8_t			 id[NTM_TUNNEL_ID_LEN];
	uint8_t			 key[NTM_KEY_LEN];
	char			 a[NTM_NAME_MAX + 1], b[NTM_NAME_MAX + 1];	/* the two ends */
	int			 kind;		/* NTM_ROUTE_* of the last direction */
	int			 family;	/* ... its family: 4, 6; 0 unknown
						 * (set by the caller after the store) */
	int64_t			 expires;
};

struct dc_tuntab;

/* A new empty table (free with dc_tuntab_free), or NULL. */
struct dc_tuntab *dc_tuntab_new(void);
void dc_tuntab_free(struct dc_tuntab *tab);	/* NULL: nothing; keys wiped */
/* The live tunnel with this id (borrowed, valid until the next store), or NULL. */
struct dc_tun *dc_tun_find(struct dc_tuntab *tab, const uint8_t id[NTM_TUNNEL_ID_LEN],
    int64_t now);
/* Remembers (or refreshes) a tunnel until now + DC_TUNNEL_TTL_S; the oldest
 * goes when DC_TUNNELS_MAX are kept. NTM_ERR_NOMEM if it cannot. */
int  dc_tun_store(struct dc_tuntab *tab, const uint8_t id[NTM_TUNNEL_ID_LEN],
    const uint8_t key[NTM_KEY_LEN], const char *a, const char *b, int kind, int64_t now);
/* The next live tunnel with an end named fqdn: *cur NULL to start, then
 * passed back as it was left; NULL at the end. The table must not change
 * during the walk. */
struct dc_tun *dc_tun_next_of(struct dc_tuntab *tab, const char *fqdn, int64_t now,
    struct dc_tun_end **cur);

#endif
