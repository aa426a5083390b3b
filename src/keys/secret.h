/* Users' secret keys kept in the key store, sealed under the master key:
 * opening them, the key an address signs with, the keys to decrypt with. */
#ifndef SG_KEYS_SECRET_H
#define SG_KEYS_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "crypto/crypto.h"
#include "keys/keystore.h"
#include "util/error.h"

struct sg_store;
struct sg_store_key;
struct sg_master_key;

/* Secret keys are stored under the purposes of keys/keystore.h:
 * SG_KEYS_PGP_SECRET (binary transferable secret key) and
 * SG_KEYS_SMIME_SECRET (PKCS#8 PEM; its certificate is the public row). */

/* The master key: derived from passphrase when it is not NULL, else read
 * from file (NULL or "": none configured, -1 saying how to make one). A key
 * file inside state_dir is refused: a copy of the state dir alone must not
 * open the private keys. 1 or -1. */
int sg_keys_master_load(const char *file, const char *passphrase, const char *state_dir,
			struct sg_master_key **mk_r, struct sg_error *err) SG_WARN_UNUSED;

/* The secret key stored for a public key row (purpose by its kind), opened
 * with mk and loaded. 1 with *key_r (owned); 0 none stored, or it does not
 * load or has no secret part (reason in why); -1 store error, wrong master
 * key or tampered row (err). */
int sg_keys_open_secret(struct sg_store *store, const struct sg_master_key *mk,
			const struct sg_store_key *row, struct sg_key **key_r,
			struct sg_error *why, struct sg_error *err) SG_WARN_UNUSED;

/* A stored secret key of kind that addr can sign with at now: 1 with
 * *key_r (owned); 0 none (err says why: none stored, expired, ...); -1 on
 * a store or master key error. */
int sg_keys_find_signer(struct sg_store *store, const struct sg_master_key *mk, const char *addr,
			enum sg_key_kind kind, time_t now, struct sg_key **key_r,
			struct sg_error *err) SG_WARN_UNUSED;

/* Which stored keys to open: called with each public key of kind. */
typedef bool sg_keys_secret_filter(const struct sg_key *pub, void *ctx);

/* The stored secret keys of kind whose public key passes filter (NULL:
 * every one), appended to *keys_r / *n_r (owned; free each with
 * sg_key_free, then the array). Only matching rows are opened with the
 * master key. Returns the number appended, or -1 on a store or master key
 * error. */
int sg_keys_find_secrets(struct sg_store *store, const struct sg_master_key *mk, enum sg_key_kind kind,
			 sg_keys_secret_filter *filter, void *ctx, struct sg_key ***keys_r, size_t *n_r,
			 struct sg_error *err) SG_WARN_UNUSED;

/* Called with one opened secret: row is the public row it belongs to,
 * plain/len its plaintext (borrowed; wiped after the call). Return 1 to
 * stop (found), 0 to go on (why: the reason this one did not do), -1 to
 * stop with an error in why. */
typedef int sg_keys_secret_fn(void *ctx, const struct sg_store_key *row,
			      const unsigned char *plain, size_t len, struct sg_error *why);

/* For each key of addr of kind ("pgp", "x509") that has a sealed secret
 * under purpose: open it with mk and call fn. The caller serialises store
 * access. *n_opened_r (may be NULL): secrets opened. 1 fn stopped with 1;
 * 0 fn never did (err: the last reason, or "no secret key stored"); -1
 * store, master key (wrong key, tampered row) or fn error. */
int sg_keys_each_secret(struct sg_store *store, const struct sg_master_key *mk, const char *addr,
			const char *kind, const char *purpose, sg_keys_secret_fn *fn, void *ctx,
			size_t *n_opened_r, struct sg_error *err) SG_WARN_UNUSED;

#endif
