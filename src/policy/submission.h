/* Before outbound policy: mail encrypted to the gateway's own key is opened
 * (encrypted submission), and the content filter sees the plaintext. For
 * src/policy/ only; outbound.c calls sg_submission_prepare once. */
#ifndef SG_POLICY_SUBMISSION_H
#define SG_POLICY_SUBMISSION_H

#include "config/config.h"
#include "crypto/crypto.h"
#include "mail/envelope.h"
#include "mime/message.h"
#include "util/buf.h"
#include "util/error.h"

struct sg_store;
struct sg_master_key;
struct sg_policy;
struct sg_submission;

/* The gateway's secret keys: the OpenPGP keys the store holds for
 * cfg->gateway_address (opened with mk) and cfg->gateway_smime_key. Both
 * unset: encrypted submission is off (*s_r still set). 1 or -1. */
int sg_submission_new(const struct sg_config *cfg, struct sg_store *store,
		      const struct sg_master_key *mk, struct sg_submission **s_r,
		      struct sg_error *err) SG_WARN_UNUSED;
void sg_submission_free(struct sg_submission **s);

struct sg_submission_prep {
	struct sg_buf msg;  /* len > 0: the message policy applies to instead (plaintext; wiped) */
	int code;           /* != 0: every recipient is refused with code and reply */
	char *reply;        /* "5.7.1 ..." */
};

/* Decrypt data (len bytes, classified cls) if it is encrypted to the
 * gateway, then run the content filter over the plaintext. 1 with *r
 * filled (sg_submission_prep_clear it); -1 on an internal error (store). */
int sg_submission_prepare(struct sg_policy *p, const struct sg_envelope *env,
			  const unsigned char *data, size_t len, enum sg_msg_class cls,
			  struct sg_submission_prep *r, struct sg_error *err) SG_WARN_UNUSED;
void sg_submission_prep_clear(struct sg_submission_prep *r);

#endif
