/* daemon.c - signal handling and pidfiles for the servers. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
