/*
 * rs.h - ntm-rs, the Relay Server: UDP sockets on the libevent loop feed
 * the I/O-free forwarding core of lib/core/relay.c; a one-second timer expires
 * idle sessions and writes the status file that `ntm-rs status` prints.
 */
#ifndef NTM_RS_H
#define NTM_RS_H

#include <netinet/in.h>

#include "relay.h"
#include "srv.h"

#define RS_SOCKS_MAX	2		/* udp_listen, udp_listen6 */
#define RS_BATCH	32		/* datagrams per recvmmsg/sendmmsg */
#define RS_BATCHES	8		/* batches per readiness event (fairness) */
#define RS_STATUS_FILE	"status.json"
#define RS_STATUS_MAX_SESSIONS 1000	/* sessions listed in the status file */
#define RS_ATTACK_LOG_S	10		/* binds refused or answered with cookies:
					 * one summary line at most this often */

struct rs_sock {
	int		 fd;
	int		 family;	/* AF_INET or AF_INET6 */
	int		 dual;		/* AF_INET6 that also takes IPv4 */
	int		 gro;		/* UDP_GRO is on: runs arrive coalesced */
	uint16_t	 port;		/* bound port, host order */
	char		 name[64];	/* bound "addr:port" */
	struct event	*ev;
	/* The other port (probe_alt_port): the filtering test's answers go
	 * out from it (docs/protocol.md §4.7); -1: none. */
	int		 alt_fd;
	uint16_t	 alt_port;	/* host order; 0: none */
	char		 alt_name[64];
	struct event	*alt_ev;
};

struct rs {
	struct srv		*srv;
	struct ntm_relay	*relay;
	struct ntm_probe_srv	*probe;		/* reflection probes; NULL: probe_rate 0 */
	uint64_t		 probes_off;	/* probes not answered: probe_rate 0 */
	struct rs_sock		 socks[RS_SOCKS_MAX];
	int			 nsocks;
	/* The other address (probe_alt_addr): the filtering test's answers
	 * to probes of its family go out from it; -1: none. */
	int			 altaddr_fd;
	struct sockaddr_storage	 altaddr;	/* bound address:port */
	char			 altaddr_name[64];
	struct event		*altaddr_ev;
	struct event		*tick;
	char			*status_path;
	uint64_t		 send_errors, recv_errors;
	uint64_t		 gso_sends, gro_recvs;	/* messages carrying runs */
	int			 gso_off;	/* the kernel refused UDP GSO */
	struct ntm_relay_stats	 logged;	/* counters at the last attack summary */
	int64_t			 logged_ms;	/* when it was logged (or checked) */
	int			 attacked;	/* the last summary saw refusals */
};

/* udp.c */
int  rs_udp_open(struct rs *rs, char *err, size_t errlen);
void rs_udp_close(struct rs *rs);
int64_t rs_now_ms(void);

/* status.c */
int  rs_status_write(struct rs *rs);
/* GET /metrics: the same counters (srv_spec.metrics). */
struct ntm_prom;
void rs_metrics(struct srv *s, struct ntm_prom *p);
extern const struct cmd_entry rs_status_entry;

#endif
