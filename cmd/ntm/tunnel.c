/*
 * tunnel.c - ntm tunnel ping|open|listen|list|close: the agent holds the
 * tunnels; this asks it over the control socket (docs/protocol.md §6) and,
 * for open/listen, bridges stdin lines and received datagrams through the
 * same connection as length-prefixed frames.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "agent.h"
#include "stream.h"

struct topts {
	const char	*sub, *peer, *exec, *lspec, *rspec;
	long		 remove;
	long		 port;
	long		 count, udp, lport, timeout, wait;
	double		 interval;
	int		 json, v6;
	unsigned long long given;	/* bit per option: 1ULL << T_* */
};

/* The options, by their place in tunnel_opts. */
enum { T_COUNT, T_INTERVAL, T_IPV6, T_UDP, T_EXEC, T_LPORT, T_WAIT, T_TIMEOUT, T_LOCAL,
    T_REMOTE, T_REMOVE, T_JSON };
#define G(t)	(1ULL << (t))

/* -L or -R: one forward at a time. */
static int
set_forward(void *args, const struct cmd_opt *opt, const char *v)
{
	struct topts *o = args;

	if (o->lspec || o->rspec) {
		cli_err("tunnel", "forward: one -L or -R at a time");
		return -1;
	}
	*(const char **)(void *)((char *)args + opt->off) = v;
	return 0;
}

#define TO(f)	offsetof(struct topts, f)
#define T_STR_(x)	#x
#define T_STR(x)	T_STR_(x)
#define FWD_GROUP	"-L, -R or --remove"

static const struct cmd_opt tunnel_opts[] = {
	[T_COUNT] = { .name = "count", .shortopt = 'c', .arg = "N", .help = "ping: send N "
	  "echo requests (default 4); listen: exit after N datagrams", .type = CMD_INT,
	  .off = TO(count), .min = 1, .max = AGENT_PING_MAX, .expect = "expected 1.." T_STR(AGENT_PING_MAX) },
	[T_INTERVAL] = { .name = "interval", .shortopt = 'i', .arg = "SEC", .help = "ping: "
	  "seconds between requests (0.01..60, default 1)", .type = CMD_REAL,
	  .off = TO(interval), .rmin = 0.01, .rmax = 60,
	  .expect = "expected seconds 0.01..60" },
	[T_IPV6] = { .name = "ipv6", .shortopt = '6', .help = "ping, open: use the IPv6 vIPs "
	  "(default IPv4, or the family of a PEER given as a vIP)", .type = CMD_FLAG,
	  .off = TO(v6) },
	[T_UDP] = { .name = "udp", .arg = "PORT", .help = "open, listen: datagrams instead of "
	  "a stream; open: the peer's UDP port; listen: our UDP port", .type = CMD_INT,
	  .off = TO(udp), .min = 1, .max = 65535, .expect = "expected a port 1..65535" },
	[T_EXEC] = { .name = "exec", .arg = "CMD", .help = "open, listen (streams): run CMD "
	  "with /bin/sh, its stdin and stdout on the stream", .type = CMD_STRING,
	  .off = TO(exec), .expect = "expected a command" },
	[T_LPORT] = { .name = "local-port", .arg = "P", .help = "open: our UDP source port "
	  "(default random)", .type = CMD_INT, .off = TO(lport), .min = 1, .max = 65535,
	  .expect = "expected a port 1..65535" },
	[T_WAIT] = { .name = "wait", .arg = "SEC", .help = "open: after end of input, print "
	  "replies for SEC more seconds (default 2)", .type = CMD_INT, .off = TO(wait),
	  .min = 0, .max = 300, .expect = "expected seconds 0..300" },
	[T_TIMEOUT] = CLI_OPT_TIMEOUT(struct topts, "ping, open: give up if the tunnel (and, "
	  "for a stream, the connection) is not up within SEC seconds (1..300, default 10)"),
	[T_LOCAL] = { .name = "local", .shortopt = 'L', .arg = "[BIND:]LPORT:PEER:RPORT",
	  .help = "forward: listen on BIND (default 127.0.0.1) port LPORT; each connection "
	  "goes to PEER's vIP port RPORT", .type = CMD_CALL, .set = set_forward,
	  .off = TO(lspec), .group = FWD_GROUP },
	[T_REMOTE] = { .name = "remote", .shortopt = 'R', .arg = "RPORT:HOST:PORT",
	  .help = "forward: accept on our vIPs' port RPORT; each connection goes to HOST:PORT "
	  "here (a literal address or localhost)", .type = CMD_CALL, .set = set_forward,
	  .off = TO(rspec), .group = FWD_GROUP },
	[T_REMOVE] = { .name = "remove", .arg = "ID", .help = "forward: remove forward ID (its "
	  "open connections go on)", .type = CMD_INT, .off = TO(remove), .min = 1,
	  .max = INT32_MAX, .expect = "expected a forward id", .group = FWD_GROUP },
	[T_JSON] = CLI_OPT_JSON(struct topts, "print the result as JSON; open, listen: the "
	  "data stays on stdout, a JSON summary is the last line on stderr"),
	CLI_OPT_HELP,
	CLI_OPT_END
};

static void
tunnel_init(void *args)
{
	struct topts *o = args;

	o->interval = 1.0;
	o->wait = 2;
}

/* What a PEER looks like, in the names the DC gives (protocol.md §3). */
#define PEER_FORM	"expected a client FQDN, user.domain or user-N.domain for a " \
	"user's N-th device (like alice.dc1.ntm.test or bob-2.dc2.example), or a peer's vIP"

/* A client FQDN, or a vIP (IPv4 or IPv6 literal). */
static int
valid_peer(const char *s)
{
	uint8_t b[16];

	if (inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1)
		return 1;
	return ntm_valid_dnsname(s) && strchr(s, '.') != NULL;
}

static int
no_agent(void)
{
	cli_err("tunnel", "no agent running (start it with 'ntm up')");
	return EXIT_NOAGENT;
}

static struct ctl_client *
connect_agent(const struct cli *cli)
{
	struct ctl_client *c = calloc(1, sizeof(*c));

	if (c && ctl_open(c, cli) == 0)
		return c;
	free(c);
	return NULL;
}

static void
disconnect(struct ctl_client *c)
{
	if (c) {
		ctl_close(c);
		free(c);
	}
}

/* ---- list, close ------------------------------------------------------------ */

static void
print_ago(const char *label, json_t *v)
{
	if (json_is_integer(v))
		printf("%s %llds ago", label, (long long)json_integer_value(v));
	else
		printf("%s never", label);
}

static int
do_list(const struct cli *cli, const struct topts *o)
{
	json_t *r = ctl_call(cli, json_pack("{s:s}", "cmd", "list"), 5000), *arr, *t, *d;
	size_t i;
	int ret;

	if (r == NULL)
		return no_agent();
	if (!json_is_true(json_object_get(r, "ok"))) {
		ret = ctl_fail("tunnel", r);
		json_decref(r);
		return ret;
	}
	if (o->json) {
		json_object_del(r, "ok");
		cli_print_json(r);
		return EXIT_OK;
	}
	arr = json_object_get(r, "tunnels");
	if (json_array_size(arr) == 0)
		printf("no tunnels\n");
	json_array_foreach(arr, i, t) {
		json_t *rtt = json_object_get(t, "rtt_ms"), *side = json_object_get(t, "relay_side");

#define S(k) json_string_value(json_object_get(t, k))
#define I(k) (long long)json_integer_value(json_object_get(t, k))
		printf("%s (%s, %s)\n", S("peer"), S("peer_vip4"), S("peer_vip6"));
		if (json_is_true(json_object_get(t, "peer_verified")))
			printf("  identity: %s verified by the AS, device key %s%s\n",
			    S("peer"), S("peer_fingerprint"), I("identity_failures") ?
			    " (handshakes without it refused)" : "");
		printf("  route: %s (%s), %s, state %s\n", S("route"), S("reason"), S("role"),
		    S("state"));
		if (S("path"))	/* an agent from before paths sends none */
			printf("  path: %s (%s)\n", S("path"), S("path_reason"));
		if (S("family"))	/* the path's: IPv4 or IPv6 */
			printf("  family: %s\n", S("family"));
		printf("  endpoint: %s", S("endpoint"));
		if (json_is_integer(side))
			printf(" (relay side %lld)", (long long)json_integer_value(side));
		printf("\n  session index: %08llx, ", I("index"));
		print_ago("last handshake", json_object_get(t, "last_handshake_s"));
		if (json_is_number(rtt))
			printf(", rtt %.3f ms\n", json_number_value(rtt));
		else
			printf(", rtt -\n");
		printf("  tx: %lld packets, %lld bytes; rx: %lld packets, %lld bytes; "
		    "dropped %lld\n", I("tx_packets"), I("tx_bytes"), I("rx_packets"),
		    I("rx_bytes"), I("dropped"));
#undef S
#undef I
	}
	arr = json_object_get(r, "streams");
	json_array_foreach(arr, i, t)
		printf("stream %s port %lld: %s, mss %lld, in %lld bytes, out %lld bytes\n",
		    json_string_value(json_object_get(t, "peer")),
		    (long long)json_integer_value(json_object_get(t, "port")),
		    json_string_value(json_object_get(t, "state")),
		    (long long)json_integer_value(json_object_get(t, "mss")),
		    (long long)json_integer_value(json_object_get(t, "bytes_in")),
		    (long long)json_integer_value(json_object_get(t, "bytes_out")));
	d = json_object_get(json_object_get(r, "agent"), "dropped");
	printf("agent dropped: malformed %lld, unknown_index %lld, auth %lld, replay %lld, "
	    "state %lld, identity %lld\n",
	    (long long)json_integer_value(json_object_get(d, "malformed")),
	    (long long)json_integer_value(json_object_get(d, "unknown_index")),
	    (long long)json_integer_value(json_object_get(d, "auth")),
	    (long long)json_integer_value(json_object_get(d, "replay")),
	    (long long)json_integer_value(json_object_get(d, "state")),
	    (long long)json_integer_value(json_object_get(d, "identity")));
	json_decref(r);
	return EXIT_OK;
}

static int
do_close(const struct cli *cli, const struct topts *o)
{
	json_t *r = ctl_call(cli, json_pack("{s:s, s:s}", "cmd", "close", "peer", o->peer),
	    5000);
	int ret;

	if (r == NULL)
		return no_agent();
	if (!json_is_true(json_object_get(r, "ok")))
		ret = ctl_fail("tunnel", r);
	else {
		if (o->json)
			cli_print_json(json_pack("{s:s, s:b}", "peer", o->peer, "closed", 1));
		else
			printf("tunnel to %s closed\n", o->peer);
		ret = EXIT_OK;
	}
	json_decref(r);
	return ret;
}

/* ---- ping -------------------------------------------------------------------- */

/*
 * Ctrl-C ends a ping the way it ends ping(8): the summary of what was sent
 * and received so far, exit 0 if a reply came. The handler only sets a flag;
 * it is installed without SA_RESTART so the wait for the agent returns.
 */
static volatile sig_atomic_t ping_interrupted;

static void
on_ping_sigint(int sig)
{
	(void)sig;
	ping_interrupted = 1;
}

/* The next line from the agent, or NULL: *stopped is set when Ctrl-C came
 * first, else *why says what went wrong. SIGINT is blocked except inside
 * ppoll, so it cannot slip in between the check and the wait. */
static json_t *
ping_recv(struct ctl_client *c, int timeout_ms, const char **why, int *stopped,
    const sigset_t *waitmask)
{
	int64_t deadline = agent_now_ms() + timeout_ms;

	*stopped = 0;
	while (memchr(c->buf, '\n', c->len) == NULL) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int64_t left = deadline - agent_now_ms();
		struct timespec ts;
		int n;

		if (ping_interrupted) {
			*stopped = 1;
			return NULL;
		}
		if (left <= 0)
			break;		/* ctl_recv says it timed out */
		ts.tv_sec = left / 1000;
		ts.tv_nsec = left % 1000 * 1000000;
		if ((n = ppoll(&p, 1, &ts, waitmask)) < 0 && errno != EINTR)
			break;
		if (n > 0)
			break;		/* something to read: ctl_recv takes it */
	}
	return ctl_recv(c, (int)(deadline - agent_now_ms() > 0 ?
	    deadline - agent_now_ms() : 1), why);
}

/* What the replies so far say. */
struct ping_stats {
	long long	 sent, recvd, maxseq;
	double		 min, max, total;
};

#define S(j, k) json_string_value(json_object_get(j, k))

/* One "reply" event: counted, kept for --json, or printed. */
static void
ping_reply(const struct topts *o, json_t *r, struct ping_stats *st, json_t *replies)
{
	double rtt = json_number_value(json_object_get(r, "rtt_ms"));
	long long seq = json_integer_value(json_object_get(r, "seq"));

	json_array_append_new(replies, json_pack("{s:O, s:f}", "seq",
	    json_object_get(r, "seq"), "rtt_ms", rtt));
	if (st->recvd == 0 || rtt < st->min)
		st->min = rtt;
	if (rtt > st->max)
		st->max = rtt;
	st->total += rtt;
	st->recvd++;
	if (seq > st->maxseq)
		st->maxseq = seq;
	if (!o->json) {
		printf("%lld bytes from %s: seq=%lld time=%.3f ms\n",
		    (long long)json_integer_value(json_object_get(r, "bytes")),
		    S(r, "from"), seq, rtt);
		fflush(stdout);
	}
}

/* The summary (new): the agent's "done" event r, or, after ^C, counted here. */
static json_t *
ping_summary(const struct topts *o, json_t *r, int stopped, int64_t up_at,
    struct ping_stats *st)
{
	if (stopped) {
		/* The agent sends the first request at once, then one per
		 * interval: what it had sent by now, and at least every
		 * request a reply answered. */
		st->sent = 1 + (long long)((double)(agent_now_ms() - up_at) / 1000.0 /
		    o->interval);
		if (st->sent > o->count)
			st->sent = o->count;
		if (st->sent < st->maxseq)
			st->sent = st->maxseq;
		return json_pack("{s:b, s:I, s:I, s:f, s:f, s:f, s:f}", "interrupted", 1,
		    "sent", (json_int_t)st->sent, "received", (json_int_t)st->recvd,
		    "loss_pct", st->sent ? 100.0 * (double)(st->sent - st->recvd) /
		    (double)st->sent : 0.0, "min_ms", st->min,
		    "avg_ms", st->recvd ? st->total / (double)st->recvd : 0.0, "max_ms", st->max);
	}
	st->sent = json_integer_value(json_object_get(r, "sent"));
	st->recvd = json_integer_value(json_object_get(r, "received"));
	return json_pack("{s:b, s:O, s:O, s:O, s:O, s:O, s:O}", "interrupted", 0,
	    "sent", json_object_get(r, "sent"), "received", json_object_get(r, "received"),
	    "loss_pct", json_object_get(r, "loss_pct"),
	    "min_ms", json_object_get(r, "min_ms"), "avg_ms", json_object_get(r, "avg_ms"),
	    "max_ms", json_object_get(r, "max_ms"));
}

static void
ping_print_summary(const struct topts *o, json_t *sum, const struct ping_stats *st,
    int stopped)
{
	if (stopped)
		printf("\n");	/* after the terminal's ^C */
	printf("--- %s tunnel ping ---\n", o->peer);
	printf("%lld sent, %lld received, %.0f%% loss", st->sent, st->recvd,
	    json_number_value(json_object_get(sum, "loss_pct")));
	if (st->recvd)
		printf(", rtt min/avg/max = %.3f/%.3f/%.3f ms",
		    json_number_value(json_object_get(sum, "min_ms")),
		    json_number_value(json_object_get(sum, "avg_ms")),
		    json_number_value(json_object_get(sum, "max_ms")));
	printf("\n");
	fflush(stdout);
}

static int
do_ping(const struct cli *cli, const struct topts *o)
{
	struct ctl_client *c = connect_agent(cli);
	struct sigaction sa, old;
	sigset_t block, orig, waitmask;
	json_t *r = NULL, *replies = json_array(), *out = NULL, *sum = NULL;
	const char *why, *ev;
	struct ping_stats st = { 0 };
	int64_t up_at = 0;
	int ret = EXIT_FAIL, stopped = 0;
	long wait_ms = (long)(o->count * o->interval * 1000) + o->timeout * 1000 + 5000;

	if (c == NULL) {
		json_decref(replies);
		return no_agent();
	}
	ping_interrupted = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_ping_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &orig);
	waitmask = orig;
	sigdelset(&waitmask, SIGINT);
	if (ctl_send(c, json_pack("{s:s, s:s, s:i, s:i, s:i, s:i}", "cmd", "ping",
	    "peer", o->peer, "count", (int)o->count,
	    "interval_ms", (int)(o->interval * 1000 + 0.5), "family", o->v6 ? 6 : 4,
	    "timeout_ms", (int)o->timeout * 1000)) < 0 ||
	    (r = ping_recv(c, (int)(o->timeout * 1000 + 5000), &why, &stopped, &waitmask)) == NULL) {
		if (!stopped)
			cli_err("tunnel", "ping %s: %s", o->peer, "the agent did not answer");
		goto out;	/* interrupted before the tunnel was up: nothing sent */
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		ret = ctl_fail("tunnel", r);
		goto out;
	}
	up_at = agent_now_ms();
	out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "peer", o->peer,
	    "vip", S(r, "vip"), "route", S(r, "route"), "reason", S(r, "reason"),
	    "endpoint", S(r, "endpoint"), "role", S(r, "role"));
	if (!o->json) {
		printf("PING %s (%s) via %s route (%s), endpoint %s\n", o->peer, S(r, "vip"),
		    S(r, "route"), S(r, "reason"), S(r, "endpoint"));
		fflush(stdout);
	}
	for (;;) {
		json_decref(r);
		if ((r = ping_recv(c, (int)wait_ms, &why, &stopped, &waitmask)) == NULL) {
			if (stopped)
				break;
			cli_err("tunnel", "ping %s: %s", o->peer, why);
			goto out;
		}
		ev = S(r, "event");
		if (ev && strcmp(ev, "reply") == 0) {
			ping_reply(o, r, &st, replies);
			continue;
		}
		if (ev && strcmp(ev, "done") == 0)
			break;
		if (!json_is_true(json_object_get(r, "ok"))) {
			ret = ctl_fail("tunnel", r);
			goto out;
		}
	}
	sum = ping_summary(o, r, stopped, up_at, &st);
	if (o->json) {
		json_object_update(out, sum);
		json_object_set(out, "replies", replies);
		cli_print_json(out);
		out = NULL;
	} else
		ping_print_summary(o, sum, &st, stopped);
	ret = st.recvd > 0 ? EXIT_OK : EXIT_FAIL;
out:
	sigprocmask(SIG_SETMASK, &orig, NULL);	/* a late ^C still finds our handler */
	sigaction(SIGINT, &old, NULL);
	json_decref(r);
	json_decref(out);
	json_decref(sum);
	json_decref(replies);
	disconnect(c);
	return ret;
}
#undef S

/* ---- open / listen: stdin lines <-> frames --------------------------------------- */

/* Frames bound for the agent are gathered and written in one system call. */
struct outbuf {
	size_t	len;
	uint8_t	b[64 * 1024];
};

static int
flush_frames(int fd, struct outbuf *o)
{
	size_t off = 0;

	while (off < o->len) {
		ssize_t w = send(fd, o->b + off, o->len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	o->len = 0;
	return 0;
}

static int
send_frame(int fd, struct outbuf *o, const char *p, size_t n)
{
	if (n > AGENT_FRAME_MAX - 48)
		n = AGENT_FRAME_MAX - 48;	/* room for the IP and UDP headers */
	if (o->len + 2 + n > sizeof(o->b) && flush_frames(fd, o) < 0)
		return -1;
	o->b[o->len] = (uint8_t)(n >> 8);
	o->b[o->len + 1] = (uint8_t)n;
	memcpy(o->b + o->len + 2, p, n);
	o->len += 2 + n;
	return 0;
}

/* Prints every complete frame in c->buf; returns how many. */
static long
print_frames(struct ctl_client *c)
{
	long k = 0;

	while (c->len >= 2) {
		size_t n = (size_t)c->buf[0] << 8 | c->buf[1];

		if (c->len < 2 + n)
			break;
		fwrite(c->buf + 2, 1, n, stdout);
		if (n == 0 || c->buf[1 + n] != '\n')
			fputc('\n', stdout);
		memmove(c->buf, c->buf + 2 + n, c->len - 2 - n);
		c->len -= 2 + n;
		k++;
	}
	fflush(stdout);
	return k;
}

struct counts {
	long long	sent, received;
};

static int
bridge(struct ctl_client *c, int listen_mode, long max, long wait_s, struct counts *n)
{
	static char in[64 * 1024];
	static struct outbuf out;
	size_t llen = 0;
	int in_open = 1;
	long got = 0;
	int64_t stop_at = INT64_MAX;

	out.len = 0;
	got += print_frames(c);
	n->received = got;
	while (!(max > 0 && got >= max)) {
		struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN },
		    { .fd = STDIN_FILENO, .events = POLLIN } };
		int64_t now = agent_now_ms();
		int np = in_open ? 2 : 1, tmo = -1;

		if (stop_at != INT64_MAX) {
			if (now >= stop_at)
				break;
			tmo = (int)(stop_at - now);
		}
		if (poll(p, (nfds_t)np, tmo) < 0) {
			if (errno == EINTR)
				continue;
			return EXIT_FAIL;
		}
		if (p[0].revents) {
			ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

			if (r <= 0) {
				cli_err("tunnel", "the agent closed the connection");
				return EXIT_FAIL;
			}
			c->len += (size_t)r;
			got += print_frames(c);
			n->received = got;
		}
		if (in_open && p[1].revents) {
			/* Many lines per read, one datagram per line, all of them
			 * handed to the agent in one write. */
			ssize_t r = read(STDIN_FILENO, in + llen, sizeof(in) - llen);
			size_t start = 0;
			char *nl;

			if (r <= 0) {
				in_open = 0;
				n->sent += llen > 0;
				if ((llen && send_frame(c->fd, &out, in, llen) < 0) ||
				    flush_frames(c->fd, &out) < 0)
					return EXIT_FAIL;
				llen = 0;
				if (!listen_mode)
					stop_at = agent_now_ms() + wait_s * 1000;
				continue;
			}
			llen += (size_t)r;
			while ((nl = memchr(in + start, '\n', llen - start)) != NULL) {
				size_t k = (size_t)(nl - (in + start));

				if (send_frame(c->fd, &out, in + start, k) < 0)
					return EXIT_FAIL;
				start += k + 1;
				n->sent++;
			}
			/* An overlong line goes as it is, cut to one datagram. */
			while (llen - start >= AGENT_FRAME_MAX - 48) {
				if (send_frame(c->fd, &out, in + start, AGENT_FRAME_MAX - 48) < 0)
					return EXIT_FAIL;
				start += AGENT_FRAME_MAX - 48;
				n->sent++;
			}
			memmove(in, in + start, llen - start);
			llen -= start;
			if (flush_frames(c->fd, &out) < 0)
				return EXIT_FAIL;
		}
	}
	return EXIT_OK;
}

/*
 * open, listen --json: the data is on stdout as without it, so the result
 * is one JSON object, the last line on stderr: what was asked, the exit
 * code, and for datagrams how many went each way.
 */
static void
print_summary(const struct topts *o, int listen_mode, int udp, int ret,
    const struct counts *n)
{
	json_t *j = json_pack("{s:s, s:s?, s:i, s:s, s:b, s:i}", "command",
	    listen_mode ? "listen" : "open", "peer", o->peer, "port",
	    (int)(udp ? o->udp : o->port), "proto", udp ? "udp" : "tcp", "ok", ret == EXIT_OK,
	    "exit", ret);
	char *s;

	if (n) {
		json_object_set_new(j, "datagrams_sent", json_integer(n->sent));
		json_object_set_new(j, "datagrams_received", json_integer(n->received));
	}
	fflush(stdout);
	if ((s = json_dumps(j, JSON_COMPACT)) != NULL)
		fprintf(stderr, "%s\n", s);
	free(s);
	json_decref(j);
}

static int
do_open(const struct cli *cli, const struct topts *o, int listen_mode)
{
	struct ctl_client *c = connect_agent(cli);
	json_t *req, *r = NULL;
	const char *why;
	struct counts n = { 0, 0 };
	int ret = EXIT_FAIL;

	if (c == NULL) {
		ret = no_agent();
		if (o->json)
			print_summary(o, listen_mode, 1, ret, NULL);
		return ret;
	}
	if (listen_mode)
		req = json_pack("{s:s, s:i}", "cmd", "listen", "port", (int)o->udp);
	else
		req = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i}", "cmd", "open", "peer", o->peer,
		    "port", (int)o->udp, "local_port", (int)o->lport, "family", o->v6 ? 6 : 4,
		    "timeout_ms", (int)o->timeout * 1000);
	if (ctl_send(c, req) < 0 ||
	    (r = ctl_recv(c, (int)(o->timeout * 1000 + 5000), &why)) == NULL) {
		cli_err("tunnel", "%s: the agent did not answer", listen_mode ? "listen" : "open");
		goto out;
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		ret = ctl_fail("tunnel", r);
		goto out;
	}
	if (cli->verbose && !listen_mode)
		fprintf(stderr, "ntm: tunnel: %s:%lld -> %s:%lld via %s\n",
		    json_string_value(json_object_get(r, "local_vip")),
		    (long long)json_integer_value(json_object_get(r, "local_port")),
		    json_string_value(json_object_get(r, "remote_vip")),
		    (long long)json_integer_value(json_object_get(r, "remote_port")),
		    json_string_value(json_object_get(r, "route")));
	ret = bridge(c, listen_mode, listen_mode ? o->count : 0, o->wait, &n);
out:
	json_decref(r);
	disconnect(c);
	if (o->json)
		print_summary(o, listen_mode, 1, ret, &n);
	return ret;
}

/* ---- the command --------------------------------------------------------------- */

/*
 * The options, subcommand and operands into o, what the parser leaves to
 * the command: PEER's form, PORT for a stream (open and listen without
 * --udp), the options that apply to streams or to datagrams only. 0 or
 * EXIT_USAGE.
 */
static int
tunnel_args(struct cmd_call *c, struct topts *o, int peer, int streams)
{
	struct in6_addr in6;
	int stream = streams && !(c->given & G(T_UDP));
	const char *sub = c->sub->name;

	o->sub = sub;
	o->given = c->given;
	if (c->npos != peer + stream) {
		if (c->npos < peer + stream)
			cli_err("tunnel", "%s: missing PORT (or --udp PORT for datagrams)", sub);
		else
			cli_err("tunnel", "%s: unexpected argument '%s'", sub, c->pos[peer + stream]);
		return EXIT_USAGE;
	}
	if (peer) {
		o->peer = c->pos[0];
		if (inet_pton(AF_INET6, o->peer, &in6) == 1)
			o->v6 = 1;	/* a peer's IPv6 vIP: ping and open over IPv6 */
		if (!valid_peer(o->peer)) {
			cli_err("tunnel", "PEER '%s': %s", o->peer, PEER_FORM);
			return EXIT_USAGE;
		}
	}
	if (stream) {
		const char *ps = c->pos[peer];

		if (parse_long(ps, 1, 65535, &o->port) < 0) {
			cli_err("tunnel", "PORT '%s': expected a TCP port 1..65535", ps);
			return EXIT_USAGE;
		}
		if (o->given & (G(T_LPORT) | G(T_WAIT) | G(T_COUNT))) {
			cli_err("tunnel", "%s: --local-port, --wait and --count apply to --udp "
			    "only", sub);
			return EXIT_USAGE;
		}
	} else if (o->given & G(T_EXEC)) {
		cli_err("tunnel", "%s: --exec applies to streams, not to --udp", sub);
		return EXIT_USAGE;
	}
	return 0;
}

static int
ping_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	struct topts *o = c->args;

	if (tunnel_args(c, o, 1, 0) != 0)
		return EXIT_USAGE;
	if (o->count == 0)
		o->count = 4;
	o->timeout = cli_timeout(cli, o->timeout);
	return do_ping(cli, o);
}

/* open and listen: a stream with PORT, datagrams with --udp. */
static int
open_listen(struct cli *cli, struct cmd_call *c, int listen_mode)
{
	struct topts *o = c->args;
	int ret;

	if (tunnel_args(c, o, !listen_mode, 1) != 0)
		return EXIT_USAGE;
	o->timeout = cli_timeout(cli, o->timeout);
	if (o->given & G(T_UDP))
		return do_open(cli, o, listen_mode);
	struct stream_opts so = { .peer = o->peer, .port = o->port, .timeout = o->timeout,
	    .listen = listen_mode, .v6 = o->v6, .exec = o->exec };

	ret = stream_run(cli, &so);
	if (o->json)
		print_summary(o, listen_mode, 0, ret, NULL);
	return ret;
}

static int
open_exec(void *ctx, struct cmd_call *c)
{
	return open_listen(ctx, c, 0);
}

static int
listen_exec(void *ctx, struct cmd_call *c)
{
	return open_listen(ctx, c, 1);
}

static int
list_exec(void *ctx, struct cmd_call *c)
{
	struct topts *o = c->args;

	if (tunnel_args(c, o, 0, 0) != 0)
		return EXIT_USAGE;
	o->timeout = cli_timeout(ctx, o->timeout);
	return do_list(ctx, o);
}

static int
close_exec(void *ctx, struct cmd_call *c)
{
	struct topts *o = c->args;

	if (tunnel_args(c, o, 1, 0) != 0)
		return EXIT_USAGE;
	o->timeout = cli_timeout(ctx, o->timeout);
	return do_close(ctx, o);
}

static int
forward_exec(void *ctx, struct cmd_call *c)
{
	struct topts *o = c->args;

	if (tunnel_args(c, o, 0, 0) != 0)
		return EXIT_USAGE;
	if (o->remove && (o->lspec || o->rspec)) {
		cli_err("tunnel", "forward: --remove goes alone");
		return EXIT_USAGE;
	}
	return forward_run(ctx, o->lspec, o->rspec, o->remove, o->v6 ? 6 : 4, o->json);
}

#define PEER_MISSING	"missing PEER (a client FQDN or vIP)"

/* min/max: the parser's bounds; PORT of a stream is counted in tunnel_args. */
static const struct cmd_entry tunnel_ping = { .name = "ping",
    .takes = "count interval ipv6 timeout json", .min = 1, .max = 1,
    .missing = PEER_MISSING, .operands = CMD_OPERAND_PEER, .exec = ping_exec };
static const struct cmd_entry tunnel_open = { .name = "open",
    .takes = "ipv6 udp exec local-port wait timeout json", .min = 1, .max = 2,
    .missing = PEER_MISSING, .operands = CMD_OPERAND_PEER, .exec = open_exec };
static const struct cmd_entry tunnel_listen = { .name = "listen",
    .takes = "udp count exec json", .min = 0, .max = 1, .exec = listen_exec };
static const struct cmd_entry tunnel_list = { .name = "list", .takes = "json",
    .max = 0, .exec = list_exec };
static const struct cmd_entry tunnel_close = { .name = "close", .takes = "json",
    .min = 1, .max = 1, .missing = PEER_MISSING, .operands = CMD_OPERAND_PEER,
    .exec = close_exec };
static const struct cmd_entry tunnel_forward = { .name = "forward",
    .takes = "local remote remove ipv6 json", .max = 0, .exec = forward_exec };

static const struct cmd_entry *const tunnel_subs[] = {
	&tunnel_ping, &tunnel_open, &tunnel_listen, &tunnel_list, &tunnel_close,
	&tunnel_forward, NULL
};

const struct cmd_entry tunnel_entry = {
	.name = "tunnel",
	.summary = "tunnels to peers: ping, open, listen, list, close, forward",
	.usage = "ping|open|listen|list|close|forward [PEER] [PORT]",
	.opts = tunnel_opts,
	.subs = tunnel_subs,
	.flags = CMD_SUBOPTS_STRICT,
	.missing = "missing subcommand: ping, open, listen, list, close or forward",
	.args_size = sizeof(struct topts),
	.init = tunnel_init,
	.exec = NULL,
};
