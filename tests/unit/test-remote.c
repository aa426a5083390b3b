/* The remote look-up chain without a network: packet counting and address
 * classes (tables), DNS owner names (RFC 7929 vector) and the DNSSEC
 * decision, and the cache/single-flight/budget/key-change logic over fake sources. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "keys/cache.h"
#include "keys/pgp-meta.h"
#include "keys/remote.h"
#include "store/store.h"
#include "util/mem.h"

/* --- Packet counting (RFC 4880 4.2) --- */

static void test_count_packets(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		const char *data;
		size_t len;
		long max, want;
	} v[] = {
		{ "empty", "", 0, 10, 0 },
		{ "new format, 1-octet length", "\xc6\x01X", 3, 10, 1 },
		{ "new format, 2-octet length 192", "\xc6\xc0\x00" "", 3, 10, -1 },
		{ "old format, 1-octet length x2", "\x98\x01X\x98\x00", 5, 10, 2 },
		{ "old format, 2-octet length", "\x99\x00\x01X", 4, 10, 1 },
		{ "old format, 4-octet length", "\x9a\x00\x00\x00\x01X", 6, 10, 1 },
		{ "old format, indeterminate", "\x9b" "X", 2, 10, -1 },
		{ "partial body length", "\xc6\xe1XX", 4, 10, -1 },
		{ "5-octet length past end", "\xc6\xff\x00\x00\x10\x00X", 7, 10, -1 },
		{ "no tag bit", "\x06\x01X", 3, 10, -1 },
		{ "truncated header", "\xc6", 1, 10, -1 },
		{ "body past end", "\xc6\x05XX", 4, 10, -1 },
		{ "over the cap", "\xc6\x00\xc6\x00\xc6\x00", 6, 2, -1 },
		{ "at the cap", "\xc6\x00\xc6\x00", 4, 2, 2 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		long got = sg_keys_pgp_count_packets(v[i].data, v[i].len, v[i].max);
		if (got != v[i].want)
			fail_msg("%s: got %ld, want %ld", v[i].name, got, v[i].want);
	}
	/* 2-octet length of exactly 192 with the body present. */
	unsigned char big[3 + 192] = { 0xc6, 0xc0, 0x00 };
	assert_int_equal(sg_keys_pgp_count_packets(big, sizeof(big), 10), 1);
}

static void test_addr_is_public(void **state)
{
	(void)state;
	static const struct {
		const char *ip;
		int want;
	} v[] = {
		{ "8.8.8.8", 1 }, { "1.1.1.1", 1 }, { "2001:4860:4860::8888", 1 },
		{ "127.0.0.1", 0 }, { "127.9.9.9", 0 }, { "10.1.2.3", 0 }, { "172.16.0.1", 0 },
		{ "172.31.255.255", 0 }, { "172.32.0.1", 1 }, { "192.168.1.1", 0 },
		{ "169.254.169.254", 0 }, { "100.64.0.1", 0 }, { "0.0.0.0", 0 },
		{ "224.0.0.1", 0 }, { "255.255.255.255", 0 }, { "::1", 0 }, { "::", 0 },
		{ "fe80::1", 0 }, { "fc00::1", 0 }, { "fd12::1", 0 }, { "ff02::1", 0 },
		{ "::ffff:127.0.0.1", 0 }, { "::ffff:8.8.8.8", 1 }, { "64:ff9b::a00:1", 0 },
		{ "2002:7f00:1::", 0 }, { "not an ip", 0 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (sg_keys_addr_is_public(v[i].ip) != v[i].want)
			fail_msg("%s: want %d", v[i].ip, v[i].want);
}

static void test_allow_list(void **state)
{
	(void)state;
	char *t = NULL;
	const char *list = "a.test openpgpkey.b.test=127.0.0.1:8080";
	assert_int_equal(sg_keys_allow_lookup(list, "a.test", &t), 1);
	assert_null(t);
	assert_int_equal(sg_keys_allow_lookup(list, "openpgpkey.b.test", &t), 1);
	assert_string_equal(t, "127.0.0.1:8080");
	free(t);
	assert_int_equal(sg_keys_allow_lookup(list, "b.test", &t), 0);
	assert_int_equal(sg_keys_allow_lookup(list, "a.tes", &t), 0);
	assert_int_equal(sg_keys_allow_lookup("", "a.test", &t), 0);
}

/* --- DNS --- */

static void test_dns_owner(void **state)
{
	(void)state;
	struct sg_error err = SG_ERROR_INIT;
	/* RFC 7929 section 3 example. */
	char *n = sg_keys_dns_owner("hugh@example.com", "_openpgpkey", &err);
	assert_non_null(n);
	assert_string_equal(n, "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6"
			       "._openpgpkey.example.com");
	free(n);
	assert_null(sg_keys_dns_owner("no-at-sign", "_openpgpkey", &err));
	sg_error_clear(&err);
}

static void test_dns_trust_decision(void **state)
{
	(void)state;
	static const struct {
		int secure, bogus, havedata, want;
	} v[] = {
		{ 1, 0, 1, 1 },  /* validated answer */
		{ 0, 0, 1, 0 },  /* insecure: refused */
		{ 0, 1, 1, 0 },  /* bogus: refused */
		{ 0, 1, 0, 0 },
		{ 1, 0, 0, 1 },  /* validated "no such record" */
		{ 0, 0, 0, 1 },  /* nothing there, nothing used */
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct sg_error err = SG_ERROR_INIT;
		if (sg_keys_dns_trusted(v[i].secure, v[i].bogus, v[i].havedata, &err) != v[i].want)
			fail_msg("case %zu", i);
		sg_error_clear(&err);
	}
}

static void test_smimea_parse(void **state)
{
	(void)state;
	const unsigned char *c;
	size_t l;
	static const unsigned char full[] = { 3, 0, 0, 0x30, 0x01, 0x00 };
	static const unsigned char hash[] = { 3, 1, 1, 0xaa };
	static const unsigned char bad[] = { 9, 0, 0, 0x30 };
	assert_int_equal(sg_keys_smimea_parse(full, sizeof(full), &c, &l), 1);
	assert_ptr_equal(c, full + 3);
	assert_int_equal(l, 3);
	assert_int_equal(sg_keys_smimea_parse(hash, sizeof(hash), &c, &l), 0);
	assert_int_equal(sg_keys_smimea_parse(bad, sizeof(bad), &c, &l), -1);
	assert_int_equal(sg_keys_smimea_parse(full, 2, &c, &l), -1);
}

/* --- The chain over fake sources --- */

static struct sg_pgp_meta carol1, carol2, mallory;
static int64_t fake_now = 1000000;

static int64_t clock_fake(void)
{
	return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST);
}

struct fake {
	pthread_mutex_t lock;
	int calls;
	int result;              /* 1 serve data, 0 none, -1 fail */
	const struct sg_pgp_meta *key;
	unsigned sleep_ms;
	bool honour_budget;
};

static int fake_fetch(void *arg, const char *addr, unsigned budget_ms,
		      struct sg_keys_found **blobs_r, size_t *n_r, struct sg_error *err)
{
	struct fake *f = arg;
	pthread_mutex_lock(&f->lock);
	f->calls++;
	int result = f->result;
	const struct sg_pgp_meta *key = f->key;
	pthread_mutex_unlock(&f->lock);
	unsigned s = f->sleep_ms;
	if (f->honour_budget && s > budget_ms)
		s = budget_ms;
	usleep(s * 1000);
	if (result < 0) {
		sg_error_set(err, "directory down");
		return -1;
	}
	if (result == 0)
		return 0;
	struct sg_keys_found b = { .kind = "pgp", .data = key->public_data, .len = key->public_len };
	*blobs_r = sg_keys_found_copy(&b, 1);
	*n_r = 1;
	return 1;
}

static struct fake *fake_new(int result, const struct sg_pgp_meta *key)
{
	struct fake *f = sg_calloc(1, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	f->result = result;
	f->key = key;
	return f;
}

static int fake_calls(struct fake *f)
{
	pthread_mutex_lock(&f->lock);
	int n = f->calls;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static void fake_free(void *arg)
{
	struct fake *f = arg;
	pthread_mutex_destroy(&f->lock);
	free(f);
}

struct world {
	struct sg_config cfg;
	struct sg_store *store;
	char *dir;
	struct sg_keys_remote *r;
};

static void world_open(struct world *w, const char *key_change)
{
	struct sg_error err = SG_ERROR_INIT;
	char tmpl[] = "/tmp/sg-remote-XXXXXX";
	w->dir = sg_strdup(mkdtemp(tmpl));
	char *spec = sg_asprintf("sqlite:%s/db", w->dir);
	assert_int_equal(sg_store_open(spec, &w->store, &err), 1);
	free(spec);
	sg_config_defaults(&w->cfg);
	assert_int_equal(sg_config_set(&w->cfg, "lookup_order", "", &err), 1);
	assert_int_equal(sg_config_set(&w->cfg, "lookup_cache_ttl", "100s", &err), 1);
	assert_int_equal(sg_config_set(&w->cfg, "lookup_negative_ttl", "10s", &err), 1);
	assert_int_equal(sg_config_set(&w->cfg, "key_change", key_change, &err), 1);
	w->r = sg_keys_remote_new(w->store, NULL, &w->cfg, &err);
	assert_non_null(w->r);
	sg_keys_remote_set_clock(w->r, clock_fake);
}

static void world_reopen_chain(struct world *w)
{
	struct sg_error err = SG_ERROR_INIT;
	sg_keys_remote_free(&w->r);
	w->r = sg_keys_remote_new(w->store, NULL, &w->cfg, &err);
	assert_non_null(w->r);
	sg_keys_remote_set_clock(w->r, clock_fake);
}

static void world_close(struct world *w)
{
	sg_keys_remote_free(&w->r);
	assert_null(w->r);
	sg_store_close(&w->store);
	sg_config_clear(&w->cfg);
	char *cmd = sg_asprintf("rm -rf '%s'", w->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(w->dir);
}

static void add_fake(struct world *w, const char *name, struct fake *f)
{
	struct sg_keys_source src = {
		.name = name, .trust = "test", .fetch = fake_fetch, .free = fake_free, .ctx = f,
	};
	sg_keys_remote_add_source(w->r, &src);
}

static int find(struct world *w, const char *addr, unsigned budget, char **source_r,
		struct sg_error *err)
{
	struct sg_keys_found *k = NULL;
	size_t n = 0;
	int r = sg_keys_remote_find(w->r, addr, budget, &k, &n, err);
	if (source_r != NULL)
		*source_r = r == 1 ? sg_strdup(k[0].source) : NULL;
	if (r == 1) {
		assert_int_equal(n, 1);
		assert_string_equal(k[0].kind, "pgp");
	}
	sg_keys_found_free(&k, n);
	return r;
}

static unsigned char *last_found;

static const void *found_data(struct world *w, const char *addr, size_t *len_r)
{
	struct sg_keys_found *k = NULL;
	size_t n = 0;
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_keys_remote_find(w->r, addr, 1000, &k, &n, &err), 1);
	free(last_found);
	last_found = k[0].data;
	*len_r = k[0].len;
	k[0].data = NULL;
	sg_keys_found_free(&k, n);
	return last_found;
}

static void test_hit_miss_negative_ttl(void **state)
{
	(void)state;
	struct world w;
	struct sg_error err = SG_ERROR_INIT;
	char *src = NULL;
	world_open(&w, "accept");
	struct fake *none = fake_new(0, NULL), *has = fake_new(1, &carol1);
	add_fake(&w, "first", none);
	add_fake(&w, "second", has);

	assert_int_equal(find(&w, "carol@x.test", 1000, &src, &err), 1);
	assert_string_equal(src, "second");   /* order: first said none */
	free(src);
	assert_int_equal(fake_calls(none), 1);
	assert_int_equal(find(&w, "CAROL@x.test", 1000, NULL, &err), 1);   /* hit */
	assert_int_equal(fake_calls(has), 1);
	assert_int_equal(sg_keys_remote_fetch_count(w.r), 1);

	/* Negative: both sources say none; cached for lookup_negative_ttl. */
	assert_int_equal(find(&w, "nobody@x.test", 1000, NULL, &err), 0);
	assert_int_equal(find(&w, "nobody@x.test", 1000, NULL, &err), 0);
	assert_int_equal(fake_calls(has), 2);
	fake_now += 11;
	assert_int_equal(find(&w, "nobody@x.test", 1000, NULL, &err), 0);
	assert_int_equal(fake_calls(has), 3);

	/* A new chain over the same store: served from the store's cache table. */
	world_reopen_chain(&w);
	struct fake *has2 = fake_new(1, &carol1);
	add_fake(&w, "again", has2);
	assert_int_equal(find(&w, "carol@x.test", 1000, NULL, &err), 1);
	assert_int_equal(fake_calls(has2), 0);
	/* Past the TTL: fetched again. */
	fake_now += 101;
	assert_int_equal(find(&w, "carol@x.test", 1000, NULL, &err), 1);
	assert_int_equal(fake_calls(has2), 1);
	world_close(&w);
	sg_error_clear(&err);
}

/* The store holds one row per source: the newest decides after a restart. */
static void test_store_newest_row_wins(void **state)
{
	(void)state;
	struct world w;
	struct sg_error err = SG_ERROR_INIT;
	world_open(&w, "accept");
	struct fake *f = fake_new(1, &carol1);
	add_fake(&w, "src", f);
	assert_int_equal(find(&w, "carol@x.test", 1000, NULL, &err), 1);
	fake_now += 1;
	f->result = 0;                        /* the key was withdrawn */
	sg_keys_remote_set_no_cache(w.r, true);
	assert_int_equal(find(&w, "carol@x.test", 1000, NULL, &err), 0);
	world_reopen_chain(&w);
	struct fake *g = fake_new(1, &carol1);
	add_fake(&w, "again", g);
	assert_int_equal(find(&w, "carol@x.test", 1000, NULL, &err), 0);
	assert_int_equal(fake_calls(g), 0);
	world_close(&w);
}

static void test_refresh_ahead(void **state)
{
	(void)state;
	struct world w;
	struct sg_error err = SG_ERROR_INIT;
	world_open(&w, "accept");
	struct fake *f = fake_new(1, &carol1);
	add_fake(&w, "src", f);
	assert_int_equal(find(&w, "carol@x.test", 1000, NULL, &err), 1);
	fake_now += 85;                       /* past 80% of the 100 s TTL */
	assert_int_equal(find(&w, "carol@x.test", 1000, NULL, &err), 1);   /* served at once */
	for (int i = 0; i < 200 && fake_calls(f) < 2; i++)
		usleep(5000);
	assert_int_equal(fake_calls(f), 2);   /* refreshed in the background */
	fake_now += 50;                       /* old entry expired, refreshed one fresh */
	assert_int_equal(find(&w, "carol@x.test", 1000, NULL, &err), 1);
	assert_int_equal(fake_calls(f), 2);
	world_close(&w);
}

struct racer {
	struct world *w;
	int result;
	char *msg;
};

static void *race(void *arg)
{
	struct racer *rc = arg;
	struct sg_error err = SG_ERROR_INIT;
	rc->result = find(rc->w, "carol@x.test", 2000, NULL, &err);
	rc->msg = err.msg != NULL ? sg_strdup(err.msg) : NULL;
	sg_error_clear(&err);
	return NULL;
}

static void run_race(struct world *w, struct racer *rc, size_t n)
{
	pthread_t t[16];
	for (size_t i = 0; i < n; i++) {
		rc[i].w = w;
		assert_int_equal(pthread_create(&t[i], NULL, race, &rc[i]), 0);
	}
	for (size_t i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

static void test_single_flight(void **state)
{
	(void)state;
	struct world w;
	struct racer rc[16] = { 0 };
	world_open(&w, "accept");
	struct fake *f = fake_new(1, &carol1);
	f->sleep_ms = 200;
	add_fake(&w, "slow", f);
	run_race(&w, rc, 16);
	for (size_t i = 0; i < 16; i++)
		assert_int_equal(rc[i].result, 1);
	assert_int_equal(fake_calls(f), 1);
	world_close(&w);
}

static void test_single_flight_error_shared(void **state)
{
	(void)state;
	struct world w;
	struct racer rc[8] = { 0 };
	world_open(&w, "accept");
	struct fake *f = fake_new(-1, NULL);
	f->sleep_ms = 200;
	add_fake(&w, "down", f);
	run_race(&w, rc, 8);
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(rc[i].result, -1);
		assert_non_null(strstr(rc[i].msg, "directory down"));
		free(rc[i].msg);
	}
	assert_int_equal(fake_calls(f), 1);
	/* An error is not cached: the next look-up asks again. */
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(find(&w, "carol@x.test", 1000, NULL, &err), -1);
	assert_int_equal(fake_calls(f), 2);
	sg_error_clear(&err);
	world_close(&w);
}

static void test_budget(void **state)
{
	(void)state;
	struct world w;
	struct sg_error err = SG_ERROR_INIT;
	world_open(&w, "accept");
	struct fake *slow = fake_new(0, NULL), *next = fake_new(1, &carol1);
	slow->sleep_ms = 10000;
	slow->honour_budget = true;
	add_fake(&w, "slow", slow);
	add_fake(&w, "next", next);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(find(&w, "carol@x.test", 300, NULL, &err), -1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	assert_true(ms < 600);
	assert_non_null(strstr(sg_error_msg(&err), "budget"));
	assert_int_equal(fake_calls(next), 0);
	sg_error_clear(&err);
	world_close(&w);
}

static void test_user_id_and_key_change(void **state)
{
	(void)state;
	struct sg_error err = SG_ERROR_INIT;
	const char *modes[] = { "accept", "hold" };
	for (size_t m = 0; m < 2; m++) {
		struct world w;
		size_t len;
		world_open(&w, modes[m]);
		struct fake *f = fake_new(1, &mallory);
		add_fake(&w, "src", f);
		/* mallory's key under carol's address: refused, so "none". */
		assert_int_equal(find(&w, "carol@x.test", 1000, NULL, &err), 0);
		sg_keys_remote_set_no_cache(w.r, true);
		f->key = &carol1;
		const void *d = found_data(&w, "carol@x.test", &len);
		assert_memory_equal(d, carol1.public_data, len);
		f->key = &carol2;
		d = found_data(&w, "carol@x.test", &len);
		const struct sg_pgp_meta *want = m == 0 ? &carol2 : &carol1;
		if (len != want->public_len || memcmp(d, want->public_data, len) != 0)
			fail_msg("key_change=%s: wrong key in use", modes[m]);
		if (m == 1) {
			/* The held key is kept beside the one in use. */
			struct sg_store_cache *rows = NULL;
			size_t n = 0;
			bool pending = false;
			assert_int_equal(sg_store_cache_get(w.store, "carol@x.test", &rows, &n, &err) >= 0, 1);
			for (size_t i = 0; i < n; i++)
				pending |= strcmp(rows[i].source, "pending:src") == 0;
			sg_store_cache_free(&rows, n);
			assert_true(pending);
		}
		world_close(&w);
	}
	sg_error_clear(&err);
}

static void test_check_blob_garbage(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		const char *data;
		size_t len;
	} v[] = {
		{ "empty", "", 0 },
		{ "text", "hello", 5 },
		{ "DER junk", "\x30\x03\x02\x01\x00", 5 },
		{ "truncated packet", "\x99\x01\x0d", 3 },
		{ "armor header only", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n", 37 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct sg_keys_found out;
		struct sg_error err = SG_ERROR_INIT;
		if (sg_keys_check_blob("a@x.test", v[i].data, v[i].len, &out, &err) != 0)
			fail_msg("%s: accepted", v[i].name);
		sg_error_clear(&err);
	}
}

static int setup_keys(void **state)
{
	(void)state;
	struct sg_error err = SG_ERROR_INIT;
	if (sg_pgp_meta_generate("carol@x.test", "ed25519", &carol1, &err) < 0 ||
	    sg_pgp_meta_generate("carol@x.test", "ed25519", &carol2, &err) < 0 ||
	    sg_pgp_meta_generate("mallory@x.test", "ed25519", &mallory, &err) < 0)
		return -1;
	return 0;
}

static int teardown_keys(void **state)
{
	(void)state;
	sg_pgp_meta_clear(&carol1);
	sg_pgp_meta_clear(&carol2);
	sg_pgp_meta_clear(&mallory);
	free(last_found);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_count_packets),
		cmocka_unit_test(test_addr_is_public),
		cmocka_unit_test(test_allow_list),
		cmocka_unit_test(test_dns_owner),
		cmocka_unit_test(test_dns_trust_decision),
		cmocka_unit_test(test_smimea_parse),
		cmocka_unit_test(test_check_blob_garbage),
		cmocka_unit_test(test_hit_miss_negative_ttl),
		cmocka_unit_test(test_store_newest_row_wins),
		cmocka_unit_test(test_refresh_ahead),
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_single_flight_error_shared),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_user_id_and_key_change),
	};
	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
