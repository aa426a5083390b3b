/* Byte-exact helpers over RFC 5322 / MIME messages shared by PGP/MIME and
 * S/MIME sealing: split, classify, header protection, outer-header rebuild. */
#ifndef SG_MIME_MESSAGE_H
#define SG_MIME_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/error.h"

/* Initialise GMime once per process (thread-safe); every user of GMime
 * calls this first. */
void sg_gmime_init(void);

/* A message (or body part) split into header block and body. Offsets index
 * data; nothing is copied or re-folded. Line ends may be CRLF or bare LF. */
struct sg_msg_view {
	const unsigned char *data; /* borrowed */
	size_t len;
	size_t hdr_len;  /* header block, with the last field's line end, without the blank line */
	size_t body_off; /* first byte after the blank line; == len when there is no body */
};

/* 1 ok; -1 (err) when the header block holds a line that is neither a field
 * nor a continuation (RFC 5322 s2.2). A message with no blank line is all
 * header; one that starts with a blank line has no header fields. */
int sg_msg_split(const unsigned char *data, size_t len, struct sg_msg_view *v_r,
		 struct sg_error *err) SG_WARN_UNUSED;

/* One header field as it appears in the message. */
struct sg_msg_field {
	const unsigned char *raw;   /* the whole field with folding and its final line end */
	size_t raw_len;
	const unsigned char *name;  /* the field name, without the colon */
	size_t name_len;
	const unsigned char *value; /* after the colon up to (not incl.) the final line end; still folded */
	size_t value_len;
};

/* Iterate the fields of v: *pos starts at 0. 1 with the next field, 0 at the end. */
int sg_msg_next_field(const struct sg_msg_view *v, size_t *pos, struct sg_msg_field *f_r);
/* Case-insensitive name comparison. */
bool sg_msg_field_is(const struct sg_msg_field *f, const char *name);
/* Content-* fields (RFC 2045 s9): they describe the body, so they move with
 * it into an encrypted entity. MIME-Version is not one of them. */
bool sg_msg_field_is_content(const struct sg_msg_field *f);
/* The value unfolded (CRLF/LF removed) and trimmed; owned by the caller. */
char *sg_msg_field_value(const struct sg_msg_field *f);
/* The first field called name: 1 found, 0 not. */
int sg_msg_find_field(const struct sg_msg_view *v, const char *name, struct sg_msg_field *f_r);

/* Content-Type of an entity, parsed (GMime), lower-cased type/subtype;
 * parameters are owned strings or NULL. */
struct sg_msg_ctype {
	char *type;       /* "text" when absent (RFC 2045 s5.2) */
	char *subtype;    /* "plain" when absent */
	char *boundary;
	char *protocol;
	char *smime_type;
	char *micalg;
	char *charset;
	bool present;     /* the entity had a Content-Type field */
};
/* 1 ok (defaults when absent); -1 (err) when a multipart has no boundary. */
int sg_msg_get_ctype(const struct sg_msg_view *v, struct sg_msg_ctype *ct_r,
		     struct sg_error *err) SG_WARN_UNUSED;
bool sg_msg_ctype_is(const struct sg_msg_ctype *ct, const char *type, const char *subtype);
void sg_msg_ctype_clear(struct sg_msg_ctype *ct);

/* What a message already is, decided from its top-level structure. */
enum sg_msg_class {
	SG_MSG_PLAIN = 0,
	SG_MSG_PGP_ENCRYPTED,     /* multipart/encrypted; protocol="application/pgp-encrypted" */
	SG_MSG_PGP_INLINE,        /* text body holding -----BEGIN PGP MESSAGE----- */
	SG_MSG_SMIME_ENCRYPTED,   /* application/(x-)pkcs7-mime enveloped-data / authEnveloped-data */
	SG_MSG_PGP_SIGNED,        /* multipart/signed; protocol="application/pgp-signature" */
	SG_MSG_SMIME_SIGNED,      /* multipart/signed (pkcs7-signature) or pkcs7-mime signed-data */
	SG_MSG_OTHER_ENCRYPTED,   /* multipart/encrypted with another protocol */
};
enum sg_msg_class sg_msg_classify(const struct sg_msg_view *v);
/* The same from the header section alone: never SG_MSG_PGP_INLINE, which
 * takes a scan of the whole body. Enough where only the signed and MIME
 * encrypted classes matter (inbound verification). */
enum sg_msg_class sg_msg_classify_header(const struct sg_msg_view *v);
bool sg_msg_class_is_encrypted(enum sg_msg_class c);
bool sg_msg_class_is_signed(enum sg_msg_class c);
const char *sg_msg_class_name(enum sg_msg_class c);

/* One body part of a multipart body (RFC 2046 s5.1.1): offsets into the
 * body passed in; the part ends before the CRLF that precedes the next
 * delimiter, which belongs to the delimiter. */
struct sg_msg_bodypart {
	size_t off;
	size_t len;
};
/* 1 with *parts_r (owned, free()) and *n_r; -1 (err) when the closing
 * delimiter is missing or there is no part. */
int sg_msg_multipart_split(const unsigned char *body, size_t len, const char *boundary,
			   struct sg_msg_bodypart **parts_r, size_t *n_r,
			   struct sg_error *err) SG_WARN_UNUSED;

/* Fields copied into the encrypted entity (draft-ietf-lamps-header-protection). */
extern const char *const sg_msg_protected_fields[];

/* The marker appended to the inner Content-Type (the "protected headers"
 * practice, v1). It is appended after the original field's value so that
 * the original bytes stay a prefix and unsealing can take it off again. */
#define SG_MSG_PROTECTED_PARAM "; protected-headers=\"v1\""

/* Append the inner entity of v: its Content-* fields byte for byte (with
 * SG_MSG_PROTECTED_PARAM appended to Content-Type when protect is set; a
 * Content-Type: text/plain field is added when there is none), then, when
 * protect is set, the protected fields byte for byte, a blank line, and the
 * body byte for byte. 1 ok; -1 (err) when out is full. Line ends written by
 * this function are CRLF. */
int sg_msg_build_inner(const struct sg_msg_view *v, bool protect, struct sg_buf *out,
		       struct sg_error *err) SG_WARN_UNUSED;
/* The same, as at most 3 pieces (header bytes in *hdr_r, owned; body by
 * reference into v) so that a caller can stream without copying the body. */
int sg_msg_build_inner_header(const struct sg_msg_view *v, bool protect, struct sg_buf *hdr_out,
			      struct sg_error *err) SG_WARN_UNUSED;

/* Append the outer header block built from v: every field of v in order and
 * folding, except that the Content-* fields are replaced by content_fields
 * (complete fields with line ends, inserted where the first Content-* field
 * was, else at the end) and the Subject field by subject_field (a complete
 * raw field with line end; NULL keeps v's). MIME-Version: 1.0 is added when
 * v has none and add_mime_version is set. Ends with the blank line. */
int sg_msg_build_outer(const struct sg_msg_view *v, const unsigned char *subject_field,
		       size_t subject_len, const char *content_fields, bool add_mime_version,
		       struct sg_buf *out, struct sg_error *err) SG_WARN_UNUSED;

/* "Subject: TEXT\r\n" into out; TEXT must not hold CR or LF (-1 if so);
 * non-ASCII is RFC 2047 encoded. */
int sg_msg_make_subject(const char *text, struct sg_buf *out, struct sg_error *err) SG_WARN_UNUSED;

/* The reverse of sg_msg_build_inner for a decrypted entity: append its
 * Content-* fields to content_out (SG_MSG_PROTECTED_PARAM removed from
 * Content-Type again), and set *subject_r to its Subject field when it
 * carries protected headers (1), else 0. */
int sg_msg_unprotect_inner(const struct sg_msg_view *inner, struct sg_buf *content_out,
			   struct sg_msg_field *subject_r, struct sg_error *err) SG_WARN_UNUSED;

/* The body of v with its Content-Transfer-Encoding (base64,
 * quoted-printable) undone, appended to out: 1 decoded, 0 identity encoding
 * (nothing appended: use the body as it is), -1 error. */
int sg_msg_decode_body(const struct sg_msg_view *v, struct sg_buf *out, struct sg_error *err) SG_WARN_UNUSED;

/* Convert bare LF line ends to CRLF (RFC 5322 s2.3), appending to out.
 * 1 ok, -1 when out is full. */
int sg_msg_to_crlf(const unsigned char *data, size_t len, struct sg_buf *out,
		   struct sg_error *err) SG_WARN_UNUSED;

#endif
