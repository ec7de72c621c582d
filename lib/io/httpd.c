/*
 * httpd.c - HTTPS server glue: evhttp (libevent 2.1) over bufferevent_openssl,
 * exact-path routes from the daemons' static tables, JSON bodies, signed
 * server requests and JSON error bodies. Every check a route declares (body
 * limit, signature, caller role, bearer token, JSON body, protocol version)
 * is made here, once, before its handler runs (route_admit).
 *
 * Lifetime of a request: evhttp hands us a complete request (or, on a route
 * that streams its body, its head, the body following: see struct conn
 * below); we wrap it in a heap struct ntm_req that lives until exactly one
 * ntm_reply_* call. If the
 * client goes away meanwhile, libevent 2.1 detaches the evhttp_request from
 * its connection instead of freeing it (evhttp_connection_incoming_fail with
 * userdone == 0), and evhttp_send_reply on a detached request just frees it,
 * so a late reply is safe. ntm_httpd_free() frees evhttp and with it every
 * request still held, so it first detaches the live ntm_reqs: replying to them
 * afterwards only frees them.
 *
 * Plain HTTP on the TLS port: OpenSSL recognises a first record that is not
 * TLS (SSL_R_HTTP_REQUEST for "GET "/"POST " etc., SSL_R_WRONG_VERSION_NUMBER
 * for other text on the first record) and fails the handshake without sending
 * an alert. An SSL info callback sees that failure while the socket is still
 * open, drains what the client sent and writes a plain 400 tls_required
 * response to the socket; libevent then closes the connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <malloc.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "ntm.h"
#include "msg.h"
#include "sighdr.h"

#define HTTPD_TIMEOUT_S		30
#define HTTPD_HEADERS_MAX	(16 * 1024)
/* Signing certificates the replay cache follows at once (live entries). */
#define HTTPD_REPLAY_PEERS	4096
#define ADDR_BUCKETS		256
#define HTTPD_TICK_S		10	/* summaries of rate-limited log lines */
#define HTTPD_TRIM_CONNS	64	/* a flood, for giving memory back */

struct route {
	struct ntm_http_route r;		/* method and path: our copies */
	void		*arg;
};

struct ntm_httpd {
	struct event_base	*base;
	struct evhttp		*http;
	SSL_CTX			*ctx;
	size_t			 max_body;
	struct route		*routes;
	size_t			 nroutes;
	int			 has_trust;
	uint8_t			 as_pk[NTM_SIGN_PK];
	ntm_cert_check_fn	*check;
	void			*check_arg;
	ntm_bearer_fn		*bearer;
	void			*bearer_arg;
	ntm_bearer_precheck_fn	*precheck;	/* the token, before a large body */
	void			*precheck_arg;
	struct ntm_replay	*replay;
	struct ntm_req		*live;		/* requests awaiting a reply */
	struct ntm_httpd_limits	 lim;
	struct conn		*conns;		/* open connections */
	unsigned		 nconns;
	unsigned		 nopen;		/* admitted and not closing */
	struct addr_slot	*addrs[ADDR_BUCKETS];	/* open connections per source */
	struct evhttp_bound_socket **bound;
	size_t			 nbound;
	int			 paused;	/* listeners off: at CONNS_HARD_MAX */
	struct event		*tick;		/* log summaries */
	struct lingerer		*lingers;	/* refused sockets being drained */
	unsigned		 nlingers;
	uint64_t		 body_mem;	/* declared bodies being read or handled */
	unsigned		 peak_conns;	/* since memory was last trimmed */
	ntm_httpd_observe_fn	*observe;	/* each request as it ends */
	void			*observe_arg;
	int			 has_id;	/* answers to signed requests signed */
	char			 id_name[NTM_NAME_MAX + 1];	/* and NTM-To checked */
	uint8_t			 id_sk[NTM_SIGN_SK];
	char			 id_cert[NTM_B64_LEN(NTM_CERT_MAX)];
};

struct ntm_req {
	struct ntm_httpd	*h;		/* NULL once the server is gone */
	struct evhttp_request	*ev;		/* NULL once the server is gone */
	struct ntm_req		*prev, *next;
	const char		*method;	/* static */
	char			*path;
	uint8_t			*body;		/* NUL-terminated copy */
	size_t			 len;
	json_t			*json;
	int			 has_cert;
	struct ntm_cert		 cert;
	void			*auth;		/* from the bearer hook */
	void			(*auth_free)(void *);
	char			 peer[INET6_ADDRSTRLEN + 8];
	int			 has_query;
	struct evkeyvalq	 query;		/* parsed on first ntm_req_query */
	uint64_t		 left;		/* streamed reply: bytes still to send */
	int			 stream_err;
	ntm_stream_fn		*stream_rd;
	ntm_stream_end_fn	*stream_end;
	void			*stream_arg;
	uint64_t		 reserved;	/* of h->body_mem, for the body */
	uint64_t		 t0_us;		/* arrival, monotonic */
	size_t			 route;		/* index in h->routes, or NTM_HTTPD_NO_ROUTE */
	int			 status;	/* answered; 0 before */
	ntm_req_gone_fn		*gone;		/* the client went away first */
	void			*gone_arg;
	struct event		*gone_ev;	/* EV_CLOSED on its socket */
	/* A streamed body (NTM_ROUTE_STREAM): received into sbuf by the
	 * connection (sconn, NULL once it is gone), handed to body_fn. */
	int			 stream;
	uint64_t		 body_len;	/* declared */
	struct evbuffer		*sbuf;
	struct conn		*sconn;
	int			 body_end;	/* every byte is in sbuf or delivered */
	int			 body_gone;	/* the connection went first */
	int			 body_out;	/* a piece is with body_fn */
	int			 body_last;	/* the last call was made */
	ntm_body_fn		*body_fn;
	void			*body_arg;
	struct event		*body_ev;	/* delivers the next piece */
};

static int plain_ex_idx = -1;

static void req_body_kick(struct ntm_req *r);

struct conn;
struct addr_slot;
struct lingerer;

/* ---- connections: caps, deadlines, the request head ---------------------- */

/*
 * evhttp 2.1 has no hook between accepting a connection and handing a whole
 * request to httpd_gencb: no connection cap, no deadline for the request
 * head (its timeout is per read, so a header line every few seconds keeps a
 * connection for ever), and it reads a body up to its own limit before any
 * route is known. So each connection carries a struct conn:
 *
 * - made in httpd_bevcb (once per accepted connection) and hung on the SSL
 *   object as ex_data, whose free callback (SSL_free, when the bufferevent
 *   goes) is where the connection is counted out;
 * - admitted from an event activated in httpd_bevcb, which runs once evhttp
 *   has given the bufferevent its socket: the source address is counted
 *   there, and a source over its cap is refused;
 * - fed every decrypted byte by a callback on the bufferevent's input
 *   buffer, which runs before evhttp's read callback parses them. It finds
 *   the end of each request head, its method, path, Content-Length and
 *   Transfer-Encoding, and sets the connection's body limit in evhttp to
 *   the route's, so evhttp answers 413 on the Content-Length alone, before
 *   the body is read;
 * - watched by one timer: the deadline of the handshake and head, then of
 *   the body (body_timeout_s plus one second per body_min_rate bytes);
 * - for a route that streams its body (NTM_ROUTE_STREAM), the one that
 *   takes the body from evhttp: 2.1 has no hook to take an incoming body
 *   as it comes (its chunk callback can only be set on requests it makes),
 *   so the head's Content-Length digits are overwritten with 0s while the
 *   head is still in the input buffer. evhttp then hands the request over
 *   at once (httpd_gencb, which links it to the connection), and the body's
 *   bytes are moved out of the input buffer as they arrive, before evhttp
 *   sees them, into the request's window (req_body_cb hands it over in
 *   pieces; reading pauses while a window waits). Until the answer, our
 *   read callback stands in for evhttp's, which would abort on bytes
 *   after a request it thinks complete.
 *
 * A connection is closed by shutting its socket down: libevent then sees
 * end of file and frees it by its own path, which also copes with a
 * request a handler still holds.
 */
#define CONN_LINE_MAX	1024	/* what we keep of a head line */
/* Sockets held at most, those being closed or refused included. */
#define CONNS_HARD_MAX(max)	((max) + (max) / 8 + 16)

enum conn_state { C_IDLE, C_HEAD, C_BODY, C_DONE };

struct addr_slot {
	struct addr_slot	*next;
	uint8_t			 key[17];	/* family, then 4 or 8 bytes */
	unsigned		 n;
};

struct conn {
	struct ntm_httpd	*h;		/* NULL once the server is gone */
	struct conn		*prev, *next;
	struct bufferevent	*bev;
	struct event		*tm;
	struct addr_slot	*slot;		/* counted source, once admitted */
	int			 admitted;
	int			 open;		/* counted in h->nopen */
	enum conn_state		 st;
	uint64_t		 start_ms;	/* accept, or first byte of a head */
	uint64_t		 deadline_ms;
	uint64_t		 body_left, body_got;
	size_t			 head_bytes;
	int			 nlines;
	size_t			 linelen;
	char			 line[CONN_LINE_MAX];
	char			 method[8];
	char			 path[256];
	int64_t			 clen;		/* -1: none */
	int			 chunked;	/* or a Content-Length we cannot read */
	char			 bearer[CONN_LINE_MAX];	/* "Authorization: Bearer" token; "" none */
	int			 trunc;		/* this line is longer than line[] */
	/* What the refusal said, for the JSON answer (httpd_outbuf_cb). */
	int64_t			 over_len;	/* declared length over... */
	size_t			 over_max;	/* ...this limit; -1: none */
	int			 linger_fd;	/* a dup of the socket, or -1 */
	uint64_t		 reserved;	/* of h->body_mem, for this body */
	/* Streamed bodies: the head's Content-Length is made 0 for evhttp
	 * (cl_abs, cl_ndig: where its digits are), so evhttp hands the
	 * request over at once, and the body bytes are taken out of the
	 * input buffer before evhttp sees them. Positions count the bytes
	 * evhttp sees (vis_total of them so far; front_abs is the first
	 * byte in the input buffer). */
	int			 stream;	/* this body is streamed */
	struct evbuffer		*sbuf;		/* its bytes until handed over */
	struct ntm_req		*sreq;		/* ...to this request */
	unsigned		 heads, dispatched, stream_seq;
	uint64_t		 stream_len;
	int			 stream_done;	/* every byte is in sbuf */
	uint64_t		 vis_total, front_abs, feed_abs;
	uint64_t		 cl_abs;
	size_t			 cl_ndig;	/* 0: none seen */
	int			 in_cb;
	int			 expect;	/* "Expect: 100-continue" */
	bufferevent_event_cb	 ev_event;	/* evhttp's, while a body streams */
	void			*ev_arg;
	struct event		*drain;		/* records read ahead, not yet taken */
};

/*
 * After a refusal on the Content-Length, the client may still be sending
 * its body when evhttp closes the socket; closing a socket with unread data
 * makes the kernel send RST, which can destroy the answer before the client
 * reads it. So the socket lives on in a dup: once evhttp has written the
 * answer and let go, we shut our side down and read and drop what still
 * comes, for at most HTTPD_LINGER_S (and HTTPD_LINGER_MAX sockets at once).
 */
#define HTTPD_LINGER_S		2
#define HTTPD_LINGER_MAX	256

struct lingerer {
	struct ntm_httpd	*h;
	struct lingerer		*prev, *next;
	struct event		*ev;
	int			 fd;
};

static int conn_ex_idx = -1;

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void
ntm_log_rl(int level, const char *kind, const char *source, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ntm_vlog_rl_at(mono_ms(), level, kind, source, fmt, ap);
	va_end(ap);
}

void
ntm_log_rl_flush(void)
{
	ntm_log_rl_flush_at(mono_ms());
}

static unsigned
addr_hash(const uint8_t *key)
{
	unsigned x = 2166136261u;

	for (size_t i = 0; i < 17; i++)
		x = (x ^ key[i]) * 16777619u;
	return x % ADDR_BUCKETS;
}

/* The key of a source: an IPv4 address (also v4-mapped), or an IPv6 /64. */
static int
addr_key(int fd, uint8_t key[17], char *txt, size_t tlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	memset(key, 0, 17);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return -1;
	if (ss.ss_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	} else if (ss.ss_family == AF_INET6) {
		const uint8_t *a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&ss)->sin6_addr)) {
			key[0] = 4;
			memcpy(key + 1, a + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, a, 8);
		}
	} else {
		return -1;
	}
	if (key[0] == 4)
		inet_ntop(AF_INET, key + 1, txt, (socklen_t)tlen);
	else {
		uint8_t a[16] = { 0 };

		memcpy(a, key + 1, 8);
		inet_ntop(AF_INET6, a, txt, (socklen_t)tlen);
		strncat(txt, "/64", tlen - strlen(txt) - 1);
	}
	return 0;
}

static void
listeners_enable(struct ntm_httpd *h, int on)
{
	if (h->paused == !on)
		return;
	h->paused = !on;
	for (size_t i = 0; i < h->nbound; i++) {
		struct evconnlistener *l = evhttp_bound_socket_get_listener(h->bound[i]);

		if (l)
			(void)(on ? evconnlistener_enable(l) : evconnlistener_disable(l));
	}
	if (!on)
		ntm_log_rl(NTM_LOG_WARN, "httpd: at the cap", NULL,
		    "httpd: %u sockets open, past http_max_conns by as many as may be "
		    "closing: not accepting until one closes", h->nconns);
}

/* Closes the connection: libevent sees end of file and frees it. */
static void
conn_close(struct conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	if (c->open && c->h) {
		c->open = 0;
		c->h->nopen--;
	}
	c->st = C_DONE;
	if (c->tm)
		event_del(c->tm);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

static void
conn_arm(struct conn *c, uint64_t deadline_ms)
{
	uint64_t now = mono_ms();
	uint64_t d = deadline_ms > now ? deadline_ms - now : 0;
	struct timeval tv = { (time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000 };

	c->deadline_ms = deadline_ms;
	event_add(c->tm, &tv);
}

/*
 * At http_max_conns, a fair share: a newcomer from source mine (NULL: none
 * open) takes the place of the oldest open connection of the source that
 * holds the most, when that one holds at least two more than mine; else it
 * is refused. Sources that hold many connections cannot then keep one that
 * holds few out: they give up places until all hold about as many. 0 (a
 * place was made) or -1.
 */
static int
conn_make_room(struct ntm_httpd *h, const struct addr_slot *mine, const char *txt)
{
	struct addr_slot *big = NULL;
	struct conn *victim = NULL;
	unsigned m = mine ? mine->n : 0;

	for (unsigned b = 0; b < ADDR_BUCKETS; b++)
		for (struct addr_slot *s = h->addrs[b]; s; s = s->next)
			if (big == NULL || s->n > big->n)
				big = s;
	if (big == NULL || big->n < m + 2) {
		ntm_log_rl(NTM_LOG_WARN, "httpd: at the cap", txt, "httpd: connection "
		    "from %s refused: %u connections open (http_max_conns), none from a "
		    "source holding more", txt, h->nopen);
		return -1;
	}
	/* h->conns is newest first: the last match is the oldest. */
	for (struct conn *c = h->conns; c; c = c->next)
		if (c->slot == big && c->open)
			victim = c;
	if (victim == NULL)
		return -1;
	ntm_log_rl(NTM_LOG_WARN, "httpd: at the cap: a connection of the source "
	    "holding the most closed", txt, "httpd: %u connections open "
	    "(http_max_conns): one of a source holding %u closed for one from %s", h->nopen,
	    big->n, txt);
	conn_close(victim);
	return 0;
}

static void
conn_admit(struct conn *c)
{
	struct ntm_httpd *h = c->h;
	char txt[INET6_ADDRSTRLEN + 4] = "?";
	uint8_t key[17];
	struct addr_slot *s;
	unsigned b;
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	c->admitted = 1;
	if (fd < 0 || addr_key(fd, key, txt, sizeof(txt)) < 0) {
		conn_close(c);
		return;
	}
	b = addr_hash(key);
	for (s = h->addrs[b]; s; s = s->next)
		if (memcmp(s->key, key, sizeof(key)) == 0)
			break;
	if (s && s->n >= h->lim.max_conns_per_addr) {
		ntm_log_rl(NTM_LOG_WARN, "httpd: connection refused: over "
		    "http_max_conns_per_addr", txt, "httpd: connection from %s "
		    "refused: %u open from it (http_max_conns_per_addr)", txt, s->n);
		conn_close(c);
		return;
	}
	if (h->nopen >= h->lim.max_conns && conn_make_room(h, s, txt) < 0) {
		conn_close(c);
		return;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			conn_close(c);
			return;
		}
		memcpy(s->key, key, sizeof(key));
		s->next = h->addrs[b];
		h->addrs[b] = s;
	}
	s->n++;
	c->slot = s;
	c->open = 1;
	h->nopen++;
	c->st = C_HEAD;
	conn_arm(c, c->start_ms + (uint64_t)h->lim.header_timeout_s * 1000);
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct ntm_httpd *h = c->h;
	char txt[INET6_ADDRSTRLEN + 4] = "?";
	uint8_t key[17];

	if (h == NULL || c->st == C_DONE)
		return;
	if (!c->admitted) {
		conn_admit(c);
		return;
	}
	if (c->st != C_HEAD && c->st != C_BODY)
		return;
	if (mono_ms() < c->deadline_ms) {	/* the body's deadline moved */
		conn_arm(c, c->deadline_ms);
		return;
	}
	/* A request a handler holds: evhttp reads no more until it is
	 * answered, so bytes after it wait through no fault of the client. */
	if (!(bufferevent_get_enabled(c->bev) & EV_READ)) {
		conn_arm(c, mono_ms() + 1000);
		return;
	}
	fd = bufferevent_getfd(c->bev);
	if (fd >= 0)
		(void)addr_key(fd, key, txt, sizeof(txt));
	if (c->st == C_HEAD)
		ntm_log_rl(NTM_LOG_INFO, "httpd: closed: handshake and head not done "
		    "within http_header_timeout_s", txt, "httpd: connection from %s "
		    "closed: TLS handshake and request head not done within %u s",
		    txt, h->lim.header_timeout_s);
	else
		ntm_log_rl(NTM_LOG_INFO, "httpd: closed: body slower than "
		    "http_body_min_rate", txt, "httpd: connection from %s closed: "
		    "%llu of %llu body bytes in time (http_body_min_rate %u)", txt,
		    (unsigned long long)c->body_got,
		    (unsigned long long)(c->body_got + c->body_left),
		    h->lim.body_min_rate);
	conn_close(c);
}

/* The body limit of a request, from the route table: the route's, the
 * server's, or NTM_BODY_MAX for a request no route takes. */
static size_t
conn_limit(const struct ntm_httpd *h, const char *method, const char *path,
    unsigned *flags)
{
	size_t lim = h->max_body < NTM_BODY_MAX ? h->max_body : NTM_BODY_MAX;

	*flags = 0;
	for (size_t i = 0; i < h->nroutes; i++) {
		const struct ntm_http_route *rt = &h->routes[i].r;

		if (strcmp(rt->path, path) != 0 || strcmp(rt->method, method) != 0)
			continue;
		*flags = rt->flags;
		return rt->body_max && rt->body_max < h->max_body ? rt->body_max :
		    h->max_body;
	}
	return lim;
}

/* The memory a body takes while it is read: all of it, or for a streamed
 * one the window being read and the piece being handled. */
static uint64_t
conn_need(const struct conn *c, unsigned flags)
{
	return (flags & NTM_ROUTE_STREAM) ? 2 * (uint64_t)NTM_HTTPD_STREAM_WINDOW + 65536 :
	    (uint64_t)c->clen;
}

/*
 * TLS read ahead (httpd_bevcb). A read may leave whole records in
 * OpenSSL's buffer, where bufferevent_openssl (2.1) does not look: it
 * stops when SSL_pending() is 0, and the socket, now empty, will not wake
 * it. So wherever records may be left behind (after a read, the
 * handshake, an answer, reading turned back on), conn_drain_kick makes
 * conn_drain_cb run once the loop is back: it takes them, at most
 * HTTPD_DRAIN_RECORDS a turn, into the input buffer, as libevent would
 * have, and runs the read callbacks.
 */
#define HTTPD_DRAIN_RECORDS	64
/* OpenSSL's read buffer while a body streams (else its own, ~17 KiB). */
#define HTTPD_STREAM_RBUF	(64 * 1024)

static void
conn_rbuf(struct conn *c, size_t len)
{
	SSL *ssl = c->bev ? bufferevent_openssl_get_ssl(c->bev) : NULL;

	if (ssl)
		SSL_set_default_read_buffer_len(ssl, len);
}

static void
conn_drain_kick(struct conn *c)
{
	SSL *ssl;

	if (c->drain && c->bev && (ssl = bufferevent_openssl_get_ssl(c->bev)) &&
	    SSL_has_pending(ssl))
		event_active(c->drain, EV_READ, 1);
}

/* A bufferevent being freed has no callbacks left (bufferevent_free):
 * nothing is read into it any more, and nothing may take a reference on
 * it (bufferevent_trigger would have it freed twice). */
static bufferevent_data_cb
conn_readcb(struct conn *c, void **arg)
{
	bufferevent_data_cb rd;
	bufferevent_event_cb ev;

	bufferevent_getcb(c->bev, &rd, NULL, &ev, arg);
	return rd != NULL && ev != NULL ? rd : NULL;
}

static void
conn_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v;
	bufferevent_data_cb rd;
	void *rdarg;
	int i, n, e, got = 0;

	for (i = 0; i < HTTPD_DRAIN_RECORDS && ssl && SSL_has_pending(ssl) &&
	    SSL_is_init_finished(ssl) && conn_readcb(c, &rdarg) != NULL &&
	    (bufferevent_get_enabled(c->bev) & EV_READ); i++) {
		if (evbuffer_reserve_space(in, 16384, &v, 1) < 1)
			break;
		ERR_clear_error();
		n = SSL_read(ssl, v.iov_base, (int)v.iov_len);
		if (n <= 0) {
			v.iov_len = 0;
			evbuffer_commit_space(in, &v, 0);
			e = SSL_get_error(ssl, n);
			ERR_clear_error();
			/* Wanting the socket is libevent's to wait for; the
			 * end or an error closes, as libevent would. */
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				conn_close(c);
			break;
		}
		v.iov_len = (size_t)n;
		evbuffer_commit_space(in, &v, 1);
		got = 1;
	}
	/* What libevent does after a read: the read callback (evhttp's, or
	 * stream_read_cb), called here without bufferevent_trigger. */
	if (got && (rd = conn_readcb(c, &rdarg)) != NULL)
		rd(c->bev, rdarg);
}

/*
 * A streamed body: writes 0s over the Content-Length's digits, still in the
 * input buffer (evhttp reads the head only after this callback), so evhttp
 * takes the request as bodiless and hands it over at once. -1 when they are
 * no longer there.
 */
static int
conn_zero_length(struct conn *c)
{
	struct evbuffer *buf = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v[4];
	struct evbuffer_ptr pos;
	size_t left = c->cl_ndig, off;
	int n;

	if (c->cl_ndig == 0 || c->cl_abs < c->front_abs)
		return -1;
	off = (size_t)(c->cl_abs - c->front_abs);
	if (off + c->cl_ndig > evbuffer_get_length(buf) ||
	    evbuffer_ptr_set(buf, &pos, off, EVBUFFER_PTR_SET) < 0 ||
	    (n = evbuffer_peek(buf, (ev_ssize_t)c->cl_ndig, &pos, v, 4)) < 1 || n > 4)
		return -1;
	for (int i = 0; i < n && left > 0; i++) {
		size_t k = v[i].iov_len < left ? v[i].iov_len : left;

		memset(v[i].iov_base, '0', k);
		left -= k;
	}
	if (left)
		return -1;
	c->stream = 1;
	conn_rbuf(c, HTTPD_STREAM_RBUF);
	return 0;
}

/* The request head is complete: set evhttp's body limit for it. */
static void
conn_head_done(struct conn *c)
{
	struct ntm_httpd *h = c->h;
	struct evhttp_connection *evcon = NULL;
	bufferevent_data_cb rd;
	unsigned flags;
	size_t lim = conn_limit(h, c->method, c->path, &flags);
	void *cbarg = NULL;

	c->heads++;
	if (c->stream)
		conn_rbuf(c, 0);
	c->stream = 0;

	/* evhttp gives its connection as the bufferevent's callback
	 * argument (only evhttp sets callbacks on this bufferevent). */
	bufferevent_getcb(c->bev, &rd, NULL, NULL, &cbarg);
	if (rd && cbarg && evhttp_connection_get_bufferevent(cbarg) == c->bev)
		evcon = cbarg;
	c->over_len = -1;
	if (c->reserved) {		/* a body that never reached a handler */
		h->body_mem -= c->reserved;
		c->reserved = 0;
	}
	if (c->chunked) {
		/* Every client sends Content-Length; a chunked body would be
		 * read before its length is known. */
		lim = 0;
		c->over_len = -2;
	} else if (c->clen > 0 && (uint64_t)c->clen > lim) {
		c->over_len = c->clen;
		c->over_max = lim;
	} else if ((flags & NTM_ROUTE_BEARER) && h->precheck &&
	    c->clen > NTM_HTTPD_PRECHECK_BODY &&
	    (c->bearer[0] == '\0' || h->precheck(c->bearer, h->precheck_arg) < 0)) {
		/* A large body is read only for a token that checks out:
		 * memory is not spent on anonymous bodies. */
		lim = 0;
		c->over_len = -4;
	} else if (c->clen > 0 && h->body_mem + conn_need(c, flags) > h->lim.body_mem_max) {
		/* Bodies held at once are bounded, whoever sends them. */
		char txt[INET6_ADDRSTRLEN + 4] = "?";
		uint8_t key[17];

		(void)addr_key(bufferevent_getfd(c->bev), key, txt, sizeof(txt));
		ntm_log_rl(NTM_LOG_WARN, "httpd: busy: bodies at http_body_mem_max", txt,
		    "httpd: %lld-byte body from %s refused: %llu bytes of bodies held "
		    "(http_body_mem_max)", (long long)c->clen, txt,
		    (unsigned long long)h->body_mem);
		lim = 0;
		c->over_len = -3;
	} else if (c->clen > 0 && (flags & NTM_ROUTE_STREAM) && c->sbuf == NULL &&
	    (c->sbuf = evbuffer_new()) == NULL) {
		lim = 0;
		c->over_len = -3;
	} else if (c->clen > 0 && (flags & NTM_ROUTE_STREAM) && conn_zero_length(c) < 0) {
		/* The Content-Length went to evhttp with an earlier piece of
		 * the head: it would read the whole body into memory. */
		lim = 0;
		c->over_len = -5;
	} else if (c->clen > 0) {
		c->reserved = conn_need(c, flags);
		h->body_mem += c->reserved;
		if (c->stream) {
			c->stream_seq = c->heads;
			c->stream_len = (uint64_t)c->clen;
			c->stream_done = 0;
		}
	}
	if (evcon)
		evhttp_connection_set_max_body_size(evcon, (ev_ssize_t)lim);
	if (c->over_len != -1 && c->linger_fd < 0)
		c->linger_fd = fcntl(bufferevent_getfd(c->bev), F_DUPFD_CLOEXEC, 0);
	if (c->over_len != -1) {
		/* Refused: evhttp answers and closes. What follows is the
		 * body it will not read, never another head to parse (one
		 * could otherwise set a larger limit before evhttp reads). */
		c->st = C_DONE;
		event_del(c->tm);
	} else if (c->clen > 0) {
		c->st = C_BODY;
		c->body_left = (uint64_t)c->clen;
		c->body_got = 0;
		c->start_ms = mono_ms();
		conn_arm(c, c->start_ms + (uint64_t)h->lim.body_timeout_s * 1000);
	} else {
		c->st = C_IDLE;
		event_del(c->tm);
	}
}

static void
conn_line(struct conn *c)
{
	char *l = c->line, *v;
	uint64_t line_abs = c->feed_abs - c->linelen;	/* feed_abs: its '\n' */

	c->line[c->linelen] = '\0';
	if (c->linelen && c->line[c->linelen - 1] == '\r')
		c->line[--c->linelen] = '\0';
	if (c->nlines++ == 0) {
		/* METHOD SP target SP version; the target's path, without
		 * query, also from an absolute form (scheme://host/path). */
		char *sp = strchr(l, ' '), *t, *e;

		if (sp == NULL)
			return;
		snprintf(c->method, sizeof(c->method), "%.*s", (int)(sp - l), l);
		t = sp + 1;
		if (strncmp(t, "http://", 7) == 0 || strncmp(t, "https://", 8) == 0) {
			t = strstr(t, "//") + 2;
			t += strcspn(t, "/ ");
		}
		e = t + strcspn(t, "? ");
		snprintf(c->path, sizeof(c->path), "%.*s", (int)(e - t), t);
		return;
	}
	if (c->linelen == 0) {
		conn_head_done(c);
		return;
	}
	if ((v = strchr(l, ':')) == NULL)
		return;
	*v++ = '\0';
	while (*v == ' ' || *v == '\t')
		v++;
	if (strcasecmp(l, "Content-Length") == 0) {
		char *end;
		long long n;

		/* Read it as strictly as evhttp does, or refuse the body:
		 * a length evhttp reads otherwise would let its body be
		 * taken for the next request's head. */
		errno = 0;
		n = strtoll(v, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (c->trunc || errno != 0 || end == v || *end != '\0' || n < 0 ||
		    *v < '0' || *v > '9')
			c->chunked = 1;
		else if (c->clen < 0) {
			/* evhttp reads the first one too. */
			c->clen = n;
			c->cl_abs = line_abs + (uint64_t)(v - l);
			c->cl_ndig = strspn(v, "0123456789");
		}
	} else if (strcasecmp(l, "Authorization") == 0) {
		/* Kept only whole: a cut token fails the check. */
		if (!c->trunc && strncasecmp(v, "Bearer ", 7) == 0 &&
		    strlen(v + 7) < sizeof(c->bearer))
			snprintf(c->bearer, sizeof(c->bearer), "%s", v + 7);
		else
			snprintf(c->bearer, sizeof(c->bearer), "-");
	} else if (strcasecmp(l, "Expect") == 0) {
		c->expect = strcasecmp(v, "100-continue") == 0;
	} else if (strcasecmp(l, "Transfer-Encoding") == 0) {
		c->chunked = 1;
	}
}

/* k body bytes arrived: the deadline moves by one second per
 * body_min_rate of them. */
static void
conn_body(struct conn *c, uint64_t k)
{
	const struct ntm_httpd *h = c->h;

	c->body_got += k;
	c->body_left -= k;
	c->deadline_ms = c->start_ms + ((uint64_t)h->lim.body_timeout_s +
	    c->body_got / h->lim.body_min_rate) * 1000;
	if (c->body_left == 0) {
		c->st = C_IDLE;
		event_del(c->tm);
		if (c->stream) {
			/* evhttp too reads no more until the answer. */
			bufferevent_disable(c->bev, EV_READ);
			c->stream_done = 1;
			if (c->sreq && c->sbuf == NULL) {
				c->sreq->body_end = 1;
				req_body_kick(c->sreq);
			}
		}
	}
}

/* Takes k streamed body bytes at off out of the input buffer buf, to the
 * body's buffer (or drops them: nobody takes the body any more). */
static int
conn_divert(struct conn *c, struct evbuffer *buf, size_t off, size_t k)
{
	struct evbuffer *dst = c->sbuf ? c->sbuf : c->sreq ? c->sreq->sbuf : NULL;
	struct evbuffer *front = NULL;

	if (off > 0 && ((front = evbuffer_new()) == NULL ||
	    evbuffer_remove_buffer(buf, front, off) != (int)off)) {
		evbuffer_free(front);
		return -1;
	}
	if (dst)
		(void)evbuffer_remove_buffer(buf, dst, k);
	else
		(void)evbuffer_drain(buf, k);
	if (front) {
		(void)evbuffer_prepend_buffer(buf, front);
		evbuffer_free(front);
	}
	c->vis_total -= k;
	conn_body(c, k);
	/* Flow control: a window waits to be taken; the client waits. */
	if (dst && evbuffer_get_length(dst) >= NTM_HTTPD_STREAM_WINDOW)
		bufferevent_disable(c->bev, EV_READ);
	if (c->sreq && c->sbuf == NULL)
		req_body_kick(c->sreq);
	return 0;
}

/* Feeds n bytes (the first at position abs); returns how many were taken:
 * a streamed body's bytes are left to the caller. */
static size_t
conn_feed(struct conn *c, const char *p, size_t n, uint64_t abs)
{
	struct ntm_httpd *h = c->h;
	size_t n0 = n;

	while (n > 0 && c->st != C_DONE) {
		if (c->st == C_BODY && c->stream)
			break;
		if (c->st == C_BODY) {
			size_t k = n < c->body_left ? n : (size_t)c->body_left;

			conn_body(c, k);
			p += k;
			n -= k;
			continue;
		}
		if (c->st == C_IDLE) {
			/* The first byte of the next request's head. */
			c->st = C_HEAD;
			c->start_ms = mono_ms();
			conn_arm(c, c->start_ms + (uint64_t)h->lim.header_timeout_s * 1000);
		}
		if (c->head_bytes == 0) {
			c->nlines = 0;
			c->linelen = 0;
			c->clen = -1;
			c->chunked = 0;
			c->cl_ndig = 0;
			c->expect = 0;
			c->method[0] = c->path[0] = c->bearer[0] = '\0';
		}
		c->head_bytes++;
		c->feed_abs = abs + (n0 - n);
		if (*p == '\n') {
			conn_line(c);
			c->linelen = 0;
			c->trunc = 0;
			if (c->st != C_HEAD)
				c->head_bytes = 0;
		} else if (c->linelen < sizeof(c->line) - 1) {
			c->line[c->linelen++] = *p;
		} else {
			c->trunc = 1;
		}
		p++;
		n--;
	}
	return n0 - n;
}

/* Runs as bytes are added to the connection's input, before evhttp reads
 * them: the new bytes are the buffer's last n_added. */
static void
conn_in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;
	size_t len = evbuffer_get_length(buf), off, k;
	struct evbuffer_ptr pos;
	char tmp[4096];

	/* Our own moves in conn_divert call back here: nothing new. */
	if (info->n_added == 0 || c->in_cb || info->n_added > len)
		return;
	conn_drain_kick(c);
	c->vis_total += info->n_added;
	c->front_abs = c->vis_total - len;
	if (c->h == NULL || !c->admitted || c->st == C_DONE)
		return;
	c->in_cb = 1;
	for (off = len - info->n_added; off < len && c->st != C_DONE; off += k) {
		k = len - off;
		if (c->st == C_BODY) {		/* body bytes: counted, not copied */
			if (k > c->body_left)
				k = (size_t)c->body_left;
			if (c->stream) {
				if (conn_divert(c, buf, off, k) < 0) {
					conn_close(c);
					break;
				}
				len -= k;
				k = 0;
				continue;
			}
			conn_body(c, k);
			continue;
		}
		if (k > sizeof(tmp))
			k = sizeof(tmp);
		if (evbuffer_ptr_set(buf, &pos, off, EVBUFFER_PTR_SET) < 0 ||
		    evbuffer_copyout_from(buf, &pos, tmp, k) != (ev_ssize_t)k)
			break;
		k = conn_feed(c, tmp, k, c->front_abs + off);
	}
	c->in_cb = 0;
}

static void
linger_free(struct lingerer *l)
{
	struct ntm_httpd *h = l->h;

	if (l->prev)
		l->prev->next = l->next;
	else
		h->lingers = l->next;
	if (l->next)
		l->next->prev = l->prev;
	h->nlingers--;
	event_free(l->ev);
	close(l->fd);
	free(l);
}

static void
linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lingerer *l = arg;
	char junk[16384];
	ssize_t n = 0;

	if (what & EV_READ)
		n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
	if (!(what & EV_READ) || n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		linger_free(l);
}

/* Takes fd (a dup of a refused connection's socket). */
static void
linger_start(struct ntm_httpd *h, int fd)
{
	struct timeval tv = { HTTPD_LINGER_S, 0 };
	struct lingerer *l;

	if (h->nlingers >= HTTPD_LINGER_MAX || (l = calloc(1, sizeof(*l))) == NULL) {
		close(fd);
		return;
	}
	if ((l->ev = event_new(h->base, fd, EV_READ | EV_PERSIST, linger_cb, l)) == NULL) {
		free(l);
		close(fd);
		return;
	}
	l->h = h;
	l->fd = fd;
	if ((l->next = h->lingers) != NULL)
		l->next->prev = l;
	h->lingers = l;
	h->nlingers++;
	shutdown(fd, SHUT_WR);
	event_add(l->ev, &tv);
}

static void
conn_unlink(struct conn *c)
{
	struct ntm_httpd *h = c->h;

	if (h == NULL)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	h->body_mem -= c->reserved;
	c->reserved = 0;
	if (c->slot && --c->slot->n == 0) {
		struct addr_slot **pp = &h->addrs[addr_hash(c->slot->key)];

		while (*pp != c->slot)
			pp = &(*pp)->next;
		*pp = c->slot->next;
		free(c->slot);
	}
	c->slot = NULL;
	if (c->open) {
		c->open = 0;
		h->nopen--;
	}
	h->nconns--;
	if (h->paused && h->nconns < CONNS_HARD_MAX(h->lim.max_conns))
		listeners_enable(h, 1);
}

/* The SSL object (and with it the connection) is freed. Called for every
 * SSL object of the process; ours carry a conn. */
static void
conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct conn *c = ptr;

	if (c == NULL)
		return;
	if (c->linger_fd >= 0) {
		if (c->h)
			linger_start(c->h, c->linger_fd);
		else
			close(c->linger_fd);
		c->linger_fd = -1;
	}
	if (c->sreq) {
		/* What it sent is delivered, then the end. */
		c->sreq->sconn = NULL;
		if (!c->sreq->body_end)
			c->sreq->body_gone = 1;
		req_body_kick(c->sreq);
		c->sreq = NULL;
	}
	if (c->sbuf)
		evbuffer_free(c->sbuf);
	conn_unlink(c);
	if (c->tm)
		event_free(c->tm);
	if (c->drain)
		event_free(c->drain);
	free(c);
}

/* ---- plain HTTP on the TLS port ------------------------------------------ */

static const char tls_required_resp[] =
	"HTTP/1.1 400 Bad Request\r\n"
	"Content-Type: application/json\r\n"
	"Connection: close\r\n"
	"Content-Length: %d\r\n"
	"\r\n"
	"%s";
static const char tls_required_body[] =
	"{\"code\":\"tls_required\",\"message\":\"this port speaks HTTPS only\"}\n";

static void
httpd_info_cb(const SSL *ssl, int where, int ret)
{
	unsigned long e;
	char junk[4096];
	int fd, reason;
	ssize_t n;
	size_t total = 0;

	if (where & SSL_CB_HANDSHAKE_DONE) {
		struct conn *c = SSL_get_ex_data(ssl, conn_ex_idx);

		if (c)
			conn_drain_kick(c);
		return;
	}
	/* A handshake that failed before anything was understood. The same
	 * SSL_get_error() verdict makes bufferevent_openssl close the
	 * connection, so this never writes into a live TLS stream. */
	if (!(where & SSL_CB_EXIT) || ret > 0 || SSL_get_state(ssl) != TLS_ST_BEFORE ||
	    SSL_get_error(ssl, ret) != SSL_ERROR_SSL)
		return;
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return;
	reason = ERR_GET_REASON(e);
	if (reason != SSL_R_HTTP_REQUEST && reason != SSL_R_HTTPS_PROXY_REQUEST &&
	    reason != SSL_R_WRONG_VERSION_NUMBER)
		return;
	if (SSL_get_ex_data(ssl, plain_ex_idx) != NULL || (fd = SSL_get_fd(ssl)) < 0)
		return;
	SSL_set_ex_data((SSL *)ssl, plain_ex_idx, (void *)1);
	/* Read what the client already sent: closing a socket with unread
	 * data makes the kernel send RST, which can destroy our answer. */
	while (total < 64 * 1024 &&
	    (n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
		total += (size_t)n;
	char resp[sizeof(tls_required_resp) + sizeof(tls_required_body) + 16];
	int len = snprintf(resp, sizeof(resp), tls_required_resp,
	    (int)sizeof(tls_required_body) - 1, tls_required_body);
	n = send(fd, resp, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)n;
	ntm_log(NTM_LOG_DEBUG, "httpd: plain HTTP on the TLS port, answered tls_required");
}

/* ---- evhttp's own error pages -------------------------------------------- */

/*
 * evhttp 2.1 answers some errors itself with an HTML page and offers no hook
 * (no error callback): a body far over the limit (refused on Content-Length
 * before it is read), malformed request lines or headers, methods it does not
 * allow. The page is written whole into our bufferevent's output buffer in
 * one synchronous call before anything is sent, so a callback on that buffer
 * sees it complete (it ends with "</HTML>\n", which a JSON reply never does)
 * and swaps it for the same status with a JSON error body.
 */
static void
httpd_outbuf_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	static const char tail[] = "</HTML>\n";
	char end[sizeof(tail) - 1], head[13], body[224];
	struct evbuffer_ptr pos;
	size_t len = evbuffer_get_length(buf);
	const struct conn *c = arg;
	const char *code, *msg;
	char text[96];
	int status, n;

	if (info->n_added == 0 || len < 64 ||
	    evbuffer_ptr_set(buf, &pos, len - sizeof(end), EVBUFFER_PTR_SET) < 0 ||
	    evbuffer_copyout_from(buf, &pos, end, sizeof(end)) != (ev_ssize_t)sizeof(end) ||
	    memcmp(end, tail, sizeof(end)) != 0 ||
	    evbuffer_copyout(buf, head, sizeof(head)) != (ev_ssize_t)sizeof(head) ||
	    memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ' || head[12] != ' ')
		return;
	status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
	if (status < 400 || status > 599)
		return;
	switch (status) {
	case 413:
		code = "body_too_large";
		msg = "request body or headers over the limit";
		if (c && c->over_len == -2) {
			status = 411;
			code = "length_required";
			msg = "a request body needs one plain Content-Length";
		} else if (c && c->over_len == -3) {
			status = 503;
			code = "busy";
			msg = "the server holds too many request bodies: retry later";
		} else if (c && c->over_len == -5) {
			status = 400;
			code = "bad_request";
			msg = "the head of a streamed body must come in one piece";
		} else if (c && c->over_len == -4) {
			status = 401;
			code = "unauthorized";
			msg = "a large body is read only after a valid bearer token";
		} else if (c && c->over_len >= 0) {
			snprintf(text, sizeof(text), "request body of %lld bytes is "
			    "over the limit of %zu", (long long)c->over_len, c->over_max);
			msg = text;
		}
		break;
	case 501:
	case 405:
		code = "method_not_allowed";
		msg = "method not supported";
		break;
	case 400:
		code = "bad_request";
		msg = "malformed HTTP request";
		break;
	default:
		code = "internal";
		msg = "HTTP error";
		break;
	}
	n = snprintf(body, sizeof(body), "{\"code\":\"%s\",\"message\":\"%s\"}", code, msg);
	evbuffer_drain(buf, len);
	evbuffer_add_printf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	    "%sConnection: close\r\nContent-Length: %d\r\n\r\n%s", status,
	    status == 413 ? "Payload Too Large" : status == 411 ? "Length Required" :
	    status == 401 ? "Unauthorized" :
	    status == 503 ? "Service Unavailable" : status == 400 ? "Bad Request" :
	    "Error", status == 503 ? "Retry-After: 1\r\n" : "", n, body);
}

/* ---- replies ------------------------------------------------------------- */

static void
req_unlink(struct ntm_req *r)
{
	if (r->h) {
		if (r->prev)
			r->prev->next = r->next;
		else
			r->h->live = r->next;
		if (r->next)
			r->next->prev = r->prev;
	}
	r->prev = r->next = NULL;
}

static void req_gone_clear(struct ntm_req *r);

static void
req_free(struct ntm_req *r)
{
	req_gone_clear(r);
	if (r->h && r->h->observe && r->t0_us) {
		uint64_t now = mono_us();

		r->h->observe(r->route, r->route == NTM_HTTPD_NO_ROUTE ? NULL :
		    &r->h->routes[r->route].r, r->status, now > r->t0_us ? now - r->t0_us : 0,
		    r->h->observe_arg);
	}
	if (r->h)
		r->h->body_mem -= r->reserved;
	if (r->sconn)
		r->sconn->sreq = NULL;	/* the rest of the body is dropped */
	if (r->sbuf)
		evbuffer_free(r->sbuf);
	if (r->body_ev)
		event_free(r->body_ev);
	req_unlink(r);
	if (r->has_query)
		evhttp_clear_headers(&r->query);
	json_decref(r->json);
	if (r->auth_free)
		r->auth_free(r->auth);
	free(r->path);
	free(r->body);
	ntm_wipe(&r->cert, sizeof(r->cert));
	free(r);
}

/* The client's address without its port, for grouping log lines. */
static const char *
peer_addr(const struct ntm_req *r, char *buf, size_t cap)
{
	char *colon;

	snprintf(buf, cap, "%s", r->peer);
	if ((colon = strrchr(buf, ':')) != NULL && (buf[0] != '[' || colon[-1] == ']'))
		*colon = '\0';
	return buf;
}

/*
 * A request answered later: evhttp stops reading its connection once the
 * request is in (bufferevent_disable EV_READ), so it would learn that the
 * client went only when the answer is written. EV_CLOSED (EPOLLRDHUP) says
 * so at once, without reading what the client may have sent (a TLS
 * close_notify, a pipelined request); the answer then goes with
 * "Connection: close", and evhttp frees the connection after it.
 */
static void
req_gone_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ntm_req *r = arg;
	ntm_req_gone_fn *fn = r->gone;

	(void)fd;
	(void)what;
	event_free(r->gone_ev);
	r->gone_ev = NULL;
	r->gone = NULL;
	if (r->ev)
		evhttp_add_header(evhttp_request_get_output_headers(r->ev),
		    "Connection", "close");
	if (fn)
		fn(r, r->gone_arg);
}

static void
req_gone_clear(struct ntm_req *r)
{
	if (r->gone_ev)
		event_free(r->gone_ev);
	r->gone_ev = NULL;
	r->gone = NULL;
}

void
ntm_req_on_gone(struct ntm_req *r, ntm_req_gone_fn *fn, void *arg)
{
	struct evhttp_connection *evcon;
	struct bufferevent *bev;
	evutil_socket_t fd;

	req_gone_clear(r);
	if (fn == NULL || r->ev == NULL || r->h == NULL ||
	    !(event_base_get_features(r->h->base) & EV_FEATURE_EARLY_CLOSE) ||
	    (evcon = evhttp_request_get_connection(r->ev)) == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL ||
	    (fd = bufferevent_getfd(bev)) < 0)
		return;
	if ((r->gone_ev = event_new(r->h->base, fd, EV_CLOSED, req_gone_cb, r)) == NULL)
		return;
	if (event_add(r->gone_ev, NULL) < 0) {
		req_gone_clear(r);
		return;
	}
	r->gone = fn;
	r->gone_arg = arg;
}

/* The answer to a signed request, signed with our identity (NTM-Cert and
 * NTM-Signature, docs/protocol.md §2.2): the caller learns that it was this
 * server, enrolled by the AS, that answered this request. */
static void
sign_answer(struct ntm_req *r, struct evkeyvalq *hdr, int status, const char *text,
    size_t len)
{
	const char *nonce = ntm_req_header(r, NTM_HDR_NONCE);
	char sig[NTM_SIG_B64];

	if (nonce == NULL)
		return;
	ntm_ans_sign(sig, r->h->id_sk, r->method, r->path, status, nonce, text ? text : "",
	    text ? len : 0);
	if (sig[0] == '\0')
		return;
	evhttp_add_header(hdr, NTM_HDR_CERT, r->h->id_cert);
	evhttp_add_header(hdr, NTM_HDR_SIG, sig);
}

int
ntm_httpd_set_identity(struct ntm_httpd *h, const uint8_t sk[NTM_SIGN_SK],
    const struct ntm_cert *cert)
{
	if (h == NULL || sk == NULL || cert == NULL ||
	    ntm_cert_to_b64(cert, h->id_cert, sizeof(h->id_cert)) < 0)
		return NTM_ERR_INVAL;
	memcpy(h->id_sk, sk, NTM_SIGN_SK);
	snprintf(h->id_name, sizeof(h->id_name), "%s", cert->name);
	h->has_id = 1;
	return 0;
}

/* ---- streamed request bodies ----------------------------------------------- */

/* While a body streams, evhttp thinks its request complete (its state is
 * "writing"), and its read callback would abort the process on more bytes:
 * ours stands in until the answer, when evhttp sets its own again. */
static void
stream_read_cb(struct bufferevent *bev, void *arg)
{
	/* The bytes were taken by conn_in_cb; what is left is the next
	 * request's, for evhttp after the answer. */
}

static void
stream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	/* evhttp ends the connection (and with it c) as for any request
	 * waiting for its answer. */
	c->ev_event(bev, what, c->ev_arg);
}

/* Hands conn c's streamed body over to r, being dispatched. */
static void
req_body_attach(struct ntm_req *r, struct conn *c)
{
	bufferevent_data_cb rd, wr;

	r->stream = 1;
	r->body_len = c->stream_len;
	r->body_end = c->stream_done;
	r->sbuf = c->sbuf;
	c->sbuf = NULL;
	r->sconn = c;
	c->sreq = r;
	bufferevent_getcb(c->bev, &rd, &wr, &c->ev_event, &c->ev_arg);
	if (c->ev_event)
		bufferevent_setcb(c->bev, stream_read_cb, NULL, stream_event_cb, c);
}

/* An answer before the whole body is in: the rest is not read, and the
 * connection closes after the answer (its dup drains what still comes, so
 * that the client reads the answer). */
static void
req_body_abort(struct ntm_req *r, struct evkeyvalq *hdr)
{
	struct conn *c = r->sconn;

	if (!r->stream || r->body_end || c == NULL)
		return;
	evhttp_add_header(hdr, "Connection", "close");
	c->sreq = NULL;
	r->sconn = NULL;
	if (c->linger_fd < 0)
		c->linger_fd = fcntl(bufferevent_getfd(c->bev), F_DUPFD_CLOEXEC, 0);
	bufferevent_enable(c->bev, EV_READ);
	conn_drain_kick(c);
}

static void
req_body_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ntm_req *r = arg;
	size_t len = r->sbuf ? evbuffer_get_length(r->sbuf) : 0;
	void *data;

	if (r->body_out || r->body_last || r->body_fn == NULL)
		return;
	if (len >= NTM_HTTPD_STREAM_WINDOW || (len > 0 && (r->body_end || r->body_gone))) {
		/* Whole multiples of the alignment but at the end (the
		 * window is one): the rest waits for the next piece. */
		if (!r->body_end && !r->body_gone)
			len -= len % NTM_HTTPD_PIECE_ALIGN;
		if (posix_memalign(&data, NTM_HTTPD_PIECE_ALIGN, len) != 0)
			data = NULL;
		if (data == NULL || evbuffer_remove(r->sbuf, data, len) != (int)len) {
			free(data);
			r->body_gone = 1;	/* as if the client had gone */
			if (r->sconn)
				conn_close(r->sconn);
			req_body_kick(r);
			return;
		}
		r->body_out = 1;
		/* The next window is read while this piece is handled. */
		if (r->sconn && !r->body_end) {
			bufferevent_enable(r->sconn->bev, EV_READ);
			conn_drain_kick(r->sconn);
		}
		r->body_fn(r, data, len, NTM_BODY_PIECE, r->body_arg);
		return;
	}
	if (len == 0 && (r->body_end || r->body_gone)) {
		r->body_last = 1;
		r->body_fn(r, NULL, 0, r->body_end ? NTM_BODY_END : NTM_BODY_GONE,
		    r->body_arg);
	}
}

/* The server is going: a handler waiting for a body is told at once. */
static void
req_body_stop(struct ntm_req *r)
{
	r->body_gone = 1;
	if (r->body_fn && !r->body_out && !r->body_last) {
		r->body_last = 1;
		r->body_fn(r, NULL, 0, NTM_BODY_GONE, r->body_arg);
	}
}

static void
req_body_kick(struct ntm_req *r)
{
	if (r->body_ev && !r->body_out && !r->body_last)
		event_active(r->body_ev, EV_TIMEOUT, 1);
}

void
ntm_req_body_read(struct ntm_req *r, ntm_body_fn *fn, void *arg)
{
	r->body_fn = fn;
	r->body_arg = arg;
	if (r->h == NULL || (r->body_ev == NULL &&
	    (r->body_ev = event_new(r->h->base, -1, 0, req_body_cb, r)) == NULL)) {
		req_body_stop(r);
		return;
	}
	if (!r->stream) {
		/* None, or held whole (a route that does not stream): one
		 * piece, then the end. */
		r->body_end = 1;
		if (r->len > 0 && r->sbuf == NULL && ((r->sbuf = evbuffer_new()) == NULL ||
		    evbuffer_add(r->sbuf, r->body, r->len) < 0)) {
			req_body_stop(r);
			return;
		}
	}
	/* evhttp stopped reading when it handed the request over. */
	if (r->sconn && !r->body_end && evbuffer_get_length(r->sbuf) < NTM_HTTPD_STREAM_WINDOW) {
		bufferevent_enable(r->sconn->bev, EV_READ);
		conn_drain_kick(r->sconn);
	}
	/* evhttp took the body for none, so a client waiting to be asked for
	 * it (libcurl waits a second) is asked here, once it is wanted. */
	if (r->sconn && r->sconn->expect && r->sconn->body_got == 0 &&
	    bufferevent_write(r->sconn->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0)
		bufferevent_enable(r->sconn->bev, EV_WRITE);
	req_body_kick(r);
}

void
ntm_req_body_next(struct ntm_req *r)
{
	r->body_out = 0;
	if (r->h == NULL)
		req_body_stop(r);
	else
		req_body_kick(r);
}

uint64_t
ntm_req_body_len(const struct ntm_req *r)
{
	return r->stream ? r->body_len : r->len;
}

/* Sends len bytes of text (may be NULL) of type ctype with status and frees r. */
static void
req_send_type(struct ntm_req *r, int status, const char *ctype, const char *text,
    size_t len)
{
	struct evbuffer *buf;
	struct evkeyvalq *hdr;

	r->status = status;
	if (r->ev == NULL) {
		req_free(r);
		return;
	}
	req_gone_clear(r);
	hdr = evhttp_request_get_output_headers(r->ev);
	evhttp_add_header(hdr, "Content-Type", ctype);
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	req_body_abort(r, hdr);
	if (r->has_cert && r->h && r->h->has_id)
		sign_answer(r, hdr, status, text, len);
	if (status >= 500) {
		char src[sizeof(r->peer)];

		ntm_log_rl(NTM_LOG_WARN, status == 502 ? "httpd: answered 502" :
		    status == 503 ? "httpd: answered 503" : "httpd: answered 5xx",
		    peer_addr(r, src, sizeof(src)), "httpd: %s %s from %s: %d %s",
		    r->method, r->path ? r->path : "?", r->peer, status, text ? text : "");
	}
	if ((buf = evbuffer_new()) == NULL || (text && evbuffer_add(buf, text, len))) {
		evbuffer_free(buf);
		evhttp_send_error(r->ev, HTTP_INTERNAL, NULL);
	} else {
		evhttp_send_reply(r->ev, status, NULL, buf);
		evbuffer_free(buf);
	}
	req_free(r);
}

static void
req_send(struct ntm_req *r, int status, const char *text)
{
	req_send_type(r, status, "application/json", text, text ? strlen(text) : 0);
}

void
ntm_reply_text(struct ntm_req *r, int status, const char *ctype, const char *text,
    size_t len)
{
	req_send_type(r, status, ctype, text, len);
}

static void
req_verror(struct ntm_req *r, int status, const char *code, const char *field,
    const char *fmt, va_list ap)
{
	char msg[512];
	struct ntm_m_error e = { .code = code, .message = msg, .field = field };
	json_t *o = NULL;
	char *text = NULL;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (ntm_msg_error_encode(&e, &o, NULL) == 0)
		text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	req_send(r, status, text ? text :
	    "{\"code\":\"internal\",\"message\":\"out of memory\"}");
	free(text);
}

void
ntm_reply_error(struct ntm_req *r, int status, const char *code, const char *field,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	req_verror(r, status, code, field, fmt, ap);
	va_end(ap);
}

void
ntm_reply_json(struct ntm_req *r, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (text == NULL) {
		ntm_reply_error(r, 500, "internal", NULL, "cannot encode the response");
		return;
	}
	req_send(r, status, text);
	free(text);
}

int
ntm_err_http_status(int err)
{
	switch (err) {
	case NTM_ERR_BADPASS:
	case NTM_ERR_UNAUTH:
	case NTM_ERR_REVOKED:
	case NTM_ERR_EXPIRED:
	case NTM_ERR_CRYPTO:
		return 401;
	case NTM_ERR_LOCKED:
		return 403;
	case NTM_ERR_NOUSER:
	case NTM_ERR_NOTFOUND:
		return 404;
	case NTM_ERR_EXISTS:
		return 409;
	case NTM_ERR_TOOBIG:
		return 413;
	case NTM_ERR_JSON:
	case NTM_ERR_INVAL:
	case NTM_ERR_VERSION:
		return 400;
	case NTM_ERR_UNAVAIL:
	case NTM_ERR_TIMEOUT:
	case NTM_ERR_CONNECT:
		return 502;
	case NTM_ERR_NOSPACE:
		return 503;
	default:
		return 500;
	}
}

void
ntm_reply_err(struct ntm_req *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	req_verror(r, ntm_err_http_status(err), ntm_errcode(err), NULL, fmt, ap);
	va_end(ap);
}

void
ntm_reply_jerr(struct ntm_req *r, const struct ntm_jerr *e)
{
	ntm_reply_error(r, 400, e->code[0] ? e->code : "bad_json",
	    e->field[0] ? e->field : NULL, "%s", e->message[0] ? e->message : "bad request body");
}

/* ---- accessors ----------------------------------------------------------- */

const char *
ntm_req_method(const struct ntm_req *r)
{
	return r->method;
}

const char *
ntm_req_path(const struct ntm_req *r)
{
	return r->path;
}

const char *
ntm_req_header(const struct ntm_req *r, const char *name)
{
	if (r->ev == NULL)
		return NULL;
	return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const uint8_t *
ntm_req_body(const struct ntm_req *r, size_t *len)
{
	if (len)
		*len = r->len;
	return r->body;
}

uint8_t *
ntm_req_take_body(struct ntm_req *r, size_t *len)
{
	uint8_t *b = r->body;

	if (len)
		*len = r->len;
	r->body = NULL;
	r->len = 0;
	return b;
}

json_t *
ntm_req_json(const struct ntm_req *r)
{
	return r->json;
}

const struct ntm_cert *
ntm_req_cert(const struct ntm_req *r)
{
	return r->has_cert ? &r->cert : NULL;
}

const char *
ntm_req_peer(const struct ntm_req *r)
{
	return r->peer;
}

const char *
ntm_req_bearer(const struct ntm_req *r)
{
	const char *v = ntm_req_header(r, "Authorization");

	if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
		return NULL;
	v += 7;
	while (*v == ' ')
		v++;
	return *v ? v : NULL;
}

const char *
ntm_req_query(struct ntm_req *r, const char *name)
{
	const struct evhttp_uri *uri;
	const char *q;

	if (r->ev == NULL)
		return NULL;
	if (!r->has_query) {
		TAILQ_INIT(&r->query);
		uri = evhttp_request_get_evhttp_uri(r->ev);
		q = uri ? evhttp_uri_get_query(uri) : NULL;
		if (q && evhttp_parse_query_str(q, &r->query) < 0) {
			evhttp_clear_headers(&r->query);
			TAILQ_INIT(&r->query);
		}
		r->has_query = 1;
	}
	return evhttp_find_header(&r->query, name);
}

void
ntm_req_set_auth(struct ntm_req *r, void *p, void (*free_fn)(void *))
{
	if (r->auth_free)
		r->auth_free(r->auth);
	r->auth = p;
	r->auth_free = free_fn;
}

void *
ntm_req_auth(const struct ntm_req *r)
{
	return r->auth;
}

/* ---- streamed replies ---------------------------------------------------- */

/*
 * One piece of at most HTTPD_STREAM_PIECE bytes is in flight at a time: the
 * next is read only once evhttp has written the previous one to the socket
 * (evhttp_send_reply_chunk_with_cb calls back when the output buffer has
 * drained), so memory stays bounded whatever the length. The reply carries
 * Content-Length, so evhttp sends the bytes raw (no chunked coding).
 *
 * If the client goes away, evhttp detaches the request (userdone is 0 until
 * evhttp_send_reply_end) and frees the connection, calling its close
 * callback: there we end the stream and free the request ourselves.
 */
#define HTTPD_STREAM_PIECE	(256 * 1024)

static void stream_next(struct evhttp_connection *evcon, void *arg);

static void
stream_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct ntm_req *r = arg;

	if (r->ev)	/* detached from the dead connection: ours to free */
		evhttp_send_reply_end(r->ev);
	r->ev = NULL;
	r->stream_end(r->stream_arg, NTM_ERR_CONNECT);
	req_free(r);
}

/* Ends the reply; after an error the connection is closed, so the client
 * sees fewer bytes than Content-Length promised. */
static void
stream_finish(struct ntm_req *r, int err)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);

	if (evcon)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	if (err)
		evhttp_add_header(evhttp_request_get_output_headers(r->ev),
		    "Connection", "close");
	evhttp_send_reply_end(r->ev);
	r->ev = NULL;
	r->stream_end(r->stream_arg, err);
	req_free(r);
}

static void
stream_next(struct evhttp_connection *evcon, void *arg)
{
	struct ntm_req *r = arg;
	struct evbuffer *buf;
	struct evbuffer_iovec iov;
	size_t want;
	long got;

	if (r->left == 0) {
		stream_finish(r, 0);
		return;
	}
	want = r->left < HTTPD_STREAM_PIECE ? (size_t)r->left : HTTPD_STREAM_PIECE;
	if ((buf = evbuffer_new()) == NULL ||
	    evbuffer_reserve_space(buf, (ev_ssize_t)want, &iov, 1) < 1) {
		evbuffer_free(buf);
		stream_finish(r, NTM_ERR_NOMEM);
		return;
	}
	got = r->stream_rd(iov.iov_base, want, r->stream_arg);
	if (got <= 0 || (size_t)got > want) {
		evbuffer_free(buf);
		stream_finish(r, got < 0 ? (int)got : NTM_ERR_SHORT);
		return;
	}
	iov.iov_len = (size_t)got;
	evbuffer_commit_space(buf, &iov, 1);
	r->left -= (uint64_t)got;
	evhttp_send_reply_chunk_with_cb(r->ev, buf, stream_next, r);
	evbuffer_free(buf);
}

void
ntm_reply_stream(struct ntm_req *r, int status, const char *ctype, uint64_t len,
    ntm_stream_fn *rd, ntm_stream_end_fn *end, void *arg)
{
	struct evhttp_connection *evcon = r->ev ? evhttp_request_get_connection(r->ev) : NULL;
	struct evkeyvalq *hdr;
	char clen[24];

	r->status = status;
	if (evcon == NULL) {
		end(arg, NTM_ERR_CONNECT);
		if (r->ev)
			evhttp_send_reply_end(r->ev);
		r->ev = NULL;
		req_free(r);
		return;
	}
	req_gone_clear(r);
	r->left = len;
	r->stream_rd = rd;
	r->stream_end = end;
	r->stream_arg = arg;
	hdr = evhttp_request_get_output_headers(r->ev);
	snprintf(clen, sizeof(clen), "%llu", (unsigned long long)len);
	req_body_abort(r, hdr);
	evhttp_add_header(hdr, "Content-Type", ctype);
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	evhttp_add_header(hdr, "Content-Length", clen);
	evhttp_connection_set_closecb(evcon, stream_close_cb, r);
	evhttp_send_reply_start(r->ev, status, NULL);
	stream_next(evcon, r);
}

/* ---- request dispatch ---------------------------------------------------- */

static const char *
method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET:		return "GET";
	case EVHTTP_REQ_POST:		return "POST";
	case EVHTTP_REQ_HEAD:		return "HEAD";
	case EVHTTP_REQ_PUT:		return "PUT";
	case EVHTTP_REQ_DELETE:		return "DELETE";
	case EVHTTP_REQ_OPTIONS:	return "OPTIONS";
	case EVHTTP_REQ_PATCH:		return "PATCH";
	default:			return "OTHER";
	}
}

/* Checks the NTM-Date/NTM-Cert/NTM-Signature headers; on failure writes the
 * reason into why and returns a negative error. */
static int
check_signed(struct ntm_req *r, char *why, size_t wlen)
{
	struct ntm_httpd *h = r->h;
	const struct ntm_sighdr hd = {
		.date = ntm_req_header(r, NTM_HDR_DATE),
		.nonce = ntm_req_header(r, NTM_HDR_NONCE),
		.cert = ntm_req_header(r, NTM_HDR_CERT),
		.sig = ntm_req_header(r, NTM_HDR_SIG),
	};
	const char *to_s = ntm_req_header(r, NTM_HDR_TO);
	uint8_t sig[NTM_SIG_LEN];
	int64_t date, now = (int64_t)time(NULL);
	int err;

	if (!h->has_trust) {
		snprintf(why, wlen, "server has no trust anchor for signed requests");
		return NTM_ERR_STATE;
	}
	if ((err = ntm_sighdr_parse(&hd, h->as_pk, now, &r->cert, &date, sig, why,
	    wlen)) != 0)
		return err;
	if (h->check && (err = h->check(&r->cert, h->check_arg)) != 0) {
		snprintf(why, wlen, "certificate of '%s' is not accepted: %s",
		    r->cert.name, ntm_strerror(err));
		return err;
	}
	/* A request that names its receiver is for that server only. */
	if (to_s && (!h->has_id || strcasecmp(to_s, h->id_name) != 0)) {
		snprintf(why, wlen, "request of '%.64s' is addressed to '%.64s', not to "
		    "this server%s%.64s%s", r->cert.name, to_s, h->has_id ? " ('" : "",
		    h->has_id ? h->id_name : "", h->has_id ? "')" : "");
		return NTM_ERR_UNAUTH;
	}
	if ((to_s ? ntm_req_verify_to(hd.sig, r->cert.pk, r->method, r->path, date, hd.nonce,
	    to_s, r->body, r->len) : ntm_req_verify(hd.sig, r->cert.pk, r->method, r->path,
	    date, hd.nonce, r->body, r->len)) < 0) {
		snprintf(why, wlen, "signature of '%s' does not verify", r->cert.name);
		return NTM_ERR_CRYPTO;
	}
	if ((err = ntm_replay_check(h->replay, r->cert.pk, sig, date, now)) != 0) {
		snprintf(why, wlen, "%s", err == NTM_ERR_EXPIRED ?
		    "request date is too far from the server's clock" :
		    err == NTM_ERR_REPLAY ? "request was replayed (or is dated before "
		    "requests of the same certificate already forgotten)" :
		    err == NTM_ERR_NOSPACE ? "too many signed requests from this "
		    "certificate: retry later" : "out of memory");
		return err;
	}
	r->has_cert = 1;
	return 0;
}

/* The caller's role is one the route allows; else replies. */
static int
check_role(struct ntm_req *r, const struct ntm_http_route *rt)
{
	const char *role = ntm_role_name(r->cert.role);
	char want[32], src[sizeof(r->peer)];

	if (rt->roles == 0 || (r->cert.role < 32 &&
	    (rt->roles & NTM_ROUTE_ROLE(r->cert.role))))
		return 0;
	ntm_route_roles_str(rt->roles, want, sizeof(want));
	ntm_log_rl(NTM_LOG_INFO, "httpd: caller's role refused",
	    peer_addr(r, src, sizeof(src)), "httpd: %s %s from %s: role '%s' of '%s' refused",
	    r->method, r->path, r->peer, role ? role : "?", r->cert.name);
	if (rt->deny == 403)
		ntm_reply_error(r, 403, "forbidden", NULL, "only %s may call %s %s, "
		    "not %s '%s'", want, r->method, r->path, role ? role : "?",
		    r->cert.name);
	else
		ntm_reply_error(r, 401, "unauthorized", NULL, "only %s may call %s %s "
		    "(certificate role '%s')", want, r->method, r->path, role ? role : "?");
	return -1;
}

/* The body's "version" is NTM_PROTOCOL_VERSION (or 2 on a route that takes
 * it); else replies 400 naming it, with the codes a field table would give. */
static int
check_version(struct ntm_req *r, const struct ntm_http_route *rt)
{
	json_t *v = json_object_get(r->json, "version");
	json_int_t max = (rt->flags & NTM_ROUTE_VERSION2) ? 2 : NTM_PROTOCOL_VERSION;

	if (v == NULL)
		ntm_reply_error(r, 400, "missing_field", "version", "field 'version': missing");
	else if (!json_is_integer(v))
		ntm_reply_error(r, 400, "bad_field", "version",
		    "field 'version': expected an integer");
	else if (json_integer_value(v) < NTM_PROTOCOL_VERSION || json_integer_value(v) > max)
		ntm_reply_error(r, 400, "bad_version", "version",
		    "field 'version': %lld is not supported (want %d to %lld)",
		    (long long)json_integer_value(v), NTM_PROTOCOL_VERSION, (long long)max);
	else
		return 0;
	return -1;
}

/* Every check the route declares, in the order of struct ntm_http_route's comment:
 * 0 when the handler may run, else -1 after replying. */
static int
route_admit(struct ntm_req *r, const struct ntm_http_route *rt)
{
	struct ntm_httpd *h = r->h;

	if (rt->body_max && r->len > rt->body_max) {
		ntm_reply_error(r, 413, "body_too_large", NULL,
		    "request body of %zu bytes is over the limit of %zu", r->len,
		    rt->body_max);
		return -1;
	}
	if (rt->flags & NTM_ROUTE_SIGNED) {
		char why[NTM_NAME_MAX + 128];
		int err = check_signed(r, why, sizeof(why));

		if (err) {
			char src[sizeof(r->peer)];

			ntm_log_rl(NTM_LOG_INFO, "httpd: signed request refused",
			    peer_addr(r, src, sizeof(src)),
			    "httpd: %s %s from %s: unauthorized: %s",
			    r->method, r->path, r->peer, why);
			/* The caller is not authenticated: it learns that the
			 * server failed, not how (the log says). */
			if (err == NTM_ERR_STATE || err == NTM_ERR_NOMEM)
				ntm_reply_error(r, 500, "internal", NULL, "server error");
			else if (err == NTM_ERR_NOSPACE) {
				evhttp_add_header(evhttp_request_get_output_headers(r->ev),
				    "Retry-After", "1");
				ntm_reply_error(r, 429, "rate_limited", NULL, "%s", why);
			} else
				ntm_reply_error(r, 401, "unauthorized", NULL, "%s", why);
			return -1;
		}
		if (check_role(r, rt) < 0)
			return -1;
	}
	if (rt->flags & NTM_ROUTE_BEARER) {
		const char *token = ntm_req_bearer(r);

		if (token == NULL) {
			ntm_reply_error(r, 401, "unauthorized", NULL,
			    "missing 'Authorization: Bearer TOKEN'");
			return -1;
		}
		if (h->bearer == NULL) {
			ntm_log(NTM_LOG_ERR, "httpd: %s %s: the server has no check "
			    "for bearer tokens", r->method, r->path);
			ntm_reply_error(r, 500, "internal", NULL, "server error");
			return -1;
		}
		if (h->bearer(r, token, h->bearer_arg) < 0)
			return -1;
	}
	if (rt->flags & (NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED)) {
		struct ntm_jerr jerr;

		memset(&jerr, 0, sizeof(jerr));
		if ((r->json = ntm_json_parse(r->body, r->len, &jerr)) == NULL) {
			ntm_reply_jerr(r, &jerr);
			return -1;
		}
	}
	if ((rt->flags & NTM_ROUTE_VERSIONED) && check_version(r, rt) < 0)
		return -1;
	return 0;
}

static void
req_done_cb(struct evhttp_request *ev, void *arg)
{
	conn_drain_kick(arg);
}

static void
httpd_gencb(struct evhttp_request *ev, void *arg)
{
	struct ntm_httpd *h = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	struct evbuffer *in = evhttp_request_get_input_buffer(ev);
	const struct route *rt = NULL;
	int path_known = 0;
	struct ntm_req *r;
	const char *path;
	char *addr = NULL;
	uint16_t port = 0;
	size_t len;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		evhttp_send_error(ev, HTTP_SERVUNAVAIL, NULL);
		return;
	}
	r->h = h;
	r->ev = ev;
	r->t0_us = mono_us();
	r->route = NTM_HTTPD_NO_ROUTE;
	r->method = method_name(evhttp_request_get_command(ev));
	if ((r->next = h->live) != NULL)
		r->next->prev = r;
	h->live = r;
	if (evcon) {
		evhttp_connection_get_peer(evcon, &addr, &port);
		snprintf(r->peer, sizeof(r->peer), strchr(addr ? addr : "", ':') ?
		    "[%s]:%u" : "%s:%u", addr ? addr : "?", (unsigned)port);
	}

	/* Refuse anything that did not come over TLS (bevcb failure). */
	if (evcon == NULL ||
	    bufferevent_openssl_get_ssl(evhttp_connection_get_bufferevent(evcon)) == NULL) {
		ntm_reply_error(r, 400, "tls_required", NULL, "this port speaks HTTPS only");
		return;
	}
	{
		/* The body's share of http_body_mem_max goes with the request
		 * until it is answered. */
		struct conn *c = SSL_get_ex_data(bufferevent_openssl_get_ssl(
		    evhttp_connection_get_bufferevent(evcon)), conn_ex_idx);

		if (c && c->h == h) {
			/* Once answered, evhttp reads again: the next request
			 * may wait in OpenSSL's buffer (pipelined). */
			evhttp_request_set_on_complete_cb(ev, req_done_cb, c);
			r->reserved = c->reserved;
			c->reserved = 0;
			/* evhttp hands requests over in the order of their heads. */
			if (++c->dispatched == c->stream_seq && c->sbuf)
				req_body_attach(r, c);
		}
	}
	path = uri ? evhttp_uri_get_path(uri) : NULL;
	if ((r->path = strdup(path && *path ? path : "/")) == NULL) {
		ntm_reply_error(r, 500, "internal", NULL, "out of memory");
		return;
	}
	len = evbuffer_get_length(in);
	if (len > h->max_body) {
		ntm_reply_error(r, 413, "body_too_large", NULL,
		    "request body of %zu bytes is over the limit of %zu", len, h->max_body);
		return;
	}
	if ((r->body = malloc(len + 1)) == NULL) {
		ntm_reply_error(r, 500, "internal", NULL, "out of memory");
		return;
	}
	if (evbuffer_remove(in, r->body, len) != (int)len) {
		ntm_reply_error(r, 500, "internal", NULL, "cannot read the request body");
		return;
	}
	r->body[len] = '\0';
	r->len = len;

	for (size_t i = 0; i < h->nroutes; i++) {
		if (strcmp(h->routes[i].r.path, r->path) != 0)
			continue;
		path_known = 1;
		if (strcmp(h->routes[i].r.method, r->method) == 0) {
			rt = &h->routes[i];
			r->route = i;
			break;
		}
	}
	if (rt == NULL) {
		if (path_known)
			ntm_reply_error(r, 405, "method_not_allowed", NULL,
			    "%s is not allowed on %s", r->method, r->path);
		else
			ntm_reply_error(r, 404, "not_found", NULL, "no such path: %s", r->path);
		return;
	}
	if (route_admit(r, &rt->r) == 0)
		rt->r.fn(r, rt->arg);
}

/* ---- server -------------------------------------------------------------- */

static void
httpd_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ntm_httpd *h = arg;

	ntm_log_rl_flush();
	/* After a flood of connections, give the memory they took back to
	 * the system (glibc keeps freed heap otherwise). */
	if (h->peak_conns >= HTTPD_TRIM_CONNS && h->nconns < HTTPD_TRIM_CONNS / 4) {
		malloc_trim(0);
		h->peak_conns = h->nconns;
	}
}

static struct bufferevent *
httpd_bevcb(struct event_base *base, void *arg)
{
	struct ntm_httpd *h = arg;
	SSL *ssl = SSL_new(h->ctx);
	struct bufferevent *bev;
	struct conn *c = NULL;

	if (ssl == NULL) {
		/* evhttp falls back to a plain bufferevent; httpd_gencb then
		 * refuses every request on it. */
		ntm_log(NTM_LOG_ERR, "httpd: SSL_new failed");
		ERR_clear_error();
		return NULL;
	}
	/* Read ahead: a read takes what the socket holds, several records at
	 * once, where it took a record's header, then its body, in two
	 * reads; conn_drain_cb takes what it leaves buffered. Buffers go
	 * back while a connection has nothing in them. */
	SSL_set_read_ahead(ssl, 1);
	SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* The connection's record, freed with the SSL object (conn_ex_free). */
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->tm = event_new(base, -1, 0, conn_timer_cb, c)) == NULL ||
	    (c->drain = event_new(base, -1, 0, conn_drain_cb, c)) == NULL ||
	    SSL_set_ex_data(ssl, conn_ex_idx, c) != 1) {
		if (c && c->tm)
			event_free(c->tm);
		if (c && c->drain)
			event_free(c->drain);
		free(c);
		bufferevent_free(bev);
		return NULL;
	}
	c->h = h;
	c->bev = bev;
	c->start_ms = mono_ms();
	c->over_len = -1;
	c->linger_fd = -1;
	if ((c->next = h->conns) != NULL)
		c->next->prev = c;
	h->conns = c;
	/* Past the cap a newcomer is refused or makes room (conn_make_room)
	 * once admitted; accepting stops only at CONNS_HARD_MAX(max_conns)
	 * sockets, closing ones included. */
	if (++h->nconns >= CONNS_HARD_MAX(h->lim.max_conns))
		listeners_enable(h, 0);
	if (h->nconns > h->peak_conns)
		h->peak_conns = h->nconns;
	if (evbuffer_add_cb(bufferevent_get_output(bev), httpd_outbuf_cb, c) == NULL ||
	    evbuffer_add_cb(bufferevent_get_input(bev), conn_in_cb, c) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	/* Admitted once evhttp has set the socket, right after we return. */
	event_active(c->tm, EV_TIMEOUT, 0);
	return bev;
}

/* A PEM argument is a file path, or the PEM text itself. */
static int
ctx_load(SSL_CTX *ctx, const char *cert_pem, const char *key_pem)
{
	int ok;

	if (strncmp(cert_pem, "-----BEGIN", 10) == 0) {
		BIO *b = BIO_new_mem_buf(cert_pem, -1);
		X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

		ok = x && SSL_CTX_use_certificate(ctx, x) == 1;
		X509_free(x);
		while (ok && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
			if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
				X509_free(x);
				ok = 0;
			}
		BIO_free(b);
	} else {
		ok = SSL_CTX_use_certificate_chain_file(ctx, cert_pem) == 1;
	}
	if (!ok)
		return NTM_ERR_TLS;
	if (strncmp(key_pem, "-----BEGIN", 10) == 0) {
		BIO *b = BIO_new_mem_buf(key_pem, -1);
		EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

		ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1;
		EVP_PKEY_free(k);
		BIO_free(b);
	} else {
		ok = SSL_CTX_use_PrivateKey_file(ctx, key_pem, SSL_FILETYPE_PEM) == 1;
	}
	if (!ok || SSL_CTX_check_private_key(ctx) != 1)
		return NTM_ERR_TLS;
	return 0;
}

struct ntm_httpd *
ntm_httpd_new(struct event_base *base, const char *cert_pem, const char *key_pem,
    size_t max_body)
{
	struct ntm_httpd *h;

	if (base == NULL || cert_pem == NULL || key_pem == NULL)
		return NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->base = base;
	h->max_body = max_body ? max_body : NTM_BODY_MAX;
	h->lim.max_conns = NTM_HTTPD_MAX_CONNS;
	h->lim.max_conns_per_addr = NTM_HTTPD_MAX_CONNS_PER_ADDR;
	h->lim.header_timeout_s = NTM_HTTPD_HEADER_TIMEOUT_S;
	h->lim.body_timeout_s = NTM_HTTPD_BODY_TIMEOUT_S;
	h->lim.body_min_rate = NTM_HTTPD_BODY_MIN_RATE;
	h->lim.body_mem_max = NTM_HTTPD_BODY_MEM_MAX;
	h->lim.signed_rate = NTM_HTTPD_SIGNED_RATE;
	h->lim.signed_burst = NTM_HTTPD_SIGNED_BURST;
	h->lim.replay_per_peer = NTM_HTTPD_REPLAY_PER_PEER;
	if (plain_ex_idx < 0)
		plain_ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (conn_ex_idx < 0)
		conn_ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_ex_free);
	if (conn_ex_idx < 0)
		goto err;
	if ((h->ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		goto err;
	SSL_CTX_set_min_proto_version(h->ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(h->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_info_callback(h->ctx, httpd_info_cb);
	if (ctx_load(h->ctx, cert_pem, key_pem) != 0) {
		unsigned long e = ERR_get_error();
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		ntm_log(NTM_LOG_ERR, "httpd: cannot load TLS certificate/key: %s", buf);
		goto err;
	}
	if ((h->http = evhttp_new(base)) == NULL)
		goto err;
	/* The server's limit; each request gets its route's once its head
	 * is read (conn_head_done). */
	evhttp_set_max_body_size(h->http, (ev_ssize_t)h->max_body);
	evhttp_set_max_headers_size(h->http, HTTPD_HEADERS_MAX);
	evhttp_set_timeout(h->http, HTTPD_TIMEOUT_S);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(h->http, "application/json");
	evhttp_set_bevcb(h->http, httpd_bevcb, h);
	evhttp_set_gencb(h->http, httpd_gencb, h);
	if ((h->tick = event_new(base, -1, EV_PERSIST, httpd_tick_cb, h)) == NULL)
		goto err;
	{
		struct timeval tv = { HTTPD_TICK_S, 0 };

		event_add(h->tick, &tv);
	}
	return h;
err:
	ERR_clear_error();
	ntm_httpd_free(h);
	return NULL;
}

void
ntm_httpd_free(struct ntm_httpd *h)
{
	if (h == NULL)
		return;
	/* evhttp_free frees the evhttp_requests still held: detach ours. */
	while (h->live) {
		struct ntm_req *r = h->live;

		h->live = r->next;
		r->prev = r->next = NULL;
		r->h = NULL;
		r->ev = NULL;
		req_gone_clear(r);	/* evhttp_free closes its connection */
		if (r->body_ev)		/* a streamed body gets no more */
			event_free(r->body_ev);
		r->body_ev = NULL;
		if (r->sconn)
			r->sconn->sreq = NULL;
		r->sconn = NULL;
		req_body_stop(r);	/* may answer: r is then freed */
	}
	if (h->http)
		evhttp_free(h->http);
	/* Connections whose bufferevents are not freed yet: their records
	 * go with their SSL objects, without the server. */
	while (h->conns) {
		struct conn *c = h->conns;

		h->conns = c->next;
		c->prev = c->next = NULL;
		c->h = NULL;
		c->slot = NULL;
		if (c->tm)
			event_free(c->tm);
		c->tm = NULL;
	}
	for (size_t i = 0; i < ADDR_BUCKETS; i++)
		while (h->addrs[i]) {
			struct addr_slot *a = h->addrs[i];

			h->addrs[i] = a->next;
			free(a);
		}
	while (h->lingers)
		linger_free(h->lingers);
	free(h->bound);
	if (h->tick)
		event_free(h->tick);
	SSL_CTX_free(h->ctx);
	for (size_t i = 0; i < h->nroutes; i++) {
		free((char *)h->routes[i].r.method);
		free((char *)h->routes[i].r.path);
	}
	free(h->routes);
	ntm_replay_free(h->replay);
	ntm_wipe(h, sizeof(*h));
	free(h);
}

int
ntm_httpd_listen(struct ntm_httpd *h, const char *addr, uint16_t port, uint16_t *bound)
{
	struct evhttp_bound_socket *s;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (h == NULL || addr == NULL)
		return NTM_ERR_INVAL;
	if ((s = evhttp_bind_socket_with_handle(h->http, addr, port)) == NULL) {
		ntm_log(NTM_LOG_ERR, "httpd: cannot listen on %s port %u: %s", addr,
		    (unsigned)port, strerror(errno));
		return NTM_ERR_IO;
	}
	{
		struct evhttp_bound_socket **b = realloc(h->bound,
		    (h->nbound + 1) * sizeof(*b));

		if (b == NULL) {
			evhttp_del_accept_socket(h->http, s);
			return NTM_ERR_NOMEM;
		}
		h->bound = b;
		h->bound[h->nbound++] = s;
	}
	{
		/* evhttp writes a reply's head and body separately: without
		 * TCP_NODELAY (which accepted sockets inherit on Linux) Nagle's
		 * algorithm and the peer's delayed ACK hold the body ~40 ms. */
		int one = 1;

		(void)setsockopt(evhttp_bound_socket_get_fd(s), IPPROTO_TCP, TCP_NODELAY,
		    &one, sizeof(one));
	}
	if (bound) {
		if (getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &sl) != 0)
			return NTM_ERR_IO;
		*bound = ss.ss_family == AF_INET6 ?
		    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
		    ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	return 0;
}

void
ntm_httpd_set_limits(struct ntm_httpd *h, const struct ntm_httpd_limits *l)
{
	if (l->max_conns)
		h->lim.max_conns = l->max_conns;
	if (l->max_conns_per_addr)
		h->lim.max_conns_per_addr = l->max_conns_per_addr;
	if (l->header_timeout_s)
		h->lim.header_timeout_s = l->header_timeout_s;
	if (l->body_timeout_s)
		h->lim.body_timeout_s = l->body_timeout_s;
	if (l->body_min_rate)
		h->lim.body_min_rate = l->body_min_rate;
	if (l->body_mem_max)
		h->lim.body_mem_max = l->body_mem_max;
	if (l->signed_rate)
		h->lim.signed_rate = l->signed_rate;
	if (l->signed_burst)
		h->lim.signed_burst = l->signed_burst;
	if (l->replay_per_peer)
		h->lim.replay_per_peer = l->replay_per_peer;
	listeners_enable(h, h->nconns < CONNS_HARD_MAX(h->lim.max_conns));
}

void
ntm_httpd_set_trust(struct ntm_httpd *h, const uint8_t as_pk[NTM_SIGN_PK],
    ntm_cert_check_fn *check, void *arg)
{
	if (h->replay == NULL && (h->replay = ntm_replay_new(HTTPD_REPLAY_PEERS,
	    h->lim.replay_per_peer, h->lim.signed_rate, h->lim.signed_burst)) == NULL) {
		ntm_log(NTM_LOG_ERR, "httpd: cannot allocate the replay cache");
		return;	/* signed routes answer 500 until this succeeds */
	}
	memcpy(h->as_pk, as_pk, NTM_SIGN_PK);
	h->check = check;
	h->check_arg = arg;
	h->has_trust = 1;
}

void
ntm_httpd_set_bearer_precheck(struct ntm_httpd *h, ntm_bearer_precheck_fn *fn, void *arg)
{
	h->precheck = fn;
	h->precheck_arg = arg;
}

void
ntm_httpd_set_bearer(struct ntm_httpd *h, ntm_bearer_fn *fn, void *arg)
{
	h->bearer = fn;
	h->bearer_arg = arg;
}

void
ntm_httpd_set_observer(struct ntm_httpd *h, ntm_httpd_observe_fn *fn, void *arg)
{
	h->observe = fn;
	h->observe_arg = arg;
}

size_t
ntm_httpd_nroutes(const struct ntm_httpd *h)
{
	return h->nroutes;
}

static int
route_add(struct ntm_httpd *h, const struct ntm_http_route *rt, void *arg)
{
	struct route *n;
	char *method, *path;

	if (h == NULL || rt == NULL || rt->method == NULL || rt->path == NULL ||
	    rt->path[0] != '/' || rt->fn == NULL ||
	    (rt->roles && !(rt->flags & NTM_ROUTE_SIGNED)) ||
	    (rt->deny != 0 && rt->deny != 401 && rt->deny != 403))
		return NTM_ERR_INVAL;
	for (size_t i = 0; i < h->nroutes; i++)
		if (strcmp(h->routes[i].r.method, rt->method) == 0 &&
		    strcmp(h->routes[i].r.path, rt->path) == 0)
			return NTM_ERR_EXISTS;
	if ((n = realloc(h->routes, (h->nroutes + 1) * sizeof(*n))) == NULL)
		return NTM_ERR_NOMEM;
	h->routes = n;
	method = strdup(rt->method);
	path = strdup(rt->path);
	if (method == NULL || path == NULL) {
		free(method);
		free(path);
		return NTM_ERR_NOMEM;
	}
	n = &h->routes[h->nroutes];
	n->r = *rt;
	n->r.method = method;
	n->r.path = path;
	n->arg = arg;
	h->nroutes++;
	return 0;
}

int
ntm_httpd_routes(struct ntm_httpd *h, const struct ntm_http_route *table, size_t n, void *arg)
{
	int err;

	for (size_t i = 0; i < n; i++)
		if ((err = route_add(h, &table[i], arg)) < 0)
			return err;
	return 0;
}

int
ntm_httpd_route(struct ntm_httpd *h, const char *method, const char *path,
    unsigned flags, ntm_route_fn *fn, void *arg)
{
	struct ntm_http_route rt = { method, path, flags, fn, 0, 0, 0 };

	return route_add(h, &rt, arg);
}

const char *
ntm_route_flags_str(unsigned flags, char *buf, size_t cap)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ NTM_ROUTE_SIGNED,	"signed" },
		{ NTM_ROUTE_BEARER,	"bearer" },
		{ NTM_ROUTE_JSON,	"json" },
		{ NTM_ROUTE_VERSIONED,	"versioned" },
		{ NTM_ROUTE_STREAM,	"stream" },
	};
	size_t used = 0;

	if (cap == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (flags & names[i].bit)
			used += (size_t)snprintf(buf + (used < cap ? used : cap - 1),
			    used < cap ? cap - used : 1, "%s%s", used ? "," : "",
			    names[i].name);
	if (used == 0)
		snprintf(buf, cap, "-");
	return buf;
}

const char *
ntm_route_roles_str(unsigned roles, char *buf, size_t cap)
{
	size_t used = 0;

	if (cap == 0)
		return buf;
	buf[0] = '\0';
	for (int role = 0; role < 32; role++)
		if ((roles & NTM_ROUTE_ROLE(role)) && ntm_role_name(role))
			used += (size_t)snprintf(buf + (used < cap ? used : cap - 1),
			    used < cap ? cap - used : 1, "%s%s", used ? "," : "",
			    ntm_role_name(role));
	if (used == 0)
		snprintf(buf, cap, "any");
	return buf;
}
