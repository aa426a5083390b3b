/* Splitting a PEM certificate + private key for the key store (rekey
 * --store-new): DER certificate, PKCS#8 PEM key, over OpenSSL. */
#include "crypto/x509-parts.h"
#include "crypto/ossl-reason.h"
#include "util/mem.h"
#include "util/secret.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A PEM private-key block of any kind (PKCS#8, encrypted PKCS#8, "RSA
 * PRIVATE KEY", "EC PRIVATE KEY"): then reading it must succeed. */
static bool has_key_block(const void *pem, size_t len)
{
	static const char tag[] = "PRIVATE KEY-----";
	return memmem(pem, len, tag, sizeof(tag) - 1) != NULL;
}

static int read_cert(const void *pem, size_t len, struct sg_x509_parts *p, X509 **x_r,
		     struct sg_error *err)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	unsigned char *der = NULL;
	struct tm tm;
	int n = 0;
	*x_r = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (*x_r == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(*x_r), &tm) != 1 ||
	    (n = i2d_X509(*x_r, &der)) <= 0) {
		sg_ossl_reason(err, "no readable PEM certificate");
		return -1;
	}
	p->expires = (int64_t)timegm(&tm);
	p->cert_der = sg_malloc((size_t)n);
	memcpy(p->cert_der, der, (size_t)n);
	p->cert_len = (size_t)n;
	OPENSSL_free(der);
	return 1;
}

static int read_key(const void *pem, size_t len, const char *passphrase, X509 *x,
		    struct sg_x509_parts *p, struct sg_error *err)
{
	BIO *in = BIO_new_mem_buf(pem, (int)len), *out = BIO_new(BIO_s_secmem());
	EVP_PKEY *pk = in != NULL ? PEM_read_bio_PrivateKey(in, NULL, NULL, (void *)passphrase) : NULL;
	char *data = NULL;
	long n = 0;
	int ret = -1;
	if (pk == NULL) {
		sg_ossl_reason(err, "private key not readable (wrong or missing passphrase?)");
		goto out;
	}
	if (X509_check_private_key(x, pk) != 1) {
		sg_ossl_reason(err, "private key does not match the certificate");
		goto out;
	}
	if (out == NULL || PEM_write_bio_PKCS8PrivateKey(out, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (n = BIO_get_mem_data(out, &data)) <= 0) {
		sg_ossl_reason(err, "cannot write the private key as PKCS#8");
		goto out;
	}
	p->key_pem = sg_malloc((size_t)n + 1);
	memcpy(p->key_pem, data, (size_t)n);
	p->key_pem[n] = '\0';
	p->key_len = (size_t)n;
	ret = 1;
out:
	EVP_PKEY_free(pk);
	BIO_free(in);
	BIO_free(out); /* secure-heap BIO: its buffer is cleansed on free */
	return ret;
}

int sg_x509_parts_read(const void *pem, size_t len, const char *passphrase,
		       struct sg_x509_parts *parts_r, struct sg_error *err)
{
	X509 *x = NULL;
	int ret = -1;
	memset(parts_r, 0, sizeof(*parts_r));
	if (len > INT32_MAX) {
		sg_error_set(err, "key file too large");
		return -1;
	}
	if (read_cert(pem, len, parts_r, &x, err) < 0)
		goto out;
	if (has_key_block(pem, len) && read_key(pem, len, passphrase, x, parts_r, err) < 0)
		goto out;
	ret = 1;
out:
	X509_free(x);
	if (ret < 0)
		sg_x509_parts_clear(parts_r);
	return ret;
}

void sg_x509_parts_clear(struct sg_x509_parts *p)
{
	free(p->cert_der);
	if (p->key_pem != NULL)
		sg_secret_free(&p->key_pem, p->key_len + 1);
	memset(p, 0, sizeof(*p));
}
