/* Key source: an LDAP directory (OpenLDAP libldap), searched by mail for
 * userCertificate;binary (RFC 4523) and pgpKey-style attributes. */
#include "keys/remote.h"
#include "config/config.h"
#include "util/buf.h"
#include "util/mem.h"

#include <ldap.h>
#include <stdlib.h>
#include <string.h>

#define LDAP_SIZELIMIT 4         /* entries per address: more is a bad filter */

struct ldap_ctx {
	char *uri, *base, *filter;
	char **attrs;            /* NULL-terminated */
};

/* RFC 4515 3: the assertion value is escaped, so that an address can
 * never change the filter's structure. */
static int escape_value(struct sg_buf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;
		int ok = (c == '*' || c == '(' || c == ')' || c == '\\' || c >= 0x80)
			 ? sg_buf_printf(b, "\\%02x", c) : sg_buf_append(b, v, 1);
		if (!ok)
			return -1;
	}
	return 1;
}

/* The configured filter with every "%s" replaced by the escaped address
 * (the filter is never used as a format string). */
static char *make_filter(const char *tmpl, const char *addr, struct sg_error *err)
{
	struct sg_buf b;
	sg_buf_init(&b, 4096);
	for (const char *p = tmpl; *p != '\0'; p++) {
		int ok = (p[0] == '%' && p[1] == 's') ? escape_value(&b, addr) : sg_buf_append(&b, p, 1);
		if (p[0] == '%' && p[1] == 's')
			p++;
		if (ok <= 0) {
			sg_error_set(err, "filter too long");
			sg_buf_free(&b);
			return NULL;
		}
	}
	size_t len;
	return (char *)sg_buf_steal(&b, &len);
}

static void add_blob(struct sg_keys_found **blobs, size_t *n, const char *attr,
		     const struct berval *v)
{
	if (*n >= SG_KEYS_MAX_KEYS || v->bv_len == 0 || v->bv_len > SG_KEYS_MAX_RESPONSE)
		return;
	*blobs = sg_reallocarray(*blobs, *n + 1, sizeof(**blobs));
	struct sg_keys_found *b = &(*blobs)[(*n)++];
	memset(b, 0, sizeof(*b));
	b->kind = sg_strdup(strcasestr(attr, "certificate") != NULL ? "x509" : "pgp");
	b->data = sg_malloc(v->bv_len);
	memcpy(b->data, v->bv_val, v->bv_len);
	b->len = v->bv_len;
}

static void collect(LDAP *ld, LDAPMessage *res, struct sg_keys_found **blobs, size_t *n)
{
	for (LDAPMessage *e = ldap_first_entry(ld, res); e != NULL; e = ldap_next_entry(ld, e)) {
		BerElement *ber = NULL;
		for (char *a = ldap_first_attribute(ld, e, &ber); a != NULL;
		     a = ldap_next_attribute(ld, e, ber)) {
			struct berval **vals = ldap_get_values_len(ld, e, a);
			for (size_t i = 0; vals != NULL && vals[i] != NULL; i++)
				add_blob(blobs, n, a, vals[i]);
			ldap_value_free_len(vals);
			ldap_memfree(a);
		}
		ber_free(ber, 0);
	}
}

static int ldap_fetch(void *arg, const char *addr, unsigned budget_ms,
		      struct sg_keys_found **blobs_r, size_t *n_r, struct sg_error *err)
{
	struct ldap_ctx *ctx = arg;
	LDAP *ld = NULL;
	LDAPMessage *res = NULL;
	char *filter = NULL;
	int r = -1, rc;
	int version = LDAP_VERSION3;
	struct timeval tv = { .tv_sec = budget_ms / 1000, .tv_usec = (budget_ms % 1000) * 1000 };
	struct berval cred = { 0, NULL };

	if ((filter = make_filter(ctx->filter, addr, err)) == NULL)
		goto out;
	if ((rc = ldap_initialize(&ld, ctx->uri)) != LDAP_SUCCESS) {
		sg_error_set(err, "%s: %s", ctx->uri, ldap_err2string(rc));
		goto out;
	}
	/* Both timeouts: a directory that accepts and never answers must not
	 * take more than the budget either. */
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	rc = ldap_sasl_bind_s(ld, NULL, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (rc != LDAP_SUCCESS) {
		sg_error_set(err, "%s: bind: %s", ctx->uri, ldap_err2string(rc));
		goto out;
	}
	rc = ldap_search_ext_s(ld, ctx->base, LDAP_SCOPE_SUBTREE, filter, ctx->attrs, 0, NULL, NULL,
			       &tv, LDAP_SIZELIMIT, &res);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED && rc != LDAP_NO_SUCH_OBJECT) {
		sg_error_set(err, "%s: search %s: %s", ctx->uri, filter, ldap_err2string(rc));
		goto out;
	}
	*blobs_r = NULL;
	*n_r = 0;
	if (res != NULL)
		collect(ld, res, blobs_r, n_r);
	r = *n_r > 0 ? 1 : 0;
out:
	if (res != NULL)
		ldap_msgfree(res);
	if (ld != NULL)
		ldap_unbind_ext_s(ld, NULL, NULL);
	free(filter);
	return r;
}

static void ldap_ctx_free(void *arg)
{
	struct ldap_ctx *ctx = arg;
	for (size_t i = 0; ctx->attrs != NULL && ctx->attrs[i] != NULL; i++)
		free(ctx->attrs[i]);
	free(ctx->attrs);
	free(ctx->uri);
	free(ctx->base);
	free(ctx->filter);
	free(ctx);
}

int sg_keys_source_ldap(const struct sg_config *cfg, struct sg_keys_source *src_r,
			struct sg_error *err)
{
	if (cfg->ldap_uri == NULL || *cfg->ldap_uri == '\0' || !ldap_is_ldap_url(cfg->ldap_uri)) {
		sg_error_set(err, "ldap_uri '%s' is not an ldap:// or ldaps:// URL",
			     cfg->ldap_uri != NULL ? cfg->ldap_uri : "");
		return -1;
	}
	if (cfg->ldap_filter == NULL || strstr(cfg->ldap_filter, "%s") == NULL) {
		sg_error_set(err, "ldap_filter must contain %%s (the address)");
		return -1;
	}
	struct ldap_ctx *ctx = sg_calloc(1, sizeof(*ctx));
	char *attrs = sg_strdup(cfg->ldap_attributes != NULL ? cfg->ldap_attributes : ""), *save = NULL;
	size_t n = 0;
	ctx->attrs = sg_calloc(1, sizeof(char *));
	for (char *t = strtok_r(attrs, " \t,", &save); t != NULL; t = strtok_r(NULL, " \t,", &save)) {
		ctx->attrs = sg_reallocarray(ctx->attrs, n + 2, sizeof(char *));
		ctx->attrs[n++] = sg_strdup(t);
		ctx->attrs[n] = NULL;
	}
	free(attrs);
	ctx->uri = sg_strdup(cfg->ldap_uri);
	ctx->base = sg_strdup(cfg->ldap_base != NULL ? cfg->ldap_base : "");
	ctx->filter = sg_strdup(cfg->ldap_filter);
	*src_r = (struct sg_keys_source){
		.name = "ldap", .trust = "directory", .fetch = ldap_fetch, .free = ldap_ctx_free,
		.ctx = ctx,
	};
	return 1;
}
