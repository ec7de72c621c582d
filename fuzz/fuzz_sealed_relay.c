/*
 * fuzz_sealed_relay.c - libFuzzer harness for the RS core (lib/core/relay.c,
 * docs/protocol.md §4.4) behind the ticket's signature and the bind's MAC:
 * the datagrams are made by the harness as the DCs and clients would make
 * them (tickets of two DCs signed under certificates of the test AS, binds
 * MAC'd with the ticket's relay key, cookie binds with the cookie a
 * RELAY_COOKIE carried), and the input chooses which, from where, with
 * which counter, when, and what else arrives between them; so mutations
 * reach the session table, the quotas, the cookie path and forwarding
 * instead of dying at a signature. (fuzz_ticket feeds the same core bytes
 * as they come.)
 *
 * Input: byte 0 the limits (load, quotas), then operations, each an op
 * byte and a source byte (one of eight client addresses), some with more:
 *
 *   0  RELAY_BIND of tunnel (op>>3)&3, side (op>>5)&1, a ticket of DC
 *      (op>>6)&1 (or an expired one); one more byte: the counter step
 *      (0: the last counter again, a replay)
 *   1  the same with the cookie the last RELAY_COOKIE to that side gave
 *   2  a DATA (its body from the input: u8 length, bytes)
 *   3  any datagram (u8 length, bytes)
 *   4  time passes (op>>3 x 200 ms), sessions expire
 *   5  the AS revokes a DC's certificate: its sessions end
 *
 * Checked: a reply is a RELAY_ACK that opens with that tunnel's relay key
 * for the side that bound, or a RELAY_COOKIE that opens for that very bind
 * (or, to a bind-shaped datagram of the input's own, a RELAY_COOKIE no
 * longer than it: the RS under load answers before any ticket check);
 * only tunnel messages are forwarded, to a client address; no bind is
 * forwarded; the sessions stay within max_sessions.
 *
 * The signature checks and sealed boxes of the few tickets come back in
 * every input: libsodium's answers are remembered (fuzz_memo.h), and the
 * RS's own ticket cache serves a ticket seen before within one input.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "relay.h"
#include "fuzz_memo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW	1800000000LL
#define RS_NAME	"rs1.ntm.test"
#define NTUN	4

static uint8_t as_pk[NTM_SIGN_PK], as_sk[NTM_SIGN_SK];
static uint8_t rs_pk[NTM_SIGN_PK], rs_sk[NTM_SIGN_SK];
static uint8_t tid[NTUN][NTM_TUNNEL_ID_LEN], rkey[NTUN][NTM_KEY_LEN];
static uint8_t acct[2][NTM_TICKET_ACCOUNT_LEN];	/* the tickets' accounts (v2) */
/* tickets: [tunnel][0: dc1, 1: dc2, 2: dc1 expired] */
static uint8_t tk[NTUN][3][NTM_TICKET_MAX];
static int tklen[NTUN][3];
static int ready;

static void
seed_pair(uint8_t pk[NTM_SIGN_PK], uint8_t sk[NTM_SIGN_SK], uint8_t c)
{
	uint8_t seed[32];

	memset(seed, c, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
}

static void
dc_cert(struct ntm_cert *c, const char *name, uint64_t serial, const uint8_t pk[NTM_SIGN_PK])
{
	memset(c, 0, sizeof(*c));
	c->version = 1;
	c->role = NTM_ROLE_DC;
	snprintf(c->name, sizeof(c->name), "%s", name);
	memcpy(c->pk, pk, NTM_SIGN_PK);
	c->serial = serial;
	c->not_before = NOW - 86400;
	c->not_after = NOW + 86400;
	ntm_cert_sign(c, as_sk);
}

static void
setup(void)
{
	uint8_t dpk[2][NTM_SIGN_PK], dsk[2][NTM_SIGN_SK];
	struct ntm_cert cert[2];

	if (ntm_crypto_init() < 0)
		abort();
	seed_pair(as_pk, as_sk, 'a');
	seed_pair(rs_pk, rs_sk, 'r');
	seed_pair(dpk[0], dsk[0], 'd');
	seed_pair(dpk[1], dsk[1], 'e');
	dc_cert(&cert[0], "dc1.ntm.test", 7, dpk[0]);
	dc_cert(&cert[1], "dc2.ntm.test", 8, dpk[1]);
	memset(acct[0], 0xa1, sizeof(acct[0]));
	memset(acct[1], 0xa2, sizeof(acct[1]));
	for (int t = 0; t < NTUN; t++) {
		memset(tid[t], 0x40 + t, sizeof(tid[t]));
		memset(rkey[t], 0x60 + t, sizeof(rkey[t]));
		for (int k = 0; k < 3; k++)
			if ((tklen[t][k] = ntm_ticket_make(tk[t][k], sizeof(tk[t][k]), tid[t],
			    k == 2 ? NOW + 1 : NOW + 3600, RS_NAME, rs_pk, rkey[t],
			    /* version 2, naming one of two accounts, and version 1 */
			    t % 3 == 2 ? NULL : acct[t % 3], &cert[k == 1], dsk[k == 1])) <= 0)
				abort();
	}
	ready = 1;
}

static void
client_addr(struct sockaddr_storage *ss, socklen_t *len, int n)
{
	memset(ss, 0, sizeof(*ss));
	if (n & 4) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)(5000 + n));
		s6->sin6_addr.s6_addr[0] = 0xfd;
		s6->sin6_addr.s6_addr[15] = (uint8_t)(n & 3);	/* two share a /56 */
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)(5000 + n));
		s4->sin_addr.s_addr = htonl(0x64400000u + (uint32_t)(n & 1));	/* a /24 */
		*len = sizeof(*s4);
	}
}

static int
is_client(const struct sockaddr_storage *ss, socklen_t len)
{
	struct sockaddr_storage c;
	socklen_t cl;

	for (int n = 0; n < 8; n++) {
		client_addr(&c, &cl, n);
		if (cl == len && ntm_sa_equal((const struct sockaddr *)&c,
		    (const struct sockaddr *)ss))
			return 1;
	}
	return 0;
}

/* The clients' view of each tunnel side: its counter, its last bind's MAC,
 * the cookie the RS gave it. */
struct side {
	uint64_t	ctr;
	uint8_t		mac[NTM_MAC_LEN];
	int		has_mac;
	uint8_t		cookie[NTM_RELAY_COOKIE];
	int		has_cookie;
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pkt[NTM_RELAY_BIND_MAX + 64];
	struct side sides[NTUN][2];
	struct ntm_relay_limits lim;
	struct ntm_relay_stats st;
	struct ntm_relay_out out;
	struct ntm_relay *r;
	struct sockaddr_storage from, local;
	socklen_t flen, llen;
	int64_t ms = 0;
	size_t off = 1;

	if (!ready)
		setup();
	if (size < 1)
		return 0;
	memset(&lim, 0, sizeof(lim));
	lim.max_sessions = 1 + (data[0] & 3);
	lim.idle_ms = 3000;
	lim.bind_pps = data[0] & 4 ? 2 : 0;		/* soon under load, or never */
	lim.source_bind_pps = data[0] & 8 ? 3 : 0;
	lim.client_sessions = data[0] & 16 ? 1 : 0;
	lim.dc_share = data[0] & 32 ? 50 : 0;
	if ((r = ntm_relay_new(&lim, RS_NAME, rs_sk, as_pk)) == NULL)
		abort();
	memset(sides, 0, sizeof(sides));
	for (int t = 0; t < NTUN; t++)
		sides[t][0].ctr = sides[t][1].ctr = (uint64_t)NOW * 1000;
	client_addr(&local, &llen, 0);
	((struct sockaddr_in *)&local)->sin_addr.s_addr = htonl(0xc6120001u);	/* the RS */

	while (off + 2 <= size) {
		uint8_t op = data[off], src = data[off + 1] & 7;
		int t = (op >> 3) & 3, side = (op >> 5) & 1, bind = 0, n = -1;
		struct side *s = &sides[t][side];

		off += 2;
		client_addr(&from, &flen, src);
		switch (op & 7) {
		case 0:
		case 1: {
			int k = (op >> 6) & 1;
			struct ntm_relay_bind b;

			if (off < size && data[off] == 0xff)
				k = 2;		/* the expired ticket */
			if (off < size)
				s->ctr += data[off++];
			if ((op & 7) == 1 && !s->has_cookie)
				continue;
			n = ntm_relay_bind_make_cookie(pkt, sizeof(pkt), side, s->ctr, tk[t][k],
			    (size_t)tklen[t][k], rkey[t], (op & 7) == 1 ? s->cookie : NULL);
			/* (that the bind verifies is the RS's to check, below: a
			 * MAC more per bind here cost a tenth of the time) */
			if (n <= 0 || ntm_relay_bind_parse(&b, pkt, (size_t)n) != 0)
				abort();
			memcpy(s->mac, b.mac, NTM_MAC_LEN);
			s->has_mac = 1;
			bind = 1;
			break;
		}
		case 2:
		case 3: {
			size_t len = off < size ? data[off++] : 0;

			if (len > size - off)
				len = size - off;
			if ((op & 7) == 2) {
				if (len + NTM_DATA_HDR_LEN + NTM_TAG_LEN > sizeof(pkt))
					abort();
				ntm_msg_header(pkt, NTM_MSG_DATA);
				memset(pkt + NTM_HDR_LEN, 0, NTM_DATA_HDR_LEN - NTM_HDR_LEN);
				memcpy(pkt + NTM_DATA_HDR_LEN, data + off, len);
				memset(pkt + NTM_DATA_HDR_LEN + len, 0, NTM_TAG_LEN);
				n = (int)(NTM_DATA_HDR_LEN + len + NTM_TAG_LEN);
			} else {
				memcpy(pkt, data + off, len);
				n = (int)len;
			}
			off += len;
			break;
		}
		case 4:
			ms += (int64_t)(op >> 3) * 200 + 1;
			(void)ntm_relay_expire(r, ms);
			continue;
		case 5:
			(void)ntm_relay_end_serial(r, op & 8 ? 8 : 7);
			continue;
		default:
			continue;
		}
		ms += 10;
		switch (ntm_relay_input(r, pkt, (size_t)n, (struct sockaddr *)&from, flen,
		    (struct sockaddr *)&local, llen, ms, NOW + ms / 1000, &out)) {
		case NTM_RELAY_FORWARD:
			if (bind || ntm_msg_validate(pkt, (size_t)n) < 0 || out.tolen == 0 ||
			    !is_client(&out.to, out.tolen))
				abort();
			break;
		case NTM_RELAY_REPLY: {
			struct ntm_relay_bind fb;
			int aside, pb;
			uint64_t actr;

			/* Under load the RS answers a bind-shaped datagram with a
			 * cookie before any ticket check (docs/protocol.md §4.4):
			 * a forged one too, but never longer than it came. */
			if (!bind) {
				if (out.reply_len != NTM_RELAY_COOKIE_LEN || out.reply_len > (size_t)n ||
				    ntm_relay_bind_parse(&fb, pkt, (size_t)n) != 0)
					abort();
				break;
			}
			if (out.reply_len == NTM_RELAY_ACK_LEN) {
				if (ntm_relay_ack_open(out.reply, out.reply_len, rkey[t], &aside, &pb,
				    &actr) != 0 || aside != side || actr != s->ctr)
					abort();
			} else if (out.reply_len == NTM_RELAY_COOKIE_LEN) {
				if (ntm_relay_cookie_open(out.reply, out.reply_len, tid[t], s->mac,
				    s->cookie) != 0)
					abort();
				s->has_cookie = 1;
			} else {
				abort();
			}
			if (out.notify_len && (out.notify_len != NTM_RELAY_ACK_LEN ||
			    ntm_relay_ack_open(out.notify, out.notify_len, rkey[t], &aside, &pb,
			    &actr) != 0 || aside == side || !pb))
				abort();
			break;
		}
		default:
			if (out.reason < 0 || out.reason >= NTM_RELAY_DROP__N)
				abort();
		}
	}
	ntm_relay_get_stats(r, &st);
	if (st.sessions > lim.max_sessions)
		abort();
	ntm_relay_free(r);
	return 0;
}
