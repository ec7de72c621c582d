/*
 * main.c - ntm, the client: global options, then the command (commands.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>
#include <jansson.h>

#include "common.h"
#include "ntm-cli.h"

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
			cli_usage(stdout, cli_commands);
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
		cli_usage(stderr, cli_commands);
		return EXIT_USAGE;
	}
	if (cmd_find(cli_commands, argv[i]) == NULL) {
		cli_err(NULL, "unknown command '%s' (see 'ntm help')", argv[i]);
		return EXIT_USAGE;
	}

	log_init("ntm", verbose);
	if (ntm_crypto_init() < 0) {
		cli_err(NULL, "cannot initialise libsodium");
		return EXIT_FAIL;
	}
	evthread_use_pthreads();
	/* Data objects are sealed and opened by OpenSSL's ChaCha20-Poly1305
	 * (the same bytes as libsodium's, in about a third of the time). */
	ntm_xaead_openssl();
	/* libcurl is opened and initialised by the first call that needs it
	 * (libcurl.c): most commands never load it. */

	if ((ret = cli_init(&cli, dir, verbose, err, sizeof(err))) != 0) {
		cli_err(NULL, "%s", err);
		return ret;
	}
	cli.cmds = cli_commands;
	ret = cli_dispatch(&cli, argc - i, argv + i);
	cli_free(&cli);
	fflush(stdout);
	if (ferror(stdout) && ret == EXIT_OK)
		ret = EXIT_FAIL;
	return ret;
}
