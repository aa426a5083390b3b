/* Unit tests for message-level S/MIME (mime/smime-mime.c): round trips per
 * mode, and sealed messages cut short or with flipped bits (in the base64
 * text and in the DER/BER under it; ours and OpenSSL's DER and streamed
 * BER) never crash, never release output on failure, never release changed
 * content where the mode has integrity, and label CBC unauthenticated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "crypto/smime.h"
#include "mime/seal.h"

#define MAX_OUT (1u << 24)

static struct sg_key *alice, *alice_pub, *bob, *bob_pub;
static X509 *bob_cert; /* for the CMS that OpenSSL itself writes */
/* what an unseal that succeeds must give back where integrity holds */
static const char *expect = NULL;
static size_t expect_len;

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

static void make_pair(const char *alg, const char *email, struct sg_key **sec, struct sg_key **pub,
		      X509 **cert_r)
{
	EVP_PKEY *pk = strcmp(alg, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
					       : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *c = make_cert(pk, email);
	*sec = make_key(pk, c, true);
	*pub = make_key(pk, c, false);
	if (cert_r != NULL)
		*cert_r = X509_dup(c);
	X509_free(c);
	EVP_PKEY_free(pk);
}

static int setup(void **state)
{
	make_pair("RSA", "alice@a.test", &alice, &alice_pub, NULL);
	make_pair("EC", "bob@b.test", &bob, &bob_pub, &bob_cert);
	expect = MSG;
	expect_len = sizeof(MSG) - 1;
	return 0;
}

static int teardown(void **state)
{
	sg_key_free(&alice);
	sg_key_free(&alice_pub);
	sg_key_free(&bob);
	sg_key_free(&bob_pub);
	X509_free(bob_cert);
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

/* One unseal of a changed message: a clean 1 or -1; -1 releases nothing;
 * with integrity, what comes out is the original or nothing (a flip may
 * hit bytes nothing depends on: the preamble, the unauthenticated
 * eContentType OID, a line end); changed content is never labelled
 * authenticated; decrypted CBC is labelled unauthenticated and warned. */
static void check_outcome(const char *name, const char *where, size_t pos, int r,
			  const struct sg_buf *back, const struct sg_unseal_result *res,
			  bool integrity)
{
	bool same = back->len == expect_len && memcmp(back->data, expect, back->len) == 0;

	if (r != 1 && r != -1)
		fail_msg("%s: %s flip at %zu: returned %d", name, where, pos, r);
	if (r < 0) {
		if (back->len != 0)
			fail_msg("%s: %s flip at %zu: failure released %zu bytes", name, where, pos,
				 back->len);
		return;
	}
	if (integrity && res->sig != SG_SIG_BAD && !same)
		fail_msg("%s: %s flip at %zu released changed content", name, where, pos);
	if (res->authenticated && !same)
		fail_msg("%s: %s flip at %zu: changed content labelled authenticated", name, where, pos);
	if (res->was_encrypted && !res->authenticated &&
	    (res->warning == NULL || strstr(res->warning, "not integrity protected") == NULL))
		fail_msg("%s: %s flip at %zu: unauthenticated result without the warning", name, where,
			 pos);
}

/* The header block of m and its pkcs7-mime body decoded. */
static void split_sealed(const struct sg_buf *m, struct sg_buf *head, struct sg_buf *der)
{
	size_t body = body_offset(m);
	BIO *b64 = BIO_new(BIO_f_base64());
	BIO *src = BIO_new_mem_buf(m->data + body, (int)(m->len - body));
	unsigned char chunk[4096];
	int n;

	assert_true(sg_buf_append(head, m->data, body));
	BIO_push(b64, src);
	while ((n = BIO_read(b64, chunk, sizeof(chunk))) > 0)
		assert_true(sg_buf_append(der, chunk, (size_t)n));
	BIO_free_all(b64);
	assert_true(der->len > 0);
}

static void join_sealed(const struct sg_buf *head, const unsigned char *der, size_t len,
			struct sg_buf *out)
{
	sg_buf_reset(out);
	assert_true(sg_buf_append(out, head->data, head->len));
	assert_true(sg_base64_lines_append(der, len, out));
}

static void der_flip_at(const char *name, const struct sg_buf *head, struct sg_buf *der,
			size_t pos, unsigned char flip, bool integrity, struct sg_buf *msg,
			struct sg_buf *back)
{
	struct sg_unseal_result res = { 0 };
	enum sg_crypto_status st;

	der->data[pos] ^= flip;
	join_sealed(head, der->data, der->len, msg);
	der->data[pos] ^= flip;
	sg_buf_reset(back);
	int r = unseal_msg(msg->data, msg->len, back, &res, &st);
	check_outcome(name, "DER", pos, r, back, &res, integrity);
	clear_res(&res);
}

/* Flip bits in the DER/BER under the base64: n random ones over the
 * whole; with sweep also, where a parser rather than the cipher decides,
 * every bit of the content-encryption AlgorithmIdentifier and what
 * follows up to the first ciphertext (the aes OID arc 2.16.840.1.101.3.4.1:
 * a GCM/CBC swap is one bit; IV/nonce; the chunk headers) and of the last
 * 64 bytes (GCM tag, end-of-contents octets), and the lowest and highest
 * bit of every other byte before the ciphertext (structure, RecipientInfos). */
static void der_flips(const char *name, const struct sg_buf *sealed, bool integrity, int n,
		      uint32_t *seed, bool sweep)
{
	static const unsigned char aes_arc[] = { 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01 };
	struct sg_buf head, der, msg, back;

	sg_buf_init(&head, MAX_OUT);
	sg_buf_init(&der, MAX_OUT);
	sg_buf_init(&msg, MAX_OUT);
	sg_buf_init(&back, MAX_OUT);
	split_sealed(sealed, &head, &der);
	for (int i = 0; i < n; i++) {
		*seed = *seed * 1103515245u + 12345u;
		der_flip_at(name, &head, &der, (*seed >> 8) % der.len,
			    (unsigned char)(1u << ((*seed >> 4) % 8)), integrity, &msg, &back);
	}
	const unsigned char *alg = memmem(der.data, der.len, aes_arc, sizeof(aes_arc));
	assert_non_null(alg);
	size_t alg_at = (size_t)(alg - der.data), tail = der.len > 64 ? der.len - 64 : 0;
	for (size_t pos = 0; sweep && pos < der.len; pos++) {
		bool all = (pos + 16 >= alg_at && pos < alg_at + 48) || pos >= tail;
		if (!all && pos >= alg_at + 48) {
			pos = tail - 1;
			continue;
		}
		for (int bit = 0; bit < 8; bit += all ? 1 : 7)
			der_flip_at(name, &head, &der, pos, (unsigned char)(1u << bit), integrity, &msg,
				    &back);
	}
	sg_buf_free(&head);
	sg_buf_free(&der);
	sg_buf_free(&msg);
	sg_buf_free(&back);
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
			check_outcome(m->name, "base64", pos, r, &back, &res, m->integrity);
			clear_res(&res);
		}
		/* multipart/signed has no pkcs7-mime body to decode */
		if (m->opaque || m->encrypt)
			der_flips(m->name, &sealed, m->integrity, 300, &seed, !m->sign);
		sg_buf_free(&sealed);
		sg_buf_free(&back);
		sg_buf_free(&copy);
	}
}

/* Enveloped messages as other software writes them, built with OpenSSL
 * here: DER (`openssl cms -encrypt`) and indefinite-length BER in 4 KiB
 * chunks (`openssl cms -encrypt -stream`; gpgsm writes BER too), AES-CBC
 * and AES-GCM, with a body of several chunks; then flipped like ours. */
static char *long_message(size_t *len_r)
{
	struct sg_buf b;

	sg_buf_init(&b, MAX_OUT);
	assert_true(sg_buf_append(&b, MSG, sizeof(MSG) - 1));
	for (int i = 0; i < 200; i++)
		assert_true(sg_buf_printf(&b, "Line %03d of a body longer than one BER chunk.\r\n", i));
	return (char *)sg_buf_steal(&b, len_r);
}

static void foreign_sealed(bool gcm, bool ber, struct sg_buf *out)
{
	const char *inner = strstr(expect, "Content-Type:");
	const size_t head_len = (size_t)(inner - expect);
	const unsigned flags = CMS_BINARY | (ber ? CMS_STREAM : 0);
	STACK_OF(X509) *rs = sk_X509_new_null();
	BIO *in = BIO_new_mem_buf(inner, (int)(expect_len - head_len));
	BIO *der = BIO_new(BIO_s_mem());
	char *p;

	assert_int_equal(sk_X509_push(rs, bob_cert), 1);
	CMS_ContentInfo *cms = CMS_encrypt(rs, in, gcm ? EVP_aes_256_gcm() : EVP_aes_256_cbc(), flags);
	assert_non_null(cms);
	assert_int_equal(ber ? i2d_CMS_bio_stream(der, cms, in, flags) : i2d_CMS_bio(der, cms), 1);
	long n = BIO_get_mem_data(der, &p);
	assert_int_equal((unsigned char)p[1] == 0x80, ber); /* indefinite length or not */
	assert_true(sg_buf_append(out, expect, head_len));
	assert_true(sg_buf_printf(out, "Content-Type: application/pkcs7-mime; smime-type=%s;\r\n"
				  " name=\"smime.p7m\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
				  gcm ? "authEnveloped-data" : "enveloped-data"));
	assert_true(sg_base64_lines_append(p, (size_t)n, out));
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(der);
	sk_X509_free(rs);
}

static void test_foreign_flips(void **state)
{
	uint32_t seed = 777;
	char *long_msg = long_message(&expect_len);

	expect = long_msg;
	for (int v = 0; v < 4; v++) {
		bool gcm = v & 1, ber = v & 2;
		char name[32];
		struct sg_buf sealed, back;
		struct sg_unseal_result res = { 0 };
		enum sg_crypto_status st;

		snprintf(name, sizeof(name), "openssl %s %s", gcm ? "gcm" : "cbc", ber ? "BER" : "DER");
		sg_buf_init(&sealed, MAX_OUT);
		sg_buf_init(&back, MAX_OUT);
		foreign_sealed(gcm, ber, &sealed);
		if (unseal_msg(sealed.data, sealed.len, &back, &res, &st) != 1)
			fail_msg("%s: unseal failed with %s", name, sg_crypto_status_name(st));
		if (back.len != expect_len || memcmp(back.data, expect, back.len) != 0)
			fail_msg("%s: unsealed differs:\n%s", name, sg_buf_str(&back));
		assert_int_equal(res.authenticated, gcm);
		clear_res(&res);
		size_t body = body_offset(&sealed);
		for (int n = 0; n < 400; n++) {
			seed = seed * 1103515245u + 12345u;
			size_t pos = body + (seed >> 8) % (sealed.len - body);
			unsigned char flip = (unsigned char)(1u << ((seed >> 4) % 7));
			sealed.data[pos] ^= flip;
			sg_buf_reset(&back);
			int r = unseal_msg(sealed.data, sealed.len, &back, &res, &st);
			sealed.data[pos] ^= flip;
			check_outcome(name, "base64", pos, r, &back, &res, gcm);
			clear_res(&res);
		}
		der_flips(name, &sealed, gcm, 300, &seed, true);
		sg_buf_free(&sealed);
		sg_buf_free(&back);
	}
	free(long_msg);
	expect = MSG;
	expect_len = sizeof(MSG) - 1;
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
		cmocka_unit_test(test_foreign_flips),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
