/* Secret wiping and constant-time comparison (OpenSSL does the work). */
#include "util/secret.h"

#include <openssl/crypto.h>
#include <stdlib.h>

void sg_memwipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		OPENSSL_cleanse(p, n);
}

void sg_secret_free(void *pp, size_t n)
{
	void **p = pp;
	if (*p == NULL)
		return;
	sg_memwipe(*p, n);
	free(*p);
	*p = NULL;
}

int sg_memeq_ct(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}
