/* test_tls.c - demo CA and server certificates from lib/io/tls.c. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ntm.h"
#include "unit.h"

static char dir[] = "/tmp/ntm-test-tls-XXXXXX";
static char ca_crt[128], ca_key[128], srv_crt[128], srv_key[128];

static X509 *
load_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	return x;
}

static int
file_mode(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

TEST(make_ca)
{
	X509 *ca;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(ca_crt, sizeof(ca_crt), "%s/ca.crt", dir);
	snprintf(ca_key, sizeof(ca_key), "%s/ca.key", dir);
	snprintf(srv_crt, sizeof(srv_crt), "%s/srv.crt", dir);
	snprintf(srv_key, sizeof(srv_key), "%s/srv.key", dir);
	CHECK_EQ(ntm_tls_make_ca(ca_crt, ca_key, "ntm test CA", 30), 0);
	CHECK_EQ(file_mode(ca_key), 0600);
	ca = load_cert(ca_crt);
	CHECK(ca != NULL);
	if (ca) {
		CHECK_EQ(X509_check_ca(ca), 1);
		CHECK(X509_get_extension_flags(ca) & EXFLAG_CA);
		CHECK(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
	}
	X509_free(ca);
	/* Bad arguments. */
	CHECK_EQ(ntm_tls_make_ca(ca_crt, ca_key, "", 30), NTM_ERR_INVAL);
	CHECK_EQ(ntm_tls_make_ca(ca_crt, ca_key, "x", 0), NTM_ERR_INVAL);
}

TEST(issue_and_verify)
{
	const char *sans[] = { "localhost", "dc1.ntm.test", "127.0.0.1", "::1", NULL };
	X509 *ca, *srv;
	X509_STORE *store;
	X509_STORE_CTX *ctx;

	CHECK_EQ(ntm_tls_issue(ca_crt, ca_key, srv_crt, srv_key, sans, 10), 0);
	CHECK_EQ(file_mode(srv_key), 0600);
	ca = load_cert(ca_crt);
	srv = load_cert(srv_crt);
	CHECK(ca && srv);
	if (!ca || !srv)
		goto out;
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	X509_STORE_add_cert(store, ca);
	X509_STORE_CTX_init(ctx, store, srv, NULL);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	CHECK_EQ(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);

	CHECK_EQ(X509_check_host(srv, "localhost", 0, 0, NULL), 1);
	CHECK_EQ(X509_check_host(srv, "dc1.ntm.test", 0, 0, NULL), 1);
	CHECK_EQ(X509_check_host(srv, "other.ntm.test", 0, 0, NULL), 0);
	CHECK_EQ(X509_check_ip_asc(srv, "127.0.0.1", 0), 1);
	CHECK_EQ(X509_check_ip_asc(srv, "::1", 0), 1);
	CHECK_EQ(X509_check_ip_asc(srv, "127.0.0.2", 0), 0);
	CHECK_EQ(X509_check_ca(srv), 0);
	CHECK(X509_get_extended_key_usage(srv) & XKU_SSL_SERVER);
out:
	X509_free(ca);
	X509_free(srv);
}

TEST(issue_rejects)
{
	const char *inject[] = { "a.test,DNS:evil.test", NULL };
	const char *empty[] = { NULL };
	const char *ok[] = { "localhost", NULL };

	CHECK_EQ(ntm_tls_issue(ca_crt, ca_key, srv_crt, srv_key, inject, 10), NTM_ERR_INVAL);
	CHECK_EQ(ntm_tls_issue(ca_crt, ca_key, srv_crt, srv_key, empty, 10), NTM_ERR_INVAL);
	/* A key that does not belong to the CA certificate. */
	CHECK_EQ(ntm_tls_issue(ca_crt, srv_key, srv_crt, srv_key, ok, 10), NTM_ERR_TLS);
	CHECK(ntm_tls_issue("/nonexistent/ca.crt", ca_key, srv_crt, srv_key, ok, 10) < 0);
}

TEST(cleanup)
{
	unlink(ca_crt);
	unlink(ca_key);
	unlink(srv_crt);
	unlink(srv_key);
	CHECK_EQ(rmdir(dir), 0);
}

UNIT_MAIN(T(make_ca), T(issue_and_verify), T(issue_rejects), T(cleanup))
