/* The key store on top of store/: normalises addresses, fills the WKD
 * columns, and keeps private keys sealed under the master key. */
#ifndef SG_KEYS_KEYSTORE_H
#define SG_KEYS_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct sg_store;
struct sg_master_key;

/* Purposes under which users' secret keys are sealed: OpenPGP transferable
 * secret keys (binary), S/MIME private keys (PKCS#8 PEM). */
#define SG_KEYS_PGP_SECRET "pgp-secret"
#define SG_KEYS_SMIME_SECRET "smime-secret"

/* Lower-cased copy of addr, or NULL (with err) if it is no address. */
char *sg_keys_normalize_addr(const char *addr, struct sg_error *err);

/* Store a public key or certificate for addr (kind "pgp" or "x509");
 * data is copied. */
int sg_keys_put_public(struct sg_store *store, const char *addr, const char *fingerprint,
		       const char *kind, int64_t expires, const char *source, const char *trust,
		       const void *data, size_t len, struct sg_error *err) SG_WARN_UNUSED;

/* Seal plain under mk (AAD = owner, fingerprint, purpose) and store it. */
int sg_keys_put_private(struct sg_store *store, const struct sg_master_key *mk,
			const char *owner, const char *fingerprint, const char *purpose,
			const void *plain, size_t len, struct sg_error *err) SG_WARN_UNUSED;
/* 1 with the plaintext (free with sg_secret_free(plain_r, *len_r + 1)),
 * 0 if there is no such row, -1 on error (wrong master key, tampering). */
int sg_keys_get_private(struct sg_store *store, const struct sg_master_key *mk,
			const char *owner, const char *fingerprint, const char *purpose,
			unsigned char **plain_r, size_t *len_r, struct sg_error *err) SG_WARN_UNUSED;

#endif
