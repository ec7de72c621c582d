/*
 * udp.c - the RS's UDP sockets: recvmmsg batches with the local address of
 * each datagram (IP_PKTINFO / IPV6_PKTINFO), the forwarding core decides,
 * sendmmsg sends from the address the peer talks to.
 *
 * With UDP_GRO, a run of datagrams that an agent sent with GSO arrives as
 * one message; the core still judges every datagram on its own, and the
 * datagrams it forwards to one destination, of one size and next to each
 * other in the buffer, go out again as one message with UDP_SEGMENT. A
 * kernel that refuses GSO turns it off; the run is then sent one by one.
 *
 * Reflection probes (PROBE, docs/protocol.md §4.7) never reach the core:
 * lib/core/probe.c answers them here, never with more bytes than the
 * probe and at most probe_rate a second per source address. Each socket
 * has a second one on its address, the other port (probe_alt_port): a
 * probe that asks to be answered from another port (the filtering test)
 * gets its one answer from there, to its source only. With probe_alt_addr
 * the RS has one more socket, on another of its addresses: a probe that
 * asks to be answered from another address gets its answer from there.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "probe.h"
#include "rs.h"

_Static_assert(NTM_PROBE_RESP_LEN <= sizeof(((struct ntm_relay_out *)0)->reply),
    "a probe's answer fits a reply");

#define SOCKBUF		(4 * 1024 * 1024)
#define CMSG_SPACE_MAX	(CMSG_SPACE(sizeof(struct in6_pktinfo)) + \
			 CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(int)))
#define RX_BUF		65536		/* a coalesced run (UDP_GRO) */
#define TX_MAX		(RS_BATCH * GSO_SEGS)

int64_t
rs_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- receiving ----------------------------------------------------------- */

struct rx {
	uint8_t			 buf[RX_BUF];
	struct sockaddr_storage	 from;
	_Alignas(struct cmsghdr) char ctl[CMSG_SPACE_MAX];
	struct iovec		 iov;
};

struct tx {
	struct sockaddr_storage	 to;
	_Alignas(struct cmsghdr) char ctl[CMSG_SPACE_MAX];
	struct iovec		 iov;
	struct ntm_relay_out	 o;
	int			 k;		/* socket index */
	size_t			 seg;		/* datagram size of a run */
	int			 n;		/* datagrams in the run */
	int			 closed;	/* a shorter one ended the run */
};

static struct rx rxs[RS_BATCH];
static struct tx txs[TX_MAX];
static struct mmsghdr rmsg[RS_BATCH];
static struct mmsghdr per[RS_SOCKS_MAX][TX_MAX];

/* The address the datagram was sent to, with the socket's port. */
static socklen_t
local_addr(const struct msghdr *m, const struct rs_sock *sk, struct sockaddr_storage *ss)
{
	struct cmsghdr *c;

	memset(ss, 0, sizeof(*ss));
	for (c = CMSG_FIRSTHDR((struct msghdr *)m); c; c = CMSG_NXTHDR((struct msghdr *)m, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			s4->sin_family = AF_INET;
			s4->sin_addr = pi.ipi_addr;
			s4->sin_port = htons(sk->port);
			return sizeof(*s4);
		}
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			s6->sin6_family = AF_INET6;
			s6->sin6_addr = pi.ipi6_addr;
			s6->sin6_port = htons(sk->port);
			if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
				s6->sin6_scope_id = (uint32_t)pi.ipi6_ifindex;
			return sizeof(*s6);
		}
	}
	return 0;
}

/* The socket to send from: the one with the port the peer sent to, of a
 * family that can reach `to`. */
static struct rs_sock *
pick_sock(struct rs *rs, const struct ntm_relay_out *o)
{
	uint16_t port = 0;
	struct rs_sock *any = NULL;
	int i;

	if (o->src.ss_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)&o->src)->sin_port);
	else if (o->src.ss_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)&o->src)->sin6_port);
	for (i = 0; i < rs->nsocks; i++) {
		struct rs_sock *sk = &rs->socks[i];
		int ok = o->to.ss_family == AF_INET ? (sk->family == AF_INET || sk->dual) :
		    sk->family == AF_INET6;

		if (!ok)
			continue;
		if (sk->port == port)
			return sk;
		if (any == NULL)
			any = sk;
	}
	return any;
}

/* A tx for the notify of out (the bind's RELAY_ACK to the other side): 1,
 * or 0 when no socket can send it (counted). */
static int
add_notify(struct rs *rs, struct tx *u, const struct ntm_relay_out *out)
{
	struct rs_sock *sk;

	memset(&u->o, 0, sizeof(u->o));
	u->o.action = NTM_RELAY_REPLY;
	u->o.to = out->notify_to;
	u->o.tolen = out->notify_tolen;
	u->o.src = out->notify_src;
	u->o.srclen = out->notify_srclen;
	memcpy(u->o.reply, out->notify, out->notify_len);
	u->o.reply_len = out->notify_len;
	if ((sk = pick_sock(rs, &u->o)) == NULL) {
		rs->send_errors++;
		return 0;
	}
	u->k = (int)(sk - rs->socks);
	u->n = 1;
	u->closed = 0;
	u->seg = out->notify_len;
	u->iov.iov_base = u->o.reply;
	u->iov.iov_len = u->o.reply_len;
	return 1;
}

/* Fills mh to send t (t->iov, a run of t->n datagrams of t->seg bytes when
 * t->n > 1) on sk. */
static int
tx_prepare(struct tx *t, struct mmsghdr *mh, const struct rs_sock *sk)
{
	const struct ntm_relay_out *o = &t->o;
	struct msghdr *m = &mh->msg_hdr;
	struct cmsghdr *c;
	socklen_t tolen;

	memset(mh, 0, sizeof(*mh));
	memset(&t->ctl, 0, sizeof(t->ctl));
	m->msg_iov = &t->iov;
	m->msg_iovlen = 1;
	memset(&t->to, 0, sizeof(t->to));
	if (o->to.ss_family == AF_INET && sk->family == AF_INET6) {
		/* IPv4 peer on the dual-stack socket: as ::ffff:a.b.c.d */
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&o->to;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->to;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = s4->sin_port;
		s6->sin6_addr.s6_addr[10] = 0xff;
		s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(s6->sin6_addr.s6_addr + 12, &s4->sin_addr, 4);
		tolen = sizeof(*s6);
	} else {
		memcpy(&t->to, &o->to, o->tolen);
		tolen = o->tolen;
	}
	m->msg_name = &t->to;
	m->msg_namelen = tolen;
	if (o->src.ss_family == AF_INET) {
		/* IP_PKTINFO is taken on IPv4 and (for IPv4 peers) dual-stack sockets */
		struct in_pktinfo pi;

		memset(&pi, 0, sizeof(pi));
		pi.ipi_spec_dst = ((const struct sockaddr_in *)&o->src)->sin_addr;
		m->msg_control = t->ctl;
		m->msg_controllen = CMSG_SPACE(sizeof(pi));
		c = CMSG_FIRSTHDR(m);
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	} else if (o->src.ss_family == AF_INET6 && sk->family == AF_INET6) {
		struct in6_pktinfo pi;
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&o->src;

		memset(&pi, 0, sizeof(pi));
		pi.ipi6_addr = s6->sin6_addr;
		pi.ipi6_ifindex = IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr) ? s6->sin6_scope_id : 0;
		m->msg_control = t->ctl;
		m->msg_controllen = CMSG_SPACE(sizeof(pi));
		c = CMSG_FIRSTHDR(m);
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	}
	if (t->n > 1) {
		uint16_t seg = (uint16_t)t->seg;

		c = (struct cmsghdr *)(t->ctl + m->msg_controllen);
		m->msg_control = t->ctl;
		m->msg_controllen += CMSG_SPACE(sizeof(seg));
		c->cmsg_level = SOL_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(seg));
		memcpy(CMSG_DATA(c), &seg, sizeof(seg));
	}
	return 0;
}

/* Sends the prepared messages of one socket; failures are counted and
 * skipped (a full send buffer or an unreachable peer must not stall the
 * others). */
/* A run the kernel would not take as one: its datagrams one by one. */
static void
send_split(struct rs *rs, struct rs_sock *sk, struct mmsghdr *mh, size_t seg)
{
	struct msghdr m = mh->msg_hdr;
	struct iovec whole = *m.msg_iov, one;

	m.msg_controllen -= CMSG_SPACE(sizeof(uint16_t));	/* UDP_SEGMENT is last */
	if (m.msg_controllen == 0)
		m.msg_control = NULL;
	m.msg_iov = &one;
	for (size_t off = 0; off < whole.iov_len; off += seg) {
		one.iov_base = (uint8_t *)whole.iov_base + off;
		one.iov_len = whole.iov_len - off < seg ? whole.iov_len - off : seg;
		if (sendmsg(sk->fd, &m, MSG_DONTWAIT) < 0)
			rs->send_errors++;
	}
}

static void
flush(struct rs *rs, struct rs_sock *sk, struct mmsghdr *mh, struct tx **tm, int n)
{
	int off = 0, r;

	while (off < n) {
		r = sendmmsg(sk->fd, mh + off, (unsigned)(n - off), MSG_DONTWAIT);
		if (r < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			if (tm[off]->n > 1 && (e == EIO || e == EINVAL || e == EOPNOTSUPP)) {
				if (!rs->gso_off)
					log_info("UDP GSO unavailable on %s (%s): datagram by "
					    "datagram", sk->name, strerror(e));
				rs->gso_off = 1;
				send_split(rs, sk, &mh[off], tm[off]->seg);
				off++;
				continue;
			}
			rs->send_errors++;
			log_debug("send on %s: %s", sk->name, strerror(e));
			off++;		/* drop the one that failed */
			continue;
		}
		for (int i = off; i < off + r; i++)
			if (tm[i]->n > 1)
				rs->gso_sends++;
		off += r;
	}
}

/* The size of the datagrams of a coalesced message (UDP_GRO), else 0. */
static size_t
gro_size(struct msghdr *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
		if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
		    c->cmsg_len >= CMSG_LEN(sizeof(int))) {
			int v;

			memcpy(&v, CMSG_DATA(c), sizeof(v));
			return v > 0 ? (size_t)v : 0;
		}
	return 0;
}

/* Can datagram p (len) to o join run t? */
static int
joins(const struct tx *t, const struct ntm_relay_out *o, int k, const uint8_t *p, size_t len)
{
	return t->k == k && t->o.action == NTM_RELAY_FORWARD &&
	    o->action == NTM_RELAY_FORWARD &&
	    gso_joins(t->seg, t->n, t->iov.iov_len, t->closed, len) &&
	    (const uint8_t *)t->iov.iov_base + t->iov.iov_len == p &&
	    t->o.tolen == o->tolen && memcmp(&t->o.to, &o->to, o->tolen) == 0 &&
	    t->o.srclen == o->srclen && memcmp(&t->o.src, &o->src, o->srclen) == 0;
}

static struct rs *cur_rs;	/* the daemon has one struct rs */

/* The answer in t, sent at once from sk's other port (same address). */
static void
send_alt(struct rs *rs, struct rs_sock *sk, struct tx *t)
{
	struct mmsghdr mh;

	t->n = 1;
	t->iov.iov_base = t->o.reply;
	t->iov.iov_len = t->o.reply_len;
	tx_prepare(t, &mh, sk);
	if (sendmsg(sk->alt_fd, &mh.msg_hdr, 0) < 0)
		rs->send_errors++;
}

/* A PROBE from `from` (to local, on sk): 1 with t->o the answer to send,
 * or 0 (not answered, counted by lib/core/probe.c, or answered from the
 * other port already). */
static int
probe_answer(struct rs *rs, struct rs_sock *sk, const uint8_t *p, size_t n,
    const struct sockaddr_storage *from, socklen_t fromlen,
    const struct sockaddr_storage *local, socklen_t llen, int64_t now_ms, struct tx *t)
{
	size_t len;
	int alt;

	memset(&t->o, 0, sizeof(t->o));
	if (rs->probe == NULL) {
		rs->probes_off++;
		return 0;
	}
	len = ntm_probe_srv_answer_addr(rs->probe, p, n, (const struct sockaddr *)from, fromlen,
	    now_ms, sk->alt_fd >= 0 ? sk->alt_port : 0,
	    rs->altaddr_fd >= 0 ? (const struct sockaddr *)&rs->altaddr : NULL, t->o.reply,
	    sizeof(t->o.reply), &alt);
	if (len == 0)
		return 0;
	t->o.action = NTM_RELAY_REPLY;
	t->o.reply_len = len;
	memcpy(&t->o.to, from, fromlen);
	t->o.tolen = fromlen;
	ntm_sa_unmap(&t->o.to, &t->o.tolen);
	if (llen) {
		memcpy(&t->o.src, local, llen);
		t->o.srclen = llen;
	}
	if (alt == NTM_PROBE_ALT_ADDR) {
		/* From the other address, whose socket is bound to it. */
		if (sendto(rs->altaddr_fd, t->o.reply, t->o.reply_len, 0,
		    (struct sockaddr *)&t->o.to, t->o.tolen) < 0)
			rs->send_errors++;
		return 0;
	}
	if (alt) {
		send_alt(rs, sk, t);
		return 0;
	}
	return 1;
}

/* A datagram to the other port (or the other address): a probe is
 * answered from there (it names no other port: the filtering test is the
 * main port's); the rest is not for this socket and is dropped. */
static void
on_alt(evutil_socket_t fd, short what, void *arg)
{
	struct rs *rs = cur_rs;

	for (int i = 0; i < RS_BATCH; i++) {
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		uint8_t buf[NTM_PROBE_LEN + 1];
		struct tx *t = &txs[0];
		ssize_t n;
		int alt;

		n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
		if (n < 0)
			return;
		if (n < 1 || buf[0] != NTM_MSG_PROBE)
			continue;
		if (rs->probe == NULL) {
			rs->probes_off++;
			continue;
		}
		memset(&t->o, 0, sizeof(t->o));
		t->o.reply_len = ntm_probe_srv_answer(rs->probe, buf, (size_t)n,
		    (struct sockaddr *)&from, fromlen, rs_now_ms(), 0, t->o.reply,
		    sizeof(t->o.reply), &alt);
		if (t->o.reply_len == 0)
			continue;
		if (sendto(fd, t->o.reply, t->o.reply_len, 0, (struct sockaddr *)&from,
		    fromlen) < 0)
			rs->send_errors++;
	}
}

static void
on_udp(evutil_socket_t fd, short what, void *arg)
{
	struct rs_sock *sk = arg, *out_sk;
	struct rs *rs = cur_rs;
	struct sockaddr_storage local;
	socklen_t llen;
	int64_t now_ms, now_s;
	int i, n, batch, ntx;
	static struct tx *tm[RS_SOCKS_MAX][TX_MAX];	/* the tx of each message */
	int nper[RS_SOCKS_MAX];

	for (batch = 0; batch < RS_BATCHES; batch++) {
		for (i = 0; i < RS_BATCH; i++) {
			memset(&rmsg[i], 0, sizeof(rmsg[i]));
			rxs[i].iov.iov_base = rxs[i].buf;
			rxs[i].iov.iov_len = sk->gro ? sizeof(rxs[i].buf) : NTM_UDP_MAX + 1;
			rmsg[i].msg_hdr.msg_iov = &rxs[i].iov;
			rmsg[i].msg_hdr.msg_iovlen = 1;
			rmsg[i].msg_hdr.msg_name = &rxs[i].from;
			rmsg[i].msg_hdr.msg_namelen = sizeof(rxs[i].from);
			rmsg[i].msg_hdr.msg_control = rxs[i].ctl;
			rmsg[i].msg_hdr.msg_controllen = sizeof(rxs[i].ctl);
		}
		n = recvmmsg(fd, rmsg, RS_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				rs->recv_errors++;
				log_debug("recv on %s: %s", sk->name, strerror(errno));
			}
			return;
		}
		now_ms = rs_now_ms();
		now_s = now_unix();
		ntx = 0;
		for (i = 0; i < n; i++) {
			size_t len = rmsg[i].msg_len, seg;
			struct tx *run = NULL;

			if (rmsg[i].msg_hdr.msg_flags & MSG_TRUNC)
				len = seg = NTM_UDP_MAX + 1;	/* too big: the core drops it */
			else
				seg = gro_seg(len, (long)gro_size(&rmsg[i].msg_hdr));
			if (seg < len)
				rs->gro_recvs++;
			llen = local_addr(&rmsg[i].msg_hdr, sk, &local);
			for (size_t off = 0; off < len || (len == 0 && off == 0); off += seg ? seg : 1) {
				size_t dl = len - off < seg ? len - off : seg;
				uint8_t *dp = rxs[i].buf + off;
				struct tx *t = &txs[ntx];
				int k;

				if (dl > 0 && dp[0] == NTM_MSG_PROBE) {
					if (!probe_answer(rs, sk, dp, dl, &rxs[i].from,
					    rmsg[i].msg_hdr.msg_namelen, &local, llen, now_ms, t)) {
						run = NULL;
						continue;
					}
				} else if (ntm_relay_input(rs->relay, dp, dl,
				    (struct sockaddr *)&rxs[i].from, rmsg[i].msg_hdr.msg_namelen,
				    llen ? (struct sockaddr *)&local : NULL, llen, now_ms, now_s,
				    &t->o) == NTM_RELAY_DROP) {
					run = NULL;
					if (len == 0)
						break;
					continue;
				}
				if ((out_sk = pick_sock(rs, &t->o)) == NULL) {
					rs->send_errors++;
					run = NULL;
					continue;
				}
				k = (int)(out_sk - rs->socks);
				if (run && !rs->gso_off && joins(run, &t->o, k, dp, dl)) {
					run->iov.iov_len += dl;
					run->n++;
					run->closed = dl < run->seg;
					continue;
				}
				t->k = k;
				t->n = 1;
				t->closed = 0;
				t->seg = dl;
				if (t->o.action == NTM_RELAY_REPLY) {
					t->iov.iov_base = t->o.reply;
					t->iov.iov_len = t->o.reply_len;
					run = NULL;
				} else {
					t->iov.iov_base = dp;
					t->iov.iov_len = dl;
					run = t;
				}
				ntx++;
				/* The ACK to the side that waited for this bind. */
				if (t->o.notify_len && ntx < TX_MAX)
					ntx += add_notify(rs, &txs[ntx], &t->o);
				if (len == 0)
					break;
			}
		}
		memset(nper, 0, sizeof(nper));
		for (i = 0; i < ntx; i++) {
			int k = txs[i].k;

			tx_prepare(&txs[i], &per[k][nper[k]], &rs->socks[k]);
			tm[k][nper[k]++] = &txs[i];
		}
		for (i = 0; i < rs->nsocks; i++)
			if (nper[i])
				flush(rs, &rs->socks[i], per[i], tm[i], nper[i]);
		if (n < RS_BATCH)
			return;
	}
}

/* ---- sockets ------------------------------------------------------------- */

/* sk's other port (probe_alt_port; by default its port + 1, a free one
 * if sk's was), on its address: 0, or -1 when a configured port cannot be
 * bound. The default one that cannot be bound only warns: the filtering
 * test then says "unknown". */
static int
open_alt(struct rs *rs, struct rs_sock *sk, const struct sockaddr_storage *bound,
    socklen_t len, int v6only, int ephemeral, char *err, size_t errlen)
{
	long cfg = rs->srv->conf.probe_alt_port;
	struct sockaddr_storage ss = *bound;
	uint16_t port;
	int fd, one = 1;

	sk->alt_fd = -1;
	sk->alt_port = 0;
	if (cfg == 0)
		return 0;
	port = cfg > 0 ? (uint16_t)cfg : sk->port == 65535 ? 0 : (uint16_t)(sk->port + 1);
	if (cfg < 0 && ephemeral)
		port = 0;	/* an ephemeral relay port: an ephemeral other one */
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	if ((fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	if (ss.ss_family == AF_INET6 && (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
	    sizeof(v6only)) < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
	    sizeof(one)) < 0))
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		goto fail;
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		goto fail;
	sk->alt_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port);
	ntm_sa_str((struct sockaddr *)&ss, sk->alt_name, sizeof(sk->alt_name));
	if ((sk->alt_ev = event_new(rs->srv->base, fd, EV_READ | EV_PERSIST, on_alt, sk)) ==
	    NULL || event_add(sk->alt_ev, NULL) < 0) {
		if (sk->alt_ev)
			event_free(sk->alt_ev);
		sk->alt_ev = NULL;
		errno = ENOMEM;
		goto fail;
	}
	sk->alt_fd = fd;
	log_info("probes: the other port is udp %s (the filtering test)", sk->alt_name);
	return 0;
fail:
	if (cfg > 0)
		snprintf(err, errlen, "probe_alt_port %ld on %s: %s", cfg, sk->name,
		    strerror(errno));
	else
		log_warnx("probes: no other port next to %s (%s): the filtering test is not "
		    "answered (set probe_alt_port)", sk->name, strerror(errno));
	if (fd >= 0)
		close(fd);
	sk->alt_port = 0;
	sk->alt_name[0] = 0;
	return cfg > 0 ? -1 : 0;
}

static int
open_one(struct rs *rs, const char *spec, int v6only, char *err, size_t errlen)
{
	struct rs_sock *sk = &rs->socks[rs->nsocks];
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, buf = SOCKBUF, v6o = v6only, ephemeral;

	if (ntm_sa_parse(&ss, &len, spec) < 0) {
		snprintf(err, errlen, "udp address '%s' is not ip:port", spec);
		return -1;
	}
	ephemeral = (ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port) == 0;
	if ((fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "udp socket for %s: %s", spec, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	sk->gro = setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
	if (ss.ss_family == AF_INET6) {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6o, sizeof(v6o)) < 0 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0 ||
		    (!v6only && setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0))
			goto fail;
	} else if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		snprintf(err, errlen, "udp bind %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		goto fail;
	sk->fd = fd;
	sk->family = ss.ss_family;
	sk->dual = ss.ss_family == AF_INET6 && !v6only;
	sk->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port);
	ntm_sa_str((struct sockaddr *)&ss, sk->name, sizeof(sk->name));
	if ((sk->ev = event_new(rs->srv->base, fd, EV_READ | EV_PERSIST, on_udp, sk)) == NULL ||
	    event_add(sk->ev, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the udp socket %s", sk->name);
		if (sk->ev)
			event_free(sk->ev);
		sk->ev = NULL;
		close(fd);
		return -1;
	}
	rs->nsocks++;
	log_info("relaying on udp %s%s", sk->name, sk->dual ? " (IPv4 and IPv6)" : "");
	return open_alt(rs, sk, &ss, len, v6only, ephemeral, err, errlen);
fail:
	snprintf(err, errlen, "udp socket %s: %s", spec, strerror(errno));
	close(fd);
	return -1;
}

/* The other address (probe_alt_addr): 0, or -1 with err when it cannot be
 * bound (it was asked for). */
static int
open_altaddr(struct rs *rs, char *err, size_t errlen)
{
	const char *v = rs->srv->conf.probe_alt_addr;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = -1, one = 1;

	if (v == NULL)
		return 0;
	if (srv_probe_alt_addr(v, &ss, &len) < 0) {
		snprintf(err, errlen, "probe_alt_addr '%s' is not an IP address or ip:port", v);
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
	    sizeof(one)) < 0) || bind(fd, (struct sockaddr *)&ss, len) < 0)
		goto fail;
	len = sizeof(rs->altaddr);
	if (getsockname(fd, (struct sockaddr *)&rs->altaddr, &len) < 0)
		goto fail;
	if ((rs->altaddr_ev = event_new(rs->srv->base, fd, EV_READ | EV_PERSIST, on_alt,
	    NULL)) == NULL || event_add(rs->altaddr_ev, NULL) < 0) {
		if (rs->altaddr_ev)
			event_free(rs->altaddr_ev);
		rs->altaddr_ev = NULL;
		errno = ENOMEM;
		goto fail;
	}
	rs->altaddr_fd = fd;
	ntm_sa_str((struct sockaddr *)&rs->altaddr, rs->altaddr_name, sizeof(rs->altaddr_name));
	log_info("probes: the other address is udp %s (the filtering test)", rs->altaddr_name);
	return 0;
fail:
	snprintf(err, errlen, "probe_alt_addr %s: %s", v, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int
rs_udp_open(struct rs *rs, char *err, size_t errlen)
{
	const struct srv_conf *c = &rs->srv->conf;

	cur_rs = rs;
	rs->altaddr_fd = -1;
	rs->altaddr_name[0] = 0;
	if (c->probe_rate > 0) {
		uint8_t key[16];

		randombytes_buf(key, sizeof(key));
		rs->probe = ntm_probe_srv_new((double)c->probe_rate,
		    (double)(NTM_PROBE_BURST_S * c->probe_rate), NTM_PROBE_TOTAL_RATE, key);
		if (rs->probe == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	/* udp_listen on IPv6 is dual-stack unless udp_listen6 takes IPv6. */
	if (c->udp_listen && open_one(rs, c->udp_listen, c->udp_listen6 != NULL, err,
	    errlen) < 0)
		return -1;
	if (c->udp_listen6 && open_one(rs, c->udp_listen6, 1, err, errlen) < 0)
		return -1;
	return open_altaddr(rs, err, errlen);
}

void
rs_udp_close(struct rs *rs)
{
	for (int i = 0; i < rs->nsocks; i++) {
		if (rs->socks[i].ev)
			event_free(rs->socks[i].ev);
		close(rs->socks[i].fd);
		if (rs->socks[i].alt_ev)
			event_free(rs->socks[i].alt_ev);
		if (rs->socks[i].alt_fd >= 0)
			close(rs->socks[i].alt_fd);
		rs->socks[i].alt_ev = NULL;
		rs->socks[i].alt_fd = -1;
	}
	rs->nsocks = 0;
	if (rs->altaddr_ev)
		event_free(rs->altaddr_ev);
	if (rs->altaddr_fd >= 0)
		close(rs->altaddr_fd);
	rs->altaddr_ev = NULL;
	rs->altaddr_fd = -1;
	ntm_probe_srv_free(rs->probe);
	rs->probe = NULL;
}
