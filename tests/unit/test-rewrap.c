/* Unit tests for crypto/pgp-rewrap: keys built here from OpenSSL-generated
 * X25519 and RSA keys as v4 packets; PKESK round trips, tampering, wrong
 * keys, message rewrap keeping every other byte, malformed input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto/pgp-packet.h"
#include "crypto/pgp-rewrap.h"

static const unsigned char OID25519[] = { 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01 };

struct testkey {
	struct sg_buf pub;  /* transferable public key: one packet */
	struct sg_buf sec;
};

static void put(struct sg_buf *b, const void *p, size_t n)
{
	assert_int_equal(sg_buf_append(b, p, n), 1);
}

static void put_mpi(struct sg_buf *b, const unsigned char *v, size_t n)
{
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_pgp_write_mpi(b, v, n, &err), 1);
}

static void put_bn(struct sg_buf *b, const BIGNUM *bn)
{
	unsigned char tmp[1024];
	int n = BN_bn2bin(bn, tmp);
	put_mpi(b, tmp, (size_t)n);
}

/* Wrap public body and secret MPIs into packets (s5.5.3, usage 0). */
static void finish_key(struct testkey *k, struct sg_buf *body, struct sg_buf *mpis)
{
	struct sg_error err = SG_ERROR_INIT;
	unsigned sum = 0;
	for (size_t i = 0; i < mpis->len; i++)
		sum += mpis->data[i];
	unsigned char tail[3] = { 0, (unsigned char)(sum >> 8), (unsigned char)sum };
	sg_buf_init(&k->pub, 1 << 16);
	sg_buf_init(&k->sec, 1 << 16);
	assert_int_equal(sg_pgp_packet_write_header(&k->pub, 6, body->len, &err), 1);
	put(&k->pub, body->data, body->len);
	assert_int_equal(sg_pgp_packet_write_header(&k->sec, 5, body->len + 1 + mpis->len + 2, &err), 1);
	put(&k->sec, body->data, body->len);
	put(&k->sec, tail, 1);
	put(&k->sec, mpis->data, mpis->len);
	put(&k->sec, tail + 1, 2);
	sg_buf_free(body);
	sg_buf_free(mpis);
}

static void make_x25519(struct testkey *k)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	unsigned char pub[33], priv[32], rev[32];
	size_t l = 32;
	struct sg_buf body, mpis;
	assert_non_null(pk);
	assert_int_equal(EVP_PKEY_get_raw_public_key(pk, pub + 1, &l), 1);
	l = 32;
	assert_int_equal(EVP_PKEY_get_raw_private_key(pk, priv, &l), 1);
	pub[0] = 0x40;
	for (int i = 0; i < 32; i++)
		rev[i] = priv[31 - i]; /* stored big-endian (RFC 9580 s5.5.5.6) */
	sg_buf_init(&body, 1 << 16);
	sg_buf_init(&mpis, 1 << 16);
	put(&body, "\x04\x00\x00\x00\x01\x12", 6);
	put(&body, OID25519, sizeof(OID25519));
	put_mpi(&body, pub, 33);
	put(&body, "\x03\x01\x08\x09", 4); /* KDF: SHA-256, AES-256 */
	put_mpi(&mpis, rev, 32);
	finish_key(k, &body, &mpis);
	EVP_PKEY_free(pk);
}

static void make_rsa(struct testkey *k)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	BIGNUM *n = NULL, *e = NULL, *d = NULL, *p = NULL, *q = NULL, *u = BN_new();
	BN_CTX *ctx = BN_CTX_new();
	struct sg_buf body, mpis;
	assert_non_null(pk);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_D, &d), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR1, &p), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR2, &q), 1);
	assert_non_null(BN_mod_inverse(u, p, q, ctx)); /* OpenPGP u = p^-1 mod q */
	sg_buf_init(&body, 1 << 16);
	sg_buf_init(&mpis, 1 << 16);
	put(&body, "\x04\x00\x00\x00\x02\x01", 6);
	put_bn(&body, n);
	put_bn(&body, e);
	put_bn(&mpis, d);
	put_bn(&mpis, p);
	put_bn(&mpis, q);
	put_bn(&mpis, u);
	finish_key(k, &body, &mpis);
	BN_free(n); BN_free(e); BN_clear_free(d); BN_clear_free(p); BN_clear_free(q); BN_free(u);
	BN_CTX_free(ctx);
	EVP_PKEY_free(pk);
}

static struct testkey keys[4]; /* cv25519 A, cv25519 B, RSA C, RSA D */

static int setup(void **state)
{
	(void)state;
	make_x25519(&keys[0]);
	make_x25519(&keys[1]);
	make_rsa(&keys[2]);
	make_rsa(&keys[3]);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++) {
		sg_buf_free(&keys[i].pub);
		sg_buf_free(&keys[i].sec);
	}
	return 0;
}

static struct sg_pgp_keyring *load(const struct sg_buf *b)
{
	struct sg_pgp_keyring *kr = NULL;
	struct sg_error err = SG_ERROR_INIT;
	if (sg_pgp_keyring_load(b->data, b->len, NULL, &kr, &err) != 1)
		fail_msg("load: %s", sg_error_msg(&err));
	return kr;
}

static void random_sk(struct sg_pgp_session_key *sk)
{
	sk->sym_algo = 9;
	sk->key_len = 32;
	assert_int_equal(RAND_bytes(sk->key, 32), 1);
}

static void test_keyring_fingerprints(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++) {
		struct sg_pgp_keyring *p = load(&keys[i].pub), *s = load(&keys[i].sec);
		assert_int_equal(sg_pgp_keyring_count(p), 1);
		assert_int_equal(sg_pgp_keyring_encryption_key(p), 0);
		/* the secret packet's fingerprint covers only the public part */
		assert_memory_equal(sg_pgp_keyring_fpr(p, 0), sg_pgp_keyring_fpr(s, 0), 20);
		sg_pgp_keyring_free(&p);
		sg_pgp_keyring_free(&s);
		assert_null(s);
	}
}

/* PKESK body of a whole packet in b. */
static const unsigned char *pkesk_body(const struct sg_buf *b, size_t *len_r)
{
	struct sg_pgp_packet pkt;
	struct sg_error err = SG_ERROR_INIT;
	size_t pos = 0;
	assert_int_equal(sg_pgp_packet_next(b->data, b->len, &pos, &pkt, &err), 1);
	assert_int_equal(pkt.tag, 1);
	*len_r = pkt.body_len;
	return pkt.body;
}

static void test_pkesk_roundtrip_and_tamper(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++) {
		struct sg_pgp_keyring *p = load(&keys[i].pub), *s = load(&keys[i].sec);
		struct sg_pgp_keyring *wrong = load(&keys[i ^ 1].sec);
		struct sg_pgp_session_key sk, got;
		struct sg_error err = SG_ERROR_INIT;
		struct sg_buf out;
		size_t bl;
		sg_buf_init(&out, 1 << 16);
		random_sk(&sk);
		assert_int_equal(sg_pgp_pkesk_encrypt(&sk, p, 0, false, &out, &err), 1);
		const unsigned char *body = pkesk_body(&out, &bl);
		assert_memory_equal(body + 1, sg_pgp_keyring_fpr(p, 0) + 12, 8);
		if (sg_pgp_pkesk_decrypt(body, bl, s, 0, &got, &err) != 1)
			fail_msg("key %d: %s", i, sg_error_msg(&err));
		assert_int_equal(got.sym_algo, 9);
		assert_int_equal(got.key_len, 32);
		assert_memory_equal(got.key, sk.key, 32);
		/* a public key cannot decrypt; another key of the algorithm fails */
		assert_int_equal(sg_pgp_pkesk_decrypt(body, bl, p, 0, &got, &err), 0);
		assert_int_equal(sg_pgp_pkesk_decrypt(body, bl, wrong, 0, &got, &err), -1);
		sg_error_clear(&err);
		/* any flipped octet of the encrypted part is caught */
		unsigned char *t = malloc(bl);
		for (size_t pos = 10; pos < bl; pos += 7) {
			memcpy(t, body, bl);
			t[pos] ^= 0x20;
			if (sg_pgp_pkesk_decrypt(t, bl, s, 0, &got, &err) == 1 &&
			    memcmp(got.key, sk.key, 32) == 0)
				fail_msg("key %d: tampered octet %zu decrypted", i, pos);
			sg_error_clear(&err);
		}
		/* every truncation is a clean error */
		for (size_t cut = 0; cut < bl; cut++)
			assert_int_not_equal(sg_pgp_pkesk_decrypt(body, cut, s, 0, &got, &err), 1);
		sg_error_clear(&err);
		free(t);
		sg_buf_free(&out);
		sg_pgp_keyring_free(&p);
		sg_pgp_keyring_free(&s);
		sg_pgp_keyring_free(&wrong);
	}
}

/* PKESK(old) PKESK(other) SEIPD(partial lengths, random). */
static void make_message(struct sg_buf *msg, const struct sg_pgp_session_key *sk, int old, int other,
			 bool wildcard)
{
	struct sg_pgp_keyring *a = load(&keys[old].pub), *b = load(&keys[other].pub);
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_pgp_pkesk_encrypt(sk, a, 0, wildcard, msg, &err), 1);
	assert_int_equal(sg_pgp_pkesk_encrypt(sk, b, 0, false, msg, &err), 1);
	unsigned char chunk[1024];
	put(msg, "\xd2\xea", 2); /* tag 18, first chunk of 1024 */
	assert_int_equal(RAND_bytes(chunk, sizeof(chunk)), 1);
	put(msg, chunk, sizeof(chunk));
	put(msg, "\x20", 1);
	put(msg, chunk, 32);
	sg_pgp_keyring_free(&a);
	sg_pgp_keyring_free(&b);
}

static void check_rewrap(int old, int other, int newk, bool wildcard)
{
	struct sg_pgp_session_key sk, got;
	struct sg_buf msg, out, again;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_pgp_rewrap_info info;
	struct sg_pgp_keyring *o = load(&keys[old].sec), *n = load(&keys[newk].pub);
	struct sg_pgp_keyring *ns = load(&keys[newk].sec);
	sg_buf_init(&msg, 1 << 20);
	sg_buf_init(&out, 1 << 20);
	sg_buf_init(&again, 1 << 20);
	random_sk(&sk);
	make_message(&msg, &sk, old, other, wildcard);
	if (sg_pgp_rewrap(msg.data, msg.len, o, n, &out, &info, &err) != 1)
		fail_msg("rewrap %d->%d: %s", old, newk, sg_error_msg(&err));
	assert_int_equal(info.removed, 1);
	assert_int_equal(info.kept, 1);
	/* other PKESK and the SEIPD packet: identical bytes */
	size_t pos = 0, opos = 0;
	struct sg_pgp_packet p0[3], p1[3];
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sg_pgp_packet_next(msg.data, msg.len, &pos, &p0[i], &err), 1);
		assert_int_equal(sg_pgp_packet_next(out.data, out.len, &opos, &p1[i], &err), 1);
	}
	for (int i = 1; i < 3; i++) {
		assert_int_equal(p0[i].raw_len, p1[i].raw_len);
		assert_memory_equal(msg.data + p0[i].off, out.data + p1[i].off, p0[i].raw_len);
	}
	assert_int_equal(info.out_data_off, p1[2].off);
	assert_int_equal(info.data_off, p0[2].off);
	/* the new PKESK carries the same session key */
	static const unsigned char zero[8];
	assert_int_equal(memcmp(p1[0].body + 1, zero, 8) == 0, wildcard);
	assert_int_equal(sg_pgp_pkesk_decrypt(p1[0].body, p1[0].body_len, ns, 0, &got, &err), 1);
	assert_memory_equal(got.key, sk.key, 32);
	/* the old key is no longer a recipient */
	assert_int_equal(sg_pgp_rewrap(out.data, out.len, o, n, &again, &info, &err), 0);
	assert_int_equal(again.len, 0);
	sg_buf_free(&msg);
	sg_buf_free(&out);
	sg_buf_free(&again);
	sg_pgp_keyring_free(&o);
	sg_pgp_keyring_free(&n);
	sg_pgp_keyring_free(&ns);
}

static void test_rewrap_message(void **state)
{
	static const struct { int old, other, newk; bool wildcard; } cases[] = {
		{ 0, 2, 1, false }, { 0, 2, 3, false }, { 2, 0, 3, false }, { 2, 1, 0, false },
		{ 0, 2, 1, true }, { 2, 0, 1, true },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_rewrap(cases[i].old, cases[i].other, cases[i].newk, cases[i].wildcard);
}

static void test_rewrap_new_already_recipient(void **state)
{
	struct sg_pgp_session_key sk;
	struct sg_buf msg, out;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_pgp_rewrap_info info;
	struct sg_pgp_keyring *o = load(&keys[0].sec), *n = load(&keys[1].pub);
	(void)state;
	sg_buf_init(&msg, 1 << 20);
	sg_buf_init(&out, 1 << 20);
	random_sk(&sk);
	make_message(&msg, &sk, 0, 1, false);
	assert_int_equal(sg_pgp_rewrap(msg.data, msg.len, o, n, &out, &info, &err), 1);
	assert_true(info.new_already);
	assert_int_equal(info.removed, 1);
	/* just the old PKESK dropped */
	size_t pos = 0;
	struct sg_pgp_packet pkt;
	assert_int_equal(sg_pgp_packet_next(msg.data, msg.len, &pos, &pkt, &err), 1);
	assert_int_equal(out.len, msg.len - pkt.raw_len);
	assert_memory_equal(out.data, msg.data + pkt.raw_len, out.len);
	sg_buf_free(&msg);
	sg_buf_free(&out);
	sg_pgp_keyring_free(&o);
	sg_pgp_keyring_free(&n);
}

static void test_rewrap_malformed(void **state)
{
	struct sg_pgp_session_key sk;
	struct sg_buf good;
	struct sg_pgp_keyring *o = load(&keys[0].sec), *n = load(&keys[1].pub);
	(void)state;
	sg_buf_init(&good, 1 << 20);
	random_sk(&sk);
	make_message(&good, &sk, 0, 2, false);
	size_t first = 0;
	struct sg_pgp_packet pkt;
	struct sg_error err = SG_ERROR_INIT;
	assert_int_equal(sg_pgp_packet_next(good.data, good.len, &first, &pkt, &err), 1);
	static const struct { const char *data; size_t len; const char *msg; } cases[] = {
		{ "", 0, "no encrypted data" },
		{ "\x00", 1, "not an OpenPGP packet" },
		{ "\xcb\x03" "abc", 5, "unexpected packet tag 11" },
		{ "\xc1\x02\x03\x00", 4, "no encrypted data" },
		{ "\xd2\x05" "ab", 4, "truncated" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_buf out;
		struct sg_pgp_rewrap_info info;
		sg_buf_init(&out, 1 << 20);
		int r = sg_pgp_rewrap((const unsigned char *)cases[i].data, cases[i].len, o, n, &out, &info, &err);
		if (r != -1 || strstr(sg_error_msg(&err), cases[i].msg) == NULL)
			fail_msg("case %zu: %d '%s'", i, r, sg_error_msg(&err));
		assert_int_equal(out.len, 0);
		sg_error_clear(&err);
		sg_buf_free(&out);
	}
	/* every cut of a real message: never 1, and never anything written */
	for (size_t cut = 0; cut < good.len; cut += (cut < first + 4 ? 1 : 13)) {
		struct sg_buf out;
		struct sg_pgp_rewrap_info info;
		sg_buf_init(&out, 1 << 20);
		int r = sg_pgp_rewrap(good.data, cut, o, n, &out, &info, &err);
		if (r == 1 || out.len != 0)
			fail_msg("cut %zu: %d", cut, r);
		sg_error_clear(&err);
		sg_buf_free(&out);
	}
	/* a corrupted old PKESK with the old key id is an error, not a skip */
	good.data[first - 3] ^= 1;
	struct sg_buf out;
	struct sg_pgp_rewrap_info info;
	sg_buf_init(&out, 1 << 20);
	assert_int_equal(sg_pgp_rewrap(good.data, good.len, o, n, &out, &info, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "old key"));
	sg_error_clear(&err);
	sg_buf_free(&out);
	sg_buf_free(&good);
	sg_pgp_keyring_free(&o);
	sg_pgp_keyring_free(&n);
}

static void test_secret_checksum(void **state)
{
	struct sg_buf b;
	struct sg_pgp_keyring *kr = NULL;
	struct sg_error err = SG_ERROR_INIT;
	(void)state;
	sg_buf_init(&b, 1 << 16);
	put(&b, keys[0].sec.data, keys[0].sec.len);
	b.data[b.len - 1] ^= 1;
	assert_int_equal(sg_pgp_keyring_load(b.data, b.len, NULL, &kr, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "checksum"));
	assert_null(kr);
	sg_error_clear(&err);
	/* no key packets at all */
	assert_int_equal(sg_pgp_keyring_load((const unsigned char *)"\xcd\x01x", 3, NULL, &kr, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "no key packets"));
	sg_error_clear(&err);
	sg_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyring_fingerprints),
		cmocka_unit_test(test_pkesk_roundtrip_and_tamper),
		cmocka_unit_test(test_rewrap_message),
		cmocka_unit_test(test_rewrap_new_already_recipient),
		cmocka_unit_test(test_rewrap_malformed),
		cmocka_unit_test(test_secret_checksum),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
