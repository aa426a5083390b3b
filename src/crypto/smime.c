/* S/MIME keys and the CMS layer over OpenSSL 3: X.509 certificates with
 * optional private keys, EnvelopedData/AuthEnvelopedData and SignedData. */
#include "crypto/smime.h"

#include <stdlib.h>

static int not_yet(enum sg_crypto_status *status_r, struct sg_error *err)
{
	*status_r = SG_CRYPTO_UNSUPPORTED;
	sg_error_set(err, "smime: not yet implemented");
	return -1;
}

int sg_x509_key_load_mem(const void *data, size_t len, const char *passphrase,
			 struct sg_x509_key **key_r, enum sg_crypto_status *status_r,
			 struct sg_error *err)
{
	*key_r = NULL;
	return not_yet(status_r, err);
}

const char *sg_x509_key_fingerprint(const struct sg_x509_key *k) { return ""; }
bool sg_x509_key_has_secret(const struct sg_x509_key *k) { return false; }
int sg_x509_key_matches_addr(const struct sg_x509_key *k, const char *addr) { return 0; }

int sg_x509_key_usable(const struct sg_x509_key *k, bool for_sign, time_t now,
		       enum sg_crypto_status *status_r, struct sg_error *err)
{
	not_yet(status_r, err);
	return 0;
}

void sg_x509_key_free(struct sg_x509_key **k)
{
	*k = NULL;
}
