/* Publishing our domain keys (a PEM bundle at a well-known HTTPS path) and
 * trusting peers' bundles: parse, check the certification, pin, cache. */
#include "domain/internal.h"
#include "keys/remote.h"
#include "store/store.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUNDLE_MAX SG_KEYS_MAX_RESPONSE
#define CACHE_SOURCE "domain-keys"
#define FETCH_BUDGET_MS 10000u

/* The key-cache address of domain's bundle (owned): get_bundle stores
 * under it and sg_domain_peer_forget drops it, so both use this. */
static char *bundle_cache_addr(const char *domain)
{
	return sg_asprintf("domain:%s", domain);
}

/* ---- our bundle ---- */

int sg_domain_bundle_build(struct sg_store *store, time_t now, struct sg_buf *out,
			   struct sg_error *err)
{
	struct sg_store_domain_key *rows = NULL;
	size_t n = 0;
	int ret = 0;

	if (sg_store_domain_key_list(store, &rows, &n, err) < 0)
		return -1;
	/* the signing certificate first: a reader takes it as the issuer */
	for (int pass = 0; pass < 2 && ret >= 0; pass++) {
		for (size_t i = 0; i < n; i++) {
			bool signing = strcmp(rows[i].kind, "signing") == 0;
			bool enc = strcmp(rows[i].kind, "encryption") == 0; /* not "retired" */
			if ((pass == 0 ? !signing : !enc) || (enc && rows[i].not_after <= now))
				continue;
			if (!sg_buf_append(out, rows[i].cert, rows[i].len)) {
				sg_error_set(err, "bundle larger than %zu bytes", out->max);
				ret = -1;
				break;
			}
			if (signing)
				ret = 1;
		}
	}
	sg_store_domain_keys_free(&rows, n);
	return ret;
}

int sg_domain_respond(struct sg_store *store, const char *path, size_t path_len,
		      unsigned *status_r, unsigned char **body_r, size_t *len_r,
		      struct sg_error *err)
{
	struct sg_buf b;
	size_t plen = strlen(SG_DOMAIN_BUNDLE_PATH);

	if (path_len != plen || memcmp(path, SG_DOMAIN_BUNDLE_PATH, plen) != 0)
		return 0;
	*status_r = 404;
	sg_buf_init(&b, BUNDLE_MAX);
	int r = sg_domain_bundle_build(store, sg_domain_now(), &b, err);
	if (r > 0) {
		*status_r = 200;
		*body_r = sg_buf_steal(&b, len_r);
	}
	sg_buf_free(&b);
	return r < 0 ? -1 : 1;
}

static int mkdir_p(char *path, struct sg_error *err)
{
	for (char *p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int r = mkdir(path, 0755);
		*p = '/';
		if (r < 0 && errno != EEXIST) {
			sg_error_set(err, "mkdir %s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 1;
}

int sg_domain_export(struct sg_domain *d, const char *dir, time_t now, struct sg_error *err)
{
	struct sg_buf b;
	char *path = sg_asprintf("%s%s", dir, SG_DOMAIN_BUNDLE_PATH);
	char *tmp = sg_asprintf("%s.tmp", path);
	int ret = -1, fd = -1;

	sg_buf_init(&b, BUNDLE_MAX);
	sg_domain_lock(d);
	int r = sg_domain_bundle_build(d->store, now, &b, err);
	sg_domain_unlock(d);
	if (r == 0)
		sg_error_set(err, "no domain keys (run sealgate domain init and rotate)");
	if (r <= 0 || mkdir_p(path, err) < 0)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len || fsync(fd) < 0 ||
	    rename(tmp, path) < 0) {
		sg_error_set(err, "%s: %s", path, strerror(errno));
		goto out;
	}
	ret = 1;
out:
	if (fd >= 0)
		close(fd);
	sg_buf_free(&b);
	free(path);
	free(tmp);
	return ret;
}

/* ---- peers' bundles ---- */

static int check_signing(const struct sg_domcert_info *c, const char *domain, struct sg_error *err)
{
	if (!c->ca || !c->domain_policy) {
		sg_error_set(err, "first certificate is not a domain signing certificate");
		return -1;
	}
	if (!sg_domcert_names(c, domain)) {
		sg_error_set(err, "signing certificate does not name %s", domain);
		return -1;
	}
	if (sg_domcert_issued_by(c->der, c->der_len, c->der, c->der_len, err) != 1) {
		sg_error_prefix(err, "signing certificate is not self-signed");
		return -1;
	}
	return 1;
}

static int check_enc(const struct sg_domcert_info *c, const struct sg_domcert_info *signing,
		     const char *domain, struct sg_error *err)
{
	if (c->ca || !c->domain_policy) {
		sg_error_set(err, "certificate %s is not a domain encryption certificate", c->fpr);
		return -1;
	}
	if (!sg_domcert_names(c, domain)) {
		sg_error_set(err, "certificate %s does not name %s", c->fpr, domain);
		return -1;
	}
	if (sg_domcert_issued_by(c->der, c->der_len, signing->der, signing->der_len, err) != 1) {
		sg_error_prefix(err, "certificate %s", c->fpr);
		return -1;
	}
	return 1;
}

int sg_domain_bundle_parse(const void *data, size_t len, const char *domain,
			   struct sg_domain_bundle *b, struct sg_error *err)
{
	struct sg_domcert_der *ders = NULL;
	size_t n = 0;
	int ret = -1;

	memset(b, 0, sizeof(*b));
	if (sg_domcert_split_pem(data, len, SG_DOMCERT_MAX_CERTS, &ders, &n, err) < 0)
		goto out;
	if (sg_domcert_info(ders[0].der, ders[0].len, &b->signing, err) < 0 ||
	    check_signing(&b->signing, domain, err) < 0)
		goto out;
	b->enc = sg_calloc(n, sizeof(*b->enc));
	for (size_t i = 1; i < n; i++) {
		struct sg_domcert_info *c = &b->enc[b->n_enc];
		if (sg_domcert_info(ders[i].der, ders[i].len, c, err) < 0)
			goto out;
		b->n_enc++;
		if (check_enc(c, &b->signing, domain, err) < 0)
			goto out;
	}
	ret = 1;
out:
	if (ret < 0) {
		sg_error_prefix(err, "domain keys of %s", domain);
		sg_domain_bundle_clear(b);
	}
	sg_domcert_ders_free(&ders, n);
	return ret;
}

long sg_domain_bundle_pick(const struct sg_domain_bundle *b, time_t now)
{
	long best = -1;

	for (size_t i = 0; i < b->n_enc; i++) {
		const struct sg_domcert_info *c = &b->enc[i];
		if (c->not_before > now || c->not_after <= now)
			continue;
		if (best < 0 || c->not_after > b->enc[best].not_after)
			best = (long)i;
	}
	return best;
}

void sg_domain_bundle_clear(struct sg_domain_bundle *b)
{
	sg_domcert_info_clear(&b->signing);
	for (size_t i = 0; i < b->n_enc; i++)
		sg_domcert_info_clear(&b->enc[i]);
	free(b->enc);
	memset(b, 0, sizeof(*b));
}

/* ---- trust in peers' signing keys ---- */

/* domain_peers "DOMAIN=FPR ...": the configured fingerprint, owned, or NULL. */
static char *configured_fpr(const struct sg_domain *d, const char *domain)
{
	char *copy = sg_strdup(d->cfg->domain_peers), *save = NULL, *found = NULL;
	size_t dl = strlen(domain);

	for (char *t = strtok_r(copy, " \t,", &save); t != NULL && found == NULL;
	     t = strtok_r(NULL, " \t,", &save)) {
		if (strncasecmp(t, domain, dl) == 0 && t[dl] == '=')
			found = sg_strdup(t + dl + 1);
	}
	free(copy);
	return found;
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* domain_peers as "DOMAIN FPR" pairs not yet in rows (never seen). */
static int status_unseen(struct sg_domain *d, const struct sg_store_domain_peer *rows, size_t n,
			 struct sg_buf *out)
{
	char *copy = sg_strdup(d->cfg->domain_peers), *save = NULL;
	int ok = 1;

	for (char *t = strtok_r(copy, " \t,", &save); t != NULL && ok; t = strtok_r(NULL, " \t,", &save)) {
		char *eq = strchr(t, '=');
		bool seen = false;
		if (eq == NULL)
			continue;
		*eq = '\0';
		for (size_t i = 0; i < n && !seen; i++)
			seen = strcasecmp(rows[i].domain, t) == 0;
		if (!seen)
			ok = sg_buf_printf(out, "peer       %s %s trust=configured since=- (not contacted yet)\n",
					   t, eq + 1);
	}
	free(copy);
	return ok;
}

int sg_domain_status_peers(struct sg_domain *d, struct sg_buf *out, struct sg_error *err)
{
	struct sg_store_domain_peer *rows = NULL;
	size_t n = 0;
	int ok = 1;

	if (sg_store_domain_peer_list(d->store, &rows, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n && ok; i++) {
		char since[32], *want = configured_fpr(d, rows[i].domain);
		fmt_time(rows[i].pinned_at, since, sizeof(since));
		/* trust says how it was stored; a configured fingerprint that
		 * differs means the next message from that domain is refused */
		ok = sg_buf_printf(out, "peer       %s %s trust=%s since=%s%s%s\n", rows[i].domain,
				   rows[i].fingerprint,
				   strcmp(rows[i].trust, "pinned") == 0 ? "pinned-on-first-use" : rows[i].trust,
				   since, want != NULL && strcasecmp(want, rows[i].fingerprint) != 0
						  ? " MISMATCH: domain_peers says " : "",
				   want != NULL && strcasecmp(want, rows[i].fingerprint) != 0 ? want : "");
		free(want);
	}
	ok = ok && status_unseen(d, rows, n, out);
	for (size_t i = 0; i < n; i++)
		sg_store_domain_peer_clear(&rows[i]);
	free(rows);
	if (!ok)
		sg_error_set(err, "status too large");
	return ok ? 1 : -1;
}

/* Is the bundle's signing certificate the one we trust for domain? Pins
 * it on first use when the configuration allows. 1 yes, 0 no (err), -1. */
static int trust_signing(struct sg_domain *d, const char *domain, const struct sg_domcert_info *sc,
			 time_t now, struct sg_error *err)
{
	struct sg_store_domain_peer pin;
	char *want = configured_fpr(d, domain);
	int ret = -1;
	int r = sg_store_domain_peer_get(d->store, domain, &pin, err);

	if (r < 0)
		goto out;
	if (want == NULL && r > 0)
		want = sg_strdup(pin.fingerprint);
	if (want != NULL) {
		ret = strcasecmp(want, sc->fpr) == 0;
		if (!ret)
			sg_error_set(err, "signing key of %s is %s, not the %s key %s", domain, sc->fpr,
				     r > 0 ? "pinned" : "configured", want);
		/* configured: keep the certificate for inbound (replacing an older pin) */
		if (ret && (r == 0 || strcasecmp(pin.fingerprint, sc->fpr) != 0)) {
			struct sg_store_domain_peer p = {
				.domain = (char *)domain, .fingerprint = sc->fpr, .trust = "configured",
				.pinned_at = now, .cert = sc->der, .len = sc->der_len,
			};
			ret = sg_store_domain_peer_put(d->store, &p, err) < 0 ? -1 : 1;
		}
		goto out;
	}
	if (strcmp(d->cfg->domain_peer_trust, "configured") == 0) {
		sg_error_set(err, "no signing key configured for %s (domain_peers) and domain_peer_trust "
			     "is configured", domain);
		ret = 0;
		goto out;
	}
	struct sg_store_domain_peer p = {
		.domain = (char *)domain, .fingerprint = sc->fpr, .trust = "pinned",
		.pinned_at = now, .cert = sc->der, .len = sc->der_len,
	};
	if (sg_store_domain_peer_put(d->store, &p, err) < 0)
		goto out;
	sg_log_warn("domain: PINNED signing key %s for %s on first use (trust on first use; "
		    "verify it out of band and list it in domain_peers)", sc->fpr, domain);
	ret = 1;
out:
	sg_store_domain_peer_clear(&pin);
	free(want);
	return ret;
}

/* The bundle of domain: from the cache (use_cache) while fresh and still
 * holding a key valid at now, else fetched over HTTPS and cached. 1, -1
 * (err); *cached_r says where it came from. Lock held, but released
 * during the fetch. */
static int get_bundle(struct sg_domain *d, const char *domain, time_t now, bool use_cache,
		      bool *cached_r, struct sg_domain_bundle *b, struct sg_error *err)
{
	struct sg_store_cache *rows = NULL;
	size_t n = 0;
	char *addr = bundle_cache_addr(domain);
	struct sg_buf body;
	int ret = -1;

	sg_buf_init(&body, BUNDLE_MAX);
	*cached_r = use_cache;
	if (use_cache && sg_store_cache_get(d->store, addr, &rows, &n, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(rows[i].source, CACHE_SOURCE) != 0 || rows[i].negative ||
		    rows[i].fetched_at + rows[i].ttl <= now || rows[i].fetched_at > now)
			continue;
		if (sg_domain_bundle_parse(rows[i].data, rows[i].len, domain, b, NULL) == 1) {
			if (sg_domain_bundle_pick(b, now) >= 0) {
				ret = 1;
				goto out;
			}
			sg_domain_bundle_clear(b);
		}
	}
	*cached_r = false;
	/* no lock during the fetch (up to FETCH_BUDGET_MS): openers and seals
	 * for other domains go on; callers look their cache entries up again */
	sg_domain_unlock(d);
	int r = sg_keys_https_get(d->cfg->wkd_allow_hosts, domain, SG_DOMAIN_BUNDLE_PATH,
				  FETCH_BUDGET_MS, &body, err);
	if (r == 0)
		sg_error_set(err, "%s publishes no domain keys", domain);
	if (r > 0 && sg_domain_bundle_parse(body.data, body.len, domain, b, err) < 0)
		r = -1;
	sg_domain_lock(d);
	if (r <= 0)
		goto out;
	struct sg_store_cache row = {
		.addr = addr, .source = CACHE_SOURCE, .trust = "https", .fetched_at = now,
		.ttl = d->cfg->lookup_cache_ttl, .data = body.data, .len = body.len,
	};
	if (sg_store_cache_put(d->store, &row, err) < 0) {
		sg_domain_bundle_clear(b);
		goto out;
	}
	ret = 1;
out:
	sg_store_cache_free(&rows, n);
	sg_buf_free(&body);
	free(addr);
	return ret;
}

/* The bundle of domain with its signing key trusted: 1 with *b, 0 not
 * trusted (err), -1. A cached bundle whose key is not the one domain_peers
 * configures is fetched again once: the peer may have made a new key
 * (`domain rekey`) that the administrator has configured already. */
static int trusted_bundle(struct sg_domain *d, const char *domain, time_t now,
			  struct sg_domain_bundle *b, struct sg_error *err)
{
	bool cached = false;
	int ret;

	memset(b, 0, sizeof(*b)); /* cleared below whatever failed */
	ret = get_bundle(d, domain, now, true, &cached, b, err);
	if (ret > 0)
		ret = trust_signing(d, domain, &b->signing, now, err);
	if (ret == 0 && cached) {
		char *want = configured_fpr(d, domain);
		bool refetch = want != NULL && strcasecmp(want, b->signing.fpr) != 0;
		free(want);
		if (refetch) {
			sg_domain_bundle_clear(b);
			sg_error_clear(err);
			ret = get_bundle(d, domain, now, false, &cached, b, err);
			if (ret > 0)
				ret = trust_signing(d, domain, &b->signing, now, err);
		}
	}
	if (ret <= 0)
		sg_domain_bundle_clear(b);
	return ret;
}

static int key_from_der(const unsigned char *der, size_t len, struct sg_key **key_r,
			struct sg_error *err)
{
	enum sg_crypto_status st = SG_CRYPTO_OK;
	return sg_key_load_mem(der, len, NULL, key_r, &st, err) < 0 ? -1 : 1;
}

int sg_domain_peer_forget(struct sg_domain *d, const char *domain, char **fpr_r,
			  struct sg_error *err)
{
	struct sg_store_domain_peer p;
	char *addr = bundle_cache_addr(domain);
	int r;

	*fpr_r = NULL;
	sg_domain_lock(d);
	r = sg_store_domain_peer_get(d->store, domain, &p, err);
	/* the cached bundle too: it may still hold the old key, which the
	 * next look-up would pin again */
	if (r > 0 && (sg_store_domain_peer_delete(d->store, domain, err) < 0 ||
		      sg_store_cache_delete(d->store, addr, CACHE_SOURCE, err) < 0))
		r = -1;
	if (r > 0) {
		*fpr_r = p.fingerprint;
		p.fingerprint = NULL;
		sg_domain_drop_peers(d);
	}
	sg_store_domain_peer_clear(&p);
	sg_domain_unlock(d);
	free(addr);
	return r;
}

void sg_domain_drop_peers(struct sg_domain *d)
{
	for (size_t i = 0; i < d->n_peers; i++) {
		free(d->peers[i].domain);
		free(d->peers[i].der);
		sg_domain_keyset_unref(d, &d->peers[i].signer);
	}
	free(d->peers);
	d->peers = NULL;
	d->n_peers = 0;
}

static struct sg_domain_peer_cached *peer_cached(struct sg_domain *d, const char *domain)
{
	for (size_t i = 0; i < d->n_peers; i++)
		if (strcmp(d->peers[i].domain, domain) == 0)
			return &d->peers[i];
	return NULL;
}

static struct sg_domain_peer_cached *peer_entry(struct sg_domain *d, const char *domain)
{
	struct sg_domain_peer_cached *p = peer_cached(d, domain);
	if (p != NULL)
		return p;
	d->peers = sg_reallocarray(d->peers, d->n_peers + 1, sizeof(*d->peers));
	p = &d->peers[d->n_peers++];
	memset(p, 0, sizeof(*p));
	p->domain = sg_strdup(domain);
	return p;
}

/* Remember the checked choice (no bundle parse per message). */
static void remember_peer(struct sg_domain *d, const char *domain, const struct sg_domcert_info *c,
			  time_t now)
{
	struct sg_domain_peer_cached *p = peer_entry(d, domain);
	time_t until = now + (time_t)d->cfg->lookup_cache_ttl;

	free(p->der);
	p->der = sg_malloc(c->der_len);
	memcpy(p->der, c->der, c->der_len);
	p->len = c->der_len;
	p->until = c->not_after < until ? c->not_after : until;
}

int sg_domain_peer_key(struct sg_domain *d, const char *domain, time_t now,
		       struct sg_key **key_r, struct sg_error *err)
{
	struct sg_domain_bundle b;
	struct sg_domain_peer_cached *pc;
	int ret;

	*key_r = NULL;
	sg_domain_lock(d);
	pc = peer_cached(d, domain);
	if (pc != NULL && pc->der != NULL && now < pc->until) {
		ret = key_from_der(pc->der, pc->len, key_r, err);
		sg_domain_unlock(d);
		return ret;
	}
	ret = trusted_bundle(d, domain, now, &b, err);
	if (ret > 0) {
		long i = sg_domain_bundle_pick(&b, now);
		if (i < 0) {
			sg_error_set(err, "%s publishes no encryption key valid now", domain);
			ret = 0;
		}
		if (ret > 0)
			ret = key_from_der(b.enc[i].der, b.enc[i].der_len, key_r, err);
		if (ret > 0)
			remember_peer(d, domain, &b.enc[i], now);
		sg_domain_bundle_clear(&b);
	}
	sg_domain_unlock(d);
	return ret;
}

static int lookup_signer(struct sg_domain *d, const char *domain, time_t now,
			 unsigned char **der_r, size_t *len_r, struct sg_error *err);

/* A keyset of the one signing key, with the certificate parsed for
 * sg_domcert_verify: made once per peer until the next rotation. */
static int signer_keyset(const unsigned char *der, size_t len, struct sg_domain_keyset **ks_r,
			 struct sg_error *err)
{
	struct sg_key *k = NULL;
	struct sg_domcert_cert *anchor = NULL;

	*ks_r = NULL;
	if (key_from_der(der, len, &k, err) < 0 || sg_domcert_cert_load(der, len, &anchor, err) < 0) {
		sg_key_free(&k);
		return -1;
	}
	struct sg_key **one = sg_calloc(1, sizeof(*one));
	one[0] = k;
	*ks_r = sg_domain_keyset_new(one, 1);
	(*ks_r)->anchor = anchor;
	return 1;
}

struct sg_domain_keyset *sg_domain_peer_signer_ref(struct sg_domain *d, const char *domain,
						   time_t now, int *r_r, struct sg_error *err)
{
	struct sg_domain_peer_cached *p;
	struct sg_domain_keyset *ks = NULL;
	unsigned char *der = NULL;
	size_t len = 0;

	sg_domain_lock(d);
	p = peer_cached(d, domain);
	if (p == NULL || p->signer == NULL) {
		*r_r = lookup_signer(d, domain, now, &der, &len, err);
		if (*r_r > 0 && (*r_r = signer_keyset(der, len, &ks, err)) > 0) {
			p = peer_entry(d, domain);
			if (p->signer == NULL) /* else another thread was quicker */
				p->signer = ks;
			else
				sg_domain_keyset_unref(d, &ks);
		}
		free(der);
	}
	ks = NULL;
	p = peer_cached(d, domain); /* again: the lock was released during a fetch */
	if (p != NULL && p->signer != NULL) {
		*r_r = 1;
		p->signer->refs++;
		ks = p->signer;
	}
	sg_domain_unlock(d);
	return ks;
}

int sg_domain_peer_signer(struct sg_domain *d, const char *domain, time_t now,
			  struct sg_key **key_r, struct sg_error *err)
{
	unsigned char *der = NULL;
	size_t len = 0;

	*key_r = NULL;
	sg_domain_lock(d);
	int r = lookup_signer(d, domain, now, &der, &len, err);
	sg_domain_unlock(d);
	if (r > 0)
		r = key_from_der(der, len, key_r, err);
	free(der);
	return r;
}

static unsigned char *dup_der(const unsigned char *der, size_t len)
{
	unsigned char *p = sg_malloc(len);
	memcpy(p, der, len);
	return p;
}

/* The trusted signing certificate (DER, owned) of domain. Lock held. */
static int lookup_signer(struct sg_domain *d, const char *domain, time_t now,
			 unsigned char **der_r, size_t *len_r, struct sg_error *err)
{
	struct sg_store_domain_peer pin;
	struct sg_domain_bundle b;
	int ret;

	*der_r = NULL;
	ret = sg_store_domain_peer_get(d->store, domain, &pin, err);
	if (ret > 0) {
		char *want = configured_fpr(d, domain);
		bool stale = want != NULL && strcasecmp(want, pin.fingerprint) != 0;
		if (!stale) {
			*der_r = dup_der(pin.cert, pin.len);
			*len_r = pin.len;
		}
		free(want);
		sg_store_domain_peer_clear(&pin);
		if (!stale)
			return 1;
		/* domain_peers names another key than the one stored (the peer
		 * made a new one, `domain rekey`): the configured one wins, from
		 * the peer's bundle, replacing the pin in trust_signing */
	}
	if (ret < 0)
		return -1;
	/* first contact: the sender's published bundle says which key it signs with */
	ret = trusted_bundle(d, domain, now, &b, err);
	if (ret > 0) {
		*der_r = dup_der(b.signing.der, b.signing.der_len);
		*len_r = b.signing.der_len;
		sg_domain_bundle_clear(&b);
	}
	return ret;
}
