/* sg_keys_find_encrypt over the local store and the remote chain, with a
 * fake key source: local keys win, directory keys fill gaps, a failed
 * directory is a missing key with its reason, the store lock is free while
 * a directory is asked (other workers keep going), SG_LOOKUP_LOCAL never asks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "keys/cache.h"
#include "keys/keystore.h"
#include "keys/lookup.h"
#include "keys/pgp-meta.h"
#include "keys/remote.h"
#include "store/store.h"
#include "util/mem.h"

static struct sg_pgp_meta local_key, remote_key; /* alice@a.test (local), rita@r.test (remote) */

struct fake {
	pthread_mutex_t *store_lock;
	int result;              /* 1 serve remote_key, -1 fail */
	int calls;
	int lock_free_during_fetch;
	/* gate: the fetch waits until the test opens it (a slow directory). */
	pthread_mutex_t gm;
	pthread_cond_t gc;
	int in_fetch, open;
};

static int fake_fetch(void *arg, const char *addr, unsigned budget_ms,
		      struct sg_keys_found **blobs_r, size_t *n_r, struct sg_error *err)
{
	struct fake *f = arg;
	(void)addr;
	(void)budget_ms;
	/* The caller must not hold the store connection's lock over a fetch. */
	if (pthread_mutex_trylock(f->store_lock) == 0) {
		f->lock_free_during_fetch++;
		pthread_mutex_unlock(f->store_lock);
	}
	pthread_mutex_lock(&f->gm);
	f->calls++;
	f->in_fetch = 1;
	pthread_cond_broadcast(&f->gc);
	while (!f->open)
		pthread_cond_wait(&f->gc, &f->gm);
	pthread_mutex_unlock(&f->gm);
	if (f->result < 0) {
		sg_error_set(err, "directory down");
		return -1;
	}
	struct sg_keys_found b = { .kind = "pgp", .data = remote_key.public_data,
				   .len = remote_key.public_len };
	*blobs_r = sg_keys_found_copy(&b, 1);
	*n_r = 1;
	return 1;
}

static void fake_free(void *arg)
{
	(void)arg;
}

struct world {
	char *dir;
	struct sg_store *store;
	struct sg_config cfg;
	pthread_mutex_t store_lock;
	struct fake fake;
	struct sg_keys_lookup *lk;
};

static void world_open(struct world *w, unsigned flags, int result, int open)
{
	struct sg_error err = SG_ERROR_INIT;
	char tmpl[] = "/tmp/sg-lookup-XXXXXX";
	memset(w, 0, sizeof(*w));
	w->dir = sg_strdup(mkdtemp(tmpl));
	char *spec = sg_asprintf("sqlite:%s/db", w->dir);
	assert_int_equal(sg_store_open(spec, &w->store, &err), 1);
	free(spec);
	assert_int_equal(sg_keys_put_public(w->store, "alice@a.test", local_key.fingerprint, "pgp", 0,
					    "import", "configured", local_key.public_data,
					    local_key.public_len, &err), 1);
	sg_config_defaults(&w->cfg);
	/* A real source name so that a chain is built; the fake goes after it
	 * and "only" restricts fetches to the fake. */
	assert_int_equal(sg_config_set(&w->cfg, "lookup_order", "wkd", &err), 1);
	pthread_mutex_init(&w->store_lock, NULL);
	pthread_mutex_init(&w->fake.gm, NULL);
	pthread_cond_init(&w->fake.gc, NULL);
	w->fake.store_lock = &w->store_lock;
	w->fake.result = result;
	w->fake.open = open;
	w->lk = sg_keys_lookup_new(w->store, &w->cfg, &w->store_lock, flags);
	sg_config_clear(&w->cfg);      /* read at creation only */
	struct sg_keys_remote *r = sg_keys_lookup_remote(w->lk);
	if (flags & SG_LOOKUP_LOCAL) {
		assert_null(r);
		return;
	}
	assert_non_null(r);
	struct sg_keys_source src = { .name = "fake", .trust = "directory", .fetch = fake_fetch,
				      .free = fake_free, .ctx = &w->fake };
	sg_keys_remote_add_source(r, &src);
	sg_keys_remote_set_only(r, "fake");
}

static void world_close(struct world *w)
{
	sg_keys_lookup_free(&w->lk);
	assert_null(w->lk);
	sg_store_close(&w->store);
	pthread_mutex_destroy(&w->store_lock);
	pthread_mutex_destroy(&w->fake.gm);
	pthread_cond_destroy(&w->fake.gc);
	char *cmd = sg_asprintf("rm -rf '%s'", w->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(w->dir);
}

static int find(struct world *w, const char *addr, struct sg_key **key_r,
		enum sg_crypto_status *st_r, struct sg_error *err)
{
	return sg_keys_find_encrypt(w->lk, addr, 0, time(NULL), key_r, st_r, err);
}

static void test_local_wins_remote_fills(void **state)
{
	(void)state;
	struct world w;
	struct sg_key *k = NULL;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;

	world_open(&w, 0, 1, 1);
	assert_int_equal(find(&w, "Alice@A.test", &k, &st, &err), 1);
	assert_string_equal(sg_key_fingerprint(k), local_key.fingerprint);
	assert_int_equal(w.fake.calls, 0);
	sg_key_free(&k);
	assert_int_equal(find(&w, "rita@r.test", &k, &st, &err), 1);
	assert_int_equal(st, SG_CRYPTO_OK);
	assert_string_equal(sg_key_fingerprint(k), remote_key.fingerprint);
	assert_int_equal(w.fake.calls, 1);
	assert_int_equal(w.fake.lock_free_during_fetch, 1);
	sg_key_free(&k);
	world_close(&w);
}

static void test_directory_down_is_missing_key(void **state)
{
	(void)state;
	struct world w;
	struct sg_key *k = NULL;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;

	world_open(&w, 0, -1, 1);
	assert_int_equal(find(&w, "rita@r.test", &k, &st, &err), 0);
	assert_null(k);
	assert_int_equal(st, SG_CRYPTO_NO_KEY);
	if (strstr(sg_error_msg(&err), "no key for rita@r.test") == NULL ||
	    strstr(sg_error_msg(&err), "fake: directory down") == NULL)
		fail_msg("reason: %s", sg_error_msg(&err));
	sg_error_clear(&err);
	world_close(&w);
}

static void test_local_only_never_asks(void **state)
{
	(void)state;
	struct world w;
	struct sg_key *k = NULL;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;

	world_open(&w, SG_LOOKUP_LOCAL, 1, 1);
	assert_int_equal(find(&w, "rita@r.test", &k, &st, &err), 0);
	assert_string_equal(sg_error_msg(&err), "no key for rita@r.test");
	assert_int_equal(w.fake.calls, 0);
	sg_error_clear(&err);
	world_close(&w);
}

struct job {
	struct world *w;
	const char *addr;
	int ret;
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	struct sg_key *k = NULL;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;
	j->ret = find(j->w, j->addr, &k, &st, &err);
	sg_key_free(&k);
	sg_error_clear(&err);
	return NULL;
}

/* While one worker waits on a slow directory, another finds a local key:
 * nothing that worker needs is held across the fetch. */
static void test_other_workers_keep_going(void **state)
{
	(void)state;
	struct world w;
	pthread_t slow;

	world_open(&w, 0, 1, 0);
	struct job js = { .w = &w, .addr = "rita@r.test" };
	assert_int_equal(pthread_create(&slow, NULL, job_main, &js), 0);
	pthread_mutex_lock(&w.fake.gm);
	while (!w.fake.in_fetch)
		pthread_cond_wait(&w.fake.gc, &w.fake.gm);
	pthread_mutex_unlock(&w.fake.gm);
	struct job jl = { .w = &w, .addr = "alice@a.test" };
	job_main(&jl);             /* would block forever if the fetch held the lock */
	assert_int_equal(jl.ret, 1);
	pthread_mutex_lock(&w.fake.gm);
	w.fake.open = 1;
	pthread_cond_broadcast(&w.fake.gc);
	pthread_mutex_unlock(&w.fake.gm);
	assert_int_equal(pthread_join(slow, NULL), 0);
	assert_int_equal(js.ret, 1);
	world_close(&w);
}

static void test_bad_lookup_order_named(void **state)
{
	(void)state;
	struct sg_config cfg;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_key *k = NULL;
	enum sg_crypto_status st;

	sg_config_defaults(&cfg);
	assert_int_equal(sg_config_set(&cfg, "lookup_order", "gopher", &err), 1);
	struct sg_keys_lookup *lk = sg_keys_lookup_new(NULL, &cfg, NULL, 0);
	sg_config_clear(&cfg);
	assert_null(sg_keys_lookup_remote(lk));
	/* The store is never reached for a malformed address. */
	assert_int_equal(sg_keys_find_encrypt(lk, "no-at-sign", 0, time(NULL), &k, &st, &err), 0);
	assert_int_equal(st, SG_CRYPTO_MALFORMED);
	sg_error_clear(&err);
	sg_keys_lookup_free(&lk);
}

static int setup(void **state)
{
	struct sg_error err = SG_ERROR_INIT;
	(void)state;
	if (sg_pgp_meta_generate("alice@a.test", "ed25519", &local_key, &err) < 0 ||
	    sg_pgp_meta_generate("rita@r.test", "ed25519", &remote_key, &err) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sg_pgp_meta_clear(&local_key);
	sg_pgp_meta_clear(&remote_key);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_wins_remote_fills),
		cmocka_unit_test(test_directory_down_is_missing_key),
		cmocka_unit_test(test_local_only_never_asks),
		cmocka_unit_test(test_other_workers_keep_going),
		cmocka_unit_test(test_bad_lookup_order_named),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
