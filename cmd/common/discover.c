/*
 * discover.c - finding the DC of a domain (discover.h): c-ares on the
 * libevent loop, asking only the configured `resolver`. Used by the DC (to
 * reach other DCs) and by the CS (to reach its recipients' DCs).
 *
 *   SRV _ntm._tcp.<domain>  -> target:port (lowest priority, then highest weight)
 *   A <target> (AAAA when there is no A) -> addr
 *   => https://<target>:<port>, pinned to addr on the caller's httpc
 *
 * Each lookup is bounded by c-ares (DISC_TRIES x DISC_TIMEOUT_MS
 * per query); answers are cached DISC_CACHE_S seconds. Results reach
 * the caller through one "deliver" event, so a callback never runs inside
 * disc_lookup() and can be cancelled until it runs.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <ares.h>
#include <event2/event.h>
#include <jansson.h>

#include "discover.h"

#define T_A	1
#define T_AAAA	28
#define T_SRV	33
#define C_IN	1

enum lk_state { LK_SRV, LK_A, LK_AAAA, LK_DONE };

struct lookup {
	struct disc	*disc;
	struct lookup	*prev, *next;
	enum lk_state	 state;
	int		 err;
	int		 cancelled;	/* cb must not run */
	int		 in_ares;	/* a c-ares query is outstanding */
	disc_found_fn	*cb;
	void		*arg;
	char		 domain[NTM_NAME_MAX + 1];
	char		 target[NTM_NAME_MAX + 1];
	uint16_t	 port;
	char		 addr[INET6_ADDRSTRLEN];
};

struct cache_ent {
	char		 domain[NTM_NAME_MAX + 1];
	char		 target[NTM_NAME_MAX + 1];
	uint16_t	 port;
	char		 addr[INET6_ADDRSTRLEN];
	int64_t		 expires;	/* monotonic seconds; 0 = empty slot */
};

struct sockev {
	struct sockev	*next;
	ares_socket_t	 fd;
	struct event	*ev;
};

struct disc {
	struct event_base *base;
	struct ntm_httpc *httpc;	/* answers are pinned on it; may be NULL */
	ares_channel	 ch;
	int		 has_ch;
	struct event	*timer, *deliver;
	struct sockev	*socks;
	struct lookup	*lookups;
	size_t		 nlookups;
	struct cache_ent cache[DISC_CACHE_MAX];
	int		 destroying;
};

static int
mono_now(int64_t *out)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return -1;
	*out = (int64_t)ts.tv_sec;
	return 0;
}

const char *
fqdn_domain(const char *fqdn)
{
	const char *dot;

	if (fqdn == NULL || (dot = strchr(fqdn, '.')) == NULL || dot == fqdn ||
	    dot[1] == '\0' || dot[1] == '.')
		return NULL;
	return dot + 1;
}

/* ---- c-ares <-> libevent ------------------------------------------------- */

static void
rearm_timer(struct disc *d)
{
	struct timeval tv, *tvp;

	if (!d->has_ch || d->destroying)
		return;
	if ((tvp = ares_timeout(d->ch, NULL, &tv)) != NULL)
		evtimer_add(d->timer, tvp);
	else
		evtimer_del(d->timer);
}

static void
on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct disc *d = arg;

	ares_process_fd(d->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm_timer(d);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct disc *d = arg;

	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_timer(d);
}

static void
sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct disc *d = data;
	struct sockev **pp, *s;

	for (pp = &d->socks; (s = *pp) != NULL; pp = &s->next)
		if (s->fd == fd)
			break;
	if (!readable && !writable) {
		if (s) {
			*pp = s->next;
			event_free(s->ev);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return;		/* the query times out */
		s->fd = fd;
		s->next = d->socks;
		d->socks = s;
	} else {
		event_free(s->ev);
		s->ev = NULL;
	}
	s->ev = event_new(d->base, fd, EV_PERSIST | (readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0), on_sock, d);
	if (s->ev)
		event_add(s->ev, NULL);
}

/* ---- lookups ------------------------------------------------------------- */

static void
lk_unlink(struct lookup *l)
{
	struct disc *d = l->disc;

	if (l->prev)
		l->prev->next = l->next;
	else
		d->lookups = l->next;
	if (l->next)
		l->next->prev = l->prev;
	d->nlookups--;
}

static int
map_status(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
		return NTM_ERR_NOTFOUND;
	case ARES_ETIMEOUT:
		return NTM_ERR_TIMEOUT;
	case ARES_ENOMEM:
		return NTM_ERR_NOMEM;
	case ARES_EBADRESP:
	case ARES_EFORMERR:
		return NTM_ERR_PROTO;
	default:		/* refused, servfail, connection refused ... */
		return NTM_ERR_UNAVAIL;
	}
}

static void
cache_put(struct disc *d, const struct lookup *l)
{
	struct cache_ent *e = NULL;
	int64_t now;
	size_t i;

	if (mono_now(&now) < 0)
		return;
	for (i = 0; i < DISC_CACHE_MAX; i++) {
		struct cache_ent *c = &d->cache[i];

		if (c->expires != 0 && strcmp(c->domain, l->domain) == 0) {
			e = c;
			break;
		}
		if (e == NULL || c->expires < e->expires)
			e = c;		/* empty or oldest */
	}
	snprintf(e->domain, sizeof(e->domain), "%s", l->domain);
	snprintf(e->target, sizeof(e->target), "%s", l->target);
	snprintf(e->addr, sizeof(e->addr), "%s", l->addr);
	e->port = l->port;
	e->expires = now + DISC_CACHE_S;
}

static const struct cache_ent *
cache_get(struct disc *d, const char *domain)
{
	int64_t now;
	size_t i;

	if (mono_now(&now) < 0)
		return NULL;
	for (i = 0; i < DISC_CACHE_MAX; i++) {
		struct cache_ent *c = &d->cache[i];

		if (c->expires != 0 && strcmp(c->domain, domain) == 0) {
			if (c->expires > now)
				return c;
			c->expires = 0;
		}
	}
	return NULL;
}

static void
lk_finish(struct lookup *l, int err)
{
	l->state = LK_DONE;
	l->err = err;
	if (err == 0)
		cache_put(l->disc, l);
	event_active(l->disc->deliver, EV_TIMEOUT, 0);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

static void
lk_query(struct lookup *l, const char *name, int type)
{
	l->in_ares = 1;
	ares_query(l->disc->ch, name, C_IN, type, on_answer, l);
}

static int
pick_srv(struct lookup *l, const unsigned char *abuf, int alen)
{
	struct ares_srv_reply *srv = NULL, *r, *best = NULL;
	size_t n;
	int ret;

	if ((ret = ares_parse_srv_reply(abuf, alen, &srv)) != ARES_SUCCESS)
		return map_status(ret);
	for (r = srv; r; r = r->next)
		if (best == NULL || r->priority < best->priority ||
		    (r->priority == best->priority && r->weight > best->weight))
			best = r;
	ret = NTM_ERR_NOTFOUND;
	if (best == NULL || best->port == 0)
		goto out;
	n = strlen(best->host);
	while (n > 0 && best->host[n - 1] == '.')
		n--;
	if (n == 0 || n >= sizeof(l->target))	/* "." : no such service */
		goto out;
	for (size_t i = 0; i < n; i++)
		l->target[i] = (char)tolower((unsigned char)best->host[i]);
	l->target[n] = '\0';
	if (!ntm_valid_dnsname(l->target)) {
		ret = NTM_ERR_PROTO;
		goto out;
	}
	l->port = best->port;
	ret = 0;
out:
	ares_free_data(srv);
	return ret;
}

static int
pick_addr(struct lookup *l, int type, const unsigned char *abuf, int alen)
{
	int ret, n;

	if (type == T_A) {
		struct ares_addrttl a[4];

		n = 4;
		if ((ret = ares_parse_a_reply(abuf, alen, NULL, a, &n)) != ARES_SUCCESS)
			return map_status(ret);
		if (n < 1)
			return NTM_ERR_NOTFOUND;
		inet_ntop(AF_INET, &a[0].ipaddr, l->addr, sizeof(l->addr));
	} else {
		struct ares_addr6ttl a[4];

		n = 4;
		if ((ret = ares_parse_aaaa_reply(abuf, alen, NULL, a, &n)) != ARES_SUCCESS)
			return map_status(ret);
		if (n < 1)
			return NTM_ERR_NOTFOUND;
		inet_ntop(AF_INET6, &a[0].ip6addr, l->addr, sizeof(l->addr));
	}
	return 0;
}

static void
on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *l = arg;
	struct disc *d = l->disc;
	char name[NTM_NAME_MAX + 16];
	int e;

	l->in_ares = 0;
	if (status == ARES_EDESTRUCTION || d->destroying) {
		lk_unlink(l);
		free(l);
		return;
	}
	if (l->cancelled) {
		lk_unlink(l);
		free(l);
		return;
	}
	e = map_status(status);
	switch (l->state) {
	case LK_SRV:
		if (e == 0)
			e = pick_srv(l, abuf, alen);
		if (e < 0) {
			log_debug("discover %s: SRV _ntm._tcp: %s", l->domain,
			    status == ARES_SUCCESS ? ntm_strerror(e) : ares_strerror(status));
			lk_finish(l, e);
			return;
		}
		l->state = LK_A;
		lk_query(l, l->target, T_A);
		return;
	case LK_A:
		if (e == 0)
			e = pick_addr(l, T_A, abuf, alen);
		if (e == 0)
			break;
		if (e != NTM_ERR_NOTFOUND) {
			lk_finish(l, e);
			return;
		}
		l->state = LK_AAAA;
		lk_query(l, l->target, T_AAAA);
		return;
	case LK_AAAA:
		if (e == 0)
			e = pick_addr(l, T_AAAA, abuf, alen);
		if (e < 0) {
			lk_finish(l, e);
			return;
		}
		break;
	case LK_DONE:
		return;
	}
	snprintf(name, sizeof(name), "%s", l->target);
	log_debug("discover %s: https://%s:%u at %s", l->domain, name,
	    (unsigned)l->port, l->addr);
	lk_finish(l, 0);
}

/* Runs the callbacks of finished lookups, one at a time (a callback may
 * start or cancel others). */
static void
on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct disc *d = arg;
	struct lookup *l;

	for (;;) {
		for (l = d->lookups; l; l = l->next)
			if (l->state == LK_DONE && !l->in_ares)
				break;
		if (l == NULL)
			return;
		lk_unlink(l);
		if (!l->cancelled) {
			char url[NTM_NAME_MAX + 32];

			if (l->err == 0) {
				int e = d->httpc ? ntm_httpc_resolve(d->httpc,
				    l->target, l->port, l->addr) : 0;

				if (e < 0)
					l->err = e;
			}
			if (l->err == 0) {
				snprintf(url, sizeof(url), "https://%s:%u", l->target,
				    (unsigned)l->port);
				l->cb(0, url, l->target, l->port, l->addr, l->arg);
			} else
				l->cb(l->err, NULL, NULL, 0, NULL, l->arg);
		}
		free(l);
	}
}

/* ---- public -------------------------------------------------------------- */

int
disc_lookup(struct disc *d, const char *domain, disc_found_fn *cb, void *arg)
{
	const struct cache_ent *c;
	struct lookup *l;
	char name[NTM_NAME_MAX + 16];
	size_t n, i;

	if (domain == NULL || cb == NULL)
		return NTM_ERR_INVAL;
	n = strlen(domain);
	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (n == 0 || n > NTM_NAME_MAX)
		return NTM_ERR_INVAL;
	if (d == NULL || !d->has_ch)
		return NTM_ERR_STATE;
	if (d->nlookups >= DISC_PENDING_MAX)
		return NTM_ERR_NOSPACE;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NTM_ERR_NOMEM;
	for (i = 0; i < n; i++)
		l->domain[i] = (char)tolower((unsigned char)domain[i]);
	l->domain[n] = '\0';
	if (!ntm_valid_dnsname(l->domain)) {
		free(l);
		return NTM_ERR_INVAL;
	}
	l->disc = d;
	l->cb = cb;
	l->arg = arg;
	if ((l->next = d->lookups) != NULL)
		l->next->prev = l;
	d->lookups = l;
	d->nlookups++;
	if ((c = cache_get(d, l->domain)) != NULL) {
		snprintf(l->target, sizeof(l->target), "%s", c->target);
		snprintf(l->addr, sizeof(l->addr), "%s", c->addr);
		l->port = c->port;
		l->state = LK_DONE;
		event_active(d->deliver, EV_TIMEOUT, 0);
		return 0;
	}
	l->state = LK_SRV;
	snprintf(name, sizeof(name), "_ntm._tcp.%s", l->domain);
	lk_query(l, name, T_SRV);	/* may answer at once: delivered later */
	rearm_timer(d);
	return 0;
}

void
disc_cancel(struct disc *d, disc_found_fn *cb, void *arg)
{
	struct lookup *l;

	if (d == NULL)
		return;
	for (l = d->lookups; l; l = l->next)
		if (l->cb == cb && l->arg == arg)
			l->cancelled = 1;
}

struct disc *
disc_new(struct event_base *base, const struct srv_conf *cf, struct ntm_httpc *httpc,
    char *err, size_t errlen)
{
	struct ares_options o;
	struct disc *d;
	int rc;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->base = base;
	d->httpc = httpc;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		goto fail;
	}
	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	o.timeout = DISC_TIMEOUT_MS;
	o.tries = DISC_TRIES;
	o.sock_state_cb = sock_state;
	o.sock_state_cb_data = d;
	o.lookups = (char *)"b";	/* DNS only, never /etc/hosts */
	if ((rc = ares_init_options(&d->ch, &o, ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS |
	    ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS)) != ARES_SUCCESS) {
		ares_library_cleanup();
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		goto fail;
	}
	d->has_ch = 1;
	if ((rc = ares_set_servers_ports_csv(d->ch, cf->resolver)) != ARES_SUCCESS) {
		snprintf(err, errlen, "%s: resolver '%s': %s", cf->path, cf->resolver,
		    ares_strerror(rc));
		goto fail;
	}
	if ((d->timer = evtimer_new(d->base, on_timer, d)) == NULL ||
	    (d->deliver = event_new(d->base, -1, 0, on_deliver, d)) == NULL) {
		snprintf(err, errlen, "cannot create the discovery events");
		goto fail;
	}
	log_debug("discover: DCs through the resolver %s", cf->resolver);
	return d;
fail:
	disc_free(d);
	return NULL;
}

int
disc_status(int err, const char *domain, const char **code, char *msg, size_t msglen)
{
	const char *why;

	if (err == NTM_ERR_NOTFOUND || err == NTM_ERR_INVAL) {
		*code = "unknown_domain";
		snprintf(msg, msglen, "no DC found for the domain %s by DNS (no SRV "
		    "_ntm._tcp.%s): check the name", domain, domain);
		return 404;
	}
	/* The resolver's own address is the DC's business: not named. */
	switch (err) {
	case NTM_ERR_TIMEOUT:
		why = "no DNS answer in time (the domain's name server, usually "
		    "its DC, may be down)";
		break;
	case NTM_ERR_PROTO:
		why = "the DNS answer was malformed";
		break;
	case NTM_ERR_NOSPACE:
		why = "too many lookups are waiting";
		break;
	case NTM_ERR_NOMEM:
		why = "out of memory";
		break;
	case NTM_ERR_STATE:
		why = "no DNS resolver is configured here to find other domains' DCs";
		break;
	default:
		why = "the DNS resolver failed or refused the lookup";
		break;
	}
	*code = "upstream_unavailable";
	snprintf(msg, msglen, "cannot look up the DC of %s: %s", domain, why);
	return 502;
}

void
disc_free(struct disc *d)
{
	struct lookup *l;

	if (d == NULL)
		return;
	for (l = d->lookups; l; l = l->next)
		l->cancelled = 1;
	if (d->has_ch) {
		d->destroying = 1;
		ares_destroy(d->ch);	/* frees the lookups still in c-ares */
		ares_library_cleanup();
	}
	while ((l = d->lookups) != NULL) {	/* finished, not yet delivered */
		lk_unlink(l);
		free(l);
	}
	while (d->socks) {
		struct sockev *s = d->socks;

		d->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	if (d->timer)
		event_free(d->timer);
	if (d->deliver)
		event_free(d->deliver);
	free(d);
}

