/*
 * cert.c - server certificates (docs/protocol.md 2.1) and device certificates
 * (2.4), signed by the AS key.
 */
#include <string.h>

#include <sodium.h>

#include "ntm-core.h"

#define CERT_CTX	"ntm-cert-v1"
#define CERT_CTX_LEN	(sizeof(CERT_CTX) - 1)
#define CERT_VERSION	1

static const char *const role_names[] = {
	[NTM_ROLE_AS] = "as",
	[NTM_ROLE_DC] = "dc",
	[NTM_ROLE_RS] = "rs",
	[NTM_ROLE_CS] = "cs",
};

const char *
ntm_role_name(int role)
{
	if (role < NTM_ROLE_AS || role > NTM_ROLE_CS)
		return NULL;
	return role_names[role];
}

int
ntm_role_parse(const char *name)
{
	if (name == NULL)
		return NTM_ERR_INVAL;
	for (int r = NTM_ROLE_AS; r <= NTM_ROLE_CS; r++)
		if (strcmp(role_names[r], name) == 0)
			return r;
	return NTM_ERR_INVAL;
}

/*
 * Writes the signing context and the unsigned part of c. The context goes
 * first so the signature can never be mistaken for one over a token or a
 * request. Returns the length of the whole buffer (context included).
 */
static int
cert_tbs(const struct ntm_cert *c, uint8_t *out, size_t cap)
{
	struct ntm_wr w;
	size_t namelen;
	long n;

	if (c->version != CERT_VERSION || ntm_role_name(c->role) == NULL)
		return NTM_ERR_INVAL;
	namelen = strnlen(c->name, sizeof(c->name));
	if (namelen == 0 || namelen > NTM_NAME_MAX || !ntm_valid_dnsname(c->name))
		return NTM_ERR_INVAL;
	ntm_wr_init(&w, out, cap);
	ntm_wr_bytes(&w, CERT_CTX, CERT_CTX_LEN);
	ntm_wr_u8(&w, c->version);
	ntm_wr_u8(&w, c->role);
	ntm_wr_u8(&w, (uint8_t)namelen);
	ntm_wr_bytes(&w, c->name, namelen);
	ntm_wr_bytes(&w, c->pk, sizeof(c->pk));
	ntm_wr_u64(&w, c->serial);
	ntm_wr_u64(&w, (uint64_t)c->not_before);
	ntm_wr_u64(&w, (uint64_t)c->not_after);
	n = ntm_wr_done(&w);
	return (int)n;
}

int
ntm_cert_encode(const struct ntm_cert *c, uint8_t *out, size_t cap)
{
	uint8_t buf[CERT_CTX_LEN + NTM_CERT_MAX];
	size_t body;
	int n;

	if ((n = cert_tbs(c, buf, sizeof(buf))) < 0)
		return n;
	body = (size_t)n - CERT_CTX_LEN;
	if (out == NULL || cap < body + NTM_SIG_LEN)
		return NTM_ERR_TOOBIG;
	memcpy(out, buf + CERT_CTX_LEN, body);
	memcpy(out + body, c->sig, NTM_SIG_LEN);
	return (int)(body + NTM_SIG_LEN);
}

int
ntm_cert_decode(struct ntm_cert *c, const uint8_t *p, size_t n)
{
	struct ntm_cert t;
	struct ntm_cur cur;
	uint8_t namelen = 0;
	uint64_t nb = 0, na = 0;
	int ret;

	memset(&t, 0, sizeof(t));
	if (n > NTM_CERT_MAX)
		return NTM_ERR_TOOBIG;
	ntm_cur_init(&cur, p, n);
	(void)ntm_cur_u8(&cur, &t.version);
	if (cur.err == 0 && t.version != CERT_VERSION)
		return NTM_ERR_VERSION;
	(void)ntm_cur_u8(&cur, &t.role);
	(void)ntm_cur_u8(&cur, &namelen);
	if (cur.err == 0 && (namelen == 0 || namelen > NTM_NAME_MAX))
		return NTM_ERR_INVAL;
	(void)ntm_cur_bytes(&cur, t.name, namelen);
	(void)ntm_cur_bytes(&cur, t.pk, sizeof(t.pk));
	(void)ntm_cur_u64(&cur, &t.serial);
	(void)ntm_cur_u64(&cur, &nb);
	(void)ntm_cur_u64(&cur, &na);
	(void)ntm_cur_bytes(&cur, t.sig, sizeof(t.sig));
	if ((ret = ntm_cur_end(&cur)) < 0)
		return ret;
	t.name[namelen] = '\0';
	t.not_before = (int64_t)nb;
	t.not_after = (int64_t)na;
	if (ntm_role_name(t.role) == NULL || namelen == 0 ||
	    strlen(t.name) != namelen || !ntm_valid_dnsname(t.name))
		return NTM_ERR_INVAL;
	*c = t;
	return 0;
}

void
ntm_cert_sign(struct ntm_cert *c, const uint8_t as_sk[NTM_SIGN_SK])
{
	uint8_t buf[CERT_CTX_LEN + NTM_CERT_MAX];
	int n;

	if ((n = cert_tbs(c, buf, sizeof(buf))) < 0) {
		/* An invalid certificate gets a signature that never verifies. */
		memset(c->sig, 0, sizeof(c->sig));
		return;
	}
	ntm_sign(c->sig, buf, (size_t)n, as_sk);
}

int
ntm_cert_verify(const struct ntm_cert *c, const uint8_t as_pk[NTM_SIGN_PK],
    int64_t now)
{
	uint8_t buf[CERT_CTX_LEN + NTM_CERT_MAX];
	int n;

	if ((n = cert_tbs(c, buf, sizeof(buf))) < 0)
		return NTM_ERR_CRYPTO;
	if (ntm_sign_verify(c->sig, buf, (size_t)n, as_pk) < 0)
		return NTM_ERR_CRYPTO;
	if (now < c->not_before || now > c->not_after)
		return NTM_ERR_EXPIRED;
	return 0;
}

int
ntm_cert_to_b64(const struct ntm_cert *c, char *out, size_t cap)
{
	uint8_t buf[NTM_CERT_MAX];
	int n;

	if ((n = ntm_cert_encode(c, buf, sizeof(buf))) < 0)
		return n;
	return ntm_b64_encode(out, cap, buf, (size_t)n);
}

int
ntm_cert_from_b64(struct ntm_cert *c, const char *b64)
{
	uint8_t buf[NTM_CERT_MAX];
	int n;

	if (b64 == NULL || strnlen(b64, NTM_B64_LEN(NTM_CERT_MAX) + 1) >
	    NTM_B64_LEN(NTM_CERT_MAX))
		return NTM_ERR_INVAL;
	if ((n = ntm_b64_decode(buf, sizeof(buf), b64)) < 0)
		return NTM_ERR_INVAL;
	return ntm_cert_decode(c, buf, (size_t)n);
}

/* ---- device certificates (docs/protocol.md §2.4) ------------------------ */

#define DCERT_CTX	"ntm-dcert-v1"
#define DCERT_CTX_LEN	(sizeof(DCERT_CTX) - 1)
#define DCERT_VERSION	1
#define DFP_CTX		"ntm-device-fp-v1"

int
ntm_name_in_domain(const char *fqdn, const char *domain)
{
	size_t n, d;

	if (fqdn == NULL || domain == NULL)
		return 0;
	n = strlen(fqdn);
	d = strlen(domain);
	return d > 0 && n > d + 1 && fqdn[n - d - 1] == '.' &&
	    strcmp(fqdn + n - d, domain) == 0;
}

static int
dcert_tbs(const struct ntm_dcert *c, uint8_t *out, size_t cap)
{
	struct ntm_wr w;
	size_t ul, dl, fl;

	if (c->version != DCERT_VERSION)
		return NTM_ERR_INVAL;
	ul = strnlen(c->user, sizeof(c->user));
	dl = strnlen(c->device, sizeof(c->device));
	fl = strnlen(c->fqdn, sizeof(c->fqdn));
	if (ul > NTM_USER_MAX || !ntm_valid_user(c->user) || dl > NTM_DEVICE_MAX ||
	    !ntm_valid_device(c->device) || fl > NTM_NAME_MAX || !ntm_valid_dnsname(c->fqdn))
		return NTM_ERR_INVAL;
	ntm_wr_init(&w, out, cap);
	ntm_wr_bytes(&w, DCERT_CTX, DCERT_CTX_LEN);
	ntm_wr_u8(&w, c->version);
	ntm_wr_u8(&w, NTM_DCERT_TYPE);
	ntm_wr_u8(&w, (uint8_t)ul);
	ntm_wr_bytes(&w, c->user, ul);
	ntm_wr_u8(&w, (uint8_t)dl);
	ntm_wr_bytes(&w, c->device, dl);
	ntm_wr_u8(&w, (uint8_t)fl);
	ntm_wr_bytes(&w, c->fqdn, fl);
	ntm_wr_bytes(&w, c->pk, sizeof(c->pk));
	ntm_wr_u64(&w, c->serial);
	ntm_wr_u64(&w, (uint64_t)c->not_before);
	ntm_wr_u64(&w, (uint64_t)c->not_after);
	return (int)ntm_wr_done(&w);
}

int
ntm_dcert_encode(const struct ntm_dcert *c, uint8_t *out, size_t cap)
{
	uint8_t buf[DCERT_CTX_LEN + NTM_DCERT_MAX];
	size_t body;
	int n;

	if ((n = dcert_tbs(c, buf, sizeof(buf))) < 0)
		return n;
	body = (size_t)n - DCERT_CTX_LEN;
	if (out == NULL || cap < body + NTM_SIG_LEN)
		return NTM_ERR_TOOBIG;
	memcpy(out, buf + DCERT_CTX_LEN, body);
	memcpy(out + body, c->sig, NTM_SIG_LEN);
	return (int)(body + NTM_SIG_LEN);
}

/* A length-prefixed name of at most max bytes into out (NUL-terminated). */
static void
cur_name(struct ntm_cur *cur, char *out, size_t max)
{
	uint8_t len = 0;

	if (ntm_cur_u8(cur, &len) < 0)
		return;
	if (len == 0 || len > max) {
		cur->err = NTM_ERR_INVAL;
		return;
	}
	if (ntm_cur_bytes(cur, out, len) == 0)
		out[len] = '\0';
}

int
ntm_dcert_decode(struct ntm_dcert *c, const uint8_t *p, size_t n)
{
	struct ntm_dcert t;
	struct ntm_cur cur;
	uint8_t type = 0;
	uint64_t nb = 0, na = 0;
	int ret;

	memset(&t, 0, sizeof(t));
	if (n > NTM_DCERT_MAX)
		return NTM_ERR_TOOBIG;
	ntm_cur_init(&cur, p, n);
	(void)ntm_cur_u8(&cur, &t.version);
	if (cur.err == 0 && t.version != DCERT_VERSION)
		return NTM_ERR_VERSION;
	(void)ntm_cur_u8(&cur, &type);
	if (cur.err == 0 && type != NTM_DCERT_TYPE)
		return NTM_ERR_INVAL;		/* a server certificate, say */
	cur_name(&cur, t.user, NTM_USER_MAX);
	cur_name(&cur, t.device, NTM_DEVICE_MAX);
	cur_name(&cur, t.fqdn, NTM_NAME_MAX);
	if (cur.err == NTM_ERR_INVAL)
		return NTM_ERR_INVAL;
	(void)ntm_cur_bytes(&cur, t.pk, sizeof(t.pk));
	(void)ntm_cur_u64(&cur, &t.serial);
	(void)ntm_cur_u64(&cur, &nb);
	(void)ntm_cur_u64(&cur, &na);
	(void)ntm_cur_bytes(&cur, t.sig, sizeof(t.sig));
	if ((ret = ntm_cur_end(&cur)) < 0)
		return ret;
	t.not_before = (int64_t)nb;
	t.not_after = (int64_t)na;
	if (!ntm_valid_user(t.user) || !ntm_valid_device(t.device) ||
	    !ntm_valid_dnsname(t.fqdn) || strlen(t.user) + strlen(t.device) +
	    strlen(t.fqdn) + 3 + sizeof(t.pk) + 24 + NTM_SIG_LEN + 2 != n)
		return NTM_ERR_INVAL;		/* a NUL inside a name */
	*c = t;
	return 0;
}

void
ntm_dcert_sign(struct ntm_dcert *c, const uint8_t as_sk[NTM_SIGN_SK])
{
	uint8_t buf[DCERT_CTX_LEN + NTM_DCERT_MAX];
	int n;

	if ((n = dcert_tbs(c, buf, sizeof(buf))) < 0) {
		memset(c->sig, 0, sizeof(c->sig));
		return;
	}
	ntm_sign(c->sig, buf, (size_t)n, as_sk);
}

int
ntm_dcert_verify(const struct ntm_dcert *c, const uint8_t as_pk[NTM_SIGN_PK], int64_t now)
{
	uint8_t buf[DCERT_CTX_LEN + NTM_DCERT_MAX];
	int n;

	if ((n = dcert_tbs(c, buf, sizeof(buf))) < 0)
		return NTM_ERR_CRYPTO;
	if (ntm_sign_verify(c->sig, buf, (size_t)n, as_pk) < 0)
		return NTM_ERR_CRYPTO;
	if (now < c->not_before || now > c->not_after)
		return NTM_ERR_EXPIRED;
	return 0;
}

int
ntm_dcert_check(const struct ntm_dcert *c, const uint8_t as_pk[NTM_SIGN_PK],
    const char *fqdn, int64_t now)
{
	int e;

	if ((e = ntm_dcert_verify(c, as_pk, now)) < 0)
		return e;
	if (fqdn == NULL || strcmp(c->fqdn, fqdn) != 0)
		return NTM_ERR_IDENTITY;
	return 0;
}

int
ntm_dcert_to_b64(const struct ntm_dcert *c, char *out, size_t cap)
{
	uint8_t buf[NTM_DCERT_MAX];
	int n;

	if ((n = ntm_dcert_encode(c, buf, sizeof(buf))) < 0)
		return n;
	return ntm_b64_encode(out, cap, buf, (size_t)n);
}

int
ntm_dcert_from_b64(struct ntm_dcert *c, const char *b64)
{
	uint8_t buf[NTM_DCERT_MAX];
	int n;

	if (b64 == NULL || strnlen(b64, NTM_B64_LEN(NTM_DCERT_MAX) + 1) >
	    NTM_B64_LEN(NTM_DCERT_MAX))
		return NTM_ERR_INVAL;
	if ((n = ntm_b64_decode(buf, sizeof(buf), b64)) < 0)
		return NTM_ERR_INVAL;
	return ntm_dcert_decode(c, buf, (size_t)n);
}

void
ntm_dkey_fingerprint(char out[NTM_DFP_LEN], const char *fqdn,
    const uint8_t pk[NTM_DEVKEY_LEN])
{
	static const char hx[] = "0123456789abcdef";
	crypto_generichash_state st;
	uint8_t h[16];
	char *o = out;

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)DFP_CTX, sizeof(DFP_CTX) - 1);
	crypto_generichash_update(&st, (const uint8_t *)fqdn, strlen(fqdn) + 1);
	crypto_generichash_update(&st, pk, NTM_DEVKEY_LEN);
	crypto_generichash_final(&st, h, sizeof(h));
	for (size_t i = 0; i < sizeof(h); i++) {
		if (i && i % 2 == 0)
			*o++ = '-';
		*o++ = hx[h[i] >> 4];
		*o++ = hx[h[i] & 15];
	}
	*o = '\0';
}
