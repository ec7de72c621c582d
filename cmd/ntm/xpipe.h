/*
 * xpipe.h - a second thread for large transfers (xpipe.c): the source of
 * an upload run ahead of the sender, the sink of a download run behind
 * the receiver.
 */
#ifndef NTM_XPIPE_H
#define NTM_XPIPE_H

#include <stdint.h>
#include <sys/types.h>

struct xpipe;

/*
 * A thread that reads size bytes from read(arg, buf, cap) (which must
 * fill cap, as x_src's read does) into a ring of three slots of slot
 * bytes ahead of xpipe_take or xpipe_read. NULL when no thread or memory
 * is left (the caller then reads directly).
 */
struct xpipe	*xpipe_ahead(ssize_t (*read)(void *, uint8_t *, size_t), void *arg,
		    uint64_t size, size_t slot);
/* The rest of the next slot, in place (*data; slot bytes at most, less
 * only at the end or after a seek into it): its length, 0 at the end, or
 * -1 with errno (0 when the source ended short) once the source failed.
 * The slot is the caller's until xpipe_release; a take before that gives
 * it again. */
ssize_t		 xpipe_take(struct xpipe *p, const uint8_t **data);
/* The taken slot is done with: the thread may fill it again. */
void		 xpipe_release(struct xpipe *p);
/* Up to cap bytes, in order (less only at the end), or -1 with errno (0
 * when the source ended short) once the source failed. arg: the xpipe. */
ssize_t		 xpipe_read(void *arg, uint8_t *buf, size_t cap);
/* Skips forward to byte at (taken since the start): 0, or -1. */
int		 xpipe_seek(void *arg, uint64_t at);

/*
 * A thread that hands what xpipe_write is given to sink(p, n, arg), in
 * order, in pieces of up to 1 MiB. NULL when no thread or memory is left.
 */
struct xpipe	*xpipe_behind(int (*sink)(const uint8_t *, size_t, void *), void *arg);
/* Queues n bytes (an x_sink_fn; arg: the xpipe): 0, or -1 once the sink
 * failed (nothing more is handed to it). */
int		 xpipe_write(const uint8_t *buf, size_t n, void *arg);
/* Hands what is queued over and waits for the sink to take it all: 0, or
 * -1 when the sink failed. The thread is gone after it. */
int		 xpipe_drain(struct xpipe *p);

/* Stops the thread (what is queued is dropped) and frees the ring. */
void		 xpipe_end(struct xpipe *p);

#endif
