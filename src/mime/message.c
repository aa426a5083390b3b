/* Byte-exact message helpers for sealing: header/body split, field
 * iteration, classification, multipart split and header protection. */
#include "mime/message.h"
#include "util/mem.h"

#include <ctype.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_init_once(void)
{
	g_mime_init();
}

void sg_gmime_init(void)
{
	pthread_once(&gmime_once, gmime_init_once);
}

const char *const sg_msg_protected_fields[] = {
	"Subject", "From", "To", "Cc", "Date", "Message-ID", "Reply-To",
	"In-Reply-To", "References", NULL,
};

/* Length of the line starting at p (with its line end), and of its line end. */
static size_t line_len(const unsigned char *p, size_t left, size_t *eol_r)
{
	const unsigned char *nl = memchr(p, '\n', left);

	if (nl == NULL) {
		*eol_r = 0;
		return left;
	}
	size_t n = (size_t)(nl - p) + 1;
	*eol_r = n >= 2 && p[n - 2] == '\r' ? 2 : 1;
	return n;
}

static bool is_blank_line(const unsigned char *p, size_t n)
{
	return (n == 1 && p[0] == '\n') || (n == 2 && p[0] == '\r' && p[1] == '\n');
}

/* A field name is printable ASCII without colon (RFC 5322 s3.6.8). */
static bool is_field_start(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && p[i] != ':'; i++)
		if (p[i] <= 32 || p[i] >= 127)
			return false;
	return i > 0 && i < n;
}

int sg_msg_split(const unsigned char *data, size_t len, struct sg_msg_view *v_r,
		 struct sg_error *err)
{
	size_t pos = 0, eol;

	v_r->data = data;
	v_r->len = len;
	while (pos < len) {
		size_t n = line_len(data + pos, len - pos, &eol);

		if (is_blank_line(data + pos, n)) {
			v_r->hdr_len = pos;
			v_r->body_off = pos + n;
			return 1;
		}
		bool cont = data[pos] == ' ' || data[pos] == '\t';
		if ((cont && pos == 0) || (!cont && !is_field_start(data + pos, n - eol))) {
			sg_error_set(err, "header line at offset %zu is not a header field", pos);
			return -1;
		}
		pos += n;
	}
	v_r->hdr_len = len;
	v_r->body_off = len;
	return 1;
}

int sg_msg_next_field(const struct sg_msg_view *v, size_t *pos, struct sg_msg_field *f_r)
{
	size_t start = *pos, p = *pos, eol = 0;

	if (start >= v->hdr_len)
		return 0;
	do {
		p += line_len(v->data + p, v->hdr_len - p, &eol);
	} while (p < v->hdr_len && (v->data[p] == ' ' || v->data[p] == '\t'));
	const unsigned char *raw = v->data + start;
	const unsigned char *colon = memchr(raw, ':', p - start);
	f_r->raw = raw;
	f_r->raw_len = p - start;
	f_r->name = raw;
	f_r->name_len = colon != NULL ? (size_t)(colon - raw) : 0;
	f_r->value = colon != NULL ? colon + 1 : raw + f_r->raw_len;
	f_r->value_len = (size_t)(raw + f_r->raw_len - eol - f_r->value);
	if (colon == NULL || colon > raw + f_r->raw_len - eol)
		f_r->value_len = 0;
	*pos = p;
	return 1;
}

bool sg_msg_field_is(const struct sg_msg_field *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp((const char *)f->name, name, n) == 0;
}

bool sg_msg_field_is_content(const struct sg_msg_field *f)
{
	return f->name_len >= 8 && strncasecmp((const char *)f->name, "Content-", 8) == 0;
}

char *sg_msg_field_value(const struct sg_msg_field *f)
{
	char *s = sg_malloc(f->value_len + 1);
	size_t n = 0;

	for (size_t i = 0; i < f->value_len; i++)
		if (f->value[i] != '\r' && f->value[i] != '\n')
			s[n++] = (char)f->value[i];
	s[n] = '\0';
	size_t b = 0;
	while (b < n && (s[b] == ' ' || s[b] == '\t'))
		b++;
	while (n > b && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	memmove(s, s + b, n - b);
	s[n - b] = '\0';
	return s;
}

int sg_msg_find_field(const struct sg_msg_view *v, const char *name, struct sg_msg_field *f_r)
{
	size_t pos = 0;

	while (sg_msg_next_field(v, &pos, f_r) == 1)
		if (sg_msg_field_is(f_r, name))
			return 1;
	return 0;
}

static char *lower_dup(const char *s)
{
	char *d = sg_strdup(s != NULL ? s : "");

	for (char *p = d; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

static char *param_dup(GMimeContentType *ct, const char *name)
{
	const char *v = g_mime_content_type_get_parameter(ct, name);

	return v != NULL ? sg_strdup(v) : NULL;
}

int sg_msg_get_ctype(const struct sg_msg_view *v, struct sg_msg_ctype *ct_r,
		     struct sg_error *err)
{
	struct sg_msg_field f;
	GMimeContentType *ct = NULL;
	char *value = NULL;

	memset(ct_r, 0, sizeof(*ct_r));
	sg_gmime_init();
	if (sg_msg_find_field(v, "Content-Type", &f) == 1) {
		value = sg_msg_field_value(&f);
		ct = g_mime_content_type_parse(NULL, value);
	}
	if (ct == NULL) {
		ct_r->type = sg_strdup("text");
		ct_r->subtype = sg_strdup("plain");
		free(value);
		return 1;
	}
	ct_r->present = true;
	ct_r->type = lower_dup(g_mime_content_type_get_media_type(ct));
	ct_r->subtype = lower_dup(g_mime_content_type_get_media_subtype(ct));
	ct_r->boundary = param_dup(ct, "boundary");
	ct_r->protocol = param_dup(ct, "protocol");
	ct_r->smime_type = param_dup(ct, "smime-type");
	ct_r->micalg = param_dup(ct, "micalg");
	ct_r->charset = param_dup(ct, "charset");
	g_object_unref(ct);
	free(value);
	if (strcmp(ct_r->type, "multipart") == 0 &&
	    (ct_r->boundary == NULL || ct_r->boundary[0] == '\0')) {
		sg_error_set(err, "multipart/%s without a boundary", ct_r->subtype);
		return -1;
	}
	return 1;
}

bool sg_msg_ctype_is(const struct sg_msg_ctype *ct, const char *type, const char *subtype)
{
	return strcasecmp(ct->type, type) == 0 &&
	       (subtype == NULL || strcasecmp(ct->subtype, subtype) == 0);
}

void sg_msg_ctype_clear(struct sg_msg_ctype *ct)
{
	free(ct->type);
	free(ct->subtype);
	free(ct->boundary);
	free(ct->protocol);
	free(ct->smime_type);
	free(ct->micalg);
	free(ct->charset);
	memset(ct, 0, sizeof(*ct));
}

static bool str_ieq(const char *a, const char *b)
{
	return a != NULL && strcasecmp(a, b) == 0;
}

/* Inline PGP (RFC 4880 s6.2 armor) at the start of a line of a text body. */
static bool has_inline_pgp(const struct sg_msg_view *v)
{
	static const char marker[] = "-----BEGIN PGP MESSAGE-----";
	const unsigned char *p = v->data + v->body_off, *end = v->data + v->len;

	while (p < end) {
		const unsigned char *hit = memmem(p, (size_t)(end - p), marker, sizeof(marker) - 1);
		if (hit == NULL)
			return false;
		if (hit == v->data + v->body_off || hit[-1] == '\n')
			return true;
		p = hit + 1;
	}
	return false;
}

static enum sg_msg_class classify_pkcs7(const struct sg_msg_ctype *ct)
{
	/* RFC 8551 s3.2.2: absent smime-type is ambiguous; treating it as
	 * encrypted is the safe side (never encrypt twice). */
	if (ct->smime_type == NULL || str_ieq(ct->smime_type, "enveloped-data") ||
	    str_ieq(ct->smime_type, "authEnveloped-data"))
		return SG_MSG_SMIME_ENCRYPTED;
	if (str_ieq(ct->smime_type, "signed-data"))
		return SG_MSG_SMIME_SIGNED;
	return SG_MSG_PLAIN;
}

static enum sg_msg_class classify_ctype(const struct sg_msg_view *v, const struct sg_msg_ctype *ct,
				       bool scan_body)
{
	if (sg_msg_ctype_is(ct, "multipart", "encrypted"))
		return str_ieq(ct->protocol, "application/pgp-encrypted") ? SG_MSG_PGP_ENCRYPTED
									   : SG_MSG_OTHER_ENCRYPTED;
	if (sg_msg_ctype_is(ct, "multipart", "signed"))
		return str_ieq(ct->protocol, "application/pgp-signature") ? SG_MSG_PGP_SIGNED
									   : SG_MSG_SMIME_SIGNED;
	if (sg_msg_ctype_is(ct, "application", "pkcs7-mime") ||
	    sg_msg_ctype_is(ct, "application", "x-pkcs7-mime"))
		return classify_pkcs7(ct);
	if (scan_body && sg_msg_ctype_is(ct, "text", NULL) && has_inline_pgp(v))
		return SG_MSG_PGP_INLINE;
	return SG_MSG_PLAIN;
}

static enum sg_msg_class classify(const struct sg_msg_view *v, bool scan_body)
{
	struct sg_msg_ctype ct;
	enum sg_msg_class c = SG_MSG_PLAIN;

	if (sg_msg_get_ctype(v, &ct, NULL) == 1)
		c = classify_ctype(v, &ct, scan_body);
	else if (sg_msg_ctype_is(&ct, "multipart", "encrypted"))
		c = SG_MSG_OTHER_ENCRYPTED; /* broken, but claims to be encrypted */
	sg_msg_ctype_clear(&ct);
	return c;
}

enum sg_msg_class sg_msg_classify(const struct sg_msg_view *v)
{
	return classify(v, true);
}

enum sg_msg_class sg_msg_classify_header(const struct sg_msg_view *v)
{
	return classify(v, false);
}

bool sg_msg_class_is_encrypted(enum sg_msg_class c)
{
	return c == SG_MSG_PGP_ENCRYPTED || c == SG_MSG_PGP_INLINE || c == SG_MSG_SMIME_ENCRYPTED ||
	       c == SG_MSG_OTHER_ENCRYPTED;
}

bool sg_msg_class_is_signed(enum sg_msg_class c)
{
	return c == SG_MSG_PGP_SIGNED || c == SG_MSG_SMIME_SIGNED;
}

const char *sg_msg_class_name(enum sg_msg_class c)
{
	static const char *const names[] = {
		[SG_MSG_PLAIN] = "plain",
		[SG_MSG_PGP_ENCRYPTED] = "pgp-encrypted",
		[SG_MSG_PGP_INLINE] = "pgp-inline",
		[SG_MSG_SMIME_ENCRYPTED] = "smime-encrypted",
		[SG_MSG_PGP_SIGNED] = "pgp-signed",
		[SG_MSG_SMIME_SIGNED] = "smime-signed",
		[SG_MSG_OTHER_ENCRYPTED] = "other-encrypted",
	};
	return (size_t)c < sizeof(names) / sizeof(names[0]) && names[c] != NULL ? names[c] : "?";
}

/* Is the line at p (n bytes without its line end) "--boundary" or
 * "--boundary--" (trailing whitespace allowed, RFC 2046 s5.1.1)? 1 delimiter,
 * 2 close delimiter, 0 neither. */
static int delimiter_kind(const unsigned char *p, size_t n, const char *boundary, size_t blen)
{
	if (n < blen + 2 || p[0] != '-' || p[1] != '-' || memcmp(p + 2, boundary, blen) != 0)
		return 0;
	size_t i = blen + 2;
	int kind = 1;
	if (n >= i + 2 && p[i] == '-' && p[i + 1] == '-') {
		kind = 2;
		i += 2;
	}
	for (; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t')
			return 0;
	return kind;
}

int sg_msg_multipart_split(const unsigned char *body, size_t len, const char *boundary,
			   struct sg_msg_bodypart **parts_r, size_t *n_r, struct sg_error *err)
{
	struct sg_msg_bodypart *parts = NULL;
	size_t n = 0, pos = 0, blen = strlen(boundary), eol, part_start = 0;
	bool in_part = false, closed = false;

	while (pos < len && !closed) {
		size_t ll = line_len(body + pos, len - pos, &eol);
		int kind = delimiter_kind(body + pos, ll - eol, boundary, blen);

		if (kind != 0) {
			if (in_part) {
				/* The line end before the delimiter belongs to it. */
				size_t end = pos;
				if (end > part_start && body[end - 1] == '\n')
					end--;
				if (end > part_start && body[end - 1] == '\r')
					end--;
				parts = sg_reallocarray(parts, n + 1, sizeof(*parts));
				parts[n].off = part_start;
				parts[n].len = end - part_start;
				n++;
			}
			in_part = kind == 1;
			closed = kind == 2;
			part_start = pos + ll;
		}
		pos += ll;
	}
	if (!closed || n == 0) {
		free(parts);
		sg_error_set(err, closed ? "multipart body has no part"
					 : "multipart body lacks its closing boundary");
		return -1;
	}
	*parts_r = parts;
	*n_r = n;
	return 1;
}

static bool is_protected(const struct sg_msg_field *f)
{
	for (size_t i = 0; sg_msg_protected_fields[i] != NULL; i++)
		if (sg_msg_field_is(f, sg_msg_protected_fields[i]))
			return true;
	return false;
}

static int put(struct sg_buf *out, const void *p, size_t n, struct sg_error *err)
{
	if (sg_buf_append(out, p, n) != 1) {
		sg_error_set(err, "message too large (more than %zu bytes)", out->max);
		return -1;
	}
	return 1;
}

/* Content-Type field with the marker inserted before its final line end. */
static int put_marked_ctype(const struct sg_msg_field *f, struct sg_buf *out, struct sg_error *err)
{
	size_t head = (size_t)(f->value + f->value_len - f->raw);

	if (put(out, f->raw, head, err) < 0 ||
	    put(out, SG_MSG_PROTECTED_PARAM, strlen(SG_MSG_PROTECTED_PARAM), err) < 0)
		return -1;
	return put(out, f->raw + head, f->raw_len - head, err);
}

/* Copy a field, making sure it ends with a line end (the last header field
 * of a message without a body may lack one). */
static int put_field(const struct sg_msg_field *f, struct sg_buf *out, struct sg_error *err)
{
	if (put(out, f->raw, f->raw_len, err) < 0)
		return -1;
	if (f->raw_len == 0 || f->raw[f->raw_len - 1] != '\n')
		return put(out, "\r\n", 2, err);
	return 1;
}

int sg_msg_build_inner_header(const struct sg_msg_view *v, bool protect, struct sg_buf *out,
			      struct sg_error *err)
{
	struct sg_msg_field f;
	size_t pos = 0;
	bool have_ctype = false;

	while (sg_msg_next_field(v, &pos, &f) == 1) {
		if (!sg_msg_field_is_content(&f))
			continue;
		bool ctype = sg_msg_field_is(&f, "Content-Type") && !have_ctype;
		have_ctype = have_ctype || ctype;
		int r = ctype && protect ? put_marked_ctype(&f, out, err) : put_field(&f, out, err);
		if (r < 0)
			return -1;
	}
	if (!have_ctype) {
		const char *ct = protect ? "Content-Type: text/plain; charset=us-ascii" SG_MSG_PROTECTED_PARAM "\r\n"
					 : "Content-Type: text/plain; charset=us-ascii\r\n";
		if (put(out, ct, strlen(ct), err) < 0)
			return -1;
	}
	pos = 0;
	while (protect && sg_msg_next_field(v, &pos, &f) == 1)
		if (is_protected(&f) && put_field(&f, out, err) < 0)
			return -1;
	return put(out, "\r\n", 2, err);
}

int sg_msg_build_inner(const struct sg_msg_view *v, bool protect, struct sg_buf *out,
		       struct sg_error *err)
{
	if (sg_msg_build_inner_header(v, protect, out, err) < 0)
		return -1;
	return put(out, v->data + v->body_off, v->len - v->body_off, err);
}

static int put_content(const char *fields, size_t len, bool *need_mv, struct sg_buf *out,
		       struct sg_error *err)
{
	if (*need_mv && put(out, "MIME-Version: 1.0\r\n", 19, err) < 0)
		return -1;
	*need_mv = false;
	return put(out, fields, len, err);
}

int sg_msg_build_outer(const struct sg_msg_view *v, const unsigned char *subject_field,
		       size_t subject_len, const char *content_fields, bool add_mime_version,
		       struct sg_buf *out, struct sg_error *err)
{
	struct sg_msg_field f;
	size_t pos = 0;
	bool content_done = false;
	size_t cf_len = content_fields != NULL ? strlen(content_fields) : 0;
	/* RFC 2045 s4: a MIME entity needs MIME-Version; put it just before
	 * the new content fields. */
	bool need_mv = add_mime_version && sg_msg_find_field(v, "MIME-Version", &f) == 0;

	while (sg_msg_next_field(v, &pos, &f) == 1) {
		int r = 1;
		if (sg_msg_field_is_content(&f)) {
			if (!content_done)
				r = put_content(content_fields, cf_len, &need_mv, out, err);
			content_done = true;
		} else if (subject_field != NULL && sg_msg_field_is(&f, "Subject")) {
			r = put(out, subject_field, subject_len, err);
			subject_field = NULL; /* one Subject only (RFC 5322 s3.6) */
			subject_len = 0;
		} else {
			r = put_field(&f, out, err);
		}
		if (r < 0)
			return -1;
	}
	if (!content_done && put_content(content_fields, cf_len, &need_mv, out, err) < 0)
		return -1;
	return put(out, "\r\n", 2, err);
}

int sg_msg_make_subject(const char *text, struct sg_buf *out, struct sg_error *err)
{
	char *enc = NULL;
	int ret = -1;

	if (strpbrk(text, "\r\n") != NULL) {
		sg_error_set(err, "subject contains a line break");
		return -1;
	}
	sg_gmime_init();
	enc = g_mime_utils_header_encode_text(NULL, text, "utf-8");
	if (put(out, "Subject: ", 9, err) < 0 || put(out, enc, strlen(enc), err) < 0 ||
	    put(out, "\r\n", 2, err) < 0)
		goto out;
	ret = 1;
out:
	g_free(enc);
	return ret;
}

/* The Content-Type field without the marker, if it ends the value. */
static int put_unmarked_ctype(const struct sg_msg_field *f, struct sg_buf *out,
			      bool *marked_r, struct sg_error *err)
{
	size_t ml = strlen(SG_MSG_PROTECTED_PARAM);
	size_t head = (size_t)(f->value + f->value_len - f->raw);

	*marked_r = f->value_len >= ml &&
		    memcmp(f->value + f->value_len - ml, SG_MSG_PROTECTED_PARAM, ml) == 0;
	if (!*marked_r)
		return put_field(f, out, err);
	if (put(out, f->raw, head - ml, err) < 0)
		return -1;
	return put(out, f->raw + head, f->raw_len - head, err);
}

static bool has_protected_param(const struct sg_msg_view *inner)
{
	struct sg_msg_field f;
	bool p = false;

	if (sg_msg_find_field(inner, "Content-Type", &f) == 1) {
		char *val = sg_msg_field_value(&f);
		for (char *c = val; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		p = strstr(val, "protected-headers") != NULL;
		free(val);
	}
	return p;
}

int sg_msg_unprotect_inner(const struct sg_msg_view *inner, struct sg_buf *content_out,
			   struct sg_msg_field *subject_r, struct sg_error *err)
{
	struct sg_msg_field f;
	size_t pos = 0;
	bool marked = false, first_ct = true;

	while (sg_msg_next_field(inner, &pos, &f) == 1) {
		if (!sg_msg_field_is_content(&f))
			continue;
		int r;
		if (first_ct && sg_msg_field_is(&f, "Content-Type")) {
			first_ct = false;
			r = put_unmarked_ctype(&f, content_out, &marked, err);
		} else {
			r = put_field(&f, content_out, err);
		}
		if (r < 0)
			return -1;
	}
	/* Other implementations write protected-headers="v1" anywhere in the
	 * parameter list: honour it there too. */
	if (!marked && !has_protected_param(inner))
		return 0;
	return sg_msg_find_field(inner, "Subject", subject_r);
}

int sg_msg_to_crlf(const unsigned char *data, size_t len, struct sg_buf *out,
		   struct sg_error *err)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n' || (i > 0 && data[i - 1] == '\r'))
			continue;
		if (put(out, data + start, i - start, err) < 0 || put(out, "\r\n", 2, err) < 0)
			return -1;
		start = i + 1;
	}
	return put(out, data + start, len - start, err);
}

int sg_msg_decode_body(const struct sg_msg_view *v, struct sg_buf *out, struct sg_error *err)
{
	struct sg_msg_field f;
	GMimeEncoding enc;
	GMimeContentEncoding ce;
	const unsigned char *body = v->data + v->body_off;
	size_t len = v->len - v->body_off;

	if (sg_msg_find_field(v, "Content-Transfer-Encoding", &f) != 1)
		return 0;
	char *val = sg_msg_field_value(&f);
	sg_gmime_init();
	ce = g_mime_content_encoding_from_string(val);
	free(val);
	if (ce != GMIME_CONTENT_ENCODING_BASE64 && ce != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE)
		return 0;
	g_mime_encoding_init_decode(&enc, ce);
	/* Decoding never grows the data (RFC 2045 s6.7, s6.8). */
	size_t outcap = g_mime_encoding_outlen(&enc, len);
	if (outcap > out->max - out->len) {
		sg_error_set(err, "decoded body too large");
		return -1;
	}
	unsigned char *dst = sg_malloc(outcap + 1);
	size_t n = g_mime_encoding_flush(&enc, (const char *)body, len, (char *)dst);
	int ret = put(out, dst, n, err);
	free(dst);
	return ret;
}
