/* The deliver role's transform (issue [at-rest]): each local recipient's
 * copy sealed to that user's own key, then handed to the mailbox server's
 * LMTP (one group per recipient) or written into the Maildir here. */
#ifndef SG_DELIVER_DELIVER_H
#define SG_DELIVER_DELIVER_H

#include <stddef.h>

#include "config/config.h"
#include "crypto/crypto.h"
#include "gateway/transform.h"
#include "mime/seal.h"
#include "util/error.h"

struct sg_keys_lookup;
struct sg_deliver;

enum sg_deliver_no_key { SG_NOKEY_PLAIN = 0, SG_NOKEY_REFUSE, SG_NOKEY_DEFER };

/* cfg and lk are borrowed for the object's lifetime. Checks the deliver_*
 * settings (a destination is set, formats parse). NULL with err. */
struct sg_deliver *sg_deliver_new(const struct sg_config *cfg, struct sg_keys_lookup *lk,
				  struct sg_error *err);
/* The transform for SG_ROLE_DELIVER; borrowed from d. */
const struct sg_transform *sg_deliver_transform(struct sg_deliver *d);
void sg_deliver_free(struct sg_deliver **d);

/* The key kind a user prefers (0: none) per deliver_format and
 * deliver_user_formats. */
enum sg_key_kind sg_deliver_pref(const struct sg_deliver *d, const char *addr);

/* The recovery key (recovery_key): an escrow's public key that must be
 * usable for encryption now; *key_r NULL when path is empty. 1; -1 (err). */
int sg_deliver_recovery_load(const char *path, struct sg_key **key_r,
			     struct sg_error *err) SG_WARN_UNUSED;

/* Seal msg (CRLF) for one recipient's key (and recovery, when not NULL
 * and of the same kind: a second recipient block, so that the escrow can
 * re-key the mailbox if the user's key is lost), encrypt-only, with header
 * protection and the neutral subject. 1 with *out_r and *len_r (owned) and
 * *outcome_r (ALREADY_ENCRYPTED: the input, unchanged); -1 with
 * *status_r and err. Shared with `sealgate seal-mailbox`. */
int sg_deliver_seal(const unsigned char *msg, size_t len, struct sg_key *key,
		    struct sg_key *recovery, const char *neutral_subject,
		    unsigned char **out_r, size_t *len_r,
		    enum sg_seal_outcome *outcome_r, enum sg_crypto_status *status_r,
		    struct sg_error *err) SG_WARN_UNUSED;

#endif
