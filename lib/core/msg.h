/*
 * msg.h - one codec per JSON message of docs/protocol.md: a typed struct,
 * an encoder and a decoder with the same strict rules, shared by the sender
 * and the receiver of the message.
 *
 * A message struct begins with `uint32_t has` (bit i: field i of the
 * message's table was present). Its strings are `const char *`, integers
 * `int64_t`, booleans `int`, objects and arrays `json_t *`.
 *
 * Decoding (ntm_jmsg_decode, NAME_decode): unknown keys, missing required
 * fields, wrong types, strings with a NUL or over their length, and values
 * outside their format all fail with NTM_ERR_JSON and a ntm_jerr naming the
 * field (codes unknown_field, missing_field, bad_field, not_object) that a
 * handler answers as it is (ntm_reply_jerr). The struct's strings and
 * objects are borrowed from the decoded object: they live as long as it.
 *
 * Encoding (ntm_jmsg_encode, NAME_encode): the same checks on the struct
 * (NULL for a required string is missing_field); optional strings and
 * objects are written when not NULL, optional integers and booleans when
 * their `has` bit is set. *out is a new reference; strings are copied.
 */
#ifndef NTM_MSG_H
#define NTM_MSG_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include "ntm-core.h"

/* What a string field must look like, beyond its type and length. */
enum ntm_mfmt {
	NTM_MF_ANY = 0,
	NTM_MF_NONEMPTY,	/* at least one byte */
	NTM_MF_USER,		/* ntm_valid_user */
	NTM_MF_DEVICE,		/* ntm_valid_device */
	NTM_MF_FQDN,		/* a client FQDN: a DNS name with a domain */
	NTM_MF_HTTPS,		/* ntm_valid_push_url */
	NTM_MF_HEX,		/* exactly arg hex digits */
	NTM_MF_LHEX,		/* exactly arg lowercase hex digits */
	NTM_MF_B64,		/* base64url of exactly arg bytes */
	NTM_MF_ENDPOINT,	/* ip:port (ntm_sa_parse) */
	NTM_MF_KIND,		/* "key" or "data" */
	NTM_MF_SIZE,		/* integer 0..2^40 */
	NTM_MF_DNSNAME,		/* ntm_valid_dnsname */
};

/* Whether a field must be there (ntm_mfield.required). */
#define NTM_MOPT	0
#define NTM_MREQ	1
#define NTM_MREQ_NULL	2	/* integers: always there, null when its has bit is
				   clear (decoded: has bit clear, value 0) */

struct ntm_mfield {
	const char	*name;
	enum ntm_jtype	 type;
	uint8_t		 required;	/* NTM_MOPT, NTM_MREQ, NTM_MREQ_NULL */
	uint8_t		 fmt;		/* enum ntm_mfmt */
	uint16_t	 maxlen;	/* strings: max bytes (0 = 1024) */
	uint16_t	 arg;		/* HEX: digits; B64: bytes */
	uint16_t	 off;		/* offsetof() in the message struct */
};

#define NTM_MSG_FIELDS_MAX	16
#define NTM_MSG_STRUCT_MAX	512	/* bytes of a message struct */

struct ntm_jmsg {
	const char		*name;		/* "POST /v1/as/login", for errors */
	const struct ntm_mfield	*fields;
	size_t			 nfields;
};

/* Decodes obj (borrowed) into out (the message's struct; zeroed on
 * failure): ntm_jmsg_unpack, then ntm_jmsg_check. */
int ntm_jmsg_decode(const struct ntm_jmsg *m, json_t *obj, void *out,
    struct ntm_jerr *err) NTM_WUR;
/* The two halves of a decode, for a receiver whose answers put its own
 * checks (the caller's rights, say) between them: the keys, types and
 * lengths; then the formats of the fields present in the struct. */
int ntm_jmsg_unpack(const struct ntm_jmsg *m, json_t *obj, void *out,
    struct ntm_jerr *err) NTM_WUR;
int ntm_jmsg_check(const struct ntm_jmsg *m, const void *in,
    struct ntm_jerr *err) NTM_WUR;
/* Encodes in into *out (new reference). NTM_ERR_JSON with err filled if a
 * field breaks the rules, NTM_ERR_NOMEM. */
int ntm_jmsg_encode(const struct ntm_jmsg *m, const void *in, json_t **out,
    struct ntm_jerr *err) NTM_WUR;

/* Whether in (m's struct) has field: a decoded field that was present, or
 * one to encode. 0 for a name m does not have. */
int ntm_jmsg_has(const struct ntm_jmsg *m, const void *in, const char *field);

/* Sets or clears field's has bit in in (m's struct): an optional integer or
 * boolean to encode, or a null one (NTM_MREQ_NULL). Nothing for a name m
 * does not have. */
void ntm_jmsg_set(const struct ntm_jmsg *m, void *in, const char *field, int on);

/* Every message, for tests and the fuzz harness; NULL-terminated. */
extern const struct ntm_jmsg *const ntm_jmsgs[];

#define NTM_MSG_CODEC(NAME, TYPE)						\
extern const struct ntm_jmsg NAME;						\
static inline int NAME##_decode(json_t *obj, TYPE *out, struct ntm_jerr *err)	\
	{ return ntm_jmsg_decode(&NAME, obj, out, err); }			\
static inline int NAME##_unpack(json_t *obj, TYPE *out, struct ntm_jerr *err)	\
	{ return ntm_jmsg_unpack(&NAME, obj, out, err); }			\
static inline int NAME##_check(const TYPE *in, struct ntm_jerr *err)		\
	{ return ntm_jmsg_check(&NAME, in, err); }				\
static inline int NAME##_encode(const TYPE *in, json_t **out,			\
    struct ntm_jerr *err)							\
	{ return ntm_jmsg_encode(&NAME, in, out, err); }

#define NTM_PASSWORD_MAX	256	/* bytes, as in docs/protocol.md §3.1 */
#define NTM_XKEY_ID		16	/* bytes of a temporal key's id; hex on the wire */
#define NTM_XTKEY_SEALED	80	/* a temporal key sealed to the recipient */

/* ---- login: client -> DC, DC -> AS -------------------------------------- */

/* POST /v1/login (client -> DC). */
struct ntm_m_login {
	uint32_t	 has;
	int64_t		 version;
	const char	*user, *password, *device, *client_key;
	const char	*push, *exchange_key;		/* optional */
	const char	*device_key;			/* optional: X25519, b64 */
	const char	*sealed;	/* instead of password: sealed to the AS */
	const char	*prior_token;	/* optional: this device's last token here */
};
NTM_MSG_CODEC(ntm_msg_login, struct ntm_m_login)

/* The DC's 200 answer to POST /v1/login. */
struct ntm_m_login_ok {
	uint32_t	 has;
	const char	*user, *fqdn, *vip4, *vip6, *domain, *token;
	int64_t		 token_expires;
	const char	*session_id, *dc_key;
	const char	*device_cert, *as_key;		/* optional */
	json_t		*cs_tokens;	/* optional: a token (b64) per CS, as the AS gave */
};
NTM_MSG_CODEC(ntm_msg_login_ok, struct ntm_m_login_ok)

/* POST /v1/as/login (DC -> AS). */
struct ntm_m_as_login {
	uint32_t	 has;
	int64_t		 version;
	const char	*user, *password, *device;	/* password or sealed */
	const char	*sealed;
	int		 known;		/* optional: the DC knows the device */
};
NTM_MSG_CODEC(ntm_msg_as_login, struct ntm_m_as_login)

/* The AS's 200 answer to POST /v1/as/login. */
struct ntm_m_as_login_ok {
	uint32_t	 has;
	const char	*user, *token;
	int64_t		 expires;
	json_t		*cs_tokens;	/* optional: array of b64 tokens, one per CS */
};
NTM_MSG_CODEC(ntm_msg_as_login_ok, struct ntm_m_as_login_ok)

/* POST /v1/as/logout (DC -> AS). */
struct ntm_m_as_logout {
	uint32_t	 has;
	int64_t		 version;
	const char	*token_id;
};
NTM_MSG_CODEC(ntm_msg_as_logout, struct ntm_m_as_logout)

/* ---- exchange: client -> DC -> DC, CS -> DC ----------------------------- */

/* POST /v1/exchange/temporal (client -> DC) and POST /v1/dc/temporal
 * (DC -> the recipient's DC): the same message. */
struct ntm_m_temporal {
	uint32_t	 has;
	int64_t		 version;
	const char	*from, *to, *key_id, *temporal_key;
};
NTM_MSG_CODEC(ntm_msg_temporal, struct ntm_m_temporal)

/* POST /v1/dc/xkey (DC -> the peer's DC). */
struct ntm_m_dc_xkey {
	uint32_t	 has;
	int64_t		 version;
	const char	*to;
};
NTM_MSG_CODEC(ntm_msg_dc_xkey, struct ntm_m_dc_xkey)

/* The 200 answer to POST /v1/dc/xkey (DC -> DC) and to GET
 * /v1/exchange/key (DC -> client): a peer's exchange key. */
struct ntm_m_xkey {
	uint32_t	 has;
	const char	*fqdn, *exchange_key;
};
NTM_MSG_CODEC(ntm_msg_xkey, struct ntm_m_xkey)

/* POST /v1/dc/announce (CS -> the recipient's DC). */
struct ntm_m_announce {
	uint32_t	 has;
	int64_t		 version;
	const char	*from, *to, *kind, *cs, *sha256;
	int64_t		 size, expires;
	const char	*app, *service, *item, *notify;	/* optional */
};
NTM_MSG_CODEC(ntm_msg_announce, struct ntm_m_announce)

/* ---- tunnels: DC -> DC --------------------------------------------------- */

/* POST /v1/dc/locate (DC -> the peer's DC). Version 2 (or more): the
 * caller reads location_also in the answer. */
#define NTM_LOCATE_V_ALSO	2
struct ntm_m_dc_locate {
	uint32_t	 has;
	int64_t		 version;
	const char	*fqdn, *from;
};
NTM_MSG_CODEC(ntm_msg_dc_locate, struct ntm_m_dc_locate)

/* Its 200 answer. */
struct ntm_m_dc_located {
	uint32_t	 has;
	const char	*fqdn, *vip4, *vip6;
	int		 online;
	json_t		*location;
	const char	*device_cert;			/* optional */
	json_t		*location_also;			/* optional: the second family's
							 * (only to a version 2 locate) */
};
NTM_MSG_CODEC(ntm_msg_dc_located, struct ntm_m_dc_located)

/* POST /v1/dc/direction (DC -> the peer's DC); the direction itself is
 * checked by its receiver against the calling DC. */
struct ntm_m_dc_direction {
	uint32_t	 has;
	int64_t		 version;
	const char	*to;
	json_t		*direction;
};
NTM_MSG_CODEC(ntm_msg_dc_direction, struct ntm_m_dc_direction)

/* A direction (docs/protocol.md §4.4), made by a DC for one end of a tunnel:
 * queued for its client, or sent in POST /v1/dc/direction to the other
 * end's DC, which checks the values against the calling DC. */
struct ntm_m_direction {
	uint32_t	 has;
	const char	*tunnel_id, *peer, *peer_vip4, *peer_vip6, *route, *reason;
	const char	*role, *endpoint, *temporal_key;
	int64_t		 expires;
	json_t		*relay;				/* ntm_m_relay; route relay */
	const char	*peer_cert;			/* the peer's device cert */
	json_t		*punch;				/* relay: the peer's candidate
							 * addresses (ip:port strings) */
};
NTM_MSG_CODEC(ntm_msg_direction, struct ntm_m_direction)
/* A direction's "punch" (borrowed) into at most max addresses (IPv4-mapped
 * ones unmapped): how many, or -1 when it is not an array of at most max
 * "ip:port" strings. NULL is 0 candidates. */
int ntm_msg_punch_cands(json_t *punch, struct sockaddr_storage *out, int max);

/* A direction's "relay": the ticket and key for the RS at addr. */
struct ntm_m_relay {
	uint32_t	 has;
	const char	*ticket, *relay_key, *addr;
	int64_t		 side;
};
NTM_MSG_CODEC(ntm_msg_relay, struct ntm_m_relay)

/* Where a registered client was seen (the "location" of a locate answer). */
struct ntm_m_location {
	uint32_t	 has;
	const char	*reflexive;
	json_t		*locals;			/* array of ip:port */
	int		 natted;
	int64_t		 family, last_seen;		/* last_seen optional */
	int64_t		 nat;				/* optional: enum ntm_nat */
};
NTM_MSG_CODEC(ntm_msg_location, struct ntm_m_location)

/* POST /v1/dc/moved (DC -> the peer's DC). */
struct ntm_m_dc_moved {
	uint32_t	 has;
	int64_t		 version;
	const char	*to, *from, *tunnel_id, *endpoint;
};
NTM_MSG_CODEC(ntm_msg_dc_moved, struct ntm_m_dc_moved)

/* ---- the DC's other client requests --------------------------------------- */

/* POST /v1/logout (client -> DC). */
struct ntm_m_logout {
	uint32_t	 has;
	int64_t		 version;
};
NTM_MSG_CODEC(ntm_msg_logout, struct ntm_m_logout)

/* POST /v1/tunnel (client -> DC); the DC checks peer against the caller. */
struct ntm_m_tunnel {
	uint32_t	 has;
	int64_t		 version;
	const char	*peer;
	const char	*tunnel_id;			/* optional */
};
NTM_MSG_CODEC(ntm_msg_tunnel, struct ntm_m_tunnel)

/* ---- the CS's client requests --------------------------------------------- */

/* POST /v1/cs/uploads (client -> CS); the CS checks from, to and the
 * values against its own limits, and fills in what is absent. */
struct ntm_m_cs_upload {
	uint32_t	 has;
	int64_t		 version;
	const char	*from;
	json_t		*to;				/* array of FQDNs */
	int64_t		 size;
	int64_t		 ttl;				/* optional */
	const char	*kind, *app, *service, *item, *notify;	/* optional */
};
NTM_MSG_CODEC(ntm_msg_cs_upload, struct ntm_m_cs_upload)

/* POST /v1/cs/upload/commit (client -> CS). */
struct ntm_m_cs_commit {
	uint32_t	 has;
	int64_t		 version;
	const char	*upload;
	int64_t		 size;
	const char	*sha256;
};
NTM_MSG_CODEC(ntm_msg_cs_commit, struct ntm_m_cs_commit)

/* POST /v1/cs/object/confirm (client -> CS). */
struct ntm_m_cs_confirm {
	uint32_t	 has;
	int64_t		 version;
	const char	*sha256;
	const char	*fqdn;				/* optional */
};
NTM_MSG_CODEC(ntm_msg_cs_confirm, struct ntm_m_cs_confirm)

/* ---- the answers a client reads ------------------------------------------- */

/* The DC's 200 answer to GET /v1/exchange/cs: its cache server. */
struct ntm_m_cs_where {
	uint32_t	 has;
	const char	*cs, *dc;
};
NTM_MSG_CODEC(ntm_msg_cs_where, struct ntm_m_cs_where)

/* The CS's answer on an upload in progress: 201 to POST /v1/cs/uploads,
 * 200 to GET and PUT /v1/cs/upload (offset: the bytes it holds). */
struct ntm_m_cs_upload_state {
	uint32_t	 has;
	const char	*upload;
	int64_t		 size, offset, chunk_max;
};
NTM_MSG_CODEC(ntm_msg_cs_upload_state, struct ntm_m_cs_upload_state)

/* The CS's 201 answer to POST /v1/cs/upload/commit (and to the PUT that
 * commits): the stored object. */
struct ntm_m_cs_object {
	uint32_t	 has;
	const char	*sha256;
	int64_t		 size, created, expires;
};
NTM_MSG_CODEC(ntm_msg_cs_object, struct ntm_m_cs_object)

/* The DC's 200 answer to GET /v1/exchange/temporal: "keys", an array of
 * ntm_m_tkey_listed. */
struct ntm_m_tkey_list {
	uint32_t	 has;
	json_t		*keys;
};
NTM_MSG_CODEC(ntm_msg_tkey_list, struct ntm_m_tkey_list)

/* A temporal key waiting at the DC, as listed: sha256 is the hash of the
 * sealed key. */
struct ntm_m_tkey_listed {
	uint32_t	 has;
	const char	*key_id, *from, *sha256;
	int64_t		 created, expires;
};
NTM_MSG_CODEC(ntm_msg_tkey_listed, struct ntm_m_tkey_listed)

/* The DC's 200 answer to GET /v1/exchange/temporal/key: the sealed key. */
struct ntm_m_tkey {
	uint32_t	 has;
	const char	*key_id, *from, *temporal_key;
	int64_t		 created, expires;
};
NTM_MSG_CODEC(ntm_msg_tkey, struct ntm_m_tkey)

/* The DC's 200 answer to GET /v1/directions: "directions", an array of
 * ntm_m_direction, each read with its own codec. */
struct ntm_m_directions {
	uint32_t	 has;
	json_t		*directions;
};
NTM_MSG_CODEC(ntm_msg_directions, struct ntm_m_directions)

/* The CS's 200 answer to GET /v1/cs/object/meta: an object and, in "to",
 * its destinations (ntm_m_cs_dest). */
struct ntm_m_cs_meta {
	uint32_t	 has;
	const char	*sha256, *kind;
	int64_t		 size;
	const char	*owner, *owner_dc, *from;
	int64_t		 created, expires;
	const char	*app, *service, *item, *notify;
	json_t		*to;
	int		 announcing;
};
NTM_MSG_CODEC(ntm_msg_cs_meta, struct ntm_m_cs_meta)

/* A destination of an object: its state, when it was delivered and
 * announced (null: not yet), and the last error of an announcement not
 * made (ntm_m_cs_dest_error). */
struct ntm_m_cs_dest {
	uint32_t	 has;
	const char	*fqdn, *status;
	int64_t		 delivered, announced;		/* null when 0 */
	int64_t		 attempts;
	json_t		*error;				/* optional */
};
NTM_MSG_CODEC(ntm_msg_cs_dest, struct ntm_m_cs_dest)

struct ntm_m_cs_dest_error {
	uint32_t	 has;
	const char	*code, *message;
};
NTM_MSG_CODEC(ntm_msg_cs_dest_error, struct ntm_m_cs_dest_error)

/* The DC's 200 answer to GET /v1/exchange/cache: "entries", an array of
 * ntm_m_entry. */
struct ntm_m_entries {
	uint32_t	 has;
	json_t		*entries;
};
NTM_MSG_CODEC(ntm_msg_entries, struct ntm_m_entries)

/* A cache entry: an object at a CS waiting for the client. */
struct ntm_m_entry {
	uint32_t	 has;
	int64_t		 id;
	const char	*kind, *from, *cs, *sha256;
	int64_t		 size;
	const char	*app, *service, *item, *notify;
	int64_t		 created, expires;
};
NTM_MSG_CODEC(ntm_msg_entry, struct ntm_m_entry)

/* ---- revocations: AS -> CS ---------------------------------------------- */

/* POST /v1/cs/revoke and /v1/revoke: arrays of the entries below. */
struct ntm_m_revoke {
	uint32_t	 has;
	int64_t		 version;
	json_t		*tokens, *accounts;		/* optional arrays */
	json_t		*servers;			/* optional array */
};
NTM_MSG_CODEC(ntm_msg_revoke, struct ntm_m_revoke)

/* An element of "tokens": a token id (base64url) and when it expires. */
struct ntm_m_revoke_token {
	uint32_t	 has;
	const char	*id;
	int64_t		 expires;			/* optional */
};
NTM_MSG_CODEC(ntm_msg_revoke_token, struct ntm_m_revoke_token)

/* An element of "accounts": every token of user at dc issued before. */
struct ntm_m_revoke_account {
	uint32_t	 has;
	const char	*user, *dc;
	int64_t		 before;			/* optional */
};
NTM_MSG_CODEC(ntm_msg_revoke_account, struct ntm_m_revoke_account)

/* An element of "servers": a server certificate the AS revoked (by serial;
 * name is the one it was issued for, for the logs). */
struct ntm_m_revoke_server {
	uint32_t	 has;
	int64_t		 serial;			/* 1 .. 2^53 */
	const char	*name;
};
NTM_MSG_CODEC(ntm_msg_revoke_server, struct ntm_m_revoke_server)

/* POST /v1/as/renew (a DC, RS or CS -> the AS): its certificate again, for
 * longer; the answer. */
struct ntm_m_as_renew_ok {
	uint32_t	 has;
	const char	*cert;				/* b64 */
	int64_t		 not_after;
};
NTM_MSG_CODEC(ntm_msg_as_renew_ok, struct ntm_m_as_renew_ok)

/* ---- the error answer of every server (§1.1) ---------------------------- */

/* A 4xx/5xx body: a stable code, a message for people, and the field the
 * error is about when there is one. Servers encode it (ntm_reply_error);
 * every client reads it with ntm_error_read. */
struct ntm_m_error {
	uint32_t	 has;
	const char	*code, *message;
	const char	*field;				/* optional */
};
NTM_MSG_CODEC(ntm_msg_error, struct ntm_m_error)

#define NTM_ERRCODE_MAX		48	/* bytes of an error code */
#define NTM_ERRMSG_MAX		768	/* bytes of an error message */

/* Reads a failed answer's body as the error of §1.1, leniently, for what
 * sits between client and server may answer too: keys beyond the three are
 * ignored (a newer server's), a message or field that breaks the rules is
 * dropped. 0 and *out filled (strings borrowed from body) when body carries
 * a valid code; NTM_ERR_JSON and *out zeroed when it does not (NULL, not an
 * object, no code: a proxy's page, say), and the caller speaks of the HTTP
 * status instead. */
int ntm_error_read(json_t *body, struct ntm_m_error *out);

/* The code of a failed answer's body (ntm_error_read), or NULL. */
const char *ntm_error_code(json_t *body);

/* Whether body is the error named code. */
int ntm_error_is(json_t *body, const char *code);
/* ---- device certificates: DC -> AS (issue 12) ------------------------------ */

/* POST /v1/as/device (DC -> AS): certify the key of the device a token
 * was issued to, under the FQDN the DC gave it. */
struct ntm_m_as_device {
	uint32_t	 has;
	int64_t		 version;
	const char	*token, *fqdn, *device_key;
};
NTM_MSG_CODEC(ntm_msg_as_device, struct ntm_m_as_device)

/* Its 200 answer: the device certificate (base64url). */
struct ntm_m_as_device_ok {
	uint32_t	 has;
	const char	*device_cert;
};
NTM_MSG_CODEC(ntm_msg_as_device_ok, struct ntm_m_as_device_ok)

/* ---- scoped tokens: a token for one more CS (issue 12) --------------------- */

/* POST /v1/exchange/cstoken (client -> its DC): a token for the CS named. */
struct ntm_m_cstoken {
	uint32_t	 has;
	int64_t		 version;
	const char	*cs;		/* the CS's certificate name */
};
NTM_MSG_CODEC(ntm_msg_cstoken, struct ntm_m_cstoken)

/* POST /v1/as/cstoken (DC -> AS): the same, for the login of token. */
struct ntm_m_as_cstoken {
	uint32_t	 has;
	int64_t		 version;
	const char	*token, *cs;
};
NTM_MSG_CODEC(ntm_msg_as_cstoken, struct ntm_m_as_cstoken)

/* The 200 answer of both: the token (base64url) for that CS. */
struct ntm_m_cstoken_ok {
	uint32_t	 has;
	const char	*token;
};
NTM_MSG_CODEC(ntm_msg_cstoken_ok, struct ntm_m_cstoken_ok)

#endif
