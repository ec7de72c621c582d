/*
 * test_http.c - lib/io/httpd.c and lib/io/httpc.c against each other, in process,
 * over loopback: one event loop runs the server and the libcurl client.
 * Requests that need hand-made headers (stale dates, replays, tampering) or
 * raw bytes (plain HTTP) run blocking on a helper thread while the main
 * thread keeps the loop turning.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "ntm.h"
#include "unit.h"

static char dir[] = "/tmp/ntm-test-http-XXXXXX";
static char ca_crt[128], ca_key[128], srv_crt[128], srv_key[128];
static char bad_crt[128], bad_key[128];
static struct event_base *base;
static struct ntm_httpd *httpd;
static struct ntm_httpc *client;
static uint16_t port;
static uint8_t as_pk[NTM_SIGN_PK], as_sk[NTM_SIGN_SK];
static uint8_t id_pk[NTM_SIGN_PK], id_sk[NTM_SIGN_SK];
static struct ntm_cert id_cert;
static int revoked_serial = -1;
static int late_replies;
static struct ntm_req *held;

/* ---- server side --------------------------------------------------------- */

static void
route_echo(struct ntm_req *r, void *arg)
{
	json_t *o = json_deep_copy(ntm_req_json(r));

	json_object_set_new(o, "peer", json_string(ntm_req_peer(r)));
	ntm_reply_json(r, 200, o);
}

static void
route_hello(struct ntm_req *r, void *arg)
{
	const char *b = ntm_req_bearer(r);

	ntm_reply_json(r, 200, json_pack("{s:s, s:s?}", "hello", "world", "bearer", b));
}

static void
route_signed(struct ntm_req *r, void *arg)
{
	const struct ntm_cert *c = ntm_req_cert(r);

	ntm_reply_json(r, 200, json_pack("{s:s}", "name", c ? c->name : "?"));
}

static void
route_fail(struct ntm_req *r, void *arg)
{
	ntm_reply_err(r, NTM_ERR_LOCKED, "account '%s' is locked", "bob");
}

static void
late_cb(evutil_socket_t fd, short what, void *arg)
{
	ntm_reply_json(arg, 200, json_pack("{s:b}", "late", 1));
	late_replies++;
}

/* Answers after the delay given in the body. */
static void
route_slow(struct ntm_req *r, void *arg)
{
	json_int_t ms = json_integer_value(json_object_get(ntm_req_json(r), "ms"));
	struct timeval tv = { 0, (suseconds_t)ms * 1000 };

	event_base_once(base, -1, EV_TIMEOUT, late_cb, r, &tv);
}

static void
route_hold(struct ntm_req *r, void *arg)
{
	held = r;
}

/* ---- a route table: the checks lib/io/httpd.c makes before a handler ------- */

static int handled;	/* handler calls on the table's routes */

static void
route_counted(struct ntm_req *r, void *arg)
{
	const struct ntm_cert *c = ntm_req_cert(r);
	const char *who = ntm_req_auth(r);

	handled++;
	ntm_reply_json(r, 200, json_pack("{s:s?, s:s?}", "name", c ? c->name : NULL,
	    "who", who));
}

/* Accepts the token "good" as alice; answers anything else itself. */
static int
bearer_check(struct ntm_req *r, const char *token, void *arg)
{
	if (strcmp(token, "good") != 0) {
		ntm_reply_error(r, 401, "unauthorized", NULL, "token: not good");
		return -1;
	}
	ntm_req_set_auth(r, strdup("alice"), free);
	return 0;
}

static const struct ntm_http_route table[] = {
	{ "POST", "/t/cs", NTM_ROUTE_SIGNED | NTM_ROUTE_JSON, route_counted,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_CS) },
	{ "POST", "/t/as", NTM_ROUTE_SIGNED | NTM_ROUTE_JSON, route_counted,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_AS), .deny = 403 },
	{ "POST", "/t/small", NTM_ROUTE_SIGNED | NTM_ROUTE_JSON, route_counted,
	  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) | NTM_ROUTE_ROLE(NTM_ROLE_CS),
	  .body_max = 64 },
	{ "POST", "/t/versioned", NTM_ROUTE_VERSIONED, .fn = route_counted },
	{ "GET", "/t/bearer", NTM_ROUTE_BEARER, .fn = route_counted },
	{ .method = NULL }
};

static int
check_cert(const struct ntm_cert *c, void *arg)
{
	return (int)c->serial == revoked_serial ? NTM_ERR_REVOKED : 0;
}

/* ---- client side --------------------------------------------------------- */

struct res {
	int	 done;
	int	 err;
	long	 status;
	json_t	*json;
	char	 errmsg[256];
	int	 peer_err;		/* the answer's signer: */
	char	 peer[NTM_NAME_MAX + 1];	/* its name, "" if none */
};

static void
res_cb(const struct ntm_http_result *r, void *arg)
{
	struct res *o = arg;

	o->done = 1;
	o->err = r->err;
	o->status = r->status;
	o->json = r->json ? json_incref(r->json) : NULL;
	snprintf(o->errmsg, sizeof(o->errmsg), "%s", r->errmsg);
	o->peer_err = r->peer_err;
	snprintf(o->peer, sizeof(o->peer), "%s", r->peer ? r->peer->name : "");
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Turns the loop until *flag is set (bounded: 10 s). */
static void
run_until(atomic_int *flag)
{
	struct timeval tv = { 0, 10000 };
	struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	time_t end = time(NULL) + 10;

	event_add(tick, &tv);
	while (!atomic_load(flag) && time(NULL) < end)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(tick);
}

static void
run_for_ms(long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
request(struct ntm_httpc *c, const char *method, const char *path, json_t *body,
    const char *bearer, long timeout_ms, struct res *out)
{
	char url[256];
	atomic_int done = 0;

	memset(out, 0, sizeof(*out));
	snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", (unsigned)port, path);
	out->err = ntm_httpc_request(c, method, url, body, bearer, timeout_ms, res_cb, out);
	json_decref(body);
	if (out->err != 0)
		return;
	while (!out->done) {
		event_base_loop(base, EVLOOP_ONCE);
		atomic_store(&done, out->done);
	}
}

static const char *
jstr(const struct res *r, const char *key)
{
	return json_string_value(json_object_get(r->json, key));
}

/* ---- blocking helpers run on a thread ------------------------------------ */

struct raw {
	/* in */
	const char	*path;
	const char	*body;
	const char	*hdr[5];
	/* out */
	long		 status;
	char		 resp[4096];
	size_t		 len;
	atomic_int	 done;
};

static size_t
raw_write(char *p, size_t size, size_t n, void *arg)
{
	struct raw *r = arg;
	size_t len = size * n;

	if (len > sizeof(r->resp) - 1 - r->len)
		len = sizeof(r->resp) - 1 - r->len;
	memcpy(r->resp + r->len, p, len);
	r->len += len;
	return size * n;
}

static void *
curl_thread(void *arg)
{
	struct raw *r = arg;
	struct curl_slist *h = NULL;
	char url[256];
	CURL *e = curl_easy_init();

	snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", (unsigned)port, r->path);
	h = curl_slist_append(h, "Content-Type: application/json");
	for (int i = 0; i < 5 && r->hdr[i]; i++)
		h = curl_slist_append(h, r->hdr[i]);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CAINFO, ca_crt);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, raw_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	atomic_store(&r->done, 1);
	return NULL;
}

/* Plain HTTP to the TLS port. */
static void *
plain_thread(void *arg)
{
	struct raw *r = arg;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t n;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    write(fd, r->body, strlen(r->body)) == (ssize_t)strlen(r->body)) {
		while (r->len < sizeof(r->resp) - 1 &&
		    (n = read(fd, r->resp + r->len, sizeof(r->resp) - 1 - r->len)) > 0)
			r->len += (size_t)n;
	}
	close(fd);
	atomic_store(&r->done, 1);
	return NULL;
}

/* Raw bytes over TLS (no certificate check: this is about HTTP parsing). */
static void *
tls_raw_thread(void *arg)
{
	struct raw *r = arg;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { 5, 0 };
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (ctx && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    (ssl = SSL_new(ctx)) != NULL && SSL_set_fd(ssl, fd) == 1 &&
	    SSL_connect(ssl) == 1 && SSL_write(ssl, r->body, (int)strlen(r->body)) > 0) {
		while (r->len < sizeof(r->resp) - 1 &&
		    (n = SSL_read(ssl, r->resp + r->len, (int)(sizeof(r->resp) - 1 - r->len))) > 0)
			r->len += (size_t)n;
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	atomic_store(&r->done, 1);
	return NULL;
}

static void
run_thread(void *(*fn)(void *), struct raw *r)
{
	pthread_t t;

	r->len = 0;
	r->status = 0;
	memset(r->resp, 0, sizeof(r->resp));
	atomic_store(&r->done, 0);
	CHECK_EQ(pthread_create(&t, NULL, fn, r), 0);
	run_until(&r->done);
	pthread_join(t, NULL);
}

/* A signed request made by hand: headers for method POST, path, date, body. */
static void
sign_headers(struct raw *r, char bufs[4][1024], const uint8_t *sk,
    const struct ntm_cert *cert, int64_t date, const char *signed_body)
{
	char sig[NTM_SIG_B64], cb64[NTM_B64_LEN(NTM_CERT_MAX)];
	const char *nonce = "AAAAAAAAAAAAAAAAAAAAAA";

	ntm_req_sign(sig, sk, "POST", r->path, date, nonce, signed_body, strlen(signed_body));
	CHECK(ntm_cert_to_b64(cert, cb64, sizeof(cb64)) > 0);
	snprintf(bufs[0], 1024, "NTM-Date: %lld", (long long)date);
	snprintf(bufs[1], 1024, "NTM-Cert: %s", cb64);
	snprintf(bufs[2], 1024, "NTM-Signature: %s", sig);
	r->hdr[0] = bufs[0];
	r->hdr[1] = bufs[1];
	snprintf(bufs[3], 1024, "NTM-Nonce: %s", nonce);
	r->hdr[2] = bufs[2];
	r->hdr[3] = bufs[3];
	r->hdr[4] = NULL;
}

/* ---- tests --------------------------------------------------------------- */

static void
log_fn(int level, const char *msg, void *arg)
{
	fprintf(stderr, "log: %s\n", msg);
}

TEST(setup)
{
	const char *sans[] = { "localhost", "127.0.0.1", NULL };
	int64_t now = (int64_t)time(NULL);

	signal(SIGPIPE, SIG_IGN);
	if (getenv("NTM_TEST_VERBOSE"))
		ntm_log_set(log_fn, NULL, NTM_LOG_DEBUG);
	CHECK_EQ(ntm_crypto_init(), 0);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(ca_crt, sizeof(ca_crt), "%s/ca.crt", dir);
	snprintf(ca_key, sizeof(ca_key), "%s/ca.key", dir);
	snprintf(srv_crt, sizeof(srv_crt), "%s/srv.crt", dir);
	snprintf(srv_key, sizeof(srv_key), "%s/srv.key", dir);
	snprintf(bad_crt, sizeof(bad_crt), "%s/bad.crt", dir);
	snprintf(bad_key, sizeof(bad_key), "%s/bad.key", dir);
	CHECK_EQ(ntm_tls_make_ca(ca_crt, ca_key, "test CA", 2), 0);
	CHECK_EQ(ntm_tls_make_ca(bad_crt, bad_key, "other CA", 2), 0);
	CHECK_EQ(ntm_tls_issue(ca_crt, ca_key, srv_crt, srv_key, sans, 2), 0);

	CHECK_EQ(ntm_sign_keypair(as_pk, as_sk), 0);
	CHECK_EQ(ntm_sign_keypair(id_pk, id_sk), 0);
	memset(&id_cert, 0, sizeof(id_cert));
	id_cert.version = 1;
	id_cert.role = NTM_ROLE_DC;
	snprintf(id_cert.name, sizeof(id_cert.name), "dc1.ntm.test");
	memcpy(id_cert.pk, id_pk, sizeof(id_pk));
	id_cert.serial = 7;
	id_cert.not_before = now - 60;
	id_cert.not_after = now + 3600;
	ntm_cert_sign(&id_cert, as_sk);

	base = event_base_new();
	CHECK(base != NULL);
	CHECK(ntm_httpd_new(base, srv_crt, "/nonexistent.key", 0) == NULL);
	httpd = ntm_httpd_new(base, srv_crt, srv_key, NTM_BODY_MAX);
	CHECK(httpd != NULL);
	CHECK_EQ(ntm_httpd_listen(httpd, "127.0.0.1", 0, &port), 0);
	CHECK(port != 0);
	ntm_httpd_set_trust(httpd, as_pk, check_cert, NULL);
	CHECK_EQ(ntm_httpd_route(httpd, "POST", "/echo", NTM_ROUTE_JSON, route_echo, NULL), 0);
	CHECK_EQ(ntm_httpd_route(httpd, "GET", "/hello", 0, route_hello, NULL), 0);
	CHECK_EQ(ntm_httpd_route(httpd, "POST", "/signed", NTM_ROUTE_SIGNED | NTM_ROUTE_JSON,
	    route_signed, NULL), 0);
	CHECK_EQ(ntm_httpd_route(httpd, "POST", "/fail", 0, route_fail, NULL), 0);
	CHECK_EQ(ntm_httpd_route(httpd, "POST", "/slow", NTM_ROUTE_JSON, route_slow, NULL), 0);
	CHECK_EQ(ntm_httpd_route(httpd, "POST", "/hold", 0, route_hold, NULL), 0);
	CHECK_EQ(ntm_httpd_route(httpd, "POST", "/echo", 0, route_echo, NULL), NTM_ERR_EXISTS);
	CHECK_EQ(ntm_httpd_routes(httpd, table, sizeof(table) / sizeof(table[0]) - 1, NULL), 0);
	ntm_httpd_set_bearer(httpd, bearer_check, NULL);
	client = ntm_httpc_new(base, ca_crt);
	CHECK(client != NULL);
}

TEST(echo)
{
	struct res r;
	char peer[32];

	request(client, "POST", "/echo", json_pack("{s:s, s:i}", "a", "b", "n", 5), NULL, 5000, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(r.status, 200);
	CHECK_STR(jstr(&r, "a"), "b");
	CHECK_EQ(json_integer_value(json_object_get(r.json, "n")), 5);
	snprintf(peer, sizeof(peer), "%.10s", jstr(&r, "peer") ? jstr(&r, "peer") : "");
	CHECK_STR(peer, "127.0.0.1:");
	json_decref(r.json);

	request(client, "GET", "/hello", NULL, "tok123", 5000, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(jstr(&r, "bearer"), "tok123");
	json_decref(r.json);
}

TEST(errors)
{
	struct res r;
	char *big;
	json_t *o;

	request(client, "GET", "/nope", NULL, NULL, 5000, &r);
	CHECK_EQ(r.status, 404);
	CHECK_STR(jstr(&r, "code"), "not_found");
	CHECK(jstr(&r, "message") != NULL);
	CHECK(json_object_get(r.json, "field") == NULL);
	json_decref(r.json);

	request(client, "POST", "/hello", json_object(), NULL, 5000, &r);
	CHECK_EQ(r.status, 405);
	CHECK_STR(jstr(&r, "code"), "method_not_allowed");
	json_decref(r.json);

	request(client, "POST", "/echo", json_pack("[i]", 1), NULL, 5000, &r);
	CHECK_EQ(r.status, 400);
	CHECK_STR(jstr(&r, "code"), "not_object");
	json_decref(r.json);

	request(client, "POST", "/fail", NULL, NULL, 5000, &r);
	CHECK_EQ(r.status, 403);
	CHECK_STR(jstr(&r, "code"), ntm_errcode(NTM_ERR_LOCKED));
	CHECK_STR(jstr(&r, "message"), "account 'bob' is locked");
	json_decref(r.json);

	/* Just over the limit: our JSON 413. */
	big = malloc(NTM_BODY_MAX + 100);
	memset(big, 'x', NTM_BODY_MAX + 99);
	big[NTM_BODY_MAX + 99] = '\0';
	o = json_pack("{s:s}", "pad", big);
	request(client, "POST", "/echo", o, NULL, 5000, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(r.status, 413);
	CHECK_STR(jstr(&r, "code"), "body_too_large");
	json_decref(r.json);
	free(big);

	/* Far over the limit: evhttp refuses it on the Content-Length alone
	 * with its own 413 page, which httpd turns into JSON. */
	big = malloc(6 * NTM_BODY_MAX);
	memset(big, 'x', 6 * NTM_BODY_MAX - 1);
	big[6 * NTM_BODY_MAX - 1] = '\0';
	o = json_pack("{s:s}", "pad", big);
	request(client, "POST", "/echo", o, NULL, 5000, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(r.status, 413);
	CHECK_STR(jstr(&r, "code"), "body_too_large");
	json_decref(r.json);
	free(big);

	CHECK_EQ(ntm_err_http_status(NTM_ERR_BADPASS), 401);
	CHECK_EQ(ntm_err_http_status(NTM_ERR_NOUSER), 404);
	CHECK_EQ(ntm_err_http_status(NTM_ERR_EXISTS), 409);
	CHECK_EQ(ntm_err_http_status(NTM_ERR_UNAVAIL), 502);
	CHECK_EQ(ntm_err_http_status(NTM_ERR_NOSPACE), 503);
	CHECK_EQ(ntm_err_http_status(NTM_ERR_DB), 500);
}

TEST(bad_json)
{
	struct raw r = { .path = "/echo", .body = "{\"a\":" };

	run_thread(curl_thread, &r);
	CHECK_EQ(r.status, 400);
	CHECK(strstr(r.resp, "\"code\":\"bad_json\"") != NULL);
}

TEST(signed_ok)
{
	struct ntm_httpc *c = ntm_httpc_new(base, ca_crt);
	struct res r;

	CHECK_EQ(ntm_httpc_set_identity(c, id_sk, &id_cert), 0);
	request(c, "POST", "/signed", json_pack("{s:i}", "x", 1), NULL, 5000, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(jstr(&r, "name"), "dc1.ntm.test");
	json_decref(r.json);
	/* A fresh signature each time: a second request is not a replay. */
	request(c, "POST", "/signed", json_pack("{s:i}", "x", 2), NULL, 5000, &r);
	CHECK_EQ(r.status, 200);
	json_decref(r.json);
	ntm_httpc_free(c);
}

/* With an identity, the server signs its answers to signed requests; a
 * client that knows the AS key learns who answered. */
TEST(signed_answer)
{
	struct ntm_httpc *c = ntm_httpc_new(base, ca_crt);
	struct res r;

	CHECK_EQ(ntm_httpc_set_identity(c, id_sk, &id_cert), 0);
	/* No identity yet: not signed. */
	request(c, "POST", "/signed", json_pack("{s:i}", "x", 1), NULL, 5000, &r);
	CHECK_EQ(r.status, 200);
	CHECK_EQ(r.peer_err, NTM_ERR_STATE);	/* no AS key given */
	json_decref(r.json);
	CHECK_EQ(ntm_httpc_set_trust(c, as_pk), 0);
	request(c, "POST", "/signed", json_pack("{s:i}", "x", 1), NULL, 5000, &r);
	CHECK_EQ(r.peer_err, NTM_ERR_UNAUTH);
	CHECK_STR(r.peer, "");
	json_decref(r.json);
	CHECK_EQ(ntm_httpd_set_identity(httpd, id_sk, &id_cert), 0);
	request(c, "POST", "/signed", json_pack("{s:i}", "x", 2), NULL, 5000, &r);
	CHECK_EQ(r.status, 200);
	CHECK_EQ(r.peer_err, 0);
	CHECK_STR(r.peer, "dc1.ntm.test");
	json_decref(r.json);
	/* An error answer is signed too. */
	request(c, "POST", "/signed", json_pack("[]"), NULL, 5000, &r);
	CHECK_EQ(r.status, 400);
	CHECK_STR(r.peer, "dc1.ntm.test");
	json_decref(r.json);
	/* An unsigned request gets an unsigned answer. */
	request(client, "GET", "/v1/health", NULL, NULL, 5000, &r);
	CHECK_STR(r.peer, "");
	json_decref(r.json);
	ntm_httpc_free(c);
}

/* Answers status and code; the handler did not run unless status is 200. */
static void
expect_route(struct ntm_httpc *c, const char *method, const char *path, json_t *body,
    const char *bearer, long status, const char *code, const char *field)
{
	struct res r;
	int before = handled;

	request(c, method, path, body, bearer, 5000, &r);
	if (r.status != status)
		fprintf(stderr, "%s %s: %ld, want %ld\n", method, path, r.status, status);
	CHECK_EQ(r.status, status);
	CHECK_EQ(handled, before + (status == 200));
	if (code)
		CHECK_STR(jstr(&r, "code"), code);
	if (field)
		CHECK_STR(jstr(&r, "field"), field);
	json_decref(r.json);
}

TEST(route_signed_refuses_unsigned)
{
	/* No signature: the handler never runs, whatever the role. */
	expect_route(client, "POST", "/t/cs", json_object(), NULL, 401, "unauthorized", NULL);
	expect_route(client, "POST", "/t/small", json_object(), NULL, 401, "unauthorized",
	    NULL);
}

TEST(route_roles)
{
	struct ntm_httpc *dc = ntm_httpc_new(base, ca_crt);

	CHECK_EQ(ntm_httpc_set_identity(dc, id_sk, &id_cert), 0);
	/* A DC where only a CS may call: 401 unauthorized, as the DC and the
	 * AS answered by hand; where only the AS may: 403 forbidden (the CS). */
	expect_route(dc, "POST", "/t/cs", json_object(), NULL, 401, "unauthorized", NULL);
	expect_route(dc, "POST", "/t/as", json_object(), NULL, 403, "forbidden", NULL);
	expect_route(dc, "POST", "/t/small", json_object(), NULL, 200, NULL, NULL);
	ntm_httpc_free(dc);
	/* Roles only on signed routes: a table that says otherwise is refused. */
	{
		const struct ntm_http_route bad[] = {
			{ "GET", "/t/bad", 0, route_counted,
			  .roles = NTM_ROUTE_ROLE(NTM_ROLE_DC) },
		};

		CHECK_EQ(ntm_httpd_routes(httpd, bad, 1, NULL), NTM_ERR_INVAL);
	}
}

TEST(route_body_limit)
{
	struct ntm_httpc *dc = ntm_httpc_new(base, ca_crt);
	char pad[100];

	CHECK_EQ(ntm_httpc_set_identity(dc, id_sk, &id_cert), 0);
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	/* Over the route's 64 bytes (the server takes 64 KiB): 413. */
	expect_route(dc, "POST", "/t/small", json_pack("{s:s}", "pad", pad), NULL, 413,
	    "body_too_large", NULL);
	pad[20] = '\0';
	expect_route(dc, "POST", "/t/small", json_pack("{s:s}", "pad", pad), NULL, 200,
	    NULL, NULL);
	ntm_httpc_free(dc);
}

TEST(route_versioned)
{
	expect_route(client, "POST", "/t/versioned", json_pack("{s:i}", "version",
	    NTM_PROTOCOL_VERSION), NULL, 200, NULL, NULL);
	expect_route(client, "POST", "/t/versioned", json_pack("{s:i}", "version",
	    NTM_PROTOCOL_VERSION + 1), NULL, 400, "bad_version", "version");
	expect_route(client, "POST", "/t/versioned", json_pack("{s:s}", "version", "1"),
	    NULL, 400, "bad_field", "version");
	expect_route(client, "POST", "/t/versioned", json_object(), NULL, 400,
	    "missing_field", "version");
	expect_route(client, "POST", "/t/versioned", json_pack("[i]", 1), NULL, 400,
	    "not_object", NULL);
}

TEST(route_bearer)
{
	struct res r;

	expect_route(client, "GET", "/t/bearer", NULL, NULL, 401, "unauthorized", NULL);
	expect_route(client, "GET", "/t/bearer", NULL, "bad", 401, "unauthorized", NULL);
	/* What the hook learnt reaches the handler. */
	request(client, "GET", "/t/bearer", NULL, "good", 5000, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(jstr(&r, "who"), "alice");
	json_decref(r.json);
}

TEST(route_strings)
{
	char buf[64];

	CHECK_STR(ntm_route_flags_str(0, buf, sizeof(buf)), "-");
	CHECK_STR(ntm_route_flags_str(NTM_ROUTE_JSON | NTM_ROUTE_SIGNED | NTM_ROUTE_VERSIONED,
	    buf, sizeof(buf)), "signed,json,versioned");
	CHECK_STR(ntm_route_flags_str(NTM_ROUTE_BEARER, buf, sizeof(buf)), "bearer");
	CHECK_STR(ntm_route_flags_str(NTM_ROUTE_BEARER | NTM_ROUTE_STREAM, buf, sizeof(buf)),
	    "bearer,stream");
	CHECK_STR(ntm_route_roles_str(0, buf, sizeof(buf)), "any");
	CHECK_STR(ntm_route_roles_str(NTM_ROUTE_ROLE(NTM_ROLE_DC) |
	    NTM_ROUTE_ROLE(NTM_ROLE_CS), buf, sizeof(buf)), "dc,cs");
	CHECK_STR(ntm_route_flags_str(NTM_ROUTE_JSON | NTM_ROUTE_SIGNED, buf, 4), "sig");
}

static void
expect_401(struct raw *r, const char *why)
{
	run_thread(curl_thread, r);
	CHECK_EQ(r->status, 401);
	CHECK(strstr(r->resp, "\"code\":\"unauthorized\"") != NULL);
	if (!strstr(r->resp, why))
		fprintf(stderr, "expected '%s' in %s\n", why, r->resp);
	CHECK(strstr(r->resp, why) != NULL);
}

TEST(signed_rejects)
{
	char h[4][1024];
	struct raw r = { .path = "/signed", .body = "{\"x\":3}" };
	int64_t now = (int64_t)time(NULL);
	struct ntm_cert other = id_cert;
	struct res res;

	/* No headers at all (client without identity). */
	request(client, "POST", "/signed", json_object(), NULL, 5000, &res);
	CHECK_EQ(res.status, 401);
	CHECK_STR(jstr(&res, "code"), "unauthorized");
	json_decref(res.json);

	/* Good, then the same bytes again: replay. */
	sign_headers(&r, h, id_sk, &id_cert, now, r.body);
	run_thread(curl_thread, &r);
	CHECK_EQ(r.status, 200);
	expect_401(&r, "replayed");

	/* Body changed after signing. */
	sign_headers(&r, h, id_sk, &id_cert, now, "{\"x\":2}");
	expect_401(&r, "does not verify");

	/* Stale date. */
	sign_headers(&r, h, id_sk, &id_cert, now - 2 * NTM_SIG_WINDOW, r.body);
	expect_401(&r, "clock");

	/* Certificate not signed by our AS. */
	other.serial = 8;
	ntm_cert_sign(&other, id_sk);
	sign_headers(&r, h, id_sk, &other, now, r.body);
	expect_401(&r, "not signed");

	/* Expired certificate. */
	other = id_cert;
	other.not_after = now - 10;
	ntm_cert_sign(&other, as_sk);
	sign_headers(&r, h, id_sk, &other, now, r.body);
	expect_401(&r, "validity");

	/* Revoked by the check hook. */
	revoked_serial = 7;
	sign_headers(&r, h, id_sk, &id_cert, now + 1, r.body);
	expect_401(&r, "not accepted");
	revoked_serial = -1;

	/* A missing header, and a garbage certificate. */
	sign_headers(&r, h, id_sk, &id_cert, now + 2, r.body);
	r.hdr[2] = NULL;
	expect_401(&r, "missing NTM-Signature");
	sign_headers(&r, h, id_sk, &id_cert, now + 3, r.body);
	r.hdr[1] = "NTM-Cert: AAAA";
	expect_401(&r, "does not decode");
}

TEST(async_reply)
{
	struct res r;

	request(client, "POST", "/slow", json_pack("{s:i}", "ms", 200), NULL, 5000, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(r.status, 200);
	CHECK(json_is_true(json_object_get(r.json, "late")));
	json_decref(r.json);

	/* The client gives up before the reply: the late reply is dropped. */
	late_replies = 0;
	request(client, "POST", "/slow", json_pack("{s:i}", "ms", 300), NULL, 100, &r);
	CHECK_EQ(r.err, NTM_ERR_TIMEOUT);
	CHECK(r.errmsg[0] != '\0');
	run_for_ms(400);
	CHECK_EQ(late_replies, 1);

	/* The server still works. */
	request(client, "GET", "/hello", NULL, NULL, 5000, &r);
	CHECK_EQ(r.status, 200);
	json_decref(r.json);
}

TEST(tls_failures)
{
	struct ntm_httpc *c = ntm_httpc_new(base, bad_crt);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	uint16_t saved = port;
	struct timespec t0, t1;
	struct res r;
	int fd;

	/* A CA that did not sign the server's certificate: untrusted, and
	 * errmsg is the verifier's reason alone. */
	request(c, "GET", "/hello", NULL, NULL, 5000, &r);
	CHECK_EQ(r.err, NTM_ERR_UNTRUSTED);
	CHECK(r.errmsg[0] != '\0');
	CHECK(strstr(r.errmsg, "SSL certificate problem") == NULL);
	ntm_httpc_free(c);

	/* http:// is refused before anything is sent. */
	CHECK_EQ(ntm_httpc_request(client, "GET", "http://127.0.0.1/", NULL, NULL, 1000,
	    res_cb, &r), NTM_ERR_INVAL);

	/* A closed port. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CHECK_EQ(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	close(fd);
	port = ntohs(sin.sin_port);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	request(client, "GET", "/hello", NULL, NULL, 5000, &r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	port = saved;
	CHECK_EQ(r.err, NTM_ERR_CONNECT);
	CHECK(t1.tv_sec - t0.tv_sec < 2);
}

TEST(plain_http)
{
	struct raw r = { .body = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" };

	run_thread(plain_thread, &r);
	CHECK(strncmp(r.resp, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
	CHECK(strstr(r.resp, "{\"code\":\"tls_required\"") != NULL);
	/* The body is whole JSON and Content-Length matches it. */
	const char *body = strstr(r.resp, "\r\n\r\n");
	const char *cl = strstr(r.resp, "Content-Length: ");
	CHECK(body != NULL && cl != NULL);
	if (body && cl) {
		json_error_t je;
		json_t *j = json_loads(body + 4, 0, &je);
		CHECK(j != NULL);
		json_decref(j);
		CHECK_EQ(atoi(cl + 16), (long long)strlen(body + 4));
	}

	/* Some other text that is not TLS either. */
	r.body = "DELETE /x HTTP/1.1\r\n\r\n";
	run_thread(plain_thread, &r);
	CHECK(strstr(r.resp, "tls_required") != NULL);
}

TEST(evhttp_errors_are_json)
{
	struct raw r = { .body = "NONSENSE\r\n\r\n" };

	run_thread(tls_raw_thread, &r);
	CHECK(strncmp(r.resp, "HTTP/1.1 400 ", 13) == 0);
	CHECK(strstr(r.resp, "\"code\":\"bad_request\"") != NULL);

	r.body = "TRACE /echo HTTP/1.1\r\nHost: x\r\n\r\n";
	run_thread(tls_raw_thread, &r);
	CHECK(strstr(r.resp, "\"code\":\"method_not_allowed\"") != NULL);
	CHECK(strstr(r.resp, "Content-Type: application/json") != NULL);

	/* Keep-alive: two requests on one connection both answered. */
	r.body = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n"
	    "Connection: close\r\n\r\n";
	run_thread(tls_raw_thread, &r);
	CHECK(strstr(r.resp, "\"hello\":\"world\"") != NULL);
	CHECK(strstr(r.resp, "\"code\":\"not_found\"") != NULL);
}

/* ntm_https_call runs its own loop; the server's loop turns on the main
 * thread meanwhile. */
static void *
call_thread(void *arg)
{
	struct raw *r = arg;
	char url[128], err[128];
	json_t *j = NULL, *body = json_pack("{s:s}", "k", "v");
	int rc;

	snprintf(url, sizeof(url), "https://127.0.0.1:%u/echo", (unsigned)port);
	rc = ntm_https_call(ca_crt, "POST", url, body, NULL, 5000, &r->status, &j,
	    err, sizeof(err));
	json_decref(body);
	snprintf(r->resp, sizeof(r->resp), "%d %s", rc,
	    j ? json_string_value(json_object_get(j, "k")) : "(none)");
	json_decref(j);
	atomic_store(&r->done, 1);
	return NULL;
}

TEST(blocking_call)
{
	struct raw r = { 0 };
	char err[256];
	long status = -1;

	run_thread(call_thread, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.resp, "0 v");
	CHECK_EQ(ntm_https_call(ca_crt, "GET", "https://127.0.0.1:1/x", NULL, NULL, 2000,
	    &status, NULL, err, sizeof(err)), NTM_ERR_CONNECT);
	CHECK_EQ(status, 0);
	CHECK(err[0] != '\0');
}

TEST(free_with_pending)
{
	struct res r;
	struct ntm_req *h;

	held = NULL;
	memset(&r, 0, sizeof(r));
	{
		char url[64];

		snprintf(url, sizeof(url), "https://127.0.0.1:%u/hold", (unsigned)port);
		CHECK_EQ(ntm_httpc_request(client, "POST", url, NULL, NULL, 5000, res_cb, &r), 0);
	}
	while (held == NULL)
		event_base_loop(base, EVLOOP_ONCE);
	h = held;
	/* Server gone while a request is held; the later reply only frees. */
	ntm_httpd_free(httpd);
	httpd = NULL;
	ntm_reply_json(h, 200, json_object());
	/* Client freed with requests in flight: no callbacks. */
	ntm_httpc_free(client);
	client = NULL;
	CHECK_EQ(r.done, 0);
}

TEST(cleanup)
{
	const char *files[] = { ca_crt, ca_key, srv_crt, srv_key, bad_crt, bad_key };

	event_base_free(base);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	CHECK_EQ(rmdir(dir), 0);
	curl_global_cleanup();
}

UNIT_MAIN(T(setup), T(echo), T(errors), T(bad_json), T(signed_ok), T(signed_answer), T(signed_rejects),
    T(route_signed_refuses_unsigned), T(route_roles), T(route_body_limit), T(route_versioned),
    T(route_bearer), T(route_strings),
    T(async_reply), T(tls_failures), T(plain_http), T(evhttp_errors_are_json), T(blocking_call),
    T(free_with_pending), T(cleanup))
