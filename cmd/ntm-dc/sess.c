/*
 * sess.c - the DC's cache of login sessions (docs/protocol.md §4.2): each
 * logged-in client's channel keys, its last location (one per address
 * family: the second, NTM_REG_F_ALSO, beside the first) and its queue of route
 * directions, loaded from the database at start and kept by login.c (login,
 * logout) and udp.c (registrations). It also holds the table of hooks
 * through which the registration path tells the rooms above it that a client
 * came online or moved.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "probe.h"
#include "sess.h"

#define SESS_BUCKETS_MIN	4096	/* buckets of each index; doubled as sessions grow */

/*
 * Two chained hash indexes (by session id, by client id) whose bucket
 * arrays double when the sessions outnumber them, so a look-up stays O(1)
 * at any number of devices; and a list from the session seen longest ago
 * to the one seen last, so making room is O(1) too (every accepted
 * registration moves its session to the end: dc_sess_touch).
 *
 * The online devices by NAT kind are counted as registrations come, not by
 * a pass over all sessions: a session is counted (under the kind it
 * registered) when it registers online, uncounted when it says goodbye or
 * leaves, and going offline by time is found by a cursor ("aging") that
 * walks the list from the oldest session that may still be counted until
 * the first one still online. Every session before the cursor is
 * uncounted; since the list is in order of last registration, those after
 * the first still online one are online too or were never counted. So
 * dc_sess_counts costs the sessions that went offline since the last
 * call, not all of them. (A wall clock stepped back may keep a session
 * counted until the cursor reaches it.)
 */
struct dc_cache {
	struct dc_sess		**by_sid, **by_client;
	size_t			 nbuckets;	/* a power of two */
	struct dc_sess		*lru_head, *lru_tail;
	struct dc_sess		*aging;		/* see above; NULL: none counted */
	size_t			 online_nat[5];	/* online by NAT kind (dc_sess_counts) */
	size_t			 online_filter[NTM_FILTER_MAX + 1]; /* and by filtering */
	int64_t			 deletions;	/* dc_db_client_deletions at the last look */
	int			 has_deletions;
	size_t			 nsess;
	uint64_t		 evicted, dropped;
	/* The first send counter of each session: above every counter any
	 * session sent before, in this run or an earlier one, whatever the
	 * clock did (state_dir/reg-counter, lib/io/ctr.c). */
	struct ntm_ctr_floor	 ctr;
	int			 has_ctr;
};

/* Unix time in microseconds: the first send counter of a session. */
static uint64_t
realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Session ids are random: their first bytes spread well. */
static size_t
sid_hash(const struct dc_cache *rt, const uint8_t sid[NTM_SID_LEN])
{
	uint64_t h;

	memcpy(&h, sid, sizeof(h));
	return (size_t)h & (rt->nbuckets - 1);
}

static size_t
client_hash(const struct dc_cache *rt, int64_t id)
{
	return (size_t)((uint64_t)id * 0x9e3779b97f4a7c15ULL >> 32) & (rt->nbuckets - 1);
}

static void
lru_unlink(struct dc_cache *rt, struct dc_sess *s)
{
	if (rt->aging == s)
		rt->aging = s->lnext;
	if (s->lprev)
		s->lprev->lnext = s->lnext;
	else
		rt->lru_head = s->lnext;
	if (s->lnext)
		s->lnext->lprev = s->lprev;
	else
		rt->lru_tail = s->lprev;
	s->lprev = s->lnext = NULL;
}

static void
lru_append(struct dc_cache *rt, struct dc_sess *s)
{
	s->lprev = rt->lru_tail;
	s->lnext = NULL;
	if (rt->lru_tail)
		rt->lru_tail->lnext = s;
	else
		rt->lru_head = s;
	rt->lru_tail = s;
	if (rt->aging == NULL)
		rt->aging = s;
}

/* Takes s out of the online counts. */
static void
uncount(struct dc_cache *rt, struct dc_sess *s)
{
	if (s->counted) {
		rt->online_nat[s->counted - 1]--;
		s->counted = 0;
	}
	if (s->counted_filter) {
		rt->online_filter[s->counted_filter - 1]--;
		s->counted_filter = 0;
	}
}

/* Doubles both indexes; on failure they stay as they were (longer chains). */
static void
sess_grow(struct dc_cache *rt)
{
	size_t n = rt->nbuckets * 2;
	struct dc_sess **bs = calloc(n, sizeof(*bs)), **bc = calloc(n, sizeof(*bc));
	struct dc_sess *s;

	if (bs == NULL || bc == NULL) {
		free(bs);
		free(bc);
		return;
	}
	free(rt->by_sid);
	free(rt->by_client);
	rt->by_sid = bs;
	rt->by_client = bc;
	rt->nbuckets = n;
	for (s = rt->lru_head; s; s = s->lnext) {
		size_t h = sid_hash(rt, s->sid), c = client_hash(rt, s->client_id);

		s->snext = bs[h];
		bs[h] = s;
		s->cnext = bc[c];
		bc[c] = s;
	}
}

int
dc_keepalive(const struct dc *dc)
{
	return (int)dc->srv->conf.keepalive_s;
}

int
dc_sess_online(const struct dc *dc, const struct dc_sess *s, int64_t now)
{
	return ntm_dcreg_online(&s->reg, now, dc_keepalive(dc), DC_ONLINE_FACTOR);
}

struct dc_sess *
dc_sess_by_sid(struct dc *dc, const uint8_t sid[NTM_SID_LEN])
{
	struct dc_sess *s;

	if (dc->cache == NULL)
		return NULL;
	for (s = dc->cache->by_sid[sid_hash(dc->cache, sid)]; s; s = s->snext)
		if (memcmp(s->sid, sid, NTM_SID_LEN) == 0)
			return s;
	return NULL;
}

struct dc_sess *
dc_sess_by_client(struct dc *dc, int64_t client_id)
{
	struct dc_sess *s;

	if (dc->cache == NULL)
		return NULL;
	for (s = dc->cache->by_client[client_hash(dc->cache, client_id)]; s; s = s->cnext)
		if (s->client_id == client_id)
			return s;
	return NULL;
}

static void
sess_clear_pending(struct dc_sess *s)
{
	for (int i = 0; i < s->npend; i++)
		json_decref(s->pend[i].dir);
	s->npend = 0;
}

static void
sess_remove(struct dc_cache *rt, struct dc_sess *s)
{
	struct dc_sess **pp;

	for (pp = &rt->by_sid[sid_hash(rt, s->sid)]; *pp; pp = &(*pp)->snext)
		if (*pp == s) {
			*pp = s->snext;
			break;
		}
	for (pp = &rt->by_client[client_hash(rt, s->client_id)]; *pp; pp = &(*pp)->cnext)
		if (*pp == s) {
			*pp = s->cnext;
			break;
		}
	uncount(rt, s);
	lru_unlink(rt, s);
	rt->nsess--;
	if (rt->has_ctr)
		ntm_ctr_floor_note(&rt->ctr, s->chan.send_ctr);
	sess_clear_pending(s);
	ntm_chan_wipe(&s->chan);
	ntm_wipe(s, sizeof(*s));
	free(s);
}

/* Makes room by dropping the session seen longest ago. */
static void
sess_evict(struct dc_cache *rt)
{
	if (rt->lru_head) {
		rt->evicted++;
		sess_remove(rt, rt->lru_head);
	}
}

void
dc_sess_touch(struct dc *dc, struct dc_sess *s)
{
	struct dc_cache *rt = dc->cache;
	int nat = s->reg.loc.nat, filter = s->reg.loc.filter;

	if (rt == NULL)
		return;
	if (rt->lru_tail != s) {
		lru_unlink(rt, s);
		lru_append(rt, s);
	}
	if (rt->aging == NULL)
		rt->aging = s;		/* the tail: all before it are uncounted */
	uncount(rt, s);
	if (dc_sess_online(dc, s, now_unix()) && nat >= 0 &&
	    nat < (int)(sizeof(rt->online_nat) / sizeof(rt->online_nat[0]))) {
		s->counted = nat + 1;
		rt->online_nat[nat]++;
		if (filter >= 0 && filter <= NTM_FILTER_MAX) {
			s->counted_filter = filter + 1;
			rt->online_filter[filter]++;
		}
	}
}

struct dc_sess *
dc_sess_add(struct dc *dc, const struct dc_client *c, const struct dc_session *ss)
{
	struct dc_cache *rt = dc->cache;
	struct dc_sess *s, *old;
	uint8_t sid[NTM_SID_LEN], rx[NTM_KEY_LEN], tx[NTM_KEY_LEN];

	if (ntm_hex_decode_exact(sid, sizeof(sid), ss->session_id) < 0 ||
	    ntm_b64_decode_exact(rx, sizeof(rx), ss->rx) < 0 ||
	    ntm_b64_decode_exact(tx, sizeof(tx), ss->tx) < 0) {
		log_warnx("session of %s: malformed keys in the database", c->fqdn);
		ntm_wipe(rx, sizeof(rx));
		ntm_wipe(tx, sizeof(tx));
		return NULL;
	}
	if ((old = dc_sess_by_client(dc, c->id)) != NULL)
		sess_remove(rt, old);
	if ((old = dc_sess_by_sid(dc, sid)) != NULL)
		sess_remove(rt, old);
	if (rt->nsess >= DC_SESS_MAX)
		sess_evict(rt);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		ntm_wipe(rx, sizeof(rx));
		ntm_wipe(tx, sizeof(tx));
		return NULL;
	}
	/* The DC's tx is the client's rx (crypto_kx server side). */
	ntm_chan_init(&s->chan, sid, tx, rx);
	/* Counters continue above those of an earlier run of the DC (the
	 * client's window, kept across a DC restart, would refuse 1, 2 ...) and
	 * of this session before it left the cache; never a nonce twice. */
	if (!rt->has_ctr)		/* -n: nothing is sent */
		s->chan.send_ctr = realtime_us();
	else if (ntm_ctr_floor_take(&rt->ctr, realtime_us(), &s->chan.send_ctr) < 0) {
		log_warnx("session of %s: cannot reserve send counters in %s", c->fqdn,
		    rt->ctr.path);
		ntm_chan_wipe(&s->chan);
		ntm_wipe(rx, sizeof(rx));
		ntm_wipe(tx, sizeof(tx));
		free(s);
		return NULL;
	}
	ntm_wipe(rx, sizeof(rx));
	ntm_wipe(tx, sizeof(tx));
	memcpy(s->sid, sid, sizeof(sid));
	s->client_id = c->id;
	snprintf(s->fqdn, sizeof(s->fqdn), "%s", c->fqdn);
	snprintf(s->vip4, sizeof(s->vip4), "%s", c->vip4);
	snprintf(s->vip6, sizeof(s->vip6), "%s", c->vip6);
	s->expires = ss->expires;
	s->snext = rt->by_sid[sid_hash(rt, sid)];
	rt->by_sid[sid_hash(rt, sid)] = s;
	s->cnext = rt->by_client[client_hash(rt, c->id)];
	rt->by_client[client_hash(rt, c->id)] = s;
	lru_append(rt, s);
	rt->nsess++;
	if (rt->nsess > rt->nbuckets)
		sess_grow(rt);
	return s;
}

void
dc_sess_login(struct dc *dc, const struct dc_client *c, const struct dc_session *s)
{
	if (dc->cache)
		(void)dc_sess_add(dc, c, s);
}

void
dc_sess_logout(struct dc *dc, int64_t client_id)
{
	struct dc_sess *s = dc_sess_by_client(dc, client_id);

	if (s)
		sess_remove(dc->cache, s);
}

static int
load_session(const struct dc_client *c, const struct dc_session *s, void *arg)
{
	(void)dc_sess_add(arg, c, s);
	return 0;
}

/* "ip:port,ip:port" back into the location (after a restart). */
static int
load_location(const struct dc_loc_row *r, void *arg)
{
	struct dc *dc = arg;
	struct dc_sess *s = dc_sess_by_client(dc, r->client_id);
	char buf[sizeof(r->locals)], *tok, *save = NULL;
	socklen_t len;

	if (s == NULL || ntm_sa_parse(&s->reg.loc.reflexive, &len, r->reflexive) < 0)
		return 0;
	snprintf(buf, sizeof(buf), "%s", r->locals);
	s->reg.loc.nlocals = 0;
	for (tok = strtok_r(buf, ",", &save); tok && s->reg.loc.nlocals < NTM_REG_ADDRS;
	    tok = strtok_r(NULL, ",", &save))
		if (ntm_sa_parse(&s->reg.loc.locals[s->reg.loc.nlocals], &len, tok) == 0)
			s->reg.loc.nlocals++;
	s->reg.loc.natted = r->natted;
	s->reg.loc.nat = r->nat;
	s->reg.loc.filter = r->filter;
	s->reg.agent = r->agent;
	s->reg.last_seen = s->reg.saved = r->last_seen;
	s->reg.has_loc = !r->offline;
	/* Rows come oldest first: the eviction order is last_seen's. */
	dc_sess_touch(dc, s);
	/* Below any counter it will send: its next REG_REQ brings it back. */
	s->reg.stopped_ctr = r->offline ? 1 : 0;
	/* No reply address until it registers again: peer stays unset. */
	return 0;
}

/* The second family's stored location back beside the first (after a
 * restart; protocol.md §4.2), if it still goes with it: of the other
 * family, which the first's local addresses name (what lib/core/dcreg.c
 * asks of one it takes), and the first not offline. */
static int
load_also(const struct dc_loc_row *r, void *arg)
{
	struct dc *dc = arg;
	struct dc_sess *s = dc_sess_by_client(dc, r->client_id);
	struct ntm_location alt;
	char buf[sizeof(r->locals)], *tok, *save = NULL;
	socklen_t len;
	int fam, named = 0;

	if (s == NULL || !s->reg.has_loc)
		return 0;
	memset(&alt, 0, sizeof(alt));
	if (ntm_sa_parse(&alt.reflexive, &len, r->reflexive) < 0)
		return 0;
	fam = ntm_sa_family(&alt.reflexive);
	if (fam == ntm_sa_family(&s->reg.loc.reflexive))
		return 0;
	for (int i = 0; i < s->reg.loc.nlocals; i++)
		if (ntm_sa_family(&s->reg.loc.locals[i]) == fam)
			named = 1;
	if (!named)
		return 0;
	snprintf(buf, sizeof(buf), "%s", r->locals);
	for (tok = strtok_r(buf, ",", &save); tok && alt.nlocals < NTM_REG_ADDRS;
	    tok = strtok_r(NULL, ",", &save))
		if (ntm_sa_parse(&alt.locals[alt.nlocals], &len, tok) == 0)
			alt.nlocals++;
	alt.natted = r->natted;
	alt.nat = r->nat;
	alt.filter = r->filter;
	s->reg.alt = alt;
	s->reg.has_alt = 1;
	s->reg.alt_seen = s->alt_saved = r->last_seen;
	return 0;
}

int64_t
dc_sess_client(const struct dc_sess *s)
{
	return s->client_id;
}

void
dc_sess_info(struct dc *dc, const struct dc_sess *s, struct dc_sess_info *out)
{
	memset(out, 0, sizeof(*out));
	out->client_id = s->client_id;
	snprintf(out->fqdn, sizeof(out->fqdn), "%s", s->fqdn);
	snprintf(out->vip4, sizeof(out->vip4), "%s", s->vip4);
	snprintf(out->vip6, sizeof(out->vip6), "%s", s->vip6);
	out->online = dc_sess_online(dc, s, now_unix());
	out->stopped = !s->reg.has_loc && s->reg.stopped_ctr != 0;
	out->has_loc = s->reg.has_loc;
	out->loc = s->reg.loc;
	out->family = s->reg.loc.reflexive.ss_family == AF_INET6 ? 6 : 4;
	out->has_alt = ntm_dcreg_alt_online(&s->reg, now_unix(), dc_keepalive(dc),
	    DC_ONLINE_FACTOR);
	if (out->has_alt)
		out->alt = s->reg.alt;
	out->last_seen = s->reg.last_seen;
	out->pending = (unsigned)s->npend;
}

/* ---- directions ---------------------------------------------------------- */

void
dc_sess_expire(struct dc_sess *s, int64_t now)
{
	int i, j;

	for (i = j = 0; i < s->npend; i++) {
		if (s->pend[i].expires <= now)
			json_decref(s->pend[i].dir);
		else
			s->pend[j++] = s->pend[i];
	}
	s->npend = j;
}

int
dc_sess_enqueue(struct dc *dc, struct dc_sess *s, json_t *direction)
{
	int64_t now = now_unix();

	dc_sess_expire(s, now);
	if (s->npend == DC_PENDING_MAX) {
		dc->cache->dropped++;
		json_decref(s->pend[0].dir);
		memmove(&s->pend[0], &s->pend[1], (DC_PENDING_MAX - 1) * sizeof(s->pend[0]));
		s->npend--;
	}
	s->pend[s->npend].dir = direction;
	s->pend[s->npend].expires = now + dc->srv->conf.direction_ttl_s;
	s->npend++;
	return s->npend;
}

json_t *
dc_sess_take(struct dc *dc, struct dc_sess *s)
{
	json_t *arr = json_array();
	int i;

	dc_sess_expire(s, now_unix());
	if (arr == NULL)
		return NULL;
	for (i = 0; i < s->npend; i++)
		if (json_array_append(arr, s->pend[i].dir) < 0) {
			json_decref(arr);
			return NULL;
		}
	sess_clear_pending(s);
	return arr;
}

/* ---- hooks --------------------------------------------------------------- */

void
dc_hooks_add(struct dc *dc, const struct dc_hooks *h)
{
	if (dc->nhooks < DC_HOOKS_MAX)
		dc->hooks[dc->nhooks++] = h;
}

void
dc_hooks_online(struct dc *dc, struct dc_sess *s)
{
	for (int i = 0; i < dc->nhooks; i++)
		if (dc->hooks[i]->online)
			dc->hooks[i]->online(dc, s);
}

void
dc_hooks_moved(struct dc *dc, const char *fqdn, const struct sockaddr_storage *endpoint)
{
	for (int i = 0; i < dc->nhooks; i++)
		if (dc->hooks[i]->moved)
			dc->hooks[i]->moved(dc, fqdn, endpoint);
}

/* ---- start / stop -------------------------------------------------------- */

void
dc_sess_counts(struct dc *dc, struct dc_sess_counts *out)
{
	struct dc_cache *rt = dc->cache;
	int64_t now = now_unix();

	memset(out, 0, sizeof(*out));
	if (rt == NULL)
		return;
	out->sessions = rt->nsess;
	out->evicted = rt->evicted;
	out->dropped = rt->dropped;
	/* Those that went offline by time since the last call leave the counts. */
	while (rt->aging && !dc_sess_online(dc, rt->aging, now)) {
		uncount(rt, rt->aging);
		rt->aging = rt->aging->lnext;
	}
	memcpy(out->nat, rt->online_nat, sizeof(out->nat));
	_Static_assert(sizeof(out->filter) == sizeof(rt->online_filter), "one count a filtering");
	memcpy(out->filter, rt->online_filter, sizeof(out->filter));
}

int
dc_sess_start(struct dc *dc, char *err, size_t errlen)
{
	int e;

	if ((dc->cache = calloc(1, sizeof(*dc->cache))) == NULL ||
	    (dc->cache->by_sid = calloc(SESS_BUCKETS_MIN, sizeof(struct dc_sess *))) == NULL ||
	    (dc->cache->by_client = calloc(SESS_BUCKETS_MIN, sizeof(struct dc_sess *))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dc->cache->nbuckets = SESS_BUCKETS_MIN;
	if (!dc->srv->check_only) {
		char *path = xasprintf("%s/reg-counter", dc->srv->conf.state_dir);

		e = ntm_ctr_floor_open(&dc->cache->ctr, path, realtime_us());
		free(path);
		if (e < 0) {
			snprintf(err, errlen, "%s/reg-counter: %s", dc->srv->conf.state_dir,
			    e == NTM_ERR_INVAL ? "not one number (restore it or remove it "
			    "with every session ended)" : ntm_strerror(e));
			return -1;
		}
		dc->cache->has_ctr = 1;
	}
	if ((e = dc_db_live_sessions(dc->db, now_unix(), load_session, dc)) < 0 ||
	    (e = dc_db_locations(dc->db, load_location, dc)) < 0 ||
	    (e = dc_db_locations_also(dc->db, now_unix(), load_also, dc)) < 0) {
		snprintf(err, errlen, "db %s: cannot load the sessions: %s",
		    dc->srv->conf.db, ntm_strerror(e));
		return -1;
	}
	/* The sessions just loaded are all of clients there are. */
	if (dc_db_client_deletions(dc->db, &dc->cache->deletions) == 0)
		dc->cache->has_deletions = 1;
	dc_client_watch(dc);
	return 0;
}

static int
cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

int
dc_sess_forget_gone(struct dc *dc)
{
	struct dc_cache *c = dc->cache;
	struct dc_sess *s, *next;
	int64_t *ids = NULL;
	size_t nids = 0;
	int n = 0;

	int64_t del;

	if (c == NULL || c->nsess == 0)
		return 0;
	/* Nothing deleted since the last look: no pass over the sessions
	 * (the database changes every 100 ms under load: the location writer). */
	if (dc_db_client_deletions(dc->db, &del) == 0) {
		if (c->has_deletions && del == c->deletions)
			return 0;
		c->deletions = del;
		c->has_deletions = 1;
	}
	/* One query for the clients there are, then a look-up per session. */
	if (dc_db_client_ids(dc->db, &ids, &nids) < 0) {
		log_warnx("cannot read the clients from the database; sessions kept");
		return 0;
	}
	qsort(ids, nids, sizeof(*ids), cmp_id);
	for (s = c->lru_head; s; s = next) {
		next = s->lnext;
		if (bsearch(&s->client_id, ids, nids, sizeof(*ids), cmp_id) == NULL) {
			log_info("client %s: deleted from the database; its session ends",
			    s->fqdn);
			sess_remove(c, s);
			n++;
		}
	}
	free(ids);
	return n;
}

void
dc_sess_stop(struct dc *dc)
{
	struct dc_cache *c = dc->cache;
	struct dc_sess *s;

	if (c == NULL)
		return;
	while ((s = c->lru_head) != NULL)
		sess_remove(c, s);
	if (c->has_ctr)
		ntm_ctr_floor_free(&c->ctr);
	free(c->by_sid);
	free(c->by_client);
	free(c);
	dc->cache = NULL;
}
