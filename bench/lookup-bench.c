/* Remote-key look-ups: cached (the in-process cache, hits only) per second
 * and p50/p99, cold look-ups through a configured source (no cache), and
 * the mail path's sg_keys_find_encrypt for keys in the store next to keys
 * known only from the remote cache.
 * usage: lookup-bench cached [N_ADDRS] [N_LOOKUPS] [THREADS]
 *        lookup-bench cold ADDR N_LOOKUPS KEY=VALUE...
 *        lookup-bench find N_ADDRS N_LOOKUPS STORE */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "keys/cache.h"
#include "keys/keystore.h"
#include "keys/lookup.h"
#include "keys/pgp-meta.h"
#include "keys/remote.h"
#include "store/store.h"
#include "util/mem.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, double *lat, size_t n, double wall_us, unsigned threads)
{
	qsort(lat, n, sizeof(*lat), cmp);
	printf("%-28s %8zu look-ups  %10.0f/s  p50 %8.1f us  p99 %8.1f us  (threads %u)\n", what, n,
	       (double)n / (wall_us / 1e6), lat[n / 2], lat[n * 99 / 100], threads);
}

/* The fake source: the generated key for the address (keys[i] for addr i). */
static struct sg_pgp_meta *metas;
static size_t n_metas;

static int fake_fetch(void *ctx, const char *addr, unsigned budget, struct sg_keys_found **b_r,
		      size_t *n_r, struct sg_error *err)
{
	size_t i = strtoul(addr + 1, NULL, 10);
	if (i >= n_metas)
		return 0;
	struct sg_keys_found b = { .kind = "pgp", .data = metas[i].public_data,
				   .len = metas[i].public_len };
	*b_r = sg_keys_found_copy(&b, 1);
	*n_r = 1;
	return 1;
}

struct job {
	pthread_t t;
	struct sg_keys_remote *r;
	size_t n;
	double *lat;
	unsigned seed;
};

static void *run_cached(void *arg)
{
	struct job *j = arg;
	for (size_t k = 0; k < j->n; k++) {
		char addr[64];
		struct sg_keys_found *keys = NULL;
		size_t nk = 0;
		struct sg_error err = SG_ERROR_INIT;
		snprintf(addr, sizeof(addr), "u%zu@bench.test", (size_t)rand_r(&j->seed) % n_metas);
		double t0 = now_us();
		int r = sg_keys_remote_find(j->r, addr, 1000, &keys, &nk, &err);
		j->lat[k] = now_us() - t0;
		if (r != 1) {
			fprintf(stderr, "%s: %d %s\n", addr, r, sg_error_msg(&err));
			exit(1);
		}
		sg_keys_found_free(&keys, nk);
	}
	return NULL;
}

static int cached(size_t n_addrs, size_t n_look, unsigned threads, const char *spec)
{
	struct sg_config cfg;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store *st = NULL;

	sg_config_defaults(&cfg);
	if (sg_config_set(&cfg, "lookup_order", "", &err) < 0 || sg_store_open(spec, &st, &err) < 0)
		goto fail;
	metas = sg_calloc(n_addrs, sizeof(*metas));
	n_metas = n_addrs;
	for (size_t i = 0; i < n_addrs; i++) {
		char *a = sg_asprintf("u%zu@bench.test", i);
		if (sg_pgp_meta_generate(a, "ed25519", &metas[i], &err) < 0)
			goto fail;
		free(a);
	}
	struct sg_keys_remote *r = sg_keys_remote_new(st, NULL, &cfg, &err);
	struct sg_keys_source src = { .name = "bench", .trust = "test", .fetch = fake_fetch };
	sg_keys_remote_add_source(r, &src);
	/* Warm: one fetch per address. */
	for (size_t i = 0; i < n_addrs; i++) {
		char addr[64];
		struct sg_keys_found *keys = NULL;
		size_t nk = 0;
		snprintf(addr, sizeof(addr), "u%zu@bench.test", i);
		if (sg_keys_remote_find(r, addr, 1000, &keys, &nk, &err) != 1)
			goto fail;
		sg_keys_found_free(&keys, nk);
	}
	struct job *jobs = sg_calloc(threads, sizeof(*jobs));
	double *lat = sg_calloc(n_look, sizeof(*lat));
	size_t per = n_look / threads;
	double t0 = now_us();
	for (unsigned i = 0; i < threads; i++) {
		jobs[i] = (struct job){ .r = r, .n = per, .lat = lat + i * per, .seed = i + 1 };
		pthread_create(&jobs[i].t, NULL, run_cached, &jobs[i]);
	}
	for (unsigned i = 0; i < threads; i++)
		pthread_join(jobs[i].t, NULL);
	double wall = now_us() - t0;
	report("cached (in-process)", lat, per * threads, wall, threads);
	if (sg_keys_remote_fetch_count(r) != n_addrs)
		fprintf(stderr, "unexpected fetches: %llu\n",
			(unsigned long long)sg_keys_remote_fetch_count(r));
	sg_keys_remote_free(&r);
	sg_store_close(&st);
	free(lat);
	free(jobs);
	return 0;
fail:
	fprintf(stderr, "%s\n", sg_error_msg(&err));
	return 1;
}

static int cold(const char *addr, size_t n, char **sets, int n_sets)
{
	struct sg_config cfg;
	struct sg_error err = SG_ERROR_INIT;
	sg_config_defaults(&cfg);
	for (int i = 0; i < n_sets; i++) {
		char *eq = strchr(sets[i], '=');
		if (eq == NULL)
			return 64;
		*eq = '\0';
		if (sg_config_set(&cfg, sets[i], eq + 1, &err) < 0)
			goto fail;
	}
	struct sg_keys_remote *r = sg_keys_remote_new(NULL, NULL, &cfg, &err);
	if (r == NULL)
		goto fail;
	sg_keys_remote_set_no_cache(r, true);
	double *lat = sg_calloc(n, sizeof(*lat));
	double t0 = now_us();
	for (size_t i = 0; i < n; i++) {
		struct sg_keys_found *keys = NULL;
		size_t nk = 0;
		double s = now_us();
		if (sg_keys_remote_find(r, addr, 5000, &keys, &nk, &err) != 1)
			goto fail;
		lat[i] = now_us() - s;
		sg_keys_found_free(&keys, nk);
	}
	char *what = sg_asprintf("cold %s", cfg.lookup_order);
	report(what, lat, n, now_us() - t0, 1);
	free(what);
	free(lat);
	sg_keys_remote_free(&r);
	return 0;
fail:
	fprintf(stderr, "%s\n", sg_error_msg(&err));
	return 1;
}

/* n look-ups of random addresses among [first, first + n_addrs). */
static int find_loop(struct sg_keys_lookup *lk, size_t first, size_t n_addrs, size_t n,
		     const char *what)
{
	double *lat = sg_calloc(n, sizeof(*lat));
	unsigned seed = 1;
	double t0 = now_us();
	for (size_t k = 0; k < n; k++) {
		char addr[64];
		struct sg_key *key = NULL;
		enum sg_crypto_status st;
		struct sg_error err = SG_ERROR_INIT;
		snprintf(addr, sizeof(addr), "u%zu@bench.test", first + (size_t)rand_r(&seed) % n_addrs);
		double s = now_us();
		int r = sg_keys_find_encrypt(lk, addr, 0, time(NULL), &key, &st, &err);
		lat[k] = now_us() - s;
		if (r != 1) {
			fprintf(stderr, "%s: %d %s\n", addr, r, sg_error_msg(&err));
			return -1;
		}
		sg_key_free(&key);
	}
	double wall = now_us() - t0;
	report(what, lat, n, wall, 1);
	double rate = (double)n / (wall / 1e6);
	free(lat);
	return (int)rate;
}

/* The first half of the addresses in the store, the second half only at
 * the (fake) directory, fetched once and then served from the cache. */
static int find(size_t n_addrs, size_t n, const char *spec)
{
	struct sg_config cfg;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store *st = NULL;
	size_t half = n_addrs / 2;

	sg_config_defaults(&cfg);
	/* "ldap" without ldap_uri: a chain with no configured source, so
	 * that only the fake one below is asked. */
	if (sg_config_set(&cfg, "lookup_order", "ldap", &err) < 0 ||
	    sg_store_open(spec, &st, &err) < 0)
		goto fail;
	metas = sg_calloc(n_addrs, sizeof(*metas));
	n_metas = n_addrs;
	for (size_t i = 0; i < n_addrs; i++) {
		char *a = sg_asprintf("u%zu@bench.test", i);
		int r = sg_pgp_meta_generate(a, "ed25519", &metas[i], &err);
		if (r > 0 && i < half)
			r = sg_keys_put_public(st, a, metas[i].fingerprint, "pgp", 0, "bench", "configured",
					       metas[i].public_data, metas[i].public_len, &err);
		free(a);
		if (r < 0)
			goto fail;
	}
	struct sg_keys_lookup *lk = sg_keys_lookup_new(st, &cfg, NULL, 0);
	struct sg_keys_source src = { .name = "bench", .trust = "test", .fetch = fake_fetch };
	sg_keys_remote_add_source(sg_keys_lookup_remote(lk), &src);
	int local = find_loop(lk, 0, half, n, "find_encrypt: store");
	int remote = find_loop(lk, half, n_addrs - half, n, "find_encrypt: remote cache");
	if (local <= 0 || remote <= 0)
		return 1;
	printf("find_encrypt via the remote cache / via the store: %.2f (fetches %llu for %zu addresses)\n",
	       (double)remote / local,
	       (unsigned long long)sg_keys_remote_fetch_count(sg_keys_lookup_remote(lk)),
	       n_addrs - half);
	sg_keys_lookup_free(&lk);
	sg_store_close(&st);
	sg_config_clear(&cfg);
	return 0;
fail:
	fprintf(stderr, "%s\n", sg_error_msg(&err));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "cached") == 0)
		return cached(argc > 2 ? strtoul(argv[2], NULL, 10) : 200,
			      argc > 3 ? strtoul(argv[3], NULL, 10) : 1000000,
			      argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 1,
			      argc > 5 ? argv[5] : "sqlite::memory:");
	if (argc >= 4 && strcmp(argv[1], "cold") == 0)
		return cold(argv[2], strtoul(argv[3], NULL, 10), argv + 4, argc - 4);
	if (argc >= 5 && strcmp(argv[1], "find") == 0)
		return find(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10), argv[4]);
	fprintf(stderr, "usage: lookup-bench cached [N_ADDRS] [N_LOOKUPS] [THREADS] [STORE]\n"
			"       lookup-bench find N_ADDRS N_LOOKUPS STORE\n"
			"       lookup-bench cold ADDR N KEY=VALUE...\n");
	return 64;
}
