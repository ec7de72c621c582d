/*
 * dns.h - the DC's DNS side: the authoritative server for its domain
 * (dns.c); other DCs are found through a resolver by cmd/common/discover.c.
 *
 * Both run on the daemon's libevent loop (dc->srv->base). Nothing here
 * blocks; every callback runs from the loop, never from inside the call
 * that started it.
 */
#ifndef NTM_DC_DNS_H
#define NTM_DC_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "discover.h"

struct dc;
struct sockaddr;
struct srv;

#define DC_DNS_TTL		60	/* seconds, every record served */

/* ---- dns.c: the authoritative server ------------------------------------ */

/*
 * Binds a UDP socket to dns_listen and serves the DC's domain (conf name):
 * SOA, NS, A/AAAA of the domain name itself, SRV _ntm._tcp / _ntm._udp and
 * A/AAAA of each client FQDN (its vIPs); NXDOMAIN for other names inside the
 * domain, REFUSED outside it. Without dns_listen it does nothing and returns
 * 0. Under -n (dc->srv->check_only) it only checks the configuration.
 * On failure fills err with one line and returns -1.
 */
int  dc_dns_start(struct dc *dc, char *err, size_t errlen);
/* Closes the socket. Safe if never started. */
void dc_dns_stop(struct dc *dc);
/*
 * udp.c tells the DNS server where the registration socket is bound (the
 * address actually bound, port included). From then on _ntm._udp.<domain>
 * is answered with that port, and that address is the DC name's A/AAAA when
 * dns_addr4/dns_addr6 are not set. Before the call (or with sa NULL) there
 * is no _ntm._udp record. Copies sa.
 */
void dc_dns_set_udp(struct dc *dc, const struct sockaddr *sa);

/* 1 if domain is this DC's own (conf name, case-insensitive), else 0. */
int  dc_domain_is_local(const struct dc *dc, const char *domain);

/* The "resolve" subcommand: ntm-dc [-f FILE] resolve DOMAIN [--json]. */
extern const struct cmd_entry dc_resolve_entry;

#endif
