/*
 * push.c - the AS pushes revocations to the servers it enrolled (the
 * paper's token distribution; docs/protocol.md §7.5): `user lock` and
 * `user del` queue an account revocation per DC where the user holds live
 * tokens, a logout at a DC (POST /v1/as/logout) queues that one token, and
 * `server revoke` queues the server certificate, in the `revocations`
 * table. Every AS_PUSH_EVERY_S seconds the daemon sends each CS of cs_url
 * (to its POST /v1/cs/revoke) and each DC and RS of revoke_url (to its
 * POST /v1/revoke) what is queued past that server's cursor (push_cursor),
 * signed as the AS (a certificate for its own key, role as), and moves that
 * cursor once the server answered 200. Each server has its own cursor and
 * at most one request in flight, on one shared HTTPS client: a server that
 * is down holds back no other and gets its backlog on a later round.
 * Nothing is lost, and a server stores each entry idempotently, so sending
 * one again is harmless.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "ntm-as.h"
#include "prom.h"
#include "msg.h"

#define AS_PUSH_EVERY_S		2
#define AS_PUSH_BATCH		1024	/* entries per push (the CS's limit) */
#define AS_PUSH_TIMEOUT_MS	5000

/* One server of cs_url or revoke_url: its cursor and at most one request
 * in flight. */
struct push_cs {
	struct as_push		*push;
	const char		*url;		/* its key in push_cursor */
	char			*revoke;	/* {url}/v1/cs/revoke or {url}/v1/revoke */
	char			*health;	/* {url}/v1/health: its name */
	char			 name[NTM_NAME_MAX + 1];	/* "" until known */
	int			 cs;		/* of cs_url (else revoke_url) */
	int			 busy;
	int64_t			 cursor;	/* highest id it answered 200 for */
	int64_t			 first, last;	/* ids of the request in flight */
	int			 failing;	/* since its last 200: */
	int			 fail_err;	/* NTM_ERR_* of the last failure, or 0 */
	long			 fail_status;	/* and its HTTP status, or 0 */
	uint64_t		 pushed, failed;	/* requests answered 200, or not */
};

struct as_push {
	struct as		*as;
	struct ntm_httpc	*httpc;
	struct event		*timer;
	struct push_cs		 cs[SRV_CS_MAX + SRV_REVOKE_URLS];
	size_t			 ncs;
};

/* The queue's inserts each hold a transaction: on PostgreSQL that is the
 * writers' lock of store.c, so ids commit in the order they were given and
 * a cursor past one never skips another that commits later. */
int
as_revoke_queue_user(struct as_store *db, const char *user, int64_t now)
{
	int ret;

	if ((ret = as_sql_begin(db)) < 0)
		return ret;
	/* One entry per DC; it refuses every token issued until now. */
	ret = as_sql_run(db, "INSERT INTO revocations (\"user\", dc, before, created) "
	    "SELECT DISTINCT \"user\", dc, ?2, ?2 FROM tokens WHERE \"user\" = ?1 AND "
	    "expires > ?2", "sI", user, now);
	return as_sql_end(db, ret < 0 ? NTM_ERR_DB : ret);
}

/* The queued entries past cursor, at most AS_PUSH_BATCH: account
 * revocations into *acc, token revocations (token id as base64url, as the CS
 * wants it) into *tok; *first and *last are the lowest and highest ids among
 * them. How many rows were read, or -1 on a storage failure. */
static int
pending(struct as_store *db, int64_t cursor, json_t *acc, json_t *tok, json_t *srv,
    int64_t *first, int64_t *last)
{
	struct as_rows *r;
	json_t *e;
	int n = 0, rc;

	if (as_sql_query(db, &r, "SELECT id, \"user\", dc, before, token_id, serial FROM "
	    "revocations WHERE id > ?1 ORDER BY id LIMIT ?2", "Ii", cursor,
	    AS_PUSH_BATCH) < 0)
		return -1;
	while ((rc = as_rows_next(r)) == NTM_DB_ROW) {
		const char *hex = as_rows_text(r, 4);
		uint8_t raw[NTM_TOKEN_ID];
		char b64[NTM_B64_LEN(NTM_TOKEN_ID)];

		*last = as_rows_int(r, 0);
		if (n++ == 0)
			*first = *last;
		if (!as_rows_null(r, 5)) {
			struct ntm_m_revoke_server v = { .has = ~UINT32_C(0),
				.serial = as_rows_int(r, 5),
				.name = as_rows_text(r, 2) };

			if (ntm_msg_revoke_server_encode(&v, &e, NULL) == 0)
				json_array_append_new(srv, e);
			else
				log_warnx("revocation #%lld: bad server in the database, "
				    "skipped", (long long)*last);
		} else if (hex == NULL) {
			struct ntm_m_revoke_account a = { .has = ~UINT32_C(0),
				.user = as_rows_text(r, 1),
				.dc = as_rows_text(r, 2),
				.before = as_rows_int(r, 3) };

			if (ntm_msg_revoke_account_encode(&a, &e, NULL) == 0)
				json_array_append_new(acc, e);
			else
				log_warnx("revocation #%lld: bad account in the database, "
				    "skipped", (long long)*last);
		} else if (ntm_hex_decode_exact(raw, sizeof(raw), hex) >= 0 &&
		    ntm_b64_encode(b64, sizeof(b64), raw, sizeof(raw)) > 0) {
			struct ntm_m_revoke_token t = { .has = ~UINT32_C(0), .id = b64,
				.expires = as_rows_int(r, 3) };

			if (ntm_msg_revoke_token_encode(&t, &e, NULL) == 0)
				json_array_append_new(tok, e);
		} else
			log_warnx("revocation #%lld: bad token id in the database, skipped",
			    (long long)*last);
	}
	as_rows_free(r);
	return rc == 0 ? n : -1;
}

/* A token the DC ended (logout): queued for the CS. 0, NTM_ERR_NOTFOUND
 * (no such token issued for a client of dc), or a storage error. */
int
as_revoke_queue_token(struct as_store *db, const char *token_hex, const char *dc, int64_t now)
{
	int ret;

	if ((ret = as_sql_begin(db)) < 0)
		return ret;
	ret = as_sql_run(db, "INSERT INTO revocations (\"user\", dc, before, created, "
	    "token_id) SELECT \"user\", dc, expires, ?3, id FROM tokens WHERE id = ?1 AND "
	    "dc = ?2 AND expires > ?3", "ssI", token_hex, dc, now);
	return as_sql_end(db, ret < 0 ? NTM_ERR_DB : ret == 0 ? NTM_ERR_NOTFOUND : 0);
}

/* A server certificate revoked (`server revoke`): queued for every server. */
int
as_revoke_queue_server(struct as_store *db, int64_t serial, const char *name, int64_t now)
{
	int ret;

	if ((ret = as_sql_begin(db)) < 0)
		return ret;
	ret = as_sql_run(db, "INSERT INTO revocations (\"user\", dc, before, created, serial) "
	    "VALUES ('', ?1, ?2, ?2, ?3)", "sII", name, now, serial);
	return as_sql_end(db, ret < 0 ? ret : 0);
}

/* The cursor of cs: 0 (everything is still to be sent) without a row. */
static int
cursor_get(struct as_store *db, const char *cs, int64_t *id)
{
	int ret;

	*id = 0;
	ret = as_sql_int(db, id, "SELECT last_id FROM push_cursor WHERE cs = ?1", "s", cs);
	return ret == 0 || ret == NTM_ERR_NOTFOUND ? 0 : -1;
}

/* A cursor only moves forward (also when several AS share it). */
static int
cursor_set(struct as_store *db, const char *cs, int64_t id)
{
	return as_sql_run(db, "INSERT INTO push_cursor (cs, last_id) VALUES (?1, ?2) "
	    "ON CONFLICT (cs) DO UPDATE SET last_id = {greatest}(push_cursor.last_id, "
	    "excluded.last_id)", "sI", cs, id) < 0 ? -1 : 0;
}

/*
 * Migration 4 kept what the single cs_url of before had been sent as the
 * cursor of cs ''. The first start after the upgrade hands it to the one
 * configured CS when there is exactly one without a cursor of its own (the
 * same cs_url, as a rule), and drops it otherwise: a CS without a cursor
 * is sent everything again, which it stores idempotently.
 */
static int
adopt_old_mark(struct as_store *db, const char *only)
{
	int n;

	if (only != NULL) {
		if ((n = as_sql_run(db, "UPDATE push_cursor SET cs = ?1 WHERE cs = '' AND "
		    "NOT EXISTS (SELECT 1 FROM push_cursor WHERE cs = ?1)", "s", only)) < 0)
			return -1;
		if (n > 0)
			log_info("%s: revocations marked pushed before the upgrade count as "
			    "sent to it", only);
	}
	return as_sql_run(db, "DELETE FROM push_cursor WHERE cs = ''", NULL) < 0 ? -1 : 0;
}

/* A failure is logged as a warning when it is news (the first, or another
 * kind than the last; curl's texts vary), else at debug level. */
static void
push_failed(struct push_cs *c, int err, long status, const char *why)
{
	if (!c->failing || c->fail_err != err || c->fail_status != status)
		log_warnx("revocation push to %s: %s (retried every %d s)", c->url, why,
		    AS_PUSH_EVERY_S);
	else
		log_debug("revocation push to %s: %s", c->url, why);
	c->failing = 1;
	c->fail_err = err;
	c->fail_status = status;
}

static void
on_pushed(const struct ntm_http_result *res, void *arg)
{
	struct push_cs *c = arg;
	const char *code;
	char why[sizeof(res->errmsg) + 32];

	c->busy = 0;
	if (res->err == 0 && res->status == 200) {
		c->pushed++;
		/* Not recorded: sent again after a restart, which is harmless. */
		if (cursor_set(c->push->as->db, c->url, c->last) < 0)
			log_warnx("revocations: cannot record what %s was sent: %s", c->url,
			    as_db_errmsg(c->push->as->db));
		c->cursor = c->last;
		log_info("revocations #%lld..#%lld pushed to %s", (long long)c->first,
		    (long long)c->last, c->url);
		/* At the level of the failure it ends. */
		if (c->failing)
			log_warnx("revocation push to %s: answered again, sent up to #%lld",
			    c->url, (long long)c->cursor);
		c->failing = 0;
		return;
	}
	if (res->err)
		snprintf(why, sizeof(why), "%s", res->errmsg[0] ? res->errmsg :
		    ntm_strerror(res->err));
	else {
		code = ntm_error_code(res->json);
		snprintf(why, sizeof(why), "HTTP %ld%s%s", res->status, code ? " " : "",
		    code ? code : "");
	}
	c->failed++;
	push_failed(c, res->err, res->err ? 0 : res->status, why);
}

void
as_push_metrics(struct as *as, struct ntm_prom *p)
{
	struct as_push *ap = as->push;
	int64_t n;
	size_t i;

	if (ap == NULL || ap->ncs == 0)
		return;
	ntm_prom_family(p, "ntm_as_revocation_pushes_total", NTM_PROM_COUNTER,
	    "Revocation pushes to each server of cs_url and revoke_url, by result "
	    "(ok: answered 200)");
	for (i = 0; i < ap->ncs; i++) {
		ntm_prom_int(p, (const char *const[]){ "cs", ap->cs[i].url, "result", "ok",
		    NULL }, (int64_t)ap->cs[i].pushed);
		ntm_prom_int(p, (const char *const[]){ "cs", ap->cs[i].url, "result", "failed",
		    NULL }, (int64_t)ap->cs[i].failed);
	}
	ntm_prom_family(p, "ntm_as_revocations_pending", NTM_PROM_GAUGE,
	    "Revocations queued that a server has not taken yet");
	for (i = 0; i < ap->ncs; i++)
		if (as_sql_int(as->db, &n, "SELECT count(*) FROM revocations WHERE id > ?1",
		    "I", ap->cs[i].cursor) == 0)
			ntm_prom_int(p, (const char *const[]){ "cs", ap->cs[i].url, NULL }, n);
}

/* Its name, from its GET /v1/health: the pushes name it as their receiver,
 * so that it alone takes them (docs/protocol.md §2.2). */
static void
on_named(const struct ntm_http_result *res, void *arg)
{
	struct push_cs *c = arg;
	const char *role, *name;

	c->busy = 0;
	if (res->err || res->status != 200 || res->json == NULL) {
		c->failed++;
		push_failed(c, res->err, res->err ? 0 : res->status, res->err ? res->errmsg :
		    "GET /v1/health: no answer");
		return;
	}
	if ((name = srv_health_name(res->json, &role)) == NULL ||
	    (c->cs ? strcmp(role, "cs") != 0 : strcmp(role, "dc") != 0 &&
	    strcmp(role, "rs") != 0)) {
		c->failed++;
		push_failed(c, NTM_ERR_PROTO, 0, c->cs ? "not a cache server" :
		    "neither a DC nor a relay server");
		return;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	log_info("revocations go to %s as %s %s", c->url, role, name);
}

/* Sends c what is queued past its cursor, unless it has a request in flight. */
static void
push_to(struct push_cs *c)
{
	struct as_push *p = c->push;
	json_t *acc, *tok, *srv, *body;
	struct ntm_m_revoke m;
	int64_t shared;
	int e;

	if (c->busy)
		return;
	if (c->name[0] == '\0') {
		if ((e = ntm_httpc_request(p->httpc, "GET", c->health, NULL, NULL,
		    AS_PUSH_TIMEOUT_MS, on_named, c)) == 0)
			c->busy = 1;
		else
			push_failed(c, e, 0, ntm_strerror(e));
		return;
	}
	/* Another AS on the same store may have moved the shared cursor:
	 * what it pushed is not pushed again. */
	if (as_store_shared(p->as->db) && cursor_get(p->as->db, c->url, &shared) == 0 &&
	    shared > c->cursor)
		c->cursor = shared;
	acc = json_array();
	tok = json_array();
	srv = json_array();
	if (acc == NULL || tok == NULL || srv == NULL ||
	    pending(p->as->db, c->cursor, acc, tok, srv, &c->first, &c->last) <= 0) {
		json_decref(acc);
		json_decref(tok);
		json_decref(srv);
		return;
	}
	m = (struct ntm_m_revoke){ .version = NTM_PROTOCOL_VERSION, .accounts = acc,
		.tokens = tok, .servers = srv };
	e = ntm_msg_revoke_encode(&m, &body, NULL);
	json_decref(acc);
	json_decref(tok);
	json_decref(srv);
	if (e < 0)
		return;
	if ((e = ntm_httpc_request_to(p->httpc, "POST", c->revoke, c->name, body, NULL,
	    AS_PUSH_TIMEOUT_MS, on_pushed, c)) == 0)
		c->busy = 1;
	else
		push_failed(c, e, 0, ntm_strerror(e));
	json_decref(body);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct as_push *p = arg;
	size_t i;

	for (i = 0; i < p->ncs; i++)
		push_to(&p->cs[i]);
}

int
as_push_start(struct as *as)
{
	struct timeval tv = { AS_PUSH_EVERY_S, 0 };
	struct as_push *p;
	struct push_cs *c;
	struct ntm_cert self;
	size_t i;

	if (adopt_old_mark(as->db, as->conf.cs_count == 1 ? as->conf.cs_list[0] : NULL) < 0) {
		log_warnx("revocations: cannot update the push cursors: %s",
		    as_db_errmsg(as->db));
		return -1;
	}
	if (as->conf.cs_count == 0 && as->conf.revoke_count == 0)
		return 0;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	as->push = p;
	p->as = as;
	for (i = 0; i < as->conf.cs_count + as->conf.revoke_count; i++) {
		c = &p->cs[p->ncs++];
		c->push = p;
		if (i < as->conf.cs_count) {
			c->url = as->conf.cs_list[i];
			c->revoke = xasprintf("%s/v1/cs/revoke", c->url);
			c->cs = 1;
		} else {
			c->url = as->conf.revoke_list[i - as->conf.cs_count];
			c->revoke = xasprintf("%s/v1/revoke", c->url);
		}
		c->health = xasprintf("%s/v1/health", c->url);
		if (cursor_get(as->db, c->url, &c->cursor) < 0) {
			log_warnx("revocations: cannot read the push cursor of %s: %s", c->url,
			    as_db_errmsg(as->db));
			return -1;
		}
	}
	/* The AS vouches for itself: its own key, role as, signed by itself. */
	srv_anchor_cert(as->conf.name, as->sk, &self);
	if ((p->httpc = ntm_httpc_new(as->base, as->conf.ca_cert)) == NULL ||
	    ntm_httpc_set_identity(p->httpc, as->sk, &self) < 0 ||
	    (p->timer = event_new(as->base, -1, EV_PERSIST, on_timer, p)) == NULL ||
	    event_add(p->timer, &tv) < 0) {
		log_warnx("cannot set up the revocation push");
		return -1;
	}
	for (i = 0; i < p->ncs; i++)
		log_info("revocations are pushed to %s (sent so far: up to #%lld)",
		    p->cs[i].url, (long long)p->cs[i].cursor);
	return 0;
}

void
as_push_stop(struct as *as)
{
	struct as_push *p = as->push;
	size_t i;

	if (p == NULL)
		return;
	if (p->timer)
		event_free(p->timer);
	ntm_httpc_free(p->httpc);
	for (i = 0; i < p->ncs; i++) {
		free(p->cs[i].revoke);
		free(p->cs[i].health);
	}
	free(p);
	as->push = NULL;
}
