/*
 * xcli.h - what ntm keys, send and fetch share (xfer.c): the session and
 * HTTPS calls to the DC and CSs, the key store in the state dir, chunked
 * uploads and streamed downloads at a CS (docs/protocol.md §3.4, §7, §8).
 */
#ifndef NTM_XCLI_H
#define NTM_XCLI_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "msg.h"
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
	int		 cs_cached;	/* x->cs came from the state dir */
	int		 cs_probe;	/* x_call: a remembered CS that is gone is not an error yet */
	int		 quiet;		/* failed calls go to the log and last_err, not stderr */
	char		 last_err[768];	/* the last failure said quietly */
	int		 no_agent;	/* no agent carries this run's requests */
	int		 no_cs_token;	/* said: no token for a CS's host */
	int		 progress;	/* X_PROGRESS_AUTO, _ON (--progress), _OFF */
	int64_t		 prog_start, prog_last;	/* mono ms of this phase's start, last line */
	const char	*prog_what;	/* the phase shown */
};

enum { X_PROGRESS_AUTO, X_PROGRESS_ON, X_PROGRESS_OFF };
/* --progress and --no-progress of a command whose args struct T has an int
 * progress. */
#define X_OPT_PROGRESS(T) \
	{ .name = "progress", .help = "show rate and time left on standard error even " \
	  "when it is not a terminal", .type = CMD_FLAG, .off = offsetof(T, progress), \
	  .val = X_PROGRESS_ON }, \
	{ .name = "no-progress", .help = "show no progress, even on a terminal", \
	  .type = CMD_FLAG, .off = offsetof(T, progress), .val = X_PROGRESS_OFF }

/*
 * One updating line on stderr: "ntm: send: upload 12.0 / 100.0 MiB (12%),
 * 85.3 MiB/s, 0:01 left", at most 5 times a second and once at the end
 * (done == total, which ends the line). Shown on a terminal for phases of
 * 1 MiB or more (X_PROGRESS_AUTO), always with --progress, never with
 * --no-progress. A new what starts a new phase (rate from its start).
 */
void x_progress(struct xctx *x, const char *what, uint64_t done, uint64_t total);

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
/* The body of a request, written by its codec m from in (m's struct): new,
 * or NULL after one error line naming the field that breaks m's rules. */
json_t *x_msg(struct xctx *x, const struct ntm_jmsg *m, const void *in);
/* Our DC's CS into x->cs: remembered for 10 minutes in the state dir, else
 * GET /v1/exchange/cs at our DC. 0 or an exit code. */
int  x_our_cs(struct xctx *x);
/* Forgets the remembered CS (it could not be reached): ask the DC again. */
void x_forget_cs(struct xctx *x);

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

/*
 * A key replaced by a newer one (keys exchange/rotate, or a key fetched
 * from the peer) is kept as long as an object sealed with it may still be
 * waiting, so rotating never makes a file in flight unreadable:
 *  - objects we sealed with it (sender): until each one is seen delivered
 *    (ntm send --status) or has expired;
 *  - objects the peer sealed with it (recipient): until no cache entry from
 *    the peer listed before the key that replaced it remains (each fetch
 *    checks; entries expire at the DC). When we made the new key, the peer
 *    goes on sealing with the old one until it fetches ours: kept until a
 *    fetch of ours finds nothing from the peer left, or X_KEY_PEER_KEEP_S.
 */
#define X_KEY_BEFORE_ANY	INT64_MAX	/* before: any entry, listed now or later */
#define X_KEY_PEER_KEEP_S	(7 * 86400)	/* as long as the DCs keep a temporal key */
#define X_KEY_OLD_MAX	4	/* previous keys kept per peer; the oldest goes first */
#define X_KEY_SENT_MAX	8	/* objects tracked per key; more: kept until the last expires */

struct xkey_sent {
	char	sha256[65];
	int64_t	expires;
};

struct xkey_old {
	uint8_t			key_id[NTM_XKEY_ID];
	uint8_t			key[NTM_KEY_LEN];
	uint8_t			sealed_to[NTM_XPK_LEN];
	int64_t			created;
	int			initiator;
	int64_t			until;		/* the last object we sealed with it expires (0: none) */
	int64_t			before;		/* recipient: cache entries below this id may need it */
	int64_t			peer_until;	/* with X_KEY_BEFORE_ANY: kept until then at most */
	struct xkey_sent	sent[X_KEY_SENT_MAX];	/* ours, not yet seen delivered */
	int			nsent, lost;	/* lost: more than X_KEY_SENT_MAX were sent */
};

struct xkey {
	char	peer[NTM_NAME_MAX + 1];
	uint8_t	key_id[NTM_XKEY_ID];
	uint8_t	key[NTM_KEY_LEN];
	uint8_t	sealed_to[NTM_XPK_LEN];	/* the recipient's exchange key (fingerprint) */
	int64_t	created;
	int	initiator;	/* 1: we made it (keys exchange); 0: we received it */
	/* Objects we sealed with it (moved to old[] with it when replaced). */
	int64_t			until;
	struct xkey_sent	sent[X_KEY_SENT_MAX];
	int			nsent, lost;
	struct xkey_old		old[X_KEY_OLD_MAX];	/* newest first */
	int			nold;
};
/* 0, NTM_ERR_NOTFOUND, or another error (a malformed or group-readable file).
 * Previous keys no longer needed (see above) are left out. */
int  xkey_load(const struct cli *cli, const char *peer, struct xkey *k);
int  xkey_save(const struct cli *cli, const struct xkey *k);
int  xkey_remove(const struct cli *cli, const char *peer);
/* Makes k (a new key) the current one for its peer, keeping prev's current
 * key (when it has another id) as a previous one with before (the cache
 * entry id of the new key at a recipient; X_KEY_BEFORE_ANY when we made
 * it), and prev's old keys. */
void xkey_replace(struct xkey *k, const struct xkey *prev, int64_t before);
/* Notes that object sha256 (expiring then) was sealed with key_id. */
void xkey_note_sent(struct xkey *k, const uint8_t key_id[NTM_XKEY_ID], const char *sha256,
    int64_t expires);
/* Forgets object sha256 (delivered): 1 if k changed. */
int  xkey_note_delivered(struct xkey *k, const char *sha256);
/* Clears the recipient's need for previous keys once no cache entry from
 * the peer with an id below theirs remains (oldest: the lowest such id,
 * INT64_MAX for none): 1 if k changed. */
int  xkey_entries_left(struct xkey *k, int64_t oldest);
/* Calls fn for every stored key, by peer name. */
int  xkey_each(const struct cli *cli, int (*fn)(const struct xkey *k, void *arg), void *arg);
/* {"peer","key_id","fingerprint","created","made_by","current":true}
 * (new); never the key. */
json_t *xkey_json(const struct xkey *k);
/* The same for previous key i, with "current": false, "sent_waiting" (how
 * many objects we sealed with it are not yet seen delivered) and
 * "peer_waiting" (cache entries from the peer may need it). */
json_t *xkey_old_json(const struct xkey *k, int i);

/* ---- CS transfers ---------------------------------------------------------- */

/*
 * Uploads size bytes of fd (read from offset 0) as one object: POST
 * /v1/cs/uploads with create (borrowed; its size is set here), PUT chunks of
 * X_CHUNK (after a failed PUT the CS is asked for its offset and the upload
 * goes on from there, with backoff: X_RESUME_TRIES in xfer.c), commit with
 * sha256. Progress goes to stderr when it is a terminal. 0 with *commit (new)
 * the commit answer and obj (may be NULL; borrowed from *commit) its fields,
 * or an exit code.
 */
int  x_cs_upload(struct xctx *x, int fd, uint64_t size, const char *sha256,
    const struct ntm_m_cs_upload *create, json_t **commit, struct ntm_m_cs_object *obj);
/*
 * The same from a source that makes the bytes as they go up (ntm send seals
 * a file while it uploads it): read fills exactly cap bytes (-1 with errno
 * on failure, or errno 0 when the caller will say why); sha256 is asked
 * once the last byte was read; seek (NULL if
 * the source cannot) restarts it at a byte offset when the CS resumes
 * before the chunk held in memory.
 */
struct x_src {
	ssize_t		 (*read)(void *arg, uint8_t *buf, size_t cap);
	int		 (*seek)(void *arg, uint64_t at);
	const char	*(*sha256)(void *arg);
	void		*arg;
	/* An upload an earlier run left to go on with (NULL: a new one): the
	 * CS holds its first at bytes, which read makes again and which are
	 * skipped, not sent. */
	const char	*upload;
	uint64_t	 at;
	/* Told the id of a new upload as soon as the CS made it (or NULL). */
	void		 (*created)(void *arg, const char *id);
};
int  x_cs_upload_src(struct xctx *x, const struct x_src *src, uint64_t size,
    const struct ntm_m_cs_upload *create, json_t **commit, struct ntm_m_cs_object *obj);
/* Where upload id is at our CS, asked without a word on stderr: 0 with
 * *size (declared) and *offset, NTM_ERR_NOTFOUND when the CS has no such
 * upload of ours (404), or an exit code (the failure in x->last_err). */
int  x_cs_upload_state(struct xctx *x, const char *id, uint64_t *size, uint64_t *offset);
/* Gives up upload id at our CS (DELETE), quietly, whatever the answer. */
void x_cs_upload_drop(struct xctx *x, const char *id);
/* Object sha256's metadata at our CS, quietly: 0 with *meta (new) when it
 * is stored, NTM_ERR_NOTFOUND (404), or an exit code. */
int  x_cs_object_meta(struct xctx *x, const char *sha256, json_t **meta);
/* Streams GET /v1/cs/object?sha256= from the CS at base into fn (which
 * returns 0, or -1 to stop). 0, or an exit code after one error line
 * (EXIT_VERIFY when fn stopped it: fn printed why). size (expected bytes,
 * 0 if unknown) drives the progress shown on a terminal. */
typedef int x_sink_fn(const uint8_t *p, size_t n, void *arg);
int  x_cs_download(struct xctx *x, const char *base, const char *sha256, uint64_t size,
    x_sink_fn *fn, void *arg);

#endif
