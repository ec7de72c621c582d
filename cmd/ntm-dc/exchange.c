/*
 * exchange.c - the DC's part of the non-real-time path (docs/protocol.md
 * §3.4): temporal keys travel sender -> its DC -> the recipient's DC (found
 * by DNS, signed POST /v1/dc/temporal); the sender's CS announces each
 * object it stores to the recipient's DC (signed POST /v1/dc/announce,
 * role cs), where it becomes a cache entry, which the recipient lists
 * (with a long-poll), after a NUDGE when it is online or a push webhook
 * when it is not.
 *
 * The DC never sees a shared key or a payload: it holds the temporal key,
 * and only the CS holds what that key unwraps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <jansson.h>

#include "dc.h"
#include "msg.h"
#include "peerdc.h"
#include "dns.h"
#include "ntm-rt.h"
#include "reg.h"
#include "xchg.h"

_Static_assert(DC_XTKEY_LEN == NTM_XTKEY_SEALED_LEN, "sealed temporal key length");

enum { X_TEMPORAL, X_ANNOUNCE, X_XKEY };

/* Where a request goes (a temporal key, or a question for an exchange key),
 * and how that went. */
struct dc_xdest {
	struct dc_xreq	*x;
	struct peerdc	 peer;		/* the recipient's DC, when not here */
	char		 fqdn[NTM_NAME_MAX + 1];
	char		 domain[NTM_NAME_MAX + 1];
	int		 done, status;
	char		 code[32];
	char		 message[256];
};

/* A client's POST /v1/exchange/temporal or GET /v1/exchange/key, waiting
 * for the peer's DC. */
struct dc_xreq {
	struct dc_xreq	*next, **prevp;
	struct dc	*dc;
	struct ntm_req	*req;
	int		 type;		/* X_TEMPORAL or X_XKEY */
	struct dc_tkey	 tk;		/* X_TEMPORAL */
	char		 xkey[NTM_B64_LEN(NTM_XPK_LEN)];	/* X_XKEY: the answer */
	struct dc_xdest	 d;
};

/* A GET /v1/exchange/cache?wait=S with nothing to list yet. */
struct dc_xwait {
	struct dc_xwait	*next, **prevp;
	struct dc	*dc;
	struct ntm_req	*req;
	int64_t		 client_id;
	char		 from[NTM_NAME_MAX + 1];	/* "" = any sender */
	struct event	*ev;
};

/* Devices back online waiting for their cache entries to be counted (at
 * most ONLINE_MAX; past that a batch is counted at once). */
#define ONLINE_MAX	8192

struct dc_exchange {
	/* The devices that came online in one callback (a burst of first
	 * registrations) are counted together just after it: one read
	 * transaction and one statement for the lot, not one each. */
	int64_t		*online;	/* client ids */
	size_t		 nonline, caponline;
	struct event	*online_ev;
	struct dc_xreq	*pending;
	struct dc_xwait	*waits;
	unsigned	 nwaits;
	uint64_t	 keys_stored, keys_forwarded, entries_stored;
	uint64_t	 forward_failed, nudged, pushed, polls_woken, polls_timed_out,
			 polls_gone;
};

static int
valid_fqdn(const char *s)
{
	return ntm_valid_dnsname(s) && strchr(s, '.') != NULL;
}

static int
valid_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == n;
}

/* ---- notifying a client of cache entries ------------------------------------ */

static json_t *
entry_json(const struct dc_entry *e)
{
	struct ntm_m_entry m = { .id = e->id, .kind = e->kind, .from = e->from, .cs = e->cs,
	    .sha256 = e->sha256, .size = e->size, .app = e->app, .service = e->service,
	    .item = e->item, .notify = e->notify, .created = e->created,
	    .expires = e->expires };
	json_t *j = NULL;

	if (ntm_msg_entry_encode(&m, &j, NULL) < 0)
		return NULL;
	return j;
}

static int
add_entry(const struct dc_entry *e, void *arg)
{
	return json_array_append_new(arg, entry_json(e)) < 0 ? NTM_ERR_NOMEM : 0;
}

/* The answer to GET /v1/exchange/cache with arr (taken), or NULL. */
static json_t *
entries_json(json_t *arr)
{
	struct ntm_m_entries m = { .entries = arr };
	json_t *j = NULL;

	if (arr == NULL || ntm_msg_entries_encode(&m, &j, NULL) < 0)
		j = NULL;
	json_decref(arr);
	return j;
}

/* The client's entries (from "" = all) as a new array, or NULL. */
static json_t *
entries_of(struct dc *dc, int64_t client_id, const char *from)
{
	json_t *arr = json_array();

	if (arr == NULL || dc_db_entries(dc->db, client_id, *from ? from : NULL, now_unix(),
	    add_entry, arr) < 0) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static void
wait_free(struct dc_xwait *w)
{
	if (w->next)
		w->next->prevp = w->prevp;
	*w->prevp = w->next;
	w->dc->xch->nwaits--;
	if (w->ev)
		event_free(w->ev);
	free(w);
}

/* Answers w with its list (maybe empty) and frees it. */
static void
wait_answer(struct dc_xwait *w, json_t *arr)
{
	if (arr == NULL && (arr = entries_of(w->dc, w->client_id, w->from)) == NULL)
		ntm_reply_error(w->req, 500, "internal", NULL, "storage failure");
	else
		ntm_reply_json(w->req, 200, entries_json(arr));
	wait_free(w);
}

/* Entries arrived for client_id: answer its long-polls that now list some. */
static void
wake_waiters(struct dc *dc, int64_t client_id)
{
	struct dc_xwait *w, *next;
	json_t *arr;

	for (w = dc->xch->waits; w; w = next) {
		next = w->next;
		if (w->client_id != client_id)
			continue;
		if ((arr = entries_of(dc, client_id, w->from)) != NULL &&
		    json_array_size(arr) == 0) {
			json_decref(arr);
			continue;
		}
		dc->xch->polls_woken++;
		wait_answer(w, arr);
	}
}

/* A NUDGE when the client is online, else its push webhook; and long-polls. */
static void
notify_client(struct dc *dc, const struct dc_client *cl)
{
	struct dc_sess *s = dc_sess_by_client(dc, cl->id);
	struct dc_sess_info info;
	int64_t n = 0;

	if (dc_db_entry_count(dc->db, cl->id, now_unix(), &n) < 0)
		return;
	if (s && (dc_sess_info(dc, s, &info), info.online) &&
	    dc_sess_nudge(dc, s, NTM_NUDGE_CACHE, (uint32_t)n) == 0) {
		dc->xch->nudged++;
	} else {
		dc->xch->pushed++;
		dc_push_notice(dc, cl->id, cl->fqdn, "cache", (int)n);
	}
	wake_waiters(dc, cl->id);
}

/* The devices queued by exchange_online: those with cache entries get a
 * NUDGE saying how many (a device gone meanwhile is passed over). */
static void
online_flush(struct dc *dc)
{
	struct dc_exchange *x = dc->xch;
	struct dc_sess *s;
	int64_t *counts;
	size_t n = x->nonline;

	if (n == 0)
		return;
	x->nonline = 0;
	if ((counts = calloc(n, sizeof(*counts))) == NULL)
		return;
	if (dc_db_entry_counts(dc->db, x->online, n, now_unix(), counts) == 0) {
		for (size_t i = 0; i < n; i++)
			if (counts[i] > 0 && (s = dc_sess_by_client(dc, x->online[i])) != NULL &&
			    dc_sess_nudge(dc, s, NTM_NUDGE_CACHE, (uint32_t)counts[i]) == 0)
				x->nudged++;
	}
	free(counts);
}

static void
on_online(evutil_socket_t fd, short what, void *arg)
{
	online_flush(arg);
}

/* Back online: its cache entries are counted after the current callback,
 * with the others that came online in it. */
static void
exchange_online(struct dc *dc, struct dc_sess *s)
{
	struct dc_exchange *x = dc->xch;

	if (x == NULL)
		return;
	if (x->nonline == ONLINE_MAX)
		online_flush(dc);
	if (x->nonline == x->caponline) {
		size_t cap = x->caponline ? 2 * x->caponline : 64;
		int64_t *p = realloc(x->online, cap * sizeof(*p));

		if (p == NULL)
			return;		/* no NUDGE: its next list shows them */
		x->online = p;
		x->caponline = cap;
	}
	x->online[x->nonline++] = dc_sess_client(s);
	if (x->nonline == 1)
		event_active(x->online_ev, EV_TIMEOUT, 0);
}

const struct dc_hooks dc_exchange_hooks = {
	.online	= exchange_online,
};

/* ---- storing for one of our clients ----------------------------------------- */

static void dest_fail(struct dc_xdest *out, int status, const char *code,
    const char *fmt, ...) NTM_PRINTF(4, 5);

/* Sets a failure on out. */
static void
dest_fail(struct dc_xdest *out, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	out->status = status;
	snprintf(out->code, sizeof(out->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(out->message, sizeof(out->message), fmt, ap);
	va_end(ap);
}

/* The client of this DC named fqdn into cl: 0, or -1 with out's failure set. */
static int
local_client(struct dc *dc, const char *fqdn, struct dc_client *cl, struct dc_xdest *out)
{
	const char *domain = fqdn_domain(fqdn);
	int r = NTM_ERR_NOTFOUND;

	out->status = 0;
	if (domain != NULL && dc_domain_is_local(dc, domain))
		r = dc_db_client_by_fqdn(dc->db, fqdn, cl);
	if (r == NTM_ERR_NOTFOUND)
		dest_fail(out, 404, "unknown_peer", "no device %s at %s: check the name",
		    fqdn, dc->srv->conf.name);
	else if (r < 0)
		dest_fail(out, 500, "internal", "storage failure");
	return r < 0 ? -1 : 0;
}

/* Stores a temporal key or cache entry for one of our clients: out's
 * status 0 on success, else the status/code/message of the failure. */
static void
store_local(struct dc *dc, int type, const char *to, const struct dc_tkey *tk,
    const struct dc_entry *en, struct dc_xdest *out)
{
	struct dc_client cl;
	struct dc_tkey k;
	struct dc_entry e;
	int64_t now = now_unix();
	int r;

	if (local_client(dc, to, &cl, out) < 0)
		return;
	if (type == X_TEMPORAL) {
		k = *tk;
		k.created = now;
		k.expires = now + DC_XKEY_TTL_S;
		r = dc_db_tkey_put(dc->db, cl.id, &k, now);
		ntm_wipe(&k, sizeof(k));
		if (r == 0) {
			dc->xch->keys_stored++;
			log_info("temporal key %s from %s for %s: stored", tk->key_id, tk->from,
			    to);
		}
	} else {
		e = *en;
		e.created = now;
		r = dc_db_entry_put(dc->db, cl.id, &e, now);
		if (r == NTM_ERR_EXISTS)
			r = 0;		/* announced twice: listed once */
		if (r == 0) {
			dc->xch->entries_stored++;
			log_info("cache entry %s from %s for %s: %s, %lld bytes", en->sha256,
			    en->from, to, en->kind, (long long)en->size);
			notify_client(dc, &cl);
		}
	}
	if (r == NTM_ERR_NOSPACE)
		dest_fail(out, 429, "queue_full", "%s has %d %s waiting already", to,
		    type == X_TEMPORAL ? DC_XKEYS_MAX : DC_XENTRIES_MAX,
		    type == X_TEMPORAL ? "temporal keys" : "cache entries");
	else if (r == NTM_ERR_EXISTS)
		dest_fail(out, 409, "exists", "key_id %s is already stored for %s", tk->key_id,
		    to);
	else if (r < 0)
		dest_fail(out, 500, "internal", "storage failure");
}

/* The exchange key of a client of this DC into key; else out's failure. */
static void
local_xkey(struct dc *dc, const char *fqdn, char *key, size_t cap, struct dc_xdest *out)
{
	struct dc_client cl;
	int r;

	if (local_client(dc, fqdn, &cl, out) < 0)
		return;
	if ((r = dc_db_client_xkey(dc->db, cl.id, key, cap)) < 0)
		dest_fail(out, 500, "internal", "storage failure");
	else if (key[0] == '\0')
		dest_fail(out, 404, "no_exchange_key", "%s gave no exchange key at its last "
		    "login (it must log in again with a current ntm)", fqdn);
}

/* ---- the fan-out to the recipients' DCs ------------------------------------- */

static void
xreq_free(struct dc_xreq *x)
{
	if (x == NULL)
		return;
	if (x->prevp) {
		if (x->next)
			x->next->prevp = x->prevp;
		*x->prevp = x->next;
	}
	ntm_wipe(x, sizeof(*x));
	free(x);
}

/* A peer's exchange key as answered (NULL: out of memory, or a key that is
 * not one; the reply is then 500). */
static json_t *
xkey_json(const char *fqdn, const char *key)
{
	struct ntm_m_xkey m = { .fqdn = fqdn, .exchange_key = key };
	json_t *j = NULL;

	if (ntm_msg_xkey_encode(&m, &j, NULL) < 0)
		return NULL;
	return j;
}

static void
xreq_finish(struct dc_xreq *x)
{
	struct dc_xdest *d = &x->d;

	if (d->status)
		ntm_reply_error(x->req, d->status, d->code, NULL, "%s", d->message);
	else if (x->type == X_XKEY)
		ntm_reply_json(x->req, 200, xkey_json(d->fqdn, x->xkey));
	else
		ntm_reply_json(x->req, 200, json_pack("{s:s, s:s, s:I}", "key_id",
		    x->tk.key_id, "to", d->fqdn,
		    "expires", (json_int_t)(now_unix() + DC_XKEY_TTL_S)));
	xreq_free(x);
}

static void
dest_done(struct dc_xdest *d, int status, const char *code, const char *fmt, ...)
    NTM_PRINTF(4, 5);
static void
dest_done(struct dc_xdest *d, int status, const char *code, const char *fmt, ...)
{
	struct dc_xreq *x = d->x;
	char c[sizeof(d->code)], m[sizeof(d->message)];
	va_list ap;

	d->done = 1;
	d->status = status;
	if (status) {
		/* code and fmt's arguments may point into d itself. */
		snprintf(c, sizeof(c), "%s", code);
		va_start(ap, fmt);
		vsnprintf(m, sizeof(m), fmt, ap);
		va_end(ap);
		memcpy(d->code, c, sizeof(c));
		memcpy(d->message, m, sizeof(m));
		x->dc->xch->forward_failed++;
		if (x->type == X_XKEY)
			log_info("exchange key of %s: %s: %s", d->fqdn, d->code, d->message);
		else
			log_info("temporal key %s -> %s: %s: %s", x->tk.key_id, d->fqdn,
			    d->code, d->message);
	} else if (x->type == X_TEMPORAL)
		x->dc->xch->keys_forwarded++;
	xreq_finish(x);
}

static void
on_xsent(const struct ntm_http_result *res, struct dc_xdest *d)
{
	const char *code = NULL, *message = NULL;
	struct ntm_m_error e;

	if (res->err < 0) {
		/* The peer DC's URL and curl's words stay in our log. */
		log_info("DC of %s: %s", d->domain,
		    res->errmsg[0] ? res->errmsg : ntm_strerror(res->err));
		if (res->err == NTM_ERR_IDENTITY)	/* peerdc_checked says why */
			dest_done(d, 502, "upstream_unavailable", "%s", res->errmsg);
		else
			dest_done(d, 502, "upstream_unavailable", "the DC of %s was found "
			    "but did not answer (%s)", d->domain, ntm_strerror(res->err));
		return;
	}
	if (res->status == 200 && d->x->type == X_XKEY) {
		struct ntm_m_xkey k;
		struct ntm_jerr jerr;

		if (res->json == NULL || ntm_msg_xkey_decode(res->json, &k, &jerr) < 0) {
			dest_done(d, 502, "upstream_unavailable", "DC %s answered no usable "
			    "exchange_key", d->domain);
			return;
		}
		snprintf(d->x->xkey, sizeof(d->x->xkey), "%s", k.exchange_key);
	}
	if (res->status == 200) {
		dest_done(d, 0, NULL, "%s", "");
		return;
	}
	if (ntm_error_read(res->json, &e) == 0) {
		code = e.code;
		message = e.message;
	}
	/* The recipient's DC's verdicts on its own client pass on; others are 502. */
	if (code && (strcmp(code, "unknown_peer") == 0 || strcmp(code, "queue_full") == 0 ||
	    strcmp(code, "exists") == 0 || strcmp(code, "no_exchange_key") == 0))
		dest_done(d, (int)res->status, code, "DC %s: %s", d->domain,
		    message ? message : code);
	else
		dest_done(d, 502, "upstream_unavailable", "the DC of %s answered HTTP %ld %s",
		    d->domain, res->status, code ? code : "without a code");
}

/* The body for the recipient's DC: the client's temporal key message as it
 * came, or an exchange key request. */
static int
xreq_body(struct peerdc *p, json_t **body, void *arg)
{
	struct dc_xdest *d = arg;
	struct dc_xreq *x = d->x;

	if (x->type == X_XKEY) {
		struct ntm_m_dc_xkey m = { .version = NTM_PROTOCOL_VERSION, .to = d->fqdn };

		return ntm_msg_dc_xkey_encode(&m, body, NULL);
	} else {
		struct ntm_m_temporal m = { .version = NTM_PROTOCOL_VERSION,
			.from = x->tk.from, .to = d->fqdn, .key_id = x->tk.key_id,
			.temporal_key = x->tk.tkey };

		return ntm_msg_temporal_encode(&m, body, NULL);
	}
}

static void
on_xdone(struct peerdc *p, enum peerdc_step step, int err, const struct ntm_http_result *res,
    void *arg)
{
	struct dc_xdest *d = arg;
	const char *code;
	char msg[256];
	int st;

	switch (step) {
	case PEERDC_LOOKUP:
		st = disc_status(err, d->domain, &code, msg, sizeof(msg));
		dest_done(d, st, code, "%s", msg);
		break;
	case PEERDC_START:
		if (err == NTM_ERR_NOMEM)
			dest_done(d, 500, "internal", "out of memory");
		else
			dest_done(d, 502, "upstream_unavailable", "DC %s: cannot start the "
			    "request: %s", d->domain, ntm_strerror(err));
		break;
	case PEERDC_ANSWER:
		on_xsent(res, d);
		break;
	}
}

/* Stores the key here, or hands it to the recipient's DC; answers then. */
static void
xreq_start(struct dc_xreq *x)
{
	struct dc *dc = x->dc;
	struct dc_xdest *d = &x->d;
	const char *dom = fqdn_domain(d->fqdn);
	int e;

	x->next = dc->xch->pending;
	if (x->next)
		x->next->prevp = &x->next;
	x->prevp = &dc->xch->pending;
	dc->xch->pending = x;
	d->x = x;
	snprintf(d->domain, sizeof(d->domain), "%s", dom ? dom : "");
	if (dom && dc_domain_is_local(dc, dom)) {
		if (x->type == X_XKEY)
			local_xkey(dc, d->fqdn, x->xkey, sizeof(x->xkey), d);
		else
			store_local(dc, X_TEMPORAL, d->fqdn, &x->tk, NULL, d);
		dest_done(d, d->status, d->code, "%s", d->message);
	} else if ((e = peerdc_post(&d->peer, dc->disc, dc->httpc, d->domain,
	    x->type == X_XKEY ? "/v1/dc/xkey" : "/v1/dc/temporal", dc->srv->conf.as_timeout_ms,
	    xreq_body, on_xdone, d)) < 0) {
		const char *code;
		char msg[256];
		int st = disc_status(e, d->domain, &code, msg, sizeof(msg));

		dest_done(d, st, code, "%s", msg);
	}
}

/* A request of type for the peer to; NULL after replying 500. */
static struct dc_xreq *
xreq_new(struct dc *dc, struct ntm_req *req, int type, const char *to)
{
	struct dc_xreq *x;

	if ((x = calloc(1, sizeof(*x))) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return NULL;
	}
	x->dc = dc;
	x->req = req;
	x->type = type;
	snprintf(x->d.fqdn, sizeof(x->d.fqdn), "%s", to);
	return x;
}

/* ---- client endpoints ------------------------------------------------------- */

static void
on_cs(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_token tok;
	struct dc_client cl;
	struct dc_session sess;
	struct ntm_m_cs_where m = { 0 };
	json_t *j = NULL;

	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	ntm_wipe(&sess, sizeof(sess));
	if (dc->srv->conf.cs_url == NULL) {
		ntm_reply_error(req, 404, "no_cs", NULL, "DC %s has no cache server (cs_url)",
		    dc->srv->conf.name);
		return;
	}
	m.cs = dc->srv->conf.cs_url;
	m.dc = dc->srv->conf.name;
	if (ntm_msg_cs_where_encode(&m, &j, NULL) < 0)
		j = NULL;
	ntm_reply_json(req, 200, j);
}

/* "from" is the caller's own FQDN; else 403 forbidden. */
static int
check_from(struct ntm_req *req, const struct dc_client *cl, const char *from)
{
	if (strcmp(from, cl->fqdn) == 0)
		return 0;
	ntm_reply_error(req, 403, "forbidden", "from",
	    "field 'from': %s is not the caller's FQDN %s", from, cl->fqdn);
	return -1;
}

static int
check_to(struct ntm_req *req, const char *field, const char *to, const char *from)
{
	if (!valid_fqdn(to)) {
		ntm_reply_error(req, 400, "bad_field", field, "field '%s': '%s' is not an FQDN",
		    field, to);
		return -1;
	}
	if (strcmp(to, from) == 0) {
		ntm_reply_error(req, 400, "bad_field", field, "field '%s': %s is the sender",
		    field, to);
		return -1;
	}
	return 0;
}

/* A temporal key message (checked by its codec) into tk. */
static void
tkey_of(const struct ntm_m_temporal *m, struct dc_tkey *tk)
{
	snprintf(tk->key_id, sizeof(tk->key_id), "%s", m->key_id);
	snprintf(tk->tkey, sizeof(tk->tkey), "%s", m->temporal_key);
	snprintf(tk->from, sizeof(tk->from), "%s", m->from);
}

static void
on_temporal_post(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_m_temporal m;
	struct ntm_jerr jerr;
	struct ntm_token tok;
	struct dc_client cl;
	struct dc_session sess;
	struct dc_xreq *x;

	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	ntm_wipe(&sess, sizeof(sess));
	/* The caller's right to send as from is checked before the formats. */
	if (ntm_msg_temporal_unpack(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	if (check_from(req, &cl, m.from) < 0 ||
	    check_to(req, "to", m.to, m.from) < 0)
		return;
	if (ntm_msg_temporal_check(&m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	if ((x = xreq_new(dc, req, X_TEMPORAL, m.to)) == NULL)
		return;
	tkey_of(&m, &x->tk);
	xreq_start(x);
}

/* GET /v1/exchange/key?fqdn=PEER: the exchange key PEER gave at its last
 * login, from its DC (found by DNS, signed POST /v1/dc/xkey). */
static void
on_xkey_get(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	const char *fqdn = ntm_req_query(req, "fqdn");
	struct ntm_token tok;
	struct dc_client cl;
	struct dc_session sess;
	struct dc_xreq *x;

	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	ntm_wipe(&sess, sizeof(sess));
	if (fqdn == NULL || !valid_fqdn(fqdn) || fqdn_domain(fqdn) == NULL) {
		ntm_reply_error(req, 400, fqdn ? "bad_field" : "missing_field", "fqdn",
		    "query 'fqdn': expected a client FQDN");
		return;
	}
	if ((x = xreq_new(dc, req, X_XKEY, fqdn)) != NULL)
		xreq_start(x);
}

/* Checks a's values into e; replies 400 and returns -1 if one is bad. */
static int
announce_check(struct ntm_req *req, const struct ntm_m_announce *a, struct dc_entry *e)
{
	int64_t now = now_unix();

	if (a->expires <= now || a->expires > now + DC_XENTRY_TTL_MAX) {
		ntm_reply_error(req, 400, "bad_field", "expires",
		    "field 'expires': %lld is not within the next %ld days",
		    (long long)a->expires, DC_XENTRY_TTL_MAX / 86400);
		return -1;
	}
	memset(e, 0, sizeof(*e));
	snprintf(e->kind, sizeof(e->kind), "%s", a->kind);
	snprintf(e->from, sizeof(e->from), "%s", a->from);
	snprintf(e->cs, sizeof(e->cs), "%s", a->cs ? a->cs : "");
	snprintf(e->sha256, sizeof(e->sha256), "%s", a->sha256);
	e->size = a->size;
	e->expires = a->expires;
	snprintf(e->app, sizeof(e->app), "%s", a->app ? a->app : "");
	snprintf(e->service, sizeof(e->service), "%s", a->service ? a->service : "");
	snprintf(e->item, sizeof(e->item), "%s", a->item ? a->item : "");
	snprintf(e->notify, sizeof(e->notify), "%s", a->notify ? a->notify : "");
	return 0;
}

static int
add_tkey(const struct dc_tkey *k, void *arg)
{
	uint8_t raw[DC_XTKEY_LEN], h[NTM_HASH_LEN];
	char hex[2 * NTM_HASH_LEN + 1];
	struct ntm_m_tkey_listed m = { .key_id = k->key_id, .from = k->from, .sha256 = hex,
	    .created = k->created, .expires = k->expires };
	json_t *j;
	int r;

	if (ntm_b64_decode_exact(raw, sizeof(raw), k->tkey) < 0)
		return 0;	/* cannot happen: checked when stored */
	ntm_hash(h, raw, sizeof(raw));
	ntm_wipe(raw, sizeof(raw));
	if (ntm_hex_encode(hex, sizeof(hex), h, sizeof(h)) < 0)
		return NTM_ERR_INVAL;
	if ((r = ntm_msg_tkey_listed_encode(&m, &j, NULL)) < 0)
		return r;
	return json_array_append_new(arg, j) < 0 ? NTM_ERR_NOMEM : 0;
}

static void
on_temporal_list(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_token tok;
	struct dc_client cl;
	struct dc_session sess;
	struct ntm_m_tkey_list m = { 0 };
	json_t *arr, *j = NULL;

	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	ntm_wipe(&sess, sizeof(sess));
	if ((arr = json_array()) == NULL ||
	    dc_db_tkeys(dc->db, cl.id, now_unix(), add_tkey, arr) < 0) {
		json_decref(arr);
		ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return;
	}
	m.keys = arr;
	if (ntm_msg_tkey_list_encode(&m, &j, NULL) < 0)
		j = NULL;
	json_decref(arr);
	ntm_reply_json(req, 200, j);
}

/* GET and DELETE /v1/exchange/temporal/key?id=KEY_ID */
static void
on_temporal_key(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_token tok;
	struct dc_client cl;
	struct dc_session sess;
	struct dc_tkey k;
	struct ntm_m_tkey m = { 0 };
	const char *id = ntm_req_query(req, "id");
	json_t *body = NULL;
	int e;

	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	ntm_wipe(&sess, sizeof(sess));
	if (id == NULL || !valid_hex(id, 2 * DC_XKEY_ID)) {
		ntm_reply_error(req, 400, id ? "bad_field" : "missing_field", "id",
		    "query 'id': expected %d lowercase hex digits", 2 * DC_XKEY_ID);
		return;
	}
	if (strcmp(ntm_req_method(req), "DELETE") == 0)
		e = dc_db_tkey_del(dc->db, cl.id, id);
	else
		e = dc_db_tkey_get(dc->db, cl.id, id, now_unix(), &k);
	if (e == NTM_ERR_NOTFOUND) {
		ntm_reply_error(req, 404, "unknown_key", "id", "no temporal key %s for %s", id,
		    cl.fqdn);
		return;
	}
	if (e < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return;
	}
	if (strcmp(ntm_req_method(req), "DELETE") == 0) {
		ntm_reply_json(req, 200, json_pack("{s:s, s:b}", "key_id", id, "deleted", 1));
		return;
	}
	m = (struct ntm_m_tkey){ .key_id = k.key_id, .from = k.from, .temporal_key = k.tkey,
	    .created = k.created, .expires = k.expires };
	if (ntm_msg_tkey_encode(&m, &body, NULL) < 0)
		body = NULL;
	ntm_wipe(&k, sizeof(k));
	ntm_reply_json(req, 200, body);
}

static void
on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dc_xwait *w = arg;

	w->dc->xch->polls_timed_out++;
	wait_answer(w, NULL);
}

/* The client closed its connection while waiting: the answer goes nowhere. */
static void
on_wait_gone(struct ntm_req *req, void *arg)
{
	struct dc_xwait *w = arg;

	(void)req;
	w->dc->xch->polls_gone++;
	ntm_reply_json(w->req, 200, json_object());
	wait_free(w);
}

/* GET /v1/exchange/cache[?wait=S][&from=FQDN] */
static void
on_cache_list(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_token tok;
	struct dc_client cl;
	struct dc_session sess;
	const char *ws = ntm_req_query(req, "wait"), *from = ntm_req_query(req, "from");
	struct dc_xwait *w;
	struct timeval tv;
	long wait = 0;
	json_t *arr;

	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	ntm_wipe(&sess, sizeof(sess));
	if (ws && parse_long(ws, 0, DC_XWAIT_S_MAX, &wait) < 0) {
		ntm_reply_error(req, 400, "bad_field", "wait",
		    "query 'wait': expected seconds 0..%d", DC_XWAIT_S_MAX);
		return;
	}
	if (from && !valid_fqdn(from)) {
		ntm_reply_error(req, 400, "bad_field", "from", "query 'from': not an FQDN");
		return;
	}
	if ((arr = entries_of(dc, cl.id, from ? from : "")) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return;
	}
	/* Something to list, no wait asked, or too many waiting: answer now. */
	if (json_array_size(arr) > 0 || wait == 0 || dc->xch->nwaits >= DC_XWAIT_MAX ||
	    (w = calloc(1, sizeof(*w))) == NULL) {
		ntm_reply_json(req, 200, entries_json(arr));
		return;
	}
	json_decref(arr);
	w->dc = dc;
	w->req = req;
	w->client_id = cl.id;
	snprintf(w->from, sizeof(w->from), "%s", from ? from : "");
	w->next = dc->xch->waits;
	if (w->next)
		w->next->prevp = &w->next;
	w->prevp = &dc->xch->waits;
	dc->xch->waits = w;
	dc->xch->nwaits++;
	tv.tv_sec = wait;
	tv.tv_usec = 0;
	/* A client that goes (an interrupted fetch --wait) frees its place
	 * at once, not after wait seconds. */
	ntm_req_on_gone(req, on_wait_gone, w);
	if ((w->ev = evtimer_new(dc->srv->base, on_wait_timeout, w)) == NULL ||
	    evtimer_add(w->ev, &tv) < 0)
		wait_answer(w, NULL);
}

/* DELETE /v1/exchange/cache?id=N */
static void
on_cache_delete(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_token tok;
	struct dc_client cl;
	struct dc_session sess;
	const char *ids = ntm_req_query(req, "id");
	long id;
	int e;

	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	ntm_wipe(&sess, sizeof(sess));
	if (ids == NULL || parse_long(ids, 1, INT64_MAX, &id) < 0) {
		ntm_reply_error(req, 400, ids ? "bad_field" : "missing_field", "id",
		    "query 'id': expected a cache entry id");
		return;
	}
	if ((e = dc_db_entry_del(dc->db, cl.id, id)) == NTM_ERR_NOTFOUND) {
		ntm_reply_error(req, 404, "unknown_entry", "id", "no cache entry %ld for %s",
		    id, cl.fqdn);
		return;
	}
	if (e < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return;
	}
	ntm_reply_json(req, 200, json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1));
}

/* ---- DC-to-DC endpoints ----------------------------------------------------- */

/* "from" is one of the calling DC's clients; else replies. */
static int
check_caller(struct ntm_req *req, const char *from)
{
	const struct ntm_cert *c = ntm_req_cert(req);
	const char *fd;

	if ((fd = fqdn_domain(from)) == NULL || strcasecmp(fd, c->name) != 0) {
		ntm_reply_error(req, 400, "bad_field", "from",
		    "field 'from': %s is not a client of the calling DC %s", from, c->name);
		return -1;
	}
	return 0;
}

static void
reply_dest(struct ntm_req *req, const struct dc_xdest *d, json_t *ok)
{
	if (d->status) {
		json_decref(ok);
		ntm_reply_error(req, d->status, d->code, NULL, "%s", d->message);
	} else
		ntm_reply_json(req, 200, ok);
}

static void
on_dc_temporal(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_m_temporal m;
	struct ntm_jerr jerr;
	struct dc_tkey tk;
	struct dc_xdest d;

	if (ntm_msg_temporal_unpack(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	if (check_caller(req, m.from) < 0 || check_to(req, "to", m.to, m.from) < 0)
		return;
	if (ntm_msg_temporal_check(&m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	memset(&tk, 0, sizeof(tk));
	tkey_of(&m, &tk);
	memset(&d, 0, sizeof(d));
	store_local(dc, X_TEMPORAL, m.to, &tk, NULL, &d);
	ntm_wipe(&tk, sizeof(tk));
	reply_dest(req, &d, json_pack("{s:b}", "stored", 1));
}

static void
on_dc_announce(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_m_announce a;
	struct ntm_jerr jerr;
	struct dc_entry e;
	struct dc_xdest d;

	/* The sender's CS (the route says so): it checked the sender's token
	 * and that `from` is one of its devices; the object is at `cs`, its
	 * own URL. */
	const struct ntm_cert *cert = ntm_req_cert(req);

	if (ntm_msg_announce_decode(ntm_req_json(req), &a, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	if (check_to(req, "to", a.to, a.from) < 0 || announce_check(req, &a, &e) < 0)
		return;
	/* The recipients present a token for the CS its URL names: only the
	 * announcing CS's own name may stand there (docs/protocol.md §3.4). */
	if (a.cs && (cert == NULL || !ntm_url_host_is(a.cs, cert->name))) {
		log_info("announce from CS %s refused: cs %s is not its URL",
		    cert ? cert->name : "?", a.cs);
		ntm_reply_error(req, 403, "cs_not_announcer", "cs", "field 'cs': the host "
		    "of %s is not the announcing CS's name '%s'", a.cs, cert ? cert->name : "?");
		return;
	}
	memset(&d, 0, sizeof(d));
	store_local(dc, X_ANNOUNCE, a.to, NULL, &e, &d);
	reply_dest(req, &d, json_pack("{s:b}", "queued", 1));
}

/* POST /v1/dc/xkey {"version", "to"}: the exchange key of one of our clients. */
static void
on_dc_xkey(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_m_dc_xkey m;
	const char *to;
	struct ntm_jerr jerr;
	char key[NTM_B64_LEN(NTM_XPK_LEN)];
	struct dc_xdest d;

	if (ntm_msg_dc_xkey_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	to = m.to;
	memset(&d, 0, sizeof(d));
	local_xkey(dc, to, key, sizeof(key), &d);
	reply_dest(req, &d, d.status ? NULL : xkey_json(to, key));
}

/* ---- setup ------------------------------------------------------------------ */

json_t *
dc_exchange_stats(struct dc *dc)
{
	const struct dc_exchange *x = dc->xch;

	if (x == NULL)
		return json_object();
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "keys_stored", (json_int_t)x->keys_stored,
	    "keys_forwarded", (json_int_t)x->keys_forwarded,
	    "entries_stored", (json_int_t)x->entries_stored,
	    "forward_failed", (json_int_t)x->forward_failed,
	    "nudged", (json_int_t)x->nudged, "pushed", (json_int_t)x->pushed,
	    "polls_waiting", (json_int_t)x->nwaits,
	    "polls_woken", (json_int_t)x->polls_woken,
	    "polls_timed_out", (json_int_t)x->polls_timed_out,
	    "polls_gone", (json_int_t)x->polls_gone);
}

int
dc_exchange_init(struct dc *dc, char *err, size_t errlen)
{
	if ((dc->xch = calloc(1, sizeof(*dc->xch))) == NULL ||
	    (dc->xch->online_ev = event_new(dc->srv->base, -1, 0, on_online, dc)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

#define BEARER		NTM_ROUTE_BEARER
#define BEARER_JSON	NTM_ROUTE_BEARER | NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED
#define SIGNED_JSON	NTM_ROUTE_SIGNED | NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED

const struct ntm_http_route dc_exchange_routes[] = {
	{ "GET",    "/v1/exchange/cs",		  BEARER,	.fn = on_cs },
	{ "POST",   "/v1/exchange/temporal",	  BEARER_JSON,	.fn = on_temporal_post },
	{ "GET",    "/v1/exchange/temporal",	  BEARER,	.fn = on_temporal_list },
	{ "GET",    "/v1/exchange/temporal/key", BEARER,	.fn = on_temporal_key },
	{ "DELETE", "/v1/exchange/temporal/key", BEARER,	.fn = on_temporal_key },
	{ "GET",    "/v1/exchange/key",		  BEARER,	.fn = on_xkey_get },
	{ "GET",    "/v1/exchange/cache",	  BEARER,	.fn = on_cache_list },
	{ "DELETE", "/v1/exchange/cache",	  BEARER,	.fn = on_cache_delete },
	{ "POST",   "/v1/dc/temporal",		  SIGNED_JSON,	on_dc_temporal,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) },
	{ "POST",   "/v1/dc/announce",		  SIGNED_JSON,	on_dc_announce,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_CS) },
	{ "POST",   "/v1/dc/xkey",		  SIGNED_JSON,	on_dc_xkey,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) },
	{ .method = NULL }
};

void
dc_exchange_free(struct dc *dc)
{
	struct dc_exchange *x = dc->xch;

	if (x == NULL)
		return;
	/* Discovery and httpc are gone: their callbacks will not run. */
	while (x->pending) {
		ntm_reply_error(x->pending->req, 502, "upstream_unavailable", NULL,
		    "the DC is shutting down before the recipients' DCs answered");
		xreq_free(x->pending);
	}
	while (x->waits)
		wait_answer(x->waits, NULL);
	if (x->online_ev)
		event_free(x->online_ev);
	free(x->online);
	free(x);
	dc->xch = NULL;
}
