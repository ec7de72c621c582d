/*
 * log.c - the library's logging hook. libntm never prints; a program installs
 * a function that decides where messages go. Also the rate limiter for the
 * lines a flood would repeat (ntm_log_rl): a bounded table of groups (kind,
 * source), each with a window, a count of lines written and a count of lines
 * held back, summarised when its window ends.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ntm-core.h"

static ntm_log_fn	*log_fn;
static void		*log_arg;
static int		 log_max = NTM_LOG_INFO;

#define RL_MANY		"many sources"

struct rl_group {
	const char	*kind;		/* NULL: free */
	char		 source[64];
	int		 level;
	uint64_t	 start_ms;	/* of the window */
	unsigned	 lines;		/* written in the window */
	unsigned long long held;	/* held back in the window */
};

/* One table, used from one thread (the daemon's event loop). */
static struct rl_group	 rl[NTM_LOG_RL_GROUPS];

void
ntm_log_set(ntm_log_fn *fn, void *arg, int maxlevel)
{
	log_fn = fn;
	log_arg = arg;
	log_max = maxlevel;
}

void
ntm_vlog(int level, const char *fmt, va_list ap)
{
	char msg[1024];

	if (log_fn == NULL || level > log_max)
		return;
	/* ntm_log() carries the format attribute; this is its va_list half. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
#pragma GCC diagnostic pop
	log_fn(level, msg, log_arg);
}

void
ntm_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ntm_vlog(level, fmt, ap);
	va_end(ap);
}

/* ---- rate-limited lines -------------------------------------------------- */

/* Writes g's summary if it held lines back, and frees it. */
static void
rl_end(struct rl_group *g)
{
	if (g->held)
		ntm_log(g->level < NTM_LOG_WARN ? g->level : NTM_LOG_WARN,
		    "%s: %llu times from %s in the last %d s (%u written)", g->kind,
		    g->held + g->lines, g->source, NTM_LOG_RL_WINDOW_S, g->lines);
	g->kind = NULL;
}

static int
rl_ended(const struct rl_group *g, uint64_t now)
{
	return now - g->start_ms >= (uint64_t)NTM_LOG_RL_WINDOW_S * 1000;
}

/* The group of (kind, source), made if need be; NULL if the table is full
 * even for "many sources". */
static struct rl_group *
rl_find(uint64_t now, int level, const char *kind, const char *source)
{
	struct rl_group *g, *freeg = NULL, *many = NULL;
	size_t nsrc = 0;		/* groups of this kind with a source of their own */

	for (size_t i = 0; i < NTM_LOG_RL_GROUPS; i++) {
		g = &rl[i];
		if (g->kind && rl_ended(g, now))
			rl_end(g);
		if (g->kind == NULL) {
			if (freeg == NULL)
				freeg = g;
			continue;
		}
		if (strcmp(g->kind, kind) != 0)
			continue;
		if (strcmp(g->source, source) == 0)
			return g;
		if (strcmp(g->source, RL_MANY) == 0)
			many = g;
		else
			nsrc++;
	}
	/* Keep one slot free for each kind's "many sources", and past
	 * NTM_LOG_RL_SOURCES sources a kind's new ones are counted there. */
	if (freeg == NULL || nsrc >= NTM_LOG_RL_SOURCES ||
	    (many == NULL && freeg == &rl[NTM_LOG_RL_GROUPS - 1])) {
		if (many)
			return many;
		if (freeg == NULL)
			return NULL;
		source = RL_MANY;
	}
	g = freeg;
	g->kind = kind;
	snprintf(g->source, sizeof(g->source), "%s", source);
	g->level = level;
	g->start_ms = now;
	g->lines = 0;
	g->held = 0;
	return g;
}

void
ntm_vlog_rl_at(uint64_t now, int level, const char *kind, const char *source,
    const char *fmt, va_list ap)
{
	struct rl_group *g;
	int write;

	if (log_fn == NULL)
		return;
	if (source == NULL || *source == '\0')
		source = "-";
	if ((g = rl_find(now, level, kind, source)) == NULL)
		return;
	if (level < g->level)
		g->level = level;
	if ((write = g->lines < NTM_LOG_RL_BURST))
		g->lines++;
	else
		g->held++;
	if (write)
		ntm_vlog(level, fmt, ap);
}

void
ntm_log_rl_at(uint64_t now_ms, int level, const char *kind, const char *source,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ntm_vlog_rl_at(now_ms, level, kind, source, fmt, ap);
	va_end(ap);
}

void
ntm_log_rl_flush_at(uint64_t now_ms)
{
	for (size_t i = 0; i < NTM_LOG_RL_GROUPS; i++)
		if (rl[i].kind && rl_ended(&rl[i], now_ms))
			rl_end(&rl[i]);
}
