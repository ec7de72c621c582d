/*
 * ntm-rs - the Relay Server: relays the UDP tunnel between two clients
 * that cannot reach each other (docs/protocol.md §4.4), activated per
 * tunnel by DC-signed tickets. It never decrypts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "rs.h"
#include "msg.h"

static struct rs the_rs;

/* The binds an attack costs: drops of the bind gate and the quotas, and
 * cookies sent. */
static uint64_t
refused(const struct ntm_relay_stats *st)
{
	return st->cookies_sent + st->drops[NTM_RELAY_DROP_RATE] +
	    st->drops[NTM_RELAY_DROP_SOURCE_RATE] + st->drops[NTM_RELAY_DROP_LOAD] +
	    st->drops[NTM_RELAY_DROP_CLIENT_QUOTA] + st->drops[NTM_RELAY_DROP_DC_QUOTA] +
	    st->drops[NTM_RELAY_DROP_ACCOUNT_QUOTA] +
	    st->drops[NTM_RELAY_DROP_OTHER_DC] + st->drops[NTM_RELAY_DROP_BAD_TICKET];
}

/*
 * Under attack the operator sees it in one line every RS_ATTACK_LOG_S at
 * most, whatever the rate: what was refused, by reason, since the last
 * line; and one line when it is over.
 */
static void
log_attack(struct rs *rs, int64_t now)
{
	struct ntm_relay_stats st, *o = &rs->logged;
	uint64_t n;

	if (now - rs->logged_ms < RS_ATTACK_LOG_S * 1000)
		return;
	ntm_relay_get_stats(rs->relay, &st);
	n = refused(&st) - refused(o);
	if (n > 0)
		log_warnx("binds refused in the last %llds: %llu cookies sent (%llu binds checked "
		    "on one), bad_ticket %llu, rate %llu, source_rate %llu, load %llu, "
		    "client_quota %llu, dc_quota %llu, account_quota %llu, other_dc %llu",
		    (long long)((now - rs->logged_ms) / 1000),
		    (unsigned long long)(st.cookies_sent - o->cookies_sent),
		    (unsigned long long)(st.cookie_binds - o->cookie_binds),
#define D(r) (unsigned long long)(st.drops[r] - o->drops[r])
		    D(NTM_RELAY_DROP_BAD_TICKET), D(NTM_RELAY_DROP_RATE),
		    D(NTM_RELAY_DROP_SOURCE_RATE), D(NTM_RELAY_DROP_LOAD),
		    D(NTM_RELAY_DROP_CLIENT_QUOTA), D(NTM_RELAY_DROP_DC_QUOTA),
		    D(NTM_RELAY_DROP_ACCOUNT_QUOTA),
		    D(NTM_RELAY_DROP_OTHER_DC));
#undef D
	else if (rs->attacked)
		log_info("binds: nothing refused in the last %llds",
		    (long long)((now - rs->logged_ms) / 1000));
	rs->attacked = n > 0;
	rs->logged = st;
	rs->logged_ms = now;
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct rs *rs = arg;
	int64_t now = rs_now_ms();
	size_t n;

	if ((n = ntm_relay_expire(rs->relay, now)) > 0)
		log_debug("%zu idle session%s removed", n, n == 1 ? "" : "s");
	log_attack(rs, now);
	if (rs_status_write(rs) < 0)
		log_warn("%s", rs->status_path);
}

/* A ticket whose DC certificate the AS revoked is refused (revoked.c). */
static int
dc_revoked(uint64_t serial, void *arg)
{
	return srv_revoked_has(arg, serial);
}

/* POST /v1/revoke: the sessions opened on tickets of a revoked DC stop at
 * once (srv kept the serials; accounts and tokens mean nothing here). */
static int
rs_revoke(struct srv *s, struct ntm_req *req, const struct ntm_m_revoke *m)
{
	struct rs *rs = s->priv;
	struct ntm_m_revoke_server e;
	size_t i, n;
	json_t *v;

	json_array_foreach(m->servers, i, v)
		if (ntm_msg_revoke_server_decode(v, &e, NULL) == 0 &&
		    (n = ntm_relay_end_serial(rs->relay, (uint64_t)e.serial)) > 0)
			log_warnx("%zu relayed side%s of '%s' (certificate serial %lld) "
			    "stopped: revoked", n, n == 1 ? "" : "s", e.name,
			    (long long)e.serial);
	return 0;
}

static int
rs_setup(struct srv *s, char *err, size_t errlen)
{
	struct rs *rs = &the_rs;
	struct ntm_relay_limits lim = {
		.max_sessions	= (size_t)s->conf.max_sessions,
		.idle_ms	= (int64_t)s->conf.idle_timeout_s * 1000,
		.session_pps	= (uint32_t)s->conf.session_pps,
		.bind_pps	= (uint32_t)s->conf.bind_rate,
		.source_bind_pps = (uint32_t)s->conf.bind_rate_source,
		.prefix_bind_pps = (uint32_t)s->conf.bind_rate_prefix,
		.client_sessions = (size_t)s->conf.client_sessions,
		.dc_share	= (unsigned)s->conf.dc_session_share,
		.account_sessions = (size_t)s->conf.account_sessions,
	};
	struct timeval one = { 1, 0 }, zero = { 0, 0 };

	memset(rs, 0, sizeof(*rs));
	rs->altaddr_fd = -1;
	rs->srv = s;
	s->priv = rs;
	rs->status_path = xasprintf("%s/%s", s->conf.state_dir, RS_STATUS_FILE);
	if ((rs->relay = ntm_relay_new(&lim, s->conf.name, s->sk, s->conf.as_pk)) == NULL) {
		snprintf(err, errlen, "cannot create the relay table (%ld sessions)",
		    s->conf.max_sessions);
		return -1;
	}
	ntm_relay_set_revoked(rs->relay, dc_revoked, s);
	if (s->check_only)
		return 0;
	if (!s->conf.udp_listen && !s->conf.udp_listen6)
		log_warnx("%s: neither udp_listen nor udp_listen6 is set: not relaying",
		    s->conf.path);
	if (rs_udp_open(rs, err, errlen) < 0)
		return -1;
	if ((rs->tick = event_new(s->base, -1, EV_PERSIST, on_tick, rs)) == NULL ||
	    event_add(rs->tick, &one) < 0 ||
	    /* and a first status at once, from the process that runs the loop */
	    event_base_once(s->base, -1, EV_TIMEOUT, on_tick, rs, &zero) < 0) {
		snprintf(err, errlen, "cannot add the status timer");
		return -1;
	}
	return 0;
}

static void
rs_teardown(struct srv *s)
{
	struct rs *rs = s->priv;

	if (rs == NULL)
		return;
	if (rs->tick)
		event_free(rs->tick);
	rs_udp_close(rs);
	if (rs->status_path && !s->check_only)
		unlink(rs->status_path);
	free(rs->status_path);
	ntm_relay_free(rs->relay);
	memset(rs, 0, sizeof(*rs));
	s->priv = NULL;
}

static const struct cmd_entry *const rs_cmds[] = { &rs_status_entry, NULL };

static const struct srv_spec rs_spec = {
	.role		= NTM_ROLE_RS,
	.prog		= "ntm-rs",
	.title		= "Relay Server",
	.note		= "Relays the UDP tunnel of clients that cannot reach each other,\n"
			  "per tunnel on a ticket from their DC, without decrypting it.",
	.cmds		= rs_cmds,
	.setup		= rs_setup,
	.revoke		= rs_revoke,
	.teardown	= rs_teardown,
	.metrics	= rs_metrics,
};

int
main(int argc, char *argv[])
{
	return srv_main(&rs_spec, argc, argv);
}
