/* The domain treatment in the policy engine ([domain], doc/domain.md):
 * outbound, one sealed copy per recipient domain; inbound, opening
 * domain-sealed mail for our domains, with Authentication-Results. */
#include "domain/domain.h"
#include "keys/keycache.h"
#include "mime/message.h"
#include "policy/internal.h"
#include "policy/policy.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/spool.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DOMAIN_OUT_MAX (1024u * 1024 * 1024)
#define PEER_KEY_TAG (-8) /* keycache tag of peer domains' keys ("domain:DOMAIN") */

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at != NULL ? at + 1 : addr;
}

static const char *qid(const struct sg_envelope *env)
{
	return env->queue_id != NULL ? env->queue_id : "-";
}

int sg_policy_domain_open(struct sg_policy *p, const struct sg_config *cfg,
			  const struct sg_master_key *mk, struct sg_error *err)
{
	if (!sg_domain_configured(cfg))
		return 0;
	/* a changed domain_names stops serve until `domain rekey` (or the old
	 * value): never sign as, or open for, a set peers did not pin */
	if (sg_domain_new(cfg, mk, &p->domain, err) < 0 || sg_domain_check_names(p->domain, err) <= 0) {
		sg_error_prefix(err, "domain");
		return -1;
	}
	return 1;
}

/* The peer's key from the policy key cache (policy_key_cache_ttl): loading
 * a certificate costs more than a P-256 seal under OpenSSL 3.0. A cached
 * key whose window has ended meanwhile is not used. 1 hit, 0 miss. */
static int cached_peer_key(struct sg_policy *p, const char *addr, time_t now,
			   struct sg_policy_decision *d)
{
	struct sg_keycache_entry *e = sg_keycache_get(p->keys, addr, PEER_KEY_TAG);
	enum sg_crypto_status st;

	if (e == NULL)
		return 0;
	if (sg_key_usable_for_encrypt(sg_keycache_key(e), now, &st, NULL) != 1) {
		sg_keycache_release(&e);
		return 0;
	}
	d->key_ref = e;
	d->key = sg_keycache_key(e);
	return 1;
}

int sg_policy_domain_decide(struct sg_policy *p, const char *rcpt, struct sg_policy_decision *d)
{
	struct sg_error why = SG_ERROR_INIT;
	const char *dom = domain_of(rcpt);
	time_t now = sg_domain_now();
	/* the treatment domain asked by a rule; for missing=domain policy.c
	 * caches the key under the user's address and needs it owned */
	bool share = d->asked == SG_TREAT_DOMAIN;
	char *addr = NULL;
	int r;

	if (p->domain == NULL) {
		d->note = sg_asprintf("domain keys not available (domain %s): domain_names not set", dom);
		return 0;
	}
	addr = sg_asprintf("domain:%s", dom);
	if (share && cached_peer_key(p, addr, now, d) > 0) {
		free(addr);
		return 1;
	}
	r = sg_domain_peer_key(p->domain, dom, now, &d->key, &why);
	if (r <= 0)
		d->note = sg_asprintf("domain keys of %s: %s", dom, sg_error_msg(&why));
	if (r < 0) { /* fetch or store failure: try again later, never in clear */
		d->code = 451;
		d->reply = sg_asprintf("4.7.0 Domain key look-up failed: %s", d->note);
	}
	if (r > 0 && share)
		d->key_ref = sg_keycache_put(p->keys, addr, PEER_KEY_TAG, d->key);
	sg_error_clear(&why);
	free(addr);
	return r;
}

/* Our domain to sign as: the sender's, when it is one of ours, else the first. */
static const char *our_domain(struct sg_policy *p, const char *sender)
{
	const char *dom = domain_of(sender);
	if (*sender != '\0' && sg_domain_is_ours(p->domain, dom))
		return dom;
	return p->cfg->domain_names + strspn(p->cfg->domain_names, " \t,");
}

static void place_one(struct sg_policy *p, const struct sg_envelope *env, const unsigned char *data,
		      size_t len, const struct sg_policy_decision *d, const bool *sel, size_t first,
		      struct sg_transform_out *out)
{
	const char *dom = domain_of(env->rcpts[first].addr);
	char *from = NULL;
	struct sg_buf sealed;
	struct sg_error why = SG_ERROR_INIT;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	struct sg_transform_group *g = NULL;
	char *reply = NULL;

	sg_buf_init(&sealed, DOMAIN_OUT_MAX);
	const char *ours = our_domain(p, env->mail_from);
	from = sg_strndup(ours, strcspn(ours, " \t,"));
	if (sg_domain_seal(p->domain, data, len, from, dom, d[first].key, &sealed, &st, &why) < 0) {
		bool temp = st == SG_CRYPTO_INTERNAL;
		reply = sg_asprintf("%s Encryption required by policy, domain sealing failed: %s",
				    temp ? "4.7.0" : "5.7.1", sg_error_msg(&why));
	} else {
		g = sg_transform_add_group(out, "domain", sg_spool_from_mem(sealed.data, sealed.len));
	}
	for (size_t i = first; i < env->n_rcpts; i++) {
		if (!sel[i] || strcasecmp(domain_of(env->rcpts[i].addr), dom) != 0)
			continue;
		if (g != NULL)
			sg_transform_group_add_rcpt(g, i);
		else
			sg_transform_answer(out, env->n_rcpts, i, reply[0] == '4' ? 451 : 554, "%s", reply);
		sg_log_info("%s: policy: to=<%s>, treatment=domain, %s%s", qid(env), env->rcpts[i].addr,
			    g != NULL ? "sealed for domain " : "refused: ", g != NULL ? dom : reply);
	}
	sg_buf_free(&sealed);
	sg_error_clear(&why);
	free(reply);
	free(from);
}

void sg_policy_domain_place(struct sg_policy *p, const struct sg_envelope *env,
			    const unsigned char *data, size_t len,
			    const struct sg_policy_decision *d, const bool *sel,
			    struct sg_transform_out *out)
{
	for (size_t i = 0; i < env->n_rcpts; i++) {
		bool seen = false;
		if (!sel[i])
			continue;
		for (size_t j = 0; j < i && !seen; j++)
			seen = sel[j] && strcasecmp(domain_of(env->rcpts[j].addr),
						    domain_of(env->rcpts[i].addr)) == 0;
		if (!seen) /* one copy per recipient domain: the domain is bound inside */
			place_one(p, env, data, len, d, sel, i, out);
	}
}

/* ---- inbound ---- */

static char *ar_field(struct sg_policy *p, const struct sg_domain_opened *res)
{
	/* RFC 8601 s2.2; the method "domsec" is ours (doc/domain.md) */
	return sg_asprintf("Authentication-Results: %s;\r\n\tdomsec=pass (signing key %.16s, "
			   "decrypted with key %.16s) header.d=%s\r\n",
			   p->authserv_id, res->signer_fpr, res->key_fpr, res->from_domain);
}

/* Open for the recipients of one domain; 1 placed, 0 refused. */
static int open_for(struct sg_policy *p, const struct sg_envelope *env, const unsigned char *data,
		    size_t len, const char *dom, struct sg_transform_out *out, struct sg_error *err)
{
	struct sg_buf opened, rewritten;
	struct sg_domain_opened res;
	struct sg_error why = SG_ERROR_INIT;
	struct sg_msg_view v;
	char *ar = NULL;
	int ret = -1;

	sg_buf_init(&opened, DOMAIN_OUT_MAX);
	sg_buf_init(&rewritten, DOMAIN_OUT_MAX);
	if (sg_domain_open(p->domain, data, len, dom, sg_domain_now(), &opened, &res, &why) < 0) {
		sg_error_set(err, "domain open: %s", sg_error_msg(&why));
		goto out;
	}
	if (res.verdict == SG_DOMAIN_OK) {
		ar = ar_field(p, &res);
		if (sg_msg_split(opened.data, opened.len, &v, err) < 0 ||
		    sg_policy_rewrite_ar(&v, p->authserv_id, ar, &rewritten, err) < 0)
			goto out;
	}
	struct sg_transform_group *g = NULL;
	if (res.verdict == SG_DOMAIN_OK)
		g = sg_transform_add_group(out, "domain-open",
					   sg_spool_from_mem(rewritten.data, rewritten.len));
	for (size_t i = 0; i < env->n_rcpts; i++) {
		if (strcasecmp(domain_of(env->rcpts[i].addr), dom) != 0)
			continue;
		if (g != NULL)
			sg_transform_group_add_rcpt(g, i);
		else
			sg_transform_answer(out, env->n_rcpts, i, sg_domain_verdict_code(res.verdict), "%s",
					    sg_domain_verdict_text(res.verdict));
	}
	if (g != NULL)
		sg_log_info("%s: domain: opened for %s: from domain %s, signing key %s, key %s", qid(env),
			    dom, res.from_domain, res.signer_fpr, res.key_fpr);
	else
		sg_log_warn("%s: domain: refused for %s: %s (%s)", qid(env), dom,
			    sg_domain_verdict_text(res.verdict), sg_error_msg(&why));
	ret = g != NULL;
out:
	sg_domain_opened_clear(&res);
	sg_buf_free_secret(&opened);
	sg_buf_free_secret(&rewritten);
	sg_error_clear(&why);
	free(ar);
	return ret;
}

bool sg_policy_domain_marked(struct sg_policy *p, const struct sg_msg_view *v)
{
	char *from = NULL, *to = NULL;
	int r = p->domain != NULL ? sg_domain_marker(v, &from, &to) : 0;
	/* a marker we cannot read is ours to refuse, not to pass */
	bool ours = r < 0 || (r > 0 && sg_domain_is_ours(p->domain, to));

	free(from);
	free(to);
	return ours;
}

int sg_policy_domain_inbound(struct sg_policy *p, const struct sg_envelope *env,
			     const unsigned char *data, size_t len, const struct sg_msg_view *v,
			     struct sg_transform_out *out, struct sg_error *err)
{
	/* not for a domain of ours (or not domain-sealed): the usual path */
	if (!sg_policy_domain_marked(p, v))
		return 0;
	for (size_t i = 0; i < env->n_rcpts; i++) {
		bool seen = false;
		const char *dom = domain_of(env->rcpts[i].addr);
		for (size_t j = 0; j < i && !seen; j++)
			seen = strcasecmp(domain_of(env->rcpts[j].addr), dom) == 0;
		if (!seen && open_for(p, env, data, len, dom, out, err) < 0)
			return -1;
	}
	return 1;
}
