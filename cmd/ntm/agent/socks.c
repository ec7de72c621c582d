/*
 * socks.c - a SOCKS5 server on loopback (RFC 1928; `ntm up --socks5
 * ADDR:PORT`, docs/protocol.md §6, "SOCKS5"): no authentication, CONNECT
 * and UDP ASSOCIATE, to peers named by FQDN (the agent gets a tunnel from
 * its DC, as `ntm tunnel open` does) or by the vIP of a tunnel it has.
 *
 * CONNECT becomes a stream (streams.c, SK_SOCKS) that answers the
 * request once the peer accepted or refused. UDP ASSOCIATE gives the client
 * a UDP socket on the same loopback address: each datagram it sends there
 * (RFC 1928 §7 header, no fragments) goes out as one UDP packet from our
 * vIP and the association's port to the peer's vIP; packets coming back to
 * that port are handed to the client with the peer's vIP as the source.
 * The association lasts as long as its TCP connection.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common.h"
#include "ippkt.h"
#include "agentd.h"
#include "socks5.h"

#define SOCKS_MAX	256		/* connections in negotiation or associated */
#define ASSOC_BUF	(NTM_INNER_MTU + 300)

enum sk_state { SS_GREET, SS_REQUEST, SS_ASSOC };

struct sconn {
	struct bufferevent	*bev;
	enum sk_state		 state;
	/* UDP ASSOCIATE */
	int			 ufd;
	struct event		*uev;
	uint16_t		 lport;		/* our vIP's source port */
	struct sockaddr_storage	 client;	/* where the client sends from */
	socklen_t		 clen;
	int			 has_client;
	uint64_t		 up, down;
};

static struct {
	struct agent		*a;
	struct evconnlistener	*lis;
	int			 fd;		/* bound before the loop runs */
	struct sockaddr_storage	 addr;
	socklen_t		 alen;
	struct sconn		*c[SOCKS_MAX];
	int			 n;
	uint64_t		 connects, associates, refused;
} sx;

static void
sc_free(struct sconn *c)
{
	for (int i = 0; i < sx.n; i++)
		if (sx.c[i] == c) {
			sx.c[i] = sx.c[--sx.n];
			break;
		}
	if (c->uev)
		event_free(c->uev);
	if (c->ufd >= 0)
		close(c->ufd);
	if (c->bev)
		bufferevent_free(c->bev);
	free(c);
}

static void
sc_reply(struct sconn *c, uint8_t rep)
{
	uint8_t r[10] = { 5, rep, 0, 1 };

	bufferevent_write(c->bev, r, sizeof(r));
}

static void
on_closed_write(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		sc_free(arg);
}

/* Answer with a failure, then close once it is written. */
static void
sc_fail(struct sconn *c, uint8_t rep)
{
	sx.refused++;
	sc_reply(c, rep);
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setcb(c->bev, NULL, on_closed_write, NULL, c);
}

/* The peer for a request's address: an FQDN as it is, a vIP through the
 * tunnel that has it. NULL if neither. */
static const char *
peer_for(const struct socks_dst *d, char *name, size_t nlen, int *family)
{
	struct agent *a = sx.a;

	if (d->atyp == 3) {
		if (socks_fqdn(d, name, nlen) < 0)
			return NULL;
		*family = a->has_vip4 ? 4 : 6;
		return name;
	}
	for (int i = 0; i < a->ntun; i++) {
		struct tun *t = a->tuns[i];

		if (d->atyp == 1 ? t->has4 && memcmp(t->pv4, d->addr, 4) == 0 :
		    t->has6 && memcmp(t->pv6, d->addr, 16) == 0) {
			*family = d->atyp == 1 ? 4 : 6;
			snprintf(name, nlen, "%s", t->peer);
			return name;
		}
	}
	return NULL;
}

/* ---- UDP ASSOCIATE -------------------------------------------------------------- */

static void
on_assoc_udp(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;
	struct agent *a = sx.a;
	uint8_t b[ASSOC_BUF], pkt[NTM_INNER_MTU];
	struct sockaddr_storage from;

	for (int k = 0; k < 64; k++) {
		socklen_t flen = sizeof(from);
		ssize_t r = recvfrom(fd, b, sizeof(b), 0, (struct sockaddr *)&from, &flen);
		struct socks_dst d;
		long h;
		char name[NTM_NAME_MAX + 1];
		int family, len;
		struct tun *t;
		struct ntm_ip ip;

		if (r < 0)
			return;
		/* Only the client that asked, from loopback: the first datagram
		 * fixes its address (RFC 1928 §7). */
		if (c->has_client && !ntm_sa_equal((struct sockaddr *)&c->client,
		    (struct sockaddr *)&from))
			continue;
		if (r < 0 || (h = socks_udp_header(b, (size_t)r, &d)) < 0 ||
		    peer_for(&d, name, sizeof(name), &family) == NULL)
			continue;
		if (!c->has_client) {
			c->client = from;
			c->clen = flen;
			c->has_client = 1;
		}
		if ((t = agent_tun_by_peer(a, name)) == NULL) {
			/* no tunnel yet: ask for one; this datagram is lost, as
			 * on any path being set up */
			agent_dial_prepare(a, name);
			continue;
		}
		memset(&ip, 0, sizeof(ip));
		ip.version = family;
		ip.proto = NTM_PROTO_UDP;
		ip.sport = c->lport;
		ip.dport = d.port;
		ip.payload = b + h;
		ip.len = (size_t)r - (size_t)h;
		if (family == 4 ? !(a->has_vip4 && t->has4) : !(a->has_vip6 && t->has6))
			continue;
		memcpy(ip.src, family == 4 ? a->vip4 : a->vip6, family == 4 ? 4 : 16);
		memcpy(ip.dst, family == 4 ? t->pv4 : t->pv6, family == 4 ? 4 : 16);
		if ((len = ntm_ip_build(pkt, sizeof(pkt), &ip)) > 0 &&
		    agent_tun_send(t, pkt, (size_t)len) == 0)
			c->up++;
	}
}

int
agent_socks_udp(struct agent *a, struct tun *t, const struct ntm_ip *ip)
{
	for (int i = 0; i < sx.n; i++) {
		struct sconn *c = sx.c[i];
		uint8_t b[ASSOC_BUF];
		size_t n;

		if (c->state != SS_ASSOC || c->lport != ip->dport || !c->has_client)
			continue;
		b[0] = b[1] = b[2] = 0;
		b[3] = ip->version == 4 ? 1 : 4;
		n = ip->version == 4 ? 4 : 16;
		memcpy(b + 4, ip->src, n);
		b[4 + n] = (uint8_t)(ip->sport >> 8);
		b[5 + n] = (uint8_t)ip->sport;
		if (ip->len > sizeof(b) - 6 - n)
			return -1;
		memcpy(b + 6 + n, ip->payload, ip->len);
		if (sendto(c->ufd, b, 6 + n + ip->len, 0, (struct sockaddr *)&c->client,
		    c->clen) > 0)
			c->down++;
		return 0;
	}
	return -1;
}

static void
sc_associate(struct sconn *c)
{
	struct sockaddr_storage ss = sx.addr;
	socklen_t len = sx.alen;
	uint8_t r[4 + 16 + 2] = { 5, 0, 0, 1 };
	size_t n;

	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	if ((c->ufd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(c->ufd, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(c->ufd, (struct sockaddr *)&ss, &len) < 0 ||
	    (c->uev = event_new(sx.a->base, c->ufd, EV_READ | EV_PERSIST, on_assoc_udp, c)) ==
	    NULL || event_add(c->uev, NULL) < 0) {
		sc_fail(c, 1);
		return;
	}
	ntm_random(&c->lport, sizeof(c->lport));
	c->lport |= 0xc000;
	c->state = SS_ASSOC;
	sx.associates++;
	if (ss.ss_family == AF_INET) {
		memcpy(r + 4, &((struct sockaddr_in *)&ss)->sin_addr, 4);
		memcpy(r + 8, &((struct sockaddr_in *)&ss)->sin_port, 2);
		n = 10;
	} else {
		r[3] = 4;
		memcpy(r + 4, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
		memcpy(r + 20, &((struct sockaddr_in6 *)&ss)->sin6_port, 2);
		n = 22;
	}
	bufferevent_write(c->bev, r, n);
}

/* ---- negotiation ------------------------------------------------------------------ */

static void
on_sc_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		sc_free(arg);	/* ends an association too */
}

static void
on_sc_read(struct bufferevent *bev, void *arg)
{
	struct sconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t b[4 + 1 + 255 + 2];
	size_t n = evbuffer_get_length(in);

	if (c->state == SS_GREET) {
		int none;
		long g;

		evbuffer_copyout(in, b, n < sizeof(b) ? n : sizeof(b));
		if ((g = socks_greeting(b, n < sizeof(b) ? n : sizeof(b), &none)) == 0)
			return;
		if (g < 0) {
			sc_free(c);	/* not SOCKS5 */
			return;
		}
		evbuffer_drain(in, (size_t)g);
		if (!none) {
			uint8_t r[2] = { 5, 0xff };

			bufferevent_write(bev, r, 2);
			bufferevent_disable(bev, EV_READ);
			bufferevent_setcb(bev, NULL, on_closed_write, NULL, c);
			return;
		}
		bufferevent_write(bev, "\x05\x00", 2);
		c->state = SS_REQUEST;
		n = evbuffer_get_length(in);
	}
	if (c->state == SS_REQUEST) {
		struct socks_dst d;
		uint8_t cmd;
		long h;
		char name[NTM_NAME_MAX + 1];
		int family = 4;
		struct bufferevent *sbev;

		evbuffer_copyout(in, b, n < sizeof(b) ? n : sizeof(b));
		if ((h = socks_request(b, n < sizeof(b) ? n : sizeof(b), &cmd, &d)) == 0)
			return;
		if (h == SOCKS_EHDR) {
			sc_fail(c, 1);
			return;
		}
		if (h == SOCKS_EATYP) {
			sc_fail(c, 8);		/* address type not supported */
			return;
		}
		evbuffer_drain(in, (size_t)h);
		if (cmd == SOCKS_ASSOCIATE) {
			sc_associate(c);
			return;
		}
		if (cmd != SOCKS_CONNECT) {
			sc_fail(c, 7);		/* command not supported */
			return;
		}
		if (peer_for(&d, name, sizeof(name), &family) == NULL) {
			sc_fail(c, 4);		/* host unreachable */
			return;
		}
		/* The stream takes the connection over. */
		sx.connects++;
		sbev = c->bev;
		c->bev = NULL;
		sc_free(c);
		agent_dial(sx.a, sbev, SK_SOCKS, 0, name, family, d.port);
		return;
	}
	/* SS_ASSOC: nothing more is expected on TCP */
	evbuffer_drain(in, n);
}

static void
on_socks_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct sconn *c;

	if (sx.n >= SOCKS_MAX || (c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->ufd = -1;
	if ((c->bev = bufferevent_socket_new(sx.a->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		free(c);
		return;
	}
	sx.c[sx.n++] = c;
	bufferevent_setcb(c->bev, on_sc_read, NULL, on_sc_event, c);
	bufferevent_enable(c->bev, EV_READ);
}

int
agent_socks_check(const char *spec, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errlen)
{
	if (ntm_sa_parse(ss, len, spec) < 0) {
		snprintf(err, errlen, "--socks5 '%s': expected ADDR:PORT", spec);
		return -1;
	}
	if (!(ss->ss_family == AF_INET ?
	    (ntohl(((struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127 :
	    IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ss)->sin6_addr))) {
		snprintf(err, errlen, "--socks5 '%s': only a loopback address (the proxy has "
		    "no authentication)", spec);
		return -1;
	}
	return 0;
}

/* Before the agent forks: the listening socket, so that `ntm up` can say
 * what is wrong. -1 with err filled. */
int
agent_socks_bind(struct agent *a, const char *spec, char *err, size_t errlen)
{
	int fd, one = 1;

	sx.a = a;
	sx.fd = -1;
	if (spec == NULL)
		return 0;
	if (agent_socks_check(spec, &sx.addr, &sx.alen, err, errlen) < 0)
		return -1;
	if ((fd = socket(sx.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sx.addr, sx.alen) < 0 || listen(fd, 64) < 0) {
		snprintf(err, errlen, "--socks5 '%s': %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	sx.fd = fd;
	return 0;
}

/* On the agent's loop. */
int
agent_socks_start(struct agent *a)
{
	char b[64];

	if (sx.fd < 0)
		return 0;
	if ((sx.lis = evconnlistener_new(a->base, on_socks_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, sx.fd)) == NULL)
		return -1;
	sx.fd = -1;
	log_info("SOCKS5 on %s", ntm_sa_str((struct sockaddr *)&sx.addr, b, sizeof(b)));
	return 0;
}

/* The parent of a detaching `ntm up`: the socket is the agent's now. */
void
agent_socks_forget(struct agent *a)
{
	if (sx.fd >= 0)
		close(sx.fd);
	sx.fd = -1;
}

json_t *
agent_socks_json(struct agent *a)
{
	char b[64];

	if (sx.lis == NULL)
		return json_null();
	return json_pack("{s:s, s:I, s:I, s:I, s:i}",
	    "listen", ntm_sa_str((struct sockaddr *)&sx.addr, b, sizeof(b)),
	    "connects", (json_int_t)sx.connects, "associates", (json_int_t)sx.associates,
	    "refused", (json_int_t)sx.refused, "open", sx.n);
}

void
agent_socks_stop(struct agent *a)
{
	while (sx.n > 0)
		sc_free(sx.c[0]);
	if (sx.lis)
		evconnlistener_free(sx.lis);
	sx.lis = NULL;
	agent_socks_forget(a);
}
