/* OpenPGP over librnp 0.16 (RFC 4880): keys, encrypt(+sign), detached
 * signatures, decrypt(+verify). Bytes in, armored bytes out; no MIME here. */
#ifndef SG_CRYPTO_PGP_H
#define SG_CRYPTO_PGP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "crypto/crypto.h"
#include "mime/seal.h"
#include "util/buf.h"
#include "util/error.h"

/* One transferable key (primary + subkeys, optionally secret). Its bytes
 * and their SHA-256 are kept; operations import them into the calling
 * thread's librnp context (see the key cache below) once. Opaque. */
struct sg_pgp_key;

/* Key cache. librnp objects are not thread-safe, so each thread has its
 * own rnp_ffi_t holding the keys its operations used, imported once and
 * found again by fingerprint + SHA-256 of the key's bytes (different bytes
 * for a fingerprint replace the old import). At most the limit's number of
 * keys stay per thread (least recently used evicted; an operation needing
 * more goes over the limit for its duration). A cached secret key is used
 * only by an operation given that key: signing names its key; before a
 * decryption, cached secret keys of other operations that the message is
 * addressed to are taken out of the context; a passphrase is handed to
 * librnp only for the operation's own keys. Evicted keys and the whole
 * cache at thread exit are freed by librnp, which wipes secret material. */
#define SG_PGP_CACHE_DEFAULT 64
/* Set the per-thread limit (>= 1) for every thread; applied at the next
 * operation of each thread. */
void sg_pgp_cache_set_limit(size_t max_keys);
struct sg_pgp_cache_stats {
	size_t keys;               /* keys held now by the calling thread */
	unsigned long hits;        /* key found already imported */
	unsigned long misses;      /* key imported */
	unsigned long evictions;   /* keys removed (limit, or bytes changed) */
};
/* The calling thread's figures (zero if it has no cache yet). */
void sg_pgp_cache_stats(struct sg_pgp_cache_stats *stats_r);
/* Free the calling thread's cache now (secret keys wiped by librnp). */
void sg_pgp_cache_thread_free(void);

/* Does data look like OpenPGP (ASCII armor header, or a binary packet tag
 * of a key packet, RFC 4880 s4.2)? */
bool sg_pgp_looks_like_key(const void *data, size_t len);
/* Load exactly one transferable key (data and passphrase are copied).
 * -1 with status BAD_KEY (not a key, several keys, wrong passphrase; the
 * message says that v5/v6 keys are not read by librnp 0.16). */
int sg_pgp_key_load_mem(const void *data, size_t len, const char *passphrase,
			struct sg_pgp_key **key_r, enum sg_crypto_status *status_r,
			struct sg_error *err) SG_WARN_UNUSED;
const char *sg_pgp_key_fingerprint(const struct sg_pgp_key *k);
bool sg_pgp_key_has_secret(const struct sg_pgp_key *k);
/* 1 if a user ID's address (the <...> part, or the whole user ID) equals
 * addr: local part exact, domain case-insensitive. */
int sg_pgp_key_matches_addr(const struct sg_pgp_key *k, const char *addr);
/* 1 usable at now; 0 with status_r KEY_REVOKED, KEY_EXPIRED ("key expired
 * on 2026-01-01"), BAD_KEY (no encryption/signing (sub)key) and err. */
int sg_pgp_key_usable(const struct sg_pgp_key *k, bool for_sign, time_t now,
		      enum sg_crypto_status *status_r, struct sg_error *err);
/* 1 if keyid (16 hex digits) is the key ID of the primary key or of a
 * subkey of k, 0 if not. */
int sg_pgp_key_has_keyid(const struct sg_pgp_key *k, const char *keyid);
void sg_pgp_key_free(struct sg_pgp_key **k);

/* The recipients' key IDs (upper-case hex, owned array of owned strings)
 * of every ASCII-armored OpenPGP message in a mail (PGP/MIME or inline),
 * read from the PKESK packets without decrypting anything. *hidden_r: a
 * recipient is hidden (wildcard key ID, gpg --throw-keyids). 1; -1. */
int sg_pgp_message_recipients(const void *msg, size_t len, char ***keyids_r, size_t *n_r,
			      bool *hidden_r, struct sg_error *err) SG_WARN_UNUSED;

/* Input given as pieces so that a caller can encrypt header + body
 * without joining them first. */
struct sg_pgp_piece {
	const void *data;
	size_t len;
};

/* Encrypt the pieces to every recipient (one session key, one PKESK each),
 * AES-256, SEIPD v1 with MDC, no compression; sign inside the encryption
 * (RFC 3156 s6.2) when signer is not NULL. The armored message is appended
 * to out; on failure out is left as it was. */
int sg_pgp_encrypt(const struct sg_pgp_piece *pieces, size_t n_pieces,
		   const struct sg_pgp_key *const *recips, size_t n_recips,
		   const struct sg_pgp_key *signer, struct sg_buf *out,
		   enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;

/* Detached armored SHA-256 signature over data (RFC 3156 s5). */
int sg_pgp_sign_detached(const void *data, size_t len, const struct sg_pgp_key *signer,
			 struct sg_buf *out, enum sg_crypto_status *status_r,
			 struct sg_error *err) SG_WARN_UNUSED;

/* What decryption and verification found. Strings are owned. */
struct sg_pgp_info {
	bool authenticated;        /* MDC/AEAD checked */
	enum sg_sig_status sig;    /* of the first signature, SG_SIG_NONE if none */
	char *signer;              /* fingerprint (or key ID when unknown) */
	char *decrypted_with;      /* primary fingerprint of the key used */
	char *warning;             /* decrypted with an expired/revoked key */
};
void sg_pgp_info_clear(struct sg_pgp_info *info);

/* Decrypt an OpenPGP message (armored or binary) with the secret keys,
 * verifying embedded signatures against keys + verify_keys. The plaintext
 * is appended to out only after the integrity check passed. -1 with status
 * WRONG_KEY (not encrypted to any of keys), TAMPERED (MDC/AEAD failure),
 * MALFORMED, NO_KEY (no secret key given), BAD_KEY (passphrase),
 * UNSUPPORTED (no integrity protection, SEIPDv2/v6: not in librnp 0.16). */
int sg_pgp_decrypt(const void *data, size_t len, struct sg_key *const *keys, size_t n_keys,
		   struct sg_key *const *verify_keys, size_t n_verify, time_t now,
		   struct sg_buf *out, struct sg_pgp_info *info_r,
		   enum sg_crypto_status *status_r, struct sg_error *err) SG_WARN_UNUSED;

/* Verify a detached signature over data. 1 with info_r->sig set (the
 * verdict); -1 with status MALFORMED when sig is no signature. */
int sg_pgp_verify_detached(const void *data, size_t len, const void *sig, size_t sig_len,
			   struct sg_key *const *verify_keys, size_t n_verify, time_t now,
			   struct sg_pgp_info *info_r, enum sg_crypto_status *status_r,
			   struct sg_error *err) SG_WARN_UNUSED;

#endif
