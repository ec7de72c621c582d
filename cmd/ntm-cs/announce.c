/*
 * announce.c - the CS tells each recipient's DC about an object it stores:
 * the paper's encryption key exchange request (kind "key") and data
 * exchange request (kind "data"); docs/protocol.md §7.7.
 *
 *   commit -> dests rows (announced NULL) -> kick
 *   due row -> SRV _ntm._tcp.<recipient's domain> (peerdc.h, `resolver`)
 *           -> signed POST https://<DC>/v1/dc/announce (role cs)
 *           -> 200: announced | 404 unknown_peer: failed | else: retry later
 *
 * The state lives in the dests table, so a restart resumes where it was: a
 * destination is tried until its DC takes it, says there is no such client,
 * or the object expires; the waits between tries double from 2 s
 * up to announce_retry_max_s (retry_wait_s). At most CS_ANN_INFLIGHT
 * announcements run at once; a timer looks for due rows every second.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "cs.h"
#include "discover.h"
#include "peerdc.h"
#include "msg.h"

#define CS_ANN_INFLIGHT		32	/* announcements running at once */
#define CS_ANN_TICK_S		1	/* how often due rows are looked for */

struct cs_ann_job {
	struct cs_ann_job	*next;
	struct cs_announcer	*a;
	char			 sha256[CS_HEX_HASH + 1];
	char			 fqdn[NTM_NAME_MAX + 1];
	char			 domain[NTM_NAME_MAX + 1];
	int			 attempts;	/* before this one */
	struct peerdc		 peer;		/* the recipient's DC */
};

struct cs_announcer {
	struct cs		*cs;
	struct disc		*disc;
	struct ntm_httpc	*httpc;
	struct event		*timer, *kick;
	struct cs_ann_job	*jobs;
	int			 njobs;
	char			*self;		/* the URL recipients fetch from */
};

static void job_finish(struct cs_ann_job *j, enum cs_ann_result r, const char *code,
    const char *fmt, ...) NTM_PRINTF(4, 5);

static void
job_unlink(struct cs_ann_job *j)
{
	struct cs_ann_job **pp;

	for (pp = &j->a->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			j->a->njobs--;
			return;
		}
}

/* Records the outcome of one try and frees j. */
static void
job_finish(struct cs_ann_job *j, enum cs_ann_result r, const char *code, const char *fmt, ...)
{
	struct cs_announcer *a = j->a;
	int64_t now = now_unix(), when = now;
	char msg[256] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	if (r == CS_ANN_RETRY)
		when = now + retry_wait_s(j->attempts, a->cs->srv->conf.announce_retry_max_s);
	if ((unsigned)r < sizeof(a->cs->announced) / sizeof(a->cs->announced[0]))
		a->cs->announced[r]++;
	if (cs_db_announced(a->cs->db, j->sha256, j->fqdn, r, when, code, msg) < 0)
		log_warnx("object %s -> %s: cannot record the announcement", j->sha256, j->fqdn);
	if (r == CS_ANN_OK)
		log_info("object %s: announced to %s at %s", j->sha256, j->fqdn, j->domain);
	else
		log_info("object %s: announcement to %s %s: %s: %s", j->sha256, j->fqdn,
		    r == CS_ANN_FAILED ? "failed" : "will be tried again", code, msg);
	cs_meta_wake(a->cs, j->sha256);
	job_unlink(j);
	free(j);
	event_active(a->kick, EV_TIMEOUT, 0);
}

static void
on_sent(const struct ntm_http_result *res, struct cs_ann_job *j)
{
	const char *code = NULL, *message = NULL;
	struct ntm_m_error e;

	if (res->err < 0) {
		job_finish(j, CS_ANN_RETRY, "upstream_unavailable", "DC %s: %s", j->domain,
		    res->errmsg[0] ? res->errmsg : ntm_strerror(res->err));
		return;
	}
	if (res->status == 200) {
		job_finish(j, CS_ANN_OK, NULL, NULL);
		return;
	}
	if (ntm_error_read(res->json, &e) == 0) {
		code = e.code;
		message = e.message;
	}
	/* Only the DC's word that its client does not exist is final. */
	if (res->status == 404 && code && strcmp(code, "unknown_peer") == 0)
		job_finish(j, CS_ANN_FAILED, code, "DC %s: %s", j->domain,
		    message ? message : code);
	else
		job_finish(j, CS_ANN_RETRY, code && strcmp(code, "queue_full") == 0 ? code :
		    "upstream_unavailable", "DC %s answered %ld %s%s%s", j->domain,
		    res->status, code ? code : "(no code)", message ? ": " : "",
		    message ? message : "");
}

/* The announcement, once the DC is found; 1 when the job is over already. */
static int
announce_body(struct peerdc *p, json_t **body, void *arg)
{
	struct cs_ann_job *j = arg;
	struct cs_announcer *a = j->a;
	struct ntm_m_announce m;
	struct ntm_jerr jerr;
	struct cs_obj o;
	int e;

	if ((e = cs_db_obj_get(a->cs->db, j->sha256, &o)) < 0 || o.expires <= now_unix()) {
		/* Removed or expired meanwhile: nothing left to announce. */
		job_unlink(j);
		free(j);
		return 1;
	}
	m = (struct ntm_m_announce){ .version = NTM_PROTOCOL_VERSION, .from = o.from,
		.to = j->fqdn, .kind = o.kind, .cs = a->self, .sha256 = o.sha256,
		.size = o.size, .expires = o.expires, .app = o.app, .service = o.service,
		.item = o.item, .notify = o.notify };
	if ((e = ntm_msg_announce_encode(&m, body, &jerr)) == NTM_ERR_JSON) {
		/* A stored object no DC would take: trying again cannot help. */
		job_finish(j, CS_ANN_FAILED, "bad_field", "%s", jerr.message);
		return 1;
	}
	return e;
}

static void
on_done(struct peerdc *p, enum peerdc_step step, int err, const struct ntm_http_result *res,
    void *arg)
{
	struct cs_ann_job *j = arg;
	const char *code;
	char msg[256];
	int st;

	switch (step) {
	case PEERDC_LOOKUP:
		st = disc_status(err, j->domain, &code, msg, sizeof(msg));
		job_finish(j, st == 404 ? CS_ANN_FAILED : CS_ANN_RETRY, code, "%s", msg);
		break;
	case PEERDC_START:
		if (err == NTM_ERR_NOMEM)
			job_finish(j, CS_ANN_RETRY, "internal", "out of memory");
		else
			job_finish(j, CS_ANN_RETRY, "upstream_unavailable", "DC %s: cannot "
			    "start the request: %s", j->domain, ntm_strerror(err));
		break;
	case PEERDC_ANSWER:
		on_sent(res, j);
		break;
	}
}

static int
take(const char *sha256, const char *fqdn, int attempts, void *arg)
{
	struct cs_announcer *a = arg;
	struct cs_ann_job *j;
	const char *domain;
	int e;

	if (a->njobs >= CS_ANN_INFLIGHT)
		return 0;
	for (j = a->jobs; j; j = j->next)
		if (strcmp(j->sha256, sha256) == 0 && strcmp(j->fqdn, fqdn) == 0)
			return 0;		/* running */
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return 0;			/* tried on a later tick */
	j->a = a;
	j->attempts = attempts;
	snprintf(j->sha256, sizeof(j->sha256), "%s", sha256);
	snprintf(j->fqdn, sizeof(j->fqdn), "%s", fqdn);
	j->next = a->jobs;
	a->jobs = j;
	a->njobs++;
	if ((domain = fqdn_domain(fqdn)) == NULL) {
		job_finish(j, CS_ANN_FAILED, "unknown_peer", "%s has no domain", fqdn);
		return 0;
	}
	snprintf(j->domain, sizeof(j->domain), "%s", domain);
	if ((e = peerdc_post(&j->peer, a->disc, a->httpc, domain, "/v1/dc/announce",
	    a->cs->srv->conf.as_timeout_ms, announce_body, on_done, j)) < 0) {
		const char *code;
		char msg[256];
		int st = disc_status(e, domain, &code, msg, sizeof(msg));

		job_finish(j, st == 404 ? CS_ANN_FAILED : CS_ANN_RETRY, code, "%s", msg);
	}
	return 0;
}

static void
run(evutil_socket_t fd, short what, void *arg)
{
	struct cs_announcer *a = arg;

	if (a->njobs >= CS_ANN_INFLIGHT)
		return;
	/* Rows running now are listed too and skipped: ask for that many more. */
	if (cs_db_due(a->cs->db, now_unix(), CS_ANN_INFLIGHT + a->njobs, take, a) < 0)
		log_warnx("cannot read the announcements due");
}

void
cs_announce_kick(struct cs *cs)
{
	if (cs->ann)
		event_active(cs->ann->kick, EV_TIMEOUT, 0);
}

/* The URL recipients are given: public_url, else https://NAME:PORT, the
 * certificate name and the port of listen. A DC takes only a URL whose host
 * is the announcing CS's certificate name (docs/protocol.md §3.4). NULL
 * when that is no URL. */
static char *
self_url(const struct srv_conf *cf)
{
	const char *port = strrchr(cf->listen, ':');
	char *u;

	if (cf->public_url)
		return xstrdup(cf->public_url);
	if (port == NULL)
		return NULL;
	u = xasprintf("https://%s%s", cf->name, port);
	if (!ntm_valid_push_url(u)) {
		free(u);
		return NULL;
	}
	return u;
}

int
cs_announce_start(struct cs *cs, char *err, size_t errlen)
{
	const struct srv_conf *cf = &cs->srv->conf;
	struct timeval tv = { CS_ANN_TICK_S, 0 };
	struct cs_announcer *a;

	if (cf->resolver == NULL) {
		log_info("no resolver: objects are stored but not announced to DCs");
		return 0;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cs->ann = a;
	a->cs = cs;
	if ((a->self = self_url(cf)) == NULL) {
		snprintf(err, errlen, "%s: https://%s is no URL: set public_url, the https "
		    "URL clients reach this CS at", cf->path, cf->listen);
		return -1;
	}
	if (!ntm_url_host_is(a->self, cf->name))
		log_warnx("public_url %s: its host is not this CS's name '%s': the DCs "
		    "will refuse its announcements (cs_not_announcer)", a->self, cf->name);
	if ((a->httpc = ntm_httpc_new(cs->srv->base, cf->ca_file)) == NULL ||
	    ntm_httpc_set_identity(a->httpc, cs->srv->sk, &cs->srv->cert) < 0 ||
	    ntm_httpc_set_trust(a->httpc, cs->srv->conf.as_pk) < 0) {
		snprintf(err, errlen, "cannot set up the HTTPS client");
		return -1;
	}
	if ((a->disc = disc_new(cs->srv->base, cf, a->httpc, err, errlen)) == NULL)
		return -1;
	if ((a->timer = event_new(cs->srv->base, -1, EV_PERSIST, run, a)) == NULL ||
	    (a->kick = event_new(cs->srv->base, -1, 0, run, a)) == NULL ||
	    event_add(a->timer, &tv) < 0) {
		snprintf(err, errlen, "cannot create the announcement events");
		return -1;
	}
	log_info("objects are announced to the recipients' DCs (found through %s) as %s",
	    cf->resolver, a->self);
	event_active(a->kick, EV_TIMEOUT, 0);
	return 0;
}

void
cs_announce_stop(struct cs *cs)
{
	struct cs_announcer *a = cs->ann;

	if (a == NULL)
		return;
	/* No callback runs after these: lookups and requests are cancelled. */
	disc_free(a->disc);
	ntm_httpc_free(a->httpc);
	while (a->jobs) {
		struct cs_ann_job *j = a->jobs;

		a->jobs = j->next;
		free(j);
	}
	if (a->timer)
		event_free(a->timer);
	if (a->kick)
		event_free(a->kick);
	free(a->self);
	free(a);
	cs->ann = NULL;
}

/* cs.h: the renewed certificate on the announcements (signed requests). */
int
cs_announce_cert_renewed(struct cs *cs)
{
	if (cs->ann == NULL || cs->ann->httpc == NULL)
		return 0;
	return ntm_httpc_set_identity(cs->ann->httpc, cs->srv->sk, &cs->srv->cert) < 0 ? -1 : 0;
}
