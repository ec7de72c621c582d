/*
 * tunnel.h - the end-to-end tunnel core (HS_INIT, HS_RESP, DATA;
 * docs/protocol.md §4.3). I/O free and clock free: every call takes the
 * current time in milliseconds; the caller sends what comes back and calls
 * ntm_tunnel_tick() at ntm_tunnel_deadline().
 */
#ifndef NTM_TUNNEL_H
#define NTM_TUNNEL_H

#include "ntm-rt.h"

struct ntm_tunnel;

struct ntm_tunnel_cfg {
	uint8_t		tunnel_id[NTM_TUNNEL_ID_LEN];
	uint8_t		temporal_key[NTM_KEY_LEN];
	/* This device's long-term X25519 secret key, and the peer device's
	 * public key (from its AS certificate, checked by the caller). */
	uint8_t		static_sk[NTM_KEY_LEN];
	uint8_t		peer_static[NTM_KEY_LEN];
	int		initiator;		/* 1: we send HS_INIT */
	int64_t		keepalive_ms;		/* 0: 10000 */
	int64_t		rekey_ms;		/* 0: 120000 */
	uint64_t	rekey_packets;		/* 0: 2^48 */
};

/* new; NULL on bad cfg (a zero temporal key or static key, a peer key of
 * low order) or no memory. The keys are copied. */
struct ntm_tunnel *ntm_tunnel_new(const struct ntm_tunnel_cfg *cfg, int64_t now);
void ntm_tunnel_free(struct ntm_tunnel *t);	/* wipes keys */

/* Output of the core: at most a few datagrams at once. */
#define NTM_TUN_OUT_MAX	2
struct ntm_tun_out {
	int		n;
	size_t		len[NTM_TUN_OUT_MAX];
	uint8_t		buf[NTM_TUN_OUT_MAX][NTM_UDP_MAX];
};

/* Initiator: make the first HS_INIT (into out). On a tunnel that is up, a
 * new handshake at once, as a rekey (the current session carries on until
 * the new one is made; the rekey timer then starts again from it): the
 * caller's path moved where the handshake must be seen (a relay,
 * docs/protocol.md §4.4). NTM_ERR_STATE for a responder. */
int ntm_tunnel_start(struct ntm_tunnel *t, int64_t now, struct ntm_tun_out *out) NTM_WUR;

/* What ntm_tunnel_recv() found. */
struct ntm_tun_event {
	int		 established;	/* a session was confirmed by this packet */
	int		 authentic;	/* the packet authenticated (move endpoint) */
	const uint8_t	*payload;	/* DATA payload (points into the input); NULL if none */
	size_t		 len;
};

/*
 * Feed one datagram already accepted by ntm_msg_validate() and routed to
 * this tunnel (HS_INIT by tunnel_id, HS_RESP/DATA by our receiver index).
 * Decrypts in place (p is modified). Fills out with any reply to send.
 * Returns 0, or a negative error for a packet to drop (count it):
 * NTM_ERR_IDENTITY for a handshake message made with the temporal key
 * by someone without the peer device's key.
 */
int ntm_tunnel_recv(struct ntm_tunnel *t, uint8_t *p, size_t n, int64_t now,
    struct ntm_tun_event *ev, struct ntm_tun_out *out) NTM_WUR;

/*
 * A DATA payload is one inner IP packet (first nibble 4 or 6), nothing (a
 * keepalive), or a control message between the two agents (first nibble
 * 0, its first byte naming it; docs/protocol.md §4.3): sealed and opened
 * like a packet, handed up as the payload, not counted as inner traffic.
 */
#define NTM_TUN_CTL_CANDS	0x01	/* fresh hole punching candidates (punch.h) */
#define NTM_TUN_CTL_SPRAY	0x02	/* probe my predicted ports (punch.h) */
#define NTM_TUN_CTL_CLOSE	0x03	/* the sender closed the tunnel (one byte) */
/* 1 if the payload p (len > 0) is a control message. */
int ntm_tunnel_is_ctl(const uint8_t *p, size_t len);

/* Seal one inner packet or control message (len <= NTM_INNER_MTU; 0 for a
 * keepalive) into out.
 * NTM_ERR_STATE if no session is established yet (caller may queue). */
int ntm_tunnel_send(struct ntm_tunnel *t, const uint8_t *payload, size_t len,
    int64_t now, struct ntm_tun_out *out) NTM_WUR;

/* Timers: handshake retransmits, keepalives, rekey. */
int64_t ntm_tunnel_deadline(const struct ntm_tunnel *t);	/* INT64_MAX: none */
int ntm_tunnel_tick(struct ntm_tunnel *t, int64_t now, struct ntm_tun_out *out) NTM_WUR;

/* Routing helpers for the caller's tables. */
/* Our receiver index of the current session (0 before any). Packets
 * addressed to the previous session's index are accepted too until it
 * expires; ntm_tunnel_owns_index() tells. */
uint32_t ntm_tunnel_index(const struct ntm_tunnel *t);
int      ntm_tunnel_owns_index(const struct ntm_tunnel *t, uint32_t idx);
/* From a validated packet: the receiver index (HS_RESP, DATA) or the
 * tunnel id (HS_INIT). */
uint32_t ntm_msg_receiver_index(const uint8_t *p, size_t n);
const uint8_t *ntm_msg_tunnel_id(const uint8_t *p, size_t n);

enum ntm_tun_state { NTM_TUN_NEW, NTM_TUN_HANDSHAKE, NTM_TUN_UP, NTM_TUN_DEAD };
struct ntm_tun_stats {
	enum ntm_tun_state state;
	uint64_t	tx_packets, rx_packets, tx_bytes, rx_bytes;	/* inner payload */
	uint64_t	dropped;		/* failed auth, replay, bad state */
	int64_t		last_handshake;		/* ms, 0 = never */
	int64_t		last_rx;		/* ms of last authentic packet */
	uint32_t	index;
	uint32_t	handshakes;		/* sessions established so far */
	/* Handshake messages that held the temporal key but not the peer
	 * device's key (NTM_ERR_IDENTITY): a party with K in the middle. An
	 * initiator that gets one gives up (DEAD). */
	uint32_t	identity_failures;
	int		last_error;		/* NTM_ERR_* of the last drop, 0 none */
};
void ntm_tunnel_stats(const struct ntm_tunnel *t, struct ntm_tun_stats *st);
const char *ntm_tun_state_name(enum ntm_tun_state s);
/* The keepalive interval from now on (ms; 0: the default, 10 s). A NAT
 * that forgets a UDP flow sooner needs a shorter one. NTM_ERR_INVAL if
 * negative. */
int ntm_tunnel_set_keepalive(struct ntm_tunnel *t, int64_t ms);

#endif
