/*
 * main.c - ntm-as: global options, the subcommand table, shared loaders.
 *
 *   ntm-as [-dnv] [-f FILE] [COMMAND ...]
 *
 * With no command it runs the daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ntm-as.h"

static const struct as_cmd commands[] = {
	{ "init",   cmd_init,   "init [--force] [--ip ADDR]..." },
	{ "pubkey", cmd_pubkey, "pubkey" },
	{ "user",   cmd_user,   "user add|del|list|passwd|lock|unlock ..." },
	{ "server", cmd_server, "server add|list|revoke ..." },
};

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: %s [-dnv] [-f FILE] [COMMAND ...]\n", log_prog());
	fprintf(f, "       %s -h | -V\n\n", log_prog());
	fprintf(f, "With no command, run the Account Server daemon.\n\n"
	    "options:\n"
	    "  -d          stay in the foreground, log to stderr\n"
	    "  -f FILE     configuration file (default %s)\n"
	    "  -n          check the configuration and keys, then exit\n"
	    "  -v          more verbose logging (repeatable)\n"
	    "  -h, --help  show this help\n"
	    "  -V, --version  show the version\n\n"
	    "commands:\n", srv_conf_default(NTM_ROLE_AS));
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s\n", commands[i].usage);
	fprintf(f, "\nSubcommands of user and server:\n"
	    "  user add NAME [--password-file FILE]\n"
	    "  user del NAME\n"
	    "  user list [--json]\n"
	    "  user passwd NAME [--password-file FILE]\n"
	    "  user lock NAME\n"
	    "  user unlock NAME\n"
	    "  server add --role dc|rs|cs --name NAME --key B64 [--days N]\n"
	    "             [--tls-dir DIR] [--ip ADDR]...\n"
	    "  server list [--json]\n"
	    "  server revoke SERIAL\n");
}

void
as_usage_line(FILE *f, const char *text)
{
	fprintf(f, "usage: %s [-f FILE] %s\n", log_prog(), text);
}

void
as_errx(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", log_prog());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
as_err(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	fprintf(stderr, "%s: ", log_prog());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(saved));
}

int
as_getopt(const char *cmd, int argc, char *argv[], const char *opts,
    const struct option *longopts)
{
	int ch;

	opterr = 0;
	ch = getopt_long(argc, argv, opts, longopts, NULL);
	if (ch == '?') {
		const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "";

		if (strncmp(bad, "--", 2) == 0)
			as_errx("%s: unknown option or missing value: '%s'", cmd, bad);
		else if (optopt && strchr(opts, optopt) != NULL)
			as_errx("%s: option '-%c' needs a value", cmd, optopt);
		else
			as_errx("%s: unknown option '-%c'", cmd, optopt ? optopt : '?');
	}
	return ch;
}

/* Reads the AS identity once; 0 or an exit code. */
int
as_load_key(struct as *as)
{
	struct stat st;
	int err;

	if (as->has_key)
		return EXIT_OK;
	if ((err = ntm_key_load(as->conf.identity, as->sk, sizeof(as->sk))) < 0) {
		if (err == NTM_ERR_IO && errno == ENOENT)
			as_errx("%s: no identity key (run '%s init' first)",
			    as->conf.identity, log_prog());
		else if (err == NTM_ERR_IO)
			as_err("%s", as->conf.identity);
		else if (stat(as->conf.identity, &st) == 0 && (st.st_mode & 077) != 0)
			as_errx("%s: readable by group or others (chmod 600)",
			    as->conf.identity);
		else
			as_errx("%s: %s", as->conf.identity, ntm_strerror(err));
		return EXIT_FAIL;
	}
	ntm_sign_pk(as->pk, as->sk);
	as->has_key = 1;
	return EXIT_OK;
}

/* Opens the database; with must_exist, refuses to create a new one outside
 * `init`, so a typo in the config does not silently start an empty AS. */
int
as_open_db(struct as *as, int must_exist)
{
	int err;

	if (as->db)
		return EXIT_OK;
	if (must_exist && access(as->conf.db, F_OK) < 0) {
		if (errno == ENOENT)
			as_errx("%s: no database (run '%s init' first)", as->conf.db,
			    log_prog());
		else
			as_err("%s", as->conf.db);
		return EXIT_FAIL;
	}
	if ((err = as_db_open(as->conf.db, &as->db)) < 0) {
		as_errx("%s: %s", as->conf.db, ntm_strerror(err));
		as->db = NULL;
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

void
as_close(struct as *as)
{
	ntm_db_close(as->db);
	as->db = NULL;
	ntm_wipe(as->sk, sizeof(as->sk));
	as->has_key = 0;
	srv_conf_free(&as->conf);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ "version",	no_argument,	NULL, 'V' },
		{ NULL,		0,		NULL, 0 }
	};
	struct as as;
	char err[512];
	const struct as_cmd *cmd = NULL;
	int ch, ret = EXIT_FAIL, curl_ok = 0;
	size_t i;

	memset(&as, 0, sizeof(as));
	log_init("ntm-as", 0);

	/* '+': stop at the first non-option, which starts the subcommand. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+df:hnvV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			as.foreground = 1;
			break;
		case 'f':
			as.conf_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'n':
			as.check_only = 1;
			break;
		case 'v':
			as.verbose++;
			break;
		case 'V':
			printf("ntm-as %s (protocol %d)\n", NTM_VERSION, NTM_PROTOCOL_VERSION);
			return EXIT_OK;
		default:
			if (optopt == 'f')
				as_errx("option '-f' needs a FILE");
			else if (optopt)
				as_errx("unknown option '-%c' (see '%s --help')", optopt,
				    log_prog());
			else
				as_errx("unknown option '%s' (see '%s --help')",
				    argv[optind - 1], log_prog());
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	log_init("ntm-as", as.verbose);

	if (argc > 0) {
		for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (strcmp(argv[0], commands[i].name) == 0)
				cmd = &commands[i];
		if (cmd == NULL) {
			as_errx("unknown command '%s' (see '%s --help')", argv[0], log_prog());
			return EXIT_USAGE;
		}
		if (as.check_only) {
			as_errx("-n takes no command");
			return EXIT_USAGE;
		}
	}

	if (ntm_crypto_init() < 0) {
		as_errx("cannot initialise libsodium");
		return EXIT_FAIL;
	}
	if (as.conf_path == NULL)
		as.conf_path = srv_conf_default(NTM_ROLE_AS);
	/* A command's --help needs no configuration: the commands answer it
	 * while parsing, before they touch as.conf. */
	for (i = 1; cmd && i < (size_t)argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			optind = 1;
			ret = cmd->fn(&as, argc, argv);
			goto cleanup;
		}
	}
	if (srv_conf_load(&as.conf, NTM_ROLE_AS, as.conf_path, err, sizeof(err)) < 0) {
		as_errx("%s", err);
		ret = EXIT_USAGE;
		goto cleanup;
	}

	if (cmd) {
		optind = 1;	/* each command parses its own options */
		ret = cmd->fn(&as, argc, argv);
		goto cleanup;
	}
	if (as.check_only) {
		ret = as_check(&as);
		goto cleanup;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		as_errx("cannot initialise libcurl");
		goto cleanup;
	}
	curl_ok = 1;
	ret = as_serve(&as);

cleanup:
	as_close(&as);
	if (curl_ok)
		curl_global_cleanup();
	return ret;
}
