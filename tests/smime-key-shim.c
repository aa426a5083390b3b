/* TEMPORARY: minimal sg_key handles over X.509 only, for smime-tool until
 * crypto/key.c (pgp branch) is merged. Delete at that merge. */
#include <stdio.h>
#include <stdlib.h>

#include "crypto/crypto.h"
#include "crypto/smime.h"
#include "util/buf.h"
#include "util/mem.h"

struct sg_key {
	struct sg_x509_key *x509;
};

struct sg_x509_key *sg_key_x509(const struct sg_key *key);

struct sg_x509_key *sg_key_x509(const struct sg_key *key)
{
	return key->x509;
}

int sg_key_load_file(const char *path, const char *passphrase, struct sg_key **key_r,
		     enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_buf b;
	unsigned char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "rb");
	int ret = -1;

	*key_r = NULL;
	*status_r = SG_CRYPTO_INTERNAL;
	sg_buf_init(&b, 1u << 20);
	if (f == NULL) {
		sg_error_set(err, "cannot open");
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (!sg_buf_append(&b, chunk, n))
			goto out;
	struct sg_key *k = sg_calloc(1, sizeof(*k));
	if (sg_x509_key_load_mem(b.data, b.len, passphrase, &k->x509, status_r, err) != 1) {
		free(k);
		goto out;
	}
	*key_r = k;
	ret = 1;
out:
	fclose(f);
	sg_buf_free(&b);
	return ret;
}

void sg_key_free(struct sg_key **kp)
{
	if (*kp == NULL)
		return;
	sg_x509_key_free(&(*kp)->x509);
	free(*kp);
	*kp = NULL;
}
