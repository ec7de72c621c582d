/*
 * directions.c - route directions from the DC (docs/protocol.md §5): a
 * direction makes a tunnel, or gives an existing one (same tunnel_id) a
 * new route; GET /v1/directions after a NUDGE or a REG_RESP that says some
 * are pending; POST /v1/tunnel when we ask for a tunnel (a control
 * connection, a dial) or ask the DC to remake one. A HS_INIT that came
 * before its direction waits here for the answer (input.c keeps it).
 *
 * Each direction carries the peer device's AS certificate: it is checked
 * against the AS key the profile trusts and the peer's FQDN, and against
 * the key remembered for that FQDN (identity.c), before its key goes into
 * the tunnel's handshake. A DC can only carry it.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "probe.h"
#include "msg.h"
#include "agentd.h"
#include "identity.h"

/*
 * The peer's certificate (b64, NULL if the DC gave none) for nt->peer:
 * verified, its key continuous with the one known, then our device key
 * and the peer's into cfg. 0, or -2 (an identity failure) with err filled.
 */
static int
direction_identity(struct agent *a, const char *b64, struct tun *nt,
    struct ntm_tunnel_cfg *cfg, char *err, size_t errlen)
{
	uint8_t as_pk[NTM_SIGN_PK], pk[NTM_DEVKEY_LEN];
	struct ntm_dcert c;
	struct id_known old;
	char fp[NTM_DFP_LEN], ofp[NTM_DFP_LEN];
	int64_t now = (int64_t)(agent_wall_us() / 1000000);
	int e, pinned;

	if (b64 == NULL) {
		snprintf(err, errlen, "the DC gave no device certificate for %s (a peer or "
		    "DC from before device keys?): refused", nt->peer);
		return -2;
	}
	if (ntm_dcert_from_b64(&c, b64) < 0) {
		snprintf(err, errlen, "the device certificate the DC gave for %s is "
		    "malformed: refused", nt->peer);
		return -2;
	}
	if ((e = id_as_key(a->cli, as_pk, &pinned)) < 0) {
		snprintf(err, errlen, "no AS key to check %s's device certificate with "
		    "(log in again, or set as_key in ntm.conf): %s", nt->peer, ntm_strerror(e));
		return -2;
	}
	if ((e = ntm_dcert_check(&c, as_pk, nt->peer, now)) < 0) {
		snprintf(err, errlen, "the device certificate the DC gave for %s %s: refused",
		    nt->peer, e == NTM_ERR_IDENTITY ? "names another device" :
		    e == NTM_ERR_EXPIRED ? "is expired" : "is not signed by the AS key "
		    "this profile trusts");
		return -2;
	}
	ntm_dkey_fingerprint(fp, c.fqdn, c.pk);
	e = id_known_check(a->cli, &c, now, &old);
	if (e == NTM_ERR_IDENTITY || e == ID_CHANGED)
		ntm_dkey_fingerprint(ofp, old.fqdn, old.pk);
	if (e == NTM_ERR_IDENTITY) {
		snprintf(err, errlen, "THE DEVICE KEY OF %s CHANGED to %s without a newer AS "
		    "certificate than the one of the known key %s: refused (compare with "
		    "'ntm keys show %s' out of band)", nt->peer, fp, ofp, nt->peer);
		return -2;
	}
	if (e == ID_CHANGED)
		log_warnx("tunnel %s: THE DEVICE KEY OF %s CHANGED: %s -> %s (a newer AS "
		    "certificate, serial %llu; compare with 'ntm keys show %s')", nt->peer,
		    nt->peer, ofp, fp, (unsigned long long)c.serial, nt->peer);
	else if (e == ID_NEW)
		log_info("tunnel %s: device key %s, first seen", nt->peer, fp);
	else if (e < 0)
		log_warnx("tunnel %s: cannot remember its device key: %s", nt->peer,
		    ntm_strerror(e));
	if ((e = id_device_keypair(a->cli, pk, cfg->static_sk, 0)) < 0) {
		snprintf(err, errlen, "cannot read this device's key (%s/%s): %s (log in "
		    "again)", a->cli->state_dir, ID_DEVICE_KEY_FILE, ntm_strerror(e));
		return -2;
	}
	memcpy(cfg->peer_static, c.pk, NTM_DEVKEY_LEN);
	snprintf(nt->peer_fp, sizeof(nt->peer_fp), "%s", fp);
	nt->peer_serial = c.serial;
	return 0;
}

/* The direction d as a tunnel (nt) and its core's settings (cfg);
 * 0, or -1 with err filled (-2: the peer's identity did not check out). */
static int
direction_parse(struct agent *a, json_t *d, struct tun *nt, struct ntm_tunnel_cfg *cfg,
    char *err, size_t errlen)
{
	struct ntm_m_direction m;
	struct ntm_m_relay rm = { 0 };
	const char *tid, *peer, *v4, *v6, *route, *reason, *role, *endpoint, *tk;
	struct ntm_jerr jerr;
	int kind, initiator, n;

	if (ntm_msg_direction_unpack(d, &m, &jerr) < 0 ||
	    (m.relay && ntm_msg_relay_unpack(m.relay, &rm, &jerr) < 0)) {
		snprintf(err, errlen, "malformed direction: %s", jerr.message);
		return -1;
	}
	tid = m.tunnel_id;
	peer = m.peer;
	v4 = m.peer_vip4;
	v6 = m.peer_vip6;
	route = m.route;
	reason = m.reason;
	role = m.role;
	endpoint = m.endpoint;
	tk = m.temporal_key;
	kind = !strcmp(route, "direct") ? NTM_ROUTE_DIRECT : !strcmp(route, "local") ?
	    NTM_ROUTE_LOCAL : !strcmp(route, "relay") ? NTM_ROUTE_RELAY : 0;
	initiator = !strcmp(role, "initiator") ? 1 : !strcmp(role, "responder") ? 0 : -1;
	if (ntm_hex_decode_exact(nt->tid, NTM_TUNNEL_ID_LEN, tid) < 0 || kind == 0 ||
	    initiator < 0 || !ntm_valid_dnsname(peer) ||
	    ntm_b64_decode_exact(cfg->temporal_key, NTM_KEY_LEN, tk) < 0 ||
	    (kind == NTM_ROUTE_RELAY) != (m.relay != NULL)) {
		snprintf(err, errlen, "malformed direction (tunnel_id, route, role, peer, "
		    "temporal_key or relay)");
		return -1;
	}
	nt->p.kind = kind;
	snprintf(nt->peer, sizeof(nt->peer), "%s", peer);
	snprintf(nt->vip4, sizeof(nt->vip4), "%s", v4);
	snprintf(nt->vip6, sizeof(nt->vip6), "%s", v6);
	nt->has4 = inet_pton(AF_INET, v4, nt->pv4) == 1;
	nt->has6 = inet_pton(AF_INET6, v6, nt->pv6) == 1;
	snprintf(nt->reason, sizeof(nt->reason), "%s", reason);
	nt->p.has_ep = ntm_sa_parse(&nt->p.ep, &nt->p.eplen, endpoint) == 0;
	if (kind == NTM_ROUTE_RELAY) {
		if ((n = ntm_b64_decode(nt->p.ticket, sizeof(nt->p.ticket), rm.ticket)) <= 0 ||
		    ntm_b64_decode_exact(nt->p.rkey, NTM_KEY_LEN, rm.relay_key) < 0 ||
		    ntm_sa_parse(&nt->p.ep, &nt->p.eplen, rm.addr) < 0 ||
		    (rm.side != 0 && rm.side != 1)) {
			snprintf(err, errlen, "malformed relay part of the direction");
			return -1;
		}
		nt->p.tlen = (size_t)n;
		nt->p.side = (int)rm.side;
		nt->p.has_ep = 1;
		ntm_sa_unmap(&nt->p.ep, &nt->p.eplen);
		/* Hole punching (docs/protocol.md §4.8): the peer's candidates. */
		if ((nt->p.ncand = ntm_msg_punch_cands(m.punch, nt->p.cand,
		    NTM_PEER_CANDS)) < 0) {
			snprintf(err, errlen, "malformed punch candidates in the direction");
			return -1;
		}
		/* Birthday probing's part (§4.8), from our NAT's kind: a route
		 * with candidates behind a NAT that maps per destination has an
		 * endpoint-independent one at the other end (§4.5 rule 3). */
		nt->p.bday = nt->p.ncand == 0 ? NTM_BDAY_NONE :
		    a->nat == NTM_NAT_PER_DEST ? NTM_BDAY_HARD :
		    a->nat == NTM_NAT_EI ? NTM_BDAY_EASY : NTM_BDAY_NONE;
	} else if (initiator && !nt->p.has_ep) {
		snprintf(err, errlen, "direction without a usable endpoint '%s'", endpoint);
		return -1;
	}
	if (nt->p.has_ep)
		ntm_sa_unmap(&nt->p.ep, &nt->p.eplen);

	nt->p.initiator = initiator;
	nt->expires = m.expires;
	memcpy(cfg->tunnel_id, nt->tid, NTM_TUNNEL_ID_LEN);
	cfg->initiator = initiator;
	return direction_identity(a, m.peer_cert, nt, cfg, err, errlen);
}

int
agent_accept_valid(const char *pattern)
{
	if (pattern == NULL)
		return 0;
	if (strncmp(pattern, "*.", 2) == 0)
		pattern += 2;
	return ntm_valid_dnsname(pattern);
}

/* An FQDN matches itself; *.DOMAIN every name under DOMAIN (not DOMAIN). */
int
agent_accept_match(const char *pattern, const char *peer)
{
	size_t pl, dl;

	if (strncmp(pattern, "*.", 2) != 0)
		return strcasecmp(pattern, peer) == 0;
	pl = strlen(peer);
	dl = strlen(pattern + 1);	/* ".DOMAIN" */
	return pl > dl && strcasecmp(peer + pl - dl, pattern + 1) == 0;
}

/* A peer's new tunnel to us (we are the responder): allowed by --accept? */
static int
accepted(const struct agent *a, const char *peer)
{
	if (a->o.naccept == 0)
		return 1;
	for (int i = 0; i < a->o.naccept && i < AGENT_ACCEPT_MAX; i++)
		if (agent_accept_match(a->o.accept[i], peer))
			return 1;
	return 0;
}

/* Creates the tunnel of a direction, or (same tunnel_id) applies a new route
 * to the existing one: same keys and indices, new endpoint / relay binding.
 * A new tunnel a peer opened to us is made only when --accept lets it. */
static struct tun *
apply_direction(struct agent *a, json_t *d, char *err, size_t errlen, int *identity)
{
	struct ntm_tunnel_cfg cfg;
	struct tun *t = NULL, nt;
	int r;

	memset(&nt, 0, sizeof(nt));
	memset(&cfg, 0, sizeof(cfg));
	if ((r = direction_parse(a, d, &nt, &cfg, err, errlen)) == -2) {
		a->drops[DROP_IDENTITY]++;
		*identity = 1;
	} else if (r == 0) {
		/* Recreated route: keep the tunnel core (keys, indices). */
		if ((t = agent_tun_by_tid(a, nt.tid)) != NULL)
			agent_tun_reroute(t, &nt);
		else if (!cfg.initiator && !accepted(a, nt.peer)) {
			a->tun_refused++;
			snprintf(err, errlen, "a tunnel from %s refused: not a peer --accept "
			    "names", nt.peer);
		} else
			t = agent_tun_new(a, &nt, &cfg, err, errlen);
	}
	ntm_wipe(&cfg, sizeof(cfg));
	ntm_wipe(&nt, sizeof(nt));
	return t;
}

struct tun *
agent_apply_direction(struct agent *a, json_t *d, char *err, size_t errlen)
{
	int identity = 0;

	return apply_direction(a, d, err, errlen, &identity);
}

/* The HS_INIT that came before its direction, once more (and for the last
 * time: a tunnel now, or counted as unknown). */
static void
replay_stash(struct agent *a)
{
	struct tun *t;

	a->has_stash = 0;
	if ((t = agent_tun_by_tid(a, ntm_msg_tunnel_id(a->stash, sizeof(a->stash)))) == NULL)
		a->drops[DROP_UNKNOWN]++;
	else
		agent_tun_input(t, a->stash, sizeof(a->stash), &a->stash_from, 0);
}

static void
on_directions(const struct ntm_http_result *res, void *arg)
{
	struct agent *a = arg;
	struct ntm_m_directions m;
	json_t *d;
	size_t i;
	char err[256];

	a->dir_inflight = 0;
	if (res->err || res->status != 200 ||
	    ntm_msg_directions_decode(res->json, &m, NULL) < 0) {
		char why[512];

		if (res->err == NTM_ERR_UNTRUSTED)
			(void)cli_http_error(why, sizeof(why), a->s.dc_url, res->err,
			    res->status, res->json, res->errmsg);
		else
			snprintf(why, sizeof(why), "%s", res->err ? res->errmsg :
			    res->json ? "unexpected answer" : "no JSON");
		log_warnx("GET /v1/directions: %s", why);
	} else {
		json_array_foreach(m.directions, i, d) {
			if (i >= AGENT_TUN_MAX)
				break;
			a->directions++;
			if (agent_apply_direction(a, d, err, sizeof(err)) == NULL)
				log_warnx("direction: %s", err);
		}
		a->hooks->tunnels_changed(a);
	}
	/* A fetch asked for meanwhile (the stash's own, or a NUDGE's) may
	 * bring the stash's direction when this one did not: it waits. */
	if (a->has_stash && (!a->dir_again ||
	    agent_tun_by_tid(a, ntm_msg_tunnel_id(a->stash, sizeof(a->stash))) != NULL))
		replay_stash(a);
	if (a->dir_again) {
		a->dir_again = 0;
		agent_fetch_directions(a);
	}
}

void
agent_fetch_directions(struct agent *a)
{
	char url[NTM_URL_MAX + 32];

	if (a->dir_inflight) {
		a->dir_again = 1;
		return;
	}
	snprintf(url, sizeof(url), "%s/v1/directions", a->s.dc_url);
	log_debug("GET %s", url);
	if (ntm_httpc_request(a->http, "GET", url, NULL, a->s.token, 10000,
	    on_directions, a) == 0)
		a->dir_inflight = 1;
}

/* POST /v1/tunnel {version, peer[, tunnel_id]}; the answer goes to the
 * control connection with that serial (0: none, a recreate). */
struct treq {
	struct agent	*a;
	uint64_t	 ctl;
	char		 peer[NTM_NAME_MAX + 1];
};

static void
on_tunnel_made(const struct ntm_http_result *res, void *arg)
{
	struct treq *r = arg;
	struct agent *a = r->a;
	char err[512];
	struct tun *t = NULL;

	/* A lost tunnel's new one (tunnels.c) was asked for: whatever the
	 * answer, the next ask is the backoff's to time. */
	if ((t = agent_tun_by_peer(a, r->peer)) != NULL)
		t->remaking = 0;
	t = NULL;
	if (res->err == 0 && res->status == 200 && res->json) {
		int identity = 0;

		if ((t = apply_direction(a, res->json, err, sizeof(err), &identity)) == NULL)
			log_warnx("POST /v1/tunnel %s: %s", r->peer, err);
		a->hooks->tunnels_changed(a);
		if (t == NULL && (r->ctl || identity))
			a->hooks->tunnel_failed(a, r->ctl, identity ? r->peer : NULL,
			    identity ? "peer_identity" : "tunnel_failed", err);
	} else if (res->err == NTM_ERR_UNTRUSTED) {
		/* Not a network failure: the session's CA does not vouch for
		 * the DC. The same words (and exit 15) as the CLI's own calls. */
		(void)cli_http_error(err, sizeof(err), a->s.dc_url, res->err, res->status,
		    res->json, res->errmsg);
		log_warnx("POST /v1/tunnel %s: %s", r->peer, err);
		if ((t = agent_tun_by_peer(a, r->peer)) != NULL)
			t->recreating = 0;
		a->hooks->tunnel_failed(a, r->ctl, t ? NULL : r->peer, "untrusted_certificate",
		    err);
	} else {
		struct ntm_m_error e;
		int known = ntm_error_read(res->json, &e) == 0;
		const char *code = res->err ? "unreachable" : e.code;
		const char *msg = known ? e.message : NULL;

		snprintf(err, sizeof(err), "%s%s", res->err ? "DC unreachable: " : "",
		    res->err ? res->errmsg : msg ? msg : "the DC refused the tunnel");
		log_warnx("POST /v1/tunnel %s: %s", r->peer, err);
		if ((t = agent_tun_by_peer(a, r->peer)) != NULL)
			t->recreating = 0;
		a->hooks->tunnel_failed(a, r->ctl, t ? NULL : r->peer,
		    code ? code : "tunnel_failed", err);
	}
	free(r);
}

int
agent_request_tunnel(struct agent *a, const char *peer, const uint8_t *tid, uint64_t ctl)
{
	char url[NTM_URL_MAX + 32], hex[2 * NTM_TUNNEL_ID_LEN + 1];
	struct ntm_m_tunnel m = { 0 };
	struct ntm_jerr jerr;
	struct treq *r;
	json_t *body;
	int ret;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->a = a;
	r->ctl = ctl;
	snprintf(r->peer, sizeof(r->peer), "%s", peer);
	m.version = NTM_PROTOCOL_VERSION;
	m.peer = peer;
	if (tid && ntm_hex_encode(hex, sizeof(hex), tid, NTM_TUNNEL_ID_LEN) > 0)
		m.tunnel_id = hex;
	if (ntm_msg_tunnel_encode(&m, &body, &jerr) < 0) {
		log_warnx("POST /v1/tunnel %s: %s", peer, jerr.message);
		free(r);
		return -1;
	}
	snprintf(url, sizeof(url), "%s/v1/tunnel", a->s.dc_url);
	log_debug("POST %s peer %s%s", url, peer, tid ? " (recreate)" : "");
	ret = ntm_httpc_request(a->http, "POST", url, body, a->s.token, 15000,
	    on_tunnel_made, r);
	json_decref(body);
	if (ret != 0) {
		free(r);
		return -1;
	}
	return 0;
}

