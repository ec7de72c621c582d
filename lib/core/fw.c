/* fw.c - TUN mode's inbound filter (fw.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fw.h"

/* A flow, from this host's side: the peer's address and port, ours. For an
 * ICMP echo, lport is the echo id and pport 0. */
struct flow {
	int64_t		 expires;	/* 0: a free slot */
	uint8_t		 peer[16];
	uint16_t	 lport, pport;
	uint8_t		 v, proto;
};

struct ntm_fw {
	uint64_t		 seed;
	size_t			 nrules;
	struct ntm_fw_rule	 rules[NTM_FW_RULES_MAX];
	struct flow		 flows[NTM_FW_BUCKETS][NTM_FW_WAYS];
};

/* What the filter reads of a packet. */
struct pkt {
	uint8_t		 v, proto;
	const uint8_t	*src, *dst;
	uint16_t	 sport, dport;
	uint8_t		 tcp_flags, icmp_type;
	int		 l4;		/* the ports or the ICMP header were there */
	int		 later_frag;	/* a fragment after the first */
};

#define TCP_SYN		0x02
#define TCP_ACK		0x10

static int
is_frag_hdr(uint8_t nh)
{
	return nh == 44;
}

static int
is_ext_hdr(uint8_t nh)
{
	return nh == 0 || nh == 43 || nh == 60;	/* hop-by-hop, routing, dest. opts */
}

/* The headers, bounds checked, no checksum (the tunnel authenticated it). */
static int
parse(const uint8_t *p, size_t n, struct pkt *k)
{
	size_t off;

	memset(k, 0, sizeof(*k));
	if (n < 1)
		return -1;
	k->v = p[0] >> 4;
	if (k->v == 4) {
		if (n < 20 || (off = (size_t)(p[0] & 15) * 4) < 20 || off > n)
			return -1;
		k->proto = p[9];
		k->src = p + 12;
		k->dst = p + 16;
		k->later_frag = ((p[6] & 0x1f) << 8 | p[7]) != 0;
	} else if (k->v == 6) {
		uint8_t nh;

		if (n < 40)
			return -1;
		nh = p[6];
		off = 40;
		k->src = p + 8;
		k->dst = p + 24;
		for (int i = 0; i < 4 && (is_ext_hdr(nh) || is_frag_hdr(nh)); i++) {
			if (off + 8 > n)
				return -1;
			if (is_frag_hdr(nh)) {
				k->later_frag = ((p[off + 2] << 8 | p[off + 3]) & 0xfff8) != 0;
				nh = p[off];
				off += 8;
			} else {
				size_t l = ((size_t)p[off + 1] + 1) * 8;

				nh = p[off];
				off += l;
			}
		}
		k->proto = nh;
	} else
		return -1;
	if (k->later_frag)
		return 0;
	p += off;
	n = off <= n ? n - off : 0;
	switch (k->proto) {
	case 6:
		if (n < 14)
			return 0;
		k->tcp_flags = p[13];
		/* fall through */
	case 17:
		if (n < 8)
			return 0;
		k->sport = (uint16_t)(p[0] << 8 | p[1]);
		k->dport = (uint16_t)(p[2] << 8 | p[3]);
		k->l4 = 1;
		break;
	case 1:
	case 58:
		if (n < 8 || (k->proto == 1) != (k->v == 4))
			return 0;
		k->icmp_type = p[0];
		k->sport = (uint16_t)(p[4] << 8 | p[5]);	/* echo id */
		k->l4 = 1;
		break;
	}
	return 0;
}

static int
is_echo_req(const struct pkt *k)
{
	return k->l4 && ((k->proto == 1 && k->icmp_type == 8) ||
	    (k->proto == 58 && k->icmp_type == 128));
}

static int
is_echo_reply(const struct pkt *k)
{
	return k->l4 && ((k->proto == 1 && k->icmp_type == 0) ||
	    (k->proto == 58 && k->icmp_type == 129));
}

static int
is_icmp_error(const struct pkt *k)
{
	if (!k->l4)
		return 0;
	if (k->proto == 1)
		return k->icmp_type == 3 || k->icmp_type == 11 || k->icmp_type == 12;
	return k->proto == 58 && k->icmp_type >= 1 && k->icmp_type <= 4;
}

static int64_t
lifetime(uint8_t proto)
{
	return proto == 6 ? NTM_FW_TCP_MS : proto == 17 ? NTM_FW_UDP_MS : NTM_FW_ICMP_MS;
}

/* The flow key of a packet; out: this host sent it. */
static void
key_of(const struct pkt *k, int out, struct flow *f)
{
	memset(f, 0, sizeof(*f));
	f->v = k->v;
	f->proto = k->proto;
	memcpy(f->peer, out ? k->dst : k->src, k->v == 4 ? 4 : 16);
	if (k->proto == 1 || k->proto == 58) {
		f->lport = k->sport;			/* the echo id */
	} else {
		f->lport = out ? k->sport : k->dport;
		f->pport = out ? k->dport : k->sport;
	}
}

static int
same(const struct flow *a, const struct flow *b)
{
	return a->v == b->v && a->proto == b->proto && a->lport == b->lport &&
	    a->pport == b->pport && memcmp(a->peer, b->peer, 16) == 0;
}

static struct flow *
bucket(struct ntm_fw *fw, const struct flow *f)
{
	uint64_t h = fw->seed ^ 0xcbf29ce484222325ULL;
	uint8_t b[22];

	memcpy(b, f->peer, 16);
	b[16] = f->v;
	b[17] = f->proto;
	b[18] = (uint8_t)(f->lport >> 8);
	b[19] = (uint8_t)f->lport;
	b[20] = (uint8_t)(f->pport >> 8);
	b[21] = (uint8_t)f->pport;
	for (size_t i = 0; i < sizeof(b); i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 29;
	return fw->flows[h % NTM_FW_BUCKETS];
}

void
ntm_fw_out(struct ntm_fw *fw, const uint8_t *p, size_t n, int64_t now_ms)
{
	struct pkt k;
	struct flow f, *b, *slot = NULL;

	if (parse(p, n, &k) < 0 || !k.l4)
		return;
	if ((k.proto == 1 || k.proto == 58) && !is_echo_req(&k))
		return;		/* only our pings open an ICMP flow */
	key_of(&k, 1, &f);
	b = bucket(fw, &f);
	for (int i = 0; i < NTM_FW_WAYS; i++) {
		if (b[i].expires > now_ms && same(&b[i], &f)) {
			slot = &b[i];
			break;
		}
		/* a free or expired slot, else the one that expires first */
		if (slot == NULL || (slot->expires > now_ms && b[i].expires < slot->expires))
			slot = &b[i];
	}
	*slot = f;
	slot->expires = now_ms + lifetime(f.proto);
}

static int
rule_matches(const struct ntm_fw_rule *r, const char *peer, const struct pkt *k)
{
	if (r->peer[0] && (peer == NULL || strcasecmp(r->peer, peer) != 0))
		return 0;
	switch (r->proto) {
	case NTM_FW_ALL:
		return 1;
	case NTM_FW_ECHO:
		return is_echo_req(k);
	case NTM_FW_TCPUDP:
		return k->l4 && (k->proto == 6 || k->proto == 17) && k->dport == r->port;
	default:
		return k->l4 && k->proto == r->proto && k->dport == r->port;
	}
}

enum ntm_fw_verdict
ntm_fw_in(struct ntm_fw *fw, const char *peer, const uint8_t *p, size_t n, int64_t now_ms)
{
	struct pkt k;
	struct flow f, *b;
	size_t i;

	if (parse(p, n, &k) < 0)
		return NTM_FW_DROP;
	if (k.l4 && !k.later_frag) {
		if (is_icmp_error(&k))
			return NTM_FW_PASS_ICMPERR;
		/* A flow we opened: the answers, never a new echo request. */
		if (!is_echo_req(&k) && ((k.proto != 1 && k.proto != 58) || is_echo_reply(&k))) {
			key_of(&k, 0, &f);
			b = bucket(fw, &f);
			for (int w = 0; w < NTM_FW_WAYS; w++)
				if (b[w].expires > now_ms && same(&b[w], &f)) {
					b[w].expires = now_ms + lifetime(f.proto);
					return NTM_FW_PASS_FLOW;
				}
		}
	}
	for (i = 0; i < fw->nrules; i++)
		if (rule_matches(&fw->rules[i], peer, &k) &&
		    (!k.later_frag || fw->rules[i].proto == NTM_FW_ALL))
			return NTM_FW_PASS_RULE;
	return NTM_FW_DROP;
}

size_t
ntm_fw_flows(const struct ntm_fw *fw, int64_t now_ms)
{
	size_t n = 0;

	for (size_t i = 0; i < NTM_FW_BUCKETS; i++)
		for (int w = 0; w < NTM_FW_WAYS; w++)
			n += fw->flows[i][w].expires > now_ms;
	return n;
}

struct ntm_fw *
ntm_fw_new(uint64_t seed)
{
	struct ntm_fw *fw = calloc(1, sizeof(*fw));

	if (fw)
		fw->seed = seed;
	return fw;
}

void
ntm_fw_free(struct ntm_fw *fw)
{
	free(fw);
}

int
ntm_fw_add(struct ntm_fw *fw, const struct ntm_fw_rule *r)
{
	if (fw->nrules >= NTM_FW_RULES_MAX)
		return NTM_ERR_NOSPACE;
	fw->rules[fw->nrules++] = *r;
	return 0;
}

int
ntm_fw_rule_parse(struct ntm_fw_rule *r, const char *s, char *err, size_t errlen)
{
	const char *spec = s, *colon = strrchr(s, ':'), *slash;
	char *end;
	long port;

	memset(r, 0, sizeof(*r));
	if (colon) {
		size_t n = (size_t)(colon - s);

		if (n == 0 || n >= sizeof(r->peer)) {
			snprintf(err, errlen, "'%s': expected PEER:RULE with a peer FQDN", s);
			return NTM_ERR_INVAL;
		}
		memcpy(r->peer, s, n);
		r->peer[n] = '\0';
		if (!ntm_valid_dnsname(r->peer) || strchr(r->peer, '.') == NULL) {
			snprintf(err, errlen, "'%s': '%s' is not a peer FQDN", s, r->peer);
			return NTM_ERR_INVAL;
		}
		spec = colon + 1;
	}
	if (strcasecmp(spec, "all") == 0) {
		r->proto = NTM_FW_ALL;
		return 0;
	}
	if (strcasecmp(spec, "icmp") == 0) {
		r->proto = NTM_FW_ECHO;
		return 0;
	}
	slash = strchr(spec, '/');
	if (slash == NULL)
		r->proto = NTM_FW_TCPUDP;
	else if (strcasecmp(slash + 1, "tcp") == 0)
		r->proto = NTM_FW_TCP;
	else if (strcasecmp(slash + 1, "udp") == 0)
		r->proto = NTM_FW_UDP;
	else {
		snprintf(err, errlen, "'%s': '/%s' is not /tcp or /udp", s, slash + 1);
		return NTM_ERR_INVAL;
	}
	port = strtol(spec, &end, 10);
	if (end == spec || end != (slash ? slash : spec + strlen(spec)) || port < 1 ||
	    port > 65535 || spec[0] == '+' || spec[0] == '-') {
		snprintf(err, errlen, "'%s': expected PORT (1-65535), PORT/tcp, PORT/udp, "
		    "icmp or all, optionally after PEER:", s);
		return NTM_ERR_INVAL;
	}
	r->port = (uint16_t)port;
	return 0;
}

const char *
ntm_fw_rule_str(const struct ntm_fw_rule *r, char *buf, size_t cap)
{
	const char *pre = r->peer[0] ? r->peer : "", *sep = r->peer[0] ? ":" : "";

	switch (r->proto) {
	case NTM_FW_ALL:
		snprintf(buf, cap, "%s%sall", pre, sep);
		break;
	case NTM_FW_ECHO:
		snprintf(buf, cap, "%s%sicmp", pre, sep);
		break;
	default:
		snprintf(buf, cap, "%s%s%u%s", pre, sep, (unsigned)r->port,
		    r->proto == NTM_FW_TCP ? "/tcp" : r->proto == NTM_FW_UDP ? "/udp" : "");
	}
	return buf;
}
