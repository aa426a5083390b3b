/* Key look-ups per second and latency percentiles straight from the store
 * (no in-process cache yet): N keys, then M look-ups of random addresses.
 * usage: keys-bench STORE_SPEC [N_KEYS] [N_LOOKUPS] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys/keystore.h"
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

int main(int argc, char **argv)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store *st = NULL;
	size_t n_keys = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
	size_t n_look = argc > 3 ? strtoul(argv[3], NULL, 10) : 100000;
	unsigned char blob[400];

	if (argc < 2 || n_keys == 0 || n_look == 0) {
		fprintf(stderr, "usage: keys-bench STORE_SPEC [N_KEYS] [N_LOOKUPS]\n");
		return 64;
	}
	if (sg_store_open(argv[1], &st, &err) < 0) {
		fprintf(stderr, "%s\n", sg_error_msg(&err));
		return 1;
	}
	srand(42);
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (unsigned char)rand();
	if (sg_store_begin(st, &err) < 0)
		return 1;
	for (size_t i = 0; i < n_keys; i++) {
		char addr[64], fpr[64];
		snprintf(addr, sizeof(addr), "user%zu@bench.test", i);
		snprintf(fpr, sizeof(fpr), "%040zX", i);
		if (sg_keys_put_public(st, addr, fpr, "pgp", 0, "import", "configured", blob,
				       sizeof(blob), &err) < 0) {
			fprintf(stderr, "%s\n", sg_error_msg(&err));
			return 1;
		}
	}
	if (sg_store_commit(st, &err) < 0)
		return 1;
	double *lat = sg_calloc(n_look, sizeof(*lat));
	double t0 = now_us();
	for (size_t i = 0; i < n_look; i++) {
		char addr[64];
		struct sg_store_key *keys = NULL;
		size_t n = 0;
		snprintf(addr, sizeof(addr), "user%d@bench.test", rand() % (int)n_keys);
		double a = now_us();
		if (sg_store_key_list(st, addr, &keys, &n, &err) != 1 || n != 1) {
			fprintf(stderr, "look-up %s failed: %s\n", addr, sg_error_msg(&err));
			return 1;
		}
		lat[i] = now_us() - a;
		sg_store_keys_free(&keys, n);
	}
	double total = now_us() - t0;
	qsort(lat, n_look, sizeof(*lat), cmp);
	printf("%s: %zu keys, %zu look-ups: %.0f look-ups/s, p50 %.1f us, p99 %.1f us\n",
	       sg_store_driver_name(st), n_keys, n_look, (double)n_look / (total / 1e6),
	       lat[n_look / 2], lat[(size_t)((double)n_look * 0.99)]);
	free(lat);
	sg_store_close(&st);
	return 0;
}
