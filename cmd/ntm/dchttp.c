/*
 * dchttp.c - what a failed HTTPS call to a DC, AS or CS means for the
 * CLI: one error line and the documented exit code (ntm(1)). Every
 * command that calls a server (login, logout, status, keys, send, fetch)
 * maps its failures here.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common.h"
#include "ntm-cli.h"
#include "msg.h"

int
cli_exit_for_code(const char *code, long status)
{
	static const struct { const char *code; int exit; } map[] = {
		{ "bad_password", EXIT_BADPASS },
		{ "renew_refused", EXIT_BADPASS },	/* log in with the password */
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
	struct ntm_m_error e;

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
	/* A proxy or a stranger in front of the server may answer a page
	 * that is no error of ours: its status is all there is to say. */
	if (ntm_error_read(body, &e) == 0)
		snprintf(buf, len, "%s: %s", e.code, e.message ? e.message : "(no message)");
	else
		snprintf(buf, len, "HTTP %ld from %s", status, url);
	return cli_exit_for_code(e.code, status);
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

