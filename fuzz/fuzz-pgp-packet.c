/* libFuzzer target for the OpenPGP packet layer and PKESK re-wrapping:
 * framing, armor, key parsing, sg_pgp_rewrap and sg_rekey_message. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/pgp-packet.h"
#include "crypto/pgp-rewrap.h"
#include "mime/rekey-msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The seed msg-alice.* in fuzz/corpus/pgp-packet/ is encrypted to it. */
#include "test-key.h"

/* A v4 Curve25519 ECDH public key packet with a fixed point: the new key. */
static const unsigned char new_key[] = {
	0xc6, 0x38, 0x04, 0x00, 0x00, 0x00, 0x01, 0x12, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01,
	0x97, 0x55, 0x01, 0x05, 0x01, 0x01, 0x07, 0x40, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
	9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0x03, 0x01, 0x08, 0x09,
};

static struct sg_pgp_keyring *old_kr, *new_kr;

static void load_keys(void)
{
	if (old_kr != NULL)
		return;
	if (sg_pgp_keyring_load((const unsigned char *)test_key, sizeof(test_key) - 1, NULL, &old_kr, NULL) != 1 ||
	    sg_pgp_keyring_load(new_key, sizeof(new_key), NULL, &new_kr, NULL) != 1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_buf out;
	struct sg_pgp_packet pkt;
	struct sg_pgp_rewrap_info info;
	struct sg_pgp_keyring *kr = NULL;
	struct sg_pgp_armor armor;
	size_t pos = 0, s, e;

	load_keys();
	sg_buf_init(&out, 1 << 24);
	/* framing, and the joined body of every packet */
	while (sg_pgp_packet_next(data, size, &pos, &pkt, &err) == 1) {
		sg_buf_reset(&out);
		if (sg_pgp_packet_body(data, &pkt, &out, &err) != 1 || out.len != pkt.body_len)
			abort();
	}
	sg_error_clear(&err);
	/* as key material (armored or binary) */
	if (sg_pgp_keyring_load(data, size, "pass", &kr, &err) == 1) {
		(void)sg_pgp_keyring_encryption_key(kr);
		sg_pgp_keyring_free(&kr);
	}
	sg_error_clear(&err);
	/* as an armored block: decode, write back, decode again to the same */
	sg_buf_reset(&out);
	if (sg_pgp_dearmor((const char *)data, size, &armor, &s, &e, &out, &err) == 1) {
		struct sg_buf text, again;
		struct sg_pgp_armor a2;
		size_t s2, e2;
		sg_buf_init(&text, 1 << 26);
		sg_buf_init(&again, 1 << 24);
		if (sg_pgp_armor_write(&armor, out.data, out.len, &text, &err) == 1 &&
		    (sg_pgp_dearmor((const char *)text.data, text.len, &a2, &s2, &e2, &again, &err) != 1 ||
		     again.len != out.len || memcmp(again.data, out.data, out.len) != 0))
			abort();
		sg_pgp_armor_clear(&a2);
		sg_pgp_armor_clear(&armor);
		sg_buf_free(&text);
		sg_buf_free(&again);
	}
	sg_error_clear(&err);
	/* as a message to re-wrap */
	sg_buf_reset(&out);
	int r = sg_pgp_rewrap(data, size, old_kr, new_kr, &out, &info, &err);
	if (r == 1 && (info.out_data_off > out.len ||
		       memcmp(out.data + info.out_data_off, data + info.data_off, size - info.data_off) != 0))
		abort();
	if (r != 1 && out.len != 0)
		abort();
	sg_error_clear(&err);
	/* as a whole stored message: bytes before the payload are kept */
	struct sg_rekey_keys rk = { .pgp_old = old_kr, .pgp_new = new_kr };
	struct sg_rekey_info ri;
	sg_buf_reset(&out);
	if (sg_rekey_message(data, size, &rk, &out, &ri, &err) == 1 &&
	    (ri.payload_off > out.len || memcmp(out.data, data, ri.payload_off) != 0 ||
	     memcmp(out.data + ri.payload_end_out, data + ri.payload_end_in, size - ri.payload_end_in) != 0))
		abort();
	sg_error_clear(&err);
	sg_buf_free(&out);
	return 0;
}
