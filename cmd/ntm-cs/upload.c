/*
 * upload.c - putting an object on the CS in chunks of at most CS_CHUNK_MAX
 * bytes, each received in pieces and written as it comes (never held whole):
 *
 *   POST   /v1/cs/uploads                 declare size, destinations, fields
 *   PUT    /v1/cs/upload?id=ID&offset=N   append the next chunk
 *   GET    /v1/cs/upload?id=ID            how many bytes the CS holds (resume)
 *   DELETE /v1/cs/upload?id=ID            give up
 *   POST   /v1/cs/upload/commit           claim size and SHA-256; the CS checks,
 *                                         makes it durable, then answers 201
 *
 * The temp file's length is the upload's progress, so an upload survives a
 * restart of the CS and resumes where the file ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "cs.h"
#include "msg.h"

struct cs_commit_job {
	struct cs_commit_job	*next;
	struct cs		*cs;
	struct ntm_req		*req;
	struct cs_up		 up;
	char			 hex[CS_HEX_HASH + 1];
	uint8_t			 hash[NTM_HASH_LEN];
	int			 hashed;	/* hash is the running hash: no read back */
	int			 res;
};

int
cs_upload_busy(const struct cs *cs, const char *id)
{
	for (const struct cs_commit_job *j = cs->commits; j; j = j->next)
		if (strcmp(j->up.id, id) == 0)
			return 1;
	return 0;
}

/* ---- POST /v1/cs/uploads ------------------------------------------------- */

struct create_args {
	int64_t		 version, size, ttl;
	const char	*from, *kind, *app, *service, *item, *notify;
	json_t		*to;
};

/* The destination list as a JSON array text (new), or NULL after replying. */
static char *
check_dests(struct ntm_req *req, json_t *to)
{
	size_t i, k, n = json_array_size(to);
	json_t *v;

	if (n < 1 || n > CS_DESTS_MAX) {
		ntm_reply_error(req, 400, "bad_field", "to",
		    "field 'to': %zu destinations, expected 1 to %d", n, CS_DESTS_MAX);
		return NULL;
	}
	json_array_foreach(to, i, v) {
		if (!json_is_string(v) || !ntm_valid_dnsname(json_string_value(v))) {
			ntm_reply_error(req, 400, "bad_field", "to",
			    "field 'to': element %zu is not a lowercase DNS name", i);
			return NULL;
		}
		for (k = 0; k < i; k++)
			if (json_equal(json_array_get(to, k), v)) {
				ntm_reply_error(req, 400, "bad_field", "to",
				    "field 'to': '%s' is listed twice", json_string_value(v));
				return NULL;
			}
	}
	return json_dumps(to, JSON_COMPACT);
}

static int
check_create(struct cs *cs, struct ntm_req *req, const struct cs_who *w,
    struct create_args *a)
{
	if (!ntm_valid_dnsname(a->from) || !ntm_cs_fqdn_is_account(a->from, w->user, w->dc)) {
		ntm_reply_error(req, 403, "forbidden", "from", "field 'from': '%s' is not "
		    "a device name of account '%s' at '%s'", a->from, w->user, w->dc);
		return -1;
	}
	if (strcmp(a->kind, "data") != 0 && strcmp(a->kind, "key") != 0) {
		ntm_reply_error(req, 400, "bad_field", "kind", "field 'kind': '%s' is "
		    "neither \"data\" nor \"key\"", a->kind);
		return -1;
	}
	if (a->size < 0 || a->size > CS_SIZE_MAX) {
		ntm_reply_error(req, 400, "bad_field", "size", "field 'size': %lld is not "
		    "within 0..%lld", (long long)a->size, (long long)CS_SIZE_MAX);
		return -1;
	}
	if (a->ttl < 1 || a->ttl > cs->srv->conf.object_ttl_s) {
		ntm_reply_error(req, 400, "bad_field", "ttl", "field 'ttl': %lld is not "
		    "within 1..%ld (object_ttl_s)", (long long)a->ttl,
		    cs->srv->conf.object_ttl_s);
		return -1;
	}
	return 0;
}

/* Room for size more bytes and one more upload? Replies when not. */
static int
check_room(struct cs *cs, struct ntm_req *req, const struct cs_who *w, int64_t size)
{
	int64_t used = 0, open = 0;
	long quota = cs->srv->conf.quota_bytes;

	if (cs_db_used(cs->db, w->user, w->dc, &used) < 0 ||
	    cs_db_uploads_of(cs->db, w->user, w->dc, &open) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot read the account's usage");
		return -1;
	}
	if (open >= CS_UPLOADS_MAX) {
		ntm_reply_error(req, 429, "too_many_uploads", NULL, "account '%s' at '%s' "
		    "has %lld unfinished uploads, the limit is %d", w->user, w->dc,
		    (long long)open, CS_UPLOADS_MAX);
		return -1;
	}
	if (!ntm_cs_quota_ok((uint64_t)used, (uint64_t)size, (uint64_t)quota)) {
		ntm_reply_error(req, 413, "quota_exceeded", "size", "account '%s' at '%s' "
		    "holds %lld bytes; %lld more would pass its quota of %ld bytes "
		    "(quota_bytes)", w->user, w->dc, (long long)used, (long long)size, quota);
		return -1;
	}
	return 0;
}

/* The answer on upload u, of which the CS holds have bytes (NULL: the
 * reply is then 500). */
static json_t *
upload_json(const struct cs_up *u, int64_t have)
{
	struct ntm_m_cs_upload_state m = { .upload = u->id, .size = u->size,
	    .offset = have, .chunk_max = CS_CHUNK_MAX };
	json_t *j = NULL;

	if (ntm_msg_cs_upload_state_encode(&m, &j, NULL) < 0)
		return NULL;
	return j;
}

static void
fill_up(struct cs_up *u, const struct cs_who *w, const struct create_args *a)
{
	uint8_t raw[CS_UPLOAD_ID];

	ntm_random(raw, sizeof(raw));
	(void)ntm_hex_encode(u->id, sizeof(u->id), raw, sizeof(raw));
	snprintf(u->user, sizeof(u->user), "%s", w->user);
	snprintf(u->dc, sizeof(u->dc), "%s", w->dc);
	snprintf(u->from, sizeof(u->from), "%s", a->from);
	snprintf(u->app, sizeof(u->app), "%s", a->app);
	snprintf(u->service, sizeof(u->service), "%s", a->service);
	snprintf(u->item, sizeof(u->item), "%s", a->item);
	snprintf(u->notify, sizeof(u->notify), "%s", a->notify);
	snprintf(u->kind, sizeof(u->kind), "%s", a->kind);
	u->size = a->size;
	u->ttl = a->ttl;
	u->created = u->touched = now_unix();
}

static void
create(struct cs *cs, struct ntm_req *req, const struct cs_who *w, struct create_args *a)
{
	struct cs_up u;

	memset(&u, 0, sizeof(u));
	if (check_create(cs, req, w, a) < 0 || check_room(cs, req, w, a->size) < 0)
		return;
	if ((u.dests = check_dests(req, a->to)) == NULL)
		return;
	fill_up(&u, w, a);
	if (cs_tmp_create(cs, u.id) < 0 || cs_db_upload_add(cs->db, &u) < 0) {
		log_warn("upload %s: cannot create", u.id);
		cs_tmp_remove(cs, u.id);
		ntm_reply_error(req, 500, "internal", NULL, "cannot create the upload");
	} else {
		log_info("upload %s: %lld bytes from %s for %s", u.id, (long long)u.size,
		    u.from, u.dests);
		ntm_reply_json(req, 201, upload_json(&u, 0));
	}
	free(u.dests);
}

static void
on_create(struct ntm_req *req, void *arg)
{
	struct cs *cs = arg;
	struct cs_who w;
	struct ntm_m_cs_upload m;
	struct create_args a;
	struct ntm_jerr jerr;
	json_t *j;

	if (cs_auth(cs, req, &w) < 0 || (j = cs_json_body(req)) == NULL)
		return;
	memset(&jerr, 0, sizeof(jerr));
	if (ntm_msg_cs_upload_decode(j, &m, &jerr) < 0)
		ntm_reply_jerr(req, &jerr);
	else {
		/* What the client left out takes the CS's defaults. */
		a = (struct create_args){ .version = m.version, .size = m.size,
			.ttl = ntm_jmsg_has(&ntm_msg_cs_upload, &m, "ttl") ? m.ttl :
			    cs->srv->conf.object_ttl_s,
			.from = m.from, .to = m.to, .kind = m.kind ? m.kind : "data",
			.app = m.app ? m.app : "", .service = m.service ? m.service : "",
			.item = m.item ? m.item : "", .notify = m.notify ? m.notify : "" };
		create(cs, req, &w, &a);
	}
	json_decref(j);
}

/* ---- finding the caller's upload ----------------------------------------- */

/*
 * The upload named by ?id= (or by id) that belongs to the caller and is not
 * being committed, with the bytes its file holds. Replies and returns -1
 * when there is none. u->dests is new on success.
 */
static int
find_upload(struct cs *cs, struct ntm_req *req, const struct cs_who *w, const char *id,
    struct cs_up *u, int64_t *have)
{
	int e;

	if (!ntm_cs_valid_hex(id, CS_HEX_ID)) {
		ntm_reply_error(req, 400, "bad_field", "id", "upload id '%.40s' is not %d "
		    "lowercase hex digits", id ? id : "", CS_HEX_ID);
		return -1;
	}
	if ((e = cs_db_upload_get(cs->db, id, u)) == NTM_ERR_NOTFOUND ||
	    (e == 0 && !cs_is_owner(w, u->user, u->dc))) {
		free(u->dests);
		ntm_reply_error(req, 404, "unknown_upload", "id", "no upload %s", id);
		return -1;
	}
	if (e < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot read the upload");
		return -1;
	}
	if (cs_upload_busy(cs, id)) {
		free(u->dests);
		ntm_reply_error(req, 409, "upload_busy", "id", "upload %s is being committed", id);
		return -1;
	}
	if ((*have = cs_tmp_size(cs, id)) == NTM_ERR_NOTFOUND) {
		/* Renamed away by a commit the CS did not finish: start over. */
		cs_upload_forget(cs, id);
		(void)cs_db_upload_del(cs->db, id);
		free(u->dests);
		ntm_reply_error(req, 404, "unknown_upload", "id", "upload %s was lost; "
		    "start again", id);
		return -1;
	}
	if (*have < 0) {
		free(u->dests);
		ntm_reply_error(req, 500, "internal", NULL, "cannot read the upload file");
		return -1;
	}
	return 0;
}


/* ---- PUT / GET / DELETE /v1/cs/upload ------------------------------------ */

/* How stale an upload's touched time may be let go before a chunk writes it. */
static int64_t
touch_every(const struct cs *cs)
{
	int64_t t = cs->srv->conf.upload_idle_s / 8;

	return t < 60 ? t : 60;
}

static int
chunk_refused(struct ntm_req *req, const struct cs_up *u, int64_t have,
    uint64_t offset, size_t len)
{
	switch (ntm_cs_chunk_check((uint64_t)u->size, (uint64_t)have, offset, len)) {
	case NTM_CS_CHUNK_OK:
		return 0;
	case NTM_CS_CHUNK_EMPTY:
		ntm_reply_error(req, 400, "empty_chunk", "body", "a chunk needs 1 to %d "
		    "bytes", CS_CHUNK_MAX);
		break;
	case NTM_CS_CHUNK_BIG:
		ntm_reply_error(req, 413, "body_too_large", "body", "chunk of %zu bytes "
		    "is over the limit of %d", len, CS_CHUNK_MAX);
		break;
	case NTM_CS_CHUNK_OFFSET:
		ntm_reply_error(req, 409, "bad_offset", "offset", "offset %llu: upload %s "
		    "holds %lld bytes; send from there", (unsigned long long)offset, u->id,
		    (long long)have);
		break;
	case NTM_CS_CHUNK_TOOLONG:
		ntm_reply_error(req, 400, "past_size", "offset", "%zu bytes at offset "
		    "%llu go past the declared size of %lld", len,
		    (unsigned long long)offset, (long long)u->size);
		break;
	}
	return -1;
}

/* ---- chunks received in pieces, written on the worker --------------------- */

/*
 * A chunk's body is never held whole: the server hands it over in pieces
 * of about NTM_HTTPD_STREAM_WINDOW bytes. Each piece goes to two threads
 * at once: the worker writes it (waiting on the disk) while the hasher adds
 * it to the upload's running hash (the CPU); each takes the pieces in
 * order. Up to CS_PUT_AHEAD pieces of a chunk are out while the server
 * reads the next (CS_PIECES_MAX in all: past it, one a chunk), so that
 * neither the disk's wait nor the hashing stops the reading. The upload's
 * offset (writing_end) moves as pieces are queued; a client gone mid-chunk
 * leaves the file at its last whole piece, where GET /v1/cs/upload then
 * says the upload resumes.
 */
struct cs_put {
	struct cs	*cs;
	struct ntm_req	*req;		/* NULL once answered */
	struct cs_up	 u;
	char		 hex[CS_HEX_HASH + 1];	/* "": no commit follows */
	uint64_t	 at;		/* where the next piece goes */
	uint64_t	 end;		/* where the chunk ends */
	int		 jobs;		/* pieces with the worker or the hasher */
	int		 held;		/* the next piece waits for one to be done */
	int		 failed;
	int		 last;		/* the body's end, or the client's */
	int		 gone;
};

struct cs_chunk_job {
	struct cs_put	*put;
	struct cs_tmpfile *f;		/* the slot's */
	uint64_t	 offset;
	uint8_t		*body;
	size_t		 len;
	int		 parts;		/* the write and the hash still to finish */
	int		 res;
};

/* Lets slot wr go, closing its file. */
static void
writing_release(struct cs_writing *wr)
{
	if (wr->id[0] != '\0')
		cs_tmp_close(&wr->f);
	memset(wr, 0, sizeof(*wr));
}

/*
 * The slot of upload id; with make, a new one when it has none: a free
 * slot, or the least recently used idle one. NULL when none is left.
 */
static struct cs_writing *
writing_find(struct cs *cs, const char *id, int make)
{
	struct cs_writing *free_one = NULL, *idle = NULL, *wr;

	for (int i = 0; i < CS_WRITING; i++) {
		wr = &cs->writing[i];
		if (strcmp(wr->id, id) == 0)
			return wr;
		if (free_one == NULL && wr->id[0] == '\0')
			free_one = wr;
		else if (wr->id[0] != '\0' && !wr->active && wr->jobs == 0 &&
		    (idle == NULL || wr->used < idle->used))
			idle = wr;
	}
	if (!make || (free_one == NULL && idle == NULL))
		return NULL;
	if (free_one == NULL)
		free_one = idle;
	writing_release(free_one);
	snprintf(free_one->id, sizeof(free_one->id), "%s", id);
	return free_one;
}

/* The upload ends (committed, abandoned, lost): its idle slot goes. */
void
cs_upload_forget(struct cs *cs, const char *id)
{
	struct cs_writing *wr = writing_find(cs, id, 0);

	if (wr && !wr->active && wr->jobs == 0)
		writing_release(wr);
}

unsigned
cs_chunks_receiving(const struct cs *cs)
{
	unsigned n = 0;

	for (int i = 0; i < CS_WRITING; i++)
		n += cs->writing[i].id[0] != '\0' &&
		    (cs->writing[i].active || cs->writing[i].jobs > 0);
	return n;
}

/* Where upload id ends: after its queued pieces, else the file's size. */
static int64_t
writing_end(struct cs *cs, const char *id, int64_t file_size)
{
	struct cs_writing *wr = writing_find(cs, id, 0);

	return wr && !wr->failed && wr->jobs > 0 ? wr->end : file_size;
}

/* On the worker. */
static void
chunk_write(void *arg)
{
	struct cs_chunk_job *j = arg;

	j->res = cs_tmp_append(j->f, j->offset, j->body, j->len);
}

/* On the hasher, apart from the write: a piece whose write fails is taken
 * out again when both are done (chunk_done drops the running hash; the
 * commit then reads the file back). */
static void
chunk_hash(void *arg)
{
	struct cs_chunk_job *j = arg;

	cs_hash_add(j->put->cs, j->put->u.id, j->offset, j->body, j->len);
}

/* The worker and the hasher, made when the first chunk comes (after the
 * fork): 0, or -1 after answering. */
static int
workers_start(struct cs *cs, struct ntm_req *req)
{
	if ((cs->worker == NULL && (cs->worker = ntm_worker_new(cs->srv->base, 1)) == NULL) ||
	    (cs->hasher == NULL && (cs->hasher = ntm_worker_new(cs->srv->base, 1)) == NULL)) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot start the worker");
		return -1;
	}
	return 0;
}

static void commit_start(struct cs *cs, struct ntm_req *req, struct cs_up *u, const char *hex);
static void park_wake(struct cs *cs);

/* Every piece is written (or the chunk failed): answer and let go. */
static void
put_finish(struct cs_put *p)
{
	struct cs *cs = p->cs;
	struct cs_writing *wr = writing_find(cs, p->u.id, 0);

	if (p->jobs > 0 || (!p->last && !p->failed))
		return;
	if (wr)
		wr->active = 0;		/* idle: its file stays open for the next chunk */
	if (p->req == NULL)
		;
	else if (p->failed)
		ntm_reply_error(p->req, 500, "internal", NULL, "cannot store the chunk");
	else if (p->gone)
		/* Nobody reads it: this only lets the request go. */
		ntm_reply_error(p->req, 400, "incomplete_body", "body", "the client went "
		    "away within the chunk");
	else if (p->hex[0]) {
		commit_start(cs, p->req, &p->u, p->hex);	/* takes u.dests */
		p->u.dests = NULL;
	} else
		ntm_reply_json(p->req, 200, upload_json(&p->u, (int64_t)p->end));
	free(p->u.dests);
	free(p);
	park_wake(cs);		/* a slot is free now */
}

static void
chunk_done(void *arg)
{
	struct cs_chunk_job *j = arg;
	struct cs_put *p = j->put;
	struct cs_writing *wr;
	int res = j->res;

	if (--j->parts > 0)
		return;		/* the write's or the hash's end is still to come */
	wr = writing_find(p->cs, p->u.id, 0);
	p->cs->pieces--;
	if (res < 0) {
		cs_hash_drop(p->cs, p->u.id);
		log_warnx("upload %s: write at %llu: %s", p->u.id,
		    (unsigned long long)j->offset, ntm_strerror(j->res));
	}
	p->jobs--;
	if (wr) {
		wr->jobs--;
		if (res < 0)
			wr->failed = 1;	/* the file's size tells where it stopped */
	}
	free(j->body);
	free(j);
	if (res < 0 && !p->failed) {
		/* The rest of the body is not read: the answer closes the
		 * connection, and the client resumes from the file's size. */
		p->failed = 1;
		if (p->req)
			ntm_reply_error(p->req, 500, "internal", NULL, "cannot store the chunk");
		p->req = NULL;
	} else if (p->held && !p->failed && !p->last && p->req) {
		p->held = 0;
		ntm_req_body_next(p->req);
	}
	put_finish(p);
}

/* A piece of the chunk's body, or its end (ntm_body_fn). */
static void
put_piece(struct ntm_req *req, uint8_t *data, size_t len, int state, void *arg)
{
	struct cs_put *p = arg;
	struct cs_writing *wr = writing_find(p->cs, p->u.id, 0);
	struct cs_chunk_job *j;

	if (state != NTM_BODY_PIECE) {
		p->last = 1;
		p->gone = state == NTM_BODY_GONE;
		if (p->gone)
			log_info("upload %s: chunk cut short at %llu (client gone, or "
			    "the CS stopping); the upload holds the bytes before it",
			    p->u.id, (unsigned long long)p->at);
		put_finish(p);
		return;
	}
	if (p->failed || wr == NULL || p->at + len > p->end ||
	    (j = calloc(1, sizeof(*j))) == NULL) {
		free(data);
		p->failed = 1;
		ntm_reply_error(req, 500, "internal", NULL, "cannot store the chunk");
		p->req = NULL;
		put_finish(p);
		return;
	}
	j->put = p;
	j->f = &wr->f;
	j->offset = p->at;
	j->body = data;
	j->len = len;
	j->parts = 2;
	if (ntm_worker_submit(p->cs->worker, chunk_write, chunk_done, j) < 0) {
		free(data);
		free(j);
		p->failed = 1;
		ntm_reply_error(req, 503, "busy", NULL, "too many writes queued");
		p->req = NULL;
		put_finish(p);
		return;
	}
	if (ntm_worker_submit(p->cs->hasher, chunk_hash, chunk_done, j) < 0) {
		/* Written, not hashed: the commit reads the file back. */
		cs_hash_drop(p->cs, p->u.id);
		j->parts--;
	}
	p->jobs++;
	p->at += len;
	wr->jobs++;
	wr->end = (int64_t)p->at;
	p->cs->pieces++;
	/* The next piece now, or once this one or another of the chunk is done. */
	if (p->jobs < CS_PUT_AHEAD && p->cs->pieces <= CS_PIECES_MAX)
		ntm_req_body_next(req);
	else
		p->held = 1;
}

static int commit_refused(struct cs *cs, struct ntm_req *req, const struct cs_up *u,
    int64_t have, int64_t size, const char *hex);

/* ---- chunks waiting for a slot ----------------------------------------------- */

/*
 * A chunk PUT that found all CS_WRITING slots receiving chunks waits for
 * one (its body unread, so it costs its connection and no more), at most
 * chunk_wait_ms, instead of a 503 the client would have to send again; at
 * most chunk_wait_max such chunks at once, chunk_wait_per_addr of them
 * from one source address. Past these bounds the answer is 503 as before.
 * The oldest goes first when a slot frees, and is then checked anew from
 * the start (its upload may have moved on meanwhile).
 */
struct cs_park {
	struct cs_park	*next, **prevp;
	struct cs	*cs;
	struct ntm_req	*req;
	struct event	*ev;
	char		 addr[64];	/* the source, without its port */
};

static void chunk_start(struct cs *cs, struct ntm_req *req, int may_park);

/* Takes p out of the queue and frees it (its request is the caller's). */
static struct ntm_req *
park_unlink(struct cs_park *p)
{
	struct cs *cs = p->cs;
	struct ntm_req *req = p->req;

	*p->prevp = p->next;
	if (p->next)
		p->next->prevp = p->prevp;
	else
		cs->parked_tail = p->prevp;
	cs->nparked--;
	event_free(p->ev);
	free(p);
	ntm_req_on_gone(req, NULL, NULL);
	return req;
}

static void
park_busy(struct ntm_req *req, const char *why)
{
	ntm_reply_error(req, 503, "busy", NULL, "too many uploads receiving chunks "
	    "(%d)%s", CS_WRITING, why);
}

static void
on_park_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct cs_park *p = arg;
	long ms = p->cs->srv->conf.chunk_wait_ms;
	char why[96];

	snprintf(why, sizeof(why), "; none came free within %ld ms (chunk_wait_ms)", ms);
	park_busy(park_unlink(p), why);
}

/* The client went: its place goes at once (the answer goes nowhere). */
static void
on_park_gone(struct ntm_req *req, void *arg)
{
	park_busy(park_unlink(arg), "");
}

/* Whether a chunk of a new upload would find a slot now. */
static int
slot_free(const struct cs *cs)
{
	for (int i = 0; i < CS_WRITING; i++)
		if (cs->writing[i].id[0] == '\0' ||
		    (!cs->writing[i].active && cs->writing[i].jobs == 0))
			return 1;
	return 0;
}

/* Slots are free: the oldest waiting chunks go, as long as some are. */
static void
park_wake(struct cs *cs)
{
	while (cs->parked && slot_free(cs))
		chunk_start(cs, park_unlink(cs->parked), 0);
}

/* Queues req to wait for a slot: 0, or -1 after answering 503 (a bound
 * reached). */
static int
park(struct cs *cs, struct ntm_req *req)
{
	const struct srv_conf *c = &cs->srv->conf;
	struct timeval tv = { c->chunk_wait_ms / 1000, (c->chunk_wait_ms % 1000) * 1000 };
	char addr[64], why[160];
	struct cs_park *p;
	const char *colon;
	long same = 0;

	snprintf(addr, sizeof(addr), "%s", ntm_req_peer(req) ? ntm_req_peer(req) : "");
	if ((colon = strrchr(addr, ':')) != NULL && (addr[0] != '[' || colon[-1] == ']'))
		addr[colon - addr] = '\0';
	for (p = cs->parked; p; p = p->next)
		same += strcmp(p->addr, addr) == 0;
	if ((long)cs->nparked >= c->chunk_wait_max) {
		snprintf(why, sizeof(why), ", and %u chunks wait for one (chunk_wait_max)",
		    cs->nparked);
		park_busy(req, why);
		return -1;
	}
	if (same >= c->chunk_wait_per_addr) {
		snprintf(why, sizeof(why), ", and %ld chunks from %s wait for one "
		    "(chunk_wait_per_addr)", same, addr);
		park_busy(req, why);
		return -1;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->ev = evtimer_new(cs->srv->base, on_park_timeout, p)) == NULL ||
	    evtimer_add(p->ev, &tv) < 0) {
		if (p && p->ev)
			event_free(p->ev);
		free(p);
		park_busy(req, "");
		return -1;
	}
	p->cs = cs;
	p->req = req;
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	if (cs->parked_tail == NULL)
		cs->parked_tail = &cs->parked;
	p->prevp = cs->parked_tail;
	*cs->parked_tail = p;
	cs->parked_tail = &p->next;
	cs->nparked++;
	ntm_req_on_gone(req, on_park_gone, p);
	return 0;
}

void
cs_parked_free(struct cs *cs)
{
	while (cs->parked)
		park_busy(park_unlink(cs->parked), "; the CS is stopping");
}

static void
on_chunk(struct ntm_req *req, void *arg)
{
	chunk_start(arg, req, 1);
}

static void
chunk_start(struct cs *cs, struct ntm_req *req, int may_park)
{
	struct cs_who w;
	struct cs_up u;
	struct cs_writing *wr;
	struct cs_put *p;
	const char *hex = ntm_req_query(req, "sha256");
	uint64_t offset, blen = ntm_req_body_len(req);
	size_t len = blen > (uint64_t)CS_CHUNK_MAX ? (size_t)CS_CHUNK_MAX + 1 : (size_t)blen;
	int64_t have;
	int e;

	if (cs_auth(cs, req, &w) < 0)
		return;
	if (ntm_cs_parse_u64(ntm_req_query(req, "offset"), (uint64_t)CS_SIZE_MAX, &offset) < 0) {
		ntm_reply_error(req, 400, "bad_field", "offset", "query parameter 'offset' "
		    "must be a decimal byte offset");
		return;
	}
	if (hex && !ntm_cs_valid_hex(hex, CS_HEX_HASH)) {
		ntm_reply_error(req, 400, "bad_field", "sha256", "query parameter 'sha256': "
		    "not %d lowercase hex digits", CS_HEX_HASH);
		return;
	}
	if (find_upload(cs, req, &w, ntm_req_query(req, "id"), &u, &have) < 0)
		return;
	wr = writing_find(cs, u.id, 0);
	if (wr && wr->active) {
		/* Another chunk of it is coming in (a client that resumes
		 * before the CS saw its old connection end): ask again. */
		ntm_reply_error(req, 503, "busy", "id", "upload %s is receiving a chunk",
		    u.id);
		goto out;
	}
	have = writing_end(cs, u.id, have);
	if (chunk_refused(req, &u, have, offset, len) != 0)
		goto out;
	/* sha256 with the last chunk: the commit follows it (one round trip). */
	if (hex && (int64_t)(offset + len) != u.size) {
		ntm_reply_error(req, 400, "bad_field", "sha256", "query parameter 'sha256' "
		    "goes only with the chunk that ends the upload (at %lld bytes)",
		    (long long)u.size);
		goto out;
	}
	if (hex && commit_refused(cs, req, &u, have + (int64_t)len, u.size, hex) < 0)
		goto out;
	if (workers_start(cs, req) < 0)
		goto out;
	if ((wr = writing_find(cs, u.id, 1)) == NULL) {
		if (may_park)
			(void)park(cs, req);	/* or answers 503 */
		else
			park_busy(req, "");
		goto out;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		goto out;
	}
	if (!wr->f.open && (e = cs_tmp_open(cs, u.id, &wr->f)) < 0) {
		writing_release(wr);
		free(p);
		if (e == NTM_ERR_NOTFOUND) {
			(void)cs_db_upload_del(cs->db, u.id);
			ntm_reply_error(req, 404, "unknown_upload", "id", "upload %s was "
			    "lost; start again", u.id);
		} else
			ntm_reply_error(req, 500, "internal", NULL, "cannot open the upload file");
		goto out;
	}
	wr->used = ++cs->writing_clock;
	wr->failed = 0;
	/* A chunk keeps its upload from the collector (upload_idle_s); the one
	 * that commits needs no such write: the commit ends the upload. The
	 * row is written at most every upload_idle_s / 8 (60 s at most), not
	 * per chunk: each write is an SQLite transaction in this thread, which
	 * waited 20-60 ms for the disk while chunks streamed at full speed. */
	if (hex == NULL && now_unix() - u.touched >= touch_every(cs))
		(void)cs_db_upload_touch(cs->db, u.id, now_unix());
	wr->active = 1;
	wr->end = have;
	p->cs = cs;
	p->req = req;
	p->u = u;		/* takes dests */
	p->at = offset;
	p->end = offset + len;
	if (hex)
		snprintf(p->hex, sizeof(p->hex), "%s", hex);
	ntm_req_body_read(req, put_piece, p);
	return;
out:
	free(u.dests);
}

static void
on_status(struct ntm_req *req, void *arg)
{
	struct cs *cs = arg;
	struct cs_who w;
	struct cs_up u;
	int64_t have;

	if (cs_auth(cs, req, &w) < 0 ||
	    find_upload(cs, req, &w, ntm_req_query(req, "id"), &u, &have) < 0)
		return;
	ntm_reply_json(req, 200, upload_json(&u, writing_end(cs, u.id, have)));
	free(u.dests);
}

static void
on_abandon(struct ntm_req *req, void *arg)
{
	struct cs *cs = arg;
	struct cs_who w;
	struct cs_up u;
	int64_t have;

	if (cs_auth(cs, req, &w) < 0 ||
	    find_upload(cs, req, &w, ntm_req_query(req, "id"), &u, &have) < 0)
		return;
	if (cs_db_upload_del(cs->db, u.id) < 0)
		ntm_reply_error(req, 500, "internal", NULL, "cannot delete the upload");
	else {
		cs_upload_forget(cs, u.id);
		cs_tmp_remove(cs, u.id);
		log_info("upload %s: abandoned by its owner", u.id);
		ntm_reply_json(req, 200, json_pack("{s:s, s:b}", "upload", u.id,
		    "deleted", 1));
	}
	free(u.dests);
}

/* ---- POST /v1/cs/upload/commit ------------------------------------------- */

static void
commit_work(void *arg)
{
	struct cs_commit_job *j = arg;

	/* After the upload's chunks (the worker runs jobs in order). */
	j->hashed = cs_hash_take(j->cs, j->up.id, (uint64_t)j->up.size, j->hash) == 0;
	j->res = cs_store_commit(j->cs, j->up.id, (uint64_t)j->up.size, j->hash, j->hashed,
	    j->hex);
}

static void
commit_unlink(struct cs_commit_job *j)
{
	struct cs_commit_job **pp;

	for (pp = &j->cs->commits; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
}

/* The answer on a stored object (NULL: the reply is then 500). */
static json_t *
object_json(const char *hex, int64_t size, int64_t created, int64_t expires)
{
	struct ntm_m_cs_object m = { .sha256 = hex, .size = size, .created = created,
	    .expires = expires };
	json_t *j = NULL;

	if (ntm_msg_cs_object_encode(&m, &j, NULL) < 0)
		return NULL;
	return j;
}

static void
commit_reply(struct cs_commit_job *j, int64_t now)
{
	struct cs *cs = j->cs;
	char got[CS_HEX_HASH + 1];
	int e;

	if (j->res == NTM_ERR_CRYPTO) {
		(void)cs_db_upload_del(cs->db, j->up.id);
		(void)ntm_hex_encode(got, sizeof(got), j->hash, sizeof(j->hash));
		log_info("upload %s: refused, content hashes to %s, not %s", j->up.id, got,
		    j->hex);
		ntm_reply_error(j->req, 409, "hash_mismatch", "sha256", "the %lld bytes "
		    "received hash to %s, not %s; the upload is discarded",
		    (long long)j->up.size, got, j->hex);
		return;
	}
	if (j->res < 0) {
		log_warnx("upload %s: commit failed: %s", j->up.id, ntm_strerror(j->res));
		ntm_reply_error(j->req, 500, "internal", NULL, "cannot store the object");
		return;
	}
	if ((e = cs_db_commit(cs->db, &j->up, j->hex, now)) == NTM_ERR_EXISTS) {
		(void)cs_db_upload_del(cs->db, j->up.id);
		ntm_reply_error(j->req, 409, "exists", "sha256", "object %s is already "
		    "stored", j->hex);
		return;
	}
	if (e < 0) {
		ntm_reply_error(j->req, 500, "internal", NULL, "cannot record the object");
		return;
	}
	cs->objects_stored++;
	cs->bytes_stored += (uint64_t)j->up.size;
	log_info("object %s: %lld bytes stored for %s", j->hex, (long long)j->up.size,
	    j->up.dests);
	cs_announce_kick(cs);
	ntm_reply_json(j->req, 201, object_json(j->hex, j->up.size, now, now + j->up.ttl));
}

static void
commit_done(void *arg)
{
	struct cs_commit_job *j = arg;

	commit_unlink(j);
	commit_reply(j, now_unix());
	free(j->up.dests);
	free(j);
}

static int
commit_refused(struct cs *cs, struct ntm_req *req, const struct cs_up *u, int64_t have,
    int64_t size, const char *hex)
{
	switch (ntm_cs_commit_check((uint64_t)u->size, (uint64_t)have, (uint64_t)size,
	    NULL, NULL)) {
	case NTM_CS_COMMIT_SIZE:
		ntm_reply_error(req, 409, "size_mismatch", "size", "size %lld is not the "
		    "%lld bytes declared for upload %s", (long long)size,
		    (long long)u->size, u->id);
		return -1;
	case NTM_CS_COMMIT_INCOMPLETE:
		ntm_reply_error(req, 409, "incomplete", "size", "upload %s holds %lld of "
		    "%lld bytes", u->id, (long long)have, (long long)u->size);
		return -1;
	default:
		break;
	}
	if (cs_db_has_obj(cs->db, hex)) {
		ntm_reply_error(req, 409, "exists", "sha256", "object %s is already stored",
		    hex);
		return -1;
	}
	return 0;
}

static void
commit_start(struct cs *cs, struct ntm_req *req, struct cs_up *u, const char *hex)
{
	struct cs_commit_job *j;

	if (cs->worker == NULL && (cs->worker = ntm_worker_new(cs->srv->base, 1)) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot start the worker");
		free(u->dests);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		free(u->dests);
		return;
	}
	cs_upload_forget(cs, u->id);	/* the commit opens the file itself */
	j->cs = cs;
	j->req = req;
	j->up = *u;		/* takes dests */
	snprintf(j->hex, sizeof(j->hex), "%s", hex);
	j->next = cs->commits;
	cs->commits = j;
	if (ntm_worker_submit(cs->worker, commit_work, commit_done, j) < 0) {
		commit_unlink(j);
		ntm_reply_error(req, 503, "busy", NULL, "too many commits queued");
		free(j->up.dests);
		free(j);
	}
}

static void
commit(struct cs *cs, struct ntm_req *req, const struct cs_who *w, const char *id,
    int64_t size, const char *hex)
{
	struct cs_up u;
	struct cs_writing *wr;
	int64_t have;

	if (!ntm_cs_valid_hex(hex, CS_HEX_HASH)) {
		ntm_reply_error(req, 400, "bad_field", "sha256", "field 'sha256': not %d "
		    "lowercase hex digits", CS_HEX_HASH);
		return;
	}
	if (find_upload(cs, req, w, id, &u, &have) < 0)
		return;
	if ((wr = writing_find(cs, u.id, 0)) != NULL && wr->active) {
		ntm_reply_error(req, 503, "busy", "id", "upload %s is receiving a chunk",
		    u.id);
		free(u.dests);
		return;
	}
	/* Pieces still queued are written before the commit job runs. */
	have = writing_end(cs, u.id, have);
	if (commit_refused(cs, req, &u, have, size, hex) < 0) {
		free(u.dests);
		return;
	}
	commit_start(cs, req, &u, hex);
}

static void
on_commit(struct ntm_req *req, void *arg)
{
	struct cs *cs = arg;
	struct cs_who w;
	struct ntm_m_cs_commit m;
	struct ntm_jerr jerr;
	json_t *j;

	if (cs_auth(cs, req, &w) < 0 || (j = cs_json_body(req)) == NULL)
		return;
	memset(&jerr, 0, sizeof(jerr));
	if (ntm_msg_cs_commit_decode(j, &m, &jerr) < 0)
		ntm_reply_jerr(req, &jerr);
	else
		commit(cs, req, &w, m.upload, m.size, m.sha256);
	json_decref(j);
}

/* The JSON bodies are small; a chunk may be up to the server's limit. */
const struct ntm_http_route cs_upload_routes[] = {
	{ "POST",   "/v1/cs/uploads",
	  NTM_ROUTE_BEARER | NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED, .fn = on_create,
	  .body_max = CS_JSON_MAX },
	{ "PUT",    "/v1/cs/upload",	    NTM_ROUTE_BEARER | NTM_ROUTE_STREAM, .fn = on_chunk },
	{ "GET",    "/v1/cs/upload",	    NTM_ROUTE_BEARER, .fn = on_status },
	{ "DELETE", "/v1/cs/upload",	    NTM_ROUTE_BEARER, .fn = on_abandon },
	{ "POST",   "/v1/cs/upload/commit",
	  NTM_ROUTE_BEARER | NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED, .fn = on_commit,
	  .body_max = CS_JSON_MAX },
	{ .method = NULL }
};
