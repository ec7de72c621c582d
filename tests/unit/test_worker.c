/* test_worker.c - thread pool completions on the event loop. */
#include <pthread.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "ntm.h"
#include "unit.h"

#define NJOBS	200

struct job {
	int		 n, result;
	pthread_t	 ran_on;
	int		 done_on_loop;
};

static pthread_t loop_thread;
static int done_count;
static struct event_base *base;

static void
work(void *arg)
{
	struct job *j = arg;

	j->ran_on = pthread_self();
	j->result = j->n * j->n;
}

static void
done(void *arg)
{
	struct job *j = arg;

	j->done_on_loop = pthread_equal(pthread_self(), loop_thread);
	if (++done_count == NJOBS)
		event_base_loopbreak(base);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(base);
}

TEST(pool)
{
	static struct job jobs[NJOBS];
	struct ntm_worker *w;
	struct event *t;
	struct timeval tv = { 10, 0 };
	int off_loop = 0;

	CHECK_EQ(evthread_use_pthreads(), 0);
	base = event_base_new();
	loop_thread = pthread_self();
	CHECK(ntm_worker_new(base, 0) == NULL);
	CHECK(ntm_worker_new(base, 1000) == NULL);
	w = ntm_worker_new(base, 4);
	CHECK(w != NULL);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i].n = i;
		CHECK_EQ(ntm_worker_submit(w, work, done, &jobs[i]), 0);
	}
	CHECK_EQ(ntm_worker_submit(w, NULL, done, NULL), NTM_ERR_INVAL);
	t = evtimer_new(base, timeout_cb, NULL);
	evtimer_add(t, &tv);
	event_base_dispatch(base);
	CHECK_EQ(done_count, NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		CHECK_EQ(jobs[i].result, i * i);
		CHECK_EQ(jobs[i].done_on_loop, 1);
		off_loop += !pthread_equal(jobs[i].ran_on, loop_thread);
	}
	CHECK_EQ(off_loop, NJOBS);
	event_free(t);
	ntm_worker_free(w);
	ntm_worker_free(NULL);
	event_base_free(base);
}

/* Freeing with jobs still queued runs them and their done callbacks. */
TEST(free_drains)
{
	static struct job jobs[20];
	struct ntm_worker *w;

	base = event_base_new();
	done_count = 0;
	w = ntm_worker_new(base, 1);
	for (int i = 0; i < 20; i++) {
		jobs[i].n = i + 1;
		CHECK_EQ(ntm_worker_submit(w, work, done, &jobs[i]), 0);
	}
	ntm_worker_free(w);
	CHECK_EQ(done_count, 20);
	for (int i = 0; i < 20; i++)
		CHECK_EQ(jobs[i].result, (i + 1) * (i + 1));
	event_base_free(base);
}

UNIT_MAIN(T(pool), T(free_drains))
