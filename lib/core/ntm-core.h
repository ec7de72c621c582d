/*
 * ntm-core.h - libntm's protocol core: errors, bounded buffers and cursors,
 * encodings, crypto (libsodium), certificates, tokens, signed-request
 * signatures, strict JSON (jansson) and addresses. Public (installed).
 *
 * The core (lib/core/) links against libsodium, jansson and libc only: no
 * libevent, libcurl, SQLite or OpenSSL, no sockets, no files and no clock of
 * its own (scripts/layers-check.sh holds it to that). Its protocol cores
 * (tunnel.h, reg.h, dcreg.h, relay.h, route.h, wire) are fed bytes and a
 * time by the caller.
 *
 * libntm never prints and never exits. Functions return 0 (or a length) on
 * success and a negative NTM_ERR_* on failure; ntm_strerror() describes it and
 * ntm_errcode() gives the stable lowercase code used in JSON error bodies.
 *
 * Ownership is stated on every function: "borrowed" pointers stay owned by
 * the caller or the object they came from; "new" results must be freed by the
 * caller with the named function; every *_free(NULL) is a no-op.
 */
#ifndef NTM_CORE_H
#define NTM_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NTM_VERSION		"0.1.0"
/* Bump when any HTTP request or response body, header or codec changes. */
#define NTM_PROTOCOL_VERSION	1

#define NTM_WUR __attribute__((warn_unused_result))
#define NTM_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- errors (lib/core/err.c) -------------------------------------------- */

enum ntm_err {
	NTM_OK			= 0,
	NTM_ERR_NOMEM		= -1,	/* out of memory */
	NTM_ERR_INVAL		= -2,	/* invalid argument or value */
	NTM_ERR_SHORT		= -3,	/* input ends too early */
	NTM_ERR_TRAILING	= -4,	/* bytes left after a complete message */
	NTM_ERR_TOOBIG		= -5,	/* a size limit was exceeded */
	NTM_ERR_CRYPTO		= -6,	/* authentication or signature check failed */
	NTM_ERR_EXPIRED		= -7,	/* outside its validity period */
	NTM_ERR_REPLAY		= -8,	/* seen before */
	NTM_ERR_IO		= -9,	/* system call failed; see errno */
	NTM_ERR_DB		= -10,	/* storage failure */
	NTM_ERR_JSON		= -11,	/* malformed or unexpected JSON */
	NTM_ERR_NOTFOUND	= -12,	/* no such object */
	NTM_ERR_EXISTS		= -13,	/* object already exists */
	NTM_ERR_BADPASS		= -14,	/* wrong password */
	NTM_ERR_NOUSER		= -15,	/* unknown user */
	NTM_ERR_LOCKED		= -16,	/* account locked */
	NTM_ERR_REVOKED		= -17,	/* certificate or token revoked */
	NTM_ERR_TIMEOUT		= -18,	/* no answer in time */
	NTM_ERR_CONNECT		= -19,	/* could not connect */
	NTM_ERR_TLS		= -20,	/* TLS setup or verification failed */
	NTM_ERR_PROTO		= -21,	/* peer sent something unexpected */
	NTM_ERR_HTTP		= -22,	/* HTTP error status from a peer */
	NTM_ERR_STATE		= -23,	/* wrong state for this call (e.g. not logged in) */
	NTM_ERR_NOSPACE		= -24,	/* address pool or table full */
	NTM_ERR_UNAUTH		= -25,	/* request not authenticated */
	NTM_ERR_UNAVAIL		= -26,	/* upstream server unavailable */
	NTM_ERR_VERSION		= -27,	/* unsupported version */
	NTM_ERR_UNTRUSTED	= -28,	/* peer's certificate not signed by a trusted CA */
	NTM_ERR_IDENTITY	= -29,	/* a peer device's key or certificate does not match */
	NTM_ERR__LAST		= -30
};

/* Static English text for err (never NULL). */
const char *ntm_strerror(int err);
/* Static stable lowercase identifier for err, e.g. "bad_password". */
const char *ntm_errcode(int err);
/* Reverse of ntm_errcode(); NTM_ERR_PROTO for an unknown code. */
int ntm_err_from_code(const char *code);

/* ---- logging hook (lib/core/log.c) -------------------------------------- */

enum ntm_log_level { NTM_LOG_ERR, NTM_LOG_WARN, NTM_LOG_INFO, NTM_LOG_DEBUG };
typedef void ntm_log_fn(int level, const char *msg, void *arg);
/* Install fn (NULL: drop everything). Messages above maxlevel are dropped. */
void ntm_log_set(ntm_log_fn *fn, void *arg, int maxlevel);
void ntm_log(int level, const char *fmt, ...) NTM_PRINTF(2, 3);
void ntm_vlog(int level, const char *fmt, va_list ap);
/*
 * Rate-limited lines, for what a flood repeats (refused connections and
 * requests). Lines are grouped by kind (a static string saying what
 * happened) and source (an address, or NULL). The first NTM_LOG_RL_BURST
 * lines of a group in a window of NTM_LOG_RL_WINDOW_S are written as given;
 * the rest are only counted, and when the window has ended one line says
 * "KIND: N times from SOURCE in the last W s (B written)", at the lines'
 * level or WARN, whichever is more severe, so a flood shows at the daemons'
 * default level even when its lines are INFO.
 * NTM_LOG_RL_GROUPS groups are tracked, at most NTM_LOG_RL_SOURCES sources
 * of one kind each in its own; past that, new sources of a kind are counted
 * together as "many sources" (a flood from 64 sources writes 27 lines in a
 * window, not 192). ntm_log_rl_flush writes the
 * summaries of windows that have ended (call it every few seconds). The
 * core takes the time (monotonic, in ms) from the caller; ntm_log_rl and
 * ntm_log_rl_flush (ntm-io.h) read the clock. One thread only.
 */
#define NTM_LOG_RL_BURST	3
#define NTM_LOG_RL_WINDOW_S	10
#define NTM_LOG_RL_GROUPS	64
#define NTM_LOG_RL_SOURCES	8
void ntm_log_rl_at(uint64_t now_ms, int level, const char *kind,
    const char *source, const char *fmt, ...) NTM_PRINTF(5, 6);
void ntm_vlog_rl_at(uint64_t now_ms, int level, const char *kind,
    const char *source, const char *fmt, va_list ap);
void ntm_log_rl_flush_at(uint64_t now_ms);

/* ---- bounded buffers and cursors (lib/core/buf.c) ----------------------- */

/* A growable byte buffer that never grows past max. */
struct ntm_buf {
	uint8_t	*data;
	size_t	 len, cap, max;
};
void ntm_buf_init(struct ntm_buf *b, size_t max);
int  ntm_buf_add(struct ntm_buf *b, const void *p, size_t n) NTM_WUR;
int  ntm_buf_printf(struct ntm_buf *b, const char *fmt, ...) NTM_PRINTF(2, 3) NTM_WUR;
/* Keeps a NUL after data[len] (not counted) so text can be used as a string. */
void ntm_buf_reset(struct ntm_buf *b);
/* Wipes and frees the storage; the struct may be reused after ntm_buf_init. */
void ntm_buf_free(struct ntm_buf *b);

/*
 * Cursor reader over borrowed bytes. Every read fails with NTM_ERR_SHORT
 * once input runs out, and the error sticks: later reads fail too, so a
 * parser can read a whole message and check once with ntm_cur_end().
 * Integers are big-endian (network order).
 */
struct ntm_cur {
	const uint8_t	*pos, *end;
	int		 err;
};
void ntm_cur_init(struct ntm_cur *c, const void *p, size_t n);
int  ntm_cur_u8(struct ntm_cur *c, uint8_t *v);
int  ntm_cur_u16(struct ntm_cur *c, uint16_t *v);
int  ntm_cur_u32(struct ntm_cur *c, uint32_t *v);
int  ntm_cur_u64(struct ntm_cur *c, uint64_t *v);
int  ntm_cur_bytes(struct ntm_cur *c, void *out, size_t n);
/* Borrowed pointer to the next n bytes (NULL on short input). */
const uint8_t *ntm_cur_ptr(struct ntm_cur *c, size_t n);
size_t ntm_cur_left(const struct ntm_cur *c);
/* 0 if no read failed and every byte was consumed; else SHORT or TRAILING. */
int  ntm_cur_end(const struct ntm_cur *c);

/* Writers into a fixed buffer; same sticky-error rule (NTM_ERR_TOOBIG). */
struct ntm_wr {
	uint8_t	*pos, *start, *end;
	int	 err;
};
void ntm_wr_init(struct ntm_wr *w, void *p, size_t cap);
void ntm_wr_u8(struct ntm_wr *w, uint8_t v);
void ntm_wr_u16(struct ntm_wr *w, uint16_t v);
void ntm_wr_u32(struct ntm_wr *w, uint32_t v);
void ntm_wr_u64(struct ntm_wr *w, uint64_t v);
void ntm_wr_bytes(struct ntm_wr *w, const void *p, size_t n);
/* Bytes written so far, or the sticky error (negative). */
long ntm_wr_done(const struct ntm_wr *w);

/* ---- encodings (lib/core/enc.c) ----------------------------------------- */

/* base64url without padding. Output is NUL-terminated. Returns the encoded
 * length, or NTM_ERR_TOOBIG if cap is too small. */
#define NTM_B64_LEN(n)	(((n) * 4 + 2) / 3 + 1)
int ntm_b64_encode(char *out, size_t cap, const void *in, size_t n);
/* Decodes exactly; returns the decoded length, NTM_ERR_INVAL on bad input,
 * NTM_ERR_TOOBIG if cap is too small. */
int ntm_b64_decode(void *out, size_t cap, const char *in);
/* Decodes into exactly n bytes or fails with NTM_ERR_INVAL. */
int ntm_b64_decode_exact(void *out, size_t n, const char *in);
int ntm_hex_encode(char *out, size_t cap, const void *in, size_t n);
int ntm_hex_decode_exact(void *out, size_t n, const char *in);

/* ---- crypto (lib/core/crypto.c), thin libsodium wrappers ---------------- */

#define NTM_SIGN_PK	32
#define NTM_SIGN_SK	64
#define NTM_SIG_LEN	64
#define NTM_KX_PK	32
#define NTM_KX_SK	32
#define NTM_KEY_LEN	32
#define NTM_HASH_LEN	32
#define NTM_AEAD_NONCE	24	/* XChaCha20-Poly1305 */
#define NTM_AEAD_TAG	16
#define NTM_PWHASH_STR	128

/* sodium_init(); call once before any other crypto. */
int  ntm_crypto_init(void) NTM_WUR;
void ntm_random(void *p, size_t n);
void ntm_wipe(void *p, size_t n);
/* Constant-time equality: 0 if equal. */
int  ntm_memcmp(const void *a, const void *b, size_t n);
void ntm_hash(uint8_t out[NTM_HASH_LEN], const void *p, size_t n);	/* SHA-256 */
int  ntm_sign_keypair(uint8_t pk[NTM_SIGN_PK], uint8_t sk[NTM_SIGN_SK]);
/* Ed25519 public key from the secret key. */
void ntm_sign_pk(uint8_t pk[NTM_SIGN_PK], const uint8_t sk[NTM_SIGN_SK]);
void ntm_sign(uint8_t sig[NTM_SIG_LEN], const void *m, size_t n, const uint8_t sk[NTM_SIGN_SK]);
int  ntm_sign_verify(const uint8_t sig[NTM_SIG_LEN], const void *m, size_t n,
    const uint8_t pk[NTM_SIGN_PK]) NTM_WUR;
int  ntm_kx_keypair(uint8_t pk[NTM_KX_PK], uint8_t sk[NTM_KX_SK]);
/*
 * Session key agreement (X25519 + BLAKE2b, libsodium crypto_kx). The client
 * calls with is_client=1, the server with 0; both get the same rx/tx pair
 * mirrored (client tx == server rx).
 */
int  ntm_kx_session(uint8_t rx[NTM_KEY_LEN], uint8_t tx[NTM_KEY_LEN], int is_client,
    const uint8_t my_pk[NTM_KX_PK], const uint8_t my_sk[NTM_KX_SK],
    const uint8_t peer_pk[NTM_KX_PK]) NTM_WUR;
/* XChaCha20-Poly1305: out gets n + NTM_AEAD_TAG bytes. */
void ntm_aead_seal(uint8_t *out, const void *m, size_t n, const void *ad, size_t adlen,
    const uint8_t nonce[NTM_AEAD_NONCE], const uint8_t key[NTM_KEY_LEN]);
/* out gets n - NTM_AEAD_TAG bytes; NTM_ERR_CRYPTO if forged. */
int  ntm_aead_open(uint8_t *out, const void *c, size_t n, const void *ad, size_t adlen,
    const uint8_t nonce[NTM_AEAD_NONCE], const uint8_t key[NTM_KEY_LEN]) NTM_WUR;
/* Argon2id (interactive limits unless NTM_PWHASH_FAST is set in the
 * environment for tests). Slow: call from a worker thread in daemons. */
int  ntm_pwhash(char out[NTM_PWHASH_STR], const char *pw, size_t len) NTM_WUR;
/* 0 if pw matches, NTM_ERR_BADPASS if not. */
int  ntm_pwhash_verify(const char *str, const char *pw, size_t len) NTM_WUR;

/* ---- server certificates (lib/core/cert.c) ------------------------------ */

enum ntm_role { NTM_ROLE_AS = 1, NTM_ROLE_DC = 2, NTM_ROLE_RS = 3, NTM_ROLE_CS = 4 };
const char *ntm_role_name(int role);		/* "as", "dc", "rs", "cs" or NULL */
int ntm_role_parse(const char *name);		/* NTM_ROLE_* or NTM_ERR_INVAL */

#define NTM_NAME_MAX	253
#define NTM_CERT_MAX	(1 + 1 + 1 + NTM_NAME_MAX + NTM_SIGN_PK + 8 + 8 + 8 + NTM_SIG_LEN)

/* A server identity signed by the AS key (layout in docs/protocol.md). */
struct ntm_cert {
	uint8_t		version;		/* 1 */
	uint8_t		role;			/* enum ntm_role */
	char		name[NTM_NAME_MAX + 1];
	uint8_t		pk[NTM_SIGN_PK];	/* the server's Ed25519 key */
	uint64_t	serial;
	int64_t		not_before, not_after;	/* unix seconds */
	uint8_t		sig[NTM_SIG_LEN];
};
/* Returns the encoded length or a negative error. */
int ntm_cert_encode(const struct ntm_cert *c, uint8_t *out, size_t cap);
/* Strict: exact length, version 1, known role, non-empty name. */
int ntm_cert_decode(struct ntm_cert *c, const uint8_t *p, size_t n) NTM_WUR;
void ntm_cert_sign(struct ntm_cert *c, const uint8_t as_sk[NTM_SIGN_SK]);
/* Signature by as_pk and now within [not_before, not_after]:
 * 0, NTM_ERR_CRYPTO or NTM_ERR_EXPIRED. */
int ntm_cert_verify(const struct ntm_cert *c, const uint8_t as_pk[NTM_SIGN_PK],
    int64_t now) NTM_WUR;
/* Base64url text form used in headers and files. */
int ntm_cert_to_b64(const struct ntm_cert *c, char *out, size_t cap);
int ntm_cert_from_b64(struct ntm_cert *c, const char *b64) NTM_WUR;

/* ---- client authentication tokens (lib/core/token.c) -------------------- */

#define NTM_USER_MAX	32
#define NTM_DEVICE_MAX	64
#define NTM_TOKEN_ID	16
#define NTM_TOKEN_MAX	(1 + 1 + NTM_USER_MAX + 1 + NTM_DEVICE_MAX + 1 + NTM_NAME_MAX + \
			 1 + 1 + NTM_NAME_MAX + NTM_TOKEN_ID + 8 + 8 + NTM_SIG_LEN)

/*
 * Issued by the AS to a logged-in client; a bearer credential for one
 * server only, its audience: the DC of the login (aud_role NTM_ROLE_DC, aud
 * its domain) or one CS (NTM_ROLE_CS, aud its certificate name). The tokens
 * of one login share their id, so revoking it revokes them all.
 */
struct ntm_token {
	uint8_t		version;		/* 2 */
	char		user[NTM_USER_MAX + 1];
	char		device[NTM_DEVICE_MAX + 1];
	char		dc[NTM_NAME_MAX + 1];	/* domain of the DC the user logged in at */
	uint8_t		aud_role;		/* NTM_ROLE_DC or NTM_ROLE_CS */
	char		aud[NTM_NAME_MAX + 1];	/* the one server that takes it */
	uint8_t		id[NTM_TOKEN_ID];
	int64_t		issued, expires;
	uint8_t		sig[NTM_SIG_LEN];
};
int ntm_token_encode(const struct ntm_token *t, uint8_t *out, size_t cap);
int ntm_token_decode(struct ntm_token *t, const uint8_t *p, size_t n) NTM_WUR;
void ntm_token_sign(struct ntm_token *t, const uint8_t as_sk[NTM_SIGN_SK]);
int ntm_token_verify(const struct ntm_token *t, const uint8_t as_pk[NTM_SIGN_PK],
    int64_t now) NTM_WUR;
#define NTM_CS_TOKENS_MAX	16	/* CS tokens of one login, at most */

/* 1 if t is for the server of that role and name, else 0. */
int ntm_token_is_for(const struct ntm_token *t, uint8_t role, const char *name);
int ntm_token_to_b64(const struct ntm_token *t, char *out, size_t cap);
int ntm_token_from_b64(struct ntm_token *t, const char *b64) NTM_WUR;

/* Names (lib/core/names.c): user names are DNS labels [a-z][a-z0-9-]{0,31} not ending in '-'; device ids [A-Za-z0-9_-]{1,64};
 * DNS names are lowercase LDH labels of 1..63, 253 total.
 * Each returns 1 if s is valid, 0 if not. */
int ntm_valid_user(const char *s);
int ntm_valid_device(const char *s);
int ntm_valid_dnsname(const char *s);

/* ---- device certificates (lib/core/cert.c) ------------------------------ */

/*
 * A device's long-term X25519 key, bound by the AS to the user, the device
 * id and the FQDN its DC gave it (layout in docs/protocol.md §2.4). Its
 * first byte after the version is NTM_DCERT_TYPE, which is no server role,
 * and its signature covers another context ("ntm-dcert-v1"): a device
 * certificate never decodes or verifies as a server certificate, nor the
 * other way round.
 */
#define NTM_DCERT_TYPE	0x44		/* 'D' */
#define NTM_DEVKEY_LEN	32		/* X25519 public and secret keys */
#define NTM_DCERT_MAX	(1 + 1 + 1 + NTM_USER_MAX + 1 + NTM_DEVICE_MAX + 1 + NTM_NAME_MAX + NTM_DEVKEY_LEN + \
			 8 + 8 + 8 + NTM_SIG_LEN)
#define NTM_DFP_LEN	40		/* "xxxx-xxxx-..." 8 groups of 4 hex + NUL */
struct ntm_dcert {
	uint8_t		version;		/* 1 */
	char		user[NTM_USER_MAX + 1];
	char		device[NTM_DEVICE_MAX + 1];
	char		fqdn[NTM_NAME_MAX + 1];
	uint8_t		pk[NTM_DEVKEY_LEN];	/* the device's X25519 key */
	uint64_t	serial;
	int64_t		not_before, not_after;	/* unix seconds */
	uint8_t		sig[NTM_SIG_LEN];
};
/* The encoded length or a negative error (invalid names, cap too small). */
int ntm_dcert_encode(const struct ntm_dcert *c, uint8_t *out, size_t cap);
/* Strict: exact length, version 1, type NTM_DCERT_TYPE, valid names. */
int ntm_dcert_decode(struct ntm_dcert *c, const uint8_t *p, size_t n) NTM_WUR;
void ntm_dcert_sign(struct ntm_dcert *c, const uint8_t as_sk[NTM_SIGN_SK]);
/* 0, NTM_ERR_CRYPTO (not signed by as_pk), NTM_ERR_EXPIRED. */
int ntm_dcert_verify(const struct ntm_dcert *c, const uint8_t as_pk[NTM_SIGN_PK],
    int64_t now) NTM_WUR;
/* ntm_dcert_verify, then c names fqdn (NTM_ERR_IDENTITY if not). */
int ntm_dcert_check(const struct ntm_dcert *c, const uint8_t as_pk[NTM_SIGN_PK],
    const char *fqdn, int64_t now) NTM_WUR;
int ntm_dcert_to_b64(const struct ntm_dcert *c, char *out, size_t cap);
int ntm_dcert_from_b64(struct ntm_dcert *c, const char *b64) NTM_WUR;
/* A device key's fingerprint to compare out of band: the first 16 bytes of
 * BLAKE2b("ntm-device-fp-v1" || fqdn || pk) as 8 groups of 4 hex digits. */
void ntm_dkey_fingerprint(char out[NTM_DFP_LEN], const char *fqdn,
    const uint8_t pk[NTM_DEVKEY_LEN]);
/* 1 if fqdn is a name directly or deeper inside domain ("a.dc1.test" in
 * "dc1.test"), else 0. */
int ntm_name_in_domain(const char *fqdn, const char *domain);

/*
 * A CS token (lib/core/token.c) of a sealed login, sealed by the AS to the
 * device key it certifies (X25519, crypto_box_seal), so that the DC that
 * relays it cannot present it (docs/protocol.md §2.3). seal: b64 of the token (b64) sealed
 * to pk into out; unseal: the token's b64 from sealed. The length written,
 * or NTM_ERR_INVAL, NTM_ERR_CRYPTO (not sealed to this key, or altered),
 * NTM_ERR_TOOBIG.
 */
#define NTM_TOKEN_SEALED_MAX	(NTM_TOKEN_MAX + 48)	/* crypto_box_SEALBYTES */
int ntm_token_seal(char *out, size_t cap, const char *b64,
    const uint8_t pk[NTM_DEVKEY_LEN]) NTM_WUR;
int ntm_token_unseal(char *out, size_t cap, const char *sealed,
    const uint8_t pk[NTM_DEVKEY_LEN], const uint8_t sk[NTM_DEVKEY_LEN]) NTM_WUR;

/* ---- logins sealed to the AS (lib/core/crypto.c) ------------------------ */

/*
 * What a client seals to the AS key at login (docs/protocol.md §3.1): the
 * password and the device key, bound to the user, the device id, the DC
 * it logs in at (its domain), a time and a fresh nonce. The DC relays the
 * box and can neither read it nor change it; the AS refuses one from
 * another DC, a stale one and one it has seen.
 */
#define NTM_LOGIN_NONCE		16
#define NTM_LOGIN_PLAIN_MAX	(1 + 1 + NTM_USER_MAX + 1 + NTM_DEVICE_MAX + 1 + NTM_NAME_MAX + \
				 8 + NTM_LOGIN_NONCE + NTM_DEVKEY_LEN + 2 + 256)
#define NTM_LOGIN_SEALED_MAX	(NTM_LOGIN_PLAIN_MAX + 48)	/* crypto_box_SEALBYTES */
#define NTM_LOGIN_WINDOW	300	/* seconds either side of the AS's clock */
struct ntm_login_box {
	char		user[NTM_USER_MAX + 1];
	char		device[NTM_DEVICE_MAX + 1];
	char		dc[NTM_NAME_MAX + 1];
	int64_t		time;				/* unix seconds */
	uint8_t		nonce[NTM_LOGIN_NONCE];
	uint8_t		device_key[NTM_DEVKEY_LEN];
	char		password[256 + 1];		/* NTM_PASSWORD_MAX */
	/* A renewal (ntm_login_seal_renew): no password, but proof that the
	 * sender holds the device key's secret half. */
	int		renew;
};
/* b64 of the box sealed to the AS's Ed25519 key (converted to X25519) into
 * out; its length or a negative error. b is not changed (wipe it). */
int ntm_login_seal(char *out, size_t cap, const struct ntm_login_box *b,
    const uint8_t as_pk[NTM_SIGN_PK]) NTM_WUR;
/*
 * A renewal of a device's login without its password (docs/protocol.md
 * §3.1): the same box with b->password empty and, in place of the
 * password, a proof that the sender holds device_sk, the secret half of
 * b->device_key: BLAKE2b-256 of everything before it, keyed with
 * BLAKE2b-256("ntm-renew-v1" || X25519(device_sk, AS key)). Only the
 * device and the AS can make it.
 */
int ntm_login_seal_renew(char *out, size_t cap, const struct ntm_login_box *b,
    const uint8_t as_pk[NTM_SIGN_PK], const uint8_t device_sk[NTM_DEVKEY_LEN]) NTM_WUR;
/* Opens b64 with the AS's secret key into *b (wiped on failure): 0 (a
 * renewal's proof checked: b->renew set, b->password empty),
 * NTM_ERR_CRYPTO (not sealed to this key, altered, or a renewal's proof
 * wrong), NTM_ERR_INVAL. */
int ntm_login_open(struct ntm_login_box *b, const char *b64,
    const uint8_t as_sk[NTM_SIGN_SK]) NTM_WUR;

/* ---- signed server-to-server requests (lib/core/sig.c) ------------------ */

#define NTM_HDR_DATE	"NTM-Date"
#define NTM_HDR_CERT	"NTM-Cert"
#define NTM_HDR_SIG	"NTM-Signature"
#define NTM_HDR_NONCE	"NTM-Nonce"
#define NTM_NONCE_LEN	16
#define NTM_NONCE_B64	NTM_B64_LEN(NTM_NONCE_LEN)	/* 22 characters + NUL */
#define NTM_SIG_WINDOW	300		/* seconds either side of now */
#define NTM_SIG_B64	NTM_B64_LEN(NTM_SIG_LEN)

/*
 * The signed string is
 *   "ntm-sig-v1\n" METHOD "\n" PATH "\n" DATE "\n" NONCE "\n" hex(SHA-256(body))
 * with DATE the decimal unix time sent in NTM-Date and NONCE the base64url
 * of 16 random bytes sent in NTM-Nonce (ntm_req_nonce()).
 */
void ntm_req_nonce(char nonce_b64[NTM_NONCE_B64]);
void ntm_req_sign(char sig_b64[NTM_SIG_B64], const uint8_t sk[NTM_SIGN_SK],
    const char *method, const char *path, int64_t date, const char *nonce,
    const void *body, size_t len);
int  ntm_req_verify(const char *sig_b64, const uint8_t pk[NTM_SIGN_PK],
    const char *method, const char *path, int64_t date, const char *nonce,
    const void *body, size_t len) NTM_WUR;
/*
 * A request that names its receiver (NTM-To: the receiver's certificate
 * name) is signed over
 *   "ntm-sig-v2\n" METHOD "\n" PATH "\n" DATE "\n" NONCE "\n" TO "\n" hex(SHA-256(body))
 * so that no other server takes it (docs/protocol.md §2.2).
 */
void ntm_req_sign_to(char sig_b64[NTM_SIG_B64], const uint8_t sk[NTM_SIGN_SK],
    const char *method, const char *path, int64_t date, const char *nonce, const char *to,
    const void *body, size_t len);
int  ntm_req_verify_to(const char *sig_b64, const uint8_t pk[NTM_SIGN_PK],
    const char *method, const char *path, int64_t date, const char *nonce, const char *to,
    const void *body, size_t len) NTM_WUR;
#define NTM_HDR_TO	"NTM-To"

/*
 * The answer to a signed request, signed by the server that answers
 * (docs/protocol.md §2.2): NTM-Cert and NTM-Signature over
 *   "ntm-ans-v1\n" METHOD "\n" PATH "\n" STATUS "\n" NONCE "\n" hex(SHA-256(body))
 * with METHOD, PATH and NONCE the request's, so that an answer stands for
 * one request only.
 */
void ntm_ans_sign(char sig_b64[NTM_SIG_B64], const uint8_t sk[NTM_SIGN_SK],
    const char *method, const char *path, long status, const char *nonce,
    const void *body, size_t len);
int  ntm_ans_verify(const char *sig_b64, const uint8_t pk[NTM_SIGN_PK],
    const char *method, const char *path, long status, const char *nonce,
    const void *body, size_t len) NTM_WUR;

/*
 * Remembers the signatures accepted within the date window, so a captured
 * request cannot be replayed while its date is still fresh. Kept per peer
 * (the signing certificate's public key), so no peer can fill it for the
 * others: at most per_peer signatures each, the oldest evicted past that
 * (the peer's requests dated at or before an evicted one are then
 * refused), behind a token bucket of rate requests per second and burst;
 * at most max_peers peers with live entries.
 */
struct ntm_replay;
struct ntm_replay *ntm_replay_new(size_t max_peers, size_t per_peer,
    unsigned rate, unsigned burst);	/* new; NULL on a zero or huge limit */
void ntm_replay_free(struct ntm_replay *r);
/* 0 and remembers sig if date is within NTM_SIG_WINDOW of now and sig is new
 * for the peer pk. NTM_ERR_EXPIRED if stale; NTM_ERR_REPLAY if seen, or
 * dated at or before a signature of this peer that was evicted;
 * NTM_ERR_NOSPACE if the peer is over its rate (or max_peers peers are
 * live); NTM_ERR_NOMEM. */
int ntm_replay_check(struct ntm_replay *r, const uint8_t pk[NTM_SIGN_PK],
    const uint8_t sig[NTM_SIG_LEN], int64_t date, int64_t now) NTM_WUR;

/* ---- strict JSON unpacking (lib/core/json.c) ---------------------------- */

typedef struct json_t json_t;

enum ntm_jtype { NTM_J_STR, NTM_J_INT, NTM_J_BOOL, NTM_J_OBJ, NTM_J_ARR };
struct ntm_jfield {
	const char	*name;
	enum ntm_jtype	 type;
	int		 required;
	void		*out;	/* const char ** (borrowed), int64_t *, int *, json_t ** (borrowed) */
	size_t		 maxlen;	/* strings: max bytes (0 = 1024); ints: unused */
};
/* What went wrong, for a JSON error body. */
struct ntm_jerr {
	char	code[32];	/* bad_json, not_object, unknown_field, missing_field, bad_field */
	char	field[64];	/* "" when not about one field */
	char	message[192];	/* names the field and what was expected */
};
/* Unpacks obj against fields: unknown keys, missing required keys, wrong
 * types, strings with NUL or over maxlen all fail with NTM_ERR_JSON and *err
 * filled. Optional absent fields leave *out untouched. */
int ntm_json_unpack(json_t *obj, const struct ntm_jfield *fields, size_t n,
    struct ntm_jerr *err) NTM_WUR;
/* Parses a body (not NUL-terminated) that must be one JSON object; returns
 * new reference or NULL with *err filled (code bad_json / not_object). */
json_t *ntm_json_parse(const void *p, size_t n, struct ntm_jerr *err);

/* ---- addresses (lib/core/addr.c) ---------------------------------------- */

/* Parses "100.64.1.0/24" or "fd00:6e74:1::/64". */
struct ntm_prefix {
	int		family;		/* AF_INET or AF_INET6 */
	uint8_t		addr[16];
	int		len;
};
int ntm_prefix_parse(struct ntm_prefix *p, const char *s) NTM_WUR;
int ntm_prefix_overlap(const struct ntm_prefix *a, const struct ntm_prefix *b);
/* Address number idx (1-based host index) inside p, as text. NTM_ERR_NOSPACE
 * if idx does not fit in the host part or hits the broadcast (IPv4). */
int ntm_prefix_host(const struct ntm_prefix *p, uint64_t idx, char *out, size_t cap) NTM_WUR;

/*
 * A push webhook URL (docs/protocol.md §3.2): "https://HOST[:PORT]" then
 * optionally a path, query or fragment; at most NTM_PUSH_URL_MAX bytes of
 * printable ASCII (no spaces or control characters). HOST is a name
 * ([A-Za-z0-9.-]), an IPv4 address or a bracketed IPv6 address; PORT is
 * 1..65535; no "user:password@". 1 if valid, 0 if not.
 */
#define NTM_PUSH_URL_MAX	512
int ntm_valid_push_url(const char *s);
/* The host of such a URL, in lowercase (an IPv6 address without its
 * brackets), into out: 0, NTM_ERR_INVAL (not such a URL) or NTM_ERR_TOOBIG. */
int ntm_url_host(const char *url, char *out, size_t cap);
/* 1 if url is such a URL and its host is name (a lowercase DNS name). */
int ntm_url_host_is(const char *url, const char *name);
/*
 * The URL as it may be logged: scheme, host, port and path, without the
 * query or fragment (they often carry the push service's token). Always
 * NUL-terminates out (cap > 0); cut to fit.
 */
void ntm_push_url_loggable(const char *url, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
