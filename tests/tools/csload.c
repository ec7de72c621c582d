/*
 * csload - bench tool: N senders storing objects at one CS at once through
 * its real interface (docs/protocol.md §7.2), for bench/cs-load.sh.
 *
 *   csload --dc URL --cs URL --ca FILE --password-file FILE --to FQDN
 *          [--user-prefix P] [--users K] [--n N] [--objects M] [--size B]
 *          [--cs-pid PID] [--timeout S]
 *
 * 1. login: sender i logs in at the DC as user P<i mod K>, device "cs<i>"
 *    (POST /v1/login with the password; 32 at a time) and keeps the token
 *    the AS issued for the CS (the one cs_tokens entry).
 * 2. send: all N senders at once, each over its own HTTPS connection from
 *    its own address of 127.3.0.0/16 (250 /24s in turn), store M objects of B bytes one after
 *    another: POST /v1/cs/uploads (to FQDN), then one PUT of the whole
 *    object with its sha256, which is also the commit (201). Every object
 *    differs (its first bytes are the sender and the round).
 *
 * A PUT answered 503 busy (the CS receives so many chunks at once) is sent
 * again after a growing, jittered wait (50 ms doubling to 2 s, 30 times at
 * most), as ntm send does; the retries are counted.
 *
 * Prints the objects stored per second over the send phase, the answers by
 * status, the median and p99 time of one object (create + PUT), and with
 * --cs-pid the CS's largest VmRSS sampled every 100 ms; a last line
 * "result key=value ...". Bounded by --timeout (default 600 s); SIGINT and
 * SIGTERM end it early. Exit 0 when it ran, 2 on bad usage, 1 when it could
 * not be set up.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "ntm.h"
#include "tool.h"

#define LOGIN_CONC	32
#define CODES		600

struct sender {
	CURL		*h;
	struct curl_slist *hdr;
	char		 iface[40];
	char		*token, *fqdn;
	char		 upload[40];
	int		 state;		/* S_* */
	long		 done;		/* objects stored */
	int64_t		 t0;		/* this object's start, us */
	char		*buf;		/* the answer being read */
	size_t		 blen;
	uint8_t		*obj;		/* this sender's object */
	char		 sha[65];
	char		*body;		/* the create body */
	int		 tries;		/* 503s of this PUT */
	int64_t		 retry_at;	/* S_RETRY: when to send it again */
};
enum { S_LOGIN, S_CREATE, S_PUT, S_DONE, S_FAILED, S_RETRY };
#define RETRY_TRIES	30	/* a PUT answered 503 busy is sent again */
#define RETRY_FIRST_US	50000
#define RETRY_MAX_US	2000000

struct opts {
	const char	*dc, *cs, *ca, *pwfile, *prefix, *to;
	long		 users, n, objects, size, cs_pid, timeout;
};

static struct opts O;
static struct sender *S;
static char *password;
static long codes[CODES], noanswer, stored, retries;
static double *lat;
static long nlat;
static long rss_peak;

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	struct sender *s = arg;
	char *q;

	if (s->blen + size * n > 65536 || (q = realloc(s->buf, s->blen + size * n + 1)) == NULL)
		return 0;
	memcpy(q + s->blen, p, size * n);
	s->buf = q;
	s->blen += size * n;
	s->buf[s->blen] = '\0';
	return size * n;
}

static void
rss_sample(void)
{
	char path[64], line[256];
	FILE *f;
	long kb;

	if (O.cs_pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%ld/status", O.cs_pid);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1 && kb > rss_peak)
			rss_peak = kb;
	fclose(f);
}

/* Sets s's handle up for the next request of its state. */
static int
prepare(struct sender *s)
{
	char url[700], auth[4200];

	curl_easy_reset(s->h);
	curl_slist_free_all(s->hdr);
	s->hdr = curl_slist_append(NULL, "Content-Type: application/json");
	free(s->buf);
	s->buf = NULL;
	s->blen = 0;
	curl_easy_setopt(s->h, CURLOPT_CAINFO, O.ca);
	curl_easy_setopt(s->h, CURLOPT_INTERFACE, s->iface);
	curl_easy_setopt(s->h, CURLOPT_IPRESOLVE, CURL_IPRESOLVE_V4);
	curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, 120000L);
	curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
	if (s->state == S_LOGIN) {
		uint8_t pk[NTM_KX_PK], sk[NTM_KX_SK];
		char pkb[NTM_B64_LEN(NTM_KX_PK)], user[64], dev[32];
		json_t *b;
		long i = s - S;

		snprintf(user, sizeof(user), "%s%ld", O.prefix, i % O.users);
		snprintf(dev, sizeof(dev), "cs%ld", i);
		if (ntm_kx_keypair(pk, sk) < 0 ||
		    ntm_b64_encode(pkb, sizeof(pkb), pk, sizeof(pk)) < 0 ||
		    (b = json_pack("{s:i, s:s, s:s, s:s, s:s}", "version", 1, "user", user,
		    "password", password, "device", dev, "client_key", pkb)) == NULL)
			return -1;
		free(s->body);
		s->body = json_dumps(b, JSON_COMPACT);
		json_decref(b);
		snprintf(url, sizeof(url), "%s/v1/login", O.dc);
		curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
	} else if (s->state == S_CREATE) {
		json_t *b = json_pack("{s:i, s:s, s:[s], s:I}", "version", 1, "from", s->fqdn,
		    "to", O.to, "size", (json_int_t)O.size);

		if (b == NULL)
			return -1;
		free(s->body);
		s->body = json_dumps(b, JSON_COMPACT);
		json_decref(b);
		snprintf(url, sizeof(url), "%s/v1/cs/uploads", O.cs);
		curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
	} else {
		snprintf(url, sizeof(url), "%s/v1/cs/upload?id=%s&offset=0&sha256=%s", O.cs,
		    s->upload, s->sha);
		curl_easy_setopt(s->h, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, (char *)s->obj);
		curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)O.size);
		curl_slist_free_all(s->hdr);
		s->hdr = curl_slist_append(NULL, "Content-Type: application/octet-stream");
	}
	if (s->state != S_LOGIN) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->token);
		s->hdr = curl_slist_append(s->hdr, auth);
	}
	curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdr);
	curl_easy_setopt(s->h, CURLOPT_URL, url);
	return 0;
}

/* The object of s's next round: its first bytes name the sender and round. */
static void
next_object(struct sender *s)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	long v[2] = { s - S, s->done };

	memcpy(s->obj, v, sizeof(v));
	crypto_hash_sha256(h, s->obj, (unsigned long long)O.size);
	for (int i = 0; i < 32; i++)
		snprintf(s->sha + 2 * i, 3, "%02x", h[i]);
}

/* An answer to s; the next state. */
static int
answered(struct sender *s, CURLcode res)
{
	long code = 0;
	json_t *j = NULL;
	const char *v;

	if (res == CURLE_OK)
		curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
	if (s->state != S_LOGIN) {
		if (code > 0 && code < CODES)
			codes[code]++;
		else
			noanswer++;
	}
	if (s->buf)
		j = json_loads(s->buf, 0, NULL);
	switch (s->state) {
	case S_LOGIN: {
		json_t *a = j ? json_object_get(j, "cs_tokens") : NULL;

		if (code != 200 || json_array_size(a) < 1 ||
		    (v = json_string_value(json_array_get(a, 0))) == NULL ||
		    json_string_value(json_object_get(j, "fqdn")) == NULL) {
			fprintf(stderr, "csload: login of sender %ld: %ld %s\n", (long)(s - S), code,
			    s->buf ? s->buf : "");
			json_decref(j);
			return S_FAILED;
		}
		s->token = strdup(v);
		s->fqdn = strdup(json_string_value(json_object_get(j, "fqdn")));
		json_decref(j);
		return S_CREATE;
	}
	case S_CREATE:
		if (code != 201 || j == NULL ||
		    (v = json_string_value(json_object_get(j, "upload"))) == NULL) {
			json_decref(j);
			return S_FAILED;
		}
		snprintf(s->upload, sizeof(s->upload), "%s", v);
		json_decref(j);
		return S_PUT;
	default:
		json_decref(j);
		if (code == 503 && s->tries < RETRY_TRIES) {
			/* The CS takes so many chunks at once: again later, as
			 * ntm send does, with a growing and jittered wait. */
			int64_t w = RETRY_FIRST_US << (s->tries < 6 ? s->tries : 6);

			if (w > RETRY_MAX_US)
				w = RETRY_MAX_US;
			s->tries++;
			retries++;
			s->retry_at = tool_now_us() + w / 2 + (int64_t)randombytes_uniform((uint32_t)w);
			return S_RETRY;
		}
		s->tries = 0;
		if (code != 201)
			return S_FAILED;
		lat[nlat++] = (double)(tool_now_us() - s->t0) / 1000.0;
		stored++;
		s->done++;
		if (s->done >= O.objects)
			return S_DONE;
		next_object(s);
		return S_CREATE;
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Runs the senders in state from until none is left in it; conc at most at
 * once. */
static void
run(CURLM *m, int from, long conc, int64_t deadline)
{
	long next = 0, active = 0;

	for (;;) {
		int running, left;
		CURLMsg *msg;

		while (!tool_stop && active < conc && next < O.n) {
			struct sender *s = &S[next++];

			if (s->state != from)
				continue;
			if (s->state == S_CREATE)
				s->t0 = tool_now_us();
			if (prepare(s) < 0 || curl_multi_add_handle(m, s->h) != CURLM_OK) {
				s->state = S_FAILED;
				continue;
			}
			active++;
		}
		for (long i = 0; i < O.n && !tool_stop; i++) {
			struct sender *s = &S[i];

			if (s->state != S_RETRY || tool_now_us() < s->retry_at)
				continue;
			s->state = S_PUT;
			if (prepare(s) < 0 || curl_multi_add_handle(m, s->h) != CURLM_OK) {
				s->state = S_FAILED;
				active--;
			}
		}
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct sender *s;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_multi_remove_handle(m, s->h);
			s->state = answered(s, msg->data.result);
			if (s->state == S_RETRY)
				continue;	/* still active: sent again by the loop */
			if (from == S_LOGIN || s->state == S_DONE || s->state == S_FAILED || tool_stop) {
				active--;
				continue;
			}
			if (s->state == S_CREATE)
				s->t0 = tool_now_us();
			if (prepare(s) < 0 || curl_multi_add_handle(m, s->h) != CURLM_OK) {
				s->state = S_FAILED;
				active--;
			}
		}
		if (active == 0 && (next >= O.n || tool_stop))
			break;
		if (tool_now_us() > deadline) {
			fprintf(stderr, "csload: --timeout reached\n");
			tool_stop = 1;
			break;
		}
		curl_multi_poll(m, NULL, 0, 20, NULL);
		rss_sample();
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: csload --dc URL --cs URL --ca FILE --password-file FILE "
	    "--to FQDN [--user-prefix P] [--users K] [--n N] [--objects M] [--size B] "
	    "[--cs-pid PID] [--timeout S]\n");
}

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
		{ "dc", 1, NULL, 'd' }, { "cs", 1, NULL, 'c' }, { "ca", 1, NULL, 'a' },
		{ "password-file", 1, NULL, 'p' }, { "to", 1, NULL, 'T' },
		{ "user-prefix", 1, NULL, 'P' }, { "users", 1, NULL, 'u' }, { "n", 1, NULL, 'n' },
		{ "objects", 1, NULL, 'o' }, { "size", 1, NULL, 's' },
		{ "cs-pid", 1, NULL, 'i' }, { "timeout", 1, NULL, 't' }, { NULL, 0, NULL, 0 }
	};
	size_t plen;
	int64_t t0, t1, deadline;
	long ok_login = 0;
	CURLM *m;
	int c, bad = 0;

	O = (struct opts){ .prefix = "cs", .users = 125, .n = 1000, .objects = 1,
	    .size = 1 << 20, .timeout = 600 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': O.dc = optarg; break;
		case 'c': O.cs = optarg; break;
		case 'a': O.ca = optarg; break;
		case 'p': O.pwfile = optarg; break;
		case 'T': O.to = optarg; break;
		case 'P': O.prefix = optarg; break;
		case 'u': bad |= tool_num("csload", "--users", optarg, 1, 100000, &O.users); break;
		case 'n': bad |= tool_num("csload", "--n", optarg, 1, 60000, &O.n); break;
		case 'o': bad |= tool_num("csload", "--objects", optarg, 1, 100000, &O.objects); break;
		case 's': bad |= tool_num("csload", "--size", optarg, 16, 4194304, &O.size); break;
		case 'i': bad |= tool_num("csload", "--cs-pid", optarg, 1, 1L << 30, &O.cs_pid); break;
		case 't': bad |= tool_num("csload", "--timeout", optarg, 1, 86400, &O.timeout); break;
		default: usage(); return 2;
		}
	}
	if (bad)
		return 2;
	if (optind != argc || !O.dc || !O.cs || !O.ca || !O.pwfile || !O.to) {
		usage();
		return 2;
	}
	if (ntm_file_read(O.pwfile, 1024, &password, &plen) < 0) {
		fprintf(stderr, "csload: cannot read %s\n", O.pwfile);
		return 1;
	}
	password[strcspn(password, "\r\n")] = '\0';
	tool_signals();
	if (ntm_crypto_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (m = curl_multi_init()) == NULL || (S = calloc((size_t)O.n, sizeof(*S))) == NULL ||
	    (lat = calloc((size_t)(O.n * O.objects), sizeof(*lat))) == NULL)
		return 1;
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, O.n + 16);
	deadline = tool_now_us() + O.timeout * 1000000;
	for (long i = 0; i < O.n; i++) {
		S[i].state = S_LOGIN;
		/* Spread over /24s: the DC queues logins per /24. */
		snprintf(S[i].iface, sizeof(S[i].iface), "host!127.3.%ld.%ld", i % 250,
		    i / 250 + 1);
		if ((S[i].h = curl_easy_init()) == NULL ||
		    (S[i].obj = malloc((size_t)O.size)) == NULL)
			return 1;
		randombytes_buf(S[i].obj, (size_t)O.size);
	}
	run(m, S_LOGIN, LOGIN_CONC, deadline);
	for (long i = 0; i < O.n; i++)
		if (S[i].state == S_CREATE) {
			ok_login++;
			next_object(&S[i]);
		}
	printf("login: %ld of %ld senders logged in\n", ok_login, O.n);
	if (ok_login == 0)
		return 1;
	rss_sample();
	printf("CS RSS before: %ld kB\n", rss_peak);
	rss_peak = 0;
	t0 = tool_now_us();
	run(m, S_CREATE, O.n, deadline);
	t1 = tool_now_us();
	qsort(lat, (size_t)nlat, sizeof(*lat), cmp_double);
	{
		double secs = (double)(t1 - t0) / 1e6;
		double p50 = nlat ? lat[(nlat - 1) / 2] : 0, p99 = nlat ? lat[(nlat * 99 + 99) / 100 - 1] : 0;

		printf("send: %ld objects of %ld bytes from %ld senders at once in %.2f s: "
		    "%.0f objects/s, %.1f MiB/s; one object (create + PUT) median %.0f ms, "
		    "p99 %.0f ms; CS RSS peak %ld kB\n", stored, O.size, ok_login, secs,
		    stored / secs, stored * (double)O.size / 1048576.0 / secs, p50, p99, rss_peak);
		printf("result senders=%ld objects=%ld seconds=%.2f objects_per_s=%.0f "
		    "p50_ms=%.0f p99_ms=%.0f cs_rss_peak_kb=%ld no_answer=%ld put_retries=%ld",
		    ok_login, stored, secs, stored / secs, p50, p99, rss_peak, noanswer, retries);
		for (int k = 0; k < CODES; k++)
			if (codes[k])
				printf(" http_%d=%ld", k, codes[k]);
		printf("\n");
	}
	for (long i = 0; i < O.n; i++) {
		curl_easy_cleanup(S[i].h);
		curl_slist_free_all(S[i].hdr);
		free(S[i].buf);
		free(S[i].obj);
		free(S[i].body);
		free(S[i].token);
		free(S[i].fqdn);
	}
	curl_multi_cleanup(m);
	curl_global_cleanup();
	return 0;
}
