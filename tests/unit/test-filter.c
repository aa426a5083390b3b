/* Unit tests for policy/filter.c: each exit code's verdict, the reason
 * line, rewriting, a filter that never reads its input, a filter that runs
 * out of time (and its children killed), output past the limit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/filter.h"

static const unsigned char MSG[] = "Subject: hi\r\n\r\nbody MARKER\r\n";

struct fcase {
	const char *name, *cmd;
	bool rewrite;
	enum sg_filter_verdict want;
	const char *reason;   /* substring of the reason */
	const char *replaced; /* exact, or NULL: left empty */
};

static void check(const struct fcase *c, const unsigned char *msg, size_t len, unsigned timeout)
{
	struct sg_filter f = { .cmd = c->cmd, .timeout = timeout, .rewrite = c->rewrite, .max_output = 4096 };
	struct sg_buf out;
	char *reason = NULL;

	sg_buf_init(&out, 1 << 20);
	enum sg_filter_verdict v = sg_filter_run(&f, msg, len, &out, &reason);
	if (v != c->want || reason == NULL || strstr(reason, c->reason) == NULL) {
		print_error("case '%s': verdict %d reason '%s'\n", c->name, (int)v, reason ? reason : "(null)");
		fail();
	}
	if (c->replaced == NULL ? out.len != 0 : strcmp(sg_buf_str(&out), c->replaced) != 0) {
		print_error("case '%s': replaced '%s'\n", c->name, sg_buf_str(&out));
		fail();
	}
	free(reason);
	sg_buf_free(&out);
}

static void test_verdicts(void **state)
{
	static const struct fcase cases[] = {
		{ "accept", "cat >/dev/null; exit 0", false, SG_FILTER_ACCEPT, "accepted", NULL },
		{ "accept, output ignored", "echo new", false, SG_FILTER_ACCEPT, "accepted", NULL },
		{ "rewrite", "sed s/MARKER/CHANGED/", true, SG_FILTER_ACCEPT, "accepted",
		  "Subject: hi\r\n\r\nbody CHANGED\r\n" },
		{ "rewrite, no output keeps", "cat >/dev/null", true, SG_FILTER_ACCEPT, "accepted", NULL },
		{ "reject, first line", "grep -q MARKER && printf 'virus found: EICAR\\nmore\\n'; exit 1",
		  false, SG_FILTER_REJECT, "virus found: EICAR", NULL },
		{ "reject, control bytes", "printf 'bad\\033x'; exit 1", false, SG_FILTER_REJECT, "bad?x", NULL },
		{ "reject, no text", "exit 1", false, SG_FILTER_REJECT, "rejected by content filter", NULL },
		{ "tempfail", "exit 75", false, SG_FILTER_TEMPFAIL, "exit status 75", NULL },
		{ "not found", "/nonexistent/filter", false, SG_FILTER_TEMPFAIL, "exit status 127", NULL },
		{ "signal", "kill -9 $$", false, SG_FILTER_TEMPFAIL, "signal 9", NULL },
		{ "too much output to rewrite", "yes | head -c 100000", true, SG_FILTER_TEMPFAIL, "too large", NULL },
		{ "much output, no rewrite", "yes | head -c 100000; exit 1", false, SG_FILTER_REJECT, "y", NULL },
		{ "reject without reading", "exit 1", false, SG_FILTER_REJECT, "rejected", NULL },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check(&cases[i], MSG, sizeof(MSG) - 1, 30);
}

/* 8 MiB the filter never reads: the pipe fills, the filter exits, the
 * verdict is still its exit code. */
static void test_unread_input(void **state)
{
	size_t len = 8u << 20;
	unsigned char *big = malloc(len);
	static const struct fcase c = { "unread", "exit 0", false, SG_FILTER_ACCEPT, "accepted", NULL };
	static const struct fcase r = { "unread reject", "echo no; exit 1", false, SG_FILTER_REJECT, "no", NULL };
	(void)state;
	memset(big, 'x', len);
	check(&c, big, len, 30);
	check(&r, big, len, 30);
	free(big);
}

/* Out of time: the shell and what it started are killed. */
static void test_timeout(void **state)
{
	static const struct fcase c = { "sleeps", "sleep 30 & sleep 30", false, SG_FILTER_TEMPFAIL,
					"did not finish within 1s", NULL };
	static const struct fcase d = { "reads nothing, keeps stdout", "exec >/dev/null; (sleep 30 &); exit 0",
					false, SG_FILTER_ACCEPT, "accepted", NULL };
	(void)state;
	check(&c, MSG, sizeof(MSG) - 1, 1);
	check(&d, MSG, sizeof(MSG) - 1, 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_unread_input),
		cmocka_unit_test(test_timeout),
	};
	signal(SIGPIPE, SIG_IGN); /* as `sealgate serve` does */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
