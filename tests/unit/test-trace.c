/* Unit tests for gateway/trace: our Received: header and loop counting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/trace.h"

static void test_received_format(void **state)
{
	struct sg_envelope env;
	(void)state;
	memset(&env, 0, sizeof(env));
	env.helo = strdup("mx.example.test");
	env.client_addr = strdup("127.0.0.1");
	env.queue_id = strdup("ABCDEF0123");
	sg_envelope_add_rcpt(&env, "bob@example.test", NULL);
	char *r = sg_trace_received(&env, "gw.example.test", 0);
	assert_non_null(strstr(r, "Received: from mx.example.test ([127.0.0.1])\r\n\tby gw.example.test (sealgate) with ESMTP id ABCDEF0123\r\n\tfor <bob@example.test>;"));
	assert_int_equal(strcmp(r + strlen(r) - 2, "\r\n"), 0);
	free(r);
	/* Two recipients: none named; LMTP over TLS: LMTPS. */
	sg_envelope_add_rcpt(&env, "carol@example.test", NULL);
	env.lmtp = env.tls = true;
	r = sg_trace_received(&env, "gw.example.test", 0);
	assert_null(strstr(r, "for <"));
	assert_non_null(strstr(r, "with LMTPS id"));
	free(r);
	sg_envelope_clear(&env);
}

static void test_count(void **state)
{
	static const struct {
		const char *msg;
		unsigned received, ours;
	} cases[] = {
		{ "Subject: x\r\n\r\nReceived: in body\r\n", 0, 0 },
		{ "Received: from a\r\n\tby b; date\r\nreceived: x\r\nSubject: s\r\n\r\n", 2, 0 },
		{ "Received: from a ([1.2.3.4])\r\n\tby gw.example.test (sealgate) with ESMTP id X;\r\n\tdate\r\n\r\nbody", 1, 1 },
		{ "Received: from a by gw.example.test (sealgate) with LMTP id X\r\n"
		  "Received: from a\r\n by   gw.example.test\r\n  (sealgate) id Y\r\n\r\n", 2, 2 },
		{ "Received: by other.example.test (sealgate)\r\n\r\n", 1, 0 },
		{ "X-Received: by gw.example.test (sealgate)\r\n\r\n", 0, 0 },
		{ "Received: x\nReceived: y\n\nReceived: z\n", 2, 0 }, /* bare LF */
		{ "", 0, 0 },
		{ "Received:", 0, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_trace_count tc;
		sg_trace_count((const unsigned char *)cases[i].msg, strlen(cases[i].msg),
			       "gw.example.test", &tc);
		if (tc.received != cases[i].received || tc.ours != cases[i].ours)
			fail_msg("case %zu: received=%u ours=%u, want %u %u", i, tc.received, tc.ours,
				 cases[i].received, cases[i].ours);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_received_format),
		cmocka_unit_test(test_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
