/*
 * agent_net.c - what the agent and `ntm register` need from the network
 * around them: the DC's UDP address (option, ntm.conf, or DNS SRV
 * _ntm._udp.<domain> + A/AAAA through c-ares), the host's own addresses,
 * clocks, and the registration channel keys from session.json.
 */
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include <ares.h>

#include "common.h"
#include "ntm-rt.h"
#include "reg.h"
#include "agent.h"

int64_t
agent_now_ms(void)
{
	return mono_ms();
}

int64_t
agent_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t
agent_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

/* The registration counters' floor of the one session this process uses. */
static struct ntm_ctr_floor reg_ctr;
static int has_reg_ctr;

int
agent_chan_ctr(struct ntm_chan *c)
{
	uint64_t w = agent_wall_us(), v;

	if (!has_reg_ctr || ntm_ctr_floor_take(&reg_ctr, c->send_ctr > w ? c->send_ctr : w,
	    &v) < 0)
		return -1;
	c->send_ctr = v;
	return 0;
}

int
agent_chan(struct ntm_chan *c, const struct session *s, const char *ctr_path, char *err,
    size_t errlen)
{
	uint8_t sid[NTM_SID_LEN], tx[NTM_KEY_LEN], rx[NTM_KEY_LEN];
	int ret = -1, e;

	if (ntm_hex_decode_exact(sid, sizeof(sid), s->session_id) < 0 ||
	    ntm_b64_decode_exact(tx, sizeof(tx), s->tx) < 0 ||
	    ntm_b64_decode_exact(rx, sizeof(rx), s->rx) < 0) {
		snprintf(err, errlen, "session.json: bad session_id, tx or rx "
		    "(log in again)");
		goto out;
	}
	ntm_chan_init(c, sid, tx, rx);
	/* Counters keep increasing across restarts, clock steps and between
	 * `ntm register` and the agent: the DC's replay window never refuses a
	 * fresh start, and no nonce is used twice under the session's key. */
	if (has_reg_ctr)
		ntm_ctr_floor_free(&reg_ctr);
	has_reg_ctr = 0;
	if ((e = ntm_ctr_floor_open(&reg_ctr, ctr_path, agent_wall_us())) < 0) {
		snprintf(err, errlen, "%s: %s", ctr_path, e == NTM_ERR_INVAL ?
		    "not one number (remove it and log in again)" :
		    e == NTM_ERR_IO ? strerror(errno) : ntm_strerror(e));
		goto out;
	}
	has_reg_ctr = 1;
	c->send_ctr = reg_ctr.hi;
	ret = 0;
out:
	ntm_wipe(tx, sizeof(tx));
	ntm_wipe(rx, sizeof(rx));
	return ret;
}

/* ---- local addresses ------------------------------------------------------ */

static int
global_addr(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;

		return b[0] != 127 && b[0] != 0 && !(b[0] == 169 && b[1] == 254);
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return !IN6_IS_ADDR_LOOPBACK(a) && !IN6_IS_ADDR_LINKLOCAL(a) &&
		    !IN6_IS_ADDR_UNSPECIFIED(a) && !IN6_IS_ADDR_V4MAPPED(a) &&
		    !IN6_IS_ADDR_MULTICAST(a);
	}
	return 0;
}

int
agent_local_addrs(struct sockaddr_storage *out, int n, uint16_t port,
    const struct sockaddr_storage *dc)
{
	struct ifaddrs *ifa, *i;
	int k = 0;

	/* A DC on loopback shares this host: the address it sees us from is
	 * loopback too, and that is the only one worth reporting (peers on
	 * the same host reach us there, and nothing leaves the host). */
	if (dc && n > 0 && dc->ss_family == AF_INET &&
	    (ntohl(((const struct sockaddr_in *)dc)->sin_addr.s_addr) >> 24) == 127) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out[0];

		memset(&out[0], 0, sizeof(out[0]));
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons(port);
		return 1;
	}
	if (dc && n > 0 && dc->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)dc)->sin6_addr)) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out[0];

		memset(&out[0], 0, sizeof(out[0]));
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(port);
		return 1;
	}
	if (getifaddrs(&ifa) < 0)
		return 0;
	/* IPv4 first, then IPv6, interface order kept. */
	for (int fam = 0; fam < 2; fam++)
		for (i = ifa; i && k < n; i = i->ifa_next) {
			if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) ||
			    (i->ifa_flags & IFF_LOOPBACK) ||
			    i->ifa_addr->sa_family != (fam == 0 ? AF_INET : AF_INET6) ||
			    !global_addr(i->ifa_addr))
				continue;
			memset(&out[k], 0, sizeof(out[k]));
			if (fam == 0) {
				struct sockaddr_in *s4 = (struct sockaddr_in *)&out[k];

				memcpy(s4, i->ifa_addr, sizeof(*s4));
				s4->sin_port = htons(port);
			} else {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out[k];

				memcpy(s6, i->ifa_addr, sizeof(*s6));
				s6->sin6_port = htons(port);
				s6->sin6_scope_id = 0;
				s6->sin6_flowinfo = 0;
			}
			k++;
		}
	freeifaddrs(ifa);
	return k;
}

int
agent_routable(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), ok;

	if (fd < 0)
		return 0;
	ok = connect(fd, (const struct sockaddr *)ss, len) == 0;
	close(fd);
	return ok;
}

/* ---- DNS: SRV _ntm._udp.<domain>, then A / AAAA of the target ------------ */

struct lookup {
	int		 done;
	int		 status;
	char		 target[NTM_NAME_MAX + 1];
	uint16_t	 port;
	struct sockaddr_storage ss;
	socklen_t	 len;
};

static void
on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *l = arg;
	struct ares_srv_reply *srv = NULL, *r, *best = NULL;

	l->done = 1;
	if ((l->status = status) != ARES_SUCCESS)
		return;
	if ((l->status = ares_parse_srv_reply(abuf, alen, &srv)) != ARES_SUCCESS)
		return;
	for (r = srv; r; r = r->next)
		if (best == NULL || r->priority < best->priority ||
		    (r->priority == best->priority && r->weight > best->weight))
			best = r;
	if (best && strlen(best->host) <= NTM_NAME_MAX) {
		snprintf(l->target, sizeof(l->target), "%s", best->host);
		l->port = best->port;
	} else
		l->status = ARES_ENODATA;
	ares_free_data(srv);
}

static void
on_addr(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *l = arg;

	l->done = 1;
	if ((l->status = status) != ARES_SUCCESS || l->len)
		return;
	{
		struct ares_addrttl a[4];
		int n = 4;

		if (ares_parse_a_reply(abuf, alen, NULL, a, &n) == ARES_SUCCESS && n > 0) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&l->ss;

			memset(&l->ss, 0, sizeof(l->ss));
			s4->sin_family = AF_INET;
			s4->sin_addr = a[0].ipaddr;
			s4->sin_port = htons(l->port);
			l->len = sizeof(*s4);
			return;
		}
	}
	{
		struct ares_addr6ttl a[4];
		int n = 4;

		if (ares_parse_aaaa_reply(abuf, alen, NULL, a, &n) == ARES_SUCCESS && n > 0) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&l->ss;

			memset(&l->ss, 0, sizeof(l->ss));
			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_addr, &a[0].ip6addr, 16);
			s6->sin6_port = htons(l->port);
			l->len = sizeof(*s6);
			return;
		}
	}
	l->status = ARES_ENODATA;
}

/* Runs the channel until l->done or the deadline. */
static void
ares_wait(ares_channel ch, struct lookup *l, int64_t deadline)
{
	while (!l->done) {
		struct timeval tv, maxtv, *tvp;
		fd_set r, w;
		int nfds;
		int64_t left = deadline - agent_now_ms();

		if (left <= 0)
			break;
		FD_ZERO(&r);
		FD_ZERO(&w);
		nfds = ares_fds(ch, &r, &w);
		if (nfds == 0)
			break;
		maxtv.tv_sec = left / 1000;
		maxtv.tv_usec = (left % 1000) * 1000;
		tvp = ares_timeout(ch, &maxtv, &tv);
		select(nfds, &r, &w, NULL, tvp);
		ares_process(ch, &r, &w);
	}
}

static int
dns_lookup(const char *domain, const char *resolver, struct sockaddr_storage *ss,
    socklen_t *len, struct sockaddr_storage *alt, socklen_t *altlen, char *err,
    size_t errlen)
{
	struct sockaddr_storage got[2];
	socklen_t gotlen[2] = { 0, 0 };
	struct ares_options o;
	ares_channel ch;
	struct lookup l;
	char name[NTM_NAME_MAX + 16];
	int64_t deadline = agent_now_ms() + 5000;
	int rc, ret = -1;

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		return -1;
	}
	memset(&o, 0, sizeof(o));
	o.timeout = 1000;
	o.tries = 3;
	o.flags = ARES_FLAG_NOSEARCH;
	if ((rc = ares_init_options(&ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_FLAGS)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		ares_library_cleanup();
		return -1;
	}
	if (resolver && *resolver &&
	    (rc = ares_set_servers_ports_csv(ch, resolver)) != ARES_SUCCESS) {
		snprintf(err, errlen, "resolver '%s': %s", resolver, ares_strerror(rc));
		goto out;
	}
	memset(&l, 0, sizeof(l));
	snprintf(name, sizeof(name), "_ntm._udp.%s", domain);
	ares_query(ch, name, ns_c_in, ns_t_srv, on_srv, &l);
	ares_wait(ch, &l, deadline);
	if (!l.done || l.status != ARES_SUCCESS) {
		snprintf(err, errlen, "DNS SRV %s%s%s: %s", name, resolver ? " via " : "",
		    resolver ? resolver : "", l.done ? ares_strerror(l.status) : "timeout");
		goto out;
	}
	/* Both families: IPv4 first, unless this host cannot reach it now (an
	 * IPv6-only host); the other is kept for when the host moves to a
	 * network of the other family (agent_dc_family). */
	for (int k = 0; k < 2; k++) {
		l.done = 0;
		l.len = 0;
		ares_query(ch, l.target, ns_c_in, k == 0 ? ns_t_a : ns_t_aaaa, on_addr, &l);
		ares_wait(ch, &l, deadline);
		if (l.len > 0 && l.ss.ss_family == (k == 0 ? AF_INET : AF_INET6)) {
			got[k] = l.ss;
			gotlen[k] = l.len;
		}
	}
	if (gotlen[0] == 0 && gotlen[1] == 0) {
		snprintf(err, errlen, "DNS A/AAAA %s: %s", l.target,
		    l.done ? ares_strerror(l.status) : "timeout");
		goto out;
	}
	{
		int k = gotlen[0] && (agent_routable(&got[0], gotlen[0]) || !gotlen[1]) ? 0 : 1;

		memcpy(ss, &got[k], sizeof(*ss));
		*len = gotlen[k];
		if (alt) {
			*altlen = gotlen[!k];
			if (gotlen[!k])
				memcpy(alt, &got[!k], sizeof(*alt));
		}
	}
	ret = 0;
out:
	ares_destroy(ch);
	ares_library_cleanup();
	return ret;
}

int
agent_dc_udp(const struct cli *cli, const char *domain, const char *opt_dc_udp,
    const char *opt_resolver, struct sockaddr_storage *ss, socklen_t *len,
    struct sockaddr_storage *alt, socklen_t *altlen, char *err, size_t errlen)
{
	const char *direct = opt_dc_udp ? opt_dc_udp : cli->conf.dc_udp;
	const char *resolver = opt_resolver ? opt_resolver : cli->conf.resolver;

	if (altlen)
		*altlen = 0;
	if (direct) {
		if (ntm_sa_parse(ss, len, direct) < 0) {
			snprintf(err, errlen, "%s '%s': expected ADDR:PORT or [ADDR]:PORT",
			    opt_dc_udp ? "--dc-udp" : "ntm.conf dc_udp", direct);
			return -2;
		}
		return 0;
	}
	if (resolver) {
		struct sockaddr_storage rs;
		socklen_t rl;

		if (ntm_sa_parse(&rs, &rl, resolver) < 0) {
			snprintf(err, errlen, "%s '%s': expected ADDR:PORT or [ADDR]:PORT",
			    opt_resolver ? "--resolver" : "ntm.conf resolver", resolver);
			return -2;
		}
	}
	return dns_lookup(domain, resolver, ss, len, alt, altlen, err, errlen);
}

int
agent_dc_family(struct sockaddr_storage *dc, socklen_t *dclen, struct sockaddr_storage *alt,
    socklen_t *altlen)
{
	struct sockaddr_storage t;
	socklen_t tl;

	if (*altlen == 0 || agent_routable(dc, *dclen) || !agent_routable(alt, *altlen))
		return 0;
	t = *dc;
	tl = *dclen;
	*dc = *alt;
	*dclen = *altlen;
	*alt = t;
	*altlen = tl;
	return 1;
}
