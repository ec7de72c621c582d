/*
 * gc.c - the garbage collector, on a timer (gc_interval_s): expired
 * objects (row first, so nothing dangling is ever visible, then the file),
 * uploads idle for upload_idle_s, and token revocations past the token's
 * expiry. Each run handles at most CS_GC_BATCH of each.
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "cs.h"

static void
gc_objects(struct cs *cs, int64_t now)
{
	char hex[CS_GC_BATCH][CS_HEX_HASH + 1];
	int i, n = cs_db_expired(cs->db, now, hex, CS_GC_BATCH);

	for (i = 0; i < n; i++) {
		if (cs_db_obj_del(cs->db, hex[i]) < 0)
			continue;
		cs_obj_remove(cs, hex[i]);
		log_info("gc: object %s expired", hex[i]);
	}
}

static void
gc_uploads(struct cs *cs, int64_t now)
{
	char id[CS_GC_BATCH][CS_HEX_ID + 1];
	int i, n = cs_db_idle_uploads(cs->db, now - cs->srv->conf.upload_idle_s, id,
	    CS_GC_BATCH);

	for (i = 0; i < n; i++) {
		if (cs_upload_busy(cs, id[i]) || cs_db_upload_del(cs->db, id[i]) < 0)
			continue;
		cs_upload_forget(cs, id[i]);
		cs_tmp_remove(cs, id[i]);
		log_info("gc: upload %s abandoned", id[i]);
	}
}

void
cs_gc_run(struct cs *cs)
{
	int64_t now = now_unix();

	gc_objects(cs, now);
	gc_uploads(cs, now);
	(void)cs_db_forget_revoked(cs->db, now);
}

/* On the loop: a database held by another process puts what is left
 * off to the next run, instead of stopping the loop for the busy timeout. */
static void
gc_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cs *cs = arg;

	ntm_db_nowait(cs->db, 1);
	cs_gc_run(cs);
	ntm_db_nowait(cs->db, 0);
}

int
cs_gc_start(struct cs *cs, char *err, size_t errlen)
{
	struct timeval tv = { cs->srv->conf.gc_interval_s, 0 };

	cs->gc_ev = event_new(cs->srv->base, -1, EV_PERSIST, gc_cb, cs);
	if (cs->gc_ev == NULL || event_add(cs->gc_ev, &tv) < 0) {
		snprintf(err, errlen, "cannot start the garbage collector");
		return -1;
	}
	return 0;
}

void
cs_gc_stop(struct cs *cs)
{
	if (cs->gc_ev)
		event_free(cs->gc_ev);
	cs->gc_ev = NULL;
}
