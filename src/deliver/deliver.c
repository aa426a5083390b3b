/* Sealing at rest on delivery: per recipient, find the user's key, seal
 * the message to it alone, then route to the mailbox server's LMTP or
 * write the Maildir here (250 only after the fsync). */
#include "deliver/deliver.h"
#include "keys/keycache.h"
#include "deliver/maildir.h"
#include "keys/lookup.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/spool.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct user_format {
	char *addr;
	enum sg_key_kind kind;
};

/* Keys found for an address are reused for deliver_key_cache_ttl
 * (keys/keycache.h): loading and checking a key costs more CPU than sealing
 * a small message. */
#define KEY_CACHE_MAX 256

struct sg_deliver {
	const struct sg_config *cfg;
	struct sg_keycache *keys;         /* deliver_key_cache_ttl; tag: the preferred kind */
	struct sg_keys_lookup *lk;
	enum sg_deliver_no_key no_key;
	enum sg_key_kind format;          /* 0: auto */
	struct sg_key *recovery;          /* recovery_key, NULL: none */
	struct user_format *users;
	size_t n_users;
	struct sg_transform transform;
};

static const struct {
	const char *name;
	enum sg_key_kind kind;
} formats[] = { { "auto", 0 }, { "pgp", SG_KEY_PGP }, { "smime", SG_KEY_X509 } };

static const struct {
	const char *name;
	enum sg_deliver_no_key policy;
} no_key_policies[] = {
	{ "plain", SG_NOKEY_PLAIN }, { "refuse", SG_NOKEY_REFUSE }, { "defer", SG_NOKEY_DEFER },
};

static int parse_format(const char *s, size_t n, enum sg_key_kind *kind_r)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (strlen(formats[i].name) == n && strncmp(formats[i].name, s, n) == 0) {
			*kind_r = formats[i].kind;
			return 1;
		}
	return -1;
}

/* "alice@a.test=smime bob@b.test=pgp" */
static int parse_users(struct sg_deliver *d, const char *spec, struct sg_error *err)
{
	const char *p = spec;

	while (*p != '\0') {
		p += strspn(p, " \t");
		size_t n = strcspn(p, " \t");
		if (n == 0)
			break;
		const char *eq = memchr(p, '=', n);
		enum sg_key_kind kind = 0;
		if (eq == NULL || eq == p ||
		    parse_format(eq + 1, n - (size_t)(eq + 1 - p), &kind) < 0 || kind == 0) {
			sg_error_set(err, "deliver_user_formats: '%.*s' is not ADDR=pgp|smime",
				     (int)n, p);
			return -1;
		}
		d->users = sg_reallocarray(d->users, d->n_users + 1, sizeof(*d->users));
		d->users[d->n_users].addr = sg_strndup(p, (size_t)(eq - p));
		d->users[d->n_users++].kind = kind;
		p += n;
	}
	return 1;
}

enum sg_key_kind sg_deliver_pref(const struct sg_deliver *d, const char *addr)
{
	for (size_t i = 0; i < d->n_users; i++)
		if (strcasecmp(d->users[i].addr, addr) == 0)
			return d->users[i].kind;
	return d->format;
}

int sg_deliver_recovery_load(const char *path, struct sg_key **key_r, struct sg_error *err)
{
	enum sg_crypto_status st = SG_CRYPTO_OK;
	*key_r = NULL;
	if (path == NULL || path[0] == '\0')
		return 1;
	if (sg_key_load_file(path, NULL, key_r, &st, err) < 0 ||
	    sg_key_usable_for_encrypt(*key_r, time(NULL), &st, err) != 1) {
		sg_key_free(key_r);
		sg_error_prefix(err, "recovery_key %s", path);
		return -1;
	}
	return 1;
}

int sg_deliver_seal(const unsigned char *msg, size_t len, struct sg_key *key,
		    struct sg_key *recovery, const char *neutral_subject,
		    unsigned char **out_r, size_t *len_r,
		    enum sg_seal_outcome *outcome_r, enum sg_crypto_status *status_r,
		    struct sg_error *err)
{
	struct sg_key *rcpts[2] = { key, recovery };
	bool with_recovery = recovery != NULL && sg_key_kind(recovery) == sg_key_kind(key);
	struct sg_seal_req req = {
		.format = sg_key_kind(key) == SG_KEY_X509 ? SG_SEAL_SMIME : SG_SEAL_PGP,
		.recipients = rcpts,
		.n_recipients = with_recovery ? 2 : 1,
		.signer = NULL, /* at rest: encrypt only; the sender's signature, if any, is inside */
		.neutral_subject = neutral_subject,
	};
	struct sg_buf out;
	int ret;

	/* Base64 and armour: about 4/3 plus headers; never unbounded. */
	sg_buf_init(&out, len * 2 + 1024 * 1024);
	ret = sg_seal(msg, len, &req, &out, outcome_r, status_r, err);
	if (ret < 0) {
		sg_buf_free(&out);
		return -1;
	}
	*out_r = sg_buf_steal(&out, len_r);
	return 1;
}

/* The key for addr: from the cache, else the store. 1 with *c_r (release
 * with sg_keycache_release), 0 none (status, err), -1 store error. */
static int find_key(struct sg_deliver *d, const char *addr, struct sg_keycache_entry **c_r,
		    enum sg_crypto_status *status_r, struct sg_error *err)
{
	enum sg_key_kind pref = sg_deliver_pref(d, addr);
	char *lower = sg_strdup(addr);
	struct sg_key *key = NULL;
	int r;

	for (char *p = lower; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	*c_r = sg_keycache_get(d->keys, lower, (int)pref);
	if (*c_r != NULL) {
		free(lower);
		return 1;
	}
	r = sg_keys_find_encrypt(d->lk, addr, pref, time(NULL), &key, status_r, err);
	if (r == 1)
		*c_r = sg_keycache_put(d->keys, lower, (int)pref, key);
	free(lower);
	return r;
}

/* What one recipient gets: the bytes to store and how they came about. */
struct plan {
	const unsigned char *bytes;  /* borrowed (the original) or == owned */
	size_t len;
	unsigned char *owned;
	const char *treatment;       /* "sealed-pgp", "sealed-smime", "encrypted", "plain" */
	char *why;                   /* for the log: key fingerprint or the reason; owned */
};

static void plan_clear(struct plan *p)
{
	free(p->owned);
	free(p->why);
	memset(p, 0, sizeof(*p));
}

/* No usable key (or the message cannot be sealed): the no-key policy.
 * 1: store p's original bytes; 0: answered. */
static int no_key(struct sg_deliver *d, const struct sg_envelope *env, size_t i,
		  const unsigned char *msg, size_t len, const char *reason, struct plan *p,
		  struct sg_transform_out *out)
{
	switch (d->no_key) {
	case SG_NOKEY_REFUSE:
		sg_transform_answer(out, env->n_rcpts, i, 550, "5.7.1 <%s>: not delivered: %s",
				    env->rcpts[i].addr, reason);
		sg_log_info("%s: to=<%s>, deliver: refused: %s", env->queue_id,
			    env->rcpts[i].addr, reason);
		return 0;
	case SG_NOKEY_DEFER:
		sg_transform_answer(out, env->n_rcpts, i, 450, "4.7.1 <%s>: not delivered now: %s",
				    env->rcpts[i].addr, reason);
		sg_log_info("%s: to=<%s>, deliver: deferred: %s", env->queue_id,
			    env->rcpts[i].addr, reason);
		return 0;
	case SG_NOKEY_PLAIN:
		break;
	}
	p->bytes = msg;
	p->len = len;
	p->treatment = "plain";
	p->why = sg_asprintf("stored in the clear: %s", reason);
	return 1;
}

/* Decide recipient i's bytes. 1: deliver p; 0: answered; -1: store error. */
static int plan_rcpt(struct sg_deliver *d, const struct sg_envelope *env, size_t i,
		     const unsigned char *msg, size_t len, struct plan *p,
		     struct sg_transform_out *out, struct sg_error *err)
{
	const char *addr = env->rcpts[i].addr;
	struct sg_keycache_entry *ck = NULL;
	struct sg_key *key = NULL;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	enum sg_seal_outcome outcome = SG_SEAL_SEALED;
	struct sg_error kerr = SG_ERROR_INIT;
	int ret = -1;

	int r = find_key(d, addr, &ck, &st, &kerr);
	if (r == 1)
		key = sg_keycache_key(ck);
	if (r < 0) {
		sg_error_set(err, "key look-up for %s: %s", addr, sg_error_msg(&kerr));
		goto out;
	}
	if (r == 0) {
		ret = no_key(d, env, i, msg, len, sg_error_msg(&kerr), p, out);
		goto out;
	}
	if (sg_deliver_seal(msg, len, key, d->recovery, d->cfg->deliver_subject, &p->owned, &p->len,
			    &outcome, &st, &kerr) < 0) {
		if (st == SG_CRYPTO_INTERNAL) {
			sg_error_set(err, "seal for %s: %s", addr, sg_error_msg(&kerr));
			goto out;
		}
		char *reason = sg_asprintf("cannot seal (%s): %s", sg_crypto_status_name(st),
					   sg_error_msg(&kerr));
		ret = no_key(d, env, i, msg, len, reason, p, out);
		free(reason);
		goto out;
	}
	p->bytes = p->owned;
	if (outcome == SG_SEAL_ALREADY_ENCRYPTED) {
		p->treatment = "encrypted";
		p->why = sg_strdup("already encrypted: stored as it is");
	} else {
		p->treatment = sg_key_kind(key) == SG_KEY_X509 ? "sealed-smime" : "sealed-pgp";
		p->why = sg_asprintf("key %s%s%s", sg_key_fingerprint(key),
				     d->recovery == NULL ? ""
				     : sg_key_kind(d->recovery) == sg_key_kind(key) ? ", recovery key "
										: ", no recovery key (other format) ",
				     d->recovery == NULL ? "" : sg_key_fingerprint(d->recovery));
	}
	ret = 1;
out:
	sg_keycache_release(&ck);
	sg_error_clear(&kerr);
	return ret;
}

static void to_maildir(struct sg_deliver *d, const struct sg_envelope *env, size_t i,
		       const struct plan *p, struct sg_transform_out *out)
{
	const char *addr = env->rcpts[i].addr;
	struct sg_error err = SG_ERROR_INIT;
	char *dir = NULL, *path = NULL;

	if (sg_maildir_expand(d->cfg->deliver_maildir, addr, &dir, &err) < 0) {
		sg_transform_answer(out, env->n_rcpts, i, 550, "5.1.1 <%s>: %s", addr,
				    sg_error_msg(&err));
		sg_log_warn("%s: to=<%s>, deliver: %s", env->queue_id, addr, sg_error_msg(&err));
		goto out;
	}
	if (sg_maildir_deliver(dir, p->bytes, p->len, &path, &err) < 0) {
		/* RFC 3463 4.3.1: mail system full (or the mailbox unwritable). */
		sg_transform_answer(out, env->n_rcpts, i, 452, "4.3.1 <%s>: cannot store: %s", addr,
				    sg_error_msg(&err));
		sg_log_warn("%s: to=<%s>, deliver=maildir, status=deferred (%s), %s", env->queue_id,
			    addr, sg_error_msg(&err), p->why);
		goto out;
	}
	sg_transform_answer(out, env->n_rcpts, i, 250, "2.0.0 <%s> %s: delivered (%s)", addr,
			    env->queue_id, p->treatment);
	sg_log_info("%s: to=<%s>, deliver=maildir, treatment=%s, %s, path=%s", env->queue_id, addr,
		    p->treatment, p->why, path);
out:
	free(dir);
	free(path);
	sg_error_clear(&err);
}

static void to_lmtp(const struct sg_envelope *env, size_t i, const struct plan *p,
		    const unsigned char *msg, struct sg_transform_out *out)
{
	struct sg_spool *sp = p->bytes == msg ? NULL : sg_spool_from_mem(p->bytes, p->len);
	struct sg_transform_group *g = sg_transform_add_group(out, p->treatment, sp);
	g->route = SG_ROUTE_DELIVER;
	sg_transform_group_add_rcpt(g, i);
	sg_log_info("%s: to=<%s>, deliver=lmtp, treatment=%s, %s", env->queue_id,
		    env->rcpts[i].addr, p->treatment, p->why);
}

static int deliver_run(void *ctx, const struct sg_envelope *env, struct sg_spool *msg,
		       struct sg_transform_out *out, struct sg_error *err)
{
	struct sg_deliver *d = ctx;
	const unsigned char *data = sg_spool_data(msg);
	size_t len = sg_spool_size(msg);

	for (size_t i = 0; i < env->n_rcpts; i++) {
		struct plan p;
		memset(&p, 0, sizeof(p));
		int r = plan_rcpt(d, env, i, data, len, &p, out, err);
		if (r < 0) {
			plan_clear(&p);
			return -1;
		}
		if (r > 0) {
			if (d->cfg->deliver_maildir[0] != '\0')
				to_maildir(d, env, i, &p, out);
			else
				to_lmtp(env, i, &p, data, out);
		}
		plan_clear(&p);
	}
	return 1;
}

struct sg_deliver *sg_deliver_new(const struct sg_config *cfg, struct sg_keys_lookup *lk,
				  struct sg_error *err)
{
	struct sg_deliver *d = sg_calloc(1, sizeof(*d));
	const char *f = cfg->deliver_format;

	d->cfg = cfg;
	d->lk = lk;
	d->keys = sg_keycache_new(cfg->deliver_key_cache_ttl, KEY_CACHE_MAX);
	for (size_t i = 0; i < sizeof(no_key_policies) / sizeof(no_key_policies[0]); i++)
		if (strcmp(no_key_policies[i].name, cfg->deliver_no_key) == 0)
			d->no_key = no_key_policies[i].policy;
	if (parse_format(f, strlen(f), &d->format) < 0) {
		sg_error_set(err, "deliver_format: '%s' is not auto, pgp or smime", f);
		goto fail;
	}
	if (parse_users(d, cfg->deliver_user_formats, err) < 0)
		goto fail;
	/* A configured but unusable recovery key stops the start: mail sealed
	 * without it could be lost with the user's key. */
	if (sg_deliver_recovery_load(cfg->recovery_key, &d->recovery, err) < 0)
		goto fail;
	if (cfg->deliver_maildir[0] == '\0' && cfg->deliver_lmtp[0] == '\0') {
		sg_error_set(err, "deliver_listen needs deliver_lmtp (the mailbox server's LMTP) "
			     "or deliver_maildir");
		goto fail;
	}
	if (cfg->deliver_maildir[0] != '\0') {
		char *probe = NULL;
		if (sg_maildir_expand(cfg->deliver_maildir, "user@example.test", &probe, err) < 0) {
			sg_error_prefix(err, "deliver_maildir");
			goto fail;
		}
		free(probe);
	}
	d->transform.name = "deliver";
	d->transform.run = deliver_run;
	d->transform.ctx = d;
	return d;
fail:
	sg_deliver_free(&d);
	return NULL;
}

const struct sg_transform *sg_deliver_transform(struct sg_deliver *d)
{
	return &d->transform;
}

void sg_deliver_free(struct sg_deliver **dp)
{
	struct sg_deliver *d = *dp;
	if (d == NULL)
		return;
	sg_keycache_free(&d->keys);
	for (size_t i = 0; i < d->n_users; i++)
		free(d->users[i].addr);
	free(d->users);
	sg_key_free(&d->recovery);
	free(d);
	*dp = NULL;
}
