/* Unit tests for relay/proto: reply and EHLO parsing, MAIL/RCPT parameter
 * filtering, the dot-stuffing encoder (whole and in small chunks), xtext
 * and XFORWARD, queue-ID extraction. Each table names its failing case. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "relay/proto.h"
#include "util/mem.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- replies ---- */

static void test_reply_parse(void **state)
{
	static const struct {
		const char *name;
		const char *lines[4];
		int result; /* of the last line fed */
		int code;
		const char *text;
	} cases[] = {
		{ "single", { "250 2.0.0 Ok" }, 1, 250, "2.0.0 Ok" },
		{ "multi", { "250-mx.test", "250-PIPELINING", "250 SIZE 1000" }, 1, 250,
		  "mx.test\nPIPELINING\nSIZE 1000" },
		{ "code only", { "250" }, 1, 250, "" },
		{ "code and space", { "354 " }, 1, 354, "" },
		{ "continuation pending", { "250-a" }, 0, 0, NULL },
		{ "code changes", { "250-a", "251 b" }, -1, 0, NULL },
		{ "not a code", { "hello" }, -1, 0, NULL },
		{ "bad separator", { "250xok" }, -1, 0, NULL },
		{ "short", { "25" }, -1, 0, NULL },
		{ "class 1 invalid", { "150 go" }, -1, 0, NULL },
		{ "4xx multi", { "451-4.3.0 try", "451 4.3.0 later" }, 1, 451,
		  "4.3.0 try\n4.3.0 later" },
	};
	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct sg_relay_reply_parser p;
		struct sg_error err = SG_ERROR_INIT;
		struct sg_reply rep = { 0, NULL };
		int r = 0;

		sg_relay_reply_parser_init(&p);
		for (size_t l = 0; l < 4 && cases[i].lines[l] != NULL; l++) {
			r = sg_relay_reply_feed(&p, cases[i].lines[l], strlen(cases[i].lines[l]),
						&rep, &err);
			if (r != 0)
				break;
		}
		if (r != cases[i].result)
			fail_msg("case '%s': got %d, want %d (%s)", cases[i].name, r,
				 cases[i].result, sg_error_msg(&err));
		if (r == 1) {
			assert_int_equal(rep.code, cases[i].code);
			if (strcmp(rep.text, cases[i].text) != 0)
				fail_msg("case '%s': text '%s'", cases[i].name, rep.text);
		}
		sg_reply_clear(&rep);
		sg_relay_reply_parser_free(&p);
		sg_error_clear(&err);
	}
}

static void test_reply_parser_reuse(void **state)
{
	/* After an error, and after a reply, the parser starts afresh. */
	struct sg_relay_reply_parser p;
	struct sg_reply rep = { 0, NULL };
	(void)state;
	sg_relay_reply_parser_init(&p);
	assert_int_equal(sg_relay_reply_feed(&p, "250-a", 5, &rep, NULL), 0);
	assert_int_equal(sg_relay_reply_feed(&p, "xyz", 3, &rep, NULL), -1);
	assert_int_equal(sg_relay_reply_feed(&p, "354 go", 6, &rep, NULL), 1);
	assert_int_equal(rep.code, 354);
	assert_string_equal(rep.text, "go");
	sg_reply_clear(&rep);
	sg_relay_reply_parser_free(&p);
}

static void test_enhanced(void **state)
{
	static const struct {
		int code;
		const char *text;
		size_t len;
		const char *with_default;
	} cases[] = {
		{ 250, "2.0.0 Ok", 5, "2.0.0 Ok" },
		{ 550, "5.1.1 unknown user", 5, "5.1.1 unknown user" },
		{ 451, "4.123.456 x", 9, "4.123.456 x" },
		{ 250, "Ok", 0, "2.0.0 Ok" },
		{ 550, "4.1.1 wrong class", 0, "5.0.0 4.1.1 wrong class" },
		{ 250, "2.0 Ok", 0, "2.0.0 2.0 Ok" },
		{ 250, "2.0.0", 5, "2.0.0" },
		{ 250, "2.0.0x", 0, "2.0.0 2.0.0x" },
		{ 421, "", 0, "4.0.0" },
	};
	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct sg_reply r = { cases[i].code, sg_strdup(cases[i].text) };
		if (sg_relay_enhanced_len(cases[i].code, cases[i].text) != cases[i].len)
			fail_msg("case %zu '%s': length", i, cases[i].text);
		sg_relay_reply_add_enhanced(&r);
		if (strcmp(r.text, cases[i].with_default) != 0)
			fail_msg("case %zu '%s': got '%s'", i, cases[i].text, r.text);
		sg_reply_clear(&r);
	}
}

/* ---- capabilities ---- */

static void test_caps(void **state)
{
	static const struct {
		const char *name, *ehlo;
		struct sg_relay_caps want;
	} cases[] = {
		{ "postfix", "mx.test\nPIPELINING\nSIZE 10240000\nVRFY\nETRN\nENHANCEDSTATUSCODES\n"
			     "8BITMIME\nDSN\nSMTPUTF8\nCHUNKING",
		  { .pipelining = true, .size = true, .eightbitmime = true, .smtputf8 = true,
		    .dsn = true, .enhanced = true, .size_max = 10240000 } },
		{ "greeting only", "mx.test", { 0 } },
		{ "greeting words are not keywords", "mx.test PIPELINING SIZE", { 0 } },
		{ "lower case, SIZE without limit", "mx\npipelining\nsize", { .pipelining = true, .size = true } },
		{ "xforward attrs", "mx\nXFORWARD NAME ADDR PROTO HELO",
		  { .xforward = true,
		    .xforward_attrs = SG_XF_NAME | SG_XF_ADDR | SG_XF_PROTO | SG_XF_HELO } },
		{ "xforward all + unknown attr", "mx\nXFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE FOO",
		  { .xforward = true, .xforward_attrs = 0x7f } },
		{ "prefix is not a match", "mx\nPIPELININGX\nDSNX\n8BITMIMEX", { 0 } },
	};
	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct sg_relay_caps c;
		const struct sg_relay_caps *w = &cases[i].want;
		sg_relay_parse_caps(cases[i].ehlo, &c);
		if (c.pipelining != w->pipelining || c.size != w->size ||
		    c.eightbitmime != w->eightbitmime || c.smtputf8 != w->smtputf8 ||
		    c.dsn != w->dsn || c.enhanced != w->enhanced || c.xforward != w->xforward ||
		    c.size_max != w->size_max || c.xforward_attrs != w->xforward_attrs)
			fail_msg("case '%s': caps differ", cases[i].name);
	}
}

/* ---- MAIL / RCPT parameters ---- */

static void test_mail_params(void **state)
{
	static const struct {
		const char *name, *params;
		bool body_8bit, smtputf8;
		const char *ehlo;
		size_t size;
		const char *want;
		bool needs_utf8;
	} cases[] = {
		{ "nothing offered", "BODY=8BITMIME SIZE=5 RET=HDRS ENVID=x SMTPUTF8 AUTH=<>", false,
		  false, "mx", 99, "", true },
		{ "all offered, SIZE recomputed, AUTH dropped",
		  "BODY=8BITMIME SIZE=5 RET=HDRS ENVID=x SMTPUTF8 AUTH=<>", false, false,
		  "mx\nSIZE\n8BITMIME\nSMTPUTF8\nDSN", 99,
		  " SIZE=99 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x", true },
		{ "BODY from the envelope flag", NULL, true, false, "mx\n8BITMIME", 0,
		  " BODY=8BITMIME", false },
		{ "BINARYMIME dropped", "BODY=BINARYMIME", false, false, "mx\n8BITMIME", 0, "", false },
		{ "7BIT kept", "BODY=7bit", false, false, "mx\n8BITMIME", 0, " BODY=7bit", false },
		{ "smtputf8 flag", NULL, false, true, "mx\nSMTPUTF8", 0, " SMTPUTF8", true },
		{ "DSN without DSN", "RET=FULL", false, false, "mx\nSIZE", 12, " SIZE=12", false },
		{ "unknown params dropped", "FOO=bar XYZ", false, false, "mx\nDSN\n8BITMIME", 1, "",
		  false },
	};
	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct sg_envelope env = { 0 };
		struct sg_relay_caps caps;
		env.mail_params = (char *)cases[i].params;
		env.body_8bit = cases[i].body_8bit;
		env.smtputf8 = cases[i].smtputf8;
		sg_relay_parse_caps(cases[i].ehlo, &caps);
		char *got = sg_relay_mail_params(&env, &caps, cases[i].size);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case '%s': got '%s', want '%s'", cases[i].name, got, cases[i].want);
		if (sg_relay_needs_smtputf8(&env) != cases[i].needs_utf8)
			fail_msg("case '%s': needs_smtputf8", cases[i].name);
		free(got);
	}
}

static void test_rcpt_params(void **state)
{
	static const struct {
		const char *params, *ehlo, *want;
	} cases[] = {
		{ "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.test", "mx\nDSN",
		  " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.test" },
		{ "NOTIFY=NEVER ORCPT=rfc822;a@b.test", "mx", "" },
		{ "FOO=1 NOTIFY=NEVER", "mx\nDSN", " NOTIFY=NEVER" },
		{ NULL, "mx\nDSN", "" },
	};
	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct sg_relay_caps caps;
		sg_relay_parse_caps(cases[i].ehlo, &caps);
		char *got = sg_relay_rcpt_params(cases[i].params, &caps);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, got, cases[i].want);
		free(got);
	}
}

/* ---- dot-stuffing ---- */

/* Run the encoder over in, cut into pieces of chunk bytes (0: whole). */
static char *dotstuff(const char *in, size_t chunk)
{
	struct sg_dotstuff ds;
	size_t len = strlen(in), off = 0, o = 0;
	char *out = sg_malloc(len * 2 + 8);

	sg_dotstuff_init(&ds);
	while (off < len) {
		size_t end = chunk == 0 || off + chunk > len ? len : off + chunk;
		while (off < end) {
			bool dot;
			size_t n = sg_dotstuff_span(&ds, (const unsigned char *)in + off, end - off, &dot);
			assert_true(n >= 1 && n <= end - off);
			if (dot)
				out[o++] = '.';
			memcpy(out + o, in + off, n);
			o += n;
			off += n;
		}
	}
	const char *tail = sg_dotstuff_end(&ds);
	memcpy(out + o, tail, strlen(tail) + 1);
	return out;
}

static void test_dotstuff(void **state)
{
	static const struct {
		const char *name, *in, *want;
	} cases[] = {
		{ "empty", "", ".\r\n" },
		{ "plain", "a\r\nb\r\n", "a\r\nb\r\n.\r\n" },
		{ "no final CRLF", "a\r\nb", "a\r\nb\r\n.\r\n" },
		{ "ends with CR only", "a\r", "a\r\r\n.\r\n" },
		{ "leading dot", ".a\r\n", "..a\r\n.\r\n" },
		{ "lone dot line", "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n" },
		{ "double dot", "..\r\n", "...\r\n.\r\n" },
		{ "dot not at line start", "a.b\r\n a.\r\n", "a.b\r\n a.\r\n.\r\n" },
		{ "consecutive dot lines", ".\r\n.\r\n.", "..\r\n..\r\n..\r\n.\r\n" },
		{ "only a dot", ".", "..\r\n.\r\n" },
		{ "single newline", "\r\n", "\r\n.\r\n" },
		{ "bare LF then dot", "a\n.b\r\n", "a\n..b\r\n.\r\n" },
	};
	static const size_t chunks[] = { 0, 1, 2, 3, 5, 7 };
	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		for (size_t c = 0; c < N_ELEM(chunks); c++) {
			char *got = dotstuff(cases[i].in, chunks[c]);
			if (strcmp(got, cases[i].want) != 0)
				fail_msg("case '%s' chunk %zu: got '%s'", cases[i].name, chunks[c], got);
			free(got);
		}
	}
}

static void test_dotstuff_spans_are_long(void **state)
{
	/* Lines without a leading dot are not cut: one span, no copying per line. */
	struct sg_dotstuff ds;
	const char *in = "line one\r\nline two\r\nline three\r\n";
	bool dot;
	(void)state;
	sg_dotstuff_init(&ds);
	assert_int_equal(sg_dotstuff_span(&ds, (const unsigned char *)in, strlen(in), &dot),
			 strlen(in));
	assert_false(dot);
}

/* ---- xtext, XFORWARD ---- */

static void test_xtext(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "mx.example.test", "mx.example.test" },
		{ "a+b=c", "a+2Bb+3Dc" },
		{ "with space", "with+20space" },
		{ "tab\tnl\n", "tab+09nl+0A" },
		{ "\xc3\xa9", "+C3+A9" },
		{ "[UNAVAILABLE]", "[UNAVAILABLE]" },
		{ "~!", "~!" },
		{ "", "" },
	};
	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		char *got = sg_xtext_encode(cases[i].in);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, got, cases[i].want);
		free(got);
	}
}

static void test_xforward_given(void **state)
{
	struct sg_envelope env = { 0 };
	struct sg_relay_caps caps;
	char *lines[2];
	(void)state;
	env.xf.name = "client.example.test";
	env.xf.addr = "192.0.2.1";
	env.xf.helo = "my helo";
	env.client_addr = "127.0.0.1"; /* not used: xf has data */
	sg_relay_parse_caps("mx\nXFORWARD NAME ADDR PROTO HELO", &caps);
	assert_int_equal(sg_relay_xforward_lines(&env, &caps, lines), 1);
	assert_string_equal(lines[0], "XFORWARD NAME=client.example.test ADDR=192.0.2.1 "
				      "PROTO=[UNAVAILABLE] HELO=my+20helo\r\n");
	free(lines[0]);
	/* Not offered: nothing. */
	sg_relay_parse_caps("mx\nPIPELINING", &caps);
	assert_int_equal(sg_relay_xforward_lines(&env, &caps, lines), 0);
}

static void test_xforward_from_session(void **state)
{
	struct sg_envelope env = { 0 };
	struct sg_relay_caps caps;
	char *lines[2];
	(void)state;
	env.client_addr = "127.0.0.1";
	env.client_port = "4242";
	env.helo = "postfix.test";
	env.queue_id = "4F2A1B";
	sg_relay_parse_caps("mx\nXFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE", &caps);
	assert_int_equal(sg_relay_xforward_lines(&env, &caps, lines), 1);
	assert_string_equal(lines[0], "XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.1 PORT=4242 "
				      "PROTO=ESMTP HELO=postfix.test IDENT=4F2A1B "
				      "SOURCE=[UNAVAILABLE]\r\n");
	free(lines[0]);
}

static void test_xforward_split(void **state)
{
	/* Long values: split into two commands of at most 512 bytes; a value
	 * that cannot fit at all becomes [UNAVAILABLE]. */
	struct sg_envelope env = { 0 };
	struct sg_relay_caps caps;
	char *lines[2];
	char *name = sg_malloc(256), *helo = sg_malloc(256), *ident = sg_malloc(300);
	(void)state;
	memset(name, 'n', 255);
	name[255] = '\0';
	memset(helo, ' ', 255); /* xtext triples it: 765 bytes, cannot fit */
	helo[255] = '\0';
	memset(ident, 'i', 299);
	ident[299] = '\0';
	env.xf.name = name;
	env.xf.helo = helo;
	env.xf.ident = ident;
	env.xf.addr = "192.0.2.1";
	sg_relay_parse_caps("mx\nXFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE", &caps);
	size_t n = sg_relay_xforward_lines(&env, &caps, lines);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_true(strlen(lines[i]) <= 512);
		assert_int_equal(strncmp(lines[i], "XFORWARD ", 9), 0);
		assert_string_equal(lines[i] + strlen(lines[i]) - 2, "\r\n");
	}
	assert_non_null(strstr(lines[0], "NAME=nnn"));
	assert_non_null(strstr(lines[0], "ADDR=192.0.2.1"));
	assert_true(strstr(lines[0], "HELO=[UNAVAILABLE]") != NULL ||
		    strstr(lines[1], "HELO=[UNAVAILABLE]") != NULL);
	assert_true(strstr(lines[0], "IDENT=iii") != NULL || strstr(lines[1], "IDENT=iii") != NULL);
	free(lines[0]);
	free(lines[1]);
	free(name);
	free(helo);
	free(ident);
}

static void test_queued_as(void **state)
{
	static const struct {
		const char *text;
		bool lmtp;
		const char *want;
	} cases[] = {
		{ "2.0.0 Ok: queued as 4F2A1B7C9D", false, "4F2A1B7C9D" },
		{ "2.0.0 Ok: queued as 4XyZ12 \nmore", false, "4XyZ12" },
		{ "2.0.0 Ok", false, NULL },
		{ "2.0.0 <alice@example.test> gC7vN8Q5XGbQJwAAZ4yXrw Saved", true,
		  "gC7vN8Q5XGbQJwAAZ4yXrw" },
		{ "2.0.0 <alice@example.test> gC7v Saved", false, NULL },
		{ "2.0.0 Ok: queued as ABC", true, "ABC" },
		{ "2.0.0 Ok: queued as ", false, NULL },
	};
	(void)state;
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		char *got = sg_relay_queued_as(cases[i].text, cases[i].lmtp);
		if ((got == NULL) != (cases[i].want == NULL) ||
		    (got != NULL && strcmp(got, cases[i].want) != 0))
			fail_msg("case %zu: got '%s'", i, got ? got : "(null)");
		free(got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_reply_parser_reuse),
		cmocka_unit_test(test_enhanced),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_mail_params),
		cmocka_unit_test(test_rcpt_params),
		cmocka_unit_test(test_dotstuff),
		cmocka_unit_test(test_dotstuff_spans_are_long),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_xforward_given),
		cmocka_unit_test(test_xforward_from_session),
		cmocka_unit_test(test_xforward_split),
		cmocka_unit_test(test_queued_as),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
