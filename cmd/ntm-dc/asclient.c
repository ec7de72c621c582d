/*
 * asclient.c - the DC's requests to the AS (POST /v1/as/login, device,
 * cstoken, logout), over the AS of as_url in order.
 *
 * as_url may list several AS processes sharing one store (ntm-as(8),
 * Storage). The DC asks the one it holds as current (the first at start);
 * a request that gets no answer from it (no connection, a timeout, a
 * broken exchange) or a 502/503/504 is sent again, at once, to the next,
 * which becomes current; each AS is asked at most once per request, so a
 * request waits at most as_count x as_timeout_ms. A request answered by
 * the AS, whatever it says, goes back to its caller. The DC stays with the
 * AS that answered until that one fails in turn.
 *
 * A request sent again may have been done by the AS that went silent (a
 * login's token issued, then the AS killed before it answered): what the
 * next AS does on top of it is harmless (another token for the same
 * login; a logout queued twice, which the servers keep once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dc.h"

struct dc_asreq {
	struct dc_asreq	 *next, **prevp;
	struct dc	 *dc;
	char		  what[16];	/* after /v1/as/ */
	json_t		 *body;		/* a private copy, wiped when done */
	size_t		  at;		/* the AS asked now */
	size_t		  tries;
	ntm_httpc_cb	 *cb;
	void		 *arg;
};

/* Overwrites the body's strings in place before it goes (a password, a
 * sealed login): jansson keeps private copies. */
static void
wipe_strings(json_t *o)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v)
		if (json_is_string(v))
			ntm_wipe((char *)json_string_value(v), json_string_length(v));
}

static void
asreq_free(struct dc_asreq *q)
{
	if (q == NULL)
		return;
	if (q->prevp) {
		if (q->next)
			q->next->prevp = q->prevp;
		*q->prevp = q->next;
	}
	wipe_strings(q->body);
	json_decref(q->body);
	free(q);
}

const char *
dc_as_current(const struct dc *dc)
{
	const struct srv_conf *c = &dc->srv->conf;

	return c->as_count ? c->as_list[dc->as_cur % c->as_count] : "(no as_url)";
}

static void on_answer(const struct ntm_http_result *res, void *arg);

static int
asreq_send(struct dc_asreq *q)
{
	const struct srv_conf *c = &q->dc->srv->conf;
	char *url;
	int e;

	url = xasprintf("%s/v1/as/%s", c->as_list[q->at % c->as_count], q->what);
	q->tries++;
	e = ntm_httpc_request_to(q->dc->httpc, "POST", url, srv_as_name(q->dc->srv), q->body,
	    NULL, c->as_timeout_ms, on_answer, q);
	free(url);
	return e;
}

/* No answer from that AS: worth asking the next. */
static int
unanswered(const struct ntm_http_result *res)
{
	return res->err < 0 || res->status == 502 || res->status == 503 ||
	    res->status == 504;
}

static void
on_answer(const struct ntm_http_result *res, void *arg)
{
	struct dc_asreq *q = arg;
	struct dc *dc = q->dc;
	size_t n = dc->srv->conf.as_count;

	if (unanswered(res) && q->tries < n) {
		size_t next = (q->at + 1) % n;

		/* The first request to find it silent moves the DC on; the
		 * others in flight to it follow without a word. */
		if (dc->as_cur % n == q->at) {
			dc->as_cur = next;
			dc->as_failovers++;
			log_warnx("AS %s: %s; asking %s from now on", dc->srv->conf.as_list[q->at],
			    res->err < 0 ? (res->errmsg[0] ? res->errmsg : ntm_strerror(res->err)) :
			    "answered 5xx", dc->srv->conf.as_list[next]);
		}
		q->at = next;
		if (asreq_send(q) == 0) {
			dc->as_resent++;
			return;
		}
	}
	q->cb(res, q->arg);
	asreq_free(q);
}

int
dc_as_post(struct dc *dc, const char *what, json_t *body, ntm_httpc_cb *cb, void *arg)
{
	struct dc_asreq *q;
	int e;

	if (dc->srv->conf.as_count == 0 || strlen(what) >= sizeof(q->what))
		return NTM_ERR_INVAL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NTM_ERR_NOMEM;
	if ((q->body = json_deep_copy(body)) == NULL) {
		free(q);
		return NTM_ERR_NOMEM;
	}
	snprintf(q->what, sizeof(q->what), "%s", what);
	q->dc = dc;
	q->cb = cb;
	q->arg = arg;
	q->at = dc->as_cur % dc->srv->conf.as_count;
	if ((e = asreq_send(q)) < 0) {
		asreq_free(q);
		return e;
	}
	q->next = dc->asreqs;
	if (q->next)
		q->next->prevp = &q->next;
	q->prevp = &dc->asreqs;
	dc->asreqs = q;
	return 0;
}

json_t *
dc_as_stats(struct dc *dc)
{
	long at_as, waiting;

	dc_login_counts(dc, &at_as, &waiting);
	return json_pack("{s:I, s:I, s:I, s:I}", "failovers", (json_int_t)dc->as_failovers,
	    "resent", (json_int_t)dc->as_resent, "logins_at_as", (json_int_t)at_as,
	    "logins_waiting", (json_int_t)waiting);
}

void
dc_as_cancel(struct dc *dc)
{
	while (dc->asreqs)
		asreq_free(dc->asreqs);
}
