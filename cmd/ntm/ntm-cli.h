/*
 * ntm-cli.h - the ntm client: command table, profile and session state.
 * Every command is an entry whose exec returns an exit code (never
 * exit()s), so `ntm shell` can run it too.
 */
#ifndef NTM_CLI_H
#define NTM_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ntm.h"
#include "cmd.h"

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
	EXIT_IDENTITY	= 16,	/* a device key did not match its AS certificate, or changed */
};

#define NTM_CLI_TIMEOUT_DEF	10	/* seconds */
#define NTM_CLI_TIMEOUT_MAX	300
#define NTM_PASSWORD_MAX	256
#define NTM_HISTORY_MAX		1000
#define NTM_URL_MAX		(8 + NTM_NAME_MAX + 2 + 6 + 1)

/* ---- the command table (commands.c) ------------------------------------ */

/*
 * Every command and subcommand is a struct cmd_entry (cmd/common/cmd.h):
 * its options fill the command's own args struct, exec gets the struct
 * cli as ctx. The table is the one source for `--help` of every command,
 * `ntm help`, `ntm help --commands` (which scripts/docs-check.sh compares
 * with ntm(1) and the completions) and completion inside `ntm shell`.
 */
extern const struct cmd_entry login_entry, logout_entry, status_entry, up_entry,
    down_entry, register_entry, netcheck_entry, tunnel_entry, keys_entry, send_entry, fetch_entry,
    shell_entry, help_entry;
/* In display order, ends with NULL. */
extern const struct cmd_entry *const cli_commands[];

/* Rows most commands' option tables share; T is the command's args struct. */
#define CLI_OPT_HELP	{ .name = "help", .shortopt = 'h', .help = "show this help and exit", \
	.type = CMD_FLAG }
#define CLI_OPT_END	{ .name = NULL }
#define CLI_OPT_JSON(T, text) { .name = "json", .help = (text), .type = CMD_FLAG, \
	.off = offsetof(T, json) }
#define CLI_TIMEOUT_EXPECT	"expected seconds 1..300"	/* NTM_CLI_TIMEOUT_MAX */
#define CLI_OPT_TIMEOUT(T, text) { .name = "timeout", .arg = "SEC", .help = (text), \
	.type = CMD_INT, .off = offsetof(T, timeout), .min = 1, .max = NTM_CLI_TIMEOUT_MAX, \
	.expect = CLI_TIMEOUT_EXPECT }
#define CLI_TIMEOUT_HELP	"give up after SEC seconds (1..300, default 10)"

/* ---- profile and session (profile.c) ----------------------------------- */

/* ntm.conf in the config dir; command-line options override it. */
struct cli_conf {
	char	*dc;
	char	*user;
	char	*ca_file;	/* absolute (relative ones are taken from the config dir) */
	long	 timeout;	/* seconds; 0 = not set */
	char	*dc_udp;	/* "addr:port" of the DC's registration socket */
	char	*resolver;	/* "addr:port" of the DNS resolver finding it */
	char	*as_key;	/* the AS's Ed25519 key (b64url) device certificates
			   are checked with; NULL: the one pinned at login */
};

struct cli {
	char		*config_dir;	/* $XDG_CONFIG_HOME/ntm, or -c DIR */
	char		*state_dir;	/* $XDG_STATE_HOME/ntm, or -c DIR */
	int		 verbose;
	int		 in_shell;
	const struct cmd_entry *const *cmds;	/* the command table */
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
	char	*token;		/* for the DC alone */
	int64_t	 token_expires;
	char	*cs_tokens[NTM_CS_TOKENS_MAX];	/* one per CS, each for that CS alone */
	int	 ncs_tokens;
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

/* ---- running commands and output (cli.c, help.c) ---------------------- */

/* Runs argv[0] as a command of cli->cmds; unknown: message + EXIT_USAGE. */
int  cli_dispatch(struct cli *cli, int argc, char **argv);
/* "ntm: CMD: message" on stderr (cmd may be NULL). */
void cli_err(const char *cmd, const char *fmt, ...) NTM_PRINTF(2, 3);
/* Global usage (commands of table, exit codes) to fp. */
void cli_usage(FILE *fp, const struct cmd_entry *const *table);
/* Prints json (stolen) compactly with a newline on stdout. */
void cli_print_json(json_t *j);

/* ---- HTTP calls to the DC (dchttp.c) ------------------------------------- */

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

#endif
