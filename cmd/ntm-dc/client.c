/*
 * client.c - "ntm-dc client list [--json]": the client devices this DC has
 * assigned addresses to, read straight from its database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "dc.h"

struct rows {
	struct dc_client	*v;
	int			*online;
	size_t			 n, cap;
};

static int
collect(const struct dc_client *c, int online, void *arg)
{
	struct rows *r = arg;

	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		struct dc_client *v = reallocarray(r->v, cap, sizeof(*v));
		int *o;

		if (v == NULL)
			return NTM_ERR_NOMEM;
		r->v = v;
		if ((o = reallocarray(r->online, cap, sizeof(*o))) == NULL)
			return NTM_ERR_NOMEM;
		r->online = o;
		r->cap = cap;
	}
	r->v[r->n] = *c;
	r->online[r->n] = online;
	r->n++;
	return 0;
}

static void
fmt_time(int64_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "%lld", (long long)t);
}

static int
print_json(const struct rows *r)
{
	json_t *arr = json_array();
	size_t i;
	int ret = 1;

	if (arr == NULL)
		return 1;
	for (i = 0; i < r->n; i++) {
		const struct dc_client *c = &r->v[i];

		if (json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b}",
		    "fqdn", c->fqdn, "user", c->user, "device", c->device, "vip4", c->vip4,
		    "vip6", c->vip6, "last_login", (json_int_t)c->last_login,
		    "online", r->online[i])) < 0)
			goto cleanup;
	}
	if (json_dumpf(arr, stdout, JSON_INDENT(2)) < 0)
		goto cleanup;
	putchar('\n');
	ret = 0;
cleanup:
	json_decref(arr);
	return ret;
}

static void
print_table(const struct rows *r)
{
	static const char *const head[] = { "FQDN", "USER", "DEVICE", "VIP4", "VIP6",
	    "LAST_LOGIN", "ONLINE" };
	int w[7];
	size_t i, k;
	char t[32];

	for (k = 0; k < 7; k++)
		w[k] = (int)strlen(head[k]);
	for (i = 0; i < r->n; i++) {
		const struct dc_client *c = &r->v[i];
		const char *cols[5] = { c->fqdn, c->user, c->device, c->vip4, c->vip6 };

		for (k = 0; k < 5; k++)
			if ((int)strlen(cols[k]) > w[k])
				w[k] = (int)strlen(cols[k]);
	}
	w[5] = 20;	/* 2026-01-01T00:00:00Z */
	printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], head[0], w[1], head[1],
	    w[2], head[2], w[3], head[3], w[4], head[4], w[5], head[5], head[6]);
	for (i = 0; i < r->n; i++) {
		const struct dc_client *c = &r->v[i];

		fmt_time(c->last_login, t, sizeof(t));
		printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], c->fqdn, w[1],
		    c->user, w[2], c->device, w[3], c->vip4, w[4], c->vip6, w[5], t,
		    r->online[i] ? "yes" : "no");
	}
}

static int
client_list(struct srv *s, int argc, char *argv[])
{
	struct rows r = { 0 };
	sqlite3 *db = NULL;
	char err[512];
	int json = 0, i, e, ret = 1;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("usage: %s [-f FILE] client list [--json]\n", s->spec->prog);
			return 0;
		} else {
			srv_errx("client list: unknown argument '%s' "
			    "(usage: client list [--json])", argv[i]);
			return 2;
		}
	}
	if (dc_db_open(s->conf.db, &db, err, sizeof(err)) < 0) {
		srv_errx("%s", err);
		return 1;
	}
	if ((e = dc_db_clients(db, now_unix(), collect, &r)) < 0) {
		srv_errx("db %s: %s", s->conf.db, ntm_strerror(e));
		goto cleanup;
	}
	if (json)
		ret = print_json(&r);
	else {
		print_table(&r);
		ret = 0;
	}
	if (fflush(stdout) != 0)
		ret = 1;
cleanup:
	free(r.v);
	free(r.online);
	ntm_db_close(db);
	return ret;
}

int
dc_cmd_client(struct srv *s, int argc, char *argv[])
{
	if (argc < 2) {
		srv_errx("client: missing command (usage: client list [--json])");
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		printf("usage: %s [-f FILE] client list [--json]\n", s->spec->prog);
		return 0;
	}
	if (strcmp(argv[1], "list") == 0)
		return client_list(s, argc - 1, argv + 1);
	srv_errx("client: unknown command '%s' (usage: client list [--json])", argv[1]);
	return 2;
}
