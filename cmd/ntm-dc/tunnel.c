/*
 * tunnel.c - route directions (docs/protocol.md §3.2, §4.5):
 *
 *   POST /v1/tunnel        client (bearer): locate the peer, decide the route,
 *                          make the temporal key (and a relay ticket), send the
 *                          peer its direction, answer the caller with its own
 *   GET  /v1/directions    client (bearer): the directions queued for it
 *   POST /v1/dc/locate     DC (signed): where is one of your clients?
 *   POST /v1/dc/direction  DC (signed): queue this direction for your client
 *   POST /v1/dc/moved      DC (signed): a peer of your client's tunnel moved;
 *                          send your client a MOVED (UDP, §4.2)
 *
 * A peer in another domain is reached through peerdc_post() (DNS SRV, then
 * the signed locate) and the direction call to the same DC. Tunnels are
 * remembered (tunnel_id -> temporal key, ends) so either end may ask for the
 * route to be decided again (mobility) while both keep their sessions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "dc.h"
#include "msg.h"
#include "peerdc.h"
#include "dns.h"
#include "probe.h"
#include "relay.h"
#include "tuntab.h"

#define DIR_FIELD_MAX	(2 * NTM_B64_LEN(NTM_TICKET_MAX))

/* A POST /v1/dc/moved on its way to the DC of a moved client's peer. */
struct dc_mreq {
	struct dc_mreq		*next, **prevp;
	struct dc		*dc;
	char			 to[NTM_NAME_MAX + 1], from[NTM_NAME_MAX + 1];
	char			 tid[2 * NTM_TUNNEL_ID_LEN + 1], endpoint[64];
	const char		*domain;	/* into to */
	struct peerdc		 peer;
};

/* A POST /v1/tunnel waiting for another DC. */
struct dc_treq {
	struct dc_treq		*next, **prevp;
	struct dc		*dc;
	struct ntm_req		*req;
	int			 state;		/* T_DISCOVER, T_LOCATE, T_DELIVER */
	char			 me[NTM_NAME_MAX + 1], me4[48], me6[48];
	char			 user[NTM_USER_MAX + 1];	/* the requester's account */
	struct ntm_location	 myloc, myalt;	/* myalt: its other family's */
	int			 has_myalt;
	char			 peer[NTM_NAME_MAX + 1], peer4[48], peer6[48];
	struct ntm_location	 peerloc, peeralt;
	int			 has_peeralt;
	/* the two devices' AS certificates (b64, "" if none), carried to
	 * the other end in its direction: the DC cannot forge them */
	char			 mycert[NTM_B64_LEN(NTM_DCERT_MAX)];
	char			 peercert[NTM_B64_LEN(NTM_DCERT_MAX)];
	const char		*domain;	/* into peer */
	int			 recreate;
	int			 locate_v;	/* the version asked with: 2, then 1 */
	uint8_t			 tid[NTM_TUNNEL_ID_LEN], key[NTM_KEY_LEN];
	int			 kind;		/* of the route build() decided */
	int			 family;	/* ... and its family (4, 6; 0: relay) */
	char			 url[600];	/* the peer's DC, no trailing slash */
	json_t			*mine;		/* the caller's direction, once made */
	struct peerdc		 pdc;		/* finding the peer's DC, locating */
};
enum { T_DISCOVER = 1, T_LOCATE, T_DELIVER };

struct dc_moved_counters {
	uint64_t	local, forwarded, received, failed, limited;
};

struct dc_tunnels {
	struct dc_tuntab *tab;		/* tuntab.c */
	struct dc_treq	*pending;
	struct dc_mreq	*moved;		/* POST /v1/dc/moved in flight */
	int		 nmoved;
	struct dc_moved_counters c;
	uint64_t	 routes[NTM_ROUTE_RELAY + 1];	/* directions made, by route kind */
};

/* ---- the tunnel table ---------------------------------------------------- */

static struct dc_tun *
tun_find(struct dc *dc, const uint8_t id[NTM_TUNNEL_ID_LEN], int64_t now)
{
	return dc_tun_find(dc->tunnels->tab, id, now);
}

/* Remembers (or refreshes) a tunnel; the oldest goes when the table is full. */
static void
tun_store(struct dc *dc, const uint8_t id[NTM_TUNNEL_ID_LEN], const uint8_t key[NTM_KEY_LEN],
    const char *a, const char *b, int kind, int family, int64_t now)
{
	struct dc_tun *t;

	if (dc_tun_store(dc->tunnels->tab, id, key, a, b, kind, now) < 0)
		log_warnx("tunnel table: out of memory; this tunnel cannot be recreated");
	else if ((t = dc_tun_find(dc->tunnels->tab, id, now)) != NULL)
		t->family = family;
}

/* ---- locations as JSON ----------------------------------------------------- */

static int
family_num(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? 6 : 4;
}

static json_t *
location_json(const struct ntm_location *l, int64_t last_seen)
{
	struct ntm_m_location m = { .has = ~UINT32_C(0), .natted = l->natted,
		.family = family_num(&l->reflexive), .last_seen = last_seen, .nat = l->nat };
	char a[64], r[64];
	json_t *j = NULL;

	if ((m.locals = json_array()) == NULL)
		return NULL;
	for (int i = 0; i < l->nlocals; i++)
		json_array_append_new(m.locals, json_string(ntm_sa_str(
		    (const struct sockaddr *)&l->locals[i], a, sizeof(a))));
	m.reflexive = ntm_sa_str((const struct sockaddr *)&l->reflexive, r, sizeof(r));
	if (ntm_msg_location_encode(&m, &j, NULL) < 0)
		j = NULL;
	json_decref(m.locals);
	return j;
}

/* Parses what location_json wrote; fills msg on error. */
static int
location_parse(json_t *obj, struct ntm_location *l, char *msg, size_t cap)
{
	struct ntm_m_location m;
	struct ntm_jerr jerr;
	json_t *v;
	socklen_t len;
	size_t i;

	memset(l, 0, sizeof(*l));
	if (ntm_msg_location_decode(obj, &m, &jerr) < 0) {
		snprintf(msg, cap, "location: %s", jerr.message);
		return -1;
	}
	if (ntm_sa_parse(&l->reflexive, &len, m.reflexive) < 0 ||
	    family_num(&l->reflexive) != m.family) {
		snprintf(msg, cap, "location: bad reflexive address '%s'", m.reflexive);
		return -1;
	}
	if (json_array_size(m.locals) > NTM_REG_ADDRS) {
		snprintf(msg, cap, "location: more than %d locals", NTM_REG_ADDRS);
		return -1;
	}
	json_array_foreach(m.locals, i, v) {
		if (!json_is_string(v) ||
		    ntm_sa_parse(&l->locals[l->nlocals], &len, json_string_value(v)) < 0) {
			snprintf(msg, cap, "location: bad local address");
			return -1;
		}
		l->nlocals++;
	}
	l->natted = m.natted;
	/* a DC from before the NAT kind sends none: unknown, so no punching */
	if (ntm_jmsg_has(&ntm_msg_location, &m, "nat")) {
		if (m.nat < NTM_NAT_UNKNOWN || m.nat > NTM_NAT_PER_DEST) {
			snprintf(msg, cap, "location: bad nat %lld", (long long)m.nat);
			return -1;
		}
		l->nat = (int)m.nat;
	}
	return 0;
}

/* Where the end at l can be tried for hole punching, for a peer of family:
 * its reflexive address, then its local addresses of that family. */
static json_t *
punch_cands(const struct ntm_location *l)
{
	struct sockaddr_storage x;
	json_t *a;
	char b[64];
	int fam = l->reflexive.ss_family;

	if ((a = json_array()) == NULL)
		return NULL;
	json_array_append_new(a, json_string(ntm_sa_str((const struct sockaddr *)&l->reflexive,
	    b, sizeof(b))));
	for (int i = 0; i < l->nlocals && json_array_size(a) < 1 + NTM_REG_ADDRS; i++) {
		x = l->locals[i];
		ntm_sa_unmap(&x, NULL);
		if (x.ss_family != fam || ntm_sa_equal((const struct sockaddr *)&x,
		    (const struct sockaddr *)&l->reflexive))
			continue;
		if (x.ss_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(
		    &((struct sockaddr_in6 *)&x)->sin6_addr))
			continue;
		json_array_append_new(a, json_string(ntm_sa_str((const struct sockaddr *)&x,
		    b, sizeof(b))));
	}
	return a;
}

/* ---- directions ------------------------------------------------------------ */

struct relay_part {
	char	ticket[NTM_B64_LEN(NTM_TICKET_MAX)];
	char	key[NTM_B64_LEN(NTM_KEY_LEN)];
	char	addr[2][64];		/* by side */
	int	ok;
};

static json_t *
direction_json(const uint8_t tid[NTM_TUNNEL_ID_LEN], const uint8_t key[NTM_KEY_LEN],
    const char *peer, const char *vip4, const char *vip6, const struct ntm_route *r,
    int initiator, const char *endpoint, int64_t expires, const struct relay_part *rp,
    const char *peer_cert, const struct ntm_location *peerloc, const char *reason)
{
	char thex[2 * NTM_TUNNEL_ID_LEN + 1], kb64[NTM_B64_LEN(NTM_KEY_LEN)];
	struct ntm_m_direction m;
	json_t *d;
	int side = initiator ? 0 : 1;

	if (ntm_hex_encode(thex, sizeof(thex), tid, NTM_TUNNEL_ID_LEN) < 0 ||
	    ntm_b64_encode(kb64, sizeof(kb64), key, NTM_KEY_LEN) < 0)
		return NULL;
	m = (struct ntm_m_direction){ .tunnel_id = thex, .peer = peer, .peer_vip4 = vip4,
		.peer_vip6 = vip6, .route = ntm_route_kind_name(r->kind), .reason = reason,
		.role = initiator ? "initiator" : "responder", .endpoint = endpoint,
		.temporal_key = kb64, .expires = expires,
		.peer_cert = peer_cert && *peer_cert ? peer_cert : NULL };
	if (r->kind == NTM_ROUTE_RELAY) {
		struct ntm_m_relay rl = { .ticket = rp->ticket, .relay_key = rp->key,
			.addr = rp->addr[side], .side = side };

		if (ntm_msg_relay_encode(&rl, &m.relay, NULL) < 0)
			m.relay = NULL;
		if (m.relay == NULL) {
			ntm_wipe(kb64, sizeof(kb64));
			return NULL;
		}
		if (r->punch && (m.punch = punch_cands(peerloc)) == NULL) {
			json_decref(m.relay);
			ntm_wipe(kb64, sizeof(kb64));
			return NULL;
		}
	}
	if (ntm_msg_direction_encode(&m, &d, NULL) < 0)
		d = NULL;
	ntm_wipe(kb64, sizeof(kb64));
	json_decref(m.relay);
	json_decref(m.punch);
	return d;
}

/* The RS address of a family ("" if none is configured for it). */
static const char *
relay_addr(struct dc *dc, int family)
{
	const char *a = family == 6 ? dc->srv->conf.relay_addr6 : dc->srv->conf.relay_addr4;

	return a ? a : NULL;
}

/* Where the responder should expect the initiator (informational). */
static void
initiator_addr(const struct ntm_location *init, const struct ntm_route *r, char *buf,
    size_t cap)
{
	if (r->kind == NTM_ROUTE_LOCAL)
		for (int i = 0; i < init->nlocals; i++)
			if (init->locals[i].ss_family == r->endpoint.ss_family) {
				ntm_sa_str((const struct sockaddr *)&init->locals[i], buf, cap);
				return;
			}
	ntm_sa_str((const struct sockaddr *)&init->reflexive, buf, cap);
}

/*
 * Decides and builds both directions for t (requester = me). On error fills
 * status/code/msg and returns -1.
 */
static int
build(struct dc_treq *t, json_t **mine, json_t **theirs, int *status, const char **code,
    char *msg, size_t cap)
{
	struct dc *dc = t->dc;
	struct srv *s = dc->srv;
	struct ntm_route r;
	struct relay_part rp;
	uint8_t ticket[NTM_TICKET_MAX], rkey[NTM_KEY_LEN], acct[NTM_TICKET_ACCOUNT_LEN];
	char ep_me[64], ep_peer[64];
	int64_t now = now_unix(), expires = now + s->conf.direction_ttl_s;
	const struct ntm_location *myl, *pl;
	char why[96];
	int n, me_init, punch;

	*mine = *theirs = NULL;
	memset(&rp, 0, sizeof(rp));
	/* punch = 0: the ends never learn each other's addresses; and punching
	 * needs the relay as its fallback (two global ends go direct without). */
	punch = s->conf.punch && s->conf.has_relay_pk && s->conf.relay_name &&
	    relay_addr(dc, family_num(&t->myloc.reflexive)) &&
	    relay_addr(dc, family_num(&t->peerloc.reflexive));
	if (ntm_route_decide_dual(&t->myloc, t->has_myalt ? &t->myalt : NULL, &t->peerloc,
	    t->has_peeralt ? &t->peeralt : NULL, punch, &r) < 0) {
		*status = 500, *code = "internal";
		snprintf(msg, cap, "cannot decide a route from these locations");
		return -1;
	}
	me_init = r.requester_initiates;
	t->kind = r.kind;
	t->family = r.kind == NTM_ROUTE_RELAY ? 0 : r.family;
	/* The locations of the family the route was decided in. */
	myl = r.a_loc ? &t->myalt : &t->myloc;
	pl = r.b_loc ? &t->peeralt : &t->peerloc;
	if (r.kind == NTM_ROUTE_RELAY) {
		const char *a0 = relay_addr(dc, family_num(&t->myloc.reflexive));
		const char *a1 = relay_addr(dc, family_num(&t->peerloc.reflexive));

		if (!s->conf.has_relay_pk || !s->conf.relay_name || !a0 || !a1) {
			*status = 503, *code = "no_relay";
			snprintf(msg, cap, "the route needs a relay (%s) and this DC has no "
			    "relay for %s", r.reason, !a0 || !a1 ? "that address family" : "it");
			return -1;
		}
		ntm_random(rkey, sizeof(rkey));
		/* A version 2 ticket: the RS counts the requester's account's
		 * sessions (account_sessions), whatever address it binds from. */
		if ((n = ntm_ticket_account(acct, t->user, s->sk)) == 0)
			n = ntm_ticket_make(ticket, sizeof(ticket), t->tid, now + DC_TUNNEL_TTL_S,
			    s->conf.relay_name, s->conf.relay_pk, rkey, acct, &s->cert, s->sk);
		if (n < 0 || ntm_b64_encode(rp.ticket, sizeof(rp.ticket), ticket, (size_t)n) < 0 ||
		    ntm_b64_encode(rp.key, sizeof(rp.key), rkey, sizeof(rkey)) < 0) {
			ntm_wipe(rkey, sizeof(rkey));
			*status = 500, *code = "internal";
			snprintf(msg, cap, "cannot make the relay ticket: %s", ntm_strerror(n));
			return -1;
		}
		ntm_wipe(rkey, sizeof(rkey));
		/* The requester initiates a relayed route: side 0. */
		snprintf(rp.addr[0], sizeof(rp.addr[0]), "%s", a0);
		snprintf(rp.addr[1], sizeof(rp.addr[1]), "%s", a1);
		snprintf(ep_me, sizeof(ep_me), "%s", a0);
		snprintf(ep_peer, sizeof(ep_peer), "%s", a1);
	} else if (me_init) {
		ntm_sa_str((struct sockaddr *)&r.endpoint, ep_me, sizeof(ep_me));
		initiator_addr(myl, &r, ep_peer, sizeof(ep_peer));
	} else {
		ntm_sa_str((struct sockaddr *)&r.endpoint, ep_peer, sizeof(ep_peer));
		initiator_addr(pl, &r, ep_me, sizeof(ep_me));
	}
	/* Each end reads the reason from its side. */
	ntm_route_reason(&r, 0, why, sizeof(why));
	*mine = direction_json(t->tid, t->key, t->peer, t->peer4, t->peer6, &r, me_init,
	    ep_me, expires, &rp, t->peercert, pl, why);
	ntm_route_reason(&r, 1, why, sizeof(why));
	*theirs = direction_json(t->tid, t->key, t->me, t->me4, t->me6, &r, !me_init,
	    ep_peer, expires, &rp, t->mycert, myl, why);
	if (*mine == NULL || *theirs == NULL) {
		json_decref(*mine);
		json_decref(*theirs);
		*mine = *theirs = NULL;
		*status = 500, *code = "internal";
		snprintf(msg, cap, "out of memory");
		return -1;
	}
	dc->tunnels->routes[r.kind]++;
	ntm_route_reason(&r, 0, why, sizeof(why));
	log_info("tunnel %s -> %s: %s (%s), %s initiates%s", t->me, t->peer,
	    ntm_route_kind_name(r.kind), why, me_init ? t->me : t->peer,
	    t->recreate ? ", recreated" : "");
	return 0;
}

/* ---- the pending request list -------------------------------------------- */

static void
treq_free(struct dc_treq *t)
{
	if (t == NULL)
		return;
	if (t->prevp) {
		if (t->next)
			t->next->prevp = t->prevp;
		*t->prevp = t->next;
	}
	json_decref(t->mine);
	ntm_wipe(t, sizeof(*t));
	free(t);
}

static void
treq_fail(struct dc_treq *t, int status, const char *code, const char *fmt, ...)
    NTM_PRINTF(4, 5);
static void
treq_fail(struct dc_treq *t, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("tunnel %s -> %s: %s: %s", t->me, t->peer, code, msg);
	ntm_reply_error(t->req, status, code, NULL, "%s", msg);
	treq_free(t);
}

static void
treq_link(struct dc_treq *t)
{
	struct dc_tunnels *tt = t->dc->tunnels;

	t->next = tt->pending;
	if (t->next)
		t->next->prevp = &t->next;
	t->prevp = &tt->pending;
	tt->pending = t;
}

static void
mreq_free(struct dc_mreq *m)
{
	if (m == NULL)
		return;
	if (m->prevp) {
		if (m->next)
			m->next->prevp = m->prevp;
		*m->prevp = m->next;
		m->dc->tunnels->nmoved--;
	}
	free(m);
}

void
dc_tunnel_cancel(struct dc *dc)
{
	if (dc->tunnels == NULL)
		return;
	while (dc->tunnels->pending)
		treq_fail(dc->tunnels->pending, 502, "upstream_unavailable",
		    "the DC is shutting down before the peer's DC answered");
	/* httpc and discovery are gone: their callbacks will not run. */
	while (dc->tunnels->moved)
		mreq_free(dc->tunnels->moved);
	dc_tuntab_free(dc->tunnels->tab);
	ntm_wipe(dc->tunnels, sizeof(*dc->tunnels));
	free(dc->tunnels);
	dc->tunnels = NULL;
}

/* ---- POST /v1/tunnel ------------------------------------------------------- */

/* Why fqdn (ours) is offline; info NULL: it has no session here. */
static void
offline_why(const struct dc *dc, const char *fqdn, const struct dc_sess_info *info,
    char *msg, size_t len)
{
	if (info && info->stopped)
		snprintf(msg, len, "%s is offline: its agent stopped (ntm down)", fqdn);
	else
		snprintf(msg, len, "%s is offline: it has not registered within %ld s "
		    "(is its agent running?)", fqdn,
		    DC_ONLINE_FACTOR * dc->srv->conf.keepalive_s);
}

static void remote_start(struct dc_treq *t);

/* The peer is ours: decide, queue its direction, answer. */
static void
local_finish(struct dc_treq *t, int64_t peer_id)
{
	struct dc *dc = t->dc;
	struct dc_sess *ps = dc_sess_by_client(dc, peer_id);
	struct dc_sess_info pi;
	json_t *mine, *theirs;
	const char *code;
	char msg[512];
	int status;

	if (ps == NULL || (dc_sess_info(dc, ps, &pi), !pi.online)) {
		offline_why(dc, t->peer, ps ? &pi : NULL, msg, sizeof(msg));
		treq_fail(t, 404, "peer_offline", "%s", msg);
		return;
	}
	t->peerloc = pi.loc;
	t->peeralt = pi.alt;
	t->has_peeralt = pi.has_alt;
	if (dc_db_client_cert(dc->db, peer_id, t->peercert, sizeof(t->peercert)) < 0)
		t->peercert[0] = '\0';
	if (build(t, &mine, &theirs, &status, &code, msg, sizeof(msg)) < 0) {
		treq_fail(t, status, code, "%s", msg);
		return;
	}
	tun_store(dc, t->tid, t->key, t->me, t->peer, t->kind, t->family, now_unix());
	(void)dc_sess_queue(dc, ps, theirs);
	ntm_reply_json(t->req, 200, mine);
	treq_free(t);
}

static void
on_tunnel(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_m_tunnel m;
	const char *peer, *tunnel_id, *domain;
	struct ntm_jerr jerr;
	struct ntm_token tok;
	struct dc_client cl, pc;
	struct dc_session sess;
	struct dc_sess *ms;
	struct dc_sess_info mi;
	struct dc_treq *t;
	struct dc_tun *tun;
	int e;

	if (ntm_msg_tunnel_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	peer = m.peer;
	tunnel_id = m.tunnel_id;
	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	ntm_wipe(&sess, sizeof(sess));
	if (!ntm_valid_dnsname(peer) || (domain = fqdn_domain(peer)) == NULL) {
		ntm_reply_error(req, 400, "bad_field", "peer",
		    "field 'peer': '%s' is not a client FQDN (name.domain)", peer);
		return;
	}
	if (strcmp(peer, cl.fqdn) == 0) {
		ntm_reply_error(req, 400, "bad_field", "peer",
		    "field 'peer': %s is this device itself", peer);
		return;
	}
	if ((ms = dc_sess_by_client(dc, cl.id)) == NULL ||
	    (dc_sess_info(dc, ms, &mi), !mi.online)) {
		ntm_reply_error(req, 409, "not_registered", NULL, "%s has not registered "
		    "over UDP within %ld s (is 'ntm up' running?)", cl.fqdn,
		    DC_ONLINE_FACTOR * dc->srv->conf.keepalive_s);
		return;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	t->dc = dc;
	t->req = req;
	snprintf(t->me, sizeof(t->me), "%s", cl.fqdn);
	snprintf(t->user, sizeof(t->user), "%s", cl.user);
	snprintf(t->me4, sizeof(t->me4), "%s", cl.vip4);
	snprintf(t->me6, sizeof(t->me6), "%s", cl.vip6);
	t->myloc = mi.loc;
	t->myalt = mi.alt;
	t->has_myalt = mi.has_alt;
	if (dc_db_client_cert(dc->db, cl.id, t->mycert, sizeof(t->mycert)) < 0)
		t->mycert[0] = '\0';
	snprintf(t->peer, sizeof(t->peer), "%s", peer);
	t->domain = fqdn_domain(t->peer);
	if (tunnel_id) {
		if (ntm_hex_decode_exact(t->tid, sizeof(t->tid), tunnel_id) < 0) {
			ntm_reply_error(req, 400, "bad_field", "tunnel_id",
			    "field 'tunnel_id': not 32 hex digits");
			treq_free(t);
			return;
		}
		tun = tun_find(dc, t->tid, now_unix());
		if (tun == NULL || !((strcmp(tun->a, t->me) == 0 && strcmp(tun->b, t->peer) == 0) ||
		    (strcmp(tun->b, t->me) == 0 && strcmp(tun->a, t->peer) == 0))) {
			treq_fail(t, 404, "unknown_tunnel", "no tunnel %s between %s and %s "
			    "here (ask without tunnel_id for a new one)", tunnel_id, t->me,
			    t->peer);
			return;
		}
		memcpy(t->key, tun->key, sizeof(t->key));
		t->recreate = 1;
	} else {
		ntm_random(t->tid, sizeof(t->tid));
		ntm_random(t->key, sizeof(t->key));
	}

	if (dc_domain_is_local(dc, t->domain)) {
		e = dc_db_client_by_fqdn(dc->db, t->peer, &pc);
		if (e == NTM_ERR_NOTFOUND) {
			treq_fail(t, 404, "unknown_peer", "no device %s at %s: check the "
			    "name", t->peer, dc->srv->conf.name);
			return;
		}
		if (e < 0) {
			treq_fail(t, 500, "internal", "storage failure");
			return;
		}
		snprintf(t->peer4, sizeof(t->peer4), "%s", pc.vip4);
		snprintf(t->peer6, sizeof(t->peer6), "%s", pc.vip6);
		local_finish(t, pc.id);
		return;
	}
	remote_start(t);
}

/* ---- the peer at another DC ---------------------------------------------- */

static int locate_body(struct peerdc *p, json_t **body, void *arg);
static void on_locate_done(struct peerdc *p, enum peerdc_step step, int err,
    const struct ntm_http_result *res, void *arg);
static void on_located(const struct ntm_http_result *res, struct dc_treq *t);
static void on_delivered(const struct ntm_http_result *res, void *arg);

static void
remote_start(struct dc_treq *t)
{
	int e;

	if (t->prevp == NULL)		/* not when asking again (on_located) */
		treq_link(t);
	t->state = T_DISCOVER;
	if (t->locate_v == 0)
		t->locate_v = NTM_LOCATE_V_ALSO;
	if ((e = peerdc_post(&t->pdc, t->dc->disc, t->dc->httpc, t->domain,
	    "/v1/dc/locate",
	    t->dc->srv->conf.as_timeout_ms, locate_body, on_locate_done, t)) < 0) {
		const char *code;
		char msg[256];
		int st = disc_status(e, t->domain, &code, msg, sizeof(msg));

		treq_fail(t, st, code, "%s", msg);
	}
}

/* Passes a peer DC's 404 unknown_peer / peer_offline on; else 502 naming
 * the domain (not the peer DC's URL, nor what it said about itself). */
static void
remote_error(struct dc_treq *t, const struct ntm_http_result *res, const char *what)
{
	const char *code = NULL, *message = NULL;
	struct ntm_m_error e;

	if (res->err < 0) {
		log_info("tunnel %s -> %s: DC at %s (%s): %s", t->me, t->peer, t->url, what,
		    res->errmsg[0] ? res->errmsg : ntm_strerror(res->err));
		if (res->err == NTM_ERR_IDENTITY)	/* peerdc_checked says why */
			treq_fail(t, 502, "upstream_unavailable", "%s", res->errmsg);
		else
			treq_fail(t, 502, "upstream_unavailable", "the DC of %s was found "
			    "but did not answer (%s)", t->domain, ntm_strerror(res->err));
		return;
	}
	if (ntm_error_read(res->json, &e) == 0) {
		code = e.code;
		message = e.message;
	}
	if (res->status == 404 && code &&
	    (strcmp(code, "unknown_peer") == 0 || strcmp(code, "peer_offline") == 0)) {
		treq_fail(t, 404, code, "%s", message ? message : code);
		return;
	}
	treq_fail(t, 502, "upstream_unavailable", "the DC of %s failed the %s request "
	    "(HTTP %ld %s)", t->domain, what, res->status, code ? code : "without a code");
}

static int
locate_body(struct peerdc *p, json_t **body, void *arg)
{
	struct dc_treq *t = arg;
	/* Version 2: the answer may carry the peer's second family
	 * (location_also); a DC from before it refuses it (400 bad_version)
	 * and is asked again with version 1 (on_located). */
	struct ntm_m_dc_locate m = { .version = t->locate_v, .fqdn = t->peer,
		.from = t->me };

	snprintf(t->url, sizeof(t->url), "%s", p->url);
	t->state = T_LOCATE;
	return ntm_msg_dc_locate_encode(&m, body, NULL);
}

static void
on_locate_done(struct peerdc *p, enum peerdc_step step, int err,
    const struct ntm_http_result *res, void *arg)
{
	struct dc_treq *t = arg;
	const char *code;
	char msg[256];
	int st;

	switch (step) {
	case PEERDC_LOOKUP:
		st = disc_status(err, t->domain, &code, msg, sizeof(msg));
		treq_fail(t, st, code, "%s", msg);
		break;
	case PEERDC_START:
		treq_fail(t, 502, "upstream_unavailable", "DC %s: cannot start the request: %s",
		    t->domain, ntm_strerror(err));
		break;
	case PEERDC_ANSWER:
		on_located(res, t);
		break;
	}
}

static void
on_located(const struct ntm_http_result *res, struct dc_treq *t)
{
	struct dc *dc = t->dc;
	struct ntm_m_dc_located lo;
	struct ntm_m_dc_direction dm;
	struct ntm_m_error err;
	json_t *body = NULL, *theirs = NULL;
	struct ntm_jerr jerr;
	const char *code;
	char msg[512], u[700];
	int status, e;

	if (res->err == 0 && res->status == 400 && t->locate_v > NTM_PROTOCOL_VERSION &&
	    ntm_error_read(res->json, &err) == 0 && err.code &&
	    strcmp(err.code, "bad_version") == 0) {
		log_info("tunnel %s -> %s: the DC of %s takes only version %d locates",
		    t->me, t->peer, t->domain, NTM_PROTOCOL_VERSION);
		t->locate_v = NTM_PROTOCOL_VERSION;
		remote_start(t);
		return;
	}
	if (res->err < 0 || res->status != 200) {
		remote_error(t, res, "locate");
		return;
	}
	if (res->json == NULL || ntm_msg_dc_located_decode(res->json, &lo, &jerr) < 0) {
		treq_fail(t, 502, "upstream_unavailable", "DC %s: malformed locate answer%s%s",
		    t->domain, res->json ? ": " : "", res->json ? jerr.message : "");
		return;
	}
	if (strcmp(lo.fqdn, t->peer) != 0) {
		treq_fail(t, 502, "upstream_unavailable", "the DC of %s answered for "
		    "another device", t->domain);
		return;
	}
	if (!lo.online) {
		treq_fail(t, 404, "peer_offline", "%s is offline (says the DC of %s)",
		    t->peer, t->domain);
		return;
	}
	if (location_parse(lo.location, &t->peerloc, msg, sizeof(msg)) < 0 ||
	    (lo.location_also && location_parse(lo.location_also, &t->peeralt, msg,
	    sizeof(msg)) < 0)) {
		treq_fail(t, 502, "upstream_unavailable", "DC %s: %s", t->domain, msg);
		return;
	}
	if (lo.location_also && family_num(&t->peeralt.reflexive) ==
	    family_num(&t->peerloc.reflexive)) {
		treq_fail(t, 502, "upstream_unavailable", "DC %s: location_also: of the "
		    "location's family", t->domain);
		return;
	}
	t->has_peeralt = lo.location_also != NULL;
	snprintf(t->peer4, sizeof(t->peer4), "%s", lo.vip4);
	snprintf(t->peer6, sizeof(t->peer6), "%s", lo.vip6);
	snprintf(t->peercert, sizeof(t->peercert), "%s", lo.device_cert ? lo.device_cert : "");
	if (build(t, &t->mine, &theirs, &status, &code, msg, sizeof(msg)) < 0) {
		treq_fail(t, status, code, "%s", msg);
		return;
	}
	snprintf(u, sizeof(u), "%s/v1/dc/direction", t->url);
	dm = (struct ntm_m_dc_direction){ .version = NTM_PROTOCOL_VERSION, .to = t->peer,
		.direction = theirs };
	t->state = T_DELIVER;
	if ((e = ntm_msg_dc_direction_encode(&dm, &body, NULL)) == 0)
		e = ntm_httpc_request_to(dc->httpc, "POST", u, t->domain, body, NULL,
		    dc->srv->conf.as_timeout_ms, on_delivered, t);
	json_decref(theirs);	/* body holds its own reference */
	if (body) {
		/* The temporal key is in there: wipe our copy's string. */
		json_t *k = json_object_get(json_object_get(body, "direction"), "temporal_key");

		if (json_is_string(k))
			ntm_wipe((char *)json_string_value(k), json_string_length(k));
		json_decref(body);
	}
	if (e < 0)
		treq_fail(t, 502, "upstream_unavailable", "DC %s: cannot start the request: %s",
		    t->domain, ntm_strerror(e));
}

static void
on_delivered(const struct ntm_http_result *res, void *arg)
{
	struct dc_treq *t = arg;
	struct ntm_http_result r;
	char u[sizeof(t->url) + 32];

	snprintf(u, sizeof(u), "%s/v1/dc/direction", t->url);
	if (peerdc_checked(res, t->domain, u, &r) < 0)
		res = &r;
	if (res->err < 0 || res->status != 200) {
		remote_error(t, res, "direction");
		return;
	}
	tun_store(t->dc, t->tid, t->key, t->me, t->peer, t->kind, t->family, now_unix());
	ntm_reply_json(t->req, 200, t->mine);
	t->mine = NULL;
	treq_free(t);
}

/* ---- GET /v1/directions ------------------------------------------------------ */

static void
on_directions(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_token tok;
	struct dc_client cl;
	struct dc_session sess;
	struct dc_sess *s;
	struct ntm_m_directions m = { 0 };
	json_t *arr, *j = NULL;

	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	ntm_wipe(&sess, sizeof(sess));
	s = dc_sess_by_client(dc, cl.id);
	arr = s ? dc_sess_take(dc, s) : json_array();
	if (arr == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	m.directions = arr;
	if (ntm_msg_directions_encode(&m, &j, NULL) < 0)
		j = NULL;
	json_decref(arr);
	ntm_reply_json(req, 200, j);
}

/* ---- the signed DC-to-DC endpoints ------------------------------------------ */

/* One of our clients by FQDN, online: its session, or NULL after replying 404. */
static struct dc_sess *
our_online_client(struct dc *dc, struct ntm_req *req, const char *fqdn,
    struct dc_client *cl, struct dc_sess_info *info)
{
	const char *domain = fqdn_domain(fqdn);
	struct dc_sess *s;
	int e;

	if (domain == NULL || !dc_domain_is_local(dc, domain) ||
	    (e = dc_db_client_by_fqdn(dc->db, fqdn, cl)) == NTM_ERR_NOTFOUND) {
		ntm_reply_error(req, 404, "unknown_peer", NULL, "no device %s at %s: check "
		    "the name", fqdn, dc->srv->conf.name);
		return NULL;
	}
	if (e < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return NULL;
	}
	if ((s = dc_sess_by_client(dc, cl->id)) == NULL ||
	    (dc_sess_info(dc, s, info), !info->online)) {
		char msg[NTM_NAME_MAX + 128];

		offline_why(dc, fqdn, s ? info : NULL, msg, sizeof(msg));
		ntm_reply_error(req, 404, "peer_offline", NULL, "%s", msg);
		return NULL;
	}
	return s;
}

static void
on_dc_locate(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	const struct ntm_cert *c;
	struct ntm_m_dc_locate m;
	struct ntm_m_dc_located lo;
	const char *fqdn, *from, *fd;
	json_t *body;
	struct ntm_jerr jerr;
	struct dc_client cl;
	struct dc_sess_info info;
	char cert[NTM_B64_LEN(NTM_DCERT_MAX)];

	c = ntm_req_cert(req);	/* a DC: the route says so */
	if (ntm_msg_dc_locate_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	fqdn = m.fqdn;
	from = m.from;
	if ((fd = fqdn_domain(from)) == NULL || strcasecmp(fd, c->name) != 0) {
		ntm_reply_error(req, 400, "bad_field", "from",
		    "field 'from': %s is not a client of the calling DC %s", from, c->name);
		return;
	}
	if (our_online_client(dc, req, fqdn, &cl, &info) == NULL)
		return;
	log_info("locate %s for %s (DC %s)", fqdn, from, c->name);
	if (dc_db_client_cert(dc->db, cl.id, cert, sizeof(cert)) < 0)
		cert[0] = '\0';
	lo = (struct ntm_m_dc_located){ .fqdn = cl.fqdn, .vip4 = cl.vip4, .vip6 = cl.vip6,
		.online = 1, .location = location_json(&info.loc, info.last_seen),
		.device_cert = cert[0] ? cert : NULL };
	/* Its second family, to a DC that reads it (an older one refuses an
	 * unknown field): one that asked with version 2, which the request's
	 * signature covers (§2.2). */
	if (info.has_alt && m.version >= NTM_LOCATE_V_ALSO)
		lo.location_also = location_json(&info.alt, info.last_seen);
	if (ntm_msg_dc_located_encode(&lo, &body, NULL) < 0) {
		json_decref(lo.location_also);
		json_decref(lo.location);
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	json_decref(lo.location);	/* body holds it */
	json_decref(lo.location_also);
	ntm_reply_json(req, 200, body);
}

/* Strict check of a direction made by another DC. */
static int
direction_check(json_t *d, const char *caller, uint8_t tid[NTM_TUNNEL_ID_LEN],
    uint8_t key[NTM_KEY_LEN], const char **peer_out, struct ntm_jerr *je)
{
	struct ntm_m_direction m;
	struct ntm_m_relay rl;
	const char *tunnel_id, *peer, *vip4, *vip6, *route, *role, *endpoint, *tk, *pd;
	json_t *relay;
	struct sockaddr_storage ss;
	socklen_t len;
	uint8_t b4[4], b6[16], kbuf[NTM_KEY_LEN], tmp[NTM_TICKET_MAX];
	struct sockaddr_storage cands[1 + NTM_REG_ADDRS];
	const char *bad = NULL;

	/* The values are checked below, each refusal naming "direction". */
	if (ntm_msg_direction_unpack(d, &m, je) < 0)
		return -1;
	if ((relay = m.relay) != NULL && ntm_msg_relay_unpack(relay, &rl, je) < 0)
		return -1;
	tunnel_id = m.tunnel_id;
	peer = m.peer;
	vip4 = m.peer_vip4;
	vip6 = m.peer_vip6;
	route = m.route;
	role = m.role;
	endpoint = m.endpoint;
	tk = m.temporal_key;
	if (ntm_hex_decode_exact(tid, NTM_TUNNEL_ID_LEN, tunnel_id) < 0)
		bad = "tunnel_id";
	else if (!ntm_valid_dnsname(peer) || (pd = fqdn_domain(peer)) == NULL ||
	    strcasecmp(pd, caller) != 0)
		bad = "peer";
	else if (inet_pton(AF_INET, vip4, b4) != 1)
		bad = "peer_vip4";
	else if (inet_pton(AF_INET6, vip6, b6) != 1)
		bad = "peer_vip6";
	else if (strcmp(route, "direct") && strcmp(route, "local") && strcmp(route, "relay"))
		bad = "route";
	else if (strcmp(role, "initiator") && strcmp(role, "responder"))
		bad = "role";
	else if (ntm_sa_parse(&ss, &len, endpoint) < 0)
		bad = "endpoint";
	else if (ntm_b64_decode_exact(key, NTM_KEY_LEN, tk) < 0)
		bad = "temporal_key";
	else if ((strcmp(route, "relay") == 0) != (relay != NULL))
		bad = "relay";
	else if (relay && (ntm_b64_decode(tmp, sizeof(tmp), rl.ticket) < 1 ||
	    ntm_b64_decode_exact(kbuf, sizeof(kbuf), rl.relay_key) < 0 ||
	    ntm_sa_parse(&ss, &len, rl.addr) < 0 || (rl.side != 0 && rl.side != 1)))
		bad = "relay";
	else if (m.punch && (relay == NULL ||
	    ntm_msg_punch_cands(m.punch, cands, 1 + NTM_REG_ADDRS) < 1))
		bad = "punch";
	ntm_wipe(kbuf, sizeof(kbuf));
	if (bad) {
		snprintf(je->code, sizeof(je->code), "bad_field");
		snprintf(je->field, sizeof(je->field), "direction");
		snprintf(je->message, sizeof(je->message), "field 'direction': bad '%s'", bad);
		return -1;
	}
	*peer_out = peer;
	return 0;
}

static void
on_dc_direction(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	const struct ntm_cert *c;
	struct ntm_m_dc_direction m;
	const char *to, *peer = NULL, *route;
	json_t *dir;
	struct ntm_jerr jerr;
	struct dc_client cl;
	struct dc_sess_info info;
	struct dc_sess *s;
	struct dc_tun *tun;
	uint8_t tid[NTM_TUNNEL_ID_LEN], key[NTM_KEY_LEN];
	int64_t now = now_unix();
	int n, fam;

	c = ntm_req_cert(req);	/* a DC: the route says so */
	if (ntm_msg_dc_direction_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	to = m.to;
	dir = m.direction;
	if (direction_check(dir, c->name, tid, key, &peer, &jerr) < 0) {
		ntm_wipe(key, sizeof(key));
		ntm_reply_jerr(req, &jerr);
		return;
	}
	if ((s = our_online_client(dc, req, to, &cl, &info)) == NULL) {
		ntm_wipe(key, sizeof(key));
		return;
	}
	/* A known tunnel id keeps its ends: another pair cannot take it over. */
	if ((tun = tun_find(dc, tid, now)) != NULL &&
	    !((strcmp(tun->a, peer) == 0 && strcmp(tun->b, cl.fqdn) == 0) ||
	    (strcmp(tun->b, peer) == 0 && strcmp(tun->a, cl.fqdn) == 0))) {
		ntm_wipe(key, sizeof(key));
		ntm_reply_error(req, 409, "exists", "direction",
		    "tunnel id already used by other ends");
		return;
	}
	route = json_string_value(json_object_get(dir, "route"));
	/* The family of a direct route: its endpoint's, either role. */
	{
		const char *ep = json_string_value(json_object_get(dir, "endpoint"));
		struct sockaddr_storage ss;
		socklen_t sl;

		fam = ep && ntm_sa_parse(&ss, &sl, ep) == 0 ? (ntm_sa_unmap(&ss, &sl),
		    family_num(&ss)) : 0;
	}
	tun_store(dc, tid, key, peer, cl.fqdn, strcmp(route, "direct") == 0 ? NTM_ROUTE_DIRECT :
	    strcmp(route, "local") == 0 ? NTM_ROUTE_LOCAL : NTM_ROUTE_RELAY, fam, now);
	ntm_wipe(key, sizeof(key));
	n = dc_sess_queue(dc, s, json_deep_copy(dir));
	if (n < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot queue the direction");
		return;
	}
	log_info("direction for %s from %s (DC %s): %s", cl.fqdn, peer, c->name,
	    json_string_value(json_object_get(dir, "route")));
	ntm_reply_json(req, 200, json_pack("{s:i}", "pending", n));
}

/* ---- mobility: MOVED ---------------------------------------------------------- */

static int moved_body(struct peerdc *p, json_t **body, void *arg);
static void on_moved_done(struct peerdc *p, enum peerdc_step step, int err,
    const struct ntm_http_result *res, void *arg);
static void on_moved_sent(const struct ntm_http_result *res, struct dc_mreq *m);

/* MOVED to our client peer (online, registered): 0 or NTM_ERR_*. */
static int
moved_local(struct dc *dc, const char *peer, const uint8_t tid[NTM_TUNNEL_ID_LEN],
    const struct sockaddr_storage *endpoint)
{
	struct dc_client pc;
	struct dc_sess *ps;
	struct dc_sess_info pi;
	int e;

	if ((e = dc_db_client_by_fqdn(dc->db, peer, &pc)) < 0)
		return e;
	if ((ps = dc_sess_by_client(dc, pc.id)) == NULL ||
	    (dc_sess_info(dc, ps, &pi), !pi.online))
		return NTM_ERR_NOTFOUND;
	return dc_sess_moved(dc, ps, tid, endpoint);
}

static void
tunnel_moved(struct dc *dc, const char *fqdn, const struct sockaddr_storage *endpoint)
{
	struct dc_tunnels *tt = dc->tunnels;
	struct dc_tun_end *cur = NULL;
	struct dc_tun *t;
	int64_t now = now_unix();
	char ep[64];

	if (tt == NULL)
		return;
	ntm_sa_str((const struct sockaddr *)endpoint, ep, sizeof(ep));
	for (t = dc_tun_next_of(tt->tab, fqdn, now, &cur); t;
	    t = dc_tun_next_of(tt->tab, fqdn, now, &cur)) {
		const char *peer, *domain;
		struct dc_mreq *m;
		int e;

		/* Only a direct route goes to the reflexive address: a local one
		 * uses a LAN address, a relayed one the RS. */
		if (t->kind != NTM_ROUTE_DIRECT)
			continue;
		/* A route over the device's other family keeps its address. */
		if (t->family != 0 && t->family != family_num(endpoint))
			continue;
		if (strcmp(t->a, fqdn) == 0)
			peer = t->b;
		else if (strcmp(t->b, fqdn) == 0)
			peer = t->a;
		else
			continue;
		if ((domain = fqdn_domain(peer)) == NULL)
			continue;
		if (dc_domain_is_local(dc, domain)) {
			if ((e = moved_local(dc, peer, t->id, endpoint)) < 0) {
				tt->c.failed++;
				log_debug("moved %s: cannot tell %s: %s", fqdn, peer,
				    ntm_strerror(e));
			} else {
				tt->c.local++;
				log_info("moved %s: told %s (now at %s)", fqdn, peer, ep);
			}
			continue;
		}
		if (tt->nmoved >= DC_MOVED_INFLIGHT) {
			tt->c.limited++;
			log_info("moved %s: %d notices in flight, not telling %s (its "
			    "tunnel will be recreated)", fqdn, tt->nmoved, peer);
			continue;
		}
		if ((m = calloc(1, sizeof(*m))) == NULL) {
			tt->c.failed++;
			continue;
		}
		m->dc = dc;
		snprintf(m->to, sizeof(m->to), "%s", peer);
		snprintf(m->from, sizeof(m->from), "%s", fqdn);
		snprintf(m->endpoint, sizeof(m->endpoint), "%s", ep);
		m->domain = fqdn_domain(m->to);
		if (ntm_hex_encode(m->tid, sizeof(m->tid), t->id, NTM_TUNNEL_ID_LEN) < 0) {
			free(m);
			tt->c.failed++;
			continue;
		}
		m->next = tt->moved;
		if (m->next)
			m->next->prevp = &m->next;
		m->prevp = &tt->moved;
		tt->moved = m;
		tt->nmoved++;
		if ((e = peerdc_post(&m->peer, dc->disc, dc->httpc, m->domain, "/v1/dc/moved",
		    dc->srv->conf.as_timeout_ms, moved_body, on_moved_done, m)) < 0) {
			tt->c.failed++;
			log_info("moved %s: cannot look up the DC of %s: %s", fqdn, m->domain,
			    ntm_strerror(e));
			mreq_free(m);
		}
	}
}

const struct dc_hooks dc_tunnel_hooks = {
	.moved	= tunnel_moved,
};

static int
moved_body(struct peerdc *p, json_t **body, void *arg)
{
	struct dc_mreq *m = arg;
	struct ntm_m_dc_moved mm = { .version = NTM_PROTOCOL_VERSION, .to = m->to,
		.from = m->from, .tunnel_id = m->tid, .endpoint = m->endpoint };

	return ntm_msg_dc_moved_encode(&mm, body, NULL);
}

static void
on_moved_done(struct peerdc *p, enum peerdc_step step, int err,
    const struct ntm_http_result *res, void *arg)
{
	struct dc_mreq *m = arg;
	struct dc *dc = m->dc;

	switch (step) {
	case PEERDC_LOOKUP:
		dc->tunnels->c.failed++;
		log_info("moved %s: cannot find the DC of %s: %s", m->from, m->domain,
		    ntm_strerror(err));
		mreq_free(m);
		break;
	case PEERDC_START:
		dc->tunnels->c.failed++;
		log_info("moved %s: DC %s: cannot start the request: %s", m->from, m->domain,
		    ntm_strerror(err));
		mreq_free(m);
		break;
	case PEERDC_ANSWER:
		on_moved_sent(res, m);
		break;
	}
}

static void
on_moved_sent(const struct ntm_http_result *res, struct dc_mreq *m)
{
	struct dc *dc = m->dc;
	const char *code = NULL;

	if (res->err < 0 || res->status != 200) {
		code = ntm_error_code(res->json);
		dc->tunnels->c.failed++;
		if (res->err < 0)
			log_info("moved %s: DC %s did not tell %s: %s", m->from, m->domain,
			    m->to, res->errmsg[0] ? res->errmsg : ntm_strerror(res->err));
		else
			log_info("moved %s: DC %s did not tell %s: it answered %ld %s",
			    m->from, m->domain, m->to, res->status, code ? code : "(no code)");
	} else {
		dc->tunnels->c.forwarded++;
		log_info("moved %s: DC %s told %s (now at %s)", m->from, m->domain, m->to,
		    m->endpoint);
	}
	mreq_free(m);
}

static void
on_dc_moved(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	const struct ntm_cert *c;
	struct ntm_m_dc_moved m;
	const char *to, *from, *tunnel_id, *endpoint, *fd;
	struct ntm_jerr jerr;
	struct dc_client cl;
	struct dc_sess_info info;
	struct dc_sess *s;
	struct dc_tun *tun;
	struct sockaddr_storage ep;
	socklen_t len;
	uint8_t tid[NTM_TUNNEL_ID_LEN];
	int e;

	c = ntm_req_cert(req);	/* a DC: the route says so */
	if (ntm_msg_dc_moved_unpack(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	to = m.to;
	from = m.from;
	tunnel_id = m.tunnel_id;
	endpoint = m.endpoint;
	if (!ntm_valid_dnsname(from) || (fd = fqdn_domain(from)) == NULL ||
	    strcasecmp(fd, c->name) != 0) {
		ntm_reply_error(req, 400, "bad_field", "from",
		    "field 'from': %s is not a client of the calling DC %s", from, c->name);
		return;
	}
	/* Checked here, after the caller's right to speak for from. */
	if (ntm_msg_dc_moved_check(&m, &jerr) < 0 ||
	    ntm_hex_decode_exact(tid, sizeof(tid), tunnel_id) < 0 ||
	    ntm_sa_parse(&ep, &len, endpoint) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	if ((s = our_online_client(dc, req, to, &cl, &info)) == NULL)
		return;
	if ((tun = tun_find(dc, tid, now_unix())) == NULL ||
	    !((strcmp(tun->a, from) == 0 && strcmp(tun->b, cl.fqdn) == 0) ||
	    (strcmp(tun->b, from) == 0 && strcmp(tun->a, cl.fqdn) == 0))) {
		ntm_reply_error(req, 404, "unknown_tunnel", "tunnel_id",
		    "no tunnel %s between %s and %s here", tunnel_id, from, cl.fqdn);
		return;
	}
	if (tun->kind != NTM_ROUTE_DIRECT) {
		ntm_reply_error(req, 409, "not_direct", "tunnel_id",
		    "tunnel %s is not on a direct route", tunnel_id);
		return;
	}
	if ((e = dc_sess_moved(dc, s, tid, &ep)) < 0) {
		dc->tunnels->c.failed++;
		ntm_reply_error(req, 502, "send_failed", NULL, "cannot send MOVED to %s: %s",
		    cl.fqdn, ntm_strerror(e));
		return;
	}
	dc->tunnels->c.received++;
	log_info("moved %s (DC %s): told %s (now at %s)", from, c->name, cl.fqdn, endpoint);
	ntm_reply_json(req, 200, json_pack("{s:b}", "sent", 1));
}

json_t *
dc_tunnel_stats(struct dc *dc)
{
	const struct dc_moved_counters *c;

	if (dc->tunnels == NULL)
		return json_object();
	c = &dc->tunnels->c;
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:i, s:{s:I, s:I, s:I}}",
	    "local", (json_int_t)c->local, "forwarded", (json_int_t)c->forwarded,
	    "received", (json_int_t)c->received, "failed", (json_int_t)c->failed,
	    "limited", (json_int_t)c->limited, "in_flight", dc->tunnels->nmoved,
	    "directions", "direct", (json_int_t)dc->tunnels->routes[NTM_ROUTE_DIRECT],
	    "local", (json_int_t)dc->tunnels->routes[NTM_ROUTE_LOCAL],
	    "relay", (json_int_t)dc->tunnels->routes[NTM_ROUTE_RELAY]);
}

int
dc_tunnel_init(struct dc *dc, char *err, size_t errlen)
{
	if (dc->tunnels == NULL && (dc->tunnels = calloc(1, sizeof(*dc->tunnels))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (dc->tunnels->tab == NULL && (dc->tunnels->tab = dc_tuntab_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

#define DC_ONLY	NTM_ROUTE_SIGNED | NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED

const struct ntm_http_route dc_tunnel_routes[] = {
	{ "POST", "/v1/tunnel", NTM_ROUTE_BEARER | NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED,
	  .fn = on_tunnel },
	{ "GET", "/v1/directions", NTM_ROUTE_BEARER, .fn = on_directions },
	{ "POST", "/v1/dc/locate", DC_ONLY | NTM_ROUTE_VERSION2, on_dc_locate,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) },
	{ "POST", "/v1/dc/direction", DC_ONLY, on_dc_direction,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) },
	{ "POST", "/v1/dc/moved", DC_ONLY, on_dc_moved,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) },
	{ .method = NULL }
};
