/*
 * tunnels.c - the agent's tunnel table, and each tunnel's peer core
 * (lib/core/peer.c: the tunnel core, relay binds and their ACKs, the handshake
 * gate, the queue, endpoint moves) fed datagrams and the clock, its
 * datagrams sent on the UDP socket, its deadline on one timer per tunnel.
 * A route that punches punches again after a move of either end: the
 * moved end's fresh candidates go to the peer inside the tunnel
 * (CANDIDATES, docs/protocol.md §4.8) and both start new rounds; an end
 * behind a NAT that maps per destination asks the DC for the route again
 * instead (its candidates are the DC's to see). A relayed route that
 * could punch tries again on a timer (--direct-retry). Birthday probing
 * started so (a move, a retry) waits while another tunnel of the agent
 * is in a run of it: one at a time.
 * What happens above (a tunnel made, up or gone, an inner packet for us)
 * goes up through the agent's hooks.
 */
#include <sys/socket.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common.h"
#include "ippkt.h"
#include "probe.h"
#include "punch.h"
#include "agentd.h"

const char *const agent_drop_names[DROP_N] = {
	"malformed", "unknown_index", "auth", "replay", "state", "identity"
};

struct tun *
agent_tun_by_peer(struct agent *a, const char *peer)
{
	for (int i = 0; i < a->ntun; i++)
		if (strcmp(a->tuns[i]->peer, peer) == 0)
			return a->tuns[i];
	return NULL;
}

struct tun *
agent_tun_by_tid(struct agent *a, const uint8_t *tid)
{
	for (int i = 0; i < a->ntun; i++)
		if (memcmp(a->tuns[i]->tid, tid, NTM_TUNNEL_ID_LEN) == 0)
			return a->tuns[i];
	return NULL;
}

struct tun *
agent_tun_by_index(struct agent *a, uint32_t idx)
{
	if (idx == 0)
		return NULL;
	for (int i = 0; i < a->ntun; i++)
		if (ntm_tunnel_owns_index(a->tuns[i]->p.t, idx))
			return a->tuns[i];
	return NULL;
}

static uint64_t
wall_ms(void)
{
	return agent_wall_us() / 1000;
}

/* The peer core's output: to the peer's endpoint, the RS (binds) or a
 * punching candidate. */
static void
peer_output(struct ntm_peer *p, const struct sockaddr_storage *to,
    const struct ntm_tun_out *out)
{
	struct tun *t = (struct tun *)((char *)p - offsetof(struct tun, p));

	for (int i = 0; i < out->n; i++) {
		if (!p->has_ep)
			continue;
		if (out->buf[i][0] == NTM_MSG_HS_INIT || out->buf[i][0] == NTM_MSG_HS_RESP)
			t->hs_sent = agent_now_us();
		(void)agent_udp_send(t->a, out->buf[i], out->len[i], to);
	}
}

/* The same from birthday probing's extra socket sock (bday.c). */
static void
peer_output_via(struct ntm_peer *p, int sock, const struct sockaddr_storage *to,
    const struct ntm_tun_out *out)
{
	struct tun *t = (struct tun *)((char *)p - offsetof(struct tun, p));

	for (int i = 0; i < out->n; i++)
		agent_bday_send(t, sock, out->buf[i], out->len[i], to);
}

/* Why the path is what it is: the core's punching, with our note on a
 * move over it while it applies, else the DC's reason. */
static const char *
path_reason(const struct tun *t, char *buf, size_t len)
{
	const struct ntm_peer *p = &t->p;

	if (t->note[0] && (t->note_mask & (1 << p->punch))) {
		if (t->note_prefix)
			snprintf(buf, len, "%s: %s", t->note, p->path_why);
		else
			snprintf(buf, len, "%s", t->note);
		return buf;
	}
	return p->path_why[0] ? p->path_why : t->reason;
}

/* The path changed (relayed <-> punched, or punching gave up): said once. */
static void
path_note(struct tun *t, int path, int punch)
{
	char b[256];

	if (t->note[0] && !(t->note_mask & (1 << t->p.punch)))
		t->note[0] = '\0';	/* the move's word is over: lost again, say */
	if (path == (int)ntm_peer_path(&t->p) && punch == t->p.punch)
		return;
	log_info("tunnel %s: path %s -> %s (%s)", t->peer, ntm_path_name((enum ntm_path)path),
	    ntm_path_name(ntm_peer_path(&t->p)), path_reason(t, b, sizeof(b)));
	if (path != (int)ntm_peer_path(&t->p))
		t->path_new = 1;	/* TCP resends once the new path answers */
}

void
agent_tun_path_json(const struct tun *t, json_t *j)
{
	const struct ntm_peer *p = &t->p;
	char b[256];

	json_object_set_new(j, "path", json_string(ntm_path_name(ntm_peer_path(p))));
	json_object_set_new(j, "path_reason", json_string(path_reason(t, b, sizeof(b))));
	json_object_set_new(j, "repunches", json_integer((json_int_t)t->repunches));
	json_object_set_new(j, "direct_retries", json_integer((json_int_t)t->direct_retries));
	json_object_set_new(j, "direct_retry_s", t->direct_at ?
	    json_integer((t->direct_at - agent_now_ms() + 999) / 1000) : json_null());
	json_object_set_new(j, "punch_ms", p->punch == NTM_PUNCH_DONE ?
	    json_integer(p->punch_ms) : json_null());
	json_object_set_new(j, "punch_candidates", json_integer(p->kind == NTM_ROUTE_RELAY ?
	    p->ncand : 0));
	json_object_set_new(j, "punch_probes", json_integer((json_int_t)p->punch_sent));
	json_object_set_new(j, "punch_predicted", json_integer((json_int_t)p->bday_probes));
	json_object_set_new(j, "punch_sockets", json_integer(t->nbsock));
}

void
agent_tun_punch(struct tun *t, const uint8_t *pkt, size_t n,
    const struct sockaddr_storage *from, int sock)
{
	int path = ntm_peer_path(&t->p), punch = t->p.punch, r;

	if ((r = ntm_peer_punch_via(&t->p, pkt, n, from, sock, agent_now_ms())) < 0) {
		t->a->drops[r == NTM_ERR_STATE ? DROP_STATE : agent_drop_reason(r)]++;
		return;
	}
	path_note(t, path, punch);
	agent_tun_arm(t);
}

static void
peer_bind_failed(struct ntm_peer *p, int err)
{
	struct tun *t = (struct tun *)((char *)p - offsetof(struct tun, p));

	log_warnx("tunnel %s: cannot make RELAY_BIND: %s", t->peer, ntm_strerror(err));
}

static const struct ntm_peer_hooks peer_hooks = { peer_output, peer_bind_failed,
	peer_output_via };

/* ---- a tunnel the peer lost (agent.h) ------------------------------------- */

/*
 * Both ends send at least a keepalive every 10 s (§4.3): data sent and
 * nothing heard back for AGENT_UNANSWERED_MS means the peer lost the
 * tunnel (its agent restarted: it knows neither the tunnel id nor the
 * index, and drops what we send) or cannot reach us. Then a new tunnel is
 * asked of the DC (new tunnel id, new handshake); the commands on the old
 * one find the new one by the peer's name, and the peer's vIPs stay. The
 * responder waits twice as long, so that when both ends notice, the
 * initiator's request comes first and the two do not cross.
 */
static int64_t
unanswered_limit(const struct tun *t)
{
	return t->p.initiator ? AGENT_UNANSWERED_MS : 2 * AGENT_UNANSWERED_MS;
}

/* When t is to be remade if the peer is not heard first: INT64_MAX for
 * never (nothing sent since it was heard, never up, asked already, given
 * up, or dead of a handshake refused for the peer's identity: a server in
 * the middle is not asked again).
 * A punched path that falls silent goes back to the relay first (the
 * core, after NTM_PEER_DIRECT_DEAD_MS); only then is the peer missed. */
static int64_t
remake_at(const struct tun *t)
{
	struct ntm_tun_stats st;
	int64_t at;

	if (t->unanswered == 0 || t->remaking || t->remakes > AGENT_REMAKE_MAX)
		return INT64_MAX;
	ntm_tunnel_stats(t->p.t, &st);
	if (st.handshakes == 0 || (st.state == NTM_TUN_DEAD && st.identity_failures > 0))
		return INT64_MAX;
	if (st.state == NTM_TUN_DEAD)
		at = t->unanswered;	/* a rekey went unanswered: at once */
	else if (st.state == NTM_TUN_UP)
		at = t->unanswered + unanswered_limit(t) +
		    (ntm_peer_path(&t->p) == NTM_PATH_PUNCHED ? NTM_PEER_DIRECT_DEAD_MS : 0);
	else
		return INT64_MAX;
	return at > t->remake_next ? at : t->remake_next;
}

/* Asks the DC for a new tunnel to t's peer, the old one kept meanwhile
 * (its replacement takes over when the answer comes); counted, backed off. */
static void
remake(struct tun *t, int64_t now, const char *why)
{
	struct agent *a = t->a;

	if (!a->registered) {
		t->remake_next = now + AGENT_REMAKE_BACKOFF_MS;
		return;
	}
	t->remakes++;
	t->remake_next = now + ((int64_t)AGENT_REMAKE_BACKOFF_MS << (t->remakes - 1));
	log_info("tunnel %s: %s; asking the DC for a new tunnel (%d of %d)", t->peer, why,
	    t->remakes, AGENT_REMAKE_MAX);
	if (agent_request_tunnel(a, t->peer, NULL, 0) == 0) {
		t->remaking = 1;
		a->tun_remade++;
	}
}

static void
remake_tick(struct tun *t, int64_t now)
{
	struct ntm_tun_stats st;
	char why[96];

	if (now < remake_at(t))
		return;
	if (t->remakes == AGENT_REMAKE_MAX) {
		log_warnx("tunnel %s: the peer did not answer %d new tunnels; no more are "
		    "asked for until it is heard or a new command asks", t->peer,
		    AGENT_REMAKE_MAX);
		t->remakes++;
		return;
	}
	ntm_tunnel_stats(t->p.t, &st);
	if (st.state == NTM_TUN_DEAD)
		snprintf(why, sizeof(why), "dead (a new handshake went unanswered)");
	else
		snprintf(why, sizeof(why), "nothing from the peer for %lld s since we sent",
		    (long long)(now - t->unanswered) / 1000);
	remake(t, now, why);
}

/* Tunnels that never came up within AGENT_SETUP_MAX_MS of being made (a
 * peer that asked and never shook hands, a path that never opened) leave
 * the table: no one fills it for good by asking. Their streams end. (A
 * tunnel that was up once stays: the DC may recreate it.) One made for a
 * lost tunnel whose users still send is asked for again instead, within
 * the same bounds (a peer whose agent came back after the DC's answer).
 * Returns how many went. */
int
agent_tun_sweep(struct agent *a, int64_t now)
{
	struct ntm_tun_stats st;
	int n = 0;

	for (int i = a->ntun - 1; i >= 0; i--) {
		struct tun *t = a->tuns[i];

		ntm_tunnel_stats(t->p.t, &st);
		if (st.handshakes == 0 && st.state != NTM_TUN_UP &&
		    now - t->created > AGENT_SETUP_MAX_MS && t->remakes > 0 &&
		    t->remakes < AGENT_REMAKE_MAX && t->unanswered) {
			if (!t->remaking && now >= t->remake_next) {
				remake(t, now, "the new tunnel never came up");
				t->created = now;
			}
			continue;
		}
		if (st.handshakes == 0 && st.state != NTM_TUN_UP &&
		    now - t->created > AGENT_SETUP_MAX_MS) {
			log_info("tunnel %s: not up %d s after it was made; dropped", t->peer,
			    AGENT_SETUP_MAX_MS / 1000);
			agent_stream_tunnel_gone(a, t, "the tunnel never came up");
			agent_tun_free(t);
			a->tun_swept++;
			n++;
		}
	}
	return n;
}

void
agent_tun_free(struct tun *t)
{
	struct agent *a = t->a;

	for (int i = 0; i < a->ntun; i++)
		if (a->tuns[i] == t) {
			a->tuns[i] = a->tuns[--a->ntun];
			break;
		}
	if (t->timer)
		event_free(t->timer);
	agent_bday_free(t);
	if (agent_tun_by_peer(a, t->peer) == NULL)
		a->hooks->tunnel_gone(a, t);	/* unless a new tunnel took over */
	ntm_peer_free(&t->p);
	free(t->replay);
	free(t);
}

void
agent_tun_keepalive(struct tun *t)
{
	ntm_peer_keepalive(&t->p, agent_now_ms());
}

/* A relayed tunnel whose RS address is of the family this host no longer
 * reaches its DC over (a move to a network of the other family only)
 * binds to the same RS at its address of the family it has now, with the
 * same ticket and side: the RS bridges the two families (§4.4) at once,
 * and the peer hears what this end says, until the route is remade (§4.6
 * step 6). Only when the RS is our DC's (GET /v1/session named its
 * address of the old family): another RS's address of the new family is
 * not known here. */
static void
relay_follow(struct tun *t)
{
	struct agent *a = t->a;
	struct ntm_peer *p = &t->p;
	int fam = a->dc.ss_family, old = p->relay_ep.ss_family;
	const struct sockaddr_storage *was = old == AF_INET6 ? &a->relay6 : &a->relay4;
	const struct sockaddr_storage *to = fam == AF_INET6 ? &a->relay6 : &a->relay4;
	char b[64];

	if (p->kind != NTM_ROUTE_RELAY || old == fam || to->ss_family != fam ||
	    !ntm_sa_equal((const struct sockaddr *)&p->relay_ep, (const struct sockaddr *)was))
		return;
	log_info("tunnel %s: the relay at %s now (this host moved to IPv%d only)", t->peer,
	    ntm_sa_str((const struct sockaddr *)to, b, sizeof(b)), fam == AF_INET6 ? 6 : 4);
	p->relay_ep = *to;
	if (!p->punched) {
		p->ep = *to;
		p->eplen = fam == AF_INET6 ? sizeof(struct sockaddr_in6) :
		    sizeof(struct sockaddr_in);
		p->ep_sock = 0;
	}
}

int
agent_tun_peer_remakes(const struct tun *t)
{
	return t->p.kind == NTM_ROUTE_RELAY && t->p.side == 1;
}

void
agent_tun_rebind(struct tun *t)
{
	int path = ntm_peer_path(&t->p), punch = t->p.punch;

	relay_follow(t);
	ntm_peer_rebind(&t->p, agent_now_ms(), wall_ms());
	t->path_new = 1;
	path_note(t, path, punch);
	agent_tun_arm(t);
	/* A route that punched punches again from here once our NAT is known
	 * (agent_tun_nat_found): probe it now, from the new address. */
	if (t->p.kind == NTM_ROUTE_RELAY && t->npcand > 0) {
		t->repunch_wanted = 1;
		t->cands_left = 0;	/* what we said before the move is stale */
		agent_nat_discover(t->a, "a tunnel that punched moved");
	}
}

/*
 * The registration's interval (the DC's keepalive_s or `ntm up
 * --keepalive`) paces the relay binds, and bounds the tunnel's own
 * keepalives (10 s by default, §4.3): a NAT that forgets a UDP flow
 * sooner than that is held open by registering more often, and so is
 * a punched path through it.
 */
void
agent_tun_close_tell(struct tun *t)
{
	static const uint8_t close_msg[1] = { NTM_TUN_CTL_CLOSE };

	for (int i = 0; i < 2; i++)
		if (ntm_peer_send(&t->p, close_msg, sizeof(close_msg), agent_now_ms()) < 0)
			break;		/* no session: the peer holds nothing to close */
}

void
agent_tun_set_keepalive(struct tun *t, long keepalive_s)
{
	int64_t ms = 1000L * keepalive_s;

	t->p.keepalive_ms = ms;
	(void)ntm_tunnel_set_keepalive(t->p.t, ms < AGENT_TUN_KEEPALIVE_MS ? ms :
	    AGENT_TUN_KEEPALIVE_MS);
	if (t->timer)
		agent_tun_arm(t);
}

int
agent_tun_send(struct tun *t, const uint8_t *pkt, size_t len)
{
	int64_t now = agent_now_ms();
	int r = ntm_peer_send(&t->p, pkt, len, now);

	if (t->unanswered == 0) {
		t->unanswered = now;	/* the peer has AGENT_UNANSWERED_MS to be heard */
		agent_tun_arm(t);
	} else if (r == 0)
		agent_tun_arm(t);
	return r < 0 ? -1 : 0;
}

/* ---- punching again after a move (docs/protocol.md §4.8) ------------------ */

#define CANDS_COPIES		3	/* a CANDIDATES goes this many times, */
#define CANDS_EVERY_MS		1000	/* one a second, unless punched by then */
#define CANDS_RX_BURST		4	/* a peer's new ones are taken this many at once, */
#define CANDS_RX_EVERY_MS	1000	/* then one a second */

/* Punching starts again on the relay with n candidates of the peer (0:
 * relayed, no punching), this end's NAT of kind nat, and note as the
 * reason (prefix: before the core's). */
static int bday_role(const struct tun *t, int nat, int n);

static void
repunch(struct tun *t, int nat, const struct sockaddr_storage *cand, int n, const char *note,
    int prefix)
{
	struct ntm_peer np;
	int path = ntm_peer_path(&t->p), punch = t->p.punch;

	memset(&np, 0, sizeof(np));
	np.kind = NTM_ROUTE_RELAY;
	np.ep = t->p.relay_ep;
	np.eplen = np.ep.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	np.has_ep = 1;
	memcpy(np.ticket, t->p.ticket, t->p.tlen);
	np.tlen = t->p.tlen;
	memcpy(np.rkey, t->p.rkey, sizeof(np.rkey));
	np.side = t->p.side;
	np.ncand = n;
	np.bday = bday_role(t, nat, n);
	if (n > 0)
		memcpy(np.cand, cand, (size_t)n * sizeof(cand[0]));
	/* same route, same RS, same session: a fresh bind and fresh rounds */
	ntm_peer_reroute(&t->p, &np, agent_now_ms(), wall_ms());
	ntm_wipe(&np, sizeof(np));
	snprintf(t->note, sizeof(t->note), "%s", note);
	t->note_prefix = prefix;
	t->note_mask = prefix ? 1 << NTM_PUNCH_TRYING | 1 << NTM_PUNCH_DONE |
	    1 << NTM_PUNCH_FAILED : 1 << t->p.punch;
	path_note(t, path, punch);
	agent_tun_arm(t);
}

static void
cands_send(struct tun *t, int64_t now)
{
	if (ntm_peer_send(&t->p, t->cands_msg, t->cands_len, now) < 0)
		log_debug("tunnel %s: CANDIDATES not sent (queue full)", t->peer);
	t->cands_left--;
	t->cands_next = now + CANDS_EVERY_MS;
}

/* The copies of our CANDIDATES, until punched again. */
static void
cands_tick(struct tun *t, int64_t now)
{
	if (t->cands_left <= 0 || now < t->cands_next)
		return;
	if (t->p.punch == NTM_PUNCH_DONE || t->p.kind != NTM_ROUTE_RELAY)
		t->cands_left = 0;
	else
		cands_send(t, now);
}

/* The pairs the DC's route punches (§4.5 rule 3), from this end's kind now
 * and the peer's last told (0: not told since the DC gave candidates):
 * both endpoint-independent, or one of them per destination (birthday
 * probing); not both per destination, nor a mapping not compared. */
static int
pair_punchable(int own, int peer)
{
	if (own != NTM_NAT_EI && own != NTM_NAT_PER_DEST)
		return 0;
	if (peer != 0 && peer != NTM_NAT_EI && peer != NTM_NAT_PER_DEST)
		return 0;
	return !(own == NTM_NAT_PER_DEST && peer == NTM_NAT_PER_DEST);
}

/* t punches by birthday probing (§4.8) as its hard end, or as the easy
 * end the peer asked to probe its ports (or will ask: a peer known to be
 * per destination, by its CANDIDATES or an earlier SPRAY). */
static int
bday_running(const struct tun *t)
{
	const struct ntm_peer *p = &t->p;

	return p->kind == NTM_ROUTE_RELAY && p->punch == NTM_PUNCH_TRYING &&
	    ((p->bday == NTM_BDAY_HARD && t->npcand > 0) || p->bday_want > 0 ||
	    (p->bday == NTM_BDAY_EASY && (t->peer_nat == NTM_NAT_PER_DEST || p->bday_rx > 0)));
}

/* Another tunnel of the agent than t is in a birthday run: the runs a
 * move or a retry starts go one at a time (AGENT_BDAY_WAIT_MS). */
static int
bday_busy(const struct agent *a, const struct tun *t)
{
	for (int i = 0; i < a->ntun; i++)
		if (a->tuns[i] != t && bday_running(a->tuns[i]))
			return 1;
	return 0;
}

/* A new attempt on t would probe by birthday: one end per destination. */
static int
bday_pair(const struct tun *t, int own)
{
	return own == NTM_NAT_PER_DEST || t->peer_nat == NTM_NAT_PER_DEST || t->p.bday_rx > 0;
}

/* This end's part in birthday probing on a new attempt with n candidates
 * behind a NAT of kind nat (as at setup, directions.c); none while another
 * tunnel of the agent is in a run: a peer's attempt taken then punches
 * without it (and fails against a per-destination NAT; the retry timer
 * comes back to it). */
static int
bday_role(const struct tun *t, int nat, int n)
{
	if (n <= 0 || (nat != NTM_NAT_PER_DEST && nat != NTM_NAT_EI))
		return NTM_BDAY_NONE;
	if (bday_busy(t->a, t))
		return NTM_BDAY_NONE;
	return nat == NTM_NAT_PER_DEST ? NTM_BDAY_HARD : NTM_BDAY_EASY;
}

static int own_cands(const struct agent *a, const struct sockaddr_storage *refl,
    struct sockaddr_storage *out);

/*
 * A relayed route that punches (§4.5 rule 3: both endpoint-independent, or
 * one end per destination) whose punching failed, or whose punched path
 * was lost, tries the direct path again (docs/protocol.md §4.8): the
 * requester sends its candidates again (CANDIDATES, a new generation, the
 * same addresses) and both ends punch as after a move, birthday probing
 * included, the relay carrying the traffic meanwhile; a requester behind a
 * NAT that maps per destination asks the DC for the route again (a
 * recreate: both ends get fresh candidates and punch as at setup). The
 * first try DIRECT_RETRY_S (--direct-retry) after the failure, each next
 * one twice as long after the one before, up to 8 times that; a punched
 * path starts the count again. The same timer starts the punching after a
 * move that waits (move_due): the DC asked for the route again, and a
 * birthday run while another is in flight, AGENT_BDAY_WAIT_MS apart.
 *
 * Only the requester asks its DC for the route again: the RS keeps a
 * session opened by one DC's tickets and refuses another DC's for it
 * (other_dc, §4.4), and the requester's DC opened it. The requester is
 * side 0 at the relay (agent_tun_peer_remakes), not the handshake
 * initiator: an end keeps its role when the route is remade, so side 0
 * may be the responder. The retry on the timer is side 0's too, so that
 * one end tries. A per-destination side 1 end that moved tells side 0 in
 * a CANDIDATES (its kind, no candidates) and side 0 asks (MOVE_ASK); so
 * does a side 1 end whose NAT situation or family changed (kind none, no
 * candidates: §4.6 step 6), on any relayed route, punching or not.
 */
#define DIRECT_RETRY_S		300
#define DIRECT_RETRY_SHIFT_MAX	3
#define AGENT_BDAY_WAIT_MS	1000
#define MOVE_REG_WAIT_MS	200	/* asking the DC: our registration shows */
#define MOVE_REG_WAITS		25	/* the move (5 s at most), */
#define MOVE_ASK_DELAY_MS	1000	/* the peer's had a second more */
enum { MOVE_PUNCH = 1, MOVE_ASK };	/* move_due: punch from here, ask the DC */

static int
direct_wanted(const struct tun *t)
{
	const struct ntm_peer *p = &t->p;

	if (p->kind != NTM_ROUTE_RELAY || t->recreating)
		return 0;
	if (t->move_due == MOVE_ASK)
		return 1;
	if (t->npcand <= 0)
		return 0;
	if (t->move_due)
		return 1;
	return t->a->o.direct_retry_s >= 0 && !agent_tun_peer_remakes(t) &&
	    (p->punch == NTM_PUNCH_FAILED || p->punch == NTM_PUNCH_LOST) &&
	    pair_punchable(t->a->nat, t->peer_nat) && t->a->probe[0].answered;
}

/* Punching again from here: either end moved (move: MOVE_*), or a retry. */
static void
direct_start(struct tun *t, int64_t now, int move)
{
	struct sockaddr_storage own[NTM_PUNCH_CANDS_MAX];
	struct agent *a = t->a;
	int n, len;

	if (move == MOVE_ASK && t->peer_nat != NTM_NAT_PER_DEST)
		/* the peer's NAT situation or family changed (§4.6 step 6) */
		log_info("tunnel %s: the peer moved: asking the DC for the route again",
		    t->peer);
	else if (a->nat == NTM_NAT_PER_DEST || move == MOVE_ASK)
		/* Where a per-destination end is reached is the DC's to see
		 * (its NAT gives the DC a port of its own): it gives both ends
		 * the route again, with fresh candidates. */
		log_info("tunnel %s: %s behind a NAT that varies by destination: asking the "
		    "DC for the route again", t->peer, move == MOVE_ASK ? "the peer moved" :
		    move ? "this end moved" : t->p.punch == NTM_PUNCH_LOST ?
		    "relayed since punching lost its path" : "relayed since punching failed");
	if (a->nat == NTM_NAT_PER_DEST || move == MOVE_ASK) {
		if (agent_request_tunnel(a, t->peer, t->tid, 0) == 0)
			t->recreating = 1;
		return;
	}
	if (!a->probe[0].answered)
		return;
	n = own_cands(a, &a->probe[0].seen, own);
	if ((len = ntm_punch_cands_make(t->cands_msg, sizeof(t->cands_msg), NTM_NAT_EI,
	    ++t->cands_gen, own, n)) < 0)
		return;
	t->cands_len = (size_t)len;
	if (move) {
		log_info("tunnel %s: this end moved: punching again, the peer told", t->peer);
		repunch(t, a->nat, t->pcand, t->npcand, "this end moved", 1);
	} else {
		log_info("tunnel %s: relayed since punching %s: trying the direct path again "
		    "(%d)", t->peer, t->p.punch == NTM_PUNCH_LOST ? "lost its path" : "failed",
		    t->direct_tries);
		repunch(t, a->nat, t->pcand, t->npcand, "trying direct again", 1);
	}
	t->cands_left = CANDS_COPIES;
	cands_send(t, now);
}

static void
direct_tick(struct tun *t, int64_t now)
{
	long s = t->a->o.direct_retry_s > 0 ? t->a->o.direct_retry_s : DIRECT_RETRY_S;
	int shift = t->direct_tries < DIRECT_RETRY_SHIFT_MAX ? t->direct_tries :
	    DIRECT_RETRY_SHIFT_MAX, move;

	if (t->p.punch == NTM_PUNCH_DONE)
		t->direct_tries = 0;
	if (!direct_wanted(t)) {
		t->direct_at = 0;
		t->move_due = 0;
		return;
	}
	if (t->direct_at == 0) {
		t->direct_at = now + ((int64_t)s * 1000 << shift);
		return;
	}
	if (now < t->direct_at)
		return;
	/* The DC decides the route from the locations it holds: a moved end
	 * asks once its REG_RESP names the new address (the verdict's). */
	if (t->move_due == MOVE_PUNCH && t->a->nat == NTM_NAT_PER_DEST &&
	    t->move_waits < MOVE_REG_WAITS && t->a->probe[0].answered &&
	    !(t->a->registered && ntm_sa_same_host((const struct sockaddr *)
	    &t->a->resp.reflexive, (const struct sockaddr *)&t->a->probe[0].seen))) {
		t->move_waits++;
		t->direct_at = now + MOVE_REG_WAIT_MS;
		return;
	}
	/* one birthday run at a time in the agent: this one waits its turn */
	if (bday_pair(t, t->a->nat) && bday_busy(t->a, t)) {
		t->direct_at = now + AGENT_BDAY_WAIT_MS;
		return;
	}
	t->direct_at = 0;
	move = t->move_due;
	t->move_due = 0;
	t->move_waits = 0;
	if (move)
		t->repunches++;
	else {
		t->direct_tries++;
		t->direct_retries++;
	}
	direct_start(t, now, move);
}

static const char *
nat_words(int nat)
{
	return nat == NTM_NAT_PER_DEST ? "that varies by destination" : "whose mapping is unknown";
}

/* This end's candidates behind an endpoint-independent NAT, as the DC
 * gives them (§3.2 punch): the reflexive address, then the local ones of
 * its family (not link-local). */
static int
own_cands(const struct agent *a, const struct sockaddr_storage *refl,
    struct sockaddr_storage *out)
{
	int n = 0;

	out[n++] = *refl;
	for (int i = 0; i < a->nlocals && n < NTM_PUNCH_CANDS_MAX; i++) {
		struct sockaddr_storage x = a->locals[i];

		ntm_sa_unmap(&x, NULL);
		if (x.ss_family != refl->ss_family ||
		    ntm_sa_equal((const struct sockaddr *)&x, (const struct sockaddr *)refl))
			continue;
		if (x.ss_family == AF_INET6 &&
		    IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)&x)->sin6_addr))
			continue;
		out[n++] = x;
	}
	return n;
}

void
agent_tun_tell_peer(struct tun *t, const char *why)
{
	char note[96];
	int len;

	if (!agent_tun_peer_remakes(t) || (len = ntm_punch_cands_make(t->cands_msg,
	    sizeof(t->cands_msg), NTM_NAT_NONE, ++t->cands_gen, NULL, 0)) < 0)
		return;
	t->cands_len = (size_t)len;
	snprintf(note, sizeof(note), "%s: relayed, the peer asks its DC again", why);
	log_info("tunnel %s: %s", t->peer, note);
	repunch(t, t->a->nat, NULL, 0, note, 0);
	t->cands_left = CANDS_COPIES;
	cands_send(t, agent_now_ms());
	agent_tun_arm(t);
}

void
agent_tun_nat_found(struct agent *a, int nat, const struct sockaddr_storage *reflexive)
{
	struct sockaddr_storage own[NTM_PUNCH_CANDS_MAX];
	int64_t now = agent_now_ms();
	char note[96], b[64];
	int n = 0, len;

	/* Our NAT situation or family changed on a route the peer's DC
	 * opened (§4.6 step 6): a CANDIDATES of kind none and no candidates
	 * has the peer ask its DC for the route again, whatever the verdict
	 * (the DC has it by then: the next REG_REQ carries it). Relayed
	 * meanwhile, over the RS address of our family (relay_follow). */
	for (int i = 0; i < a->ntun; i++) {
		struct tun *t = a->tuns[i];

		if (!t->tell_peer)
			continue;
		t->tell_peer = 0;
		t->repunch_wanted = 0;
		agent_tun_tell_peer(t, "this end moved (NAT or family)");
	}
	/* no answer: the next discovery may tell; no NAT: the route changes
	 * (the DC remakes the tunnel, §4.6 step 6) */
	if (nat == NTM_NAT_UNKNOWN || reflexive == NULL)
		return;
	if (nat == NTM_NAT_EI)
		n = own_cands(a, reflexive, own);
	for (int i = 0; i < a->ntun; i++) {
		struct tun *t = a->tuns[i];

		if (!t->repunch_wanted)
			continue;
		t->repunch_wanted = 0;
		/* A global requester (side 0) asked its DC already
		 * (repunch_global); a global side 1 end tells it, and it asks. */
		if (t->p.kind != NTM_ROUTE_RELAY || t->npcand <= 0 ||
		    (nat == NTM_NAT_NONE && !agent_tun_peer_remakes(t)))
			continue;
		/* Behind a NAT that maps per destination, the requester (side
		 * 0) asks its DC (at the tunnel's timer: once this verdict is
		 * registered), a side 1 end tells it (below); a birthday run
		 * waits while another is in flight. */
		if (pair_punchable(nat, t->peer_nat) && ((nat == NTM_NAT_PER_DEST &&
		    !agent_tun_peer_remakes(t)) || (nat == NTM_NAT_EI && bday_pair(t, nat) &&
		    bday_busy(a, t)))) {
			log_info("tunnel %s: this end moved (now %s, %s): punching again %s",
			    t->peer, ntm_sa_str((const struct sockaddr *)reflexive, b,
			    sizeof(b)), ntm_nat_name((enum ntm_nat)nat), nat == NTM_NAT_PER_DEST ?
			    "from the DC's new candidates" : "after the birthday probing in flight");
			t->move_due = MOVE_PUNCH;
			t->move_waits = 0;
			t->direct_at = now;
			agent_tun_arm(t);
			continue;
		}
		if ((len = ntm_punch_cands_make(t->cands_msg, sizeof(t->cands_msg), nat,
		    ++t->cands_gen, own, n)) < 0) {
			log_warnx("tunnel %s: cannot make CANDIDATES: %s", t->peer,
			    ntm_strerror(len));
			continue;
		}
		t->cands_len = (size_t)len;
		if (nat == NTM_NAT_EI && pair_punchable(nat, t->peer_nat)) {
			log_info("tunnel %s: this end moved (now %s): punching again, the peer "
			    "told", t->peer, ntm_sa_str((const struct sockaddr *)reflexive, b,
			    sizeof(b)));
			repunch(t, nat, t->pcand, t->npcand, "this end moved", 1);
			t->repunches++;
		} else {
			if (nat == NTM_NAT_EI)
				snprintf(note, sizeof(note), "this end moved; the peer is behind a "
				    "NAT %s: relayed", nat_words(t->peer_nat));
			else if (nat == NTM_NAT_NONE)
				snprintf(note, sizeof(note), "this end moved and is global: "
				    "relayed, the peer asks its DC again");
			else if (pair_punchable(nat, t->peer_nat))
				snprintf(note, sizeof(note), "this end moved behind a NAT %s: "
				    "relayed, the peer asks its DC again", nat_words(nat));
			else
				snprintf(note, sizeof(note), "this end moved behind a NAT %s: "
				    "relayed", nat_words(nat));
			log_info("tunnel %s: %s (the peer told)", t->peer, note);
			repunch(t, nat, NULL, 0, note, 0);
		}
		t->cands_left = CANDS_COPIES;
		cands_send(t, now);
		agent_tun_arm(t);
	}
}

/* 1 if a new CANDIDATES of the peer may be taken now (a token bucket: a
 * move is often a few network changes in a row, each with its own). */
static int
cands_rx_allowed(struct tun *t, int64_t now)
{
	int64_t n;

	if (t->cands_rx_at == 0 || now - t->cands_rx_at >= CANDS_RX_BURST * CANDS_RX_EVERY_MS) {
		t->cands_tokens = CANDS_RX_BURST;
		t->cands_rx_at = now;
	} else if ((n = (now - t->cands_rx_at) / CANDS_RX_EVERY_MS) > 0) {
		t->cands_tokens = t->cands_tokens + n > CANDS_RX_BURST ? CANDS_RX_BURST :
		    t->cands_tokens + (int)n;
		t->cands_rx_at += n * CANDS_RX_EVERY_MS;
	}
	if (t->cands_tokens <= 0)
		return 0;
	t->cands_tokens--;
	return 1;
}

/* A control message from the peer (tunnel.h): CANDIDATES, the peer moved. */
static void
tun_ctl(struct tun *t, const uint8_t *p, size_t len)
{
	struct sockaddr_storage c[NTM_PUNCH_CANDS_MAX];
	int64_t now = agent_now_ms();
	uint32_t gen;
	char note[96], b[64];
	int nat, n, r, again, ask;

	if (p[0] == NTM_TUN_CTL_CLOSE && len == 1) {
		/* Authentic (sealed in the session): the peer's end is gone,
		 * and so is ours once this datagram is done with (the timer). */
		t->peer_closed = 1;
		return;
	}
	if (p[0] != NTM_TUN_CTL_CANDS ||
	    (r = ntm_punch_cands_open(p, len, &nat, &gen, c, &n)) < 0) {
		t->a->drops[DROP_MALFORMED]++;
		return;
	}
	/* Kind none and no candidates on a relay session our DC opened (we
	 * are side 0): the peer moved out of NAT, to the other family, or to
	 * a new global address, and leaves the route to our DC (§4.6 step 6,
	 * §4.8), on any relayed route. Else only on a route the DC let punch;
	 * each move once (its copies), and not faster than the bucket lets (a
	 * copy comes later). */
	ask = nat == NTM_NAT_NONE && n == 0 && t->p.side == 0;
	if (t->p.kind != NTM_ROUTE_RELAY || (t->npcand <= 0 && !ask) ||
	    gen <= t->cands_gen_rx || !cands_rx_allowed(t, now))
		return;
	t->cands_gen_rx = gen;
	/* the same candidates as before: not a move, a try for the direct
	 * path again (direct_tick at the peer) */
	again = (t->peer_nat == 0 || nat == t->peer_nat) && n > 0 && t->npcand > 0 &&
	    ntm_sa_equal((const struct sockaddr *)&c[0], (const struct sockaddr *)&t->pcand[0]);
	t->peer_nat = nat;
	if (nat == NTM_NAT_EI) {
		/* the moved end's candidates from now on, whatever ours are */
		memcpy(t->pcand, c, (size_t)n * sizeof(c[0]));
		t->npcand = n;
	}
	if (nat == NTM_NAT_EI && pair_punchable(t->a->nat, nat)) {
		if (again)
			log_info("tunnel %s: the peer tries the direct path again: punching",
			    t->peer);
		else
			log_info("tunnel %s: the peer moved (now %s): punching again", t->peer,
			    ntm_sa_str((const struct sockaddr *)&c[0], b, sizeof(b)));
		repunch(t, t->a->nat, t->pcand, t->npcand, again ? "the peer tries direct again" :
		    "the peer moved", 1);
		if (!again)
			t->repunches++;
	} else if (ask) {
		/* two global ends (§4.5 rule 5) and the responder moved, or the
		 * responder's NAT situation or family changed: our DC opened
		 * the relay session, so we ask it for the route again; the
		 * peer's NAT is the new direction's to tell */
		if (t->a->nat == NTM_NAT_NONE)
			log_info("tunnel %s: the peer moved and is global: asking the DC for the "
			    "route again", t->peer);
		else
			log_info("tunnel %s: the peer moved: asking the DC for the route again",
			    t->peer);
		t->peer_nat = 0;
		repunch(t, t->a->nat, NULL, 0, "the peer moved: asking the DC for the route "
		    "again", 0);
		t->move_due = MOVE_ASK;
		t->direct_at = now + MOVE_ASK_DELAY_MS;
		agent_tun_arm(t);
	} else if (nat == NTM_NAT_PER_DEST && !agent_tun_peer_remakes(t) &&
	    pair_punchable(t->a->nat, nat)) {
		/* its new address is the DC's to see: ours opened the relay
		 * session (we are side 0), so we ask it for the route again
		 * (direct_start) */
		log_info("tunnel %s: the peer moved behind a NAT that varies by destination",
		    t->peer);
		repunch(t, t->a->nat, NULL, 0, "the peer moved behind a NAT that varies by "
		    "destination: asking the DC for the route again", 0);
		t->move_due = MOVE_ASK;
		t->direct_at = now + MOVE_ASK_DELAY_MS;
	} else {
		if (nat == NTM_NAT_EI)
			snprintf(note, sizeof(note), "the peer moved; this end is behind a NAT "
			    "%s: relayed", nat_words(t->a->nat));
		else if (nat == NTM_NAT_NONE)
			snprintf(note, sizeof(note), "the peer moved out of NAT: relayed");
		else
			snprintf(note, sizeof(note), "the peer moved behind a NAT %s: relayed",
			    nat_words(nat));
		log_info("tunnel %s: %s", t->peer, note);
		repunch(t, t->a->nat, NULL, 0, note, 0);
	}
}

static void
on_tun_timer(evutil_socket_t fd, short what, void *arg)
{
	struct tun *t = arg;

	int path = ntm_peer_path(&t->p), punch = t->p.punch;

	if (t->peer_closed) {
		log_info("tunnel %s: closed by the peer", t->peer);
		agent_stream_tunnel_gone(t->a, t, "the peer closed the tunnel");
		agent_tun_free(t);
		return;
	}
	ntm_peer_tick(&t->p, agent_now_ms(), wall_ms());
	path_note(t, path, punch);
	cands_tick(t, agent_now_ms());
	direct_tick(t, agent_now_ms());
	remake_tick(t, agent_now_ms());
	agent_tun_arm(t);
}

void
agent_tun_arm(struct tun *t)
{
	int64_t now = agent_now_ms(), d = ntm_peer_deadline(&t->p), r;
	struct timeval tv;

	agent_bday_sync(t);	/* the extra sockets the core no longer uses */
	if (t->peer_closed)
		d = now;	/* on_tun_timer frees it */

	if (t->cands_left > 0 && t->cands_next < d)
		d = t->cands_next;
	if (t->direct_at && t->direct_at < d)
		d = t->direct_at;
	if ((r = remake_at(t)) < d)
		d = r;

	if (d == INT64_MAX) {
		evtimer_del(t->timer);
		t->armed = 0;
		return;
	}
	/* Most packets move the deadline later: a wake-up already set for no
	 * later than it stays (on_tun_timer re-arms), and saves a system call
	 * per packet. */
	if (t->armed && t->armed <= d && evtimer_pending(t->timer, NULL))
		return;
	t->armed = d;
	d = d > now ? d - now : 0;
	tv.tv_sec = d / 1000;
	tv.tv_usec = (d % 1000) * 1000;
	evtimer_add(t->timer, &tv);
}

/* ---- made, rerouted -------------------------------------------------------- */

static const char *
kind_name(int k)
{
	return k == NTM_ROUTE_DIRECT ? "direct" : k == NTM_ROUTE_LOCAL ? "local" :
	    k == NTM_ROUTE_RELAY ? "relay" : "?";
}

void
agent_tun_reroute(struct tun *t, const struct tun *nt)
{
	char b1[64], b2[64];

	if (nt->p.initiator != t->p.initiator)
		log_warnx("tunnel %s: the new direction makes us %s; keeping %s",
		    t->peer, nt->p.initiator ? "initiator" : "responder",
		    t->p.initiator ? "initiator" : "responder");
	log_info("tunnel %s: route %s -> %s (%s), endpoint %s -> %s", t->peer,
	    kind_name(t->p.kind), kind_name(nt->p.kind), nt->reason,
	    t->p.has_ep ? ntm_sa_str((const struct sockaddr *)&t->p.ep, b1, sizeof(b1)) : "-",
	    nt->p.has_ep ? ntm_sa_str((const struct sockaddr *)&nt->p.ep, b2, sizeof(b2)) : "-");
	snprintf(t->reason, sizeof(t->reason), "%s", nt->reason);
	t->recreating = 0;
	t->note[0] = '\0';
	t->repunch_wanted = 0;
	t->tell_peer = 0;
	t->cands_left = 0;
	t->npcand = nt->p.kind == NTM_ROUTE_RELAY ? nt->p.ncand : 0;
	memcpy(t->pcand, nt->p.cand, sizeof(t->pcand));
	ntm_peer_reroute(&t->p, &nt->p, agent_now_ms(), wall_ms());
	t->path_new = 1;
	agent_tun_arm(t);
}

struct tun *
agent_tun_new(struct agent *a, const struct tun *nt, const struct ntm_tunnel_cfg *cfg,
    char *err, size_t errlen)
{
	struct tun *t;
	int64_t unanswered = 0, remake_next = 0;
	int remakes = 0, replaced = 0;
	char b[64];

	/* A new tunnel to a peer replaces any older one to it. One made for a
	 * lost tunnel goes on counting its remakes until the peer is heard. */
	if ((t = agent_tun_by_peer(a, nt->peer)) != NULL) {
		log_info("tunnel %s: replaced by a new tunnel", nt->peer);
		unanswered = t->unanswered;
		remakes = t->remakes;
		remake_next = t->remake_next;
		replaced = 1;
		agent_tun_free(t);
	}
	if (a->ntun >= AGENT_TUN_MAX) {
		snprintf(err, errlen, "too many tunnels (%d)", AGENT_TUN_MAX);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	*t = *nt;
	t->a = a;
	t->npcand = t->p.kind == NTM_ROUTE_RELAY && t->p.ncand > 0 ? t->p.ncand : 0;
	memcpy(t->pcand, t->p.cand, sizeof(t->pcand));
	t->p.hooks = &peer_hooks;
	t->p.keepalive_ms = 1000L * a->keepalive_s;
	t->created = agent_now_ms();
	t->unanswered = unanswered;
	t->remakes = remakes;
	t->remake_next = remake_next;
	/* TCP over the old one (same vIPs) resends once the new one answers */
	t->path_new = replaced;
	ntm_hex_encode(t->tid_hex, sizeof(t->tid_hex), t->tid, NTM_TUNNEL_ID_LEN);
	if (ntm_peer_start(&t->p, cfg, agent_now_ms()) < 0 ||
	    (t->timer = evtimer_new(a->base, on_tun_timer, t)) == NULL) {
		ntm_peer_free(&t->p);
		free(t);
		snprintf(err, errlen, "cannot make the tunnel");
		return NULL;
	}
	agent_tun_set_keepalive(t, a->keepalive_s);
	a->tuns[a->ntun++] = t;
	a->hooks->tunnel_new(a, t);
	log_info("tunnel %s: %s route (%s), %s, endpoint %s", t->peer, kind_name(t->p.kind),
	    t->reason, t->p.initiator ? "initiator" : "responder",
	    t->p.has_ep ? ntm_sa_str((struct sockaddr *)&t->p.ep, b, sizeof(b)) : "-");
	ntm_peer_begin(&t->p, agent_now_ms(), wall_ms());
	agent_tun_arm(t);
	return t;
}

/* ---- input ----------------------------------------------------------------- */

int
agent_drop_reason(int err)
{
	switch (err) {
	case NTM_ERR_CRYPTO:	return DROP_AUTH;
	case NTM_ERR_REPLAY:	return DROP_REPLAY;
	case NTM_ERR_STATE:	return DROP_STATE;
	case NTM_ERR_IDENTITY:	return DROP_IDENTITY;
	default:		return DROP_MALFORMED;
	}
}

/* An authentic inner packet: the peer may only send from its own vIPs, to
 * ours. Echo requests on the user-space stack are answered here; the rest
 * goes up (control connections, SOCKS5, lwIP, the TUN interface). */
static void
inner_packet(struct tun *t, const uint8_t *p, size_t len)
{
	struct agent *a = t->a;
	struct ntm_ip ip;
	uint8_t out[NTM_INNER_MTU];
	int n;

	if (ntm_ip_parse(&ip, p, len) != 0) {
		a->inner_drops++;
		return;
	}
	if (ip.version == 4 ? !(t->has4 && memcmp(ip.src, t->pv4, 4) == 0 &&
	    a->has_vip4 && memcmp(ip.dst, a->vip4, 4) == 0) :
	    !(t->has6 && memcmp(ip.src, t->pv6, 16) == 0 &&
	    a->has_vip6 && memcmp(ip.dst, a->vip6, 16) == 0)) {
		a->inner_drops++;
		return;
	}
	if (!a->tun_mode && ip.is_echo && (ip.icmp_type == NTM_ICMP_ECHO_REQUEST ||
	    ip.icmp_type == NTM_ICMP6_ECHO_REQUEST)) {
		if ((n = ntm_ip_echo_reply(out, sizeof(out), &ip)) > 0 &&
		    agent_tun_send(t, out, (size_t)n) == 0)
			a->echo_answered++;
		else
			a->inner_drops++;
		return;
	}
	if (a->hooks->inner(a, t, &ip, p, len) < 0)
		a->inner_drops++;
}

/* MOVED (docs/protocol.md §4.6): the peer of a direct tunnel registered from
 * a new address. Send there at once; the keepalive tells the peer where we
 * are in turn, and opens our NAT towards it. */
void
agent_tun_moved(struct agent *a, const struct ntm_moved *m)
{
	struct sockaddr_storage ep = m->endpoint;
	socklen_t len = ep.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	struct sockaddr_storage old;
	struct tun *t;
	char b1[64], b2[64];
	int had;

	a->moved++;
	ntm_sa_unmap(&ep, &len);
	if ((t = agent_tun_by_tid(a, m->tunnel_id)) == NULL || t->p.kind == NTM_ROUTE_RELAY) {
		log_debug("MOVED for %s tunnel: ignored", t ? "a relayed" : "an unknown");
		return;
	}
	old = t->p.ep;
	had = t->p.has_ep;
	if (ntm_peer_moved(&t->p, &ep, len, agent_now_ms()) <= 0)
		return;
	log_info("tunnel %s: the DC says the peer moved: endpoint %s -> %s", t->peer,
	    had ? ntm_sa_str((struct sockaddr *)&old, b1, sizeof(b1)) : "-",
	    ntm_sa_str((struct sockaddr *)&ep, b2, sizeof(b2)));
	t->path_new = 1;
	agent_tun_arm(t);
}

int
agent_tun_relay_ack(struct agent *a, const uint8_t *p, size_t n)
{
	for (int i = 0; i < a->ntun; i++) {
		struct tun *t = a->tuns[i];
		int r = ntm_peer_relay_ack(&t->p, p, n, agent_now_ms());

		if (r < 0)
			continue;
		if (r > 0)
			log_debug("tunnel %s: relay ACK, peer %sbound", t->peer,
			    t->p.peer_bound ? "" : "not ");
		agent_tun_arm(t);
		return 0;
	}
	return -1;
}

/*
 * A handshake message made with the temporal key by someone without the
 * peer device's key: whoever holds K (a DC) is in the middle. Said loudly;
 * an initiator gives the tunnel up (its core is DEAD) and the waiters fail
 * with peer_identity.
 */
static void
identity_failed(struct tun *t, const struct sockaddr_storage *from)
{
	struct ntm_tun_stats st;
	char msg[512], b[64];

	ntm_tunnel_stats(t->p.t, &st);
	snprintf(msg, sizeof(msg), "the handshake from %s holds the tunnel's temporal key "
	    "but not the device key of %s (fingerprint %s): a server in the middle; "
	    "refused", ntm_sa_str((const struct sockaddr *)from, b, sizeof(b)), t->peer,
	    t->peer_fp);
	log_warnx("tunnel %s: %s", t->peer, msg);
	if (st.state == NTM_TUN_DEAD)
		t->a->hooks->tunnel_failed(t->a, 0, t->peer, "peer_identity", msg);
}

void
agent_tun_input(struct tun *t, uint8_t *p, size_t n, const struct sockaddr_storage *from,
    int sock)
{
	struct agent *a = t->a;
	struct ntm_peer_event ev;
	int path = ntm_peer_path(&t->p), punch = t->p.punch, r;

	r = ntm_peer_recv_via(&t->p, p, n, from, sock, agent_now_ms(), &ev);
	path_note(t, path, punch);
	if (r < 0 && !ev.authentic) {
		a->drops[agent_drop_reason(r)]++;
		if (r == NTM_ERR_IDENTITY)
			identity_failed(t, from);
		agent_tun_arm(t);
		return;
	}
	if (ev.authentic) {
		/* the peer holds the tunnel: nothing to remake */
		t->unanswered = 0;
		t->remakes = 0;
		t->remake_next = 0;
	}
	if (ev.moved) {
		char b1[64], b2[64];

		log_info("tunnel %s: endpoint %s -> %s", t->peer,
		    ev.had_ep ? ntm_sa_str((struct sockaddr *)&ev.old_ep, b1, sizeof(b1)) : "-",
		    ntm_sa_str((const struct sockaddr *)from, b2, sizeof(b2)));
		t->path_new = 1;
	}
	/* The first authentic datagram over a new path: what TCP lost while
	 * the path changed goes again now (a move's stall is then about the
	 * ping gap, not a backed-off retransmission timer). */
	if (t->path_new && t->p.has_ep &&
	    ntm_sa_equal((const struct sockaddr *)&t->p.ep, (const struct sockaddr *)from)) {
		t->path_new = 0;
		a->hooks->path_confirmed(a, t);
	}
	if (r < 0)
		a->drops[DROP_MALFORMED]++;	/* authentic, but not an IP packet */
	if (ev.established) {
		if (t->hs_sent)
			t->rtt_ms = (double)(agent_now_us() - t->hs_sent) / 1000.0;
		a->hooks->tunnel_up(a, t);
	}
	if (ev.payload && ntm_tunnel_is_ctl(ev.payload, ev.len))
		tun_ctl(t, ev.payload, ev.len);
	else if (ev.payload)
		inner_packet(t, ev.payload, ev.len);
	agent_tun_arm(t);
}
