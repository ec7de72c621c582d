/*
 * streams.c - TCP byte streams over the tunnel: `ntm tunnel open PEER
 * PORT` and `ntm tunnel listen PORT` (docs/protocol.md §6, "Streams").
 *
 * A stream joins one application-side bufferevent to one lwIP TCP
 * connection on our vIP. The application side is one of:
 *  - SK_CTL: a control connection taken over from control.c. After the
 *    JSON line that says the stream is connected, both directions carry
 *    frames: type (1 byte), length (2 bytes, big-endian), data. 'D' carries
 *    bytes, 'F' ends the bytes of one direction (a TCP half-close), 'E'
 *    (agent to client only) carries a JSON error and ends the stream.
 *  - SK_RAW: a plain TCP socket of a port forward (forwards.c): bytes as
 *    they are; its half-close is ours, and the peer's FIN becomes
 *    shutdown(SHUT_WR); an error resets it.
 *  - SK_SOCKS: a SOCKS5 client (socks.c) after its CONNECT request:
 *    the SOCKS reply tells it the outcome, then as SK_RAW.
 * Flow control is end to end: bytes from the application wait in `tx`
 * until lwIP has room (reading stops when tx is full); bytes from the peer
 * are acknowledged to lwIP (tcp_recved, which opens the TCP window) only
 * once the application has taken them.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lwip/tcp.h"

#include "common.h"
#include "agentd.h"
#include "frame.h"
#include "stack.h"

#define FRAME_MAX	0xffff
#define TX_MAX		(256 * 1024)	/* client bytes waiting for lwIP */
#define RX_HIGH		(256 * 1024)	/* peer bytes waiting for the client */
#define STALL_MS	30000		/* unacknowledged data this long: give up */
#define POLL_HALF_S	2		/* lwIP poll every 2 x 0.5 s */
#define CLOSE_WAIT_S	10		/* for a closing client to read the rest */
#define STREAMS_LISTED	4096		/* in one `list` answer */

enum st_state { ST_CONNECTING, ST_LISTENING, ST_OPEN, ST_CLOSING };

struct stream {
	struct stream		*next, **prevp;
	struct agent		*a;
	enum st_kind		 kind;
	int			 fwd;		/* forward id, 0 if none */
	int			 app_up;	/* SK_RAW: the socket is connected */
	int			 shut_out, out_shut;	/* SK_RAW: peer's FIN to pass on */
	struct bufferevent	*bev;
	struct tcp_pcb		*pcb;		/* NULL once lwIP freed it */
	struct evbuffer		*tx;
	struct event		*timer;		/* connect timeout */
	enum st_state		 state;
	char			 peer[NTM_NAME_MAX + 1], route[16];
	int			 family;
	uint16_t		 port;
	int			 app_fin, fin_sent, peer_fin;
	uint32_t		 unacked;	/* given to the client, not tcp_recved */
	int64_t			 progress_at;
	uint64_t		 bytes_in, bytes_out;
};

static struct stream *streams;
static uint64_t opened_total;

static void st_arm(struct stream *s, struct tcp_pcb *pcb);
static void st_name_peer(struct stream *s, struct tcp_pcb *pcb);
static void st_pump(struct stream *s);

/* ---- life ------------------------------------------------------------------ */

static void
st_unlink(struct stream *s)
{
	if (s->prevp) {
		*s->prevp = s->next;
		if (s->next)
			s->next->prevp = s->prevp;
		s->prevp = NULL;
	}
}

/*
 * Lets go of the stream's pcb: a listening one is closed (lwIP takes only
 * tcp_arg and tcp_accept on a listening pcb and asserts on the other
 * callbacks, and it cannot be aborted); a connection is closed gracefully,
 * or reset when reset is set or the close fails.
 */
static void
st_drop_pcb(struct stream *s, int reset)
{
	struct tcp_pcb *pcb = s->pcb;

	if (pcb == NULL)
		return;
	s->pcb = NULL;
	tcp_arg(pcb, NULL);
	if (s->state == ST_LISTENING) {
		tcp_accept(pcb, NULL);
		tcp_close(pcb);
		return;
	}
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
	tcp_poll(pcb, NULL, 0);
	if (reset || tcp_close(pcb) != ERR_OK)
		tcp_abort(pcb);
}

static void
st_free(struct stream *s)
{
	st_unlink(s);
	st_drop_pcb(s, 0);
	if (s->timer)
		event_free(s->timer);
	if (s->tx)
		evbuffer_free(s->tx);
	if (s->bev)
		bufferevent_free(s->bev);
	agent_ip_kick(s->a);
	free(s);
}

/* Frees the stream once what was written to the client has left. */
static void
st_finish(struct stream *s)
{
	struct timeval tv = { CLOSE_WAIT_S, 0 };

	s->state = ST_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		st_free(s);
		return;
	}
	/* on_write frees it once the client has read it all; a client that
	 * does not read is dropped after a while. */
	evtimer_add(s->timer, &tv);
}

/* SK_RAW: once all is written, the peer's FIN becomes ours to the socket. */
static void
try_shut(struct stream *s)
{
	if (s->kind != SK_CTL && s->shut_out && !s->out_shut &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		shutdown(bufferevent_getfd(s->bev), SHUT_WR);
		s->out_shut = 1;
	}
}

static void
frame(struct stream *s, char type, const void *p, size_t n)
{
	uint8_t h[FRAME_HDR] = { (uint8_t)type, (uint8_t)(n >> 8), (uint8_t)n };
	struct evbuffer *out = bufferevent_get_output(s->bev);

	if (s->kind != SK_CTL) {
		if (type == 'D')
			evbuffer_add(out, p, n);
		else if (type == 'F') {
			s->shut_out = 1;
			try_shut(s);
		}
		return;
	}
	evbuffer_add(out, h, sizeof(h));
	if (n)
		evbuffer_add(out, p, n);
}

/* SOCKS5 reply (RFC 1928 §6): rep 0 success, else a failure code. */
static void
socks_reply(struct stream *s, uint8_t rep)
{
	uint8_t r[4 + 16 + 2] = { 5, rep, 0, 1 };
	size_t n = 4 + 4 + 2;

	if (rep == 0 && s->pcb) {
		uint8_t b[16];
		int v = agent_ip_from(&s->pcb->local_ip, b);

		r[3] = v == 4 ? 1 : 4;
		memcpy(r + 4, b, v == 4 ? 4 : 16);
		n = 4 + (v == 4 ? 4 : 16);
		r[n] = (uint8_t)(s->pcb->local_port >> 8);
		r[n + 1] = (uint8_t)s->pcb->local_port;
		n += 2;
	}
	bufferevent_write(s->bev, r, n);
}

/* SK_RAW/SK_SOCKS after an error: the application sees a reset. */
static void
st_reset_app(struct stream *s)
{
	struct linger l = { 1, 0 };
	int fd = bufferevent_getfd(s->bev);

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

static void
line(struct stream *s, json_t *j)
{
	char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (txt) {
		bufferevent_write(s->bev, txt, strlen(txt));
		bufferevent_write(s->bev, "\n", 1);
		free(txt);
	}
}

/* Ends the stream with an error: a JSON line before it was connected, an
 * 'E' frame after. The TCP connection is reset. */
static void
st_fail(struct stream *s, const char *code, const char *msg)
{
	json_t *j;

	log_info("stream %s:%u: %s", s->peer, s->port, msg);
	st_drop_pcb(s, 1);
	if (s->kind == SK_SOCKS && s->state == ST_CONNECTING) {
		/* 5 refused, 4 host unreachable, 1 general failure */
		socks_reply(s, !strcmp(code, "refused") ? 5 : !strcmp(code, "timeout") ? 4 : 1);
		st_finish(s);
		return;
	}
	if (s->kind != SK_CTL) {
		st_reset_app(s);
		st_free(s);
		return;
	}
	j = json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "message", msg);
	if (s->state == ST_OPEN) {
		char *txt = json_dumps(j, JSON_COMPACT);

		json_decref(j);
		if (txt)
			frame(s, 'E', txt, strlen(txt));
		free(txt);
	} else
		line(s, j);
	st_finish(s);
}

/* ---- lwIP -> client -------------------------------------------------------------- */

/* Opens the TCP window by what the client has taken. */
static void
st_ack(struct stream *s)
{
	if (s->pcb == NULL || s->state != ST_OPEN ||
	    evbuffer_get_length(bufferevent_get_output(s->bev)) >= RX_HIGH)
		return;
	while (s->unacked > 0) {
		u16_t n = s->unacked > 0xffff ? 0xffff : (u16_t)s->unacked;

		tcp_recved(s->pcb, n);
		s->unacked -= n;
	}
}

static void
st_maybe_done(struct stream *s)
{
	if (s->state != ST_OPEN || !s->peer_fin || !s->fin_sent)
		return;
	if (s->kind == SK_CTL)
		st_finish(s);	/* st_free closes the pcb gracefully */
	else if (s->out_shut)
		st_free(s);
}

static err_t
on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct stream *s = arg;

	if (s == NULL) {
		if (p) {
			tcp_recved(pcb, p->tot_len);
			pbuf_free(p);
		}
		return ERR_OK;
	}
	if (p == NULL) {
		s->peer_fin = 1;
		frame(s, 'F', NULL, 0);
		st_maybe_done(s);
		return ERR_OK;
	}
	for (struct pbuf *q = p; q; q = q->next)
		for (size_t off = 0; off < q->len; off += FRAME_MAX) {
			size_t n = q->len - off > FRAME_MAX ? FRAME_MAX : q->len - off;

			frame(s, 'D', (uint8_t *)q->payload + off, n);
		}
	s->unacked += p->tot_len;
	s->bytes_in += p->tot_len;
	s->progress_at = agent_now_ms();
	pbuf_free(p);
	st_ack(s);
	return ERR_OK;
}

/* ---- client -> lwIP ----------------------------------------------------------------- */

static void
st_pump(struct stream *s)
{
	struct evbuffer_iovec v;
	int wrote = 0;

	if (s->pcb == NULL || s->state != ST_OPEN)
		return;
	while (evbuffer_get_length(s->tx) > 0) {
		size_t room = tcp_sndbuf(s->pcb), n;

		if (room == 0 || tcp_sndqueuelen(s->pcb) >= TCP_SND_QUEUELEN - 4)
			break;
		if (evbuffer_peek(s->tx, -1, NULL, &v, 1) < 1)
			break;
		n = v.iov_len < room ? v.iov_len : room;
		if (n > 0xffff)
			n = 0xffff;
		if (tcp_write(s->pcb, v.iov_base, (u16_t)n, TCP_WRITE_FLAG_COPY |
		    (evbuffer_get_length(s->tx) > n ? TCP_WRITE_FLAG_MORE : 0)) != ERR_OK)
			break;
		evbuffer_drain(s->tx, n);
		s->bytes_out += n;
		wrote = 1;
	}
	if (s->app_fin && !s->fin_sent && evbuffer_get_length(s->tx) == 0) {
		if (tcp_shutdown(s->pcb, 0, 1) == ERR_OK) {
			s->fin_sent = 1;
			wrote = 1;
		}
	}
	if (wrote)
		tcp_output(s->pcb);
	if (evbuffer_get_length(s->tx) < TX_MAX && !s->app_fin)
		bufferevent_enable(s->bev, EV_READ);
	agent_ip_kick(s->a);
	st_maybe_done(s);
}

static err_t
on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	struct stream *s = arg;

	if (s) {
		s->progress_at = agent_now_ms();
		st_pump(s);
	}
	return ERR_OK;
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct stream *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct agent *a;
	uint8_t h[FRAME_HDR];
	size_t n;
	int type;

	if (s->kind != SK_CTL && s->state == ST_OPEN)
		evbuffer_remove_buffer(in, s->tx, evbuffer_get_length(in));
	while (s->kind == SK_CTL && evbuffer_copyout(in, h, FRAME_HDR) == FRAME_HDR) {
		if ((type = frame_client(h, evbuffer_get_length(in), s->app_fin, &n)) ==
		    FRAME_MORE)
			break;
		if (type == FRAME_BAD || s->state != ST_OPEN) {
			st_fail(s, "bad_request", "unexpected frame from the client");
			return;
		}
		evbuffer_drain(in, FRAME_HDR);
		if (type == 'F')
			s->app_fin = 1;
		else
			evbuffer_remove_buffer(in, s->tx, n);
	}
	if (evbuffer_get_length(s->tx) >= TX_MAX || s->app_fin)
		bufferevent_disable(bev, EV_READ);
	a = s->a;
	agent_batch_begin(a);
	st_pump(s);		/* may free s */
	agent_batch_end(a);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct stream *s = arg;

	if (s->state == ST_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			st_free(s);
		return;
	}
	if (s->state != ST_OPEN || s->pcb == NULL)
		return;
	try_shut(s);
	agent_batch_begin(s->a);
	st_ack(s);
	tcp_output(s->pcb);	/* a window update, if any */
	agent_ip_kick(s->a);
	agent_batch_end(s->a);
	st_maybe_done(s);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct stream *s = arg;

	if (s->kind != SK_CTL && (what & BEV_EVENT_CONNECTED)) {
		s->app_up = 1;
		if (s->state == ST_OPEN)
			bufferevent_enable(bev, EV_READ);
		return;
	}
	if (s->kind != SK_CTL && (what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    s->state == ST_OPEN) {
		/* the application's half-close: our FIN once tx is sent */
		struct agent *a = s->a;

		s->app_fin = 1;
		bufferevent_disable(bev, EV_READ);
		agent_batch_begin(a);
		st_pump(s);		/* may free s */
		agent_batch_end(a);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	/* The client went away: a finished stream closes, any other resets. */
	if (s->state == ST_OPEN && !(s->peer_fin && s->fin_sent))
		st_drop_pcb(s, 1);
	st_free(s);
}

/* ---- lwIP events ------------------------------------------------------------------ */

static void
on_err(void *arg, err_t err)
{
	struct stream *s = arg;

	if (s == NULL)
		return;
	s->pcb = NULL;		/* lwIP has freed it */
	if (s->state == ST_CONNECTING) {
		if (err == ERR_RST)
			st_fail(s, "refused", "the peer refused the connection (nothing "
			    "listens on that port)");
		else
			st_fail(s, "timeout", "the peer did not answer the connection");
	} else if (s->state == ST_OPEN)
		st_fail(s, "reset", err == ERR_RST ? "the peer reset the connection" :
		    "the connection was aborted");
}

static err_t
on_poll(void *arg, struct tcp_pcb *pcb)
{
	struct stream *s = arg;

	if (s && s->state == ST_OPEN && pcb->unacked != NULL &&
	    agent_now_ms() - s->progress_at > STALL_MS) {
		st_fail(s, "stalled", "no data acknowledged by the peer for 30 s");
		return ERR_ABRT;	/* st_fail aborted the pcb */
	}
	return ERR_OK;
}

static void
st_connected(struct stream *s)
{
	char l[64], r[64];
	uint8_t b[16];
	int v;

	s->state = ST_OPEN;
	s->progress_at = agent_now_ms();
	if (s->timer)
		evtimer_del(s->timer);
	v = agent_ip_from(&s->pcb->local_ip, b);
	inet_ntop(v == 4 ? AF_INET : AF_INET6, b, l, sizeof(l));
	v = agent_ip_from(&s->pcb->remote_ip, b);
	inet_ntop(v == 4 ? AF_INET : AF_INET6, b, r, sizeof(r));
	log_debug("stream %s: %s:%u -> %s:%u", s->peer, l, s->pcb->local_port, r,
	    s->pcb->remote_port);
	if (s->kind == SK_SOCKS)
		socks_reply(s, 0);
	if (s->kind != SK_CTL) {
		if (s->app_up)
			bufferevent_enable(s->bev, EV_READ);
		on_read(s->bev, s);
		return;
	}
	line(s, json_pack("{s:b, s:s, s:s, s:s, s:i, s:s, s:i, s:s}", "ok", 1,
	    "event", "connected", "peer", s->peer, "local_vip", l,
	    "local_port", s->pcb->local_port, "remote_vip", r, "remote_port",
	    s->pcb->remote_port, "route", s->route));
	bufferevent_enable(s->bev, EV_READ);
	on_read(s->bev, s);	/* frames that came early */
}

static err_t
on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct stream *s = arg;

	if (s)
		st_connected(s);
	return ERR_OK;
}

static void
st_arm(struct stream *s, struct tcp_pcb *pcb)
{
	s->pcb = pcb;
	tcp_arg(pcb, s);
	tcp_recv(pcb, on_recv);
	tcp_sent(pcb, on_sent);
	tcp_err(pcb, on_err);
	tcp_poll(pcb, on_poll, POLL_HALF_S);
	tcp_nagle_disable(pcb);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	if (s->state == ST_CONNECTING)
		st_fail(s, "timeout", "the connection was not answered in time");
	else if (s->state == ST_CLOSING)
		st_free(s);
}

static struct stream *
st_new(struct agent *a, struct bufferevent *bev, enum st_kind kind)
{
	struct stream *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->tx = evbuffer_new()) == NULL ||
	    (s->timer = evtimer_new(a->base, on_timeout, s)) == NULL) {
		if (s && s->tx)
			evbuffer_free(s->tx);
		free(s);
		bufferevent_free(bev);
		return NULL;
	}
	s->a = a;
	s->bev = bev;
	s->kind = kind;
	s->app_up = 1;
	opened_total++;
	s->next = streams;
	if (streams)
		streams->prevp = &s->next;
	streams = s;
	s->prevp = &streams;
	bufferevent_setcb(bev, on_read, on_write, on_event, s);
	/* the write callback runs when the client has taken all but this much */
	bufferevent_setwatermark(bev, EV_WRITE, RX_HIGH / 2, 0);
	bufferevent_disable(bev, EV_READ);
	return s;
}

/* ---- the agent's side ------------------------------------------------------------- */

void
agent_stream_connect(struct agent *a, struct bufferevent *bev, enum st_kind kind, int fwd,
    struct tun *t, int family, uint16_t port, int64_t timeout_ms)
{
	struct stream *s = st_new(a, bev, kind);
	struct tcp_pcb *pcb;
	ip_addr_t local, remote;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	if (s == NULL)
		return;
	s->fwd = fwd;
	snprintf(s->peer, sizeof(s->peer), "%s", t->peer);
	snprintf(s->route, sizeof(s->route), "%s", t->p.kind == NTM_ROUTE_RELAY ? "relay" :
	    t->p.kind == NTM_ROUTE_LOCAL ? "local" : "direct");
	s->family = family;
	s->port = port;
	s->state = ST_CONNECTING;
	agent_ip_addr(family, family == 4 ? a->vip4 : a->vip6, &local);
	agent_ip_addr(family, family == 4 ? t->pv4 : t->pv6, &remote);
	if ((pcb = tcp_new_ip_type(family == 4 ? IPADDR_TYPE_V4 : IPADDR_TYPE_V6)) == NULL) {
		st_fail(s, "internal", "out of memory");
		return;
	}
	st_arm(s, pcb);
	if (tcp_bind(pcb, &local, 0) != ERR_OK ||
	    tcp_connect(pcb, &remote, port, on_connected) != ERR_OK) {
		st_fail(s, "internal", "cannot start the connection");
		return;
	}
	evtimer_add(s->timer, &tv);
	agent_ip_kick(a);
}

static err_t
on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct stream *s = arg;

	if (s == NULL || err != ERR_OK || pcb == NULL)
		return ERR_VAL;
	/* One connection per listen, as with nc -l: the listener goes. */
	tcp_arg(s->pcb, NULL);
	tcp_accept(s->pcb, NULL);
	tcp_close(s->pcb);
	st_arm(s, pcb);
	st_name_peer(s, pcb);
	st_connected(s);
	return ERR_OK;
}

int
agent_stream_listen(struct agent *a, struct bufferevent *bev, uint16_t port,
    char *err, size_t errlen)
{
	struct stream *s;
	struct tcp_pcb *pcb, *lpcb;

	if (agent_stream_holder(port, err, errlen))
		return -1;
	if ((pcb = agent_ip_listen(port, 1)) == NULL) {
		snprintf(err, errlen, "cannot listen on TCP port %u of our vIPs", port);
		return -1;
	}
	lpcb = pcb;
	if ((s = st_new(a, bev, SK_CTL)) == NULL) {
		tcp_close(lpcb);
		return 0;	/* the connection is gone */
	}
	s->port = port;
	s->state = ST_LISTENING;
	snprintf(s->peer, sizeof(s->peer), "-");
	s->pcb = lpcb;
	tcp_arg(lpcb, s);
	tcp_accept(lpcb, on_accept);
	line(s, json_pack("{s:b, s:s, s:i, s:s, s:s}", "ok", 1, "event", "listening",
	    "port", (int)port, "vip4", a->s.vip4, "vip6", a->s.vip6));
	bufferevent_enable(bev, EV_READ);	/* to notice the client leaving */
	return 0;
}

/* The peer of an accepted connection (for names in lists and logs). */
static void
st_name_peer(struct stream *s, struct tcp_pcb *pcb)
{
	struct agent *a = s->a;
	uint8_t b[16];
	int v = agent_ip_from(&pcb->remote_ip, b);

	s->family = v;
	for (int i = 0; i < a->ntun; i++) {
		struct tun *t = a->tuns[i];

		if (v == 4 ? t->has4 && memcmp(t->pv4, b, 4) == 0 :
		    t->has6 && memcmp(t->pv6, b, 16) == 0) {
			snprintf(s->peer, sizeof(s->peer), "%s", t->peer);
			snprintf(s->route, sizeof(s->route), "%s", t->p.kind == NTM_ROUTE_RELAY ?
			    "relay" : t->p.kind == NTM_ROUTE_LOCAL ? "local" : "direct");
			return;
		}
	}
	inet_ntop(v == 4 ? AF_INET : AF_INET6, b, s->peer, sizeof(s->peer));
}

int
agent_stream_adopt(struct agent *a, struct bufferevent *bev, struct tcp_pcb *pcb, int fwd)
{
	struct stream *s = st_new(a, bev, SK_RAW);

	if (s == NULL)
		return -1;
	s->fwd = fwd;
	s->app_up = 0;		/* connecting; on_event says when */
	s->port = pcb->local_port;
	st_name_peer(s, pcb);
	st_arm(s, pcb);
	st_connected(s);
	return 0;
}

int
agent_stream_holder(uint16_t port, char *buf, size_t len)
{
	for (struct stream *s = streams; s; s = s->next)
		if (s->state == ST_LISTENING && s->port == port) {
			snprintf(buf, len, "TCP port %u is held by another 'ntm tunnel listen %u' "
			    "(waiting for a connection)", port, port);
			return 1;
		}
	return 0;
}

int
agent_stream_count(int fwd, uint64_t *total)
{
	int n = 0;

	for (struct stream *s = streams; s; s = s->next)
		if (s->fwd == fwd)
			n++;
	if (total)
		*total = opened_total;
	return n;
}

void
agent_stream_tunnel_gone(struct agent *a, struct tun *t, const char *why)
{
	struct stream *s, *next;

	for (s = streams; s; s = next) {
		uint8_t b[16];
		int v;

		next = s->next;
		if (s->state != ST_OPEN && s->state != ST_CONNECTING)
			continue;
		if (s->pcb == NULL)
			continue;
		v = agent_ip_from(&s->pcb->remote_ip, b);
		if (v == 4 ? t->has4 && memcmp(t->pv4, b, 4) == 0 :
		    t->has6 && memcmp(t->pv6, b, 16) == 0)
			st_fail(s, "tunnel_closed", why);
	}
}

void
agent_stream_stop_all(struct agent *a)
{
	while (streams) {
		struct stream *s = streams;

		st_drop_pcb(s, 1);	/* the peer hears a reset */
		st_free(s);
	}
}

json_t *
agent_stream_json(struct agent *a)
{
	json_t *arr = json_array();
	int n = 0;

	/* at most STREAMS_LISTED, so that the answer stays one bounded line */
	for (struct stream *s = streams; s && n++ < STREAMS_LISTED; s = s->next)
		json_array_append_new(arr, json_pack("{s:s, s:i, s:i, s:s, s:I, s:I}",
		    "peer", s->peer, "port", s->port,
		    "mss", s->pcb && s->state == ST_OPEN ? (int)s->pcb->mss : 0,
		    "state", s->state == ST_LISTENING ? "listening" :
		    s->state == ST_CONNECTING ? "connecting" :
		    s->state == ST_OPEN ? "open" : "closing",
		    "bytes_in", (json_int_t)s->bytes_in, "bytes_out", (json_int_t)s->bytes_out));
	return arr;
}
