/*
 * agentd.h - the agent (`ntm up`): its state, the hooks by which its core
 * reports upward, and the functions of each of its files.
 *
 * The core, from the bottom: udp.c (the socket, batching), tunnels.c (the
 * tunnel table; each tunnel a peer core, lib/core/peer.c), directions.c (route directions
 * and tunnel requests to the DC), registration.c (REG_REQ / REG_RESP and
 * network changes), input.c (each datagram to its room). Above it:
 * control.c (the control socket), streams.c, forwards.c, socks.c,
 * stack.c (lwIP), tundev.c (TUN mode), reached from the core only through
 * struct agent_hooks (hooks.c). main.c starts and stops them all.
 */
#ifndef NTM_AGENTD_H
#define NTM_AGENTD_H

#define AGENT_FWD_MAX	64	/* port forwards held by one agent */
#define AGENT_NAT_TRIES	3	/* reflection probes per server, one a second */

#include <sys/socket.h>

#include <stdint.h>

#include "ntm-rt.h"
#include "reg.h"
#include "route.h"
#include "tunnel.h"
#include "peer.h"
#include "probe.h"
#include "punch.h"
#include "agent.h"

struct event;
struct event_base;
struct ntm_ip;

/* Why a datagram was dropped (counted, shown by status and tunnel list). */
enum { DROP_MALFORMED, DROP_UNKNOWN, DROP_AUTH, DROP_REPLAY, DROP_STATE, DROP_IDENTITY,
    DROP_N };
extern const char *const agent_drop_names[DROP_N];

/* One tunnel: the peer core (lib/core/peer.c: the tunnel core, route, endpoint,
 * relay binds, queue) and what the agent knows around it. */
struct tun {
	struct agent	*a;
	struct ntm_peer	 p;
	uint8_t		 tid[NTM_TUNNEL_ID_LEN];
	char		 tid_hex[2 * NTM_TUNNEL_ID_LEN + 1];
	char		 peer[NTM_NAME_MAX + 1], vip4[64], vip6[64];
	uint8_t		 pv4[4], pv6[16];
	int		 has4, has6;
	char		 reason[96];
	/* the peer device's key, from its AS certificate (checked against
	 * the AS key and the FQDN), and its fingerprint */
	char		 peer_fp[NTM_DFP_LEN];
	uint64_t	 peer_serial;
	int64_t		 hs_sent;		/* us, last HS_INIT / HS_RESP sent */
	double		 rtt_ms;		/* last ping, else handshake RTT */
	int64_t		 created, expires;
	int		 recreating;
	/* a tunnel the peer lost, remade while its users run (agent.h) */
	int64_t		 unanswered;		/* ms: first send since the peer was
						   last heard; 0: none */
	int		 remaking;		/* a new tunnel asked of the DC */
	int		 remakes;		/* asked since the peer was last heard */
	int64_t		 remake_next;		/* not before this (ms) */
	struct event	*timer;
	int64_t		 armed;			/* when timer fires; 0 if not set */
	int		 path_new;		/* the path changed; nothing came over it yet */
	void		*replay;		/* TUN mode: TCP lately sent (tundev.c) */
	/* punching again after a move (docs/protocol.md §4.8): the peer's
	 * latest candidates (none: the DC gave the route no punching) */
	struct sockaddr_storage pcand[NTM_PEER_CANDS];
	int		 npcand;
	int		 peer_nat;		/* its NAT kind (enum ntm_nat), if it told */
	int		 repunch_wanted;	/* this end moved: at the NAT's verdict */
	int		 peer_closed;		/* the peer closed it (CLOSE): freed at
						   the timer, not within its input */
	int		 tell_peer;		/* our NAT situation or family changed on a
						   route the peer's DC opened: at the NAT's
						   verdict, the peer asks its DC (§4.6 step 6) */
	uint64_t	 repunches;		/* punching started again after a move */
	int64_t		 direct_at;		/* ms: punching failed, try again then
						   (or, move_due, punch after a move) */
	int		 move_due;		/* either end moved: punch at direct_at */
	int		 move_waits;		/* for our registration to show the move */
	int		 direct_tries;		/* since the last punched path */
	uint64_t	 direct_retries;	/* tried again, no move in between */
	uint32_t	 cands_gen, cands_gen_rx;	/* CANDIDATES sent, last taken */
	int64_t		 cands_rx_at;		/* the peer's: a bucket of cands_tokens, */
	int		 cands_tokens;		/* filled up to cands_rx_at */
	uint8_t		 cands_msg[NTM_PUNCH_CANDS_LEN(NTM_PUNCH_CANDS_MAX)];
	size_t		 cands_len;
	int		 cands_left;		/* copies still to send, one a second */
	int64_t		 cands_next;
	/* our word on the path over the core's (a move's): a prefix to it, or
	 * all of it, while the core's punching state is in note_mask */
	char		 note[96];
	int		 note_prefix, note_mask;
	/* birthday probing's extra sockets (bday.c), by the core's number */
	struct bday_sock *bsock[NTM_PEER_BDAY_SOCKS + 1];
	int		 nbsock;
};

struct ctl;
struct ntm_moved;

/* What the core tells the rooms above it (hooks.c fills the table). */
struct agent_hooks {
	/* tunnel_new: t was made (and is in the table); tunnel_gone: t is
	 * being freed and no other tunnel goes to its peer */
	void	(*tunnel_new)(struct agent *a, struct tun *t);
	void	(*tunnel_gone)(struct agent *a, struct tun *t);
	/* t's handshake is done; its queued packets are sent */
	void	(*tunnel_up)(struct agent *a, struct tun *t);
	/* directions were applied: a remade tunnel may be up already */
	void	(*tunnels_changed)(struct agent *a);
	/* a tunnel request failed: the control connection with serial
	 * (0: none) and, when peer is not NULL, the dials waiting on peer */
	void	(*tunnel_failed)(struct agent *a, uint64_t serial, const char *peer,
		    const char *code, const char *msg);
	/* an authentic inner packet from t's peer to our vIPs that the core
	 * does not answer itself; 0 taken, -1 dropped (counted) */
	int	(*inner)(struct agent *a, struct tun *t, const struct ntm_ip *ip,
		    const uint8_t *p, size_t len);
	/* the first REG_RESP; line ("registered: ...\n") says where we are */
	void	(*registered)(struct agent *a, const char *line);
	/* t's path changed (a move of either end, a new route) and an
	 * authentic datagram just came over the new one */
	void	(*path_confirmed)(struct agent *a, struct tun *t);
};

struct agent {
	const struct agent_hooks *hooks;
	struct cli	*cli;
	struct session	 s;
	struct agent_opts o;
	struct event_base *base;
	int		 udp, dual, gro, gso_off;
	int		 tun_mode;	/* the vIPs are on a kernel TUN interface */
	uint16_t	 port;
	struct event	*udp_ev;
	struct ntm_chan	 chan;
	struct sockaddr_storage dc;
	socklen_t	 dclen;
	struct sockaddr_storage	 dc_alt;	/* the DC's address of the other family */
	socklen_t	 dc_altlen;		/* 0: none known */
	uint8_t		 vip4[4], vip6[16];
	int		 has_vip4, has_vip6;
	/* registration */
	struct sockaddr_storage locals[NTM_REG_ADDRS];
	int		 nlocals;
	int		 registered, natted, family, awaiting, missed;
	struct ntm_reg_resp resp;
	int64_t		 resp_at;
	/* The second family (REG_REQ with NTM_REG_F_ALSO, protocol.md §4.2):
	 * registered over dc_alt too while this host has an address of its
	 * family and a route to it, so the DC may route over either. */
	struct agent_also {
		int		 on;		/* sending: dc_alt is reachable */
		int		 family;	/* AF_INET6 or AF_INET, while on */
		int		 registered, natted, nat_sent;
		struct sockaddr_storage reflexive;
		int64_t		 at;		/* ms of the last answer */
		uint64_t	 ctr[4];	/* counters of the last ones sent */
		int		 nctr;
		uint64_t	 sent, resps;
	} also;
	struct timespec	 sess_mtim;	/* session.json as last looked at */
	ino_t		 sess_ino;
	long		 keepalive_s;
	struct event	*reg_timer, *reg_wait, *net_timer;
	const char	*net_why;
	int64_t		 last_senderr;
	int		 nl;
	struct event	*nl_ev;
	/* NAT discovery (nat.c): probes to the DC [0] and the RS [1] */
	struct agent_probe {
		int			 known;		/* an address to probe */
		struct sockaddr_storage	 to;
		int			 sent;
		uint8_t			 txid[AGENT_NAT_TRIES][NTM_PROBE_TXID_LEN];
		int			 answered;
		struct sockaddr_storage	 seen;
		/* the filtering test (the RS only) */
		int			 filt;
		struct ntm_filt_test	 ft;
	} probe[2];
	struct sockaddr_storage relay4, relay6;	/* the RS's UDP addresses (GET /v1/session) */
	int		 relay_state;	/* 0 not asked, 1 asking, 2 answered or failed */
	int		 nat_running, nat_wanted;
	struct event	*nat_timer;
	int		 nat;		/* enum ntm_nat found; 0 unknown */
	int		 nat_run;	/* enum ntm_nat of the last run (maybe unknown) */
	int		 filt_running;	/* the filtering test still waits */
	int		 filter;	/* enum ntm_filter found; 0 unknown */
	int		 nat_dc_ok;	/* the DC answered a probe, so it takes the kind in REG_REQ */
	int		 filter_dc_ok;	/* the DC lists reg_filtering (GET /v1/session): it
					 * takes the filtering in REG_REQ */
	uint64_t	 nat_runs;
	uint64_t	 nat_net;	/* net_changes when the last run started */
	/* directions */
	struct ntm_httpc *http;
	struct ntm_httpc *relay;	/* clients' requests, kept alive (control.c) */
	int		 dir_inflight, dir_again;
	uint8_t		 stash[NTM_HS_INIT_LEN];	/* HS_INIT before its direction */
	struct sockaddr_storage stash_from;
	int		 has_stash;
	int64_t		 stash_fetch_at;
	/* tunnels */
	struct tun	*tuns[AGENT_TUN_MAX];
	int		 ntun;
	/* control socket */
	int		 lis_fd;
	struct event	*lis_ev;
	struct ctl	*ctls[AGENT_CTL_MAX];
	int		 nctl;
	uint64_t	 ctl_serial;
	char		*sock_path, *pid_path;
	int		 ready_fd;
	int64_t		 started;
	/* counters */
	uint64_t	 rx, tx, send_errors, reg_sent, reg_resps, nudges, moved,
				 directions;
	uint64_t	 drops[DROP_N], inner_drops, echo_answered, net_changes;
	uint64_t	 tcp_rexmits;	/* connections resent at once on a new path */
	uint64_t	 gso_sends, gro_recvs;	/* messages carrying runs */
	uint64_t	 stack_in, stack_out, stack_noroute;	/* user-space stack packets */
	uint64_t	 tundev_in, tundev_out, tundev_noroute;	/* TUN mode packets */
	uint64_t	 tundev_denied;		/* from peers, refused by the filter */
	uint64_t	 tundev_replayed;	/* TCP sent again on a new path */
	uint64_t	 tun_swept;		/* tunnels dropped: never up in time */
	uint64_t	 tun_refused;		/* peers' tunnels refused (--accept) */
	uint64_t	 tun_remade;		/* new tunnels asked for lost ones */
};

/* udp.c: the UDP socket. Gather sends until the matching end (nestable);
 * then one sendmmsg. */
typedef void (*agent_datagram_fn)(struct agent *a, uint8_t *p, size_t n,
    struct sockaddr_storage *from);
int  agent_udp_open(long port, int *dual, int *gro, uint16_t *bound, char *err,
    size_t errlen);
int  agent_udp_start(struct agent *a, agent_datagram_fn fn);	/* on the loop */
void agent_batch_begin(struct agent *a);
void agent_batch_end(struct agent *a);
int  agent_udp_send(struct agent *a, const uint8_t *p, size_t n,
    const struct sockaddr_storage *to);
/* The network may have changed: registration.c's net timer, in a moment. */
void agent_net_soon(struct agent *a, const char *why);

/* tunnels.c: the tunnel table; each tunnel on the wire */
struct tun *agent_tun_by_peer(struct agent *a, const char *peer);
struct tun *agent_tun_by_tid(struct agent *a, const uint8_t *tid);
struct tun *agent_tun_by_index(struct agent *a, uint32_t idx);
/* A new tunnel from nt (filled by a direction) and its core's cfg; it
 * replaces any older one to the same peer. NULL with err filled. */
struct tun *agent_tun_new(struct agent *a, const struct tun *nt,
    const struct ntm_tunnel_cfg *cfg, char *err, size_t errlen);
/* The new route of nt (same tunnel_id) for t: keys and indices kept. */
void agent_tun_reroute(struct tun *t, const struct tun *nt);
void agent_tun_free(struct tun *t);
/* An inner packet to t's peer: sent, or queued until the tunnel is up. */
int  agent_tun_send(struct tun *t, const uint8_t *pkt, size_t len);
void agent_tun_keepalive(struct tun *t);
/* Our address changed: a relay bind (then a keepalive), or a keepalive. */
void agent_tun_rebind(struct tun *t);
/* 1 if t's route is the peer's DC's to remake (a relay session its DC
 * opened: this end is side 1), not ours (§4.4 other_dc, §4.6 step 6).
 * Who asks its DC for a relayed route is the relay side, never the
 * handshake role (p.initiator): a DC makes its requester side 0 and the
 * initiator of a new tunnel, but an end keeps its role when the route is
 * remade (agent_tun_reroute), so a tunnel that started direct with the
 * peer initiating and was remade relayed by our DC has us side 0 and
 * responder. The side comes with every new direction. */
int  agent_tun_peer_remakes(const struct tun *t);
/* Such a route: the peer is told to ask its DC for it again (a CANDIDATES
 * of kind none, no candidates; §4.6 step 6), relayed meanwhile; why
 * starts the note ("this end moved ..."). */
void agent_tun_tell_peer(struct tun *t, const char *why);
void agent_tun_set_keepalive(struct tun *t, long keepalive_s);
/* Tells the peer this end closes the tunnel (CLOSE, twice: a datagram may
 * be lost), before the caller frees it. */
void agent_tun_close_tell(struct tun *t);	/* the DC's new one */
void agent_tun_arm(struct tun *t);		/* the timer, at the next deadline */
/* Tunnels never up in time are dropped (or, made for a lost one that
 * still has users, asked for again); returns how many went. */
int  agent_tun_sweep(struct agent *a, int64_t now);
/* A datagram of t's (HS_INIT, HS_RESP, DATA) from from, on our socket
 * sock (0 the main one, else an extra one of t's, bday.c). */
void agent_tun_input(struct tun *t, uint8_t *p, size_t n,
    const struct sockaddr_storage *from, int sock);
int  agent_tun_relay_ack(struct agent *a, const uint8_t *p, size_t n);	/* -1: no tunnel's */
void agent_tun_moved(struct agent *a, const struct ntm_moved *m);
/* A PUNCH for t (docs/protocol.md §4.8): answered, or the path moves. */
void agent_tun_punch(struct tun *t, const uint8_t *p, size_t n,
    const struct sockaddr_storage *from, int sock);

/* bday.c: birthday probing's extra sockets of a tunnel (§4.8): a datagram
 * from socket idx (opened at first use), the sockets the core no longer
 * uses closed, all closed. */
void agent_bday_send(struct tun *t, int idx, const uint8_t *p, size_t n,
    const struct sockaddr_storage *to);
void agent_bday_sync(struct tun *t);
void agent_bday_free(struct tun *t);
/* The NAT's verdict after a discovery (nat.c; reflexive: what the DC, else
 * the RS, saw, NULL if nothing): tunnels whose punched path this end's
 * move cost tell the peer where to punch now (CANDIDATES, §4.8) and punch
 * again, or stay relayed saying why. */
void agent_tun_nat_found(struct agent *a, int nat, const struct sockaddr_storage *reflexive);
/* t's path (direct, relayed, punched), why, and punching's numbers into j
 * (tunnel list, --json). */
void agent_tun_path_json(const struct tun *t, json_t *j);
int  agent_drop_reason(int err);		/* NTM_ERR_* -> DROP_* */

/* directions.c: route directions; tunnels asked of the DC */
struct tun *agent_apply_direction(struct agent *a, json_t *d, char *err, size_t errlen);
void agent_fetch_directions(struct agent *a);
/* POST /v1/tunnel to peer (tid: remake that one); the answer to the control
 * connection with serial ctl (0: none). 0 or -1. */
int  agent_request_tunnel(struct agent *a, const char *peer, const uint8_t *tid,
    uint64_t ctl);

/* registration.c: REG_REQ / REG_RESP; network changes */
int  agent_reg_start(struct agent *a);		/* timers, netlink; on the loop */
void agent_reg_begin(struct agent *a);		/* the first REG_REQ */
void agent_reg_resp(struct agent *a, const struct ntm_reg_resp *r);
/* 1 if ss is one of the addresses this host registered from. */
int  agent_among_locals(const struct agent *a, const struct sockaddr_storage *ss);
void agent_net_changed(struct agent *a, const char *why);
void agent_reg_offline(struct agent *a);	/* at stop */
void agent_reg_stop(struct agent *a);
void agent_reg_send_now(struct agent *a);	/* a REG_REQ now (the NAT kind changed) */

/* nat.c: NAT behaviour discovery from the agent's socket (protocol §4.7) */
void agent_nat_discover(struct agent *a, const char *why);
/* A PROBE_RESP from `from`: 0, or -1 if it answers no probe of ours. */
int  agent_nat_input(struct agent *a, const uint8_t *p, size_t n,
    const struct sockaddr_storage *from);
void agent_nat_stop(struct agent *a);

/* input.c: a datagram from the UDP socket, to its room */
void agent_input(struct agent *a, uint8_t *p, size_t n, struct sockaddr_storage *from);

/* hooks.c: the table the core reports through */
extern const struct agent_hooks agent_hooks;

/* stack.c: lwIP on the vIPs, run on the agent's loop */
int  agent_ip_start(struct agent *a, char *err, size_t errlen);
void agent_ip_input(struct agent *a, const uint8_t *p, size_t len);
void agent_ip_kick(struct agent *a);	/* re-arm lwIP's timers after a call */
int  agent_ip_is_ours(struct agent *a, int version, const uint8_t *addr);
/* t's path works again: the stack's TCP connections to its peer resend
 * what is unacknowledged now rather than at their retransmission timer. */
void agent_ip_path_confirmed(struct agent *a, struct tun *t);

/* streams.c: TCP byte streams between control connections and lwIP.
 * The stream takes over the connection's bufferevent (and frees it). */
struct bufferevent;
enum st_kind { SK_CTL, SK_RAW, SK_SOCKS };
void agent_stream_connect(struct agent *a, struct bufferevent *bev, enum st_kind kind,
    int fwd, struct tun *t, int family, uint16_t port, int64_t timeout_ms);
/* streams of forward fwd open now; *total: streams ever opened */
int  agent_stream_count(int fwd, uint64_t *total);
/* A `tunnel listen` on TCP port (the caller checked agent_port_holder). */
int  agent_stream_listen(struct agent *a, struct bufferevent *bev, uint16_t port,
    char *err, size_t errlen);
void agent_stream_tunnel_gone(struct agent *a, struct tun *t, const char *why);
void agent_stream_stop_all(struct agent *a);
/* 1 with why in buf when a `tunnel listen` waits on TCP port, else 0 */
int  agent_stream_holder(uint16_t port, char *buf, size_t len);
json_t *agent_stream_json(struct agent *a);

/* forwards.c: port forwards; dialing a peer by name (forwards, SOCKS5).
 * agent_dial takes bev over: the stream, or an error to the application. */
void agent_dial(struct agent *a, struct bufferevent *bev, enum st_kind kind, int fwd,
    const char *peer, int family, uint16_t port);
void agent_dial_tunnel_up(struct agent *a, struct tun *t);
void agent_dial_prepare(struct agent *a, const char *peer);	/* ask for a tunnel */
void agent_dial_failed(struct agent *a, const char *peer, const char *why);
json_t *agent_fwd_request(struct agent *a, const char *cmd, json_t *req);
int  agent_fwd_start(struct agent *a);
void agent_fwd_restore(struct agent *a);	/* the saved forwards, at start */
/* 1 with what holds TCP port of our vIPs (a `tunnel listen`, a -R forward)
 * and how to free it in buf, else 0 */
int  agent_port_holder(uint16_t port, char *buf, size_t len);
void agent_fwd_stop(struct agent *a);

/* socks.c: SOCKS5 on loopback (ntm up --socks5) */
int  agent_socks_bind(struct agent *a, const char *spec, char *err, size_t errlen);
int  agent_socks_start(struct agent *a);
void agent_socks_forget(struct agent *a);
void agent_socks_stop(struct agent *a);
int  agent_socks_udp(struct agent *a, struct tun *t, const struct ntm_ip *ip);
json_t *agent_socks_json(struct agent *a);

/* tundev.c: TUN mode (ntm up --tun) */
int  agent_tundev_open(struct agent *a, const char *name, char *err, size_t errlen);
/* The inbound filter's rules (lib/core/fw.h), after open: 0, or -1 with err. */
int  agent_tundev_allow(const char *const *rules, int n, char *err, size_t errlen);
/* Drops every capability but CAP_NET_ADMIN (the host routes to peers come
 * and go), for good, and becomes uid:gid (the owner of the profile) when
 * that is not root: 0, or -1 with err. Nothing when not root. */
int  agent_tundev_drop_caps(uid_t uid, gid_t gid, char *err, size_t errlen);
int  agent_tundev_start(struct agent *a);
void agent_tundev_route(struct agent *a, struct tun *t, int add);
/* An authentic inner packet from t's peer: to the kernel, if the filter
 * lets it in. */
void agent_tundev_input(struct agent *a, struct tun *t, const uint8_t *p, size_t len);
void agent_tundev_path_confirmed(struct agent *a, struct tun *t);
const char *agent_tundev_name(void);
void agent_tundev_stop(struct agent *a);

/* logfile.c: the log file (ntm up --log) */
int  agent_log_open(const char *path, int verbose, char *err, size_t errlen);
const char *agent_log_path(void);	/* absolute, or NULL when none is open */
void agent_log_detached(void);		/* after daemon(): stdout, stderr to it too */
void agent_log_close(void);

/* saved.c: STATE_DIR/agent.json, the forwards and SOCKS5 address
 * brought back at the next start */
struct cli;
int  agent_saved_load(const struct cli *cli, char *err, size_t errlen);
const char *agent_saved_socks5(void);		/* or NULL */
void agent_saved_set_socks5(const char *spec);	/* NULL: none; saved at once */
json_t *agent_saved_forwards(void);		/* borrowed array */
void agent_saved_set_forwards(json_t *arr);	/* stolen; saved at once */
void agent_saved_free(void);

/* control.c */
int  agent_ctl_listen(struct agent *a, char *err, size_t errlen);	/* before fork */
int  agent_ctl_start(struct agent *a);		/* on the loop */
void agent_ctl_forget(struct agent *a);		/* parent of a detach: close only */
void agent_ctl_stop(struct agent *a);		/* close all, remove the socket */
void agent_ctl_net_changed(struct agent *a);	/* clients' HTTPS connections dropped */
void agent_ctl_tunnel_up(struct agent *a, struct tun *t);
void agent_ctl_tunnels_changed(struct agent *a);
void agent_ctl_tunnel_failed(struct agent *a, uint64_t serial, const char *code,
    const char *msg);
int  agent_ctl_echo_reply(struct agent *a, struct tun *t, const struct ntm_ip *ip);
/* Every control connection waiting for a tunnel to peer fails with code. */
void agent_ctl_peer_failed(struct agent *a, const char *peer, const char *code,
    const char *msg);
int  agent_ctl_udp(struct agent *a, struct tun *t, const struct ntm_ip *ip);

#endif
