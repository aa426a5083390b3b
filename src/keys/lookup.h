/* Finding the key to encrypt to (or verify with) for an address: the one
 * call the policy engine and delivery make. The local store first, then the
 * remote chain (cache, then lookup_order's sources within lookup_budget).
 * Safe to call from worker threads. */
#ifndef SG_KEYS_LOOKUP_H
#define SG_KEYS_LOOKUP_H

#include <pthread.h>
#include <time.h>

#include "crypto/crypto.h"
#include "util/error.h"

struct sg_store;
struct sg_config;
struct sg_keys_lookup;
struct sg_keys_remote;

/* Flags for sg_keys_lookup_new. */
enum {
	/* The local store only, never the network (delivery to local users:
	 * their keys are in the store, and a look-up would leak who gets mail). */
	SG_LOOKUP_LOCAL = 1 << 0,
};

/* store is borrowed for the lookup's lifetime; cfg is read here only (may
 * be freed afterwards; NULL: local store only). store_lock (may be NULL:
 * the lookup's own) is held around every use of the store connection by
 * the lookup and its cache, never while a directory is asked: pass the
 * lock with which the caller guards its own use of the same connection
 * (the SQLite driver's prepared statements are per connection, not
 * thread-safe). Never NULL: a bad remote configuration (lookup_order) is
 * logged and then reported as the reason of each look-up that needs it. */
struct sg_keys_lookup *sg_keys_lookup_new(struct sg_store *store, const struct sg_config *cfg,
					  pthread_mutex_t *store_lock, unsigned flags);
void sg_keys_lookup_free(struct sg_keys_lookup **lk);

/* A key addr can be encrypted to now, of kind pref if there is a usable one
 * of that kind, else of the other kind (pref 0: no preference, OpenPGP
 * first). The local store wins; the remote chain is asked only when the
 * store has no usable key. 1 with *key_r (owned by the caller); 0 if there
 * is none, with *status_r (NO_KEY, KEY_EXPIRED, KEY_REVOKED, BAD_KEY) and
 * err saying why ("bob@b.test: key 1A2B... expired 2026-01-01", "no key for
 * bob@b.test (key lookup bob@b.test: wkd: ...)": a failed directory is a
 * missing key with its reason, for policy to treat); -1 on a store error. */
int sg_keys_find_encrypt(struct sg_keys_lookup *lk, const char *addr, enum sg_key_kind pref,
			 time_t now, struct sg_key **key_r, enum sg_crypto_status *status_r,
			 struct sg_error *err) SG_WARN_UNUSED;

/* Autocrypt (Level 1) harvest from an inbound message: with
 * autocrypt_authserv_id set, a message whose From domain passed DKIM at
 * that verifier (its Authentication-Results field) and that carries one
 * Autocrypt header for its From address has that key stored with trust
 * "harvested". Such keys are used only when neither the store nor a
 * directory has a usable key. 1 stored, 0 not (the reason is logged). */
struct sg_msg_view;
int sg_keys_lookup_harvest(struct sg_keys_lookup *lk, const struct sg_msg_view *v, time_t now);
/* Whether sg_keys_lookup_harvest could store anything from v: harvesting
 * is on and v has an Autocrypt field. Reads only the header section. */
bool sg_keys_lookup_may_harvest(const struct sg_keys_lookup *lk, const struct sg_msg_view *v);

/* The remote chain (NULL when local only or none configured): tests and
 * tools (fetch counts). Borrowed. */
struct sg_keys_remote *sg_keys_lookup_remote(struct sg_keys_lookup *lk);

#endif
