/* S/MIME keys and the CMS layer over OpenSSL 3: X.509 certificates with
 * optional private keys, EnvelopedData/AuthEnvelopedData and SignedData. */
#include "crypto/smime.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/secret.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct sg_x509_key {
	X509 *cert;
	EVP_PKEY *pkey;         /* NULL: certificate only */
	STACK_OF(X509) *chain;  /* intermediates sent along when signing */
	char *fpr;
};

/* ---- helpers ---- */

/* Set err to "what: <OpenSSL's last reason>" and empty OpenSSL's queue. */
static void ossl_error(struct sg_error *err, const char *what)
{
	unsigned long e, last = 0;
	const char *data = NULL, *last_data = NULL;
	int flags = 0;

	/* the last entry is the innermost reason; our own (ERR_LIB_USER)
	 * entries carry their text as data */
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		last = e;
		last_data = (flags & ERR_TXT_STRING) != 0 && data != NULL && data[0] != '\0'
			    ? data : NULL;
		if (last_data != NULL)
			sg_error_set(err, "%s", last_data); /* copy: data dies with the entry */
	}
	const char *reason = last != 0 ? ERR_reason_error_string(last) : NULL;
	if (last_data != NULL)
		sg_error_prefix(err, "%s", what);
	else if (reason != NULL)
		sg_error_set(err, "%s: %s", what, reason);
	else
		sg_error_set(err, "%s", what);
}

static int fail(enum sg_crypto_status *status_r, enum sg_crypto_status st,
		struct sg_error *err, const char *what)
{
	*status_r = st;
	ossl_error(err, what);
	return -1;
}

static BIO *mem_bio(const void *data, size_t len)
{
	if (len > INT32_MAX)
		return NULL;
	return BIO_new_mem_buf(data, (int)len);
}

/* A write-only BIO that appends to an sg_buf, either as it is or as
 * base64 in 76-character CRLF lines (RFC 2045 s6.8): CMS output lands in
 * the caller's bounded buffer in one pass, without the copies and wipes of
 * a growing memory BIO. */
struct sink_state {
	struct sg_buf *buf;
	bool base64;
	size_t npend;                 /* base64: bytes waiting for a full line */
	unsigned char pend[SG_B64_LINE_BYTES];
	/* in place: buf also holds the ciphertext at ct_off, which src (a
	 * memory BIO over it) reads; a byte is written only over ciphertext
	 * already read, or the bytes before it */
	BIO *src;
	size_t ct_off, ct_len;
};

#define B64_LINES_PER_CHUNK 64

/* Encode whole 57-byte groups (the last one may be short: only at the end)
 * into 76-character CRLF lines appended to out. */
static int b64_lines(const unsigned char *p, size_t n, struct sg_buf *out)
{
	unsigned char chunk[B64_LINES_PER_CHUNK * 78 + 1];

	while (n > 0) {
		size_t used = 0;
		for (int i = 0; i < B64_LINES_PER_CHUNK && n > 0; i++) {
			size_t take = n < SG_B64_LINE_BYTES ? n : SG_B64_LINE_BYTES;
			used += (size_t)EVP_EncodeBlock(chunk + used, p, (int)take);
			chunk[used++] = '\r';
			chunk[used++] = '\n';
			p += take;
			n -= take;
		}
		if (!sg_buf_append(out, chunk, used))
			return 0;
	}
	return 1;
}

int sg_base64_lines_append(const void *data, size_t len, struct sg_buf *out)
{
	return b64_lines(data, len, out);
}

static int sink_b64(struct sink_state *s, const unsigned char *p, size_t n)
{
	if (s->npend > 0) {
		size_t take = SG_B64_LINE_BYTES - s->npend;
		if (take > n)
			take = n;
		memcpy(s->pend + s->npend, p, take);
		s->npend += take;
		p += take;
		n -= take;
		if (s->npend < SG_B64_LINE_BYTES)
			return 1;
		s->npend = 0;
		if (!b64_lines(s->pend, SG_B64_LINE_BYTES, s->buf))
			return 0;
	}
	size_t whole = n - n % SG_B64_LINE_BYTES;
	if (!b64_lines(p, whole, s->buf))
		return 0;
	memcpy(s->pend, p + whole, n - whole);
	s->npend = n - whole;
	return 1;
}

static int sink_inplace(struct sink_state *s, const unsigned char *p, size_t n)
{
	long left = BIO_ctrl_pending(s->src);
	struct sg_buf *b = s->buf;

	if (left < 0 || (size_t)left > s->ct_len ||
	    n > s->ct_off + (s->ct_len - (size_t)left) - b->len || b->len + n > b->max) {
		ERR_raise_data(ERR_LIB_USER, 0, "in-place output overtakes its input");
		return 0;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 1;
}

static int sink_write(BIO *b, const char *data, int len)
{
	struct sink_state *s = BIO_get_data(b);
	if (s->src != NULL)
		return len >= 0 && sink_inplace(s, (const unsigned char *)data, (size_t)len) ? len : -1;
	int ok = len >= 0 && (s->base64 ? sink_b64(s, (const unsigned char *)data, (size_t)len)
			      : sg_buf_append(s->buf, data, (size_t)len));
	if (!ok) {
		ERR_raise_data(ERR_LIB_USER, 0, "output larger than %zu bytes", s->buf->max);
		return -1;
	}
	return len;
}

/* The last, short base64 line: only once everything else is written. */
static int sink_end(BIO *b)
{
	struct sink_state *s = BIO_get_data(b);
	int ok = !s->base64 || s->npend == 0 || b64_lines(s->pend, s->npend, s->buf);

	s->npend = 0;
	if (!ok)
		ERR_raise_data(ERR_LIB_USER, 0, "output larger than %zu bytes", s->buf->max);
	return ok;
}

static long sink_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sink_create(BIO *b)
{
	BIO_set_data(b, sg_calloc(1, sizeof(struct sink_state)));
	BIO_set_init(b, 1);
	return 1;
}

static int sink_destroy(BIO *b)
{
	struct sink_state *s = BIO_get_data(b);
	if (s != NULL) {
		sg_memwipe(s, sizeof(*s));
		free(s);
	}
	BIO_set_data(b, NULL);
	return 1;
}

static BIO_METHOD *sink_method;

static void sink_method_init(void)
{
	sink_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sg_buf sink");
	if (sink_method == NULL || BIO_meth_set_write(sink_method, sink_write) != 1 ||
	    BIO_meth_set_ctrl(sink_method, sink_ctrl) != 1 ||
	    BIO_meth_set_create(sink_method, sink_create) != 1 ||
	    BIO_meth_set_destroy(sink_method, sink_destroy) != 1)
		sg_fatal("smime: cannot create the output BIO method");
}

static BIO *sink_bio_mode(struct sg_buf *out, bool base64)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, sink_method_init);
	BIO *b = BIO_new(sink_method);
	if (b != NULL) {
		struct sink_state *s = BIO_get_data(b);
		s->buf = out;
		s->base64 = base64;
	}
	return b;
}

static BIO *sink_bio(struct sg_buf *out)
{
	return sink_bio_mode(out, false);
}

/* Take back what a failed operation appended after saved, wiping it. */
static void buf_rollback(struct sg_buf *b, size_t saved)
{
	if (b->len <= saved)
		return;
	sg_memwipe(b->data + saved, b->len - saved);
	b->len = saved;
	b->data[saved] = '\0';
}

static char *fingerprint_of(X509 *cert)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789ABCDEF";

	if (X509_digest(cert, EVP_sha256(), md, &n) != 1)
		return NULL;
	char *s = sg_malloc(2 * n + 1);
	for (unsigned int i = 0; i < n; i++) {
		s[2 * i] = hex[md[i] >> 4];
		s[2 * i + 1] = hex[md[i] & 15];
	}
	s[2 * n] = '\0';
	return s;
}

/* ---- loading ---- */

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
	const char *pass = u;
	if (pass == NULL)
		return 0;
	size_t n = strlen(pass);
	if (n > (size_t)size)
		return -1; /* refuse to truncate a passphrase */
	memcpy(buf, pass, n);
	return (int)n;
}

/* Old PKCS#12 exports (Windows, older OpenSSL and browsers) encrypt with
 * RC2-40 or 3DES, which OpenSSL 3 keeps in its legacy provider. That
 * provider is loaded once, when first needed, into a library context of
 * its own: legacy algorithms are used for reading such a file and for
 * nothing else (the default context never offers RC2 to CMS). */
static OSSL_LIB_CTX *legacy_ctx;

static void legacy_init(void)
{
	OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
	OSSL_PROVIDER *def = ctx != NULL ? OSSL_PROVIDER_load(ctx, "default") : NULL;

	if (def != NULL && OSSL_PROVIDER_load(ctx, "legacy") != NULL) {
		legacy_ctx = ctx; /* kept for the life of the process */
	} else {
		OSSL_PROVIDER_unload(def);
		OSSL_LIB_CTX_free(ctx);
	}
	ERR_clear_error();
}

static OSSL_LIB_CTX *legacy_libctx(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, legacy_init);
	return legacy_ctx;
}

static int parse_pkcs12(const void *data, size_t len, const char *pass, EVP_PKEY **pkey_r,
			X509 **cert_r, STACK_OF(X509) **chain_r)
{
	BIO *b = mem_bio(data, len);
	PKCS12 *p12 = b != NULL ? d2i_PKCS12_bio(b, NULL) : NULL;
	int ret;

	BIO_free(b);
	if (p12 == NULL)
		return 0;
	ret = PKCS12_parse(p12, pass, pkey_r, cert_r, chain_r) == 1 ? 1 : -1;
	PKCS12_free(p12);
	return ret;
}

/* Re-encode what the legacy context parsed so that the key and the
 * certificates belong to the default context like every other key. */
static X509 *cert_to_default(X509 *x)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	const unsigned char *p = der;
	X509 *y = n > 0 ? d2i_X509(NULL, &p, n) : NULL;

	OPENSSL_free(der);
	return y;
}

static int legacy_to_default(EVP_PKEY *pkey, X509 *cert, STACK_OF(X509) *chain,
			     struct sg_x509_key *k)
{
	unsigned char *der = NULL;
	int n = pkey != NULL ? i2d_PrivateKey(pkey, &der) : 0;
	const unsigned char *p = der;

	if (pkey != NULL && (n <= 0 || (k->pkey = d2i_AutoPrivateKey(NULL, &p, n)) == NULL)) {
		OPENSSL_clear_free(der, n > 0 ? (size_t)n : 0);
		return -1;
	}
	OPENSSL_clear_free(der, n > 0 ? (size_t)n : 0);
	k->cert = cert != NULL ? cert_to_default(cert) : NULL;
	k->chain = sk_X509_new_null();
	if (k->cert == NULL || k->chain == NULL)
		return -1;
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *y = cert_to_default(sk_X509_value(chain, i));
		if (y == NULL || sk_X509_push(k->chain, y) <= 0) {
			X509_free(y);
			return -1;
		}
	}
	return 1;
}

/* 1 loaded, 0 not PKCS#12, -1 wrong passphrase (status BAD_KEY), -2 a
 * legacy algorithm that cannot be had here (status UNSUPPORTED). */
static int load_pkcs12(const void *data, size_t len, const char *pass, struct sg_x509_key *k)
{
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *chain = NULL;
	OSSL_LIB_CTX *lctx, *prev;
	int r;

	pass = pass != NULL ? pass : "";
	r = parse_pkcs12(data, len, pass, &k->pkey, &k->cert, &k->chain);
	if (r >= 0)
		return r;
	ERR_clear_error();
	{
		/* the MAC tells a wrong passphrase from an algorithm we lack */
		BIO *b = mem_bio(data, len);
		PKCS12 *p12 = b != NULL ? d2i_PKCS12_bio(b, NULL) : NULL;
		int mac_ok = p12 != NULL && (!PKCS12_mac_present(p12) ||
					     PKCS12_verify_mac(p12, pass, -1) == 1);
		PKCS12_free(p12);
		BIO_free(b);
		ERR_clear_error();
		if (!mac_ok) {
			ERR_raise_data(ERR_LIB_USER, 0, "wrong passphrase (PKCS#12 MAC does not verify)");
			return -1;
		}
	}
	if ((lctx = legacy_libctx()) == NULL) {
		ERR_raise_data(ERR_LIB_USER, 0, "PKCS#12 encrypted with a legacy algorithm (such as "
			       "RC2-40 or 3DES) and OpenSSL's legacy provider cannot be loaded: "
			       "re-export it with AES (openssl pkcs12 -export without -legacy)");
		return -2;
	}
	prev = OSSL_LIB_CTX_set0_default(lctx); /* this thread only */
	r = parse_pkcs12(data, len, pass, &pkey, &cert, &chain);
	OSSL_LIB_CTX_set0_default(prev);
	if (r > 0)
		r = legacy_to_default(pkey, cert, chain, k);
	else
		ERR_raise_data(ERR_LIB_USER, 0, "PKCS#12 unreadable even with the legacy provider");
	EVP_PKEY_free(pkey);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	return r > 0 ? 1 : -1;
}

/* PEM: any number of certificates and at most one private key. The key's
 * certificate (or the first one) is the key; the rest is the chain. */
static int load_pem(const void *data, size_t len, const char *pass, struct sg_x509_key *k)
{
	BIO *b = mem_bio(data, len);
	STACK_OF(X509) *certs = sk_X509_new_null();
	X509 *x;
	int ret = -1;

	if (b == NULL || certs == NULL)
		goto out;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(certs, x);
	ERR_clear_error();
	if (sk_X509_num(certs) == 0) {
		ret = 0;
		goto out;
	}
	BIO_free(b);
	b = mem_bio(data, len);
	if (b == NULL)
		goto out;
	/* no key in the file is fine; a key we cannot read is not */
	if (memmem(data, len, "PRIVATE KEY-----", 16) != NULL) {
		k->pkey = PEM_read_bio_PrivateKey(b, NULL, pass_cb, (void *)pass);
		if (k->pkey == NULL)
			goto out;
	}
	int idx = 0;
	if (k->pkey != NULL) {
		idx = -1;
		for (int i = 0; i < sk_X509_num(certs) && idx < 0; i++)
			if (X509_check_private_key(sk_X509_value(certs, i), k->pkey) == 1)
				idx = i;
		ERR_clear_error();
		if (idx < 0) {
			ERR_raise_data(ERR_LIB_USER, 0, "private key matches no certificate");
			goto out;
		}
	}
	k->cert = sk_X509_delete(certs, idx);
	k->chain = certs;
	certs = NULL;
	ret = 1;
out:
	BIO_free(b);
	sk_X509_pop_free(certs, X509_free);
	return ret;
}

static int load_der_cert(const void *data, size_t len, struct sg_x509_key *k)
{
	const unsigned char *p = data;
	if (len > LONG_MAX)
		return 0;
	k->cert = d2i_X509(NULL, &p, (long)len);
	return k->cert != NULL && p == (const unsigned char *)data + len ? 1 : 0;
}

static void key_clear(struct sg_x509_key *k)
{
	X509_free(k->cert);
	EVP_PKEY_free(k->pkey);
	sk_X509_pop_free(k->chain, X509_free);
	free(k->fpr);
	memset(k, 0, sizeof(*k));
}

int sg_x509_key_load_mem(const void *data, size_t len, const char *passphrase,
			 struct sg_x509_key **key_r, enum sg_crypto_status *status_r,
			 struct sg_error *err)
{
	struct sg_x509_key *k = sg_calloc(1, sizeof(*k));
	enum sg_crypto_status ignored;
	int r;

	if (status_r == NULL)
		status_r = &ignored;
	*key_r = NULL;
	*status_r = SG_CRYPTO_OK;
	if (len >= 11 && memcmp(data, "-----BEGIN ", 11) == 0) {
		r = load_pem(data, len, passphrase, k);
	} else {
		r = load_pkcs12(data, len, passphrase, k);
		if (r == 0) {
			ERR_clear_error();
			r = load_der_cert(data, len, k);
		}
	}
	if (r <= 0) {
		key_clear(k);
		free(k);
		return fail(status_r, r == 0 ? SG_CRYPTO_MALFORMED : r == -2 ? SG_CRYPTO_UNSUPPORTED
			    : SG_CRYPTO_BAD_KEY, err,
			    r == 0 ? "x509: no certificate found" : "x509: cannot read key");
	}
	ERR_clear_error();
	k->fpr = fingerprint_of(k->cert);
	if (k->chain == NULL)
		k->chain = sk_X509_new_null();
	if (k->fpr == NULL || k->chain == NULL) {
		key_clear(k);
		free(k);
		return fail(status_r, SG_CRYPTO_INTERNAL, err, "x509: fingerprint");
	}
	*key_r = k;
	return 1;
}

const char *sg_x509_key_fingerprint(const struct sg_x509_key *k)
{
	return k->fpr;
}

bool sg_x509_key_has_secret(const struct sg_x509_key *k)
{
	return k->pkey != NULL;
}

/* addr equal to cand: local part exact, domain case-insensitive (RFC 5321 s2.4). */
static bool addr_equal(const char *cand, const char *addr)
{
	const char *at1 = strrchr(cand, '@'), *at2 = strrchr(addr, '@');

	if (at1 == NULL || at2 == NULL || at1 - cand != at2 - addr)
		return false;
	return memcmp(cand, addr, (size_t)(at1 - cand)) == 0 && strcasecmp(at1, at2) == 0;
}

int sg_x509_key_matches_addr(const struct sg_x509_key *k, const char *addr)
{
	STACK_OF(OPENSSL_STRING) *emails = X509_get1_email(k->cert);
	int found = 0;

	for (int i = 0; i < sk_OPENSSL_STRING_num(emails) && !found; i++)
		found = addr_equal(sk_OPENSSL_STRING_value(emails, i), addr);
	X509_email_free(emails);
	return found;
}

/* Key types CMS in OpenSSL 3.0 can use for both directions: RSA 2048-4096
 * (key transport, PKCS#1 v1.5 signatures) and ECDSA/ECDH on P-256 (RFC 5753
 * KARI). It has no X25519 KARI or Ed25519 SignerInfo support (RFC 8418,
 * RFC 8419), so those are refused rather than producing unreadable mail. */
static int key_type_ok(EVP_PKEY *pk, enum sg_crypto_status *status_r, struct sg_error *err)
{
	int bits = EVP_PKEY_get_bits(pk);
	char group[64];
	size_t glen = 0;

	if (EVP_PKEY_is_a(pk, "RSA")) {
		if (bits >= 2048 && bits <= 4096)
			return 1;
		*status_r = SG_CRYPTO_UNSUPPORTED;
		sg_error_set(err, "RSA key of %d bits (need 2048-4096)", bits);
		return 0;
	}
	if (EVP_PKEY_is_a(pk, "EC")) {
		if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof(group), &glen) == 1 &&
		    strcmp(group, "prime256v1") == 0)
			return 1;
		ERR_clear_error();
		*status_r = SG_CRYPTO_UNSUPPORTED;
		sg_error_set(err, "EC key not on P-256");
		return 0;
	}
	*status_r = SG_CRYPTO_UNSUPPORTED;
	sg_error_set(err, "%s keys are not supported for S/MIME by OpenSSL 3.0 CMS "
		     "(no X25519 recipients, no Ed25519 signing); use RSA or P-256",
		     EVP_PKEY_get0_type_name(pk) != NULL ? EVP_PKEY_get0_type_name(pk) : "unknown");
	return 0;
}

static int validity_ok(X509 *cert, time_t now, enum sg_crypto_status *status_r,
		       struct sg_error *err)
{
	time_t t = now;

	if (X509_cmp_time(X509_get0_notAfter(cert), &t) < 0) {
		*status_r = SG_CRYPTO_KEY_EXPIRED;
		sg_error_set(err, "certificate expired");
		return 0;
	}
	if (X509_cmp_time(X509_get0_notBefore(cert), &t) > 0) {
		*status_r = SG_CRYPTO_KEY_EXPIRED;
		sg_error_set(err, "certificate not yet valid");
		return 0;
	}
	return 1;
}

/* RFC 8550 s4.4.2 keyUsage, s4.4.4 extKeyUsage. */
static int usage_ok(X509 *cert, EVP_PKEY *pk, bool for_sign, enum sg_crypto_status *status_r,
		    struct sg_error *err)
{
	uint32_t ku = X509_get_key_usage(cert); /* UINT32_MAX when absent */
	uint32_t need;

	if (for_sign)
		need = KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION;
	else
		need = EVP_PKEY_is_a(pk, "EC") ? KU_KEY_AGREEMENT : KU_KEY_ENCIPHERMENT;
	if ((ku & need) == 0) {
		*status_r = SG_CRYPTO_BAD_KEY;
		sg_error_set(err, "keyUsage does not allow %s", for_sign ? "signing" : "encryption");
		return 0;
	}
	if ((X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) != 0 &&
	    (X509_get_extended_key_usage(cert) & XKU_SMIME) == 0) {
		*status_r = SG_CRYPTO_BAD_KEY;
		sg_error_set(err, "extendedKeyUsage lacks emailProtection");
		return 0;
	}
	return 1;
}

int sg_x509_key_usable(const struct sg_x509_key *k, bool for_sign, time_t now,
		       enum sg_crypto_status *status_r, struct sg_error *err)
{
	EVP_PKEY *pk = X509_get0_pubkey(k->cert);
	enum sg_crypto_status ignored;

	if (status_r == NULL) /* the caller only wants yes or no */
		status_r = &ignored;
	*status_r = SG_CRYPTO_OK;
	if (pk == NULL) {
		*status_r = SG_CRYPTO_BAD_KEY;
		sg_error_set(err, "certificate has no readable public key");
		return 0;
	}
	if (for_sign && k->pkey == NULL) {
		*status_r = SG_CRYPTO_NO_KEY;
		sg_error_set(err, "no private key");
		return 0;
	}
	if (!key_type_ok(pk, status_r, err) || !validity_ok(k->cert, now, status_r, err) ||
	    !usage_ok(k->cert, pk, for_sign, status_r, err))
		return 0;
	return 1;
}

void sg_x509_key_free(struct sg_x509_key **kp)
{
	if (*kp == NULL)
		return;
	key_clear(*kp);
	free(*kp);
	*kp = NULL;
}

/* ---- CMS: encrypt / decrypt ---- */

static CMS_ContentInfo *cms_parse(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	if (len == 0 || len > LONG_MAX)
		return NULL;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	/* trailing garbage means a truncated or spliced message */
	if (cms != NULL && p != der + len) {
		CMS_ContentInfo_free(cms);
		return NULL;
	}
	return cms;
}

/* Only the outer SEQUENCE header and the contentType OID are read: a
 * message is not parsed (and its content copied) twice. */
int sg_cms_kind(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	ASN1_OBJECT *type = NULL;
	long slen;
	int tag, xclass, nid = NID_undef;

	if (len == 0 || len > LONG_MAX)
		return 0;
	int r = ASN1_get_object(&p, &slen, &tag, &xclass, (long)len);
	if ((r & 0x80) == 0 && (r & V_ASN1_CONSTRUCTED) != 0 && tag == V_ASN1_SEQUENCE &&
	    xclass == V_ASN1_UNIVERSAL &&
	    d2i_ASN1_OBJECT(&type, &p, (long)len - (long)(p - der)) != NULL)
		nid = OBJ_obj2nid(type);
	ASN1_OBJECT_free(type);
	ERR_clear_error();
	switch (nid) {
	case NID_pkcs7_enveloped: return SG_CMS_KIND_ENVELOPED;
	case NID_id_smime_ct_authEnvelopedData: return SG_CMS_KIND_AUTH_ENVELOPED;
	case NID_pkcs7_signed: return SG_CMS_KIND_SIGNED;
	default: return 0;
	}
}

/* RFC 8418-style KDF choice for ECDH: SHA-256 rather than OpenSSL's SHA-1 default. */
static int set_kari_kdf(CMS_RecipientInfo *ri)
{
	if (CMS_RecipientInfo_type(ri) != CMS_RECIPINFO_AGREE)
		return 1;
	EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
	return pctx != NULL && EVP_PKEY_CTX_set_ecdh_kdf_md(pctx, EVP_sha256()) > 0;
}

/* ---- CMS writers: content in by pieces, encoding out ---- */

struct sg_cms_writer {
	CMS_ContentInfo *cms;
	BIO *sink;          /* appends to out */
	BIO *chain;         /* what sg_cms_write feeds */
	bool stream;        /* BER through BIO_new_CMS (else DER after CMS_dataFinal) */
	struct sg_buf *out;
	size_t saved;       /* out->len before: rolled back to on failure */
	const char *what;
};

/* Free the BIOs that CMS stacked on top of the sink, then the sink. */
static void writer_free_bios(struct sg_cms_writer *w)
{
	if (w->stream) {
		while (w->chain != NULL && w->chain != w->sink) {
			BIO *next = BIO_pop(w->chain);
			BIO_free(w->chain);
			w->chain = next;
		}
	} else {
		BIO_free_all(w->chain);
	}
	w->chain = NULL;
	BIO_free(w->sink);
	w->sink = NULL;
}

void sg_cms_writer_free(struct sg_cms_writer **wp)
{
	struct sg_cms_writer *w = *wp;

	if (w == NULL)
		return;
	writer_free_bios(w);
	buf_rollback(w->out, w->saved);
	CMS_ContentInfo_free(w->cms);
	free(w);
	*wp = NULL;
	ERR_clear_error();
}

/* Take cms (owned from here) and set up its content BIO chain. */
static int writer_start(CMS_ContentInfo *cms, bool stream, bool base64, struct sg_buf *out,
			const char *what, struct sg_cms_writer **w_r,
			enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_cms_writer *w = sg_calloc(1, sizeof(*w));

	w->cms = cms;
	w->stream = stream;
	w->out = out;
	w->saved = out->len;
	w->what = what;
	w->sink = sink_bio_mode(out, base64);
	/* CMS_STREAM: BIO_new_CMS writes the indefinite-length BER header now
	 * and the trailer (with the GCM tag or the signature) at the flush,
	 * so the content is never held whole (RFC 5652 s2: BER is allowed). */
	if (w->sink != NULL)
		w->chain = stream ? BIO_new_CMS(w->sink, cms) : CMS_dataInit(cms, NULL);
	if (w->chain == NULL) {
		sg_cms_writer_free(&w);
		return fail(status_r, SG_CRYPTO_INTERNAL, err, what);
	}
	*w_r = w;
	return 1;
}

int sg_cms_write(struct sg_cms_writer *w, const void *data, size_t len, struct sg_error *err)
{
	const unsigned char *p = data;

	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;
		if (BIO_write(w->chain, p, n) != n) {
			ossl_error(err, w->what);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 1;
}

int sg_cms_finish(struct sg_cms_writer **wp, enum sg_crypto_status *status_r,
		  struct sg_error *err)
{
	struct sg_cms_writer *w = *wp;
	int ok;

	if (w->stream)
		ok = BIO_flush(w->chain) == 1 && sink_end(w->sink);
	else
		ok = BIO_flush(w->chain) == 1 && CMS_dataFinal(w->cms, w->chain) == 1 &&
		     i2d_CMS_bio(w->sink, w->cms) == 1 && sink_end(w->sink);
	if (!ok) {
		fail(status_r, SG_CRYPTO_INTERNAL, err, w->what);
		sg_cms_writer_free(wp);
		return -1;
	}
	w->saved = w->out->len; /* keep what was written */
	sg_cms_writer_free(wp);
	return 1;
}

int sg_cms_encrypt_begin(struct sg_x509_key *const *recips, size_t n_recips,
			 enum sg_cms_cipher cipher, bool base64, struct sg_buf *out,
			 struct sg_cms_writer **w_r, enum sg_crypto_status *status_r,
			 struct sg_error *err)
{
	const unsigned int flags = CMS_BINARY | CMS_PARTIAL | CMS_STREAM;
	const EVP_CIPHER *c = cipher == SG_CMS_AES256_GCM ? EVP_aes_256_gcm() : EVP_aes_256_cbc();
	CMS_ContentInfo *cms = NULL;

	*status_r = SG_CRYPTO_OK;
	*w_r = NULL;
	if (n_recips == 0) {
		*status_r = SG_CRYPTO_NO_KEY;
		sg_error_set(err, "cms encrypt: no recipients");
		goto fail;
	}
	for (size_t i = 0; i < n_recips; i++) {
		EVP_PKEY *pk = X509_get0_pubkey(recips[i]->cert);
		if (pk == NULL || !key_type_ok(pk, status_r, err)) {
			if (pk == NULL)
				*status_r = SG_CRYPTO_BAD_KEY;
			sg_error_prefix(err, "cms encrypt: recipient %s", recips[i]->fpr);
			goto fail;
		}
	}
	/* CMS_encrypt picks AuthEnvelopedData for an AEAD cipher (RFC 5083) */
	cms = CMS_encrypt(NULL, NULL, c, flags);
	if (cms == NULL) {
		fail(status_r, SG_CRYPTO_INTERNAL, err, "cms encrypt");
		goto fail;
	}
	for (size_t i = 0; i < n_recips; i++) {
		CMS_RecipientInfo *ri = CMS_add1_recipient_cert(cms, recips[i]->cert, flags);
		if (ri == NULL || !set_kari_kdf(ri)) {
			fail(status_r, SG_CRYPTO_BAD_KEY, err, "cms encrypt: add recipient");
			sg_error_prefix(err, "recipient %s", recips[i]->fpr);
			goto fail;
		}
	}
	return writer_start(cms, true, base64, out, "cms encrypt", w_r, status_r, err);
fail:
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return -1;
}

int sg_cms_sign_begin(const struct sg_x509_key *signer, bool detached, bool base64,
		      struct sg_buf *out, struct sg_cms_writer **w_r,
		      enum sg_crypto_status *status_r, struct sg_error *err)
{
	/* detached: the content only passes the digest BIO (CMS_dataInit ends
	 * the chain in a null BIO), the small DER follows at the end; opaque:
	 * the content streams into BER like encrypted content */
	const unsigned int flags = CMS_BINARY | CMS_PARTIAL |
				   (detached ? CMS_DETACHED : CMS_STREAM);
	CMS_ContentInfo *cms = NULL;

	*status_r = SG_CRYPTO_OK;
	*w_r = NULL;
	if (signer->pkey == NULL) {
		*status_r = SG_CRYPTO_NO_KEY;
		sg_error_set(err, "cms sign: no private key");
		goto fail;
	}
	if (!key_type_ok(signer->pkey, status_r, err)) {
		sg_error_prefix(err, "cms sign");
		goto fail;
	}
	cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
	if (cms == NULL ||
	    CMS_add1_signer(cms, signer->cert, signer->pkey, EVP_sha256(), flags) == NULL) {
		fail(status_r, SG_CRYPTO_BAD_KEY, err, "cms sign");
		goto fail;
	}
	for (int i = 0; i < sk_X509_num(signer->chain); i++) {
		if (CMS_add1_cert(cms, sk_X509_value(signer->chain, i)) != 1) {
			fail(status_r, SG_CRYPTO_INTERNAL, err, "cms sign: add chain");
			goto fail;
		}
	}
	return writer_start(cms, !detached, base64, out, "cms sign", w_r, status_r, err);
fail:
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return -1;
}

/* begin + one write + finish */
static int write_whole(int begun, struct sg_cms_writer *w, const unsigned char *data, size_t len,
		       enum sg_crypto_status *status_r, struct sg_error *err)
{
	if (begun < 0)
		return -1;
	if (sg_cms_write(w, data, len, err) < 0) {
		*status_r = SG_CRYPTO_INTERNAL;
		sg_cms_writer_free(&w);
		return -1;
	}
	return sg_cms_finish(&w, status_r, err);
}

int sg_cms_encrypt(const unsigned char *data, size_t len,
		   struct sg_x509_key *const *recips, size_t n_recips,
		   enum sg_cms_cipher cipher, struct sg_buf *der_out,
		   enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_cms_writer *w = NULL;
	int r = sg_cms_encrypt_begin(recips, n_recips, cipher, false, der_out, &w, status_r, err);
	return write_whole(r, w, data, len, status_r, err);
}

/* Does any RecipientInfo name this certificate (issuer+serial or SKI)?
 * Checked before decrypting so that "not for us" is told apart from
 * "for us but broken" without asking the RSA oracle (MMA, RFC 3218). */
static bool ri_names_cert(CMS_ContentInfo *cms, X509 *cert)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);

	for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
		int type = CMS_RecipientInfo_type(ri);
		if (type == CMS_RECIPINFO_TRANS && CMS_RecipientInfo_ktri_cert_cmp(ri, cert) == 0)
			return true;
		if (type != CMS_RECIPINFO_AGREE)
			continue;
		STACK_OF(CMS_RecipientEncryptedKey) *reks = CMS_RecipientInfo_kari_get0_reks(ri);
		for (int j = 0; j < sk_CMS_RecipientEncryptedKey_num(reks); j++)
			if (CMS_RecipientEncryptedKey_cert_cmp(
				    sk_CMS_RecipientEncryptedKey_value(reks, j), cert) == 0)
				return true;
	}
	return false;
}

static const struct sg_x509_key *find_decrypt_key(CMS_ContentInfo *cms,
						  struct sg_x509_key *const *keys, size_t n,
						  bool *have_secret_r)
{
	*have_secret_r = false;
	for (size_t i = 0; i < n; i++) {
		if (keys[i]->pkey == NULL)
			continue;
		*have_secret_r = true;
		if (ri_names_cert(cms, keys[i]->cert))
			return keys[i];
	}
	return NULL;
}

/* Decrypt a parsed cms (taken: freed here). dcont, if not NULL, is the
 * ciphertext of a cms parsed without its encryptedContent (not taken). */
static int decrypt_cms(CMS_ContentInfo *cms, BIO *dcont, bool inplace,
		       struct sg_x509_key *const *keys,
		       size_t n_keys, time_t now, struct sg_buf *out,
		       struct sg_cms_decrypt_info *info_r, enum sg_crypto_status *status_r,
		       struct sg_error *err)
{
	size_t saved = out->len;
	const struct sg_x509_key *k;
	BIO *plain = NULL;
	bool have_secret;
	int ret = -1, nid;

	memset(info_r, 0, sizeof(*info_r));
	*status_r = SG_CRYPTO_OK;
	if (cms == NULL) {
		fail(status_r, SG_CRYPTO_MALFORMED, err, "cms decrypt: not a CMS structure");
		goto out;
	}
	nid = OBJ_obj2nid(CMS_get0_type(cms));
	if (nid != NID_pkcs7_enveloped && nid != NID_id_smime_ct_authEnvelopedData) {
		*status_r = SG_CRYPTO_MALFORMED;
		sg_error_set(err, "cms decrypt: not EnvelopedData or AuthEnvelopedData");
		goto out;
	}
	k = find_decrypt_key(cms, keys, n_keys, &have_secret);
	if (k == NULL) {
		*status_r = have_secret ? SG_CRYPTO_WRONG_KEY : SG_CRYPTO_NO_KEY;
		sg_error_set(err, have_secret ? "cms decrypt: not encrypted to any of our keys"
				 : "cms decrypt: no private key to decrypt with");
		goto out;
	}
	plain = sink_bio(out);
	if (plain != NULL && inplace) {
		struct sink_state *s = BIO_get_data(plain);
		const unsigned char *ct = NULL;
		s->src = dcont;
		s->ct_len = (size_t)BIO_get_mem_data(dcont, (char **)&ct);
		s->ct_off = (size_t)(ct - out->data);
		out->len = 0; /* the DER before the ciphertext: parsed already */
		saved = 0;
	}
	/* With the certificate given, only the RecipientInfo naming it is tried
	 * and no random-key substitution happens; a failure after that is the
	 * content (or its GCM tag) not decrypting. The plaintext streams into
	 * out and is wiped from it again unless the whole of it checked out. */
	if (plain == NULL || CMS_decrypt(cms, k->pkey, k->cert, dcont, plain, CMS_BINARY) != 1) {
		buf_rollback(out, saved);
		fail(status_r, SG_CRYPTO_TAMPERED, err,
		     nid == NID_id_smime_ct_authEnvelopedData
			     ? "cms decrypt: authentication tag or content does not verify"
			     : "cms decrypt: content does not decrypt (corrupt or tampered)");
		goto out;
	}
	info_r->authenticated = nid == NID_id_smime_ct_authEnvelopedData;
	info_r->key = k;
	{
		enum sg_crypto_status st;
		info_r->key_expired = !validity_ok(k->cert, now, &st, NULL);
	}
	ret = 1;
out:
	ERR_clear_error();
	BIO_free(plain);
	CMS_ContentInfo_free(cms);
	return ret;
}

int sg_cms_decrypt(const unsigned char *der, size_t len,
		   struct sg_x509_key *const *keys, size_t n_keys, time_t now,
		   struct sg_buf *out, struct sg_cms_decrypt_info *info_r,
		   enum sg_crypto_status *status_r, struct sg_error *err)
{
	return decrypt_cms(cms_parse(der, len), NULL, false, keys, n_keys, now, out, info_r, status_r,
			   err);
}

/* ---- BER: chunked encryptedContent made one primitive string ---- */

/* One TLV header at *p (within end): 1 ok, with *p past the header. */
static int tlv(const unsigned char **p, const unsigned char *end, int *tag_r, int *cls_r,
	       bool *cons_r, bool *inf_r, long *len_r)
{
	if (*p >= end || end - *p > LONG_MAX)
		return 0;
	int r = ASN1_get_object(p, len_r, tag_r, cls_r, (long)(end - *p));
	if ((r & 0x80) != 0) {
		ERR_clear_error();
		return 0;
	}
	*cons_r = (r & V_ASN1_CONSTRUCTED) != 0;
	*inf_r = (r & 1) != 0;
	return 1;
}

/* Enter an indefinite-length constructed element of the given class/tag. */
static int enter_inf(const unsigned char **p, const unsigned char *end, int cls, int tag)
{
	int t, c;
	bool cons, inf;
	long len;

	return tlv(p, end, &t, &c, &cons, &inf, &len) && cons && inf && t == tag && c == cls;
}

/* Skip one definite-length element; tag_r and cls_r say what it was. */
static int skip_def(const unsigned char **p, const unsigned char *end, int *tag_r, int *cls_r)
{
	bool cons, inf;
	long len;

	if (!tlv(p, end, tag_r, cls_r, &cons, &inf, &len) || inf || len > end - *p)
		return 0;
	*p += len;
	return 1;
}

/* Where the encryptedContent [0] of an (Auth)EnvelopedData in BER with
 * indefinite lengths down to it starts (RFC 5652 s6.1, RFC 5083 s2.1);
 * NULL for any other shape. */
static unsigned char *find_econtent(unsigned char *der, size_t len)
{
	const unsigned char *p = der, *end = der + len;
	int tag, cls;

	if (!enter_inf(&p, end, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) || /* ContentInfo */
	    !skip_def(&p, end, &tag, &cls) || tag != V_ASN1_OBJECT ||
	    !enter_inf(&p, end, V_ASN1_CONTEXT_SPECIFIC, 0) ||
	    !enter_inf(&p, end, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) ||   /* (Auth)EnvelopedData */
	    !skip_def(&p, end, &tag, &cls) || tag != V_ASN1_INTEGER ||  /* version */
	    !skip_def(&p, end, &tag, &cls))                             /* originatorInfo or RIs */
		return NULL;
	if (cls == V_ASN1_CONTEXT_SPECIFIC && !skip_def(&p, end, &tag, &cls))
		return NULL;
	if (tag != V_ASN1_SET || cls != V_ASN1_UNIVERSAL ||
	    !enter_inf(&p, end, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE) ||   /* EncryptedContentInfo */
	    !skip_def(&p, end, &tag, &cls) || tag != V_ASN1_OBJECT ||
	    !skip_def(&p, end, &tag, &cls) || tag != V_ASN1_SEQUENCE)  /* the algorithm */
		return NULL;
	return (unsigned char *)p;
}

struct chunk {
	size_t off, len; /* of a chunk's bytes in the DER */
};

/* A chunked encryptedContent (constructed [0], indefinite, of OCTET
 * STRINGs, as CMS_STREAM and gpgsm write it) becomes one primitive [0] in
 * place: OpenSSL then copies the ciphertext once while parsing, instead of
 * gathering the chunks into a buffer that grows by re-allocation (up to
 * 2.3 copies of the message at once). The chunks are packed towards the
 * end of the content (moving right, last first), the new header goes
 * before them and the few hundred bytes before it follow; the bytes after
 * the content move left over its end-of-contents octets. The enclosing
 * elements have indefinite lengths, so no length changes; the ciphertext
 * and everything else keep their bytes. Returns where the DER now starts
 * in der->data (der->len adjusted); 0 and nothing changed for any other
 * shape, which the parser then judges as it is. */
static size_t ber_flatten_econtent(struct sg_buf *der)
{
	unsigned char *d = der->data, *start = find_econtent(d, der->len);
	const unsigned char *p = start, *end = d + der->len;
	struct chunk *chunks = NULL;
	size_t n = 0, total = 0, hlen, eoc, data_at, hdr_at, ret = 0;
	int tag, cls;
	bool cons, inf;
	long len;

	if (start == NULL || !tlv(&p, end, &tag, &cls, &cons, &inf, &len) || !cons || !inf ||
	    tag != 0 || cls != V_ASN1_CONTEXT_SPECIFIC)
		return 0;
	for (const unsigned char *q = p; !(end - q >= 2 && q[0] == 0 && q[1] == 0); n++)
		if (!tlv(&q, end, &tag, &cls, &cons, &inf, &len) || cons || inf ||
		    tag != V_ASN1_OCTET_STRING || cls != V_ASN1_UNIVERSAL || len > end - q ||
		    n > der->len / 64 + 16) /* many tiny chunks: not worth it */
			return 0;
		else
			q += len;
	if (n == 0)
		return 0;
	chunks = sg_calloc(n, sizeof(*chunks));
	for (size_t i = 0; i < n; i++) {
		(void)tlv(&p, end, &tag, &cls, &cons, &inf, &len); /* checked above */
		chunks[i].off = (size_t)(p - d);
		chunks[i].len = (size_t)len;
		total += (size_t)len;
		p += len;
	}
	eoc = (size_t)(p - d);
	hlen = total < 0x80 ? 2 : total <= 0xff ? 3 : total <= 0xffff ? 4 : total <= 0xffffff ? 5 : 6;
	if (total > 0xffffffffu || eoc - total < (size_t)(start - d) + hlen)
		goto out;
	data_at = eoc - total;
	for (size_t i = n, at = eoc; i-- > 0;) {
		at -= chunks[i].len;
		memmove(d + at, d + chunks[i].off, chunks[i].len);
	}
	hdr_at = data_at - hlen;
	d[hdr_at] = 0x80; /* [0] IMPLICIT OCTET STRING, primitive */
	if (total < 0x80) {
		d[hdr_at + 1] = (unsigned char)total;
	} else {
		d[hdr_at + 1] = (unsigned char)(0x80 | (hlen - 2));
		for (size_t i = 2; i < hlen; i++)
			d[hdr_at + i] = (unsigned char)(total >> (8 * (hlen - 1 - i)));
	}
	ret = hdr_at - (size_t)(start - d);
	memmove(d + ret, d, (size_t)(start - d));
	memmove(d + eoc, d + eoc + 2, der->len - eoc - 2);
	der->len -= 2;
out:
	free(chunks);
	return ret;
}

/* A flattened (Auth)EnvelopedData (ber_flatten_econtent: the enclosing
 * lengths indefinite, the encryptedContent one primitive [0]) parsed
 * without its encryptedContent, from a small copy of the bytes before and
 * after it: d2i then does not copy the ciphertext, which stays in der
 * (*ct_r, *ct_len_r) and is handed to CMS_decrypt as detached content.
 * The element is OPTIONAL (RFC 5652 s6.1, RFC 5083 s2.1) and the
 * enclosing lengths are indefinite, so the rest parses as it is. NULL for
 * any other shape or anything the parser rejects. */
static CMS_ContentInfo *cms_parse_without_econtent(const unsigned char *der, size_t len,
						   const unsigned char **ct_r, size_t *ct_len_r)
{
	const unsigned char *e = find_econtent((unsigned char *)der, len), *p = e, *end = der + len;
	unsigned char *rest;
	CMS_ContentInfo *cms;
	ASN1_OCTET_STRING **pos;
	size_t pre, post;
	int tag, cls;
	bool cons, inf;
	long clen;

	if (e == NULL || !tlv(&p, end, &tag, &cls, &cons, &inf, &clen) || cons || inf ||
	    tag != 0 || cls != V_ASN1_CONTEXT_SPECIFIC || clen <= 0 || clen > end - p)
		return NULL;
	pre = (size_t)(e - der);
	post = (size_t)(end - (p + clen));
	rest = sg_malloc(pre + post);
	memcpy(rest, der, pre);
	memcpy(rest + pre, p + clen, post);
	cms = cms_parse(rest, pre + post);
	free(rest);
	/* the parse must not have found a content elsewhere */
	if (cms != NULL && ((pos = CMS_get0_content(cms)) == NULL || *pos != NULL)) {
		CMS_ContentInfo_free(cms);
		cms = NULL;
	}
	ERR_clear_error();
	*ct_r = p;
	*ct_len_r = (size_t)clen;
	return cms;
}

int sg_cms_decrypt_buf(struct sg_buf *der, struct sg_x509_key *const *keys, size_t n_keys,
		       time_t now, struct sg_buf *out, struct sg_cms_decrypt_info *info_r,
		       enum sg_crypto_status *status_r, struct sg_error *err)
{
	size_t at = ber_flatten_econtent(der), ct_len = 0;
	const unsigned char *ct = NULL;
	CMS_ContentInfo *cms = NULL;
	BIO *dcont = NULL;
	int ret;

	/* Flattened: the ciphertext is read where it lies, as detached content */
	if (at > 0 && (cms = cms_parse_without_econtent(der->data + at, der->len - at, &ct,
							&ct_len)) != NULL &&
	    (dcont = mem_bio(ct, ct_len)) == NULL) {
		CMS_ContentInfo_free(cms);
		cms = NULL;
	}
	if (cms == NULL) {
		cms = cms_parse(der->data + at, der->len - at);
		/* the parsed structure holds its own copy of the ciphertext */
		sg_buf_free(der);
	}
	if (dcont != NULL && out->len == 0) {
		/* the plaintext is written over the ciphertext it comes from
		 * (never ahead of what was read) and der becomes out */
		size_t max = out->max;
		if (der->max > max)
			der->max = max;
		ret = decrypt_cms(cms, dcont, true, keys, n_keys, now, der, info_r, status_r, err);
		BIO_free(dcont);
		if (ret < 0) {
			sg_buf_free_secret(der);
			return ret;
		}
		sg_buf_free_secret(out);
		*out = *der;
		out->max = max;
		der->data = NULL;
		der->len = der->cap = 0;
		return ret;
	}
	ret = decrypt_cms(cms, dcont, false, keys, n_keys, now, out, info_r, status_r, err);
	BIO_free(dcont);
	sg_buf_free(der);
	return ret;
}

/* ---- CMS: sign / verify ---- */

int sg_cms_sign(const unsigned char *data, size_t len, const struct sg_x509_key *signer,
		bool detached, struct sg_buf *der_out,
		enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_cms_writer *w = NULL;
	int r = sg_cms_sign_begin(signer, detached, false, der_out, &w, status_r, err);
	return write_whole(r, w, data, len, status_r, err);
}

static char *signer_name(X509 *cert)
{
	STACK_OF(OPENSSL_STRING) *emails = X509_get1_email(cert);
	char *s = NULL;

	if (sk_OPENSSL_STRING_num(emails) > 0)
		s = sg_strdup(sk_OPENSSL_STRING_value(emails, 0));
	X509_email_free(emails);
	if (s == NULL) {
		char *line = X509_NAME_oneline(X509_get_subject_name(cert), NULL, 0);
		s = sg_strdup(line != NULL ? line : "?");
		OPENSSL_free(line);
	}
	return s;
}

/* ---- revocation: CRLs (RFC 5280 s5, RFC 8550 s2.3) ---- */

struct sg_smime_revocation {
	enum sg_smime_revocation_mode mode;
	STACK_OF(X509_CRL) *crls;
};

static const char *const revocation_modes[] = {
	[SG_REVOCATION_OFF] = "off", [SG_REVOCATION_CRL] = "crl", [SG_REVOCATION_REQUIRE] = "require",
};

/* Every CRL in one file: PEM (any number) or one DER. 0 if none. */
static int load_crl_file(const char *path, STACK_OF(X509_CRL) *crls, struct sg_error *err)
{
	BIO *b = BIO_new_file(path, "rb");
	X509_CRL *crl;
	int n = 0;

	if (b == NULL) {
		ossl_error(err, "cannot open");
		sg_error_prefix(err, "%s", path);
		return -1;
	}
	while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
		sk_X509_CRL_push(crls, crl);
		n++;
	}
	ERR_clear_error();
	if (n == 0 && BIO_reset(b) == 0 && (crl = d2i_X509_CRL_bio(b, NULL)) != NULL) {
		sk_X509_CRL_push(crls, crl);
		n++;
	}
	ERR_clear_error();
	BIO_free(b);
	return n;
}

static int load_crl_dir(const char *dir, STACK_OF(X509_CRL) *crls, struct sg_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int ret = 1;

	if (d == NULL) {
		sg_error_set(err, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while (ret > 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *path = sg_asprintf("%s/%s", dir, de->d_name);
		struct stat st;
		/* other files (a README, hash links to certificates) are skipped */
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && load_crl_file(path, crls, err) < 0)
			ret = -1;
		free(path);
	}
	closedir(d);
	return ret;
}

int sg_smime_revocation_load(const char *mode, const char *crl_files, const char *crl_dir,
			     struct sg_smime_revocation **rev_r, struct sg_error *err)
{
	struct sg_smime_revocation *rev = sg_calloc(1, sizeof(*rev));
	char *files = sg_strdup(crl_files != NULL ? crl_files : ""), *save = NULL;
	int ret = -1, found = -1;

	*rev_r = NULL;
	for (size_t i = 0; i < sizeof(revocation_modes) / sizeof(revocation_modes[0]); i++)
		if (mode != NULL && strcmp(mode, revocation_modes[i]) == 0)
			found = (int)i;
	if (found < 0) {
		sg_error_set(err, "smime_revocation: '%s' is not off, crl or require", mode != NULL ? mode : "");
		goto out;
	}
	rev->mode = (enum sg_smime_revocation_mode)found;
	rev->crls = sk_X509_CRL_new_null();
	if (rev->crls == NULL)
		sg_fatal("out of memory");
	for (char *tok = strtok_r(files, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		int n = load_crl_file(tok, rev->crls, err);
		if (n == 0)
			sg_error_set(err, "%s: no CRL in the file (PEM or DER X509 CRL expected)", tok);
		if (n <= 0) {
			sg_error_prefix(err, "smime_crl_files");
			goto out;
		}
	}
	if (crl_dir != NULL && crl_dir[0] != '\0' && load_crl_dir(crl_dir, rev->crls, err) < 0) {
		sg_error_prefix(err, "smime_crl_dir");
		goto out;
	}
	*rev_r = rev;
	rev = NULL;
	ret = 1;
out:
	free(files);
	sg_smime_revocation_free(&rev);
	return ret;
}

enum sg_smime_revocation_mode sg_smime_revocation_mode(const struct sg_smime_revocation *rev)
{
	return rev != NULL ? rev->mode : SG_REVOCATION_OFF;
}

void sg_smime_revocation_free(struct sg_smime_revocation **revp)
{
	if (*revp == NULL)
		return;
	sk_X509_CRL_pop_free((*revp)->crls, X509_CRL_free);
	free(*revp);
	*revp = NULL;
}

/* mode crl: a certificate whose issuer published no CRL we hold is taken
 * as not revoked (soft fail); require: that is an error. */
static int crl_verify_cb(int ok, X509_STORE_CTX *ctx)
{
	const struct sg_smime_revocation *rev = X509_STORE_CTX_get_app_data(ctx);

	if (!ok && rev != NULL && rev->mode == SG_REVOCATION_CRL &&
	    X509_STORE_CTX_get_error(ctx) == X509_V_ERR_UNABLE_TO_GET_CRL)
		return 1;
	return ok;
}

static void enable_crls(X509_STORE_CTX *ctx, const struct sg_smime_revocation *rev)
{
	if (rev == NULL || rev->mode == SG_REVOCATION_OFF)
		return;
	X509_STORE_CTX_set0_crls(ctx, rev->crls);
	X509_STORE_CTX_set_app_data(ctx, (void *)rev);
	X509_STORE_CTX_set_verify_cb(ctx, crl_verify_cb);
	X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx),
				    X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
}

/* Why a chain failed, for the caller to show: "<reason> (<subject>)". */
static char *chain_detail(X509_STORE_CTX *ctx)
{
	X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
	char *subj = cur != NULL ? X509_NAME_oneline(X509_get_subject_name(cur), NULL, 0) : NULL;
	int e = X509_STORE_CTX_get_error(ctx);
	char *s = sg_asprintf("%s%s%s%s", X509_verify_cert_error_string(e),
			      subj != NULL ? " (" : "", subj != NULL ? subj : "", subj != NULL ? ")" : "");
	OPENSSL_free(subj);
	return s;
}

/* Chain from the signer to one of the anchors, at time now, for the S/MIME
 * signing purpose (RFC 8550 s4.4), and against CRLs when configured. */
static enum sg_sig_status verify_chain(X509 *signer, STACK_OF(X509) *untrusted,
				       struct sg_x509_key *const *anchors, size_t n, time_t now,
				       const struct sg_smime_revocation *rev, struct sg_cms_verify_info *info)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	enum sg_sig_status sig = SG_SIG_UNKNOWN_SIGNER;

	if (store == NULL || ctx == NULL)
		goto out;
	for (size_t i = 0; i < n; i++)
		X509_STORE_add_cert(store, anchors[i]->cert);
	if (X509_STORE_CTX_init(ctx, store, signer, untrusted) != 1)
		goto out;
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SMIME_SIGN);
	X509_STORE_CTX_set_time(ctx, 0, now);
	enable_crls(ctx, rev);
	if (X509_verify_cert(ctx) == 1) {
		sig = SG_SIG_VALID;
		goto out;
	}
	info->detail = chain_detail(ctx);
	switch (X509_STORE_CTX_get_error(ctx)) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		sig = SG_SIG_KEY_EXPIRED;
		break;
	case X509_V_ERR_CERT_REVOKED:
		sig = SG_SIG_KEY_REVOKED;
		break;
	case X509_V_ERR_UNABLE_TO_GET_CRL: /* none held from the issuer (require) */
	case X509_V_ERR_CRL_HAS_EXPIRED:   /* a stale one: the next may be fetched */
	case X509_V_ERR_CRL_NOT_YET_VALID:
		info->revocation_unknown = true;
		sig = SG_SIG_UNKNOWN_SIGNER;
		break;
	default:
		sig = SG_SIG_UNKNOWN_SIGNER;
	}
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return sig;
}

/* eContent of an opaque SignedData, unverified. */
static int opaque_content(CMS_ContentInfo *cms, struct sg_buf *out,
			  enum sg_crypto_status *status_r, struct sg_error *err)
{
	ASN1_OCTET_STRING **pos = CMS_get0_content(cms);

	if (pos == NULL || *pos == NULL) {
		*status_r = SG_CRYPTO_MALFORMED;
		sg_error_set(err, "cms verify: SignedData without content");
		return -1;
	}
	if (!sg_buf_append(out, ASN1_STRING_get0_data(*pos), (size_t)ASN1_STRING_length(*pos))) {
		*status_r = SG_CRYPTO_INTERNAL;
		sg_error_set(err, "cms verify: content too large");
		return -1;
	}
	return 1;
}

/* Detached content for CMS_verify behind a pass-through filter: given a
 * memory BIO, OpenSSL 3.0 copies it into a BIO of its own, which it leaks
 * when the SignedData names a digest it cannot set up. */
static BIO *content_bio(const unsigned char *content, size_t len)
{
	BIO *mem = mem_bio(content, len), *f = mem != NULL ? BIO_new(BIO_f_null()) : NULL;

	if (f == NULL) {
		BIO_free(mem);
		return NULL;
	}
	return BIO_push(f, mem);
}

int sg_cms_verify(const unsigned char *der, size_t der_len,
		  const unsigned char *content, size_t content_len,
		  struct sg_x509_key *const *anchors, size_t n_anchors, time_t now,
		  const struct sg_smime_revocation *rev,
		  struct sg_buf *content_out, struct sg_cms_verify_info *info_r,
		  enum sg_crypto_status *status_r, struct sg_error *err)
{
	CMS_ContentInfo *cms = cms_parse(der, der_len);
	STACK_OF(X509) *extra = sk_X509_new_null(), *embedded = NULL, *signers = NULL;
	const size_t saved = content_out != NULL ? content_out->len : 0;
	BIO *dcont = NULL, *plain = NULL;
	int ret = -1;

	memset(info_r, 0, sizeof(*info_r));
	*status_r = SG_CRYPTO_OK;
	if (cms == NULL || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		fail(status_r, SG_CRYPTO_MALFORMED, err, "cms verify: not SignedData");
		goto out;
	}
	if ((content != NULL) != (CMS_is_detached(cms) == 1)) {
		*status_r = SG_CRYPTO_MALFORMED;
		sg_error_set(err, "cms verify: %s", content != NULL ? "SignedData carries content"
			     : "detached SignedData without content");
		goto out;
	}
	if (sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 1) {
		*status_r = SG_CRYPTO_UNSUPPORTED;
		sg_error_set(err, "cms verify: exactly one signer supported");
		goto out;
	}
	/* opaque: the content streams into content_out, taken back below
	 * unless the signature holds */
	if (content == NULL)
		plain = sink_bio(content_out);
	if (extra == NULL || (content == NULL && plain == NULL) ||
	    (content != NULL && (dcont = content_bio(content, content_len)) == NULL)) {
		fail(status_r, SG_CRYPTO_INTERNAL, err, "cms verify");
		goto out;
	}
	for (size_t i = 0; i < n_anchors; i++)
		sk_X509_push(extra, anchors[i]->cert);
	/* First the signature over the content alone: BAD means changed content. */
	if (CMS_verify(cms, extra, NULL, dcont, plain, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
		unsigned long e = ERR_peek_last_error();
		ossl_error(err, "cms verify");
		if (ERR_GET_REASON(e) != CMS_R_SIGNER_CERTIFICATE_NOT_FOUND) {
			info_r->sig = SG_SIG_BAD;
			ret = 1;
			goto out;
		}
		/* No certificate to check the signature with: the content is
		 * passed on as from an unknown signer, like any unverifiable one. */
		info_r->sig = SG_SIG_UNKNOWN_SIGNER;
		if (content == NULL)
			buf_rollback(content_out, saved);
		ret = content == NULL ? opaque_content(cms, content_out, status_r, err) : 1;
		goto out;
	}
	signers = CMS_get0_signers(cms);
	embedded = CMS_get1_certs(cms);
	if (signers == NULL || sk_X509_num(signers) != 1) {
		fail(status_r, SG_CRYPTO_INTERNAL, err, "cms verify: signer");
		goto out;
	}
	X509 *signer = sk_X509_value(signers, 0);
	info_r->signer = signer_name(signer);
	info_r->sig = verify_chain(signer, embedded, anchors, n_anchors, now, rev, info_r);
	ret = 1;
out:
	if (content_out != NULL && content == NULL && (ret < 0 || info_r->sig == SG_SIG_BAD))
		buf_rollback(content_out, saved);
	ERR_clear_error();
	sk_X509_free(signers);
	sk_X509_pop_free(embedded, X509_free);
	sk_X509_free(extra);
	BIO_free_all(dcont);
	BIO_free(plain);
	CMS_ContentInfo_free(cms);
	return ret;
}

void sg_cms_verify_info_clear(struct sg_cms_verify_info *info)
{
	free(info->signer);
	info->signer = NULL;
	free(info->detail);
	info->detail = NULL;
	info->sig = SG_SIG_NONE;
	info->revocation_unknown = false;
}
