/*
 * fuzz_ticket.c - libFuzzer harness for relay tickets, RELAY_BIND and
 * RELAY_ACK parsing, and the RS forwarding core.
 *
 * The first input byte picks the target:
 *   0: ntm_ticket_open on the rest
 *   1: ntm_relay_bind_parse + ntm_relay_bind_verify on the rest
 *   2: ntm_relay_ack_open and ntm_relay_cookie_open (for the tunnel id the
 *      message names) on the rest
 *   3+: the rest is a sequence of datagrams, each u16 length + u8 source
 *       (0..3, one of four client addresses) + bytes, fed to one relay;
 *       an even first byte gives it a budget of 2 ticket checks a second,
 *       so that it is soon under load (RELAY_COOKIE answers, cookie binds).
 * The keys come from fixed seeds, so seeds in fuzz/corpus/ticket (made with
 * the same seeds: see ticket_seed() below) carry tickets that verify.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW	1800000000LL

static uint8_t as_pk[32], as_sk[64], rs_pk[32], rs_sk[64], dc_pk[32], dc_sk[64];
static const uint8_t relay_key[NTM_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };

static void
init(void)
{
	static int done;
	uint8_t seed[32];

	if (done)
		return;
	done = 1;
	if (ntm_crypto_init() < 0)
		abort();
	memset(seed, 'a', sizeof(seed));
	crypto_sign_seed_keypair(as_pk, as_sk, seed);
	memset(seed, 'd', sizeof(seed));
	crypto_sign_seed_keypair(dc_pk, dc_sk, seed);
	memset(seed, 'r', sizeof(seed));
	crypto_sign_seed_keypair(rs_pk, rs_sk, seed);
}

static void
sockaddr_n(struct sockaddr_storage *ss, socklen_t *len, int n)
{
	memset(ss, 0, sizeof(*ss));
	if (n & 1) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)(4000 + n));
		s6->sin6_addr.s6_addr[0] = 0xfd;
		s6->sin6_addr.s6_addr[15] = (uint8_t)n;
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)(4000 + n));
		s4->sin_addr.s_addr = htonl(0xc6120000u + (uint32_t)n);
		*len = sizeof(*s4);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ntm_ticket_info ti;
	struct ntm_relay_bind b;
	int side, pb;
	uint64_t ctr;

	init();
	if (size < 1)
		return 0;
	switch (data[0]) {
	case 0:
		/* version 1 or 2; only a version 2 ticket names an account */
		if (ntm_ticket_open(&ti, data + 1, size - 1, as_pk, "rs1.ntm.test", rs_sk,
		    NOW) == 0 && (memcmp(ti.tunnel_id, data + 2, NTM_TUNNEL_ID_LEN) != 0 ||
		    ti.version != data[1] || (ti.version == NTM_TICKET_V2 &&
		    memcmp(ti.account, data + 2 + NTM_TUNNEL_ID_LEN + 8, NTM_TICKET_ACCOUNT_LEN) != 0)))
			abort();
		break;
	case 1:
		if (ntm_relay_bind_parse(&b, data + 1, size - 1) == 0) {
			if (b.ticket < data + 1 || b.ticket + b.tlen > data + size)
				abort();
			(void)ntm_relay_bind_verify(data + 1, size - 1, relay_key);
		}
		break;
	case 2: {
		static const uint8_t mac[NTM_MAC_LEN] = { 9, 9, 9 };
		const uint8_t *tid = ntm_relay_cookie_tunnel_id(data + 1, size - 1);
		uint8_t cookie[NTM_RELAY_COOKIE];

		(void)ntm_relay_ack_open(data + 1, size - 1, relay_key, &side, &pb, &ctr);
		if (tid && ntm_relay_cookie_open(data + 1, size - 1, tid, mac, cookie) == 0 &&
		    size - 1 != NTM_RELAY_COOKIE_LEN)
			abort();
		break;
	}
	default: {
		struct ntm_relay_limits lim = { .max_sessions = 4, .idle_ms = 1000,
		    .session_pps = 50, .bind_pps = (data[0] & 1) ? 50 : 2,
		    .account_sessions = 2 };
		struct ntm_relay *r = ntm_relay_new(&lim, "rs1.ntm.test", rs_sk, as_pk);
		struct ntm_relay_out out;
		struct ntm_relay_stats st;
		struct sockaddr_storage from, local;
		socklen_t flen, llen;
		size_t off = 1;
		int64_t ms = 0;

		if (r == NULL)
			abort();
		while (off + 3 <= size) {
			size_t n = (size_t)data[off] << 8 | data[off + 1];
			int src = data[off + 2] & 3;

			off += 3;
			if (n > size - off)
				n = size - off;
			sockaddr_n(&from, &flen, src);
			sockaddr_n(&local, &llen, 8 + (src & 1));
			ms += 100;
			switch (ntm_relay_input(r, data + off, n, (struct sockaddr *)&from, flen,
			    (struct sockaddr *)&local, llen, ms, NOW + ms / 1000, &out)) {
			case NTM_RELAY_FORWARD:
				if (out.tolen == 0 || ntm_msg_validate(data + off, n) < 0)
					abort();
				break;
			case NTM_RELAY_REPLY:
				/* an ACK, or a cookie never bigger than the bind */
				if (out.reply_len != NTM_RELAY_ACK_LEN &&
				    (out.reply_len != NTM_RELAY_COOKIE_LEN || out.reply_len > n))
					abort();
				break;
			default:
				if (out.reason < 0 || out.reason >= NTM_RELAY_DROP__N)
					abort();
			}
			off += n;
			if ((ms % 700) == 0)
				(void)ntm_relay_expire(r, ms);
		}
		ntm_relay_get_stats(r, &st);
		if (st.sessions > lim.max_sessions)
			abort();
		ntm_relay_free(r);
	}
	}
	return 0;
}
