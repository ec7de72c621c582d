/*
 * bday.c - the extra sockets of birthday probing (docs/protocol.md §4.8,
 * "one end maps per destination"). Behind a NAT that maps per
 * destination, a tunnel's peer core sends from up to NTM_PEER_BDAY_SOCKS
 * extra UDP sockets, each of which gets its own mapping towards the peer;
 * the peer probes ports of our NAT at random and one of its probes may hit
 * one of them. What comes back on such a socket goes to that tunnel's core
 * with the socket's number, and only there. A socket is opened at its
 * first use and closed as soon as the core no longer uses it
 * (agent_bday_sync, after each event of the tunnel); the one a punched
 * path uses stays. At most AGENT_BDAY_FDS are open in the agent at once:
 * beyond that the core's sends from more are dropped (fewer mappings,
 * lower odds, nothing else).
 */
#include <sys/socket.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common.h"
#include "punch.h"
#include "agentd.h"

#define AGENT_BDAY_FDS	512
#define BDAY_READS	16	/* datagrams read per wake-up */

struct bday_sock {
	int		 fd, idx;
	struct event	*ev;
	struct tun	*t;
};

static int bday_fds;	/* open in the agent */

static void
bday_close(struct tun *t, int idx)
{
	struct bday_sock *b = t->bsock[idx];

	if (b == NULL)
		return;
	event_free(b->ev);
	close(b->fd);
	free(b);
	t->bsock[idx] = NULL;
	t->nbsock--;
	bday_fds--;
}

/* A datagram on extra socket b: only t's PUNCH, HS_INIT, HS_RESP, DATA. */
static void
bday_datagram(struct bday_sock *b, uint8_t *p, size_t n, struct sockaddr_storage *from)
{
	struct tun *t = b->t;
	int type = ntm_msg_validate(p, n);

	if (type == NTM_MSG_PUNCH) {
		const uint8_t *tid = ntm_punch_tunnel_id(p, n);

		if (tid && memcmp(tid, t->tid, NTM_TUNNEL_ID_LEN) == 0)
			agent_tun_punch(t, p, n, from, b->idx);
		else
			t->a->drops[DROP_UNKNOWN]++;
	} else if ((type == NTM_MSG_HS_INIT &&
	    memcmp(ntm_msg_tunnel_id(p, n), t->tid, NTM_TUNNEL_ID_LEN) == 0) ||
	    ((type == NTM_MSG_HS_RESP || type == NTM_MSG_DATA) &&
	    ntm_tunnel_owns_index(t->p.t, ntm_msg_receiver_index(p, n))))
		agent_tun_input(t, p, n, from, b->idx);
	else
		t->a->drops[type < 0 ? DROP_MALFORMED : DROP_UNKNOWN]++;
}

static void
on_bday(evutil_socket_t fd, short what, void *arg)
{
	struct bday_sock *b = arg;
	struct tun *t = b->t;
	int idx = b->idx;
	static uint8_t buf[NTM_UDP_MAX + 1];

	agent_batch_begin(t->a);
	for (int i = 0; i < BDAY_READS && t->bsock[idx] == b; i++) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT,
		    (struct sockaddr *)&from, &flen);

		if (n < 0)
			break;
		t->a->rx++;
		if ((size_t)n > NTM_UDP_MAX) {
			t->a->drops[DROP_MALFORMED]++;
			continue;
		}
		ntm_sa_unmap(&from, &flen);
		bday_datagram(b, buf, (size_t)n, &from);
	}
	agent_batch_end(t->a);
}

static struct bday_sock *
bday_open(struct tun *t, int idx, int family)
{
	struct bday_sock *b;
	int fd;

	if (bday_fds >= AGENT_BDAY_FDS)
		return NULL;
	if ((fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		log_debug("tunnel %s: extra socket %d: %s", t->peer, idx, strerror(errno));
		return NULL;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->ev = event_new(t->a->base, fd, EV_READ | EV_PERSIST, on_bday, b)) == NULL ||
	    event_add(b->ev, NULL) < 0) {
		if (b && b->ev)
			event_free(b->ev);
		free(b);
		close(fd);
		return NULL;
	}
	b->fd = fd;
	b->idx = idx;
	b->t = t;
	t->bsock[idx] = b;
	t->nbsock++;
	bday_fds++;
	return b;
}

void
agent_bday_send(struct tun *t, int idx, const uint8_t *p, size_t n,
    const struct sockaddr_storage *to)
{
	struct bday_sock *b;
	socklen_t len = to->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);

	if (idx < 1 || idx > NTM_PEER_BDAY_SOCKS)
		return;
	if ((b = t->bsock[idx]) == NULL && (b = bday_open(t, idx, to->ss_family)) == NULL)
		return;
	/* A failure says nothing of our network (the main socket's do). */
	if (sendto(b->fd, p, n, 0, (const struct sockaddr *)to, len) < 0)
		t->a->send_errors++;
	else
		t->a->tx++;
}

void
agent_bday_sync(struct tun *t)
{
	int keep = t->p.punched && t->p.ep_sock > 0 && t->bsock[t->p.ep_sock] != NULL;
	int other = t->p.ep_sock == 1 ? 2 : 1;	/* not the path's */

	/* Called after every event of the tunnel: the common cases at once. */
	if (t->nbsock == 0 || (t->nbsock == 1 && keep) || ntm_peer_sock_used(&t->p, other))
		return;		/* none, only the path's, or all in use */
	for (int i = 1; i <= NTM_PEER_BDAY_SOCKS && t->nbsock > 0; i++)
		if (t->bsock[i] && !ntm_peer_sock_used(&t->p, i))
			bday_close(t, i);
}

void
agent_bday_free(struct tun *t)
{
	for (int i = 1; i <= NTM_PEER_BDAY_SOCKS && t->nbsock > 0; i++)
		bday_close(t, i);
}
