/*
 * ntm-dc - the Direction Coordinator: logs clients in through the AS,
 * assigns each device its FQDN and stable virtual IPv4/IPv6 pair, and agrees
 * the session key used by the UDP registration of later versions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"
#include "dns.h"

static struct dc dc;

static int
dc_setup(struct srv *s, char *err, size_t errlen)
{
	dc.srv = s;
	s->priv = &dc;
	if (ntm_prefix_parse(&dc.p4, s->conf.vip4_prefix) < 0 ||
	    ntm_prefix_parse(&dc.p6, s->conf.vip6_prefix) < 0) {
		snprintf(err, errlen, "%s: bad vip4_prefix or vip6_prefix", s->conf.path);
		return -1;
	}
	if (dc_db_open(s->conf.db, &dc.db, err, errlen) < 0)
		return -1;
	dc_db_set_max_devices(s->conf.max_devices);
	if ((dc.httpc = ntm_httpc_new(s->base, s->conf.ca_file)) == NULL) {
		snprintf(err, errlen, "cannot set up the HTTPS client%s%s",
		    s->conf.ca_file ? " with ca_file " : "",
		    s->conf.ca_file ? s->conf.ca_file : "");
		return -1;
	}
	if (ntm_httpc_set_identity(dc.httpc, s->sk, &s->cert) < 0 ||
	    ntm_httpc_set_trust(dc.httpc, s->conf.as_pk) < 0) {
		snprintf(err, errlen, "cannot set the HTTPS client identity");
		return -1;
	}
	if (dc_push_init(&dc, err, errlen) < 0)
		return -1;
	if (dc_tunnel_init(&dc, err, errlen) < 0 || dc_exchange_init(&dc, err, errlen) < 0)
		return -1;
	/* The rooms above the registration path hear of its events. */
	dc_hooks_add(&dc, &dc_tunnel_hooks);
	dc_hooks_add(&dc, &dc_exchange_hooks);
	if (dc_dns_start(&dc, err, errlen) < 0 || dc_sess_start(&dc, err, errlen) < 0 ||
	    dc_udp_start(&dc, err, errlen) < 0 || dc_status_start(&dc, err, errlen) < 0)
		return -1;
	if (!s->check_only && dc_ended_start(&dc, err, errlen) < 0)
		return -1;
	if (dc_xsweep_start(&dc, err, errlen) < 0)
		return -1;
	if (s->conf.resolver == NULL || s->check_only)
		return 0;
	dc.disc = disc_new(s->base, &s->conf, dc.httpc, err, errlen);
	return dc.disc ? 0 : -1;
}

static void
dc_teardown(struct srv *s)
{
	disc_free(dc.disc);
	dc.disc = NULL;
	dc_dns_stop(&dc);
	ntm_httpc_free(dc.httpc);
	dc.httpc = NULL;
	dc_ended_stop(&dc);
	dc_xsweep_stop(&dc);
	dc_push_free(&dc);
	dc_as_cancel(&dc);
	dc_cancel_logins(&dc);
	dc_tunnel_cancel(&dc);
	dc_exchange_free(&dc);
	dc_status_stop(&dc);
	dc_udp_stop(&dc);
	dc_sess_stop(&dc);
	ntm_db_close(dc.db);
	dc.db = NULL;
	dc.as_cur = 0;
}

static const struct cmd_entry *const dc_cmds[] = {
	&dc_client_entry, &dc_status_entry, &dc_resolve_entry, NULL
};

static const struct ntm_http_route *const dc_routes[] = {
	dc_login_routes, dc_tunnel_routes, dc_exchange_routes, NULL
};

/* The renewed certificate on the DC's own signed requests (tickets read
 * s->cert each time). */
static int
dc_cert_renewed(struct srv *s)
{
	return dc.httpc && ntm_httpc_set_identity(dc.httpc, s->sk, &s->cert) < 0 ? -1 : 0;
}

static const struct srv_spec dc_spec = {
	.role		= NTM_ROLE_DC,
	.prog		= "ntm-dc",
	.title		= "Direction Coordinator",
	.note		= "It logs clients in through the AS and assigns each device its FQDN\n"
			  "and a stable virtual IPv4/IPv6 pair.",
	.cmds		= dc_cmds,
	.routes		= dc_routes,
	.bearer		= dc_bearer,
	.revoke		= dc_revoke,
	.cert_renewed	= dc_cert_renewed,
	.setup		= dc_setup,
	.teardown	= dc_teardown,
	.metrics	= dc_metrics,
};

int
main(int argc, char *argv[])
{
	return srv_main(&dc_spec, argc, argv);
}
