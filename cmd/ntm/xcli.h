/*
 * xcli.h - what ntm keys, send and fetch share (xfer.c): the session and
 * HTTPS calls to the DC and CSs, the key store in the state dir, chunked
 * uploads and streamed downloads at a CS (docs/protocol.md §3.4, §7, §8).
 */
#ifndef NTM_XCLI_H
#define NTM_XCLI_H

#include <stdint.h>

#include <jansson.h>

#include "ntm-cli.h"
#include "xchg.h"

#define X_APP_KEYS	"ntm"		/* app / service of key exchange objects */
#define X_SERVICE_KEYS	"keys"
#define X_CHUNK		(4 * 1024 * 1024)	/* one PUT /v1/cs/upload (CS_CHUNK_MAX) */

/* One command's view of the session. */
struct xctx {
	struct cli	*cli;
	const char	*cmd;		/* for messages: "keys", "send", "fetch" */
	struct session	 s;
	long		 timeout_ms;	/* each JSON call */
	char		 cs[NTM_PUSH_URL_MAX + 1];	/* our DC's CS ("" until asked) */
};

/* Loads the session: 0, or prints why and returns the exit code. */
int  xctx_open(struct xctx *x, struct cli *cli, const char *cmd, long timeout_s);
void xctx_close(struct xctx *x);
/* 1 if s is a client FQDN other than ours; else prints a usage line
 * naming it (what: "PEER" ...) and returns 0. */
int  x_valid_peer(struct xctx *x, const char *s, const char *what);

/*
 * A JSON call to base (a DC or CS URL) + path with our token. A reply with
 * status want: 0 and *out (new, may be NULL). Otherwise one error line
 * and the exit code (cli_exit_for_code; unknown_peer -> EXIT_NOTUNNEL).
 */
int  x_call(struct xctx *x, const char *base, const char *method, const char *path,
    json_t *body, long want, json_t **out);
/* GET /v1/exchange/cs at our DC into x->cs: 0 or an exit code. */
int  x_our_cs(struct xctx *x);

/*
 * After a commit at the CS at base: the CS announces the object to each
 * destination's DC (docs/protocol.md §7.7). Asks GET /v1/cs/object/meta
 * with wait= (the CS answers once every destination was tried, or after
 * wait seconds; at most X_ANN_POLLS asks, within the command's timeout),
 * then prints one line per destination that is not announced. *out (new)
 * gets the last metadata. 0 unless a destination failed for good: then the
 * exit code of the first (EXIT_NOTUNNEL for an unknown peer). A
 * destination still being tried is not an error: the CS goes on until the
 * object expires.
 */
#define X_ANN_POLLS		3
#define X_ANN_WAIT_MAX_S	30	/* the CS's longest meta long-poll */
int  x_announced(struct xctx *x, const char *base, const char *sha256, json_t **out);

/* ---- this device's exchange key: STATE_DIR/exchange.key (X25519, 0600) ------ */

#define X_EXCHANGE_KEY_FILE	"exchange.key"
/* Loads the key pair (or makes and saves one when create is set and there
 * is none): 0, NTM_ERR_NOTFOUND, or another error. Temporal keys for this
 * device are sealed to pk (docs/protocol.md §8.1). */
int  x_exchange_keypair(const struct cli *cli, uint8_t pk[NTM_XPK_LEN],
    uint8_t sk[NTM_XSK_LEN], int create);

/* ---- the key store: STATE_DIR/keys/PEER.key, JSON, 0600 -------------------- */

struct xkey {
	char	peer[NTM_NAME_MAX + 1];
	uint8_t	key_id[NTM_XKEY_ID];
	uint8_t	key[NTM_KEY_LEN];
	uint8_t	sealed_to[NTM_XPK_LEN];	/* the recipient's exchange key (fingerprint) */
	int64_t	created;
	int	initiator;	/* 1: we made it (keys exchange); 0: we received it */
};
/* 0, NTM_ERR_NOTFOUND, or another error (a malformed or group-readable file). */
int  xkey_load(const struct cli *cli, const char *peer, struct xkey *k);
int  xkey_save(const struct cli *cli, const struct xkey *k);
int  xkey_remove(const struct cli *cli, const char *peer);
/* Calls fn for every stored key, by peer name. */
int  xkey_each(const struct cli *cli, int (*fn)(const struct xkey *k, void *arg), void *arg);
/* {"peer","key_id","fingerprint","created","initiator"} (new); never the key. */
json_t *xkey_json(const struct xkey *k);

/* ---- CS transfers ---------------------------------------------------------- */

/*
 * Uploads size bytes of fd (read from offset 0) as one object: POST
 * /v1/cs/uploads with create (stolen; "size" is set here), PUT chunks of
 * X_CHUNK (a failed PUT is resumed once from the CS's offset), commit with
 * sha256. Progress goes to stderr when it is a terminal. 0 with *commit (new) the commit answer, or an exit code.
 */
int  x_cs_upload(struct xctx *x, int fd, uint64_t size, const char *sha256, json_t *create,
    json_t **commit);
/* Streams GET /v1/cs/object?sha256= from the CS at base into fn (which
 * returns 0, or -1 to stop). 0, or an exit code after one error line
 * (EXIT_VERIFY when fn stopped it: fn printed why). size (expected bytes,
 * 0 if unknown) drives the progress shown on a terminal. */
typedef int x_sink_fn(const uint8_t *p, size_t n, void *arg);
int  x_cs_download(struct xctx *x, const char *base, const char *sha256, uint64_t size,
    x_sink_fn *fn, void *arg);

#endif
