/*
 * ctlreq.c - the requests of the agent's control socket (ctlreq.h,
 * docs/protocol.md §6): framing, parsing and the checks that need no agent.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "ntm.h"
#include "agent.h"
#include "ctlreq.h"

/* ---- framing: a line, then an "https" request's body ---------------------- */

int
ctl_take_line(struct evbuffer *in, char **line, size_t *n)
{
	size_t len;
	char *l = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);

	if (l == NULL)
		return evbuffer_get_length(in) > AGENT_LINE_MAX ? -1 : 0;
	if (len > AGENT_LINE_MAX) {
		free(l);
		return -1;
	}
	*line = l;
	*n = len;
	return 1;
}

const void *
ctl_take_body(struct evbuffer *in, size_t need)
{
	if (evbuffer_get_length(in) < need)
		return NULL;
	return evbuffer_pullup(in, (ev_ssize_t)need);
}

/* ---- the request line ------------------------------------------------------ */

/*
 * The fields of a control request besides "cmd", in the order of
 * ctl_parse's field table; a verb names the ones it takes and any other is
 * refused.
 */
enum {
	CF_PEER		= 1 << 0,
	CF_COUNT	= 1 << 1,
	CF_INTERVAL	= 1 << 2,
	CF_FAMILY	= 1 << 3,
	CF_TIMEOUT	= 1 << 4,
	CF_PORT		= 1 << 5,
	CF_LPORT	= 1 << 6,
	CF_PROTO	= 1 << 7,
};
static const char *const ctl_field_names[] = {
	"peer", "count", "interval_ms", "family", "timeout_ms", "port", "local_port", "proto",
};
#define CF_DIAL		(CF_PEER | CF_FAMILY | CF_TIMEOUT)

/* One verb: its name, the fields it takes; a raw verb (the forwards, https)
 * has a table of its own. */
static const struct ctl_verb_def {
	const char	*cmd;
	enum ctl_verb	 verb;
	unsigned	 fields;
	int		 raw;
} verbs[] = {
	{ "status",	CV_STATUS,	0,					0 },
	{ "register",	CV_REGISTER,	0,					0 },
	{ "list",	CV_LIST,	0,					0 },
	{ "stop",	CV_STOP,	0,					0 },
	{ "close",	CV_CLOSE,	CF_PEER,				0 },
	{ "ping",	CV_PING,	CF_DIAL | CF_COUNT | CF_INTERVAL,	0 },
	{ "open",	CV_OPEN,	CF_DIAL | CF_PORT | CF_LPORT | CF_PROTO, 0 },
	{ "listen",	CV_LISTEN,	CF_PORT | CF_PROTO,			0 },
	{ "forward",	CV_FORWARD,	0,					1 },
	{ "forwards",	CV_FORWARD,	0,					1 },
	{ "unforward",	CV_FORWARD,	0,					1 },
	{ "https",	CV_HTTPS,	0,					1 },
};

static const struct ctl_verb_def *
verb_find(const char *cmd)
{
	for (size_t i = 0; cmd && i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(cmd, verbs[i].cmd))
			return &verbs[i];
	return NULL;
}

static int NTM_PRINTF(3, 4)
perr(struct ctl_perr *e, const char *code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* An "https" request: its own fields (docs/protocol.md §6). */
static int
parse_https(struct ctl_req *r, struct ctl_perr *e)
{
	const struct ntm_jfield f[] = {
		{ "cmd", NTM_J_STR, 1, &r->cmd, 32 },
		{ "method", NTM_J_STR, 1, &r->method, 7 },
		{ "url", NTM_J_STR, 1, &r->url, 2048 },
		{ "bearer", NTM_J_STR, 0, &r->bearer, 1024 },
		{ "content_type", NTM_J_STR, 0, &r->ctype, 63 },
		{ "length", NTM_J_INT, 0, &r->length, 0 },
		{ "timeout_ms", NTM_J_INT, 0, &r->https_timeout, 0 },
	};
	struct ntm_jerr jerr;

	r->https_timeout = 30000;
	if (ntm_json_unpack(r->j, f, sizeof(f) / sizeof(f[0]), &jerr) < 0)
		return perr(e, "bad_request", "%s", jerr.message);
	if (strcmp(r->method, "GET") && strcmp(r->method, "POST") &&
	    strcmp(r->method, "PUT") && strcmp(r->method, "DELETE"))
		return perr(e, "bad_request", "method: expected GET, POST, PUT or DELETE");
	if (strncmp(r->url, "https://", 8) != 0)
		return perr(e, "bad_request", "url: expected an https:// URL");
	if (r->length < 0 || r->length > AGENT_HTTPS_BODY_MAX)
		return perr(e, "bad_request", "length: expected 0 to %d", AGENT_HTTPS_BODY_MAX);
	if (r->https_timeout < 1 || r->https_timeout > CTL_HTTPS_TIMEOUT_MAX_MS)
		return perr(e, "bad_request", "timeout_ms: expected 1 to %d",
		    CTL_HTTPS_TIMEOUT_MAX_MS);
	return 0;
}

static int
parse(const char *line, size_t len, const char *tundev, struct ctl_req *r,
    struct ctl_perr *e)
{
	const struct ntm_jfield f[] = {
		{ "cmd", NTM_J_STR, 1, &r->cmd, 32 },
		{ "peer", NTM_J_STR, 0, &r->peer, NTM_NAME_MAX },
		{ "count", NTM_J_INT, 0, &r->count, 0 },
		{ "interval_ms", NTM_J_INT, 0, &r->interval, 0 },
		{ "family", NTM_J_INT, 0, &r->family, 0 },
		{ "timeout_ms", NTM_J_INT, 0, &r->timeout, 0 },
		{ "port", NTM_J_INT, 0, &r->port, 0 },
		{ "local_port", NTM_J_INT, 0, &r->lport, 0 },
		{ "proto", NTM_J_STR, 0, &r->proto, 8 },
	};
	struct ntm_jerr jerr;
	const struct ctl_verb_def *v;

	r->j = ntm_json_parse(line, len, &jerr);
	v = r->j ? verb_find(json_string_value(json_object_get(r->j, "cmd"))) : NULL;
	if (v && v->raw) {
		r->verb = v->verb;
		r->cmd = v->cmd;
		return v->verb == CV_HTTPS ? parse_https(r, e) : 0;
	}
	if (r->j == NULL || ntm_json_unpack(r->j, f, sizeof(f) / sizeof(f[0]), &jerr) < 0)
		return perr(e, "bad_request", "%s", jerr.message);
	if (strcmp(r->proto, "udp") != 0 && strcmp(r->proto, "tcp") != 0)
		return perr(e, "bad_request", "proto: expected udp or tcp");
	if (r->proto[0] == 't' && tundev)
		return perr(e, "tun_mode", "streams use the user-space stack; in TUN mode "
		    "programs use the vIPs on %s directly (nc, curl ...)", tundev);
	if (v == NULL)
		return perr(e, "bad_request", "unknown cmd '%s'", r->cmd);
	for (size_t i = 0; i < sizeof(ctl_field_names) / sizeof(ctl_field_names[0]); i++)
		if (!(v->fields & (1u << i)) && json_object_get(r->j, ctl_field_names[i]))
			return perr(e, "bad_request", "%s: does not apply to '%s'",
			    ctl_field_names[i], v->cmd);
	r->verb = v->verb;
	return 0;
}

int
ctl_parse(const char *line, size_t len, const char *tundev, struct ctl_req *r,
    struct ctl_perr *e)
{
	memset(r, 0, sizeof(*r));
	r->proto = "udp";
	e->code = NULL;
	e->message[0] = '\0';
	if (parse(line, len, tundev, r, e) == 0)
		return 0;
	ctl_req_free(r);
	return -1;
}

void
ctl_req_free(struct ctl_req *r)
{
	json_decref(r->j);
	r->j = NULL;
}
