/* Gateway-to-gateway domain security with forward secrecy (doc/domain.md):
 * a long-term domain signing key, short-lived encryption keys it certifies,
 * rotation with crypto-erasure, publication, and sealing/opening mail. */
#ifndef SG_DOMAIN_DOMAIN_H
#define SG_DOMAIN_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config/config.h"
#include "crypto/crypto.h"
#include "crypto/domcert.h"
#include "util/buf.h"
#include "util/error.h"

struct sg_store;
struct sg_master_key;
struct sg_msg_view;
struct sg_domain;

/* The discovery path, on the peer domain's own host name over HTTPS:
 * https://DOMAIN/.well-known/sealgate/domain-keys */
#define SG_DOMAIN_BUNDLE_PATH "/.well-known/sealgate/domain-keys"
/* The outer marker header and the binding field inside the signed data. */
#define SG_DOMAIN_MARKER "Sealgate-Domain"
#define SG_DOMAIN_BINDING "Sealgate-Domain-Binding"
/* private_keys rows (owner SG_DOMAIN_OWNER, fingerprint of the certificate). */
#define SG_DOMAIN_OWNER "domain"
#define SG_DOMAIN_P_SIGN "domain-sign"       /* long-term key, sealed under the master key */
#define SG_DOMAIN_P_DECRYPT "domain-decrypt" /* short-lived key, PKCS#8 under its epoch key */
#define SG_DOMAIN_P_EPOCH "domain-epoch"     /* that epoch key, sealed under the master key */

/* The domain clock: time(NULL), or the test-only override SEALGATE_NOW
 * (unix seconds) so that tests can move through key windows. */
time_t sg_domain_now(void);
/* Is domain security configured (domain_names set)? */
bool sg_domain_configured(const struct sg_config *cfg);

/* cfg and mk (NULL: nothing that needs private keys works) are borrowed
 * for the lifetime; the domain state opens its own store connection
 * (cfg->store or the state dir's SQLite). Checks the domain_* settings.
 * 1 or -1. Thread-safe afterwards (one mutex). */
int sg_domain_new(const struct sg_config *cfg, const struct sg_master_key *mk,
		  struct sg_domain **d_r, struct sg_error *err) SG_WARN_UNUSED;
void sg_domain_free(struct sg_domain **d);
/* 1 if domain (case-insensitive) is one of domain_names. */
int sg_domain_is_ours(const struct sg_domain *d, const char *domain);

/* ---- keys.c: our keys ---- */
/* Create the long-term signing key if there is none: 1 created, 0 existed. */
int sg_domain_init(struct sg_domain *d, time_t now, struct sg_error *err) SG_WARN_UNUSED;
struct sg_domain_rotation {
	unsigned generated;   /* short-lived keys made */
	unsigned destroyed;   /* private keys erased (window + grace over) */
};
/* Generate keys so that domain_keys_ahead windows from now on have one,
 * and destroy every short-lived private key whose window ended more than
 * domain_key_grace ago (both rows, then the WAL truncated). One instance
 * at a time (store lock). Cached private keys are dropped. 1 or -1. */
int sg_domain_rotate(struct sg_domain *d, time_t now, struct sg_domain_rotation *r,
		     struct sg_error *err) SG_WARN_UNUSED;
/* domain_names against the domains the signing certificate names: 1 the
 * same (or no signing key yet), 0 different (err names `domain rekey`), -1. */
int sg_domain_check_names(struct sg_domain *d, struct sg_error *err) SG_WARN_UNUSED;
/* A new long-term signing key naming domain_names (after they changed):
 * the old one is destroyed, its short-lived keys stay for decryption until
 * their window + grace ends but are no longer published, and keys for the
 * windows ahead are issued by the new one. Peers must pin the new key
 * (its fingerprint in their domain_peers replaces their pin). 1 or -1. */
int sg_domain_rekey(struct sg_domain *d, time_t now, struct sg_domain_rotation *r,
		    struct sg_error *err) SG_WARN_UNUSED;
/* Human-readable status: signing key, each published key with its window
 * and whether its private part still exists, then the peer domains whose
 * signing keys we trust (fingerprint, configured or pinned on first use,
 * since when). */
/* Forget a peer domain's stored signing key (and its cached bundle), e.g.
 * after the peer's `domain rekey`: the next message to or from it trusts
 * its current key again per domain_peer_trust. 1 with *fpr_r (owned) the
 * key forgotten, 0 none was stored, -1. A running serve drops what it
 * holds at its next rotation (hourly) or restart. */
int sg_domain_peer_forget(struct sg_domain *d, const char *domain, char **fpr_r,
			  struct sg_error *err) SG_WARN_UNUSED;
int sg_domain_status(struct sg_domain *d, time_t now, struct sg_buf *out,
		     struct sg_error *err) SG_WARN_UNUSED;
/* Certificate and decrypted private key of one short-lived key (PEM), for
 * interoperability checks with `openssl cms`. 1, 0 destroyed/unknown, -1. */
int sg_domain_key_pem(struct sg_domain *d, const char *fpr, struct sg_buf *out,
		      struct sg_error *err) SG_WARN_UNUSED;
/* Our short-lived keys whose private part still exists and whose window
 * + grace has not ended at now, for decryption: a referenced snapshot,
 * used without the lock, given back with sg_domain_keyset_release. It is
 * read from the store again after a minute, at a rotation, or when
 * refresh is set (a message names a key the snapshot lacks). A rotation
 * that destroys keys waits until every snapshot holding them is given
 * back and wiped before it returns. 1 or -1. */
struct sg_domain_keyset;
int sg_domain_keys_get(struct sg_domain *d, time_t now, bool refresh,
		       struct sg_domain_keyset **ks_r, struct sg_error *err) SG_WARN_UNUSED;
/* The keys of a snapshot (borrowed while it is held). */
size_t sg_domain_keyset_keys(const struct sg_domain_keyset *ks, struct sg_key *const **keys_r);
void sg_domain_keyset_release(struct sg_domain *d, struct sg_domain_keyset **ks);
void sg_domain_lock(struct sg_domain *d);
void sg_domain_unlock(struct sg_domain *d);

/* ---- publish.c: bundles ---- */
/* Our bundle (PEM): the signing certificate, then every short-lived
 * certificate whose window has not ended at now. 1 (0: no keys yet), -1. */
int sg_domain_bundle_build(struct sg_store *store, time_t now, struct sg_buf *out,
			   struct sg_error *err) SG_WARN_UNUSED;
/* Write DIR/.well-known/sealgate/domain-keys. */
int sg_domain_export(struct sg_domain *d, const char *dir, time_t now,
		     struct sg_error *err) SG_WARN_UNUSED;
/* A peer's bundle, checked: the first certificate is a self-signed domain
 * signing certificate naming domain, every further one a domain encryption
 * certificate it issued naming domain. */
struct sg_domain_bundle {
	struct sg_domcert_info signing;
	struct sg_domcert_info *enc;
	size_t n_enc;
};
/* 1 with *b_r (clear with sg_domain_bundle_clear), -1 refused (err says why). */
int sg_domain_bundle_parse(const void *data, size_t len, const char *domain,
			   struct sg_domain_bundle *b_r, struct sg_error *err) SG_WARN_UNUSED;
/* Index of the encryption certificate valid at now with the most time
 * left, or -1 when none is. */
long sg_domain_bundle_pick(const struct sg_domain_bundle *b, time_t now);
void sg_domain_bundle_clear(struct sg_domain_bundle *b);
/* The HTTP answer for path (wkd-server): 1 it is our path (*status_r
 * 200 with *body_r owned, or 404), 0 not our path, -1 store error. */
int sg_domain_respond(struct sg_store *store, const char *path, size_t path_len,
		      unsigned *status_r, unsigned char **body_r, size_t *len_r,
		      struct sg_error *err) SG_WARN_UNUSED;

/* ---- peers (publish.c) ---- */
/* The encryption key to seal for domain at now: fetched (cached) bundle,
 * its signing key trusted (configured, pinned, or pinned now on first use),
 * the valid key with most time left. 1 with *key_r (owned), 0 none (reason
 * in err), -1 temporary failure (fetch, store). */
int sg_domain_peer_key(struct sg_domain *d, const char *domain, time_t now,
		       struct sg_key **key_r, struct sg_error *err) SG_WARN_UNUSED;
/* The trusted signing certificate of a peer domain (for inbound). 1 with
 * *key_r (owned), 0 not trusted (reason in err), -1 temporary failure. */
int sg_domain_peer_signer(struct sg_domain *d, const char *domain, time_t now,
			  struct sg_key **key_r, struct sg_error *err) SG_WARN_UNUSED;

/* ---- seal.c: messages ---- */
/* Seal msg for to_domain with peer_key (an encryption certificate from
 * sg_domain_peer_key): signed by our signing key, recipient domain bound
 * inside the signed data, encrypted (AES-256-GCM). Appended to out. 1 or -1. */
int sg_domain_seal(struct sg_domain *d, const unsigned char *msg, size_t len,
		   const char *from_domain, const char *to_domain, const struct sg_key *peer_key,
		   struct sg_buf *out, enum sg_crypto_status *status_r,
		   struct sg_error *err) SG_WARN_UNUSED;
/* Our outer marker: 1 with *from_r, *to_r (owned) when v carries one
 * (v=1), 0 when not, -1 when it is malformed. */
int sg_domain_marker(const struct sg_msg_view *v, char **from_r, char **to_r) SG_WARN_UNUSED;

enum sg_domain_verdict {
	SG_DOMAIN_OK = 0,
	SG_DOMAIN_NO_KEY,        /* no private key for it (expired and destroyed, or not ours) */
	SG_DOMAIN_TAMPERED,      /* authentication tag, structure or encoding broken */
	SG_DOMAIN_BAD_SIGNATURE, /* signed data changed */
	SG_DOMAIN_UNKNOWN_SIGNER,/* not signed by the trusted key of the sender domain */
	SG_DOMAIN_WRONG_DOMAIN,  /* bound to another recipient domain / sender domain */
	SG_DOMAIN_TEMPFAIL,      /* store or fetch failure: try again later */
};
struct sg_domain_opened {
	enum sg_domain_verdict verdict;
	char *from_domain;       /* bound sender domain; owned */
	char *signer_fpr;        /* its signing certificate; owned */
	char *key_fpr;           /* our short-lived key that decrypted; owned */
};
/* Open a sealed message for recipients in rcpt_domain (every recipient of
 * the copy must be in it). out gets the original message (with the
 * Received fields added on the way) only when verdict is OK. 1 when a
 * verdict was reached (see res->verdict, reason in err), -1 internal. */
int sg_domain_open(struct sg_domain *d, const unsigned char *msg, size_t len,
		   const char *rcpt_domain, time_t now, struct sg_buf *out,
		   struct sg_domain_opened *res, struct sg_error *err) SG_WARN_UNUSED;
void sg_domain_opened_clear(struct sg_domain_opened *res);
/* The SMTP reply ("554 5.7.x ...": code and text) for a failed verdict. */
int sg_domain_verdict_code(enum sg_domain_verdict v);
const char *sg_domain_verdict_text(enum sg_domain_verdict v);

#endif
