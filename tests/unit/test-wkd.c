/* WKD: z-base-32 and the local-part hash (draft-koch-openpgp-webkey-service
 * §3.1 example), strict request-path parsing (table-driven), and the
 * HTTP responses computed from a store. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/wkd-server.h"
#include "keys/keystore.h"
#include "keys/wkd.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/mem.h"

static void test_zbase32(void **state)
{
	(void)state;
	/* Vectors from Zooko's z-base-32 specification (bit lengths that are
	 * multiples of 8). */
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} v[] = {
		{ "", 0, "" },
		{ "\x00", 1, "yy" },
		{ "\xf0\xbf\xc7", 3, "6n9hq" },
		{ "\xd4\x7a\x04", 3, "4t7ye" },
		{ "\xff\xff\xff\xff\xff", 5, "99999999" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char out[64];
		sg_zbase32_encode((const unsigned char *)v[i].in, v[i].len, out, sizeof(out));
		if (strcmp(out, v[i].out) != 0)
			fail_msg("vector %zu: got %s, want %s", i, out, v[i].out);
	}
}

static void test_hash(void **state)
{
	struct sg_error err = SG_ERROR_INIT;
	char *hash = NULL, *domain = NULL;
	(void)state;
	/* The draft's example (§3.1). */
	assert_int_equal(sg_wkd_hash("Joe.Doe@Example.ORG", &hash, &domain, &err), 1);
	assert_string_equal(hash, "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
	assert_string_equal(domain, "example.org");
	free(hash);
	free(domain);
	/* Case of the local part does not matter; PEERS.md's gpg-wks-client value. */
	assert_int_equal(sg_wkd_hash("ALICE@example.test", &hash, NULL, &err), 1);
	assert_string_equal(hash, "kei1q4tipxxu1yj79k9kfukdhfy631xe");
	free(hash);
	static const char *const bad[] = { "noat", "@example.org", "joe@", "joe@ex/ample.org",
					   "joe@exa mple.org" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sg_wkd_hash(bad[i], &hash, &domain, &err) != -1)
			fail_msg("'%s' accepted", bad[i]);
	assert_null(hash);
	sg_error_clear(&err);
}

#define H "iy9q119eutrkn8s1mk4r39qejnbu3n5q"

static void test_parse_path(void **state)
{
	(void)state;
	static const struct {
		const char *path;
		int ok;
		enum sg_wkd_req_type type;
		const char *domain;
	} cases[] = {
		{ "/.well-known/openpgpkey/hu/" H, 1, SG_WKD_REQ_KEY, NULL },
		{ "/.well-known/openpgpkey/example.org/hu/" H, 1, SG_WKD_REQ_KEY, "example.org" },
		{ "/.well-known/openpgpkey/Example.ORG/hu/" H, 1, SG_WKD_REQ_KEY, "example.org" },
		{ "/.well-known/openpgpkey/policy", 1, SG_WKD_REQ_POLICY, NULL },
		{ "/.well-known/openpgpkey/example.org/policy", 1, SG_WKD_REQ_POLICY, "example.org" },
		{ "/.well-known/openpgpkey/submission-address", 1, SG_WKD_REQ_SUBMISSION_ADDRESS, NULL },
		{ "/.well-known/openpgpkey/a.b/submission-address", 1, SG_WKD_REQ_SUBMISSION_ADDRESS,
		  "a.b" },
		{ "/.well-known/openpgpkey/hu/" H "x", 0, 0, NULL },          /* 33 chars */
		{ "/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5", 0, 0, NULL },
		{ "/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5l", 0, 0, NULL }, /* l */
		{ "/.well-known/openpgpkey/hu/" H "/", 0, 0, NULL },
		{ "/.well-known/openpgpkey/../hu/" H, 0, 0, NULL },
		{ "/.well-known/openpgpkey/../../etc/passwd", 0, 0, NULL },
		{ "/.well-known/openpgpkey/..example.org/hu/" H, 0, 0, NULL },
		{ "/.well-known/openpgpkey/%2e%2e/hu/" H, 0, 0, NULL },
		{ "/.well-known/openpgpkey/example.org%2fhu/" H, 0, 0, NULL },
		{ "/.well-known/openpgpkey//hu/" H, 0, 0, NULL },
		{ "/.well-known/openpgpkey/.example.org/hu/" H, 0, 0, NULL },
		{ "/.well-known/openpgpkey/a/b/hu/" H, 0, 0, NULL },
		{ "/.well-known/openpgpkey/", 0, 0, NULL },
		{ "/.well-known/openpgpkey/policy/", 0, 0, NULL },
		{ "/.well-known/openpgpkey/POLICY", 0, 0, NULL },
		{ "/.well-known/openpgpkey\\hu\\" H, 0, 0, NULL },
		{ "/well-known/openpgpkey/policy", 0, 0, NULL },
		{ "/", 0, 0, NULL },
		{ "", 0, 0, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_wkd_req req;
		int r = sg_wkd_parse_path(cases[i].path, strlen(cases[i].path), &req);
		if (r != cases[i].ok)
			fail_msg("case %zu '%s': got %d, want %d", i, cases[i].path, r, cases[i].ok);
		if (r == 1) {
			if (req.type != cases[i].type)
				fail_msg("case %zu '%s': type %d", i, cases[i].path, (int)req.type);
			if ((req.domain == NULL) != (cases[i].domain == NULL) ||
			    (req.domain != NULL && strcmp(req.domain, cases[i].domain) != 0))
				fail_msg("case %zu '%s': domain %s", i, cases[i].path,
					 req.domain != NULL ? req.domain : "(none)");
			if (req.type == SG_WKD_REQ_KEY)
				assert_string_equal(req.hash, H);
		}
		sg_wkd_req_clear(&req);
	}
	/* An embedded NUL (length says more than strlen): refused. */
	static const char nul[] = "/.well-known/openpgpkey/policy\0/x";
	struct sg_wkd_req req;
	assert_int_equal(sg_wkd_parse_path(nul, sizeof(nul) - 1, &req), 0);
	/* Over-long: refused before anything else. */
	struct sg_buf b;
	sg_buf_init(&b, 4096);
	assert_true(sg_buf_append_str(&b, "/.well-known/openpgpkey/"));
	for (int i = 0; i < 100; i++)
		assert_true(sg_buf_append_str(&b, "aaaaaaaaa."));
	assert_true(sg_buf_append_str(&b, "org/hu/" H));
	assert_int_equal(sg_wkd_parse_path(sg_buf_str(&b), b.len, &req), 0);
	sg_buf_free(&b);
}

static void test_respond(void **state)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store *st = NULL;
	char dir[] = "/tmp/sg-wkd-test.XXXXXX";
	(void)state;

	assert_non_null(mkdtemp(dir));
	char *spec = sg_asprintf("sqlite:%s/db", dir);
	assert_int_equal(sg_store_open(spec, &st, &err), 1);
	assert_int_equal(sg_keys_put_public(st, "Joe.Doe@example.org", "F1", "pgp", 0, "import",
					    "configured", "KEY1", 4, &err), 1);
	assert_int_equal(sg_keys_put_public(st, "joe.doe@example.org", "F2", "pgp", 0, "import",
					    "configured", "KEY2", 4, &err), 1);
	static const struct {
		const char *method, *path, *domains, *sub;
		unsigned status;
		const char *body, *type;
	} cases[] = {
		{ "GET", "/.well-known/openpgpkey/example.org/hu/" H, "", "", 200, "KEY1KEY2",
		  "application/octet-stream" },
		{ "HEAD", "/.well-known/openpgpkey/hu/" H, "", "", 200, "KEY1KEY2",
		  "application/octet-stream" },
		{ "GET", "/.well-known/openpgpkey/example.org/hu/" H, "other.org example.org", "", 200,
		  "KEY1KEY2", "application/octet-stream" },
		{ "GET", "/.well-known/openpgpkey/example.org/hu/" H, "other.org", "", 404, NULL, NULL },
		{ "GET", "/.well-known/openpgpkey/other.org/hu/" H, "", "", 404, NULL, NULL },
		/* direct layout: only the served domains' keys */
		{ "GET", "/.well-known/openpgpkey/hu/" H, "example.org", "", 200, "KEY1KEY2",
		  "application/octet-stream" },
		{ "GET", "/.well-known/openpgpkey/hu/" H, "other.org", "", 404, NULL, NULL },
		{ "GET", "/.well-known/openpgpkey/hu/ybndrfg8ejkmcpqxot1uwisza345h769", "", "", 404, NULL,
		  NULL },
		{ "GET", "/.well-known/openpgpkey/policy", "", "", 200, "", "text/plain" },
		{ "GET", "/.well-known/openpgpkey/submission-address", "", "", 404, NULL, NULL },
		{ "GET", "/.well-known/openpgpkey/submission-address", "", "ks@example.org", 200,
		  "ks@example.org\n", "text/plain" },
		{ "POST", "/.well-known/openpgpkey/policy", "", "", 405, NULL, NULL },
		{ "PUT", "/.well-known/openpgpkey/hu/" H, "", "", 405, NULL, NULL },
		{ "GET", "/.well-known/openpgpkey/../hu/" H, "", "", 404, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned status = 0;
		unsigned char *body = NULL;
		size_t len = 0;
		const char *type = NULL;
		assert_int_equal(sg_wkd_respond(st, cases[i].domains, cases[i].sub, cases[i].method,
						cases[i].path, strlen(cases[i].path), &status, &body,
						&len, &type, &err), 1);
		if (status != cases[i].status)
			fail_msg("case %zu %s %s: status %u, want %u", i, cases[i].method,
				 cases[i].path, status, cases[i].status);
		if (cases[i].body != NULL) {
			assert_int_equal(len, strlen(cases[i].body));
			assert_memory_equal(len > 0 ? (const char *)body : "", cases[i].body, len);
			assert_string_equal(type, cases[i].type);
		}
		free(body);
	}
	sg_store_close(&st);
	char *cmd = sg_asprintf("rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zbase32),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_parse_path),
		cmocka_unit_test(test_respond),
	};
	return cmocka_run_group_tests_name("wkd", tests, NULL, NULL);
}
