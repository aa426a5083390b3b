/* Store driver for PostgreSQL via libpq, so that several gateway
 * instances can share one store. Parameterised queries only. */
#include "store/store.h"
#include "util/mem.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sg_store_result {
	PGresult *res;
	int row;                 /* current row, -1 before the first next() */
};

/* Type OIDs we read in binary form (pg_type.h). */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT4 23

static const char *const migrations[] = {
	/* 1: local keys, private keys, remote-key cache */
	"CREATE TABLE user_keys ("
	" addr TEXT NOT NULL, fingerprint TEXT NOT NULL, kind TEXT NOT NULL,"
	" wkd_hash TEXT NOT NULL, domain TEXT NOT NULL, expires BIGINT NOT NULL,"
	" created BIGINT NOT NULL, source TEXT NOT NULL, trust TEXT NOT NULL,"
	" data BYTEA NOT NULL, PRIMARY KEY (addr, fingerprint));"
	"CREATE INDEX user_keys_wkd ON user_keys (wkd_hash, domain);"
	"CREATE TABLE private_keys ("
	" owner TEXT NOT NULL, fingerprint TEXT NOT NULL, purpose TEXT NOT NULL,"
	" created BIGINT NOT NULL, blob BYTEA NOT NULL,"
	" PRIMARY KEY (owner, fingerprint, purpose));"
	"CREATE TABLE key_cache ("
	" addr TEXT NOT NULL, source TEXT NOT NULL, trust TEXT NOT NULL,"
	" fetched_at BIGINT NOT NULL, ttl BIGINT NOT NULL, negative BIGINT NOT NULL,"
	" data BYTEA, PRIMARY KEY (addr, source));",
	/* 2: domain keys ([domain]): our published certificates, pinned peers */
	"CREATE TABLE domain_keys ("
	" fingerprint TEXT NOT NULL PRIMARY KEY, kind TEXT NOT NULL,"
	" not_before BIGINT NOT NULL, not_after BIGINT NOT NULL, cert BYTEA NOT NULL);"
	"CREATE TABLE domain_peers ("
	" domain TEXT NOT NULL PRIMARY KEY, fingerprint TEXT NOT NULL, trust TEXT NOT NULL,"
	" pinned_at BIGINT NOT NULL, cert BYTEA NOT NULL);",
};

static void set_pg_error(PGconn *pg, struct sg_error *err, const char *what)
{
	const char *msg = PQerrorMessage(pg);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	sg_error_set(err, "%s: %.*s", what, (int)n, msg);
}

static int pgsql_open(const char *spec, void **conn_r, struct sg_error *err)
{
	/* A default connect timeout (a gateway must not hang at start on an
	 * unreachable database); one in the URI, expanded later, wins. */
	static const char *const keys[] = { "connect_timeout", "dbname", NULL };
	const char *values[] = { "10", spec, NULL };
	PGconn *pg = PQconnectdbParams(keys, values, 1);
	*conn_r = NULL;
	if (pg == NULL) {
		sg_error_set(err, "connect: out of memory");
		return -1;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		set_pg_error(pg, err, "connect");
		PQfinish(pg);
		return -1;
	}
	/* Quiet "relation already exists, skipping" notices. */
	PGresult *r = PQexec(pg, "SET client_min_messages = warning");
	PQclear(r);
	*conn_r = pg;
	return 1;
}

static void pgsql_close(void *conn)
{
	PQfinish(conn);
}

static int pgsql_exec(void *conn, const char *sql, struct sg_error *err)
{
	PGresult *r = PQexec(conn, sql);
	int ok = r != NULL && (PQresultStatus(r) == PGRES_COMMAND_OK ||
			       PQresultStatus(r) == PGRES_TUPLES_OK);
	if (!ok)
		set_pg_error(conn, err, "exec");
	PQclear(r);
	return ok ? 1 : -1;
}

static int pgsql_begin(void *conn, struct sg_error *err)
{
	return pgsql_exec(conn, "BEGIN", err);
}

/* Text and integers go as text parameters, blobs as binary ones; all
 * results come back binary (no bytea escaping to undo). */
static int pgsql_query(void *conn, const char *sql, const struct sg_store_param *params,
		       size_t n_params, struct sg_store_result **res_r, struct sg_error *err)
{
	const char **values = sg_calloc(n_params + 1, sizeof(*values));
	int *lengths = sg_calloc(n_params + 1, sizeof(*lengths));
	int *formats = sg_calloc(n_params + 1, sizeof(*formats));
	char **ints = sg_calloc(n_params + 1, sizeof(*ints));
	PGresult *r = NULL;
	int ret = -1;

	if (res_r != NULL)
		*res_r = NULL;
	for (size_t i = 0; i < n_params; i++) {
		const struct sg_store_param *p = &params[i];
		switch (p->type) {
		case SG_P_TEXT:
			values[i] = p->text;
			break;
		case SG_P_BLOB:
			if (p->len > INT32_MAX) {
				sg_error_set(err, "parameter %zu too large", i + 1);
				goto out;
			}
			values[i] = p->blob != NULL ? p->blob : NULL;
			lengths[i] = (int)p->len;
			formats[i] = 1;
			break;
		case SG_P_INT:
			ints[i] = sg_asprintf("%" PRId64, p->i);
			values[i] = ints[i];
			break;
		}
	}
	r = PQexecParams(conn, sql, (int)n_params, NULL, values, lengths, formats, 1);
	if (r == NULL || (PQresultStatus(r) != PGRES_COMMAND_OK &&
			  PQresultStatus(r) != PGRES_TUPLES_OK)) {
		set_pg_error(conn, err, "query");
		goto out;
	}
	if (res_r != NULL) {
		struct sg_store_result *res = sg_calloc(1, sizeof(*res));
		res->res = r;
		res->row = -1;
		r = NULL;
		*res_r = res;
	}
	ret = 1;
out:
	PQclear(r);
	for (size_t i = 0; i < n_params; i++)
		free(ints[i]);
	free(ints);
	free(values);
	free(lengths);
	free(formats);
	return ret;
}

static int64_t pgsql_changes(void *conn, const struct sg_store_result *res)
{
	const char *n = res != NULL ? PQcmdTuples(res->res) : "";
	return *n != '\0' ? strtoll(n, NULL, 10) : 0;
}

static int pgsql_next(struct sg_store_result *res, struct sg_error *err)
{
	if (res->row + 1 >= PQntuples(res->res))
		return 0;
	res->row++;
	return 1;
}

static const char *pgsql_col_text(struct sg_store_result *res, int col)
{
	if (PQgetisnull(res->res, res->row, col))
		return NULL;
	/* Binary text is the raw bytes; libpq NUL-terminates every value. */
	return PQgetvalue(res->res, res->row, col);
}

static const void *pgsql_col_blob(struct sg_store_result *res, int col, size_t *len_r)
{
	*len_r = 0;
	if (PQgetisnull(res->res, res->row, col))
		return NULL;
	*len_r = (size_t)PQgetlength(res->res, res->row, col);
	return PQgetvalue(res->res, res->row, col);
}

static int64_t be_int(const unsigned char *p, int len)
{
	uint64_t v = 0;
	for (int i = 0; i < len; i++)
		v = (v << 8) | p[i];
	if (len < 8 && len > 0 && (p[0] & 0x80) != 0)
		v |= ~(uint64_t)0 << (8 * len);    /* sign-extend */
	return (int64_t)v;
}

static int64_t pgsql_col_int(struct sg_store_result *res, int col)
{
	if (PQgetisnull(res->res, res->row, col))
		return 0;
	const unsigned char *p = (const unsigned char *)PQgetvalue(res->res, res->row, col);
	int len = PQgetlength(res->res, res->row, col);
	switch (PQftype(res->res, col)) {
	case OID_INT8:
	case OID_INT4:
	case OID_BOOL:
		return be_int(p, len);
	default:
		return strtoll((const char *)p, NULL, 10);
	}
}

static void pgsql_result_free(struct sg_store_result *res)
{
	if (res == NULL)
		return;
	PQclear(res->res);
	free(res);
}

const struct sg_store_driver sg_store_driver_pgsql = {
	.name = "postgresql",
	.migrations = migrations,
	.n_migrations = sizeof(migrations) / sizeof(migrations[0]),
	/* Two instances starting together: the second waits on this
	 * session-level advisory lock (even CREATE TABLE IF NOT EXISTS races
	 * in PostgreSQL), then sees the first one's version and applies
	 * nothing. The number is arbitrary but fixed: "sealgate schema". */
	.migration_lock_sql = "SELECT pg_advisory_lock(5345474701)",
	.migration_unlock_sql = "SELECT pg_advisory_unlock(5345474701)",
	/* Domain key rotation: one instance at a time ("sealgate domain"),
	 * released with the transaction. */
	.xact_lock_sql = "SELECT pg_advisory_xact_lock(5345474702)",
	/* No way to scrub PostgreSQL's WAL, replicas or backups from here:
	 * doc/domain.md says what that means for forward secrecy. */
	.scrub_sql = NULL,
	.open = pgsql_open,
	.close = pgsql_close,
	.exec = pgsql_exec,
	.begin = pgsql_begin,
	.query = pgsql_query,
	.changes = pgsql_changes,
	.next = pgsql_next,
	.col_text = pgsql_col_text,
	.col_blob = pgsql_col_blob,
	.col_int = pgsql_col_int,
	.result_free = pgsql_result_free,
};
