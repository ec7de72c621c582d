/*
 * registration.c - registration with the DC over the UDP socket (REG_REQ
 * every keepalive, REG_RESP; docs/protocol.md §4) and the mobility path:
 * netlink address events, send errors, changed local addresses and three
 * unanswered registrations make the agent register again and send a
 * keepalive (or a relay bind) on every tunnel; a REG_RESP that shows a new
 * reflexive address, NAT or family asks the DC to remake tunnels.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <stdlib.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common.h"
#include "probe.h"
#include "reg.h"
#include "agentd.h"

/*
 * A session a later `ntm login` wrote (--renew from a timer, say) replaces
 * the one this agent registers with: the DC ends the older one, so the
 * agent takes the new one when it is the same device at the same DC with
 * the same vIPs (new keys and token); another login is said once and left
 * for a restart. Looked at before each keepalive and each registration
 * left unanswered (a stat; the file is read only when it changed). 1 when
 * a new session was taken.
 */
static int
reg_session_reload(struct agent *a)
{
	char *path = cli_state_path(a->cli, "session.json"), *ctr, err[512];
	struct session ns;
	struct ntm_chan c;
	struct stat st;
	int r;

	r = path ? stat(path, &st) : -1;
	free(path);
	if (r < 0 || (st.st_ino == a->sess_ino && st.st_mtim.tv_sec == a->sess_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == a->sess_mtim.tv_nsec))
		return 0;
	a->sess_ino = st.st_ino;
	a->sess_mtim = st.st_mtim;
	memset(&ns, 0, sizeof(ns));
	if (session_load(a->cli, &ns, err, sizeof(err)) < 0) {
		log_warnx("session.json changed but is not a session: %s", err);
		session_free(&ns);
		return 0;
	}
	if (strcmp(ns.session_id, a->s.session_id) == 0) {
		session_free(&ns);
		return 0;
	}
	if (strcmp(ns.domain, a->s.domain) != 0 || strcmp(ns.fqdn, a->s.fqdn) != 0 ||
	    strcmp(ns.vip4, a->s.vip4) != 0 || strcmp(ns.vip6, a->s.vip6) != 0) {
		log_warnx("session.json now holds a login as %s at %s: the agent keeps "
		    "%s until it is restarted (ntm down; ntm up)", ns.fqdn, ns.domain, a->s.fqdn);
		session_free(&ns);
		return 0;
	}
	ctr = cli_state_path(a->cli, AGENT_REG_CTR);
	r = ctr ? agent_chan(&c, &ns, ctr, err, sizeof(err)) : -1;
	free(ctr);
	if (r < 0) {
		log_warnx("session.json renewed, but its keys do not load: %s", err);
		session_free(&ns);
		return 0;
	}
	session_free(&a->s);
	a->s = ns;
	a->chan = c;
	ntm_wipe(&c, sizeof(c));
	log_info("session.json renewed (token until %lld): registering with the new session",
	    (long long)a->s.token_expires);
	return 1;
}

/* ---- the second family (protocol.md §4.2, NTM_REG_F_ALSO) ------------------ */


static int
ipv(int family)
{
	return family == AF_INET6 ? 6 : 4;
}

/* The family to register over too, or 0: the socket takes both, the DC
 * has an address of the other family (from DNS), and this host has an
 * address of that family and a route to the DC there. */
static int
also_family(struct agent *a)
{
	int fam;

	if (!a->dual || a->dc_altlen == 0 || (fam = ntm_sa_family(&a->dc_alt)) == ntm_sa_family(&a->dc))
		return 0;
	for (int i = 0; i < a->nlocals; i++)
		if (ntm_sa_family(&a->locals[i]) == fam)
			return agent_routable(&a->dc_alt, a->dc_altlen) ? fam : 0;
	return 0;
}

/* The NAT kind to register for the second family: none while its
 * reflexive address is one of ours (or before the DC said), natted
 * (not compared) otherwise. */
static int
also_nat(const struct agent *a)
{
	return a->also.registered && a->also.natted ? NTM_NAT_NATTED : NTM_NAT_NONE;
}

/* A REG_REQ over the second family, beside the one over dc: only once the
 * DC has the latter (it takes the former only with it). */
static void
also_send(struct agent *a)
{
	struct ntm_reg_req r;
	uint8_t b[NTM_REG_REQ_LEN];
	uint64_t ctr;
	int n;

	if (!a->also.on || !a->registered)
		return;
	memset(&r, 0, sizeof(r));
	r.local_port = a->port;
	r.flags = NTM_REG_F_AGENT | NTM_REG_F_ALSO;
	r.nat = (uint8_t)also_nat(a);
	r.naddrs = a->nlocals;
	memcpy(r.addrs, a->locals, sizeof(r.addrs));
	if (agent_chan_ctr(&a->chan) < 0 ||
	    (n = ntm_reg_req_seal(&a->chan, &r, b, sizeof(b), &ctr)) < 0)
		return;
	a->also.ctr[a->also.nctr++ % 4] = ctr;
	a->also.nat_sent = r.nat;
	a->also.sent++;
	(void)agent_udp_send(a, b, (size_t)n, &a->dc_alt);
}

/* Tunnels the DC routed when this end had another set of families: asked
 * again (all: family >= 0 and relayed only; those whose path goes over
 * family otherwise). */
static void
also_reroute(struct agent *a, int family, const char *why)
{
	for (int i = 0; i < a->ntun; i++) {
		struct tun *t = a->tuns[i];
		int path = ntm_peer_path(&t->p);

		if (t->recreating)
			continue;
		if (family == 0 ? path != NTM_PATH_RELAYED :
		    !t->p.has_ep || ntm_sa_family(&t->p.ep) != family)
			continue;
		/* A relay session the peer's DC opened takes no ticket of ours
		 * (other_dc, §4.4): the peer asks its DC. */
		if (agent_tun_peer_remakes(t)) {
			char note[64];

			snprintf(note, sizeof(note), family == 0 ? "this end registered over "
			    "IPv%d too" : "this end lost IPv%d", ipv(family == 0 ?
			    a->also.family : family));
			agent_tun_tell_peer(t, note);
			continue;
		}
		log_info("tunnel %s: %s: asking the DC for its route again", t->peer, why);
		if (agent_request_tunnel(a, t->peer, t->tid, 0) == 0)
			t->recreating = 1;
	}
}

/* After the host's addresses or the DC's family changed: register over the
 * second family from now on, or no longer. */
static void
also_update(struct agent *a)
{
	int fam = also_family(a);

	if (fam == (a->also.on ? a->also.family : 0))
		return;
	if (a->also.registered) {
		log_info("no longer registered over IPv%d", ipv(a->also.family));
		also_reroute(a, a->also.family, "this host lost that family");
	}
	memset(&a->also, 0, offsetof(struct agent_also, sent));
	a->also.on = fam != 0;
	a->also.family = fam;
}

/* A REG_RESP to one of them: where the DC saw us over the second family. */
static void
also_resp(struct agent *a, const struct ntm_reg_resp *r)
{
	int natted = !agent_among_locals(a, &r->reflexive), was = a->also.registered;
	char b[64];

	a->also.resps++;
	if (!a->also.on || ntm_sa_family(&r->reflexive) != a->also.family)
		return;
	a->also.at = agent_now_ms();
	a->also.registered = 1;
	if (was && natted == a->also.natted && ntm_sa_equal((const struct sockaddr *)&r->reflexive,
	    (const struct sockaddr *)&a->also.reflexive))
		return;
	a->also.reflexive = r->reflexive;
	a->also.natted = natted;
	log_info("registered over IPv%d too: reflexive %s, natted %s",
	    ipv(r->reflexive.ss_family), ntm_sa_str((const struct sockaddr *)&r->reflexive,
	    b, sizeof(b)), natted ? "yes" : "no");
	if (also_nat(a) != a->also.nat_sent)
		also_send(a);
	/* A relayed tunnel may go direct over this family now. */
	if (!was)
		also_reroute(a, 0, "registered over a second family");
}

static void
reg_timer_arm(struct agent *a)
{
	struct timeval tv = { a->keepalive_s, 0 };

	evtimer_add(a->reg_timer, &tv);
}

static void
reg_send(struct agent *a)
{
	struct ntm_reg_req r;
	uint8_t b[NTM_REG_REQ_LEN];
	struct timeval tv = { 2, 0 };
	int n;

	memset(&r, 0, sizeof(r));
	r.local_port = a->port;
	r.flags = NTM_REG_F_AGENT;
	/* Only to a DC that answers probes: an older one refuses these bits. */
	r.nat = a->nat_dc_ok ? (uint8_t)a->nat : 0;
	r.filter = a->filter_dc_ok ? (uint8_t)a->filter : 0;
	r.naddrs = a->nlocals;
	memcpy(r.addrs, a->locals, sizeof(r.addrs));
	/* Counters follow the wall clock in microseconds, above whatever this
	 * session sent before (an earlier agent, `ntm register`, a clock that
	 * stepped back), so the DC's replay window never mistakes us for a
	 * replay and no nonce repeats. */
	if (agent_chan_ctr(&a->chan) < 0) {
		log_warnx("cannot store the floor of the registration counters; "
		    "not registering");
		return;
	}
	if ((n = ntm_reg_req_seal(&a->chan, &r, b, sizeof(b), NULL)) < 0) {
		log_warnx("cannot seal REG_REQ: %s", ntm_strerror(n));
		return;
	}
	a->reg_sent++;
	(void)agent_udp_send(a, b, (size_t)n, &a->dc);
	a->awaiting = 1;
	evtimer_add(a->reg_wait, &tv);
	also_send(a);
}

void
agent_reg_send_now(struct agent *a)
{
	reg_send(a);
}

/* At stop: tells the DC this device goes offline (REG_REQ with
 * NTM_REG_F_OFFLINE, protocol.md §4.2), so a peer asking for a tunnel gets
 * peer_offline at once instead of a route to nobody. Sent twice: a lost
 * one costs the peers 3 keepalives of waiting. */
void
agent_reg_offline(struct agent *a)
{
	struct ntm_reg_req r;
	uint8_t b[NTM_REG_REQ_LEN];
	int n;

	memset(&r, 0, sizeof(r));
	r.local_port = a->port;
	r.flags = NTM_REG_F_OFFLINE;
	for (int i = 0; i < 2; i++) {
		if (agent_chan_ctr(&a->chan) < 0 ||
		    (n = ntm_reg_req_seal(&a->chan, &r, b, sizeof(b), NULL)) < 0)
			return;
		(void)agent_udp_send(a, b, (size_t)n, &a->dc);
	}
}

static void
on_reg_timer(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	struct sockaddr_storage l[NTM_REG_ADDRS];
	int n = agent_local_addrs(l, NTM_REG_ADDRS, a->port, &a->dc);

	(void)reg_session_reload(a);
	if (n != a->nlocals || memcmp(l, a->locals, sizeof(l[0]) * (size_t)n) != 0)
		agent_net_changed(a, "local addresses changed");
	else
		reg_send(a);
	(void)agent_tun_sweep(a, agent_now_ms());
	reg_timer_arm(a);
}

static void
on_reg_wait(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;

	if (!a->awaiting)
		return;
	a->missed++;
	log_debug("no REG_RESP (%d missed)", a->missed);
	if (reg_session_reload(a)) {
		a->missed = 0;
		reg_send(a);
	} else if (a->missed < 3)
		reg_send(a);
	else if (a->missed == 3) {
		agent_net_changed(a, "3 registrations unanswered");
		a->missed = 3;
	}
}

int
agent_among_locals(const struct agent *a, const struct sockaddr_storage *ss)
{
	for (int i = 0; i < a->nlocals; i++)
		if (ntm_sa_equal((const struct sockaddr *)&a->locals[i],
		    (const struct sockaddr *)ss))
			return 1;
	return 0;
}

void
agent_reg_resp(struct agent *a, const struct ntm_reg_resp *r)
{
	int natted = !agent_among_locals(a, &r->reflexive);
	int family = r->reflexive.ss_family;
	int was = a->registered;

	for (int i = 0; i < 4 && i < a->also.nctr; i++)
		if (a->also.ctr[i] == r->echo) {
			also_resp(a, r);
			return;
		}
	a->reg_resps++;
	a->awaiting = 0;
	a->missed = 0;
	evtimer_del(a->reg_wait);
	if (was && (natted != a->natted || family != a->family)) {
		log_info("registration: natted %s -> %s, family %s -> %s: recreating tunnels",
		    a->natted ? "yes" : "no", natted ? "yes" : "no",
		    a->family == AF_INET6 ? "IPv6" : "IPv4", family == AF_INET6 ? "IPv6" : "IPv4");
		a->resp = *r;
		a->natted = natted;
		a->family = family;
		for (int i = 0; i < a->ntun; i++) {
			struct tun *t = a->tuns[i];

			if (t->recreating)
				continue;
			/* A relay session the peer's DC opened takes no ticket of
			 * ours (other_dc, §4.4): the peer asks its DC, told at the
			 * NAT's verdict (agent_tun_nat_found). */
			if (agent_tun_peer_remakes(t)) {
				log_info("tunnel %s: the peer's DC opened the relay session: "
				    "the peer is to ask it for the route again", t->peer);
				t->tell_peer = 1;
				continue;
			}
			if (agent_request_tunnel(a, t->peer, t->tid, 0) == 0)
				t->recreating = 1;
		}
		agent_nat_discover(a, "the NAT or the family changed");
	} else if (was && !ntm_sa_equal((const struct sockaddr *)&r->reflexive,
	    (const struct sockaddr *)&a->resp.reflexive)) {
		char b[64];

		log_info("registration: reflexive address now %s",
		    ntm_sa_str((const struct sockaddr *)&r->reflexive, b, sizeof(b)));
		agent_nat_discover(a, "the reflexive address changed");
		for (int i = 0; i < a->ntun; i++) {
			struct tun *t = a->tuns[i];

			/* Where we initiated, our authenticated keepalive is all the
			 * peer needs to follow us. Where the peer initiates (it sits
			 * behind a NAT that filters by remote address), it cannot hear
			 * us from the new address: the DCs must tell it where we are.
			 * The handshake role is meant here, and either DC may remake a
			 * route that is not relayed (no relay session: no other_dc). */
			agent_tun_keepalive(t);
			if (t->p.kind != NTM_ROUTE_RELAY && !t->p.initiator && !t->recreating) {
				log_info("tunnel %s: the peer initiates: asking the DC "
				    "to tell it our new address", t->peer);
				if (agent_request_tunnel(a, t->peer, t->tid, 0) == 0)
					t->recreating = 1;
			}
		}
	}
	a->resp = *r;
	a->natted = natted;
	a->family = family;
	a->registered = 1;
	a->resp_at = agent_now_ms();
	if (a->o.keepalive_s == 0 && r->keepalive_s >= 1 && r->keepalive_s <= 3600 &&
	    (long)r->keepalive_s != a->keepalive_s) {
		a->keepalive_s = r->keepalive_s;
		for (int i = 0; i < a->ntun; i++)
			agent_tun_set_keepalive(a->tuns[i], a->keepalive_s);
		reg_timer_arm(a);
	}
	if (r->pending > 0)
		agent_fetch_directions(a);
	if (!was) {
		char b[64], d[64], line[256];

		snprintf(line, sizeof(line), "registered: dc %s, reflexive %s, natted %s, "
		    "keepalive %ld s\n", ntm_sa_str((struct sockaddr *)&a->dc, d, sizeof(d)),
		    ntm_sa_str((const struct sockaddr *)&r->reflexive, b, sizeof(b)),
		    natted ? "yes" : "no", a->keepalive_s);
		log_info("%.*s", (int)strlen(line) - 1, line);
		a->hooks->registered(a, line);
		agent_nat_discover(a, "registered");
		also_send(a);		/* the DC takes it now */
	}
}

/* ---- address changes ------------------------------------------------------ */

/* The DC's HTTPS URL names it by an address literal of one family (as
 * logged in); on a network of the other family only, its calls go to the
 * DC's address of that family, TLS still checking the URL's host. A URL
 * with a name needs nothing: libcurl asks for both families. */
static void
dc_https_follow(struct agent *a)
{
	char host[INET6_ADDRSTRLEN + 2], ip[INET6_ADDRSTRLEN];
	const char *u = a->s.dc_url, *p, *end;
	unsigned char bin[16];
	unsigned long port = 443;
	size_t n;
	int fam;

	if (a->http == NULL || strncmp(u, "https://", 8) != 0)
		return;
	u += 8;
	if (*u == '[') {
		if ((end = strchr(u, ']')) == NULL)
			return;
		n = (size_t)(end - u - 1);
		p = end + 1;
		u++;
	} else {
		n = strcspn(u, ":/");
		p = u + n;
	}
	if (n == 0 || n >= sizeof(host))
		return;
	memcpy(host, u, n);
	host[n] = '\0';
	if (*p == ':' && (port = strtoul(p + 1, NULL, 10)) == 0)
		return;
	fam = inet_pton(AF_INET, host, bin) == 1 ? AF_INET :
	    inet_pton(AF_INET6, host, bin) == 1 ? AF_INET6 : 0;
	if (fam == 0 || port > 65535)
		return;
	if (a->dc.ss_family == fam) {
		if (ntm_httpc_connect_to(a->http, host, (uint16_t)port, NULL) == 0)
			log_info("the DC's HTTPS calls go to %s again", host);
		return;
	}
	if (inet_ntop(a->dc.ss_family, a->dc.ss_family == AF_INET ?
	    (void *)&((struct sockaddr_in *)&a->dc)->sin_addr :
	    (void *)&((struct sockaddr_in6 *)&a->dc)->sin6_addr, ip, sizeof(ip)) == NULL)
		return;
	if (ntm_httpc_connect_to(a->http, host, (uint16_t)port, ip) == 0)
		log_info("the DC's HTTPS calls go to %s port %lu", ip, port);
}

void
agent_net_changed(struct agent *a, const char *why)
{
	char b[80];

	log_info("%s: registering again, keepalive on every tunnel", why);
	/* A network of the other family only (IPv6-only, say): the DC over
	 * the family this host has now. */
	if (agent_dc_family(&a->dc, &a->dclen, &a->dc_alt, &a->dc_altlen)) {
		log_info("the DC is now reached at %s", ntm_sa_str((struct sockaddr *)&a->dc, b,
		    sizeof(b)));
		dc_https_follow(a);
	}
	a->nlocals = agent_local_addrs(a->locals, NTM_REG_ADDRS, a->port, &a->dc);
	also_update(a);
	a->missed = 0;
	a->net_changes++;
	agent_ctl_net_changed(a);
	reg_send(a);
	for (int i = 0; i < a->ntun; i++)
		agent_tun_rebind(a->tuns[i]);
}

static void
on_net_timer(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;

	agent_net_changed(a, a->net_why);
}

static void
on_netlink(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	uint8_t buf[8192];
	int seen = 0;

	for (int k = 0; k < 16; k++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		struct nlmsghdr *h;
		size_t len;

		if (n <= 0)
			break;
		len = (size_t)n;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
			if (h->nlmsg_type == RTM_NEWADDR || h->nlmsg_type == RTM_DELADDR)
				seen = 1;
	}
	if (seen)
		agent_net_soon(a, "address change");
}

static int
netlink_open(void)
{
	struct sockaddr_nl snl;
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -1;
	memset(&snl, 0, sizeof(snl));
	snl.nl_family = AF_NETLINK;
	snl.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
	if (bind(fd, (struct sockaddr *)&snl, sizeof(snl)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}


/* The registration's timers and the netlink socket, on the loop. 0 or -1. */
int
agent_reg_start(struct agent *a)
{
	if ((a->reg_timer = evtimer_new(a->base, on_reg_timer, a)) == NULL ||
	    (a->reg_wait = evtimer_new(a->base, on_reg_wait, a)) == NULL ||
	    (a->net_timer = evtimer_new(a->base, on_net_timer, a)) == NULL)
		return -1;
	if ((a->nl = netlink_open()) >= 0) {
		if ((a->nl_ev = event_new(a->base, a->nl, EV_READ | EV_PERSIST, on_netlink,
		    a)) != NULL)
			event_add(a->nl_ev, NULL);
	} else
		log_warn("netlink (address changes will be noticed at the next keepalive)");
	return 0;
}

/* Our addresses, the first REG_REQ, and one every keepalive from now. */
void
agent_reg_begin(struct agent *a)
{
	a->nlocals = agent_local_addrs(a->locals, NTM_REG_ADDRS, a->port, &a->dc);
	also_update(a);
	reg_send(a);
	reg_timer_arm(a);
}

void
agent_reg_stop(struct agent *a)
{
	if (a->nl_ev)
		event_free(a->nl_ev);
	if (a->reg_timer)
		event_free(a->reg_timer);
	if (a->reg_wait)
		event_free(a->reg_wait);
	if (a->net_timer)
		event_free(a->net_timer);
	if (a->nl >= 0)
		close(a->nl);
	a->nl_ev = a->reg_timer = a->reg_wait = a->net_timer = NULL;
	a->nl = -1;
}
