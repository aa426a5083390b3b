/* Autocrypt Level 1 header harvesting (Autocrypt spec 1.1, 2.1 and 2.3):
 * which inbound header may be taken as a peer's key, and only from mail
 * whose sender domain passed DKIM at a verifier we trust. */
#ifndef SG_KEYS_AUTOCRYPT_H
#define SG_KEYS_AUTOCRYPT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

struct sg_msg_view;

/* One parsed Autocrypt header. Owned. */
struct sg_autocrypt {
	char *addr;                 /* lower-case */
	bool prefer_mutual;         /* prefer-encrypt=mutual */
	unsigned char *keydata;     /* binary OpenPGP key (base64-decoded) */
	size_t keylen;
};

/* Parse one header value ("addr=a@b; [prefer-encrypt=mutual;] keydata=..."):
 * 1 valid, 0 invalid with err (2.1: a missing addr or keydata, or an
 * unknown attribute not starting with '_', makes the header invalid). */
int sg_autocrypt_parse(const char *value, struct sg_autocrypt *ac_r, struct sg_error *err);
void sg_autocrypt_clear(struct sg_autocrypt *ac);

/* Does this Authentication-Results value, from authserv_id, report
 * dkim=pass with a signing domain (header.d, or header.i's domain) equal
 * to domain or a parent of it (RFC 7489 3.1.1 relaxed alignment, without
 * the public-suffix list: a parent must have a dot)? 1 yes, 0 no. */
int sg_autocrypt_dkim_pass(const char *ar_value, const char *authserv_id, const char *domain);

/* The key a message offers for harvesting: one From address, DKIM pass
 * for its domain from authserv_id, and exactly one valid Autocrypt header
 * whose addr is the From address (2.3: several count as none). 1 with
 * *ac_r, 0 not harvestable (err says why). */
int sg_autocrypt_from_message(const struct sg_msg_view *v, const char *authserv_id,
			      struct sg_autocrypt *ac_r, struct sg_error *err) SG_WARN_UNUSED;

#endif
