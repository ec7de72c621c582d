/*
 * help.c - ntm help, `--help` of every command and `help --commands`, all
 * generated from the command table in main.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common.h"
#include "ntm-cli.h"

enum { OPT_COMMANDS = 256, OPT_JSON };

const struct cli_opt help_opts[] = {
	{ "commands", OPT_COMMANDS, 0, NULL,
	  "print one line per command, then per subcommand (\"tunnel ping\"): the name, "
	  "a tab, then its options, sorted" },
	{ "json", OPT_JSON, 0, NULL, "print the command table (or COMMAND's entry) and the "
	  "exit codes as one JSON object" },
	CLI_OPT_HELP,
	CLI_OPT_END
};

static const struct { int code; const char *text; } exit_codes[] = {
	{ EXIT_OK, "success" },
	{ EXIT_FAIL, "other failure" },
	{ EXIT_USAGE, "usage error: unknown command or option, bad value, bad ntm.conf" },
	{ EXIT_UNREACH, "a server could not be reached (connection, TLS, timeout, "
	  "or upstream_unavailable)" },
	{ EXIT_BADPASS, "wrong password (bad_password)" },
	{ EXIT_NOUSER, "unknown user (unknown_user)" },
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
};

void
cli_cmd_help(FILE *fp, const struct cli_cmd *cmd)
{
	const struct cli_opt *o;
	char left[64];

	fprintf(fp, "usage: ntm %s [OPTIONS]%s%s\n\n%s\n\noptions:\n", cmd->name,
	    *cmd->usage ? " " : "", cmd->usage, cmd->summary);
	for (o = cmd->opts; o->name; o++) {
		if (o->shortopt)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->shortopt, o->name,
			    o->arg ? " " : "", o->arg ? o->arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->name,
			    o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(fp, "  %-26s %s\n", left, o->help);
	}
}

void
cli_usage(FILE *fp)
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
	for (const struct cli_cmd *c = cli_commands; c->name; c++)
		fprintf(fp, "  %-8s %s\n", c->name, c->summary);
	fprintf(fp, "\nexit status:\n");
	for (size_t i = 0; i < sizeof(exit_codes) / sizeof(exit_codes[0]); i++)
		fprintf(fp, "  %2d  %s\n", exit_codes[i].code, exit_codes[i].text);
	fprintf(fp, "\nRun 'ntm help COMMAND' or 'ntm COMMAND --help' for its options.\n");
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
dump_line(FILE *fp, const struct cli_cmd *c, const struct cli_sub *sub)
{
	const char *names[64];
	size_t n = 0;

	for (const struct cli_opt *o = c->opts; o->name && n < 64; o++)
		if (cli_sub_has_opt(sub, o->name))
			names[n++] = o->name;
	qsort(names, n, sizeof(names[0]), cmp_str);
	fprintf(fp, "%s%s%s\t", c->name, sub ? " " : "", sub ? sub->name : "");
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "%s--%s", i ? " " : "", names[i]);
	fprintf(fp, "\n");
}

void
cli_commands_dump(FILE *fp)
{
	for (const struct cli_cmd *c = cli_commands; c->name; c++)
		dump_line(fp, c, NULL);
	for (const struct cli_cmd *c = cli_commands; c->name; c++)
		for (const struct cli_sub *s = c->subs; s && s->name; s++)
			dump_line(fp, c, s);
}

static json_t *
cmd_json(const struct cli_cmd *c)
{
	json_t *opts = json_array(), *subs = json_array();

	for (const struct cli_opt *o = c->opts; o->name; o++) {
		char sh[2] = { (char)o->shortopt, '\0' };

		json_array_append_new(opts, json_pack("{s:s, s:s?, s:s?, s:s}", "name", o->name,
		    "short", o->shortopt ? sh : NULL, "arg", o->arg, "help", o->help));
	}
	for (const struct cli_sub *s = c->subs; s && s->name; s++) {
		json_t *names = json_array();

		for (const struct cli_opt *o = c->opts; o->name; o++)
			if (cli_sub_has_opt(s, o->name))
				json_array_append_new(names, json_string(o->name));
		json_array_append_new(subs, json_pack("{s:s, s:o}", "name", s->name,
		    "options", names));
	}
	return json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", c->name, "summary", c->summary,
	    "usage", c->usage, "options", opts, "subcommands", subs);
}

/* The whole table, or one command's entry. */
static json_t *
help_json(const struct cli_cmd *one)
{
	json_t *cmds, *codes;

	if (one)
		return cmd_json(one);
	cmds = json_array();
	codes = json_array();
	for (const struct cli_cmd *c = cli_commands; c->name; c++)
		json_array_append_new(cmds, cmd_json(c));
	for (size_t i = 0; i < sizeof(exit_codes) / sizeof(exit_codes[0]); i++)
		json_array_append_new(codes, json_pack("{s:i, s:s}", "code", exit_codes[i].code,
		    "text", exit_codes[i].text));
	return json_pack("{s:s, s:o, s:o}", "version", NTM_VERSION, "commands", cmds,
	    "exit_codes", codes);
}

int
help_main(struct cli *cli, int argc, char **argv)
{
	const struct cli_cmd *self = cli_find("help"), *cmd;
	struct cli_args args;
	int ch, ret = EXIT_USAGE, commands = 0, json = 0;

	cli_args_init(&args, self, argc, argv);
	while ((ch = cli_getopt(&args)) != 0) {
		switch (ch) {
		case OPT_COMMANDS:
			commands = 1;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case 'h':
			cli_cmd_help(stdout, self);
			ret = EXIT_OK;
			goto out;
		default:
			goto out;
		}
	}
	/* "help tunnel ping" is the help of tunnel, as "tunnel ping --help" is */
	if (args.npos > 2 || (commands && args.npos > 0) || (commands && json)) {
		cli_err("help", "unexpected argument '%s'", commands && json ? "--json" :
		    args.pos[args.npos - 1]);
		goto out;
	}
	cmd = args.npos ? cli_find(args.pos[0]) : NULL;
	if (args.npos && cmd == NULL) {
		cli_err("help", "unknown command '%s'", args.pos[0]);
		goto out;
	}
	if (args.npos == 2 && cli_find_sub(cmd, args.pos[1]) == NULL) {
		cli_err("help", "unknown subcommand '%s %s'", args.pos[0], args.pos[1]);
		goto out;
	}
	if (commands)
		cli_commands_dump(stdout);
	else if (json)
		cli_print_json(help_json(cmd));
	else if (cmd == NULL)
		cli_usage(stdout);
	else
		cli_cmd_help(stdout, cmd);
	ret = EXIT_OK;
out:
	cli_args_free(&args);
	return ret;
}
