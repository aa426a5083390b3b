/* The policy engine's decision per recipient: rule, treatment, key (or the
 * reason there is none and the missing-key outcome), and the signer. */
#include "policy/policy.h"
#include "domain/domain.h"
#include "keys/keystore.h"
#include "keys/lookup.h"
#include "crypto/smime.h"
#include "keys/secret.h"
#include "policy/internal.h"
#include "keys/keycache.h"
#include "policy/submission.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/secret.h"

#include <stdlib.h>
#include <string.h>

#define KEY_CACHE_MAX 1024
#define SIGNER_TAG 100 /* cache tag of signing keys; encryption keys use their sg_key_kind */

static enum sg_treatment treatment_from_name(const char *s)
{
	for (int t = 0; t < SG_TREAT_COUNT; t++)
		if (strcmp(sg_treatment_name((enum sg_treatment)t), s) == 0)
			return (enum sg_treatment)t;
	sg_panic("policy: unknown treatment '%s' passed config checks", s);
}

static int load_anchors(struct sg_policy *p, const char *list, struct sg_error *err)
{
	char *copy = sg_strdup(list), *save = NULL;
	int ret = 1;

	for (char *tok = strtok_r(copy, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		struct sg_key *k = NULL;
		enum sg_crypto_status st = SG_CRYPTO_OK;
		if (sg_key_load_file(tok, NULL, &k, &st, err) < 0) {
			sg_error_prefix(err, "smime_trust_anchors");
			ret = -1;
			break;
		}
		if (sg_key_kind(k) != SG_KEY_X509) {
			sg_error_set(err, "smime_trust_anchors: %s is not an X.509 certificate", tok);
			sg_key_free(&k);
			ret = -1;
			break;
		}
		p->anchors = sg_reallocarray(p->anchors, p->n_anchors + 1, sizeof(*p->anchors));
		p->anchors[p->n_anchors++] = k;
	}
	free(copy);
	return ret;
}

int sg_policy_new(const struct sg_config *cfg, struct sg_store *store,
		  const struct sg_master_key *mk, struct sg_policy **p_r, struct sg_error *err)
{
	struct sg_policy *p = sg_calloc(1, sizeof(*p));

	*p_r = NULL;
	p->cfg = cfg;
	p->store = store;
	p->mk = mk;
	pthread_mutex_init(&p->lock, NULL);
	p->keys = sg_keycache_new(cfg->policy_key_cache_ttl, KEY_CACHE_MAX);
	p->lookup = sg_keys_lookup_new(store, cfg, &p->lock, 0);
	p->def = treatment_from_name(cfg->policy_default);
	p->missing = strcmp(cfg->policy_missing_key, "defer") == 0 ? SG_MISSING_DEFER
								     : SG_MISSING_REJECT;
	p->prefer = strcmp(cfg->policy_key_preference, "smime") == 0 ? SG_KEY_X509 : SG_KEY_PGP;
	p->authserv_id = sg_strdup(cfg->authserv_id[0] != '\0' ? cfg->authserv_id : cfg->hostname);
	if (cfg->policy_file[0] != '\0' && sg_policy_rules_load(cfg->policy_file, &p->rules, err) < 0)
		goto fail;
	if (load_anchors(p, cfg->smime_trust_anchors, err) < 0 ||
	    sg_smime_revocation_load(cfg->smime_revocation, cfg->smime_crl_files, cfg->smime_crl_dir,
				     &p->revocation, err) < 0 ||
	    sg_policy_domain_open(p, cfg, mk, err) < 0)
		goto fail;
	if (sg_submission_new(cfg, store, mk, &p->submission, err) < 0)
		goto fail;
	*p_r = p;
	return 1;
fail:
	sg_policy_free(&p);
	return -1;
}

void sg_policy_free(struct sg_policy **pp)
{
	struct sg_policy *p = *pp;
	if (p == NULL)
		return;
	sg_policy_rules_free(&p->rules);
	sg_submission_free(&p->submission);
	sg_keycache_free(&p->keys);
	sg_keys_lookup_free(&p->lookup);
	sg_domain_free(&p->domain);
	sg_smime_revocation_free(&p->revocation);
	for (size_t i = 0; i < p->n_anchors; i++)
		sg_key_free(&p->anchors[i]);
	free(p->anchors);
	free(p->authserv_id);
	pthread_mutex_destroy(&p->lock);
	free(p);
	*pp = NULL;
}

void sg_policy_decision_clear(struct sg_policy_decision *d)
{
	if (d->key_ref != NULL)
		sg_keycache_release(&d->key_ref);
	else
		sg_key_free(&d->key);
	free(d->reply);
	free(d->note);
	memset(d, 0, sizeof(*d));
}

/* A recipient that policy says to protect has no usable key: the rule's
 * missing= (else policy_missing_key) decides. Never the clear text unless
 * the rule says missing=pass. */
static void apply_missing(struct sg_policy_decision *d, enum sg_missing m)
{
	switch (m) {
	case SG_MISSING_TLS_ONLY:
		d->treatment = SG_TREAT_TLS_ONLY;
		d->route = SG_ROUTE_TLS_ONLY;
		break;
	case SG_MISSING_PASS:
		d->treatment = SG_TREAT_PASS;
		break;
	case SG_MISSING_DEFER:
		d->code = 451;
		d->reply = sg_asprintf("4.7.1 Encryption required by policy: %s", d->note);
		break;
	default:
		d->code = 554;
		d->reply = sg_asprintf("5.7.1 Encryption required by policy: %s", d->note);
	}
}

static int decide_e2e(struct sg_policy *p, const char *rcpt, time_t now, enum sg_missing missing,
		      enum sg_key_kind pref, struct sg_policy_decision *d, struct sg_error *err)
{
	enum sg_crypto_status st = SG_CRYPTO_OK;
	struct sg_error why = SG_ERROR_INIT;
	char *addr = sg_keys_normalize_addr(rcpt, NULL);

	/* A key found within policy_key_cache_ttl is used again as it was
	 * (a revocation imported meanwhile applies once the entry expires). */
	if (addr != NULL && (d->key_ref = sg_keycache_get(p->keys, addr, (int)pref)) != NULL) {
		d->key = sg_keycache_key(d->key_ref);
		free(addr);
		return 1;
	}
	int r = sg_keys_find_encrypt(p->lookup, rcpt, pref, now, &d->key, &st, &why);
	if (r < 0) {
		sg_error_set(err, "key look-up for %s: %s", rcpt, sg_error_msg(&why));
		sg_error_clear(&why);
		free(addr);
		return -1;
	}
	if (r == 0 && missing == SG_MISSING_DOMAIN) {
		/* the recipient domain's key in place of the user's ([domain]) */
		char *user_note = sg_strdup(sg_error_msg(&why));
		d->treatment = SG_TREAT_DOMAIN;
		r = sg_policy_domain_decide(p, rcpt, d);
		if (r == 0) {
			char *both = sg_asprintf("%s; %s", user_note, d->note);
			free(d->note);
			d->note = both;
			apply_missing(d, p->missing);
		}
		free(user_note);
		r = 1;
	}
	if (r == 0) {
		d->note = sg_strdup(sg_error_msg(&why));
		apply_missing(d, missing);
	} else if (addr != NULL) {
		d->key_ref = sg_keycache_put(p->keys, addr, (int)pref, d->key);
	}
	sg_error_clear(&why);
	free(addr);
	return 1;
}

int sg_policy_decide(struct sg_policy *p, const char *sender, const char *rcpt,
		     const struct sg_msg_view *hdr, time_t now, struct sg_policy_decision *d,
		     struct sg_error *err)
{
	const struct sg_policy_rule *r = sg_policy_rules_match(p->rules, sender, rcpt, hdr);
	enum sg_missing missing = r != NULL && r->missing != SG_MISSING_DEFAULT ? r->missing : p->missing;
	enum sg_key_kind pref = p->prefer;

	memset(d, 0, sizeof(*d));
	d->rule = r;
	d->rules_name = p->rules != NULL ? p->rules->name : NULL;
	d->asked = d->treatment = r != NULL ? r->treatment : p->def;
	d->route = SG_ROUTE_RELAY;
	d->sign = r != NULL && r->sign != SG_SIGN_DEFAULT ? r->sign == SG_SIGN_YES : p->cfg->policy_sign;
	if (r != NULL && r->prefer != SG_PREFER_DEFAULT)
		pref = r->prefer == SG_PREFER_SMIME ? SG_KEY_X509 : SG_KEY_PGP;

	switch (d->asked) {
	case SG_TREAT_E2E:
		return decide_e2e(p, rcpt, now, missing, pref, d, err);
	case SG_TREAT_DOMAIN:
		/* the peer domain's short-lived key (policy/domain.c) */
		if (sg_policy_domain_decide(p, rcpt, d) == 0)
			apply_missing(d, missing);
		return 1;
	case SG_TREAT_TLS_ONLY:
		d->route = SG_ROUTE_TLS_ONLY;
		return 1;
	case SG_TREAT_PORTAL:
		/* The secure web portal is a later issue: hold nothing, refuse. */
		d->note = sg_strdup("secure web portal not available");
		d->code = missing == SG_MISSING_DEFER ? 451 : 554;
		d->reply = sg_asprintf("%s Policy requires the secure web portal, which is not available",
				       d->code == 451 ? "4.7.1" : "5.7.1");
		return 1;
	case SG_TREAT_REJECT:
		d->code = 554;
		d->reply = sg_asprintf("5.7.1 %s", r != NULL && r->text != NULL
						       ? r->text : "Delivery to this recipient is not allowed by policy");
		return 1;
	default:
		return 1;
	}
}

int sg_policy_find_signer(struct sg_policy *p, const char *sender, time_t now,
			  struct sg_keycache_entry **key_r, struct sg_error *err)
{
	struct sg_key *key = NULL;
	char *norm = NULL;

	*key_r = NULL;
	if (p->mk == NULL) {
		sg_error_set(err, "no master key configured");
		return 0;
	}
	if (*sender == '\0' || (norm = sg_keys_normalize_addr(sender, NULL)) == NULL) {
		sg_error_set(err, "no sender address");
		return 0;
	}
	if ((*key_r = sg_keycache_get(p->keys, norm, SIGNER_TAG)) != NULL) {
		free(norm);
		return 1;
	}
	pthread_mutex_lock(&p->lock);
	int ret = sg_keys_find_signer(p->store, p->mk, norm, SG_KEY_PGP, now, &key, err);
	pthread_mutex_unlock(&p->lock);
	if (ret == 1)
		*key_r = sg_keycache_put(p->keys, norm, SIGNER_TAG, key);
	free(norm);
	return ret;
}
