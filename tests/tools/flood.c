/*
 * flood - hostile load for the bench and the hostile suite: an anonymous
 * login flood at a DC, or an authenticated client's location-change flood.
 *
 *   flood login --url URL --ca FILE [--rate R] [--seconds T] [--sources S]
 *               [--src-net A.B] [--conns C]
 *   flood moved --dc URL --ca FILE --udp IP:PORT --user U --password-file F
 *               [--peer-dc URL --peer-udp IP:PORT] [--rate R] [--seconds T]
 *               [--ports P]
 *
 * login: R POST /v1/login a second for T seconds, each a well-formed login
 *   of a fresh unknown user (the AS would run Argon2id for it), over C
 *   keep-alive HTTPS connections per source address; the sources are
 *   A.B.0.1, A.B.1.1, ... (one per /24, default 127.10: loopback only), so
 *   per-address and per-prefix limits meet S of each. When every connection
 *   is waiting for an answer, the requests due then are not sent and are
 *   counted as "unsent": the rate reached is reported, never assumed.
 *
 * moved: logs in user U as device "flood" at --dc (and, with --peer-dc, a
 *   second device "floodpeer" of U there), registers it, asks the DC for a
 *   tunnel to the peer (so every location change means a MOVED and a
 *   POST /v1/dc/moved to the peer's DC), then sends R REG_REQ a second for
 *   T seconds, each from the next of P UDP ports in turn: every one is a
 *   new location. Counts the REG_RESPs.
 *
 * Prints one line "result key=value ..." (sent, unsent, rate reached,
 * answers by HTTP status or REG_RESPs). Bounded in count and time; SIGINT
 * and SIGTERM end it early. Exit 0 when it ran, 2 on bad usage, 1 when it
 * could not be set up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ntm.h"
#include "tool.h"
#include "msg.h"
#include "reg.h"

#define CODES		600
#define MAX_HANDLES	4096

struct opts {
	const char	*url, *ca, *udp, *user, *pwfile, *peer_dc, *peer_udp, *src_net;
	long		 rate, seconds, sources, conns, ports;
};

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* ---- login flood ----------------------------------------------------------- */

struct slot {
	CURL		*h;
	int		 busy;
	char		 iface[40];
};

static int
flood_login(const struct opts *o)
{
	long n = o->sources * o->conns, sent = 0, unsent = 0, done = 0;
	long codes[CODES] = { 0 }, noanswer = 0;
	struct curl_slist *hdr = NULL;
	struct slot *s;
	CURLM *m;
	int64_t t0, end, due_carry = 0;
	unsigned a, b;
	char url[600];

	if (n > MAX_HANDLES || sscanf(o->src_net, "%u.%u", &a, &b) != 2 || a > 255 ||
	    b > 255 || o->sources > 256) {
		fprintf(stderr, "flood: --sources x --conns at most %d, --src-net A.B, "
		    "--sources at most 256\n", MAX_HANDLES);
		return 2;
	}
	snprintf(url, sizeof(url), "%s/v1/login", o->url);
	if ((s = calloc((size_t)n, sizeof(*s))) == NULL || (m = curl_multi_init()) == NULL ||
	    (hdr = curl_slist_append(NULL, "Content-Type: application/json")) == NULL)
		return 1;
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, n + 16);
	for (long i = 0; i < n; i++) {
		long src = i % o->sources;

		snprintf(s[i].iface, sizeof(s[i].iface), "host!%u.%u.%ld.1", a, b, src);
		if ((s[i].h = curl_easy_init()) == NULL)
			return 1;
		curl_easy_setopt(s[i].h, CURLOPT_URL, url);
		curl_easy_setopt(s[i].h, CURLOPT_CAINFO, o->ca);
		curl_easy_setopt(s[i].h, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(s[i].h, CURLOPT_INTERFACE, s[i].iface);
		curl_easy_setopt(s[i].h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(s[i].h, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(s[i].h, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(s[i].h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(s[i].h, CURLOPT_PRIVATE, &s[i]);
	}
	t0 = tool_now_us();
	end = t0 + o->seconds * 1000000;
	for (long free_from = 0; !tool_stop;) {
		int64_t now = tool_now_us();
		long due = now < end ? (long)((now - t0) * o->rate / 1000000) - sent - unsent -
		    due_carry : 0;
		int running, left;
		CURLMsg *msg;

		/* Start what is due on free connections, round the sources. */
		for (long k = 0; due > 0 && k < n; k++) {
			struct slot *x = &s[(free_from + k) % n];
			char body[200];

			if (x->busy)
				continue;
			snprintf(body, sizeof(body), "{\"version\":1,\"user\":\"fl%ldx%ld\","
			    "\"password\":\"guess\",\"device\":\"d\",\"client_key\":"
			    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
			    (long)(x - s), sent);
			curl_easy_setopt(x->h, CURLOPT_COPYPOSTFIELDS, body);
			if (curl_multi_add_handle(m, x->h) != CURLM_OK)
				break;
			x->busy = 1;
			sent++;
			due--;
			free_from = (x - s) + 1;
		}
		if (due > 0)
			unsent += due;	/* every connection was waiting */
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct slot *x;
			long code = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			if (msg->data.result == CURLE_OK)
				curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
			if (code > 0 && code < CODES)
				codes[code]++;
			else
				noanswer++;
			curl_multi_remove_handle(m, x->h);
			x->busy = 0;
			done++;
		}
		if (now >= end && running == 0)
			break;
		if (now >= end + 15000000)
			break;		/* answers still missing 15 s on: counted below */
		curl_multi_poll(m, NULL, 0, 1, NULL);
	}
	{
		double secs = (double)(tool_now_us() - t0) / 1e6;

		if (secs > (double)o->seconds)
			secs = (double)o->seconds;
		printf("result mode=login seconds=%ld sources=%ld sent=%ld unsent=%ld "
		    "rate_sent=%.0f answered=%ld no_answer=%ld", o->seconds, o->sources, sent,
		    unsent, (double)sent / secs, done - noanswer, noanswer + (sent - done));
		for (int c = 0; c < CODES; c++)
			if (codes[c])
				printf(" http_%d=%ld", c, codes[c]);
		printf("\n");
	}
	for (long i = 0; i < n; i++) {
		if (s[i].busy)
			curl_multi_remove_handle(m, s[i].h);
		curl_easy_cleanup(s[i].h);
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(hdr);
	free(s);
	return 0;
}

/* ---- MOVED flood ----------------------------------------------------------- */

struct dev {
	struct ntm_chan	 chan;
	char		 token[4096], fqdn[300];
};

struct resp {
	char		*p;
	size_t		 n;
};

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	char *q;

	if (r->n + size * n > 1 << 20 || (q = realloc(r->p, r->n + size * n + 1)) == NULL)
		return 0;
	memcpy(q + r->n, p, size * n);
	r->p = q;
	r->n += size * n;
	r->p[r->n] = '\0';
	return size * n;
}

/* POST body to url (with token when not NULL); the answer's JSON, or NULL
 * with a line on stderr. */
static json_t *
post(const char *url, const char *ca, const char *token, json_t *body)
{
	struct resp r = { NULL, 0 };
	struct curl_slist *hdr = NULL;
	char auth[4200], *text = json_dumps(body, JSON_COMPACT);
	long code = 0;
	json_t *j = NULL;
	CURL *h = curl_easy_init();
	CURLcode e;

	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdr = curl_slist_append(hdr, auth);
	}
	if (h == NULL || text == NULL || hdr == NULL)
		goto out;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if ((e = curl_easy_perform(h)) != CURLE_OK) {
		fprintf(stderr, "flood: %s: %s\n", url, curl_easy_strerror(e));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200 || r.p == NULL || (j = json_loads(r.p, 0, NULL)) == NULL)
		fprintf(stderr, "flood: %s answered %ld: %s\n", url, code, r.p ? r.p : "");
out:
	free(r.p);
	free(text);
	curl_slist_free_all(hdr);
	if (h)
		curl_easy_cleanup(h);
	return j;
}

static int
login_dev(struct dev *d, const char *dc, const char *ca, const char *user,
    const char *password, const char *device)
{
	uint8_t pk[NTM_KX_PK], sk[NTM_KX_SK], sid[NTM_SID_LEN], dcpk[NTM_KX_PK];
	uint8_t rx[NTM_KEY_LEN], tx[NTM_KEY_LEN];
	char pkb[NTM_B64_LEN(NTM_KX_PK)], url[600];
	struct ntm_m_login_ok m;
	struct ntm_jerr je;
	json_t *body, *ans;
	int rc = -1;

	if (ntm_kx_keypair(pk, sk) < 0 || ntm_b64_encode(pkb, sizeof(pkb), pk, sizeof(pk)) < 0 ||
	    (body = json_pack("{s:i, s:s, s:s, s:s, s:s}", "version", 1, "user", user,
	    "password", password, "device", device, "client_key", pkb)) == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s/v1/login", dc);
	ans = post(url, ca, NULL, body);
	json_decref(body);
	if (ans == NULL)
		return -1;
	memset(&m, 0, sizeof(m));
	if (ntm_msg_login_ok_unpack(ans, &m, &je) < 0 ||
	    ntm_hex_decode_exact(sid, sizeof(sid), m.session_id) < 0 ||
	    ntm_b64_decode_exact(dcpk, sizeof(dcpk), m.dc_key) < 0 ||
	    ntm_kx_session(rx, tx, 1, pk, sk, dcpk) < 0) {
		fprintf(stderr, "flood: %s: a login answer that does not open\n", url);
		goto out;
	}
	ntm_chan_init(&d->chan, sid, tx, rx);
	snprintf(d->token, sizeof(d->token), "%s", m.token);
	snprintf(d->fqdn, sizeof(d->fqdn), "%s", m.fqdn);
	rc = 0;
out:
	ntm_wipe(rx, sizeof(rx));
	ntm_wipe(tx, sizeof(tx));
	ntm_wipe(sk, sizeof(sk));
	json_decref(ans);
	return rc;
}

static int
parse_udp(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *c = strrchr(s, ':');

	if (c == NULL || (size_t)(c - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(c - s));
	host[c - s] = '\0';
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(c + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 && a->sin_port ? 0 : -1;
}

static int
udp_socket(void)
{
	struct sockaddr_in a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One REG_REQ of d from fd to dc; 0 or -1. */
static int
send_reg(struct dev *d, int fd, const struct sockaddr_in *dc)
{
	struct ntm_reg_req r;
	struct sockaddr_storage self;
	socklen_t len = sizeof(self);
	uint8_t out[NTM_REG_REQ_LEN];

	memset(&r, 0, sizeof(r));
	if (getsockname(fd, (struct sockaddr *)&self, &len) < 0)
		return -1;
	r.local_port = ntohs(((struct sockaddr_in *)&self)->sin_port);
	r.flags = NTM_REG_F_AGENT;
	r.naddrs = 1;
	r.addrs[0] = self;
	if (ntm_reg_req_seal(&d->chan, &r, out, sizeof(out), NULL) != NTM_REG_REQ_LEN)
		return -1;
	return sendto(fd, out, sizeof(out), 0, (const struct sockaddr *)dc, sizeof(*dc)) < 0 ?
	    -1 : 0;
}

/* REG_RESPs waiting on fd for d: how many opened. */
static long
drain(struct dev *d, int fd)
{
	uint8_t buf[NTM_UDP_MAX + 1];
	struct ntm_reg_resp rr;
	long ok = 0;
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		if (ntm_msg_validate(buf, (size_t)n) == NTM_MSG_REG_RESP &&
		    ntm_reg_resp_open(&d->chan, buf, (size_t)n, &rr) == 0)
			ok++;
	return ok;
}

/* Registers d once from fd (3 tries, a second apart): 0 or -1. */
static int
register_once(struct dev *d, int fd, const struct sockaddr_in *dc)
{
	for (int t = 0; t < 3; t++) {
		if (send_reg(d, fd, dc) < 0)
			return -1;
		for (int w = 0; w < 100; w++) {
			usleep(10000);
			if (drain(d, fd) > 0)
				return 0;
		}
	}
	return -1;
}

static int
flood_moved(const struct opts *o)
{
	struct dev me, peer;
	struct sockaddr_in dc, pdc;
	char *password = NULL, url[600];
	size_t plen;
	long sent = 0, ok = 0, fails = 0;
	int *fds, pfd = -1, rc = 1;
	int64_t t0, end;
	json_t *body, *ans;

	if (o->udp == NULL || o->user == NULL || o->pwfile == NULL ||
	    parse_udp(o->udp, &dc) < 0 || (o->peer_dc != NULL) != (o->peer_udp != NULL) ||
	    (o->peer_udp && parse_udp(o->peer_udp, &pdc) < 0)) {
		fprintf(stderr, "flood: moved needs --udp IP:PORT, --user, --password-file "
		    "(and --peer-dc with --peer-udp IP:PORT)\n");
		return 2;
	}
	if (ntm_file_read(o->pwfile, 1024, &password, &plen) < 0) {
		fprintf(stderr, "flood: %s: cannot read the password\n", o->pwfile);
		return 1;
	}
	password[strcspn(password, "\r\n")] = '\0';
	if ((fds = calloc((size_t)o->ports, sizeof(*fds))) == NULL)
		goto out;
	for (long i = 0; i < o->ports; i++)
		if ((fds[i] = udp_socket()) < 0) {
			fprintf(stderr, "flood: socket %ld: %s\n", i, strerror(errno));
			goto out;
		}
	if (login_dev(&me, o->url, o->ca, o->user, password, "flood") < 0 ||
	    register_once(&me, fds[0], &dc) < 0) {
		fprintf(stderr, "flood: could not log in and register at %s\n", o->url);
		goto out;
	}
	if (o->peer_dc) {
		if ((pfd = udp_socket()) < 0 ||
		    login_dev(&peer, o->peer_dc, o->ca, o->user, password, "floodpeer") < 0 ||
		    register_once(&peer, pfd, &pdc) < 0) {
			fprintf(stderr, "flood: could not log in and register at %s\n", o->peer_dc);
			goto out;
		}
		snprintf(url, sizeof(url), "%s/v1/tunnel", o->url);
		if ((body = json_pack("{s:i, s:s}", "version", 1, "peer", peer.fqdn)) == NULL)
			goto out;
		ans = post(url, o->ca, me.token, body);
		json_decref(body);
		if (ans == NULL) {
			fprintf(stderr, "flood: no tunnel to %s\n", peer.fqdn);
			goto out;
		}
		json_decref(ans);
	}
	t0 = tool_now_us();
	end = t0 + o->seconds * 1000000;
	for (long k = 1; !tool_stop;) {
		int64_t now = tool_now_us();
		long due = now < end ? (long)((now - t0) * o->rate / 1000000) - sent : 0;

		for (; due > 0; due--, k++) {
			if (send_reg(&me, fds[k % o->ports], &dc) < 0)
				fails++;
			sent++;
		}
		for (long i = 0; i < o->ports; i++)
			ok += drain(&me, fds[i]);
		if (pfd >= 0) {
			uint8_t buf[NTM_UDP_MAX + 1];

			while (recv(pfd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
				;	/* the peer's MOVEDs: read, not counted */
		}
		if (now >= end + 2000000)
			break;
		usleep(1000);
	}
	printf("result mode=moved seconds=%ld ports=%ld sent=%ld send_failed=%ld "
	    "rate_sent=%.0f reg_resp=%ld\n", o->seconds, o->ports, sent, fails,
	    (double)sent / (double)o->seconds, ok);
	rc = 0;
out:
	if (fds)
		for (long i = 0; i < o->ports; i++)
			if (fds[i] > 0)
				close(fds[i]);
	if (pfd >= 0)
		close(pfd);
	free(fds);
	ntm_wipe(password, strlen(password));
	free(password);
	return rc;
}

static void
usage(void)
{
	fprintf(stderr, "usage: flood login --url URL --ca FILE [--rate R] [--seconds T] "
	    "[--sources S] [--src-net A.B] [--conns C]\n"
	    "       flood moved --dc URL --ca FILE --udp IP:PORT --user U --password-file F "
	    "[--peer-dc URL --peer-udp IP:PORT] [--rate R] [--seconds T] [--ports P]\n");
}

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
		{ "url", 1, NULL, 'u' }, { "dc", 1, NULL, 'u' }, { "ca", 1, NULL, 'c' },
		{ "rate", 1, NULL, 'r' }, { "seconds", 1, NULL, 't' },
		{ "sources", 1, NULL, 's' }, { "src-net", 1, NULL, 'N' },
		{ "conns", 1, NULL, 'C' }, { "udp", 1, NULL, 'U' }, { "user", 1, NULL, 'n' },
		{ "password-file", 1, NULL, 'p' }, { "peer-dc", 1, NULL, 'P' },
		{ "peer-udp", 1, NULL, 'Q' }, { "ports", 1, NULL, 'o' }, { NULL, 0, NULL, 0 }
	};
	struct opts o = { .rate = 2000, .seconds = 30, .sources = 64, .conns = 4,
	    .ports = 1000, .src_net = "127.10" };
	const char *mode;
	int c, rc, bad = 0;

	if (argc < 2) {
		usage();
		return 2;
	}
	mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u': o.url = optarg; break;
		case 'c': o.ca = optarg; break;
		case 'N': o.src_net = optarg; break;
		case 'U': o.udp = optarg; break;
		case 'n': o.user = optarg; break;
		case 'p': o.pwfile = optarg; break;
		case 'P': o.peer_dc = optarg; break;
		case 'Q': o.peer_udp = optarg; break;
		case 'r': bad |= tool_num("flood", "--rate", optarg, 1, 1000000, &o.rate); break;
		case 't': bad |= tool_num("flood", "--seconds", optarg, 1, 3600, &o.seconds); break;
		case 's': bad |= tool_num("flood", "--sources", optarg, 1, 256, &o.sources); break;
		case 'C': bad |= tool_num("flood", "--conns", optarg, 1, 64, &o.conns); break;
		case 'o': bad |= tool_num("flood", "--ports", optarg, 1, 20000, &o.ports); break;
		default: usage(); return 2;
		}
	}
	if (bad)
		return 2;
	if (optind != argc || o.url == NULL || o.ca == NULL) {
		usage();
		return 2;
	}
	tool_signals();
	if (ntm_crypto_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return 1;
	if (strcmp(mode, "login") == 0)
		rc = flood_login(&o);
	else if (strcmp(mode, "moved") == 0)
		rc = flood_moved(&o);
	else {
		usage();
		rc = 2;
	}
	curl_global_cleanup();
	return rc;
}
