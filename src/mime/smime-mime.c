/* Message-level S/MIME (RFC 8551): application/pkcs7-mime and
 * multipart/signed entities around the CMS layer in crypto/smime.c. */
#include "crypto/smime.h"
#include "mime/message.h"
#include "util/log.h"
#include "util/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define SMIME_MAX (256u * 1024u * 1024u) /* working buffers; the spool caps messages earlier */
#define MAX_NESTING 4                    /* signed inside encrypted inside ... */

/* ---- base64 with 76-character CRLF lines (RFC 2045 s6.8) ---- */

static int put(struct sg_buf *out, const void *p, size_t n, struct sg_error *err)
{
	if (!sg_buf_append(out, p, n)) {
		sg_error_set(err, "message too large (more than %zu bytes)", out->max);
		return -1;
	}
	return 1;
}


static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_encode(const unsigned char *p, size_t len, struct sg_buf *out, struct sg_error *err)
{
	char line[80];
	size_t n = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = len - i;
		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		line[n++] = b64[(v >> 18) & 63];
		line[n++] = b64[(v >> 12) & 63];
		line[n++] = left > 1 ? b64[(v >> 6) & 63] : '=';
		line[n++] = left > 2 ? b64[v & 63] : '=';
		if (n == 76 || i + 3 >= len) {
			line[n++] = '\r';
			line[n++] = '\n';
			if (!sg_buf_append(out, line, n)) {
				sg_error_set(err, "sealed message too large");
				return -1;
			}
			n = 0;
		}
	}
	return 1;
}

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

/* A multipart boundary that does not occur in the content (RFC 2046 s5.1.1). */
static char *make_boundary(const unsigned char *content, size_t len)
{
	for (;;) {
		unsigned char rnd[12];
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			sg_fatal("getrandom failed");
		char *b = sg_asprintf("=-smime-%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x",
				      rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
				      rnd[7], rnd[8], rnd[9], rnd[10], rnd[11]);
		if (memmem(content, len, b, strlen(b)) == NULL)
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

/* A MIME entity under construction: its Content-* fields and its body. */
struct entity {
	struct sg_buf fields;
	struct sg_buf body;
};

static void entity_init(struct entity *e)
{
	sg_buf_init(&e->fields, 64 * 1024);
	sg_buf_init(&e->body, SMIME_MAX);
}

static void entity_free(struct entity *e)
{
	sg_buf_free(&e->fields);
	sg_buf_free_secret(&e->body);
}

/* fields + blank line + body, as one entity to sign or encrypt. */
static int entity_bytes(const struct entity *e, struct sg_buf *out, struct sg_error *err)
{
	if (put(out, e->fields.data, e->fields.len, err) < 0 || put(out, "\r\n", 2, err) < 0)
		return -1;
	return put(out, e->body.data, e->body.len, err);
}

static int pkcs7_entity(const char *smime_type, const char *file, const struct sg_buf *der,
			struct entity *e, struct sg_error *err)
{
	if (!sg_buf_printf(&e->fields,
			   "Content-Type: application/pkcs7-mime; smime-type=%s;\r\n"
			   " name=\"%s\"\r\n"
			   "Content-Transfer-Encoding: base64\r\n"
			   "Content-Disposition: attachment; filename=\"%s\"\r\n",
			   smime_type, file, file)) {
		sg_error_set(err, "header too large");
		return -1;
	}
	return b64_encode(der->data, der->len, &e->body, err);
}

/* RFC 8551 s3.5.3: multipart/signed with the content byte for byte as the
 * first part and the detached SignedData as the second. */
static int sign_entity(const struct sg_buf *content, const struct sg_x509_key *signer, bool opaque,
		       struct entity *e, enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_buf der;
	char *boundary = NULL;
	int ret = -1;

	sg_buf_init(&der, SMIME_MAX);
	if (sg_cms_sign(content->data, content->len, signer, !opaque, &der, status_r, err) < 0)
		goto out;
	*status_r = SG_CRYPTO_INTERNAL;
	if (opaque) {
		ret = pkcs7_entity("signed-data", "smime.p7m", &der, e, err);
		goto out;
	}
	boundary = make_boundary(content->data, content->len);
	if (!sg_buf_printf(&e->fields,
			   "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n"
			   " micalg=sha-256; boundary=\"%s\"\r\n", boundary) ||
	    !sg_buf_printf(&e->body, "This is a cryptographically signed message in MIME format.\r\n"
			   "\r\n--%s\r\n", boundary) ||
	    put(&e->body, content->data, content->len, err) < 0 ||
	    !sg_buf_printf(&e->body, "\r\n--%s\r\n"
			   "Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
			   "Content-Transfer-Encoding: base64\r\n"
			   "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n", boundary) ||
	    b64_encode(der.data, der.len, &e->body, err) < 0 ||
	    !sg_buf_printf(&e->body, "--%s--\r\n", boundary)) {
		sg_error_set(err, "signed message too large");
		goto out;
	}
	ret = 1;
out:
	free(boundary);
	sg_buf_free(&der);
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

static int seal_view(const struct sg_msg_view *v, const struct sg_seal_req *req,
		     struct sg_x509_key *const *recips, size_t n_recips,
		     const struct sg_x509_key *signer, struct sg_buf *out,
		     enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_buf inner, der, subject;
	struct entity signed_e, enc_e;
	const struct entity *top;
	bool encrypt = n_recips > 0;
	int ret = -1;

	sg_buf_init(&inner, SMIME_MAX);
	sg_buf_init(&der, SMIME_MAX);
	sg_buf_init(&subject, 64 * 1024);
	entity_init(&signed_e);
	entity_init(&enc_e);
	*status_r = SG_CRYPTO_INTERNAL;
	/* header protection only where the headers get hidden */
	if (sg_msg_build_inner(v, encrypt, &inner, err) < 0)
		goto out;
	if (signer != NULL) {
		if (sign_entity(&inner, signer, req->smime_opaque && !encrypt, &signed_e,
				status_r, err) < 0)
			goto out;
		/* sign-then-encrypt (RFC 8551 s3.7): the signed entity is the payload */
		sg_buf_reset(&inner);
		if (entity_bytes(&signed_e, &inner, err) < 0)
			goto out;
	}
	top = &signed_e;
	if (encrypt) {
		if (sg_cms_encrypt(inner.data, inner.len, recips, n_recips,
				   req->smime_gcm ? SG_CMS_AES256_GCM : SG_CMS_AES256_CBC,
				   &der, status_r, err) < 0)
			goto out;
		/* large messages: keep at most two copies alive at a time */
		sg_buf_free_secret(&inner);
		entity_free(&signed_e);
		entity_init(&signed_e);
		*status_r = SG_CRYPTO_INTERNAL;
		if (pkcs7_entity(req->smime_gcm ? "authEnveloped-data" : "enveloped-data",
				 "smime.p7m", &der, &enc_e, err) < 0 ||
		    sg_msg_make_subject(req->neutral_subject != NULL ? req->neutral_subject : "...",
					&subject, err) < 0)
			goto out;
		sg_buf_free(&der);
		top = &enc_e;
	}
	if (sg_msg_build_outer(v, encrypt ? subject.data : NULL, subject.len,
			       sg_buf_str(&top->fields), true, out, err) < 0 ||
	    put(out, top->body.data, top->body.len, err) < 0)
		goto out;
	*status_r = SG_CRYPTO_OK;
	ret = 1;
out:
	sg_buf_free_secret(&inner);
	sg_buf_free(&der);
	sg_buf_free(&subject);
	entity_free(&signed_e);
	entity_free(&enc_e);
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

static int do_decrypt(struct unseal_ctx *c, const struct sg_buf *der, struct sg_buf *next,
		      enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_cms_decrypt_info info;

	if (sg_cms_decrypt(der->data, der->len, c->keys, c->n_keys, c->now, next, &info,
			   status_r, err) < 0)
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
	free(c->res->signer);
	c->res->signer = vi->signer;
	vi->signer = NULL;
	return vi->sig == SG_SIG_BAD ? 2 : 1;
}

static int do_verify_opaque(struct unseal_ctx *c, const struct sg_buf *der, struct sg_buf *next,
			    enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_cms_verify_info vi;
	int r = sg_cms_verify(der->data, der->len, NULL, 0, c->anchors, c->n_anchors, c->now,
			      next, &vi, status_r, err);
	if (r > 0)
		r = take_verdict(c, &vi);
	sg_cms_verify_info_clear(&vi);
	return r;
}

/* multipart/signed: part 1 is the content byte for byte, part 2 the
 * detached SignedData (RFC 8551 s3.5.3). */
static int do_verify_detached(struct unseal_ctx *c, const struct sg_msg_view *v,
			      const char *boundary, struct sg_buf *next,
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
			  c->n_anchors, c->now, NULL, &vi, status_r, err) < 0)
		goto out;
	ret = take_verdict(c, &vi);
	*status_r = SG_CRYPTO_INTERNAL;
	if (ret == 1 && put(next, body + parts[0].off, parts[0].len, err) < 0)
		ret = -1;
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

/* Peel one S/MIME layer off cur into next: 1 done, 0 cur is not S/MIME,
 * 2 a signature is BAD (stop, release nothing). */
static int peel(struct unseal_ctx *c, const struct sg_buf *cur, struct sg_buf *next,
		enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_msg_view v;
	struct sg_msg_ctype ct = { 0 };
	struct sg_buf der;
	int ret = -1;

	sg_buf_init(&der, SMIME_MAX);
	*status_r = SG_CRYPTO_MALFORMED;
	if (sg_msg_split(cur->data, cur->len, &v, err) < 0 || sg_msg_get_ctype(&v, &ct, err) < 0)
		goto out;
	if (sg_msg_ctype_is(&ct, "multipart", "signed") && ct.protocol != NULL &&
	    (strcasecmp(ct.protocol, "application/pkcs7-signature") == 0 ||
	     strcasecmp(ct.protocol, "application/x-pkcs7-signature") == 0)) {
		ret = do_verify_detached(c, &v, ct.boundary, next, status_r, err);
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
		ret = do_decrypt(c, &der, next, status_r, err);
		break;
	case SG_CMS_KIND_SIGNED:
		ret = do_verify_opaque(c, &der, next, status_r, err);
		break;
	default:
		sg_error_set(err, "application/pkcs7-mime body is not a CMS object we read");
		ret = -1;
	}
out:
	sg_msg_ctype_clear(&ct);
	sg_buf_free(&der);
	return ret;
}

/* The unsealed message: original outer fields, with the Content-* fields
 * (and a protected Subject) of the innermost entity, then its body. */
static int rebuild(const struct sg_msg_view *outer, const struct sg_buf *inner, struct sg_buf *out,
		   struct sg_error *err)
{
	struct sg_msg_view iv;
	struct sg_msg_field subj;
	struct sg_buf content;
	int ret = -1, prot;

	sg_buf_init(&content, 64 * 1024);
	if (sg_msg_split(inner->data, inner->len, &iv, err) < 0 ||
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

static int unseal_layers(struct unseal_ctx *c, const struct sg_msg_view *v, struct sg_buf *out,
			 enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_buf cur, next;
	int layers = 0, ret = -1, r;

	sg_buf_init(&cur, SMIME_MAX);
	sg_buf_init(&next, SMIME_MAX);
	*status_r = SG_CRYPTO_INTERNAL;
	if (put(&cur, v->data, v->len, err) < 0)
		goto out;
	while ((r = peel(c, &cur, &next, status_r, err)) == 1) {
		if (++layers > MAX_NESTING) {
			*status_r = SG_CRYPTO_MALFORMED;
			sg_error_set(err, "more than %d nested S/MIME layers", MAX_NESTING);
			goto out;
		}
		struct sg_buf t = cur;
		cur = next;
		next = t;
		sg_buf_reset(&next);
	}
	if (r < 0)
		goto out;
	*status_r = SG_CRYPTO_MALFORMED;
	/* all layers checked: only now does anything reach out */
	if (r == 2)
		r = 1;
	else if (layers == 0)
		r = put(out, v->data, v->len, err);
	else
		r = rebuild(v, &cur, out, err);
	if (r < 0)
		goto out;
	*status_r = SG_CRYPTO_OK;
	ret = 1;
out:
	sg_buf_free_secret(&cur);
	sg_buf_free_secret(&next);
	return ret;
}

int sg_smime_unseal(const unsigned char *msg, size_t len, const struct sg_unseal_req *req,
		    struct sg_buf *out, struct sg_unseal_result *res,
		    enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct unseal_ctx c = { .now = time(NULL), .res = res };
	struct sg_buf crlf, tmp;
	struct sg_msg_view v;
	int ret = -1;

	memset(res, 0, sizeof(*res));
	const unsigned char *data;
	size_t dlen;

	sg_buf_init(&crlf, SMIME_MAX);
	sg_buf_init(&tmp, out->max);
	*status_r = SG_CRYPTO_MALFORMED;
	if (canonical(msg, len, &crlf, &data, &dlen, err) < 0 || sg_msg_split(data, dlen, &v, err) < 0)
		goto out;
	c.keys = x509_array(req->keys, req->n_keys, true, &c.n_keys, status_r, err);
	c.anchors = x509_array(req->verify_keys, req->n_verify_keys, true, &c.n_anchors,
			       status_r, err);
	if (unseal_layers(&c, &v, &tmp, status_r, err) < 0)
		goto out;
	*status_r = SG_CRYPTO_INTERNAL;
	if (put(out, tmp.data, tmp.len, err) < 0)
		goto out;
	*status_r = SG_CRYPTO_OK;
	ret = 1;
out:
	if (ret < 0)
		sg_error_prefix(err, "smime unseal");
	free(c.keys);
	free(c.anchors);
	sg_buf_free_secret(&crlf);
	sg_buf_free_secret(&tmp);
	return ret;
}
