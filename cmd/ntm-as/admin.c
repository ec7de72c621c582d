/*
 * admin.c - what the admin commands of ntm-as share: one-line errors,
 * running on their own struct as, loading the AS key and opening the database.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ntm-as.h"

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
as_admin_run(void *ctx, struct cmd_call *c, int (*fn)(struct as *, struct cmd_call *))
{
	struct srv *s = ctx;
	struct as as;
	int ret;

	memset(&as, 0, sizeof(as));
	as.conf = s->conf;	/* borrowed: srv frees it */
	as.conf_path = s->conf_path;
	as.verbose = s->verbose;
	ret = fn(&as, c);
	as_close(&as);
	return ret;
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
	if (must_exist && !as_store_is_pg(as->conf.database) && access(as->conf.db, F_OK) < 0) {
		if (errno == ENOENT)
			as_errx("%s: no database (run '%s init' first)", as->conf.db,
			    log_prog());
		else
			as_err("%s", as->conf.db);
		return EXIT_FAIL;
	}
	if ((err = as_db_open(&as->conf, !must_exist, &as->db)) < 0) {
		if (err == NTM_ERR_NOTFOUND)
			as_errx("%s: no AS schema in the database (run '%s init' first)",
			    as_db_where(&as->conf), log_prog());
		else
			as_errx("%s: %s", as_db_where(&as->conf), ntm_strerror(err));
		as->db = NULL;
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

void
as_close(struct as *as)
{
	as_store_close(as->db);
	as->db = NULL;
	ntm_replay_free(as->sealed_seen);
	as->sealed_seen = NULL;
	ntm_wipe(as->sk, sizeof(as->sk));
	as->has_key = 0;
}

int
as_db_failed(struct as *as, const char *what)
{
	as_errx("%s: %s: %s", as_db_where(&as->conf), what, as_db_errmsg(as->db));
	return EXIT_FAIL;
}
