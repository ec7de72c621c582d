/* test_sig.c - request signatures and the replay cache. */
#include "ntm.h"
#include "unit.h"

#define NONCE	"AAAAAAAAAAAAAAAAAAAAAA"
#define NONCE2	"AAAAAAAAAAAAAAAAAAAAAB"

static uint8_t pk[NTM_SIGN_PK], sk[NTM_SIGN_SK];

TEST(init)
{
	CHECK_EQ(ntm_crypto_init(), 0);
	CHECK_EQ(ntm_sign_keypair(pk, sk), 0);
}

/* The signed string is fixed by docs/protocol.md 2.2. */
TEST(signed_string)
{
	const char *msg = "ntm-sig-v1\nPOST\n/v1/x\n1700000000\nAAAAAAAAAAAAAAAAAAAAAA\n"
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	uint8_t sig[NTM_SIG_LEN];
	char b64[NTM_SIG_B64], want[NTM_SIG_B64];

	ntm_sign(sig, msg, strlen(msg), sk);
	CHECK_EQ(ntm_b64_encode(want, sizeof(want), sig, sizeof(sig)), 86);
	ntm_req_sign(b64, sk, "POST", "/v1/x", 1700000000, NONCE, "abc", 3);
	CHECK_STR(b64, want);
}

/* An answer's signed string is fixed by docs/protocol.md 2.2 too. */
TEST(answer_string)
{
	const char *msg = "ntm-ans-v1\nPOST\n/v1/x\n404\nAAAAAAAAAAAAAAAAAAAAAA\n"
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	uint8_t sig[NTM_SIG_LEN];
	char b64[NTM_SIG_B64], want[NTM_SIG_B64];

	ntm_sign(sig, msg, strlen(msg), sk);
	CHECK_EQ(ntm_b64_encode(want, sizeof(want), sig, sizeof(sig)), 86);
	ntm_ans_sign(b64, sk, "POST", "/v1/x", 404, NONCE, "abc", 3);
	CHECK_STR(b64, want);
	CHECK_EQ(ntm_ans_verify(b64, pk, "POST", "/v1/x", 404, NONCE, "abc", 3), 0);
	/* Another status, request, nonce or body: refused. */
	CHECK_EQ(ntm_ans_verify(b64, pk, "POST", "/v1/x", 200, NONCE, "abc", 3), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_ans_verify(b64, pk, "POST", "/v1/y", 404, NONCE, "abc", 3), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_ans_verify(b64, pk, "POST", "/v1/x", 404, NONCE2, "abc", 3), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_ans_verify(b64, pk, "POST", "/v1/x", 404, NONCE, "abd", 3), NTM_ERR_CRYPTO);
	/* Not a request's signature either, nor the other way round. */
	ntm_req_sign(b64, sk, "POST", "/v1/x", 404, NONCE, "abc", 3);
	CHECK_EQ(ntm_ans_verify(b64, pk, "POST", "/v1/x", 404, NONCE, "abc", 3), NTM_ERR_CRYPTO);
	/* No status outside 100..999. */
	ntm_ans_sign(b64, sk, "POST", "/v1/x", 99, NONCE, "abc", 3);
	CHECK_STR(b64, "");
}

/* A request naming its receiver: fixed by docs/protocol.md 2.2. */
TEST(receiver_string)
{
	const char *msg = "ntm-sig-v2\nPOST\n/v1/x\n1700000000\nAAAAAAAAAAAAAAAAAAAAAA\n"
	    "dc2.example\n"
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	uint8_t sig[NTM_SIG_LEN];
	char b64[NTM_SIG_B64], want[NTM_SIG_B64];

	ntm_sign(sig, msg, strlen(msg), sk);
	CHECK_EQ(ntm_b64_encode(want, sizeof(want), sig, sizeof(sig)), 86);
	ntm_req_sign_to(b64, sk, "POST", "/v1/x", 1700000000, NONCE, "dc2.example", "abc", 3);
	CHECK_STR(b64, want);
	CHECK_EQ(ntm_req_verify_to(b64, pk, "POST", "/v1/x", 1700000000, NONCE,
	    "dc2.example", "abc", 3), 0);
	/* Another receiver, or none: refused. */
	CHECK_EQ(ntm_req_verify_to(b64, pk, "POST", "/v1/x", 1700000000, NONCE,
	    "dc3.example", "abc", 3), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_req_verify(b64, pk, "POST", "/v1/x", 1700000000, NONCE, "abc", 3),
	    NTM_ERR_CRYPTO);
	/* A name with a newline is not signed at all. */
	ntm_req_sign_to(b64, sk, "POST", "/v1/x", 1700000000, NONCE, "a\nb", "abc", 3);
	CHECK_STR(b64, "");
}

TEST(tamper)
{
	static const struct {
		const char *method, *path;
		int64_t date;
		const char *nonce, *body;
		int err;
	} cases[] = {
		{ "POST", "/v1/login", 1700000000, NONCE, "{\"a\":1}", 0 },
		{ "POST", "/v1/login", 1700000000, NONCE2, "{\"a\":1}", NTM_ERR_CRYPTO },
		{ "POST", "/v1/login", 1700000000, "short", "{\"a\":1}", NTM_ERR_CRYPTO },
		{ "POST", "/v1/login", 1700000000, "AAAAAAAAAAAAAAAAAAAAA\n", "{\"a\":1}", NTM_ERR_CRYPTO },
		{ "GET", "/v1/login", 1700000000, NONCE, "{\"a\":1}", NTM_ERR_CRYPTO },
		{ "POST", "/v1/logout", 1700000000, NONCE, "{\"a\":1}", NTM_ERR_CRYPTO },
		{ "POST", "/v1/login", 1700000001, NONCE, "{\"a\":1}", NTM_ERR_CRYPTO },
		{ "POST", "/v1/login", 1700000000, NONCE, "{\"a\":2}", NTM_ERR_CRYPTO },
		{ "POST", "/v1/login", 1700000000, NONCE, "", NTM_ERR_CRYPTO },
		{ "POST", "/v1/login\n", 1700000000, NONCE, "{\"a\":1}", NTM_ERR_CRYPTO },
		{ "", "/v1/login", 1700000000, NONCE, "{\"a\":1}", NTM_ERR_CRYPTO },
	};
	char b64[NTM_SIG_B64];
	uint8_t other_pk[NTM_SIGN_PK], other_sk[NTM_SIGN_SK];

	ntm_req_sign(b64, sk, "POST", "/v1/login", 1700000000, NONCE, "{\"a\":1}", 7);
	CHECK_EQ(strlen(b64), 86);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_EQ(ntm_req_verify(b64, pk, cases[i].method, cases[i].path,
		    cases[i].date, cases[i].nonce, cases[i].body, strlen(cases[i].body)),
		    cases[i].err);
	CHECK_EQ(ntm_sign_keypair(other_pk, other_sk), 0);
	CHECK_EQ(ntm_req_verify(b64, other_pk, "POST", "/v1/login", 1700000000,
	    NONCE, "{\"a\":1}", 7), NTM_ERR_CRYPTO);
	/* Malformed signature text. */
	CHECK_EQ(ntm_req_verify("", pk, "POST", "/v1/login", 1700000000,
	    NONCE, "{\"a\":1}", 7), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_req_verify(NULL, pk, "POST", "/v1/login", 1700000000,
	    NONCE, "{\"a\":1}", 7), NTM_ERR_CRYPTO);
	b64[85] = b64[85] == 'A' ? 'B' : 'A';
	CHECK_EQ(ntm_req_verify(b64, pk, "POST", "/v1/login", 1700000000,
	    NONCE, "{\"a\":1}", 7), NTM_ERR_CRYPTO);

	/* An empty body is the digest of nothing, with or without a pointer. */
	ntm_req_sign(b64, sk, "GET", "/v1/y", -5, NONCE, NULL, 0);
	CHECK_EQ(ntm_req_verify(b64, pk, "GET", "/v1/y", -5, NONCE, "", 0), 0);
	/* Unsignable input gives an empty signature. */
	ntm_req_sign(b64, sk, "GET\n", "/v1/y", 1, NONCE, NULL, 0);
	CHECK_STR(b64, "");
}

static void
mksig(uint8_t sig[NTM_SIG_LEN], unsigned n)
{
	memset(sig, 0, NTM_SIG_LEN);
	sig[0] = (uint8_t)n;
	sig[1] = (uint8_t)(n >> 8);
	sig[8] = (uint8_t)(n >> 16);
	sig[9] = (uint8_t)(n >> 24);
}

static const uint8_t PK_A[NTM_SIGN_PK] = { 'a' }, PK_B[NTM_SIGN_PK] = { 'b' };

TEST(replay_window)
{
	static const struct { int64_t date; int err; } cases[] = {
		{ 1000000 - 301, NTM_ERR_EXPIRED },
		{ 1000000 - 300, 0 },
		{ 1000000, 0 },
		{ 1000000 + 300, 0 },
		{ 1000000 + 301, NTM_ERR_EXPIRED },
		{ INT64_MIN, NTM_ERR_EXPIRED },
		{ INT64_MAX, NTM_ERR_EXPIRED },
	};
	struct ntm_replay *r = ntm_replay_new(4, 16, 100, 100);
	uint8_t sig[NTM_SIG_LEN];

	CHECK(r != NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mksig(sig, (unsigned)i);
		CHECK_EQ(ntm_replay_check(r, PK_A, sig, cases[i].date, 1000000),
		    cases[i].err);
	}
	ntm_replay_free(r);
	ntm_replay_free(NULL);
	CHECK(ntm_replay_new(0, 16, 1, 1) == NULL);
	CHECK(ntm_replay_new(4, 0, 1, 1) == NULL);
	CHECK(ntm_replay_new(4, 16, 0, 1) == NULL);
}

TEST(replay_duplicate)
{
	struct ntm_replay *r = ntm_replay_new(4, 4, 100, 100);
	uint8_t sig[NTM_SIG_LEN];

	mksig(sig, 1);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1000, 1000), 0);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1000, 1000), NTM_ERR_REPLAY);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1000, 1300), NTM_ERR_REPLAY);
	/* Once the date is stale the request is refused as stale anyway. */
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1000, 1301), NTM_ERR_EXPIRED);
	sig[63] = 1;
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1000, 1000), 0);
	ntm_replay_free(r);
}

/* A peer over its quota evicts its own oldest entries, and its floor keeps
 * what it evicted from being replayed; another peer is not touched. */
TEST(replay_quota_per_peer)
{
	struct ntm_replay *r = ntm_replay_new(4, 3, 100, 100);
	uint8_t sig[NTM_SIG_LEN];

	mksig(sig, 100);
	CHECK_EQ(ntm_replay_check(r, PK_B, sig, 1000, 1000), 0);
	for (unsigned i = 0; i < 3; i++) {
		mksig(sig, i);
		CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1000 + i, 1002), 0);
	}
	/* A's fourth evicts its first (dated 1000): the floor is 1000. */
	mksig(sig, 3);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1003, 1003), 0);
	/* The evicted one, replayed: refused by the floor. */
	mksig(sig, 0);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1000, 1003), NTM_ERR_REPLAY);
	/* A new request dated at the floor too (it cannot be told apart). */
	mksig(sig, 50);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1000, 1003), NTM_ERR_REPLAY);
	/* Those still held are refused as replays, as before. */
	mksig(sig, 2);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1002, 1003), NTM_ERR_REPLAY);
	/* A current request passes. */
	mksig(sig, 4);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 1004, 1004), 0);
	/* B's entry (dated 1000, at A's floor) is B's: still remembered, and
	 * B is not held to A's floor. */
	mksig(sig, 100);
	CHECK_EQ(ntm_replay_check(r, PK_B, sig, 1000, 1004), NTM_ERR_REPLAY);
	mksig(sig, 101);
	CHECK_EQ(ntm_replay_check(r, PK_B, sig, 1000, 1004), 0);
	ntm_replay_free(r);
}

/* The rate limit: burst at once, then rate per second; per peer. */
TEST(replay_rate_per_peer)
{
	struct ntm_replay *r = ntm_replay_new(4, 1000, 2, 5);
	uint8_t sig[NTM_SIG_LEN];
	unsigned n = 0;

	for (unsigned i = 0; i < 5; i++) {
		mksig(sig, n++);
		CHECK_EQ(ntm_replay_check(r, PK_A, sig, 2000, 2000), 0);
	}
	mksig(sig, n++);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 2000, 2000), NTM_ERR_NOSPACE);
	/* Not another peer. */
	mksig(sig, n++);
	CHECK_EQ(ntm_replay_check(r, PK_B, sig, 2000, 2000), 0);
	/* One second later: two more. */
	for (unsigned i = 0; i < 2; i++) {
		mksig(sig, n++);
		CHECK_EQ(ntm_replay_check(r, PK_A, sig, 2001, 2001), 0);
	}
	mksig(sig, n++);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 2001, 2001), NTM_ERR_NOSPACE);
	/* A replay is refused as a replay even when over the rate. */
	mksig(sig, 0);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 2000, 2001), NTM_ERR_REPLAY);
	/* Long after: the bucket is full again, no more than burst. */
	for (unsigned i = 0; i < 5; i++) {
		mksig(sig, n++);
		CHECK_EQ(ntm_replay_check(r, PK_A, sig, 3000, 3000), 0);
	}
	mksig(sig, n++);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 3000, 3000), NTM_ERR_NOSPACE);
	ntm_replay_free(r);
}

/* The attack of issue 13: one peer (a DC relaying anonymous logins) sends
 * as fast as its rate allows for a long time; another peer's requests all
 * pass all along, and the flooding peer's own current requests too. */
TEST(replay_flood_one_peer)
{
	struct ntm_replay *r = ntm_replay_new(8, 512, 200, 400);
	uint8_t sig[NTM_SIG_LEN];
	unsigned n = 0, a_ok = 0, a_refused = 0;

	for (int64_t now = 10000; now < 10000 + 900; now++) {
		for (unsigned i = 0; i < 300; i++) {	/* over the rate */
			mksig(sig, n++);
			sig[4] = 'A';
			if (ntm_replay_check(r, PK_A, sig, now, now) == 0)
				a_ok++;
			else
				a_refused++;
		}
		mksig(sig, n++);
		sig[4] = 'B';
		CHECK_EQ(ntm_replay_check(r, PK_B, sig, now, now), 0);
	}
	CHECK(a_ok >= 200u * 899);
	CHECK(a_refused > 0);
	ntm_replay_free(r);
}

/* Peers that went quiet give their slots up after two windows; until then
 * a new peer finds no room. */
TEST(replay_peers)
{
	struct ntm_replay *r = ntm_replay_new(2, 8, 10, 10);
	uint8_t sig[NTM_SIG_LEN], pk_c[NTM_SIGN_PK] = { 'c' };

	mksig(sig, 1);
	CHECK_EQ(ntm_replay_check(r, PK_A, sig, 5000, 5000), 0);
	mksig(sig, 2);
	CHECK_EQ(ntm_replay_check(r, PK_B, sig, 5000, 5000), 0);
	mksig(sig, 3);
	CHECK_EQ(ntm_replay_check(r, pk_c, sig, 5100, 5100), NTM_ERR_NOSPACE);
	CHECK_EQ(ntm_replay_check(r, pk_c, sig, 5601, 5601), 0);
	ntm_replay_free(r);
}

TEST(replay_many)
{
	struct ntm_replay *r = ntm_replay_new(4, 1000, 1000, 1000);
	uint8_t sig[NTM_SIG_LEN];

	for (unsigned round = 0; round < 5; round++) {
		int64_t now = 10000 + round * 1000;

		for (unsigned i = 0; i < 1000; i++) {
			mksig(sig, round * 1000 + i);
			sig[2] = (uint8_t)round;
			CHECK_EQ(ntm_replay_check(r, PK_A, sig, now, now), 0);
		}
		/* Every one of them is remembered. */
		for (unsigned i = 0; i < 1000; i++) {
			mksig(sig, round * 1000 + i);
			sig[2] = (uint8_t)round;
			CHECK_EQ(ntm_replay_check(r, PK_A, sig, now, now), NTM_ERR_REPLAY);
		}
	}
	ntm_replay_free(r);
}

UNIT_MAIN(T(init), T(signed_string), T(answer_string), T(receiver_string), T(tamper), T(replay_window),
    T(replay_duplicate), T(replay_quota_per_peer), T(replay_rate_per_peer),
    T(replay_flood_one_peer), T(replay_peers), T(replay_many))
