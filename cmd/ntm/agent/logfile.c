/*
 * logfile.c - the agent's log file: STATE_DIR/agent.log, or `ntm up --log
 * FILE`. Every message up to info (debug with -v), one time-stamped line
 * each, besides stderr (-d) or syslog (detached). A detached agent's stdout
 * and stderr go to the file too, so that what a library prints before it
 * aborts is kept. The file is bounded: a line that would take it past
 * AGENT_LOG_MAX bytes first renames it FILE.1 (dropping the one before) and
 * starts a new FILE.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "agentd.h"

static struct {
	int	 fd;
	char	*path, *old;		/* FILE, FILE.1 */
	off_t	 size;
	int	 regular;		/* only a regular file is rotated */
	int	 detached;		/* stdout and stderr are the file */
} lg = { .fd = -1 };

static int
log_reopen(void)
{
	struct stat st;
	int fd = open(lg.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	if (lg.fd >= 0)
		close(lg.fd);
	lg.fd = fd;
	lg.size = st.st_size;
	lg.regular = S_ISREG(st.st_mode);
	if (lg.detached) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	return 0;
}

static void
log_line(int level, const char *text, void *arg)
{
	char line[1400], ts[32];
	struct timespec now;
	struct tm tm;
	int n;

	if (lg.fd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld]: %s\n", ts,
	    now.tv_nsec / 1000000, log_prog(), (long)getpid(), text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (lg.regular && lg.size + n > AGENT_LOG_MAX) {
		/* FILE -> FILE.1; if that fails, start FILE over rather than grow */
		if (rename(lg.path, lg.old) < 0 || log_reopen() < 0) {
			if (ftruncate(lg.fd, 0) == 0)
				lg.size = 0;
		}
	}
	if (write(lg.fd, line, (size_t)n) == n)
		lg.size += n;
}

int
agent_log_open(const char *path, int verbose, char *err, size_t errlen)
{
	char cwd[4096];

	if (path[0] == '/')
		lg.path = xstrdup(path);
	else if (getcwd(cwd, sizeof(cwd)) != NULL)
		lg.path = xasprintf("%s/%s", cwd, path);	/* the agent chdirs to / */
	else {
		snprintf(err, errlen, "--log '%s': %s", path, strerror(errno));
		return -1;
	}
	lg.old = xasprintf("%s.1", lg.path);
	if (log_reopen() < 0) {
		snprintf(err, errlen, "log file %s: %s", lg.path, strerror(errno));
		agent_log_close();
		return -1;
	}
	log_tee(log_line, NULL, verbose >= 1 ? NTM_LOG_DEBUG : NTM_LOG_INFO);
	return 0;
}

const char *
agent_log_path(void)
{
	return lg.path;
}

void
agent_log_detached(void)
{
	lg.detached = 1;
	if (lg.fd >= 0) {
		dup2(lg.fd, STDOUT_FILENO);
		dup2(lg.fd, STDERR_FILENO);
	}
}

void
agent_log_close(void)
{
	log_tee(NULL, NULL, 0);
	if (lg.fd >= 0)
		close(lg.fd);
	lg.fd = -1;
	free(lg.path);
	free(lg.old);
	lg.path = lg.old = NULL;
}
