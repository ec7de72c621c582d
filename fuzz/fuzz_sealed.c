/*
 * fuzz_sealed.c - libFuzzer harness that reaches the parsers behind the
 * authentication. The first byte picks a target, the rest is PLAINTEXT:
 * the harness seals it with the fixed test keys exactly as a holder of the
 * key would (docs/protocol.md §4.2: header, session id, counter as AD,
 * XChaCha20-Poly1305 with the counter in the nonce), so mutations land in
 * the payload parsers instead of dying at the MAC:
 *
 *   0  a session of REG_REQs at the DC (u8 source, u8 seconds, payload;
 *      repeated), each opened and decided from what the last decision
 *      kept, as udp.c does; location changes stored and MOVED sent no
 *      faster than dcreg.h allows
 *   1  REG_RESP   2  NUDGE   3  MOVED   (at the client)
 *   4  an inner packet from a peer: the IP parser, and TUN mode's inbound
 *      filter (lib/core/fw.c) after a few flows of this host's own
 *
 * The payload is cut or zero-padded to the message's length, except when
 * the second byte's low bit is set (then the length goes as is: the length
 * checks). A sealed payload that parses must give a state that later calls
 * take; nothing may crash.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dcreg.h"
#include "fw.h"
#include "ippkt.h"
#include "reg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t SID[NTM_SID_LEN] = "fuzz-session-id";
#define CKEY	0xc1		/* client tx == DC rx */
#define DKEY	0xd2		/* DC tx == client rx */

static struct ntm_fw *fw;

static void
setup(void)
{
	static const uint8_t out4[] = {		/* this host's TCP SYN to a peer */
		0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 100, 64, 1, 2, 100, 64, 2, 2,
		0xc3, 0x50, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0 };
	struct ntm_fw_rule r;
	char err[128];

	if (sodium_init() < 0 || (fw = ntm_fw_new(1)) == NULL)
		abort();
	if (ntm_fw_rule_parse(&r, "22/tcp", err, sizeof(err)) < 0 || ntm_fw_add(fw, &r) < 0 ||
	    ntm_fw_rule_parse(&r, "bob.dc2.example:icmp", err, sizeof(err)) < 0 ||
	    ntm_fw_add(fw, &r) < 0)
		abort();
	ntm_fw_out(fw, out4, sizeof(out4), 1000);
}

/* Seals plaintext p (n bytes) as a message of type under key k, counter ctr. */
static size_t
seal(uint8_t *out, enum ntm_msg type, uint8_t k, uint64_t ctr, const uint8_t *p, size_t n)
{
	uint8_t key[NTM_KEY_LEN], nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long clen;

	memset(key, k, sizeof(key));
	ntm_msg_header(out, type);
	memcpy(out + NTM_HDR_LEN, SID, NTM_SID_LEN);
	for (int i = 0; i < 8; i++)
		out[NTM_HDR_LEN + NTM_SID_LEN + i] = (uint8_t)(ctr >> (56 - 8 * i));
	memset(nonce, 0, sizeof(nonce));
	memcpy(nonce + 16, out + NTM_HDR_LEN + NTM_SID_LEN, 8);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + NTM_SEALED_HDR, &clen, p, n, out,
	    NTM_SEALED_HDR, NULL, nonce, key);
	return NTM_SEALED_HDR + (size_t)clen;
}

static void
chans(struct ntm_chan *dc, struct ntm_chan *cl)
{
	uint8_t c[NTM_KEY_LEN], d[NTM_KEY_LEN];

	memset(c, CKEY, sizeof(c));
	memset(d, DKEY, sizeof(d));
	ntm_chan_init(dc, SID, d, c);
	ntm_chan_init(cl, SID, c, d);
}

/*
 * A client's session at the DC: REG_REQs sealed with counters that grow,
 * each from a source the input picks (one of four ports on two addresses,
 * v4-mapped or IPv6) after some seconds, opened with one channel and
 * decided from what the last decision kept, as udp.c does. In one session
 * the DC stores a location change and sends MOVED no more often than
 * dcreg.h allows: a burst, then one every NTM_DCREG_CHANGE_EVERY_S.
 */
static void
reg_session(const uint8_t *d, size_t n, int exact)
{
	uint8_t plain[NTM_REG_REQ_PAYLOAD], pkt[NTM_SEALED_HDR + 512 + NTM_TAG_LEN];
	struct ntm_chan dc, cl;
	struct ntm_reg_req rq;
	struct ntm_dcreg st;
	struct ntm_dcreg_act act;
	struct sockaddr_storage ss;
	int64_t now = 5000, start = 5000;
	uint64_t ctr = 7;
	size_t len;
	int moves = 0;

	chans(&dc, &cl);
	memset(&st, 0, sizeof(st));
	while (n >= 2) {
		uint8_t src = d[0], dt = d[1];

		d += 2;
		n -= 2;
		len = exact ? NTM_REG_REQ_PAYLOAD : (n < 512 ? n : 512);
		memset(plain, 0, sizeof(plain));
		if (exact) {
			memcpy(plain, d, n < len ? n : len);
			len = seal(pkt, NTM_MSG_REG_REQ, CKEY, ctr, plain, len);
		} else {
			len = seal(pkt, NTM_MSG_REG_REQ, CKEY, ctr, d, len);
		}
		d += exact ? (n < NTM_REG_REQ_PAYLOAD ? n : NTM_REG_REQ_PAYLOAD) : (n < 512 ? n : 512);
		n -= exact ? (n < NTM_REG_REQ_PAYLOAD ? n : NTM_REG_REQ_PAYLOAD) : (n < 512 ? n : 512);
		ctr += 1 + (src >> 6);			/* counters may skip */
		now += dt & 0x3f;
		if (ntm_reg_req_open(&dc, pkt, len, &rq) < 0)
			continue;
		memset(&ss, 0, sizeof(ss));
		if (src & 4) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)(4000 + (src & 3)));
			s6->sin6_addr.s6_addr[0] = 0xfd;
			s6->sin6_addr.s6_addr[15] = (uint8_t)(1 + ((src >> 3) & 1));
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			s6->sin6_family = AF_INET6;	/* v4-mapped, as received */
			s6->sin6_port = htons((uint16_t)(4000 + (src & 3)));
			s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
			s6->sin6_addr.s6_addr[12] = 198;
			s6->sin6_addr.s6_addr[13] = 18;
			s6->sin6_addr.s6_addr[15] = (uint8_t)(1 + ((src >> 3) & 1));
		}
		if (ntm_dcreg_decide(&st, &rq, &ss, sizeof(struct sockaddr_in6), now, 15, 3, &st,
		    &act) < 0)
			abort();
		if (act.store)
			st.saved = now;
		if (act.answer && act.echo != rq.ctr)
			abort();
		if (act.moved && ++moves > NTM_DCREG_CHANGE_BURST +
		    (now - start) / NTM_DCREG_CHANGE_EVERY_S + 1)
			abort();
		if (!exact)
			break;
	}
}

static void
inner(const uint8_t *p, size_t n)
{
	struct ntm_ip ip;
	enum ntm_fw_verdict v;

	(void)ntm_ip_parse(&ip, p, n);
	v = ntm_fw_in(fw, "bob.dc2.example", p, n, 2000);
	if (v != NTM_FW_DROP && v != NTM_FW_PASS_FLOW && v != NTM_FW_PASS_RULE &&
	    v != NTM_FW_PASS_ICMPERR)
		abort();
	ntm_fw_out(fw, p, n, 2000);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct { enum ntm_msg type; size_t len; uint8_t key; } t[] = {
		{ NTM_MSG_REG_REQ, NTM_REG_REQ_PAYLOAD, CKEY },
		{ NTM_MSG_REG_RESP, NTM_REG_RESP_PAYLOAD, DKEY },
		{ NTM_MSG_NUDGE, NTM_NUDGE_PAYLOAD, DKEY },
		{ NTM_MSG_MOVED, NTM_MOVED_PAYLOAD, DKEY },
	};
	uint8_t plain[512], pkt[NTM_SEALED_HDR + sizeof(plain) + NTM_TAG_LEN];
	struct ntm_chan dc, cl;
	size_t which, n, len;
	int exact;

	if (fw == NULL)
		setup();
	if (size < 2)
		return 0;
	which = data[0] % 5;
	exact = !(data[1] & 1);
	data += 2;
	size -= 2;
	if (which == 4) {
		inner(data, size);
		return 0;
	}
	if (which == 0) {
		reg_session(data, size, exact);
		return 0;
	}
	len = exact ? t[which].len : (size < sizeof(plain) ? size : sizeof(plain));
	memset(plain, 0, sizeof(plain));
	memcpy(plain, data, size < len ? size : len);
	n = seal(pkt, t[which].type, t[which].key, 7, plain, len);
	switch (which) {
	case 1: {
		struct ntm_reg_resp r;

		chans(&dc, &cl);
		(void)ntm_reg_resp_open(&cl, pkt, n, &r);
		break;
	}
	case 2: {
		struct ntm_nudge r;

		chans(&dc, &cl);
		(void)ntm_nudge_open(&cl, pkt, n, &r);
		break;
	}
	case 3: {
		struct ntm_moved r;

		chans(&dc, &cl);
		(void)ntm_moved_open(&cl, pkt, n, &r);
		break;
	}
	}
	return 0;
}
