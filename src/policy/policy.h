/* The policy engine: per recipient one treatment from the rules, resolved
 * against the key store (which key, or why none), and the two transforms
 * built on it: outbound (seal/sign per recipient group) and inbound
 * (verify signatures, add Authentication-Results). */
#ifndef SG_POLICY_POLICY_H
#define SG_POLICY_POLICY_H

#include <stdbool.h>
#include <time.h>

#include "config/config.h"
#include "crypto/crypto.h"
#include "gateway/transform.h"
#include "mime/message.h"
#include "policy/rules.h"
#include "util/error.h"

struct sg_store;
struct sg_master_key;
struct sg_policy;
struct sg_keycache_entry;

/* cfg, store and mk (NULL: no signing with stored keys) are borrowed for
 * the policy's lifetime. Loads cfg->policy_file and the S/MIME trust
 * anchors. 1, or -1 with "file:line: ..." in err. */
int sg_policy_new(const struct sg_config *cfg, struct sg_store *store,
		  const struct sg_master_key *mk, struct sg_policy **p_r,
		  struct sg_error *err) SG_WARN_UNUSED;
void sg_policy_free(struct sg_policy **p);

/* What happens to one recipient. */
struct sg_policy_decision {
	const struct sg_policy_rule *rule; /* borrowed; NULL: policy_default */
	const char *rules_name;            /* the rules file, for "file:line" */
	enum sg_treatment asked;           /* what the rule (or the default) says */
	enum sg_treatment treatment;       /* what is done: asked, or the missing= fallback */
	enum sg_route route;
	struct sg_key *key;                /* e2e: the recipient's key; owned, or borrowed from key_ref */
	struct sg_keycache_entry *key_ref; /* the cache entry holding key, or NULL */
	bool sign;                         /* sign with the sender's key if there is one */
	int code;                          /* refused: 4xx/5xx, text in reply; else 0 */
	char *reply;                       /* "5.7.1 ..." when refused; owned */
	char *note;                        /* why (missing key reason, fallback); owned or NULL */
};

/* Decide for rcpt of a message from sender (envelope; "" null sender)
 * whose header block is hdr (may be NULL). 1 with *d (clear with
 * sg_policy_decision_clear); -1 on an internal error (store). */
int sg_policy_decide(struct sg_policy *p, const char *sender, const char *rcpt,
		     const struct sg_msg_view *hdr, time_t now, struct sg_policy_decision *d,
		     struct sg_error *err) SG_WARN_UNUSED;
void sg_policy_decision_clear(struct sg_policy_decision *d);

/* The sender's signing key from the store (its secret part sealed under
 * the master key): 1 with *key_r (a cache entry: sg_keycache_key() has the
 * key; sg_keycache_release it), 0 none usable (note in err), -1. */
int sg_policy_find_signer(struct sg_policy *p, const char *sender, time_t now,
			  struct sg_keycache_entry **key_r, struct sg_error *err) SG_WARN_UNUSED;

/* The transforms (ctx = p). */
void sg_policy_outbound_transform(struct sg_policy *p, struct sg_transform *t_r);
void sg_policy_inbound_transform(struct sg_policy *p, struct sg_transform *t_r);

/* Inbound, exposed for tests: the message with every Authentication-Results
 * field claiming authserv_id removed (RFC 8601 s5) and ar_field (a complete
 * field with CRLF, or NULL) prepended, appended to out. Returns the number
 * of fields removed, or -1. */
int sg_policy_rewrite_ar(const struct sg_msg_view *v, const char *authserv_id,
			 const char *ar_field, struct sg_buf *out, struct sg_error *err) SG_WARN_UNUSED;

#endif
