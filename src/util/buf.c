/* Bounded, growable byte buffer. */
#include "util/buf.h"
#include "util/mem.h"
#include "util/secret.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char empty[1];

void sg_buf_init(struct sg_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

static int grow(struct sg_buf *b, size_t add)
{
	if (add > b->max || b->len > b->max - add)
		return 0;
	size_t need = b->len + add + 1; /* +1 for the terminating NUL */
	if (need <= b->cap)
		return 1;
	size_t cap = b->cap < 64 ? 64 : b->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = sg_realloc(b->data, cap);
	b->cap = cap;
	return 1;
}

int sg_buf_append(struct sg_buf *b, const void *data, size_t len)
{
	if (!grow(b, len))
		return 0;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 1;
}

int sg_buf_append_str(struct sg_buf *b, const char *s)
{
	return sg_buf_append(b, s, strlen(s));
}

int sg_buf_printf(struct sg_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = sg_vasprintf(fmt, ap);
	va_end(ap);
	int ret = sg_buf_append_str(b, s);
	free(s);
	return ret;
}

void sg_buf_consume(struct sg_buf *b, size_t n)
{
	if (n >= b->len) {
		sg_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void sg_buf_reset(struct sg_buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

const char *sg_buf_str(const struct sg_buf *b)
{
	return b->data != NULL ? (const char *)b->data : (const char *)empty;
}

unsigned char *sg_buf_steal(struct sg_buf *b, size_t *len_r)
{
	unsigned char *d = b->data != NULL ? b->data : sg_calloc(1, 1);
	if (len_r != NULL)
		*len_r = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

void sg_buf_free(struct sg_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void sg_buf_free_secret(struct sg_buf *b)
{
	if (b->data != NULL)
		sg_memwipe(b->data, b->cap);
	sg_buf_free(b);
}
