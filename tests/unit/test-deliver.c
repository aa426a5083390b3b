/* deliver/: the Maildir writer (paths, names, atomic writes, failures that
 * leave nothing behind) and the deliver transform over a real key store. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "deliver/deliver.h"
#include "deliver/maildir.h"
#include "gateway/transform.h"
#include "keys/keystore.h"
#include "keys/lookup.h"
#include "keys/pgp-meta.h"
#include "mime/seal.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/mem.h"
#include "util/spool.h"

static const char MSG[] = "From: bob@b.test\r\nTo: alice@a.test\r\nSubject: the secret plan\r\n"
			  "Message-ID: <1@b.test>\r\n\r\nmeet at noon\r\n";

static char *mktmp(void)
{
	char *t = sg_strdup("/tmp/test-deliver.XXXXXX");
	assert_non_null(mkdtemp(t));
	return t;
}

static void rm_rf(const char *path)
{
	char *cmd = sg_asprintf("rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* Names of the files in dir (sorted is not needed: tests count or take one). */
static size_t count_files(const char *dir, char **first_r)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	if (first_r != NULL)
		*first_r = NULL;
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n++ == 0 && first_r != NULL)
			*first_r = sg_asprintf("%s/%s", dir, e->d_name);
	}
	closedir(d);
	return n;
}

static unsigned char *slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	struct sg_buf b;
	sg_buf_init(&b, 64 * 1024 * 1024);
	unsigned char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_true(sg_buf_append(&b, chunk, n));
	fclose(f);
	return sg_buf_steal(&b, len_r);
}

static void test_expand(void **state)
{
	static const struct {
		const char *tmpl, *addr, *want; /* want NULL: refused */
	} cases[] = {
		{ "/v/%d/%n/Maildir", "alice@Example.TEST", "/v/example.test/alice/Maildir" },
		{ "/v/%u", "bob@b.test", "/v/bob@b.test" },
		{ "/v/%d/%n", "Bob.Smith@B.test", "/v/b.test/bob.smith" },
		{ "/v/100%%/%n", "c@c.test", "/v/100%/c" },
		{ "/v/%n", "../etc@x.test", NULL },
		{ "/v/%n", "a/b@x.test", NULL },
		{ "/v/%d", "a@x/../y", NULL },
		{ "/v/%d", "a@.x", NULL },
		{ "/v/%q", "a@x.test", NULL },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = NULL;
		struct sg_error err = SG_ERROR_INIT;
		int r = sg_maildir_expand(cases[i].tmpl, cases[i].addr, &path, &err);
		if (cases[i].want == NULL) {
			if (r != -1)
				fail_msg("case %zu (%s): not refused", i, cases[i].addr);
			assert_null(path);
		} else {
			if (r != 1 || strcmp(path, cases[i].want) != 0)
				fail_msg("case %zu: got %s (%s)", i, path ? path : "NULL",
					 sg_error_msg(&err));
		}
		free(path);
		sg_error_clear(&err);
	}
}

static void test_unique(void **state)
{
	(void)state;
	char *a = sg_maildir_unique(), *b = sg_maildir_unique();
	assert_string_not_equal(a, b);
	assert_null(strchr(a, '/'));
	assert_null(strchr(a, ':'));
	assert_non_null(strstr(a, ".M"));
	assert_non_null(strstr(a, "P"));
	free(a);
	free(b);
}

/* Size fields rewritten in place, other fields and flags kept; missing
 * ones appended only when asked (seal-mailbox), never for rekey. */
static void test_sized_name(void **state)
{
	static const struct {
		const char *in;
		bool add;
		const char *want;
	} cases[] = {
		{ "B,S=1,W=2,X=y:2,FS", false, "B,S=10,W=12,X=y:2,FS" },
		{ "B,X=y,W=2,S=1:2,", true, "B,X=y,W=12,S=10:2," },
		{ "B:2,S", false, "B:2,S" },
		{ "B:2,S", true, "B,S=10,W=12:2,S" },
		{ "B", true, "B,S=10,W=12" },
		{ "B,S=1", true, "B,S=10,W=12" },
		{ "B,SIZE=7:2,S", false, "B,SIZE=7:2,S" }, /* not a size field */
		{ "B:2,S=1", false, "B:2,S=1" },          /* flags, not fields */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = sg_maildir_sized_name(cases[i].in, 10, 12, cases[i].add);
		assert_string_equal(got, cases[i].want);
		free(got);
	}
}

static void test_deliver_ok(void **state)
{
	(void)state;
	char *t = mktmp(), *dir = sg_asprintf("%s/x/Maildir", t), *path = NULL, *nd = NULL, *td = NULL;
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_maildir_ensure(dir, &err), 1);
	assert_int_equal(sg_maildir_deliver(dir, (const unsigned char *)MSG, strlen(MSG), &path, &err), 1);
	nd = sg_asprintf("%s/new", dir);
	td = sg_asprintf("%s/tmp", dir);
	assert_int_equal(count_files(nd, NULL), 1);
	assert_int_equal(count_files(td, NULL), 0);
	size_t len;
	unsigned char *got = slurp(path, &len);
	/* Stored with LF line ends; S= is the file's size, W= the CRLF size. */
	assert_int_equal(len, strlen(MSG) - 6);
	assert_null(memchr(got, '\r', len));
	char *want = sg_asprintf(",S=%zu,W=%zu", len, strlen(MSG));
	assert_non_null(strstr(path, want));
	free(want);
	free(got);
	free(path);
	free(nd);
	free(td);
	rm_rf(t);
	free(dir);
	free(t);
}

/* Concurrent deliveries into one Maildir (and a second one): every one
 * succeeds with a unique name, each message is there once, tmp/ is empty. */
#define PAR_THREADS 6
#define PAR_EACH 40

static void *deliver_many(void *arg)
{
	const char *dir = arg;
	struct sg_error err = SG_ERROR_INIT;
	intptr_t fails = 0;
	for (int i = 0; i < PAR_EACH; i++)
		if (sg_maildir_deliver(dir, (const unsigned char *)MSG, strlen(MSG), NULL, &err) != 1)
			fails++;
	sg_error_clear(&err);
	return (void *)fails;
}

static void test_deliver_concurrent(void **state)
{
	(void)state;
	char *t = mktmp(), *dirs[2];
	struct sg_error err = SG_ERROR_INIT;
	pthread_t th[PAR_THREADS];
	for (int i = 0; i < 2; i++) {
		dirs[i] = sg_asprintf("%s/u%d/Maildir", t, i);
		assert_int_equal(sg_maildir_ensure(dirs[i], &err), 1);
	}
	for (int i = 0; i < PAR_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, deliver_many, dirs[i % 2]), 0);
	for (int i = 0; i < PAR_THREADS; i++) {
		void *fails = NULL;
		assert_int_equal(pthread_join(th[i], &fails), 0);
		assert_null(fails);
	}
	for (int i = 0; i < 2; i++) {
		char *nd = sg_asprintf("%s/new", dirs[i]), *td = sg_asprintf("%s/tmp", dirs[i]);
		assert_int_equal(count_files(nd, NULL), PAR_THREADS / 2 * PAR_EACH);
		assert_int_equal(count_files(td, NULL), 0);
		free(nd);
		free(td);
		free(dirs[i]);
	}
	rm_rf(t);
	free(t);
}

/* new/ is not a directory: the rename fails after the write; nothing may
 * stay in tmp/. tmp/ not a directory: ensure refuses. */
static void test_deliver_fail_leaves_nothing(void **state)
{
	(void)state;
	char *t = mktmp(), *dir = sg_asprintf("%s/Maildir", t), *path = NULL;
	char *nd = sg_asprintf("%s/new", dir), *td = sg_asprintf("%s/tmp", dir);
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_maildir_ensure(dir, &err), 1);
	assert_int_equal(rmdir(nd), 0);
	FILE *f = fopen(nd, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(sg_maildir_deliver(dir, (const unsigned char *)MSG, strlen(MSG), &path, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "rename"));
	assert_null(path);
	assert_int_equal(count_files(td, NULL), 0);
	sg_error_clear(&err);
	assert_int_equal(sg_maildir_ensure(dir, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "not a directory"));
	sg_error_clear(&err);
	rm_rf(t);
	free(nd);
	free(td);
	free(dir);
	free(t);
}

/* The folders are made on first use: a Maildir that does not exist yet,
 * and one whose new/ was removed, each get the message (no per-message
 * mkdir any more, so this is the path that must keep working). */
static void test_deliver_makes_folders(void **state)
{
	(void)state;
	char *t = mktmp(), *dir = sg_asprintf("%s/fresh/Maildir", t);
	char *nd = sg_asprintf("%s/new", dir), *td = sg_asprintf("%s/tmp", dir);
	struct sg_error err = SG_ERROR_INIT;
	struct stat st;
	assert_int_equal(sg_maildir_deliver(dir, (const unsigned char *)MSG, strlen(MSG), NULL, &err), 1);
	assert_int_equal(count_files(nd, NULL), 1);
	assert_int_equal(stat(td, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	char *cur = sg_asprintf("%s/cur", dir);
	assert_int_equal(stat(cur, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(cur);
	rm_rf(nd);
	assert_int_equal(sg_maildir_deliver(dir, (const unsigned char *)MSG, strlen(MSG), NULL, &err), 1);
	assert_int_equal(count_files(nd, NULL), 1);
	assert_int_equal(count_files(td, NULL), 0);
	sg_error_clear(&err);
	rm_rf(t);
	free(nd);
	free(td);
	free(dir);
	free(t);
}

/* CRLF -> LF against a byte-at-a-time reference: CRLF pairs across the
 * 64 KiB write chunks, bare CRs (kept), a CR at the very end (kept). */
static void test_write_fd_crlf(void **state)
{
	(void)state;
	size_t len = 200000;
	unsigned char *msg = sg_malloc(len), *want = sg_malloc(len);
	size_t wlen = 0;
	unsigned seed = 7;
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		unsigned r = (seed >> 16) % 64;
		msg[i] = r == 0 ? '\r' : r == 1 ? '\n' : (unsigned char)('a' + r % 26);
	}
	/* CRLF pairs straddling the chunk boundaries and at the start */
	for (size_t b = 65535; b + 1 < len; b += 65536) {
		msg[b] = '\r';
		msg[b + 1] = '\n';
	}
	msg[0] = '\r';
	msg[1] = '\n';
	msg[len - 1] = '\r';
	for (size_t i = 0; i < len; i++)
		if (!(msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n'))
			want[wlen++] = msg[i];
	assert_int_equal(wlen, sg_maildir_lf_size(msg, len));
	char *t = mktmp(), *path = sg_asprintf("%s/out", t);
	FILE *f = fopen(path, "w+");
	assert_non_null(f);
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_maildir_write_fd(fileno(f), msg, len, &err), 1);
	fclose(f);
	size_t got_len;
	unsigned char *got = slurp(path, &got_len);
	assert_int_equal(got_len, wlen);
	assert_memory_equal(got, want, wlen);
	free(got);
	free(path);
	rm_rf(t);
	free(t);
	free(msg);
	free(want);
}

/* ---- the transform over an SQLite store with one generated key ---- */

struct fx {
	char *tmp;
	struct sg_store *store;
	struct sg_keys_lookup *lk;
	struct sg_pgp_meta alice;
	struct sg_config cfg;
};

static int fx_setup(void **state)
{
	struct fx *f = sg_calloc(1, sizeof(*f));
	struct sg_error err = SG_ERROR_INIT;
	f->tmp = mktmp();
	char *spec = sg_asprintf("sqlite:%s/keys.db", f->tmp);
	assert_int_equal(sg_store_open(spec, &f->store, &err), 1);
	free(spec);
	assert_int_equal(sg_pgp_meta_generate("alice@a.test", "ed25519", &f->alice, &err), 1);
	assert_int_equal(sg_keys_put_public(f->store, "alice@a.test", f->alice.fingerprint, "pgp", 0,
					    "test", "local", f->alice.public_data,
					    f->alice.public_len, &err), 1);
	f->lk = sg_keys_lookup_new(f->store, NULL, NULL, SG_LOOKUP_LOCAL);
	sg_config_defaults(&f->cfg);
	char *tmpl = sg_asprintf("%s/%%d/%%n/Maildir", f->tmp);
	assert_int_equal(sg_config_set(&f->cfg, "deliver_maildir", tmpl, &err), 1);
	free(tmpl);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	sg_keys_lookup_free(&f->lk);
	sg_store_close(&f->store);
	sg_pgp_meta_clear(&f->alice);
	sg_config_clear(&f->cfg);
	rm_rf(f->tmp);
	free(f->tmp);
	free(f);
	return 0;
}

static void run_transform(struct fx *f, struct sg_envelope *env, const char *msg,
			  struct sg_transform_out *out)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_deliver *d = sg_deliver_new(&f->cfg, f->lk, &err);
	assert_non_null(d);
	const struct sg_transform *tr = sg_deliver_transform(d);
	struct sg_spool *sp = sg_spool_from_mem(msg, strlen(msg));
	env->queue_id = sg_strdup("TESTQ");
	memset(out, 0, sizeof(*out));
	assert_int_equal(tr->run(tr->ctx, env, sp, out, &err), 1);
	sg_spool_free(&sp);
	sg_deliver_free(&d);
}

/* Decrypt a sealed copy with alice's secret key; return the plaintext. */
static char *unseal_alice(struct fx *f, const unsigned char *data, size_t len)
{
	struct sg_key *k = NULL;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_key_load_mem(f->alice.secret_data, f->alice.secret_len, NULL, &k, &st,
					 &err), 1);
	struct sg_key *keys[1] = { k };
	struct sg_unseal_req req = { .keys = keys, .n_keys = 1 };
	struct sg_unseal_result res;
	memset(&res, 0, sizeof(res));
	struct sg_buf out;
	sg_buf_init(&out, 1024 * 1024);
	if (sg_unseal(data, len, &req, &out, &res, &st, &err) != 1)
		fail_msg("unseal: %s", sg_error_msg(&err));
	assert_true(res.was_encrypted);
	assert_string_equal(res.decrypted_with, f->alice.fingerprint);
	sg_unseal_result_clear(&res);
	sg_key_free(&k);
	return (char *)sg_buf_steal(&out, NULL);
}

/* The stored file back with CRLF line ends (Maildir keeps LF). */
static unsigned char *slurp_crlf(const char *path, size_t *len_r)
{
	size_t n;
	unsigned char *lf = slurp(path, &n);
	struct sg_buf b;
	sg_buf_init(&b, 2 * n + 16);
	for (size_t i = 0; i < n; i++) {
		if (lf[i] == '\n')
			assert_true(sg_buf_append(&b, "\r", 1));
		assert_true(sg_buf_append(&b, &lf[i], 1));
	}
	free(lf);
	return sg_buf_steal(&b, len_r);
}

static void test_transform_maildir(void **state)
{
	struct fx *f = *state;
	struct sg_envelope env;
	struct sg_transform_out out;
	struct sg_error err = SG_ERROR_INIT;
	memset(&env, 0, sizeof(env));
	sg_envelope_add_rcpt(&env, "alice@a.test", NULL);
	sg_envelope_add_rcpt(&env, "nokey@a.test", NULL);
	run_transform(f, &env, MSG, &out);
	assert_int_equal(out.n_groups, 0);
	assert_non_null(out.answered);
	assert_int_equal(out.answered[0].code, 250);
	assert_int_equal(out.answered[1].code, 250); /* deliver_no_key = plain (default) */

	char *nd = sg_asprintf("%s/a.test/alice/Maildir/new", f->tmp), *file = NULL;
	assert_int_equal(count_files(nd, &file), 1);
	size_t len;
	unsigned char *sealed = slurp_crlf(file, &len);
	assert_null(strstr((char *)sealed, "the secret plan"));
	assert_null(strstr((char *)sealed, "meet at noon"));
	assert_non_null(strstr((char *)sealed, "Subject: ...\r\n"));
	assert_non_null(strstr((char *)sealed, "multipart/encrypted"));
	char *plain = unseal_alice(f, sealed, len);
	assert_non_null(strstr(plain, "Subject: the secret plan"));
	assert_non_null(strstr(plain, "meet at noon"));
	free(plain);
	free(sealed);
	free(file);
	free(nd);

	nd = sg_asprintf("%s/a.test/nokey/Maildir/new", f->tmp);
	assert_int_equal(count_files(nd, &file), 1);
	unsigned char *clear = slurp_crlf(file, &len);
	assert_int_equal(len, strlen(MSG));
	assert_memory_equal(clear, MSG, len);
	free(clear);
	free(file);
	free(nd);

	/* Already encrypted: stored as it is (the sealed copy, re-delivered). */
	sealed = NULL;
	nd = sg_asprintf("%s/a.test/alice/Maildir/new", f->tmp);
	assert_int_equal(count_files(nd, &file), 1);
	sealed = slurp_crlf(file, &len);
	free(file);
	sg_transform_out_clear(&out, env.n_rcpts);
	sg_envelope_clear(&env);
	memset(&env, 0, sizeof(env));
	sg_envelope_add_rcpt(&env, "alice@a.test", NULL);
	run_transform(f, &env, (const char *)sealed, &out);
	assert_int_equal(out.answered[0].code, 250);
	assert_non_null(strstr(out.answered[0].text, "encrypted"));
	assert_int_equal(count_files(nd, NULL), 2);
	free(nd);
	free(sealed);
	sg_transform_out_clear(&out, env.n_rcpts);
	sg_envelope_clear(&env);
	sg_error_clear(&err);
}

static void test_transform_no_key_policy(void **state)
{
	static const struct {
		const char *policy;
		int code;
		const char *enh;
	} cases[] = { { "refuse", 550, "5.7.1" }, { "defer", 450, "4.7.1" }, { "plain", 250, "2.0.0" } };
	struct fx *f = *state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_envelope env;
		struct sg_transform_out out;
		struct sg_error err = SG_ERROR_INIT;
		memset(&env, 0, sizeof(env));
		assert_int_equal(sg_config_set(&f->cfg, "deliver_no_key", cases[i].policy, &err), 1);
		sg_envelope_add_rcpt(&env, "carol@a.test", NULL);
		sg_envelope_add_rcpt(&env, "alice@a.test", NULL);
		run_transform(f, &env, MSG, &out);
		if (out.answered[0].code != cases[i].code ||
		    strncmp(out.answered[0].text, cases[i].enh, 5) != 0)
			fail_msg("policy %s: got %d %s", cases[i].policy, out.answered[0].code,
				 out.answered[0].text);
		if (cases[i].code != 250)
			assert_non_null(strstr(out.answered[0].text, "no key"));
		assert_int_equal(out.answered[1].code, 250);
		sg_transform_out_clear(&out, env.n_rcpts);
		sg_envelope_clear(&env);
	}
}

static void test_transform_lmtp_groups(void **state)
{
	struct fx *f = *state;
	struct sg_envelope env;
	struct sg_transform_out out;
	struct sg_error err = SG_ERROR_INIT;
	memset(&env, 0, sizeof(env));
	assert_int_equal(sg_config_set(&f->cfg, "deliver_maildir", "", &err), 1);
	assert_int_equal(sg_config_set(&f->cfg, "deliver_lmtp", "127.0.0.1:24", &err), 1);
	sg_envelope_add_rcpt(&env, "alice@a.test", NULL);
	sg_envelope_add_rcpt(&env, "dave@a.test", NULL);
	run_transform(f, &env, MSG, &out);
	assert_null(out.answered);
	assert_int_equal(out.n_groups, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(out.groups[i].route, SG_ROUTE_DELIVER);
		assert_int_equal(out.groups[i].n_rcpts, 1);
		assert_int_equal(out.groups[i].rcpts[0], i);
	}
	assert_string_equal(out.groups[0].treatment, "sealed-pgp");
	assert_non_null(out.groups[0].msg);
	char *plain = unseal_alice(f, sg_spool_data(out.groups[0].msg),
				   sg_spool_size(out.groups[0].msg));
	assert_non_null(strstr(plain, "meet at noon"));
	free(plain);
	assert_string_equal(out.groups[1].treatment, "plain");
	assert_null(out.groups[1].msg); /* the original bytes */
	sg_transform_out_clear(&out, env.n_rcpts);
	sg_envelope_clear(&env);
}

/* One recipient through a given deliver object (LMTP mode): the group's treatment. */
static char *treatment_of(struct sg_deliver *d, const char *rcpt)
{
	struct sg_envelope env;
	struct sg_transform_out out;
	struct sg_error err = SG_ERROR_INIT;
	const struct sg_transform *tr = sg_deliver_transform(d);
	struct sg_spool *sp = sg_spool_from_mem(MSG, strlen(MSG));
	memset(&env, 0, sizeof(env));
	memset(&out, 0, sizeof(out));
	sg_envelope_add_rcpt(&env, rcpt, NULL);
	env.queue_id = sg_strdup("TESTQ");
	assert_int_equal(tr->run(tr->ctx, &env, sp, &out, &err), 1);
	assert_int_equal(out.n_groups, 1);
	char *t = sg_strdup(out.groups[0].treatment);
	sg_transform_out_clear(&out, env.n_rcpts);
	sg_envelope_clear(&env);
	sg_spool_free(&sp);
	return t;
}

/* A found key is reused for deliver_key_cache_ttl (the store is not asked
 * again); with 0 every message looks it up, so a deleted key is gone at once. */
static void test_key_cache(void **state)
{
	struct fx *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_config_set(&f->cfg, "deliver_maildir", "", &err), 1);
	assert_int_equal(sg_config_set(&f->cfg, "deliver_lmtp", "127.0.0.1:24", &err), 1);
	struct sg_deliver *cached = sg_deliver_new(&f->cfg, f->lk, &err);
	assert_int_equal(sg_config_set(&f->cfg, "deliver_key_cache_ttl", "0", &err), 1);
	struct sg_deliver *uncached = sg_deliver_new(&f->cfg, f->lk, &err);
	assert_non_null(cached);
	assert_non_null(uncached);
	char *t;
	t = treatment_of(cached, "Alice@A.test");
	assert_string_equal(t, "sealed-pgp");
	free(t);
	t = treatment_of(uncached, "alice@a.test");
	assert_string_equal(t, "sealed-pgp");
	free(t);
	assert_int_equal(sg_store_key_delete(f->store, "alice@a.test", f->alice.fingerprint, &err), 1);
	t = treatment_of(cached, "alice@a.test");
	assert_string_equal(t, "sealed-pgp");
	free(t);
	t = treatment_of(uncached, "alice@a.test");
	assert_string_equal(t, "plain");
	free(t);
	sg_deliver_free(&cached);
	sg_deliver_free(&uncached);
}

static void test_new_checks(void **state)
{
	struct fx *f = *state;
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_config_set(&f->cfg, "deliver_maildir", "", &err), 1);
	assert_int_equal(sg_config_set(&f->cfg, "deliver_lmtp", "", &err), 1);
	assert_null(sg_deliver_new(&f->cfg, f->lk, &err));
	assert_non_null(strstr(sg_error_msg(&err), "deliver_lmtp"));
	sg_error_clear(&err);
	assert_int_equal(sg_config_set(&f->cfg, "deliver_maildir", "/v/%x", &err), 1);
	assert_null(sg_deliver_new(&f->cfg, f->lk, &err));
	sg_error_clear(&err);
	assert_int_equal(sg_config_set(&f->cfg, "deliver_maildir", "/v/%n", &err), 1);
	assert_int_equal(sg_config_set(&f->cfg, "deliver_user_formats", "a@a.test=smime b@b", &err), 1);
	assert_null(sg_deliver_new(&f->cfg, f->lk, &err));
	assert_non_null(strstr(sg_error_msg(&err), "b@b"));
	sg_error_clear(&err);
	assert_int_equal(sg_config_set(&f->cfg, "deliver_user_formats", "A@a.test=smime", &err), 1);
	struct sg_deliver *d = sg_deliver_new(&f->cfg, f->lk, &err);
	assert_non_null(d);
	assert_int_equal(sg_deliver_pref(d, "a@a.test"), SG_KEY_X509);
	assert_int_equal(sg_deliver_pref(d, "z@a.test"), 0);
	sg_deliver_free(&d);
	assert_null(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_unique),
		cmocka_unit_test(test_sized_name),
		cmocka_unit_test(test_deliver_ok),
		cmocka_unit_test(test_deliver_concurrent),
		cmocka_unit_test(test_deliver_fail_leaves_nothing),
		cmocka_unit_test(test_deliver_makes_folders),
		cmocka_unit_test(test_write_fd_crlf),
		cmocka_unit_test_setup_teardown(test_transform_maildir, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_transform_no_key_policy, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_transform_lmtp_groups, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_new_checks, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_key_cache, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
