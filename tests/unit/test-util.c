/* Unit tests for util/: bounded buffers, errors, the spool. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mail/envelope.h"
#include "util/buf.h"
#include "util/error.h"
#include "util/secret.h"
#include "util/spool.h"

static void test_buf_limit(void **state)
{
	struct sg_buf b;
	(void)state;
	sg_buf_init(&b, 8);
	assert_int_equal(sg_buf_append(&b, "12345", 5), 1);
	assert_int_equal(sg_buf_append(&b, "678", 3), 1);
	/* One byte over the maximum: refused, contents unchanged. */
	assert_int_equal(sg_buf_append(&b, "9", 1), 0);
	assert_string_equal(sg_buf_str(&b), "12345678");
	sg_buf_consume(&b, 3);
	assert_string_equal(sg_buf_str(&b), "45678");
	assert_int_equal(sg_buf_printf(&b, "%d", 12), 1);
	assert_int_equal(sg_buf_printf(&b, "%d", 39), 0);
	assert_string_equal(sg_buf_str(&b), "4567812");
	sg_buf_free(&b);
	assert_null(b.data);
}

static void test_error_prefix(void **state)
{
	struct sg_error err = SG_ERROR_INIT;
	(void)state;
	assert_string_equal(sg_error_msg(&err), "unknown error");
	sg_error_set(&err, "key expired %s", "2026-01-01");
	sg_error_prefix(&err, "recipient %s", "bob@b.test");
	sg_error_prefix(&err, "seal");
	assert_string_equal(sg_error_msg(&err), "seal: recipient bob@b.test: key expired 2026-01-01");
	sg_error_clear(&err);
	assert_null(err.msg);
	sg_error_set(NULL, "ignored"); /* must not crash */
}

static void test_memeq_ct(void **state)
{
	(void)state;
	assert_true(sg_memeq_ct("abcd", "abcd", 4));
	assert_false(sg_memeq_ct("abcd", "abce", 4));
	char *s = strdup("secret");
	sg_secret_free(&s, 6);
	assert_null(s);
}

static void check_spool(size_t mem_max, size_t total, size_t chunk, int expect_disk)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_spool *sp = sg_spool_new("/tmp", mem_max, 1 << 20);
	unsigned char *want = malloc(total);
	for (size_t i = 0; i < total; i++)
		want[i] = (unsigned char)(i * 7 + 3);
	for (size_t off = 0; off < total; off += chunk) {
		size_t n = total - off < chunk ? total - off : chunk;
		assert_int_equal(sg_spool_append(sp, want + off, n, &err), 1);
	}
	assert_int_equal(sg_spool_finish(sp, &err), 1);
	assert_int_equal(sg_spool_size(sp), total);
	assert_int_equal(sg_spool_on_disk(sp), expect_disk);
	assert_memory_equal(sg_spool_data(sp), want, total);
	sg_spool_free(&sp);
	assert_null(sp);
	free(want);
}

static void test_spool_memory_and_disk(void **state)
{
	(void)state;
	check_spool(1000, 500, 7, 0);    /* fits in memory */
	check_spool(1000, 1000, 1, 0);   /* exactly at the threshold, byte by byte */
	check_spool(1000, 1001, 1, 1);   /* one past: on disk */
	check_spool(1000, 300000, 4096, 1);
}

static void test_spool_oversize(void **state)
{
	struct sg_error err = SG_ERROR_INIT;
	(void)state;
	struct sg_spool *sp = sg_spool_new("/tmp", 4, 10);
	assert_int_equal(sg_spool_append(sp, "0123456789", 10, &err), 1);
	assert_int_equal(sg_spool_append(sp, "x", 1, &err), 0);
	assert_true(sg_spool_oversize(sp));
	assert_int_equal(sg_spool_finish(sp, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "size limit"));
	sg_error_clear(&err);
	sg_spool_free(&sp);
}

static void test_esmtp_param(void **state)
{
	static const struct {
		const char *params, *kw;
		int found;
		const char *value;
	} cases[] = {
		{ "BODY=8BITMIME SIZE=123", "SIZE", 1, "123" },
		{ "BODY=8BITMIME SIZE=123", "body", 1, "8BITMIME" },
		{ "SMTPUTF8", "SMTPUTF8", 1, "" },
		{ "SIZEX=1", "SIZE", 0, NULL },
		{ "", "SIZE", 0, NULL },
		{ NULL, "SIZE", 0, NULL },
		{ "  RET=HDRS   ENVID=abc ", "ENVID", 1, "abc" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *v = NULL;
		int r = sg_esmtp_param(cases[i].params, cases[i].kw, &v);
		if (r != cases[i].found)
			fail_msg("case %zu (%s in '%s'): got %d", i, cases[i].kw,
				 cases[i].params ? cases[i].params : "(null)", r);
		if (r)
			assert_string_equal(v, cases[i].value);
		free(v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_limit),
		cmocka_unit_test(test_error_prefix),
		cmocka_unit_test(test_memeq_ct),
		cmocka_unit_test(test_spool_memory_and_disk),
		cmocka_unit_test(test_spool_oversize),
		cmocka_unit_test(test_esmtp_param),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
