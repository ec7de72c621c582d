/* log.c - diagnostics on stderr (or syslog), tagged with the program name,
 * and to a tee (the agent's log file) when one is set. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "common.h"

static const char *prog = "ntm";
static int verbosity;
static int to_syslog;
static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

static const char *const level_name[] = { "error", "warning", "info", "debug" };
static void (*tee_fn)(int, const char *, void *);
static void *tee_arg;
static int tee_max = -1;

static void lib_hook(int level, const char *msg, void *arg);

void
log_tee(void (*fn)(int level, const char *line, void *arg), void *arg, int max_level)
{
	tee_fn = fn;
	tee_arg = arg;
	tee_max = fn ? max_level : -1;
	ntm_log_set(lib_hook, NULL, tee_max > NTM_LOG_WARN + verbosity ? tee_max :
	    NTM_LOG_WARN + verbosity);
}

/* "level: message[: error]" to the tee, if one is set. */
static void
tee(int level, const char *msg, const char *errstr)
{
	char line[1200];

	if (tee_fn == NULL)
		return;
	if (errstr)
		snprintf(line, sizeof(line), "%s: %s: %s", level_name[level], msg, errstr);
	else
		snprintf(line, sizeof(line), "%s: %s", level_name[level], msg);
	tee_fn(level, line, tee_arg);
}

static void
vlogx(int level, const char *errstr, const char *fmt, va_list ap)
{
	char msg[1024];
	int shown = level <= NTM_LOG_WARN + verbosity;

	if (!shown && level > tee_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (level <= tee_max)
		tee(level, msg, errstr);
	if (!shown)
		return;
	if (to_syslog) {
		if (errstr)
			syslog(syslog_prio[level], "%s: %s", msg, errstr);
		else
			syslog(syslog_prio[level], "%s", msg);
		return;
	}
	if (errstr)
		fprintf(stderr, "%s: %s: %s: %s\n", prog, level_name[level], msg, errstr);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, level_name[level], msg);
}

static void
lib_hook(int level, const char *msg, void *arg)
{
	if (level < NTM_LOG_ERR || level > NTM_LOG_DEBUG)
		level = NTM_LOG_DEBUG;
	if (level <= tee_max)
		tee(level, msg, NULL);
	if (level > NTM_LOG_WARN + verbosity)
		return;
	if (to_syslog)
		syslog(syslog_prio[level], "%s", msg);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, level_name[level], msg);
}

void
log_syslog(void)
{
	openlog(prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	to_syslog = 1;
}

void
log_init(const char *p, int verbose)
{
	prog = p;
	verbosity = verbose;
	ntm_log_set(lib_hook, NULL, NTM_LOG_WARN + verbose);
}

const char *
log_prog(void)
{
	return prog;
}

#define LOGFN(fn, level, witherr) \
void fn(const char *fmt, ...) \
{ \
	int saved = errno; \
	va_list ap; \
	va_start(ap, fmt); \
	vlogx(level, witherr ? strerror(saved) : NULL, fmt, ap); \
	va_end(ap); \
	errno = saved; \
}
LOGFN(log_warn, NTM_LOG_WARN, 1)
LOGFN(log_warnx, NTM_LOG_WARN, 0)
LOGFN(log_info, NTM_LOG_INFO, 0)
LOGFN(log_debug, NTM_LOG_DEBUG, 0)

void
log_at(int level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlogx(level, NULL, fmt, ap);
	va_end(ap);
	errno = saved;
}

int
log_enabled(int level)
{
	return level <= NTM_LOG_WARN + verbosity || level <= tee_max;
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlogx(NTM_LOG_ERR, strerror(saved), fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlogx(NTM_LOG_ERR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
