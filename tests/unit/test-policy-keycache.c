/* Unit tests for keys/keycache.c: hits by (address, tag), ttl 0 keeps
 * nothing, the oldest entry goes at the cap, entries outlive the cache
 * while users hold them (ASan sees any use after free or leak). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>

#include "keys/keycache.h"

/* The cache never looks inside a key: any pointer sg_key_free accepts. A
 * NULL key keeps the tests free of key material. */
static void test_hits_and_tags(void **state)
{
	struct sg_keycache *c = sg_keycache_new(60, 4);
	(void)state;
	assert_null(sg_keycache_get(c, "a@x.test", 1));
	struct sg_keycache_entry *e = sg_keycache_put(c, "a@x.test", 1, NULL);
	struct sg_keycache_entry *h = sg_keycache_get(c, "a@x.test", 1);
	assert_ptr_equal(e, h);
	assert_null(sg_keycache_get(c, "a@x.test", 2));
	assert_null(sg_keycache_get(c, "b@x.test", 1));
	sg_keycache_release(&e);
	assert_null(e);
	sg_keycache_release(&h);
	h = sg_keycache_get(c, "a@x.test", 1); /* still cached */
	assert_non_null(h);
	sg_keycache_free(&c);
	sg_keycache_release(&h); /* outlives the cache */
}

static void test_ttl_zero_and_cap(void **state)
{
	struct sg_keycache *c = sg_keycache_new(0, 4);
	(void)state;
	struct sg_keycache_entry *e = sg_keycache_put(c, "a@x.test", 1, NULL);
	assert_null(sg_keycache_get(c, "a@x.test", 1));
	sg_keycache_release(&e);
	sg_keycache_free(&c);

	c = sg_keycache_new(60, 2);
	const char *addrs[] = { "1@x.test", "2@x.test", "3@x.test" };
	for (int i = 0; i < 3; i++) {
		e = sg_keycache_put(c, addrs[i], 1, NULL);
		sg_keycache_release(&e);
	}
	int hits = 0;
	for (int i = 0; i < 3; i++) {
		e = sg_keycache_get(c, addrs[i], 1);
		hits += e != NULL;
		sg_keycache_release(&e);
	}
	assert_int_equal(hits, 2);
	e = sg_keycache_get(c, "3@x.test", 1);
	assert_non_null(e);
	sg_keycache_release(&e);
	sg_keycache_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hits_and_tags),
		cmocka_unit_test(test_ttl_zero_and_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
