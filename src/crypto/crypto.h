/* The one internal crypto API: keys of either standard behind one handle,
 * and the failure classes every caller (CLI exit codes, SMTP replies, logs)
 * tells apart. OpenPGP lives in crypto/pgp.c (librnp), S/MIME in
 * crypto/smime.c (OpenSSL CMS); nothing outside crypto/ calls either
 * library for crypto. */
#ifndef SG_CRYPTO_CRYPTO_H
#define SG_CRYPTO_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/error.h"

/* Why a crypto operation failed. Each has its own CLI exit code. */
enum sg_crypto_status {
	SG_CRYPTO_OK = 0,
	SG_CRYPTO_NO_KEY,          /* no key for a recipient / no secret key to decrypt */
	SG_CRYPTO_BAD_KEY,         /* key unusable: corrupt, wrong type, cannot encrypt/sign */
	SG_CRYPTO_KEY_EXPIRED,     /* recipient or signer key expired */
	SG_CRYPTO_KEY_REVOKED,     /* recipient or signer key revoked */
	SG_CRYPTO_WRONG_KEY,       /* message not encrypted to any key we have */
	SG_CRYPTO_TAMPERED,        /* integrity check failed (MDC/AEAD/GCM tag, bad signature) */
	SG_CRYPTO_UNKNOWN_SIGNER,  /* signature by a key we do not know / untrusted chain */
	SG_CRYPTO_MALFORMED,       /* input is not what it claims to be */
	SG_CRYPTO_UNSUPPORTED,     /* valid, but an algorithm or format we refuse */
	SG_CRYPTO_INTERNAL,        /* library or I/O failure */
};

const char *sg_crypto_status_name(enum sg_crypto_status st);

enum sg_key_kind { SG_KEY_PGP = 1, SG_KEY_X509 = 2 };

/* One certificate/public key, optionally with its secret part:
 * an OpenPGP transferable key or an X.509 certificate (+ private key,
 * + chain). Opaque; owned by whoever loaded it. */
struct sg_key;

/* Load from a file: armored or binary OpenPGP (public or secret), PEM or
 * DER certificate, PEM private key + certificate in one file, PKCS#12.
 * passphrase (may be NULL) unlocks protected secret keys / PKCS#12. */
int sg_key_load_file(const char *path, const char *passphrase, struct sg_key **key_r,
		     enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;
int sg_key_load_mem(const void *data, size_t len, const char *passphrase, struct sg_key **key_r,
		    enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;
/* An X.509 private key (PEM, e.g. PKCS#8) and its certificate (PEM or
 * DER) kept apart, as the key store does, loaded as one handle. */
int sg_key_load_x509_parts(const void *key_pem, size_t key_len, const void *cert, size_t cert_len,
			   struct sg_key **key_r, enum sg_crypto_status *status_r,
			   struct sg_error *err) SG_WARN_UNUSED;
/* A certificate (PEM or DER) appended to out as PEM: for readers that take
 * PEM only (the CMS re-wrap party). 1 or -1. */
struct sg_buf;
int sg_x509_cert_pem(const unsigned char *cert, size_t len, struct sg_buf *out,
		     struct sg_error *err) SG_WARN_UNUSED;
enum sg_key_kind sg_key_kind(const struct sg_key *key);
bool sg_key_has_secret(const struct sg_key *key);
/* Upper-case hex fingerprint (OpenPGP v4 fingerprint, or SHA-256 of the
 * certificate's DER); borrowed. */
const char *sg_key_fingerprint(const struct sg_key *key);
/* 1 if the key has a user ID / certificate e-mail address equal to addr
 * (case-insensitive domain), 0 if not. */
int sg_key_matches_addr(const struct sg_key *key, const char *addr);
/* Can this key be used to encrypt to (sign with) right now? 1 yes; 0 no
 * with *status_r (EXPIRED, REVOKED, BAD_KEY) and err saying why. */
int sg_key_usable_for_encrypt(const struct sg_key *key, time_t now,
			      enum sg_crypto_status *status_r, struct sg_error *err);
int sg_key_usable_for_sign(const struct sg_key *key, time_t now,
			   enum sg_crypto_status *status_r, struct sg_error *err);
void sg_key_free(struct sg_key **key);

/* The key inside the handle, for crypto/pgp.c and crypto/smime.c
 * (borrowed; NULL when the key is of the other kind). */
struct sg_pgp_key;
struct sg_x509_key;
struct sg_pgp_key *sg_key_pgp(const struct sg_key *key);
struct sg_x509_key *sg_key_x509(const struct sg_key *key);

#endif
