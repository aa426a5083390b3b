/* DATA parser: a byte-at-a-time state machine, so that a chunk boundary can
 * never change the result (the fuzz target and unit tests check this). */
#include "smtp/data.h"

#include <string.h>

/* Line-start states. Only a CRLF (or the CRLF that ended the DATA command)
 * opens a line on which "." means anything: after a bare LF we are at the
 * start of a line for the stored message, but a "." there is plain content.
 * This is what keeps "\n.\n" and "\n.\r\n" from ending the data (the SMTP
 * smuggling class, CVE-2023-51766 and friends): the end of data is only
 * ever CR LF "." CR LF. */
enum {
	ST_BOL,      /* after CRLF: "." is special */
	ST_TEXT,     /* inside a line (or after a bare LF) */
	ST_CR,       /* inside a line, saw CR */
	ST_DOT,      /* after CRLF ".", first dot not yet emitted */
	ST_DOT_CR,   /* after CRLF "." CR */
};

static void flush(struct sg_data_parser *p)
{
	if (p->olen > 0 && !(p->errors & (SG_DATA_ERR_OUTPUT | SG_DATA_ERR_TOO_BIG))) {
		if (p->out(p->out_ctx, p->obuf, p->olen) < 0)
			p->errors |= SG_DATA_ERR_OUTPUT;
	}
	p->olen = 0;
}

static void emit(struct sg_data_parser *p, const char *s, size_t n)
{
	if (p->max_size > 0 && p->size + n > p->max_size) {
		/* Keep what fits out of the spool; keep counting and reading. */
		p->errors |= SG_DATA_ERR_TOO_BIG;
	}
	p->size += n;
	if (p->errors & (SG_DATA_ERR_OUTPUT | SG_DATA_ERR_TOO_BIG))
		return;
	if (p->olen + n > sizeof(p->obuf))
		flush(p);
	if (n > sizeof(p->obuf)) {
		if (!(p->errors & SG_DATA_ERR_OUTPUT) && p->out(p->out_ctx, (const unsigned char *)s, n) < 0)
			p->errors |= SG_DATA_ERR_OUTPUT;
		return;
	}
	memcpy(p->obuf + p->olen, s, n);
	p->olen += n;
}

void sg_data_init(struct sg_data_parser *p, size_t max_line, size_t max_size,
		  sg_data_out_fn *out, void *out_ctx)
{
	memset(p, 0, sizeof(*p));
	/* The CRLF that ended the DATA command counts as the end of the
	 * previous line: "." CRLF right away is an empty message. */
	p->state = ST_BOL;
	p->max_line = max_line;
	p->max_size = max_size;
	p->out = out;
	p->out_ctx = out_ctx;
}

/* One content byte inside a line; also counts the line length. RFC 5321
 * 4.5.3.1.6: a text line is at most max_line octets including CRLF. */
static void text_byte(struct sg_data_parser *p, unsigned char c)
{
	p->line_len++;
	if (p->max_line > 0 && p->line_len + 2 > p->max_line)
		p->errors |= SG_DATA_ERR_LONG_LINE;
	emit(p, (const char *)&c, 1);
}

static void end_line(struct sg_data_parser *p, int next)
{
	emit(p, "\r\n", 2);
	p->line_len = 0;
	p->state = next;
}

/* Inside a line: text, CR, or a bare LF (normalised to CRLF, but the next
 * line is not one on which a dot counts). */
static void in_text(struct sg_data_parser *p, unsigned char c)
{
	if (c == '\r')
		p->state = ST_CR;
	else if (c == '\n')
		end_line(p, ST_TEXT);
	else {
		text_byte(p, c);
		p->state = ST_TEXT;
	}
}

/* A CR that is not followed by LF: RFC 5321 2.3.8 forbids it; we refuse
 * the message after the end of data (554 5.6.0), keeping the stream in
 * sync. The CR is kept so that the stored bytes stay honest. */
static void bare_cr(struct sg_data_parser *p)
{
	p->errors |= SG_DATA_ERR_BARE_CR;
	text_byte(p, '\r');
}

static void step(struct sg_data_parser *p, unsigned char c)
{
	switch (p->state) {
	case ST_BOL:
		if (c == '.')
			p->state = ST_DOT;
		else
			in_text(p, c);
		break;
	case ST_TEXT:
		in_text(p, c);
		break;
	case ST_CR:
		if (c == '\n') {
			end_line(p, ST_BOL);
		} else {
			bare_cr(p);
			in_text(p, c);
		}
		break;
	case ST_DOT:
		if (c == '\r') {
			p->state = ST_DOT_CR;
		} else if (c == '\n') {
			/* "." ended by a bare LF: content, not the end of data. */
			text_byte(p, '.');
			end_line(p, ST_TEXT);
		} else {
			/* RFC 5321 4.5.2: drop the first dot of a line ("..x" -> ".x"). */
			p->line_len++; /* the dropped dot was on the wire line */
			in_text(p, c);
		}
		break;
	case ST_DOT_CR:
		if (c == '\n') {
			p->done = true;
		} else {
			/* ".\r" then something else: the stuffed dot goes, the CR is bare. */
			p->line_len++;
			bare_cr(p);
			in_text(p, c);
		}
		break;
	}
}

/* Fast path: inside a line, a run of bytes that are neither CR nor LF is
 * content as it stands; the same as stepping through it byte by byte. */
static size_t text_run(struct sg_data_parser *p, const unsigned char *s, size_t len)
{
	/* memchr() is vectorised. Search LF first, then CR only up to it, so
	 * that every byte is looked at a bounded number of times whatever the
	 * line endings (input without any CR must not make this quadratic). */
	const unsigned char *lf = memchr(s, '\n', len);
	size_t lim = lf != NULL ? (size_t)(lf - s) : len;
	const unsigned char *cr = memchr(s, '\r', lim);
	size_t n = cr != NULL ? (size_t)(cr - s) : lim;

	if (n == 0)
		return 0;
	p->line_len += n;
	if (p->max_line > 0 && p->line_len + 2 > p->max_line)
		p->errors |= SG_DATA_ERR_LONG_LINE;
	emit(p, (const char *)s, n);
	return n;
}

size_t sg_data_push(struct sg_data_parser *p, const void *in, size_t len, bool *done_r)
{
	const unsigned char *s = in;
	size_t i = 0;

	while (i < len && !p->done) {
		if (p->state == ST_TEXT) {
			size_t n = text_run(p, s + i, len - i);
			i += n;
			if (n > 0)
				continue;
		}
		step(p, s[i++]);
	}
	if (p->done)
		flush(p);
	*done_r = p->done;
	return i;
}
