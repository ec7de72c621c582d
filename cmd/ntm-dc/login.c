/*
 * login.c - the DC's client endpoints (docs/protocol.md section 3.2):
 * POST /v1/login relays the credentials to the AS, then assigns the FQDN and
 * virtual addresses and agrees the session key, then asks the AS to certify
 * the device's key under that FQDN (POST /v1/as/device) and hands the
 * certificate to the device; GET /v1/session and
 * POST /v1/logout authenticate with the AS-issued bearer token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dc.h"
#include "msg.h"
#include "ratelim.h"
#include "reg.h"

#define DC_LOGIN_SOURCES	16384	/* addresses and prefixes with a login bucket */

/* A login waiting for the AS's answer. */
struct dc_login {
	struct dc_login	*next, **prevp;
	struct dc	*dc;
	struct ntm_req	*req;
	char		 user[NTM_USER_MAX + 1];
	char		 device[NTM_DEVICE_MAX + 1];
	char		 peer[64];
	uint8_t		 client_pk[NTM_KX_PK];
	char		 push[NTM_PUSH_URL_MAX + 1];	/* "" when none was given */
	char		 xkey[NTM_B64_LEN(NTM_KX_PK)];	/* "" when none was given */
	char		 dkey[NTM_B64_LEN(NTM_DEVKEY_LEN)];	/* "" when none was given */
	/* the answer, kept while the AS certifies the device key */
	struct dc_client cl;
	char		 token[NTM_B64_LEN(NTM_TOKEN_MAX)];
	int64_t		 token_expires;
	char		 sid[2 * DC_SESSION_ID + 1];
	char		 dc_key[NTM_B64_LEN(NTM_KX_PK)];
	json_t		*cs_tokens;	/* the AS's tokens for the CSs, passed on */
	/* waiting for a turn at the AS */
	json_t		*as_body;	/* what goes to the AS */
	struct dc_login	*qnext;
	int64_t		 queued_at;	/* mono ms */
	int		 known;		/* its prior token is ours, for it */
};

/*
 * Turns at the AS. A login costs the AS one Argon2id run, the dearest
 * thing an anonymous client can ask for. At most login_inflight logins of
 * this DC are at the AS at once; the others wait in one queue per source
 * /24 or /56 (at most login_queue_prefix each and login_queue in all; past
 * them 503 busy at once), and the queues take turns. A flood from many
 * prefixes then costs a login one turn per flooding prefix, never its
 * place; a login that waited longer than as_timeout_ms gets 503 busy.
 * A known device goes first: one whose login carries a token the AS issued
 * for it at this DC (expired less than DC_KNOWN_GRACE_S ago); such logins
 * wait in their own queue (login_queue of them at most), served before the
 * others, with login_inflight places at the AS of their own: a flood that
 * holds the others never holds them. A flood cannot forge one; the
 * password is still asked.
 */
#define DC_KNOWN_GRACE_S	(90L * 86400)
struct login_src {
	struct login_src *next;
	uint8_t		 key[18];
	size_t		 kn;
	struct dc_login	*head, *tail;
	long		 n;
};

static void
login_unlink(struct dc_login *l)
{
	if (l->next)
		l->next->prevp = l->prevp;
	*l->prevp = l->next;
}

/* Overwrites a JSON string's bytes in place (jansson owns a private copy). */
static void
wipe_json_string(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_string(v))
		ntm_wipe((char *)json_string_value(v), json_string_length(v));
}

static void
login_free(struct dc_login *l)
{
	json_t *v;
	size_t i;

	if (l == NULL)
		return;
	json_array_foreach(l->cs_tokens, i, v)
		ntm_wipe((char *)json_string_value(v), json_string_length(v));
	json_decref(l->cs_tokens);
	if (l->as_body) {
		wipe_json_string(l->as_body, "password");
		json_decref(l->as_body);
	}
	ntm_wipe(l, sizeof(*l));
	free(l);
}

static void
login_link(struct dc_login *l)
{
	struct dc *dc = l->dc;

	l->next = dc->pending;
	if (l->next)
		l->next->prevp = &l->next;
	l->prevp = &dc->pending;
	dc->pending = l;
}

static void
login_fail(struct dc_login *l, int status, const char *code, const char *msg)
{
	log_info("login %s/%s from %s: %s", l->user, l->device, l->peer, code);
	ntm_reply_error(l->req, status, code, NULL, "%s", msg);
}

/* The AS failed us: the details (its URL, curl's words) go to our log, the
 * client is told what failed without them. */
static void
login_as_fail(struct dc_login *l, const char *client_msg, const char *detail)
{
	log_warnx("login %s/%s: AS %s: %s", l->user, l->device, dc_as_current(l->dc),
	    detail);
	login_fail(l, 502, "upstream_unavailable", client_msg);
}

/* The 200 answer, with the device certificate when there is one, and
 * the AS key the DC trusts (a client with none pins it). Frees l. */
static void
login_answer(struct dc_login *l, const char *cert)
{
	struct srv *s = l->dc->srv;
	struct ntm_m_login_ok ok;
	char as_key[NTM_B64_LEN(NTM_SIGN_PK)];
	json_t *out;

	if (ntm_b64_encode(as_key, sizeof(as_key), s->conf.as_pk, NTM_SIGN_PK) < 0)
		as_key[0] = '\0';
	ok = (struct ntm_m_login_ok){ .user = l->cl.user, .fqdn = l->cl.fqdn,
		.vip4 = l->cl.vip4, .vip6 = l->cl.vip6, .domain = s->conf.name,
		.token = l->token, .token_expires = l->token_expires, .session_id = l->sid,
		.dc_key = l->dc_key, .device_cert = cert, .as_key = as_key,
		.cs_tokens = l->cs_tokens };
	if (ntm_msg_login_ok_encode(&ok, &out, NULL) < 0)
		out = NULL;			/* answered 500 */
	ntm_reply_json(l->req, 200, out);
	login_free(l);
}

static void
on_as_device(const struct ntm_http_result *res, void *arg)
{
	struct dc_login *l = arg;
	struct ntm_m_as_device_ok ok;
	struct ntm_jerr jerr;
	struct ntm_dcert c;
	uint8_t pk[NTM_DEVKEY_LEN];
	const char *code;
	char msg[512];
	int e;

	login_unlink(l);
	if (res->err < 0 || res->status != 200) {
		code = res->json ? json_string_value(json_object_get(res->json, "code")) : NULL;
		snprintf(msg, sizeof(msg), "%s", res->err < 0 ? (res->errmsg[0] ?
		    res->errmsg : ntm_strerror(res->err)) : code ? code : "refused");
		log_warnx("login %s/%s: AS would not certify the device key: %s", l->user,
		    l->device, msg);
		snprintf(msg, sizeof(msg), "the account server (AS) would not certify this "
		    "device's key for %s (%s)", l->cl.fqdn, code ? code : "no answer");
		login_fail(l, 502, "upstream_unavailable", msg);
		login_free(l);
		return;
	}
	/* Checked as the device will: a DC only carries what the AS signed. */
	if (res->json == NULL || ntm_msg_as_device_ok_decode(res->json, &ok, &jerr) < 0 ||
	    ntm_dcert_from_b64(&c, ok.device_cert) < 0 ||
	    ntm_dcert_check(&c, l->dc->srv->conf.as_pk, l->cl.fqdn, now_unix()) < 0 ||
	    ntm_b64_decode_exact(pk, sizeof(pk), l->dkey) < 0 ||
	    ntm_memcmp(pk, c.pk, sizeof(pk)) != 0 || strcmp(c.user, l->user) != 0 ||
	    strcmp(c.device, l->device) != 0) {
		login_as_fail(l, "the account server (AS) answered with a device certificate "
		    "this DC cannot verify", "bad device certificate");
		login_free(l);
		return;
	}
	if ((e = dc_db_client_set_cert(l->dc->db, l->cl.id, ok.device_cert)) < 0) {
		log_warnx("login %s/%s: storage: %s", l->user, l->device, ntm_strerror(e));
		login_fail(l, 500, "internal", "storage failure");
		login_free(l);
		return;
	}
	login_answer(l, ok.device_cert);
}

/* POST /v1/as/device for l; the answer goes on in on_as_device. */
static void
login_certify(struct dc_login *l)
{
	struct dc *dc = l->dc;
	struct ntm_m_as_device m = { .version = NTM_PROTOCOL_VERSION, .token = l->token,
	    .fqdn = l->cl.fqdn, .device_key = l->dkey };
	json_t *body = NULL;
	int e;

	if (ntm_msg_as_device_encode(&m, &body, NULL) < 0) {
		login_fail(l, 500, "internal", "out of memory");
		login_free(l);
		return;
	}
	login_link(l);
	e = dc_as_post(dc, "device", body, on_as_device, l);
	json_decref(body);
	if (e < 0) {
		login_unlink(l);
		login_as_fail(l, "the DC cannot ask the account server (AS)", ntm_strerror(e));
		login_free(l);
	}
}

/* Once the AS accepted the password: the session, then the device
 * certificate and the 200 answer. Takes l. */
static void
login_finish(struct dc_login *l, const char *token_b64)
{
	struct dc *dc = l->dc;
	struct srv *s = dc->srv;
	struct ntm_token tok;
	struct dc_session sess;
	struct dc_client cl;
	uint8_t kx_pk[NTM_KX_PK], kx_sk[NTM_KX_SK], rx[NTM_KEY_LEN], tx[NTM_KEY_LEN];
	uint8_t sid[DC_SESSION_ID];
	char dc_key[NTM_B64_LEN(NTM_KX_PK)], msg[512];
	int64_t now = now_unix();
	int e;

	memset(&sess, 0, sizeof(sess));
	if (ntm_token_from_b64(&tok, token_b64) < 0 ||
	    (e = ntm_token_verify(&tok, s->conf.as_pk, now)) < 0) {
		login_as_fail(l, "the AS answered with a token this DC cannot verify",
		    "its token does not verify with as_key");
		login_free(l);
		return;
	}
	if (strcmp(tok.user, l->user) != 0 || strcmp(tok.device, l->device) != 0 ||
	    strcmp(tok.dc, s->conf.name) != 0 ||
	    !ntm_token_is_for(&tok, NTM_ROLE_DC, s->conf.name)) {
		snprintf(msg, sizeof(msg), "its token names %s/%s at '%s', not %s/%s at '%s'",
		    tok.user, tok.device, tok.dc, l->user, l->device, s->conf.name);
		login_as_fail(l, "the AS answered with a token for another device", msg);
		login_free(l);
		return;
	}

	if (ntm_kx_keypair(kx_pk, kx_sk) < 0 ||
	    ntm_kx_session(rx, tx, 0, kx_pk, kx_sk, l->client_pk) < 0) {
		ntm_wipe(kx_sk, sizeof(kx_sk));
		login_fail(l, 400, "bad_field", "field 'client_key': not a usable X25519 key");
		login_free(l);
		return;
	}
	ntm_wipe(kx_sk, sizeof(kx_sk));
	ntm_random(sid, sizeof(sid));
	if (ntm_hex_encode(sess.session_id, sizeof(sess.session_id), sid, sizeof(sid)) < 0 ||
	    ntm_hex_encode(sess.token_id, sizeof(sess.token_id), tok.id, sizeof(tok.id)) < 0 ||
	    ntm_b64_encode(sess.rx, sizeof(sess.rx), rx, sizeof(rx)) < 0 ||
	    ntm_b64_encode(sess.tx, sizeof(sess.tx), tx, sizeof(tx)) < 0 ||
	    ntm_b64_encode(dc_key, sizeof(dc_key), kx_pk, sizeof(kx_pk)) < 0) {
		ntm_wipe(rx, sizeof(rx));
		ntm_wipe(tx, sizeof(tx));
		login_fail(l, 500, "internal", "cannot encode the session");
		login_free(l);
		return;
	}
	ntm_wipe(rx, sizeof(rx));
	ntm_wipe(tx, sizeof(tx));
	sess.created = now;
	sess.expires = tok.expires;

	e = dc_db_login(dc->db, &dc->p4, &dc->p6, s->conf.name, l->user, l->device,
	    l->push[0] ? l->push : NULL, l->xkey[0] ? l->xkey : NULL, &sess, now, &cl);
	if (e == 0) {
		dc_sess_login(dc, &cl, &sess);	/* the UDP path knows it at once */
		dc_ended_kick(dc);		/* the session it replaced, if any */
	}
	ntm_wipe(&sess, sizeof(sess));
	if (e == NTM_ERR_NOSPACE) {
		snprintf(msg, sizeof(msg), "no free address left in %s / %s",
		    s->conf.vip4_prefix, s->conf.vip6_prefix);
		login_fail(l, 503, "no_space", msg);
		login_free(l);
		return;
	}
	if (e == NTM_ERR_TOOBIG) {
		snprintf(msg, sizeof(msg), "user %s has %ld devices at this DC already "
		    "(max_devices); an administrator frees one with 'ntm-dc client del'",
		    l->user, s->conf.max_devices);
		login_fail(l, 403, "too_many_devices", msg);
		return;
	}
	if (e < 0) {
		log_warnx("login %s/%s: storage: %s", l->user, l->device, ntm_strerror(e));
		login_fail(l, 500, "internal", "storage failure");
		login_free(l);
		return;
	}
	if (ntm_hex_encode(l->sid, sizeof(l->sid), sid, sizeof(sid)) < 0)
		l->sid[0] = '\0';
	log_info("login %s/%s from %s: ok, %s %s %s%s", l->user, l->device, l->peer,
	    cl.fqdn, cl.vip4, cl.vip6, l->push[0] ? ", push" : "");
	l->cl = cl;
	snprintf(l->token, sizeof(l->token), "%s", token_b64);
	l->token_expires = tok.expires;
	snprintf(l->dc_key, sizeof(l->dc_key), "%s", dc_key);
	if (l->dkey[0] == '\0') {
		login_answer(l, NULL);
		return;
	}
	login_certify(l);
	l = NULL;
	(void)l;
}

static int
passthrough_code(const char *code)
{
	return code && (strcmp(code, "unknown_user") == 0 ||
	    strcmp(code, "bad_password") == 0 || strcmp(code, "user_locked") == 0 ||
	    strcmp(code, "too_many_attempts") == 0 || strcmp(code, "renew_refused") == 0);
}

static void login_next(struct dc *dc);
static void login_answered(struct dc_login *l, const struct ntm_http_result *res);
/* 1 unless a (NULL: none) is at most NTM_CS_TOKENS_MAX strings that
 * could be tokens. */
static int
cs_tokens_bad(json_t *a)
{
	json_t *v;
	size_t i;

	if (json_array_size(a) > NTM_CS_TOKENS_MAX)
		return 1;
	json_array_foreach(a, i, v)
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > NTM_B64_LEN(NTM_TOKEN_SEALED_MAX))
			return 1;
	return 0;
}

static void
on_as_login(const struct ntm_http_result *res, void *arg)
{
	struct dc_login *l = arg;
	struct dc *dc = l->dc;

	if (l->known)
		dc->login_known_inflight--;
	else
		dc->login_inflight--;
	login_answered(l, res);
	login_next(dc);
}

static void
login_answered(struct dc_login *l, const struct ntm_http_result *res)
{
	const char *code = NULL, *message = NULL;
	struct ntm_m_error e;
	struct ntm_m_as_login_ok ok;
	struct ntm_jerr jerr;
	char msg[512];

	login_unlink(l);
	if (res->err < 0) {
		snprintf(msg, sizeof(msg), "the account server (AS) did not answer the "
		    "DC (%s)", ntm_strerror(res->err));
		login_as_fail(l, msg, res->errmsg[0] ? res->errmsg : ntm_strerror(res->err));
	} else if (res->status == 200) {
		if (res->json == NULL) {
			login_as_fail(l, "the account server (AS) answered the DC wrongly",
			    "malformed answer (not a JSON object)");
		} else if (ntm_msg_as_login_ok_decode(res->json, &ok, &jerr) < 0) {
			login_as_fail(l, "the account server (AS) answered the DC wrongly",
			    jerr.message);
		} else if (cs_tokens_bad(ok.cs_tokens)) {
			login_as_fail(l, "the account server (AS) answered the DC wrongly",
			    "malformed cs_tokens");
		} else {
			l->cs_tokens = json_incref(ok.cs_tokens);
			login_finish(l, ok.token);	/* takes l */
			return;
		}
	} else {
		if (ntm_error_read(res->json, &e) == 0) {
			code = e.code;
			message = e.message;
		}
		if (res->status >= 400 && res->status < 500 && passthrough_code(code)) {
			login_fail(l, (int)res->status, code, message ? message : code);
		} else {
			char detail[512];

			snprintf(detail, sizeof(detail), "answered %ld %s%s%s", res->status,
			    code ? code : "(no code)", message ? ": " : "",
			    message ? message : "");
			snprintf(msg, sizeof(msg), "the account server (AS) refused the DC's "
			    "request (HTTP %ld %s)", res->status, code ? code : "without a code");
			login_as_fail(l, msg, detail);
		}
	}
	login_free(l);
}

/* Logins per source address and per /24 or /56, before anything else is
 * spent on them (the AS's time above all): 1, or 0 answered 429. */
static int
login_allowed(struct dc *dc, struct ntm_req *req)
{
	static struct ntm_ratelim *per_addr, *per_prefix;
	const struct srv_conf *cf = &dc->srv->conf;
	const char *peer = ntm_req_peer(req);
	uint8_t k[18], secret[16];
	size_t kn;
	char src[64];

	if (per_addr == NULL) {
		ntm_random(secret, sizeof(secret));
		per_addr = ntm_ratelim_new(DC_LOGIN_SOURCES, (double)cf->login_rate,
		    5.0 * (double)cf->login_rate, secret);
		per_prefix = ntm_ratelim_new(DC_LOGIN_SOURCES, (double)cf->login_rate_prefix,
		    5.0 * (double)cf->login_rate_prefix, secret);
		ntm_wipe(secret, sizeof(secret));
		if (per_addr == NULL || per_prefix == NULL)
			return 1;	/* no table: no limit rather than no login */
	}
	if (peer == NULL || ntm_ratelim_addr_key(peer, 0, k, &kn) < 0)
		return 1;
	if (ntm_ratelim_take(per_addr, k, kn, mono_ms()) &&
	    ntm_ratelim_addr_key(peer, -1, k, &kn) == 0 &&
	    ntm_ratelim_take(per_prefix, k, kn, mono_ms()))
		return 1;
	snprintf(src, sizeof(src), "%s", peer);
	src[strcspn(src, "]")] = '\0';
	if (strrchr(src, ':') && strchr(src, '.'))
		*strrchr(src, ':') = '\0';
	ntm_log_rl(NTM_LOG_WARN, "login refused: over login_rate", src + (src[0] == '['),
	    "login from %s refused: over login_rate", peer);
	ntm_reply_error(req, 429, "rate_limited", NULL, "too many logins from your address; "
	    "try again in a few seconds");
	return 0;
}

/* Asks the AS; l is owned by the pending list until on_as_login runs
 * (and frees it). */
static void
login_send(struct dc_login *l)
{
	struct dc *dc = l->dc;
	int e;

	login_link(l);
	e = dc_as_post(dc, "login", l->as_body, on_as_login, l);
	wipe_json_string(l->as_body, "password");
	json_decref(l->as_body);
	l->as_body = NULL;
	if (e < 0) {
		login_unlink(l);
		login_as_fail(l, "the DC cannot ask the account server (AS)", ntm_strerror(e));
		login_free(l);
		return;
	}
	if (l->known)
		dc->login_known_inflight++;
	else
		dc->login_inflight++;
}

static void
login_busy(struct dc_login *l, const char *why)
{
	log_info("login %s/%s from %s: busy (%s)", l->user, l->device, l->peer, why);
	ntm_reply_error(l->req, 503, "busy", NULL, "the DC has too many logins waiting "
	    "for the account server; try again in a few seconds");
	login_free(l);
}

/* 1 if prior is a token the AS issued for this user and device at this
 * DC, live or expired less than DC_KNOWN_GRACE_S ago. */
static int
login_known(struct dc *dc, const struct ntm_m_login *m)
{
	const struct srv_conf *cf = &dc->srv->conf;
	struct ntm_token t;
	int ok;

	if (m->prior_token == NULL || ntm_token_from_b64(&t, m->prior_token) < 0)
		return 0;
	/* The signature alone (checked as of its last valid second); the age
	 * below. */
	ok = ntm_token_verify(&t, cf->as_pk, t.expires) == 0 &&
	    now_unix() - t.expires < DC_KNOWN_GRACE_S &&
	    ntm_token_is_for(&t, NTM_ROLE_DC, cf->name) &&
	    strcmp(t.dc, cf->name) == 0 && strcmp(t.user, m->user) == 0 &&
	    strcmp(t.device, m->device) == 0;
	ntm_wipe(&t, sizeof(t));
	return ok;
}

/* Queues l behind the other logins of its /24 or /56, or of known
 * devices (or answers 503). */
static void
login_wait(struct dc_login *l)
{
	struct dc *dc = l->dc;
	const struct srv_conf *cf = &dc->srv->conf;
	struct login_src *src;
	uint8_t k[18];
	size_t kn = 0;

	if (l->known) {
		if ((src = dc->login_known) == NULL &&
		    (src = dc->login_known = calloc(1, sizeof(*src))) == NULL) {
			login_busy(l, "out of memory");
			return;
		}
		if (src->n >= cf->login_queue) {
			login_busy(l, "login_queue full of known devices");
			return;
		}
		goto queue;
	}
	if (ntm_req_peer(l->req) == NULL ||
	    ntm_ratelim_addr_key(ntm_req_peer(l->req), -1, k, &kn) < 0)
		kn = 0;		/* no address: one queue for all such */
	for (src = dc->login_srcs; src; src = src->next)
		if (src->kn == kn && memcmp(src->key, k, kn) == 0)
			break;
	if (dc->login_waiting >= cf->login_queue) {
		login_busy(l, "login_queue full");
		return;
	}
	if (src && src->n >= cf->login_queue_prefix) {
		login_busy(l, "login_queue_prefix full");
		return;
	}
	if (src == NULL) {
		if ((src = calloc(1, sizeof(*src))) == NULL) {
			login_busy(l, "out of memory");
			return;
		}
		memcpy(src->key, k, kn);
		src->kn = kn;
		src->next = dc->login_srcs;
		dc->login_srcs = src;
	}
queue:
	l->queued_at = mono_ms();
	if (src->tail)
		src->tail->qnext = l;
	else
		src->head = l;
	src->tail = l;
	src->n++;
	if (!l->known)
		dc->login_waiting++;
}

/* The next login in turn: one from the source after the last one served. */
static struct dc_login *
login_take(struct dc *dc)
{
	struct login_src *src = dc->login_turn ? dc->login_turn : dc->login_srcs, **pp;
	struct dc_login *l;

	if (dc->login_known_inflight < dc->srv->conf.login_inflight && dc->login_known &&
	    (l = dc->login_known->head) != NULL) {
		if ((dc->login_known->head = l->qnext) == NULL)
			dc->login_known->tail = NULL;
		l->qnext = NULL;
		dc->login_known->n--;
		return l;
	}
	if (src == NULL || dc->login_inflight >= dc->srv->conf.login_inflight)
		return NULL;
	l = src->head;
	if ((src->head = l->qnext) == NULL)
		src->tail = NULL;
	l->qnext = NULL;
	src->n--;
	dc->login_waiting--;
	dc->login_turn = src->next;
	if (src->n == 0) {
		for (pp = &dc->login_srcs; *pp != src; pp = &(*pp)->next)
			;
		*pp = src->next;
		free(src);
	}
	return l;
}

static void
login_next(struct dc *dc)
{
	struct dc_login *l;

	while ((l = login_take(dc)) != NULL) {
		if (mono_ms() - l->queued_at > dc->srv->conf.as_timeout_ms)
			login_busy(l, "waited longer than as_timeout_ms");
		else
			login_send(l);
	}
}

static void
on_login(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct srv *s = dc->srv;
	json_t *in = ntm_req_json(req), *out = NULL;
	struct ntm_m_login m;
	struct ntm_m_as_login as;
	struct ntm_jerr jerr;
	struct dc_login *l = NULL;

	if (!login_allowed(dc, req))
		goto cleanup;
	if (ntm_msg_login_decode(in, &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		goto cleanup;
	}
	/* The password in clear, or (better) sealed to the AS: the DC relays
	 * the box and never sees what is in it. */
	if ((m.password == NULL) == (m.sealed == NULL)) {
		ntm_reply_error(req, 400, m.password ? "bad_field" : "missing_field",
		    m.password ? "sealed" : "password", "%s", m.password ?
		    "field 'sealed': give the password or the sealed login, not both" :
		    "field 'password': missing (or give 'sealed')");
		goto cleanup;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		goto cleanup;
	}
	/* The codec checked it is base64url of that many bytes. */
	(void)ntm_b64_decode_exact(l->client_pk, sizeof(l->client_pk), m.client_key);
	snprintf(l->xkey, sizeof(l->xkey), "%s", m.exchange_key ? m.exchange_key : "");
	snprintf(l->dkey, sizeof(l->dkey), "%s", m.device_key ? m.device_key : "");
	l->dc = dc;
	l->req = req;
	snprintf(l->user, sizeof(l->user), "%s", m.user);
	snprintf(l->device, sizeof(l->device), "%s", m.device);
	snprintf(l->peer, sizeof(l->peer), "%s", ntm_req_peer(req) ? ntm_req_peer(req) : "?");
	snprintf(l->push, sizeof(l->push), "%s", m.push ? m.push : "");

	memset(&as, 0, sizeof(as));
	as.version = NTM_PROTOCOL_VERSION;
	as.user = m.user;
	as.password = m.password;
	as.sealed = m.sealed;
	as.device = m.device;
	/* The AS serves a DC's known devices first too (among this DC's). */
	l->known = login_known(dc, &m);
	as.known = l->known;
	ntm_jmsg_set(&ntm_msg_as_login, &as, "known", l->known);
	if (ntm_msg_as_login_encode(&as, &out, &jerr) < 0) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		goto cleanup;
	}
	l->as_body = out;
	out = NULL;
	if (l->known ? dc->login_known_inflight < s->conf.login_inflight &&
	    (dc->login_known == NULL || dc->login_known->n == 0) :
	    dc->login_inflight < s->conf.login_inflight && dc->login_waiting == 0)
		login_send(l);
	else
		login_wait(l);
	l = NULL;
cleanup:
	if (out) {
		wipe_json_string(out, "password");
		json_decref(out);
	}
	if (in) {
		wipe_json_string(in, "password");
		wipe_json_string(in, "prior_token");
	}
	login_free(l);
}

static void
on_session(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_token tok;
	struct dc_client cl;
	struct dc_session sess;

	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}",
	    "user", cl.user, "fqdn", cl.fqdn, "vip4", cl.vip4, "vip6", cl.vip6,
	    "domain", dc->srv->conf.name, "token_expires", (json_int_t)tok.expires,
	    "session_id", sess.session_id);

	/* What this DC takes that an older one refuses: the agent sends it
	 * only when listed here (docs/protocol.md §4.7). */
	if (j)
		json_object_set_new(j, "features", json_pack("[s]", NTM_REG_FEATURE_FILTER));
	/* The RS's UDP addresses, for `ntm netcheck` (reflection probes). */
	if (j && dc->srv->conf.relay_addr4)
		json_object_set_new(j, "relay_udp4", json_string(dc->srv->conf.relay_addr4));
	if (j && dc->srv->conf.relay_addr6)
		json_object_set_new(j, "relay_udp6", json_string(dc->srv->conf.relay_addr6));
	ntm_reply_json(req, 200, j);
	ntm_wipe(&sess, sizeof(sess));
}

static void
on_logout(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_m_logout m;
	struct ntm_jerr jerr;
	struct ntm_token tok;
	struct dc_client cl;
	struct dc_session sess;
	int e;

	if (ntm_msg_logout_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	if (dc_authenticate(dc, req, &tok, &cl, &sess) < 0)
		return;
	if ((e = dc_db_logout(dc->db, sess.token_id, now_unix())) < 0) {
		ntm_wipe(&sess, sizeof(sess));
		log_warnx("logout %s/%s: storage: %s", cl.user, cl.device, ntm_strerror(e));
		ntm_reply_error(req, 500, "internal", NULL, "storage failure");
		return;
	}
	dc_ended_kick(dc);	/* the AS, then the CSs, hear of it */
	ntm_wipe(&sess, sizeof(sess));
	dc_sess_logout(dc, cl.id);
	log_info("logout %s/%s (%s)", cl.user, cl.device, cl.fqdn);
	ntm_reply_json(req, 200, json_object());
}

/* ---- POST /v1/exchange/cstoken: a token for one more CS ------------------- */

/* A client's request for a CS token, waiting for the AS. */
struct dc_cstok {
	struct dc_cstok	 *next, **prevp;
	struct dc	 *dc;
	struct ntm_req	 *req;
	struct ntm_token  tok;		/* the client's, for this DC */
	char		  cs[NTM_NAME_MAX + 1];
};

static void
cstok_unlink(struct dc_cstok *c)
{
	if (c->next)
		c->next->prevp = c->prevp;
	*c->prevp = c->next;
}

static void
cstok_free(struct dc_cstok *c)
{
	if (c == NULL)
		return;
	ntm_wipe(c, sizeof(*c));
	free(c);
}

/* The AS's answer: passed on when it is a token of this login for that CS,
 * or one sealed to the device's key (a sealed login), which only the
 * device opens and checks. */
static void
on_as_cstoken(const struct ntm_http_result *res, void *arg)
{
	struct dc_cstok *c = arg;
	struct srv *s = c->dc->srv;
	struct ntm_m_cstoken_ok ok;
	struct ntm_m_error e;
	struct ntm_token t;
	json_t *out = NULL;

	cstok_unlink(c);
	memset(&t, 0, sizeof(t));
	if (res->err == 0 && res->status == 200 && res->json &&
	    ntm_msg_cstoken_ok_decode(res->json, &ok, NULL) == 0 &&
	    ntm_token_from_b64(&t, ok.token) < 0 &&
	    strlen(ok.token) <= NTM_B64_LEN(NTM_TOKEN_SEALED_MAX) &&
	    ntm_msg_cstoken_ok_encode(&ok, &out, NULL) == 0) {
		log_info("CS token for %s (sealed to the device) issued to %s/%s", c->cs,
		    c->tok.user, c->tok.device);
		ntm_reply_json(c->req, 200, out);
	} else if (res->err == 0 && res->status == 200 && res->json &&
	    ntm_msg_cstoken_ok_decode(res->json, &ok, NULL) == 0 &&
	    ntm_token_from_b64(&t, ok.token) == 0 &&
	    ntm_token_verify(&t, s->conf.as_pk, now_unix()) == 0 &&
	    ntm_token_is_for(&t, NTM_ROLE_CS, c->cs) &&
	    memcmp(t.id, c->tok.id, sizeof(t.id)) == 0 && strcmp(t.user, c->tok.user) == 0 &&
	    strcmp(t.device, c->tok.device) == 0 && strcmp(t.dc, s->conf.name) == 0 &&
	    ntm_msg_cstoken_ok_encode(&ok, &out, NULL) == 0) {
		log_info("CS token for %s issued to %s/%s", c->cs, c->tok.user, c->tok.device);
		ntm_reply_json(c->req, 200, out);
	} else if (res->err == 0 && (res->status == 404 || res->status == 403) &&
	    ntm_error_read(res->json, &e) == 0 && (strcmp(e.code, "unknown_cs") == 0 ||
	    strcmp(e.code, "user_locked") == 0)) {
		/* The AS's own answers, for the client to see. */
		ntm_reply_error(c->req, (int)res->status, e.code,
		    strcmp(e.code, "unknown_cs") == 0 ? "cs" : NULL, "%s", e.message ?
		    e.message : e.code);
	} else {
		log_warnx("CS token for %s/%s (%s): AS %s: %s", c->tok.user, c->tok.device,
		    c->cs, dc_as_current(c->dc), res->err < 0 ? (res->errmsg[0] ? res->errmsg :
		    ntm_strerror(res->err)) : "refused or answered wrongly");
		ntm_reply_error(c->req, 502, "upstream_unavailable", NULL, "the account "
		    "server (AS) did not give a token for the CS '%s'", c->cs);
	}
	ntm_wipe(&t, sizeof(t));
	cstok_free(c);
}

/*
 * POST /v1/exchange/cstoken {version, cs} (bearer): a token of the caller's
 * login for the CS named, one the AS enrolled after the login (the login
 * gave one for every CS enrolled then, docs/protocol.md §2.3). The AS
 * issues it (POST /v1/as/cstoken); the DC only relays.
 */
static void
on_cstoken(struct ntm_req *req, void *arg)
{
	struct dc *dc = arg;
	struct ntm_m_cstoken m;
	struct ntm_m_as_cstoken as;
	struct ntm_jerr jerr;
	struct dc_client cl;
	struct dc_session sess;
	struct dc_cstok *c;
	char b64[NTM_B64_LEN(NTM_TOKEN_MAX)];
	json_t *body = NULL;
	int e;

	if (ntm_msg_cstoken_decode(ntm_req_json(req), &m, &jerr) < 0) {
		ntm_reply_jerr(req, &jerr);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	if (dc_authenticate(dc, req, &c->tok, &cl, &sess) < 0) {
		cstok_free(c);
		return;
	}
	ntm_wipe(&sess, sizeof(sess));
	c->dc = dc;
	c->req = req;
	snprintf(c->cs, sizeof(c->cs), "%s", m.cs);
	memset(&as, 0, sizeof(as));
	as.version = NTM_PROTOCOL_VERSION;
	as.token = b64;
	as.cs = c->cs;
	if (ntm_token_to_b64(&c->tok, b64, sizeof(b64)) < 0 ||
	    ntm_msg_as_cstoken_encode(&as, &body, NULL) < 0) {
		ntm_wipe(b64, sizeof(b64));
		ntm_reply_error(req, 500, "internal", NULL, "cannot ask the AS");
		cstok_free(c);
		return;
	}
	ntm_wipe(b64, sizeof(b64));
	c->next = dc->cstoks;
	if (c->next)
		c->next->prevp = &c->next;
	c->prevp = &dc->cstoks;
	dc->cstoks = c;
	e = dc_as_post(dc, "cstoken", body, on_as_cstoken, c);
	json_decref(body);
	if (e < 0) {
		cstok_unlink(c);
		ntm_reply_error(req, 502, "upstream_unavailable", NULL, "the DC cannot ask the "
		    "account server (AS)");
		cstok_free(c);
	}
}

void
dc_login_counts(const struct dc *dc, long *at_as, long *waiting)
{
	*at_as = dc->login_inflight + dc->login_known_inflight;
	*waiting = dc->login_waiting + (dc->login_known ? (long)dc->login_known->n : 0);
}

/* After ntm_httpc_free (which drops pending callbacks), before the HTTPS
 * server goes: answers and frees the logins and CS token requests still
 * waiting for the AS. */
void
dc_cancel_logins(struct dc *dc)
{
	struct dc_login *l;
	struct dc_cstok *c;

	while ((l = dc->pending) != NULL) {
		login_unlink(l);
		login_fail(l, 502, "upstream_unavailable",
		    "the DC is shutting down before the AS answered");
		login_free(l);
	}
	while ((l = login_take(dc)) != NULL) {
		login_fail(l, 502, "upstream_unavailable",
		    "the DC is shutting down before the AS was asked");
		login_free(l);
	}
	free(dc->login_known);
	dc->login_known = NULL;
	while ((c = dc->cstoks) != NULL) {
		cstok_unlink(c);
		ntm_reply_error(c->req, 502, "upstream_unavailable", NULL,
		    "the DC is shutting down before the AS answered");
		cstok_free(c);
	}
}

const struct ntm_http_route dc_login_routes[] = {
	{ "POST", "/v1/login",	 NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED, .fn = on_login },
	{ "GET",  "/v1/session", NTM_ROUTE_BEARER, .fn = on_session },
	{ "POST", "/v1/logout",	 NTM_ROUTE_BEARER | NTM_ROUTE_JSON | NTM_ROUTE_VERSIONED,
	  .fn = on_logout },
	{ "POST", "/v1/exchange/cstoken", NTM_ROUTE_BEARER | NTM_ROUTE_JSON |
	  NTM_ROUTE_VERSIONED, .fn = on_cstoken },
	{ .method = NULL }
};
