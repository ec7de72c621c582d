/*
 * fuzz_sighdr.c - libFuzzer harness for the headers of signed
 * server-to-server requests (docs/protocol.md §2.2) as a server reads them
 * (lib/core/sighdr.c, then the signature over the request as
 * lib/io/httpd.c checks it).
 *
 * Input: byte 0 says which headers are present (bit 0 NTM-Date, 1
 * NTM-Nonce, 2 NTM-Cert, 3 NTM-Signature); byte 1 moves the receiver's
 * clock by that many weeks (signed) from NOW; then LF-separated lines: date,
 * nonce, certificate, signature, method, path, and the body (the rest).
 * The AS and DC keys come from fixed seeds (0x01 x 32, 0x02 x 32); the seed
 * corpus holds requests signed by that DC under a certificate of that AS
 * (dc1.ntm.test, serial 7, valid 1700000000..1800000000), made with
 * FUZZ_SIGHDR_SEEDS=DIR set (the harness writes them and exits).
 *
 * Checked: a missing header is refused as missing; accepted headers carry a
 * certificate the AS key signed, valid at the receiver's time, that encodes
 * back to the header, and the date and signature as sent; a refusal says
 * why; a signature that verifies over the request is the one the DC's key
 * makes for it (nothing else is accepted: no certificate but the AS's, no
 * signature but the DC's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ntm.h"
#include "sighdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW	1767225600
#define WEEK	(7 * 86400)

static uint8_t as_pk[NTM_SIGN_PK], as_sk[NTM_SIGN_SK];
static uint8_t dc_pk[NTM_SIGN_PK], dc_sk[NTM_SIGN_SK];

static void seeds(const char *dir);

static void
keys(void)
{
	uint8_t seed[32];

	if (ntm_crypto_init() < 0)
		abort();
	memset(seed, 1, sizeof(seed));
	crypto_sign_seed_keypair(as_pk, as_sk, seed);
	memset(seed, 2, sizeof(seed));
	crypto_sign_seed_keypair(dc_pk, dc_sk, seed);
	if (getenv("FUZZ_SIGHDR_SEEDS")) {
		seeds(getenv("FUZZ_SIGHDR_SEEDS"));
		exit(0);
	}
}

/* The next LF-terminated field of p (n bytes) at *off, NUL-terminated in a
 * new string; the rest when last. */
static char *
field(const uint8_t *p, size_t n, size_t *off, int last, size_t *len)
{
	const uint8_t *lf = last ? NULL : memchr(p + *off, '\n', n - *off);
	size_t end = lf ? (size_t)(lf - p) : n;
	char *s = malloc(end - *off + 1);

	if (s == NULL)
		abort();
	memcpy(s, p + *off, end - *off);
	s[end - *off] = '\0';
	if (len)
		*len = end - *off;
	*off = lf ? end + 1 : n;
	return s;
}

static void
check(const struct ntm_sighdr *hd, int64_t now, const char *method, const char *path,
    const char *body, size_t blen)
{
	struct ntm_cert c;
	uint8_t sig[NTM_SIG_LEN], sent[NTM_SIG_LEN], mine[NTM_SIG_LEN];
	char why[NTM_NAME_MAX + 128], b64[NTM_B64_LEN(NTM_CERT_MAX)], mine_b64[NTM_SIG_B64];
	int64_t date;
	int rc;

	why[0] = '\0';
	rc = ntm_sighdr_parse(hd, as_pk, now, &c, &date, sig, why, sizeof(why));
	if (!hd->date || !hd->nonce || !hd->cert || !hd->sig) {
		if (rc != NTM_ERR_UNAUTH || strncmp(why, "missing ", 8) != 0)
			abort();
		return;
	}
	if (rc != 0) {
		if ((rc != NTM_ERR_UNAUTH && rc != NTM_ERR_CRYPTO && rc != NTM_ERR_EXPIRED) ||
		    why[0] == '\0')
			abort();
		return;
	}
	/* Accepted: the AS's certificate, valid now, as sent. */
	if (ntm_cert_verify(&c, as_pk, now) != 0 || memcmp(c.pk, dc_pk, sizeof(dc_pk)) != 0 ||
	    ntm_cert_to_b64(&c, b64, sizeof(b64)) < 0 || strcmp(b64, hd->cert) != 0 ||
	    ntm_b64_decode_exact(sent, sizeof(sent), hd->sig) != NTM_SIG_LEN ||
	    memcmp(sent, sig, sizeof(sig)) != 0 || strtoll(hd->date, NULL, 10) != date)
		abort();
	/* The signature over the request, as httpd.c checks it next. */
	if (ntm_req_verify(hd->sig, c.pk, method, path, date, hd->nonce, body, blen) != 0)
		return;
	ntm_req_sign(mine_b64, dc_sk, method, path, date, hd->nonce, body, blen);
	if (ntm_b64_decode_exact(mine, sizeof(mine), mine_b64) != NTM_SIG_LEN ||
	    memcmp(mine, sig, sizeof(sig)) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char *f[6], *body;
	size_t off = 2, blen;
	struct ntm_sighdr hd;
	int64_t now;

	if (!ready) {
		keys();
		ready = 1;
	}
	if (size < 2)
		return 0;
	for (int i = 0; i < 6; i++)
		f[i] = field(data, size, &off, 0, NULL);
	body = field(data, size, &off, 1, &blen);
	hd.date = data[0] & 1 ? f[0] : NULL;
	hd.nonce = data[0] & 2 ? f[1] : NULL;
	hd.cert = data[0] & 4 ? f[2] : NULL;
	hd.sig = data[0] & 8 ? f[3] : NULL;
	now = NOW + (int64_t)(int8_t)data[1] * WEEK;
	check(&hd, now, f[4], f[5], body, blen);
	for (int i = 0; i < 6; i++)
		free(f[i]);
	free(body);
	return 0;
}

/* ---- the seed corpus ---------------------------------------------------- */

static void
seed(const char *dir, const char *name, uint8_t present, int8_t weeks, const char *cert,
    int64_t date, const char *nonce, const char *method, const char *path,
    const char *body)
{
	char path_b[512], sig[NTM_SIG_B64];
	FILE *fp;

	ntm_req_sign(sig, dc_sk, method, path, date, nonce, body, strlen(body));
	snprintf(path_b, sizeof(path_b), "%s/%s", dir, name);
	if ((fp = fopen(path_b, "w")) == NULL)
		abort();
	fprintf(fp, "%c%c%lld\n%s\n%s\n%s\n%s\n%s\n%s", present, (uint8_t)weeks,
	    (long long)date, nonce, cert, sig, method, path, body);
	fclose(fp);
}

static void
seeds(const char *dir)
{
	struct ntm_cert c;
	char b64[NTM_B64_LEN(NTM_CERT_MAX)];
	const char *n1 = "AAAAAAAAAAAAAAAAAAAAAA", *n2 = "q80SYlm-7gKcQZ_zRvAjUw";

	memset(&c, 0, sizeof(c));
	c.version = 1;
	c.role = NTM_ROLE_DC;
	snprintf(c.name, sizeof(c.name), "dc1.ntm.test");
	memcpy(c.pk, dc_pk, sizeof(c.pk));
	c.serial = 7;
	c.not_before = 1700000000;
	c.not_after = 1800000000;
	ntm_cert_sign(&c, as_sk);
	if (ntm_cert_to_b64(&c, b64, sizeof(b64)) < 0)
		abort();
	seed(dir, "locate", 15, 0, b64, NOW, n1, "POST", "/v1/dc/locate",
	    "{\"fqdn\":\"carol.dc2.ntm.test\",\"vip4\":\"100.64.2.2\"}");
	seed(dir, "status", 15, 0, b64, NOW, n2, "GET", "/v1/status", "");
	seed(dir, "moved", 15, 1, b64, NOW + 30, n2, "POST", "/v1/dc/moved",
	    "{\"version\":1,\"fqdn\":\"alice.dc1.ntm.test\"}");
	seed(dir, "expired", 15, 60, b64, NOW, n1, "GET", "/v1/status", "");
	seed(dir, "no_nonce", 13, 0, b64, NOW, n1, "GET", "/v1/status", "");
}
