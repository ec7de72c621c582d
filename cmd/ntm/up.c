/*
 * up.c - ntm up: start the agent (agent.c), detached unless -d.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "agent.h"
#include "fw.h"

struct up_args {
	struct agent_opts	o;
	long			timeout;
};

#define UP(f)	offsetof(struct up_args, o.f)

/* --socks5 ADDR:PORT, or "off": none, and forget the saved one. */
static int
set_socks5(void *args, const struct cmd_opt *opt, const char *v)
{
	struct agent_opts *o = &((struct up_args *)args)->o;

	(void)opt;
	o->socks5_off = strcmp(v, "off") == 0;
	o->socks5 = o->socks5_off ? NULL : v;
	return 0;
}

static int
set_tun(void *args, const struct cmd_opt *opt, const char *v)
{
	(void)opt;
	(void)v;
	((struct up_args *)args)->o.tun = "ntm0";
	return 0;
}

/* --allow RULE, repeatable: checked in up_exec. */
static int
set_allow(void *args, const struct cmd_opt *opt, const char *v)
{
	struct agent_opts *o = &((struct up_args *)args)->o;

	(void)opt;
	if (o->nallow < AGENT_ALLOW_MAX)
		o->allow[o->nallow] = v;
	o->nallow++;
	return 0;
}

/* --accept PEER, repeatable: checked in up_exec. */
static int
set_accept(void *args, const struct cmd_opt *opt, const char *v)
{
	struct agent_opts *o = &((struct up_args *)args)->o;

	(void)opt;
	if (o->naccept < AGENT_ACCEPT_MAX)
		o->accept[o->naccept] = v;
	o->naccept++;
	return 0;
}

/* --direct-retry SEC (10..86400), or "off": never. */
static int
set_direct_retry(void *args, const struct cmd_opt *opt, const char *v)
{
	struct agent_opts *o = &((struct up_args *)args)->o;
	char *end;
	long s;

	(void)opt;
	if (strcmp(v, "off") == 0) {
		o->direct_retry_s = -1;
		return 0;
	}
	errno = 0;
	s = strtol(v, &end, 10);
	if (errno || end == v || *end || s < 10 || s > 86400) {
		cli_err("up", "--direct-retry '%s': expected seconds 10..86400, or off", v);
		return -1;
	}
	o->direct_retry_s = s;
	return 0;
}

static const struct cmd_opt up_opts[] = {
	{ .name = "foreground", .shortopt = 'd', .help = "stay in the foreground, log to "
	  "stderr", .type = CMD_FLAG, .off = UP(foreground) },
	{ .name = "json", .help = "print the running agent as one JSON object (not with -d)",
	  .type = CMD_FLAG, .off = UP(quiet) },
	{ .name = "log", .arg = "FILE", .help = "the agent's log file (default "
	  "STATE_DIR/agent.log; past 1 MiB it becomes FILE.1)", .type = CMD_FILE,
	  .off = UP(log), .expect = "expected a file" },
	{ .name = "port", .arg = "N", .help = "UDP port of the agent (default 0: any)",
	  .type = CMD_INT, .off = UP(port), .min = 0, .max = 65535,
	  .expect = "expected 0..65535" },
	{ .name = "keepalive", .arg = "SEC", .help = "register every SEC seconds "
	  "(1..3600; default: as the DC says); tunnels keep alive as often, up to 10 s", .type = CMD_INT, .off = UP(keepalive_s),
	  .min = 1, .max = 3600, .expect = "expected seconds 1..3600" },
	{ .name = "direct-retry", .arg = "SEC", .help = "a tunnel relayed because punching "
	  "failed (birthday probing included) tries the direct path again after SEC "
	  "seconds, then twice as long after each failure, up to 8 x SEC (10..86400, "
	  "default 300; 'off': never; a move tries at once)",
	  .type = CMD_CALL, .set = set_direct_retry },
	{ .name = "dc-udp", .arg = "ADDR:PORT", .help = "the DC's UDP address (else ntm.conf "
	  "dc_udp, else DNS SRV _ntm._udp.DOMAIN)", .type = CMD_STRING, .off = UP(dc_udp) },
	{ .name = "resolver", .arg = "ADDR:PORT", .help = "DNS resolver for the SRV lookup "
	  "(else ntm.conf resolver)", .type = CMD_STRING, .off = UP(resolver) },
	CLI_OPT_TIMEOUT(struct up_args, "wait SEC seconds for the first registration "
	  "(1..300, default 10)"),
	{ .name = "tun", .help = "TUN mode (root): put the vIPs on a kernel interface, NAME "
	  "(the argument after the options) or ntm0, for every program", .type = CMD_CALL,
	  .set = set_tun },
	{ .name = "allow", .arg = "RULE", .help = "TUN mode lets in from peers only "
	  "answers to this host and what a RULE allows (repeatable): PORT, PORT/tcp, "
	  "PORT/udp, icmp (ping), all; PEER:RULE for one peer only", .type = CMD_CALL,
	  .set = set_allow },
	{ .name = "accept", .arg = "PEER", .help = "only this peer may open tunnels to this "
	  "device (repeatable): an FQDN, or *.DOMAIN for a whole domain; others' are "
	  "refused and counted (default: any peer)", .type = CMD_CALL, .set = set_accept },
	{ .name = "socks5", .arg = "ADDR:PORT", .help = "serve SOCKS5 (CONNECT, UDP "
	  "ASSOCIATE; no authentication) on this loopback address, to peers by FQDN or vIP; "
	  "saved for the next 'ntm up' ('off': none, and forget it)", .type = CMD_CALL,
	  .set = set_socks5 },
	CLI_OPT_HELP,
	CLI_OPT_END
};

/*
 * Once a detached agent runs: what it serves, asked on its control socket.
 * json: one object {pid, fqdn, vip4, vip6, port, control, log, registered,
 * socks5, forwards}; else a line per SOCKS5 address and forward brought back.
 */
static int
up_report(struct cli *cli, int json)
{
	json_t *st = agent_status_json(cli), *fr, *fw, *f, *socks;
	char *sock;
	size_t i;

	if (st == NULL) {
		cli_err("up", "the agent started but does not answer on its control socket");
		return EXIT_FAIL;
	}
	fr = ctl_call(cli, json_pack("{s:s}", "cmd", "forwards"), 3000);
	fw = json_object_get(fr, "forwards");
	if (!json_is_array(fw))
		fw = NULL;	/* TUN mode: no forwards */
	socks = json_object_get(json_object_get(st, "socks5"), "listen");
	if (json) {
		sock = agent_sock_path(cli);
		cli_print_json(json_pack("{s:O, s:O, s:O, s:O, s:O, s:s, s:O, s:O, s:O, s:o}",
		    "pid", json_object_get(st, "pid"), "fqdn", json_object_get(st, "fqdn"),
		    "vip4", json_object_get(st, "vip4"), "vip6", json_object_get(st, "vip6"),
		    "port", json_object_get(st, "port"), "control", sock,
		    "log", json_object_get(st, "log") ? json_object_get(st, "log") : json_null(),
		    "registered", json_object_get(json_object_get(st, "registration"),
		    "registered"), "socks5", socks ? socks : json_null(),
		    "forwards", fw ? json_incref(fw) : json_array()));
		free(sock);
	} else {
		if (socks)
			printf("socks5: %s\n", json_string_value(socks));
		json_array_foreach(fw, i, f)
			printf("forward %lld: -%s %s\n", (long long)json_integer_value(
			    json_object_get(f, "id")), json_string_value(json_object_get(f, "dir")),
			    json_string_value(json_object_get(f, "spec")));
	}
	json_decref(fr);
	json_decref(st);
	return EXIT_OK;
}

static int
up_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	struct up_args *a = c->args;
	struct agent_opts *o = &a->o;
	int ret;

	if (o->socks5) {
		struct sockaddr_storage ss;
		socklen_t len;
		char err[256];

		if (agent_socks_check(o->socks5, &ss, &len, err, sizeof(err)) < 0) {
			cli_err("up", "%s", err);
			return EXIT_USAGE;
		}
	}
	if (o->tun && c->npos == 1) {
		const char *name = c->pos[0];

		if (strlen(name) >= 16 || name[0] == '\0' ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != strlen(name)) {
			cli_err("up", "--tun '%s': expected an interface name (at most 15 of "
			    "a-z 0-9 - _ .)", name);
			return EXIT_USAGE;
		}
		o->tun = name;
		c->npos = 0;
	}
	if (o->nallow > 0 && !o->tun) {
		cli_err("up", "--allow '%s': only with --tun (without it, nothing reaches "
		    "this host's programs but what 'ntm tunnel listen' and forwards serve)",
		    o->allow[0]);
		return EXIT_USAGE;
	}
	if (o->nallow > AGENT_ALLOW_MAX) {
		cli_err("up", "--allow: at most %d rules", AGENT_ALLOW_MAX);
		return EXIT_USAGE;
	}
	for (int i = 0; i < o->nallow; i++) {
		struct ntm_fw_rule r;
		char err[256];

		if (ntm_fw_rule_parse(&r, o->allow[i], err, sizeof(err)) < 0) {
			cli_err("up", "--allow %s", err);
			return EXIT_USAGE;
		}
	}
	if (o->naccept > AGENT_ACCEPT_MAX) {
		cli_err("up", "--accept: at most %d peers", AGENT_ACCEPT_MAX);
		return EXIT_USAGE;
	}
	for (int i = 0; i < o->naccept; i++)
		if (!agent_accept_valid(o->accept[i])) {
			cli_err("up", "--accept '%s': expected a peer FQDN or *.DOMAIN",
			    o->accept[i]);
			return EXIT_USAGE;
		}
	if (o->tun && o->socks5) {
		cli_err("up", "--socks5 and --tun: in TUN mode programs use the vIPs directly");
		return EXIT_USAGE;
	}
	if (c->npos > 0) {
		cli_err("up", "unexpected argument '%s'", c->pos[0]);
		return EXIT_USAGE;
	}
	if (o->foreground && cli->in_shell) {
		cli_err("up", "-d would block the shell; run 'ntm up' without it");
		return EXIT_USAGE;
	}
	if (o->foreground && o->quiet) {
		cli_err("up", "--json with -d: the agent stays in the foreground (ask it with "
		    "'ntm status --json')");
		return EXIT_USAGE;
	}
	o->timeout_s = cli_timeout(cli, a->timeout);
	ret = agent_main(cli, o);
	if (ret == EXIT_OK && !o->foreground)
		ret = up_report(cli, o->quiet);
	return ret;
}

const struct cmd_entry up_entry = {
	.name = "up",
	.summary = "start the agent: register with the DC, hold tunnels",
	.usage = "[NAME] (the TUN interface, with --tun)",
	.opts = up_opts,
	.max = CMD_ANY,
	.args_size = sizeof(struct up_args),
	.exec = up_exec,
};
