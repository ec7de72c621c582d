/*
 * status.c - state_dir/status.json, rewritten every few seconds while the
 * registration socket is open, and the "status" subcommand that prints it:
 * the counters of the UDP path, the webhook, MOVED, the exchange and the
 * ended tokens, read from the rooms that keep them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "dc.h"

#define STATUS_EVERY_S	2	/* state_dir/status.json rewritten */
#define STATUS_STALE_S	10	/* older: the daemon is not running */
#define STATUS_READ_MAX	(64 * 1024)

struct dc_status {
	struct event	*timer;
	char		*path;
};

/* state_dir/status.json for "ntm-dc status": the counters, now. */
static void
write_status(struct dc *dc)
{
	json_t *st = json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "name",
	    dc->srv->conf.name, "time", (json_int_t)now_unix(), "pid", (json_int_t)getpid(),
	    "udp", dc_udp_stats(dc), "push", dc_push_stats(dc), "moved", dc_tunnel_stats(dc),
	    "exchange", dc_exchange_stats(dc), "ended_tokens", dc_ended_stats(dc));
	char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;

	if (text && ntm_file_write(dc->status->path, text, strlen(text), 0600) < 0)
		log_debug("status %s: cannot write", dc->status->path);
	free(text);
	json_decref(st);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dc *dc = arg;

	write_status(dc);
	dc_udp_tick(dc);
	dc_client_tick(dc);
}

/* "ntm-dc status [--json]": the running daemon's counters, from its file. */
struct status_args {
	int	json;
};

static int
status_exec(void *ctx, struct cmd_call *c)
{
	struct srv *s = ctx;
	const struct status_args *a = c->args;
	char *path = xasprintf("%s/status.json", s->conf.state_dir), *text = NULL;
	json_t *st = NULL, *udp, *drop, *push, *v;
	json_error_t je;
	const char *k;
	size_t len;
	int ret = 1, e;

	if ((e = ntm_file_read(path, STATUS_READ_MAX, &text, &len)) < 0) {
		srv_errx("%s: %s (is the daemon running with udp_listen set?)", path,
		    e == NTM_ERR_IO ? strerror(errno) : ntm_strerror(e));
		goto cleanup;
	}
	if ((st = json_loadb(text, len, 0, &je)) == NULL || !json_is_object(st)) {
		srv_errx("%s: not a status file", path);
		goto cleanup;
	}
	if (now_unix() - json_integer_value(json_object_get(st, "time")) > STATUS_STALE_S) {
		srv_errx("%s: stale (the daemon is not running)", path);
		goto cleanup;
	}
	if (a->json) {
		if (json_dumpf(st, stdout, JSON_INDENT(2)) < 0)
			goto cleanup;
		putchar('\n');
	} else {
		udp = json_object_get(st, "udp");
		json_object_foreach(udp, k, v)
			if (json_is_integer(v))
				printf("%-26s %lld\n", k, (long long)json_integer_value(v));
		drop = json_object_get(udp, "dropped");
		json_object_foreach(drop, k, v)
			printf("dropped %-18s %lld\n", k, (long long)json_integer_value(v));
		push = json_object_get(st, "push");
		json_object_foreach(push, k, v)
			if (json_is_integer(v))
				printf("%-26s %lld\n", k, (long long)json_integer_value(v));
		push = json_object_get(st, "moved");
		json_object_foreach(push, k, v)
			if (json_is_integer(v))
				printf("moved %-20s %lld\n", k, (long long)json_integer_value(v));
		push = json_object_get(st, "exchange");
		json_object_foreach(push, k, v)
			if (json_is_integer(v))
				printf("exchange %-17s %lld\n", k, (long long)json_integer_value(v));
	}
	ret = fflush(stdout) == 0 ? 0 : 1;
cleanup:
	json_decref(st);
	free(text);
	free(path);
	return ret;
}

static const struct cmd_opt status_opts[] = {
	SRV_OPT_JSON(struct status_args),
	SRV_OPT_HELP,
	SRV_OPT_END
};

const struct cmd_entry dc_status_entry = {
	.name = "status",
	.summary = "the registration server's counters (from state_dir/status.json)",
	.usage = "",
	.opts = status_opts,
	.max = 0,
	.args_size = sizeof(struct status_args),
	.exec = status_exec,
};

int
dc_status_start(struct dc *dc, char *err, size_t errlen)
{
	struct srv *s = dc->srv;
	struct timeval tv = { STATUS_EVERY_S, 0 };

	if (s->conf.udp_listen == NULL || s->check_only)
		return 0;
	if ((dc->status = calloc(1, sizeof(*dc->status))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dc->status->path = xasprintf("%s/status.json", s->conf.state_dir);
	if ((dc->status->timer = event_new(s->base, -1, EV_PERSIST, on_timer, dc)) == NULL ||
	    event_add(dc->status->timer, &tv) < 0) {
		snprintf(err, errlen, "cannot start the status timer");
		return -1;
	}
	return 0;
}

void
dc_status_stop(struct dc *dc)
{
	struct dc_status *st = dc->status;

	if (st == NULL)
		return;
	if (st->timer)
		event_free(st->timer);
	unlink(st->path);
	free(st->path);
	free(st);
	dc->status = NULL;
}
