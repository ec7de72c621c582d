/*
 * hooks.c - how the agent's core (UDP, registration, directions, the
 * tunnel table) reaches the rooms above it: the one table of hooks that
 * agent_main() gives the core at start. The core never calls the control
 * server, the forwards, SOCKS5, the user-space stack or TUN mode by name.
 */
#include <sys/socket.h>

#include <string.h>
#include <unistd.h>

#include "common.h"
#include "ippkt.h"
#include "agentd.h"

static void
on_tunnel_new(struct agent *a, struct tun *t)
{
	agent_tundev_route(a, t, 1);
}

static void
on_tunnel_gone(struct agent *a, struct tun *t)
{
	agent_tundev_route(a, t, 0);
}

static void
on_tunnel_failed(struct agent *a, uint64_t serial, const char *peer, const char *code,
    const char *msg)
{
	if (serial)
		agent_ctl_tunnel_failed(a, serial, code, msg);
	if (peer)
		agent_dial_failed(a, peer, msg);
	if (peer && code && strcmp(code, "peer_identity") == 0)
		agent_ctl_peer_failed(a, peer, code, msg);
}

static int
on_inner(struct agent *a, struct tun *t, const struct ntm_ip *ip, const uint8_t *p,
    size_t len)
{
	if (a->tun_mode) {
		/* The kernel has the vIPs: all but the agent's own go there. */
		if ((ip->is_echo && ip->icmp_type != NTM_ICMP_ECHO_REQUEST &&
		    ip->icmp_type != NTM_ICMP6_ECHO_REQUEST &&
		    agent_ctl_echo_reply(a, t, ip) == 0) ||
		    (ip->proto == NTM_PROTO_UDP && agent_ctl_udp(a, t, ip) == 0))
			return 0;
		agent_tundev_input(a, t, p, len);
		return 0;
	}
	if (ip->is_echo)
		return agent_ctl_echo_reply(a, t, ip);
	if (ip->proto == NTM_PROTO_UDP)
		return agent_ctl_udp(a, t, ip) == 0 || agent_socks_udp(a, t, ip) == 0 ? 0 : -1;
	if (ip->proto == NTM_PROTO_TCP) {
		agent_ip_input(a, p, len);	/* the user-space stack */
		return 0;
	}
	return -1;
}

/* The first authentic datagram over a new path: what the old path lost
 * goes again (TCP of the user-space stack, or of the kernel in TUN mode). */
static void
on_path_confirmed(struct agent *a, struct tun *t)
{
	if (a->tun_mode)
		agent_tundev_path_confirmed(a, t);
	else
		agent_ip_path_confirmed(a, t);
}

/* The first REG_RESP: the `ntm up` waiting for us hears it, then we are on
 * our own. */
static void
on_registered(struct agent *a, const char *line)
{
	if (a->ready_fd >= 0) {
		(void)!write(a->ready_fd, line, strlen(line));
		close(a->ready_fd);
		a->ready_fd = -1;
	}
}

const struct agent_hooks agent_hooks = {
	.tunnel_new		= on_tunnel_new,
	.tunnel_gone		= on_tunnel_gone,
	.tunnel_up		= agent_ctl_tunnel_up,
	.tunnels_changed	= agent_ctl_tunnels_changed,
	.tunnel_failed		= on_tunnel_failed,
	.inner			= on_inner,
	.registered		= on_registered,
	.path_confirmed		= on_path_confirmed,
};
