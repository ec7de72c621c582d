/*
 * netcheck.c - ntm netcheck: what kind of network this device is on. From
 * one fresh UDP socket per family (no agent needed), reflection probes
 * (docs/protocol.md §4.7) to the DC and to the RS: the reflexive address
 * each saw, whether that is the local one (no NAT), whether the two agree
 * (endpoint-independent mapping) or not (the mapping varies by
 * destination), and the round trip to each. To the RS also the filtering
 * test: probes asking it to answer from its other port; whether that
 * answer gets in tells how the NAT (or firewall) filters.
 */
#include <sys/socket.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common.h"
#include "probe.h"
#include "agent.h"

#define NC_TRIES		3	/* probes per server, one a second */
#define NC_INTERVAL_MS		1000
#define NC_TIMEOUT_DEF		3	/* seconds */

enum { SRV_DC, SRV_RELAY, SRV_N };
static const char *const srv_name[SRV_N] = { "dc", "relay" };

struct nc_target {
	int			 known;		/* an address of this family */
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;
	int			 sent;		/* rounds of probes sent */
	int			 plain;		/* plain probes sent */
	uint8_t			 txid[NC_TRIES][NTM_PROBE_TXID_LEN];
	int64_t			 sent_us[NC_TRIES];
	int			 answered;
	struct sockaddr_storage	 seen;
	socklen_t		 seenlen;
	int64_t			 rtt_us;
	/* The filtering test (the RS): probes naming the other port (ASK)
	 * and asking to be answered from it (CHANGE). */
	int			 filt;		/* this target takes the test */
	struct ntm_filt_test	 ft;
};

struct nc_family {
	int			 af;
	const char		*name;		/* "IPv4" */
	int			 fd;
	int			 has_local;
	struct sockaddr_storage	 local;
	char			 error[128];	/* why it could not be tested */
	struct nc_target	 t[SRV_N];
};

struct netcheck_args {
	int		 json;
	const char	*dc_udp, *resolver;
	long		 timeout;
};

static const struct cmd_opt netcheck_opts[] = {
	CLI_OPT_JSON(struct netcheck_args, "print the report as one JSON object"),
	{ .name = "dc-udp", .arg = "ADDR:PORT", .help = "the DC's UDP address (else ntm.conf "
	  "dc_udp, else DNS SRV _ntm._udp.DOMAIN)", .type = CMD_STRING,
	  .off = offsetof(struct netcheck_args, dc_udp) },
	{ .name = "resolver", .arg = "ADDR:PORT", .help = "DNS resolver for the SRV lookup "
	  "(else ntm.conf resolver)", .type = CMD_STRING,
	  .off = offsetof(struct netcheck_args, resolver) },
	CLI_OPT_TIMEOUT(struct netcheck_args, "give up after SEC seconds (1..300, default 3)"),
	CLI_OPT_HELP,
	CLI_OPT_END
};

/* Puts addr (unmapped) into the target of its family. */
static void
target_set(struct nc_family fam[2], int srv, const struct sockaddr_storage *addr,
    socklen_t len)
{
	struct sockaddr_storage a = *addr;
	socklen_t l = len;

	ntm_sa_unmap(&a, &l);
	for (int f = 0; f < 2; f++)
		if (fam[f].af == a.ss_family && !fam[f].t[srv].known) {
			fam[f].t[srv].known = 1;
			fam[f].t[srv].addr = a;
			fam[f].t[srv].addrlen = l;
		}
}

/* The RS's addresses from GET /v1/session: 0, EXIT_NOSESSION when the DC
 * says the session ended; other failures only warn (the DC is probed all
 * the same). */
static int
relay_addrs(const struct session *s, long timeout, struct nc_family fam[2])
{
	char url[NTM_URL_MAX + 16], errmsg[256] = "", msg[768];
	static const char *const keys[] = { "relay_udp4", "relay_udp6" };
	json_t *resp = NULL;
	long status = 0;
	int err;

	snprintf(url, sizeof(url), "%s/v1/session", s->dc_url);
	err = ntm_https_call(s->ca_file, "GET", url, NULL, s->token, timeout * 1000, &status,
	    &resp, errmsg, sizeof(errmsg));
	if (err == 0 && status == 401) {
		json_decref(resp);
		return EXIT_NOSESSION;
	}
	if (err != 0 || status != 200) {
		(void)cli_http_error(msg, sizeof(msg), s->dc_url, err, status, resp, errmsg);
		cli_err("netcheck", "the relay's address is unknown: %s", msg);
		json_decref(resp);
		return 0;
	}
	for (size_t i = 0; i < 2; i++) {
		const char *v = json_string_value(json_object_get(resp, keys[i]));
		struct sockaddr_storage a;
		socklen_t l;

		if (v && ntm_sa_parse(&a, &l, v) == 0)
			target_set(fam, SRV_RELAY, &a, l);
	}
	json_decref(resp);
	return 0;
}

/* A socket for the family and the local address it sends from (the one
 * the route to the first known server takes, with the socket's port). */
static void
family_open(struct nc_family *f)
{
	struct sockaddr_storage any, me;
	socklen_t len;
	const struct nc_target *to = f->t[SRV_DC].known ? &f->t[SRV_DC] : &f->t[SRV_RELAY];
	int on = 1, probe_fd;

	f->fd = -1;
	if (!to->known) {
		snprintf(f->error, sizeof(f->error), "neither the DC nor the relay has an %s "
		    "address", f->name);
		return;
	}
	memset(&any, 0, sizeof(any));
	any.ss_family = (sa_family_t)f->af;
	len = f->af == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	if ((f->fd = socket(f->af, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    (f->af == AF_INET6 && setsockopt(f->fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
	    sizeof(on)) < 0) || bind(f->fd, (struct sockaddr *)&any, len) < 0 ||
	    getsockname(f->fd, (struct sockaddr *)&f->local, &len) < 0) {
		snprintf(f->error, sizeof(f->error), "UDP socket: %s", strerror(errno));
		if (f->fd >= 0)
			close(f->fd);
		f->fd = -1;
		return;
	}
	/* The source address the route picks: connect a throwaway socket. */
	len = sizeof(me);
	if ((probe_fd = socket(f->af, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(probe_fd, (const struct sockaddr *)&to->addr, to->addrlen) < 0 ||
	    getsockname(probe_fd, (struct sockaddr *)&me, &len) < 0) {
		snprintf(f->error, sizeof(f->error), "no route to %s: %s",
		    ntm_sa_str((const struct sockaddr *)&to->addr, (char[64]){0}, 64),
		    strerror(errno));
		if (probe_fd >= 0)
			close(probe_fd);
		close(f->fd);
		f->fd = -1;
		return;
	}
	close(probe_fd);
	if (f->af == AF_INET)
		((struct sockaddr_in *)&me)->sin_port = ((struct sockaddr_in *)&f->local)->sin_port;
	else
		((struct sockaddr_in6 *)&me)->sin6_port =
		    ((struct sockaddr_in6 *)&f->local)->sin6_port;
	f->local = me;
	f->has_local = 1;
}

static int
filt_pending(const struct nc_target *t)
{
	return t->filt && ntm_filt_pending(&t->ft);
}

static void
send_probe(struct nc_family *f, struct nc_target *t, int64_t now_us)
{
	uint8_t out[NTM_PROBE_LEN];
	int k = t->sent;

	t->sent_us[k] = now_us;
	t->sent++;
	/* Errors (no route yet, a full buffer) count as a lost probe. */
	if (!t->answered) {
		t->plain++;
		randombytes_buf(t->txid[k], NTM_PROBE_TXID_LEN);
		ntm_probe_make(out, t->txid[k]);
		(void)sendto(f->fd, out, sizeof(out), 0, (const struct sockaddr *)&t->addr,
		    t->addrlen);
	}
	/* An older server drops these as malformed: the verdict is then
	 * "unknown", as when it names no other port. */
	if (t->filt) {
		uint8_t fo[NTM_FILT_PER_ROUND][NTM_PROBE_LEN];
		int np = ntm_filt_round(&t->ft, fo);

		for (int i = 0; i < np; i++)
			(void)sendto(f->fd, fo[i], NTM_PROBE_LEN, 0,
			    (const struct sockaddr *)&t->addr, t->addrlen);
	}
}

static void
recv_answers(struct nc_family *f)
{
	uint8_t in[NTM_UDP_MAX + 1];
	struct sockaddr_storage seen, src;
	socklen_t seenlen, srclen = sizeof(src);
	ssize_t n;

	while ((n = recvfrom(f->fd, in, sizeof(in), 0, (struct sockaddr *)&src, &srclen)) > 0) {
		int64_t now = agent_now_us();

		ntm_sa_unmap(&src, &srclen);
		for (int s = 0; s < SRV_N; s++) {
			struct nc_target *t = &f->t[s];

			if (t->filt)
				(void)ntm_filt_input(&t->ft, in, (size_t)n,
				    (const struct sockaddr *)&src, srclen);

			for (int k = 0; k < t->sent && !t->answered; k++)
				if (ntm_probe_resp_open(in, (size_t)n, t->txid[k], &seen,
				    &seenlen) == 0) {
					t->answered = 1;
					t->seen = seen;
					t->seenlen = seenlen;
					t->rtt_us = now - t->sent_us[k];
				}
		}
		srclen = sizeof(src);
	}
}

/* Probes every known server of both families until all answered, each got
 * NC_TRIES probes, or the timeout. */
static void
probe_all(struct nc_family fam[2], long timeout_s)
{
	int64_t start = agent_now_us(), deadline = start + timeout_s * 1000000;
	int64_t next = start;

	for (;;) {
		struct pollfd p[2];
		int np = 0, waiting = 0, more = 0;
		int64_t now = agent_now_us(), wait_us;

		if (now >= deadline)
			return;
		for (int f = 0; f < 2; f++)
			for (int s = 0; s < SRV_N; s++) {
				struct nc_target *t = &fam[f].t[s];

				if (fam[f].fd < 0 || !t->known || (t->answered &&
				    !filt_pending(t)))
					continue;
				waiting = 1;
				if (now >= next && t->sent < NC_TRIES)
					send_probe(&fam[f], t, now);
				if (t->sent < NC_TRIES)
					more = 1;
			}
		if (!waiting)
			return;
		if (now >= next)
			next += NC_INTERVAL_MS * 1000;
		/* After the last probe, a second for its answer. */
		if (!more && deadline > next)
			deadline = next;
		for (int f = 0; f < 2; f++)
			if (fam[f].fd >= 0) {
				p[np].fd = fam[f].fd;
				p[np].events = POLLIN;
				np++;
			}
		wait_us = (more && next < deadline ? next : deadline) - now;
		if (poll(p, (nfds_t)np, (int)(wait_us / 1000) + 1) > 0)
			for (int f = 0; f < 2; f++)
				if (fam[f].fd >= 0)
					recv_answers(&fam[f]);
	}
}

static json_t *
jaddr(const struct sockaddr_storage *a, int valid)
{
	char b[64];

	return valid ? json_string(ntm_sa_str((const struct sockaddr *)a, b, sizeof(b))) :
	    json_null();
}

static enum ntm_nat
family_nat(const struct nc_family *f)
{
	const struct nc_target *d = &f->t[SRV_DC], *r = &f->t[SRV_RELAY];

	return ntm_nat_classify(f->has_local ? (const struct sockaddr *)&f->local : NULL,
	    d->answered ? (const struct sockaddr *)&d->seen : NULL,
	    r->answered ? (const struct sockaddr *)&r->seen : NULL);
}

static enum ntm_filter
family_filter(const struct nc_family *f)
{
	return ntm_filt_verdict(&f->t[SRV_RELAY].ft, family_nat(f));
}

static const struct nc_target *
family_seen(const struct nc_family *f)
{
	if (f->t[SRV_DC].answered)
		return &f->t[SRV_DC];
	return f->t[SRV_RELAY].answered ? &f->t[SRV_RELAY] : NULL;
}

static json_t *
family_json(const struct nc_family *f)
{
	enum ntm_nat nat = family_nat(f);
	const struct nc_target *seen = family_seen(f);
	json_t *j = json_object();

	json_object_set_new(j, "tested", json_boolean(f->fd >= 0));
	json_object_set_new(j, "udp", json_boolean(seen != NULL));
	json_object_set_new(j, "local", jaddr(&f->local, f->has_local));
	json_object_set_new(j, "reflexive", seen ? jaddr(&seen->seen, 1) : json_null());
	json_object_set_new(j, "nat", json_string(ntm_nat_name(nat)));
	json_object_set_new(j, "natted", nat == NTM_NAT_UNKNOWN ? json_null() :
	    json_boolean(nat != NTM_NAT_NONE));
	json_object_set_new(j, "mapping_varies_by_dest", nat == NTM_NAT_PER_DEST ? json_true() :
	    nat == NTM_NAT_EI || nat == NTM_NAT_NONE ? json_false() : json_null());
	json_object_set_new(j, "filtering", json_string(ntm_filter_name(family_filter(f))));
	json_object_set_new(j, "error", f->error[0] ? json_string(f->error) : json_null());
	for (int s = 0; s < SRV_N; s++) {
		const struct nc_target *t = &f->t[s];

		if (!t->known) {
			json_object_set_new(j, srv_name[s], json_null());
			continue;
		}
		json_object_set_new(j, srv_name[s], json_pack("{s:o, s:o, s:o, s:i}",
		    "addr", jaddr(&t->addr, 1), "reflexive", jaddr(&t->seen, t->answered),
		    "rtt_us", t->answered ? json_integer((json_int_t)t->rtt_us) : json_null(),
		    "probes", t->plain));
		if (t->filt) {
			json_object_set_new(json_object_get(j, srv_name[s]), "other_port",
			    t->ft.other_port ? json_integer(t->ft.other_port) : json_null());
			json_object_set_new(json_object_get(j, srv_name[s]), "other_addr",
			    jaddr(&t->ft.other_addr, t->ft.other_addr.ss_family != 0));
		}
	}
	return j;
}

static const char *
nat_text(enum ntm_nat nat)
{
	switch (nat) {
	case NTM_NAT_NONE:	return "no (the servers saw the local address and port)";
	case NTM_NAT_NATTED:	return "yes (mapping not compared: one server answered)";
	case NTM_NAT_EI:	return "yes, endpoint-independent mapping";
	case NTM_NAT_PER_DEST:	return "yes, the mapping varies by destination";
	default:		return "unknown (no answer)";
	}
}

static void
print_text(const struct nc_family fam[2])
{
	char a[64], b[64];
	int udp = family_seen(&fam[0]) || family_seen(&fam[1]);

	printf("Report:\n");
	printf("\t* UDP: %s\n", udp ? "yes" : "no");
	for (int f = 0; f < 2; f++) {
		const struct nc_target *seen = family_seen(&fam[f]);

		if (fam[f].fd < 0) {
			printf("\t* %s: not tested (%s)\n", fam[f].name, fam[f].error);
			continue;
		}
		if (seen)
			printf("\t* %s: yes, %s (local %s)\n", fam[f].name,
			    ntm_sa_str((const struct sockaddr *)&seen->seen, a, sizeof(a)),
			    ntm_sa_str((const struct sockaddr *)&fam[f].local, b, sizeof(b)));
		else
			printf("\t* %s: no answer\n", fam[f].name);
		printf("\t* %s NAT: %s\n", fam[f].name, nat_text(family_nat(&fam[f])));
		printf("\t* %s filtering: %s (%s)\n", fam[f].name,
		    ntm_filter_name(family_filter(&fam[f])),
		    ntm_filt_why(&fam[f].t[SRV_RELAY].ft, family_filter(&fam[f])));
	}
	printf("\t* Round trips:\n");
	for (int f = 0; f < 2; f++)
		for (int s = 0; s < SRV_N; s++) {
			const struct nc_target *t = &fam[f].t[s];

			if (!t->known || fam[f].fd < 0)
				continue;
			printf("\t\t- %s %s: ", srv_name[s],
			    ntm_sa_str((const struct sockaddr *)&t->addr, a, sizeof(a)));
			if (t->answered)
				printf("%.1f ms, saw %s\n", (double)t->rtt_us / 1000.0,
				    ntm_sa_str((const struct sockaddr *)&t->seen, b, sizeof(b)));
			else
				printf("no answer (%d probes)\n", t->plain);
		}
	if (!fam[0].t[SRV_RELAY].known && !fam[1].t[SRV_RELAY].known)
		printf("\t\t- relay: address unknown\n");
}

static int
netcheck_exec(void *ctx, struct cmd_call *c)
{
	struct cli *cli = ctx;
	const struct netcheck_args *a = c->args;
	struct nc_family fam[2];
	struct session s;
	struct sockaddr_storage dc, alt;
	socklen_t dclen, altlen;
	long timeout = a->timeout ? a->timeout : NC_TIMEOUT_DEF;
	char err[512];
	int r, ret = EXIT_FAIL;

	memset(fam, 0, sizeof(fam));
	fam[0].af = AF_INET;
	fam[0].name = "IPv4";
	fam[1].af = AF_INET6;
	fam[1].name = "IPv6";
	fam[0].fd = fam[1].fd = -1;
	if ((r = session_load(cli, &s, err, sizeof(err))) == NTM_ERR_NOTFOUND) {
		cli_err("netcheck", "not logged in");
		return EXIT_NOSESSION;
	} else if (r < 0) {
		cli_err("netcheck", "%s", err);
		return EXIT_FAIL;
	}
	if ((r = agent_dc_udp(cli, s.domain, a->dc_udp, a->resolver, &dc, &dclen, &alt, &altlen,
	    err, sizeof(err))) < 0) {
		cli_err("netcheck", "cannot find the DC's UDP address: %s", err);
		ret = r == -2 ? EXIT_USAGE : EXIT_UNREACH;
		goto out;
	}
	target_set(fam, SRV_DC, &dc, dclen);
	if (altlen)
		target_set(fam, SRV_DC, &alt, altlen);
	if ((r = relay_addrs(&s, cli_timeout(cli, a->timeout), fam)) != 0) {
		cli_err("netcheck", "the session ended (ntm login)");
		ret = r;
		goto out;
	}
	for (int f = 0; f < 2; f++) {
		struct nc_target *rt = &fam[f].t[SRV_RELAY];

		family_open(&fam[f]);
		if (rt->known) {
			rt->filt = 1;
			ntm_filt_start(&rt->ft, (const struct sockaddr *)&rt->addr);
		}
	}
	probe_all(fam, timeout);
	if (a->json) {
		cli_print_json(json_pack("{s:b, s:o, s:o}", "udp",
		    family_seen(&fam[0]) || family_seen(&fam[1]),
		    "ipv4", family_json(&fam[0]), "ipv6", family_json(&fam[1])));
	} else
		print_text(fam);
	if (fam[0].fd < 0 && fam[1].fd < 0) {
		cli_err("netcheck", "nothing to probe: IPv4: %s; IPv6: %s", fam[0].error,
		    fam[1].error);
		ret = EXIT_UNREACH;
	} else if (!family_seen(&fam[0]) && !family_seen(&fam[1])) {
		cli_err("netcheck", "no answer from the DC or the relay over UDP within %ld s",
		    timeout);
		ret = EXIT_UNREACH;
	} else
		ret = EXIT_OK;
out:
	for (int f = 0; f < 2; f++)
		if (fam[f].fd >= 0)
			close(fam[f].fd);
	session_free(&s);
	return ret;
}

const struct cmd_entry netcheck_entry = {
	.name = "netcheck",
	.summary = "probe the DC and the relay: NAT kind, reflexive addresses, round trips",
	.usage = "",
	.opts = netcheck_opts,
	.max = 0,
	.args_size = sizeof(struct netcheck_args),
	.exec = netcheck_exec,
};
