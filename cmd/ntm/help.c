/*
 * help.c - ntm help, the global usage and `help --commands`, all made from
 * the command table (commands.c, handed over in struct cli); `--help` of
 * each command is the parser's (cmd/common/cmd.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common.h"
#include "ntm-cli.h"

struct help_args {
	int	commands, json;
};

static const struct cmd_opt help_opts[] = {
	{ .name = "commands", .help = "print one line per command, then per subcommand "
	  "(\"tunnel ping\"): the name, a tab, then its options, sorted", .type = CMD_FLAG,
	  .off = offsetof(struct help_args, commands) },
	CLI_OPT_JSON(struct help_args, "print the command table (or COMMAND's entry) and the "
	  "exit codes as one JSON object"),
	CLI_OPT_HELP,
	CLI_OPT_END
};

static const struct { int code; const char *text; } exit_codes[] = {
	{ EXIT_OK, "success" },
	{ EXIT_FAIL, "other failure" },
	{ EXIT_USAGE, "usage error: unknown command or option, bad value, bad ntm.conf" },
	{ EXIT_UNREACH, "a server could not be reached (connection, TLS, timeout, "
	  "or upstream_unavailable)" },
	{ EXIT_BADPASS, "wrong user name or password (bad_password)" },
	{ EXIT_NOUSER, "unknown user (unknown_user; older servers only)" },
	{ EXIT_LOCKED, "account locked (user_locked)" },
	{ EXIT_NOSESSION, "not logged in, or the session ended" },
	{ EXIT_REJECTED, "the server rejected the request otherwise" },
	{ EXIT_NOAGENT, "no agent running (start one with 'ntm up')" },
	{ EXIT_NOTUNNEL, "peer or its domain unknown, peer offline, or the tunnel could "
	  "not be made" },
	{ EXIT_REFUSED, "the peer refused a stream: nothing listens on the port" },
	{ EXIT_BROKEN, "a stream broke: reset, tunnel closed, stalled, agent stopped" },
	{ EXIT_NOKEY, "no shared key with the peer (run 'ntm keys exchange PEER')" },
	{ EXIT_VERIFY, "a fetched object failed verification (tampered); nothing was written" },
	{ EXIT_UNTRUSTED, "a server's certificate is not signed by a trusted CA "
	  "(log in with --ca FILE)" },
	{ EXIT_IDENTITY, "a device key does not match its AS certificate or the key "
	  "known for that FQDN (peer_identity): a server may be in the middle" },
};

void
cli_usage(FILE *fp, const struct cmd_entry *const *table)
{
	fprintf(fp,
	    "usage: ntm [-c DIR] [-v] [-h|--help] [-V|--version] COMMAND [ARGS]\n"
	    "\n"
	    "ntm is the client of the ntm mobility platform.\n"
	    "\n"
	    "global options:\n"
	    "  -c DIR         use DIR as config and state dir (also $NTM_PROFILE)\n"
	    "  -v             more verbose (repeatable)\n"
	    "  -h, --help     show this help and exit\n"
	    "  -V, --version  show the version and exit\n"
	    "\n"
	    "commands:\n");
	for (const struct cmd_entry *const *c = table; *c; c++)
		fprintf(fp, "  %-8s %s\n", (*c)->name, (*c)->summary);
	fprintf(fp, "\nexit status:\n");
	for (size_t i = 0; i < sizeof(exit_codes) / sizeof(exit_codes[0]); i++)
		fprintf(fp, "  %2d  %s\n", exit_codes[i].code, exit_codes[i].text);
	fprintf(fp, "\nRun 'ntm help COMMAND' or 'ntm COMMAND --help' for its options.\n");
}

static json_t *
cmd_json(const struct cmd_entry *c)
{
	json_t *opts = json_array(), *subs = json_array();

	for (const struct cmd_opt *o = c->opts; o->name; o++) {
		char sh[2] = { (char)o->shortopt, '\0' };

		json_array_append_new(opts, json_pack("{s:s, s:s?, s:s?, s:s}", "name", o->name,
		    "short", o->shortopt ? sh : NULL, "arg", o->arg, "help", o->help));
	}
	for (const struct cmd_entry *const *s = c->subs; s && *s; s++) {
		json_t *names = json_array();

		for (const struct cmd_opt *o = c->opts; o->name; o++)
			if (cmd_sub_takes(*s, o->name))
				json_array_append_new(names, json_string(o->name));
		json_array_append_new(subs, json_pack("{s:s, s:o}", "name", (*s)->name,
		    "options", names));
	}
	return json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", c->name, "summary", c->summary,
	    "usage", c->usage, "options", opts, "subcommands", subs);
}

/* The whole table, or one command's entry. */
static json_t *
help_json(const struct cmd_entry *const *table, const struct cmd_entry *one)
{
	json_t *cmds, *codes;

	if (one)
		return cmd_json(one);
	cmds = json_array();
	codes = json_array();
	for (const struct cmd_entry *const *c = table; *c; c++)
		json_array_append_new(cmds, cmd_json(*c));
	for (size_t i = 0; i < sizeof(exit_codes) / sizeof(exit_codes[0]); i++)
		json_array_append_new(codes, json_pack("{s:i, s:s}", "code", exit_codes[i].code,
		    "text", exit_codes[i].text));
	return json_pack("{s:s, s:o, s:o}", "version", NTM_VERSION, "commands", cmds,
	    "exit_codes", codes);
}

static int
help_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	struct help_args *a = c->args;
	const struct cmd_entry *cmd;

	/* "help tunnel ping" is the help of tunnel, as "tunnel ping --help" is */
	if (c->npos > 2 || (a->commands && c->npos > 0) || (a->commands && a->json)) {
		cli_err("help", "unexpected argument '%s'", a->commands && a->json ? "--json" :
		    c->pos[c->npos - 1]);
		return EXIT_USAGE;
	}
	cmd = c->npos ? cmd_find(cli->cmds, c->pos[0]) : NULL;
	if (c->npos && cmd == NULL) {
		cli_err("help", "unknown command '%s'", c->pos[0]);
		return EXIT_USAGE;
	}
	if (c->npos == 2 && cmd_find(cmd->subs, c->pos[1]) == NULL) {
		cli_err("help", "unknown subcommand '%s %s'", c->pos[0], c->pos[1]);
		return EXIT_USAGE;
	}
	if (a->commands)
		cmd_dump(stdout, cli->cmds);
	else if (a->json)
		cli_print_json(help_json(cli->cmds, cmd));
	else if (cmd == NULL)
		cli_usage(stdout, cli->cmds);
	else
		cmd_help(stdout, "ntm", cmd);
	return EXIT_OK;
}

const struct cmd_entry help_entry = {
	.name = "help",
	.summary = "show help for ntm or one command",
	.usage = "[COMMAND]",
	.opts = help_opts,
	.min = 0,
	.max = CMD_ANY,
	.args_size = sizeof(struct help_args),
	.exec = help_exec,
};
