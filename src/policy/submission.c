/* Encrypted submission and the content filter, on the outbound role only:
 * mail encrypted to the gateway is opened (integrity checked, signed by the
 * envelope sender, inner From bound to the envelope) and the plaintext
 * passes the content filter before policy re-seals it per recipient. */
#include "policy/submission.h"
#include "keys/keystore.h"
#include "mime/seal.h"
#include "policy/filter.h"
#include "policy/internal.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/secret.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* cli/cmd-key.c stores OpenPGP secret keys under this purpose. */
#define PGP_SECRET_PURPOSE "pgp-secret"
#define PLAIN_MAX (1024u * 1024 * 1024)
#define FILTER_OUTPUT_MAX (1024u * 1024 * 1024)
#define RCPTS_ENV_MAX (120u * 1024) /* below Linux's 128 KiB limit of one environment string */

struct sg_submission {
	const struct sg_config *cfg;
	struct sg_key **keys;     /* the gateway's secret keys */
	size_t n_keys;
	struct sg_filter filter;  /* cmd NULL: off */
};

static void add_key(struct sg_submission *s, struct sg_key *k)
{
	s->keys = sg_reallocarray(s->keys, s->n_keys + 1, sizeof(*s->keys));
	s->keys[s->n_keys++] = k;
}

/* One stored OpenPGP key of the gateway, its secret part opened. */
static int load_stored(struct sg_submission *s, struct sg_store *store, const struct sg_master_key *mk,
		       const struct sg_store_key *row, struct sg_error *err)
{
	unsigned char *plain = NULL;
	size_t len = 0;
	struct sg_key *k = NULL;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	int r = sg_keys_get_private(store, mk, row->addr, row->fingerprint, PGP_SECRET_PURPOSE, &plain, &len, err);
	if (r <= 0)
		return r;
	r = sg_key_load_mem(plain, len, NULL, &k, &st, err);
	sg_secret_free(&plain, len + 1);
	if (r < 0) {
		sg_error_prefix(err, "gateway key %s: %s", row->fingerprint, sg_crypto_status_name(st));
		return -1;
	}
	add_key(s, k);
	return 1;
}

static int load_store_keys(struct sg_submission *s, struct sg_store *store, const struct sg_master_key *mk,
			   struct sg_error *err)
{
	struct sg_store_key *rows = NULL;
	size_t n = 0;
	char *addr = sg_keys_normalize_addr(s->cfg->gateway_address, err);
	int ret = -1;

	if (addr == NULL) {
		sg_error_prefix(err, "gateway_address");
		return -1;
	}
	if (mk == NULL) {
		sg_error_set(err, "gateway_address needs master_key_file (the gateway's secret keys are sealed under it)");
		goto out;
	}
	if (sg_store_key_list(store, addr, &rows, &n, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (strcmp(rows[i].kind, "pgp") == 0 && load_stored(s, store, mk, &rows[i], err) < 0)
			goto out;
	if (s->n_keys == 0)
		sg_log_warn("submission: no secret key stored for gateway_address %s "
			    "(sealgate key generate --gateway): encrypted submission cannot be opened", addr);
	ret = 1;
out:
	sg_store_keys_free(&rows, n);
	free(addr);
	return ret;
}

/* PEM private key + certificate; like every private key file, not
 * readable by group or others. */
static int load_smime_key(struct sg_submission *s, const char *path, struct sg_error *err)
{
	struct stat sb;
	struct sg_key *k = NULL;
	enum sg_crypto_status st = SG_CRYPTO_OK;

	if (stat(path, &sb) < 0 || (sb.st_mode & 077) != 0) {
		sg_error_set(err, "gateway_smime_key %s: missing, or readable by group/others", path);
		return -1;
	}
	if (sg_key_load_file(path, NULL, &k, &st, err) < 0 || !sg_key_has_secret(k) ||
	    sg_key_kind(k) != SG_KEY_X509) {
		if (k != NULL)
			sg_error_set(err, "not an X.509 certificate with its private key");
		sg_key_free(&k);
		sg_error_prefix(err, "gateway_smime_key %s", path);
		return -1;
	}
	add_key(s, k);
	return 1;
}

int sg_submission_new(const struct sg_config *cfg, struct sg_store *store,
		      const struct sg_master_key *mk, struct sg_submission **s_r, struct sg_error *err)
{
	struct sg_submission *s = sg_calloc(1, sizeof(*s));

	*s_r = NULL;
	s->cfg = cfg;
	if (cfg->content_filter_cmd[0] != '\0') {
		s->filter.cmd = cfg->content_filter_cmd;
		s->filter.timeout = cfg->content_filter_timeout;
		s->filter.rewrite = cfg->content_filter_rewrite;
		s->filter.max_output = cfg->content_filter_rewrite ? FILTER_OUTPUT_MAX : 4096;
	}
	if ((cfg->gateway_address[0] != '\0' && load_store_keys(s, store, mk, err) < 0) ||
	    (cfg->gateway_smime_key[0] != '\0' && load_smime_key(s, cfg->gateway_smime_key, err) < 0)) {
		sg_submission_free(&s);
		return -1;
	}
	if (s->n_keys > 0)
		sg_log_info("submission: %zu gateway key(s) open mail encrypted to the gateway", s->n_keys);
	*s_r = s;
	return 1;
}

void sg_submission_free(struct sg_submission **sp)
{
	struct sg_submission *s = *sp;
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_keys; i++)
		sg_key_free(&s->keys[i]);
	free(s->keys);
	free(s);
	*sp = NULL;
}

void sg_submission_prep_clear(struct sg_submission_prep *r)
{
	sg_buf_free_secret(&r->msg);
	free(r->reply);
	r->reply = NULL;
	r->code = 0;
}

static const char *qid(const struct sg_envelope *env)
{
	return env->queue_id != NULL ? env->queue_id : "-";
}

static void refuse(struct sg_submission_prep *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void refuse(struct sg_submission_prep *r, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	free(r->reply);
	r->code = code;
	r->reply = sg_vasprintf(fmt, ap);
	va_end(ap);
}

/* What Postfix told us about the submitting client: XFORWARD (the original
 * client) and an AUTH= hint on MAIL FROM (RFC 4954 s5). Sender binding
 * itself is Postfix's reject_sender_login_mismatch (doc/postfix.md). */
static void log_client(const struct sg_envelope *env)
{
	char *auth = NULL;
	bool have_auth = env->mail_params != NULL && sg_esmtp_param(env->mail_params, "AUTH", &auth) == 1;
	if (env->xf.addr == NULL && env->xf.name == NULL && !have_auth)
		return;
	sg_log_info("%s: submission: client=%s[%s], proto=%s, ident=%s, auth=%s", qid(env),
		    env->xf.name != NULL ? env->xf.name : "unknown", env->xf.addr != NULL ? env->xf.addr : "unknown",
		    env->xf.proto != NULL ? env->xf.proto : "-", env->xf.ident != NULL ? env->xf.ident : "-",
		    have_auth ? auth : "-");
	free(auth);
}

/* The sender's public keys from the store: the only keys a signature of
 * an encrypted submission may verify against. */
static int sender_keys(struct sg_policy *p, const char *sender, struct sg_key ***keys_r, size_t *n_r,
		       struct sg_error *err)
{
	struct sg_store_key *rows = NULL;
	size_t n = 0;
	char *addr = *sender != '\0' ? sg_keys_normalize_addr(sender, NULL) : NULL;
	int r = 1;

	*keys_r = NULL;
	*n_r = 0;
	if (addr == NULL)
		return 1;
	pthread_mutex_lock(&p->lock);
	r = sg_store_key_list(p->store, addr, &rows, &n, err);
	pthread_mutex_unlock(&p->lock);
	*keys_r = sg_calloc(n + 1, sizeof(**keys_r));
	for (size_t i = 0; r >= 0 && i < n; i++) {
		enum sg_crypto_status st = SG_CRYPTO_OK;
		struct sg_error ignore = SG_ERROR_INIT;
		if (sg_key_load_mem(rows[i].data, rows[i].len, NULL, &(*keys_r)[*n_r], &st, &ignore) == 1)
			(*n_r)++;
		sg_error_clear(&ignore);
	}
	sg_store_keys_free(&rows, n);
	free(addr);
	return r < 0 ? -1 : 1;
}

static void free_keys(struct sg_key **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sg_key_free(&keys[i]);
	free(keys);
}

/* The address in the first From: of the plaintext, lower-cased; NULL if
 * there is none, or more than one mailbox (more than one '@'). */
static char *inner_from(const unsigned char *data, size_t len)
{
	struct sg_msg_view v;
	struct sg_msg_field f;
	char *addr = NULL;

	if (sg_msg_split(data, len, &v, NULL) != 1 || sg_msg_find_field(&v, "From", &f) != 1)
		return NULL;
	char *val = sg_msg_field_value(&f);
	char *at = strchr(val, '@'), *lt = strrchr(val, '<'), *gt = lt != NULL ? strchr(lt, '>') : NULL;
	if (at != NULL && strchr(at + 1, '@') == NULL) {
		if (gt != NULL)
			*gt = '\0';
		addr = sg_keys_normalize_addr(lt != NULL ? lt + 1 : val, NULL);
	}
	free(val);
	return addr;
}

/* The checks a decrypted submission must pass before anyone sees it:
 * integrity (unless CBC is allowed), a signature by the envelope sender,
 * and the inner From bound to the envelope (no surreptitious forwarding:
 * someone else's ciphertext resubmitted under another login). */
static void bind_checks(struct sg_submission *s, const struct sg_envelope *env, const struct sg_unseal_result *res,
			const struct sg_buf *plain, struct sg_submission_prep *r)
{
	static const char *const sig_names[] = { "not signed", "valid", "bad signature", "unknown signer",
						 "signer key expired", "signer key revoked" };
	char *from = inner_from(plain->data, plain->len);

	if (!res->authenticated && !s->cfg->submission_allow_cbc)
		refuse(r, 554, "5.7.1 Encrypted submission refused: no integrity protection "
		       "(S/MIME AES-CBC; use AuthEnvelopedData, or set submission_allow_cbc)");
	else if (s->cfg->submission_require_signature && res->sig != SG_SIG_VALID)
		refuse(r, 554, "5.7.1 Encrypted submission refused: must be signed by a key stored for "
		       "the sender (%s)", sig_names[res->sig]);
	else if (from == NULL || strcasecmp(from, env->mail_from) != 0)
		refuse(r, 554, "5.7.1 Encrypted submission refused: inner From <%s> is not the sender <%s>",
		       from != NULL ? from : "", env->mail_from);
	free(from);
}

/* 1 decrypted into r->msg (or refused: r->code), 0 not encrypted to us. */
static int open_for_gateway(struct sg_policy *p, struct sg_submission *s, const struct sg_envelope *env,
			    const unsigned char *data, size_t len, struct sg_submission_prep *r,
			    struct sg_error *err)
{
	struct sg_key **verify = NULL;
	size_t n_verify = 0;
	struct sg_unseal_req req = { .keys = s->keys, .n_keys = s->n_keys };
	struct sg_unseal_result res;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	struct sg_error why = SG_ERROR_INIT;
	int ret = -1;

	memset(&res, 0, sizeof(res));
	if (sender_keys(p, env->mail_from, &verify, &n_verify, err) < 0)
		goto out;
	req.verify_keys = verify;
	req.n_verify_keys = n_verify;
	ret = 1;
	if (sg_unseal(data, len, &req, &r->msg, &res, &st, &why) < 0) {
		if (st == SG_CRYPTO_WRONG_KEY || st == SG_CRYPTO_NO_KEY) {
			ret = 0; /* end-to-end to someone else: passes as it is */
			goto out;
		}
		/* Ours (or undecidable) but unreadable: relaying it would give
		 * the recipient ciphertext nobody can read. */
		refuse(r, st == SG_CRYPTO_INTERNAL ? 451 : 554, "%s Encrypted submission could not be decrypted: %s: %s",
		       st == SG_CRYPTO_INTERNAL ? "4.7.0" : "5.7.1", sg_crypto_status_name(st), sg_error_msg(&why));
		sg_log_info("%s: submission: %s", qid(env), r->reply);
		goto out;
	}
	bind_checks(s, env, &res, &r->msg, r);
	sg_log_info("%s: submission: decrypted with %s, integrity=%s, signer=%s, %s", qid(env),
		    res.decrypted_with != NULL ? res.decrypted_with : "?", res.authenticated ? "yes" : "no",
		    res.signer != NULL ? res.signer : "-", r->code != 0 ? r->reply : "accepted");
out:
	if (r->code != 0)
		sg_buf_free_secret(&r->msg); /* never a plaintext for a refused message */
	sg_unseal_result_clear(&res);
	sg_error_clear(&why);
	free_keys(verify, n_verify);
	return ret;
}

/* Our environment plus the envelope, for the filter: SEALGATE_SENDER,
 * SEALGATE_RECIPIENTS (space separated), SEALGATE_QUEUE_ID,
 * SEALGATE_CLIENT_ADDR (the original client, from XFORWARD). Free with
 * free_env. */
static char **filter_env(const struct sg_envelope *env, size_t *n_own_r)
{
	extern char **environ;
	struct sg_buf rcpts;
	size_t n = 0;

	while (environ[n] != NULL)
		n++;
	char **e = sg_calloc(n + 5, sizeof(*e));
	memcpy(e, environ, n * sizeof(*e));
	sg_buf_init(&rcpts, RCPTS_ENV_MAX);
	for (size_t i = 0; i < env->n_rcpts; i++)
		if (sg_buf_printf(&rcpts, "%s%s", i > 0 ? " " : "", env->rcpts[i].addr) != 1)
			break; /* the environment has limits too; the envelope is a hint */
	e[n] = sg_asprintf("SEALGATE_SENDER=%s", env->mail_from);
	e[n + 1] = sg_asprintf("SEALGATE_RECIPIENTS=%s", sg_buf_str(&rcpts));
	e[n + 2] = sg_asprintf("SEALGATE_QUEUE_ID=%s", qid(env));
	e[n + 3] = sg_asprintf("SEALGATE_CLIENT_ADDR=%s", env->xf.addr != NULL ? env->xf.addr
							 : env->client_addr != NULL ? env->client_addr : "");
	sg_buf_free(&rcpts);
	*n_own_r = n;
	return e;
}

static void free_env(char **e, size_t first_own)
{
	for (size_t i = first_own; e[i] != NULL; i++)
		free(e[i]);
	free(e);
}

/* The filter over the plaintext; a rewritten message replaces r->msg. */
static void run_filter(struct sg_submission *s, const struct sg_envelope *env, const unsigned char *data,
		       size_t len, struct sg_submission_prep *r)
{
	struct sg_buf out;
	char *reason = NULL;
	struct sg_error why = SG_ERROR_INIT;

	struct sg_filter f = s->filter;
	size_t own = 0;
	char **envp = filter_env(env, &own);

	f.envp = envp;
	sg_buf_init(&out, FILTER_OUTPUT_MAX);
	enum sg_filter_verdict v = sg_filter_run(&f, data, len, &out, &reason);
	free_env(envp, own);
	sg_log_info("%s: content filter: %s: %s", qid(env),
		    v == SG_FILTER_ACCEPT ? (out.len > 0 ? "rewritten" : "accepted")
					  : v == SG_FILTER_REJECT ? "rejected" : "unavailable", reason);
	if (v == SG_FILTER_REJECT)
		refuse(r, 554, "5.7.1 %s", reason);
	else if (v == SG_FILTER_TEMPFAIL)
		refuse(r, 451, "4.7.1 content filter unavailable");
	else if (out.len > 0) {
		struct sg_buf crlf;
		sg_buf_init(&crlf, PLAIN_MAX);
		if (sg_msg_to_crlf(out.data, out.len, &crlf, &why) < 0) {
			refuse(r, 451, "4.7.1 content filter output unusable: %s", sg_error_msg(&why));
			sg_buf_free_secret(&crlf);
		} else {
			sg_buf_free_secret(&r->msg);
			r->msg = crlf;
		}
	}
	sg_error_clear(&why);
	sg_buf_free_secret(&out);
	free(reason);
}

int sg_submission_prepare(struct sg_policy *p, const struct sg_envelope *env,
			  const unsigned char *data, size_t len, enum sg_msg_class cls,
			  struct sg_submission_prep *r, struct sg_error *err)
{
	struct sg_submission *s = p->submission;

	memset(r, 0, sizeof(*r));
	sg_buf_init(&r->msg, PLAIN_MAX);
	log_client(env);
	if (s == NULL)
		return 1;
	if (sg_msg_class_is_encrypted(cls)) {
		int o = s->n_keys > 0 ? open_for_gateway(p, s, env, data, len, r, err) : 0;
		if (o <= 0 || r->code != 0)
			return o < 0 ? -1 : 1; /* not ours: the filter cannot see inside */
	}
	if (s->filter.cmd != NULL) {
		bool opened = r->msg.len > 0;
		struct sg_buf keep = r->msg;
		sg_buf_init(&r->msg, PLAIN_MAX);
		run_filter(s, env, opened ? keep.data : data, opened ? keep.len : len, r);
		if (r->msg.len == 0 && r->code == 0) {
			sg_buf_free_secret(&r->msg);
			r->msg = keep; /* not rewritten: the decrypted message (or none) stays */
		} else {
			sg_buf_free_secret(&keep);
		}
	}
	return 1;
}
