/* Keys found for addresses, reused for a short time by the policy engine and
 * delivery: loading and checking an OpenPGP key (its self-signatures) costs more CPU
 * than sealing a small message. Entries are shared by worker threads. */
#ifndef SG_KEYS_KEYCACHE_H
#define SG_KEYS_KEYCACHE_H

#include <stddef.h>

#include "crypto/crypto.h"

struct sg_keycache;
struct sg_keycache_entry;

/* ttl seconds (0: nothing is kept, every put is a private entry); at most
 * max entries (the oldest goes first). */
struct sg_keycache *sg_keycache_new(unsigned ttl, size_t max);
/* Entries still held by users stay valid until they are released. */
void sg_keycache_free(struct sg_keycache **c);

/* The live entry for (addr, tag), referenced for the caller; NULL on a
 * miss. addr is compared as given (normalise first). */
struct sg_keycache_entry *sg_keycache_get(struct sg_keycache *c, const char *addr, int tag);
/* Takes key; returns its entry, referenced for the caller. */
struct sg_keycache_entry *sg_keycache_put(struct sg_keycache *c, const char *addr, int tag,
					  struct sg_key *key);
/* The key of an entry: borrowed while the reference is held. */
struct sg_key *sg_keycache_key(const struct sg_keycache_entry *e);
/* Drop the caller's reference; sets *e to NULL. */
void sg_keycache_release(struct sg_keycache_entry **e);

#endif
