/*
 * prom.h - metrics in the Prometheus text exposition format (version
 * 0.0.4), written into a bounded buffer: each family with its HELP and TYPE
 * lines, samples with escaped label values, and latency histograms with
 * cumulative buckets. I/O free: the caller observes durations (in
 * microseconds) and sends the text. Names follow Prometheus: a family name
 * matches [a-zA-Z_:][a-zA-Z0-9_:]*, a counter's ends in "_total", a label
 * name matches [a-zA-Z_][a-zA-Z0-9_]* and is not "le" (the histogram's).
 */
#ifndef NTM_PROM_H
#define NTM_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "ntm-core.h"

#define NTM_PROM_CTYPE		"text/plain; version=0.0.4; charset=utf-8"
#define NTM_PROM_NAME_MAX	128
#define NTM_PROM_LABELS_MAX	8	/* label pairs on one sample */

enum ntm_prom_type { NTM_PROM_COUNTER, NTM_PROM_GAUGE, NTM_PROM_HISTOGRAM };

/*
 * A latency histogram: the upper bounds of its buckets are fixed (0.5 ms
 * to 10 s, ntm_hist_le), so every histogram of every daemon can be summed.
 * A zeroed struct is an empty histogram.
 */
#define NTM_HIST_BUCKETS	14
struct ntm_hist {
	uint64_t	 bucket[NTM_HIST_BUCKETS];	/* not cumulative; above the
							   last bound: in count only */
	uint64_t	 count;
	uint64_t	 sum_us;
};
void ntm_hist_observe(struct ntm_hist *h, uint64_t us);
/* Bucket i's upper bound in microseconds, and as text in seconds ("0.0005");
 * i == NTM_HIST_BUCKETS is +Inf (UINT64_MAX, "+Inf"). */
uint64_t    ntm_hist_le_us(size_t i);
const char *ntm_hist_le(size_t i);

/*
 * The writer. Calls after the first error do nothing and ntm_prom_end
 * returns that error: NTM_ERR_INVAL for a bad name or a sample of the
 * wrong kind for its family (or before any); NTM_ERR_TOOBIG once the text
 * would pass max bytes; NTM_ERR_NOMEM. Each family is named once (the
 * caller's tables see to that).
 */
struct ntm_prom {
	struct ntm_buf		 buf;
	int			 err;
	enum ntm_prom_type	 type;
	char			 family[NTM_PROM_NAME_MAX + 1];	/* "" before the first */
};
void ntm_prom_init(struct ntm_prom *p, size_t max);
/* Starts a family: "# HELP name help" (help escaped) and "# TYPE name type". */
void ntm_prom_family(struct ntm_prom *p, const char *name, enum ntm_prom_type type,
    const char *help);
/*
 * One sample of the current counter or gauge family. labels: NULL, or
 * name/value pairs ending with NULL ({"reason", "replay", NULL}); values
 * are UTF-8 text, escaped here.
 */
void ntm_prom_int(struct ntm_prom *p, const char *const *labels, int64_t v);
/* One series of the current histogram family: its _bucket lines (the
 * labels plus le), _sum (seconds) and _count. */
void ntm_prom_hist(struct ntm_prom *p, const char *const *labels, const struct ntm_hist *h);
/* 0 with *text and *len the exposition (borrowed from p until
 * ntm_prom_free), or the first error. */
int  ntm_prom_end(struct ntm_prom *p, const char **text, size_t *len) NTM_WUR;
void ntm_prom_free(struct ntm_prom *p);

#endif
