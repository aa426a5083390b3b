/* The STARTTLS server context. Only OpenSSL's own defaults for ciphers: we
 * set the floor (TLS 1.2) and the identity, nothing hand-tuned. */
#include "smtp/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

static void ssl_error(struct sg_error *err, const char *what, const char *file)
{
	const char *reason = ERR_reason_error_string(ERR_get_error());

	sg_error_set(err, "%s%s%s: %s", what, file != NULL ? " " : "", file != NULL ? file : "",
		     reason != NULL ? reason : "unknown OpenSSL error");
	ERR_clear_error();
}

SSL_CTX *sg_smtp_tls_ctx_new(const char *cert_file, const char *key_file, struct sg_error *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		ssl_error(err, "SSL_CTX_new", NULL);
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		ssl_error(err, "TLS minimum version", NULL);
		goto fail;
	}
	/* No session tickets or cache: every session is a fresh handshake,
	 * and there is no ticket key to manage. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		ssl_error(err, "certificate", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		ssl_error(err, "private key", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_error(err, "key does not match certificate", cert_file);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
