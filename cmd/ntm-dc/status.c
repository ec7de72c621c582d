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
#include "prom.h"

#define STATUS_EVERY_S	2	/* state_dir/status.json rewritten */
#define STATUS_STALE_S	10	/* older: the daemon is not running */
#define STATUS_READ_MAX	(64 * 1024)

struct dc_status {
	struct event	*timer;
	struct event	*first;		/* the file at once, when the loop runs */
	char		*path;
};

/* state_dir/status.json for "ntm-dc status": the counters, now. */
static void
write_status(struct dc *dc)
{
	json_t *st = json_pack("{s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "name",
	    dc->srv->conf.name, "time", (json_int_t)now_unix(), "pid", (json_int_t)getpid(),
	    "udp", dc_udp_stats(dc), "push", dc_push_stats(dc), "moved", dc_tunnel_stats(dc),
	    "exchange", dc_exchange_stats(dc), "ended_tokens", dc_ended_stats(dc),
	    "temporal_keys", dc_xsweep_stats(dc));
	char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;

	/* Rewritten every few seconds and rebuilt after a crash: no fsync,
	 * which would stall the event loop behind the database's writes. */
	if (text && ntm_file_replace(dc->status->path, text, strlen(text), 0600) < 0)
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

static void
on_first(evutil_socket_t fd, short what, void *arg)
{
	write_status(arg);
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
		json_object_foreach(json_object_get(push, "directions"), k, v)
			printf("tunnels %-18s %lld\n", k, (long long)json_integer_value(v));
		push = json_object_get(st, "exchange");
		json_object_foreach(push, k, v)
			if (json_is_integer(v))
				printf("exchange %-17s %lld\n", k, (long long)json_integer_value(v));
		push = json_object_get(st, "temporal_keys");
		json_object_foreach(push, k, v)
			if (json_is_integer(v))
				printf("temporal_keys %-12s %lld\n", k,
				    (long long)json_integer_value(v));
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

/* ---- GET /metrics: the same counters --------------------------------------- */

#define C	NTM_PROM_COUNTER
#define G	NTM_PROM_GAUGE
static const struct json_metric udp_rows[] = {
	{ "received", "ntm_dc_udp_received_total", C, "Datagrams received on udp_listen", NULL },
	{ "registered", "ntm_dc_registrations_total", C,
	  "Registrations and keepalives accepted", NULL },
	{ "registered_also", "ntm_dc_registrations_also_total", C,
	  "Registrations of a device's second address family accepted", NULL },
	{ "answered", "ntm_dc_udp_answered_total", C, "Registration answers sent", NULL },
	{ "nudged", "ntm_dc_nudges_total", C, "Nudges sent to devices over UDP", NULL },
	{ "moved", "ntm_dc_moved_sent_total", C, "MOVED datagrams sent to devices", NULL },
	{ "moves_held", "ntm_dc_moves_held_total", C,
	  "Address changes held back (too many at once)", NULL },
	{ "sessions", "ntm_dc_online_devices", G,
	  "Devices with a live registration session (online)", NULL },
	{ "dropped", "ntm_dc_udp_dropped_total", C, "Datagrams dropped, by reason", "reason" },
	{ "keepalive_s", "ntm_dc_keepalive_seconds", G, "Keepalive interval told to devices", NULL },
	{ "location_writes", "ntm_dc_location_writes_total", C,
	  "Transactions of device locations committed by the writer thread", NULL },
	{ "location_writes_failed", "ntm_dc_location_writes_failed_total", C,
	  "Transactions of device locations that could not be stored", NULL },
	{ "location_writes_waiting", "ntm_dc_location_writes_waiting", G,
	  "Device locations waiting for the writer thread's next transaction", NULL },
	{ "location_writer_full", "ntm_dc_location_writer_full_total", C,
	  "Times the registration socket waited for the writer thread", NULL },
	{ "location_refresh_dropped", "ntm_dc_location_refresh_dropped_total", C,
	  "Keepalive times not stored with the writer far behind (stored later)", NULL },
};
static const struct json_metric push_rows[] = {
	{ "push_sent", "ntm_dc_push_sent_total", C, "Webhook pushes delivered", NULL },
	{ "push_failed", "ntm_dc_push_failed_total", C, "Webhook pushes that failed", NULL },
	{ "push_dropped", "ntm_dc_push_dropped_total", C,
	  "Webhook pushes dropped (too many in flight)", NULL },
	{ "push_in_flight", "ntm_dc_push_in_flight", G, "Webhook pushes in flight", NULL },
};
static const struct json_metric tunnel_rows[] = {
	{ "directions", "ntm_dc_tunnels_total", C,
	  "Route directions made for tunnels, by route (direct, local, relay)", "route" },
	{ "local", "ntm_dc_moved_local_total", C, "Peer moves told to this DC's devices", NULL },
	{ "forwarded", "ntm_dc_moved_forwarded_total", C, "Peer moves forwarded to other DCs", NULL },
	{ "received", "ntm_dc_moved_received_total", C, "Peer moves received from other DCs", NULL },
	{ "failed", "ntm_dc_moved_failed_total", C, "Peer moves that could not be told", NULL },
	{ "limited", "ntm_dc_moved_limited_total", C, "Peer moves over the rate limit", NULL },
	{ "in_flight", "ntm_dc_moved_in_flight", G, "Peer moves being forwarded", NULL },
};
static const struct json_metric exchange_rows[] = {
	{ "keys_stored", "ntm_dc_exchange_keys_stored_total", C, "Temporal keys stored", NULL },
	{ "keys_forwarded", "ntm_dc_exchange_keys_forwarded_total", C,
	  "Temporal keys forwarded to other DCs", NULL },
	{ "entries_stored", "ntm_dc_exchange_entries_stored_total", C,
	  "Cache list entries stored", NULL },
	{ "forward_failed", "ntm_dc_exchange_forward_failed_total", C,
	  "Forwards to other DCs that failed", NULL },
	{ "nudged", "ntm_dc_exchange_nudged_total", C, "Recipients nudged over UDP", NULL },
	{ "pushed", "ntm_dc_exchange_pushed_total", C, "Recipients notified by webhook", NULL },
	{ "polls_waiting", "ntm_dc_exchange_polls_waiting", G, "Long polls waiting", NULL },
	{ "polls_woken", "ntm_dc_exchange_polls_woken_total", C, "Long polls answered early", NULL },
	{ "polls_timed_out", "ntm_dc_exchange_polls_timed_out_total", C,
	  "Long polls that ran out", NULL },
	{ "polls_gone", "ntm_dc_exchange_polls_gone_total", C,
	  "Long polls whose client closed the connection first", NULL },
};
static const struct json_metric xkey_rows[] = {
	{ "waiting", "ntm_dc_temporal_keys_waiting", G,
	  "Temporal keys waiting for their recipients", NULL },
	{ "expired", "ntm_dc_temporal_keys_expired_total", C,
	  "Temporal keys dropped when their exchange expired", NULL },
	{ "orphaned", "ntm_dc_temporal_keys_orphaned_total", C,
	  "Temporal keys dropped with no key object after xkey_orphan_s", NULL },
};
static const struct json_metric ended_rows[] = {
	{ "waiting", "ntm_dc_ended_tokens_waiting", G,
	  "Ended login tokens waiting to be told to the AS", NULL },
	{ "sent", "ntm_dc_ended_tokens_sent_total", C, "Ended login tokens told to the AS", NULL },
	{ "failed_tries", "ntm_dc_ended_tokens_failed_total", C,
	  "Failed tries to tell the AS of ended tokens", NULL },
};
static const struct json_metric as_rows[] = {
	{ "failovers", "ntm_dc_as_failovers_total", C,
	  "Moves to the next AS of as_url after one gave no answer", NULL },
	{ "resent", "ntm_dc_as_resent_total", C,
	  "Requests to the AS sent again to the next one", NULL },
	{ "logins_at_as", "ntm_dc_logins_at_as", G, "Logins being done by the AS now", NULL },
	{ "logins_waiting", "ntm_dc_logins_waiting", G,
	  "Logins waiting in the queues for their turn at the AS", NULL },
};
#undef C
#undef G

void
dc_metrics(struct srv *s, struct ntm_prom *p)
{
	struct dc *dc = s->priv;
	const struct {
		json_t			*(*fn)(struct dc *);
		const struct json_metric	*rows;
		size_t			 n;
	} rooms[] = {
		{ dc_udp_stats, udp_rows, sizeof(udp_rows) / sizeof(udp_rows[0]) },
		{ dc_tunnel_stats, tunnel_rows, sizeof(tunnel_rows) / sizeof(tunnel_rows[0]) },
		{ dc_push_stats, push_rows, sizeof(push_rows) / sizeof(push_rows[0]) },
		{ dc_exchange_stats, exchange_rows,
		  sizeof(exchange_rows) / sizeof(exchange_rows[0]) },
		{ dc_ended_stats, ended_rows, sizeof(ended_rows) / sizeof(ended_rows[0]) },
		{ dc_xsweep_stats, xkey_rows, sizeof(xkey_rows) / sizeof(xkey_rows[0]) },
		{ dc_as_stats, as_rows, sizeof(as_rows) / sizeof(as_rows[0]) },
	};

	for (size_t i = 0; i < sizeof(rooms) / sizeof(rooms[0]); i++) {
		json_t *o = rooms[i].fn(dc);

		json_metrics(p, o, rooms[i].rows, rooms[i].n);
		json_decref(o);
	}
}

int
dc_status_start(struct dc *dc, char *err, size_t errlen)
{
	struct srv *s = dc->srv;
	struct timeval tv = { STATUS_EVERY_S, 0 }, now = { 0, 0 };

	if (s->conf.udp_listen == NULL || s->check_only)
		return 0;
	if ((dc->status = calloc(1, sizeof(*dc->status))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dc->status->path = xasprintf("%s/status.json", s->conf.state_dir);
	/* The first file as soon as the loop runs (all else started by then),
	 * not STATUS_EVERY_S later: "ntm-dc status" works once the daemon is up. */
	if ((dc->status->timer = event_new(s->base, -1, EV_PERSIST, on_timer, dc)) == NULL ||
	    event_add(dc->status->timer, &tv) < 0 ||
	    (dc->status->first = evtimer_new(s->base, on_first, dc)) == NULL ||
	    evtimer_add(dc->status->first, &now) < 0) {
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
	if (st->first)
		event_free(st->first);
	unlink(st->path);
	free(st->path);
	free(st);
	dc->status = NULL;
}
