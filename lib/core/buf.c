/*
 * buf.c - bounded growable buffers, and cursor readers/writers that fail on
 * short input and keep their first error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ntm-core.h"

void
ntm_buf_init(struct ntm_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

/* Ensures room for need bytes plus the trailing NUL. */
static int
buf_reserve(struct ntm_buf *b, size_t need)
{
	size_t ncap;
	uint8_t *p;

	if (need > b->max)
		return NTM_ERR_TOOBIG;
	if (need + 1 <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need + 1)
		ncap = ncap > SIZE_MAX / 2 ? need + 1 : ncap * 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	/* Fresh allocation so the old copy can be wiped: buffers may hold
	 * secrets (request bodies with passwords). */
	if ((p = malloc(ncap)) == NULL)
		return NTM_ERR_NOMEM;
	if (b->data != NULL) {
		memcpy(p, b->data, b->len);
		sodium_memzero(b->data, b->cap);
		free(b->data);
	}
	b->data = p;
	b->cap = ncap;
	b->data[b->len] = '\0';
	return 0;
}

int
ntm_buf_add(struct ntm_buf *b, const void *p, size_t n)
{
	int ret;

	if (n > b->max - b->len)
		return NTM_ERR_TOOBIG;
	if ((ret = buf_reserve(b, b->len + n)) < 0)
		return ret;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
ntm_buf_printf(struct ntm_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, ret;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NTM_ERR_INVAL;
	if ((size_t)n > b->max - b->len)
		return NTM_ERR_TOOBIG;
	if ((ret = buf_reserve(b, b->len + (size_t)n)) < 0)
		return ret;
	va_start(ap, fmt);
	(void)vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void
ntm_buf_reset(struct ntm_buf *b)
{
	if (b->data != NULL) {
		sodium_memzero(b->data, b->cap);
		b->data[0] = '\0';
	}
	b->len = 0;
}

void
ntm_buf_free(struct ntm_buf *b)
{
	if (b == NULL)
		return;
	if (b->data != NULL) {
		sodium_memzero(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = b->cap = 0;
}

/* ---- cursor -------------------------------------------------------------- */

void
ntm_cur_init(struct ntm_cur *c, const void *p, size_t n)
{
	c->pos = p;
	c->end = p == NULL ? NULL : c->pos + n;
	c->err = 0;
}

static const uint8_t *
cur_take(struct ntm_cur *c, size_t n)
{
	const uint8_t *p;

	if (c->err)
		return NULL;
	if ((size_t)(c->end - c->pos) < n) {
		c->err = NTM_ERR_SHORT;
		return NULL;
	}
	p = c->pos;
	if (n > 0)
		c->pos += n;
	return p;
}

int
ntm_cur_u8(struct ntm_cur *c, uint8_t *v)
{
	const uint8_t *p;

	if ((p = cur_take(c, 1)) == NULL)
		return c->err;
	*v = p[0];
	return 0;
}

int
ntm_cur_u16(struct ntm_cur *c, uint16_t *v)
{
	const uint8_t *p;

	if ((p = cur_take(c, 2)) == NULL)
		return c->err;
	*v = (uint16_t)((unsigned)p[0] << 8 | p[1]);
	return 0;
}

int
ntm_cur_u32(struct ntm_cur *c, uint32_t *v)
{
	const uint8_t *p;

	if ((p = cur_take(c, 4)) == NULL)
		return c->err;
	*v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
	return 0;
}

int
ntm_cur_u64(struct ntm_cur *c, uint64_t *v)
{
	const uint8_t *p;
	uint64_t x = 0;

	if ((p = cur_take(c, 8)) == NULL)
		return c->err;
	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	*v = x;
	return 0;
}

int
ntm_cur_bytes(struct ntm_cur *c, void *out, size_t n)
{
	const uint8_t *p;

	if ((p = cur_take(c, n)) == NULL && c->err)
		return c->err;
	if (n > 0)
		memcpy(out, p, n);
	return 0;
}

const uint8_t *
ntm_cur_ptr(struct ntm_cur *c, size_t n)
{
	return cur_take(c, n);
}

size_t
ntm_cur_left(const struct ntm_cur *c)
{
	if (c->err)
		return 0;
	return (size_t)(c->end - c->pos);
}

int
ntm_cur_end(const struct ntm_cur *c)
{
	if (c->err)
		return c->err;
	if (c->pos != c->end)
		return NTM_ERR_TRAILING;
	return 0;
}

/* ---- writer -------------------------------------------------------------- */

void
ntm_wr_init(struct ntm_wr *w, void *p, size_t cap)
{
	w->start = w->pos = p;
	w->end = p == NULL ? NULL : w->start + cap;
	w->err = 0;
}

static uint8_t *
wr_take(struct ntm_wr *w, size_t n)
{
	uint8_t *p;

	if (w->err)
		return NULL;
	if ((size_t)(w->end - w->pos) < n) {
		w->err = NTM_ERR_TOOBIG;
		return NULL;
	}
	p = w->pos;
	if (n > 0)
		w->pos += n;
	return p;
}

void
ntm_wr_u8(struct ntm_wr *w, uint8_t v)
{
	uint8_t *p;

	if ((p = wr_take(w, 1)) != NULL)
		p[0] = v;
}

void
ntm_wr_u16(struct ntm_wr *w, uint16_t v)
{
	uint8_t *p;

	if ((p = wr_take(w, 2)) != NULL) {
		p[0] = (uint8_t)(v >> 8);
		p[1] = (uint8_t)v;
	}
}

void
ntm_wr_u32(struct ntm_wr *w, uint32_t v)
{
	uint8_t *p;

	if ((p = wr_take(w, 4)) != NULL)
		for (int i = 0; i < 4; i++)
			p[i] = (uint8_t)(v >> (24 - 8 * i));
}

void
ntm_wr_u64(struct ntm_wr *w, uint64_t v)
{
	uint8_t *p;

	if ((p = wr_take(w, 8)) != NULL)
		for (int i = 0; i < 8; i++)
			p[i] = (uint8_t)(v >> (56 - 8 * i));
}

void
ntm_wr_bytes(struct ntm_wr *w, const void *src, size_t n)
{
	uint8_t *p;

	if ((p = wr_take(w, n)) != NULL && n > 0)
		memcpy(p, src, n);
}

long
ntm_wr_done(const struct ntm_wr *w)
{
	if (w->err)
		return w->err;
	return (long)(w->pos - w->start);
}
