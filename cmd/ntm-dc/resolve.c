/*
 * resolve.c - `ntm-dc resolve DOMAIN [--json]`: the DC discovery of
 * discover.c run once from the command line, to check the resolver and
 * another domain's records.
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "dc.h"
#include "discover.h"
#include "dns.h"

struct resolve_st {
	struct event_base *base;
	int		 json, ret;
	const char	*domain;
	const char	*resolver;
};

static void
resolved(int err, const char *url, const char *host, uint16_t port, const char *addr,
    void *arg)
{
	struct resolve_st *st = arg;

	event_base_loopbreak(st->base);
	if (err < 0) {
		if (err == NTM_ERR_NOTFOUND)
			srv_errx("resolve %s: no DC found (no SRV _ntm._tcp record, or its "
			    "target has no address)", st->domain);
		else if (err == NTM_ERR_TIMEOUT)
			srv_errx("resolve %s: the resolver %s (or the domain's name server "
			    "behind it) did not answer in time", st->domain, st->resolver);
		else if (err == NTM_ERR_PROTO)
			srv_errx("resolve %s: malformed answer from the resolver %s",
			    st->domain, st->resolver);
		else
			srv_errx("resolve %s: the resolver %s failed or refused the lookup "
			    "(check 'resolver' in the configuration)", st->domain, st->resolver);
		st->ret = 1;
		return;
	}
	if (st->json) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:s}", "domain", st->domain,
		    "url", url, "host", host, "port", (int)port, "addr", addr);

		if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2)) < 0) {
			json_decref(j);
			st->ret = 1;
			return;
		}
		json_decref(j);
		putchar('\n');
	} else
		printf("%s\t%s\n", url, addr);
	st->ret = fflush(stdout) == 0 ? 0 : 1;
}

struct resolve_args {
	int	json;
};

static int
resolve_exec(void *ctx, struct cmd_call *c)
{
	struct srv *s = ctx;
	const struct resolve_args *a = c->args;
	struct resolve_st st;
	struct disc *disc = NULL;
	char err[512];
	int e;

	memset(&st, 0, sizeof(st));
	st.ret = 1;
	st.json = a->json;
	st.domain = c->pos[0];
	if (s->conf.resolver == NULL) {
		srv_errx("resolve: no 'resolver' in %s", s->conf.path);
		return 1;
	}
	st.resolver = s->conf.resolver;
	if ((st.base = s->base = event_base_new()) == NULL) {
		srv_errx("cannot create the event loop");
		return 1;
	}
	if ((disc = disc_new(st.base, &s->conf, NULL, err, sizeof(err))) == NULL) {
		srv_errx("%s", err);
		goto out;
	}
	if ((e = disc_lookup(disc, st.domain, resolved, &st)) < 0) {
		srv_errx("resolve: '%s': %s", st.domain,
		    e == NTM_ERR_INVAL ? "not a DNS name" : ntm_strerror(e));
		st.ret = e == NTM_ERR_INVAL ? 2 : 1;
		goto out;
	}
	event_base_dispatch(st.base);
out:
	disc_free(disc);
	event_base_free(st.base);
	s->base = NULL;
	return st.ret;
}

static const struct cmd_opt resolve_opts[] = {
	SRV_OPT_JSON(struct resolve_args),
	SRV_OPT_HELP,
	SRV_OPT_END
};

const struct cmd_entry dc_resolve_entry = {
	.name = "resolve",
	.summary = "find the DC of DOMAIN through the resolver (DNS SRV _ntm._tcp)",
	.usage = "DOMAIN",
	.opts = resolve_opts,
	.min = 1,
	.max = 1,
	.missing = "missing DOMAIN (usage: resolve DOMAIN [--json])",
	.args_size = sizeof(struct resolve_args),
	.exec = resolve_exec,
};
