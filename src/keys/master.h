/* The master key that encrypts private keys at rest (AES-256-GCM): read
 * from a 0600 key file kept off the mail volume, or derived from a
 * passphrase given at start (scrypt). The store only sees sealed blobs. */
#ifndef SG_KEYS_MASTER_H
#define SG_KEYS_MASTER_H

#include <stddef.h>

#include "util/error.h"

#define SG_MASTER_KEY_LEN 32

struct sg_master_key;

/* Create a new key file with 32 random bytes, mode 0600; refuses to
 * overwrite an existing file. 1 or -1. */
int sg_master_key_create_file(const char *path, struct sg_error *err) SG_WARN_UNUSED;
/* Load a key file. Refused: not a regular file, group/world-accessible,
 * not exactly 32 bytes. */
int sg_master_key_load_file(const char *path, struct sg_master_key **mk_r,
			    struct sg_error *err) SG_WARN_UNUSED;
/* A passphrase-based master key: each blob gets its own salt and the
 * AES key is derived with scrypt (N=2^15, r=8, p=1). The passphrase is
 * copied (and wiped on free). */
int sg_master_key_from_passphrase(const char *passphrase, struct sg_master_key **mk_r,
				  struct sg_error *err) SG_WARN_UNUSED;
/* Wipe and free; sets *mk to NULL. */
void sg_master_key_free(struct sg_master_key **mk);

/* Encrypt plaintext into an owned blob. The AAD binds the blob to the
 * row it is stored in (owner, fingerprint, purpose): a blob copied into
 * another row does not decrypt. */
int sg_master_seal(const struct sg_master_key *mk, const char *owner, const char *fingerprint,
		   const char *purpose, const void *plain, size_t plain_len, unsigned char **blob_r,
		   size_t *blob_len_r, struct sg_error *err) SG_WARN_UNUSED;
/* Decrypt; the plaintext is owned by the caller (free with
 * sg_secret_free). -1 with a message that tells a different master key
 * apart from a tampered or misplaced blob. */
int sg_master_open(const struct sg_master_key *mk, const char *owner, const char *fingerprint,
		   const char *purpose, const unsigned char *blob, size_t blob_len,
		   unsigned char **plain_r, size_t *plain_len_r, struct sg_error *err) SG_WARN_UNUSED;

#endif
