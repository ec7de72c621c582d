/*
 * control.c - the agent's control socket (docs/protocol.md §6): JSON
 * lines, one request per connection; `ping` streams events; `open` and
 * `listen` switch the connection to length-prefixed datagram frames.
 * Requests are framed and parsed by ctlreq.c; here they run.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common.h"
#include "ippkt.h"
#include "probe.h"
#include "agentd.h"
#include "ctlreq.h"

#define CTL_OUT_MAX	(1024 * 1024)	/* output buffered for a slow client */
#define CTL_READ_MAX	(256 * 1024)	/* bytes per read or write of a connection */
#define PING_SLOTS	64

enum ctl_mode { CTL_LINES, CTL_WAIT, CTL_PING, CTL_OPEN, CTL_LISTEN, CTL_HANDOVER,
    CTL_BODY, CTL_DONE };
enum ctl_op { OP_NONE, OP_PING, OP_OPEN, OP_STREAM, OP_LISTEN_TCP };

struct ctl {
	struct agent		*a;
	uint64_t		 serial;
	struct bufferevent	*bev;
	enum ctl_mode		 mode;
	enum ctl_op		 op;
	char			 peer[NTM_NAME_MAX + 1];
	int			 family;		/* 4 or 6 */
	struct event		*timer;
	int			 posted;		/* POST /v1/tunnel made */
	/* ping */
	int			 count, sent, recvd;
	int64_t			 interval_ms;
	uint16_t		 echo_id;
	int64_t			 sent_at[PING_SLOTS];	/* us, by seq % PING_SLOTS */
	double			 min, max, sum;
	/* open / listen */
	uint16_t		 lport, rport;
	int			 have_last;
	char			 last_peer[NTM_NAME_MAX + 1];
	int			 last_ver;
	uint8_t			 last_src[16];
	uint16_t		 last_sport;
	uint64_t		 frames_in, frames_out;
	int64_t			 stream_timeout_ms;
	struct ctl_https	*https;		/* an "https" request */
};

/* An "https" request: what the line said, until its body is in and the
 * request has ended. */
struct ctl_https {
	char			 method[8], ctype[64];
	char			*url, *bearer;
	size_t			 need;		/* body bytes still to come */
	int64_t			 timeout_ms;
	struct ntm_httpc_req	*req;		/* in flight */
};

static void ctl_free(struct ctl *c);
static void https_free(struct ctl *c);
static void https_start(struct ctl *c, const void *body, size_t len);

/* ---- replies ------------------------------------------------------------------ */

static void
ctl_reply(struct ctl *c, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (s == NULL)
		return;
	bufferevent_write(c->bev, s, strlen(s));
	bufferevent_write(c->bev, "\n", 1);
	free(s);
}

static void NTM_PRINTF(3, 4)
ctl_error(struct ctl *c, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctl_reply(c, json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "message", msg));
	c->mode = CTL_DONE;
	if (c->timer)
		evtimer_del(c->timer);
}

static struct ctl *
ctl_by_serial(struct agent *a, uint64_t serial)
{
	for (int i = 0; i < a->nctl; i++)
		if (a->ctls[i]->serial == serial)
			return a->ctls[i];
	return NULL;
}

/* ---- status objects ------------------------------------------------------------ */

static json_t *
reg_json(struct agent *a)
{
	char b[64];
	json_t *locals = json_array(), *j;

	for (int i = 0; i < a->nlocals; i++)
		json_array_append_new(locals, json_string(ntm_sa_str(
		    (struct sockaddr *)&a->locals[i], b, sizeof(b))));
	j = json_pack("{s:b, s:s, s:o, s:I}", "registered", a->registered,
	    "dc", ntm_sa_str((struct sockaddr *)&a->dc, b, sizeof(b)), "locals", locals,
	    "keepalive_s", (json_int_t)a->keepalive_s);
	if (a->registered) {
		json_object_set_new(j, "reflexive", json_string(ntm_sa_str(
		    (struct sockaddr *)&a->resp.reflexive, b, sizeof(b))));
		json_object_set_new(j, "natted", json_boolean(a->natted));
		json_object_set_new(j, "family", json_integer(a->family == AF_INET6 ? 6 : 4));
		json_object_set_new(j, "pending", json_integer(a->resp.pending));
		json_object_set_new(j, "last_resp_s",
		    json_integer((agent_now_ms() - a->resp_at) / 1000));
	}
	json_object_set_new(j, "missed", json_integer(a->missed));
	/* what the reflection probes found (protocol.md §4.7) */
	json_object_set_new(j, "nat", json_string(ntm_nat_name((enum ntm_nat)a->nat)));
	json_object_set_new(j, "filtering", json_string(ntm_filter_name(
	    (enum ntm_filter)a->filter)));
	/* the second family (protocol.md §4.2): null while not registering over it */
	if (a->also.on) {
		json_t *o = json_pack("{s:s, s:i, s:b}", "dc", ntm_sa_str(
		    (struct sockaddr *)&a->dc_alt, b, sizeof(b)), "family",
		    a->dc_alt.ss_family == AF_INET6 ? 6 : 4, "registered", a->also.registered);

		if (o && a->also.registered) {
			json_object_set_new(o, "reflexive", json_string(ntm_sa_str(
			    (struct sockaddr *)&a->also.reflexive, b, sizeof(b))));
			json_object_set_new(o, "natted", json_boolean(a->also.natted));
			json_object_set_new(o, "last_resp_s",
			    json_integer((agent_now_ms() - a->also.at) / 1000));
		}
		json_object_set_new(j, "also", o);
	} else
		json_object_set_new(j, "also", json_null());
	return j;
}

static json_t *
status_json(struct agent *a)
{
	json_t *drops = json_object(), *j;

	for (int i = 0; i < DROP_N; i++)
		json_object_set_new(drops, agent_drop_names[i], json_integer((json_int_t)a->drops[i]));
	j = json_pack("{s:I, s:i, s:b, s:s, s:s, s:s, s:I, s:o, s:i, s:I, s:I, s:I, s:I,"
	    " s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:o, s:o, s:{s:I, s:I, s:I, s:I},"
	    " s:{s:b, s:b, s:I, s:I}}",
	    "pid", (json_int_t)getpid(), "port", a->port, "dual_stack", a->dual,
	    "fqdn", a->s.fqdn, "vip4", a->s.vip4, "vip6", a->s.vip6,
	    "uptime_s", (json_int_t)((agent_now_ms() - a->started) / 1000),
	    "registration", reg_json(a), "tunnels", a->ntun,
	    "rx_datagrams", (json_int_t)a->rx, "tx_datagrams", (json_int_t)a->tx,
	    "send_errors", (json_int_t)a->send_errors, "reg_sent", (json_int_t)a->reg_sent,
	    "reg_resps", (json_int_t)a->reg_resps, "nudges", (json_int_t)a->nudges,
	    "moved", (json_int_t)a->moved,
	    "directions", (json_int_t)a->directions, "dropped", drops,
	    "inner_dropped", (json_int_t)a->inner_drops,
	    "echo_answered", (json_int_t)a->echo_answered,
	    "net_changes", (json_int_t)a->net_changes,
	    "socks5", agent_socks_json(a),
	    "tun", a->tun_mode ? json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "name",
	    agent_tundev_name(), "to_kernel", (json_int_t)a->tundev_in, "from_kernel",
	    (json_int_t)a->tundev_out, "noroute", (json_int_t)a->tundev_noroute,
	    "denied", (json_int_t)a->tundev_denied,
	    "tcp_replayed", (json_int_t)a->tundev_replayed) : json_null(),
	    "stack", "in", (json_int_t)a->stack_in, "out", (json_int_t)a->stack_out,
	    "noroute", (json_int_t)a->stack_noroute, "tcp_rexmits", (json_int_t)a->tcp_rexmits,
	    "offload", "gso", !a->gso_off, "gro", a->gro,
	    "gso_sends", (json_int_t)a->gso_sends, "gro_recvs", (json_int_t)a->gro_recvs);
	if (j)
		json_object_set_new(j, "log", agent_log_path() ?
		    json_string(agent_log_path()) : json_null());
	if (j)
		json_object_set_new(j, "tunnels_never_up", json_integer((json_int_t)a->tun_swept));
	if (j)
		json_object_set_new(j, "tunnels_remade", json_integer((json_int_t)a->tun_remade));
	if (j) {
		/* Who may open tunnels to this device (--accept; null: anyone). */
		json_t *acc = a->o.naccept ? json_array() : json_null();

		for (int i = 0; i < a->o.naccept && i < AGENT_ACCEPT_MAX; i++)
			json_array_append_new(acc, json_string(a->o.accept[i]));
		json_object_set_new(j, "accept", acc);
		json_object_set_new(j, "tunnels_refused", json_integer((json_int_t)a->tun_refused));
	}
	return j;
}

static const char *
kind_str(int k)
{
	return k == NTM_ROUTE_DIRECT ? "direct" : k == NTM_ROUTE_LOCAL ? "local" : "relay";
}

static json_t *
tun_json(struct tun *t)
{
	struct ntm_tun_stats st;
	char b[64];
	json_t *j;

	ntm_tunnel_stats(t->p.t, &st);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I,"
	    " s:I, s:I, s:I, s:I}",
	    "peer", t->peer, "peer_vip4", t->vip4, "peer_vip6", t->vip6,
	    "tunnel_id", t->tid_hex, "route", kind_str(t->p.kind), "reason", t->reason,
	    "role", t->p.initiator ? "initiator" : "responder",
	    "endpoint", t->p.has_ep ? ntm_sa_str((struct sockaddr *)&t->p.ep, b, sizeof(b)) : "",
	    "state", ntm_tun_state_name(st.state), "index", (json_int_t)st.index,
	    "tx_packets", (json_int_t)st.tx_packets, "tx_bytes", (json_int_t)st.tx_bytes,
	    "rx_packets", (json_int_t)st.rx_packets, "rx_bytes", (json_int_t)st.rx_bytes,
	    "dropped", (json_int_t)st.dropped, "handshakes", (json_int_t)st.handshakes,
	    "endpoint_moves", (json_int_t)t->p.endpoint_moves);
	json_object_set_new(j, "rtt_ms", t->rtt_ms > 0 ? json_real(t->rtt_ms) : json_null());
	json_object_set_new(j, "last_handshake_s", st.last_handshake ?
	    json_integer((agent_now_ms() - st.last_handshake) / 1000) : json_null());
	/* for ntm status: when the peer was last heard from */
	json_object_set_new(j, "last_rx_s", st.last_rx ?
	    json_integer((agent_now_ms() - st.last_rx) / 1000) : json_null());
	/* the peer's identity: its device key as its AS certificate gives it */
	json_object_set_new(j, "peer_fingerprint", json_string(t->peer_fp));
	json_object_set_new(j, "peer_verified", json_boolean(t->peer_fp[0] != '\0'));
	json_object_set_new(j, "identity_failures", json_integer(st.identity_failures));
	json_object_set_new(j, "relay_side", t->p.kind == NTM_ROUTE_RELAY ?
	    json_integer(t->p.side) : json_null());
	if (t->p.kind == NTM_ROUTE_RELAY)
		json_object_set_new(j, "relay_peer_bound", json_boolean(t->p.peer_bound));
	agent_tun_path_json(t, j);	/* path, path_reason, punching (tunnels.c) */
	/* the address family the path goes over now (to the RS when relayed) */
	if (t->p.has_ep) {
		struct sockaddr_storage ep = t->p.ep;

		ntm_sa_unmap(&ep, NULL);
		json_object_set_new(j, "family", json_string(ep.ss_family == AF_INET6 ?
		    "IPv6" : "IPv4"));
	} else
		json_object_set_new(j, "family", json_null());
	return j;
}

/* ---- ping ----------------------------------------------------------------------- */

static int
our_vip(struct agent *a, int family, uint8_t *out)
{
	if (family == 4 && a->has_vip4) {
		memcpy(out, a->vip4, 4);
		return 0;
	}
	if (family == 6 && a->has_vip6) {
		memcpy(out, a->vip6, 16);
		return 0;
	}
	return -1;
}

static int
peer_vip(struct tun *t, int family, uint8_t *out)
{
	if (family == 4 && t->has4) {
		memcpy(out, t->pv4, 4);
		return 0;
	}
	if (family == 6 && t->has6) {
		memcpy(out, t->pv6, 16);
		return 0;
	}
	return -1;
}

static void
ping_done(struct ctl *c)
{
	double avg = c->recvd ? c->sum / c->recvd : 0;

	ctl_reply(c, json_pack("{s:b, s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f}", "ok", 1,
	    "event", "done", "peer", c->peer, "sent", c->sent, "received", c->recvd,
	    "loss_pct", c->sent ? 100.0 * (c->sent - c->recvd) / c->sent : 0.0,
	    "min_ms", c->min, "avg_ms", avg, "max_ms", c->max));
	c->mode = CTL_DONE;
	evtimer_del(c->timer);
}

static void
ping_send(struct ctl *c)
{
	struct agent *a = c->a;
	struct tun *t = agent_tun_by_peer(a, c->peer);
	uint8_t pkt[128], data[16] = "ntm-ping";
	struct ntm_ip ip;
	int n;

	c->sent++;
	if (t == NULL)
		return;
	memset(&ip, 0, sizeof(ip));
	ip.version = c->family;
	ip.proto = c->family == 4 ? NTM_PROTO_ICMP : NTM_PROTO_ICMP6;
	ip.icmp_type = c->family == 4 ? NTM_ICMP_ECHO_REQUEST : NTM_ICMP6_ECHO_REQUEST;
	ip.echo_id = c->echo_id;
	ip.echo_seq = (uint16_t)c->sent;
	ip.ident = (uint16_t)c->sent;
	if (our_vip(a, c->family, ip.src) < 0 || peer_vip(t, c->family, ip.dst) < 0)
		return;
	ip.payload = data;
	ip.len = sizeof(data);
	if ((n = ntm_ip_build(pkt, sizeof(pkt), &ip)) < 0)
		return;
	c->sent_at[c->sent % PING_SLOTS] = agent_now_us();
	(void)agent_tun_send(t, pkt, (size_t)n);
}

/*
 * A TCP stream takes the connection over (streams.c): run from the
 * connection's timer, never from inside its read callback, since the ctl
 * is freed here.
 */
static void
ctl_handover(struct ctl *c)
{
	struct agent *a = c->a;
	struct bufferevent *bev = c->bev;
	struct tun *t;
	char err[512];

	if (c->op == OP_LISTEN_TCP) {
		/* a -R forward or another listen may hold the port: say which */
		if (agent_port_holder(c->lport, err, sizeof(err)) ||
		    agent_stream_listen(a, bev, c->lport, err, sizeof(err)) < 0) {
			ctl_error(c, "port_in_use", "%s", err);
			return;
		}
		c->bev = NULL;
		ctl_free(c);
		return;
	}
	if ((t = agent_tun_by_peer(a, c->peer)) == NULL) {
		ctl_error(c, "tunnel_failed", "the tunnel to %s went away", c->peer);
		return;
	}
	{
		int family = c->family;
		uint16_t port = c->rport;
		int64_t timeout_ms = c->stream_timeout_ms;

		c->bev = NULL;
		ctl_free(c);
		agent_stream_connect(a, bev, SK_CTL, 0, t, family, port, timeout_ms);
	}
}

static void
on_ctl_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *c = arg;
	struct timeval tv;
	int64_t wait;

	if (c->mode == CTL_HANDOVER) {
		ctl_handover(c);
		return;
	}
	if (c->mode == CTL_WAIT) {
		struct tun *t = agent_tun_by_peer(c->a, c->peer);
		struct ntm_tun_stats st;

		if (t)
			ntm_tunnel_stats(t->p.t, &st);
		ctl_error(c, "tunnel_timeout", "no tunnel to %s in time (%s)", c->peer,
		    t ? ntm_tun_state_name(st.state) : "no route direction from the DC");
		return;
	}
	if (c->mode != CTL_PING)
		return;
	if (c->sent >= c->count) {
		ping_done(c);
		return;
	}
	ping_send(c);
	wait = c->sent < c->count ? c->interval_ms :
	    (c->interval_ms > 2000 ? c->interval_ms : 2000);
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(c->timer, &tv);
}

int
agent_ctl_echo_reply(struct agent *a, struct tun *t, const struct ntm_ip *ip)
{
	for (int i = 0; i < a->nctl; i++) {
		struct ctl *c = a->ctls[i];
		int64_t at;
		double rtt;
		char b[64];

		if (c->mode != CTL_PING || c->echo_id != ip->echo_id ||
		    strcmp(c->peer, t->peer) != 0 || ip->version != c->family)
			continue;
		if (ip->echo_seq == 0 || ip->echo_seq > c->sent ||
		    c->sent - ip->echo_seq >= PING_SLOTS ||
		    (at = c->sent_at[ip->echo_seq % PING_SLOTS]) == 0)
			return -1;	/* unknown or duplicate */
		c->sent_at[ip->echo_seq % PING_SLOTS] = 0;
		rtt = (double)(agent_now_us() - at) / 1000.0;
		t->rtt_ms = rtt;
		if (c->recvd == 0 || rtt < c->min)
			c->min = rtt;
		if (rtt > c->max)
			c->max = rtt;
		c->sum += rtt;
		c->recvd++;
		inet_ntop(ip->version == 4 ? AF_INET : AF_INET6, ip->src, b, sizeof(b));
		ctl_reply(c, json_pack("{s:s, s:i, s:f, s:i, s:s}", "event", "reply",
		    "seq", ip->echo_seq, "rtt_ms", rtt, "bytes", (int)ip->len + NTM_ICMP_HDR,
		    "from", b));
		if (c->recvd == c->count && c->sent == c->count)
			ping_done(c);
		return 0;
	}
	return -1;
}

/* ---- UDP bridging --------------------------------------------------------------- */

static void
frame_out(struct ctl *c, const uint8_t *p, size_t n)
{
	uint8_t h[2] = { (uint8_t)(n >> 8), (uint8_t)n };

	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > CTL_OUT_MAX)
		return;		/* the client does not keep up: drop */
	bufferevent_write(c->bev, h, 2);
	bufferevent_write(c->bev, p, n);
	c->frames_out++;
}

int
agent_ctl_udp(struct agent *a, struct tun *t, const struct ntm_ip *ip)
{
	int hit = 0;

	for (int i = 0; i < a->nctl; i++) {
		struct ctl *c = a->ctls[i];

		if (c->mode == CTL_OPEN && c->lport == ip->dport && c->rport == ip->sport &&
		    c->family == ip->version && strcmp(c->peer, t->peer) == 0) {
			frame_out(c, ip->payload, ip->len);
			hit = 1;
		} else if (c->mode == CTL_LISTEN && c->lport == ip->dport) {
			frame_out(c, ip->payload, ip->len);
			c->have_last = 1;
			snprintf(c->last_peer, sizeof(c->last_peer), "%s", t->peer);
			c->last_ver = ip->version;
			memcpy(c->last_src, ip->src, 16);
			c->last_sport = ip->sport;
			hit = 1;
		}
	}
	return hit ? 0 : -1;
}

/* A frame from the client: one datagram to send. */
static void
frame_in(struct ctl *c, const uint8_t *p, size_t n)
{
	struct agent *a = c->a;
	uint8_t pkt[NTM_INNER_MTU];
	struct ntm_ip ip;
	struct tun *t;
	int len;

	memset(&ip, 0, sizeof(ip));
	ip.proto = NTM_PROTO_UDP;
	ip.payload = p;
	ip.len = n;
	if (c->mode == CTL_OPEN) {
		if ((t = agent_tun_by_peer(a, c->peer)) == NULL)
			goto drop;
		ip.version = c->family;
		ip.sport = c->lport;
		ip.dport = c->rport;
		if (peer_vip(t, c->family, ip.dst) < 0)
			goto drop;
	} else {
		if (!c->have_last || (t = agent_tun_by_peer(a, c->last_peer)) == NULL)
			goto drop;
		ip.version = c->last_ver;
		ip.sport = c->lport;
		ip.dport = c->last_sport;
		memcpy(ip.dst, c->last_src, 16);
	}
	if (our_vip(a, ip.version, ip.src) < 0)
		goto drop;
	ip.ident = (uint16_t)c->frames_in;
	if ((len = ntm_ip_build(pkt, sizeof(pkt), &ip)) < 0 ||
	    agent_tun_send(t, pkt, (size_t)len) < 0)
		goto drop;
	c->frames_in++;
	return;
drop:
	a->inner_drops++;
}

/* ---- requests ------------------------------------------------------------------- */

static void
ctl_ready(struct ctl *c, struct tun *t)
{
	struct timeval now = { 0, 0 };
	char b[64], vl[64], vr[64];
	uint8_t l[16], r[16];

	if (our_vip(c->a, c->family, l) < 0 || peer_vip(t, c->family, r) < 0) {
		ctl_error(c, "tunnel_failed", "%s has no IPv%d vIP on one end", c->peer,
		    c->family);
		return;
	}
	inet_ntop(c->family == 4 ? AF_INET : AF_INET6, l, vl, sizeof(vl));
	inet_ntop(c->family == 4 ? AF_INET : AF_INET6, r, vr, sizeof(vr));
	evtimer_del(c->timer);
	if (c->op == OP_PING) {
		c->mode = CTL_PING;
		ntm_random(&c->echo_id, sizeof(c->echo_id));
		ctl_reply(c, json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ok", 1,
		    "event", "up", "peer", c->peer, "vip", vr, "route", kind_str(t->p.kind),
		    "reason", t->reason, "endpoint", t->p.has_ep ?
		    ntm_sa_str((struct sockaddr *)&t->p.ep, b, sizeof(b)) : "",
		    "role", t->p.initiator ? "initiator" : "responder"));
		evtimer_add(c->timer, &now);
	} else if (c->op == OP_STREAM) {
		c->mode = CTL_HANDOVER;
		evtimer_add(c->timer, &now);
	} else {
		c->mode = CTL_OPEN;
		ctl_reply(c, json_pack("{s:b, s:s, s:s, s:i, s:s, s:i, s:s}", "ok", 1,
		    "peer", c->peer, "local_vip", vl, "local_port", c->lport,
		    "remote_vip", vr, "remote_port", c->rport, "route", kind_str(t->p.kind)));
	}
}

/* Gets the caller a tunnel to c->peer: existing and up, waiting for one
 * being made, or asking the DC for one. */
static void
ctl_want_tunnel(struct ctl *c, int64_t timeout_ms)
{
	struct agent *a = c->a;
	struct tun *t = agent_tun_by_peer(a, c->peer);
	struct ntm_tun_stats st;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	if (t) {
		ntm_tunnel_stats(t->p.t, &st);
		/* Both ends send a keepalive every 10 s: 30 s of silence means
		 * the peer lost the tunnel (restarted) or cannot reach us. A
		 * new one already asked for (tunnels.c: a lost tunnel's users
		 * sent) is waited for, not asked for twice: two requests could
		 * cross at the peer. */
		if (t->remaking && st.state == NTM_TUN_UP) {
			ctl_ready(c, t);	/* its sends go to the new one once here */
			return;
		} else if (t->remaking) {
			/* below: waits for it */
		} else if (st.state == NTM_TUN_DEAD || (st.state == NTM_TUN_UP &&
		    agent_now_ms() - (st.last_rx ? st.last_rx : t->created) > AGENT_STALE_MS)) {
			log_info("tunnel %s: %s, asking for a new one", t->peer,
			    st.state == NTM_TUN_DEAD ? "dead" : "silent");
			agent_stream_tunnel_gone(a, t, "the tunnel died");
			agent_tun_free(t);
			t = NULL;
		} else if (st.state == NTM_TUN_UP) {
			ctl_ready(c, t);
			return;
		}
	}
	c->mode = CTL_WAIT;
	evtimer_add(c->timer, &tv);
	if (t == NULL) {
		if (!a->registered) {
			ctl_error(c, "not_registered", "the agent is not registered with the "
			    "DC yet");
			return;
		}
		c->posted = 1;
		if (agent_request_tunnel(a, c->peer, NULL, c->serial) < 0)
			ctl_error(c, "internal", "cannot start the request to the DC");
	}
}

void
agent_ctl_tunnel_up(struct agent *a, struct tun *t)
{
	agent_dial_tunnel_up(a, t);
	for (int i = 0; i < a->nctl; i++)
		if (a->ctls[i]->mode == CTL_WAIT && strcmp(a->ctls[i]->peer, t->peer) == 0)
			ctl_ready(a->ctls[i], t);
}

void
agent_ctl_tunnels_changed(struct agent *a)
{
	/* A new tunnel that is already up (a recreated one) releases waiters. */
	for (int i = 0; i < a->ntun; i++)
		agent_dial_tunnel_up(a, a->tuns[i]);
	for (int i = 0; i < a->nctl; i++) {
		struct ctl *c = a->ctls[i];
		struct tun *t;
		struct ntm_tun_stats st;

		if (c->mode != CTL_WAIT || (t = agent_tun_by_peer(a, c->peer)) == NULL)
			continue;
		ntm_tunnel_stats(t->p.t, &st);
		if (st.state == NTM_TUN_UP)
			ctl_ready(c, t);
	}
}

void
agent_ctl_peer_failed(struct agent *a, const char *peer, const char *code, const char *msg)
{
	for (int i = a->nctl - 1; i >= 0; i--)
		if (i < a->nctl && a->ctls[i]->mode == CTL_WAIT &&
		    strcmp(a->ctls[i]->peer, peer) == 0)
			ctl_error(a->ctls[i], code, "%s", msg);
}

void
agent_ctl_tunnel_failed(struct agent *a, uint64_t serial, const char *code, const char *msg)
{
	struct ctl *c = ctl_by_serial(a, serial);

	if (c && c->mode == CTL_WAIT)
		ctl_error(c, code, "%s", msg);
}

static void
verb_status(struct ctl *c, struct ctl_req *r)
{
	ctl_reply(c, json_pack("{s:b, s:o}", "ok", 1, "agent", status_json(c->a)));
}

static void
verb_register(struct ctl *c, struct ctl_req *r)
{
	ctl_reply(c, json_pack("{s:b, s:o}", "ok", 1, "registration", reg_json(c->a)));
}

static void
verb_list(struct ctl *c, struct ctl_req *r)
{
	struct agent *a = c->a;
	json_t *arr = json_array();

	for (int i = 0; i < a->ntun; i++)
		json_array_append_new(arr, tun_json(a->tuns[i]));
	ctl_reply(c, json_pack("{s:b, s:o, s:o, s:o}", "ok", 1, "agent", status_json(a),
	    "tunnels", arr, "streams", agent_stream_json(a)));
}

static void
verb_stop(struct ctl *c, struct ctl_req *r)
{
	struct timeval tv = { 0, 100000 };

	ctl_reply(c, json_pack("{s:b, s:I}", "ok", 1, "pid", (json_int_t)getpid()));
	log_info("stop requested on the control socket");
	event_base_loopexit(c->a->base, &tv);
}

static void
verb_close(struct ctl *c, struct ctl_req *r)
{
	struct agent *a = c->a;
	struct tun *t = r->peer ? agent_tun_by_peer(a, r->peer) : NULL;

	if (t == NULL) {
		ctl_error(c, "no_tunnel", "no tunnel to %s", r->peer ? r->peer : "(none)");
		return;
	}
	log_info("tunnel %s: closed on request", t->peer);
	agent_tun_close_tell(t);
	agent_stream_tunnel_gone(a, t, "the tunnel was closed");
	agent_tun_free(t);
	ctl_reply(c, json_pack("{s:b, s:s}", "ok", 1, "peer", r->peer));
}

/* A peer given by vIP: the peer of the tunnel that has it (r->peer and, if
 * not given, r->family set). 0, or -1 with the error said. */
static int
peer_by_vip(struct ctl *c, struct ctl_req *r)
{
	struct agent *a = c->a;
	uint8_t vb[16];
	int vf = r->peer == NULL ? 0 : inet_pton(AF_INET, r->peer, vb) == 1 ? 4 :
	    inet_pton(AF_INET6, r->peer, vb) == 1 ? 6 : 0;
	struct tun *vt = NULL;

	if (vf == 0)
		return 0;
	for (int i = 0; i < a->ntun && vt == NULL; i++)
		if (vf == 4 ? a->tuns[i]->has4 && !memcmp(a->tuns[i]->pv4, vb, 4) :
		    a->tuns[i]->has6 && !memcmp(a->tuns[i]->pv6, vb, 16))
			vt = a->tuns[i];
	if (vt == NULL) {
		ctl_error(c, "no_tunnel", "no tunnel has the vIP %s (open one to "
		    "the peer's name first)", r->peer);
		return -1;
	}
	r->peer = vt->peer;
	if (r->family == 0)
		r->family = vf;
	return 0;
}

/* ping, open: both wait for a tunnel to the peer first. */
static void
verb_dial(struct ctl *c, struct ctl_req *r)
{
	int ping = r->cmd[0] == 'p';

	if (peer_by_vip(c, r) < 0)
		return;
	if (r->peer == NULL || !ntm_valid_dnsname(r->peer)) {
		ctl_error(c, "bad_request", "peer: expected a client FQDN");
		return;
	}
	if (r->family == 0)
		r->family = c->a->has_vip4 ? 4 : 6;
	if ((r->family != 4 && r->family != 6) || r->timeout < 0 || r->timeout > 300000 ||
	    (ping && (r->count < 0 || r->count > AGENT_PING_MAX || r->interval < 0 ||
	    r->interval > 60000)) ||
	    (!ping && (r->port < 1 || r->port > 65535 || r->lport < 0 || r->lport > 65535))) {
		ctl_error(c, "bad_request", "a value is out of range");
		return;
	}
	snprintf(c->peer, sizeof(c->peer), "%s", r->peer);
	c->family = (int)r->family;
	c->op = ping ? OP_PING : r->proto[0] == 't' ? OP_STREAM : OP_OPEN;
	c->stream_timeout_ms = r->timeout ? r->timeout : 10000;
	c->count = r->count ? (int)r->count : 4;
	c->interval_ms = r->interval ? r->interval : 1000;
	c->rport = (uint16_t)r->port;
	if (r->lport == 0)
		ntm_random(&c->lport, sizeof(c->lport)), c->lport |= 0xc000;
	else
		c->lport = (uint16_t)r->lport;
	ctl_want_tunnel(c, r->timeout ? r->timeout : 10000);
}

static void
verb_listen(struct ctl *c, struct ctl_req *r)
{
	struct agent *a = c->a;

	if (r->port < 1 || r->port > 65535) {
		ctl_error(c, "bad_request", "port: expected 1..65535");
		return;
	}
	c->lport = (uint16_t)r->port;
	if (r->proto[0] == 't') {
		struct timeval now = { 0, 0 };

		c->op = OP_LISTEN_TCP;
		c->mode = CTL_HANDOVER;
		evtimer_add(c->timer, &now);
		return;
	}
	c->mode = CTL_LISTEN;
	ctl_reply(c, json_pack("{s:b, s:i, s:s, s:s}", "ok", 1, "port", (int)r->port,
	    "vip4", a->s.vip4, "vip6", a->s.vip6));
}

static void
verb_forward(struct ctl *c, struct ctl_req *r)
{
	struct agent *a = c->a;

	if (a->tun_mode)
		ctl_error(c, "tun_mode", "forwards use the user-space stack; in TUN mode "
		    "programs use the vIPs on %s directly", agent_tundev_name());
	else
		ctl_reply(c, agent_fwd_request(a, json_string_value(json_object_get(r->j, "cmd")),
		    r->j));
}

/* ---- https: a client's request on the agent's kept-alive connections ------- */

/*
 * `ntm send` and `ntm fetch` are short processes: each would pay a TLS
 * handshake per server. With an agent up they hand their small requests
 * here instead (docs/protocol.md §6): the line names the request, its body
 * (length bytes) follows the line, and the answer is a line with the HTTP
 * status and length, then the response body. The agent adds nothing of its
 * own (the bearer is the client's) and verifies servers against the
 * session's CA as the client would. Its connections are kept alive between
 * requests and dropped on every network change.
 */
static void
https_free(struct ctl *c)
{
	struct ctl_https *h = c->https;

	if (h == NULL)
		return;
	if (h->req)
		ntm_httpc_cancel(h->req);
	if (h->bearer) {
		ntm_wipe(h->bearer, strlen(h->bearer));
		free(h->bearer);
	}
	free(h->url);
	free(h);
	c->https = NULL;
}

/* The error codes of a request that got no HTTP answer. */
static const char *
https_code(int err)
{
	switch (err) {
	case NTM_ERR_TIMEOUT:	return "timeout";
	case NTM_ERR_TLS:	return "tls";
	case NTM_ERR_UNTRUSTED:	return "untrusted_certificate";
	case NTM_ERR_TOOBIG:	return "too_big";
	default:		return "connect";
	}
}

static void
on_https_done(const struct ntm_http_result *res, void *arg)
{
	struct ctl *c = arg;

	c->https->req = NULL;
	if (res->err) {
		ctl_error(c, https_code(res->err), "%s", res->errmsg);
		return;
	}
	ctl_reply(c, json_pack("{s:b, s:i, s:I}", "ok", 1, "status", (int)res->status,
	    "length", (json_int_t)res->len));
	bufferevent_write(c->bev, res->body, res->len);
	c->mode = CTL_DONE;
}

static void
https_start(struct ctl *c, const void *body, size_t len)
{
	struct agent *a = c->a;
	struct ctl_https *h = c->https;
	int e;

	c->mode = CTL_WAIT;
	if (a->relay == NULL && (a->relay = ntm_httpc_new(a->base, a->s.ca_file)) == NULL) {
		ctl_error(c, "internal", "cannot start an HTTPS client");
		return;
	}
	e = ntm_httpc_send(a->relay, h->method, h->url, h->ctype[0] ? h->ctype : NULL, body,
	    len, h->bearer, (long)h->timeout_ms, on_https_done, c, &h->req);
	if (e != 0)
		ctl_error(c, "bad_request", "url: %s", ntm_strerror(e));
}

/* An "https" request whose line ctl_parse checked. */
static void
verb_https(struct ctl *c, struct ctl_req *r)
{
	struct ctl_https *h;

	if ((h = calloc(1, sizeof(*h))) == NULL || (h->url = strdup(r->url)) == NULL ||
	    (r->bearer && (h->bearer = strdup(r->bearer)) == NULL)) {
		if (h)
			free(h->url);
		free(h);
		ctl_error(c, "internal", "out of memory");
		return;
	}
	snprintf(h->method, sizeof(h->method), "%s", r->method);
	snprintf(h->ctype, sizeof(h->ctype), "%s", r->ctype ? r->ctype : "");
	h->need = (size_t)r->length;
	h->timeout_ms = r->https_timeout;
	c->https = h;
	if (h->need > 0)
		c->mode = CTL_BODY;
	else
		https_start(c, NULL, 0);
}

/*
 * The network changed: kept-alive connections may be bound to an address
 * we no longer have. Requests in flight end with "connect" (a send resumes
 * its upload), and the next ones start afresh.
 */
void
agent_ctl_net_changed(struct agent *a)
{
	if (a->relay == NULL)
		return;
	for (int i = 0; i < a->nctl; i++) {
		struct ctl *c = a->ctls[i];

		if (c->https && c->https->req) {
			ntm_httpc_cancel(c->https->req);
			c->https->req = NULL;
			ctl_error(c, "connect", "the network changed during the request");
		}
	}
	ntm_httpc_free(a->relay);
	a->relay = NULL;
}

/* What runs each verb (ctlreq.h), by enum ctl_verb. */
static void (*const verb_exec[CV__COUNT])(struct ctl *c, struct ctl_req *r) = {
	[CV_STATUS]	= verb_status,
	[CV_REGISTER]	= verb_register,
	[CV_LIST]	= verb_list,
	[CV_STOP]	= verb_stop,
	[CV_CLOSE]	= verb_close,
	[CV_PING]	= verb_dial,
	[CV_OPEN]	= verb_dial,
	[CV_LISTEN]	= verb_listen,
	[CV_FORWARD]	= verb_forward,
	[CV_HTTPS]	= verb_https,
};

static void
ctl_request(struct ctl *c, const char *line, size_t len)
{
	struct agent *a = c->a;
	const char *tundev = NULL;
	struct ctl_req r;
	struct ctl_perr e;

	if (a->tun_mode && (tundev = agent_tundev_name()) == NULL)
		tundev = "the TUN device";
	if (ctl_parse(line, len, tundev, &r, &e) < 0) {
		ctl_error(c, e.code, "%s", e.message);
		return;
	}
	verb_exec[r.verb](c, &r);
	ctl_req_free(&r);
}

/* ---- connections ------------------------------------------------------------------ */

static void
ctl_read(struct bufferevent *bev, struct ctl *c)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		if (c->mode == CTL_LINES) {
			size_t n;
			char *line;
			int got = ctl_take_line(in, &line, &n);

			if (got < 0) {
				ctl_free(c);
				return;
			}
			if (got == 0)
				return;
			c->mode = CTL_DONE;	/* one request per connection */
			ctl_request(c, line, n);
			free(line);
			continue;
		}
		if (c->mode == CTL_BODY) {
			size_t n = c->https->need;
			const void *body = ctl_take_body(in, n);

			if (body == NULL)
				return;
			https_start(c, body, n);
			evbuffer_drain(in, n);
			continue;
		}
		if (c->mode == CTL_OPEN || c->mode == CTL_LISTEN) {
			uint8_t h[2], buf[AGENT_FRAME_MAX];
			size_t n;

			if (evbuffer_copyout(in, h, 2) < 2)
				return;
			n = (size_t)h[0] << 8 | h[1];
			if (n > AGENT_FRAME_MAX) {
				ctl_free(c);
				return;
			}
			if (evbuffer_get_length(in) < 2 + n)
				return;
			evbuffer_drain(in, 2);
			evbuffer_remove(in, buf, n);
			frame_in(c, buf, n);
			continue;
		}
		/* Nothing is expected now: bounded, then dropped. */
		if (evbuffer_get_length(in) > AGENT_LINE_MAX)
			evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
}

/* Frames from the application go out in one batch per read. */
static void
on_ctl_read(struct bufferevent *bev, void *arg)
{
	struct ctl *c = arg;
	struct agent *a = c->a;

	agent_batch_begin(a);
	ctl_read(bev, c);	/* may free c */
	agent_batch_end(a);
}

static void
on_ctl_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		ctl_free(arg);
}

static void
ctl_free(struct ctl *c)
{
	struct agent *a = c->a;

	for (int i = 0; i < a->nctl; i++)
		if (a->ctls[i] == c) {
			a->ctls[i] = a->ctls[--a->nctl];
			break;
		}
	if (c->timer)
		event_free(c->timer);
	if (c->bev)
		bufferevent_free(c->bev);
	https_free(c);
	free(c);
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct agent *a = arg;
	struct ctl *c;
	int fd;

	for (int k = 0; k < 8; k++) {
		if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
			return;
		if (a->nctl >= AGENT_CTL_MAX || (c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->a = a;
		c->serial = ++a->ctl_serial;
		if ((c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
		    (c->timer = evtimer_new(a->base, on_ctl_timer, c)) == NULL) {
			if (c->bev)
				bufferevent_free(c->bev);
			else
				close(fd);
			free(c);
			continue;
		}
		a->ctls[a->nctl++] = c;
		/* A bridged application writes many frames per write; reading
		 * them in large chunks makes large sendmmsg batches. */
		bufferevent_set_max_single_read(c->bev, CTL_READ_MAX);
		bufferevent_set_max_single_write(c->bev, CTL_READ_MAX);
		bufferevent_setcb(c->bev, on_ctl_read, NULL, on_ctl_event, c);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	}
}

int
agent_ctl_listen(struct agent *a, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	char *dir = xstrdup(a->sock_path), *slash;
	mode_t old;
	int fd;

	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if (ntm_mkdirs(dir, 0700) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		free(dir);
		return -1;
	}
	free(dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(a->sock_path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket path too long: %s", a->sock_path);
		return -1;
	}
	memcpy(sun.sun_path, a->sock_path, strlen(a->sock_path));
	/* No agent answered there (checked before): a leftover socket is stale. */
	(void)unlink(a->sock_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	old = umask(077);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old);
		snprintf(err, errlen, "control socket %s: %s", a->sock_path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (chmod(a->sock_path, 0600) < 0 || listen(fd, 16) < 0) {
		snprintf(err, errlen, "control socket %s: %s", a->sock_path, strerror(errno));
		close(fd);
		unlink(a->sock_path);
		return -1;
	}
	a->lis_fd = fd;
	return 0;
}

int
agent_ctl_start(struct agent *a)
{
	if ((a->lis_ev = event_new(a->base, a->lis_fd, EV_READ | EV_PERSIST, on_accept,
	    a)) == NULL)
		return -1;
	return event_add(a->lis_ev, NULL);
}

void
agent_ctl_forget(struct agent *a)
{
	if (a->lis_fd >= 0)
		close(a->lis_fd);
	a->lis_fd = -1;
}

void
agent_ctl_stop(struct agent *a)
{
	while (a->nctl > 0)
		ctl_free(a->ctls[0]);
	if (a->lis_ev)
		event_free(a->lis_ev);
	a->lis_ev = NULL;
	if (a->lis_fd >= 0) {
		close(a->lis_fd);
		a->lis_fd = -1;
		if (a->sock_path)
			unlink(a->sock_path);
	}
}
