/* The remote look-up chain: the cache first, then the configured sources
 * in order within one time budget; every fetched blob is checked here. */
#include "keys/remote.h"
#include "keys/cache.h"
#include "config/config.h"
#include "crypto/crypto.h"
#include "keys/pgp-meta.h"
#include "util/log.h"
#include "util/mem.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SOURCES 8

struct sg_keys_remote {
	struct sg_keys_cache *cache;
	struct sg_keys_source sources[MAX_SOURCES];
	size_t n_sources;
	char *only;
	bool no_cache;
	bool hold;               /* key_change = hold */
	int64_t ttl, neg_ttl;
	unsigned budget_ms;      /* for refreshes ahead */
	int64_t (*now)(void);
	pthread_mutex_t lock;    /* fetches, background threads */
	pthread_cond_t idle;
	unsigned background;     /* refresh-ahead threads running */
	uint64_t fetches;
};

/* --- Checks on fetched blobs --- */

long sg_keys_pgp_count_packets(const void *data, size_t len, long max)
{
	const unsigned char *p = data, *end = p + len;
	long n = 0;

	while (p < end) {
		size_t hdr, body;
		unsigned char tag = p[0];
		size_t left = (size_t)(end - p);
		if (!(tag & 0x80))
			return -1;
		if (tag & 0x40) {       /* new format, RFC 4880 4.2.2 */
			if (left < 2)
				return -1;
			unsigned char o = p[1];
			if (o < 192) {
				hdr = 2; body = o;
			} else if (o < 224) {
				if (left < 3)
					return -1;
				hdr = 3; body = ((size_t)(o - 192) << 8) + p[2] + 192;
			} else if (o == 255) {
				if (left < 6)
					return -1;
				hdr = 6;
				body = ((size_t)p[2] << 24) | ((size_t)p[3] << 16) | ((size_t)p[4] << 8) | p[5];
			} else {
				return -1;      /* partial lengths: never in a key (4.2.2.4) */
			}
		} else {                /* old format, 4.2.1 */
			static const size_t lensz[4] = { 1, 2, 4, 0 };
			size_t l = lensz[tag & 3];
			if (l == 0 || left < 1 + l)
				return -1;      /* indeterminate length: not in a key */
			hdr = 1 + l;
			body = 0;
			for (size_t i = 0; i < l; i++)
				body = (body << 8) | p[1 + i];
		}
		if (body > left - hdr)
			return -1;
		p += hdr + body;
		if (++n > max)
			return -1;
	}
	return n;
}

static bool armored(const unsigned char *p, size_t len)
{
	static const char pfx[] = "-----BEGIN PGP PUBLIC KEY BLOCK";
	size_t i = 0;
	while (i < len && i < 64 && isspace(p[i]))
		i++;
	return len - i >= sizeof(pfx) - 1 && memcmp(p + i, pfx, sizeof(pfx) - 1) == 0;
}

/* OpenPGP: binary (de-armored when needed), packet count capped before
 * the key is parsed, then the user ID must name addr. */
static int check_pgp(const char *addr, const unsigned char *data, size_t len,
		     struct sg_keys_found *out, struct sg_error *err)
{
	struct sg_pgp_meta meta = { 0 };
	struct sg_key *key = NULL;
	enum sg_crypto_status st;
	const unsigned char *bin = data;
	size_t binlen = len;
	int r = 0;

	if (armored(data, len)) {
		if (sg_pgp_meta_read(data, len, &meta, err) < 0)
			goto out;
		bin = meta.public_data;
		binlen = meta.public_len;
	}
	long packets = sg_keys_pgp_count_packets(bin, binlen, SG_KEYS_MAX_PACKETS);
	if (packets < 0) {
		sg_error_set(err, "malformed OpenPGP data or more than %d packets (key flooding)",
			     SG_KEYS_MAX_PACKETS);
		goto out;
	}
	if (sg_key_load_mem(bin, binlen, NULL, &key, &st, err) != 1 || key == NULL)
		goto out;
	if (sg_key_kind(key) != SG_KEY_PGP || sg_key_has_secret(key)) {
		sg_error_set(err, "not an OpenPGP public key");
		goto out;
	}
	if (sg_key_matches_addr(key, addr) != 1) {
		sg_error_set(err, "key %s has no user ID for %s", sg_key_fingerprint(key), addr);
		goto out;
	}
	out->kind = sg_strdup("pgp");
	out->data = sg_malloc(binlen);
	memcpy(out->data, bin, binlen);
	out->len = binlen;
	r = 1;
out:
	sg_key_free(&key);
	sg_pgp_meta_clear(&meta);
	return r;
}

static int check_x509(const char *addr, const unsigned char *data, size_t len,
		      struct sg_keys_found *out, struct sg_error *err)
{
	struct sg_key *key = NULL;
	enum sg_crypto_status st;
	int r = 0;

	if (sg_key_load_mem(data, len, NULL, &key, &st, err) != 1 || key == NULL)
		goto out;
	if (sg_key_kind(key) != SG_KEY_X509 || sg_key_has_secret(key)) {
		sg_error_set(err, "not a certificate");
		goto out;
	}
	if (sg_key_matches_addr(key, addr) != 1) {
		sg_error_set(err, "certificate %s has no e-mail address %s", sg_key_fingerprint(key),
			     addr);
		goto out;
	}
	out->kind = sg_strdup("x509");
	out->data = sg_malloc(len);
	memcpy(out->data, data, len);
	out->len = len;
	r = 1;
out:
	sg_key_free(&key);
	return r;
}

int sg_keys_check_blob(const char *addr, const void *data, size_t len, struct sg_keys_found *out,
		       struct sg_error *err)
{
	const unsigned char *p = data;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > SG_KEYS_MAX_RESPONSE) {
		sg_error_set(err, "key of %zu bytes refused (limit %d)", len, SG_KEYS_MAX_RESPONSE);
		return 0;
	}
	if (p[0] == 0x30)       /* DER SEQUENCE: a certificate */
		return check_x509(addr, p, len, out, err);
	if ((p[0] & 0x80) || armored(p, len))
		return check_pgp(addr, p, len, out, err);
	sg_error_set(err, "neither an OpenPGP key nor a DER certificate");
	return 0;
}

/* --- The chain --- */

static int64_t wall_now(void)
{
	return (int64_t)time(NULL);
}

static int add_configured(struct sg_keys_remote *r, const struct sg_config *cfg, const char *name,
			  struct sg_error *err)
{
	static const struct {
		const char *name;
		int (*make)(const struct sg_config *, struct sg_keys_source *, struct sg_error *);
	} makers[] = {
		{ "wkd", sg_keys_source_wkd },
		{ "ldap", sg_keys_source_ldap },
		{ "dns", sg_keys_source_dns },
	};
	for (size_t i = 0; i < sizeof(makers) / sizeof(makers[0]); i++) {
		if (strcmp(makers[i].name, name) != 0)
			continue;
		struct sg_keys_source src;
		if (makers[i].make(cfg, &src, err) < 0) {
			sg_error_prefix(err, "%s", name);
			return -1;
		}
		sg_keys_remote_add_source(r, &src);
		return 1;
	}
	sg_error_set(err, "lookup_order: unknown source '%s' (wkd, ldap, dns)", name);
	return -1;
}

struct sg_keys_remote *sg_keys_remote_new(struct sg_store *store, pthread_mutex_t *store_lock,
					  const struct sg_config *cfg, struct sg_error *err)
{
	struct sg_keys_remote *r = sg_calloc(1, sizeof(*r));
	char *order = sg_strdup(cfg->lookup_order != NULL ? cfg->lookup_order : "");
	char *save = NULL;

	r->cache = sg_keys_cache_new(store, store_lock);
	r->hold = cfg->key_change != NULL && strcmp(cfg->key_change, "hold") == 0;
	r->ttl = cfg->lookup_cache_ttl;
	r->neg_ttl = cfg->lookup_negative_ttl;
	r->budget_ms = cfg->lookup_budget * 1000;
	r->now = wall_now;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->idle, NULL);
	for (char *t = strtok_r(order, " \t,", &save); t != NULL; t = strtok_r(NULL, " \t,", &save)) {
		/* LDAP without a directory configured is simply not in the chain. */
		if (strcmp(t, "ldap") == 0 && (cfg->ldap_uri == NULL || *cfg->ldap_uri == '\0'))
			continue;
		if (r->n_sources == MAX_SOURCES || add_configured(r, cfg, t, err) < 0) {
			if (r->n_sources == MAX_SOURCES)
				sg_error_set(err, "lookup_order: too many sources");
			sg_keys_remote_free(&r);
			break;
		}
	}
	free(order);
	return r;
}

void sg_keys_remote_free(struct sg_keys_remote **rp)
{
	struct sg_keys_remote *r = *rp;
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	while (r->background > 0)
		pthread_cond_wait(&r->idle, &r->lock);
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < r->n_sources; i++)
		if (r->sources[i].free != NULL)
			r->sources[i].free(r->sources[i].ctx);
	sg_keys_cache_free(&r->cache);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->idle);
	free(r->only);
	free(r);
	*rp = NULL;
}

void sg_keys_remote_set_only(struct sg_keys_remote *r, const char *only)
{
	free(r->only);
	r->only = only != NULL ? sg_strdup(only) : NULL;
}

void sg_keys_remote_set_no_cache(struct sg_keys_remote *r, bool no_cache)
{
	r->no_cache = no_cache;
}

void sg_keys_remote_add_source(struct sg_keys_remote *r, const struct sg_keys_source *src)
{
	if (r->n_sources == MAX_SOURCES)
		sg_panic("too many key sources");
	r->sources[r->n_sources++] = *src;
}

uint64_t sg_keys_remote_fetch_count(struct sg_keys_remote *r)
{
	pthread_mutex_lock(&r->lock);
	uint64_t n = r->fetches;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void sg_keys_remote_set_clock(struct sg_keys_remote *r, int64_t (*now)(void))
{
	r->now = now != NULL ? now : wall_now;
}

/* Keep the blobs that pass the checks, tagged with their source. */
static size_t keep_checked(const struct sg_keys_source *src, const char *addr,
			   struct sg_keys_found *blobs, size_t n, struct sg_keys_found *out)
{
	size_t kept = 0;
	for (size_t i = 0; i < n && kept < SG_KEYS_MAX_KEYS; i++) {
		struct sg_error err = SG_ERROR_INIT;
		struct sg_keys_found *k = &out[kept];
		if (sg_keys_check_blob(addr, blobs[i].data, blobs[i].len, k, &err) == 1) {
			k->source = sg_strdup(src->name);
			k->trust = sg_strdup(src->trust);
			kept++;
		} else {
			sg_log_warn("key lookup: %s: %s: key refused: %s", addr, src->name,
				    sg_error_msg(&err));
		}
		sg_error_clear(&err);
	}
	return kept;
}

/* Ask the sources in order until one has a key that passes the checks.
 * 1 keys, 0 every source answered "none", -1 a source failed (and none had
 * a key) or the budget ran out. */
static int fetch_chain(struct sg_keys_remote *r, const char *addr, int64_t deadline_ms,
		       struct sg_keys_found **keys_r, size_t *n_r, struct sg_error *err)
{
	int ret = 0;
	bool tried = false;

	pthread_mutex_lock(&r->lock);
	r->fetches++;
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < r->n_sources; i++) {
		const struct sg_keys_source *src = &r->sources[i];
		struct sg_keys_found *blobs = NULL;
		size_t nb = 0;
		struct sg_error serr = SG_ERROR_INIT;

		if (r->only != NULL && strcmp(r->only, src->name) != 0)
			continue;
		tried = true;
		int64_t left = deadline_ms - sg_keys_now_ms();
		if (left <= 0) {
			sg_error_set(err, "time budget spent before %s", src->name);
			return -1;
		}
		int s = src->fetch(src->ctx, addr, (unsigned)left, &blobs, &nb, &serr);
		if (s < 0) {
			sg_log_warn("key lookup: %s: %s: %s", addr, src->name, sg_error_msg(&serr));
			sg_error_set(err, "%s: %s", src->name, sg_error_msg(&serr));
			ret = -1;
		} else if (s > 0) {
			struct sg_keys_found *kept = sg_calloc(SG_KEYS_MAX_KEYS, sizeof(*kept));
			size_t nk = keep_checked(src, addr, blobs, nb, kept);
			if (nk > 0) {
				sg_keys_found_free(&blobs, nb);
				sg_error_clear(&serr);
				*keys_r = kept;
				*n_r = nk;
				return 1;
			}
			free(kept);
		}
		sg_keys_found_free(&blobs, nb);
		sg_error_clear(&serr);
	}
	if (!tried && r->only != NULL) {
		sg_error_set(err, "source %s is not configured", r->only);
		return -1;
	}
	return ret;
}

static bool same_keys(const struct sg_keys_found *a, size_t na, const struct sg_keys_found *b,
		      size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].len != b[i].len || memcmp(a[i].data, b[i].data, a[i].len) != 0)
			return false;
	return true;
}

/* A different key for an address known from an earlier fetch: say so
 * loudly; with key_change = hold keep using the old one and park the new
 * one for approval. Returns the keys to use (*keys and *n may be replaced). */
static void key_change(struct sg_keys_remote *r, const char *addr, int64_t now,
		       struct sg_keys_found **keys, size_t *n)
{
	struct sg_keys_found *old = NULL;
	size_t nold = 0;

	if (sg_keys_cache_known(r->cache, addr, &old, &nold) != 1)
		return;
	if (!same_keys(old, nold, *keys, *n)) {
		sg_log_warn("KEY CHANGE: %s: %s now gives a different key than the one known from %s%s",
			    addr, (*keys)[0].source, old[0].source,
			    r->hold ? "; the new key is HELD for approval, the old one stays in use" :
				      "; the new key is used");
		if (r->hold) {
			sg_keys_cache_put_pending(r->cache, addr, now, *keys, *n);
			sg_keys_found_free(keys, *n);
			*keys = old;
			*n = nold;
			return;
		}
	}
	sg_keys_found_free(&old, nold);
}

static int fetch_and_fill(struct sg_keys_remote *r, const char *addr, int64_t deadline_ms,
			  struct sg_keys_found **keys_r, size_t *n_r, struct sg_error *err)
{
	struct sg_keys_found *keys = NULL;
	size_t n = 0;
	int64_t now = r->now();

	int res = fetch_chain(r, addr, deadline_ms, &keys, &n, err);
	if (res == 1)
		key_change(r, addr, now, &keys, &n);
	sg_keys_cache_end(r->cache, addr, now, res, keys, n, res == 1 ? r->ttl : r->neg_ttl,
			  r->only == NULL, err);
	if (keys_r != NULL && res == 1) {
		*keys_r = keys;
		*n_r = n;
	} else {
		sg_keys_found_free(&keys, n);
	}
	return res;
}

struct refresh_job {
	struct sg_keys_remote *r;
	char *addr;
};

static void *refresh_main(void *arg)
{
	struct refresh_job *job = arg;
	struct sg_keys_remote *r = job->r;
	struct sg_error err = SG_ERROR_INIT;

	if (fetch_and_fill(r, job->addr, sg_keys_now_ms() + r->budget_ms, NULL, NULL, &err) < 0)
		sg_log_warn("key lookup: %s: refresh ahead failed: %s", job->addr, sg_error_msg(&err));
	sg_error_clear(&err);
	free(job->addr);
	free(job);
	pthread_mutex_lock(&r->lock);
	r->background--;
	pthread_cond_broadcast(&r->idle);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* Refresh ahead in a detached thread: the caller already has its answer. */
static void refresh_ahead(struct sg_keys_remote *r, const char *addr)
{
	struct refresh_job *job = sg_calloc(1, sizeof(*job));
	pthread_t t;
	pthread_attr_t attr;

	job->r = r;
	job->addr = sg_strdup(addr);
	pthread_mutex_lock(&r->lock);
	r->background++;
	pthread_mutex_unlock(&r->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, refresh_main, job) != 0) {
		struct sg_error err = SG_ERROR_INIT;
		sg_error_set(&err, "no thread for refresh");
		sg_keys_cache_end(r->cache, addr, r->now(), -1, NULL, 0, 0, true, &err);
		sg_error_clear(&err);
		free(job->addr);
		free(job);
		pthread_mutex_lock(&r->lock);
		r->background--;
		pthread_cond_broadcast(&r->idle);
		pthread_mutex_unlock(&r->lock);
	}
	pthread_attr_destroy(&attr);
}

/* Addresses are compared in lower case (the cache key); local parts are
 * case-sensitive in theory (RFC 5321 2.4) but not among key directories. */
static char *norm_addr(const char *addr, struct sg_error *err)
{
	const char *at = strrchr(addr, '@');
	if (at == NULL || at == addr || at[1] == '\0' || strlen(addr) > 320) {
		sg_error_set(err, "'%s' is not an address", addr);
		return NULL;
	}
	char *a = sg_strdup(addr);
	for (char *p = a; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			sg_error_set(err, "address contains a control character or space");
			free(a);
			return NULL;
		}
		*p = (char)tolower((unsigned char)*p);
	}
	return a;
}

int sg_keys_remote_find(struct sg_keys_remote *r, const char *addr, unsigned budget_ms,
			struct sg_keys_found **keys_r, size_t *n_r, struct sg_error *err)
{
	enum sg_keys_cache_state state;
	int res = -1;
	int64_t deadline = sg_keys_now_ms() + budget_ms;
	char *a = norm_addr(addr, err);

	*keys_r = NULL;
	*n_r = 0;
	if (a == NULL)
		goto out;
	if (sg_keys_cache_begin(r->cache, a, r->now(), deadline, r->no_cache || r->only != NULL,
				&state, &res, keys_r,
				n_r, err) < 0) {
		res = -1;
		goto out;
	}
	if (state == SG_CACHE_REFRESH)
		refresh_ahead(r, a);
	else if (state == SG_CACHE_FETCH)
		res = fetch_and_fill(r, a, deadline, keys_r, n_r, err);
out:
	if (res < 0)
		sg_error_prefix(err, "key lookup %s", addr);
	free(a);
	return res;
}
