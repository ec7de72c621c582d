/*
 * stream.h - TCP byte streams through the agent (stream.c), for
 * `ntm tunnel open PEER PORT` and `ntm tunnel listen PORT`.
 */
#ifndef NTM_STREAM_H
#define NTM_STREAM_H

struct cli;

struct stream_opts {
	const char	*peer;		/* open: client FQDN or vIP */
	long		 port;
	long		 timeout;	/* open: seconds for the tunnel + connection */
	int		 listen, v6;
	const char	*exec;		/* run this with its stdin/stdout on the stream */
};

int stream_run(const struct cli *cli, const struct stream_opts *o);

/* forward.c: `ntm tunnel forward`: add (-L or -R spec), remove (id > 0), or
 * list (neither). family: 4 or 6, the peer's vIP family for -L. */
int forward_run(const struct cli *cli, const char *lspec, const char *rspec, long remove,
    int family, int json);

#endif
