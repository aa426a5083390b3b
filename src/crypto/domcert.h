/* Certificates for gateway-to-gateway domain keys (doc/domain.md): P-256
 * keys, a self-signed long-term signing certificate and short-lived
 * encryption certificates it issues, over OpenSSL 3 (RFC 5280). */
#ifndef SG_CRYPTO_DOMCERT_H
#define SG_CRYPTO_DOMCERT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/buf.h"
#include "util/error.h"

/* certificatePolicies OID every sealgate domain certificate carries (a
 * UUID OID, ITU-T X.667 / RFC 4122 s4.2.2 style: no registration needed). */
#define SG_DOMCERT_POLICY_OID "2.25.84859085239361052124330028062365043558"
/* At most this many certificates in one peer bundle (one signing
 * certificate, a few weeks of short-lived ones). */
#define SG_DOMCERT_MAX_CERTS 64

struct sg_domcert_req {
	const char *const *domains;  /* SAN dNSName entries; domains[0] also in the CN */
	size_t n_domains;
	time_t not_before, not_after;
	bool signing;                /* long-term: self-signed CA (keyCertSign, digitalSignature) */
	const char *issuer_pem;      /* short-lived: the long-term certificate + key (PEM) */
	size_t issuer_len;
	const char *issuer_pass;     /* passphrase of the issuer key (NULL: none) */
	const char *key_pass;        /* encrypt the new key's PKCS#8 PEM with this (NULL: plain) */
};

/* A new P-256 key and its certificate. *cert_pem_r and *key_pem_r are
 * owned NUL-terminated PEM (free the key with sg_secret_free(key, len+1)).
 * 1 or -1. */
int sg_domcert_issue(const struct sg_domcert_req *req, char **cert_pem_r, size_t *cert_len_r,
		     char **key_pem_r, size_t *key_len_r, struct sg_error *err) SG_WARN_UNUSED;

/* What a domain certificate says. Strings owned; clear with sg_domcert_info_clear. */
struct sg_domcert_info {
	char *fpr;                   /* SHA-256 of the DER, upper-case hex (= sg_key_fingerprint) */
	char **domains;              /* SAN dNSName entries, lower-case */
	size_t n_domains;
	time_t not_before, not_after;
	bool ca;                     /* basicConstraints CA:TRUE */
	bool domain_policy;          /* carries SG_DOMCERT_POLICY_OID */
	unsigned char *der;          /* the certificate */
	size_t der_len;
};
/* Parse one certificate (DER or PEM). 1, or -1 malformed. */
int sg_domcert_info(const void *data, size_t len, struct sg_domcert_info *info_r,
		    struct sg_error *err) SG_WARN_UNUSED;
void sg_domcert_info_clear(struct sg_domcert_info *info);
/* 1 if some dNSName of info equals domain (case-insensitive), else 0. */
int sg_domcert_names(const struct sg_domcert_info *info, const char *domain);

/* 1 if cert (DER) names issuer (DER) as its issuer and its signature
 * verifies with issuer's key; 0 if not (reason in err). */
int sg_domcert_issued_by(const unsigned char *cert, size_t cert_len, const unsigned char *issuer,
			 size_t issuer_len, struct sg_error *err) SG_WARN_UNUSED;

/* Every certificate in a PEM text, as DER: *ders_r owned array of *n_r
 * entries (free with sg_domcert_ders_free). Anything between the PEM
 * blocks is ignored; a broken block, no block, or more than max is -1. */
struct sg_domcert_der {
	unsigned char *der;
	size_t len;
};
int sg_domcert_split_pem(const void *pem, size_t len, size_t max, struct sg_domcert_der **ders_r,
			 size_t *n_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_domcert_ders_free(struct sg_domcert_der **ders, size_t n);
/* The long-term signing key for sealing: its certificate and private key
 * loaded once. The SignedData it makes carries no certificates (the
 * receiver has the sender domain's signing certificate pinned, or takes
 * it from the sender's bundle), so the receiver never parses one per
 * message (doc/domain.md). */
struct sg_domcert_signer;
/* cert_pem then key_pem (PKCS#8, pass may be NULL). 1 or -1. */
int sg_domcert_signer_load(const void *cert_pem, size_t cert_len, const void *key_pem,
			   size_t key_len, const char *pass, struct sg_domcert_signer **s_r,
			   struct sg_error *err) SG_WARN_UNUSED;
void sg_domcert_signer_free(struct sg_domcert_signer **s);
/* Opaque CMS SignedData (RFC 5652 s5) over data, SHA-256, without
 * certificates or S/MIME capabilities, as DER appended to der_out. 1 or -1. */
int sg_domcert_sign(const struct sg_domcert_signer *s, const unsigned char *data, size_t len,
		    struct sg_buf *der_out, struct sg_error *err) SG_WARN_UNUSED;

/* A peer domain's trusted signing certificate, parsed once. */
struct sg_domcert_cert;
int sg_domcert_cert_load(const unsigned char *der, size_t len, struct sg_domcert_cert **c_r,
			 struct sg_error *err) SG_WARN_UNUSED;
void sg_domcert_cert_free(struct sg_domcert_cert **c);
enum sg_domcert_sig {
	SG_DOMCERT_SIG_VALID = 0,
	SG_DOMCERT_SIG_BAD,          /* the signed content or attributes changed */
	SG_DOMCERT_SIG_OTHER_SIGNER, /* not signed by the trusted certificate */
	SG_DOMCERT_SIG_EXPIRED,      /* the trusted certificate is not valid at now */
};
/* Verify an opaque SignedData against the one trusted certificate (its
 * signer must be that certificate: certificates the message carries are
 * ignored, so no chain is built per message). 1 with *sig_r (the content
 * appended to content_out only when VALID), -1 not a SignedData (err). */
int sg_domcert_verify(const struct sg_domcert_cert *trusted, const unsigned char *der, size_t len,
		      time_t now, struct sg_buf *content_out, enum sg_domcert_sig *sig_r,
		      struct sg_error *err) SG_WARN_UNUSED;

/* DER certificate to PEM, appended to out. 1 or -1. */
int sg_domcert_der_to_pem(const unsigned char *der, size_t len, struct sg_buf *out,
			  struct sg_error *err) SG_WARN_UNUSED;

#endif
