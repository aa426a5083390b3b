/* Store driver for SQLite: one file in the state dir, WAL mode,
 * secure_delete (freed pages are zeroed), mode 0600. */
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Prepared statements kept per connection, keyed by the SQL text's
 * address: the store's SQL is constant strings, so the same pointer is
 * the same statement. Saves the parse on every look-up. */
#define STMT_CACHE 16
struct cached_stmt {
	const char *sql;
	sqlite3_stmt *stmt;
	bool in_use;             /* handed out in a result not yet freed */
};

struct conn {
	sqlite3 *db;
	struct cached_stmt cache[STMT_CACHE];
};

struct sg_store_result {
	sqlite3_stmt *stmt;
	struct cached_stmt *cached;  /* NULL: finalize on free */
	int first;               /* step result of the first sqlite3_step */
	bool started;
};

static const char *const migrations[] = {
	/* 1: local keys, private keys, remote-key cache */
	"CREATE TABLE user_keys ("
	" addr TEXT NOT NULL, fingerprint TEXT NOT NULL, kind TEXT NOT NULL,"
	" wkd_hash TEXT NOT NULL, domain TEXT NOT NULL, expires INTEGER NOT NULL,"
	" created INTEGER NOT NULL, source TEXT NOT NULL, trust TEXT NOT NULL,"
	" data BLOB NOT NULL, PRIMARY KEY (addr, fingerprint));"
	"CREATE INDEX user_keys_wkd ON user_keys (wkd_hash, domain);"
	"CREATE TABLE private_keys ("
	" owner TEXT NOT NULL, fingerprint TEXT NOT NULL, purpose TEXT NOT NULL,"
	" created INTEGER NOT NULL, blob BLOB NOT NULL,"
	" PRIMARY KEY (owner, fingerprint, purpose));"
	"CREATE TABLE key_cache ("
	" addr TEXT NOT NULL, source TEXT NOT NULL, trust TEXT NOT NULL,"
	" fetched_at INTEGER NOT NULL, ttl INTEGER NOT NULL, negative INTEGER NOT NULL,"
	" data BLOB, PRIMARY KEY (addr, source));",
	/* 2: domain keys ([domain]): our published certificates, pinned peers */
	"CREATE TABLE domain_keys ("
	" fingerprint TEXT NOT NULL PRIMARY KEY, kind TEXT NOT NULL,"
	" not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, cert BLOB NOT NULL);"
	"CREATE TABLE domain_peers ("
	" domain TEXT NOT NULL PRIMARY KEY, fingerprint TEXT NOT NULL, trust TEXT NOT NULL,"
	" pinned_at INTEGER NOT NULL, cert BLOB NOT NULL);",
};

static int fail(sqlite3 *db, struct sg_error *err, const char *what)
{
	sg_error_set(err, "%s: %s", what, db != NULL ? sqlite3_errmsg(db) : "out of memory");
	return -1;
}

/* Create the file ourselves so that it is 0600 from the start: SQLite
 * would create it with the umask's mode, readable by others. */
static int create_private(const char *path, struct sg_error *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		sg_error_set(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat sb;
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077) != 0 && fchmod(fd, 0600) < 0) {
		sg_error_set(err, "%s: chmod: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 1;
}

static int translate(const char *sql, struct sg_buf *out);

static int db_exec(sqlite3 *db, const char *sql, struct sg_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		sg_error_set(err, "%s", msg != NULL ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 1;
}

static int sqlite_exec(void *conn, const char *sql, struct sg_error *err)
{
	return db_exec(((struct conn *)conn)->db, sql, err);
}

static int sqlite_open(const char *path, void **conn_r, struct sg_error *err)
{
	sqlite3 *db = NULL;
	*conn_r = NULL;

	if (*path == '\0') {
		sg_error_set(err, "empty database path");
		return -1;
	}
	/* ":memory:" (tests, fuzzing) has no file to protect. */
	if (strcmp(path, ":memory:") != 0 && create_private(path, err) < 0)
		return -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
	    SQLITE_OK) {
		fail(db, err, path);
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	/* WAL: readers do not block the writer; secure_delete: deleted
	 * private-key blobs do not linger in free pages. */
	if (db_exec(db, "PRAGMA journal_mode = WAL; PRAGMA secure_delete = ON;"
			    " PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;", err) < 0) {
		sg_error_prefix(err, "%s", path);
		sqlite3_close(db);
		return -1;
	}
	struct conn *c = sg_calloc(1, sizeof(*c));
	c->db = db;
	*conn_r = c;
	return 1;
}

static void sqlite_close(void *conn)
{
	struct conn *c = conn;
	for (size_t i = 0; i < STMT_CACHE; i++)
		sqlite3_finalize(c->cache[i].stmt);
	sqlite3_close(c->db);
	free(c);
}

/* A prepared statement for sql: from the cache when free there. */
static int prepare(struct conn *c, const char *sql, struct sg_store_result *res)
{
	struct cached_stmt *slot = NULL;
	for (size_t i = 0; i < STMT_CACHE; i++) {
		if (c->cache[i].sql == sql && !c->cache[i].in_use) {
			res->stmt = c->cache[i].stmt;
			res->cached = &c->cache[i];
			res->cached->in_use = true;
			return SQLITE_OK;
		}
		if (c->cache[i].sql == NULL && slot == NULL)
			slot = &c->cache[i];
	}
	struct sg_buf text;
	sg_buf_init(&text, strlen(sql) + 1);
	if (!translate(sql, &text))
		sg_assert(0);
	int rc = sqlite3_prepare_v2(c->db, sg_buf_str(&text), -1, &res->stmt, NULL);
	sg_buf_free(&text);
	if (rc == SQLITE_OK && slot != NULL) {
		slot->sql = sql;
		slot->stmt = res->stmt;
		slot->in_use = true;
		res->cached = slot;
	}
	return rc;
}

static void release(struct sg_store_result *res)
{
	if (res->cached != NULL) {
		sqlite3_reset(res->stmt);
		sqlite3_clear_bindings(res->stmt);
		res->cached->in_use = false;
	} else {
		sqlite3_finalize(res->stmt);
	}
}

static int sqlite_begin(void *conn, struct sg_error *err)
{
	/* IMMEDIATE takes the write lock now, so a read-then-write
	 * transaction cannot fail half-way with SQLITE_BUSY. */
	return sqlite_exec(conn, "BEGIN IMMEDIATE", err);
}

/* The shared SQL uses $1..$N; SQLite reads those as named parameters,
 * so rewrite them to its numbered form ?1..?N. */
static int translate(const char *sql, struct sg_buf *out)
{
	for (const char *p = sql; *p != '\0'; p++) {
		char c = (*p == '$' && p[1] >= '0' && p[1] <= '9') ? '?' : *p;
		if (!sg_buf_append(out, &c, 1))
			return 0;
	}
	return 1;
}

static int bind(sqlite3_stmt *stmt, int i, const struct sg_store_param *p)
{
	switch (p->type) {
	case SG_P_TEXT:
		if (p->text == NULL)
			return sqlite3_bind_null(stmt, i);
		return sqlite3_bind_text(stmt, i, p->text, -1, SQLITE_TRANSIENT);
	case SG_P_BLOB:
		if (p->blob == NULL)
			return sqlite3_bind_null(stmt, i);
		return sqlite3_bind_blob64(stmt, i, p->blob, p->len, SQLITE_TRANSIENT);
	case SG_P_INT:
		return sqlite3_bind_int64(stmt, i, p->i);
	}
	return SQLITE_MISUSE;
}

static int sqlite_query(void *conn, const char *sql, const struct sg_store_param *params,
			size_t n_params, struct sg_store_result **res_r, struct sg_error *err)
{
	struct conn *c = conn;
	sqlite3 *db = c->db;
	struct sg_store_result *res = NULL;
	int ret = -1;

	if (res_r != NULL)
		*res_r = NULL;
	res = sg_calloc(1, sizeof(*res));
	if (prepare(c, sql, res) != SQLITE_OK) {
		fail(db, err, "prepare");
		goto out;
	}
	for (size_t i = 0; i < n_params; i++)
		if (bind(res->stmt, (int)i + 1, &params[i]) != SQLITE_OK) {
			fail(db, err, "bind");
			goto out;
		}
	/* Step once now so that statements without rows run even when the
	 * caller does not read a result. */
	res->first = sqlite3_step(res->stmt);
	if (res->first != SQLITE_ROW && res->first != SQLITE_DONE) {
		fail(db, err, "step");
		goto out;
	}
	ret = 1;
out:
	if (ret > 0 && res_r != NULL) {
		*res_r = res;
	} else {
		release(res);
		free(res);
	}
	return ret;
}

static int64_t sqlite_changes(void *conn, const struct sg_store_result *res)
{
	return sqlite3_changes64(((struct conn *)conn)->db);
}

static int sqlite_next(struct sg_store_result *res, struct sg_error *err)
{
	int rc;
	if (!res->started) {
		res->started = true;
		rc = res->first;
	} else {
		rc = sqlite3_step(res->stmt);
	}
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return fail(sqlite3_db_handle(res->stmt), err, "step");
}

static const char *sqlite_col_text(struct sg_store_result *res, int col)
{
	return (const char *)sqlite3_column_text(res->stmt, col);
}

static const void *sqlite_col_blob(struct sg_store_result *res, int col, size_t *len_r)
{
	if (sqlite3_column_type(res->stmt, col) == SQLITE_NULL) {
		*len_r = 0;
		return NULL;
	}
	const void *p = sqlite3_column_blob(res->stmt, col);
	*len_r = (size_t)sqlite3_column_bytes(res->stmt, col);
	return p != NULL ? p : "";
}

static int64_t sqlite_col_int(struct sg_store_result *res, int col)
{
	return sqlite3_column_int64(res->stmt, col);
}

static void sqlite_result_free(struct sg_store_result *res)
{
	if (res == NULL)
		return;
	release(res);
	free(res);
}

const struct sg_store_driver sg_store_driver_sqlite = {
	.name = "sqlite",
	.migrations = migrations,
	.n_migrations = sizeof(migrations) / sizeof(migrations[0]),
	.migration_lock_sql = NULL,     /* BEGIN IMMEDIATE takes the write lock */
	.migration_unlock_sql = NULL,
	.xact_lock_sql = NULL,          /* BEGIN IMMEDIATE again */
	/* Deleted rows are zeroed in the database (secure_delete); their
	 * old page images in the WAL go with the truncation. */
	.scrub_sql = "PRAGMA wal_checkpoint(TRUNCATE)",
	.open = sqlite_open,
	.close = sqlite_close,
	.exec = sqlite_exec,
	.begin = sqlite_begin,
	.query = sqlite_query,
	.changes = sqlite_changes,
	.next = sqlite_next,
	.col_text = sqlite_col_text,
	.col_blob = sqlite_col_blob,
	.col_int = sqlite_col_int,
	.result_free = sqlite_result_free,
};
