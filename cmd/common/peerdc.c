/*
 * peerdc.c - find a domain's DC, then POST a signed request to it
 * (peerdc.h).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "peerdc.h"

/* Overwrites every string in j (the sent body may hold keys). */
static void
wipe_strings(json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_string(j))
		ntm_wipe((char *)json_string_value(j), json_string_length(j));
	else if (json_is_object(j)) {
		json_object_foreach(j, k, v)
			wipe_strings(v);
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			wipe_strings(v);
	}
}

static void
on_answer(const struct ntm_http_result *res, void *arg)
{
	struct peerdc *p = arg;

	p->done(p, PEERDC_ANSWER, res->err, res, p->arg);
}

static void
on_found(int err, const char *url, const char *host, uint16_t port, const char *addr,
    void *arg)
{
	struct peerdc *p = arg;
	char u[sizeof(p->url) + 64];
	json_t *body = NULL;
	int e;

	if (err < 0) {
		p->done(p, PEERDC_LOOKUP, err, NULL, p->arg);
		return;
	}
	snprintf(p->url, sizeof(p->url), "%s", url);
	if ((e = p->body(p, &body, p->arg)) == 1)
		return;
	if (e == 0) {
		snprintf(u, sizeof(u), "%s%s", p->url, p->path);
		e = ntm_httpc_request(p->httpc, "POST", u, body, NULL, p->timeout_ms,
		    on_answer, p);
	}
	if (body) {
		wipe_strings(body);
		json_decref(body);
	}
	if (e < 0)
		p->done(p, PEERDC_START, e, NULL, p->arg);
}

int
peerdc_post(struct peerdc *p, struct disc *d, struct ntm_httpc *httpc, const char *domain,
    const char *path, long timeout_ms, peerdc_body_fn *body, peerdc_done_fn *done,
    void *arg)
{
	p->url[0] = '\0';
	p->path = path;
	p->httpc = httpc;
	p->timeout_ms = timeout_ms;
	p->body = body;
	p->done = done;
	p->arg = arg;
	return disc_lookup(d, domain, on_found, p);
}
