/*
 * send.c - ntm send PEER... [FILE|-]: seal a file for one or more peers with
 * the keys shared with them (docs/protocol.md §8.2) and upload it to our
 * DC's CS in chunks; the CS announces it to each peer's DC, which lists it
 * in the peer's cache list and notifies it. ntm send --status ID shows
 * announcement and delivery.
 *
 * A regular file is sealed as it goes up: its sealed size follows from its
 * size, and the SHA-256 the CS names the object by goes with the last chunk
 * (the commit). Standard input is staged first in an unlinked file in the
 * state dir (the CS wants the size before the bytes). Memory stays bounded
 * either way: one chunk and one piece.
 *
 * A send of a regular file that dies part way leaves a record of its upload
 * (below), and the next send of the same file to the same peers goes on
 * with that upload instead of starting another (docs/protocol.md §7.6).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "common.h"
#include "xcli.h"

struct sopts {
	const char	*app, *service, *item, *notify, *status, *file;
	const char	*peers[NTM_XDATA_DEST_MAX];
	int		 npeers, json, progress;
	long		 timeout, ttl;
};

/* An opaque text option: at most o->max bytes, printable (no control bytes). */
static int
set_text(void *args, const struct cmd_opt *o, const char *v)
{
	size_t i, n = strlen(v), max = (size_t)o->max;

	if (n > max) {
		cli_err("send", "--%s '%.40s...': longer than %zu bytes", o->name, v, max);
		return -1;
	}
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
			cli_err("send", "--%s '%s': control characters are not allowed", o->name,
			    v);
			return -1;
		}
	*(const char **)(void *)((char *)args + o->off) = v;
	return 0;
}

static int valid_sha(const char *s);

static int
set_status(void *args, const struct cmd_opt *o, const char *v)
{
	(void)o;
	if (!valid_sha(v)) {
		cli_err("send", "--status '%s': expected an object ID (64 lowercase hex digits)",
		    v);
		return -1;
	}
	((struct sopts *)args)->status = v;
	return 0;
}

#define TEXT_OPT(field, max_, meta, text) { .name = #field, .arg = meta, .help = text, \
	.type = CMD_CALL, .set = set_text, .off = offsetof(struct sopts, field), .max = max_ }

static const struct cmd_opt send_opts[] = {
	TEXT_OPT(app, 64, "ID", "application ID carried with the object (at most 64 bytes)"),
	TEXT_OPT(service, 64, "ID", "service ID (at most 64 bytes)"),
	TEXT_OPT(item, 128, "ID", "service item ID (at most 128 bytes)"),
	TEXT_OPT(notify, 512, "TEXT", "notification message shown to the peers (at most "
	  "512 bytes; servers see it: put no secret in it)"),
	{ .name = "ttl", .arg = "SEC", .help = "keep the object at the CS for SEC seconds "
	  "(default: the CS's object_ttl_s)", .type = CMD_INT,
	  .off = offsetof(struct sopts, ttl), .min = 1, .max = 365L * 86400,
	  .expect = "expected seconds 1..31536000" },
	{ .name = "status", .arg = "ID", .help = "show the delivery of a sent object (its "
	  "SHA-256) per destination, and exit", .type = CMD_CALL, .set = set_status },
	CLI_OPT_TIMEOUT(struct sopts, "give up on a server call after SEC seconds, or a "
	  "transfer stalled that long (1..300, default 10)"),
	X_OPT_PROGRESS(struct sopts),
	CLI_OPT_JSON(struct sopts, "print the result as one JSON object"),
	CLI_OPT_HELP,
	CLI_OPT_END
};

static void
send_init(void *args)
{
	struct sopts *o = args;

	o->app = o->service = o->item = o->notify = "";
}

/*
 * The sealed object (docs/protocol.md §8.2), made as it is read: header,
 * metadata, then the input in pieces of NTM_XDATA_CHUNK; a short piece is
 * the last (FINAL), and a full one may be followed by an empty FINAL one.
 */
enum { S_META, S_PIECES, S_END };

struct srec;

struct sealer {
	struct xctx		*x;
	int			 in, state;
	struct ntm_xseal	 xs;
	struct ntm_sha256	 h;
	uint8_t			 out[4 + NTM_XDATA_MSG_MAX];	/* a message (or the header) */
	size_t			 len, pos;	/* out[pos, len) not yet taken */
	char			*meta;
	int			 in_known;	/* a regular file: its size is in_size */
	uint64_t		 in_size, in_done;
	uint64_t		 size;		/* sealed bytes taken */
	char			 sha[65];	/* once all is taken */
	const char		*why;		/* why it failed (else errno) */
	struct srec		*rec;		/* told the upload and hash, or NULL */
	int			 sha_told;
};

static void srec_note_sha(struct srec *r, const char *sha);

static uint8_t piece[NTM_XDATA_CHUNK];

/* Fills buf from fd: bytes read (less than cap only at end of input), or -1. */
static ssize_t
read_full(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;
	ssize_t r;

	while (got < cap) {
		if ((r = read(fd, buf + got, cap - got)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static int
seal_begin(struct xctx *x, struct sealer *s, int in, const struct xkey *keys, int n,
    const char *name)
{
	uint8_t ids[NTM_XDATA_DEST_MAX][NTM_XKEY_ID], ks[NTM_XDATA_DEST_MAX][NTM_KEY_LEN];
	struct stat st;
	json_t *mj;
	int i, hl;

	memset(s, 0, sizeof(*s));
	s->x = x;
	s->in = in;
	/* Files that say they are empty (those in /proc) may not be: staged. */
	if (fstat(in, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
		s->in_known = 1;
		s->in_size = (uint64_t)st.st_size;
	}
	if (ntm_sha256_init(&s->h) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		memcpy(ids[i], keys[i].key_id, NTM_XKEY_ID);
		memcpy(ks[i], keys[i].key, NTM_KEY_LEN);
	}
	hl = ntm_xseal_init(&s->xs, s->out, sizeof(s->out), n,
	    (const uint8_t (*)[NTM_XKEY_ID])ids, (const uint8_t (*)[NTM_KEY_LEN])ks);
	ntm_wipe(ks, sizeof(ks));
	mj = json_pack("{s:i, s:s, s:I}", "version", 1, "name", name, "time",
	    (json_int_t)now_unix());
	s->meta = mj ? json_dumps(mj, JSON_COMPACT) : NULL;
	json_decref(mj);
	if (hl < 0 || s->meta == NULL)
		return -1;
	s->len = (size_t)hl;
	s->state = S_META;
	return 0;
}

/* The sealed size of in_size bytes after a header of hl bytes and meta. */
static uint64_t
seal_size(size_t hl, const char *meta, uint64_t in_size)
{
	return hl + 4 + strlen(meta) + NTM_XDATA_ABYTES +
	    (in_size / NTM_XDATA_CHUNK + 1) * (4 + NTM_XDATA_ABYTES) + in_size;
}

/* The sealed size of a regular input (header and meta made already). */
static uint64_t
seal_predict(const struct sealer *s)
{
	return seal_size(s->len, s->meta, s->in_size);
}

/* The next message into out: 0, or -1 (why or errno says why). */
static int
seal_next(struct sealer *s)
{
	ssize_t r;
	long m;

	if (s->state == S_META) {
		m = ntm_xseal_push(&s->xs, s->out, sizeof(s->out), s->meta, strlen(s->meta), 0);
		s->state = S_PIECES;
	} else {
		if ((r = read_full(s->in, piece, sizeof(piece))) < 0) {
			s->why = strerror(errno);
			errno = 0;
			return -1;
		}
		s->in_done += (uint64_t)r;
		if (s->in_known && (s->in_done > s->in_size ||
		    ((size_t)r < sizeof(piece) && s->in_done != s->in_size))) {
			s->why = "it changed while it was read";
			errno = 0;
			return -1;
		}
		m = ntm_xseal_push(&s->xs, s->out, sizeof(s->out), piece, (size_t)r,
		    (size_t)r < sizeof(piece));
		if ((size_t)r < sizeof(piece))
			s->state = S_END;
	}
	if (m < 0) {
		s->why = "cannot seal it";
		errno = 0;
		return -1;
	}
	s->pos = 0;
	s->len = (size_t)m;
	return 0;
}

/* Up to cap sealed bytes into buf (less only at the end), or -1. */
static ssize_t
seal_read(void *arg, uint8_t *buf, size_t cap)
{
	struct sealer *s = arg;
	uint8_t h[NTM_HASH_LEN];
	size_t got = 0, take;

	while (got < cap) {
		if (s->pos == s->len) {
			if (s->state == S_END)
				break;
			if (seal_next(s) < 0)
				return -1;
			continue;
		}
		take = s->len - s->pos < cap - got ? s->len - s->pos : cap - got;
		memcpy(buf + got, s->out + s->pos, take);
		ntm_sha256_update(&s->h, s->out + s->pos, take);
		s->pos += take;
		got += take;
	}
	s->size += got;
	if (s->state == S_END && s->pos == s->len && s->sha[0] == '\0' &&
	    (ntm_sha256_final(&s->h, h) < 0 ||
	    ntm_hex_encode(s->sha, sizeof(s->sha), h, sizeof(h)) < 0)) {
		s->why = "cannot hash it";
		errno = 0;
		return -1;
	}
	if (s->rec && s->sha[0] && !s->sha_told) {
		srec_note_sha(s->rec, s->sha);
		s->sha_told = 1;
	}
	return (ssize_t)got;
}

/* Only forward: the bytes in between are made again and dropped. */
static int
seal_seek(void *arg, uint64_t at)
{
	struct sealer *s = arg;
	uint8_t buf[4096];
	size_t n;

	if (at < s->size)
		return -1;
	while (s->size < at) {
		n = at - s->size < sizeof(buf) ? (size_t)(at - s->size) : sizeof(buf);
		if (seal_read(s, buf, n) != (ssize_t)n)
			return -1;
	}
	ntm_wipe(buf, sizeof(buf));
	return 0;
}

static const char *
seal_sha(void *arg)
{
	return ((struct sealer *)arg)->sha;
}

static void
seal_end(struct sealer *s)
{
	ntm_sha256_free(&s->h);
	ntm_xseal_wipe(&s->xs);
	ntm_wipe(piece, sizeof(piece));
	ntm_wipe(s->out, sizeof(s->out));
	free(s->meta);
	s->meta = NULL;
}

/* Seals all of the input into fd: 0, or -1. */
static int
seal_to(struct sealer *s, int fd)
{
	static uint8_t buf[65536];
	ssize_t n, w;
	size_t off;

	do {
		if ((n = seal_read(s, buf, sizeof(buf))) < 0)
			return -1;
		for (off = 0; off < (size_t)n; off += (size_t)w)
			if ((w = write(fd, buf + off, (size_t)n - off)) < 0) {
				if (errno == EINTR) {
					w = 0;
					continue;
				}
				return -1;
			}
	} while ((size_t)n == sizeof(buf));
	ntm_wipe(buf, sizeof(buf));
	return 0;
}

/* The sealed copy: an unlinked 0600 file in the state dir. */
static int
stage_file(const struct cli *cli)
{
	char *path = cli_state_path(cli, "send-XXXXXX");
	int fd = mkstemp(path);

	if (fd >= 0)
		unlink(path);
	free(path);
	return fd;
}

/* ---- going on with the upload an earlier send left --------------------------
 *
 * A send of a regular file that dies part way (killed, or the CS away for
 * longer than its tries) leaves its upload at the CS, counted against the
 * account's quota and its unfinished uploads. So that sending the same file
 * to the same peers again goes on with that upload rather than start
 * another, the send keeps a record in STATE_DIR/send/NAME.json (0600; NAME
 * the hash of our name, the file's path and the peers), locked while it
 * runs: the upload's id, what was sent where (the CS, the file's device,
 * inode, size and mtime, the key ids, the options) and what makes the same
 * sealed bytes again (the header, the sealer's state right after it and
 * the metadata: no more than the shared keys in STATE_DIR/keys give). The
 * record goes once the object is stored or the CS has no such upload left;
 * a record older than SREC_KEEP_S is removed by the next send.
 */
#define SREC_DIR	"send"
#define SREC_KEEP_S	86400
#define SREC_MAX	65536	/* bytes of a record */
#define SREC_ID_LEN	32	/* an upload id: hex digits */

struct srec {
	int		 fd;		/* the record, locked; -1: none this time */
	char		*path;
	struct xctx	*x;
	json_t		*what;		/* what goes where (new) */
	json_t		*seal;		/* {"header","state","meta","sealed"} (new) */
	json_t		*old;		/* the record found (new), or NULL */
	char		 upload[SREC_ID_LEN + 1];	/* once there is one */
	char		 sha[65];	/* once known */
	int		 written;
};

static void
json_wipe_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		ntm_wipe((char *)json_string_value(v), json_string_length(v));
}

static void
srec_free(struct srec *r)
{
	if (r->seal)
		json_wipe_str(r->seal, "state");
	if (r->old)
		json_wipe_str(json_object_get(r->old, "seal"), "state");
	json_decref(r->what);
	json_decref(r->seal);
	json_decref(r->old);
	if (r->fd >= 0)
		close(r->fd);
	free(r->path);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

/* Rewrites the record in place (it stays locked): what, seal, the upload
 * and the hash once known. A failure only costs the next send its resume. */
static void
srec_write(struct srec *r)
{
	json_t *j;
	char *text;
	size_t n;

	if (r->fd < 0 || r->upload[0] == '\0')
		return;
	j = json_pack("{s:i, s:O, s:s, s:O}", "version", 1, "what", r->what, "upload",
	    r->upload, "seal", r->seal);
	if (j && r->sha[0])
		json_object_set_new(j, "sha256", json_string(r->sha));
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (text == NULL)
		return;
	n = strlen(text);
	if (ftruncate(r->fd, 0) < 0 || pwrite(r->fd, text, n, 0) != (ssize_t)n)
		log_info("%s: cannot write: %s", r->path, strerror(errno));
	else
		r->written = 1;
	ntm_wipe(text, n);
	free(text);
}

static void
srec_created(void *arg, const char *id)
{
	struct srec *r = ((struct sealer *)arg)->rec;

	if (r == NULL)
		return;
	snprintf(r->upload, sizeof(r->upload), "%s", id);
	json_object_set_new(r->what, "cs", json_string(r->x->cs));
	srec_write(r);
}

static void
srec_note_sha(struct srec *r, const char *sha)
{
	snprintf(r->sha, sizeof(r->sha), "%s", sha);
	srec_write(r);
}

/* Records of sends long gone (not locked by a send running now). */
static void
srec_sweep(const char *dir)
{
	struct dirent *d;
	struct stat st;
	char *p;
	DIR *dp;
	int fd;

	if ((dp = opendir(dir)) == NULL)
		return;
	while ((d = readdir(dp)) != NULL) {
		if (strlen(d->d_name) != 32 + 5 || strcmp(d->d_name + 32, ".json") != 0)
			continue;
		p = xasprintf("%s/%s", dir, d->d_name);
		if (stat(p, &st) == 0 && st.st_mtime < now_unix() - SREC_KEEP_S &&
		    (fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
			if (flock(fd, LOCK_EX | LOCK_NB) == 0)
				unlink(p);
			close(fd);
		}
		free(p);
	}
	closedir(dp);
}

/* The record of this send, locked, with the one an earlier send left (if
 * any) in r->old: 0, or -1 when there is none this time (another send of
 * the same file runs, or the state dir cannot hold one). */
static int
srec_open(struct srec *r, struct xctx *x, const struct sopts *o, const struct sealer *s,
    const struct xkey *keys)
{
	char rp[PATH_MAX], hex[65], kid[2 * NTM_XKEY_ID + 1], *dir, *name, *peers;
	char *text = NULL;
	uint8_t h[NTM_HASH_LEN];
	struct stat st;
	json_t *to, *ids;
	size_t len = 0;
	int i;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->x = x;
	/* A file named on the command line (standard input may be one too,
	 * but nothing says it is the same one next time). */
	if (o->file == NULL || strcmp(o->file, "-") == 0 || realpath(o->file, rp) == NULL ||
	    fstat(s->in, &st) < 0)
		return -1;
	to = json_array();
	ids = json_array();
	for (i = 0; i < o->npeers; i++) {
		json_array_append_new(to, json_string(o->peers[i]));
		(void)ntm_hex_encode(kid, sizeof(kid), keys[i].key_id, NTM_XKEY_ID);
		json_array_append_new(ids, json_string(kid));
	}
	r->what = json_pack("{s:s, s:s, s:o, s:o, s:{s:s, s:I, s:I, s:I, s:I, s:I}, "
	    "s:s, s:s, s:s, s:s, s:I}", "from", x->s.fqdn, "cs", x->cs, "to", to,
	    "keys", ids, "file", "path", rp, "dev", (json_int_t)st.st_dev, "ino",
	    (json_int_t)st.st_ino, "size", (json_int_t)st.st_size, "mtime",
	    (json_int_t)st.st_mtim.tv_sec, "mtime_ns", (json_int_t)st.st_mtim.tv_nsec,
	    "app", o->app, "service", o->service, "item", o->item, "notify", o->notify,
	    "ttl", (json_int_t)o->ttl);
	if (r->what == NULL)
		return -1;
	/* Named by whom, which file, for whom: the rest is compared. */
	if ((peers = json_dumps(to, JSON_COMPACT)) == NULL)
		return -1;
	name = xasprintf("%s\n%s\n%s", x->s.fqdn, rp, peers);
	ntm_hash(h, name, strlen(name));
	free(name);
	free(peers);
	(void)ntm_hex_encode(hex, sizeof(hex), h, 16);
	dir = cli_state_path(x->cli, SREC_DIR);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		free(dir);
		return -1;
	}
	srec_sweep(dir);
	r->path = xasprintf("%s/%s.json", dir, hex);
	free(dir);
	if ((r->fd = open(r->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return -1;
	if (flock(r->fd, LOCK_EX | LOCK_NB) < 0) {
		log_info("%s: another send of this file runs; not going on with its upload",
		    r->path);
		close(r->fd);
		r->fd = -1;
		return -1;
	}
	if (ntm_file_read(r->path, SREC_MAX, &text, &len) == 0 && len > 0) {
		r->old = json_loadb(text, len, 0, NULL);
		if (r->old && json_integer_value(json_object_get(r->old, "version")) != 1) {
			json_decref(r->old);
			r->old = NULL;
		}
	}
	if (text) {
		ntm_wipe(text, len);
		free(text);
	}
	return 0;
}

/* The sealer's state right after its header, to make the same bytes again. */
static json_t *
seal_save(const struct sealer *s, uint64_t sealed)
{
	char *hdr = malloc(2 * s->len + 1), *st = malloc(2 * sizeof(s->xs) + 1);
	json_t *j = NULL;

	if (hdr && st && ntm_hex_encode(hdr, 2 * s->len + 1, s->out, s->len) >= 0 &&
	    ntm_hex_encode(st, 2 * sizeof(s->xs) + 1, &s->xs, sizeof(s->xs)) >= 0)
		j = json_pack("{s:s, s:s, s:s, s:I}", "header", hdr, "state", st, "meta",
		    s->meta, "sealed", (json_int_t)sealed);
	if (st)
		ntm_wipe(st, 2 * sizeof(s->xs) + 1);
	free(hdr);
	free(st);
	return j;
}

/* Puts the sealer back where seal_save found it: 0, or -1 (left as it was). */
static int
seal_restore(struct sealer *s, json_t *j, uint64_t sealed)
{
	const char *hdr = json_string_value(json_object_get(j, "header"));
	const char *st = json_string_value(json_object_get(j, "state"));
	const char *meta = json_string_value(json_object_get(j, "meta"));
	struct ntm_xseal xs;
	uint8_t out[NTM_XDATA_HDR_MAX];
	size_t hl;
	char *m;

	if (hdr == NULL || st == NULL || meta == NULL || strlen(hdr) % 2 ||
	    (hl = strlen(hdr) / 2) < 5 || hl > sizeof(out) ||
	    (uint64_t)json_integer_value(json_object_get(j, "sealed")) != sealed ||
	    ntm_hex_decode_exact(out, hl, hdr) < 0 ||
	    ntm_hex_decode_exact(&xs, sizeof(xs), st) < 0)
		return -1;
	/* The same size follows from the same header and metadata. */
	if (seal_size(hl, meta, s->in_size) != sealed || (m = strdup(meta)) == NULL) {
		ntm_wipe(&xs, sizeof(xs));
		return -1;
	}
	memcpy(s->out, out, hl);
	s->len = hl;
	s->pos = 0;
	s->xs = xs;
	ntm_wipe(&xs, sizeof(xs));
	free(s->meta);
	s->meta = m;
	s->state = S_META;
	return 0;
}

enum { SREC_NEW, SREC_GO_ON, SREC_STORED };

/*
 * What to do with the record an earlier send left: SREC_GO_ON (src->upload
 * and src->at set, the sealer put back), SREC_STORED (that send's object
 * is stored already: *meta, new), or SREC_NEW (a new upload; the sealer
 * put back when the bytes can be the same, an upload of other bytes given
 * up).
 */
static int
srec_decide(struct srec *r, struct sealer *s, uint64_t sealed, struct x_src *src,
    json_t **meta)
{
	json_t *old = r->old, *seal = json_object_get(old, "seal");
	const char *id = json_string_value(json_object_get(old, "upload"));
	const char *sha = json_string_value(json_object_get(old, "sha256"));
	uint64_t size, at;
	int e;

	if (old == NULL || id == NULL || strlen(id) != SREC_ID_LEN)
		return SREC_NEW;
	if (!json_equal(json_object_get(old, "what"), r->what) ||
	    seal_restore(s, seal, sealed) < 0) {
		/* Another file, other keys or options: that upload is no use. */
		const char *cs = json_string_value(json_object_get(json_object_get(old,
		    "what"), "cs"));

		if (cs && strcmp(cs, r->x->cs) == 0)
			x_cs_upload_drop(r->x, id);
		return SREC_NEW;
	}
	json_decref(r->seal);
	r->seal = json_incref(seal);
	if ((e = x_cs_upload_state(r->x, id, &size, &at)) == 0 && size == sealed) {
		snprintf(r->upload, sizeof(r->upload), "%s", id);
		if (sha)
			snprintf(r->sha, sizeof(r->sha), "%s", sha);
		src->upload = r->upload;
		src->at = at;
		log_info("upload %s: an earlier send of this file left it at %llu of %llu bytes",
		    id, (unsigned long long)at, (unsigned long long)size);
		return SREC_GO_ON;
	}
	if (e == 0)
		x_cs_upload_drop(r->x, id);
	else if (e == NTM_ERR_NOTFOUND && sha && x_cs_object_meta(r->x, sha, meta) == 0) {
		log_info("object %s: an earlier send of this file stored it", sha);
		snprintf(r->sha, sizeof(r->sha), "%s", sha);
		return SREC_STORED;
	}
	return SREC_NEW;
}

/* After the send: the record goes once the upload is an object or gone. */
static void
srec_close(struct srec *r, int stored)
{
	uint64_t size, at;

	if (r->fd >= 0 && (stored || (!r->written && r->old == NULL) ||
	    (r->upload[0] && x_cs_upload_state(r->x, r->upload, &size, &at) ==
	    NTM_ERR_NOTFOUND)))
		unlink(r->path);
	srec_free(r);
}

/* Each key remembers the object sealed with it until it is seen delivered
 * or expires: a rotation keeps the key as long as that (xcli.h). */
static void
note_sent(const struct cli *cli, const struct xkey *used, int n, const char *sha,
    int64_t expires)
{
	struct xkey k;
	int i;

	for (i = 0; i < n; i++) {
		if (xkey_load(cli, used[i].peer, &k) != 0)
			continue;
		xkey_note_sent(&k, used[i].key_id, sha, expires);
		if (xkey_save(cli, &k) < 0)
			log_info("cannot save the key with %s", k.peer);
		ntm_wipe(&k, sizeof(k));
	}
}

/* --status: a destination that has the object needs no key kept for it. */
static void
note_delivered(const struct cli *cli, const char *sha, json_t *to)
{
	struct ntm_m_cs_dest m;
	struct xkey k;
	json_t *d;
	size_t i;

	json_array_foreach(to, i, d) {
		if (ntm_msg_cs_dest_decode(d, &m, NULL) < 0 ||
		    (strcmp(m.status, "delivered") != 0 && strcmp(m.status, "failed") != 0) ||
		    !ntm_valid_dnsname(m.fqdn) || xkey_load(cli, m.fqdn, &k) != 0)
			continue;
		if (xkey_note_delivered(&k, sha) && xkey_save(cli, &k) < 0)
			log_info("cannot save the key with %s", k.peer);
		ntm_wipe(&k, sizeof(k));
	}
}

static void
print_sent(const struct sopts *o, const struct ntm_m_cs_object *co, json_t *ann)
{
	struct ntm_m_cs_dest m;
	json_t *d;
	size_t i;

	if (o->json) {
		cli_print_json(json_pack("{s:s, s:I, s:I, s:O}", "id", co->sha256,
		    "size", (json_int_t)co->size, "expires", (json_int_t)co->expires,
		    "to", json_object_get(ann, "to")));
		return;
	}
	printf("sent %s (%lld bytes sealed)\n", co->sha256, (long long)co->size);
	json_array_foreach(json_object_get(ann, "to"), i, d)
		if (ntm_msg_cs_dest_decode(d, &m, NULL) == 0)
			printf("  %s: %s\n", m.fqdn, m.status);
}

/* The object an earlier send stored (its metadata meta, borrowed into co):
 * 0, or EXIT_FAIL after a line on stderr. */
static int
stored_already(struct xctx *x, json_t *meta, uint64_t sealed, struct sealer *s,
    struct ntm_m_cs_object *co)
{
	struct ntm_m_cs_meta m;
	struct ntm_jerr jerr;

	if (ntm_msg_cs_meta_decode(meta, &m, &jerr) < 0 || (uint64_t)m.size != sealed) {
		cli_err("send", "bad answer from %s: %s", x->cs, m.size != (int64_t)sealed ?
		    "the object stored has another size" : jerr.message);
		return EXIT_FAIL;
	}
	*co = (struct ntm_m_cs_object){ .sha256 = m.sha256, .size = m.size,
	    .created = m.created, .expires = m.expires };
	snprintf(s->sha, sizeof(s->sha), "%s", m.sha256);
	return 0;
}

static int
do_send(struct cli *cli, const struct sopts *o)
{
	struct xkey keys[NTM_XDATA_DEST_MAX];
	struct sealer s;
	struct xctx x;
	struct ntm_m_cs_upload create = { 0 };
	struct ntm_m_cs_object co = { 0 };
	struct srec rec;
	json_t *commit = NULL, *ann = NULL, *meta = NULL, *to;
	const char *name;
	uint64_t sealed_size;
	int i, j, e, ret, in = -1, staged = -1, stored = 0;

	memset(&s, 0, sizeof(s));
	memset(&rec, 0, sizeof(rec));
	rec.fd = -1;
	memset(keys, 0, sizeof(keys));
	if ((ret = xctx_open(&x, cli, "send", o->timeout)) != 0)
		return ret;
	x.progress = o->progress;
	ret = EXIT_USAGE;
	for (i = 0; i < o->npeers; i++) {
		if (!x_valid_peer(&x, o->peers[i], "PEER"))
			goto out;
		for (j = 0; j < i; j++)
			if (strcmp(o->peers[i], o->peers[j]) == 0) {
				cli_err("send", "PEER '%s': given twice", o->peers[i]);
				goto out;
			}
	}
	for (i = 0; i < o->npeers; i++) {
		if ((e = xkey_load(cli, o->peers[i], &keys[i])) == NTM_ERR_NOTFOUND) {
			cli_err("send", "no shared key with %s (run 'ntm keys exchange %s')",
			    o->peers[i], o->peers[i]);
			ret = EXIT_NOKEY;
			goto out;
		}
		if (e < 0) {
			cli_err("send", "the key with %s: %s", o->peers[i], ntm_strerror(e));
			ret = EXIT_FAIL;
			goto out;
		}
	}
	ret = EXIT_FAIL;
	if (o->file == NULL || strcmp(o->file, "-") == 0) {
		in = STDIN_FILENO;
		name = "";
	} else if ((in = open(o->file, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_err("send", "FILE '%s': %s", o->file, strerror(errno));
		ret = EXIT_USAGE;
		goto out;
	} else
		name = strrchr(o->file, '/') ? strrchr(o->file, '/') + 1 : o->file;
	if (seal_begin(&x, &s, in, keys, o->npeers, name) < 0) {
		cli_err("send", "cannot seal the input: %s", s.why ? s.why : strerror(errno));
		goto out;
	}
	sealed_size = s.in_known ? seal_predict(&s) : 0;
	/* A file of known size is sealed as it goes up; anything else is
	 * staged first (the CS wants the size before the bytes). */
	if (!s.in_known) {
		if (cli_state_prepare(cli, "send") < 0 || (staged = stage_file(cli)) < 0) {
			cli_err("send", "cannot stage the sealed copy in %s", cli->state_dir);
			goto out;
		}
		if (seal_to(&s, staged) < 0) {
			cli_err("send", "cannot seal the input: %s", s.why ? s.why :
			    strerror(errno));
			goto out;
		}
	}
	if ((ret = x_our_cs(&x)) != 0)
		goto out;
	to = json_array();
	for (i = 0; i < o->npeers; i++)
		json_array_append_new(to, json_string(o->peers[i]));
	/* ttl is the message's one optional integer: written when given. */
	create = (struct ntm_m_cs_upload){ .has = o->ttl ? ~UINT32_C(0) : 0, .version = 1,
	    .from = x.s.fqdn, .to = to, .ttl = o->ttl, .kind = "data", .app = o->app,
	    .service = o->service, .item = o->item, .notify = o->notify };
	if (s.in_known) {
		struct x_src src = { .read = seal_read, .seek = seal_seek, .sha256 = seal_sha,
		    .arg = &s, .created = srec_created };
		int how = SREC_NEW;

		/* An upload an earlier send of this file left is gone on with. */
		if (srec_open(&rec, &x, o, &s, keys) == 0) {
			s.rec = &rec;
			rec.seal = seal_save(&s, sealed_size);
			how = srec_decide(&rec, &s, sealed_size, &src, &meta);
		}
		if (how == SREC_STORED)
			ret = stored_already(&x, meta, sealed_size, &s, &co);
		else {
			ret = x_cs_upload_src(&x, &src, sealed_size, &create, &commit, &co);
			if (ret != 0 && s.why)
				cli_err("send", "FILE '%s': %s", o->file, s.why);
		}
	} else
		ret = x_cs_upload(&x, staged, s.size, s.sha, &create, &commit, &co);
	if (ret != 0) {
		json_decref(to);
		goto out;
	}
	json_decref(to);
	stored = 1;
	note_sent(cli, keys, o->npeers, s.sha, co.expires);
	ret = x_announced(&x, x.cs, s.sha, &ann);
	if (ann)
		print_sent(o, &co, ann);
out:
	/* Kept until here: a send killed while it waits for the announcement
	 * and sent again finds the object stored, and stores no other. */
	srec_close(&rec, stored);
	for (i = 0; i < NTM_XDATA_DEST_MAX; i++)
		ntm_wipe(&keys[i], sizeof(keys[i]));
	seal_end(&s);
	if (in > STDIN_FILENO)
		close(in);
	if (staged >= 0)
		close(staged);
	json_decref(commit);
	json_decref(ann);
	json_decref(meta);
	xctx_close(&x);
	return ret;
}

static int
do_status(struct cli *cli, const struct sopts *o)
{
	struct xctx x;
	char path[128];
	struct ntm_m_cs_meta meta;
	struct ntm_m_cs_dest m;
	struct ntm_m_cs_dest_error me;
	struct ntm_jerr jerr;
	json_t *r = NULL, *d;
	size_t i;
	int ret;

	if ((ret = xctx_open(&x, cli, "send", o->timeout)) != 0)
		return ret;
	if ((ret = x_our_cs(&x)) != 0)
		goto out;
	snprintf(path, sizeof(path), "/v1/cs/object/meta?sha256=%s", o->status);
	x.cs_probe = 1;
	ret = x_call(&x, x.cs, "GET", path, NULL, 200, &r);
	x.cs_probe = 0;
	if (ret == EXIT_UNREACH && x.cs_cached) {
		/* The CS remembered is gone: ask our DC which it is now. */
		x_forget_cs(&x);
		if ((ret = x_our_cs(&x)) == 0)
			ret = x_call(&x, x.cs, "GET", path, NULL, 200, &r);
	}
	if (ret != 0)
		goto out;
	if (ntm_msg_cs_meta_decode(r, &meta, &jerr) < 0) {
		cli_err("send", "bad answer from %s: %s", x.cs, jerr.message);
		ret = EXIT_FAIL;
		goto out;
	}
	note_delivered(cli, o->status, meta.to);
	if (o->json) {
		cli_print_json(r);
		r = NULL;
		goto out;
	}
	printf("%s (%lld bytes) from %s\n", o->status, (long long)meta.size, meta.from);
	json_array_foreach(meta.to, i, d) {
		char when[32] = "";
		time_t tt;
		struct tm tm;
		int have = 1;

		if (ntm_msg_cs_dest_decode(d, &m, NULL) < 0)
			continue;
		if (ntm_jmsg_has(&ntm_msg_cs_dest, &m, "delivered"))
			tt = (time_t)m.delivered;
		else if (ntm_jmsg_has(&ntm_msg_cs_dest, &m, "announced"))
			tt = (time_t)m.announced;
		else
			have = 0;
		if (have && gmtime_r(&tt, &tm))
			strftime(when, sizeof(when), " at %Y-%m-%d %H:%M:%S UTC", &tm);
		printf("  %s: %s%s", m.fqdn, m.status, when);
		if (m.error && ntm_msg_cs_dest_error_decode(m.error, &me, NULL) == 0)
			printf(" (%s: %s)", me.code, me.message);
		putchar('\n');
	}
out:
	json_decref(r);
	xctx_close(&x);
	return ret;
}

/* 1 when STATE_DIR/keys holds a key with name. */
static int
is_keyed_peer(const struct cli *cli, const char *name)
{
	struct xkey k;
	int e;

	if (!ntm_valid_dnsname(name) || strchr(name, '.') == NULL)
		return 0;
	e = xkey_load(cli, name, &k);
	ntm_wipe(&k, sizeof(k));
	return e != NTM_ERR_NOTFOUND;
}

/* A name of three labels or more with no '/' may be meant as a peer. */
static int
looks_like_peer(const char *name)
{
	const char *dot = strchr(name, '.');

	return ntm_valid_dnsname(name) && dot && strchr(dot + 1, '.');
}

static int
valid_sha(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == 64;
}

static int
send_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	struct sopts o = *(const struct sopts *)c->args;
	struct stat st;
	int i, npeers;

	if (o.status) {
		if (c->npos > 0) {
			cli_err("send", "--status takes no PEER or FILE ('%s')", c->pos[0]);
			return EXIT_USAGE;
		}
		return do_status(cli, &o);
	}
	/* The last of two or more operands is FILE unless it is a peer we
	 * share a key with and no such file exists: "missing.txt" is a file
	 * that is not there, not a peer without a key. */
	npeers = c->npos;
	if (npeers >= 2 && (strcmp(c->pos[npeers - 1], "-") == 0 ||
	    stat(c->pos[npeers - 1], &st) == 0 || !is_keyed_peer(cli, c->pos[npeers - 1])))
		o.file = c->pos[--npeers];
	if (o.file && strcmp(o.file, "-") != 0 && stat(o.file, &st) != 0 && errno == ENOENT) {
		if (looks_like_peer(o.file))
			cli_err("send", "%s: no such file (nor a peer with a shared key: "
			    "run 'ntm keys exchange %s' first to send to it)", o.file, o.file);
		else
			cli_err("send", "%s: no such file", o.file);
		return EXIT_USAGE;
	}
	if (npeers < 1) {
		cli_err("send", "missing PEER");
		return EXIT_USAGE;
	}
	if (npeers > NTM_XDATA_DEST_MAX) {
		cli_err("send", "PEER '%s': more than %d peers", c->pos[NTM_XDATA_DEST_MAX],
		    NTM_XDATA_DEST_MAX);
		return EXIT_USAGE;
	}
	for (i = 0; i < npeers; i++)
		o.peers[i] = c->pos[i];
	o.npeers = npeers;
	return do_send(cli, &o);
}

const struct cmd_entry send_entry = {
	.name = "send",
	.summary = "send a file end to end encrypted through the cache server",
	.usage = "PEER... [FILE|-]",
	.opts = send_opts,
	.max = CMD_ANY,
	.operands = CMD_OPERAND_PEERS | CMD_OPERAND_FILE,
	.args_size = sizeof(struct sopts),
	.init = send_init,
	.exec = send_exec,
};
