/* Benchmark: sg_seal in process vs a bare librnp encryption loop with the
 * same settings (AES-256, no compression, armored), per message size.
 * usage: seal-bench PUBKEY ADDR SIZE COUNT  (prints "sealgate N/s rnp N/s") */
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "mime/seal.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char *make_message(size_t size, size_t *len_r)
{
	static const char hdr[] = "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: bench\r\n"
				  "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
	unsigned char *m = malloc(sizeof(hdr) + size + 2);
	size_t n = sizeof(hdr) - 1;

	memcpy(m, hdr, n);
	for (size_t i = 0; i < size; i++)
		m[n + i] = (i % 72 == 71) ? '\n' : (unsigned char)('a' + i % 26);
	for (size_t i = 1; i < size; i++) /* CRLF line ends */
		if (m[n + i] == '\n')
			m[n + i - 1] = '\r';
	*len_r = n + size;
	return m;
}

static double bench_sealgate(const unsigned char *msg, size_t len, struct sg_key *key, int count)
{
	struct sg_key *recips[] = { key };
	struct sg_seal_req req = { .format = SG_SEAL_PGP, .recipients = recips, .n_recipients = 1 };
	double t0 = now();

	for (int i = 0; i < count; i++) {
		struct sg_buf out;
		enum sg_seal_outcome oc;
		enum sg_crypto_status st;
		struct sg_error err = SG_ERROR_INIT;
		sg_buf_init(&out, (size_t)1 << 30);
		if (sg_seal(msg, len, &req, &out, &oc, &st, &err) != 1) {
			fprintf(stderr, "seal: %s\n", sg_error_msg(&err));
			exit(1);
		}
		sg_buf_free(&out);
	}
	return count / (now() - t0);
}

static double bench_rnp(const unsigned char *msg, size_t len, const char *keyfile, const char *addr, int count)
{
	rnp_ffi_t ffi;
	rnp_input_t kin;
	rnp_key_handle_t key = NULL;

	rnp_ffi_create(&ffi, "GPG", "GPG");
	rnp_input_from_path(&kin, keyfile);
	rnp_import_keys(ffi, kin, RNP_LOAD_SAVE_PUBLIC_KEYS, NULL);
	rnp_input_destroy(kin);
	rnp_identifier_iterator_t it;
	const char *id;
	(void)it;
	(void)id;
	if (rnp_locate_key(ffi, "userid", addr, &key) != RNP_SUCCESS || key == NULL) {
		/* user IDs are "Name <addr>": take the first key instead */
		rnp_identifier_iterator_create(ffi, &it, "fingerprint");
		if (rnp_identifier_iterator_next(it, &id) == RNP_SUCCESS && id != NULL)
			rnp_locate_key(ffi, "fingerprint", id, &key);
		rnp_identifier_iterator_destroy(it);
	}
	double t0 = now();
	for (int i = 0; i < count; i++) {
		rnp_input_t in;
		rnp_output_t out;
		rnp_op_encrypt_t op;
		rnp_input_from_memory(&in, msg, len, false);
		rnp_output_to_memory(&out, 0);
		rnp_op_encrypt_create(&op, ffi, in, out);
		rnp_op_encrypt_add_recipient(op, key);
		rnp_op_encrypt_set_cipher(op, "AES256");
		rnp_op_encrypt_set_aead(op, "None");
		rnp_op_encrypt_set_compression(op, "uncompressed", 0);
		rnp_op_encrypt_set_armor(op, true);
		if (rnp_op_encrypt_execute(op) != RNP_SUCCESS)
			exit(1);
		rnp_op_encrypt_destroy(op);
		rnp_output_destroy(out);
		rnp_input_destroy(in);
	}
	double rate = count / (now() - t0);
	rnp_key_handle_destroy(key);
	rnp_ffi_destroy(ffi);
	return rate;
}

int main(int argc, char **argv)
{
	struct sg_key *key = NULL;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;
	size_t len;

	if (argc != 5) {
		fprintf(stderr, "usage: seal-bench PUBKEY ADDR SIZE COUNT\n");
		return 64;
	}
	if (sg_key_load_file(argv[1], NULL, &key, &st, &err) != 1) {
		fprintf(stderr, "%s\n", sg_error_msg(&err));
		return 1;
	}
	unsigned char *msg = make_message(strtoul(argv[3], NULL, 10), &len);
	int count = atoi(argv[4]);
	double s = bench_sealgate(msg, len, key, count);
	double r = bench_rnp(msg, len, argv[1], argv[2], count);
	printf("sealgate %.1f/s rnp %.1f/s\n", s, r);
	free(msg);
	sg_key_free(&key);
	return 0;
}
