/* Message-level S/MIME (RFC 8551): application/pkcs7-mime and
 * multipart/signed entities around the CMS layer in crypto/smime.c. */
#include "crypto/smime.h"
#include "mime/message.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/secret.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define SMIME_MAX (256u * 1024u * 1024u) /* working buffers; the spool caps messages earlier */
#define MAX_NESTING 4                    /* signed inside encrypted inside ... */

/* ---- base64 (RFC 2045 s6.8); encoding is sg_base64_lines_append ---- */

static int put(struct sg_buf *out, const void *p, size_t n, struct sg_error *err)
{
	if (!sg_buf_append(out, p, n)) {
		sg_error_set(err, "message too large (more than %zu bytes)", out->max);
		return -1;
	}
	return 1;
}


static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decode, skipping line ends and blanks; anything else is malformed. */
static int b64_decode(const unsigned char *p, size_t len, struct sg_buf *out, struct sg_error *err)
{
	signed char val[256];
	unsigned char chunk[3072];
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	bool pad = false;

	memset(val, -1, sizeof(val));
	for (int i = 0; i < 64; i++)
		val[(unsigned char)b64[i]] = (signed char)i;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
			continue;
		if (c == '=') {
			pad = true;
			continue;
		}
		if (val[c] < 0 || pad) {
			sg_error_set(err, "invalid base64 at byte %zu", i);
			return -1;
		}
		acc = (acc << 6) | (uint32_t)val[c];
		bits += 6;
		if (bits < 8)
			continue;
		bits -= 8;
		chunk[n++] = (unsigned char)(acc >> bits);
		if (n == sizeof(chunk)) {
			if (put(out, chunk, n, err) < 0)
				return -1;
			n = 0;
		}
	}
	return put(out, chunk, n, err);
}

/* ---- helpers ---- */

/* The content being signed or encrypted: the inner entity's header block
 * (built here) and its body, by reference into the message: never copied
 * whole. */
struct content {
	struct sg_buf hdr;
	const unsigned char *body;
	size_t body_len;
};

/* A multipart boundary that occurs in neither piece (RFC 2046 s5.1.1); the
 * header piece ends in CRLF CRLF, so none can straddle the two. */
static char *make_boundary(const struct content *c)
{
	for (;;) {
		unsigned char rnd[12];
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			sg_fatal("getrandom failed");
		char *b = sg_asprintf("=-smime-%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x",
				      rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
				      rnd[7], rnd[8], rnd[9], rnd[10], rnd[11]);
		if (memmem(c->hdr.data, c->hdr.len, b, strlen(b)) == NULL &&
		    memmem(c->body, c->body_len, b, strlen(b)) == NULL)
			return b;
		free(b);
	}
}

/* Map handles to their X.509 parts; *status_r BAD_KEY for a non-X.509 one. */
static struct sg_x509_key **x509_array(struct sg_key *const *keys, size_t n, bool skip_others,
				       size_t *n_r, enum sg_crypto_status *status_r,
				       struct sg_error *err)
{
	struct sg_x509_key **xs = sg_calloc(n + 1, sizeof(*xs));
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		struct sg_x509_key *x = sg_key_x509(keys[i]);
		if (x != NULL) {
			xs[m++] = x;
		} else if (!skip_others) {
			free(xs);
			*status_r = SG_CRYPTO_BAD_KEY;
			sg_error_set(err, "smime: key %zu is not an X.509 certificate", i);
			return NULL;
		}
	}
	*n_r = m;
	return xs;
}

/* ---- seal ---- */

/* Where an entity's bytes go: straight into the message, or through a
 * CMS writer (encrypt) that base64-encodes into the message. */
struct dest {
	struct sg_buf *buf;
	struct sg_cms_writer *w;
};

static int dest_put(struct dest *d, const void *p, size_t n, struct sg_error *err)
{
	return d->w != NULL ? sg_cms_write(d->w, p, n, err) : put(d->buf, p, n, err);
}

static int dest_printf(struct dest *d, struct sg_error *err, const char *fmt, ...) SG_PRINTF(3, 4);

static int dest_printf(struct dest *d, struct sg_error *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = sg_vasprintf(fmt, ap);
	va_end(ap);
	int r = dest_put(d, s, strlen(s), err);
	free(s);
	return r;
}

static int put_content(struct dest *d, const struct content *c, struct sg_error *err)
{
	if (dest_put(d, c->hdr.data, c->hdr.len, err) < 0)
		return -1;
	return dest_put(d, c->body, c->body_len, err);
}

static char *pkcs7_fields(const char *smime_type)
{
	return sg_asprintf("Content-Type: application/pkcs7-mime; smime-type=%s;\r\n"
			   " name=\"smime.p7m\"\r\n"
			   "Content-Transfer-Encoding: base64\r\n"
			   "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n",
			   smime_type);
}

/* A signature prepared before anything is written: its entity's fields
 * and, for multipart/signed, the detached SignedData (RFC 8551 s3.5.3). */
struct signature {
	char *fields;
	char *boundary;     /* NULL: opaque */
	struct sg_buf der;
};

static void signature_clear(struct signature *sig)
{
	free(sig->fields);
	free(sig->boundary);
	sg_buf_free(&sig->der);
	memset(sig, 0, sizeof(*sig));
}

static int signature_prepare(const struct content *c, const struct sg_x509_key *signer,
			     bool opaque, struct signature *sig,
			     enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_cms_writer *w = NULL;

	sg_buf_init(&sig->der, SMIME_MAX);
	if (opaque) {
		sig->fields = pkcs7_fields("signed-data");
		return 1;
	}
	if (sg_cms_sign_begin(signer, true, false, &sig->der, &w, status_r, err) < 0)
		return -1;
	if (sg_cms_write(w, c->hdr.data, c->hdr.len, err) < 0 ||
	    sg_cms_write(w, c->body, c->body_len, err) < 0) {
		*status_r = SG_CRYPTO_INTERNAL;
		sg_cms_writer_free(&w);
		return -1;
	}
	if (sg_cms_finish(&w, status_r, err) < 0)
		return -1;
	sig->boundary = make_boundary(c);
	sig->fields = sg_asprintf("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n"
				  " micalg=sha-256; boundary=\"%s\"\r\n", sig->boundary);
	return 1;
}

/* The body of the multipart/signed entity: the content byte for byte as
 * the first part, the detached SignedData as the second. */
static int put_signed_body(struct dest *d, const struct content *c, const struct signature *sig,
			   struct sg_error *err)
{
	struct sg_buf sigtext;
	int ret = -1;

	sg_buf_init(&sigtext, SMIME_MAX);
	if (dest_printf(d, err, "This is a cryptographically signed message in MIME format.\r\n"
			"\r\n--%s\r\n", sig->boundary) < 0 ||
	    put_content(d, c, err) < 0 ||
	    dest_printf(d, err, "\r\n--%s\r\n"
			"Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
			"Content-Transfer-Encoding: base64\r\n"
			"Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n",
			sig->boundary) < 0)
		goto out;
	if (!sg_base64_lines_append(sig->der.data, sig->der.len, &sigtext)) {
		sg_error_set(err, "signature too large");
		goto out;
	}
	if (dest_put(d, sigtext.data, sigtext.len, err) < 0 ||
	    dest_printf(d, err, "--%s--\r\n", sig->boundary) < 0)
		goto out;
	ret = 1;
out:
	sg_buf_free(&sigtext);
	return ret;
}

static int check_keys(struct sg_x509_key *const *recips, size_t n, const struct sg_x509_key *signer,
		      enum sg_crypto_status *status_r, struct sg_error *err)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < n; i++) {
		if (sg_x509_key_usable(recips[i], false, now, status_r, err) != 1) {
			sg_error_prefix(err, "recipient %s", sg_x509_key_fingerprint(recips[i]));
			return -1;
		}
	}
	if (signer != NULL && sg_x509_key_usable(signer, true, now, status_r, err) != 1) {
		sg_error_prefix(err, "signer %s", sg_x509_key_fingerprint(signer));
		return -1;
	}
	return 1;
}

/* Encrypt (RFC 8551 s3.3), signed first when sig is set (s3.7): the
 * entity streams through the CMS writer into out as base64. */
static int seal_encrypted(const struct content *c, const struct signature *sig,
			  const struct sg_seal_req *req, struct sg_x509_key *const *recips,
			  size_t n_recips, struct sg_buf *out,
			  enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct dest d = { .buf = out };

	if (sg_cms_encrypt_begin(recips, n_recips,
				 req->smime_gcm ? SG_CMS_AES256_GCM : SG_CMS_AES256_CBC, true, out,
				 &d.w, status_r, err) < 0)
		return -1;
	*status_r = SG_CRYPTO_INTERNAL;
	if (sig != NULL && (dest_put(&d, sig->fields, strlen(sig->fields), err) < 0 ||
			    dest_put(&d, "\r\n", 2, err) < 0 || put_signed_body(&d, c, sig, err) < 0))
		goto fail;
	if (sig == NULL && put_content(&d, c, err) < 0)
		goto fail;
	return sg_cms_finish(&d.w, status_r, err);
fail:
	sg_cms_writer_free(&d.w);
	return -1;
}

/* Sign only: multipart/signed, or opaque signed-data streamed as base64. */
static int seal_signed(const struct content *c, const struct signature *sig,
		       const struct sg_x509_key *signer, struct sg_buf *out,
		       enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct dest d = { .buf = out };

	if (sig->boundary != NULL)
		return put_signed_body(&d, c, sig, err);
	if (sg_cms_sign_begin(signer, false, true, out, &d.w, status_r, err) < 0)
		return -1;
	*status_r = SG_CRYPTO_INTERNAL;
	if (put_content(&d, c, err) < 0) {
		sg_cms_writer_free(&d.w);
		return -1;
	}
	return sg_cms_finish(&d.w, status_r, err);
}

static int seal_view(const struct sg_msg_view *v, const struct sg_seal_req *req,
		     struct sg_x509_key *const *recips, size_t n_recips,
		     const struct sg_x509_key *signer, struct sg_buf *out,
		     enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct content c = { .body = v->data + v->body_off, .body_len = v->len - v->body_off };
	struct signature sig = { 0 };
	struct sg_buf subject;
	const size_t saved = out->len;
	bool encrypt = n_recips > 0;
	char *fields = NULL;
	int ret = -1;

	sg_buf_init(&c.hdr, 1024 * 1024);
	sg_buf_init(&subject, 64 * 1024);
	*status_r = SG_CRYPTO_INTERNAL;
	/* header protection only where the headers get hidden */
	if (sg_msg_build_inner_header(v, encrypt, &c.hdr, err) < 0)
		goto out;
	if (signer != NULL &&
	    signature_prepare(&c, signer, req->smime_opaque && !encrypt, &sig, status_r, err) < 0)
		goto out;
	*status_r = SG_CRYPTO_INTERNAL;
	if (encrypt) {
		fields = pkcs7_fields(req->smime_gcm ? "authEnveloped-data" : "enveloped-data");
		if (sg_msg_make_subject(req->neutral_subject != NULL ? req->neutral_subject : "...",
					&subject, err) < 0)
			goto out;
	}
	/* the outer header first, then the body streams in after it */
	if (sg_msg_build_outer(v, encrypt ? subject.data : NULL, subject.len,
			       encrypt ? fields : sig.fields, true, out, err) < 0)
		goto out;
	if (encrypt)
		ret = seal_encrypted(&c, signer != NULL ? &sig : NULL, req, recips, n_recips, out,
				     status_r, err);
	else
		ret = seal_signed(&c, &sig, signer, out, status_r, err);
	if (ret > 0)
		*status_r = SG_CRYPTO_OK;
out:
	if (ret < 0 && out->len > saved) {
		sg_memwipe(out->data + saved, out->len - saved);
		out->len = saved;
		out->data[saved] = '\0';
	}
	free(fields);
	signature_clear(&sig);
	sg_buf_free(&c.hdr);
	sg_buf_free(&subject);
	return ret;
}

/* Mail is CRLF (RFC 5322 s2.3); convert only input that is not, so that
 * the usual case costs no copy. The result is msg itself or crlf's data. */
static int canonical(const unsigned char *msg, size_t len, struct sg_buf *crlf,
		     const unsigned char **data_r, size_t *len_r, struct sg_error *err)
{
	const unsigned char *nl = msg;
	size_t left = len;

	while ((nl = memchr(nl, '\n', left)) != NULL) {
		if (nl == msg || nl[-1] != '\r') {
			if (sg_msg_to_crlf(msg, len, crlf, err) < 0)
				return -1;
			*data_r = crlf->data;
			*len_r = crlf->len;
			return 1;
		}
		nl++;
		left = len - (size_t)(nl - msg);
	}
	*data_r = msg;
	*len_r = len;
	return 1;
}

int sg_smime_seal(const unsigned char *msg, size_t len, const struct sg_seal_req *req,
		  struct sg_buf *out, enum sg_seal_outcome *outcome_r,
		  enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_x509_key **recips = NULL;
	struct sg_x509_key *signer = NULL;
	struct sg_buf crlf;
	struct sg_msg_view v;
	size_t n_recips = 0;
	int ret = -1;

	const unsigned char *data;
	size_t dlen;

	sg_buf_init(&crlf, SMIME_MAX);
	*status_r = SG_CRYPTO_MALFORMED;
	if (canonical(msg, len, &crlf, &data, &dlen, err) < 0 || sg_msg_split(data, dlen, &v, err) < 0)
		goto out;
	if (sg_msg_class_is_encrypted(sg_msg_classify(&v)) && req->n_recipients > 0) {
		/* never wrap ciphertext again: pass it on as it came */
		*status_r = SG_CRYPTO_INTERNAL;
		if (put(out, msg, len, err) < 0)
			goto out;
		*outcome_r = SG_SEAL_ALREADY_ENCRYPTED;
		*status_r = SG_CRYPTO_OK;
		ret = 1;
		goto out;
	}
	if (req->n_recipients == 0 && req->signer == NULL) {
		*status_r = SG_CRYPTO_NO_KEY;
		sg_error_set(err, "nothing to do: no recipients and no signer");
		goto out;
	}
	recips = x509_array(req->recipients, req->n_recipients, false, &n_recips, status_r, err);
	if (recips == NULL)
		goto out;
	if (req->signer != NULL && (signer = sg_key_x509(req->signer)) == NULL) {
		*status_r = SG_CRYPTO_BAD_KEY;
		sg_error_set(err, "signer is not an X.509 certificate");
		goto out;
	}
	if (check_keys(recips, n_recips, signer, status_r, err) < 0 ||
	    seal_view(&v, req, recips, n_recips, signer, out, status_r, err) < 0)
		goto out;
	*outcome_r = SG_SEAL_SEALED;
	ret = 1;
out:
	if (ret < 0)
		sg_error_prefix(err, "smime seal");
	free(recips);
	sg_buf_free_secret(&crlf);
	return ret;
}

/* ---- unseal ---- */

struct unseal_ctx {
	struct sg_x509_key **keys;
	size_t n_keys;
	struct sg_x509_key **anchors;
	size_t n_anchors;
	time_t now;
	const struct sg_smime_revocation *rev;
	struct sg_unseal_result *res;
};

/* The body of a pkcs7 entity as DER (base64 or already binary). */
static int entity_der(const struct sg_msg_view *v, struct sg_buf *der, struct sg_error *err)
{
	struct sg_msg_field f;
	bool base64 = false;

	if (sg_msg_find_field(v, "Content-Transfer-Encoding", &f) == 1) {
		char *cte = sg_msg_field_value(&f);
		base64 = strcasecmp(cte, "base64") == 0;
		free(cte);
	}
	if (base64)
		return b64_decode(v->data + v->body_off, v->len - v->body_off, der, err);
	return put(der, v->data + v->body_off, v->len - v->body_off, err);
}

static void add_warning(struct sg_unseal_result *res, const char *w)
{
	char *joined = res->warning == NULL ? sg_strdup(w) : sg_asprintf("%s; %s", res->warning, w);
	free(res->warning);
	res->warning = joined;
}

/* One layer's bytes: the input, a part of a layer, or what a layer
 * decrypted into a buffer. */
struct span {
	const unsigned char *p;
	size_t len;
};

static int do_decrypt(struct unseal_ctx *c, struct sg_buf *der, struct sg_buf *next,
		      enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_cms_decrypt_info info;

	if (sg_cms_decrypt_buf(der, c->keys, c->n_keys, c->now, next, &info, status_r, err) < 0)
		return -1;
	c->res->was_encrypted = true;
	c->res->authenticated = info.authenticated;
	free(c->res->decrypted_with);
	c->res->decrypted_with = sg_strdup(sg_x509_key_fingerprint(info.key));
	if (!info.authenticated)
		add_warning(c->res, "AES-CBC EnvelopedData: not integrity protected");
	if (info.key_expired)
		add_warning(c->res, "decrypted with an expired certificate");
	return 1;
}

/* Record a verdict. A BAD signature stops unsealing: the content was
 * changed, so none of it reaches out (peel returns 2). */
static int take_verdict(struct unseal_ctx *c, struct sg_cms_verify_info *vi)
{
	c->res->sig = vi->sig;
	c->res->revocation_unknown = vi->revocation_unknown;
	free(c->res->signer);
	c->res->signer = vi->signer;
	vi->signer = NULL;
	if (vi->detail != NULL && vi->sig != SG_SIG_VALID) {
		char *w = sg_asprintf("signer certificate: %s", vi->detail);
		add_warning(c->res, w);
		free(w);
	}
	return vi->sig == SG_SIG_BAD ? 2 : 1;
}

static int do_verify_opaque(struct unseal_ctx *c, const struct sg_buf *der, struct sg_buf *next,
			    enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_cms_verify_info vi;
	int r = sg_cms_verify(der->data, der->len, NULL, 0, c->anchors, c->n_anchors, c->now,
			      c->rev, next, &vi, status_r, err);
	if (r > 0)
		r = take_verdict(c, &vi);
	sg_cms_verify_info_clear(&vi);
	return r;
}

/* multipart/signed: part 1 is the content byte for byte, part 2 the
 * detached SignedData (RFC 8551 s3.5.3). The next layer is part 1 where
 * it lies: no copy. */
static int do_verify_detached(struct unseal_ctx *c, const struct sg_msg_view *v,
			      const char *boundary, struct span *next,
			      enum sg_crypto_status *status_r, struct sg_error *err)
{
	const unsigned char *body = v->data + v->body_off;
	struct sg_msg_bodypart *parts = NULL;
	struct sg_msg_view sv;
	struct sg_cms_verify_info vi = { 0 };
	struct sg_buf der;
	size_t n = 0;
	int ret = -1;

	sg_buf_init(&der, SMIME_MAX);
	*status_r = SG_CRYPTO_MALFORMED;
	if (sg_msg_multipart_split(body, v->len - v->body_off, boundary, &parts, &n, err) < 0)
		goto out;
	if (n != 2) {
		sg_error_set(err, "multipart/signed with %zu parts", n);
		goto out;
	}
	if (sg_msg_split(body + parts[1].off, parts[1].len, &sv, err) < 0 ||
	    entity_der(&sv, &der, err) < 0)
		goto out;
	if (sg_cms_verify(der.data, der.len, body + parts[0].off, parts[0].len, c->anchors,
			  c->n_anchors, c->now, c->rev, NULL, &vi, status_r, err) < 0)
		goto out;
	ret = take_verdict(c, &vi);
	next->p = body + parts[0].off;
	next->len = parts[0].len;
out:
	sg_cms_verify_info_clear(&vi);
	sg_buf_free(&der);
	free(parts);
	return ret;
}

static bool is_pkcs7(const struct sg_msg_ctype *ct, const char *sub)
{
	return sg_msg_ctype_is(ct, "application", sub);
}

/* Peel one S/MIME layer off cur: 1 done (*next_r is the next layer, in
 * spare or inside cur), 0 cur is not S/MIME, 2 a signature is BAD (stop,
 * release nothing). */
static int peel(struct unseal_ctx *c, struct span cur, struct sg_buf *spare,
		struct span *next_r, enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_msg_view v;
	struct sg_msg_ctype ct = { 0 };
	struct sg_buf der;
	int ret = -1;

	sg_buf_init(&der, SMIME_MAX);
	*status_r = SG_CRYPTO_MALFORMED;
	if (sg_msg_split(cur.p, cur.len, &v, err) < 0 || sg_msg_get_ctype(&v, &ct, err) < 0)
		goto out;
	if (sg_msg_ctype_is(&ct, "multipart", "signed") && ct.protocol != NULL &&
	    (strcasecmp(ct.protocol, "application/pkcs7-signature") == 0 ||
	     strcasecmp(ct.protocol, "application/x-pkcs7-signature") == 0)) {
		ret = do_verify_detached(c, &v, ct.boundary, next_r, status_r, err);
		goto out;
	}
	if (!is_pkcs7(&ct, "pkcs7-mime") && !is_pkcs7(&ct, "x-pkcs7-mime")) {
		ret = 0;
		goto out;
	}
	if (entity_der(&v, &der, err) < 0)
		goto out;
	/* smime-type may be missing or wrong; the DER says what it is */
	switch (sg_cms_kind(der.data, der.len)) {
	case SG_CMS_KIND_ENVELOPED:
	case SG_CMS_KIND_AUTH_ENVELOPED:
		ret = do_decrypt(c, &der, spare, status_r, err);
		break;
	case SG_CMS_KIND_SIGNED:
		ret = do_verify_opaque(c, &der, spare, status_r, err);
		break;
	default:
		sg_error_set(err, "application/pkcs7-mime body is not a CMS object we read");
		ret = -1;
	}
	next_r->p = spare->data;
	next_r->len = spare->len;
out:
	sg_msg_ctype_clear(&ct);
	sg_buf_free(&der);
	return ret;
}

/* The unsealed message: original outer fields, with the Content-* fields
 * (and a protected Subject) of the innermost entity, then its body. */
static int rebuild(const struct sg_msg_view *outer, struct span inner, struct sg_buf *out,
		   struct sg_error *err)
{
	struct sg_msg_view iv;
	struct sg_msg_field subj;
	struct sg_buf content;
	int ret = -1, prot;

	sg_buf_init(&content, 64 * 1024);
	if (sg_msg_split(inner.p, inner.len, &iv, err) < 0 ||
	    (prot = sg_msg_unprotect_inner(&iv, &content, &subj, err)) < 0)
		goto out;
	if (sg_msg_build_outer(outer, prot == 1 ? subj.raw : NULL, prot == 1 ? subj.raw_len : 0,
			       sg_buf_str(&content), true, out, err) < 0 ||
	    put(out, iv.data + iv.body_off, iv.len - iv.body_off, err) < 0)
		goto out;
	ret = 1;
out:
	sg_buf_free(&content);
	return ret;
}

/* rebuild() in the buffer that holds the innermost entity (inner lies in
 * it), which then becomes out (empty before): the new header goes where the
 * entity's header was, the body moves behind it, and no second copy of the
 * message is made. 0 if it does not fit out's maximum (rebuild() then says
 * so); the leftover bytes past the new end are wiped. */
static int rebuild_inplace(const struct sg_msg_view *outer, struct span inner,
			   struct sg_buf *holder, struct sg_buf *out, struct sg_error *err)
{
	struct sg_msg_view iv;
	struct sg_msg_field subj;
	struct sg_buf content, hdr;
	size_t body_off, body_len, end, max;
	int ret = -1, prot;

	sg_buf_init(&content, 64 * 1024);
	sg_buf_init(&hdr, SMIME_MAX);
	if (sg_msg_split(inner.p, inner.len, &iv, err) < 0 ||
	    (prot = sg_msg_unprotect_inner(&iv, &content, &subj, err)) < 0 ||
	    sg_msg_build_outer(outer, prot == 1 ? subj.raw : NULL, prot == 1 ? subj.raw_len : 0,
			       sg_buf_str(&content), true, &hdr, err) < 0)
		goto out;
	body_off = (size_t)(iv.data + iv.body_off - holder->data);
	body_len = iv.len - iv.body_off;
	if (hdr.len > out->max || body_len > out->max - hdr.len) {
		ret = 0;
		goto out;
	}
	/* room for the header in front of the body: grow by what it lacks */
	if (hdr.len > body_off && !sg_buf_append(holder, hdr.data, hdr.len - body_off)) {
		ret = 0;
		goto out;
	}
	end = holder->len;
	memmove(holder->data + hdr.len, holder->data + body_off, body_len);
	memcpy(holder->data, hdr.data, hdr.len);
	holder->len = hdr.len + body_len;
	sg_memwipe(holder->data + holder->len, end - holder->len);
	holder->data[holder->len] = '\0';
	max = out->max;
	sg_buf_free_secret(out);
	*out = *holder;
	out->max = max;
	holder->data = NULL;
	holder->len = holder->cap = 0;
	ret = 1;
out:
	sg_buf_free(&content);
	sg_buf_free(&hdr);
	return ret;
}

/* Peel every layer, alternating two buffers for what decrypting or
 * opaque verifying produces (a detached signature's content stays where
 * it is); the one no longer referenced is wiped and freed at once. */
static int unseal_layers(struct unseal_ctx *c, const struct sg_msg_view *v, struct sg_buf *out,
			 enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_buf bufs[2];
	struct span cur = { v->data, v->len }, next;
	const size_t saved = out->len;
	int layers = 0, holder = -1, ret = -1, r;

	sg_buf_init(&bufs[0], SMIME_MAX);
	sg_buf_init(&bufs[1], SMIME_MAX);
	for (;;) {
		int spare = holder == 0 ? 1 : 0;
		sg_buf_free_secret(&bufs[spare]);
		if ((r = peel(c, cur, &bufs[spare], &next, status_r, err)) != 1)
			break;
		if (++layers > MAX_NESTING) {
			*status_r = SG_CRYPTO_MALFORMED;
			sg_error_set(err, "more than %d nested S/MIME layers", MAX_NESTING);
			goto out;
		}
		if (next.p == bufs[spare].data && bufs[spare].data != NULL) {
			if (holder >= 0)
				sg_buf_free_secret(&bufs[holder]);
			holder = spare;
		}
		cur = next;
	}
	if (r < 0)
		goto out;
	*status_r = SG_CRYPTO_MALFORMED;
	/* all layers checked: only now does anything reach out */
	if (r == 2)
		r = 1;
	else if (layers == 0)
		r = put(out, v->data, v->len, err);
	else if (out->len == 0 && holder >= 0 && bufs[holder].data != NULL &&
		 cur.p >= bufs[holder].data && cur.len <= bufs[holder].len &&
		 (size_t)(cur.p - bufs[holder].data) <= bufs[holder].len - cur.len &&
		 (r = rebuild_inplace(v, cur, &bufs[holder], out, err)) != 0)
		;
	else
		r = rebuild(v, cur, out, err);
	if (r < 0)
		goto out;
	*status_r = SG_CRYPTO_OK;
	ret = 1;
out:
	if (ret < 0 && out->len > saved) {
		sg_memwipe(out->data + saved, out->len - saved);
		out->len = saved;
		out->data[saved] = '\0';
	}
	sg_buf_free_secret(&bufs[0]);
	sg_buf_free_secret(&bufs[1]);
	return ret;
}

int sg_smime_unseal(const unsigned char *msg, size_t len, const struct sg_unseal_req *req,
		    struct sg_buf *out, struct sg_unseal_result *res,
		    enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct unseal_ctx c = { .now = time(NULL), .rev = req->smime_revocation, .res = res };
	struct sg_buf crlf;
	struct sg_msg_view v;
	int ret = -1;

	memset(res, 0, sizeof(res[0]));
	const unsigned char *data;
	size_t dlen;

	sg_buf_init(&crlf, SMIME_MAX);
	*status_r = SG_CRYPTO_MALFORMED;
	if (canonical(msg, len, &crlf, &data, &dlen, err) < 0 || sg_msg_split(data, dlen, &v, err) < 0)
		goto out;
	c.keys = x509_array(req->keys, req->n_keys, true, &c.n_keys, status_r, err);
	c.anchors = x509_array(req->verify_keys, req->n_verify_keys, true, &c.n_anchors,
			       status_r, err);
	if (unseal_layers(&c, &v, out, status_r, err) < 0)
		goto out;
	ret = 1;
out:
	if (ret < 0)
		sg_error_prefix(err, "smime unseal");
	free(c.keys);
	free(c.anchors);
	sg_buf_free_secret(&crlf);
	return ret;
}
