/*
 * input.c - where each datagram on the UDP socket goes, by its type
 * (docs/protocol.md §3): REG_RESP to the registration, NUDGE to the
 * directions, MOVED and RELAY_ACK and the tunnel messages (PUNCH too) to
 * the tunnel table. A HS_INIT for a tunnel whose direction has not come yet is kept
 * and tried once more when the directions are in (directions.c).
 */
#include <sys/socket.h>

#include <string.h>

#include "common.h"
#include "reg.h"
#include "punch.h"
#include "relay.h"
#include "agentd.h"

static void
input_hs_init_unknown(struct agent *a, const uint8_t *p, const struct sockaddr_storage *from)
{
	a->drops[DROP_UNKNOWN]++;
	/* The direction may still be on its way: fetch (at most once a
	 * second for this: a stranger's HS_INIT costs the DC no more), or
	 * wait for the fetch already under way, then retry once. */
	if (!a->has_stash && (a->dir_inflight || agent_now_ms() - a->stash_fetch_at > 1000)) {
		memcpy(a->stash, p, NTM_HS_INIT_LEN);
		a->stash_from = *from;
		a->has_stash = 1;
		a->drops[DROP_UNKNOWN]--;	/* counted if the retry fails */
		if (!a->dir_inflight) {
			a->stash_fetch_at = agent_now_ms();
			agent_fetch_directions(a);
		}
	}
}

/* The messages sealed with the registration channel: REG_RESP, NUDGE, MOVED. */
static void
input_chan(struct agent *a, int type, const uint8_t *p, size_t n)
{
	struct ntm_reg_resp resp;
	struct ntm_nudge nu;
	struct ntm_moved m;
	int r;

	switch (type) {
	case NTM_MSG_REG_RESP:
		if ((r = ntm_reg_resp_open(&a->chan, p, n, &resp)) < 0)
			a->drops[agent_drop_reason(r)]++;
		else
			agent_reg_resp(a, &resp);
		return;
	case NTM_MSG_NUDGE:
		if ((r = ntm_nudge_open(&a->chan, p, n, &nu)) < 0)
			a->drops[agent_drop_reason(r)]++;
		else {
			a->nudges++;
			/* Kind 2 (cache entries) is for `ntm fetch`: counted only. */
			if (nu.kind == NTM_NUDGE_DIRECTION)
				agent_fetch_directions(a);
		}
		return;
	case NTM_MSG_MOVED:
		if ((r = ntm_moved_open(&a->chan, p, n, &m)) < 0)
			a->drops[agent_drop_reason(r)]++;
		else
			agent_tun_moved(a, &m);
		return;
	}
}

/* A RELAY_COOKIE from the RS of a relayed tunnel: bind again with it. */
static int
input_relay_cookie(struct agent *a, const uint8_t *p, size_t n,
    const struct sockaddr_storage *from)
{
	const uint8_t *tid = ntm_relay_cookie_tunnel_id(p, n);
	struct tun *t;

	if (tid == NULL)
		return DROP_MALFORMED;
	if ((t = agent_tun_by_tid(a, tid)) == NULL)
		return DROP_UNKNOWN;
	if (t->p.kind != NTM_ROUTE_RELAY || !ntm_sa_equal((const struct sockaddr *)&t->p.relay_ep,
	    (const struct sockaddr *)from) ||
	    ntm_peer_relay_cookie(&t->p, p, n, agent_now_ms(), agent_wall_us() / 1000) < 0)
		return DROP_AUTH;
	log_debug("tunnel %s: the relay is under load: bind again with its cookie", t->peer);
	agent_tun_arm(t);
	return -1;
}

void
agent_input(struct agent *a, uint8_t *p, size_t n, struct sockaddr_storage *from)
{
	struct tun *t = NULL;
	int type, r;

	/* Checked by relay.c, as ntm_msg_validate does not know the type. */
	if (n > 0 && p[0] == NTM_MSG_RELAY_COOKIE) {
		if ((r = input_relay_cookie(a, p, n, from)) >= 0)
			a->drops[r]++;
		return;
	}
	if ((type = ntm_msg_validate(p, n)) < 0) {
		a->drops[DROP_MALFORMED]++;
		return;
	}
	switch (type) {
	case NTM_MSG_REG_RESP:
	case NTM_MSG_NUDGE:
	case NTM_MSG_MOVED:
		input_chan(a, type, p, n);
		return;
	case NTM_MSG_PROBE_RESP:
		if (agent_nat_input(a, p, n, from) < 0)
			a->drops[DROP_UNKNOWN]++;
		return;
	case NTM_MSG_RELAY_ACK:
		if (agent_tun_relay_ack(a, p, n) < 0)
			a->drops[DROP_AUTH]++;
		return;
	case NTM_MSG_PUNCH:
		if (ntm_punch_tunnel_id(p, n) == NULL ||
		    (t = agent_tun_by_tid(a, ntm_punch_tunnel_id(p, n))) == NULL)
			a->drops[DROP_UNKNOWN]++;
		else
			agent_tun_punch(t, p, n, from, 0);
		return;
	case NTM_MSG_HS_INIT:
		if ((t = agent_tun_by_tid(a, ntm_msg_tunnel_id(p, n))) == NULL) {
			input_hs_init_unknown(a, p, from);
			return;
		}
		break;
	case NTM_MSG_HS_RESP:
	case NTM_MSG_DATA:
		if ((t = agent_tun_by_index(a, ntm_msg_receiver_index(p, n))) == NULL) {
			a->drops[DROP_UNKNOWN]++;
			return;
		}
		break;
	default:
		a->drops[DROP_MALFORMED]++;	/* REG_REQ, RELAY_BIND: not for us */
		return;
	}
	agent_tun_input(t, p, n, from, 0);
}
