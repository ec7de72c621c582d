/*
 * token.c - client authentication tokens signed by the AS key
 * (docs/protocol.md 2.3); the name rules they rely on are names.c's.
 */
#include <string.h>

#include <sodium.h>

#include "ntm-core.h"

#define TOKEN_CTX	"ntm-token-v2"
#define TOKEN_CTX_LEN	(sizeof(TOKEN_CTX) - 1)
#define TOKEN_VERSION	2

/* A token whose issue time is up to this far in the future is still accepted:
 * the AS's clock and ours may differ a little. */
#define TOKEN_SKEW	NTM_SIG_WINDOW

/* The roles a token may be for: the DC of the login, or one CS. */
static int
aud_role_ok(uint8_t role)
{
	return role == NTM_ROLE_DC || role == NTM_ROLE_CS;
}

static int
token_tbs(const struct ntm_token *t, uint8_t *out, size_t cap)
{
	struct ntm_wr w;
	size_t ul, dl, nl, al;

	if (t->version != TOKEN_VERSION)
		return NTM_ERR_INVAL;
	ul = strnlen(t->user, sizeof(t->user));
	dl = strnlen(t->device, sizeof(t->device));
	nl = strnlen(t->dc, sizeof(t->dc));
	al = strnlen(t->aud, sizeof(t->aud));
	if (ul >= sizeof(t->user) || dl >= sizeof(t->device) || nl >= sizeof(t->dc) ||
	    al >= sizeof(t->aud))
		return NTM_ERR_INVAL;
	if (!ntm_valid_user(t->user) || !ntm_valid_device(t->device) ||
	    !ntm_valid_dnsname(t->dc) || !aud_role_ok(t->aud_role) ||
	    !ntm_valid_dnsname(t->aud))
		return NTM_ERR_INVAL;
	ntm_wr_init(&w, out, cap);
	ntm_wr_bytes(&w, TOKEN_CTX, TOKEN_CTX_LEN);
	ntm_wr_u8(&w, t->version);
	ntm_wr_u8(&w, (uint8_t)ul);
	ntm_wr_bytes(&w, t->user, ul);
	ntm_wr_u8(&w, (uint8_t)dl);
	ntm_wr_bytes(&w, t->device, dl);
	ntm_wr_u8(&w, (uint8_t)nl);
	ntm_wr_bytes(&w, t->dc, nl);
	ntm_wr_u8(&w, t->aud_role);
	ntm_wr_u8(&w, (uint8_t)al);
	ntm_wr_bytes(&w, t->aud, al);
	ntm_wr_bytes(&w, t->id, sizeof(t->id));
	ntm_wr_u64(&w, (uint64_t)t->issued);
	ntm_wr_u64(&w, (uint64_t)t->expires);
	return (int)ntm_wr_done(&w);
}

int
ntm_token_encode(const struct ntm_token *t, uint8_t *out, size_t cap)
{
	uint8_t buf[TOKEN_CTX_LEN + NTM_TOKEN_MAX];
	size_t body;
	int n;

	if ((n = token_tbs(t, buf, sizeof(buf))) < 0)
		return n;
	body = (size_t)n - TOKEN_CTX_LEN;
	if (out == NULL || cap < body + NTM_SIG_LEN)
		return NTM_ERR_TOOBIG;
	memcpy(out, buf + TOKEN_CTX_LEN, body);
	memcpy(out + body, t->sig, NTM_SIG_LEN);
	return (int)(body + NTM_SIG_LEN);
}

/* Reads a length-prefixed string of 1..max bytes into out (max + 1 bytes). */
static void
cur_str(struct ntm_cur *c, char *out, size_t max)
{
	uint8_t len = 0;

	if (ntm_cur_u8(c, &len) < 0)
		return;
	if (len == 0 || len > max) {
		/* Reported as malformed by the caller's checks below. */
		out[0] = '\0';
		c->err = NTM_ERR_INVAL;
		return;
	}
	if (ntm_cur_bytes(c, out, len) < 0)
		return;
	out[len] = '\0';
	if (strlen(out) != len)		/* embedded NUL */
		c->err = NTM_ERR_INVAL;
}

int
ntm_token_decode(struct ntm_token *t, const uint8_t *p, size_t n)
{
	struct ntm_token tmp;
	struct ntm_cur cur;
	uint64_t iss = 0, exp = 0;
	int ret;

	memset(&tmp, 0, sizeof(tmp));
	if (n > NTM_TOKEN_MAX)
		return NTM_ERR_TOOBIG;
	ntm_cur_init(&cur, p, n);
	(void)ntm_cur_u8(&cur, &tmp.version);
	if (cur.err == 0 && tmp.version != TOKEN_VERSION)
		return NTM_ERR_VERSION;
	cur_str(&cur, tmp.user, NTM_USER_MAX);
	cur_str(&cur, tmp.device, NTM_DEVICE_MAX);
	cur_str(&cur, tmp.dc, NTM_NAME_MAX);
	(void)ntm_cur_u8(&cur, &tmp.aud_role);
	cur_str(&cur, tmp.aud, NTM_NAME_MAX);
	(void)ntm_cur_bytes(&cur, tmp.id, sizeof(tmp.id));
	(void)ntm_cur_u64(&cur, &iss);
	(void)ntm_cur_u64(&cur, &exp);
	(void)ntm_cur_bytes(&cur, tmp.sig, sizeof(tmp.sig));
	if ((ret = ntm_cur_end(&cur)) < 0)
		return ret;
	tmp.issued = (int64_t)iss;
	tmp.expires = (int64_t)exp;
	if (!ntm_valid_user(tmp.user) || !ntm_valid_device(tmp.device) ||
	    !ntm_valid_dnsname(tmp.dc) || !aud_role_ok(tmp.aud_role) ||
	    !ntm_valid_dnsname(tmp.aud))
		return NTM_ERR_INVAL;
	*t = tmp;
	return 0;
}

void
ntm_token_sign(struct ntm_token *t, const uint8_t as_sk[NTM_SIGN_SK])
{
	uint8_t buf[TOKEN_CTX_LEN + NTM_TOKEN_MAX];
	int n;

	if ((n = token_tbs(t, buf, sizeof(buf))) < 0) {
		memset(t->sig, 0, sizeof(t->sig));
		return;
	}
	ntm_sign(t->sig, buf, (size_t)n, as_sk);
}

/* Valid from issued - TOKEN_SKEW through expires, inclusive. */
int
ntm_token_verify(const struct ntm_token *t, const uint8_t as_pk[NTM_SIGN_PK],
    int64_t now)
{
	uint8_t buf[TOKEN_CTX_LEN + NTM_TOKEN_MAX];
	int n;

	if ((n = token_tbs(t, buf, sizeof(buf))) < 0)
		return NTM_ERR_CRYPTO;
	if (ntm_sign_verify(t->sig, buf, (size_t)n, as_pk) < 0)
		return NTM_ERR_CRYPTO;
	if (now > t->expires)
		return NTM_ERR_EXPIRED;
	if (t->issued > now && (uint64_t)t->issued - (uint64_t)now > TOKEN_SKEW)
		return NTM_ERR_EXPIRED;
	return 0;
}

int
ntm_token_is_for(const struct ntm_token *t, uint8_t role, const char *name)
{
	return t->aud_role == role && name != NULL && strcmp(t->aud, name) == 0;
}

int
ntm_token_to_b64(const struct ntm_token *t, char *out, size_t cap)
{
	uint8_t buf[NTM_TOKEN_MAX];
	int n;

	if ((n = ntm_token_encode(t, buf, sizeof(buf))) < 0)
		return n;
	return ntm_b64_encode(out, cap, buf, (size_t)n);
}

int
ntm_token_from_b64(struct ntm_token *t, const char *b64)
{
	uint8_t buf[NTM_TOKEN_MAX];
	int n;

	if (b64 == NULL || strnlen(b64, NTM_B64_LEN(NTM_TOKEN_MAX) + 1) >
	    NTM_B64_LEN(NTM_TOKEN_MAX))
		return NTM_ERR_INVAL;
	if ((n = ntm_b64_decode(buf, sizeof(buf), b64)) < 0)
		return NTM_ERR_INVAL;
	return ntm_token_decode(t, buf, (size_t)n);
}

int
ntm_token_seal(char *out, size_t cap, const char *b64, const uint8_t pk[NTM_DEVKEY_LEN])
{
	uint8_t raw[NTM_TOKEN_MAX], box[NTM_TOKEN_SEALED_MAX];
	int n, ret;

	if ((n = ntm_b64_decode(raw, sizeof(raw), b64)) < 0)
		return NTM_ERR_INVAL;
	if (crypto_box_seal(box, raw, (unsigned long long)n, pk) != 0)
		ret = NTM_ERR_CRYPTO;
	else
		ret = ntm_b64_encode(out, cap, box, (size_t)n + crypto_box_SEALBYTES);
	sodium_memzero(raw, sizeof(raw));
	return ret;
}

int
ntm_token_unseal(char *out, size_t cap, const char *sealed, const uint8_t pk[NTM_DEVKEY_LEN],
    const uint8_t sk[NTM_DEVKEY_LEN])
{
	uint8_t raw[NTM_TOKEN_MAX], box[NTM_TOKEN_SEALED_MAX];
	int n, ret;

	if ((n = ntm_b64_decode(box, sizeof(box), sealed)) < 0 || (size_t)n <= crypto_box_SEALBYTES)
		return NTM_ERR_INVAL;
	if (crypto_box_seal_open(raw, box, (unsigned long long)n, pk, sk) != 0)
		return NTM_ERR_CRYPTO;
	ret = ntm_b64_encode(out, cap, raw, (size_t)n - crypto_box_SEALBYTES);
	sodium_memzero(raw, sizeof(raw));
	return ret;
}
