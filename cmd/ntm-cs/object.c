/*
 * object.c - committed objects, by content address:
 *
 *   GET    /v1/cs/object?sha256=H         the bytes, streamed (owner, recipients)
 *   GET    /v1/cs/object/meta?sha256=H    metadata and delivery status
 *   POST   /v1/cs/object/confirm          a recipient marks it delivered
 *   DELETE /v1/cs/object?sha256=H         the owner removes it
 *   GET    /v1/cs/account                 the caller's usage and quota
 *
 * An object someone may not read is answered exactly like one that does
 * not exist (404 unknown_object), so hashes cannot be probed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "cs.h"
#include "msg.h"

enum access { ACC_NONE, ACC_OWNER, ACC_RECIPIENT };

struct dest_scan {
	const struct cs_who	*w;
	int			 match;
};

static int
dest_match(const struct cs_dest *dest, void *arg)
{
	struct dest_scan *d = arg;

	if (ntm_cs_fqdn_is_account(dest->fqdn, d->w->user, d->w->dc))
		d->match = 1;
	return 0;
}

static enum access
access_of(struct cs *cs, const struct cs_who *w, const struct cs_obj *o)
{
	struct dest_scan d = { w, 0 };

	if (cs_is_owner(w, o->user, o->dc))
		return ACC_OWNER;
	if (cs_db_dests(cs->db, o->sha256, dest_match, &d) == 0 && d.match)
		return ACC_RECIPIENT;
	return ACC_NONE;
}

/* The live object named by hex that the caller may see; replies when none. */
static enum access
find_object(struct cs *cs, struct ntm_req *req, const struct cs_who *w, const char *hex,
    struct cs_obj *o)
{
	enum access acc;
	int e;

	if (!ntm_cs_valid_hex(hex, CS_HEX_HASH)) {
		ntm_reply_error(req, 400, "bad_field", "sha256", "sha256 '%.70s' is not %d "
		    "lowercase hex digits", hex ? hex : "", CS_HEX_HASH);
		return ACC_NONE;
	}
	if ((e = cs_db_obj_get(cs->db, hex, o)) < 0 && e != NTM_ERR_NOTFOUND) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot read the object");
		return ACC_NONE;
	}
	if (e == NTM_ERR_NOTFOUND || o->expires <= now_unix() ||
	    (acc = access_of(cs, w, o)) == ACC_NONE) {
		ntm_reply_error(req, 404, "unknown_object", "sha256", "no object %s", hex);
		return ACC_NONE;
	}
	return acc;
}

/* ---- GET /v1/cs/object --------------------------------------------------- */

/*
 * An object is read from the disk into one reused buffer of the download's
 * own (O_DIRECT: aligned offsets, whole blocks), not through the page
 * cache: it is most often read once, long after it was written, and would
 * only push out what is read often; nor was it written through the page
 * cache (store.c). A file system that refuses O_DIRECT is read as usual.
 */
/* Bytes read from the disk at a time, and held per download being sent:
 * the CS's CPU for a 1 GiB download was about 0.8 s reading 256 KiB at a
 * time, 0.56 s reading 1 MiB (bench/exchange.sh, one run of 3 each). */
#define DL_READ		(512 * 1024)

struct dl {
	int		 fd;
	int		 direct;
	uint64_t	 off;		/* bytes handed out so far */
	uint8_t		*buf;		/* aligned, DL_READ bytes ... */
	uint64_t	 at;		/* ... holding the file's [at, at + len) */
	size_t		 len;
	char		 hex[CS_HEX_HASH + 1];
};

/* Refills d->buf from d->off (O_DIRECT, aligned): 0, or -1 with errno. */
static int
dl_fill(struct dl *d)
{
	void *p;
	ssize_t n;

	if (d->buf == NULL) {
		if (posix_memalign(&p, CS_DIO_ALIGN, DL_READ) != 0)
			return -1;
		d->buf = p;
	}
	d->at = d->off;
	d->len = 0;
	if ((n = pread(d->fd, d->buf, DL_READ, (off_t)d->off)) < 0)
		return -1;
	d->len = (size_t)n;
	return 0;
}

static long
dl_read(void *buf, size_t cap, void *arg)
{
	struct dl *d = arg;
	ssize_t n;
	size_t k;

	for (;;) {
		if (d->direct && d->off >= d->at && d->off < d->at + d->len) {
			k = d->at + d->len - d->off;
			n = (ssize_t)(k < cap ? k : cap);
			memcpy(buf, d->buf + (d->off - d->at), (size_t)n);
			break;
		}
		if (d->direct && d->off % CS_DIO_ALIGN == 0) {
			if (dl_fill(d) == 0) {
				if (d->len == 0) {
					n = 0;
					break;
				}
				continue;
			}
		} else if ((n = pread(d->fd, buf, cap, (off_t)d->off)) >= 0)
			break;
		if (errno == EINTR)
			continue;
		/* Refused (this file system, or an odd offset): as usual. */
		if (d->direct && errno == EINVAL &&
		    fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) & ~O_DIRECT) == 0) {
			d->direct = 0;
			continue;
		}
		n = -1;
		break;
	}
	if (n < 0) {
		log_warn("object %s: read", d->hex);
		return NTM_ERR_IO;
	}
	if (n == 0)
		return NTM_ERR_SHORT;
	d->off += (uint64_t)n;
	return (long)n;
}

static void
dl_end(void *arg, int err)
{
	struct dl *d = arg;

	if (err)
		log_info("object %s: download ended early: %s", d->hex, ntm_strerror(err));
	close(d->fd);
	free(d->buf);
	free(d);
}

static void
on_get(struct ntm_req *req, void *arg)
{
	struct cs *cs = arg;
	struct cs_who w;
	struct cs_obj o;
	struct dl *d;

	if (cs_auth(cs, req, &w) < 0 ||
	    find_object(cs, req, &w, ntm_req_query(req, "sha256"), &o) == ACC_NONE)
		return;
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->fd = cs_obj_open(cs, o.sha256, (uint64_t)o.size)) < 0) {
		free(d);
		ntm_reply_error(req, 500, "internal", NULL, "cannot open object %s", o.sha256);
		return;
	}
	snprintf(d->hex, sizeof(d->hex), "%s", o.sha256);
	d->direct = fcntl(d->fd, F_SETFL, fcntl(d->fd, F_GETFL) | O_DIRECT) == 0;
	ntm_reply_stream(req, 200, "application/octet-stream", (uint64_t)o.size,
	    dl_read, dl_end, d);
}

/* ---- GET /v1/cs/object/meta ---------------------------------------------- */

/* pending: not yet announced (the CS is trying); announced: the
 * recipient's DC listed it; delivered: the recipient confirmed it;
 * failed: its DC said there is no such client, or has none. */
static const char *
dest_status(const struct cs_dest *d)
{
	if (d->delivered)
		return "delivered";
	if (d->announced)
		return "announced";
	return d->failed ? "failed" : "pending";
}

static int
dest_add(const struct cs_dest *d, void *arg)
{
	struct ntm_m_cs_dest m = { .fqdn = d->fqdn, .status = dest_status(d),
	    .delivered = d->delivered, .announced = d->announced, .attempts = d->attempts };
	struct ntm_m_cs_dest_error me = { .code = d->code, .message = d->message ?
	    d->message : "" };
	json_t *e = NULL;
	int r;

	/* delivered and announced are null until they happen. */
	ntm_jmsg_set(&ntm_msg_cs_dest, &m, "delivered", d->delivered != 0);
	ntm_jmsg_set(&ntm_msg_cs_dest, &m, "announced", d->announced != 0);
	if (d->code && !d->announced &&
	    (r = ntm_msg_cs_dest_error_encode(&me, &m.error, NULL)) < 0)
		return r;
	r = ntm_msg_cs_dest_encode(&m, &e, NULL);
	json_decref(m.error);
	if (r < 0)
		return r;
	return json_array_append_new(arg, e) == 0 ? 0 : NTM_ERR_NOMEM;
}

static json_t *
meta_json(struct cs *cs, const struct cs_obj *o)
{
	struct ntm_m_cs_meta m = { .sha256 = o->sha256, .kind = o->kind, .size = o->size,
	    .owner = o->user, .owner_dc = o->dc, .from = o->from, .created = o->created,
	    .expires = o->expires, .app = o->app, .service = o->service, .item = o->item,
	    .notify = o->notify, .announcing = cs->ann != NULL };
	json_t *j = NULL;

	if ((m.to = json_array()) == NULL || cs_db_dests(cs->db, o->sha256, dest_add,
	    m.to) < 0 || ntm_msg_cs_meta_encode(&m, &j, NULL) < 0)
		j = NULL;
	json_decref(m.to);
	return j;
}

/* A GET /v1/cs/object/meta?wait=S waiting for the first announcements. */
struct cs_mwait {
	struct cs_mwait	*next, **prevp;
	struct cs	*cs;
	struct ntm_req	*req;
	char		 sha256[CS_HEX_HASH + 1];
	struct event	*ev;
};

/* Answers w with the object's metadata as it is now, and frees it. */
static void
mwait_answer(struct cs_mwait *w)
{
	struct cs_obj o;

	if (cs_db_obj_get(w->cs->db, w->sha256, &o) < 0)
		ntm_reply_error(w->req, 404, "unknown_object", "sha256", "no object %s",
		    w->sha256);
	else
		ntm_reply_json(w->req, 200, meta_json(w->cs, &o));
	if (w->next)
		w->next->prevp = w->prevp;
	*w->prevp = w->next;
	w->cs->nmwaits--;
	event_free(w->ev);
	free(w);
}

static void
on_mwait_timeout(evutil_socket_t fd, short what, void *arg)
{
	mwait_answer(arg);
}

/* The sender went (an interrupted send): its place is free at once. */
static void
on_mwait_gone(struct ntm_req *req, void *arg)
{
	mwait_answer(arg);
}

void
cs_meta_wake(struct cs *cs, const char *sha256)
{
	struct cs_mwait *w, *next;

	for (w = cs->mwaits; w; w = next) {
		next = w->next;
		if (strcmp(w->sha256, sha256) == 0 && cs_db_untried(cs->db, sha256) == 0)
			mwait_answer(w);
	}
}

void
cs_meta_waits_free(struct cs *cs)
{
	while (cs->mwaits)
		mwait_answer(cs->mwaits);
}

static void
on_meta(struct ntm_req *req, void *arg)
{
	struct cs *cs = arg;
	const char *ws = ntm_req_query(req, "wait");
	struct cs_mwait *w;
	struct cs_who who;
	struct cs_obj o;
	struct timeval tv = { 0, 0 };
	uint64_t wait = 0;

	if (cs_auth(cs, req, &who) < 0)
		return;
	if (ws && ntm_cs_parse_u64(ws, CS_META_WAIT_MAX, &wait) < 0) {
		ntm_reply_error(req, 400, "bad_field", "wait", "query 'wait': expected "
		    "0..%d seconds", CS_META_WAIT_MAX);
		return;
	}
	if (find_object(cs, req, &who, ntm_req_query(req, "sha256"), &o) == ACC_NONE)
		return;
	/* With wait: held until every destination's DC was tried once (the
	 * sender's `ntm send` wants the outcome), or wait seconds. */
	if (wait == 0 || cs->ann == NULL || cs->nmwaits >= CS_META_WAITS_MAX ||
	    cs_db_untried(cs->db, o.sha256) <= 0 || (w = calloc(1, sizeof(*w))) == NULL) {
		ntm_reply_json(req, 200, meta_json(cs, &o));
		return;
	}
	tv.tv_sec = (time_t)wait;
	w->cs = cs;
	w->req = req;
	snprintf(w->sha256, sizeof(w->sha256), "%s", o.sha256);
	if ((w->ev = evtimer_new(cs->srv->base, on_mwait_timeout, w)) == NULL ||
	    evtimer_add(w->ev, &tv) < 0) {
		if (w->ev)
			event_free(w->ev);
		free(w);
		ntm_reply_json(req, 200, meta_json(cs, &o));
		return;
	}
	if ((w->next = cs->mwaits) != NULL)
		w->next->prevp = &w->next;
	w->prevp = &cs->mwaits;
	cs->mwaits = w;
	cs->nmwaits++;
	ntm_req_on_gone(req, on_mwait_gone, w);
}

/* ---- POST /v1/cs/object/confirm ------------------------------------------ */

struct confirm {
	struct cs		*cs;
	const struct cs_who	*w;
	const char		*only;		/* one fqdn, or NULL: all of the caller's */
	const char		*sha256;
	int			 n, err;
};

static int
confirm_one(const struct cs_dest *d, void *arg)
{
	struct confirm *c = arg;
	const char *fqdn = d->fqdn;

	if (!ntm_cs_fqdn_is_account(fqdn, c->w->user, c->w->dc) ||
	    (c->only && strcmp(c->only, fqdn) != 0))
		return 0;
	c->n++;
	if (cs_db_deliver(c->cs->db, c->sha256, fqdn, now_unix()) < 0)
		c->err = NTM_ERR_DB;
	return 0;
}

static void
confirm(struct cs *cs, struct ntm_req *req, const struct cs_who *w, const char *hex,
    const char *only)
{
	struct confirm c = { cs, w, only, hex, 0, 0 };
	struct cs_obj o;

	if (find_object(cs, req, w, hex, &o) == ACC_NONE)
		return;
	if (cs_db_dests(cs->db, hex, confirm_one, &c) < 0 || c.err) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot record the delivery");
		return;
	}
	if (c.n == 0) {
		ntm_reply_error(req, 403, "not_recipient", only ? "fqdn" : "sha256",
		    "%s is not a destination of object %s", only ? only : "this account", hex);
		return;
	}
	log_info("object %s: delivered to %s", hex, only ? only : w->user);
	ntm_reply_json(req, 200, meta_json(cs, &o));
}

static void
on_confirm(struct ntm_req *req, void *arg)
{
	struct cs *cs = arg;
	struct cs_who w;
	struct ntm_m_cs_confirm m;
	struct ntm_jerr jerr;
	json_t *j;

	if (cs_auth(cs, req, &w) < 0 || (j = cs_json_body(req)) == NULL)
		return;
	memset(&jerr, 0, sizeof(jerr));
	if (ntm_msg_cs_confirm_decode(j, &m, &jerr) < 0)
		ntm_reply_jerr(req, &jerr);
	else
		confirm(cs, req, &w, m.sha256, m.fqdn);
	json_decref(j);
}

/* ---- DELETE /v1/cs/object, GET /v1/cs/account ---------------------------- */

static void
on_delete(struct ntm_req *req, void *arg)
{
	struct cs *cs = arg;
	struct cs_who w;
	struct cs_obj o;
	enum access acc;

	if (cs_auth(cs, req, &w) < 0 ||
	    (acc = find_object(cs, req, &w, ntm_req_query(req, "sha256"), &o)) == ACC_NONE)
		return;
	if (acc != ACC_OWNER) {
		ntm_reply_error(req, 403, "not_owner", "sha256", "only the owner may delete "
		    "object %s", o.sha256);
		return;
	}
	if (cs_db_obj_del(cs->db, o.sha256) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot delete the object");
		return;
	}
	cs_obj_remove(cs, o.sha256);
	log_info("object %s: deleted by its owner", o.sha256);
	ntm_reply_json(req, 200, json_pack("{s:s, s:b}", "sha256", o.sha256, "deleted", 1));
}

static void
on_account(struct ntm_req *req, void *arg)
{
	struct cs *cs = arg;
	struct cs_who w;
	int64_t used = 0, open = 0;

	if (cs_auth(cs, req, &w) < 0)
		return;
	if (cs_db_used(cs->db, w.user, w.dc, &used) < 0 ||
	    cs_db_uploads_of(cs->db, w.user, w.dc, &open) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot read the account's usage");
		return;
	}
	ntm_reply_json(req, 200, json_pack("{s:s, s:s, s:I, s:I, s:I}", "user", w.user,
	    "dc", w.dc, "used", (json_int_t)used, "quota",
	    (json_int_t)cs->srv->conf.quota_bytes, "uploads", (json_int_t)open));
}

const struct ntm_http_route cs_object_routes[] = {
	{ "GET",    "/v1/cs/object",	     NTM_ROUTE_BEARER, .fn = on_get },
	{ "DELETE", "/v1/cs/object",	     NTM_ROUTE_BEARER, .fn = on_delete },
	{ "GET",    "/v1/cs/object/meta",    NTM_ROUTE_BEARER, .fn = on_meta },
	{ "POST",   "/v1/cs/object/confirm",
	  NTM_ROUTE_BEARER | NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED, .fn = on_confirm,
	  .body_max = CS_JSON_MAX },
	{ "GET",    "/v1/cs/account",	     NTM_ROUTE_BEARER, .fn = on_account },
	{ .method = NULL }
};
