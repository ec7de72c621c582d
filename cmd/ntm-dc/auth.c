/*
 * auth.c - the DC's check of a client's bearer token (docs/protocol.md §3.2):
 * signed by the AS, for this DC (its audience: never a CS's token), and
 * naming a live session. The httpd runs
 * dc_bearer before every route flagged NTM_ROUTE_BEARER (login.c, tunnel.c,
 * exchange.c); the handler takes what it found with dc_authenticate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"

/* What the bearer check found, on the request until it is answered. */
struct dc_auth {
	struct ntm_token	tok;
	struct dc_client	cl;
	struct dc_session	sess;
};

static void
dc_auth_free(void *p)
{
	if (p == NULL)
		return;
	ntm_wipe(p, sizeof(struct dc_auth));
	free(p);
}

/* dc.h: the bearer token is one the AS issued for this DC, with a live
 * session; run by the httpd before every NTM_ROUTE_BEARER handler. */
int
dc_bearer(struct ntm_req *req, const char *bearer, void *arg)
{
	struct dc *dc = arg;
	struct srv *s = dc->srv;
	struct dc_auth *a;
	char tid[2 * NTM_TOKEN_ID + 1];
	int e;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return -1;
	}
	ntm_req_set_auth(req, a, dc_auth_free);
	if (ntm_token_from_b64(&a->tok, bearer) < 0) {
		ntm_reply_error(req, 401, "unauthorized", NULL, "token: malformed");
		return -1;
	}
	if ((e = ntm_token_verify(&a->tok, s->conf.as_pk, now_unix())) < 0) {
		ntm_reply_error(req, 401, "unauthorized", NULL, "token: %s",
		    e == NTM_ERR_EXPIRED ? "expired" : "does not verify with the AS key");
		return -1;
	}
	/* A token for a CS (one a CS was given, say) never opens the DC. */
	if (!ntm_token_is_for(&a->tok, NTM_ROLE_DC, s->conf.name)) {
		log_info("%s %s from %s: a token for %s %s", ntm_req_method(req),
		    ntm_req_path(req), ntm_req_peer(req) ? ntm_req_peer(req) : "?",
		    a->tok.aud_role == NTM_ROLE_CS ? "CS" : "DC", a->tok.aud);
		ntm_reply_error(req, 401, "wrong_audience", NULL,
		    "token: issued for %s '%s', not for this DC ('%s')",
		    a->tok.aud_role == NTM_ROLE_CS ? "the CS" : "the DC", a->tok.aud,
		    s->conf.name);
		return -1;
	}
	if (strcmp(a->tok.dc, s->conf.name) != 0) {
		ntm_reply_error(req, 401, "unauthorized", NULL,
		    "token: issued for DC '%s', not '%s'", a->tok.dc, s->conf.name);
		return -1;
	}
	if (ntm_hex_encode(tid, sizeof(tid), a->tok.id, sizeof(a->tok.id)) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot encode the token id");
		return -1;
	}
	e = dc_db_session(dc->db, tid, a->tok.user, a->tok.device, now_unix(), &a->cl,
	    &a->sess);
	if (e == NTM_ERR_NOTFOUND) {
		ntm_reply_error(req, 401, "unauthorized", NULL,
		    "token: no live session (logged out or replaced by a newer login)");
		return -1;
	}
	if (e < 0) {
		log_warnx("session lookup: %s", ntm_strerror(e));
		ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return -1;
	}
	return 0;
}

/* dc.h: what dc_bearer found for this request. */
int
dc_authenticate(struct dc *dc, struct ntm_req *req, struct ntm_token *tok,
    struct dc_client *cl, struct dc_session *sess)
{
	const struct dc_auth *a = ntm_req_auth(req);

	if (a == NULL) {
		ntm_reply_error(req, 500, "internal", NULL,
		    "%s %s: the route checks no bearer token", ntm_req_method(req),
		    ntm_req_path(req));
		return -1;
	}
	*tok = a->tok;
	*cl = a->cl;
	*sess = a->sess;
	return 0;
}
