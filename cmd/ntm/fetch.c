/*
 * fetch.c - ntm fetch: list what waits for us at our DC (the cache list,
 * GET /v1/exchange/cache, a long-poll with --wait), then for each entry:
 *
 *   key  - take the temporal key from our DC (checked against the hash of
 *          the temporal key list) and open it with this device's exchange
 *          key, take the sealed shared key from the sender's CS, unwrap it
 *          and store it (docs/protocol.md §8.1);
 *   data - stream the object from the sender's CS, checking its SHA-256 and
 *          decrypting into a temporary file next to the destination, which
 *          is renamed into place only when the whole object verified
 *          (§8.2): a tampered object writes nothing.
 *
 * Each one is then confirmed at the CS and removed from the cache list.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "common.h"
#include "xcli.h"
#include "xpipe.h"

struct fopts {
	const char	*from, *out;
	long		 timeout, discard;	/* discard: an entry id, or 0 */
	int		 wait, json, to_stdout, progress;
};

static const struct cmd_opt fetch_opts[] = {
	{ .name = "from", .arg = "PEER", .help = "only what PEER sent", .type = CMD_PEER,
	  .off = offsetof(struct fopts, from) },
	{ .name = "wait", .help = "wait until something arrives (a long-poll at the DC), "
	  "at most --timeout seconds (default 60)", .type = CMD_FLAG,
	  .off = offsetof(struct fopts, wait) },
	{ .name = "output", .shortopt = 'o', .arg = "DIR|-", .help = "write files into DIR "
	  "(default: the current directory), or to standard output with -", .type = CMD_FILE,
	  .off = offsetof(struct fopts, out) },
	{ .name = "discard", .arg = "ID", .help = "drop cache entry ID (one that failed "
	  "verification) without fetching it, and exit", .type = CMD_INT,
	  .off = offsetof(struct fopts, discard), .min = 1, .max = INT64_MAX / 2,
	  .expect = "expected a cache entry ID (a positive number)" },
	CLI_OPT_TIMEOUT(struct fopts, "give up on a server call after SEC seconds, or "
	  "a transfer stalled that long (1..300, default 10)"),
	X_OPT_PROGRESS(struct fopts),
	CLI_OPT_JSON(struct fopts, "print the result as one JSON object"),
	CLI_OPT_HELP,
	CLI_OPT_END
};

static void
fetch_init(void *args)
{
	((struct fopts *)args)->out = ".";
}

/* Fields of one cache entry (borrowed from its JSON). */
struct entry {
	int64_t		 id, size;
	const char	*kind, *from, *cs, *sha256, *item, *notify;
};

/* The entries of the DC's answer r (borrowed), or NULL if it is not one. */
static json_t *
entries_of(json_t *r)
{
	struct ntm_m_entries m;

	return ntm_msg_entries_decode(r, &m, NULL) == 0 ? m.entries : NULL;
}

static int
entry_parse(json_t *j, struct entry *e)
{
	struct ntm_m_entry m;

	memset(e, 0, sizeof(*e));
	if (ntm_msg_entry_decode(j, &m, NULL) < 0)
		return -1;
	e->id = m.id;
	e->size = m.size;
	e->kind = m.kind;
	e->from = m.from;
	e->cs = m.cs;
	e->sha256 = m.sha256;
	e->item = m.item;
	e->notify = m.notify;
	if (e->id < 1 || !e->kind || !e->from || !e->cs || !e->sha256 || !e->item ||
	    !ntm_valid_push_url(e->cs) || strlen(e->sha256) != 64 || !ntm_valid_dnsname(e->from))
		return -1;
	return 0;
}

/* Confirms at the CS, then drops the entry from our cache list. */
static int
finish(struct xctx *x, const struct entry *e)
{
	struct ntm_m_cs_confirm m = { .version = 1, .sha256 = e->sha256,
	    .fqdn = x->s.fqdn };
	char path[64];
	json_t *body;
	int ret;

	if ((body = x_msg(x, &ntm_msg_cs_confirm, &m)) == NULL)
		return EXIT_FAIL;
	ret = x_call(x, e->cs, "POST", "/v1/cs/object/confirm", body, 200, NULL);

	json_decref(body);
	if (ret != 0)
		return ret;
	snprintf(path, sizeof(path), "/v1/exchange/cache?id=%lld", (long long)e->id);
	return x_call(x, x->s.dc_url, "DELETE", path, NULL, 200, NULL);
}

/* ---- key entries ---------------------------------------------------------- */

struct membuf {
	uint8_t		 data[NTM_XKEY_OBJ_LEN];
	size_t		 len;
	int		 over;
};

static int
mem_sink(const uint8_t *p, size_t n, void *arg)
{
	struct membuf *m = arg;

	if (m->len + n > sizeof(m->data)) {
		m->over = 1;
		return -1;
	}
	memcpy(m->data + m->len, p, n);
	m->len += n;
	return 0;
}

/* The listed SHA-256 of temporal key kid, or -1 (into hex). */
static int
listed_hash(struct xctx *x, const char *kid, char hex[65])
{
	struct ntm_m_tkey_list l;
	struct ntm_m_tkey_listed m;
	json_t *r, *k;
	size_t i;
	int ret = -1;

	if (x_call(x, x->s.dc_url, "GET", "/v1/exchange/temporal", NULL, 200, &r) != 0)
		return -1;
	if (ntm_msg_tkey_list_decode(r, &l, NULL) < 0)
		l.keys = NULL;
	json_array_foreach(l.keys, i, k) {
		if (ntm_msg_tkey_listed_decode(k, &m, NULL) == 0 && strcmp(m.key_id, kid) == 0) {
			memcpy(hex, m.sha256, 65);
			ret = 0;
		}
	}
	json_decref(r);
	return ret;
}

static int
get_key(struct xctx *x, const struct entry *e, struct xkey *k)
{
	uint8_t tkey[NTM_KEY_LEN], sealed[NTM_XTKEY_SEALED_LEN], h[NTM_HASH_LEN];
	uint8_t xsk[NTM_XSK_LEN];
	char path[96], listed[65], got[65];
	struct membuf m = { .len = 0 };
	struct ntm_m_tkey tk;
	json_t *r = NULL;
	int ret, e2;

	memset(k, 0, sizeof(*k));
	memset(tkey, 0, sizeof(tkey));
	snprintf(k->peer, sizeof(k->peer), "%s", e->from);
	if (ntm_hex_decode_exact(k->key_id, NTM_XKEY_ID, e->item) != NTM_XKEY_ID) {
		cli_err(x->cmd, "key entry %lld from %s: item '%.40s' is not a key id",
		    (long long)e->id, e->from, e->item);
		return EXIT_VERIFY;
	}
	if (listed_hash(x, e->item, listed) < 0) {
		cli_err(x->cmd, "key from %s: temporal key %s is not in the list at %s", e->from,
		    e->item, x->s.dc_url);
		return EXIT_VERIFY;
	}
	snprintf(path, sizeof(path), "/v1/exchange/temporal/key?id=%s", e->item);
	if ((ret = x_call(x, x->s.dc_url, "GET", path, NULL, 200, &r)) != 0)
		return ret;
	ret = EXIT_VERIFY;
	if (ntm_msg_tkey_decode(r, &tk, NULL) < 0 ||
	    ntm_b64_decode_exact(sealed, sizeof(sealed), tk.temporal_key) != NTM_XTKEY_SEALED_LEN) {
		cli_err(x->cmd, "key from %s: malformed temporal key", e->from);
		goto out;
	}
	ntm_hash(h, sealed, sizeof(sealed));
	if (ntm_hex_encode(got, sizeof(got), h, sizeof(h)) < 0 || strcmp(got, listed) != 0) {
		cli_err(x->cmd, "key from %s: the temporal key does not match its listed hash",
		    e->from);
		goto out;
	}
	/* Only this device opens it: it was sealed to our exchange key. */
	if ((e2 = x_exchange_keypair(x->cli, k->sealed_to, xsk, 0)) < 0) {
		cli_err(x->cmd, "key from %s: cannot read our exchange key (%s/%s): %s",
		    e->from, x->cli->state_dir, X_EXCHANGE_KEY_FILE, ntm_strerror(e2));
		goto out;
	}
	e2 = ntm_xtkey_open(tkey, sealed, sizeof(sealed), k->sealed_to, xsk);
	ntm_wipe(xsk, sizeof(xsk));
	if (e2 < 0) {
		cli_err(x->cmd, "key from %s: the temporal key was not sealed to this "
		    "device's exchange key (an older login, or tampered)", e->from);
		goto out;
	}
	if ((ret = x_cs_download(x, e->cs, e->sha256, 0, mem_sink, &m)) != 0) {
		if (m.over)
			cli_err(x->cmd, "key from %s: object %s is not a key object", e->from,
			    e->sha256);
		goto out;
	}
	ntm_hash(h, m.data, m.len);
	ret = EXIT_VERIFY;
	if (ntm_hex_encode(got, sizeof(got), h, sizeof(h)) < 0 || strcmp(got, e->sha256) != 0)
		cli_err(x->cmd, "key from %s: object %s does not match its hash", e->from,
		    e->sha256);
	else if (ntm_xkey_unwrap(k->key, m.data, m.len, tkey, k->key_id, e->from,
	    x->s.fqdn) < 0)
		cli_err(x->cmd, "key from %s: the shared key does not unwrap (tampered, or "
		    "not for us)", e->from);
	else
		ret = 0;
out:
	if (r) {
		json_t *v = json_object_get(r, "temporal_key");

		if (json_is_string(v))
			ntm_wipe((char *)json_string_value(v), json_string_length(v));
		json_decref(r);
	}
	ntm_wipe(tkey, sizeof(tkey));
	return ret;
}

static int
take_key(struct xctx *x, const struct fopts *o, const struct entry *e, json_t *done)
{
	struct xkey k, prev;
	char path[96];
	int ret, err;

	memset(&prev, 0, sizeof(prev));
	if ((ret = get_key(x, e, &k)) != 0)
		goto out;
	k.created = now_unix();
	k.initiator = 0;
	/* The key it replaces still opens what the peer sealed with it before:
	 * the entries listed before this one. */
	xkey_replace(&k, xkey_load(x->cli, e->from, &prev) == 0 ? &prev : NULL, e->id);
	if (cli_state_prepare(x->cli, x->cmd) < 0 || (err = xkey_save(x->cli, &k)) < 0) {
		cli_err(x->cmd, "cannot save the key with %s", e->from);
		ret = EXIT_FAIL;
		goto out;
	}
	if ((ret = finish(x, e)) != 0)
		goto out;
	snprintf(path, sizeof(path), "/v1/exchange/temporal/key?id=%s", e->item);
	(void)x_call(x, x->s.dc_url, "DELETE", path, NULL, 200, NULL);
	{
		json_t *j = xkey_json(&k);

		json_object_set_new(j, "kind", json_string("key"));
		if (!o->json)
			fprintf(o->to_stdout ? stderr : stdout, "key from %s: fingerprint %s\n",
			    e->from, json_string_value(json_object_get(j, "fingerprint")));
		json_array_append_new(done, j);
	}
out:
	ntm_wipe(&k, sizeof(k));
	ntm_wipe(&prev, sizeof(prev));
	return ret;
}

/* ---- data entries ------------------------------------------------------------ */

enum { S_HDR5, S_HDR, S_LEN, S_MSG, S_DONE };

/* The streaming opener: ciphertext in, plaintext to fd. */
struct opener {
	const struct xkey	*key;
	struct ntm_xopen	 xo;
	struct ntm_sha256	 h;
	int			 state, fd, nmsg;
	uint8_t			 hdr[NTM_XDATA_HDR_MAX];
	uint8_t			 msg[NTM_XDATA_MSG_MAX], plain[NTM_XDATA_CHUNK];
	size_t			 need, have;
	uint64_t		 written;
	uint8_t			*obuf;	/* NULL: plaintext written as it comes */
	size_t			 olen;
	int			 odirect;
	char			 name[256];
	const char		*why;	/* set when it stops */
};

static int
write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * The plaintext of a large object goes to the disk from an aligned buffer
 * of OUT_BUF bytes with O_DIRECT (obuf set): it is fsynced before the file
 * is placed anyway, so a copy into the page cache would only wait there,
 * and on some machines filling new page-cache pages costs more than the
 * decryption. The last bytes (not a whole block), and all of them on a
 * file system that refuses O_DIRECT, go through the page cache, handed to
 * the disk each 8 MiB so that the fsync has little left to do.
 */
#define OUT_BUF		(1024 * 1024)
#define OUT_ALIGN	4096

/* n bytes of obuf (a multiple of OUT_ALIGN) with O_DIRECT: 0, or -1. */
static int
out_direct(struct opener *op, size_t n)
{
	size_t done = 0;
	ssize_t w;
	int fl = fcntl(op->fd, F_GETFL);

	if (op->odirect && (fl < 0 || fcntl(op->fd, F_SETFL, fl | O_DIRECT) < 0))
		op->odirect = 0;
	while (op->odirect && done < n) {
		if ((w = write(op->fd, op->obuf + done, n - done)) >= 0)
			done += (size_t)w;
		else if (errno == EINVAL)
			op->odirect = 0;	/* this file system will not */
		else if (errno != EINTR)
			return -1;
	}
	if (!op->odirect && fl >= 0)
		(void)fcntl(op->fd, F_SETFL, fl & ~O_DIRECT);
	/* the rest (all of it without O_DIRECT) through the page cache */
	return done < n ? write_all(op->fd, op->obuf + done, n - done) : 0;
}

static int
out_put(struct opener *op, const uint8_t *p, size_t n)
{
	size_t take;

	if (op->obuf == NULL || !op->odirect) {
		if (op->obuf && op->olen > 0) {
			/* what was gathered before O_DIRECT was refused */
			if (write_all(op->fd, op->obuf, op->olen) < 0)
				return -1;
			op->olen = 0;
		}
		if (write_all(op->fd, p, n) < 0)
			return -1;
		if ((op->written + (uint64_t)n) >> 23 != op->written >> 23)
			(void)sync_file_range(op->fd, (off_t)(op->written >> 23 << 23),
			    (off_t)1 << 23, SYNC_FILE_RANGE_WRITE);
		op->written += (uint64_t)n;
		return 0;
	}
	op->written += (uint64_t)n;
	while (n > 0) {
		take = OUT_BUF - op->olen < n ? OUT_BUF - op->olen : n;
		memcpy(op->obuf + op->olen, p, take);
		op->olen += take;
		p += take;
		n -= take;
		if (op->olen == OUT_BUF) {
			if (out_direct(op, OUT_BUF) < 0)
				return -1;
			op->olen = 0;
		}
	}
	return 0;
}

/* What obuf still holds, to the file: 0, or -1. */
static int
out_end(struct opener *op)
{
	size_t whole = op->olen - op->olen % OUT_ALIGN;
	int fl;

	if (op->obuf == NULL || op->olen == 0)
		return 0;
	if (whole > 0 && out_direct(op, whole) < 0)
		return -1;
	if ((fl = fcntl(op->fd, F_GETFL)) >= 0)
		(void)fcntl(op->fd, F_SETFL, fl & ~O_DIRECT);
	if (write_all(op->fd, op->obuf + whole, op->olen - whole) < 0)
		return -1;
	op->olen = 0;
	return 0;
}

/* The metadata message: {"version":1,"name":...,"time":...}. */
static int
take_meta(struct opener *op, const uint8_t *p, size_t n)
{
	struct ntm_jerr je;
	json_t *j = ntm_json_parse(p, n, &je);
	const char *name = json_string_value(json_object_get(j, "name"));

	if (j == NULL || name == NULL) {
		json_decref(j);
		return -1;
	}
	snprintf(op->name, sizeof(op->name), "%s", name);
	json_decref(j);
	return 0;
}

/* One whole unit (header or message) in buf is ready. */
static int
step(struct opener *op, const uint8_t *buf)
{
	long n;
	int fin = 0, e, i;

	switch (op->state) {
	case S_HDR5:
		if ((e = ntm_xopen_hdrlen(buf)) < 0) {
			op->why = "not a data object";
			return -1;
		}
		op->state = S_HDR;
		op->need = (size_t)e;	/* the 5 bytes stay in hdr */
		return 0;
	case S_HDR:
		/* The header names the key id of each recipient: the current key,
		 * or one it replaced while this object was on its way. */
		e = ntm_xopen_init(&op->xo, buf, op->need, op->key->key_id, op->key->key);
		for (i = 0; e == NTM_ERR_NOTFOUND && i < op->key->nold; i++)
			e = ntm_xopen_init(&op->xo, buf, op->need, op->key->old[i].key_id,
			    op->key->old[i].key);
		if (e < 0) {
			op->why = e == NTM_ERR_NOTFOUND ? "not sealed for our key with the sender" :
			    "its header does not open with our key";
			return -1;
		}
		op->state = S_LEN;
		op->need = 4;
		return 0;
	case S_LEN:
		op->need = (size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3];
		if (op->need < NTM_XDATA_ABYTES || op->need > NTM_XDATA_MSG_MAX) {
			op->why = "a message has a bad length";
			return -1;
		}
		op->state = S_MSG;
		return 0;
	default:
		if ((n = ntm_xopen_pull(&op->xo, op->plain, sizeof(op->plain), buf, op->need,
		    &fin)) < 0) {
			op->why = "a message does not authenticate";
			return -1;
		}
		if (op->nmsg++ == 0) {
			if (fin || take_meta(op, op->plain, (size_t)n) < 0) {
				op->why = "bad metadata";
				return -1;
			}
		} else if (out_put(op, op->plain, (size_t)n) < 0) {
			op->why = "cannot write the temporary file";
			return -1;
		}
		op->state = fin ? S_DONE : S_LEN;
		op->need = 4;
		return 0;
	}
}

static int
open_sink(const uint8_t *p, size_t n, void *arg)
{
	struct opener *op = arg;
	uint8_t *buf;
	size_t take;

	while (n > 0) {
		if (op->state == S_DONE) {
			op->why = "bytes after the last message";
			return -1;
		}
		buf = op->state == S_HDR5 || op->state == S_HDR ? op->hdr : op->msg;
		take = op->need - op->have < n ? op->need - op->have : n;
		memcpy(buf + op->have, p, take);
		op->have += take;
		p += take;
		n -= take;
		if (op->have < op->need)
			break;
		/* The header keeps growing in hdr; messages restart at 0. */
		if (step(op, buf) < 0)
			return -1;
		op->have = op->state == S_HDR ? 5 : 0;
	}
	return 0;
}

/*
 * What the download hands over: hashed here, opened and written by the
 * thread behind (xpipe.c) when there is one, so that TLS and hashing on
 * one core overlap with opening and writing on the other.
 */
struct fetch_in {
	struct opener	*op;
	struct xpipe	*behind;
};

static int
fetch_sink(const uint8_t *p, size_t n, void *arg)
{
	struct fetch_in *in = arg;

	ntm_sha256_update(&in->op->h, p, n);
	return in->behind ? xpipe_write(p, n, in->behind) : open_sink(p, n, in->op);
}

/* A file name from the sender's metadata: its base name, or the id. */
static void
safe_name(char *out, size_t cap, const char *name, const char *sha)
{
	const char *b = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	size_t i;

	if (*b == '\0' || *b == '.' || strlen(b) > 200) {
		snprintf(out, cap, "%.16s.bin", sha);
		return;
	}
	snprintf(out, cap, "%s", b);
	for (i = 0; out[i]; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = '_';
}

/* Moves tmp to DIR/name, never over an existing file (name.1, name.2 ...). */
static int
place(const char *dir, const char *tmp, const char *name, char *final, size_t cap)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (i == 0)
			snprintf(final, cap, "%s/%s", dir, name);
		else
			snprintf(final, cap, "%s/%s.%d", dir, name, i);
		if (link(tmp, final) == 0) {
			unlink(tmp);
			return 0;
		}
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

static int
copy_out(int fd)
{
	uint8_t buf[65536];
	ssize_t r;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return -1;
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		if (write_all(STDOUT_FILENO, buf, (size_t)r) < 0)
			return -1;
	return r < 0 ? -1 : 0;
}

static int
take_data(struct xctx *x, const struct fopts *o, const struct entry *e, json_t *done)
{
	struct opener *op = NULL;
	struct fetch_in in = { 0 };
	struct xkey k;
	uint8_t h[NTM_HASH_LEN];
	char *tmp = NULL, hex[65], name[256], final[4096];
	const char *dir = o->to_stdout ? x->cli->state_dir : o->out;
	int ret = EXIT_FAIL, e2;

	if ((e2 = xkey_load(x->cli, e->from, &k)) < 0) {
		cli_err(x->cmd, "%s from %s: %s", e->sha256, e->from, e2 == NTM_ERR_NOTFOUND ?
		    "no shared key with the sender (it must run 'ntm keys exchange')" :
		    "cannot read the key with the sender");
		return e2 == NTM_ERR_NOTFOUND ? EXIT_NOKEY : EXIT_FAIL;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL)
		goto out;
	op->fd = -1;
	op->key = &k;
	op->need = 5;
	if (ntm_sha256_init(&op->h) < 0)
		goto out;
	tmp = xasprintf("%s/.ntm-fetch-XXXXXX", dir);
	if ((o->to_stdout && cli_state_prepare(x->cli, x->cmd) < 0) ||
	    (op->fd = mkstemp(tmp)) < 0) {
		cli_err(x->cmd, "cannot create a temporary file in %s: %s", dir, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	in.op = op;
	/* A large object is opened and written by a second thread. */
	in.behind = e->size > 4 * 1024 * 1024 ? xpipe_behind(open_sink, op) : NULL;
	if (in.behind && posix_memalign((void **)&op->obuf, OUT_ALIGN, OUT_BUF) == 0)
		op->odirect = 1;
	else
		op->obuf = NULL;
	ret = x_cs_download(x, e->cs, e->sha256, (uint64_t)e->size, fetch_sink, &in);
	if (in.behind) {
		/* What came is opened to the end before it is judged. */
		if (ret == 0 && xpipe_drain(in.behind) < 0)
			ret = EXIT_VERIFY;
		xpipe_end(in.behind);
		in.behind = NULL;
	}
	if (ret == 0 && ntm_sha256_final(&op->h, h) < 0)
		ret = EXIT_FAIL;
	if (ret == 0 && ntm_hex_encode(hex, sizeof(hex), h, sizeof(h)) > 0 &&
	    strcmp(hex, e->sha256) != 0)
		op->why = "its bytes do not match its SHA-256", ret = EXIT_VERIFY;
	else if (ret == 0 && op->state != S_DONE)
		op->why = "it ends before its last message", ret = EXIT_VERIFY;
	if (ret == EXIT_VERIFY) {
		cli_err(x->cmd, "object %s from %s failed verification: %s; nothing was written",
		    e->sha256, e->from, op->why ? op->why : "stopped");
		goto out;
	}
	if (ret != 0)
		goto out;
	ret = EXIT_FAIL;
	if (out_end(op) < 0 || fsync(op->fd) < 0) {
		cli_err(x->cmd, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	safe_name(name, sizeof(name), op->name, e->sha256);
	if (o->to_stdout) {
		if (copy_out(op->fd) < 0) {
			cli_err(x->cmd, "cannot write to standard output: %s", strerror(errno));
			goto out;
		}
		snprintf(final, sizeof(final), "-");
	} else if (place(dir, tmp, name, final, sizeof(final)) < 0) {
		cli_err(x->cmd, "cannot place %s in %s: %s", name, dir, strerror(errno));
		goto out;
	}
	if ((ret = finish(x, e)) != 0)
		goto out;
	if (!o->json)
		fprintf(o->to_stdout ? stderr : stdout, "fetched %s (%llu bytes) from %s%s%s\n",
		    final, (unsigned long long)op->written, e->from, *e->notify ? ": " : "",
		    e->notify);
	json_array_append_new(done, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "kind",
	    "data", "id", e->sha256, "from", e->from, "path", final,
	    "bytes", (json_int_t)op->written,
	    "name", name, "notify", e->notify));
out:
	if (op) {
		ntm_sha256_free(&op->h);
		if (op->fd >= 0)
			close(op->fd);
		ntm_xopen_wipe(&op->xo);
		ntm_wipe(op->plain, sizeof(op->plain));
		if (op->obuf) {
			ntm_wipe(op->obuf, OUT_BUF);
			free(op->obuf);
		}
		free(op);
	}
	if (tmp) {
		unlink(tmp);	/* gone already when placed */
		free(tmp);
	}
	ntm_wipe(&k, sizeof(k));
	return ret;
}

/* ---- the cache list -------------------------------------------------------- */

/* The entries waiting (new), waiting up to deadline with --wait. */
static int
list_entries(struct xctx *x, const struct fopts *o, int64_t deadline, json_t **out)
{
	char path[NTM_NAME_MAX + 64];
	long saved = x->timeout_ms;
	int64_t left;
	json_t *r;
	int ret;

	for (;;) {
		left = o->wait ? deadline - now_unix() : 0;
		if (left < 0)
			left = 0;
		if (left > 60)
			left = 60;
		snprintf(path, sizeof(path), "/v1/exchange/cache?wait=%lld%s%s", (long long)left,
		    o->from ? "&from=" : "", o->from ? o->from : "");
		x->timeout_ms = saved + left * 1000;
		ret = x_call(x, x->s.dc_url, "GET", path, NULL, 200, &r);
		x->timeout_ms = saved;
		if (ret != 0)
			return ret;
		if (json_array_size(entries_of(r)) > 0 || !o->wait ||
		    now_unix() >= deadline) {
			*out = r;
			return 0;
		}
		json_decref(r);
	}
}

/* After a run: previous keys kept for the peer's entries listed before
 * the key that replaced them go once no such entry is left (left: the
 * entries listed and not taken). Only peers the list covered (--from). */
struct prune {
	const struct fopts	*o;
	json_t			*left, *peers;
};

static int
prune_one(const struct xkey *k, void *arg)
{
	struct prune *p = arg;

	if (k->nold > 0 && (p->o->from == NULL || strcmp(p->o->from, k->peer) == 0))
		json_array_append_new(p->peers, json_string(k->peer));
	return 0;
}

static void
prune_old_keys(struct xctx *x, const struct fopts *o, json_t *left)
{
	struct prune p = { o, left, json_array() };
	struct xkey k;
	json_t *v, *e;
	size_t i, j;
	int64_t oldest, id;

	(void)xkey_each(x->cli, prune_one, &p);
	json_array_foreach(p.peers, i, v) {
		if (xkey_load(x->cli, json_string_value(v), &k) != 0)
			continue;
		oldest = INT64_MAX;
		json_array_foreach(left, j, e) {
			id = json_integer_value(json_object_get(e, "id"));
			if (strcmp(json_string_value(json_object_get(e, "from")) ?
			    json_string_value(json_object_get(e, "from")) : "", k.peer) == 0 &&
			    id < oldest)
				oldest = id;
		}
		if (xkey_entries_left(&k, oldest) && xkey_save(x->cli, &k) < 0)
			log_info("cannot save the key with %s", k.peer);
		ntm_wipe(&k, sizeof(k));
	}
	json_decref(p.peers);
}

/* --discard ID: DELETE /v1/exchange/cache?id=ID at our DC. */
static int
discard(struct xctx *x, const struct fopts *o)
{
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "/v1/exchange/cache?id=%ld", o->discard);
	if ((ret = x_call(x, x->s.dc_url, "DELETE", path, NULL, 200, NULL)) != 0)
		return ret;
	if (o->json)
		cli_print_json(json_pack("{s:I, s:b}", "id", (json_int_t)o->discard,
		    "discarded", 1));
	else
		printf("discarded entry %ld\n", o->discard);
	return EXIT_OK;
}

static int
fetch_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	struct fopts o = *(const struct fopts *)c->args;
	struct xctx x;
	struct entry e;
	struct stat st;
	json_t *r = NULL, *v, *done = NULL, *left = NULL, *entries;
	int64_t deadline;
	size_t i;
	int ret = EXIT_USAGE, r2, opened = 0;

	o.to_stdout = strcmp(o.out, "-") == 0;
	if (!o.to_stdout && (stat(o.out, &st) < 0 || !S_ISDIR(st.st_mode))) {
		cli_err("fetch", "-o '%s': not a directory", o.out);
		goto done;
	}
	if ((ret = xctx_open(&x, cli, "fetch", o.wait ? 10 : o.timeout)) != 0)
		goto done;
	opened = 1;
	x.progress = o.progress;
	if (o.discard) {
		ret = discard(&x, &o);
		goto done;
	}
	if (o.from && !x_valid_peer(&x, o.from, "--from")) {
		ret = EXIT_USAGE;
		goto done;
	}
	deadline = now_unix() + (o.wait ? (o.timeout ? o.timeout : 60) : 0);
	if ((ret = list_entries(&x, &o, deadline, &r)) != 0)
		goto done;
	done = json_array();
	left = json_array();
	entries = entries_of(r);
	/* Keys first (in order), so data sealed with a new key opens in this run. */
	for (int pass = 0; pass < 2; pass++)
		json_array_foreach(entries, i, v) {
			if (entry_parse(v, &e) < 0) {
				cli_err("fetch", "malformed cache entry from %s", x.s.dc_url);
				if (pass == 0)
					json_array_append(left, v);
				ret = ret ? ret : EXIT_FAIL;
				continue;
			}
			if ((strcmp(e.kind, "key") == 0) != (pass == 0))
				continue;
			r2 = pass == 0 ? take_key(&x, &o, &e, done) : take_data(&x, &o, &e, done);
			if (r2 != 0)
				json_array_append(left, v);
			if (r2 == EXIT_VERIFY)
				cli_err("fetch", "entry %lld stays listed; drop it with 'ntm fetch "
				    "--discard %lld'", (long long)e.id, (long long)e.id);
			if (r2 != 0 && ret == 0)
				ret = r2;
		}
	prune_old_keys(&x, &o, left);
	if (o.json)
		cli_print_json(json_pack("{s:O}", "fetched", done));
	else if (json_array_size(done) == 0 && ret == 0)
		fprintf(o.to_stdout ? stderr : stdout, "nothing to fetch\n");
	if (ret == 0 && o.wait && json_array_size(done) == 0)
		ret = EXIT_FAIL;	/* --wait: nothing arrived in time */
done:
	json_decref(left);
	json_decref(done);
	json_decref(r);
	if (opened)
		xctx_close(&x);
	return ret;
}

const struct cmd_entry fetch_entry = {
	.name = "fetch",
	.summary = "fetch, decrypt and confirm what peers sent",
	.usage = "",
	.opts = fetch_opts,
	.max = 0,
	.args_size = sizeof(struct fopts),
	.init = fetch_init,
	.exec = fetch_exec,
};
