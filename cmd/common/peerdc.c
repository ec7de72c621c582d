/*
 * peerdc.c - find a domain's DC, then POST a signed request to it
 * (peerdc.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

/*
 * Only the domain's DC, as the AS enrolled it, answers for it: an answer
 * not signed by a certificate of role dc with the domain's name (a server
 * that holds a TLS certificate for the name, from whatever CA, but not
 * the DC's key) is a failure, whatever its status.
 */
int
peerdc_checked(const struct ntm_http_result *res, const char *domain, const char *url,
    struct ntm_http_result *out)
{
	if (res->err != 0 || (res->peer && res->peer->role == NTM_ROLE_DC &&
	    strcasecmp(res->peer->name, domain) == 0))
		return 0;
	*out = *res;
	out->err = NTM_ERR_IDENTITY;
	out->json = NULL;
	if (res->peer == NULL)
		snprintf(out->errmsg, sizeof(out->errmsg), "the answer (HTTP %ld) is not "
		    "from the DC of %.64s: %.120s", res->status, domain, res->peer_why);
	else
		snprintf(out->errmsg, sizeof(out->errmsg), "the answer (HTTP %ld) is signed "
		    "by %s '%.64s', not by the DC of %.64s", res->status,
		    ntm_role_name(res->peer->role), res->peer->name, domain);
	log_warnx("%s: %s", url, out->errmsg);
	return -1;
}

static void
on_answer(const struct ntm_http_result *res, void *arg)
{
	struct peerdc *p = arg;
	struct ntm_http_result r;
	char url[sizeof(p->url) + 64];

	snprintf(url, sizeof(url), "%s%s", p->url, p->path);
	if (peerdc_checked(res, p->domain, url, &r) < 0)
		res = &r;
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
		/* For the domain's DC only: no other server takes it. */
		e = ntm_httpc_request_to(p->httpc, "POST", u, p->domain, body, NULL,
		    p->timeout_ms, on_answer, p);
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
	snprintf(p->domain, sizeof(p->domain), "%s", domain);
	p->path = path;
	p->httpc = httpc;
	p->timeout_ms = timeout_ms;
	p->body = body;
	p->done = done;
	p->arg = arg;
	return disc_lookup(d, domain, on_found, p);
}
