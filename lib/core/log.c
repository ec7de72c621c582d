/*
 * log.c - the library's logging hook. libntm never prints; a program installs
 * a function that decides where messages go.
 */
#include <stdarg.h>
#include <stdio.h>

#include "ntm-core.h"

static ntm_log_fn	*log_fn;
static void		*log_arg;
static int		 log_max = NTM_LOG_INFO;

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
