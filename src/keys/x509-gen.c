/* S/MIME key pairs and self-signed certificates with OpenSSL: the
 * extensions mail agents check (RFC 8550 4.4), nothing hand-rolled. */
#include "keys/x509-gen.h"
#include "util/mem.h"
#include "util/secret.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* RFC 5280 upper bound of commonName (ub-common-name). */
#define CN_MAX 64

static const struct {
	const char *type, *algo, *key_usage;
} types[] = {
	/* RFC 8550 4.4.2: key transport needs keyEncipherment, key agreement
	 * (ECDH, RFC 5753) keyAgreement. */
	{ "rsa3072", "RSA 3072", "critical,digitalSignature,keyEncipherment" },
	{ "p256", "EC P-256", "critical,digitalSignature,keyAgreement" },
};

static EVP_PKEY *new_key(const char *type)
{
	return strcmp(type, "rsa3072") == 0 ? EVP_RSA_gen(3072) : EVP_EC_gen("P-256");
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

/* subjectAltName rfc822Name built directly, not from a config string: an
 * address may hold characters ("," ":") that the config syntax reads. */
static int add_san(X509 *x, const char *addr)
{
	GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	int ok = 0;

	if (names == NULL || gn == NULL || ia5 == NULL ||
	    ASN1_STRING_set(ia5, addr, (int)strlen(addr)) != 1)
		goto out;
	GENERAL_NAME_set0_value(gn, GEN_EMAIL, ia5);
	ia5 = NULL;
	if (sk_GENERAL_NAME_push(names, gn) <= 0)
		goto out;
	gn = NULL;
	ok = X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
out:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(names);
	return ok;
}

/* A random positive 127-bit serial (RFC 5280 4.1.2.2: at most 20 octets). */
static int set_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	int ok = bn != NULL && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
		 BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok;
}

static int fill_cert(X509 *x, EVP_PKEY *pk, const char *addr, unsigned days,
		     const char *key_usage)
{
	X509_NAME *name = X509_get_subject_name(x);
	X509V3_CTX ctx;
	const char *cn = strlen(addr) <= CN_MAX ? addr : "S/MIME";

	if (X509_set_version(x, X509_VERSION_3) != 1 || !set_serial(x) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
				       -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, pk) != 1)
		return 0;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	return add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
	       add_ext(x, &ctx, NID_key_usage, key_usage) &&
	       add_ext(x, &ctx, NID_ext_key_usage, "emailProtection") &&
	       add_ext(x, &ctx, NID_subject_key_identifier, "hash") && add_san(x, addr) &&
	       X509_sign(x, pk, EVP_sha256()) > 0;
}

/* PKCS#8 PEM through a secure-heap BIO, copied out. */
static int key_pem(EVP_PKEY *pk, unsigned char **pem_r, size_t *len_r)
{
	BIO *b = BIO_new(BIO_s_secmem());
	BUF_MEM *mem = NULL;
	int ok = b != NULL && PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL) == 1 &&
		 BIO_get_mem_ptr(b, &mem) == 1 && mem != NULL;
	if (ok) {
		*pem_r = sg_malloc(mem->length + 1);
		memcpy(*pem_r, mem->data, mem->length);
		(*pem_r)[mem->length] = '\0';
		*len_r = mem->length;
	}
	BIO_free(b);
	return ok;
}

int sg_x509_generate(const char *addr, const char *type, unsigned days, struct sg_x509_gen *gen_r,
		     struct sg_error *err)
{
	size_t t = 0;
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	unsigned char *der = NULL;
	int len, ret = -1;

	memset(gen_r, 0, sizeof(*gen_r));
	while (t < sizeof(types) / sizeof(types[0]) && strcmp(types[t].type, type) != 0)
		t++;
	if (t == sizeof(types) / sizeof(types[0])) {
		sg_error_set(err, "--type %s: S/MIME keys are rsa3072 or p256", type);
		return -1;
	}
	if ((pk = new_key(type)) == NULL || (x = X509_new()) == NULL ||
	    !fill_cert(x, pk, addr, days, types[t].key_usage) || (len = i2d_X509(x, &der)) <= 0 ||
	    !key_pem(pk, &gen_r->key_pem, &gen_r->key_len)) {
		sg_error_set(err, "S/MIME certificate for %s: OpenSSL failed", addr);
		goto out;
	}
	gen_r->algo = sg_strdup(types[t].algo);
	gen_r->cert_der = sg_malloc((size_t)len);
	memcpy(gen_r->cert_der, der, (size_t)len);
	gen_r->cert_len = (size_t)len;
	int pday = 0, psec = 0;
	if (ASN1_TIME_diff(&pday, &psec, NULL, X509_get0_notAfter(x)) == 1)
		gen_r->expires = (int64_t)time(NULL) + (int64_t)pday * 86400 + psec;
	ret = 1;
out:
	if (ret < 0)
		sg_x509_gen_clear(gen_r);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(pk);
	return ret;
}

void sg_x509_gen_clear(struct sg_x509_gen *gen)
{
	free(gen->algo);
	free(gen->cert_der);
	if (gen->key_pem != NULL)
		sg_secret_free(&gen->key_pem, gen->key_len + 1);
	memset(gen, 0, sizeof(*gen));
}
