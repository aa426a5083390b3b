/* Unit tests for message-level S/MIME (mime/smime-mime.c): round trips per
 * mode, and sealed messages cut short or with flipped bytes never crash,
 * never release output on failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "crypto/smime.h"
#include "mime/seal.h"

#define MAX_OUT (1u << 24)

static struct sg_key *alice, *alice_pub, *bob, *bob_pub;

static const char MSG[] =
	"From: Alice <alice@a.test>\r\n"
	"To: Bob <bob@b.test>\r\n"
	"Subject: the real subject\r\n"
	"Message-ID: <m1@a.test>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"Line one.\r\n"
	"From the second line.\r\n";

/* PEM of a fresh self-signed S/MIME certificate (+ key when with_key). */
static struct sg_key *make_key(EVP_PKEY *pk, X509 *cert, bool with_key)
{
	BIO *b = BIO_new(BIO_s_mem());
	struct sg_key *k = NULL;
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st;
	char *p;

	assert_int_equal(PEM_write_bio_X509(b, cert), 1);
	if (with_key)
		assert_int_equal(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL), 1);
	long n = BIO_get_mem_data(b, &p);
	if (sg_key_load_mem(p, (size_t)n, NULL, &k, &st, &err) != 1)
		fail_msg("load: %s", sg_error_msg(&err));
	BIO_free(b);
	sg_error_clear(&err);
	return k;
}

static X509 *make_cert(EVP_PKEY *pk, const char *email)
{
	X509 *c = X509_new();
	X509V3_CTX ctx;
	char *san = NULL;

	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 7);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), 86400);
	X509_set_pubkey(c, pk);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_ASC,
				   (const unsigned char *)email, -1, -1, 0);
	X509_set_issuer_name(c, X509_get_subject_name(c));
	X509V3_set_ctx(&ctx, c, c, NULL, NULL, 0);
	assert_true(asprintf(&san, "email:%s", email) > 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
	X509_add_ext(c, ex, -1);
	X509_EXTENSION_free(ex);
	free(san);
	assert_true(X509_sign(c, pk, EVP_sha256()) > 0);
	return c;
}

static void make_pair(const char *alg, const char *email, struct sg_key **sec, struct sg_key **pub)
{
	EVP_PKEY *pk = strcmp(alg, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
					       : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *c = make_cert(pk, email);
	*sec = make_key(pk, c, true);
	*pub = make_key(pk, c, false);
	X509_free(c);
	EVP_PKEY_free(pk);
}

static int setup(void **state)
{
	make_pair("RSA", "alice@a.test", &alice, &alice_pub);
	make_pair("EC", "bob@b.test", &bob, &bob_pub);
	return 0;
}

static int teardown(void **state)
{
	sg_key_free(&alice);
	sg_key_free(&alice_pub);
	sg_key_free(&bob);
	sg_key_free(&bob_pub);
	return 0;
}

struct mode {
	const char *name;
	bool encrypt;
	bool sign;
	bool gcm;
	bool opaque;
	bool integrity;   /* any change to the S/MIME body must be caught */
	const char *want_ctype;
};

static const struct mode modes[] = {
	{ "cbc", true, false, false, false, false, "smime-type=enveloped-data" },
	{ "gcm", true, false, true, false, true, "smime-type=authEnveloped-data" },
	{ "detached", false, true, false, false, true, "multipart/signed" },
	{ "opaque", false, true, false, true, true, "smime-type=signed-data" },
	{ "sign+gcm", true, true, true, false, true, "smime-type=authEnveloped-data" },
	/* CBC is malleable: a flipped block can garble the signed entity's
	 * header so that it no longer reads as signed (EFAIL); only
	 * res->authenticated = false and the warning tell the caller. */
	{ "sign+cbc", true, true, false, false, false, "smime-type=enveloped-data" },
};

static void seal_mode(const struct mode *m, struct sg_buf *out)
{
	struct sg_key *recips[] = { bob_pub };
	struct sg_seal_req req = {
		.format = SG_SEAL_SMIME,
		.recipients = recips,
		.n_recipients = m->encrypt ? 1 : 0,
		.signer = m->sign ? alice : NULL,
		.smime_gcm = m->gcm,
		.smime_opaque = m->opaque,
	};
	enum sg_seal_outcome outcome;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;

	if (sg_smime_seal((const unsigned char *)MSG, sizeof(MSG) - 1, &req, out, &outcome, &st,
			  &err) != 1)
		fail_msg("%s: seal: %s", m->name, sg_error_msg(&err));
	assert_int_equal(outcome, SG_SEAL_SEALED);
	sg_error_clear(&err);
}

static int unseal_msg(const unsigned char *msg, size_t len, struct sg_buf *out,
		      struct sg_unseal_result *res, enum sg_crypto_status *st)
{
	struct sg_key *keys[] = { bob };
	struct sg_key *trust[] = { alice_pub };
	struct sg_unseal_req req = { .keys = keys, .n_keys = 1, .verify_keys = trust, .n_verify_keys = 1 };
	struct sg_error err = SG_ERROR_INIT;
	int r = sg_smime_unseal(msg, len, &req, out, res, st, &err);
	sg_error_clear(&err);
	return r;
}

static void clear_res(struct sg_unseal_result *res)
{
	free(res->signer);
	free(res->decrypted_with);
	free(res->warning);
	memset(res, 0, sizeof(*res));
}

static void test_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		const struct mode *m = &modes[i];
		struct sg_buf sealed, back;
		struct sg_unseal_result res = { 0 };
		enum sg_crypto_status st;

		sg_buf_init(&sealed, MAX_OUT);
		sg_buf_init(&back, MAX_OUT);
		seal_mode(m, &sealed);
		if (strstr(sg_buf_str(&sealed), m->want_ctype) == NULL)
			fail_msg("%s: no %s in output", m->name, m->want_ctype);
		assert_int_equal(strstr(sg_buf_str(&sealed), "the real subject") != NULL, !m->encrypt);
		if (unseal_msg(sealed.data, sealed.len, &back, &res, &st) != 1)
			fail_msg("%s: unseal failed with %s", m->name, sg_crypto_status_name(st));
		if (back.len != sizeof(MSG) - 1 || memcmp(back.data, MSG, back.len) != 0)
			fail_msg("%s: round trip differs:\n%s", m->name, sg_buf_str(&back));
		assert_int_equal(res.was_encrypted, m->encrypt);
		assert_int_equal(res.authenticated, m->encrypt && m->gcm);
		assert_int_equal(res.sig, m->sign ? SG_SIG_VALID : SG_SIG_NONE);
		clear_res(&res);
		sg_buf_free(&sealed);
		sg_buf_free(&back);
	}
}

/* Offset of the S/MIME body (after the outer header's blank line). */
static size_t body_offset(const struct sg_buf *b)
{
	const unsigned char *p = memmem(b->data, b->len, "\r\n\r\n", 4);
	assert_non_null(p);
	return (size_t)(p - b->data) + 4;
}

/* Cut the sealed message short at many points and flip bits in its body:
 * every outcome is a clean 1 or -1, and -1 leaves out empty. Where the mode
 * has integrity, what is released is the original message or nothing (a
 * flip may hit bytes nothing depends on: the preamble, the unauthenticated
 * eContentType OID, a line end). Without integrity (CBC) garbage may come
 * out: that is what res->authenticated = false says. */
static void test_mutations(void **state)
{
	uint32_t seed = 12345;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		const struct mode *m = &modes[i];
		struct sg_buf sealed, back, copy;
		struct sg_unseal_result res = { 0 };
		enum sg_crypto_status st;

		sg_buf_init(&sealed, MAX_OUT);
		seal_mode(m, &sealed);
		size_t body = body_offset(&sealed);
		sg_buf_init(&back, MAX_OUT);
		sg_buf_init(&copy, MAX_OUT);
		for (size_t cut = body; cut + 8 < sealed.len; cut += 13) {
			sg_buf_reset(&back);
			int r = unseal_msg(sealed.data, cut, &back, &res, &st);
			assert_true(r == 1 || r == -1);
			if (r < 0) {
				assert_int_equal(back.len, 0);
				assert_int_not_equal(st, SG_CRYPTO_OK);
			}
			clear_res(&res);
		}
		for (int n = 0; n < 800; n++) {
			seed = seed * 1103515245u + 12345u;
			size_t pos = body + (seed >> 8) % (sealed.len - body);
			unsigned char flip = (unsigned char)(1u << ((seed >> 4) % 7));
			sg_buf_reset(&copy);
			assert_true(sg_buf_append(&copy, sealed.data, sealed.len));
			copy.data[pos] ^= flip;
			sg_buf_reset(&back);
			int r = unseal_msg(copy.data, copy.len, &back, &res, &st);
			assert_true(r == 1 || r == -1);
			if (r < 0) {
				assert_int_equal(back.len, 0);
			} else if (m->integrity && res.sig != SG_SIG_BAD &&
				   (back.len != sizeof(MSG) - 1 || memcmp(back.data, MSG, back.len) != 0)) {
				fail_msg("%s: flip at %zu (%02x->%02x) released changed content",
					 m->name, pos, sealed.data[pos], copy.data[pos]);
			}
			clear_res(&res);
		}
		sg_buf_free(&sealed);
		sg_buf_free(&back);
		sg_buf_free(&copy);
	}
}

static void test_not_smime_passes_through(void **state)
{
	struct sg_buf back;
	struct sg_unseal_result res = { 0 };
	enum sg_crypto_status st;

	sg_buf_init(&back, MAX_OUT);
	assert_int_equal(unseal_msg((const unsigned char *)MSG, sizeof(MSG) - 1, &back, &res, &st), 1);
	assert_int_equal(back.len, sizeof(MSG) - 1);
	assert_false(res.was_encrypted);
	assert_int_equal(res.sig, SG_SIG_NONE);
	clear_res(&res);
	sg_buf_free(&back);
}

static void test_already_encrypted(void **state)
{
	static const struct mode gcm = { "gcm", true, false, true, false, true, "" };
	struct sg_buf sealed, again;
	struct sg_key *recips[] = { alice_pub };
	struct sg_seal_req req = { .format = SG_SEAL_SMIME, .recipients = recips, .n_recipients = 1 };
	enum sg_seal_outcome outcome;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;

	sg_buf_init(&sealed, MAX_OUT);
	sg_buf_init(&again, MAX_OUT);
	seal_mode(&gcm, &sealed);
	assert_int_equal(sg_smime_seal(sealed.data, sealed.len, &req, &again, &outcome, &st, &err), 1);
	assert_int_equal(outcome, SG_SEAL_ALREADY_ENCRYPTED);
	assert_int_equal(again.len, sealed.len);
	assert_memory_equal(again.data, sealed.data, sealed.len);
	sg_buf_free(&sealed);
	sg_buf_free(&again);
	sg_error_clear(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_not_smime_passes_through),
		cmocka_unit_test(test_already_encrypted),
		cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
