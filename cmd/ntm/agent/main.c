/*
 * main.c - the agent's life (`ntm up`): the session, the sockets and the
 * log set up before it detaches, the parent waiting for its first lines,
 * the event loop with every room started on it, and the stop. See
 * agentd.h for the rooms and how they call each other.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common.h"
#include "agentd.h"

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
	ntm_httpc_free(a->relay);
	ntm_httpc_free(a->http);
	if (a->udp_ev)
		event_free(a->udp_ev);
	agent_nat_stop(a);
	agent_reg_stop(a);
	daemon_free_signals();
	if (a->base)
		event_base_free(a->base);
	if (a->udp >= 0)
		close(a->udp);
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


/* Before the fork: the session, its keys and vIPs, the DC's address.
 * EXIT_OK, or the exit code (said on stderr). */
static int
setup_session(struct agent *a, struct cli *cli, const struct agent_opts *o)
{
	char err[512], *ctr;
	long pid = 0;
	int r;

	if ((r = session_load(cli, &a->s, err, sizeof(err))) == NTM_ERR_NOTFOUND) {
		cli_err("up", "not logged in (run 'ntm login DC' first)");
		return EXIT_NOSESSION;
	} else if (r < 0) {
		cli_err("up", "%s", err);
		return EXIT_FAIL;
	}
	if (a->s.token_expires <= now_unix()) {
		cli_err("up", "the session has expired (run 'ntm login' again)");
		return EXIT_NOSESSION;
	}
	if (cli_state_prepare(cli, "up") < 0)
		return EXIT_FAIL;
	a->sock_path = agent_sock_path(cli);
	a->pid_path = agent_pid_path(cli);
	if (agent_alive(cli, &pid)) {
		cli_err("up", "an agent is already running (pid %ld, %s)", pid, a->sock_path);
		return EXIT_FAIL;
	}
	ctr = cli_state_path(cli, AGENT_REG_CTR);
	r = agent_chan(&a->chan, &a->s, ctr, err, sizeof(err));
	free(ctr);
	if (r < 0) {
		cli_err("up", "%s", err);
		return EXIT_FAIL;
	}
	vip_parse(a->s.vip4, AF_INET, a->vip4, &a->has_vip4);
	vip_parse(a->s.vip6, AF_INET6, a->vip6, &a->has_vip6);
	if ((r = agent_dc_udp(cli, a->s.domain, o->dc_udp, o->resolver, &a->dc, &a->dclen,
	    &a->dc_alt, &a->dc_altlen, err, sizeof(err))) < 0) {
		cli_err("up", "cannot find the DC's UDP address: %s", err);
		return r == -2 ? EXIT_USAGE : EXIT_UNREACH;
	}
	ntm_sa_unmap(&a->dc, &a->dclen);
	if (a->dc_altlen)
		ntm_sa_unmap(&a->dc_alt, &a->dc_altlen);
	return EXIT_OK;
}

/* --socks5 ADDR or off, else the address saved by an earlier one.
 * EXIT_OK or EXIT_USAGE. */
static int
setup_socks(struct agent *a, const struct agent_opts *o)
{
	const char *saved = o->socks5 || o->socks5_off || o->tun ? NULL :
	    agent_saved_socks5();
	char err[512];

	if (agent_socks_bind(a, saved ? saved : o->socks5, err, sizeof(err)) < 0) {
		if (saved == NULL) {
			cli_err("up", "%s", err);
			return EXIT_USAGE;
		}
		/* a setting from before that no longer works: said, not fatal */
		cli_err("up", "warning: the saved SOCKS5 address is not served: %s "
		    "('ntm up --socks5 off' forgets it)", err);
		(void)agent_socks_bind(a, NULL, err, sizeof(err));
	}
	if (o->socks5 || o->socks5_off)
		agent_saved_set_socks5(o->socks5);
	return EXIT_OK;
}

/* TUN mode, once the interface is up: nothing but CAP_NET_ADMIN, as the
 * owner of the profile (its control socket handed over). */
static int
tun_least_privilege(struct agent *a, struct cli *cli, char *err, size_t errlen)
{
	char *dir = cli_state_path(cli, ".");
	struct stat st;
	int r = 0;

	if (stat(dir, &st) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		r = -1;
	} else if (st.st_uid != 0 && a->sock_path &&
	    lchown(a->sock_path, st.st_uid, st.st_gid) < 0) {
		snprintf(err, errlen, "%s: %s", a->sock_path, strerror(errno));
		r = -1;
	}
	free(dir);
	return r < 0 ? -1 : agent_tundev_drop_caps(st.st_uid, st.st_gid, err, errlen);
}

/* Before the fork: the sockets (UDP, control, SOCKS5, TUN) and the log.
 * EXIT_OK, or the exit code (said on stderr). */
static int
setup_sockets(struct agent *a, struct cli *cli, const struct agent_opts *o)
{
	char err[512], *lp;
	int r;

	if ((a->udp = agent_udp_open(o->port, &a->dual, &a->gro, &a->port, err,
	    sizeof(err))) < 0 || agent_ctl_listen(a, err, sizeof(err)) < 0) {
		cli_err("up", "%s", err);
		return EXIT_FAIL;
	}
	if (agent_saved_load(cli, err, sizeof(err)) < 0)
		cli_err("up", "warning: %s; no forwards or SOCKS5 address brought back", err);
	if ((r = setup_socks(a, o)) != EXIT_OK)
		return r;
	if (agent_tundev_open(a, o->tun, err, sizeof(err)) < 0 ||
	    agent_tundev_allow(o->allow, o->nallow, err, sizeof(err)) < 0 ||
	    (o->tun && tun_least_privilege(a, cli, err, sizeof(err)) < 0)) {
		cli_err("up", "%s", err);
		return EXIT_FAIL;
	}
	lp = o->log ? xstrdup(o->log) : cli_state_path(cli, AGENT_LOG);
	r = agent_log_open(lp, cli->verbose, err, sizeof(err));
	free(lp);
	if (r < 0) {
		cli_err("up", "%s", err);
		return o->log ? EXIT_USAGE : EXIT_FAIL;
	}
	return EXIT_OK;
}

/* Without --foreground: the agent goes on in a child; this process waits
 * for its first lines and says them. 0 in the agent; 1 in the parent, with
 * *ret its exit code; -1 on failure (said). */
static int
detach(struct agent *a, const struct agent_opts *o, int *ret)
{
	int pfd[2];
	pid_t child;
	char b[64];

	if (pipe2(pfd, O_CLOEXEC) < 0 || (child = fork()) < 0) {
		cli_err("up", "cannot start the agent: %s", strerror(errno));
		return -1;
	}
	if (child > 0) {
		/* The agent's sockets and log belong to it now. */
		char *logp = xstrdup(agent_log_path());

		close(pfd[1]);
		agent_log_close();
		*ret = wait_ready(pfd[0], child, o->timeout_s, a->port, a->sock_path, logp,
		    o->quiet);
		free(logp);
		close(a->udp);
		a->udp = -1;
		agent_ctl_forget(a);
		agent_socks_forget(a);
		return 1;
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
	return 0;
}

/* Every room on the event loop. 0, or -1 (logged). */
static int
start_rooms(struct agent *a)
{
	char err[512];

	if ((a->base = event_base_new()) == NULL ||
	    (a->http = ntm_httpc_new(a->base, a->s.ca_file)) == NULL ||
	    agent_udp_start(a, agent_input) < 0 || agent_reg_start(a) < 0 ||
	    agent_ctl_start(a) < 0 || daemon_signals(a->base, NULL, NULL) < 0) {
		log_warnx("cannot set up the event loop");
		return -1;
	}
	if (agent_ip_start(a, err, sizeof(err)) < 0 || agent_fwd_start(a) < 0) {
		log_warnx("user-space stack: %s", err);
		return -1;
	}
	if (agent_socks_start(a) < 0 || agent_tundev_start(a) < 0) {
		log_warnx("cannot serve SOCKS5 or read the TUN interface");
		return -1;
	}
	if (!a->tun_mode)
		agent_fwd_restore(a);	/* the forwards of the last run */
	/* Our addresses change under us: never send a request over a kept-alive
	 * connection that may be bound to an address we no longer have. */
	ntm_httpc_set_reuse(a->http, 0);
	return 0;
}

/* The agent itself, until a signal stops it. Its exit code. */
static int
run(struct agent *a, const struct agent_opts *o)
{
	char b[64];

	if (start_rooms(a) < 0)
		return EXIT_FAIL;
	if (daemon_pidfile(a->pid_path) < 0)
		log_warn("pidfile %s", a->pid_path);
	a->started = agent_now_ms();
	log_info("agent: pid %ld, UDP port %u (%s), DC %s, control %s", (long)getpid(),
	    a->port, a->dual ? "IPv4+IPv6" : "IPv4", ntm_sa_str((struct sockaddr *)&a->dc, b,
	    sizeof(b)), a->sock_path);
	if (o->foreground)
		printf("agent: running (pid %ld, UDP port %u, control %s, log %s)\n",
		    (long)getpid(), a->port, a->sock_path, agent_log_path()), fflush(stdout);
	agent_reg_begin(a);
	event_base_dispatch(a->base);
	log_info("agent: stopping");
	agent_reg_offline(a);
	return EXIT_OK;
}

/* The `ntm up` still waiting hears why the agent did not register. */
static void
say_not_ready(struct agent *a, int ret)
{
	char m[600];

	if (a->ready_fd < 0)
		return;
	if (ret == EXIT_OK)
		snprintf(m, sizeof(m), "error: the agent stopped before registering\n");
	else
		snprintf(m, sizeof(m), "error: the agent could not start (see %s)\n",
		    agent_log_path() ? agent_log_path() : "the system log");
	(void)!write(a->ready_fd, m, strlen(m));
	close(a->ready_fd);
	a->ready_fd = -1;
}

/* Each forwarded or proxied connection holds a socket: allow as many as
 * the hard limit does. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
agent_main(struct cli *cli, const struct agent_opts *o)
{
	struct agent *a;
	struct stat st;
	int ret = EXIT_FAIL, r;

	/* A client, or the `ntm up` waiting for our first lines, that went
	 * away makes a write fail with EPIPE, never kill the agent: from the
	 * start, before the fork (daemon_signals() says so again later). */
	signal(SIGPIPE, SIG_IGN);
	/* Descriptors inherited from whatever started us (a script's pipes,
	 * a test harness's) are not the agent's: held by an agent that runs
	 * on, they keep the starter waiting for their end. Nothing of ours is
	 * open yet, unless in `ntm shell`, whose own descriptors stay. */
	if (!cli->in_shell)
		closefrom(3);
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return EXIT_FAIL;
	a->hooks = &agent_hooks;
	a->udp = a->nl = a->lis_fd = a->ready_fd = -1;
	a->cli = cli;
	a->o = *o;
	a->keepalive_s = o->keepalive_s ? o->keepalive_s : 15;
	raise_nofile();
	if ((ret = setup_session(a, cli, o)) != EXIT_OK ||
	    (ret = setup_sockets(a, cli, o)) != EXIT_OK) {
		agent_free(a);
		return ret;
	}
	ret = EXIT_FAIL;
	if (!o->foreground && (r = detach(a, o, &ret)) != 0) {
		agent_free(a);
		return ret;
	}
	ret = run(a, o);
	say_not_ready(a, ret);
	if (a->pid_path && stat(a->pid_path, &st) == 0)
		unlink(a->pid_path);
	agent_free(a);
	if (!o->foreground)
		_exit(ret);
	return ret;
}
