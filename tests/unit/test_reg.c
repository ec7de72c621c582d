/* test_reg.c - the sealed registration channel: REG_REQ, REG_RESP, NUDGE,
 * MOVED. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <sodium.h>

#include "reg.h"
#include "unit.h"

static const uint8_t SID[NTM_SID_LEN] = {
	0x51, 0x1d, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff };
static uint8_t ckey[NTM_KEY_LEN], dkey[NTM_KEY_LEN];	/* client tx, DC tx */

/* client: tx = ckey, rx = dkey; DC: the mirror. */
static void
pair(struct ntm_chan *cl, struct ntm_chan *dc)
{
	memset(ckey, 0xc1, sizeof(ckey));
	memset(dkey, 0xd2, sizeof(dkey));
	ntm_chan_init(cl, SID, ckey, dkey);
	ntm_chan_init(dc, SID, dkey, ckey);
}

static void
sa(struct sockaddr_storage *ss, const char *s)
{
	socklen_t len;

	CHECK_EQ(ntm_sa_parse(ss, &len, s), 0);
}

/* Seals any payload the way the wire format says, independently of reg.c:
 * hdr | sid | ctr | XChaCha20-Poly1305(payload), nonce 16 zero || ctr BE,
 * AD = first 28 bytes. */
static size_t
raw_seal(uint8_t *out, int type, uint64_t ctr, const uint8_t *key,
    const uint8_t *pl, size_t plen)
{
	uint8_t nonce[24] = { 0 };
	unsigned long long clen;

	ntm_msg_header(out, (enum ntm_msg)type);
	memcpy(out + 4, SID, NTM_SID_LEN);
	for (int i = 0; i < 8; i++) {
		out[20 + i] = (uint8_t)(ctr >> (56 - 8 * i));
		nonce[16 + i] = out[20 + i];
	}
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + 28, &clen, pl, plen, out, 28,
	    NULL, nonce, key);
	return 28 + (size_t)clen;
}

static void
make_req(struct ntm_reg_req *r)
{
	memset(r, 0, sizeof(*r));
	r->local_port = 7000;
	r->flags = NTM_REG_F_AGENT;
	r->nat = 3;			/* NTM_NAT_EI */
	r->filter = 5;			/* NTM_FILTER_ADDR_DEP */
	r->naddrs = 3;
	sa(&r->addrs[0], "192.168.1.10:7000");
	sa(&r->addrs[1], "[fd00::10]:7000");
	sa(&r->addrs[2], "10.0.0.1:7001");
}

TEST(roundtrip)
{
	struct ntm_chan cl, dc;
	struct ntm_reg_req rq, rq2;
	struct ntm_reg_resp rs, rs2;
	struct ntm_nudge nu = { NTM_NUDGE_DIRECTION, 3 }, nu2;
	uint8_t buf[NTM_UDP_MAX];
	uint64_t ctr = 0;

	pair(&cl, &dc);
	make_req(&rq);
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), &ctr), NTM_REG_REQ_LEN);
	CHECK_EQ(ctr, 1);
	CHECK_EQ(cl.send_ctr, 1);
	CHECK_EQ(ntm_msg_validate(buf, NTM_REG_REQ_LEN), NTM_MSG_REG_REQ);
	CHECK(memcmp(ntm_reg_sid(buf, NTM_REG_REQ_LEN), SID, NTM_SID_LEN) == 0);
	CHECK(ntm_reg_sid(buf, NTM_SEALED_HDR - 1) == NULL);
	CHECK_EQ(ntm_reg_req_open(&dc, buf, NTM_REG_REQ_LEN, &rq2), 0);
	CHECK_EQ(rq2.ctr, 1);		/* the opener returns the counter */
	CHECK_EQ(rq2.local_port, 7000);
	CHECK_EQ(rq2.flags, NTM_REG_F_AGENT);
	CHECK_EQ(rq2.nat, 3);		/* NTM_NAT_EI, set by make_req */
	CHECK_EQ(rq2.filter, 5);	/* NTM_FILTER_ADDR_DEP, in n_addrs bits 4..6 */
	CHECK_EQ(rq2.naddrs, 3);
	for (int i = 0; i < 3; i++)
		CHECK(ntm_sa_equal((struct sockaddr *)&rq.addrs[i],
		    (struct sockaddr *)&rq2.addrs[i]));
	/* No addresses at all is fine. */
	rq.naddrs = 0;
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), &ctr), NTM_REG_REQ_LEN);
	CHECK_EQ(ctr, 2);
	CHECK_EQ(ntm_reg_req_open(&dc, buf, NTM_REG_REQ_LEN, &rq2), 0);
	CHECK_EQ(rq2.ctr, 2);
	CHECK_EQ(rq2.naddrs, 0);

	/* DC -> client. */
	memset(&rs, 0, sizeof(rs));
	sa(&rs.reflexive, "198.51.100.7:40000");
	rs.keepalive_s = 15;
	rs.pending = 2;
	rs.echo = ctr;
	CHECK_EQ(ntm_reg_resp_seal(&dc, &rs, buf, sizeof(buf)), NTM_REG_RESP_LEN);
	CHECK_EQ(ntm_reg_resp_open(&cl, buf, NTM_REG_RESP_LEN, &rs2), 0);
	CHECK(ntm_sa_equal((struct sockaddr *)&rs.reflexive, (struct sockaddr *)&rs2.reflexive));
	CHECK_EQ(rs2.keepalive_s, 15);
	CHECK_EQ(rs2.pending, 2);
	CHECK_EQ(rs2.echo, 2);
	/* No reflexive address: AF_UNSPEC travels as an empty slot. */
	memset(&rs.reflexive, 0, sizeof(rs.reflexive));
	CHECK_EQ(ntm_reg_resp_seal(&dc, &rs, buf, sizeof(buf)), NTM_REG_RESP_LEN);
	CHECK_EQ(ntm_reg_resp_open(&cl, buf, NTM_REG_RESP_LEN, &rs2), 0);
	CHECK_EQ(rs2.reflexive.ss_family, AF_UNSPEC);

	CHECK_EQ(ntm_nudge_seal(&dc, &nu, buf, sizeof(buf)), NTM_NUDGE_LEN);
	CHECK_EQ(ntm_nudge_open(&cl, buf, NTM_NUDGE_LEN, &nu2), 0);
	CHECK_EQ(nu2.kind, NTM_NUDGE_DIRECTION);
	CHECK_EQ(nu2.pending, 3);
	CHECK_EQ(dc.send_ctr, 3);	/* one counter for every DC -> client message */

	/* The wire format is what the docs say: an independent sealer. */
	{
		uint8_t pl[NTM_NUDGE_PAYLOAD] = { 0, 0, 0, 1, 0, 0, 0, 9 };
		size_t n = raw_seal(buf, NTM_MSG_NUDGE, 10, dkey, pl, sizeof(pl));
		CHECK_EQ(n, NTM_NUDGE_LEN);
		CHECK_EQ(ntm_nudge_open(&cl, buf, n, &nu2), 0);
		CHECK_EQ(nu2.pending, 9);
	}
	/* Kind 2: cache entries wait (protocol §4.2). */
	nu.kind = NTM_NUDGE_CACHE;
	CHECK_EQ(ntm_nudge_seal(&dc, &nu, buf, sizeof(buf)), NTM_NUDGE_LEN);
	CHECK_EQ(ntm_nudge_open(&cl, buf, NTM_NUDGE_LEN, &nu2), 0);
	CHECK_EQ(nu2.kind, NTM_NUDGE_CACHE);
	nu.kind = NTM_NUDGE_DIRECTION;
	ntm_chan_wipe(&cl);
	ntm_chan_wipe(&dc);
	ntm_chan_wipe(NULL);
}

TEST(seal_args)
{
	struct ntm_chan cl, dc;
	struct ntm_reg_req rq;
	struct ntm_reg_resp rs;
	struct ntm_nudge nu = { 7, 0 };
	uint8_t buf[NTM_UDP_MAX];

	pair(&cl, &dc);
	make_req(&rq);
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, NTM_REG_REQ_LEN - 1, NULL), NTM_ERR_TOOBIG);
	rq.naddrs = 5;
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), NULL), NTM_ERR_INVAL);
	rq.naddrs = 4;			/* slot 3 is AF_UNSPEC */
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), NULL), NTM_ERR_INVAL);
	rq.naddrs = 1;
	rq.flags = 0x80;
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), NULL), NTM_ERR_INVAL);
	rq.flags = 0;
	rq.nat = NTM_REG_NAT_MAX + 1;
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), NULL), NTM_ERR_INVAL);
	rq.nat = 0;
	rq.filter = NTM_REG_FILTER_MAX + 1;
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), NULL), NTM_ERR_INVAL);
	rq.filter = 0;
	CHECK_EQ(ntm_nudge_seal(&dc, &nu, buf, sizeof(buf)), NTM_ERR_INVAL);
	memset(&rs, 0, sizeof(rs));
	rs.reflexive.ss_family = AF_UNIX;
	CHECK_EQ(ntm_reg_resp_seal(&dc, &rs, buf, sizeof(buf)), NTM_ERR_INVAL);
	CHECK_EQ(cl.send_ctr, 0);	/* nothing was sent */
	CHECK_EQ(dc.send_ctr, 0);
	/* A spent counter is refused rather than reused. */
	cl.send_ctr = UINT64_MAX - 1;
	rq.flags = 0;
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), NULL), NTM_ERR_EXPIRED);
}

TEST(reject)
{
	struct ntm_chan cl, dc, other;
	struct ntm_reg_req rq, rq2;
	struct ntm_reg_resp rs2;
	struct ntm_nudge nu2;
	uint8_t buf[NTM_UDP_MAX], sid2[NTM_SID_LEN];
	uint64_t ctr;

	pair(&cl, &dc);
	make_req(&rq);
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), &ctr), NTM_REG_REQ_LEN);
	/* Wrong session id: another channel with the same keys. */
	memcpy(sid2, SID, sizeof(sid2));
	sid2[0] ^= 1;
	ntm_chan_init(&other, sid2, dkey, ckey);
	CHECK_EQ(ntm_reg_req_open(&other, buf, NTM_REG_REQ_LEN, &rq2), NTM_ERR_PROTO);
	/* Wrong keys (the client's own direction). */
	CHECK_EQ(ntm_reg_req_open(&cl, buf, NTM_REG_REQ_LEN, &rq2), NTM_ERR_CRYPTO);
	/* Wrong type for the opener. */
	CHECK_EQ(ntm_reg_resp_open(&dc, buf, NTM_REG_REQ_LEN, &rs2), NTM_ERR_PROTO);
	CHECK_EQ(ntm_nudge_open(&dc, buf, NTM_REG_REQ_LEN, &nu2), NTM_ERR_PROTO);
	/* Accepted once, then a replay. */
	CHECK_EQ(ntm_reg_req_open(&dc, buf, NTM_REG_REQ_LEN, &rq2), 0);
	CHECK_EQ(ntm_reg_req_open(&dc, buf, NTM_REG_REQ_LEN, &rq2), NTM_ERR_REPLAY);
	/* Counter 0 is never sent. */
	{
		uint8_t pl[NTM_REG_REQ_PAYLOAD] = { 0 };
		size_t n = raw_seal(buf, NTM_MSG_REG_REQ, 0, ckey, pl, sizeof(pl));
		CHECK_EQ(ntm_reg_req_open(&dc, buf, n, &rq2), NTM_ERR_REPLAY);
	}
}

TEST(tamper)
{
	struct ntm_chan cl, dc;
	struct ntm_reg_req rq, rq2;
	uint8_t buf[NTM_UDP_MAX], bad[NTM_UDP_MAX];

	pair(&cl, &dc);
	make_req(&rq);
	CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), NULL), NTM_REG_REQ_LEN);
	for (size_t i = 0; i < NTM_REG_REQ_LEN; i++) {
		memcpy(bad, buf, NTM_REG_REQ_LEN);
		bad[i] ^= 0x20;
		int r = ntm_reg_req_open(&dc, bad, NTM_REG_REQ_LEN, &rq2);
		if (r >= 0)
			fprintf(stderr, "tampered byte %zu accepted\n", i);
		CHECK(r < 0);
	}
	CHECK_EQ(ntm_reg_req_open(&dc, buf, NTM_REG_REQ_LEN, &rq2), 0);
}

TEST(counter_order)
{
	/* Sent 1..6; delivered in this order, with the expected result. */
	static const struct { int msg; int want; } seq[] = {
		{ 3, 0 }, { 1, 0 }, { 2, 0 }, { 2, NTM_ERR_REPLAY }, { 6, 0 },
		{ 5, 0 }, { 3, NTM_ERR_REPLAY }, { 4, 0 }, { 6, NTM_ERR_REPLAY },
	};
	struct ntm_chan cl, dc;
	struct ntm_reg_req rq, rq2;
	uint8_t msgs[7][NTM_REG_REQ_LEN];
	uint64_t ctr;

	pair(&cl, &dc);
	make_req(&rq);
	for (int i = 1; i <= 6; i++) {
		rq.local_port = (uint16_t)(7000 + i);
		CHECK_EQ(ntm_reg_req_seal(&cl, &rq, msgs[i], sizeof(msgs[i]), &ctr),
		    NTM_REG_REQ_LEN);
		CHECK_EQ(ctr, i);
	}
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		int r = ntm_reg_req_open(&dc, msgs[seq[i].msg], NTM_REG_REQ_LEN, &rq2);
		if (r != seq[i].want)
			fprintf(stderr, "step %zu (message %d)\n", i, seq[i].msg);
		CHECK_EQ(r, seq[i].want);
		if (r == 0)
			CHECK_EQ(rq2.local_port, 7000 + seq[i].msg);
	}
}

/* Payloads that authenticate but must not parse. */
TEST(payload_parse)
{
	static const struct {
		const char *what;
		int type;
		size_t off;		/* byte of the payload to set */
		uint8_t val;
		int want;
	} v[] = {
		{ "good request", NTM_MSG_REG_REQ, 0, 0x1b, 0 },
		{ "n_addrs 5", NTM_MSG_REG_REQ, 2, 5, NTM_ERR_PROTO },
		{ "n_addrs 255", NTM_MSG_REG_REQ, 2, 255, NTM_ERR_PROTO },
		{ "n_addrs 1, filtering 5 (address-dependent)", NTM_MSG_REG_REQ, 2, 0x51, 0 },
		{ "n_addrs 1, filtering 4 (endpoint-independent)", NTM_MSG_REG_REQ, 2, 0x41, 0 },
		{ "n_addrs 1, filtering 6", NTM_MSG_REG_REQ, 2, 0x61, NTM_ERR_PROTO },
		{ "n_addrs 1, bit 7", NTM_MSG_REG_REQ, 2, 0x81, NTM_ERR_PROTO },
		{ "flags agent + offline", NTM_MSG_REG_REQ, 3, 0x03, 0 },
		{ "nat kind 1 (none) in bits 2..4", NTM_MSG_REG_REQ, 3, 0x04, 0 },
		{ "nat kind 4 (varies by destination), agent", NTM_MSG_REG_REQ, 3, 0x11, 0 },
		{ "nat kind 5", NTM_MSG_REG_REQ, 3, 0x14, NTM_ERR_PROTO },
		{ "unknown flag, high", NTM_MSG_REG_REQ, 3, 0x81, NTM_ERR_PROTO },
		{ "also: a second family (bit 5), agent", NTM_MSG_REG_REQ, 3, 0x21, 0 },
		{ "also, nat kind 1 (none)", NTM_MSG_REG_REQ, 3, 0x25, 0 },
		{ "unknown flag, bit 6", NTM_MSG_REG_REQ, 3, 0x41, NTM_ERR_PROTO },
		{ "junk in slot 1 (unused)", NTM_MSG_REG_REQ, 4 + 20 + 7, 1, NTM_ERR_PROTO },
		{ "junk in slot 3 (unused)", NTM_MSG_REG_REQ, 4 + 60 + 19, 1, NTM_ERR_PROTO },
		{ "slot 0 family 5", NTM_MSG_REG_REQ, 4, 5, NTM_ERR_PROTO },
		{ "slot 0 reserved byte", NTM_MSG_REG_REQ, 5, 1, NTM_ERR_PROTO },
		{ "slot 0 IPv4 with junk", NTM_MSG_REG_REQ, 4 + 12, 1, NTM_ERR_PROTO },
		{ "slot 0 empty but counted", NTM_MSG_REG_REQ, 4, 0, NTM_ERR_PROTO },
		{ "good response", NTM_MSG_REG_RESP, 23, 15, 0 },
		{ "reflexive family 9", NTM_MSG_REG_RESP, 0, 9, NTM_ERR_PROTO },
		{ "reflexive reserved", NTM_MSG_REG_RESP, 1, 1, NTM_ERR_PROTO },
		{ "good nudge", NTM_MSG_NUDGE, 7, 4, 0 },
		{ "nudge kind 2 (cache)", NTM_MSG_NUDGE, 3, 2, 0 },
		{ "nudge kind 3", NTM_MSG_NUDGE, 3, 3, NTM_ERR_PROTO },
		{ "nudge kind 0", NTM_MSG_NUDGE, 3, 0, NTM_ERR_PROTO },
	};
	struct ntm_chan cl, dc;
	struct ntm_reg_req rq;
	struct ntm_reg_resp rs;
	struct ntm_nudge nu;
	uint8_t pl[NTM_REG_REQ_PAYLOAD], buf[NTM_UDP_MAX];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t plen, n;
		int r = -1;

		pair(&cl, &dc);
		memset(pl, 0, sizeof(pl));
		switch (v[i].type) {
		case NTM_MSG_REG_REQ:
			/* one IPv4 address 10.1.2.3:7000, port 7000, agent */
			plen = NTM_REG_REQ_PAYLOAD;
			pl[0] = 0x1b; pl[1] = 0x58; pl[2] = 1; pl[3] = 1;
			pl[4] = 4; pl[6] = 0x1b; pl[7] = 0x58;
			pl[8] = 10; pl[9] = 1; pl[10] = 2; pl[11] = 3;
			break;
		case NTM_MSG_REG_RESP:
			plen = NTM_REG_RESP_PAYLOAD;
			pl[0] = 6; pl[2] = 0x9c; pl[3] = 0x40; pl[4] = 0x20; pl[5] = 0x01;
			pl[23] = 15;
			break;
		default:
			plen = NTM_NUDGE_PAYLOAD;
			pl[3] = 1;
			break;
		}
		pl[v[i].off] = v[i].val;
		if (v[i].type == NTM_MSG_REG_REQ) {
			n = raw_seal(buf, v[i].type, 1, ckey, pl, plen);
			r = ntm_reg_req_open(&dc, buf, n, &rq);
			if (r == 0)
				r = ntm_reg_req_open(&dc, buf, n, &rq) == NTM_ERR_REPLAY ? 0 : -99;
			else	/* not recorded: a good message may reuse it */
				r = ntm_window_check(&dc.win, 1) == 0 ? r : -98;
		} else if (v[i].type == NTM_MSG_REG_RESP) {
			n = raw_seal(buf, v[i].type, 1, dkey, pl, plen);
			r = ntm_reg_resp_open(&cl, buf, n, &rs);
			if (r == 0)
				CHECK_EQ(rs.keepalive_s, 15);
		} else {
			n = raw_seal(buf, v[i].type, 1, dkey, pl, plen);
			r = ntm_nudge_open(&cl, buf, n, &nu);
			if (r == 0)
				CHECK_EQ(nu.pending, v[i].off == 7 ? 4 : 0);
		}
		if (r != v[i].want)
			fprintf(stderr, "case \"%s\"\n", v[i].what);
		CHECK_EQ(r, v[i].want);
	}
}

/* Every wrong length is refused by the header check, before any crypto:
 * the replay window and the channel are untouched. */
TEST(lengths)
{
	static const struct { int type; size_t len; } v[] = {
		{ NTM_MSG_REG_REQ, NTM_REG_REQ_LEN },
		{ NTM_MSG_REG_RESP, NTM_REG_RESP_LEN },
		{ NTM_MSG_NUDGE, NTM_NUDGE_LEN },
	};
	struct ntm_chan cl, dc;
	struct ntm_reg_req rq;
	struct ntm_reg_resp rs;
	struct ntm_nudge nu = { NTM_NUDGE_DIRECTION, 1 };
	uint8_t buf[NTM_UDP_MAX + 1];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct ntm_chan *rx;

		pair(&cl, &dc);
		memset(buf, 0, sizeof(buf));
		if (v[i].type == NTM_MSG_REG_REQ) {
			make_req(&rq);
			CHECK_EQ(ntm_reg_req_seal(&cl, &rq, buf, sizeof(buf), NULL), v[i].len);
			rx = &dc;
		} else if (v[i].type == NTM_MSG_REG_RESP) {
			memset(&rs, 0, sizeof(rs));
			CHECK_EQ(ntm_reg_resp_seal(&dc, &rs, buf, sizeof(buf)), v[i].len);
			rx = &cl;
		} else {
			CHECK_EQ(ntm_nudge_seal(&dc, &nu, buf, sizeof(buf)), v[i].len);
			rx = &cl;
		}
		for (size_t n = 0; n <= v[i].len + 1; n++) {
			int r;

			if (n == v[i].len)
				continue;
			if (v[i].type == NTM_MSG_REG_REQ)
				r = ntm_reg_req_open(rx, buf, n, &rq);
			else if (v[i].type == NTM_MSG_REG_RESP)
				r = ntm_reg_resp_open(rx, buf, n, &rs);
			else
				r = ntm_nudge_open(rx, buf, n, &nu);
			CHECK_EQ(r, n < v[i].len ? NTM_ERR_SHORT : NTM_ERR_TOOBIG);
			CHECK_EQ(ntm_msg_validate(buf, n), r);
		}
		CHECK_EQ(rx->win.top, 0);
		if (v[i].type == NTM_MSG_REG_REQ)
			CHECK_EQ(ntm_reg_req_open(rx, buf, v[i].len, &rq), 0);
		else if (v[i].type == NTM_MSG_REG_RESP)
			CHECK_EQ(ntm_reg_resp_open(rx, buf, v[i].len, &rs), 0);
		else
			CHECK_EQ(ntm_nudge_open(rx, buf, v[i].len, &nu), 0);
	}
}

TEST(moved)
{
	struct ntm_chan cl, dc;
	struct ntm_moved m, m2;
	uint8_t buf[NTM_UDP_MAX + 1], pl[NTM_MOVED_PAYLOAD];
	size_t n;

	pair(&cl, &dc);
	memset(&m, 0, sizeof(m));
	memset(m.tunnel_id, 0xab, sizeof(m.tunnel_id));
	sa(&m.endpoint, "198.18.7.9:40000");
	CHECK_EQ(ntm_moved_seal(&dc, &m, buf, sizeof(buf)), NTM_MOVED_LEN);
	CHECK_EQ(NTM_MOVED_LEN, NTM_SEALED_HDR + 36 + 16);
	CHECK_EQ(ntm_msg_validate(buf, NTM_MOVED_LEN), NTM_MSG_MOVED);
	CHECK_EQ(ntm_moved_open(&cl, buf, NTM_MOVED_LEN, &m2), 0);
	CHECK(memcmp(m2.tunnel_id, m.tunnel_id, NTM_TUNNEL_ID_LEN) == 0);
	CHECK(ntm_sa_equal((struct sockaddr *)&m2.endpoint, (struct sockaddr *)&m.endpoint));
	/* replayed */
	CHECK_EQ(ntm_moved_open(&cl, buf, NTM_MOVED_LEN, &m2), NTM_ERR_REPLAY);
	/* IPv6 */
	sa(&m.endpoint, "[fd00::7]:5");
	CHECK_EQ(ntm_moved_seal(&dc, &m, buf, sizeof(buf)), NTM_MOVED_LEN);
	CHECK_EQ(ntm_moved_open(&cl, buf, NTM_MOVED_LEN, &m2), 0);
	CHECK_EQ(m2.endpoint.ss_family, AF_INET6);
	/* every wrong length, before crypto */
	for (size_t k = 0; k <= NTM_MOVED_LEN + 1; k++)
		if (k != NTM_MOVED_LEN)
			CHECK(ntm_moved_open(&cl, buf, k, &m2) < 0);
	/* a NUDGE is not a MOVED, nor the other way round */
	{
		struct ntm_nudge nu = { NTM_NUDGE_DIRECTION, 1 }, nu2;

		CHECK_EQ(ntm_nudge_seal(&dc, &nu, buf, sizeof(buf)), NTM_NUDGE_LEN);
		CHECK_EQ(ntm_moved_open(&cl, buf, NTM_NUDGE_LEN, &m2), NTM_ERR_PROTO);
		CHECK_EQ(ntm_moved_seal(&dc, &m, buf, sizeof(buf)), NTM_MOVED_LEN);
		CHECK_EQ(ntm_nudge_open(&cl, buf, NTM_MOVED_LEN, &nu2), NTM_ERR_PROTO);
	}
	/* seal arguments */
	memset(&m.endpoint, 0, sizeof(m.endpoint));
	CHECK_EQ(ntm_moved_seal(&dc, &m, buf, sizeof(buf)), NTM_ERR_INVAL);
	sa(&m.endpoint, "198.18.7.9:40000");
	CHECK_EQ(ntm_moved_seal(&dc, &m, buf, NTM_MOVED_LEN - 1), NTM_ERR_TOOBIG);
	/* tampered */
	CHECK_EQ(ntm_moved_seal(&dc, &m, buf, sizeof(buf)), NTM_MOVED_LEN);
	buf[NTM_MOVED_LEN - 1] ^= 1;
	CHECK_EQ(ntm_moved_open(&cl, buf, NTM_MOVED_LEN, &m2), NTM_ERR_CRYPTO);
	/* the client's own key does not open it (reflection) */
	cl.send_ctr = 100;
	CHECK_EQ(ntm_moved_seal(&cl, &m, buf, sizeof(buf)), NTM_MOVED_LEN);
	CHECK_EQ(ntm_moved_open(&cl, buf, NTM_MOVED_LEN, &m2), NTM_ERR_CRYPTO);
	/* payload parse: empty or malformed address refused, window untouched */
	pair(&cl, &dc);
	memset(pl, 0, sizeof(pl));
	n = raw_seal(buf, NTM_MSG_MOVED, 5, dkey, pl, sizeof(pl));
	CHECK_EQ(n, NTM_MOVED_LEN);
	CHECK_EQ(ntm_moved_open(&cl, buf, n, &m2), NTM_ERR_PROTO);
	pl[NTM_TUNNEL_ID_LEN] = 5;		/* family 5 */
	n = raw_seal(buf, NTM_MSG_MOVED, 6, dkey, pl, sizeof(pl));
	CHECK_EQ(ntm_moved_open(&cl, buf, n, &m2), NTM_ERR_PROTO);
	CHECK_EQ(cl.win.top, 0);
	CHECK_EQ(ntm_waddr_put(pl + NTM_TUNNEL_ID_LEN, (struct sockaddr *)&m.endpoint), 0);
	n = raw_seal(buf, NTM_MSG_MOVED, 7, dkey, pl, sizeof(pl));
	CHECK_EQ(ntm_moved_open(&cl, buf, n, &m2), 0);
	CHECK_EQ(cl.win.top, 8);
}

static void
init_sodium(void)
{
	if (sodium_init() < 0)
		abort();
}

TEST(setup)
{
	init_sodium();
}

UNIT_MAIN(T(setup), T(roundtrip), T(seal_args), T(reject), T(tamper), T(counter_order),
    T(payload_parse), T(lengths), T(moved))
