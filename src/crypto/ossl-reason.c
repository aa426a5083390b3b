/* OpenSSL's error queue turned into our error text (crypto/ only: nothing
 * outside crypto/ includes OpenSSL). */
#include "crypto/ossl-reason.h"

#include <openssl/err.h>

void sg_ossl_reason(struct sg_error *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];
	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		sg_error_set(err, "%s: %s", what, buf);
	} else {
		sg_error_set(err, "%s", what);
	}
	ERR_clear_error();
}
