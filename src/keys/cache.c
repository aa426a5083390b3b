/* The remote-key cache: a hash table in memory (the hot path: no store
 * access, one mutex) written through to the store's cache table. */
#include "keys/cache.h"
#include "keys/held.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_BUCKETS 4096
/* Refresh ahead once this share (percent) of the TTL has passed, so that a
 * busy address is refreshed before it expires and nobody waits for it. */
#define REFRESH_AT_PCT 80

struct entry {
	char *addr;
	uint64_t hash;
	bool valid;              /* result/keys/fetched_at/ttl set */
	int result;              /* 1 keys, 0 negative */
	struct sg_keys_found *keys;
	size_t n;
	int64_t fetched_at, ttl;
	bool inflight;           /* someone is fetching */
	uint64_t gen;            /* bumped when a fetch ends */
	int last_result;         /* that fetch's result, for waiters */
	char *last_err;
	struct entry *next;
};

struct sg_keys_cache {
	struct sg_store *store;
	pthread_mutex_t lock;    /* the table */
	/* The store connection's lock, shared with whoever else uses it
	 * (keys/lookup.h); taken inside lock, never the other way round. */
	pthread_mutex_t *store_lock;
	pthread_mutex_t own_store_lock;
	pthread_cond_t done;
	struct entry *buckets[N_BUCKETS];
};

int64_t sg_keys_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sg_keys_found_free(struct sg_keys_found **keys, size_t n)
{
	if (*keys == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free((*keys)[i].kind);
		free((*keys)[i].source);
		free((*keys)[i].trust);
		free((*keys)[i].data);
	}
	free(*keys);
	*keys = NULL;
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? sg_strdup(s) : NULL;
}

struct sg_keys_found *sg_keys_found_copy(const struct sg_keys_found *keys, size_t n)
{
	struct sg_keys_found *c = sg_calloc(n > 0 ? n : 1, sizeof(*c));
	for (size_t i = 0; i < n; i++) {
		c[i].kind = dup_or_null(keys[i].kind);
		c[i].source = dup_or_null(keys[i].source);
		c[i].trust = dup_or_null(keys[i].trust);
		c[i].data = sg_malloc(keys[i].len > 0 ? keys[i].len : 1);
		memcpy(c[i].data, keys[i].data, keys[i].len);
		c[i].len = keys[i].len;
	}
	return c;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct sg_keys_cache *sg_keys_cache_new(struct sg_store *store, pthread_mutex_t *store_lock)
{
	struct sg_keys_cache *c = sg_calloc(1, sizeof(*c));
	c->store = store;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->own_store_lock, NULL);
	c->store_lock = store_lock != NULL ? store_lock : &c->own_store_lock;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->done, &ca);
	pthread_condattr_destroy(&ca);
	return c;
}

static void entry_drop_keys(struct entry *e)
{
	sg_keys_found_free(&e->keys, e->n);
	e->n = 0;
}

void sg_keys_cache_free(struct sg_keys_cache **cp)
{
	struct sg_keys_cache *c = *cp;
	if (c == NULL)
		return;
	for (size_t i = 0; i < N_BUCKETS; i++) {
		struct entry *e = c->buckets[i];
		while (e != NULL) {
			struct entry *next = e->next;
			entry_drop_keys(e);
			free(e->addr);
			free(e->last_err);
			free(e);
			e = next;
		}
	}
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->own_store_lock);
	pthread_cond_destroy(&c->done);
	free(c);
	*cp = NULL;
}

static struct entry *entry_get(struct sg_keys_cache *c, const char *addr, bool create)
{
	uint64_t h = fnv1a(addr);
	struct entry **b = &c->buckets[h % N_BUCKETS];
	for (struct entry *e = *b; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->addr, addr) == 0)
			return e;
	if (!create)
		return NULL;
	struct entry *e = sg_calloc(1, sizeof(*e));
	e->addr = sg_strdup(addr);
	e->hash = h;
	e->next = *b;
	*b = e;
	return e;
}

/* --- The store rows: one per (addr, source); a positive row's data is a
 * sequence of [kind 'p'|'x'][u32 big-endian length][bytes] so that one
 * source may give several keys (LDAP: a certificate and an OpenPGP key). */

static unsigned char *pack(const struct sg_keys_found *keys, size_t n, size_t *len_r)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += 5 + keys[i].len;
	unsigned char *p = sg_malloc(len > 0 ? len : 1), *q = p;
	for (size_t i = 0; i < n; i++) {
		uint32_t l = (uint32_t)keys[i].len;
		*q++ = strcmp(keys[i].kind, "x509") == 0 ? 'x' : 'p';
		*q++ = (unsigned char)(l >> 24);
		*q++ = (unsigned char)(l >> 16);
		*q++ = (unsigned char)(l >> 8);
		*q++ = (unsigned char)l;
		memcpy(q, keys[i].data, keys[i].len);
		q += keys[i].len;
	}
	*len_r = len;
	return p;
}

int sg_keys_cache_unpack(const struct sg_store_cache *row, struct sg_keys_found **keys_r,
			 size_t *n_r)
{
	const unsigned char *p = row->data, *end = row->data + row->len;
	while (p < end) {
		if (end - p < 5 || *n_r >= SG_KEYS_MAX_KEYS)
			return -1;
		size_t l = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
		if ((size_t)(end - p - 5) < l || (p[0] != 'p' && p[0] != 'x'))
			return -1;
		*keys_r = sg_reallocarray(*keys_r, *n_r + 1, sizeof(**keys_r));
		struct sg_keys_found *k = &(*keys_r)[(*n_r)++];
		k->kind = sg_strdup(p[0] == 'x' ? "x509" : "pgp");
		k->source = sg_strdup(row->source);
		k->trust = sg_strdup(row->trust != NULL ? row->trust : "");
		k->data = sg_malloc(l > 0 ? l : 1);
		memcpy(k->data, p + 5, l);
		k->len = l;
		p += 5 + l;
	}
	return 1;
}

/* Rows beside the cache's answer: held keys and harvested keys are never
 * a directory's current answer. */
static bool is_side_row(const char *source)
{
	return strncmp(source, SG_KEYS_PENDING_PREFIX, strlen(SG_KEYS_PENDING_PREFIX)) == 0 ||
	       strcmp(source, SG_KEYS_HARVEST_SOURCE) == 0;
}

/* Fill e from the store's rows for addr (lock held): the newest usable
 * row wins (a later "none" overrides an older key, and a key from another
 * source replaces the old one). fresh_only: ignore rows past their TTL.
 * 1 filled, 0 nothing usable. */
static int load_from_store(struct sg_keys_cache *c, struct entry *e, int64_t now, bool fresh_only)
{
	struct sg_store_cache *rows = NULL;
	size_t n = 0;
	struct sg_error err = SG_ERROR_INIT;
	const struct sg_store_cache *best = NULL;
	struct sg_keys_found *k = NULL;
	size_t nk = 0;
	int r = 0;

	if (c->store == NULL)
		return 0;
	pthread_mutex_lock(c->store_lock);
	int got = sg_store_cache_get(c->store, e->addr, &rows, &n, &err);
	pthread_mutex_unlock(c->store_lock);
	if (got < 0) {
		sg_log_warn("key cache: %s: %s", e->addr, sg_error_msg(&err));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct sg_store_cache *row = &rows[i];
		if (is_side_row(row->source) || (fresh_only && row->fetched_at + row->ttl <= now))
			continue;
		if (best == NULL || row->fetched_at > best->fetched_at)
			best = row;
	}
	if (best == NULL)
		goto out;
	if (!best->negative && (sg_keys_cache_unpack(best, &k, &nk) < 0 || nk == 0)) {
		sg_log_warn("key cache: %s: corrupt cache row (%s) ignored", e->addr, best->source);
		sg_keys_found_free(&k, nk);
		goto out;
	}
	entry_drop_keys(e);
	e->keys = k;
	e->n = nk;
	e->result = best->negative ? 0 : 1;
	e->fetched_at = best->fetched_at;
	e->ttl = best->ttl;
	r = 1;
out:
	e->valid = r == 1;
	sg_store_cache_free(&rows, n);
	sg_error_clear(&err);
	return r;
}

int sg_keys_cache_store_row(struct sg_store *store, const char *addr, const char *source,
			    const char *trust, int64_t now, int64_t ttl,
			    const struct sg_keys_found *keys, size_t n, struct sg_error *err)
{
	size_t len = 0;
	unsigned char *data = n > 0 ? pack(keys, n, &len) : NULL;
	struct sg_store_cache row = {
		.addr = (char *)addr, .source = (char *)source, .trust = (char *)trust,
		.fetched_at = now, .ttl = ttl, .negative = n == 0, .data = data, .len = len,
	};
	int r = sg_store_cache_put(store, &row, err);
	free(data);
	return r;
}

static void store_put(struct sg_keys_cache *c, const char *addr, const char *source,
		      const char *trust, int64_t now, int64_t ttl, const struct sg_keys_found *keys,
		      size_t n)
{
	struct sg_error err = SG_ERROR_INIT;
	if (c->store != NULL) {
		pthread_mutex_lock(c->store_lock);
		int put = sg_keys_cache_store_row(c->store, addr, source, trust, now, ttl, keys, n,
						  &err);
		pthread_mutex_unlock(c->store_lock);
		if (put < 0)
			sg_log_warn("key cache: %s: %s", addr, sg_error_msg(&err));
	}
	sg_error_clear(&err);
}

static void copy_out(const struct entry *e, int *result_r, struct sg_keys_found **keys_r,
		     size_t *n_r)
{
	*result_r = e->result;
	*keys_r = e->result == 1 ? sg_keys_found_copy(e->keys, e->n) : NULL;
	*n_r = e->result == 1 ? e->n : 0;
}

static bool fresh(const struct entry *e, int64_t now)
{
	return e->valid && e->fetched_at + e->ttl > now;
}

/* Wait for the flight under way on e (lock held). 1 it ended (gen moved),
 * -1 the deadline passed. */
static int wait_flight(struct sg_keys_cache *c, struct entry *e, int64_t deadline_ms)
{
	uint64_t gen = e->gen;
	struct timespec ts = { .tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000 };
	while (e->inflight && e->gen == gen) {
		if (pthread_cond_timedwait(&c->done, &c->lock, &ts) == ETIMEDOUT)
			return e->gen != gen ? 1 : -1;
	}
	return 1;
}

int sg_keys_cache_begin(struct sg_keys_cache *c, const char *addr, int64_t now,
			int64_t deadline_ms, bool bypass, enum sg_keys_cache_state *state_r,
			int *result_r, struct sg_keys_found **keys_r, size_t *n_r,
			struct sg_error *err)
{
	int ret = 1;

	*keys_r = NULL;
	*n_r = 0;
	pthread_mutex_lock(&c->lock);
	struct entry *e = entry_get(c, addr, true);
	if (!bypass && !e->valid && !e->inflight)
		(void)load_from_store(c, e, now, true);
	if (!bypass && fresh(e, now)) {
		copy_out(e, result_r, keys_r, n_r);
		*state_r = SG_CACHE_HIT;
		if (!e->inflight && (now - e->fetched_at) * 100 >= e->ttl * REFRESH_AT_PCT) {
			e->inflight = true;
			*state_r = SG_CACHE_REFRESH;
		}
		goto out;
	}
	if (e->inflight) {
		/* Single-flight: take the result of the fetch under way. */
		if (wait_flight(c, e, deadline_ms) < 0) {
			sg_error_set(err, "timed out waiting for the look-up under way");
			ret = -1;
			goto out;
		}
		if (e->last_result < 0) {
			sg_error_set(err, "%s", e->last_err != NULL ? e->last_err : "look-up failed");
			ret = -1;
			goto out;
		}
		copy_out(e, result_r, keys_r, n_r);
		*state_r = SG_CACHE_HIT;
		goto out;
	}
	e->inflight = true;
	*state_r = SG_CACHE_FETCH;
out:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void sg_keys_cache_end(struct sg_keys_cache *c, const char *addr, int64_t now, int result,
		       const struct sg_keys_found *keys, size_t n, int64_t ttl, bool keep,
		       const struct sg_error *err)
{
	pthread_mutex_lock(&c->lock);
	struct entry *e = entry_get(c, addr, true);
	e->inflight = false;
	e->gen++;
	e->last_result = result;
	free(e->last_err);
	e->last_err = result < 0 ? sg_strdup(sg_error_msg(err)) : NULL;
	if (!keep && result >= 0) {
		/* Waiters need the keys but the entry stays as it was. */
		e->last_result = -1;
		e->last_err = sg_strdup("a partial look-up was under way; try again");
	}
	if (keep && result >= 0) {
		entry_drop_keys(e);
		e->valid = true;
		e->result = result;
		e->keys = result == 1 ? sg_keys_found_copy(keys, n) : NULL;
		e->n = result == 1 ? n : 0;
		e->fetched_at = now;
		e->ttl = ttl;
		if (result == 1)
			store_put(c, addr, keys[0].source, keys[0].trust, now, ttl, keys, n);
		else
			store_put(c, addr, "chain", "none", now, ttl, NULL, 0);
	}
	pthread_cond_broadcast(&c->done);
	pthread_mutex_unlock(&c->lock);
}

int sg_keys_cache_known(struct sg_keys_cache *c, const char *addr, struct sg_keys_found **keys_r,
			size_t *n_r)
{
	int r = 0;
	pthread_mutex_lock(&c->lock);
	struct entry *e = entry_get(c, addr, true);
	struct entry tmp = { .addr = e->addr };
	/* The store first, fresh or not: an admin's approval of a held key
	 * (keys/held.h) lands there, and must not count as a change again. */
	if (load_from_store(c, &tmp, 0, false) == 1 && tmp.result == 1) {
		*keys_r = tmp.keys;
		*n_r = tmp.n;
		r = 1;
	} else {
		entry_drop_keys(&tmp);
		if (e->valid && e->result == 1) {
			*keys_r = sg_keys_found_copy(e->keys, e->n);
			*n_r = e->n;
			r = 1;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

void sg_keys_cache_put_pending(struct sg_keys_cache *c, const char *addr, int64_t now,
			       const struct sg_keys_found *keys, size_t n)
{
	char *source = sg_asprintf(SG_KEYS_PENDING_PREFIX "%s", keys[0].source);
	pthread_mutex_lock(&c->lock);
	store_put(c, addr, source, keys[0].trust, now, 30 * 86400, keys, n);
	pthread_mutex_unlock(&c->lock);
	free(source);
}
