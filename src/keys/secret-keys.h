/* A user's private keys as the store keeps them (sealed under the master
 * key): the master key from the config, and each stored secret opened. */
#ifndef SG_KEYS_SECRET_KEYS_H
#define SG_KEYS_SECRET_KEYS_H

#include <stddef.h>

#include "util/error.h"

struct sg_config;
struct sg_master_key;
struct sg_store;
struct sg_store_key;

/* The purpose column of sealed OpenPGP secret keys (keys/keystore.h). */
#define SG_KEYS_PGP_SECRET "pgp-secret"

/* The master key: pass_file (its first line is the scrypt passphrase) if
 * not NULL, else file if not NULL, else cfg->master_key_file. 1; -1 with
 * err (none configured, unreadable, bad mode). */
int sg_keys_master_load(const struct sg_config *cfg, const char *file, const char *pass_file,
			struct sg_master_key **mk_r, struct sg_error *err) SG_WARN_UNUSED;

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
