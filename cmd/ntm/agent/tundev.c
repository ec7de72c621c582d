/*
 * tundev.c - TUN mode (`ntm up --tun [NAME]`, needs CAP_NET_ADMIN):
 * a kernel interface holding the client's vIPs, so that every program uses
 * them. The packets are the same as the user-space stack's: raw IPv4/IPv6
 * between vIPs, so a TUN peer and a user-space peer interoperate.
 *
 * The interface gets the vIPv4 as /32 and the vIPv6 as /128, MTU 1400
 * (the tunnel's inner MTU), and a host route to each peer's vIPs while a
 * tunnel to it exists. Packets the kernel sends there go into the tunnel
 * of the peer owning the destination; authentic packets from a tunnel are
 * written to it, except the agent's own (ping replies, UDP bridges).
 * Configured with the classic ioctls (SIOCSIFADDR, SIOCADDRT ...), which
 * need nothing beyond libc.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>

#include "common.h"
#include "fw.h"
#include "ippkt.h"
#include "agentd.h"

/* <linux/ipv6.h> clashes with glibc's headers; this is its in6_ifreq. */
struct ntm_in6_ifreq {
	struct in6_addr	ifr6_addr;
	uint32_t	ifr6_prefixlen;
	int		ifr6_ifindex;
};

#define TUN_READS	64	/* packets per readiness event */

static struct {
	int		 fd, s4, s6, ifindex;
	char		 name[IFNAMSIZ];
	struct event	*ev;
	struct ntm_fw	*fw;
} td = { .fd = -1, .s4 = -1, .s6 = -1 };

static int
ifflags_up(char *err, size_t errlen)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", td.name);
	ifr.ifr_mtu = NTM_INNER_MTU;
	if (ioctl(td.s4, SIOCSIFMTU, &ifr) < 0) {
		snprintf(err, errlen, "%s: MTU: %s", td.name, strerror(errno));
		return -1;
	}
	if (ioctl(td.s4, SIOCGIFFLAGS, &ifr) < 0) {
		snprintf(err, errlen, "%s: flags: %s", td.name, strerror(errno));
		return -1;
	}
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(td.s4, SIOCSIFFLAGS, &ifr) < 0) {
		snprintf(err, errlen, "%s: up: %s", td.name, strerror(errno));
		return -1;
	}
	return 0;
}

static int
addr4(const uint8_t vip[4], char *err, size_t errlen)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", td.name);
	sin->sin_family = AF_INET;
	memcpy(&sin->sin_addr, vip, 4);
	if (ioctl(td.s4, SIOCSIFADDR, &ifr) < 0) {
		snprintf(err, errlen, "%s: IPv4 address: %s", td.name, strerror(errno));
		return -1;
	}
	memset(&sin->sin_addr, 0xff, 4);
	if (ioctl(td.s4, SIOCSIFNETMASK, &ifr) < 0) {
		snprintf(err, errlen, "%s: netmask: %s", td.name, strerror(errno));
		return -1;
	}
	return 0;
}

static int
addr6(const uint8_t vip[16], char *err, size_t errlen)
{
	struct ntm_in6_ifreq r;

	memset(&r, 0, sizeof(r));
	memcpy(&r.ifr6_addr, vip, 16);
	r.ifr6_prefixlen = 128;
	r.ifr6_ifindex = td.ifindex;
	if (ioctl(td.s6, SIOCSIFADDR, &r) < 0) {
		snprintf(err, errlen, "%s: IPv6 address: %s", td.name, strerror(errno));
		return -1;
	}
	return 0;
}

int
agent_tundev_open(struct agent *a, const char *name, char *err, size_t errlen)
{
	struct ifreq ifr;

	if (name == NULL)
		return 0;
	if ((td.fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "--tun: /dev/net/tun: %s", strerror(errno));
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(td.fd, TUNSETIFF, &ifr) < 0) {
		snprintf(err, errlen, "--tun %s: %s%s", name, strerror(errno),
		    errno == EPERM ? " (TUN mode needs root or CAP_NET_ADMIN)" : "");
		goto fail;
	}
	snprintf(td.name, sizeof(td.name), "%s", ifr.ifr_name);
	if ((td.s4 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    (td.s6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    (td.ifindex = (int)if_nametoindex(td.name)) == 0) {
		snprintf(err, errlen, "--tun %s: %s", td.name, strerror(errno));
		goto fail;
	}
	if ((a->has_vip4 && addr4(a->vip4, err, errlen) < 0) ||
	    ifflags_up(err, errlen) < 0 ||
	    (a->has_vip6 && addr6(a->vip6, err, errlen) < 0))
		goto fail;
	a->tun_mode = 1;
	return 0;
fail:
	agent_tundev_stop(a);
	return -1;
}

/* A peer's host routes through the interface (add 1) or not (add 0). */
void
agent_tundev_route(struct agent *a, struct tun *t, int add)
{
	if (td.fd < 0)
		return;
	if (t->has4) {
		struct rtentry rt;
		struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;

		memset(&rt, 0, sizeof(rt));
		dst->sin_family = AF_INET;
		memcpy(&dst->sin_addr, t->pv4, 4);
		((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
		memset(&((struct sockaddr_in *)&rt.rt_genmask)->sin_addr, 0xff, 4);
		rt.rt_flags = RTF_UP | RTF_HOST;
		rt.rt_dev = td.name;
		if (ioctl(td.s4, add ? SIOCADDRT : SIOCDELRT, &rt) < 0 &&
		    errno != EEXIST && errno != ESRCH)
			log_warnx("%s: route %s for %s: %s", td.name, add ? "add" : "delete",
			    t->vip4, strerror(errno));
	}
	if (t->has6) {
		struct in6_rtmsg rt;

		memset(&rt, 0, sizeof(rt));
		memcpy(&rt.rtmsg_dst, t->pv6, 16);
		rt.rtmsg_dst_len = 128;
		rt.rtmsg_flags = RTF_UP | RTF_HOST;
		rt.rtmsg_metric = 1;
		rt.rtmsg_ifindex = td.ifindex;
		if (ioctl(td.s6, add ? SIOCADDRT : SIOCDELRT, &rt) < 0 &&
		    errno != EEXIST && errno != ESRCH)
			log_warnx("%s: route %s for %s: %s", td.name, add ? "add" : "delete",
			    t->vip6, strerror(errno));
	}
}

/*
 * The TCP segments lately sent into each tunnel, sent once more when a new
 * path is confirmed (a move, or relayed <-> punched): what the old path
 * lost then reaches the peer at once, and the kernels' TCP on both ends
 * recover from the copies' ACKs and SACKs instead of waiting out a
 * retransmission timer (200 ms at least, doubled on each loss). A copy of
 * a segment that did arrive is harmless to TCP; nothing else is ever sent
 * twice. Both ends do it: the peer's copies carry the ACKs the old path
 * lost. At most REPLAY_PKTS per tunnel, none older than REPLAY_MS, and
 * the memory only once a tunnel carries TCP.
 */
#define REPLAY_PKTS	32
#define REPLAY_MS	2000

struct replay {
	int	next, n;
	struct {
		int64_t	at;
		size_t	len;
		uint8_t	b[NTM_INNER_MTU];
	} p[REPLAY_PKTS];
};

static void
replay_keep(struct tun *t, const uint8_t *b, size_t len)
{
	struct replay *r = t->replay;

	if (r == NULL && (r = t->replay = calloc(1, sizeof(*r))) == NULL)
		return;
	r->p[r->next].at = agent_now_ms();
	r->p[r->next].len = len;
	memcpy(r->p[r->next].b, b, len);
	r->next = (r->next + 1) % REPLAY_PKTS;
	if (r->n < REPLAY_PKTS)
		r->n++;
}

void
agent_tundev_path_confirmed(struct agent *a, struct tun *t)
{
	struct replay *r = t->replay;
	int64_t now = agent_now_ms();
	int sent = 0;

	if (r == NULL || r->n == 0)
		return;
	/* oldest first, as the kernel sent them */
	for (int k = r->n; k > 0; k--) {
		int i = (r->next - k + REPLAY_PKTS) % REPLAY_PKTS;

		if (now - r->p[i].at <= REPLAY_MS &&
		    agent_tun_send(t, r->p[i].b, r->p[i].len) == 0)
			sent++;
	}
	r->n = 0;
	if (sent) {
		a->tundev_replayed += (uint64_t)sent;
		log_debug("tunnel %s: new path works: %d recent TCP segment%s sent again",
		    t->peer, sent, sent == 1 ? "" : "s");
	}
}

/* From the kernel: into the tunnel of the destination's peer. */
static void
on_tundev(evutil_socket_t fd, short what, void *arg)
{
	struct agent *a = arg;
	uint8_t b[NTM_INNER_MTU + 1];

	agent_batch_begin(a);
	for (int k = 0; k < TUN_READS; k++) {
		ssize_t n = read(fd, b, sizeof(b));
		struct tun *t = NULL;
		int v;

		if (n <= 0)
			break;
		a->tundev_out++;
		v = b[0] >> 4;
		if (n > NTM_INNER_MTU || (v == 4 && n < 20) || (v == 6 && n < 40) ||
		    (v != 4 && v != 6) || !agent_ip_is_ours(a, v, v == 4 ? b + 12 : b + 8)) {
			a->tundev_noroute++;
			continue;
		}
		for (int i = 0; i < a->ntun && t == NULL; i++)
			if (v == 4 ? a->tuns[i]->has4 && !memcmp(a->tuns[i]->pv4, b + 16, 4) :
			    a->tuns[i]->has6 && !memcmp(a->tuns[i]->pv6, b + 24, 16))
				t = a->tuns[i];
		if (t == NULL || agent_tun_send(t, b, (size_t)n) < 0) {
			a->tundev_noroute++;	/* no tunnel (yet): as a link would */
			continue;
		}
		ntm_fw_out(td.fw, b, (size_t)n, agent_now_ms());
		if (v == 4 ? b[9] == IPPROTO_TCP : b[6] == IPPROTO_TCP)
			replay_keep(t, b, (size_t)n);
	}
	agent_batch_end(a);
}

int
agent_tundev_start(struct agent *a)
{
	if (td.fd < 0)
		return 0;
	if ((td.ev = event_new(a->base, td.fd, EV_READ | EV_PERSIST, on_tundev, a)) == NULL ||
	    event_add(td.ev, NULL) < 0)
		return -1;
	log_info("TUN mode: %s holds %s %s", td.name, a->s.vip4, a->s.vip6);
	return 0;
}

/* To the kernel: an authentic inner packet for our vIPs. */
void
agent_tundev_input(struct agent *a, struct tun *t, const uint8_t *p, size_t len)
{
	if (ntm_fw_in(td.fw, t->peer, p, len, agent_now_ms()) == NTM_FW_DROP) {
		a->tundev_denied++;
		return;
	}
	if (write(td.fd, p, len) == (ssize_t)len)
		a->tundev_in++;
	else
		a->inner_drops++;
}

const char *
agent_tundev_name(void)
{
	return td.fd >= 0 ? td.name : NULL;
}

void
agent_tundev_stop(struct agent *a)
{
	if (td.ev)
		event_free(td.ev);
	td.ev = NULL;
	if (td.fd >= 0)
		close(td.fd);	/* the kernel removes the interface and its routes */
	if (td.s4 >= 0)
		close(td.s4);
	if (td.s6 >= 0)
		close(td.s6);
	td.fd = td.s4 = td.s6 = -1;
	ntm_fw_free(td.fw);
	td.fw = NULL;
}

int
agent_tundev_allow(const char *const *rules, int n, char *err, size_t errlen)
{
	struct ntm_fw_rule r;
	uint64_t seed;
	char e[256], buf[300];

	if (td.fd < 0)
		return 0;
	ntm_random(&seed, sizeof(seed));
	if (td.fw == NULL && (td.fw = ntm_fw_new(seed)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (ntm_fw_rule_parse(&r, rules[i], e, sizeof(e)) < 0 ||
		    ntm_fw_add(td.fw, &r) < 0) {
			snprintf(err, errlen, "--allow %s", e);
			return -1;
		}
		log_info("TUN mode: let in %s", ntm_fw_rule_str(&r, buf, sizeof(buf)));
	}
	return 0;
}

int
agent_tundev_drop_caps(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	FILE *f;
	int last = CAP_LAST_CAP;

	if (td.fd < 0 || geteuid() != 0)
		return 0;
	/* The running kernel may know more capabilities than these headers. */
	if ((f = fopen("/proc/sys/kernel/cap_last_cap", "r")) != NULL) {
		if (fscanf(f, "%d", &last) != 1)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	for (int c = 0; c <= last; c++)
		if (c != CAP_NET_ADMIN && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 &&
		    errno != EINVAL) {
			snprintf(err, errlen, "cannot drop capability %d: %s", c, strerror(errno));
			return -1;
		}
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	/* The profile's owner, when that is not root: its files stay its own.
	 * Keep the permitted set across the change of uid, then narrow it. */
	if (uid != 0 && (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 ||
	    setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0 || prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)) {
		snprintf(err, errlen, "cannot become uid %lu: %s", (unsigned long)uid,
		    strerror(errno));
		return -1;
	}
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = 1u << CAP_NET_ADMIN;
	if (syscall(SYS_capset, &h, d) < 0) {
		snprintf(err, errlen, "cannot keep CAP_NET_ADMIN only: %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "no_new_privs: %s", strerror(errno));
		return -1;
	}
	return 0;
}
