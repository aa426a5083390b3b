/* sg_buf: a byte buffer with a hard maximum fixed at creation (Postfix's
 * vstring, OpenSMTPD's iobuf). Growth is overflow-checked; going past the
 * maximum is an error the caller sees, never a silent truncation.
 * The contents are always NUL-terminated (not counted in len) so that text
 * can be used as a C string. */
#ifndef SG_UTIL_BUF_H
#define SG_UTIL_BUF_H

#include <stddef.h>

#include "util/error.h"

struct sg_buf {
	unsigned char *data; /* owned */
	size_t len;
	size_t cap;
	size_t max;          /* hard limit on len */
};

void sg_buf_init(struct sg_buf *b, size_t max);
/* 1 on success, 0 if the result would exceed max (buffer unchanged). */
int sg_buf_append(struct sg_buf *b, const void *data, size_t len) SG_WARN_UNUSED;
int sg_buf_append_str(struct sg_buf *b, const char *s) SG_WARN_UNUSED;
int sg_buf_printf(struct sg_buf *b, const char *fmt, ...) SG_PRINTF(2, 3) SG_WARN_UNUSED;
/* Drop the first n bytes (consumed input). */
void sg_buf_consume(struct sg_buf *b, size_t n);
void sg_buf_reset(struct sg_buf *b);
const char *sg_buf_str(const struct sg_buf *b);
/* Hand the contents to the caller (who frees them) and empty b. */
unsigned char *sg_buf_steal(struct sg_buf *b, size_t *len_r);
void sg_buf_free(struct sg_buf *b);
/* Wipe (for secrets) and free. */
void sg_buf_free_secret(struct sg_buf *b);

#endif
