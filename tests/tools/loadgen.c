/*
 * loadgen - bench tool: N simulated devices driving one DC through its real
 * interfaces (docs/protocol.md §3.2 and §4.2), for bench/scale.sh.
 *
 *   loadgen --dc URL --ca FILE --udp IP:PORT --password-file FILE
 *           [--user-prefix P] [--users K] [--n N] [--sources S]
 *           [--http-conns C] [--window W] [--seconds T] [--tunnel-rate R]
 *           [--timeout S] [--dc-pid PID [--stop-dc]]
 *
 * 1. login: device i logs in (POST /v1/login, a fresh crypto_kx key) as
 *    user P<i mod K> (accounts made beforehand with the one password of
 *    --password-file), device "lg<i>"; at most C requests in flight.
 * 2. register: each logged-in device sends a REG_REQ over UDP from one of S
 *    sockets bound to 127.2.0.1, 127.2.0.2, ... (its location: that socket,
 *    so the DC sees a device without NAT) and waits for the REG_RESP; at
 *    most W unanswered at once, a REG_REQ unanswered after a second is sent
 *    again (3 times at most; counted as "sent again"). Twice: the first registration (the DC stores
 *    a new location), then again (a keepalive of a known location).
 * 3. steady: for T seconds every device registers once per the keepalive
 *    interval the DC answered (spread evenly), while tunnel requests
 *    (POST /v1/tunnel) between random pairs of registered devices go out
 *    at R a second; the peers' NUDGEs are opened and counted.
 *
 * With --stop-dc the DC is stopped (SIGSTOP) while the first window of
 * the first burst is sent, and continued (SIGCONT) after: the REG_REQs of
 * a burst that arrives while the DC is busy wait in its socket, or are
 * dropped when they do not fit.
 *
 * With --dc-pid (the DC's process, on this machine) each registration
 * burst also reports the DC's CPU time over it (user + system of all its
 * threads, /proc/PID/stat) per registration answered, and the generator's
 * own: CPU per registration does not move with other load on the machine
 * the way the rate does.
 *
 * Prints one line per phase and a last line "result key=value ..." for
 * scripts. Every phase is bounded in count and time (--timeout bounds the
 * whole run, default 900 s); SIGINT / SIGTERM end it early. Exit 0 when it
 * ran (what it measured is in its output), 2 on bad usage, 1 when something
 * could not be set up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "ntm.h"
#include "msg.h"
#include "reg.h"

#define SRC_NET		0x7f020000u	/* 127.2.0.0: the devices' addresses */
#define RETRY_MS	1000
#define TRIES		3
#define TICK_MS		2
#define ERR_KINDS	32

struct dev {
	int		 state;		/* D_NONE, D_LOGGING, D_IN, D_FAILED */
	int		 sock;		/* index into socks */
	struct ntm_chan	 chan;
	char		*token, *fqdn;
	int64_t		 sent_ms;	/* REG_REQ outstanding since (0: none) */
	int		 tries;
	int		 answered;	/* REG_RESPs in the current phase */
	uint64_t	 round;		/* phase the last answer counted in */
	uint8_t		 pk[NTM_KX_PK], sk[NTM_KX_SK];
};
enum { D_NONE, D_LOGGING, D_IN, D_FAILED };

struct errs {
	char		 kind[ERR_KINDS][48];
	long		 n[ERR_KINDS];
};

struct opts {
	const char	*dc, *ca, *udp, *pwfile, *prefix;
	long		 users, n, sources, conns, window, seconds, rate, timeout, dc_pid;
	int		 stop_dc;
};

static struct {
	struct opts		 o;
	struct event_base	*base;
	struct ntm_httpc	*hc;
	struct sockaddr_storage	 dcaddr;
	socklen_t		 dclen;
	char			*password;
	struct dev		*dev;
	int			*socks;
	struct event		**sev;
	/* session id -> device, open addressing */
	int32_t			*tab;
	size_t			 tabsz;
	long			 inflight, next, done_login, ok_login;
	int			 phase;
	struct errs		 login_err, reg_err, tun_err;
	/* registration burst */
	long			 reg_lo, reg_next, reg_out, reg_ok, reg_lost, reg_retried;
	uint64_t		 round;
	/* steady */
	long			 ka_sent, ka_ok, nudges, tun_sent, tun_ok, tun_busy;
	double			*lat;
	long			 nlat, caplat;
	double			 tun_carry;
	long			 ka_cursor;
	double			 ka_carry;
	uint32_t		 keepalive_s;
	int64_t			 t0, deadline;
	struct event		*tick;
	long			*live;		/* registered devices */
	long			 nlive;
} G;

enum { P_LOGIN = 1, P_REG, P_STEADY, P_DONE };

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void
err_count(struct errs *e, const char *kind)
{
	int i;

	for (i = 0; i < ERR_KINDS && e->kind[i][0]; i++)
		if (strcmp(e->kind[i], kind) == 0)
			break;
	if (i == ERR_KINDS)
		i = ERR_KINDS - 1;		/* the last slot takes the rest */
	if (e->kind[i][0] == '\0')
		snprintf(e->kind[i], sizeof(e->kind[i]), "%s", kind);
	e->n[i]++;
}

/* "kind=n,kind=n" or "none". */
static void
err_text(const struct errs *e, char *buf, size_t cap)
{
	size_t off = 0;

	snprintf(buf, cap, "none");
	for (int i = 0; i < ERR_KINDS && e->kind[i][0]; i++) {
		int k = snprintf(buf + off, cap - off, "%s%s=%ld", i ? "," : "", e->kind[i],
		    e->n[i]);
		if (k < 0 || (size_t)k >= cap - off)
			break;
		off += (size_t)k;
	}
}

/* The error kind of an HTTP answer: its JSON code, else the status or the
 * transport error. */
static void
http_err(struct errs *e, const struct ntm_http_result *res)
{
	char k[48];
	const char *code;

	if (res->err) {
		snprintf(k, sizeof(k), "%s", ntm_strerror(res->err));
		for (char *p = k; *p; p++)
			if (*p == ' ' || *p == '=' || *p == ',')
				*p = '_';
	} else if (res->json && (code = json_string_value(json_object_get(res->json,
	    "code"))) != NULL)
		snprintf(k, sizeof(k), "%ld_%s", res->status, code);
	else
		snprintf(k, sizeof(k), "http_%ld", res->status);
	err_count(e, k);
}

/* ---- the session id table ------------------------------------------------ */

static size_t
sid_slot(const uint8_t sid[NTM_SID_LEN])
{
	uint64_t h;

	memcpy(&h, sid, sizeof(h));
	return (size_t)(h * 0x9e3779b97f4a7c15ULL) & (G.tabsz - 1);
}

static void
sid_put(long i)
{
	size_t s = sid_slot(G.dev[i].chan.sid);

	while (G.tab[s] >= 0)
		s = (s + 1) & (G.tabsz - 1);
	G.tab[s] = (int32_t)i;
}

static struct dev *
sid_get(const uint8_t *sid)
{
	for (size_t s = sid_slot(sid); G.tab[s] >= 0; s = (s + 1) & (G.tabsz - 1))
		if (memcmp(G.dev[G.tab[s]].chan.sid, sid, NTM_SID_LEN) == 0)
			return &G.dev[G.tab[s]];
	return NULL;
}

/* ---- login --------------------------------------------------------------- */

static void login_more(void);

static void
on_login(const struct ntm_http_result *res, void *arg)
{
	long i = (long)(intptr_t)arg;
	struct dev *d = &G.dev[i];
	struct ntm_m_login_ok m;
	struct ntm_jerr je;
	uint8_t sid[NTM_SID_LEN], dcpk[NTM_KX_PK], rx[NTM_KEY_LEN], tx[NTM_KEY_LEN];

	G.inflight--;
	G.done_login++;
	d->state = D_FAILED;
	if (res->err || res->status != 200 || res->json == NULL) {
		http_err(&G.login_err, res);
		goto more;
	}
	memset(&m, 0, sizeof(m));
	if (ntm_msg_login_ok_unpack(res->json, &m, &je) < 0 ||
	    ntm_hex_decode_exact(sid, sizeof(sid), m.session_id) < 0 ||
	    ntm_b64_decode_exact(dcpk, sizeof(dcpk), m.dc_key) < 0 ||
	    ntm_kx_session(rx, tx, 1, d->pk, d->sk, dcpk) < 0) {
		err_count(&G.login_err, "bad_answer");
		goto more;
	}
	ntm_chan_init(&d->chan, sid, tx, rx);
	ntm_wipe(rx, sizeof(rx));
	ntm_wipe(tx, sizeof(tx));
	ntm_wipe(d->sk, sizeof(d->sk));
	d->token = strdup(m.token);
	d->fqdn = strdup(m.fqdn);
	if (d->token == NULL || d->fqdn == NULL) {
		err_count(&G.login_err, "out_of_memory");
		goto more;
	}
	d->state = D_IN;
	G.ok_login++;
	sid_put(i);
more:
	login_more();
}

static void
login_more(void)
{
	char url[600], dev[32], user[64], pkb[NTM_B64_LEN(NTM_KX_PK)];

	while (!stop && G.inflight < G.o.conns && G.next < G.o.n && now_ms() < G.deadline) {
		long i = G.next++;
		struct dev *d = &G.dev[i];
		json_t *body;
		int e;

		snprintf(user, sizeof(user), "%s%ld", G.o.prefix, i % G.o.users);
		snprintf(dev, sizeof(dev), "lg%ld", i);
		if (ntm_kx_keypair(d->pk, d->sk) < 0 ||
		    ntm_b64_encode(pkb, sizeof(pkb), d->pk, sizeof(d->pk)) < 0 ||
		    (body = json_pack("{s:i, s:s, s:s, s:s, s:s}", "version", 1, "user", user,
		    "password", G.password, "device", dev, "client_key", pkb)) == NULL) {
			err_count(&G.login_err, "setup");
			d->state = D_FAILED;
			G.done_login++;
			continue;
		}
		snprintf(url, sizeof(url), "%s/v1/login", G.o.dc);
		d->state = D_LOGGING;
		e = ntm_httpc_request(G.hc, "POST", url, body, NULL, 30000, on_login,
		    (void *)(intptr_t)i);
		json_decref(body);
		if (e < 0) {
			err_count(&G.login_err, "request");
			d->state = D_FAILED;
			G.done_login++;
			continue;
		}
		G.inflight++;
	}
	if (G.inflight == 0 && (G.next >= G.o.n || stop || now_ms() >= G.deadline))
		event_base_loopbreak(G.base);
}

/* ---- UDP ----------------------------------------------------------------- */

static void reg_fill(int64_t now);

static int
send_reg(struct dev *d)
{
	struct ntm_reg_req r;
	struct sockaddr_in *a;
	uint8_t out[NTM_REG_REQ_LEN];
	struct sockaddr_storage self;
	socklen_t len = sizeof(self);

	memset(&r, 0, sizeof(r));
	if (getsockname(G.socks[d->sock], (struct sockaddr *)&self, &len) < 0)
		return -1;
	a = (struct sockaddr_in *)&self;
	r.local_port = ntohs(a->sin_port);
	r.flags = NTM_REG_F_AGENT;
	r.naddrs = 1;
	r.addrs[0] = self;
	if (ntm_reg_req_seal(&d->chan, &r, out, sizeof(out), NULL) != NTM_REG_REQ_LEN)
		return -1;
	if (sendto(G.socks[d->sock], out, sizeof(out), 0, (struct sockaddr *)&G.dcaddr,
	    G.dclen) < 0) {
		err_count(&G.reg_err, errno == ENOBUFS || errno == EAGAIN ? "send_busy" :
		    "send_error");
		return -1;
	}
	return 0;
}

static void
on_udp(evutil_socket_t fd, short what, void *arg)
{
	uint8_t buf[NTM_UDP_MAX + 1];
	struct dev *d;
	ssize_t n;
	int type;

	(void)what;
	(void)arg;
	for (int k = 0; k < 256; k++) {
		if ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) < 0)
			break;
		if ((type = ntm_msg_validate(buf, (size_t)n)) < 0 ||
		    (d = sid_get(ntm_reg_sid(buf, (size_t)n))) == NULL) {
			err_count(&G.reg_err, "unknown_datagram");
			continue;
		}
		if (type == NTM_MSG_REG_RESP) {
			struct ntm_reg_resp rr;

			if (ntm_reg_resp_open(&d->chan, buf, (size_t)n, &rr) < 0) {
				err_count(&G.reg_err, "bad_resp");
				continue;
			}
			G.keepalive_s = rr.keepalive_s;
			if (G.phase == P_REG) {
				if (d->round == G.round)
					continue;	/* a retry's second answer */
				d->round = G.round;
				if (d->sent_ms) {
					d->sent_ms = 0;
					G.reg_out--;
				}
				G.reg_ok++;
			} else
				G.ka_ok++;
		} else if (type == NTM_MSG_NUDGE) {
			struct ntm_nudge nu;

			if (ntm_nudge_open(&d->chan, buf, (size_t)n, &nu) == 0)
				G.nudges++;
			else
				err_count(&G.reg_err, "bad_nudge");
		} else
			err_count(&G.reg_err, "other_type");
	}
	/* Answers free the window: the next ones go at once, not at the tick. */
	if (G.phase == P_REG)
		reg_fill(now_ms());
}

/* Sends first REG_REQs while fewer than the window wait for an answer. */
static void
reg_fill(int64_t now)
{
	while (G.reg_out < G.o.window && G.reg_next < G.nlive) {
		struct dev *d = &G.dev[G.live[G.reg_next++]];

		d->tries = 1;
		d->sent_ms = now;
		G.reg_out++;
		(void)send_reg(d);
	}
}

/* One step of the registration burst: send while under the window, resend
 * what waited too long, end when every device answered or gave up. */
static void
reg_step(void)
{
	int64_t now = now_ms();

	/* Retries: the devices between the oldest unsettled one and the last
	 * sent (about a window of them). */
	while (G.reg_lo < G.reg_next && G.dev[G.live[G.reg_lo]].sent_ms == 0)
		G.reg_lo++;
	for (long i = G.reg_lo; i < G.reg_next && G.reg_out > 0; i++) {
		struct dev *d = &G.dev[G.live[i]];

		if (d->sent_ms == 0 || now - d->sent_ms < RETRY_MS)
			continue;
		if (d->tries >= TRIES) {
			d->sent_ms = 0;
			G.reg_out--;
			G.reg_lost++;
			continue;
		}
		d->tries++;
		G.reg_retried++;
		d->sent_ms = now;
		(void)send_reg(d);
	}
	reg_fill(now);
	if ((G.reg_next >= G.nlive && G.reg_out == 0) || stop || now >= G.deadline)
		event_base_loopbreak(G.base);
}

/* ---- tunnels ------------------------------------------------------------- */

struct treq {
	int64_t		 t0;
};

static void
on_tunnel(const struct ntm_http_result *res, void *arg)
{
	struct treq *t = arg;
	struct timespec ts;
	double ms;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ms = ((double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6) - (double)t->t0 / 1e3;
	free(t);
	G.inflight--;
	if (res->err || res->status != 200) {
		http_err(&G.tun_err, res);
		return;
	}
	G.tun_ok++;
	if (G.nlat < G.caplat)
		G.lat[G.nlat++] = ms;
}

static void
tunnel_one(void)
{
	struct dev *a, *b;
	struct treq *t;
	struct timespec ts;
	char url[600];
	json_t *body;
	int e;

	if (G.nlive < 2)
		return;
	a = &G.dev[G.live[next_rand() % (uint64_t)G.nlive]];
	do
		b = &G.dev[G.live[next_rand() % (uint64_t)G.nlive]];
	while (b == a);
	if (G.inflight >= G.o.conns) {
		G.tun_busy++;		/* the rate asked is beyond what is answered */
		return;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (body = json_pack("{s:i, s:s}", "version", 1, "peer", b->fqdn)) == NULL) {
		free(t);
		err_count(&G.tun_err, "setup");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t->t0 = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	snprintf(url, sizeof(url), "%s/v1/tunnel", G.o.dc);
	e = ntm_httpc_request(G.hc, "POST", url, body, a->token, 30000, on_tunnel, t);
	json_decref(body);
	G.tun_sent++;
	if (e < 0) {
		free(t);
		err_count(&G.tun_err, "request");
		return;
	}
	G.inflight++;
}

/* ---- the steady phase ---------------------------------------------------- */

static void
steady_step(void)
{
	static int64_t last;
	int64_t now = now_ms();
	double dt = last ? (double)(now - last) / 1000.0 : 0;
	long nk;

	last = now;
	/* Keepalives: every device once per keepalive_s, round robin. */
	G.ka_carry += dt * (double)G.nlive / (double)(G.keepalive_s ? G.keepalive_s : 15);
	nk = (long)G.ka_carry;
	G.ka_carry -= (double)nk;
	for (long k = 0; k < nk && G.nlive > 0; k++) {
		struct dev *d = &G.dev[G.live[G.ka_cursor]];

		G.ka_cursor = (G.ka_cursor + 1) % G.nlive;
		G.ka_sent++;
		(void)send_reg(d);
	}
	if (now >= G.t0 + G.o.seconds * 1000) {
		G.tun_carry = 0;
		if (G.inflight == 0 || now >= G.t0 + G.o.seconds * 1000 + 30000)
			event_base_loopbreak(G.base);
		return;
	}
	G.tun_carry += dt * (double)G.o.rate;
	while (G.tun_carry >= 1.0) {
		G.tun_carry -= 1.0;
		tunnel_one();
	}
	if (stop || now >= G.deadline)
		event_base_loopbreak(G.base);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (stop) {
		event_base_loopbreak(G.base);
		return;
	}
	if (G.phase == P_REG)
		reg_step();
	else if (G.phase == P_STEADY)
		steady_step();
	else if (G.phase == P_LOGIN)
		login_more();
}

/* ---- setup --------------------------------------------------------------- */

static int
open_sockets(void)
{
	G.socks = calloc((size_t)G.o.sources, sizeof(*G.socks));
	G.sev = calloc((size_t)G.o.sources, sizeof(*G.sev));
	if (G.socks == NULL || G.sev == NULL)
		return -1;
	for (long j = 0; j < G.o.sources; j++) {
		struct sockaddr_in a;
		int buf = 1 << 20;

		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(SRC_NET + 1 + (uint32_t)j);
		if ((G.socks[j] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0)) < 0 || bind(G.socks[j], (struct sockaddr *)&a, sizeof(a)) < 0) {
			fprintf(stderr, "loadgen: source %s: %s\n", inet_ntoa(a.sin_addr),
			    strerror(errno));
			return -1;
		}
		(void)setsockopt(G.socks[j], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
		if ((G.sev[j] = event_new(G.base, G.socks[j], EV_READ | EV_PERSIST, on_udp,
		    NULL)) == NULL || event_add(G.sev[j], NULL) < 0)
			return -1;
	}
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	size_t k;

	if (G.nlat == 0)
		return 0;
	k = (size_t)(p * (double)G.nlat);
	if (k >= (size_t)G.nlat)
		k = (size_t)G.nlat - 1;
	return G.lat[k];
}

static double
secs_since(int64_t t0)
{
	double s = (double)(now_ms() - t0) / 1000.0;

	return s > 0.001 ? s : 0.001;
}

/* CPU seconds (user + system, all threads) of process pid, from
 * /proc/PID/stat; -1 when it cannot be read. */
static double
proc_cpu_s(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After the command name (in parentheses, which may hold spaces):
	 * state, then fields 4..13, utime (14) and stime (15). */
	if ((p = strrchr(buf, ')')) == NULL || hz <= 0 ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	    &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)hz;
}

static double
self_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return -1;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* One registration burst over every logged-in device: registrations/s;
 * the DC's and the generator's CPU per registration answered (µs) in
 * *dc_us and *lg_us (-1: not measured). */
static double
reg_burst(const char *what, double *dc_us, double *lg_us, long *retried)
{
	double dc0 = G.o.dc_pid ? proc_cpu_s(G.o.dc_pid) : -1, lg0 = self_cpu_s();
	int64_t t0 = now_ms();
	double s, rate, dc1, lg1;
	char e[512], cpu[160] = "";

	G.phase = P_REG;
	G.round++;
	G.reg_lo = G.reg_next = G.reg_out = G.reg_ok = G.reg_lost = G.reg_retried = 0;
	for (long i = 0; i < G.nlive; i++)
		G.dev[G.live[i]].sent_ms = 0;
	if (G.o.stop_dc && G.round == 1) {
		/* Sent while the DC cannot read: all of it waits in its socket. */
		if (kill((pid_t)G.o.dc_pid, SIGSTOP) == 0) {
			reg_fill(now_ms());
			(void)kill((pid_t)G.o.dc_pid, SIGCONT);
		}
	}
	event_base_dispatch(G.base);
	s = secs_since(t0);
	dc1 = G.o.dc_pid ? proc_cpu_s(G.o.dc_pid) : -1;
	lg1 = self_cpu_s();
	rate = (double)G.reg_ok / s;
	*dc_us = *lg_us = -1;
	*retried = G.reg_retried;
	if (G.reg_ok > 0 && dc0 >= 0 && dc1 >= 0)
		*dc_us = (dc1 - dc0) * 1e6 / (double)G.reg_ok;
	if (G.reg_ok > 0 && lg0 >= 0 && lg1 >= 0)
		*lg_us = (lg1 - lg0) * 1e6 / (double)G.reg_ok;
	if (*dc_us >= 0)
		snprintf(cpu, sizeof(cpu), "; CPU per registration: DC %.1f us (%.2f s), "
		    "loadgen %.1f us", *dc_us, dc1 - dc0, *lg_us);
	err_text(&G.reg_err, e, sizeof(e));
	printf("loadgen: register %s: %ld of %ld answered in %.2f s: %.0f/s (lost %ld, "
	    "sent again %ld; errors %s)%s\n", what, G.reg_ok, G.nlive, s, rate, G.reg_lost,
	    G.reg_retried, e, cpu);
	fflush(stdout);
	return rate;
}

static void
usage(void)
{
	fprintf(stderr, "usage: loadgen --dc URL --ca FILE --udp IP:PORT --password-file FILE "
	    "[--user-prefix P] [--users K] [--n N] [--sources S] [--http-conns C] "
	    "[--window W] [--seconds T] [--tunnel-rate R] [--timeout S] "
	    "[--dc-pid PID [--stop-dc]]\n");
}

static int
parse_num(const char *name, const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "loadgen: --%s '%s': expected %ld..%ld\n", name, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
		{ "dc", 1, NULL, 'd' }, { "ca", 1, NULL, 'c' }, { "udp", 1, NULL, 'u' },
		{ "password-file", 1, NULL, 'p' }, { "user-prefix", 1, NULL, 'P' },
		{ "users", 1, NULL, 'K' }, { "n", 1, NULL, 'n' }, { "sources", 1, NULL, 'S' },
		{ "http-conns", 1, NULL, 'C' }, { "window", 1, NULL, 'W' },
		{ "seconds", 1, NULL, 'T' }, { "tunnel-rate", 1, NULL, 'R' },
		{ "timeout", 1, NULL, 'X' }, { "dc-pid", 1, NULL, 'D' },
		{ "stop-dc", 0, NULL, 'Z' }, { NULL, 0, NULL, 0 }
	};
	struct opts *o = &G.o;
	struct timeval tv = { 0, TICK_MS * 1000 };
	double login_s, reg1, reg2, steady_s, dc1_us, lg1_us, dc2_us, lg2_us;
	long again1, again2;
	int64_t t0;
	size_t plen;
	char e1[512], e2[512], e3[512];
	int ch;

	o->prefix = "lg";
	o->users = 1;
	o->n = 1000;
	o->sources = 256;
	o->conns = 32;
	o->window = 128;
	o->seconds = 10;
	o->rate = 100;
	o->timeout = 900;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		int bad = 0;

		switch (ch) {
		case 'd': o->dc = optarg; break;
		case 'c': o->ca = optarg; break;
		case 'u': o->udp = optarg; break;
		case 'p': o->pwfile = optarg; break;
		case 'P': o->prefix = optarg; break;
		case 'K': bad = parse_num("users", optarg, 1, 1000000, &o->users); break;
		case 'n': bad = parse_num("n", optarg, 2, 2000000, &o->n); break;
		case 'S': bad = parse_num("sources", optarg, 1, 60000, &o->sources); break;
		case 'C': bad = parse_num("http-conns", optarg, 1, 1000, &o->conns); break;
		case 'W': bad = parse_num("window", optarg, 1, 100000, &o->window); break;
		case 'T': bad = parse_num("seconds", optarg, 1, 3600, &o->seconds); break;
		case 'R': bad = parse_num("tunnel-rate", optarg, 0, 1000000, &o->rate); break;
		case 'X': bad = parse_num("timeout", optarg, 1, 86400, &o->timeout); break;
		case 'D': bad = parse_num("dc-pid", optarg, 1, 1L << 30, &o->dc_pid); break;
		case 'Z': o->stop_dc = 1; break;
		default: usage(); return 2;
		}
		if (bad)
			return 2;
	}
	if (optind != argc || !o->dc || !o->ca || !o->udp || !o->pwfile ||
	    (o->stop_dc && !o->dc_pid)) {
		usage();
		return 2;
	}
	if (ntm_sa_parse(&G.dcaddr, &G.dclen, o->udp) < 0 || G.dcaddr.ss_family != AF_INET) {
		fprintf(stderr, "loadgen: --udp '%s' is not ipv4:port\n", o->udp);
		return 2;
	}
	if (ntm_file_read(o->pwfile, 1024, &G.password, &plen) < 0) {
		fprintf(stderr, "loadgen: cannot read %s\n", o->pwfile);
		return 1;
	}
	G.password[strcspn(G.password, "\r\n")] = '\0';
	if (ntm_crypto_init() < 0)
		return 1;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	G.dev = calloc((size_t)o->n, sizeof(*G.dev));
	G.live = calloc((size_t)o->n, sizeof(*G.live));
	for (G.tabsz = 1024; G.tabsz < 2 * (size_t)o->n; G.tabsz *= 2)
		;
	G.tab = malloc(G.tabsz * sizeof(*G.tab));
	G.caplat = 1000000;
	G.lat = malloc((size_t)G.caplat * sizeof(*G.lat));
	if (G.dev == NULL || G.live == NULL || G.tab == NULL || G.lat == NULL)
		return 1;
	memset(G.tab, 0xff, G.tabsz * sizeof(*G.tab));
	for (long i = 0; i < o->n; i++)
		G.dev[i].sock = (int)(i % o->sources);
	if ((G.base = event_base_new()) == NULL ||
	    (G.hc = ntm_httpc_new(G.base, o->ca)) == NULL || open_sockets() < 0 ||
	    (G.tick = event_new(G.base, -1, EV_PERSIST, on_tick, NULL)) == NULL ||
	    event_add(G.tick, &tv) < 0) {
		fprintf(stderr, "loadgen: cannot set up\n");
		return 1;
	}
	G.deadline = now_ms() + o->timeout * 1000;

	/* 1. login */
	t0 = now_ms();
	G.phase = P_LOGIN;
	login_more();
	event_base_dispatch(G.base);
	login_s = secs_since(t0);
	err_text(&G.login_err, e1, sizeof(e1));
	printf("loadgen: login: %ld of %ld in %.2f s: %.0f/s (errors %s)\n", G.ok_login, o->n,
	    login_s, (double)G.ok_login / login_s, e1);
	fflush(stdout);
	for (long i = 0; i < o->n; i++)
		if (G.dev[i].state == D_IN)
			G.live[G.nlive++] = i;

	/* 2. registrations: first, then again */
	reg1 = reg_burst("first", &dc1_us, &lg1_us, &again1);
	reg2 = reg_burst("again", &dc2_us, &lg2_us, &again2);

	/* 3. steady: keepalives and tunnel requests */
	G.phase = P_STEADY;
	G.round++;
	G.inflight = 0;
	G.t0 = now_ms();
	event_base_dispatch(G.base);
	steady_s = (double)o->seconds;
	G.phase = P_DONE;
	qsort(G.lat, (size_t)G.nlat, sizeof(*G.lat), cmp_double);
	err_text(&G.reg_err, e2, sizeof(e2));
	err_text(&G.tun_err, e3, sizeof(e3));
	printf("loadgen: steady %.0f s, %ld devices: keepalives %ld sent, %ld answered "
	    "(%.0f/s); nudges %ld; udp errors %s\n", steady_s, G.nlive, G.ka_sent, G.ka_ok,
	    (double)G.ka_ok / steady_s, G.nudges, e2);
	printf("loadgen: tunnels: %ld asked (%.0f/s), %ld ok, %ld not sent (all %ld "
	    "connections busy); latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; errors %s\n",
	    G.tun_sent, (double)G.tun_sent / steady_s, G.tun_ok, G.tun_busy, o->conns,
	    pct(0.50), pct(0.99), G.nlat ? G.lat[G.nlat - 1] : 0.0, e3);
	printf("result n=%ld logged_in=%ld login_per_s=%.0f reg_first_per_s=%.0f "
	    "reg_again_per_s=%.0f reg_first_dc_us=%.1f reg_again_dc_us=%.1f "
	    "reg_first_lg_us=%.1f reg_again_lg_us=%.1f reg_first_resent=%ld "
	    "reg_again_resent=%ld keepalive_s=%u ka_per_s=%.0f "
	    "tunnel_per_s=%.1f tunnel_ok=%ld tunnel_p50_ms=%.2f tunnel_p99_ms=%.2f "
	    "tunnel_busy=%ld login_errors=%s udp_errors=%s tunnel_errors=%s\n",
	    o->n, G.ok_login, (double)G.ok_login / login_s, reg1, reg2, dc1_us, dc2_us,
	    lg1_us, lg2_us, again1, again2, G.keepalive_s,
	    (double)G.ka_ok / steady_s, (double)G.tun_ok / steady_s, G.tun_ok, pct(0.50),
	    pct(0.99), G.tun_busy, e1, e2, e3);
	fflush(stdout);
	ntm_httpc_free(G.hc);
	ntm_wipe(G.password, strlen(G.password));
	return 0;
}
