/* What the key store needs to know about an OpenPGP key beyond
 * crypto/crypto.h: its user-ID addresses, creation and expiry, the public
 * part on its own, and generating a new key. (Candidates for crypto/ once
 * its API grows; kept here so that crypto.h stays the agreed contract.) */
#ifndef SG_KEYS_PGP_META_H
#define SG_KEYS_PGP_META_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct sg_pgp_meta {
	char *fingerprint;          /* primary key, upper-case hex */
	char *algo;                 /* "EDDSA ed25519", "RSA 3072", ... */
	char **addrs;               /* addresses in the user IDs, lower-cased */
	size_t n_addrs;
	int64_t created;
	int64_t expires;            /* unix time, 0 = never */
	unsigned char *public_data; /* binary transferable public key */
	size_t public_len;
	unsigned char *secret_data; /* binary secret key, NULL if none; wiped on clear */
	size_t secret_len;
};

/* Read the first primary key in data (armored or binary). 1, or -1 when
 * there is no OpenPGP key in it. */
int sg_pgp_meta_read(const void *data, size_t len, struct sg_pgp_meta *meta_r,
		     struct sg_error *err) SG_WARN_UNUSED;
/* Generate a key for addr: type "ed25519" (EdDSA + X25519 subkey) or
 * "rsa3072" (RSA 3072 + RSA 3072 subkey); no expiry, unprotected secret
 * (it is sealed under the master key before it is stored). */
int sg_pgp_meta_generate(const char *addr, const char *type, struct sg_pgp_meta *meta_r,
			 struct sg_error *err) SG_WARN_UNUSED;
void sg_pgp_meta_clear(struct sg_pgp_meta *meta);

#endif
