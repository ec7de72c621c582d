/*
 * stack.c - the user-space TCP/IP stack on the client's vIPs.
 *
 * lwIP (Debian's liblwip, built with NO_SYS=0) runs on the agent's libevent
 * loop: the agent calls lwip_init() itself and never starts lwIP's tcpip
 * thread, so every lwIP call, every callback and every lwIP timer runs on
 * the loop's thread and nothing is shared between threads. (The core-lock
 * checks of that build only apply once a tcpip thread is marked; none is.)
 *
 * One netif without a link layer holds the vIPv4 (/32) and the vIPv6; its
 * MTU is the tunnel's inner MTU, so TCP's MSS makes segments that never
 * fragment the outer UDP. lwIP's output is a raw IPv4/IPv6 packet handed to
 * the tunnel of the peer that owns the destination vIP; authentic inner TCP
 * packets from a tunnel go in through ip_input(). The timers of lwIP
 * (retransmission, delayed ACK, TIME-WAIT) run from one libevent timer,
 * re-armed after every entry into lwIP.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/priv/tcp_priv.h"	/* tcp_active_pcbs, tcp_rexmit_rto */
#include "lwip/timeouts.h"

#include "common.h"
#include "ippkt.h"
#include "agentd.h"
#include "stack.h"

static struct {
	struct agent	*a;
	struct netif	 nif;
	struct event	*timer;
	int64_t		 armed;		/* when timer fires */
	int		 up;
} ip;

/* The tunnel whose peer owns this destination vIP. */
static struct tun *
tun_for(struct agent *a, int version, const uint8_t *dst)
{
	for (int i = 0; i < a->ntun; i++) {
		struct tun *t = a->tuns[i];

		if (version == 4 ? t->has4 && memcmp(t->pv4, dst, 4) == 0 :
		    t->has6 && memcmp(t->pv6, dst, 16) == 0)
			return t;
	}
	return NULL;
}

static err_t
output(struct pbuf *p, int version, const uint8_t *dst)
{
	struct agent *a = ip.a;
	uint8_t pkt[NTM_INNER_MTU];
	struct tun *t;

	if (p->tot_len > sizeof(pkt) || (t = tun_for(a, version, dst)) == NULL) {
		a->stack_noroute++;
		return ERR_OK;		/* dropped, as a link would */
	}
	pbuf_copy_partial(p, pkt, p->tot_len, 0);
	if (agent_tun_send(t, pkt, p->tot_len) < 0)
		a->stack_noroute++;
	else
		a->stack_out++;
	return ERR_OK;
}

static err_t
output4(struct netif *nif, struct pbuf *p, const ip4_addr_t *dst)
{
	return output(p, 4, (const uint8_t *)&dst->addr);
}

static err_t
output6(struct netif *nif, struct pbuf *p, const ip6_addr_t *dst)
{
	return output(p, 6, (const uint8_t *)dst->addr);
}

static err_t
nif_init(struct netif *nif)
{
	nif->name[0] = 'n';
	nif->name[1] = 't';
	nif->mtu = NTM_INNER_MTU;
	nif->mtu6 = NTM_INNER_MTU;
	nif->output = output4;
	nif->output_ip6 = output6;
	nif->flags = NETIF_FLAG_LINK_UP;
	return ERR_OK;
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	sys_check_timeouts();
	agent_ip_kick(ip.a);
}

void
agent_ip_kick(struct agent *a)
{
	u32_t ms;
	struct timeval tv;
	int64_t at;

	if (!ip.up)
		return;
	ms = sys_timeouts_sleeptime();
	if (ms == SYS_TIMEOUTS_SLEEPTIME_INFINITE)
		ms = 1000;
	/* an earlier wake-up already set serves (on_timer re-arms) */
	at = agent_now_ms() + ms;
	if (ip.armed && ip.armed <= at && evtimer_pending(ip.timer, NULL))
		return;
	ip.armed = at;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(ip.timer, &tv);
}

int
agent_ip_start(struct agent *a, char *err, size_t errlen)
{
	ip4_addr_t v4, mask, gw;

	ip.a = a;
	if ((ip.timer = evtimer_new(a->base, on_timer, NULL)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	{
		/* lwIP picks its first local ports with rand(): not the same
		 * ones after every start. */
		unsigned seed;

		ntm_random(&seed, sizeof(seed));
		srand(seed);
	}
	lwip_init();
	memset(&v4, 0, sizeof(v4));
	memset(&gw, 0, sizeof(gw));
	memset(&mask, 0xff, sizeof(mask));
	if (a->has_vip4)
		memcpy(&v4.addr, a->vip4, 4);
	if (netif_add(&ip.nif, &v4, &mask, &gw, NULL, nif_init, ip_input) == NULL) {
		snprintf(err, errlen, "cannot add the vIP interface");
		return -1;
	}
	if (a->has_vip6) {
		ip6_addr_t v6;
		s8_t idx;

		memset(&v6, 0, sizeof(v6));
		memcpy(v6.addr, a->vip6, 16);
		if (netif_add_ip6_address(&ip.nif, &v6, &idx) != ERR_OK) {
			snprintf(err, errlen, "cannot add the vIPv6 address");
			return -1;
		}
		/* The vIP is ours by the DC's word: no duplicate detection. */
		netif_ip6_addr_set_state(&ip.nif, idx, IP6_ADDR_PREFERRED);
	}
	netif_set_default(&ip.nif);
	netif_set_up(&ip.nif);
	ip.up = 1;
	agent_ip_kick(a);
	return 0;
}

int
agent_ip_is_ours(struct agent *a, int version, const uint8_t *addr)
{
	return version == 4 ? a->has_vip4 && memcmp(a->vip4, addr, 4) == 0 :
	    a->has_vip6 && memcmp(a->vip6, addr, 16) == 0;
}

void
agent_ip_path_confirmed(struct agent *a, struct tun *t)
{
	struct tcp_pcb *pcb;
	uint8_t b[16];
	int v, n = 0;

	if (!ip.up)
		return;
	for (pcb = tcp_active_pcbs; pcb; pcb = pcb->next) {
		if (pcb->unacked == NULL)
			continue;
		v = agent_ip_from(&pcb->remote_ip, b);
		if (v == 4 ? t->has4 && memcmp(t->pv4, b, 4) == 0 :
		    v == 6 && t->has6 && memcmp(t->pv6, b, 16) == 0) {
			tcp_rexmit_rto(pcb);
			n++;
		}
	}
	if (n) {
		a->tcp_rexmits += (uint64_t)n;
		log_debug("tunnel %s: new path works: %d TCP connection%s resend now",
		    t->peer, n, n == 1 ? "" : "s");
		agent_ip_kick(a);
	}
}

void
agent_ip_input(struct agent *a, const uint8_t *p, size_t len)
{
	struct pbuf *pb;

	if (!ip.up || len > 0xffff ||
	    (pb = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM)) == NULL) {
		a->inner_drops++;
		return;
	}
	pbuf_take(pb, p, (u16_t)len);
	a->stack_in++;
	if (ip.nif.input(pb, &ip.nif) != ERR_OK)
		pbuf_free(pb);
	agent_ip_kick(a);
}

void
agent_ip_addr(int version, const uint8_t *b, ip_addr_t *out)
{
	memset(out, 0, sizeof(*out));
	if (version == 4) {
		IP_SET_TYPE(out, IPADDR_TYPE_V4);
		memcpy(&ip_2_ip4(out)->addr, b, 4);
	} else {
		IP_SET_TYPE(out, IPADDR_TYPE_V6);
		memcpy(ip_2_ip6(out)->addr, b, 16);
	}
}

int
agent_ip_from(const ip_addr_t *in, uint8_t out[16])
{
	memset(out, 0, 16);
	if (IP_IS_V4(in)) {
		memcpy(out, &ip_2_ip4(in)->addr, 4);
		return 4;
	}
	memcpy(out, ip_2_ip6(in)->addr, 16);
	return 6;
}

struct tcp_pcb *
agent_ip_listen(uint16_t port, uint8_t backlog)
{
	struct tcp_pcb *pcb, *lpcb;

	if ((pcb = tcp_new_ip_type(IPADDR_TYPE_ANY)) == NULL)
		return NULL;
	/* As SO_REUSEADDR on a kernel socket: the connections a previous
	 * listener on this port served may linger in TIME-WAIT (2 MSL, two
	 * minutes) without keeping a new listener off the port. Connections
	 * accepted inherit the option, so they do not either. */
	ip_set_option(pcb, SOF_REUSEADDR);
	if (tcp_bind(pcb, IP_ANY_TYPE, port) != ERR_OK ||
	    (lpcb = tcp_listen_with_backlog(pcb, backlog)) == NULL) {
		tcp_abort(pcb);		/* not listening: freed, never sent a thing */
		return NULL;
	}
	return lpcb;
}
