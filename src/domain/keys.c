/* Our domain keys: the long-term signing key, short-lived encryption keys
 * generated ahead, and their crypto-erasure after window + grace. */
#include "domain/internal.h"
#include "keys/keystore.h"
#include "keys/master.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/secret.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define KIND_SIGNING "signing"
#define KIND_ENCRYPTION "encryption"
#define KIND_RETIRED "retired" /* issued by a replaced signing key: kept to decrypt, not published */
#define SIGNING_LIFETIME (10 * 365 * 86400L) /* the long-term key: pinned by peers */
#define EPOCH_KEY_LEN 32
#define KEYSET_TTL 60 /* seconds a snapshot of our private keys is used before the store is read again */

time_t sg_domain_now(void)
{
	/* Test-only clock override (doc/domain.md): never set in production. */
	const char *s = getenv("SEALGATE_NOW");
	char *end = NULL;

	if (s != NULL && *s != '\0') {
		long long v = strtoll(s, &end, 10);
		if (end != NULL && *end == '\0' && v > 0)
			return (time_t)v;
	}
	return time(NULL);
}

bool sg_domain_configured(const struct sg_config *cfg)
{
	return cfg->domain_names != NULL && strspn(cfg->domain_names, " \t,") != strlen(cfg->domain_names);
}

int sg_domain_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
		return 0;
	for (const char *p = s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return 0;
	return strstr(s, "..") == NULL;
}

static int parse_domains(struct sg_domain *d, struct sg_error *err)
{
	char *copy = sg_strdup(d->cfg->domain_names), *save = NULL;
	int ret = 1;

	for (char *t = strtok_r(copy, " \t,", &save); t != NULL; t = strtok_r(NULL, " \t,", &save)) {
		for (char *c = t; *c != '\0'; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		if (!sg_domain_name_ok(t)) {
			sg_error_set(err, "domain_names: '%s' is not a domain name", t);
			ret = -1;
			break;
		}
		d->domains = sg_reallocarray(d->domains, d->n_domains + 1, sizeof(char *));
		d->domains[d->n_domains++] = sg_strdup(t);
	}
	free(copy);
	if (ret > 0 && d->n_domains == 0) {
		sg_error_set(err, "domain_names: no domain configured");
		ret = -1;
	}
	return ret;
}

int sg_domain_new(const struct sg_config *cfg, const struct sg_master_key *mk,
		  struct sg_domain **d_r, struct sg_error *err)
{
	struct sg_domain *d = sg_calloc(1, sizeof(*d));

	*d_r = NULL;
	d->cfg = cfg;
	d->mk = mk;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->released, NULL);
	if (sg_config_check_domain(cfg, err) < 0 || parse_domains(d, err) < 0)
		goto fail;
	if (sg_store_open_config(cfg, NULL, &d->store, err) < 0) {
		sg_error_prefix(err, "domain: key store");
		goto fail;
	}
	*d_r = d;
	return 1;
fail:
	sg_domain_free(&d);
	return -1;
}

void sg_domain_free(struct sg_domain **dp)
{
	struct sg_domain *d = *dp;
	if (d == NULL)
		return;
	sg_domain_keyset_unref(d, &d->keyset);
	free(d->live); /* empty: every holder has given its snapshot back */
	sg_domain_drop_peers(d);
	sg_domcert_signer_free(&d->signer);
	for (size_t i = 0; i < d->n_domains; i++)
		free(d->domains[i]);
	free(d->domains);
	sg_store_close(&d->store);
	pthread_cond_destroy(&d->released);
	pthread_mutex_destroy(&d->lock);
	free(d);
	*dp = NULL;
}

int sg_domain_is_ours(const struct sg_domain *d, const char *domain)
{
	for (size_t i = 0; i < d->n_domains; i++)
		if (strcasecmp(d->domains[i], domain) == 0)
			return 1;
	return 0;
}

void sg_domain_lock(struct sg_domain *d)
{
	pthread_mutex_lock(&d->lock);
}

void sg_domain_unlock(struct sg_domain *d)
{
	pthread_mutex_unlock(&d->lock);
}

/* ---- the long-term signing key ---- */

static int find_signing_row(struct sg_domain *d, struct sg_store_domain_key *row_r,
			    struct sg_error *err)
{
	struct sg_store_domain_key *rows = NULL;
	size_t n = 0;
	int found = 0;

	memset(row_r, 0, sizeof(*row_r));
	if (sg_store_domain_key_list(d->store, &rows, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n && !found; i++) {
		if (strcmp(rows[i].kind, KIND_SIGNING) != 0)
			continue;
		*row_r = rows[i];
		memset(&rows[i], 0, sizeof(rows[i]));
		found = 1;
	}
	sg_store_domain_keys_free(&rows, n);
	return found;
}

static void row_clear(struct sg_store_domain_key *k)
{
	free(k->fingerprint);
	free(k->kind);
	free(k->cert);
	memset(k, 0, sizeof(*k));
}

/* Store a new certificate row and its sealed private parts. */
static int store_new_key(struct sg_domain *d, const char *kind, const char *cert, size_t cert_len,
			 const char *key, size_t key_len, const char *epoch, struct sg_error *err)
{
	struct sg_domcert_info info;
	int ret = -1;

	if (sg_domcert_info(cert, cert_len, &info, err) < 0)
		return -1;
	struct sg_store_domain_key row = {
		.fingerprint = info.fpr, .kind = (char *)kind, .not_before = info.not_before,
		.not_after = info.not_after, .cert = (unsigned char *)cert, .len = cert_len,
	};
	if (sg_store_domain_key_put(d->store, &row, err) < 0)
		goto out;
	if (epoch == NULL) {
		ret = sg_keys_put_private(d->store, d->mk, SG_DOMAIN_OWNER, info.fpr, SG_DOMAIN_P_SIGN,
					  key, key_len, err);
		goto out;
	}
	/* crypto-erasure: the key is readable only with its epoch key, which
	 * lives in its own row under the master key; both go at destruction */
	struct sg_store_secret sec = {
		.owner = SG_DOMAIN_OWNER, .fingerprint = info.fpr, .purpose = SG_DOMAIN_P_DECRYPT,
		.blob = (unsigned char *)key, .len = key_len,
	};
	if (sg_store_secret_put(d->store, &sec, err) < 0)
		goto out;
	ret = sg_keys_put_private(d->store, d->mk, SG_DOMAIN_OWNER, info.fpr, SG_DOMAIN_P_EPOCH,
				  epoch, strlen(epoch), err);
out:
	sg_domcert_info_clear(&info);
	return ret < 0 ? -1 : 1;
}

static int need_mk(const struct sg_domain *d, struct sg_error *err)
{
	if (d->mk != NULL)
		return 1;
	sg_error_set(err, "domain keys need a master key (master_key_file)");
	return -1;
}

/* A new long-term signing key naming domain_names. Transaction open. */
static int create_signing(struct sg_domain *d, time_t now, struct sg_error *err)
{
	char *cert = NULL, *key = NULL;
	size_t cert_len = 0, key_len = 0;
	struct sg_domcert_req req = {
		.domains = (const char *const *)d->domains, .n_domains = d->n_domains,
		.not_before = now - 86400, .not_after = now + SIGNING_LIFETIME, .signing = true,
	};
	int r = sg_domcert_issue(&req, &cert, &cert_len, &key, &key_len, err);

	if (r > 0)
		r = store_new_key(d, KIND_SIGNING, cert, cert_len, key, key_len, NULL, err);
	free(cert);
	if (key != NULL)
		sg_secret_free(&key, key_len + 1);
	if (r > 0)
		sg_log_info("domain: created the signing key for %s", d->cfg->domain_names);
	return r < 0 ? -1 : 1;
}

int sg_domain_init(struct sg_domain *d, time_t now, struct sg_error *err)
{
	struct sg_store_domain_key row;
	int ret = -1, r;

	if (need_mk(d, err) < 0)
		return -1;
	sg_domain_lock(d);
	if (sg_store_begin(d->store, err) < 0)
		goto out;
	if (sg_store_xact_lock(d->store, err) < 0 || (r = find_signing_row(d, &row, err)) < 0)
		goto rollback;
	if (r > 0) {
		row_clear(&row);
		sg_store_rollback(d->store);
		ret = 0;
		goto out;
	}
	if (create_signing(d, now, err) < 0)
		goto rollback;
	ret = sg_store_commit(d->store, err) < 0 ? -1 : 1;
	goto out;
rollback:
	sg_store_rollback(d->store);
out:
	sg_domain_unlock(d);
	return ret;
}

/* ---- domain_names against the signing certificate ---- */

static bool short_lived(const char *kind)
{
	return strcmp(kind, KIND_ENCRYPTION) == 0 || strcmp(kind, KIND_RETIRED) == 0;
}

static bool same_names(const struct sg_domain *d, const struct sg_domcert_info *info)
{
	for (size_t i = 0; i < d->n_domains; i++)
		if (!sg_domcert_names(info, d->domains[i]))
			return false;
	for (size_t i = 0; i < info->n_domains; i++)
		if (!sg_domain_is_ours(d, info->domains[i]))
			return false;
	return true;
}

/* The signing certificate names the domains peers pin it for: a changed
 * domain_names is a new domain identity, never a silent re-issue. Lock
 * held. 1 same (or no key yet), 0 differs (err), -1. */
static int check_names_locked(struct sg_domain *d, struct sg_error *err)
{
	struct sg_store_domain_key row;
	struct sg_domcert_info info;
	int r = find_signing_row(d, &row, err);

	if (r <= 0)
		return r < 0 ? -1 : 1;
	if (sg_domcert_info(row.cert, row.len, &info, err) < 0) {
		row_clear(&row);
		return -1;
	}
	r = same_names(d, &info);
	if (!r) {
		char *have = sg_strdup("");
		for (size_t i = 0; i < info.n_domains; i++) {
			char *t = sg_asprintf("%s%s%s", have, i > 0 ? " " : "", info.domains[i]);
			free(have);
			have = t;
		}
		sg_error_set(err, "domain_names (%s) differs from the domains the signing key %.16s names "
			     "(%s): peers pinned that key for those domains. Restore domain_names, or run "
			     "`sealgate domain rekey` for a new signing key naming the new set (peers must "
			     "pin it again)", d->cfg->domain_names, row.fingerprint, have);
		free(have);
	}
	sg_domcert_info_clear(&info);
	row_clear(&row);
	return r;
}

int sg_domain_check_names(struct sg_domain *d, struct sg_error *err)
{
	sg_domain_lock(d);
	int r = check_names_locked(d, err);
	sg_domain_unlock(d);
	return r;
}

/* Replace the signing key: the old one's rows go, its short-lived keys
 * stay (readable until their window + grace) but are no longer published
 * (their issuer is gone). Transaction open. */
static int rekey_locked(struct sg_domain *d, time_t now, struct sg_error *err)
{
	struct sg_store_domain_key *rows = NULL;
	size_t n = 0;
	int r = sg_store_domain_key_list(d->store, &rows, &n, err) < 0 ? -1 : 1;

	for (size_t i = 0; i < n && r > 0; i++) {
		struct sg_store_domain_key *k = &rows[i];
		if (strcmp(k->kind, KIND_SIGNING) == 0) {
			r = sg_store_secret_delete(d->store, SG_DOMAIN_OWNER, k->fingerprint, SG_DOMAIN_P_SIGN,
						   err) < 0 ? -1 : 1;
		} else if (strcmp(k->kind, KIND_ENCRYPTION) == 0) {
			struct sg_store_domain_key retired = *k;
			retired.kind = (char *)KIND_RETIRED;
			if (sg_store_domain_key_delete(d->store, k->fingerprint, err) < 0 ||
			    sg_store_domain_key_put(d->store, &retired, err) < 0)
				r = -1;
			continue;
		} else {
			continue;
		}
		if (r > 0 && sg_store_domain_key_delete(d->store, k->fingerprint, err) < 0)
			r = -1;
	}
	sg_store_domain_keys_free(&rows, n);
	return r > 0 ? create_signing(d, now, err) : -1;
}

int sg_domain_rekey(struct sg_domain *d, time_t now, struct sg_domain_rotation *rot,
		    struct sg_error *err)
{
	int ret = -1;

	if (need_mk(d, err) < 0)
		return -1;
	sg_domain_lock(d);
	if (sg_store_begin(d->store, err) < 0)
		goto out;
	if (sg_store_xact_lock(d->store, err) < 0 || rekey_locked(d, now, err) < 0) {
		sg_store_rollback(d->store);
		goto out;
	}
	if (sg_store_commit(d->store, err) < 0 || sg_store_scrub(d->store, err) < 0)
		goto out;
	sg_domcert_signer_free(&d->signer); /* the next seal loads the new one */
	ret = 1;
out:
	sg_domain_unlock(d);
	if (ret < 0) {
		sg_error_prefix(err, "domain rekey");
		return -1;
	}
	/* short-lived keys for the windows ahead, issued by the new key */
	return sg_domain_rotate(d, now, rot, err);
}

/* Cert PEM + private PEM into one sg_key. */
static int load_pair(const unsigned char *cert, size_t cert_len, const unsigned char *key,
		     size_t key_len, const char *pass, struct sg_key **k_r, struct sg_error *err)
{
	size_t n = cert_len + 1 + key_len;
	unsigned char *both = sg_malloc(n + 1);
	enum sg_crypto_status st = SG_CRYPTO_OK;

	memcpy(both, cert, cert_len);
	both[cert_len] = '\n';
	memcpy(both + cert_len + 1, key, key_len);
	both[n] = '\0';
	int r = sg_key_load_mem(both, n, pass, k_r, &st, err);
	sg_secret_free(&both, n + 1);
	return r < 0 ? -1 : 1;
}

int sg_domain_signer(struct sg_domain *d, const struct sg_domcert_signer **s_r,
		     struct sg_error *err)
{
	struct sg_store_domain_key row;
	unsigned char *key = NULL;
	size_t key_len = 0;
	int r;

	*s_r = NULL;
	if (d->signer != NULL) {
		*s_r = d->signer;
		return 1;
	}
	if (need_mk(d, err) < 0 || (r = find_signing_row(d, &row, err)) < 0)
		return -1;
	if (r == 0) {
		sg_error_set(err, "no domain signing key (run sealgate domain init)");
		return 0;
	}
	r = sg_keys_get_private(d->store, d->mk, SG_DOMAIN_OWNER, row.fingerprint, SG_DOMAIN_P_SIGN,
				&key, &key_len, err);
	if (r == 0)
		sg_error_set(err, "the private part of signing key %s is missing", row.fingerprint);
	if (r > 0 && sg_domcert_signer_load(row.cert, row.len, key, key_len, NULL, &d->signer, err) < 0)
		r = -1;
	if (key != NULL)
		sg_secret_free(&key, key_len + 1);
	row_clear(&row);
	*s_r = d->signer;
	return r;
}

/* ---- short-lived keys ---- */

static char *new_epoch_key(void)
{
	unsigned char rnd[EPOCH_KEY_LEN];
	static const char hx[] = "0123456789abcdef";
	char *s = sg_malloc(EPOCH_KEY_LEN * 2 + 1);

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		sg_fatal("getrandom failed");
	for (size_t i = 0; i < EPOCH_KEY_LEN; i++) {
		s[2 * i] = hx[rnd[i] >> 4];
		s[2 * i + 1] = hx[rnd[i] & 15];
	}
	s[EPOCH_KEY_LEN * 2] = '\0';
	sg_memwipe(rnd, sizeof(rnd));
	return s;
}

static int signing_pem(struct sg_domain *d, struct sg_buf *pem, struct sg_error *err)
{
	struct sg_store_domain_key row;
	unsigned char *key = NULL;
	size_t key_len = 0;
	int r = find_signing_row(d, &row, err);

	if (r == 0)
		sg_error_set(err, "no domain signing key (run sealgate domain init)");
	if (r <= 0)
		return -1;
	r = sg_keys_get_private(d->store, d->mk, SG_DOMAIN_OWNER, row.fingerprint, SG_DOMAIN_P_SIGN,
				&key, &key_len, err);
	if (r == 0)
		sg_error_set(err, "the private part of signing key %s is missing", row.fingerprint);
	if (r > 0 && (!sg_buf_append(pem, row.cert, row.len) || !sg_buf_append(pem, key, key_len))) {
		sg_error_set(err, "signing key too large");
		r = -1;
	}
	if (key != NULL)
		sg_secret_free(&key, key_len + 1);
	row_clear(&row);
	return r > 0 ? 1 : -1;
}

static int generate_one(struct sg_domain *d, const struct sg_buf *issuer, time_t nb, time_t na,
			struct sg_error *err)
{
	char *epoch = new_epoch_key(), *cert = NULL, *key = NULL;
	size_t cert_len = 0, key_len = 0;
	struct sg_domcert_req req = {
		.domains = (const char *const *)d->domains, .n_domains = d->n_domains,
		.not_before = nb, .not_after = na, .signing = false,
		.issuer_pem = (const char *)issuer->data, .issuer_len = issuer->len, .key_pass = epoch,
	};
	int r = sg_domcert_issue(&req, &cert, &cert_len, &key, &key_len, err);

	if (r > 0)
		r = store_new_key(d, KIND_ENCRYPTION, cert, cert_len, key, key_len, epoch, err);
	free(cert);
	if (key != NULL)
		sg_secret_free(&key, key_len + 1);
	sg_secret_free(&epoch, EPOCH_KEY_LEN * 2 + 1);
	return r;
}

static bool have_window(const struct sg_store_domain_key *rows, size_t n, time_t start)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(rows[i].kind, KIND_ENCRYPTION) == 0 && rows[i].not_before == start)
			return true;
	return false;
}

/* Both private rows, then the public one: nothing left that decrypts. */
static int destroy_one(struct sg_domain *d, const char *fpr, struct sg_error *err)
{
	if (sg_store_secret_delete(d->store, SG_DOMAIN_OWNER, fpr, SG_DOMAIN_P_DECRYPT, err) < 0 ||
	    sg_store_secret_delete(d->store, SG_DOMAIN_OWNER, fpr, SG_DOMAIN_P_EPOCH, err) < 0 ||
	    sg_store_domain_key_delete(d->store, fpr, err) < 0)
		return -1;
	return 1;
}

static int rotate_locked(struct sg_domain *d, time_t now, struct sg_domain_rotation *r,
			 struct sg_error *err)
{
	struct sg_store_domain_key *rows = NULL;
	struct sg_buf issuer;
	size_t n = 0;
	const time_t life = (time_t)d->cfg->domain_key_lifetime;
	const time_t first = now - now % life; /* windows aligned to the lifetime */
	int ret = -1;

	sg_buf_init(&issuer, 64 * 1024);
	if (check_names_locked(d, err) <= 0)
		goto out;
	if (sg_store_domain_key_list(d->store, &rows, &n, err) < 0 || signing_pem(d, &issuer, err) < 0)
		goto out;
	for (unsigned k = 0; k < d->cfg->domain_keys_ahead; k++) {
		time_t nb = first + (time_t)k * life;
		if (have_window(rows, n, nb))
			continue;
		if (generate_one(d, &issuer, nb, nb + life, err) < 0)
			goto out;
		r->generated++;
	}
	for (size_t i = 0; i < n; i++) {
		if (!short_lived(rows[i].kind) || rows[i].not_after + (time_t)d->cfg->domain_key_grace > now)
			continue;
		if (destroy_one(d, rows[i].fingerprint, err) < 0)
			goto out;
		sg_log_info("domain: destroyed short-lived key %s (window ended %lld, grace %us)",
			    rows[i].fingerprint, (long long)rows[i].not_after, d->cfg->domain_key_grace);
		r->destroyed++;
	}
	ret = 1;
out:
	sg_buf_free_secret(&issuer);
	sg_store_domain_keys_free(&rows, n);
	return ret;
}

/* Take our private keys out of the cache and wait until no opener holds
 * them any more, then wipe them: after a rotation returns, a destroyed
 * key is in no one's hands. Openers give snapshots back under the lock,
 * which the wait releases; new openers meanwhile read the store again,
 * where the destroyed rows are gone already. Lock held. */
static bool any_retired(const struct sg_domain *d)
{
	for (size_t i = 0; i < d->n_live; i++)
		if (d->live[i]->retired)
			return true;
	return false;
}

static void retire_keysets(struct sg_domain *d)
{
	/* older snapshots replaced after KEYSET_TTL may still be held too */
	for (size_t i = 0; i < d->n_live; i++)
		d->live[i]->retired = true;
	sg_domain_keyset_unref(d, &d->keyset);
	while (any_retired(d))
		pthread_cond_wait(&d->released, &d->lock);
}

int sg_domain_rotate(struct sg_domain *d, time_t now, struct sg_domain_rotation *r,
		     struct sg_error *err)
{
	int ret = -1;

	memset(r, 0, sizeof(*r));
	if (need_mk(d, err) < 0)
		return -1;
	sg_domain_lock(d);
	/* every instance drops what it holds (peers' keys load again) */
	sg_domain_drop_peers(d);
	if (sg_store_begin(d->store, err) < 0)
		goto out;
	if (sg_store_xact_lock(d->store, err) < 0 || rotate_locked(d, now, r, err) < 0) {
		sg_store_rollback(d->store);
		goto out;
	}
	if (sg_store_commit(d->store, err) < 0)
		goto out;
	if (r->destroyed > 0 && sg_store_scrub(d->store, err) < 0) {
		sg_error_prefix(err, "domain: keys destroyed, but the WAL was not truncated");
		goto out;
	}
	ret = 1;
out:
	retire_keysets(d);
	sg_domain_unlock(d);
	if (ret < 0)
		sg_error_prefix(err, "domain rotation");
	return ret;
}

/* ---- loading private keys ---- */

static int load_short_lived(struct sg_domain *d, const struct sg_store_domain_key *row,
			    struct sg_key **k_r, struct sg_error *err)
{
	struct sg_store_secret sec;
	unsigned char *epoch = NULL;
	size_t epoch_len = 0;
	int r;

	*k_r = NULL;
	r = sg_store_secret_get(d->store, SG_DOMAIN_OWNER, row->fingerprint, SG_DOMAIN_P_DECRYPT, &sec, err);
	if (r <= 0)
		return r;
	r = sg_keys_get_private(d->store, d->mk, SG_DOMAIN_OWNER, row->fingerprint, SG_DOMAIN_P_EPOCH,
				&epoch, &epoch_len, err);
	if (r > 0 && load_pair(row->cert, row->len, sec.blob, sec.len, (const char *)epoch, k_r, err) < 0)
		r = -1;
	if (epoch != NULL)
		sg_secret_free(&epoch, epoch_len + 1);
	sg_store_secret_clear(&sec);
	return r;
}

/* ---- snapshots of keys ---- */

static time_t now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

struct sg_domain_keyset *sg_domain_keyset_new(struct sg_key **keys, size_t n)
{
	struct sg_domain_keyset *ks = sg_calloc(1, sizeof(*ks));

	ks->refs = 1;
	ks->n = n;
	ks->keys = keys;
	ks->x509 = sg_calloc(n + 1, sizeof(*ks->x509));
	ks->dead = sg_calloc(n + 1, sizeof(*ks->dead));
	for (size_t i = 0; i < n; i++)
		ks->x509[i] = sg_key_x509(keys[i]);
	ks->loaded = now_mono();
	return ks;
}

void sg_domain_keyset_unref(struct sg_domain *d, struct sg_domain_keyset **ksp)
{
	struct sg_domain_keyset *ks = *ksp;

	*ksp = NULL;
	if (ks == NULL)
		return;
	pthread_cond_broadcast(&d->released);
	if (--ks->refs > 0)
		return;
	for (size_t i = 0; ks->tracked && i < d->n_live; i++) {
		if (d->live[i] == ks) {
			d->live[i] = d->live[--d->n_live];
			break;
		}
	}
	for (size_t i = 0; i < ks->n; i++)
		sg_key_free(&ks->keys[i]); /* OpenSSL clears the EC scalar as it frees it */
	free(ks->keys);
	free(ks->x509);
	free(ks->dead);
	sg_domcert_cert_free(&ks->anchor);
	free(ks);
}

void sg_domain_keyset_release(struct sg_domain *d, struct sg_domain_keyset **ks)
{
	if (*ks == NULL)
		return;
	sg_domain_lock(d);
	sg_domain_keyset_unref(d, ks);
	sg_domain_unlock(d);
}

size_t sg_domain_keyset_keys(const struct sg_domain_keyset *ks, struct sg_key *const **keys_r)
{
	*keys_r = ks->keys;
	return ks->n;
}

/* The store is the truth: a key another instance destroyed is gone from
 * the new snapshot, one it generated is in it. Keys whose window + grace
 * has ended are left out even before a rotation destroys them. */
static int load_keyset(struct sg_domain *d, time_t now, struct sg_domain_keyset **ks_r,
		       struct sg_error *err)
{
	struct sg_store_domain_key *rows = NULL;
	struct sg_key **keys = NULL;
	time_t *dead = NULL;
	size_t n = 0, m = 0;
	int ret = -1;

	if (need_mk(d, err) < 0 || sg_store_domain_key_list(d->store, &rows, &n, err) < 0)
		return -1;
	keys = sg_calloc(n + 1, sizeof(*keys));
	dead = sg_calloc(n + 1, sizeof(*dead));
	for (size_t i = 0; i < n; i++) {
		time_t end = (time_t)rows[i].not_after + (time_t)d->cfg->domain_key_grace;
		if (!short_lived(rows[i].kind) || end <= now)
			continue;
		if (load_short_lived(d, &rows[i], &keys[m], err) < 0)
			goto out;
		if (keys[m] != NULL)
			dead[m++] = end;
	}
	*ks_r = sg_domain_keyset_new(keys, m);
	memcpy((*ks_r)->dead, dead, m * sizeof(*dead));
	(*ks_r)->tracked = true;
	d->live = sg_reallocarray(d->live, d->n_live + 1, sizeof(*d->live));
	d->live[d->n_live++] = *ks_r;
	keys = NULL;
	ret = 1;
out:
	if (keys != NULL) {
		for (size_t i = 0; i < m; i++)
			sg_key_free(&keys[i]);
		free(keys);
	}
	free(dead);
	sg_store_domain_keys_free(&rows, n);
	return ret;
}

static bool keyset_fresh(const struct sg_domain_keyset *ks, time_t now)
{
	if (ks == NULL || now_mono() - ks->loaded >= KEYSET_TTL)
		return false;
	for (size_t i = 0; i < ks->n; i++)
		if (ks->dead[i] <= now)
			return false;
	return true;
}

int sg_domain_keys_get(struct sg_domain *d, time_t now, bool refresh,
		       struct sg_domain_keyset **ks_r, struct sg_error *err)
{
	struct sg_domain_keyset *fresh = NULL;
	int ret = 1;

	*ks_r = NULL;
	sg_domain_lock(d);
	if (refresh || !keyset_fresh(d->keyset, now)) {
		ret = load_keyset(d, now, &fresh, err);
		if (ret > 0) {
			sg_domain_keyset_unref(d, &d->keyset); /* holders keep theirs */
			d->keyset = fresh;
		}
	}
	if (ret > 0) {
		d->keyset->refs++;
		*ks_r = d->keyset;
	}
	sg_domain_unlock(d);
	return ret;
}

int sg_domain_key_pem(struct sg_domain *d, const char *fpr, struct sg_buf *out, struct sg_error *err)
{
	struct sg_store_domain_key *rows = NULL;
	struct sg_store_secret sec;
	unsigned char *epoch = NULL;
	size_t n = 0, epoch_len = 0;
	int ret = -1;

	memset(&sec, 0, sizeof(sec));
	if (need_mk(d, err) < 0)
		return -1;
	sg_domain_lock(d);
	if (sg_store_domain_key_list(d->store, &rows, &n, err) < 0)
		goto out;
	ret = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(rows[i].fingerprint, fpr) != 0 || !short_lived(rows[i].kind))
			continue;
		ret = sg_store_secret_get(d->store, SG_DOMAIN_OWNER, rows[i].fingerprint,
					  SG_DOMAIN_P_DECRYPT, &sec, err);
		if (ret > 0)
			ret = sg_keys_get_private(d->store, d->mk, SG_DOMAIN_OWNER, rows[i].fingerprint,
						  SG_DOMAIN_P_EPOCH, &epoch, &epoch_len, err);
		if (ret > 0 && (!sg_buf_append(out, rows[i].cert, rows[i].len) ||
				!sg_buf_printf(out, "# epoch key (PKCS#8 passphrase): %s\n", (const char *)epoch) ||
				!sg_buf_append(out, sec.blob, sec.len))) {
			sg_error_set(err, "output too large");
			ret = -1;
		}
		break;
	}
	if (ret == 0 && err != NULL && err->msg == NULL)
		sg_error_set(err, "no short-lived key %s (destroyed or never ours)", fpr);
out:
	sg_domain_unlock(d);
	if (epoch != NULL)
		sg_secret_free(&epoch, epoch_len + 1);
	sg_store_secret_clear(&sec);
	sg_store_domain_keys_free(&rows, n);
	return ret;
}

static void fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int status_rows(struct sg_domain *d, time_t now, struct sg_buf *out, struct sg_error *err)
{
	struct sg_store_domain_key *rows = NULL;
	size_t n = 0;
	int ok = 1;

	if (sg_store_domain_key_list(d->store, &rows, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n && ok; i++) {
		struct sg_store_secret sec;
		char nb[32], na[32];
		const char *purpose = strcmp(rows[i].kind, KIND_SIGNING) == 0 ? SG_DOMAIN_P_SIGN
									      : SG_DOMAIN_P_DECRYPT;
		int have = sg_store_secret_get(d->store, SG_DOMAIN_OWNER, rows[i].fingerprint, purpose,
					       &sec, err);
		sg_store_secret_clear(&sec);
		if (have < 0) {
			ok = 0;
			break;
		}
		fmt_time((time_t)rows[i].not_before, nb, sizeof(nb));
		fmt_time((time_t)rows[i].not_after, na, sizeof(na));
		const char *state = strcmp(rows[i].kind, KIND_RETIRED) == 0 ? "unpublished"
				    : rows[i].not_before > now ? "ahead"
				    : rows[i].not_after > now ? "current" : "grace";
		ok = sg_buf_printf(out, "%-10s %s %s .. %s %-7s private=%s\n", rows[i].kind,
				   rows[i].fingerprint, nb, na,
				   strcmp(rows[i].kind, KIND_SIGNING) == 0 ? "" : state,
				   have > 0 ? "present" : "destroyed");
	}
	sg_store_domain_keys_free(&rows, n);
	if (!ok && err->msg == NULL)
		sg_error_set(err, "status too large");
	return ok ? 1 : -1;
}

int sg_domain_status(struct sg_domain *d, time_t now, struct sg_buf *out, struct sg_error *err)
{
	char t[32];
	int ret;

	fmt_time(now, t, sizeof(t));
	sg_domain_lock(d);
	ret = sg_buf_printf(out, "domains: %s\nnow: %s\nlifetime %us, ahead %u, grace %us, peer trust %s\n",
			    d->cfg->domain_names, t, d->cfg->domain_key_lifetime,
			    d->cfg->domain_keys_ahead, d->cfg->domain_key_grace,
			    d->cfg->domain_peer_trust) ? 1 : -1;
	if (ret > 0 && (ret = check_names_locked(d, err)) == 0) {
		ret = sg_buf_printf(out, "WARNING: %s\n", sg_error_msg(err)) ? 1 : -1;
		sg_error_clear(err);
	}
	if (ret > 0)
		ret = status_rows(d, now, out, err);
	if (ret > 0)
		ret = sg_domain_status_peers(d, out, err);
	sg_domain_unlock(d);
	return ret;
}
