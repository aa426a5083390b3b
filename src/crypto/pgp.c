/* OpenPGP through the librnp 0.16 FFI. Operations run on a per-thread
 * rnp_ffi_t that keeps the keys imported (librnp objects are not shared
 * between threads); key metadata is read once at load time. */
#include "crypto/pgp.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/secret.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SG_PGP_DIGEST_LEN 32

struct sg_pgp_key {
	unsigned char *data; /* the key as loaded (armored or binary) */
	size_t len;
	unsigned char digest[SG_PGP_DIGEST_LEN]; /* SHA-256 of data: the cache's identity */
	char *passphrase;    /* NULL when none was given */
	char *fpr;
	char **uids;
	size_t n_uids;
	char **keyids;         /* primary and subkey IDs, upper-case hex */
	size_t n_keyids;
	bool secret;
	bool revoked;
	char *revocation_reason;
	uint64_t primary_till; /* rnp_key_valid_till64: 0 never valid, UINT64_MAX no expiry */
	uint64_t encrypt_till; /* best encryption-capable (sub)key, 0 if none */
	uint64_t sign_till;
	bool can_encrypt;
	bool can_sign;
};

/* librnp 0.16 reads RFC 4880 (v4) data only: say so when it refuses. */
#define SG_PGP_V6_HINT "librnp 0.16 supports OpenPGP v4 only (no v6 keys, no SEIPDv2 of RFC 9580)"

static const char *rnp_msg(rnp_result_t r)
{
	return rnp_result_to_string(r);
}

static void set_status(enum sg_crypto_status *status_r, enum sg_crypto_status st)
{
	if (status_r != NULL)
		*status_r = st;
}

bool sg_pgp_looks_like_key(const void *data, size_t len)
{
	const unsigned char *p = data;

	if (len >= 15 && memmem(p, len < 4096 ? len : 4096, "-----BEGIN PGP ", 15) != NULL)
		return true;
	if (len < 2 || (p[0] & 0x80) == 0)
		return false;
	/* Packet tag (RFC 4880 s4.2): 5 secret key, 6 public key. */
	unsigned tag = (p[0] & 0x40) ? (p[0] & 0x3f) : ((p[0] >> 2) & 0x0f);
	return tag == 5 || tag == 6;
}

/* ---- per-thread librnp context: the key cache of pgp.h ---- */

struct cache_entry {
	unsigned char digest[SG_PGP_DIGEST_LEN]; /* SHA-256 of the key's bytes */
	char *fpr;                               /* primary fingerprint */
	bool secret;
	uint64_t used;                           /* op number of the last use (LRU) */
};

struct op_ctx;

struct thread_cache {
	rnp_ffi_t ffi;
	rnp_ffi_t probe;          /* holds no keys: reads a message's recipients */
	struct cache_entry *e;
	size_t n;
	uint64_t seq;             /* current op number */
	struct op_ctx *op;        /* the op in progress: only its keys unlock */
	struct sg_pgp_cache_stats stats;
};

/* One operation on the thread's context: the keys it was given. */
struct op_ctx {
	struct thread_cache *tc;
	rnp_ffi_t ffi;                       /* borrowed from tc */
	const struct sg_pgp_key **pass_keys; /* owned array */
	size_t n_pass;
};

static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;
static size_t cache_limit = SG_PGP_CACHE_DEFAULT;
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;

static void entry_clear(struct cache_entry *e)
{
	free(e->fpr);
	memset(e, 0, sizeof(*e));
}

static void tc_destroy(void *p)
{
	struct thread_cache *tc = p;

	if (tc == NULL)
		return;
	for (size_t i = 0; i < tc->n; i++)
		entry_clear(&tc->e[i]);
	free(tc->e);
	/* librnp keeps secret key material in wiping (secure) allocations. */
	if (tc->ffi != NULL)
		rnp_ffi_destroy(tc->ffi);
	if (tc->probe != NULL)
		rnp_ffi_destroy(tc->probe);
	free(tc);
}

static void tc_key_init(void)
{
	if (pthread_key_create(&tc_key, tc_destroy) != 0)
		sg_panic("pgp: pthread_key_create failed");
}

static bool pass_provider(rnp_ffi_t ffi, void *app_ctx, rnp_key_handle_t key, const char *pgp_context,
			  char buf[], size_t buf_len);

/* The calling thread's cache, created on first use; NULL (err) if librnp
 * cannot make a context. */
static struct thread_cache *tc_get(bool create, struct sg_error *err)
{
	pthread_once(&tc_once, tc_key_init);
	struct thread_cache *tc = pthread_getspecific(tc_key);
	if (tc != NULL || !create)
		return tc;
	tc = sg_calloc(1, sizeof(*tc));
	if (rnp_ffi_create(&tc->ffi, "GPG", "GPG") != RNP_SUCCESS) {
		free(tc);
		sg_error_set(err, "librnp: cannot create a context");
		return NULL;
	}
	rnp_ffi_set_pass_provider(tc->ffi, pass_provider, tc);
	if (pthread_setspecific(tc_key, tc) != 0)
		sg_panic("pgp: pthread_setspecific failed");
	return tc;
}

void sg_pgp_cache_set_limit(size_t max_keys)
{
	pthread_mutex_lock(&limit_lock);
	cache_limit = max_keys > 0 ? max_keys : 1;
	pthread_mutex_unlock(&limit_lock);
}

static size_t get_limit(void)
{
	pthread_mutex_lock(&limit_lock);
	size_t n = cache_limit;
	pthread_mutex_unlock(&limit_lock);
	return n;
}

void sg_pgp_cache_stats(struct sg_pgp_cache_stats *stats_r)
{
	struct thread_cache *tc = tc_get(false, NULL);

	memset(stats_r, 0, sizeof(*stats_r));
	if (tc != NULL) {
		*stats_r = tc->stats;
		stats_r->keys = tc->n;
	}
}

void sg_pgp_cache_thread_free(void)
{
	struct thread_cache *tc = tc_get(false, NULL);

	if (tc == NULL)
		return;
	pthread_setspecific(tc_key, NULL);
	tc_destroy(tc);
}

static struct cache_entry *tc_find_fpr(struct thread_cache *tc, const char *fpr)
{
	for (size_t i = 0; i < tc->n; i++)
		if (strcasecmp(tc->e[i].fpr, fpr) == 0)
			return &tc->e[i];
	return NULL;
}

static struct cache_entry *tc_find_digest(struct thread_cache *tc, const unsigned char *digest)
{
	for (size_t i = 0; i < tc->n; i++)
		if (memcmp(tc->e[i].digest, digest, SG_PGP_DIGEST_LEN) == 0)
			return &tc->e[i];
	return NULL;
}

/* Take entry i out of the cache and its key (with subkeys) out of the ffi. */
static void tc_evict(struct thread_cache *tc, size_t i)
{
	rnp_key_handle_t h = NULL;

	if (rnp_locate_key(tc->ffi, "fingerprint", tc->e[i].fpr, &h) == RNP_SUCCESS && h != NULL) {
		rnp_key_remove(h, RNP_KEY_REMOVE_PUBLIC | RNP_KEY_REMOVE_SECRET | RNP_KEY_REMOVE_SUBKEYS);
		rnp_key_handle_destroy(h);
	}
	entry_clear(&tc->e[i]);
	tc->e[i] = tc->e[--tc->n];
	tc->stats.evictions++;
}

/* Evict least recently used entries not used by the current op until
 * there is room for one more under the limit. */
static void tc_make_room(struct thread_cache *tc)
{
	size_t limit = get_limit();

	while (tc->n >= limit) {
		size_t victim = tc->n;
		for (size_t i = 0; i < tc->n; i++)
			if (tc->e[i].used != tc->seq && (victim == tc->n || tc->e[i].used < tc->e[victim].used))
				victim = i;
		if (victim == tc->n)
			return; /* all in use by this op */
		tc_evict(tc, victim);
	}
}

/* Import k into the thread's ffi as a new cache entry. */
static int tc_import(struct thread_cache *tc, const struct sg_pgp_key *k, struct sg_error *err)
{
	rnp_input_t in = NULL;
	rnp_key_handle_t prim = NULL;
	rnp_result_t r;

	if (rnp_input_from_memory(&in, k->data, k->len, false) != RNP_SUCCESS) {
		sg_error_set(err, "librnp: cannot read key");
		return -1;
	}
	r = rnp_import_keys(tc->ffi, in, RNP_LOAD_SAVE_PUBLIC_KEYS | RNP_LOAD_SAVE_SECRET_KEYS, NULL);
	rnp_input_destroy(in);
	if (r != RNP_SUCCESS) {
		sg_error_set(err, "key %s: %s", k->fpr, rnp_msg(r));
		return -1;
	}
	if (rnp_locate_key(tc->ffi, "fingerprint", k->fpr, &prim) != RNP_SUCCESS || prim == NULL) {
		sg_error_set(err, "key %s: not found after import", k->fpr);
		return -1;
	}
	tc->e = sg_reallocarray(tc->e, tc->n + 1, sizeof(*tc->e));
	struct cache_entry *e = &tc->e[tc->n++];
	memcpy(e->digest, k->digest, sizeof(e->digest));
	e->fpr = sg_strdup(k->fpr);
	e->secret = k->secret;
	e->used = tc->seq;
	tc->stats.misses++;
	rnp_key_handle_destroy(prim);
	return 1;
}

/* Make k available in the thread's ffi for the current op. */
static int tc_use(struct thread_cache *tc, const struct sg_pgp_key *k, struct sg_error *err)
{
	struct cache_entry *e = tc_find_fpr(tc, k->fpr);

	/* Same bytes; or the op already has the secret key and now names its
	 * public part (verify keys next to decryption keys). */
	if (e != NULL && (memcmp(e->digest, k->digest, SG_PGP_DIGEST_LEN) == 0 ||
			  (e->used == tc->seq && e->secret && !k->secret))) {
		e->used = tc->seq;
		tc->stats.hits++;
		return 1;
	}
	/* Other bytes for this fingerprint (updated key, secret vs public):
	 * librnp would merge them; replace instead. */
	if (e != NULL)
		tc_evict(tc, (size_t)(e - tc->e));
	tc_make_room(tc);
	return tc_import(tc, k, err);
}

/* Among the op's keys, the secret key with this primary fingerprint. */
static const struct sg_pgp_key *find_allowed(const struct op_ctx *c, const char *fpr)
{
	for (size_t i = 0; i < c->n_pass; i++)
		if (c->pass_keys[i]->secret && strcasecmp(c->pass_keys[i]->fpr, fpr) == 0)
			return c->pass_keys[i];
	return NULL;
}

static char *primary_fpr(rnp_key_handle_t key)
{
	char *fpr = NULL;
	bool primary = true;

	if (rnp_key_is_primary(key, &primary) != RNP_SUCCESS)
		return NULL;
	if ((primary ? rnp_key_get_fprint(key, &fpr) : rnp_key_get_primary_fprint(key, &fpr)) !=
	    RNP_SUCCESS)
		return NULL;
	return fpr;
}

/* librnp asks for a (sub)key's passphrase: give it only for a secret key
 * of the op in progress. */
static bool pass_provider(rnp_ffi_t ffi, void *app_ctx, rnp_key_handle_t key, const char *pgp_context,
			  char buf[], size_t buf_len)
{
	struct thread_cache *tc = app_ctx;
	char *fpr = key != NULL && tc->op != NULL ? primary_fpr(key) : NULL;
	const struct sg_pgp_key *k = fpr != NULL ? find_allowed(tc->op, fpr) : NULL;
	bool ok = false;

	rnp_buffer_destroy(fpr);
	if (k != NULL && k->passphrase != NULL && strlen(k->passphrase) < buf_len) {
		memcpy(buf, k->passphrase, strlen(k->passphrase) + 1);
		ok = true;
	}
	return ok;
}

static int op_init(struct op_ctx *c, struct sg_error *err)
{
	memset(c, 0, sizeof(*c));
	c->tc = tc_get(true, err);
	if (c->tc == NULL)
		return -1;
	if (c->tc->op != NULL)
		sg_panic("pgp: nested operation on one thread");
	c->tc->seq++;
	c->tc->op = c;
	c->ffi = c->tc->ffi;
	return 1;
}

static int op_add_key(struct op_ctx *c, const struct sg_pgp_key *k, struct sg_error *err)
{
	if (tc_use(c->tc, k, err) < 0)
		return -1;
	c->pass_keys = sg_reallocarray(c->pass_keys, c->n_pass + 1, sizeof(*c->pass_keys));
	c->pass_keys[c->n_pass++] = k;
	return 1;
}

static void op_done(struct op_ctx *c)
{
	if (c->tc != NULL)
		c->tc->op = NULL;
	c->tc = NULL;
	c->ffi = NULL;
	free(c->pass_keys);
	c->pass_keys = NULL;
	c->n_pass = 0;
}

static rnp_key_handle_t op_locate(struct op_ctx *c, const struct sg_pgp_key *k)
{
	rnp_key_handle_t h = NULL;

	if (rnp_locate_key(c->ffi, "fingerprint", k->fpr, &h) != RNP_SUCCESS)
		return NULL;
	return h;
}

/* ---- keys ---- */

static void add_uid(struct sg_pgp_key *k, const char *uid)
{
	k->uids = sg_reallocarray(k->uids, k->n_uids + 1, sizeof(*k->uids));
	k->uids[k->n_uids++] = sg_strdup(uid);
}

static void add_keyid(struct sg_pgp_key *k, rnp_key_handle_t h)
{
	char *id = NULL;

	if (rnp_key_get_keyid(h, &id) != RNP_SUCCESS)
		return;
	k->keyids = sg_reallocarray(k->keyids, k->n_keyids + 1, sizeof(*k->keyids));
	k->keyids[k->n_keyids++] = sg_strdup(id);
	rnp_buffer_destroy(id);
}

static uint64_t key_till(rnp_key_handle_t h)
{
	uint64_t t = 0;

	if (rnp_key_valid_till64(h, &t) != RNP_SUCCESS)
		return 0;
	return t;
}

static bool allows(rnp_key_handle_t h, const char *usage)
{
	bool b = false;

	return rnp_key_allows_usage(h, usage, &b) == RNP_SUCCESS && b;
}

static bool is_revoked(rnp_key_handle_t h)
{
	bool b = false;

	return rnp_key_is_revoked(h, &b) == RNP_SUCCESS && b;
}

/* Best validity of any (sub)key that may do usage (RFC 4880 s5.2.3.21). */
static void usage_till(rnp_key_handle_t h, const char *usage, bool *can_r, uint64_t *till_r)
{
	if (!allows(h, usage) || is_revoked(h))
		return;
	*can_r = true;
	uint64_t t = key_till(h);
	if (t > *till_r)
		*till_r = t;
}

static void read_meta(struct sg_pgp_key *k, rnp_key_handle_t prim)
{
	size_t n = 0;
	char *s = NULL;

	if (rnp_key_get_uid_count(prim, &n) == RNP_SUCCESS)
		for (size_t i = 0; i < n; i++)
			if (rnp_key_get_uid_at(prim, i, &s) == RNP_SUCCESS) {
				add_uid(k, s);
				rnp_buffer_destroy(s);
			}
	rnp_key_have_secret(prim, &k->secret);
	k->revoked = is_revoked(prim);
	if (k->revoked && rnp_key_get_revocation_reason(prim, &s) == RNP_SUCCESS) {
		k->revocation_reason = sg_strdup(s);
		rnp_buffer_destroy(s);
	}
	k->primary_till = key_till(prim);
	add_keyid(k, prim);
	usage_till(prim, "encrypt", &k->can_encrypt, &k->encrypt_till);
	usage_till(prim, "sign", &k->can_sign, &k->sign_till);
	if (rnp_key_get_subkey_count(prim, &n) != RNP_SUCCESS)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		rnp_key_handle_t sub = NULL;
		if (rnp_key_get_subkey_at(prim, i, &sub) != RNP_SUCCESS)
			continue;
		usage_till(sub, "encrypt", &k->can_encrypt, &k->encrypt_till);
		usage_till(sub, "sign", &k->can_sign, &k->sign_till);
		add_keyid(k, sub);
		rnp_key_handle_destroy(sub);
	}
}

/* The single primary key of the ffi: 1 with its handle, -1 if none or several. */
static int single_primary(rnp_ffi_t ffi, rnp_key_handle_t *prim_r, struct sg_error *err)
{
	rnp_identifier_iterator_t it = NULL;
	const char *id = NULL;
	size_t n = 0;

	*prim_r = NULL;
	if (rnp_identifier_iterator_create(ffi, &it, "fingerprint") != RNP_SUCCESS)
		return -1;
	while (rnp_identifier_iterator_next(it, &id) == RNP_SUCCESS && id != NULL) {
		rnp_key_handle_t h = NULL;
		bool primary = false;
		if (rnp_locate_key(ffi, "fingerprint", id, &h) != RNP_SUCCESS || h == NULL)
			continue;
		if (rnp_key_is_primary(h, &primary) == RNP_SUCCESS && primary && n++ == 0) {
			*prim_r = h;
			continue;
		}
		rnp_key_handle_destroy(h);
	}
	rnp_identifier_iterator_destroy(it);
	if (n == 1)
		return 1;
	if (*prim_r != NULL)
		rnp_key_handle_destroy(*prim_r);
	*prim_r = NULL;
	sg_error_set(err, n == 0 ? "no OpenPGP primary key found" : "%zu keys in one file; give one key per file", n);
	return -1;
}

static int check_passphrase(rnp_key_handle_t prim, const char *passphrase, enum sg_crypto_status *status_r,
			    struct sg_error *err)
{
	bool prot = false;
	size_t n = 0;
	rnp_key_handle_t target = prim;
	rnp_key_handle_t sub = NULL;

	/* gpg protects every secret (sub)key: checking one of them detects a
	 * wrong passphrase at load time rather than at the first message. */
	if (rnp_key_is_protected(prim, &prot) != RNP_SUCCESS || !prot) {
		if (rnp_key_get_subkey_count(prim, &n) == RNP_SUCCESS && n > 0 &&
		    rnp_key_get_subkey_at(prim, 0, &sub) == RNP_SUCCESS)
			target = sub;
		if (rnp_key_is_protected(target, &prot) != RNP_SUCCESS)
			prot = false;
	}
	int ret = 1;
	if (prot && passphrase != NULL && rnp_key_unlock(target, passphrase) != RNP_SUCCESS) {
		set_status(status_r, SG_CRYPTO_BAD_KEY);
		sg_error_set(err, "wrong passphrase for the secret key");
		ret = -1;
	} else if (prot && passphrase != NULL) {
		rnp_key_lock(target);
	}
	if (sub != NULL)
		rnp_key_handle_destroy(sub);
	return ret;
}

/* Metadata of the key (data, len) read through a scratch ffi: exactly one
 * primary key, passphrase checked. */
static int load_fresh(struct sg_pgp_key *k, const char *passphrase, enum sg_crypto_status *status_r,
		      struct sg_error *err)
{
	rnp_ffi_t ffi = NULL;
	rnp_input_t in = NULL;
	rnp_key_handle_t prim = NULL;
	char *fpr = NULL;
	rnp_result_t r;
	int ret = -1;

	if (rnp_ffi_create(&ffi, "GPG", "GPG") != RNP_SUCCESS) {
		sg_error_set(err, "librnp: cannot create a context");
		return -1;
	}
	if (rnp_input_from_memory(&in, k->data, k->len, false) != RNP_SUCCESS)
		goto out;
	r = rnp_import_keys(ffi, in, RNP_LOAD_SAVE_PUBLIC_KEYS | RNP_LOAD_SAVE_SECRET_KEYS, NULL);
	if (r != RNP_SUCCESS) {
		sg_error_set(err, "not a usable OpenPGP key (%s; note: " SG_PGP_V6_HINT ")", rnp_msg(r));
		goto out;
	}
	if (single_primary(ffi, &prim, err) < 0 || rnp_key_get_fprint(prim, &fpr) != RNP_SUCCESS)
		goto out;
	k->fpr = sg_strdup(fpr);
	read_meta(k, prim);
	if (k->secret && check_passphrase(prim, passphrase, status_r, err) < 0)
		goto out;
	ret = 1;
out:
	rnp_buffer_destroy(fpr);
	if (prim != NULL)
		rnp_key_handle_destroy(prim);
	if (in != NULL)
		rnp_input_destroy(in);
	rnp_ffi_destroy(ffi);
	return ret;
}

/* The same bytes were loaded before and are in this thread's cache: read
 * the metadata from there instead of importing them again. */
static int load_cached(struct sg_pgp_key *k)
{
	struct thread_cache *tc = tc_get(false, NULL);
	const struct cache_entry *e = tc != NULL ? tc_find_digest(tc, k->digest) : NULL;
	rnp_key_handle_t prim = NULL;

	if (e == NULL || rnp_locate_key(tc->ffi, "fingerprint", e->fpr, &prim) != RNP_SUCCESS || prim == NULL)
		return 0;
	k->fpr = sg_strdup(e->fpr);
	read_meta(k, prim);
	rnp_key_handle_destroy(prim);
	tc->stats.hits++;
	return 1;
}

int sg_pgp_key_load_mem(const void *data, size_t len, const char *passphrase,
			struct sg_pgp_key **key_r, enum sg_crypto_status *status_r,
			struct sg_error *err)
{
	struct sg_pgp_key *k = sg_calloc(1, sizeof(*k));

	set_status(status_r, SG_CRYPTO_BAD_KEY);
	k->data = sg_malloc(len + 1);
	memcpy(k->data, data, len);
	k->len = len;
	k->passphrase = passphrase != NULL ? sg_strdup(passphrase) : NULL;
	if (EVP_Digest(k->data, len, k->digest, NULL, EVP_sha256(), NULL) != 1) {
		sg_error_set(err, "cannot hash the key");
		goto fail;
	}
	/* A passphrase is checked every time: no short cut then. */
	if ((passphrase != NULL || load_cached(k) == 0) && load_fresh(k, passphrase, status_r, err) < 0)
		goto fail;
	set_status(status_r, SG_CRYPTO_OK);
	*key_r = k;
	return 1;
fail:
	sg_pgp_key_free(&k);
	return -1;
}

const char *sg_pgp_key_fingerprint(const struct sg_pgp_key *k)
{
	return k->fpr;
}

bool sg_pgp_key_has_secret(const struct sg_pgp_key *k)
{
	return k->secret;
}

/* The address in a user ID: the last <...>, else the whole user ID. */
static void uid_addr(const char *uid, const char **a_r, size_t *n_r)
{
	const char *lt = strrchr(uid, '<');
	const char *gt = lt != NULL ? strchr(lt, '>') : NULL;

	if (lt != NULL && gt != NULL) {
		*a_r = lt + 1;
		*n_r = (size_t)(gt - lt - 1);
	} else {
		*a_r = uid;
		*n_r = strlen(uid);
	}
}

static bool addr_eq(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	const char *at_a = memrchr(a, '@', an), *at_b = strrchr(b, '@');

	if (an != bn || at_a == NULL || at_b == NULL || at_a - a != at_b - b)
		return false;
	size_t local = (size_t)(at_a - a);
	/* RFC 5321 s2.4: the local part is case-sensitive, the domain not. */
	return memcmp(a, b, local) == 0 && strncasecmp(at_a, at_b, an - local) == 0;
}

int sg_pgp_key_matches_addr(const struct sg_pgp_key *k, const char *addr)
{
	for (size_t i = 0; i < k->n_uids; i++) {
		const char *a;
		size_t n;
		uid_addr(k->uids[i], &a, &n);
		if (addr_eq(a, n, addr))
			return 1;
	}
	return 0;
}

int sg_pgp_key_has_keyid(const struct sg_pgp_key *k, const char *keyid)
{
	for (size_t i = 0; i < k->n_keyids; i++)
		if (strcasecmp(k->keyids[i], keyid) == 0)
			return 1;
	return 0;
}

static char *fmt_date(uint64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL)
		return sg_strdup("?");
	return sg_asprintf("%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

int sg_pgp_key_usable(const struct sg_pgp_key *k, bool for_sign, time_t now,
		      enum sg_crypto_status *status_r, struct sg_error *err)
{
	bool can = for_sign ? k->can_sign : k->can_encrypt;
	uint64_t till = for_sign ? k->sign_till : k->encrypt_till;

	if (k->revoked) {
		set_status(status_r, SG_CRYPTO_KEY_REVOKED);
		sg_error_set(err, "key revoked%s%s", k->revocation_reason != NULL && *k->revocation_reason ? ": " : "",
			     k->revocation_reason != NULL ? k->revocation_reason : "");
		return 0;
	}
	if (for_sign && !k->secret) {
		set_status(status_r, SG_CRYPTO_NO_KEY);
		sg_error_set(err, "no secret key");
		return 0;
	}
	if (!can) {
		set_status(status_r, SG_CRYPTO_BAD_KEY);
		sg_error_set(err, "key has no valid %s subkey", for_sign ? "signing" : "encryption");
		return 0;
	}
	if (till != UINT64_MAX && (till == 0 || till < (uint64_t)now)) {
		uint64_t when = k->primary_till != UINT64_MAX && k->primary_till < till ? k->primary_till : till;
		if (when == 0)
			when = k->primary_till;
		char *d = fmt_date(when);
		set_status(status_r, SG_CRYPTO_KEY_EXPIRED);
		sg_error_set(err, "key expired on %s", d);
		free(d);
		return 0;
	}
	set_status(status_r, SG_CRYPTO_OK);
	return 1;
}

void sg_pgp_key_free(struct sg_pgp_key **kp)
{
	struct sg_pgp_key *k = *kp;

	if (k == NULL)
		return;
	if (k->data != NULL)
		explicit_bzero(k->data, k->len);
	free(k->data);
	if (k->passphrase != NULL)
		sg_secret_free(&k->passphrase, strlen(k->passphrase));
	free(k->fpr);
	for (size_t i = 0; i < k->n_uids; i++)
		free(k->uids[i]);
	free(k->uids);
	for (size_t i = 0; i < k->n_keyids; i++)
		free(k->keyids[i]);
	free(k->keyids);
	free(k->revocation_reason);
	free(k);
	*kp = NULL;
}

/* ---- streams ---- */

static void io_destroy(rnp_input_t in, rnp_output_t o)
{
	if (o != NULL)
		rnp_output_destroy(o);
	if (in != NULL)
		rnp_input_destroy(in);
}

struct pieces_reader {
	const struct sg_pgp_piece *pieces;
	size_t n, idx, off;
};

static bool pieces_read(void *app_ctx, void *buf, size_t len, size_t *read)
{
	struct pieces_reader *r = app_ctx;
	size_t got = 0;

	while (got < len && r->idx < r->n) {
		const struct sg_pgp_piece *p = &r->pieces[r->idx];
		size_t take = p->len - r->off;
		if (take > len - got)
			take = len - got;
		memcpy((unsigned char *)buf + got, (const unsigned char *)p->data + r->off, take);
		got += take;
		r->off += take;
		if (r->off == p->len) {
			r->idx++;
			r->off = 0;
		}
	}
	*read = got;
	return true;
}

static void noop_close(void *app_ctx)
{
}

struct buf_writer {
	struct sg_buf *out;
	bool full;
};

static bool buf_write(void *app_ctx, const void *buf, size_t len)
{
	struct buf_writer *w = app_ctx;

	if (sg_buf_append(w->out, buf, len) != 1) {
		w->full = true;
		return false;
	}
	return true;
}

static void buf_close(void *app_ctx, bool discard)
{
}

static void truncate_buf(struct sg_buf *b, size_t len)
{
	if (b->data != NULL && b->len > len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

/* ---- encrypt / sign ---- */

static rnp_result_t setup_encrypt(rnp_op_encrypt_t op, struct op_ctx *c, const struct sg_pgp_key *const *recips,
				  size_t n_recips, const struct sg_pgp_key *signer, struct sg_error *err)
{
	rnp_result_t r = RNP_SUCCESS;

	for (size_t i = 0; i < n_recips && r == RNP_SUCCESS; i++) {
		rnp_key_handle_t h = op_locate(c, recips[i]);
		r = h != NULL ? rnp_op_encrypt_add_recipient(op, h) : RNP_ERROR_KEY_NOT_FOUND;
		if (r != RNP_SUCCESS)
			sg_error_set(err, "recipient %s: %s", recips[i]->fpr, rnp_msg(r));
		if (h != NULL)
			rnp_key_handle_destroy(h);
	}
	if (r == RNP_SUCCESS && signer != NULL) {
		rnp_key_handle_t h = op_locate(c, signer);
		r = h != NULL ? rnp_op_encrypt_add_signature(op, h, NULL) : RNP_ERROR_KEY_NOT_FOUND;
		if (r != RNP_SUCCESS)
			sg_error_set(err, "signer %s: %s", signer->fpr, rnp_msg(r));
		if (h != NULL)
			rnp_key_handle_destroy(h);
		if (r == RNP_SUCCESS)
			r = rnp_op_encrypt_set_hash(op, "SHA256");
	}
	/* AES-256, SEIPD v1 + MDC (no AEAD: not interoperable in RFC 4880),
	 * compression off (it leaks length information and costs CPU). */
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_set_cipher(op, "AES256");
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_set_aead(op, "None");
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_set_compression(op, "uncompressed", 0);
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_set_armor(op, true);
	return r;
}

static enum sg_crypto_status status_of_rnp(rnp_result_t r)
{
	switch (r) {
	case RNP_ERROR_BAD_PASSWORD:
		return SG_CRYPTO_BAD_KEY;
	case RNP_ERROR_NO_SUITABLE_KEY:
	case RNP_ERROR_KEY_NOT_FOUND:
		return SG_CRYPTO_NO_KEY;
	case RNP_ERROR_NOT_SUPPORTED:
		return SG_CRYPTO_UNSUPPORTED;
	default:
		return SG_CRYPTO_INTERNAL;
	}
}

static int add_keys(struct op_ctx *c, const struct sg_pgp_key *const *keys, size_t n, struct sg_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i] != NULL && op_add_key(c, keys[i], err) < 0)
			return -1;
	return 1;
}

int sg_pgp_encrypt(const struct sg_pgp_piece *pieces, size_t n_pieces,
		   const struct sg_pgp_key *const *recips, size_t n_recips,
		   const struct sg_pgp_key *signer, struct sg_buf *out,
		   enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct op_ctx c;
	struct pieces_reader rd = { pieces, n_pieces, 0, 0 };
	struct buf_writer wr = { out, false };
	rnp_input_t in = NULL;
	rnp_output_t o = NULL;
	rnp_op_encrypt_t op = NULL;
	size_t saved = out->len;
	rnp_result_t r;
	int ret = -1;

	set_status(status_r, SG_CRYPTO_INTERNAL);
	if (op_init(&c, err) < 0 || add_keys(&c, recips, n_recips, err) < 0 ||
	    add_keys(&c, &signer, signer != NULL ? 1 : 0, err) < 0)
		goto out;
	if (rnp_input_from_callback(&in, pieces_read, noop_close, &rd) != RNP_SUCCESS ||
	    rnp_output_to_callback(&o, buf_write, buf_close, &wr) != RNP_SUCCESS ||
	    rnp_op_encrypt_create(&op, c.ffi, in, o) != RNP_SUCCESS) {
		sg_error_set(err, "librnp: cannot set up encryption");
		goto out;
	}
	r = setup_encrypt(op, &c, recips, n_recips, signer, err);
	if (r == RNP_SUCCESS && (r = rnp_op_encrypt_execute(op)) != RNP_SUCCESS) {
		if (r == RNP_ERROR_BAD_PASSWORD && signer != NULL)
			sg_error_set(err, "signer %s: wrong or missing passphrase", signer->fpr);
		else
			sg_error_set(err, "%s", wr.full ? "output too large" : rnp_msg(r));
	}
	if (r != RNP_SUCCESS) {
		set_status(status_r, status_of_rnp(r));
		goto out;
	}
	set_status(status_r, SG_CRYPTO_OK);
	ret = 1;
out:
	if (op != NULL)
		rnp_op_encrypt_destroy(op);
	io_destroy(in, o);
	op_done(&c);
	if (ret < 0)
		truncate_buf(out, saved);
	return ret;
}

int sg_pgp_sign_detached(const void *data, size_t len, const struct sg_pgp_key *signer,
			 struct sg_buf *out, enum sg_crypto_status *status_r,
			 struct sg_error *err)
{
	struct op_ctx c;
	struct buf_writer wr = { out, false };
	rnp_input_t in = NULL;
	rnp_output_t o = NULL;
	rnp_op_sign_t op = NULL;
	rnp_key_handle_t h = NULL;
	size_t saved = out->len;
	rnp_result_t r = RNP_ERROR_GENERIC;
	int ret = -1;

	set_status(status_r, SG_CRYPTO_INTERNAL);
	if (op_init(&c, err) < 0 || op_add_key(&c, signer, err) < 0)
		goto out;
	if (rnp_input_from_memory(&in, data, len, false) != RNP_SUCCESS ||
	    rnp_output_to_callback(&o, buf_write, buf_close, &wr) != RNP_SUCCESS ||
	    rnp_op_sign_detached_create(&op, c.ffi, in, o) != RNP_SUCCESS ||
	    (h = op_locate(&c, signer)) == NULL) {
		sg_error_set(err, "librnp: cannot set up signing");
		goto out;
	}
	r = rnp_op_sign_add_signature(op, h, NULL);
	if (r == RNP_SUCCESS)
		r = rnp_op_sign_set_hash(op, "SHA256"); /* micalg=pgp-sha256 (RFC 3156 s5) */
	if (r == RNP_SUCCESS)
		r = rnp_op_sign_set_armor(op, true);
	if (r == RNP_SUCCESS)
		r = rnp_op_sign_execute(op);
	if (r != RNP_SUCCESS) {
		set_status(status_r, status_of_rnp(r));
		sg_error_set(err, "signer %s: %s", signer->fpr,
			     r == RNP_ERROR_BAD_PASSWORD ? "wrong or missing passphrase" : rnp_msg(r));
		goto out;
	}
	set_status(status_r, SG_CRYPTO_OK);
	ret = 1;
out:
	if (h != NULL)
		rnp_key_handle_destroy(h);
	if (op != NULL)
		rnp_op_sign_destroy(op);
	io_destroy(in, o);
	op_done(&c);
	if (ret < 0)
		truncate_buf(out, saved);
	return ret;
}

/* ---- decrypt / verify ---- */

void sg_pgp_info_clear(struct sg_pgp_info *info)
{
	free(info->signer);
	free(info->decrypted_with);
	free(info->warning);
	memset(info, 0, sizeof(*info));
}

static int add_sg_keys(struct op_ctx *c, struct sg_key *const *keys, size_t n, struct sg_error *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct sg_pgp_key *k = sg_key_pgp(keys[i]);
		if (k != NULL && op_add_key(c, k, err) < 0)
			return -1;
	}
	return 1;
}

static bool any_secret(struct sg_key *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct sg_pgp_key *k = sg_key_pgp(keys[i]);
		if (k != NULL && k->secret)
			return true;
	}
	return false;
}

static const struct sg_pgp_key *sg_keys_find(struct sg_key *const *keys, size_t n, const char *fpr)
{
	for (size_t i = 0; i < n; i++) {
		const struct sg_pgp_key *k = sg_key_pgp(keys[i]);
		if (k != NULL && fpr != NULL && strcasecmp(k->fpr, fpr) == 0)
			return k;
	}
	return NULL;
}

/* Verdict on a signature whose cryptographic check gave r (RFC 4880
 * s5.2.3.23, s5.2.3.6: a revoked or expired key makes it untrustworthy). */
static enum sg_sig_status sig_verdict(rnp_result_t r, const struct sg_pgp_key *k, time_t now)
{
	/* k == NULL: not among the op's keys, even if the thread's cache
	 * holds it from another operation. */
	if (r == RNP_ERROR_KEY_NOT_FOUND || k == NULL)
		return SG_SIG_UNKNOWN_SIGNER;
	if (k != NULL && k->revoked)
		return SG_SIG_KEY_REVOKED;
	if (k != NULL && k->sign_till != UINT64_MAX && k->sign_till < (uint64_t)now)
		return SG_SIG_KEY_EXPIRED;
	if (r == RNP_ERROR_SIGNATURE_EXPIRED)
		return SG_SIG_KEY_EXPIRED;
	if (r == RNP_SUCCESS)
		return k != NULL ? SG_SIG_VALID : SG_SIG_UNKNOWN_SIGNER;
	return SG_SIG_BAD;
}

static char *sig_keyid(rnp_op_verify_signature_t sig)
{
	rnp_signature_handle_t sh = NULL;
	char *id = NULL, *ret = NULL;

	if (rnp_op_verify_signature_get_handle(sig, &sh) == RNP_SUCCESS &&
	    rnp_signature_get_keyid(sh, &id) == RNP_SUCCESS)
		ret = sg_strdup(id);
	rnp_buffer_destroy(id);
	if (sh != NULL)
		rnp_signature_handle_destroy(sh);
	return ret;
}

static void read_signatures(rnp_op_verify_t op, struct sg_key *const *known, size_t n_known,
			    struct sg_key *const *known2, size_t n_known2, time_t now, struct sg_pgp_info *info)
{
	size_t n = 0;
	rnp_op_verify_signature_t sig = NULL;
	rnp_key_handle_t kh = NULL;
	char *fpr = NULL;

	info->sig = SG_SIG_NONE;
	if (rnp_op_verify_get_signature_count(op, &n) != RNP_SUCCESS || n == 0 ||
	    rnp_op_verify_get_signature_at(op, 0, &sig) != RNP_SUCCESS)
		return;
	rnp_result_t r = rnp_op_verify_signature_get_status(sig);
	if (rnp_op_verify_signature_get_key(sig, &kh) == RNP_SUCCESS && kh != NULL)
		fpr = primary_fpr(kh);
	const struct sg_pgp_key *k = sg_keys_find(known, n_known, fpr);
	if (k == NULL)
		k = sg_keys_find(known2, n_known2, fpr);
	info->sig = sig_verdict(r, k, now);
	info->signer = k != NULL ? sg_strdup(k->fpr) : sig_keyid(sig);
	rnp_buffer_destroy(fpr);
	if (kh != NULL)
		rnp_key_handle_destroy(kh);
}

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* The key IDs the PKESKs of a (tried) verify op name, appended. */
static void op_recipient_ids(rnp_op_verify_t op, char ***ids_r, size_t *n_r)
{
	size_t n = 0;

	if (rnp_op_verify_get_recipient_count(op, &n) != RNP_SUCCESS)
		return;
	for (size_t i = 0; i < n; i++) {
		rnp_recipient_handle_t rh = NULL;
		char *kid = NULL;
		if (rnp_op_verify_get_recipient_at(op, i, &rh) != RNP_SUCCESS ||
		    rnp_recipient_get_keyid(rh, &kid) != RNP_SUCCESS)
			continue;
		*ids_r = sg_reallocarray(*ids_r, *n_r + 1, sizeof(**ids_r));
		(*ids_r)[(*n_r)++] = sg_strdup(kid);
		rnp_buffer_destroy(kid);
	}
}

/* Primary fingerprint of the ffi's (sub)key with this key ID, or NULL
 * (rnp_buffer_destroy it). */
static char *owner_fpr(rnp_ffi_t ffi, const char *keyid)
{
	rnp_key_handle_t kh = NULL;
	char *fpr = NULL;

	if (rnp_locate_key(ffi, "keyid", keyid, &kh) == RNP_SUCCESS && kh != NULL) {
		fpr = primary_fpr(kh);
		rnp_key_handle_destroy(kh);
	}
	return fpr;
}

/* Is the message encrypted to one of the op's secret keys? (WRONG_KEY vs
 * TAMPERED vs passphrase) */
static bool addressed_to_us(rnp_op_verify_t op, struct op_ctx *c)
{
	char **ids = NULL;
	size_t n = 0;
	bool ours = false;

	op_recipient_ids(op, &ids, &n);
	for (size_t i = 0; i < n && !ours; i++) {
		char *fpr = owner_fpr(c->ffi, ids[i]);
		ours = fpr != NULL && find_allowed(c, fpr) != NULL;
		rnp_buffer_destroy(fpr);
	}
	free_strs(ids, n);
	return ours;
}

/* The key IDs of the PKESKs (RFC 4880 s5.1) of an OpenPGP message, read
 * by librnp from the thread's context without keys, which stops before
 * the encrypted data. 1 with *ids_r (owned, maybe none); -1 if librnp
 * cannot be set up. */
static int probe_recipients(struct thread_cache *tc, const void *data, size_t len, char ***ids_r,
			    size_t *n_r)
{
	rnp_input_t in = NULL;
	rnp_output_t o = NULL;
	rnp_op_verify_t op = NULL;
	int ret = -1;

	*ids_r = NULL;
	*n_r = 0;
	if (tc->probe == NULL && rnp_ffi_create(&tc->probe, "GPG", "GPG") != RNP_SUCCESS)
		tc->probe = NULL;
	if (tc->probe == NULL || rnp_input_from_memory(&in, data, len, false) != RNP_SUCCESS ||
	    rnp_output_to_null(&o) != RNP_SUCCESS || rnp_op_verify_create(&op, tc->probe, in, o) != RNP_SUCCESS)
		goto out;
	(void)rnp_op_verify_execute(op);
	op_recipient_ids(op, ids_r, n_r);
	ret = 1;
out:
	if (op != NULL)
		rnp_op_verify_destroy(op);
	io_destroy(in, o);
	return ret;
}

static bool is_wildcard(const char *keyid)
{
	return strspn(keyid, "0") == strlen(keyid);
}

/* Take secret keys that the op was not given out of the thread's ffi when
 * the message names them (or hides its recipients: wildcard key ID, RFC
 * 4880 s5.1), so that librnp, which tries every secret key it holds,
 * decrypts only with the op's keys. */
static void hide_foreign_secrets(struct op_ctx *c, const void *data, size_t len)
{
	struct thread_cache *tc = c->tc;
	char **ids = NULL;
	size_t n = 0;
	bool wildcard = probe_recipients(tc, data, len, &ids, &n) < 0; /* cannot tell: hide all */

	for (size_t i = 0; i < n; i++) {
		char *fpr = is_wildcard(ids[i]) ? NULL : owner_fpr(tc->ffi, ids[i]);
		struct cache_entry *e = fpr != NULL ? tc_find_fpr(tc, fpr) : NULL;
		wildcard = wildcard || is_wildcard(ids[i]);
		if (e != NULL && e->secret && find_allowed(c, fpr) == NULL)
			tc_evict(tc, (size_t)(e - tc->e));
		rnp_buffer_destroy(fpr);
	}
	for (size_t i = tc->n; wildcard && i-- > 0;)
		if (tc->e[i].secret && find_allowed(c, tc->e[i].fpr) == NULL)
			tc_evict(tc, i);
	free_strs(ids, n);
}

/* Where an armored OpenPGP message starts in a mail (PGP/MIME part or
 * inline), searching from *pos; its length up to the END line. */
static bool next_armored(const unsigned char *msg, size_t len, size_t *pos, size_t *blk_len_r)
{
	static const char begin[] = "-----BEGIN PGP MESSAGE-----", end[] = "-----END PGP MESSAGE-----";
	const unsigned char *b = *pos < len ? memmem(msg + *pos, len - *pos, begin, sizeof(begin) - 1) : NULL;
	const unsigned char *e = b != NULL ? memmem(b, len - (size_t)(b - msg), end, sizeof(end) - 1) : NULL;

	if (e == NULL)
		return false;
	*blk_len_r = (size_t)(e - b) + sizeof(end) - 1;
	*pos = (size_t)(b - msg);
	return true;
}

int sg_pgp_message_recipients(const void *msg, size_t len, char ***keyids_r, size_t *n_r,
			      bool *hidden_r, struct sg_error *err)
{
	struct thread_cache *tc = tc_get(true, err);
	size_t pos = 0, blk = 0;

	*keyids_r = NULL;
	*n_r = 0;
	*hidden_r = false;
	if (tc == NULL)
		return -1;
	for (; next_armored(msg, len, &pos, &blk); pos += blk) {
		char **ids = NULL;
		size_t n = 0;
		if (probe_recipients(tc, (const unsigned char *)msg + pos, blk, &ids, &n) < 0) {
			sg_error_set(err, "librnp: cannot read the message's recipients");
			free_strs(*keyids_r, *n_r);
			*keyids_r = NULL;
			*n_r = 0;
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if (is_wildcard(ids[i])) {
				*hidden_r = true;
				free(ids[i]);
				continue;
			}
			*keyids_r = sg_reallocarray(*keyids_r, *n_r + 1, sizeof(**keyids_r));
			(*keyids_r)[(*n_r)++] = ids[i];
		}
		free(ids);
	}
	return 1;
}

static void used_key(rnp_op_verify_t op, struct op_ctx *c, struct sg_key *const *keys, size_t n_keys,
		     time_t now, struct sg_pgp_info *info)
{
	rnp_recipient_handle_t rh = NULL;
	char *kid = NULL, *fpr = NULL;
	rnp_key_handle_t kh = NULL;

	if (rnp_op_verify_get_used_recipient(op, &rh) != RNP_SUCCESS || rh == NULL ||
	    rnp_recipient_get_keyid(rh, &kid) != RNP_SUCCESS)
		return;
	if (rnp_locate_key(c->ffi, "keyid", kid, &kh) == RNP_SUCCESS && kh != NULL)
		fpr = primary_fpr(kh);
	info->decrypted_with = sg_strdup(fpr != NULL ? fpr : kid);
	const struct sg_pgp_key *k = sg_keys_find(keys, n_keys, fpr);
	struct sg_error e = SG_ERROR_INIT;
	if (k != NULL && sg_pgp_key_usable(k, false, now, NULL, &e) == 0)
		info->warning = sg_asprintf("decrypted with a key that cannot be used for new messages: %s",
					    sg_error_msg(&e));
	sg_error_clear(&e);
	rnp_buffer_destroy(fpr);
	rnp_buffer_destroy(kid);
	if (kh != NULL)
		rnp_key_handle_destroy(kh);
}

static int decrypt_failed(rnp_result_t r, rnp_op_verify_t op, struct op_ctx *c,
			  enum sg_crypto_status *status_r, struct sg_error *err)
{
	rnp_recipient_handle_t used = NULL;

	/* librnp reports a failed MDC check as a read error once the session
	 * key was recovered: with a recipient used, it is tampering. */
	if (r == RNP_ERROR_READ && rnp_op_verify_get_used_recipient(op, &used) == RNP_SUCCESS && used != NULL) {
		set_status(status_r, SG_CRYPTO_TAMPERED);
		sg_error_set(err, "integrity check failed: message was modified");
		return -1;
	}
	/* A cached secret key of another op is refused its passphrase. */
	if (r == RNP_ERROR_BAD_PASSWORD && !addressed_to_us(op, c))
		r = RNP_ERROR_NO_SUITABLE_KEY;
	switch (r) {
	case RNP_ERROR_DECRYPT_FAILED:
	case RNP_ERROR_NO_SUITABLE_KEY:
	case RNP_ERROR_KEY_NOT_FOUND:
		if (!addressed_to_us(op, c)) {
			set_status(status_r, SG_CRYPTO_WRONG_KEY);
			sg_error_set(err, "message is not encrypted to any of the given keys");
		} else {
			set_status(status_r, SG_CRYPTO_TAMPERED);
			sg_error_set(err, "integrity check failed: message was modified (%s)", rnp_msg(r));
		}
		break;
	case RNP_ERROR_BAD_PASSWORD:
		set_status(status_r, SG_CRYPTO_BAD_KEY);
		sg_error_set(err, "wrong or missing passphrase for the secret key");
		break;
	case RNP_ERROR_NOT_SUPPORTED:
		set_status(status_r, SG_CRYPTO_UNSUPPORTED);
		sg_error_set(err, "unsupported OpenPGP data (%s; " SG_PGP_V6_HINT ")", rnp_msg(r));
		break;
	case RNP_ERROR_BAD_FORMAT:
		set_status(status_r, SG_CRYPTO_MALFORMED);
		sg_error_set(err, "not a valid OpenPGP message (%s; note: " SG_PGP_V6_HINT ")", rnp_msg(r));
		break;
	default:
		set_status(status_r, SG_CRYPTO_MALFORMED);
		sg_error_set(err, "not a valid OpenPGP message (%s)", rnp_msg(r));
	}
	return -1;
}

/* RFC 4880 s5.13: data without MDC can be changed undetected: refuse it. */
static int check_protection(rnp_op_verify_t op, struct sg_pgp_info *info,
			    enum sg_crypto_status *status_r, struct sg_error *err)
{
	char *mode = NULL;
	bool valid = false;
	int ret = 1;

	if (rnp_op_verify_get_protection_info(op, &mode, NULL, &valid) != RNP_SUCCESS)
		valid = false;
	if (mode != NULL && strcmp(mode, "none") == 0) {
		set_status(status_r, SG_CRYPTO_MALFORMED);
		sg_error_set(err, "OpenPGP data is not encrypted");
		ret = -1;
	} else if (!valid) {
		set_status(status_r, SG_CRYPTO_UNSUPPORTED);
		sg_error_set(err, "encrypted without integrity protection (%s): refused", mode ? mode : "?");
		ret = -1;
	}
	info->authenticated = valid;
	rnp_buffer_destroy(mode);
	return ret;
}

int sg_pgp_decrypt(const void *data, size_t len, struct sg_key *const *keys, size_t n_keys,
		   struct sg_key *const *verify_keys, size_t n_verify, time_t now,
		   struct sg_buf *out, struct sg_pgp_info *info_r,
		   enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct op_ctx c;
	rnp_input_t in = NULL;
	rnp_output_t o = NULL;
	rnp_op_verify_t op = NULL;
	struct sg_buf plain;
	struct buf_writer wr = { &plain, false };
	rnp_result_t r;
	int ret = -1;

	sg_buf_init(&plain, out->max);
	memset(info_r, 0, sizeof(*info_r));
	memset(&c, 0, sizeof(c));
	if (!any_secret(keys, n_keys)) {
		set_status(status_r, SG_CRYPTO_NO_KEY);
		sg_error_set(err, "no OpenPGP secret key to decrypt with");
		goto out;
	}
	set_status(status_r, SG_CRYPTO_INTERNAL);
	if (op_init(&c, err) < 0 || add_sg_keys(&c, keys, n_keys, err) < 0 ||
	    add_sg_keys(&c, verify_keys, n_verify, err) < 0)
		goto out;
	hide_foreign_secrets(&c, data, len);
	/* Plaintext goes to memory first: nothing reaches out before the
	 * MDC has been checked at the end of the stream. */
	if (rnp_input_from_memory(&in, data, len, false) != RNP_SUCCESS ||
	    rnp_output_to_callback(&o, buf_write, buf_close, &wr) != RNP_SUCCESS ||
	    rnp_op_verify_create(&op, c.ffi, in, o) != RNP_SUCCESS ||
	    rnp_op_verify_set_flags(op, RNP_VERIFY_IGNORE_SIGS_ON_DECRYPT) != RNP_SUCCESS) {
		sg_error_set(err, "librnp: cannot set up decryption");
		goto out;
	}
	r = rnp_op_verify_execute(op);
	if (r != RNP_SUCCESS) {
		if (wr.full) {
			sg_error_set(err, "decrypted message larger than %zu bytes", out->max);
			goto out;
		}
		decrypt_failed(r, op, &c, status_r, err);
		goto out;
	}
	if (check_protection(op, info_r, status_r, err) < 0)
		goto out;
	used_key(op, &c, keys, n_keys, now, info_r);
	read_signatures(op, verify_keys, n_verify, keys, n_keys, now, info_r);
	if (out->len == 0) {
		/* Hand the buffer over rather than copy it. */
		sg_buf_free(out);
		*out = plain;
		sg_buf_init(&plain, out->max);
	} else if (sg_buf_append(out, plain.data, plain.len) != 1) {
		sg_error_set(err, "decrypted message too large");
		goto out;
	}
	set_status(status_r, SG_CRYPTO_OK);
	ret = 1;
out:
	if (op != NULL)
		rnp_op_verify_destroy(op);
	io_destroy(in, o);
	op_done(&c);
	sg_buf_free_secret(&plain);
	if (ret < 0)
		sg_pgp_info_clear(info_r);
	return ret;
}

int sg_pgp_verify_detached(const void *data, size_t len, const void *sig, size_t sig_len,
			   struct sg_key *const *verify_keys, size_t n_verify, time_t now,
			   struct sg_pgp_info *info_r, enum sg_crypto_status *status_r,
			   struct sg_error *err)
{
	struct op_ctx c;
	rnp_input_t in = NULL, sin = NULL;
	rnp_op_verify_t op = NULL;
	rnp_result_t r;
	size_t n = 0;
	int ret = -1;

	memset(info_r, 0, sizeof(*info_r));
	set_status(status_r, SG_CRYPTO_INTERNAL);
	if (op_init(&c, err) < 0 || add_sg_keys(&c, verify_keys, n_verify, err) < 0)
		goto out;
	if (rnp_input_from_memory(&in, data, len, false) != RNP_SUCCESS ||
	    rnp_input_from_memory(&sin, sig, sig_len, false) != RNP_SUCCESS ||
	    rnp_op_verify_detached_create(&op, c.ffi, in, sin) != RNP_SUCCESS) {
		sg_error_set(err, "librnp: cannot set up verification");
		goto out;
	}
	r = rnp_op_verify_execute(op);
	if (rnp_op_verify_get_signature_count(op, &n) != RNP_SUCCESS || n == 0) {
		set_status(status_r, SG_CRYPTO_MALFORMED);
		sg_error_set(err, "no OpenPGP signature found (%s)", rnp_msg(r));
		goto out;
	}
	read_signatures(op, verify_keys, n_verify, NULL, 0, now, info_r);
	set_status(status_r, SG_CRYPTO_OK);
	ret = 1;
out:
	if (op != NULL)
		rnp_op_verify_destroy(op);
	if (sin != NULL)
		rnp_input_destroy(sin);
	if (in != NULL)
		rnp_input_destroy(in);
	op_done(&c);
	return ret;
}
