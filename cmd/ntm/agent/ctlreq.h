/*
 * ctlreq.h - the requests of the agent's control socket (docs/protocol.md
 * §6), apart from the connection that carries them: the request line out of
 * what the client sent, the line parsed and checked against its verb's
 * fields, and an "https" request's body after it. No agent state, no I/O,
 * so that the fuzzer (fuzz/fuzz_control.c) reaches them as control.c does.
 */
#ifndef NTM_AGENT_CTLREQ_H
#define NTM_AGENT_CTLREQ_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct evbuffer;

#define CTL_HTTPS_TIMEOUT_MAX_MS	(10 * 60 * 1000)

enum ctl_verb {
	CV_STATUS, CV_REGISTER, CV_LIST, CV_STOP, CV_CLOSE, CV_PING, CV_OPEN,
	CV_LISTEN, CV_FORWARD, CV_HTTPS,
	CV__COUNT
};

/*
 * One request, its fields as sent. The strings are borrowed from j (the
 * request, owned): valid until ctl_req_free. For CV_FORWARD (the verbs
 * forward, forwards and unforward) only cmd and j are set: forwards.c reads
 * the rest.
 */
struct ctl_req {
	json_t		*j;
	enum ctl_verb	 verb;
	const char	*cmd, *peer, *proto;
	int64_t		 count, interval, family, timeout, port, lport;
	/* https */
	const char	*method, *url, *bearer, *ctype;
	int64_t		 length, https_timeout;
};

/* Why a request is refused: the code and message of its error line. */
struct ctl_perr {
	const char	*code;		/* bad_request, tun_mode */
	char		 message[512];
};

/*
 * The next request line in `in`: 1 with *line (new, NUL-terminated, the LF
 * taken off) and its length *n, the line drained; 0 while it is not all in;
 * -1 if it is over AGENT_LINE_MAX (the connection is dropped). *line and
 * *n are set only with 1.
 */
int ctl_take_line(struct evbuffer *in, char **line, size_t *n);
/* The need bytes of an "https" request's body at the head of in, made
 * contiguous (drain them after use); NULL while they are not all in. */
const void *ctl_take_body(struct evbuffer *in, size_t need);

/*
 * Parses one request line (len bytes, not NUL-terminated) into *r: 0, or
 * -1 with *e filled (r holds nothing to free then). tundev: the TUN
 * device's name in TUN mode (streams are refused), else NULL.
 */
int ctl_parse(const char *line, size_t len, const char *tundev, struct ctl_req *r,
    struct ctl_perr *e);
void ctl_req_free(struct ctl_req *r);

#endif
