/* Benchmark: sg_seal (encrypt + sign) in process vs a bare library loop
 * doing the same crypto on the same bytes:
 *   pgp:   librnp rnp_op_encrypt with a signature (AES-256, SHA-256, no
 *          AEAD, no compression, armored), as crypto/pgp.c sets it up,
 *          output to a growing heap buffer;
 *   smime: OpenSSL CMS_sign (detached, SHA-256, binary) of the message,
 *          then CMS_encrypt (AES-256-CBC, DER) of message + signature,
 *          base64-encoded, as mime/smime-mime.c does minus the MIME.
 * Each side runs for about SECS seconds, in alternating slices (at least
 * one message per slice), after one warm-up message each.
 * usage: seal-bench msg SIZE                     (writes the message to stdout)
 *        seal-bench pgp|smime SIZE SECS SIGNER RECIP...
 *          pgp:   SIGNER an unprotected secret key file, RECIPs public keys
 *          smime: SIGNER a PEM private key + certificate, RECIPs certificates
 *        prints "sealgate N/s bare N/s" */
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "mime/seal.h"

#define ROUNDS 5 /* alternating slices per side */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char *make_message(size_t size, size_t *len_r)
{
	static const char hdr[] = "From: alice@a.test\r\nTo: bob0@b.test\r\nSubject: bench\r\n"
				  "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
	unsigned char *m = malloc(sizeof(hdr) + size + 2);
	size_t n = sizeof(hdr) - 1;

	if (m == NULL)
		exit(1);
	memcpy(m, hdr, n);
	for (size_t i = 0; i < size; i++)
		m[n + i] = (i % 72 == 71) ? '\n' : (unsigned char)('a' + i % 26);
	for (size_t i = 1; i < size; i++) /* CRLF line ends */
		if (m[n + i] == '\n')
			m[n + i - 1] = '\r';
	*len_r = n + size;
	return m;
}

static void die(const char *what)
{
	fprintf(stderr, "seal-bench: %s\n", what);
	exit(1);
}

/* ---- sealgate ---- */

static struct sg_seal_req sg_req;

static void sealgate_setup(enum sg_seal_format fmt, const char *signer_file, char **recip_files, size_t n)
{
	struct sg_key *signer = NULL;
	struct sg_key **recips = calloc(n, sizeof(*recips));
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;

	if (recips == NULL)
		die("out of memory");
	if (sg_key_load_file(signer_file, NULL, &signer, &st, &err) != 1) {
		fprintf(stderr, "seal-bench: %s: %s\n", signer_file, sg_error_msg(&err));
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		if (sg_key_load_file(recip_files[i], NULL, &recips[i], &st, &err) != 1) {
			fprintf(stderr, "seal-bench: %s: %s\n", recip_files[i], sg_error_msg(&err));
			exit(1);
		}
	sg_req = (struct sg_seal_req){ .format = fmt, .recipients = recips, .n_recipients = n,
				       .signer = signer };
}

static void sealgate_op(const unsigned char *msg, size_t len)
{
	struct sg_buf out;
	enum sg_seal_outcome oc;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;

	sg_buf_init(&out, (size_t)1 << 30);
	if (sg_seal(msg, len, &sg_req, &out, &oc, &st, &err) != 1 || oc != SG_SEAL_SEALED) {
		fprintf(stderr, "seal-bench: seal: %s\n", sg_error_msg(&err));
		exit(1);
	}
	sg_buf_free(&out);
}

/* ---- bare librnp ---- */

/* Import a key file into ffi; locate its primary key by fingerprint (found
 * through a scratch ffi holding only that file). */
static rnp_key_handle_t rnp_load(rnp_ffi_t ffi, const char *path, bool secret)
{
	uint32_t flags = RNP_LOAD_SAVE_PUBLIC_KEYS | (secret ? RNP_LOAD_SAVE_SECRET_KEYS : 0);
	rnp_ffi_t scratch;
	rnp_input_t in;
	rnp_identifier_iterator_t it;
	const char *id = NULL;
	char *fpr = NULL;
	rnp_key_handle_t key = NULL;

	if (rnp_ffi_create(&scratch, "GPG", "GPG") != RNP_SUCCESS)
		die("rnp_ffi_create");
	if (rnp_input_from_path(&in, path) != RNP_SUCCESS ||
	    rnp_import_keys(scratch, in, flags, NULL) != RNP_SUCCESS)
		die("rnp import (scratch)");
	rnp_input_destroy(in);
	rnp_identifier_iterator_create(scratch, &it, "fingerprint");
	if (rnp_identifier_iterator_next(it, &id) == RNP_SUCCESS && id != NULL)
		fpr = strdup(id);
	rnp_identifier_iterator_destroy(it);
	rnp_ffi_destroy(scratch);
	if (fpr == NULL)
		die("rnp: no key in file");
	if (rnp_input_from_path(&in, path) != RNP_SUCCESS || rnp_import_keys(ffi, in, flags, NULL) != RNP_SUCCESS)
		die("rnp import");
	rnp_input_destroy(in);
	if (rnp_locate_key(ffi, "fingerprint", fpr, &key) != RNP_SUCCESS || key == NULL)
		die("rnp locate");
	free(fpr);
	return key;
}

static rnp_ffi_t rnp_ffi;
static rnp_key_handle_t rnp_signer, *rnp_recips;
static size_t rnp_n;

static void rnp_setup(const char *signer_file, char **recip_files, size_t n)
{
	rnp_recips = calloc(n, sizeof(*rnp_recips));
	rnp_n = n;
	if (rnp_recips == NULL || rnp_ffi_create(&rnp_ffi, "GPG", "GPG") != RNP_SUCCESS)
		die("rnp setup");
	rnp_signer = rnp_load(rnp_ffi, signer_file, true);
	for (size_t i = 0; i < n; i++)
		rnp_recips[i] = rnp_load(rnp_ffi, recip_files[i], false);
}

/* Output collected in a growing heap buffer, as sealgate's sg_buf does:
 * librnp's own memory output allocates and trims so much per message
 * (brk/munmap) that it measured the allocator rather than the crypto. */
struct grow_buf {
	unsigned char *p;
	size_t len, cap;
};

static bool grow_write(void *ctx, const void *buf, size_t len)
{
	struct grow_buf *b = ctx;

	if (b->len + len > b->cap) {
		size_t cap = b->cap == 0 ? 4096 : b->cap;
		while (cap < b->len + len)
			cap *= 2;
		unsigned char *p = realloc(b->p, cap);
		if (p == NULL)
			return false;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, buf, len);
	b->len += len;
	return true;
}

static void grow_close(void *ctx, bool discard)
{
	(void)ctx;
	(void)discard;
}

static void rnp_op(const unsigned char *msg, size_t len)
{
	struct grow_buf gb = { NULL, 0, 0 };
	rnp_ffi_t ffi = rnp_ffi;
	rnp_key_handle_t signer = rnp_signer, *recips = rnp_recips;
	size_t n = rnp_n;

	rnp_input_t in;
	rnp_output_t out;
	rnp_op_encrypt_t op;
	rnp_result_t r = RNP_SUCCESS;
	rnp_input_from_memory(&in, msg, len, false);
	rnp_output_to_callback(&out, grow_write, grow_close, &gb);
	rnp_op_encrypt_create(&op, ffi, in, out);
	for (size_t i = 0; i < n && r == RNP_SUCCESS; i++)
		r = rnp_op_encrypt_add_recipient(op, recips[i]);
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_add_signature(op, signer, NULL);
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_set_hash(op, "SHA256");
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_set_cipher(op, "AES256");
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_set_aead(op, "None");
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_set_compression(op, "uncompressed", 0);
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_set_armor(op, true);
	if (r == RNP_SUCCESS)
		r = rnp_op_encrypt_execute(op);
	if (r != RNP_SUCCESS) {
		fprintf(stderr, "seal-bench: rnp encrypt: %s\n", rnp_result_to_string(r));
		exit(1);
	}
	rnp_op_encrypt_destroy(op);
	rnp_output_destroy(out);
	rnp_input_destroy(in);
	free(gb.p);
}

/* ---- bare OpenSSL CMS ---- */

static X509 *scert;
static EVP_PKEY *skey;
static STACK_OF(X509) *recips;

static void cms_setup(const char *signer_file, char **recip_files, size_t n)
{
	FILE *f;

	recips = sk_X509_new_null();

	if (recips == NULL || (f = fopen(signer_file, "r")) == NULL)
		die("cms setup");
	skey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	rewind(f);
	scert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (skey == NULL || scert == NULL)
		die("cms: signer key/certificate");
	for (size_t i = 0; i < n; i++) {
		X509 *c = NULL;
		if ((f = fopen(recip_files[i], "r")) != NULL) {
			c = PEM_read_X509(f, NULL, NULL, NULL);
			fclose(f);
		}
		if (c == NULL || sk_X509_push(recips, c) == 0)
			die("cms: recipient certificate");
	}
}

static void cms_op(const unsigned char *msg, size_t len)
{
	const unsigned int flags = CMS_BINARY | CMS_PARTIAL;

	/* detached signature over the message */
	BIO *in = BIO_new_mem_buf(msg, (int)len);
	BIO *sig = BIO_new(BIO_s_mem());
	CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, flags | CMS_DETACHED);
	if (in == NULL || sig == NULL || cms == NULL ||
	    CMS_add1_signer(cms, scert, skey, EVP_sha256(), flags | CMS_DETACHED) == NULL ||
	    CMS_final(cms, in, NULL, flags | CMS_DETACHED) != 1 || i2d_CMS_bio(sig, cms) != 1)
		die("cms sign");
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	/* encrypt message + signature */
	char *sd;
	long sl = BIO_get_mem_data(sig, &sd);
	BIO *plain = BIO_new(BIO_s_mem());
	BIO_write(plain, msg, (int)len);
	BIO_write(plain, sd, (int)sl);
	BIO_free(sig);
	BIO *der = BIO_new(BIO_s_mem());
	cms = CMS_encrypt(recips, plain, EVP_aes_256_cbc(), flags);
	if (cms == NULL || CMS_final(cms, plain, NULL, flags) != 1 || i2d_CMS_bio(der, cms) != 1)
		die("cms encrypt");
	CMS_ContentInfo_free(cms);
	BIO_free(plain);
	/* base64 */
	char *dd;
	long dl = BIO_get_mem_data(der, &dd);
	unsigned char *b64 = malloc((size_t)dl / 3 * 4 + 8);
	if (b64 == NULL)
		die("out of memory");
	EVP_EncodeBlock(b64, (const unsigned char *)dd, (int)dl);
	free(b64);
	BIO_free(der);
}

/* Run op for about secs seconds (at least once); add to *count and *time. */
static void run(void (*op)(const unsigned char *, size_t), const unsigned char *msg, size_t len,
		double secs, long *count, double *time)
{
	double t0 = now(), t;

	do {
		op(msg, len);
		++*count;
		t = now() - t0;
	} while (t < secs);
	*time += t;
}

int main(int argc, char **argv)
{
	size_t len;

	if (argc == 3 && strcmp(argv[1], "msg") == 0) {
		unsigned char *msg = make_message(strtoul(argv[2], NULL, 10), &len);
		if (fwrite(msg, 1, len, stdout) != len)
			return 1;
		free(msg);
		return 0;
	}
	if (argc < 6 || (strcmp(argv[1], "pgp") != 0 && strcmp(argv[1], "smime") != 0)) {
		fprintf(stderr, "usage: seal-bench msg SIZE\n"
				"       seal-bench pgp|smime SIZE SECS SIGNER RECIP...\n");
		return 64;
	}
	bool pgp = strcmp(argv[1], "pgp") == 0;
	unsigned char *msg = make_message(strtoul(argv[2], NULL, 10), &len);
	double secs = strtod(argv[3], NULL);
	size_t n = (size_t)argc - 5;
	void (*bare_op)(const unsigned char *, size_t) = pgp ? rnp_op : cms_op;
	sealgate_setup(pgp ? SG_SEAL_PGP : SG_SEAL_SMIME, argv[4], argv + 5, n);
	if (pgp)
		rnp_setup(argv[4], argv + 5, n);
	else
		cms_setup(argv[4], argv + 5, n);
	/* one warm-up each, then alternate in ROUNDS slices so that a change
	 * in the machine's load hits both sides alike */
	long sc = 0, bc = 0;
	double st = 0, bt = 0;
	sealgate_op(msg, len);
	bare_op(msg, len);
	for (int r = 0; r < ROUNDS; r++) {
		run(sealgate_op, msg, len, secs / ROUNDS, &sc, &st);
		run(bare_op, msg, len, secs / ROUNDS, &bc, &bt);
	}
	printf("sealgate %.2f/s bare %.2f/s\n", (double)sc / st, (double)bc / bt);
	free(msg);
	return 0;
}
