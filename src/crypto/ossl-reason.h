/* OpenSSL's error queue as one reason in an sg_error, for the crypto/
 * files over OpenSSL (the CMS re-wrap, the key store's PEM split). */
#ifndef SG_CRYPTO_OSSL_REASON_H
#define SG_CRYPTO_OSSL_REASON_H

#include "util/error.h"

/* err = "what: <OpenSSL's first queued error>" (or "what" alone when the
 * queue is empty); the queue is emptied. */
void sg_ossl_reason(struct sg_error *err, const char *what);

#endif
