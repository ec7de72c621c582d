/*
 * push.c - the AS pushes revocations to its cache server (the paper's
 * token distribution; docs/protocol.md §7.5): `user lock` and `user del`
 * queue an account revocation per DC where the user holds live tokens, and
 * a logout at a DC (POST /v1/as/logout) queues that one token, in the
 * `revocations` table; the daemon sends what is queued, signed as the
 * AS (a certificate for its own key, role as), to cs_url's
 * POST /v1/cs/revoke every AS_PUSH_EVERY_S seconds, and marks it pushed
 * once the CS answered 200. A CS that is down gets it on a later round:
 * nothing is lost, and the CS stores each entry idempotently.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <sqlite3.h>

#include "ntm-as.h"

#define AS_PUSH_EVERY_S		2
#define AS_PUSH_BATCH		1024	/* entries per push (the CS's limit) */
#define AS_PUSH_TIMEOUT_MS	5000

struct as_push {
	struct as		*as;
	struct ntm_httpc	*httpc;
	struct event		*timer;
	char			*url;		/* {cs_url}/v1/cs/revoke */
	int			 busy;
	int64_t			 last_id;	/* highest id in the request in flight */
};

int
as_revoke_queue_user(sqlite3 *db, const char *user, int64_t now)
{
	sqlite3_stmt *st;
	int ret;

	/* One entry per DC; it refuses every token issued until now. */
	if (sqlite3_prepare_v2(db, "INSERT INTO revocations (user, dc, before, created) "
	    "SELECT DISTINCT user, dc, ?2, ?2 FROM tokens WHERE user = ?1 AND expires > ?2",
	    -1, &st, NULL) != SQLITE_OK)
		return NTM_ERR_DB;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	ret = sqlite3_step(st) == SQLITE_DONE ? sqlite3_changes(db) : NTM_ERR_DB;
	sqlite3_finalize(st);
	return ret;
}

/* The queued entries: account revocations into *acc, token revocations
 * (token id as base64url, as the CS wants it) into *tok; *last is the
 * highest id among them. -1 on a storage failure. */
static int
pending(sqlite3 *db, json_t *acc, json_t *tok, int64_t *last)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, "SELECT id, user, dc, before, token_id FROM "
	    "revocations WHERE pushed IS NULL ORDER BY id LIMIT ?1", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int(st, 1, AS_PUSH_BATCH);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *hex = (const char *)sqlite3_column_text(st, 4);
		uint8_t raw[NTM_TOKEN_ID];
		char b64[NTM_B64_LEN(NTM_TOKEN_ID)];

		*last = sqlite3_column_int64(st, 0);
		if (hex == NULL)
			json_array_append_new(acc, json_pack("{s:s, s:s, s:I}",
			    "user", (const char *)sqlite3_column_text(st, 1),
			    "dc", (const char *)sqlite3_column_text(st, 2),
			    "before", (json_int_t)sqlite3_column_int64(st, 3)));
		else if (ntm_hex_decode_exact(raw, sizeof(raw), hex) >= 0 &&
		    ntm_b64_encode(b64, sizeof(b64), raw, sizeof(raw)) > 0)
			json_array_append_new(tok, json_pack("{s:s, s:I}", "id", b64,
			    "expires", (json_int_t)sqlite3_column_int64(st, 3)));
	}
	sqlite3_finalize(st);
	return 0;
}

/* A token the DC ended (logout): queued for the CS. 0, NTM_ERR_NOTFOUND
 * (no such token issued for a client of dc), or a storage error. */
int
as_revoke_queue_token(sqlite3 *db, const char *token_hex, const char *dc, int64_t now)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(db, "INSERT INTO revocations (user, dc, before, created, "
	    "token_id) SELECT user, dc, expires, ?3, id FROM tokens WHERE id = ?1 AND "
	    "dc = ?2 AND expires > ?3", -1, &st, NULL) != SQLITE_OK)
		return NTM_ERR_DB;
	sqlite3_bind_text(st, 1, token_hex, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, dc, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	ret = sqlite3_step(st) == SQLITE_DONE ? (sqlite3_changes(db) ? 0 : NTM_ERR_NOTFOUND) :
	    NTM_ERR_DB;
	sqlite3_finalize(st);
	return ret;
}

static void
mark_pushed(sqlite3 *db, int64_t last, int64_t now)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, "UPDATE revocations SET pushed = ?2 WHERE pushed IS NULL "
	    "AND id <= ?1", -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, last);
	sqlite3_bind_int64(st, 2, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		log_warnx("revocations: cannot mark pushed: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
}

static void
on_pushed(const struct ntm_http_result *res, void *arg)
{
	struct as_push *p = arg;

	p->busy = 0;
	if (res->err == 0 && res->status == 200) {
		mark_pushed(p->as->db, p->last_id, now_unix());
		log_info("revocations up to #%lld pushed to the CS", (long long)p->last_id);
	} else
		log_info("revocation push to the CS: %s (retried in %d s)", res->err ?
		    (res->errmsg[0] ? res->errmsg : ntm_strerror(res->err)) : "refused",
		    AS_PUSH_EVERY_S);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct as_push *p = arg;
	json_t *acc, *tok, *body;
	int e;

	if (p->busy)
		return;
	acc = json_array();
	tok = json_array();
	if (acc == NULL || tok == NULL || pending(p->as->db, acc, tok, &p->last_id) < 0 ||
	    json_array_size(acc) + json_array_size(tok) == 0) {
		json_decref(acc);
		json_decref(tok);
		return;
	}
	body = json_pack("{s:i, s:o, s:o}", "version", NTM_PROTOCOL_VERSION, "accounts", acc,
	    "tokens", tok);
	if (body && (e = ntm_httpc_request(p->httpc, "POST", p->url, body, NULL,
	    AS_PUSH_TIMEOUT_MS, on_pushed, p)) == 0)
		p->busy = 1;
	json_decref(body);
}

int
as_push_start(struct as *as)
{
	struct timeval tv = { AS_PUSH_EVERY_S, 0 };
	struct as_push *p;
	struct ntm_cert self;
	size_t n;

	if (as->conf.cs_url == NULL)
		return 0;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	as->push = p;
	p->as = as;
	/* The AS vouches for itself: its own key, role as, signed by itself. */
	memset(&self, 0, sizeof(self));
	self.version = 1;
	self.role = NTM_ROLE_AS;
	snprintf(self.name, sizeof(self.name), "%s", as->conf.name);
	ntm_sign_pk(self.pk, as->sk);
	self.serial = 1;
	self.not_before = now_unix() - AS_CERT_SKEW;
	self.not_after = now_unix() + 10L * 365 * 86400;
	ntm_cert_sign(&self, as->sk);
	n = strlen(as->conf.cs_url);
	while (n > 0 && as->conf.cs_url[n - 1] == '/')
		n--;
	p->url = xasprintf("%.*s/v1/cs/revoke", (int)n, as->conf.cs_url);
	if ((p->httpc = ntm_httpc_new(as->base, as->conf.ca_cert)) == NULL ||
	    ntm_httpc_set_identity(p->httpc, as->sk, &self) < 0 ||
	    (p->timer = event_new(as->base, -1, EV_PERSIST, on_timer, p)) == NULL ||
	    event_add(p->timer, &tv) < 0) {
		log_warnx("cannot set up the revocation push to %s", p->url);
		return -1;
	}
	log_info("revocations are pushed to %s", p->url);
	return 0;
}

void
as_push_stop(struct as *as)
{
	struct as_push *p = as->push;

	if (p == NULL)
		return;
	if (p->timer)
		event_free(p->timer);
	ntm_httpc_free(p->httpc);
	free(p->url);
	free(p);
	as->push = NULL;
}
