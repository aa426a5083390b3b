/* libFuzzer target for the SMTP engine's pure parsers: command lines
 * (paths, ESMTP parameters, XFORWARD) and the DATA stream parser. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/envelope.h"
#include "smtp/cmd.h"
#include "smtp/data.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink(void *ctx, const unsigned char *p, size_t n)
{
	return sg_buf_append(ctx, p, n) ? 1 : -1;
}

static void fuzz_line(const char *line)
{
	struct sg_smtp_path path;
	struct sg_reply r = { 0, NULL };
	struct sg_mail_opts o;
	struct sg_xforward xf = { 0 };
	const char *args;
	size_t vlen;

	if (sg_smtp_split(line, &vlen, &args) == 1 && (args < line || args > line + strlen(line)))
		abort();
	if (sg_smtp_parse_path(line, "FROM", true, false, &path) == 1) {
		sg_smtp_mail_params(path.params, 1000, &o, &r);
		sg_reply_clear(&r);
	}
	sg_smtp_path_clear(&path);
	if (sg_smtp_parse_path(line, "TO", false, true, &path) == 1) {
		/* A parsed address never holds what ends a path or a line. */
		if (strpbrk(path.addr, "<>\r\n") != NULL && path.addr[0] != '"')
			abort();
		sg_smtp_rcpt_params(path.params, &r);
		sg_reply_clear(&r);
	}
	sg_smtp_path_clear(&path);
	sg_smtp_mail_params(line, 0, &o, &r);
	sg_reply_clear(&r);
	sg_smtp_parse_xforward(line, &xf, &r);
	sg_reply_clear(&r);
	sg_xforward_clear(&xf);
}

/* Parse the whole input, then again in chunks of `chunk`: the output, the
 * errors and the end position must not depend on the chunking. */
static void fuzz_data(const uint8_t *data, size_t size, size_t chunk)
{
	struct sg_data_parser a, b;
	struct sg_buf oa, ob;
	bool done_a = false, done_b = false;
	size_t used_a, pos = 0;

	sg_buf_init(&oa, 1 << 20);
	sg_buf_init(&ob, 1 << 20);
	sg_data_init(&a, 64, 4096, sink, &oa);
	sg_data_init(&b, 64, 4096, sink, &ob);
	used_a = sg_data_push(&a, data, size, &done_a);
	while (pos < size && !done_b) {
		size_t n = size - pos < chunk ? size - pos : chunk;
		pos += sg_data_push(&b, data + pos, n, &done_b);
	}
	if (done_a != done_b || a.errors != b.errors || (done_a && used_a != pos))
		abort();
	/* Past the size limit the content is thrown away, so only the verdict counts. */
	if (done_a && !(a.errors & SG_DATA_ERR_TOO_BIG) &&
	    (oa.len != ob.len || memcmp(oa.data, ob.data, oa.len) != 0))
		abort();
	/* The end of data is only ever CRLF "." CRLF (or "." CRLF at the start). */
	if (done_a && !(used_a >= 3 && memcmp(data + used_a - 3, ".\r\n", 3) == 0 &&
			(used_a == 3 || (used_a >= 5 && data[used_a - 4] == '\n' &&
					 data[used_a - 5] == '\r'))))
		abort();
	sg_buf_free(&oa);
	sg_buf_free(&ob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t chunk = size > 0 ? (size_t)(data[0] % 7) + 1 : 1;
	const uint8_t *nl = memchr(data, '\n', size);
	size_t llen = nl != NULL ? (size_t)(nl - data) : size;
	char *line = malloc(llen + 1);

	if (line == NULL)
		return 0;
	memcpy(line, data, llen);
	line[llen] = '\0';
	fuzz_line(line);
	free(line);
	fuzz_data(data, size, chunk);
	return 0;
}
