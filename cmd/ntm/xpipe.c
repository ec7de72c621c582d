/*
 * xpipe.c - a second thread for ntm send and ntm fetch: a ring of buffers
 * (slots) between the thread that talks HTTPS (TLS, the socket) and the
 * one that seals or opens and writes, so that on two cores the two halves
 * of a large transfer overlap instead of taking turns.
 *
 * Ahead (send): a thread calls a source's read for the next slots while
 * the caller sends what it took; the caller takes a slot as it is (no
 * copy: xpipe_take, held until xpipe_release, so a failed chunk is sent
 * again from it) or reads in any sizes, in order, and may only skip
 * forward. Behind (fetch): the caller's bytes are copied
 * into slots that a thread hands to a sink in order; the first failure of
 * the sink stops the ring and is the caller's answer from then on.
 *
 * Only the thread that runs the source or sink calls it; its state is the
 * caller's again once the ring is ended (xpipe_end joins the thread).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "xpipe.h"

#define XPIPE_SLOT	(1024 * 1024)	/* behind */
#define XPIPE_SLOTS	8
#define XPIPE_AHEAD	3		/* ahead: one taken, two filling */

struct xslot {
	uint8_t		*buf;
	size_t		 len;		/* bytes in buf */
	int		 full;		/* the consumer's */
};

struct xpipe {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	pthread_t	 th;
	int		 started;
	size_t		 slotsz;	/* bytes a slot holds */
	unsigned	 nslots;	/* slots in the ring */
	struct xslot	 slot[XPIPE_SLOTS];
	unsigned	 w, r;		/* the next slot to fill, to take */
	size_t		 rpos;		/* ahead: taken of slot r; behind: filled of slot w */
	int		 eof;		/* the producer made its last slot */
	int		 fail;		/* ... and it ends in a failure (errno err) */
	int		 err;
	int		 stop;		/* the consumer gave up: the producer ends */
	/* ahead */
	ssize_t		(*read)(void *, uint8_t *, size_t);
	void		*rarg;
	uint64_t	 left;		/* bytes the source has still to make */
	uint64_t	 taken;		/* by the caller */
	/* behind */
	int		(*sink)(const uint8_t *, size_t, void *);
	void		*sarg;
};

static struct xpipe *
xpipe_new(size_t slotsz, unsigned nslots)
{
	struct xpipe *p;
	unsigned i;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->slotsz = slotsz;
	p->nslots = nslots;
	for (i = 0; i < nslots; i++)
		if ((p->slot[i].buf = malloc(slotsz)) == NULL)
			goto fail;
	if (pthread_mutex_init(&p->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&p->cv, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		goto fail;
	}
	return p;
fail:
	for (i = 0; i < nslots; i++)
		free(p->slot[i].buf);
	free(p);
	return NULL;
}

/* ---- ahead ------------------------------------------------------------ */

static void *
ahead_run(void *arg)
{
	struct xpipe *p = arg;
	struct xslot *s;
	ssize_t n;
	size_t want;

	for (;;) {
		pthread_mutex_lock(&p->mu);
		s = &p->slot[p->w % p->nslots];
		while (s->full && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		pthread_mutex_unlock(&p->mu);
		want = p->left < p->slotsz ? (size_t)p->left : p->slotsz;
		errno = 0;
		n = p->read(p->rarg, s->buf, want);
		pthread_mutex_lock(&p->mu);
		if (n < 0 || (size_t)n != want) {
			/* A short read ends it too: the caller asked for exactly
			 * the size the source said it would make. */
			p->fail = 1;
			p->err = n < 0 ? errno : 0;
			p->eof = 1;
		} else {
			p->left -= (uint64_t)n;
			s->len = (size_t)n;
			s->full = 1;
			p->w++;
			p->eof = p->left == 0;
		}
		pthread_cond_broadcast(&p->cv);
		n = p->eof;
		pthread_mutex_unlock(&p->mu);
		if (n)
			return NULL;
	}
}

struct xpipe *
xpipe_ahead(ssize_t (*read)(void *, uint8_t *, size_t), void *arg, uint64_t size,
    size_t slot)
{
	struct xpipe *p;

	if ((p = xpipe_new(slot, XPIPE_AHEAD)) == NULL)
		return NULL;
	p->read = read;
	p->rarg = arg;
	p->left = size;
	p->eof = size == 0;
	if (!p->eof) {
		if (pthread_create(&p->th, NULL, ahead_run, p) != 0) {
			xpipe_end(p);
			return NULL;
		}
		p->started = 1;
	}
	return p;
}

ssize_t
xpipe_read(void *arg, uint8_t *buf, size_t cap)
{
	struct xpipe *p = arg;
	struct xslot *s;
	size_t got = 0, take;

	pthread_mutex_lock(&p->mu);
	while (got < cap) {
		s = &p->slot[p->r % p->nslots];
		while (!s->full && !p->eof)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!s->full)
			break;		/* at the end, or where the source failed */
		take = s->len - p->rpos < cap - got ? s->len - p->rpos : cap - got;
		if (buf)
			memcpy(buf + got, s->buf + p->rpos, take);
		got += take;
		p->rpos += take;
		if (p->rpos == s->len) {
			s->full = 0;
			p->rpos = 0;
			p->r++;
			pthread_cond_broadcast(&p->cv);
		}
	}
	p->taken += got;
	if (got < cap && p->fail) {
		errno = p->err;
		pthread_mutex_unlock(&p->mu);
		return -1;
	}
	pthread_mutex_unlock(&p->mu);
	return (ssize_t)got;
}

int
xpipe_seek(void *arg, uint64_t at)
{
	struct xpipe *p = arg;
	uint64_t skip;
	size_t n;

	if (at < p->taken)
		return -1;
	while (p->taken < at) {
		skip = at - p->taken;
		n = skip < p->slotsz ? (size_t)skip : p->slotsz;
		if (xpipe_read(p, NULL, n) != (ssize_t)n)
			return -1;
	}
	return 0;
}

ssize_t
xpipe_take(struct xpipe *p, const uint8_t **data)
{
	struct xslot *s;
	ssize_t n;

	pthread_mutex_lock(&p->mu);
	s = &p->slot[p->r % p->nslots];
	while (!s->full && !p->eof)
		pthread_cond_wait(&p->cv, &p->mu);
	if (!s->full) {
		n = p->fail ? -1 : 0;
		errno = p->fail ? p->err : 0;
	} else {
		*data = s->buf + p->rpos;
		n = (ssize_t)(s->len - p->rpos);
	}
	pthread_mutex_unlock(&p->mu);
	return n;
}

void
xpipe_release(struct xpipe *p)
{
	struct xslot *s;

	pthread_mutex_lock(&p->mu);
	s = &p->slot[p->r % p->nslots];
	if (s->full) {
		p->taken += s->len - p->rpos;
		s->full = 0;
		p->rpos = 0;
		p->r++;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
}

/* ---- behind ----------------------------------------------------------- */

static void *
behind_run(void *arg)
{
	struct xpipe *p = arg;
	struct xslot *s;
	int bad;

	for (;;) {
		pthread_mutex_lock(&p->mu);
		s = &p->slot[p->r % p->nslots];
		while (!s->full && !p->eof && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!s->full || p->stop) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		pthread_mutex_unlock(&p->mu);
		bad = p->sink(s->buf, s->len, p->sarg) < 0;
		pthread_mutex_lock(&p->mu);
		s->full = 0;
		p->r++;
		if (bad)
			p->stop = 1;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		if (bad)
			return NULL;
	}
}

struct xpipe *
xpipe_behind(int (*sink)(const uint8_t *, size_t, void *), void *arg)
{
	struct xpipe *p;

	if ((p = xpipe_new(XPIPE_SLOT, XPIPE_SLOTS)) == NULL)
		return NULL;
	p->sink = sink;
	p->sarg = arg;
	if (pthread_create(&p->th, NULL, behind_run, p) != 0) {
		xpipe_end(p);
		return NULL;
	}
	p->started = 1;
	return p;
}

/* Hands the slot being filled over (with p->mu held). */
static void
behind_hand(struct xpipe *p)
{
	struct xslot *s = &p->slot[p->w % p->nslots];

	s->len = p->rpos;
	s->full = 1;
	p->w++;
	p->rpos = 0;
	pthread_cond_broadcast(&p->cv);
}

int
xpipe_write(const uint8_t *buf, size_t n, void *arg)
{
	struct xpipe *p = arg;
	struct xslot *s;
	size_t take;

	pthread_mutex_lock(&p->mu);
	while (n > 0 && !p->stop) {
		s = &p->slot[p->w % p->nslots];
		while (s->full && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop)
			break;
		take = p->slotsz - p->rpos < n ? p->slotsz - p->rpos : n;
		memcpy(s->buf + p->rpos, buf, take);
		p->rpos += take;
		buf += take;
		n -= take;
		if (p->rpos == p->slotsz)
			behind_hand(p);
	}
	n = p->stop;
	pthread_mutex_unlock(&p->mu);
	return n ? -1 : 0;
}

int
xpipe_drain(struct xpipe *p)
{
	int bad;

	pthread_mutex_lock(&p->mu);
	if (!p->stop && p->rpos > 0) {
		while (p->slot[p->w % p->nslots].full && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->stop)
			behind_hand(p);
	}
	p->eof = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->started) {
		pthread_join(p->th, NULL);
		p->started = 0;
	}
	bad = p->stop;
	return bad ? -1 : 0;
}

/* ---- both ------------------------------------------------------------- */

void
xpipe_end(struct xpipe *p)
{
	unsigned i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	p->eof = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->started)
		pthread_join(p->th, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	for (i = 0; i < p->nslots; i++) {
		if (p->slot[i].buf)
			explicit_bzero(p->slot[i].buf, p->slotsz);
		free(p->slot[i].buf);
	}
	free(p);
}
