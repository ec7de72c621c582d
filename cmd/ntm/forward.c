/*
 * forward.c - `ntm tunnel forward -L [BIND:]LPORT:PEER:RPORT | -R
 * RPORT:HOST:PORT | --remove ID`, and the list of forwards (no option).
 * The agent holds the forwards (agent/forwards.c); this checks the spec, asks,
 * and prints.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "agent.h"
#include "stream.h"

/* Splits "A:B:C" from the right into at most n fields; a field may be
 * "[v6]" (its colons kept, brackets removed). Returns the number of fields
 * or -1. */
static int
split(char *s, char **f, int n)
{
	int k = 0;
	char *p = s;

	while (k < n) {
		char *end;

		if (*p == '[') {
			if ((end = strchr(p, ']')) == NULL || (end[1] != ':' && end[1] != '\0'))
				return -1;
			*end = '\0';
			f[k++] = p + 1;
			if (end[1] == '\0')
				return k;
			p = end + 2;
			continue;
		}
		f[k++] = p;
		if ((end = strchr(p, ':')) == NULL)
			return k;
		*end = '\0';
		p = end + 1;
	}
	return -1;
}

static int
port_of(const char *s, long *out)
{
	return parse_long(s, 1, 65535, out);
}

static int
is_addr(const char *s)
{
	uint8_t b[16];

	return !strcmp(s, "localhost") || inet_pton(AF_INET, s, b) == 1 ||
	    inet_pton(AF_INET6, s, b) == 1;
}

static json_t *
local_req(const char *spec, int family)
{
	char buf[512], *f[4];
	int n;
	long lport, rport;
	const char *bind = "127.0.0.1", *peer, *lp, *rp;

	if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf) ||
	    (n = split(buf, f, 4)) < 3) {
		cli_err("tunnel", "-L '%s': expected [BIND:]LPORT:PEER:RPORT", spec);
		return NULL;
	}
	if (n == 4)
		bind = f[0];
	lp = f[n - 3], peer = f[n - 2], rp = f[n - 1];
	if (!is_addr(bind)) {
		cli_err("tunnel", "-L '%s': BIND '%s' is not an IP address", spec, bind);
		return NULL;
	}
	if (!strcmp(bind, "localhost"))
		bind = "127.0.0.1";
	if (port_of(lp, &lport) < 0 || port_of(rp, &rport) < 0) {
		cli_err("tunnel", "-L '%s': ports are 1..65535", spec);
		return NULL;
	}
	if (!ntm_valid_dnsname(peer) || strchr(peer, '.') == NULL) {
		cli_err("tunnel", "-L '%s': PEER '%s' is not a client FQDN (user.domain or "
		    "user-N.domain, like alice.dc1.ntm.test or bob-2.dc2.example)", spec, peer);
		return NULL;
	}
	return json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:i}", "cmd", "forward", "dir", "L",
	    "bind", bind, "port", (int)lport, "peer", peer, "peer_port", (int)rport,
	    "family", family);
}

static json_t *
remote_req(const char *spec)
{
	char buf[512], tgt[160], *f[3];
	long rport, port;

	if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf) ||
	    split(buf, f, 3) != 3) {
		cli_err("tunnel", "-R '%s': expected RPORT:HOST:PORT", spec);
		return NULL;
	}
	if (port_of(f[0], &rport) < 0 || port_of(f[2], &port) < 0) {
		cli_err("tunnel", "-R '%s': ports are 1..65535", spec);
		return NULL;
	}
	if (!is_addr(f[1])) {
		cli_err("tunnel", "-R '%s': HOST '%s' must be an IP address or localhost",
		    spec, f[1]);
		return NULL;
	}
	snprintf(tgt, sizeof(tgt), strchr(f[1], ':') ? "[%s]:%ld" : "%s:%ld", f[1], port);
	return json_pack("{s:s, s:s, s:i, s:s}", "cmd", "forward", "dir", "R",
	    "port", (int)rport, "target", tgt);
}

static void
print_fwd(json_t *f)
{
	printf("%lld  -%s %s  (%lld open, %lld accepted, %lld failed)\n",
	    (long long)json_integer_value(json_object_get(f, "id")),
	    json_string_value(json_object_get(f, "dir")),
	    json_string_value(json_object_get(f, "spec")),
	    (long long)json_integer_value(json_object_get(f, "active")),
	    (long long)json_integer_value(json_object_get(f, "accepted")),
	    (long long)json_integer_value(json_object_get(f, "failed")));
}

int
forward_run(const struct cli *cli, const char *lspec, const char *rspec, long remove,
    int family, int json)
{
	json_t *req, *r, *arr, *f;
	size_t i;
	int ret = EXIT_OK;

	if (lspec)
		req = local_req(lspec, family);
	else if (rspec)
		req = remote_req(rspec);
	else if (remove)
		req = json_pack("{s:s, s:I}", "cmd", "unforward", "id", (json_int_t)remove);
	else
		req = json_pack("{s:s}", "cmd", "forwards");
	if (req == NULL)
		return EXIT_USAGE;
	if ((r = ctl_call(cli, req, 5000)) == NULL) {
		cli_err("tunnel", "no agent running (start it with 'ntm up')");
		return EXIT_NOAGENT;
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		ret = ctl_fail("tunnel", r);
		json_decref(r);
		return ret;
	}
	json_object_del(r, "ok");
	if (json) {
		cli_print_json(r);
	} else if ((f = json_object_get(r, "forward")) != NULL) {
		print_fwd(f);
	} else if ((arr = json_object_get(r, "forwards")) != NULL) {
		if (json_array_size(arr) == 0)
			printf("no forwards\n");
		json_array_foreach(arr, i, f)
			print_fwd(f);
	} else
		printf("forward %lld removed\n",
		    (long long)json_integer_value(json_object_get(r, "id")));
	json_decref(r);
	return ret;
}
