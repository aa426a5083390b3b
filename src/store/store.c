/* The store's typed operations, written once over the driver table's
 * parameterised queries, and the versioned schema migration at open. */
#include "store/store.h"
#include "config/config.h"
#include "util/mem.h"
#include "util/secret.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct sg_store {
	const struct sg_store_driver *drv;
	void *conn;
};

#define NPARAMS(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *prefix;
	bool keep_prefix;        /* libpq wants the whole URI */
	const struct sg_store_driver *drv;
} schemes[] = {
	{ "sqlite:", false, &sg_store_driver_sqlite },
	{ "postgresql://", true, &sg_store_driver_pgsql },
	{ "postgres://", true, &sg_store_driver_pgsql },
};

static int query(struct sg_store *st, const char *sql, const struct sg_store_param *p,
		 size_t n, struct sg_store_result **res_r, struct sg_error *err)
{
	return st->drv->query(st->conn, sql, p, n, res_r, err);
}

static char *dup_col(struct sg_store *st, struct sg_store_result *res, int col)
{
	const char *s = st->drv->col_text(res, col);
	return sg_strdup(s != NULL ? s : "");
}

static unsigned char *dup_blob(struct sg_store *st, struct sg_store_result *res, int col,
			       size_t *len_r)
{
	size_t len = 0;
	const void *p = st->drv->col_blob(res, col, &len);
	*len_r = 0;
	if (p == NULL)
		return NULL;
	unsigned char *copy = sg_malloc(len + 1);
	memcpy(copy, p, len);
	copy[len] = '\0';
	*len_r = len;
	return copy;
}

/* schema_version holds one row per applied step; the newest is the max. */
static int read_version(struct sg_store *st, int *version_r, struct sg_error *err)
{
	struct sg_store_result *res = NULL;
	int ret = -1;

	if (query(st, "SELECT COALESCE(MAX(version), 0) FROM schema_version", NULL, 0, &res,
		  err) < 0)
		goto out;
	if (st->drv->next(res, err) <= 0) {
		sg_error_set(err, "schema_version: no row");
		goto out;
	}
	*version_r = (int)st->drv->col_int(res, 0);
	ret = 1;
out:
	if (res != NULL)
		st->drv->result_free(res);
	return ret;
}

int sg_store_schema_version(struct sg_store *st, int *version_r, struct sg_error *err)
{
	return read_version(st, version_r, err);
}

/* Apply the pending steps in one transaction: a failed step leaves the
 * schema as it was. A database newer than this program is refused. */
static int migrate(struct sg_store *st, struct sg_error *err)
{
	int version = 0;
	bool in_tx = false;
	int ret = -1;

	if (st->drv->migration_lock_sql != NULL &&
	    st->drv->exec(st->conn, st->drv->migration_lock_sql, err) < 0)
		return -1;
	if (st->drv->exec(st->conn,
			  "CREATE TABLE IF NOT EXISTS schema_version ("
			  " version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
			  err) < 0)
		goto out;
	if (st->drv->begin(st->conn, err) < 0)
		goto out;
	in_tx = true;
	if (read_version(st, &version, err) < 0)
		goto out;
	if (version > (int)st->drv->n_migrations) {
		sg_error_set(err, "schema version %d is newer than this sealgate knows (%zu)",
			     version, st->drv->n_migrations);
		goto out;
	}
	for (size_t i = (size_t)version; i < st->drv->n_migrations; i++) {
		struct sg_store_param p[] = { SG_PINT((int64_t)i + 1), SG_PINT(time(NULL)) };
		if (st->drv->exec(st->conn, st->drv->migrations[i], err) < 0 ||
		    query(st, "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
			  p, NPARAMS(p), NULL, err) < 0) {
			sg_error_prefix(err, "migration %zu", i + 1);
			goto out;
		}
	}
	if (st->drv->exec(st->conn, "COMMIT", err) < 0)
		goto out;
	in_tx = false;
	ret = 1;
out:
	if (in_tx)
		sg_store_rollback(st);
	if (st->drv->migration_unlock_sql != NULL)
		(void)st->drv->exec(st->conn, st->drv->migration_unlock_sql, NULL);
	return ret;
}

int sg_store_open(const char *spec, struct sg_store **store_r, struct sg_error *err)
{
	struct sg_store *st = NULL;

	*store_r = NULL;
	for (size_t i = 0; i < NPARAMS(schemes); i++) {
		size_t n = strlen(schemes[i].prefix);
		if (strncmp(spec, schemes[i].prefix, n) != 0)
			continue;
		st = sg_calloc(1, sizeof(*st));
		st->drv = schemes[i].drv;
		if (st->drv->open(schemes[i].keep_prefix ? spec : spec + n, &st->conn, err) < 0 ||
		    migrate(st, err) < 0) {
			sg_error_prefix(err, "store (%s)", st->drv->name);
			sg_store_close(&st);
			return -1;
		}
		*store_r = st;
		return 1;
	}
	sg_error_set(err, "store: unknown store '%s' (want sqlite:PATH or postgresql://...)", spec);
	return -1;
}

void sg_store_close(struct sg_store **stp)
{
	struct sg_store *st = *stp;
	if (st == NULL)
		return;
	if (st->conn != NULL)
		st->drv->close(st->conn);
	free(st);
	*stp = NULL;
}

const char *sg_store_driver_name(const struct sg_store *st)
{
	return st->drv->name;
}

int sg_store_begin(struct sg_store *st, struct sg_error *err)
{
	return st->drv->begin(st->conn, err);
}

int sg_store_commit(struct sg_store *st, struct sg_error *err)
{
	return st->drv->exec(st->conn, "COMMIT", err);
}

void sg_store_rollback(struct sg_store *st)
{
	(void)st->drv->exec(st->conn, "ROLLBACK", NULL);
}

/* Run a statement for its effect; returns rows changed or -1. */
static int run(struct sg_store *st, const char *sql, const struct sg_store_param *p, size_t n,
	       struct sg_error *err)
{
	struct sg_store_result *res = NULL;
	if (query(st, sql, p, n, &res, err) < 0)
		return -1;
	int64_t changed = st->drv->changes(st->conn, res);
	st->drv->result_free(res);
	return (int)(changed > 0 ? changed : 0);
}

/* ---- user keys ---- */

#define KEY_COLS "addr, fingerprint, kind, wkd_hash, domain, expires, created, source, trust, data"

static void key_from_row(struct sg_store *st, struct sg_store_result *res, struct sg_store_key *k)
{
	k->addr = dup_col(st, res, 0);
	k->fingerprint = dup_col(st, res, 1);
	k->kind = dup_col(st, res, 2);
	k->wkd_hash = dup_col(st, res, 3);
	k->domain = dup_col(st, res, 4);
	k->expires = st->drv->col_int(res, 5);
	k->created = st->drv->col_int(res, 6);
	k->source = dup_col(st, res, 7);
	k->trust = dup_col(st, res, 8);
	k->data = dup_blob(st, res, 9, &k->len);
}

static int fetch_keys(struct sg_store *st, const char *sql, const struct sg_store_param *p,
		      size_t np, struct sg_store_key **keys_r, size_t *n_r, struct sg_error *err)
{
	struct sg_store_result *res = NULL;
	struct sg_store_key *keys = NULL;
	size_t n = 0;
	int r;

	*keys_r = NULL;
	*n_r = 0;
	if (query(st, sql, p, np, &res, err) < 0)
		return -1;
	while ((r = st->drv->next(res, err)) > 0) {
		keys = sg_reallocarray(keys, n + 1, sizeof(*keys));
		memset(&keys[n], 0, sizeof(keys[n]));
		key_from_row(st, res, &keys[n++]);
	}
	st->drv->result_free(res);
	if (r < 0) {
		sg_store_keys_free(&keys, n);
		return -1;
	}
	*keys_r = keys;
	*n_r = n;
	return n > 0 ? 1 : 0;
}

int sg_store_key_put(struct sg_store *st, const struct sg_store_key *k, struct sg_error *err)
{
	struct sg_store_param p[] = {
		SG_PTEXT(k->addr), SG_PTEXT(k->fingerprint), SG_PTEXT(k->kind),
		SG_PTEXT(k->wkd_hash != NULL ? k->wkd_hash : ""),
		SG_PTEXT(k->domain != NULL ? k->domain : ""), SG_PINT(k->expires),
		SG_PINT(k->created != 0 ? k->created : time(NULL)),
		SG_PTEXT(k->source != NULL ? k->source : ""),
		SG_PTEXT(k->trust != NULL ? k->trust : ""), SG_PBLOB(k->data, k->len),
	};
	if (run(st,
		"INSERT INTO user_keys (" KEY_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
		" ON CONFLICT (addr, fingerprint) DO UPDATE SET kind = excluded.kind,"
		" wkd_hash = excluded.wkd_hash, domain = excluded.domain,"
		" expires = excluded.expires, created = excluded.created,"
		" source = excluded.source, trust = excluded.trust, data = excluded.data",
		p, NPARAMS(p), err) < 0) {
		sg_error_prefix(err, "store key %s", k->addr);
		return -1;
	}
	return 1;
}

int sg_store_key_list(struct sg_store *st, const char *addr, struct sg_store_key **keys_r,
		      size_t *n_r, struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(addr) };
	if (addr == NULL)
		return fetch_keys(st, "SELECT " KEY_COLS " FROM user_keys ORDER BY addr, fingerprint",
				  NULL, 0, keys_r, n_r, err);
	return fetch_keys(st,
			  "SELECT " KEY_COLS " FROM user_keys WHERE addr = $1"
			  " ORDER BY addr, fingerprint",
			  p, 1, keys_r, n_r, err);
}

int sg_store_key_get(struct sg_store *st, const char *addr, const char *fingerprint,
		     struct sg_store_key *key_r, struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(addr), SG_PTEXT(fingerprint) };
	struct sg_store_key *keys = NULL;
	size_t n = 0;

	memset(key_r, 0, sizeof(*key_r));
	int r = fetch_keys(st, "SELECT " KEY_COLS " FROM user_keys WHERE addr = $1 AND fingerprint = $2",
			   p, NPARAMS(p), &keys, &n, err);
	if (r <= 0)
		return r;
	*key_r = keys[0];
	free(keys);
	return 1;
}

int sg_store_key_by_wkd(struct sg_store *st, const char *domain, const char *hash,
			struct sg_store_key **keys_r, size_t *n_r, struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(hash), SG_PTEXT(domain) };
	if (domain == NULL)
		return fetch_keys(st,
				  "SELECT " KEY_COLS " FROM user_keys WHERE wkd_hash = $1"
				  " AND kind = 'pgp' ORDER BY addr, fingerprint",
				  p, 1, keys_r, n_r, err);
	return fetch_keys(st,
			  "SELECT " KEY_COLS " FROM user_keys WHERE wkd_hash = $1 AND domain = $2"
			  " AND kind = 'pgp' ORDER BY addr, fingerprint",
			  p, 2, keys_r, n_r, err);
}

int sg_store_key_delete(struct sg_store *st, const char *addr, const char *fingerprint,
			struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(addr), SG_PTEXT(fingerprint) };
	if (fingerprint == NULL)
		return run(st, "DELETE FROM user_keys WHERE addr = $1", p, 1, err);
	return run(st, "DELETE FROM user_keys WHERE addr = $1 AND fingerprint = $2", p, 2, err);
}

void sg_store_key_clear(struct sg_store_key *k)
{
	free(k->addr);
	free(k->fingerprint);
	free(k->kind);
	free(k->wkd_hash);
	free(k->domain);
	free(k->source);
	free(k->trust);
	free(k->data);
	memset(k, 0, sizeof(*k));
}

void sg_store_keys_free(struct sg_store_key **keys, size_t n)
{
	if (*keys == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		sg_store_key_clear(&(*keys)[i]);
	free(*keys);
	*keys = NULL;
}

/* ---- private keys (encrypted blobs) ---- */

int sg_store_secret_put(struct sg_store *st, const struct sg_store_secret *s, struct sg_error *err)
{
	struct sg_store_param p[] = {
		SG_PTEXT(s->owner), SG_PTEXT(s->fingerprint), SG_PTEXT(s->purpose),
		SG_PINT(s->created != 0 ? s->created : time(NULL)), SG_PBLOB(s->blob, s->len),
	};
	if (run(st,
		"INSERT INTO private_keys (owner, fingerprint, purpose, created, blob)"
		" VALUES ($1,$2,$3,$4,$5) ON CONFLICT (owner, fingerprint, purpose)"
		" DO UPDATE SET created = excluded.created, blob = excluded.blob",
		p, NPARAMS(p), err) < 0) {
		sg_error_prefix(err, "store private key of %s", s->owner);
		return -1;
	}
	return 1;
}

int sg_store_secret_get(struct sg_store *st, const char *owner, const char *fingerprint,
			const char *purpose, struct sg_store_secret *s, struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(owner), SG_PTEXT(fingerprint), SG_PTEXT(purpose) };
	struct sg_store_result *res = NULL;

	memset(s, 0, sizeof(*s));
	if (query(st,
		  "SELECT owner, fingerprint, purpose, created, blob FROM private_keys"
		  " WHERE owner = $1 AND fingerprint = $2 AND purpose = $3",
		  p, NPARAMS(p), &res, err) < 0)
		return -1;
	int r = st->drv->next(res, err);
	if (r > 0) {
		s->owner = dup_col(st, res, 0);
		s->fingerprint = dup_col(st, res, 1);
		s->purpose = dup_col(st, res, 2);
		s->created = st->drv->col_int(res, 3);
		s->blob = dup_blob(st, res, 4, &s->len);
	}
	st->drv->result_free(res);
	return r;
}

int sg_store_secret_delete(struct sg_store *st, const char *owner, const char *fingerprint,
			   const char *purpose, struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(owner), SG_PTEXT(fingerprint), SG_PTEXT(purpose) };
	return run(st,
		   "DELETE FROM private_keys WHERE owner = $1 AND fingerprint = $2 AND purpose = $3",
		   p, NPARAMS(p), err);
}

void sg_store_secret_clear(struct sg_store_secret *s)
{
	free(s->owner);
	free(s->fingerprint);
	free(s->purpose);
	if (s->blob != NULL)
		sg_secret_free(&s->blob, s->len);
	memset(s, 0, sizeof(*s));
}

/* ---- remote-key cache ---- */

int sg_store_cache_put(struct sg_store *st, const struct sg_store_cache *c, struct sg_error *err)
{
	struct sg_store_param p[] = {
		SG_PTEXT(c->addr), SG_PTEXT(c->source), SG_PTEXT(c->trust != NULL ? c->trust : ""),
		SG_PINT(c->fetched_at), SG_PINT(c->ttl), SG_PINT(c->negative ? 1 : 0),
		c->negative ? (struct sg_store_param)SG_PBLOB(NULL, 0)
			    : (struct sg_store_param)SG_PBLOB(c->data, c->len),
	};
	if (run(st,
		"INSERT INTO key_cache (addr, source, trust, fetched_at, ttl, negative, data)"
		" VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (addr, source) DO UPDATE SET"
		" trust = excluded.trust, fetched_at = excluded.fetched_at, ttl = excluded.ttl,"
		" negative = excluded.negative, data = excluded.data",
		p, NPARAMS(p), err) < 0) {
		sg_error_prefix(err, "cache %s", c->addr);
		return -1;
	}
	return 1;
}

/* Rows from a key_cache SELECT of the seven columns, in order. */
static int cache_rows(struct sg_store *st, const char *sql, const struct sg_store_param *p,
		      size_t np, struct sg_store_cache **rows_r, size_t *n_r, struct sg_error *err)
{
	struct sg_store_result *res = NULL;
	struct sg_store_cache *rows = NULL;
	size_t n = 0;
	int r;

	*rows_r = NULL;
	*n_r = 0;
	if (query(st, sql, p, np, &res, err) < 0)
		return -1;
	while ((r = st->drv->next(res, err)) > 0) {
		rows = sg_reallocarray(rows, n + 1, sizeof(*rows));
		struct sg_store_cache *c = &rows[n++];
		memset(c, 0, sizeof(*c));
		c->addr = dup_col(st, res, 0);
		c->source = dup_col(st, res, 1);
		c->trust = dup_col(st, res, 2);
		c->fetched_at = st->drv->col_int(res, 3);
		c->ttl = st->drv->col_int(res, 4);
		c->negative = st->drv->col_int(res, 5) != 0;
		c->data = dup_blob(st, res, 6, &c->len);
	}
	st->drv->result_free(res);
	if (r < 0) {
		sg_store_cache_free(&rows, n);
		return -1;
	}
	*rows_r = rows;
	*n_r = n;
	return n > 0 ? 1 : 0;
}

int sg_store_cache_get(struct sg_store *st, const char *addr, struct sg_store_cache **rows_r,
		       size_t *n_r, struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(addr) };
	return cache_rows(st,
			  "SELECT addr, source, trust, fetched_at, ttl, negative, data FROM key_cache"
			  " WHERE addr = $1 ORDER BY source",
			  p, NPARAMS(p), rows_r, n_r, err);
}

int sg_store_cache_by_prefix(struct sg_store *st, const char *prefix,
			     struct sg_store_cache **rows_r, size_t *n_r, struct sg_error *err)
{
	/* substr, not LIKE: the prefix is data, never a pattern. */
	struct sg_store_param p[] = { SG_PTEXT(prefix), SG_PINT((int64_t)strlen(prefix)) };
	return cache_rows(st,
			  "SELECT addr, source, trust, fetched_at, ttl, negative, data FROM key_cache"
			  " WHERE substr(source, 1, CAST($2 AS INTEGER)) = $1 ORDER BY addr, source",
			  p, NPARAMS(p), rows_r, n_r, err);
}

int sg_store_cache_delete(struct sg_store *st, const char *addr, const char *source,
			  struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(addr), SG_PTEXT(source) };
	return run(st, "DELETE FROM key_cache WHERE addr = $1 AND source = $2", p, NPARAMS(p), err);
}

int sg_store_cache_expire(struct sg_store *st, int64_t now, struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PINT(now) };
	return run(st, "DELETE FROM key_cache WHERE fetched_at + ttl < $1", p, 1, err);
}

void sg_store_cache_free(struct sg_store_cache **rows, size_t n)
{
	if (*rows == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free((*rows)[i].addr);
		free((*rows)[i].source);
		free((*rows)[i].trust);
		free((*rows)[i].data);
	}
	free(*rows);
	*rows = NULL;
}

int sg_store_open_config(const struct sg_config *cfg, const char *spec_override,
			 struct sg_store **store_r, struct sg_error *err)
{
	const char *spec = spec_override != NULL ? spec_override : cfg->store;
	char *def = NULL;
	int r;

	if (spec == NULL || *spec == '\0') {
		if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST) {
			sg_error_set(err, "state_dir %s: %s", cfg->state_dir, strerror(errno));
			return -1;
		}
		def = sg_asprintf("sqlite:%s/sealgate.db", cfg->state_dir);
		spec = def;
	}
	r = sg_store_open(spec, store_r, err);
	free(def);
	return r;
}

/* ---- domain keys ---- */

int sg_store_xact_lock(struct sg_store *st, struct sg_error *err)
{
	if (st->drv->xact_lock_sql == NULL)
		return 1;
	return st->drv->exec(st->conn, st->drv->xact_lock_sql, err);
}

int sg_store_scrub(struct sg_store *st, struct sg_error *err)
{
	if (st->drv->scrub_sql == NULL)
		return 0;
	return st->drv->exec(st->conn, st->drv->scrub_sql, err) < 0 ? -1 : 1;
}

int sg_store_domain_key_put(struct sg_store *st, const struct sg_store_domain_key *k,
			    struct sg_error *err)
{
	struct sg_store_param p[] = {
		SG_PTEXT(k->fingerprint), SG_PTEXT(k->kind), SG_PINT(k->not_before),
		SG_PINT(k->not_after), SG_PBLOB(k->cert, k->len),
	};
	return run(st,
		   "INSERT INTO domain_keys (fingerprint, kind, not_before, not_after, cert)"
		   " VALUES ($1,$2,$3,$4,$5) ON CONFLICT (fingerprint) DO NOTHING",
		   p, NPARAMS(p), err) < 0 ? -1 : 1;
}

int sg_store_domain_key_list(struct sg_store *st, struct sg_store_domain_key **keys_r,
			     size_t *n_r, struct sg_error *err)
{
	struct sg_store_result *res = NULL;
	struct sg_store_domain_key *keys = NULL;
	size_t n = 0;
	int r;

	*keys_r = NULL;
	*n_r = 0;
	if (query(st, "SELECT fingerprint, kind, not_before, not_after, cert FROM domain_keys"
		      " ORDER BY not_before, fingerprint", NULL, 0, &res, err) < 0)
		return -1;
	while ((r = st->drv->next(res, err)) > 0) {
		keys = sg_reallocarray(keys, n + 1, sizeof(*keys));
		struct sg_store_domain_key *k = &keys[n++];
		k->fingerprint = dup_col(st, res, 0);
		k->kind = dup_col(st, res, 1);
		k->not_before = st->drv->col_int(res, 2);
		k->not_after = st->drv->col_int(res, 3);
		k->cert = dup_blob(st, res, 4, &k->len);
	}
	st->drv->result_free(res);
	if (r < 0) {
		sg_store_domain_keys_free(&keys, n);
		return -1;
	}
	*keys_r = keys;
	*n_r = n;
	return 1;
}

int sg_store_domain_key_delete(struct sg_store *st, const char *fingerprint, struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(fingerprint) };
	return run(st, "DELETE FROM domain_keys WHERE fingerprint = $1", p, NPARAMS(p), err);
}

void sg_store_domain_keys_free(struct sg_store_domain_key **keys, size_t n)
{
	if (*keys == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free((*keys)[i].fingerprint);
		free((*keys)[i].kind);
		free((*keys)[i].cert);
	}
	free(*keys);
	*keys = NULL;
}

int sg_store_domain_peer_put(struct sg_store *st, const struct sg_store_domain_peer *d,
			     struct sg_error *err)
{
	struct sg_store_param p[] = {
		SG_PTEXT(d->domain), SG_PTEXT(d->fingerprint), SG_PTEXT(d->trust),
		SG_PINT(d->pinned_at), SG_PBLOB(d->cert, d->len),
	};
	return run(st,
		   "INSERT INTO domain_peers (domain, fingerprint, trust, pinned_at, cert)"
		   " VALUES ($1,$2,$3,$4,$5) ON CONFLICT (domain) DO UPDATE SET"
		   " fingerprint = excluded.fingerprint, trust = excluded.trust,"
		   " pinned_at = excluded.pinned_at, cert = excluded.cert",
		   p, NPARAMS(p), err) < 0 ? -1 : 1;
}

#define PEER_COLUMNS "SELECT domain, fingerprint, trust, pinned_at, cert FROM domain_peers"

static void read_peer(struct sg_store *st, struct sg_store_result *res, struct sg_store_domain_peer *d)
{
	d->domain = dup_col(st, res, 0);
	d->fingerprint = dup_col(st, res, 1);
	d->trust = dup_col(st, res, 2);
	d->pinned_at = st->drv->col_int(res, 3);
	d->cert = dup_blob(st, res, 4, &d->len);
}

int sg_store_domain_peer_get(struct sg_store *st, const char *domain,
			     struct sg_store_domain_peer *d, struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(domain) };
	struct sg_store_result *res = NULL;

	memset(d, 0, sizeof(*d));
	if (query(st, PEER_COLUMNS " WHERE domain = $1", p, NPARAMS(p), &res, err) < 0)
		return -1;
	int r = st->drv->next(res, err);
	if (r > 0)
		read_peer(st, res, d);
	st->drv->result_free(res);
	return r;
}

int sg_store_domain_peer_list(struct sg_store *st, struct sg_store_domain_peer **peers_r, size_t *n_r,
			      struct sg_error *err)
{
	struct sg_store_result *res = NULL;
	struct sg_store_domain_peer *peers = NULL;
	size_t n = 0;
	int r;

	*peers_r = NULL;
	*n_r = 0;
	if (query(st, PEER_COLUMNS " ORDER BY domain", NULL, 0, &res, err) < 0)
		return -1;
	while ((r = st->drv->next(res, err)) > 0) {
		peers = sg_reallocarray(peers, n + 1, sizeof(*peers));
		read_peer(st, res, &peers[n++]);
	}
	st->drv->result_free(res);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			sg_store_domain_peer_clear(&peers[i]);
		free(peers);
		return -1;
	}
	*peers_r = peers;
	*n_r = n;
	return 1;
}

int sg_store_domain_peer_delete(struct sg_store *st, const char *domain, struct sg_error *err)
{
	struct sg_store_param p[] = { SG_PTEXT(domain) };
	int r = run(st, "DELETE FROM domain_peers WHERE domain = $1", p, NPARAMS(p), err);
	return r < 0 ? -1 : r > 0 ? 1 : 0;
}

void sg_store_domain_peer_clear(struct sg_store_domain_peer *d)
{
	free(d->domain);
	free(d->fingerprint);
	free(d->trust);
	free(d->cert);
	memset(d, 0, sizeof(*d));
}
