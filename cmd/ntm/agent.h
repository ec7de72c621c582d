/*
 * agent.h - the ntm agent (`ntm up`): one UDP socket for registration,
 * relay binds and every tunnel, a control socket speaking JSON lines
 * (docs/protocol.md §6), and the helpers the CLI commands use to reach it.
 */
#ifndef NTM_AGENT_H
#define NTM_AGENT_H

#include <sys/socket.h>

#include <stdint.h>

#include <jansson.h>

#include "ntm-cli.h"

#define AGENT_SOCK		"agent.sock"
#define AGENT_PID		"agent.pid"
#define AGENT_LOG		"agent.log"	/* in the state dir, unless --log */
#define AGENT_REG_CTR		"reg-counter"	/* the registration counters' floor */
#define AGENT_SAVED		"agent.json"	/* forwards, SOCKS5: brought back at up */
#define AGENT_LOG_MAX		(1024 * 1024)	/* then agent.log becomes agent.log.1 */
#define AGENT_TUN_MAX		64	/* tunnels held */
#define AGENT_TUN_KEEPALIVE_MS	10000	/* a tunnel's keepalive, at most (§4.3):
					   less when the agent registers more often */
#define AGENT_CTL_MAX		16	/* control connections */
#define AGENT_LINE_MAX		8192	/* one control request */
#define AGENT_FRAME_MAX		1400	/* one bridged datagram (control frames) */
#define AGENT_PING_MAX		10000	/* --count */
#define AGENT_STALE_MS		30000	/* an up tunnel silent this long is remade
					   for a new command */
/* A tunnel the peer lost (its agent restarted) is remade while the
 * commands on it run: data sent and nothing heard from the peer for
 * AGENT_UNANSWERED_MS (the initiator; twice that for the responder, so the
 * two ends' requests do not cross), or dead after it was up. Bounded: at
 * most AGENT_REMAKE_MAX requests to the DC without a word from the peer,
 * the first AGENT_REMAKE_BACKOFF_MS apart, each gap twice the last. */
#define AGENT_UNANSWERED_MS	15000	/* the peer's keepalive every 10 s, + 5 s */
#define AGENT_REMAKE_MAX	6
#define AGENT_REMAKE_BACKOFF_MS	5000
#define AGENT_SETUP_MAX_MS	30000	/* a tunnel never up this long after it
					   was made leaves the table */

#define AGENT_ALLOW_MAX	64	/* NTM_FW_RULES_MAX */
#define AGENT_ACCEPT_MAX	64	/* --accept patterns */

struct agent_opts {
	int		 foreground;
	long		 port;		/* 0: any */
	long		 keepalive_s;	/* 0: as the DC says */
	long		 direct_retry_s;	/* 0: DIRECT_RETRY_S; -1: never (tunnels.c) */
	const char	*dc_udp;	/* "addr:port" or NULL */
	const char	*resolver;	/* "addr:port" or NULL */
	long		 timeout_s;	/* how long `ntm up` waits for the first REG_RESP */
	const char	*socks5;	/* "addr:port" on loopback, or NULL: the saved one */
	int		 socks5_off;	/* --socks5 off: none, and forget the saved one */
	const char	*tun;		/* TUN interface name (TUN mode), or NULL */
	const char	*allow[AGENT_ALLOW_MAX];	/* --allow RULE (fw.h syntax) */
	int		 nallow;				/* may exceed the array: refused */
	/* --accept PEER: only these peers (an FQDN, or *.DOMAIN) may open a
	 * tunnel to this device; none given: any peer. */
	const char	*accept[AGENT_ACCEPT_MAX];
	int		 naccept;				/* may exceed the array: refused */
	const char	*log;		/* log file, or NULL: STATE_DIR/agent.log */
	int		 quiet;		/* nothing on stdout (up --json prints instead) */
};

/* agent/socks.c: is spec a loopback ADDR:PORT? 0, or -1 with err filled. */
int agent_socks_check(const char *spec, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errlen);

/* agent/directions.c: is pattern an FQDN or *.DOMAIN? Does peer match it? */
int agent_accept_valid(const char *pattern);
int agent_accept_match(const char *pattern, const char *peer);

/* agent/main.c: runs the agent (after up.c checked the session); exit code. */
int agent_main(struct cli *cli, const struct agent_opts *o);

/* agent_net.c: finding the DC and our own addresses. */
/* The DC's UDP address: opt, else ntm.conf dc_udp, else SRV _ntm._udp.<domain>
 * and A/AAAA through the resolver (opt, else ntm.conf resolver, else the
 * system's). 0, or -1 (lookup failed) / -2 (bad syntax) with err filled. */
int  agent_dc_udp(const struct cli *cli, const char *domain, const char *opt_dc_udp,
    const char *opt_resolver, struct sockaddr_storage *ss, socklen_t *len,
    struct sockaddr_storage *alt, socklen_t *altlen, char *err, size_t errlen);
/* The DC's address of the family this host can reach now: when dc has no
 * route and alt (the DC's address of the other family, from DNS; altlen 0:
 * none) has one, the two swap. 1 if they did. */
int  agent_dc_family(struct sockaddr_storage *dc, socklen_t *dclen,
    struct sockaddr_storage *alt, socklen_t *altlen);
/* Whether the kernel has a route to ss (a UDP connect: nothing is sent). */
int  agent_routable(const struct sockaddr_storage *ss, socklen_t len);
/* Up to n global addresses of the host's interfaces (no loopback, no
 * link-local), with port; only the loopback address when the DC (dc, may
 * be NULL) is on loopback. Returns the count. */
int  agent_local_addrs(struct sockaddr_storage *out, int n, uint16_t port,
    const struct sockaddr_storage *dc);
/* Monotonic milliseconds and microseconds; wall-clock microseconds. */
int64_t agent_now_ms(void);
int64_t agent_now_us(void);
uint64_t agent_wall_us(void);
/* Loads the session's channel keys into c, and the floor of its send
 * counters from ctr_path (STATE_DIR/reg-counter, lib/io/ctr.c). */
struct ntm_chan;
struct session;
int  agent_chan(struct ntm_chan *c, const struct session *s, const char *ctr_path,
    char *err, size_t errlen);
/* Before sealing on c: its counter above the wall clock (us) and above
 * every counter this session sent, in this process or an earlier one,
 * whatever the clock did. 0, or -1 (the floor cannot be stored: send
 * nothing). */
int  agent_chan_ctr(struct ntm_chan *c);

/* agent_client.c: the client side of the control socket. */
struct ctl_client {
	int	fd;
	size_t	len;
	uint8_t	buf[1024 * 1024];	/* one reply line, or frames */
};
/* new: the control socket path for this profile (DIR/agent.sock with -c,
 * else $XDG_RUNTIME_DIR/ntm/agent.sock, else STATE_DIR/agent.sock). */
char *agent_sock_path(const struct cli *cli);
char *agent_pid_path(const struct cli *cli);
/* Connects; 0, or -1 with errno (ENOENT / ECONNREFUSED: no agent). */
int  ctl_open(struct ctl_client *c, const struct cli *cli);
void ctl_close(struct ctl_client *c);
/* Sends one request (req stolen). 0 or -1. */
int  ctl_send(struct ctl_client *c, json_t *req);
/* Next JSON line (new reference), NULL on EOF/timeout/bad line (*why set). */
json_t *ctl_recv(struct ctl_client *c, int timeout_ms, const char **why);
/* One request, one answer; NULL if the agent did not answer. */
json_t *ctl_call(const struct cli *cli, json_t *req, int timeout_ms);
/* Exit code for an agent error object {"ok":false,"code":...} (prints it). */
int  ctl_fail(const char *cmd, json_t *resp);
/* The agent's status object (new), or NULL when no agent answers. */
json_t *agent_status_json(const struct cli *cli);
/*
 * One HTTPS request carried by a running agent on its kept-alive
 * connections (the "https" verb, docs/protocol.md §6). 0 with *status and
 * the response body (*body new, NUL-terminated, *len bytes); an NTM_ERR_*
 * with errmsg when the request got no HTTP answer; 1 when no agent carries
 * it (none runs, or one that does not know the verb, or a body over
 * AGENT_HTTPS_BODY_MAX): the caller makes the request itself; 2 when the
 * agent went away with the request (errmsg says how): it may or may not
 * have reached the server.
 */
#define AGENT_HTTPS_BODY_MAX	(256 * 1024)
#define AGENT_HTTPS_ANSWER_MAX	(1024 * 1024)
struct agent_https_req {
	const char	*method, *url, *bearer, *ctype;
	const void	*body;
	size_t		 blen;
	long		 timeout_ms;
};
int  agent_https(const struct cli *cli, const struct agent_https_req *q, long *status,
    char **body, size_t *len, char *errmsg, size_t errlen);

#endif
