/* Web Key Directory (draft-koch-openpgp-webkey-service): the local-part
 * hash, strict parsing of request paths, and the published tree. */
#ifndef SG_KEYS_WKD_H
#define SG_KEYS_WKD_H

#include <stddef.h>

#include "util/error.h"

struct sg_store;

#define SG_WKD_HASH_LEN 32      /* z-base-32 of a 160-bit SHA-1 */
#define SG_WKD_PATH_MAX 1024    /* longer request paths are refused */

/* z-base-32 (draft §3.1 names it; Zooko's alphabet), as used for the
 * hash: 20 bytes in, 32 characters out (written to out, NUL-terminated). */
void sg_zbase32_encode(const unsigned char *in, size_t len, char *out, size_t out_size);

/* For "Joe.Doe@Example.ORG": hash_r = zbase32(SHA-1("joe.doe")) and
 * domain_r = "example.org" (both owned, may be NULL if not wanted).
 * Only ASCII letters are lower-cased (§3.1). -1 for a malformed address. */
int sg_wkd_hash(const char *addr, char **hash_r, char **domain_r, struct sg_error *err) SG_WARN_UNUSED;

enum sg_wkd_req_type {
	SG_WKD_REQ_KEY = 1,            /* .../hu/HASH */
	SG_WKD_REQ_POLICY,             /* .../policy */
	SG_WKD_REQ_SUBMISSION_ADDRESS, /* .../submission-address */
};
struct sg_wkd_req {
	enum sg_wkd_req_type type;
	char *domain;                  /* advanced layout; NULL for direct */
	char *hash;                    /* SG_WKD_REQ_KEY */
};
/* Parse a request path (no query string): /.well-known/openpgpkey/hu/H,
 * /.well-known/openpgpkey/DOMAIN/hu/H, .../policy, .../submission-address.
 * 1 ok, 0 not a WKD path (404), -1 never. Refuses "..", "%", NUL bytes,
 * empty segments, over-long paths, hashes not in the z-base-32 alphabet. */
int sg_wkd_parse_path(const char *path, size_t len, struct sg_wkd_req *req_r);
void sg_wkd_req_clear(struct sg_wkd_req *req);

/* Write the WKD tree for the store's OpenPGP keys below dir:
 * dir/.well-known/openpgpkey/{policy,hu/H,DOMAIN/{policy,hu/H,submission-address}}
 * (both layouts). submission_address may be NULL or "". Returns the
 * number of key files written (per layout), or -1. */
int sg_wkd_export(struct sg_store *store, const char *dir, const char *submission_address,
		  struct sg_error *err) SG_WARN_UNUSED;

#endif
