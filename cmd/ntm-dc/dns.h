/*
 * dns.h - the DC's DNS side: the authoritative server for its domain
 * (dns.c) and the discovery of other DCs through a resolver (discover.c).
 *
 * Both run on the daemon's libevent loop (dc->srv->base). Nothing here
 * blocks; every callback runs from the loop, never from inside the call
 * that started it.
 */
#ifndef NTM_DC_DNS_H
#define NTM_DC_DNS_H

#include <stddef.h>
#include <stdint.h>

struct dc;
struct sockaddr;
struct srv;

#define DC_DNS_TTL		60	/* seconds, every record served */
#define DC_DISCOVER_TIMEOUT_MS	2000	/* per c-ares try */
#define DC_DISCOVER_TRIES	2
#define DC_DISCOVER_CACHE_S	60	/* positive answers are reused this long */
#define DC_DISCOVER_CACHE_MAX	64	/* domains cached; the oldest goes first */
#define DC_DISCOVER_PENDING_MAX	256	/* lookups waiting at once; more: NTM_ERR_NOSPACE */

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

/* ---- discover.c: finding another DC -------------------------------------- */

/*
 * The domain of an FQDN: the part after its first label
 * ("alice.dc2.ntm.test" -> "dc2.ntm.test"); NULL if there is no dot or the
 * rest is empty. Borrowed pointer into fqdn.
 */
const char *fqdn_domain(const char *fqdn);
/* 1 if domain is this DC's own (conf name, case-insensitive), else 0. */
int  dc_domain_is_local(const struct dc *dc, const char *domain);

/*
 * Result of dc_discover. err 0: url is "https://<host>:<port>" (no trailing
 * slash), host the SRV target, addr the IPv4/IPv6 address text it resolved
 * to, and host:port is already pinned to addr on dc->httpc
 * (ntm_httpc_resolve), so requests to url go there and TLS verifies host.
 * Otherwise url/host/addr are NULL, port 0, and err is
 *   NTM_ERR_NOTFOUND  no such domain / no SRV _ntm._tcp / target has no address
 *   NTM_ERR_TIMEOUT   the resolver did not answer in time
 *   NTM_ERR_UNAVAIL   no resolver configured, or the resolver failed
 *   NTM_ERR_PROTO     malformed answer
 *   NTM_ERR_NOMEM
 * All strings are borrowed for the call only.
 */
typedef void dc_found_fn(int err, const char *url, const char *host, uint16_t port,
    const char *addr, void *arg);

/*
 * Looks up the DC serving domain through `resolver`: SRV _ntm._tcp.<domain>,
 * then A (AAAA if there is no A) of the target. Positive answers are cached
 * DC_DISCOVER_CACHE_S seconds. Bounded: c-ares gives up after
 * DC_DISCOVER_TRIES tries of DC_DISCOVER_TIMEOUT_MS each, per query.
 * cb runs exactly once, later, from the loop (even on a cache hit), unless
 * dc_discover_cancel() or dc_discover_free() cancels it first.
 * Returns 0, or fails at once without calling cb: NTM_ERR_INVAL (bad domain
 * name), NTM_ERR_NOSPACE (DC_DISCOVER_PENDING_MAX waiting), NTM_ERR_UNAVAIL
 * (discovery not set up), NTM_ERR_NOMEM.
 */
int  dc_discover(struct dc *dc, const char *domain, dc_found_fn *cb, void *arg);
/* Cancels every pending lookup with this cb and arg (their cb never runs).
 * For callers whose request went away. */
void dc_discover_cancel(struct dc *dc, dc_found_fn *cb, void *arg);

/*
 * Sets up the c-ares channel on dc->srv->base with `resolver` as the only
 * server. Without `resolver` it returns 0 and dc_discover answers
 * NTM_ERR_UNAVAIL. On failure fills err, returns -1.
 */
int  dc_discover_init(struct dc *dc, char *err, size_t errlen);
/* Cancels pending lookups (no callbacks), frees the channel and cache. */
void dc_discover_free(struct dc *dc);
/* A failed dc_discover result (err < 0) as an HTTP answer for the caller:
 * 404 unknown_peer (no SRV record) or 502 upstream_unavailable, with a
 * message naming domain. */
int  dc_discover_status(int err, const char *domain, const char **code, char *msg,
    size_t msglen);

/* The "resolve" subcommand: ntm-dc [-f FILE] resolve DOMAIN [--json]. */
int  dc_cmd_resolve(struct srv *s, int argc, char *argv[]);

#endif
