/* Unit tests for mime/message.c: splitting, classification, multipart
 * split and header protection, table-driven (each case names itself). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime/message.h"

struct split_case {
	const char *name;
	const char *msg;
	int ret;
	size_t hdr_len;
	size_t body_off;
};

static const struct split_case split_cases[] = {
	{ "crlf", "A: 1\r\nB: 2\r\n\r\nbody\r\n", 1, 12, 14 },
	{ "lf", "A: 1\nB: 2\n\nbody\n", 1, 10, 11 },
	{ "folded", "A: 1\r\n 2\r\nB: 3\r\n\r\nx", 1, 16, 18 },
	{ "no body", "A: 1\r\n", 1, 6, 6 },
	{ "no headers", "\r\nbody", 1, 0, 2 },
	{ "empty", "", 1, 0, 0 },
	{ "garbage line", "A: 1\r\nnot a header\r\n\r\n", -1, 0, 0 },
	{ "starts folded", " A: 1\r\n\r\n", -1, 0, 0 },
	{ "8bit name", "\xc3\xa4: 1\r\n\r\n", -1, 0, 0 },
};

static void test_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		const struct split_case *c = &split_cases[i];
		struct sg_msg_view v;
		struct sg_error err = SG_ERROR_INIT;
		int r = sg_msg_split((const unsigned char *)c->msg, strlen(c->msg), &v, &err);
		if (r != c->ret || (r == 1 && (v.hdr_len != c->hdr_len || v.body_off != c->body_off)))
			fail_msg("case '%s': ret %d hdr %zu body %zu", c->name, r, v.hdr_len, v.body_off);
		sg_error_clear(&err);
	}
}

static void test_fields(void **state)
{
	const char *m = "Subject: a\r\n b\r\nTo: x@y\r\nContent-Type: text/plain\r\n\r\n";
	struct sg_msg_view v;
	struct sg_msg_field f;
	size_t pos = 0, n = 0;
	(void)state;
	assert_int_equal(sg_msg_split((const unsigned char *)m, strlen(m), &v, NULL), 1);
	while (sg_msg_next_field(&v, &pos, &f) == 1)
		n++;
	assert_int_equal(n, 3);
	assert_int_equal(sg_msg_find_field(&v, "subject", &f), 1);
	assert_int_equal(f.raw_len, 16);
	char *val = sg_msg_field_value(&f);
	assert_string_equal(val, "a b");
	free(val);
	assert_int_equal(sg_msg_find_field(&v, "Content-Type", &f), 1);
	assert_true(sg_msg_field_is_content(&f));
	assert_int_equal(sg_msg_find_field(&v, "Cc", &f), 0);
}

struct class_case {
	const char *name;
	const char *msg;
	enum sg_msg_class cls;
};

static const struct class_case class_cases[] = {
	{ "plain no ctype", "Subject: x\r\n\r\nhello\r\n", SG_MSG_PLAIN },
	{ "pgp/mime", "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n"
		      " boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n", SG_MSG_PGP_ENCRYPTED },
	{ "pgp/mime case", "content-type: Multipart/Encrypted; boundary=b;\r\n"
			   "  PROTOCOL=\"Application/PGP-Encrypted\"\r\n\r\n", SG_MSG_PGP_ENCRYPTED },
	{ "inline pgp", "Content-Type: text/plain\r\n\r\nhi\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nx\r\n",
	  SG_MSG_PGP_INLINE },
	{ "inline pgp first line", "\r\n-----BEGIN PGP MESSAGE-----\r\n", SG_MSG_PGP_INLINE },
	{ "quoted marker", "\r\n> -----BEGIN PGP MESSAGE-----\r\n", SG_MSG_PLAIN },
	{ "marker in attachment type", "Content-Type: application/octet-stream\r\n\r\n"
				       "-----BEGIN PGP MESSAGE-----\r\n", SG_MSG_PLAIN },
	{ "smime enveloped", "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nMIA=\r\n",
	  SG_MSG_SMIME_ENCRYPTED },
	{ "smime authenveloped", "Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data\r\n\r\n",
	  SG_MSG_SMIME_ENCRYPTED },
	{ "x-pkcs7", "Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data\r\n\r\n",
	  SG_MSG_SMIME_ENCRYPTED },
	{ "x-pkcs7 no type", "Content-Type: application/x-pkcs7-mime; name=smime.p7m\r\n\r\n",
	  SG_MSG_SMIME_ENCRYPTED },
	{ "smime opaque signed", "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n",
	  SG_MSG_SMIME_SIGNED },
	{ "pgp signed", "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n"
			" protocol=\"application/pgp-signature\"; boundary=\"s\"\r\n\r\n", SG_MSG_PGP_SIGNED },
	{ "smime signed", "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";"
			  " boundary=s\r\n\r\n", SG_MSG_SMIME_SIGNED },
	{ "other encrypted", "Content-Type: multipart/encrypted; protocol=\"x/y\"; boundary=b\r\n\r\n",
	  SG_MSG_OTHER_ENCRYPTED },
	{ "encrypted without boundary", "Content-Type: multipart/encrypted\r\n\r\n", SG_MSG_OTHER_ENCRYPTED },
	{ "mixed", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n", SG_MSG_PLAIN },
};

static void test_classify(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(class_cases) / sizeof(class_cases[0]); i++) {
		const struct class_case *c = &class_cases[i];
		struct sg_msg_view v;
		assert_int_equal(sg_msg_split((const unsigned char *)c->msg, strlen(c->msg), &v, NULL), 1);
		enum sg_msg_class got = sg_msg_classify(&v);
		if (got != c->cls)
			fail_msg("case '%s': got %s, want %s", c->name, sg_msg_class_name(got),
				 sg_msg_class_name(c->cls));
		/* From the header alone: the same, except that inline PGP
		 * (found only by reading the body) is plain. */
		enum sg_msg_class want = c->cls == SG_MSG_PGP_INLINE ? SG_MSG_PLAIN : c->cls;
		got = sg_msg_classify_header(&v);
		if (got != want)
			fail_msg("case '%s' (header only): got %s, want %s", c->name, sg_msg_class_name(got),
				 sg_msg_class_name(want));
	}
}

struct mp_case {
	const char *name;
	const char *body;
	int ret;
	size_t n;
	const char *first; /* the first part's bytes */
};

static const struct mp_case mp_cases[] = {
	{ "two parts", "preamble\r\n--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepilogue", 1, 2,
	  "A: 1\r\n\r\none" },
	{ "first line delimiter", "--b\r\n\r\nx\r\n--b--", 1, 1, "\r\nx" },
	{ "trailing space", "--b  \r\n\r\nx\r\n--b-- \r\n", 1, 1, "\r\nx" },
	{ "longer boundary not ours", "--bb\r\nx\r\n--b\r\n\r\ny\r\n--b--\r\n", 1, 1, "\r\ny" },
	{ "lf", "--b\n\nx\n--b--\n", 1, 1, "\nx" },
	{ "no close", "--b\r\n\r\nx\r\n", -1, 0, NULL },
	{ "no part", "--b--\r\n", -1, 0, NULL },
	{ "empty", "", -1, 0, NULL },
};

static void test_multipart(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mp_cases) / sizeof(mp_cases[0]); i++) {
		const struct mp_case *c = &mp_cases[i];
		struct sg_msg_bodypart *parts = NULL;
		size_t n = 0;
		int r = sg_msg_multipart_split((const unsigned char *)c->body, strlen(c->body), "b",
					       &parts, &n, NULL);
		if (r != c->ret || n != c->n)
			fail_msg("case '%s': ret %d n %zu", c->name, r, n);
		if (r == 1 && (parts[0].len != strlen(c->first) ||
			       memcmp(c->body + parts[0].off, c->first, parts[0].len) != 0))
			fail_msg("case '%s': first part '%.*s'", c->name, (int)parts[0].len,
				 c->body + parts[0].off);
		free(parts);
	}
}

struct hp_case {
	const char *name;
	const char *msg;
	const char *inner;      /* sg_msg_build_inner(protect=true) */
	const char *outer;      /* sg_msg_build_outer with Subject "..." and a new Content-Type */
	const char *restored;   /* content fields after sg_msg_unprotect_inner */
};

static const struct hp_case hp_cases[] = {
	{ "simple",
	  "From: a@a.test\r\nSubject: secret\r\n plan\r\nX-Keep: 1\r\nContent-Type: text/plain; charset=utf-8\r\n"
	  "Content-Transfer-Encoding: 8bit\r\nTo: b@b.test\r\n\r\nh\xc3\xa9llo\r\n",
	  "Content-Type: text/plain; charset=utf-8; protected-headers=\"v1\"\r\n"
	  "Content-Transfer-Encoding: 8bit\r\nFrom: a@a.test\r\nSubject: secret\r\n plan\r\nTo: b@b.test\r\n"
	  "\r\nh\xc3\xa9llo\r\n",
	  "From: a@a.test\r\nSubject: ...\r\nX-Keep: 1\r\nMIME-Version: 1.0\r\nContent-Type: NEW\r\nTo: b@b.test\r\n\r\n",
	  "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n" },
	{ "no content-type",
	  "Subject: s\r\nMIME-Version: 1.0\r\n\r\nx",
	  "Content-Type: text/plain; charset=us-ascii; protected-headers=\"v1\"\r\nSubject: s\r\n\r\nx",
	  "Subject: ...\r\nMIME-Version: 1.0\r\nContent-Type: NEW\r\n\r\n",
	  "Content-Type: text/plain; charset=us-ascii\r\n" },
	{ "folded content-type kept",
	  "Content-Type: multipart/mixed;\r\n\tboundary=\"xyz\"\r\nSubject: s\r\n\r\n--xyz--\r\n",
	  "Content-Type: multipart/mixed;\r\n\tboundary=\"xyz\"; protected-headers=\"v1\"\r\nSubject: s\r\n\r\n--xyz--\r\n",
	  "MIME-Version: 1.0\r\nContent-Type: NEW\r\nSubject: ...\r\n\r\n",
	  "Content-Type: multipart/mixed;\r\n\tboundary=\"xyz\"\r\n" },
};

static void test_header_protection(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hp_cases) / sizeof(hp_cases[0]); i++) {
		const struct hp_case *c = &hp_cases[i];
		struct sg_msg_view v, iv;
		struct sg_buf inner, outer, subj, restored;
		struct sg_msg_field sf;

		sg_buf_init(&inner, 1 << 20);
		sg_buf_init(&outer, 1 << 20);
		sg_buf_init(&subj, 1 << 20);
		sg_buf_init(&restored, 1 << 20);
		assert_int_equal(sg_msg_split((const unsigned char *)c->msg, strlen(c->msg), &v, NULL), 1);
		assert_int_equal(sg_msg_build_inner(&v, true, &inner, NULL), 1);
		if (strcmp(sg_buf_str(&inner), c->inner) != 0)
			fail_msg("case '%s': inner\n%s", c->name, sg_buf_str(&inner));
		assert_int_equal(sg_msg_make_subject("...", &subj, NULL), 1);
		assert_int_equal(sg_msg_build_outer(&v, subj.data, subj.len, "Content-Type: NEW\r\n", true,
						    &outer, NULL), 1);
		if (strcmp(sg_buf_str(&outer), c->outer) != 0)
			fail_msg("case '%s': outer\n%s", c->name, sg_buf_str(&outer));
		assert_int_equal(sg_msg_split(inner.data, inner.len, &iv, NULL), 1);
		assert_int_equal(sg_msg_unprotect_inner(&iv, &restored, &sf, NULL), 1);
		if (strcmp(sg_buf_str(&restored), c->restored) != 0)
			fail_msg("case '%s': restored\n%s", c->name, sg_buf_str(&restored));
		struct sg_msg_field orig;
		assert_int_equal(sg_msg_find_field(&v, "Subject", &orig), 1);
		assert_int_equal(sf.raw_len, orig.raw_len);
		assert_memory_equal(sf.raw, orig.raw, orig.raw_len);
		sg_buf_free(&inner);
		sg_buf_free(&outer);
		sg_buf_free(&subj);
		sg_buf_free(&restored);
	}
}

static void test_subject_and_crlf(void **state)
{
	struct sg_buf b;
	(void)state;
	sg_buf_init(&b, 1024);
	assert_int_equal(sg_msg_make_subject("a\r\nBcc: x", &b, NULL), -1);
	assert_int_equal(sg_msg_make_subject("Gr\xc3\xbc\xc3\x9f" "e", &b, NULL), 1);
	assert_non_null(strcasestr(sg_buf_str(&b), "=?utf-8?"));
	sg_buf_reset(&b);
	assert_int_equal(sg_msg_to_crlf((const unsigned char *)"a\nb\r\nc\n", 7, &b, NULL), 1);
	assert_string_equal(sg_buf_str(&b), "a\r\nb\r\nc\r\n");
	sg_buf_free(&b);
}

struct decode_case {
	const char *name;
	const char *msg;
	int ret;
	const char *want;
};

static const struct decode_case decode_cases[] = {
	{ "base64", "Content-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n", 1, "hello" },
	{ "qp", "Content-Transfer-Encoding: Quoted-Printable\r\n\r\ncaf=C3=A9=\r\n!\r\n", 1, "caf\xc3\xa9!\r\n" },
	{ "7bit", "Content-Transfer-Encoding: 7bit\r\n\r\nx", 0, "" },
	{ "none", "Content-Type: text/plain\r\n\r\nx", 0, "" },
	{ "empty base64", "Content-Transfer-Encoding: base64\r\n\r\n", 1, "" },
};

static void test_decode_body(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]); i++) {
		const struct decode_case *c = &decode_cases[i];
		struct sg_msg_view v;
		struct sg_buf b;
		sg_buf_init(&b, 1 << 20);
		assert_int_equal(sg_msg_split((const unsigned char *)c->msg, strlen(c->msg), &v, NULL), 1);
		int r = sg_msg_decode_body(&v, &b, NULL);
		if (r != c->ret || strcmp(sg_buf_str(&b), c->want) != 0)
			fail_msg("case '%s': ret %d '%s'", c->name, r, sg_buf_str(&b));
		sg_buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_multipart),
		cmocka_unit_test(test_header_protection),
		cmocka_unit_test(test_subject_and_crlf),
		cmocka_unit_test(test_decode_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
