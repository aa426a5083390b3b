/* sg_seal / sg_unseal: the format-independent checks, then PGP/MIME
 * (RFC 3156) here and S/MIME in mime/smime-mime.c. */
#include "mime/seal.h"
#include "crypto/pgp.h"
#include "crypto/smime.h"
#include "mime/message.h"
#include "util/mem.h"

#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define NEUTRAL_SUBJECT "..."

static void set_status(enum sg_crypto_status *status_r, enum sg_crypto_status st)
{
	if (status_r != NULL)
		*status_r = st;
}

static int put(struct sg_buf *out, const void *p, size_t n, struct sg_error *err)
{
	if (sg_buf_append(out, p, n) != 1) {
		sg_error_set(err, "output larger than %zu bytes", out->max);
		return -1;
	}
	return 1;
}

static int put_str(struct sg_buf *out, const char *s, struct sg_error *err)
{
	return put(out, s, strlen(s), err);
}

/* A boundary that cannot occur in armored data or base64 ("=_" is not in
 * the base64 alphabet, RFC 2045 s6.8 note) and is unique per message. */
static char *make_boundary(void)
{
	unsigned char rnd[12];
	char hex[sizeof(rnd) * 2 + 1];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0x5a, sizeof(rnd)); /* uniqueness only, not secrecy */
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	return sg_asprintf("=_sealgate_%s", hex);
}

/* ---- checks common to both formats ---- */

static int check_recipients(const struct sg_seal_req *req, time_t now, enum sg_crypto_status *status_r,
			    struct sg_error *err)
{
	enum sg_key_kind want = req->format == SG_SEAL_PGP ? SG_KEY_PGP : SG_KEY_X509;

	for (size_t i = 0; i < req->n_recipients; i++) {
		const struct sg_key *k = req->recipients[i];
		if (sg_key_kind(k) != want) {
			set_status(status_r, SG_CRYPTO_BAD_KEY);
			sg_error_set(err, "recipient %s: key is not an %s key", sg_key_fingerprint(k),
				     want == SG_KEY_PGP ? "OpenPGP" : "X.509");
			return -1;
		}
		if (sg_key_usable_for_encrypt(k, now, status_r, err) != 1) {
			sg_error_prefix(err, "recipient %s", sg_key_fingerprint(k));
			return -1;
		}
	}
	if (req->signer != NULL && sg_key_usable_for_sign(req->signer, now, status_r, err) != 1) {
		sg_error_prefix(err, "signer %s", sg_key_fingerprint(req->signer));
		return -1;
	}
	return 1;
}

/* ---- PGP/MIME encryption (RFC 3156 s4, s6.2) ---- */

static int put_encrypted_header(const struct sg_msg_view *v, const struct sg_seal_req *req, const char *bnd,
				struct sg_buf *out, struct sg_error *err)
{
	struct sg_buf subj, ctype;
	struct sg_msg_field f;
	int ret = -1;

	sg_buf_init(&subj, 64 * 1024);
	sg_buf_init(&ctype, 64 * 1024);
	/* Only a Subject that exists is replaced; none is invented. */
	bool has_subject = sg_msg_find_field(v, "Subject", &f) == 1;
	if (has_subject &&
	    sg_msg_make_subject(req->neutral_subject != NULL ? req->neutral_subject : NEUTRAL_SUBJECT, &subj, err) < 0)
		goto out;
	if (sg_buf_printf(&ctype,
			  "Content-Type: multipart/encrypted;\r\n protocol=\"application/pgp-encrypted\";\r\n"
			  " boundary=\"%s\"\r\n",
			  bnd) != 1)
		goto out;
	ret = sg_msg_build_outer(v, has_subject ? subj.data : NULL, subj.len, sg_buf_str(&ctype), true, out, err);
out:
	sg_buf_free(&subj);
	sg_buf_free(&ctype);
	return ret;
}

static int pgp_encrypt_msg(const struct sg_msg_view *v, const struct sg_seal_req *req, bool sign,
			   struct sg_buf *out, enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_buf inner_hdr;
	const struct sg_pgp_key **recips = sg_calloc(req->n_recipients, sizeof(*recips));
	char *bnd = make_boundary();
	int ret = -1;

	sg_buf_init(&inner_hdr, 1024 * 1024);
	for (size_t i = 0; i < req->n_recipients; i++)
		recips[i] = sg_key_pgp(req->recipients[i]);
	set_status(status_r, SG_CRYPTO_INTERNAL);
	if (sg_msg_build_inner_header(v, true, &inner_hdr, err) < 0 ||
	    put_encrypted_header(v, req, bnd, out, err) < 0)
		goto out;
	char *pre = sg_asprintf("This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
				"--%s\r\nContent-Type: application/pgp-encrypted\r\n"
				"Content-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n"
				"--%s\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
				"Content-Description: OpenPGP encrypted message\r\n"
				"Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n",
				bnd, bnd);
	int r = put_str(out, pre, err);
	free(pre);
	if (r < 0)
		goto out;
	/* The body goes to librnp by reference: no copy of the message. */
	struct sg_pgp_piece pieces[2] = {
		{ inner_hdr.data, inner_hdr.len },
		{ v->data + v->body_off, v->len - v->body_off },
	};
	if (sg_pgp_encrypt(pieces, 2, recips, req->n_recipients, sign ? sg_key_pgp(req->signer) : NULL, out,
			   status_r, err) < 0)
		goto out;
	set_status(status_r, SG_CRYPTO_INTERNAL);
	if (put_str(out, "\r\n--", err) < 0 || put_str(out, bnd, err) < 0 || put_str(out, "--\r\n", err) < 0)
		goto out;
	set_status(status_r, SG_CRYPTO_OK);
	ret = 1;
out:
	sg_buf_free(&inner_hdr);
	free(recips);
	free(bnd);
	return ret;
}

/* ---- PGP/MIME signing (RFC 3156 s5) ---- */

/* RFC 3156 s3: signed data must survive any transport: 7 bit, lines of at
 * most 998 octets (RFC 5322 s2.1.1), CRLF only. */
static bool needs_encoding(const unsigned char *p, size_t n)
{
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] >= 0x80 || p[i] == 0)
			return true;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return true;
		if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
			return true;
		line = p[i] == '\n' ? 0 : line + 1;
		if (line > 998)
			return true;
	}
	return false;
}

/* Re-encode the entity with GMime under the 7-bit constraint (quoted-
 * printable or base64 per part); the decoded content stays the same. */
static int encode_7bit(const unsigned char *p, size_t n, struct sg_buf *out, struct sg_error *err)
{
	GMimeStream *in = NULL, *os = NULL;
	GMimeParser *parser = NULL;
	GMimeObject *obj = NULL;
	GMimeFormatOptions *fo = NULL;
	GByteArray *ba = NULL;
	int ret = -1;

	sg_gmime_init();
	in = g_mime_stream_mem_new_with_buffer((const char *)p, n);
	parser = g_mime_parser_new_with_stream(in);
	obj = g_mime_parser_construct_part(parser, NULL);
	if (obj == NULL) {
		sg_error_set(err, "cannot parse the body for signing");
		goto out;
	}
	g_mime_object_encode(obj, GMIME_ENCODING_CONSTRAINT_7BIT);
	ba = g_byte_array_new();
	os = g_mime_stream_mem_new_with_byte_array(ba);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(os), FALSE);
	fo = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	if (g_mime_object_write_to_stream(obj, fo, os) < 0) {
		sg_error_set(err, "cannot write the body for signing");
		goto out;
	}
	ret = put(out, ba->data, ba->len, err);
out:
	if (fo != NULL)
		g_mime_format_options_free(fo);
	if (os != NULL)
		g_object_unref(os);
	if (ba != NULL)
		g_byte_array_free(ba, TRUE);
	if (obj != NULL)
		g_object_unref(obj);
	if (parser != NULL)
		g_object_unref(parser);
	if (in != NULL)
		g_object_unref(in);
	return ret;
}

static int pgp_sign_msg(const struct sg_msg_view *v, const struct sg_seal_req *req, struct sg_buf *out,
			enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_buf entity, signed_part, sig, ctype;
	char *bnd = make_boundary();
	int ret = -1;

	sg_buf_init(&entity, out->max);
	sg_buf_init(&signed_part, out->max);
	sg_buf_init(&sig, 1024 * 1024);
	sg_buf_init(&ctype, 64 * 1024);
	set_status(status_r, SG_CRYPTO_INTERNAL);
	if (sg_msg_build_inner(v, true, &entity, err) < 0)
		goto out;
	struct sg_buf *canon = &entity;
	if (needs_encoding(entity.data, entity.len)) {
		if (encode_7bit(entity.data, entity.len, &signed_part, err) < 0)
			goto out;
		canon = &signed_part;
		sg_buf_free(&entity);
	}
	if (sg_pgp_sign_detached(canon->data, canon->len, sg_key_pgp(req->signer), &sig, status_r, err) < 0)
		goto out;
	set_status(status_r, SG_CRYPTO_INTERNAL);
	if (sg_buf_printf(&ctype,
			  "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n"
			  " protocol=\"application/pgp-signature\";\r\n boundary=\"%s\"\r\n",
			  bnd) != 1 ||
	    sg_msg_build_outer(v, NULL, 0, sg_buf_str(&ctype), true, out, err) < 0)
		goto out;
	if (sg_buf_printf(out, "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n--%s\r\n", bnd) != 1 ||
	    put(out, canon->data, canon->len, err) < 0 ||
	    sg_buf_printf(out,
			  "\r\n--%s\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\n"
			  "Content-Description: OpenPGP digital signature\r\n"
			  "Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n",
			  bnd) != 1 ||
	    put(out, sig.data, sig.len, err) < 0 || sg_buf_printf(out, "\r\n--%s--\r\n", bnd) != 1) {
		sg_error_set(err, "output too large");
		goto out;
	}
	set_status(status_r, SG_CRYPTO_OK);
	ret = 1;
out:
	sg_buf_free(&entity);
	sg_buf_free(&signed_part);
	sg_buf_free(&sig);
	sg_buf_free(&ctype);
	free(bnd);
	return ret;
}

static int pgp_seal(const struct sg_msg_view *v, enum sg_msg_class cls, const struct sg_seal_req *req,
		    struct sg_buf *out, enum sg_crypto_status *status_r, struct sg_error *err)
{
	if (req->n_recipients == 0)
		return pgp_sign_msg(v, req, out, status_r, err);
	/* A signed message is encrypted around its signature, bytes untouched:
	 * re-signing would replace the author's signature with ours. */
	bool sign = req->signer != NULL && !sg_msg_class_is_signed(cls);
	return pgp_encrypt_msg(v, req, sign, out, status_r, err);
}

int sg_seal(const unsigned char *msg, size_t len, const struct sg_seal_req *req,
	    struct sg_buf *out, enum sg_seal_outcome *outcome_r,
	    enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_msg_view v;
	size_t saved = out->len;
	int ret = -1;

	set_status(status_r, SG_CRYPTO_MALFORMED);
	if (sg_msg_split(msg, len, &v, err) < 0) {
		sg_error_prefix(err, "seal: malformed message");
		return -1;
	}
	enum sg_msg_class cls = sg_msg_classify(&v);
	if (sg_msg_class_is_encrypted(cls)) {
		/* Never encrypt twice: the recipient could not read it. */
		if (put(out, msg, len, err) < 0) {
			set_status(status_r, SG_CRYPTO_INTERNAL);
			return -1;
		}
		*outcome_r = SG_SEAL_ALREADY_ENCRYPTED;
		set_status(status_r, SG_CRYPTO_OK);
		return 1;
	}
	if (req->n_recipients == 0 && req->signer == NULL) {
		set_status(status_r, SG_CRYPTO_NO_KEY);
		sg_error_set(err, "seal: no recipient and no signer");
		return -1;
	}
	if (check_recipients(req, time(NULL), status_r, err) < 0) {
		sg_error_prefix(err, "seal");
		return -1;
	}
	if (req->format == SG_SEAL_SMIME)
		ret = sg_smime_seal(msg, len, req, out, outcome_r, status_r, err);
	else
		ret = pgp_seal(&v, cls, req, out, status_r, err);
	if (ret < 0) {
		if (out->len > saved) {
			out->len = saved;
			out->data[saved] = '\0';
		}
		if (req->format != SG_SEAL_SMIME)
			sg_error_prefix(err, "seal");
		return -1;
	}
	*outcome_r = SG_SEAL_SEALED;
	return 1;
}

/* ---- unsealing ---- */

void sg_unseal_result_clear(struct sg_unseal_result *res)
{
	free(res->signer);
	free(res->decrypted_with);
	free(res->warning);
	memset(res, 0, sizeof(*res));
}

static void take_info(struct sg_unseal_result *res, struct sg_pgp_info *info)
{
	res->authenticated = res->authenticated || info->authenticated;
	if (info->sig != SG_SIG_NONE) {
		res->sig = info->sig;
		free(res->signer);
		res->signer = info->signer;
		info->signer = NULL;
	}
	if (info->decrypted_with != NULL) {
		free(res->decrypted_with);
		res->decrypted_with = info->decrypted_with;
		info->decrypted_with = NULL;
	}
	if (info->warning != NULL) {
		free(res->warning);
		res->warning = info->warning;
		info->warning = NULL;
	}
	sg_pgp_info_clear(info);
}

/* The parts of a top-level multipart; exactly want of them. */
static int get_parts(const struct sg_msg_view *v, size_t want, struct sg_msg_bodypart **parts_r,
		     enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_msg_ctype ct;
	size_t n = 0;
	int ret = -1;

	set_status(status_r, SG_CRYPTO_MALFORMED);
	if (sg_msg_get_ctype(v, &ct, err) < 0)
		goto out;
	if (sg_msg_multipart_split(v->data + v->body_off, v->len - v->body_off, ct.boundary, parts_r, &n, err) < 0)
		goto out;
	if (n != want) {
		sg_error_set(err, "multipart/%s has %zu parts, not %zu (RFC 3156)", ct.subtype, n, want);
		free(*parts_r);
		*parts_r = NULL;
		goto out;
	}
	ret = 1;
out:
	sg_msg_ctype_clear(&ct);
	return ret;
}

static int part_view(const struct sg_msg_view *v, const struct sg_msg_bodypart *p, struct sg_msg_view *pv_r,
		     struct sg_error *err)
{
	return sg_msg_split(v->data + v->body_off + p->off, p->len, pv_r, err);
}

static int verify_signed(const struct sg_msg_view *v, const struct sg_unseal_req *req,
			 struct sg_unseal_result *res, struct sg_msg_view *signed_r,
			 enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_msg_bodypart *parts = NULL;
	struct sg_msg_view sv;
	struct sg_pgp_info info;
	int ret = -1;

	if (get_parts(v, 2, &parts, status_r, err) < 0)
		return -1;
	const unsigned char *signed_data = v->data + v->body_off + parts[0].off;
	if (part_view(v, &parts[1], &sv, err) < 0)
		goto out;
	if (sg_pgp_verify_detached(signed_data, parts[0].len, sv.data + sv.body_off, sv.len - sv.body_off,
				   req->verify_keys, req->n_verify_keys, time(NULL), &info, status_r, err) < 0)
		goto out;
	/* A signed part with bytes outside 7 bit was not canonical; the
	 * signature still covers exactly what was sent. */
	take_info(res, &info);
	if (signed_r != NULL && sg_msg_split(signed_data, parts[0].len, signed_r, err) < 0)
		goto out;
	ret = 1;
out:
	free(parts);
	return ret;
}

/* The header block of the output: outer fields (Subject restored from the
 * protected headers) + the inner entity's content fields. */
static int unsealed_header(const struct sg_msg_view *outer, const struct sg_msg_view *inner, struct sg_buf *hdr,
			   struct sg_error *err)
{
	struct sg_buf content;
	struct sg_msg_field subj;
	int ret = -1;

	sg_buf_init(&content, 1024 * 1024);
	int prot = sg_msg_unprotect_inner(inner, &content, &subj, err);
	if (prot >= 0)
		ret = sg_msg_build_outer(outer, prot == 1 ? subj.raw : NULL, prot == 1 ? subj.raw_len : 0,
					 sg_buf_str(&content), false, hdr, err);
	sg_buf_free(&content);
	return ret;
}

/* Output = header + the inner body, which lies inside plain. When out is
 * empty the body is moved within plain and plain becomes out: a large
 * message is then held twice (input, plaintext), not three times. */
static int emit_unsealed(const struct sg_msg_view *outer, const struct sg_msg_view *inner, struct sg_buf *plain,
			 struct sg_buf *out, struct sg_error *err)
{
	struct sg_buf hdr;
	int ret = -1;

	sg_buf_init(&hdr, out->max);
	if (unsealed_header(outer, inner, &hdr, err) < 0)
		goto out;
	size_t body_off = (size_t)(inner->data - plain->data) + inner->body_off;
	size_t body_len = inner->len - inner->body_off;
	if (out->len != 0) {
		ret = put(out, hdr.data, hdr.len, err) < 0 ? -1 : put(out, plain->data + body_off, body_len, err);
		goto out;
	}
	if (hdr.len > body_off) {
		size_t extra = hdr.len - body_off;
		if (put(plain, hdr.data, extra, err) < 0) /* grow only; bytes overwritten below */
			goto out;
	}
	memmove(plain->data + hdr.len, plain->data + body_off, body_len);
	memcpy(plain->data, hdr.data, hdr.len);
	plain->len = hdr.len + body_len;
	plain->data[plain->len] = '\0';
	sg_buf_free(out);
	*out = *plain;
	sg_buf_init(plain, out->max);
	ret = 1;
out:
	sg_buf_free(&hdr);
	return ret;
}

static int is_pgp_signed_entity(const struct sg_msg_view *v)
{
	return sg_msg_classify(v) == SG_MSG_PGP_SIGNED;
}

static int pgp_unseal_encrypted(const struct sg_msg_view *v, const struct sg_unseal_req *req, struct sg_buf *out,
				struct sg_unseal_result *res, enum sg_crypto_status *status_r,
				struct sg_error *err)
{
	struct sg_msg_bodypart *parts = NULL;
	struct sg_msg_view cv, inner, signed_entity;
	struct sg_buf plain, decoded;
	struct sg_pgp_info info;
	int ret = -1;

	sg_buf_init(&plain, out->max);
	sg_buf_init(&decoded, out->max);
	if (get_parts(v, 2, &parts, status_r, err) < 0)
		goto out;
	if (part_view(v, &parts[1], &cv, err) < 0)
		goto malformed;
	/* Some clients base64 the armored part (RFC 3156 s4 allows any CTE). */
	int dec = sg_msg_decode_body(&cv, &decoded, err);
	if (dec < 0)
		goto malformed;
	const unsigned char *ct = dec == 1 ? decoded.data : cv.data + cv.body_off;
	size_t ct_len = dec == 1 ? decoded.len : cv.len - cv.body_off;
	if (sg_pgp_decrypt(ct, ct_len, req->keys, req->n_keys, req->verify_keys,
			   req->n_verify_keys, time(NULL), &plain, &info, status_r, err) < 0)
		goto out;
	sg_buf_free(&decoded);
	res->was_encrypted = true;
	take_info(res, &info);
	if (sg_msg_split(plain.data, plain.len, &inner, err) < 0)
		goto malformed;
	/* RFC 3156 s6.1: signed, then encrypted as a whole. */
	if (is_pgp_signed_entity(&inner)) {
		if (verify_signed(&inner, req, res, &signed_entity, status_r, err) < 0)
			goto out;
		inner = signed_entity;
	}
	set_status(status_r, SG_CRYPTO_INTERNAL);
	if (emit_unsealed(v, &inner, &plain, out, err) < 0)
		goto out;
	set_status(status_r, SG_CRYPTO_OK);
	ret = 1;
	goto out;
malformed:
	set_status(status_r, SG_CRYPTO_MALFORMED);
out:
	sg_buf_free_secret(&plain);
	sg_buf_free(&decoded);
	free(parts);
	return ret;
}

/* Inline PGP (RFC 4880 s6.2 armor in a text body): the armored block is
 * replaced by its plaintext. */
static int pgp_unseal_inline(const struct sg_msg_view *v, const struct sg_unseal_req *req, struct sg_buf *out,
			     struct sg_unseal_result *res, enum sg_crypto_status *status_r,
			     struct sg_error *err)
{
	static const char begin[] = "-----BEGIN PGP MESSAGE-----", end[] = "-----END PGP MESSAGE-----";
	const unsigned char *body = v->data + v->body_off;
	size_t blen = v->len - v->body_off;
	const unsigned char *b = memmem(body, blen, begin, sizeof(begin) - 1);
	const unsigned char *e = b != NULL ? memmem(b, (size_t)(body + blen - b), end, sizeof(end) - 1) : NULL;
	struct sg_buf plain;
	struct sg_pgp_info info;
	int ret = -1;

	sg_buf_init(&plain, out->max);
	if (e == NULL) {
		set_status(status_r, SG_CRYPTO_MALFORMED);
		sg_error_set(err, "inline PGP message without its END line");
		goto out;
	}
	e += sizeof(end) - 1;
	if (sg_pgp_decrypt(b, (size_t)(e - b), req->keys, req->n_keys, req->verify_keys, req->n_verify_keys,
			   time(NULL), &plain, &info, status_r, err) < 0)
		goto out;
	res->was_encrypted = true;
	take_info(res, &info);
	set_status(status_r, SG_CRYPTO_INTERNAL);
	if (put(out, v->data, v->body_off, err) < 0 || put(out, body, (size_t)(b - body), err) < 0 ||
	    put(out, plain.data, plain.len, err) < 0 || put(out, e, (size_t)(body + blen - e), err) < 0)
		goto out;
	set_status(status_r, SG_CRYPTO_OK);
	ret = 1;
out:
	sg_buf_free_secret(&plain);
	return ret;
}

static int pgp_unseal(const struct sg_msg_view *v, enum sg_msg_class cls, const struct sg_unseal_req *req,
		      struct sg_buf *out, struct sg_unseal_result *res, enum sg_crypto_status *status_r,
		      struct sg_error *err)
{
	switch (cls) {
	case SG_MSG_PGP_ENCRYPTED:
		return pgp_unseal_encrypted(v, req, out, res, status_r, err);
	case SG_MSG_PGP_INLINE:
		return pgp_unseal_inline(v, req, out, res, status_r, err);
	case SG_MSG_PGP_SIGNED:
		/* Signed only: the message stays as it is, signature included,
		 * so that the recipient can verify it too. */
		if (verify_signed(v, req, res, NULL, status_r, err) < 0)
			return -1;
		set_status(status_r, SG_CRYPTO_OK);
		return put(out, v->data, v->len, err);
	case SG_MSG_OTHER_ENCRYPTED: {
		struct sg_msg_ctype ct;
		bool broken = sg_msg_get_ctype(v, &ct, err) < 0;
		sg_msg_ctype_clear(&ct);
		set_status(status_r, broken ? SG_CRYPTO_MALFORMED : SG_CRYPTO_UNSUPPORTED);
		if (!broken)
			sg_error_set(err, "multipart/encrypted with an unknown protocol");
		return -1;
	}
	default:
		set_status(status_r, SG_CRYPTO_OK);
		return put(out, v->data, v->len, err);
	}
}

int sg_unseal(const unsigned char *msg, size_t len, const struct sg_unseal_req *req,
	      struct sg_buf *out, struct sg_unseal_result *res,
	      enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_msg_view v;
	size_t saved = out->len;
	int ret;

	memset(res, 0, sizeof(*res));
	set_status(status_r, SG_CRYPTO_MALFORMED);
	if (sg_msg_split(msg, len, &v, err) < 0) {
		sg_error_prefix(err, "unseal: malformed message");
		return -1;
	}
	enum sg_msg_class cls = sg_msg_classify(&v);
	if (cls == SG_MSG_SMIME_ENCRYPTED || cls == SG_MSG_SMIME_SIGNED)
		ret = sg_smime_unseal(msg, len, req, out, res, status_r, err);
	else
		ret = pgp_unseal(&v, cls, req, out, res, status_r, err);
	if (ret < 0) {
		if (out->len > saved) {
			out->len = saved;
			out->data[saved] = '\0';
		}
		sg_unseal_result_clear(res);
		if (cls != SG_MSG_SMIME_ENCRYPTED && cls != SG_MSG_SMIME_SIGNED)
			sg_error_prefix(err, "unseal"); /* smime-mime.c says "smime unseal" */
		return -1;
	}
	return 1;
}
