/* srvconf.c - the one configuration file format of the servers (ntm.conf(5)). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "common.h"
#include "ntm-rt.h"
#include "probe.h"

enum { R_AS = 1 << NTM_ROLE_AS, R_DC = 1 << NTM_ROLE_DC, R_RS = 1 << NTM_ROLE_RS,
    R_CS = 1 << NTM_ROLE_CS, R_ALL = R_AS | R_DC | R_RS | R_CS };

#define S(k, roles) { #k, NTM_C_STR, offsetof(struct srv_conf, k), roles, 0, 0 }
#define I(k, roles, lo, hi) { #k, NTM_C_INT, offsetof(struct srv_conf, k), roles, lo, hi }
static const struct {
	const char	*key;
	enum ntm_ctype	 type;
	size_t		 off;
	unsigned	 roles;
	long		 min, max;
} keys[] = {
	S(name, R_ALL), S(state_dir, R_ALL), S(listen, R_ALL), S(tls_cert, R_ALL),
	S(tls_key, R_ALL), S(pidfile, R_ALL), S(identity, R_ALL),
	S(cert, R_DC | R_RS | R_CS), S(db, R_AS | R_DC | R_CS), S(database, R_AS),
	S(as_url, R_DC | R_RS | R_CS), S(as_key, R_DC | R_RS | R_CS),
	S(ca_file, R_DC | R_RS | R_CS), S(ca_cert, R_AS), S(ca_key, R_AS),
	S(vip4_prefix, R_DC), S(vip6_prefix, R_DC),
	S(dns_listen, R_DC), S(dns_addr4, R_DC), S(dns_addr6, R_DC), S(resolver, R_DC | R_CS),
	S(udp_listen, R_DC | R_RS), S(relay_name, R_DC), S(relay_addr4, R_DC),
	S(relay_addr6, R_DC), S(relay_key, R_DC), S(cs_url, R_AS | R_DC), S(revoke_url, R_AS),
	S(udp_listen6, R_RS), I(max_sessions, R_RS, 1, 1000000),
	I(idle_timeout_s, R_RS, 5, 86400), I(session_pps, R_RS, 1, 10000000),
	I(keepalive_s, R_DC, 1, 3600), I(direction_ttl_s, R_DC, 5, 3600),
	I(token_lifetime, R_AS, 60, 30L * 86400),
	I(as_timeout_ms, R_DC | R_CS, 100, 120000),
	I(quota_bytes, R_CS, 1, (1L << 50)), I(object_ttl_s, R_CS, 1, 365L * 86400),
	I(gc_interval_s, R_CS, 1, 86400), I(upload_idle_s, R_CS, 1, 30L * 86400),
	I(chunk_wait_max, R_CS, 0, 1000000), I(chunk_wait_per_addr, R_CS, 0, 1000000),
	I(chunk_wait_ms, R_CS, 1, 600000),
	S(public_url, R_CS), I(announce_retry_max_s, R_CS, 1, 86400),
	I(dns_rate, R_DC, 0, 1000000), I(dns_rate_total, R_DC, 1, 10000000),
	S(user, R_ALL),
	I(client_idle_days, R_DC, 0, 36500), I(max_devices, R_DC, 0, 1000000),
	I(xkey_orphan_s, R_DC, 1, 7L * 86400),
	I(server_cert_days, R_AS, 1, 3650),
	I(cert_renew_before_s, R_DC | R_RS | R_CS, 0, 3650L * 86400),
	I(login_rate, R_DC, 1, 1000000), I(login_rate_prefix, R_DC, 1, 1000000),
	I(login_inflight, R_DC, 1, 100000), I(login_queue, R_DC, 0, 1000000),
	I(login_queue_prefix, R_DC, 1, 100000),
	I(probe_rate, R_DC | R_RS, 0, 1000000), I(punch, R_DC, 0, 1),
	I(probe_alt_port, R_RS, 0, 65535), S(probe_alt_addr, R_RS),
	I(http_max_conns, R_ALL, 1, 1000000), I(http_max_conns_per_addr, R_ALL, 1, 1000000),
	I(http_header_timeout_s, R_ALL, 1, 3600), I(http_body_timeout_s, R_ALL, 1, 3600),
	I(http_body_min_rate, R_ALL, 1, 1L << 30), I(http_body_mem_max, R_ALL, 1, 1L << 40),
	I(bind_rate, R_RS, 2, 1000000),
	I(bind_rate_source, R_RS, 1, 1000000),
	I(bind_rate_prefix, R_RS, 1, 1000000),
	I(client_sessions, R_RS, 1, 1000000),
	I(account_sessions, R_RS, 1, 1000000),
	I(dc_session_share, R_RS, 1, 100),
	I(signed_rate, R_ALL, 1, 1000000), I(signed_burst, R_ALL, 1, 1000000),
	I(replay_per_peer, R_ALL, 16, 1L << 20),
	S(metrics_token_file, R_ALL),
};
#undef S
#undef I

const char *
srv_conf_default(int role)
{
	static char buf[64];
	const char *env = getenv("NTM_CONF");

	if (env && *env)
		return env;
	snprintf(buf, sizeof(buf), "/etc/ntm/%s.conf", ntm_role_name(role));
	return buf;
}

static void
set_default(char **field, const char *dir, const char *file)
{
	if (*field == NULL)
		*field = xasprintf("%s/%s", dir, file);
}

/* DC: dns_listen / resolver are numeric addr:port, dns_addr4/6 addresses. */
static int
check_dns_keys(const struct srv_conf *c, const char *path, char *err, size_t errlen)
{
	char host[64];
	uint16_t port;
	unsigned char bin[16];

	if (c->dns_listen && (split_hostport(c->dns_listen, host, sizeof(host), &port) < 0 ||
	    (inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1))) {
		snprintf(err, errlen, "%s: dns_listen '%s' is not ip:port", path, c->dns_listen);
		return -1;
	}
	if (c->resolver && (split_hostport(c->resolver, host, sizeof(host), &port) < 0 ||
	    port == 0 ||
	    (inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1))) {
		snprintf(err, errlen, "%s: resolver '%s' is not ip:port", path, c->resolver);
		return -1;
	}
	if (c->dns_addr4 && inet_pton(AF_INET, c->dns_addr4, bin) != 1) {
		snprintf(err, errlen, "%s: dns_addr4 '%s' is not an IPv4 address", path,
		    c->dns_addr4);
		return -1;
	}
	if (c->dns_addr6 && inet_pton(AF_INET6, c->dns_addr6, bin) != 1) {
		snprintf(err, errlen, "%s: dns_addr6 '%s' is not an IPv6 address", path,
		    c->dns_addr6);
		return -1;
	}
	return 0;
}

/* udp_listen (DC, RS) is numeric ip:port; the DC's relay_* keys go together. */
static int
check_rt_keys(struct srv_conf *c, const char *path, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (c->udp_listen && ntm_sa_parse(&ss, &len, c->udp_listen) < 0) {
		snprintf(err, errlen, "%s: udp_listen '%s' is not ip:port ([ip6]:port for IPv6)",
		    path, c->udp_listen);
		return -1;
	}
	if (c->udp_listen6 && (ntm_sa_parse(&ss, &len, c->udp_listen6) < 0 ||
	    ss.ss_family != AF_INET6)) {
		snprintf(err, errlen, "%s: udp_listen6 '%s' is not IPv6 [ip]:port", path,
		    c->udp_listen6);
		return -1;
	}
	if (c->relay_addr4 && (ntm_sa_parse(&ss, &len, c->relay_addr4) < 0 ||
	    ss.ss_family != AF_INET)) {
		snprintf(err, errlen, "%s: relay_addr4 '%s' is not IPv4 ip:port", path,
		    c->relay_addr4);
		return -1;
	}
	if (c->relay_addr6 && (ntm_sa_parse(&ss, &len, c->relay_addr6) < 0 ||
	    ss.ss_family != AF_INET6)) {
		snprintf(err, errlen, "%s: relay_addr6 '%s' is not IPv6 [ip]:port", path,
		    c->relay_addr6);
		return -1;
	}
	if (c->probe_alt_addr && srv_probe_alt_addr(c->probe_alt_addr, &ss, &len) < 0) {
		snprintf(err, errlen, "%s: probe_alt_addr '%s' is not an IP address or ip:port",
		    path, c->probe_alt_addr);
		return -1;
	}
	if (c->relay_name && !ntm_valid_dnsname(c->relay_name)) {
		snprintf(err, errlen, "%s: relay_name '%s' is not a valid DNS name", path,
		    c->relay_name);
		return -1;
	}
	if (c->relay_key) {
		if (ntm_b64_decode_exact(c->relay_pk, sizeof(c->relay_pk), c->relay_key) < 0) {
			snprintf(err, errlen, "%s: relay_key is not a base64url Ed25519 "
			    "public key", path);
			return -1;
		}
		c->has_relay_pk = 1;
	}
	if ((c->relay_addr4 || c->relay_addr6 || c->relay_name || c->relay_key) &&
	    (!c->relay_name || !c->relay_key || !(c->relay_addr4 || c->relay_addr6))) {
		snprintf(err, errlen, "%s: relay_name, relay_key and relay_addr4 and/or "
		    "relay_addr6 go together", path);
		return -1;
	}
	return 0;
}

int
srv_probe_alt_addr(const char *v, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	if (ntm_sa_parse(ss, len, v) == 0) {
		ntm_sa_unmap(ss, len);
		return 0;
	}
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, v, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, v, &s6->sin6_addr) == 1 &&
	    !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		s6->sin6_family = AF_INET6;
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}

/*
 * AS: cs_url (the CSs) and revoke_url (the DCs and RSs) are each one or
 * more https://HOST[:PORT] URLs separated by commas (blanks around each
 * ignored), the servers revocations are pushed to. Each goes into its list
 * without trailing '/', the name push.c keeps its cursor under; the same
 * server twice is refused.
 */
static int
split_urls(const char *key, const char *src, char **list, size_t *count, size_t max,
    const char *path, char *err, size_t errlen)
{
	const char *p, *end;
	size_t len, i;
	char *u;

	for (p = src;; p = end + 1) {
		end = p + strcspn(p, ",");
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		len = (size_t)(end - p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0) {
			snprintf(err, errlen, "%s: %s has an empty entry (a stray comma?)",
			    path, key);
			return -1;
		}
		if (*count == max) {
			snprintf(err, errlen, "%s: %s lists more than %zu servers", path, key,
			    max);
			return -1;
		}
		u = list[(*count)++] = xasprintf("%.*s", (int)len, p);
		if (!ntm_valid_push_url(u)) {
			snprintf(err, errlen, "%s: %s '%s' is not an https://HOST[:PORT] URL",
			    path, key, u);
			return -1;
		}
		while (len > 0 && u[len - 1] == '/')
			u[--len] = '\0';
		for (i = 0; i + 1 < *count; i++)
			if (strcmp(list[i], u) == 0) {
				snprintf(err, errlen, "%s: %s names '%s' twice", path, key, u);
				return -1;
			}
		if (*end == '\0')
			return 0;
	}
}

#define NEED(k) do { if (c->k == NULL) { \
	snprintf(err, errlen, "%s: missing required key '%s'", path, #k); return -1; } } while (0)

static void
conf_defaults(struct srv_conf *c)
{
	c->token_lifetime = 86400;
	c->as_timeout_ms = 5000;
	c->keepalive_s = 15;
	c->direction_ttl_s = 60;
	c->max_sessions = 1024;
	c->idle_timeout_s = 120;
	c->session_pps = 200000;
	c->quota_bytes = 1L << 30;
	c->object_ttl_s = 7L * 86400;
	c->gc_interval_s = 60;
	c->announce_retry_max_s = 300;
	c->upload_idle_s = 3600;
	c->chunk_wait_max = 1024;
	c->chunk_wait_per_addr = 16;
	c->chunk_wait_ms = 15000;
	c->dns_rate = 20;
	c->dns_rate_total = 20000;
	c->client_idle_days = 90;
	c->max_devices = 16;
	c->xkey_orphan_s = 3600;
	c->server_cert_days = 30;
	c->login_rate = 2;
	c->login_rate_prefix = 20;
	c->login_inflight = 4;
	c->login_queue = 512;
	c->login_queue_prefix = 4;
	c->probe_rate = NTM_PROBE_RATE;
	c->probe_alt_port = -1;		/* the relay port + 1 */
	c->punch = 1;
	c->http_max_conns = NTM_HTTPD_MAX_CONNS;
	c->http_max_conns_per_addr = NTM_HTTPD_MAX_CONNS_PER_ADDR;
	c->http_header_timeout_s = NTM_HTTPD_HEADER_TIMEOUT_S;
	c->http_body_timeout_s = NTM_HTTPD_BODY_TIMEOUT_S;
	c->http_body_min_rate = NTM_HTTPD_BODY_MIN_RATE;
	c->http_body_mem_max = NTM_HTTPD_BODY_MEM_MAX;
	c->bind_rate = 2000;
	c->bind_rate_source = 20;
	c->bind_rate_prefix = 100;
	c->client_sessions = 64;
	c->account_sessions = 64;
	c->dc_session_share = 50;
	c->signed_rate = NTM_HTTPD_SIGNED_RATE;
	c->signed_burst = NTM_HTTPD_SIGNED_BURST;
	c->replay_per_peer = NTM_HTTPD_REPLAY_PER_PEER;
}

/* The DC's own keys: database, AS URL, virtual prefixes, DNS. */
static int
check_dc(struct srv_conf *c, const char *path, char *err, size_t errlen)
{
	struct ntm_prefix p4, p6;

	set_default(&c->db, c->state_dir, "dc.db");
	NEED(as_url);
	NEED(vip4_prefix);
	NEED(vip6_prefix);
	if (ntm_prefix_parse(&p4, c->vip4_prefix) < 0 || p4.family != AF_INET) {
		snprintf(err, errlen, "%s: vip4_prefix '%s' is not an IPv4 prefix",
		    path, c->vip4_prefix);
		return -1;
	}
	if (ntm_prefix_parse(&p6, c->vip6_prefix) < 0 || p6.family != AF_INET6) {
		snprintf(err, errlen, "%s: vip6_prefix '%s' is not an IPv6 prefix",
		    path, c->vip6_prefix);
		return -1;
	}
	return check_dns_keys(c, path, err, errlen);
}

/* The CS's own keys: database, AS URL, DNS, the URL it names itself by. */
static int
check_cs(struct srv_conf *c, const char *path, char *err, size_t errlen)
{
	set_default(&c->db, c->state_dir, "cs.db");
	NEED(as_url);
	if (check_dns_keys(c, path, err, errlen) < 0)
		return -1;
	if (c->public_url && !ntm_valid_push_url(c->public_url)) {
		snprintf(err, errlen, "%s: public_url '%s' is not an https://HOST[:PORT] "
		    "URL", path, c->public_url);
		return -1;
	}
	/* Announcements name the CS: a wildcard listen names no address. */
	if (c->resolver && c->public_url == NULL &&
	    (strcmp(c->listen_addr, "0.0.0.0") == 0 || strcmp(c->listen_addr, "::") == 0)) {
		snprintf(err, errlen, "%s: listen '%s' names no single address: set "
		    "public_url, the https URL clients reach this CS at", path, c->listen);
		return -1;
	}
	return 0;
}

/* The CS the DC's clients upload to: a URL clients are handed, so the same
 * syntax as a push URL (https, host, port, no credentials). */
static int
check_dc_cs_url(struct srv_conf *c, const char *path, char *err, size_t errlen)
{
	if (c->cs_url && strchr(c->cs_url, ',') != NULL) {
		snprintf(err, errlen, "%s: cs_url '%s': a DC has one cache server, not a list",
		    path, c->cs_url);
		return -1;
	}
	if (c->cs_url && !ntm_valid_push_url(c->cs_url)) {
		snprintf(err, errlen, "%s: cs_url '%s' is not an https://HOST[:PORT] URL", path,
		    c->cs_url);
		return -1;
	}
	return 0;
}

/* as_url: one AS, or several (comma-separated) sharing one store, asked
 * in order, the next when one does not answer. */
static int
split_as_urls(struct srv_conf *c, const char *path, char *err, size_t errlen)
{
	const char *p, *end;
	size_t len, i;
	char *u;

	for (p = c->as_url;; p = end + 1) {
		end = p + strcspn(p, ",");
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		len = (size_t)(end - p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '/'))
			len--;
		if (len == 0) {
			snprintf(err, errlen, "%s: as_url has an empty entry (a stray comma?)",
			    path);
			return -1;
		}
		if (c->as_count == SRV_AS_MAX) {
			snprintf(err, errlen, "%s: as_url lists more than %d servers", path,
			    SRV_AS_MAX);
			return -1;
		}
		u = c->as_list[c->as_count++] = xasprintf("%.*s", (int)len, p);
		if (strncmp(u, "https://", 8) != 0) {
			snprintf(err, errlen, "%s: as_url '%s' must start with https://", path, u);
			return -1;
		}
		for (i = 0; i + 1 < c->as_count; i++)
			if (strcmp(c->as_list[i], u) == 0) {
				snprintf(err, errlen, "%s: as_url names '%s' twice", path, u);
				return -1;
			}
		if (*end == '\0')
			return 0;
	}
}

int
srv_conf_load(struct srv_conf *c, int role, const char *path, char *err, size_t errlen)
{
	struct ntm_citem items[sizeof(keys) / sizeof(keys[0])];
	size_t i, n = 0;

	memset(c, 0, sizeof(*c));
	c->role = role;
	c->path = xstrdup(path);
	conf_defaults(c);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!(keys[i].roles & (1u << role)))
			continue;
		items[n].key = keys[i].key;
		items[n].type = keys[i].type;
		items[n].out = (char *)c + keys[i].off;
		items[n].min = keys[i].min;
		items[n].max = keys[i].max;
		n++;
	}
	if (ntm_conf_load(path, items, n, err, errlen) != 0)
		return -1;

	NEED(name);
	NEED(state_dir);
	NEED(listen);
	if (!ntm_valid_dnsname(c->name)) {
		snprintf(err, errlen, "%s: name '%s' is not a valid DNS name", path, c->name);
		return -1;
	}
	if (split_hostport(c->listen, c->listen_addr, sizeof(c->listen_addr),
	    &c->listen_port) < 0) {
		snprintf(err, errlen, "%s: listen '%s' is not addr:port", path, c->listen);
		return -1;
	}
	set_default(&c->tls_cert, c->state_dir, "tls.crt");
	set_default(&c->tls_key, c->state_dir, "tls.key");
	set_default(&c->identity, c->state_dir, "identity.key");
	if (role == NTM_ROLE_AS) {
		set_default(&c->db, c->state_dir, "as.db");
		set_default(&c->ca_cert, c->state_dir, "ca.crt");
		set_default(&c->ca_key, c->state_dir, "ca.key");
	} else {
		set_default(&c->cert, c->state_dir, "server.cert");
		NEED(as_key);
		if (ntm_b64_decode_exact(c->as_pk, sizeof(c->as_pk), c->as_key) < 0) {
			snprintf(err, errlen, "%s: as_key is not a base64url Ed25519 public key",
			    path);
			return -1;
		}
		c->has_as_pk = 1;
	}
	if (role == NTM_ROLE_DC && check_dc(c, path, err, errlen) < 0)
		return -1;
	if (check_rt_keys(c, path, err, errlen) < 0)
		return -1;
	if (role == NTM_ROLE_CS && check_cs(c, path, err, errlen) < 0)
		return -1;
	if (role == NTM_ROLE_DC && check_dc_cs_url(c, path, err, errlen) < 0)
		return -1;
	if (role == NTM_ROLE_AS && c->revoke_url && split_urls("revoke_url", c->revoke_url,
	    c->revoke_list, &c->revoke_count, SRV_REVOKE_URLS, path, err, errlen) < 0)
		return -1;
	if (role == NTM_ROLE_AS && c->cs_url && split_urls("cs_url", c->cs_url, c->cs_list,
	    &c->cs_count, SRV_CS_MAX, path, err, errlen) < 0)
		return -1;
	/* PostgreSQL is told by its URI's scheme or a conninfo's '='. */
	if (c->database && strcmp(c->database, "sqlite") != 0 &&
	    strncmp(c->database, "postgresql://", 13) != 0 &&
	    strncmp(c->database, "postgres://", 11) != 0 && strchr(c->database, '=') == NULL) {
		snprintf(err, errlen, "%s: database '%.32s' is neither 'sqlite' nor a "
		    "postgresql:// URI or a conninfo (key=value ...)", path, c->database);
		return -1;
	}
	if (c->as_url && split_as_urls(c, path, err, errlen) < 0)
		return -1;
	return 0;
}
#undef NEED

void
srv_conf_free(struct srv_conf *c)
{
	char **strs[] = { &c->path, &c->name, &c->state_dir, &c->listen, &c->tls_cert,
	    &c->tls_key, &c->pidfile, &c->identity, &c->cert, &c->db, &c->database,
	    &c->as_url, &c->cs_url,
	    &c->revoke_url,	    &c->as_key, &c->ca_file, &c->ca_cert, &c->ca_key, &c->vip4_prefix,
	    &c->vip6_prefix, &c->dns_listen, &c->dns_addr4, &c->dns_addr6, &c->resolver,
	    &c->udp_listen, &c->relay_name, &c->relay_addr4, &c->relay_addr6, &c->relay_key,
	    &c->udp_listen6, &c->public_url, &c->user, &c->metrics_token_file,
	    &c->probe_alt_addr };

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	for (size_t i = 0; i < c->cs_count; i++) {
		free(c->cs_list[i]);
		c->cs_list[i] = NULL;
	}
	c->cs_count = 0;
	for (size_t i = 0; i < c->revoke_count; i++) {
		free(c->revoke_list[i]);
		c->revoke_list[i] = NULL;
	}
	c->revoke_count = 0;
	for (size_t i = 0; i < c->as_count; i++) {
		free(c->as_list[i]);
		c->as_list[i] = NULL;
	}
	c->as_count = 0;
}
