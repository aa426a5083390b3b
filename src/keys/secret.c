/* Users' secret keys in the key store: opened with the master key only
 * when an operation needs them (signing as an address, decrypting). */
#include "keys/secret.h"
#include "keys/keystore.h"
#include "keys/master.h"
#include "store/store.h"
#include "util/mem.h"
#include "util/secret.h"

#include <stdlib.h>
#include <string.h>

/* Is path inside dir? Both must exist; compared after realpath(). */
static bool inside(const char *path, const char *dir)
{
	char *rp = realpath(path, NULL), *rd = realpath(dir, NULL);
	bool in = false;

	if (rp != NULL && rd != NULL) {
		size_t n = strlen(rd);
		in = strncmp(rp, rd, n) == 0 && (rp[n] == '/' || rp[n] == '\0' || n == 1);
	}
	free(rp);
	free(rd);
	return in;
}

int sg_keys_master_load(const char *file, const char *passphrase, const char *state_dir,
			struct sg_master_key **mk_r, struct sg_error *err)
{
	*mk_r = NULL;
	if (passphrase != NULL)
		return sg_master_key_from_passphrase(passphrase, mk_r, err);
	if (file == NULL || *file == '\0') {
		sg_error_set(err, "no master key: set master_key_file or give --master-key FILE "
			     "(create one with 'sealgate key init-master --master-key FILE')");
		return -1;
	}
	if (state_dir != NULL && inside(file, state_dir)) {
		sg_error_set(err, "master key %s is inside state_dir %s; keep it elsewhere", file, state_dir);
		return -1;
	}
	return sg_master_key_load_file(file, mk_r, err);
}

static bool is_pgp(const struct sg_store_key *row)
{
	return strcmp(row->kind, "pgp") == 0;
}

int sg_keys_open_secret(struct sg_store *store, const struct sg_master_key *mk,
			const struct sg_store_key *row, struct sg_key **key_r,
			struct sg_error *why, struct sg_error *err)
{
	unsigned char *plain = NULL;
	size_t len = 0;
	enum sg_crypto_status st = SG_CRYPTO_OK;

	*key_r = NULL;
	int r = sg_keys_get_private(store, mk, row->addr, row->fingerprint,
				    is_pgp(row) ? SG_KEYS_PGP_SECRET : SG_KEYS_SMIME_SECRET, &plain, &len, err);
	if (r <= 0) {
		if (r == 0)
			sg_error_set(why, "no private key stored for %s", row->fingerprint);
		return r;
	}
	/* An S/MIME private key is stored without its certificate, which is
	 * the public row. */
	r = is_pgp(row) ? sg_key_load_mem(plain, len, NULL, key_r, &st, why)
			: sg_key_load_x509_parts(plain, len, row->data, row->len, key_r, &st, why);
	sg_secret_free(&plain, len + 1);
	if (r < 0)
		return 0;
	if (!sg_key_has_secret(*key_r)) {
		sg_error_set(why, "stored key %s has no secret part", row->fingerprint);
		sg_key_free(key_r);
		return 0;
	}
	return 1;
}

static bool kind_is(const struct sg_store_key *row, enum sg_key_kind kind)
{
	return strcmp(row->kind, kind == SG_KEY_PGP ? "pgp" : "x509") == 0;
}

int sg_keys_find_signer(struct sg_store *store, const struct sg_master_key *mk, const char *addr,
			enum sg_key_kind kind, time_t now, struct sg_key **key_r, struct sg_error *err)
{
	struct sg_store_key *rows = NULL;
	size_t n = 0;
	struct sg_error why = SG_ERROR_INIT;
	char *norm = sg_keys_normalize_addr(addr, err);
	int ret = 0;

	*key_r = NULL;
	if (norm == NULL)
		return 0;
	if (sg_store_key_list(store, norm, &rows, &n, err) < 0) {
		ret = -1;
		goto out;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		if (!kind_is(&rows[i], kind))
			continue;
		ret = sg_keys_open_secret(store, mk, &rows[i], key_r, &why, err);
		if (ret == 1 && sg_key_usable_for_sign(*key_r, now, NULL, &why) != 1) {
			sg_key_free(key_r);
			ret = 0;
		}
	}
	if (ret == 0)
		sg_error_set(err, "%s: %s", norm, why.msg != NULL ? why.msg : "no signing key stored");
out:
	sg_store_keys_free(&rows, n);
	sg_error_clear(&why);
	free(norm);
	return ret;
}

static bool have_fpr(struct sg_key *const *keys, size_t n, const char *fpr)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(sg_key_fingerprint(keys[i]), fpr) == 0)
			return true;
	return false;
}

/* Does the public key of row pass filter? */
static bool row_wanted(const struct sg_store_key *row, sg_keys_secret_filter *filter, void *ctx)
{
	struct sg_key *pub = NULL;
	enum sg_crypto_status st;

	if (filter == NULL)
		return true;
	if (sg_key_load_mem(row->data, row->len, NULL, &pub, &st, NULL) < 0)
		return false;
	bool want = filter(pub, ctx);
	sg_key_free(&pub);
	return want;
}

int sg_keys_find_secrets(struct sg_store *store, const struct sg_master_key *mk, enum sg_key_kind kind,
			 sg_keys_secret_filter *filter, void *ctx, struct sg_key ***keys_r, size_t *n_r,
			 struct sg_error *err)
{
	struct sg_store_key *rows = NULL;
	size_t n = 0, before = *n_r;
	int ret = -1;

	if (sg_store_key_list(store, NULL, &rows, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct sg_key *k = NULL;
		struct sg_error why = SG_ERROR_INIT;
		if (!kind_is(&rows[i], kind) || have_fpr(*keys_r, *n_r, rows[i].fingerprint) ||
		    !row_wanted(&rows[i], filter, ctx))
			continue;
		int r = sg_keys_open_secret(store, mk, &rows[i], &k, &why, err);
		sg_error_clear(&why);
		if (r < 0)
			goto out;
		if (r == 0)
			continue;
		*keys_r = sg_reallocarray(*keys_r, *n_r + 1, sizeof(**keys_r));
		(*keys_r)[(*n_r)++] = k;
	}
	ret = (int)(*n_r - before);
out:
	sg_store_keys_free(&rows, n);
	return ret;
}

int sg_keys_each_secret(struct sg_store *store, const struct sg_master_key *mk, const char *addr,
			const char *kind, const char *purpose, sg_keys_secret_fn *fn, void *ctx,
			size_t *n_opened_r, struct sg_error *err)
{
	struct sg_store_key *rows = NULL;
	struct sg_error why = SG_ERROR_INIT;
	size_t n = 0, opened = 0;
	int ret = 0;
	char *norm = sg_keys_normalize_addr(addr, err);

	if (norm == NULL)
		return -1;
	if (sg_store_key_list(store, norm, &rows, &n, err) < 0) {
		ret = -1;
		goto out;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		unsigned char *plain = NULL;
		size_t len = 0;
		if (strcmp(rows[i].kind, kind) != 0)
			continue;
		int r = sg_keys_get_private(store, mk, rows[i].addr, rows[i].fingerprint, purpose,
					    &plain, &len, err);
		if (r < 0) {
			sg_error_prefix(err, "%s %s", norm, rows[i].fingerprint);
			ret = -1;
			break;
		}
		if (r == 0) {
			sg_error_set(&why, "no private key stored for %s", rows[i].fingerprint);
			continue;
		}
		opened++;
		sg_error_clear(&why);
		ret = fn(ctx, &rows[i], plain, len, &why);
		sg_secret_free(&plain, len + 1);
		if (ret < 0)
			sg_error_set(err, "%s %s: %s", norm, rows[i].fingerprint, sg_error_msg(&why));
	}
	if (ret == 0)
		sg_error_set(err, "%s: %s", norm, why.msg != NULL ? why.msg : "no secret key stored");
out:
	if (n_opened_r != NULL)
		*n_opened_r = opened;
	sg_store_keys_free(&rows, n);
	sg_error_clear(&why);
	free(norm);
	return ret;
}
