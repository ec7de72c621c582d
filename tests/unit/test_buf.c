/* test_buf.c - bounded buffers, cursor readers and writers. */
#include "ntm.h"
#include "unit.h"

TEST(cur_reads)
{
	static const uint8_t in[] = { 1, 0x02, 0x03, 4, 5, 6, 7,
	    0, 0, 0, 0, 0, 0, 1, 0, 0xaa, 0xbb };
	struct ntm_cur c;
	uint8_t a, bytes[2];
	uint16_t b;
	uint32_t d;
	uint64_t e;

	ntm_cur_init(&c, in, sizeof(in));
	CHECK_EQ(ntm_cur_u8(&c, &a), 0);
	CHECK_EQ(a, 1);
	CHECK_EQ(ntm_cur_u16(&c, &b), 0);
	CHECK_EQ(b, 0x0203);
	CHECK_EQ(ntm_cur_u32(&c, &d), 0);
	CHECK_EQ(d, 0x04050607);
	CHECK_EQ(ntm_cur_u64(&c, &e), 0);
	CHECK_EQ(e, 0x100);
	CHECK_EQ(ntm_cur_left(&c), 2);
	CHECK_EQ(ntm_cur_end(&c), NTM_ERR_TRAILING);
	CHECK_EQ(ntm_cur_bytes(&c, bytes, 2), 0);
	CHECK_EQ(bytes[0], 0xaa);
	CHECK_EQ(bytes[1], 0xbb);
	CHECK_EQ(ntm_cur_end(&c), 0);
}

/* Each read kind fails on input one byte short, and the error sticks. */
TEST(cur_short_sticky)
{
	static const struct { int kind; size_t have; } cases[] = {
		{ 1, 0 }, { 2, 1 }, { 4, 3 }, { 8, 7 }, { 5, 4 },
	};
	static const uint8_t in[8] = { 9, 9, 9, 9, 9, 9, 9, 9 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ntm_cur c;
		uint8_t u8, out[8];
		uint16_t u16;
		uint32_t u32;
		uint64_t u64;
		int r = 0;

		ntm_cur_init(&c, in, cases[i].have);
		switch (cases[i].kind) {
		case 1: r = ntm_cur_u8(&c, &u8); break;
		case 2: r = ntm_cur_u16(&c, &u16); break;
		case 4: r = ntm_cur_u32(&c, &u32); break;
		case 8: r = ntm_cur_u64(&c, &u64); break;
		case 5: r = ntm_cur_bytes(&c, out, 5); break;
		}
		CHECK_EQ(r, NTM_ERR_SHORT);
		/* Sticky: even a read that would fit now fails. */
		CHECK_EQ(ntm_cur_u8(&c, &u8), NTM_ERR_SHORT);
		CHECK(ntm_cur_ptr(&c, 0) == NULL);
		CHECK_EQ(ntm_cur_left(&c), 0);
		CHECK_EQ(ntm_cur_end(&c), NTM_ERR_SHORT);
	}
}

TEST(cur_ptr_empty)
{
	static const uint8_t in[3] = { 1, 2, 3 };
	struct ntm_cur c;
	const uint8_t *p;

	ntm_cur_init(&c, in, sizeof(in));
	p = ntm_cur_ptr(&c, 3);
	CHECK(p == in);
	CHECK_EQ(ntm_cur_end(&c), 0);
	CHECK(ntm_cur_ptr(&c, 1) == NULL);
	CHECK_EQ(ntm_cur_end(&c), NTM_ERR_SHORT);

	ntm_cur_init(&c, NULL, 0);
	CHECK_EQ(ntm_cur_end(&c), 0);
	CHECK_EQ(ntm_cur_left(&c), 0);
}

TEST(wr)
{
	uint8_t out[15];
	struct ntm_wr w;
	static const uint8_t want[15] = { 1, 0x02, 0x03, 4, 5, 6, 7,
	    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };

	ntm_wr_init(&w, out, sizeof(out));
	ntm_wr_u8(&w, 1);
	ntm_wr_u16(&w, 0x0203);
	ntm_wr_u32(&w, 0x04050607);
	ntm_wr_u64(&w, 0x1122334455667788ULL);
	CHECK_EQ(ntm_wr_done(&w), 15);
	CHECK(memcmp(out, want, sizeof(want)) == 0);
	ntm_wr_u8(&w, 1);
	CHECK_EQ(ntm_wr_done(&w), NTM_ERR_TOOBIG);
	ntm_wr_bytes(&w, "", 0);
	CHECK_EQ(ntm_wr_done(&w), NTM_ERR_TOOBIG);

	/* Sticky: a failed u32 leaves no partial write and later fits fail. */
	ntm_wr_init(&w, out, 3);
	ntm_wr_u32(&w, 1);
	ntm_wr_u8(&w, 1);
	CHECK_EQ(ntm_wr_done(&w), NTM_ERR_TOOBIG);
}

TEST(buf_limits)
{
	struct ntm_buf b;

	ntm_buf_init(&b, 8);
	CHECK_EQ(ntm_buf_add(&b, "abcd", 4), 0);
	CHECK_EQ(ntm_buf_printf(&b, "%d", 123), 0);
	CHECK_EQ(b.len, 7);
	CHECK_STR((char *)b.data, "abcd123");
	CHECK_EQ(ntm_buf_add(&b, "xy", 2), NTM_ERR_TOOBIG);
	CHECK_EQ(ntm_buf_printf(&b, "%s", "xy"), NTM_ERR_TOOBIG);
	CHECK_EQ(b.len, 7);
	CHECK_EQ(ntm_buf_add(&b, "z", 1), 0);
	CHECK_EQ(b.len, 8);
	CHECK_STR((char *)b.data, "abcd123z");
	ntm_buf_reset(&b);
	CHECK_EQ(b.len, 0);
	CHECK_STR((char *)b.data, "");
	CHECK_EQ(ntm_buf_add(&b, "12345678", 8), 0);
	ntm_buf_free(&b);
	CHECK(b.data == NULL);
	ntm_buf_free(&b);
	ntm_buf_free(NULL);

	/* Growth across several reallocations. */
	ntm_buf_init(&b, 100000);
	for (int i = 0; i < 1000; i++)
		CHECK_EQ(ntm_buf_add(&b, "0123456789", 10), 0);
	CHECK_EQ(b.len, 10000);
	CHECK_EQ(b.data[9999], '9');
	CHECK_EQ(b.data[10000], '\0');
	ntm_buf_free(&b);
}

TEST(errors)
{
	static const struct { int err; const char *code; } cases[] = {
		{ NTM_ERR_BADPASS, "bad_password" },
		{ NTM_ERR_NOUSER, "unknown_user" },
		{ NTM_ERR_LOCKED, "user_locked" },
		{ NTM_ERR_UNAUTH, "unauthorized" },
		{ NTM_ERR_UNAVAIL, "upstream_unavailable" },
		{ NTM_ERR_NOSPACE, "no_space" },
		{ NTM_ERR_EXISTS, "exists" },
		{ NTM_ERR_NOTFOUND, "not_found" },
		{ NTM_ERR_TOOBIG, "body_too_large" },
		{ NTM_ERR_VERSION, "bad_version" },
		{ NTM_ERR_JSON, "bad_json" },
		{ NTM_ERR_INVAL, "bad_field" },
		{ NTM_ERR_TIMEOUT, "timeout" },
		{ NTM_ERR_CONNECT, "connect_failed" },
		{ NTM_ERR_TLS, "tls_error" },
		{ NTM_ERR_UNTRUSTED, "untrusted_certificate" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_STR(ntm_errcode(cases[i].err), cases[i].code);
		CHECK_EQ(ntm_err_from_code(cases[i].code), cases[i].err);
	}
	/* Every error has distinct text and a code. */
	for (int e = NTM_ERR__LAST + 1; e <= 0; e++) {
		CHECK(ntm_strerror(e) != NULL);
		CHECK(ntm_errcode(e) != NULL);
	}
	CHECK_STR(ntm_strerror(-1000), "unknown error");
	CHECK_STR(ntm_strerror(5), "unknown error");
	CHECK_STR(ntm_errcode(-1000), "internal");
	CHECK_EQ(ntm_err_from_code("no_such_code"), NTM_ERR_PROTO);
	CHECK_EQ(ntm_err_from_code(NULL), NTM_ERR_PROTO);
	CHECK_EQ(ntm_err_from_code("missing_field"), NTM_ERR_JSON);
	CHECK_EQ(ntm_err_from_code("internal"), NTM_ERR_PROTO);
}

static int log_calls;
static char log_last[64];

static void
log_hook(int level, const char *msg, void *arg)
{
	log_calls++;
	snprintf(log_last, sizeof(log_last), "%d %s", level, msg);
}

TEST(log)
{
	ntm_log(NTM_LOG_ERR, "dropped %d", 1);
	ntm_log_set(log_hook, NULL, NTM_LOG_INFO);
	ntm_log(NTM_LOG_DEBUG, "too verbose");
	CHECK_EQ(log_calls, 0);
	ntm_log(NTM_LOG_WARN, "x=%d", 42);
	CHECK_EQ(log_calls, 1);
	CHECK_STR(log_last, "1 x=42");
	ntm_log_set(NULL, NULL, NTM_LOG_DEBUG);
	ntm_log(NTM_LOG_ERR, "dropped");
	CHECK_EQ(log_calls, 1);
}

UNIT_MAIN(T(cur_reads), T(cur_short_sticky), T(cur_ptr_empty), T(wr),
    T(buf_limits), T(errors), T(log))
