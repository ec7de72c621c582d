/*
 * forwards.c - port forwards (`ntm tunnel forward`, docs/protocol.md §6,
 * "Forwards") and dialing a peer by name for them and for SOCKS5.
 *
 *  -L [BIND:]LPORT:PEER:RPORT  a kernel TCP listener on BIND (default
 *     127.0.0.1); each connection becomes a stream to PEER's vIP:RPORT.
 *  -R RPORT:HOST:PORT          a listener of the user-space stack on our
 *     vIPs; each connection a peer makes becomes a stream to HOST:PORT
 *     (a literal address or localhost) on this machine.
 *
 * A dial (agent_dial) needs a tunnel: one that is up is used at once;
 * otherwise the connection waits (at most DIAL_WAIT_MS) while the agent
 * asks its DC for a tunnel, once per peer.
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

#include "lwip/tcp.h"

#include "common.h"
#include "agentd.h"
#include "stack.h"

#define DIAL_WAIT_MS	10000
#define FWD_BACKLOG	128

struct fwd {
	int			 id;
	char			 dir;		/* 'L' or 'R' */
	char			 spec[NTM_NAME_MAX + 96];
	/* L */
	struct evconnlistener	*lis;
	uint16_t		 lport;
	char			 peer[NTM_NAME_MAX + 1];
	uint16_t		 rport;
	int			 family;
	/* R */
	struct tcp_pcb		*lpcb;
	struct sockaddr_storage	 target;
	socklen_t		 tlen;
	uint64_t		 accepted, failed;
	json_t			*req;		/* the request, saved for the next start */
};

struct dial {
	struct dial		*next;
	struct bufferevent	*bev;
	enum st_kind		 kind;
	int			 fwd;
	char			 peer[NTM_NAME_MAX + 1];
	int			 family;
	uint16_t		 port;
	int64_t			 deadline;
};

static struct {
	struct agent	*a;
	struct fwd	*f[AGENT_FWD_MAX];
	int		 n, next_id;
	struct dial	*dials;
	struct event	*timer;
} fw;

static struct fwd *
fwd_by_id(int id)
{
	for (int i = 0; i < fw.n; i++)
		if (fw.f[i]->id == id)
			return fw.f[i];
	return NULL;
}

/* ---- dialing ------------------------------------------------------------------ */

static void
on_gone_write(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void
on_gone_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

/* A dial that cannot be made: SOCKS hears why (RFC 1928 rep), a forward's
 * connection is reset. */
static void
dial_abort(struct bufferevent *bev, enum st_kind kind, uint8_t rep)
{
	if (kind == SK_SOCKS) {
		uint8_t r[10] = { 5, rep, 0, 1 };

		bufferevent_write(bev, r, sizeof(r));
		bufferevent_disable(bev, EV_READ);
		bufferevent_setcb(bev, NULL, on_gone_write, on_gone_event, NULL);
		return;
	}
	{
		struct linger l = { 1, 0 };

		setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	bufferevent_free(bev);
}

/* An unlinked dial that will not be made: counted, answered, freed. */
static void
dial_fail(struct dial *d, const char *why)
{
	struct fwd *f = d->fwd ? fwd_by_id(d->fwd) : NULL;

	log_info("dial %s:%u: %s", d->peer, d->port, why);
	if (f)
		f->failed++;
	dial_abort(d->bev, d->kind, 4);
	free(d);
}

static int
tun_is_up(struct tun *t)
{
	struct ntm_tun_stats st;

	ntm_tunnel_stats(t->p.t, &st);
	return st.state == NTM_TUN_UP;
}

static void
dial_arm(void)
{
	struct timeval tv = { 1, 0 };

	if (fw.dials && !evtimer_pending(fw.timer, NULL))
		evtimer_add(fw.timer, &tv);
}

static void
on_dial_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dial **pp = &fw.dials, *d;
	int64_t now = agent_now_ms();

	while ((d = *pp) != NULL) {
		if (now >= d->deadline) {
			*pp = d->next;
			dial_fail(d, "no tunnel in time");
			continue;
		}
		pp = &d->next;
	}
	dial_arm();
}

static void
on_dial_event(struct bufferevent *bev, short what, void *arg)
{
	struct dial **pp = &fw.dials, *d;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	/* the application left while we waited for the tunnel */
	while ((d = *pp) != NULL) {
		if (d->bev == bev) {
			*pp = d->next;
			free(d);
			break;
		}
		pp = &d->next;
	}
	bufferevent_free(bev);
}

void
agent_dial(struct agent *a, struct bufferevent *bev, enum st_kind kind, int fwd,
    const char *peer, int family, uint16_t port)
{
	struct tun *t = agent_tun_by_peer(a, peer);
	struct dial *d;
	int asked = 0;

	if (t && tun_is_up(t)) {
		agent_stream_connect(a, bev, kind, fwd, t, family, port, DIAL_WAIT_MS);
		return;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		dial_abort(bev, kind, 1);
		return;
	}
	d->bev = bev;
	d->kind = kind;
	d->fwd = fwd;
	snprintf(d->peer, sizeof(d->peer), "%s", peer);
	d->family = family;
	d->port = port;
	d->deadline = agent_now_ms() + DIAL_WAIT_MS;
	for (struct dial *o = fw.dials; o; o = o->next)
		if (strcmp(o->peer, peer) == 0)
			asked = 1;
	d->next = fw.dials;
	fw.dials = d;
	bufferevent_setcb(bev, NULL, NULL, on_dial_event, NULL);
	bufferevent_disable(bev, EV_READ);
	dial_arm();
	if (t == NULL && !asked && a->registered)
		(void)agent_request_tunnel(a, peer, NULL, 0);
}

void
agent_dial_prepare(struct agent *a, const char *peer)
{
	static char last[NTM_NAME_MAX + 1];
	static int64_t last_at;
	int64_t now = agent_now_ms();

	if (agent_tun_by_peer(a, peer) || !a->registered ||
	    (strcmp(last, peer) == 0 && now - last_at < 2000))
		return;
	snprintf(last, sizeof(last), "%s", peer);
	last_at = now;
	(void)agent_request_tunnel(a, peer, NULL, 0);
}

void
agent_dial_tunnel_up(struct agent *a, struct tun *t)
{
	struct dial **pp = &fw.dials, *d;

	if (!tun_is_up(t))
		return;
	while ((d = *pp) != NULL) {
		if (strcmp(d->peer, t->peer) == 0) {
			*pp = d->next;
			agent_stream_connect(a, d->bev, d->kind, d->fwd, t, d->family, d->port,
			    DIAL_WAIT_MS);
			free(d);
			continue;
		}
		pp = &d->next;
	}
}

void
agent_dial_failed(struct agent *a, const char *peer, const char *why)
{
	struct dial **pp = &fw.dials, *d;

	while ((d = *pp) != NULL) {
		if (strcmp(d->peer, peer) == 0) {
			*pp = d->next;
			dial_fail(d, why);
			continue;
		}
		pp = &d->next;
	}
}

/* ---- -L: kernel listener -> peer ----------------------------------------------- */

static void
on_l_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct fwd *f = arg;
	struct bufferevent *bev = bufferevent_socket_new(fw.a->base, fd,
	    BEV_OPT_CLOSE_ON_FREE);

	if (bev == NULL) {
		close(fd);
		f->failed++;
		return;
	}
	f->accepted++;
	agent_dial(fw.a, bev, SK_RAW, f->id, f->peer, f->family, f->rport);
}

/* ---- -R: our vIPs -> a local service --------------------------------------------- */

static err_t
on_r_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct fwd *f = arg;
	struct bufferevent *bev;

	if (f == NULL || err != ERR_OK || pcb == NULL)
		return ERR_VAL;
	f->accepted++;
	if ((bev = bufferevent_socket_new(fw.a->base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		goto fail;
	if (bufferevent_socket_connect(bev, (struct sockaddr *)&f->target, (int)f->tlen) < 0) {
		bufferevent_free(bev);
		goto fail;
	}
	if (agent_stream_adopt(fw.a, bev, pcb, f->id) < 0)
		goto fail;	/* it freed bev */
	return ERR_OK;
fail:
	f->failed++;
	tcp_abort(pcb);
	return ERR_ABRT;
}

/* ---- requests ----------------------------------------------------------------------- */

static int
parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}

int
agent_port_holder(uint16_t port, char *buf, size_t len)
{
	if (agent_stream_holder(port, buf, len))
		return 1;
	for (int i = 0; i < fw.n; i++) {
		struct fwd *f = fw.f[i];

		if (f->dir == 'R' && f->lpcb && f->lpcb->local_port == port) {
			snprintf(buf, len, "TCP port %u is held by forward %d (-R %s); remove it "
			    "with 'ntm tunnel forward --remove %d'", port, f->id, f->spec, f->id);
			return 1;
		}
	}
	return 0;
}

static json_t *
fwd_json(struct fwd *f)
{
	return json_pack("{s:i, s:s, s:s, s:i, s:I, s:I}", "id", f->id,
	    "dir", f->dir == 'L' ? "L" : "R", "spec", f->spec,
	    "active", agent_stream_count(f->id, NULL),
	    "accepted", (json_int_t)f->accepted, "failed", (json_int_t)f->failed);
}

static json_t *
err_json(const char *code, const char *msg)
{
	return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "message", msg);
}

/* The forwards, in the order they were added, into STATE_DIR/agent.json. */
static void
fwd_save(void)
{
	json_t *arr = json_array();
	int last = 0;

	for (;;) {
		struct fwd *next = NULL;

		for (int i = 0; i < fw.n; i++)
			if (fw.f[i]->id > last && (next == NULL || fw.f[i]->id < next->id))
				next = fw.f[i];
		if (next == NULL)
			break;
		json_array_append(arr, next->req);
		last = next->id;
	}
	agent_saved_set_forwards(arr);
}

static void
fwd_free(struct fwd *f)
{
	json_decref(f->req);
	if (f->lis)
		evconnlistener_free(f->lis);
	if (f->lpcb) {
		tcp_arg(f->lpcb, NULL);
		tcp_accept(f->lpcb, NULL);
		tcp_close(f->lpcb);
		agent_ip_kick(fw.a);
	}
	free(f);
}

static json_t *
fwd_add(struct agent *a, json_t *req)
{
	const char *cmd = NULL, *dir = NULL, *bind = "127.0.0.1", *peer = NULL, *target = NULL;
	int64_t port = 0, pport = 0, family = 4;
	const struct ntm_jfield fl[] = {
		{ "cmd", NTM_J_STR, 1, &cmd, 32 },
		{ "dir", NTM_J_STR, 1, &dir, 2 },
		{ "bind", NTM_J_STR, 0, &bind, 64 },
		{ "port", NTM_J_INT, 1, &port, 0 },
		{ "peer", NTM_J_STR, 0, &peer, NTM_NAME_MAX },
		{ "peer_port", NTM_J_INT, 0, &pport, 0 },
		{ "family", NTM_J_INT, 0, &family, 0 },
		{ "target", NTM_J_STR, 0, &target, 128 },
	};
	struct ntm_jerr jerr;
	struct fwd *f;
	char msg[640];

	if (ntm_json_unpack(req, fl, sizeof(fl) / sizeof(fl[0]), &jerr) < 0)
		return err_json("bad_request", jerr.message);
	if (fw.n >= AGENT_FWD_MAX)
		return err_json("full", "too many forwards");
	if ((strcmp(dir, "L") && strcmp(dir, "R")) || port < 1 || port > 65535)
		return err_json("bad_request", "dir: L or R; port: 1..65535");
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return err_json("internal", "out of memory");
	f->dir = dir[0];
	if (f->dir == 'L') {
		struct sockaddr_storage ss;
		socklen_t len;

		if (peer == NULL || !ntm_valid_dnsname(peer) || pport < 1 || pport > 65535 ||
		    (family != 4 && family != 6)) {
			free(f);
			return err_json("bad_request", "peer: a client FQDN; peer_port: 1..65535");
		}
		if (parse_addr(bind, (uint16_t)port, &ss, &len) < 0) {
			free(f);
			return err_json("bad_request", "bind: an IPv4 or IPv6 address");
		}
		for (int i = 0; i < fw.n; i++)
			if (fw.f[i]->dir == 'L' && fw.f[i]->lport == port) {
				snprintf(msg, sizeof(msg), "TCP port %lld is held by forward %d "
				    "(-L %s); remove it with 'ntm tunnel forward --remove %d'",
				    (long long)port, fw.f[i]->id, fw.f[i]->spec, fw.f[i]->id);
				free(f);
				return err_json("port_in_use", msg);
			}
		snprintf(f->peer, sizeof(f->peer), "%s", peer);
		f->lport = (uint16_t)port;
		f->rport = (uint16_t)pport;
		f->family = (int)family;
		f->lis = evconnlistener_new_bind(a->base, on_l_accept, f, LEV_OPT_CLOSE_ON_FREE |
		    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, FWD_BACKLOG, (struct sockaddr *)&ss,
		    (int)len);
		if (f->lis == NULL) {
			snprintf(msg, sizeof(msg), "cannot listen on %s port %lld: %s%s", bind,
			    (long long)port, strerror(errno), errno == EADDRINUSE ?
			    " (another program holds it: see 'ss -ltnp')" : "");
			free(f);
			return err_json("port_in_use", msg);
		}
		snprintf(f->spec, sizeof(f->spec), "%s%s%s:%lld:%s:%lld",
		    strchr(bind, ':') ? "[" : "", bind, strchr(bind, ':') ? "]" : "",
		    (long long)port, peer, (long long)pport);
	} else {
		char host[128], *colon;
		long tport;

		if (target == NULL || snprintf(host, sizeof(host), "%s", target) >= (int)sizeof(host) ||
		    (colon = strrchr(host, ':')) == NULL) {
			free(f);
			return err_json("bad_request", "target: HOST:PORT");
		}
		*colon = '\0';
		tport = strtol(colon + 1, NULL, 10);
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		if (tport < 1 || tport > 65535 ||
		    parse_addr(host, (uint16_t)tport, &f->target, &f->tlen) < 0) {
			free(f);
			return err_json("bad_request", "target: a literal address (or localhost) "
			    "and a port 1..65535");
		}
		if (agent_port_holder((uint16_t)port, msg, sizeof(msg)) ||
		    ((f->lpcb = agent_ip_listen((uint16_t)port, 255)) == NULL &&
		    snprintf(msg, sizeof(msg), "cannot listen on TCP port %lld of our vIPs",
		    (long long)port) > 0)) {
			free(f);
			return err_json("port_in_use", msg);
		}
		tcp_arg(f->lpcb, f);
		tcp_accept(f->lpcb, on_r_accept);
		snprintf(f->spec, sizeof(f->spec), "%lld:%s", (long long)port, target);
	}
	f->id = ++fw.next_id;
	f->req = json_deep_copy(req);
	fw.f[fw.n++] = f;
	log_info("forward %d: -%c %s", f->id, f->dir, f->spec);
	return json_pack("{s:b, s:o}", "ok", 1, "forward", fwd_json(f));
}

void
agent_fwd_restore(struct agent *a)
{
	json_t *list = json_deep_copy(agent_saved_forwards()), *req, *r;
	size_t i;

	json_array_foreach(list, i, req) {
		if (!json_is_object(req))
			continue;
		r = fwd_add(a, req);
		if (!json_is_true(json_object_get(r, "ok")))
			log_warnx("a saved forward was not restored (it is forgotten): %s: %s",
			    json_string_value(json_object_get(r, "code")),
			    json_string_value(json_object_get(r, "message")));
		json_decref(r);
	}
	json_decref(list);
	fwd_save();
}

json_t *
agent_fwd_request(struct agent *a, const char *cmd, json_t *req)
{
	if (!strcmp(cmd, "forward")) {
		json_t *r = fwd_add(a, req);

		if (json_is_true(json_object_get(r, "ok")))
			fwd_save();
		return r;
	}
	if (!strcmp(cmd, "forwards")) {
		json_t *arr = json_array();

		for (int i = 0; i < fw.n; i++)
			json_array_append_new(arr, fwd_json(fw.f[i]));
		return json_pack("{s:b, s:o}", "ok", 1, "forwards", arr);
	}
	/* unforward */
	{
		int64_t id = 0;
		const char *c = NULL;
		const struct ntm_jfield fl[] = {
			{ "cmd", NTM_J_STR, 1, &c, 32 },
			{ "id", NTM_J_INT, 1, &id, 0 },
		};
		struct ntm_jerr jerr;
		struct fwd *f;

		if (ntm_json_unpack(req, fl, sizeof(fl) / sizeof(fl[0]), &jerr) < 0)
			return err_json("bad_request", jerr.message);
		if (id < 1 || id > INT32_MAX || (f = fwd_by_id((int)id)) == NULL)
			return err_json("no_forward", "no forward has that id");
		for (int i = 0; i < fw.n; i++)
			if (fw.f[i] == f)
				fw.f[i] = fw.f[--fw.n];
		log_info("forward %d: removed (connections open now go on)", f->id);
		fwd_free(f);
		fwd_save();
		return json_pack("{s:b, s:I}", "ok", 1, "id", (json_int_t)id);
	}
}

int
agent_fwd_start(struct agent *a)
{
	fw.a = a;
	fw.timer = evtimer_new(a->base, on_dial_timer, NULL);
	return fw.timer ? 0 : -1;
}

void
agent_fwd_stop(struct agent *a)
{
	struct dial *d;

	while (fw.n > 0)
		fwd_free(fw.f[--fw.n]);
	while ((d = fw.dials) != NULL) {
		fw.dials = d->next;
		bufferevent_free(d->bev);
		free(d);
	}
	if (fw.timer)
		event_free(fw.timer);
	fw.timer = NULL;
}
