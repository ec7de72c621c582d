/*
 * init.c - `ntm-as init [--force]` and `ntm-as pubkey`.
 *
 * init makes everything the AS needs from nothing: the state directory, the
 * Ed25519 identity (the trust anchor of the whole deployment), the demo CA,
 * the AS's own TLS certificate and the database.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ntm-as.h"

static int
print_pubkey(const uint8_t pk[NTM_SIGN_PK])
{
	char b64[NTM_B64_LEN(NTM_SIGN_PK)];

	if (ntm_b64_encode(b64, sizeof(b64), pk, NTM_SIGN_PK) < 0)
		return EXIT_FAIL;
	printf("%s\n", b64);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* A wildcard listen address is no name to put in a certificate. */
static int
is_wildcard(const char *addr)
{
	return strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0 ||
	    strcmp(addr, "*") == 0;
}

static void
add_san(const char **sans, size_t *n, size_t max, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(sans[i], s) == 0)
			return;
	if (*n + 1 < max)
		sans[(*n)++] = s;
	sans[*n] = NULL;
}

int
cmd_init(struct as *as, int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "force",	no_argument,	NULL, 'F' },
		{ "ip",		required_argument, NULL, 'i' },
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 }
	};
	struct srv_conf *c = &as->conf;
	const char *sans[8 + 16], *ips[16];
	char cn[NTM_NAME_MAX + 32];
	size_t nsans = 0, nips = 0;
	unsigned char ipbuf[16];
	int ch, force = 0, err;

	optind = 0;
	while ((ch = as_getopt("init", argc, argv, "h", longopts)) != -1) {
		switch (ch) {
		case 'F':
			force = 1;
			break;
		case 'i':
			if (inet_pton(AF_INET, optarg, ipbuf) != 1 &&
			    inet_pton(AF_INET6, optarg, ipbuf) != 1) {
				as_errx("init: --ip '%s': not an IPv4 or IPv6 address", optarg);
				return EXIT_USAGE;
			}
			if (nips == sizeof(ips) / sizeof(ips[0])) {
				as_errx("init: at most %zu --ip", nips);
				return EXIT_USAGE;
			}
			ips[nips++] = optarg;
			break;
		case 'h':
			as_usage_line(stdout, "init [--force] [--ip ADDR]...");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		as_errx("init: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}

	if (!force && access(c->identity, F_OK) == 0) {
		as_errx("%s: identity already exists (use 'init --force' to replace it)",
		    c->identity);
		return EXIT_FAIL;
	}
	if ((err = ntm_mkdirs(c->state_dir, 0700)) == NTM_ERR_INVAL) {
		/* An existing directory (e.g. made by mkdir -p): init is the
		 * command that sets the state up, so it tightens it. */
		if (chmod(c->state_dir, 0700) < 0) {
			as_err("%s", c->state_dir);
			return EXIT_FAIL;
		}
		log_info("%s: mode set to 0700", c->state_dir);
	} else if (err < 0) {
		as_err("%s", c->state_dir);
		return EXIT_FAIL;
	}

	ntm_sign_keypair(as->pk, as->sk);
	if ((err = ntm_key_save(c->identity, as->sk, sizeof(as->sk))) < 0) {
		as_errx("%s: cannot write the identity: %s", c->identity, ntm_strerror(err));
		return EXIT_FAIL;
	}
	as->has_key = 1;

	snprintf(cn, sizeof(cn), "ntm demo CA (%s)", c->name);
	if ((err = ntm_tls_make_ca(c->ca_cert, c->ca_key, cn, AS_CA_DAYS)) < 0) {
		as_errx("%s: cannot make the demo CA: %s", c->ca_cert, ntm_strerror(err));
		return EXIT_FAIL;
	}
	(void)chmod(c->ca_key, 0600);

	add_san(sans, &nsans, sizeof(sans) / sizeof(sans[0]), c->name);
	if (!is_wildcard(c->listen_addr))
		add_san(sans, &nsans, sizeof(sans) / sizeof(sans[0]), c->listen_addr);
	add_san(sans, &nsans, sizeof(sans) / sizeof(sans[0]), "127.0.0.1");
	add_san(sans, &nsans, sizeof(sans) / sizeof(sans[0]), "::1");
	for (size_t i = 0; i < nips; i++)
		add_san(sans, &nsans, sizeof(sans) / sizeof(sans[0]), ips[i]);
	if ((err = ntm_tls_issue(c->ca_cert, c->ca_key, c->tls_cert, c->tls_key, sans,
	    AS_TLS_DAYS)) < 0) {
		as_errx("%s: cannot issue the TLS certificate: %s", c->tls_cert,
		    ntm_strerror(err));
		return EXIT_FAIL;
	}
	(void)chmod(c->tls_key, 0600);

	if (as_open_db(as, 0) != EXIT_OK)
		return EXIT_FAIL;
	return print_pubkey(as->pk);
}

int
cmd_pubkey(struct as *as, int argc, char *argv[])
{
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		as_usage_line(stdout, "pubkey");
		return EXIT_OK;
	}
	if (argc != 1) {
		as_errx("pubkey: unexpected argument '%s'", argv[1]);
		return EXIT_USAGE;
	}
	if (as_load_key(as) != EXIT_OK)
		return EXIT_FAIL;
	return print_pubkey(as->pk);
}
