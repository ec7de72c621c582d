/* test_msg.c - the JSON message codecs (lib/core/msg.c): for every message a
 * valid body round-trips; each required field missing, each field of the
 * wrong type, an unknown key and each bad format fail naming the field, on
 * decode and on encode alike. */
#include <stddef.h>
#include <jansson.h>

#include "msg.h"
#include "unit.h"

#define K32	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"		/* base64url of 32 bytes */
#define K16	"AAAAAAAAAAAAAAAAAAAAAA"		/* base64url of 16 bytes */
#define K80	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"	/* base64url of 80 bytes */
#define H32	"0123456789abcdef0123456789abcdef"
#define H64	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* One valid body per message, every optional field given. */
static const struct {
	const struct ntm_jmsg	*m;
	const char		*json;
} valid[] = {
	{ &ntm_msg_login, "{\"version\":1,\"user\":\"alice\",\"password\":\"pw\","
	  "\"device\":\"laptop\",\"client_key\":\"" K32 "\",\"push\":\"https://p.example/x\","
	  "\"exchange_key\":\"" K32 "\",\"device_key\":\"" K32 "\",\"sealed\":\"s\",\"prior_token\":\"t\"}" },
	{ &ntm_msg_as_login, "{\"version\":1,\"user\":\"alice\",\"password\":\"pw\","
	  "\"device\":\"laptop\",\"sealed\":\"s\",\"known\":true}" },
	{ &ntm_msg_as_login_ok, "{\"user\":\"alice\",\"token\":\"tok\",\"expires\":1700000000,"
	  "\"cs_tokens\":[\"t1\",\"t2\"]}" },
	{ &ntm_msg_as_logout, "{\"version\":1,\"token_id\":\"" H32 "\"}" },
	{ &ntm_msg_temporal, "{\"version\":1,\"from\":\"a.dc1.example\",\"to\":\"b.dc2.example\","
	  "\"key_id\":\"" H32 "\",\"temporal_key\":\"" K80 "\"}" },
	{ &ntm_msg_dc_xkey, "{\"version\":1,\"to\":\"b.dc2.example\"}" },
	{ &ntm_msg_announce, "{\"version\":1,\"from\":\"a.dc1.example\",\"to\":\"b.dc2.example\","
	  "\"kind\":\"data\",\"cs\":\"https://cs.dc1.example\",\"sha256\":\"" H64 "\","
	  "\"size\":12,\"expires\":1700000000,\"app\":\"ap\",\"service\":\"sv\","
	  "\"item\":\"it\",\"notify\":\"nt\"}" },
	{ &ntm_msg_dc_locate, "{\"version\":1,\"fqdn\":\"b.dc2.example\",\"from\":\"a.dc1.example\"}" },
	{ &ntm_msg_dc_located, "{\"fqdn\":\"b.dc2.example\",\"vip4\":\"10.1.0.2\","
	  "\"vip6\":\"fd00::2\",\"online\":true,\"location\":{\"k\":1},"
	  "\"device_cert\":\"c\",\"location_also\":{\"k\":2}}" },
	{ &ntm_msg_dc_direction, "{\"version\":1,\"to\":\"b.dc2.example\",\"direction\":{}}" },
	{ &ntm_msg_dc_moved, "{\"version\":1,\"to\":\"b.dc2.example\",\"from\":\"a.dc1.example\","
	  "\"tunnel_id\":\"" H32 "\",\"endpoint\":\"198.51.100.1:4000\"}" },
	{ &ntm_msg_revoke, "{\"version\":1,\"tokens\":[{\"id\":\"x\"}],\"accounts\":[],"
	  "\"servers\":[]}" },
	{ &ntm_msg_revoke_server, "{\"serial\":42,\"name\":\"dc2.example\"}" },
	{ &ntm_msg_as_renew_ok, "{\"cert\":\"AQID\",\"not_after\":1800000000}" },
	{ &ntm_msg_revoke_token, "{\"id\":\"" K16 "\",\"expires\":1700000000}" },
	{ &ntm_msg_revoke_account, "{\"user\":\"alice\",\"dc\":\"dc1.example\","
	  "\"before\":1700000000}" },
	{ &ntm_msg_logout, "{\"version\":1}" },
	{ &ntm_msg_direction, "{\"tunnel_id\":\"" H32 "\",\"peer\":\"b.dc2.example\","
	  "\"peer_vip4\":\"100.64.2.2\",\"peer_vip6\":\"fd00::2\",\"route\":\"relay\","
	  "\"reason\":\"both behind NAT\",\"role\":\"initiator\","
	  "\"endpoint\":\"198.51.100.1:4000\",\"temporal_key\":\"" K32 "\","
	  "\"expires\":1700000000,\"relay\":{},\"peer_cert\":\"c\","
	  "\"punch\":[\"198.51.100.2:4000\"]}" },
	{ &ntm_msg_relay, "{\"ticket\":\"" K32 "\",\"relay_key\":\"" K32 "\","
	  "\"addr\":\"198.51.100.9:5000\",\"side\":0}" },
	{ &ntm_msg_location, "{\"reflexive\":\"198.51.100.1:4000\",\"locals\":[],"
	  "\"natted\":false,\"family\":4,\"last_seen\":1700000000,\"nat\":3}" },
	{ &ntm_msg_login_ok, "{\"user\":\"alice\",\"fqdn\":\"alice.dc1.example\","
	  "\"vip4\":\"100.64.1.2\",\"vip6\":\"fd00::2\",\"domain\":\"dc1.example\","
	  "\"token\":\"t\",\"token_expires\":1700000000,\"session_id\":\"" H32 "\","
	  "\"dc_key\":\"" K32 "\",\"device_cert\":\"c\",\"as_key\":\"" K32 "\","
	  "\"cs_tokens\":[\"t1\"]}" },
	{ &ntm_msg_xkey, "{\"fqdn\":\"b.dc2.example\",\"exchange_key\":\"" K32 "\"}" },
	{ &ntm_msg_tunnel, "{\"version\":1,\"peer\":\"b.dc2.example\",\"tunnel_id\":\"" H32 "\"}" },
	{ &ntm_msg_cs_upload, "{\"version\":1,\"from\":\"a.dc1.example\",\"to\":[\"b.dc2.example\"],"
	  "\"size\":5,\"ttl\":60,\"kind\":\"key\",\"app\":\"ap\",\"service\":\"sv\","
	  "\"item\":\"it\",\"notify\":\"nt\"}" },
	{ &ntm_msg_cs_commit, "{\"version\":1,\"upload\":\"" H32 "\",\"size\":5,"
	  "\"sha256\":\"" H64 "\"}" },
	{ &ntm_msg_cs_confirm, "{\"version\":1,\"sha256\":\"" H64 "\",\"fqdn\":\"b.dc2.example\"}" },
	{ &ntm_msg_cs_where, "{\"cs\":\"https://cs.dc1.example:8443\",\"dc\":\"dc1.example\"}" },
	{ &ntm_msg_cs_upload_state, "{\"upload\":\"" H32 "\",\"size\":5,\"offset\":2,"
	  "\"chunk_max\":1048576}" },
	{ &ntm_msg_cs_object, "{\"sha256\":\"" H64 "\",\"size\":5,\"created\":1700000000,"
	  "\"expires\":1700086400}" },
	{ &ntm_msg_tkey_list, "{\"keys\":[]}" },
	{ &ntm_msg_entries, "{\"entries\":[]}" },
	{ &ntm_msg_as_device, "{\"version\":1,\"token\":\"t\",\"fqdn\":\"alice.dc1.example\","
	  "\"device_key\":\"" K32 "\"}" },
	{ &ntm_msg_as_device_ok, "{\"device_cert\":\"c\"}" },
	{ &ntm_msg_cstoken, "{\"version\":1,\"cs\":\"cs1.example\"}" },
	{ &ntm_msg_as_cstoken, "{\"version\":1,\"token\":\"t\",\"cs\":\"cs1.example\"}" },
	{ &ntm_msg_cstoken_ok, "{\"token\":\"t\"}" },
	{ &ntm_msg_entry, "{\"id\":1,\"kind\":\"data\",\"from\":\"a.dc1.example\","
	  "\"cs\":\"https://cs.dc1.example\",\"sha256\":\"" H64 "\",\"size\":5,"
	  "\"app\":\"ap\",\"service\":\"sv\",\"item\":\"it\",\"notify\":\"nt\","
	  "\"created\":1700000000,\"expires\":1700086400}" },
	{ &ntm_msg_cs_meta, "{\"sha256\":\"" H64 "\",\"kind\":\"data\",\"size\":5,"
	  "\"owner\":\"alice\",\"owner_dc\":\"dc1.example\",\"from\":\"a.dc1.example\","
	  "\"created\":1700000000,\"expires\":1700086400,\"app\":\"\",\"service\":\"\","
	  "\"item\":\"\",\"notify\":\"\",\"to\":[],\"announcing\":true}" },
	{ &ntm_msg_cs_dest, "{\"fqdn\":\"b.dc2.example\",\"status\":\"pending\","
	  "\"delivered\":1700000001,\"announced\":1700000000,\"attempts\":2,"
	  "\"error\":{\"code\":\"peer_offline\",\"message\":\"m\"}}" },
	{ &ntm_msg_cs_dest_error, "{\"code\":\"peer_offline\",\"message\":\"m\"}" },
	{ &ntm_msg_error, "{\"code\":\"missing_field\",\"message\":\"field 'user': missing\","
	  "\"field\":\"user\"}" },
	{ &ntm_msg_directions, "{\"directions\":[{\"tunnel_id\":\"" H32 "\"}]}" },
	{ &ntm_msg_tkey_listed, "{\"key_id\":\"" H32 "\",\"from\":\"a.dc1.example\","
	  "\"sha256\":\"" H64 "\",\"created\":1700000000,\"expires\":1700086400}" },
	{ &ntm_msg_tkey, "{\"key_id\":\"" H32 "\",\"from\":\"a.dc1.example\","
	  "\"temporal_key\":\"" K80 "\",\"created\":1700000000,\"expires\":1700086400}" },
};

/* Values outside a field's format: (message, field, JSON value). */
static const struct {
	const struct ntm_jmsg	*m;
	const char		*field, *value;
} badfmt[] = {
	{ &ntm_msg_login, "user", "\"Alice\"" },
	{ &ntm_msg_cs_where, "cs", "\"http://cs.dc1.example\"" },
	{ &ntm_msg_cs_where, "dc", "\"no dc\"" },
	{ &ntm_msg_cs_upload_state, "upload", "\"\"" },
	{ &ntm_msg_cs_upload_state, "offset", "-1" },
	{ &ntm_msg_cs_object, "sha256", "\"" H32 "\"" },
	{ &ntm_msg_cs_object, "size", "-5" },
	{ &ntm_msg_tkey_listed, "key_id", "\"0123\"" },
	{ &ntm_msg_cs_meta, "kind", "\"file\"" },
	{ &ntm_msg_cs_meta, "size", "-1" },
	{ &ntm_msg_cs_dest, "status", "\"\"" },
	{ &ntm_msg_tkey_listed, "sha256", "\"" H32 "\"" },
	{ &ntm_msg_tkey, "key_id", "\"" H64 "\"" },
	{ &ntm_msg_tkey, "temporal_key", "\"" K32 "\"" },
	{ &ntm_msg_login, "user", "\"-a\"" },
	{ &ntm_msg_login, "password", "\"\"" },
	{ &ntm_msg_login, "device", "\"lap top\"" },
	{ &ntm_msg_login, "device", "\"\"" },
	{ &ntm_msg_login, "client_key", "\"AAAA\"" },
	{ &ntm_msg_login, "client_key", "\"" K32 "A\"" },
	{ &ntm_msg_login, "push", "\"http://p.example\"" },
	{ &ntm_msg_login, "push", "\"https://u@p.example\"" },
	{ &ntm_msg_login, "exchange_key", "\"!!\"" },
	{ &ntm_msg_as_login, "user", "\"9lives\"" },
	{ &ntm_msg_as_login, "password", "\"\"" },
	{ &ntm_msg_as_login, "device", "\"a/b\"" },
	{ &ntm_msg_as_login_ok, "user", "\"A\"" },
	{ &ntm_msg_as_login_ok, "token", "\"\"" },
	{ &ntm_msg_cstoken, "cs", "\"Cs1.example\"" },
	{ &ntm_msg_as_cstoken, "cs", "\"cs1..example\"" },
	{ &ntm_msg_cstoken_ok, "token", "\"\"" },
	{ &ntm_msg_as_logout, "token_id", "\"0123\"" },
	{ &ntm_msg_as_logout, "token_id", "\"0123456789abcdef0123456789abcdeg\"" },
	{ &ntm_msg_temporal, "key_id", "\"0123456789ABCDEF0123456789ABCDEF\"" },
	{ &ntm_msg_temporal, "key_id", "\"" H64 "\"" },
	{ &ntm_msg_temporal, "temporal_key", "\"" K32 "\"" },
	{ &ntm_msg_announce, "from", "\"nodomain\"" },
	{ &ntm_msg_announce, "from", "\"a..b\"" },
	{ &ntm_msg_announce, "kind", "\"both\"" },
	{ &ntm_msg_announce, "cs", "\"ftp://cs.example\"" },
	{ &ntm_msg_announce, "sha256", "\"" H32 "\"" },
	{ &ntm_msg_announce, "size", "-1" },
	{ &ntm_msg_announce, "size", "1099511627777" },
	{ &ntm_msg_dc_moved, "tunnel_id", "\"xyz\"" },
	{ &ntm_msg_dc_moved, "endpoint", "\"198.51.100.1\"" },
	{ &ntm_msg_dc_moved, "endpoint", "\"nohost:1\"" },
	{ &ntm_msg_revoke_token, "id", "\"" K32 "\"" },
	{ &ntm_msg_xkey, "exchange_key", "\"" K16 "\"" },
	{ &ntm_msg_login_ok, "session_id", "\"" H64 "\"" },
	{ &ntm_msg_login_ok, "fqdn", "\"a..b\"" },
	{ &ntm_msg_login_ok, "dc_key", "\"" K16 "\"" },
	{ &ntm_msg_revoke_account, "user", "\"Bob\"" },
	{ &ntm_msg_revoke_account, "dc", "\"a..b\"" },
	{ &ntm_msg_revoke_server, "serial", "-1" },
	{ &ntm_msg_revoke_server, "name", "\"a..b\"" },
};

static const struct ntm_mfield *
field_of(const struct ntm_jmsg *m, const char *name)
{
	for (size_t i = 0; i < m->nfields; i++)
		if (strcmp(m->fields[i].name, name) == 0)
			return &m->fields[i];
	return NULL;
}

/* The decoded structs a and b hold the same values. */
static int
same(const struct ntm_jmsg *m, const void *a, const void *b)
{
	for (size_t i = 0; i < m->nfields; i++) {
		const struct ntm_mfield *f = &m->fields[i];
		const char *pa = (const char *)a + f->off, *pb = (const char *)b + f->off;
		const char *sa, *sb;
		json_t *ja, *jb;

		switch (f->type) {
		case NTM_J_STR:
			memcpy(&sa, pa, sizeof(sa));
			memcpy(&sb, pb, sizeof(sb));
			if ((sa == NULL) != (sb == NULL) || (sa && strcmp(sa, sb) != 0))
				return 0;
			break;
		case NTM_J_INT:
			if (memcmp(pa, pb, sizeof(int64_t)) != 0)
				return 0;
			break;
		case NTM_J_BOOL:
			if (memcmp(pa, pb, sizeof(int)) != 0)
				return 0;
			break;
		case NTM_J_OBJ:
		case NTM_J_ARR:
			memcpy(&ja, pa, sizeof(ja));
			memcpy(&jb, pb, sizeof(jb));
			if (!json_equal(ja, jb))
				return 0;
			break;
		}
	}
	return memcmp(a, b, sizeof(uint32_t)) == 0;	/* the has bits */
}

static json_t *
parse(const char *s)
{
	struct ntm_jerr e;

	return ntm_json_parse(s, strlen(s), &e);
}

/* Decoding j fails with code naming field. */
static void
check_decode_fails(const struct ntm_jmsg *m, json_t *j, const char *code, const char *field)
{
	_Alignas(max_align_t) uint8_t out[512];
	struct ntm_jerr e;
	char want[96];

	memset(out, 0xa5, sizeof(out));
	CHECK_EQ(ntm_jmsg_decode(m, j, out, &e), NTM_ERR_JSON);
	CHECK_STR(e.code, code);
	CHECK_STR(e.field, field);
	if (strcmp(code, "unknown_field") == 0)
		snprintf(want, sizeof(want), "unknown field '%s'", field);
	else
		snprintf(want, sizeof(want), "field '%s': ", field);
	if (strncmp(e.message, want, strlen(want)) != 0) {
		fprintf(stderr, "%s %s: message \"%s\"\n", m->name, field, e.message);
		CHECK(0);
	}
	CHECK_EQ(out[0], 0);		/* a failed decode leaves the struct zeroed */
}

TEST(roundtrip)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct ntm_jmsg *m = valid[i].m;
		_Alignas(max_align_t) uint8_t a[512], b[512];
		uint32_t has;
		struct ntm_jerr e;
		json_t *j = parse(valid[i].json), *enc = NULL;

		CHECK(j != NULL);
		memset(a, 0xa5, sizeof(a));
		memset(b, 0x5a, sizeof(b));
		CHECK_EQ(ntm_jmsg_decode(m, j, a, &e), 0);
		/* Every field was given: every has bit is set. */
		memcpy(&has, a, sizeof(has));
		CHECK_EQ(has, (UINT32_C(1) << m->nfields) - 1);
		CHECK_EQ(ntm_jmsg_encode(m, a, &enc, &e), 0);
		CHECK(json_equal(j, enc));
		CHECK_EQ(ntm_jmsg_decode(m, enc, b, &e), 0);
		if (!same(m, a, b)) {
			fprintf(stderr, "%s: decode(encode(x)) differs\n", m->name);
			CHECK(0);
		}
		json_decref(enc);
		json_decref(j);
	}
}

/* A failed answer's body, read leniently (ntm_error_read). */
TEST(error_read)
{
	static const struct {
		const char	*body;		/* NULL: no body */
		const char	*code, *message, *field;	/* NULL: absent */
	} c[] = {
		{ "{\"code\":\"bad_field\",\"message\":\"m\",\"field\":\"user\"}",
		  "bad_field", "m", "user" },
		/* A newer server's extra keys are no reason to lose its code. */
		{ "{\"code\":\"queue_full\",\"message\":\"m\",\"retry\":3}",
		  "queue_full", "m", NULL },
		{ "{\"code\":\"internal\"}", "internal", NULL, NULL },
		/* A message or field that breaks the rules is dropped, not the code. */
		{ "{\"code\":\"x\",\"message\":5,\"field\":\"\"}", "x", NULL, NULL },
		{ "{\"code\":\"x\",\"message\":\"a\\u0000b\"}", "x", NULL, NULL },
		/* No code of ours: a proxy's page, a stranger's JSON. */
		{ NULL, NULL, NULL, NULL },
		{ "[1]", NULL, NULL, NULL },
		{ "{\"error\":\"Bad Gateway\"}", NULL, NULL, NULL },
		{ "{\"code\":502,\"message\":\"Bad Gateway\"}", NULL, NULL, NULL },
		{ "{\"code\":\"Bad Gateway\",\"message\":\"m\"}", NULL, NULL, NULL },
		{ "{\"code\":\"\",\"message\":\"m\"}", NULL, NULL, NULL },
		{ "{\"code\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", NULL, NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		json_t *j = c[i].body ? json_loads(c[i].body, JSON_ALLOW_NUL, NULL) : NULL;
		struct ntm_m_error e;

		CHECK(c[i].body == NULL || j != NULL);
		CHECK_EQ(ntm_error_read(j, &e), c[i].code ? 0 : NTM_ERR_JSON);
		CHECK_STR(e.code ? e.code : "(none)", c[i].code ? c[i].code : "(none)");
		CHECK_STR(e.message ? e.message : "(none)", c[i].message ? c[i].message : "(none)");
		CHECK_STR(e.field ? e.field : "(none)", c[i].field ? c[i].field : "(none)");
		CHECK_EQ(ntm_error_is(j, "bad_field"), i == 0);
		json_decref(j);
	}
}

TEST(every_message_listed)
{
	size_t n = 0;

	for (const struct ntm_jmsg *const *m = ntm_jmsgs; *m; m++) {
		int found = 0;

		for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
			found |= valid[i].m == *m;
		if (!found)
			fprintf(stderr, "%s has no valid body in this test\n", (*m)->name);
		CHECK(found);
		CHECK((*m)->nfields <= NTM_MSG_FIELDS_MAX);
		n++;
	}
	CHECK_EQ(n, sizeof(valid) / sizeof(valid[0]));
}

TEST(missing)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct ntm_jmsg *m = valid[i].m;

		for (size_t k = 0; k < m->nfields; k++) {
			const struct ntm_mfield *f = &m->fields[k];
			json_t *j = parse(valid[i].json), *enc = NULL;
			_Alignas(max_align_t) uint8_t s[512];
			struct ntm_jerr e;

			json_object_del(j, f->name);
			if (!f->required) {
				/* Optional: absent decodes, and encodes absent again. */
				CHECK_EQ(ntm_jmsg_decode(m, j, s, &e), 0);
				CHECK_EQ(ntm_jmsg_encode(m, s, &enc, &e), 0);
				CHECK(json_equal(j, enc));
				json_decref(enc);
				json_decref(j);
				continue;
			}
			check_decode_fails(m, j, "missing_field", f->name);
			json_decref(j);
			/* Encoding a struct whose required string/object is NULL. */
			if (f->type == NTM_J_STR || f->type == NTM_J_OBJ) {
				j = parse(valid[i].json);
				CHECK_EQ(ntm_jmsg_decode(m, j, s, &e), 0);
				memset(s + f->off, 0, sizeof(void *));
				CHECK_EQ(ntm_jmsg_encode(m, s, &enc, &e), NTM_ERR_JSON);
				CHECK(enc == NULL);
				CHECK_STR(e.code, "missing_field");
				CHECK_STR(e.field, f->name);
				json_decref(j);
			}
		}
	}
}

TEST(wrong_type)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct ntm_jmsg *m = valid[i].m;

		for (size_t k = 0; k < m->nfields; k++) {
			const struct ntm_mfield *f = &m->fields[k];
			json_t *wrong[] = { json_string("x"), json_integer(5), json_true(),
				json_object(), json_array(), json_null(), json_real(1.5) };

			for (size_t w = 0; w < sizeof(wrong) / sizeof(wrong[0]); w++) {
				json_t *j = parse(valid[i].json);
				int ok = (f->type == NTM_J_STR && json_is_string(wrong[w])) ||
				    (f->type == NTM_J_INT && json_is_integer(wrong[w])) ||
				    (f->type == NTM_J_BOOL && json_is_boolean(wrong[w])) ||
				    (f->type == NTM_J_OBJ && json_is_object(wrong[w])) ||
				    (f->type == NTM_J_ARR && json_is_array(wrong[w])) ||
				    (f->required == NTM_MREQ_NULL && json_is_null(wrong[w]));

				if (!ok) {
					json_object_set(j, f->name, wrong[w]);
					check_decode_fails(m, j, "bad_field", f->name);
				}
				json_decref(j);
			}
			for (size_t w = 0; w < sizeof(wrong) / sizeof(wrong[0]); w++)
				json_decref(wrong[w]);
		}
	}
}

TEST(unknown_key)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		json_t *j = parse(valid[i].json);

		json_object_set_new(j, "zz", json_integer(1));
		check_decode_fails(valid[i].m, j, "unknown_field", "zz");
		json_decref(j);
	}
}

TEST(too_long)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct ntm_jmsg *m = valid[i].m;

		for (size_t k = 0; k < m->nfields; k++) {
			const struct ntm_mfield *f = &m->fields[k];
			size_t n = (f->maxlen ? f->maxlen : 1024) + 1;
			char *s;
			json_t *j;

			if (f->type != NTM_J_STR)
				continue;
			s = malloc(n + 1);
			memset(s, 'a', n);
			s[n] = '\0';
			j = parse(valid[i].json);
			json_object_set_new(j, f->name, json_string(s));
			check_decode_fails(m, j, "bad_field", f->name);
			json_decref(j);
			free(s);
		}
	}
}

TEST(bad_format)
{
	for (size_t i = 0; i < sizeof(badfmt) / sizeof(badfmt[0]); i++) {
		const struct ntm_jmsg *m = badfmt[i].m;
		const struct ntm_mfield *f = field_of(m, badfmt[i].field);
		const char *body = NULL;
		json_t *j, *v, *enc = NULL;
		_Alignas(max_align_t) uint8_t s[512];
		struct ntm_jerr e;

		CHECK(f != NULL);
		for (size_t k = 0; k < sizeof(valid) / sizeof(valid[0]); k++)
			if (valid[k].m == m)
				body = valid[k].json;
		j = parse(body);
		CHECK_EQ(ntm_jmsg_decode(m, j, s, &e), 0);
		/* The encoder refuses the value the decoder refuses. */
		v = parse("{\"v\":0}");
		json_object_set_new(v, "v", json_loads(badfmt[i].value, JSON_DECODE_ANY, NULL));
		if (f->type == NTM_J_STR) {
			const char *str = json_string_value(json_object_get(v, "v"));

			memcpy(s + f->off, &str, sizeof(str));
		} else {
			int64_t n = json_integer_value(json_object_get(v, "v"));

			memcpy(s + f->off, &n, sizeof(n));
		}
		CHECK_EQ(ntm_jmsg_encode(m, s, &enc, &e), NTM_ERR_JSON);
		CHECK(enc == NULL);
		CHECK_STR(e.code, "bad_field");
		CHECK_STR(e.field, badfmt[i].field);
		json_object_set(j, f->name, json_object_get(v, "v"));
		check_decode_fails(m, j, "bad_field", badfmt[i].field);
		json_decref(v);
		json_decref(j);
	}
}

TEST(not_object)
{
	json_t *a = json_array();

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		_Alignas(max_align_t) uint8_t s[512];
		struct ntm_jerr e;

		CHECK_EQ(ntm_jmsg_decode(valid[i].m, a, s, &e), NTM_ERR_JSON);
		CHECK_STR(e.code, "not_object");
	}
	json_decref(a);
}

/* An optional integer is told apart from a zero by its has bit. */
TEST(has)
{
	struct ntm_m_cs_upload m;
	struct ntm_jerr e;
	json_t *j = parse("{\"version\":1,\"from\":\"a.b\",\"to\":[],\"size\":0,\"ttl\":0}"), *enc;

	CHECK_EQ(ntm_msg_cs_upload_decode(j, &m, &e), 0);
	CHECK_EQ(ntm_jmsg_has(&ntm_msg_cs_upload, &m, "ttl"), 1);
	CHECK_EQ(ntm_jmsg_has(&ntm_msg_cs_upload, &m, "kind"), 0);
	CHECK_EQ(ntm_jmsg_has(&ntm_msg_cs_upload, &m, "nosuch"), 0);
	CHECK(m.kind == NULL);
	json_object_del(j, "ttl");
	CHECK_EQ(ntm_msg_cs_upload_decode(j, &m, &e), 0);
	CHECK_EQ(ntm_jmsg_has(&ntm_msg_cs_upload, &m, "ttl"), 0);
	CHECK_EQ(ntm_msg_cs_upload_encode(&m, &enc, &e), 0);
	CHECK(json_object_get(enc, "ttl") == NULL);
	CHECK(json_equal(j, enc));
	json_decref(enc);
	json_decref(j);
}

/* An integer that may be null: null decodes as its has bit clear, and a
 * clear has bit encodes as null; the key itself is required. */
TEST(nullable)
{
	struct ntm_m_cs_dest m;
	struct ntm_jerr e;
	json_t *j = parse("{\"fqdn\":\"b.dc2.example\",\"status\":\"pending\","
	    "\"delivered\":null,\"announced\":1700000000,\"attempts\":0}"), *enc;

	CHECK_EQ(ntm_msg_cs_dest_decode(j, &m, &e), 0);
	CHECK_EQ(ntm_jmsg_has(&ntm_msg_cs_dest, &m, "delivered"), 0);
	CHECK_EQ(m.delivered, 0);
	CHECK_EQ(ntm_jmsg_has(&ntm_msg_cs_dest, &m, "announced"), 1);
	CHECK_EQ(m.announced, 1700000000);
	CHECK_EQ(ntm_msg_cs_dest_encode(&m, &enc, &e), 0);
	CHECK(json_is_null(json_object_get(enc, "delivered")));
	CHECK(json_equal(j, enc));
	json_decref(enc);
	ntm_jmsg_set(&ntm_msg_cs_dest, &m, "delivered", 1);
	ntm_jmsg_set(&ntm_msg_cs_dest, &m, "announced", 0);
	CHECK_EQ(ntm_msg_cs_dest_encode(&m, &enc, &e), 0);
	CHECK(json_is_integer(json_object_get(enc, "delivered")));
	CHECK(json_is_null(json_object_get(enc, "announced")));
	json_decref(enc);
	json_object_del(j, "delivered");
	CHECK_EQ(ntm_msg_cs_dest_decode(j, &m, &e), NTM_ERR_JSON);
	CHECK_STR(e.code, "missing_field");
	CHECK_STR(e.field, "delivered");
	json_decref(j);
}

UNIT_MAIN(T(has), T(nullable), T(roundtrip), T(every_message_listed), T(missing), T(wrong_type),
    T(unknown_key), T(too_long), T(bad_format), T(not_object), T(error_read))
