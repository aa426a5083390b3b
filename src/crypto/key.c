/* The key handle of crypto.h: one struct for an OpenPGP key or an X.509
 * certificate, dispatching to crypto/pgp.c or crypto/smime.c by kind. */
#include "crypto/crypto.h"
#include "crypto/pgp.h"
#include "crypto/smime.h"
#include "util/buf.h"
#include "util/mem.h"

#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sg_key {
	enum sg_key_kind kind;
	struct sg_pgp_key *pgp;
	struct sg_x509_key *x509;
};

/* Largest key file we read: certificates with chains, keyrings of one key. */
#define SG_KEY_FILE_MAX (16u * 1024 * 1024)

int sg_key_load_mem(const void *data, size_t len, const char *passphrase, struct sg_key **key_r,
		    enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_key *k = sg_calloc(1, sizeof(*k));
	int r;

	/* OpenPGP first, by content (armor header or key packet tag). */
	if (sg_pgp_looks_like_key(data, len)) {
		k->kind = SG_KEY_PGP;
		r = sg_pgp_key_load_mem(data, len, passphrase, &k->pgp, status_r, err);
	} else {
		k->kind = SG_KEY_X509;
		r = sg_x509_key_load_mem(data, len, passphrase, &k->x509, status_r, err);
	}
	if (r < 0) {
		sg_key_free(&k);
		return -1;
	}
	*key_r = k;
	return 1;
}

int sg_key_load_file(const char *path, const char *passphrase, struct sg_key **key_r,
		     enum sg_crypto_status *status_r, struct sg_error *err)
{
	FILE *f = fopen(path, "rb");
	unsigned char *data = NULL;
	size_t len = 0, cap = 0;
	int ret = -1;

	if (status_r != NULL)
		*status_r = SG_CRYPTO_BAD_KEY;
	if (f == NULL) {
		sg_error_set(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			cap = cap == 0 ? 65536 : cap * 2;
			data = sg_realloc(data, cap);
		}
		size_t n = fread(data + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
		if (len > SG_KEY_FILE_MAX) {
			sg_error_set(err, "%s: larger than %u bytes", path, SG_KEY_FILE_MAX);
			goto out;
		}
	}
	if (ferror(f)) {
		sg_error_set(err, "%s: read error", path);
		goto out;
	}
	ret = sg_key_load_mem(data, len, passphrase, key_r, status_r, err);
	if (ret < 0)
		sg_error_prefix(err, "%s", path);
out:
	if (data != NULL)
		explicit_bzero(data, len);
	free(data);
	fclose(f);
	return ret;
}

int sg_x509_cert_pem(const unsigned char *cert, size_t len, struct sg_buf *out, struct sg_error *err)
{
	if (len >= 11 && memcmp(cert, "-----BEGIN ", 11) == 0)
		return sg_buf_append(out, cert, len) == 1 ? 1 : -1;
	const unsigned char *p = cert;
	X509 *x = len <= LONG_MAX ? d2i_X509(NULL, &p, (long)len) : NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long n = 0;
	int ret = -1;

	if (x != NULL && bio != NULL && PEM_write_bio_X509(bio, x) == 1 && (n = BIO_get_mem_data(bio, &pem)) > 0)
		ret = sg_buf_append(out, pem, (size_t)n) == 1 ? 1 : -1;
	else
		sg_error_set(err, "certificate is neither PEM nor DER");
	X509_free(x);
	BIO_free(bio);
	return ret;
}

int sg_key_load_x509_parts(const void *key_pem, size_t key_len, const void *cert, size_t cert_len,
			   struct sg_key **key_r, enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_buf both;
	int ret = -1;

	if (status_r != NULL)
		*status_r = SG_CRYPTO_BAD_KEY;
	sg_buf_init(&both, SG_KEY_FILE_MAX);
	if (sg_buf_append(&both, key_pem, key_len) == 1 && sg_buf_append(&both, "\n", 1) == 1 &&
	    sg_x509_cert_pem(cert, cert_len, &both, err) == 1)
		ret = sg_key_load_mem(both.data, both.len, NULL, key_r, status_r, err);
	else if (err != NULL && err->msg == NULL)
		sg_error_set(err, "key and certificate too large");
	sg_buf_free_secret(&both);
	return ret;
}

enum sg_key_kind sg_key_kind(const struct sg_key *key)
{
	return key->kind;
}

bool sg_key_has_secret(const struct sg_key *key)
{
	return key->kind == SG_KEY_PGP ? sg_pgp_key_has_secret(key->pgp) : sg_x509_key_has_secret(key->x509);
}

const char *sg_key_fingerprint(const struct sg_key *key)
{
	return key->kind == SG_KEY_PGP ? sg_pgp_key_fingerprint(key->pgp) : sg_x509_key_fingerprint(key->x509);
}

int sg_key_matches_addr(const struct sg_key *key, const char *addr)
{
	return key->kind == SG_KEY_PGP ? sg_pgp_key_matches_addr(key->pgp, addr)
				       : sg_x509_key_matches_addr(key->x509, addr);
}

static int usable(const struct sg_key *key, bool for_sign, time_t now, enum sg_crypto_status *status_r,
		  struct sg_error *err)
{
	if (key->kind == SG_KEY_PGP)
		return sg_pgp_key_usable(key->pgp, for_sign, now, status_r, err);
	int r = sg_x509_key_usable(key->x509, for_sign, now, status_r, err);
	return r < 0 ? 0 : r;
}

int sg_key_usable_for_encrypt(const struct sg_key *key, time_t now, enum sg_crypto_status *status_r,
			      struct sg_error *err)
{
	return usable(key, false, now, status_r, err);
}

int sg_key_usable_for_sign(const struct sg_key *key, time_t now, enum sg_crypto_status *status_r,
			   struct sg_error *err)
{
	return usable(key, true, now, status_r, err);
}

struct sg_pgp_key *sg_key_pgp(const struct sg_key *key)
{
	return key != NULL && key->kind == SG_KEY_PGP ? key->pgp : NULL;
}

struct sg_x509_key *sg_key_x509(const struct sg_key *key)
{
	return key != NULL && key->kind == SG_KEY_X509 ? key->x509 : NULL;
}

void sg_key_free(struct sg_key **kp)
{
	struct sg_key *k = *kp;

	if (k == NULL)
		return;
	sg_pgp_key_free(&k->pgp);
	sg_x509_key_free(&k->x509);
	free(k);
	*kp = NULL;
}
