/*
 * signreq - test tool: sends one server-to-server request signed as
 * docs/protocol.md §2.2 describes, optionally broken in one chosen way, and
 * prints "STATUS BODY" for each attempt. Used by the bats suites to prove
 * that servers refuse what they must refuse.
 *
 *   signreq --ca CA --key KEYFILE --cert CERTFILE [--date-offset SEC]
 *           [--omit date|cert|sig|nonce] [--answer AS-PUB-FILE]
 *           [--to NAME | --to-unsigned NAME]
 *           [--tamper sig|body|path|nonce] [--repeat N]
 *           METHOD URL [BODY]
 *   signreq --key AS-KEYFILE --mint USER:DEVICE:DC[:ROLE:NAME] [--lifetime SEC]
 *           [--date-offset SEC]
 *
 * --as-self NAME signs as the AS itself (role as): instead of --cert, a
 * certificate for the key's own public key, signed by that (AS) key, the
 * way the AS vouches for itself when it pushes to other servers.
 *
 * --answer checks who signed each answer (§2.2) against the AS public key
 * in the file (base64url, as `ntm-as init` prints it) and says so on
 * standard error: "answer: signed by ROLE NAME", or why not.
 *
 * --to NAME names the receiver (NTM-To, signed over); --to-unsigned sends
 * the header but signs as if it were not there.
 *
 * --mint prints a client token (§2.3) signed by the given (AS) key, issued
 * now + date-offset and expiring lifetime seconds later (default 3600), so
 * tests can present expired tokens or tokens of any account. Its audience
 * is ROLE (dc or cs) NAME, by default the DC of the login (dc:DC).
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ntm.h"

static int
mint(const char *keyf, const char *spec, long offset, long lifetime)
{
	struct ntm_token t;
	uint8_t sk[NTM_SIGN_SK];
	char b64[NTM_B64_LEN(NTM_TOKEN_MAX)], role[8] = "dc";
	int n;

	memset(&t, 0, sizeof(t));
	t.version = 2;
	n = sscanf(spec, "%32[^:]:%64[^:]:%253[^:]:%7[^:]:%253s", t.user, t.device, t.dc,
	    role, t.aud);
	if (n == 3)
		snprintf(t.aud, sizeof(t.aud), "%s", t.dc);
	t.aud_role = strcmp(role, "cs") == 0 ? NTM_ROLE_CS : strcmp(role, "dc") == 0 ?
	    NTM_ROLE_DC : 0;
	if ((n != 3 && n != 5) || t.aud_role == 0 ||
	    ntm_crypto_init() < 0 || ntm_key_load(keyf, sk, sizeof(sk)) < 0) {
		fprintf(stderr, "signreq: --mint USER:DEVICE:DC[:dc|cs:NAME] and --key AS-KEY\n");
		return 2;
	}
	ntm_random(t.id, sizeof(t.id));
	t.issued = (int64_t)time(NULL) + offset;
	t.expires = t.issued + lifetime;
	ntm_token_sign(&t, sk);
	ntm_wipe(sk, sizeof(sk));
	if (ntm_token_to_b64(&t, b64, sizeof(b64)) < 0)
		return 1;
	printf("%s\n", b64);
	return 0;
}

/* The b64 of a role-as certificate for sk's own key, signed by sk. */
static char *
as_self_cert(const uint8_t sk[NTM_SIGN_SK], const char *name)
{
	struct ntm_cert c;
	char *b64 = malloc(NTM_B64_LEN(NTM_CERT_MAX));

	memset(&c, 0, sizeof(c));
	c.version = 1;
	c.role = NTM_ROLE_AS;
	snprintf(c.name, sizeof(c.name), "%s", name);
	ntm_sign_pk(c.pk, sk);
	c.serial = 1;
	c.not_before = (int64_t)time(NULL) - 3600;
	c.not_after = (int64_t)time(NULL) + 3600;
	ntm_cert_sign(&c, sk);
	if (b64 && ntm_cert_to_b64(&c, b64, NTM_B64_LEN(NTM_CERT_MAX)) < 0) {
		free(b64);
		return NULL;
	}
	return b64;
}

/* The answer's body, printed and kept for --answer. */
static char ansbody[1 << 20];
static size_t anslen;

static size_t
on_body(char *p, size_t sz, size_t n, void *arg)
{
	fwrite(p, sz, n, stdout);
	if (anslen + sz * n <= sizeof(ansbody)) {
		memcpy(ansbody + anslen, p, sz * n);
		anslen += sz * n;
	}
	return sz * n;
}

/* --answer: on stderr, who signed the answer (docs/protocol.md §2.2). */
static void
check_answer(CURL *c, const char *aspkf, const char *method, const char *path,
    long status, const char *nonce)
{
	struct curl_header *hc, *hs;
	struct ntm_cert cert;
	uint8_t aspk[NTM_SIGN_PK];
	char sig[NTM_SIG_B64 + 1];
	char *txt = NULL;
	size_t len;

	if (ntm_file_read(aspkf, 1024, &txt, &len) < 0) {
		fprintf(stderr, "answer: cannot read %s\n", aspkf);
		return;
	}
	txt[strcspn(txt, "\r\n")] = '\0';
	if (ntm_b64_decode_exact(aspk, sizeof(aspk), txt) < 0)
		fprintf(stderr, "answer: %s is not an AS key\n", aspkf);
	/* libcurl reuses the struct it returns: one value at a time. */
	else if (curl_easy_header(c, NTM_HDR_SIG, 0, CURLH_HEADER, -1, &hs) != CURLHE_OK ||
	    strlen(hs->value) >= sizeof(sig) ||
	    snprintf(sig, sizeof(sig), "%s", hs->value) < 0 ||
	    curl_easy_header(c, NTM_HDR_CERT, 0, CURLH_HEADER, -1, &hc) != CURLHE_OK)
		fprintf(stderr, "answer: not signed\n");
	else if (ntm_cert_from_b64(&cert, hc->value) < 0 ||
	    ntm_cert_verify(&cert, aspk, (int64_t)time(NULL)) != 0)
		fprintf(stderr, "answer: certificate not from the AS\n");
	else if (ntm_ans_verify(sig, cert.pk, method, path, status, nonce, ansbody,
	    anslen) != 0)
		fprintf(stderr, "answer: signature of %s %s does not verify\n",
		    ntm_role_name(cert.role), cert.name);
	else
		fprintf(stderr, "answer: signed by %s %s\n", ntm_role_name(cert.role),
		    cert.name);
	free(txt);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca", 1, NULL, 'a' }, { "key", 1, NULL, 'k' }, { "cert", 1, NULL, 'c' },
		{ "date-offset", 1, NULL, 'o' }, { "omit", 1, NULL, 'x' },
		{ "tamper", 1, NULL, 't' }, { "repeat", 1, NULL, 'r' },
		{ "mint", 1, NULL, 'm' }, { "lifetime", 1, NULL, 'l' },
		{ "as-self", 1, NULL, 's' }, { "answer", 1, NULL, 'A' }, { "to", 1, NULL, 'T' },
		{ "to-unsigned", 1, NULL, 'U' }, { NULL, 0, NULL, 0 }
	};
	const char *ca = NULL, *keyf = NULL, *certf = NULL, *omit = "", *tamper = "";
	const char *mintspec = NULL, *as_self = NULL, *aspkf = NULL, *to = NULL;
	int to_signed = 1;
	long offset = 0, repeat = 1, lifetime = 3600;
	uint8_t sk[NTM_SIGN_SK];
	char *certtxt = NULL, sig[NTM_SIG_B64], hdr[1024], path[1024];
	size_t certlen;
	int ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': ca = optarg; break;
		case 'k': keyf = optarg; break;
		case 'c': certf = optarg; break;
		case 'o': offset = strtol(optarg, NULL, 10); break;
		case 'x': omit = optarg; break;
		case 't': tamper = optarg; break;
		case 'r': repeat = strtol(optarg, NULL, 10); break;
		case 'm': mintspec = optarg; break;
		case 's': as_self = optarg; break;
		case 'A': aspkf = optarg; break;
		case 'T': to = optarg; break;
		case 'U': to = optarg; to_signed = 0; break;
		case 'l': lifetime = strtol(optarg, NULL, 10); break;
		default: return 2;
		}
	}
	if (mintspec && keyf)
		return mint(keyf, mintspec, offset, lifetime);
	if (argc - optind < 2 || argc - optind > 3 || !ca || !keyf || (!certf && !as_self)) {
		fprintf(stderr, "usage: signreq --ca CA --key KEY --cert CERT [...] METHOD URL [BODY]\n");
		return 2;
	}
	const char *method = argv[optind], *url = argv[optind + 1];
	const char *body = argc - optind == 3 ? argv[optind + 2] : "";
	if (ntm_crypto_init() < 0 || ntm_key_load(keyf, sk, sizeof(sk)) < 0 ||
	    (as_self ? (certtxt = as_self_cert(sk, as_self)) == NULL :
	    ntm_file_read(certf, 8192, &certtxt, &certlen) < 0)) {
		fprintf(stderr, "signreq: cannot load key or cert\n");
		return 1;
	}
	certtxt[strcspn(certtxt, "\r\n")] = '\0';
	const char *p = strstr(url, "://");
	p = p ? strchr(p + 3, '/') : NULL;
	snprintf(path, sizeof(path), "%s", p ? p : "/");
	if (strcmp(tamper, "path") == 0)
		strncat(path, "x", sizeof(path) - strlen(path) - 1);

	int64_t date = (int64_t)time(NULL) + offset;
	char nonce[NTM_NONCE_B64];
	ntm_req_nonce(nonce);
	if (to && to_signed)
		ntm_req_sign_to(sig, sk, method, path, date, nonce, to, body, strlen(body));
	else
		ntm_req_sign(sig, sk, method, path, date, nonce, body, strlen(body));
	if (strcmp(tamper, "sig") == 0)
		sig[3] = sig[3] == 'A' ? 'B' : 'A';
	if (strcmp(tamper, "nonce") == 0)
		nonce[0] = nonce[0] == 'A' ? 'B' : 'A';
	if (strcmp(tamper, "body") == 0)
		body = "{\"tampered\":1}";

	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (long i = 0; i < repeat; i++) {
		CURL *c = curl_easy_init();
		struct curl_slist *h = NULL;
		long status = 0;

		h = curl_slist_append(h, "Content-Type: application/json");
		if (to) {
			snprintf(hdr, sizeof(hdr), NTM_HDR_TO ": %s", to);
			h = curl_slist_append(h, hdr);
		}
		if (strcmp(omit, "date") != 0) {
			snprintf(hdr, sizeof(hdr), NTM_HDR_DATE ": %lld", (long long)date);
			h = curl_slist_append(h, hdr);
		}
		if (strcmp(omit, "cert") != 0) {
			char *ch2 = malloc(strlen(certtxt) + 32);
			sprintf(ch2, NTM_HDR_CERT ": %s", certtxt);
			h = curl_slist_append(h, ch2);
			free(ch2);
		}
		if (strcmp(omit, "nonce") != 0) {
			snprintf(hdr, sizeof(hdr), NTM_HDR_NONCE ": %s", nonce);
			h = curl_slist_append(h, hdr);
		}
		if (strcmp(omit, "sig") != 0) {
			snprintf(hdr, sizeof(hdr), NTM_HDR_SIG ": %s", sig);
			h = curl_slist_append(h, hdr);
		}
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
		if (strcmp(method, "GET") != 0)
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		anslen = 0;
		CURLcode rc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (aspkf && rc == CURLE_OK)
			check_answer(c, aspkf, method, path, status, nonce);
		if (rc != CURLE_OK)
			printf("000 %s", curl_easy_strerror(rc));
		printf("\n%ld\n", status);
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
	}
	ntm_wipe(sk, sizeof(sk));
	free(certtxt);
	return 0;
}
