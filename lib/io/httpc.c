/*
 * httpc.c - HTTPS client glue: libcurl's multi interface driven by a libevent
 * loop (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION).
 *
 * HTTPS only, peer and host verification always on, response bodies capped.
 * Callbacks never run from inside ntm_httpc_request(): a request that cannot
 * be started fails synchronously (and its callback is never called); one that
 * starts always ends in exactly one callback, unless ntm_httpc_free() cancels
 * it first.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/x509_vfy.h>

#include "ntm.h"

#define HTTPC_RESP_MAX		(1024 * 1024)
#define HTTPC_CONNECT_MAX_MS	5000L
#define HTTPC_TIMEOUT_DEF_MS	30000L
#define HTTPC_PINS_MAX		64	/* ntm_httpc_resolve entries kept */

struct ntm_httpc_req {
	struct ntm_httpc	*c;
	struct ntm_httpc_req		*prev, *next;
	CURL			*easy;
	struct curl_slist	*hdrs;
	struct curl_slist	*resolve;	/* copy of the client's pins */
	struct curl_slist	*connect_to;	/* copy of its connect_to */
	char			*reqbody;	/* a copy, wiped when freed */
	size_t			 reqlen;
	char			*resp;
	size_t			 len, cap;
	int			 toobig;
	ntm_httpc_cb		*cb;
	void			*arg;
	char			 errbuf[CURL_ERROR_SIZE];
	/* A signed request: what its answer's signature covers. */
	char			*method, *path;
	char			 nonce[NTM_NONCE_B64];
	struct ntm_cert		 peer;		/* the answer's signer, once verified */
};

/* One per socket libcurl asks us to watch. */
struct sock {
	struct ntm_httpc	*c;
	struct sock		*prev, *next;
	struct event		*ev;
	curl_socket_t		 fd;
};

struct ntm_httpc {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
	char			*cafile;
	struct ntm_httpc_req		*xfers;
	struct sock		*socks;
	int			 busy;		/* inside user callbacks */
	int			 doomed;	/* ntm_httpc_free called while busy */
	int			 has_id;
	int			 no_reuse;	/* every request on a new connection */
	char			*pins[HTTPC_PINS_MAX];	/* "host:port:addr" */
	size_t			 npins;
	char			*connect_to;	/* "host:port:addr:port", or NULL */
	uint8_t			 sk[NTM_SIGN_SK];
	char			 cert_b64[NTM_B64_LEN(NTM_CERT_MAX)];
	uint8_t			 as_pk[NTM_SIGN_PK];	/* answers' certificates */
	int			 has_as_pk;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void
httpc_global_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void httpc_destroy(struct ntm_httpc *c);

/* ---- libcurl <-> libevent ------------------------------------------------ */

static void
xfer_free(struct ntm_httpc_req *x)
{
	if (x == NULL)
		return;
	if (x->c) {
		if (x->prev)
			x->prev->next = x->next;
		else
			x->c->xfers = x->next;
		if (x->next)
			x->next->prev = x->prev;
	}
	if (x->easy) {
		if (x->c)
			curl_multi_remove_handle(x->c->multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->hdrs);
	curl_slist_free_all(x->resolve);
	curl_slist_free_all(x->connect_to);
	if (x->reqbody) {
		ntm_wipe(x->reqbody, x->reqlen);
		free(x->reqbody);
	}
	free(x->resp);
	free(x->method);
	free(x->path);
	free(x);
}

static int
map_curl_err(CURLcode rc, int toobig)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		return toobig || rc == CURLE_FILESIZE_EXCEEDED ? NTM_ERR_TOOBIG : NTM_ERR_IO;
	case CURLE_OPERATION_TIMEDOUT:
		return NTM_ERR_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return NTM_ERR_TLS;
	case CURLE_OUT_OF_MEMORY:
		return NTM_ERR_NOMEM;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	default:
		/* resets, empty replies, refused connections: the peer could
		 * not be talked to */
		return NTM_ERR_CONNECT;
	}
}

/*
 * A failed verification whose fix is the CA bundle (--ca): the chain ends
 * at a CA we were not told to trust. Other failures (a name the certificate
 * does not carry, an expired certificate) stay NTM_ERR_TLS.
 */
static int
untrusted_issuer(CURL *easy, CURLcode rc)
{
	long vr = 0;

	if (rc != CURLE_PEER_FAILED_VERIFICATION && rc != CURLE_SSL_ISSUER_ERROR)
		return 0;
	if (curl_easy_getinfo(easy, CURLINFO_SSL_VERIFYRESULT, &vr) != CURLE_OK)
		return 0;
	switch (vr) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
		return 1;
	default:
		return 0;
	}
}

/* curl's "SSL certificate problem: REASON" as REASON. */
static const char *
verify_reason(const char *errbuf, CURLcode rc)
{
	static const char prefix[] = "SSL certificate problem: ";

	if (errbuf[0] == '\0')
		return curl_easy_strerror(rc);
	if (strncmp(errbuf, prefix, sizeof(prefix) - 1) == 0)
		return errbuf + sizeof(prefix) - 1;
	return errbuf;
}

int
ntm_http_curl_err(int curlcode)
{
	return map_curl_err((CURLcode)curlcode, 0);
}

/*
 * The answer to a signed request: who signed it (docs/protocol.md §2.2).
 * 0 with x->peer set, or an error with why.
 */
static int
answer_signer(struct ntm_httpc_req *x, long status, const char *body, size_t len,
    char *why, size_t wlen)
{
	struct curl_header *h = NULL;
	struct ntm_cert cert;
	char sig[NTM_SIG_B64 + 1];
	int e;

	if (!x->c->has_as_pk) {
		snprintf(why, wlen, "no AS key to check it with");
		return NTM_ERR_STATE;
	}
	/* libcurl reuses the struct it returns: each value is used at once. */
	if (curl_easy_header(x->easy, NTM_HDR_SIG, 0, CURLH_HEADER, -1, &h) != CURLHE_OK ||
	    strlen(h->value) >= sizeof(sig)) {
		snprintf(why, wlen, "the answer is not signed");
		return NTM_ERR_UNAUTH;
	}
	snprintf(sig, sizeof(sig), "%s", h->value);
	if (curl_easy_header(x->easy, NTM_HDR_CERT, 0, CURLH_HEADER, -1, &h) != CURLHE_OK) {
		snprintf(why, wlen, "the answer is not signed");
		return NTM_ERR_UNAUTH;
	}
	if (ntm_cert_from_b64(&cert, h->value) < 0) {
		snprintf(why, wlen, "the answer's certificate does not decode");
		return NTM_ERR_UNAUTH;
	}
	if ((e = ntm_cert_verify(&cert, x->c->as_pk, (int64_t)time(NULL))) != 0) {
		snprintf(why, wlen, "the answer's certificate ('%s') %s", cert.name,
		    e == NTM_ERR_EXPIRED ? "is outside its validity period" :
		    "is not signed by the account server");
		return e;
	}
	if (ntm_ans_verify(sig, cert.pk, x->method, x->path, status, x->nonce, body,
	    len) != 0) {
		snprintf(why, wlen, "the answer's signature ('%s') does not verify",
		    cert.name);
		return NTM_ERR_CRYPTO;
	}
	x->peer = cert;
	return 0;
}

static void
xfer_done(struct ntm_httpc_req *x, CURLcode rc)
{
	struct ntm_httpc *c = x->c;
	struct ntm_http_result res;
	json_t *json = NULL;

	memset(&res, 0, sizeof(res));
	res.err = untrusted_issuer(x->easy, rc) ? NTM_ERR_UNTRUSTED :
	    map_curl_err(rc, x->toobig);
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &res.status);
	if (res.err == 0) {
		res.body = x->resp ? x->resp : "";
		res.len = x->len;
		if (x->len > 0) {
			json = json_loadb(res.body, res.len, JSON_REJECT_DUPLICATES, NULL);
			if (json && !json_is_object(json)) {
				json_decref(json);
				json = NULL;
			}
		}
		res.json = json;
		if (x->method != NULL) {
			res.peer_err = answer_signer(x, res.status, res.body, res.len,
			    res.peer_why, sizeof(res.peer_why));
			if (res.peer_err == 0)
				res.peer = &x->peer;
		}
	} else if (res.err == NTM_ERR_TOOBIG) {
		snprintf(res.errmsg, sizeof(res.errmsg),
		    "response body over the limit of %d bytes", HTTPC_RESP_MAX);
	} else if (res.err == NTM_ERR_UNTRUSTED) {
		snprintf(res.errmsg, sizeof(res.errmsg), "%s", verify_reason(x->errbuf, rc));
	} else {
		snprintf(res.errmsg, sizeof(res.errmsg), "%s",
		    x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
	}
	c->busy++;
	x->cb(&res, x->arg);
	c->busy--;
	json_decref(json);
	xfer_free(x);
}

static void
check_done(struct ntm_httpc *c)
{
	CURLMsg *msg;
	int left;

	c->busy++;
	while (!c->doomed && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		struct ntm_httpc_req *x = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x)
			xfer_done(x, msg->data.result);
	}
	c->busy--;
	if (c->doomed && c->busy == 0)
		httpc_destroy(c);
}

static void
httpc_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ntm_httpc *c = arg;
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	check_done(c);
}

static void
httpc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ntm_httpc *c = arg;
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

static int
curl_timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	struct ntm_httpc *c = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

static void
sock_free(struct sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		s->c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	event_free(s->ev);
	free(s);
}

static int
curl_socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct ntm_httpc *c = userp;
	struct sock *s = socketp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(c->multi, fd, NULL);
			sock_free(s);
		}
		return 0;
	}
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->c = c;
		s->fd = fd;
		if ((s->ev = event_new(c->base, fd, kind, httpc_event_cb, c)) == NULL) {
			free(s);
			return -1;
		}
		if ((s->next = c->socks) != NULL)
			s->next->prev = s;
		c->socks = s;
		curl_multi_assign(c->multi, fd, s);
	} else {
		event_del(s->ev);
		event_assign(s->ev, c->base, fd, kind, httpc_event_cb, c);
	}
	return event_add(s->ev, NULL) == 0 ? 0 : -1;
}

static size_t
curl_write_fn(char *p, size_t size, size_t nmemb, void *arg)
{
	struct ntm_httpc_req *x = arg;
	size_t n = size * nmemb;

	if (n > HTTPC_RESP_MAX - x->len) {
		x->toobig = 1;
		return 0;	/* aborts with CURLE_WRITE_ERROR */
	}
	if (x->len + n + 1 > x->cap) {
		size_t cap = x->cap ? x->cap : 4096;
		char *q;

		while (cap < x->len + n + 1)
			cap *= 2;
		if ((q = realloc(x->resp, cap)) == NULL)
			return 0;
		x->resp = q;
		x->cap = cap;
	}
	memcpy(x->resp + x->len, p, n);
	x->len += n;
	x->resp[x->len] = '\0';
	return n;
}

/* ---- public -------------------------------------------------------------- */

struct ntm_httpc *
ntm_httpc_new(struct event_base *base, const char *cafile)
{
	struct ntm_httpc *c;

	pthread_once(&curl_once, httpc_global_init);
	if (curl_init_rc != CURLE_OK || base == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->base = base;
	if ((cafile && (c->cafile = strdup(cafile)) == NULL) ||
	    (c->timer = evtimer_new(base, httpc_timer_cb, c)) == NULL ||
	    (c->multi = curl_multi_init()) == NULL) {
		ntm_httpc_free(c);
		return NULL;
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_fn);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_fn);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	return c;
}

static void
httpc_destroy(struct ntm_httpc *c)
{
	while (c->xfers)
		xfer_free(c->xfers);
	if (c->multi)
		curl_multi_cleanup(c->multi);	/* may call curl_socket_fn */
	while (c->socks)
		sock_free(c->socks);
	if (c->timer)
		event_free(c->timer);
	free(c->cafile);
	for (size_t i = 0; i < c->npins; i++)
		free(c->pins[i]);
	free(c->connect_to);
	ntm_wipe(c, sizeof(*c));
	free(c);
}

void
ntm_httpc_free(struct ntm_httpc *c)
{
	if (c == NULL)
		return;
	if (c->busy) {
		/* Called from a result callback: finish when it returns. */
		c->doomed = 1;
		return;
	}
	httpc_destroy(c);
}

int
ntm_httpc_set_identity(struct ntm_httpc *c, const uint8_t sk[NTM_SIGN_SK],
    const struct ntm_cert *cert)
{
	if (c == NULL || sk == NULL || cert == NULL)
		return NTM_ERR_INVAL;
	if (ntm_cert_to_b64(cert, c->cert_b64, sizeof(c->cert_b64)) < 0)
		return NTM_ERR_INVAL;
	memcpy(c->sk, sk, NTM_SIGN_SK);
	c->has_id = 1;
	return 0;
}

int
ntm_httpc_set_trust(struct ntm_httpc *c, const uint8_t as_pk[NTM_SIGN_PK])
{
	if (c == NULL || as_pk == NULL)
		return NTM_ERR_INVAL;
	memcpy(c->as_pk, as_pk, NTM_SIGN_PK);
	c->has_as_pk = 1;
	return 0;
}

int
ntm_httpc_resolve(struct ntm_httpc *c, const char *host, uint16_t port, const char *addr)
{
	unsigned char bin[16];
	char entry[NTM_NAME_MAX + 64], name[NTM_NAME_MAX + 1], *dup;
	size_t i, hlen;
	int v6;

	if (c == NULL || host == NULL || addr == NULL || port == 0)
		return NTM_ERR_INVAL;
	/* DNS names are case-insensitive: pin the lowercase form. */
	for (hlen = 0; host[hlen] && hlen < NTM_NAME_MAX; hlen++)
		name[hlen] = (char)(host[hlen] >= 'A' && host[hlen] <= 'Z' ?
		    host[hlen] - 'A' + 'a' : host[hlen]);
	name[hlen] = '\0';
	if (host[hlen] != '\0' || !ntm_valid_dnsname(name))
		return NTM_ERR_INVAL;
	host = name;
	v6 = inet_pton(AF_INET6, addr, bin) == 1;
	if (!v6 && inet_pton(AF_INET, addr, bin) != 1)
		return NTM_ERR_INVAL;
	snprintf(entry, sizeof(entry), "%s:%u:%s%s%s", host, (unsigned)port,
	    v6 ? "[" : "", addr, v6 ? "]" : "");
	/* "host:port:" prefix names the pin; the same one is replaced. */
	for (i = 0; i < c->npins; i++) {
		const char *p = c->pins[i];

		if (strncmp(p, host, hlen) == 0 && p[hlen] == ':' &&
		    strtoul(p + hlen + 1, NULL, 10) == port)
			break;
	}
	if (i == c->npins && c->npins == HTTPC_PINS_MAX) {
		/* Full: the oldest pin goes. */
		free(c->pins[0]);
		memmove(c->pins, c->pins + 1, (HTTPC_PINS_MAX - 1) * sizeof(c->pins[0]));
		i = --c->npins;
	}
	if ((dup = strdup(entry)) == NULL)
		return NTM_ERR_NOMEM;
	if (i < c->npins)
		free(c->pins[i]);
	else
		c->npins++;
	c->pins[i] = dup;
	return 0;
}

int
ntm_httpc_connect_to(struct ntm_httpc *c, const char *host, uint16_t port, const char *addr)
{
	unsigned char bin[16];
	char entry[NTM_NAME_MAX + 96], *dup = NULL;
	int v6, h6;

	if (c == NULL || host == NULL || port == 0)
		return NTM_ERR_INVAL;
	if (addr) {
		v6 = inet_pton(AF_INET6, addr, bin) == 1;
		if (!v6 && inet_pton(AF_INET, addr, bin) != 1)
			return NTM_ERR_INVAL;
		h6 = strchr(host, ':') != NULL;	/* an IPv6 literal */
		if (snprintf(entry, sizeof(entry), "%s%s%s:%u:%s%s%s:%u", h6 ? "[" : "", host,
		    h6 ? "]" : "", (unsigned)port, v6 ? "[" : "", addr, v6 ? "]" : "",
		    (unsigned)port) >= (int)sizeof(entry) || (dup = strdup(entry)) == NULL)
			return NTM_ERR_NOMEM;
	}
	free(c->connect_to);
	c->connect_to = dup;
	return 0;
}

static int
add_header(struct curl_slist **l, const char *fmt, ...) NTM_PRINTF(2, 3);

static int
add_header(struct curl_slist **l, const char *fmt, ...)
{
	char line[NTM_B64_LEN(NTM_TOKEN_MAX) + NTM_B64_LEN(NTM_CERT_MAX) + 64];
	struct curl_slist *n;
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(line))
		return NTM_ERR_TOOBIG;
	if ((n = curl_slist_append(*l, line)) == NULL)
		return NTM_ERR_NOMEM;
	*l = n;
	return 0;
}

/* Checks the URL is https:// and copies its path for signing. */
static int
url_path(const char *url, char *path, size_t cap)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *p = NULL;
	int ret = NTM_ERR_INVAL;

	if (u == NULL)
		return NTM_ERR_NOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcmp(scheme, "https") != 0 ||
	    curl_url_get(u, CURLUPART_PATH, &p, 0) != CURLUE_OK)
		goto out;
	if (snprintf(path, cap, "%s", p) >= (int)cap)
		ret = NTM_ERR_TOOBIG;
	else
		ret = 0;
out:
	curl_free(scheme);
	curl_free(p);
	curl_url_cleanup(u);
	return ret;
}

static int httpc_send(struct ntm_httpc *c, const char *method, const char *url,
    const char *to, const char *ctype, const void *body, size_t blen, const char *bearer,
    long timeout_ms, ntm_httpc_cb *cb, void *arg, struct ntm_httpc_req **handle);

int
ntm_httpc_request(struct ntm_httpc *c, const char *method, const char *url,
    json_t *body, const char *bearer, long timeout_ms, ntm_httpc_cb *cb, void *arg)
{
	return ntm_httpc_request_to(c, method, url, NULL, body, bearer, timeout_ms, cb, arg);
}

int
ntm_httpc_request_to(struct ntm_httpc *c, const char *method, const char *url, const char *to,
    json_t *body, const char *bearer, long timeout_ms, ntm_httpc_cb *cb, void *arg)
{
	char *text = NULL;
	int ret;

	if (body && (text = json_dumps(body, JSON_COMPACT)) == NULL)
		return NTM_ERR_JSON;
	ret = httpc_send(c, method, url, to, text ? "application/json" : NULL, text,
	    text ? strlen(text) : 0, bearer, timeout_ms, cb, arg, NULL);
	if (text) {
		ntm_wipe(text, strlen(text));
		free(text);
	}
	return ret;
}

void
ntm_httpc_cancel(struct ntm_httpc_req *x)
{
	xfer_free(x);
}

int
ntm_httpc_send(struct ntm_httpc *c, const char *method, const char *url, const char *ctype,
    const void *body, size_t blen, const char *bearer, long timeout_ms, ntm_httpc_cb *cb,
    void *arg, struct ntm_httpc_req **handle)
{
	return httpc_send(c, method, url, NULL, ctype, body, blen, bearer, timeout_ms, cb, arg,
	    handle);
}

static int
httpc_send(struct ntm_httpc *c, const char *method, const char *url, const char *to,
    const char *ctype, const void *body, size_t blen, const char *bearer, long timeout_ms,
    ntm_httpc_cb *cb, void *arg, struct ntm_httpc_req **handle)
{
	struct ntm_httpc_req *x;
	char path[2048];
	CURL *e;
	int ret;

	if (handle)
		*handle = NULL;
	if (c == NULL || method == NULL || url == NULL || cb == NULL || !*method ||
	    strpbrk(method, " \r\n") || (bearer && strpbrk(bearer, "\r\n")) ||
	    (ctype && strpbrk(ctype, "\r\n")) || (blen && body == NULL) ||
	    (to && (!c->has_id || !ntm_valid_dnsname(to))))
		return NTM_ERR_INVAL;
	if ((ret = url_path(url, path, sizeof(path))) != 0)
		return ret;
	if (timeout_ms <= 0)
		timeout_ms = HTTPC_TIMEOUT_DEF_MS;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return NTM_ERR_NOMEM;
	x->cb = cb;
	x->arg = arg;
	ret = NTM_ERR_NOMEM;
	if (body) {
		if ((x->reqbody = malloc(blen + 1)) == NULL)
			goto err;
		memcpy(x->reqbody, body, blen);
		x->reqbody[blen] = '\0';
		x->reqlen = blen;
	}
	if ((x->easy = e = curl_easy_init()) == NULL)
		goto err;

	if (add_header(&x->hdrs, "Accept: application/json") ||
	    add_header(&x->hdrs, "Expect:"))
		goto err;
	if (ctype && add_header(&x->hdrs, "Content-Type: %s", ctype))
		goto err;
	if (bearer && add_header(&x->hdrs, "Authorization: Bearer %s", bearer))
		goto err;
	if (c->has_id) {
		char sig[NTM_SIG_B64], nonce[NTM_NONCE_B64];
		int64_t now = (int64_t)time(NULL);

		ntm_req_nonce(nonce);
		if (to) {
			ntm_req_sign_to(sig, c->sk, method, path, now, nonce, to,
			    x->reqbody ? x->reqbody : "", x->reqlen);
			if (add_header(&x->hdrs, NTM_HDR_TO ": %s", to))
				goto err;
		} else
			ntm_req_sign(sig, c->sk, method, path, now, nonce,
			    x->reqbody ? x->reqbody : "", x->reqlen);
		/* Its answer is to be signed over these. */
		if ((x->method = strdup(method)) == NULL || (x->path = strdup(path)) == NULL)
			goto err;
		memcpy(x->nonce, nonce, sizeof(x->nonce));
		if (add_header(&x->hdrs, NTM_HDR_DATE ": %lld", (long long)now) ||
		    add_header(&x->hdrs, NTM_HDR_NONCE ": %s", nonce) ||
		    add_header(&x->hdrs, NTM_HDR_CERT ": %s", c->cert_b64) ||
		    add_header(&x->hdrs, NTM_HDR_SIG ": %s", sig))
			goto err;
	}

	for (size_t i = 0; i < c->npins; i++) {
		struct curl_slist *n = curl_slist_append(x->resolve, c->pins[i]);

		if (n == NULL)
			goto err;
		x->resolve = n;
	}
	if (x->resolve)
		curl_easy_setopt(e, CURLOPT_RESOLVE, x->resolve);
	if (c->connect_to) {
		if ((x->connect_to = curl_slist_append(NULL, c->connect_to)) == NULL)
			goto err;
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, x->connect_to);
	}

	ret = NTM_ERR_INVAL;
	if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK)
		goto err;
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->cafile && curl_easy_setopt(e, CURLOPT_CAINFO, c->cafile) != CURLE_OK)
		goto err;
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (c->no_reuse) {
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	}
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    timeout_ms < HTTPC_CONNECT_MAX_MS ? timeout_ms : HTTPC_CONNECT_MAX_MS);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HTTPC_RESP_MAX);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_write_fn);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "ntm/" NTM_VERSION);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);

	if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	    strcmp(method, "PATCH") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->reqlen);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->reqbody ? x->reqbody : "");
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}

	if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
		ret = NTM_ERR_NOMEM;
		goto err;
	}
	x->c = c;
	if ((x->next = c->xfers) != NULL)
		x->next->prev = x;
	c->xfers = x;
	if (handle)
		*handle = x;
	return 0;
err:
	xfer_free(x);
	return ret;
}

/* ---- blocking helper ----------------------------------------------------- */

struct call_state {
	struct event_base	*base;
	int			 err;
	long			 status;
	json_t			*json;
	char			 errmsg[256];
};

static void
call_cb(const struct ntm_http_result *res, void *arg)
{
	struct call_state *st = arg;

	st->err = res->err;
	st->status = res->status;
	st->json = res->json ? json_incref(res->json) : NULL;
	snprintf(st->errmsg, sizeof(st->errmsg), "%s", res->errmsg);
	event_base_loopbreak(st->base);
}

int
ntm_https_call(const char *cafile, const char *method, const char *url,
    json_t *body, const char *bearer, long timeout_ms, long *status, json_t **json,
    char *errmsg, size_t errlen)
{
	struct call_state st;
	struct ntm_httpc *c = NULL;
	int ret;

	memset(&st, 0, sizeof(st));
	st.err = NTM_ERR_STATE;
	if (status)
		*status = 0;
	if (json)
		*json = NULL;
	if (errmsg && errlen)
		errmsg[0] = '\0';
	if ((st.base = event_base_new()) == NULL)
		return NTM_ERR_NOMEM;
	if ((c = ntm_httpc_new(st.base, cafile)) == NULL) {
		ret = NTM_ERR_NOMEM;
		goto out;
	}
	if ((ret = ntm_httpc_request(c, method, url, body, bearer, timeout_ms, call_cb, &st)) != 0)
		goto out;
	event_base_dispatch(st.base);
	ret = st.err;
	if (status)
		*status = st.status;
	if (json)
		*json = st.json;
	else
		json_decref(st.json);
	if (errmsg && errlen)
		snprintf(errmsg, errlen, "%s", st.errmsg);
out:
	ntm_httpc_free(c);
	event_base_free(st.base);
	return ret;
}

void
ntm_httpc_set_reuse(struct ntm_httpc *c, int reuse)
{
	c->no_reuse = !reuse;
}
