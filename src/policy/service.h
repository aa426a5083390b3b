/* The policy engine as `sealgate serve` runs it: the key store, the master
 * key and the rules opened once, and the outbound and inbound transforms. */
#ifndef SG_POLICY_SERVICE_H
#define SG_POLICY_SERVICE_H

#include "config/config.h"
#include "gateway/gateway.h"
#include "util/error.h"

struct sg_policy_service;

/* cfg is borrowed for the service's lifetime. Opens the store (cfg->store,
 * else sqlite:STATE_DIR/sealgate.db), the master key when master_key_file
 * is set (for signing with stored keys), and the rules. 1 or -1. */
int sg_policy_service_open(const struct sg_config *cfg, struct sg_policy_service **s_r,
			   struct sg_error *err) SG_WARN_UNUSED;
/* Set the SG_ROLE_OUTBOUND and SG_ROLE_INBOUND entries of t. */
void sg_policy_service_install(struct sg_policy_service *s, struct sg_gateway_transforms *t);
void sg_policy_service_close(struct sg_policy_service **s);
/* The domain-key state (borrowed), or NULL when domain_names is not set. */
struct sg_domain *sg_policy_service_domain(struct sg_policy_service *s);

#endif
