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
#include "msg.h"
#include "ntm-cli.h"
#include "identity.h"
#include "xcli.h"

struct login_args {
	const char	*user;
	const char	*pwfile;
	const char	*ca;
	const char	*device;
	const char	*push;
	const char	*dc;
	long		 timeout;
	int		 json;
	int		 renew;
};

#define LA(f)	offsetof(struct login_args, f)

static const struct cmd_opt login_opts[] = {
	{ .name = "user", .shortopt = 'u', .arg = "NAME", .help = "account name (default: "
	  "'user' in ntm.conf)", .type = CMD_STRING, .off = LA(user) },
	{ .name = "password-file", .arg = "FILE", .help = "read the password from FILE ('-' "
	  "for stdin) instead of the terminal", .type = CMD_FILE, .off = LA(pwfile) },
	{ .name = "ca", .arg = "FILE", .help = "CA bundle the DC's TLS certificate must chain "
	  "to", .type = CMD_FILE, .off = LA(ca) },
	{ .name = "device", .arg = "ID", .help = "device id to log in as, saved for this "
	  "profile ([A-Za-z0-9_-]{1,64})", .type = CMD_STRING, .off = LA(device) },
	{ .name = "push", .arg = "URL", .help = "https:// URL the DC notifies when a tunnel "
	  "direction waits (omitted: none)", .type = CMD_STRING, .off = LA(push) },
	{ .name = "renew", .help = "log in again without the password: prove this device's "
	  "key instead (the DC, user and CA of the saved session by default)",
	  .type = CMD_FLAG, .off = LA(renew) },
	CLI_OPT_TIMEOUT(struct login_args, CLI_TIMEOUT_HELP),
	CLI_OPT_JSON(struct login_args, "print the result as one JSON object"),
	CLI_OPT_HELP,
	CLI_OPT_END
};

/* --renew: the saved session whose DC, user and CA are the defaults (the
 * strings live until login_exec returns). */
static struct session renew_from;

/* What the DC answered (borrowed from its JSON). */
struct login_reply {
	struct ntm_m_login_ok	 m;		/* borrowed from the answer */
	uint8_t			 dc_pk[NTM_KX_PK];
};

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

/* Checks the options and ntm.conf's defaults before anything is done:
 * 0 with la->dc, la->user, url and *ca (new, or NULL) set, or EXIT_USAGE. */
static int
login_check(struct cli *cli, struct login_args *la, struct cmd_call *c, char *url,
    size_t urllen, char **ca)
{
	const char *why;
	char err[256];
	int e;

	if (la->renew) {
		if (la->pwfile) {
			cli_err("login", "--renew takes no password (--password-file)");
			return EXIT_USAGE;
		}
		if ((e = session_load(cli, &renew_from, err, sizeof(err))) == NTM_ERR_NOTFOUND) {
			cli_err("login", "--renew: no session to renew (log in with the "
			    "password)");
			return EXIT_NOSESSION;
		} else if (e < 0) {
			cli_err("login", "--renew: %s", err);
			return EXIT_FAIL;
		}
		if (la->user == NULL)
			la->user = renew_from.user;
		if (la->device == NULL)
			la->device = renew_from.device;
		if (la->ca == NULL && renew_from.ca_file)
			la->ca = renew_from.ca_file;
	}
	la->dc = c->npos == 1 ? c->pos[0] : la->renew ? renew_from.dc_url : cli->conf.dc;
	if (la->dc == NULL) {
		cli_err("login", "no DC given (ntm login DC, or 'dc' in ntm.conf)");
		return EXIT_USAGE;
	}
	if (dc_url(la->dc, url, urllen, &why) < 0) {
		cli_err("login", "DC '%s': %s", la->dc, why);
		return EXIT_USAGE;
	}
	if (la->user == NULL)
		la->user = cli->conf.user;
	if (la->user == NULL) {
		cli_err("login", "no user name given (-u NAME, or 'user' in ntm.conf)");
		return EXIT_USAGE;
	}
	if (!ntm_valid_user(la->user)) {
		cli_err("login", "user '%s': invalid name (lowercase letters, digits "
		    "and '-', starting with a letter, not ending with '-', at most 32)", la->user);
		return EXIT_USAGE;
	}
	if (la->device && !ntm_valid_device(la->device)) {
		cli_err("login", "--device '%s': invalid device id (letters, digits, "
		    "'_' and '-', at most 64)", la->device);
		return EXIT_USAGE;
	}
	if (la->push && !ntm_valid_push_url(la->push)) {
		cli_err("login", "--push '%s': expected an https://HOST[:PORT][/PATH] URL "
		    "(printable ASCII, no user:password@, at most %d bytes)", la->push,
		    NTM_PUSH_URL_MAX);
		return EXIT_USAGE;
	}
	if (la->pwfile && strcmp(la->pwfile, "-") != 0 && access(la->pwfile, R_OK) < 0) {
		cli_err("login", "--password-file '%s': %s", la->pwfile, strerror(errno));
		return EXIT_USAGE;
	}
	if (la->ca) {
		if ((*ca = abs_file("login", "--ca", la->ca)) == NULL)
			return EXIT_USAGE;
	} else if (cli->conf.ca_file) {
		if ((*ca = abs_file("login", "ca_file in ntm.conf", cli->conf.ca_file)) == NULL)
			return EXIT_USAGE;
	}
	la->timeout = cli_timeout(cli, la->timeout);
	return 0;
}

/* The profile's device id (--device saves a new one): 0 or -1. */
static int
login_device(struct cli *cli, const struct login_args *la, char device[NTM_DEVICE_MAX + 1])
{
	int err;

	if (la->device) {
		if ((err = cli_device_set(cli, la->device)) < 0) {
			cli_err("login", "cannot save the device id in %s: %s",
			    cli->state_dir, ntm_strerror(err));
			return -1;
		}
		snprintf(device, NTM_DEVICE_MAX + 1, "%s", la->device);
	} else if ((err = cli_device_get(cli, device)) < 0) {
		cli_err("login", "cannot read or create the device id in %s: %s",
		    cli->state_dir, ntm_strerror(err));
		return -1;
	}
	return 0;
}

/*
 * The AS key a profile without one took from the DC's GET /v1/health at
 * its first login (trust on first use): the login is sealed to it, the
 * answer's device certificate must be signed with it, and it is pinned
 * then. One login per process.
 */
static uint8_t tofu_pk[NTM_SIGN_PK];
static int tofu;

/*
 * The password and the device key sealed to the AS key the profile trusts
 * (docs/protocol.md §3.1), bound to the DC's domain (GET /v1/health names
 * it), the time and a fresh nonce, into out (b64). A profile with no AS key
 * yet (no as_key, none pinned) takes the one the DC's /v1/health names (it
 * is pinned once the AS certified this device with it); a DC that names
 * none gets no login: a password never goes in clear. 1 sealed, -1 after
 * printing why (*rc: the exit code).
 */
static int
login_seal(struct cli *cli, const struct login_args *la, const char *url, const char *ca,
    const char *device, const char *password, const uint8_t dpk[NTM_DEVKEY_LEN],
    const uint8_t *dsk, char *out, size_t cap, int *rc)
{
	uint8_t as_pk[NTM_SIGN_PK];
	struct ntm_login_box box;
	char endpoint[NTM_URL_MAX + 16], errmsg[256] = "";
	const char *role, *name;
	json_t *resp = NULL;
	long status = 0;
	int pinned, e, ret = -1;

	if ((e = id_as_key(cli, as_pk, &pinned)) < 0 && e != NTM_ERR_NOTFOUND) {
		cli_err("login", "as_key in ntm.conf: not a base64url Ed25519 key");
		return -1;
	}
	tofu = e == NTM_ERR_NOTFOUND;
	if (tofu && dsk) {
		cli_err("login", "--renew: this profile trusts no AS key yet (log in with the "
		    "password)");
		*rc = EXIT_IDENTITY;
		return -1;
	}
	snprintf(endpoint, sizeof(endpoint), "%s/v1/health", url);
	e = ntm_https_call(ca, "GET", endpoint, NULL, NULL, la->timeout * 1000, &status, &resp,
	    errmsg, sizeof(errmsg));
	if (e != 0 || status != 200) {
		*rc = cli_http_fail("login", url, e, status, resp, errmsg);
		json_decref(resp);
		return -1;
	}
	role = json_string_value(json_object_get(resp, "role"));
	name = json_string_value(json_object_get(resp, "name"));
	if (role == NULL || strcmp(role, "dc") != 0 || name == NULL ||
	    !ntm_valid_dnsname(name)) {
		if (role != NULL && strlen(role) < 8 && strspn(role, "abcdefghijklmnopqrstuvwxyz") ==
		    strlen(role))
			cli_err("login", "%s is the %s, not a DC (ntm login needs the URL of "
			    "your DC)", url, strcmp(role, "as") == 0 ? "account server" :
			    strcmp(role, "cs") == 0 ? "cache server" :
			    strcmp(role, "rs") == 0 ? "relay server" : role);
		else
			cli_err("login", "%s is not a DC (its /v1/health names no DC "
			    "domain)", url);
		*rc = EXIT_REJECTED;
		json_decref(resp);
		return -1;
	}
	if (tofu) {
		const char *ak = json_string_value(json_object_get(resp, "as_key"));

		if (ak == NULL || ntm_b64_decode_exact(as_pk, sizeof(as_pk), ak) < 0) {
			cli_err("login", "%s names no AS key to seal the login to, and this "
			    "profile has none (set as_key in ntm.conf)", url);
			*rc = EXIT_IDENTITY;
			json_decref(resp);
			return -1;
		}
		memcpy(tofu_pk, as_pk, sizeof(tofu_pk));
	}
	memset(&box, 0, sizeof(box));
	snprintf(box.user, sizeof(box.user), "%s", la->user);
	snprintf(box.device, sizeof(box.device), "%s", device);
	snprintf(box.dc, sizeof(box.dc), "%s", name);
	box.time = now_unix();
	ntm_random(box.nonce, sizeof(box.nonce));
	memcpy(box.device_key, dpk, NTM_DEVKEY_LEN);
	/* login_request checked it holds at most NTM_PASSWORD_MAX bytes */
	if (dsk == NULL)
		memcpy(box.password, password, strnlen(password, sizeof(box.password) - 1));
	if ((dsk ? ntm_login_seal_renew(out, cap, &box, as_pk, dsk) :
	    ntm_login_seal(out, cap, &box, as_pk)) < 0)
		cli_err("login", "cannot seal the login to the AS key");
	else
		ret = 1;
	ntm_wipe(&box, sizeof(box));
	json_decref(resp);
	return ret;
}

/* POST /v1/login's body (new, with the password: wipe it), or NULL after
 * printing why. pk is our session key. */
static json_t *
login_request(struct cli *cli, const struct login_args *la, const char *url,
    const char *ca, const char *device, const uint8_t pk[NTM_KX_PK], int *rc)
{
	char password[NTM_PASSWORD_MAX + 2], prompt[NTM_URL_MAX + 64];
	char pk_b64[NTM_B64_LEN(NTM_KX_PK)], xpk_b64[NTM_B64_LEN(NTM_XPK_LEN)];
	char dpk_b64[NTM_B64_LEN(NTM_DEVKEY_LEN)], sealed[NTM_B64_LEN(NTM_LOGIN_SEALED_MAX)];
	uint8_t xpk[NTM_XPK_LEN], xsk[NTM_XSK_LEN], dpk[NTM_DEVKEY_LEN], dsk[NTM_DEVKEY_LEN];
	struct ntm_m_login m = { 0 };
	struct ntm_jerr jerr;
	struct session prior;
	char perr[256];
	json_t *req = NULL;
	int n = 0, err;

	password[0] = '\0';
	snprintf(prompt, sizeof(prompt), "Password for %s at %s: ", la->user, url);
	if (!la->renew &&
	    (n = read_secret(prompt, la->pwfile, 0, password, sizeof(password))) < 0)
		goto out;
	if (!la->renew && n > NTM_PASSWORD_MAX) {
		cli_err("login", "password longer than %d bytes", NTM_PASSWORD_MAX);
		goto out;
	}
	if (ntm_b64_encode(pk_b64, sizeof(pk_b64), pk, NTM_KX_PK) < 0) {
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
	/* The device key: the AS certifies it; peers' handshakes prove it. */
	/* --renew proves it: the key must be there already. */
	if ((err = id_device_keypair(cli, dpk, dsk, !la->renew)) < 0 ||
	    ntm_b64_encode(dpk_b64, sizeof(dpk_b64), dpk, sizeof(dpk)) < 0) {
		ntm_wipe(dsk, sizeof(dsk));
		cli_err("login", "cannot read or make the device key in %s/%s: %s",
		    cli->state_dir, ID_DEVICE_KEY_FILE, ntm_strerror(err));
		goto out;
	}
	m.device_key = dpk_b64;
	m.version = NTM_PROTOCOL_VERSION;
	m.user = la->user;
	n = login_seal(cli, la, url, ca, device, password, dpk, la->renew ? dsk : NULL, sealed,
	    sizeof(sealed), rc);
	ntm_wipe(dsk, sizeof(dsk));
	if (n < 0)
		goto out;
	m.sealed = sealed;	/* the DC relays it and cannot read it */
	m.device = device;
	m.client_key = pk_b64;
	m.exchange_key = xpk_b64;
	m.push = la->push;
	/* The last token of this device at this DC, even expired: a known
	 * device's login goes first when the DC is busy (§3.2). */
	memset(&prior, 0, sizeof(prior));
	if (session_load(cli, &prior, perr, sizeof(perr)) == 0 && prior.token &&
	    prior.dc_url && strcmp(prior.dc_url, url) == 0 && prior.user &&
	    strcmp(prior.user, la->user) == 0 && prior.device &&
	    strcmp(prior.device, device) == 0)
		m.prior_token = prior.token;
	if ((err = ntm_msg_login_encode(&m, &req, &jerr)) < 0)
		cli_err("login", "%s", err == NTM_ERR_JSON ? jerr.message : "out of memory");
	session_free(&prior);
out:
	ntm_wipe(password, sizeof(password));
	return req;
}

/* Checks the answer strictly before trusting any of it: 0 or -1. */
static int
login_answer(json_t *resp, const char *url, const char *user, struct login_reply *r)
{
	struct ntm_jerr jerr;
	const char *why = NULL;
	uint8_t sid[16];

	if (resp == NULL) {
		cli_err("login", "bad response from %s: not a JSON object", url);
		return -1;
	}
	/* The codec's keys, types and lengths; then this client's own checks,
	 * the first being that the DC logged in the user who asked. */
	if (ntm_msg_login_ok_unpack(resp, &r->m, &jerr) < 0) {
		cli_err("login", "bad response from %s: %s", url, jerr.message);
		return -1;
	}
	if (strcmp(r->m.user, user) != 0)
		why = "field 'user': not the user who logged in";
	else if (!ntm_valid_dnsname(r->m.fqdn))
		why = "field 'fqdn': not a DNS name";
	else if (!ntm_valid_dnsname(r->m.domain))
		why = "field 'domain': not a DNS name";
	else if (ntm_hex_decode_exact(sid, sizeof(sid), r->m.session_id) < 0)
		why = "field 'session_id': expected 16 bytes in hex";
	else if (ntm_b64_decode_exact(r->dc_pk, sizeof(r->dc_pk), r->m.dc_key) < 0)
		why = "field 'dc_key': expected a 32-byte key in base64url";
	else if (ntm_msg_login_ok_check(&r->m, &jerr) < 0)
		why = jerr.message;
	if (why) {
		cli_err("login", "bad response from %s: %s", url, why);
		return -1;
	}
	return 0;
}

/*
 * The device certificate of the answer, checked before anything is saved:
 * signed by the AS key this profile trusts (ntm.conf's as_key, or the one
 * pinned at the first login, or, at the very first, the one the DC names,
 * which is then pinned), for our key, user, device and the FQDN the DC gave.
 * Saved to STATE_DIR/device.cert. An exit code.
 */
static int
login_identity(struct cli *cli, const char *url, const char *device,
    const struct login_reply *r)
{
	uint8_t as_pk[NTM_SIGN_PK], dpk[NTM_DEVKEY_LEN], dsk[NTM_DEVKEY_LEN];
	struct ntm_dcert c;
	char fp[NTM_DFP_LEN];
	const char *why = NULL;
	int e, pinned, first = 0;

	if ((e = id_as_key(cli, as_pk, &pinned)) == NTM_ERR_NOTFOUND) {
		/* The key the login was sealed to (login_seal); the AS that
		 * opened the box certified with it, else this fails below. */
		if (!tofu) {
			cli_err("login", "%s: no AS key to check the answer with (set "
			    "as_key in ntm.conf)", url);
			return EXIT_IDENTITY;
		}
		memcpy(as_pk, tofu_pk, sizeof(as_pk));
		first = 1;
	} else if (e < 0) {
		cli_err("login", "cannot read the AS key (%s in ntm.conf, or %s/%s): %s",
		    "as_key", cli->state_dir, ID_AS_KEY_FILE, ntm_strerror(e));
		return EXIT_FAIL;
	}
	if ((e = id_device_keypair(cli, dpk, dsk, 0)) < 0) {
		cli_err("login", "cannot read the device key %s/%s: %s", cli->state_dir,
		    ID_DEVICE_KEY_FILE, ntm_strerror(e));
		return EXIT_FAIL;
	}
	ntm_wipe(dsk, sizeof(dsk));
	if (r->m.device_cert == NULL)
		why = "it gave no device certificate (a DC from before device keys?)";
	else if (ntm_dcert_from_b64(&c, r->m.device_cert) < 0)
		why = "its device certificate is malformed";
	else if ((e = ntm_dcert_check(&c, as_pk, r->m.fqdn, now_unix())) == NTM_ERR_EXPIRED)
		why = "its device certificate is expired or not yet valid";
	else if (e < 0)
		why = e == NTM_ERR_IDENTITY ? "its device certificate names another FQDN" :
		    "its device certificate is not signed by the AS key this profile trusts";
	else if (ntm_memcmp(c.pk, dpk, sizeof(dpk)) != 0)
		why = "its device certificate certifies another key than this device's: "
		    "the key was swapped on the way";
	else if (strcmp(c.user, r->m.user) != 0 || strcmp(c.device, device) != 0)
		why = "its device certificate names another user or device";
	if (why) {
		cli_err("login", "%s: %s", url, why);
		return EXIT_IDENTITY;
	}
	if (first && (e = id_as_pin(cli, as_pk)) < 0) {
		cli_err("login", "cannot pin the AS key in %s/%s: %s", cli->state_dir,
		    ID_AS_KEY_FILE, ntm_strerror(e));
		return EXIT_FAIL;
	}
	if ((e = id_cert_save(cli, r->m.device_cert)) < 0) {
		cli_err("login", "cannot save the device certificate in %s/%s: %s",
		    cli->state_dir, ID_DEVICE_CERT_FILE, ntm_strerror(e));
		return EXIT_FAIL;
	}
	ntm_dkey_fingerprint(fp, c.fqdn, c.pk);
	log_info("device key of %s: %s (certificate serial %llu)%s", c.fqdn, fp,
	    (unsigned long long)c.serial, first ? "; AS key pinned at first use" : "");
	return EXIT_OK;
}

/* Agrees the session keys, saves the session and says so: an exit code. */
static int
login_save(struct cli *cli, const struct login_args *la, const char *url, const char *ca,
    const char *device, const struct login_reply *r, const uint8_t pk[NTM_KX_PK],
    const uint8_t sk[NTM_KX_SK])
{
	struct session s = { 0 };
	uint8_t rx[NTM_KEY_LEN], tx[NTM_KEY_LEN];
	char rx_b64[NTM_B64_LEN(NTM_KEY_LEN)], tx_b64[NTM_B64_LEN(NTM_KEY_LEN)];
	int err, ret = EXIT_FAIL;

	if (ntm_kx_session(rx, tx, 1, pk, sk, r->dc_pk) < 0) {
		cli_err("login", "key agreement with the DC failed (bad dc_key)");
		goto out;
	}
	ntm_b64_encode(rx_b64, sizeof(rx_b64), rx, sizeof(rx));
	ntm_b64_encode(tx_b64, sizeof(tx_b64), tx, sizeof(tx));

	s.dc_url = xstrdup(url);
	s.ca_file = ca ? xstrdup(ca) : NULL;
	s.user = xstrdup(r->m.user);
	s.device = xstrdup(device);
	s.fqdn = xstrdup(r->m.fqdn);
	s.vip4 = xstrdup(r->m.vip4);
	s.vip6 = xstrdup(r->m.vip6);
	s.domain = xstrdup(r->m.domain);
	s.token = xstrdup(r->m.token);
	s.token_expires = r->m.token_expires;
	s.session_id = xstrdup(r->m.session_id);
	s.dc_key = xstrdup(r->m.dc_key);
	s.rx = xstrdup(rx_b64);
	s.tx = xstrdup(tx_b64);
	s.login_time = now_unix();
	/* The tokens for the CSs: each one names its CS, sealed to the device
	 * key when the login was (docs/protocol.md §2.3); one that does not
	 * open or decode as a CS token of this login is left out. */
	if (r->m.cs_tokens) {
		uint8_t dpk[NTM_DEVKEY_LEN], dsk[NTM_DEVKEY_LEN];
		char plain[NTM_B64_LEN(NTM_TOKEN_MAX)];
		const char *b64;
		int have_key = id_device_keypair(cli, dpk, dsk, 0) == 0;
		struct ntm_token t;
		json_t *v;
		size_t i;

		json_array_foreach(r->m.cs_tokens, i, v) {
			if (s.ncs_tokens >= NTM_CS_TOKENS_MAX || (b64 = json_string_value(v)) == NULL)
				break;
			if (ntm_token_from_b64(&t, b64) < 0 && have_key &&
			    ntm_token_unseal(plain, sizeof(plain), b64, dpk, dsk) > 0)
				b64 = plain;
			if (ntm_token_from_b64(&t, b64) < 0 ||
			    t.aud_role != NTM_ROLE_CS || strcmp(t.user, s.user) != 0 ||
			    strcmp(t.device, device) != 0) {
				log_info("cs_tokens[%zu]: not a CS token of this login; left out", i);
				continue;
			}
			s.cs_tokens[s.ncs_tokens++] = xstrdup(b64);
		}
		ntm_wipe(&t, sizeof(t));
		ntm_wipe(plain, sizeof(plain));
		ntm_wipe(dsk, sizeof(dsk));
	}
	if ((err = session_save(cli, &s)) < 0) {
		cli_err("login", "cannot save the session in %s: %s", cli->state_dir,
		    ntm_strerror(err));
		goto out;
	}
	if (la->json)
		cli_print_json(json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s}",
		    "user", s.user, "fqdn", s.fqdn, "vip4", s.vip4, "vip6", s.vip6,
		    "domain", s.domain, "token_expires", (json_int_t)s.token_expires,
		    "session_id", s.session_id, "device", s.device, "dc_url", s.dc_url));
	else
		printf("logged in as %s at %s: %s %s %s\n", s.user, s.domain, s.fqdn,
		    s.vip4, s.vip6);
	ret = EXIT_OK;
out:
	ntm_wipe(rx, sizeof(rx));
	ntm_wipe(tx, sizeof(tx));
	ntm_wipe(rx_b64, sizeof(rx_b64));
	ntm_wipe(tx_b64, sizeof(tx_b64));
	session_free(&s);
	return ret;
}

static int
login_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	struct login_args *la = c->args;
	struct login_reply r = { 0 };
	const char *code;
	char url[NTM_URL_MAX], endpoint[NTM_URL_MAX + 16], device[NTM_DEVICE_MAX + 1];
	char errmsg[256] = "";
	uint8_t pk[NTM_KX_PK], sk[NTM_KX_SK];
	char *ca = NULL;
	json_t *req = NULL, *resp = NULL;
	long status = 0;
	int err, ret;

	memset(sk, 0, sizeof(sk));
	if ((ret = login_check(cli, la, c, url, sizeof(url), &ca)) != 0)
		goto out;
	ret = EXIT_FAIL;
	if (cli_state_prepare(cli, "login") < 0 || login_device(cli, la, device) < 0)
		goto out;
	if (ntm_kx_keypair(pk, sk) < 0) {
		cli_err("login", "cannot make a session key");
		goto out;
	}
	if ((req = login_request(cli, la, url, ca, device, pk, &ret)) == NULL)
		goto out;
	snprintf(endpoint, sizeof(endpoint), "%s/v1/login", url);
	log_info("POST %s (user %s, device %s)", endpoint, la->user, device);
	err = ntm_https_call(ca, "POST", endpoint, req, NULL, la->timeout * 1000,
	    &status, &resp, errmsg, sizeof(errmsg));
	wipe_json_string(req, "password");
	code = ntm_error_code(resp);
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
	if (login_answer(resp, url, la->user, &r) == 0 &&
	    (ret = login_identity(cli, url, device, &r)) == EXIT_OK)
		ret = login_save(cli, la, url, ca, device, &r, pk, sk);
out:
	ntm_wipe(sk, sizeof(sk));
	if (resp) {
		wipe_json_string(resp, "token");
		json_decref(resp);
	}
	json_decref(req);
	free(ca);
	session_free(&renew_from);
	return ret;
}

const struct cmd_entry login_entry = {
	.name = "login",
	.summary = "log in at a DC and save the session",
	.usage = "DC",
	.opts = login_opts,
	.max = 1,
	.args_size = sizeof(struct login_args),
	.exec = login_exec,
};
