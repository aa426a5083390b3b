/* The outbound transform: per recipient a policy decision, recipients with
 * the same treatment and key format sealed together in one copy; nothing
 * policy says to protect ever leaves in the clear. */
#include "mime/seal.h"
#include "policy/internal.h"
#include "keys/keycache.h"
#include "policy/policy.h"
#include "policy/submission.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/spool.h"

#include <stdlib.h>
#include <string.h>

#define SEAL_OUT_MAX (1024u * 1024 * 1024)

/* The groups a message splits into (besides refused recipients). */
enum bucket {
	B_PGP = 0,      /* e2e, OpenPGP keys: one PGP/MIME copy */
	B_SMIME,        /* e2e, S/MIME certificates: one S/MIME copy */
	B_ENCRYPTED,    /* e2e/domain/portal, message already encrypted: untouched */
	B_PASS,         /* relay, clear */
	B_PASS_SIGNED,  /* relay, signed by the sender */
	B_TLS,          /* relay_tls_only, clear */
	B_TLS_SIGNED,   /* relay_tls_only, signed */
	B_DOMAIN,       /* domain keys: one copy per recipient domain (policy/domain.c) */
	B_COUNT
};

static const struct {
	const char *treatment;
	enum sg_route route;
} buckets[B_COUNT] = {
	{ "e2e-pgp", SG_ROUTE_RELAY },        { "e2e-smime", SG_ROUTE_RELAY },
	{ "already-encrypted", SG_ROUTE_RELAY }, { "pass", SG_ROUTE_RELAY },
	{ "pass-signed", SG_ROUTE_RELAY },    { "tls-only", SG_ROUTE_TLS_ONLY },
	{ "tls-only-signed", SG_ROUTE_TLS_ONLY }, { "domain", SG_ROUTE_RELAY },
};

struct outbound {
	struct sg_policy *p;
	const struct sg_envelope *env;
	const unsigned char *data;
	size_t len;
	struct sg_msg_view v;
	bool have_view;
	enum sg_msg_class cls;
	struct sg_policy_decision *d; /* per recipient */
	enum bucket *b;               /* per recipient; B_COUNT: refused */
	struct sg_key *signer;        /* the sender's key, when some recipient wants it; borrowed */
	struct sg_keycache_entry *signer_ref; /* holds signer */
	struct sg_transform_out *out;
};

static void log_rcpt(const struct outbound *o, size_t i, const char *what)
{
	const struct sg_policy_decision *d = &o->d[i];
	char *rule = d->rule != NULL ? sg_asprintf("%s:%u", d->rules_name, d->rule->line)
				     : sg_strdup("default");
	sg_log_info("%s: policy: to=<%s>, rule=%s, asked=%s, treatment=%s, %s%s%s",
		    o->env->queue_id != NULL ? o->env->queue_id : "-", o->env->rcpts[i].addr, rule,
		    sg_treatment_name(d->asked), sg_treatment_name(d->treatment), what,
		    d->note != NULL ? ", note=" : "", d->note != NULL ? d->note : "");
	free(rule);
}

static void refuse(struct outbound *o, size_t i, int code, const char *reply)
{
	sg_transform_answer(o->out, o->env->n_rcpts, i, code, "%s", reply);
	o->b[i] = B_COUNT;
	char *what = sg_asprintf("refused=%d %s", code, reply);
	log_rcpt(o, i, what);
	free(what);
}

static enum bucket pick_bucket(const struct outbound *o, size_t i)
{
	const struct sg_policy_decision *d = &o->d[i];
	bool encrypted = sg_msg_class_is_encrypted(o->cls);
	bool sign = d->sign && o->signer != NULL && !encrypted;

	if (encrypted && (d->asked == SG_TREAT_E2E || d->asked == SG_TREAT_DOMAIN ||
			  d->asked == SG_TREAT_PORTAL))
		return B_ENCRYPTED;
	if (d->code != 0)
		return B_COUNT;
	switch (d->treatment) {
	case SG_TREAT_E2E:
		return sg_key_kind(d->key) == SG_KEY_X509 ? B_SMIME : B_PGP;
	case SG_TREAT_DOMAIN:
		return B_DOMAIN;
	case SG_TREAT_TLS_ONLY:
		return sign ? B_TLS_SIGNED : B_TLS;
	case SG_TREAT_PASS:
		return sign ? B_PASS_SIGNED : B_PASS;
	default:
		/* Every other treatment refuses in the decision (code set). */
		sg_panic("policy: treatment %s without a reply", sg_treatment_name(d->treatment));
	}
}

/* Seal one copy for bucket b: encrypt to the keys of its recipients (none
 * for the signed buckets), signed by the sender where the format allows. */
static int seal_copy(struct outbound *o, enum bucket b, struct sg_spool **copy_r,
		     enum sg_crypto_status *st_r, struct sg_error *err)
{
	struct sg_key **keys = sg_calloc(o->env->n_rcpts, sizeof(*keys));
	struct sg_seal_req req;
	struct sg_buf sealed;
	enum sg_seal_outcome outcome;
	bool want_sign = false;
	int ret = -1;

	memset(&req, 0, sizeof(req));
	req.format = b == B_SMIME ? SG_SEAL_SMIME : SG_SEAL_PGP;
	for (size_t i = 0; i < o->env->n_rcpts; i++) {
		if (o->b[i] != b)
			continue;
		want_sign |= o->d[i].sign;
		if (o->d[i].key != NULL)
			keys[req.n_recipients++] = o->d[i].key;
	}
	req.recipients = keys;
	/* Only OpenPGP secret keys are stored for users today: an S/MIME
	 * copy goes out encrypted but unsigned. */
	if (want_sign && o->signer != NULL && sg_key_kind(o->signer) == (b == B_SMIME ? SG_KEY_X509 : SG_KEY_PGP))
		req.signer = o->signer;
	sg_buf_init(&sealed, SEAL_OUT_MAX);
	if (sg_seal(o->data, o->len, &req, &sealed, &outcome, st_r, err) < 0)
		goto out;
	*copy_r = sg_spool_from_mem(sealed.data, sealed.len);
	ret = 1;
out:
	sg_buf_free(&sealed);
	free(keys);
	return ret;
}

static void place(struct outbound *o, enum bucket b, struct sg_spool *copy)
{
	struct sg_transform_group *g = sg_transform_add_group(o->out, buckets[b].treatment, copy);
	g->route = buckets[b].route;
	for (size_t i = 0; i < o->env->n_rcpts; i++) {
		if (o->b[i] != b)
			continue;
		sg_transform_group_add_rcpt(g, i);
		const struct sg_policy_decision *d = &o->d[i];
		char *what = d->key != NULL && (b == B_PGP || b == B_SMIME)
			? sg_asprintf("key=%s%s", sg_key_fingerprint(d->key),
				      copy != NULL && o->signer != NULL && d->sign && b == B_PGP ? ", signed" : "")
			: sg_asprintf("group=%s", buckets[b].treatment);
		log_rcpt(o, i, what);
		free(what);
	}
}

/* A bucket whose copy could not be made: its recipients are refused
 * (encryption buckets), or get the clear copy (signing failed: the
 * treatment did not require protection). */
static void seal_failed(struct outbound *o, enum bucket b, enum sg_crypto_status st,
			const struct sg_error *why)
{
	if (b == B_PASS_SIGNED || b == B_TLS_SIGNED) {
		sg_log_warn("%s: policy: signing failed, sending unsigned: %s",
			    o->env->queue_id != NULL ? o->env->queue_id : "-", sg_error_msg(why));
		for (size_t i = 0; i < o->env->n_rcpts; i++)
			if (o->b[i] == b)
				o->b[i] = b == B_PASS_SIGNED ? B_PASS : B_TLS;
		return;
	}
	bool temp = st == SG_CRYPTO_INTERNAL;
	for (size_t i = 0; i < o->env->n_rcpts; i++) {
		if (o->b[i] != b)
			continue;
		char *reply = sg_asprintf("%s Encryption required by policy, sealing failed: %s",
					  temp ? "4.7.0" : "5.7.1", sg_error_msg(why));
		refuse(o, i, temp ? 451 : 554, reply);
		free(reply);
	}
}

static int find_signer(struct outbound *o)
{
	struct sg_error why = SG_ERROR_INIT;
	bool want = false;

	if (sg_msg_class_is_encrypted(o->cls) || sg_msg_class_is_signed(o->cls))
		return 1; /* never re-sign: the author's signature stays (seal.c) */
	for (size_t i = 0; i < o->env->n_rcpts; i++)
		want |= o->d[i].sign && o->d[i].code == 0;
	if (!want)
		return 1;
	int r = sg_policy_find_signer(o->p, o->env->mail_from, time(NULL), &o->signer_ref, &why);
	if (r == 1)
		o->signer = sg_keycache_key(o->signer_ref);
	if (r == 0)
		sg_log_info("%s: policy: not signed: %s", o->env->queue_id != NULL ? o->env->queue_id : "-",
			    sg_error_msg(&why));
	else if (r < 0)
		sg_log_warn("%s: policy: signing key look-up failed, not signed: %s",
			    o->env->queue_id != NULL ? o->env->queue_id : "-", sg_error_msg(&why));
	sg_error_clear(&why);
	return 1;
}

static int outbound_run(void *ctx, const struct sg_envelope *env, struct sg_spool *msg,
			struct sg_transform_out *out, struct sg_error *err)
{
	struct outbound o;
	struct sg_submission_prep prep;
	time_t now = time(NULL);
	int ret = -1;

	memset(&prep, 0, sizeof(prep));
	memset(&o, 0, sizeof(o));
	o.p = ctx;
	o.env = env;
	o.out = out;
	o.data = sg_spool_data(msg);
	o.len = sg_spool_size(msg);
	o.have_view = sg_msg_split(o.data, o.len, &o.v, NULL) == 1;
	o.cls = o.have_view ? sg_msg_classify(&o.v) : SG_MSG_PLAIN;
	o.d = sg_calloc(env->n_rcpts, sizeof(*o.d));
	o.b = sg_calloc(env->n_rcpts, sizeof(*o.b));
	/* Encrypted to the gateway: opened here; the content filter sees the
	 * plaintext; policy then applies to what they give back. */
	if (sg_submission_prepare(o.p, env, o.data, o.len, o.cls, &prep, err) < 0)
		goto out;
	if (prep.code != 0) {
		for (size_t i = 0; i < env->n_rcpts; i++)
			sg_transform_answer(out, env->n_rcpts, i, prep.code, "%s", prep.reply);
		ret = 1;
		goto out;
	}
	if (prep.msg.len > 0) {
		o.data = prep.msg.data;
		o.len = prep.msg.len;
		o.have_view = sg_msg_split(o.data, o.len, &o.v, NULL) == 1;
		o.cls = o.have_view ? sg_msg_classify(&o.v) : SG_MSG_PLAIN;
	}
	for (size_t i = 0; i < env->n_rcpts; i++) {
		if (sg_policy_decide(o.p, env->mail_from, env->rcpts[i].addr, o.have_view ? &o.v : NULL,
				     now, &o.d[i], err) < 0)
			goto out;
	}
	find_signer(&o);
	for (size_t i = 0; i < env->n_rcpts; i++) {
		o.b[i] = pick_bucket(&o, i);
		if (o.b[i] == B_COUNT)
			refuse(&o, i, o.d[i].code, o.d[i].reply);
	}
	/* The signed buckets first: when signing fails their recipients
	 * fall back to the clear buckets, placed after them. */
	static const enum bucket order[B_COUNT] = { B_PASS_SIGNED, B_TLS_SIGNED, B_PGP, B_SMIME,
						    B_DOMAIN, B_ENCRYPTED, B_PASS, B_TLS };
	for (int k = 0; k < B_COUNT; k++) {
		enum bucket b = order[k];
		struct sg_spool *copy = NULL;
		enum sg_crypto_status st = SG_CRYPTO_OK;
		struct sg_error why = SG_ERROR_INIT;
		bool any = false;
		for (size_t i = 0; i < env->n_rcpts; i++)
			any |= o.b[i] == b;
		if (!any)
			continue;
		if (b == B_DOMAIN) {
			bool *sel = sg_calloc(env->n_rcpts, sizeof(*sel));
			for (size_t i = 0; i < env->n_rcpts; i++)
				sel[i] = o.b[i] == B_DOMAIN;
			sg_policy_domain_place(o.p, env, o.data, o.len, o.d, sel, out);
			free(sel);
			continue;
		}
		bool needs_copy = b == B_PGP || b == B_SMIME || b == B_PASS_SIGNED || b == B_TLS_SIGNED;
		if (needs_copy && seal_copy(&o, b, &copy, &st, &why) < 0) {
			seal_failed(&o, b, st, &why);
			sg_error_clear(&why);
			continue;
		}
		if (!needs_copy && prep.msg.len > 0) /* decrypted or rewritten: never the original */
			copy = sg_spool_from_mem(o.data, o.len);
		place(&o, b, copy);
	}
	ret = 1;
out:
	for (size_t i = 0; i < env->n_rcpts; i++)
		sg_policy_decision_clear(&o.d[i]);
	free(o.d);
	free(o.b);
	sg_keycache_release(&o.signer_ref);
	sg_submission_prep_clear(&prep);
	return ret;
}

void sg_policy_outbound_transform(struct sg_policy *p, struct sg_transform *t_r)
{
	t_r->name = "policy-outbound";
	t_r->run = outbound_run;
	t_r->ctx = p;
}
