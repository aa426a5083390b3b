/* The SMTP DATA stream parser (RFC 5321 4.1.1.4, 4.5.2): finds the end of
 * data, undoes dot-stuffing and normalises line endings, byte-exactly. */
#ifndef SG_SMTP_DATA_H
#define SG_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a message must be refused once its end of data was read. The parser
 * always reads up to the end of data, whatever went wrong, so that the
 * session stays in sync with the client. */
enum {
	SG_DATA_ERR_LONG_LINE = 1 << 0, /* a line longer than max_line */
	SG_DATA_ERR_BARE_CR = 1 << 1,   /* a CR not followed by LF */
	SG_DATA_ERR_TOO_BIG = 1 << 2,   /* more than max_size bytes of content */
	SG_DATA_ERR_OUTPUT = 1 << 3,    /* the output callback failed (spool I/O) */
};

/* Receives unstuffed content with CRLF line endings. 1 ok, -1 error (the
 * parser stops writing and sets SG_DATA_ERR_OUTPUT). */
typedef int sg_data_out_fn(void *ctx, const unsigned char *p, size_t n);

struct sg_data_parser {
	int state;
	size_t max_line;   /* a line incl. its CRLF may have this many bytes */
	size_t max_size;   /* content bytes; 0: unlimited */
	size_t line_len;   /* bytes of the current line so far */
	uint64_t size;     /* content bytes produced */
	unsigned errors;   /* SG_DATA_ERR_* */
	bool done;
	sg_data_out_fn *out;
	void *out_ctx;
	size_t olen;
	unsigned char obuf[4096]; /* staging for out(); flushed, never truncated */
};

void sg_data_init(struct sg_data_parser *p, size_t max_line, size_t max_size,
		  sg_data_out_fn *out, void *out_ctx);
/* Feed bytes. Returns how many were consumed: fewer than len only when the
 * end of data was reached (the rest belongs to the next command, which a
 * pipelining client may already have sent). *done_r tells whether the end
 * was reached; p->errors then tells whether the message is acceptable. */
size_t sg_data_push(struct sg_data_parser *p, const void *in, size_t len, bool *done_r);

#endif
