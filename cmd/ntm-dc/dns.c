/*
 * dns.c - the DC's authoritative DNS server for its domain (conf name),
 * evdns on a UDP socket bound to dns_listen.
 *
 *   <domain>            SOA, NS (-> <domain>), A/AAAA (the DC's address)
 *   _ntm._tcp.<domain>  SRV 0 0 <https port> <domain>
 *   _ntm._udp.<domain>  SRV 0 0 <udp port> <domain>   (once udp.c is bound)
 *   <label>.<domain>    A/AAAA of that client FQDN: its vIPs
 *
 * Names compare case-insensitively. Anything else inside the domain is
 * NXDOMAIN, a name that exists without the asked type is NOERROR/NODATA
 * (both with the SOA in the authority section); outside the domain the
 * answer is REFUSED. Every answer has AA set. evdns parses the queries and
 * drops the malformed ones; answers are a few hundred bytes at most
 * (evdns truncates with TC above 512).
 *
 * Against reflection: ANY is answered with one synthesized HINFO "RFC8482"
 * record (RFC 8482 §4.2), never with every record of the name; and answers
 * are rate-limited (response-rate limiting): per source prefix (/24, /56),
 * at most dns_rate answers a second that are alike (the same name and type;
 * every NXDOMAIN alike; every refusal or error alike), and at most
 * dns_rate_total answers a second in all. What is over goes unanswered (a
 * resolver retries), counted, and summarised in the log every
 * RRL_REPORT_MS, never a line per query.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/filter.h>

#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/util.h>
#include <sodium.h>
#include <sqlite3.h>

#include "dc.h"
#include "dns.h"
#include "ntm-rt.h"
#include "ratelim.h"

#define T_A	1
#define T_NS	2
#define T_SOA	6
#define T_AAAA	28
#define T_HINFO	13
#define T_SRV	33
#define T_ANY	255
#define C_IN	1

#define DNS_HDR	12	/* bytes of a DNS header */
#define UDP_HDR	8

#define SOA_REFRESH	3600
#define SOA_RETRY	600
#define SOA_EXPIRE	86400

enum { A_OK, A_NODATA, A_NXDOMAIN, A_REFUSED, A_FAIL };

/* Response-rate limiting: a token bucket per (prefix, alike answers) in a
 * table of fixed size (lib/core/ratelim.h), and one for all answers. */
#define RRL_SLOTS	4096
#define RRL_REPORT_MS	10000

struct dc_rrl {
	struct ntm_ratelim *per_key;		/* NULL: dns_rate 0, no limit */
	double		 total_rate;		/* answers/s in all */
	double		 total;			/* the global bucket */
	int64_t		 total_ms, report_ms;
	uint64_t	 limited, limited_total;	/* since the last report */
	uint64_t	 limited_all;		/* since start */
	char		 top[64];		/* a source limited since the report */
};

struct dc_dns {
	struct evdns_server_port *port;
	evutil_socket_t		 fd;
	uint32_t		 serial;		/* SOA serial: start time */
	struct sockaddr_storage	 bound;			/* the DNS socket */
	struct sockaddr_storage	 udp;			/* registration socket */
	int			 has_udp;
	uint8_t			 a4[4], a6[16];	/* the DC name's addresses */
	int			 has_a4, has_a6;
	uint64_t		 answered, nxdomain, refused, failed;
	struct dc_rrl		 rrl;
};

static void self_addrs(struct dc_dns *d, const struct srv_conf *cf);

static uint16_t
sa_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

static struct dc_dns *
dns_state(struct dc *dc)
{
	if (dc->dns == NULL && (dc->dns = calloc(1, sizeof(*dc->dns))) != NULL)
		dc->dns->fd = -1;
	return dc->dns;
}

void
dc_dns_set_udp(struct dc *dc, const struct sockaddr *sa)
{
	struct dc_dns *d = dns_state(dc);
	size_t len;

	if (d == NULL)
		return;
	d->has_udp = 0;
	if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return;
	len = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
	memcpy(&d->udp, sa, len);
	ntm_sa_unmap(&d->udp, &(socklen_t){ (socklen_t)len });
	d->has_udp = 1;
	if (d->port)
		self_addrs(d, &dc->srv->conf);
}

/* ---- wire helpers -------------------------------------------------------- */

/* Appends name in uncompressed label form; 0 or -1 if it does not fit. */
static int
put_name(uint8_t *buf, size_t cap, size_t *off, const char *name)
{
	const char *p = name, *dot;
	size_t n;

	while (*p) {
		dot = strchr(p, '.');
		n = dot ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || n > 63 || *off + 1 + n >= cap)
			return -1;
		buf[(*off)++] = (uint8_t)n;
		memcpy(buf + *off, p, n);
		*off += n;
		p += n;
		if (*p == '.')
			p++;
	}
	if (*off + 1 > cap)
		return -1;
	buf[(*off)++] = 0;
	return 0;
}

static int
put_u16(uint8_t *buf, size_t cap, size_t *off, uint16_t v)
{
	if (*off + 2 > cap)
		return -1;
	buf[(*off)++] = (uint8_t)(v >> 8);
	buf[(*off)++] = (uint8_t)v;
	return 0;
}

static int
put_u32(uint8_t *buf, size_t cap, size_t *off, uint32_t v)
{
	if (put_u16(buf, cap, off, (uint16_t)(v >> 16)) < 0)
		return -1;
	return put_u16(buf, cap, off, (uint16_t)v);
}

/* ---- records ------------------------------------------------------------- */

static int
add_soa(struct dc *dc, struct evdns_server_request *req, int section)
{
	const char *dom = dc->srv->conf.name;
	uint8_t rd[2 * 256 + 20];
	char rname[NTM_NAME_MAX + 16];
	size_t off = 0;

	snprintf(rname, sizeof(rname), "hostmaster.%s", dom);
	if (strlen(rname) > NTM_NAME_MAX)
		snprintf(rname, sizeof(rname), "%s", dom);
	if (put_name(rd, sizeof(rd), &off, dom) < 0 ||
	    put_name(rd, sizeof(rd), &off, rname) < 0 ||
	    put_u32(rd, sizeof(rd), &off, dc->dns->serial) < 0 ||
	    put_u32(rd, sizeof(rd), &off, SOA_REFRESH) < 0 ||
	    put_u32(rd, sizeof(rd), &off, SOA_RETRY) < 0 ||
	    put_u32(rd, sizeof(rd), &off, SOA_EXPIRE) < 0 ||
	    put_u32(rd, sizeof(rd), &off, DC_DNS_TTL) < 0)
		return -1;
	return evdns_server_request_add_reply(req, section, dom, T_SOA, C_IN, DC_DNS_TTL,
	    (int)off, 0, (const char *)rd);
}

static int
add_srv(struct dc *dc, struct evdns_server_request *req, const char *qname, uint16_t port)
{
	uint8_t rd[256 + 8];
	size_t off = 0;

	if (put_u16(rd, sizeof(rd), &off, 0) < 0 ||		/* priority */
	    put_u16(rd, sizeof(rd), &off, 0) < 0 ||		/* weight */
	    put_u16(rd, sizeof(rd), &off, port) < 0 ||
	    put_name(rd, sizeof(rd), &off, dc->srv->conf.name) < 0)
		return -1;
	return evdns_server_request_add_reply(req, EVDNS_ANSWER_SECTION, qname, T_SRV,
	    C_IN, DC_DNS_TTL, (int)off, 0, (const char *)rd);
}

/* The answer to ANY for a name that exists (RFC 8482 §4.2): one HINFO,
 * CPU "RFC8482", OS empty, whatever the name holds. */
static int
add_hinfo(struct evdns_server_request *req, const char *name)
{
	static const char rd[] = "\007RFC8482\000";

	return evdns_server_request_add_reply(req, EVDNS_ANSWER_SECTION, name, T_HINFO,
	    C_IN, DC_DNS_TTL, (int)sizeof(rd) - 1, 0, rd) < 0 ? A_FAIL : A_OK;
}

/* A and/or AAAA of the DC name in section; counts what it added. */
static int
add_self_addrs(struct dc_dns *d, struct evdns_server_request *req, const char *name,
    int section, int want4, int want6, int *n)
{
	if (want4 && d->has_a4) {
		if (evdns_server_request_add_reply(req, section, name, T_A, C_IN, DC_DNS_TTL,
		    4, 0, (const char *)d->a4) < 0)
			return -1;
		(*n)++;
	}
	if (want6 && d->has_a6) {
		if (evdns_server_request_add_reply(req, section, name, T_AAAA, C_IN,
		    DC_DNS_TTL, 16, 0, (const char *)d->a6) < 0)
			return -1;
		(*n)++;
	}
	return 0;
}

/* The vIPs of client fqdn: 1 found, 0 not, <0 storage error. */
static int
client_vips(struct dc *dc, const char *fqdn, uint8_t v4[4], uint8_t v6[16],
    int *has4, int *has6)
{
	sqlite3_stmt *st = NULL;
	int ret;

	*has4 = *has6 = 0;
	if ((ret = ntm_db_query(dc->db, &st, "SELECT vip4, vip6 FROM clients "
	    "WHERE fqdn = ?1", "s", fqdn)) < 0)
		return ret;
	if ((ret = ntm_db_row(dc->db, st)) == 0) {
		const unsigned char *a = sqlite3_column_text(st, 0);
		const unsigned char *b = sqlite3_column_text(st, 1);

		*has4 = a && inet_pton(AF_INET, (const char *)a, v4) == 1;
		*has6 = b && inet_pton(AF_INET6, (const char *)b, v6) == 1;
		ret = 1;
	} else if (ret == NTM_ERR_NOTFOUND)
		ret = 0;
	sqlite3_finalize(st);
	return ret;
}

/* ---- the request handler ------------------------------------------------- */

/* A query name for the log: bytes outside printable ASCII become '?'. */
static const char *
printable(const char *s, char *buf, size_t cap)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < cap; i++)
		buf[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/*
 * Fills the answer for (name, type), name already known to be inside the
 * domain: sub is the part before ".<domain>" ("" for the apex), sublen its
 * length.
 */
static int
answer(struct dc *dc, struct evdns_server_request *req, const char *name, int type,
    const char *sub, size_t sublen)
{
	struct dc_dns *d = dc->dns;
	const struct srv_conf *cf = &dc->srv->conf;
	char fqdn[NTM_NAME_MAX + 1];
	uint8_t v4[4], v6[16];
	int n = 0, has4, has6, rc;
	size_t i;

	if (sublen == 0) {
		if (type == T_ANY)
			return add_hinfo(req, name);
		if (type == T_SOA) {
			if (add_soa(dc, req, EVDNS_ANSWER_SECTION) < 0)
				return A_FAIL;
			n++;
		}
		if (type == T_NS) {
			if (evdns_server_request_add_reply(req, EVDNS_ANSWER_SECTION, name,
			    T_NS, C_IN, DC_DNS_TTL, -1, 1, cf->name) < 0)
				return A_FAIL;
			n++;
			/* glue for the NS target (the domain itself) */
			if (type == T_NS && add_self_addrs(d, req, cf->name,
			    EVDNS_ADDITIONAL_SECTION, 1, 1, &(int){ 0 }) < 0)
				return A_FAIL;
		}
		if (add_self_addrs(d, req, name, EVDNS_ANSWER_SECTION,
		    type == T_A, type == T_AAAA, &n) < 0)
			return A_FAIL;
		return n ? A_OK : A_NODATA;
	}
	if (sublen == 9 && strncasecmp(sub, "_ntm._tcp", 9) == 0) {
		if (type == T_ANY)
			return add_hinfo(req, name);
		if (type != T_SRV)
			return A_NODATA;
		if (add_srv(dc, req, name, dc->srv->port) < 0 ||
		    add_self_addrs(d, req, cf->name, EVDNS_ADDITIONAL_SECTION, 1, 1, &n) < 0)
			return A_FAIL;
		return A_OK;
	}
	if (sublen == 9 && strncasecmp(sub, "_ntm._udp", 9) == 0 && d->has_udp) {
		if (type == T_ANY)
			return add_hinfo(req, name);
		if (type != T_SRV)
			return A_NODATA;
		if (add_srv(dc, req, name, sa_port((struct sockaddr *)&d->udp)) < 0 ||
		    add_self_addrs(d, req, cf->name, EVDNS_ADDITIONAL_SECTION, 1, 1, &n) < 0)
			return A_FAIL;
		return A_OK;
	}
	/* empty non-terminals above the SRV names */
	if ((sublen == 4 && (strncasecmp(sub, "_tcp", 4) == 0 ||
	    (strncasecmp(sub, "_udp", 4) == 0 && d->has_udp))))
		return A_NODATA;
	/* a client: one label; stored as <lowercase label>.<conf name> */
	if (memchr(sub, '.', sublen) != NULL || sublen + 1 + strlen(cf->name) >= sizeof(fqdn))
		return A_NXDOMAIN;
	for (i = 0; i < sublen; i++)
		fqdn[i] = (char)tolower((unsigned char)sub[i]);
	snprintf(fqdn + sublen, sizeof(fqdn) - sublen, ".%s", cf->name);
	if ((rc = client_vips(dc, fqdn, v4, v6, &has4, &has6)) < 0)
		return A_FAIL;
	if (rc == 0)
		return A_NXDOMAIN;
	if (type == T_ANY)
		return add_hinfo(req, name);
	if (has4 && type == T_A) {
		if (evdns_server_request_add_reply(req, EVDNS_ANSWER_SECTION, name, T_A,
		    C_IN, DC_DNS_TTL, 4, 0, (const char *)v4) < 0)
			return A_FAIL;
		n++;
	}
	if (has6 && type == T_AAAA) {
		if (evdns_server_request_add_reply(req, EVDNS_ANSWER_SECTION, name, T_AAAA,
		    C_IN, DC_DNS_TTL, 16, 0, (const char *)v6) < 0)
			return A_FAIL;
		n++;
	}
	return n ? A_OK : A_NODATA;
}

/* ---- response-rate limiting --------------------------------------------- */

/* The bucket key of an answer to from, into k (its length returned): its
 * /24 or /56, and what the answer is alike with (kind 0: name and type; 1:
 * NXDOMAIN; 2: refused or failed). */
static size_t
rrl_key(uint8_t *k, size_t cap, const struct sockaddr *from, int kind, const char *name,
    int type)
{
	size_t n = 0, i;

	if (from->sa_family == AF_INET) {
		memcpy(k, &((const struct sockaddr_in *)from)->sin_addr, 3);
		n = 3;
	} else if (from->sa_family == AF_INET6) {
		memcpy(k, &((const struct sockaddr_in6 *)from)->sin6_addr, 7);
		n = 7;
	}
	k[n++] = (uint8_t)from->sa_family;
	k[n++] = (uint8_t)kind;
	if (kind == 0) {
		k[n++] = (uint8_t)(type >> 8);
		k[n++] = (uint8_t)type;
		for (i = 0; name[i] && n < cap; i++)
			k[n++] = (uint8_t)tolower((unsigned char)name[i]);
	}
	return n;
}

/* Whether an answer to from may go: one token from its bucket and one from
 * the global one. */
static int
rrl_allow(struct dc_rrl *l, const struct sockaddr *from, int kind, const char *name,
    int type)
{
	int64_t now = mono_ms();
	uint8_t k[16 + NTM_NAME_MAX];
	char buf[64];
	int ok;

	if (l->per_key == NULL)
		return 1;
	ok = ntm_ratelim_take(l->per_key, k, rrl_key(k, sizeof(k), from, kind, name, type),
	    now);
	l->total += (double)(now - l->total_ms) * l->total_rate / 1000.0;
	if (l->total > l->total_rate)
		l->total = l->total_rate;
	l->total_ms = now;
	if (!ok || l->total < 1) {
		if (!ok) {
			l->limited++;
			snprintf(l->top, sizeof(l->top), "%s", ntm_sa_str(from, buf, sizeof(buf)));
		} else
			l->limited_total++;
		l->limited_all++;
		if (now - l->report_ms >= RRL_REPORT_MS) {
			log_warnx("dns: over the rate limit in the last %llds: %llu answers "
			    "dropped for one source prefix (one was %s), %llu for the total",
			    (long long)(l->report_ms ? (now - l->report_ms) / 1000 :
			    RRL_REPORT_MS / 1000), (unsigned long long)l->limited,
			    l->top[0] ? l->top : "-", (unsigned long long)l->limited_total);
			l->limited = l->limited_total = 0;
			l->top[0] = '\0';
			l->report_ms = now;
		}
		return 0;
	}
	l->total -= 1;
	return 1;
}

static void
on_request(struct evdns_server_request *req, void *arg)
{
	struct dc *dc = arg;
	struct dc_dns *d = dc->dns;
	const char *dom = dc->srv->conf.name, *name;
	size_t dlen = strlen(dom), nlen;
	struct evdns_server_question *q;
	struct sockaddr_storage from;
	char fbuf[80], pbuf[NTM_NAME_MAX + 1];
	int r, rcode;

	memset(&from, 0, sizeof(from));
	if (evdns_server_request_get_requesting_addr(req, (struct sockaddr *)&from,
	    sizeof(from)) < 0)
		from.ss_family = AF_UNSPEC;
	if (req->nquestions != 1) {
		d->failed++;
		if (!rrl_allow(&d->rrl, (struct sockaddr *)&from, 2, "", 0))
			evdns_server_request_drop(req);
		else if (evdns_server_request_respond(req, DNS_ERR_FORMAT) < 0)
			evdns_server_request_drop(req);
		return;
	}
	q = req->questions[0];
	name = q->name;
	nlen = strlen(name);
	while (nlen > 0 && name[nlen - 1] == '.')	/* evdns gives none; be safe */
		nlen--;
	if (q->dns_question_class != C_IN && q->dns_question_class != T_ANY)
		r = A_REFUSED;
	else if (nlen == dlen && strncasecmp(name, dom, dlen) == 0)
		r = answer(dc, req, name, q->type, "", 0);
	else if (nlen > dlen + 1 && name[nlen - dlen - 1] == '.' &&
	    strncasecmp(name + nlen - dlen, dom, dlen) == 0)
		r = answer(dc, req, name, q->type, name, nlen - dlen - 1);
	else
		r = A_REFUSED;
	if (!rrl_allow(&d->rrl, (struct sockaddr *)&from,
	    r == A_OK || r == A_NODATA ? 0 : r == A_NXDOMAIN ? 1 : 2, name, q->type)) {
		evdns_server_request_drop(req);
		return;
	}

	switch (r) {
	case A_OK:
		rcode = DNS_ERR_NONE;
		d->answered++;
		break;
	case A_NODATA:
	case A_NXDOMAIN:
		/* negative answers carry the SOA (its minimum is the negative TTL) */
		if (add_soa(dc, req, EVDNS_AUTHORITY_SECTION) < 0) {
			rcode = DNS_ERR_SERVERFAILED;
			d->failed++;
			break;
		}
		rcode = r == A_NODATA ? DNS_ERR_NONE : DNS_ERR_NOTEXIST;
		if (r == A_NXDOMAIN)
			d->nxdomain++;
		else
			d->answered++;
		break;
	case A_REFUSED:
		rcode = DNS_ERR_REFUSED;
		d->refused++;
		break;
	default:
		rcode = DNS_ERR_SERVERFAILED;
		d->failed++;
		break;
	}
	if (r != A_REFUSED)
		evdns_server_request_set_flags(req, EVDNS_FLAGS_AA);
	log_debug("dns: %s type %d from %s: rcode %d", printable(name, pbuf, sizeof(pbuf)),
	    q->type, ntm_sa_str((struct sockaddr *)&from, fbuf, sizeof(fbuf)), rcode);
	if (evdns_server_request_respond(req, rcode) < 0) {
		/* could not send (e.g. socket buffer full): the client retries */
		d->failed++;
		evdns_server_request_drop(req);
	}
}

/* ---- start / stop -------------------------------------------------------- */

/*
 * libevent 2.1.12's evdns server crashes (SIGSEGV) on a datagram shorter
 * than a DNS header, before any callback; a socket filter drops those in the
 * kernel, so evdns never reads one. The filter sees the UDP header too.
 */
static int
drop_short(int fd)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, UDP_HDR + DNS_HDR, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

static int
specific(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr != htonl(INADDR_ANY);
	if (sa->sa_family == AF_INET6)
		return !IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

/* The DC name's A/AAAA: dns_addr4/6, else the HTTPS listen address, else
 * the registration socket's, else dns_listen's (each when not a wildcard). */
static void
self_addrs(struct dc_dns *d, const struct srv_conf *cf)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char lbuf[80];
	const struct sockaddr *cand[3] = { NULL, NULL, NULL };
	size_t i;

	d->has_a4 = d->has_a6 = 0;
	if (cf->dns_addr4 && inet_pton(AF_INET, cf->dns_addr4, d->a4) == 1)
		d->has_a4 = 1;
	if (cf->dns_addr6 && inet_pton(AF_INET6, cf->dns_addr6, d->a6) == 1)
		d->has_a6 = 1;
	snprintf(lbuf, sizeof(lbuf), "%s%s%s:%u", strchr(cf->listen_addr, ':') ? "[" : "",
	    cf->listen_addr, strchr(cf->listen_addr, ':') ? "]" : "",
	    (unsigned)cf->listen_port);
	if (ntm_sa_parse(&ss, &len, lbuf) == 0)
		cand[0] = (const struct sockaddr *)&ss;
	if (d->has_udp)
		cand[1] = (const struct sockaddr *)&d->udp;
	cand[2] = (const struct sockaddr *)&d->bound;
	for (i = 0; i < 3; i++) {
		const struct sockaddr *sa = cand[i];

		if (sa == NULL || !specific(sa))
			continue;
		if (sa->sa_family == AF_INET && !d->has_a4) {
			memcpy(d->a4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
			d->has_a4 = 1;
		} else if (sa->sa_family == AF_INET6 && !d->has_a6) {
			memcpy(d->a6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
			d->has_a6 = 1;
		}
	}
}

int
dc_dns_start(struct dc *dc, char *err, size_t errlen)
{
	const struct srv_conf *cf = &dc->srv->conf;
	struct sockaddr_storage ss;
	socklen_t len;
	struct dc_dns *d;
	char buf[80];

	if (cf->dns_listen == NULL)
		return 0;
	if (ntm_sa_parse(&ss, &len, cf->dns_listen) < 0) {
		snprintf(err, errlen, "%s: dns_listen '%s' is not ip:port", cf->path,
		    cf->dns_listen);
		return -1;
	}
	if (dc->srv->check_only)
		return 0;
	if ((d = dns_state(dc)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	d->serial = (uint32_t)now_unix();
	d->rrl.total_rate = (double)cf->dns_rate_total;
	d->rrl.total = d->rrl.total_rate;
	d->rrl.total_ms = mono_ms();
	if (cf->dns_rate > 0) {
		uint8_t secret[16];

		randombytes_buf(secret, sizeof(secret));
		if ((d->rrl.per_key = ntm_ratelim_new(RRL_SLOTS, (double)cf->dns_rate,
		    (double)cf->dns_rate, secret)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	d->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->fd < 0 || drop_short(d->fd) < 0 ||
	    bind(d->fd, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(d->fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(err, errlen, "dns_listen %s: %s", cf->dns_listen, strerror(errno));
		goto fail;
	}
	d->port = evdns_add_server_port_with_base(dc->srv->base, d->fd, 0, on_request, dc);
	if (d->port == NULL) {
		snprintf(err, errlen, "dns_listen %s: cannot start the DNS server",
		    cf->dns_listen);
		goto fail;
	}
	memcpy(&d->bound, &ss, len);
	self_addrs(d, cf);
	log_info("dns: authoritative for %s on %s (udp)", cf->name,
	    ntm_sa_str((struct sockaddr *)&ss, buf, sizeof(buf)));
	return 0;
fail:
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	return -1;
}

void
dc_dns_stop(struct dc *dc)
{
	struct dc_dns *d = dc->dns;

	if (d == NULL)
		return;
	if (d->port) {
		log_debug("dns: %llu answered, %llu nxdomain, %llu refused, %llu failed, "
		    "%llu over the rate limit", (unsigned long long)d->answered,
		    (unsigned long long)d->nxdomain, (unsigned long long)d->refused,
		    (unsigned long long)d->failed, (unsigned long long)d->rrl.limited_all);
		evdns_close_server_port(d->port);	/* closes the socket too */
	} else if (d->fd >= 0)
		close(d->fd);
	ntm_ratelim_free(d->rrl.per_key);
	free(d);
	dc->dns = NULL;
}

int
dc_domain_is_local(const struct dc *dc, const char *domain)
{
	const char *name = dc->srv->conf.name;
	size_t n = strlen(name);

	if (domain == NULL || strncasecmp(domain, name, n) != 0)
		return 0;
	return domain[n] == '\0' || (domain[n] == '.' && domain[n + 1] == '\0');
}
