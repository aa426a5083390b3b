/* Message-level re-keying: find the encrypted payload of a PGP/MIME or
 * S/MIME message, re-wrap its session key, rebuild the message around it. */
#ifndef SG_MIME_REKEY_MSG_H
#define SG_MIME_REKEY_MSG_H

#include <stddef.h>

#include "crypto/cms-rewrap.h"
#include "crypto/pgp-rewrap.h"
#include "util/buf.h"
#include "util/error.h"

/* Borrowed keys; either pair may be NULL (that kind is then skipped). */
struct sg_rekey_keys {
	const struct sg_pgp_keyring *pgp_old;
	const struct sg_pgp_keyring *pgp_new;
	const struct sg_cms_party *cms_old;
	const struct sg_cms_party *cms_new;
	const struct sg_pgp_keyring *pgp_drop; /* NULL, or lost keys whose PKESKs go too */
	bool keep_old;                         /* the old key is the recovery key: it stays */
};

enum sg_rekey_kind {
	SG_REKEY_KIND_NONE = 0,
	SG_REKEY_KIND_PGP_MIME,
	SG_REKEY_KIND_SMIME,
};

struct sg_rekey_info {
	enum sg_rekey_kind kind;
	const char *skip_reason;  /* static text when 0 was returned */
	size_t removed;           /* PKESKs / RecipientInfos of the old key replaced */
	size_t dropped;           /* PKESKs of pgp_drop's keys removed */
	size_t kept;              /* other recipients' blocks left as they were */
	size_t payload_off;       /* where the armored/base64 payload starts (in and out) */
	size_t payload_end_in;    /* end of it in the input ... */
	size_t payload_end_out;   /* ... and in the output (the rest is identical) */
};

/* Rewrite msg (raw bytes, any line ends) so that the new key replaces the
 * old one as a recipient. Every byte before and after the armored block
 * (PGP/MIME) or the base64 body (S/MIME) is copied unchanged; the armor
 * header lines, line length and line ends are kept. 1 rewritten (out
 * holds the message); 0 skipped, reason in info_r->skip_reason (not
 * encrypted, old key not a recipient, no key of that kind); -1 error. */
int sg_rekey_message(const unsigned char *msg, size_t len, const struct sg_rekey_keys *keys,
		     struct sg_buf *out, struct sg_rekey_info *info_r,
		     struct sg_error *err) SG_WARN_UNUSED;

#endif
