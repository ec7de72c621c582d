/*
 * frame.h - the frames a client sends on a stream it holds through the
 * control socket (streams.c, SK_CTL; docs/protocol.md §6, "Streams"):
 * type (1 byte), length (2 bytes, big-endian), data. A pure function on
 * bytes, so that the fuzzer (fuzz/fuzz_frames.c) reaches it as the agent
 * does.
 */
#ifndef NTM_AGENT_FRAME_H
#define NTM_AGENT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR	3
#define FRAME_MORE	0	/* the frame is not all there yet */
#define FRAME_BAD	(-1)	/* not a frame a client may send now */

/*
 * The client's frame whose header is h, avail bytes being there from its
 * start: 'D' (bytes) or 'F' (the end of them) with *len the length of its
 * data; FRAME_MORE while not all of it is there; FRAME_BAD for any other
 * type, or for any frame once the client sent its 'F' (fin set).
 */
int frame_client(const uint8_t h[FRAME_HDR], size_t avail, int fin, size_t *len);

#endif
