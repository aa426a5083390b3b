/* Names of the crypto failure classes, for logs, CLI messages and tests. */
#include "crypto/crypto.h"

#include <stddef.h>

static const char *const status_names[] = {
	[SG_CRYPTO_OK] = "ok",
	[SG_CRYPTO_NO_KEY] = "no key",
	[SG_CRYPTO_BAD_KEY] = "bad key",
	[SG_CRYPTO_KEY_EXPIRED] = "key expired",
	[SG_CRYPTO_KEY_REVOKED] = "key revoked",
	[SG_CRYPTO_WRONG_KEY] = "wrong key",
	[SG_CRYPTO_TAMPERED] = "tampered",
	[SG_CRYPTO_UNKNOWN_SIGNER] = "unknown signer",
	[SG_CRYPTO_MALFORMED] = "malformed",
	[SG_CRYPTO_UNSUPPORTED] = "unsupported",
	[SG_CRYPTO_INTERNAL] = "internal error",
};

const char *sg_crypto_status_name(enum sg_crypto_status st)
{
	size_t i = (size_t)st;

	if (i >= sizeof(status_names) / sizeof(status_names[0]) || status_names[i] == NULL)
		return "unknown status";
	return status_names[i];
}
