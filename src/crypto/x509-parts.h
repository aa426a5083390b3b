/* An S/MIME key file (PEM certificate + optional private key) split into
 * what the key store keeps apart: the certificate and the sealed key. */
#ifndef SG_CRYPTO_X509_PARTS_H
#define SG_CRYPTO_X509_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct sg_x509_parts {
	unsigned char *cert_der;    /* the first certificate, DER */
	size_t cert_len;
	int64_t expires;            /* its notAfter, unix time */
	unsigned char *key_pem;     /* its private key as unencrypted PKCS#8 PEM (the
				     * store seals it under the master key); NULL when the
				     * file has none; wiped on clear */
	size_t key_len;
};

/* Read pem (borrowed): the first certificate and, when the text holds one,
 * the private key (decrypted with passphrase, may be NULL), which must match
 * the certificate. A private key that cannot be read is an error, never a
 * silent "no key". 1, or -1 with err. */
int sg_x509_parts_read(const void *pem, size_t len, const char *passphrase,
		       struct sg_x509_parts *parts_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_x509_parts_clear(struct sg_x509_parts *parts);

#endif
