/* Unit tests for deliver/journal.c: what a re-run reads back (the last
 * line for a base name counts, names with flags and sizes find their base,
 * a line cut short by a kill is ignored, Maildir++ folders kept apart), the
 * lock against a second run, removal after a clean run, and tmp/ leftovers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver/journal.h"
#include "util/mem.h"

#include "tmpdir.h"

#define NAME ".test.journal"

static void write_text(const char *dir, const char *name, const char *text)
{
	char *p = sg_asprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(p);
}

static char *read_text(const char *dir, const char *name)
{
	char *p = sg_asprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "r");
	char *text = sg_calloc(1, 4096);
	assert_non_null(f);
	(void)!fread(text, 1, 4095, f);
	fclose(f);
	free(p);
	return text;
}

static struct sg_journal *open_ok(const char *dir)
{
	struct sg_journal *j = NULL;
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_journal_open(dir, NAME, &j, &err), 1);
	sg_error_clear(&err);
	return j;
}

/* Written by one run, read back by the next, by file name with flags. */
static void test_round_trip(void **state)
{
	const char *dir = *state;
	struct sg_journal *j = open_ok(dir);
	int64_t size = 0;
	assert_int_equal(sg_journal_lookup(j, "1.M1P1.host", &size), SG_JOURNAL_NONE);
	assert_int_equal(size, -1);
	sg_journal_begin(j, "1.M1P1.host,S=10,W=12:2,S");
	sg_journal_done(j, "1.M1P1.host,S=10,W=12:2,S", 4242);
	sg_journal_begin(j, "2.M2P1.host");
	sg_journal_close(&j, false);
	assert_null(j);

	j = open_ok(dir);
	assert_int_equal(sg_journal_lookup(j, "1.M1P1.host,S=99:2,FS", &size), SG_JOURNAL_DONE);
	assert_int_equal(size, 4242);
	assert_int_equal(sg_journal_lookup(j, "2.M2P1.host:2,", &size), SG_JOURNAL_BEGUN);
	assert_int_equal(sg_journal_lookup(j, "3.M3P1.host", NULL), SG_JOURNAL_NONE);
	sg_journal_close(&j, true);
	assert_false(tmpdir_exists(dir, NAME));
}

/* Table: journal text -> state of base "a" (and its size when done). */
static void test_last_line_counts(void **state)
{
	static const struct {
		const char *text;
		enum sg_journal_state want;
		int64_t size;
	} cases[] = {
		{ "begin a\n", SG_JOURNAL_BEGUN, -1 },
		{ "begin a\ndone a 7\n", SG_JOURNAL_DONE, 7 },
		{ "done a 7\nbegin a\n", SG_JOURNAL_BEGUN, -1 },   /* re-done later, killed */
		{ "begin a\ndone a\n", SG_JOURNAL_DONE, -1 },      /* older journal: no size */
		{ "begin a\ndone a 7x\n", SG_JOURNAL_DONE, -1 },   /* size unreadable */
		{ "begin a\ndo", SG_JOURNAL_BEGUN, -1 },           /* cut short by kill -9 */
		{ "begin b\ndone b 1\n", SG_JOURNAL_NONE, -1 },
		{ "begin \ndone \n", SG_JOURNAL_NONE, -1 },
		{ "", SG_JOURNAL_NONE, -1 },
	};
	const char *dir = *state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_text(dir, NAME, cases[i].text);
		struct sg_journal *j = open_ok(dir);
		int64_t size = 0;
		enum sg_journal_state got = sg_journal_lookup(j, "a,S=1:2,S", &size);
		if (got != cases[i].want || size != cases[i].size)
			fail_msg("case %zu (%s): state %d size %lld", i, cases[i].text, (int)got,
				 (long long)size);
		sg_journal_close(&j, true);
	}
}

/* Maildir++ folders: the same base name in the root and in .Sent (Dovecot's
 * COPY hard-links under the base name) are two entries; a folder name with
 * a space or '%' is escaped so the line still parses; a journal of an
 * older version (bare base names) is read as the root folder's. */
static void test_folders(void **state)
{
	const char *dir = *state;
	struct sg_journal *j = open_ok(dir);
	int64_t size = 0;
	sg_journal_begin(j, ".Sent/1.M1P1.host:2,S");
	sg_journal_done(j, ".Sent/1.M1P1.host:2,S", 11);
	sg_journal_begin(j, ".Sent Items/2.M2P1.host");
	sg_journal_done(j, ".Sent Items/2.M2P1.host", 22);
	sg_journal_begin(j, ".100%/3.M3P1.host");
	sg_journal_close(&j, false);

	char *text = read_text(dir, NAME);
	assert_non_null(strstr(text, "done .Sent%20Items/2.M2P1.host 22\n"));
	assert_non_null(strstr(text, "begin .100%25/3.M3P1.host\n"));
	free(text);
	j = open_ok(dir);
	assert_int_equal(sg_journal_lookup(j, ".Sent/1.M1P1.host,S=5", &size), SG_JOURNAL_DONE);
	assert_int_equal(size, 11);
	assert_int_equal(sg_journal_lookup(j, "1.M1P1.host:2,S", &size), SG_JOURNAL_NONE);
	assert_int_equal(sg_journal_lookup(j, ".Drafts/1.M1P1.host", NULL), SG_JOURNAL_NONE);
	assert_int_equal(sg_journal_lookup(j, ".Sent Items/2.M2P1.host:2,", &size), SG_JOURNAL_DONE);
	assert_int_equal(size, 22);
	assert_int_equal(sg_journal_lookup(j, ".Sent/2.M2P1.host", NULL), SG_JOURNAL_NONE);
	assert_int_equal(sg_journal_lookup(j, ".100%/3.M3P1.host", NULL), SG_JOURNAL_BEGUN);
	sg_journal_close(&j, true);

	write_text(dir, NAME, "begin 4.M4P1.host\ndone 4.M4P1.host 44\n");
	j = open_ok(dir);
	assert_int_equal(sg_journal_lookup(j, "4.M4P1.host:2,S", &size), SG_JOURNAL_DONE);
	assert_int_equal(size, 44);
	assert_int_equal(sg_journal_lookup(j, ".Sent/4.M4P1.host:2,S", NULL), SG_JOURNAL_NONE);
	sg_journal_close(&j, true);
}

/* The lock: a second open of the same journal is refused, with the reason. */
static void test_second_run_refused(void **state)
{
	const char *dir = *state;
	struct sg_journal *j = open_ok(dir), *k = NULL;
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_journal_open(dir, NAME, &k, &err), -1);
	assert_null(k);
	assert_non_null(strstr(sg_error_msg(&err), "another run"));
	sg_error_clear(&err);
	sg_journal_close(&j, false);
	k = open_ok(dir);
	sg_journal_close(&k, true);
}

static void test_leftovers(void **state)
{
	const char *dir = *state;
	char *tmp = sg_asprintf("%s/tmp", dir);
	assert_int_equal(mkdir(tmp, 0700), 0);
	write_text(dir, "tmp/1.M1P1.host,S=9:2,S.sealgate-seal-123", "x");
	write_text(dir, "tmp/2.M2P1.host", "being delivered by someone else");
	write_text(dir, "tmp/3.M3P1.mx.sealgate-seal-1a", "a host name with the tag");
	write_text(dir, "tmp/4.M4P1.host.sealgate-seal-", "no pid");
	sg_journal_remove_leftovers(dir, ".sealgate-seal-");
	assert_false(tmpdir_exists(dir, "tmp/1.M1P1.host,S=9:2,S.sealgate-seal-123"));
	assert_true(tmpdir_exists(dir, "tmp/2.M2P1.host"));
	assert_true(tmpdir_exists(dir, "tmp/3.M3P1.mx.sealgate-seal-1a"));
	assert_true(tmpdir_exists(dir, "tmp/4.M4P1.host.sealgate-seal-"));
	free(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_last_line_counts, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_folders, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_second_run_refused, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_leftovers, tmpdir_setup, tmpdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
