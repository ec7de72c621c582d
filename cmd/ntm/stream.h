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

#endif
