/*
 * fuzz_frames.c - libFuzzer harness for the frames of a stream between
 * `ntm tunnel open/listen` and the agent (docs/protocol.md §6, "Streams"):
 * type (1 byte), length (2 bytes, big-endian), data; 'D' bytes, 'F' the end
 * of them, 'E' (agent to client only) a JSON error that ends the stream,
 * anything else refused.
 *
 * The client's side (cmd/ntm/stream.c):
 *
 * The first input byte sets how the output behaves (a pipe already holding
 * up to 4 KiB, written as a command's pipe or as our stdout); the rest is
 * what the agent sent. pump_frames() runs on it as stream.c's loop runs it,
 * the pipe drained whenever it says the output is full. What comes out of
 * the pipe must be exactly the 'D' data before the first 'F', 'E' or
 * unknown frame; the exit code must be the one that frame calls for.
 *
 * stream.c is included to reach its static pump_frames(); the error's
 * JSON goes through the real ctl_fail() (agent_client.c). Stand-ins below
 * only silence the error line and map a DC's error code.
 *
 * The agent's side (cmd/ntm/agent/streams.c): the same bytes, read as
 * frames from the client with frame_client() as on_read() reads them,
 * arriving in pieces whose sizes the first byte sets: the data taken must
 * be the 'D' data before the first 'F', the stream refused at the first
 * frame after an 'F' or of another type, and never before it is whole.
 *
 * Sources: cmd/ntm/agent_client.c cmd/ntm/agent/frame.c cmd/common/misc.c
 * Sources: cmd/common/log.c
 */
#include <fcntl.h>

#include "../cmd/ntm/stream.c"
#undef FRAME_HDR		/* stream.c's own; frame.h's is the same */
#include "frame.h"
#include "ntm-cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void
cli_err(const char *cmd, const char *fmt, ...)
{
	(void)cmd, (void)fmt;
}

int
cli_exit_for_code(const char *code, long status)
{
	(void)code, (void)status;
	return EXIT_REJECTED;
}

int64_t
agent_now_ms(void)
{
	return 0;
}

static struct ctl_client cc;
static uint8_t want[1 << 16], got[1 << 17];

/* The agent's side: frames from the client, given in pieces of step + 1
 * bytes, against what the protocol says: the 'D' data up to the first
 * other whole frame; refused if that frame is not an 'F', or if a whole
 * frame follows the 'F' (whose header is all the agent takes of it). */
static void
agent_side(const uint8_t *p, size_t size, size_t step)
{
	size_t have = 0, off = 0, tlen = 0, wlen = 0, o = 0, n;
	int fin = 0, refused = 0, bad = 0, t;

	while (o + FRAME_HDR <= size &&
	    o + FRAME_HDR + (n = (size_t)p[o + 1] << 8 | p[o + 2]) <= size) {
		if (p[o] == 'D') {
			memcpy(want + wlen, p + o + FRAME_HDR, n);
			wlen += n;
			o += FRAME_HDR + n;
			continue;
		}
		if (p[o] != 'F')
			bad = 1;
		else {
			o += FRAME_HDR;
			bad = o + FRAME_HDR <= size &&
			    o + FRAME_HDR + ((size_t)p[o + 1] << 8 | p[o + 2]) <= size;
		}
		break;
	}
	/* as on_read() takes them, as the bytes come */
	while (!refused && have < size) {
		have += step + 1 < size - have ? step + 1 : size - have;
		while (have - off >= FRAME_HDR) {
			if ((t = frame_client(p + off, have - off, fin, &n)) == FRAME_MORE)
				break;
			if (t == FRAME_BAD) {
				refused = 1;
				break;
			}
			if (off + FRAME_HDR + n > have)
				abort();	/* taken before it was whole */
			if (t == 'D') {
				if (tlen + n > sizeof(got))
					abort();
				memcpy(got + tlen, p + off + FRAME_HDR, n);
				tlen += n;
				off += FRAME_HDR + n;
			} else if (t == 'F') {
				fin = 1;
				off += FRAME_HDR;	/* as on_read() drains it */
			} else
				abort();
		}
	}
	if (refused != bad || tlen != wlen || memcmp(got, want, wlen) != 0)
		abort();
}

/* Drains the pipe into got (after skipping *skip bytes of the prefill). */
static void
drain(int fd, size_t *skip, size_t *glen)
{
	uint8_t b[4096];
	ssize_t r;

	while ((r = read(fd, b, sizeof(b))) > 0) {
		size_t off = *skip < (size_t)r ? *skip : (size_t)r;

		*skip -= off;
		if (*glen + (size_t)r - off > sizeof(got))
			abort();
		memcpy(got + *glen, b + off, (size_t)r - off);
		*glen += (size_t)r - off;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t fill[4096];
	struct pump_out o;
	size_t wlen = 0, glen = 0, skip, off = 0;
	int p[2], closed = 0, waiting, ret = -1, expect = -1, open = 1, rounds;

	if (size < 1 || size - 1 > sizeof(cc.buf))
		return 0;
	/* What the stream must write, and how it must end. */
	while (off + FRAME_HDR <= size - 1) {
		const uint8_t *f = data + 1 + off;
		size_t n = (size_t)f[1] << 8 | f[2];

		if (off + FRAME_HDR + n > size - 1)
			break;
		if (f[0] == 'D' && open) {
			memcpy(want + wlen, f + FRAME_HDR, n);
			wlen += n;
		} else if (f[0] == 'F')
			open = 0;
		else if (f[0] == 'E') {
			expect = -2;	/* an exit code, whatever the JSON said */
			break;
		} else if (f[0] != 'D') {
			expect = EXIT_FAIL;
			break;
		}
		off += FRAME_HDR + n;
	}

	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		abort();
	fcntl(p[1], F_SETPIPE_SZ, 4096);
	skip = (size_t)(data[0] & 0x3f) * 64;
	if (skip && write(p[1], fill, skip) != (ssize_t)skip)
		abort();
	memcpy(cc.buf, data + 1, size - 1);
	cc.len = size - 1;
	memset(&o, 0, sizeof(o));
	o.fd = p[1];
	o.exec = (data[0] & 0x40) != 0;
	o.open = 1;
	o.ready = (data[0] & 0x80) != 0;
	o.closed = &closed;
	for (rounds = 0; rounds < 10000; rounds++) {
		if ((ret = pump_frames(&cc, &o, &waiting)) >= 0 || !waiting)
			break;
		drain(p[0], &skip, &glen);
		o.ready = 1;
	}
	if (rounds == 10000)
		abort();	/* no progress with a drained pipe */
	drain(p[0], &skip, &glen);
	close(p[0]);
	if (o.open)
		close(p[1]);

	if (glen != wlen || memcmp(got, want, wlen) != 0)
		abort();
	if (expect == -1 ? ret != -1 : expect == -2 ? ret < 0 : ret != expect)
		abort();
	if (ret == -1 && cc.len >= FRAME_HDR &&
	    cc.len >= FRAME_HDR + ((size_t)cc.buf[1] << 8 | cc.buf[2]))
		abort();	/* a whole frame left behind */

	agent_side(data + 1, size - 1, data[0] & 0x3f);
	return 0;
}
