/* daemon.c - signal handling, pidfiles and dropping root for the servers. */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "common.h"

static struct event *ev_int, *ev_term, *ev_hup;
static void (*reload_fn)(void *);
static void *reload_arg;

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;

	if (sig == SIGHUP) {
		if (reload_fn) {
			log_info("SIGHUP: reloading");
			reload_fn(reload_arg);
		}
		return;
	}
	log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	event_base_loopbreak(base);
}

int
daemon_signals(struct event_base *base, void (*reload)(void *), void *arg)
{
	signal(SIGPIPE, SIG_IGN);
	reload_fn = reload;
	reload_arg = arg;
	ev_int = evsignal_new(base, SIGINT, on_signal, base);
	ev_term = evsignal_new(base, SIGTERM, on_signal, base);
	ev_hup = evsignal_new(base, SIGHUP, on_signal, base);
	if (!ev_int || !ev_term || !ev_hup || evsignal_add(ev_int, NULL) < 0 ||
	    evsignal_add(ev_term, NULL) < 0 || evsignal_add(ev_hup, NULL) < 0)
		return -1;
	return 0;
}

void
daemon_free_signals(void)
{
	if (ev_int)
		event_free(ev_int);
	if (ev_term)
		event_free(ev_term);
	if (ev_hup)
		event_free(ev_hup);
	ev_int = ev_term = ev_hup = NULL;
}

int
daemon_pidfile(const char *path)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	return ntm_file_write(path, buf, (size_t)n, 0644) == 0 ? 0 : -1;
}

int
use_color(int fd)
{
	const char *nc = getenv("NO_COLOR");

	return isatty(fd) && (nc == NULL || *nc == '\0');
}

/* ---- dropping root ------------------------------------------------------- */

/* path to uid:gid when it exists and is root's: made by this process before
 * it dropped root (SQLite's -wal and -shm beside the database, the CS's
 * object directory), or by `init` run as root. */
static int
give_file(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) < 0 || st.st_uid != 0 || S_ISLNK(st.st_mode))
		return 0;
	if (lchown(path, uid, gid) < 0) {
		snprintf(err, errlen, "%s: cannot give it to uid %lu: %s", path,
		    (unsigned long)uid, strerror(errno));
		return -1;
	}
	return 0;
}

int
daemon_drop_root(const char *user, const char *state_dir, const char *db,
    char *err, size_t errlen)
{
	static const char *const side[] = { "", "-wal", "-shm", "-journal" };
	struct passwd *pw;
	struct stat st;
	struct dirent *de;
	DIR *d;
	char path[4096];
	uid_t uid;
	gid_t gid;

	if (user == NULL)
		return 0;
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(err, errlen, "user '%s': %s", user,
		    errno ? strerror(errno) : "no such user");
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0) {
		snprintf(err, errlen, "user '%s' is root: name an unprivileged user", user);
		return -1;
	}
	if (geteuid() != 0) {
		/* Started unprivileged already (a service manager's user): only
		 * that user is right. */
		if (geteuid() != uid) {
			snprintf(err, errlen, "user '%s' is set but the daemon runs as uid "
			    "%lu, not root and not that user", user, (unsigned long)geteuid());
			return -1;
		}
		return 0;
	}
	/* The state directory must be the user's: the daemon writes there. */
	if (stat(state_dir, &st) < 0) {
		snprintf(err, errlen, "state_dir %s: %s", state_dir, strerror(errno));
		return -1;
	}
	if (st.st_uid != uid) {
		snprintf(err, errlen, "state_dir %s belongs to uid %lu, not to user '%s' "
		    "(uid %lu): chown -R %s %s", state_dir, (unsigned long)st.st_uid, user,
		    (unsigned long)uid, user, state_dir);
		return -1;
	}
	for (size_t i = 0; db && i < sizeof(side) / sizeof(side[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", db, side[i]);
		if (give_file(path, uid, gid, err, errlen) < 0)
			return -1;
	}
	/* What sits directly in the state directory; deeper is the admin's. */
	if ((d = opendir(state_dir)) == NULL) {
		snprintf(err, errlen, "state_dir %s: %s", state_dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", state_dir, de->d_name);
		if (give_file(path, uid, gid, err, errlen) < 0) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		snprintf(err, errlen, "cannot become user '%s': %s", user, strerror(errno));
		return -1;
	}
	/* No way back, and nothing exec'd later gains what this lost. */
	if (setresuid(0, 0, 0) == 0) {
		snprintf(err, errlen, "user '%s': root could be regained", user);
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "no_new_privs: %s", strerror(errno));
		return -1;
	}
	return 0;
}
