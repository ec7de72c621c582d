/* prom.c - the Prometheus text exposition format (prom.h). */
#include <stdio.h>
#include <string.h>

#include "prom.h"

static const struct {
	uint64_t	 us;
	const char	*s;
} le[NTM_HIST_BUCKETS] = {
	{ 500, "0.0005" }, { 1000, "0.001" }, { 2500, "0.0025" }, { 5000, "0.005" },
	{ 10000, "0.01" }, { 25000, "0.025" }, { 50000, "0.05" }, { 100000, "0.1" },
	{ 250000, "0.25" }, { 500000, "0.5" }, { 1000000, "1" }, { 2500000, "2.5" },
	{ 5000000, "5" }, { 10000000, "10" },
};

uint64_t
ntm_hist_le_us(size_t i)
{
	return i < NTM_HIST_BUCKETS ? le[i].us : UINT64_MAX;
}

const char *
ntm_hist_le(size_t i)
{
	return i < NTM_HIST_BUCKETS ? le[i].s : "+Inf";
}

void
ntm_hist_observe(struct ntm_hist *h, uint64_t us)
{
	size_t i;

	for (i = 0; i < NTM_HIST_BUCKETS && us > le[i].us; i++)
		;
	if (i < NTM_HIST_BUCKETS)
		h->bucket[i]++;
	h->count++;
	h->sum_us += us;
}

/* ---- names and escaping ---------------------------------------------------- */

static int
name_ok(const char *s, int colon)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return 0;
	for (; s[n]; n++) {
		char c = s[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		    (colon && c == ':') || (n > 0 && c >= '0' && c <= '9')))
			return 0;
	}
	return n <= NTM_PROM_NAME_MAX;
}

static void
put(struct ntm_prom *p, const char *s, size_t n)
{
	int e;

	if (p->err == 0 && (e = ntm_buf_add(&p->buf, s, n)) < 0)
		p->err = e;
}

static void
puts_(struct ntm_prom *p, const char *s)
{
	put(p, s, strlen(s));
}

/* s with '\\' and newline escaped, and '"' too in a label value (quote). */
static void
put_escaped(struct ntm_prom *p, const char *s, int quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" :
		    quote && *s == '"' ? "\\\"" : NULL;

		if (esc == NULL)
			continue;
		put(p, run, (size_t)(s - run));
		puts_(p, esc);
		run = s + 1;
	}
	put(p, run, (size_t)(s - run));
}

/* "{a=\"x\",b=\"y\"}" from labels, plus le="..." when le is set; nothing
 * without labels or le. */
static void
put_labels(struct ntm_prom *p, const char *const *labels, const char *le_s)
{
	size_t n = 0;

	for (; labels && labels[n]; n += 2) {
		if (n / 2 >= NTM_PROM_LABELS_MAX || labels[n + 1] == NULL ||
		    !name_ok(labels[n], 0) || strcmp(labels[n], "le") == 0) {
			p->err = p->err ? p->err : NTM_ERR_INVAL;
			return;
		}
		puts_(p, n ? "," : "{");
		puts_(p, labels[n]);
		puts_(p, "=\"");
		put_escaped(p, labels[n + 1], 1);
		puts_(p, "\"");
	}
	if (le_s) {
		puts_(p, n ? ",le=\"" : "{le=\"");
		puts_(p, le_s);
		puts_(p, "\"");
	}
	if (n || le_s)
		puts_(p, "}");
}

/* ---- the writer ------------------------------------------------------------ */

/* After a failed call, the text ends where it ended before the call: a
 * sample or family is written whole or not at all. */
static void
rollback(struct ntm_prom *p, size_t mark)
{
	if (p->err && p->buf.data && p->buf.len > mark) {
		p->buf.len = mark;
		p->buf.data[mark] = '\0';
	}
}

void
ntm_prom_init(struct ntm_prom *p, size_t max)
{
	memset(p, 0, sizeof(*p));
	ntm_buf_init(&p->buf, max);
}

void
ntm_prom_family(struct ntm_prom *p, const char *name, enum ntm_prom_type type,
    const char *help)
{
	static const char *const tname[] = { "counter", "gauge", "histogram" };
	size_t n;

	if (p->err)
		return;
	if (!name_ok(name, 1) || (unsigned)type > NTM_PROM_HISTOGRAM || help == NULL ||
	    (type == NTM_PROM_COUNTER &&
	    ((n = strlen(name)) < 6 || strcmp(name + n - 6, "_total") != 0))) {
		p->err = NTM_ERR_INVAL;
		return;
	}
	memcpy(p->family, name, strlen(name) + 1);
	p->type = type;
	n = p->buf.len;
	puts_(p, "# HELP ");
	puts_(p, name);
	puts_(p, " ");
	put_escaped(p, help, 0);
	puts_(p, "\n# TYPE ");
	puts_(p, name);
	puts_(p, " ");
	puts_(p, tname[type]);
	puts_(p, "\n");
	rollback(p, n);
}

static void
put_value(struct ntm_prom *p, const char *suffix, const char *const *labels,
    const char *le_s, const char *value)
{
	puts_(p, p->family);
	puts_(p, suffix);
	put_labels(p, labels, le_s);
	puts_(p, " ");
	puts_(p, value);
	puts_(p, "\n");
}

void
ntm_prom_int(struct ntm_prom *p, const char *const *labels, int64_t v)
{
	char num[24];
	size_t mark;

	if (p->err)
		return;
	if (p->family[0] == '\0' || p->type == NTM_PROM_HISTOGRAM ||
	    (p->type == NTM_PROM_COUNTER && v < 0)) {
		p->err = NTM_ERR_INVAL;
		return;
	}
	snprintf(num, sizeof(num), "%lld", (long long)v);
	mark = p->buf.len;
	put_value(p, "", labels, NULL, num);
	rollback(p, mark);
}

void
ntm_prom_hist(struct ntm_prom *p, const char *const *labels, const struct ntm_hist *h)
{
	char num[48];
	uint64_t cum = 0;
	size_t i, mark = p->buf.len;

	if (p->err)
		return;
	if (p->family[0] == '\0' || p->type != NTM_PROM_HISTOGRAM) {
		p->err = NTM_ERR_INVAL;
		return;
	}
	for (i = 0; i <= NTM_HIST_BUCKETS; i++) {
		cum = i < NTM_HIST_BUCKETS ? cum + h->bucket[i] : h->count;
		snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
		put_value(p, "_bucket", labels, ntm_hist_le(i), num);
	}
	snprintf(num, sizeof(num), "%llu.%06llu", (unsigned long long)(h->sum_us / 1000000),
	    (unsigned long long)(h->sum_us % 1000000));
	put_value(p, "_sum", labels, NULL, num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)h->count);
	put_value(p, "_count", labels, NULL, num);
	rollback(p, mark);
}

int
ntm_prom_end(struct ntm_prom *p, const char **text, size_t *len)
{
	if (p->err)
		return p->err;
	*text = p->buf.data ? (const char *)p->buf.data : "";
	*len = p->buf.len;
	return 0;
}

void
ntm_prom_free(struct ntm_prom *p)
{
	if (p == NULL)
		return;
	ntm_buf_free(&p->buf);
	p->family[0] = '\0';
}
