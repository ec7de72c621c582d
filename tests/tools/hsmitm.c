/*
 * hsmitm - test tool: a DC in the middle of a tunnel. It holds what a
 * dishonest DC holds: the direction the DC made for one end (the tunnel
 * id, the temporal key K, the other end's endpoint and device
 * certificate), and plays that end on the UDP port the DC pointed the
 * other end at. It answers (or sends) the handshake with K and a device
 * key of its own, the way a DC that wants to sit in the middle would.
 *
 *   hsmitm --direction FILE --bind ADDR:PORT [--key FILE] [--timeout SEC]
 *
 * FILE is one direction as GET /v1/directions gives it (JSON object).
 * --key is the device key file of the end it plays (STATE_DIR/device.key);
 * without it a fresh key is used (all a DC has). When its own core cannot
 * open the other end's HS_INIT it still answers with an HS_RESP whose MAC
 * is made with K (the most a holder of K can forge).
 *
 * Prints what happened; exits 0 when a session was established with the
 * other end (the MITM worked), 3 when none was in --timeout seconds
 * (default 10), 2 on bad arguments, 1 on other errors.
 */
#include <sys/socket.h>

#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "ntm.h"
#include "msg.h"
#include "tunnel.h"

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
send_out(int fd, const struct ntm_tun_out *o, const struct sockaddr_storage *to,
    socklen_t tolen)
{
	for (int i = 0; i < o->n; i++)
		(void)sendto(fd, o->buf[i], o->len[i], 0, (const struct sockaddr *)to, tolen);
}

/* An HS_RESP to init made with K alone: a valid MAC, a made-up tag. */
static size_t
forge_resp(uint8_t *b, const uint8_t *init, const uint8_t K[NTM_KEY_LEN])
{
	crypto_generichash_state st;
	uint8_t mk[32];

	crypto_generichash(mk, sizeof(mk), (const uint8_t *)"ntm hs mac", 10, K, NTM_KEY_LEN);
	memset(b, 0, NTM_HS_RESP_LEN);
	ntm_msg_header(b, NTM_MSG_HS_RESP);
	randombytes_buf(b + 4, 4);
	memcpy(b + 8, init + 4, 4);
	randombytes_buf(b + 12, 32 + 16);
	crypto_generichash_init(&st, mk, sizeof(mk), 16);
	crypto_generichash_update(&st, b, 60);
	crypto_generichash_update(&st, init + NTM_HS_INIT_LEN - 16, 16);
	crypto_generichash_final(&st, b + 60, 16);
	return NTM_HS_RESP_LEN;
}

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
		{ "direction", required_argument, NULL, 'd' },
		{ "bind", required_argument, NULL, 'b' },
		{ "key", required_argument, NULL, 'k' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	static struct ntm_tun_out o;
	const char *dirf = NULL, *bind_s = NULL, *keyf = NULL;
	struct ntm_tunnel_cfg cfg;
	struct ntm_tunnel *t;
	struct ntm_m_direction m;
	struct ntm_dcert victim;
	struct ntm_tun_event ev;
	struct sockaddr_storage me, peer, from;
	socklen_t melen, peerlen = 0, fromlen;
	json_error_t jerr;
	json_t *d;
	uint8_t buf[NTM_UDP_MAX + 64], resp[NTM_HS_RESP_LEN];
	int64_t deadline, timeout = 10;
	int c, fd, r, has_peer = 0, forged = 0, refused = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': dirf = optarg; break;
		case 'b': bind_s = optarg; break;
		case 'k': keyf = optarg; break;
		case 't': timeout = atol(optarg); break;
		default: return 2;
		}
	}
	if (dirf == NULL || bind_s == NULL || timeout < 1) {
		fprintf(stderr, "usage: hsmitm --direction FILE --bind ADDR:PORT [--key FILE] "
		    "[--timeout SEC]\n");
		return 2;
	}
	if (ntm_crypto_init() < 0)
		return 1;
	if ((d = json_load_file(dirf, 0, &jerr)) == NULL ||
	    ntm_msg_direction_decode(d, &m, NULL) < 0) {
		fprintf(stderr, "hsmitm: %s: not a direction\n", dirf);
		return 2;
	}
	memset(&cfg, 0, sizeof(cfg));
	if (ntm_hex_decode_exact(cfg.tunnel_id, sizeof(cfg.tunnel_id), m.tunnel_id) < 0 ||
	    ntm_b64_decode_exact(cfg.temporal_key, NTM_KEY_LEN, m.temporal_key) < 0 ||
	    m.peer_cert == NULL || ntm_dcert_from_b64(&victim, m.peer_cert) < 0) {
		fprintf(stderr, "hsmitm: %s: no tunnel id, temporal key or peer_cert\n", dirf);
		return 2;
	}
	memcpy(cfg.peer_static, victim.pk, NTM_DEVKEY_LEN);
	cfg.initiator = strcmp(m.role, "initiator") == 0;
	if (keyf) {
		if (ntm_key_load(keyf, cfg.static_sk, NTM_KEY_LEN) < 0) {
			fprintf(stderr, "hsmitm: %s: not a device key file\n", keyf);
			return 2;
		}
	} else
		randombytes_buf(cfg.static_sk, sizeof(cfg.static_sk));
	if (ntm_sa_parse(&me, &melen, bind_s) < 0) {
		fprintf(stderr, "hsmitm: --bind '%s': expected ADDR:PORT\n", bind_s);
		return 2;
	}
	if (ntm_sa_parse(&peer, &peerlen, m.endpoint) == 0)
		has_peer = 1;
	if ((fd = socket(me.ss_family, SOCK_DGRAM, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)) < 0 ||
	    bind(fd, (struct sockaddr *)&me, melen) < 0) {
		perror("hsmitm: bind");
		return 1;
	}
	if ((t = ntm_tunnel_new(&cfg, now_ms())) == NULL) {
		fprintf(stderr, "hsmitm: cannot make the tunnel core\n");
		return 1;
	}
	printf("hsmitm: playing the %s of tunnel %s against %s, %s key\n", m.role,
	    m.tunnel_id, victim.fqdn, keyf ? "its real device" : "a fresh");
	fflush(stdout);
	if (cfg.initiator) {
		if (!has_peer || ntm_tunnel_start(t, now_ms(), &o) < 0) {
			fprintf(stderr, "hsmitm: cannot start the handshake\n");
			return 1;
		}
		send_out(fd, &o, &peer, peerlen);
	}
	deadline = now_ms() + 1000 * timeout;
	while (now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t wait = deadline - now_ms(), tk = ntm_tunnel_deadline(t) - now_ms();
		ssize_t n;

		if (tk < wait)
			wait = tk < 0 ? 0 : tk;
		if (poll(&p, 1, (int)wait) <= 0) {
			if (ntm_tunnel_tick(t, now_ms(), &o) == 0 && has_peer)
				send_out(fd, &o, &peer, peerlen);
			continue;
		}
		fromlen = sizeof(from);
		if ((n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
		    &fromlen)) <= 0)
			continue;
		r = ntm_msg_validate(buf, (size_t)n);
		if (r != NTM_MSG_HS_INIT && r != NTM_MSG_HS_RESP && r != NTM_MSG_DATA)
			continue;	/* the DC's nudges to the end we play */
		peer = from;
		peerlen = fromlen;
		has_peer = 1;
		if (r == NTM_MSG_HS_INIT && !cfg.initiator) {
			uint8_t init[NTM_HS_INIT_LEN];

			memcpy(init, buf, sizeof(init));
			r = ntm_tunnel_recv(t, buf, (size_t)n, now_ms(), &ev, &o);
			if (r == 0) {
				send_out(fd, &o, &from, fromlen);
				printf("hsmitm: HS_INIT opened, HS_RESP sent\n");
			} else {
				(void)sendto(fd, resp, forge_resp(resp, init, cfg.temporal_key), 0,
				    (struct sockaddr *)&from, fromlen);
				forged++;
				printf("hsmitm: HS_INIT not opened (%s): answered with K alone\n",
				    ntm_errcode(r));
			}
			fflush(stdout);
			continue;
		}
		r = ntm_tunnel_recv(t, buf, (size_t)n, now_ms(), &ev, &o);
		send_out(fd, &o, &from, fromlen);
		if (r < 0)
			refused++;
		if (ev.established) {
			printf("hsmitm: SESSION ESTABLISHED with %s\n", victim.fqdn);
			return 0;
		}
	}
	printf("hsmitm: no session with %s in %llds (%d answers forged with K, %d "
	    "messages not accepted)\n", victim.fqdn, (long long)timeout, forged, refused);
	ntm_tunnel_free(t);
	json_decref(d);
	return 3;
}
