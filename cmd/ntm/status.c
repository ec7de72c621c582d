/*
 * status.c - ntm status: the saved session, whether the DC still holds it
 * (GET /v1/session, unless --offline), the agent, and the peers it has
 * tunnels with (the agent's tunnel list), like `tailscale status`. With
 * --metrics, the agent's counters in the Prometheus text format instead
 * (for node_exporter's textfile collector, or a scrape through a pipe).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common.h"
#include "identity.h"
#include "ntm-cli.h"
#include "agent.h"
#include "prom.h"

#define STATUS_METRICS_MAX	(1024 * 1024)	/* bytes of --metrics text */

struct status_args {
	int	offline;
	long	timeout;
	int	json;
	int	metrics;
};

static const struct cmd_opt status_opts[] = {
	{ .name = "offline", .help = "do not ask the DC; show the saved session only",
	  .type = CMD_FLAG, .off = offsetof(struct status_args, offline) },
	{ .name = "metrics", .help = "print the agent's counters in the Prometheus text "
	  "format (nothing else; no DC asked)", .type = CMD_FLAG,
	  .off = offsetof(struct status_args, metrics) },
	CLI_OPT_TIMEOUT(struct status_args, CLI_TIMEOUT_HELP),
	CLI_OPT_JSON(struct status_args, "print the result as one JSON object"),
	CLI_OPT_HELP,
	CLI_OPT_END
};

/* "2025-06-01 12:00:00 UTC (in 11h59m)" */
static void
fmt_expiry(char *buf, size_t len, int64_t t, int64_t now)
{
	char date[32];
	time_t tt = (time_t)t;
	struct tm tm;
	int64_t d = t > now ? t - now : now - t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(date, sizeof(date), "%lld", (long long)t);
	if (t > now)
		snprintf(buf, len, "%s (in %lldh%02lldm)", date, (long long)(d / 3600),
		    (long long)(d % 3600 / 60));
	else
		snprintf(buf, len, "%s (expired %lldh%02lldm ago)", date,
		    (long long)(d / 3600), (long long)(d % 3600 / 60));
}

/* "1.5 KiB" */
static void
fmt_bytes(char *buf, size_t len, json_int_t n)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, len, "%lld B", (long long)n);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[u]);
}

static void
fmt_age(char *buf, size_t len, json_t *v)
{
	json_int_t s = json_integer_value(v);

	if (!json_is_integer(v))
		snprintf(buf, len, "never");
	else if (s < 120)
		snprintf(buf, len, "%llds ago", (long long)s);
	else if (s < 7200)
		snprintf(buf, len, "%lldm ago", (long long)(s / 60));
	else
		snprintf(buf, len, "%lldh ago", (long long)(s / 3600));
}

/*
 * The peers this device has tunnels with, from the agent's tunnel list:
 * new array (empty when no agent runs). A peer is online while its tunnel
 * is up: the tunnel core declares it dead when the peer stops answering.
 */
static json_t *
peers_json(const struct cli *cli)
{
	json_t *r = ctl_call(cli, json_pack("{s:s}", "cmd", "list"), 3000), *out = json_array();
	json_t *t;
	size_t i;

	if (r == NULL || !json_is_true(json_object_get(r, "ok"))) {
		json_decref(r);
		return out;
	}
	json_array_foreach(json_object_get(r, "tunnels"), i, t) {
		const char *state = json_string_value(json_object_get(t, "state"));

		json_array_append_new(out, json_pack("{s:O?, s:O?, s:O?, s:b, s:O?, s:O?, s:O?,"
		    " s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}",
		    "peer", json_object_get(t, "peer"),
		    "vip4", json_object_get(t, "peer_vip4"),
		    "vip6", json_object_get(t, "peer_vip6"),
		    "online", state && strcmp(state, "up") == 0,
		    "state", json_object_get(t, "state"),
		    "route", json_object_get(t, "route"),
		    "reason", json_object_get(t, "reason"),
		    "family", json_object_get(t, "family"),
		    "endpoint", json_object_get(t, "endpoint"),
		    "last_handshake_s", json_object_get(t, "last_handshake_s"),
		    "last_rx_s", json_object_get(t, "last_rx_s"),
		    "rx_bytes", json_object_get(t, "rx_bytes"),
		    "tx_bytes", json_object_get(t, "tx_bytes"),
		    "rtt_ms", json_object_get(t, "rtt_ms")));
	}
	json_decref(r);
	return out;
}

#define PEER_COLS	9

/* One table, columns as wide as their widest cell. */
static void
print_peers(json_t *peers)
{
	static const char *const head[PEER_COLS] = { "PEER", "VIP4", "VIP6", "STATE",
	    "ROUTE", "HANDSHAKE", "RX", "TX", "RTT" };
	size_t n = json_array_size(peers), w[PEER_COLS], i, k;
	char (*cell)[PEER_COLS][128];
	json_t *p;

	if (n == 0) {
		printf("peers: none (no tunnels)\n");
		return;
	}
	if ((cell = calloc(n + 1, sizeof(*cell))) == NULL)
		fatal("calloc");
	for (k = 0; k < PEER_COLS; k++)
		snprintf(cell[0][k], sizeof(cell[0][k]), "%s", head[k]);
	json_array_foreach(peers, i, p) {
		char (*c)[128] = cell[i + 1];
		json_t *rtt = json_object_get(p, "rtt_ms");

#define S(k) (json_string_value(json_object_get(p, k)) ? \
	json_string_value(json_object_get(p, k)) : "-")
		snprintf(c[0], sizeof(c[0]), "%s", S("peer"));
		snprintf(c[1], sizeof(c[1]), "%s", S("vip4"));
		snprintf(c[2], sizeof(c[2]), "%s", S("vip6"));
		snprintf(c[3], sizeof(c[3]), "%s",
		    json_is_true(json_object_get(p, "online")) ? "online" :
		    strcmp(S("state"), "dead") == 0 ? "offline" : S("state"));
		if (json_is_string(json_object_get(p, "family")))
			snprintf(c[4], sizeof(c[4]), "%s over %s (%s)", S("route"), S("family"),
			    S("reason"));
		else
			snprintf(c[4], sizeof(c[4]), "%s (%s)", S("route"), S("reason"));
		fmt_age(c[5], sizeof(c[5]), json_object_get(p, "last_handshake_s"));
		fmt_bytes(c[6], sizeof(c[6]), json_integer_value(json_object_get(p, "rx_bytes")));
		fmt_bytes(c[7], sizeof(c[7]), json_integer_value(json_object_get(p, "tx_bytes")));
		if (json_is_number(rtt))
			snprintf(c[8], sizeof(c[8]), "%.3f ms", json_number_value(rtt));
		else
			snprintf(c[8], sizeof(c[8]), "-");
#undef S
	}
	for (k = 0; k < PEER_COLS; k++) {
		w[k] = 0;
		for (i = 0; i <= n; i++)
			if (strlen(cell[i][k]) > w[k])
				w[k] = strlen(cell[i][k]);
	}
	printf("peers:\n");
	for (i = 0; i <= n; i++) {
		printf("  ");
		for (k = 0; k < PEER_COLS; k++)
			if (k == PEER_COLS - 1)
				printf("%s\n", cell[i][k]);
			else
				printf("%-*s  ", (int)w[k], cell[i][k]);
	}
	free(cell);
}

/* The session and what the DC said, as one JSON object with the agent's. */
static void
status_json(struct cli *cli, const struct session *s, int expired, const char *dc_status,
    const char *msg)
{
	json_t *out;

	out = json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:s}",
	    "logged_in", 1, "user", s->user, "fqdn", s->fqdn, "vip4", s->vip4,
	    "vip6", s->vip6, "domain", s->domain, "dc_url", s->dc_url,
	    "device", s->device, "session_id", s->session_id,
	    "token_expires", (json_int_t)s->token_expires, "token_expired", expired,
	    "dc_status", dc_status);
	if (out && *msg)
		json_object_set_new(out, "dc_error", json_string(msg));
	if (out) {
		char fp[NTM_DFP_LEN], ak[NTM_B64_LEN(NTM_SIGN_PK)];
		int pinned;

		id_summary(cli, fp, ak, &pinned);
		json_object_set_new(out, "device_fingerprint", *fp ? json_string(fp) : json_null());
		json_object_set_new(out, "as_key", *ak ? json_string(ak) : json_null());
		json_object_set_new(out, "as_key_from", *ak ? json_string(pinned ? "pinned" :
		    "ntm.conf") : json_null());
	}
	if (out) {
		json_t *ag = agent_status_json(cli);

		json_object_set_new(out, "agent", ag ? ag : json_null());
		json_object_set_new(out, "peers", peers_json(cli));
	}
	cli_print_json(out);
}

/* "dc: ..." in green when live, red when not. */
static void
print_dc(const char *dc_status, const char *msg)
{
	const char *c_on = "", *c_off = "";

	if (use_color(STDOUT_FILENO)) {
		c_on = strcmp(dc_status, "live") == 0 ? "\033[32m" :
		    strcmp(dc_status, "skipped") == 0 ? "" : "\033[31m";
		c_off = *c_on ? "\033[0m" : "";
	}
	if (strcmp(dc_status, "live") == 0)
		printf("dc: %sreachable, session live%s\n", c_on, c_off);
	else if (strcmp(dc_status, "ended") == 0)
		printf("dc: %ssession ended%s\n", c_on, c_off);
	else if (strcmp(dc_status, "unreachable") == 0)
		printf("dc: %sunreachable (%s)%s\n", c_on, msg, c_off);
	else if (strcmp(dc_status, "untrusted_certificate") == 0)
		printf("dc: %suntrusted certificate (%s)%s\n", c_on, msg, c_off);
	else if (strcmp(dc_status, "error") == 0)
		printf("dc: %serror (%s)%s\n", c_on, msg, c_off);
	else
		printf("dc: not asked (--offline)\n");
}

/* "agent: ..." and, when it runs, its peers. */
static void
print_agent(struct cli *cli)
{
	json_t *ag = agent_status_json(cli), *reg = json_object_get(ag, "registration");
	json_t *peers;

	if (ag == NULL) {
		printf("agent: not running\n");
		return;
	}
	printf("agent: running (pid %lld, UDP port %lld, %lld tunnels), %s%s\n",
	    (long long)json_integer_value(json_object_get(ag, "pid")),
	    (long long)json_integer_value(json_object_get(ag, "port")),
	    (long long)json_integer_value(json_object_get(ag, "tunnels")),
	    json_is_true(json_object_get(reg, "registered")) ?
	    "registered, reflexive " : "not registered yet",
	    json_is_true(json_object_get(reg, "registered")) ?
	    json_string_value(json_object_get(reg, "reflexive")) : "");
	if (json_is_object(json_object_get(ag, "socks5")))
		printf("socks5: %s\n", json_string_value(json_object_get(
		    json_object_get(ag, "socks5"), "listen")));
	if (json_is_object(json_object_get(ag, "tun")))
		printf("tun: %s (TUN mode: the vIPs are on this interface)\n",
		    json_string_value(json_object_get(json_object_get(ag, "tun"),
		    "name")));
	peers = peers_json(cli);
	print_peers(peers);
	json_decref(peers);
	json_decref(ag);
}

static void
status_text(struct cli *cli, const struct session *s, const char *dc_status,
    const char *msg, int64_t now)
{
	char expiry[96];

	fmt_expiry(expiry, sizeof(expiry), s->token_expires, now);
	printf("user: %s\n", s->user);
	printf("fqdn: %s\n", s->fqdn);
	printf("vip4: %s\n", s->vip4);
	printf("vip6: %s\n", s->vip6);
	printf("domain: %s\n", s->domain);
	printf("dc_url: %s\n", s->dc_url);
	printf("device: %s\n", s->device);
	printf("session_id: %s\n", s->session_id);
	printf("token_expires: %s\n", expiry);
	{
		char fp[NTM_DFP_LEN], ak[NTM_B64_LEN(NTM_SIGN_PK)];
		int pinned;

		id_summary(cli, fp, ak, &pinned);
		printf("device_key: %s\n", *fp ? fp : "none (log in again)");
		printf("as_key: %s%s\n", *ak ? ak : "none", *ak ? pinned ?
		    " (pinned at the first login)" : " (ntm.conf)" : "");
	}
	print_dc(dc_status, msg);
	print_agent(cli);
}

/* ---- --metrics --------------------------------------------------------------- */

#define C	NTM_PROM_COUNTER
#define G	NTM_PROM_GAUGE
static const struct json_metric agent_rows[] = {
	{ "uptime_s", "ntm_agent_uptime_seconds", G, "Seconds since the agent started", NULL },
	{ "rx_datagrams", "ntm_agent_rx_datagrams_total", C, "Datagrams received", NULL },
	{ "tx_datagrams", "ntm_agent_tx_datagrams_total", C, "Datagrams sent", NULL },
	{ "send_errors", "ntm_agent_send_errors_total", C, "Datagrams the socket refused", NULL },
	{ "reg_sent", "ntm_agent_registrations_sent_total", C,
	  "Registrations and keepalives sent to the DC", NULL },
	{ "reg_resps", "ntm_agent_registration_answers_total", C,
	  "Registration answers from the DC", NULL },
	{ "nudges", "ntm_agent_nudges_total", C, "Nudges from the DC", NULL },
	{ "moved", "ntm_agent_moved_total", C, "MOVED notices from the DC", NULL },
	{ "directions", "ntm_agent_directions_total", C, "Route directions received", NULL },
	{ "dropped", "ntm_agent_dropped_total", C, "Datagrams dropped, by reason", "reason" },
	{ "inner_dropped", "ntm_agent_inner_dropped_total", C,
	  "Packets from tunnels dropped inside (not for this vIP, refused)", NULL },
	{ "echo_answered", "ntm_agent_echo_answered_total", C, "Pings to the vIPs answered",
	  NULL },
	{ "net_changes", "ntm_agent_net_changes_total", C, "Local address changes seen", NULL },
	{ "tunnels_never_up", "ntm_agent_tunnels_never_up_total", C,
	  "Tunnels removed because their handshake never completed", NULL },
	{ "tunnels_refused", "ntm_agent_tunnels_refused_total", C,
	  "Tunnels peers opened to this device that --accept refused", NULL },
	{ "tunnels_remade", "ntm_agent_tunnels_remade_total", C,
	  "New tunnels asked for because the peer went silent (it restarted)", NULL },
};
static const struct json_metric reg_rows[] = {
	{ "keepalive_s", "ntm_agent_keepalive_seconds", G, "Keepalive interval", NULL },
	{ "missed", "ntm_agent_registration_missed", G,
	  "Keepalives in a row the DC has not answered", NULL },
};
#undef C
#undef G

/* Per tunnel, labelled by peer and route: its counters from the list. */
static void
tunnel_metrics(struct ntm_prom *p, json_t *tunnels)
{
	static const struct {
		const char	*key, *name, *help;
	} rows[] = {
		{ "rx_bytes", "ntm_agent_tunnel_rx_bytes_total", "Bytes received in a tunnel" },
		{ "tx_bytes", "ntm_agent_tunnel_tx_bytes_total", "Bytes sent in a tunnel" },
		{ "rx_packets", "ntm_agent_tunnel_rx_packets_total",
		  "Packets received in a tunnel" },
		{ "tx_packets", "ntm_agent_tunnel_tx_packets_total", "Packets sent in a tunnel" },
		{ "dropped", "ntm_agent_tunnel_dropped_total",
		  "Packets of a tunnel dropped (forged, replayed, malformed)" },
		{ "handshakes", "ntm_agent_tunnel_handshakes_total", "Handshakes of a tunnel" },
	};
	static const char *const routes[] = { "direct", "local", "relay" };
	json_t *t;
	size_t i, k, r;

	for (k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
		ntm_prom_family(p, rows[k].name, NTM_PROM_COUNTER, rows[k].help);
		json_array_foreach(tunnels, i, t) {
			const char *peer = json_string_value(json_object_get(t, "peer"));
			const char *route = json_string_value(json_object_get(t, "route"));

			ntm_prom_int(p, (const char *const[]){ "peer", peer ? peer : "",
			    "route", route ? route : "", NULL },
			    (int64_t)json_integer_value(json_object_get(t, rows[k].key)));
		}
	}
	/* Tunnels by route, and how many of them are up. */
	ntm_prom_family(p, "ntm_agent_tunnels", NTM_PROM_GAUGE,
	    "Tunnels by route, and whether they are up (handshake done, peer answering)");
	for (r = 0; r < sizeof(routes) / sizeof(routes[0]); r++) {
		int64_t n = 0, up = 0;

		json_array_foreach(tunnels, i, t) {
			const char *route = json_string_value(json_object_get(t, "route"));
			const char *state = json_string_value(json_object_get(t, "state"));

			if (route == NULL || strcmp(route, routes[r]) != 0)
				continue;
			n++;
			up += state && strcmp(state, "up") == 0;
		}
		ntm_prom_int(p, (const char *const[]){ "route", routes[r], "state", "up",
		    NULL }, up);
		ntm_prom_int(p, (const char *const[]){ "route", routes[r], "state", "not_up",
		    NULL }, n - up);
	}
}

/* ntm status --metrics: the agent's list (its status and tunnels), as text. */
static int
status_metrics(struct cli *cli)
{
	json_t *r = ctl_call(cli, json_pack("{s:s}", "cmd", "list"), 3000), *ag, *reg;
	struct ntm_prom p;
	const char *text, *fqdn;
	size_t len;
	int e, ret = EXIT_FAIL;

	if (r == NULL) {
		cli_err("status", "no agent running (start it with 'ntm up')");
		return EXIT_NOAGENT;
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		ret = ctl_fail("status", r);
		json_decref(r);
		return ret;
	}
	ag = json_object_get(r, "agent");
	reg = json_object_get(ag, "registration");
	fqdn = json_string_value(json_object_get(ag, "fqdn"));
	ntm_prom_init(&p, STATUS_METRICS_MAX);
	ntm_prom_family(&p, "ntm_agent_info", NTM_PROM_GAUGE,
	    "This agent: its device's FQDN and the version (always 1)");
	ntm_prom_int(&p, (const char *const[]){ "fqdn", fqdn ? fqdn : "", "version",
	    NTM_VERSION, NULL }, 1);
	ntm_prom_family(&p, "ntm_agent_registered", NTM_PROM_GAUGE,
	    "1 while the DC answers the registrations (online), else 0");
	ntm_prom_int(&p, NULL, json_is_true(json_object_get(reg, "registered")));
	json_metrics(&p, ag, agent_rows, sizeof(agent_rows) / sizeof(agent_rows[0]));
	json_metrics(&p, reg, reg_rows, sizeof(reg_rows) / sizeof(reg_rows[0]));
	tunnel_metrics(&p, json_object_get(r, "tunnels"));
	if ((e = ntm_prom_end(&p, &text, &len)) < 0)
		cli_err("status", "cannot write the metrics: %s", ntm_strerror(e));
	else if (fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0)
		ret = EXIT_OK;
	ntm_prom_free(&p);
	json_decref(r);
	return ret;
}

static int
status_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	const struct status_args *a = c->args;
	struct session s;
	char url[NTM_URL_MAX + 16], errmsg[256] = "", msg[768] = "", lerr[512];
	const char *dc_status = "skipped";
	json_t *resp = NULL;
	long status = 0;
	int64_t now = now_unix();
	int err, expired, ret;

	if (a->metrics && a->json) {
		cli_err("status", "--metrics and --json: choose one");
		return EXIT_USAGE;
	}
	if (a->metrics)
		return status_metrics(cli);
	memset(&s, 0, sizeof(s));
	if ((err = session_load(cli, &s, lerr, sizeof(lerr))) == NTM_ERR_NOTFOUND) {
		if (a->json)
			cli_print_json(json_pack("{s:b}", "logged_in", 0));
		else
			printf("not logged in\n");
		return EXIT_NOSESSION;
	} else if (err < 0) {
		cli_err("status", "%s", lerr);
		return EXIT_FAIL;
	}
	expired = s.token_expires <= now;
	ret = expired ? EXIT_NOSESSION : EXIT_OK;

	if (!a->offline) {
		snprintf(url, sizeof(url), "%s/v1/session", s.dc_url);
		log_info("GET %s", url);
		err = ntm_https_call(s.ca_file, "GET", url, NULL, s.token,
		    cli_timeout(cli, a->timeout) * 1000, &status, &resp, errmsg, sizeof(errmsg));
		if (err == 0 && status == 200) {
			dc_status = "live";
		} else if (err == 0 && status == 401) {
			dc_status = "ended";
			ret = EXIT_NOSESSION;
		} else {
			ret = cli_http_error(msg, sizeof(msg), s.dc_url, err, status, resp,
			    errmsg);
			dc_status = ret == EXIT_UNREACH ? "unreachable" :
			    ret == EXIT_UNTRUSTED ? "untrusted_certificate" : "error";
		}
	}
	if (a->json)
		status_json(cli, &s, expired, dc_status, msg);
	else
		status_text(cli, &s, dc_status, msg, now);
	json_decref(resp);
	session_free(&s);
	return ret;
}

const struct cmd_entry status_entry = {
	.name = "status",
	.summary = "show the session and whether the DC still holds it",
	.usage = "",
	.opts = status_opts,
	.max = 0,
	.args_size = sizeof(struct status_args),
	.exec = status_exec,
};
