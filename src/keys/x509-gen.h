/* S/MIME key generation for `sealgate key generate --smime`: a key pair and
 * a self-signed certificate for one address (RFC 8550/8551 profile). */
#ifndef SG_KEYS_X509_GEN_H
#define SG_KEYS_X509_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct sg_x509_gen {
	char *algo;                 /* "RSA 3072", "EC P-256" */
	int64_t expires;            /* notAfter, unix time */
	unsigned char *cert_der;    /* the certificate, DER */
	size_t cert_len;
	unsigned char *key_pem;     /* PKCS#8 PEM private key, unencrypted (sealed by the
				     * caller under the master key); wiped on clear */
	size_t key_len;
};

/* type "rsa3072" or "p256"; valid for days. The certificate names addr in
 * subjectAltName rfc822Name (RFC 8550 3: agents match on it), keyUsage for
 * the key type (RSA: digitalSignature, keyEncipherment; EC:
 * digitalSignature, keyAgreement), extKeyUsage emailProtection,
 * basicConstraints CA:FALSE. 1, or -1 with err. */
int sg_x509_generate(const char *addr, const char *type, unsigned days, struct sg_x509_gen *gen_r,
		     struct sg_error *err) SG_WARN_UNUSED;
void sg_x509_gen_clear(struct sg_x509_gen *gen);

#endif
