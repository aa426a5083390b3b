/* Message-level S/MIME (RFC 8551): application/pkcs7-mime and
 * multipart/signed entities around the CMS layer in crypto/smime.c. */
#include "crypto/smime.h"

int sg_smime_seal(const unsigned char *msg, size_t len, const struct sg_seal_req *req,
		  struct sg_buf *out, enum sg_seal_outcome *outcome_r,
		  enum sg_crypto_status *status_r, struct sg_error *err)
{
	*status_r = SG_CRYPTO_UNSUPPORTED;
	sg_error_set(err, "smime: seal not yet implemented");
	return -1;
}

int sg_smime_unseal(const unsigned char *msg, size_t len, const struct sg_unseal_req *req,
		    struct sg_buf *out, struct sg_unseal_result *res,
		    enum sg_crypto_status *status_r, struct sg_error *err)
{
	*status_r = SG_CRYPTO_UNSUPPORTED;
	sg_error_set(err, "smime: unseal not yet implemented");
	return -1;
}
