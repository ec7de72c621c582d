/*
 * serve.c - the AS's HTTPS routes (docs/protocol.md §3.1), served by the
 * skeleton of cmd/common/srv.c:
 *
 *   POST /v1/as/login     signed by a DC
 *   POST /v1/as/logout    signed by a DC
 *   POST /v1/as/device    signed by a DC: a device certificate
 *
 * Argon2id runs on worker threads; the loop only does the SQLite lookups
 * (a few microseconds each, WAL readers never wait for writers) and replies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include <jansson.h>

#include "ntm-as.h"
#include "prom.h"
#include "msg.h"

/* One login between the loop and a worker. */
struct login_job {
	struct as		*as;
	struct ntm_req		*req;
	char			 user[NTM_USER_MAX + 1];
	char			 device[NTM_DEVICE_MAX + 1];
	char			 dc[NTM_NAME_MAX + 1];
	char			 pwhash[NTM_PWHASH_STR];
	char			 password[AS_PASSWORD_MAX + 1];
	size_t			 pwlen;
	char			 device_key[NTM_B64_LEN(NTM_DEVKEY_LEN)];	/* sealed; or "" */
	int			 unknown;	/* no such user: checked against a dummy hash */
	int			 result;	/* of ntm_pwhash_verify */
	int			 known;		/* the DC knows the device */
	int			 hashing;	/* on a thread of lane 1 or 2 (turns_hash);
						 * 0: waiting, or a renewal */
	struct login_job	*qnext;		/* waiting for a turn */
	struct login_turns	*q;		/* the DC's queue, while waiting */
};

/*
 * Turns at the hashing threads. At most AS_WORKERS logins are hashing at
 * once, and one more of a device its DC knows (turns_run); the others wait
 * in one queue per DC (its certificate name), and the DCs take turns, so a
 * DC flooded with logins costs another DC's login one turn, not its place.
 * In a DC's queue the logins it marks `known` go first: the DC's word
 * orders only its own logins. At most AS_LOGIN_QUEUE_DC wait per DC and
 * AS_LOGIN_QUEUE in all; past them 503 busy. A login whose DC went away
 * while it waited is dropped unhashed.
 */
struct login_turns {
	struct login_turns	*next;
	char			 dc[NTM_NAME_MAX + 1];
	struct login_job	*known_h, *known_t, *other_h, *other_t;
	long			 n;
};
static struct {
	struct login_turns	*qs, *cursor;
	long			 hashing, known_hashing, waiting;
	uint64_t		 busy, gone;
} turns;

static void
login_job_free(struct login_job *j)
{
	if (j == NULL)
		return;
	ntm_wipe(j, sizeof(*j));
	free(j);
}

static void login_work(void *arg);
static void login_done(void *arg);

static void
turns_unlink(struct login_job *j)
{
	struct login_turns *q = j->q, **qp;
	struct login_job **h = j->known ? &q->known_h : &q->other_h;
	struct login_job **t = j->known ? &q->known_t : &q->other_t;
	struct login_job *p = NULL;

	for (struct login_job *x = *h; x && x != j; x = x->qnext)
		p = x;
	if (p)
		p->qnext = j->qnext;
	else
		*h = j->qnext;
	if (*t == j)
		*t = p;
	j->qnext = NULL;
	j->q = NULL;
	q->n--;
	turns.waiting--;
	if (q->n == 0) {
		for (qp = &turns.qs; *qp != q; qp = &(*qp)->next)
			;
		*qp = q->next;
		if (turns.cursor == q)
			turns.cursor = q->next;
		free(q);
	}
}

/* The next login to hash: the DC after the last served, known first; with
 * known_only, the next DC's with a known device's login waiting. */
static struct login_job *
turns_take(int known_only)
{
	struct login_turns *q = turns.cursor ? turns.cursor : turns.qs, *start = q;
	struct login_job *j;

	if (q == NULL)
		return NULL;
	while (known_only && q->known_h == NULL) {
		if ((q = q->next ? q->next : turns.qs) == start)
			return NULL;
	}
	j = q->known_h ? q->known_h : q->other_h;
	turns.cursor = q->next;
	turns_unlink(j);
	return j;
}

static void
login_job_gone(struct ntm_req *req, void *arg)
{
	struct login_job *j = arg;

	turns_unlink(j);
	turns.gone++;
	ntm_reply_error(req, 503, "busy", NULL, "gone");
	login_job_free(j);
}

/* j to a thread of lane 1 (AS_WORKERS at nice AS_NICE, any login) or 2
 * (one at nice 0, known devices' only). */
static void
turns_hash(struct as *as, struct login_job *j, int lane)
{
	int err;

	ntm_req_on_gone(j->req, NULL, NULL);
	if ((err = ntm_worker_submit(lane == 2 ? as->worker_known : as->worker, login_work,
	    login_done, j)) < 0) {
		log_warnx("login user=%s: cannot queue the password check: %s", j->user,
		    ntm_strerror(err));
		ntm_reply_err(j->req, err, "too many logins in progress");
		login_job_free(j);
		return;
	}
	j->hashing = lane;
	if (lane == 2)
		turns.known_hashing++;
	else
		turns.hashing++;
}

/* Hands waiting logins to free threads: a known device's first to the
 * thread of their own, which runs ahead of the others on a busy CPU, so
 * that a flood of other logins never makes them wait for a thread or for
 * the CPU; then any, in turns, to the AS_WORKERS others. */
static void
turns_run(struct as *as)
{
	struct login_job *j;

	while (turns.known_hashing < 1 && (j = turns_take(1)) != NULL)
		turns_hash(as, j, 2);
	while (turns.hashing < AS_WORKERS && (j = turns_take(0)) != NULL)
		turns_hash(as, j, 1);
}

/* j takes its turn: 0, or -1 after the 503. */
static int
turns_add(struct as *as, struct login_job *j)
{
	struct login_turns *q;

	for (q = turns.qs; q && strcmp(q->dc, j->dc) != 0; q = q->next)
		;
	if (turns.waiting >= AS_LOGIN_QUEUE || (q && q->n >= AS_LOGIN_QUEUE_DC)) {
		turns.busy++;
		ntm_log_rl(NTM_LOG_WARN, "login refused: the AS's login queue is full", j->dc,
		    "login user=%s from DC %s: busy (%ld waiting)", j->user, j->dc,
		    turns.waiting);
		ntm_reply_error(j->req, 503, "busy", NULL, "the AS has too many logins "
		    "waiting; try again later");
		return -1;
	}
	if (q == NULL) {
		if ((q = calloc(1, sizeof(*q))) == NULL) {
			ntm_reply_error(j->req, 500, "internal", NULL, "out of memory");
			return -1;
		}
		snprintf(q->dc, sizeof(q->dc), "%s", j->dc);
		q->next = turns.qs;
		turns.qs = q;
	}
	if (j->known) {
		if (q->known_t)
			q->known_t->qnext = j;
		else
			q->known_h = j;
		q->known_t = j;
	} else {
		if (q->other_t)
			q->other_t->qnext = j;
		else
			q->other_h = j;
		q->other_t = j;
	}
	j->q = q;
	q->n++;
	turns.waiting++;
	ntm_req_on_gone(j->req, login_job_gone, j);
	turns_run(as);
	return 0;
}

/* Logins by result, for GET /metrics (every result the log names). */
static const char *const login_results[] = {
	"ok", "bad_password", "unknown_user", "user_locked", "backoff",
	"sealed_unreadable", "sealed_other_device", "sealed_other_dc", "sealed_replayed",
	"sealed_stale", "renewed", "renew_refused",
};
#define LOGIN_RESULTS	(sizeof(login_results) / sizeof(login_results[0]))
static uint64_t login_count[LOGIN_RESULTS];

static void
log_login(const char *user, const char *device, const char *dc, const char *result)
{
	for (size_t i = 0; i < LOGIN_RESULTS; i++)
		if (strcmp(login_results[i], result) == 0)
			login_count[i]++;
	log_info("login user=%s device=%s dc=%s result=%s", user, device, dc, result);
}

void
as_login_metrics(struct ntm_prom *p)
{
	ntm_prom_family(p, "ntm_as_logins_total", NTM_PROM_COUNTER,
	    "Logins relayed by the DCs, by result (ok, or why refused)");
	for (size_t i = 0; i < LOGIN_RESULTS; i++)
		ntm_prom_int(p, (const char *const[]){ "result", login_results[i], NULL },
		    (int64_t)login_count[i]);
	ntm_prom_family(p, "ntm_as_login_waiting", NTM_PROM_GAUGE,
	    "Logins waiting for a hashing thread (turns per DC)");
	ntm_prom_int(p, NULL, turns.waiting);
	ntm_prom_family(p, "ntm_as_login_refused_total", NTM_PROM_COUNTER,
	    "Logins refused before hashing, by reason (busy: the queues were full; "
	    "gone: the DC left while it waited)");
	ntm_prom_int(p, (const char *const[]){ "reason", "busy", NULL }, (int64_t)turns.busy);
	ntm_prom_int(p, (const char *const[]){ "reason", "gone", NULL }, (int64_t)turns.gone);
}

/* ---- failed logins: backoff per user name ------------------------------- */

/*
 * Per user name (existing or not, alike), in a fixed table keyed by a
 * secret hash: after AS_LOGIN_FREE failed logins in a row, each next
 * attempt must wait 2^(failures - AS_LOGIN_FREE) s, at most
 * AS_LOGIN_WAIT_MAX_S; a success clears it, as does AS_LOGIN_FORGET_S
 * without a failure. A guesser gets a handful of tries, then one every
 * five minutes, from every DC together.
 */
#define AS_LOGIN_FREE		5
#define AS_LOGIN_WAIT_MAX_S	300
#define AS_LOGIN_FORGET_S	3600
#define AS_LOGIN_USERS		16384	/* names with failures remembered */

struct fail_slot {
	uint64_t	h;		/* 0: free */
	unsigned	fails;
	int64_t		last_ms;	/* of the last failure */
};

static struct fail_slot fails[AS_LOGIN_USERS];
static uint8_t fails_key[crypto_shorthash_KEYBYTES];
static int fails_keyed;

static int64_t
now_mono_ms(void)
{
	return mono_ms();
}

static struct fail_slot *
fail_slot(const char *user, int make)
{
	uint8_t hb[crypto_shorthash_BYTES];
	struct fail_slot *b, *old = NULL;
	uint64_t h;

	if (!fails_keyed) {
		ntm_random(fails_key, sizeof(fails_key));
		fails_keyed = 1;
	}
	crypto_shorthash(hb, (const unsigned char *)user, strlen(user), fails_key);
	memcpy(&h, hb, sizeof(h));
	h |= 1;
	b = &fails[(h >> 1) % (AS_LOGIN_USERS / 4) * 4];
	for (int i = 0; i < 4; i++) {
		if (b[i].h == h)
			return &b[i];
		if (old == NULL || b[i].h == 0 || (old->h && b[i].last_ms < old->last_ms))
			old = &b[i];
	}
	if (!make)
		return NULL;
	memset(old, 0, sizeof(*old));
	old->h = h;
	return old;
}

/* The wait after n failures, the last at last_ms, seen at now: ms. */
static int64_t
wait_after(int64_t n, int64_t last_ms, int64_t now)
{
	int64_t wait, until;

	if (n < AS_LOGIN_FREE || now - last_ms > (int64_t)AS_LOGIN_FORGET_S * 1000)
		return 0;
	wait = n - AS_LOGIN_FREE >= 9 ? AS_LOGIN_WAIT_MAX_S :
	    (int64_t)1 << (n - AS_LOGIN_FREE);
	if (wait > AS_LOGIN_WAIT_MAX_S)
		wait = AS_LOGIN_WAIT_MAX_S;
	until = last_ms + wait * 1000;
	return until > now ? until - now : 0;
}

/*
 * Several AS on one store (PostgreSQL) count the failures there, in
 * wall-clock ms (they share no other clock), so a guesser gets the same
 * few tries from every DC and every AS together. A storage error counts
 * as no failure recorded (the password is still checked), as a full
 * table does in memory.
 */
#define AS_LOGIN_SWEEP_EVERY	256	/* failures between two sweeps of old rows */

static int64_t
now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds user must still wait before a password is checked, or 0. */
static int64_t
login_wait(struct as *as, const char *user)
{
	struct fail_slot *f;
	int64_t n, last, now;

	if (as_store_shared(as->db)) {
		if (as_db_fails_get(as->db, user, &n, &last) < 0)
			return 0;
		return wait_after(n, last, now_wall_ms());
	}
	now = now_mono_ms();
	if ((f = fail_slot(user, 0)) == NULL)
		return 0;
	if (now - f->last_ms > (int64_t)AS_LOGIN_FORGET_S * 1000) {
		f->h = 0;
		return 0;
	}
	return wait_after(f->fails, f->last_ms, now);
}

static void
login_failed(struct as *as, const char *user)
{
	static unsigned sweep;
	struct fail_slot *f;
	int64_t now;

	if (as_store_shared(as->db)) {
		now = now_wall_ms();
		if (as_db_fails_add(as->db, user, now, (int64_t)AS_LOGIN_FORGET_S * 1000) < 0)
			log_warnx("login user=%s: cannot count the failure: %s", user,
			    as_db_errmsg(as->db));
		if (++sweep % AS_LOGIN_SWEEP_EVERY == 0)
			(void)as_db_fails_sweep(as->db, now - (int64_t)AS_LOGIN_FORGET_S * 1000);
		return;
	}
	now = now_mono_ms();
	f = fail_slot(user, 1);
	if (now - f->last_ms > (int64_t)AS_LOGIN_FORGET_S * 1000)
		f->fails = 0;
	f->fails++;
	f->last_ms = now;
}

static void
login_succeeded(struct as *as, const char *user)
{
	struct fail_slot *f;

	if (as_store_shared(as->db)) {
		(void)as_db_fails_clear(as->db, user);
		return;
	}
	if ((f = fail_slot(user, 0)) != NULL)
		f->h = 0;
}

/* The hash an unknown user's password is checked against: made once, with
 * the same Argon2id parameters as real ones. */
static int dummy_hash(char out[NTM_PWHASH_STR]);

int
as_login_prepare(void)
{
	char h[NTM_PWHASH_STR];

	return dummy_hash(h);
}

static int
dummy_hash(char out[NTM_PWHASH_STR])
{
	static char h[NTM_PWHASH_STR];
	char pw[33];

	if (h[0] == '\0') {
		uint8_t r[16];

		ntm_random(r, sizeof(r));
		if (ntm_hex_encode(pw, sizeof(pw), r, sizeof(r)) < 0 ||
		    ntm_pwhash(h, pw, strlen(pw)) < 0) {
			h[0] = '\0';
			return -1;
		}
		ntm_wipe(pw, sizeof(pw));
	}
	memcpy(out, h, NTM_PWHASH_STR);
	return 0;
}

/* Worker thread: only the slow hash, touching nothing but the job. */
static void
login_work(void *arg)
{
	struct login_job *j = arg;

	j->result = ntm_pwhash_verify(j->pwhash, j->password, j->pwlen);
	if (j->unknown && j->result == 0)
		j->result = NTM_ERR_BADPASS;	/* the dummy hash never lets in */
	ntm_wipe(j->password, sizeof(j->password));
}

static void
wipe_strings(json_t *a)
{
	json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		ntm_wipe((char *)json_string_value(v), json_string_length(v));
}

/*
 * A CS token t as the client gets it: its b64 into out, sealed to the
 * device key dkey (b64) when the login was sealed (the device key known),
 * so that the DC relaying it cannot present it (docs/protocol.md §2.3).
 * 0 or a negative error; out wiped by the caller.
 */
static int
cs_token_out(const struct ntm_token *t, const char *dkey, char *out, size_t cap)
{
	char b64[NTM_B64_LEN(NTM_TOKEN_MAX)];
	uint8_t pk[NTM_DEVKEY_LEN];
	int e;

	if ((e = ntm_token_to_b64(t, dkey && dkey[0] ? b64 : out,
	    dkey && dkey[0] ? sizeof(b64) : cap)) < 0 || !dkey || !dkey[0])
		return e < 0 ? e : 0;
	if (ntm_b64_decode_exact(pk, sizeof(pk), dkey) < 0)
		e = NTM_ERR_INVAL;
	else
		e = ntm_token_seal(out, cap, b64, pk);
	ntm_wipe(b64, sizeof(b64));
	return e < 0 ? e : 0;
}

/*
 * The login's tokens for the CSs (docs/protocol.md §2.3): one per CS
 * enrolled here, each for that CS alone, with the id and validity of the
 * DC token dt, so that whatever revokes the login revokes them too. A
 * client presents each only to its CS, and a CS takes no other: neither a
 * CS nor the DC can replay what it was given at another server. Sealed to
 * the device key dkey (b64, "" for none). New array, or NULL (logged).
 */
static json_t *
cs_tokens(struct as *as, const struct ntm_token *dt, const char *dkey)
{
	char names[NTM_CS_TOKENS_MAX][NTM_NAME_MAX + 1];
	char b64[NTM_B64_LEN(NTM_TOKEN_SEALED_MAX)];
	struct ntm_token t;
	json_t *a;
	int n, i;

	if ((n = as_db_cs_names(as->db, dt->issued, names, NTM_CS_TOKENS_MAX)) < 0) {
		log_warnx("login user=%s: cannot list the CSs: %s", dt->user,
		    as_db_errmsg(as->db));
		return NULL;
	}
	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		t = *dt;
		t.aud_role = NTM_ROLE_CS;
		snprintf(t.aud, sizeof(t.aud), "%.*s", NTM_NAME_MAX, names[i]);
		ntm_token_sign(&t, as->sk);
		if (cs_token_out(&t, dkey, b64, sizeof(b64)) < 0 ||
		    json_array_append_new(a, json_string(b64)) < 0) {
			log_warnx("login user=%s: cannot issue a token for CS %s", dt->user,
			    names[i]);
			ntm_wipe(b64, sizeof(b64));
			ntm_wipe(&t, sizeof(t));
			wipe_strings(a);
			json_decref(a);
			return NULL;
		}
		ntm_wipe(b64, sizeof(b64));
	}
	ntm_wipe(&t, sizeof(t));
	return a;
}

/* Back on the loop: issue and record the token, or refuse. */
static void
login_done(void *arg)
{
	struct login_job *j = arg;
	struct as *as = j->as;
	struct ntm_token t;
	char b64[NTM_B64_LEN(NTM_TOKEN_MAX)];
	struct ntm_m_as_login_ok ok;
	struct ntm_jerr jerr;
	json_t *body;
	int err;

	if (j->hashing) {
		if (j->hashing == 2)
			turns.known_hashing--;
		else
			turns.hashing--;
		turns_run(as);
	}
	if (j->result == NTM_ERR_BADPASS) {
		/* Unknown and known users alike: the same answer, after the same
		 * Argon2id; only our log tells them apart. */
		log_login(j->user, j->device, j->dc, j->unknown ? "unknown_user" :
		    "bad_password");
		login_failed(as, j->user);
		ntm_reply_error(j->req, 401, "bad_password", NULL, "wrong user name or "
		    "password for '%s'", j->user);
		goto out;
	}
	login_succeeded(as, j->user);
	if (j->result != 0) {
		log_warnx("login user=%s: cannot verify the password: %s", j->user,
		    ntm_strerror(j->result));
		ntm_reply_error(j->req, 500, "internal", NULL, "password check failed");
		goto out;
	}

	memset(&t, 0, sizeof(t));
	t.version = 2;
	snprintf(t.user, sizeof(t.user), "%s", j->user);
	snprintf(t.device, sizeof(t.device), "%s", j->device);
	snprintf(t.dc, sizeof(t.dc), "%s", j->dc);
	t.aud_role = NTM_ROLE_DC;
	snprintf(t.aud, sizeof(t.aud), "%s", j->dc);
	ntm_random(t.id, sizeof(t.id));
	t.issued = now_unix();
	t.expires = t.issued + as->conf.token_lifetime;
	ntm_token_sign(&t, as->sk);
	if ((err = ntm_token_to_b64(&t, b64, sizeof(b64))) < 0) {
		log_warnx("login user=%s: cannot encode the token: %s", j->user,
		    ntm_strerror(err));
		ntm_reply_error(j->req, 500, "internal", NULL, "cannot issue a token");
		goto out;
	}
	if ((err = as_db_token_add(as->db, &t)) < 0 || (j->device_key[0] &&
	    (err = as_db_token_set_key(as->db, &t, j->device_key)) < 0)) {
		log_warnx("login user=%s: cannot record the token: %s", j->user,
		    as_db_errmsg(as->db));
		ntm_reply_error(j->req, 500, "internal", NULL, "cannot record the token");
		goto out;
	}
	memset(&ok, 0, sizeof(ok));
	ok.user = t.user;
	ok.token = b64;
	ok.expires = t.expires;
	if ((ok.cs_tokens = cs_tokens(as, &t, j->device_key)) == NULL) {
		ntm_reply_error(j->req, 500, "internal", NULL, "cannot issue the CS tokens");
		goto out;
	}
	err = ntm_msg_as_login_ok_encode(&ok, &body, &jerr);
	ntm_wipe(b64, sizeof(b64));
	if (err < 0)
		ntm_reply_error(j->req, 500, "internal", NULL, "out of memory");
	else {
		log_login(j->user, j->device, j->dc, "ok");
		ntm_reply_json(j->req, 200, body);
	}
	/* The body shares the array: wiped once it is sent. */
	wipe_strings(ok.cs_tokens);
	json_decref(ok.cs_tokens);
out:
	ntm_wipe(&t, sizeof(t));
	login_job_free(j);
}

/*
 * A renewal (docs/protocol.md §3.1): the box proved the device key, in the
 * password's place (ntm_login_open checked the proof). Taken when that key
 * is the one the AS last certified for this user's device at this DC,
 * that certificate ended at most AS_RENEW_GRACE ago, the account is not
 * locked and has not changed since (its `updated`, which a new password, a
 * lock or an unlock sets, is the one recorded with the certificate): then
 * a login as with the password, without Argon2id. Else 401 renew_refused, and the device logs in with the
 * password. Answers req.
 */
#define AS_RENEW_GRACE	(7 * 86400)

static void
renew_login(struct as *as, struct ntm_req *req, const struct ntm_cert *cert,
    const struct ntm_login_box *box)
{
	struct login_job *j;
	struct as_user u;
	char pk[NTM_B64_LEN(NTM_DEVKEY_LEN)];
	int64_t nb = 0, na = 0, au = -1, now = now_unix();
	const char *why = NULL;
	int e;

	if (ntm_b64_encode(pk, sizeof(pk), box->device_key, sizeof(box->device_key)) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot encode the device key");
		return;
	}
	if ((e = as_db_user_get(as->db, box->user, &u)) < 0 && e != NTM_ERR_NOTFOUND) {
		ntm_reply_error(req, 500, "internal", NULL, "database failure");
		return;
	}
	if (e == 0 && u.locked) {
		ntm_wipe(&u, sizeof(u));
		log_login(box->user, box->device, cert->name, "user_locked");
		ntm_reply_error(req, 403, "user_locked", NULL, "user '%s' is locked", box->user);
		return;
	}
	if (e == 0 && (e = as_db_device_last(as->db, box->user, box->device, cert->name, pk,
	    &nb, &na, &au)) < 0 && e != NTM_ERR_NOTFOUND) {
		ntm_wipe(&u, sizeof(u));
		ntm_reply_error(req, 500, "internal", NULL, "database failure");
		return;
	}
	if (e == NTM_ERR_NOTFOUND)
		why = "this device's key is not the one certified for it here";
	else if (au == -2)
		why = "the device was revoked";
	else if (na < now - AS_RENEW_GRACE)
		why = "the device's certificate ended more than 7 days ago";
	else if (au != u.updated)
		why = "the account changed since the device's certificate (a new password, "
		    "a lock)";
	ntm_wipe(&u, sizeof(u));
	if (why) {
		log_login(box->user, box->device, cert->name, "renew_refused");
		ntm_reply_error(req, 401, "renew_refused", NULL, "%s: log in with the password",
		    why);
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	j->as = as;
	j->req = req;
	snprintf(j->user, sizeof(j->user), "%s", box->user);
	snprintf(j->device, sizeof(j->device), "%s", box->device);
	snprintf(j->dc, sizeof(j->dc), "%s", cert->name);
	snprintf(j->device_key, sizeof(j->device_key), "%s", pk);
	j->result = 0;
	log_login(box->user, box->device, cert->name, "renewed");
	login_done(j);		/* the token, as for a password */
}

/* POST /v1/as/logout {version, token_id}: a DC ended a session; the token
 * is queued for the CS (push.c), so that it stops opening the cache too. */
static void
route_logout(struct ntm_req *req, void *arg)
{
	struct as *as = arg;
	const struct ntm_cert *cert = ntm_req_cert(req);
	struct ntm_m_as_logout m;
	const char *token_id;
	struct ntm_jerr jerr;
	int e;

	if (ntm_msg_as_logout_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	token_id = m.token_id;
	if ((e = as_revoke_queue_token(as->db, token_id, cert->name, now_unix())) < 0) {
		if (e == NTM_ERR_NOTFOUND)
			ntm_reply_error(req, 404, "unknown_token", "token_id", "field 'token_id': "
			    "no live token of a client of %s has that id", cert->name);
		else
			ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return;
	}
	log_info("logout at %s: token %.8s... queued for the CS", cert->name, token_id);
	ntm_reply_json(req, 200, json_pack("{s:b}", "queued", 1));
}

/*
 * A login sealed to our key (docs/protocol.md §3.1): opened, and bound to
 * the user and device the DC names, to the calling DC, to now; its nonce
 * never seen before. 0 with *box filled, or -1 answered.
 */
#define AS_SEALED_DCS		256	/* DCs with sealed logins remembered */
#define AS_SEALED_PER_DC	65536	/* sealed logins remembered per DC */
#define AS_SEALED_RATE		1000	/* sealed logins/s per DC */

static int
sealed_open(struct as *as, struct ntm_req *req, const struct ntm_cert *cert,
    const struct ntm_m_as_login *m, struct ntm_login_box *box)
{
	uint8_t seen[NTM_SIG_LEN];
	int64_t now = now_unix();
	int e;

	/* Per relaying DC (its certificate's key), as the signed requests'
	 * cache: no DC fills it for the others. */
	if (as->sealed_seen == NULL && (as->sealed_seen = ntm_replay_new(AS_SEALED_DCS,
	    AS_SEALED_PER_DC, AS_SEALED_RATE, 2 * AS_SEALED_RATE)) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return -1;
	}
	if (ntm_login_open(box, m->sealed, as->sk) < 0) {
		log_login(m->user, m->device, cert->name, "sealed_unreadable");
		ntm_reply_error(req, 400, "bad_field", "sealed", "field 'sealed': not a login "
		    "sealed to this AS's key (or a renewal whose proof of the device key is "
		    "wrong)");
		return -1;
	}
	if (strcmp(box->user, m->user) != 0 || strcmp(box->device, m->device) != 0) {
		log_login(m->user, m->device, cert->name, "sealed_other_device");
		ntm_reply_error(req, 400, "bad_field", "sealed", "field 'sealed': sealed for "
		    "another user or device than the DC names");
		goto fail;
	}
	if (strcmp(box->dc, cert->name) != 0) {
		log_login(m->user, m->device, cert->name, "sealed_other_dc");
		ntm_reply_error(req, 403, "bad_field", "sealed", "field 'sealed': sealed for a "
		    "login at %s, relayed by %s", box->dc, cert->name);
		goto fail;
	}
	memset(seen, 0, sizeof(seen));
	memcpy(seen, box->nonce, sizeof(box->nonce));
	memcpy(seen + sizeof(box->nonce), box->dc, strnlen(box->dc, sizeof(seen) -
	    sizeof(box->nonce)));
	if ((e = ntm_replay_check(as->sealed_seen, cert->pk, seen, box->time, now)) < 0) {
		log_login(m->user, m->device, cert->name, e == NTM_ERR_REPLAY ?
		    "sealed_replayed" : "sealed_stale");
		ntm_reply_error(req, e == NTM_ERR_REPLAY ? 409 : 401, e == NTM_ERR_REPLAY ?
		    "replayed" : "expired", "sealed", "field 'sealed': %s", e == NTM_ERR_REPLAY ?
		    "this sealed login was used before" : e == NTM_ERR_EXPIRED ?
		    "sealed more than 300 s from the AS's clock" : "too many logins at once");
		goto fail;
	}
	return 0;
fail:
	ntm_wipe(box, sizeof(*box));
	return -1;
}

static void
route_login(struct ntm_req *req, void *arg)
{
	struct as *as = arg;
	const struct ntm_cert *cert = ntm_req_cert(req);
	struct ntm_m_as_login m;
	const char *user, *password, *device;
	struct ntm_login_box box;
	struct ntm_jerr jerr;
	struct login_job *j;
	struct as_user u;
	int64_t wait;
	int err, unknown = 0;

	if (ntm_msg_as_login_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	user = m.user;
	password = m.password;
	device = m.device;
	memset(&box, 0, sizeof(box));
	if ((password == NULL) == (m.sealed == NULL)) {
		ntm_reply_error(req, 400, password ? "bad_field" : "missing_field",
		    password ? "sealed" : "password", "%s", password ?
		    "field 'sealed': give the password or the sealed login, not both" :
		    "field 'password': missing (or give 'sealed')");
		return;
	}
	if (m.sealed && sealed_open(as, req, cert, &m, &box) < 0)
		return;
	if (m.sealed && box.renew) {
		renew_login(as, req, cert, &box);
		ntm_wipe(&box, sizeof(box));
		return;
	}
	if (m.sealed)
		password = box.password;

	if ((wait = login_wait(as, user)) > 0) {
		log_login(user, device, cert->name, "backoff");
		ntm_reply_error(req, 429, "too_many_attempts", NULL, "too many failed logins "
		    "for '%s'; try again in %lld s", user, (long long)(wait + 999) / 1000);
		ntm_wipe(&box, sizeof(box));
		return;
	}
	if ((err = as_db_user_get(as->db, user, &u)) == NTM_ERR_NOTFOUND) {
		/* Checked as if it existed, against a dummy hash: neither the
		 * answer nor its time says whether the user exists. */
		memset(&u, 0, sizeof(u));
		if (dummy_hash(u.pwhash) < 0) {
			ntm_reply_error(req, 500, "internal", NULL, "password check failed");
			ntm_wipe(&box, sizeof(box));
			return;
		}
		unknown = 1;
		err = 0;
	}
	if (err < 0) {
		log_warnx("login user=%s: %s", user, as_db_errmsg(as->db));
		ntm_reply_error(req, 500, "internal", NULL, "database failure");
		ntm_wipe(&box, sizeof(box));
		return;
	}
	if (u.locked) {
		ntm_wipe(&u, sizeof(u));
		log_login(user, device, cert->name, "user_locked");
		ntm_reply_error(req, 403, "user_locked", NULL, "user '%s' is locked", user);
		ntm_wipe(&box, sizeof(box));
		return;
	}

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		ntm_wipe(&u, sizeof(u));
		ntm_wipe(&box, sizeof(box));
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	j->as = as;
	j->req = req;
	snprintf(j->user, sizeof(j->user), "%s", user);
	snprintf(j->device, sizeof(j->device), "%s", device);
	snprintf(j->dc, sizeof(j->dc), "%s", cert->name);
	j->unknown = unknown;
	memcpy(j->pwhash, u.pwhash, sizeof(j->pwhash));
	ntm_wipe(&u, sizeof(u));
	j->pwlen = strlen(password);
	memcpy(j->password, password, j->pwlen);
	if (m.sealed && ntm_b64_encode(j->device_key, sizeof(j->device_key), box.device_key,
	    sizeof(box.device_key)) < 0)
		j->device_key[0] = '\0';
	ntm_wipe(&box, sizeof(box));
	j->known = m.known;
	if (turns_add(as, j) < 0)
		login_job_free(j);
}

/*
 * POST /v1/as/device {version, token, fqdn, device_key}: the DC that just
 * logged a device in asks for its certificate (docs/protocol.md §2.4). The
 * token must be ours, live, and issued through this DC; the FQDN must be
 * in this DC's domain and never certified for another user's device.
 */
/*
 * The DC token a signed request from the DC cert names carries: one this AS
 * issued for a login at that DC, still live, of a user neither gone nor
 * locked. 0 with *t filled, or -1 after the 403 (what: for the log).
 */
static int
dc_login_token(struct as *as, struct ntm_req *req, const struct ntm_cert *cert,
    const char *b64, int64_t now, const char *what, struct ntm_token *t)
{
	struct as_user u;
	int e;

	if (ntm_token_from_b64(t, b64) < 0 || ntm_token_verify(t, as->pk, now) < 0 ||
	    strcmp(t->dc, cert->name) != 0 || !ntm_token_is_for(t, NTM_ROLE_DC, cert->name) ||
	    as_db_token_live(as->db, t, now) < 0) {
		ntm_wipe(t, sizeof(*t));
		log_info("%s at %s: token refused", what, cert->name);
		ntm_reply_error(req, 403, "bad_token", "token", "field 'token': not a live "
		    "token this AS issued for a login at %s", cert->name);
		return -1;
	}
	if ((e = as_db_user_get(as->db, t->user, &u)) < 0 || u.locked) {
		ntm_wipe(&u, sizeof(u));
		ntm_reply_error(req, 403, e < 0 ? "unknown_user" : "user_locked", NULL,
		    "user '%s' is %s", t->user, e < 0 ? "unknown" : "locked");
		ntm_wipe(t, sizeof(*t));
		return -1;
	}
	ntm_wipe(&u, sizeof(u));
	return 0;
}

static void
route_device(struct ntm_req *req, void *arg)
{
	struct as *as = arg;
	const struct ntm_cert *cert = ntm_req_cert(req);
	struct ntm_m_as_device m;
	struct ntm_m_as_device_ok ok;
	struct ntm_jerr jerr;
	struct ntm_token t;
	struct ntm_dcert c;
	char what[NTM_NAME_MAX + 32];
	char b64[NTM_B64_LEN(NTM_DCERT_MAX)], fp[NTM_DFP_LEN];
	char sealed_key[NTM_B64_LEN(NTM_DEVKEY_LEN) + 8];
	json_t *body;
	int64_t now = now_unix();
	int e;

	if (ntm_msg_as_device_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	snprintf(what, sizeof(what), "device cert for %s", m.fqdn);
	if (dc_login_token(as, req, cert, m.token, now, what, &t) < 0)
		return;
	if (as_db_token_key(as->db, &t, sealed_key, sizeof(sealed_key)) == 0 &&
	    sealed_key[0] && strcmp(sealed_key, m.device_key) != 0) {
		log_warnx("device cert: %s asked for %s with another key than the device "
		    "sealed in its login: refused", cert->name, m.fqdn);
		ntm_reply_error(req, 409, "device_key_mismatch", "device_key", "field "
		    "'device_key': not the key the device sealed in its login");
		return;
	}
	if (!ntm_name_in_domain(m.fqdn, cert->name)) {
		ntm_reply_error(req, 403, "bad_field", "fqdn", "field 'fqdn': '%s' is not "
		    "in %s's domain", m.fqdn, cert->name);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.version = 1;
	snprintf(c.user, sizeof(c.user), "%s", t.user);
	snprintf(c.device, sizeof(c.device), "%s", t.device);
	snprintf(c.fqdn, sizeof(c.fqdn), "%s", m.fqdn);
	(void)ntm_b64_decode_exact(c.pk, sizeof(c.pk), m.device_key);	/* codec-checked */
	c.not_before = now - AS_CERT_SKEW;
	c.not_after = t.expires;
	if ((e = as_db_device_add(as->db, &c, cert->name, m.device_key, now)) < 0) {
		if (e == NTM_ERR_EXISTS) {
			log_warnx("device cert: %s asked for %s as %s/%s, but it belongs to "
			    "another user", cert->name, m.fqdn, t.user, t.device);
			ntm_reply_error(req, 409, "fqdn_taken", "fqdn", "field 'fqdn': %s was "
			    "certified for another user", m.fqdn);
		} else
			ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return;
	}
	ntm_dcert_sign(&c, as->sk);
	if (ntm_dcert_to_b64(&c, b64, sizeof(b64)) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot encode the certificate");
		return;
	}
	ok.has = 0;
	ok.device_cert = b64;
	if (ntm_msg_as_device_ok_encode(&ok, &body, &jerr) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	ntm_dkey_fingerprint(fp, c.fqdn, c.pk);
	log_info("device cert serial %llu: %s (%s/%s via %s) key %s", (unsigned long long)
	    c.serial, c.fqdn, c.user, c.device, cert->name, fp);
	ntm_reply_json(req, 200, body);
}

/*
 * POST /v1/as/cstoken {version, token, cs}: a token for one more CS (one
 * enrolled after the login) for the login of token, which must be ours,
 * live, for the calling DC, of an unlocked user; cs an enrolled CS. Same
 * id and validity as the login's (docs/protocol.md §2.3).
 */
static void
route_cstoken(struct ntm_req *req, void *arg)
{
	struct as *as = arg;
	const struct ntm_cert *cert = ntm_req_cert(req);
	char names[NTM_CS_TOKENS_MAX][NTM_NAME_MAX + 1];
	char b64[NTM_B64_LEN(NTM_TOKEN_SEALED_MAX)];
	char dkey[NTM_B64_LEN(NTM_DEVKEY_LEN) + 8];
	struct ntm_m_as_cstoken m;
	struct ntm_m_cstoken_ok ok;
	struct ntm_jerr jerr;
	struct ntm_token t;
	char what[NTM_NAME_MAX + 32];
	json_t *body;
	int64_t now = now_unix();
	int e, n, i;

	if (ntm_msg_as_cstoken_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	snprintf(what, sizeof(what), "CS token for %s", m.cs);
	if (dc_login_token(as, req, cert, m.token, now, what, &t) < 0)
		return;
	/* All enrolled CSs, as at login: at most NTM_CS_TOKENS_MAX, by name. */
	if ((n = as_db_cs_names(as->db, now, names, NTM_CS_TOKENS_MAX)) < 0) {
		ntm_wipe(&t, sizeof(t));
		ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return;
	}
	for (i = 0; i < n && strcmp(names[i], m.cs) != 0; i++)
		;
	if (i == n) {
		ntm_wipe(&t, sizeof(t));
		ntm_reply_error(req, 404, "unknown_cs", "cs", "field 'cs': no cache server "
		    "'%s' is enrolled at the AS", m.cs);
		return;
	}
	t.aud_role = NTM_ROLE_CS;
	snprintf(t.aud, sizeof(t.aud), "%s", m.cs);
	ntm_token_sign(&t, as->sk);
	/* Sealed to the device key of a sealed login, as at login. */
	if ((e = as_db_token_key(as->db, &t, dkey, sizeof(dkey))) == 0)
		e = cs_token_out(&t, dkey, b64, sizeof(b64));
	log_info("CS token for %s issued to a login of %s at %s", m.cs, t.user, cert->name);
	ntm_wipe(&t, sizeof(t));
	memset(&ok, 0, sizeof(ok));
	ok.token = b64;
	if (e < 0 || ntm_msg_cstoken_ok_encode(&ok, &body, &jerr) < 0) {
		ntm_wipe(b64, sizeof(b64));
		ntm_reply_error(req, 500, "internal", NULL, "cannot issue the token");
		return;
	}
	ntm_wipe(b64, sizeof(b64));
	ntm_reply_json(req, 200, body);
}

/*
 * Called by the httpd for every signed request after the AS signature and
 * validity checked out: the database is the authority on revocation, and
 * the certificate must match the enrolled row exactly.
 */
int
as_cert_check(const struct ntm_cert *c, void *arg)
{
	struct as *as = arg;
	struct as_server s;
	int err;

	if (c->serial > INT64_MAX)
		return NTM_ERR_REVOKED;
	if ((err = as_db_server_get(as->db, (int64_t)c->serial, &s)) == NTM_ERR_NOTFOUND) {
		log_warnx("certificate serial %llu of '%s': not enrolled here",
		    (unsigned long long)c->serial, c->name);
		return NTM_ERR_REVOKED;
	}
	if (err < 0)
		return NTM_ERR_DB;
	if (s.revoked_at != 0) {
		log_info("certificate serial %llu of '%s': revoked, refused",
		    (unsigned long long)c->serial, c->name);
		return NTM_ERR_REVOKED;
	}
	if (s.role != c->role || strcmp(s.name, c->name) != 0 ||
	    ntm_memcmp(s.pk, c->pk, sizeof(s.pk)) != 0) {
		log_warnx("certificate serial %llu of '%s': does not match the enrolled server",
		    (unsigned long long)c->serial, c->name);
		return NTM_ERR_CRYPTO;
	}
	return 0;
}

/*
 * POST /v1/as/renew {version}: the calling server's certificate again (same
 * serial, role, name and key, checked against the enrolled row by
 * as_cert_check before this runs), valid server_cert_days from now; the
 * enrolled row follows. A revoked server gets nothing (as_cert_check
 * refused it). Servers ask when a third of their certificate's lifetime is
 * left (docs/protocol.md §3.1).
 */
static void
route_renew(struct ntm_req *req, void *arg)
{
	struct as *as = arg;
	const struct ntm_cert *cert = ntm_req_cert(req);
	struct ntm_m_as_renew_ok ok;
	struct ntm_cert c;
	char b64[NTM_B64_LEN(NTM_CERT_MAX)];
	int64_t now = now_unix();
	json_t *body;
	int e;

	c = *cert;
	c.not_before = now - AS_CERT_SKEW;
	c.not_after = now + as->conf.server_cert_days * 86400L;
	if (c.not_after < cert->not_after)
		c.not_after = cert->not_after;		/* never shorter */
	if ((e = as_db_server_renew(as->db, (int64_t)c.serial, c.not_before, c.not_after)) < 0) {
		if (e == NTM_ERR_NOTFOUND)
			ntm_reply_error(req, 403, "forbidden", NULL, "certificate serial %llu: "
			    "not enrolled, or revoked", (unsigned long long)c.serial);
		else
			ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return;
	}
	ntm_cert_sign(&c, as->sk);
	if (ntm_cert_to_b64(&c, b64, sizeof(b64)) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "cannot encode the certificate");
		return;
	}
	ok = (struct ntm_m_as_renew_ok){ .has = ~UINT32_C(0), .cert = b64,
		.not_after = c.not_after };
	if (ntm_msg_as_renew_ok_encode(&ok, &body, NULL) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	log_info("certificate serial %llu of %s '%s' renewed until %lld",
	    (unsigned long long)c.serial, ntm_role_name(c.role), c.name, (long long)c.not_after);
	ntm_reply_json(req, 200, body);
}

/* Only a DC relays logins, ends its sessions and asks for device certificates;
 * every enrolled server renews its own certificate. */
const struct ntm_http_route as_routes[] = {
	{ "POST", "/v1/as/login", NTM_ROUTE_SIGNED | NTM_ROUTE_VERSIONED, route_login,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) },
	{ "POST", "/v1/as/logout", NTM_ROUTE_SIGNED | NTM_ROUTE_VERSIONED, route_logout,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) },
	{ "POST", "/v1/as/device", NTM_ROUTE_SIGNED | NTM_ROUTE_VERSIONED, route_device,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) },
	{ "POST", "/v1/as/cstoken", NTM_ROUTE_SIGNED | NTM_ROUTE_VERSIONED, route_cstoken,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) },
	{ "POST", "/v1/as/renew", NTM_ROUTE_SIGNED | NTM_ROUTE_VERSIONED, route_renew,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) | NTM_ROUTE_ROLE(NTM_ROLE_RS) |
	  NTM_ROUTE_ROLE(NTM_ROLE_CS) },
	{ .method = NULL }
};
