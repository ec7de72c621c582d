/*
 * ntm-cli.h - the ntm client: command table, option parser, profile and
 * session state. Every command is `int X_main(struct cli *, int, char **)`
 * and returns an exit code (never exit()s), so `ntm shell` can run it too.
 */
#ifndef NTM_CLI_H
#define NTM_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "ntm.h"

/* Exit codes, documented in ntm(1) and `ntm --help`. */
enum {
	EXIT_OK		= 0,	/* success */
	EXIT_FAIL	= 1,	/* other failure */
	EXIT_USAGE	= 2,	/* unknown command or option, bad value, bad ntm.conf */
	EXIT_UNREACH	= 3,	/* a server could not be reached (or its upstream) */
	EXIT_BADPASS	= 4,	/* wrong password */
	EXIT_NOUSER	= 5,	/* unknown user */
	EXIT_LOCKED	= 6,	/* account locked */
	EXIT_NOSESSION	= 7,	/* not logged in, or the session ended */
	EXIT_REJECTED	= 8,	/* the server rejected the request otherwise */
	EXIT_NOAGENT	= 9,	/* no agent running (ntm up) */
	EXIT_NOTUNNEL	= 10,	/* peer or its domain unknown, peer offline, or no tunnel */
	EXIT_REFUSED	= 11,	/* the peer refused the connection: nothing listens on the port */
	EXIT_BROKEN	= 12,	/* a stream broke: reset by the peer, tunnel closed, stalled */
	EXIT_NOKEY	= 13,	/* no shared key with the peer (ntm keys exchange PEER) */
	EXIT_VERIFY	= 14,	/* a fetched object failed verification; nothing was written */
	EXIT_UNTRUSTED	= 15,	/* a server's certificate is not signed by a trusted CA (--ca) */
};

#define NTM_CLI_TIMEOUT_DEF	10	/* seconds */
#define NTM_CLI_TIMEOUT_MAX	300
#define NTM_PASSWORD_MAX	256
#define NTM_HISTORY_MAX		1000
#define NTM_URL_MAX		(8 + NTM_NAME_MAX + 2 + 6 + 1)

/* ---- the command table (main.c) ----------------------------------------- */

/* One long option. key is what cli_getopt() returns: the short letter when
 * there is one, else a per-command value >= 256. */
struct cli_opt {
	const char	*name;		/* without "--" */
	int		 key;
	int		 shortopt;	/* 'u' for -u, 0 if none */
	const char	*arg;		/* metavariable ("FILE"), NULL for a flag */
	const char	*help;
};

/* A subcommand ("tunnel ping"): the command's own code parses it; this
 * names it for `ntm help --commands`, --json and completion in the shell. */
struct cli_sub {
	const char	*name;
	const char	*opts;		/* the command's options that apply, by name,
					 * space-separated ("help" always does) */
};

struct cli;
struct cli_cmd {
	const char	*name;
	int		(*fn)(struct cli *cli, int argc, char **argv);
	const char	*summary;
	const char	*usage;		/* operands after "ntm NAME [OPTIONS]" */
	const struct cli_opt *opts;	/* ends with { NULL } */
	const struct cli_sub *subs;	/* NULL, or ends with { NULL } */
};

/* Options every command takes. */
#define CLI_OPT_HELP	{ "help", 'h', 'h', NULL, "show this help and exit" }
#define CLI_OPT_END	{ NULL, 0, 0, NULL, NULL }

/* Each command file exports its options; main.c holds the table. */
extern const struct cli_opt login_opts[], logout_opts[], status_opts[], shell_opts[],
    help_opts[], up_opts[], down_opts[], register_opts[], tunnel_opts[],
    keys_opts[], send_opts[], fetch_opts[];
/* In display order, ends with { NULL }. */
extern const struct cli_cmd cli_commands[];
const struct cli_cmd *cli_find(const char *name);
/* Runs argv[0] as a command through the table; unknown: message + EXIT_USAGE. */
int cli_dispatch(struct cli *cli, int argc, char **argv);

/* ---- profile and session (profile.c) ----------------------------------- */

/* ntm.conf in the config dir; command-line options override it. */
struct cli_conf {
	char	*dc;
	char	*user;
	char	*ca_file;	/* absolute (relative ones are taken from the config dir) */
	long	 timeout;	/* seconds; 0 = not set */
	char	*dc_udp;	/* "addr:port" of the DC's registration socket */
	char	*resolver;	/* "addr:port" of the DNS resolver finding it */
};

struct cli {
	char		*config_dir;	/* $XDG_CONFIG_HOME/ntm, or -c DIR */
	char		*state_dir;	/* $XDG_STATE_HOME/ntm, or -c DIR */
	int		 verbose;
	int		 in_shell;
	struct cli_conf	 conf;
};

/* Fills dirs from dir (-c), $NTM_PROFILE or XDG and loads ntm.conf if it
 * exists. On error fills err and returns EXIT_USAGE or EXIT_FAIL. */
int  cli_init(struct cli *cli, const char *dir, int verbose, char *err, size_t errlen);
void cli_free(struct cli *cli);
/* new: state_dir/name. */
char *cli_state_path(const struct cli *cli, const char *name);
/* Creates the state dir (0700). 0 or an NTM_ERR_*. */
int  cli_state_mkdir(const struct cli *cli);
/* Same, printing "ntm: CMD: ..." with the fix on failure (an existing dir
 * must be ours and 0700). 0 or -1. */
int  cli_state_prepare(const struct cli *cli, const char *cmd);
/* The profile's device id: out gets the stored one, or a new one (16 random
 * bytes, hex) which is saved. 0 or an NTM_ERR_*. */
int  cli_device_get(const struct cli *cli, char out[NTM_DEVICE_MAX + 1]);
int  cli_device_set(const struct cli *cli, const char *id);
long cli_timeout(const struct cli *cli, long opt);	/* seconds */

/* session.json in the state dir (0600). All strings are new. */
struct session {
	char	*dc_url;
	char	*ca_file;	/* NULL: the system store */
	char	*user, *device, *fqdn, *vip4, *vip6, *domain;
	char	*token;
	int64_t	 token_expires;
	char	*session_id;
	char	*dc_key;	/* b64 X25519 key of the DC */
	char	*rx, *tx;	/* b64 session keys */
	int64_t	 login_time;
};
/* 0, NTM_ERR_NOTFOUND when there is no session file, or another error. */
int  session_load(const struct cli *cli, struct session *s, char *err, size_t errlen);
int  session_save(const struct cli *cli, const struct session *s);
/* 0, or NTM_ERR_NOTFOUND if there was none. */
int  session_remove(const struct cli *cli);
void session_free(struct session *s);	/* wipes the secrets */

/* ---- argument parsing (main.c) ------------------------------------------ */

struct cli_args {
	const struct cli_cmd *cmd;
	int		 argc, i;
	char		**argv;
	char		**pos;		/* operands, in order (new, borrowed strings) */
	int		 npos;
	int		 dashdash;
	const char	*optarg;	/* value of the last option */
	const char	*optname;	/* "--name" as the user spelled it */
	int		 shortbuf;	/* position inside a "-abc" group */
};
/* argv[0] is the command name. */
void cli_args_init(struct cli_args *a, const struct cli_cmd *cmd, int argc, char **argv);
void cli_args_free(struct cli_args *a);
/* Next option's key; 0 once all arguments are consumed (operands are then
 * in a->pos); -1 after printing a usage error. */
int  cli_getopt(struct cli_args *a);

/* ---- output helpers (main.c, help.c) ------------------------------------ */

/* "ntm: CMD: message" on stderr (cmd may be NULL). */
void cli_err(const char *cmd, const char *fmt, ...) NTM_PRINTF(2, 3);
/* Help for one command (usage, options) to fp. */
void cli_cmd_help(FILE *fp, const struct cli_cmd *cmd);
/* Global usage (commands, exit codes) to fp. */
void cli_usage(FILE *fp);
/* "NAME<TAB>--opt1 --opt2 ..." per command, options sorted; then one
 * "NAME SUB<TAB>--opt ..." line per subcommand. */
void cli_commands_dump(FILE *fp);
/* 1 if the option named opt applies to subcommand sub of cmd (always 1 when
 * the command has no such subcommand table). */
int  cli_sub_has_opt(const struct cli_sub *sub, const char *opt);
const struct cli_sub *cli_find_sub(const struct cli_cmd *cmd, const char *name);
/* Strict seconds parser for --timeout; prints the usage error. */
int  cli_parse_timeout(const char *cmd, const char *s, long *out);
/* Prints json (stolen) compactly with a newline on stdout. */
void cli_print_json(json_t *j);

/* ---- HTTP calls to the DC (login.c) ------------------------------------- */

/* Maps a failed call to an exit code and prints one error line:
 * an untrusted certificate -> 15 (with the --ca hint), other transport
 * errors (err != 0) -> 3; else the JSON error code. */
int  cli_http_fail(const char *cmd, const char *url, int err, long status, json_t *body,
    const char *errmsg);
/* Same, message into buf instead of stderr. */
int  cli_http_error(char *buf, size_t len, const char *url, int err, long status,
    json_t *body, const char *errmsg);
/* Exit code for a server error code ("bad_password" -> 4 ...). */
int  cli_exit_for_code(const char *code, long status);

/* ---- commands ------------------------------------------------------------ */
int login_main(struct cli *cli, int argc, char **argv);
int logout_main(struct cli *cli, int argc, char **argv);
int status_main(struct cli *cli, int argc, char **argv);
int shell_main(struct cli *cli, int argc, char **argv);
int help_main(struct cli *cli, int argc, char **argv);
int up_main(struct cli *cli, int argc, char **argv);
int down_main(struct cli *cli, int argc, char **argv);
int register_main(struct cli *cli, int argc, char **argv);
int tunnel_main(struct cli *cli, int argc, char **argv);
int keys_main(struct cli *cli, int argc, char **argv);
int send_main(struct cli *cli, int argc, char **argv);
int fetch_main(struct cli *cli, int argc, char **argv);

#endif
