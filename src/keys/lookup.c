/* Key look-up for encryption: the local store, then the remote chain
 * (cache, WKD, LDAP, DNS), with the same usability checks for both. */
#include "keys/lookup.h"
#include "config/config.h"
#include "keys/autocrypt.h"
#include "keys/cache.h"
#include "keys/keystore.h"
#include "keys/remote.h"
#include "mime/message.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sg_keys_lookup {
	struct sg_store *store;
	/* One store connection: one user at a time, the cache included.
	 * Held only around store calls, never during a fetch. */
	pthread_mutex_t *store_lock;
	pthread_mutex_t own_lock;
	struct sg_keys_remote *remote;  /* NULL: local only */
	char *remote_error;             /* a bad lookup_order, reported per look-up */
	unsigned budget_ms;
	char *harvest_id;               /* trusted DKIM verifier; NULL: no Autocrypt */
};

/* Harvested keys are kept this long after they were last seen. */
#define HARVEST_TTL (365 * 86400)

/* The remote chain a configuration asks for (none for SG_LOOKUP_LOCAL or
 * an empty lookup_order). */
static void setup_remote(struct sg_keys_lookup *lk, const struct sg_config *cfg, unsigned flags)
{
	struct sg_error err = SG_ERROR_INIT;

	if (cfg == NULL || (flags & SG_LOOKUP_LOCAL) || cfg->lookup_order == NULL ||
	    cfg->lookup_order[strspn(cfg->lookup_order, " \t,")] == '\0')
		return;
	lk->budget_ms = cfg->lookup_budget * 1000;
	lk->remote = sg_keys_remote_new(lk->store, lk->store_lock, cfg, &err);
	if (lk->remote == NULL) {
		/* Fail closed but keep going: local keys still work, and every
		 * look-up that would need a directory names this reason. */
		lk->remote_error = sg_strdup(sg_error_msg(&err));
		sg_log_error("key lookup: remote sources off: %s", lk->remote_error);
	}
	sg_error_clear(&err);
}

/* Autocrypt harvest needs a DKIM verifier other than ourselves: fields
 * claiming our own authserv-id are forgeries the inbound path removes. */
static void setup_harvest(struct sg_keys_lookup *lk, const struct sg_config *cfg)
{
	if (cfg == NULL || cfg->autocrypt_authserv_id == NULL || *cfg->autocrypt_authserv_id == '\0')
		return;
	const char *own = cfg->authserv_id[0] != '\0' ? cfg->authserv_id : cfg->hostname;
	if (strcasecmp(cfg->autocrypt_authserv_id, own) == 0) {
		sg_log_error("autocrypt_authserv_id %s is this gateway's own authserv-id: "
			     "Autocrypt harvesting off", own);
		return;
	}
	lk->harvest_id = sg_strdup(cfg->autocrypt_authserv_id);
}

struct sg_keys_lookup *sg_keys_lookup_new(struct sg_store *store, const struct sg_config *cfg,
					  pthread_mutex_t *store_lock, unsigned flags)
{
	struct sg_keys_lookup *lk = sg_calloc(1, sizeof(*lk));
	lk->store = store;
	pthread_mutex_init(&lk->own_lock, NULL);
	lk->store_lock = store_lock != NULL ? store_lock : &lk->own_lock;
	setup_remote(lk, cfg, flags);
	if (!(flags & SG_LOOKUP_LOCAL))
		setup_harvest(lk, cfg);
	return lk;
}

void sg_keys_lookup_free(struct sg_keys_lookup **lkp)
{
	struct sg_keys_lookup *lk = *lkp;
	if (lk == NULL)
		return;
	sg_keys_remote_free(&lk->remote);
	free(lk->remote_error);
	free(lk->harvest_id);
	pthread_mutex_destroy(&lk->own_lock);
	free(lk);
	*lkp = NULL;
}

struct sg_keys_remote *sg_keys_lookup_remote(struct sg_keys_lookup *lk)
{
	return lk->remote;
}

/* Rank a key that is unusable: a reason worth reporting beats "no key". */
static int status_rank(enum sg_crypto_status st)
{
	switch (st) {
	case SG_CRYPTO_KEY_REVOKED: return 3;
	case SG_CRYPTO_KEY_EXPIRED: return 2;
	case SG_CRYPTO_BAD_KEY: return 1;
	default: return 0;
	}
}

/* "key FPR expired on DATE" from crypto's "key expired on DATE". */
static void why_msg(struct sg_error *why, const char *fpr, const char *msg)
{
	if (strncmp(msg, "key ", 4) == 0)
		sg_error_set(why, "key %s %s", fpr, msg + 4);
	else
		sg_error_set(why, "key %s: %s", fpr, msg);
}

/* The best candidate so far, and the most telling reason against the rest. */
struct pick {
	const char *addr;
	enum sg_key_kind pref;
	time_t now;
	struct sg_key *best;
	enum sg_crypto_status why;
	struct sg_error why_err;
};

/* Weigh one key (OpenPGP or DER, from the store or a directory); label
 * names it in a reason when it cannot be parsed. */
static void consider(struct pick *p, const void *data, size_t len, const char *label)
{
	struct sg_key *k = NULL;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	struct sg_error kerr = SG_ERROR_INIT;

	if (sg_key_load_mem(data, len, NULL, &k, &st, &kerr) < 0 || k == NULL ||
	    sg_key_matches_addr(k, p->addr) != 1 ||
	    sg_key_usable_for_encrypt(k, p->now, &st, &kerr) != 1) {
		if (status_rank(st) == 0)
			st = SG_CRYPTO_BAD_KEY;
		if (kerr.msg == NULL)
			sg_error_set(&kerr, "key does not carry this address");
		/* The first, most telling reason wins: revoked, then expired,
		 * then any other flaw. */
		if (status_rank(st) > status_rank(p->why) || p->why_err.msg == NULL) {
			p->why = st;
			why_msg(&p->why_err, k != NULL ? sg_key_fingerprint(k) : label,
				sg_error_msg(&kerr));
		}
		sg_error_clear(&kerr);
		sg_key_free(&k);
		return;
	}
	/* Usable. Prefer the asked-for kind; else the first found. */
	if (p->best == NULL || (sg_key_kind(p->best) != p->pref && sg_key_kind(k) == p->pref)) {
		sg_key_free(&p->best);
		p->best = k;
	} else {
		sg_key_free(&k);
	}
}

/* Ask the remote chain (the store lock is not held: the chain takes it
 * for its cache rows only). Adds candidates to p; on failure *failed_r
 * gets the reason (owned). */
static void consider_remote(struct sg_keys_lookup *lk, struct pick *p, char **failed_r)
{
	struct sg_keys_found *found = NULL;
	size_t n = 0;
	struct sg_error rerr = SG_ERROR_INIT;

	if (lk->remote == NULL) {
		if (lk->remote_error != NULL)
			*failed_r = sg_asprintf("remote look-up not available: %s", lk->remote_error);
		return;
	}
	int r = sg_keys_remote_find(lk->remote, p->addr, lk->budget_ms, &found, &n, &rerr);
	if (r < 0)
		*failed_r = sg_strdup(sg_error_msg(&rerr));
	for (size_t i = 0; r == 1 && i < n; i++)
		consider(p, found[i].data, found[i].len, found[i].source);
	sg_keys_found_free(&found, n);
	sg_error_clear(&rerr);
}

/* The last resort: keys harvested from Autocrypt headers (lowest trust:
 * never preferred over the store or a directory). */
static void consider_harvested(struct sg_keys_lookup *lk, struct pick *p)
{
	struct sg_store_cache *rows = NULL;
	size_t n = 0;
	struct sg_error err = SG_ERROR_INIT;

	pthread_mutex_lock(lk->store_lock);
	int r = sg_store_cache_get(lk->store, p->addr, &rows, &n, &err);
	pthread_mutex_unlock(lk->store_lock);
	for (size_t i = 0; r > 0 && i < n; i++) {
		struct sg_keys_found *keys = NULL;
		size_t nk = 0;
		if (strcmp(rows[i].source, SG_KEYS_HARVEST_SOURCE) != 0 ||
		    sg_keys_cache_unpack(&rows[i], &keys, &nk) < 0)
			continue;
		for (size_t j = 0; j < nk; j++)
			consider(p, keys[j].data, keys[j].len, "harvested");
		sg_keys_found_free(&keys, nk);
	}
	if (r < 0)
		sg_log_warn("key lookup: %s: harvested keys: %s", p->addr, sg_error_msg(&err));
	sg_store_cache_free(&rows, n);
	sg_error_clear(&err);
}

bool sg_keys_lookup_may_harvest(const struct sg_keys_lookup *lk, const struct sg_msg_view *v)
{
	struct sg_msg_field f;

	return lk->harvest_id != NULL && lk->store != NULL && sg_msg_find_field(v, "Autocrypt", &f) == 1;
}

int sg_keys_lookup_harvest(struct sg_keys_lookup *lk, const struct sg_msg_view *v, time_t now)
{
	struct sg_autocrypt ac;
	struct sg_keys_found k;
	struct sg_error err = SG_ERROR_INIT;
	int r = 0;

	if (lk->harvest_id == NULL || lk->store == NULL)
		return 0;
	if (sg_autocrypt_from_message(v, lk->harvest_id, &ac, &err) != 1) {
		sg_log_debug("autocrypt: not harvested: %s", sg_error_msg(&err));
		goto out;
	}
	/* The same checks as a directory's key: size, packets, user ID. */
	if (sg_keys_check_blob(ac.addr, ac.keydata, ac.keylen, &k, &err) != 1 ||
	    strcmp(k.kind, "pgp") != 0) {
		sg_log_warn("autocrypt: %s: key refused: %s", ac.addr,
			    err.msg != NULL ? err.msg : "not an OpenPGP key");
		goto out_key;
	}
	k.source = sg_strdup(SG_KEYS_HARVEST_SOURCE);
	k.trust = sg_strdup("harvested");
	pthread_mutex_lock(lk->store_lock);
	r = sg_keys_cache_store_row(lk->store, ac.addr, SG_KEYS_HARVEST_SOURCE, "harvested",
				    (int64_t)now, HARVEST_TTL, &k, 1, &err);
	pthread_mutex_unlock(lk->store_lock);
	if (r < 0)
		sg_log_warn("autocrypt: %s: %s", ac.addr, sg_error_msg(&err));
	else
		sg_log_info("autocrypt: harvested a key for %s (trust harvested%s)", ac.addr,
			    ac.prefer_mutual ? ", prefer-encrypt=mutual" : "");
out_key:
	free(k.kind);
	free(k.source);
	free(k.trust);
	free(k.data);
out:
	sg_autocrypt_clear(&ac);
	sg_error_clear(&err);
	return r > 0 ? 1 : 0;
}

int sg_keys_find_encrypt(struct sg_keys_lookup *lk, const char *addr, enum sg_key_kind pref,
			 time_t now, struct sg_key **key_r, enum sg_crypto_status *status_r,
			 struct sg_error *err)
{
	struct sg_store_key *rows = NULL;
	size_t n = 0;
	char *failed = NULL;
	int ret = -1;
	char *norm = sg_keys_normalize_addr(addr, err);
	struct pick p = { .addr = norm, .pref = pref != 0 ? pref : SG_KEY_PGP, .now = now,
			  .why = SG_CRYPTO_NO_KEY, .why_err = SG_ERROR_INIT };

	*key_r = NULL;
	*status_r = SG_CRYPTO_NO_KEY;
	if (norm == NULL) {
		*status_r = SG_CRYPTO_MALFORMED;
		return 0;
	}
	pthread_mutex_lock(lk->store_lock);
	int r = sg_store_key_list(lk->store, norm, &rows, &n, err);
	pthread_mutex_unlock(lk->store_lock);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		consider(&p, rows[i].data, rows[i].len, rows[i].fingerprint);
	/* Local keys (configured by the admin) win; directories only fill gaps. */
	if (p.best == NULL)
		consider_remote(lk, &p, &failed);
	if (p.best == NULL && lk->harvest_id != NULL)
		consider_harvested(lk, &p);
	ret = p.best != NULL ? 1 : 0;
	if (p.best != NULL) {
		*key_r = p.best;
		*status_r = SG_CRYPTO_OK;
	} else {
		*status_r = p.why;
		/* A failed directory is named: "no key" might be "not asked". */
		char *also = failed != NULL ? sg_asprintf(" (%s)", failed) : sg_strdup("");
		if (p.why == SG_CRYPTO_NO_KEY)
			sg_error_set(err, "no key for %s%s", norm, also);
		else
			sg_error_set(err, "%s: %s%s", norm, sg_error_msg(&p.why_err), also);
		free(also);
	}
out:
	sg_store_keys_free(&rows, n);
	sg_error_clear(&p.why_err);
	free(failed);
	free(norm);
	return ret;
}
