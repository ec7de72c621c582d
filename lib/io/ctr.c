/*
 * ctr.c - counters that never repeat under one key, across restarts and
 * clock steps (ntm-io.h). Every value handed out is below a limit written
 * durably beforehand; a new run starts above the limit it finds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntm.h"

static int
reserve(struct ntm_ctr_floor *f, uint64_t from)
{
	char buf[32];
	uint64_t limit;
	int n, e;

	if (from > UINT64_MAX - NTM_CTR_RESERVE)
		return NTM_ERR_TOOBIG;
	limit = from + NTM_CTR_RESERVE;
	n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", limit);
	if ((e = ntm_file_write(f->path, buf, (size_t)n, 0600)) < 0)
		return e;
	f->limit = limit;
	return 0;
}

int
ntm_ctr_floor_open(struct ntm_ctr_floor *f, const char *path, uint64_t now)
{
	char *text = NULL, *end;
	size_t len;
	uint64_t stored = 0;
	int e;

	memset(f, 0, sizeof(*f));
	if ((f->path = strdup(path)) == NULL)
		return NTM_ERR_NOMEM;
	e = ntm_file_read(path, 64, &text, &len);
	if (e == 0) {
		errno = 0;
		stored = strtoull(text, &end, 10);
		if (errno || text[0] < '0' || text[0] > '9' || (*end != '\n' && *end != '\0')) {
			free(text);
			ntm_ctr_floor_free(f);
			return NTM_ERR_INVAL;	/* never guess below a limit */
		}
		free(text);
	} else if (!(e == NTM_ERR_NOTFOUND || (e == NTM_ERR_IO && errno == ENOENT))) {
		ntm_ctr_floor_free(f);
		return e;
	}
	/* Everything below the stored limit may have been used. */
	f->hi = stored > now ? stored : now;
	if ((e = reserve(f, f->hi)) < 0) {
		ntm_ctr_floor_free(f);
		return e;
	}
	return 0;
}

int
ntm_ctr_floor_take(struct ntm_ctr_floor *f, uint64_t at_least, uint64_t *out)
{
	uint64_t v = at_least > f->hi ? at_least : f->hi + 1;
	int e;

	if (v >= f->limit - NTM_CTR_MARGIN && (e = reserve(f, v)) < 0)
		return e;
	f->hi = v;
	*out = v;
	return 0;
}

void
ntm_ctr_floor_note(struct ntm_ctr_floor *f, uint64_t used)
{
	if (used > f->hi)
		f->hi = used;
}

void
ntm_ctr_floor_free(struct ntm_ctr_floor *f)
{
	free(f->path);
	f->path = NULL;
}
