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
}

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
	struct ntm_replay *r = ntm_replay_new(16);
	uint8_t sig[NTM_SIG_LEN];

	CHECK(r != NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mksig(sig, (unsigned)i);
		CHECK_EQ(ntm_replay_check(r, sig, cases[i].date, 1000000),
		    cases[i].err);
	}
	ntm_replay_free(r);
	ntm_replay_free(NULL);
	CHECK(ntm_replay_new(0) == NULL);
}

TEST(replay_duplicate)
{
	struct ntm_replay *r = ntm_replay_new(4);
	uint8_t sig[NTM_SIG_LEN];

	mksig(sig, 1);
	CHECK_EQ(ntm_replay_check(r, sig, 1000, 1000), 0);
	CHECK_EQ(ntm_replay_check(r, sig, 1000, 1000), NTM_ERR_REPLAY);
	CHECK_EQ(ntm_replay_check(r, sig, 1000, 1300), NTM_ERR_REPLAY);
	/* Once the date is stale the request is refused as stale anyway. */
	CHECK_EQ(ntm_replay_check(r, sig, 1000, 1301), NTM_ERR_EXPIRED);
	sig[63] = 1;
	CHECK_EQ(ntm_replay_check(r, sig, 1000, 1000), 0);
	ntm_replay_free(r);
}

TEST(replay_capacity)
{
	struct ntm_replay *r = ntm_replay_new(3);
	uint8_t sig[NTM_SIG_LEN];

	for (unsigned i = 0; i < 3; i++) {
		mksig(sig, i);
		CHECK_EQ(ntm_replay_check(r, sig, 1000 + i, 1000), 0);
	}
	mksig(sig, 3);
	CHECK_EQ(ntm_replay_check(r, sig, 1000, 1000), NTM_ERR_NOSPACE);
	CHECK_EQ(ntm_replay_check(r, sig, 1000, 1000), NTM_ERR_NOSPACE);
	/* At 1301 the entry dated 1000 has expired and frees a slot; the
	 * others (1001, 1002) are still live. */
	CHECK_EQ(ntm_replay_check(r, sig, 1301, 1301), 0);
	mksig(sig, 4);
	CHECK_EQ(ntm_replay_check(r, sig, 1301, 1301), NTM_ERR_NOSPACE);
	/* Entries kept across the sweep are still remembered. */
	mksig(sig, 1);
	CHECK_EQ(ntm_replay_check(r, sig, 1001, 1301), NTM_ERR_REPLAY);
	/* Much later everything has expired. */
	mksig(sig, 5);
	CHECK_EQ(ntm_replay_check(r, sig, 5000, 5000), 0);
	ntm_replay_free(r);
}

TEST(replay_many)
{
	struct ntm_replay *r = ntm_replay_new(1000);
	uint8_t sig[NTM_SIG_LEN];

	for (unsigned round = 0; round < 5; round++) {
		int64_t now = 10000 + round * 1000;

		for (unsigned i = 0; i < 1000; i++) {
			mksig(sig, round * 1000 + i);
			sig[2] = (uint8_t)round;
			CHECK_EQ(ntm_replay_check(r, sig, now, now), 0);
		}
		mksig(sig, round * 1000 + 999);
		sig[2] = (uint8_t)round;
		CHECK_EQ(ntm_replay_check(r, sig, now, now), NTM_ERR_REPLAY);
	}
	ntm_replay_free(r);
}

UNIT_MAIN(T(init), T(signed_string), T(tamper), T(replay_window),
    T(replay_duplicate), T(replay_capacity), T(replay_many))
