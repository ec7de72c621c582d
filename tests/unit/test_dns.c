/*
 * test_dns.c - the library side of DC discovery: ntm_httpc_resolve pins a
 * name:port to the address DNS gave, the connection goes there and TLS
 * still verifies the name. One loop runs a local HTTPS server whose
 * certificate names only dc9.ntm.test (a name no resolver knows).
 */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "ntm.h"
#include "unit.h"

static char dir[] = "/tmp/ntm-test-dns-XXXXXX";
static char ca_crt[128], ca_key[128], srv_crt[128], srv_key[128];
static struct event_base *base;
static struct ntm_httpd *httpd;
static struct ntm_httpc *client;
static uint16_t port;

struct res {
	int	done, err;
	long	status;
};

static void
route_hello(struct ntm_req *r, void *arg)
{
	ntm_reply_json(r, 200, json_pack("{s:s}", "hello", "dc9"));
}

static void
res_cb(const struct ntm_http_result *r, void *arg)
{
	struct res *o = arg;

	o->done = 1;
	o->err = r->err;
	o->status = r->status;
}

/* GET https://host:port/hello through client; fills out. */
static void
get(const char *host, struct res *out)
{
	char url[256];

	memset(out, 0, sizeof(*out));
	snprintf(url, sizeof(url), "https://%s:%u/hello", host, (unsigned)port);
	out->err = ntm_httpc_request(client, "GET", url, NULL, NULL, 3000, res_cb, out);
	if (out->err != 0)
		return;
	while (!out->done)
		event_base_loop(base, EVLOOP_ONCE);
}

TEST(setup)
{
	const char *sans[] = { "dc9.ntm.test", NULL };

	signal(SIGPIPE, SIG_IGN);
	CHECK_EQ(ntm_crypto_init(), 0);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(ca_crt, sizeof(ca_crt), "%s/ca.crt", dir);
	snprintf(ca_key, sizeof(ca_key), "%s/ca.key", dir);
	snprintf(srv_crt, sizeof(srv_crt), "%s/srv.crt", dir);
	snprintf(srv_key, sizeof(srv_key), "%s/srv.key", dir);
	CHECK_EQ(ntm_tls_make_ca(ca_crt, ca_key, "test CA", 2), 0);
	CHECK_EQ(ntm_tls_issue(ca_crt, ca_key, srv_crt, srv_key, sans, 2), 0);
	base = event_base_new();
	CHECK(base != NULL);
	httpd = ntm_httpd_new(base, srv_crt, srv_key, NTM_BODY_MAX);
	CHECK(httpd != NULL);
	CHECK_EQ(ntm_httpd_listen(httpd, "127.0.0.1", 0, &port), 0);
	CHECK_EQ(ntm_httpd_route(httpd, "GET", "/hello", 0, route_hello, NULL), 0);
	client = ntm_httpc_new(base, ca_crt);
	CHECK(client != NULL);
}

TEST(bad_pins)
{
	static const struct {
		const char	*host;
		uint16_t	 port;
		const char	*addr;
		int		 want;
	} t[] = {
		{ "dc9.ntm.test",	443,	"192.0.2.1",	0 },
		{ "dc9.ntm.test",	443,	"2001:db8::1",	0 },	/* replaces */
		{ "dc9.ntm.test",	0,	"192.0.2.1",	NTM_ERR_INVAL },
		{ "dc9.ntm.test",	443,	"192.0.2",	NTM_ERR_INVAL },
		{ "dc9.ntm.test",	443,	"dc9.ntm.test",	NTM_ERR_INVAL },
		{ "dc9.ntm.test",	443,	"",		NTM_ERR_INVAL },
		{ "a..b",		443,	"192.0.2.1",	NTM_ERR_INVAL },
		{ "a:1",		443,	"192.0.2.1",	NTM_ERR_INVAL },
		{ "",			443,	"192.0.2.1",	NTM_ERR_INVAL },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK_EQ(ntm_httpc_resolve(client, t[i].host, t[i].port, t[i].addr), t[i].want);
	CHECK_EQ(ntm_httpc_resolve(NULL, "dc9.ntm.test", 443, "192.0.2.1"), NTM_ERR_INVAL);
	CHECK_EQ(ntm_httpc_resolve(client, NULL, 443, "192.0.2.1"), NTM_ERR_INVAL);
	CHECK_EQ(ntm_httpc_resolve(client, "dc9.ntm.test", 443, NULL), NTM_ERR_INVAL);
}

TEST(pinned)
{
	struct res r;

	/* Pinned to an address where nothing listens: the pin is used. */
	CHECK_EQ(ntm_httpc_resolve(client, "dc9.ntm.test", port, "127.0.0.2"), 0);
	get("dc9.ntm.test", &r);
	CHECK_EQ(r.err, NTM_ERR_CONNECT);
	/* Pinned again, to the server: replaced, and TLS verifies the name. */
	CHECK_EQ(ntm_httpc_resolve(client, "DC9.ntm.test", port, "127.0.0.1"), 0);
	get("dc9.ntm.test", &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(r.status, 200);
	/* Another name pinned to the same server: its certificate does not match. */
	CHECK_EQ(ntm_httpc_resolve(client, "dc8.ntm.test", port, "127.0.0.1"), 0);
	get("dc8.ntm.test", &r);
	CHECK_EQ(r.err, NTM_ERR_TLS);
}

TEST(many_pins)
{
	struct res r;

	/* More pins than kept: the oldest go, the newest still work. */
	for (unsigned i = 0; i < 100; i++)
		CHECK_EQ(ntm_httpc_resolve(client, "x.ntm.test", (uint16_t)(1000 + i),
		    "192.0.2.9"), 0);
	CHECK_EQ(ntm_httpc_resolve(client, "dc9.ntm.test", port, "127.0.0.1"), 0);
	get("dc9.ntm.test", &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(r.status, 200);
}

TEST(cleanup)
{
	const char *files[] = { ca_crt, ca_key, srv_crt, srv_key };

	ntm_httpc_free(client);
	ntm_httpd_free(httpd);
	event_base_free(base);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	CHECK_EQ(rmdir(dir), 0);
	curl_global_cleanup();
}

UNIT_MAIN(T(setup), T(bad_pins), T(pinned), T(many_pins), T(cleanup))
