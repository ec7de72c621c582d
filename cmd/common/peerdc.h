/*
 * peerdc.h - "find a domain's DC, then make a signed request to it", for
 * the DC (tunnels, exchange keys, MOVED) and the CS (announcements): DNS
 * SRV through discover.h, then a POST on the httpc that carries the
 * daemon's identity (signed, TLS verified against the AS's CA).
 *
 * Each caller keeps its own answers: peerdc reports which step failed and
 * the caller maps it (disc_status() for a lookup, its own wording for the
 * rest).
 */
#ifndef NTM_PEERDC_H
#define NTM_PEERDC_H

#include "discover.h"

struct ntm_http_result;
struct peerdc;

enum peerdc_step {
	PEERDC_LOOKUP,	/* err: disc_lookup's callback said so (disc_status) */
	PEERDC_START,	/* err: the body or the request could not be made */
	PEERDC_ANSWER,	/* res: the DC's answer, or the transport's failure */
};

/*
 * Makes the body once the DC is found (p->url is set): 0 with *body (new
 * reference), a negative NTM_ERR_* (done then runs with PEERDC_START), or
 * 1: nothing to send any more, and the caller has finished the request
 * itself (done does not run).
 */
typedef int peerdc_body_fn(struct peerdc *p, json_t **body, void *arg);
/* Runs once per request, unless body returned 1. res is set for
 * PEERDC_ANSWER only; borrowed for the call. An answer not signed by the
 * domain's DC (docs/protocol.md §2.2) comes as res->err NTM_ERR_IDENTITY
 * with errmsg saying so. */
typedef void peerdc_done_fn(struct peerdc *p, enum peerdc_step step, int err,
    const struct ntm_http_result *res, void *arg);

/* One request; the caller owns it (inside its own job) and keeps it until
 * done runs or the disc and httpc are freed (which cancel it). */
struct peerdc {
	char			 url[320];	/* "https://host:port" once found */
	char			 domain[NTM_NAME_MAX + 1];	/* whose DC answers */
	const char		*path;		/* "/v1/dc/..."; static */
	struct ntm_httpc	*httpc;
	long			 timeout_ms;
	peerdc_body_fn		*body;
	peerdc_done_fn		*done;
	void			*arg;
};

/*
 * Looks up domain's DC on d, then POSTs the body to url + path on httpc
 * within timeout_ms. The body's strings are wiped once it was sent (it may
 * carry keys). Returns 0, or disc_lookup's error at once (done does not
 * run; map it with disc_status).
 */
int peerdc_post(struct peerdc *p, struct disc *d, struct ntm_httpc *httpc,
    const char *domain, const char *path, long timeout_ms, peerdc_body_fn *body,
    peerdc_done_fn *done, void *arg);

/*
 * The answer res came from the domain's DC (signed by a certificate of
 * role dc with that name; docs/protocol.md §2.2): 0. Else -1 with *out a
 * copy of res whose err is NTM_ERR_IDENTITY and errmsg says why (logged
 * with url). A transport failure (res->err set) is 0: the caller has it.
 */
int peerdc_checked(const struct ntm_http_result *res, const char *domain, const char *url,
    struct ntm_http_result *out);

#endif
