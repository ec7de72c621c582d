/*
 * discover.h - finding the DC of a domain through DNS (discover.c), for
 * the DC (other DCs) and the CS (its recipients' DCs). Runs on the
 * daemon's libevent loop; nothing blocks, and a callback never runs from
 * inside the call that started it.
 */
#ifndef NTM_DISCOVER_H
#define NTM_DISCOVER_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct disc;
struct event_base;
struct ntm_httpc;

#define DISC_TIMEOUT_MS	2000	/* per c-ares try */
#define DISC_TRIES	2
#define DISC_CACHE_S	60	/* positive answers are reused this long */
#define DISC_CACHE_MAX	64	/* domains cached; the oldest goes first */
#define DISC_PENDING_MAX	256	/* lookups waiting at once; more: NTM_ERR_NOSPACE */

/*
 * The domain of an FQDN: the part after its first label
 * ("alice.dc2.ntm.test" -> "dc2.ntm.test"); NULL if there is no dot or the
 * rest is empty. Borrowed pointer into fqdn.
 */
const char *fqdn_domain(const char *fqdn);

/*
 * Result of disc_lookup. err 0: url is "https://<host>:<port>" (no trailing
 * slash), host the SRV target, addr the IPv4/IPv6 address text it resolved
 * to, and host:port is already pinned to addr on the httpc given to
 * disc_new (ntm_httpc_resolve), so requests to url go there and TLS
 * verifies host. Otherwise url/host/addr are NULL, port 0, and err is
 *   NTM_ERR_NOTFOUND  no such domain / no SRV _ntm._tcp / target has no address
 *   NTM_ERR_TIMEOUT   the resolver did not answer in time
 *   NTM_ERR_UNAVAIL   the resolver failed
 *   NTM_ERR_PROTO     malformed answer
 *   NTM_ERR_NOMEM
 * All strings are borrowed for the call only.
 */
typedef void disc_found_fn(int err, const char *url, const char *host, uint16_t port,
    const char *addr, void *arg);

/*
 * Sets up a c-ares channel on base with cf->resolver (ip:port, required)
 * as the only server; answers are pinned on httpc (may be NULL). NULL on
 * failure, with err filled.
 */
struct disc *disc_new(struct event_base *base, const struct srv_conf *cf,
    struct ntm_httpc *httpc, char *err, size_t errlen);
/* Cancels pending lookups (no callbacks), frees the channel and cache.
 * NULL is fine. */
void disc_free(struct disc *d);

/*
 * Looks up the DC serving domain: SRV _ntm._tcp.<domain>, then A (AAAA if
 * there is no A) of the target. Positive answers are cached DISC_CACHE_S
 * seconds. Bounded: c-ares gives up after DISC_TRIES tries of
 * DISC_TIMEOUT_MS each, per query. cb runs exactly once, later, from the
 * loop (even on a cache hit), unless disc_cancel() or disc_free() cancels
 * it first. Returns 0, or fails at once without calling cb: NTM_ERR_INVAL
 * (bad domain name), NTM_ERR_NOSPACE (DISC_PENDING_MAX waiting),
 * NTM_ERR_STATE (d is NULL: no resolver configured), NTM_ERR_NOMEM.
 */
int  disc_lookup(struct disc *d, const char *domain, disc_found_fn *cb, void *arg);
/* Cancels every pending lookup with this cb and arg (their cb never runs). */
void disc_cancel(struct disc *d, disc_found_fn *cb, void *arg);

/* A failed lookup (err < 0, from disc_lookup or its callback) as an HTTP
 * answer: 404 unknown_domain (DNS says no DC serves domain: no such name,
 * no SRV record, a target without address, or not a DNS name) or 502
 * upstream_unavailable (the resolver failed), with a message naming
 * domain and never the resolver. */
int  disc_status(int err, const char *domain, const char **code, char *msg, size_t msglen);

#endif
