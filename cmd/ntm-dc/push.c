/*
 * push.c - the push webhook (docs/protocol.md §3.2, "Push notifications"):
 * when a route direction is queued for a client that gave a push URL at
 * login, the DC POSTs a small JSON notice there, so a device whose UDP
 * NUDGE does not arrive (asleep, NAT mapping gone) still hears of it.
 *
 * One attempt per direction, no retry: the direction stays queued anyway
 * and the client fetches it at its next registration. Bounded: at most
 * DC_PUSH_INFLIGHT requests at a time, each DC_PUSH_TIMEOUT_MS; more are
 * dropped and counted. The requests go through an HTTPS client of their
 * own with the DC's ca_file trust but no signing identity: the DC's
 * NTM-Cert / NTM-Signature headers are for other ntm servers, not for a
 * third party's push service.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dc.h"

/* One webhook request in flight. */
struct dc_push_req {
	struct dc_push_req	*next, **prevp;
	struct dc_push		*p;
	char			 fqdn[NTM_NAME_MAX + 1];
	char			 where[NTM_PUSH_URL_MAX + 1];	/* loggable form of the URL */
};

struct dc_push {
	struct ntm_httpc	*httpc;
	struct dc_push_req	*inflight;
	unsigned		 ninflight;
	uint64_t		 sent, failed, dropped;
};

static void
preq_free(struct dc_push_req *r)
{
	if (r->next)
		r->next->prevp = r->prevp;
	*r->prevp = r->next;
	r->p->ninflight--;
	free(r);
}

static void
on_pushed(const struct ntm_http_result *res, void *arg)
{
	struct dc_push_req *r = arg;
	struct dc_push *p = r->p;

	if (res->err < 0) {
		p->failed++;
		log_info("push %s to %s: %s", r->fqdn, r->where,
		    res->errmsg[0] ? res->errmsg : ntm_strerror(res->err));
	} else if (res->status >= 200 && res->status < 300) {
		p->sent++;
		log_info("push %s to %s: %ld", r->fqdn, r->where, res->status);
	} else {
		p->failed++;
		log_info("push %s to %s: answered %ld", r->fqdn, r->where, res->status);
	}
	preq_free(r);
}

void
dc_push_direction(struct dc *dc, int64_t client_id, const char *fqdn, int pending)
{
	dc_push_notice(dc, client_id, fqdn, "direction", pending);
}

void
dc_push_notice(struct dc *dc, int64_t client_id, const char *fqdn, const char *type,
    int pending)
{
	struct dc_push *p = dc->push;
	struct dc_push_req *r;
	char url[NTM_PUSH_URL_MAX + 1], where[NTM_PUSH_URL_MAX + 1];
	json_t *body;
	int e;

	if (p == NULL || dc_db_client_push(dc->db, client_id, url, sizeof(url)) < 0 ||
	    url[0] == '\0')
		return;
	ntm_push_url_loggable(url, where, sizeof(where));
	if (p->ninflight >= DC_PUSH_INFLIGHT) {
		p->dropped++;
		log_debug("push %s to %s: dropped (%u requests in flight)", fqdn, where,
		    p->ninflight);
		return;
	}
	body = json_pack("{s:i, s:s, s:s, s:i, s:s}", "version", NTM_PROTOCOL_VERSION,
	    "type", type, "fqdn", fqdn, "pending", pending,
	    "dc", dc->srv->conf.name);
	if (body == NULL || (r = calloc(1, sizeof(*r))) == NULL) {
		json_decref(body);
		p->failed++;
		log_info("push %s to %s: out of memory", fqdn, where);
		return;
	}
	r->p = p;
	snprintf(r->fqdn, sizeof(r->fqdn), "%s", fqdn);
	snprintf(r->where, sizeof(r->where), "%s", where);
	if ((e = ntm_httpc_request(p->httpc, "POST", url, body, NULL, DC_PUSH_TIMEOUT_MS,
	    on_pushed, r)) < 0) {
		p->failed++;
		log_info("push %s to %s: cannot start the request: %s", fqdn, where,
		    ntm_strerror(e));
		free(r);
	} else {
		/* Owned by the in-flight list until on_pushed frees it. */
		r->next = p->inflight;
		if (r->next)
			r->next->prevp = &r->next;
		r->prevp = &p->inflight;
		p->inflight = r;
		p->ninflight++;
	}
	json_decref(body);
}

json_t *
dc_push_stats(struct dc *dc)
{
	const struct dc_push *p = dc->push;

	if (p == NULL)
		return json_object();
	return json_pack("{s:I, s:I, s:I, s:I}", "push_sent", (json_int_t)p->sent,
	    "push_failed", (json_int_t)p->failed, "push_dropped", (json_int_t)p->dropped,
	    "push_in_flight", (json_int_t)p->ninflight);
}

int
dc_push_init(struct dc *dc, char *err, size_t errlen)
{
	struct srv *s = dc->srv;
	struct dc_push *p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dc->push = p;
	if ((p->httpc = ntm_httpc_new(s->base, s->conf.ca_file)) == NULL) {
		snprintf(err, errlen, "cannot set up the HTTPS client for push%s%s",
		    s->conf.ca_file ? " with ca_file " : "",
		    s->conf.ca_file ? s->conf.ca_file : "");
		return -1;
	}
	/* A fresh connection each time: pushes are rare and go to many hosts. */
	ntm_httpc_set_reuse(p->httpc, 0);
	return 0;
}

void
dc_push_free(struct dc *dc)
{
	struct dc_push *p = dc->push;

	if (p == NULL)
		return;
	ntm_httpc_free(p->httpc);	/* no callbacks: free what was in flight */
	while (p->inflight)
		preq_free(p->inflight);
	free(p);
	dc->push = NULL;
}
