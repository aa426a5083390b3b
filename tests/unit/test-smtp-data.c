/* Unit tests for the DATA parser (smtp/data.c): each case fed whole, in
 * small chunks and one byte at a time, with the same result every time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/data.h"
#include "util/buf.h"

struct data_case {
	const char *name;
	const char *in;
	size_t max_line, max_size;
	bool done;            /* the end of data is in the input */
	const char *out;      /* stored content */
	size_t rest;          /* input bytes left after the end (pipelined) */
	unsigned errors;
};

#define NOLIM 0
static const struct data_case cases[] = {
	{ "simple", "Hello\r\n.\r\n", 1000, NOLIM, true, "Hello\r\n", 0, 0 },
	{ "empty message at the very start", ".\r\n", 1000, NOLIM, true, "", 0, 0 },
	{ "empty line then end", "\r\n.\r\n", 1000, NOLIM, true, "\r\n", 0, 0 },
	{ "dot-stuffed line", "..x\r\n.\r\n", 1000, NOLIM, true, ".x\r\n", 0, 0 },
	{ "dot-stuffed lone dot", "a\r\n..\r\n.\r\n", 1000, NOLIM, true, "a\r\n.\r\n", 0, 0 },
	{ "dot-stuffed at start", "..\r\n.\r\n", 1000, NOLIM, true, ".\r\n", 0, 0 },
	{ "unstuffed dot line loses its dot", ".x\r\n.\r\n", 1000, NOLIM, true, "x\r\n", 0, 0 },
	{ "dot space", ". \r\n.\r\n", 1000, NOLIM, true, " \r\n", 0, 0 },
	{ "pipelined rest", "x\r\n.\r\nQUIT\r\n", 1000, NOLIM, true, "x\r\n", 6, 0 },
	{ "no end yet", "abc\r\n", 1000, NOLIM, false, "abc\r\n", 0, 0 },
	{ "no end: CRLF dot only", "abc\r\n.", 1000, NOLIM, false, "abc\r\n", 0, 0 },
	{ "bare LF normalised", "a\nb\r\n.\r\n", 1000, NOLIM, true, "a\r\nb\r\n", 0, 0 },
	{ "LF dot LF is content", "a\n.\nb\r\n.\r\n", 1000, NOLIM, true, "a\r\n.\r\nb\r\n", 0, 0 },
	{ "LF dot CRLF is content", "a\n.\r\nb\r\n.\r\n", 1000, NOLIM, true, "a\r\n.\r\nb\r\n", 0, 0 },
	{ "CRLF dot LF is content", "a\r\n.\nb\r\n.\r\n", 1000, NOLIM, true, "a\r\n.\r\nb\r\n", 0, 0 },
	{ "LF dot dot after LF kept", "a\n..\r\n.\r\n", 1000, NOLIM, true, "a\r\n..\r\n", 0, 0 },
	{ "lone LF dot LF never ends", "\n.\n", 1000, NOLIM, false, "\r\n.\r\n", 0, 0 },
	{ "bare CR refused", "a\rb\r\n.\r\n", 1000, NOLIM, true, "a\rb\r\n", 0, SG_DATA_ERR_BARE_CR },
	{ "CR CR LF", "a\r\r\n.\r\n", 1000, NOLIM, true, "a\r\r\n", 0, SG_DATA_ERR_BARE_CR },
	{ "dot CR x", "a\r\n.\rx\r\n.\r\n", 1000, NOLIM, true, "a\r\n\rx\r\n", 0,
	  SG_DATA_ERR_BARE_CR },
	{ "CR dot CR LF is not the end", "a\r.\r\n.\r\n", 1000, NOLIM, true, "a\r.\r\n", 0,
	  SG_DATA_ERR_BARE_CR },
	{ "line at the limit", "12345678\r\n.\r\n", 10, NOLIM, true, "12345678\r\n", 0, 0 },
	{ "line one over the limit", "123456789\r\n.\r\n", 10, NOLIM, true, "123456789\r\n", 0,
	  SG_DATA_ERR_LONG_LINE },
	{ "stuffed dot counts on the wire", "..2345678\r\n.\r\n", 10, NOLIM, true,
	  ".2345678\r\n", 0, SG_DATA_ERR_LONG_LINE },
	{ "long line then more", "123456789012345\r\nok\r\n.\r\nX", 10, NOLIM, true,
	  "123456789012345\r\nok\r\n", 1, SG_DATA_ERR_LONG_LINE },
	{ "size at the limit", "12345678\r\n.\r\n", 1000, 10, true, "12345678\r\n", 0, 0 },
	{ "size over the limit keeps reading", "123456789\r\nabc\r\n.\r\nQUIT\r\n", 1000, 10, true,
	  NULL, 6, SG_DATA_ERR_TOO_BIG },
};

struct sink {
	struct sg_buf b;
	bool fail;
};

static int sink_out(void *ctx, const unsigned char *p, size_t n)
{
	struct sink *k = ctx;

	if (k->fail)
		return -1;
	return sg_buf_append(&k->b, p, n) ? 1 : -1;
}

/* Run one case with a given chunk size (0: whole). */
static void run_case(const struct data_case *c, size_t chunk)
{
	struct sg_data_parser p;
	struct sink k = { .fail = false };
	size_t len = strlen(c->in), pos = 0;
	bool done = false;

	sg_buf_init(&k.b, 1 << 20);
	sg_data_init(&p, c->max_line, c->max_size, sink_out, &k);
	while (pos < len && !done) {
		size_t n = chunk == 0 || chunk > len - pos ? len - pos : chunk;
		size_t used = sg_data_push(&p, c->in + pos, n, &done);
		if (!done && used != n)
			fail_msg("%s (chunk %zu): consumed %zu of %zu before the end", c->name, chunk,
				 used, n);
		pos += used;
	}
	if (done != c->done)
		fail_msg("%s (chunk %zu): done=%d, want %d", c->name, chunk, done, c->done);
	if (done && len - pos != c->rest)
		fail_msg("%s (chunk %zu): %zu bytes left, want %zu", c->name, chunk, len - pos,
			 c->rest);
	if (p.errors != c->errors)
		fail_msg("%s (chunk %zu): errors %#x, want %#x", c->name, chunk, p.errors, c->errors);
	if (done && c->out != NULL &&
	    (k.b.len != strlen(c->out) || memcmp(sg_buf_str(&k.b), c->out, k.b.len) != 0))
		fail_msg("%s (chunk %zu): output \"%s\"", c->name, chunk, sg_buf_str(&k.b));
	sg_buf_free(&k.b);
}

static void test_cases(void **state)
{
	static const size_t chunks[] = { 0, 1, 2, 3, 7 };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (size_t j = 0; j < sizeof(chunks) / sizeof(chunks[0]); j++)
			run_case(&cases[i], chunks[j]);
}

static void test_output_error(void **state)
{
	struct sg_data_parser p;
	struct sink k = { .fail = true };
	bool done;
	const char *in = "abc\r\ndef\r\n.\r\n";

	(void)state;
	sg_buf_init(&k.b, 100);
	sg_data_init(&p, 1000, 0, sink_out, &k);
	assert_int_equal(sg_data_push(&p, in, strlen(in), &done), strlen(in));
	assert_true(done);
	assert_int_equal(p.errors, SG_DATA_ERR_OUTPUT);
	sg_buf_free(&k.b);
}

/* A message bigger than the staging buffer comes out whole, in order. */
static void test_large(void **state)
{
	struct sg_data_parser p;
	struct sink k = { .fail = false };
	struct sg_buf in, want;
	bool done;

	(void)state;
	sg_buf_init(&in, 1 << 20);
	sg_buf_init(&want, 1 << 20);
	sg_buf_init(&k.b, 1 << 20);
	for (int i = 0; i < 5000; i++) {
		assert_true(sg_buf_printf(&in, "%sline %d\r\n", i % 7 == 0 ? ".." : "", i));
		assert_true(sg_buf_printf(&want, "%sline %d\r\n", i % 7 == 0 ? "." : "", i));
	}
	assert_true(sg_buf_append_str(&in, ".\r\n"));
	sg_data_init(&p, 1000, 0, sink_out, &k);
	assert_int_equal(sg_data_push(&p, in.data, in.len, &done), in.len);
	assert_true(done);
	assert_int_equal(p.errors, 0);
	assert_int_equal(k.b.len, want.len);
	assert_memory_equal(k.b.data, want.data, want.len);
	sg_buf_free(&in);
	sg_buf_free(&want);
	sg_buf_free(&k.b);
}

/* A line longer than the staging buffer, in one push and in odd chunks. */
static void test_long_run(void **state)
{
	static const size_t chunks[] = { 20000, 4095, 4097, 1 };
	struct sg_buf in, want;

	(void)state;
	sg_buf_init(&in, 1 << 20);
	sg_buf_init(&want, 1 << 20);
	for (int i = 0; i < 9000; i++) {
		assert_true(sg_buf_printf(&in, "%c", 'a' + i % 26));
		assert_true(sg_buf_printf(&want, "%c", 'a' + i % 26));
	}
	assert_true(sg_buf_append_str(&in, "\r\n..x\r\n.\r\n"));
	assert_true(sg_buf_append_str(&want, "\r\n.x\r\n"));
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct sg_data_parser p;
		struct sink k = { .fail = false };
		size_t pos = 0;
		bool done = false;
		sg_buf_init(&k.b, 1 << 20);
		sg_data_init(&p, 0, 0, sink_out, &k);
		while (pos < in.len && !done) {
			size_t n = in.len - pos < chunks[c] ? in.len - pos : chunks[c];
			pos += sg_data_push(&p, in.data + pos, n, &done);
		}
		assert_true(done);
		assert_int_equal(pos, in.len);
		assert_int_equal(p.errors, 0);
		assert_int_equal(k.b.len, want.len);
		assert_memory_equal(k.b.data, want.data, want.len);
		sg_buf_free(&k.b);
	}
	sg_buf_free(&in);
	sg_buf_free(&want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_output_error),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_long_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
