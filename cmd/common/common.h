/*
 * common.h - glue shared by the ntm binaries (never by libntm): logging to
 * stderr, secret input, daemon option handling and the server config file.
 */
#ifndef NTM_COMMON_H
#define NTM_COMMON_H

#include <sys/socket.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

#include "ntm.h"

/* ---- log.c: "PROG: level: message" on stderr; routes libntm's hook too --- */
void log_init(const char *prog, int verbose);
const char *log_prog(void);
/* From now on log to syslog (LOG_DAEMON), for a daemon that detached. */
void log_syslog(void);
/* Also hand each message up to max_level (NTM_LOG_*), whatever the
 * verbosity, as "level: text" to fn (NULL: none): a daemon's own log file. */
void log_tee(void (*fn)(int level, const char *line, void *arg), void *arg, int max_level);
void log_warn(const char *fmt, ...) NTM_PRINTF(1, 2);	/* appends strerror(errno) */
void log_warnx(const char *fmt, ...) NTM_PRINTF(1, 2);
void log_info(const char *fmt, ...) NTM_PRINTF(1, 2);
void log_debug(const char *fmt, ...) NTM_PRINTF(1, 2);
/* At level (NTM_LOG_*); and whether a line at level goes anywhere, so a
 * hot path can skip formatting what nobody reads. */
void log_at(int level, const char *fmt, ...) NTM_PRINTF(2, 3);
int  log_enabled(int level);
noreturn void fatal(const char *fmt, ...) NTM_PRINTF(1, 2);
noreturn void fatalx(const char *fmt, ...) NTM_PRINTF(1, 2);

/* ---- secret.c ------------------------------------------------------------ */
/*
 * Reads one secret line into buf (NUL-terminated, newline stripped):
 * from file when given ("-" is stdin), else from a no-echo prompt on the
 * terminal when stdin is a tty (asking twice when confirm is set), else
 * one line from stdin. Returns its length, or -1 with a message printed.
 */
int read_secret(const char *prompt, const char *file, int confirm, char *buf, size_t cap);

/* ---- daemon.c ------------------------------------------------------------ */
struct event_base;
/* SIGINT/SIGTERM end the loop; SIGHUP calls reload(arg) when given;
 * SIGPIPE is ignored. */
int  daemon_signals(struct event_base *base, void (*reload)(void *), void *arg);
void daemon_free_signals(void);
/* Writes "pid\n" atomically. */
int  daemon_pidfile(const char *path);
/*
 * Run as root, becomes user (the setting `user`; nothing when NULL): its
 * groups, gid and uid for good, and no_new_privs. state_dir must already
 * belong to user; what lies directly in it, and db with its -wal, -shm and
 * -journal, are given to user when root's. Run unprivileged, only checks
 * that it runs as that user. -1 with err filled (one line) on failure.
 */
int  daemon_drop_root(const char *user, const char *state_dir, const char *db,
    char *err, size_t errlen);
/* Returns 1 if colour may be used on fd (a tty and NO_COLOR unset). */
int  use_color(int fd);

/* ---- metrics.c: Prometheus families from status JSON ---------------------- */
/*
 * One family read from a status JSON object (a daemon's, the agent's):
 * member key, an integer; or, with label set, an object whose integer
 * members are the samples, each labelled label="member". A key the object
 * lacks (that part is not running) writes nothing.
 */
struct ntm_prom;
struct json_metric {
	const char	*key;
	const char	*name;		/* "ntm_dc_registrations_total" */
	int		 type;		/* enum ntm_prom_type */
	const char	*help;
	const char	*label;
};
void json_metrics(struct ntm_prom *p, json_t *obj, const struct json_metric *rows, size_t n);

/* ---- srvconf.c: the server configuration file (ntm.conf(5)) ------------- */
#define SRV_CS_MAX	16		/* AS: cache servers in cs_url */
#define SRV_REVOKE_URLS	64		/* AS: DCs and RSs in revoke_url */
#define SRV_AS_MAX	8		/* DC, RS, CS: account servers in as_url */

struct srv_conf {
	int	 role;			/* NTM_ROLE_* */
	char	*path;			/* the file it came from */
	char	*name;			/* server DNS name; for a DC, its domain */
	char	*state_dir;
	char	*listen;		/* "addr:port" or "[v6]:port" */
	char	*tls_cert, *tls_key;	/* PEM files served */
	char	*pidfile;
	char	*identity;		/* Ed25519 secret key file */
	char	*cert;			/* AS-issued certificate (b64 text file) */
	char	*db;			/* SQLite file */
	char	*database;		/* AS: "sqlite" (at db), or PostgreSQL: a
					 * postgresql:// URI or a libpq conninfo */
	char	*as_url;		/* DC, CS: https://host:port of the AS */
	char	*as_key;		/* DC, RS, CS: b64 AS public key */
	char	*ca_file;		/* CA bundle that servers' TLS certs chain to */
	char	*ca_cert, *ca_key;	/* AS: the demo CA */
	char	*vip4_prefix, *vip6_prefix;	/* DC */
	char	*dns_listen;		/* DC: ip:port of the DNS server (UDP) */
	char	*dns_addr4, *dns_addr6;	/* DC: A/AAAA of the DC name */
	char	*resolver;		/* DC, CS: ip:port of the resolver finding DCs */
	char	*udp_listen;		/* DC, RS: ip:port of the UDP socket */
	char	*relay_name;		/* DC: the RS named in relay tickets */
	char	*relay_addr4, *relay_addr6;	/* DC: the RS's UDP ip:port per family */
	char	*relay_key;		/* DC: b64 Ed25519 public key of the RS */
	char	*cs_url;		/* DC: the CS of its clients; AS: CSs it pushes to */
	char	*revoke_url;		/* AS: the DCs and RSs it pushes revocations to */
	char	*udp_listen6;		/* RS: [ip6]:port of a second, IPv6-only UDP socket */
	long	 max_sessions;		/* RS: relay sessions at once */
	long	 idle_timeout_s;		/* RS: a session with no traffic is dropped */
	long	 session_pps;		/* RS: packets/s one session may send */
	long	 keepalive_s;		/* DC: registration interval told to clients */
	long	 direction_ttl_s;	/* DC: how long a queued route direction lives */
	long	 token_lifetime;	/* AS: seconds */
	long	 as_timeout_ms;		/* DC, CS: bound on each call to the AS */
	long	 quota_bytes;		/* CS: stored bytes per account */
	long	 object_ttl_s;		/* CS: default and longest object lifetime */
	long	 gc_interval_s;		/* CS: period of the garbage collector */
	long	 upload_idle_s;		/* CS: an unfinished upload idle this long is dropped */
	long	 chunk_wait_max;	/* CS: chunks waiting for a free upload slot */
	long	 chunk_wait_per_addr;	/* CS: the same, from one source address */
	long	 chunk_wait_ms;		/* CS: the longest such wait */
	char	*public_url;		/* CS: the https URL clients reach it at (announced) */
	long	 announce_retry_max_s;	/* CS: longest wait between announcement tries */
	long	 dns_rate;		/* DC: alike DNS answers/s per source prefix (0: off) */
	long	 dns_rate_total;	/* DC: DNS answers/s in all */
	char	*user;			/* all: the user to run as once bound */
	long	 client_idle_days;	/* DC: devices unseen this long are reclaimed */
	long	 max_devices;		/* DC: devices per user (0: any) */
	long	 xkey_orphan_s;		/* DC: a temporal key with no key object this long goes */
	long	 server_cert_days;	/* AS: lifetime of server certificates */
	long	 cert_renew_before_s;	/* DC, RS, CS: renew this long before expiry
					   (0: when a third of the lifetime is left) */
	long	 login_rate;		/* DC: logins/s per source address (burst 5x) */
	long	 login_rate_prefix;	/* DC: logins/s per source /24 or /56 (burst 5x) */
	long	 login_inflight;	/* DC: logins at the AS at once */
	long	 login_queue;		/* DC: logins waiting for a turn, in all */
	long	 login_queue_prefix;	/* DC: ... and from one /24 or /56 */
	long	 probe_rate;		/* DC, RS: reflection probes answered/s per source
					 * address (burst 2x; 0: none answered) */
	long	 probe_alt_port;	/* RS: the other port that answers the
					 * filtering test (-1: udp_listen's + 1; 0: none) */
	char	*probe_alt_addr;	/* RS: the other address ("ip" or "ip:port")
					 * that answers the filtering test; NULL none */
	long	 punch;			/* DC: 1 two endpoint-independent NATs punch
					 * (docs/protocol.md §4.8); 0 they stay relayed */
	/* All: the HTTPS server's limits (struct ntm_httpd_limits). */
	long	 http_max_conns;
	long	 http_max_conns_per_addr;
	long	 http_header_timeout_s;
	long	 http_body_timeout_s;
	long	 http_body_min_rate;
	long	 http_body_mem_max;
	long	 bind_rate;		/* RS: ticket checks/s in all (half kept for cookie binds) */
	long	 bind_rate_source;	/* RS: ticket checks/s per source address */
	long	 bind_rate_prefix;	/* RS: ticket checks/s per source /24 or /56 */
	long	 client_sessions;	/* RS: session sides one client address may hold */
	long	 account_sessions;	/* RS: sessions one account's (v2) tickets may open */
	long	 dc_session_share;	/* RS: % of max_sessions one DC's tickets may open */
	long	 signed_rate;
	long	 signed_burst;
	long	 replay_per_peer;
	char	*metrics_token_file;	/* all: the bearer token of GET /metrics */
	/* derived */
	char	 listen_addr[64];
	uint16_t listen_port;
	uint8_t	 as_pk[NTM_SIGN_PK];
	int	 has_as_pk;
	uint8_t	 relay_pk[NTM_SIGN_PK];	/* DC: from relay_key */
	int	 has_relay_pk;
	char	*cs_list[SRV_CS_MAX];	/* AS: the CSs of cs_url, no trailing '/' */
	size_t	 cs_count;
	char	*revoke_list[SRV_REVOKE_URLS];	/* AS: the servers of revoke_url */
	char	*as_list[SRV_AS_MAX];	/* DC, RS, CS: the AS of as_url, in order,
					 * no trailing '/' */
	size_t	 as_count;
	size_t	 revoke_count;
};
/* Loads and validates path for role, filling defaults under state_dir.
 * On error prints nothing and fills err. */
int  srv_conf_load(struct srv_conf *c, int role, const char *path, char *err, size_t errlen);
void srv_conf_free(struct srv_conf *c);
/* probe_alt_addr's value v ("ip", port 0, or "ip:port" / "[v6]:port") into
 * ss: 0, or -1 when it is neither. */
int  srv_probe_alt_addr(const char *v, struct sockaddr_storage *ss, socklen_t *len);
/* Default config path for a role: $NTM_CONF or /etc/ntm/<role>.conf. */
const char *srv_conf_default(int role);
/* Splits "addr:port" / "[addr]:port"; 0 or -1. */
int  split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

/* ---- gso.c: runs of UDP datagrams (UDP GSO out, UDP GRO in; udp(7)) ----- */
#define GSO_SEGS	64		/* kernel's UDP_MAX_SEGMENTS is 64 or more */
#define GSO_BYTES	65000		/* one UDP datagram's worth */
/*
 * May a datagram of len bytes join a run of n datagrams (total bytes in
 * all) whose first is seg bytes? Not once the run is closed (its last one
 * was shorter than seg): the kernel cuts a run into seg-byte datagrams and
 * only the last may be shorter.
 */
int    gso_joins(size_t seg, int n, size_t total, int closed, size_t len);
/* The size of each datagram of a message of n bytes read with UDP_GRO whose
 * control message said v (0: none): v when 0 < v < n, else n (one). */
size_t gro_seg(size_t n, long v);

/* ---- misc.c --------------------------------------------------------------- */
/* Strict integer parser: the whole string, base 10, within [min,max]. */
int  parse_long(const char *s, long min, long max, long *out);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) NTM_PRINTF(1, 2);
int64_t now_unix(void);
/* The wait before the next try after tries failed ones: 2, 4, 8 ... seconds,
 * at most max (the announcements of the CS, the ended tokens of the DC). */
int64_t retry_wait_s(int tries, long max);
/* Milliseconds of CLOCK_MONOTONIC (for deadlines, never for dates). */
int64_t mono_ms(void);

#endif
