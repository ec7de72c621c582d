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
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
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
};

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

/* The sealed size of a regular input (header and meta made already). */
static uint64_t
seal_predict(const struct sealer *s)
{
	return s->len + 4 + strlen(s->meta) + NTM_XDATA_ABYTES +
	    (s->in_size / NTM_XDATA_CHUNK + 1) * (4 + NTM_XDATA_ABYTES) + s->in_size;
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
	return (ssize_t)got;
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

static int
do_send(struct cli *cli, const struct sopts *o)
{
	struct xkey keys[NTM_XDATA_DEST_MAX];
	struct sealer s;
	struct xctx x;
	struct ntm_m_cs_upload create = { 0 };
	struct ntm_m_cs_object co = { 0 };
	json_t *commit = NULL, *ann = NULL, *to;
	const char *name;
	uint64_t sealed_size;
	int i, j, e, ret, in = -1, staged = -1;

	memset(&s, 0, sizeof(s));
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
		struct x_src src = { seal_read, NULL, seal_sha, &s };

		ret = x_cs_upload_src(&x, &src, sealed_size, &create, &commit, &co);
		if (ret != 0 && s.why)
			cli_err("send", "FILE '%s': %s", o->file, s.why);
	} else
		ret = x_cs_upload(&x, staged, s.size, s.sha, &create, &commit, &co);
	if (ret != 0) {
		json_decref(to);
		goto out;
	}
	json_decref(to);
	note_sent(cli, keys, o->npeers, s.sha, co.expires);
	ret = x_announced(&x, x.cs, s.sha, &ann);
	if (ann)
		print_sent(o, &co, ann);
out:
	for (i = 0; i < NTM_XDATA_DEST_MAX; i++)
		ntm_wipe(&keys[i], sizeof(keys[i]));
	seal_end(&s);
	if (in > STDIN_FILENO)
		close(in);
	if (staged >= 0)
		close(staged);
	json_decref(commit);
	json_decref(ann);
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
