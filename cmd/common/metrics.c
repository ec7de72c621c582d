/*
 * metrics.c - GET /metrics of every server (ntm.conf(5) metrics_token_file,
 * docs/protocol.md §3 "GET /metrics"): the Prometheus text format, made at each
 * scrape from the counters the daemon keeps anyway (the ones its status
 * command shows), plus the latency of every HTTPS request by route, method
 * and status class, seen by the httpd's observer.
 *
 * Never open to everyone: without metrics_token_file the route answers 403
 * forbidden; with it, "Authorization: Bearer TOKEN" must carry the file's
 * token (401 unauthorized otherwise). Scrapes are limited per source
 * address (429 rate_limited) and the text is bounded (SRV_METRICS_MAX).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sodium.h>

#include "prom.h"
#include "ratelim.h"
#include "srv.h"

#define SRV_METRICS_MAX		(1024 * 1024)	/* bytes of one scrape's text */
#define SRV_METRICS_RATE	5		/* scrapes/s per source address */
#define SRV_METRICS_BURST	10
#define SRV_METRICS_SOURCES	256
#define METRICS_TOKEN_MIN	16
#define METRICS_TOKEN_MAX	256
#define CLASSES			6		/* status 0 (none), 1xx ... 5xx */

struct srv_metrics {
	int		 on;
	uint8_t		 token_hash[crypto_generichash_BYTES];
	struct ntm_ratelim *rl;
	/* Latency per route row (in the order they were added to the httpd),
	 * one more for requests no row took, times CLASSES. */
	size_t		 nroutes;
	const char	**method, **path;	/* the httpd's copies, set when seen */
	struct ntm_hist	*hist;
	uint64_t	 refused;		/* scrapes refused (token, rate) */
};

static const char *const class_name[CLASSES] = { "none", "1xx", "2xx", "3xx", "4xx", "5xx" };

static void
observe(size_t route, const struct ntm_http_route *rt, int status, uint64_t us, void *arg)
{
	struct srv_metrics *m = arg;
	size_t row = route < m->nroutes ? route : m->nroutes;
	int cls = status >= 100 && status < 600 ? status / 100 : 0;

	if (rt && row < m->nroutes && m->path[row] == NULL) {
		m->method[row] = rt->method;
		m->path[row] = rt->path;
	}
	ntm_hist_observe(&m->hist[row * CLASSES + (size_t)cls], us);
}

/* ---- the role's counters from its status JSON ------------------------------ */

void
json_metrics(struct ntm_prom *p, json_t *obj, const struct json_metric *rows, size_t n)
{
	const char *k;
	json_t *v, *sub;

	for (size_t i = 0; i < n; i++) {
		const struct json_metric *r = &rows[i];

		if ((v = json_object_get(obj, r->key)) == NULL)
			continue;	/* that room does not run here */
		if (r->label == NULL) {
			if (!json_is_integer(v))
				continue;
			ntm_prom_family(p, r->name, r->type, r->help);
			ntm_prom_int(p, NULL, (int64_t)json_integer_value(v));
			continue;
		}
		if (!json_is_object(v))
			continue;
		ntm_prom_family(p, r->name, r->type, r->help);
		json_object_foreach(v, k, sub)
			if (json_is_integer(sub))
				ntm_prom_int(p, (const char *const[]){ r->label, k, NULL },
				    (int64_t)json_integer_value(sub));
	}
}

/* ---- GET /metrics -------------------------------------------------------------- */

static int
write_common(struct srv *s, struct ntm_prom *p)
{
	struct srv_metrics *m = s->metrics;

	ntm_prom_family(p, "ntm_server_info", NTM_PROM_GAUGE,
	    "This server: its role, name and version (always 1)");
	ntm_prom_int(p, (const char *const[]){ "role", ntm_role_name(s->spec->role),
	    "name", s->conf.name, "version", NTM_VERSION, NULL }, 1);
	ntm_prom_family(p, "ntm_start_time_seconds", NTM_PROM_GAUGE,
	    "When the daemon started (Unix time)");
	ntm_prom_int(p, NULL, s->started);
	ntm_prom_family(p, "ntm_metrics_refused_total", NTM_PROM_COUNTER,
	    "Scrapes of /metrics refused (wrong or missing token, over the rate)");
	ntm_prom_int(p, NULL, (int64_t)m->refused);
	ntm_prom_family(p, "ntm_http_request_duration_seconds", NTM_PROM_HISTOGRAM,
	    "Time from a complete HTTPS request to the end of its reply, by route, "
	    "method and status class (route \"other\": no route took it)");
	for (size_t row = 0; row <= m->nroutes; row++)
		for (size_t c = 0; c < CLASSES; c++) {
			const struct ntm_hist *h = &m->hist[row * CLASSES + c];

			if (h->count == 0 || (row < m->nroutes && m->path[row] == NULL))
				continue;
			ntm_prom_hist(p, (const char *const[]){
			    "route", row < m->nroutes ? m->path[row] : "other",
			    "method", row < m->nroutes ? m->method[row] : "other",
			    "code", class_name[c], NULL }, h);
		}
	return 0;
}

void
srv_on_metrics(struct ntm_req *req, void *arg)
{
	struct srv *s = arg;
	struct srv_metrics *m = s->metrics;
	uint8_t key[18], h[crypto_generichash_BYTES];
	const char *token, *text;
	struct ntm_prom p;
	size_t klen, len;
	int e;

	if (m == NULL || !m->on) {
		ntm_reply_error(req, 403, "forbidden", NULL,
		    "metrics are off (no metrics_token_file in %s)", s->conf.path);
		return;
	}
	if (ntm_ratelim_addr_key(ntm_req_peer(req), 0, key, &klen) < 0 ||
	    !ntm_ratelim_take(m->rl, key, klen, mono_ms())) {
		m->refused++;
		ntm_reply_error(req, 429, "rate_limited", NULL,
		    "more than %d scrapes a second from this address", SRV_METRICS_RATE);
		return;
	}
	/* Compared as hashes: the time says nothing of the token's length. */
	token = ntm_req_bearer(req);
	crypto_generichash(h, sizeof(h), (const uint8_t *)(token ? token : ""),
	    token ? strlen(token) : 0, NULL, 0);
	if (token == NULL || ntm_memcmp(h, m->token_hash, sizeof(h)) != 0) {
		m->refused++;
		ntm_reply_error(req, 401, "unauthorized", NULL, token == NULL ?
		    "missing 'Authorization: Bearer TOKEN' (the token of metrics_token_file)" :
		    "wrong metrics token");
		return;
	}
	ntm_prom_init(&p, SRV_METRICS_MAX);
	write_common(s, &p);
	if (s->spec->metrics)
		s->spec->metrics(s, &p);
	if ((e = ntm_prom_end(&p, &text, &len)) < 0) {
		log_warnx("GET /metrics: %s", ntm_strerror(e));
		ntm_reply_error(req, 500, "internal", NULL, "cannot make the metrics: %s",
		    ntm_strerror(e));
	} else
		ntm_reply_text(req, 200, NTM_PROM_CTYPE, text, len);
	ntm_prom_free(&p);
}

/* ---- setup ---------------------------------------------------------------- */

/* The token: one line of METRICS_TOKEN_MIN..MAX printable characters, in
 * a file nobody but its owner may read. */
static int
load_token(struct srv_metrics *m, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	struct stat st;
	size_t len, i;
	int e, ret = -1;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "metrics_token_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "metrics_token_file %s: readable by others than its "
		    "owner (mode %03o; chmod 600 it)", path, (unsigned)(st.st_mode & 0777));
		return -1;
	}
	if ((e = ntm_file_read(path, METRICS_TOKEN_MAX + 2, &text, &len)) < 0) {
		snprintf(err, errlen, "metrics_token_file %s: %s", path,
		    e == NTM_ERR_IO ? strerror(errno) : e == NTM_ERR_TOOBIG ?
		    "longer than one line of 256 characters" : ntm_strerror(e));
		return -1;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	for (i = 0; i < len; i++)
		if (text[i] <= ' ' || text[i] > '~')
			break;
	if (i < len || len < METRICS_TOKEN_MIN || len > METRICS_TOKEN_MAX) {
		snprintf(err, errlen, "metrics_token_file %s: not one line of %d to %d "
		    "printable characters without blanks", path, METRICS_TOKEN_MIN,
		    METRICS_TOKEN_MAX);
		goto cleanup;
	}
	crypto_generichash(m->token_hash, sizeof(m->token_hash), (const uint8_t *)text, len,
	    NULL, 0);
	m->on = 1;
	ret = 0;
cleanup:
	sodium_memzero(text, len);
	free(text);
	return ret;
}

int
srv_metrics_setup(struct srv *s, char *err, size_t errlen)
{
	struct srv_metrics *m;
	uint8_t rkey[16];

	if ((m = s->metrics = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (s->conf.metrics_token_file &&
	    load_token(m, s->conf.metrics_token_file, err, errlen) < 0)
		return -1;
	ntm_random(rkey, sizeof(rkey));
	if ((m->rl = ntm_ratelim_new(SRV_METRICS_SOURCES, SRV_METRICS_RATE, SRV_METRICS_BURST,
	    rkey)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Every route is added by now. */
	m->nroutes = ntm_httpd_nroutes(s->httpd);
	m->method = calloc(m->nroutes + 1, sizeof(*m->method));
	m->path = calloc(m->nroutes + 1, sizeof(*m->path));
	m->hist = calloc((m->nroutes + 1) * CLASSES, sizeof(*m->hist));
	if (m->method == NULL || m->path == NULL || m->hist == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ntm_httpd_set_observer(s->httpd, observe, m);
	return 0;
}

void
srv_metrics_free(struct srv *s)
{
	struct srv_metrics *m = s->metrics;

	if (m == NULL)
		return;
	ntm_ratelim_free(m->rl);
	free(m->method);
	free(m->path);
	free(m->hist);
	free(m);
	s->metrics = NULL;
}
