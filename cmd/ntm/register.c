/*
 * register.c - ntm register: with an agent running, its last registration;
 * else one REG_REQ from a fresh socket (resent each second until the
 * timeout) and what the DC's REG_RESP says: reflexive address, natted,
 * keepalive.
 */
#include <sys/socket.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "reg.h"
#include "agent.h"

struct register_args {
	int		 json;
	const char	*dc_udp, *resolver;
	long		 timeout;
};

static const struct cmd_opt register_opts[] = {
	CLI_OPT_JSON(struct register_args, "print the result as one JSON object"),
	{ .name = "dc-udp", .arg = "ADDR:PORT", .help = "the DC's UDP address (else ntm.conf "
	  "dc_udp, else DNS SRV _ntm._udp.DOMAIN)", .type = CMD_STRING,
	  .off = offsetof(struct register_args, dc_udp) },
	{ .name = "resolver", .arg = "ADDR:PORT", .help = "DNS resolver for the SRV lookup "
	  "(else ntm.conf resolver)", .type = CMD_STRING,
	  .off = offsetof(struct register_args, resolver) },
	CLI_OPT_TIMEOUT(struct register_args, CLI_TIMEOUT_HELP),
	CLI_OPT_HELP,
	CLI_OPT_END
};

static void
print_reg(json_t *r, int json, int agent)
{
	const char *refl = json_string_value(json_object_get(r, "reflexive"));
	json_t *locals = json_object_get(r, "locals"), *v;
	size_t i;

	json_object_set_new(r, "agent", json_boolean(agent));
	if (json) {
		cli_print_json(json_incref(r));
		return;
	}
	printf("dc: %s\n", json_string_value(json_object_get(r, "dc")));
	printf("reflexive: %s\n", refl ? refl : "(not registered yet)");
	if (refl)
		printf("natted: %s\n", json_is_true(json_object_get(r, "natted")) ? "yes" : "no");
	printf("keepalive: %lld s\n",
	    (long long)json_integer_value(json_object_get(r, "keepalive_s")));
	printf("locals:");
	json_array_foreach(locals, i, v)
		printf(" %s", json_string_value(v));
	printf("%s\n", json_array_size(locals) ? "" : " (none)");
	printf("agent: %s\n", agent ? "running" : "not running (one registration sent)");
}

static int
register_once(struct cli *cli, const char *dc_udp, const char *resolver, long timeout,
    int json)
{
	struct session s;
	struct ntm_chan ch;
	struct ntm_reg_req rq;
	struct ntm_reg_resp rs;
	struct sockaddr_storage dc, me;
	socklen_t dclen, mlen = sizeof(me);
	char err[512], b[64], *ctr;
	uint8_t out[NTM_REG_REQ_LEN], in[NTM_UDP_MAX + 1];
	int64_t deadline, next = 0;
	int fd = -1, r, ret = EXIT_FAIL, got = 0;
	uint16_t port;
	json_t *locals, *j;

	memset(&ch, 0, sizeof(ch));
	if ((r = session_load(cli, &s, err, sizeof(err))) == NTM_ERR_NOTFOUND) {
		cli_err("register", "not logged in");
		return EXIT_NOSESSION;
	} else if (r < 0) {
		cli_err("register", "%s", err);
		return EXIT_FAIL;
	}
	ctr = cli_state_path(cli, AGENT_REG_CTR);
	r = agent_chan(&ch, &s, ctr, err, sizeof(err));
	free(ctr);
	if (r < 0) {
		cli_err("register", "%s", err);
		goto out;
	}
	if ((r = agent_dc_udp(cli, s.domain, dc_udp, resolver, &dc, &dclen, NULL, NULL, err,
	    sizeof(err))) < 0) {
		cli_err("register", "cannot find the DC's UDP address: %s", err);
		ret = r == -2 ? EXIT_USAGE : EXIT_UNREACH;
		goto out;
	}
	ntm_sa_unmap(&dc, &dclen);
	if ((fd = socket(dc.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&me, &mlen) < 0) {
		cli_err("register", "UDP socket: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&dc, dclen) < 0) {
		cli_err("register", "%s: %s", ntm_sa_str((struct sockaddr *)&dc, b, sizeof(b)),
		    strerror(errno));
		ret = EXIT_UNREACH;
		goto out;
	}
	mlen = sizeof(me);
	getsockname(fd, (struct sockaddr *)&me, &mlen);
	port = ntohs(me.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&me)->sin6_port :
	    ((struct sockaddr_in *)&me)->sin_port);
	memset(&rq, 0, sizeof(rq));
	rq.local_port = port;
	rq.naddrs = agent_local_addrs(rq.addrs, NTM_REG_ADDRS, port, &dc);
	deadline = agent_now_ms() + timeout * 1000;
	while (!got && agent_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t now = agent_now_ms(), wait;
		ssize_t n;

		if (now >= next) {
			if (agent_chan_ctr(&ch) < 0 ||
			    (r = ntm_reg_req_seal(&ch, &rq, out, sizeof(out), NULL)) < 0) {
				cli_err("register", "cannot seal: %s", ntm_strerror(r));
				goto out;
			}
			(void)send(fd, out, (size_t)r, 0);	/* errors: retried */
			next = now + 1000;
		}
		wait = (next < deadline ? next : deadline) - now;
		if (poll(&p, 1, (int)(wait > 0 ? wait : 1)) <= 0)
			continue;
		if ((n = recv(fd, in, sizeof(in), 0)) <= 0)
			continue;
		if (ntm_msg_validate(in, (size_t)n) == NTM_MSG_REG_RESP &&
		    ntm_reg_resp_open(&ch, in, (size_t)n, &rs) == 0)
			got = 1;
	}
	if (!got) {
		cli_err("register", "no answer from the DC at %s within %ld s",
		    ntm_sa_str((struct sockaddr *)&dc, b, sizeof(b)), timeout);
		ret = EXIT_UNREACH;
		goto out;
	}
	locals = json_array();
	int natted = 1;

	for (int i = 0; i < rq.naddrs; i++) {
		json_array_append_new(locals, json_string(ntm_sa_str(
		    (struct sockaddr *)&rq.addrs[i], b, sizeof(b))));
		if (ntm_sa_equal((struct sockaddr *)&rq.addrs[i],
		    (struct sockaddr *)&rs.reflexive))
			natted = 0;
	}
	j = json_pack("{s:b, s:s, s:o, s:I}", "registered", 1,
	    "dc", ntm_sa_str((struct sockaddr *)&dc, b, sizeof(b)), "locals", locals,
	    "keepalive_s", (json_int_t)rs.keepalive_s);
	json_object_set_new(j, "reflexive", json_string(ntm_sa_str(
	    (struct sockaddr *)&rs.reflexive, b, sizeof(b))));
	json_object_set_new(j, "natted", json_boolean(natted));
	json_object_set_new(j, "family", json_integer(rs.reflexive.ss_family == AF_INET6 ? 6 : 4));
	json_object_set_new(j, "pending", json_integer(rs.pending));
	print_reg(j, json, 0);
	json_decref(j);
	ret = EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	ntm_chan_wipe(&ch);
	session_free(&s);
	return ret;
}

static int
register_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	const struct register_args *a = c->args;
	int ret;
	json_t *resp;

	if ((resp = ctl_call(cli, json_pack("{s:s}", "cmd", "register"), 3000)) != NULL) {
		json_t *r = json_object_get(resp, "registration");

		if (json_is_object(r)) {
			print_reg(r, a->json, 1);
			ret = json_is_true(json_object_get(r, "registered")) ? EXIT_OK :
			    EXIT_UNREACH;
		} else
			ret = ctl_fail("register", resp);
		json_decref(resp);
		return ret;
	}
	return register_once(cli, a->dc_udp, a->resolver, cli_timeout(cli, a->timeout), a->json);
}

const struct cmd_entry register_entry = {
	.name = "register",
	.summary = "register with the DC once and show what it saw",
	.usage = "",
	.opts = register_opts,
	.max = 0,
	.args_size = sizeof(struct register_args),
	.exec = register_exec,
};
