/* test_json.c - strict JSON unpacking. */
#include <jansson.h>

#include "ntm.h"
#include "unit.h"

struct req {
	const char	*user, *note;
	int64_t		 version;
	int		 admin;
	json_t		*opts, *list;
};

static int
unpack(const char *text, struct req *r, struct ntm_jerr *e)
{
	const struct ntm_jfield f[] = {
		{ "version", NTM_J_INT, 1, &r->version, 0 },
		{ "user", NTM_J_STR, 1, &r->user, 8 },
		{ "note", NTM_J_STR, 0, &r->note, 0 },
		{ "admin", NTM_J_BOOL, 0, &r->admin, 0 },
		{ "opts", NTM_J_OBJ, 0, &r->opts, 0 },
		{ "list", NTM_J_ARR, 0, &r->list, 0 },
	};
	json_t *j;
	int ret;

	if ((j = ntm_json_parse(text, strlen(text), e)) == NULL)
		return NTM_ERR_JSON;
	ret = ntm_json_unpack(j, f, sizeof(f) / sizeof(f[0]), e);
	/* Borrowed strings die with j: copy what the checks look at. */
	json_decref(j);
	return ret;
}

TEST(table)
{
	static const struct {
		const char *in, *code, *field, *message;
	} cases[] = {
		{ "{\"version\":1,\"user\":\"bob\"}", "", "", "" },
		{ "{\"version\":1,\"user\":\"bob\",\"note\":\"n\",\"admin\":true,"
		  "\"opts\":{},\"list\":[]}", "", "", "" },
		{ "{\"version\":1,\"user\":\"bob\",\"foo\":1}",
		  "unknown_field", "foo", "unknown field 'foo'" },
		{ "{\"version\":1}",
		  "missing_field", "user", "field 'user': missing" },
		{ "{\"user\":\"bob\"}",
		  "missing_field", "version", "field 'version': missing" },
		{ "{\"version\":1,\"user\":5}",
		  "bad_field", "user", "field 'user': expected string" },
		{ "{\"version\":1,\"user\":null}",
		  "bad_field", "user", "field 'user': expected string" },
		{ "{\"version\":1.0,\"user\":\"bob\"}",
		  "bad_field", "version", "field 'version': expected integer" },
		{ "{\"version\":\"1\",\"user\":\"bob\"}",
		  "bad_field", "version", "field 'version': expected integer" },
		{ "{\"version\":1,\"user\":\"bob\",\"admin\":1}",
		  "bad_field", "admin", "field 'admin': expected boolean" },
		{ "{\"version\":1,\"user\":\"bob\",\"opts\":[]}",
		  "bad_field", "opts", "field 'opts': expected object" },
		{ "{\"version\":1,\"user\":\"bob\",\"list\":{}}",
		  "bad_field", "list", "field 'list': expected array" },
		{ "{\"version\":1,\"user\":\"123456789\"}",
		  "bad_field", "user", "field 'user': longer than 8 bytes" },
		{ "{\"version\":1,\"user\":\"12345678\"}", "", "", "" },
		{ "{\"version\":1,\"user\":\"b\\u0000b\"}",
		  "bad_field", "user", NULL },	/* NUL parses, then fails the string check */
		{ "{\"version\":1,\"user\":\"bob\",\"user\":\"eve\"}",
		  "bad_json", "", NULL },	/* duplicate key */
		{ "{\"version\":1,\"user\":\"bob\"} x", "bad_json", "", NULL },
		{ "{\"version\":99999999999999999999,\"user\":\"bob\"}",
		  "bad_json", "", NULL },
		{ "", "bad_json", "", NULL },
		{ "[1]", "not_object", "", "expected a JSON object" },
		{ "\"s\"", "not_object", "", "expected a JSON object" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct req r = { 0 };
		struct ntm_jerr e;
		int ret = unpack(cases[i].in, &r, &e);

		if (cases[i].code[0] == '\0') {
			CHECK_EQ(ret, 0);
			CHECK_EQ(r.version, 1);
			continue;
		}
		CHECK_EQ(ret, NTM_ERR_JSON);
		CHECK_STR(e.code, cases[i].code);
		CHECK_STR(e.field, cases[i].field);
		if (cases[i].message != NULL)
			CHECK_STR(e.message, cases[i].message);
		else
			CHECK(e.message[0] != '\0');
	}
}

TEST(values)
{
	const char *user = "untouched", *note = "default";
	int64_t version = 0;
	int admin = -1;
	json_t *opts = NULL, *list = NULL;
	const struct ntm_jfield f[] = {
		{ "version", NTM_J_INT, 1, &version, 0 },
		{ "user", NTM_J_STR, 1, &user, 0 },
		{ "note", NTM_J_STR, 0, &note, 0 },
		{ "admin", NTM_J_BOOL, 0, &admin, 0 },
		{ "opts", NTM_J_OBJ, 0, &opts, 0 },
		{ "list", NTM_J_ARR, 0, &list, 0 },
	};
	struct ntm_jerr e;
	json_t *j;
	const char *bad = "{\"version\":-7,\"user\":\"bob\",\"admin\":1}";
	const char *good = "{\"version\":-7,\"user\":\"bob\",\"admin\":false,"
	    "\"list\":[1,2]}";

	/* A failed unpack stores nothing. */
	j = ntm_json_parse(bad, strlen(bad), &e);
	CHECK(j != NULL);
	CHECK_EQ(ntm_json_unpack(j, f, 6, &e), NTM_ERR_JSON);
	CHECK_STR(user, "untouched");
	CHECK_EQ(version, 0);
	json_decref(j);

	j = ntm_json_parse(good, strlen(good), &e);
	CHECK_EQ(ntm_json_unpack(j, f, 6, &e), 0);
	CHECK_EQ(version, -7);
	CHECK_STR(user, "bob");
	CHECK_STR(note, "default");	/* optional, absent: untouched */
	CHECK_EQ(admin, 0);
	CHECK(opts == NULL);
	CHECK(list != NULL && json_array_size(list) == 2);
	json_decref(j);

	/* A field with NULL out is checked but not stored. */
	{
		const struct ntm_jfield g[] = { { "x", NTM_J_INT, 1, NULL, 0 } };

		j = json_pack("{s:i}", "x", 3);
		CHECK_EQ(ntm_json_unpack(j, g, 1, &e), 0);
		json_decref(j);
	}
}

/* Built programmatically, a string may hold NUL; so may a key. */
TEST(nul)
{
	const char *user = NULL;
	const struct ntm_jfield f[] = { { "user", NTM_J_STR, 1, &user, 0 } };
	struct ntm_jerr e;
	json_t *j = json_object();

	CHECK_EQ(json_object_set_new(j, "user", json_stringn("b\0b", 3)), 0);
	CHECK_EQ(ntm_json_unpack(j, f, 1, &e), NTM_ERR_JSON);
	CHECK_STR(e.code, "bad_field");
	CHECK_STR(e.field, "user");
	CHECK(user == NULL);
	json_decref(j);

	j = json_object();
	CHECK_EQ(json_object_set_new(j, "user", json_string("bob")), 0);
	CHECK_EQ(json_object_setn_new(j, "user\0x", 6, json_string("eve")), 0);
	CHECK_EQ(ntm_json_unpack(j, f, 1, &e), NTM_ERR_JSON);
	CHECK_STR(e.code, "unknown_field");
	json_decref(j);

	/* Default maximum: 1024 bytes. */
	{
		char big[1026];

		memset(big, 'a', sizeof(big) - 1);
		big[1025] = '\0';
		j = json_pack("{s:s}", "user", big);
		CHECK_EQ(ntm_json_unpack(j, f, 1, &e), NTM_ERR_JSON);
		json_decref(j);
		big[1024] = '\0';
		j = json_pack("{s:s}", "user", big);
		CHECK_EQ(ntm_json_unpack(j, f, 1, &e), 0);
		json_decref(j);
	}
	CHECK_EQ(ntm_json_unpack(NULL, f, 1, &e), NTM_ERR_JSON);
	CHECK_STR(e.code, "not_object");
}

/* A long unknown key is cut, at a UTF-8 boundary. */
TEST(long_key)
{
	const struct ntm_jfield f[] = { { "a", NTM_J_INT, 0, NULL, 0 } };
	char key[200];
	struct ntm_jerr e;
	json_t *j, *s;
	size_t n = 0;

	for (int i = 0; i < 60; i++) {
		memcpy(key + n, "\xc3\xa9", 2);	/* e-acute */
		n += 2;
	}
	key[n] = '\0';
	j = json_object();
	CHECK_EQ(json_object_set_new(j, key, json_true()), 0);
	CHECK_EQ(ntm_json_unpack(j, f, 1, &e), NTM_ERR_JSON);
	CHECK_STR(e.code, "unknown_field");
	CHECK(strlen(e.field) < sizeof(e.field));
	CHECK(strlen(e.field) % 2 == 0);
	s = json_string(e.message);
	CHECK(s != NULL);
	json_decref(s);
	s = json_string(e.field);
	CHECK(s != NULL);
	json_decref(s);
	json_decref(j);
}

/* Found by fuzz_json: jansson quotes raw input bytes in its error text. */
TEST(parse_error_is_ascii)
{
	static const char in[] = "{\"\\\xdb\x85\":[]}";
	struct ntm_jerr e;
	json_t *j = ntm_json_parse(in, sizeof(in) - 1, &e);

	CHECK(j == NULL);
	CHECK_STR(e.code, "bad_json");
	for (const char *c = e.message; *c; c++)
		CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c <= 0x7e);
	j = json_string(e.message);
	CHECK(j != NULL);
	json_decref(j);
}

UNIT_MAIN(T(parse_error_is_ascii), T(table), T(values), T(nul), T(long_key))
