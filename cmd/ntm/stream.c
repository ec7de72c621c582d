/*
 * stream.c - `ntm tunnel open PEER PORT` and `ntm tunnel listen PORT`: a
 * reliable byte stream (TCP in the agent's user-space stack) between
 * stdin/stdout, or a command's, and the peer, like nc. The agent speaks
 * frames after its "connected" line (docs/protocol.md §6, "Streams"): 'D' bytes,
 * 'F' end of one direction, 'E' an error that ends the stream.
 *
 * The two directions end on their own, as TCP's do: end of input sends
 * 'F' (the peer reads EOF: a half-close); the peer's 'F' closes output. The
 * command exits when the agent closes the connection, which it does once
 * both directions are finished (like socat, not like nc, which stops at the
 * first end).
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "agent.h"
#include "stream.h"

#define FRAME_HDR	3
#define CHUNK		(60 * 1024)

/* Runs CMD with /bin/sh, its stdin and stdout on pipes; fills the ends we
 * use. Returns the child's pid or -1. */
static pid_t
spawn(const char *cmd, int *to_cmd, int *from_cmd)
{
	int in[2], out[2];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	if ((pid = fork()) < 0) {
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	*to_cmd = in[1];
	*from_cmd = out[0];
	return pid;
}

/* Error from the agent, as a JSON object: message and exit code. */
static int
agent_error(const uint8_t *p, size_t n)
{
	json_error_t e;
	json_t *j = json_loadb((const char *)p, n, 0, &e);
	int ret;

	if (j == NULL) {
		cli_err("tunnel", "the stream ended with an unreadable error");
		return EXIT_FAIL;
	}
	ret = ctl_fail("tunnel", j);
	json_decref(j);
	return ret;
}

/*
 * Writes what the head 'D' frame still holds (from *done on) to out, without
 * blocking: a non-blocking fd takes what it can; a blocking one (our stdout,
 * whose file description we share) is only written after poll said it can
 * take PIPE_BUF bytes, and never more. Returns 1 when the frame is written, 0
 * when out is full for now, -1 on an error (errno set).
 */
static int
out_write(int fd, int nonblock, const uint8_t *p, size_t n, size_t *done)
{
	while (*done < n) {
		size_t want = n - *done;
		ssize_t w;

		if (!nonblock && want > PIPE_BUF)
			want = PIPE_BUF;
		w = write(fd, p + *done, want);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w <= 0)
			return -1;
		*done += (size_t)w;
		if (!nonblock)
			return *done == n;
	}
	return 1;
}

/*
 * Moves bytes until both directions are finished. in/out: our input and
 * output (stdin/stdout, or the command's pipes when exec is set). Nothing
 * here blocks: each fd is written only as far as it takes, and what it has
 * not taken waits in a bounded buffer (the frames received, c->buf, and one
 * frame to send, ob) while the other direction keeps moving. A command that
 * does not read its input cannot stop its output this way, nor a command
 * that writes as much as it reads (cat) deadlock against us.
 *
 * The agent's socket: while a frame waits to go out, input is not read but
 * the agent is, so an error it sends while it no longer reads is still seen.
 * A command that closes its input (or exits) ends the peer's direction
 * for it: what the peer still sends is read and dropped until its 'F'.
 */
/* The output side of pump(): where the peer's bytes go. */
struct pump_out {
	int	 fd, exec, open, ready, peer_fin;
	int	*closed;
	size_t	 done;		/* of the head frame, written */
};

/*
 * The frames already received from the agent, written to the output in
 * order. -1 when all whole frames are taken (*waiting: the head frame
 * waits for the output to be writable), else the exit code to stop with.
 */
static int
pump_frames(struct ctl_client *c, struct pump_out *o, int *waiting)
{
	*waiting = 0;
	while (c->len >= FRAME_HDR) {
		size_t n = (size_t)c->buf[1] << 8 | c->buf[2];
		uint8_t type = c->buf[0];

		if (c->len < FRAME_HDR + n)
			break;
		if (type == 'D' && o->open) {
			int w = o->ready ? out_write(o->fd, o->exec, c->buf + FRAME_HDR, n,
			    &o->done) : 0;

			if (w < 0 && o->exec) {
				/* The command closed its input (EPIPE) or
				 * exited: the peer's bytes have nowhere to
				 * go, so they are dropped from now on. */
				close(o->fd);
				o->open = 0;
				*o->closed = 1;
			} else if (w < 0) {
				/* our reader went away: stop the stream */
				cli_err("tunnel", "cannot write the output: %s",
				    strerror(errno));
				return EXIT_FAIL;
			} else if (w == 0) {
				o->ready = 0;
				*waiting = 1;
				break;
			}
		} else if (type == 'F') {
			if (o->open)
				close(o->fd);
			o->open = 0;
			o->peer_fin = 1;
			*o->closed = 1;
		} else if (type == 'E')
			return agent_error(c->buf + FRAME_HDR, n);
		else if (type != 'D') {
			cli_err("tunnel", "the agent sent an unknown frame");
			return EXIT_FAIL;
		}
		o->done = 0;
		memmove(c->buf, c->buf + FRAME_HDR + n, c->len - FRAME_HDR - n);
		c->len -= FRAME_HDR + n;
	}
	return -1;
}

static int
pump(struct ctl_client *c, int in, int out, int exec, int *out_closed)
{
	static uint8_t ob[FRAME_HDR + CHUNK];
	struct pump_out o = { .fd = out, .exec = exec, .open = 1, .ready = exec,
	    .closed = out_closed };
	size_t olen = 0, ooff = 0;
	int in_open = 1, fin_queued = 0, broken = 0, eof = 0;

	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	if (exec) {
		fcntl(in, F_SETFL, fcntl(in, F_GETFL) | O_NONBLOCK);
		fcntl(out, F_SETFL, fcntl(out, F_GETFL) | O_NONBLOCK);
	}
	for (;;) {
		struct pollfd p[3] = { { .fd = c->fd, .events = 0 },
		    { .fd = -1, .events = POLLIN }, { .fd = -1, .events = POLLOUT } };
		int waiting, ret;	/* waiting: the head frame waits for out */
		ssize_t r;

		if ((ret = pump_frames(c, &o, &waiting)) >= 0)
			return ret;
		/* The agent closed: once the frames it sent before are
		 * written, the stream went well if both directions ended. */
		if (eof && !waiting) {
			if (o.peer_fin && fin_queued && olen == 0 && !broken)
				return EXIT_OK;
			cli_err("tunnel", "the agent closed the connection");
			return EXIT_FAIL;
		}
		if (olen == 0 && !in_open && !fin_queued) {
			ob[0] = 'F', ob[1] = 0, ob[2] = 0;
			olen = FRAME_HDR, ooff = 0;
			fin_queued = 1;
		}
		/* The agent: read while there is room (a full buffer holds a
		 * whole frame that waits for out), written while a frame waits. */
		if (c->len < sizeof(c->buf))
			p[0].events |= POLLIN;
		if (olen > 0)
			p[0].events |= POLLOUT;
		if (p[0].events == 0 || eof)
			p[0].fd = -1;
		if (in_open && olen == 0)
			p[1].fd = in;
		if (waiting)
			p[2].fd = out;
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return EXIT_FAIL;
		}
		if (p[2].revents)
			o.ready = 1;	/* writable, or the error the write will tell */
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR) && c->len < sizeof(c->buf)) {
			r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				eof = 1;	/* decided once the frames are out */
				continue;
			}
			c->len += (size_t)r;
		}
		if (olen > 0 && (p[0].revents & POLLOUT)) {
			r = send(c->fd, ob + ooff, olen - ooff, MSG_NOSIGNAL);
			if (r < 0 && errno != EINTR && errno != EAGAIN) {
				/* The agent stopped reading: what it said last (an
				 * 'E' frame, most likely) is still to be read. */
				olen = ooff = 0;
				in_open = 0;
				fin_queued = broken = 1;
				continue;
			}
			if (r > 0 && (ooff += (size_t)r) == olen)
				olen = ooff = 0;
		}
		if (p[1].fd >= 0 && p[1].revents) {
			r = read(in, ob + FRAME_HDR, CHUNK);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				in_open = 0;	/* 'F' goes next */
				continue;
			}
			ob[0] = 'D';
			ob[1] = (uint8_t)(r >> 8);
			ob[2] = (uint8_t)r;
			olen = FRAME_HDR + (size_t)r;
			ooff = 0;
		}
	}
}

int
stream_run(const struct cli *cli, const struct stream_opts *o)
{
	struct ctl_client *c = calloc(1, sizeof(*c));
	json_t *req, *r = NULL;
	const char *why;
	int ret = EXIT_FAIL, in = STDIN_FILENO, out = STDOUT_FILENO, status, out_closed = 0;
	pid_t pid = -1;

	if (c == NULL)
		return EXIT_FAIL;
	if (ctl_open(c, cli) < 0) {
		free(c);
		cli_err("tunnel", "no agent running (start it with 'ntm up')");
		return EXIT_NOAGENT;
	}
	if (o->listen)
		req = json_pack("{s:s, s:s, s:i}", "cmd", "listen", "proto", "tcp",
		    "port", (int)o->port);
	else
		req = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i}", "cmd", "open", "proto", "tcp",
		    "peer", o->peer, "port", (int)o->port, "family", o->v6 ? 6 : 4,
		    "timeout_ms", (int)o->timeout * 1000);
	if (ctl_send(c, req) < 0 ||
	    (r = ctl_recv(c, o->listen ? 5000 : (int)(o->timeout * 1000 + 5000), &why)) == NULL) {
		cli_err("tunnel", "%s: %s", o->listen ? "listen" : "open", "the agent did not answer");
		goto out;
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		ret = ctl_fail("tunnel", r);
		goto out;
	}
	if (o->listen) {
		/* "listening", then "connected" when a peer connects */
		if (cli->verbose)
			fprintf(stderr, "ntm: tunnel: listening on TCP port %ld of %s, %s\n",
			    o->port, json_string_value(json_object_get(r, "vip4")),
			    json_string_value(json_object_get(r, "vip6")));
		json_decref(r);
		if ((r = ctl_recv(c, INT_MAX, &why)) == NULL) {
			cli_err("tunnel", "listen: %s", why);
			goto out;
		}
		if (!json_is_true(json_object_get(r, "ok"))) {
			ret = ctl_fail("tunnel", r);
			goto out;
		}
	}
	if (cli->verbose)
		fprintf(stderr, "ntm: tunnel: %s %s:%lld -> %s:%lld via %s\n",
		    json_string_value(json_object_get(r, "peer")),
		    json_string_value(json_object_get(r, "local_vip")),
		    (long long)json_integer_value(json_object_get(r, "local_port")),
		    json_string_value(json_object_get(r, "remote_vip")),
		    (long long)json_integer_value(json_object_get(r, "remote_port")),
		    json_string_value(json_object_get(r, "route")));
	if (o->exec && (pid = spawn(o->exec, &out, &in)) < 0) {
		cli_err("tunnel", "--exec: cannot run '%s': %s", o->exec, strerror(errno));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	ret = pump(c, in, out, o->exec != NULL, &out_closed);
	if (pid > 0) {
		close(in);
		if (!out_closed)
			close(out);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		/* The stream went well: the command's status is ours. */
		if (ret == EXIT_OK && WIFEXITED(status))
			ret = WEXITSTATUS(status);
		else if (ret == EXIT_OK)
			ret = EXIT_FAIL;
	}
out:
	json_decref(r);
	ctl_close(c);
	free(c);
	return ret;
}
