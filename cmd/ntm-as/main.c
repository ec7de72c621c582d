/*
 * main.c - ntm-as, the Account Server, on the server skeleton of
 * cmd/common/srv.c: its spec, the admin commands and the daemon's hooks.
 *
 *   ntm-as [-dnv] [-f FILE] [COMMAND ...]
 *
 * With no command it runs the daemon. The AS is the trust anchor: it has no
 * certificate of its own, and its key verifies those of the signed callers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ntm-as.h"
#include "prom.h"

static struct as daemon_as;

static const struct cmd_entry *const as_cmds[] = {
	&as_init_entry, &as_pubkey_entry, &as_user_entry, &as_server_entry, &as_device_entry,
	NULL
};

/* ---- the daemon's hooks ---------------------------------------------------- */

/* The database must exist: a typo in the config must not start an empty AS. */
static int
as_setup(struct srv *s, char *err, size_t errlen)
{
	struct as *as = &daemon_as;
	int e;

	memset(as, 0, sizeof(*as));
	s->priv = as;
	as->conf = s->conf;	/* borrowed */
	as->conf_path = s->conf_path;
	as->foreground = s->foreground;
	as->verbose = s->verbose;
	as->check_only = s->check_only;
	memcpy(as->sk, s->sk, sizeof(as->sk));
	memcpy(as->pk, s->pk, sizeof(as->pk));
	as->has_key = 1;
	as->base = s->base;
	as->httpd = s->httpd;
	if (!as_store_is_pg(as->conf.database) && access(as->conf.db, F_OK) < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "%s: no database (run '%s init' first)",
			    as->conf.db, s->spec->prog);
		else
			snprintf(err, errlen, "%s: %s", as->conf.db, strerror(errno));
		return -1;
	}
	if ((e = as_db_open(&as->conf, 0, &as->db)) < 0) {
		if (e == NTM_ERR_NOTFOUND)
			snprintf(err, errlen, "%s: no AS schema in the database (run '%s init' "
			    "first)", as_db_where(&as->conf), s->spec->prog);
		else
			snprintf(err, errlen, "%s: %s", as_db_where(&as->conf), ntm_strerror(e));
		as->db = NULL;
		return -1;
	}
	return 0;
}

static int
as_start(struct srv *s, char *err, size_t errlen)
{
	struct as *as = s->priv;

	if ((as->worker = ntm_worker_new(as->base, AS_WORKERS)) == NULL ||
	    (as->worker_known = ntm_worker_new(as->base, 1)) == NULL) {
		snprintf(err, errlen, "cannot start the worker threads");
		return -1;
	}
	ntm_worker_set_nice(as->worker, AS_NICE);
	if (as_push_start(as) < 0) {
		snprintf(err, errlen, "cannot start the revocation pushes");
		return -1;
	}
	/* Made now, not at the first unknown user: that one would take twice
	 * as long as the others and tell. */
	if (as_login_prepare() < 0) {
		snprintf(err, errlen, "cannot make the dummy password hash");
		return -1;
	}
	return 0;
}

static void
as_reload(struct srv *s)
{
	log_info("SIGHUP: nothing to reload (accounts and revocations are read live)");
}

/* Reverse order: finishing jobs reply through the httpd and use the db. */
static void
as_teardown(struct srv *s)
{
	struct as *as = s->priv;

	if (as == NULL)
		return;
	ntm_worker_free(as->worker);
	as->worker = NULL;
	ntm_worker_free(as->worker_known);
	as->worker_known = NULL;
	as_push_stop(as);
	as_close(as);
}

/* GET /metrics: logins, pushes, and the accounts and devices on record. */
static void
as_metrics(struct srv *s, struct ntm_prom *p)
{
	struct as *as = s->priv;
	int64_t n;

	as_login_metrics(p);
	as_push_metrics(as, p);
	if (as_sql_int(as->db, &n, "SELECT count(*) FROM users", NULL) == 0) {
		ntm_prom_family(p, "ntm_as_accounts", NTM_PROM_GAUGE, "Accounts on record");
		ntm_prom_int(p, NULL, n);
	}
	if (as_sql_int(as->db, &n, "SELECT count(*) FROM devices", NULL) == 0) {
		ntm_prom_family(p, "ntm_as_devices", NTM_PROM_GAUGE,
		    "Device certificates on record");
		ntm_prom_int(p, NULL, n);
	}
}

static const struct ntm_http_route *const as_route_tables[] = { as_routes, NULL };

static const struct srv_spec as_spec = {
	.role		= NTM_ROLE_AS,
	.prog		= "ntm-as",
	.title		= "Account Server",
	.note		= "It holds the accounts, issues the tokens and the server certificates,\n"
			  "and pushes revocations to the cache servers.",
	.cmds		= as_cmds,
	.anchor		= 1,
	.cert_check	= as_cert_check,
	.routes		= as_route_tables,
	.setup		= as_setup,
	.start		= as_start,
	.reload		= as_reload,
	.teardown	= as_teardown,
	.metrics	= as_metrics,
};

int
main(int argc, char *argv[])
{
	return srv_main(&as_spec, argc, argv);
}
