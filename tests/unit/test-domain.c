/* Domain keys ([domain]): bundle parsing and its refusals, the choice of
 * window, rotation and destruction under an injected clock, the grace
 * refusal, and an in-process seal/open round trip with its verdicts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/smime.h"
#include "domain/domain.h"
#include "keys/master.h"
#include "store/store.h"
#include "util/mem.h"
#include "util/secret.h"

#include <glib.h>

#define DAY 86400
#define T0 ((time_t)1900000000 / DAY * DAY + 3600)

static char dir[] = "/tmp/sg-domain-test.XXXXXX";

struct inst {
	struct sg_config cfg;
	struct sg_master_key *mk;
	struct sg_domain *d;
	char *state;
};

static void inst_open(struct inst *in, const char *name, const char *domains)
{
	struct sg_error err = SG_ERROR_INIT;
	char *mk = sg_asprintf("%s/%s.mk", dir, name);

	memset(in, 0, sizeof(*in));
	in->state = sg_asprintf("%s/%s", dir, name);
	sg_config_defaults(&in->cfg);
	assert_int_equal(sg_config_set(&in->cfg, "state_dir", in->state, &err), 1);
	assert_int_equal(sg_config_set(&in->cfg, "domain_names", domains, &err), 1);
	if (access(mk, F_OK) != 0)
		assert_int_equal(sg_master_key_create_file(mk, &err), 1);
	assert_int_equal(sg_master_key_load_file(mk, &in->mk, &err), 1);
	assert_int_equal(sg_domain_new(&in->cfg, in->mk, &in->d, &err), 1);
	free(mk);
}

static void inst_close(struct inst *in)
{
	sg_domain_free(&in->d);
	sg_master_key_free(&in->mk);
	sg_config_clear(&in->cfg);
	free(in->state);
}

static void init_rotate(struct inst *in, time_t now)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_domain_rotation r;
	int ir = sg_domain_init(in->d, now, &err);
	assert_true(ir >= 0);
	assert_int_equal(sg_domain_rotate(in->d, now, &r, &err), 1);
}

static void bundle_of(struct inst *in, time_t now, struct sg_buf *b)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store *st = NULL;
	sg_buf_init(b, 1024 * 1024);
	assert_int_equal(sg_store_open_config(&in->cfg, NULL, &st, &err), 1);
	assert_int_equal(sg_domain_bundle_build(st, now, b, &err), 1);
	sg_store_close(&st);
}

static void test_bundle_parse(void **state)
{
	struct inst a, x;
	struct sg_buf ba, bx, mixed;
	struct sg_domain_bundle b;
	struct sg_error err = SG_ERROR_INIT;
	(void)state;

	inst_open(&a, "bp-a", "a.test other.test");
	inst_open(&x, "bp-x", "a.test");
	init_rotate(&a, T0);
	init_rotate(&x, T0);
	bundle_of(&a, T0, &ba);
	bundle_of(&x, T0, &bx);

	assert_int_equal(sg_domain_bundle_parse(ba.data, ba.len, "a.test", &b, &err), 1);
	assert_int_equal(b.n_enc, 7);
	assert_true(b.signing.ca);
	sg_domain_bundle_clear(&b);
	assert_int_equal(sg_domain_bundle_parse(ba.data, ba.len, "other.test", &b, &err), 1);
	sg_domain_bundle_clear(&b);

	static const struct {
		const char *name, *domain, *expect;
		int which; /* 0 a's bundle, 1 garbage, 2 a's signing + x's keys, 3 only an encryption cert */
	} cases[] = {
		{ "wrong domain", "b.test", "does not name b.test", 0 },
		{ "not PEM", "a.test", "no certificate", 1 },
		{ "foreign encryption keys", "a.test", "not issued", 2 },
		{ "no signing certificate", "a.test", "not a domain signing certificate", 3 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sg_buf_init(&mixed, 2 * 1024 * 1024);
		const char *first_end = strstr((const char *)ba.data, "-----END CERTIFICATE-----\n") + 26;
		const char *x_first_end = strstr((const char *)bx.data, "-----END CERTIFICATE-----\n") + 26;
		switch (cases[i].which) {
		case 0: assert_true(sg_buf_append(&mixed, ba.data, ba.len)); break;
		case 1: assert_true(sg_buf_append_str(&mixed, "hello\n")); break;
		case 2:
			assert_true(sg_buf_append(&mixed, ba.data, (size_t)(first_end - (const char *)ba.data)));
			assert_true(sg_buf_append_str(&mixed, x_first_end));
			break;
		case 3: assert_true(sg_buf_append_str(&mixed, first_end)); break;
		}
		sg_error_clear(&err);
		int r = sg_domain_bundle_parse(mixed.data, mixed.len, cases[i].domain, &b, &err);
		if (r != -1 || strstr(sg_error_msg(&err), cases[i].expect) == NULL)
			fail_msg("case '%s': r=%d err=%s", cases[i].name, r, sg_error_msg(&err));
		sg_buf_free(&mixed);
	}
	sg_buf_free(&ba);
	sg_buf_free(&bx);
	sg_error_clear(&err);
	inst_close(&a);
	inst_close(&x);
}

static void test_window_choice(void **state)
{
	struct inst a;
	struct sg_buf ba;
	struct sg_domain_bundle b;
	struct sg_error err = SG_ERROR_INIT;
	const time_t day0 = T0 - T0 % DAY;
	(void)state;

	inst_open(&a, "wc-a", "a.test");
	init_rotate(&a, T0);
	bundle_of(&a, T0, &ba);
	assert_int_equal(sg_domain_bundle_parse(ba.data, ba.len, "a.test", &b, &err), 1);
	static const struct {
		time_t at;
		long window; /* expected not_before - day0 in days, -1: none */
	} cases[] = {
		{ T0, 0 }, { day0, 0 }, { day0 + DAY - 1, 0 }, { day0 + DAY, 1 },
		{ day0 + 6 * DAY + 5, 6 }, { day0 + 7 * DAY, -1 }, { day0 - 1, -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long k = sg_domain_bundle_pick(&b, cases[i].at);
		long got = k < 0 ? -1 : (long)((b.enc[k].not_before - day0) / DAY);
		if (got != cases[i].window)
			fail_msg("case %zu: picked window %ld, expected %ld", i, got, cases[i].window);
	}
	sg_domain_bundle_clear(&b);
	sg_buf_free(&ba);
	inst_close(&a);
}

static size_t count_private(struct inst *in)
{
	struct sg_buf out;
	struct sg_error err = SG_ERROR_INIT;
	size_t n = 0;
	sg_buf_init(&out, 1024 * 1024);
	assert_int_equal(sg_domain_status(in->d, T0, &out, &err), 1);
	for (const char *p = (const char *)out.data; (p = strstr(p, "encryption ")) != NULL; p++)
		n++;
	sg_buf_free(&out);
	return n;
}

static void test_rotation_clock(void **state)
{
	struct inst a;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_domain_rotation r;
	(void)state;

	inst_open(&a, "rot-a", "a.test");
	assert_int_equal(sg_domain_rotate(a.d, T0, &r, &err), -1); /* no signing key yet */
	assert_non_null(strstr(sg_error_msg(&err), "domain init"));
	assert_int_equal(sg_domain_init(a.d, T0, &err), 1);
	assert_int_equal(sg_domain_init(a.d, T0, &err), 0);
	static const struct {
		time_t at;
		unsigned generated, destroyed, left;
	} steps[] = {
		{ T0, 7, 0, 7 },
		{ T0 + 60, 0, 0, 7 },
		{ T0 + DAY, 1, 0, 8 },
		{ T0 + 5 * DAY, 4, 0, 12 },           /* window 0 ended 4 days ago: kept */
		{ T0 + 6 * DAY - 3601, 0, 0, 12 },    /* one second before its grace ends */
		{ T0 + 6 * DAY - 3600, 1, 1, 12 },    /* grace over: destroyed */
		{ T0 + 30 * DAY, 7, 12, 7 },          /* a month off: all old ones go */
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		assert_int_equal(sg_domain_rotate(a.d, steps[i].at, &r, &err), 1);
		if (r.generated != steps[i].generated || r.destroyed != steps[i].destroyed ||
		    count_private(&a) != steps[i].left)
			fail_msg("step %zu: generated %u destroyed %u left %zu", i, r.generated, r.destroyed,
				 count_private(&a));
	}
	sg_error_clear(&err);
	inst_close(&a);
}

static void test_grace_refused(void **state)
{
	struct sg_config cfg;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_domain *d = NULL;
	static const char text[] = "domain_names = a.test\ndomain_key_grace = 4d\n";
	(void)state;

	sg_config_defaults(&cfg);
	assert_int_equal(sg_config_parse(&cfg, "t.conf", text, sizeof(text) - 1, &err), 1);
	assert_int_equal(sg_config_check_domain(&cfg, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "domain_key_grace"));
	assert_non_null(strstr(sg_error_msg(&err), "maximal_queue_lifetime"));
	assert_int_equal(sg_domain_new(&cfg, NULL, &d, &err), -1);
	assert_null(d);
	sg_config_clear(&cfg);
	sg_error_clear(&err);
}

static void test_destruction(void **state)
{
	struct inst a;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_domain_rotation r;
	struct sg_buf pem, st;
	struct sg_domain_keyset *ks = NULL;
	struct sg_key *const *keys = NULL;
	(void)state;

	inst_open(&a, "des-a", "a.test");
	init_rotate(&a, T0);
	sg_buf_init(&st, 1024 * 1024);
	assert_int_equal(sg_domain_status(a.d, T0, &st, &err), 1);
	char *line = strstr((char *)st.data, "encryption ");
	assert_non_null(line);
	char *fpr = sg_strndup(line + 11, 64);
	sg_buf_init(&pem, 64 * 1024);
	assert_int_equal(sg_domain_key_pem(a.d, fpr, &pem, &err), 1);
	assert_non_null(strstr((char *)pem.data, "ENCRYPTED PRIVATE KEY"));
	assert_int_equal(sg_domain_keys_get(a.d, T0, false, &ks, &err), 1);
	assert_int_equal(sg_domain_keyset_keys(ks, &keys), 7);
	sg_domain_keyset_release(a.d, &ks);
	assert_int_equal(sg_domain_rotate(a.d, T0 + 6 * DAY, &r, &err), 1);
	assert_int_equal(r.destroyed, 1);
	sg_buf_reset(&pem);
	assert_int_equal(sg_domain_key_pem(a.d, fpr, &pem, &err), 0);
	assert_non_null(strstr(sg_error_msg(&err), "destroyed"));
	assert_int_equal(sg_domain_keys_get(a.d, T0 + 6 * DAY, false, &ks, &err), 1);
	assert_int_equal(sg_domain_keyset_keys(ks, &keys), 7 + 6 - 1);
	sg_domain_keyset_release(a.d, &ks);
	assert_null(ks);
	free(fpr);
	sg_buf_free(&pem);
	sg_buf_free(&st);
	sg_error_clear(&err);
	inst_close(&a);
}

struct rotation_thread {
	struct sg_domain *d;
	time_t now;
	struct sg_domain_rotation r;
	int ret;
	int done; /* atomic */
};

static void *rotate_thread(void *arg)
{
	struct rotation_thread *t = arg;
	struct sg_error err = SG_ERROR_INIT;
	t->ret = sg_domain_rotate(t->d, t->now, &t->r, &err);
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	sg_error_clear(&err);
	return NULL;
}

/* A key destroyed while a message is being opened: the opener holds a
 * snapshot with the key; the rotation deletes the rows (the store says
 * "destroyed" as soon as it waits), but it does not return until the
 * snapshot is given back, and the snapshot is then freed (wiped). */
static void test_destruction_waits_for_openers(void **state)
{
	struct inst a;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_domain_keyset *held = NULL, *after = NULL;
	struct sg_key *const *keys = NULL;
	struct sg_buf st, pem;
	struct rotation_thread t;
	pthread_t th;
	(void)state;

	inst_open(&a, "wait-a", "a.test");
	init_rotate(&a, T0);
	sg_buf_init(&st, 1024 * 1024);
	assert_int_equal(sg_domain_status(a.d, T0, &st, &err), 1);
	char *line = strstr((char *)st.data, "encryption ");
	assert_non_null(line);
	char *fpr = sg_strndup(line + 11, 64); /* the first window: destroyed at T0 + 6 days */
	assert_int_equal(sg_domain_keys_get(a.d, T0 + 5 * DAY, false, &held, &err), 1);
	size_t n = sg_domain_keyset_keys(held, &keys);
	bool has = false;
	for (size_t i = 0; i < n; i++)
		has = has || strcmp(sg_key_fingerprint(keys[i]), fpr) == 0;
	assert_true(has);

	memset(&t, 0, sizeof(t));
	t.d = a.d;
	t.now = T0 + 6 * DAY;
	assert_int_equal(pthread_create(&th, NULL, rotate_thread, &t), 0);
	/* key_pem takes the domain lock, which the rotation gives up only in
	 * its wait for holders: once it answers "destroyed", the rows are gone */
	sg_buf_init(&pem, 64 * 1024);
	int r;
	while ((r = sg_domain_key_pem(a.d, fpr, &pem, &err)) == 1) {
		sg_buf_reset(&pem);
		usleep(1000);
	}
	assert_int_equal(r, 0);
	usleep(100 * 1000); /* a rotation that did not wait would be done by now */
	assert_int_equal(__atomic_load_n(&t.done, __ATOMIC_SEQ_CST), 0);
	/* the opener is still using the key; then gives it back */
	assert_true(sg_key_has_secret(keys[0]));
	sg_domain_keyset_release(a.d, &held);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(t.ret, 1);
	assert_int_equal(t.r.destroyed, 1);
	/* a new snapshot no longer has it */
	assert_int_equal(sg_domain_keys_get(a.d, T0 + 6 * DAY, false, &after, &err), 1);
	n = sg_domain_keyset_keys(after, &keys);
	for (size_t i = 0; i < n; i++)
		assert_string_not_equal(sg_key_fingerprint(keys[i]), fpr);
	sg_domain_keyset_release(a.d, &after);
	free(fpr);
	sg_buf_free(&pem);
	sg_buf_free(&st);
	sg_error_clear(&err);
	inst_close(&a);
}

/* A message signed by another key that claims a.test and carries its own
 * certificate (as S/MIME signers do), encrypted to b's current key: the
 * certificate in the message must not be taken as the signer's. */
static void sealed_by_outsider(const struct sg_key *peer, struct sg_buf *out)
{
	struct sg_error err = SG_ERROR_INIT;
	const char *names[] = { "a.test" };
	struct sg_domcert_req req = {
		.domains = names, .n_domains = 1, .not_before = T0 - DAY, .not_after = T0 + 300 * DAY,
		.signing = true,
	};
	char *cert = NULL, *key = NULL;
	size_t cert_len = 0, key_len = 0;
	struct sg_key *signer = NULL;
	struct sg_buf pem, payload, der, entity, env;
	enum sg_crypto_status st;
	static const char inner[] = "Content-Type: message/rfc822\r\n"
				    "Sealgate-Domain-Binding: v=1; from=a.test; to=b.test\r\n\r\n"
				    "From: x@a.test\r\nSubject: forged\r\n\r\nforged body\r\n";

	assert_int_equal(sg_domcert_issue(&req, &cert, &cert_len, &key, &key_len, &err), 1);
	sg_buf_init(&pem, 64 * 1024);
	assert_true(sg_buf_append(&pem, cert, cert_len) && sg_buf_append(&pem, key, key_len));
	assert_int_equal(sg_key_load_mem(pem.data, pem.len, NULL, &signer, &st, &err), 1);
	sg_buf_init(&payload, 1 << 20);
	sg_buf_init(&der, 1 << 20);
	sg_buf_init(&entity, 1 << 20);
	sg_buf_init(&env, 1 << 20);
	assert_true(sg_buf_append_str(&payload, inner));
	assert_int_equal(sg_cms_sign(payload.data, payload.len, sg_key_x509(signer), false, &der, &st, &err), 1);
	gchar *b64 = g_base64_encode(der.data, der.len);
	assert_true(sg_buf_append_str(&entity, "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n"
					       "Content-Transfer-Encoding: base64\r\n\r\n") &&
		    sg_buf_append_str(&entity, b64) && sg_buf_append_str(&entity, "\r\n"));
	g_free(b64);
	struct sg_x509_key *recips[1] = { sg_key_x509(peer) };
	assert_int_equal(sg_cms_encrypt(entity.data, entity.len, recips, 1, SG_CMS_AES256_GCM, &env, &st, &err), 1);
	b64 = g_base64_encode(env.data, env.len);
	assert_true(sg_buf_append_str(out, "From: x@a.test\r\nSubject: ...\r\n"
					   "Sealgate-Domain: v=1; from=a.test; to=b.test\r\nMIME-Version: 1.0\r\n"
					   "Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data\r\n"
					   "Content-Transfer-Encoding: base64\r\n\r\n") &&
		    sg_buf_append_str(out, b64) && sg_buf_append_str(out, "\r\n"));
	g_free(b64);
	sg_key_free(&signer);
	free(cert);
	sg_secret_free(&key, key_len + 1);
	sg_buf_free(&pem);
	sg_buf_free(&payload);
	sg_buf_free(&der);
	sg_buf_free(&entity);
	sg_buf_free(&env);
	sg_error_clear(&err);
}

/* In process: a seals for b (keys taken from b's bundle), b opens; the
 * verdicts for a wrong recipient domain and an unpinned signer. */
static void test_seal_open(void **state)
{
	struct inst a, b, evil;
	struct sg_buf bb, ba, sealed, opened;
	struct sg_domain_bundle bun, abun;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_key *peer = NULL;
	struct sg_store *bst = NULL;
	struct sg_domain_opened res;
	enum sg_crypto_status cs;
	enum sg_crypto_status ks;
	static const char msg[] = "From: x@a.test\r\nTo: y@b.test\r\nSubject: hi\r\n\r\nbody text\r\n";
	(void)state;

	inst_open(&a, "so-a", "a.test");
	inst_open(&b, "so-b", "b.test c.test");
	inst_open(&evil, "so-evil", "a.test");
	init_rotate(&a, T0);
	init_rotate(&b, T0);
	init_rotate(&evil, T0);
	bundle_of(&b, T0, &bb);
	bundle_of(&a, T0, &ba);
	assert_int_equal(sg_domain_bundle_parse(bb.data, bb.len, "b.test", &bun, &err), 1);
	long k = sg_domain_bundle_pick(&bun, T0);
	assert_true(k >= 0);
	assert_int_equal(sg_key_load_mem(bun.enc[k].der, bun.enc[k].der_len, NULL, &peer, &ks, &err), 1);
	/* b trusts a's signing key as configured */
	assert_int_equal(sg_domain_bundle_parse(ba.data, ba.len, "a.test", &abun, &err), 1);
	assert_int_equal(sg_store_open_config(&b.cfg, NULL, &bst, &err), 1);
	struct sg_store_domain_peer pin = {
		.domain = "a.test", .fingerprint = abun.signing.fpr, .trust = "configured",
		.pinned_at = T0, .cert = abun.signing.der, .len = abun.signing.der_len,
	};
	assert_int_equal(sg_store_domain_peer_put(bst, &pin, &err), 1);

	const struct {
		struct inst *sealer;
		const char *to, *rcpt;
		enum sg_domain_verdict v;
	} cases[] = {
		{ &a, "b.test", "b.test", SG_DOMAIN_OK },
		{ &a, "b.test", "c.test", SG_DOMAIN_WRONG_DOMAIN },
		{ &a, "c.test", "c.test", SG_DOMAIN_OK },
		{ &evil, "b.test", "b.test", SG_DOMAIN_UNKNOWN_SIGNER },
		{ NULL, "b.test", "b.test", SG_DOMAIN_UNKNOWN_SIGNER }, /* sealed_by_outsider */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sg_buf_init(&sealed, 1024 * 1024);
		sg_buf_init(&opened, 1024 * 1024);
		if (cases[i].sealer == NULL) {
			sealed_by_outsider(peer, &sealed);
		} else {
			assert_int_equal(sg_domain_seal(cases[i].sealer->d, (const unsigned char *)msg,
							sizeof(msg) - 1, "a.test", cases[i].to, peer, &sealed,
							&cs, &err), 1);
			assert_null(memmem(sealed.data, sealed.len, "body text", 9));
		}
		assert_int_equal(sg_domain_open(b.d, sealed.data, sealed.len, cases[i].rcpt, T0, &opened,
						&res, &err), 1);
		if (res.verdict != cases[i].v)
			fail_msg("case %zu: verdict %d (%s), expected %d", i, res.verdict, sg_error_msg(&err),
				 cases[i].v);
		if (res.verdict == SG_DOMAIN_OK)
			assert_memory_equal(opened.data, msg, sizeof(msg) - 1);
		else
			assert_int_equal(opened.len, 0);
		sg_domain_opened_clear(&res);
		sg_buf_free(&sealed);
		sg_buf_free(&opened);
	}
	sg_store_close(&bst);
	sg_key_free(&peer);
	sg_domain_bundle_clear(&bun);
	sg_domain_bundle_clear(&abun);
	sg_buf_free(&bb);
	sg_buf_free(&ba);
	sg_error_clear(&err);
	inst_close(&a);
	inst_close(&b);
	inst_close(&evil);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bundle_parse),   cmocka_unit_test(test_window_choice),
		cmocka_unit_test(test_rotation_clock), cmocka_unit_test(test_grace_refused),
		cmocka_unit_test(test_destruction),    cmocka_unit_test(test_seal_open),
		cmocka_unit_test(test_destruction_waits_for_openers),
	};
	if (mkdtemp(dir) == NULL)
		return 1;
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	char *cmd = sg_asprintf("rm -rf '%s'", dir);
	if (system(cmd) != 0)
		r = 1;
	free(cmd);
	return r;
}
