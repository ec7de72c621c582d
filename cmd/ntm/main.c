/*
 * main.c - ntm, the client: global options and the command table.
 *
 * The table below is the one source for `--help` of every command,
 * `ntm help`, completion inside `ntm shell` and `ntm help --commands`
 * (which scripts/docs-check.sh compares with ntm(1) and the completions).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/thread.h>
#include <jansson.h>

#include "common.h"
#include "ntm-cli.h"

static const struct cli_sub tunnel_subs[] = {
	{ "ping", "count interval ipv6 timeout json" },
	{ "open", "ipv6 udp exec local-port wait timeout json" },
	{ "listen", "udp count exec json" },
	{ "list", "json" },
	{ "close", "json" },
	{ "forward", "local remote remove ipv6 json" },
	{ NULL, NULL }
};

static const struct cli_sub keys_subs[] = {
	{ "exchange", "timeout json" },
	{ "list", "json" },
	{ "show", "json" },
	{ "rotate", "timeout json" },
	{ "forget", "json" },
	{ NULL, NULL }
};

const struct cli_cmd cli_commands[] = {
	{ "login", login_main, "log in at a DC and save the session",
	  "DC", login_opts, NULL },
	{ "logout", logout_main, "end the session at the DC and forget it",
	  "", logout_opts, NULL },
	{ "status", status_main, "show the session and whether the DC still holds it",
	  "", status_opts, NULL },
	{ "up", up_main, "start the agent: register with the DC, hold tunnels",
	  "[NAME] (the TUN interface, with --tun)", up_opts, NULL },
	{ "down", down_main, "stop the agent",
	  "", down_opts, NULL },
	{ "register", register_main, "register with the DC once and show what it saw",
	  "", register_opts, NULL },
	{ "tunnel", tunnel_main, "tunnels to peers: ping, open, listen, list, close, forward",
	  "ping|open|listen|list|close|forward [PEER] [PORT]", tunnel_opts,
	  tunnel_subs },
	{ "keys", keys_main, "end-to-end keys with peers: exchange, list, show, rotate, forget",
	  "exchange|list|show|rotate|forget [PEER]", keys_opts, keys_subs },
	{ "send", send_main, "send a file end to end encrypted through the cache server",
	  "PEER... [FILE|-]", send_opts, NULL },
	{ "fetch", fetch_main, "fetch, decrypt and confirm what peers sent",
	  "", fetch_opts, NULL },
	{ "shell", shell_main, "interactive shell with completion and history",
	  "", shell_opts, NULL },
	{ "help", help_main, "show help for ntm or one command",
	  "[COMMAND]", help_opts, NULL },
	{ NULL, NULL, NULL, NULL, NULL, NULL }
};

const struct cli_cmd *
cli_find(const char *name)
{
	for (const struct cli_cmd *c = cli_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

const struct cli_sub *
cli_find_sub(const struct cli_cmd *cmd, const char *name)
{
	if (cmd->subs == NULL)
		return NULL;
	for (const struct cli_sub *s = cmd->subs; s->name; s++)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

int
cli_sub_has_opt(const struct cli_sub *sub, const char *opt)
{
	size_t n = strlen(opt);

	if (sub == NULL || strcmp(opt, "help") == 0)
		return 1;
	for (const char *p = sub->opts; *p; ) {
		size_t w = strcspn(p, " ");

		if (w == n && strncmp(p, opt, n) == 0)
			return 1;
		p += w;
		p += strspn(p, " ");
	}
	return 0;
}

int
cli_dispatch(struct cli *cli, int argc, char **argv)
{
	const struct cli_cmd *cmd;

	if (argc < 1)
		return EXIT_USAGE;
	if ((cmd = cli_find(argv[0])) == NULL) {
		cli_err(NULL, "unknown command '%s' (see 'ntm help')", argv[0]);
		return EXIT_USAGE;
	}
	return cmd->fn(cli, argc, argv);
}

void
cli_err(const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	if (cmd)
		fprintf(stderr, "ntm: %s: %s\n", cmd, msg);
	else
		fprintf(stderr, "ntm: %s\n", msg);
}

int
cli_parse_timeout(const char *cmd, const char *s, long *out)
{
	if (parse_long(s, 1, NTM_CLI_TIMEOUT_MAX, out) < 0) {
		cli_err(cmd, "--timeout '%s': expected seconds 1..%d", s, NTM_CLI_TIMEOUT_MAX);
		return -1;
	}
	return 0;
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

/* ---- option parser driven by the command's cli_opt table --------------- */

void
cli_args_init(struct cli_args *a, const struct cli_cmd *cmd, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	a->argc = argc;
	a->argv = argv;
	a->i = 1;
	if ((a->pos = calloc((size_t)argc + 1, sizeof(*a->pos))) == NULL)
		fatal("calloc");
}

void
cli_args_free(struct cli_args *a)
{
	free(a->pos);
	a->pos = NULL;
}

static const struct cli_opt *
find_long(const struct cli_opt *o, const char *name, size_t len)
{
	for (; o->name; o++)
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

static const struct cli_opt *
find_short(const struct cli_opt *o, int ch)
{
	for (; o->name; o++)
		if (o->shortopt && o->shortopt == ch)
			return o;
	return NULL;
}

int
cli_getopt(struct cli_args *a)
{
	static char shortname[3];
	const char *cmd = a->cmd->name;
	const struct cli_opt *o;

	a->optarg = NULL;
	for (;;) {
		char *s;

		if (a->shortbuf) {
			/* inside a group of short options: "-jh" */
			s = a->argv[a->i];
			int ch = (unsigned char)s[a->shortbuf];
			if (ch == '\0') {
				a->shortbuf = 0;
				a->i++;
				continue;
			}
			snprintf(shortname, sizeof(shortname), "-%c", ch);
			a->optname = shortname;
			if ((o = find_short(a->cmd->opts, ch)) == NULL) {
				cli_err(cmd, "unknown option '-%c' (see 'ntm %s --help')", ch, cmd);
				return -1;
			}
			a->shortbuf++;
			if (o->arg) {
				if (s[a->shortbuf] != '\0')
					a->optarg = s + a->shortbuf;
				else if (a->i + 1 < a->argc)
					a->optarg = a->argv[++a->i];
				else {
					cli_err(cmd, "option '-%c' needs an argument %s", ch, o->arg);
					return -1;
				}
				a->shortbuf = 0;
				a->i++;
			}
			return o->key;
		}
		if (a->i >= a->argc)
			return 0;
		s = a->argv[a->i];
		if (a->dashdash || s[0] != '-' || s[1] == '\0') {
			a->pos[a->npos++] = s;
			a->i++;
			continue;
		}
		if (strcmp(s, "--") == 0) {
			a->dashdash = 1;
			a->i++;
			continue;
		}
		if (s[1] != '-') {
			a->shortbuf = 1;
			continue;
		}
		/* "--name" or "--name=value" */
		const char *eq = strchr(s + 2, '=');
		size_t len = eq ? (size_t)(eq - (s + 2)) : strlen(s + 2);
		if ((o = find_long(a->cmd->opts, s + 2, len)) == NULL) {
			cli_err(cmd, "unknown option '%.*s' (see 'ntm %s --help')",
			    (int)(len + 2), s, cmd);
			return -1;
		}
		a->optname = s;
		a->i++;
		if (o->arg == NULL && eq) {
			cli_err(cmd, "option '--%s' takes no argument", o->name);
			return -1;
		}
		if (o->arg) {
			if (eq)
				a->optarg = eq + 1;
			else if (a->i < a->argc)
				a->optarg = a->argv[a->i++];
			else {
				cli_err(cmd, "option '--%s' needs an argument %s", o->name, o->arg);
				return -1;
			}
		}
		return o->key;
	}
}

/* ---- main ---------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	struct cli cli;
	const char *dir = NULL;
	char err[512];
	int verbose = 0, i, ret;

	log_init("ntm", 0);
	for (i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (s[0] != '-' || s[1] == '\0')
			break;
		if (strcmp(s, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			cli_usage(stdout);
			return EXIT_OK;
		}
		if (strcmp(s, "-V") == 0 || strcmp(s, "--version") == 0) {
			printf("ntm %s (protocol %d)\n", NTM_VERSION, NTM_PROTOCOL_VERSION);
			return EXIT_OK;
		}
		if (strncmp(s, "-c", 2) == 0) {
			if (s[2] != '\0')
				dir = s + 2;
			else if (i + 1 < argc)
				dir = argv[++i];
			else {
				cli_err(NULL, "option '-c' needs an argument DIR");
				return EXIT_USAGE;
			}
			if (*dir == '\0') {
				cli_err(NULL, "-c '': empty directory name");
				return EXIT_USAGE;
			}
			continue;
		}
		if (s[1] == 'v' && strspn(s + 1, "v") == strlen(s + 1)) {
			verbose += (int)strlen(s + 1);
			continue;
		}
		cli_err(NULL, "unknown option '%s' (see 'ntm --help')", s);
		return EXIT_USAGE;
	}
	if (i >= argc) {
		cli_usage(stderr);
		return EXIT_USAGE;
	}
	if (cli_find(argv[i]) == NULL) {
		cli_err(NULL, "unknown command '%s' (see 'ntm help')", argv[i]);
		return EXIT_USAGE;
	}

	log_init("ntm", verbose);
	if (ntm_crypto_init() < 0) {
		cli_err(NULL, "cannot initialise libsodium");
		return EXIT_FAIL;
	}
	evthread_use_pthreads();
	curl_global_init(CURL_GLOBAL_DEFAULT);

	if ((ret = cli_init(&cli, dir, verbose, err, sizeof(err))) != 0) {
		cli_err(NULL, "%s", err);
		curl_global_cleanup();
		return ret;
	}
	ret = cli_dispatch(&cli, argc - i, argv + i);
	cli_free(&cli);
	curl_global_cleanup();
	fflush(stdout);
	if (ferror(stdout) && ret == EXIT_OK)
		ret = EXIT_FAIL;
	return ret;
}
