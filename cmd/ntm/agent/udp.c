/*
 * udp.c - the agent's one UDP socket: it carries registration with the DC,
 * relay binds and every tunnel. Sends are gathered into batches (sendmmsg,
 * UDP GSO), datagrams are read in batches (recvmmsg, UDP GRO) and each is
 * handed to the handler given at start (input.c). A send error is a hint
 * that the network changed under us: it sets off the mobility path
 * (registration.c) through the agent's net timer.
 */
#include <sys/socket.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common.h"
#include "agentd.h"


/*
 * Datagrams sent while handling one burst of input (frames from a local
 * application, datagrams from the network) are gathered and handed to the
 * kernel with one sendmmsg: the per-packet system call is most of the cost.
 * Runs of datagrams of one size to one endpoint go as one message with
 * UDP_SEGMENT (UDP GSO): the kernel walks its stack once for the run and
 * cuts it into datagrams at the device, or hands it whole to a receiver
 * that set UDP_GRO. A kernel or device that refuses GSO turns it off for
 * the life of the agent, and the batch is sent datagram by datagram.
 */
#define SEND_BATCH	128
static struct {
	int			depth, n;
	size_t			len[SEND_BATCH];
	struct sockaddr_storage	to[SEND_BATCH];
	socklen_t		tolen[SEND_BATCH];
	uint8_t			buf[SEND_BATCH][NTM_UDP_MAX];
} sb;

/* A datagram of type type to to was not sent. A PUNCH goes to addresses
 * the peer reported, which this host may have no route to: that says
 * nothing about our own network. */
static void
send_failed(struct agent *a, const struct sockaddr *to, int type)
{
	char b[64];
	int e = errno;

	a->send_errors++;
	log_debug("sendto %s: %s", ntm_sa_str(to, b, sizeof(b)), strerror(e));
	if (e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS && type != NTM_MSG_PUNCH)
		agent_net_soon(a, "send error");
}

/* May queued datagrams i and j share one GSO message? */
static int
gso_same(int i, int j)
{
	return sb.tolen[i] == sb.tolen[j] && memcmp(&sb.to[i], &sb.to[j], sb.tolen[i]) == 0;
}

static void
batch_flush(struct agent *a)
{
	static struct mmsghdr mm[SEND_BATCH];
	static struct iovec iov[SEND_BATCH];
	static union {
		struct cmsghdr	h;
		uint8_t		b[CMSG_SPACE(sizeof(uint16_t))];
	} ctl[SEND_BATCH];
	int first[SEND_BATCH], nmsg = 0, done = 0;

	for (int i = 0; i < sb.n; i++) {
		iov[i].iov_base = sb.buf[i];
		iov[i].iov_len = sb.len[i];
	}
	/* Messages: runs of equal-size datagrams to one endpoint (the last of
	 * a run may be shorter), or single datagrams without GSO. */
	for (int i = 0; i < sb.n; nmsg++) {
		struct msghdr *h = &mm[nmsg].msg_hdr;
		int k = 1;
		size_t total = sb.len[i];

		int closed = 0;

		if (!a->gso_off)
			while (i + k < sb.n && gso_same(i, i + k) &&
			    gso_joins(sb.len[i], k, total, closed, sb.len[i + k])) {
				closed = sb.len[i + k] < sb.len[i];	/* ends the run */
				total += sb.len[i + k++];
			}
		memset(&mm[nmsg], 0, sizeof(mm[nmsg]));
		h->msg_iov = &iov[i];
		h->msg_iovlen = (size_t)k;
		h->msg_name = &sb.to[i];
		h->msg_namelen = sb.tolen[i];
		if (k > 1) {
			struct cmsghdr *cm = &ctl[nmsg].h;
			uint16_t seg = (uint16_t)sb.len[i];

			memset(&ctl[nmsg], 0, sizeof(ctl[nmsg]));
			h->msg_control = ctl[nmsg].b;
			h->msg_controllen = sizeof(ctl[nmsg].b);
			cm->cmsg_level = SOL_UDP;
			cm->cmsg_type = UDP_SEGMENT;
			cm->cmsg_len = CMSG_LEN(sizeof(seg));
			memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
		}
		first[nmsg] = i;
		i += k;
	}
	while (done < nmsg) {
		int r = sendmmsg(a->udp, mm + done, (unsigned)(nmsg - done), 0);

		if (r < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			if (mm[done].msg_hdr.msg_iovlen > 1 && !a->gso_off &&
			    (e == EIO || e == EINVAL || e == EOPNOTSUPP || e == ENOPROTOOPT)) {
				/* No GSO here: the rest goes datagram by datagram. */
				log_info("UDP GSO unavailable (%s); sending datagram by datagram",
				    strerror(e));
				a->gso_off = 1;
				memmove(sb.buf, sb.buf[first[done]],
				    (size_t)(sb.n - first[done]) * sizeof(sb.buf[0]));
				memmove(sb.len, sb.len + first[done],
				    (size_t)(sb.n - first[done]) * sizeof(sb.len[0]));
				memmove(sb.to, sb.to + first[done],
				    (size_t)(sb.n - first[done]) * sizeof(sb.to[0]));
				memmove(sb.tolen, sb.tolen + first[done],
				    (size_t)(sb.n - first[done]) * sizeof(sb.tolen[0]));
				sb.n -= first[done];
				batch_flush(a);
				return;
			}
			/* The first one failed: count it, go on with the rest. */
			send_failed(a, (const struct sockaddr *)&sb.to[first[done]],
			    sb.buf[first[done]][0]);
			done++;
			continue;
		}
		for (int m = done; m < done + r; m++) {
			a->tx += mm[m].msg_hdr.msg_iovlen;
			if (mm[m].msg_hdr.msg_iovlen > 1)
				a->gso_sends++;
		}
		done += r;
	}
	sb.n = 0;
}

int
agent_udp_send(struct agent *a, const uint8_t *p, size_t n, const struct sockaddr_storage *to)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memcpy(&ss, to, sizeof(ss));
	if (ss.ss_family == AF_INET && a->dual) {
		struct sockaddr_in s4;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		memcpy(&s4, to, sizeof(s4));
		memset(&ss, 0, sizeof(ss));
		s6->sin6_family = AF_INET6;
		s6->sin6_port = s4.sin_port;
		s6->sin6_addr.s6_addr[10] = 0xff;
		s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&s6->sin6_addr.s6_addr[12], &s4.sin_addr, 4);
	}
	if (ss.ss_family == AF_INET6)
		len = sizeof(struct sockaddr_in6);
	else if (ss.ss_family == AF_INET)
		len = sizeof(struct sockaddr_in);
	else
		return -1;
	if (sb.depth > 0 && n <= NTM_UDP_MAX) {
		/* Inside a batch: queue, sent by one sendmmsg at the end. */
		memcpy(sb.buf[sb.n], p, n);
		sb.len[sb.n] = n;
		sb.to[sb.n] = ss;
		sb.tolen[sb.n] = len;
		if (++sb.n == SEND_BATCH)
			batch_flush(a);
		return 0;
	}
	if (sendto(a->udp, p, n, 0, (struct sockaddr *)&ss, len) < 0) {
		send_failed(a, (const struct sockaddr *)&ss, n > 0 ? p[0] : -1);
		return -1;
	}
	a->tx++;
	return 0;
}

void
agent_batch_begin(struct agent *a)
{
	sb.depth++;
}

void
agent_batch_end(struct agent *a)
{
	if (sb.depth > 0 && --sb.depth == 0)
		batch_flush(a);
}

void
agent_net_soon(struct agent *a, const char *why)
{
	/* Netlink reports an address change as a burst (address, routes):
	 * wait a moment for it to settle, but only a moment, since traffic is
	 * stalled until the peer hears from the new address. */
	struct timeval tv = { 0, 5000 };
	int64_t now = agent_now_ms();

	if (evtimer_pending(a->net_timer, NULL))
		return;
	if (strcmp(why, "send error") == 0) {
		if (now - a->last_senderr < 2000)
			return;
		a->last_senderr = now;
	}
	a->net_why = why;
	evtimer_add(a->net_timer, &tv);
}


/*
 * Datagrams are read in batches: one system call for up to UDP_BATCH. With
 * UDP_GRO set, one message may hold a run of datagrams that a sender gave
 * the kernel as one GSO message: the control message says the size of each,
 * and they are taken apart here, each one checked on its own.
 */
#define UDP_BATCH	16
#define GRO_BUF		65536

static agent_datagram_fn datagram;	/* input.c's, given at start */

static void
on_udp(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	static uint8_t bufs[UDP_BATCH][GRO_BUF];
	static struct sockaddr_storage from[UDP_BATCH];
	static union {
		struct cmsghdr	h;
		uint8_t		b[CMSG_SPACE(sizeof(int))];
	} ctl[UDP_BATCH];
	struct mmsghdr mm[UDP_BATCH];
	struct iovec iov[UDP_BATCH];

	agent_batch_begin(a);
	for (int round = 0; round < 16; round++) {
		int got;

		for (int i = 0; i < UDP_BATCH; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = a->gro ? GRO_BUF : NTM_UDP_MAX + 1;
			memset(&mm[i], 0, sizeof(mm[i]));
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
			mm[i].msg_hdr.msg_name = &from[i];
			mm[i].msg_hdr.msg_namelen = sizeof(from[i]);
			if (a->gro) {
				mm[i].msg_hdr.msg_control = ctl[i].b;
				mm[i].msg_hdr.msg_controllen = sizeof(ctl[i].b);
			}
		}
		if ((got = recvmmsg(fd, mm, UDP_BATCH, MSG_DONTWAIT, NULL)) <= 0)
			break;
		for (int i = 0; i < got; i++) {
			struct msghdr *h = &mm[i].msg_hdr;
			socklen_t flen = h->msg_namelen;
			size_t n = mm[i].msg_len, seg = n;
			struct cmsghdr *cm;

			ntm_sa_unmap(&from[i], &flen);
			if (h->msg_flags & MSG_TRUNC) {
				a->rx++;
				a->drops[DROP_MALFORMED]++;
				continue;
			}
			for (cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm))
				if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO &&
				    cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
					int v;

					memcpy(&v, CMSG_DATA(cm), sizeof(v));
					seg = gro_seg(n, v);
				}
			if (seg < n)
				a->gro_recvs++;
			for (size_t off = 0; off < n; off += seg) {
				size_t len = n - off < seg ? n - off : seg;

				a->rx++;
				if (len > NTM_UDP_MAX) {
					a->drops[DROP_MALFORMED]++;
					continue;
				}
				datagram(a, bufs[i] + off, len, &from[i]);
			}
		}
		if (got < UDP_BATCH)
			break;
	}
	agent_batch_end(a);
}


int
agent_udp_start(struct agent *a, agent_datagram_fn fn)
{
	datagram = fn;
	if ((a->udp_ev = event_new(a->base, a->udp, EV_READ | EV_PERSIST, on_udp, a)) == NULL ||
	    event_add(a->udp_ev, NULL) < 0)
		return -1;
	return 0;
}

int
agent_udp_open(long port, int *dual, int *gro, uint16_t *bound, char *err, size_t errlen)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd, off = 0;

	*dual = 0;
	if ((fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) >= 0) {
		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		s6.sin6_addr = in6addr_any;
		s6.sin6_port = htons((uint16_t)port);
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) == 0 &&
		    bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0) {
			*dual = 1;
			goto bound;
		}
		if (errno == EADDRINUSE) {
			snprintf(err, errlen, "UDP port %ld: %s", port, strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
	}
	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "UDP socket: %s", strerror(errno));
		return -1;
	}
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	s4.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&s4, sizeof(s4)) < 0) {
		snprintf(err, errlen, "UDP port %ld: %s", port, strerror(errno));
		close(fd);
		return -1;
	}
bound:
	{
		/* Room for bursts: one socket carries every tunnel. Best effort
		 * (capped by net.core.[rw]mem_max without privileges). */
		int sz = 4 << 20;
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	{
		/* Runs of datagrams sent with GSO arrive as one message. */
		int on = 1;
		*gro = setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on)) == 0;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		close(fd);
		return -1;
	}
	*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}
