/* The key store's persistence: one interface, two backends (SQLite, the
 * embedded default, and PostgreSQL via libpq) behind a driver table. */
#ifndef SG_STORE_STORE_H
#define SG_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct sg_store;
struct sg_store_result;

/* A query parameter. Values are always passed separately from the SQL text
 * (sqlite3_bind_*, PQexecParams): no SQL is ever built from values. */
enum sg_store_ptype { SG_P_TEXT, SG_P_BLOB, SG_P_INT };
struct sg_store_param {
	enum sg_store_ptype type;
	const char *text;        /* SG_P_TEXT, borrowed */
	const void *blob;        /* SG_P_BLOB, borrowed */
	size_t len;
	int64_t i;               /* SG_P_INT */
};
#define SG_PTEXT(s) { .type = SG_P_TEXT, .text = (s) }
#define SG_PBLOB(p, n) { .type = SG_P_BLOB, .blob = (p), .len = (n) }
#define SG_PINT(v) { .type = SG_P_INT, .i = (v) }

/* Driver table (OpenSMTPD's table_backend, Dovecot's lib-sql drivers).
 * The SQL the store runs is written once with $1..$N placeholders and
 * portable syntax; only the schema steps differ per driver. */
struct sg_store_driver {
	const char *name;        /* "sqlite", "postgresql" */
	/* Ordered schema migrations: step i brings the schema to version i+1. */
	const char *const *migrations;
	size_t n_migrations;
	/* Statements around the whole migration that keep two instances from
	 * migrating at once (NULL: the driver's BEGIN already locks). */
	const char *migration_lock_sql;
	const char *migration_unlock_sql;
	/* Run inside a transaction so that one instance at a time does the
	 * work (NULL: the driver's BEGIN already locks). */
	const char *xact_lock_sql;
	/* After deleting secrets, outside a transaction: drop their old
	 * copies from the driver's files (NULL: nothing the driver can do). */
	const char *scrub_sql;
	/* spec is the part after the scheme ("PATH" for sqlite:PATH, the
	 * whole URI for postgresql://). 1 or -1. */
	int (*open)(const char *spec, void **conn_r, struct sg_error *err);
	void (*close)(void *conn);
	/* Statements without parameters or results (BEGIN, DDL). 1 or -1. */
	int (*exec)(void *conn, const char *sql, struct sg_error *err);
	int (*begin)(void *conn, struct sg_error *err);
	/* Run a parameterised statement; *res_r gets the rows (may be NULL
	 * if the caller does not want them). 1 or -1. sql must be a string
	 * constant: a driver may cache prepared statements by its address. */
	int (*query)(void *conn, const char *sql, const struct sg_store_param *params,
		     size_t n_params, struct sg_store_result **res_r, struct sg_error *err);
	/* Rows changed by the last query (UPDATE/DELETE). */
	int64_t (*changes)(void *conn, const struct sg_store_result *res);
	/* Advance to the next row: 1 row, 0 done, -1 error. */
	int (*next)(struct sg_store_result *res, struct sg_error *err);
	/* Column accessors on the current row; text/blob borrowed until
	 * next()/result_free(). NULL columns read as NULL / 0. */
	const char *(*col_text)(struct sg_store_result *res, int col);
	const void *(*col_blob)(struct sg_store_result *res, int col, size_t *len_r);
	int64_t (*col_int)(struct sg_store_result *res, int col);
	void (*result_free)(struct sg_store_result *res);
};

extern const struct sg_store_driver sg_store_driver_sqlite;
extern const struct sg_store_driver sg_store_driver_pgsql;

/* "sqlite:PATH" or "postgresql://..." / "postgres://...". Creates the
 * database if needed and applies pending migrations in one transaction. */
int sg_store_open(const char *spec, struct sg_store **store_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_store_close(struct sg_store **store);
/* The store a configuration names: cfg->store, or by default
 * sqlite:STATE_DIR/sealgate.db (the state dir is created 0700: it holds
 * sealed secrets and mail). spec_override (may be NULL) wins over both. */
struct sg_config;
int sg_store_open_config(const struct sg_config *cfg, const char *spec_override,
			 struct sg_store **store_r, struct sg_error *err) SG_WARN_UNUSED;
const char *sg_store_driver_name(const struct sg_store *store);
/* Current schema version (after open: the newest). */
int sg_store_schema_version(struct sg_store *store, int *version_r, struct sg_error *err);

int sg_store_begin(struct sg_store *store, struct sg_error *err) SG_WARN_UNUSED;
int sg_store_commit(struct sg_store *store, struct sg_error *err) SG_WARN_UNUSED;
void sg_store_rollback(struct sg_store *store);

/* --- Local users' public keys (OpenPGP keys, X.509 certificates) --- */
struct sg_store_key {
	char *addr;              /* lower-case address */
	char *fingerprint;       /* upper-case hex */
	char *kind;              /* "pgp" or "x509" */
	char *wkd_hash;          /* z-base-32 local-part hash (pgp), "" otherwise */
	char *domain;            /* lower-case domain of addr */
	int64_t expires;         /* unix time, 0 = never */
	int64_t created;         /* when stored */
	char *source;            /* "import", "generate", ... */
	char *trust;             /* "configured", ... */
	unsigned char *data;     /* the public key / certificate bytes */
	size_t len;
};
/* Insert or replace (addr, fingerprint). The strings and data are copied. */
int sg_store_key_put(struct sg_store *store, const struct sg_store_key *key,
		     struct sg_error *err) SG_WARN_UNUSED;
/* All keys for addr (NULL: all keys), ordered by addr, fingerprint.
 * *keys_r is an owned array of *n_r entries: free with sg_store_keys_free. */
int sg_store_key_list(struct sg_store *store, const char *addr, struct sg_store_key **keys_r,
		      size_t *n_r, struct sg_error *err) SG_WARN_UNUSED;
/* One key: 1 found, 0 not. */
int sg_store_key_get(struct sg_store *store, const char *addr, const char *fingerprint,
		     struct sg_store_key *key_r, struct sg_error *err) SG_WARN_UNUSED;
/* OpenPGP keys published under a WKD hash (domain NULL: any domain). */
int sg_store_key_by_wkd(struct sg_store *store, const char *domain, const char *hash,
			struct sg_store_key **keys_r, size_t *n_r, struct sg_error *err) SG_WARN_UNUSED;
/* Delete (addr, fingerprint), or every key of addr when fingerprint is NULL.
 * Returns the number deleted (0: none) or -1. */
int sg_store_key_delete(struct sg_store *store, const char *addr, const char *fingerprint,
			struct sg_error *err) SG_WARN_UNUSED;
void sg_store_key_clear(struct sg_store_key *key);
void sg_store_keys_free(struct sg_store_key **keys, size_t n);

/* --- Private keys (gateway, domain, and users' only when asked) ---
 * The blob is already encrypted under the master key (keys/master.h);
 * the store never sees plaintext. owner: "gateway", "domain:example.org"
 * or a user address. purpose: "sign", "decrypt", "smime", ... */
struct sg_store_secret {
	char *owner;
	char *fingerprint;
	char *purpose;
	int64_t created;
	unsigned char *blob;
	size_t len;
};
int sg_store_secret_put(struct sg_store *store, const struct sg_store_secret *sec,
			struct sg_error *err) SG_WARN_UNUSED;
/* 1 found, 0 not. */
int sg_store_secret_get(struct sg_store *store, const char *owner, const char *fingerprint,
			const char *purpose, struct sg_store_secret *sec_r,
			struct sg_error *err) SG_WARN_UNUSED;
int sg_store_secret_delete(struct sg_store *store, const char *owner, const char *fingerprint,
			   const char *purpose, struct sg_error *err) SG_WARN_UNUSED;
void sg_store_secret_clear(struct sg_store_secret *sec);

/* --- Remote-key cache: one row per (addr, source) --- */
struct sg_store_cache {
	char *addr;
	char *source;            /* "wkd", "ldap", "dane", "directory", "harvested" */
	char *trust;
	int64_t fetched_at;      /* unix time */
	int64_t ttl;             /* seconds */
	bool negative;           /* "no key here", cached too */
	unsigned char *data;     /* NULL for negative entries */
	size_t len;
};
int sg_store_cache_put(struct sg_store *store, const struct sg_store_cache *row,
		       struct sg_error *err) SG_WARN_UNUSED;
/* Rows for addr, fresh or not (the caller judges the TTL). */
int sg_store_cache_get(struct sg_store *store, const char *addr, struct sg_store_cache **rows_r,
		       size_t *n_r, struct sg_error *err) SG_WARN_UNUSED;
/* Rows whose source begins with prefix ("pending:"), every address,
 * ordered by addr, source. */
int sg_store_cache_by_prefix(struct sg_store *store, const char *prefix,
			     struct sg_store_cache **rows_r, size_t *n_r,
			     struct sg_error *err) SG_WARN_UNUSED;
/* Delete the row (addr, source): how many (0 or 1), or -1. */
int sg_store_cache_delete(struct sg_store *store, const char *addr, const char *source,
			  struct sg_error *err) SG_WARN_UNUSED;
/* Drop rows whose fetched_at + ttl < now; returns how many. */
int sg_store_cache_expire(struct sg_store *store, int64_t now, struct sg_error *err) SG_WARN_UNUSED;
void sg_store_cache_free(struct sg_store_cache **rows, size_t n);

/* --- Domain keys ([domain], doc/domain.md) --- */
/* Inside a transaction: wait until no other instance holds the domain
 * rotation lock (PostgreSQL advisory lock; SQLite's write lock already is). */
int sg_store_xact_lock(struct sg_store *store, struct sg_error *err) SG_WARN_UNUSED;
/* After secrets were deleted and committed: checkpoint and truncate the
 * SQLite WAL (secure_delete zeroes the rows themselves); 0 when the driver
 * cannot do anything (PostgreSQL), 1 done, -1 error. */
int sg_store_scrub(struct sg_store *store, struct sg_error *err) SG_WARN_UNUSED;

/* Our published domain certificates (public parts; private keys are in
 * private_keys under owner "domain"). kind: "signing" or "encryption". */
struct sg_store_domain_key {
	char *fingerprint;
	char *kind;
	int64_t not_before, not_after;
	unsigned char *cert;     /* PEM */
	size_t len;
};
int sg_store_domain_key_put(struct sg_store *store, const struct sg_store_domain_key *k,
			    struct sg_error *err) SG_WARN_UNUSED;
/* All rows ordered by not_before, fingerprint: owned array. */
int sg_store_domain_key_list(struct sg_store *store, struct sg_store_domain_key **keys_r,
			     size_t *n_r, struct sg_error *err) SG_WARN_UNUSED;
int sg_store_domain_key_delete(struct sg_store *store, const char *fingerprint,
			       struct sg_error *err) SG_WARN_UNUSED;
void sg_store_domain_keys_free(struct sg_store_domain_key **keys, size_t n);

/* Peer domains' long-term certificates, pinned or configured. */
struct sg_store_domain_peer {
	char *domain;
	char *fingerprint;
	char *trust;             /* "pinned" (first use) or "configured" */
	int64_t pinned_at;
	unsigned char *cert;     /* DER */
	size_t len;
};
int sg_store_domain_peer_put(struct sg_store *store, const struct sg_store_domain_peer *p,
			     struct sg_error *err) SG_WARN_UNUSED;
/* 1 found, 0 not. */
int sg_store_domain_peer_get(struct sg_store *store, const char *domain,
			     struct sg_store_domain_peer *p_r, struct sg_error *err) SG_WARN_UNUSED;
/* Every row, ordered by domain: owned array (clear each, then free it). */
int sg_store_domain_peer_list(struct sg_store *store, struct sg_store_domain_peer **peers_r,
			      size_t *n_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_store_domain_peer_clear(struct sg_store_domain_peer *p);
/* 1 deleted, 0 there was none. */
int sg_store_domain_peer_delete(struct sg_store *store, const char *domain,
				struct sg_error *err) SG_WARN_UNUSED;

#endif
