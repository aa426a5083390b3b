/* Finding the key to encrypt to (or verify with) for an address: the one
 * call the policy engine and delivery make. Sources are tried in order —
 * the local store now; the remote chain (cache, WKD, LDAP, DNS) plugs in
 * here with the [keys] issue's look-up work. Safe to call from worker
 * threads: calls on one lookup object are serialised. */
#ifndef SG_KEYS_LOOKUP_H
#define SG_KEYS_LOOKUP_H

#include <time.h>

#include "crypto/crypto.h"
#include "util/error.h"

struct sg_store;
struct sg_keys_lookup;

/* store is borrowed for the lookup's lifetime. */
struct sg_keys_lookup *sg_keys_lookup_new(struct sg_store *store);
void sg_keys_lookup_free(struct sg_keys_lookup **lk);

/* A key addr can be encrypted to now, of kind pref if there is a usable one
 * of that kind, else of the other kind (pref 0: no preference, OpenPGP
 * first). 1 with *key_r (owned by the caller); 0 if there is none, with
 * *status_r (NO_KEY, KEY_EXPIRED, KEY_REVOKED, BAD_KEY) and err saying why
 * ("bob@b.test: key 1A2B... expired 2026-01-01"); -1 on a store error. */
int sg_keys_find_encrypt(struct sg_keys_lookup *lk, const char *addr, enum sg_key_kind pref,
			 time_t now, struct sg_key **key_r, enum sg_crypto_status *status_r,
			 struct sg_error *err) SG_WARN_UNUSED;

#endif
