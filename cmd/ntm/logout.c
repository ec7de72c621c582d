/*
 * logout.c - ntm logout: end the session at the DC and forget it locally.
 * The local session is removed even when the DC cannot be reached, so a
 * lost DC never leaves the profile stuck (exit 3 tells the caller).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common.h"
#include "msg.h"
#include "ntm-cli.h"

struct logout_args {
	long	timeout;
	int	json;
};

static const struct cmd_opt logout_opts[] = {
	CLI_OPT_TIMEOUT(struct logout_args, CLI_TIMEOUT_HELP),
	CLI_OPT_JSON(struct logout_args, "print the result as one JSON object"),
	CLI_OPT_HELP,
	CLI_OPT_END
};

static int
logout_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	const struct logout_args *a = c->args;
	struct session s;
	char url[NTM_URL_MAX + 16], errmsg[256] = "", msg[768] = "", lerr[512];
	const char *dc_status;
	struct ntm_m_logout m = { 0 };
	json_t *req = NULL, *resp = NULL;
	long status = 0;
	int err, ret = EXIT_USAGE;

	memset(&s, 0, sizeof(s));
	if ((err = session_load(cli, &s, lerr, sizeof(lerr))) == NTM_ERR_NOTFOUND) {
		cli_err("logout", "not logged in");
		ret = EXIT_NOSESSION;
		goto out;
	} else if (err < 0) {
		/* An unreadable session cannot be ended at the DC: drop it. */
		cli_err("logout", "%s; removing it", lerr);
		(void)session_remove(cli);
		ret = EXIT_FAIL;
		goto out;
	}

	snprintf(url, sizeof(url), "%s/v1/logout", s.dc_url);
	m.version = NTM_PROTOCOL_VERSION;
	if (ntm_msg_logout_encode(&m, &req, NULL) < 0)
		req = NULL;	/* out of memory: the call fails as before */
	log_info("POST %s", url);
	err = ntm_https_call(s.ca_file, "POST", url, req, s.token,
	    cli_timeout(cli, a->timeout) * 1000, &status, &resp, errmsg, sizeof(errmsg));
	if (err == 0 && status == 200) {
		dc_status = "ok";
		ret = EXIT_OK;
	} else if (err == 0 && status == 401) {
		dc_status = "ended";	/* already over at the DC: nothing left to end */
		ret = EXIT_OK;
	} else {
		ret = cli_http_error(msg, sizeof(msg), s.dc_url, err, status, resp, errmsg);
		dc_status = ret == EXIT_UNREACH ? "unreachable" :
		    ret == EXIT_UNTRUSTED ? "untrusted_certificate" : "error";
	}

	if ((err = session_remove(cli)) < 0 && err != NTM_ERR_NOTFOUND) {
		cli_err("logout", "cannot remove the session file in %s: %s",
		    cli->state_dir, ntm_strerror(err));
		ret = EXIT_FAIL;
		goto out;
	}
	if (ret != EXIT_OK)
		cli_err("logout", "%s; session removed locally", msg);
	if (a->json) {
		json_t *o = json_pack("{s:b, s:s, s:s, s:s}", "logged_out", 1,
		    "user", s.user, "fqdn", s.fqdn, "dc_status", dc_status);

		if (o && ret != EXIT_OK)
			json_object_set_new(o, "dc_error", json_string(msg));
		cli_print_json(o);
	}
	else if (ret == EXIT_OK)
		printf("logged out %s from %s%s\n", s.fqdn, s.domain,
		    strcmp(dc_status, "ended") == 0 ?
		    " (the DC had already ended the session)" : "");
out:
	json_decref(req);
	json_decref(resp);
	session_free(&s);
	return ret;
}

const struct cmd_entry logout_entry = {
	.name = "logout",
	.summary = "end the session at the DC and forget it",
	.usage = "",
	.opts = logout_opts,
	.max = 0,
	.args_size = sizeof(struct logout_args),
	.exec = logout_exec,
};
