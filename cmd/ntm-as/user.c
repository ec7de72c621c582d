/*
 * user.c - `ntm-as user add|del|list|passwd|lock|unlock`.
 *
 * Accounts live only here; passwords are read with read_secret() (never from
 * argv) and stored as Argon2id strings.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ntm-as.h"

struct user_args {
	const char	*name;
	const char	*password_file;
	int		 json;
};

static int
bad_name(const char *name)
{
	as_errx("user '%s': invalid name (lowercase letters, digits and '-', "
	    "starting with a letter, not ending with '-', at most %d)", name, NTM_USER_MAX);
	return EXIT_USAGE;
}

static int
no_user(const char *name)
{
	as_errx("no user '%s'", name);
	return EXIT_FAIL;
}

/* Reads a new password for name and hashes it into out. */
static int
new_pwhash(const struct user_args *a, char out[NTM_PWHASH_STR])
{
	char pw[AS_PASSWORD_MAX + 1], prompt[NTM_USER_MAX + 32];
	int n, err;

	snprintf(prompt, sizeof(prompt), "Password for %s: ", a->name);
	if ((n = read_secret(prompt, a->password_file, 1, pw, sizeof(pw))) < 0)
		return EXIT_FAIL;
	err = ntm_pwhash(out, pw, (size_t)n);
	ntm_wipe(pw, sizeof(pw));
	if (err < 0) {
		as_errx("cannot hash the password: %s", ntm_strerror(err));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

static int
user_add(struct as *as, const struct user_args *a)
{
	struct as_user u;
	char hash[NTM_PWHASH_STR];
	int err, ret;

	/* Check first, so nobody types a password for nothing. */
	if ((err = as_db_user_get(as->db, a->name, &u)) == 0) {
		ntm_wipe(&u, sizeof(u));
		as_errx("user '%s' already exists", a->name);
		return EXIT_FAIL;
	}
	if (err != NTM_ERR_NOTFOUND)
		return as_db_failed(as, "cannot read users");
	if ((ret = new_pwhash(a, hash)) != EXIT_OK)
		return ret;
	err = as_db_user_add(as->db, a->name, hash, now_unix());
	ntm_wipe(hash, sizeof(hash));
	if (err == NTM_ERR_EXISTS) {
		as_errx("user '%s' already exists", a->name);
		return EXIT_FAIL;
	}
	if (err < 0)
		return as_db_failed(as, "cannot add the user");
	return EXIT_OK;
}

/* The DCs and CSs must refuse the user's tokens from now on (queued for
 * the daemon's push): its sessions end. */
static int
queue_revocation(struct as *as, const char *name)
{
	int n = as_revoke_queue_user(as->db, name, now_unix());

	if (n < 0)
		return as_db_failed(as, "cannot queue the revocation of the user's tokens");
	if (n > 0)
		printf("revocation of %s's tokens at %d DC%s queued for the servers\n",
		    name, n, n == 1 ? "" : "s");
	return EXIT_OK;
}

static int
user_del(struct as *as, const struct user_args *a)
{
	int err = queue_revocation(as, a->name);

	if (err != EXIT_OK)
		return err;
	err = as_db_user_del(as->db, a->name);

	if (err == NTM_ERR_NOTFOUND)
		return no_user(a->name);
	if (err < 0)
		return as_db_failed(as, "cannot delete the user");
	return EXIT_OK;
}

static int
user_passwd(struct as *as, const struct user_args *a)
{
	struct as_user u;
	char hash[NTM_PWHASH_STR];
	int err, ret;

	if ((err = as_db_user_get(as->db, a->name, &u)) == NTM_ERR_NOTFOUND)
		return no_user(a->name);
	ntm_wipe(&u, sizeof(u));
	if (err < 0)
		return as_db_failed(as, "cannot read users");
	if ((ret = new_pwhash(a, hash)) != EXIT_OK)
		return ret;
	err = as_db_user_set_pw(as->db, a->name, hash, now_unix());
	ntm_wipe(hash, sizeof(hash));
	if (err == NTM_ERR_NOTFOUND)
		return no_user(a->name);
	if (err < 0)
		return as_db_failed(as, "cannot change the password");
	/* Whoever had the old password may hold tokens: they end too. */
	return queue_revocation(as, a->name);
}

static int
set_locked(struct as *as, const struct user_args *a, int locked)
{
	int err = as_db_user_set_locked(as->db, a->name, locked, now_unix());

	if (err == NTM_ERR_NOTFOUND)
		return no_user(a->name);
	if (err < 0)
		return as_db_failed(as, "cannot update the user");
	return EXIT_OK;
}

static int
user_lock(struct as *as, const struct user_args *a)
{
	int ret = set_locked(as, a, 1);

	return ret == EXIT_OK ? queue_revocation(as, a->name) : ret;
}

static int
user_unlock(struct as *as, const struct user_args *a)
{
	return set_locked(as, a, 0);
}

/* Listing: collect rows first so the human form can align its columns. */
struct user_row {
	char	name[NTM_USER_MAX + 1];
	int	locked;
	int64_t	created;
};
struct user_rows {
	struct user_row	*v;
	size_t		 n, cap;
};

static int
collect_user(const struct as_user *u, void *arg)
{
	struct user_rows *r = arg;
	struct user_row *nv;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		if ((nv = reallocarray(r->v, r->cap, sizeof(*nv))) == NULL)
			return NTM_ERR_NOMEM;
		r->v = nv;
	}
	memcpy(r->v[r->n].name, u->name, sizeof(u->name));
	r->v[r->n].locked = u->locked;
	r->v[r->n].created = u->created;
	r->n++;
	return 0;
}

static int
user_list(struct as *as, const struct user_args *a)
{
	struct user_rows rows = { 0 };
	json_t *arr = NULL;
	char when[32];
	size_t i, w = strlen("NAME");
	int err, ret = EXIT_FAIL;

	if ((err = as_db_user_each(as->db, collect_user, &rows)) < 0) {
		if (err == NTM_ERR_NOMEM)
			as_errx("out of memory");
		else
			as_db_failed(as, "cannot list users");
		goto cleanup;
	}
	if (a->json) {
		if ((arr = json_array()) == NULL)
			goto cleanup;
		for (i = 0; i < rows.n; i++) {
			json_t *o = json_pack("{s:s, s:b, s:I}", "name", rows.v[i].name,
			    "locked", rows.v[i].locked, "created", (json_int_t)rows.v[i].created);
			if (o == NULL || json_array_append_new(arr, o) < 0)
				goto cleanup;
		}
		if (json_dumpf(arr, stdout, JSON_INDENT(2)) < 0)
			goto cleanup;
		putchar('\n');
	} else {
		for (i = 0; i < rows.n; i++)
			if (strlen(rows.v[i].name) > w)
				w = strlen(rows.v[i].name);
		printf("%-*s  %-6s  %s\n", (int)w, "NAME", "LOCKED", "CREATED");
		for (i = 0; i < rows.n; i++) {
			as_fmt_time(when, sizeof(when), rows.v[i].created);
			printf("%-*s  %-6s  %s\n", (int)w, rows.v[i].name,
			    rows.v[i].locked ? "yes" : "no", when);
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

/* ---- the command table ---------------------------------------------------- */

/* The NAME checked, the database opened, then fn. */
static int
user_run(struct as *as, struct cmd_call *c,
    int (*fn)(struct as *, const struct user_args *))
{
	struct user_args *a = c->args;

	a->name = c->npos ? c->pos[0] : NULL;
	if (a->name && !ntm_valid_user(a->name))
		return bad_name(a->name);
	if (as_open_db(as, 1) != EXIT_OK)
		return EXIT_FAIL;
	return fn(as, a);
}

/* A subcommand; use_ is what follows "user SUB" in its missing-NAME line. */
#define USER_SUB(fn, name_, takes_, min_, use_, summary_)			\
	static int fn##_run(struct as *as, struct cmd_call *c)			\
	{ return user_run(as, c, fn); }						\
	AS_EXEC(fn##_run)							\
	static const struct cmd_entry fn##_entry = {				\
		.name = name_, .summary = summary_, .takes = takes_,		\
		.usage = (min_) ? "NAME" : "", .min = (min_), .max = (min_),	\
		.missing = "missing NAME (usage: user " name_ use_ ")",		\
		.exec = fn##_run_exec,						\
	};

USER_SUB(user_add, "add", "password-file", 1, " NAME [--password-file FILE]",
    "add an account (password from stdin or FILE)")
USER_SUB(user_del, "del", "", 1, " NAME",
    "delete an account; queue the revocation of its tokens at the CS")
USER_SUB(user_list, "list", "json", 0, "", "the accounts, locked or not, and when made")
USER_SUB(user_passwd, "passwd", "password-file", 1, " NAME [--password-file FILE]",
    "set an account's password")
USER_SUB(user_lock, "lock", "", 1, " NAME",
    "refuse an account's logins; queue the revocation of its tokens")
USER_SUB(user_unlock, "unlock", "", 1, " NAME", "let a locked account log in again")

static const struct cmd_opt user_opts[] = {
	{ .name = "password-file", .arg = "FILE", .help = "add, passwd: read the password "
	  "from FILE (else stdin, or the terminal)", .type = CMD_FILE,
	  .off = offsetof(struct user_args, password_file) },
	SRV_OPT_JSON(struct user_args),
	SRV_OPT_HELP,
	SRV_OPT_END
};

static const struct cmd_entry *const user_subs[] = {
	&user_add_entry, &user_del_entry, &user_list_entry, &user_passwd_entry,
	&user_lock_entry, &user_unlock_entry, NULL
};

const struct cmd_entry as_user_entry = {
	.name = "user",
	.summary = "manage the accounts",
	.usage = "add|del|list|passwd|lock|unlock [NAME]",
	.opts = user_opts,
	.subs = user_subs,
	.flags = CMD_SUBOPTS_STRICT,
	.missing = "missing command (add, del, list, passwd, lock or unlock)",
	.args_size = sizeof(struct user_args),
};
