/*
 * cs.h - ntm-cs, the Cache Server: content-addressed ciphertext objects for
 * clients that may be offline (docs/protocol.md §7). One struct per daemon,
 * constants and limits, prototypes grouped by file.
 */
#ifndef NTM_CS_H
#define NTM_CS_H

#include <pthread.h>
#include <stdint.h>

#include "csrule.h"
#include "srv.h"

struct event;
struct ntm_worker;
typedef struct sqlite3 sqlite3;

/* Limits (declared once; docs/protocol.md §7.1 repeats them). */
#define CS_CHUNK_MAX		NTM_CS_CHUNK_MAX	/* bytes per PUT (csrule.h) */
#define CS_JSON_MAX		NTM_BODY_MAX		/* JSON request bodies */
#define CS_SIZE_MAX		(1LL << 40)		/* one object */
#define CS_DESTS_MAX		16
#define CS_APP_MAX		64
#define CS_SERVICE_MAX		64
#define CS_ITEM_MAX		128
#define CS_NOTIFY_MAX		512
#define CS_UPLOADS_MAX		8			/* open uploads per account */
#define CS_REVOKE_MAX		1024			/* entries per revocation push */
#define CS_HEX_HASH		(2 * NTM_HASH_LEN)	/* 64 */
#define CS_UPLOAD_ID		16			/* random bytes */
#define CS_HEX_ID		(2 * CS_UPLOAD_ID)	/* 32 */
#define CS_GC_BATCH		256
#define CS_REVOKED_KEEP		(30L * 86400)	/* a token id with no expiry given */
#define CS_META_WAIT_MAX	30			/* seconds of GET .../meta?wait= */
#define CS_META_WAITS_MAX	256			/* such requests held at once */

/* ---- the daemon ---------------------------------------------------------- */

/* Who a client request comes from, from its verified token. */
struct cs_who {
	char		user[NTM_USER_MAX + 1];
	char		device[NTM_DEVICE_MAX + 1];
	char		dc[NTM_NAME_MAX + 1];
	uint8_t		token_id[NTM_TOKEN_ID];
};

struct cs_commit_job;
struct cs_announcer;
struct cs_mwait;
struct cs_park;

/*
 * The SHA-256 of an upload's bytes so far, kept as its chunks are written,
 * so that a commit only fsyncs (reading the file back only when the CS
 * restarted, or the hash of that upload was not kept).
 */
#define CS_HASHES	64
struct cs_hash {
	char			id[CS_HEX_ID + 1];	/* "" when free */
	uint64_t		at;	/* bytes hashed */
	int64_t			used;	/* for replacing the least recently used */
	struct ntm_sha256	h;
};

/*
 * The chunk of an upload being received (upload.c): its body comes in
 * pieces (NTM_ROUTE_STREAM), each written on the worker and hashed on the
 * hasher while the next are read; the CS answers once every piece is
 * written and hashed.
 */
#define CS_WRITING	64
#define CS_PUT_AHEAD	4	/* pieces of one chunk out at once */
#define CS_PIECES_MAX	32	/* past this many in all, one a chunk */
#define CS_WRITEBACK_LAG	(8 * 1024 * 1024)	/* store.c: cs_tmp_append */
#define CS_DIO_ALIGN		NTM_HTTPD_PIECE_ALIGN	/* O_DIRECT writes */

/* An upload's temp file open for appending (store.c; the worker's while
 * a piece is written). */
struct cs_tmpfile {
	int		 open;		/* fd is the file's */
	int		 fd;
	int		 flags;		/* as opened */
	int		 direct;	/* O_DIRECT may be tried */
	int		 on;		/* O_DIRECT is set now */
	uint64_t	 wb;		/* writeback begun up to here */
};
struct cs_writing {
	char		 id[CS_HEX_ID + 1];	/* "" when free */
	int		 jobs;		/* pieces queued or being written */
	int		 active;	/* a chunk is being received */
	int64_t		 end;		/* the upload's size once they are written */
	int		 failed;	/* one failed: the file's size is the truth */
	/* Between chunks an idle slot (not active, no jobs) keeps its
	 * upload's temp file open, until the upload ends or a slot is
	 * wanted for another. */
	struct cs_tmpfile f;
	int64_t		 used;		/* for taking the least recently used */
};

struct cs {
	struct srv		*srv;
	pthread_mutex_t		 hash_lock;	/* hashes: the hasher adds, commits take */
	struct cs_hash		 hashes[CS_HASHES];
	int64_t			 hash_clock;
	struct cs_writing	 writing[CS_WRITING];
	int64_t			 writing_clock;
	/* Chunk PUTs waiting for a slot (upload.c), oldest first. */
	struct cs_park		*parked, **parked_tail;
	unsigned		 nparked;
	sqlite3			*db;
	struct ntm_worker	*worker;	/* writes, commits: made on first use (after fork) */
	struct ntm_worker	*hasher;	/* running hashes: made with the first chunk */
	int			 pieces;	/* of chunks, with the worker or the hasher */
	struct event		*gc_ev;
	char			*objdir;	/* state_dir/objects */
	char			*tmpdir;	/* state_dir/objects/tmp */
	struct cs_commit_job	*commits;	/* commits running on the worker */
	struct cs_announcer	*ann;		/* NULL without a resolver */
	struct cs_mwait		*mwaits;	/* meta requests waiting (object.c) */
	unsigned		 nmwaits;
	/* GET /metrics (main.c): since the start */
	uint64_t		 objects_stored, bytes_stored;	/* upload.c */
	uint64_t		 announced[3];	/* announce.c: by enum cs_ann_result */
};

/* An object's metadata, as stored. */
struct cs_obj {
	char		sha256[CS_HEX_HASH + 1];
	char		user[NTM_USER_MAX + 1];
	char		dc[NTM_NAME_MAX + 1];
	char		from[NTM_NAME_MAX + 1];
	int64_t		size, created, expires;
	char		app[CS_APP_MAX + 1], service[CS_SERVICE_MAX + 1];
	char		item[CS_ITEM_MAX + 1], notify[CS_NOTIFY_MAX + 1];
	char		kind[8];	/* "data" or "key" */
};

/* One destination of an object: its delivery and announcement state. */
struct cs_dest {
	const char	*fqdn;
	int64_t		 delivered;	/* unix time of the first confirm, or 0 */
	int64_t		 announced;	/* its DC took the announcement, or 0 */
	int64_t		 failed;	/* given up for good (unknown peer), or 0 */
	int		 attempts;	/* announcements tried */
	const char	*code, *message; /* the last failure, or NULL */
};

enum cs_ann_result { CS_ANN_OK, CS_ANN_FAILED, CS_ANN_RETRY };

/* An unfinished upload, as stored. dests is a JSON array text. */
struct cs_up {
	char		id[CS_HEX_ID + 1];
	char		user[NTM_USER_MAX + 1];
	char		dc[NTM_NAME_MAX + 1];
	char		from[NTM_NAME_MAX + 1];
	int64_t		size, ttl, created, touched;
	char		app[CS_APP_MAX + 1], service[CS_SERVICE_MAX + 1];
	char		item[CS_ITEM_MAX + 1], notify[CS_NOTIFY_MAX + 1];
	char		*dests;		/* new (free) */
	char		kind[8];
};

/* db.c */
int  cs_db_open(const char *path, sqlite3 **db, char *err, size_t errlen);
int  cs_db_used(sqlite3 *db, const char *user, const char *dc, int64_t *used);
int  cs_db_uploads_of(sqlite3 *db, const char *user, const char *dc, int64_t *n);
int  cs_db_upload_add(sqlite3 *db, const struct cs_up *u);
int  cs_db_upload_get(sqlite3 *db, const char *id, struct cs_up *u);
int  cs_db_upload_touch(sqlite3 *db, const char *id, int64_t now);
int  cs_db_upload_del(sqlite3 *db, const char *id);
/* In one transaction: the object, its destinations, and the upload gone. */
int  cs_db_commit(sqlite3 *db, const struct cs_up *u, const char *sha256, int64_t now);
int  cs_db_obj_get(sqlite3 *db, const char *sha256, struct cs_obj *o);
int  cs_db_obj_del(sqlite3 *db, const char *sha256);
/* Calls fn for each destination of an object, in name order. */
int  cs_db_dests(sqlite3 *db, const char *sha256,
    int (*fn)(const struct cs_dest *d, void *arg), void *arg);
/* Calls fn for up to max destinations due for an announcement at now (not
 * announced, not failed, next try reached, object alive), the longest
 * waiting first. The count, or an error. */
int  cs_db_due(sqlite3 *db, int64_t now, int max,
    int (*fn)(const char *sha256, const char *fqdn, int attempts, void *arg), void *arg);
/* Records an announcement attempt: CS_ANN_OK or CS_ANN_FAILED at when,
 * CS_ANN_RETRY with when the next try; code and message the failure. */
int  cs_db_announced(sqlite3 *db, const char *sha256, const char *fqdn,
    enum cs_ann_result r, int64_t when, const char *code, const char *message);
/* Destinations of an object never tried yet (nor settled), or an error. */
int  cs_db_untried(sqlite3 *db, const char *sha256);
int  cs_db_deliver(sqlite3 *db, const char *sha256, const char *fqdn, int64_t now);
int  cs_db_revoke_token(sqlite3 *db, const char *id_b64, int64_t until);
int  cs_db_revoke_account(sqlite3 *db, const char *user, const char *dc, int64_t before);
/* 0 if the token is not revoked, NTM_ERR_REVOKED if it is. */
int  cs_db_revoked(sqlite3 *db, const char *id_b64, const char *user, const char *dc,
    int64_t issued);
/* Up to max expired object hashes / idle upload ids, into out[i]. */
int  cs_db_expired(sqlite3 *db, int64_t now, char (*out)[CS_HEX_HASH + 1], int max);
int  cs_db_idle_uploads(sqlite3 *db, int64_t before, char (*out)[CS_HEX_ID + 1], int max);
int  cs_db_forget_revoked(sqlite3 *db, int64_t now);
int  cs_db_has_obj(sqlite3 *db, const char *sha256);
int  cs_db_has_upload(sqlite3 *db, const char *id);

/* store.c: files under objdir */
int  cs_store_init(struct cs *cs, char *err, size_t errlen);
void cs_tmp_path(const struct cs *cs, const char *id, char *out, size_t cap);
/* Makes the empty temp file of a new upload. */
int  cs_tmp_create(struct cs *cs, const char *id);
/* The temp file of upload id open for appending into f: 0,
 * NTM_ERR_NOTFOUND if it is gone, or another error. */
int  cs_tmp_open(struct cs *cs, const char *id, struct cs_tmpfile *f);
void cs_tmp_close(struct cs_tmpfile *f);
/* Appends len bytes at offset to f (on the worker): NTM_ERR_SHORT unless
 * the file ends at offset. */
int  cs_tmp_append(struct cs_tmpfile *f, uint64_t offset, const void *p, size_t len);
/* Bytes in the temp file of id, NTM_ERR_NOTFOUND if it is gone, or another error. */
int64_t cs_tmp_size(struct cs *cs, const char *id);
void cs_tmp_remove(struct cs *cs, const char *id);
/* Worker side of a commit: fsync, hash (unless hashed is set: hash holds
 * the running hash of the bytes written), rename into place, fsync the dir. */
int  cs_store_commit(struct cs *cs, const char *id, uint64_t size,
    uint8_t hash[NTM_HASH_LEN], int hashed, const char *hex);
/* The running hash of upload id: after writing len bytes at offset, or to
 * take it (final) at a commit of size bytes: 0 with hash, or -1 (none). */
void cs_hash_add(struct cs *cs, const char *id, uint64_t offset, const void *p, size_t len);
int  cs_hash_take(struct cs *cs, const char *id, uint64_t size, uint8_t hash[NTM_HASH_LEN]);
void cs_hash_drop(struct cs *cs, const char *id);
void cs_hashes_free(struct cs *cs);
int  cs_obj_open(struct cs *cs, const char *sha256, uint64_t size);
void cs_obj_remove(struct cs *cs, const char *sha256);
/* At start: temp files with no upload row, object files with no row. */
void cs_store_sweep(struct cs *cs);

/* auth.c */
/* The bearer check of the CS's routes (ntm_bearer_fn, arg the cs): the
 * token is the AS's and not revoked; on failure replies 401. */
int  cs_bearer(struct ntm_req *req, const char *token, void *arg);
/* The token of a large upload, before its body is read: 0 if it is one
 * cs_bearer took lately, or decodes, verifies, is for this CS and is not
 * revoked; else -1. */
int  cs_bearer_precheck(const char *token, void *arg);
/* Who cs_bearer found for req; on failure replies 500 and returns -1. */
int  cs_auth(struct cs *cs, struct ntm_req *req, struct cs_who *who);
int  cs_is_owner(const struct cs_who *w, const char *user, const char *dc);
/* The route tables (each ends with a NULL method). */
extern const struct ntm_http_route cs_auth_routes[];
/* announce.c: the renewed certificate on its signed requests. */
int cs_announce_cert_renewed(struct cs *cs);
/* POST /v1/revoke: srv_spec.revoke (the accounts and tokens of the push). */
int cs_revoke(struct srv *s, struct ntm_req *req, const struct ntm_m_revoke *m);
/* The JSON object body of req (new), or NULL after replying 400/413. */
json_t *cs_json_body(struct ntm_req *req);

/* upload.c, object.c, gc.c */
extern const struct ntm_http_route cs_upload_routes[];
int  cs_upload_busy(const struct cs *cs, const char *id);
/* Closes the file an idle upload slot keeps open (its upload ended). */
void cs_upload_forget(struct cs *cs, const char *id);
/* Upload slots receiving a chunk or writing its pieces (of CS_WRITING). */
unsigned cs_chunks_receiving(const struct cs *cs);
/* Answers every chunk PUT still waiting for a slot (at shutdown). */
void cs_parked_free(struct cs *cs);
extern const struct ntm_http_route cs_object_routes[];
/* Answers the meta long-polls of sha256 that have nothing untried left. */
void cs_meta_wake(struct cs *cs, const char *sha256);
/* Answers every meta long-poll (at shutdown). */
void cs_meta_waits_free(struct cs *cs);
int  cs_gc_start(struct cs *cs, char *err, size_t errlen);

/* announce.c: objects announced to the recipients' DCs (§7.7). Without
 * `resolver` start does nothing and returns 0. */
int  cs_announce_start(struct cs *cs, char *err, size_t errlen);
/* Looks for due announcements now (after a commit). */
void cs_announce_kick(struct cs *cs);
void cs_announce_stop(struct cs *cs);
void cs_gc_stop(struct cs *cs);
void cs_gc_run(struct cs *cs);

#endif
