/*
 * renew.c - a DC, RS or CS renews its own AS certificate before it expires
 * (docs/protocol.md §3.1, POST /v1/as/renew): when a third of its lifetime
 * is left (or cert_renew_before_s before its end), checked at start and
 * every RENEW_CHECK_S, every RENEW_RETRY_S after a failure. The new one
 * must be for the same serial, role, name and key, signed by the AS key,
 * and last longer; it is written back to the cert file (durably) and taken
 * at once: answers to signed requests, the daemon's signed requests (its
 * cert_renewed hook) and, at a DC, relay tickets (which read s->cert).
 * Without as_url nothing is asked; a certificate near its end is then
 * logged. With it, the AS's name is learnt first (its GET /v1/health;
 * again at each check until known): requests to the AS name it as their
 * receiver (docs/protocol.md §2.2). With several AS in as_url (one
 * store), a failed renewal is asked of the next at once, each AS once a
 * round; a failed name lookup moves to the next for the next check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "srv.h"
#include "msg.h"
#include "ntm-io.h"

#define RENEW_CHECK_S		3600
#define RENEW_RETRY_S		300
#define RENEW_TIMEOUT_MS	10000
#define RENEW_NAME_RETRY_S	10

struct srv_renew {
	struct srv		*s;
	struct ntm_httpc	*httpc;
	struct event		*timer;
	char			*url;		/* {as}/v1/as/renew */
	char			*health;	/* {as}/v1/health */
	size_t			 at;		/* the AS of as_url asked */
	size_t			 tried;		/* AS that failed this round */
	size_t			 renew_at, health_at;	/* the AS each request went to */
	int			 busy, name_busy;
	uint64_t		 renewed, failed;
};

/* When to ask: a third of the lifetime before the end, or the configured
 * time before it. */
static int64_t
due_at(const struct srv *s)
{
	const struct ntm_cert *c = &s->cert;
	int64_t before = s->conf.cert_renew_before_s;

	if (before <= 0)
		before = (c->not_after - c->not_before) / 3;
	return c->not_after - before;
}

static void
arm(struct srv_renew *r, long secs)
{
	struct timeval tv = { secs, 0 };

	evtimer_add(r->timer, &tv);
}

/* The answer's certificate, checked; 0 or -1 with why. */
static int
take(struct srv *s, const struct ntm_http_result *res, struct ntm_cert *c, char *why,
    size_t wlen)
{
	struct ntm_m_as_renew_ok m;
	struct ntm_jerr jerr;
	int e;

	if (res->err) {
		snprintf(why, wlen, "%s", res->errmsg[0] ? res->errmsg : ntm_strerror(res->err));
		return -1;
	}
	if (res->status != 200) {
		snprintf(why, wlen, "HTTP %ld %s", res->status,
		    ntm_error_code(res->json) ? ntm_error_code(res->json) : "");
		return -1;
	}
	if (res->json == NULL || ntm_msg_as_renew_ok_decode(res->json, &m, &jerr) < 0 ||
	    ntm_cert_from_b64(c, m.cert) < 0) {
		snprintf(why, wlen, "the AS's answer holds no certificate");
		return -1;
	}
	if ((e = ntm_cert_verify(c, s->conf.as_pk, now_unix())) != 0) {
		snprintf(why, wlen, "the certificate it gave %s", e == NTM_ERR_EXPIRED ?
		    "is not valid now" : "is not signed by the AS key");
		return -1;
	}
	if (c->serial != s->cert.serial || c->role != s->cert.role ||
	    strcmp(c->name, s->cert.name) != 0 ||
	    ntm_memcmp(c->pk, s->cert.pk, sizeof(c->pk)) != 0) {
		snprintf(why, wlen, "the certificate it gave is for another server");
		return -1;
	}
	if (c->not_after <= s->cert.not_after) {
		snprintf(why, wlen, "the certificate it gave lasts no longer");
		return -1;
	}
	return 0;
}

/* The URLs of the AS of as_url at r->at. */
static void
point(struct srv_renew *r)
{
	const struct srv_conf *c = &r->s->conf;
	const char *as = c->as_list[r->at % c->as_count];

	free(r->url);
	free(r->health);
	r->url = xasprintf("%s/v1/as/renew", as);
	r->health = xasprintf("%s/v1/health", as);
}

/* The AS at failed: the next one from now on, unless another request
 * moved on from it already. */
static void
next_as(struct srv_renew *r, size_t at)
{
	if (r->s->conf.as_count > 1 && r->at == at) {
		r->at = (at + 1) % r->s->conf.as_count;
		point(r);
	}
}

static void
on_renewed(const struct ntm_http_result *res, void *arg)
{
	struct srv_renew *r = arg;
	struct srv *s = r->s;
	struct ntm_cert c;
	char why[512], b64[NTM_B64_LEN(NTM_CERT_MAX) + 1];
	int e;

	r->busy = 0;
	if (take(s, res, &c, why, sizeof(why)) < 0) {
		const char *as = s->conf.as_list[r->renew_at % s->conf.as_count];

		r->failed++;
		next_as(r, r->renew_at);
		if (++r->tried < s->conf.as_count) {
			log_warnx("certificate renewal at %s/v1/as/renew: %s (asking the next "
			    "AS)", as, why);
			arm(r, 0);
			return;
		}
		log_warnx("certificate renewal at %s/v1/as/renew: %s (tried again in %d s)",
		    as, why, RENEW_RETRY_S);
		r->tried = 0;
		arm(r, RENEW_RETRY_S);
		return;
	}
	s->cert = c;
	r->renewed++;
	r->tried = 0;
	if (ntm_httpc_set_identity(r->httpc, s->sk, &s->cert) < 0 ||
	    ntm_httpd_set_identity(s->httpd, s->sk, &s->cert) < 0 ||
	    (s->spec->cert_renewed && s->spec->cert_renewed(s) < 0))
		log_warnx("certificate renewed, but not every user of it took it");
	/* Kept for the next start; a failure here loses nothing now. */
	if (ntm_cert_to_b64(&c, b64, sizeof(b64) - 1) < 0 ||
	    (e = ntm_file_write(s->conf.cert, b64, strlen(b64), 0600)) < 0)
		log_warnx("certificate renewed until %lld, but %s cannot be written: the "
		    "old one is read at the next start", (long long)c.not_after, s->conf.cert);
	else
		log_info("certificate serial %llu renewed until %lld (%s)",
		    (unsigned long long)c.serial, (long long)c.not_after, s->conf.cert);
	arm(r, RENEW_CHECK_S);
}

static void
on_health(const struct ntm_http_result *res, void *arg)
{
	struct srv_renew *r = arg;
	const char *role, *name;

	r->name_busy = 0;
	if (res->err || res->status != 200 || res->json == NULL) {
		log_debug("GET %s/v1/health: %s", r->s->conf.as_list[r->health_at %
		    r->s->conf.as_count], res->err ? res->errmsg : "no answer");
		next_as(r, r->health_at);
		return;
	}
	if ((name = srv_health_name(res->json, &role)) == NULL || strcmp(role, "as") != 0) {
		log_warnx("GET %s: not an account server's answer", r->health);
		return;
	}
	snprintf(r->s->as_name, sizeof(r->s->as_name), "%s", name);
	log_debug("the account server is %s: requests to it name it", name);
}

static void
learn_name(struct srv_renew *r)
{
	if (r->httpc == NULL || r->name_busy || r->s->as_name[0])
		return;
	r->health_at = r->at;
	if (ntm_httpc_request(r->httpc, "GET", r->health, NULL, NULL, RENEW_TIMEOUT_MS,
	    on_health, r) == 0)
		r->name_busy = 1;
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct srv_renew *r = arg;
	struct srv *s = r->s;
	json_t *body;
	int64_t now = now_unix(), due = due_at(s);
	int e;

	learn_name(r);
	if (r->busy)
		return;
	if (now < due) {
		long secs = due - now < RENEW_CHECK_S ? (long)(due - now) : RENEW_CHECK_S;

		/* The AS's name still unknown (it was down): asked again soon. */
		if (r->httpc && !s->as_name[0] && secs > RENEW_NAME_RETRY_S)
			secs = RENEW_NAME_RETRY_S;
		arm(r, secs);
		return;
	}
	if (r->httpc == NULL) {
		log_warnx("certificate serial %llu ends at %lld and nothing renews it: set "
		    "as_url", (unsigned long long)s->cert.serial, (long long)s->cert.not_after);
		arm(r, RENEW_CHECK_S);
		return;
	}
	body = json_pack("{s:i}", "version", NTM_PROTOCOL_VERSION);
	r->renew_at = r->at;
	e = body ? ntm_httpc_request_to(r->httpc, "POST", r->url, srv_as_name(s), body, NULL,
	    RENEW_TIMEOUT_MS, on_renewed, r) : NTM_ERR_NOMEM;
	json_decref(body);
	if (e < 0) {
		r->failed++;
		log_warnx("certificate renewal: %s", ntm_strerror(e));
		arm(r, RENEW_RETRY_S);
		return;
	}
	r->busy = 1;
}

int
srv_renew_start(struct srv *s, char *err, size_t errlen)
{
	struct srv_renew *r;

	if (s->spec->anchor || s->check_only)
		return 0;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->renew = r;
	r->s = s;
	if ((r->timer = evtimer_new(s->base, on_timer, r)) == NULL) {
		snprintf(err, errlen, "cannot start the certificate renewal timer");
		return -1;
	}
	if (s->conf.as_count > 0) {
		point(r);
		if ((r->httpc = ntm_httpc_new(s->base, s->conf.ca_file)) == NULL ||
		    ntm_httpc_set_identity(r->httpc, s->sk, &s->cert) < 0) {
			snprintf(err, errlen, "cannot set up the certificate renewal");
			return -1;
		}
	}
	arm(r, 0);
	return 0;
}

void
srv_renew_stop(struct srv *s)
{
	struct srv_renew *r = s->renew;

	if (r == NULL)
		return;
	if (r->timer)
		event_free(r->timer);
	ntm_httpc_free(r->httpc);
	free(r->url);
	free(r->health);
	free(r);
	s->renew = NULL;
}
