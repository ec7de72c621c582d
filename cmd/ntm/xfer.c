/*
 * xfer.c - shared glue of ntm keys, send and fetch (xcli.h): JSON calls to
 * the DC and CSs, the key store, chunked uploads and streamed downloads.
 * Memory stays bounded whatever the object size: one X_CHUNK buffer up,
 * curl's own buffer down.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include "common.h"
#include "agent.h"
#include "identity.h"
#include "xcli.h"
#include "xpipe.h"
#include "msg.h"

/* One libcurl handle for every request of a run, JSON calls and raw
 * transfers alike: its connections (kept alive, one per server), TLS
 * sessions and CA store outlive each request (curl_easy_reset keeps them),
 * so a run makes one TLS handshake per server. */
static CURL *easy;
static int n_requests, n_connects;	/* for -vv: round trips and handshakes of a run */
static int n_agent;			/* of the requests, those the agent carried */

/* After each request: its time, and whether it opened a connection (-vv). */
static void
easy_count(CURL *c, const char *what, const char *url)
{
	double total = 0;
	long conns = 0, status = 0;

	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &total);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	n_requests++;
	n_connects += (int)conns;
	log_debug("%s %s: %ld in %.1f ms (%s)", what, url, status, total * 1000,
	    conns ? "new connection" : "reused");
}

static int json_call(struct xctx *x, const char *method, const char *url, json_t *body,
    long *status, json_t **json, char *errmsg, size_t errlen);
static int x_fail(struct xctx *x, const char *base, int err, long status, json_t *body,
    const char *errmsg);

/*
 * A token for the CS named host, from our DC (POST /v1/exchange/cstoken:
 * a CS enrolled after the login), added to the session and saved: the new
 * token (owned by x->s), or NULL after one error line.
 */
static const char *
cs_token_get(struct xctx *x, const char *host)
{
	struct ntm_m_cstoken m = { .version = NTM_PROTOCOL_VERSION, .cs = host };
	struct ntm_m_cstoken_ok ok;
	struct ntm_token t;
	uint8_t dpk[NTM_DEVKEY_LEN], dsk[NTM_DEVKEY_LEN];
	char url[NTM_URL_MAX + 64], errmsg[256] = "", plain[NTM_B64_LEN(NTM_TOKEN_MAX)];
	const char *b64 = NULL;
	json_t *body, *r = NULL;
	long status = 0;
	int err, i, good;

	if ((body = x_msg(x, &ntm_msg_cstoken, &m)) == NULL)
		return NULL;
	snprintf(url, sizeof(url), "%s/v1/exchange/cstoken", x->s.dc_url);
	log_info("POST %s (a token for the CS %s)", url, host);
	err = json_call(x, "POST", url, body, &status, &r, errmsg, sizeof(errmsg));
	json_decref(body);
	memset(&t, 0, sizeof(t));
	/* Sealed to our device key when the login was (docs/protocol.md §2.3). */
	if (err == 0 && status == 200 && ntm_msg_cstoken_ok_decode(r, &ok, NULL) == 0) {
		b64 = ok.token;
		if (ntm_token_from_b64(&t, b64) < 0 &&
		    id_device_keypair(x->cli, dpk, dsk, 0) == 0 &&
		    ntm_token_unseal(plain, sizeof(plain), b64, dpk, dsk) > 0)
			b64 = plain;
		ntm_wipe(dsk, sizeof(dsk));
	}
	good = b64 && ntm_token_from_b64(&t, b64) == 0 && ntm_token_is_for(&t, NTM_ROLE_CS, host) &&
	    strcmp(t.user, x->s.user) == 0 && strcmp(t.device, x->s.device) == 0;
	ntm_wipe(&t, sizeof(t));
	if (!good) {
		if (err == 0 && status == 200)
			cli_err(x->cmd, "bad answer from %s: not a token for the CS '%s'",
			    x->s.dc_url, host);
		else
			(void)x_fail(x, x->s.dc_url, err, status, r, errmsg);
		ntm_wipe(plain, sizeof(plain));
		json_decref(r);
		return NULL;
	}
	/* Full: the oldest goes. */
	if (x->s.ncs_tokens == NTM_CS_TOKENS_MAX) {
		ntm_wipe(x->s.cs_tokens[0], strlen(x->s.cs_tokens[0]));
		free(x->s.cs_tokens[0]);
		for (i = 1; i < x->s.ncs_tokens; i++)
			x->s.cs_tokens[i - 1] = x->s.cs_tokens[i];
		x->s.ncs_tokens--;
	}
	i = x->s.ncs_tokens++;
	x->s.cs_tokens[i] = xstrdup(b64);
	ntm_wipe(plain, sizeof(plain));
	json_decref(r);
	if ((err = session_save(x->cli, &x->s)) < 0)
		log_info("cannot save the session with the token for %s: %s", host,
		    ntm_strerror(err));
	return x->s.cs_tokens[i];
}

/*
 * The bearer token for url (docs/protocol.md §2.3): the DC's own for the
 * DC, else the one the AS issued for the CS that the URL's host names
 * (asked of the DC once when the session holds none: a CS enrolled after
 * the login). A token goes to no other server: a CS that kept it could not
 * use it at the DC or at another CS. NULL when there is none, said once
 * (the request then goes without, and the CS refuses it).
 */
static const char *
x_bearer(struct xctx *x, const char *url)
{
	size_t n = strlen(x->s.dc_url);
	char host[NTM_NAME_MAX + 1];
	const char *tok = NULL;
	struct ntm_token t;
	int i, ok;

	if (strncmp(url, x->s.dc_url, n) == 0 && strchr("/?", url[n]) != NULL)
		return x->s.token;
	if (ntm_url_host(url, host, sizeof(host)) < 0)
		return NULL;
	for (i = 0; i < x->s.ncs_tokens; i++) {
		ok = ntm_token_from_b64(&t, x->s.cs_tokens[i]) == 0 &&
		    ntm_token_is_for(&t, NTM_ROLE_CS, host);
		ntm_wipe(&t, sizeof(t));
		if (ok)
			return x->s.cs_tokens[i];
	}
	if (!x->no_cs_token) {
		x->no_cs_token = 1;	/* asked once a run */
		if (ntm_valid_dnsname(host) && (tok = cs_token_get(x, host)) != NULL)
			x->no_cs_token = 0;
		else
			cli_err(x->cmd, "the session holds no token for the cache server "
			    "'%s', and the DC gave none", host);
	}
	return tok;
}

/*
 * A request with a small body, carried by the agent when one runs for this
 * profile: its connections to the DC and CS stay open between commands, so
 * a send or fetch makes no TLS handshake of its own (agent_https). 1 when
 * no agent carries it (remembered for the run): the caller uses libcurl.
 */
static int
x_agent(struct xctx *x, const char *method, const char *url, const char *ctype,
    const void *body, size_t blen, long *status, char **resp, size_t *rlen, char *errmsg,
    size_t errlen)
{
	struct agent_https_req q = { method, url, x_bearer(x, url), ctype, body, blen,
	    x->timeout_ms };
	int64_t t0 = agent_now_us();
	int r;

	if (x->no_agent || blen > AGENT_HTTPS_BODY_MAX)
		return 1;
	if ((r = agent_https(x->cli, &q, status, resp, rlen, errmsg, errlen)) == 1) {
		x->no_agent = 1;
		return 1;
	}
	/* The agent stopped under the request: made again directly, as after
	 * a dropped connection (a long-poll starts again, an upload goes on
	 * from the CS's offset, a repeated creation leaves an unused upload
	 * that the CS collects). */
	if (r == 2) {
		log_info("%s %s: %s; going on without the agent", method, url, errmsg);
		x->no_agent = 1;
		errmsg[0] = '\0';
		return 1;
	}
	n_requests++;
	n_agent++;
	log_debug("%s %s: %ld in %.1f ms (by the agent)", method, url, *status,
	    (double)(agent_now_us() - t0) / 1000);
	return r;
}

int
xctx_open(struct xctx *x, struct cli *cli, const char *cmd, long timeout_s)
{
	char err[512];
	int e;

	memset(x, 0, sizeof(*x));
	x->cli = cli;
	x->cmd = cmd;
	x->timeout_ms = cli_timeout(cli, timeout_s) * 1000;
	if ((e = session_load(cli, &x->s, err, sizeof(err))) == NTM_ERR_NOTFOUND) {
		cli_err(cmd, "not logged in (run 'ntm login')");
		return EXIT_NOSESSION;
	}
	if (e < 0) {
		cli_err(cmd, "%s", err);
		return EXIT_FAIL;
	}
	if (x->s.token_expires <= now_unix()) {
		cli_err(cmd, "the session expired (run 'ntm login')");
		return EXIT_NOSESSION;
	}
	return 0;
}

void
xctx_close(struct xctx *x)
{
	session_free(&x->s);
	if (n_requests)
		log_debug("%d HTTPS requests, %d connections%s", n_requests, n_connects,
		    n_agent == n_requests ? " (all carried by the agent)" :
		    n_agent ? " (some carried by the agent)" : "");
	if (easy) {
		curl_easy_cleanup(easy);
		easy = NULL;
	}
}

int
x_valid_peer(struct xctx *x, const char *s, const char *what)
{
	if (!ntm_valid_dnsname(s) || strchr(s, '.') == NULL) {
		cli_err(x->cmd, "%s '%s': not a client FQDN (like bob.dc2.example)", what, s);
		return 0;
	}
	if (strcmp(s, x->s.fqdn) == 0) {
		cli_err(x->cmd, "%s '%s': that is you", what, s);
		return 0;
	}
	return 1;
}

/* A response body kept whole, up to X_RESP_MAX bytes (JSON answers). */
#define X_RESP_MAX	(1024 * 1024)
struct dbuf {
	char	*p;
	size_t	 len, cap;
	int	 over;
};

static size_t
dbuf_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct dbuf *b = arg;
	size_t n = size * nmemb, cap;
	char *q;

	if (b->len + n > X_RESP_MAX) {
		b->over = 1;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((q = realloc(b->p, cap)) == NULL)
			return 0;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

static CURL *easy_new(struct xctx *x, const char *url, struct curl_slist **hdrs);
static void easy_free(CURL *c, struct curl_slist *hdrs);

/* One JSON request on the shared handle: 0 when an answer came (any
 * status), else an NTM_ERR_* with errmsg. *json: the body if it is a JSON
 * object (new), else NULL. */
static int
json_call(struct xctx *x, const char *method, const char *url, json_t *body, long *status,
    json_t **json, char *errmsg, size_t errlen)
{
	struct curl_slist *h;
	struct dbuf b = { NULL, 0, 0, 0 };
	char *text = NULL;
	CURLcode rc;
	CURL *c;
	int err;

	*json = NULL;
	*status = 0;
	if (body && (text = json_dumps(body, JSON_COMPACT)) == NULL)
		return NTM_ERR_NOMEM;
	if ((err = x_agent(x, method, url, text || !strcmp(method, "POST") ||
	    !strcmp(method, "PUT") ? "application/json" : NULL, text,
	    text ? strlen(text) : 0, status, &b.p, &b.len, errmsg, errlen)) != 1)
		goto parse;
	if ((c = easy_new(x, url, &h)) == NULL) {
		err = NTM_ERR_NOMEM;
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, x->timeout_ms);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)X_RESP_MAX);
	if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(text ? strlen(text) : 0));
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text ? text : "");
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dbuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	easy_count(c, method, url);
	easy_free(c, h);
	if ((err = ntm_http_curl_err(rc)) != 0 && !b.over && rc != CURLE_FILESIZE_EXCEEDED)
		snprintf(errmsg, errlen, "%s", curl_easy_strerror(rc));
	else if (b.over || rc == CURLE_FILESIZE_EXCEEDED)
		err = NTM_ERR_TOOBIG;
parse:
	if (err == 0 && b.len > X_RESP_MAX)
		err = NTM_ERR_TOOBIG;
	if (err == NTM_ERR_TOOBIG)
		snprintf(errmsg, errlen, "response body over the limit of %d bytes", X_RESP_MAX);
	else if (err == 0 && b.len > 0) {
		*json = json_loadb(b.p, b.len, JSON_REJECT_DUPLICATES, NULL);
		if (*json && !json_is_object(*json)) {
			json_decref(*json);
			*json = NULL;
		}
	}
out:
	if (text) {
		ntm_wipe(text, strlen(text));
		free(text);
	}
	free(b.p);
	return err;
}

json_t *
x_msg(struct xctx *x, const struct ntm_jmsg *m, const void *in)
{
	struct ntm_jerr jerr;
	json_t *j;

	if (ntm_jmsg_encode(m, in, &j, &jerr) < 0) {
		cli_err(x->cmd, "%s: %s", m->name, jerr.message[0] ? jerr.message :
		    "out of memory");
		return NULL;
	}
	return j;
}

/* cli_http_fail, or (x->quiet: an upload that may still resume) the log
 * and x->last_err. */
static int
x_fail(struct xctx *x, const char *base, int err, long status, json_t *body,
    const char *errmsg)
{
	char m[sizeof(x->last_err)];
	int ret = cli_http_error(m, sizeof(m), base, err, status, body, errmsg);

	if (x->quiet) {
		snprintf(x->last_err, sizeof(x->last_err), "%s", m);
		log_info("%s", m);
	} else
		cli_err(x->cmd, "%s", m);
	return ret;
}

int
x_call(struct xctx *x, const char *base, const char *method, const char *path, json_t *body,
    long want, json_t **out)
{
	char url[NTM_PUSH_URL_MAX + 512], errmsg[256] = "";
	const char *code;
	json_t *resp = NULL;
	long status = 0;
	int err, ret;

	if (out)
		*out = NULL;
	snprintf(url, sizeof(url), "%s%s", base, path);
	log_info("%s %s", method, url);
	err = json_call(x, method, url, body, &status, &resp, errmsg, sizeof(errmsg));
	if (err == 0 && status == want) {
		if (out)
			*out = resp;
		else
			json_decref(resp);
		return 0;
	}
	/* A remembered CS that is gone: the caller asks the DC again. */
	if (x->cs_probe && x->cs_cached && err == NTM_ERR_CONNECT && strcmp(base, x->cs) == 0) {
		log_info("%s: %s; asking %s for its CS", base, errmsg, x->s.dc_url);
		return EXIT_UNREACH;
	}
	ret = x_fail(x, base, err, status, resp, errmsg);
	code = ntm_error_code(resp);
	if (code && strcmp(code, "unknown_peer") == 0)
		ret = EXIT_NOTUNNEL;
	/* The CS's own 401 codes (§7.1): the session is no good there. */
	if (code && (strcmp(code, "token_revoked") == 0 || strcmp(code, "token_expired") == 0))
		ret = EXIT_NOSESSION;
	json_decref(resp);
	return ret;
}

/* Our DC's CS URL, kept in STATE_DIR/X_CS_FILE for X_CS_KEEP_S so that a
 * send talks to the CS alone: {"dc": DC URL, "cs": CS URL, "time": T}. */
#define X_CS_FILE	"cs.json"
#define X_CS_KEEP_S	600

static int
cs_cached(struct xctx *x)
{
	char *path = cli_state_path(x->cli, X_CS_FILE), *text = NULL;
	const char *dc, *cs;
	json_t *j = NULL;
	int64_t t;
	size_t len;
	int ok = 0;

	if (ntm_file_read(path, 4096, &text, &len) == 0 &&
	    (j = json_loadb(text, len, 0, NULL)) != NULL &&
	    (dc = json_string_value(json_object_get(j, "dc"))) != NULL &&
	    (cs = json_string_value(json_object_get(j, "cs"))) != NULL &&
	    strcmp(dc, x->s.dc_url) == 0 && ntm_valid_push_url(cs)) {
		t = json_integer_value(json_object_get(j, "time"));
		if (t <= now_unix() && now_unix() - t < X_CS_KEEP_S) {
			snprintf(x->cs, sizeof(x->cs), "%s", cs);
			x->cs_cached = 1;
			ok = 1;
		}
	}
	json_decref(j);
	free(text);
	free(path);
	return ok;
}

static void
cs_remember(struct xctx *x)
{
	char *path = cli_state_path(x->cli, X_CS_FILE), *text;
	json_t *j = json_pack("{s:s, s:s, s:I}", "dc", x->s.dc_url, "cs", x->cs, "time",
	    (json_int_t)now_unix());

	if (j && (text = json_dumps(j, JSON_COMPACT)) != NULL) {
		if (cli_state_prepare(x->cli, x->cmd) == 0 &&
		    ntm_file_write(path, text, strlen(text), 0600) < 0)
			log_info("cannot write %s", path);
		free(text);
	}
	json_decref(j);
	free(path);
}

void
x_forget_cs(struct xctx *x)
{
	char *path = cli_state_path(x->cli, X_CS_FILE);

	unlink(path);
	free(path);
	x->cs[0] = '\0';
	x->cs_cached = 0;
}

int
x_our_cs(struct xctx *x)
{
	struct ntm_m_cs_where m;
	json_t *r;
	int ret;

	if (x->cs[0] || cs_cached(x))
		return 0;
	if ((ret = x_call(x, x->s.dc_url, "GET", "/v1/exchange/cs", NULL, 200, &r)) != 0)
		return ret;
	if (ntm_msg_cs_where_decode(r, &m, NULL) < 0) {
		cli_err(x->cmd, "bad answer from %s: no CS URL", x->s.dc_url);
		json_decref(r);
		return EXIT_FAIL;
	}
	snprintf(x->cs, sizeof(x->cs), "%s", m.cs);
	json_decref(r);
	cs_remember(x);
	return 0;
}

/* 1 once the CS has tried every destination at least once (or settled it). */
static int
all_tried(const struct ntm_m_cs_meta *meta)
{
	struct ntm_m_cs_dest m;
	json_t *d;
	size_t i;

	json_array_foreach(meta->to, i, d)
		if (ntm_msg_cs_dest_decode(d, &m, NULL) == 0 &&
		    strcmp(m.status, "pending") == 0 && m.attempts == 0)
			return 0;
	return 1;
}

int
x_announced(struct xctx *x, const char *base, const char *sha256, json_t **out)
{
	char path[160];
	struct ntm_m_cs_meta meta;
	struct ntm_m_cs_dest m;
	struct ntm_m_cs_dest_error me;
	struct ntm_jerr jerr;
	json_t *r = NULL, *d;
	int64_t deadline = mono_ms() + x->timeout_ms;
	long left_s;
	size_t i;
	int ret, n, first = 0;

	*out = NULL;
	/* The CS holds each ask (a long-poll) until it has tried every
	 * destination's DC once; bounded in count and time, as a DC may be
	 * slow to find or to answer. A whole second is kept for the answer. */
	for (n = 0; n < X_ANN_POLLS; n++) {
		left_s = (long)((deadline - mono_ms()) / 1000) - 1;
		if (left_s > X_ANN_WAIT_MAX_S)
			left_s = X_ANN_WAIT_MAX_S;
		if (left_s < 0)
			left_s = 0;
		snprintf(path, sizeof(path), "/v1/cs/object/meta?sha256=%s&wait=%ld", sha256,
		    left_s);
		json_decref(r);
		r = NULL;
		if ((ret = x_call(x, base, "GET", path, NULL, 200, &r)) != 0)
			return ret;
		if (ntm_msg_cs_meta_decode(r, &meta, &jerr) < 0) {
			cli_err(x->cmd, "bad answer from %s: %s", base, jerr.message);
			json_decref(r);
			return EXIT_FAIL;
		}
		if (all_tried(&meta) || left_s == 0)
			break;
		if (!meta.announcing) {
			cli_err(x->cmd, "the CS at %s announces nothing (it has no resolver): "
			    "the recipients are not told", base);
			break;
		}
	}
	json_array_foreach(meta.to, i, d) {
		const char *fqdn, *st, *code = NULL, *msg = NULL;

		if (ntm_msg_cs_dest_decode(d, &m, NULL) < 0)
			continue;
		fqdn = m.fqdn;
		st = m.status;
		if (m.error && ntm_msg_cs_dest_error_decode(m.error, &me, NULL) == 0) {
			code = me.code;
			msg = me.message;
		}
		if (strcmp(st, "failed") == 0) {
			cli_err(x->cmd, "%s: %s: %s", fqdn, code ? code : "failed",
			    msg ? msg : "not announced");
			if (first == 0)
				first = code && strcmp(code, "unknown_peer") == 0 ?
				    EXIT_NOTUNNEL : cli_exit_for_code(code, 0);
		} else if (strcmp(st, "pending") != 0)
			continue;
		else if (code)
			cli_err(x->cmd, "%s: not announced yet (%s: %s); the CS tries again",
			    fqdn, code, msg ? msg : "");
		else if (meta.announcing)
			cli_err(x->cmd, "%s: not announced yet; the CS keeps trying", fqdn);
	}
	*out = r;
	return first;
}

/* ---- this device's exchange key ------------------------------------------------ */

int
x_exchange_keypair(const struct cli *cli, uint8_t pk[NTM_XPK_LEN], uint8_t sk[NTM_XSK_LEN],
    int create)
{
	char *path = xasprintf("%s/%s", cli->state_dir, X_EXCHANGE_KEY_FILE);
	int ret;

	if ((ret = ntm_key_load(path, sk, NTM_XSK_LEN)) == NTM_ERR_NOTFOUND && create) {
		ntm_xkeypair(pk, sk);
		ret = ntm_key_save(path, sk, NTM_XSK_LEN);
	} else if (ret == 0)
		ret = ntm_xpk_of(pk, sk);
	free(path);
	if (ret < 0)
		ntm_wipe(sk, NTM_XSK_LEN);
	return ret;
}

/* ---- the key store ----------------------------------------------------------- */

static char *
key_path(const struct cli *cli, const char *peer)
{
	return xasprintf("%s/keys/%s.key", cli->state_dir, peer);
}

/* A "sent" array into sent[] (at most X_KEY_SENT_MAX): 0 or -1. */
static int
sent_parse(json_t *arr, struct xkey_sent *sent, int *n)
{
	json_t *v;
	size_t i;
	const char *sha;

	*n = 0;
	if (arr == NULL)
		return 0;
	if (json_array_size(arr) > X_KEY_SENT_MAX)
		return -1;
	json_array_foreach(arr, i, v) {
		sha = json_string_value(json_object_get(v, "sha256"));
		if (sha == NULL || strlen(sha) != 64 ||
		    !json_is_integer(json_object_get(v, "expires")))
			return -1;
		memcpy(sent[*n].sha256, sha, 65);
		sent[(*n)++].expires = json_integer_value(json_object_get(v, "expires"));
	}
	return 0;
}

static json_t *
sent_json(const struct xkey_sent *sent, int n)
{
	json_t *a = json_array();
	int i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:I}", "sha256", sent[i].sha256,
		    "expires", (json_int_t)sent[i].expires));
	return a;
}

/* Whether a previous key may still open an object waiting somewhere. */
static int
old_needed(const struct xkey_old *o, int64_t now)
{
	return (o->before > 0 && (o->before != X_KEY_BEFORE_ANY || o->peer_until > now)) ||
	    ((o->nsent > 0 || o->lost) && o->until > now);
}

/* One previous key from its JSON: 0 or -1. */
static int
old_parse(json_t *j, struct xkey_old *o)
{
	const char *kid = NULL, *key = NULL, *to = NULL;
	int64_t created = 0, until = 0, before = 0, peer_until = 0;
	int init = 0, lost = 0;
	json_t *sent = NULL;
	const struct ntm_jfield f[] = {
		{ "key_id", NTM_J_STR, 1, &kid, 2 * NTM_XKEY_ID },
		{ "key", NTM_J_STR, 1, &key, 64 },
		{ "sealed_to", NTM_J_STR, 1, &to, 64 },
		{ "created", NTM_J_INT, 1, &created, 0 },
		{ "initiator", NTM_J_BOOL, 1, &init, 0 },
		{ "until", NTM_J_INT, 0, &until, 0 },
		{ "before", NTM_J_INT, 0, &before, 0 },
		{ "peer_until", NTM_J_INT, 0, &peer_until, 0 },
		{ "sent", NTM_J_ARR, 0, &sent, 0 },
		{ "lost", NTM_J_BOOL, 0, &lost, 0 },
	};
	struct ntm_jerr je;

	if (ntm_json_unpack(j, f, sizeof(f) / sizeof(f[0]), &je) != 0 ||
	    ntm_hex_decode_exact(o->key_id, NTM_XKEY_ID, kid) != NTM_XKEY_ID ||
	    ntm_b64_decode_exact(o->key, NTM_KEY_LEN, key) != NTM_KEY_LEN ||
	    ntm_b64_decode_exact(o->sealed_to, NTM_XPK_LEN, to) != NTM_XPK_LEN ||
	    sent_parse(sent, o->sent, &o->nsent) < 0)
		return -1;
	o->created = created;
	o->initiator = init;
	o->until = until;
	o->before = before;
	o->peer_until = peer_until;
	o->lost = lost;
	return 0;
}

int
xkey_load(const struct cli *cli, const char *peer, struct xkey *k)
{
	char *path = key_path(cli, peer), *text = NULL;
	const char *p = NULL, *kid = NULL, *key = NULL, *to = NULL;
	int64_t created = 0, version = 0, until = 0, now = now_unix();
	int init = 0, lost = 0, ret;
	json_t *sent = NULL, *old = NULL, *v;
	const struct ntm_jfield f[] = {
		{ "version", NTM_J_INT, 1, &version, 0 },
		{ "peer", NTM_J_STR, 1, &p, NTM_NAME_MAX },
		{ "key_id", NTM_J_STR, 1, &kid, 2 * NTM_XKEY_ID },
		{ "key", NTM_J_STR, 1, &key, 64 },
		{ "sealed_to", NTM_J_STR, 1, &to, 64 },
		{ "created", NTM_J_INT, 1, &created, 0 },
		{ "initiator", NTM_J_BOOL, 1, &init, 0 },
		{ "until", NTM_J_INT, 0, &until, 0 },
		{ "sent", NTM_J_ARR, 0, &sent, 0 },
		{ "lost", NTM_J_BOOL, 0, &lost, 0 },
		{ "previous", NTM_J_ARR, 0, &old, 0 },
	};
	struct ntm_jerr je;
	struct xkey_old o;
	json_t *j = NULL;
	size_t len, i;

	struct stat st;

	memset(k, 0, sizeof(*k));
	if (stat(path, &st) != 0) {
		free(path);
		return errno == ENOENT ? NTM_ERR_NOTFOUND : NTM_ERR_IO;
	}
	/* A key readable by others is refused (as ntm_key_load does). */
	if (st.st_mode & 077)
		ret = NTM_ERR_INVAL;
	else if ((ret = ntm_file_read(path, 65536, &text, &len)) == 0) {
		ret = NTM_ERR_INVAL;
		if ((j = ntm_json_parse(text, len, &je)) != NULL &&
		    ntm_json_unpack(j, f, sizeof(f) / sizeof(f[0]), &je) == 0 && version == 2 &&
		    strcmp(p, peer) == 0 &&
		    ntm_hex_decode_exact(k->key_id, NTM_XKEY_ID, kid) == NTM_XKEY_ID &&
		    ntm_b64_decode_exact(k->key, NTM_KEY_LEN, key) == NTM_KEY_LEN &&
		    ntm_b64_decode_exact(k->sealed_to, NTM_XPK_LEN, to) == NTM_XPK_LEN &&
		    sent_parse(sent, k->sent, &k->nsent) == 0 &&
		    json_array_size(old) <= X_KEY_OLD_MAX) {
			snprintf(k->peer, sizeof(k->peer), "%s", p);
			k->created = created;
			k->initiator = init;
			k->until = until;
			k->lost = lost;
			ret = 0;
			json_array_foreach(old, i, v) {
				memset(&o, 0, sizeof(o));
				if (old_parse(v, &o) < 0)
					ret = NTM_ERR_INVAL;
				else if (old_needed(&o, now))
					k->old[k->nold++] = o;
				ntm_wipe(&o, sizeof(o));
			}
		}
	}
	if (text) {
		ntm_wipe(text, len);
		free(text);
	}
	if (j) {
		json_t *w = json_object_get(j, "key");

		if (json_is_string(w))
			ntm_wipe((char *)json_string_value(w), json_string_length(w));
		json_array_foreach(old, i, v) {
			w = json_object_get(v, "key");
			if (json_is_string(w))
				ntm_wipe((char *)json_string_value(w), json_string_length(w));
		}
		json_decref(j);
	}
	if (ret < 0)
		ntm_wipe(k, sizeof(*k));
	free(path);
	return ret;
}

/* The JSON of one key (kid, key, sealed_to and the rest); wipe "key" after use. */
static json_t *
key_fields(const uint8_t *key_id, const uint8_t *key, const uint8_t *to, int64_t created,
    int initiator)
{
	char kid[2 * NTM_XKEY_ID + 1], kb[NTM_B64_LEN(NTM_KEY_LEN)], tb[NTM_B64_LEN(NTM_XPK_LEN)];
	json_t *j;

	if (ntm_hex_encode(kid, sizeof(kid), key_id, NTM_XKEY_ID) < 0 ||
	    ntm_b64_encode(kb, sizeof(kb), key, NTM_KEY_LEN) < 0 ||
	    ntm_b64_encode(tb, sizeof(tb), to, NTM_XPK_LEN) < 0)
		return NULL;
	j = json_pack("{s:s, s:s, s:s, s:I, s:b}", "key_id", kid, "key", kb, "sealed_to", tb,
	    "created", (json_int_t)created, "initiator", initiator);
	ntm_wipe(kb, sizeof(kb));
	return j;
}

static void
wipe_key_field(json_t *j)
{
	json_t *v = json_object_get(j, "key");

	if (json_is_string(v))
		ntm_wipe((char *)json_string_value(v), json_string_length(v));
}

int
xkey_save(const struct cli *cli, const struct xkey *k)
{
	char *dir, *path, *text;
	json_t *j, *old, *o;
	size_t i;
	int ret, n;

	if ((j = key_fields(k->key_id, k->key, k->sealed_to, k->created, k->initiator)) == NULL)
		return NTM_ERR_INVAL;
	dir = xasprintf("%s/keys", cli->state_dir);
	if ((ret = ntm_mkdirs(dir, 0700)) < 0) {
		wipe_key_field(j);
		json_decref(j);
		free(dir);
		return ret;
	}
	free(dir);
	json_object_set_new(j, "version", json_integer(2));
	json_object_set_new(j, "peer", json_string(k->peer));
	if (k->nsent || k->lost || k->until) {
		json_object_set_new(j, "until", json_integer(k->until));
		json_object_set_new(j, "sent", sent_json(k->sent, k->nsent));
		json_object_set_new(j, "lost", json_boolean(k->lost));
	}
	old = json_array();
	for (n = 0; n < k->nold; n++) {
		const struct xkey_old *p = &k->old[n];

		if ((o = key_fields(p->key_id, p->key, p->sealed_to, p->created,
		    p->initiator)) == NULL)
			continue;
		json_object_set_new(o, "until", json_integer(p->until));
		json_object_set_new(o, "before", json_integer(p->before));
		json_object_set_new(o, "peer_until", json_integer(p->peer_until));
		json_object_set_new(o, "sent", sent_json(p->sent, p->nsent));
		json_object_set_new(o, "lost", json_boolean(p->lost));
		json_array_append_new(old, o);
	}
	if (json_array_size(old))
		json_object_set(j, "previous", old);
	text = json_dumps(j, JSON_COMPACT);
	wipe_key_field(j);
	json_array_foreach(old, i, o)
		wipe_key_field(o);
	json_decref(old);
	json_decref(j);
	if (text == NULL)
		return NTM_ERR_NOMEM;
	path = key_path(cli, k->peer);
	ret = ntm_file_write(path, text, strlen(text), 0600);
	ntm_wipe(text, strlen(text));
	free(text);
	free(path);
	return ret;
}

void
xkey_replace(struct xkey *k, const struct xkey *prev, int64_t before)
{
	struct xkey_old *o;
	int i, n = 0;

	k->nold = 0;
	if (prev == NULL)
		return;
	if (memcmp(prev->key_id, k->key_id, NTM_XKEY_ID) == 0) {
		/* The same key again: keep what it tracked. */
		k->until = prev->until;
		memcpy(k->sent, prev->sent, sizeof(k->sent));
		k->nsent = prev->nsent;
		k->lost = prev->lost;
	} else {
		o = &k->old[n];
		memset(o, 0, sizeof(*o));
		memcpy(o->key_id, prev->key_id, NTM_XKEY_ID);
		memcpy(o->key, prev->key, NTM_KEY_LEN);
		memcpy(o->sealed_to, prev->sealed_to, NTM_XPK_LEN);
		o->created = prev->created;
		o->initiator = prev->initiator;
		o->until = prev->until;
		o->before = before;
		if (before == X_KEY_BEFORE_ANY)
			o->peer_until = now_unix() + X_KEY_PEER_KEEP_S;
		memcpy(o->sent, prev->sent, sizeof(o->sent));
		o->nsent = prev->nsent;
		o->lost = prev->lost;
		if (old_needed(o, now_unix()))
			n++;
		else
			ntm_wipe(o, sizeof(*o));
	}
	for (i = 0; i < prev->nold && n < X_KEY_OLD_MAX; i++)
		if (memcmp(prev->old[i].key_id, k->key_id, NTM_XKEY_ID) != 0)
			k->old[n++] = prev->old[i];
	k->nold = n;
}

static void
sent_add(struct xkey_sent *sent, int *n, int *lost, int64_t *until, const char *sha256,
    int64_t expires)
{
	int i;

	for (i = 0; i < *n; i++)
		if (strcmp(sent[i].sha256, sha256) == 0)
			return;
	if (*n == X_KEY_SENT_MAX) {
		memmove(sent, sent + 1, (X_KEY_SENT_MAX - 1) * sizeof(*sent));
		(*n)--;
		*lost = 1;
	}
	snprintf(sent[*n].sha256, sizeof(sent[*n].sha256), "%s", sha256);
	sent[(*n)++].expires = expires;
	if (expires > *until)
		*until = expires;
}

void
xkey_note_sent(struct xkey *k, const uint8_t key_id[NTM_XKEY_ID], const char *sha256,
    int64_t expires)
{
	if (memcmp(k->key_id, key_id, NTM_XKEY_ID) == 0)
		sent_add(k->sent, &k->nsent, &k->lost, &k->until, sha256, expires);
}

static int
sent_drop(struct xkey_sent *sent, int *n, const char *sha256)
{
	int i;

	for (i = 0; i < *n; i++)
		if (strcmp(sent[i].sha256, sha256) == 0) {
			memmove(sent + i, sent + i + 1, (size_t)(*n - i - 1) * sizeof(*sent));
			(*n)--;
			return 1;
		}
	return 0;
}

/* Drops the previous keys nobody needs any more. */
static void
old_prune(struct xkey *k)
{
	int64_t now = now_unix();
	int i, n = 0;

	for (i = 0; i < k->nold; i++) {
		if (old_needed(&k->old[i], now))
			k->old[n++] = k->old[i];
	}
	for (i = n; i < k->nold; i++)
		ntm_wipe(&k->old[i], sizeof(k->old[i]));
	k->nold = n;
}

int
xkey_note_delivered(struct xkey *k, const char *sha256)
{
	int i, changed = sent_drop(k->sent, &k->nsent, sha256);

	for (i = 0; i < k->nold; i++)
		changed |= sent_drop(k->old[i].sent, &k->old[i].nsent, sha256);
	old_prune(k);
	return changed;
}

int
xkey_entries_left(struct xkey *k, int64_t oldest)
{
	int i, changed = 0;

	for (i = 0; i < k->nold; i++)
		if (k->old[i].before > 0 && oldest >= k->old[i].before) {
			k->old[i].before = 0;
			changed = 1;
		}
	old_prune(k);
	return changed;
}

int
xkey_remove(const struct cli *cli, const char *peer)
{
	char *path = key_path(cli, peer);
	int ret = unlink(path) == 0 ? 0 : errno == ENOENT ? NTM_ERR_NOTFOUND : NTM_ERR_IO;

	free(path);
	return ret;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
xkey_each(const struct cli *cli, int (*fn)(const struct xkey *k, void *arg), void *arg)
{
	char *dir = xasprintf("%s/keys", cli->state_dir), *names[1024];
	struct dirent *de;
	struct xkey k;
	size_t n = 0, i, len;
	DIR *d;
	int ret = 0;

	if ((d = opendir(dir)) == NULL) {
		free(dir);
		return errno == ENOENT ? 0 : NTM_ERR_IO;
	}
	while ((de = readdir(d)) != NULL && n < sizeof(names) / sizeof(names[0])) {
		len = strlen(de->d_name);
		if (len > 4 && strcmp(de->d_name + len - 4, ".key") == 0)
			names[n++] = xasprintf("%.*s", (int)(len - 4), de->d_name);
	}
	closedir(d);
	free(dir);
	qsort(names, n, sizeof(names[0]), cmp_names);
	for (i = 0; i < n; i++) {
		if (ret == 0 && xkey_load(cli, names[i], &k) == 0) {
			ret = fn(&k, arg);
			ntm_wipe(&k, sizeof(k));
		}
		free(names[i]);
	}
	return ret;
}

json_t *
xkey_json(const struct xkey *k)
{
	char kid[2 * NTM_XKEY_ID + 1], fp[NTM_XFP_LEN];

	if (ntm_hex_encode(kid, sizeof(kid), k->key_id, NTM_XKEY_ID) < 0)
		return NULL;
	ntm_xkey_fingerprint(fp, k->key_id, k->key, k->sealed_to);
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:b}", "peer", k->peer, "key_id", kid,
	    "fingerprint", fp, "created", (json_int_t)k->created,
	    "made_by", k->initiator ? "us" : "peer", "current", 1);
}

json_t *
xkey_old_json(const struct xkey *k, int i)
{
	const struct xkey_old *o = &k->old[i];
	char kid[2 * NTM_XKEY_ID + 1], fp[NTM_XFP_LEN];

	if (ntm_hex_encode(kid, sizeof(kid), o->key_id, NTM_XKEY_ID) < 0)
		return NULL;
	ntm_xkey_fingerprint(fp, o->key_id, o->key, o->sealed_to);
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:i, s:b}", "peer", k->peer,
	    "key_id", kid, "fingerprint", fp, "created", (json_int_t)o->created,
	    "made_by", o->initiator ? "us" : "peer", "current", 0, "sent_waiting",
	    o->nsent + o->lost, "peer_waiting", o->before > 0);
}

/* ---- progress on a terminal -------------------------------------------------- */

#define X_PROGRESS_MIN		(1024 * 1024)	/* smaller phases show none on their own */
#define X_PROGRESS_EVERY_MS	200

void
x_progress(struct xctx *x, const char *what, uint64_t done, uint64_t total)
{
	int64_t now = mono_ms(), ms;
	double rate, left;
	char eta[32] = "";

	if (x->progress == X_PROGRESS_OFF || (x->progress == X_PROGRESS_AUTO &&
	    (total < X_PROGRESS_MIN || !isatty(STDERR_FILENO))))
		return;
	if (x->prog_what == NULL || strcmp(x->prog_what, what) != 0) {
		x->prog_what = what;
		x->prog_start = now;
		x->prog_last = 0;
	}
	if (done < total && now - x->prog_last < X_PROGRESS_EVERY_MS)
		return;
	x->prog_last = now;
	ms = now - x->prog_start;
	rate = ms > 0 ? (double)done * 1000.0 / (double)ms : 0;
	if (done >= total)
		snprintf(eta, sizeof(eta), "in %lld.%01llds", (long long)(ms / 1000),
		    (long long)(ms % 1000 / 100));
	else if (rate > 0) {
		left = (double)(total - done) / rate;
		snprintf(eta, sizeof(eta), "%d:%02d left", (int)left / 60, (int)left % 60);
	} else
		snprintf(eta, sizeof(eta), "--:-- left");
	fprintf(stderr, "\rntm: %s: %s %.1f / %.1f MiB (%d%%), %.1f MiB/s, %s%s%s",
	    x->cmd, what, (double)done / 1048576, (double)total / 1048576,
	    total ? (int)(done * 100 / total) : 100, rate / 1048576, eta,
	    isatty(STDERR_FILENO) ? "\033[K" : "", done >= total ? "\n" : "");
	fflush(stderr);
}

/* ---- raw transfers with libcurl ---------------------------------------------- */

/* A bounded response body (JSON answers and error bodies). */
struct rbuf {
	char	data[65536];
	size_t	len;
};

static size_t
rbuf_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct rbuf *b = arg;
	size_t n = size * nmemb, take = sizeof(b->data) - 1 - b->len;

	if (n < take)
		take = n;
	memcpy(b->data + b->len, p, take);
	b->len += take;
	b->data[b->len] = '\0';
	return n;
}

static CURL *
easy_new(struct xctx *x, const char *url, struct curl_slist **hdrs)
{
	const char *bearer = x_bearer(x, url);
	char *auth;

	if (easy == NULL && (easy = curl_easy_init()) == NULL)
		return NULL;
	curl_easy_reset(easy);
	*hdrs = NULL;
	if (bearer) {
		auth = xasprintf("Authorization: Bearer %s", bearer);
		*hdrs = curl_slist_append(NULL, auth);
		ntm_wipe(auth, strlen(auth));
		free(auth);
	}
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, *hdrs);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "ntm/" NTM_VERSION);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, x->timeout_ms);
	/* Large objects take long: give up only when the transfer stalls. */
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, (long)(x->timeout_ms / 1000));
	if (x->s.ca_file)
		curl_easy_setopt(easy, CURLOPT_CAINFO, x->s.ca_file);
	return easy;
}

/* The handle stays for the next request; only the headers go. */
static void
easy_free(CURL *c, struct curl_slist *hdrs)
{
	if (c)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
}

/* Maps an HTTP error answer in b to an exit code after one error line. */
static int
http_fail(struct xctx *x, const char *base, CURLcode rc, long status, const struct rbuf *b,
    const char *why)
{
	struct ntm_jerr je;
	json_t *j = NULL;
	int ret;

	if (rc != CURLE_OK)
		return x_fail(x, base, NTM_ERR_CONNECT, 0, NULL, why ? why :
		    curl_easy_strerror(rc));
	if (b->len)
		j = ntm_json_parse(b->data, b->len, &je);
	ret = x_fail(x, base, 0, status, j, NULL);
	if (status == 401)
		ret = EXIT_NOSESSION;
	json_decref(j);
	return ret;
}

/* PUT one chunk: 0 with *offset the CS's new total, or an exit code. The
 * last one carries sha256 (or NULL): the CS commits after writing it and
 * answers 201 with the commit's answer into *commit (new). */
static int
put_chunk(struct xctx *x, const char *id, uint64_t at, const uint8_t *p, size_t n,
    const char *sha256, uint64_t *offset, json_t **commit, int *resumable)
{
	char url[NTM_PUSH_URL_MAX + 128];
	struct curl_slist *h;
	struct rbuf b = { .len = 0 };
	long status = 0;
	CURLcode rc;
	CURL *c;
	json_t *j = NULL;
	struct ntm_m_cs_upload_state st;
	struct ntm_jerr je;
	char *ab = NULL, why[256] = "";
	size_t alen = 0;
	int ret, e;

	snprintf(url, sizeof(url), "%s/v1/cs/upload?id=%s&offset=%llu%s%s", x->cs, id,
	    (unsigned long long)at, sha256 ? "&sha256=" : "", sha256 ? sha256 : "");
	log_debug("PUT %s (%zu bytes)", url, n);
	if ((e = x_agent(x, "PUT", url, "application/octet-stream", p, n, &status, &ab, &alen,
	    why, sizeof(why))) != 1) {
		/* The agent's answer, or why it got none, as libcurl's would be. */
		if (e != 0)
			rc = CURLE_COULDNT_CONNECT;
		else {
			rc = CURLE_OK;
			b.len = alen < sizeof(b.data) - 1 ? alen : sizeof(b.data) - 1;
			memcpy(b.data, ab, b.len);
			b.data[b.len] = '\0';
			free(ab);
		}
		c = NULL;
		h = NULL;
		goto answered;
	}
	if ((c = easy_new(x, url, &h)) == NULL)
		return EXIT_FAIL;
	h = curl_slist_append(h, "Content-Type: application/octet-stream");
	/* The body goes at once, not after a 100 Continue (libcurl waits for
	 * one above 1 MiB): a round trip less per chunk. A CS that refuses
	 * the chunk from its head answers at once and closes the connection,
	 * and libcurl stops sending then. */
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, p);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rbuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	easy_count(c, "PUT", url);
answered:
	if (rc == CURLE_OK && status == 201 && sha256 &&
	    (j = ntm_json_parse(b.data, b.len, &je)) != NULL &&
	    json_is_string(json_object_get(j, "sha256"))) {
		*offset = at + n;
		*commit = j;
		j = NULL;
		ret = 0;
	} else if (rc == CURLE_OK && status == 200 &&
	    (j = ntm_json_parse(b.data, b.len, &je)) != NULL &&
	    ntm_msg_cs_upload_state_decode(j, &st, NULL) == 0) {
		*offset = (uint64_t)st.offset;
		ret = 0;
	} else {
		/* A lost connection, a server error or a wrong offset: ask the CS
		 * where it is. Anything else (a refused commit ...) is final. */
		json_decref(j);
		j = b.len ? ntm_json_parse(b.data, b.len, &je) : NULL;
		*resumable = rc != CURLE_OK || status >= 500 ||
		    (status == 409 && ntm_error_is(j, "bad_offset"));
		ret = http_fail(x, x->cs, rc, status, &b, why[0] ? why : NULL);
	}
	json_decref(j);
	easy_free(c, h);
	return ret;
}

/* The CS's offset for upload id: 0 or an exit code. */
/* A failed chunk is resumed from the CS's offset after 250 ms, 500 ms ...
 * up to 8 s between tries, 10 failures in a row at most (about a minute):
 * a CS that restarts, a reset connection or a timeout do not end a send. */
#define X_RESUME_TRIES		10
#define X_RESUME_FIRST_MS	250
#define X_RESUME_MAX_MS		8000

static int
upload_offset(struct xctx *x, const char *id, uint64_t *offset)
{
	char path[128];
	struct ntm_m_cs_upload_state st;
	struct ntm_jerr jerr;
	json_t *r;
	int ret;

	snprintf(path, sizeof(path), "/v1/cs/upload?id=%s", id);
	if ((ret = x_call(x, x->cs, "GET", path, NULL, 200, &r)) != 0)
		return ret;
	if (ntm_msg_cs_upload_state_decode(r, &st, &jerr) < 0) {
		cli_err(x->cmd, "bad answer from %s: %s", x->cs, jerr.message);
		json_decref(r);
		return EXIT_FAIL;
	}
	*offset = (uint64_t)st.offset;
	json_decref(r);
	return 0;
}

/* After a failed chunk: waits (X_RESUME_FIRST_MS, doubling up to
 * X_RESUME_MAX_MS) and asks the CS where upload id is, until it answers or
 * X_RESUME_TRIES failures in a row (*tries counts them). 0 with *offset. */
static int
resume_wait(struct xctx *x, const char *id, int *tries, uint64_t *offset)
{
	int ms, ret = EXIT_FAIL;

	while (*tries < X_RESUME_TRIES) {
		ms = X_RESUME_FIRST_MS << (*tries < 8 ? *tries : 8);
		if (ms > X_RESUME_MAX_MS)
			ms = X_RESUME_MAX_MS;
		(*tries)++;
		log_info("upload %s: the CS failed; asking again in %d ms (%d of %d)", id, ms,
		    *tries, X_RESUME_TRIES);
		usleep((useconds_t)ms * 1000);
		if ((ret = upload_offset(x, id, offset)) == 0)
			return 0;
	}
	return ret;
}

/* Reads the sealed copy in fd (x_cs_upload). */
struct fd_src {
	int		 fd;
	const char	*sha256;
	uint64_t	 at;
};

static ssize_t
fd_read(void *arg, uint8_t *buf, size_t cap)
{
	struct fd_src *f = arg;
	ssize_t n = pread(f->fd, buf, cap, (off_t)f->at);

	if (n != (ssize_t)cap) {
		if (n >= 0)
			errno = EIO;
		return -1;
	}
	f->at += (uint64_t)n;
	return n;
}

static int
fd_seek(void *arg, uint64_t at)
{
	((struct fd_src *)arg)->at = at;
	return 0;
}

static const char *
fd_sha(void *arg)
{
	return ((struct fd_src *)arg)->sha256;
}

/* A quiet call to our CS: 0 with *out (new) on want, NTM_ERR_NOTFOUND on
 * 404, or an exit code (the failure logged and in x->last_err). */
static int
cs_quiet(struct xctx *x, const char *method, const char *path, long want, json_t **out)
{
	char url[NTM_PUSH_URL_MAX + 256], errmsg[256] = "";
	json_t *resp = NULL;
	long status = 0;
	int err, ret, quiet = x->quiet;

	*out = NULL;
	snprintf(url, sizeof(url), "%s%s", x->cs, path);
	log_info("%s %s", method, url);
	err = json_call(x, method, url, NULL, &status, &resp, errmsg, sizeof(errmsg));
	if (err == 0 && status == want) {
		*out = resp;
		return 0;
	}
	if (err == 0 && status == 404) {
		json_decref(resp);
		return NTM_ERR_NOTFOUND;
	}
	x->quiet = 1;
	ret = x_fail(x, x->cs, err, status, resp, errmsg);
	x->quiet = quiet;
	json_decref(resp);
	return ret;
}

int
x_cs_upload_state(struct xctx *x, const char *id, uint64_t *size, uint64_t *offset)
{
	char path[128];
	struct ntm_m_cs_upload_state st;
	json_t *r;
	int ret;

	snprintf(path, sizeof(path), "/v1/cs/upload?id=%s", id);
	if ((ret = cs_quiet(x, "GET", path, 200, &r)) != 0)
		return ret;
	ret = ntm_msg_cs_upload_state_decode(r, &st, NULL) < 0 || st.size < 0 ||
	    st.offset < 0 || st.offset > st.size ? EXIT_FAIL : 0;
	if (ret == 0) {
		*size = (uint64_t)st.size;
		*offset = (uint64_t)st.offset;
	} else
		snprintf(x->last_err, sizeof(x->last_err), "bad answer from %s", x->cs);
	json_decref(r);
	return ret;
}

void
x_cs_upload_drop(struct xctx *x, const char *id)
{
	char path[128];
	json_t *r;

	snprintf(path, sizeof(path), "/v1/cs/upload?id=%s", id);
	if (cs_quiet(x, "DELETE", path, 200, &r) == 0)
		log_info("upload %s: given up", id);
	json_decref(r);
}

int
x_cs_object_meta(struct xctx *x, const char *sha256, json_t **meta)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/cs/object/meta?sha256=%s", sha256);
	return cs_quiet(x, "GET", path, 200, meta);
}

int
x_cs_upload(struct xctx *x, int fd, uint64_t size, const char *sha256,
    const struct ntm_m_cs_upload *create, json_t **commit, struct ntm_m_cs_object *obj)
{
	struct fd_src f = { fd, sha256, 0 };
	struct x_src src = { .read = fd_read, .seek = fd_seek, .sha256 = fd_sha, .arg = &f };

	return x_cs_upload_src(x, &src, size, create, commit, obj);
}

/* *commit (the CS's answer) read into obj: 0, or an exit code after one
 * error line (*commit is then released). */
static int
commit_decode(struct xctx *x, json_t **commit, struct ntm_m_cs_object *obj)
{
	struct ntm_m_cs_object tmp;
	struct ntm_jerr jerr;

	if (ntm_msg_cs_object_decode(*commit, obj ? obj : &tmp, &jerr) == 0)
		return 0;
	cli_err(x->cmd, "bad answer from %s: %s", x->cs, jerr.message);
	json_decref(*commit);
	*commit = NULL;
	return EXIT_FAIL;
}

int
x_cs_upload_src(struct xctx *x, const struct x_src *src, uint64_t size,
    const struct ntm_m_cs_upload *create, json_t **commit, struct ntm_m_cs_object *obj)
{
	struct ntm_m_cs_upload cm = *create;
	struct ntm_m_cs_upload_state st;
	struct ntm_m_cs_commit mc;
	struct ntm_jerr jerr;
	struct xpipe *ahead = NULL;
	int (*sk)(void *, uint64_t) = src->seek;
	void *ra = src->arg;
	uint8_t *buf = NULL;
	const uint8_t *data = NULL;	/* the chunk being sent: in buf, or a slot */
	char id[64];
	const char *sha256;
	json_t *r = NULL, *body = NULL;
	uint64_t off = 0, got, pbase = 0;	/* where ra's offsets start */
	ssize_t n;
	size_t want, skip;
	int ret, retried = 0, resumable = 0, have = 0;

	*commit = NULL;
	if ((buf = malloc(X_CHUNK)) == NULL) {
		cli_err(x->cmd, "out of memory");
		return EXIT_FAIL;
	}
	if (src->upload) {
		/* What the CS holds of it already is made again, not sent. */
		snprintf(id, sizeof(id), "%s", src->upload);
		for (off = 0; off < src->at; off += want) {
			want = src->at - off < X_CHUNK ? (size_t)(src->at - off) : X_CHUNK;
			errno = 0;
			if (src->read(src->arg, buf, want) != (ssize_t)want) {
				if (errno != 0)
					cli_err(x->cmd, "cannot read the input: %s",
					    strerror(errno));
				free(buf);
				return EXIT_FAIL;
			}
		}
		log_info("upload %s: going on at %llu, where an earlier send left it", id,
		    (unsigned long long)off);
		x_progress(x, "upload", off, size);
		goto chunks;
	}
	cm.size = (int64_t)size;
	if ((body = x_msg(x, &ntm_msg_cs_upload, &cm)) == NULL) {
		free(buf);
		return EXIT_FAIL;
	}
	x->cs_probe = 1;
	ret = x_call(x, x->cs, "POST", "/v1/cs/uploads", body, 201, &r);
	x->cs_probe = 0;
	if (ret == EXIT_UNREACH && x->cs_cached) {
		x_forget_cs(x);
		if ((ret = x_our_cs(x)) == 0)
			ret = x_call(x, x->cs, "POST", "/v1/cs/uploads", body, 201, &r);
	}
	json_decref(body);
	body = NULL;
	if (ret != 0) {
		free(buf);
		return ret;
	}
	if (ntm_msg_cs_upload_state_decode(r, &st, &jerr) < 0) {
		cli_err(x->cmd, "bad answer from %s: %s", x->cs, jerr.message);
		json_decref(r);
		free(buf);
		return EXIT_FAIL;
	}
	snprintf(id, sizeof(id), "%s", st.upload);
	json_decref(r);
	if (src->created)
		src->created(src->arg, id);
chunks:
	/* More than a chunk to go: the source (sealing, reading) runs ahead in
	 * a thread of its own, a chunk a slot, while this one sends each from
	 * its slot (xpipe.c). */
	if (size - off > X_CHUNK &&
	    (ahead = xpipe_ahead(src->read, src->arg, size - off, X_CHUNK)) != NULL) {
		ra = ahead;
		sk = xpipe_seek;
		pbase = off;
		free(buf);		/* the slots hold the chunks */
		buf = NULL;
	}
	while (off < size) {
		/* data holds [off, off + want) when have is set (a resumed chunk). */
		if (!have && ahead) {
			errno = 0;
			if ((n = xpipe_take(ahead, &data)) <= 0 ||
			    (uint64_t)n > size - off) {
				if (n > 0 || errno != 0)	/* else the caller says why */
					cli_err(x->cmd, "cannot read the input: %s", n < 0 ?
					    strerror(errno) : "it changed while it was read");
				ret = EXIT_FAIL;
				break;
			}
			want = (size_t)n;
		} else if (!have) {
			want = size - off < X_CHUNK ? (size_t)(size - off) : X_CHUNK;
			errno = 0;
			if ((n = src->read(src->arg, buf, want)) != (ssize_t)want) {
				if (n >= 0 || errno != 0)	/* else the caller says why */
					cli_err(x->cmd, "cannot read the input: %s", n < 0 ?
					    strerror(errno) : "it changed while it was read");
				ret = EXIT_FAIL;
				break;
			}
			data = buf;
		}
		have = 0;
		/* The last chunk carries the hash: the CS commits with it. */
		sha256 = off + want == size ? src->sha256(src->arg) : NULL;
		x->quiet = 1;
		x->last_err[0] = '\0';
		ret = put_chunk(x, id, off, data, want, sha256, &got, commit, &resumable);
		if (ret != 0) {
			/* The CS restarted, the connection broke, a timeout: ask it
			 * where the upload is and go on from there, waiting longer
			 * each time (X_RESUME_TRIES in a row at most). */
			if (!resumable || resume_wait(x, id, &retried, &got) != 0) {
				x->quiet = 0;
				if (x->last_err[0])
					cli_err(x->cmd, "%s", x->last_err);
				break;
			}
			log_info("upload %s: resuming at %llu", id, (unsigned long long)got);
			if (got >= off && got < off + want) {
				/* The rest of this chunk, from memory. */
				skip = (size_t)(got - off);
				data += skip;
				want -= skip;
				have = 1;
			} else if (ahead)
				xpipe_release(ahead);	/* sk below skips from its end */
			if (have)
				;
			else if (sk == NULL || got < pbase || sk(ra, got - pbase) < 0) {
				cli_err(x->cmd, "upload %s: the CS holds %llu bytes; cannot go "
				    "on from there", id, (unsigned long long)got);
				ret = EXIT_FAIL;
				break;
			}
		}
		x->quiet = 0;
		if (ret == 0) {
			retried = 0;		/* a chunk went through */
			if (ahead)
				xpipe_release(ahead);
		}
		off = got;
		x_progress(x, "upload", off, size);
	}
	xpipe_end(ahead);
	free(buf);
	if (off < size)
		return ret ? ret : EXIT_FAIL;
	if (*commit)
		return commit_decode(x, commit, obj);
	/* Empty, resumed after a failed last chunk, or a CS that commits apart. */
	mc = (struct ntm_m_cs_commit){ .version = 1, .upload = id, .size = (int64_t)size,
	    .sha256 = src->sha256(src->arg) };
	if ((body = x_msg(x, &ntm_msg_cs_commit, &mc)) == NULL)
		return EXIT_FAIL;
	ret = x_call(x, x->cs, "POST", "/v1/cs/upload/commit", body, 201, commit);
	json_decref(body);
	return ret != 0 ? ret : commit_decode(x, commit, obj);
}

struct dl {
	struct xctx	*x;
	uint64_t	 total, done;
	CURL		*c;
	x_sink_fn	*fn;
	void		*arg;
	int		 checked, ok, stopped;
	struct rbuf	 err;
};

static size_t
dl_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct dl *d = arg;
	size_t n = size * nmemb;
	long status = 0;

	if (!d->checked) {
		curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &status);
		d->ok = status == 200;
		d->checked = 1;
	}
	if (!d->ok)
		return rbuf_write(p, size, nmemb, &d->err);
	if (d->fn((const uint8_t *)p, n, d->arg) < 0) {
		d->stopped = 1;
		return 0;	/* aborts the transfer */
	}
	if (d->total)
		x_progress(d->x, "download", d->done + n, d->total);
	d->done += n;
	return n;
}

int
x_cs_download(struct xctx *x, const char *base, const char *sha256, uint64_t size,
    x_sink_fn *fn, void *arg)
{
	char url[NTM_PUSH_URL_MAX + 128];
	struct curl_slist *h;
	struct dl d;
	long status = 0;
	CURLcode rc;
	int ret;

	memset(&d, 0, sizeof(d));
	d.x = x;
	d.total = size;
	d.fn = fn;
	d.arg = arg;
	snprintf(url, sizeof(url), "%s/v1/cs/object?sha256=%s", base, sha256);
	log_info("GET %s", url);
	/* A small object comes whole through the agent. */
	if (size > 0 && size <= AGENT_HTTPS_ANSWER_MAX) {
		char why[256] = "", *body = NULL;
		size_t len = 0;
		int e = x_agent(x, "GET", url, NULL, NULL, 0, &status, &body, &len, why,
		    sizeof(why));

		if (e != 1) {
			if (e != 0)
				ret = http_fail(x, base, CURLE_COULDNT_CONNECT, 0, &d.err, why);
			else if (status != 200) {
				rbuf_write(body, 1, len, &d.err);
				ret = http_fail(x, base, CURLE_OK, status, &d.err, NULL);
			} else if (fn((const uint8_t *)body, len, arg) < 0)
				ret = EXIT_VERIFY;
			else {
				x_progress(x, "download", len, size);
				ret = 0;
			}
			free(body);
			return ret;
		}
	}
	if ((d.c = easy_new(x, url, &h)) == NULL)
		return EXIT_FAIL;
	curl_easy_setopt(d.c, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(d.c, CURLOPT_WRITEDATA, &d);
	rc = curl_easy_perform(d.c);
	curl_easy_getinfo(d.c, CURLINFO_RESPONSE_CODE, &status);
	easy_count(d.c, "GET", url);
	if (d.stopped)
		ret = EXIT_VERIFY;
	else if (rc == CURLE_OK && status == 200)
		ret = 0;
	else
		ret = http_fail(x, base, rc, status, &d.err, NULL);
	easy_free(d.c, h);
	return ret;
}
