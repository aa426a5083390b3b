/* The store test suite: SQLite by default; with SG_STORE_TEST_URL set
 * (postgresql://...) the very same tests run against that server
 * (tests/integration/test_store_pgsql.py starts one). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys/keystore.h"
#include "keys/master.h"
#include "store/store.h"
#include "util/mem.h"
#include "util/secret.h"

struct fixture {
	char *dir;               /* sqlite only */
	char *spec;
	struct sg_store *store;
};

static const char *pg_url(void)
{
	const char *u = getenv("SG_STORE_TEST_URL");
	return u != NULL && *u != '\0' ? u : NULL;
}

static int setup(void **state)
{
	struct fixture *f = sg_calloc(1, sizeof(*f));
	struct sg_error err = SG_ERROR_INIT;

	if (pg_url() != NULL) {
		f->spec = sg_strdup(pg_url());
	} else {
		char tmpl[] = "/tmp/sg-store-test.XXXXXX";
		if (mkdtemp(tmpl) == NULL)
			return -1;
		f->dir = sg_strdup(tmpl);
		f->spec = sg_asprintf("sqlite:%s/sealgate.db", f->dir);
	}
	if (sg_store_open(f->spec, &f->store, &err) < 0) {
		fprintf(stderr, "open %s: %s\n", f->spec, sg_error_msg(&err));
		sg_error_clear(&err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sg_store_close(&f->store);
	if (f->dir != NULL) {
		const char *suffix[] = { "", "-wal", "-shm" };
		for (size_t i = 0; i < 3; i++) {
			char *p = sg_asprintf("%s/sealgate.db%s", f->dir, suffix[i]);
			unlink(p);
			free(p);
		}
		rmdir(f->dir);
	}
	free(f->dir);
	free(f->spec);
	free(f);
	return 0;
}


static void put_key(struct sg_store *st, const char *addr, const char *fpr, const char *data,
		    size_t len)
{
	struct sg_error err = SG_ERROR_INIT;
	int r = sg_keys_put_public(st, addr, fpr, "pgp", 0, "import", "configured", data, len,
				   &err);
	if (r < 0)
		fail_msg("put %s: %s", addr, sg_error_msg(&err));
}

static void test_schema_version(void **state)
{
	struct fixture *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store *again = NULL;
	int v = -1;

	assert_int_equal(sg_store_schema_version(f->store, &v, &err), 1);
	assert_int_equal(v, 2);
	/* Opening again applies nothing and keeps the data. */
	put_key(f->store, "schema@v.test", "AA01", "k", 1);
	assert_int_equal(sg_store_open(f->spec, &again, &err), 1);
	assert_int_equal(sg_store_schema_version(again, &v, &err), 1);
	assert_int_equal(v, 2);
	struct sg_store_key k;
	assert_int_equal(sg_store_key_get(again, "schema@v.test", "AA01", &k, &err), 1);
	sg_store_key_clear(&k);
	sg_store_close(&again);
}

static void test_key_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	/* Binary data with NUL bytes and high bytes survives both drivers. */
	const unsigned char blob[] = { 0x99, 0x00, 0x01, 0xff, 0x00, 0x27, 0x5c };
	struct sg_store_key k;

	put_key(f->store, "Alice@Example.TEST", "F00D", (const char *)blob, sizeof(blob));
	assert_int_equal(sg_store_key_get(f->store, "alice@example.test", "F00D", &k, &err), 1);
	assert_string_equal(k.addr, "alice@example.test");
	assert_string_equal(k.domain, "example.test");
	assert_string_equal(k.kind, "pgp");
	assert_string_equal(k.source, "import");
	assert_string_equal(k.trust, "configured");
	assert_int_equal(k.len, sizeof(blob));
	assert_memory_equal(k.data, blob, sizeof(blob));
	assert_int_equal(strlen(k.wkd_hash), 32);
	assert_true(k.created > 0);
	sg_store_key_clear(&k);
	assert_int_equal(sg_store_key_get(f->store, "alice@example.test", "BEEF", &k, &err), 0);
	assert_int_equal(sg_store_key_get(f->store, "nobody@example.test", "F00D", &k, &err), 0);
}

static void test_key_upsert_list_delete(void **state)
{
	struct fixture *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store_key *keys = NULL;
	size_t n = 0;

	put_key(f->store, "bob@list.test", "B2", "two", 3);
	put_key(f->store, "bob@list.test", "B1", "one", 3);
	put_key(f->store, "bob@list.test", "B1", "one-new", 7);   /* replaces */
	put_key(f->store, "carol@list.test", "C1", "c", 1);
	assert_int_equal(sg_store_key_list(f->store, "bob@list.test", &keys, &n, &err), 1);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0].fingerprint, "B1");       /* ordered */
	assert_int_equal(keys[0].len, 7);
	assert_memory_equal(keys[0].data, "one-new", 7);
	assert_string_equal(keys[1].fingerprint, "B2");
	sg_store_keys_free(&keys, n);
	assert_null(keys);

	assert_int_equal(sg_store_key_list(f->store, NULL, &keys, &n, &err), 1);
	assert_true(n >= 3);
	sg_store_keys_free(&keys, n);

	assert_int_equal(sg_store_key_delete(f->store, "bob@list.test", "B2", &err), 1);
	assert_int_equal(sg_store_key_delete(f->store, "bob@list.test", "B2", &err), 0);
	assert_int_equal(sg_store_key_delete(f->store, "carol@list.test", NULL, &err), 1);
	assert_int_equal(sg_store_key_list(f->store, "carol@list.test", &keys, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sg_store_key_list(f->store, "bob@list.test", &keys, &n, &err), 1);
	assert_int_equal(n, 1);
	sg_store_keys_free(&keys, n);
}

/* Values are parameters, never SQL text: quotes and SQL survive as data. */
static void test_values_are_not_sql(void **state)
{
	struct fixture *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store_key k;
	const char *evil = "x'); DROP TABLE user_keys; --@inject.test";

	struct sg_store_key in = { .addr = (char *)evil, .fingerprint = "E'1", .kind = "pgp",
				   .source = "'", .trust = "\\", .data = (unsigned char *)"d",
				   .len = 1 };
	assert_int_equal(sg_store_key_put(f->store, &in, &err), 1);
	assert_int_equal(sg_store_key_get(f->store, evil, "E'1", &k, &err), 1);
	assert_string_equal(k.addr, evil);
	assert_string_equal(k.source, "'");
	assert_string_equal(k.trust, "\\");
	sg_store_key_clear(&k);
	assert_int_equal(sg_store_key_get(f->store, "' OR '1'='1", "E'1", &k, &err), 0);
}

static void test_wkd_lookup(void **state)
{
	struct fixture *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store_key *keys = NULL;
	size_t n = 0;

	put_key(f->store, "Joe.Doe@Example.ORG", "J1", "joe1", 4);
	put_key(f->store, "joe.doe@example.org", "J2", "joe2", 4);
	put_key(f->store, "joe.doe@other.test", "J3", "joe3", 4);
	/* draft-koch-openpgp-webkey-service §3.1's example hash */
	const char *h = "iy9q119eutrkn8s1mk4r39qejnbu3n5q";
	assert_int_equal(sg_store_key_by_wkd(f->store, "example.org", h, &keys, &n, &err), 1);
	assert_int_equal(n, 2);
	sg_store_keys_free(&keys, n);
	assert_int_equal(sg_store_key_by_wkd(f->store, NULL, h, &keys, &n, &err), 1);
	assert_int_equal(n, 3);
	sg_store_keys_free(&keys, n);
	assert_int_equal(sg_store_key_by_wkd(f->store, "nowhere.test", h, &keys, &n, &err), 0);
	/* X.509 certificates are not published through WKD. */
	assert_int_equal(sg_keys_put_public(f->store, "x5@wkd-x509.test", "X5", "x509", 0, "import",
					    "configured", "c", 1, &err), 1);
	struct sg_store_key k;
	assert_int_equal(sg_store_key_get(f->store, "x5@wkd-x509.test", "X5", &k, &err), 1);
	assert_int_equal(sg_store_key_by_wkd(f->store, "wkd-x509.test", k.wkd_hash, &keys, &n, &err),
			 0);
	sg_store_key_clear(&k);
}

static void test_transaction_rollback(void **state)
{
	struct fixture *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store_key k;

	assert_int_equal(sg_store_begin(f->store, &err), 1);
	put_key(f->store, "tx@rollback.test", "T1", "t", 1);
	sg_store_rollback(f->store);
	assert_int_equal(sg_store_key_get(f->store, "tx@rollback.test", "T1", &k, &err), 0);
	assert_int_equal(sg_store_begin(f->store, &err), 1);
	put_key(f->store, "tx@rollback.test", "T2", "t", 1);
	assert_int_equal(sg_store_commit(f->store, &err), 1);
	assert_int_equal(sg_store_key_get(f->store, "tx@rollback.test", "T2", &k, &err), 1);
	sg_store_key_clear(&k);
}

static void test_private_keys_sealed(void **state)
{
	struct fixture *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_master_key *mk = NULL;
	struct sg_store_secret raw;
	unsigned char *plain = NULL;
	size_t len = 0;
	const char secret[] = "-----BEGIN PGP PRIVATE KEY BLOCK-----\nsecret bits";

	assert_int_equal(sg_master_key_from_passphrase("correct horse", &mk, &err), 1);
	assert_int_equal(sg_keys_put_private(f->store, mk, "gateway", "G1", "sign", secret,
					     sizeof(secret), &err), 1);
	/* What the store holds is not the plaintext. */
	assert_int_equal(sg_store_secret_get(f->store, "gateway", "G1", "sign", &raw, &err), 1);
	assert_true(raw.len > sizeof(secret));
	assert_null(memmem(raw.blob, raw.len, "secret bits", 11));
	sg_store_secret_clear(&raw);
	assert_int_equal(sg_keys_get_private(f->store, mk, "gateway", "G1", "sign", &plain, &len,
					     &err), 1);
	assert_int_equal(len, sizeof(secret));
	assert_memory_equal(plain, secret, len);
	sg_secret_free(&plain, len);
	assert_int_equal(sg_keys_get_private(f->store, mk, "gateway", "G1", "decrypt", &plain, &len,
					     &err), 0);
	sg_master_key_free(&mk);
	/* Another passphrase: a clear error, not garbage. */
	assert_int_equal(sg_master_key_from_passphrase("wrong horse", &mk, &err), 1);
	assert_int_equal(sg_keys_get_private(f->store, mk, "gateway", "G1", "sign", &plain, &len,
					     &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "wrong master key"));
	sg_error_clear(&err);
	sg_master_key_free(&mk);
	assert_int_equal(sg_store_secret_delete(f->store, "gateway", "G1", "sign", &err), 1);
	assert_int_equal(sg_store_secret_get(f->store, "gateway", "G1", "sign", &raw, &err), 0);
}

static void test_cache_rows(void **state)
{
	struct fixture *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store_cache *rows = NULL;
	size_t n = 0;
	struct sg_store_cache pos = { .addr = "dave@cache.test", .source = "wkd", .trust = "wkd",
				      .fetched_at = 1000, .ttl = 3600, .negative = false,
				      .data = (unsigned char *)"K\0Y", .len = 3 };
	struct sg_store_cache neg = { .addr = "dave@cache.test", .source = "ldap", .trust = "",
				      .fetched_at = 1000, .ttl = 60, .negative = true };

	assert_int_equal(sg_store_cache_put(f->store, &pos, &err), 1);
	assert_int_equal(sg_store_cache_put(f->store, &neg, &err), 1);
	assert_int_equal(sg_store_cache_get(f->store, "dave@cache.test", &rows, &n, &err), 1);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].source, "ldap");
	assert_true(rows[0].negative);
	assert_null(rows[0].data);
	assert_int_equal(rows[0].ttl, 60);
	assert_string_equal(rows[1].source, "wkd");
	assert_false(rows[1].negative);
	assert_int_equal(rows[1].fetched_at, 1000);
	assert_int_equal(rows[1].len, 3);
	assert_memory_equal(rows[1].data, "K\0Y", 3);
	sg_store_cache_free(&rows, n);
	/* Refetch replaces the row; expiry drops only stale rows. */
	pos.fetched_at = 5000;
	assert_int_equal(sg_store_cache_put(f->store, &pos, &err), 1);
	assert_int_equal(sg_store_cache_expire(f->store, 1061, &err) >= 1, 1);
	assert_int_equal(sg_store_cache_get(f->store, "dave@cache.test", &rows, &n, &err), 1);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].source, "wkd");
	assert_int_equal(rows[0].fetched_at, 5000);
	sg_store_cache_free(&rows, n);
}

static void test_bad_specs(void **state)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store *st = NULL;
	(void)state;
	assert_int_equal(sg_store_open("mysql://x", &st, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "unknown store"));
	assert_int_equal(sg_store_open("sqlite:/nonexistent-dir/x.db", &st, &err), -1);
	assert_null(st);
	assert_int_equal(sg_store_open("postgresql://127.0.0.1:1/none?connect_timeout=2", &st, &err),
			 -1);
	assert_non_null(strstr(sg_error_msg(&err), "connect"));
	sg_error_clear(&err);
}

/* SQLite specifics: 0600 file, WAL, secure_delete, newer schema refused. */
static void test_sqlite_file(void **state)
{
	struct fixture *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	struct stat sb;
	sqlite3 *db = NULL;

	if (f->dir == NULL)
		skip();
	char *path = sg_asprintf("%s/sealgate.db", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_version VALUES (99, 0)", NULL, NULL,
				      NULL), SQLITE_OK);
	sqlite3_close(db);
	struct sg_store *again = NULL;
	assert_int_equal(sg_store_open(f->spec, &again, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "newer"));
	sg_error_clear(&err);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_schema_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_upsert_list_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values_are_not_sql, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wkd_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_private_keys_sealed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_rows, setup, teardown),
		cmocka_unit_test(test_bad_specs),
		cmocka_unit_test_setup_teardown(test_sqlite_file, setup, teardown),
	};
	return cmocka_run_group_tests_name(pg_url() != NULL ? "store-postgresql" : "store-sqlite",
					   tests, NULL, NULL);
}
