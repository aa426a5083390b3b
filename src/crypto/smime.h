/* S/MIME keys (X.509 certificate + optional private key + chain) and the
 * CMS layer over OpenSSL 3 (RFC 5652, RFC 5083, RFC 8551): bytes in, DER out. */
#ifndef SG_CRYPTO_SMIME_H
#define SG_CRYPTO_SMIME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "crypto/crypto.h"
#include "mime/seal.h"
#include "util/buf.h"
#include "util/error.h"

/* cert + optional private key + chain. Opaque. */
struct sg_x509_key;

/* PEM/DER cert, PEM cert+key (+ chain), PKCS#12 (passphrase, may be NULL).
 * data is copied. */
int sg_x509_key_load_mem(const void *data, size_t len, const char *passphrase,
			 struct sg_x509_key **key_r, enum sg_crypto_status *status_r,
			 struct sg_error *err) SG_WARN_UNUSED;
/* SHA-256 of the certificate's DER, upper-case hex; borrowed. */
const char *sg_x509_key_fingerprint(const struct sg_x509_key *k);
bool sg_x509_key_has_secret(const struct sg_x509_key *k);
/* 1 if a subjectAltName rfc822Name or subject emailAddress equals addr
 * (local part exact, domain case-insensitive), 0 if not. */
int sg_x509_key_matches_addr(const struct sg_x509_key *k, const char *addr);
/* 1 usable now; 0 not (status_r KEY_EXPIRED, BAD_KEY, UNSUPPORTED) with err.
 * Checks the validity window, keyUsage/extKeyUsage (emailProtection) and
 * that the key type is one CMS in OpenSSL 3.0 handles (RSA 2048-4096,
 * EC P-256). */
int sg_x509_key_usable(const struct sg_x509_key *k, bool for_sign, time_t now,
		       enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_x509_key_free(struct sg_x509_key **k);

/* ---- CMS layer: no MIME here. DER in and out. ---- */

enum sg_cms_cipher {
	SG_CMS_AES256_CBC = 1, /* EnvelopedData (RFC 5652 s6): no integrity */
	SG_CMS_AES256_GCM,     /* AuthEnvelopedData (RFC 5083, RFC 5084) */
};

enum sg_cms_kind {
	SG_CMS_KIND_ENVELOPED = 1,
	SG_CMS_KIND_AUTH_ENVELOPED,
	SG_CMS_KIND_SIGNED,
};
/* What a DER blob is: an sg_cms_kind, or 0 if none of those / not CMS. */
int sg_cms_kind(const unsigned char *der, size_t len);

/* Encrypt data to every recipient certificate (borrowed). BER
 * (indefinite-length, as CMS_STREAM writes it) appended to der_out.
 * 1 ok; -1 with status_r/err. */
int sg_cms_encrypt(const unsigned char *data, size_t len,
		   struct sg_x509_key *const *recips, size_t n_recips,
		   enum sg_cms_cipher cipher, struct sg_buf *der_out,
		   enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;

/* Streaming: content goes in by pieces (sg_cms_write), the encoding is
 * appended to out as it is produced, raw or (base64) as RFC 2045 base64 in
 * 76-character CRLF lines. Nothing whole is buffered but a detached
 * signature. sg_cms_finish completes and frees the writer; on any failure
 * (and sg_cms_writer_free before finishing) out is rolled back to its
 * length at begin. out must outlive the writer. */
struct sg_cms_writer;
int sg_cms_encrypt_begin(struct sg_x509_key *const *recips, size_t n_recips,
			 enum sg_cms_cipher cipher, bool base64, struct sg_buf *out,
			 struct sg_cms_writer **w_r, enum sg_crypto_status *status_r,
			 struct sg_error *err) SG_WARN_UNUSED;
/* SignedData, SHA-256: detached gives DER once finished (for
 * multipart/signed), opaque streams BER with the content inside. */
int sg_cms_sign_begin(const struct sg_x509_key *signer, bool detached, bool base64,
		      struct sg_buf *out, struct sg_cms_writer **w_r,
		      enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;
int sg_cms_write(struct sg_cms_writer *w, const void *data, size_t len,
		 struct sg_error *err) SG_WARN_UNUSED;
int sg_cms_finish(struct sg_cms_writer **w, enum sg_crypto_status *status_r,
		  struct sg_error *err) SG_WARN_UNUSED;
void sg_cms_writer_free(struct sg_cms_writer **w);

/* Bytes per base64 line: 57 bytes make 76 characters (RFC 2045 s6.8). */
#define SG_B64_LINE_BYTES 57
/* data as base64 in 76-character CRLF lines, appended to out; 0 when out
 * is full. */
int sg_base64_lines_append(const void *data, size_t len, struct sg_buf *out) SG_WARN_UNUSED;

struct sg_cms_decrypt_info {
	bool authenticated;        /* AuthEnvelopedData tag checked */
	const struct sg_x509_key *key; /* the key (from keys[]) that decrypted; borrowed */
	bool key_expired;          /* that key's certificate is outside its validity */
};

/* Decrypt EnvelopedData/AuthEnvelopedData DER with the first of keys[]
 * (secret parts needed) that a RecipientInfo names. Nothing is appended to
 * out unless decryption (and the GCM tag) succeeded. 1 ok; -1 with
 * status_r WRONG_KEY, TAMPERED, MALFORMED, NO_KEY, UNSUPPORTED. */
int sg_cms_decrypt(const unsigned char *der, size_t len,
		   struct sg_x509_key *const *keys, size_t n_keys, time_t now,
		   struct sg_buf *out, struct sg_cms_decrypt_info *info_r,
		   enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;

/* The same with the DER in der (freed here). For sealgate's BER shape
 * (chunked encryptedContent) the ciphertext is not copied by the parser:
 * it is decrypted where it lies in der, and when out is empty the
 * plaintext is written over it and der's buffer becomes out (out's max
 * still applies). Otherwise der is freed as soon as it is parsed. */
int sg_cms_decrypt_buf(struct sg_buf *der, struct sg_x509_key *const *keys, size_t n_keys,
		       time_t now, struct sg_buf *out, struct sg_cms_decrypt_info *info_r,
		       enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;

/* SignedData with SHA-256 (RFC 5652 s5, RFC 8551 s2.5 attributes).
 * detached: eContent omitted (for multipart/signed). 1 ok; -1. */
int sg_cms_sign(const unsigned char *data, size_t len, const struct sg_x509_key *signer,
		bool detached, struct sg_buf *der_out,
		enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;

struct sg_cms_verify_info {
	enum sg_sig_status sig;    /* VALID, BAD, UNKNOWN_SIGNER, KEY_EXPIRED, KEY_REVOKED */
	char *signer;              /* e-mail or subject of the signer cert; owned */
	char *detail;              /* why the chain did not verify (OpenSSL's reason and the
				    * certificate), NULL when it did; owned */
	bool revocation_unknown;   /* UNKNOWN_SIGNER because no current CRL was held for the
				    * chain (require): the check failed for now, RFC 8601 temperror */
};

/* Certificate revocation for signature verification: CRLs (RFC 5280 s5).
 * off: none; crl: checked against the CRLs held, a certificate whose
 * issuer has none passes; require: every certificate of the chain needs a
 * current CRL from its issuer, else the signer is not trusted (the reason
 * says "unable to get certificate CRL"). */
enum sg_smime_revocation_mode {
	SG_REVOCATION_OFF = 0,
	SG_REVOCATION_CRL,
	SG_REVOCATION_REQUIRE,
};
struct sg_smime_revocation;
/* mode: "off", "crl" or "require"; crl_files: PEM/DER CRL files, space
 * separated (may be NULL or empty); crl_dir: every regular file in it is
 * read as CRLs (NULL or empty: none). A file without a CRL is an error. */
int sg_smime_revocation_load(const char *mode, const char *crl_files, const char *crl_dir,
			     struct sg_smime_revocation **rev_r, struct sg_error *err) SG_WARN_UNUSED;
enum sg_smime_revocation_mode sg_smime_revocation_mode(const struct sg_smime_revocation *rev);
void sg_smime_revocation_free(struct sg_smime_revocation **rev);

/* Verify SignedData DER. content/content_len: the detached content (NULL
 * for opaque, whose content is then appended to content_out unless the
 * signature is BAD: the bytes are intact even when the signer is unknown). anchors: trusted certificates (borrowed); the chain
 * is built from them plus certificates in the SignedData and checked
 * against rev's CRLs (NULL: no revocation check). Returns 1 when
 * the structure was parsed (info_r->sig says the verdict), -1 with status_r
 * MALFORMED/INTERNAL otherwise. Free info_r->signer with
 * sg_cms_verify_info_clear(). */
int sg_cms_verify(const unsigned char *der, size_t der_len,
		  const unsigned char *content, size_t content_len,
		  struct sg_x509_key *const *anchors, size_t n_anchors, time_t now,
		  const struct sg_smime_revocation *rev,
		  struct sg_buf *content_out, struct sg_cms_verify_info *info_r,
		  enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_cms_verify_info_clear(struct sg_cms_verify_info *info);

/* ---- Message level (src/mime/smime-mime.c) ---- */

/* Same contract as sg_seal/sg_unseal (mime/seal.h) for SG_SEAL_SMIME;
 * recipients/keys hold sg_key handles of kind SG_KEY_X509 (others are
 * skipped when unsealing). Unseal peels every S/MIME layer (decrypt, then
 * verify what is inside) before anything reaches out. Signature verdicts
 * go to res->sig and return 1; with SG_SIG_BAD nothing is written to out.
 * res->authenticated is true only for AuthEnvelopedData (AES-GCM); AES-CBC
 * EnvelopedData also gets a res->warning saying it has no integrity.
 * Decrypt failures: WRONG_KEY (no RecipientInfo for our certificates),
 * TAMPERED (GCM tag / content), MALFORMED (not CMS, truncated, bad base64). */
int sg_smime_seal(const unsigned char *msg, size_t len, const struct sg_seal_req *req,
		  struct sg_buf *out, enum sg_seal_outcome *outcome_r,
		  enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;
int sg_smime_unseal(const unsigned char *msg, size_t len, const struct sg_unseal_req *req,
		    struct sg_buf *out, struct sg_unseal_result *res,
		    enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;

#endif
