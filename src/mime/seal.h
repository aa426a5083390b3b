/* Sealing and unsealing whole RFC 5322 messages: PGP/MIME (RFC 3156) and
 * S/MIME (RFC 8551), with header protection. Input and output are the
 * message's bytes with CRLF line endings. */
#ifndef SG_MIME_SEAL_H
#define SG_MIME_SEAL_H

#include <stdbool.h>
#include <stddef.h>

#include "crypto/crypto.h"
#include "util/buf.h"
#include "util/error.h"

struct sg_smime_revocation;

enum sg_seal_format { SG_SEAL_PGP = 1, SG_SEAL_SMIME = 2 };

struct sg_seal_req {
	enum sg_seal_format format;
	struct sg_key *const *recipients; /* encrypt to these; n_recipients == 0: sign only */
	size_t n_recipients;
	const struct sg_key *signer;      /* sign with this (secret part needed); NULL: no signature */
	const char *neutral_subject;      /* outer Subject when encrypting; NULL: "..." */
	bool smime_gcm;                   /* S/MIME: AuthEnvelopedData AES-256-GCM (else EnvelopedData AES-256-CBC) */
	bool smime_opaque;                /* S/MIME sign only: opaque signed-data (else multipart/signed) */
};

enum sg_seal_outcome {
	SG_SEAL_SEALED = 1,           /* output is the sealed message */
	SG_SEAL_ALREADY_ENCRYPTED,    /* input was already encrypted: output is the input, unchanged */
};

/* Seal msg into out (appended). 1 on success; -1 with *status_r and err. */
int sg_seal(const unsigned char *msg, size_t len, const struct sg_seal_req *req,
	    struct sg_buf *out, enum sg_seal_outcome *outcome_r,
	    enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;

enum sg_sig_status {
	SG_SIG_NONE = 0,     /* not signed */
	SG_SIG_VALID,
	SG_SIG_BAD,          /* the signature does not verify: content changed */
	SG_SIG_UNKNOWN_SIGNER,
	SG_SIG_KEY_EXPIRED,
	SG_SIG_KEY_REVOKED,
};

struct sg_unseal_req {
	struct sg_key *const *keys;       /* secret keys to decrypt with */
	size_t n_keys;
	struct sg_key *const *verify_keys; /* known signers' keys / S/MIME trust anchors */
	size_t n_verify_keys;
	/* S/MIME: CRLs to check signer chains against (crypto/smime.h); NULL: none */
	const struct sg_smime_revocation *smime_revocation;
};

struct sg_unseal_result {
	bool was_encrypted;
	bool authenticated;          /* integrity protected (MDC/AEAD/GCM); false for AES-CBC EnvelopedData */
	enum sg_sig_status sig;
	char *signer;                /* fingerprint or certificate subject/e-mail; owned */
	char *decrypted_with;        /* fingerprint of the key used; owned */
	char *warning;               /* e.g. "decrypted with an expired key"; owned */
	bool revocation_unknown;     /* S/MIME: sig is UNKNOWN_SIGNER only because the signer's
				      * revocation status could not be checked (no current CRL) */
};

/* Unseal msg into out. Nothing is written to out unless the integrity
 * check passed. 1 on success; -1 with *status_r and err. */
int sg_unseal(const unsigned char *msg, size_t len, const struct sg_unseal_req *req,
	      struct sg_buf *out, struct sg_unseal_result *res,
	      enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_unseal_result_clear(struct sg_unseal_result *res);

#endif
