/* Unit tests for crypto/pgp.c, crypto/key.c and mime/seal.c in process:
 * keys generated with librnp at start, then encrypt/decrypt, sign/verify,
 * failure classes, and malformed messages (never a crash, never output). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "crypto/pgp.h"
#include "mime/seal.h"

static struct sg_key *alice_sec, *alice_pub, *bob_sec, *bob_pub, *eve_sec;

static struct sg_key *export_load(rnp_key_handle_t key, uint32_t flags)
{
	rnp_output_t out = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	struct sg_key *k = NULL;
	enum sg_crypto_status st;

	assert_int_equal(rnp_output_to_memory(&out, 0), RNP_SUCCESS);
	assert_int_equal(rnp_key_export(key, out, flags | RNP_KEY_EXPORT_ARMORED | RNP_KEY_EXPORT_SUBKEYS),
			 RNP_SUCCESS);
	assert_int_equal(rnp_output_memory_get_buf(out, &buf, &len, false), RNP_SUCCESS);
	assert_int_equal(sg_key_load_mem(buf, len, NULL, &k, &st, NULL), 1);
	rnp_output_destroy(out);
	return k;
}

/* A fresh Ed25519 + Cv25519 key, loaded as secret and as public key. */
static void gen_key(const char *uid, struct sg_key **sec_r, struct sg_key **pub_r)
{
	rnp_ffi_t ffi = NULL;
	char *res = NULL, *json = NULL, *fpr = NULL;
	rnp_key_handle_t key = NULL;

	assert_int_equal(rnp_ffi_create(&ffi, "GPG", "GPG"), RNP_SUCCESS);
	assert_true(asprintf(&json,
			     "{\"primary\":{\"type\":\"EDDSA\",\"userid\":\"%s\",\"usage\":[\"sign\"]},"
			     "\"sub\":{\"type\":\"ECDH\",\"curve\":\"Curve25519\",\"usage\":[\"encrypt\"]}}",
			     uid) > 0);
	assert_int_equal(rnp_generate_key_json(ffi, json, &res), RNP_SUCCESS);
	/* The first fingerprint-like token of the result is the primary's grip;
	 * locate by user ID instead. */
	assert_int_equal(rnp_locate_key(ffi, "userid", uid, &key), RNP_SUCCESS);
	assert_non_null(key);
	assert_int_equal(rnp_key_get_fprint(key, &fpr), RNP_SUCCESS);
	*sec_r = export_load(key, RNP_KEY_EXPORT_SECRET);
	if (pub_r != NULL)
		*pub_r = export_load(key, RNP_KEY_EXPORT_PUBLIC);
	assert_string_equal(sg_key_fingerprint(*sec_r), fpr);
	rnp_buffer_destroy(fpr);
	rnp_buffer_destroy(res);
	rnp_key_handle_destroy(key);
	rnp_ffi_destroy(ffi);
	free(json);
}

static int setup(void **state)
{
	(void)state;
	gen_key("Alice <alice@a.test>", &alice_sec, &alice_pub);
	gen_key("Bob <Bob@B.test>", &bob_sec, &bob_pub);
	gen_key("Eve <eve@e.test>", &eve_sec, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sg_key_free(&alice_sec);
	sg_key_free(&alice_pub);
	sg_key_free(&bob_sec);
	sg_key_free(&bob_pub);
	sg_key_free(&eve_sec);
	assert_null(alice_sec);
	return 0;
}

static void test_key_props(void **state)
{
	enum sg_crypto_status st;
	(void)state;
	assert_int_equal(sg_key_kind(alice_sec), SG_KEY_PGP);
	assert_true(sg_key_has_secret(alice_sec));
	assert_false(sg_key_has_secret(alice_pub));
	assert_int_equal(strlen(sg_key_fingerprint(alice_pub)), 40);
	assert_int_equal(sg_key_usable_for_encrypt(bob_pub, time(NULL), &st, NULL), 1);
	assert_int_equal(sg_key_usable_for_sign(alice_sec, time(NULL), &st, NULL), 1);
	assert_int_equal(sg_key_usable_for_sign(alice_pub, time(NULL), &st, NULL), 0);
	assert_int_equal(st, SG_CRYPTO_NO_KEY);
}

struct addr_case {
	const char *addr;
	int want;
};

static void test_matches_addr(void **state)
{
	static const struct addr_case cases[] = {
		{ "Bob@B.test", 1 }, { "Bob@b.TEST", 1 }, /* domain case-insensitive */
		{ "bob@b.test", 0 },                      /* local part exact */
		{ "Bob@B.test.evil", 0 }, { "ob@B.test", 0 }, { "", 0 }, { "Bob", 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (sg_key_matches_addr(bob_pub, cases[i].addr) != cases[i].want)
			fail_msg("addr '%s': want %d", cases[i].addr, cases[i].want);
}

struct load_case {
	const char *name;
	const char *data;
	enum sg_crypto_status st;
};

static void test_load_bad(void **state)
{
	static const struct load_case cases[] = {
		{ "armor junk", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n",
		  SG_CRYPTO_BAD_KEY },
		{ "binary tag junk", "\x99\x01\x01\x04", SG_CRYPTO_BAD_KEY },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_key *k = NULL;
		struct sg_error err = SG_ERROR_INIT;
		enum sg_crypto_status st = SG_CRYPTO_OK;
		if (sg_key_load_mem(cases[i].data, strlen(cases[i].data), NULL, &k, &st, &err) != -1 ||
		    st != cases[i].st || k != NULL)
			fail_msg("case '%s': status %s", cases[i].name, sg_crypto_status_name(st));
		sg_error_clear(&err);
	}
}

static const char MSG[] = "From: alice@a.test\r\nTo: Bob@B.test\r\nSubject: secret\r\nMIME-Version: 1.0\r\n"
			  "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
			  "h\xc3\xa9llo\r\n";

static void seal_ok(const struct sg_seal_req *req, struct sg_buf *out)
{
	enum sg_seal_outcome oc;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;

	sg_buf_init(out, 1 << 24);
	if (sg_seal((const unsigned char *)MSG, strlen(MSG), req, out, &oc, &st, &err) != 1)
		fail_msg("seal: %s", sg_error_msg(&err));
	assert_int_equal(oc, SG_SEAL_SEALED);
}

static int unseal(const struct sg_buf *in, struct sg_key *key, struct sg_key *verify, struct sg_buf *out,
		  struct sg_unseal_result *res, enum sg_crypto_status *st)
{
	struct sg_key *keys[] = { key };
	struct sg_key *vkeys[] = { verify };
	struct sg_unseal_req req = { .keys = keys, .n_keys = key != NULL, .verify_keys = vkeys, .n_verify_keys = verify != NULL };
	struct sg_error err = SG_ERROR_INIT;

	sg_buf_init(out, 1 << 24);
	int r = sg_unseal(in->data, in->len, &req, out, res, st, &err);
	sg_error_clear(&err);
	return r;
}

static void test_seal_unseal(void **state)
{
	struct sg_key *recips[] = { bob_pub };
	struct sg_seal_req req = { .format = SG_SEAL_PGP, .recipients = recips, .n_recipients = 1,
				   .signer = alice_sec };
	struct sg_buf sealed, out;
	struct sg_unseal_result res;
	enum sg_crypto_status st;
	(void)state;

	seal_ok(&req, &sealed);
	assert_non_null(strstr(sg_buf_str(&sealed), "Subject: ...\r\n"));
	assert_null(strstr(sg_buf_str(&sealed), "secret"));
	assert_int_equal(unseal(&sealed, bob_sec, alice_pub, &out, &res, &st), 1);
	assert_int_equal(out.len, strlen(MSG));
	assert_memory_equal(out.data, MSG, out.len);
	assert_true(res.was_encrypted);
	assert_true(res.authenticated);
	assert_int_equal(res.sig, SG_SIG_VALID);
	assert_string_equal(res.signer, sg_key_fingerprint(alice_pub));
	assert_string_equal(res.decrypted_with, sg_key_fingerprint(bob_pub));
	assert_null(res.warning);
	sg_unseal_result_clear(&res);
	sg_buf_free(&out);

	/* Not for us: WRONG_KEY and no output. */
	assert_int_equal(unseal(&sealed, eve_sec, NULL, &out, &res, &st), -1);
	assert_int_equal(st, SG_CRYPTO_WRONG_KEY);
	assert_int_equal(out.len, 0);
	sg_buf_free(&out);

	/* Signer not among the known keys. */
	assert_int_equal(unseal(&sealed, bob_sec, NULL, &out, &res, &st), 1);
	assert_int_equal(res.sig, SG_SIG_UNKNOWN_SIGNER);
	sg_unseal_result_clear(&res);
	sg_buf_free(&out);

	/* Already encrypted: unchanged. */
	struct sg_buf again;
	enum sg_seal_outcome oc;
	sg_buf_init(&again, 1 << 24);
	assert_int_equal(sg_seal(sealed.data, sealed.len, &req, &again, &oc, &st, NULL), 1);
	assert_int_equal(oc, SG_SEAL_ALREADY_ENCRYPTED);
	assert_int_equal(again.len, sealed.len);
	assert_memory_equal(again.data, sealed.data, sealed.len);
	sg_buf_free(&again);
	sg_buf_free(&sealed);
}

static void test_sign_only(void **state)
{
	struct sg_seal_req req = { .format = SG_SEAL_PGP, .signer = alice_sec };
	struct sg_buf sealed, out;
	struct sg_unseal_result res;
	enum sg_crypto_status st;
	(void)state;

	seal_ok(&req, &sealed);
	assert_non_null(strstr(sg_buf_str(&sealed), "micalg=pgp-sha256"));
	assert_non_null(strstr(sg_buf_str(&sealed), "Subject: secret\r\n"));
	assert_int_equal(unseal(&sealed, NULL, alice_pub, &out, &res, &st), 1);
	assert_int_equal(res.sig, SG_SIG_VALID);
	assert_false(res.was_encrypted);
	sg_unseal_result_clear(&res);
	sg_buf_free(&out);

	/* Change one byte of the signed part (its protected From): BAD. */
	char *p = strstr((char *)sealed.data, "protected-headers");
	assert_non_null(p);
	p = strstr(p, "From: ");
	assert_non_null(p);
	p[0] ^= 0x20;
	assert_int_equal(unseal(&sealed, NULL, alice_pub, &out, &res, &st), 1);
	assert_int_equal(res.sig, SG_SIG_BAD);
	sg_unseal_result_clear(&res);
	sg_buf_free(&out);
	sg_buf_free(&sealed);
}

/* Mangled inputs: a clean error or a plain pass-through, never output
 * that looks sealed, never a crash (ASan build). */
static void test_malformed(void **state)
{
	struct sg_key *recips[] = { bob_pub };
	struct sg_seal_req req = { .format = SG_SEAL_PGP, .recipients = recips, .n_recipients = 1 };
	struct sg_buf sealed, out;
	struct sg_unseal_result res;
	enum sg_crypto_status st;
	(void)state;

	seal_ok(&req, &sealed);
	for (size_t cut = 0; cut < sealed.len; cut += 97) {
		struct sg_buf part = { sealed.data, cut, cut, cut };
		int r = unseal(&part, bob_sec, NULL, &out, &res, &st);
		if (r == 1 && res.was_encrypted)
			fail_msg("truncated at %zu decrypted", cut);
		if (r == -1 && out.len != 0)
			fail_msg("truncated at %zu: output on error", cut);
		sg_unseal_result_clear(&res);
		sg_buf_free(&out);
	}
	static const char *const bad[] = {
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"\r\n\r\n",
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n--b\r\n\r\n--b--\r\n",
		"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b\r\n\r\n"
		"-----BEGIN PGP SIGNATURE-----\r\n\r\nAAAA\r\n-----END PGP SIGNATURE-----\r\n--b--\r\n",
		"Subject: x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQ==\r\n-----END PGP MESSAGE-----\r\n",
		"not a header\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sg_buf in = { (unsigned char *)bad[i], strlen(bad[i]), 0, 0 };
		if (unseal(&in, bob_sec, NULL, &out, &res, &st) != -1 || out.len != 0)
			fail_msg("bad[%zu] accepted", i);
		if (st != SG_CRYPTO_MALFORMED)
			fail_msg("bad[%zu]: status %s", i, sg_crypto_status_name(st));
		sg_buf_free(&out);
	}
	sg_buf_free(&sealed);
}

/* Operations on worker threads: each has its own librnp context. */
static void *worker(void *arg)
{
	struct sg_key *recips[] = { bob_pub };
	struct sg_seal_req req = { .format = SG_SEAL_PGP, .recipients = recips, .n_recipients = 1,
				   .signer = alice_sec };
	long ok = 0;

	(void)arg;
	for (int i = 0; i < 10; i++) {
		struct sg_buf sealed, out;
		struct sg_unseal_result res;
		enum sg_crypto_status st;
		enum sg_seal_outcome oc;
		memset(&res, 0, sizeof(res));
		sg_buf_init(&out, 1);
		sg_buf_init(&sealed, 1 << 24);
		if (sg_seal((const unsigned char *)MSG, strlen(MSG), &req, &sealed, &oc, &st, NULL) == 1 &&
		    unseal(&sealed, bob_sec, alice_pub, &out, &res, &st) == 1 && res.sig == SG_SIG_VALID &&
		    out.len == strlen(MSG) && memcmp(out.data, MSG, out.len) == 0)
			ok++;
		sg_unseal_result_clear(&res);
		sg_buf_free(&out);
		sg_buf_free(&sealed);
	}
	return (void *)ok;
}

static void test_threads(void **state)
{
	pthread_t t[4];
	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *ok;
		assert_int_equal(pthread_join(t[i], &ok), 0);
		assert_int_equal((long)ok, 10);
	}
}

static void test_status_names(void **state)
{
	(void)state;
	assert_string_equal(sg_crypto_status_name(SG_CRYPTO_TAMPERED), "tampered");
	assert_string_equal(sg_crypto_status_name(SG_CRYPTO_KEY_EXPIRED), "key expired");
	assert_string_equal(sg_crypto_status_name((enum sg_crypto_status)99), "unknown status");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_props),
		cmocka_unit_test(test_matches_addr),
		cmocka_unit_test(test_load_bad),
		cmocka_unit_test(test_seal_unseal),
		cmocka_unit_test(test_sign_only),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_status_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
