/*
 * up.c - ntm up: start the agent (agent.c), detached unless -d.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "agent.h"

enum { OPT_PORT = 256, OPT_KEEPALIVE, OPT_DC_UDP, OPT_RESOLVER, OPT_TIMEOUT, OPT_SOCKS5,
    OPT_TUN, OPT_LOG, OPT_JSON };

const struct cli_opt up_opts[] = {
	{ "foreground", 'd', 'd', NULL, "stay in the foreground, log to stderr" },
	{ "json", OPT_JSON, 0, NULL, "print the running agent as one JSON object (not with -d)" },
	{ "log", OPT_LOG, 0, "FILE", "the agent's log file (default STATE_DIR/agent.log; "
	  "past 1 MiB it becomes FILE.1)" },
	{ "port", OPT_PORT, 0, "N", "UDP port of the agent (default 0: any)" },
	{ "keepalive", OPT_KEEPALIVE, 0, "SEC", "register every SEC seconds "
	  "(1..3600; default: as the DC says)" },
	{ "dc-udp", OPT_DC_UDP, 0, "ADDR:PORT", "the DC's UDP address (else ntm.conf dc_udp, "
	  "else DNS SRV _ntm._udp.DOMAIN)" },
	{ "resolver", OPT_RESOLVER, 0, "ADDR:PORT", "DNS resolver for the SRV lookup "
	  "(else ntm.conf resolver)" },
	{ "timeout", OPT_TIMEOUT, 0, "SEC", "wait SEC seconds for the first registration "
	  "(1..300, default 10)" },
	{ "tun", OPT_TUN, 0, NULL, "TUN mode (root): put the vIPs on a kernel interface, NAME "
	  "(the argument after the options) or ntm0, for every program" },
	{ "socks5", OPT_SOCKS5, 0, "ADDR:PORT", "serve SOCKS5 (CONNECT, UDP ASSOCIATE; no "
	  "authentication) on this loopback address, to peers by FQDN or vIP; saved for "
	  "the next 'ntm up' ('off': none, and forget it)" },
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

int
up_main(struct cli *cli, int argc, char **argv)
{
	const struct cli_cmd *cmd = cli_find("up");
	struct agent_opts o;
	struct cli_args args;
	long timeout = 0;
	int ch, ret = EXIT_USAGE;

	memset(&o, 0, sizeof(o));
	cli_args_init(&args, cmd, argc, argv);
	while ((ch = cli_getopt(&args)) != 0) {
		switch (ch) {
		case 'd':
			o.foreground = 1;
			break;
		case OPT_PORT:
			if (parse_long(args.optarg, 0, 65535, &o.port) < 0) {
				cli_err("up", "--port '%s': expected 0..65535", args.optarg);
				goto out;
			}
			break;
		case OPT_KEEPALIVE:
			if (parse_long(args.optarg, 1, 3600, &o.keepalive_s) < 0) {
				cli_err("up", "--keepalive '%s': expected seconds 1..3600",
				    args.optarg);
				goto out;
			}
			break;
		case OPT_JSON:
			o.quiet = 1;
			break;
		case OPT_LOG:
			if (args.optarg[0] == '\0') {
				cli_err("up", "--log '': expected a file");
				goto out;
			}
			o.log = args.optarg;
			break;
		case OPT_DC_UDP:
			o.dc_udp = args.optarg;
			break;
		case OPT_SOCKS5:
			if (strcmp(args.optarg, "off") == 0) {
				o.socks5 = NULL;
				o.socks5_off = 1;
			} else {
				o.socks5 = args.optarg;
				o.socks5_off = 0;
			}
			break;
		case OPT_TUN:
			o.tun = "ntm0";
			break;
		case OPT_RESOLVER:
			o.resolver = args.optarg;
			break;
		case OPT_TIMEOUT:
			if (cli_parse_timeout("up", args.optarg, &timeout) < 0)
				goto out;
			break;
		case 'h':
			cli_cmd_help(stdout, cmd);
			ret = EXIT_OK;
			goto out;
		default:
			goto out;
		}
	}
	if (o.socks5) {
		struct sockaddr_storage ss;
		socklen_t len;
		char err[256];

		if (agent_socks_check(o.socks5, &ss, &len, err, sizeof(err)) < 0) {
			cli_err("up", "%s", err);
			goto out;
		}
	}
	if (o.tun && args.npos == 1) {
		if (strlen(args.pos[0]) >= 16 || args.pos[0][0] == '\0' ||
		    strspn(args.pos[0], "abcdefghijklmnopqrstuvwxyz0123456789-_.") !=
		    strlen(args.pos[0])) {
			cli_err("up", "--tun '%s': expected an interface name (at most 15 of "
			    "a-z 0-9 - _ .)", args.pos[0]);
			goto out;
		}
		o.tun = args.pos[0];
		args.npos = 0;
	}
	if (o.tun && o.socks5) {
		cli_err("up", "--socks5 and --tun: in TUN mode programs use the vIPs directly");
		goto out;
	}
	if (args.npos > 0) {
		cli_err("up", "unexpected argument '%s'", args.pos[0]);
		goto out;
	}
	if (o.foreground && cli->in_shell) {
		cli_err("up", "-d would block the shell; run 'ntm up' without it");
		goto out;
	}
	if (o.foreground && o.quiet) {
		cli_err("up", "--json with -d: the agent stays in the foreground (ask it with "
		    "'ntm status --json')");
		goto out;
	}
	o.timeout_s = cli_timeout(cli, timeout);
	ret = agent_main(cli, &o);
	if (ret == EXIT_OK && !o.foreground)
		ret = up_report(cli, o.quiet);
out:
	cli_args_free(&args);
	return ret;
}
