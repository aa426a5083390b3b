/* Unit tests for SMTP command parsing (smtp/cmd.c) and endpoint strings
 * (util/hostport.c): table-driven, each failure names its case. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/cmd.h"
#include "util/hostport.h"

static bool streq_null(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

#define L16 "abcdefghijklmnop"
#define L64 L16 L16 L16 L16

struct path_case {
	const char *args, *keyword;
	bool allow_null, allow_pm;
	int ret;
	const char *addr, *params;
	bool addr_8bit;
};

static const struct path_case path_cases[] = {
	{ "FROM:<a@b.test>", "FROM", true, false, 1, "a@b.test", NULL, false },
	{ "from:<a@b.test>", "FROM", true, false, 1, "a@b.test", NULL, false },
	{ "FROM: <a@b.test>", "FROM", true, false, 1, "a@b.test", NULL, false },
	{ "FROM:<>", "FROM", true, false, 1, "", NULL, false },
	{ "FROM:<> SIZE=10", "FROM", true, false, 1, "", "SIZE=10", false },
	{ "TO:<>", "TO", false, true, -1, NULL, NULL, false },
	{ "FROM:a@b.test", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<a@b.test", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<a@b.test>x", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<a b@c.test>", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<a@b.test\r>", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<\"a b\"@c.test>", "FROM", true, false, 1, "\"a b\"@c.test", NULL, false },
	{ "FROM:<\"a\\\"b\"@c.test>", "FROM", true, false, 1, "\"a\\\"b\"@c.test", NULL, false },
	{ "FROM:<\"ab@c.test>", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<@r1.test,@r2.test:a@b.test>", "FROM", true, false, 1, "a@b.test", NULL, false },
	{ "FROM:<@r1.test:>", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<a@[127.0.0.1]>", "FROM", true, false, 1, "a@[127.0.0.1]", NULL, false },
	{ "FROM:<a@[IPv6:::1]>", "FROM", true, false, 1, "a@[IPv6:::1]", NULL, false },
	{ "FROM:<a@[]>", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<a@-b.test>", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<a@b-.test>", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<a@b..test>", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<a@>", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<@b.test>", "FROM", true, false, -1, NULL, NULL, false },
	{ "TO:<a..b@c.test>", "TO", false, true, -1, NULL, NULL, false },
	{ "TO:<.a@c.test>", "TO", false, true, -1, NULL, NULL, false },
	{ "FROM:<a@b.test> SIZE=100 BODY=8BITMIME", "FROM", true, false, 1, "a@b.test",
	  "SIZE=100 BODY=8BITMIME", false },
	{ "FROM:<a@b.test>   SMTPUTF8  ", "FROM", true, false, 1, "a@b.test", "SMTPUTF8", false },
	{ "FROM:<a@b.test> SIZE=", "FROM", true, false, -2, NULL, NULL, false },
	{ "FROM:<a@b.test> =x", "FROM", true, false, -2, NULL, NULL, false },
	{ "FROM:<a@b.test> -X=1", "FROM", true, false, -2, NULL, NULL, false },
	{ "FROM:<a@b.test> X==1", "FROM", true, false, -2, NULL, NULL, false },
	{ "TO:<Postmaster>", "TO", false, true, 1, "Postmaster", NULL, false },
	{ "TO:<postmaster>", "FROM", true, false, 0, NULL, NULL, false },
	{ "FROM:<postmaster>", "FROM", true, false, -1, NULL, NULL, false },
	{ "TO:<a@b.test> NOTIFY=NEVER", "TO", false, true, 1, "a@b.test", "NOTIFY=NEVER", false },
	{ "FROM:<\xc3\xbcser@b.test>", "FROM", true, false, 1, "\xc3\xbcser@b.test", NULL, true },
	{ "FROM:<a@b\xc3\xbc.test>", "FROM", true, false, 1, "a@b\xc3\xbc.test", NULL, true },
	{ "FROM <a@b.test>", "FROM", true, false, 0, NULL, NULL, false },
	{ "FROM:", "FROM", true, false, -1, NULL, NULL, false },
	{ "FROM:<", "FROM", true, false, -1, NULL, NULL, false },  /* found by fuzz-smtp */
	{ "TO:<" L64 "@d.test>", "TO", false, true, 1, L64 "@d.test", NULL, false },
	{ "TO:<" L64 "x@d.test>", "TO", false, true, -1, NULL, NULL, false },
	{ "TO:<\"" L64 "\"@d.test>", "TO", false, true, 1, "\"" L64 "\"@d.test", NULL, false },
	{ "TO:<\"" L64 "x\"@d.test>", "TO", false, true, -1, NULL, NULL, false },
	{ "TO:<a", "TO", false, true, -1, NULL, NULL, false },
	{ "TO:<\"a", "TO", false, true, -1, NULL, NULL, false },
	{ "TO:<a@", "TO", false, true, -1, NULL, NULL, false },
	{ "TO:<a@[1.2", "TO", false, true, -1, NULL, NULL, false },
	{ "TO:<@", "TO", false, true, -1, NULL, NULL, false },
	{ "", "FROM", true, false, 0, NULL, NULL, false },
};

static void test_path(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		struct sg_smtp_path p;
		int r = sg_smtp_parse_path(c->args, c->keyword, c->allow_null, c->allow_pm, &p);
		if (r != c->ret)
			fail_msg("path \"%s\": ret %d, want %d", c->args, r, c->ret);
		if (r == 1 && (!streq_null(p.addr, c->addr) || !streq_null(p.params, c->params) ||
			       p.addr_8bit != c->addr_8bit))
			fail_msg("path \"%s\": addr \"%s\" params \"%s\" 8bit %d", c->args, p.addr,
				 p.params != NULL ? p.params : "(null)", p.addr_8bit);
		if (r != 1 && (p.addr != NULL || p.params != NULL))
			fail_msg("path \"%s\": output set on failure", c->args);
		sg_smtp_path_clear(&p);
	}
}

struct param_case {
	bool mail;
	const char *params;
	size_t max_size;
	int ok, code;
	uint64_t size;
	bool body_8bit, smtputf8;
};

static const struct param_case param_cases[] = {
	{ true, NULL, 1000, 1, 0, 0, false, false },
	{ true, "SIZE=100", 1000, 1, 0, 100, false, false },
	{ true, "size=1000", 1000, 1, 0, 1000, false, false },
	{ true, "SIZE=1001", 1000, 0, 552, 0, false, false },
	{ true, "SIZE=99999999999999999999", 0, 0, 501, 0, false, false },
	{ true, "SIZE=12a", 1000, 0, 501, 0, false, false },
	{ true, "SIZE", 1000, 0, 501, 0, false, false },
	{ true, "BODY=8BITMIME", 1000, 1, 0, 0, true, false },
	{ true, "BODY=7BIT", 1000, 1, 0, 0, false, false },
	{ true, "BODY=BINARYMIME", 1000, 0, 501, 0, false, false },
	{ true, "SMTPUTF8", 1000, 1, 0, 0, false, true },
	{ true, "SMTPUTF8=yes", 1000, 0, 501, 0, false, false },
	{ true, "BODY=8BITMIME SMTPUTF8 SIZE=5", 1000, 1, 0, 5, true, true },
	{ true, "RET=HDRS ENVID=abc+2Bd", 1000, 1, 0, 0, false, false },
	{ true, "RET=SOME", 1000, 0, 501, 0, false, false },
	{ true, "ENVID=a+zz", 1000, 0, 501, 0, false, false },
	{ true, "FOO=bar", 1000, 0, 555, 0, false, false },
	{ true, "AUTH=<>", 1000, 0, 555, 0, false, false },
	{ true, "SIZE=1 SIZE=2", 1000, 0, 501, 0, false, false },
	{ true, "NOTIFY=NEVER", 1000, 0, 555, 0, false, false },
	{ false, "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.test", 0, 1, 0, 0, false, false },
	{ false, "NOTIFY=NEVER", 0, 1, 0, 0, false, false },
	{ false, "NOTIFY=delay", 0, 1, 0, 0, false, false },
	{ false, "NOTIFY=NEVER,SUCCESS", 0, 0, 501, 0, false, false },
	{ false, "NOTIFY=SUCCESS,", 0, 0, 501, 0, false, false },
	{ false, "NOTIFY=SOMETIMES", 0, 0, 501, 0, false, false },
	{ false, "ORCPT=a@b.test", 0, 0, 501, 0, false, false },
	{ false, "ORCPT=rfc822;", 0, 0, 501, 0, false, false },
	{ false, "ORCPT=utf-8;a+40b", 0, 1, 0, 0, false, false },
	{ false, "BODY=8BITMIME", 0, 0, 555, 0, false, false },
};

static void test_params(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
		const struct param_case *c = &param_cases[i];
		struct sg_reply r = { 0, NULL };
		struct sg_mail_opts o = { 0 };
		int ok = c->mail ? sg_smtp_mail_params(c->params, c->max_size, &o, &r)
				 : sg_smtp_rcpt_params(c->params, &r);
		if (ok != c->ok || r.code != c->code)
			fail_msg("params \"%s\": ok %d code %d (%s), want %d %d", c->params, ok, r.code,
				 r.text != NULL ? r.text : "", c->ok, c->code);
		if (ok && c->mail &&
		    (o.size != c->size || o.body_8bit != c->body_8bit || o.smtputf8 != c->smtputf8))
			fail_msg("params \"%s\": size %llu 8bit %d utf8 %d", c->params,
				 (unsigned long long)o.size, o.body_8bit, o.smtputf8);
		if (!ok && (r.text == NULL || r.text[0] != (char)('0' + c->code / 100)))
			fail_msg("params \"%s\": reply without enhanced code: %s", c->params, r.text);
		sg_reply_clear(&r);
	}
}

static void test_xforward(void **state)
{
	struct sg_xforward xf = { 0 };
	struct sg_reply r = { 0, NULL };

	(void)state;
	assert_int_equal(sg_smtp_parse_xforward("NAME=mx.example ADDR=192.0.2.1 PORT=2525 "
						"PROTO=ESMTP HELO=mx IDENT=abc SOURCE=REMOTE",
						&xf, &r), 1);
	assert_string_equal(xf.name, "mx.example");
	assert_string_equal(xf.addr, "192.0.2.1");
	assert_string_equal(xf.port, "2525");
	assert_string_equal(xf.proto, "ESMTP");
	assert_string_equal(xf.helo, "mx");
	assert_string_equal(xf.ident, "abc");
	assert_string_equal(xf.source, "REMOTE");
	/* [UNAVAILABLE] and [TEMPUNAVAIL] unset; others keep their value. */
	assert_int_equal(sg_smtp_parse_xforward("name=[UNAVAILABLE] helo=[TEMPUNAVAIL]", &xf, &r), 1);
	assert_null(xf.name);
	assert_null(xf.helo);
	assert_string_equal(xf.addr, "192.0.2.1");
	/* xtext */
	assert_int_equal(sg_smtp_parse_xforward("IDENT=a+2Bb+3Dc", &xf, &r), 1);
	assert_string_equal(xf.ident, "a+b=c");
	/* Errors leave everything as it was. */
	static const char *const bad[] = { "", "FOO=bar", "NAME", "NAME=", "NAME=a+0Db",
					   "ADDR=1.2.3.4 NAME=x+0Ay", "NAME=a+4", "=x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sg_reply_clear(&r);
		if (sg_smtp_parse_xforward(bad[i], &xf, &r) != 0 || r.code != 501)
			fail_msg("xforward \"%s\" accepted", bad[i]);
		assert_string_equal(xf.addr, "192.0.2.1");
		assert_string_equal(xf.ident, "a+b=c");
	}
	sg_reply_clear(&r);
	sg_xforward_clear(&xf);
}

static void test_split(void **state)
{
	static const struct {
		const char *line;
		int ret;
		size_t vlen;
		const char *args;
	} cases[] = {
		{ "MAIL FROM:<a@b>", 1, 4, "FROM:<a@b>" },
		{ "QUIT", 1, 4, "" },
		{ "EHLO   client.test", 1, 4, "client.test" },
		{ " NOOP", 0, 0, NULL },
		{ "", 0, 0, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t vlen = 0;
		const char *args = NULL;
		int r = sg_smtp_split(cases[i].line, &vlen, &args);
		if (r != cases[i].ret || (r == 1 && (vlen != cases[i].vlen ||
						     strcmp(args, cases[i].args) != 0)))
			fail_msg("split \"%s\": %d %zu", cases[i].line, r, vlen);
	}
}

static void test_hostport(void **state)
{
	static const struct {
		const char *in;
		int ret;
		const char *host, *port;
	} cases[] = {
		{ "127.0.0.1:25", 1, "127.0.0.1", "25" },
		{ "[::1]:10025", 1, "::1", "10025" },
		{ "localhost:65535", 1, "localhost", "65535" },
		{ "[::1]", -1, NULL, NULL },
		{ "::1:25", -1, NULL, NULL },
		{ "127.0.0.1", -1, NULL, NULL },
		{ "127.0.0.1:", -1, NULL, NULL },
		{ ":25", -1, NULL, NULL },
		{ "[]:25", -1, NULL, NULL },
		{ "a:0", -1, NULL, NULL },
		{ "a:65536", -1, NULL, NULL },
		{ "a:2x", -1, NULL, NULL },
		{ "", -1, NULL, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_error err = SG_ERROR_INIT;
		char *host, *port;
		int r = sg_parse_hostport(cases[i].in, &host, &port, &err);
		if (r != cases[i].ret || !streq_null(host, cases[i].host) ||
		    !streq_null(port, cases[i].port))
			fail_msg("hostport \"%s\": %d %s %s", cases[i].in, r, host, port);
		if (r < 0 && err.msg == NULL)
			fail_msg("hostport \"%s\": no reason", cases[i].in);
		free(host);
		free(port);
		sg_error_clear(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_xforward),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_hostport),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
