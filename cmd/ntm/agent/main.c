/*
 * agent.c - the ntm agent: one UDP socket carries registration with the DC
 * (REG_REQ / REG_RESP / NUDGE / MOVED), relay binds and every tunnel; route
 * directions come from the DC over HTTPS; netlink address events, send
 * errors and unanswered registrations trigger the mobility path. The
 * control socket (control.c) lets the CLI ask for tunnels and bridge UDP.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common.h"
#include "ippkt.h"
#include "reg.h"
#include "relay.h"
#include "agentd.h"

const char *const agent_drop_names[DROP_N] = {
	"malformed", "unknown_index", "auth", "replay", "state"
};

static void tun_arm(struct tun *t);
static void reg_send(struct agent *a);

/* ---- UDP -------------------------------------------------------------------- */

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
#define GSO_SEGS	64		/* kernel's UDP_MAX_SEGMENTS is 64 or more */
#define GSO_BYTES	65000		/* one UDP datagram's worth */
static struct {
	int			depth, n;
	size_t			len[SEND_BATCH];
	struct sockaddr_storage	to[SEND_BATCH];
	socklen_t		tolen[SEND_BATCH];
	uint8_t			buf[SEND_BATCH][NTM_UDP_MAX];
} sb;

static void
send_failed(struct agent *a, const struct sockaddr *to)
{
	char b[64];
	int e = errno;

	a->send_errors++;
	log_debug("sendto %s: %s", ntm_sa_str(to, b, sizeof(b)), strerror(e));
	if (e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS)
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

		if (!a->gso_off)
			while (i + k < sb.n && k < GSO_SEGS && gso_same(i, i + k) &&
			    sb.len[i + k] <= sb.len[i] && total + sb.len[i + k] <= GSO_BYTES) {
				total += sb.len[i + k];
				if (sb.len[i + k++] < sb.len[i])
					break;	/* a short one ends the run */
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
			send_failed(a, (const struct sockaddr *)&sb.to[first[done]]);
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
		send_failed(a, (const struct sockaddr *)&ss);
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

/* ---- tunnels: table, output, timers ---------------------------------------- */

struct tun *
agent_tun_by_peer(struct agent *a, const char *peer)
{
	for (int i = 0; i < a->ntun; i++)
		if (strcmp(a->tuns[i]->peer, peer) == 0)
			return a->tuns[i];
	return NULL;
}

static struct tun *
tun_by_tid(struct agent *a, const uint8_t *tid)
{
	for (int i = 0; i < a->ntun; i++)
		if (memcmp(a->tuns[i]->tid, tid, NTM_TUNNEL_ID_LEN) == 0)
			return a->tuns[i];
	return NULL;
}

static struct tun *
tun_by_index(struct agent *a, uint32_t idx)
{
	if (idx == 0)
		return NULL;
	for (int i = 0; i < a->ntun; i++)
		if (ntm_tunnel_owns_index(a->tuns[i]->t, idx))
			return a->tuns[i];
	return NULL;
}

void
agent_tun_free(struct tun *t)
{
	struct agent *a = t->a;

	for (int i = 0; i < a->ntun; i++)
		if (a->tuns[i] == t) {
			a->tuns[i] = a->tuns[--a->ntun];
			break;
		}
	for (int i = 0; i < t->nq; i++)
		free(t->q[i]);
	if (t->timer)
		event_free(t->timer);
	if (agent_tun_by_peer(a, t->peer) == NULL)
		agent_tundev_route(a, t, 0);	/* unless a new tunnel took over */
	ntm_tunnel_free(t->t);
	ntm_wipe(t->rkey, sizeof(t->rkey));
	free(t);
}

static void
tun_output(struct tun *t, const struct ntm_tun_out *out)
{
	for (int i = 0; i < out->n; i++) {
		if (!t->has_ep)
			continue;
		if (out->buf[i][0] == NTM_MSG_HS_INIT || out->buf[i][0] == NTM_MSG_HS_RESP)
			t->hs_sent = agent_now_us();
		(void)agent_udp_send(t->a, out->buf[i], out->len[i], &t->ep);
	}
}

static void
tun_start_hs(struct tun *t)
{
	struct ntm_tun_out *out = &t->a->out;

	t->hs_started = 1;
	if (ntm_tunnel_start(t->t, agent_now_ms(), out) == 0)
		tun_output(t, out);
}

static void
relay_bind(struct tun *t)
{
	uint8_t b[NTM_RELAY_BIND_MAX];
	uint64_t ctr = agent_wall_us() / 1000;
	int n;

	if (ctr <= t->bind_ctr)
		ctr = t->bind_ctr + 1;
	t->bind_ctr = ctr;
	if ((n = ntm_relay_bind_make(b, sizeof(b), t->side, ctr, t->ticket, t->tlen,
	    t->rkey)) < 0) {
		log_warnx("tunnel %s: cannot make RELAY_BIND: %s", t->peer, ntm_strerror(n));
		t->bind_next = agent_now_ms() + 1000L * t->a->keepalive_s;
		return;
	}
	(void)agent_udp_send(t->a, b, (size_t)n, &t->ep);
	t->bind_next = agent_now_ms() + 1000;	/* until the ACK says otherwise */
}

/* An empty DATA: the peer moves its endpoint to where it came from. */
static void
tun_keepalive(struct tun *t)
{
	struct ntm_tun_out *out = &t->a->out;

	if (ntm_tunnel_send(t->t, NULL, 0, agent_now_ms(), out) == 0)
		tun_output(t, out);
}

static void
tun_flush(struct tun *t)
{
	struct ntm_tun_out *out = &t->a->out;
	int i;

	for (i = 0; i < t->nq; i++) {
		if (ntm_tunnel_send(t->t, t->q[i]->b, t->q[i]->len, agent_now_ms(), out) < 0)
			break;
		tun_output(t, out);
		free(t->q[i]);
	}
	memmove(t->q, t->q + i, (size_t)(t->nq - i) * sizeof(t->q[0]));
	t->nq -= i;
}

int
agent_tun_send(struct tun *t, const uint8_t *pkt, size_t len)
{
	struct ntm_tun_out *out = &t->a->out;
	struct qpkt *q;

	if (len > NTM_INNER_MTU)
		return -1;
	if (t->nq == 0 && ntm_tunnel_send(t->t, pkt, len, agent_now_ms(), out) == 0) {
		tun_output(t, out);
		tun_arm(t);
		return 0;
	}
	if (t->nq >= AGENT_QUEUE_MAX || (q = malloc(sizeof(*q))) == NULL)
		return -1;
	memcpy(q->b, pkt, len);
	q->len = len;
	t->q[t->nq++] = q;
	return 0;
}

static void
on_tun_timer(evutil_socket_t fd, short what, void *arg)
{
	struct tun *t = arg;
	struct ntm_tun_out *out = &t->a->out;
	int64_t now = agent_now_ms();

	if (ntm_tunnel_deadline(t->t) <= now && ntm_tunnel_tick(t->t, now, out) == 0)
		tun_output(t, out);
	if (t->kind == NTM_ROUTE_RELAY && now >= t->bind_next)
		relay_bind(t);
	if (t->initiator && !t->hs_started && now >= t->hs_gate)
		tun_start_hs(t);
	tun_arm(t);
}

static void
tun_arm(struct tun *t)
{
	int64_t now = agent_now_ms(), d = ntm_tunnel_deadline(t->t);
	struct timeval tv;

	if (t->kind == NTM_ROUTE_RELAY && t->bind_next < d)
		d = t->bind_next;
	if (t->initiator && !t->hs_started && t->hs_gate < d)
		d = t->hs_gate;
	if (d == INT64_MAX) {
		evtimer_del(t->timer);
		t->armed = 0;
		return;
	}
	/* Most packets move the deadline later: a wake-up already set for no
	 * later than it stays (on_tun_timer re-arms), and saves a system call
	 * per packet. */
	if (t->armed && t->armed <= d && evtimer_pending(t->timer, NULL))
		return;
	t->armed = d;
	d = d > now ? d - now : 0;
	tv.tv_sec = d / 1000;
	tv.tv_usec = (d % 1000) * 1000;
	evtimer_add(t->timer, &tv);
}

/* ---- route directions -------------------------------------------------------- */

static const char *
kind_name(int k)
{
	return k == NTM_ROUTE_DIRECT ? "direct" : k == NTM_ROUTE_LOCAL ? "local" :
	    k == NTM_ROUTE_RELAY ? "relay" : "?";
}

/* Creates the tunnel of a direction, or (same tunnel_id) applies a new route
 * to the existing one: same keys and indices, new endpoint / relay binding. */
struct tun *
agent_apply_direction(struct agent *a, json_t *d, char *err, size_t errlen)
{
	const char *tid = NULL, *peer = NULL, *v4 = NULL, *v6 = NULL, *route = NULL,
	    *reason = NULL, *role = NULL, *endpoint = NULL, *tk = NULL;
	const char *ticket = NULL, *rkey = NULL, *raddr = NULL;
	int64_t expires = 0, side = 0;
	json_t *relay = NULL;
	const struct ntm_jfield f[] = {
		{ "tunnel_id", NTM_J_STR, 1, &tid, 2 * NTM_TUNNEL_ID_LEN },
		{ "peer", NTM_J_STR, 1, &peer, NTM_NAME_MAX },
		{ "peer_vip4", NTM_J_STR, 1, &v4, 63 },
		{ "peer_vip6", NTM_J_STR, 1, &v6, 63 },
		{ "route", NTM_J_STR, 1, &route, 16 },
		{ "reason", NTM_J_STR, 1, &reason, 95 },
		{ "role", NTM_J_STR, 1, &role, 16 },
		{ "endpoint", NTM_J_STR, 1, &endpoint, 63 },
		{ "temporal_key", NTM_J_STR, 1, &tk, 64 },
		{ "expires", NTM_J_INT, 1, &expires, 0 },
		{ "relay", NTM_J_OBJ, 0, &relay, 0 },
	};
	const struct ntm_jfield rf[] = {
		{ "ticket", NTM_J_STR, 1, &ticket, NTM_B64_LEN(NTM_TICKET_MAX) },
		{ "relay_key", NTM_J_STR, 1, &rkey, 64 },
		{ "addr", NTM_J_STR, 1, &raddr, 63 },
		{ "side", NTM_J_INT, 1, &side, 0 },
	};
	struct ntm_tunnel_cfg cfg;
	struct ntm_jerr jerr;
	struct tun *t, nt;
	int kind, initiator, n, created = 0;

	memset(&nt, 0, sizeof(nt));
	memset(&cfg, 0, sizeof(cfg));
	if (ntm_json_unpack(d, f, sizeof(f) / sizeof(f[0]), &jerr) < 0 ||
	    (relay && ntm_json_unpack(relay, rf, sizeof(rf) / sizeof(rf[0]), &jerr) < 0)) {
		snprintf(err, errlen, "malformed direction: %s", jerr.message);
		return NULL;
	}
	kind = !strcmp(route, "direct") ? NTM_ROUTE_DIRECT : !strcmp(route, "local") ?
	    NTM_ROUTE_LOCAL : !strcmp(route, "relay") ? NTM_ROUTE_RELAY : 0;
	initiator = !strcmp(role, "initiator") ? 1 : !strcmp(role, "responder") ? 0 : -1;
	if (ntm_hex_decode_exact(nt.tid, NTM_TUNNEL_ID_LEN, tid) < 0 || kind == 0 ||
	    initiator < 0 || !ntm_valid_dnsname(peer) ||
	    ntm_b64_decode_exact(cfg.temporal_key, NTM_KEY_LEN, tk) < 0 ||
	    (kind == NTM_ROUTE_RELAY) != (relay != NULL)) {
		snprintf(err, errlen, "malformed direction (tunnel_id, route, role, peer, "
		    "temporal_key or relay)");
		goto fail;
	}
	nt.kind = kind;
	snprintf(nt.peer, sizeof(nt.peer), "%s", peer);
	snprintf(nt.vip4, sizeof(nt.vip4), "%s", v4);
	snprintf(nt.vip6, sizeof(nt.vip6), "%s", v6);
	nt.has4 = inet_pton(AF_INET, v4, nt.pv4) == 1;
	nt.has6 = inet_pton(AF_INET6, v6, nt.pv6) == 1;
	snprintf(nt.reason, sizeof(nt.reason), "%s", reason);
	nt.has_ep = ntm_sa_parse(&nt.ep, &nt.eplen, endpoint) == 0;
	if (kind == NTM_ROUTE_RELAY) {
		if ((n = ntm_b64_decode(nt.ticket, sizeof(nt.ticket), ticket)) <= 0 ||
		    ntm_b64_decode_exact(nt.rkey, NTM_KEY_LEN, rkey) < 0 ||
		    ntm_sa_parse(&nt.ep, &nt.eplen, raddr) < 0 || (side != 0 && side != 1)) {
			snprintf(err, errlen, "malformed relay part of the direction");
			goto fail;
		}
		nt.tlen = (size_t)n;
		nt.side = (int)side;
		nt.has_ep = 1;
		ntm_sa_unmap(&nt.ep, &nt.eplen);
	} else if (initiator && !nt.has_ep) {
		snprintf(err, errlen, "direction without a usable endpoint '%s'", endpoint);
		goto fail;
	}
	if (nt.has_ep)
		ntm_sa_unmap(&nt.ep, &nt.eplen);

	if ((t = tun_by_tid(a, nt.tid)) != NULL) {
		/* Recreated route: keep the tunnel core (keys, indices). */
		char b1[64], b2[64];

		if (initiator != t->initiator)
			log_warnx("tunnel %s: the new direction makes us %s; keeping %s",
			    t->peer, role, t->initiator ? "initiator" : "responder");
		log_info("tunnel %s: route %s -> %s (%s), endpoint %s -> %s", t->peer,
		    kind_name(t->kind), route, reason,
		    t->has_ep ? ntm_sa_str((struct sockaddr *)&t->ep, b1, sizeof(b1)) : "-",
		    nt.has_ep ? ntm_sa_str((struct sockaddr *)&nt.ep, b2, sizeof(b2)) : "-");
		t->kind = kind;
		snprintf(t->reason, sizeof(t->reason), "%s", nt.reason);
		if (nt.has_ep) {
			t->ep = nt.ep;
			t->eplen = nt.eplen;
			t->has_ep = 1;
		}
		t->recreating = 0;
		if (kind == NTM_ROUTE_RELAY) {
			memcpy(t->ticket, nt.ticket, nt.tlen);
			t->tlen = nt.tlen;
			memcpy(t->rkey, nt.rkey, sizeof(t->rkey));
			t->side = nt.side;
			t->acked = t->peer_bound = 0;
			t->ka_on_ack = 1;
			relay_bind(t);
		} else
			tun_keepalive(t);
		tun_arm(t);
		ntm_wipe(&nt, sizeof(nt));
		ntm_wipe(&cfg, sizeof(cfg));
		return t;
	}

	/* A new tunnel to a peer replaces any older one to it. */
	if ((t = agent_tun_by_peer(a, peer)) != NULL) {
		log_info("tunnel %s: replaced by a new tunnel", peer);
		agent_tun_free(t);
	}
	if (a->ntun >= AGENT_TUN_MAX) {
		snprintf(err, errlen, "too many tunnels (%d)", AGENT_TUN_MAX);
		goto fail;
	}
	memcpy(cfg.tunnel_id, nt.tid, NTM_TUNNEL_ID_LEN);
	cfg.initiator = initiator;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	*t = nt;
	t->a = a;
	t->initiator = initiator;
	t->created = agent_now_ms();
	t->expires = expires;
	ntm_hex_encode(t->tid_hex, sizeof(t->tid_hex), t->tid, NTM_TUNNEL_ID_LEN);
	if ((t->t = ntm_tunnel_new(&cfg, agent_now_ms())) == NULL ||
	    (t->timer = evtimer_new(a->base, on_tun_timer, t)) == NULL) {
		ntm_tunnel_free(t->t);
		free(t);
		snprintf(err, errlen, "cannot make the tunnel");
		goto fail;
	}
	a->tuns[a->ntun++] = t;
	created = 1;
	agent_tundev_route(a, t, 1);
	{
		char b[64];

		log_info("tunnel %s: %s route (%s), %s, endpoint %s", t->peer, route, reason,
		    role, t->has_ep ? ntm_sa_str((struct sockaddr *)&t->ep, b, sizeof(b)) : "-");
	}
	if (kind == NTM_ROUTE_RELAY) {
		relay_bind(t);
		t->hs_gate = agent_now_ms() + 2000;	/* or at once on peer_bound */
	} else if (initiator)
		tun_start_hs(t);
	tun_arm(t);
	ntm_wipe(&cfg, sizeof(cfg));
	ntm_wipe(&nt, sizeof(nt));
	(void)created;
	return t;
fail:
	ntm_wipe(&cfg, sizeof(cfg));
	ntm_wipe(&nt, sizeof(nt));
	return NULL;
}

static void udp_packet(struct agent *a, uint8_t *p, size_t n, struct sockaddr_storage *from,
    int refetch);

static void
on_directions(const struct ntm_http_result *res, void *arg)
{
	struct agent *a = arg;
	json_t *arr, *d;
	size_t i;
	char err[256];

	a->dir_inflight = 0;
	if (res->err || res->status != 200 ||
	    !json_is_array(arr = json_object_get(res->json, "directions"))) {
		char why[512];

		if (res->err == NTM_ERR_UNTRUSTED)
			(void)cli_http_error(why, sizeof(why), a->s.dc_url, res->err,
			    res->status, res->json, res->errmsg);
		else
			snprintf(why, sizeof(why), "%s", res->err ? res->errmsg :
			    res->json ? "unexpected answer" : "no JSON");
		log_warnx("GET /v1/directions: %s", why);
	} else {
		json_array_foreach(arr, i, d) {
			if (i >= AGENT_TUN_MAX)
				break;
			a->directions++;
			if (agent_apply_direction(a, d, err, sizeof(err)) == NULL)
				log_warnx("direction: %s", err);
		}
		agent_ctl_tunnels_changed(a);
	}
	if (a->has_stash) {
		a->has_stash = 0;
		udp_packet(a, a->stash, sizeof(a->stash), &a->stash_from, 0);
	}
	if (a->dir_again) {
		a->dir_again = 0;
		agent_fetch_directions(a);
	}
}

void
agent_fetch_directions(struct agent *a)
{
	char url[NTM_URL_MAX + 32];

	if (a->dir_inflight) {
		a->dir_again = 1;
		return;
	}
	snprintf(url, sizeof(url), "%s/v1/directions", a->s.dc_url);
	log_debug("GET %s", url);
	if (ntm_httpc_request(a->http, "GET", url, NULL, a->s.token, 10000,
	    on_directions, a) == 0)
		a->dir_inflight = 1;
}

/* POST /v1/tunnel {version, peer[, tunnel_id]}; the answer goes to the
 * control connection with that serial (0: none, a recreate). */
struct treq {
	struct agent	*a;
	uint64_t	 ctl;
	char		 peer[NTM_NAME_MAX + 1];
};

static void
on_tunnel_made(const struct ntm_http_result *res, void *arg)
{
	struct treq *r = arg;
	struct agent *a = r->a;
	char err[512];
	struct tun *t = NULL;

	if (res->err == 0 && res->status == 200 && res->json) {
		if ((t = agent_apply_direction(a, res->json, err, sizeof(err))) == NULL)
			log_warnx("POST /v1/tunnel %s: %s", r->peer, err);
		agent_ctl_tunnels_changed(a);
		if (t == NULL && r->ctl)
			agent_ctl_tunnel_failed(a, r->ctl, "tunnel_failed", err);
	} else if (res->err == NTM_ERR_UNTRUSTED) {
		/* Not a network failure: the session's CA does not vouch for
		 * the DC. The same words (and exit 15) as the CLI's own calls. */
		(void)cli_http_error(err, sizeof(err), a->s.dc_url, res->err, res->status,
		    res->json, res->errmsg);
		log_warnx("POST /v1/tunnel %s: %s", r->peer, err);
		if ((t = agent_tun_by_peer(a, r->peer)) != NULL)
			t->recreating = 0;
		if (r->ctl)
			agent_ctl_tunnel_failed(a, r->ctl, "untrusted_certificate", err);
		if (t == NULL)
			agent_dial_failed(a, r->peer, err);
	} else {
		const char *code = res->err ? "unreachable" :
		    json_string_value(json_object_get(res->json, "code"));
		const char *msg = json_string_value(json_object_get(res->json, "message"));

		snprintf(err, sizeof(err), "%s%s", res->err ? "DC unreachable: " : "",
		    res->err ? res->errmsg : msg ? msg : "the DC refused the tunnel");
		log_warnx("POST /v1/tunnel %s: %s", r->peer, err);
		if ((t = agent_tun_by_peer(a, r->peer)) != NULL)
			t->recreating = 0;
		if (r->ctl)
			agent_ctl_tunnel_failed(a, r->ctl, code ? code : "tunnel_failed", err);
		if (t == NULL)
			agent_dial_failed(a, r->peer, err);
	}
	free(r);
}

int
agent_request_tunnel(struct agent *a, const char *peer, const uint8_t *tid, uint64_t ctl)
{
	char url[NTM_URL_MAX + 32], hex[2 * NTM_TUNNEL_ID_LEN + 1];
	struct treq *r;
	json_t *body;
	int ret;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	r->a = a;
	r->ctl = ctl;
	snprintf(r->peer, sizeof(r->peer), "%s", peer);
	body = json_pack("{s:i, s:s}", "version", NTM_PROTOCOL_VERSION, "peer", peer);
	if (tid && ntm_hex_encode(hex, sizeof(hex), tid, NTM_TUNNEL_ID_LEN) > 0)
		json_object_set_new(body, "tunnel_id", json_string(hex));
	snprintf(url, sizeof(url), "%s/v1/tunnel", a->s.dc_url);
	log_debug("POST %s peer %s%s", url, peer, tid ? " (recreate)" : "");
	ret = ntm_httpc_request(a->http, "POST", url, body, a->s.token, 15000,
	    on_tunnel_made, r);
	json_decref(body);
	if (ret != 0) {
		free(r);
		return -1;
	}
	return 0;
}

/* ---- registration --------------------------------------------------------- */

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
	r.naddrs = a->nlocals;
	memcpy(r.addrs, a->locals, sizeof(r.addrs));
	/* Counters follow the wall clock in microseconds, so they stay above
	 * whatever this session sent before (an earlier agent, `ntm register`)
	 * and the DC's replay window never mistakes us for a replay. */
	if (a->chan.send_ctr < agent_wall_us())
		a->chan.send_ctr = agent_wall_us();
	if ((n = ntm_reg_req_seal(&a->chan, &r, b, sizeof(b), NULL)) < 0) {
		log_warnx("cannot seal REG_REQ: %s", ntm_strerror(n));
		return;
	}
	a->reg_sent++;
	(void)agent_udp_send(a, b, (size_t)n, &a->dc);
	a->awaiting = 1;
	evtimer_add(a->reg_wait, &tv);
}

/* At stop: tells the DC this device goes offline (REG_REQ with
 * NTM_REG_F_OFFLINE, protocol.md §4.2), so a peer asking for a tunnel gets
 * peer_offline at once instead of a route to nobody. Sent twice: a lost
 * one costs the peers 3 keepalives of waiting. */
static void
reg_say_offline(struct agent *a)
{
	struct ntm_reg_req r;
	uint8_t b[NTM_REG_REQ_LEN];
	int n;

	memset(&r, 0, sizeof(r));
	r.local_port = a->port;
	r.flags = NTM_REG_F_OFFLINE;
	for (int i = 0; i < 2; i++) {
		if (a->chan.send_ctr < agent_wall_us())
			a->chan.send_ctr = agent_wall_us();
		if ((n = ntm_reg_req_seal(&a->chan, &r, b, sizeof(b), NULL)) < 0)
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

	if (n != a->nlocals || memcmp(l, a->locals, sizeof(l[0]) * (size_t)n) != 0)
		agent_net_changed(a, "local addresses changed");
	else
		reg_send(a);
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
	if (a->missed < 3)
		reg_send(a);
	else if (a->missed == 3) {
		agent_net_changed(a, "3 registrations unanswered");
		a->missed = 3;
	}
}

static int
among_locals(const struct agent *a, const struct sockaddr_storage *ss)
{
	for (int i = 0; i < a->nlocals; i++)
		if (ntm_sa_equal((const struct sockaddr *)&a->locals[i],
		    (const struct sockaddr *)ss))
			return 1;
	return 0;
}

static void
on_reg_resp(struct agent *a, const struct ntm_reg_resp *r)
{
	int natted = !among_locals(a, &r->reflexive);
	int family = r->reflexive.ss_family;
	int was = a->registered;

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
		for (int i = 0; i < a->ntun; i++)
			if (!a->tuns[i]->recreating &&
			    agent_request_tunnel(a, a->tuns[i]->peer, a->tuns[i]->tid, 0) == 0)
				a->tuns[i]->recreating = 1;
	} else if (was && !ntm_sa_equal((const struct sockaddr *)&r->reflexive,
	    (const struct sockaddr *)&a->resp.reflexive)) {
		char b[64];

		log_info("registration: reflexive address now %s",
		    ntm_sa_str((const struct sockaddr *)&r->reflexive, b, sizeof(b)));
		for (int i = 0; i < a->ntun; i++) {
			struct tun *t = a->tuns[i];

			/* Where we initiated, our authenticated keepalive is all the
			 * peer needs to follow us. Where the peer initiates (it sits
			 * behind a NAT that filters by remote address), it cannot hear
			 * us from the new address: the DCs must tell it where we are. */
			tun_keepalive(t);
			if (t->kind != NTM_ROUTE_RELAY && !t->initiator && !t->recreating) {
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
		if (a->ready_fd >= 0) {
			(void)!write(a->ready_fd, line, strlen(line));
			close(a->ready_fd);
			a->ready_fd = -1;
		}
	}
}

/* ---- address changes ------------------------------------------------------ */

void
agent_net_changed(struct agent *a, const char *why)
{
	log_info("%s: registering again, keepalive on every tunnel", why);
	a->nlocals = agent_local_addrs(a->locals, NTM_REG_ADDRS, a->port, &a->dc);
	a->missed = 0;
	a->net_changes++;
	reg_send(a);
	for (int i = 0; i < a->ntun; i++) {
		struct tun *t = a->tuns[i];

		if (t->kind == NTM_ROUTE_RELAY) {
			t->ka_on_ack = 1;
			relay_bind(t);
		} else
			tun_keepalive(t);
		tun_arm(t);
	}
}

static void
on_net_timer(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;

	agent_net_changed(a, a->net_why);
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

/* ---- incoming datagrams ------------------------------------------------------ */

static void
drop(struct agent *a, int reason)
{
	a->drops[reason]++;
}

static int
drop_reason(int err)
{
	switch (err) {
	case NTM_ERR_CRYPTO:	return DROP_AUTH;
	case NTM_ERR_REPLAY:	return DROP_REPLAY;
	case NTM_ERR_STATE:	return DROP_STATE;
	default:		return DROP_MALFORMED;
	}
}

static void
inner_packet(struct tun *t, const uint8_t *p, size_t len)
{
	struct agent *a = t->a;
	struct ntm_ip ip;
	uint8_t out[NTM_INNER_MTU];
	int n;

	if (ntm_ip_parse(&ip, p, len) != 0) {
		a->inner_drops++;
		return;
	}
	/* The peer may only send from its own vIPs, to ours. */
	if (ip.version == 4 ? !(t->has4 && memcmp(ip.src, t->pv4, 4) == 0 &&
	    a->has_vip4 && memcmp(ip.dst, a->vip4, 4) == 0) :
	    !(t->has6 && memcmp(ip.src, t->pv6, 16) == 0 &&
	    a->has_vip6 && memcmp(ip.dst, a->vip6, 16) == 0)) {
		a->inner_drops++;
		return;
	}
	if (a->tun_mode) {
		/* The kernel has the vIPs: all but the agent's own go there. */
		if ((ip.is_echo && ip.icmp_type != NTM_ICMP_ECHO_REQUEST &&
		    ip.icmp_type != NTM_ICMP6_ECHO_REQUEST && agent_ctl_echo_reply(a, t, &ip) == 0) ||
		    (ip.proto == NTM_PROTO_UDP && agent_ctl_udp(a, t, &ip) == 0))
			return;
		agent_tundev_input(a, p, len);
		return;
	}
	if (ip.is_echo && (ip.icmp_type == NTM_ICMP_ECHO_REQUEST ||
	    ip.icmp_type == NTM_ICMP6_ECHO_REQUEST)) {
		if ((n = ntm_ip_echo_reply(out, sizeof(out), &ip)) > 0 &&
		    agent_tun_send(t, out, (size_t)n) == 0)
			a->echo_answered++;
		else
			a->inner_drops++;
		return;
	}
	if (ip.is_echo) {
		if (agent_ctl_echo_reply(a, t, &ip) < 0)
			a->inner_drops++;
		return;
	}
	if (ip.proto == NTM_PROTO_UDP) {
		if (agent_ctl_udp(a, t, &ip) < 0 && agent_socks_udp(a, t, &ip) < 0)
			a->inner_drops++;
		return;
	}
	if (ip.proto == NTM_PROTO_TCP) {
		agent_ip_input(a, p, len);	/* the user-space stack */
		return;
	}
	a->inner_drops++;
}

/* MOVED (docs/protocol.md §4.6): the peer of a direct tunnel registered from
 * a new address. Send there at once; the keepalive tells the peer where we
 * are in turn, and opens our NAT towards it. */
static void
on_moved(struct agent *a, const struct ntm_moved *m)
{
	struct sockaddr_storage ep = m->endpoint;
	socklen_t len = ep.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	struct tun *t;
	char b1[64], b2[64];

	a->moved++;
	ntm_sa_unmap(&ep, &len);
	if ((t = tun_by_tid(a, m->tunnel_id)) == NULL || t->kind == NTM_ROUTE_RELAY) {
		log_debug("MOVED for %s tunnel: ignored", t ? "a relayed" : "an unknown");
		return;
	}
	if (t->has_ep && ntm_sa_equal((struct sockaddr *)&t->ep, (struct sockaddr *)&ep))
		return;
	log_info("tunnel %s: the DC says the peer moved: endpoint %s -> %s", t->peer,
	    t->has_ep ? ntm_sa_str((struct sockaddr *)&t->ep, b1, sizeof(b1)) : "-",
	    ntm_sa_str((struct sockaddr *)&ep, b2, sizeof(b2)));
	t->ep = ep;
	t->eplen = len;
	t->has_ep = 1;
	t->endpoint_moves++;
	tun_keepalive(t);
	tun_arm(t);
}

static void
udp_packet(struct agent *a, uint8_t *p, size_t n, struct sockaddr_storage *from, int refetch)
{
	struct ntm_tun_event ev;
	struct ntm_tun_out *out = &a->out;
	struct tun *t = NULL;
	int type, r;

	if ((type = ntm_msg_validate(p, n)) < 0) {
		drop(a, DROP_MALFORMED);
		return;
	}
	switch (type) {
	case NTM_MSG_REG_RESP: {
		struct ntm_reg_resp resp;

		if ((r = ntm_reg_resp_open(&a->chan, p, n, &resp)) < 0)
			drop(a, drop_reason(r));
		else
			on_reg_resp(a, &resp);
		return;
	}
	case NTM_MSG_NUDGE: {
		struct ntm_nudge nu;

		if ((r = ntm_nudge_open(&a->chan, p, n, &nu)) < 0)
			drop(a, drop_reason(r));
		else {
			a->nudges++;
			/* Kind 2 (cache entries) is for `ntm fetch`: counted only. */
			if (nu.kind == NTM_NUDGE_DIRECTION)
				agent_fetch_directions(a);
		}
		return;
	}
	case NTM_MSG_MOVED: {
		struct ntm_moved m;

		if ((r = ntm_moved_open(&a->chan, p, n, &m)) < 0)
			drop(a, drop_reason(r));
		else
			on_moved(a, &m);
		return;
	}
	case NTM_MSG_RELAY_ACK:
		for (int i = 0; i < a->ntun; i++) {
			int side, pb;
			uint64_t ctr;

			t = a->tuns[i];
			if (t->kind != NTM_ROUTE_RELAY ||
			    ntm_relay_ack_open(p, n, t->rkey, &side, &pb, &ctr) != 0 ||
			    side != t->side)
				continue;
			if (!t->acked || pb != t->peer_bound)
				log_debug("tunnel %s: relay ACK, peer %sbound", t->peer,
				    pb ? "" : "not ");
			t->acked = 1;
			t->peer_bound = pb;
			t->bind_next = agent_now_ms() + 1000L * (pb ? a->keepalive_s : 1);
			if (t->initiator && !t->hs_started && pb)
				tun_start_hs(t);
			if (t->ka_on_ack && pb) {
				t->ka_on_ack = 0;
				tun_keepalive(t);
			}
			tun_arm(t);
			return;
		}
		drop(a, DROP_AUTH);
		return;
	case NTM_MSG_HS_INIT:
		if ((t = tun_by_tid(a, ntm_msg_tunnel_id(p, n))) == NULL) {
			drop(a, DROP_UNKNOWN);
			/* The direction may still be on its way: fetch, then retry once. */
			if (refetch && !a->has_stash &&
			    agent_now_ms() - a->stash_fetch_at > 1000) {
				memcpy(a->stash, p, NTM_HS_INIT_LEN);
				a->stash_from = *from;
				a->has_stash = 1;
				a->stash_fetch_at = agent_now_ms();
				a->drops[DROP_UNKNOWN]--;	/* counted if the retry fails */
				agent_fetch_directions(a);
			}
			return;
		}
		break;
	case NTM_MSG_HS_RESP:
	case NTM_MSG_DATA:
		if ((t = tun_by_index(a, ntm_msg_receiver_index(p, n))) == NULL) {
			drop(a, DROP_UNKNOWN);
			return;
		}
		break;
	default:
		drop(a, DROP_MALFORMED);	/* REG_REQ, RELAY_BIND: not for us */
		return;
	}

	r = ntm_tunnel_recv(t->t, p, n, agent_now_ms(), &ev, out);
	if (r < 0 && !ev.authentic) {
		drop(a, drop_reason(r));
		tun_arm(t);
		return;
	}
	if (ev.authentic && t->kind != NTM_ROUTE_RELAY &&
	    (!t->has_ep || !ntm_sa_equal((struct sockaddr *)&t->ep, (struct sockaddr *)from))) {
		char b1[64], b2[64];

		log_info("tunnel %s: endpoint %s -> %s", t->peer,
		    t->has_ep ? ntm_sa_str((struct sockaddr *)&t->ep, b1, sizeof(b1)) : "-",
		    ntm_sa_str((struct sockaddr *)from, b2, sizeof(b2)));
		t->ep = *from;
		t->has_ep = 1;
		t->endpoint_moves++;
	}
	if (r < 0)
		drop(a, DROP_MALFORMED);	/* authentic, but not an IP packet */
	tun_output(t, out);
	if (ev.established) {
		if (t->hs_sent)
			t->rtt_ms = (double)(agent_now_us() - t->hs_sent) / 1000.0;
		tun_flush(t);
		agent_ctl_tunnel_up(a, t);
	}
	if (r == 0 && ev.payload)
		inner_packet(t, ev.payload, ev.len);
	tun_arm(t);
}

/*
 * Datagrams are read in batches: one system call for up to UDP_BATCH. With
 * UDP_GRO set, one message may hold a run of datagrams that a sender gave
 * the kernel as one GSO message: the control message says the size of each,
 * and they are taken apart here, each one checked on its own.
 */
#define UDP_BATCH	16
#define GRO_BUF		65536

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
				drop(a, DROP_MALFORMED);
				continue;
			}
			for (cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm))
				if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO &&
				    cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
					int v;

					memcpy(&v, CMSG_DATA(cm), sizeof(v));
					if (v > 0 && (size_t)v < n)
						seg = (size_t)v;
				}
			if (seg < n)
				a->gro_recvs++;
			for (size_t off = 0; off < n; off += seg) {
				size_t len = n - off < seg ? n - off : seg;

				a->rx++;
				if (len > NTM_UDP_MAX) {
					drop(a, DROP_MALFORMED);
					continue;
				}
				udp_packet(a, bufs[i] + off, len, &from[i], 1);
			}
		}
		if (got < UDP_BATCH)
			break;
	}
	agent_batch_end(a);
}

/* ---- setup ------------------------------------------------------------------ */

static int
udp_open(long port, int *dual, int *gro, uint16_t *bound, char *err, size_t errlen)
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

/* Is an agent answering on path? 1 yes (pid in *pid), 0 no (stale socket
 * removed or none). */
static int
agent_alive(struct cli *cli, long *pid)
{
	json_t *st = agent_status_json(cli);

	if (st) {
		*pid = (long)json_integer_value(json_object_get(st, "pid"));
		json_decref(st);
		return 1;
	}
	return 0;
}

static void
vip_parse(const char *s, int af, uint8_t *out, int *has)
{
	char b[64];

	snprintf(b, sizeof(b), "%s", s ? s : "");
	b[strcspn(b, "/")] = '\0';
	*has = inet_pton(af, b, out) == 1;
}

static void
agent_free(struct agent *a)
{
	agent_socks_stop(a);
	agent_fwd_stop(a);
	agent_stream_stop_all(a);
	while (a->ntun > 0)
		agent_tun_free(a->tuns[0]);
	agent_tundev_stop(a);
	agent_ctl_stop(a);
	ntm_httpc_free(a->http);
	if (a->udp_ev)
		event_free(a->udp_ev);
	if (a->nl_ev)
		event_free(a->nl_ev);
	if (a->reg_timer)
		event_free(a->reg_timer);
	if (a->reg_wait)
		event_free(a->reg_wait);
	if (a->net_timer)
		event_free(a->net_timer);
	daemon_free_signals();
	if (a->base)
		event_base_free(a->base);
	if (a->udp >= 0)
		close(a->udp);
	if (a->nl >= 0)
		close(a->nl);
	ntm_chan_wipe(&a->chan);
	session_free(&a->s);
	free(a->sock_path);
	free(a->pid_path);
	free(a);
	agent_saved_free();
	agent_log_close();
}

/* The parent of a detaching `ntm up`: waits for the agent's first line. */
static int
wait_ready(int fd, pid_t pid, long timeout_s, uint16_t port, const char *sock,
    const char *log, int quiet)
{
	char buf[512];
	size_t len = 0;
	int64_t deadline = agent_now_ms() + timeout_s * 1000;
	long apid = 0;

	while (len < sizeof(buf) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - agent_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) <= 0)
			break;
		len += (size_t)n;
		if (memchr(buf, '\n', len) && strchr(buf, '\n') != strrchr(buf, '\n'))
			break;
	}
	buf[len] = '\0';
	close(fd);
	waitpid(pid, NULL, 0);
	/* first line: "pid N"; then "registered: ..." or "error: ..." */
	if (sscanf(buf, "pid %ld", &apid) != 1) {
		cli_err("up", "the agent did not start (see its log, %s)", log);
		return EXIT_FAIL;
	}
	char *second = strchr(buf, '\n');

	if (!quiet)
		printf("agent: running (pid %ld, UDP port %u, control %s, log %s)\n", apid,
		    port, sock, log);
	if (second && strncmp(second + 1, "registered:", 11) == 0) {
		if (!quiet)
			printf("%s", second + 1);
		return EXIT_OK;
	}
	if (second && strncmp(second + 1, "error: ", 7) == 0) {
		second[1 + strcspn(second + 1, "\n")] = '\0';
		cli_err("up", "%s", second + 8);
		return EXIT_FAIL;
	}
	cli_err("up", "no answer from the DC yet; the agent keeps trying");
	return EXIT_OK;
}

int
agent_main(struct cli *cli, const struct agent_opts *o)
{
	struct agent *a;
	char err[512], lerr[512], b[64];
	struct stat st;
	long pid = 0;
	int r, ret = EXIT_FAIL, pfd[2] = { -1, -1 };
	pid_t child;

	/* A client, or the `ntm up` waiting for our first lines, that went
	 * away makes a write fail with EPIPE, never kill the agent: from the
	 * start, before the fork (daemon_signals() says so again later). */
	signal(SIGPIPE, SIG_IGN);
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return EXIT_FAIL;
	a->udp = a->nl = a->lis_fd = a->ready_fd = -1;
	a->cli = cli;
	a->o = *o;
	a->keepalive_s = o->keepalive_s ? o->keepalive_s : 15;
	{
		/* Each forwarded or proxied connection holds a socket: allow as
		 * many as the hard limit does. */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if ((r = session_load(cli, &a->s, lerr, sizeof(lerr))) == NTM_ERR_NOTFOUND) {
		cli_err("up", "not logged in (run 'ntm login DC' first)");
		ret = EXIT_NOSESSION;
		goto out;
	} else if (r < 0) {
		cli_err("up", "%s", lerr);
		goto out;
	}
	if (a->s.token_expires <= now_unix()) {
		cli_err("up", "the session has expired (run 'ntm login' again)");
		ret = EXIT_NOSESSION;
		goto out;
	}
	if (cli_state_prepare(cli, "up") < 0)
		goto out;
	a->sock_path = agent_sock_path(cli);
	a->pid_path = agent_pid_path(cli);
	if (agent_alive(cli, &pid)) {
		cli_err("up", "an agent is already running (pid %ld, %s)", pid, a->sock_path);
		goto out;
	}
	if (agent_chan(&a->chan, &a->s, err, sizeof(err)) < 0) {
		cli_err("up", "%s", err);
		goto out;
	}
	vip_parse(a->s.vip4, AF_INET, a->vip4, &a->has_vip4);
	vip_parse(a->s.vip6, AF_INET6, a->vip6, &a->has_vip6);
	if ((r = agent_dc_udp(cli, a->s.domain, o->dc_udp, o->resolver, &a->dc, &a->dclen,
	    err, sizeof(err))) < 0) {
		cli_err("up", "cannot find the DC's UDP address: %s", err);
		ret = r == -2 ? EXIT_USAGE : EXIT_UNREACH;
		goto out;
	}
	ntm_sa_unmap(&a->dc, &a->dclen);
	if ((a->udp = udp_open(o->port, &a->dual, &a->gro, &a->port, err, sizeof(err))) < 0) {
		cli_err("up", "%s", err);
		goto out;
	}
	if (agent_ctl_listen(a, err, sizeof(err)) < 0) {
		cli_err("up", "%s", err);
		goto out;
	}
	if (agent_saved_load(cli, err, sizeof(err)) < 0)
		cli_err("up", "warning: %s; no forwards or SOCKS5 address brought back", err);
	{
		/* --socks5 ADDR or off, else the address saved by an earlier one */
		const char *saved = o->socks5 || o->socks5_off || o->tun ? NULL :
		    agent_saved_socks5();

		if (agent_socks_bind(a, saved ? saved : o->socks5, err, sizeof(err)) < 0) {
			if (saved == NULL) {
				cli_err("up", "%s", err);
				ret = EXIT_USAGE;
				goto out;
			}
			/* a setting from before that no longer works: said, not fatal */
			cli_err("up", "warning: the saved SOCKS5 address is not served: %s "
			    "('ntm up --socks5 off' forgets it)", err);
			(void)agent_socks_bind(a, NULL, err, sizeof(err));
		}
		if (o->socks5 || o->socks5_off)
			agent_saved_set_socks5(o->socks5);
	}
	if (agent_tundev_open(a, o->tun, err, sizeof(err)) < 0) {
		cli_err("up", "%s", err);
		goto out;
	}
	{
		char *lp = o->log ? xstrdup(o->log) : cli_state_path(cli, AGENT_LOG);

		r = agent_log_open(lp, cli->verbose, err, sizeof(err));
		free(lp);
		if (r < 0) {
			cli_err("up", "%s", err);
			ret = o->log ? EXIT_USAGE : EXIT_FAIL;
			goto out;
		}
	}

	if (!o->foreground) {
		if (pipe2(pfd, O_CLOEXEC) < 0 || (child = fork()) < 0) {
			cli_err("up", "cannot start the agent: %s", strerror(errno));
			goto out;
		}
		if (child > 0) {
			/* The agent's sockets and log belong to it now. */
			char *logp = xstrdup(agent_log_path());

			close(pfd[1]);
			agent_log_close();
			ret = wait_ready(pfd[0], child, o->timeout_s, a->port, a->sock_path,
			    logp, o->quiet);
			free(logp);
			close(a->udp);
			a->udp = -1;
			agent_ctl_forget(a);
			agent_socks_forget(a);
			goto out;
		}
		close(pfd[0]);
		fflush(stdout);
		if (daemon(0, 0) < 0)
			_exit(1);
		log_syslog();
		agent_log_detached();
		a->ready_fd = pfd[1];
		snprintf(b, sizeof(b), "pid %ld\n", (long)getpid());
		(void)!write(a->ready_fd, b, strlen(b));
	}

	if ((a->base = event_base_new()) == NULL ||
	    (a->http = ntm_httpc_new(a->base, a->s.ca_file)) == NULL ||
	    (a->udp_ev = event_new(a->base, a->udp, EV_READ | EV_PERSIST, on_udp, a)) == NULL ||
	    (a->reg_timer = evtimer_new(a->base, on_reg_timer, a)) == NULL ||
	    (a->reg_wait = evtimer_new(a->base, on_reg_wait, a)) == NULL ||
	    (a->net_timer = evtimer_new(a->base, on_net_timer, a)) == NULL ||
	    event_add(a->udp_ev, NULL) < 0 || agent_ctl_start(a) < 0 ||
	    daemon_signals(a->base, NULL, NULL) < 0) {
		log_warnx("cannot set up the event loop");
		goto fail;
	}
	if (agent_ip_start(a, err, sizeof(err)) < 0 || agent_fwd_start(a) < 0) {
		log_warnx("user-space stack: %s", err);
		goto fail;
	}
	if (agent_socks_start(a) < 0 || agent_tundev_start(a) < 0) {
		log_warnx("cannot serve SOCKS5 or read the TUN interface");
		goto fail;
	}
	if (!a->tun_mode)
		agent_fwd_restore(a);	/* the forwards of the last run */
	/* Our addresses change under us: never send a request over a kept-alive
	 * connection that may be bound to an address we no longer have. */
	ntm_httpc_set_reuse(a->http, 0);
	if ((a->nl = netlink_open()) >= 0) {
		if ((a->nl_ev = event_new(a->base, a->nl, EV_READ | EV_PERSIST, on_netlink,
		    a)) != NULL)
			event_add(a->nl_ev, NULL);
	} else
		log_warn("netlink (address changes will be noticed at the next keepalive)");
	if (daemon_pidfile(a->pid_path) < 0)
		log_warn("pidfile %s", a->pid_path);
	a->started = agent_now_ms();
	a->nlocals = agent_local_addrs(a->locals, NTM_REG_ADDRS, a->port, &a->dc);
	log_info("agent: pid %ld, UDP port %u (%s), DC %s, control %s", (long)getpid(),
	    a->port, a->dual ? "IPv4+IPv6" : "IPv4", ntm_sa_str((struct sockaddr *)&a->dc, b,
	    sizeof(b)), a->sock_path);
	if (o->foreground)
		printf("agent: running (pid %ld, UDP port %u, control %s, log %s)\n",
		    (long)getpid(), a->port, a->sock_path, agent_log_path()), fflush(stdout);
	reg_send(a);
	reg_timer_arm(a);
	event_base_dispatch(a->base);
	log_info("agent: stopping");
	reg_say_offline(a);
	ret = EXIT_OK;
fail:
	if (a->ready_fd >= 0) {
		char m[600];

		if (ret == EXIT_OK)
			snprintf(m, sizeof(m), "error: the agent stopped before registering\n");
		else
			snprintf(m, sizeof(m), "error: the agent could not start (see %s)\n",
			    agent_log_path() ? agent_log_path() : "the system log");
		(void)!write(a->ready_fd, m, strlen(m));
		close(a->ready_fd);
		a->ready_fd = -1;
	}
	if (a->pid_path && stat(a->pid_path, &st) == 0)
		unlink(a->pid_path);
	agent_free(a);
	if (!o->foreground)
		_exit(ret);
	return ret;
out:
	if (pfd[0] >= 0 && o->foreground)
		close(pfd[0]);
	agent_free(a);
	return ret;
}
