/* Unit tests for config/: the settings table, values, errors with file:line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static void test_defaults_valid(void **state)
{
	struct sg_config cfg;
	struct sg_error err = SG_ERROR_INIT;
	(void)state;
	sg_config_defaults(&cfg);
	assert_int_equal(sg_config_check(&cfg, &err), 1);
	assert_string_equal(cfg.listen, "127.0.0.1:10025");
	assert_string_equal(cfg.state_dir, "./var");
	assert_int_equal(cfg.max_message_size, 64 * 1024 * 1024);
	assert_int_equal(cfg.command_timeout, 300);
	assert_true(cfg.xforward);
	sg_config_clear(&cfg);
}

static void test_values(void **state)
{
	static const char text[] =
		"# comment\n"
		"\n"
		"  listen = 127.0.0.1:2525  \r\n"
		"lmtp_listen=[::1]:24\n"
		"max_message_size = 10k\n"
		"spool_memory_max = 2MB\n"
		"command_timeout = 5m\n"
		"xforward = off\n"
		"relay_protocol = lmtp\n"
		"max_recipients = 7\n"
		"hostname = gw.example.test # trailing comment\n"
		"log = stderr\t# tab before it\n"
		"syslog_facility = local#1\n";
	struct sg_config cfg;
	struct sg_error err = SG_ERROR_INIT;
	(void)state;
	sg_config_defaults(&cfg);
	assert_int_equal(sg_config_parse(&cfg, "t.conf", text, strlen(text), &err), 1);
	assert_string_equal(cfg.listen, "127.0.0.1:2525");
	assert_string_equal(cfg.lmtp_listen, "[::1]:24");
	assert_int_equal(cfg.max_message_size, 10240);
	assert_int_equal(cfg.spool_memory_max, 2 * 1024 * 1024);
	assert_int_equal(cfg.command_timeout, 300);
	assert_false(cfg.xforward);
	assert_string_equal(cfg.relay_protocol, "lmtp");
	assert_int_equal(cfg.max_recipients, 7);
	assert_string_equal(cfg.hostname, "gw.example.test");
	assert_string_equal(cfg.log, "stderr");
	assert_string_equal(cfg.syslog_facility, "local#1"); /* '#' inside a word is data */
	sg_config_clear(&cfg);
}

/* Each bad file names its line and its problem. */
static void test_errors(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "bogus = 1\n", "t.conf:1: unknown setting 'bogus'" },
		{ "\n\nlisten 127.0.0.1:1\n", "t.conf:3: expected 'key = value'" },
		{ "max_recipients = 0\n", "t.conf:1: max_recipients: 0 is out of range (1..100000)" },
		{ "max_recipients = 12k\n", "t.conf:1: max_recipients: '12k' is not a valid number" },
		{ "max_message_size = lots\n", "t.conf:1: max_message_size: 'lots' is not a valid size (e.g. 64M)" },
		{ "command_timeout = 5x\n", "t.conf:1: command_timeout: '5x' is not a valid duration (e.g. 300s, 5m)" },
		{ "xforward = maybe\n", "t.conf:1: xforward: 'maybe' is not yes or no" },
		{ "relay_protocol = uucp\n", "t.conf:1: relay_protocol: 'uucp' is not one of smtp|lmtp" },
		{ "relay = 127.0.0.1\n", "t.conf:1: relay: '127.0.0.1': missing port" },
		{ "relay = h:99999\n", "t.conf:1: relay: 'h:99999': port '99999' is not a number 1-65535" },
		{ "listen = ::1:25\n", "t.conf:1: listen: '::1:25': IPv6 address must be in brackets: [ADDR]:PORT" },
		{ "debug = yes\ndebug = no\n", "t.conf:2: 'debug' is set twice" },
		{ "max_message_size = 99999999999999999999999\n", "t.conf:1: max_message_size: '99999999999999999999999' is not a valid size (e.g. 64M)" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_config cfg;
		struct sg_error err = SG_ERROR_INIT;
		sg_config_defaults(&cfg);
		int r = sg_config_parse(&cfg, "t.conf", cases[i].text, strlen(cases[i].text), &err);
		if (r != -1 || strcmp(sg_error_msg(&err), cases[i].want) != 0)
			fail_msg("case %zu: got %d '%s', want '%s'", i, r, sg_error_msg(&err), cases[i].want);
		sg_error_clear(&err);
		sg_config_clear(&cfg);
	}
}

static void test_check(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "listen =\n", "no listener is set (listen, lmtp_listen, submission_listen, deliver_listen): nothing to serve" },
		{ "tls_cert_file = /x.pem\n", "tls_cert_file and tls_key_file must be set together" },
		{ "transaction_time_budget = 100s\nrelay_data_done_timeout = 100s\n",
		  "transaction_time_budget (100s) must exceed relay_data_done_timeout (100s)" },
		{ "hostname = a b\n", "hostname: 'a b' is not a valid host name" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_config cfg;
		struct sg_error err = SG_ERROR_INIT;
		sg_config_defaults(&cfg);
		assert_int_equal(sg_config_parse(&cfg, "t.conf", cases[i].text, strlen(cases[i].text), &err), 1);
		int r = sg_config_check(&cfg, &err);
		if (r != -1 || strcmp(sg_error_msg(&err), cases[i].want) != 0)
			fail_msg("case %zu: got %d '%s', want '%s'", i, r, sg_error_msg(&err), cases[i].want);
		sg_error_clear(&err);
		sg_config_clear(&cfg);
	}
}

/* The dump is itself a valid configuration that parses back to the same. */
static void test_dump_roundtrip(void **state)
{
	struct sg_config a, b;
	struct sg_error err = SG_ERROR_INIT;
	(void)state;
	sg_config_defaults(&a);
	assert_int_equal(sg_config_set(&a, "max_sessions", "17", &err), 1);
	assert_int_equal(sg_config_set(&a, "lmtp_listen", "127.0.0.1:24", &err), 1);
	assert_int_equal(sg_config_set(&a, "nope", "1", &err), -1);
	char *dump = sg_config_dump(&a);
	sg_config_defaults(&b);
	assert_int_equal(sg_config_parse(&b, "dump", dump, strlen(dump), &err), 1);
	assert_int_equal(b.max_sessions, 17);
	assert_string_equal(b.lmtp_listen, "127.0.0.1:24");
	assert_string_equal(b.hostname, a.hostname);
	free(dump);
	sg_config_clear(&a);
	sg_config_clear(&b);
	sg_error_clear(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_valid),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_dump_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
