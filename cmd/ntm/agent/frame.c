/*
 * frame.c - the frames a client sends on a stream (frame.h).
 */
#include "frame.h"

int
frame_client(const uint8_t h[FRAME_HDR], size_t avail, int fin, size_t *len)
{
	*len = (size_t)h[1] << 8 | h[2];
	if (avail < FRAME_HDR + *len)
		return FRAME_MORE;
	if ((h[0] != 'D' && h[0] != 'F') || fin)
		return FRAME_BAD;
	return h[0];
}
