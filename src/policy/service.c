/* Opening what the policy transforms need for `sealgate serve`, and
 * handing the transforms to the gateway. */
#include "policy/service.h"
#include "keys/master.h"
#include "policy/internal.h"
#include "policy/policy.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

struct sg_policy_service {
	struct sg_store *store;
	struct sg_master_key *mk;
	struct sg_policy *policy;
	struct sg_transform outbound, inbound;
};

int sg_policy_service_open(const struct sg_config *cfg, struct sg_policy_service **s_r,
			   struct sg_error *err)
{
	struct sg_policy_service *s = sg_calloc(1, sizeof(*s));
	int ret = -1;

	*s_r = NULL;
	if (sg_store_open_config(cfg, NULL, &s->store, err) < 0) {
		sg_error_prefix(err, "key store");
		goto out;
	}
	if (cfg->master_key_file[0] != '\0' &&
	    sg_master_key_load_file(cfg->master_key_file, &s->mk, err) < 0) {
		sg_error_prefix(err, "master_key_file");
		goto out;
	}
	if (sg_policy_new(cfg, s->store, s->mk, &s->policy, err) < 0)
		goto out;
	sg_policy_outbound_transform(s->policy, &s->outbound);
	sg_policy_inbound_transform(s->policy, &s->inbound);
	sg_log_info("policy: rules %s, default %s, missing key %s, signing %s",
		    cfg->policy_file[0] != '\0' ? cfg->policy_file : "(none)", cfg->policy_default,
		    cfg->policy_missing_key, s->mk != NULL ? "possible" : "off (no master key)");
	*s_r = s;
	s = NULL;
	ret = 1;
out:
	sg_policy_service_close(&s);
	return ret;
}

void sg_policy_service_install(struct sg_policy_service *s, struct sg_gateway_transforms *t)
{
	t->role[SG_ROLE_OUTBOUND] = &s->outbound;
	t->role[SG_ROLE_INBOUND] = &s->inbound;
}

struct sg_domain *sg_policy_service_domain(struct sg_policy_service *s)
{
	return s->policy->domain;
}

void sg_policy_service_close(struct sg_policy_service **sp)
{
	struct sg_policy_service *s = *sp;
	if (s == NULL)
		return;
	sg_policy_free(&s->policy);
	sg_master_key_free(&s->mk);
	sg_store_close(&s->store);
	free(s);
	*sp = NULL;
}
