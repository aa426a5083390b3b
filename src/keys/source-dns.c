/* Key source: DNS OPENPGPKEY (RFC 7929) and SMIMEA (RFC 8162) records via
 * libunbound, validated with DNSSEC here; unvalidated answers are not used. */
#include "keys/remote.h"
#include "keys/cache.h"
#include "config/config.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>
#include <unistd.h>

#define RR_SMIMEA 53
#define RR_OPENPGPKEY 61

struct dns_ctx {
	char *anchor, *resolver;
};

char *sg_keys_dns_owner(const char *addr, const char *label, struct sg_error *err)
{
	const char *at = strrchr(addr, '@');
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct sg_buf b;

	if (at == NULL || at == addr || at[1] == '\0') {
		sg_error_set(err, "'%s' is not an address", addr);
		return NULL;
	}
	/* RFC 7929 3 / RFC 8162 3.1: SHA2-256 of the local part, truncated to
	 * 28 octets, in hex, as one label. */
	if (EVP_Digest(addr, (size_t)(at - addr), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 28) {
		sg_error_set(err, "SHA-256 failed");
		return NULL;
	}
	sg_buf_init(&b, 512);
	int ok = 1;
	for (int i = 0; i < 28 && ok; i++)
		ok = sg_buf_printf(&b, "%02x", md[i]);
	if (!ok || !sg_buf_printf(&b, ".%s.%s", label, at + 1)) {
		sg_error_set(err, "owner name too long");
		sg_buf_free(&b);
		return NULL;
	}
	size_t len;
	return (char *)sg_buf_steal(&b, &len);
}

int sg_keys_dns_trusted(int secure, int bogus, int havedata, struct sg_error *err)
{
	if (bogus) {
		sg_error_set(err, "DNSSEC validation failed (bogus answer)");
		return 0;
	}
	if (havedata && !secure) {
		/* RFC 7929 7: without DNSSEC anyone on the path could hand us a key. */
		sg_error_set(err, "answer not DNSSEC-validated (insecure): refused");
		return 0;
	}
	return 1;
}

int sg_keys_smimea_parse(const unsigned char *rdata, size_t len, const unsigned char **cert_r,
			 size_t *len_r)
{
	if (len < 4)
		return -1;
	/* usage (0-3), selector 0 = full certificate, matching 0 = exact. */
	if (rdata[0] > 3 || rdata[1] > 1 || rdata[2] > 2)
		return -1;
	if (rdata[1] != 0 || rdata[2] != 0)
		return 0;
	*cert_r = rdata + 3;
	*len_r = len - 3;
	return 1;
}

struct query {
	bool done;
	int err;
	struct ub_result *result;
};

static void on_result(void *arg, int err, struct ub_result *result)
{
	struct query *q = arg;
	q->done = true;
	q->err = err;
	q->result = result;
}

/* One validated query within the deadline. 1 result (owned), -1 error. */
static int resolve(struct ub_ctx *ub, const char *name, int rrtype, int64_t deadline_ms,
		   struct ub_result **res_r, struct sg_error *err)
{
	struct query q = { .done = false };
	int id = 0;
	int rc = ub_resolve_async(ub, name, rrtype, 1, &q, on_result, &id);
	if (rc != 0) {
		sg_error_set(err, "%s: %s", name, ub_strerror(rc));
		return -1;
	}
	while (!q.done) {
		int64_t left = deadline_ms - sg_keys_now_ms();
		if (left <= 0) {
			(void)ub_cancel(ub, id);
			sg_error_set(err, "%s: no answer within the time budget", name);
			return -1;
		}
		struct pollfd pfd = { .fd = ub_fd(ub), .events = POLLIN };
		if (poll(&pfd, 1, (int)left) > 0 && ub_process(ub) != 0) {
			sg_error_set(err, "%s: resolver failed", name);
			return -1;
		}
	}
	if (q.err != 0) {
		sg_error_set(err, "%s: %s", name, ub_strerror(q.err));
		return -1;
	}
	*res_r = q.result;
	return 1;
}

static void add(struct sg_keys_found **blobs, size_t *n, const char *kind,
		const unsigned char *data, size_t len)
{
	if (*n >= SG_KEYS_MAX_KEYS || len == 0 || len > SG_KEYS_MAX_RESPONSE)
		return;
	*blobs = sg_reallocarray(*blobs, *n + 1, sizeof(**blobs));
	struct sg_keys_found *b = &(*blobs)[(*n)++];
	memset(b, 0, sizeof(*b));
	b->kind = sg_strdup(kind);
	b->data = sg_malloc(len);
	memcpy(b->data, data, len);
	b->len = len;
}

/* Query label/rrtype for addr and add the trusted records. -1 error
 * (including a bogus answer), 0 fine (maybe nothing added). */
static int query_one(struct ub_ctx *ub, const char *addr, const char *label, int rrtype,
		     int64_t deadline, struct sg_keys_found **blobs, size_t *n, struct sg_error *err)
{
	struct ub_result *res = NULL;
	char *name = sg_keys_dns_owner(addr, label, err);
	int r = -1;

	if (name == NULL || resolve(ub, name, rrtype, deadline, &res, err) < 0)
		goto out;
	/* SERVFAIL and friends: the resolver could not answer (a dead
	 * forwarder, a broken chain) — a failure, not "no key". */
	if (res->rcode != 0 && res->rcode != 3) {
		sg_error_set(err, "%s: DNS rcode %d", name, res->rcode);
		goto out;
	}
	if (!sg_keys_dns_trusted(res->secure, res->bogus, res->havedata, err)) {
		sg_error_prefix(err, "%s", name);
		r = res->bogus ? -1 : 0;
		if (r == 0) {
			sg_log_warn("key lookup: %s: dns: %s", addr, sg_error_msg(err));
			sg_error_clear(err);
		}
		goto out;
	}
	for (size_t i = 0; res->havedata && res->data[i] != NULL; i++) {
		const unsigned char *d = (const unsigned char *)res->data[i], *cert;
		size_t len = (size_t)res->len[i], clen;
		if (rrtype == RR_OPENPGPKEY)
			add(blobs, n, "pgp", d, len);
		else if (sg_keys_smimea_parse(d, len, &cert, &clen) == 1)
			add(blobs, n, "x509", cert, clen);
	}
	r = 0;
out:
	if (res != NULL)
		ub_resolve_free(res);
	free(name);
	return r;
}

static int dns_fetch(void *arg, const char *addr, unsigned budget_ms, struct sg_keys_found **blobs_r,
		     size_t *n_r, struct sg_error *err)
{
	struct dns_ctx *ctx = arg;
	int64_t deadline = sg_keys_now_ms() + budget_ms;
	struct ub_ctx *ub = ub_ctx_create();
	int r = -1, rc;

	*blobs_r = NULL;
	*n_r = 0;
	if (ub == NULL) {
		sg_error_set(err, "ub_ctx_create failed");
		goto out;
	}
	if ((rc = ub_ctx_add_ta_file(ub, ctx->anchor)) != 0) {
		sg_error_set(err, "trust anchor %s: %s", ctx->anchor, ub_strerror(rc));
		goto out;
	}
	rc = *ctx->resolver != '\0' ? ub_ctx_set_fwd(ub, ctx->resolver) : ub_ctx_resolvconf(ub, NULL);
	if (rc != 0) {
		sg_error_set(err, "resolver: %s", ub_strerror(rc));
		goto out;
	}
	if (query_one(ub, addr, "_openpgpkey", RR_OPENPGPKEY, deadline, blobs_r, n_r, err) < 0 ||
	    query_one(ub, addr, "_smimecert", RR_SMIMEA, deadline, blobs_r, n_r, err) < 0)
		goto out;
	r = *n_r > 0 ? 1 : 0;
out:
	if (r < 0)
		sg_keys_found_free(blobs_r, *n_r);
	if (ub != NULL)
		ub_ctx_delete(ub);
	return r;
}

static void dns_free(void *arg)
{
	struct dns_ctx *ctx = arg;
	free(ctx->anchor);
	free(ctx->resolver);
	free(ctx);
}

int sg_keys_source_dns(const struct sg_config *cfg, struct sg_keys_source *src_r,
		       struct sg_error *err)
{
	const char *anchor = cfg->dns_trust_anchor_file != NULL ? cfg->dns_trust_anchor_file : "";
	/* Without a trust anchor nothing validates: every answer would be
	 * refused, so say so once at start rather than on every look-up. */
	if (access(anchor, R_OK) != 0) {
		sg_error_set(err, "dns_trust_anchor_file '%s': %s (install dns-root-data)", anchor,
			     strerror(errno));
		return -1;
	}
	struct dns_ctx *ctx = sg_calloc(1, sizeof(*ctx));
	ctx->anchor = sg_strdup(cfg->dns_trust_anchor_file != NULL ? cfg->dns_trust_anchor_file : "");
	ctx->resolver = sg_strdup(cfg->dns_resolver != NULL ? cfg->dns_resolver : "");
	*src_r = (struct sg_keys_source){
		.name = "dns", .trust = "dnssec", .fetch = dns_fetch, .free = dns_free, .ctx = ctx,
	};
	return 1;
}
