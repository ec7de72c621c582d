/*
 * fw.h - TUN mode's inbound filter: which authentic packets from peers the
 * agent writes to the kernel. I/O free: packets and a time in, a verdict out.
 *
 * Default deny, as Nebula's firewall: a packet from a peer passes when it
 * belongs to a flow this host opened (a packet it sent from the kernel to
 * that peer, seen by ntm_fw_out), when it is an ICMP error (unreachable,
 * too big, time exceeded, parameter problem: path MTU discovery needs them),
 * or when a rule allows it:
 *
 *   PORT[/tcp|/udp]   new TCP connections or UDP datagrams to that port
 *                     (both protocols without the suffix)
 *   icmp              echo requests (ping), both families
 *   all               everything
 *   PEER:RULE         any of the above, only from the peer FQDN PEER
 *
 * Flows live in a fixed table (NTM_FW_BUCKETS x NTM_FW_WAYS; the oldest of
 * a bucket gives way), refreshed by every packet in either direction, and
 * expire after NTM_FW_TCP_MS / NTM_FW_UDP_MS / NTM_FW_ICMP_MS without one.
 * Only the host's own packets make flows: a peer cannot fill the table.
 * Later fragments (no ports to judge) pass only an "all" rule.
 */
#ifndef NTM_FW_H
#define NTM_FW_H

#include <stddef.h>
#include <stdint.h>

#include "ntm-core.h"

#define NTM_FW_RULES_MAX	64
#define NTM_FW_BUCKETS		4096
#define NTM_FW_WAYS		4
#define NTM_FW_TCP_MS		(2 * 3600 * 1000)
#define NTM_FW_UDP_MS		(180 * 1000)
#define NTM_FW_ICMP_MS		(30 * 1000)

enum ntm_fw_proto {
	NTM_FW_TCPUDP = 0,	/* PORT without a suffix */
	NTM_FW_TCP = 6,
	NTM_FW_UDP = 17,
	NTM_FW_ECHO = 1,	/* "icmp": echo requests */
	NTM_FW_ALL = 255,	/* "all" */
};

struct ntm_fw_rule {
	char		 peer[NTM_NAME_MAX + 1];	/* "" for any peer */
	uint8_t		 proto;				/* enum ntm_fw_proto */
	uint16_t	 port;				/* TCP/UDP rules */
};

/* What ntm_fw_in decided, and why. */
enum ntm_fw_verdict {
	NTM_FW_DROP = 0,
	NTM_FW_PASS_FLOW,	/* a flow this host opened */
	NTM_FW_PASS_RULE,	/* a rule */
	NTM_FW_PASS_ICMPERR,	/* an ICMP error */
};

struct ntm_fw;

/* Parses one rule (the syntax above) into *r: 0, or NTM_ERR_INVAL with err
 * naming what is wrong. */
int ntm_fw_rule_parse(struct ntm_fw_rule *r, const char *s, char *err, size_t errlen);
/* The rule as the user writes it, into buf. */
const char *ntm_fw_rule_str(const struct ntm_fw_rule *r, char *buf, size_t cap);

/* A filter with no rule and no flow; seed varies the flow table's hash.
 * NULL when out of memory. Free with ntm_fw_free. */
struct ntm_fw *ntm_fw_new(uint64_t seed);
void ntm_fw_free(struct ntm_fw *fw);
/* Adds a rule (copied): 0, or NTM_ERR_NOSPACE past NTM_FW_RULES_MAX. */
int ntm_fw_add(struct ntm_fw *fw, const struct ntm_fw_rule *r);

/* A packet this host sends to a peer (from the kernel, n bytes at p): opens
 * or refreshes its flow. Packets that do not parse are ignored. */
void ntm_fw_out(struct ntm_fw *fw, const uint8_t *p, size_t n, int64_t now_ms);
/* A packet from peer (its FQDN): whether it may reach the kernel. */
enum ntm_fw_verdict ntm_fw_in(struct ntm_fw *fw, const char *peer, const uint8_t *p,
    size_t n, int64_t now_ms);
/* Flows in the table that have not expired at now_ms. */
size_t ntm_fw_flows(const struct ntm_fw *fw, int64_t now_ms);

#endif
