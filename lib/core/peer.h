/*
 * peer.h - the agent's side of one peer, I/O free and clock free: the
 * tunnel core (tunnel.h) with what surrounds it on the wire. The route
 * (direct, local, relay) and the peer's endpoint; for a relayed tunnel the
 * RELAY_BIND sent until the RS acknowledges it (then every keepalive), its
 * counter kept above the wall clock and every earlier one, and the
 * handshake held back until the RS says the peer is bound too (or 2 s have
 * passed); inner packets queued until the handshake is done; the endpoint
 * following an authenticated datagram from elsewhere, or a MOVED from the
 * DC; for a relayed tunnel between two endpoint-independent NATs, hole
 * punching (docs/protocol.md §4.8): PUNCH probes to the peer's candidate
 * addresses, and the tunnel's path moved from the RS to the candidate
 * that answered (or to a peer-reflexive address the peer's probes and
 * packets came from), same session; against a NAT that maps per
 * destination, birthday probing: the hard end probes from many extra
 * sockets (hooks->output_via), the easy end probes many of its ports. Every call takes the time (monotonic milliseconds; relay binds also
 * the wall clock in milliseconds); datagrams to send go to hooks->output,
 * all of them to ep; the caller calls ntm_peer_tick() at
 * ntm_peer_deadline().
 */
#ifndef NTM_PEER_H
#define NTM_PEER_H

#include <sys/socket.h>

#include "ntm-rt.h"
#include "tunnel.h"

#define NTM_PEER_QUEUE_MAX	16	/* inner packets held until the tunnel is up */
#define NTM_PEER_HS_GATE_MS	2000	/* a relayed initiator waits this long for
					 * the peer's bind, at most */
#define NTM_PEER_REBIND_MS	1000	/* RELAY_BIND again until an ACK */
#define NTM_PEER_CANDS		(1 + NTM_REG_ADDRS)	/* the peer's reflexive address
						 * and its local addresses */
#define NTM_PEER_PUNCH_ROUNDS	10	/* a PUNCH to every candidate each round */
#define NTM_PEER_PUNCH_EVERY_MS	500	/* so 5 s, then it stays relayed */
#define NTM_PEER_DIRECT_DEAD_MS	30000	/* punched, nothing direct from the peer
					 * this long (3 of its keepalives): relay */
#define NTM_PEER_DIRECT_QUIET_MS 1000	/* punched this long ago, and the peer's
					 * packets come through the RS: it went
					 * back to the relay */
#define NTM_PEER_PRFLX		4	/* peer-reflexive addresses kept while
					 * punching (an authentic probe came from
					 * there, not a candidate) */
/*
 * Birthday probing (docs/protocol.md §4.8, "one end maps per destination"):
 * the hard end holds NTM_PEER_BDAY_SOCKS extra sockets, each with its own
 * mapping towards the easy end's reflexive address; asked to, the easy end
 * probes that many random ports of the hard end's IP (1024..65535, none
 * twice) that one of them is hit with odds of 1 - e^-NTM_PEER_BDAY_ODDS
 * (at most NTM_PEER_BDAY_PROBES_MAX), NTM_PEER_BDAY_BURST every
 * NTM_PEER_BDAY_EVERY_MS. Both ends punch NTM_PEER_BDAY_ROUNDS rounds.
 */
#define NTM_PEER_BDAY_SOCKS	256	/* 256 mappings: 2008 probes, 5 s */
#define NTM_PEER_BDAY_ODDS	8	/* a miss: e^-8, 0.034 % */
#define NTM_PEER_BDAY_PROBES_MAX 4096
#define NTM_PEER_BDAY_BURST	16	/* 400 probes a second */
#define NTM_PEER_BDAY_EVERY_MS	40
#define NTM_PEER_BDAY_PORT_MIN	1024
#define NTM_PEER_BDAY_PORTS	(65536 - NTM_PEER_BDAY_PORT_MIN)
#define NTM_PEER_BDAY_ROUNDS	20	/* so 10 s, then it stays relayed */
#define NTM_PEER_BDAY_OPEN_EVERY 4	/* the hard end's sockets probe again
					 * every 4 rounds (2 s), mappings kept */
#define NTM_PEER_BDAY_ASKS	3	/* SPRAY copies, one a round from the
					 * tunnel's being up */

/* The path a tunnel's datagrams take now (the route is what the DC said). */
enum ntm_path {
	NTM_PATH_DIRECT = 1,	/* a direct or local route */
	NTM_PATH_RELAYED,	/* through the RS */
	NTM_PATH_PUNCHED,	/* a relayed route moved to a punched direct path */
};
/* Hole punching on a relayed route. */
enum ntm_punch {
	NTM_PUNCH_OFF = 0,	/* no candidates: the DC gave the reason */
	NTM_PUNCH_TRYING,	/* probing the candidates, relayed meanwhile */
	NTM_PUNCH_DONE,		/* punched */
	NTM_PUNCH_FAILED,	/* no answer in time: relayed */
	NTM_PUNCH_LOST,		/* was punched; back on the relay */
};
/* This end's part in birthday probing (the caller's, from the NAT kinds). */
enum ntm_bday {
	NTM_BDAY_NONE = 0,
	NTM_BDAY_HARD,		/* our NAT maps per destination: many mappings */
	NTM_BDAY_EASY,		/* ours is endpoint-independent: probe, if asked */
};

struct ntm_peer;

/* What the core cannot do itself. */
struct ntm_peer_hooks {
	/* send out's datagrams to to (p->ep, or the RS for relay binds, or a
	 * punching candidate; borrowed for the call, as out is) */
	void	(*output)(struct ntm_peer *p, const struct sockaddr_storage *to,
		    const struct ntm_tun_out *out);
	/* a RELAY_BIND could not be made (err: NTM_ERR_*); tried again
	 * after a keepalive */
	void	(*bind_failed)(struct ntm_peer *p, int err);
	/* optional: as output, from the extra socket sock (1 ..
	 * NTM_PEER_BDAY_SOCKS) of birthday probing, opened at its first use;
	 * without it this end never takes the hard end's part */
	void	(*output_via)(struct ntm_peer *p, int sock, const struct sockaddr_storage *to,
		    const struct ntm_tun_out *out);
};

struct ntm_peer_qpkt {
	size_t		 len;
	uint8_t		 b[NTM_INNER_MTU];
};

/* The route fields (kind .. side) are the caller's to fill before
 * ntm_peer_start() and ntm_peer_reroute(); the rest is the core's, to read. */
struct ntm_peer {
	const struct ntm_peer_hooks *hooks;
	int64_t		 keepalive_ms;		/* the registration's; relay rebinds */
	int		 kind;			/* NTM_ROUTE_* */
	int		 initiator;
	struct sockaddr_storage ep;		/* where we send (the RS for relay) */
	socklen_t	 eplen;
	int		 has_ep;
	uint8_t		 ticket[NTM_TICKET_MAX];
	size_t		 tlen;
	uint8_t		 rkey[NTM_KEY_LEN];
	int		 side;
	int		 ncand;			/* relay: hole punching candidates */
	struct sockaddr_storage cand[NTM_PEER_CANDS];
	int		 bday;			/* relay: enum ntm_bday */
	/* the core's */
	uint8_t		 tid[NTM_TUNNEL_ID_LEN];
	uint8_t		 punch_key[NTM_KEY_LEN];
	struct sockaddr_storage relay_ep;	/* relay: the RS (ep, unless punched) */
	int		 punched;		/* relay: ep is the punched path */
	int		 punch;			/* enum ntm_punch */
	int		 punch_round;
	int64_t		 punch_next, punch_start, punch_ms;	/* punch_ms: time to punch */
	uint8_t		 punch_txid[NTM_PUNCH_TXID_LEN];	/* last byte: candidate */
	uint8_t		 punch_trig[NTM_PEER_CANDS];	/* a triggered probe went */
	int64_t		 direct_at, direct_rx;	/* punched at; last direct datagram */
	uint64_t	 punch_sent, punch_answered;
	int		 ep_sock;		/* punched: our socket for ep (0 the
						 * main one, else an extra one) */
	int		 nprflx;		/* peer-reflexive, this attempt */
	struct sockaddr_storage prflx[NTM_PEER_PRFLX];
	uint32_t	 bday_attempt;		/* hard: SPRAYs of this attempt; */
	int		 bday_asks;		/* copies sent */
	uint32_t	 bday_rx;		/* easy: the last attempt taken */
	int		 bday_want, bday_sent;	/* easy: probes to send, sent */
	int		 bday_again;		/* easy: this SPRAY's started again */
	uint32_t	 bday_off, bday_stride;	/* the ports' order */
	int64_t		 bday_next;
	uint8_t		 bday_txid[NTM_PUNCH_TXID_LEN];	/* bytes 6, 7: the port */
	uint64_t	 bday_probes;		/* both parts: probes sent */
	char		 path_why[96];		/* why the path is what it is */
	struct ntm_tunnel *t;
	int		 acked, peer_bound, ka_on_ack;
	uint64_t	 bind_ctr;
	int64_t		 bind_next;
	uint8_t		 bind_mac[NTM_MAC_LEN];	/* the last bind's: a RELAY_COOKIE answers it */
	int		 has_bind_mac;
	uint8_t		 cookie[NTM_RELAY_COOKIE];	/* an RS under load gave it */
	int64_t		 cookie_until;		/* binds carry it until then */
	uint64_t	 cookies;		/* RELAY_COOKIEs taken */
	int		 hs_started;
	int64_t		 hs_gate;
	uint64_t	 endpoint_moves;
	int		 nq;
	struct ntm_peer_qpkt *q[NTM_PEER_QUEUE_MAX];
};

/* What ntm_peer_recv() found. */
struct ntm_peer_event {
	int		 authentic;	/* the datagram authenticated */
	int		 established;	/* the handshake is done; the queue was sent */
	int		 moved;		/* the endpoint followed the datagram */
	int		 had_ep;	/* with moved: old_ep was the endpoint */
	struct sockaddr_storage old_ep;
	const uint8_t	*payload;	/* an inner packet (into the input), or NULL */
	size_t		 len;
};

/* The tunnel core from cfg (copied; the caller wipes its own). 0, or
 * NTM_ERR_NOMEM with nothing made. */
int  ntm_peer_start(struct ntm_peer *p, const struct ntm_tunnel_cfg *cfg, int64_t now) NTM_WUR;
/* The first datagrams: a RELAY_BIND (and the handshake gate), or the
 * initiator's HS_INIT. */
void ntm_peer_begin(struct ntm_peer *p, int64_t now, uint64_t wall_ms);
/* A new route for the same tunnel (keys and indices kept): np's route
 * fields (its endpoint only if it has one); a fresh bind, or a keepalive.
 * Onto a relay it was not on (from a direct or local route, or another RS
 * address), the initiator shakes hands again there, at the RS's ACK or
 * the gate, as a first relayed handshake: the RS routes by the indices it
 * saw (docs/protocol.md §4.4). */
void ntm_peer_reroute(struct ntm_peer *p, const struct ntm_peer *np, int64_t now,
    uint64_t wall_ms);
/* Frees the tunnel core and the queue, wipes the relay key. p stays. */
void ntm_peer_free(struct ntm_peer *p);

/* One inner packet: sealed and sent (0), or queued until the tunnel is up
 * (1); -1: too long, or the queue is full. */
int  ntm_peer_send(struct ntm_peer *p, const uint8_t *pkt, size_t len, int64_t now);
/* An empty DATA: the peer moves its endpoint to where it came from. */
void ntm_peer_keepalive(struct ntm_peer *p, int64_t now);
/* Our address changed: a relay bind (the keepalive once acknowledged), else
 * a keepalive. */
void ntm_peer_rebind(struct ntm_peer *p, int64_t now, uint64_t wall_ms);

/* A validated HS_INIT / HS_RESP / DATA of this tunnel from from (p is
 * decrypted in place). The tunnel core's 0 or negative error; ev says the
 * rest even on an error, once the datagram authenticated. */
int  ntm_peer_recv(struct ntm_peer *p, uint8_t *pkt, size_t n,
    const struct sockaddr_storage *from, int64_t now, struct ntm_peer_event *ev) NTM_WUR;
/* A RELAY_ACK: 1 ours and news (acked, or the peer's bind changed), 0 ours,
 * -1 not ours. */
int  ntm_peer_relay_ack(struct ntm_peer *p, const uint8_t *pkt, size_t n, int64_t now);
/* A RELAY_COOKIE (the RS is under load): 0 it answers our last bind, and
 * the bind went again with the cookie (binds carry it for
 * NTM_RELAY_COOKIE_ROTATE_MS); -1 not ours, or that bind was answered
 * already. */
int  ntm_peer_relay_cookie(struct ntm_peer *p, const uint8_t *pkt, size_t n, int64_t now,
    uint64_t wall_ms);
/* MOVED from the DC: the peer registered from ep. 1 moved (a keepalive went
 * there), 0 already there, -1 ignored (a relayed tunnel). */
int  ntm_peer_moved(struct ntm_peer *p, const struct sockaddr_storage *ep, socklen_t len,
    int64_t now);

/* A validated PUNCH whose tunnel_id is this tunnel's, from from: a probe is
 * answered (and triggers one of ours to that candidate); an answer to ours
 * from the candidate it went to moves the path there. 1 the path is now
 * punched, 0 taken, negative: dropped (NTM_ERR_CRYPTO: the MAC,
 * NTM_ERR_PROTO malformed or our own reflected, NTM_ERR_STATE not for
 * a relayed tunnel or an answer to nothing we sent). */
int  ntm_peer_punch(struct ntm_peer *p, const uint8_t *pkt, size_t n,
    const struct sockaddr_storage *from, int64_t now) NTM_WUR;
/* As ntm_peer_punch(), for a PUNCH that came in on socket sock (0 the
 * main one, else an extra one of birthday probing): an answer to it goes
 * out the same way, and a path punched by it uses that socket. */
int  ntm_peer_punch_via(struct ntm_peer *p, const uint8_t *pkt, size_t n,
    const struct sockaddr_storage *from, int sock, int64_t now) NTM_WUR;
/* As ntm_peer_recv(), for a datagram that came in on socket sock. */
int  ntm_peer_recv_via(struct ntm_peer *p, uint8_t *pkt, size_t n,
    const struct sockaddr_storage *from, int sock, int64_t now,
    struct ntm_peer_event *ev) NTM_WUR;
/* 1 if the core still uses the extra socket sock (1 ..
 * NTM_PEER_BDAY_SOCKS): the caller closes the others. */
int  ntm_peer_sock_used(const struct ntm_peer *p, int sock);

/* The path now, and its name: "direct", "relayed", "punched". */
enum ntm_path ntm_peer_path(const struct ntm_peer *p);
const char *ntm_path_name(enum ntm_path path);

/* Timers: the tunnel core's, relay binds, the handshake gate, punching. */
int64_t ntm_peer_deadline(const struct ntm_peer *p);	/* INT64_MAX: none */
void ntm_peer_tick(struct ntm_peer *p, int64_t now, uint64_t wall_ms);

#endif
