/*
 * fuzz_control.c - libFuzzer harness for the agent's control protocol
 * (docs/protocol.md §6; cmd/ntm/agent/ctlreq.c): the input, after its
 * first byte, is what a client writes on the control socket, read as
 * control.c reads it: one request line (LF-terminated, at most
 * AGENT_LINE_MAX bytes), parsed and checked against its verb's fields, and
 * for an "https" request with a length the body that follows the line.
 *
 * The first byte says how the bytes arrive (chunks of 1 to 16 bytes) and
 * may put up to AGENT_LINE_MAX spaces before the line, so its end falls
 * around the limit (libFuzzer's inputs are shorter than a line may be).
 * Checked:
 *   - the bytes read the same at once and in chunks: same line, same
 *     outcome, same body;
 *   - a line taken is the input up to its first LF, at most AGENT_LINE_MAX
 *     bytes; the connection is dropped only when there is no LF within them;
 *   - a request accepted is what §6 allows: a known verb with only its
 *     fields, proto udp or tcp (never tcp in TUN mode), an "https" request
 *     with its method, URL, length and timeout in range;
 *   - a refusal has a code (bad_request, or tun_mode in TUN mode only) and
 *     a message; TUN mode changes nothing but the refusal of streams;
 *   - an https body is the bytes right after the line.
 *
 * Sources: cmd/ntm/agent/ctlreq.c
 * Includes: cmd/ntm
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "ntm.h"
#include "agent.h"
#include "ctlreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a client's bytes came to. */
struct outcome {
	int		 took;		/* ctl_take_line: 1, 0 (incomplete), -1 (dropped) */
	char		*line;
	size_t		 n;
	int		 parsed;	/* ctl_parse */
	enum ctl_verb	 verb;
	const char	*code;
	char		 message[512];
	size_t		 need;		/* an https body's length */
	uint8_t		*body;		/* NULL until all of it came */
};

static void
outcome_free(struct outcome *o)
{
	free(o->line);
	free(o->body);
}

/* The keys a verb takes (docs/protocol.md §6), besides "cmd". */
static const char *const *
verb_keys(enum ctl_verb v)
{
	static const char *const none[] = { NULL };
	static const char *const close_k[] = { "peer", NULL };
	static const char *const ping[] = { "peer", "family", "timeout_ms", "count",
	    "interval_ms", NULL };
	static const char *const open_k[] = { "peer", "family", "timeout_ms", "port",
	    "local_port", "proto", NULL };
	static const char *const listen_k[] = { "port", "proto", NULL };
	static const char *const https[] = { "method", "url", "bearer", "content_type",
	    "length", "timeout_ms", NULL };

	switch (v) {
	case CV_CLOSE:	return close_k;
	case CV_PING:	return ping;
	case CV_OPEN:	return open_k;
	case CV_LISTEN:	return listen_k;
	case CV_HTTPS:	return https;
	default:	return none;
	}
}

static const char *const verb_names[CV__COUNT] = {
	[CV_STATUS] = "status", [CV_REGISTER] = "register", [CV_LIST] = "list",
	[CV_STOP] = "stop", [CV_CLOSE] = "close", [CV_PING] = "ping", [CV_OPEN] = "open",
	[CV_LISTEN] = "listen", [CV_FORWARD] = "forward", [CV_HTTPS] = "https",
};

static int
str_ok(const char *s, size_t max)
{
	return s == NULL || strlen(s) <= max;
}

/* A request ctl_parse accepted is one §6 allows. */
static void
check_req(const struct ctl_req *r, const char *tundev)
{
	const char *cmd = json_string_value(json_object_get(r->j, "cmd"));
	const char *const *keys;
	const char *key;
	json_t *val;

	if (!json_is_object(r->j) || cmd == NULL || r->verb >= CV__COUNT)
		abort();
	if (r->verb == CV_FORWARD) {
		if (strcmp(cmd, "forward") && strcmp(cmd, "forwards") && strcmp(cmd, "unforward"))
			abort();
		return;
	}
	if (strcmp(cmd, verb_names[r->verb]) != 0 || strcmp(r->cmd, cmd) != 0)
		abort();
	keys = verb_keys(r->verb);
	json_object_foreach(r->j, key, val) {
		size_t i;

		for (i = 0; keys[i] && strcmp(keys[i], key) != 0; i++)
			;
		if (keys[i] == NULL && strcmp(key, "cmd") != 0)
			abort();
	}
	if (r->verb == CV_HTTPS) {
		if (r->method == NULL || r->url == NULL ||
		    (strcmp(r->method, "GET") && strcmp(r->method, "POST") &&
		    strcmp(r->method, "PUT") && strcmp(r->method, "DELETE")) ||
		    strncmp(r->url, "https://", 8) != 0 || !str_ok(r->url, 2048) ||
		    !str_ok(r->bearer, 1024) || !str_ok(r->ctype, 63) ||
		    r->length < 0 || r->length > AGENT_HTTPS_BODY_MAX ||
		    r->https_timeout < 1 || r->https_timeout > CTL_HTTPS_TIMEOUT_MAX_MS)
			abort();
		return;
	}
	if (r->proto == NULL || (strcmp(r->proto, "udp") && strcmp(r->proto, "tcp")) ||
	    (tundev && r->proto[0] == 't') || !str_ok(r->peer, NTM_NAME_MAX))
		abort();
}

/* Parses a line as the agent does, in and out of TUN mode. */
static void
parse(const char *line, size_t n, struct outcome *o)
{
	struct ctl_req r, t;
	struct ctl_perr e, te;
	int rc = ctl_parse(line, n, NULL, &r, &e);
	int trc = ctl_parse(line, n, "ntm0", &t, &te);

	if (rc == 0)
		check_req(&r, NULL);
	else if (e.code == NULL || strcmp(e.code, "bad_request") != 0 || e.message[0] == '\0' ||
	    r.j != NULL)
		abort();
	if (trc == 0)
		check_req(&t, "ntm0");
	else if (te.code == NULL || te.message[0] == '\0' || t.j != NULL)
		abort();
	if (trc < 0 && strcmp(te.code, "tun_mode") == 0) {
		/* only a stream, which outside TUN mode may still be refused
		 * for something checked after */
		if (rc == 0 && (r.proto == NULL || strcmp(r.proto, "tcp") != 0))
			abort();
	} else if (trc != rc || (rc == 0 && t.verb != r.verb) ||
	    (rc < 0 && (strcmp(te.code, e.code) || strcmp(te.message, e.message))))
		abort();
	o->parsed = rc;
	if (rc == 0) {
		o->verb = r.verb;
		if (r.verb == CV_HTTPS)
			o->need = (size_t)r.length;
		ctl_req_free(&r);
	} else {
		o->code = e.code;
		memcpy(o->message, e.message, sizeof(o->message));
	}
	if (trc == 0)
		ctl_req_free(&t);
}

/* Reads p (n bytes) as control.c does, chunk bytes at a time (0: all). */
static void
run(const uint8_t *p, size_t n, size_t chunk, struct outcome *o)
{
	struct evbuffer *in = evbuffer_new();
	size_t off = 0;
	int body = 0;

	memset(o, 0, sizeof(*o));
	if (in == NULL)
		abort();
	for (;;) {
		if (!body) {
			o->took = ctl_take_line(in, &o->line, &o->n);
			if (o->took == 1) {
				parse(o->line, o->n, o);
				if (o->parsed != 0 || o->need == 0)
					break;
				body = 1;
				continue;
			}
			if (o->took < 0)
				break;
		} else {
			const void *b = ctl_take_body(in, o->need);

			if (b) {
				if ((o->body = malloc(o->need)) == NULL)
					abort();
				memcpy(o->body, b, o->need);
				evbuffer_drain(in, o->need);
				break;
			}
		}
		if (off == n)
			break;
		{
			size_t k = chunk == 0 || n - off < chunk ? n - off : chunk;

			if (evbuffer_add(in, p + off, k) < 0)
				abort();
			off += k;
		}
	}
	evbuffer_free(in);
}

static void
same(const struct outcome *a, const struct outcome *b)
{
	if (a->took != b->took || a->n != b->n || (a->line == NULL) != (b->line == NULL) ||
	    (a->line && memcmp(a->line, b->line, a->n) != 0) || a->parsed != b->parsed ||
	    a->verb != b->verb || (a->code == NULL) != (b->code == NULL) ||
	    (a->code && strcmp(a->code, b->code)) || strcmp(a->message, b->message) ||
	    a->need != b->need || (a->body == NULL) != (b->body == NULL) ||
	    (a->body && memcmp(a->body, b->body, a->need) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[AGENT_LINE_MAX + 4096];
	struct outcome all, parts;
	const uint8_t *lf;
	size_t pad = 0, n;

	if (size < 1)
		return 0;
	if (data[0] & 0x80)
		pad = AGENT_LINE_MAX - 64 + (size_t)(data[0] & 0x70);	/* -64 .. +48 */
	n = pad + size - 1;
	memset(buf, ' ', pad);
	memcpy(buf + pad, data + 1, size - 1);

	run(buf, n, 0, &all);
	run(buf, n, 1 + (data[0] & 0x0f), &parts);
	same(&all, &parts);

	/* The line is the bytes up to the first LF, within the limit. */
	lf = memchr(buf, '\n', n);
	if (all.took == 1) {
		if (lf == NULL || (size_t)(lf - buf) != all.n || all.n > AGENT_LINE_MAX ||
		    memcmp(all.line, buf, all.n) != 0 || all.line[all.n] != '\0')
			abort();
	} else if (all.took < 0) {
		if (lf ? (size_t)(lf - buf) <= AGENT_LINE_MAX : n <= AGENT_LINE_MAX)
			abort();
	} else if (lf != NULL || n > AGENT_LINE_MAX) {
		abort();
	}
	/* The body is what follows the line, once all of it came. */
	if (all.body) {
		if (all.n + 1 + all.need > n || memcmp(all.body, buf + all.n + 1, all.need) != 0)
			abort();
	} else if (all.took == 1 && all.parsed == 0 && all.need > 0 &&
	    all.n + 1 + all.need <= n) {
		abort();
	}
	outcome_free(&all);
	outcome_free(&parts);
	return 0;
}
