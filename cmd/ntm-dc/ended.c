/*
 * ended.c - tokens that ended here reach the AS, and through it the CSs
 * (docs/protocol.md §3.1 POST /v1/as/logout, §7.5). A token ends at a
 * logout, or when a newer login of the same device replaces its session;
 * either way db.c records it in `ended_tokens` in the same transaction, so
 * nothing is lost to a crash or to an AS that is down. Every
 * DC_ENDED_EVERY_S seconds (and at once after a logout) the DC sends what
 * is due, signed; the row goes once the AS answered 200 (or 404: it does
 * not know the token, so there is nothing to revoke), else it is tried
 * again after 2, 4, 8 ... seconds, at most DC_ENDED_RETRY_MAX_S apart,
 * until the token expires.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "dc.h"
#include "msg.h"

#define DC_ENDED_EVERY_S	2
#define DC_ENDED_INFLIGHT	8
#define DC_ENDED_RETRY_MAX_S	300

struct ended_job {
	struct ended_job	*next;
	struct dc_ended		*e;
	char			 token_id[2 * NTM_TOKEN_ID + 1];
	int			 tries;
};

struct dc_ended {
	struct dc		*dc;
	struct event		*timer, *kick;
	struct ended_job	*jobs;
	int			 njobs;
	uint64_t		 sent, failed;
};

static void
job_done(struct ended_job *j, int ok)
{
	struct dc_ended *e = j->e;
	struct ended_job **pp;
	int64_t next = 0;

	if (!ok) {
		next = now_unix() + retry_wait_s(j->tries, DC_ENDED_RETRY_MAX_S);
		e->failed++;
	} else
		e->sent++;
	/* Not recorded while another process holds the database: the token
	 * then goes to the AS again, which answers it as before. */
	ntm_db_nowait(e->dc->db, 1);
	if (dc_db_ended_result(e->dc->db, j->token_id, next) < 0 && !ntm_db_busy(e->dc->db))
		log_warnx("ended token %.8s...: cannot record the try", j->token_id);
	ntm_db_nowait(e->dc->db, 0);
	for (pp = &e->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			e->njobs--;
			break;
		}
	free(j);
}

static void
on_sent(const struct ntm_http_result *res, void *arg)
{
	struct ended_job *j = arg;
	const char *code = ntm_error_code(res->json);

	if (res->err == 0 && (res->status == 200 ||
	    (res->status == 404 && code && strcmp(code, "unknown_token") == 0))) {
		log_info("ended token %.8s...: the AS took it (%ld)", j->token_id, res->status);
		job_done(j, 1);
		return;
	}
	/* Said once per token, not at every try. */
	if (j->tries == 0)
		log_warnx("ended token %.8s...: the AS did not take it (%s); tried again "
		    "until it does or the token expires", j->token_id,
		    res->err ? ntm_strerror(res->err) : code ? code : "refused");
	job_done(j, 0);
}

static int
take(const char *token_id, int tries, void *arg)
{
	struct dc_ended *e = arg;
	struct ended_job *j;
	struct ntm_m_as_logout m;
	json_t *body = NULL;
	int r;

	if (e->njobs >= DC_ENDED_INFLIGHT)
		return 0;
	for (j = e->jobs; j; j = j->next)
		if (strcmp(j->token_id, token_id) == 0)
			return 0;	/* in flight */
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return 0;
	j->e = e;
	j->tries = tries;
	snprintf(j->token_id, sizeof(j->token_id), "%s", token_id);
	j->next = e->jobs;
	e->jobs = j;
	e->njobs++;
	memset(&m, 0, sizeof(m));
	m.version = NTM_PROTOCOL_VERSION;
	m.token_id = token_id;
	if ((r = ntm_msg_as_logout_encode(&m, &body, NULL)) == 0)
		r = dc_as_post(e->dc, "logout", body, on_sent, j);
	json_decref(body);
	if (r < 0)
		job_done(j, 0);
	return 0;
}

static void
run(evutil_socket_t fd, short what, void *arg)
{
	struct dc_ended *e = arg;
	int r;

	if (e->njobs >= DC_ENDED_INFLIGHT)
		return;
	/* Its sweep of expired rows writes: a database held by another
	 * process puts the round off, not the loop. */
	ntm_db_nowait(e->dc->db, 1);
	r = dc_db_ended_due(e->dc->db, now_unix(), DC_ENDED_INFLIGHT + e->njobs, take, e);
	ntm_db_nowait(e->dc->db, 0);
	if (r < 0 && !ntm_db_busy(e->dc->db))
		log_warnx("cannot read the ended tokens");
}

void
dc_ended_kick(struct dc *dc)
{
	if (dc->ended)
		event_active(dc->ended->kick, EV_TIMEOUT, 0);
}

json_t *
dc_ended_stats(struct dc *dc)
{
	struct dc_ended *e = dc->ended;
	int64_t n = 0;

	if (e == NULL || dc_db_ended_count(dc->db, &n) < 0)
		return json_object();
	return json_pack("{s:I, s:I, s:I}", "waiting", (json_int_t)n,
	    "sent", (json_int_t)e->sent, "failed_tries", (json_int_t)e->failed);
}

int
dc_ended_start(struct dc *dc, char *err, size_t errlen)
{
	struct timeval tv = { DC_ENDED_EVERY_S, 0 };
	struct dc_ended *e;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dc->ended = e;
	e->dc = dc;
	if ((e->timer = event_new(dc->srv->base, -1, EV_PERSIST, run, e)) == NULL ||
	    (e->kick = event_new(dc->srv->base, -1, 0, run, e)) == NULL ||
	    event_add(e->timer, &tv) < 0) {
		snprintf(err, errlen, "cannot create the ended-token events");
		return -1;
	}
	event_active(e->kick, EV_TIMEOUT, 0);	/* what a previous run left */
	return 0;
}

void
dc_ended_stop(struct dc *dc)
{
	struct dc_ended *e = dc->ended;

	if (e == NULL)
		return;
	/* dc->httpc is freed first: no callback runs any more. */
	while (e->jobs) {
		struct ended_job *j = e->jobs;

		e->jobs = j->next;
		free(j);
	}
	if (e->timer)
		event_free(e->timer);
	if (e->kick)
		event_free(e->kick);
	free(e);
	dc->ended = NULL;
}
