/* Domain-sealed messages: the original message, bound to the sender and
 * recipient domains, signed by the sender domain (CMS SignedData), then
 * encrypted to the recipient domain's short-lived key (AuthEnvelopedData). */
#include "domain/internal.h"
#include "crypto/smime.h"
#include "mime/message.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/secret.h"

#include <glib.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEAL_MAX (1024u * 1024u * 1024u)
#define P7M_FIELDS(type) \
	"Content-Type: application/pkcs7-mime; smime-type=" type "; name=smime.p7m\r\n" \
	"Content-Transfer-Encoding: base64\r\n" \
	"Content-Disposition: attachment; filename=smime.p7m\r\n"

/* ---- small helpers ---- */

static int put(struct sg_buf *out, const void *p, size_t n, struct sg_error *err)
{
	if (sg_buf_append(out, p, n))
		return 1;
	sg_error_set(err, "message too large");
	return -1;
}

/* Base64 (GLib) in 76-character CRLF lines (RFC 2045 s6.8): each line is
 * 57 input bytes, encoded straight into one buffer, appended once. */
static int put_base64(struct sg_buf *out, const unsigned char *p, size_t n, struct sg_error *err)
{
	size_t lines = (n + 56) / 57;
	char *b = sg_malloc(lines * 78 + 84), *w = b; /* + GLib's documented bound for one step */
	int ret;

	for (size_t i = 0; i < n; i += 57) {
		gint state = 0, save = 0;
		size_t k = n - i < 57 ? n - i : 57;
		w += g_base64_encode_step(p + i, k, FALSE, w, &state, &save);
		w += g_base64_encode_close(FALSE, w, &state, &save);
		*w++ = '\r';
		*w++ = '\n';
	}
	ret = put(out, b, (size_t)(w - b), err);
	free(b);
	return ret;
}

/* "v=1; from=a.test; to=b.test" (marker and binding alike): 1 with the
 * two domains (owned), 0 when it is not that. */
static int parse_params(const char *value, char **from_r, char **to_r)
{
	char *copy = sg_strdup(value), *save = NULL;
	bool v1 = false;

	*from_r = *to_r = NULL;
	for (char *t = strtok_r(copy, ";", &save); t != NULL; t = strtok_r(NULL, ";", &save)) {
		t += strspn(t, " \t");
		size_t n = strlen(t);
		while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
			t[--n] = '\0';
		for (char *c = t; *c != '\0'; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		if (strcmp(t, "v=1") == 0)
			v1 = true;
		else if (strncmp(t, "from=", 5) == 0 && *from_r == NULL && sg_domain_name_ok(t + 5))
			*from_r = sg_strdup(t + 5);
		else if (strncmp(t, "to=", 3) == 0 && *to_r == NULL && sg_domain_name_ok(t + 3))
			*to_r = sg_strdup(t + 3);
	}
	free(copy);
	if (v1 && *from_r != NULL && *to_r != NULL)
		return 1;
	free(*from_r);
	free(*to_r);
	*from_r = *to_r = NULL;
	return 0;
}

static int field_params(const struct sg_msg_view *v, const char *name, char **from_r, char **to_r)
{
	struct sg_msg_field f;

	*from_r = *to_r = NULL;
	if (sg_msg_find_field(v, name, &f) != 1)
		return 0;
	char *val = sg_msg_field_value(&f);
	int r = parse_params(val, from_r, to_r);
	free(val);
	return r == 1 ? 1 : -1;
}

int sg_domain_marker(const struct sg_msg_view *v, char **from_r, char **to_r)
{
	return field_params(v, SG_DOMAIN_MARKER, from_r, to_r);
}

/* ---- seal ---- */

/* The signed payload: a message/rfc822 entity whose header carries the
 * binding, and the original message byte for byte as its body. */
static int binding_entity(const unsigned char *msg, size_t len, const char *from, const char *to,
			  struct sg_buf *out, struct sg_error *err)
{
	if (!sg_buf_printf(out, "Content-Type: message/rfc822\r\n%s: v=1; from=%s; to=%s\r\n\r\n",
			   SG_DOMAIN_BINDING, from, to))
		return put(out, "", out->max + 1, err);
	return put(out, msg, len, err);
}

static int seal_view(const struct sg_msg_view *v, const char *from, const char *to,
		     const struct sg_domcert_signer *signer, const struct sg_key *peer_key, struct sg_buf *out,
		     enum sg_crypto_status *st, struct sg_error *err)
{
	struct sg_buf payload, der, entity, outer_fields, subject;
	struct sg_x509_key *recip = sg_key_x509(peer_key);
	int ret = -1;

	sg_buf_init(&payload, SEAL_MAX);
	sg_buf_init(&der, SEAL_MAX);
	sg_buf_init(&entity, SEAL_MAX);
	sg_buf_init(&outer_fields, 4096);
	sg_buf_init(&subject, 256);
	*st = SG_CRYPTO_INTERNAL;
	if (recip == NULL) {
		*st = SG_CRYPTO_BAD_KEY;
		sg_error_set(err, "peer key is not an X.509 certificate");
		goto out;
	}
	/* sign-then-encrypt (RFC 8551 s3.7), as DomSEC (RFC 3183 s3) */
	if (binding_entity(v->data, v->len, from, to, &payload, err) < 0 ||
	    sg_domcert_sign(signer, payload.data, payload.len, &der, err) < 0)
		goto out;
	sg_buf_free_secret(&payload);
	if (put(&entity, P7M_FIELDS("signed-data") "\r\n", strlen(P7M_FIELDS("signed-data")) + 2, err) < 0 ||
	    put_base64(&entity, der.data, der.len, err) < 0)
		goto out;
	sg_buf_reset(&der);
	struct sg_x509_key *recips[1] = { recip };
	if (sg_cms_encrypt(entity.data, entity.len, recips, 1, SG_CMS_AES256_GCM, &der, st, err) < 0)
		goto out;
	*st = SG_CRYPTO_INTERNAL;
	if (!sg_buf_printf(&outer_fields, "%s: v=1; from=%s; to=%s\r\n" P7M_FIELDS("authEnveloped-data"),
			   SG_DOMAIN_MARKER, from, to) ||
	    sg_msg_make_subject("...", &subject, err) < 0 ||
	    sg_msg_build_outer(v, subject.data, subject.len, sg_buf_str(&outer_fields), true, out, err) < 0 ||
	    put_base64(out, der.data, der.len, err) < 0)
		goto out;
	*st = SG_CRYPTO_OK;
	ret = 1;
out:
	sg_buf_free_secret(&payload);
	sg_buf_free(&der);
	sg_buf_free_secret(&entity);
	sg_buf_free(&outer_fields);
	sg_buf_free(&subject);
	return ret;
}

int sg_domain_seal(struct sg_domain *d, const unsigned char *msg, size_t len,
		   const char *from_domain, const char *to_domain, const struct sg_key *peer_key,
		   struct sg_buf *out, enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_buf crlf;
	struct sg_msg_view v;
	int ret = -1;

	sg_buf_init(&crlf, SEAL_MAX);
	*status_r = SG_CRYPTO_MALFORMED;
	/* mail is CRLF (RFC 5322 s2.3): what is signed is what arrives */
	if (sg_msg_to_crlf(msg, len, &crlf, err) < 0 || sg_msg_split(crlf.data, crlf.len, &v, err) < 0)
		goto out;
	if (!sg_domain_is_ours(d, from_domain)) {
		*status_r = SG_CRYPTO_NO_KEY;
		sg_error_set(err, "%s is not one of our domains", from_domain);
		goto out;
	}
	/* the signing key stays loaded until sg_domain_free: the crypto runs
	 * outside the lock, workers in parallel */
	const struct sg_domcert_signer *signer = NULL;
	sg_domain_lock(d);
	int r = sg_domain_signer(d, &signer, err);
	sg_domain_unlock(d);
	if (r <= 0) {
		*status_r = SG_CRYPTO_NO_KEY;
		goto out;
	}
	ret = seal_view(&v, from_domain, to_domain, signer, peer_key, out, status_r, err);
out:
	sg_buf_free_secret(&crlf);
	if (ret < 0)
		sg_error_prefix(err, "domain seal for %s", to_domain);
	return ret;
}

/* ---- open ---- */

struct opening {
	struct sg_domain *d;
	const char *marker_from, *rcpt_domain;
	time_t now;
	struct sg_domain_opened *res;
	struct sg_error *err;
};

static int verdict(struct opening *o, enum sg_domain_verdict v, const char *fmt, ...) SG_PRINTF(3, 4);
static int verdict(struct opening *o, enum sg_domain_verdict v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = sg_vasprintf(fmt, ap);
	va_end(ap);
	o->res->verdict = v;
	sg_error_set(o->err, "%s", msg);
	free(msg);
	return 0;
}

/* The base64 body of an application/pkcs7-mime entity as DER. 1, 0 (verdict), -1. */
static int p7m_der(struct opening *o, const struct sg_msg_view *v, const char *smime_type,
		   struct sg_buf *der)
{
	struct sg_msg_ctype ct;
	int ok = sg_msg_get_ctype(v, &ct, NULL) == 1 && sg_msg_ctype_is(&ct, "application", "pkcs7-mime") &&
		 ct.smime_type != NULL && strcasecmp(ct.smime_type, smime_type) == 0;
	sg_msg_ctype_clear(&ct);
	if (!ok)
		return verdict(o, SG_DOMAIN_TAMPERED, "not a domain-sealed %s entity", smime_type);
	int r = sg_msg_decode_body(v, der, NULL);
	if (r <= 0)
		return verdict(o, SG_DOMAIN_TAMPERED, "%s entity is not base64", smime_type);
	return 1;
}

/* Decrypt with a snapshot of our keys, taken under the lock and used
 * without it; a key the snapshot lacks (made by another instance since)
 * sends us to the store once more. */
static int decrypt_with(struct opening *o, const struct sg_buf *der, bool refresh,
			struct sg_buf *plain, struct sg_cms_decrypt_info *info,
			enum sg_crypto_status *st, char **fpr_r)
{
	struct sg_domain_keyset *ks = NULL;
	int r;

	*st = SG_CRYPTO_INTERNAL;
	if (sg_domain_keys_get(o->d, o->now, refresh, &ks, o->err) < 0)
		return -1;
	r = sg_cms_decrypt(der->data, der->len, ks->x509, ks->n, o->now, plain, info, st, o->err);
	if (r > 0) /* info->key points into the snapshot */
		*fpr_r = sg_strdup(sg_x509_key_fingerprint(info->key));
	sg_domain_keyset_release(o->d, &ks);
	return r;
}

static int decrypt_step(struct opening *o, const struct sg_msg_view *v, struct sg_buf *plain)
{
	struct sg_buf der;
	struct sg_cms_decrypt_info info;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	char *fpr = NULL;
	int ret, r;

	sg_buf_init(&der, SEAL_MAX);
	if ((ret = p7m_der(o, v, "authEnveloped-data", &der)) <= 0)
		goto out;
	r = decrypt_with(o, &der, false, plain, &info, &st, &fpr);
	if (r < 0 && (st == SG_CRYPTO_WRONG_KEY || st == SG_CRYPTO_NO_KEY)) {
		sg_error_clear(o->err);
		r = decrypt_with(o, &der, true, plain, &info, &st, &fpr);
	}
	if (r < 0) {
		ret = verdict(o, st == SG_CRYPTO_WRONG_KEY || st == SG_CRYPTO_NO_KEY ? SG_DOMAIN_NO_KEY
			      : st == SG_CRYPTO_INTERNAL ? SG_DOMAIN_TEMPFAIL : SG_DOMAIN_TAMPERED,
			      "%s", sg_error_msg(o->err));
		goto out;
	}
	if (!info.authenticated) { /* only AuthEnvelopedData is ever sent */
		ret = verdict(o, SG_DOMAIN_TAMPERED, "not AuthEnvelopedData");
		goto out;
	}
	o->res->key_fpr = fpr;
	fpr = NULL;
	ret = 1;
out:
	free(fpr);
	sg_buf_free(&der);
	return ret;
}

static int verify_step(struct opening *o, const struct sg_buf *entity, struct sg_buf *content)
{
	struct sg_msg_view v;
	struct sg_buf der;
	struct sg_domain_keyset *signer = NULL;
	int ret;

	sg_buf_init(&der, SEAL_MAX);
	if (sg_msg_split(entity->data, entity->len, &v, NULL) < 0) {
		ret = verdict(o, SG_DOMAIN_TAMPERED, "decrypted entity does not parse");
		goto out;
	}
	if ((ret = p7m_der(o, &v, "signed-data", &der)) <= 0)
		goto out;
	signer = sg_domain_peer_signer_ref(o->d, o->marker_from, o->now, &ret, o->err);
	if (ret <= 0) {
		o->res->verdict = ret < 0 ? SG_DOMAIN_TEMPFAIL : SG_DOMAIN_UNKNOWN_SIGNER;
		ret = 0;
		goto out;
	}
	/* The signer is pinned (or configured): no CRLs apply, and no chain is
	 * built per message; certificates in the message are ignored. */
	enum sg_domcert_sig sig;
	if (sg_domcert_verify(signer->anchor, der.data, der.len, o->now, content, &sig, o->err) < 0) {
		ret = verdict(o, SG_DOMAIN_TAMPERED, "%s", sg_error_msg(o->err));
		goto out;
	}
	o->res->signer_fpr = sg_strdup(sg_key_fingerprint(signer->keys[0]));
	if (sig == SG_DOMCERT_SIG_BAD)
		ret = verdict(o, SG_DOMAIN_BAD_SIGNATURE, "domain signature of %s does not verify",
			      o->marker_from);
	else if (sig != SG_DOMCERT_SIG_VALID)
		ret = verdict(o, SG_DOMAIN_UNKNOWN_SIGNER,
			      "not signed by the trusted domain signing key of %s%s", o->marker_from,
			      sig == SG_DOMCERT_SIG_EXPIRED ? " (that key is not valid now)" : "");
	else
		ret = 1;
out:
	sg_domain_keyset_release(o->d, &signer);
	sg_buf_free(&der);
	return ret;
}

/* The binding in the signed entity names the sender domain the marker
 * named and the domain of the recipients this copy is for. */
static int binding_step(struct opening *o, const struct sg_buf *content, struct sg_msg_view *inner_r)
{
	struct sg_msg_view v;
	char *from = NULL, *to = NULL;
	int ret;

	if (sg_msg_split(content->data, content->len, &v, NULL) < 0 ||
	    field_params(&v, SG_DOMAIN_BINDING, &from, &to) != 1)
		return verdict(o, SG_DOMAIN_TAMPERED, "signed data carries no domain binding");
	if (strcmp(from, o->marker_from) != 0)
		ret = verdict(o, SG_DOMAIN_WRONG_DOMAIN, "bound sender domain %s differs from the marker", from);
	else if (strcmp(to, o->rcpt_domain) != 0 || !sg_domain_is_ours(o->d, to))
		ret = verdict(o, SG_DOMAIN_WRONG_DOMAIN, "sealed for recipient domain %s", to);
	else if (sg_msg_split(v.data + v.body_off, v.len - v.body_off, inner_r, NULL) < 0)
		ret = verdict(o, SG_DOMAIN_TAMPERED, "sealed message does not parse");
	else
		ret = 1;
	if (ret > 0)
		o->res->from_domain = sg_strdup(from);
	free(from);
	free(to);
	return ret;
}

static size_t count_received(const struct sg_msg_view *v)
{
	struct sg_msg_field f;
	size_t pos = 0, n = 0;
	while (sg_msg_next_field(v, &pos, &f) == 1)
		n += sg_msg_field_is(&f, "Received");
	return n;
}

/* Trace fields added on the way (outer Received fields beyond those the
 * sealed message already had, RFC 5321 s4.4), then the original message. */
static int rebuild(const struct sg_msg_view *outer, const struct sg_msg_view *inner,
		   struct sg_buf *out, struct sg_error *err)
{
	size_t have = count_received(outer), had = count_received(inner), pos = 0;
	struct sg_msg_field f;

	for (size_t k = 0; k + had < have && sg_msg_next_field(outer, &pos, &f) == 1;) {
		if (!sg_msg_field_is(&f, "Received"))
			continue;
		if (put(out, f.raw, f.raw_len, err) < 0)
			return -1;
		k++;
	}
	return put(out, inner->data, inner->len, err);
}

int sg_domain_open(struct sg_domain *d, const unsigned char *msg, size_t len,
		   const char *rcpt_domain, time_t now, struct sg_buf *out,
		   struct sg_domain_opened *res, struct sg_error *err)
{
	struct sg_buf entity, content;
	struct sg_msg_view v, inner;
	char *from = NULL, *to = NULL;
	struct opening o = { .d = d, .rcpt_domain = rcpt_domain, .now = now, .res = res, .err = err };
	int ret = 1;

	memset(res, 0, sizeof(*res));
	sg_buf_init(&entity, SEAL_MAX);
	sg_buf_init(&content, SEAL_MAX);
	if (sg_msg_split(msg, len, &v, NULL) < 0 || sg_domain_marker(&v, &from, &to) != 1) {
		verdict(&o, SG_DOMAIN_TAMPERED, "no valid %s marker", SG_DOMAIN_MARKER);
		goto out;
	}
	o.marker_from = from;
	/* no lock here: each step takes it only to borrow keys (workers open
	 * in parallel) */
	if (decrypt_step(&o, &v, &entity) > 0 && verify_step(&o, &entity, &content) > 0 &&
	    binding_step(&o, &content, &inner) > 0) {
		if (rebuild(&v, &inner, out, err) < 0)
			ret = -1;
		else
			res->verdict = SG_DOMAIN_OK;
	}
out:
	free(from);
	free(to);
	sg_buf_free_secret(&entity);
	sg_buf_free_secret(&content);
	return ret;
}

void sg_domain_opened_clear(struct sg_domain_opened *res)
{
	free(res->from_domain);
	free(res->signer_fpr);
	free(res->key_fpr);
	memset(res, 0, sizeof(*res));
}

static const struct {
	int code;
	const char *text;
} replies[] = {
	[SG_DOMAIN_OK] = { 250, "2.6.0 domain-sealed message opened" },
	[SG_DOMAIN_NO_KEY] = { 554, "5.7.4 Domain-sealed message: no private key for it "
				    "(short-lived key expired and destroyed, or not ours)" },
	[SG_DOMAIN_TAMPERED] = { 554, "5.7.5 Domain-sealed message damaged or tampered with" },
	[SG_DOMAIN_BAD_SIGNATURE] = { 554, "5.7.7 Domain-sealed message: bad domain signature" },
	[SG_DOMAIN_UNKNOWN_SIGNER] = { 554, "5.7.8 Domain-sealed message: signed by a key that is not "
					    "the pinned or configured key of the sender domain" },
	[SG_DOMAIN_WRONG_DOMAIN] = { 554, "5.7.1 Domain-sealed message bound to another domain" },
	[SG_DOMAIN_TEMPFAIL] = { 451, "4.7.0 Domain-sealed message: temporary key failure" },
};

int sg_domain_verdict_code(enum sg_domain_verdict v)
{
	return replies[v].code;
}

const char *sg_domain_verdict_text(enum sg_domain_verdict v)
{
	return replies[v].text;
}
