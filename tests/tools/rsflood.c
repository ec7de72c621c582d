/*
 * rsflood - test tool: the attacks on a Relay Server's binds that the
 * netns suite measures (docs/protocol.md §4.4).
 *
 *   rsflood forge --to IP:PORT --cert DC-CERT --rs-name NAME
 *           [--src A.B.C.D/LEN] [--rate PPS] [--count N] [--seconds S]
 *     RELAY_BINDs whose ticket carries a real DC certificate (so the RS
 *     verifies it and then the ticket's signature, the costly part) but is
 *     signed by a random key. With --src (root: a raw socket) each datagram
 *     comes from a random address of that IPv4 prefix and a random port,
 *     (the tickets are version 2, with a random account),
 *     as a flood with forged sources would; without, from one UDP socket.
 *     Sends at most --rate a second (0: as fast as it can), stops after
 *     --count datagrams (default 1000000), --seconds (default 10) or at
 *     SIGTERM / SIGINT, and prints "sent N datagrams in T s: R/s".
 *
 *   rsflood sessions --to IP:PORT --key DC-KEY --cert DC-CERT
 *           --rs-key B64 --rs-name NAME --n N [--wait-ms MS] [--tries T]
 *           [--tid HEX [--side 0|1]] [--account USER]
 *     One client (one UDP socket) binding N tunnels with N valid tickets
 *     made with the DC's own key, as the agent does: a bind again after
 *     --wait-ms (default 1000) without an answer, at once with the cookie
 *     of a RELAY_COOKIE, at most --tries (5) binds a tunnel; prints
 *     "acked A of N, cookies C". With --tid, every ticket names that
 *     tunnel (one already relayed: a DC taking over another's session)
 *     and the binds are for --side (default 0). With --account, the
 *     tickets are version 2 and name that account as the DC names it
 *     (ntm_ticket_account with the DC's key); without, version 1, as DCs
 *     before version 2 made them.
 *
 *   rsflood relay --to IP:PORT --key DC-KEY --cert DC-CERT --rs-key B64
 *           --rs-name NAME --n N [--seconds S] [--size BYTES] [--tries T]
 *     The bench of bench/scale.sh: N tunnels with N valid tickets, both
 *     sides bound: side 0 of each tunnel from a socket of its own (on
 *     127.3.0.0/16), side 1 from one socket for 16 tunnels (on
 *     127.4.0.0/16), as an agent's one socket carries all its tunnels; 32
 *     sides a host address, under the RS's client_sessions; then for --seconds
 *     (default 5) DATA datagrams of --size bytes (default 1000; the RS
 *     never opens them) from side 0 to side 1 of each tunnel in turn,
 *     through the RS, then the same from the same sockets straight to
 *     side 1 (raw UDP, no RS). Prints "bound B of N; relay: sent S
 *     received R in T s: P/s, M Mbit/s; raw: ...; relay/raw ratio X".
 *
 * Exit 0 when it ran (what it measured is in its output), 2 on bad usage,
 * 1 when something could not be set up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ntm.h"
#include "relay.h"

#define BATCH	64

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
load_cert(const char *path, struct ntm_cert *c)
{
	char *txt = NULL;
	size_t len;
	int e;

	if (ntm_file_read(path, 8192, &txt, &len) < 0)
		return -1;
	txt[strcspn(txt, "\r\n")] = '\0';
	e = ntm_cert_from_b64(c, txt);
	free(txt);
	return e;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	stop = 1;
}

static uint64_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

struct opts {
	const char	*to, *cert, *key, *rs_name, *rs_key, *src;
	long		 rate, count, seconds, n, wait_ms, side, tries, size;
	const char	*account;
	uint8_t		 tid[NTM_TUNNEL_ID_LEN];
	int		 has_tid;
};

static int
forge(const struct opts *o)
{
	struct ntm_cert cert;
	struct sockaddr_storage to;
	socklen_t tolen;
	uint8_t tid[NTM_TUNNEL_ID_LEN], rkey[NTM_KEY_LEN], rs_pk[NTM_SIGN_PK], rs_sk[NTM_SIGN_SK];
	uint8_t pk2[NTM_SIGN_PK], sk2[NTM_SIGN_SK], ticket[NTM_TICKET_MAX];
	uint8_t acct[NTM_TICKET_ACCOUNT_LEN];
	static uint8_t pkt[BATCH][sizeof(struct iphdr) + sizeof(struct udphdr) + NTM_UDP_MAX];
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	uint32_t net = 0, mask = 0;
	int fd, tn, bn, raw = o->src != NULL, hdr;
	long sent = 0;
	double t0, el;

	if (ntm_sa_parse(&to, &tolen, o->to) < 0 || to.ss_family != AF_INET) {
		fprintf(stderr, "rsflood: --to '%s' is not ipv4:port\n", o->to);
		return 2;
	}
	if (load_cert(o->cert, &cert) < 0) {
		fprintf(stderr, "rsflood: cannot read the certificate %s\n", o->cert);
		return 1;
	}
	if (raw) {
		char a[32];
		int len;
		struct in_addr in;

		if (sscanf(o->src, "%31[0-9.]/%d", a, &len) != 2 || len < 8 || len > 32 ||
		    inet_pton(AF_INET, a, &in) != 1) {
			fprintf(stderr, "rsflood: --src '%s' is not A.B.C.D/LEN (8-32)\n", o->src);
			return 2;
		}
		mask = len == 32 ? 0xffffffffu : ~(0xffffffffu >> len);
		net = ntohl(in.s_addr) & mask;
	}
	/* The ticket: the DC's certificate, sealed to a random key, signed by
	 * another: the RS runs both signature checks before refusing it. */
	ntm_random(tid, sizeof(tid));
	ntm_random(rkey, sizeof(rkey));
	ntm_random(acct, sizeof(acct));
	if (ntm_sign_keypair(rs_pk, rs_sk) < 0 || ntm_sign_keypair(pk2, sk2) < 0 ||
	    (tn = ntm_ticket_make(ticket, sizeof(ticket), tid, time(NULL) + 3600, o->rs_name,
	    rs_pk, rkey, acct, &cert, sk2)) < 0) {
		fprintf(stderr, "rsflood: cannot make a ticket\n");
		return 1;
	}
	hdr = raw ? (int)(sizeof(struct iphdr) + sizeof(struct udphdr)) : 0;
	for (int i = 0; i < BATCH; i++) {
		if ((bn = ntm_relay_bind_make(pkt[i] + hdr, NTM_UDP_MAX, i & 1, 1 + (uint64_t)i,
		    ticket, (size_t)tn, rkey)) < 0)
			return 1;
		if (raw) {
			struct iphdr *ip = (struct iphdr *)pkt[i];
			struct udphdr *u = (struct udphdr *)(pkt[i] + sizeof(*ip));

			memset(ip, 0, sizeof(*ip));
			ip->version = 4;
			ip->ihl = 5;
			ip->ttl = 64;
			ip->protocol = IPPROTO_UDP;
			ip->daddr = ((struct sockaddr_in *)&to)->sin_addr.s_addr;
			ip->tot_len = htons((uint16_t)(hdr + bn));
			u->dest = ((struct sockaddr_in *)&to)->sin_port;
			u->len = htons((uint16_t)(sizeof(*u) + (size_t)bn));
			u->check = 0;		/* none, as IPv4 allows */
		}
		iov[i].iov_base = pkt[i];
		iov[i].iov_len = (size_t)(hdr + bn);
		memset(&mm[i], 0, sizeof(mm[i]));
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_name = &to;
		mm[i].msg_hdr.msg_namelen = tolen;
	}
	fd = raw ? socket(AF_INET, SOCK_RAW, IPPROTO_RAW) : socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		fprintf(stderr, "rsflood: socket: %s\n", strerror(errno));
		return 1;
	}
	rng ^= (uint64_t)getpid() << 20 ^ (uint64_t)time(NULL);
	t0 = now_s();
	while (!stop && sent < o->count && (el = now_s() - t0) < (double)o->seconds) {
		int k = BATCH, r;

		if (o->rate > 0) {
			long due = (long)(el * (double)o->rate) - sent;

			if (due <= 0) {
				struct timespec ms = { 0, 500000 };

				nanosleep(&ms, NULL);
				continue;
			}
			if (due < k)
				k = (int)due;
		}
		if (o->count - sent < k)
			k = (int)(o->count - sent);
		if (raw)
			for (int i = 0; i < k; i++) {
				struct iphdr *ip = (struct iphdr *)pkt[i];
				struct udphdr *u = (struct udphdr *)(pkt[i] + sizeof(*ip));
				uint64_t x = next_rand();

				ip->saddr = htonl(net | ((uint32_t)x & ~mask));
				u->source = htons((uint16_t)(1024 + (x >> 32) % 60000));
			}
		if ((r = sendmmsg(fd, mm, (unsigned)k, 0)) < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)
				continue;
			fprintf(stderr, "rsflood: send: %s\n", strerror(errno));
			break;
		}
		sent += r;
	}
	el = now_s() - t0;
	close(fd);
	printf("sent %ld datagrams in %.1f s: %.0f/s\n", sent, el, el > 0 ? (double)sent / el : 0);
	return 0;
}

/* Binds one new tunnel as the agent does: again after wait_ms without an
 * answer, at once with the cookie of a RELAY_COOKIE; at most 5 binds.
 * 1 ACK, 0 none. */
static int
one_session(int fd, const struct opts *o, const struct ntm_cert *cert,
    const uint8_t dc_sk[NTM_SIGN_SK], const uint8_t rs_pk[NTM_SIGN_PK], long *cookies)
{
	uint8_t tid[NTM_TUNNEL_ID_LEN], rkey[NTM_KEY_LEN], ticket[NTM_TICKET_MAX];
	uint8_t b[NTM_UDP_MAX], in[NTM_UDP_MAX], mac[NTM_MAC_LEN], ck[NTM_RELAY_COOKIE];
	uint8_t acct[NTM_TICKET_ACCOUNT_LEN];
	const uint8_t *cookie = NULL;
	int tn, bn, tries;
	uint64_t ctr = 1;

	if (o->has_tid)
		memcpy(tid, o->tid, sizeof(tid));
	else
		ntm_random(tid, sizeof(tid));
	ntm_random(rkey, sizeof(rkey));
	if (o->account && ntm_ticket_account(acct, o->account, dc_sk) < 0)
		return -1;
	if ((tn = ntm_ticket_make(ticket, sizeof(ticket), tid, time(NULL) + 3600, o->rs_name,
	    rs_pk, rkey, o->account ? acct : NULL, cert, dc_sk)) < 0)
		return -1;
	for (tries = 0; tries < o->tries; tries++) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		double until;

		/* a counter above the agents' (their wall clock in ms) */
		if ((bn = ntm_relay_bind_make_cookie(b, sizeof(b), (int)o->side,
		    (uint64_t)time(NULL) * 1000 + 10000000 + ctr++, ticket, (size_t)tn, rkey,
		    cookie)) < 0)
			return -1;
		memcpy(mac, b + bn - NTM_MAC_LEN - (cookie ? NTM_MAC_LEN : 0), sizeof(mac));
		if (send(fd, b, (size_t)bn, 0) < 0)
			return -1;
		until = now_s() + (double)o->wait_ms / 1000;
		for (;;) {
			double left = until - now_s();
			ssize_t n;

			if (left <= 0 || poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
				break;		/* bind again */
			if ((n = recv(fd, in, sizeof(in), 0)) < 0)
				continue;
			if (ntm_relay_ack_open(in, (size_t)n, rkey, NULL, NULL, NULL) == 0)
				return 1;
			if (ntm_relay_cookie_open(in, (size_t)n, tid, mac, ck) == 0) {
				(*cookies)++;
				cookie = ck;
				break;		/* bind again, with it */
			}
		}
	}
	return 0;
}

static int
sessions(const struct opts *o)
{
	struct ntm_cert cert;
	struct sockaddr_storage to;
	socklen_t tolen;
	uint8_t dc_sk[NTM_SIGN_SK], rs_pk[NTM_SIGN_PK];
	long acked = 0, cookies = 0;
	int fd, r;

	if (ntm_sa_parse(&to, &tolen, o->to) < 0) {
		fprintf(stderr, "rsflood: --to '%s' is not ip:port\n", o->to);
		return 2;
	}
	if (!o->key || !o->rs_key || ntm_b64_decode_exact(rs_pk, sizeof(rs_pk), o->rs_key) < 0) {
		fprintf(stderr, "rsflood: sessions needs --key and --rs-key (base64url)\n");
		return 2;
	}
	if (load_cert(o->cert, &cert) < 0 || ntm_key_load(o->key, dc_sk, sizeof(dc_sk)) < 0) {
		fprintf(stderr, "rsflood: cannot read the DC's key or certificate\n");
		return 1;
	}
	if ((fd = socket(to.ss_family, SOCK_DGRAM, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&to, tolen) < 0) {
		fprintf(stderr, "rsflood: socket: %s\n", strerror(errno));
		return 1;
	}
	for (long i = 0; i < o->n; i++) {
		if ((r = one_session(fd, o, &cert, dc_sk, rs_pk, &cookies)) < 0) {
			fprintf(stderr, "rsflood: cannot make or send a bind\n");
			break;
		}
		acked += r;
	}
	ntm_wipe(dc_sk, sizeof(dc_sk));
	close(fd);
	printf("acked %ld of %ld, cookies %ld\n", acked, o->n, cookies);
	return 0;
}

/* ---- relay: forwarded packets against raw UDP ---------------------------- */

#define SIDES_PER_ADDR	32
#define SHARE1		16	/* tunnels whose side 1 shares a socket */

static struct sockaddr_storage relay_to;	/* the RS */

struct rtun {
	int		 fd[2];
	uint8_t		 tid[NTM_TUNNEL_ID_LEN], rkey[NTM_KEY_LEN];
	uint8_t		 ticket[NTM_TICKET_MAX];
	int		 tlen;
	int		 acked[2], tries[2];
	uint8_t		 mac[2][NTM_MAC_LEN];
	struct sockaddr_in addr1;	/* side 1's own address */
};

static int
relay_bind(struct rtun *t, int side, uint64_t ctr, const uint8_t *cookie)
{
	uint8_t b[NTM_UDP_MAX];
	int bn;

	if ((bn = ntm_relay_bind_make_cookie(b, sizeof(b), side, ctr, t->ticket, (size_t)t->tlen,
	    t->rkey, cookie)) < 0)
		return -1;
	memcpy(t->mac[side], b + bn - NTM_MAC_LEN - (cookie ? NTM_MAC_LEN : 0), NTM_MAC_LEN);
	t->tries[side]++;
	return sendto(t->fd[side], b, (size_t)bn, 0, (struct sockaddr *)&relay_to,
	    sizeof(struct sockaddr_in)) < 0 ? -1 : 0;
}

/* A datagram to side `side` of tunnel t: an ACK or a cookie for its bind
 * (1), else 0. */
static int
relay_answer(struct rtun *t, int side, const uint8_t *in, size_t n, uint64_t *ctr)
{
	uint8_t ck[NTM_RELAY_COOKIE];

	if (ntm_relay_ack_open(in, n, t->rkey, NULL, NULL, NULL) == 0) {
		t->acked[side] = 1;
		return 1;
	}
	if (ntm_relay_cookie_open(in, n, t->tid, t->mac[side], ck) == 0) {
		(void)relay_bind(t, side, (*ctr)++, ck);
		return 1;
	}
	return 0;
}

/* Drains every readable socket: datagrams counted in *got (data) and binds
 * answered (ACKs, cookies) handled. A side 0 socket is one tunnel's; a
 * side 1 socket is shared by SHARE1 tunnels, as an agent shares its one
 * socket (the RS sends to the address the side bound from). */
static void
relay_drain(int ep, struct rtun *tt, long n, int wait_ms, long *got, uint64_t *ctr)
{
	struct epoll_event ev[256];
	uint8_t in[NTM_UDP_MAX];
	double until = now_s() + (double)wait_ms / 1000;
	int k;

	/* What is readable now, then whatever comes until wait_ms is over. */
	while ((k = epoll_wait(ep, ev, 256, (int)((until - now_s()) * 1000 > 0 ?
	    (until - now_s()) * 1000 : 0))) > 0) {
		for (int i = 0; i < k; i++) {
			long idx = (long)(ev[i].data.u64 >> 1);
			int side = (int)(ev[i].data.u64 & 1);
			int fd = side ? tt[idx * SHARE1].fd[1] : tt[idx].fd[0];
			ssize_t r;

			while ((r = recv(fd, in, sizeof(in), MSG_DONTWAIT)) > 0) {
				int done = 0;

				if (side == 0)
					done = relay_answer(&tt[idx], 0, in, (size_t)r, ctr);
				else
					for (long j = idx * SHARE1; !done && j < n &&
					    j < (idx + 1) * SHARE1; j++)
						done = relay_answer(&tt[j], 1, in, (size_t)r, ctr);
				if (!done)
					(*got)++;
			}
		}
	}
}

/* Sends DATA from side 0 of each tunnel in turn (to the RS, or to side 1
 * straight), reading what arrives; the count received a second. */
static double
relay_run(int ep, struct rtun *tt, long n, const struct sockaddr_storage *rs, int raw,
    long size, long secs, long *sent_out, long *got_out, double *el_out)
{
	uint8_t pkt[NTM_UDP_MAX];
	long sent = 0, got = 0, j = 0;
	uint64_t ctr = 0, dummy = 0;
	double t0 = now_s(), el;

	memset(pkt, 0xab, sizeof(pkt));
	ntm_msg_header(pkt, NTM_MSG_DATA);
	while (!stop && (el = now_s() - t0) < (double)secs) {
		for (int b = 0; b < BATCH; b++, j = (j + 1) % n) {
			struct rtun *t = &tt[j];
			const struct sockaddr *to = raw ? (const struct sockaddr *)&t->addr1 :
			    (const struct sockaddr *)rs;

			if (!t->acked[0] || !t->acked[1])
				continue;
			memcpy(pkt + NTM_HDR_LEN, &j, 4);		/* receiver index */
			ctr++;
			memcpy(pkt + NTM_HDR_LEN + 4, &ctr, 8);
			if (sendto(t->fd[0], pkt, (size_t)size, 0, to, raw ?
			    sizeof(t->addr1) : sizeof(struct sockaddr_in)) >= 0)
				sent++;
		}
		relay_drain(ep, tt, n, 0, &got, &dummy);
	}
	el = now_s() - t0;
	/* What is still on its way. */
	relay_drain(ep, tt, n, 200, &got, &dummy);
	*sent_out = sent;
	*got_out = got;
	*el_out = el;
	return el > 0 ? (double)got / el : 0;
}

static int
relay(const struct opts *o)
{
	struct ntm_cert cert;
	struct sockaddr_storage to;
	socklen_t tolen;
	uint8_t dc_sk[NTM_SIGN_SK], rs_pk[NTM_SIGN_PK];
	struct rtun *tt;
	struct rlimit rl;
	rlim_t nfd;
	long bound = 0, junk = 0, s_rel, g_rel, s_raw, g_raw;
	uint64_t ctr = (uint64_t)time(NULL) * 1000 + 10000000;
	double pr, pw, el_rel, el_raw, t0;
	int ep;

	if (ntm_sa_parse(&to, &tolen, o->to) < 0 || to.ss_family != AF_INET) {
		fprintf(stderr, "rsflood: --to '%s' is not ipv4:port\n", o->to);
		return 2;
	}
	if (!o->key || !o->rs_key || ntm_b64_decode_exact(rs_pk, sizeof(rs_pk), o->rs_key) < 0 ||
	    o->n < 1 || o->size < NTM_DATA_MIN_LEN || o->size > NTM_DATA_MAX_LEN) {
		fprintf(stderr, "rsflood: relay needs --key, --rs-key, --n >= 1 and --size "
		    "%d..%d\n", NTM_DATA_MIN_LEN, NTM_DATA_MAX_LEN);
		return 2;
	}
	if (load_cert(o->cert, &cert) < 0 || ntm_key_load(o->key, dc_sk, sizeof(dc_sk)) < 0) {
		fprintf(stderr, "rsflood: cannot read the DC's key or certificate\n");
		return 1;
	}
	/* A socket a tunnel, and one per SHARE1 tunnels for their sides 1. */
	nfd = o->n + o->n / SHARE1 + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nfd) {
		rl.rlim_cur = nfd;
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			fprintf(stderr, "rsflood: cannot open %ld sockets: %s\n", (long)nfd,
			    strerror(errno));
			return 1;
		}
	}
	if ((tt = calloc((size_t)o->n, sizeof(*tt))) == NULL || (ep = epoll_create1(0)) < 0)
		return 1;
	relay_to = to;
	for (long i = 0; i < o->n; i++) {
		struct rtun *t = &tt[i];

		ntm_random(t->tid, sizeof(t->tid));
		ntm_random(t->rkey, sizeof(t->rkey));
		if ((t->tlen = ntm_ticket_make(t->ticket, sizeof(t->ticket), t->tid,
		    time(NULL) + 3600, o->rs_name, rs_pk, t->rkey, NULL, &cert, dc_sk)) < 0) {
			fprintf(stderr, "rsflood: cannot make a ticket\n");
			return 1;
		}
		for (int side = 0; side < 2; side++) {
			struct sockaddr_in a;
			struct epoll_event ev;
			socklen_t len = sizeof(a);
			long k = side ? o->n + i / SHARE1 : i;	/* socket number */
			int buf = 1 << 20;

			if (side == 1 && i % SHARE1 != 0) {
				t->fd[1] = tt[i - i % SHARE1].fd[1];
				t->addr1 = tt[i - i % SHARE1].addr1;
				continue;
			}
			memset(&a, 0, sizeof(a));
			a.sin_family = AF_INET;
			/* Sides on one host address stay within client_sessions. */
			if (side == 0)
				a.sin_addr.s_addr = htonl(0x7f030000u + 1 + (uint32_t)(k /
				    SIDES_PER_ADDR));
			else
				a.sin_addr.s_addr = htonl(0x7f040000u + 1 + (uint32_t)((k - o->n) /
				    (SIDES_PER_ADDR / SHARE1)));
			if ((t->fd[side] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)) < 0 ||
			    bind(t->fd[side], (struct sockaddr *)&a, sizeof(a)) < 0) {
				fprintf(stderr, "rsflood: socket %ld: %s\n", k, strerror(errno));
				return 1;
			}
			(void)setsockopt(t->fd[side], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
			if (side == 1 && getsockname(t->fd[1], (struct sockaddr *)&t->addr1, &len) < 0)
				return 1;
			ev.events = EPOLLIN;
			ev.data.u64 = (uint64_t)(side ? i / SHARE1 : i) << 1 | (uint64_t)side;
			if (epoll_ctl(ep, EPOLL_CTL_ADD, t->fd[side], &ev) < 0)
				return 1;
		}
	}
	ntm_wipe(dc_sk, sizeof(dc_sk));
	/* Bind both sides of every tunnel: a window of binds out, again after
	 * --wait-ms without an ACK, --tries times at most. */
	t0 = now_s();
	for (int round = 0; round < o->tries && !stop; round++) {
		long out = 0;

		for (long i = 0; i < o->n && !stop; i++)
			for (int side = 0; side < 2; side++) {
				if (tt[i].acked[side])
					continue;
				(void)relay_bind(&tt[i], side, ctr++, NULL);
				if (++out % 256 == 0)
					relay_drain(ep, tt, o->n, 1, &junk, &ctr);
			}
		for (long w = 0; w < o->wait_ms; w += 100) {
			relay_drain(ep, tt, o->n, 100, &junk, &ctr);
			bound = 0;
			for (long i = 0; i < o->n; i++)
				bound += tt[i].acked[0] && tt[i].acked[1];
			if (bound == o->n)
				break;
		}
		if (bound == o->n)
			break;
	}
	printf("bound %ld of %ld tunnels (both sides) in %.1f s\n", bound, o->n, now_s() - t0);
	fflush(stdout);
	pr = relay_run(ep, tt, o->n, &to, 0, o->size, o->seconds, &s_rel, &g_rel, &el_rel);
	pw = relay_run(ep, tt, o->n, &to, 1, o->size, o->seconds, &s_raw, &g_raw, &el_raw);
	printf("relay: sent %ld received %ld in %.1f s: %.0f/s, %.0f Mbit/s\n", s_rel, g_rel,
	    el_rel, pr, pr * (double)o->size * 8 / 1e6);
	printf("raw: sent %ld received %ld in %.1f s: %.0f/s, %.0f Mbit/s\n", s_raw, g_raw,
	    el_raw, pw, pw * (double)o->size * 8 / 1e6);
	printf("result tunnels=%ld bound=%ld size=%ld relay_pps=%.0f relay_mbit=%.0f "
	    "raw_pps=%.0f raw_mbit=%.0f ratio=%.2f\n", o->n, bound, o->size, pr,
	    pr * (double)o->size * 8 / 1e6, pw, pw * (double)o->size * 8 / 1e6,
	    pw > 0 ? pr / pw : 0);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
		{ "to", required_argument, NULL, 't' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "rs-name", required_argument, NULL, 'N' },
		{ "rs-key", required_argument, NULL, 'K' },
		{ "src", required_argument, NULL, 's' },
		{ "rate", required_argument, NULL, 'r' },
		{ "count", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "n", required_argument, NULL, 'm' },
		{ "wait-ms", required_argument, NULL, 'w' },
		{ "tries", required_argument, NULL, 'y' },
		{ "tid", required_argument, NULL, 'T' },
		{ "side", required_argument, NULL, 'i' },
		{ "size", required_argument, NULL, 'z' },
		{ "account", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 }
	};
	struct opts o = { .rate = 0, .count = 1000000, .seconds = 10, .n = 10, .wait_ms = 1000,
	    .tries = 5, .size = 1000 };
	const char *mode;
	char *end;
	long *num;
	int c;

	if (argc < 2) {
		fprintf(stderr, "usage: rsflood forge|sessions --to IP:PORT ... (see the source)\n");
		return 2;
	}
	mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		num = NULL;
		switch (c) {
		case 't': o.to = optarg; break;
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'N': o.rs_name = optarg; break;
		case 'K': o.rs_key = optarg; break;
		case 's': o.src = optarg; break;
		case 'a': o.account = optarg; break;
		case 'r': num = &o.rate; break;
		case 'n': num = &o.count; break;
		case 'S': num = &o.seconds; break;
		case 'm': num = &o.n; break;
		case 'w': num = &o.wait_ms; break;
		case 'y': num = &o.tries; break;
		case 'i': num = &o.side; break;
		case 'z': num = &o.size; break;
		case 'T':
			if (ntm_hex_decode_exact(o.tid, sizeof(o.tid), optarg) < 0) {
				fprintf(stderr, "rsflood: --tid '%s' is not 32 hex digits\n", optarg);
				return 2;
			}
			o.has_tid = 1;
			break;
		default: return 2;
		}
		if (num) {
			errno = 0;
			*num = strtol(optarg, &end, 10);
			if (errno || *end || *num < 0 || *num > 100000000) {
				fprintf(stderr, "rsflood: '%s' is not a count from 0 to 100000000\n",
				    optarg);
				return 2;
			}
		}
	}
	if (!o.to || !o.cert || !o.rs_name || optind != argc || o.side > 1) {
		fprintf(stderr, "rsflood: --to, --cert and --rs-name are needed\n");
		return 2;
	}
	if (ntm_crypto_init() < 0)
		return 1;
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	if (strcmp(mode, "forge") == 0)
		return forge(&o);
	if (strcmp(mode, "sessions") == 0)
		return sessions(&o);
	if (strcmp(mode, "relay") == 0) {
		if (o.seconds == 10)
			o.seconds = 5;
		return relay(&o);
	}
	fprintf(stderr, "rsflood: unknown mode '%s' (forge, sessions, relay)\n", mode);
	return 2;
}
