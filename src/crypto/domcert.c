/* Domain certificates over OpenSSL 3: P-256 key generation, the self-signed
 * long-term certificate, short-lived certificates it issues, and parsing. */
#include "crypto/domcert.h"
#include "util/mem.h"
#include "util/secret.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* "what: OpenSSL's last reason", OpenSSL's queue emptied. */
static void ossl_fail(struct sg_error *err, const char *what)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	const char *reason = last != 0 ? ERR_reason_error_string(last) : NULL;
	sg_error_set(err, "%s%s%s", what, reason != NULL ? ": " : "", reason != NULL ? reason : "");
}

/* PEM text of a memory BIO, owned and NUL-terminated. */
static char *bio_text(BIO *b, size_t *len_r)
{
	char *p = NULL;
	long n = BIO_get_mem_data(b, &p);
	char *s = sg_malloc((size_t)n + 1);

	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	*len_r = (size_t)n;
	return s;
}

/* ---- issuing ---- */

/* RFC 5280 s4.1.2.2: positive, at most 20 octets; 16 random ones. */
static int set_serial(X509 *x)
{
	unsigned char rnd[16];
	BIGNUM *bn = NULL;
	int ok = RAND_bytes(rnd, sizeof(rnd)) == 1;

	rnd[0] &= 0x7f;
	rnd[0] |= 0x01;
	ok = ok && (bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) != NULL &&
	     BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	int ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

/* SAN built as structures, not as a config string: a domain name can
 * never smuggle in another extension value. */
static int add_san(X509 *x, const char *const *domains, size_t n)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	int ok = gens != NULL;

	for (size_t i = 0; ok && i < n; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		ok = g != NULL && s != NULL && ASN1_STRING_set(s, domains[i], (int)strlen(domains[i])) == 1;
		if (!ok) {
			GENERAL_NAME_free(g);
			ASN1_IA5STRING_free(s);
			break;
		}
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		sk_GENERAL_NAME_push(gens, g);
	}
	ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gens);
	return ok;
}

static int add_extensions_ctx(X509 *x, X509V3_CTX *ctxp, const struct sg_domcert_req *req);

static int add_extensions(X509 *x, X509 *issuer, const struct sg_domcert_req *req)
{
	X509V3_CTX ctx;
	CONF *conf = NCONF_new(NULL); /* empty: certificatePolicies wants a database */
	int ok;

	if (conf == NULL)
		return 0;
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509V3_set_nconf(&ctx, conf);
	ok = add_extensions_ctx(x, &ctx, req);
	NCONF_free(conf);
	return ok;
}

static int add_extensions_ctx(X509 *x, X509V3_CTX *ctxp, const struct sg_domcert_req *req)
{
	X509V3_CTX ctx = *ctxp;

	if (req->signing)
		return add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
		       add_ext(x, &ctx, NID_key_usage,
			       "critical,digitalSignature,nonRepudiation,keyCertSign") &&
		       add_ext(x, &ctx, NID_ext_key_usage, "emailProtection") &&
		       add_ext(x, &ctx, NID_subject_key_identifier, "hash") &&
		       add_ext(x, &ctx, NID_certificate_policies, SG_DOMCERT_POLICY_OID) &&
		       add_san(x, req->domains, req->n_domains);
	return add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
	       add_ext(x, &ctx, NID_key_usage, "critical,keyAgreement") &&
	       add_ext(x, &ctx, NID_ext_key_usage, "emailProtection") &&
	       add_ext(x, &ctx, NID_subject_key_identifier, "hash") &&
	       add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") &&
	       add_ext(x, &ctx, NID_certificate_policies, SG_DOMCERT_POLICY_OID) &&
	       add_san(x, req->domains, req->n_domains);
}

static int set_names(X509 *x, X509 *issuer, const struct sg_domcert_req *req)
{
	X509_NAME *name = X509_get_subject_name(x);
	const char *o = req->signing ? "sealgate domain signing key" : "sealgate domain encryption key";

	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)o, -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
				       (const unsigned char *)req->domains[0], -1, -1, 0) != 1)
		return 0;
	return X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) == 1;
}

static int load_issuer(const struct sg_domcert_req *req, X509 **cert_r, EVP_PKEY **key_r,
		       struct sg_error *err)
{
	BIO *b = BIO_new_mem_buf(req->issuer_pem, (int)req->issuer_len);
	int ok = b != NULL && (*cert_r = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL;

	(void)BIO_reset(b);
	ok = ok && (*key_r = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)req->issuer_pass)) != NULL;
	BIO_free(b);
	if (!ok)
		ossl_fail(err, "domain certificate: cannot read the signing certificate and key");
	return ok ? 1 : -1;
}

static int pem_out(X509 *x, EVP_PKEY *pk, const char *pass, char **cert_r, size_t *cert_len_r,
		   char **key_r, size_t *key_len_r)
{
	BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_secmem());
	int ok = cb != NULL && kb != NULL && PEM_write_bio_X509(cb, x) == 1;

	/* PKCS#8 with PBES2 (PBKDF2, AES-256-CBC): `openssl pkey` reads it */
	if (ok && pass != NULL)
		ok = PEM_write_bio_PKCS8PrivateKey(kb, pk, EVP_aes_256_cbc(), (char *)pass,
						   (int)strlen(pass), NULL, NULL) == 1;
	else if (ok)
		ok = PEM_write_bio_PKCS8PrivateKey(kb, pk, NULL, NULL, 0, NULL, NULL) == 1;
	if (ok) {
		*cert_r = bio_text(cb, cert_len_r);
		*key_r = bio_text(kb, key_len_r);
	}
	BIO_free(cb);
	BIO_free_all(kb); /* secure heap: cleansed when freed */
	return ok;
}

int sg_domcert_issue(const struct sg_domcert_req *req, char **cert_pem_r, size_t *cert_len_r,
		     char **key_pem_r, size_t *key_len_r, struct sg_error *err)
{
	EVP_PKEY *pk = NULL, *ikey = NULL;
	X509 *x = NULL, *icert = NULL;
	int ret = -1;

	*cert_pem_r = *key_pem_r = NULL;
	if (req->n_domains == 0 || (!req->signing && req->issuer_pem == NULL) ||
	    req->issuer_len > INT_MAX) {
		sg_error_set(err, "domain certificate: no domain or no issuer");
		return -1;
	}
	if (!req->signing && load_issuer(req, &icert, &ikey, err) < 0)
		goto out;
	pk = EVP_EC_gen("P-256");
	x = X509_new();
	if (pk == NULL || x == NULL || X509_set_version(x, 2) != 1 || !set_serial(x) ||
	    X509_set_pubkey(x, pk) != 1 || !set_names(x, icert, req) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), req->not_before) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), req->not_after) == NULL ||
	    !add_extensions(x, icert != NULL ? icert : x, req) ||
	    X509_sign(x, ikey != NULL ? ikey : pk, EVP_sha256()) == 0 ||
	    !pem_out(x, pk, req->key_pass, cert_pem_r, cert_len_r, key_pem_r, key_len_r)) {
		ossl_fail(err, "domain certificate");
		goto out;
	}
	ret = 1;
out:
	ERR_clear_error();
	EVP_PKEY_free(pk);
	EVP_PKEY_free(ikey);
	X509_free(x);
	X509_free(icert);
	return ret;
}

/* ---- parsing ---- */

static X509 *parse_cert(const void *data, size_t len)
{
	const unsigned char *p = data;
	X509 *x = NULL;

	if (len == 0 || len > INT_MAX)
		return NULL;
	if (len > 10 && memmem(data, len, "-----BEGIN", 10) != NULL) {
		BIO *b = BIO_new_mem_buf(data, (int)len);
		x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		return x;
	}
	x = d2i_X509(NULL, &p, (long)len);
	if (x != NULL && p != (const unsigned char *)data + len) { /* trailing bytes */
		X509_free(x);
		x = NULL;
	}
	return x;
}

static char *hex_upper(const unsigned char *p, size_t n)
{
	static const char hx[] = "0123456789ABCDEF";
	char *s = sg_malloc(n * 2 + 1);
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = hx[p[i] >> 4];
		s[2 * i + 1] = hx[p[i] & 15];
	}
	s[n * 2] = '\0';
	return s;
}

static int read_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	*out = timegm(&tm);
	return 1;
}

static void read_domains(X509 *x, struct sg_domcert_info *info)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

	for (int i = 0; i < sk_GENERAL_NAME_num(gens) && info->n_domains < SG_DOMCERT_MAX_CERTS; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
		int n = ASN1_STRING_length(g->d.dNSName);
		if (n <= 0 || memchr(s, '\0', (size_t)n) != NULL)
			continue; /* an embedded NUL would make "a.test\0.evil" read as a.test */
		char *d = sg_strndup((const char *)s, (size_t)n);
		for (char *c = d; *c != '\0'; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		info->domains = sg_reallocarray(info->domains, info->n_domains + 1, sizeof(char *));
		info->domains[info->n_domains++] = d;
	}
	GENERAL_NAMES_free(gens);
}

static bool has_policy(X509 *x)
{
	CERTIFICATEPOLICIES *pols = X509_get_ext_d2i(x, NID_certificate_policies, NULL, NULL);
	ASN1_OBJECT *want = OBJ_txt2obj(SG_DOMCERT_POLICY_OID, 1);
	bool found = false;

	for (int i = 0; want != NULL && i < sk_POLICYINFO_num(pols); i++)
		if (OBJ_cmp(sk_POLICYINFO_value(pols, i)->policyid, want) == 0)
			found = true;
	ASN1_OBJECT_free(want);
	CERTIFICATEPOLICIES_free(pols);
	return found;
}

int sg_domcert_info(const void *data, size_t len, struct sg_domcert_info *info_r,
		    struct sg_error *err)
{
	X509 *x = parse_cert(data, len);
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned mdlen = 0;
	int n, ret = -1;

	memset(info_r, 0, sizeof(*info_r));
	if (x == NULL || X509_digest(x, EVP_sha256(), md, &mdlen) != 1 ||
	    !read_time(X509_get0_notBefore(x), &info_r->not_before) ||
	    !read_time(X509_get0_notAfter(x), &info_r->not_after) || (n = i2d_X509(x, &der)) <= 0) {
		sg_error_set(err, "not a readable X.509 certificate");
		goto out;
	}
	info_r->fpr = hex_upper(md, mdlen);
	info_r->der = sg_malloc((size_t)n);
	memcpy(info_r->der, der, (size_t)n);
	info_r->der_len = (size_t)n;
	info_r->ca = X509_check_ca(x) == 1;
	info_r->domain_policy = has_policy(x);
	read_domains(x, info_r);
	ret = 1;
out:
	if (ret < 0)
		sg_domcert_info_clear(info_r);
	ERR_clear_error();
	OPENSSL_free(der);
	X509_free(x);
	return ret;
}

void sg_domcert_info_clear(struct sg_domcert_info *info)
{
	for (size_t i = 0; i < info->n_domains; i++)
		free(info->domains[i]);
	free(info->domains);
	free(info->fpr);
	free(info->der);
	memset(info, 0, sizeof(*info));
}

int sg_domcert_names(const struct sg_domcert_info *info, const char *domain)
{
	for (size_t i = 0; i < info->n_domains; i++)
		if (strcasecmp(info->domains[i], domain) == 0)
			return 1;
	return 0;
}

int sg_domcert_issued_by(const unsigned char *cert, size_t cert_len, const unsigned char *issuer,
			 size_t issuer_len, struct sg_error *err)
{
	X509 *c = parse_cert(cert, cert_len), *i = parse_cert(issuer, issuer_len);
	int ret = 0;

	if (c == NULL || i == NULL)
		sg_error_set(err, "not a readable X.509 certificate");
	else if (X509_check_issued(i, c) != X509_V_OK)
		sg_error_set(err, "not issued by the domain signing certificate");
	else if (X509_verify(c, X509_get0_pubkey(i)) != 1)
		sg_error_set(err, "certificate signature does not verify");
	else
		ret = 1;
	ERR_clear_error();
	X509_free(c);
	X509_free(i);
	return ret;
}

int sg_domcert_split_pem(const void *pem, size_t len, size_t max, struct sg_domcert_der **ders_r,
			 size_t *n_r, struct sg_error *err)
{
	BIO *b = len <= INT_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
	struct sg_domcert_der *ders = NULL;
	size_t n = 0;
	X509 *x;
	int ret = -1;

	*ders_r = NULL;
	*n_r = 0;
	if (b == NULL) {
		sg_error_set(err, "bundle too large");
		return -1;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		unsigned char *der = NULL;
		int dl = i2d_X509(x, &der);
		X509_free(x);
		if (dl <= 0 || n == max) {
			OPENSSL_free(der);
			sg_error_set(err, n == max ? "more than %zu certificates" : "unencodable certificate", max);
			goto out;
		}
		ders = sg_reallocarray(ders, n + 1, sizeof(*ders));
		ders[n].der = sg_malloc((size_t)dl);
		memcpy(ders[n].der, der, (size_t)dl);
		ders[n++].len = (size_t)dl;
		OPENSSL_free(der);
	}
	/* the loop ends at the end of input (no start line) or at a broken block */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE || n == 0) {
		sg_error_set(err, n == 0 ? "no certificate" : "a certificate block does not parse");
		goto out;
	}
	*ders_r = ders;
	*n_r = n;
	ders = NULL;
	ret = 1;
out:
	ERR_clear_error();
	sg_domcert_ders_free(&ders, n);
	BIO_free(b);
	return ret;
}

void sg_domcert_ders_free(struct sg_domcert_der **ders, size_t n)
{
	if (*ders == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free((*ders)[i].der);
	free(*ders);
	*ders = NULL;
}

int sg_domcert_der_to_pem(const unsigned char *der, size_t len, struct sg_buf *out,
			  struct sg_error *err)
{
	X509 *x = parse_cert(der, len);
	BIO *b = BIO_new(BIO_s_mem());
	int ret = -1;

	if (x != NULL && b != NULL && PEM_write_bio_X509(b, x) == 1) {
		char *p = NULL;
		long n = BIO_get_mem_data(b, &p);
		ret = sg_buf_append(out, p, (size_t)n) ? 1 : -1;
		if (ret < 0)
			sg_error_set(err, "bundle too large");
	} else {
		sg_error_set(err, "not a readable X.509 certificate");
	}
	ERR_clear_error();
	BIO_free(b);
	X509_free(x);
	return ret;
}

/* ---- signing ---- */

struct sg_domcert_signer {
	X509 *cert;
	EVP_PKEY *pkey;
};

int sg_domcert_signer_load(const void *cert_pem, size_t cert_len, const void *key_pem,
			   size_t key_len, const char *pass, struct sg_domcert_signer **s_r,
			   struct sg_error *err)
{
	struct sg_domcert_signer *s = sg_calloc(1, sizeof(*s));
	BIO *b = key_len <= INT_MAX ? BIO_new_mem_buf(key_pem, (int)key_len) : NULL;

	*s_r = NULL;
	s->cert = parse_cert(cert_pem, cert_len);
	s->pkey = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)pass) : NULL;
	BIO_free(b);
	if (s->cert == NULL || s->pkey == NULL || X509_check_private_key(s->cert, s->pkey) != 1) {
		ossl_fail(err, "domain signing key: cannot load the certificate and its key");
		sg_domcert_signer_free(&s);
		return -1;
	}
	*s_r = s;
	return 1;
}

void sg_domcert_signer_free(struct sg_domcert_signer **sp)
{
	struct sg_domcert_signer *s = *sp;
	if (s == NULL)
		return;
	X509_free(s->cert);
	EVP_PKEY_free(s->pkey); /* the EC scalar is cleared when freed */
	free(s);
	*sp = NULL;
}

int sg_domcert_sign(const struct sg_domcert_signer *s, const unsigned char *data, size_t len,
		    struct sg_buf *der_out, struct sg_error *err)
{
	BIO *in = len <= INT_MAX ? BIO_new_mem_buf(data, (int)len) : NULL;
	CMS_ContentInfo *cms = NULL;
	unsigned char *der = NULL;
	int n = 0, ret = -1;

	/* CMS_BINARY: the content is MIME already, signed byte for byte. The
	 * digest named (OpenSSL 3.0 looks the default up per call) and the
	 * signer identified by its subjectKeyIdentifier (no issuer name copy). */
	const unsigned int flags = CMS_BINARY | CMS_NOCERTS | CMS_NOSMIMECAP | CMS_USE_KEYID | CMS_PARTIAL;
	if (in != NULL && (cms = CMS_sign(NULL, NULL, NULL, NULL, flags)) != NULL &&
	    (CMS_add1_signer(cms, s->cert, s->pkey, EVP_sha256(), flags) == NULL ||
	     CMS_final(cms, in, NULL, flags) != 1)) {
		CMS_ContentInfo_free(cms);
		cms = NULL;
	}
	if (cms == NULL || (n = i2d_CMS_ContentInfo(cms, &der)) <= 0) {
		ossl_fail(err, "domain sign");
		goto out;
	}
	if (!sg_buf_append(der_out, der, (size_t)n)) {
		sg_error_set(err, "domain sign: signed data too large");
		goto out;
	}
	ret = 1;
out:
	ERR_clear_error();
	if (der != NULL)
		OPENSSL_clear_free(der, (size_t)n); /* it holds the plaintext */
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	return ret;
}

/* ---- verifying ---- */

struct sg_domcert_cert {
	X509 *cert;
};

int sg_domcert_cert_load(const unsigned char *der, size_t len, struct sg_domcert_cert **c_r,
			 struct sg_error *err)
{
	X509 *x = parse_cert(der, len);

	*c_r = NULL;
	if (x == NULL) {
		sg_error_set(err, "not a readable X.509 certificate");
		ERR_clear_error();
		return -1;
	}
	*c_r = sg_calloc(1, sizeof(**c_r));
	(*c_r)->cert = x;
	return 1;
}

void sg_domcert_cert_free(struct sg_domcert_cert **cp)
{
	if (*cp == NULL)
		return;
	X509_free((*cp)->cert);
	free(*cp);
	*cp = NULL;
}

static bool valid_at(X509 *x, time_t now)
{
	return X509_cmp_time(X509_get0_notBefore(x), &now) < 0 &&
	       X509_cmp_time(X509_get0_notAfter(x), &now) > 0;
}

int sg_domcert_verify(const struct sg_domcert_cert *trusted, const unsigned char *der, size_t len,
		      time_t now, struct sg_buf *content_out, enum sg_domcert_sig *sig_r,
		      struct sg_error *err)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms = len > 0 && len <= LONG_MAX ? d2i_CMS_ContentInfo(NULL, &p, (long)len) : NULL;
	STACK_OF(X509) *certs = sk_X509_new_null();
	BIO *out = BIO_new(BIO_s_mem());
	int ret = -1;

	*sig_r = SG_DOMCERT_SIG_BAD;
	if (cms == NULL || p != der + len || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
	    CMS_is_detached(cms) == 1 || sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 1) {
		sg_error_set(err, "domain verify: not an opaque SignedData with one signer");
		goto out;
	}
	ret = 1;
	if (certs == NULL || out == NULL || sk_X509_push(certs, trusted->cert) <= 0) {
		ossl_fail(err, "domain verify");
		ret = -1;
		goto out;
	}
	/* CMS_NOINTERN: the signer is looked for only among certs, never among
	 * certificates an attacker put in the message; the trusted certificate
	 * was checked (self-signed domain signing certificate) when pinned */
	if (CMS_verify(cms, certs, NULL, NULL, out, CMS_BINARY | CMS_NOINTERN | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
		unsigned long e = ERR_peek_last_error();
		*sig_r = ERR_GET_REASON(e) == CMS_R_SIGNER_CERTIFICATE_NOT_FOUND ? SG_DOMCERT_SIG_OTHER_SIGNER
										 : SG_DOMCERT_SIG_BAD;
		ossl_fail(err, "domain verify");
		goto out;
	}
	STACK_OF(X509) *signers = CMS_get0_signers(cms);
	bool same = sk_X509_num(signers) == 1 && X509_cmp(sk_X509_value(signers, 0), trusted->cert) == 0;
	sk_X509_free(signers);
	if (!same) { /* cannot happen with CMS_NOINTERN: checked all the same */
		*sig_r = SG_DOMCERT_SIG_OTHER_SIGNER;
		sg_error_set(err, "domain verify: signed by another certificate");
		goto out;
	}
	if (!valid_at(trusted->cert, now)) {
		*sig_r = SG_DOMCERT_SIG_EXPIRED;
		sg_error_set(err, "domain verify: the signing certificate is not valid at this time");
		goto out;
	}
	char *data = NULL;
	long n = BIO_get_mem_data(out, &data);
	if (n < 0 || !sg_buf_append(content_out, data, (size_t)n)) {
		sg_error_set(err, "domain verify: content too large");
		ret = -1;
		goto out;
	}
	*sig_r = SG_DOMCERT_SIG_VALID;
out:
	ERR_clear_error();
	if (out != NULL) {
		char *plain = NULL;
		long plain_len = BIO_get_mem_data(out, &plain);
		if (plain_len > 0)
			OPENSSL_cleanse(plain, (size_t)plain_len); /* the content */
	}
	BIO_free(out);
	sk_X509_free(certs);
	CMS_ContentInfo_free(cms);
	return ret;
}
