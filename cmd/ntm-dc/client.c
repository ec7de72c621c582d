/*
 * client.c - "ntm-dc client list [--json]": the client devices this DC has
 * assigned addresses to, read straight from its database; "ntm-dc client
 * del FQDN": one deleted, its address freed. And, in the daemon, devices
 * unseen for client_idle_days reclaimed, and the sessions of clients that
 * another process deleted ended (dc_client_tick).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "dc.h"
#include "probe.h"
#include "sess.h"

struct rows {
	struct dc_client	*v;
	int			*online;
	size_t			 n, cap;
	struct dc_loc_row	*loc;		/* by row; client_id 0 = never registered */
	struct dc_loc_row	*also;		/* its second family's; client_id 0 = none */
	int64_t			 now, keepalive_s;
};

/* Attaches a stored location to its row (clients are few; a scan is fine). */
static int
attach_loc(const struct dc_loc_row *l, void *arg)
{
	struct rows *r = arg;

	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].id == l->client_id)
			r->loc[i] = *l;
	return 0;
}

/* And a second family's location, to its row. */
static int
attach_also(const struct dc_loc_row *l, void *arg)
{
	struct rows *r = arg;

	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].id == l->client_id)
			r->also[i] = *l;
	return 0;
}

/* The locals column ("ip:port,ip:port") as an array. */
static json_t *
locals_json(const struct dc_loc_row *l)
{
	char buf[sizeof(l->locals)], *tok, *save = NULL;
	json_t *locals = json_array();

	snprintf(buf, sizeof(buf), "%s", l->locals);
	for (tok = strtok_r(buf, ",", &save); tok && locals; tok = strtok_r(NULL, ",", &save))
		json_array_append_new(locals, json_string(tok));
	return locals;
}

static int
registered(const struct rows *r, size_t i)
{
	return r->loc[i].client_id != 0 && !r->loc[i].offline &&
	    r->now - r->loc[i].last_seen < DC_ONLINE_FACTOR * r->keepalive_s;
}

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

		const struct dc_loc_row *l = &r->loc[i], *al = &r->also[i];
		json_t *loc = json_null(), *also = json_null();

		/* The second family's (protocol.md §4.2), as stored. */
		if (l->client_id != 0 && al->client_id != 0)
			also = json_pack("{s:s, s:o, s:b, s:I, s:b}", "reflexive", al->reflexive,
			    "locals", locals_json(al), "natted", al->natted, "last_seen",
			    (json_int_t)al->last_seen, "online", registered(r, i) &&
			    r->now - al->last_seen < DC_ONLINE_FACTOR * r->keepalive_s);
		if (l->client_id != 0)
			loc = json_pack("{s:s, s:o, s:b, s:s, s:s, s:b, s:I, s:b, s:o}", "reflexive",
			    l->reflexive, "locals", locals_json(l), "natted", l->natted, "nat",
			    ntm_nat_name((enum ntm_nat)l->nat), "filtering",
			    ntm_filter_name((enum ntm_filter)l->filter), "agent",
			    l->agent, "last_seen", (json_int_t)l->last_seen, "online",
			    registered(r, i), "also", also);
		else
			json_decref(also);
		if (json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:o}",
		    "fqdn", c->fqdn, "user", c->user, "device", c->device, "vip4", c->vip4,
		    "vip6", c->vip6, "last_login", (json_int_t)c->last_login,
		    "online", r->online[i], "location", loc)) < 0)
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
	    "LAST_LOGIN", "ONLINE", "REFLEXIVE", "NATTED", "LAST_SEEN", "REGISTERED" };
	int w[11];
	size_t i, k;
	char t[32], seen[32];

	for (k = 0; k < 11; k++)
		w[k] = (int)strlen(head[k]);
	for (i = 0; i < r->n; i++)
		if ((int)strlen(r->loc[i].reflexive) > w[7])
			w[7] = (int)strlen(r->loc[i].reflexive);
	for (i = 0; i < r->n; i++) {
		const struct dc_client *c = &r->v[i];
		const char *cols[5] = { c->fqdn, c->user, c->device, c->vip4, c->vip6 };

		for (k = 0; k < 5; k++)
			if ((int)strlen(cols[k]) > w[k])
				w[k] = (int)strlen(cols[k]);
	}
	w[5] = 20;	/* 2026-01-01T00:00:00Z */
	w[9] = 20;
	printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], head[0],
	    w[1], head[1], w[2], head[2], w[3], head[3], w[4], head[4], w[5], head[5],
	    w[6], head[6], w[7], head[7], w[8], head[8], w[9], head[9], head[10]);
	for (i = 0; i < r->n; i++) {
		const struct dc_client *c = &r->v[i];
		const struct dc_loc_row *l = &r->loc[i];

		fmt_time(c->last_login, t, sizeof(t));
		if (l->client_id)
			fmt_time(l->last_seen, seen, sizeof(seen));
		printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0],
		    c->fqdn, w[1], c->user, w[2], c->device, w[3], c->vip4, w[4], c->vip6, w[5],
		    t, w[6], r->online[i] ? "yes" : "no", w[7], l->client_id ? l->reflexive : "-",
		    w[8], l->client_id ? (l->natted ? "yes" : "no") : "-", w[9],
		    l->client_id ? seen : "-", registered(r, i) ? "yes" : "no");
	}
}

struct client_args {
	int	json;
};

static int
list_exec(void *ctx, struct cmd_call *c)
{
	struct srv *s = ctx;
	const struct client_args *a = c->args;
	struct rows r = { 0 };
	sqlite3 *db = NULL;
	char err[512];
	int e, ret = 1;

	if (dc_db_open(s->conf.db, &db, err, sizeof(err)) < 0) {
		srv_errx("%s", err);
		return 1;
	}
	r.now = now_unix();
	r.keepalive_s = s->conf.keepalive_s;
	if ((e = dc_db_clients(db, r.now, collect, &r)) < 0 ||
	    (r.n && (r.loc = calloc(r.n, sizeof(*r.loc))) == NULL && (e = NTM_ERR_NOMEM)) ||
	    (r.n && (r.also = calloc(r.n, sizeof(*r.also))) == NULL && (e = NTM_ERR_NOMEM)) ||
	    (r.n && (e = dc_db_locations(db, attach_loc, &r)) < 0) ||
	    (r.n && (e = dc_db_locations_also(db, r.now, attach_also, &r)) < 0)) {
		srv_errx("db %s: %s", s->conf.db, ntm_strerror(e));
		goto cleanup;
	}
	if (a->json)
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
	free(r.loc);
	free(r.also);
	ntm_db_close(db);
	return ret;
}

static int
del_exec(void *ctx, struct cmd_call *c)
{
	struct srv *s = ctx;
	const char *fqdn = c->pos[0];
	sqlite3 *db = NULL;
	char err[512];
	int e;

	if (!ntm_valid_dnsname(fqdn) || strchr(fqdn, '.') == NULL) {
		srv_errx("client del: '%s' is not a client FQDN", fqdn);
		return 2;
	}
	if (dc_db_open(s->conf.db, &db, err, sizeof(err)) < 0) {
		srv_errx("%s", err);
		return 1;
	}
	e = dc_db_client_del(db, fqdn, now_unix());
	ntm_db_close(db);
	if (e == NTM_ERR_NOTFOUND) {
		srv_errx("client del: no client '%s'", fqdn);
		return 1;
	}
	if (e < 0) {
		srv_errx("db %s: %s", s->conf.db, ntm_strerror(e));
		return 1;
	}
	printf("deleted %s (a running DC ends its session within seconds)\n", fqdn);
	return 0;
}

#define RECLAIM_EVERY_S		3600

struct dc_clients {
	int64_t		next_reclaim;
	int		data_version;
};

static int
data_version(sqlite3 *db)
{
	int64_t v = -1;

	return ntm_db_int(db, &v, "PRAGMA data_version", NULL) < 0 ? -1 : (int)v;
}

static struct dc_clients st;

void
dc_client_watch(struct dc *dc)
{
	st.data_version = data_version(dc->db);
	st.next_reclaim = 0;
}

void
dc_client_tick(struct dc *dc)
{
	int64_t now = now_unix(), idle = dc->srv->conf.client_idle_days * 86400;
	int v, n = 0, e;

	/* Another process (`ntm-dc client del`) changed the database. */
	if ((v = data_version(dc->db)) >= 0 && v != st.data_version) {
		(void)dc_sess_forget_gone(dc);
		st.data_version = v;
	}
	if (idle <= 0 || now < st.next_reclaim)
		return;
	st.next_reclaim = now + RECLAIM_EVERY_S;
	/* Not while another process holds the database: the next tick. */
	ntm_db_nowait(dc->db, 1);
	e = dc_db_clients_reclaim(dc->db, now - idle, now, &n);
	ntm_db_nowait(dc->db, 0);
	if (e < 0) {
		if (ntm_db_busy(dc->db))
			st.next_reclaim = now;
		else
			log_warnx("client_idle_days: cannot reclaim idle devices");
		return;
	}
	if (n > 0) {
		log_info("reclaimed %d device%s unseen for %ld days (their addresses are "
		    "free again)", n, n == 1 ? "" : "s", dc->srv->conf.client_idle_days);
		(void)dc_sess_forget_gone(dc);
	}
}

static const struct cmd_opt client_opts[] = {
	SRV_OPT_JSON(struct client_args),
	SRV_OPT_HELP,
	SRV_OPT_END
};

static const struct cmd_entry client_list = {
	.name = "list",
	.summary = "the devices, their addresses and last location",
	.takes = "json",
	.max = 0,
	.exec = list_exec,
};

static const struct cmd_entry client_del = {
	.name = "del",
	.summary = "delete a device: its session ends, its addresses are free again",
	.usage = "FQDN",
	.takes = "",
	.min = 1,
	.max = 1,
	.missing = "missing FQDN (usage: client del FQDN)",
	.exec = del_exec,
};

static const struct cmd_entry *const client_subs[] = { &client_list, &client_del, NULL };

const struct cmd_entry dc_client_entry = {
	.name = "client",
	.summary = "list or delete the client devices (FQDN, virtual addresses)",
	.usage = "list|del",
	.opts = client_opts,
	.subs = client_subs,
	.flags = CMD_SUBOPTS_STRICT,
	.missing = "missing command (usage: client list [--json] | client del FQDN)",
	.args_size = sizeof(struct client_args),
};
