/* The policy context, shared by policy.c and the two transforms
 * (outbound.c, inbound.c); not for use outside src/policy/. */
#ifndef SG_POLICY_INTERNAL_H
#define SG_POLICY_INTERNAL_H

#include <pthread.h>

#include "policy/policy.h"

struct sg_keys_lookup;
struct sg_submission;
struct sg_keycache;

struct sg_policy {
	const struct sg_config *cfg;
	struct sg_store *store;
	const struct sg_master_key *mk;
	struct sg_keys_lookup *lookup;
	pthread_mutex_t lock;          /* one store connection: one worker at a time */
	struct sg_policy_rules *rules; /* NULL: no policy_file */
	enum sg_treatment def;
	enum sg_missing missing;
	enum sg_key_kind prefer;
	char *authserv_id;
	struct sg_key **anchors;       /* S/MIME trust anchors */
	size_t n_anchors;
	struct sg_smime_revocation *revocation; /* CRLs for inbound S/MIME signers (smime_revocation) */
	struct sg_submission *submission; /* gateway keys, content filter (submission.c) */
	struct sg_keycache *keys;      /* recipients' and signers' keys, policy_key_cache_ttl */
	struct sg_domain *domain;      /* domain keys ([domain]); NULL: domain_names not set */
};

/* The domain treatment (policy/domain.c, over src/domain/). */
struct sg_domain;
struct sg_master_key;
struct sg_msg_view;
/* Open p->domain when domain_names is set: 1, 0 not configured, -1. */
int sg_policy_domain_open(struct sg_policy *p, const struct sg_config *cfg,
			  const struct sg_master_key *mk, struct sg_error *err);
/* The peer domain's key into d->key: 1, 0 none (d->note), -1 temporary
 * (d->code/d->reply set). */
int sg_policy_domain_decide(struct sg_policy *p, const char *rcpt, struct sg_policy_decision *d);
/* Seal one copy per recipient domain for the recipients with sel[i] set,
 * placed as groups (or those recipients refused). */
void sg_policy_domain_place(struct sg_policy *p, const struct sg_envelope *env,
			    const unsigned char *data, size_t len,
			    const struct sg_policy_decision *d, const bool *sel,
			    struct sg_transform_out *out);
/* Whether v is domain-sealed for one of our domains (header section only). */
bool sg_policy_domain_marked(struct sg_policy *p, const struct sg_msg_view *v);
/* Inbound: a domain-sealed message for one of our domains is opened (per
 * recipient domain) and placed, or its recipients refused: 1; 0 the
 * message is not domain-sealed for us; -1 internal error. */
int sg_policy_domain_inbound(struct sg_policy *p, const struct sg_envelope *env,
			     const unsigned char *data, size_t len, const struct sg_msg_view *v,
			     struct sg_transform_out *out, struct sg_error *err);

#endif
