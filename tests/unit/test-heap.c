/* Unit tests for util/heap.c: after sg_heap_tune_server(), memory freed in
 * a worker thread's arena and in the main arena stays in the heap for the
 * next message instead of being trimmed (madvise) or unmapped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "util/heap.h"

#define PIECE ((size_t)96 << 10) /* below glibc's default mmap threshold */
#define PIECES 8

/* Called through volatile pointers: the compiler may drop a malloc/free
 * pair whose memory is never read. */
static void *(*volatile alloc)(size_t) = malloc;
static void (*volatile release)(void *) = free;

/* A message's worth of buffers, written (so the pages are real) and freed
 * in reverse: the arena's top grows by PIECES * PIECE and is then free. */
static void churn(void)
{
	void *p[PIECES];
	for (size_t i = 0; i < PIECES; i++) {
		p[i] = alloc(PIECE);
		assert_non_null(p[i]);
		memset(p[i], 0x5a, PIECE);
	}
	for (size_t i = PIECES; i-- > 0;)
		release(p[i]);
}

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
/* Free bytes over all arenas (glibc sums them). */
static size_t free_bytes(void)
{
	return mallinfo2().fordblks;
}

static void *thread_churn(void *arg)
{
	size_t *kept = arg;
	size_t before = free_bytes();
	churn();
	size_t after = free_bytes();
	*kept = after > before ? after - before : 0;
	return NULL;
}

/* Worker threads get arenas of their own (heap_trim: madvise). */
static void test_thread_arena_keeps(void **state)
{
	pthread_t t;
	size_t kept = 0;
	(void)state;
	sg_heap_tune_server();
	assert_int_equal(pthread_create(&t, NULL, thread_churn, &kept), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	/* Untuned, all but glibc's 128 KiB top pad goes back to the kernel. */
	assert_true(kept >= PIECES * PIECE - PIECE);
}

/* The main arena (the event loop): systrim, and one big buffer that the
 * default threshold would have mapped and unmapped. */
static void test_main_arena_keeps(void **state)
{
	(void)state;
	sg_heap_tune_server();
	churn();
	void *big = alloc(SG_HEAP_MMAP_THRESHOLD / 2);
	assert_non_null(big);
	memset(big, 0x5a, SG_HEAP_MMAP_THRESHOLD / 2);
	release(big);
	/* keepcost: the main arena's free top, releasable by malloc_trim. */
	assert_true(mallinfo2().keepcost >= SG_HEAP_MMAP_THRESHOLD / 2);
}
#else
static void test_thread_arena_keeps(void **state)
{
	(void)state;
	sg_heap_tune_server();
	churn();
	skip(); /* the sanitizer's allocator ignores mallopt */
}

static void test_main_arena_keeps(void **state)
{
	(void)state;
	skip();
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thread_arena_keeps),
		cmocka_unit_test(test_main_arena_keeps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
