/*
 * server.c - `ntm-as server add|list|revoke`: the AS as root of trust.
 *
 * Every server's Ed25519 identity is enrolled here; the AS signs a struct
 * ntm_cert for it whose serial is the database row. Revocation is a column
 * the daemon reads on every signed request, so it takes effect at once.
 */
#include <arpa/inet.h>
#include <getopt.h>
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

static int
db_failed(struct as *as, const char *what)
{
	as_errx("%s: %s: %s", as->conf.db, what, as_db_errmsg(as->db));
	return EXIT_FAIL;
}

/* ---- server add ---------------------------------------------------------- */

#define ADD_USAGE "server add --role dc|rs|cs --name NAME --key B64 [--days N] " \
	"[--tls-dir DIR] [--ip ADDR]..."

struct add_args {
	const char	*role_s, *name, *key_s, *days_s, *tls_dir;
	const char	*ips[AS_IP_MAX];
	size_t		 nips;
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

static int
server_add(struct as *as, int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "role",	required_argument,	NULL, 'r' },
		{ "name",	required_argument,	NULL, 'N' },
		{ "key",	required_argument,	NULL, 'k' },
		{ "days",	required_argument,	NULL, 'D' },
		{ "tls-dir",	required_argument,	NULL, 't' },
		{ "ip",		required_argument,	NULL, 'i' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	struct add_args a;
	struct as_server s;
	struct ntm_cert cert;
	char b64[NTM_B64_LEN(NTM_CERT_MAX)];
	char *crt = NULL, *key = NULL;
	int ch, ret = EXIT_FAIL, in_tx = 0, err;
	int64_t now;

	memset(&a, 0, sizeof(a));
	optind = 0;
	while ((ch = as_getopt("server add", argc, argv, "h", longopts)) != -1) {
		switch (ch) {
		case 'r': a.role_s = optarg; break;
		case 'N': a.name = optarg; break;
		case 'k': a.key_s = optarg; break;
		case 'D': a.days_s = optarg; break;
		case 't': a.tls_dir = optarg; break;
		case 'i':
			if (a.nips == AS_IP_MAX) {
				as_errx("server add: at most %d --ip", AS_IP_MAX);
				return EXIT_USAGE;
			}
			a.ips[a.nips++] = optarg;
			break;
		case 'h':
			as_usage_line(stdout, ADD_USAGE);
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		as_errx("server add: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if ((ret = add_validate(&a)) != EXIT_OK)
		return ret;
	ret = EXIT_FAIL;

	if (as_load_key(as) != EXIT_OK || as_open_db(as, 1) != EXIT_OK)
		return EXIT_FAIL;

	/* One transaction: a serial is only spent if everything was issued. */
	if (ntm_db_exec(as->db, "BEGIN IMMEDIATE") < 0) {
		db_failed(as, "cannot start a transaction");
		goto cleanup;
	}
	in_tx = 1;
	now = now_unix();
	memset(&s, 0, sizeof(s));
	s.role = a.role;
	snprintf(s.name, sizeof(s.name), "%s", a.name);
	memcpy(s.pk, a.pk, sizeof(s.pk));
	s.not_before = now - AS_CERT_SKEW;
	s.not_after = now + (int64_t)a.days * 86400;
	s.created = now;
	if (as_db_server_add(as->db, &s) < 0) {
		db_failed(as, "cannot add the server");
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

	if (a.tls_dir) {
		crt = xasprintf("%s/tls.crt", a.tls_dir);
		key = xasprintf("%s/tls.key", a.tls_dir);
		if (issue_tls(as, &a, crt, key) != EXIT_OK)
			goto cleanup;
	}
	if (ntm_db_exec(as->db, "COMMIT") < 0) {
		db_failed(as, "cannot commit");
		goto cleanup;
	}
	in_tx = 0;
	printf("%s\n", b64);
	if (fflush(stdout) != 0) {
		as_err("stdout");
		goto cleanup;
	}
	ret = EXIT_OK;
cleanup:
	if (in_tx)
		(void)!ntm_db_exec(as->db, "ROLLBACK");
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
server_list(struct as *as, int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json",	no_argument,	NULL, 'J' },
		{ "help",	no_argument,	NULL, 'h' },
		{ NULL,		0,		NULL, 0 }
	};
	struct srv_rows rows = { 0 };
	json_t *arr = NULL;
	char when[32], serial[24];
	size_t i, wname = strlen("NAME"), wserial = strlen("SERIAL");
	int ch, json = 0, err, ret = EXIT_FAIL;

	optind = 0;
	while ((ch = as_getopt("server list", argc, argv, "h", longopts)) != -1) {
		switch (ch) {
		case 'J':
			json = 1;
			break;
		case 'h':
			as_usage_line(stdout, "server list [--json]");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		as_errx("server list: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (as_open_db(as, 1) != EXIT_OK)
		return EXIT_FAIL;
	if ((err = as_db_server_each(as->db, collect_server, &rows)) < 0) {
		if (err == NTM_ERR_NOMEM)
			as_errx("out of memory");
		else
			db_failed(as, "cannot list servers");
		goto cleanup;
	}

	if (json) {
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
server_revoke(struct as *as, int argc, char *argv[])
{
	long serial;
	int err;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		as_usage_line(stdout, "server revoke SERIAL");
		return EXIT_OK;
	}
	if (argc != 2) {
		as_errx("server revoke: %s (usage: server revoke SERIAL)",
		    argc < 2 ? "missing SERIAL" : "too many arguments");
		return EXIT_USAGE;
	}
	if (parse_long(argv[1], 1, LONG_MAX, &serial) < 0) {
		as_errx("server revoke: serial '%s': not a positive number", argv[1]);
		return EXIT_USAGE;
	}
	if (as_open_db(as, 1) != EXIT_OK)
		return EXIT_FAIL;
	if ((err = as_db_server_revoke(as->db, serial, now_unix())) == NTM_ERR_NOTFOUND) {
		as_errx("no server with serial %ld", serial);
		return EXIT_FAIL;
	}
	if (err < 0)
		return db_failed(as, "cannot revoke");
	return EXIT_OK;
}

/* ---- dispatch ------------------------------------------------------------ */

static const struct {
	const char	*name;
	int		(*fn)(struct as *, int, char *[]);
	const char	*usage;
} subs[] = {
	{ "add",    server_add,    ADD_USAGE },
	{ "list",   server_list,   "server list [--json]" },
	{ "revoke", server_revoke, "server revoke SERIAL" },
};

int
cmd_server(struct as *as, int argc, char *argv[])
{
	size_t i;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
			as_usage_line(stdout, subs[i].usage);
		return EXIT_OK;
	}
	if (argc >= 2)
		for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
			if (strcmp(argv[1], subs[i].name) == 0)
				return subs[i].fn(as, argc - 1, argv + 1);
	if (argc >= 2)
		as_errx("server: unknown command '%s' (add, list or revoke)", argv[1]);
	else
		as_errx("server: missing command (add, list or revoke)");
	return EXIT_USAGE;
}
