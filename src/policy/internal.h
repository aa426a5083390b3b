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
	struct sg_submission *submission; /* gateway keys, content filter (submission.c) */
	struct sg_keycache *keys;      /* recipients' and signers' keys, policy_key_cache_ttl */
};

#endif
