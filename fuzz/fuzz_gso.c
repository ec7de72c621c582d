/*
 * fuzz_gso.c - libFuzzer harness for the runs of UDP datagrams that the
 * agent (cmd/ntm/agent/udp.c) and the RS (cmd/ntm-rs/udp.c) send as one
 * UDP GSO message and cut back after UDP GRO (cmd/common/gso.c).
 *
 * The input is a batch of datagrams, 3 bytes each: an endpoint (one of
 * four) and a length. They are grouped as the senders group them; each
 * message is then cut as the kernel cuts it (datagrams of its first one's
 * size, the last possibly shorter) and as a receiver cuts what GRO gives
 * it: both must give back the batch, datagram for datagram, each message
 * within the kernel's limits. Then the rest of the input: a message length
 * and a GRO size as a receiver may get them, cut into pieces that cover
 * the message exactly.
 *
 * Sources: cmd/common/gso.c
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ntm-rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BATCH	512

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len[BATCH], n = 0, i = 0;
	int to[BATCH];

	for (; n < BATCH && 3 * n + 3 <= size; n++) {
		const uint8_t *p = data + 3 * n;

		to[n] = p[0] & 3;
		len[n] = ((size_t)(p[0] >> 2 & 7) << 8 | p[1]) % NTM_UDP_MAX + 1;
		if (p[2] & 1)		/* most runs are of one size */
			len[n] = n ? len[n - 1] : len[n];
	}
	while (i < n) {
		size_t total = len[i], seg = len[i], off, j;
		int k = 1, closed = 0;

		while (i + (size_t)k < n && to[i + (size_t)k] == to[i] &&
		    gso_joins(seg, k, total, closed, len[i + (size_t)k])) {
			closed = len[i + (size_t)k] < seg;
			total += len[i + (size_t)k++];
		}
		if (k > GSO_SEGS || (k > 1 && total > GSO_BYTES))
			abort();
		/* the kernel's cut (k > 1: UDP_SEGMENT seg), and GRO's */
		for (off = 0, j = i; off < total; off += seg, j++)
			if (j >= i + (size_t)k || len[j] != (total - off < seg ? total - off : seg))
				abort();
		if (j != i + (size_t)k || gro_seg(total, k > 1 ? (long)seg : 0) !=
		    (k > 1 && seg < total ? seg : total))
			abort();
		i += (size_t)k;
	}

	/* a message as read: n bytes, a GRO size v */
	if (size >= 3 * n + 6) {
		const uint8_t *p = data + 3 * n;
		size_t m = (size_t)p[0] << 8 | p[1], seg, pieces = 0, sum = 0;
		long v = (long)(int32_t)((uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 |
		    (uint32_t)p[4] << 8 | p[5]);

		seg = gro_seg(m, v);
		if (seg > m || (m > 0 && seg == 0))
			abort();
		for (size_t off = 0; off < m; off += seg, pieces++)
			sum += m - off < seg ? m - off : seg;
		if (sum != m || (m > 0 && pieces != (m + seg - 1) / seg))
			abort();
	}
	return 0;
}
