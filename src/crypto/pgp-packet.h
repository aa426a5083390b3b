/* OpenPGP packet framing (RFC 4880 s4, RFC 9580 s4): old and new format
 * headers, partial body lengths, MPIs, and ASCII armor (RFC 4880 s6). */
#ifndef SG_CRYPTO_PGP_PACKET_H
#define SG_CRYPTO_PGP_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/error.h"

enum sg_pgp_tag {
	SG_PGP_TAG_PKESK = 1,
	SG_PGP_TAG_SIGNATURE = 2,
	SG_PGP_TAG_SKESK = 3,
	SG_PGP_TAG_SECRET_KEY = 5,
	SG_PGP_TAG_PUBLIC_KEY = 6,
	SG_PGP_TAG_SECRET_SUBKEY = 7,
	SG_PGP_TAG_COMPRESSED = 8,
	SG_PGP_TAG_SED = 9,
	SG_PGP_TAG_MARKER = 10,
	SG_PGP_TAG_LITERAL = 11,
	SG_PGP_TAG_USER_ID = 13,
	SG_PGP_TAG_PUBLIC_SUBKEY = 14,
	SG_PGP_TAG_SEIPD = 18,
	SG_PGP_TAG_AEAD = 20,
};

/* One packet as found in a stream; everything borrowed from the stream. */
struct sg_pgp_packet {
	int tag;
	size_t off;                 /* offset of the first header octet */
	size_t raw_len;             /* header + body (+ partial length octets) */
	bool partial;               /* body framed in partial lengths (s4.2.2.4) */
	const unsigned char *body;  /* contiguous body; NULL when partial */
	size_t body_len;            /* body octets (sum of chunks when partial) */
};

/* Parse the packet at *pos of data[0..len) and advance *pos past it.
 * 1 a packet; 0 at the end of data; -1 malformed or truncated (err). */
int sg_pgp_packet_next(const unsigned char *data, size_t len, size_t *pos,
		       struct sg_pgp_packet *pkt_r, struct sg_error *err) SG_WARN_UNUSED;
/* Append the body of pkt (joined from its partial chunks) to out, given
 * the stream it was parsed from. 1 ok; -1 (out's maximum). */
int sg_pgp_packet_body(const unsigned char *data, const struct sg_pgp_packet *pkt,
		       struct sg_buf *out, struct sg_error *err) SG_WARN_UNUSED;
/* Append a new-format header (RFC 4880 s4.2.2, definite length). 1; -1. */
int sg_pgp_packet_write_header(struct sg_buf *out, int tag, size_t body_len,
			       struct sg_error *err) SG_WARN_UNUSED;

/* Bounded reader over a packet body. */
struct sg_pgp_reader {
	const unsigned char *p;
	size_t len;
	size_t pos;
};
void sg_pgp_reader_init(struct sg_pgp_reader *r, const unsigned char *p, size_t len);
/* Each: 1 ok, -1 truncated (err says what was being read). */
int sg_pgp_read_u8(struct sg_pgp_reader *r, unsigned *v_r, const char *what,
		   struct sg_error *err) SG_WARN_UNUSED;
int sg_pgp_read_u16(struct sg_pgp_reader *r, unsigned *v_r, const char *what,
		    struct sg_error *err) SG_WARN_UNUSED;
int sg_pgp_read_u32(struct sg_pgp_reader *r, uint32_t *v_r, const char *what,
		    struct sg_error *err) SG_WARN_UNUSED;
/* n bytes, borrowed. */
int sg_pgp_read_bytes(struct sg_pgp_reader *r, size_t n, const unsigned char **p_r,
		      const char *what, struct sg_error *err) SG_WARN_UNUSED;
/* MPI (RFC 4880 s3.2): value bytes borrowed (big-endian, no length). The
 * bit count only gives the length: leading zero bits are not rejected, as
 * gpg writes some values (SOS, RFC 9580 s3.2.1) that way. */
int sg_pgp_read_mpi(struct sg_pgp_reader *r, const unsigned char **p_r, size_t *len_r,
		    const char *what, struct sg_error *err) SG_WARN_UNUSED;
/* Append an MPI of the big-endian value (leading zeros dropped). 1; -1. */
int sg_pgp_write_mpi(struct sg_buf *out, const unsigned char *v, size_t len,
		     struct sg_error *err) SG_WARN_UNUSED;

/* ---- ASCII armor (RFC 4880 s6.2) ---- */

/* What is needed to write an armored block back the way it was found. */
struct sg_pgp_armor {
	char *label;        /* "PGP MESSAGE", owned */
	char *headers;      /* the armor header lines with their line ends, owned ("" if none) */
	const char *eol;    /* "\r\n" or "\n" (static) */
	size_t line_len;    /* base64 characters per line (first line's length) */
	bool had_crc;       /* a "=XXXX" checksum line was present */
	bool end_eol;       /* the END line had a line end */
};

/* Find the first "-----BEGIN PGP <label>-----" line in text and decode the
 * block. start_r/end_r: offsets of the BEGIN line's first octet and just
 * past the END line (and its line end). Binary appended to bin. The CRC24,
 * when present, must match. 1 ok; 0 no armor found; -1 malformed. */
int sg_pgp_dearmor(const char *text, size_t len, struct sg_pgp_armor *armor_r,
		   size_t *start_r, size_t *end_r, struct sg_buf *bin,
		   struct sg_error *err) SG_WARN_UNUSED;
/* Armor bin with armor's label, headers, line length and line ends. 1; -1. */
int sg_pgp_armor_write(const struct sg_pgp_armor *armor, const unsigned char *bin, size_t len,
		       struct sg_buf *out, struct sg_error *err) SG_WARN_UNUSED;
void sg_pgp_armor_clear(struct sg_pgp_armor *armor);
/* CRC-24 of RFC 4880 s6.1. */
uint32_t sg_pgp_crc24(const unsigned char *p, size_t len);
/* The CRC-24 of a message of total octets that equals the one whose CRC
 * is old_crc except in its first n octets (old_prefix -> new_prefix),
 * without reading the rest. */
uint32_t sg_pgp_crc24_patch(uint32_t old_crc, const unsigned char *old_prefix,
			    const unsigned char *new_prefix, size_t n, size_t total);

/* Key material given as armored text or binary packets: binary appended to
 * out either way. 1; -1. */
int sg_pgp_binary_of(const unsigned char *data, size_t len, struct sg_buf *out,
		     struct sg_error *err) SG_WARN_UNUSED;

#endif
