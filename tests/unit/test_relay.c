/* test_relay.c - relay tickets, RELAY_BIND / RELAY_ACK, the RS forwarding core. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "relay.h"
#include "unit.h"

#define NOW	1800000000LL		/* unix seconds used throughout */
#define EXP	(NOW + 600)

static const char RS_NAME[] = "rs1.ntm.test";

struct world {
	uint8_t		as_pk[NTM_SIGN_PK], as_sk[NTM_SIGN_SK];
	uint8_t		dc_pk[NTM_SIGN_PK], dc_sk[NTM_SIGN_SK];
	uint8_t		rs_pk[NTM_SIGN_PK], rs_sk[NTM_SIGN_SK];
	struct ntm_cert	dc_cert;
	uint8_t		tid[NTM_TUNNEL_ID_LEN], key[NTM_KEY_LEN];
	uint8_t		t[NTM_TICKET_MAX];	/* ticket for tid/key (bind_pkt) */
	int		tn;
	const uint8_t	*acct;			/* NULL: version 1 tickets */
};

static void
make_cert(struct ntm_cert *c, int role, const char *name, const uint8_t pk[NTM_SIGN_PK],
    const uint8_t as_sk[NTM_SIGN_SK], int64_t nb, int64_t na)
{
	memset(c, 0, sizeof(*c));
	c->version = 1;
	c->role = (uint8_t)role;
	snprintf(c->name, sizeof(c->name), "%s", name);
	memcpy(c->pk, pk, NTM_SIGN_PK);
	c->serial = 7;
	c->not_before = nb;
	c->not_after = na;
	ntm_cert_sign(c, as_sk);
}

static int ticket(const struct world *w, uint8_t *out, size_t cap);

static void
world_init(struct world *w)
{
	CHECK_EQ(ntm_crypto_init(), 0);
	memset(w, 0, sizeof(*w));
	CHECK_EQ(ntm_sign_keypair(w->as_pk, w->as_sk), 0);
	CHECK_EQ(ntm_sign_keypair(w->dc_pk, w->dc_sk), 0);
	CHECK_EQ(ntm_sign_keypair(w->rs_pk, w->rs_sk), 0);
	make_cert(&w->dc_cert, NTM_ROLE_DC, "dc1.ntm.test", w->dc_pk, w->as_sk,
	    NOW - 86400, NOW + 86400);
	memset(w->tid, 0xa5, sizeof(w->tid));
	w->tid[0] = 0x11;
	for (size_t i = 0; i < sizeof(w->key); i++)
		w->key[i] = (uint8_t)i;
	w->tn = ticket(w, w->t, sizeof(w->t));
}

static int
ticket(const struct world *w, uint8_t *out, size_t cap)
{
	return ntm_ticket_make(out, cap, w->tid, EXP, RS_NAME, w->rs_pk, w->key, w->acct,
	    &w->dc_cert, w->dc_sk);
}

TEST(ticket_roundtrip)
{
	struct world w;
	struct ntm_ticket_info ti;
	uint8_t t[NTM_TICKET_MAX];
	int n;

	world_init(&w);
	n = ticket(&w, t, sizeof(t));
	CHECK(n > 0 && n <= NTM_TICKET_MAX);
	/* 172 fixed bytes + name + certificate */
	CHECK_EQ(n, 172 + (int)strlen(RS_NAME) + 3 + 12 + 32 + 24 + 64);
	CHECK_EQ(t[0], 1);
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, w.as_pk, RS_NAME, w.rs_sk, NOW), 0);
	CHECK(memcmp(ti.tunnel_id, w.tid, sizeof(w.tid)) == 0);
	CHECK(memcmp(ti.relay_key, w.key, sizeof(w.key)) == 0);
	CHECK_EQ(ti.expires, EXP);
	CHECK_STR(ti.dc, "dc1.ntm.test");
	/* The last second is still valid. */
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, w.as_pk, RS_NAME, w.rs_sk, EXP), 0);
	/* Too small an output buffer. */
	CHECK_EQ(ticket(&w, t, (size_t)n - 1), NTM_ERR_TOOBIG);
}

/* Version 2 names the account, inside the DC's signature. */
TEST(ticket_v2)
{
	struct world w;
	struct ntm_ticket_info ti;
	uint8_t t[NTM_TICKET_MAX + 1], bad[NTM_TICKET_MAX + 1];
	uint8_t bob[NTM_TICKET_ACCOUNT_LEN], bob2[NTM_TICKET_ACCOUNT_LEN];
	uint8_t dave[NTM_TICKET_ACCOUNT_LEN], pk2[NTM_SIGN_PK], sk2[NTM_SIGN_SK];
	int n, v1n;

	world_init(&w);
	/* The account id: one per account and DC key, a name it does not show. */
	CHECK_EQ(ntm_ticket_account(bob, "bob", w.dc_sk), 0);
	CHECK_EQ(ntm_ticket_account(bob2, "bob", w.dc_sk), 0);
	CHECK(memcmp(bob, bob2, sizeof(bob)) == 0);
	CHECK_EQ(ntm_ticket_account(dave, "dave", w.dc_sk), 0);
	CHECK(memcmp(bob, dave, sizeof(bob)) != 0);
	CHECK_EQ(ntm_sign_keypair(pk2, sk2), 0);
	CHECK_EQ(ntm_ticket_account(bob2, "bob", sk2), 0);
	CHECK(memcmp(bob, bob2, sizeof(bob)) != 0);
	CHECK(memmem(bob, sizeof(bob), "bob", 3) == NULL);
	CHECK_EQ(ntm_ticket_account(bob2, "", w.dc_sk), NTM_ERR_INVAL);
	CHECK_EQ(ntm_ticket_account(bob2, NULL, w.dc_sk), NTM_ERR_INVAL);

	v1n = w.tn;
	w.acct = bob;
	n = ticket(&w, t, sizeof(t));
	/* 16 bytes more than version 1, the account after expires */
	CHECK_EQ(n, v1n + NTM_TICKET_ACCOUNT_LEN);
	CHECK_EQ(n, 188 + (int)strlen(RS_NAME) + 3 + 12 + 32 + 24 + 64);
	CHECK(n <= NTM_TICKET_MAX);
	CHECK_EQ(t[0], NTM_TICKET_V2);
	CHECK(memcmp(t + 1, w.tid, NTM_TUNNEL_ID_LEN) == 0);
	CHECK(memcmp(t + 1 + NTM_TUNNEL_ID_LEN + 8, bob, sizeof(bob)) == 0);
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, w.as_pk, RS_NAME, w.rs_sk, NOW), 0);
	CHECK_EQ(ti.version, NTM_TICKET_V2);
	CHECK(memcmp(ti.account, bob, sizeof(bob)) == 0);
	CHECK(memcmp(ti.tunnel_id, w.tid, sizeof(w.tid)) == 0);
	CHECK(memcmp(ti.relay_key, w.key, sizeof(w.key)) == 0);
	CHECK_EQ(ti.expires, EXP);
	CHECK_STR(ti.dc, "dc1.ntm.test");
	CHECK_EQ(ticket(&w, t, (size_t)n - 1), NTM_ERR_TOOBIG);
	/* Version 1 still opens, with no account. */
	CHECK_EQ(ntm_ticket_open(&ti, w.t, (size_t)v1n, w.as_pk, RS_NAME, w.rs_sk, NOW), 0);
	CHECK_EQ(ti.version, NTM_TICKET_V1);
	{
		static const uint8_t zero[NTM_TICKET_ACCOUNT_LEN];

		CHECK(memcmp(ti.account, zero, sizeof(zero)) == 0);
	}
	/* Truncated, one byte more, or any bit flipped (the account, the
	 * version: another account or none) does not open. */
	for (int i = 0; i < n; i++)
		CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)i, w.as_pk, RS_NAME, w.rs_sk, NOW),
		    NTM_ERR_PROTO);
	memcpy(bad, t, (size_t)n);
	bad[n] = 0;
	CHECK_EQ(ntm_ticket_open(&ti, bad, (size_t)n + 1, w.as_pk, RS_NAME, w.rs_sk, NOW),
	    NTM_ERR_PROTO);
	for (int i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			memcpy(bad, t, (size_t)n);
			bad[i] ^= (uint8_t)(1u << bit);
			if (ntm_ticket_open(&ti, bad, (size_t)n, w.as_pk, RS_NAME, w.rs_sk,
			    NOW) == 0) {
				fprintf(stderr, "flipped byte %d bit %d accepted\n", i, bit);
				CHECK(0);
			}
		}
	}
	/* The account cut out and the version set to 1: the signature (over
	 * "ntm-ticket-v2" and the account) no longer verifies. */
	bad[0] = NTM_TICKET_V1;
	memcpy(bad + 1, t + 1, NTM_TUNNEL_ID_LEN + 8);
	memcpy(bad + 1 + NTM_TUNNEL_ID_LEN + 8, t + 1 + NTM_TUNNEL_ID_LEN + 8 + 16,
	    (size_t)n - (1 + NTM_TUNNEL_ID_LEN + 8 + 16));
	CHECK_EQ(ntm_ticket_open(&ti, bad, (size_t)n - 16, w.as_pk, RS_NAME, w.rs_sk, NOW),
	    NTM_ERR_CRYPTO);
	/* Version 3 is not known. */
	memcpy(bad, t, (size_t)n);
	bad[0] = 3;
	CHECK_EQ(ntm_ticket_open(&ti, bad, (size_t)n, w.as_pk, RS_NAME, w.rs_sk, NOW),
	    NTM_ERR_PROTO);
}

TEST(ticket_truncated_and_flipped)
{
	struct world w;
	struct ntm_ticket_info ti;
	uint8_t t[NTM_TICKET_MAX + 1], bad[NTM_TICKET_MAX + 1];
	int n;

	world_init(&w);
	n = ticket(&w, t, sizeof(t));
	CHECK(n > 0);
	for (int i = 0; i < n; i++)
		CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)i, w.as_pk, RS_NAME, w.rs_sk, NOW),
		    NTM_ERR_PROTO);
	/* A trailing byte. */
	memcpy(bad, t, (size_t)n);
	bad[n] = 0;
	CHECK_EQ(ntm_ticket_open(&ti, bad, (size_t)n + 1, w.as_pk, RS_NAME, w.rs_sk, NOW),
	    NTM_ERR_PROTO);
	/* Name lengths past NTM_NAME_MAX (found by fuzz_ticket: 255 overran). */
	for (int len = 254; len <= 255; len++) {
		memcpy(bad, t, (size_t)n);
		bad[1 + NTM_TUNNEL_ID_LEN + 8] = (uint8_t)len;
		CHECK_EQ(ntm_ticket_open(&ti, bad, (size_t)n, w.as_pk, RS_NAME, w.rs_sk, NOW),
		    NTM_ERR_PROTO);
	}
	for (int i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			memcpy(bad, t, (size_t)n);
			bad[i] ^= (uint8_t)(1u << bit);
			if (ntm_ticket_open(&ti, bad, (size_t)n, w.as_pk, RS_NAME, w.rs_sk,
			    NOW) == 0) {
				fprintf(stderr, "flipped byte %d bit %d accepted\n", i, bit);
				CHECK(0);
			}
		}
	}
}

TEST(ticket_refused)
{
	struct world w;
	struct ntm_ticket_info ti;
	struct ntm_cert other;
	uint8_t t[NTM_TICKET_MAX], pk2[NTM_SIGN_PK], sk2[NTM_SIGN_SK];
	int n;

	world_init(&w);
	CHECK_EQ(ntm_sign_keypair(pk2, sk2), 0);
	n = ticket(&w, t, sizeof(t));
	CHECK(n > 0);
	/* Expired ticket; DC certificate not valid now. */
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, w.as_pk, RS_NAME, w.rs_sk, EXP + 1),
	    NTM_ERR_EXPIRED);
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, w.as_pk, RS_NAME, w.rs_sk,
	    NOW + 86401), NTM_ERR_EXPIRED);
	/* Another RS's name. */
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, w.as_pk, "rs2.ntm.test", w.rs_sk, NOW),
	    NTM_ERR_INVAL);
	/* The right name but not our key: the relay key does not open. */
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, w.as_pk, RS_NAME, sk2, NOW),
	    NTM_ERR_CRYPTO);
	/* The DC certificate comes from another AS. */
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, pk2, RS_NAME, w.rs_sk, NOW),
	    NTM_ERR_CRYPTO);

	/* Signed by a certified server that is not a DC. */
	make_cert(&other, NTM_ROLE_RS, "rs9.ntm.test", w.dc_pk, w.as_sk, NOW - 10, NOW + 10);
	n = ntm_ticket_make(t, sizeof(t), w.tid, EXP, RS_NAME, w.rs_pk, w.key, NULL, &other, w.dc_sk);
	CHECK(n > 0);
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, w.as_pk, RS_NAME, w.rs_sk, NOW),
	    NTM_ERR_CRYPTO);
	make_cert(&other, NTM_ROLE_CS, "cs1.ntm.test", w.dc_pk, w.as_sk, NOW - 10, NOW + 10);
	n = ntm_ticket_make(t, sizeof(t), w.tid, EXP, RS_NAME, w.rs_pk, w.key, NULL, &other, w.dc_sk);
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, w.as_pk, RS_NAME, w.rs_sk, NOW),
	    NTM_ERR_CRYPTO);
	/* A DC certificate, but the ticket signed by another key. */
	n = ntm_ticket_make(t, sizeof(t), w.tid, EXP, RS_NAME, w.rs_pk, w.key, NULL, &w.dc_cert, sk2);
	CHECK(n > 0);
	CHECK_EQ(ntm_ticket_open(&ti, t, (size_t)n, w.as_pk, RS_NAME, w.rs_sk, NOW),
	    NTM_ERR_CRYPTO);
	/* Bad arguments to make. */
	CHECK_EQ(ntm_ticket_make(t, sizeof(t), w.tid, EXP, "Not A Name", w.rs_pk, w.key, NULL,
	    &w.dc_cert, w.dc_sk), NTM_ERR_INVAL);
	CHECK_EQ(ntm_ticket_make(t, sizeof(t), w.tid, EXP, "", w.rs_pk, w.key, NULL,
	    &w.dc_cert, w.dc_sk), NTM_ERR_INVAL);
}

TEST(ticket_too_big)
{
	struct world w;
	uint8_t t[NTM_TICKET_MAX * 2];
	char name[254];

	world_init(&w);
	/* 4 labels of 63 = 255 > 253: use 3 x 63 + a 61-byte label. */
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[253] = '\0';
	CHECK(ntm_valid_dnsname(name));
	/* A long RS name alone fits ... */
	CHECK(ntm_ticket_make(t, sizeof(t), w.tid, EXP, name, w.rs_pk, w.key, NULL,
	    &w.dc_cert, w.dc_sk) > 0);
	/* ... but not with a DC name as long: 801 bytes > NTM_TICKET_MAX. */
	make_cert(&w.dc_cert, NTM_ROLE_DC, name, w.dc_pk, w.as_sk, NOW - 10, NOW + 10);
	CHECK_EQ(ntm_ticket_make(t, sizeof(t), w.tid, EXP, name, w.rs_pk, w.key, NULL,
	    &w.dc_cert, w.dc_sk), NTM_ERR_TOOBIG);
}

TEST(bind)
{
	struct world w;
	struct ntm_relay_bind b;
	uint8_t t[NTM_TICKET_MAX], p[NTM_RELAY_BIND_MAX + 1], bad[NTM_RELAY_BIND_MAX + 1];
	uint8_t key2[NTM_KEY_LEN];
	int tn, n;

	world_init(&w);
	memset(key2, 9, sizeof(key2));
	tn = ticket(&w, t, sizeof(t));
	CHECK(tn > 0);
	n = ntm_relay_bind_make(p, sizeof(p), 1, 0x0102030405060708ULL, t, (size_t)tn, w.key);
	CHECK_EQ(n, NTM_HDR_LEN + 4 + 8 + 2 + tn + NTM_MAC_LEN);
	CHECK_EQ(ntm_msg_validate(p, (size_t)n), NTM_MSG_RELAY_BIND);
	CHECK_EQ(p[4], 1);
	CHECK_EQ(p[8], 0x01);
	CHECK_EQ(p[15], 0x08);
	CHECK_EQ(ntm_relay_bind_parse(&b, p, (size_t)n), 0);
	CHECK_EQ(b.side, 1);
	CHECK(b.counter == 0x0102030405060708ULL);
	CHECK_EQ(b.tlen, tn);
	CHECK(b.ticket == p + 18);
	CHECK(memcmp(b.ticket, t, (size_t)tn) == 0);
	CHECK_EQ(ntm_relay_bind_verify(p, (size_t)n, w.key), 0);
	CHECK_EQ(ntm_relay_bind_verify(p, (size_t)n, key2), NTM_ERR_CRYPTO);
	for (int i = 0; i < n; i++) {
		memcpy(bad, p, (size_t)n);
		bad[i] ^= 0x40;
		CHECK(ntm_relay_bind_parse(&b, bad, (size_t)n) < 0 ||
		    ntm_relay_bind_verify(bad, (size_t)n, w.key) < 0);
	}
	for (int i = 0; i < n; i++)
		CHECK(ntm_relay_bind_parse(&b, p, (size_t)i) < 0);
	/* side 2, reserved bytes, ticket length off by one */
	memcpy(bad, p, (size_t)n);
	bad[4] = 2;
	CHECK_EQ(ntm_relay_bind_parse(&b, bad, (size_t)n), NTM_ERR_PROTO);
	memcpy(bad, p, (size_t)n);
	bad[6] = 1;
	CHECK_EQ(ntm_relay_bind_parse(&b, bad, (size_t)n), NTM_ERR_PROTO);
	memcpy(bad, p, (size_t)n);
	bad[17]++;
	CHECK_EQ(ntm_relay_bind_parse(&b, bad, (size_t)n), NTM_ERR_PROTO);
	memcpy(bad, p, (size_t)n);
	bad[n] = 0;
	CHECK_EQ(ntm_relay_bind_parse(&b, bad, (size_t)n + 1), NTM_ERR_PROTO);
	/* Not a bind at all. */
	ntm_msg_header(bad, NTM_MSG_DATA);
	CHECK_EQ(ntm_relay_bind_parse(&b, bad, 64), NTM_ERR_PROTO);
	/* make: bad side, empty or oversized ticket, small buffer */
	CHECK_EQ(ntm_relay_bind_make(p, sizeof(p), 2, 1, t, (size_t)tn, w.key), NTM_ERR_INVAL);
	CHECK_EQ(ntm_relay_bind_make(p, sizeof(p), 0, 1, t, 0, w.key), NTM_ERR_INVAL);
	CHECK_EQ(ntm_relay_bind_make(p, sizeof(p), 0, 1, p, NTM_TICKET_MAX + 1, w.key),
	    NTM_ERR_INVAL);
	CHECK_EQ(ntm_relay_bind_make(p, (size_t)n - 1, 0, 1, t, (size_t)tn, w.key),
	    NTM_ERR_TOOBIG);
}

TEST(ack)
{
	uint8_t key[NTM_KEY_LEN], key2[NTM_KEY_LEN], a[NTM_RELAY_ACK_LEN], bad[NTM_RELAY_ACK_LEN];
	int side = -1, pb = -1;
	uint64_t ctr = 0;

	memset(key, 1, sizeof(key));
	memset(key2, 2, sizeof(key2));
	CHECK_EQ(ntm_relay_ack_make(a, 1, 1, 42, key), NTM_RELAY_ACK_LEN);
	CHECK_EQ(ntm_msg_validate(a, sizeof(a)), NTM_MSG_RELAY_ACK);
	CHECK_EQ(ntm_relay_ack_open(a, sizeof(a), key, &side, &pb, &ctr), 0);
	CHECK_EQ(side, 1);
	CHECK_EQ(pb, 1);
	CHECK_EQ(ctr, 42);
	CHECK_EQ(ntm_relay_ack_make(a, 0, 0, 43, key), NTM_RELAY_ACK_LEN);
	CHECK_EQ(ntm_relay_ack_open(a, sizeof(a), key, &side, &pb, &ctr), 0);
	CHECK_EQ(side, 0);
	CHECK_EQ(pb, 0);
	CHECK_EQ(ctr, 43);
	CHECK_EQ(ntm_relay_ack_open(a, sizeof(a), key2, &side, &pb, &ctr), NTM_ERR_CRYPTO);
	for (size_t i = 0; i < sizeof(a); i++) {
		memcpy(bad, a, sizeof(a));
		bad[i] ^= 1;
		CHECK(ntm_relay_ack_open(bad, sizeof(bad), key, &side, &pb, &ctr) < 0);
	}
	for (size_t i = 0; i < sizeof(a); i++)
		CHECK(ntm_relay_ack_open(a, i, key, &side, &pb, &ctr) < 0);
	CHECK_EQ(ntm_relay_ack_make(a, 2, 0, 1, key), NTM_ERR_INVAL);
}

/* ---- the forwarding core ------------------------------------------------- */

static struct sockaddr_storage
sa(const char *s)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memset(&ss, 0, sizeof(ss));
	if (ntm_sa_parse(&ss, &len, s) < 0)
		fprintf(stderr, "bad test address %s\n", s);
	return ss;
}

static socklen_t
salen(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* Feeds p from address `from` to local `to`; returns the action. */
static int
feed(struct ntm_relay *r, const uint8_t *p, size_t n, const char *from, const char *to,
    int64_t ms, int64_t unix_s, struct ntm_relay_out *out)
{
	struct sockaddr_storage f = sa(from), l = sa(to);

	return ntm_relay_input(r, p, n, (struct sockaddr *)&f, salen(&f),
	    (struct sockaddr *)&l, salen(&l), ms, unix_s, out);
}

/* A fresh ticket for w's current tunnel id and key (sealing is randomised,
 * so each one differs). */
static void
reticket(struct world *w)
{
	w->tn = ticket(w, w->t, sizeof(w->t));
	CHECK(w->tn > 0);
}

static int
bind_pkt(const struct world *w, uint8_t *p, int side, uint64_t ctr)
{
	return ntm_relay_bind_make(p, NTM_RELAY_BIND_MAX, side, ctr, w->t, (size_t)w->tn,
	    w->key);
}

/* The bind again (counter ctr) with the cookie of reply o, which answered
 * the bind b[0..bn) (without a cookie); into p, which may be b. */
static int
cookie_bind(const struct world *w, uint8_t *p, int side, uint64_t ctr, const uint8_t *b,
    size_t bn, const struct ntm_relay_out *o)
{
	uint8_t c[NTM_RELAY_COOKIE], mac[NTM_MAC_LEN];

	memcpy(mac, b + bn - NTM_MAC_LEN, sizeof(mac));
	CHECK_EQ(o->reply_len, NTM_RELAY_COOKIE_LEN);
	CHECK(o->reply_len <= bn);
	CHECK_EQ(ntm_relay_cookie_open(o->reply, o->reply_len, w->tid, mac, c), 0);
	return ntm_relay_bind_make_cookie(p, NTM_RELAY_BIND_MAX, side, ctr, w->t,
	    (size_t)w->tn, w->key, c);
}

static size_t
data_pkt(uint8_t *p, uint32_t ridx)
{
	memset(p, 0x5c, NTM_DATA_MIN_LEN + 20);
	ntm_msg_header(p, NTM_MSG_DATA);
	p[4] = (uint8_t)(ridx >> 24);
	p[5] = (uint8_t)(ridx >> 16);
	p[6] = (uint8_t)(ridx >> 8);
	p[7] = (uint8_t)ridx;
	return NTM_DATA_MIN_LEN + 20;
}

static void
hs_init_pkt(uint8_t *p, uint32_t sidx, const uint8_t tid[NTM_TUNNEL_ID_LEN])
{
	memset(p, 0x33, NTM_HS_INIT_LEN);
	ntm_msg_header(p, NTM_MSG_HS_INIT);
	p[4] = 0; p[5] = 0; p[6] = 0; p[7] = (uint8_t)sidx;
	memcpy(p + 8, tid, NTM_TUNNEL_ID_LEN);
}

static void
hs_resp_pkt(uint8_t *p, uint32_t sidx, uint32_t ridx)
{
	memset(p, 0x44, NTM_HS_RESP_LEN);
	ntm_msg_header(p, NTM_MSG_HS_RESP);
	memset(p + 4, 0, 8);
	p[7] = (uint8_t)sidx;
	p[11] = (uint8_t)ridx;
}

static const char *
out_to(const struct ntm_relay_out *o, char *buf, size_t cap)
{
	return ntm_sa_str((const struct sockaddr *)&o->to, buf, cap);
}

static const char *
out_src(const struct ntm_relay_out *o, char *buf, size_t cap)
{
	return ntm_sa_str((const struct sockaddr *)&o->src, buf, cap);
}

#define A4	"198.18.0.10:4000"
#define B6	"[fd00:5::20]:5000"
#define RS4	"198.18.0.1:3478"
#define RS6	"[fd00:5::1]:3478"

TEST(core_bind_and_forward)
{
	struct world w;
	struct ntm_relay *r;
	struct ntm_relay_out o;
	struct ntm_relay_stats st;
	uint8_t p[NTM_UDP_MAX], d[NTM_UDP_MAX];
	char buf[64];
	int n, side, pb;
	uint64_t ctr;
	size_t dn;

	world_init(&w);
	r = ntm_relay_new(NULL, RS_NAME, w.rs_sk, w.as_pk);
	CHECK(r != NULL);
	dn = data_pkt(d, 7);

	/* Nothing bound: DATA is dropped. */
	CHECK_EQ(feed(r, d, dn, A4, RS4, 1000, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_UNBOUND);

	/* Side 0 binds over IPv4: ACK, peer not bound yet. */
	n = bind_pkt(&w, p, 0, 5);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 1000, NOW, &o), NTM_RELAY_REPLY);
	CHECK_STR(out_to(&o, buf, sizeof(buf)), A4);
	CHECK_STR(out_src(&o, buf, sizeof(buf)), RS4);
	CHECK_EQ(ntm_relay_ack_open(o.reply, o.reply_len, w.key, &side, &pb, &ctr), 0);
	CHECK_EQ(side, 0);
	CHECK_EQ(pb, 0);
	CHECK_EQ(ctr, 5);
	CHECK_EQ(o.notify_len, 0);		/* nobody waits */
	/* Peer unbound: still dropped. */
	CHECK_EQ(feed(r, d, dn, A4, RS4, 1001, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_UNBOUND);

	/* Side 1 binds over IPv6: ACK says the peer is bound; side 0, which
	 * waited, is told at once (from the address it bound to). */
	n = bind_pkt(&w, p, 1, 9);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 1002, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(ntm_relay_ack_open(o.reply, o.reply_len, w.key, &side, &pb, &ctr), 0);
	CHECK_EQ(side, 1);
	CHECK_EQ(pb, 1);
	CHECK_EQ(o.notify_len, NTM_RELAY_ACK_LEN);
	CHECK_STR(ntm_sa_str((const struct sockaddr *)&o.notify_to, buf, sizeof(buf)), A4);
	CHECK_STR(ntm_sa_str((const struct sockaddr *)&o.notify_src, buf, sizeof(buf)), RS4);
	CHECK_EQ(ntm_relay_ack_open(o.notify, o.notify_len, w.key, &side, &pb, &ctr), 0);
	CHECK_EQ(side, 0);
	CHECK_EQ(pb, 1);
	CHECK_EQ(ctr, 5);
	/* Its keepalive bind from the same address: nobody to tell again. */
	n = bind_pkt(&w, p, 1, 10);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 1002, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.notify_len, 0);

	/* v4 -> v6 and back, each leaving from the address the peer bound to. */
	CHECK_EQ(feed(r, d, dn, A4, RS4, 1003, NOW, &o), NTM_RELAY_FORWARD);
	CHECK_STR(out_to(&o, buf, sizeof(buf)), B6);
	CHECK_STR(out_src(&o, buf, sizeof(buf)), RS6);
	CHECK_EQ(feed(r, d, dn, B6, RS6, 1004, NOW, &o), NTM_RELAY_FORWARD);
	CHECK_STR(out_to(&o, buf, sizeof(buf)), A4);
	CHECK_STR(out_src(&o, buf, sizeof(buf)), RS4);
	/* An IPv4-mapped source is the same IPv4 client. */
	CHECK_EQ(feed(r, d, dn, "[::ffff:198.18.0.10]:4000", RS6, 1005, NOW, &o),
	    NTM_RELAY_FORWARD);
	/* Same host, other port: unbound. */
	CHECK_EQ(feed(r, d, dn, "198.18.0.10:4001", RS4, 1005, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_UNBOUND);

	/* Replayed bind (same counter), older counter, wrong MAC. */
	n = bind_pkt(&w, p, 1, 9);
	CHECK_EQ(feed(r, p, (size_t)n, "[fd00:5::66]:1", RS6, 1006, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_REPLAY);
	n = bind_pkt(&w, p, 1, 8);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 1006, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_REPLAY);
	n = bind_pkt(&w, p, 1, 10);
	p[n - 1] ^= 1;
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 1006, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_BAD_MAC);
	/* A forwarded address did not move. */
	CHECK_EQ(feed(r, d, dn, A4, RS4, 1007, NOW, &o), NTM_RELAY_FORWARD);
	CHECK_STR(out_to(&o, buf, sizeof(buf)), B6);

	/* Mobility: side 1 re-binds from a new address; traffic follows. */
	n = bind_pkt(&w, p, 1, 11);
	CHECK_EQ(feed(r, p, (size_t)n, "[fd00:5::21]:6000", RS6, 1008, NOW, &o),
	    NTM_RELAY_REPLY);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 1009, NOW, &o), NTM_RELAY_FORWARD);
	CHECK_STR(out_to(&o, buf, sizeof(buf)), "[fd00:5::21]:6000");
	CHECK_EQ(feed(r, d, dn, B6, RS6, 1009, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_UNBOUND);

	/* Other message types and junk. */
	CHECK_EQ(feed(r, o.reply, 3, A4, RS4, 1010, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_MALFORMED);
	ntm_msg_header(p, NTM_MSG_RELAY_ACK);
	CHECK_EQ(feed(r, p, NTM_RELAY_ACK_LEN, A4, RS4, 1010, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_MALFORMED);

	ntm_relay_get_stats(r, &st);
	CHECK_EQ(st.sessions, 1);
	CHECK_EQ(st.binds, 4);		/* with the keepalive bind above */
	CHECK_EQ(st.notifies, 2);	/* side 1 came up, then moved */
	CHECK_EQ(st.fwd_packets, 5);
	CHECK_EQ(st.fwd_bytes, 5 * dn);
	CHECK_EQ(st.drops[NTM_RELAY_DROP_REPLAY], 2);
	CHECK_EQ(st.drops[NTM_RELAY_DROP_BAD_MAC], 1);
	CHECK_EQ(st.drops[NTM_RELAY_DROP_UNBOUND], 4);
	CHECK_EQ(st.drops[NTM_RELAY_DROP_MALFORMED], 2);
	ntm_relay_free(r);
}

static void
count_sess(const struct ntm_relay_sess_info *s, void *arg)
{
	(*(int *)arg)++;
	CHECK(s->side[0].bound);
}

TEST(core_limits)
{
	struct world w;
	struct ntm_relay *r;
	struct ntm_relay_out o;
	struct ntm_relay_limits lim = { .max_sessions = 2, .idle_ms = 5000,
	    .session_pps = 10, .bind_pps = 3, .dc_share = 100 };
	uint8_t p[NTM_UDP_MAX], d[NTM_UDP_MAX];
	int n, i, fwd, count;
	size_t dn;

	world_init(&w);
	r = ntm_relay_new(&lim, RS_NAME, w.rs_sk, w.as_pk);
	CHECK(r != NULL);
	dn = data_pkt(d, 1);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 0, NOW, &o), NTM_RELAY_REPLY);
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 0, NOW, &o), NTM_RELAY_REPLY);

	/* 10 packets/s, burst 10: the 11th in the same millisecond is refused,
	 * and 100 ms later one more passes. */
	for (i = fwd = 0; i < 11; i++)
		if (feed(r, d, dn, A4, RS4, 10, NOW, &o) == NTM_RELAY_FORWARD)
			fwd++;
	CHECK_EQ(fwd, 10);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_RATE);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 60, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 110, NOW, &o), NTM_RELAY_FORWARD);

	/* Re-binding with the same ticket skips the ticket check (bind_pps 3
	 * was used twice above), so keepalives are cheap. */
	for (i = 0; i < 5; i++) {
		n = bind_pkt(&w, p, 0, 2 + (uint64_t)i);
		CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 120, NOW, &o), NTM_RELAY_REPLY);
	}
	/* New tunnels need full checks: 1.39 left in the bucket at 130 ms, under
	 * half of it: the RS is under load and answers with a cookie; the bind
	 * again with the cookie is checked. */
	w.tid[0] = 0x22;
	reticket(&w);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.0.11:1", RS4, 130, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_COOKIE);
	n = cookie_bind(&w, p, 0, 2, p, (size_t)n, &o);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.0.11:1", RS4, 130, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_ACK);
	/* 0.39 left: even with a cookie, no check. */
	w.tid[0] = 0x33;
	reticket(&w);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.0.12:1", RS4, 130, NOW, &o), NTM_RELAY_REPLY);
	n = cookie_bind(&w, p, 0, 2, p, (size_t)n, &o);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.0.12:1", RS4, 130, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_RATE);
	/* A second later the bucket refilled, but the table is full (2). */
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.0.12:1", RS4, 1200, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_FULL);

	count = 0;
	ntm_relay_walk(r, 1200, count_sess, &count);
	CHECK_EQ(count, 2);
	/* Idle: session 0x22 was last used at 130, session 0x11 at 120. */
	CHECK_EQ(ntm_relay_expire(r, 5120), 0);
	CHECK_EQ(ntm_relay_expire(r, 5121), 1);
	CHECK_EQ(ntm_relay_expire(r, 5131), 1);
	count = 0;
	ntm_relay_walk(r, 6000, count_sess, &count);
	CHECK_EQ(count, 0);
	/* Room again. */
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.0.12:1", RS4, 6000, NOW, &o), NTM_RELAY_REPLY);
	ntm_relay_free(r);
}

TEST(core_expiry)
{
	struct world w;
	struct ntm_relay *r;
	struct ntm_relay_out o;
	uint8_t p[NTM_UDP_MAX], d[NTM_UDP_MAX];
	int n;
	size_t dn;

	world_init(&w);
	r = ntm_relay_new(NULL, RS_NAME, w.rs_sk, w.as_pk);
	dn = data_pkt(d, 1);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 0, NOW, &o), NTM_RELAY_REPLY);
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 0, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 1, EXP, &o), NTM_RELAY_FORWARD);
	/* The ticket expired: forwarding stops, the cached ticket is refused. */
	CHECK_EQ(feed(r, d, dn, A4, RS4, 2, EXP + 1, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_EXPIRED);
	n = bind_pkt(&w, p, 0, 2);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 3, EXP + 1, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_EXPIRED);
	/* Fresh tickets (later expiry, new relay key) for both sides revive it. */
	memset(w.key, 0x77, sizeof(w.key));
	{
		uint8_t t[NTM_TICKET_MAX];
		int tn = ntm_ticket_make(t, sizeof(t), w.tid, EXP + 600, RS_NAME, w.rs_pk,
		    w.key, NULL, &w.dc_cert, w.dc_sk);

		n = ntm_relay_bind_make(p, sizeof(p), 0, 3, t, (size_t)tn, w.key);
		CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 4, EXP + 1, &o), NTM_RELAY_REPLY);
		CHECK_EQ(feed(r, d, dn, A4, RS4, 5, EXP + 1, &o), NTM_RELAY_DROP);
		CHECK_EQ(o.reason, NTM_RELAY_DROP_EXPIRED);	/* side 1 still old */
		n = ntm_relay_bind_make(p, sizeof(p), 1, 2, t, (size_t)tn, w.key);
		CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 6, EXP + 1, &o), NTM_RELAY_REPLY);
		CHECK_EQ(feed(r, d, dn, A4, RS4, 7, EXP + 1, &o), NTM_RELAY_FORWARD);
	}
	/* A ticket for another RS, or garbage in the ticket. */
	{
		uint8_t t[NTM_TICKET_MAX];
		int tn = ntm_ticket_make(t, sizeof(t), w.tid, EXP, "rs2.ntm.test", w.rs_pk,
		    w.key, NULL, &w.dc_cert, w.dc_sk);

		n = ntm_relay_bind_make(p, sizeof(p), 0, 10, t, (size_t)tn, w.key);
		CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 8, NOW, &o), NTM_RELAY_DROP);
		CHECK_EQ(o.reason, NTM_RELAY_DROP_BAD_TICKET);
		t[40] ^= 1;
		n = ntm_relay_bind_make(p, sizeof(p), 0, 11, t, (size_t)tn, w.key);
		CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 8, NOW, &o), NTM_RELAY_DROP);
		CHECK_EQ(o.reason, NTM_RELAY_DROP_BAD_TICKET);
	}
	ntm_relay_free(r);
}

/* One client address in two relayed tunnels: the RS tells them apart by
 * the tunnel id (HS_INIT) and the receiver index it learnt (HS_RESP, DATA). */
TEST(core_shared_address)
{
	struct world w;
	struct ntm_relay *r;
	struct ntm_relay_out o;
	uint8_t p[NTM_UDP_MAX], d[NTM_UDP_MAX], tid1[NTM_TUNNEL_ID_LEN], tid2[NTM_TUNNEL_ID_LEN];
	char buf[64];
	int n;
	size_t dn;

	world_init(&w);
	r = ntm_relay_new(NULL, RS_NAME, w.rs_sk, w.as_pk);
	memcpy(tid1, w.tid, sizeof(tid1));
	/* tunnel 1: A (side 0) <-> B; tunnel 2: A (side 0) <-> C */
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 0, NOW, &o), NTM_RELAY_REPLY);
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 0, NOW, &o), NTM_RELAY_REPLY);
	w.tid[0] = 0x99;
	reticket(&w);
	memcpy(tid2, w.tid, sizeof(tid2));
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 0, NOW, &o), NTM_RELAY_REPLY);
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.0.30:3000", RS4, 0, NOW, &o), NTM_RELAY_REPLY);

	/* DATA from A: ambiguous and no index known yet. */
	dn = data_pkt(d, 0x0b);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 1, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_UNBOUND);
	/* Handshakes: A (index 0x0a) -> B (index 0x0b) in tunnel 1, A (0x1a) -> C (0x1c). */
	hs_init_pkt(p, 0x0a, tid1);
	CHECK_EQ(feed(r, p, NTM_HS_INIT_LEN, A4, RS4, 2, NOW, &o), NTM_RELAY_FORWARD);
	CHECK_STR(out_to(&o, buf, sizeof(buf)), B6);
	hs_init_pkt(p, 0x1a, tid2);
	CHECK_EQ(feed(r, p, NTM_HS_INIT_LEN, A4, RS4, 2, NOW, &o), NTM_RELAY_FORWARD);
	CHECK_STR(out_to(&o, buf, sizeof(buf)), "198.18.0.30:3000");
	hs_resp_pkt(p, 0x0b, 0x0a);
	CHECK_EQ(feed(r, p, NTM_HS_RESP_LEN, B6, RS6, 3, NOW, &o), NTM_RELAY_FORWARD);
	CHECK_STR(out_to(&o, buf, sizeof(buf)), A4);
	hs_resp_pkt(p, 0x1c, 0x1a);
	CHECK_EQ(feed(r, p, NTM_HS_RESP_LEN, "198.18.0.30:3000", RS4, 3, NOW, &o),
	    NTM_RELAY_FORWARD);
	/* Now A's DATA goes by receiver index. */
	dn = data_pkt(d, 0x0b);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 4, NOW, &o), NTM_RELAY_FORWARD);
	CHECK_STR(out_to(&o, buf, sizeof(buf)), B6);
	dn = data_pkt(d, 0x1c);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 4, NOW, &o), NTM_RELAY_FORWARD);
	CHECK_STR(out_to(&o, buf, sizeof(buf)), "198.18.0.30:3000");
	dn = data_pkt(d, 0x77);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 4, NOW, &o), NTM_RELAY_DROP);
	/* An HS_INIT naming a tunnel A is not bound in. */
	memset(tid1, 0xee, sizeof(tid1));
	hs_init_pkt(p, 0x0a, tid1);
	CHECK_EQ(feed(r, p, NTM_HS_INIT_LEN, A4, RS4, 5, NOW, &o), NTM_RELAY_DROP);
	ntm_relay_free(r);
}


/* RELAY_COOKIE: layout, no bigger than the bind it answers, opens only with
 * that bind's MAC and tunnel id; a bind with a cookie is parsed and keeps
 * its relay-key MAC. */
TEST(cookie_message)
{
	struct world w;
	struct ntm_relay_bind b;
	uint8_t p[NTM_RELAY_BIND_MAX + 1], cr[NTM_RELAY_COOKIE_LEN + 1], bad[NTM_RELAY_COOKIE_LEN];
	uint8_t c[NTM_RELAY_COOKIE], c2[NTM_RELAY_COOKIE], mac[NTM_MAC_LEN], tid2[NTM_TUNNEL_ID_LEN];
	uint8_t big[NTM_TICKET_MAX];
	int n, nc;

	world_init(&w);
	memset(c, 0xc0, sizeof(c));
	memset(mac, 0x3a, sizeof(mac));
	CHECK_EQ(ntm_relay_cookie_make(cr, w.tid, mac, c), NTM_RELAY_COOKIE_LEN);
	CHECK_EQ(NTM_RELAY_COOKIE_LEN, 76);
	CHECK_EQ(cr[0], NTM_MSG_RELAY_COOKIE);
	CHECK_EQ(cr[1], NTM_UDP_VERSION);
	CHECK(memcmp(cr + 4, w.tid, NTM_TUNNEL_ID_LEN) == 0);
	CHECK(ntm_relay_cookie_tunnel_id(cr, NTM_RELAY_COOKIE_LEN) == cr + 4);
	CHECK_EQ(ntm_relay_cookie_open(cr, NTM_RELAY_COOKIE_LEN, w.tid, mac, c2), 0);
	CHECK(memcmp(c, c2, sizeof(c)) == 0);
	/* the cookie is sealed: not in the clear */
	for (size_t i = 0; i + sizeof(c) <= NTM_RELAY_COOKIE_LEN; i++)
		CHECK(memcmp(cr + i, c, sizeof(c)) != 0);
	/* another bind's MAC, another tunnel, any flipped bit, any length */
	mac[0] ^= 1;
	CHECK_EQ(ntm_relay_cookie_open(cr, NTM_RELAY_COOKIE_LEN, w.tid, mac, c2), NTM_ERR_CRYPTO);
	mac[0] ^= 1;
	memcpy(tid2, w.tid, sizeof(tid2));
	tid2[5] ^= 1;
	CHECK_EQ(ntm_relay_cookie_open(cr, NTM_RELAY_COOKIE_LEN, tid2, mac, c2), NTM_ERR_CRYPTO);
	for (size_t i = 0; i < NTM_RELAY_COOKIE_LEN; i++) {
		memcpy(bad, cr, sizeof(bad));
		bad[i] ^= 0x10;
		CHECK(ntm_relay_cookie_open(bad, sizeof(bad), w.tid, mac, c2) < 0);
	}
	for (size_t i = 0; i < NTM_RELAY_COOKIE_LEN; i++)
		CHECK(ntm_relay_cookie_open(cr, i, w.tid, mac, c2) < 0);
	cr[NTM_RELAY_COOKIE_LEN] = 0;
	CHECK_EQ(ntm_relay_cookie_open(cr, NTM_RELAY_COOKIE_LEN + 1, w.tid, mac, c2),
	    NTM_ERR_TOOBIG);
	CHECK(ntm_relay_cookie_tunnel_id(cr, NTM_RELAY_COOKIE_LEN + 1) == NULL);
	/* Peers before the cookie refuse it as an unknown type. */
	CHECK_EQ(ntm_msg_validate(cr, NTM_RELAY_COOKIE_LEN), NTM_ERR_PROTO);

	/* A bind with a cookie: flag, 16 more bytes, both MACs where they belong. */
	n = ntm_relay_bind_make(p, sizeof(p), 0, 7, w.t, (size_t)w.tn, w.key);
	nc = ntm_relay_bind_make_cookie(p, sizeof(p), 0, 7, w.t, (size_t)w.tn, w.key, c);
	CHECK_EQ(nc, n + NTM_MAC_LEN);
	CHECK_EQ(p[5], NTM_RELAY_BIND_F_COOKIE);
	CHECK_EQ(ntm_msg_validate(p, (size_t)nc), NTM_MSG_RELAY_BIND);
	CHECK_EQ(ntm_relay_bind_parse(&b, p, (size_t)nc), 0);
	CHECK_EQ(b.flags, NTM_RELAY_BIND_F_COOKIE);
	CHECK(b.mac == p + nc - 2 * NTM_MAC_LEN);
	CHECK(b.cookie_mac == p + nc - NTM_MAC_LEN);
	CHECK_EQ(ntm_relay_bind_verify(p, (size_t)nc, w.key), 0);
	/* the flag without the 16 bytes, or unknown flags */
	CHECK_EQ(ntm_relay_bind_parse(&b, p, (size_t)nc - NTM_MAC_LEN), NTM_ERR_PROTO);
	p[5] = 0x02;
	CHECK_EQ(ntm_relay_bind_parse(&b, p, (size_t)nc), NTM_ERR_PROTO);
	/* The cookie is not more than the bind can carry. */
	memset(big, 0x11, sizeof(big));
	CHECK_EQ(ntm_relay_bind_make_cookie(p, sizeof(p), 0, 7, big, NTM_TICKET_MAX, w.key, c),
	    NTM_ERR_TOOBIG);
	CHECK(ntm_relay_bind_make_cookie(p, sizeof(p), 0, 7, big, NTM_TICKET_MAX - NTM_MAC_LEN,
	    w.key, c) > 0);
}

/* Under load (under half the budget left), a bind without a cookie is
 * answered with one and not checked; the cookie is bound to the address and
 * port, lives through one rotation of the secret and not two; a bind too
 * short to answer without amplification is dropped. */
TEST(core_cookie)
{
	struct world w;
	struct ntm_relay *r;
	struct ntm_relay_out o, o1;
	struct ntm_relay_stats st;
	struct ntm_relay_limits lim = { .bind_pps = 2, .dc_share = 100 };
	uint8_t p[NTM_UDP_MAX], b0[NTM_UDP_MAX], junk[60], ck[NTM_RELAY_COOKIE];
	int n, n0;

	world_init(&w);
	r = ntm_relay_new(&lim, RS_NAME, w.rs_sk, w.as_pk);
	CHECK(r != NULL);
	/* Not under load: checked at once (2 -> 1 left: half the budget). */
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 1000, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_ACK);
	/* Now under load: side 1's bind gets a cookie, to the address it came from. */
	n0 = bind_pkt(&w, b0, 1, 1);
	CHECK_EQ(feed(r, b0, (size_t)n0, B6, RS6, 1000, NOW, &o1), NTM_RELAY_REPLY);
	CHECK_EQ(o1.reply[0], NTM_MSG_RELAY_COOKIE);
	CHECK(o1.reply_len <= (size_t)n0);
	CHECK_STR(out_to(&o1, (char *)p, 64), B6);
	CHECK_EQ(ntm_relay_cookie_open(o1.reply, o1.reply_len, w.tid, b0 + n0 - NTM_MAC_LEN,
	    ck), 0);
	/* Short junk binds under load: dropped, no reply. */
	memset(junk, 0, sizeof(junk));
	ntm_msg_header(junk, NTM_MSG_RELAY_BIND);
	junk[17] = (uint8_t)(sizeof(junk) - 18 - NTM_MAC_LEN);
	CHECK_EQ(feed(r, junk, sizeof(junk), "198.18.9.9:9", RS4, 1000, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_LOAD);
	/* The cookie from another port of the same host is not valid: a new
	 * cookie, no check. */
	n = ntm_relay_bind_make_cookie(p, sizeof(p), 1, 2, w.t, (size_t)w.tn, w.key, ck);
	CHECK_EQ(feed(r, p, (size_t)n, "[fd00:5::20]:5001", RS6, 1000, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_COOKIE);
	/* never the same nonce twice */
	CHECK(memcmp(o.reply + 4 + NTM_TUNNEL_ID_LEN, o1.reply + 4 + NTM_TUNNEL_ID_LEN,
	    NTM_RELAY_COOKIE_NONCE) != 0);
	/* From its own address: checked, with the last token. */
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 1000, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_ACK);
	ntm_relay_get_stats(r, &st);
	CHECK_EQ(st.ticket_checks, 1);		/* side 1's ticket: side 0's */
	CHECK_EQ(st.ticket_cache_hits, 1);
	CHECK_EQ(st.cookies_sent, 2);
	CHECK_EQ(st.cookie_binds, 1);
	CHECK_EQ(st.bad_cookies, 1);
	CHECK_EQ(st.drops[NTM_RELAY_DROP_LOAD], 1);

	/* The cookie is the address's, for any tunnel: 119.999 s after the
	 * secret was made it is current ... */
	w.tid[0] = 0x44;
	reticket(&w);
	n = ntm_relay_bind_make_cookie(p, sizeof(p), 0, 1, w.t, (size_t)w.tn, w.key, ck);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 1000 + 119999, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_ACK);
	/* ... after one rotation the secret before is still taken ... */
	w.tid[0] = 0x45;
	reticket(&w);
	n = ntm_relay_bind_make_cookie(p, sizeof(p), 0, 1, w.t, (size_t)w.tn, w.key, ck);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 1000 + 120000, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_ACK);
	ntm_relay_get_stats(r, &st);
	CHECK_EQ(st.cookie_binds, 3);
	CHECK_EQ(st.bad_cookies, 1);
	/* ... after two it is stale: checked while there is no load ... */
	w.tid[0] = 0x46;
	reticket(&w);
	n = ntm_relay_bind_make_cookie(p, sizeof(p), 0, 1, w.t, (size_t)w.tn, w.key, ck);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 1000 + 240000, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_ACK);
	ntm_relay_get_stats(r, &st);
	CHECK_EQ(st.cookie_binds, 3);
	CHECK_EQ(st.bad_cookies, 2);
	/* ... and under load answered with a fresh cookie. */
	w.tid[0] = 0x47;
	reticket(&w);
	n = ntm_relay_bind_make_cookie(p, sizeof(p), 0, 1, w.t, (size_t)w.tn, w.key, ck);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 1000 + 240000, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_COOKIE);
	ntm_relay_free(r);
}

/* Ticket checks per source address and per /24 (/56), in a fixed table. */
TEST(core_source_limit)
{
	struct world w;
	struct ntm_relay *r;
	struct ntm_relay_out o;
	struct ntm_relay_stats st;
	struct ntm_relay_limits lim = { .bind_pps = 100000, .source_bind_pps = 2,
	    .prefix_bind_pps = 3 };
	uint8_t p[NTM_UDP_MAX];
	char from[64];
	int n, i;

	world_init(&w);
	r = ntm_relay_new(&lim, RS_NAME, w.rs_sk, w.as_pk);
	CHECK(r != NULL);
	/* Forged tickets: each costs a check (bad_ticket) until the limit. */
	n = bind_pkt(&w, p, 0, 1);
	p[20] ^= 0xff;
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.5.1:1", RS4, 0, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_BAD_TICKET);
	/* another port of the same address shares its budget */
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.5.1:2", RS4, 0, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_BAD_TICKET);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.5.1:3", RS4, 0, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_SOURCE_RATE);
	/* the /24 had 2 (a refused check takes nothing from it): one more
	 * address in it gets one check */
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.5.2:1", RS4, 0, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_BAD_TICKET);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.5.3:1", RS4, 0, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_SOURCE_RATE);
	/* another /24, and a /56 apart, are untouched */
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.6.1:1", RS4, 0, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_BAD_TICKET);
	for (i = 0; i < 3; i++) {
		snprintf(from, sizeof(from), "[fd00:1:2:3%02x::%d]:1", i, i + 1);
		CHECK_EQ(feed(r, p, (size_t)n, from, RS6, 0, NOW, &o), NTM_RELAY_DROP);
		CHECK_EQ(o.reason, NTM_RELAY_DROP_BAD_TICKET);
	}
	/* the 4th in the same /56 (fd00:1:2:3xx::) is over */
	CHECK_EQ(feed(r, p, (size_t)n, "[fd00:1:2:3ff::9]:1", RS6, 0, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_SOURCE_RATE);
	/* Half a second later one more from the first address (2/s). */
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.5.1:1", RS4, 499, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_SOURCE_RATE);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.5.1:1", RS4, 500, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_BAD_TICKET);
	/* 100000 other sources (a table of NTM_RELAY_SOURCE_SLOTS, nothing
	 * grows) do not lend the first address their budget: at 1000 its
	 * bucket is refilled to 1 + ... whatever the others did. */
	for (i = 0; i < 100000; i++) {
		snprintf(from, sizeof(from), "10.%d.%d.1:1", i >> 8 & 255, i & 255);
		(void)feed(r, p, (size_t)n, from, RS4, 600, NOW, &o);
	}
	ntm_relay_get_stats(r, &st);
	CHECK(st.drops[NTM_RELAY_DROP_SOURCE_RATE] > 0);
	/* a legitimate bind from a quiet address goes through */
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.8.1:1", RS4, 700, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_ACK);
	ntm_relay_free(r);
}

/* A client address holds at most client_sessions sides; a DC's tickets open
 * at most dc_share % of max_sessions; a session stays with the DC whose
 * ticket opened it. */
TEST(core_quotas)
{
	struct world w;
	struct ntm_relay *r;
	struct ntm_relay_out o;
	struct ntm_relay_limits lim = { .max_sessions = 10, .client_sessions = 2,
	    .dc_share = 40, .bind_pps = 1000 };
	struct ntm_cert dc2;
	uint8_t p[NTM_UDP_MAX], dc2_pk[NTM_SIGN_PK], dc2_sk[NTM_SIGN_SK], t2[NTM_TICKET_MAX];
	char from[64];
	int n, t2n, i;

	world_init(&w);
	r = ntm_relay_new(&lim, RS_NAME, w.rs_sk, w.as_pk);
	CHECK(r != NULL);
	CHECK_EQ(ntm_sign_keypair(dc2_pk, dc2_sk), 0);
	make_cert(&dc2, NTM_ROLE_DC, "dc2.ntm.test", dc2_pk, w.as_sk, NOW - 10, NOW + 86400);
	/* One host, two sessions, any ports: the third is refused. */
	for (i = 0; i < 3; i++) {
		w.tid[0] = (uint8_t)(0x50 + i);
		reticket(&w);
		n = bind_pkt(&w, p, 0, 1);
		snprintf(from, sizeof(from), "198.18.3.3:%d", 1000 + i);
		CHECK_EQ(feed(r, p, (size_t)n, from, RS4, i, NOW, &o),
		    i < 2 ? NTM_RELAY_REPLY : NTM_RELAY_DROP);
	}
	CHECK_EQ(o.reason, NTM_RELAY_DROP_CLIENT_QUOTA);
	/* Moving one of its sides to another port of the same host is fine. */
	w.tid[0] = 0x50;
	reticket(&w);
	n = bind_pkt(&w, p, 0, 5);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.3.3:2000", RS4, 10, NOW, &o), NTM_RELAY_REPLY);
	/* Other hosts: dc1 may open 4 of 10; 2 are open. */
	for (i = 0; i < 3; i++) {
		w.tid[0] = (uint8_t)(0x60 + i);
		reticket(&w);
		n = bind_pkt(&w, p, 0, 1);
		snprintf(from, sizeof(from), "198.18.4.%d:1", i + 1);
		CHECK_EQ(feed(r, p, (size_t)n, from, RS4, 20, NOW, &o),
		    i < 2 ? NTM_RELAY_REPLY : NTM_RELAY_DROP);
	}
	CHECK_EQ(o.reason, NTM_RELAY_DROP_DC_QUOTA);
	/* dc2's tickets have their own share. */
	t2n = ntm_ticket_make(t2, sizeof(t2), w.tid, EXP, RS_NAME, w.rs_pk, w.key, NULL, &dc2, dc2_sk);
	CHECK(t2n > 0);
	n = ntm_relay_bind_make(p, sizeof(p), 0, 1, t2, (size_t)t2n, w.key);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.4.3:1", RS4, 30, NOW, &o), NTM_RELAY_REPLY);
	/* A session opened by dc1: dc2's ticket for it neither binds the other
	 * side nor refreshes the bound one. */
	w.tid[0] = 0x60;
	t2n = ntm_ticket_make(t2, sizeof(t2), w.tid, EXP + 600, RS_NAME, w.rs_pk, w.key, NULL, &dc2,
	    dc2_sk);
	n = ntm_relay_bind_make(p, sizeof(p), 1, 1, t2, (size_t)t2n, w.key);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.4.9:1", RS4, 40, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_OTHER_DC);
	n = ntm_relay_bind_make(p, sizeof(p), 0, 9, t2, (size_t)t2n, w.key);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.4.1:1", RS4, 40, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_OTHER_DC);
	/* dc1's own fresh ticket does. */
	reticket(&w);
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.4.9:1", RS4, 50, NOW, &o), NTM_RELAY_REPLY);
	/* Sessions that expire give their quota back. */
	CHECK_EQ(ntm_relay_expire(r, 200000), 5);
	w.tid[0] = 0x70;
	reticket(&w);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.3.3:1000", RS4, 200001, NOW, &o), NTM_RELAY_REPLY);
	ntm_relay_free(r);
}

/* An account's v2 tickets open at most account_sessions sessions, from any
 * number of addresses; another account still opens its own; the same id
 * from another DC is another account; v1 tickets count under the host and
 * DC quotas only. */
TEST(core_account_quota)
{
	struct world w;
	struct ntm_relay *r;
	struct ntm_relay_out o;
	struct ntm_relay_stats st;
	struct ntm_relay_limits lim = { .max_sessions = 20, .account_sessions = 2,
	    .dc_share = 100, .bind_pps = 1000 };
	struct ntm_cert dc2;
	uint8_t p[NTM_UDP_MAX], dc2_pk[NTM_SIGN_PK], dc2_sk[NTM_SIGN_SK], t2[NTM_TICKET_MAX];
	uint8_t bob[NTM_TICKET_ACCOUNT_LEN], dave[NTM_TICKET_ACCOUNT_LEN];
	char from[64];
	int n, t2n, i;

	world_init(&w);
	r = ntm_relay_new(&lim, RS_NAME, w.rs_sk, w.as_pk);
	CHECK(r != NULL);
	CHECK_EQ(ntm_ticket_account(bob, "bob", w.dc_sk), 0);
	CHECK_EQ(ntm_ticket_account(dave, "dave", w.dc_sk), 0);
	/* bob's devices, each from a host of its own: two sessions, not three. */
	w.acct = bob;
	for (i = 0; i < 3; i++) {
		w.tid[0] = (uint8_t)(0x80 + i);
		reticket(&w);
		n = bind_pkt(&w, p, 0, 1);
		snprintf(from, sizeof(from), "198.18.%d.7:4000", 10 + i);
		CHECK_EQ(feed(r, p, (size_t)n, from, RS4, i, NOW, &o),
		    i < 2 ? NTM_RELAY_REPLY : NTM_RELAY_DROP);
	}
	CHECK_EQ(o.reason, NTM_RELAY_DROP_ACCOUNT_QUOTA);
	CHECK_STR(ntm_relay_drop_name(NTM_RELAY_DROP_ACCOUNT_QUOTA), "account_quota");
	/* The peer's side of the refused tunnel (the same ticket) is refused
	 * too; the peer's side of an open one binds. */
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.20.1:5000", RS4, 3, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_ACCOUNT_QUOTA);
	w.tid[0] = 0x80;
	reticket(&w);
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.20.1:5000", RS4, 4, NOW, &o), NTM_RELAY_REPLY);
	/* A bound side moving to another address is no new session. */
	n = bind_pkt(&w, p, 0, 2);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.30.1:4000", RS4, 5, NOW, &o), NTM_RELAY_REPLY);
	/* dave, from the very host bob's third device used, gets his. */
	w.acct = dave;
	w.tid[0] = 0x90;
	reticket(&w);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.12.7:4000", RS4, 6, NOW, &o), NTM_RELAY_REPLY);
	/* The same account id in dc2's ticket is dc2's account, not bob. */
	CHECK_EQ(ntm_sign_keypair(dc2_pk, dc2_sk), 0);
	make_cert(&dc2, NTM_ROLE_DC, "dc2.ntm.test", dc2_pk, w.as_sk, NOW - 10, NOW + 86400);
	w.tid[0] = 0x91;
	t2n = ntm_ticket_make(t2, sizeof(t2), w.tid, EXP, RS_NAME, w.rs_pk, w.key, bob, &dc2,
	    dc2_sk);
	CHECK(t2n > 0);
	n = ntm_relay_bind_make(p, sizeof(p), 0, 1, t2, (size_t)t2n, w.key);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.13.7:4000", RS4, 7, NOW, &o), NTM_RELAY_REPLY);
	/* Version 1 tickets name no account: the transition. */
	w.acct = NULL;
	for (i = 0; i < 3; i++) {
		w.tid[0] = (uint8_t)(0xa0 + i);
		reticket(&w);
		n = bind_pkt(&w, p, 0, 1);
		snprintf(from, sizeof(from), "198.18.%d.8:4000", 10 + i);
		CHECK_EQ(feed(r, p, (size_t)n, from, RS4, 8, NOW, &o), NTM_RELAY_REPLY);
	}
	ntm_relay_get_stats(r, &st);
	CHECK_EQ(st.drops[NTM_RELAY_DROP_ACCOUNT_QUOTA], 2);
	CHECK_EQ(st.sessions, 7);
	/* Sessions that idle out give the account its quota back. */
	CHECK_EQ(ntm_relay_expire(r, 200000), 7);
	w.acct = bob;
	w.tid[0] = 0x82;
	reticket(&w);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.12.7:4000", RS4, 200001, NOW, &o),
	    NTM_RELAY_REPLY);
	ntm_relay_free(r);
}

/* The AS revoked a DC certificate (its serial, 7 in world_init). */
static uint64_t revoked_serial;

static int
is_revoked(uint64_t serial, void *arg)
{
	(void)arg;
	return serial == revoked_serial;
}

TEST(core_revoked)
{
	struct world w;
	struct ntm_relay *r;
	struct ntm_relay_out o;
	struct ntm_relay_stats st;
	uint8_t p[NTM_UDP_MAX], d[NTM_UDP_MAX];
	int n;
	size_t dn;

	world_init(&w);
	r = ntm_relay_new(NULL, RS_NAME, w.rs_sk, w.as_pk);
	CHECK(r != NULL);
	ntm_relay_set_revoked(r, is_revoked, NULL);
	revoked_serial = 8;			/* another DC's */
	dn = data_pkt(d, 1);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 0, NOW, &o), NTM_RELAY_REPLY);
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 0, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 1, NOW, &o), NTM_RELAY_FORWARD);
	CHECK_EQ(ntm_relay_end_serial(r, 8), 0);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 2, NOW, &o), NTM_RELAY_FORWARD);
	/* Revoked: both sides stop forwarding at once ... */
	revoked_serial = 7;
	CHECK_EQ(ntm_relay_end_serial(r, 7), 2);
	CHECK_EQ(ntm_relay_end_serial(r, 7), 0);
	CHECK_EQ(feed(r, d, dn, A4, RS4, 3, NOW, &o), NTM_RELAY_DROP);
	/* ... the ticket they hold binds no more, nor does a fresh one. */
	n = bind_pkt(&w, p, 0, 2);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 4, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_REVOKED);
	w.tid[0] ^= 0x40;
	reticket(&w);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, "198.18.0.11:4000", RS4, 5, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_REVOKED);
	ntm_relay_get_stats(r, &st);
	CHECK_EQ(st.drops[NTM_RELAY_DROP_REVOKED], 2);
	CHECK_STR(ntm_relay_drop_name(NTM_RELAY_DROP_REVOKED), "revoked");
	ntm_relay_free(r);
}

/* A ticket opened once is known again by its bytes: the other side's bind
 * with it costs no signature check; one byte different is another ticket;
 * the time window and revocation still hold for a known ticket. */
TEST(core_ticket_cache)
{
	struct world w;
	struct ntm_relay *r;
	struct ntm_relay_out o;
	struct ntm_relay_stats st;
	uint8_t p[NTM_UDP_MAX], t0[NTM_TICKET_MAX];
	int n, tn0;

	world_init(&w);
	r = ntm_relay_new(NULL, RS_NAME, w.rs_sk, w.as_pk);
	CHECK(r != NULL);
	ntm_relay_set_revoked(r, is_revoked, NULL);
	revoked_serial = 0;
	/* a miss, then a hit */
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 0, NOW, &o), NTM_RELAY_REPLY);
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 1, NOW, &o), NTM_RELAY_REPLY);
	CHECK_EQ(o.reply[0], NTM_MSG_RELAY_ACK);
	ntm_relay_get_stats(r, &st);
	CHECK_EQ(st.ticket_checks, 1);
	CHECK_EQ(st.ticket_cache_hits, 1);
	/* The same ticket but its last byte: checked in full, and refused. */
	memcpy(t0, w.t, sizeof(t0));
	tn0 = w.tn;
	w.t[w.tn - 1] ^= 1;
	n = bind_pkt(&w, p, 0, 2);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 2, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_BAD_TICKET);
	ntm_relay_get_stats(r, &st);
	CHECK_EQ(st.ticket_checks, 2);
	CHECK_EQ(st.ticket_cache_hits, 1);
	/* Known, then expired (EXP), or not yet valid (its DC certificate
	 * from NOW - 86400): refused as before. */
	memcpy(w.t, t0, sizeof(t0));
	w.tn = tn0;
	w.tid[0] = 0x21;
	reticket(&w);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 3, NOW, &o), NTM_RELAY_REPLY);
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 4, EXP + 1, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_EXPIRED);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 5, NOW - 86401, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_EXPIRED);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 6, EXP, &o), NTM_RELAY_REPLY);
	ntm_relay_get_stats(r, &st);
	CHECK_EQ(st.ticket_checks, 3);
	CHECK_EQ(st.ticket_cache_hits, 4);
	/* Known, then its DC revoked: refused. */
	w.tid[0] = 0x22;
	reticket(&w);
	n = bind_pkt(&w, p, 0, 1);
	CHECK_EQ(feed(r, p, (size_t)n, A4, RS4, 7, NOW, &o), NTM_RELAY_REPLY);
	revoked_serial = 7;
	n = bind_pkt(&w, p, 1, 1);
	CHECK_EQ(feed(r, p, (size_t)n, B6, RS6, 8, NOW, &o), NTM_RELAY_DROP);
	CHECK_EQ(o.reason, NTM_RELAY_DROP_REVOKED);
	ntm_relay_get_stats(r, &st);
	CHECK_EQ(st.ticket_checks, 4);
	CHECK_EQ(st.ticket_cache_hits, 5);
	revoked_serial = 0;
	ntm_relay_free(r);
}

UNIT_MAIN(T(ticket_roundtrip), T(ticket_v2), T(ticket_truncated_and_flipped), T(ticket_refused),
    T(ticket_too_big), T(bind), T(ack), T(core_bind_and_forward), T(core_limits),
    T(core_expiry), T(core_shared_address), T(cookie_message), T(core_cookie),
    T(core_source_limit), T(core_quotas), T(core_account_quota), T(core_revoked),
    T(core_ticket_cache))
