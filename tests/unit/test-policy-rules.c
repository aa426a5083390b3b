/* Unit tests for policy/rules.c (parse errors with file:line, first-match
 * evaluation) and the inbound Authentication-Results rewrite. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "policy/rules.h"

static void case_failed(const char *what, const char *name)
{
	print_error("case '%s': %s\n", name, what);
	fail();
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *name, *text, *want;
	} cases[] = {
		{ "unknown treatment", "to=a@b encrypt\n", "rules:1: unknown treatment 'encrypt'" },
		{ "no treatment", "\n# c\nto=a@b\n", "rules:3: no treatment" },
		{ "no condition", "e2e\n", "rules:1: e2e: a rule needs a condition first" },
		{ "unknown condition", "rcpt=a@b e2e\n", "rules:1: unknown condition 'rcpt'" },
		{ "twice", "to=a to=b e2e\n", "rules:1: to: given twice" },
		{ "star and cond", "* to=a e2e\n", "rules:1: '*' matches everything" },
		{ "bad modifier", "* e2e missing=maybe\n", "rules:1: missing: 'maybe' is not one of" },
		{ "modifier n/a", "* pass missing=reject\n", "rules:1: missing= does not apply to pass" },
		{ "text n/a", "* e2e text=x\n", "rules:1: text= does not apply to e2e" },
		{ "unknown modifier", "* e2e foo=bar\n", "rules:1: unknown modifier 'foo'" },
		{ "bare after treatment", "* e2e defer\n", "rules:1: 'defer' after the treatment" },
		{ "unterminated", "* reject text=\"abc\n", "rules:1: unterminated quoted value" },
		{ "empty value", "to= e2e\n", "rules:1: to: empty value" },
		{ "header no colon", "header=X-A e2e\n", "rules:1: header: expected" },
		{ "header empty", "header=\"X-A:\" e2e\n", "rules:1: header: empty value" },
		{ "control", "* pass\nto=a\x01 e2e\n", "rules:2: control character" },
		{ "nul", "* pass\n\n\nto=a\0 e2e\n", "rules:4: control character" },
		{ "quote in word", "to=a\"b e2e\n", "rules:1: '\"' inside an unquoted value" },
		{ "after quote", "* reject text=\"a\"b\n", "rules:1: text after a closing quote" },
		{ "missing twice", "* e2e missing=pass missing=defer\n", "rules:1: missing: given twice" },
		{ "missing=domain on domain", "* domain missing=domain\n", "rules:1: missing=domain applies to e2e only" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_policy_rules *rs = NULL;
		struct sg_error err = SG_ERROR_INIT;
		size_t len = strlen(cases[i].text);
		if (strcmp(cases[i].name, "nul") == 0)
			len = 17;
		if (sg_policy_rules_parse("rules", cases[i].text, len, &rs, &err) != -1)
			case_failed("parsed", cases[i].name);
		if (rs != NULL)
			case_failed("rules returned on error", cases[i].name);
		if (strstr(sg_error_msg(&err), cases[i].want) == NULL) {
			print_error("got: %s\n", sg_error_msg(&err));
			case_failed(cases[i].want, cases[i].name);
		}
		sg_error_clear(&err);
	}
}

static const char rules_text[] =
	"# outbound policy\n"
	"to=spam@* reject text=\"no \\\"spam\\\" here\"\n"
	"to=*@bank.test tls-only\n"
	"to=partner.test e2e missing=defer prefer=smime\n"
	"from=<> pass\n"
	"subject=[secure] e2e\r\n"
	"header=\"X-Sealgate-Encrypt: yes\" e2e sign=yes\n"
	"from=*@a.test to=*@*.corp.test domain missing=tls-only\n"
	"*   pass   # everything else\n";

static void test_match(void **state)
{
	static const struct {
		const char *name, *from, *to, *hdr;
		unsigned line; /* 0: no rule */
	} cases[] = {
		{ "reject first", "a@a.test", "spam@bank.test", "", 2 },
		{ "domain glob", "a@a.test", "Joe@Bank.Test", "", 3 },
		{ "bare domain", "a@a.test", "x@partner.test", "", 4 },
		{ "bare domain no subdomain", "x@y", "x@sub.partner.test", "", 9 },
		{ "null sender", "", "x@y.test", "Subject: [secure]\r\n", 5 },
		{ "subject tag", "a@x.test", "x@y.test", "Subject: hi [SECURE] there\r\n", 6 },
		{ "folded subject", "a@x.test", "x@y.test", "Subject: hi\r\n [secure]\r\n", 6 },
		{ "header", "a@x.test", "x@y.test", "X-Sealgate-Encrypt:  Yes\r\n", 7 },
		{ "header other value", "a@x.test", "x@y.test", "X-Sealgate-Encrypt: no\r\n", 9 },
		{ "from and to", "b@a.test", "x@eu.corp.test", "", 8 },
		{ "from mismatch", "b@b.test", "x@eu.corp.test", "", 9 },
	};
	struct sg_policy_rules *rs = NULL;
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_policy_rules_parse("p.rules", rules_text, strlen(rules_text), &rs, &err), 1);
	assert_int_equal(rs->n, 8);
	assert_string_equal(rs->rules[0].text, "no \"spam\" here");
	assert_int_equal(rs->rules[2].missing, SG_MISSING_DEFER);
	assert_int_equal(rs->rules[2].prefer, SG_PREFER_SMIME);
	assert_int_equal(rs->rules[5].sign, SG_SIGN_YES);
	assert_int_equal(rs->rules[6].treatment, SG_TREAT_DOMAIN);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *msg = NULL;
		struct sg_msg_view v;
		assert_true(asprintf(&msg, "From: x\r\n%s\r\nbody\r\n", cases[i].hdr) > 0);
		assert_int_equal(sg_msg_split((const unsigned char *)msg, strlen(msg), &v, NULL), 1);
		const struct sg_policy_rule *r = sg_policy_rules_match(rs, cases[i].from, cases[i].to, &v);
		unsigned got = r != NULL ? r->line : 0;
		if (got != cases[i].line) {
			print_error("line %u, want %u\n", got, cases[i].line);
			case_failed("wrong rule", cases[i].name);
		}
		free(msg);
	}
	sg_policy_rules_free(&rs);
	assert_null(rs);
}

static void test_empty(void **state)
{
	struct sg_policy_rules *rs = NULL;
	assert_int_equal(sg_policy_rules_parse("e", "", 0, &rs, NULL), 1);
	assert_int_equal(rs->n, 0);
	assert_null(sg_policy_rules_match(rs, "a@b", "c@d", NULL));
	sg_policy_rules_free(&rs);
	assert_null(sg_policy_rules_match(NULL, "a@b", "c@d", NULL));
}

static void test_rewrite_ar(void **state)
{
	static const char msg[] =
		"Authentication-Results: gw.test; smime=pass\r\n"
		"Received: from x\r\n"
		"Authentication-Results: other.test; dkim=pass\r\n"
		"authentication-results:  (comment) GW.TEST;\r\n"
		"\topenpgp=pass\r\n"
		"Authentication-Results: \"gw.test\"; dkim=pass\r\n"
		"Authentication-Results: gw.test.evil; dkim=pass\r\n"
		"Subject: hi\r\n"
		"\r\n"
		"Authentication-Results: gw.test; in the body\r\n";
	static const char want[] =
		"Authentication-Results: gw.test; x=y\r\n"
		"Received: from x\r\n"
		"Authentication-Results: other.test; dkim=pass\r\n"
		"Authentication-Results: gw.test.evil; dkim=pass\r\n"
		"Subject: hi\r\n"
		"\r\n"
		"Authentication-Results: gw.test; in the body\r\n";
	struct sg_msg_view v;
	struct sg_buf out;
	sg_buf_init(&out, 1 << 20);
	assert_int_equal(sg_msg_split((const unsigned char *)msg, strlen(msg), &v, NULL), 1);
	assert_int_equal(sg_policy_rewrite_ar(&v, "gw.test", "Authentication-Results: gw.test; x=y\r\n",
					      &out, NULL), 3);
	assert_string_equal(sg_buf_str(&out), want);
	sg_buf_reset(&out);
	/* Nothing to remove, nothing to add: the bytes unchanged. */
	assert_int_equal(sg_policy_rewrite_ar(&v, "nothere.test", NULL, &out, NULL), 0);
	assert_int_equal(out.len, strlen(msg));
	assert_memory_equal(out.data, msg, out.len);
	sg_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_rewrite_ar),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
