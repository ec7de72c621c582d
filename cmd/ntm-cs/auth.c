/*
 * auth.c - who a request comes from. Clients present the token the AS
 * issued at login for this CS (Authorization: Bearer); it must verify with
 * the AS key, name this CS as its audience, be within its validity and not
 * be revoked. The AS pushes revocations to
 * POST /v1/cs/revoke (signed, role as); they are kept in SQLite, so a
 * restart forgets none.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cs.h"
#include "msg.h"

json_t *
cs_json_body(struct ntm_req *req)
{
	struct ntm_jerr jerr;
	const uint8_t *body;
	size_t len;
	json_t *j;

	body = ntm_req_body(req, &len);
	if (len > CS_JSON_MAX) {
		ntm_reply_error(req, 413, "body_too_large", NULL,
		    "JSON body of %zu bytes is over the limit of %d", len, CS_JSON_MAX);
		return NULL;
	}
	memset(&jerr, 0, sizeof(jerr));
	if ((j = ntm_json_parse(body, len, &jerr)) == NULL)
		ntm_reply_jerr(req, &jerr);
	return j;
}

static int
deny(struct ntm_req *req, const char *code, const char *why)
{
	log_info("%s %s from %s: %s", ntm_req_method(req), ntm_req_path(req),
	    ntm_req_peer(req), why);
	ntm_reply_error(req, 401, code, NULL, "%s", why);
	return -1;
}

/*
 * Tokens that passed lately, so that a client's next requests (a send makes
 * three here, a fetch two) skip the signature check and the two revocation
 * lookups: keyed by the SHA-256 of the token as presented, valid while no
 * revocation was stored since (auth_rev: every POST /v1/cs/revoke bumps it,
 * so a revocation takes effect at the next request as before) and while
 * the token is within its validity.
 */
#define CS_TOKEN_MEMO	64
struct token_memo {
	uint8_t		h[NTM_HASH_LEN];
	uint64_t	rev;		/* 0: empty */
	int64_t		issued, expires;
	struct cs_who	who;
};
static struct token_memo memo[CS_TOKEN_MEMO];
static unsigned memo_next;
static uint64_t auth_rev = 1;

static const struct token_memo *
memo_find(const uint8_t h[NTM_HASH_LEN], int64_t now)
{
	int i;

	for (i = 0; i < CS_TOKEN_MEMO; i++)
		if (memo[i].rev == auth_rev && ntm_memcmp(memo[i].h, h, NTM_HASH_LEN) == 0)
			return memo[i].issued <= now && now <= memo[i].expires ? &memo[i] :
			    NULL;
	return NULL;
}

static void
memo_add(const uint8_t h[NTM_HASH_LEN], const struct ntm_token *t, const struct cs_who *who)
{
	struct token_memo *m = &memo[memo_next++ % CS_TOKEN_MEMO];

	memcpy(m->h, h, NTM_HASH_LEN);
	m->rev = auth_rev;
	m->issued = t->issued;
	m->expires = t->expires;
	m->who = *who;
}

static void
who_free(void *p)
{
	if (p == NULL)
		return;
	ntm_wipe(p, sizeof(struct cs_who));
	free(p);
}

int
cs_bearer_precheck(const char *b64, void *arg)
{
	struct cs *cs = arg;
	char id[NTM_B64_LEN(NTM_TOKEN_ID)];
	uint8_t h[NTM_HASH_LEN];
	struct ntm_token t;
	int ok;

	ntm_hash(h, b64, strlen(b64));
	if (memo_find(h, now_unix()) != NULL)
		return 0;
	if (ntm_token_from_b64(&t, b64) < 0)
		return -1;
	ok = ntm_token_verify(&t, cs->srv->conf.as_pk, now_unix()) == 0 &&
	    ntm_token_is_for(&t, NTM_ROLE_CS, cs->srv->conf.name) &&
	    ntm_b64_encode(id, sizeof(id), t.id, sizeof(t.id)) >= 0 &&
	    cs_db_revoked(cs->db, id, t.user, t.dc, t.issued) == 0;
	ntm_wipe(&t, sizeof(t));
	return ok ? 0 : -1;
}

int
cs_bearer(struct ntm_req *req, const char *b64, void *arg)
{
	struct cs *cs = arg;
	char id[NTM_B64_LEN(NTM_TOKEN_ID)];
	uint8_t h[NTM_HASH_LEN];
	const struct token_memo *m;
	struct cs_who *who;
	struct ntm_token t;
	int e;

	if ((who = calloc(1, sizeof(*who))) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return -1;
	}
	ntm_req_set_auth(req, who, who_free);
	ntm_hash(h, b64, strlen(b64));
	if ((m = memo_find(h, now_unix())) != NULL) {
		*who = m->who;
		return 0;
	}
	if (ntm_token_from_b64(&t, b64) < 0)
		return deny(req, "unauthorized", "token does not decode");
	e = ntm_token_verify(&t, cs->srv->conf.as_pk, now_unix());
	if (e == NTM_ERR_EXPIRED)
		return deny(req, "token_expired", "token has expired (log in again)");
	if (e < 0)
		return deny(req, "unauthorized", "token is not signed by the account server");
	/* Only a token for this CS: never the DC's, nor another CS's, so
	 * that what a CS is given cannot be replayed elsewhere. */
	if (!ntm_token_is_for(&t, NTM_ROLE_CS, cs->srv->conf.name)) {
		char why[NTM_NAME_MAX + 96];

		snprintf(why, sizeof(why), "token is for %s '%s', not for this CS ('%s')",
		    t.aud_role == NTM_ROLE_CS ? "the CS" : "the DC", t.aud,
		    cs->srv->conf.name);
		ntm_wipe(&t, sizeof(t));
		return deny(req, "wrong_audience", why);
	}
	if (ntm_b64_encode(id, sizeof(id), t.id, sizeof(t.id)) < 0)
		return deny(req, "unauthorized", "token id does not encode");
	e = cs_db_revoked(cs->db, id, t.user, t.dc, t.issued);
	if (e == NTM_ERR_REVOKED)
		return deny(req, "token_revoked", "token has been revoked");
	if (e < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot read the revocations");
		return -1;
	}
	snprintf(who->user, sizeof(who->user), "%s", t.user);
	snprintf(who->device, sizeof(who->device), "%s", t.device);
	snprintf(who->dc, sizeof(who->dc), "%s", t.dc);
	memcpy(who->token_id, t.id, sizeof(who->token_id));
	memo_add(h, &t, who);
	ntm_wipe(&t, sizeof(t));
	return 0;
}

int
cs_auth(struct cs *cs, struct ntm_req *req, struct cs_who *who)
{
	const struct cs_who *w = ntm_req_auth(req);

	if (w == NULL) {
		ntm_reply_error(req, 500, "internal", NULL,
		    "%s %s: the route checks no bearer token", ntm_req_method(req),
		    ntm_req_path(req));
		return -1;
	}
	*who = *w;
	return 0;
}

int
cs_is_owner(const struct cs_who *w, const char *user, const char *dc)
{
	return strcmp(w->user, user) == 0 && strcmp(w->dc, dc) == 0;
}

/* ---- POST /v1/cs/revoke (signed by the AS) ------------------------------- */

/* 0 when stored, 1 after replying 400, or a storage error. */
static int
revoke_token(struct cs *cs, struct ntm_req *req, json_t *e, size_t i)
{
	struct ntm_m_revoke_token t;
	struct ntm_jerr jerr;

	memset(&jerr, 0, sizeof(jerr));
	if (ntm_msg_revoke_token_decode(e, &t, &jerr) < 0) {
		ntm_reply_error(req, 400, jerr.code, "tokens", "tokens[%zu]: %s", i,
		    jerr.message);
		return 1;
	}
	if (t.expires <= 0)
		t.expires = now_unix() + CS_REVOKED_KEEP;
	return cs_db_revoke_token(cs->db, t.id, t.expires);
}

static int
revoke_account(struct cs *cs, struct ntm_req *req, json_t *e, size_t i)
{
	struct ntm_m_revoke_account a;
	struct ntm_jerr jerr;

	memset(&jerr, 0, sizeof(jerr));
	if (ntm_msg_revoke_account_decode(e, &a, &jerr) < 0) {
		ntm_reply_error(req, 400, jerr.code, "accounts", "accounts[%zu]: %s", i,
		    jerr.message);
		return 1;
	}
	if (a.before <= 0)
		a.before = now_unix();
	return cs_db_revoke_account(cs->db, a.user, a.dc, a.before);
}

/* Checks sizes and the element types before anything is stored. */
static int
revoke_lists_ok(struct ntm_req *req, json_t *tokens, json_t *accounts)
{
	if (json_array_size(tokens) + json_array_size(accounts) > CS_REVOKE_MAX) {
		ntm_reply_error(req, 400, "bad_field", "tokens",
		    "at most %d revocations per request", CS_REVOKE_MAX);
		return -1;
	}
	if ((tokens && !json_is_array(tokens)) || (accounts && !json_is_array(accounts))) {
		ntm_reply_error(req, 400, "bad_field", tokens && !json_is_array(tokens) ?
		    "tokens" : "accounts", "expected an array");
		return -1;
	}
	return 0;
}

/* 0 when all are stored, 1 when an entry was refused (replied), or an error. */
static int
revoke_all(struct cs *cs, struct ntm_req *req, json_t *tokens, json_t *accounts)
{
	size_t i;
	json_t *e;
	int ret;

	if ((ret = ntm_db_exec(cs->db, "BEGIN IMMEDIATE")) < 0)
		return ret;
	json_array_foreach(tokens, i, e)
		if ((ret = revoke_token(cs, req, e, i)) != 0)
			goto fail;
	json_array_foreach(accounts, i, e)
		if ((ret = revoke_account(cs, req, e, i)) != 0)
			goto fail;
	return ntm_db_exec(cs->db, "COMMIT");
fail:
	if (ntm_db_exec(cs->db, "ROLLBACK") < 0)
		log_warnx("revoke: rollback failed");
	return ret;
}

static void
on_revoke(struct ntm_req *req, void *arg)
{
	struct cs *cs = arg;
	json_t *j, *tokens, *accounts;
	struct ntm_m_revoke m;
	struct ntm_jerr jerr;
	int ret;

	/* Every token that passed is checked afresh from now on. */
	auth_rev++;
	if ((j = cs_json_body(req)) == NULL)
		return;
	memset(&jerr, 0, sizeof(jerr));
	if (ntm_msg_revoke_decode(j, &m, &jerr) < 0)
		ntm_reply_jerr(req, &jerr);
	else if (tokens = m.tokens, accounts = m.accounts,
	    revoke_lists_ok(req, tokens, accounts) == 0 &&
	    srv_revoked_store(cs->srv, req, m.servers) >= 0) {
		if ((ret = revoke_all(cs, req, tokens, accounts)) == 0) {
			log_info("revoked %zu token(s) and %zu account(s) at the AS's request",
			    json_array_size(tokens), json_array_size(accounts));
			ntm_reply_json(req, 200, json_pack("{s:I, s:I}",
			    "tokens", (json_int_t)json_array_size(tokens),
			    "accounts", (json_int_t)json_array_size(accounts)));
		} else if (ret < 0)
			ntm_reply_error(req, 500, "internal", NULL, "cannot store the revocations");
	}
	json_decref(j);
}

/* srv_spec.revoke: the same push at POST /v1/revoke (srv kept its servers). */
int
cs_revoke(struct srv *s, struct ntm_req *req, const struct ntm_m_revoke *m)
{
	struct cs *cs = s->priv;
	int ret;

	auth_rev++;
	if (revoke_lists_ok(req, m->tokens, m->accounts) < 0)
		return 1;
	if ((ret = revoke_all(cs, req, m->tokens, m->accounts)) < 0)
		ntm_reply_error(req, 500, "internal", NULL, "cannot store the revocations");
	return ret != 0;
}

/* Only the AS pushes revocations: another signed caller is 403 forbidden. */
const struct ntm_http_route cs_auth_routes[] = {
	{ "POST", "/v1/cs/revoke", NTM_ROUTE_SIGNED | NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED,
	  on_revoke, .roles = NTM_ROUTE_ROLE(NTM_ROLE_AS), .deny = 403,
	  .body_max = CS_JSON_MAX },
	{ .method = NULL }
};
