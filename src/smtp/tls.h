/* A server SSL_CTX for STARTTLS (RFC 3207): TLS 1.2 or newer, certificate
 * and key from PEM files. */
#ifndef SG_SMTP_TLS_H
#define SG_SMTP_TLS_H

#include "util/error.h"

struct ssl_ctx_st;

/* A new context (free with SSL_CTX_free), or NULL with err set. */
struct ssl_ctx_st *sg_smtp_tls_ctx_new(const char *cert_file, const char *key_file,
				       struct sg_error *err);

#endif
