/* Unit tests for util/hostport: "HOST:PORT" and "[v6]:PORT" parsing, table
 * of good and bad endpoints with the reason each bad one must give. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "util/hostport.h"

static void test_hostport(void **state)
{
	static const struct {
		const char *in;
		int ret;
		const char *host, *port; /* for 1 */
		const char *reason;      /* substring of the error for -1 */
	} cases[] = {
		{ "127.0.0.1:10026", 1, "127.0.0.1", "10026", NULL },
		{ "localhost:25", 1, "localhost", "25", NULL },
		{ "[::1]:24", 1, "::1", "24", NULL },
		{ "[2001:db8::5]:65535", 1, "2001:db8::5", "65535", NULL },
		{ "mx.example.test:1", 1, "mx.example.test", "1", NULL },
		{ "127.0.0.1", -1, NULL, NULL, "missing port" },
		{ "127.0.0.1:", -1, NULL, NULL, "missing port" },
		{ ":25", -1, NULL, NULL, "empty host" },
		{ "[]:25", -1, NULL, NULL, "empty host" },
		{ "host:0", -1, NULL, NULL, "not a number 1-65535" },
		{ "host:65536", -1, NULL, NULL, "not a number 1-65535" },
		{ "host:123456", -1, NULL, NULL, "not a number 1-65535" },
		{ "host:smtp", -1, NULL, NULL, "not a number 1-65535" },
		{ "host:-1", -1, NULL, NULL, "not a number 1-65535" },
		{ "host:25x", -1, NULL, NULL, "not a number 1-65535" },
		{ "::1:25", -1, NULL, NULL, "brackets" },
		{ "[::1]", -1, NULL, NULL, "missing port" },
		{ "[::1:25", -1, NULL, NULL, "missing ']'" },
		{ "[::1]25", -1, NULL, NULL, "expected ':'" },
		{ "", -1, NULL, NULL, "missing port" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_error err = SG_ERROR_INIT;
		char *host = NULL, *port = NULL;
		int r = sg_parse_hostport(cases[i].in, &host, &port, &err);
		if (r != cases[i].ret)
			fail_msg("case '%s': got %d (%s)", cases[i].in, r, sg_error_msg(&err));
		if (r == 1) {
			if (strcmp(host, cases[i].host) != 0 || strcmp(port, cases[i].port) != 0)
				fail_msg("case '%s': got host '%s' port '%s'", cases[i].in, host, port);
		} else {
			if (strstr(sg_error_msg(&err), cases[i].reason) == NULL)
				fail_msg("case '%s': reason '%s'", cases[i].in, sg_error_msg(&err));
			/* The input is named in the reason. */
			assert_non_null(strstr(sg_error_msg(&err), cases[i].in));
			assert_null(host);
			assert_null(port);
		}
		free(host);
		free(port);
		sg_error_clear(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostport),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
