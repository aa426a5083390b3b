/* Autocrypt harvest rules, table-driven: header parsing (Level 1, 2.1),
 * the DKIM condition (RFC 8601 fields of the trusted verifier, RFC 7489
 * alignment) and the one-header-per-sender rule (2.3). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/autocrypt.h"
#include "mime/message.h"
#include "util/mem.h"

/* "hello" in base64 stands in for key data: parsing does not read keys. */
static void test_parse(void **state)
{
	(void)state;
	static const struct {
		const char *name, *value;
		int ok;
		const char *addr;
		int mutual;
		size_t keylen;
	} v[] = {
		{ "minimal", "addr=a@b.test; keydata=aGVsbG8=", 1, "a@b.test", 0, 5 },
		{ "mutual, folded keydata", "addr=A@B.test; prefer-encrypt=mutual; keydata=aGVs\r\n bG8=",
		  1, "a@b.test", 1, 5 },
		{ "non-critical attribute ignored", "addr=a@b.test; _x=1; keydata=aGVsbG8=", 1,
		  "a@b.test", 0, 5 },
		{ "unknown critical attribute", "addr=a@b.test; color=red; keydata=aGVsbG8=", 0, NULL,
		  0, 0 },
		{ "no keydata", "addr=a@b.test; prefer-encrypt=mutual", 0, NULL, 0, 0 },
		{ "no addr", "keydata=aGVsbG8=", 0, NULL, 0, 0 },
		{ "bad base64", "addr=a@b.test; keydata=a*b", 0, NULL, 0, 0 },
		{ "not an address", "addr=nobody; keydata=aGVsbG8=", 0, NULL, 0, 0 },
		{ "no padding", "addr=a@b.test; keydata=aGVsbG8h", 1, "a@b.test", 0, 6 },
		{ "attribute without =", "addr=a@b.test; junk; keydata=aGVsbG8=", 0, NULL, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct sg_autocrypt ac;
		struct sg_error err = SG_ERROR_INIT;
		int got = sg_autocrypt_parse(v[i].value, &ac, &err);
		if (got != v[i].ok)
			fail_msg("%s: got %d (%s)", v[i].name, got, sg_error_msg(&err));
		if (got == 1 && (strcmp(ac.addr, v[i].addr) != 0 || ac.prefer_mutual != v[i].mutual ||
				 ac.keylen != v[i].keylen))
			fail_msg("%s: addr %s mutual %d keylen %zu", v[i].name, ac.addr, ac.prefer_mutual,
				 ac.keylen);
		if (got == 0 && err.msg == NULL)
			fail_msg("%s: refused without a reason", v[i].name);
		sg_autocrypt_clear(&ac);
		sg_error_clear(&err);
	}
}

static void test_dkim_pass(void **state)
{
	(void)state;
	static const struct {
		const char *name, *ar, *domain;
		int want;
	} v[] = {
		{ "pass, header.d", "mx.test; dkim=pass header.d=b.test header.s=s1", "b.test", 1 },
		{ "pass, header.i", "mx.test; dkim=pass header.i=@b.test", "b.test", 1 },
		{ "subdomain aligned", "mx.test; dkim=pass header.d=b.test", "mail.b.test", 1 },
		{ "fail", "mx.test; dkim=fail header.d=b.test", "b.test", 0 },
		{ "other verifier", "evil.test; dkim=pass header.d=b.test", "b.test", 0 },
		{ "other domain", "mx.test; dkim=pass header.d=c.test", "b.test", 0 },
		{ "suffix only, no dot", "mx.test; dkim=pass header.d=test", "b.test", 0 },
		{ "lookalike", "mx.test; dkim=pass header.d=ab.test", "b.test", 0 },
		{ "pass in another resinfo", "mx.test; spf=pass smtp.mailfrom=b.test; dkim=fail header.d=b.test",
		  "b.test", 0 },
		{ "second resinfo passes", "mx.test; dkim=fail header.d=x.test; dkim=pass header.d=b.test",
		  "b.test", 1 },
		{ "comments", "mx.test (verifier) 1; dkim=pass (good) header.d=b.test", "b.test", 1 },
		{ "commented pass", "mx.test; dkim=fail (dkim=pass) header.d=b.test", "b.test", 0 },
		{ "none", "mx.test; none", "b.test", 0 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int got = sg_autocrypt_dkim_pass(v[i].ar, "mx.test", v[i].domain);
		if (got != v[i].want)
			fail_msg("%s: got %d, want %d", v[i].name, got, v[i].want);
	}
}

static void test_from_message(void **state)
{
	(void)state;
	static const char ar[] = "Authentication-Results: mx.test; dkim=pass header.d=b.test\r\n";
	static const char ac[] = "Autocrypt: addr=a@b.test; keydata=aGVsbG8=\r\n";
	static const char other[] = "Autocrypt: addr=z@b.test; keydata=aGVsbG8=\r\n";
	static const char from[] = "From: A <a@b.test>\r\n";
	static const struct {
		const char *name;
		const char *parts[5];
		int want;
		const char *why;
	} v[] = {
		{ "harvested", { from, ar, ac }, 1, NULL },
		{ "header for another address ignored", { from, ar, other, ac }, 1, NULL },
		{ "no DKIM", { from, ac }, 0, "no DKIM pass" },
		{ "two headers: none", { from, ar, ac, ac }, 0, "2 Autocrypt headers" },
		{ "no header", { from, ar }, 0, "no valid Autocrypt header" },
		{ "two From addresses", { "From: a@b.test, c@b.test\r\n", ar, ac }, 0, "no single From" },
		{ "header for another address only", { from, ar, other }, 0, "no valid Autocrypt" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *msg = sg_strdup("");
		for (size_t j = 0; j < 5 && v[i].parts[j] != NULL; j++) {
			char *m = sg_asprintf("%s%s", msg, v[i].parts[j]);
			free(msg);
			msg = m;
		}
		char *full = sg_asprintf("%sSubject: x\r\n\r\nbody\r\n", msg);
		struct sg_msg_view mv;
		struct sg_autocrypt out;
		struct sg_error err = SG_ERROR_INIT;
		assert_int_equal(sg_msg_split((const unsigned char *)full, strlen(full), &mv, NULL), 1);
		int got = sg_autocrypt_from_message(&mv, "mx.test", &out, &err);
		if (got != v[i].want || (v[i].why != NULL && strstr(sg_error_msg(&err), v[i].why) == NULL))
			fail_msg("%s: got %d (%s)", v[i].name, got, sg_error_msg(&err));
		if (got == 1)
			assert_string_equal(out.addr, "a@b.test");
		sg_autocrypt_clear(&out);
		sg_error_clear(&err);
		free(msg);
		free(full);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_dkim_pass),
		cmocka_unit_test(test_from_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
