/* Unit tests for deliver/folders.c: the Maildir++ listing shared by rekey
 * and seal-mailbox (root + ".Name" folders, sorted, tmp/ leftovers out). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver/folders.h"
#include "util/mem.h"

#include "tmpdir.h"

static void mk(const char *root, const char *rel)
{
	char *p = sg_asprintf("%s/%s", root, rel);
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
}

static void touch(const char *root, const char *rel)
{
	char *p = sg_asprintf("%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	free(p);
}

static void test_list_all(void **state)
{
	const char *root = *state;
	static const char *const dirs[] = {
		"cur", "new", "tmp", ".Sent", ".Sent/cur", ".Sent/new", ".Sent/tmp",
		".Lists.foo", ".Lists.foo/cur", ".Drafts", ".Drafts/new",
		".notafolder", /* no cur/ nor new/: not listed, no error */
	};
	static const char *const files[] = {
		"cur/2.M2P1.host:2,S", "new/1.M1P1.host", "cur/.hidden",
		".Sent/cur/1.M1P1.host:2,S", ".Lists.foo/cur/5.M5P1.host:2,",
		".Drafts/new/6.M6P1.host", ".sealgate-seal-mailbox.journal", "dovecot-uidlist",
		"tmp/9.M9P1.host.sealgate-seal-77", ".Sent/tmp/1.M1P1.host.sealgate-seal-77",
		".Sent/tmp/8.M8P1.otherhost",
	};
	static const char *const want[] = {
		".Drafts/new/6.M6P1.host", ".Lists.foo/cur/5.M5P1.host:2,",
		".Sent/cur/1.M1P1.host:2,S", "cur/2.M2P1.host:2,S", "new/1.M1P1.host",
	};
	struct sg_error err = SG_ERROR_INIT;
	char **rels = NULL;
	size_t n = 0;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		mk(root, dirs[i]);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		touch(root, files[i]);
	assert_int_equal(sg_maildir_list_all(root, ".sealgate-seal-", &rels, &n, &err), 1);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(rels[i], want[i]);
	/* each folder's tmp/ cleaned of our leftovers only */
	assert_false(tmpdir_exists(root, "tmp/9.M9P1.host.sealgate-seal-77"));
	assert_false(tmpdir_exists(root, ".Sent/tmp/1.M1P1.host.sealgate-seal-77"));
	assert_true(tmpdir_exists(root, ".Sent/tmp/8.M8P1.otherhost"));
	sg_maildir_rels_free(&rels, &n);
	assert_null(rels);
	assert_int_equal(n, 0);
	sg_error_clear(&err);
}

static void test_not_a_maildir(void **state)
{
	const char *root = *state;
	struct sg_error err = SG_ERROR_INIT;
	char **rels = NULL;
	size_t n = 0;
	char *missing = sg_asprintf("%s/nothing", root);

	mk(root, ".Sent");
	mk(root, ".Sent/cur");
	assert_int_equal(sg_maildir_list_all(root, NULL, &rels, &n, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "not a Maildir"));
	sg_error_clear(&err);
	assert_int_equal(sg_maildir_list_all(missing, NULL, &rels, &n, &err), -1);
	assert_null(rels);
	sg_error_clear(&err);
	free(missing);
}

static void test_rel_split(void **state)
{
	static const struct {
		const char *rel, *folder, *inner;
	} cases[] = {
		{ "cur/1.M1P1.host:2,S", "", "cur/1.M1P1.host:2,S" },
		{ "new/1.M1P1.host", "", "new/1.M1P1.host" },
		{ ".Sent/cur/1.M1P1.host:2,S", ".Sent", "cur/1.M1P1.host:2,S" },
		{ ".Lists.foo/new/2", ".Lists.foo", "new/2" },
		{ ".Sent Items/cur/3", ".Sent Items", "cur/3" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *folder = NULL;
		const char *inner = sg_maildir_rel_split(cases[i].rel, &folder);
		assert_string_equal(folder, cases[i].folder);
		assert_string_equal(inner, cases[i].inner);
		free(folder);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list_all, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_not_a_maildir, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test(test_rel_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
