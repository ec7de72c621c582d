/*
 * gso.c - runs of UDP datagrams: which ones go out as one UDP GSO message
 * (the agent's and the RS's batches), and how a message read with UDP_GRO
 * is cut back into datagrams. udp(7): the kernel cuts a GSO message into
 * datagrams of the segment size, the last one possibly shorter.
 */
#include "common.h"

int
gso_joins(size_t seg, int n, size_t total, int closed, size_t len)
{
	return !closed && n < GSO_SEGS && len <= seg && total + len <= GSO_BYTES;
}

size_t
gro_seg(size_t n, long v)
{
	return v > 0 && (size_t)v < n ? (size_t)v : n;
}
