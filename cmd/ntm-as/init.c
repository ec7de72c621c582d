/*
 * init.c - `ntm-as init [--force]` and `ntm-as pubkey`.
 *
 * init makes everything the AS needs from nothing: the state directory, the
 * Ed25519 identity (the trust anchor of the whole deployment), the demo CA,
 * the AS's own TLS certificate and the database.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
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

#define INIT_IP_MAX	16

struct init_args {
	int		 force;
	const char	*ips[INIT_IP_MAX];
	size_t		 nips;
};

/* --ip ADDR, repeatable. */
static int
init_ip(void *args, const struct cmd_opt *o, const char *value)
{
	struct init_args *a = args;
	unsigned char ipbuf[16];

	if (inet_pton(AF_INET, value, ipbuf) != 1 && inet_pton(AF_INET6, value, ipbuf) != 1) {
		as_errx("init: --ip '%s': not an IPv4 or IPv6 address", value);
		return -1;
	}
	if (a->nips == INIT_IP_MAX) {
		as_errx("init: at most %zu --ip", a->nips);
		return -1;
	}
	a->ips[a->nips++] = value;
	return 0;
}

static int
init_run(struct as *as, struct cmd_call *call)
{
	const struct init_args *a = call->args;
	struct srv_conf *c = &as->conf;
	const char *sans[8 + 16];
	char cn[NTM_NAME_MAX + 32];
	size_t nsans = 0;
	int err;

	if (!a->force && access(c->identity, F_OK) == 0) {
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
	for (size_t i = 0; i < a->nips; i++)
		add_san(sans, &nsans, sizeof(sans) / sizeof(sans[0]), a->ips[i]);
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

static int
pubkey_run(struct as *as, struct cmd_call *c)
{
	if (as_load_key(as) != EXIT_OK)
		return EXIT_FAIL;
	return print_pubkey(as->pk);
}

AS_EXEC(init_run)
AS_EXEC(pubkey_run)

static const struct cmd_opt init_opts[] = {
	{ .name = "force", .help = "replace an existing identity", .type = CMD_FLAG,
	  .off = offsetof(struct init_args, force) },
	{ .name = "ip", .arg = "ADDR", .help = "an address for the TLS certificate "
	  "besides the name and loopback (repeatable)", .type = CMD_CALL, .set = init_ip },
	SRV_OPT_HELP,
	SRV_OPT_END
};

const struct cmd_entry as_init_entry = {
	.name = "init",
	.summary = "create the state directory, AS key, demo CA, TLS certificate and database",
	.usage = "",
	.opts = init_opts,
	.max = 0,
	.args_size = sizeof(struct init_args),
	.exec = init_run_exec,
};

static const struct cmd_opt pubkey_opts[] = { SRV_OPT_HELP, SRV_OPT_END };

const struct cmd_entry as_pubkey_entry = {
	.name = "pubkey",
	.summary = "print the AS public key (base64url)",
	.usage = "",
	.opts = pubkey_opts,
	.max = 0,
	.exec = pubkey_run_exec,
};
