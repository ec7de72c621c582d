/*
 * wire.c - the UDP header check that runs before any crypto, wire
 * addresses, and the anti-replay window shared by every sealed channel.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntm-rt.h"

int
ntm_msg_validate(const uint8_t *p, size_t n)
{
	size_t want = 0, min = 0, max = 0;

	if (p == NULL || n < NTM_HDR_LEN)
		return NTM_ERR_SHORT;
	if (p[2] != 0 || p[3] != 0)
		return NTM_ERR_PROTO;
	switch (p[0]) {
	case NTM_MSG_REG_REQ:	want = NTM_REG_REQ_LEN; break;
	case NTM_MSG_REG_RESP:	want = NTM_REG_RESP_LEN; break;
	case NTM_MSG_NUDGE:	want = NTM_NUDGE_LEN; break;
	case NTM_MSG_MOVED:	want = NTM_MOVED_LEN; break;
	case NTM_MSG_HS_INIT:	want = NTM_HS_INIT_LEN; break;
	case NTM_MSG_HS_RESP:	want = NTM_HS_RESP_LEN; break;
	case NTM_MSG_RELAY_ACK:	want = NTM_RELAY_ACK_LEN; break;
	case NTM_MSG_PROBE:	want = NTM_PROBE_LEN; break;
	case NTM_MSG_PROBE_RESP: want = NTM_PROBE_RESP_LEN; break;
	case NTM_MSG_PUNCH:	want = NTM_PUNCH_LEN; break;
	case NTM_MSG_DATA:
		min = NTM_DATA_MIN_LEN;
		max = NTM_DATA_MAX_LEN;
		break;
	case NTM_MSG_RELAY_BIND:
		min = NTM_RELAY_BIND_MIN;
		max = NTM_RELAY_BIND_MAX;
		break;
	default:
		return NTM_ERR_PROTO;
	}
	/* The version is checked after the type so that an unknown type is
	 * reported as such, whatever its second byte. */
	if (p[1] != NTM_UDP_VERSION)
		return NTM_ERR_VERSION;
	if (want) {
		if (n < want)
			return NTM_ERR_SHORT;
		if (n > want)
			return NTM_ERR_TOOBIG;
	} else {
		if (n < min)
			return NTM_ERR_SHORT;
		if (n > max)
			return NTM_ERR_TOOBIG;
	}
	return p[0];
}

void
ntm_msg_header(uint8_t out[NTM_HDR_LEN], enum ntm_msg type)
{
	out[0] = (uint8_t)type;
	out[1] = NTM_UDP_VERSION;
	out[2] = 0;
	out[3] = 0;
}

/* ---- addresses ---------------------------------------------------------- */

static int
is_v4mapped(const struct sockaddr_in6 *s6)
{
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr);
}

int
ntm_waddr_put(uint8_t out[NTM_WADDR_LEN], const struct sockaddr *sa)
{
	memset(out, 0, NTM_WADDR_LEN);
	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		out[0] = 4;
		memcpy(out + 2, &s4->sin_port, 2);
		memcpy(out + 4, &s4->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		memcpy(out + 2, &s6->sin6_port, 2);
		if (is_v4mapped(s6)) {
			out[0] = 4;
			memcpy(out + 4, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			out[0] = 6;
			memcpy(out + 4, &s6->sin6_addr, 16);
		}
		return 0;
	}
	return NTM_ERR_INVAL;
}

int
ntm_waddr_get(struct sockaddr_storage *ss, socklen_t *len, const uint8_t in[NTM_WADDR_LEN])
{
	static const uint8_t zero[16];

	memset(ss, 0, sizeof(*ss));
	if (in[1] != 0)
		return NTM_ERR_PROTO;
	switch (in[0]) {
	case 0:
		if (memcmp(in + 2, zero, 16) != 0 || in[18] || in[19])
			return NTM_ERR_PROTO;
		*len = 0;
		return 1;
	case 4: {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		if (memcmp(in + 8, zero, 12) != 0)
			return NTM_ERR_PROTO;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_port, in + 2, 2);
		memcpy(&s4->sin_addr, in + 4, 4);
		*len = sizeof(*s4);
		return 0;
	}
	case 6: {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_port, in + 2, 2);
		memcpy(&s6->sin6_addr, in + 4, 16);
		if (is_v4mapped(s6))
			return NTM_ERR_PROTO;	/* must be sent as family 4 */
		*len = sizeof(*s6);
		return 0;
	}
	default:
		return NTM_ERR_PROTO;
	}
}

void
ntm_sa_unmap(struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in s4;

	if (ss->ss_family != AF_INET6 || !is_v4mapped(s6))
		return;
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	s4.sin_port = s6->sin6_port;
	memcpy(&s4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &s4, sizeof(s4));
	if (len)
		*len = sizeof(s4);
}

int
ntm_sa_family(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6 && is_v4mapped((const struct sockaddr_in6 *)ss))
		return AF_INET;
	return ss->ss_family == AF_INET || ss->ss_family == AF_INET6 ? ss->ss_family : 0;
}

const char *
ntm_sa_str(const struct sockaddr *sa, char *buf, size_t cap)
{
	struct sockaddr_storage ss;
	char host[INET6_ADDRSTRLEN];

	if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
		snprintf(buf, cap, "-");
		return buf;
	}
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6));
	ntm_sa_unmap(&ss, NULL);
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(buf, cap, "%s:%u", host, ntohs(s4->sin_port));
	} else {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(buf, cap, "[%s]:%u", host, ntohs(s6->sin6_port));
	}
	return buf;
}

int
ntm_sa_parse(struct sockaddr_storage *ss, socklen_t *len, const char *s)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *h;
	size_t hl;
	char *end;
	unsigned long port;

	memset(ss, 0, sizeof(*ss));
	if (s == NULL)
		return NTM_ERR_INVAL;
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return NTM_ERR_INVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return NTM_ERR_INVAL;
		h = s;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host) || colon[1] == '\0')
		return NTM_ERR_INVAL;
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || port > 65535 || colon[1] == '-' || colon[1] == '+')
		return NTM_ERR_INVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (*s != '[') {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return NTM_ERR_INVAL;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return NTM_ERR_INVAL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*s6);
		ntm_sa_unmap(ss, len);
	}
	return 0;
}

static void
copy_unmapped(struct sockaddr_storage *ss, const struct sockaddr *sa)
{
	memset(ss, 0, sizeof(*ss));
	if (sa->sa_family == AF_INET)
		memcpy(ss, sa, sizeof(struct sockaddr_in));
	else if (sa->sa_family == AF_INET6)
		memcpy(ss, sa, sizeof(struct sockaddr_in6));
	ntm_sa_unmap(ss, NULL);
}

int
ntm_sa_same_host(const struct sockaddr *a, const struct sockaddr *b)
{
	struct sockaddr_storage x, y;

	if (a == NULL || b == NULL)
		return 0;
	copy_unmapped(&x, a);
	copy_unmapped(&y, b);
	if (x.ss_family != y.ss_family)
		return 0;
	if (x.ss_family == AF_INET)
		return memcmp(&((struct sockaddr_in *)&x)->sin_addr,
		    &((struct sockaddr_in *)&y)->sin_addr, 4) == 0;
	if (x.ss_family == AF_INET6)
		return memcmp(&((struct sockaddr_in6 *)&x)->sin6_addr,
		    &((struct sockaddr_in6 *)&y)->sin6_addr, 16) == 0;
	return 0;
}

int
ntm_sa_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	struct sockaddr_storage x, y;

	/* The common case, once per datagram: same family, nothing mapped. */
	if (a && b && a->sa_family == b->sa_family) {
		const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
		const struct sockaddr_in *b4 = (const struct sockaddr_in *)b;
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *b6 = (const struct sockaddr_in6 *)b;

		if (a->sa_family == AF_INET)
			return a4->sin_port == b4->sin_port &&
			    a4->sin_addr.s_addr == b4->sin_addr.s_addr;
		if (a->sa_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) &&
		    !IN6_IS_ADDR_V4MAPPED(&b6->sin6_addr))
			return a6->sin6_port == b6->sin6_port &&
			    memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0;
	}
	if (!ntm_sa_same_host(a, b))
		return 0;
	copy_unmapped(&x, a);
	copy_unmapped(&y, b);
	if (x.ss_family == AF_INET)
		return ((struct sockaddr_in *)&x)->sin_port ==
		    ((struct sockaddr_in *)&y)->sin_port;
	return ((struct sockaddr_in6 *)&x)->sin6_port ==
	    ((struct sockaddr_in6 *)&y)->sin6_port;
}

/* ---- anti-replay window ------------------------------------------------- */

#define WORDS	(NTM_WINDOW_BITS / 64)

void
ntm_window_init(struct ntm_window *w)
{
	memset(w, 0, sizeof(*w));
}

int
ntm_window_check(const struct ntm_window *w, uint64_t ctr)
{
	if (ctr == UINT64_MAX)
		return NTM_ERR_REPLAY;		/* top would wrap */
	if (ctr >= w->top)
		return 0;
	/* Words are cleared whole as the window slides, so a counter is
	 * judged only while its word is still one of the WORDS newest. */
	if ((w->top - 1) / 64 - ctr / 64 >= WORDS)
		return NTM_ERR_REPLAY;		/* too old to judge */
	if (w->bits[(ctr / 64) % WORDS] & (1ULL << (ctr % 64)))
		return NTM_ERR_REPLAY;
	return 0;
}

void
ntm_window_update(struct ntm_window *w, uint64_t ctr)
{
	if (ctr == UINT64_MAX)
		return;
	if (ctr >= w->top) {
		/* Clear the words the window slides over: every word after
		 * the one holding the newest counter (top - 1), up to and
		 * including the word ctr enters. That word last held the
		 * counters WORDS words older, whose bits must not stay. */
		uint64_t from = w->top == 0 ? 0 : (w->top - 1) / 64;
		uint64_t to = ctr / 64;
		if (w->top == 0 || to - from >= WORDS)
			memset(w->bits, 0, sizeof(w->bits));
		else
			for (uint64_t i = from + 1; i <= to; i++)
				w->bits[i % WORDS] = 0;
		w->top = ctr + 1;
	}
	w->bits[(ctr / 64) % WORDS] |= 1ULL << (ctr % 64);
}
