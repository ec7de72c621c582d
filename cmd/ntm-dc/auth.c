/*
 * auth.c - the DC's check of a client's bearer token (docs/protocol.md §3.2):
 * signed by the AS, for this DC, and naming a live session. Every client
 * endpoint (login.c, tunnel.c, exchange.c) starts with it.
 */
#include <stdio.h>
#include <string.h>

#include "dc.h"

/* dc.h: checks the bearer token and finds its live session. */
int
dc_authenticate(struct dc *dc, struct ntm_req *req, struct ntm_token *tok,
    struct dc_client *cl, struct dc_session *sess)
{
	struct srv *s = dc->srv;
	const char *bearer = ntm_req_bearer(req);
	char tid[2 * NTM_TOKEN_ID + 1];
	int e;

	if (bearer == NULL) {
		ntm_reply_error(req, 401, "unauthorized", NULL,
		    "missing 'Authorization: Bearer TOKEN'");
		return -1;
	}
	if (ntm_token_from_b64(tok, bearer) < 0) {
		ntm_reply_error(req, 401, "unauthorized", NULL, "token: malformed");
		return -1;
	}
	if ((e = ntm_token_verify(tok, s->conf.as_pk, now_unix())) < 0) {
		ntm_reply_error(req, 401, "unauthorized", NULL, "token: %s",
		    e == NTM_ERR_EXPIRED ? "expired" : "does not verify with the AS key");
		return -1;
	}
	if (strcmp(tok->dc, s->conf.name) != 0) {
		ntm_reply_error(req, 401, "unauthorized", NULL,
		    "token: issued for DC '%s', not '%s'", tok->dc, s->conf.name);
		return -1;
	}
	if (ntm_hex_encode(tid, sizeof(tid), tok->id, sizeof(tok->id)) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot encode the token id");
		return -1;
	}
	e = dc_db_session(dc->db, tid, tok->user, tok->device, now_unix(), cl, sess);
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
