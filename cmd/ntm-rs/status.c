/*
 * status.c - the daemon writes state_dir/status.json (mode 0600, by
 * rename) every second; `ntm-rs status [--json]` prints it. A local file
 * needs no signature and works while the HTTPS side is busy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "probe.h"
#include "prom.h"
#include "rs.h"

#define STATUS_READ_MAX	(4 * 1024 * 1024)
#define STALE_S		5	/* older than this: the daemon is not updating it */

struct walk {
	json_t	*arr;
	json_t	*dcs;		/* DC name -> sessions it opened (all, not only listed) */
	json_t	*accts;		/* DC name / account id -> sessions it opened (v2) */
	size_t	 total;
};

static json_t *
side_json(const struct ntm_relay_side_info *si)
{
	char a[64], l[64];

	if (!si->bound)
		return json_pack("{s:b}", "bound", 0);
	ntm_sa_str((const struct sockaddr *)&si->addr, a, sizeof(a));
	if (si->locallen)
		ntm_sa_str((const struct sockaddr *)&si->local, l, sizeof(l));
	else
		snprintf(l, sizeof(l), "?");
	return json_pack("{s:b, s:s, s:s, s:I, s:I, s:I, s:s}", "bound", 1,
	    "addr", a, "local", l, "packets", (json_int_t)si->packets,
	    "bytes", (json_int_t)si->bytes, "expires", (json_int_t)si->expires,
	    "dc", si->dc);
}

static void
on_session(const struct ntm_relay_sess_info *s, void *arg)
{
	struct walk *w = arg;
	char hex[2 * NTM_TUNNEL_ID_LEN + 1], acct[2 * NTM_TICKET_ACCOUNT_LEN + 1];
	char key[NTM_NAME_MAX + 1 + sizeof(acct)];

	json_object_set_new(w->dcs, s->dc,
	    json_integer(json_integer_value(json_object_get(w->dcs, s->dc)) + 1));
	/* The account as the RS knows it: an id the DC made, not a name. */
	acct[0] = '\0';
	if (s->ticket_version == NTM_TICKET_V2 &&
	    ntm_hex_encode(acct, sizeof(acct), s->account, NTM_TICKET_ACCOUNT_LEN) >= 0) {
		snprintf(key, sizeof(key), "%s/%s", s->dc, acct);
		json_object_set_new(w->accts, key,
		    json_integer(json_integer_value(json_object_get(w->accts, key)) + 1));
	}
	if (w->total++ >= RS_STATUS_MAX_SESSIONS)
		return;
	if (ntm_hex_encode(hex, sizeof(hex), s->tunnel_id, NTM_TUNNEL_ID_LEN) < 0)
		return;
	json_array_append_new(w->arr, json_pack("{s:s, s:s, s:i, s:o, s:I, s:I, s:[o,o]}",
	    "tunnel_id", hex, "dc", s->dc, "ticket_version", s->ticket_version,
	    "account", acct[0] ? json_string(acct) : json_null(),
	    "idle_s", (json_int_t)(s->idle_ms / 1000), "age_s", (json_int_t)(s->age_ms / 1000),
	    "sides", side_json(&s->side[0]), side_json(&s->side[1])));
}

/* The limits and counters of ticket checks under attack: added to the
 * objects "limits" and "counters". */
static int
status_binds(json_t *root, const struct srv *s, const struct ntm_relay_stats *st)
{
	json_t *lim = json_object_get(root, "limits"), *c = json_object_get(root, "counters");
	const struct {
		json_t		*o;
		const char	*k;
		long long	 v;
	} kv[] = {
		{ lim, "bind_rate", s->conf.bind_rate },
		{ lim, "bind_rate_source", s->conf.bind_rate_source },
		{ lim, "bind_rate_prefix", s->conf.bind_rate_prefix },
		{ lim, "client_sessions", s->conf.client_sessions },
		{ lim, "account_sessions", s->conf.account_sessions },
		{ lim, "dc_session_share", s->conf.dc_session_share },
		{ c, "ticket_checks", (long long)st->ticket_checks },
		{ c, "ticket_cache_hits", (long long)st->ticket_cache_hits },
		{ c, "cookies_sent", (long long)st->cookies_sent },
		{ c, "cookie_binds", (long long)st->cookie_binds },
		{ c, "bad_cookies", (long long)st->bad_cookies },
		{ c, "notifies", (long long)st->notifies },
	};

	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		if (kv[i].o == NULL ||
		    json_object_set_new(kv[i].o, kv[i].k, json_integer(kv[i].v)) < 0)
			return -1;
	return 0;
}

int
rs_status_write(struct rs *rs)
{
	struct srv *s = rs->srv;
	struct ntm_relay_stats st;
	struct walk w = { NULL, NULL, NULL, 0 };
	json_t *root = NULL, *drops, *udp;
	char *text = NULL, *tmp = NULL;
	int fd = -1, ret = -1, i;
	size_t len;

	ntm_relay_get_stats(rs->relay, &st);
	if ((w.arr = json_array()) == NULL || (w.dcs = json_object()) == NULL ||
	    (w.accts = json_object()) == NULL || (drops = json_object()) == NULL)
		goto cleanup;
	for (i = 0; i < NTM_RELAY_DROP__N; i++)
		json_object_set_new(drops, ntm_relay_drop_name(i), json_integer((json_int_t)st.drops[i]));
	ntm_relay_walk(rs->relay, rs_now_ms(), on_session, &w);
	udp = json_array();
	for (i = 0; i < rs->nsocks; i++)
		json_array_append_new(udp, json_string(rs->socks[i].name));
	root = json_pack("{s:s, s:s, s:i, s:I, s:I, s:o,"
	    " s:{s:I, s:I, s:I, s:I},"
	    " s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:b},"
	    " s:I, s:b, s:o}",
	    "role", "rs", "name", s->conf.name, "pid", (int)getpid(),
	    "time", (json_int_t)now_unix(), "uptime", (json_int_t)(now_unix() - s->started),
	    "udp", udp,
	    "limits", "max_sessions", (json_int_t)s->conf.max_sessions,
	    "idle_timeout_s", (json_int_t)s->conf.idle_timeout_s,
	    "session_pps", (json_int_t)s->conf.session_pps, "bind_pps", (json_int_t)s->conf.bind_rate,
	    "counters", "rx_packets", (json_int_t)st.rx_packets,
	    "rx_bytes", (json_int_t)st.rx_bytes, "forwarded_packets", (json_int_t)st.fwd_packets,
	    "forwarded_bytes", (json_int_t)st.fwd_bytes, "binds", (json_int_t)st.binds,
	    "sessions_created", (json_int_t)st.sessions_created,
	    "sessions_expired", (json_int_t)st.sessions_expired,
	    "send_errors", (json_int_t)rs->send_errors,
	    "recv_errors", (json_int_t)rs->recv_errors, "drops", drops,
	    "gso_sends", (json_int_t)rs->gso_sends, "gro_recvs", (json_int_t)rs->gro_recvs,
	    "gso", !rs->gso_off,
	    "sessions_total", (json_int_t)st.sessions,
	    "sessions_truncated", w.total > RS_STATUS_MAX_SESSIONS,
	    "sessions", w.arr);
	w.arr = NULL;		/* stolen (or freed) by json_pack */
	if (root == NULL)
		goto cleanup;
	if (status_binds(root, s, &st) < 0 || json_object_set(root, "dc_sessions", w.dcs) < 0 ||
	    json_object_set(root, "account_sessions", w.accts) < 0)
		goto cleanup;
	{
		struct ntm_probe_stats ps;
		json_t *cn = json_object_get(root, "counters"), *alt = json_array();

		for (i = 0; i < rs->nsocks; i++)
			if (rs->socks[i].alt_fd >= 0)
				json_array_append_new(alt, json_string(rs->socks[i].alt_name));

		memset(&ps, 0, sizeof(ps));
		if (rs->probe)
			ntm_probe_srv_stats(rs->probe, &ps);
		if (json_object_set_new(cn, "probes_answered", json_integer((json_int_t)ps.answered)) < 0 ||
		    json_object_set_new(cn, "probes_alt_answered",
		    json_integer((json_int_t)ps.alt_answered)) < 0 ||
		    json_object_set_new(root, "probe_alt", alt) < 0 ||
		    json_object_set_new(cn, "probes_alt_addr_answered",
		    json_integer((json_int_t)ps.alt_addr_answered)) < 0 ||
		    json_object_set_new(root, "probe_alt_addr", rs->altaddr_fd >= 0 ?
		    json_string(rs->altaddr_name) : json_null()) < 0 ||
		    json_object_set_new(cn, "probes_limited", json_integer((json_int_t)ps.limited)) < 0 ||
		    json_object_set_new(cn, "probes_malformed",
		    json_integer((json_int_t)(ps.malformed + rs->probes_off))) < 0 ||
		    json_object_set_new(json_object_get(root, "limits"), "probe_rate",
		    json_integer((json_int_t)s->conf.probe_rate)) < 0)
			goto cleanup;
	}
	if ((text = json_dumps(root, JSON_COMPACT)) == NULL)
		goto cleanup;
	len = strlen(text);
	/* Written often: temp file + rename, without fsync (it is rebuilt
	 * every second and means nothing after a crash). */
	tmp = xasprintf("%s.tmp", rs->status_path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		goto cleanup;
	if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
		goto cleanup;
	if (close(fd) < 0) {
		fd = -1;
		goto cleanup;
	}
	fd = -1;
	if (rename(tmp, rs->status_path) < 0)
		goto cleanup;
	ret = 0;
cleanup:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	json_decref(w.arr);
	json_decref(w.dcs);
	json_decref(w.accts);
	json_decref(root);
	free(text);
	free(tmp);
	return ret;
}

/* ---- GET /metrics: the same counters ----------------------------------------- */

void
rs_metrics(struct srv *s, struct ntm_prom *p)
{
	struct rs *rs = s->priv;
	struct ntm_relay_stats st;
	const struct {
		const char	*name;
		int		 type;
		const char	*help;
		int64_t		 v;
	} rows[] = {
		{ "ntm_rs_sessions", NTM_PROM_GAUGE, "Relay sessions now", 0 },
		{ "ntm_rs_max_sessions", NTM_PROM_GAUGE, "Relay sessions allowed (max_sessions)",
		  s->conf.max_sessions },
		{ "ntm_rs_sessions_created_total", NTM_PROM_COUNTER, "Relay sessions opened", 0 },
		{ "ntm_rs_sessions_expired_total", NTM_PROM_COUNTER,
		  "Relay sessions ended idle or expired", 0 },
		{ "ntm_rs_received_packets_total", NTM_PROM_COUNTER, "Datagrams received", 0 },
		{ "ntm_rs_received_bytes_total", NTM_PROM_COUNTER, "Bytes received", 0 },
		{ "ntm_rs_forwarded_packets_total", NTM_PROM_COUNTER, "Datagrams relayed", 0 },
		{ "ntm_rs_forwarded_bytes_total", NTM_PROM_COUNTER, "Bytes relayed", 0 },
		{ "ntm_rs_binds_total", NTM_PROM_COUNTER, "Relay binds accepted", 0 },
		{ "ntm_rs_ticket_checks_total", NTM_PROM_COUNTER, "Relay tickets verified", 0 },
		{ "ntm_rs_ticket_cache_hits_total", NTM_PROM_COUNTER,
		  "Relay tickets known from an earlier check", 0 },
		{ "ntm_rs_cookies_sent_total", NTM_PROM_COUNTER, "Cookies sent under load", 0 },
		{ "ntm_rs_send_errors_total", NTM_PROM_COUNTER, "Datagrams the socket refused", 0 },
	};
	int64_t v[sizeof(rows) / sizeof(rows[0])];
	size_t i;

	if (rs == NULL || rs->relay == NULL)
		return;
	ntm_relay_get_stats(rs->relay, &st);
	v[0] = (int64_t)st.sessions;
	v[1] = rows[1].v;
	v[2] = (int64_t)st.sessions_created;
	v[3] = (int64_t)st.sessions_expired;
	v[4] = (int64_t)st.rx_packets;
	v[5] = (int64_t)st.rx_bytes;
	v[6] = (int64_t)st.fwd_packets;
	v[7] = (int64_t)st.fwd_bytes;
	v[8] = (int64_t)st.binds;
	v[9] = (int64_t)st.ticket_checks;
	v[10] = (int64_t)st.ticket_cache_hits;
	v[11] = (int64_t)st.cookies_sent;
	v[12] = (int64_t)rs->send_errors;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ntm_prom_family(p, rows[i].name, rows[i].type, rows[i].help);
		ntm_prom_int(p, NULL, v[i]);
	}
	ntm_prom_family(p, "ntm_rs_dropped_total", NTM_PROM_COUNTER,
	    "Datagrams dropped, by reason");
	for (i = 0; i < NTM_RELAY_DROP__N; i++)
		ntm_prom_int(p, (const char *const[]){ "reason", ntm_relay_drop_name((int)i),
		    NULL }, (int64_t)st.drops[i]);
}

/* ---- ntm-rs status ------------------------------------------------------- */

static int64_t
jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static const char *
jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "-";
}

static void
print_human(json_t *st, int64_t age)
{
	json_t *c = json_object_get(st, "counters"), *lim = json_object_get(st, "limits");
	json_t *drops = json_object_get(c, "drops"), *v, *sess, *udp;
	const char *k;
	size_t i;

	printf("rs %s  pid %lld  up %llds", jstr(st, "name"), (long long)jint(st, "pid"),
	    (long long)jint(st, "uptime"));
	if (age > STALE_S)
		printf("  (status %llds old: is the daemon running?)", (long long)age);
	printf("\nudp");
	udp = json_object_get(st, "udp");
	if (json_array_size(udp) == 0)
		printf(" -");
	json_array_foreach(udp, i, v)
		printf(" %s", json_string_value(v));
	printf("  probes' other port");
	udp = json_object_get(st, "probe_alt");
	if (json_array_size(udp) == 0)
		printf(" -");
	json_array_foreach(udp, i, v)
		printf(" %s", json_string_value(v));
	if (json_string_value(json_object_get(st, "probe_alt_addr")))
		printf("  probes' other address %s",
		    json_string_value(json_object_get(st, "probe_alt_addr")));
	printf("\nsessions %lld/%lld  idle timeout %llds  %lld packets/s per session\n",
	    (long long)jint(st, "sessions_total"), (long long)jint(lim, "max_sessions"),
	    (long long)jint(lim, "idle_timeout_s"), (long long)jint(lim, "session_pps"));
	printf("received %lld packets %lld bytes  forwarded %lld packets %lld bytes  "
	    "binds %lld\n", (long long)jint(c, "rx_packets"), (long long)jint(c, "rx_bytes"),
	    (long long)jint(c, "forwarded_packets"), (long long)jint(c, "forwarded_bytes"),
	    (long long)jint(c, "binds"));
	printf("ticket checks %lld (%lld/s, %lld/s per address, %lld/s per /24 or /56), "
	    "%lld known from before  cookies sent %lld  cookie binds %lld  bad cookies %lld\n",
	    (long long)jint(c, "ticket_checks"), (long long)jint(lim, "bind_rate"),
	    (long long)jint(lim, "bind_rate_source"), (long long)jint(lim, "bind_rate_prefix"),
	    (long long)jint(c, "ticket_cache_hits"), (long long)jint(c, "cookies_sent"), (long long)jint(c, "cookie_binds"),
	    (long long)jint(c, "bad_cookies"));
	printf("quotas %lld sessions per client address, %lld per account, "
	    "%lld%% of the sessions per DC", (long long)jint(lim, "client_sessions"),
	    (long long)jint(lim, "account_sessions"), (long long)jint(lim, "dc_session_share"));
	json_object_foreach(json_object_get(st, "dc_sessions"), k, v)
		printf("  %s %lld", k, (long long)json_integer_value(v));
	printf("\n");
	printf("drops");
	json_object_foreach(drops, k, v)
		printf(" %s %lld", k, (long long)json_integer_value(v));
	printf("  send_errors %lld\n", (long long)jint(c, "send_errors"));
	printf("probes answered %lld (%lld/s per address, %lld from the other port)",
	    (long long)jint(c, "probes_answered"), (long long)jint(lim, "probe_rate"),
	    (long long)jint(c, "probes_alt_answered"));
	if (json_string_value(json_object_get(st, "probe_alt_addr")))
		printf("  %lld from the other address",
		    (long long)jint(c, "probes_alt_addr_answered"));
	printf("  limited %lld  malformed %lld\n",
	    (long long)jint(c, "probes_limited"), (long long)jint(c, "probes_malformed"));

	sess = json_object_get(st, "sessions");
	if (json_array_size(sess) == 0)
		return;
	printf("\n%-16s  %-28s  %-28s  %10s %12s  %10s %12s  %5s\n", "TUNNEL",
	    "SIDE 0 (INITIATOR)", "SIDE 1 (RESPONDER)", "0>1 PKTS", "0>1 BYTES",
	    "1>0 PKTS", "1>0 BYTES", "IDLE");
	json_array_foreach(sess, i, v) {
		json_t *s0 = json_array_get(json_object_get(v, "sides"), 0);
		json_t *s1 = json_array_get(json_object_get(v, "sides"), 1);
		char tid[17];

		snprintf(tid, sizeof(tid), "%s", jstr(v, "tunnel_id"));
		printf("%-16s  %-28s  %-28s  %10lld %12lld  %10lld %12lld  %4llds\n", tid,
		    json_is_true(json_object_get(s0, "bound")) ? jstr(s0, "addr") : "(unbound)",
		    json_is_true(json_object_get(s1, "bound")) ? jstr(s1, "addr") : "(unbound)",
		    (long long)jint(s0, "packets"), (long long)jint(s0, "bytes"),
		    (long long)jint(s1, "packets"), (long long)jint(s1, "bytes"),
		    (long long)jint(v, "idle_s"));
	}
	if (json_is_true(json_object_get(st, "sessions_truncated")))
		printf("(first %zu sessions shown)\n", json_array_size(sess));
}

struct status_args {
	int	json;
};

static int
status_exec(void *ctx, struct cmd_call *c)
{
	struct srv *s = ctx;
	const struct status_args *a = c->args;
	struct ntm_jerr jerr;
	json_t *st;
	char *path, *text = NULL;
	size_t len;
	int json = a->json, e, ret = 1;
	int64_t age;

	path = xasprintf("%s/%s", s->conf.state_dir, RS_STATUS_FILE);
	if ((e = ntm_file_read(path, STATUS_READ_MAX, &text, &len)) < 0) {
		if (e == NTM_ERR_NOTFOUND || (e == NTM_ERR_IO && errno == ENOENT))
			srv_errx("%s: no status: is ntm-rs running with this configuration (%s)?",
			    path, s->conf.path);
		else
			srv_errx("%s: %s", path, e == NTM_ERR_IO ? strerror(errno) : ntm_strerror(e));
		goto cleanup;
	}
	if ((st = ntm_json_parse(text, len, &jerr)) == NULL) {
		srv_errx("%s: %s", path, jerr.message);
		goto cleanup;
	}
	age = now_unix() - jint(st, "time");
	if (json) {
		fwrite(text, 1, len, stdout);
	} else
		print_human(st, age);
	json_decref(st);
	if (age > STALE_S && json)
		srv_errx("%s is %llds old: is the daemon running?", path, (long long)age);
	ret = fflush(stdout) == 0 ? 0 : 1;
cleanup:
	free(text);
	free(path);
	return ret;
}

static const struct cmd_opt status_opts[] = {
	SRV_OPT_JSON(struct status_args),
	SRV_OPT_HELP,
	SRV_OPT_END
};

const struct cmd_entry rs_status_entry = {
	.name = "status",
	.summary = "show the running daemon's relay sessions and counters",
	.usage = "",
	.opts = status_opts,
	.max = 0,
	.args_size = sizeof(struct status_args),
	.exec = status_exec,
};
