/* Re-wrap the content-encryption key of CMS EnvelopedData/AuthEnvelopedData
 * (RFC 5652 s6, RFC 5083) for a new certificate; the encrypted content stays. */
#ifndef SG_CRYPTO_CMS_REWRAP_H
#define SG_CRYPTO_CMS_REWRAP_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/error.h"

/* A certificate and, for the old recipient, its private key. Opaque. */
struct sg_cms_party;

/* PEM: certificate(s) and an optional private key (encrypted PEM keys use
 * passphrase, may be NULL). The first certificate is the party's. data is
 * borrowed for the call. 1; -1. */
int sg_cms_party_load(const unsigned char *data, size_t len, const char *passphrase,
		      bool need_key, struct sg_cms_party **p_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_cms_party_free(struct sg_cms_party **p);

struct sg_cms_rewrap_info {
	bool authenticated;   /* AuthEnvelopedData */
	bool agree;           /* the old recipient was KeyAgreeRecipientInfo (ECDH) */
	size_t recipients;    /* RecipientInfos after the change */
	size_t content_len;   /* octets of encryptedContent, checked equal */
};

/* Decrypt the CEK from the old party's RecipientInfo (KeyTrans RSA or
 * KeyAgree ECDH), replace that RecipientInfo in place with one for the new
 * certificate, DER appended to out. The encryptedContent octets of the
 * result are compared with the input's before returning. 1 rewritten;
 * 0 the old party is not a recipient (nothing appended); -1 error. */
int sg_cms_rewrap(const unsigned char *der, size_t len, const struct sg_cms_party *old_p,
		  const struct sg_cms_party *new_p, struct sg_buf *out,
		  struct sg_cms_rewrap_info *info_r, struct sg_error *err) SG_WARN_UNUSED;

/* The encryptedContent octets of EnvelopedData/AuthEnvelopedData DER/BER,
 * appended to out (for checks). 1; 0 none (detached); -1 not parseable. */
int sg_cms_encrypted_content(const unsigned char *der, size_t len, struct sg_buf *out,
			     struct sg_error *err) SG_WARN_UNUSED;

#endif
