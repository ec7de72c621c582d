/*
 * tls.c - X.509 material for the demo/test CA: a self-signed EC P-256 CA and
 * server certificates issued from it (OpenSSL 3).
 *
 * Private keys are written mode 0600 through ntm_file_write (temp file,
 * fsync, rename), so a reader never sees a half-written or world-readable key.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ntm.h"

#define TLS_SAN_MAX	4096	/* bytes of the "DNS:a,IP:b" list */
#define TLS_DAYS_MAX	(100 * 366)

static void
tls_log_err(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	ntm_log(NTM_LOG_WARN, "tls: %s: %s", what, e ? buf : "failed");
	ERR_clear_error();
}

/* Writes a PEM object produced by fn into path with mode. */
static int
tls_write_pem(const char *path, int mode, int (*fn)(BIO *, const void *), const void *obj)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int ret;

	if (b == NULL)
		return NTM_ERR_NOMEM;
	if (!fn(b, obj)) {
		tls_log_err("PEM encode");
		BIO_free(b);
		return NTM_ERR_TLS;
	}
	n = BIO_get_mem_data(b, &p);
	ret = n > 0 ? ntm_file_write(path, p, (size_t)n, mode) : NTM_ERR_TLS;
	/* The memory BIO may hold a private key: wipe before freeing. */
	if (n > 0)
		ntm_wipe(p, (size_t)n);
	BIO_free(b);
	return ret;
}

static int
pem_key(BIO *b, const void *k)
{
	return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

static int
pem_cert(BIO *b, const void *x)
{
	return PEM_write_bio_X509(b, (X509 *)x);
}

static int
tls_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL) {
		tls_log_err(value);
		return NTM_ERR_TLS;
	}
	if (!X509_add_ext(x, ext, -1)) {
		X509_EXTENSION_free(ext);
		return NTM_ERR_TLS;
	}
	X509_EXTENSION_free(ext);
	return 0;
}

/* A new X509 with a random positive 127-bit serial, validity from an hour
 * ago (clock skew) to days from now, subject CN and key. */
static X509 *
tls_new_cert(EVP_PKEY *key, const char *cn, int days)
{
	X509 *x = X509_new();
	BIGNUM *bn = BN_new();
	X509_NAME *name;

	if (x == NULL || bn == NULL)
		goto err;
	if (!X509_set_version(x, X509_VERSION_3) ||
	    !BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) ||
	    !X509_set_pubkey(x, key))
		goto err;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0))
		goto err;
	BN_free(bn);
	return x;
err:
	tls_log_err("certificate");
	BN_free(bn);
	X509_free(x);
	return NULL;
}

int
ntm_tls_make_ca(const char *cert_path, const char *key_path, const char *cn, int days)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	int ret = NTM_ERR_TLS;

	if (!cert_path || !key_path || !cn || !*cn || strlen(cn) > 64 ||
	    days < 1 || days > TLS_DAYS_MAX)
		return NTM_ERR_INVAL;
	if ((key = EVP_EC_gen("P-256")) == NULL) {
		tls_log_err("EC key generation");
		goto out;
	}
	if ((x = tls_new_cert(key, cn, days)) == NULL)
		goto out;
	if (!X509_set_issuer_name(x, X509_get_subject_name(x)))
		goto out;
	if ((ret = tls_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) ||
	    (ret = tls_add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign")) ||
	    (ret = tls_add_ext(x, x, NID_subject_key_identifier, "hash")))
		goto out;
	ret = NTM_ERR_TLS;
	if (!X509_sign(x, key, EVP_sha256())) {
		tls_log_err("signing");
		goto out;
	}
	if ((ret = tls_write_pem(key_path, 0600, pem_key, key)) ||
	    (ret = tls_write_pem(cert_path, 0644, pem_cert, x)))
		goto out;
	ret = 0;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return ret;
}

static X509 *
tls_read_cert(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	if (x == NULL)
		ntm_log(NTM_LOG_WARN, "tls: cannot read certificate %s", path);
	BIO_free(b);
	ERR_clear_error();
	return x;
}

static EVP_PKEY *
tls_read_key(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

	if (k == NULL)
		ntm_log(NTM_LOG_WARN, "tls: cannot read private key %s", path);
	BIO_free(b);
	ERR_clear_error();
	return k;
}

/* Appends "DNS:name" or "IP:addr" for s to the SAN list. DNS names are
 * checked to hold only LDH characters, dots and a leading "*." so they
 * cannot inject other entries into the comma-separated list. */
static int
tls_san_add(char *list, size_t cap, const char *s)
{
	unsigned char tmp[16];
	const char *kind;
	size_t used = strlen(list);
	int n;

	if (inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1) {
		kind = "IP";
	} else {
		const char *p = s;

		if (!*s || strlen(s) > NTM_NAME_MAX)
			return NTM_ERR_INVAL;
		if (p[0] == '*' && p[1] == '.')
			p += 2;
		for (; *p; p++)
			if (!(*p == '-' || *p == '.' || (*p >= '0' && *p <= '9') ||
			    (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
				return NTM_ERR_INVAL;
		kind = "DNS";
	}
	n = snprintf(list + used, cap - used, "%s%s:%s", used ? "," : "", kind, s);
	if (n < 0 || (size_t)n >= cap - used)
		return NTM_ERR_TOOBIG;
	return 0;
}

int
ntm_tls_issue(const char *ca_cert, const char *ca_key, const char *cert_path,
    const char *key_path, const char *const *sans, int days)
{
	X509 *ca = NULL, *x = NULL;
	EVP_PKEY *cakey = NULL, *key = NULL;
	char *list = NULL;
	int ret = NTM_ERR_INVAL;

	if (!ca_cert || !ca_key || !cert_path || !key_path || !sans || !sans[0] ||
	    days < 1 || days > TLS_DAYS_MAX)
		return NTM_ERR_INVAL;
	if ((list = calloc(1, TLS_SAN_MAX)) == NULL)
		return NTM_ERR_NOMEM;
	for (size_t i = 0; sans[i]; i++)
		if ((ret = tls_san_add(list, TLS_SAN_MAX, sans[i])) != 0)
			goto out;

	ret = NTM_ERR_TLS;
	if ((ca = tls_read_cert(ca_cert)) == NULL || (cakey = tls_read_key(ca_key)) == NULL)
		goto out;
	if (X509_check_private_key(ca, cakey) != 1) {
		ntm_log(NTM_LOG_WARN, "tls: %s does not match %s", ca_key, ca_cert);
		ERR_clear_error();
		goto out;
	}
	if ((key = EVP_EC_gen("P-256")) == NULL) {
		tls_log_err("EC key generation");
		goto out;
	}
	/* The first SAN doubles as the subject CN (64 bytes max in X.509). */
	{
		char cn[65];

		snprintf(cn, sizeof(cn), "%s", sans[0]);
		if ((x = tls_new_cert(key, cn, days)) == NULL)
			goto out;
	}
	if (!X509_set_issuer_name(x, X509_get_subject_name(ca)))
		goto out;
	if ((ret = tls_add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE")) ||
	    (ret = tls_add_ext(x, ca, NID_key_usage, "critical,digitalSignature")) ||
	    (ret = tls_add_ext(x, ca, NID_ext_key_usage, "serverAuth")) ||
	    (ret = tls_add_ext(x, ca, NID_subject_key_identifier, "hash")) ||
	    (ret = tls_add_ext(x, ca, NID_authority_key_identifier, "keyid:always")) ||
	    (ret = tls_add_ext(x, ca, NID_subject_alt_name, list)))
		goto out;
	ret = NTM_ERR_TLS;
	if (!X509_sign(x, cakey, EVP_sha256())) {
		tls_log_err("signing");
		goto out;
	}
	if ((ret = tls_write_pem(key_path, 0600, pem_key, key)) ||
	    (ret = tls_write_pem(cert_path, 0644, pem_cert, x)))
		goto out;
	ret = 0;
out:
	free(list);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
	return ret;
}
