/* Held keys: listing the cache's pending rows with their fingerprints, and
 * the admin's approve / reject (sealgate key approve|reject). */
#include "keys/held.h"
#include "crypto/crypto.h"
#include "keys/cache.h"
#include "store/store.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sg_keys_held_free(struct sg_keys_held **held, size_t n)
{
	if (*held == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free((*held)[i].addr);
		free((*held)[i].source);
		free((*held)[i].trust);
		free((*held)[i].kind);
		free((*held)[i].fingerprint);
	}
	free(*held);
	*held = NULL;
}

/* The fingerprint of one packed key, "?" if it does not parse. */
static char *fingerprint_of(const struct sg_keys_found *k)
{
	struct sg_key *key = NULL;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;
	char *fpr = NULL;

	if (sg_key_load_mem(k->data, k->len, NULL, &key, &st, &err) == 1 && key != NULL)
		fpr = sg_strdup(sg_key_fingerprint(key));
	sg_key_free(&key);
	sg_error_clear(&err);
	return fpr != NULL ? fpr : sg_strdup("?");
}

/* Pending rows of addr (NULL: all); held keys are few. */
static int pending_rows(struct sg_store *store, const char *addr, struct sg_store_cache **rows_r,
			size_t *n_r, struct sg_error *err)
{
	struct sg_store_cache *rows = NULL;
	size_t n = 0, kept = 0;

	*rows_r = NULL;
	*n_r = 0;
	if (sg_store_cache_by_prefix(store, SG_KEYS_PENDING_PREFIX, &rows, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (addr == NULL || strcmp(rows[i].addr, addr) == 0) {
			struct sg_store_cache t = rows[kept];
			rows[kept++] = rows[i];
			rows[i] = t;
		}
	}
	/* The rows past kept are other addresses': freed with the array. */
	for (size_t i = kept; i < n; i++) {
		struct sg_store_cache *one = &rows[i];
		free(one->addr);
		free(one->source);
		free(one->trust);
		free(one->data);
	}
	*rows_r = rows;
	*n_r = kept;
	if (kept == 0)
		sg_store_cache_free(rows_r, 0);
	return kept > 0 ? 1 : 0;
}

int sg_keys_held_list(struct sg_store *store, const char *addr, struct sg_keys_held **held_r,
		      size_t *n_r, struct sg_error *err)
{
	struct sg_store_cache *rows = NULL;
	size_t n = 0;
	struct sg_keys_held *held = NULL;
	size_t nh = 0;

	*held_r = NULL;
	*n_r = 0;
	if (pending_rows(store, addr, &rows, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct sg_keys_found *keys = NULL;
		size_t nk = 0;
		(void)sg_keys_cache_unpack(&rows[i], &keys, &nk);
		for (size_t j = 0; j < nk; j++) {
			held = sg_reallocarray(held, nh + 1, sizeof(*held));
			struct sg_keys_held *h = &held[nh++];
			h->addr = sg_strdup(rows[i].addr);
			h->source = sg_strdup(rows[i].source + strlen(SG_KEYS_PENDING_PREFIX));
			h->trust = sg_strdup(rows[i].trust);
			h->kind = sg_strdup(keys[j].kind);
			h->fingerprint = fingerprint_of(&keys[j]);
			h->fetched_at = rows[i].fetched_at;
		}
		sg_keys_found_free(&keys, nk);
	}
	sg_store_cache_free(&rows, n);
	*held_r = held;
	*n_r = nh;
	return nh > 0 ? 1 : 0;
}

/* Does the packed row hold a key with this fingerprint? */
static bool row_has(const struct sg_store_cache *row, const char *fingerprint)
{
	struct sg_keys_found *keys = NULL;
	size_t nk = 0;
	bool found = false;

	(void)sg_keys_cache_unpack(row, &keys, &nk);
	for (size_t j = 0; j < nk && !found; j++) {
		char *fpr = fingerprint_of(&keys[j]);
		found = strcasecmp(fpr, fingerprint) == 0;
		free(fpr);
	}
	sg_keys_found_free(&keys, nk);
	return found;
}

/* In one transaction: the held row becomes the source's row (approve),
 * and the held row goes. */
static int apply(struct sg_store *store, const struct sg_store_cache *row, bool approve,
		 int64_t now, int64_t ttl, struct sg_error *err)
{
	struct sg_store_cache cur = *row;
	cur.source = row->source + strlen(SG_KEYS_PENDING_PREFIX);
	cur.fetched_at = now;
	cur.ttl = ttl;
	if (sg_store_begin(store, err) < 0)
		return -1;
	if ((approve && sg_store_cache_put(store, &cur, err) < 0) ||
	    sg_store_cache_delete(store, row->addr, row->source, err) < 0) {
		sg_store_rollback(store);
		return -1;
	}
	return sg_store_commit(store, err) < 0 ? -1 : 1;
}

int sg_keys_held_resolve(struct sg_store *store, const char *addr, const char *fingerprint,
			 bool approve, int64_t now, int64_t ttl, struct sg_error *err)
{
	struct sg_store_cache *rows = NULL;
	size_t n = 0;
	int r = pending_rows(store, addr, &rows, &n, err);

	if (r < 0)
		return -1;
	r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		if (row_has(&rows[i], fingerprint))
			r = apply(store, &rows[i], approve, now, ttl, err);
	if (r == 0)
		sg_error_set(err, "no held key %s for %s", fingerprint, addr);
	sg_store_cache_free(&rows, n);
	return r;
}
