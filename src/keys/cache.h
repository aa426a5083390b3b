/* The remote-key cache: an in-process table over the store's cache table,
 * with TTLs, negative entries, refresh-ahead marks and single-flight. */
#ifndef SG_KEYS_CACHE_H
#define SG_KEYS_CACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys/remote.h"
#include "util/error.h"

struct sg_store;
struct sg_keys_cache;

/* store may be NULL (memory only); borrowed. store_lock (NULL: the
 * cache's own) is held around each use of store. */
struct sg_keys_cache *sg_keys_cache_new(struct sg_store *store, pthread_mutex_t *store_lock);
void sg_keys_cache_free(struct sg_keys_cache **c);

/* What sg_keys_cache_begin decided. */
enum sg_keys_cache_state {
	SG_CACHE_HIT = 1,        /* *keys_r / result filled from the cache */
	SG_CACHE_FETCH,          /* the caller must fetch, then call _end */
	SG_CACHE_REFRESH,        /* a hit, and the caller should refresh ahead (then _end) */
};

/* Look addr up at time now. A fresh entry is a hit (result 1 with a copy
 * of the keys, or 0 negative); an entry past refresh_at (a fraction of its
 * TTL) is a hit that also elects the caller to refresh it. Otherwise the
 * caller becomes the one fetcher for addr (SG_CACHE_FETCH), or waits up to
 * deadline_ms (CLOCK_MONOTONIC ms) for the fetch under way and takes its
 * result — including its error. -1: error (waiting timed out, store). */
int sg_keys_cache_begin(struct sg_keys_cache *c, const char *addr, int64_t now,
			int64_t deadline_ms, bool bypass, enum sg_keys_cache_state *state_r,
			int *result_r, struct sg_keys_found **keys_r, size_t *n_r,
			struct sg_error *err) SG_WARN_UNUSED;

/* The fetcher reports: result 1 (keys borrowed, copied), 0 negative, -1
 * error (err's message handed to waiters, nothing cached). ttl seconds.
 * keep false: hand the result to waiters only (a partial look-up, e.g.
 * one source asked, must not become the address's cached answer). */
void sg_keys_cache_end(struct sg_keys_cache *c, const char *addr, int64_t now, int result,
		       const struct sg_keys_found *keys, size_t n, int64_t ttl, bool keep,
		       const struct sg_error *err);

/* The positive keys last known for addr (memory, else the store, fresh
 * or not): for key-change detection. 1 with an owned copy, 0 none. */
int sg_keys_cache_known(struct sg_keys_cache *c, const char *addr, struct sg_keys_found **keys_r,
			size_t *n_r);
/* The keys packed in a store row (one row may hold several: LDAP gives a
 * certificate and an OpenPGP key), appended to *keys_r. 1, or -1 if the
 * row is corrupt. */
struct sg_store_cache;
int sg_keys_cache_unpack(const struct sg_store_cache *row, struct sg_keys_found **keys_r,
			 size_t *n_r);
/* Pack keys into a store row (addr, source) and write it (the caller holds
 * the store's lock). 1 or -1. */
int sg_keys_cache_store_row(struct sg_store *store, const char *addr, const char *source,
			    const char *trust, int64_t now, int64_t ttl,
			    const struct sg_keys_found *keys, size_t n,
			    struct sg_error *err) SG_WARN_UNUSED;
/* Source of the rows harvested from Autocrypt headers (keys/lookup.h):
 * kept beside the cache's answer, used only when nothing else is. */
#define SG_KEYS_HARVEST_SOURCE "autocrypt"
/* Keep a held (pending) key beside the one in use: store row "pending:SOURCE". */
void sg_keys_cache_put_pending(struct sg_keys_cache *c, const char *addr, int64_t now,
			       const struct sg_keys_found *keys, size_t n);

/* Monotonic milliseconds (deadlines). */
int64_t sg_keys_now_ms(void);
struct sg_keys_found *sg_keys_found_copy(const struct sg_keys_found *keys, size_t n);

#endif
