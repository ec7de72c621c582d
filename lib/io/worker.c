/*
 * worker.c - a small thread pool for slow work (password hashing) whose
 * completions run back on the libevent loop.
 *
 * Workers push finished jobs onto a locked queue and wake the loop with
 * event_active() on a pure "activation" event; that is safe from another
 * thread once evthread_use_pthreads() made the base lockable.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>

#include "ntm.h"

#define WORKER_THREADS_MAX	64
#define WORKER_QUEUE_MAX	4096

struct job {
	struct job	*next;
	void		(*work)(void *);
	void		(*done)(void *);
	void		*arg;
};

struct jobq {
	struct job	*head, **tail;
};

struct ntm_worker {
	struct event_base	*base;
	struct event		*ev;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct jobq		 todo, done;
	size_t			 queued;	/* in todo or running */
	int			 stopping;
	int			 nice;		/* the threads' CPU priority */
	int			 nthreads;
	pthread_t		 threads[WORKER_THREADS_MAX];
};

static void
jobq_init(struct jobq *q)
{
	q->head = NULL;
	q->tail = &q->head;
}

static void
jobq_push(struct jobq *q, struct job *j)
{
	j->next = NULL;
	*q->tail = j;
	q->tail = &j->next;
}

static struct job *
jobq_pop(struct jobq *q)
{
	struct job *j = q->head;

	if (j != NULL) {
		q->head = j->next;
		if (q->head == NULL)
			q->tail = &q->head;
	}
	return j;
}

static void *
worker_main(void *arg)
{
	struct ntm_worker *w = arg;
	struct job *j;
	int nice = 0, want;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->todo.head == NULL && !w->stopping)
			pthread_cond_wait(&w->cv, &w->mu);
		if ((j = jobq_pop(&w->todo)) == NULL)
			break;		/* stopping and drained */
		want = w->nice;
		pthread_mutex_unlock(&w->mu);
		/* This thread's own priority (a failure leaves it as it was). */
		if (want != nice && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
		    want) == 0)
			nice = want;
		j->work(j->arg);
		pthread_mutex_lock(&w->mu);
		jobq_push(&w->done, j);
		w->queued--;
		event_active(w->ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Runs every finished job's done callback; on the loop's thread. */
static void
worker_drain(struct ntm_worker *w)
{
	struct jobq q;
	struct job *j;

	pthread_mutex_lock(&w->mu);
	q = w->done;
	if (q.head == NULL)
		q.tail = &q.head;
	jobq_init(&w->done);
	pthread_mutex_unlock(&w->mu);
	while ((j = jobq_pop(&q)) != NULL) {
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void
worker_cb(evutil_socket_t fd, short what, void *arg)
{
	worker_drain(arg);
}

struct ntm_worker *
ntm_worker_new(struct event_base *base, int nthreads)
{
	struct ntm_worker *w;

	if (base == NULL || nthreads < 1 || nthreads > WORKER_THREADS_MAX)
		return NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->base = base;
	jobq_init(&w->todo);
	jobq_init(&w->done);
	if (pthread_mutex_init(&w->mu, NULL) != 0) {
		free(w);
		return NULL;
	}
	if (pthread_cond_init(&w->cv, NULL) != 0) {
		pthread_mutex_destroy(&w->mu);
		free(w);
		return NULL;
	}
	if ((w->ev = event_new(base, -1, 0, worker_cb, w)) == NULL)
		goto fail;
	for (; w->nthreads < nthreads; w->nthreads++)
		if (pthread_create(&w->threads[w->nthreads], NULL, worker_main,
		    w) != 0)
			goto fail;
	return w;

fail:
	ntm_worker_free(w);
	return NULL;
}

void
ntm_worker_set_nice(struct ntm_worker *w, int nice)
{
	pthread_mutex_lock(&w->mu);
	w->nice = nice;
	pthread_mutex_unlock(&w->mu);
}

/*
 * Lets queued jobs finish, joins the threads, then runs the pending done
 * callbacks here (so their arguments are not leaked). Call it from the
 * loop's thread or after the loop stopped.
 */
void
ntm_worker_free(struct ntm_worker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	if (w->ev != NULL) {
		event_del(w->ev);
		worker_drain(w);
		event_free(w->ev);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

int
ntm_worker_submit(struct ntm_worker *w, void (*work)(void *),
    void (*done)(void *), void *arg)
{
	struct job *j;

	if (w == NULL || work == NULL)
		return NTM_ERR_INVAL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NTM_ERR_NOMEM;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->mu);
	if (w->stopping || w->queued >= WORKER_QUEUE_MAX) {
		int ret = w->stopping ? NTM_ERR_STATE : NTM_ERR_NOSPACE;

		pthread_mutex_unlock(&w->mu);
		free(j);
		return ret;
	}
	jobq_push(&w->todo, j);
	w->queued++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}
