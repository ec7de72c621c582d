/*
 * cli.c - running a command of the table and the CLI's output helpers:
 * one error line on stderr, one JSON object on stdout.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "common.h"
#include "ntm-cli.h"

int
cli_dispatch(struct cli *cli, int argc, char **argv)
{
	const struct cmd_entry *cmd;

	if (argc < 1)
		return EXIT_USAGE;
	if ((cmd = cmd_find(cli->cmds, argv[0])) == NULL) {
		cli_err(NULL, "unknown command '%s' (see 'ntm help')", argv[0]);
		return EXIT_USAGE;
	}
	return cmd_run(cli, "ntm", cmd, argc, argv, EXIT_USAGE);
}

void
cli_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd_verr("ntm", cmd, fmt, ap);
	va_end(ap);
}

void
cli_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	if (s) {
		printf("%s\n", s);
		free(s);
	}
	json_decref(j);
	fflush(stdout);
}
