/*
 * tool.h - what the load tools of bench/ and the suites share (each tool
 * is one .c file over libntm): the stop flag SIGINT and SIGTERM set, the
 * monotonic clock, and option numbers checked against their range.
 */
#ifndef NTM_TOOL_H
#define NTM_TOOL_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile sig_atomic_t tool_stop;

static inline void
tool_on_signal(int sig)
{
	(void)sig;
	tool_stop = 1;
}

/* SIGINT and SIGTERM set tool_stop; SIGPIPE is ignored. */
static inline void
tool_signals(void)
{
	signal(SIGINT, tool_on_signal);
	signal(SIGTERM, tool_on_signal);
	signal(SIGPIPE, SIG_IGN);
}

static inline int64_t
tool_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* *out := s as a number in lo..hi; else one line naming prog, the option
 * and the value, and -1. */
static inline int
tool_num(const char *prog, const char *name, const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "%s: %s: %s is not a number in %ld..%ld\n", prog, name, s, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

#endif
