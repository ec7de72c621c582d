/*
 * udp.c - the DC's registration socket (docs/protocol.md §4.2): one UDP
 * socket on udp_listen answering REG_REQ with REG_RESP from the address the
 * request came to (IP_PKTINFO / IPV6_RECVPKTINFO), and sending the NUDGE and
 * MOVED messages. The sessions it authenticates with are sess.c's; a client
 * that came online or moved is told to the rooms above through the hooks.
 * It also answers reflection probes (PROBE, §4.7) from anyone, never with
 * more bytes than the probe and at most probe_rate a second per source.
 * Datagrams are read IO_BATCH at a time (recvmmsg), and the answers made
 * in one callback leave together (sendmmsg), in the order they were made.
 *
 * Everything a peer sends that is malformed, forged, replayed or for an
 * unknown or ended session is dropped and counted, never answered.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <jansson.h>
#include <sodium.h>

#include "dc.h"
#include "dns.h"
#include "probe.h"
#include "reg.h"
#include "sess.h"

#define RECV_BURST	256	/* datagrams read per wakeup */
#define IO_BATCH	32	/* datagrams per recvmmsg, answers per sendmmsg */
#define RCVBUF_BYTES	(4 << 20)	/* the socket's receive buffer, asked */
#define REFRESH_MAX	16384	/* keepalive refreshes queued before a forced write */
#define REFRESH_MS	100	/* ... and the longest they wait */
#define WAITING_MAX	(32 * RECV_BURST)	/* changes (answers) waiting for the writer */
#define STATS_EVERY_S	60	/* counters logged at -v when they changed */
#define REG_LOG_MAX	100	/* registration lines at info per REG_LOG_S ... */
#define REG_LOG_S	10	/* ... the rest at debug, and counted in one line */

/* Drops and answers, by reason. */
struct dc_udp_counters {
	uint64_t	rx, reg_ok, resp_sent, nudge_sent, moved_sent;
	uint64_t	moves_held;	/* location changes over the limit (dcreg.h) */
	uint64_t	also, also_dropped;	/* second families taken, not taken */
	uint64_t	bad_header, bad_type, unknown_session, expired_session;
	uint64_t	replay, forged, malformed, miss_limited, send_error;
	uint64_t	writes;		/* transactions of locations committed */
	uint64_t	write_failed;	/* ... that failed (or could not be queued) */
	uint64_t	writer_full;	/* times reading paused: WAITING_MAX waiting */
	uint64_t	refresh_dropped; /* keepalive times not queued (stored later) */
};

/* Room for the local address of a datagram, as IP_PKTINFO/IPV6_PKTINFO. */
union dc_cmsg {
	char		buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) +
			    CMSG_SPACE(sizeof(struct in_pktinfo))];
	struct cmsghdr	align;
};

/* The datagrams of one recvmmsg (the buffers are reused: no allocation
 * per datagram). */
struct dc_rx {
	struct mmsghdr		 mh[IO_BATCH];
	struct iovec		 iov[IO_BATCH];
	struct sockaddr_storage	 from[IO_BATCH];
	union dc_cmsg		 cb[IO_BATCH];
	uint8_t			 buf[IO_BATCH][NTM_UDP_MAX + 1];
};

#define TX_LEN	(NTM_REG_RESP_LEN > NTM_PROBE_RESP_LEN ? NTM_REG_RESP_LEN : NTM_PROBE_RESP_LEN)

/* Answers (REG_RESP, probe answers) made in one callback, sent together
 * with one sendmmsg for up to IO_BATCH of them, in the order made. */
struct dc_tx {
	struct mmsghdr		 mh[IO_BATCH];
	struct iovec		 iov[IO_BATCH];
	struct sockaddr_storage	 to[IO_BATCH];
	union dc_cmsg		 cb[IO_BATCH];
	uint8_t			 buf[IO_BATCH][TX_LEN];
	int			 resp[IO_BATCH];	/* a REG_RESP: counted as answered */
	unsigned		 n;
};

/* A REG_REQ accepted in this burst, answered once its location is stored. */
struct dc_reg_done {
	uint8_t			 sid[NTM_SID_LEN];
	struct sockaddr_storage	 from, to;
	socklen_t		 fromlen;
	int			 has_to;
	uint64_t		 echo;
	int			 moved, came_online;
	int			 stored;	/* its location is in this batch's rows */
	int			 also;		/* of its second family (NTM_REG_F_ALSO) */
};

/* A keepalive whose time is to be stored: of the first location, or of
 * the second family's (also). */
struct dc_refresh {
	int64_t			 client_id;
	int			 also;
};

/*
 * One transaction for the writer thread: the changed locations of the
 * bursts read while the previous one was being written (answered when it
 * is committed), and the keepalive times flushed meanwhile. The arrays are
 * the job's own; the thread touches nothing else but its own connection
 * (rt->wdb), so the loop's connection is never shared.
 */
struct dc_wjob {
	struct dc		*dc;
	sqlite3			*db;		/* the writer's connection */
	struct dc_loc_row	*rows;		/* changes, in the order read */
	size_t			 nrows, caprows;
	struct dc_loc_row	*fresh;		/* keepalive times */
	size_t			 nfresh, capfresh;
	struct dc_reg_done	*done;		/* answers, in the order read */
	size_t			 ndone, capdone;
	int			 result;
};

struct dc_rt {
	int			 fd;
	int			 family;	/* of the socket */
	struct sockaddr_storage	 bound;
	struct event		*ev;
	struct ntm_probe_srv	*probe;		/* NULL: probe_rate 0 */
	double			 miss_tokens;
	int64_t			 miss_ms;
	struct dc_udp_counters	 c, logged;
	int64_t			 logged_at;
	struct dc_rx		*rx;
	struct dc_tx		*tx;
	/* Lines about registrations (a new location, offline, ...) in the
	 * current REG_LOG_S window: written at info, and held back (at debug). */
	int64_t			 reglog_at;
	unsigned		 reglog_lines;
	uint64_t		 reglog_held;
	/* One burst's location writes go in one transaction (one fsync, not
	 * one per device); its answers and hooks wait until they are stored. */
	struct dc_loc_row	 rows[RECV_BURST];
	size_t			 nrows;
	struct dc_reg_done	 done[RECV_BURST];
	size_t			 ndone;
	/* Keepalives of unchanged locations (only last_seen moves) wait up to
	 * REFRESH_MS and go in one transaction: at 100,000 devices that is a
	 * write every 100 ms, not one per wakeup of the socket. */
	struct dc_refresh	*refresh;	/* REFRESH_MAX */
	size_t			 nrefresh;
	struct event		*refresh_ev;
	/* The writes (and their fsync) are a thread's, on a connection of its
	 * own to the same WAL database: one transaction at a time, while the
	 * next collects what comes meanwhile (group commit: the busier, the
	 * bigger, never more than one fsync behind). At most WAITING_MAX
	 * changes wait; past that the socket is not read until it is written. */
	struct ntm_worker	*writer;	/* one thread; NULL: -n */
	sqlite3			*wdb;
	int			 busy;		/* a transaction is being written */
	struct dc_wjob		*next;		/* the one collecting, or NULL */
	int			 paused;	/* rt->ev removed: next is full */
	int			 stopping;
};

/* ---- sending --------------------------------------------------------------- */

/* Fills mh (with iov and cb, the caller's) to send to `to` from the local
 * address from (the one the request came to), when has_from. */
static void
msg_fill(struct msghdr *mh, struct iovec *iov, union dc_cmsg *cb,
    const struct sockaddr_storage *to, socklen_t tolen, const struct sockaddr_storage *from,
    int has_from)
{
	struct cmsghdr *cm;

	memset(mh, 0, sizeof(*mh));
	mh->msg_name = (void *)to;
	mh->msg_namelen = tolen;
	mh->msg_iov = iov;
	mh->msg_iovlen = 1;
	if (has_from && from->ss_family == AF_INET) {
		struct in_pktinfo pi;

		memset(&pi, 0, sizeof(pi));
		pi.ipi_spec_dst = ((const struct sockaddr_in *)from)->sin_addr;
		memset(cb, 0, sizeof(*cb));
		mh->msg_control = cb->buf;
		mh->msg_controllen = CMSG_SPACE(sizeof(pi));
		cm = CMSG_FIRSTHDR(mh);
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
	} else if (has_from && from->ss_family == AF_INET6) {
		struct in6_pktinfo pi;

		memset(&pi, 0, sizeof(pi));
		pi.ipi6_addr = ((const struct sockaddr_in6 *)from)->sin6_addr;
		memset(cb, 0, sizeof(*cb));
		mh->msg_control = cb->buf;
		mh->msg_controllen = CMSG_SPACE(sizeof(pi));
		cm = CMSG_FIRSTHDR(mh);
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
	}
}

/* Sends the queued answers: one sendmmsg for all of them, or more when
 * one fails (it is counted and passed over, as a failed sendmsg was). */
static void
tx_flush(struct dc_rt *rt)
{
	struct dc_tx *tx = rt->tx;
	unsigned off = 0;
	int k;

	if (tx == NULL)
		return;
	while (off < tx->n) {
		if ((k = sendmmsg(rt->fd, tx->mh + off, tx->n - off, 0)) < 0) {
			if (errno == EINTR)
				continue;
			rt->c.send_error++;
			off++;
			continue;
		}
		for (int i = 0; i < k; i++)
			if (tx->resp[off + i])
				rt->c.resp_sent++;
		off += (unsigned)k;
	}
	tx->n = 0;
}

/* Queues p (n bytes, at most TX_LEN) to `to` from `from`, for tx_flush,
 * which runs at the end of the callback or when IO_BATCH are queued. */
static void
tx_queue(struct dc_rt *rt, const struct sockaddr_storage *to, socklen_t tolen,
    const struct sockaddr_storage *from, int has_from, const uint8_t *p, size_t n, int resp)
{
	struct dc_tx *tx = rt->tx;
	unsigned i;

	if (tx->n == IO_BATCH)
		tx_flush(rt);
	i = tx->n++;
	memcpy(tx->buf[i], p, n);
	memcpy(&tx->to[i], to, tolen < sizeof(tx->to[i]) ? tolen : sizeof(tx->to[i]));
	tx->iov[i].iov_base = tx->buf[i];
	tx->iov[i].iov_len = n;
	msg_fill(&tx->mh[i].msg_hdr, &tx->iov[i], &tx->cb[i], &tx->to[i], tolen, from,
	    has_from);
	tx->resp[i] = resp;
}

/* Sends p to `to` from `from` now (what was queued goes first: datagrams
 * leave in the order they were made). */
static int
send_from(struct dc_rt *rt, const struct sockaddr_storage *to, socklen_t tolen,
    const struct sockaddr_storage *from, int has_from, const uint8_t *p, size_t n)
{
	struct iovec iov = { (void *)p, n };
	struct msghdr mh;
	union dc_cmsg cb;

	tx_flush(rt);
	msg_fill(&mh, &iov, &cb, to, tolen, from, has_from);
	if (sendmsg(rt->fd, &mh, 0) < 0) {
		rt->c.send_error++;
		return -1;
	}
	return 0;
}

int
dc_sess_nudge(struct dc *dc, struct dc_sess *s, uint32_t kind, uint32_t pending)
{
	struct dc_rt *rt = dc->rt;
	struct ntm_nudge n = { kind, pending };
	uint8_t out[NTM_NUDGE_LEN];
	char a[64];

	if (rt == NULL || s->peerlen == 0)
		return NTM_ERR_NOTFOUND;	/* not registered since the DC started */
	if (ntm_nudge_seal(&s->chan, &n, out, sizeof(out)) != NTM_NUDGE_LEN)
		return NTM_ERR_INVAL;
	if (send_from(rt, &s->peer, s->peerlen, &s->local, s->has_local, out, sizeof(out)) < 0)
		return NTM_ERR_IO;
	rt->c.nudge_sent++;
	log_debug("nudge %s at %s: kind %u, %u pending", s->fqdn,
	    ntm_sa_str((struct sockaddr *)&s->peer, a, sizeof(a)), kind, pending);
	return 0;
}

static void
send_nudge(struct dc *dc, struct dc_sess *s)
{
	(void)dc_sess_nudge(dc, s, NTM_NUDGE_DIRECTION, (uint32_t)s->npend);
}

int
dc_sess_queue(struct dc *dc, struct dc_sess *s, json_t *direction)
{
	int n;

	if (direction == NULL)
		return NTM_ERR_NOMEM;
	n = dc_sess_enqueue(dc, s, direction);
	send_nudge(dc, s);
	/* The webhook too: for a device the NUDGE may not reach. */
	dc_push_direction(dc, s->client_id, s->fqdn, n);
	return n;
}

int
dc_sess_moved(struct dc *dc, struct dc_sess *s, const uint8_t tid[NTM_TUNNEL_ID_LEN],
    const struct sockaddr_storage *endpoint)
{
	struct dc_rt *rt = dc->rt;
	struct ntm_moved m;
	uint8_t out[NTM_MOVED_LEN];
	char a[64], b[64];

	if (rt == NULL || s->peerlen == 0)
		return NTM_ERR_NOTFOUND;	/* not registered since the DC started */
	memset(&m, 0, sizeof(m));
	memcpy(m.tunnel_id, tid, NTM_TUNNEL_ID_LEN);
	m.endpoint = *endpoint;
	if (ntm_moved_seal(&s->chan, &m, out, sizeof(out)) != NTM_MOVED_LEN)
		return NTM_ERR_INVAL;
	if (send_from(rt, &s->peer, s->peerlen, &s->local, s->has_local, out, sizeof(out)) < 0)
		return NTM_ERR_IO;
	rt->c.moved_sent++;
	log_debug("moved to %s at %s: peer now at %s", s->fqdn,
	    ntm_sa_str((struct sockaddr *)&s->peer, a, sizeof(a)),
	    ntm_sa_str((const struct sockaddr *)endpoint, b, sizeof(b)));
	return 0;
}

/* ---- receiving ----------------------------------------------------------- */

/* Database look-ups for session ids not in the cache: a token bucket. */
static int
miss_allowed(struct dc_rt *rt)
{
	int64_t now = mono_ms();

	rt->miss_tokens += (double)(now - rt->miss_ms) * DC_MISS_RATE / 1000.0;
	if (rt->miss_tokens > DC_MISS_RATE)
		rt->miss_tokens = DC_MISS_RATE;
	rt->miss_ms = now;
	if (rt->miss_tokens < 1.0)
		return 0;
	rt->miss_tokens -= 1.0;
	return 1;
}

/* Writes the count of the registration lines held back in the window
 * that has ended (or, with force, in the current one: the DC stops), if
 * any, and starts a new window when now is past it. */
static void
reg_log_roll(struct dc_rt *rt, int64_t now, int force)
{
	if (now - rt->reglog_at < REG_LOG_S && !force)
		return;
	if (rt->reglog_held > 0)
		log_info("register: %llu more registration lines in the last %lld s "
		    "(written at -v; %u at most every %d s at info)",
		    (unsigned long long)rt->reglog_held, (long long)(now - rt->reglog_at),
		    REG_LOG_MAX, REG_LOG_S);
	rt->reglog_at = now;
	rt->reglog_lines = 0;
	rt->reglog_held = 0;
}

/* The level of the next line about a registration: info for the first
 * REG_LOG_MAX of a REG_LOG_S window, debug for the rest (counted, and
 * summed up in one line at info when the window ends), -1 when that line
 * would go nowhere (so its text is not even made). A burst of thousands of
 * devices registering writes a few lines, not one each. */
static int
reg_log_level(struct dc_rt *rt, int64_t now)
{
	reg_log_roll(rt, now, 0);
	if (rt->reglog_lines < REG_LOG_MAX) {
		rt->reglog_lines++;
		return NTM_LOG_INFO;
	}
	rt->reglog_held++;
	return log_enabled(NTM_LOG_DEBUG) ? NTM_LOG_DEBUG : -1;
}

#define reg_log(rt, now, ...) do {					\
	int lvl_ = reg_log_level((rt), (now));				\
	if (lvl_ >= 0)							\
		log_at(lvl_, __VA_ARGS__);				\
} while (0)

static void
locals_text(const struct ntm_location *l, char *buf, size_t cap)
{
	char a[64];
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < l->nlocals; i++) {
		int n = snprintf(buf + off, cap - off, "%s%s", i ? "," : "",
		    ntm_sa_str((const struct sockaddr *)&l->locals[i], a, sizeof(a)));
		if (n < 0 || (size_t)n >= cap - off)
			break;
		off += (size_t)n;
	}
}

static void
fill_row(const struct dc_sess *s, int offline, int64_t last_seen, struct dc_loc_row *r)
{
	memset(r, 0, sizeof(*r));
	r->client_id = s->client_id;
	ntm_sa_str((const struct sockaddr *)&s->reg.loc.reflexive, r->reflexive,
	    sizeof(r->reflexive));
	locals_text(&s->reg.loc, r->locals, sizeof(r->locals));
	r->natted = s->reg.loc.natted;
	r->agent = s->reg.agent;
	r->nat = s->reg.loc.nat;
	r->filter = s->reg.loc.filter;
	r->last_seen = last_seen;
	r->offline = offline;
	/* The DC keeps no second location (goodbye, the host lost or moved
	 * to that family, none yet): none is stored either. */
	r->drop_also = !s->reg.has_alt;
}

/* The second family's location (protocol.md §4.2) as a row of its own. */
static void
fill_also_row(const struct dc_sess *s, int64_t last_seen, struct dc_loc_row *r)
{
	memset(r, 0, sizeof(*r));
	r->also = 1;
	r->client_id = s->client_id;
	(void)ntm_hex_encode(r->session_id, sizeof(r->session_id), s->sid, NTM_SID_LEN);
	ntm_sa_str((const struct sockaddr *)&s->reg.alt.reflexive, r->reflexive,
	    sizeof(r->reflexive));
	locals_text(&s->reg.alt, r->locals, sizeof(r->locals));
	r->natted = s->reg.alt.natted;
	r->nat = s->reg.alt.nat;
	r->filter = s->reg.alt.filter;
	r->last_seen = last_seen;
}

/* ---- the writer thread --------------------------------------------------- */

static void
on_write(void *arg)
{
	struct dc_wjob *j = arg;

	j->result = dc_db_locations_write(j->db, j->rows, j->nrows, j->fresh, j->nfresh);
}

static void wjob_done(struct dc *dc, struct dc_wjob *j);

static void
wjob_free(struct dc_wjob *j)
{
	if (j) {
		free(j->rows);
		free(j->fresh);
		free(j->done);
		free(j);
	}
}

/* Appends n items of size sz to the array whose pointer is at arrp (*len
 * of *cap items), growing it; it stays as it was on failure. */
static int
grow_append(void *arrp, size_t *len, size_t *cap, const void *src, size_t n, size_t sz)
{
	void *arr;

	if (n == 0)
		return 0;
	memcpy(&arr, arrp, sizeof(arr));
	if (*len + n > *cap) {
		size_t c = *cap ? *cap : RECV_BURST;

		while (c < *len + n)
			c *= 2;
		if ((arr = realloc(arr, c * sz)) == NULL)
			return -1;
		memcpy(arrp, &arr, sizeof(arr));
		*cap = c;
	}
	memcpy((char *)arr + *len * sz, src, n * sz);
	*len += n;
	return 0;
}

static void on_written_cb(void *arg);

/* No room in the collecting transaction for another burst. */
static int
writer_full(const struct dc_rt *rt)
{
	return rt->next && (rt->next->nrows + RECV_BURST > WAITING_MAX ||
	    rt->next->ndone + RECV_BURST > WAITING_MAX);
}

/* Has the collecting transaction written, if none is being written. */
static void
writer_kick(struct dc *dc)
{
	struct dc_rt *rt = dc->rt;
	struct dc_wjob *j = rt->next;
	int e;

	if (rt->busy || j == NULL)
		return;
	rt->next = NULL;
	if ((e = ntm_worker_submit(rt->writer, on_write, on_written_cb, j)) < 0) {
		j->result = e;
		wjob_done(dc, j);
		wjob_free(j);
		return;
	}
	rt->busy = 1;
}

static void
on_written(struct dc *dc, struct dc_wjob *j)
{
	struct dc_rt *rt = dc->rt;

	rt->busy = 0;
	wjob_done(dc, j);
	wjob_free(j);
	if (rt->stopping)
		return;		/* dc_udp_stop writes what is left */
	writer_kick(dc);
	if (rt->paused && !rt->stopping && !writer_full(rt)) {
		if (event_add(rt->ev, NULL) == 0)
			rt->paused = 0;
	}
}

static void
on_written_cb(void *arg)
{
	struct dc_wjob *j = arg;

	on_written(j->dc, j);
}

/* Adds changes (n) and answers (nd), or keepalive times (nf), to the
 * collecting transaction and starts it if the writer is idle. On no
 * memory they are handled as a failed write, at once. */
static void
writer_add(struct dc *dc, const struct dc_loc_row *rows, size_t n,
    const struct dc_reg_done *done, size_t nd, const struct dc_loc_row *fresh, size_t nf)
{
	struct dc_rt *rt = dc->rt;
	struct dc_wjob *j = rt->next;

	if (j == NULL && (j = calloc(1, sizeof(*j))) != NULL) {
		j->dc = dc;
		j->db = rt->wdb;
		rt->next = j;
	}
	if (j == NULL ||
	    grow_append(&j->rows, &j->nrows, &j->caprows, rows, n, sizeof(*rows)) < 0 ||
	    grow_append(&j->done, &j->ndone, &j->capdone, done, nd, sizeof(*done)) < 0 ||
	    grow_append(&j->fresh, &j->nfresh, &j->capfresh, fresh, nf,
	    sizeof(*fresh)) < 0) {
		/* j (if any) keeps what it had; these fail alone. */
		struct dc_wjob tmp;

		memset(&tmp, 0, sizeof(tmp));
		tmp.dc = dc;
		tmp.rows = (struct dc_loc_row *)rows;
		tmp.nrows = n;
		tmp.done = (struct dc_reg_done *)done;
		tmp.ndone = nd;
		tmp.fresh = (struct dc_loc_row *)fresh;
		tmp.nfresh = nf;
		tmp.result = NTM_ERR_NOMEM;
		if (j && j->nrows + j->ndone + j->nfresh == 0) {
			rt->next = NULL;
			wjob_free(j);
		}
		wjob_done(dc, &tmp);
		return;
	}
	writer_kick(dc);
}

/* The row r was not stored: its session stores it as a change at its
 * next registration of that family. */
static void
unsaved(struct dc *dc, const struct dc_loc_row *r)
{
	struct dc_sess *s = dc_sess_by_client(dc, r->client_id);

	if (s == NULL)
		return;
	if (r->also)
		s->alt_dirty = 1;
	else
		s->reg.saved = 0;
}

/* Writes the queued refreshes, each with its session's location as it is
 * now (a change stored since is not undone: only a later time replaces a
 * stored one). */
static void
refresh_flush(struct dc *dc)
{
	struct dc_rt *rt = dc->rt;
	struct dc_loc_row *rows;
	struct dc_sess *s;
	size_t n = 0;

	if (rt->nrefresh == 0)
		return;
	/* The writer far behind: these times are not stored now; each
	 * session's next keepalive stores its location (saved 0). */
	if ((rt->next && rt->next->nfresh >= 4 * REFRESH_MAX) || rt->writer == NULL ||
	    (rows = malloc(rt->nrefresh * sizeof(*rows))) == NULL) {
		for (size_t i = 0; i < rt->nrefresh; i++) {
			struct dc_loc_row r = { .client_id = rt->refresh[i].client_id,
			    .also = rt->refresh[i].also };

			unsaved(dc, &r);
		}
		rt->c.refresh_dropped += rt->nrefresh;
		rt->nrefresh = 0;
		return;
	}
	for (size_t i = 0; i < rt->nrefresh; i++) {
		if ((s = dc_sess_by_client(dc, rt->refresh[i].client_id)) == NULL ||
		    !s->reg.has_loc)
			continue;
		if (!rt->refresh[i].also)
			fill_row(s, 0, s->reg.last_seen, &rows[n++]);
		else if (s->reg.has_alt && !s->alt_dirty)
			fill_also_row(s, s->reg.alt_seen, &rows[n++]);
	}
	rt->nrefresh = 0;
	if (n > 0)
		writer_add(dc, NULL, 0, NULL, 0, rows, n);
	free(rows);
}

static void
on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
	refresh_flush(arg);
}

/* Queues a keepalive time of the session (also: of its second family's
 * location) for the next REFRESH_MS write. */
static void
refresh_add(struct dc *dc, const struct dc_sess *s, int also)
{
	struct dc_rt *rt = dc->rt;
	struct timeval tv = { 0, REFRESH_MS * 1000 };

	if (rt->nrefresh == REFRESH_MAX)
		refresh_flush(dc);
	rt->refresh[rt->nrefresh].client_id = s->client_id;
	rt->refresh[rt->nrefresh].also = also;
	rt->nrefresh++;
	if (!evtimer_pending(rt->refresh_ev, NULL))
		(void)evtimer_add(rt->refresh_ev, &tv);
}

/* Queues the session's location (offline: its agent said it stops): a
 * change for the burst's transaction (reg_flush), a keepalive of an
 * unchanged location (refresh) for the next REFRESH_MS write. */
static void
save_location(struct dc *dc, struct dc_sess *s, int offline, int refresh, int64_t now)
{
	struct dc_rt *rt = dc->rt;

	if (refresh && rt->refresh_ev) {
		refresh_add(dc, s, 0);
	} else {
		if (rt->nrows == RECV_BURST)
			return;		/* cannot happen: one row per datagram at most */
		fill_row(s, offline, now, &rt->rows[rt->nrows++]);
	}
	s->reg.saved = now;	/* undone if the write fails */
}

/*
 * Queues the second family's location (reg.alt, just taken; changed: not
 * the one taken before) under the rules of the first: a change goes into
 * the burst's transaction, answered once it is committed, but one every
 * NTM_DCREG_CHANGE_EVERY_S at most (a change held back goes with a later
 * REG_REQ of that family, a keepalive at the latest, answered meanwhile
 * from memory as a held-back location is); an unchanged one has its time
 * stored once every keepalive_s. 1: a change is in the burst's rows.
 */
static int
save_also(struct dc *dc, struct dc_sess *s, int changed, int64_t now)
{
	struct dc_rt *rt = dc->rt;
	int recent = now >= s->alt_saved && now - s->alt_saved < NTM_DCREG_CHANGE_EVERY_S;

	if (rt->writer == NULL)
		return 0;
	if (changed)
		s->alt_dirty = 1;
	if (s->alt_dirty) {
		if (recent || rt->nrows == RECV_BURST)
			return 0;
		fill_also_row(s, now, &rt->rows[rt->nrows++]);
		s->alt_dirty = 0;
		s->alt_saved = now;	/* dirty again if the write fails */
		return 1;
	}
	if (now < s->alt_saved || now - s->alt_saved >= dc_keepalive(dc)) {
		refresh_add(dc, s, 1);
		s->alt_saved = now;
	}
	return 0;
}

static void
send_resp(struct dc *dc, struct dc_sess *s, const struct dc_reg_done *d)
{
	struct dc_rt *rt = dc->rt;
	struct ntm_reg_resp resp;
	uint8_t out[NTM_REG_RESP_LEN];

	memset(&resp, 0, sizeof(resp));
	resp.reflexive = s->reg.loc.reflexive;
	if (d->also) {		/* what this REG_REQ came from */
		resp.reflexive = d->from;
		ntm_sa_unmap(&resp.reflexive, NULL);
	}
	resp.keepalive_s = (uint32_t)dc_keepalive(dc);
	resp.pending = (uint32_t)s->npend;
	resp.echo = d->echo;
	if (ntm_reg_resp_seal(&s->chan, &resp, out, sizeof(out)) != NTM_REG_RESP_LEN)
		return;
	tx_queue(rt, &d->from, d->fromlen, &d->to, d->has_to, out, sizeof(out), 1);
}

/* A batch is committed (result 0) or failed: a failed one's locations are
 * stored again at their sessions' next registration (saved 0 makes it a
 * change, answered only once stored). Then, in the order of the burst, the
 * answers (a REG_RESP says the DC has the location: none for a location
 * that was not stored) and the hooks. */
static void
wjob_done(struct dc *dc, struct dc_wjob *j)
{
	struct dc_rt *rt = dc->rt;
	struct dc_sess *s;

	if (j->nrows + j->nfresh > 0 && j->result == 0)
		rt->c.writes++;
	if (j->nrows + j->nfresh > 0 && j->result < 0) {
		rt->c.write_failed++;
		log_warnx("cannot store %zu location%s: %s (stored at the next registration)",
		    j->nrows + j->nfresh, j->nrows + j->nfresh == 1 ? "" : "s",
		    ntm_strerror(j->result));
		for (size_t i = 0; i < j->nrows; i++)
			unsaved(dc, &j->rows[i]);
		for (size_t i = 0; i < j->nfresh; i++)
			unsaved(dc, &j->fresh[i]);
	}
	for (size_t i = 0; i < j->ndone; i++) {
		struct dc_reg_done *d = &j->done[i];

		/* Gone when it logged out, was evicted or replaced meanwhile. */
		if ((s = dc_sess_by_sid(dc, d->sid)) == NULL)
			continue;
		if (!d->stored || j->result == 0)
			send_resp(dc, s, d);
		if (rt->stopping)
			continue;	/* the rooms above have stopped */
		/* Tell the peers of its direct tunnels at once (MOVED, §4.6). */
		if (d->moved)
			dc_hooks_moved(dc, s->fqdn, d->also ? &s->reg.alt.reflexive :
			    &s->reg.loc.reflexive);
		/* Back online: cache entries that arrived meanwhile get a NUDGE. */
		if (d->came_online && (s = dc_sess_by_sid(dc, d->sid)) != NULL)
			dc_hooks_online(dc, s);
	}
	tx_flush(rt);
}

/* The end of a burst: its changed locations join the writer's next
 * transaction, answered once it is committed. A burst with nothing to
 * store is answered at once, unless a transaction is being written or
 * collected: then it waits its turn, so that no REG_RESP overtakes one of
 * an earlier location of the same device. */
static void
reg_flush(struct dc *dc)
{
	struct dc_rt *rt = dc->rt;

	if (rt->writer && (rt->nrows > 0 || (rt->ndone > 0 && (rt->busy || rt->next)))) {
		writer_add(dc, rt->rows, rt->nrows, rt->done, rt->ndone, NULL, 0);
	} else if (rt->ndone > 0) {
		struct dc_wjob now = { .dc = dc, .done = rt->done, .ndone = rt->ndone };

		wjob_done(dc, &now);
	}
	rt->nrows = 0;
	rt->ndone = 0;
}

/* The session a REG_REQ names, from the cache or else (rate limited) the
 * database; NULL when it is dropped (counted). */
static struct dc_sess *
reg_session(struct dc *dc, const uint8_t *sid, int64_t now)
{
	struct dc_rt *rt = dc->rt;
	struct dc_sess *s;
	struct dc_client cl;
	struct dc_session ss;
	char hex[2 * NTM_SID_LEN + 1];

	if (sid == NULL) {
		rt->c.malformed++;
		return NULL;
	}
	if ((s = dc_sess_by_sid(dc, sid)) == NULL) {
		if (!miss_allowed(rt)) {
			rt->c.miss_limited++;
			return NULL;
		}
		if (ntm_hex_encode(hex, sizeof(hex), sid, NTM_SID_LEN) < 0 ||
		    dc_db_session_by_id(dc->db, hex, now, &cl, &ss) < 0 ||
		    (s = dc_sess_add(dc, &cl, &ss)) == NULL) {
			ntm_wipe(&ss, sizeof(ss));
			rt->c.unknown_session++;
			return NULL;
		}
		ntm_wipe(&ss, sizeof(ss));
	}
	if (s->expires <= now) {
		rt->c.expired_session++;
		return NULL;
	}
	return s;
}

/* The answer to a REG_REQ of this burst, queued in order with the others
 * (NULL: the burst is full, which one datagram at most each cannot make). */
static struct dc_reg_done *
done_add(struct dc_rt *rt, const struct dc_sess *s, const struct ntm_dcreg_act *act,
    const struct sockaddr_storage *from, socklen_t fromlen,
    const struct sockaddr_storage *to, int has_to)
{
	struct dc_reg_done *d;

	if (rt->ndone == RECV_BURST)
		return NULL;
	d = &rt->done[rt->ndone++];
	memset(d, 0, sizeof(*d));
	memcpy(d->sid, s->sid, sizeof(d->sid));
	d->from = *from;
	d->fromlen = fromlen;
	d->has_to = has_to;
	if (has_to)
		d->to = *to;
	d->echo = act->echo;
	d->moved = act->moved;
	return d;
}

/* Decodes a REG_REQ, has lib/core/dcreg.c decide, and does what it says. */
static void
on_reg_req(struct dc *dc, const uint8_t *p, size_t n, const struct sockaddr_storage *from,
    socklen_t fromlen, const struct sockaddr_storage *to, int has_to)
{
	struct dc_rt *rt = dc->rt;
	struct dc_sess *s;
	struct ntm_reg_req req;
	struct ntm_dcreg_act act;
	struct dc_reg_done *d;
	struct ntm_location alt;
	char a[64];
	int64_t now = now_unix();
	int e, stored, had_alt;

	if ((s = reg_session(dc, ntm_reg_sid(p, n), now)) == NULL)
		return;
	if ((e = ntm_reg_req_open(&s->chan, p, n, &req)) < 0) {
		if (e == NTM_ERR_REPLAY)
			rt->c.replay++;
		else if (e == NTM_ERR_CRYPTO)
			rt->c.forged++;
		else
			rt->c.malformed++;
		return;
	}
	/* The second location as it was: is the one taken a change? */
	had_alt = s->reg.has_alt;
	if (req.flags & NTM_REG_F_ALSO)
		alt = s->reg.alt;
	if (ntm_dcreg_decide(&s->reg, &req, from, fromlen, now, dc_keepalive(dc),
	    DC_ONLINE_FACTOR, &s->reg, &act) < 0)
		return;
	if (act.verdict == NTM_DCREG_STALE) {
		/* Sent before the goodbye, delivered after it. */
		rt->c.replay++;
		return;
	}
	if (act.verdict == NTM_DCREG_ALSO_DROPPED) {
		/* A second family with no location to go with (the DC
		 * restarted, say): the agent sends it again in a keepalive. */
		rt->c.also_dropped++;
		return;
	}
	rt->c.reg_ok++;
	dc_sess_touch(dc, s);
	if (act.limited)
		rt->c.moves_held++;
	if (act.verdict == NTM_DCREG_GOODBYE) {
		if (act.log)
			reg_log(rt, now, "register %s: offline (its agent stopped)", s->fqdn);
		if (act.store)
			save_location(dc, s, 1, 0, now);
		return;
	}
	if (act.verdict == NTM_DCREG_ALSO) {
		rt->c.also++;
		if (act.log)
			reg_log(rt, now, "register %s also from %s: %s", s->fqdn,
			    ntm_sa_str((struct sockaddr *)&s->reg.alt.reflexive, a, sizeof(a)),
			    s->reg.alt.natted ? "natted" : "global");
		/* Stored as the first location is, answered in order with
		 * the others; the address the DC sends to stays the first
		 * location's. */
		stored = save_also(dc, s, !had_alt ||
		    memcmp(&alt, &s->reg.alt, sizeof(alt)) != 0, now);
		if ((d = done_add(rt, s, &act, from, fromlen, to, has_to)) != NULL) {
			d->also = 1;
			d->stored = stored;
		}
		return;
	}
	if (act.alt_gone)
		reg_log(rt, now, "register %s: its location in the other family is gone",
		    s->fqdn);
	if (act.log)
		reg_log(rt, now, "register %s from %s: %s%s%s%s%s%s", s->fqdn,
		    ntm_sa_str((struct sockaddr *)&s->reg.loc.reflexive, a, sizeof(a)),
		    s->reg.loc.natted ? "natted" : "global", s->reg.agent ? ", agent" : "",
		    s->reg.loc.nat ? ", nat " : "",
		    s->reg.loc.nat ? ntm_nat_name((enum ntm_nat)s->reg.loc.nat) : "",
		    s->reg.loc.filter ? ", filtering " : "",
		    s->reg.loc.filter ? ntm_filter_name((enum ntm_filter)s->reg.loc.filter) : "");
	memcpy(&s->peer, from, sizeof(*from));
	s->peerlen = fromlen;
	s->has_local = has_to;
	if (has_to)
		s->local = *to;
	/* A keepalive whose location was never stored (a failed write) is
	 * stored as a change: answered once it is. */
	stored = act.store && (act.verdict != NTM_DCREG_REFRESH || s->reg.saved == 0);
	if (act.store)
		save_location(dc, s, 0, !stored, now);
	dc_sess_expire(s, now);
	if ((d = done_add(rt, s, &act, from, fromlen, to, has_to)) == NULL)
		return;
	d->came_online = act.came_online;
	d->stored = stored;
}

/* A reflection probe: the address it came from, as long as it was, from
 * the address it came to; or nothing (counted by lib/core/probe.c). */
static void
on_probe(struct dc *dc, const uint8_t *p, size_t n, const struct sockaddr_storage *from,
    socklen_t fromlen, const struct sockaddr_storage *to, int has_to)
{
	struct dc_rt *rt = dc->rt;
	uint8_t out[NTM_PROBE_RESP_LEN];
	size_t len;

	if (rt->probe == NULL) {
		rt->c.bad_type++;
		return;
	}
	len = ntm_probe_srv_input(rt->probe, p, n, (const struct sockaddr *)from, fromlen,
	    mono_ms(), out, sizeof(out));
	if (len > 0)
		tx_queue(rt, from, fromlen, to, has_to, out, len, 0);
}

/* The local address a datagram came to, from its IP_PKTINFO/IPV6_PKTINFO. */
static int
pktinfo_dst(struct msghdr *mh, struct sockaddr_storage *to)
{
	struct cmsghdr *cm;

	memset(to, 0, sizeof(*to));
	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			struct sockaddr_in *s4 = (struct sockaddr_in *)to;

			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			s4->sin_family = AF_INET;
			s4->sin_addr = pi.ipi_addr;
			return 1;
		}
		if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)to;

			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			s6->sin6_family = AF_INET6;
			s6->sin6_addr = pi.ipi6_addr;
			return 1;
		}
	}
	return 0;
}

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dc *dc = arg;
	struct dc_rt *rt = dc->rt;
	struct dc_rx *rx = rt->rx;
	struct sockaddr_storage to;
	int got, n, type, has_to;

	/* Room for this burst's changes and answers: else the datagrams wait
	 * in the socket until the writer took the collected ones. */
	if (writer_full(rt)) {
		if (!rt->paused && event_del(rt->ev) == 0) {
			rt->paused = 1;
			rt->c.writer_full++;
		}
		return;
	}
	/* Up to RECV_BURST datagrams, IO_BATCH per system call. */
	for (got = 0; got < RECV_BURST; got += n) {
		int want = RECV_BURST - got < IO_BATCH ? RECV_BURST - got : IO_BATCH;

		for (int i = 0; i < want; i++) {
			struct msghdr *mh = &rx->mh[i].msg_hdr;

			rx->iov[i].iov_base = rx->buf[i];
			rx->iov[i].iov_len = sizeof(rx->buf[i]);
			memset(mh, 0, sizeof(*mh));
			mh->msg_name = &rx->from[i];
			mh->msg_namelen = sizeof(rx->from[i]);
			mh->msg_iov = &rx->iov[i];
			mh->msg_iovlen = 1;
			mh->msg_control = rx->cb[i].buf;
			mh->msg_controllen = sizeof(rx->cb[i].buf);
		}
		if ((n = recvmmsg(fd, rx->mh, (unsigned)want, MSG_DONTWAIT, NULL)) < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("udp recvmmsg");
			break;
		}
		for (int i = 0; i < n; i++) {
			struct msghdr *mh = &rx->mh[i].msg_hdr;
			const uint8_t *buf = rx->buf[i];
			size_t len = rx->mh[i].msg_len;

			rt->c.rx++;
			if (mh->msg_flags & MSG_TRUNC) {
				rt->c.bad_header++;
				continue;
			}
			has_to = pktinfo_dst(mh, &to);
			if ((type = ntm_msg_validate(buf, len)) < 0) {
				rt->c.bad_header++;
				continue;
			}
			if (type == NTM_MSG_PROBE) {
				on_probe(dc, buf, len, &rx->from[i], mh->msg_namelen, &to, has_to);
				continue;
			}
			if (type != NTM_MSG_REG_REQ) {
				rt->c.bad_type++;
				continue;
			}
			on_reg_req(dc, buf, len, &rx->from[i], mh->msg_namelen, &to, has_to);
		}
		if (n < want)
			break;		/* the socket is empty */
	}
	reg_flush(dc);
	tx_flush(rt);
}

/* ---- counters ------------------------------------------------------------ */

json_t *
dc_udp_stats(struct dc *dc)
{
	const struct dc_udp_counters *c;
	struct dc_sess_counts sc;
	struct ntm_probe_stats ps;
	json_t *j;

	if (dc->rt == NULL)
		return json_object();
	c = &dc->rt->c;
	dc_sess_counts(dc, &sc);
	memset(&ps, 0, sizeof(ps));
	if (dc->rt->probe)
		ntm_probe_srv_stats(dc->rt->probe, &ps);
	j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, "
	    "s:I, s:I, s:I, s:I, s:I, s:I}, s:I}",
	    "received", (json_int_t)c->rx, "registered", (json_int_t)c->reg_ok,
	    "registered_also", (json_int_t)c->also,
	    "answered", (json_int_t)c->resp_sent, "nudged", (json_int_t)c->nudge_sent,
	    "moved", (json_int_t)c->moved_sent, "moves_held", (json_int_t)c->moves_held,
	    "sessions", (json_int_t)sc.sessions,
	    "dropped",
	    "bad_header", (json_int_t)c->bad_header, "bad_type", (json_int_t)c->bad_type,
	    "unknown_session", (json_int_t)c->unknown_session,
	    "expired_session", (json_int_t)c->expired_session,
	    "replay", (json_int_t)c->replay, "forged", (json_int_t)c->forged,
	    "malformed", (json_int_t)c->malformed, "rate_limited", (json_int_t)c->miss_limited,
	    "send_error", (json_int_t)c->send_error, "also_alone", (json_int_t)c->also_dropped,
	    "direction_overflow",
	    (json_int_t)sc.dropped, "cache_evicted", (json_int_t)sc.evicted,
	    "keepalive_s", (json_int_t)dc_keepalive(dc));
	if (j == NULL)
		return NULL;
	json_object_set_new(j, "probes_answered", json_integer((json_int_t)ps.answered));
	/* The writer thread: transactions committed, failed, locations waiting;
	 * how often the socket was left unread because WAITING_MAX waited, and
	 * keepalive times not stored because the writer was far behind. */
	json_object_set_new(j, "location_writes", json_integer((json_int_t)c->writes));
	json_object_set_new(j, "location_writes_failed",
	    json_integer((json_int_t)c->write_failed));
	json_object_set_new(j, "location_writes_waiting",
	    json_integer(dc->rt->next ? (json_int_t)(dc->rt->next->nrows + dc->rt->next->nfresh) : 0));
	json_object_set_new(j, "location_refresh_dropped",
	    json_integer((json_int_t)c->refresh_dropped));
	json_object_set_new(j, "location_writer_full", json_integer((json_int_t)c->writer_full));
	/* Online devices by the NAT kind their agents registered. */
	for (int k = 0; k < 5; k++) {
		char key[48], *ch;

		snprintf(key, sizeof(key), "nat_%s", ntm_nat_name((enum ntm_nat)k));
		for (ch = key; *ch; ch++)
			if (*ch == '-')
				*ch = '_';
		json_object_set_new(j, key, json_integer((json_int_t)sc.nat[k]));
	}
	/* And by the filtering they registered. */
	for (int k = 0; k <= NTM_FILTER_MAX; k++) {
		char key[48], *ch;

		snprintf(key, sizeof(key), "filter_%s", ntm_filter_name((enum ntm_filter)k));
		for (ch = key; *ch; ch++)
			if (*ch == '-')
				*ch = '_';
		json_object_set_new(j, key, json_integer((json_int_t)sc.filter[k]));
	}
	json_object_set_new(json_object_get(j, "dropped"), "probe_limited",
	    json_integer((json_int_t)ps.limited));
	json_object_set_new(json_object_get(j, "dropped"), "probe_malformed",
	    json_integer((json_int_t)ps.malformed));
	return j;
}

static void
log_stats(struct dc *dc, int level_info)
{
	const struct dc_udp_counters *c = &dc->rt->c;
	struct dc_sess_counts sc;
	struct ntm_probe_stats ps;
	char line[640];

	dc_sess_counts(dc, &sc);
	memset(&ps, 0, sizeof(ps));
	if (dc->rt->probe)
		ntm_probe_srv_stats(dc->rt->probe, &ps);
	snprintf(line, sizeof(line), "udp: rx %llu registered %llu answered %llu nudged %llu "
	    "moves_held %llu sessions %zu probes_answered %llu; dropped: probe_limited %llu "
	    "bad_header %llu bad_type %llu unknown_session %llu "
	    "expired_session %llu replay %llu forged %llu malformed %llu rate_limited %llu "
	    "send_error %llu direction_overflow %llu",
	    (unsigned long long)c->rx, (unsigned long long)c->reg_ok,
	    (unsigned long long)c->resp_sent, (unsigned long long)c->nudge_sent,
	    (unsigned long long)c->moves_held, sc.sessions, (unsigned long long)ps.answered,
	    (unsigned long long)ps.limited, (unsigned long long)c->bad_header,
	    (unsigned long long)c->bad_type, (unsigned long long)c->unknown_session,
	    (unsigned long long)c->expired_session, (unsigned long long)c->replay,
	    (unsigned long long)c->forged, (unsigned long long)c->malformed,
	    (unsigned long long)c->miss_limited, (unsigned long long)c->send_error,
	    (unsigned long long)sc.dropped);
	if (level_info)
		log_info("%s", line);
	else
		log_debug("%s", line);
	dc->rt->logged = *c;
}

void
dc_udp_tick(struct dc *dc)
{
	int64_t now = now_unix();

	if (dc->rt == NULL)
		return;
	reg_log_roll(dc->rt, now, 0);
	if (now - dc->rt->logged_at >= STATS_EVERY_S &&
	    memcmp(&dc->rt->c, &dc->rt->logged, sizeof(dc->rt->c)) != 0) {
		log_stats(dc, 0);
		dc->rt->logged_at = now;
	}
}

/* ---- start / stop -------------------------------------------------------- */

int
dc_udp_start(struct dc *dc, char *err, size_t errlen)
{
	struct srv *s = dc->srv;
	struct dc_rt *rt;
	struct sockaddr_storage ss;
	struct dc_sess_counts sc;
	socklen_t len, optlen;
	int on = 1, off = 0, rcvbuf;
	char a[64];

	if ((rt = calloc(1, sizeof(*rt))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rt->fd = -1;
	if ((rt->refresh = calloc(REFRESH_MAX, sizeof(*rt->refresh))) == NULL ||
	    (rt->rx = calloc(1, sizeof(*rt->rx))) == NULL ||
	    (rt->tx = calloc(1, sizeof(*rt->tx))) == NULL) {
		free(rt->refresh);
		free(rt->rx);
		free(rt);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rt->miss_tokens = DC_MISS_RATE;
	rt->miss_ms = mono_ms();
	rt->logged_at = rt->reglog_at = now_unix();
	dc->rt = rt;
	if (s->conf.udp_listen == NULL || s->check_only)
		return 0;
	if (ntm_sa_parse(&ss, &len, s->conf.udp_listen) < 0) {
		snprintf(err, errlen, "udp_listen '%s' is not ip:port", s->conf.udp_listen);
		return -1;
	}
	if (s->conf.probe_rate > 0) {
		uint8_t key[16];

		randombytes_buf(key, sizeof(key));
		rt->probe = ntm_probe_srv_new((double)s->conf.probe_rate,
		    (double)(NTM_PROBE_BURST_S * s->conf.probe_rate), NTM_PROBE_TOTAL_RATE, key);
		if (rt->probe == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	rt->family = ss.ss_family;
	if ((rt->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "udp_listen %s: socket: %s", s->conf.udp_listen,
		    strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_INET6) {
		/* "[::]:port" serves IPv4 too; a specific IPv6 address only IPv6. */
		(void)setsockopt(rt->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		(void)setsockopt(rt->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
	}
	(void)setsockopt(rt->fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
	/* Room for a burst (devices all registering again at once, or a
	 * loop busy for a moment): the kernel's default holds a few hundred
	 * REG_REQs (208 KiB), and what does not fit is dropped. Beyond
	 * net.core.rmem_max only when started as root. */
	rcvbuf = RCVBUF_BYTES;
	if (setsockopt(rt->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(rt->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	optlen = sizeof(rcvbuf);
	if (getsockopt(rt->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &optlen) < 0)
		rcvbuf = 0;
	if (bind(rt->fd, (struct sockaddr *)&ss, len) < 0) {
		snprintf(err, errlen, "udp_listen %s: %s", s->conf.udp_listen, strerror(errno));
		return -1;
	}
	len = sizeof(rt->bound);
	if (getsockname(rt->fd, (struct sockaddr *)&rt->bound, &len) < 0) {
		snprintf(err, errlen, "udp_listen %s: getsockname: %s", s->conf.udp_listen,
		    strerror(errno));
		return -1;
	}
	/* The writer's own connection: the loop's (dc->db) stays the loop's. */
	if (dc_db_open(s->conf.db, &rt->wdb, err, errlen) < 0)
		return -1;
	if ((rt->writer = ntm_worker_new(s->base, 1)) == NULL) {
		snprintf(err, errlen, "cannot start the location writer thread");
		return -1;
	}
	if ((rt->refresh_ev = evtimer_new(s->base, on_refresh_timer, dc)) == NULL ||
	    (rt->ev = event_new(s->base, rt->fd, EV_READ | EV_PERSIST, on_readable, dc)) == NULL ||
	    event_add(rt->ev, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the UDP socket");
		return -1;
	}
	dc_dns_set_udp(dc, (struct sockaddr *)&rt->bound);
	dc_sess_counts(dc, &sc);
	log_info("registration on udp %s (keepalive %lds, %zu sessions cached, "
	    "probes %ld/s per source, receive buffer %d KiB)",
	    ntm_sa_str((struct sockaddr *)&rt->bound, a, sizeof(a)), s->conf.keepalive_s,
	    sc.sessions, s->conf.probe_rate, rcvbuf / 1024);
	return 0;
}

void
dc_udp_stop(struct dc *dc)
{
	struct dc_rt *rt = dc->rt;

	if (rt == NULL)
		return;
	rt->stopping = 1;
	if (rt->refresh_ev) {
		refresh_flush(dc);
		event_free(rt->refresh_ev);
	}
	/* Every location written and answered before the socket closes: the
	 * transaction being written, then (the thread joined) the one that
	 * was collecting, here. */
	ntm_worker_free(rt->writer);
	rt->writer = NULL;
	if (rt->next) {
		struct dc_wjob *j = rt->next;

		rt->next = NULL;
		j->result = dc_db_locations_write(rt->wdb, j->rows, j->nrows, j->fresh, j->nfresh);
		wjob_done(dc, j);
		wjob_free(j);
	}
	tx_flush(rt);
	ntm_db_close(rt->wdb);
	rt->wdb = NULL;
	if (rt->ev) {
		reg_log_roll(rt, now_unix(), 1);
		log_stats(dc, 1);
		event_free(rt->ev);
	}
	if (rt->fd >= 0)
		close(rt->fd);
	ntm_probe_srv_free(rt->probe);
	free(rt->refresh);
	free(rt->rx);
	free(rt->tx);
	free(rt);
	dc->rt = NULL;
}
