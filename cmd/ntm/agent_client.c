/*
 * agent_client.c - the CLI side of the agent's control socket: where it is,
 * connecting, one JSON object per line each way (docs/protocol.md §6).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "agent.h"

static char *
agent_dir(const struct cli *cli)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");

	/* -c DIR (or $NTM_PROFILE) makes config and state the same dir. */
	if (strcmp(cli->config_dir, cli->state_dir) == 0)
		return xstrdup(cli->state_dir);
	if (rt && *rt == '/')
		return xasprintf("%s/ntm", rt);
	return xstrdup(cli->state_dir);
}

char *
agent_sock_path(const struct cli *cli)
{
	char *d = agent_dir(cli), *p = xasprintf("%s/%s", d, AGENT_SOCK);

	free(d);
	return p;
}

char *
agent_pid_path(const struct cli *cli)
{
	char *d = agent_dir(cli), *p = xasprintf("%s/%s", d, AGENT_PID);

	free(d);
	return p;
}

int
ctl_open(struct ctl_client *c, const struct cli *cli)
{
	struct sockaddr_un sun;
	char *path = agent_sock_path(cli);
	int fd, e;

	c->fd = -1;
	c->len = 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		free(path);
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	free(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	c->fd = fd;
	return 0;
}

void
ctl_close(struct ctl_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
}

int
ctl_send(struct ctl_client *c, json_t *req)
{
	char *s = req ? json_dumps(req, JSON_COMPACT) : NULL;
	size_t n, off = 0;
	int ret = -1;

	json_decref(req);
	if (s == NULL)
		return -1;
	n = strlen(s);
	s[n] = '\n';	/* replaces the NUL; length kept in n + 1 */
	while (off < n + 1) {
		ssize_t w = send(c->fd, s + off, n + 1 - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto out;
		off += (size_t)w;
	}
	ret = 0;
out:
	free(s);
	return ret;
}

json_t *
ctl_recv(struct ctl_client *c, int timeout_ms, const char **why)
{
	int64_t deadline = agent_now_ms() + timeout_ms;

	*why = "no answer from the agent";
	for (;;) {
		uint8_t *nl = memchr(c->buf, '\n', c->len);

		if (nl) {
			size_t ln = (size_t)(nl - c->buf);
			json_error_t e;
			json_t *j = json_loadb((const char *)c->buf, ln, 0, &e);

			memmove(c->buf, nl + 1, c->len - ln - 1);
			c->len -= ln + 1;
			if (j == NULL || !json_is_object(j)) {
				json_decref(j);
				*why = "the agent sent a malformed line";
				return NULL;
			}
			return j;
		}
		if (c->len == sizeof(c->buf)) {
			*why = "the agent sent an overlong line";
			return NULL;
		}
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int64_t left = deadline - agent_now_ms();
		ssize_t r;

		if (left <= 0) {
			*why = "the agent did not answer in time";
			return NULL;
		}
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*why = "the agent closed the connection";
			return NULL;
		}
		c->len += (size_t)r;
	}
}

json_t *
ctl_call(const struct cli *cli, json_t *req, int timeout_ms)
{
	struct ctl_client *c = malloc(sizeof(*c));
	const char *why;
	json_t *resp = NULL;

	if (c == NULL) {
		json_decref(req);
		return NULL;
	}
	if (ctl_open(c, cli) < 0) {
		json_decref(req);
		free(c);
		return NULL;
	}
	if (ctl_send(c, req) == 0)
		resp = ctl_recv(c, timeout_ms, &why);
	ctl_close(c);
	free(c);
	return resp;
}

int
ctl_fail(const char *cmd, json_t *resp)
{
	const char *code = json_string_value(json_object_get(resp, "code"));
	const char *msg = json_string_value(json_object_get(resp, "message"));

	/* "code: message", as for the DC's errors, so scripts can match the
	 * stable code and people read the message. */
	if (code && msg)
		cli_err(cmd, "%s: %s", code, msg);
	else
		cli_err(cmd, "%s", msg ? msg : code ? code : "the agent refused the request");
	if (code == NULL)
		return EXIT_FAIL;
	if (!strcmp(code, "unknown_peer") || !strcmp(code, "peer_offline") ||
	    !strcmp(code, "tunnel_failed") || !strcmp(code, "no_relay") ||
	    !strcmp(code, "no_tunnel") || !strcmp(code, "not_registered") ||
	    !strcmp(code, "tunnel_timeout") || !strcmp(code, "unknown_tunnel"))
		return EXIT_NOTUNNEL;
	if (!strcmp(code, "refused"))
		return EXIT_REFUSED;
	if (!strcmp(code, "reset") || !strcmp(code, "stalled") ||
	    !strcmp(code, "tunnel_closed") || !strcmp(code, "agent_stopped"))
		return EXIT_BROKEN;
	if (!strcmp(code, "timeout"))
		return EXIT_NOTUNNEL;
	if (!strcmp(code, "unreachable") || !strcmp(code, "upstream_unavailable"))
		return EXIT_UNREACH;
	if (!strcmp(code, "untrusted_certificate"))
		return EXIT_UNTRUSTED;
	if (!strcmp(code, "peer_identity"))
		return EXIT_IDENTITY;
	if (!strcmp(code, "unauthorized") || !strcmp(code, "session_ended"))
		return EXIT_NOSESSION;
	if (!strcmp(code, "bad_request"))
		return EXIT_USAGE;
	if (!strcmp(code, "busy") || !strcmp(code, "internal") || !strcmp(code, "full"))
		return EXIT_FAIL;
	return cli_exit_for_code(code, 0);	/* a DC's code, passed on */
}

json_t *
agent_status_json(const struct cli *cli)
{
	json_t *r = ctl_call(cli, json_pack("{s:s}", "cmd", "status"), 3000);
	json_t *a;

	if (r == NULL)
		return NULL;
	a = json_incref(json_object_get(r, "agent"));
	json_decref(r);
	return a;
}

/* The agent's codes for a request that got no HTTP answer. */
static int
https_err(const char *code)
{
	if (code == NULL)
		return NTM_ERR_CONNECT;
	if (!strcmp(code, "timeout"))
		return NTM_ERR_TIMEOUT;
	if (!strcmp(code, "tls"))
		return NTM_ERR_TLS;
	if (!strcmp(code, "untrusted_certificate"))
		return NTM_ERR_UNTRUSTED;
	if (!strcmp(code, "too_big"))
		return NTM_ERR_TOOBIG;
	return NTM_ERR_CONNECT;
}

int
agent_https(const struct cli *cli, const struct agent_https_req *q, long *status,
    char **body, size_t *len, char *errmsg, size_t errlen)
{
	struct ctl_client *c;
	const char *why = NULL, *code;
	json_t *req, *r = NULL;
	json_int_t n;
	size_t have;
	char *out = NULL;
	int ret = 1;

	*status = 0;
	*body = NULL;
	*len = 0;
	if (q->blen > AGENT_HTTPS_BODY_MAX || (c = malloc(sizeof(*c))) == NULL)
		return 1;
	if (ctl_open(c, cli) < 0) {
		free(c);
		return 1;
	}
	req = json_pack("{s:s, s:s, s:s, s:I, s:I}", "cmd", "https", "method", q->method,
	    "url", q->url, "length", (json_int_t)q->blen, "timeout_ms",
	    (json_int_t)q->timeout_ms);
	if (req && q->bearer)
		json_object_set_new(req, "bearer", json_string(q->bearer));
	if (req && q->ctype)
		json_object_set_new(req, "content_type", json_string(q->ctype));
	if (ctl_send(c, req) < 0)
		goto out;
	for (size_t off = 0; off < q->blen; ) {
		ssize_t w = send(c->fd, (const char *)q->body + off, q->blen - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto out;	/* the agent is gone before the request: direct */
		off += (size_t)w;
	}
	/* From here on the request may have gone out; an agent that goes away
	 * now leaves its outcome unknown (2). */
	ret = 2;
	if ((r = ctl_recv(c, (int)q->timeout_ms + 5000, &why)) == NULL) {
		snprintf(errmsg, errlen, "%s", why);
		goto out;
	}
	code = json_string_value(json_object_get(r, "code"));
	if (!json_is_true(json_object_get(r, "ok"))) {
		/* An agent that does not carry requests: direct. */
		if (code && !strcmp(code, "bad_request") && json_string_value(
		    json_object_get(r, "message")) && strstr(json_string_value(
		    json_object_get(r, "message")), "unknown cmd")) {
			ret = 1;
			goto out;
		}
		snprintf(errmsg, errlen, "%s", json_string_value(json_object_get(r, "message")) ?
		    json_string_value(json_object_get(r, "message")) : "the agent failed");
		ret = https_err(code);
		goto out;
	}
	n = json_integer_value(json_object_get(r, "length"));
	*status = (long)json_integer_value(json_object_get(r, "status"));
	if (n < 0 || n > AGENT_HTTPS_ANSWER_MAX || (out = malloc((size_t)n + 1)) == NULL) {
		snprintf(errmsg, errlen, "the agent sent a bad answer");
		ret = NTM_ERR_CONNECT;
		goto out;
	}
	have = c->len < (size_t)n ? c->len : (size_t)n;
	memcpy(out, c->buf, have);
	while (have < (size_t)n) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ssize_t rd;

		if (poll(&pfd, 1, 5000) <= 0) {
			snprintf(errmsg, errlen, "the agent stopped in the middle of an answer");
			goto out;
		}
		rd = recv(c->fd, out + have, (size_t)n - have, 0);
		if (rd < 0 && errno == EINTR)
			continue;
		if (rd <= 0) {
			snprintf(errmsg, errlen, "the agent closed the connection");
			goto out;
		}
		have += (size_t)rd;
	}
	out[n] = '\0';
	*body = out;
	*len = (size_t)n;
	out = NULL;
	ret = 0;
out:
	free(out);
	json_decref(r);
	ctl_close(c);
	free(c);
	return ret;
}
