/*
 * msg.c - the JSON messages of docs/protocol.md, each a table of fields
 * read and written by one decoder and one encoder (msg.h).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "msg.h"
#include "ntm-rt.h"

#define MSTR_DEFAULT_MAX	1024

static void
merr(struct ntm_jerr *e, const char *code, const char *field, const char *msg)
{
	if (e == NULL)
		return;
	snprintf(e->code, sizeof(e->code), "%s", code);
	snprintf(e->field, sizeof(e->field), "%s", field);
	snprintf(e->message, sizeof(e->message), "field '%s': %s", field, msg);
}

static int
is_hex(const char *s, size_t n, int lower)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		    (!lower && s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return i == n;
}

/* Checks the format of f's value (s or v); 0, or -1 with *err filled. */
static int
check_fmt(const struct ntm_mfield *f, const char *s, int64_t v, struct ntm_jerr *err)
{
	char msg[160];
	uint8_t buf[128];
	struct sockaddr_storage ss;
	socklen_t len;
	const char *dot;
	int ok = 1;

	msg[0] = '\0';
	switch ((enum ntm_mfmt)f->fmt) {
	case NTM_MF_ANY:
		break;
	case NTM_MF_NONEMPTY:
		if ((ok = *s != '\0') == 0)
			snprintf(msg, sizeof(msg), "empty");
		break;
	case NTM_MF_USER:
		if ((ok = ntm_valid_user(s)) == 0)
			snprintf(msg, sizeof(msg), "invalid name (lowercase letters, digits "
			    "and '-', starting with a letter, not ending with '-', at most %d)",
			    NTM_USER_MAX);
		break;
	case NTM_MF_DEVICE:
		if ((ok = ntm_valid_device(s)) == 0)
			snprintf(msg, sizeof(msg), "invalid device id (letters, digits, '_' "
			    "and '-', 1 to %d)", NTM_DEVICE_MAX);
		break;
	case NTM_MF_FQDN:
		dot = strchr(s, '.');
		if ((ok = ntm_valid_dnsname(s) && dot && dot[1] != '\0') == 0)
			snprintf(msg, sizeof(msg), "not a client FQDN (name.domain)");
		break;
	case NTM_MF_HTTPS:
		if ((ok = ntm_valid_push_url(s)) == 0)
			snprintf(msg, sizeof(msg), "not an https:// URL with a host (printable "
			    "ASCII, no credentials, at most %d bytes)", NTM_PUSH_URL_MAX);
		break;
	case NTM_MF_HEX:
	case NTM_MF_LHEX:
		if ((ok = is_hex(s, f->arg, f->fmt == NTM_MF_LHEX)) == 0)
			snprintf(msg, sizeof(msg), "expected %d %shex digits", f->arg,
			    f->fmt == NTM_MF_LHEX ? "lowercase " : "");
		break;
	case NTM_MF_B64:
		if ((ok = f->arg <= sizeof(buf) &&
		    ntm_b64_decode_exact(buf, f->arg, s) >= 0) == 0)
			snprintf(msg, sizeof(msg), "expected base64url of %d bytes", f->arg);
		ntm_wipe(buf, sizeof(buf));
		break;
	case NTM_MF_ENDPOINT:
		if ((ok = ntm_sa_parse(&ss, &len, s) >= 0) == 0)
			snprintf(msg, sizeof(msg), "not ip:port");
		break;
	case NTM_MF_KIND:
		if ((ok = strcmp(s, "key") == 0 || strcmp(s, "data") == 0) == 0)
			snprintf(msg, sizeof(msg), "neither \"key\" nor \"data\"");
		break;
	case NTM_MF_SIZE:
		if ((ok = v >= 0 && v <= (INT64_C(1) << 40)) == 0)
			snprintf(msg, sizeof(msg), "%lld is outside 0..2^40", (long long)v);
		break;
	case NTM_MF_DNSNAME:
		if ((ok = ntm_valid_dnsname(s)) == 0)
			snprintf(msg, sizeof(msg), "not a DNS name");
		break;
	default:
		ok = 0;
		snprintf(msg, sizeof(msg), "no such format");
		break;
	}
	if (ok)
		return 0;
	merr(err, "bad_field", f->name, msg);
	return -1;
}

int
ntm_jmsg_check(const struct ntm_jmsg *m, const void *in, struct ntm_jerr *err)
{
	const uint8_t *base = in;
	uint32_t has;
	size_t i;

	memcpy(&has, base, sizeof(has));
	for (i = 0; i < m->nfields; i++) {
		const struct ntm_mfield *f = &m->fields[i];
		const char *s;
		int64_t v;

		if (f->type == NTM_J_STR) {
			memcpy(&s, base + f->off, sizeof(s));
			if (s != NULL && check_fmt(f, s, 0, err) < 0)
				return NTM_ERR_JSON;
		} else if (f->type == NTM_J_INT && (f->required == NTM_MREQ ||
		    (has & (UINT32_C(1) << i)))) {
			memcpy(&v, base + f->off, sizeof(v));
			if (check_fmt(f, NULL, v, err) < 0)
				return NTM_ERR_JSON;
		}
	}
	return 0;
}

int
ntm_jmsg_has(const struct ntm_jmsg *m, const void *in, const char *field)
{
	uint32_t has;

	memcpy(&has, in, sizeof(has));
	for (size_t i = 0; i < m->nfields; i++)
		if (strcmp(m->fields[i].name, field) == 0)
			return (has >> i) & 1;
	return 0;
}

void
ntm_jmsg_set(const struct ntm_jmsg *m, void *in, const char *field, int on)
{
	uint32_t has;

	memcpy(&has, in, sizeof(has));
	for (size_t i = 0; i < m->nfields; i++)
		if (strcmp(m->fields[i].name, field) == 0)
			has = on ? has | (UINT32_C(1) << i) : has & ~(UINT32_C(1) << i);
	memcpy(in, &has, sizeof(has));
}

/* The bytes of m's struct that its fields span. */
static size_t
msg_size(const struct ntm_jmsg *m)
{
	size_t i, size = sizeof(uint32_t);

	for (i = 0; i < m->nfields; i++) {
		size_t end = m->fields[i].off + (m->fields[i].type == NTM_J_INT ?
		    sizeof(int64_t) : m->fields[i].type == NTM_J_BOOL ? sizeof(int) :
		    sizeof(void *));

		if (end > size)
			size = end;
	}
	return size;
}

int
ntm_jmsg_unpack(const struct ntm_jmsg *m, json_t *obj, void *out, struct ntm_jerr *err)
{
	struct ntm_jfield jf[NTM_MSG_FIELDS_MAX] = { { 0 } };
	_Alignas(max_align_t) uint8_t scratch[NTM_MSG_STRUCT_MAX];	/* holds pointers */
	size_t i, size = msg_size(m);
	uint32_t has = 0;
	json_t *o = obj, *v;
	int e;

	if (m->nfields > NTM_MSG_FIELDS_MAX || size > sizeof(scratch))
		return NTM_ERR_INVAL;
	/* Unpack into a scratch copy, so a failure leaves out zeroed. */
	memset(scratch, 0, sizeof(scratch));
	for (i = 0; i < m->nfields; i++) {
		jf[i].name = m->fields[i].name;
		jf[i].type = m->fields[i].type;
		jf[i].required = m->fields[i].required == NTM_MREQ;
		jf[i].out = scratch + m->fields[i].off;
		jf[i].maxlen = m->fields[i].maxlen;
	}
	/* A null where null is allowed: unpacked as absent, from a shallow copy
	 * whose values are still obj's. */
	for (i = 0; i < m->nfields; i++)
		if (m->fields[i].required == NTM_MREQ_NULL && json_is_object(obj) &&
		    json_is_null(json_object_get(obj, m->fields[i].name))) {
			if (o == obj && (o = json_copy(obj)) == NULL)
				return NTM_ERR_NOMEM;
			json_object_del(o, m->fields[i].name);
		}
	e = ntm_json_unpack(o, jf, m->nfields, err);
	for (i = 0; e == 0 && i < m->nfields; i++) {
		v = json_object_get(obj, m->fields[i].name);
		if (v == NULL && m->fields[i].required == NTM_MREQ_NULL) {
			merr(err, "missing_field", m->fields[i].name, "missing");
			e = NTM_ERR_JSON;
		} else if (v != NULL && !json_is_null(v))
			has |= UINT32_C(1) << i;
	}
	if (o != obj)
		json_decref(o);
	if (e < 0) {
		memset(out, 0, size);
		return e;
	}
	memcpy(scratch, &has, sizeof(has));
	memcpy(out, scratch, size);
	return 0;
}

int
ntm_jmsg_decode(const struct ntm_jmsg *m, json_t *obj, void *out, struct ntm_jerr *err)
{
	int e;

	if ((e = ntm_jmsg_unpack(m, obj, out, err)) < 0)
		return e;
	if ((e = ntm_jmsg_check(m, out, err)) < 0) {
		memset(out, 0, msg_size(m));
		return e;
	}
	return 0;
}

int
ntm_jmsg_encode(const struct ntm_jmsg *m, const void *in, json_t **out, struct ntm_jerr *err)
{
	const uint8_t *base = in;
	uint32_t has;
	json_t *o, *v;
	size_t i;

	*out = NULL;
	if (err != NULL)
		memset(err, 0, sizeof(*err));
	memcpy(&has, base, sizeof(has));
	if ((o = json_object()) == NULL)
		return NTM_ERR_NOMEM;
	for (i = 0; i < m->nfields; i++) {
		const struct ntm_mfield *f = &m->fields[i];
		const void *p = base + f->off;
		int present = f->required == NTM_MREQ || (has & (UINT32_C(1) << i));
		const char *s;
		int64_t iv;
		int b;
		json_t *j;

		v = NULL;
		switch (f->type) {
		case NTM_J_STR:
			memcpy(&s, p, sizeof(s));
			if (s == NULL) {
				if (!f->required)
					continue;
				merr(err, "missing_field", f->name, "missing");
				goto bad;
			}
			if (strlen(s) > (f->maxlen ? f->maxlen : MSTR_DEFAULT_MAX)) {
				char msg[64];

				snprintf(msg, sizeof(msg), "longer than %u bytes",
				    f->maxlen ? f->maxlen : MSTR_DEFAULT_MAX);
				merr(err, "bad_field", f->name, msg);
				goto bad;
			}
			if (check_fmt(f, s, 0, err) < 0)
				goto bad;
			v = json_string(s);
			break;
		case NTM_J_INT:
			if (!present && f->required == NTM_MREQ_NULL) {
				v = json_null();
				break;
			}
			if (!present)
				continue;
			memcpy(&iv, p, sizeof(iv));
			if (check_fmt(f, NULL, iv, err) < 0)
				goto bad;
			v = json_integer((json_int_t)iv);
			break;
		case NTM_J_BOOL:
			if (!present)
				continue;
			memcpy(&b, p, sizeof(b));
			v = json_boolean(b);
			break;
		case NTM_J_OBJ:
		case NTM_J_ARR:
			memcpy(&j, p, sizeof(j));
			if (j == NULL) {
				if (!f->required)
					continue;
				merr(err, "missing_field", f->name, "missing");
				goto bad;
			}
			if (f->type == NTM_J_OBJ ? !json_is_object(j) : !json_is_array(j)) {
				merr(err, "bad_field", f->name, f->type == NTM_J_OBJ ?
				    "expected object" : "expected array");
				goto bad;
			}
			v = json_incref(j);
			break;
		}
		if (v == NULL || json_object_set_new(o, f->name, v) < 0) {
			json_decref(o);
			return NTM_ERR_NOMEM;
		}
	}
	*out = o;
	return 0;
bad:
	json_decref(o);
	return NTM_ERR_JSON;
}

/* ---- the messages ------------------------------------------------------------ */

#define S(T, f, req, max, fmt, arg) \
	{ #f, NTM_J_STR, req, fmt, max, arg, offsetof(T, f) }
#define I(T, f, req, fmt) \
	{ #f, NTM_J_INT, req, fmt, 0, 0, offsetof(T, f) }
#define B(T, f, req) \
	{ #f, NTM_J_BOOL, req, NTM_MF_ANY, 0, 0, offsetof(T, f) }
#define O(T, f, req) \
	{ #f, NTM_J_OBJ, req, NTM_MF_ANY, 0, 0, offsetof(T, f) }
#define A(T, f, req) \
	{ #f, NTM_J_ARR, req, NTM_MF_ANY, 0, 0, offsetof(T, f) }
#define MSG(NAME, TITLE, TABLE) \
	const struct ntm_jmsg NAME = { TITLE, TABLE, sizeof(TABLE) / sizeof(TABLE[0]) }

#define T struct ntm_m_login
static const struct ntm_mfield login_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, user, 1, NTM_USER_MAX, NTM_MF_USER, 0),
	S(T, password, 0, NTM_PASSWORD_MAX, NTM_MF_NONEMPTY, 0),
	S(T, device, 1, NTM_DEVICE_MAX, NTM_MF_DEVICE, 0),
	S(T, client_key, 1, NTM_B64_LEN(NTM_KX_PK), NTM_MF_B64, NTM_KX_PK),
	S(T, push, 0, NTM_PUSH_URL_MAX, NTM_MF_HTTPS, 0),
	S(T, exchange_key, 0, NTM_B64_LEN(NTM_KX_PK), NTM_MF_B64, NTM_KX_PK),
	S(T, device_key, 0, NTM_B64_LEN(NTM_DEVKEY_LEN), NTM_MF_B64, NTM_DEVKEY_LEN),
	S(T, sealed, 0, NTM_B64_LEN(NTM_LOGIN_SEALED_MAX), NTM_MF_NONEMPTY, 0),
	S(T, prior_token, 0, 4096, NTM_MF_NONEMPTY, 0),
};
MSG(ntm_msg_login, "POST /v1/login", login_f);
#undef T

#define T struct ntm_m_login_ok
static const struct ntm_mfield login_ok_f[] = {
	S(T, user, 1, NTM_USER_MAX, NTM_MF_USER, 0),
	S(T, fqdn, 1, NTM_NAME_MAX, NTM_MF_DNSNAME, 0),
	S(T, vip4, 1, 64, NTM_MF_ANY, 0),
	S(T, vip6, 1, 64, NTM_MF_ANY, 0),
	S(T, domain, 1, NTM_NAME_MAX, NTM_MF_DNSNAME, 0),
	S(T, token, 1, 4096, NTM_MF_NONEMPTY, 0),
	I(T, token_expires, 1, NTM_MF_ANY),
	S(T, session_id, 1, 64, NTM_MF_HEX, 32),
	S(T, dc_key, 1, 64, NTM_MF_B64, NTM_KX_PK),
	S(T, device_cert, 0, NTM_B64_LEN(NTM_DCERT_MAX), NTM_MF_NONEMPTY, 0),
	S(T, as_key, 0, NTM_B64_LEN(NTM_SIGN_PK), NTM_MF_B64, NTM_SIGN_PK),
	A(T, cs_tokens, 0),
};
MSG(ntm_msg_login_ok, "200 to POST /v1/login", login_ok_f);
#undef T

#define T struct ntm_m_as_login
static const struct ntm_mfield as_login_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, user, 1, NTM_USER_MAX, NTM_MF_USER, 0),
	S(T, password, 0, NTM_PASSWORD_MAX, NTM_MF_NONEMPTY, 0),
	S(T, device, 1, NTM_DEVICE_MAX, NTM_MF_DEVICE, 0),
	S(T, sealed, 0, NTM_B64_LEN(NTM_LOGIN_SEALED_MAX), NTM_MF_NONEMPTY, 0),
	B(T, known, 0),
};
MSG(ntm_msg_as_login, "POST /v1/as/login", as_login_f);
#undef T

#define T struct ntm_m_as_login_ok
static const struct ntm_mfield as_login_ok_f[] = {
	S(T, user, 1, NTM_USER_MAX, NTM_MF_USER, 0),
	S(T, token, 1, 2 * NTM_TOKEN_MAX, NTM_MF_NONEMPTY, 0),
	I(T, expires, 1, NTM_MF_ANY),
	A(T, cs_tokens, 0),
};
MSG(ntm_msg_as_login_ok, "200 to POST /v1/as/login", as_login_ok_f);
#undef T

#define T struct ntm_m_as_logout
static const struct ntm_mfield as_logout_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, token_id, 1, 2 * NTM_TOKEN_ID, NTM_MF_HEX, 2 * NTM_TOKEN_ID),
};
MSG(ntm_msg_as_logout, "POST /v1/as/logout", as_logout_f);
#undef T

#define T struct ntm_m_temporal
static const struct ntm_mfield temporal_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, from, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, to, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, key_id, 1, 2 * NTM_XKEY_ID, NTM_MF_LHEX, 2 * NTM_XKEY_ID),
	S(T, temporal_key, 1, NTM_B64_LEN(NTM_XTKEY_SEALED), NTM_MF_B64, NTM_XTKEY_SEALED),
};
MSG(ntm_msg_temporal, "POST /v1/dc/temporal", temporal_f);
#undef T

#define T struct ntm_m_dc_xkey
static const struct ntm_mfield dc_xkey_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, to, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
};
MSG(ntm_msg_dc_xkey, "POST /v1/dc/xkey", dc_xkey_f);
#undef T

#define T struct ntm_m_xkey
static const struct ntm_mfield xkey_f[] = {
	S(T, fqdn, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, exchange_key, 1, NTM_B64_LEN(NTM_KX_PK), NTM_MF_B64, NTM_KX_PK),
};
MSG(ntm_msg_xkey, "200 to POST /v1/dc/xkey, GET /v1/exchange/key", xkey_f);
#undef T

#define T struct ntm_m_announce
static const struct ntm_mfield announce_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, from, 1, NTM_NAME_MAX, NTM_MF_FQDN, 0),
	S(T, to, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, kind, 1, 8, NTM_MF_KIND, 0),
	S(T, cs, 1, NTM_PUSH_URL_MAX, NTM_MF_HTTPS, 0),
	S(T, sha256, 1, 64, NTM_MF_LHEX, 64),
	I(T, size, 1, NTM_MF_SIZE),
	I(T, expires, 1, NTM_MF_ANY),
	S(T, app, 0, 64, NTM_MF_ANY, 0),
	S(T, service, 0, 64, NTM_MF_ANY, 0),
	S(T, item, 0, 128, NTM_MF_ANY, 0),
	S(T, notify, 0, 512, NTM_MF_ANY, 0),
};
MSG(ntm_msg_announce, "POST /v1/dc/announce", announce_f);
#undef T

#define T struct ntm_m_dc_locate
static const struct ntm_mfield dc_locate_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, fqdn, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, from, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
};
MSG(ntm_msg_dc_locate, "POST /v1/dc/locate", dc_locate_f);
#undef T

#define T struct ntm_m_dc_located
static const struct ntm_mfield dc_located_f[] = {
	S(T, fqdn, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, vip4, 1, 47, NTM_MF_ANY, 0),
	S(T, vip6, 1, 47, NTM_MF_ANY, 0),
	B(T, online, 1),
	O(T, location, 1),
	S(T, device_cert, 0, NTM_B64_LEN(NTM_DCERT_MAX), NTM_MF_NONEMPTY, 0),
	O(T, location_also, 0),
};
MSG(ntm_msg_dc_located, "200 to POST /v1/dc/locate", dc_located_f);
#undef T

#define T struct ntm_m_dc_direction
static const struct ntm_mfield dc_direction_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, to, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	O(T, direction, 1),
};
MSG(ntm_msg_dc_direction, "POST /v1/dc/direction", dc_direction_f);
#undef T

#define T struct ntm_m_direction
static const struct ntm_mfield direction_f[] = {
	S(T, tunnel_id, 1, 2 * NTM_TUNNEL_ID_LEN, NTM_MF_ANY, 0),
	S(T, peer, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, peer_vip4, 1, 47, NTM_MF_ANY, 0),
	S(T, peer_vip6, 1, 47, NTM_MF_ANY, 0),
	S(T, route, 1, 16, NTM_MF_ANY, 0),
	S(T, reason, 1, 95, NTM_MF_ANY, 0),
	S(T, role, 1, 16, NTM_MF_ANY, 0),
	S(T, endpoint, 1, 63, NTM_MF_ANY, 0),
	S(T, temporal_key, 1, NTM_B64_LEN(NTM_KEY_LEN), NTM_MF_ANY, 0),
	I(T, expires, 1, NTM_MF_ANY),
	O(T, relay, 0),
	S(T, peer_cert, 0, NTM_B64_LEN(NTM_DCERT_MAX), NTM_MF_NONEMPTY, 0),
	A(T, punch, 0),
};
MSG(ntm_msg_direction, "direction", direction_f);
#undef T

#define T struct ntm_m_relay
static const struct ntm_mfield relay_f[] = {
	S(T, ticket, 1, 2 * NTM_B64_LEN(NTM_TICKET_MAX), NTM_MF_ANY, 0),
	S(T, relay_key, 1, NTM_B64_LEN(NTM_KEY_LEN), NTM_MF_ANY, 0),
	S(T, addr, 1, 63, NTM_MF_ANY, 0),
	I(T, side, 1, NTM_MF_ANY),
};
MSG(ntm_msg_relay, "direction relay", relay_f);
#undef T

#define T struct ntm_m_location
static const struct ntm_mfield location_f[] = {
	S(T, reflexive, 1, 64, NTM_MF_ANY, 0),
	A(T, locals, 1),
	B(T, natted, 1),
	I(T, family, 1, NTM_MF_ANY),
	I(T, last_seen, 0, NTM_MF_ANY),
	I(T, nat, 0, NTM_MF_ANY),
};
MSG(ntm_msg_location, "location", location_f);
#undef T

#define T struct ntm_m_dc_moved
static const struct ntm_mfield dc_moved_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, to, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, from, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, tunnel_id, 1, 2 * NTM_TUNNEL_ID_LEN, NTM_MF_HEX, 2 * NTM_TUNNEL_ID_LEN),
	S(T, endpoint, 1, 63, NTM_MF_ENDPOINT, 0),
};
MSG(ntm_msg_dc_moved, "POST /v1/dc/moved", dc_moved_f);
#undef T

#define T struct ntm_m_revoke
static const struct ntm_mfield revoke_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	A(T, tokens, 0),
	A(T, accounts, 0),
	A(T, servers, 0),
};
MSG(ntm_msg_revoke, "POST /v1/cs/revoke", revoke_f);
#undef T

#define T struct ntm_m_revoke_token
static const struct ntm_mfield revoke_token_f[] = {
	S(T, id, 1, 64, NTM_MF_B64, NTM_TOKEN_ID),
	I(T, expires, 0, NTM_MF_ANY),
};
MSG(ntm_msg_revoke_token, "POST /v1/cs/revoke tokens[]", revoke_token_f);
#undef T

#define T struct ntm_m_revoke_account
static const struct ntm_mfield revoke_account_f[] = {
	S(T, user, 1, NTM_USER_MAX, NTM_MF_USER, 0),
	S(T, dc, 1, NTM_NAME_MAX, NTM_MF_DNSNAME, 0),
	I(T, before, 0, NTM_MF_ANY),
};
MSG(ntm_msg_revoke_account, "POST /v1/cs/revoke accounts[]", revoke_account_f);
#undef T

#define T struct ntm_m_revoke_server
static const struct ntm_mfield revoke_server_f[] = {
	I(T, serial, 1, NTM_MF_SIZE),
	S(T, name, 1, NTM_NAME_MAX, NTM_MF_DNSNAME, 0),
};
MSG(ntm_msg_revoke_server, "POST /v1/revoke servers[]", revoke_server_f);
#undef T

#define T struct ntm_m_as_renew_ok
static const struct ntm_mfield as_renew_ok_f[] = {
	S(T, cert, 1, NTM_B64_LEN(NTM_CERT_MAX), NTM_MF_NONEMPTY, 0),
	I(T, not_after, 1, NTM_MF_ANY),
};
MSG(ntm_msg_as_renew_ok, "POST /v1/as/renew (answer)", as_renew_ok_f);
#undef T

#define T struct ntm_m_logout
static const struct ntm_mfield logout_f[] = {
	I(T, version, 1, NTM_MF_ANY),
};
MSG(ntm_msg_logout, "POST /v1/logout", logout_f);
#undef T

#define T struct ntm_m_tunnel
static const struct ntm_mfield tunnel_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, peer, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, tunnel_id, 0, 2 * NTM_TUNNEL_ID_LEN, NTM_MF_ANY, 0),
};
MSG(ntm_msg_tunnel, "POST /v1/tunnel", tunnel_f);
#undef T

#define T struct ntm_m_cs_upload
static const struct ntm_mfield cs_upload_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, from, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	A(T, to, 1),
	I(T, size, 1, NTM_MF_ANY),
	I(T, ttl, 0, NTM_MF_ANY),
	S(T, kind, 0, 8, NTM_MF_ANY, 0),
	S(T, app, 0, 64, NTM_MF_ANY, 0),
	S(T, service, 0, 64, NTM_MF_ANY, 0),
	S(T, item, 0, 128, NTM_MF_ANY, 0),
	S(T, notify, 0, 512, NTM_MF_ANY, 0),
};
MSG(ntm_msg_cs_upload, "POST /v1/cs/uploads", cs_upload_f);
#undef T

#define T struct ntm_m_cs_commit
static const struct ntm_mfield cs_commit_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, upload, 1, 64, NTM_MF_ANY, 0),
	I(T, size, 1, NTM_MF_ANY),
	S(T, sha256, 1, 128, NTM_MF_ANY, 0),
};
MSG(ntm_msg_cs_commit, "POST /v1/cs/upload/commit", cs_commit_f);
#undef T

#define T struct ntm_m_cs_confirm
static const struct ntm_mfield cs_confirm_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, sha256, 1, 128, NTM_MF_ANY, 0),
	S(T, fqdn, 0, NTM_NAME_MAX, NTM_MF_ANY, 0),
};
MSG(ntm_msg_cs_confirm, "POST /v1/cs/object/confirm", cs_confirm_f);
#undef T

#define T struct ntm_m_cs_where
static const struct ntm_mfield cs_where_f[] = {
	S(T, cs, 1, NTM_PUSH_URL_MAX, NTM_MF_HTTPS, 0),
	S(T, dc, 1, NTM_NAME_MAX, NTM_MF_DNSNAME, 0),
};
MSG(ntm_msg_cs_where, "GET /v1/exchange/cs answer", cs_where_f);
#undef T

#define T struct ntm_m_cs_upload_state
static const struct ntm_mfield cs_upload_state_f[] = {
	S(T, upload, 1, 64, NTM_MF_NONEMPTY, 0),
	I(T, size, 1, NTM_MF_SIZE),
	I(T, offset, 1, NTM_MF_SIZE),
	I(T, chunk_max, 1, NTM_MF_ANY),
};
MSG(ntm_msg_cs_upload_state, "/v1/cs/upload answer", cs_upload_state_f);
#undef T

#define T struct ntm_m_cs_object
static const struct ntm_mfield cs_object_f[] = {
	S(T, sha256, 1, 64, NTM_MF_LHEX, 64),
	I(T, size, 1, NTM_MF_SIZE),
	I(T, created, 1, NTM_MF_ANY),
	I(T, expires, 1, NTM_MF_ANY),
};
MSG(ntm_msg_cs_object, "POST /v1/cs/upload/commit answer", cs_object_f);
#undef T

#define T struct ntm_m_tkey_list
static const struct ntm_mfield tkey_list_f[] = {
	A(T, keys, 1),
};
MSG(ntm_msg_tkey_list, "GET /v1/exchange/temporal answer", tkey_list_f);
#undef T

#define T struct ntm_m_tkey_listed
static const struct ntm_mfield tkey_listed_f[] = {
	S(T, key_id, 1, 2 * NTM_XKEY_ID, NTM_MF_LHEX, 2 * NTM_XKEY_ID),
	S(T, from, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, sha256, 1, 64, NTM_MF_LHEX, 64),
	I(T, created, 1, NTM_MF_ANY),
	I(T, expires, 1, NTM_MF_ANY),
};
MSG(ntm_msg_tkey_listed, "GET /v1/exchange/temporal key", tkey_listed_f);
#undef T

#define T struct ntm_m_tkey
static const struct ntm_mfield tkey_f[] = {
	S(T, key_id, 1, 2 * NTM_XKEY_ID, NTM_MF_LHEX, 2 * NTM_XKEY_ID),
	S(T, from, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, temporal_key, 1, NTM_B64_LEN(NTM_XTKEY_SEALED), NTM_MF_B64, NTM_XTKEY_SEALED),
	I(T, created, 1, NTM_MF_ANY),
	I(T, expires, 1, NTM_MF_ANY),
};
MSG(ntm_msg_tkey, "GET /v1/exchange/temporal/key answer", tkey_f);
#undef T

#define T struct ntm_m_directions
static const struct ntm_mfield directions_f[] = {
	A(T, directions, 1),
};
MSG(ntm_msg_directions, "GET /v1/directions answer", directions_f);
#undef T

#define T struct ntm_m_cs_meta
static const struct ntm_mfield cs_meta_f[] = {
	S(T, sha256, 1, 64, NTM_MF_LHEX, 64),
	S(T, kind, 1, 8, NTM_MF_KIND, 0),
	I(T, size, 1, NTM_MF_SIZE),
	S(T, owner, 1, NTM_USER_MAX, NTM_MF_ANY, 0),
	S(T, owner_dc, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, from, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	I(T, created, 1, NTM_MF_ANY),
	I(T, expires, 1, NTM_MF_ANY),
	S(T, app, 1, 0, NTM_MF_ANY, 0),
	S(T, service, 1, 0, NTM_MF_ANY, 0),
	S(T, item, 1, 0, NTM_MF_ANY, 0),
	S(T, notify, 1, 0, NTM_MF_ANY, 0),
	A(T, to, 1),
	B(T, announcing, 1),
};
MSG(ntm_msg_cs_meta, "GET /v1/cs/object/meta answer", cs_meta_f);
#undef T

#define T struct ntm_m_cs_dest
static const struct ntm_mfield cs_dest_f[] = {
	S(T, fqdn, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, status, 1, 16, NTM_MF_NONEMPTY, 0),
	I(T, delivered, NTM_MREQ_NULL, NTM_MF_ANY),
	I(T, announced, NTM_MREQ_NULL, NTM_MF_ANY),
	I(T, attempts, 1, NTM_MF_ANY),
	O(T, error, 0),
};
MSG(ntm_msg_cs_dest, "GET /v1/cs/object/meta destination", cs_dest_f);
#undef T

#define T struct ntm_m_cs_dest_error
static const struct ntm_mfield cs_dest_error_f[] = {
	S(T, code, 1, 0, NTM_MF_ANY, 0),
	S(T, message, 1, 0, NTM_MF_ANY, 0),
};
MSG(ntm_msg_cs_dest_error, "GET /v1/cs/object/meta destination error", cs_dest_error_f);
#undef T

#define T struct ntm_m_entries
static const struct ntm_mfield entries_f[] = {
	A(T, entries, 1),
};
MSG(ntm_msg_entries, "GET /v1/exchange/cache answer", entries_f);
#undef T

#define T struct ntm_m_entry
static const struct ntm_mfield entry_f[] = {
	I(T, id, 1, NTM_MF_ANY),
	S(T, kind, 1, 8, NTM_MF_ANY, 0),
	S(T, from, 1, NTM_NAME_MAX, NTM_MF_ANY, 0),
	S(T, cs, 1, NTM_PUSH_URL_MAX, NTM_MF_ANY, 0),
	S(T, sha256, 1, 64, NTM_MF_ANY, 0),
	I(T, size, 1, NTM_MF_ANY),
	S(T, app, 1, 64, NTM_MF_ANY, 0),
	S(T, service, 1, 64, NTM_MF_ANY, 0),
	S(T, item, 1, 128, NTM_MF_ANY, 0),
	S(T, notify, 1, 512, NTM_MF_ANY, 0),
	I(T, created, 1, NTM_MF_ANY),
	I(T, expires, 1, NTM_MF_ANY),
};
MSG(ntm_msg_entry, "GET /v1/exchange/cache entry", entry_f);
#undef T

#define T struct ntm_m_error
static const struct ntm_mfield error_f[] = {
	S(T, code, 1, NTM_ERRCODE_MAX, NTM_MF_NONEMPTY, 0),
	S(T, message, 1, NTM_ERRMSG_MAX, NTM_MF_ANY, 0),
	S(T, field, 0, 64, NTM_MF_NONEMPTY, 0),
};
MSG(ntm_msg_error, "error answer", error_f);
#undef T

/* A JSON string of 1..max bytes without NUL, or NULL. */
static const char *
error_str(json_t *body, const char *key, size_t max)
{
	json_t *v = json_object_get(body, key);
	size_t n;

	if (!json_is_string(v) || (n = json_string_length(v)) == 0 || n > max ||
	    strlen(json_string_value(v)) != n)
		return NULL;
	return json_string_value(v);
}

int
ntm_error_read(json_t *body, struct ntm_m_error *out)
{
	const char *code;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(body) ||
	    (code = error_str(body, "code", NTM_ERRCODE_MAX)) == NULL ||
	    strspn(code, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(code))
		return NTM_ERR_JSON;
	out->code = code;
	out->message = error_str(body, "message", NTM_ERRMSG_MAX);
	out->field = error_str(body, "field", 64);
	return 0;
}

const char *
ntm_error_code(json_t *body)
{
	struct ntm_m_error e;

	return ntm_error_read(body, &e) == 0 ? e.code : NULL;
}

int
ntm_error_is(json_t *body, const char *code)
{
	const char *c = ntm_error_code(body);

	return c && strcmp(c, code) == 0;
}
/* ---- device certificates (issue 12) ----------------------------------------- */

#define T struct ntm_m_as_device
static const struct ntm_mfield as_device_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, token, 1, 2 * NTM_TOKEN_MAX, NTM_MF_NONEMPTY, 0),
	S(T, fqdn, 1, NTM_NAME_MAX, NTM_MF_FQDN, 0),
	S(T, device_key, 1, NTM_B64_LEN(NTM_DEVKEY_LEN), NTM_MF_B64, NTM_DEVKEY_LEN),
};
MSG(ntm_msg_as_device, "POST /v1/as/device", as_device_f);
#undef T

#define T struct ntm_m_as_device_ok
static const struct ntm_mfield as_device_ok_f[] = {
	S(T, device_cert, 1, NTM_B64_LEN(NTM_DCERT_MAX), NTM_MF_NONEMPTY, 0),
};
MSG(ntm_msg_as_device_ok, "200 to POST /v1/as/device", as_device_ok_f);
#undef T

/* ---- scoped tokens (issue 12) ---------------------------------------------- */

#define T struct ntm_m_cstoken
static const struct ntm_mfield cstoken_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, cs, 1, NTM_NAME_MAX, NTM_MF_DNSNAME, 0),
};
MSG(ntm_msg_cstoken, "POST /v1/exchange/cstoken", cstoken_f);
#undef T

#define T struct ntm_m_as_cstoken
static const struct ntm_mfield as_cstoken_f[] = {
	I(T, version, 1, NTM_MF_ANY),
	S(T, token, 1, 2 * NTM_TOKEN_MAX, NTM_MF_NONEMPTY, 0),
	S(T, cs, 1, NTM_NAME_MAX, NTM_MF_DNSNAME, 0),
};
MSG(ntm_msg_as_cstoken, "POST /v1/as/cstoken", as_cstoken_f);
#undef T

#define T struct ntm_m_cstoken_ok
static const struct ntm_mfield cstoken_ok_f[] = {
	S(T, token, 1, 2 * NTM_TOKEN_MAX, NTM_MF_NONEMPTY, 0),
};
MSG(ntm_msg_cstoken_ok, "200 to POST /v1/exchange/cstoken, /v1/as/cstoken", cstoken_ok_f);
#undef T
int
ntm_msg_punch_cands(json_t *punch, struct sockaddr_storage *out, int max)
{
	json_t *v;
	socklen_t len;
	size_t i;

	if (punch == NULL)
		return 0;
	if (!json_is_array(punch) || json_array_size(punch) > (size_t)max)
		return -1;
	json_array_foreach(punch, i, v) {
		if (!json_is_string(v) || ntm_sa_parse(&out[i], &len, json_string_value(v)) < 0)
			return -1;
		ntm_sa_unmap(&out[i], &len);
	}
	return (int)json_array_size(punch);
}

const struct ntm_jmsg *const ntm_jmsgs[] = {
	&ntm_msg_login, &ntm_msg_as_login, &ntm_msg_as_login_ok, &ntm_msg_as_logout,
	&ntm_msg_temporal, &ntm_msg_dc_xkey, &ntm_msg_announce, &ntm_msg_dc_locate,
	&ntm_msg_dc_located, &ntm_msg_dc_direction, &ntm_msg_dc_moved, &ntm_msg_revoke,
	&ntm_msg_revoke_token, &ntm_msg_revoke_account, &ntm_msg_logout, &ntm_msg_tunnel,
	&ntm_msg_cs_upload, &ntm_msg_cs_commit, &ntm_msg_cs_confirm, &ntm_msg_xkey,
	&ntm_msg_login_ok, &ntm_msg_direction, &ntm_msg_relay, &ntm_msg_location,
	&ntm_msg_cs_where, &ntm_msg_cs_upload_state, &ntm_msg_cs_object,
	&ntm_msg_tkey_list, &ntm_msg_tkey_listed, &ntm_msg_tkey,
	&ntm_msg_directions, &ntm_msg_cs_meta, &ntm_msg_cs_dest, &ntm_msg_cs_dest_error,
	&ntm_msg_entries, &ntm_msg_entry, &ntm_msg_error,
	/* device certificates (issue 12) */
	&ntm_msg_as_device, &ntm_msg_as_device_ok,
	/* scoped tokens (issue 12) */
	&ntm_msg_cstoken, &ntm_msg_as_cstoken, &ntm_msg_cstoken_ok,
	/* revocations pushed to every server (issue 12) */
	&ntm_msg_revoke_server,
	/* server certificates renewed (issue 12) */
	&ntm_msg_as_renew_ok,
	NULL,
};
