/* sealgate key-lookup ADDR: find another party's key through the remote
 * chain (cache, WKD, LDAP, DNS) the way the gateway does, and say where from. */
#include "cli/cli.h"
#include "config/config.h"
#include "crypto/crypto.h"
#include "keys/held.h"
#include "keys/remote.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct lookup_opts {
	struct sg_cli_where where;
	const char *source, *addr;
	bool no_cache;
	bool pending;            /* list keys held by key_change = hold */
	unsigned budget_ms;      /* 0: lookup_budget */
	unsigned concurrent;     /* test aid: N threads look addr up at once */
	unsigned repeat;         /* look-ups per thread */
};

struct worker {
	pthread_t t;
	struct sg_keys_remote *r;
	const struct lookup_opts *o;
	int result;              /* of the last look-up */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: sealgate key-lookup ADDR [--source wkd|ldap|dns] [--no-cache] [--pending]\n"
		   "         [-c FILE] [--state-dir DIR] [--store SPEC] [--set KEY=VALUE]...\n"
		   "         [--budget-ms N] [--concurrent N] [--repeat N]\n"
		   "exit: 0 found, %d no key, %d look-up failed\n", SG_EXIT_NO_KEY, SG_EXIT_FAIL);
}

static int set_kv(struct sg_config *cfg, const char *kv, struct sg_error *err)
{
	const char *eq = strchr(kv, '=');
	if (eq == NULL) {
		sg_error_set(err, "--set %s: expected KEY=VALUE", kv);
		return -1;
	}
	char *key = sg_strndup(kv, (size_t)(eq - kv));
	int r = sg_config_set(cfg, key, eq + 1, err);
	free(key);
	return r;
}

/* 1 parsed, 0 help, -1 usage error (printed). Config settings from --set
 * are applied after the file, in order. */
static int parse(int argc, char **argv, struct lookup_opts *o, char ***sets_r, size_t *n_sets)
{
	static const struct option longopts[] = {
		SG_CLI_WHERE_OPTIONS,
		{ "source", required_argument, NULL, 's' },
		{ "no-cache", no_argument, NULL, 'n' },
		{ "pending", no_argument, NULL, 'P' },
		{ "set", required_argument, NULL, 'o' },
		{ "budget-ms", required_argument, NULL, 'b' },
		{ "concurrent", required_argument, NULL, 'j' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (sg_cli_where_opt(&o->where, c, optarg))
			continue;
		switch (c) {
		case 's': o->source = optarg; break;
		case 'n': o->no_cache = true; break;
		case 'P': o->pending = true; break;
		case 'o':
			*sets_r = sg_reallocarray(*sets_r, *n_sets + 1, sizeof(char *));
			(*sets_r)[(*n_sets)++] = optarg;
			break;
		case 'b': o->budget_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'j': o->concurrent = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': o->repeat = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return -1;
		}
	}
	if (argc - optind != 1 || o->concurrent > 1000) {
		usage(stderr);
		return -1;
	}
	if (o->source != NULL && strcmp(o->source, "wkd") != 0 && strcmp(o->source, "ldap") != 0 &&
	    strcmp(o->source, "dns") != 0) {
		fprintf(stderr, "sealgate key-lookup: --source must be wkd, ldap or dns\n");
		return -1;
	}
	o->addr = argv[optind];
	return 1;
}

static void print_keys(const struct sg_keys_found *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sg_key *key = NULL;
		enum sg_crypto_status st;
		struct sg_error err = SG_ERROR_INIT;
		int ok = sg_key_load_mem(keys[i].data, keys[i].len, NULL, &key, &st, &err);
		printf("%s\t%s\t%s\t%s\t%zu\n", keys[i].kind, keys[i].source, keys[i].trust,
		       ok == 1 && key != NULL ? sg_key_fingerprint(key) : "?", keys[i].len);
		sg_key_free(&key);
		sg_error_clear(&err);
	}
}

/* Keys held for approval (key_change = hold) for addr. Prints them; 1
 * some, 0 none, -1 error. */
static int list_pending(struct sg_store *store, const char *addr, struct sg_error *err)
{
	struct sg_keys_held *held = NULL;
	size_t n = 0;
	char *a = sg_strdup(addr);
	for (char *p = a; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	int r = sg_keys_held_list(store, a, &held, &n, err);
	for (size_t i = 0; i < n; i++)
		printf("pending\t%s\t%s\t%s\t%s\tfetched %lld\n", held[i].addr, held[i].source,
		       held[i].kind, held[i].fingerprint, (long long)held[i].fetched_at);
	sg_keys_held_free(&held, n);
	free(a);
	return r;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned budget = w->o->budget_ms;
	for (unsigned i = 0; i < (w->o->repeat > 0 ? w->o->repeat : 1); i++) {
		struct sg_keys_found *keys = NULL;
		size_t n = 0;
		struct sg_error err = SG_ERROR_INIT;
		w->result = sg_keys_remote_find(w->r, w->o->addr, budget, &keys, &n, &err);
		if (w->result < 0)
			sg_log_warn("%s", sg_error_msg(&err));
		sg_keys_found_free(&keys, n);
		sg_error_clear(&err);
	}
	return NULL;
}

/* Test aid: N threads at once; prints how many fetches the chain made. */
static int run_concurrent(struct sg_keys_remote *r, const struct lookup_opts *o)
{
	struct worker *w = sg_calloc(o->concurrent, sizeof(*w));
	unsigned found = 0, none = 0, failed = 0;
	for (unsigned i = 0; i < o->concurrent; i++) {
		w[i].r = r;
		w[i].o = o;
		if (pthread_create(&w[i].t, NULL, worker_main, &w[i]) != 0)
			sg_fatal("pthread_create failed");
	}
	for (unsigned i = 0; i < o->concurrent; i++) {
		pthread_join(w[i].t, NULL);
		found += w[i].result == 1;
		none += w[i].result == 0;
		failed += w[i].result < 0;
	}
	printf("found=%u none=%u failed=%u fetches=%llu\n", found, none, failed,
	       (unsigned long long)sg_keys_remote_fetch_count(r));
	free(w);
	return failed > 0 ? SG_EXIT_FAIL : found > 0 ? SG_EXIT_OK : SG_EXIT_NO_KEY;
}

int cmd_key_lookup(int argc, char **argv)
{
	struct lookup_opts o = { 0 };
	struct sg_config cfg = { 0 }; /* sg_config_clear copes with all-zero */
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store *store = NULL;
	struct sg_keys_remote *r = NULL;
	struct sg_keys_found *keys = NULL;
	char **sets = NULL;
	size_t n_sets = 0, n = 0;
	int ret = SG_EXIT_CONFIG;

	int p = parse(argc, argv, &o, &sets, &n_sets);
	if (p <= 0) {
		ret = p == 0 ? SG_EXIT_OK : SG_EXIT_USAGE;
		goto out;
	}
	sg_log_open("sealgate/key-lookup", SG_LOG_STDERR, NULL);
	if (sg_cli_where_config(&o.where, &cfg, &err) < 0)
		goto fail;
	for (size_t i = 0; i < n_sets; i++)
		if (set_kv(&cfg, sets[i], &err) < 0)
			goto fail;
	ret = SG_EXIT_FAIL;
	if (sg_store_open_config(&cfg, NULL, &store, &err) < 0)
		goto fail;
	if (o.pending) {
		int pr = list_pending(store, o.addr, &err);
		if (pr < 0)
			goto fail;
		ret = pr > 0 ? SG_EXIT_OK : SG_EXIT_NO_KEY;
		goto out;
	}
	if ((r = sg_keys_remote_new(store, NULL, &cfg, &err)) == NULL) {
		ret = SG_EXIT_CONFIG;
		goto fail;
	}
	sg_keys_remote_set_only(r, o.source);
	sg_keys_remote_set_no_cache(r, o.no_cache);
	if (o.budget_ms == 0)
		o.budget_ms = cfg.lookup_budget * 1000;
	if (o.concurrent > 0) {
		ret = run_concurrent(r, &o);
		goto out;
	}
	int res = sg_keys_remote_find(r, o.addr, o.budget_ms, &keys, &n, &err);
	if (res < 0)
		goto fail;
	if (res == 0) {
		fprintf(stderr, "sealgate key-lookup: %s: no key found\n", o.addr);
		ret = SG_EXIT_NO_KEY;
		goto out;
	}
	print_keys(keys, n);
	ret = SG_EXIT_OK;
	goto out;
fail:
	fprintf(stderr, "sealgate key-lookup: %s\n", sg_error_msg(&err));
out:
	sg_keys_found_free(&keys, n);
	sg_keys_remote_free(&r);
	sg_store_close(&store);
	sg_config_clear(&cfg);
	sg_error_clear(&err);
	free(sets);
	return ret;
}
