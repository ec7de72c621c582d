/*
 * server.c - `ntm-as server add|list|revoke`: the AS as root of trust.
 *
 * Every server's Ed25519 identity is enrolled here; the AS signs a struct
 * ntm_cert for it whose serial is the database row. Revocation is a column
 * the daemon reads on every signed request, so it takes effect at once.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ntm-as.h"

void
as_fmt_time(char *buf, size_t cap, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "%lld", (long long)t);
}

/* ---- server add ---------------------------------------------------------- */

/* The options of every server subcommand (those of add, and list's --json). */
struct add_args {
	const char	*role_s, *name, *key_s, *days_s, *tls_dir;
	const char	*ips[AS_IP_MAX];
	size_t		 nips;
	int		 json;		/* list */
	/* validated */
	int		 role;
	uint8_t		 pk[NTM_SIGN_PK];
	long		 days;
};

static int
is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int
add_validate(struct add_args *a)
{
	if (a->role_s == NULL || a->name == NULL || a->key_s == NULL) {
		as_errx("server add: --role, --name and --key are required");
		return EXIT_USAGE;
	}
	a->role = ntm_role_parse(a->role_s);
	if (a->role != NTM_ROLE_DC && a->role != NTM_ROLE_RS && a->role != NTM_ROLE_CS) {
		as_errx("server add: role '%s': must be dc, rs or cs", a->role_s);
		return EXIT_USAGE;
	}
	if (!ntm_valid_dnsname(a->name)) {
		as_errx("server add: name '%s': not a valid DNS name (lowercase "
		    "letters, digits and '-' in dot-separated labels)", a->name);
		return EXIT_USAGE;
	}
	if (ntm_b64_decode_exact(a->pk, sizeof(a->pk), a->key_s) < 0) {
		as_errx("server add: key '%s': not a base64url Ed25519 public key "
		    "(32 bytes)", a->key_s);
		return EXIT_USAGE;
	}
	a->days = AS_CERT_DAYS;
	if (a->days_s && parse_long(a->days_s, 1, AS_CERT_DAYS_MAX, &a->days) < 0) {
		as_errx("server add: days '%s': not a number from 1 to %d", a->days_s,
		    AS_CERT_DAYS_MAX);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < a->nips; i++) {
		if (!is_ip(a->ips[i])) {
			as_errx("server add: ip '%s': not an IPv4 or IPv6 address", a->ips[i]);
			return EXIT_USAGE;
		}
	}
	if (a->ips[0] && a->tls_dir == NULL) {
		as_errx("server add: --ip needs --tls-dir");
		return EXIT_USAGE;
	}
	return EXIT_OK;
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

/* DIR/tls.crt + DIR/tls.key from the demo CA for the server's name and IPs. */
static int
issue_tls(struct as *as, const struct add_args *a, const char *crt, const char *key)
{
	const char *sans[AS_IP_MAX + 4];
	size_t n = 0, i;
	int err;

	if (access(as->conf.ca_cert, R_OK) < 0 || access(as->conf.ca_key, R_OK) < 0) {
		as_err("%s: demo CA not readable (run '%s init' first)", as->conf.ca_cert,
		    log_prog());
		return EXIT_FAIL;
	}
	/* An existing directory may be shared; the key file is 0600 itself. */
	if ((err = ntm_mkdirs(a->tls_dir, 0700)) < 0 && err != NTM_ERR_INVAL) {
		as_err("%s", a->tls_dir);
		return EXIT_FAIL;
	}
	add_san(sans, &n, sizeof(sans) / sizeof(sans[0]), a->name);
	for (i = 0; i < a->nips; i++)
		add_san(sans, &n, sizeof(sans) / sizeof(sans[0]), a->ips[i]);
	add_san(sans, &n, sizeof(sans) / sizeof(sans[0]), "127.0.0.1");
	add_san(sans, &n, sizeof(sans) / sizeof(sans[0]), "::1");
	if ((err = ntm_tls_issue(as->conf.ca_cert, as->conf.ca_key, crt, key, sans,
	    (int)a->days)) < 0) {
		as_errx("%s: cannot issue the TLS certificate: %s", crt, ntm_strerror(err));
		return EXIT_FAIL;
	}
	if (chmod(key, 0600) < 0) {
		as_err("%s", key);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* --ip ADDR, repeatable. */
static int
add_ip(void *args, const struct cmd_opt *o, const char *value)
{
	struct add_args *a = args;

	if (a->nips == AS_IP_MAX) {
		as_errx("server add: at most %d --ip", AS_IP_MAX);
		return -1;
	}
	a->ips[a->nips++] = value;
	return 0;
}

static int
server_add(struct as *as, struct cmd_call *c)
{
	struct add_args *a = c->args;
	struct as_server s;
	struct ntm_cert cert;
	char b64[NTM_B64_LEN(NTM_CERT_MAX)];
	char *crt = NULL, *key = NULL;
	int ret = EXIT_FAIL, in_tx = 0, err;
	int64_t now;

	if ((ret = add_validate(a)) != EXIT_OK)
		return ret;
	ret = EXIT_FAIL;

	if (as_load_key(as) != EXIT_OK || as_open_db(as, 1) != EXIT_OK)
		return EXIT_FAIL;

	/* One transaction: a serial is only spent if everything was issued. */
	if (as_sql_begin(as->db) < 0) {
		as_db_failed(as, "cannot start a transaction");
		goto cleanup;
	}
	in_tx = 1;
	now = now_unix();
	memset(&s, 0, sizeof(s));
	s.role = a->role;
	snprintf(s.name, sizeof(s.name), "%s", a->name);
	memcpy(s.pk, a->pk, sizeof(s.pk));
	s.not_before = now - AS_CERT_SKEW;
	/* Short by default (server_cert_days): the server renews it itself
	 * (POST /v1/as/renew) while the AS has not revoked it. */
	s.not_after = now + (int64_t)(a->days_s ? a->days : as->conf.server_cert_days) * 86400;
	s.created = now;
	if (as_db_server_add(as->db, &s) < 0) {
		as_db_failed(as, "cannot add the server");
		goto cleanup;
	}

	memset(&cert, 0, sizeof(cert));
	cert.version = 1;
	cert.role = (uint8_t)s.role;
	snprintf(cert.name, sizeof(cert.name), "%s", s.name);
	memcpy(cert.pk, s.pk, sizeof(cert.pk));
	cert.serial = (uint64_t)s.serial;
	cert.not_before = s.not_before;
	cert.not_after = s.not_after;
	ntm_cert_sign(&cert, as->sk);
	if ((err = ntm_cert_to_b64(&cert, b64, sizeof(b64))) < 0) {
		as_errx("cannot encode the certificate: %s", ntm_strerror(err));
		goto cleanup;
	}

	if (a->tls_dir) {
		crt = xasprintf("%s/tls.crt", a->tls_dir);
		key = xasprintf("%s/tls.key", a->tls_dir);
		if (issue_tls(as, a, crt, key) != EXIT_OK)
			goto cleanup;
	}
	in_tx = 0;
	if (as_sql_end(as->db, 0) < 0) {
		as_db_failed(as, "cannot commit");
		goto cleanup;
	}
	printf("%s\n", b64);
	if (fflush(stdout) != 0) {
		as_err("stdout");
		goto cleanup;
	}
	ret = EXIT_OK;
cleanup:
	if (in_tx)
		(void)!as_sql_end(as->db, NTM_ERR_STATE);
	free(crt);
	free(key);
	return ret;
}

/* ---- server list --------------------------------------------------------- */

struct srv_rows {
	struct as_server	*v;
	size_t			 n, cap;
};

static int
collect_server(const struct as_server *s, void *arg)
{
	struct srv_rows *r = arg;
	struct as_server *nv;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		if ((nv = reallocarray(r->v, r->cap, sizeof(*nv))) == NULL)
			return NTM_ERR_NOMEM;
		r->v = nv;
	}
	r->v[r->n++] = *s;
	return 0;
}

static int
server_list(struct as *as, struct cmd_call *c)
{
	const struct add_args *a = c->args;
	struct srv_rows rows = { 0 };
	json_t *arr = NULL;
	char when[32], serial[24];
	size_t i, wname = strlen("NAME"), wserial = strlen("SERIAL");
	int err, ret = EXIT_FAIL;

	if (as_open_db(as, 1) != EXIT_OK)
		return EXIT_FAIL;
	if ((err = as_db_server_each(as->db, collect_server, &rows)) < 0) {
		if (err == NTM_ERR_NOMEM)
			as_errx("out of memory");
		else
			as_db_failed(as, "cannot list servers");
		goto cleanup;
	}

	if (a->json) {
		if ((arr = json_array()) == NULL)
			goto cleanup;
		for (i = 0; i < rows.n; i++) {
			const struct as_server *s = &rows.v[i];
			json_t *o = json_pack("{s:I, s:s, s:s, s:I, s:I, s:b, s:o}",
			    "serial", (json_int_t)s->serial, "role", ntm_role_name(s->role),
			    "name", s->name, "not_before", (json_int_t)s->not_before,
			    "not_after", (json_int_t)s->not_after,
			    "revoked", s->revoked_at != 0,
			    "revoked_at", s->revoked_at ? json_integer(s->revoked_at) :
			    json_null());
			if (o == NULL || json_array_append_new(arr, o) < 0)
				goto cleanup;
		}
		if (json_dumpf(arr, stdout, JSON_INDENT(2)) < 0)
			goto cleanup;
		putchar('\n');
	} else {
		for (i = 0; i < rows.n; i++) {
			size_t l = strlen(rows.v[i].name);
			if (l > wname)
				wname = l;
			l = (size_t)snprintf(serial, sizeof(serial), "%lld",
			    (long long)rows.v[i].serial);
			if (l > wserial)
				wserial = l;
		}
		printf("%-*s  %-4s  %-*s  %-20s  %s\n", (int)wserial, "SERIAL", "ROLE",
		    (int)wname, "NAME", "NOT_AFTER", "REVOKED");
		for (i = 0; i < rows.n; i++) {
			const struct as_server *s = &rows.v[i];
			as_fmt_time(when, sizeof(when), s->not_after);
			printf("%-*lld  %-4s  %-*s  %-20s  %s\n", (int)wserial,
			    (long long)s->serial, ntm_role_name(s->role), (int)wname, s->name,
			    when, s->revoked_at ? "yes" : "no");
		}
	}
	if (fflush(stdout) != 0) {
		as_err("stdout");
		goto cleanup;
	}
	ret = EXIT_OK;
cleanup:
	json_decref(arr);
	free(rows.v);
	return ret;
}

/* ---- server revoke ------------------------------------------------------- */

static int
server_revoke(struct as *as, struct cmd_call *c)
{
	long serial;
	int err;

	if (parse_long(c->pos[0], 1, LONG_MAX, &serial) < 0) {
		as_errx("server revoke: serial '%s': not a positive number", c->pos[0]);
		return EXIT_USAGE;
	}
	if (as_open_db(as, 1) != EXIT_OK)
		return EXIT_FAIL;
	if ((err = as_db_server_revoke(as->db, serial, now_unix())) == NTM_ERR_NOTFOUND) {
		as_errx("no server with serial %ld", serial);
		return EXIT_FAIL;
	}
	if (err < 0)
		return as_db_failed(as, "cannot revoke");
	return EXIT_OK;
}

/* ---- the command table ---------------------------------------------------- */

#define ADD_OPT(n, a_, f, h) { .name = n, .arg = a_, .help = h, .type = CMD_STRING, \
	.off = offsetof(struct add_args, f) }

static const struct cmd_opt server_opts[] = {
	ADD_OPT("role", "ROLE", role_s, "add: the server's role, dc, rs or cs"),
	ADD_OPT("name", "NAME", name, "add: the server's DNS name"),
	ADD_OPT("key", "B64", key_s, "add: its identity public key (its 'init' printed it)"),
	ADD_OPT("days", "N", days_s, "add: days the certificate is valid"),
	ADD_OPT("tls-dir", "DIR", tls_dir, "add: also issue its TLS certificate into DIR"),
	{ .name = "ip", .arg = "ADDR", .help = "add: an address for the TLS certificate "
	  "(repeatable)", .type = CMD_CALL, .set = add_ip },
	SRV_OPT_JSON(struct add_args),
	SRV_OPT_HELP,
	SRV_OPT_END
};

AS_EXEC(server_add)
AS_EXEC(server_list)
AS_EXEC(server_revoke)

static const struct cmd_entry server_add_entry = {
	.name = "add",
	.summary = "enrol a server: print its certificate (--role, --name, --key required)",
	.takes = "role name key days tls-dir ip",
	.max = 0,
	.exec = server_add_exec,
};

static const struct cmd_entry server_list_entry = {
	.name = "list",
	.summary = "the enrolled servers and their certificates",
	.takes = "json",
	.max = 0,
	.exec = server_list_exec,
};

static const struct cmd_entry server_revoke_entry = {
	.name = "revoke",
	.summary = "revoke the certificate with this serial",
	.usage = "SERIAL",
	.takes = "",
	.min = 1,
	.max = 1,
	.missing = "missing SERIAL (usage: server revoke SERIAL)",
	.exec = server_revoke_exec,
};

static const struct cmd_entry *const server_subs[] = {
	&server_add_entry, &server_list_entry, &server_revoke_entry, NULL
};

const struct cmd_entry as_server_entry = {
	.name = "server",
	.summary = "enrol, list and revoke the servers (certificates)",
	.usage = "add|list|revoke ...",
	.opts = server_opts,
	.subs = server_subs,
	.flags = CMD_SUBOPTS_STRICT,
	.missing = "missing command (add, list or revoke)",
	.args_size = sizeof(struct add_args),
};
