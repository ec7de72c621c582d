/*
 * commands.c - the table of ntm's commands, in the order `ntm help` shows
 * them. Each command's file exports its entry (and its subcommands').
 */
#include "ntm-cli.h"

const struct cmd_entry *const cli_commands[] = {
	&login_entry,
	&logout_entry,
	&status_entry,
	&up_entry,
	&down_entry,
	&register_entry,
	&netcheck_entry,
	&tunnel_entry,
	&keys_entry,
	&send_entry,
	&fetch_entry,
	&shell_entry,
	&help_entry,
	NULL
};
