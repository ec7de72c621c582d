/*
 * srv.c - bootstrap shared by ntm-as, ntm-dc, ntm-rs and ntm-cs.
 *
 *   PROG [-dnv] [-f FILE] [init [--force] | pubkey | ROLE-COMMAND ... ]
 *   PROG --routes | --commands
 *
 * The commands are entries of the command model (cmd.h): init and pubkey
 * here, the role's in its spec; one parser reads their options and operands
 * (and their --help, before the configuration is read), and the global help
 * and --commands are made from the same table.
 *
 * Without a command it runs the daemon: config, identity key, certificate
 * (checked against the AS key, this role, this name and this key; the AS,
 * the trust anchor, has none), TLS material, then the HTTPS listener with
 * /v1/health and /v1/status plus the role's route tables.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "srv.h"
#include "msg.h"

#define CERT_FILE_MAX	4096

void
srv_errx(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", log_prog());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const struct cmd_entry srv_init_entry, srv_pubkey_entry;

/* The commands of spec: init and pubkey unless the role replaces them, then
 * the role's, into t (ends with NULL). */
#define SRV_CMDS_MAX	16
static void
srv_commands(const struct srv_spec *spec, const struct cmd_entry *t[SRV_CMDS_MAX + 1])
{
	static const struct cmd_entry *const builtin[] = {
		&srv_init_entry, &srv_pubkey_entry, NULL
	};
	size_t n = 0;

	for (const struct cmd_entry *const *b = builtin; *b; b++)
		if (cmd_find(spec->cmds, (*b)->name) == NULL)
			t[n++] = *b;
	for (const struct cmd_entry *const *c = spec->cmds; c && *c && n < SRV_CMDS_MAX; c++)
		t[n++] = *c;
	t[n] = NULL;
}

static void
usage(const struct srv_spec *spec, FILE *fp)
{
	const char *role = ntm_role_name(spec->role);
	const struct cmd_entry *t[SRV_CMDS_MAX + 1];
	char line[256];

	fprintf(fp,
	    "usage: %s [-dnv] [-f FILE] [COMMAND [ARGS]]\n"
	    "       %s -h | -V | --routes | --commands\n"
	    "\n"
	    "%s of ntm. Without a COMMAND, runs the daemon.\n",
	    spec->prog, spec->prog, spec->title);
	if (spec->note)
		fprintf(fp, "%s\n", spec->note);
	fprintf(fp,
	    "\n"
	    "Options (before the command):\n"
	    "  -d              stay in the foreground, log on stderr\n"
	    "  -f FILE         configuration file (default: $NTM_CONF or /etc/ntm/%s.conf)\n"
	    "  -n              check the configuration, keys and certificates, then exit\n"
	    "  -v              log more (repeatable)\n"
	    "  -h, --help      show this help and exit\n"
	    "  -V, --version   show the version and exit\n"
	    "  --routes        print the HTTP routes (method, path, checks, caller\n"
	    "                  roles, body limit; tab-separated) and exit\n"
	    "  --commands      print each command and subcommand with its options\n"
	    "                  (tab-separated) and exit\n"
	    "\n"
	    "Commands (COMMAND --help for the options):\n", role);
	srv_commands(spec, t);
	for (const struct cmd_entry *const *c = t; *c; c++) {
		if ((*c)->subs == NULL) {
			cmd_synopsis(line, sizeof(line), *c, NULL);
			if (strlen(line) > 24)
				fprintf(fp, "  %s\n  %-24s %s\n", line, "", (*c)->summary);
			else
				fprintf(fp, "  %-24s %s\n", line, (*c)->summary);
			continue;
		}
		fprintf(fp, "  %-24s %s\n", (*c)->name, (*c)->summary);
		for (const struct cmd_entry *const *sub = (*c)->subs; *sub; sub++) {
			cmd_synopsis(line, sizeof(line), *c, *sub);
			fprintf(fp, "    %s %s\n", (*c)->name, line);
		}
	}
	fprintf(fp, "\nSee %s(8) and ntm.conf(5).\n", spec->prog);
}

/* --commands: the command table, one line per command and subcommand. */
static int
print_commands(const struct srv_spec *spec)
{
	const struct cmd_entry *t[SRV_CMDS_MAX + 1];

	srv_commands(spec, t);
	cmd_dump(stdout, t);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- init / pubkey ------------------------------------------------------- */

static int
print_pubkey(const uint8_t pk[NTM_SIGN_PK])
{
	char b64[NTM_B64_LEN(NTM_SIGN_PK)];

	if (ntm_b64_encode(b64, sizeof(b64), pk, NTM_SIGN_PK) < 0)
		return 1;
	printf("%s\n", b64);
	return fflush(stdout) == 0 ? 0 : 1;
}

struct init_args {
	int	force;
};

/* init run as root with `user` set: the state directory is the user's, so
 * the daemon can write there once it dropped root. */
static int
give_state_dir(const struct srv_conf *c)
{
	struct passwd *pw;

	if (c->user == NULL || geteuid() != 0)
		return 0;
	if ((pw = getpwnam(c->user)) == NULL) {
		srv_errx("user '%s': no such user", c->user);
		return -1;
	}
	if (chown(c->state_dir, pw->pw_uid, pw->pw_gid) < 0) {
		srv_errx("state_dir %s: %s", c->state_dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int
init_exec(void *ctx, struct cmd_call *c)
{
	struct srv *s = ctx;
	const struct init_args *a = c->args;
	uint8_t sk[NTM_SIGN_SK], pk[NTM_SIGN_PK];
	int ret = 1, e;

	if ((e = ntm_mkdirs(s->conf.state_dir, 0700)) < 0) {
		srv_errx("state_dir %s: %s", s->conf.state_dir,
		    e == NTM_ERR_IO ? strerror(errno) : ntm_strerror(e));
		return 1;
	}
	if ((e = give_state_dir(&s->conf)) < 0)
		return 1;
	if (!a->force && access(s->conf.identity, F_OK) == 0) {
		srv_errx("%s: already exists (use init --force to replace it)",
		    s->conf.identity);
		return 1;
	}
	if (ntm_sign_keypair(pk, sk) < 0) {
		srv_errx("cannot make an Ed25519 key");
		goto cleanup;
	}
	if ((e = ntm_key_save(s->conf.identity, sk, sizeof(sk))) < 0) {
		srv_errx("%s: %s", s->conf.identity,
		    e == NTM_ERR_IO ? strerror(errno) : ntm_strerror(e));
		goto cleanup;
	}
	ret = print_pubkey(pk);
cleanup:
	ntm_wipe(sk, sizeof(sk));
	return ret;
}

static const struct cmd_opt init_opts[] = {
	{ .name = "force", .help = "replace an existing identity key", .type = CMD_FLAG,
	  .off = offsetof(struct init_args, force) },
	SRV_OPT_HELP,
	SRV_OPT_END
};

static const struct cmd_entry srv_init_entry = {
	.name = "init",
	.summary = "create the state directory and identity key; print the public key",
	.usage = "",
	.opts = init_opts,
	.max = 0,
	.args_size = sizeof(struct init_args),
	.exec = init_exec,
};

static int
load_identity(struct srv *s, char *err, size_t errlen)
{
	int e;

	if ((e = ntm_key_load(s->conf.identity, s->sk, sizeof(s->sk))) < 0) {
		if (e == NTM_ERR_NOTFOUND || (e == NTM_ERR_IO && errno == ENOENT))
			snprintf(err, errlen, "%s: no identity key (run '%s init')",
			    s->conf.identity, s->spec->prog);
		else
			snprintf(err, errlen, "%s: cannot load the identity key: %s",
			    s->conf.identity,
			    e == NTM_ERR_IO ? strerror(errno) : ntm_strerror(e));
		return -1;
	}
	ntm_sign_pk(s->pk, s->sk);
	return 0;
}

static int
pubkey_exec(void *ctx, struct cmd_call *c)
{
	struct srv *s = ctx;
	char err[512];

	(void)c;
	if (load_identity(s, err, sizeof(err)) < 0) {
		srv_errx("%s", err);
		return 1;
	}
	return print_pubkey(s->pk);
}

static const struct cmd_opt pubkey_opts[] = { SRV_OPT_HELP, SRV_OPT_END };

static const struct cmd_entry srv_pubkey_entry = {
	.name = "pubkey",
	.summary = "print the identity public key (base64url)",
	.usage = "",
	.opts = pubkey_opts,
	.max = 0,
	.exec = pubkey_exec,
};

/* ---- certificate --------------------------------------------------------- */

static void
fmt_time(int64_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "%lld", (long long)t);
}

/* Loads the AS-issued certificate and checks it is ours and valid now. */
static int
load_cert(struct srv *s, char *err, size_t errlen)
{
	const char *path = s->conf.cert;
	struct ntm_cert *c = &s->cert;
	char *text = NULL, t1[32], t2[32];
	size_t len;
	int e, ret = -1;

	if ((e = ntm_file_read(path, CERT_FILE_MAX, &text, &len)) < 0) {
		if (e == NTM_ERR_NOTFOUND || (e == NTM_ERR_IO && errno == ENOENT))
			snprintf(err, errlen, "%s: no certificate (save the output of "
			    "'ntm-as server add --role %s --name %s --key KEY' there)",
			    path, ntm_role_name(s->spec->role), s->conf.name);
		else
			snprintf(err, errlen, "%s: cannot read the certificate: %s", path,
			    e == NTM_ERR_IO ? strerror(errno) : ntm_strerror(e));
		return -1;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
	    text[len - 1] == ' ' || text[len - 1] == '\t'))
		text[--len] = '\0';
	if (ntm_cert_from_b64(c, text) < 0) {
		snprintf(err, errlen, "%s: not a base64url ntm server certificate", path);
		goto cleanup;
	}
	if ((e = ntm_cert_verify(c, s->conf.as_pk, now_unix())) < 0) {
		if (e == NTM_ERR_EXPIRED) {
			fmt_time(c->not_before, t1, sizeof(t1));
			fmt_time(c->not_after, t2, sizeof(t2));
			snprintf(err, errlen, "%s: certificate is not valid now "
			    "(valid from %s to %s)", path, t1, t2);
		} else
			snprintf(err, errlen, "%s: certificate is not signed by as_key "
			    "(%s)", path, s->conf.as_key);
		goto cleanup;
	}
	if (c->role != s->spec->role) {
		snprintf(err, errlen, "%s: certificate is for role '%s', not '%s'", path,
		    ntm_role_name(c->role) ? ntm_role_name(c->role) : "?",
		    ntm_role_name(s->spec->role));
		goto cleanup;
	}
	if (strcmp(c->name, s->conf.name) != 0) {
		snprintf(err, errlen, "%s: certificate names '%s', not '%s' (name in %s)",
		    path, c->name, s->conf.name, s->conf.path);
		goto cleanup;
	}
	if (ntm_memcmp(c->pk, s->pk, NTM_SIGN_PK) != 0) {
		snprintf(err, errlen, "%s: certificate is for another key than %s",
		    path, s->conf.identity);
		goto cleanup;
	}
	ret = 0;
cleanup:
	free(text);
	return ret;
}

/* ---- HTTP routes --------------------------------------------------------- */

static void
on_health(struct ntm_req *req, void *arg)
{
	struct srv *s = arg;
	char ak[NTM_B64_LEN(NTM_SIGN_PK)];

	/* The AS key this server trusts (its own, at the AS): what a client
	 * without one seals its first login to (trust on first use). */
	if (ntm_b64_encode(ak, sizeof(ak), s->spec->anchor ? s->pk : s->conf.as_pk,
	    NTM_SIGN_PK) < 0)
		ak[0] = '\0';
	ntm_reply_json(req, 200, json_pack("{s:s, s:s, s:s, s:i, s:s}",
	    "role", ntm_role_name(s->spec->role), "name", s->conf.name,
	    "version", NTM_VERSION, "protocol", NTM_PROTOCOL_VERSION, "as_key", ak));
}

static void
on_status(struct ntm_req *req, void *arg)
{
	struct srv *s = arg;
	const struct ntm_cert *peer = ntm_req_cert(req);

	log_debug("status asked by %s '%s' from %s",
	    peer ? ntm_role_name(peer->role) : "?", peer ? peer->name : "?",
	    ntm_req_peer(req));
	ntm_reply_json(req, 200, json_pack("{s:s, s:s, s:s, s:I}",
	    "role", ntm_role_name(s->spec->role), "name", s->conf.name,
	    "version", NTM_VERSION, "uptime", (json_int_t)(now_unix() - s->started)));
}

/*
 * POST /v1/revoke (docs/protocol.md §7.5): the AS's push of revocations.
 * Server certificates are kept here (revoked.c); accounts and tokens go to
 * the role's revoke hook (the DC ends those sessions), else are only
 * counted.
 */
static void
on_revoke(struct ntm_req *req, void *arg)
{
	struct srv *s = arg;
	struct ntm_m_revoke m;
	struct ntm_jerr jerr;
	int nserv, e = 0;

	memset(&jerr, 0, sizeof(jerr));
	if (ntm_msg_revoke_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	if (json_array_size(m.tokens) + json_array_size(m.accounts) +
	    json_array_size(m.servers) > SRV_REVOKE_MAX) {
		ntm_reply_error(req, 400, "bad_field", "tokens",
		    "at most %d revocations per request", SRV_REVOKE_MAX);
		return;
	}
	if ((nserv = srv_revoked_store(s, req, m.servers)) < 0)
		return;
	if (s->spec->revoke && (e = s->spec->revoke(s, req, &m)) != 0)
		return;		/* answered */
	ntm_reply_json(req, 200, json_pack("{s:I, s:I, s:I}",
	    "servers", (json_int_t)json_array_size(m.servers),
	    "accounts", (json_int_t)json_array_size(m.accounts),
	    "tokens", (json_int_t)json_array_size(m.tokens)));
}

void
srv_anchor_cert(const char *name, const uint8_t sk[NTM_SIGN_SK], struct ntm_cert *c)
{
	int64_t now = now_unix();

	memset(c, 0, sizeof(*c));
	c->version = 1;
	c->role = NTM_ROLE_AS;
	snprintf(c->name, sizeof(c->name), "%s", name);
	ntm_sign_pk(c->pk, sk);
	c->serial = 1;
	c->not_before = now - 60;
	c->not_after = now + 10L * 365 * 86400;
	ntm_cert_sign(c, sk);
}

const char *
srv_health_name(json_t *health, const char **role)
{
	const char *r = json_string_value(json_object_get(health, "role"));
	const char *n = json_string_value(json_object_get(health, "name"));

	*role = NULL;
	if (r == NULL || n == NULL || !ntm_valid_dnsname(n))
		return NULL;
	*role = r;
	return n;
}

const char *
srv_as_name(const struct srv *s)
{
	return s->as_name[0] ? s->as_name : NULL;
}

/* Every caller's certificate but the AS's own: refused once revoked. */
static int
revoked_check(const struct ntm_cert *c, void *arg)
{
	return srv_revoked_has(arg, c->serial) ? NTM_ERR_REVOKED : 0;
}

/* The last two rows are left out at the anchor. */
static const struct ntm_http_route srv_routes[] = {
	{ "GET", "/v1/health",	0,		  .fn = on_health },
	{ "GET", "/metrics",	0,		  .fn = srv_on_metrics },
	{ "GET", "/v1/status",	NTM_ROUTE_SIGNED, .fn = on_status },
	{ "POST", "/v1/revoke", NTM_ROUTE_SIGNED | NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED,
	  .fn = on_revoke, .roles = NTM_ROUTE_ROLE(NTM_ROLE_AS), .deny = 403 },
	{ .method = NULL }
};
#define SRV_ROUTES(spec)	((spec)->anchor ? 2 : 4)

static size_t
table_len(const struct ntm_http_route *t)
{
	size_t n = 0;

	while (t[n].method)
		n++;
	return n;
}

/* srv.c's own routes (no /v1/status at the anchor), then the role's. */
static int
add_routes(struct srv *s)
{
	const struct ntm_http_route *const *t;

	if (ntm_httpd_routes(s->httpd, srv_routes, SRV_ROUTES(s->spec), s) < 0)
		return -1;
	for (t = s->spec->routes; t && *t; t++)
		if (ntm_httpd_routes(s->httpd, *t, table_len(*t), s->priv) < 0)
			return -1;
	return 0;
}

/* The callers a route admits: "-" for anyone (unsigned), else roles. */
static const char *
route_roles(const struct ntm_http_route *r, char *buf, size_t cap)
{
	if (!(r->flags & NTM_ROUTE_SIGNED))
		return "-";
	return ntm_route_roles_str(r->roles, buf, cap);
}

/* --routes: one line per route, "METHOD PATH CHECKS ROLES BODY_MAX" with tabs. */
static int
print_routes(const struct srv_spec *spec)
{
	const struct ntm_http_route *const *t;
	const struct ntm_http_route *r;
	char flags[64], roles[32];
	size_t max = spec->max_body ? spec->max_body : NTM_BODY_MAX, n, i;

	for (i = 0; i < SRV_ROUTES(spec); i++) {
		r = &srv_routes[i];
		printf("%s\t%s\t%s\t%s\t%zu\n", r->method, r->path,
		    ntm_route_flags_str(r->flags, flags, sizeof(flags)),
		    route_roles(r, roles, sizeof(roles)), max);
	}
	for (t = spec->routes; t && *t; t++)
		for (n = 0; (r = &(*t)[n])->method; n++)
			printf("%s\t%s\t%s\t%s\t%zu\n", r->method, r->path,
			    ntm_route_flags_str(r->flags, flags, sizeof(flags)),
			    route_roles(r, roles, sizeof(roles)),
			    r->body_max && r->body_max < max ? r->body_max : max);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- the daemon ---------------------------------------------------------- */

static int
check_readable(const char *what, const char *path, char *err, size_t errlen)
{
	if (access(path, R_OK) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
cert_check(const struct ntm_cert *c, void *arg)
{
	struct srv *s = arg;

	return s->spec->cert_check ? s->spec->cert_check(c, s->priv) : 0;
}

static int
bearer_check(struct ntm_req *req, const char *token, void *arg)
{
	struct srv *s = arg;

	return s->spec->bearer(req, token, s->priv);
}

static int
bearer_precheck(const char *token, void *arg)
{
	struct srv *s = arg;

	return s->spec->bearer_precheck(token, s->priv);
}

/* Everything up to (not including) listening; shared by -n and the daemon. */
static int
daemon_setup(struct srv *s, char *err, size_t errlen)
{
	if (load_identity(s, err, errlen) < 0 ||
	    (!s->spec->anchor && load_cert(s, err, errlen) < 0))
		return -1;
	if (check_readable("tls_cert", s->conf.tls_cert, err, errlen) < 0 ||
	    check_readable("tls_key", s->conf.tls_key, err, errlen) < 0)
		return -1;
	if ((s->base = event_base_new()) == NULL) {
		snprintf(err, errlen, "cannot create the event loop");
		return -1;
	}
	s->httpd = ntm_httpd_new(s->base, s->conf.tls_cert, s->conf.tls_key,
	    s->spec->max_body ? s->spec->max_body : NTM_BODY_MAX);
	if (s->httpd == NULL) {
		snprintf(err, errlen, "cannot load the TLS certificate %s with key %s",
		    s->conf.tls_cert, s->conf.tls_key);
		return -1;
	}
	{
		struct ntm_httpd_limits lim = {
			(unsigned)s->conf.http_max_conns,
			(unsigned)s->conf.http_max_conns_per_addr,
			(unsigned)s->conf.http_header_timeout_s,
			(unsigned)s->conf.http_body_timeout_s,
			(unsigned)s->conf.http_body_min_rate,
			(size_t)s->conf.http_body_mem_max,
			(unsigned)s->conf.signed_rate,
			(unsigned)s->conf.signed_burst,
			(unsigned)s->conf.replay_per_peer,
		};
		struct rlimit rl;
		/* Sockets past the cap a moment, refused or making room
		 * (lib/io/httpd.c: an eighth more, and 16). */
		rlim_t want = (rlim_t)s->conf.http_max_conns + s->conf.http_max_conns / 8 + 16 + 256;

		ntm_httpd_set_limits(s->httpd, &lim);
		/* One descriptor per connection, and some to spare for the
		 * database, the log, DNS and outgoing requests. */
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
			rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (!s->spec->anchor && srv_revoked_load(s, err, errlen) < 0)
		return -1;
	if (s->spec->setup && s->spec->setup(s, err, errlen) < 0)
		return -1;
	/* Answers to signed requests are signed too (the anchor's with a
	 * certificate for its own key, signed by itself), and requests name
	 * the server by its certificate's name. */
	if (s->spec->anchor) {
		struct ntm_cert self;

		srv_anchor_cert(s->conf.name, s->sk, &self);
		if (ntm_httpd_set_identity(s->httpd, s->sk, &self) < 0) {
			snprintf(err, errlen, "cannot set the identity of the HTTPS server");
			return -1;
		}
	} else if (ntm_httpd_set_identity(s->httpd, s->sk, &s->cert) < 0) {
		snprintf(err, errlen, "cannot set the identity of the HTTPS server");
		return -1;
	}
	/* The anchor's own key signs the certificates it trusts; the others
	 * refuse those the AS revoked since. */
	ntm_httpd_set_trust(s->httpd, s->spec->anchor ? s->pk : s->conf.as_pk,
	    s->spec->anchor ? cert_check : revoked_check, s);
	if (s->spec->bearer)
		ntm_httpd_set_bearer(s->httpd, bearer_check, s);
	if (s->spec->bearer_precheck)
		ntm_httpd_set_bearer_precheck(s->httpd, bearer_precheck, s);
	if (add_routes(s) < 0) {
		snprintf(err, errlen, "cannot add the HTTP routes");
		return -1;
	}
	return srv_metrics_setup(s, err, errlen);
}

static void
on_reload(void *arg)
{
	struct srv *s = arg;

	s->spec->reload(s);
}

static int
run_daemon(struct srv *s)
{
	char err[1024];
	int ret = 1, e, pidfile_written = 0;

	s->started = now_unix();
	if (daemon_setup(s, err, sizeof(err)) < 0) {
		srv_errx("%s", err);
		goto cleanup;
	}
	if (s->check_only && s->conf.user && getpwnam(s->conf.user) == NULL) {
		srv_errx("%s: user '%s': no such user", s->conf.path, s->conf.user);
		goto cleanup;
	}
	if (s->check_only) {
		fprintf(stderr, "%s: %s: configuration OK\n", s->spec->prog, s->conf.path);
		ret = 0;
		goto cleanup;
	}
	if ((e = ntm_httpd_listen(s->httpd, s->conf.listen_addr, s->conf.listen_port,
	    &s->port)) < 0) {
		srv_errx("listen %s: %s", s->conf.listen,
		    e == NTM_ERR_IO ? strerror(errno) : ntm_strerror(e));
		goto cleanup;
	}
	if (daemon_signals(s->base, s->spec->reload ? on_reload : NULL, s) < 0) {
		srv_errx("cannot install the signal handlers");
		goto cleanup;
	}
	log_info("%s '%s' listening on %s%s%s:%u", ntm_role_name(s->spec->role),
	    s->conf.name, strchr(s->conf.listen_addr, ':') ? "[" : "",
	    s->conf.listen_addr, strchr(s->conf.listen_addr, ':') ? "]" : "",
	    (unsigned)s->port);
	if (!s->foreground) {
		/* setup hooks start no threads, so forking the loop is safe. */
		if (daemon(0, 0) < 0) {
			log_warn("daemon");
			goto cleanup;
		}
		log_syslog();	/* stderr is /dev/null from here on */
		if (event_reinit(s->base) < 0)
			log_warnx("event_reinit failed");
	}
	/* Threads after the fork, or they would not exist in the child. */
	if (s->spec->start && s->spec->start(s, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		goto cleanup;
	}
	if (srv_renew_start(s, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		goto cleanup;
	}
	if (s->conf.pidfile) {
		if (daemon_pidfile(s->conf.pidfile) < 0) {
			log_warn("pidfile %s", s->conf.pidfile);
			goto cleanup;
		}
		pidfile_written = 1;
	}
	/* Every socket is bound and every thread started: root is done. */
	if (daemon_drop_root(s->conf.user, s->conf.state_dir, s->conf.db, err,
	    sizeof(err)) < 0) {
		log_warnx("%s", err);
		goto cleanup;
	}
	if (s->conf.user && getuid() != 0)
		log_info("running as user '%s' (uid %lu)", s->conf.user,
		    (unsigned long)getuid());
	if (event_base_dispatch(s->base) < 0) {
		log_warnx("event loop failed");
		goto cleanup;
	}
	log_info("stopped");
	ret = 0;
cleanup:
	srv_renew_stop(s);
	if (s->spec->teardown && s->base)
		s->spec->teardown(s);
	ntm_httpd_free(s->httpd);
	s->httpd = NULL;
	srv_metrics_free(s);
	srv_revoked_free(s);
	daemon_free_signals();
	if (s->base)
		event_base_free(s->base);
	s->base = NULL;
	if (pidfile_written)
		unlink(s->conf.pidfile);
	return ret;
}

/* ---- main ---------------------------------------------------------------- */

/* The options before the command into s; -1 to go on, else the exit code. */
static int
global_opts(struct srv *s, int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help",	no_argument,	NULL, 'h' },
		{ "version",	no_argument,	NULL, 'V' },
		{ "routes",	no_argument,	NULL, 'R' },
		{ "commands",	no_argument,	NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	const struct srv_spec *spec = s->spec;
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+df:hnvV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			s->foreground = 1;
			break;
		case 'f':
			s->conf_path = optarg;
			break;
		case 'n':
			s->check_only = 1;
			break;
		case 'v':
			s->verbose++;
			break;
		case 'h':
			usage(spec, stdout);
			return 0;
		case 'V':
			printf("%s %s (protocol %d)\n", spec->prog, NTM_VERSION,
			    NTM_PROTOCOL_VERSION);
			return 0;
		case 'R':
			return print_routes(spec);
		case 'C':
			return print_commands(spec);
		default:
			if (optopt == 'f')
				srv_errx("option -f needs a FILE (try '%s --help')", spec->prog);
			else if (optopt)
				srv_errx("unknown option '-%c' (try '%s --help')", optopt,
				    spec->prog);
			else
				srv_errx("unknown option '%s' (try '%s --help')",
				    argv[optind - 1], spec->prog);
			return 2;
		}
	}
	return -1;
}

/* The command named argv[0] parsed into c: -1 to run it, else the exit
 * code (0 after its --help, which needs no configuration). */
static int
parse_command(struct srv *s, struct cmd_call *c, int argc, char *argv[])
{
	const struct srv_spec *spec = s->spec;
	const struct cmd_entry *t[SRV_CMDS_MAX + 1], *cmd;
	int r;

	srv_commands(spec, t);
	if ((cmd = cmd_find(t, argv[0])) == NULL) {
		srv_errx("unknown command '%s' (try '%s --help')", argv[0], spec->prog);
		return 2;
	}
	if (s->check_only) {
		srv_errx("-n cannot be used with a command");
		return 2;
	}
	if ((r = cmd_parse(c, spec->prog, cmd, argc, argv)) != CMD_PARSE_RUN) {
		cmd_call_free(c);
		return r == CMD_PARSE_HELP ? 0 : 2;
	}
	return -1;
}

/* The daemon itself, once the configuration is loaded. */
static int
daemon_main(struct srv *s)
{
	int ret;

	/* A daemon reports its start, stop and logins at info by default. */
	log_init(s->spec->prog, s->verbose + 1);
	if (evthread_use_pthreads() < 0) {
		srv_errx("cannot enable libevent threads");
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		srv_errx("cannot initialise libcurl");
		return 1;
	}
	ret = run_daemon(s);
	curl_global_cleanup();
	return ret;
}

int
srv_main(const struct srv_spec *spec, int argc, char *argv[])
{
	struct srv s;
	struct cmd_call c;
	char err[1024];
	int ret, command;

	memset(&s, 0, sizeof(s));
	memset(&c, 0, sizeof(c));
	s.spec = spec;
	log_init(spec->prog, 0);
	if ((ret = global_opts(&s, argc, argv)) >= 0)
		return ret;
	argc -= optind;
	argv += optind;

	if (ntm_crypto_init() < 0) {
		srv_errx("cannot initialise libsodium");
		return 1;
	}
	command = argc > 0;
	if (command && (ret = parse_command(&s, &c, argc, argv)) >= 0)
		return ret;
	if (s.conf_path == NULL)
		s.conf_path = srv_conf_default(spec->role);
	if (srv_conf_load(&s.conf, spec->role, s.conf_path, err, sizeof(err)) < 0) {
		srv_errx("%s", err);
		ret = 2;	/* a bad configuration file, as for ntm-as */
		goto cleanup;
	}
	if (command) {
		log_init(spec->prog, s.verbose);
		ret = cmd_exec(&s, &c);
	} else
		ret = daemon_main(&s);
cleanup:
	cmd_call_free(&c);
	ntm_wipe(s.sk, sizeof(s.sk));
	srv_conf_free(&s.conf);
	return ret;
}
