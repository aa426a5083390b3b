/* The inbound transform: signed mail (OpenPGP or S/MIME) is verified
 * against the store's keys and the trust anchors and the outcome recorded
 * in an Authentication-Results field (RFC 8601); never signs, never seals. */
#include "keys/keystore.h"
#include "keys/lookup.h"
#include "mime/seal.h"
#include "policy/internal.h"
#include "policy/policy.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/spool.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INBOUND_OUT_MAX (1024u * 1024 * 1024)

/* The authserv-id of an Authentication-Results value: the first token
 * after optional CFWS (RFC 8601 s2.2), up to CFWS or ';'. 1 if it equals
 * id (case-insensitive, like the host name it is), else 0. */
static int claims_id(const char *value, const char *id)
{
	const char *p = value;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '(')
			break;
		int depth = 0;
		for (; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
	size_t n = strcspn(p, " \t;(");
	/* RFC 8601 s2.2 allows a quoted authserv-id. */
	if (n >= 2 && p[0] == '"' && p[n - 1] == '"')
		return n - 2 == strlen(id) && strncasecmp(p + 1, id, n - 2) == 0;
	return n == strlen(id) && strncasecmp(p, id, n) == 0;
}

int sg_policy_rewrite_ar(const struct sg_msg_view *v, const char *authserv_id,
			 const char *ar_field, struct sg_buf *out, struct sg_error *err)
{
	struct sg_msg_field f;
	size_t pos = 0, last = 0;
	int removed = 0;

	if (ar_field != NULL && !sg_buf_append_str(out, ar_field))
		goto full;
	while (sg_msg_next_field(v, &pos, &f) == 1) {
		if (!sg_msg_field_is(&f, "Authentication-Results"))
			continue;
		char *val = sg_msg_field_value(&f);
		int ours = claims_id(val, authserv_id);
		free(val);
		if (!ours)
			continue;
		/* A field claiming to be ours that we did not write is a forgery
		 * (RFC 8601 s5): drop it, bytes before it unchanged. */
		size_t at = (size_t)(f.raw - v->data);
		if (!sg_buf_append(out, v->data + last, at - last))
			goto full;
		last = at + f.raw_len;
		removed++;
	}
	if (!sg_buf_append(out, v->data + last, v->len - last))
		goto full;
	return removed;
full:
	sg_error_set(err, "message too large");
	return -1;
}

/* The address in a From field value: inside <...>, else the bare value. */
static char *from_addr(const struct sg_msg_view *v)
{
	struct sg_msg_field f;
	if (sg_msg_find_field(v, "From", &f) != 1)
		return NULL;
	char *val = sg_msg_field_value(&f), *a = NULL;
	char *lt = strrchr(val, '<'), *gt = lt != NULL ? strchr(lt, '>') : NULL;
	if (lt != NULL && gt != NULL)
		a = sg_strndup(lt + 1, (size_t)(gt - lt - 1));
	else
		a = sg_strdup(val);
	free(val);
	char *norm = sg_keys_normalize_addr(a, NULL);
	free(a);
	return norm;
}

/* Keys that may verify a signature claiming to be from addr: the store's
 * keys of that address and the S/MIME trust anchors (borrowed). */
static int verify_keys(struct sg_policy *p, const char *addr, struct sg_key ***keys_r, size_t *n_r,
		       size_t *n_owned_r, struct sg_error *err)
{
	struct sg_store_key *rows = NULL;
	size_t n = 0;
	struct sg_key **keys;
	size_t k = 0;

	if (addr != NULL) {
		pthread_mutex_lock(&p->lock);
		int r = sg_store_key_list(p->store, addr, &rows, &n, err);
		pthread_mutex_unlock(&p->lock);
		if (r < 0)
			return -1;
	}
	keys = sg_calloc(n + p->n_anchors + 1, sizeof(*keys));
	for (size_t i = 0; i < n; i++) {
		enum sg_crypto_status st;
		if (sg_key_load_mem(rows[i].data, rows[i].len, NULL, &keys[k], &st, NULL) == 1)
			k++;
	}
	*n_owned_r = k;
	for (size_t i = 0; i < p->n_anchors; i++)
		keys[k++] = p->anchors[i];
	sg_store_keys_free(&rows, n);
	*keys_r = keys;
	*n_r = k;
	return 1;
}

/* RFC 8601 s2.7 result for a verdict (RFC 7281 s3 for smime). A signer
 * whose revocation status could not be checked (require, no current CRL)
 * is temperror, an error likely transient (RFC 7281 s3), not neutral. */
static const char *result_name(const struct sg_unseal_result *res)
{
	if (res->sig == SG_SIG_UNKNOWN_SIGNER && res->revocation_unknown)
		return "temperror";
	switch (res->sig) {
	case SG_SIG_VALID: return "pass";
	case SG_SIG_BAD: return "fail";
	case SG_SIG_KEY_EXPIRED:
	case SG_SIG_KEY_REVOKED: return "policy";
	case SG_SIG_UNKNOWN_SIGNER: return "neutral";
	default: return "none";
	}
}

/* The comment beside a result other than pass. */
static const char *verdict_reason(const struct sg_unseal_result *res)
{
	switch (res->sig) {
	case SG_SIG_UNKNOWN_SIGNER:
		return res->revocation_unknown ? "signer revocation status unknown: no current CRL"
					       : "unknown signer";
	case SG_SIG_KEY_EXPIRED: return "signer key expired";
	case SG_SIG_KEY_REVOKED: return "signer key revoked";
	default: return "bad signature";
	}
}

/* The Authentication-Results field for a signed message. */
static char *verify(struct sg_policy *p, const struct sg_envelope *env, const unsigned char *data,
		    size_t len, const struct sg_msg_view *v, enum sg_msg_class cls)
{
	const char *method = cls == SG_MSG_PGP_SIGNED ? "openpgp" : "smime";
	char *from = from_addr(v), *field = NULL, *comment = NULL;
	struct sg_key **keys = NULL;
	size_t n = 0, owned = 0;
	struct sg_unseal_req req;
	struct sg_unseal_result res;
	struct sg_buf sink;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	struct sg_error err = SG_ERROR_INIT;
	const char *result;

	memset(&res, 0, sizeof(res));
	sg_buf_init(&sink, INBOUND_OUT_MAX);
	if (verify_keys(p, from, &keys, &n, &owned, &err) < 0) {
		result = "temperror";
		comment = sg_asprintf("key store: %s", sg_error_msg(&err));
		goto build;
	}
	memset(&req, 0, sizeof(req));
	req.verify_keys = keys;
	req.n_verify_keys = n;
	req.smime_revocation = p->revocation;
	if (sg_unseal(data, len, &req, &sink, &res, &st, &err) < 0) {
		result = st == SG_CRYPTO_INTERNAL ? "temperror" : "permerror";
		comment = sg_strdup(sg_crypto_status_name(st));
		goto build;
	}
	result = result_name(&res);
	if (res.sig == SG_SIG_VALID && cls != SG_MSG_PGP_SIGNED &&
	    (from == NULL || res.signer == NULL || strcasecmp(res.signer, from) != 0)) {
		/* A valid S/MIME signature by someone else than the author. */
		result = "policy";
		comment = sg_asprintf("signer %s is not the From address", res.signer != NULL ? res.signer : "?");
	} else if (res.sig == SG_SIG_VALID) {
		comment = sg_asprintf("signer %s", res.signer != NULL ? res.signer : "");
	} else {
		comment = sg_strdup(verdict_reason(&res));
	}
build:
	/* RFC 8601 s2.2: "authserv-id; method=result (comment) ptype.property=value".
	 * smime: RFC 7281; openpgp: unregistered, documented in doc/policy.md. */
	field = sg_asprintf("Authentication-Results: %s;\r\n\t%s=%s (%s)%s%s\r\n", p->authserv_id,
			    method, result, comment != NULL ? comment : "",
			    from != NULL ? " header.from=" : "", from != NULL ? from : "");
	/* Why a signer was not taken (e.g. "signer certificate: unable to get
	 * certificate CRL" under smime_revocation = require) goes to the log
	 * only: it can quote the certificate, which the sender chose. */
	sg_log_info("%s: verify: from=<%s>, method=%s, result=%s (%s)%s%s",
		    env->queue_id != NULL ? env->queue_id : "-", from != NULL ? from : "", method, result,
		    comment != NULL ? comment : "", res.warning != NULL ? "; " : "",
		    res.warning != NULL ? res.warning : "");
	for (size_t i = 0; i < owned; i++)
		sg_key_free(&keys[i]);
	free(keys);
	free(comment);
	free(from);
	sg_unseal_result_clear(&res);
	sg_buf_free_secret(&sink);
	sg_error_clear(&err);
	return field;
}

static int inbound_run(void *ctx, const struct sg_envelope *env, struct sg_spool *msg,
		       struct sg_transform_out *out, struct sg_error *err)
{
	struct sg_policy *p = ctx;
	const unsigned char *data = sg_spool_data(msg);
	size_t len = sg_spool_size(msg);
	struct sg_msg_view v;
	struct sg_buf b;
	char *ar = NULL;
	struct sg_spool *copy = NULL;
	int removed = 0, ret = -1;

	sg_buf_init(&b, INBOUND_OUT_MAX);
	if (sg_msg_split(data, len, &v, NULL) == 1) {
		/* domain-sealed for one of our domains: opened or refused there */
		int r = sg_policy_domain_inbound(p, env, data, len, &v, out, err);
		if (r != 0) {
			ret = r > 0 ? 1 : -1;
			goto out;
		}
		/* only the signed classes matter here: no inline-PGP body scan */
		enum sg_msg_class cls = sg_msg_classify_header(&v);
		(void)sg_keys_lookup_harvest(p->lookup, &v, time(NULL));
		if (p->cfg->inbound_verify && (cls == SG_MSG_PGP_SIGNED || cls == SG_MSG_SMIME_SIGNED))
			ar = verify(p, env, data, len, &v, cls);
		removed = sg_policy_rewrite_ar(&v, p->authserv_id, ar, &b, err);
		if (removed < 0)
			goto out;
		if (removed > 0)
			sg_log_info("%s: removed %d Authentication-Results field(s) claiming authserv-id %s",
				    env->queue_id != NULL ? env->queue_id : "-", removed, p->authserv_id);
		if (removed > 0 || ar != NULL)
			copy = sg_spool_from_mem(b.data, b.len);
	}
	/* Unsigned mail without forged fields passes byte for byte. */
	struct sg_transform_group *g = sg_transform_add_group(out, copy != NULL ? "verify" : "pass", copy);
	for (size_t i = 0; i < env->n_rcpts; i++)
		sg_transform_group_add_rcpt(g, i);
	ret = 1;
out:
	free(ar);
	sg_buf_free(&b);
	return ret;
}

/* Most inbound mail needs no crypto and no store write: unsigned, not
 * domain-sealed, nothing to harvest. Such a message is run on the event
 * loop (header checks and, at most, one copy to drop forged
 * Authentication-Results), saving two thread hand-offs. */
static bool inbound_cheap_for(void *ctx, const struct sg_envelope *env, const struct sg_spool *msg)
{
	struct sg_policy *p = ctx;
	struct sg_msg_view v;
	(void)env;

	if (sg_msg_split(sg_spool_data(msg), sg_spool_size(msg), &v, NULL) != 1)
		return true; /* inbound_run passes it as it is */
	if (p->cfg->inbound_verify && sg_msg_class_is_signed(sg_msg_classify_header(&v)))
		return false;
	return !sg_keys_lookup_may_harvest(p->lookup, &v) && !sg_policy_domain_marked(p, &v);
}

void sg_policy_inbound_transform(struct sg_policy *p, struct sg_transform *t_r)
{
	t_r->name = "policy-inbound";
	t_r->run = inbound_run;
	t_r->ctx = p;
	t_r->cheap_for = inbound_cheap_for;
}
