/*
 * relay.h - relay tickets and binds (docs/protocol.md §4.4). The DC makes
 * tickets; clients wrap them in RELAY_BIND; the RS checks them. I/O free.
 */
#ifndef NTM_RELAY_H
#define NTM_RELAY_H

#include "ntm-rt.h"

/* Ticket versions: 2 names the account that asked for the tunnel (the RS
 * counts its sessions), 1 does not (DCs before version 2; an RS still takes
 * it, counted under the host and DC quotas only). */
#define NTM_TICKET_V1		1
#define NTM_TICKET_V2		2
#define NTM_TICKET_ACCOUNT_LEN	16

/* DC: the account id a v2 ticket carries for user: BLAKE2b-128 of user
 * keyed with a key derived from the DC's own secret key. Stable for one
 * DC and one account, the same for all its devices; the RS (and whoever
 * sees the ticket) cannot tell which account it is, nor link it to the
 * same account at another DC. 0 or NTM_ERR_INVAL (no or empty user). */
int ntm_ticket_account(uint8_t out[NTM_TICKET_ACCOUNT_LEN], const char *user,
    const uint8_t dc_sk[NTM_SIGN_SK]) NTM_WUR;

/* DC: make a ticket for rs_name (whose Ed25519 public key is rs_pk) that
 * carries relay_key sealed to the RS: version 2 naming account (from
 * ntm_ticket_account), or version 1 when account is NULL. Returns the
 * length written, or NTM_ERR_TOOBIG (over cap or NTM_TICKET_MAX). */
int ntm_ticket_make(uint8_t *out, size_t cap,
    const uint8_t tunnel_id[NTM_TUNNEL_ID_LEN], int64_t expires,
    const char *rs_name, const uint8_t rs_pk[NTM_SIGN_PK],
    const uint8_t relay_key[NTM_KEY_LEN], const uint8_t *account,
    const struct ntm_cert *dc_cert, const uint8_t dc_sk[NTM_SIGN_SK]) NTM_WUR;

struct ntm_ticket_info {
	uint8_t		tunnel_id[NTM_TUNNEL_ID_LEN];
	int64_t		expires;
	char		dc[NTM_NAME_MAX + 1];		/* the issuing DC */
	uint64_t	dc_serial;			/* its certificate's serial */
	uint8_t		relay_key[NTM_KEY_LEN];
	int		version;			/* NTM_TICKET_V1 or _V2 */
	uint8_t		account[NTM_TICKET_ACCOUNT_LEN];	/* v2; zero in v1 */
};
/* RS: decode strictly and verify (DC cert by as_pk with role dc, signature,
 * expiry against now (unix s), rs name == my_name), then open the relay key
 * with the RS's own Ed25519 secret key. 0 or NTM_ERR_PROTO / NTM_ERR_CRYPTO
 * / NTM_ERR_EXPIRED / NTM_ERR_INVAL (other RS). */
int ntm_ticket_open(struct ntm_ticket_info *out, const uint8_t *p, size_t n,
    const uint8_t as_pk[NTM_SIGN_PK], const char *my_name,
    const uint8_t my_sk[NTM_SIGN_SK], int64_t now) NTM_WUR;

/* Client: RELAY_BIND for side (0 initiator, 1 responder). Returns length. */
int ntm_relay_bind_make(uint8_t *out, size_t cap, int side, uint64_t counter,
    const uint8_t *ticket, size_t tlen, const uint8_t relay_key[NTM_KEY_LEN]) NTM_WUR;
/* The same with the cookie of a RELAY_COOKIE (NULL: none): flag bit 0 set
 * and a second MAC, keyed with the cookie, over everything before it. */
int ntm_relay_bind_make_cookie(uint8_t *out, size_t cap, int side, uint64_t counter,
    const uint8_t *ticket, size_t tlen, const uint8_t relay_key[NTM_KEY_LEN],
    const uint8_t *cookie) NTM_WUR;
#define NTM_RELAY_BIND_F_COOKIE	0x01	/* flags: the bind ends with a cookie MAC */
/* RS: the parts of a validated RELAY_BIND (ticket, mac and cookie_mac point
 * into p); the MACs are checked separately: the relay key's once the ticket
 * gave it, the cookie's by the RS core. */
struct ntm_relay_bind {
	int		 side;
	int		 flags;		/* NTM_RELAY_BIND_F_* */
	uint64_t	 counter;
	const uint8_t	*ticket;
	size_t		 tlen;
	const uint8_t	*mac;		/* the relay key's MAC */
	const uint8_t	*cookie_mac;	/* with F_COOKIE, else NULL */
};
int ntm_relay_bind_parse(struct ntm_relay_bind *b, const uint8_t *p, size_t n) NTM_WUR;
/* The relay key's MAC of a parsed bind (with or without a cookie MAC). */
int ntm_relay_bind_verify(const uint8_t *p, size_t n, const uint8_t relay_key[NTM_KEY_LEN]) NTM_WUR;

/*
 * RELAY_COOKIE (docs/protocol.md §4.4): an RS under load answers a bind
 * without a valid cookie with a cookie: a MAC of the client's address and
 * port under a secret the RS rotates every NTM_RELAY_COOKIE_ROTATE_MS. It
 * travels sealed (XChaCha20-Poly1305 under a key derived from the tunnel
 * id, the bind's MAC as associated data), so only the sender of that bind
 * can take it; the RS keeps no state for it.
 */
#define NTM_RELAY_COOKIE_ROTATE_MS	120000
/* RS: the reply to the bind with this tunnel id and relay-key MAC. */
int ntm_relay_cookie_make(uint8_t out[NTM_RELAY_COOKIE_LEN],
    const uint8_t tunnel_id[NTM_TUNNEL_ID_LEN], const uint8_t bind_mac[NTM_MAC_LEN],
    const uint8_t cookie[NTM_RELAY_COOKIE]) NTM_WUR;
/* Client: checks type, version, exact length and opens the cookie with the
 * MAC of the bind it answers. 0, NTM_ERR_PROTO / _SHORT / _TOOBIG /
 * _VERSION (not a RELAY_COOKIE), NTM_ERR_CRYPTO (not for that bind). */
int ntm_relay_cookie_open(const uint8_t *p, size_t n,
    const uint8_t tunnel_id[NTM_TUNNEL_ID_LEN], const uint8_t bind_mac[NTM_MAC_LEN],
    uint8_t cookie[NTM_RELAY_COOKIE]) NTM_WUR;
/* The tunnel id a RELAY_COOKIE names (NULL if p is not one). */
const uint8_t *ntm_relay_cookie_tunnel_id(const uint8_t *p, size_t n);

/* RS -> client. */
int ntm_relay_ack_make(uint8_t out[NTM_RELAY_ACK_LEN], int side, int peer_bound,
    uint64_t counter, const uint8_t relay_key[NTM_KEY_LEN]);
int ntm_relay_ack_open(const uint8_t *p, size_t n, const uint8_t relay_key[NTM_KEY_LEN],
    int *side, int *peer_bound, uint64_t *counter) NTM_WUR;

/* ---- the RS forwarding core (also lib/core/relay.c), I/O free ----------------
 *
 * Holds the relay sessions (one per tunnel_id, two sides each) and decides
 * what to do with each datagram: answer a RELAY_BIND with a RELAY_ACK,
 * forward HS_INIT/HS_RESP/DATA byte for byte to the other side, or drop it
 * with a reason. The daemon owns the sockets and the clocks: now_ms is any
 * monotonic clock in milliseconds, now_unix the wall clock in seconds (for
 * ticket and certificate expiry).
 */
enum ntm_relay_drop {
	NTM_RELAY_DROP_MALFORMED = 0,	/* failed ntm_msg_validate / bind parse, or a type the RS takes not */
	NTM_RELAY_DROP_BAD_TICKET,	/* ticket does not decode or verify, or names another RS */
	NTM_RELAY_DROP_EXPIRED,		/* ticket (or its DC certificate) expired */
	NTM_RELAY_DROP_BAD_MAC,		/* RELAY_BIND MAC wrong for the ticket's relay key */
	NTM_RELAY_DROP_REPLAY,		/* bind counter not above the last accepted */
	NTM_RELAY_DROP_UNBOUND,		/* from an address no session has bound, or peer unbound */
	NTM_RELAY_DROP_RATE,		/* session packet rate, or the RS-wide ticket-check rate */
	NTM_RELAY_DROP_FULL,		/* max_sessions reached */
	NTM_RELAY_DROP_SOURCE_RATE,	/* ticket checks of this address, or its /24 or /56 */
	NTM_RELAY_DROP_LOAD,		/* under load, no valid cookie, too short for a RELAY_COOKIE */
	NTM_RELAY_DROP_CLIENT_QUOTA,	/* the client address is bound in client_sessions already */
	NTM_RELAY_DROP_DC_QUOTA,	/* the ticket's DC opened its share of max_sessions */
	NTM_RELAY_DROP_OTHER_DC,	/* a ticket of another DC than the one that opened the session */
	NTM_RELAY_DROP_REVOKED,		/* the ticket's DC certificate was revoked by the AS */
	NTM_RELAY_DROP_ACCOUNT_QUOTA,	/* the ticket's account opened account_sessions already */
	NTM_RELAY_DROP__N
};
/* "malformed", "bad_ticket", ... (static). */
const char *ntm_relay_drop_name(int reason);

struct ntm_relay_limits {
	size_t		max_sessions;	/* 0: 1024 */
	int64_t		idle_ms;	/* 0: 120000; a session with no traffic is removed */
	uint32_t	session_pps;	/* 0: 20000; forwarded packets/s per session (burst 1 s) */
	uint32_t	bind_pps;	/* 0: 2000; full ticket checks/s for the whole RS */
	uint32_t	source_bind_pps;	/* 0: 20; ticket checks/s per source address */
	uint32_t	prefix_bind_pps;	/* 0: 100; per /24 (IPv4) or /56 (IPv6) */
	size_t		client_sessions;	/* 0: 64; sides one client address may hold */
	unsigned	dc_share;	/* 0: 50; % of max_sessions one DC's tickets may open */
	size_t		account_sessions;	/* 0: 64; sessions one account's v2 tickets may open */
};
/* Under load: fewer than half a second's worth of ticket checks left. Binds
 * without a valid cookie then get a RELAY_COOKIE (no check); binds with one
 * may use the rest of the budget. The per-source table has this many
 * entries per level (address; /24 or /56), 4-way, keyed hash. */
#define NTM_RELAY_SOURCE_SLOTS	4096

enum { NTM_RELAY_DROP = 0, NTM_RELAY_FORWARD = 1, NTM_RELAY_REPLY = 2 };
struct ntm_relay_out {
	int			action;		/* NTM_RELAY_DROP/_FORWARD/_REPLY */
	int			reason;		/* DROP: enum ntm_relay_drop */
	struct sockaddr_storage	to;		/* FORWARD/REPLY: destination */
	socklen_t		tolen;
	struct sockaddr_storage	src;		/* our address to send from; family 0: any */
	socklen_t		srclen;
	uint8_t			reply[NTM_RELAY_COOKIE_LEN];	/* REPLY: the bytes */
	size_t			reply_len;	/* FORWARD: send the input unchanged */
	/* REPLY to a bind that made its side live while the other side was
	 * live already: a RELAY_ACK (peer_bound 1) to that other side too, so
	 * that it starts at once instead of at its next bind (0: none). */
	uint8_t			notify[NTM_RELAY_ACK_LEN];
	size_t			notify_len;
	struct sockaddr_storage	notify_to, notify_src;
	socklen_t		notify_tolen, notify_srclen;
};

struct ntm_relay_stats {
	uint64_t	rx_packets, rx_bytes;		/* every datagram given to input */
	uint64_t	fwd_packets, fwd_bytes;		/* forwarded */
	uint64_t	binds;				/* RELAY_BINDs accepted (= ACKs) */
	uint64_t	notifies;			/* ACKs to a waiting other side */
	uint64_t	ticket_checks;			/* full checks made (signatures) */
	uint64_t	ticket_cache_hits;		/* tickets known from an earlier check */
	uint64_t	cookies_sent;			/* RELAY_COOKIEs answered */
	uint64_t	cookie_binds;			/* binds checked on a valid cookie */
	uint64_t	bad_cookies;			/* binds with a stale or wrong cookie */
	uint64_t	sessions_created, sessions_expired;
	uint64_t	drops[NTM_RELAY_DROP__N];
	size_t		sessions;			/* now */
};

struct ntm_relay_side_info {
	int			bound;
	struct sockaddr_storage	addr;		/* the client, as bound */
	socklen_t		addrlen;
	struct sockaddr_storage	local;		/* our address it sends to */
	socklen_t		locallen;
	uint64_t		packets, bytes;	/* from this side, forwarded to the other */
	int64_t			expires;	/* unix s: its ticket (or the DC cert) expires */
	int64_t			bound_ms;	/* now_ms of the last accepted bind */
	char			dc[NTM_NAME_MAX + 1];	/* DC that issued its ticket */
};
struct ntm_relay_sess_info {
	uint8_t				tunnel_id[NTM_TUNNEL_ID_LEN];
	char				dc[NTM_NAME_MAX + 1];	/* whose ticket opened it */
	int				ticket_version;	/* of that ticket */
	uint8_t				account[NTM_TICKET_ACCOUNT_LEN];	/* v2: its account */
	struct ntm_relay_side_info	side[2];
	int64_t				idle_ms;	/* since the last accepted packet */
	int64_t				age_ms;
};

struct ntm_relay;
/* new (NULL on bad arguments or no memory); keeps a copy of my_sk (wiped by
 * ntm_relay_free). my_name: the RS name tickets must carry. */
struct ntm_relay *ntm_relay_new(const struct ntm_relay_limits *lim, const char *my_name,
    const uint8_t my_sk[NTM_SIGN_SK], const uint8_t as_pk[NTM_SIGN_PK]);
void ntm_relay_free(struct ntm_relay *r);
/* fn(serial, arg) nonzero: the AS revoked the DC certificate with that
 * serial; a ticket it signed is dropped (NTM_RELAY_DROP_REVOKED) when
 * checked in full. NULL: none is. */
typedef int ntm_relay_revoked_fn(uint64_t serial, void *arg);
void ntm_relay_set_revoked(struct ntm_relay *r, ntm_relay_revoked_fn *fn, void *arg);
/* The sides bound with tickets of that DC certificate stop forwarding at
 * once (as if expired; their next bind is dropped as revoked). How many. */
size_t ntm_relay_end_serial(struct ntm_relay *r, uint64_t serial);
/*
 * One datagram p[0..n) from `from` that arrived at our address `local`
 * (NULL/0 if unknown). Fills out and returns out->action. Never fails on
 * what a peer sends: anything wrong is a DROP with a reason (counted).
 */
int  ntm_relay_input(struct ntm_relay *r, const uint8_t *p, size_t n,
    const struct sockaddr *from, socklen_t fromlen,
    const struct sockaddr *local, socklen_t locallen,
    int64_t now_ms, int64_t now_unix, struct ntm_relay_out *out);
/* Removes sessions idle for longer than the limit; returns how many. */
size_t ntm_relay_expire(struct ntm_relay *r, int64_t now_ms);
void ntm_relay_get_stats(const struct ntm_relay *r, struct ntm_relay_stats *st);
/* Calls fn for each session (newest first); fn must not change r. */
typedef void ntm_relay_walk_fn(const struct ntm_relay_sess_info *s, void *arg);
void ntm_relay_walk(const struct ntm_relay *r, int64_t now_ms, ntm_relay_walk_fn *fn,
    void *arg);

#endif
