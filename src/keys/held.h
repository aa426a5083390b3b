/* Keys held for approval (key_change = hold): a directory gave a different
 * key for a known address; the old one stays in use until an admin decides. */
#ifndef SG_KEYS_HELD_H
#define SG_KEYS_HELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct sg_store;

/* Held rows are the cache table's "pending:SOURCE" rows (keys/cache.c). */
#define SG_KEYS_PENDING_PREFIX "pending:"

/* One held key. All strings owned. */
struct sg_keys_held {
	char *addr;
	char *source;            /* where it came from: "wkd", "ldap", "dns" */
	char *trust;
	char *kind;              /* "pgp" or "x509" */
	char *fingerprint;       /* "?" when the key no longer parses */
	int64_t fetched_at;
};

/* Held keys of addr (NULL: every address). 1 some, 0 none, -1 error. */
int sg_keys_held_list(struct sg_store *store, const char *addr, struct sg_keys_held **held_r,
		      size_t *n_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_keys_held_free(struct sg_keys_held **held, size_t n);

/* Decide on the held keys of addr that include fingerprint (hex, any
 * case). approve: they become addr's keys from their source, fetched now,
 * valid for ttl seconds (the old ones are no longer used once a gateway
 * re-reads the address); reject: they are dropped (a directory that keeps
 * serving them has them held again, loudly). 1 done, 0 no such held key
 * (err says so), -1 store error. */
int sg_keys_held_resolve(struct sg_store *store, const char *addr, const char *fingerprint,
			 bool approve, int64_t now, int64_t ttl, struct sg_error *err) SG_WARN_UNUSED;

#endif
