/*
 * down.c - ntm down: ask the agent to stop and wait (bounded) until it has.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "agent.h"

struct down_args {
	int	json;
	long	timeout;
};

static const struct cmd_opt down_opts[] = {
	CLI_OPT_JSON(struct down_args, "print the result as one JSON object "
	  "({\"stopped\":true|false,\"pid\":N|null})"),
	CLI_OPT_TIMEOUT(struct down_args, "wait at most SEC seconds (1..300, default 10)"),
	CLI_OPT_HELP,
	CLI_OPT_END
};

static int
down_exec(void *ctx, struct cmd_call *call)
{
	struct cli *cli = ctx;
	const struct down_args *a = call->args;
	struct ctl_client *c = NULL;
	json_t *resp = NULL;
	const char *why;
	long pid = 0;
	int64_t deadline;
	int ret;

	deadline = agent_now_ms() + cli_timeout(cli, a->timeout) * 1000;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		ret = EXIT_FAIL;
		goto out;
	}
	/* Nothing to stop is what was asked for: a success (scripts run
	 * `ntm down` under set -e whether or not an agent runs). */
	if (ctl_open(c, cli) < 0) {
		if (errno != ENOENT && errno != ECONNREFUSED) {
			char *sock = agent_sock_path(cli);

			cli_err("down", "cannot reach the agent on %s: %s", sock,
			    strerror(errno));
			free(sock);
			ret = EXIT_FAIL;
			goto out;
		}
		if (a->json)
			cli_print_json(json_pack("{s:b, s:n}", "stopped", 0, "pid"));
		else
			printf("no agent running\n");
		ret = EXIT_OK;
		goto out;
	}
	if (ctl_send(c, json_pack("{s:s}", "cmd", "stop")) < 0 ||
	    (resp = ctl_recv(c, 3000, &why)) == NULL) {
		char *sock = agent_sock_path(cli);

		cli_err("down", "the agent on %s did not answer the stop request", sock);
		free(sock);
		ret = EXIT_FAIL;
		goto out;
	}
	pid = (long)json_integer_value(json_object_get(resp, "pid"));
	/* Stopped once it closed the connection and the process is gone. */
	while (ctl_recv(c, (int)(deadline - agent_now_ms() > 0 ?
	    deadline - agent_now_ms() : 1), &why) != NULL)
		;
	while (pid > 0 && kill((pid_t)pid, 0) == 0 && agent_now_ms() < deadline)
		usleep(20000);
	if (pid > 0 && kill((pid_t)pid, 0) == 0) {
		cli_err("down", "the agent (pid %ld) did not stop within %ld s", pid,
		    cli_timeout(cli, a->timeout));
		ret = EXIT_FAIL;
		goto out;
	}
	if (a->json)
		cli_print_json(json_pack("{s:b, s:I}", "stopped", 1, "pid", (json_int_t)pid));
	else
		printf("agent stopped (pid %ld)\n", pid);
	ret = EXIT_OK;
out:
	json_decref(resp);
	if (c) {
		ctl_close(c);
		free(c);
	}
	return ret;
}

const struct cmd_entry down_entry = {
	.name = "down",
	.summary = "stop the agent",
	.usage = "",
	.opts = down_opts,
	.max = 0,
	.args_size = sizeof(struct down_args),
	.exec = down_exec,
};
