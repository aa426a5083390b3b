/* Unit tests for the per-thread librnp key cache of crypto/pgp.c: keys
 * imported once, replaced when their bytes change, LRU-bounded, secret keys
 * usable only by an operation given them, one context per thread. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "crypto/pgp.h"
#include "keys/pgp-meta.h"

#define N_KEYS 4

/* sec[i] / pub[i]: the same key loaded with and without its secret part. */
static struct sg_key *sec[N_KEYS], *pub[N_KEYS];
static unsigned char *pub_bytes[N_KEYS];
static size_t pub_len[N_KEYS];

static const char msg[] = "Subject: x\r\n\r\ncache test\r\n";

static struct sg_key *load(const unsigned char *p, size_t n)
{
	struct sg_key *k = NULL;
	enum sg_crypto_status st;

	assert_int_equal(sg_key_load_mem(p, n, NULL, &k, &st, NULL), 1);
	return k;
}

static int setup(void **state)
{
	(void)state;
	for (int i = 0; i < N_KEYS; i++) {
		struct sg_pgp_meta m;
		char addr[32];
		snprintf(addr, sizeof(addr), "user%d@c.test", i);
		assert_int_equal(sg_pgp_meta_generate(addr, "ed25519", &m, NULL), 1);
		sec[i] = load(m.secret_data, m.secret_len);
		pub[i] = load(m.public_data, m.public_len);
		pub_bytes[i] = malloc(m.public_len);
		memcpy(pub_bytes[i], m.public_data, m.public_len);
		pub_len[i] = m.public_len;
		sg_pgp_meta_clear(&m);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < N_KEYS; i++) {
		sg_key_free(&sec[i]);
		sg_key_free(&pub[i]);
		free(pub_bytes[i]);
	}
	sg_pgp_cache_thread_free();
	return 0;
}

static int per_test(void **state)
{
	(void)state;
	sg_pgp_cache_thread_free();
	sg_pgp_cache_set_limit(SG_PGP_CACHE_DEFAULT);
	return 0;
}

/* Encrypt msg to recips (sg_key handles), signed by signer (may be NULL). */
static void encrypt_to(struct sg_key **recips, size_t n, const struct sg_key *signer, struct sg_buf *out)
{
	const struct sg_pgp_key *rk[N_KEYS + 1];
	struct sg_pgp_piece piece = { msg, sizeof(msg) - 1 };
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;

	for (size_t i = 0; i < n; i++)
		rk[i] = sg_key_pgp(recips[i]);
	sg_buf_init(out, 1 << 20);
	int r = sg_pgp_encrypt(&piece, 1, rk, n, signer != NULL ? sg_key_pgp(signer) : NULL, out, &st, &err);
	if (r != 1)
		fail_msg("encrypt: %s", sg_error_msg(&err));
}

/* Decrypt with keys; returns the status, plaintext checked when OK. */
static enum sg_crypto_status decrypt_with(const struct sg_buf *ct, struct sg_key **keys, size_t n,
					  struct sg_key **vkeys, size_t nv, enum sg_sig_status *sig_r)
{
	struct sg_buf plain;
	struct sg_pgp_info info;
	enum sg_crypto_status st = SG_CRYPTO_INTERNAL;
	struct sg_error err = SG_ERROR_INIT;

	sg_buf_init(&plain, 1 << 20);
	int r = sg_pgp_decrypt(ct->data, ct->len, keys, n, vkeys, nv, time(NULL), &plain, &info, &st, &err);
	if (r == 1) {
		assert_int_equal(plain.len, sizeof(msg) - 1);
		assert_memory_equal(plain.data, msg, plain.len);
		if (sig_r != NULL)
			*sig_r = info.sig;
		sg_pgp_info_clear(&info);
		st = SG_CRYPTO_OK;
	} else {
		assert_int_equal(plain.len, 0);
	}
	sg_error_clear(&err);
	sg_buf_free(&plain);
	return st;
}

static void test_second_op_hits(void **state)
{
	struct sg_pgp_cache_stats s1, s2;
	struct sg_buf a, b;

	(void)state;
	encrypt_to(&pub[0], 1, NULL, &a);
	sg_pgp_cache_stats(&s1);
	assert_int_equal(s1.misses, 1);
	assert_int_equal(s1.keys, 1);
	encrypt_to(&pub[0], 1, NULL, &b);
	sg_pgp_cache_stats(&s2);
	assert_int_equal(s2.misses, 1);
	assert_int_equal(s2.hits, s1.hits + 1);
	assert_int_equal(decrypt_with(&b, &sec[0], 1, NULL, 0, NULL), SG_CRYPTO_OK);
	sg_buf_free(&a);
	sg_buf_free(&b);
}

/* A key loaded again from the same bytes (as the key store does per
 * message) is found in the cache, at load and at use. */
static void test_reloaded_key_hits(void **state)
{
	struct sg_pgp_cache_stats s1, s2;
	struct sg_buf a;

	(void)state;
	encrypt_to(&pub[1], 1, NULL, &a);
	sg_buf_free(&a);
	sg_pgp_cache_stats(&s1);
	struct sg_key *again = load(pub_bytes[1], pub_len[1]);
	assert_string_equal(sg_key_fingerprint(again), sg_key_fingerprint(pub[1]));
	assert_int_equal(sg_key_matches_addr(again, "user1@c.test"), 1);
	assert_int_equal(sg_key_usable_for_encrypt(again, time(NULL), NULL, NULL), 1);
	encrypt_to(&again, 1, NULL, &a);
	sg_pgp_cache_stats(&s2);
	assert_int_equal(s2.misses, s1.misses);
	assert_int_equal(s2.hits, s1.hits + 2);
	assert_int_equal(decrypt_with(&a, &sec[1], 1, NULL, 0, NULL), SG_CRYPTO_OK);
	sg_key_free(&again);
	sg_buf_free(&a);
}

/* Other bytes under the same fingerprint (public, then secret) replace
 * the import instead of merging into it. */
static void test_changed_bytes_replace(void **state)
{
	struct sg_pgp_cache_stats s;
	struct sg_buf a;

	(void)state;
	encrypt_to(&pub[2], 1, NULL, &a);
	/* the secret bytes replace the public import ... */
	assert_int_equal(decrypt_with(&a, &sec[2], 1, NULL, 0, NULL), SG_CRYPTO_OK);
	sg_buf_free(&a);
	/* ... and the public ones the secret import */
	encrypt_to(&pub[2], 1, NULL, &a);
	assert_int_equal(decrypt_with(&a, &sec[2], 1, NULL, 0, NULL), SG_CRYPTO_OK);
	sg_pgp_cache_stats(&s);
	assert_int_equal(s.keys, 1);
	assert_int_equal(s.evictions, 3);
	assert_int_equal(s.misses, 4);
	sg_buf_free(&a);
}

/* The limit evicts the least recently used keys; one op needing more keys
 * than the limit still gets them all. */
static void test_limit_lru(void **state)
{
	struct sg_pgp_cache_stats s;
	struct sg_buf a;

	(void)state;
	sg_pgp_cache_set_limit(2);
	for (int i = 0; i < N_KEYS; i++) {
		encrypt_to(&pub[i], 1, NULL, &a);
		sg_buf_free(&a);
		sg_pgp_cache_stats(&s);
		assert_true(s.keys <= 2);
	}
	assert_int_equal(s.evictions, N_KEYS - 2);
	/* pub[3] is most recent: still cached */
	unsigned long misses = s.misses;
	encrypt_to(&pub[3], 1, NULL, &a);
	sg_buf_free(&a);
	sg_pgp_cache_stats(&s);
	assert_int_equal(s.misses, misses);
	/* four recipients in one op over a limit of two */
	encrypt_to(pub, N_KEYS, NULL, &a);
	for (int i = 0; i < N_KEYS; i++)
		assert_int_equal(decrypt_with(&a, &sec[i], 1, NULL, 0, NULL), SG_CRYPTO_OK);
	sg_pgp_cache_stats(&s);
	assert_true(s.keys <= N_KEYS);
	sg_buf_free(&a);
}

/* A secret key cached by one op is not used by another op that was not
 * given it: decryption is WRONG_KEY, a signature by it UNKNOWN_SIGNER. */
static void test_secret_isolation(void **state)
{
	struct sg_buf a;
	enum sg_sig_status sig = SG_SIG_NONE;

	(void)state;
	encrypt_to(&pub[0], 1, sec[1], &a);
	/* sec[0] and sec[1] now cached on this thread */
	assert_int_equal(decrypt_with(&a, &sec[0], 1, &pub[1], 1, &sig), SG_CRYPTO_OK);
	assert_int_equal(sig, SG_SIG_VALID);
	/* only sec[2] given: sec[0], though cached, must not decrypt */
	assert_int_equal(decrypt_with(&a, &sec[2], 1, NULL, 0, NULL), SG_CRYPTO_WRONG_KEY);
	/* signer pub[1] not given: unknown, though cached */
	assert_int_equal(decrypt_with(&a, &sec[0], 1, NULL, 0, &sig), SG_CRYPTO_OK);
	assert_int_equal(sig, SG_SIG_UNKNOWN_SIGNER);
	sg_buf_free(&a);
}

struct thread_arg {
	int idx;
	int ok;
	unsigned long misses;
};

static void *worker(void *p)
{
	struct thread_arg *t = p;
	struct sg_pgp_cache_stats s;
	int ok = 0;

	for (int round = 0; round < 5; round++) {
		/* A secret key serves as recipient and signer too: the same
		 * bytes each time, so nothing is imported twice. */
		struct sg_key *recips[2] = { sec[(t->idx + 1) % N_KEYS], pub[(t->idx + 2) % N_KEYS] };
		struct sg_buf a;
		encrypt_to(recips, 2, sec[t->idx % N_KEYS], &a);
		enum sg_sig_status sig = SG_SIG_NONE;
		if (decrypt_with(&a, &sec[(t->idx + 1) % N_KEYS], 1, &sec[t->idx % N_KEYS], 1, &sig) ==
			    SG_CRYPTO_OK &&
		    sig == SG_SIG_VALID)
			ok++;
		sg_buf_free(&a);
	}
	sg_pgp_cache_stats(&s);
	t->ok = ok;
	t->misses = s.misses;
	return NULL;
}

/* Threads share the key objects but not librnp contexts. */
static void test_threads(void **state)
{
	enum { N = 4 };
	pthread_t th[N];
	struct thread_arg args[N];

	(void)state;
	for (int i = 0; i < N; i++) {
		args[i] = (struct thread_arg){ .idx = i };
		assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].ok, 5);
		/* each thread imported its three keys once */
		assert_int_equal(args[i].misses, 3);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_second_op_hits, per_test),
		cmocka_unit_test_setup(test_reloaded_key_hits, per_test),
		cmocka_unit_test_setup(test_changed_bytes_replace, per_test),
		cmocka_unit_test_setup(test_limit_lru, per_test),
		cmocka_unit_test_setup(test_secret_isolation, per_test),
		cmocka_unit_test_setup(test_threads, per_test),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
