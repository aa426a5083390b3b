/* Key look-up for encryption: the local store, then (later) remote sources. */
#include "keys/lookup.h"
#include "keys/keystore.h"
#include "store/store.h"
#include "util/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sg_keys_lookup {
	struct sg_store *store;
	pthread_mutex_t lock; /* one store connection: one caller at a time */
};

struct sg_keys_lookup *sg_keys_lookup_new(struct sg_store *store)
{
	struct sg_keys_lookup *lk = sg_calloc(1, sizeof(*lk));
	lk->store = store;
	pthread_mutex_init(&lk->lock, NULL);
	return lk;
}

void sg_keys_lookup_free(struct sg_keys_lookup **lkp)
{
	struct sg_keys_lookup *lk = *lkp;
	if (lk == NULL)
		return;
	pthread_mutex_destroy(&lk->lock);
	free(lk);
	*lkp = NULL;
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

int sg_keys_find_encrypt(struct sg_keys_lookup *lk, const char *addr, enum sg_key_kind pref,
			 time_t now, struct sg_key **key_r, enum sg_crypto_status *status_r,
			 struct sg_error *err)
{
	struct sg_store_key *rows = NULL;
	size_t n = 0;
	struct sg_key *best = NULL;
	enum sg_crypto_status why = SG_CRYPTO_NO_KEY;
	struct sg_error why_err = SG_ERROR_INIT;
	int ret = -1;
	char *norm = sg_keys_normalize_addr(addr, err);

	*key_r = NULL;
	*status_r = SG_CRYPTO_NO_KEY;
	if (norm == NULL) {
		*status_r = SG_CRYPTO_MALFORMED;
		return 0;
	}
	pthread_mutex_lock(&lk->lock);
	int r = sg_store_key_list(lk->store, norm, &rows, &n, err);
	pthread_mutex_unlock(&lk->lock);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct sg_key *k = NULL;
		enum sg_crypto_status st = SG_CRYPTO_OK;
		struct sg_error kerr = SG_ERROR_INIT;
		if (sg_key_load_mem(rows[i].data, rows[i].len, NULL, &k, &st, &kerr) < 0 ||
		    sg_key_matches_addr(k, norm) != 1 ||
		    sg_key_usable_for_encrypt(k, now, &st, &kerr) != 1) {
			if (status_rank(st) == 0)
				st = SG_CRYPTO_BAD_KEY;
			if (kerr.msg == NULL)
				sg_error_set(&kerr, "key does not carry this address");
			/* The first, most telling reason wins: revoked, then
			 * expired, then any other flaw. */
			if (status_rank(st) > status_rank(why) || why_err.msg == NULL) {
				why = st;
				why_msg(&why_err, rows[i].fingerprint, sg_error_msg(&kerr));
			}
			sg_error_clear(&kerr);
			sg_key_free(&k);
			continue;
		}
		/* Usable. Prefer the asked-for kind; else the first found. */
		if (pref == 0)
			pref = SG_KEY_PGP;
		if (best == NULL || (pref != 0 && sg_key_kind(best) != pref && sg_key_kind(k) == pref)) {
			sg_key_free(&best);
			best = k;
		} else {
			sg_key_free(&k);
		}
	}
	if (best != NULL) {
		*key_r = best;
		*status_r = SG_CRYPTO_OK;
		ret = 1;
	} else {
		*status_r = why;
		if (why == SG_CRYPTO_NO_KEY)
			sg_error_set(err, "no key for %s", norm);
		else
			sg_error_set(err, "%s: %s", norm, sg_error_msg(&why_err));
		ret = 0;
	}
out:
	sg_store_keys_free(&rows, n);
	sg_error_clear(&why_err);
	free(norm);
	return ret;
}
