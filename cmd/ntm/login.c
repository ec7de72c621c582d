/*
 * login.c - ntm login: relay the password to a DC (which asks the AS),
 * agree a session key, and save the session in the profile's state dir.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common.h"
#include "ntm-cli.h"
#include "xcli.h"

enum { OPT_PWFILE = 256, OPT_CA, OPT_DEVICE, OPT_PUSH, OPT_TIMEOUT, OPT_JSON };

const struct cli_opt login_opts[] = {
	{ "user", 'u', 'u', "NAME", "account name (default: 'user' in ntm.conf)" },
	{ "password-file", OPT_PWFILE, 0, "FILE",
	  "read the password from FILE ('-' for stdin) instead of the terminal" },
	{ "ca", OPT_CA, 0, "FILE", "CA bundle the DC's TLS certificate must chain to" },
	{ "device", OPT_DEVICE, 0, "ID",
	  "device id to log in as, saved for this profile ([A-Za-z0-9_-]{1,64})" },
	{ "push", OPT_PUSH, 0, "URL",
	  "https:// URL the DC notifies when a tunnel direction waits (omitted: none)" },
	{ "timeout", OPT_TIMEOUT, 0, "SEC", "give up after SEC seconds (1..300, default 10)" },
	{ "json", OPT_JSON, 0, NULL, "print the result as one JSON object" },
	CLI_OPT_HELP,
	CLI_OPT_END
};

struct login_args {
	const char	*user;
	const char	*pwfile;
	const char	*ca;
	const char	*device;
	const char	*push;
	const char	*dc;
	long		 timeout;
	int		 json;
};

int
cli_exit_for_code(const char *code, long status)
{
	static const struct { const char *code; int exit; } map[] = {
		{ "bad_password", EXIT_BADPASS },
		{ "unknown_user", EXIT_NOUSER },
		{ "user_locked", EXIT_LOCKED },
		{ "upstream_unavailable", EXIT_UNREACH },
		{ "unauthorized", EXIT_NOSESSION },
		{ "unknown_peer", EXIT_NOTUNNEL },
		{ "unknown_domain", EXIT_NOTUNNEL },
		{ "peer_offline", EXIT_NOTUNNEL },
	};

	if (code)
		for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (strcmp(code, map[i].code) == 0)
				return map[i].exit;
	if (code == NULL && (status == 502 || status == 504))
		return EXIT_UNREACH;	/* a proxy's gateway error, no ntm body */
	return EXIT_REJECTED;
}

int
cli_http_error(char *buf, size_t len, const char *url, int err, long status,
    json_t *body, const char *errmsg)
{
	const char *code = NULL, *message = NULL;

	if (err == NTM_ERR_UNTRUSTED) {
		snprintf(buf, len, "the certificate of %s is not trusted (%s): pass the CA "
		    "that signed it with 'ntm login --ca FILE'", url,
		    errmsg && *errmsg ? errmsg : ntm_strerror(err));
		return EXIT_UNTRUSTED;
	}
	if (err != 0) {
		snprintf(buf, len, "cannot reach %s: %s", url,
		    errmsg && *errmsg ? errmsg : ntm_strerror(err));
		return EXIT_UNREACH;
	}
	if (body) {
		code = json_string_value(json_object_get(body, "code"));
		message = json_string_value(json_object_get(body, "message"));
	}
	if (code)
		snprintf(buf, len, "%s: %s", code, message ? message : "(no message)");
	else
		snprintf(buf, len, "HTTP %ld from %s", status, url);
	return cli_exit_for_code(code, status);
}

int
cli_http_fail(const char *cmd, const char *url, int err, long status, json_t *body,
    const char *errmsg)
{
	char msg[768];
	int ret = cli_http_error(msg, sizeof(msg), url, err, status, body, errmsg);

	cli_err(cmd, "%s", msg);
	return ret;
}

/*
 * DC as "https://host[:port][/]" or "name[:port]" (also "[v6]:port") into
 * "https://host:port". -1 with a reason in why.
 */
static int
dc_url(const char *in, char *out, size_t cap, const char **why)
{
	char host[NTM_NAME_MAX + 1];
	const char *auth = in, *p;
	size_t alen, hl;
	long port = 443;
	int v6 = 0;

	*why = "expected https://HOST[:PORT] or NAME[:PORT]";
	if (strncmp(in, "https://", 8) == 0)
		auth = in + 8;
	else if (strstr(in, "://") != NULL) {
		*why = "only https:// URLs are supported";
		return -1;
	}
	alen = strlen(auth);
	if (alen > 0 && auth[alen - 1] == '/' && auth != in)
		alen--;
	if (alen == 0 || strcspn(auth, "/?#@ \t") < alen)
		return -1;

	if (auth[0] == '[') {
		const char *rb = memchr(auth, ']', alen);
		if (rb == NULL)
			return -1;
		hl = (size_t)(rb - auth - 1);
		if (hl == 0 || hl >= sizeof(host) ||
		    strspn(auth + 1, "0123456789abcdefABCDEF:.") < hl)
			return -1;
		memcpy(host, auth + 1, hl);
		host[hl] = '\0';
		p = rb + 1;
		v6 = 1;
	} else {
		const char *colon = memchr(auth, ':', alen);
		hl = colon ? (size_t)(colon - auth) : alen;
		if (colon && memchr(colon + 1, ':', alen - hl - 1)) {
			*why = "an IPv6 address needs brackets: [ADDR]:PORT";
			return -1;
		}
		if (hl == 0 || hl >= sizeof(host))
			return -1;
		memcpy(host, auth, hl);
		host[hl] = '\0';
		if (strspn(host, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != hl) {
			*why = "bad host name";
			return -1;
		}
		p = auth + hl;
	}
	if (p < auth + alen) {
		char portstr[8];
		size_t pl = (size_t)(auth + alen - p) - 1;

		if (*p != ':' || pl == 0 || pl >= sizeof(portstr))
			return -1;
		memcpy(portstr, p + 1, pl);
		portstr[pl] = '\0';
		if (parse_long(portstr, 1, 65535, &port) < 0) {
			*why = "port must be 1..65535";
			return -1;
		}
	}
	if (snprintf(out, cap, v6 ? "https://[%s]:%ld" : "https://%s:%ld", host, port)
	    >= (int)cap)
		return -1;
	return 0;
}

#define CA_FILE_MAX	(4 * 1024 * 1024)	/* read at most this much looking for a PEM */

/* 1 if the file at path holds a PEM certificate in its first CA_FILE_MAX bytes. */
static int
has_pem_cert(const char *path)
{
	static const char mark[] = "-----BEGIN CERTIFICATE-----";
	char *buf;
	size_t n;
	FILE *fp;
	int found;

	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	if ((buf = malloc(CA_FILE_MAX + 1)) == NULL) {
		fclose(fp);
		return 1;	/* let TLS tell */
	}
	n = fread(buf, 1, CA_FILE_MAX, fp);
	buf[n] = '\0';
	found = memmem(buf, n, mark, sizeof(mark) - 1) != NULL;
	free(buf);
	fclose(fp);
	return found;
}

/* The CA file as an absolute path (the session outlives the cwd), if it
 * holds a certificate: otherwise TLS would fail with 'cannot reach'. */
static char *
abs_file(const char *cmd, const char *what, const char *path)
{
	char buf[PATH_MAX];

	if (realpath(path, buf) == NULL || access(buf, R_OK) < 0) {
		cli_err(cmd, "%s '%s': %s", what, path, strerror(errno));
		return NULL;
	}
	if (!has_pem_cert(buf)) {
		cli_err(cmd, "%s '%s': no PEM certificate in it (expected the CA bundle "
		    "that signed the DC's certificate, e.g. the platform's ca.crt)", what, path);
		return NULL;
	}
	return xstrdup(buf);
}

/* Wipes a string inside a jansson tree (the password in the request). */
static void
wipe_json_string(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_string(v))
		ntm_wipe((char *)json_string_value(v), json_string_length(v));
}

int
login_main(struct cli *cli, int argc, char **argv)
{
	struct login_args la = { 0 };
	struct cli_args args;
	struct session s = { 0 };
	struct ntm_jerr jerr;
	const char *why, *code, *r_user = NULL, *r_fqdn = NULL, *r_vip4 = NULL, *r_vip6 = NULL,
	    *r_domain = NULL, *r_token = NULL, *r_sid = NULL, *r_dckey = NULL;
	int64_t r_expires = 0;
	char url[NTM_URL_MAX], endpoint[NTM_URL_MAX + 16], device[NTM_DEVICE_MAX + 1];
	char password[NTM_PASSWORD_MAX + 2], prompt[NTM_URL_MAX + 64], errmsg[256] = "";
	char pk_b64[NTM_B64_LEN(NTM_KX_PK)], rx_b64[NTM_B64_LEN(NTM_KEY_LEN)],
	    tx_b64[NTM_B64_LEN(NTM_KEY_LEN)];
	uint8_t pk[NTM_KX_PK], sk[NTM_KX_SK], dc_pk[NTM_KX_PK];
	uint8_t rx[NTM_KEY_LEN], tx[NTM_KEY_LEN];
	uint8_t xpk[NTM_XPK_LEN], xsk[NTM_XSK_LEN];
	char xpk_b64[NTM_B64_LEN(NTM_XPK_LEN)];
	char *ca = NULL;
	json_t *req = NULL, *resp = NULL;
	long status = 0;
	int ch, n, err, ret = EXIT_USAGE;

	password[0] = '\0';
	cli_args_init(&args, cli_find("login"), argc, argv);
	while ((ch = cli_getopt(&args)) != 0) {
		switch (ch) {
		case 'u':
			la.user = args.optarg;
			break;
		case OPT_PWFILE:
			la.pwfile = args.optarg;
			break;
		case OPT_CA:
			la.ca = args.optarg;
			break;
		case OPT_DEVICE:
			la.device = args.optarg;
			break;
		case OPT_PUSH:
			la.push = args.optarg;
			break;
		case OPT_TIMEOUT:
			if (cli_parse_timeout("login", args.optarg, &la.timeout) < 0)
				goto out;
			break;
		case OPT_JSON:
			la.json = 1;
			break;
		case 'h':
			cli_cmd_help(stdout, cli_find("login"));
			ret = EXIT_OK;
			goto out;
		default:
			goto out;
		}
	}

	/* validate */
	if (args.npos > 1) {
		cli_err("login", "unexpected argument '%s'", args.pos[1]);
		goto out;
	}
	la.dc = args.npos == 1 ? args.pos[0] : cli->conf.dc;
	if (la.dc == NULL) {
		cli_err("login", "no DC given (ntm login DC, or 'dc' in ntm.conf)");
		goto out;
	}
	if (dc_url(la.dc, url, sizeof(url), &why) < 0) {
		cli_err("login", "DC '%s': %s", la.dc, why);
		goto out;
	}
	if (la.user == NULL)
		la.user = cli->conf.user;
	if (la.user == NULL) {
		cli_err("login", "no user name given (-u NAME, or 'user' in ntm.conf)");
		goto out;
	}
	if (!ntm_valid_user(la.user)) {
		cli_err("login", "user '%s': invalid name (lowercase letters, digits "
		    "and '-', starting with a letter, not ending with '-', at most 32)", la.user);
		goto out;
	}
	if (la.device && !ntm_valid_device(la.device)) {
		cli_err("login", "--device '%s': invalid device id (letters, digits, "
		    "'_' and '-', at most 64)", la.device);
		goto out;
	}
	if (la.push && !ntm_valid_push_url(la.push)) {
		cli_err("login", "--push '%s': expected an https://HOST[:PORT][/PATH] URL "
		    "(printable ASCII, no user:password@, at most %d bytes)", la.push,
		    NTM_PUSH_URL_MAX);
		goto out;
	}
	if (la.pwfile && strcmp(la.pwfile, "-") != 0 && access(la.pwfile, R_OK) < 0) {
		cli_err("login", "--password-file '%s': %s", la.pwfile, strerror(errno));
		goto out;
	}
	if (la.ca) {
		if ((ca = abs_file("login", "--ca", la.ca)) == NULL)
			goto out;
	} else if (cli->conf.ca_file) {
		if ((ca = abs_file("login", "ca_file in ntm.conf", cli->conf.ca_file)) == NULL)
			goto out;
	}
	la.timeout = cli_timeout(cli, la.timeout);

	/* act */
	ret = EXIT_FAIL;
	if (cli_state_prepare(cli, "login") < 0)
		goto out;
	if (la.device) {
		if ((err = cli_device_set(cli, la.device)) < 0) {
			cli_err("login", "cannot save the device id in %s: %s",
			    cli->state_dir, ntm_strerror(err));
			goto out;
		}
		snprintf(device, sizeof(device), "%s", la.device);
	} else if ((err = cli_device_get(cli, device)) < 0) {
		cli_err("login", "cannot read or create the device id in %s: %s",
		    cli->state_dir, ntm_strerror(err));
		goto out;
	}

	snprintf(prompt, sizeof(prompt), "Password for %s at %s: ", la.user, url);
	if ((n = read_secret(prompt, la.pwfile, 0, password, sizeof(password))) < 0)
		goto out;
	if (n > NTM_PASSWORD_MAX) {
		cli_err("login", "password longer than %d bytes", NTM_PASSWORD_MAX);
		goto out;
	}

	if (ntm_kx_keypair(pk, sk) < 0 ||
	    ntm_b64_encode(pk_b64, sizeof(pk_b64), pk, sizeof(pk)) < 0) {
		cli_err("login", "cannot make a session key");
		goto out;
	}
	/* The device's exchange key: senders seal temporal keys to it. */
	if ((err = x_exchange_keypair(cli, xpk, xsk, 1)) < 0 ||
	    ntm_b64_encode(xpk_b64, sizeof(xpk_b64), xpk, sizeof(xpk)) < 0) {
		ntm_wipe(xsk, sizeof(xsk));
		cli_err("login", "cannot read or make the exchange key in %s: %s",
		    cli->state_dir, ntm_strerror(err));
		goto out;
	}
	ntm_wipe(xsk, sizeof(xsk));
	req = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "version", NTM_PROTOCOL_VERSION,
	    "user", la.user, "password", password, "device", device,
	    "client_key", pk_b64, "exchange_key", xpk_b64);
	ntm_wipe(password, sizeof(password));
	if (req == NULL || (la.push &&
	    json_object_set_new(req, "push", json_string(la.push)) < 0)) {
		cli_err("login", "out of memory");
		goto out;
	}
	snprintf(endpoint, sizeof(endpoint), "%s/v1/login", url);
	log_info("POST %s (user %s, device %s)", endpoint, la.user, device);
	err = ntm_https_call(ca, "POST", endpoint, req, NULL, la.timeout * 1000,
	    &status, &resp, errmsg, sizeof(errmsg));
	wipe_json_string(req, "password");
	code = json_string_value(json_object_get(resp, "code"));
	if (err == 0 && status == 404 && code && strcmp(code, "not_found") == 0) {
		/* An ntm server, but not a DC (an AS, a CS...): the URL is wrong. */
		cli_err("login", "%s has no /v1/login: not a DC (ntm login needs the URL "
		    "of your DC)", url);
		ret = EXIT_REJECTED;
		goto out;
	}
	if (err != 0 || status != 200) {
		ret = cli_http_fail("login", url, err, status, resp, errmsg);
		goto out;
	}

	/* check the answer strictly before trusting any of it */
	{
		const struct ntm_jfield fields[] = {
			{ "user", NTM_J_STR, 1, &r_user, NTM_USER_MAX },
			{ "fqdn", NTM_J_STR, 1, &r_fqdn, NTM_NAME_MAX },
			{ "vip4", NTM_J_STR, 1, &r_vip4, 64 },
			{ "vip6", NTM_J_STR, 1, &r_vip6, 64 },
			{ "domain", NTM_J_STR, 1, &r_domain, NTM_NAME_MAX },
			{ "token", NTM_J_STR, 1, &r_token, 4096 },
			{ "token_expires", NTM_J_INT, 1, &r_expires, 0 },
			{ "session_id", NTM_J_STR, 1, &r_sid, 64 },
			{ "dc_key", NTM_J_STR, 1, &r_dckey, 64 },
		};
		uint8_t sid[16];

		if (resp == NULL) {
			cli_err("login", "bad response from %s: not a JSON object", url);
			goto out;
		}
		if (ntm_json_unpack(resp, fields, sizeof(fields) / sizeof(fields[0]),
		    &jerr) < 0) {
			cli_err("login", "bad response from %s: %s", url, jerr.message);
			goto out;
		}
		why = NULL;
		if (strcmp(r_user, la.user) != 0)
			why = "field 'user': not the user who logged in";
		else if (!ntm_valid_dnsname(r_fqdn))
			why = "field 'fqdn': not a DNS name";
		else if (!ntm_valid_dnsname(r_domain))
			why = "field 'domain': not a DNS name";
		else if (ntm_hex_decode_exact(sid, sizeof(sid), r_sid) < 0)
			why = "field 'session_id': expected 16 bytes in hex";
		else if (ntm_b64_decode_exact(dc_pk, sizeof(dc_pk), r_dckey) < 0)
			why = "field 'dc_key': expected a 32-byte key in base64url";
		if (why) {
			cli_err("login", "bad response from %s: %s", url, why);
			goto out;
		}
	}
	if (ntm_kx_session(rx, tx, 1, pk, sk, dc_pk) < 0) {
		cli_err("login", "key agreement with the DC failed (bad dc_key)");
		goto out;
	}
	ntm_b64_encode(rx_b64, sizeof(rx_b64), rx, sizeof(rx));
	ntm_b64_encode(tx_b64, sizeof(tx_b64), tx, sizeof(tx));

	s.dc_url = xstrdup(url);
	s.ca_file = ca ? xstrdup(ca) : NULL;
	s.user = xstrdup(r_user);
	s.device = xstrdup(device);
	s.fqdn = xstrdup(r_fqdn);
	s.vip4 = xstrdup(r_vip4);
	s.vip6 = xstrdup(r_vip6);
	s.domain = xstrdup(r_domain);
	s.token = xstrdup(r_token);
	s.token_expires = r_expires;
	s.session_id = xstrdup(r_sid);
	s.dc_key = xstrdup(r_dckey);
	s.rx = xstrdup(rx_b64);
	s.tx = xstrdup(tx_b64);
	s.login_time = now_unix();
	if ((err = session_save(cli, &s)) < 0) {
		cli_err("login", "cannot save the session in %s: %s", cli->state_dir,
		    ntm_strerror(err));
		goto out;
	}

	if (la.json)
		cli_print_json(json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s}",
		    "user", s.user, "fqdn", s.fqdn, "vip4", s.vip4, "vip6", s.vip6,
		    "domain", s.domain, "token_expires", (json_int_t)s.token_expires,
		    "session_id", s.session_id, "device", s.device, "dc_url", s.dc_url));
	else
		printf("logged in as %s at %s: %s %s %s\n", s.user, s.domain, s.fqdn,
		    s.vip4, s.vip6);
	ret = EXIT_OK;
out:
	ntm_wipe(password, sizeof(password));
	ntm_wipe(sk, sizeof(sk));
	ntm_wipe(rx, sizeof(rx));
	ntm_wipe(tx, sizeof(tx));
	ntm_wipe(rx_b64, sizeof(rx_b64));
	ntm_wipe(tx_b64, sizeof(tx_b64));
	if (resp) {
		wipe_json_string(resp, "token");
		json_decref(resp);
	}
	json_decref(req);
	session_free(&s);
	free(ca);
	cli_args_free(&args);
	return ret;
}
