/* Re-wrap an OpenPGP message's session key for a new key (RFC 4880 s5.1,
 * RFC 6637): decrypt the old key's PKESK, write one for the new key. */
#ifndef SG_CRYPTO_PGP_REWRAP_H
#define SG_CRYPTO_PGP_REWRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/error.h"

/* OpenPGP public-key algorithm ids (RFC 4880 s9.1). */
enum sg_pgp_pk_algo {
	SG_PGP_PK_RSA = 1,
	SG_PGP_PK_RSA_E = 2,
	SG_PGP_PK_ECDH = 18,
};

/* The (sub)keys of one or more transferable keys, v4 only. Opaque. */
struct sg_pgp_keyring;

/* Parse public or secret key packets (armored or binary; data borrowed for
 * the call only). Secret parts are decrypted with passphrase (may be NULL
 * for unprotected keys): S2K usage 0, 254 and 255 with simple, salted or
 * iterated+salted S2K and AES-CFB (RFC 4880 s3.7, s5.5.3). Keys of other
 * algorithms are listed but unusable. 1 ok; -1 (bad data, wrong
 * passphrase: err). */
int sg_pgp_keyring_load(const unsigned char *data, size_t len, const char *passphrase,
			struct sg_pgp_keyring **kr_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_pgp_keyring_free(struct sg_pgp_keyring **kr);
/* Move every key of *from into *into (which may be NULL: then *from is
 * taken as it is); *from is freed and set to NULL. */
void sg_pgp_keyring_merge(struct sg_pgp_keyring **into, struct sg_pgp_keyring **from);
/* Number of (sub)keys; fingerprint (20 octets, v4 SHA-1) of the i-th. */
size_t sg_pgp_keyring_count(const struct sg_pgp_keyring *kr);
const unsigned char *sg_pgp_keyring_fpr(const struct sg_pgp_keyring *kr, size_t i);
/* Index of the (sub)key to encrypt to: encryption key flags (or none and
 * an encryption algorithm), supported algorithm, newest. -1 if none. */
long sg_pgp_keyring_encryption_key(const struct sg_pgp_keyring *kr);

/* ---- session keys (the PKESK payload: algo || key || checksum) ---- */

struct sg_pgp_session_key {
	unsigned sym_algo;
	unsigned char key[32];
	size_t key_len;
};

/* Decrypt a v3 PKESK body with the i-th key of kr (needs its secret).
 * 1 ok; 0 the key does not fit (algorithm); -1 failed (err). */
int sg_pgp_pkesk_decrypt(const unsigned char *body, size_t len, const struct sg_pgp_keyring *kr,
			 size_t i, struct sg_pgp_session_key *sk_r,
			 struct sg_error *err) SG_WARN_UNUSED;
/* Append a whole PKESK v3 packet (header included) for the i-th key of kr;
 * wildcard: key id zero (RFC 4880 s5.1 anonymous recipient). 1; -1. */
int sg_pgp_pkesk_encrypt(const struct sg_pgp_session_key *sk, const struct sg_pgp_keyring *kr,
			 size_t i, bool wildcard, struct sg_buf *out,
			 struct sg_error *err) SG_WARN_UNUSED;

struct sg_pgp_rewrap_info {
	size_t removed;        /* PKESKs of the old key taken out */
	size_t dropped;        /* PKESKs of drop_kr's keys taken out */
	size_t kept;           /* other PKESKs/SKESKs, copied byte for byte */
	bool new_already;      /* the new key already had a PKESK: none added */
	size_t data_off;       /* offset of the encrypted data packet in the input */
	size_t out_data_off;   /* ... and in the output (bytes from there on equal) */
	unsigned sym_algo;     /* the session key's algorithm */
};

/* Rewrite a binary OpenPGP message: every PKESK that the old keyring can
 * decrypt (key id match, or a wildcard id that decrypts) is removed and one
 * PKESK for new_kr's encryption key takes the first one's place. Every
 * other octet is copied unchanged; the encrypted data packet is never
 * parsed beyond its framing. 1 rewritten; 0 the old key is not a recipient
 * (nothing appended); -1 error. */
int sg_pgp_rewrap(const unsigned char *msg, size_t len, const struct sg_pgp_keyring *old_kr,
		  const struct sg_pgp_keyring *new_kr, struct sg_buf *out,
		  struct sg_pgp_rewrap_info *info_r, struct sg_error *err) SG_WARN_UNUSED;

/* Re-wrapping with choices. drop_kr (may be NULL): PKESKs addressed to
 * its keys (a lost key, known by its public part) are removed too.
 * keep_old: the old key's PKESKs stay (the old key is the escrow's
 * recovery key) and the new key's PKESK follows the first of them; a
 * message that already has the new key and nothing to drop is left (0). */
struct sg_pgp_rewrap_req {
	const struct sg_pgp_keyring *old_kr;
	const struct sg_pgp_keyring *new_kr;
	const struct sg_pgp_keyring *drop_kr;
	bool keep_old;
	/* msg is only the start of the message (up to somewhere in the
	 * encrypted data packet, whose framing is then not checked): used to
	 * patch a large armored message without decoding all of it. */
	bool prefix_only;
};
int sg_pgp_rewrap_req(const unsigned char *msg, size_t len, const struct sg_pgp_rewrap_req *req,
		      struct sg_buf *out, struct sg_pgp_rewrap_info *info_r,
		      struct sg_error *err) SG_WARN_UNUSED;

#endif
