/* Unit tests for crypto/pgp-packet: header lengths (table), partial
 * bodies, truncation fed one byte at a time, MPIs, CRC-24, armor. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/pgp-packet.h"

static void test_new_header_lengths(void **state)
{
	/* s4.2.2: one-, two- and five-octet lengths around the boundaries */
	static const struct { size_t len; size_t hdr; } cases[] = {
		{ 0, 2 }, { 1, 2 }, { 191, 2 }, { 192, 3 }, { 8383, 3 }, { 8384, 6 }, { 100000, 6 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_buf b;
		struct sg_error err = SG_ERROR_INIT;
		struct sg_pgp_packet pkt;
		size_t pos = 0;
		sg_buf_init(&b, 1 << 20);
		assert_int_equal(sg_pgp_packet_write_header(&b, 18, cases[i].len, &err), 1);
		assert_int_equal(b.len, cases[i].hdr);
		for (size_t k = 0; k < cases[i].len; k++)
			assert_int_equal(sg_buf_append(&b, "z", 1), 1);
		if (sg_pgp_packet_next(b.data, b.len, &pos, &pkt, &err) != 1)
			fail_msg("case %zu (len %zu): %s", i, cases[i].len, sg_error_msg(&err));
		assert_int_equal(pkt.tag, 18);
		assert_int_equal(pkt.body_len, cases[i].len);
		assert_int_equal(pkt.raw_len, b.len);
		assert_int_equal(pos, b.len);
		assert_int_equal(sg_pgp_packet_next(b.data, b.len, &pos, &pkt, &err), 0);
		sg_buf_free(&b);
	}
}

static void test_old_header_formats(void **state)
{
	/* tag 1 old format (s4.2.1): length types 0, 1, 2 and indeterminate */
	static const struct {
		unsigned char data[8];
		size_t len;
		int tag;
		size_t body;
	} cases[] = {
		{ { 0x84, 2, 'a', 'b' }, 4, 1, 2 },
		{ { 0x85, 0, 1, 'a' }, 4, 1, 1 },
		{ { 0x86, 0, 0, 0, 2, 'a', 'b' }, 7, 1, 2 },
		{ { 0xa3, 'x', 'y', 'z' }, 4, 8, 3 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_error err = SG_ERROR_INIT;
		struct sg_pgp_packet pkt;
		size_t pos = 0;
		if (sg_pgp_packet_next(cases[i].data, cases[i].len, &pos, &pkt, &err) != 1)
			fail_msg("case %zu: %s", i, sg_error_msg(&err));
		assert_int_equal(pkt.tag, cases[i].tag);
		assert_int_equal(pkt.body_len, cases[i].body);
		assert_int_equal(pos, cases[i].len);
	}
}

/* A tag-18 packet in partial lengths: 512 + 1024 + 37 octets. */
static void partial_packet(struct sg_buf *b, struct sg_buf *body)
{
	static const size_t chunks[] = { 512, 1024 };
	unsigned char h = 0xc0 | 18;
	assert_int_equal(sg_buf_append(b, &h, 1), 1);
	for (size_t c = 0; c < 2; c++) {
		unsigned char l = (unsigned char)(224 + (chunks[c] == 512 ? 9 : 10));
		assert_int_equal(sg_buf_append(b, &l, 1), 1);
		for (size_t i = 0; i < chunks[c]; i++) {
			unsigned char v = (unsigned char)(body->len * 7);
			assert_int_equal(sg_buf_append(b, &v, 1), 1);
			assert_int_equal(sg_buf_append(body, &v, 1), 1);
		}
	}
	unsigned char last = 37;
	assert_int_equal(sg_buf_append(b, &last, 1), 1);
	for (size_t i = 0; i < 37; i++) {
		unsigned char v = (unsigned char)i;
		assert_int_equal(sg_buf_append(b, &v, 1), 1);
		assert_int_equal(sg_buf_append(body, &v, 1), 1);
	}
}

static void test_partial_body(void **state)
{
	struct sg_buf b, body, got;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_pgp_packet pkt;
	size_t pos = 0;
	(void)state;
	sg_buf_init(&b, 1 << 20);
	sg_buf_init(&body, 1 << 20);
	sg_buf_init(&got, 1 << 20);
	partial_packet(&b, &body);
	assert_int_equal(sg_pgp_packet_next(b.data, b.len, &pos, &pkt, &err), 1);
	assert_true(pkt.partial);
	assert_null(pkt.body);
	assert_int_equal(pkt.body_len, 512 + 1024 + 37);
	assert_int_equal(pkt.raw_len, b.len);
	assert_int_equal(sg_pgp_packet_body(b.data, &pkt, &got, &err), 1);
	assert_int_equal(got.len, body.len);
	assert_memory_equal(got.data, body.data, body.len);
	/* A PKESK may not use partial lengths (s4.2.2.4). */
	b.data[0] = 0xc0 | 1;
	pos = 0;
	assert_int_equal(sg_pgp_packet_next(b.data, b.len, &pos, &pkt, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "partial"));
	sg_error_clear(&err);
	sg_buf_free(&b);
	sg_buf_free(&body);
	sg_buf_free(&got);
}

/* Every proper prefix of a stream of three packets: the whole packets
 * parse, the cut one is a clean error, nothing reads past the end. */
static void test_truncation_each_byte(void **state)
{
	struct sg_buf b, body;
	(void)state;
	sg_buf_init(&b, 1 << 20);
	sg_buf_init(&body, 1 << 20);
	static const unsigned char pkesk[] = { 0xc1, 3, 3, 0, 0 };
	static const unsigned char old[] = { 0x85, 0x01, 0x00 };
	assert_int_equal(sg_buf_append(&b, pkesk, sizeof(pkesk)), 1);
	size_t p1 = b.len;
	assert_int_equal(sg_buf_append(&b, old, 3), 1);
	for (int i = 0; i < 256; i++)
		assert_int_equal(sg_buf_append(&b, "q", 1), 1);
	size_t p2 = b.len;
	partial_packet(&b, &body);
	size_t ends[] = { p1, p2, b.len };
	for (size_t cut = 0; cut < b.len; cut++) {
		unsigned char *copy = malloc(cut ? cut : 1);
		memcpy(copy, b.data, cut);
		struct sg_error err = SG_ERROR_INIT;
		struct sg_pgp_packet pkt;
		size_t pos = 0, whole = 0;
		int r;
		while ((r = sg_pgp_packet_next(copy, cut, &pos, &pkt, &err)) == 1)
			whole++;
		size_t expect = 0;
		while (expect < 3 && ends[expect] <= cut)
			expect++;
		if (whole != expect)
			fail_msg("cut %zu: %zu whole packets, expected %zu", cut, whole, expect);
		bool at_boundary = cut == 0 || cut == p1 || cut == p2;
		if (at_boundary ? r != 0 : r != -1)
			fail_msg("cut %zu: returned %d", cut, r);
		sg_error_clear(&err);
		free(copy);
	}
	sg_buf_free(&b);
	sg_buf_free(&body);
}

static void test_mpi(void **state)
{
	static const struct {
		unsigned char in[4];
		size_t len;
		unsigned char out[6];
		size_t out_len;
	} cases[] = {
		{ { 0x00, 0x01 }, 2, { 0x00, 0x01, 0x01 }, 3 },
		{ { 0x80 }, 1, { 0x00, 0x08, 0x80 }, 3 },
		{ { 0x00, 0x00, 0x40, 0xff }, 4, { 0x00, 0x0f, 0x40, 0xff }, 4 },
		{ { 0x00 }, 1, { 0x00, 0x00 }, 2 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_buf b;
		struct sg_error err = SG_ERROR_INIT;
		sg_buf_init(&b, 64);
		assert_int_equal(sg_pgp_write_mpi(&b, cases[i].in, cases[i].len, &err), 1);
		assert_int_equal(b.len, cases[i].out_len);
		assert_memory_equal(b.data, cases[i].out, b.len);
		struct sg_pgp_reader r;
		const unsigned char *v;
		size_t vl;
		sg_pgp_reader_init(&r, b.data, b.len);
		assert_int_equal(sg_pgp_read_mpi(&r, &v, &vl, "mpi", &err), 1);
		assert_int_equal(vl, b.len - 2);
		/* one octet short: a clean error */
		sg_pgp_reader_init(&r, b.data, b.len - 1);
		if (b.len > 2)
			assert_int_equal(sg_pgp_read_mpi(&r, &v, &vl, "mpi", &err), -1);
		sg_error_clear(&err);
		sg_buf_free(&b);
	}
}

/* Patching the CRC of a changed prefix equals computing it afresh, for
 * prefix and tail lengths around the byte and matrix-power edges. */
static void test_crc24_patch(void **state)
{
	(void)state;
	static const size_t totals[] = { 1, 2, 7, 64, 1000, 70000 };
	unsigned char *a = malloc(70000), *b = malloc(70000);
	assert_non_null(a);
	assert_non_null(b);
	uint32_t seed = 12345;
	for (size_t i = 0; i < 70000; i++) {
		seed = seed * 1103515245u + 12345u;
		a[i] = b[i] = (unsigned char)(seed >> 16);
	}
	for (size_t t = 0; t < sizeof(totals) / sizeof(totals[0]); t++) {
		size_t total = totals[t];
		for (size_t n = 0; n <= total && n <= 600; n += n < 8 ? 1 : 97) {
			memcpy(b, a, total);
			for (size_t i = 0; i < n; i++)
				b[i] = (unsigned char)(a[i] ^ (i * 31 + 7));
			uint32_t want = sg_pgp_crc24(b, total);
			uint32_t got = sg_pgp_crc24_patch(sg_pgp_crc24(a, total), a, b, n, total);
			if (got != want)
				fail_msg("total %zu prefix %zu: %06x != %06x", total, n, got, want);
		}
	}
	free(a);
	free(b);
}

static void test_crc24(void **state)
{
	(void)state;
	assert_int_equal(sg_pgp_crc24((const unsigned char *)"", 0), 0xb704ce);
	/* CRC-24/OPENPGP check value */
	assert_int_equal(sg_pgp_crc24((const unsigned char *)"123456789", 9), 0x21cf02);
}

static const char ARMORED[] =
	"junk before\r\n"
	"-----BEGIN PGP MESSAGE-----\r\n"
	"Comment: kept as is\r\n"
	"\r\n"
	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\r\n"
	"ISIj\r\n"
	"=%s\r\n"
	"-----END PGP MESSAGE-----\r\n"
	"after\r\n";

static void test_armor_roundtrip(void **state)
{
	unsigned char bin[36];
	struct sg_buf out, dec, text;
	struct sg_pgp_armor a;
	struct sg_error err = SG_ERROR_INIT;
	size_t s, e;
	(void)state;
	for (int i = 0; i < 36; i++)
		bin[i] = (unsigned char)i;
	sg_buf_init(&dec, 1 << 16);
	sg_buf_init(&out, 1 << 16);
	sg_buf_init(&text, 1 << 16);
	/* CRC of 00..23 written by our writer, then parsed from the fixed text */
	struct sg_pgp_armor w = { .label = (char *)"PGP MESSAGE", .headers = (char *)"", .eol = "\n",
				  .line_len = 64, .had_crc = true, .end_eol = true };
	assert_int_equal(sg_pgp_armor_write(&w, bin, 36, &out, &err), 1);
	const char *crc = strstr(sg_buf_str(&out), "\n=") + 2;
	char crc4[5] = { crc[0], crc[1], crc[2], crc[3], 0 };
	assert_int_equal(sg_buf_printf(&text, ARMORED, crc4), 1);
	assert_int_equal(sg_pgp_dearmor((const char *)text.data, text.len, &a, &s, &e, &dec, &err), 1);
	assert_int_equal(dec.len, 36);
	assert_memory_equal(dec.data, bin, 36);
	assert_int_equal(s, strlen("junk before\r\n"));
	assert_string_equal((const char *)text.data + e, "after\r\n");
	assert_string_equal(a.headers, "Comment: kept as is\r\n");
	assert_string_equal(a.eol, "\r\n");
	assert_int_equal(a.line_len, 44);
	/* written back: byte-identical to the original block */
	sg_buf_reset(&out);
	assert_int_equal(sg_pgp_armor_write(&a, dec.data, dec.len, &out, &err), 1);
	assert_int_equal(out.len, e - s);
	assert_memory_equal(out.data, text.data + s, e - s);
	sg_pgp_armor_clear(&a);
	/* a wrong CRC is refused */
	text.data[strstr((char *)text.data, "\r\n=") - (char *)text.data + 3] ^= 1;
	sg_buf_reset(&dec);
	assert_int_equal(sg_pgp_dearmor((const char *)text.data, text.len, &a, &s, &e, &dec, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "CRC"));
	sg_error_clear(&err);
	sg_buf_free(&out);
	sg_buf_free(&dec);
	sg_buf_free(&text);
}

static void test_armor_errors(void **state)
{
	static const struct { const char *text; int ret; const char *msg; } cases[] = {
		{ "no armor here\n", 0, NULL },
		{ "-----BEGIN PGP MESSAGE-----\n\nAAEC\n", -1, "no END" },
		{ "-----BEGIN PGP MESSAGE-----\n\nAAEC\n-----END PGP SIGNATURE-----\n", -1, "does not match" },
		{ "-----BEGIN PGP MESSAGE-----\n\nAA*C\n-----END PGP MESSAGE-----\n", -1, "bad character" },
		{ "-----BEGIN PGP MESSAGE-----\n\nAAE\n-----END PGP MESSAGE-----\n", -1, "base64" },
		{ "x-----BEGIN PGP MESSAGE-----\n\nAAEC\n-----END PGP MESSAGE-----\n", 0, NULL },
		/* a header with a lone CR would be split differently when written back */
		{ "-----BEGIN PGP MESSAGE-----\nComment: a\rb\n\nAAEC\n-----END PGP MESSAGE-----\n", -1,
		  "control character 0x0d" },
		{ "-----BEGIN PGP MESSAGE-----\nComment: caf\xc3\xa9\tok\n\nAAEC\n-----END PGP MESSAGE-----\n", 1,
		  NULL },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sg_buf dec;
		struct sg_pgp_armor a;
		struct sg_error err = SG_ERROR_INIT;
		size_t s, e;
		sg_buf_init(&dec, 1 << 16);
		int r = sg_pgp_dearmor(cases[i].text, strlen(cases[i].text), &a, &s, &e, &dec, &err);
		if (r != cases[i].ret)
			fail_msg("case %zu: returned %d (%s)", i, r, sg_error_msg(&err));
		if (cases[i].msg && strstr(sg_error_msg(&err), cases[i].msg) == NULL)
			fail_msg("case %zu: message '%s'", i, sg_error_msg(&err));
		if (r == 1)
			sg_pgp_armor_clear(&a);
		sg_error_clear(&err);
		sg_buf_free(&dec);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_header_lengths),
		cmocka_unit_test(test_old_header_formats),
		cmocka_unit_test(test_partial_body),
		cmocka_unit_test(test_truncation_each_byte),
		cmocka_unit_test(test_mpi),
		cmocka_unit_test(test_crc24),
		cmocka_unit_test(test_crc24_patch),
		cmocka_unit_test(test_armor_roundtrip),
		cmocka_unit_test(test_armor_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
