/* probe.c - the reflection probe and its answer (probe.h). */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "probe.h"
#include "ratelim.h"

#define OFF_TXID	NTM_HDR_LEN
#define OFF_PAD		(OFF_TXID + NTM_PROBE_TXID_LEN)		/* probe: zero to the end */
#define OFF_SEEN	(OFF_TXID + NTM_PROBE_TXID_LEN)		/* answer: wire address */
#define OFF_RFLAGS	(OFF_SEEN + NTM_WADDR_LEN)		/* answer to flags: its flags */
#define OFF_ROTHER	(OFF_RFLAGS + 1)			/* and the other port */
#define OFF_RPAD	(OFF_SEEN + NTM_WADDR_LEN)		/* answer: zero to the end */
#define OFF_RPAD2	(OFF_ROTHER + 2)			/* answer to flags: zero */
#define OFF_RADDR	(OFF_ROTHER + 2)			/* answer to ADDR: other address */
#define OFF_RPAD3	(OFF_RADDR + NTM_WADDR_LEN)		/* and zero */

_Static_assert(NTM_PROBE_RESP_LEN <= NTM_PROBE_LEN, "an answer is never longer than the probe");
_Static_assert(OFF_RPAD3 <= NTM_PROBE_RESP_LEN, "the answer holds its fields");

int
ntm_probe_make(uint8_t out[NTM_PROBE_LEN], const uint8_t txid[NTM_PROBE_TXID_LEN])
{
	memset(out, 0, NTM_PROBE_LEN);
	ntm_msg_header(out, NTM_MSG_PROBE);
	memcpy(out + OFF_TXID, txid, NTM_PROBE_TXID_LEN);
	return NTM_PROBE_LEN;
}

int
ntm_probe_make_flags(uint8_t out[NTM_PROBE_LEN], const uint8_t txid[NTM_PROBE_TXID_LEN],
    uint8_t flags)
{
	ntm_probe_make(out, txid);
	out[OFF_PAD] = flags;
	return NTM_PROBE_LEN;
}

int
ntm_probe_resp_open_flags(const uint8_t *p, size_t n, const uint8_t txid[NTM_PROBE_TXID_LEN],
    struct sockaddr_storage *seen, socklen_t *seenlen, uint8_t *flags, uint16_t *other_port)
{
	int t;

	if ((t = ntm_msg_validate(p, n)) < 0)
		return t;
	if (t != NTM_MSG_PROBE_RESP || (p[OFF_RFLAGS] & ~NTM_PROBE_R_CHANGED) != 0 ||
	    !sodium_is_zero(p + OFF_RPAD2, NTM_PROBE_RESP_LEN - OFF_RPAD2))
		return NTM_ERR_PROTO;
	if (memcmp(p + OFF_TXID, txid, NTM_PROBE_TXID_LEN) != 0)
		return NTM_ERR_INVAL;
	if (ntm_waddr_get(seen, seenlen, p + OFF_SEEN) != 0)
		return NTM_ERR_PROTO;
	*flags = p[OFF_RFLAGS];
	*other_port = (uint16_t)(p[OFF_ROTHER] << 8 | p[OFF_ROTHER + 1]);
	return 0;
}

int
ntm_probe_resp_open_addr(const uint8_t *p, size_t n, const uint8_t txid[NTM_PROBE_TXID_LEN],
    struct sockaddr_storage *seen, socklen_t *seenlen, uint8_t *flags, uint16_t *other_port,
    struct sockaddr_storage *other_addr)
{
	socklen_t len;
	int t;

	if ((t = ntm_msg_validate(p, n)) < 0)
		return t;
	if (t != NTM_MSG_PROBE_RESP ||
	    (p[OFF_RFLAGS] & ~(NTM_PROBE_R_CHANGED | NTM_PROBE_R_ADDR)) != 0 ||
	    (p[OFF_RFLAGS] & NTM_PROBE_R_CHANGED && p[OFF_RFLAGS] & NTM_PROBE_R_ADDR) ||
	    !sodium_is_zero(p + OFF_RPAD3, NTM_PROBE_RESP_LEN - OFF_RPAD3))
		return NTM_ERR_PROTO;
	if (memcmp(p + OFF_TXID, txid, NTM_PROBE_TXID_LEN) != 0)
		return NTM_ERR_INVAL;
	if (ntm_waddr_get(seen, seenlen, p + OFF_SEEN) != 0)
		return NTM_ERR_PROTO;
	memset(other_addr, 0, sizeof(*other_addr));
	if (!sodium_is_zero(p + OFF_RADDR, NTM_WADDR_LEN) &&
	    ntm_waddr_get(other_addr, &len, p + OFF_RADDR) != 0)
		return NTM_ERR_PROTO;
	/* An answer from the other address names it. */
	if ((p[OFF_RFLAGS] & NTM_PROBE_R_ADDR) && other_addr->ss_family == 0)
		return NTM_ERR_PROTO;
	*flags = p[OFF_RFLAGS];
	*other_port = (uint16_t)(p[OFF_ROTHER] << 8 | p[OFF_ROTHER + 1]);
	return 0;
}

int
ntm_probe_resp_open(const uint8_t *p, size_t n, const uint8_t txid[NTM_PROBE_TXID_LEN],
    struct sockaddr_storage *seen, socklen_t *seenlen)
{
	int t;

	if ((t = ntm_msg_validate(p, n)) < 0)
		return t;
	if (t != NTM_MSG_PROBE_RESP || !sodium_is_zero(p + OFF_RPAD, NTM_PROBE_RESP_LEN - OFF_RPAD))
		return NTM_ERR_PROTO;
	if (memcmp(p + OFF_TXID, txid, NTM_PROBE_TXID_LEN) != 0)
		return NTM_ERR_INVAL;
	/* An empty address is malformed too: a server always saw one. */
	if (ntm_waddr_get(seen, seenlen, p + OFF_SEEN) != 0)
		return NTM_ERR_PROTO;
	return 0;
}

enum ntm_nat
ntm_nat_classify(const struct sockaddr *local, const struct sockaddr *a,
    const struct sockaddr *b)
{
	if (a == NULL && b == NULL)
		return NTM_NAT_UNKNOWN;
	if (a == NULL || b == NULL) {
		const struct sockaddr *one = a ? a : b;

		return local && ntm_sa_equal(local, one) ? NTM_NAT_NONE : NTM_NAT_NATTED;
	}
	if (!ntm_sa_equal(a, b))
		return NTM_NAT_PER_DEST;
	return local && ntm_sa_equal(local, a) ? NTM_NAT_NONE : NTM_NAT_EI;
}

const char *
ntm_nat_name(enum ntm_nat kind)
{
	switch (kind) {
	case NTM_NAT_NONE:	return "none";
	case NTM_NAT_NATTED:	return "natted";
	case NTM_NAT_EI:	return "endpoint-independent";
	case NTM_NAT_PER_DEST:	return "varies-by-destination";
	default:		return "unknown";
	}
}

enum ntm_filter
ntm_filter_classify(enum ntm_nat nat, int other_known, int other_came)
{
	if (nat == NTM_NAT_UNKNOWN || !other_known)
		return NTM_FILTER_UNKNOWN;
	if (!other_came)
		return NTM_FILTER_PORT;
	return nat == NTM_NAT_NONE ? NTM_FILTER_NONE : NTM_FILTER_ADDR;
}

enum ntm_filter
ntm_filter_classify2(enum ntm_nat nat, int port_known, int port_came, int addr_known,
    int addr_came)
{
	if (nat == NTM_NAT_UNKNOWN)
		return NTM_FILTER_UNKNOWN;
	if (addr_known && addr_came)
		return nat == NTM_NAT_NONE ? NTM_FILTER_NONE : NTM_FILTER_EI;
	if (!port_known)
		return NTM_FILTER_UNKNOWN;	/* address- or port-dependent */
	if (!port_came)
		return NTM_FILTER_PORT;
	if (addr_known)
		return NTM_FILTER_ADDR_DEP;
	return nat == NTM_NAT_NONE ? NTM_FILTER_NONE : NTM_FILTER_ADDR;
}

static const char *const filter_names[] = {
	[NTM_FILTER_UNKNOWN] = "unknown",
	[NTM_FILTER_NONE] = "none",
	[NTM_FILTER_ADDR] = "address-dependent-or-less",
	[NTM_FILTER_PORT] = "port-dependent",
	[NTM_FILTER_EI] = "endpoint-independent",
	[NTM_FILTER_ADDR_DEP] = "address-dependent",
};

const char *
ntm_filter_name(enum ntm_filter f)
{
	return (int)f >= 0 && f <= NTM_FILTER_MAX ? filter_names[f] : "unknown";
}

int
ntm_filter_parse(const char *name)
{
	for (int i = 0; i <= NTM_FILTER_MAX; i++)
		if (name && strcmp(name, filter_names[i]) == 0)
			return i;
	return -1;
}

void
ntm_filt_start(struct ntm_filt_test *t, const struct sockaddr *server)
{
	socklen_t len = server->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);

	memset(t, 0, sizeof(*t));
	memcpy(&t->server, server, len);
	ntm_sa_unmap(&t->server, &len);
}

/* The port test still wants an answer. */
static int
port_pending(const struct ntm_filt_test *t)
{
	return !t->chg_answered && !(t->ask_answered && t->other_port == 0);
}

/* The address test still wants an answer. */
static int
addr_pending(const struct ntm_filt_test *t)
{
	return !t->achg_answered && !(t->aask_answered && t->other_addr.ss_family == 0);
}

int
ntm_filt_pending(const struct ntm_filt_test *t)
{
	/* The other address's answer came in: nothing filters by address or
	 * port, whatever the other port's says. */
	return t->server.ss_family != 0 && !t->achg_answered && (port_pending(t) ||
	    addr_pending(t));
}

int
ntm_filt_round(struct ntm_filt_test *t, uint8_t out[NTM_FILT_PER_ROUND][NTM_PROBE_LEN])
{
	int k = t->rounds, n = 0;

	if (!ntm_filt_pending(t) || k >= NTM_FILT_ROUNDS)
		return 0;
	t->rounds++;
	if (port_pending(t)) {
		randombytes_buf(t->chg[k], NTM_PROBE_TXID_LEN);
		ntm_probe_make_flags(out[n++], t->chg[k], NTM_PROBE_F_CHANGE);
	}
	/* ASK|ADDR names the other port too. */
	if (!t->aask_answered) {
		randombytes_buf(t->aask[k], NTM_PROBE_TXID_LEN);
		ntm_probe_make_flags(out[n++], t->aask[k], NTM_PROBE_F_ASK | NTM_PROBE_F_ADDR);
	}
	if (addr_pending(t)) {
		randombytes_buf(t->achg[k], NTM_PROBE_TXID_LEN);
		ntm_probe_make_flags(out[n++], t->achg[k], NTM_PROBE_F_CHANGE | NTM_PROBE_F_ADDR);
	}
	/* A server from before the address test answers neither ADDR probe:
	 * from the second round on, a plain ASK gets the other port named. */
	if (k > 0 && !t->ask_answered) {
		randombytes_buf(t->ask[k], NTM_PROBE_TXID_LEN);
		ntm_probe_make_flags(out[n++], t->ask[k], NTM_PROBE_F_ASK);
	}
	return n;
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* An answer to one of the address test's probes (k's). */
static int
addr_input(struct ntm_filt_test *t, const uint8_t *p, size_t n, const struct sockaddr *src,
    int from_server)
{
	struct sockaddr_storage seen, other;
	socklen_t seenlen, olen;
	uint8_t flags;
	uint16_t port;

	for (int k = 0; k < t->rounds; k++) {
		if (ntm_probe_resp_open_addr(p, n, t->aask[k], &seen, &seenlen, &flags, &port,
		    &other) == 0) {
			if (!from_server || flags != 0)
				return 0;
			t->aask_answered = 1;
			if (!t->achg_answered)
				t->other_addr = other;
			t->ask_answered = 1;
			if (!t->chg_answered)
				t->other_port = port;
			return 1;
		}
		if (ntm_probe_resp_open_addr(p, n, t->achg[k], &seen, &seenlen, &flags, &port,
		    &other) != 0)
			continue;
		if (!(flags & NTM_PROBE_R_ADDR)) {
			/* No other address: answered from the server's own port. */
			if (!from_server || flags != 0 || other.ss_family != 0)
				return 0;
			t->aask_answered = 1;
			memset(&t->other_addr, 0, sizeof(t->other_addr));
			return 1;
		}
		olen = sizeof(other);
		ntm_sa_unmap(&other, &olen);
		/* From the address it names, which is not the server's. */
		if (!ntm_sa_equal(src, (struct sockaddr *)&other) ||
		    ntm_sa_same_host((struct sockaddr *)&other, (struct sockaddr *)&t->server))
			return 0;
		t->achg_answered = 1;
		t->other_addr = other;
		return 1;
	}
	return 0;
}

int
ntm_filt_input(struct ntm_filt_test *t, const uint8_t *p, size_t n,
    const struct sockaddr *from, socklen_t fromlen)
{
	struct sockaddr_storage seen, src, other = t->server;
	socklen_t seenlen, srclen = fromlen;
	uint8_t flags;
	uint16_t port;
	int from_server;

	if (from == NULL || fromlen > (socklen_t)sizeof(src) || t->server.ss_family == 0)
		return 0;
	memcpy(&src, from, fromlen);
	ntm_sa_unmap(&src, &srclen);
	from_server = ntm_sa_equal((struct sockaddr *)&src, (struct sockaddr *)&t->server);
	for (int k = 0; k < t->rounds; k++) {
		if (ntm_probe_resp_open_flags(p, n, t->ask[k], &seen, &seenlen, &flags,
		    &port) == 0) {
			if (!from_server || flags != 0)
				return 0;
			t->ask_answered = 1;
			if (!t->chg_answered)
				t->other_port = port;
			return 1;
		}
		if (ntm_probe_resp_open_flags(p, n, t->chg[k], &seen, &seenlen, &flags,
		    &port) != 0)
			continue;
		if (!(flags & NTM_PROBE_R_CHANGED)) {
			/* No other port: answered from the server's own. */
			if (!from_server || port != 0)
				return 0;
			t->ask_answered = 1;
			t->other_port = 0;
			return 1;
		}
		if (port == 0)
			return 0;
		set_port(&other, port);
		if (!ntm_sa_equal((struct sockaddr *)&src, (struct sockaddr *)&other))
			return 0;
		t->chg_answered = 1;
		t->other_port = port;
		return 1;
	}
	return addr_input(t, p, n, (struct sockaddr *)&src, from_server);
}

enum ntm_filter
ntm_filt_verdict(const struct ntm_filt_test *t, enum ntm_nat nat)
{
	return ntm_filter_classify2(nat, t->other_port != 0, t->chg_answered,
	    t->other_addr.ss_family != 0, t->achg_answered);
}

const char *
ntm_filt_why(const struct ntm_filt_test *t, enum ntm_filter f)
{
	switch (f) {
	case NTM_FILTER_NONE:
		return t->achg_answered ?
		    "no NAT, and the relay's answer from its other address came in" :
		    "no NAT, and the relay's answer from its other port came in";
	case NTM_FILTER_EI:
		return "the relay's answer from its other address came in";
	case NTM_FILTER_ADDR:
		return "the relay's answer from its other port came in";
	case NTM_FILTER_ADDR_DEP:
		return "the relay's answer from its other port came in, from its other "
		    "address never";
	case NTM_FILTER_PORT:
		return t->other_addr.ss_family ?
		    "the relay's answers from its other port and its other address never came in" :
		    "the relay's answer from its other port never came in";
	default:
		return "no NAT verdict, or the relay answers from no other port";
	}
}

/* ---- server ---------------------------------------------------------------- */

struct ntm_probe_srv {
	struct ntm_ratelim	*per_source;
	double			 total_rate, total;
	int64_t			 total_ms;
	int			 started;
	struct ntm_probe_stats	 st;
};

struct ntm_probe_srv *
ntm_probe_srv_new(double rate, double burst, double total_rate, const uint8_t key16[16])
{
	struct ntm_probe_srv *s;

	if (total_rate < 1)
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((s->per_source = ntm_ratelim_new(NTM_PROBE_SLOTS, rate, burst, key16)) == NULL) {
		free(s);
		return NULL;
	}
	s->total_rate = total_rate;
	s->total = total_rate;
	return s;
}

void
ntm_probe_srv_free(struct ntm_probe_srv *s)
{
	if (s == NULL)
		return;
	ntm_ratelim_free(s->per_source);
	free(s);
}

/* The rate-limit key of a source: its family and address, port left out
 * (a flood from many ports of one address is one source); IPv4-mapped
 * IPv6 counts as IPv4. 0 for an address of another family. */
static size_t
source_key(const struct sockaddr *sa, socklen_t len, uint8_t k[17])
{
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		k[0] = 4;
		memcpy(k + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 5;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			k[0] = 4;
			memcpy(k + 1, a->s6_addr + 12, 4);
			return 5;
		}
		k[0] = 6;
		memcpy(k + 1, a->s6_addr, 16);
		return 17;
	}
	return 0;
}

static int
total_take(struct ntm_probe_srv *s, int64_t now_ms)
{
	if (!s->started || now_ms < s->total_ms) {
		s->started = 1;
		s->total_ms = now_ms;
	}
	s->total += (double)(now_ms - s->total_ms) * s->total_rate / 1000.0;
	if (s->total > s->total_rate)
		s->total = s->total_rate;
	s->total_ms = now_ms;
	if (s->total < 1.0)
		return 0;
	s->total -= 1.0;
	return 1;
}

size_t
ntm_probe_srv_input(struct ntm_probe_srv *s, const uint8_t *p, size_t n,
    const struct sockaddr *from, socklen_t fromlen, int64_t now_ms, uint8_t *out, size_t cap)
{
	int alt;

	return ntm_probe_srv_answer(s, p, n, from, fromlen, now_ms, 0, out, cap, &alt);
}

size_t
ntm_probe_srv_answer(struct ntm_probe_srv *s, const uint8_t *p, size_t n,
    const struct sockaddr *from, socklen_t fromlen, int64_t now_ms, uint16_t other_port,
    uint8_t *out, size_t cap, int *alt)
{
	return ntm_probe_srv_answer_addr(s, p, n, from, fromlen, now_ms, other_port, NULL, out,
	    cap, alt);
}

size_t
ntm_probe_srv_answer_addr(struct ntm_probe_srv *s, const uint8_t *p, size_t n,
    const struct sockaddr *from, socklen_t fromlen, int64_t now_ms, uint16_t other_port,
    const struct sockaddr *other_addr, uint8_t *out, size_t cap, int *alt)
{
	uint8_t k[17], flags;
	size_t kn;

	*alt = 0;
	if (ntm_msg_validate(p, n) != NTM_MSG_PROBE || cap < NTM_PROBE_RESP_LEN ||
	    ((flags = p[OFF_PAD]) & ~NTM_PROBE_F_ALL) != 0 ||
	    flags == NTM_PROBE_F_ADDR ||
	    !sodium_is_zero(p + OFF_PAD + 1, NTM_PROBE_LEN - OFF_PAD - 1) || from == NULL ||
	    (kn = source_key(from, fromlen, k)) == 0) {
		s->st.malformed++;
		return 0;
	}
	if (!ntm_ratelim_take(s->per_source, k, kn, now_ms) || !total_take(s, now_ms)) {
		s->st.limited++;
		return 0;
	}
	memset(out, 0, NTM_PROBE_RESP_LEN);
	ntm_msg_header(out, NTM_MSG_PROBE_RESP);
	memcpy(out + OFF_TXID, p + OFF_TXID, NTM_PROBE_TXID_LEN);
	if (ntm_waddr_put(out + OFF_SEEN, from) < 0) {
		s->st.malformed++;
		return 0;
	}
	if (other_addr && (fromlen > (socklen_t)sizeof(struct sockaddr_storage) ||
	    ntm_sa_family((const struct sockaddr_storage *)other_addr) !=
	    ntm_sa_family((const struct sockaddr_storage *)from)))
		other_addr = NULL;	/* of the other family: none for this source */
	if (flags & NTM_PROBE_F_ADDR) {
		/* The other address test: only a prober that asked gets the
		 * address (older ones check that the padding is zero). */
		if (other_addr && ntm_waddr_put(out + OFF_RADDR, other_addr) < 0)
			other_addr = NULL;
		if ((flags & NTM_PROBE_F_CHANGE) && other_addr) {
			out[OFF_RFLAGS] = NTM_PROBE_R_ADDR;
			*alt = NTM_PROBE_ALT_ADDR;
			s->st.alt_addr_answered++;
		}
		out[OFF_ROTHER] = (uint8_t)(other_port >> 8);
		out[OFF_ROTHER + 1] = (uint8_t)other_port;
	} else if (flags) {
		/* Only a prober that asked gets the fields (older ones check
		 * that the padding is zero). */
		if ((flags & NTM_PROBE_F_CHANGE) && other_port) {
			out[OFF_RFLAGS] = NTM_PROBE_R_CHANGED;
			*alt = 1;
			s->st.alt_answered++;
		}
		out[OFF_ROTHER] = (uint8_t)(other_port >> 8);
		out[OFF_ROTHER + 1] = (uint8_t)other_port;
	}
	s->st.answered++;
	return NTM_PROBE_RESP_LEN;
}

void
ntm_probe_srv_stats(const struct ntm_probe_srv *s, struct ntm_probe_stats *st)
{
	*st = s->st;
}
