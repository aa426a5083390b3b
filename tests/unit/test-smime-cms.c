/* Unit tests for the S/MIME CMS layer (crypto/smime.c) without MIME: keys
 * and certificates made in-process with OpenSSL, table-driven cases. */
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
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/smime.h"

#define DAY (24L * 3600L)
#define MAX_OUT (1u << 24)

/* One generated identity: OpenSSL objects plus the loaded sg_x509_key
 * (with secret) and a public-only copy. */
struct ident {
	EVP_PKEY *pkey;
	X509 *cert;
	struct sg_x509_key *key;  /* cert + private key (+ chain) */
	struct sg_x509_key *pub;  /* cert only */
};

enum { ID_CA, ID_RSA, ID_EC, ID_RSA2, ID_EXPIRED, ID_LEAF, ID_OTHER_CA, ID_SERVERAUTH, ID_ED,
       ID_RSA1024, ID_P384, N_IDS };
static struct ident ids[N_IDS];

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ex);
	assert_int_equal(X509_add_ext(cert, ex, -1), 1);
	X509_EXTENSION_free(ex);
}

/* Certificate for pkey, issued by issuer (NULL: self-signed), valid from
 * now+from to now+to seconds. eku: extendedKeyUsage value or NULL. */
static X509 *make_cert(EVP_PKEY *pkey, const char *email, X509 *issuer, EVP_PKEY *ikey,
		       long from, long to, bool ca, const char *eku, long serial)
{
	X509 *c = X509_new();
	assert_non_null(c);
	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
	X509_gmtime_adj(X509_getm_notBefore(c), from);
	X509_gmtime_adj(X509_getm_notAfter(c), to);
	X509_set_pubkey(c, pkey);
	X509_NAME *name = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)email, -1, -1, 0);
	X509_set_issuer_name(c, issuer != NULL ? X509_get_subject_name(issuer) : name);
	X509 *iss = issuer != NULL ? issuer : c;
	add_ext(c, iss, NID_subject_key_identifier, "hash");
	if (ca) {
		add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
	} else {
		char *san = NULL;
		assert_true(asprintf(&san, "email:%s", email) > 0);
		add_ext(c, iss, NID_subject_alt_name, san);
		free(san);
		add_ext(c, iss, NID_basic_constraints, "CA:FALSE");
	}
	if (eku != NULL)
		add_ext(c, iss, NID_ext_key_usage, eku);
	const EVP_MD *md = EVP_PKEY_is_a(ikey, "ED25519") ? NULL : EVP_sha256();
	assert_true(X509_sign(c, ikey, md) > 0);
	return c;
}

/* PEM of cert + key (+ chain) loaded through the public loader. */
static struct sg_x509_key *load_pem(X509 *cert, EVP_PKEY *pkey, X509 *chain)
{
	BIO *b = BIO_new(BIO_s_mem());
	struct sg_x509_key *k = NULL;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;
	char *p;

	assert_int_equal(PEM_write_bio_X509(b, cert), 1);
	if (chain != NULL)
		assert_int_equal(PEM_write_bio_X509(b, chain), 1);
	if (pkey != NULL)
		assert_int_equal(PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL), 1);
	long n = BIO_get_mem_data(b, &p);
	int r = sg_x509_key_load_mem(p, (size_t)n, NULL, &k, &st, &err);
	if (r != 1)
		fail_msg("load: %s", sg_error_msg(&err));
	BIO_free(b);
	sg_error_clear(&err);
	return k;
}

static void make_ident(int i, const char *alg, const char *email, int ca_idx, long from, long to,
		       bool ca, const char *eku)
{
	struct ident *id = &ids[i];
	if (strcmp(alg, "RSA") == 0)
		id->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else if (strcmp(alg, "RSA1024") == 0)
		id->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	else if (strcmp(alg, "P384") == 0)
		id->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	else if (strcmp(alg, "EC") == 0)
		id->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		id->pkey = EVP_PKEY_Q_keygen(NULL, NULL, alg);
	assert_non_null(id->pkey);
	X509 *issuer = ca_idx >= 0 ? ids[ca_idx].cert : NULL;
	EVP_PKEY *ikey = ca_idx >= 0 ? ids[ca_idx].pkey : id->pkey;
	id->cert = make_cert(id->pkey, email, issuer, ikey, from, to, ca, eku, 100 + i);
	id->key = load_pem(id->cert, id->pkey, issuer);
	id->pub = load_pem(id->cert, NULL, NULL);
}

static int setup(void **state)
{
	make_ident(ID_CA, "EC", "Test CA", -1, -DAY, 3650 * DAY, true, NULL);
	make_ident(ID_OTHER_CA, "EC", "Other CA", -1, -DAY, 3650 * DAY, true, NULL);
	make_ident(ID_RSA, "RSA", "alice@a.test", -1, -DAY, 365 * DAY, false, "emailProtection");
	make_ident(ID_EC, "EC", "bob@b.test", -1, -DAY, 365 * DAY, false, "emailProtection");
	make_ident(ID_RSA2, "RSA", "carol@c.test", -1, -DAY, 365 * DAY, false, NULL);
	make_ident(ID_EXPIRED, "EC", "old@a.test", -1, -30 * DAY, -DAY, false, "emailProtection");
	make_ident(ID_LEAF, "EC", "dave@d.test", ID_CA, -DAY, 365 * DAY, false, "emailProtection");
	make_ident(ID_SERVERAUTH, "EC", "srv@a.test", -1, -DAY, 365 * DAY, false, "serverAuth");
	make_ident(ID_ED, "ED25519", "ed@e.test", ID_CA, -DAY, 365 * DAY, false, "emailProtection");
	make_ident(ID_RSA1024, "RSA1024", "small@a.test", -1, -DAY, 365 * DAY, false, NULL);
	make_ident(ID_P384, "P384", "p384@a.test", -1, -DAY, 365 * DAY, false, NULL);
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < N_IDS; i++) {
		sg_x509_key_free(&ids[i].key);
		sg_x509_key_free(&ids[i].pub);
		assert_null(ids[i].key);
		X509_free(ids[i].cert);
		EVP_PKEY_free(ids[i].pkey);
	}
	return 0;
}

static const char MSG[] = "Content-Type: text/plain; charset=utf-8\r\n\r\nHello \xc3\xa9\r\n.\r\nFrom x\r\n";

/* ---- encryption ---- */

struct enc_case {
	const char *name;
	int recips[2];
	size_t n_recips;
	enum sg_cms_cipher cipher;
	int decrypt_with;       /* index; its secret key */
	bool pub_only;          /* decrypt with the public-only handle */
	int tamper;             /* 0 none, 1 last byte, 2 middle of ciphertext, 3 truncate */
	int want_ret;
	enum sg_crypto_status want_status;
};

static const struct enc_case enc_cases[] = {
	{ "rsa cbc", { ID_RSA }, 1, SG_CMS_AES256_CBC, ID_RSA, false, 0, 1, SG_CRYPTO_OK },
	{ "rsa gcm", { ID_RSA }, 1, SG_CMS_AES256_GCM, ID_RSA, false, 0, 1, SG_CRYPTO_OK },
	{ "ec cbc", { ID_EC }, 1, SG_CMS_AES256_CBC, ID_EC, false, 0, 1, SG_CRYPTO_OK },
	{ "ec gcm", { ID_EC }, 1, SG_CMS_AES256_GCM, ID_EC, false, 0, 1, SG_CRYPTO_OK },
	{ "two recipients, second decrypts", { ID_RSA, ID_EC }, 2, SG_CMS_AES256_GCM, ID_EC, false, 0, 1, SG_CRYPTO_OK },
	{ "expired own cert still decrypts", { ID_EXPIRED }, 1, SG_CMS_AES256_CBC, ID_EXPIRED, false, 0, 1, SG_CRYPTO_OK },
	{ "wrong key rsa", { ID_RSA }, 1, SG_CMS_AES256_CBC, ID_RSA2, false, 0, -1, SG_CRYPTO_WRONG_KEY },
	{ "wrong key ec", { ID_EC }, 1, SG_CMS_AES256_GCM, ID_LEAF, false, 0, -1, SG_CRYPTO_WRONG_KEY },
	{ "no secret key", { ID_RSA }, 1, SG_CMS_AES256_CBC, ID_RSA, true, 0, -1, SG_CRYPTO_NO_KEY },
	{ "gcm tag flipped", { ID_RSA }, 1, SG_CMS_AES256_GCM, ID_RSA, false, 1, -1, SG_CRYPTO_TAMPERED },
	{ "gcm ciphertext flipped", { ID_EC }, 1, SG_CMS_AES256_GCM, ID_EC, false, 2, -1, SG_CRYPTO_TAMPERED },
	{ "truncated", { ID_RSA }, 1, SG_CMS_AES256_GCM, ID_RSA, false, 3, -1, SG_CRYPTO_MALFORMED },
};

static void run_enc_case(const struct enc_case *c)
{
	struct sg_x509_key *recips[2];
	struct sg_buf der, plain;
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st;
	struct sg_cms_decrypt_info info;

	sg_buf_init(&der, MAX_OUT);
	sg_buf_init(&plain, MAX_OUT);
	for (size_t i = 0; i < c->n_recips; i++)
		recips[i] = ids[c->recips[i]].pub;
	if (sg_cms_encrypt((const unsigned char *)MSG, sizeof(MSG) - 1, recips, c->n_recips,
			   c->cipher, &der, &st, &err) != 1)
		fail_msg("%s: encrypt: %s", c->name, sg_error_msg(&err));
	assert_int_equal(sg_cms_kind(der.data, der.len),
			 c->cipher == SG_CMS_AES256_GCM ? SG_CMS_KIND_AUTH_ENVELOPED : SG_CMS_KIND_ENVELOPED);
	/* the plaintext must not appear in the output */
	assert_null(memmem(der.data, der.len, "Hello", 5));
	/* BER from CMS_STREAM ends in three end-of-contents octet pairs
	 * (ContentInfo, [0], AuthEnvelopedData); DER ends with the tag */
	size_t tag_end = der.data[1] == 0x80 ? der.len - 6 : der.len;
	if (c->tamper == 1)
		der.data[tag_end - 1] ^= 0x01;
	else if (c->tamper == 2)
		der.data[tag_end - 16 - 2 - 8 - (der.data[1] == 0x80 ? 4 : 0)] ^= 0x80;
	else if (c->tamper == 3)
		der.len /= 2;
	struct sg_x509_key *k = c->pub_only ? ids[c->decrypt_with].pub : ids[c->decrypt_with].key;
	int r = sg_cms_decrypt(der.data, der.len, &k, 1, time(NULL), &plain, &info, &st, &err);
	if (r != c->want_ret || st != c->want_status)
		fail_msg("%s: decrypt returned %d status %s (%s), want %d %s", c->name, r,
			 sg_crypto_status_name(st), sg_error_msg(&err), c->want_ret,
			 sg_crypto_status_name(c->want_status));
	if (r == 1) {
		assert_int_equal(plain.len, sizeof(MSG) - 1);
		assert_memory_equal(plain.data, MSG, plain.len);
		assert_int_equal(info.authenticated, c->cipher == SG_CMS_AES256_GCM);
		assert_ptr_equal(info.key, k);
		assert_int_equal(info.key_expired, c->decrypt_with == ID_EXPIRED);
	} else {
		assert_int_equal(plain.len, 0); /* nothing released on failure */
	}
	sg_buf_free(&der);
	sg_buf_free(&plain);
	sg_error_clear(&err);
}

static void test_encrypt_table(void **state)
{
	for (size_t i = 0; i < sizeof(enc_cases) / sizeof(enc_cases[0]); i++)
		run_enc_case(&enc_cases[i]);
}

static void test_encrypt_unsupported(void **state)
{
	struct sg_buf der;
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st;
	struct sg_x509_key *r = ids[ID_ED].pub;

	sg_buf_init(&der, MAX_OUT);
	assert_int_equal(sg_cms_encrypt((const unsigned char *)"x", 1, &r, 1, SG_CMS_AES256_CBC,
					&der, &st, &err), -1);
	assert_int_equal(st, SG_CRYPTO_UNSUPPORTED);
	assert_non_null(strstr(sg_error_msg(&err), "ED25519"));
	assert_int_equal(sg_cms_sign((const unsigned char *)"x", 1, ids[ID_ED].key, true, &der,
				     &st, &err), -1);
	assert_int_equal(st, SG_CRYPTO_UNSUPPORTED);
	assert_int_equal(der.len, 0);
	sg_buf_free(&der);
	sg_error_clear(&err);
}

static void test_decrypt_garbage(void **state)
{
	static const unsigned char junk[][8] = {
		{ 0 }, { 0x30, 0x80 }, { 0x30, 0x03, 0x06, 0x01, 0x00 }, { 'h', 'e', 'l', 'l', 'o' },
	};
	struct sg_buf plain;
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st;
	struct sg_cms_decrypt_info info;

	sg_buf_init(&plain, MAX_OUT);
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		assert_int_equal(sg_cms_decrypt(junk[i], sizeof(junk[i]), &ids[ID_RSA].key, 1,
						time(NULL), &plain, &info, &st, &err), -1);
		assert_int_equal(st, SG_CRYPTO_MALFORMED);
		assert_int_equal(sg_cms_kind(junk[i], sizeof(junk[i])), 0);
	}
	sg_buf_free(&plain);
	sg_error_clear(&err);
}

/* ---- signing ---- */

struct sig_case {
	const char *name;
	int signer;
	bool detached;
	int anchors[2];
	size_t n_anchors;
	long verify_at;         /* seconds from now */
	bool change_content;
	enum sg_sig_status want;
};

static const struct sig_case sig_cases[] = {
	{ "rsa detached self-signed anchor", ID_RSA, true, { ID_RSA }, 1, 0, false, SG_SIG_VALID },
	{ "rsa opaque", ID_RSA, false, { ID_RSA }, 1, 0, false, SG_SIG_VALID },
	{ "ec detached", ID_EC, true, { ID_EC }, 1, 0, false, SG_SIG_VALID },
	{ "ec opaque", ID_EC, false, { ID_RSA, ID_EC }, 2, 0, false, SG_SIG_VALID },
	{ "leaf chains to CA", ID_LEAF, true, { ID_CA }, 1, 0, false, SG_SIG_VALID },
	{ "leaf opaque chains to CA", ID_LEAF, false, { ID_CA }, 1, 0, false, SG_SIG_VALID },
	{ "no anchors", ID_RSA, true, { 0 }, 0, 0, false, SG_SIG_UNKNOWN_SIGNER },
	{ "other anchor", ID_LEAF, true, { ID_OTHER_CA }, 1, 0, false, SG_SIG_UNKNOWN_SIGNER },
	{ "content changed detached", ID_RSA, true, { ID_RSA }, 1, 0, true, SG_SIG_BAD },
	{ "content changed opaque", ID_EC, false, { ID_EC }, 1, 0, true, SG_SIG_BAD },
	{ "expired signer cert", ID_EXPIRED, true, { ID_EXPIRED }, 1, 0, false, SG_SIG_KEY_EXPIRED },
	{ "verified after expiry", ID_LEAF, false, { ID_CA }, 1, 400 * DAY, false, SG_SIG_KEY_EXPIRED },
	{ "wrong purpose (serverAuth)", ID_SERVERAUTH, true, { ID_SERVERAUTH }, 1, 0, false, SG_SIG_UNKNOWN_SIGNER },
};

/* Flip one byte of the content inside an opaque SignedData. */
static void tamper_opaque(struct sg_buf *der)
{
	unsigned char *p = memmem(der->data, der->len, "Hello", 5);
	assert_non_null(p);
	p[0] = 'J';
}

static void run_sig_case(const struct sig_case *c)
{
	struct sg_x509_key *anchors[2];
	struct sg_buf der, content;
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st;
	struct sg_cms_verify_info info;
	char msg[sizeof(MSG)];

	memcpy(msg, MSG, sizeof(MSG));
	sg_buf_init(&der, MAX_OUT);
	sg_buf_init(&content, MAX_OUT);
	for (size_t i = 0; i < c->n_anchors; i++)
		anchors[i] = ids[c->anchors[i]].pub;
	if (sg_cms_sign((const unsigned char *)msg, sizeof(MSG) - 1, ids[c->signer].key,
			c->detached, &der, &st, &err) != 1)
		fail_msg("%s: sign: %s", c->name, sg_error_msg(&err));
	assert_int_equal(sg_cms_kind(der.data, der.len), SG_CMS_KIND_SIGNED);
	if (c->change_content && c->detached)
		msg[10] ^= 0x20;
	else if (c->change_content)
		tamper_opaque(&der);
	int r = sg_cms_verify(der.data, der.len, c->detached ? (const unsigned char *)msg : NULL,
			      c->detached ? sizeof(MSG) - 1 : 0, anchors, c->n_anchors,
			      time(NULL) + c->verify_at, NULL, &content, &info, &st, &err);
	if (r != 1 || info.sig != c->want)
		fail_msg("%s: verify returned %d sig %d (%s), want sig %d", c->name, r, info.sig,
			 sg_error_msg(&err), c->want);
	if (c->detached || c->want == SG_SIG_BAD) {
		assert_int_equal(content.len, 0);
	} else {
		assert_int_equal(content.len, sizeof(MSG) - 1);
		assert_memory_equal(content.data, MSG, content.len);
	}
	if (c->want != SG_SIG_BAD)
		assert_non_null(info.signer);
	sg_cms_verify_info_clear(&info);
	sg_buf_free(&der);
	sg_buf_free(&content);
	sg_error_clear(&err);
}

static void test_sign_table(void **state)
{
	for (size_t i = 0; i < sizeof(sig_cases) / sizeof(sig_cases[0]); i++)
		run_sig_case(&sig_cases[i]);
}

static void test_verify_malformed(void **state)
{
	struct sg_buf der, content;
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st;
	struct sg_cms_verify_info info;

	sg_buf_init(&der, MAX_OUT);
	sg_buf_init(&content, MAX_OUT);
	assert_int_equal(sg_cms_sign((const unsigned char *)MSG, 10, ids[ID_EC].key, true, &der,
				     &st, &err), 1);
	/* truncated */
	assert_int_equal(sg_cms_verify(der.data, der.len - 3, (const unsigned char *)MSG, 10,
				       &ids[ID_EC].pub, 1, time(NULL), NULL, &content, &info, &st, &err), -1);
	assert_int_equal(st, SG_CRYPTO_MALFORMED);
	/* detached signature but no content given */
	assert_int_equal(sg_cms_verify(der.data, der.len, NULL, 0, &ids[ID_EC].pub, 1, time(NULL), NULL,
				       &content, &info, &st, &err), -1);
	assert_int_equal(st, SG_CRYPTO_MALFORMED);
	sg_buf_free(&der);
	sg_buf_free(&content);
	sg_error_clear(&err);
}

/* ---- keys ---- */

static void test_key_properties(void **state)
{
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st;
	time_t now = time(NULL);

	assert_int_equal(strlen(sg_x509_key_fingerprint(ids[ID_RSA].key)), 64);
	assert_string_equal(sg_x509_key_fingerprint(ids[ID_RSA].key),
			    sg_x509_key_fingerprint(ids[ID_RSA].pub));
	assert_string_not_equal(sg_x509_key_fingerprint(ids[ID_RSA].key),
				sg_x509_key_fingerprint(ids[ID_EC].key));
	assert_true(sg_x509_key_has_secret(ids[ID_RSA].key));
	assert_false(sg_x509_key_has_secret(ids[ID_RSA].pub));
	assert_int_equal(sg_x509_key_matches_addr(ids[ID_RSA].pub, "alice@A.TEST"), 1);
	assert_int_equal(sg_x509_key_matches_addr(ids[ID_RSA].pub, "Alice@a.test"), 0);
	assert_int_equal(sg_x509_key_matches_addr(ids[ID_RSA].pub, "bob@b.test"), 0);

	static const struct { int id; bool sign; int want; enum sg_crypto_status st; } u[] = {
		{ ID_RSA, false, 1, SG_CRYPTO_OK }, { ID_RSA, true, 1, SG_CRYPTO_OK },
		{ ID_EC, false, 1, SG_CRYPTO_OK }, { ID_RSA2, false, 1, SG_CRYPTO_OK },
		{ ID_EXPIRED, false, 0, SG_CRYPTO_KEY_EXPIRED },
		{ ID_SERVERAUTH, false, 0, SG_CRYPTO_BAD_KEY },
		{ ID_ED, true, 0, SG_CRYPTO_UNSUPPORTED },
		{ ID_ED, false, 0, SG_CRYPTO_UNSUPPORTED },
		{ ID_RSA1024, false, 0, SG_CRYPTO_UNSUPPORTED },
		{ ID_P384, true, 0, SG_CRYPTO_UNSUPPORTED },
	};
	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
		int r = sg_x509_key_usable(ids[u[i].id].key, u[i].sign, now, &st, &err);
		if (r != u[i].want || st != u[i].st)
			fail_msg("usable case %zu: %d %s (%s)", i, r, sg_crypto_status_name(st),
				 sg_error_msg(&err));
	}
	/* public-only cannot sign */
	assert_int_equal(sg_x509_key_usable(ids[ID_RSA].pub, true, now, &st, &err), 0);
	assert_int_equal(st, SG_CRYPTO_NO_KEY);
	sg_error_clear(&err);
}

static void test_key_formats(void **state)
{
	struct sg_x509_key *k = NULL;
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st;
	unsigned char *der = NULL;
	int n;

	/* DER certificate */
	n = i2d_X509(ids[ID_EC].cert, &der);
	assert_true(n > 0);
	assert_int_equal(sg_x509_key_load_mem(der, (size_t)n, NULL, &k, &st, &err), 1);
	assert_string_equal(sg_x509_key_fingerprint(k), sg_x509_key_fingerprint(ids[ID_EC].pub));
	assert_false(sg_x509_key_has_secret(k));
	sg_x509_key_free(&k);
	/* truncated DER */
	assert_int_equal(sg_x509_key_load_mem(der, (size_t)n - 5, NULL, &k, &st, &err), -1);
	assert_int_equal(st, SG_CRYPTO_MALFORMED);
	assert_null(k);
	OPENSSL_free(der);
	der = NULL;

	/* PKCS#12 with a passphrase */
	PKCS12 *p12 = PKCS12_create("s3cret", "leaf", ids[ID_LEAF].pkey, ids[ID_LEAF].cert, NULL,
				    0, 0, 0, 0, 0);
	assert_non_null(p12);
	n = i2d_PKCS12(p12, &der);
	PKCS12_free(p12);
	assert_int_equal(sg_x509_key_load_mem(der, (size_t)n, "s3cret", &k, &st, &err), 1);
	assert_true(sg_x509_key_has_secret(k));
	assert_string_equal(sg_x509_key_fingerprint(k), sg_x509_key_fingerprint(ids[ID_LEAF].pub));
	sg_x509_key_free(&k);
	assert_int_equal(sg_x509_key_load_mem(der, (size_t)n, "wrong", &k, &st, &err), -1);
	assert_int_equal(st, SG_CRYPTO_BAD_KEY);
	OPENSSL_free(der);

	/* not a certificate at all */
	assert_int_equal(sg_x509_key_load_mem("-----BEGIN NOTHING-----\n", 24, NULL, &k, &st, &err), -1);
	assert_int_equal(st, SG_CRYPTO_MALFORMED);
	assert_int_equal(sg_x509_key_load_mem("hello", 5, NULL, &k, &st, &err), -1);
	assert_int_equal(st, SG_CRYPTO_MALFORMED);
	sg_error_clear(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_properties),
		cmocka_unit_test(test_key_formats),
		cmocka_unit_test(test_encrypt_table),
		cmocka_unit_test(test_encrypt_unsupported),
		cmocka_unit_test(test_decrypt_garbage),
		cmocka_unit_test(test_sign_table),
		cmocka_unit_test(test_verify_malformed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
