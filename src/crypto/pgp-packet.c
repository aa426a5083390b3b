/* OpenPGP packet framing and ASCII armor: just enough of RFC 4880 / 9580
 * to find, copy and rewrite packets byte-exactly (used by re-keying). */
#include "crypto/pgp-packet.h"
#include "util/mem.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

/* ---- packet headers (RFC 4880 s4.2) ---- */

/* Tags that may use partial body lengths (RFC 4880 s4.2.2.4, RFC 9580). */
static bool tag_may_be_partial(int tag)
{
	return tag == SG_PGP_TAG_COMPRESSED || tag == SG_PGP_TAG_SED ||
	       tag == SG_PGP_TAG_LITERAL || tag == SG_PGP_TAG_SEIPD || tag == SG_PGP_TAG_AEAD;
}

/* A new-format length at data[*pos]: sets *len_r and *partial_r. 1; -1. */
static int new_length(const unsigned char *data, size_t len, size_t *pos, size_t *len_r,
		      bool *partial_r, struct sg_error *err)
{
	size_t p = *pos;
	*partial_r = false;
	if (p >= len)
		goto trunc;
	unsigned c = data[p];
	if (c < 192) {
		*len_r = c;
		*pos = p + 1;
	} else if (c < 224) {
		if (len - p < 2)
			goto trunc;
		*len_r = ((size_t)(c - 192) << 8) + data[p + 1] + 192;
		*pos = p + 2;
	} else if (c < 255) {
		*len_r = (size_t)1 << (c & 0x1f);
		*partial_r = true;
		*pos = p + 1;
	} else {
		if (len - p < 5)
			goto trunc;
		*len_r = ((size_t)data[p + 1] << 24) | ((size_t)data[p + 2] << 16) |
			 ((size_t)data[p + 3] << 8) | data[p + 4];
		*pos = p + 5;
	}
	return 1;
trunc:
	sg_error_set(err, "truncated packet length at offset %zu", p);
	return -1;
}

/* Walk the partial chunks starting at *pos (first chunk of chunk_len
 * already read). Sets *pos past the last chunk, *total_r. 1; -1. */
static int walk_partial(const unsigned char *data, size_t len, size_t *pos, size_t chunk_len,
			size_t *total_r, struct sg_error *err)
{
	size_t p = *pos, total = 0;
	bool partial = true;
	for (;;) {
		if (chunk_len > len - p) {
			sg_error_set(err, "truncated partial body chunk at offset %zu", p);
			return -1;
		}
		p += chunk_len;
		total += chunk_len;
		if (!partial)
			break;
		if (new_length(data, len, &p, &chunk_len, &partial, err) < 0)
			return -1;
	}
	*pos = p;
	*total_r = total;
	return 1;
}

int sg_pgp_packet_next(const unsigned char *data, size_t len, size_t *pos,
		       struct sg_pgp_packet *pkt_r, struct sg_error *err)
{
	size_t p = *pos, body_len = 0;
	bool partial = false;
	if (p >= len)
		return 0;
	unsigned c = data[p];
	if ((c & 0x80) == 0) {
		sg_error_set(err, "not an OpenPGP packet at offset %zu (octet 0x%02x)", p, c);
		return -1;
	}
	memset(pkt_r, 0, sizeof(*pkt_r));
	pkt_r->off = p;
	p++;
	if (c & 0x40) {
		pkt_r->tag = c & 0x3f;
		if (new_length(data, len, &p, &body_len, &partial, err) < 0)
			return -1;
	} else {
		/* Old format (s4.2.1): length type in the low two bits. */
		pkt_r->tag = (c >> 2) & 0x0f;
		unsigned lt = c & 3;
		if (lt == 3) {
			body_len = len - p; /* indeterminate: to the end of the data */
		} else {
			size_t n = (size_t)1 << lt;
			if (len - p < n) {
				sg_error_set(err, "truncated old-format length at offset %zu", *pos);
				return -1;
			}
			for (size_t i = 0; i < n; i++)
				body_len = (body_len << 8) | data[p + i];
			p += n;
		}
	}
	if (pkt_r->tag == 0) {
		sg_error_set(err, "packet with reserved tag 0 at offset %zu", *pos);
		return -1;
	}
	if (partial) {
		if (!tag_may_be_partial(pkt_r->tag)) {
			sg_error_set(err, "partial length on packet tag %d at offset %zu", pkt_r->tag, *pos);
			return -1;
		}
		if (walk_partial(data, len, &p, body_len, &body_len, err) < 0)
			return -1;
		pkt_r->partial = true;
	} else {
		if (body_len > len - p) {
			sg_error_set(err, "truncated packet (tag %d) at offset %zu: %zu body octets, %zu left",
				     pkt_r->tag, *pos, body_len, len - p);
			return -1;
		}
		pkt_r->body = data + p;
		p += body_len;
	}
	pkt_r->body_len = body_len;
	pkt_r->raw_len = p - *pos;
	*pos = p;
	return 1;
}

int sg_pgp_packet_body(const unsigned char *data, const struct sg_pgp_packet *pkt,
		       struct sg_buf *out, struct sg_error *err)
{
	if (!pkt->partial) {
		if (!sg_buf_append(out, pkt->body, pkt->body_len))
			goto full;
		return 1;
	}
	/* Re-walk the chunks: the header is 1 octet (new format, partial). */
	size_t end = pkt->off + pkt->raw_len, p = pkt->off + 1, chunk;
	bool partial = true;
	while (partial) {
		if (new_length(data, end, &p, &chunk, &partial, err) < 0)
			return -1;
		if (chunk > end - p) {
			sg_error_set(err, "truncated partial body chunk");
			return -1;
		}
		if (!sg_buf_append(out, data + p, chunk))
			goto full;
		p += chunk;
	}
	return 1;
full:
	sg_error_set(err, "packet body larger than the buffer allows");
	return -1;
}

int sg_pgp_packet_write_header(struct sg_buf *out, int tag, size_t body_len,
			       struct sg_error *err)
{
	unsigned char h[6];
	size_t n = 0;
	h[n++] = (unsigned char)(0xc0 | (tag & 0x3f));
	if (body_len < 192) {
		h[n++] = (unsigned char)body_len;
	} else if (body_len < 8384) {
		h[n++] = (unsigned char)(((body_len - 192) >> 8) + 192);
		h[n++] = (unsigned char)((body_len - 192) & 0xff);
	} else if (body_len <= 0xffffffffu) {
		h[n++] = 255;
		for (int s = 24; s >= 0; s -= 8)
			h[n++] = (unsigned char)((body_len >> s) & 0xff);
	} else {
		sg_error_set(err, "packet body too large (%zu octets)", body_len);
		return -1;
	}
	if (!sg_buf_append(out, h, n)) {
		sg_error_set(err, "output buffer full");
		return -1;
	}
	return 1;
}

/* ---- body reader ---- */

void sg_pgp_reader_init(struct sg_pgp_reader *r, const unsigned char *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->pos = 0;
}

int sg_pgp_read_bytes(struct sg_pgp_reader *r, size_t n, const unsigned char **p_r,
		      const char *what, struct sg_error *err)
{
	if (n > r->len - r->pos) {
		sg_error_set(err, "truncated %s (%zu octets needed, %zu left)", what, n,
			     r->len - r->pos);
		return -1;
	}
	*p_r = r->p + r->pos;
	r->pos += n;
	return 1;
}

static int read_be(struct sg_pgp_reader *r, size_t n, uint32_t *v_r, const char *what,
		   struct sg_error *err)
{
	const unsigned char *p;
	if (sg_pgp_read_bytes(r, n, &p, what, err) < 0)
		return -1;
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	*v_r = v;
	return 1;
}

int sg_pgp_read_u8(struct sg_pgp_reader *r, unsigned *v_r, const char *what, struct sg_error *err)
{
	uint32_t v;
	if (read_be(r, 1, &v, what, err) < 0)
		return -1;
	*v_r = v;
	return 1;
}

int sg_pgp_read_u16(struct sg_pgp_reader *r, unsigned *v_r, const char *what, struct sg_error *err)
{
	uint32_t v;
	if (read_be(r, 2, &v, what, err) < 0)
		return -1;
	*v_r = v;
	return 1;
}

int sg_pgp_read_u32(struct sg_pgp_reader *r, uint32_t *v_r, const char *what,
		    struct sg_error *err)
{
	return read_be(r, 4, v_r, what, err);
}

int sg_pgp_read_mpi(struct sg_pgp_reader *r, const unsigned char **p_r, size_t *len_r,
		    const char *what, struct sg_error *err)
{
	unsigned bits;
	if (sg_pgp_read_u16(r, &bits, what, err) < 0)
		return -1;
	size_t n = (bits + 7) / 8;
	if (sg_pgp_read_bytes(r, n, p_r, what, err) < 0)
		return -1;
	*len_r = n;
	return 1;
}

int sg_pgp_write_mpi(struct sg_buf *out, const unsigned char *v, size_t len, struct sg_error *err)
{
	while (len > 0 && v[0] == 0) {
		v++;
		len--;
	}
	size_t bits = len * 8;
	if (len > 0)
		for (unsigned c = v[0]; (c & 0x80) == 0; c <<= 1)
			bits--;
	if (bits > 0xffff) {
		sg_error_set(err, "MPI too large");
		return -1;
	}
	unsigned char h[2] = { (unsigned char)(bits >> 8), (unsigned char)bits };
	if (!sg_buf_append(out, h, 2) || !sg_buf_append(out, v, len)) {
		sg_error_set(err, "output buffer full");
		return -1;
	}
	return 1;
}

/* ---- armor (RFC 4880 s6) ---- */

/* Table for CRC-24 one octet at a time (s6.1 polynomial 0x1864CFB). */
static uint32_t crc24_table[256];

static void crc24_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i << 16;
		for (int b = 0; b < 8; b++) {
			c <<= 1;
			if (c & 0x1000000)
				c ^= 0x1864cfb;
		}
		crc24_table[i] = c & 0xffffff;
	}
}

uint32_t sg_pgp_crc24(const unsigned char *p, size_t len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, crc24_init);
	uint32_t crc = 0xb704ce; /* CRC24_INIT */
	for (size_t i = 0; i < len; i++)
		crc = ((crc << 8) ^ crc24_table[((crc >> 16) ^ p[i]) & 0xff]) & 0xffffff;
	return crc;
}

/* CRC-24 is linear over GF(2): for two messages of the same length the
 * initial value cancels, so crc(new) = crc(old) ^ crc0(diff), diff being
 * old ^ new (zero after the first n octets) and crc0 the CRC with a zero
 * start. The trailing zeros are applied as a 24x24 bit matrix raised to
 * the power of their bit count (zlib's crc32_combine does the same). */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;
	for (int i = 0; vec != 0; i++, vec >>= 1)
		if (vec & 1)
			sum ^= mat[i];
	return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
	for (int i = 0; i < 24; i++)
		sq[i] = gf2_times(mat, mat[i]);
}

uint32_t sg_pgp_crc24_patch(uint32_t old_crc, const unsigned char *old_prefix,
			    const unsigned char *new_prefix, size_t n, size_t total)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, crc24_init);
	uint32_t d = 0, a[24], b[24];
	for (size_t i = 0; i < n; i++)
		d = ((d << 8) ^ crc24_table[((d >> 16) ^ (old_prefix[i] ^ new_prefix[i])) & 0xff]) &
		    0xffffff;
	/* a: one zero bit (shift left, reduce by x^24 + 0x864cfb) */
	for (int i = 0; i < 23; i++)
		a[i] = (uint32_t)1 << (i + 1);
	a[23] = 0x864cfb;
	uint64_t bits = (uint64_t)(total - n) * 8;
	uint32_t *cur = a, *next = b;
	while (bits != 0 && d != 0) {
		if (bits & 1)
			d = gf2_times(cur, d);
		bits >>= 1;
		if (bits != 0) {
			gf2_square(next, cur);
			uint32_t *t = cur;
			cur = next;
			next = t;
		}
	}
	return (old_crc ^ d) & 0xffffff;
}

void sg_pgp_armor_clear(struct sg_pgp_armor *armor)
{
	free(armor->label);
	free(armor->headers);
	memset(armor, 0, sizeof(*armor));
}

/* One line of text at *pos: [*s, *s + *n) without its line end; *eol_r
 * the line end's length (0 at the end of text). Advances *pos. 0 at end. */
static int next_line(const char *text, size_t len, size_t *pos, const char **s, size_t *n,
		     size_t *eol_r)
{
	if (*pos >= len)
		return 0;
	const char *start = text + *pos;
	const char *nl = memchr(start, '\n', len - *pos);
	size_t l = nl ? (size_t)(nl - start) : len - *pos;
	size_t eol = nl ? 1 : 0;
	if (l > 0 && start[l - 1] == '\r') {
		l--;
		eol++;
	}
	*s = start;
	*n = l;
	*eol_r = eol;
	*pos += l + eol;
	return 1;
}

static bool is_b64(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/' || c == '=';
}

/* Trailing blanks are not part of the data (s6.2 allows them). */
static size_t rtrim(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n;
}

/* Decode base64 text (no whitespace) and append to out. 1; -1. */
static int b64_decode(const char *b64, size_t n, struct sg_buf *out, struct sg_error *err)
{
	int ret = -1;
	if (n % 4 != 0 || n > (size_t)INT32_MAX) {
		sg_error_set(err, "bad base64 length %zu", n);
		return -1;
	}
	unsigned char *tmp = sg_malloc(n / 4 * 3 + 1);
	int got = EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)n);
	if (got < 0) {
		sg_error_set(err, "bad base64");
		goto out;
	}
	/* EVP_DecodeBlock counts the '=' padding as zero octets. */
	size_t pad = 0;
	if (n >= 1 && b64[n - 1] == '=')
		pad++;
	if (n >= 2 && b64[n - 2] == '=')
		pad++;
	for (size_t i = 0; i + pad < n; i++)
		if (b64[i] == '=') {
			sg_error_set(err, "bad base64 padding");
			goto out;
		}
	if (!sg_buf_append(out, tmp, (size_t)got - pad)) {
		sg_error_set(err, "decoded data larger than the buffer allows");
		goto out;
	}
	ret = 1;
out:
	free(tmp);
	return ret;
}

/* Locate "-----BEGIN PGP " at a line start. Offset or len if none. */
static size_t find_begin(const char *text, size_t len)
{
	static const char tag[] = "-----BEGIN PGP ";
	size_t tl = sizeof(tag) - 1;
	for (size_t p = 0; p + tl <= len;) {
		const char *hit = memmem(text + p, len - p, tag, tl);
		if (hit == NULL)
			break;
		size_t off = (size_t)(hit - text);
		if (off == 0 || text[off - 1] == '\n')
			return off;
		p = off + 1;
	}
	return len;
}

int sg_pgp_dearmor(const char *text, size_t len, struct sg_pgp_armor *armor_r,
		   size_t *start_r, size_t *end_r, struct sg_buf *bin, struct sg_error *err)
{
	struct sg_buf b64, hdrs;
	int ret = -1;
	const char *s;
	size_t n, eol, pos;
	memset(armor_r, 0, sizeof(*armor_r));
	sg_buf_init(&b64, bin->max / 3 * 4 + 8);
	sg_buf_init(&hdrs, 64 * 1024);

	size_t start = find_begin(text, len);
	if (start == len) {
		ret = 0;
		goto out;
	}
	pos = start;
	(void)next_line(text, len, &pos, &s, &n, &eol);
	n = rtrim(s, n);
	if (n < 15 + 5 || memcmp(s + n - 5, "-----", 5) != 0) {
		sg_error_set(err, "armor: bad BEGIN line");
		goto out;
	}
	armor_r->label = sg_strndup(s + 11, n - 11 - 5);
	armor_r->eol = eol == 2 ? "\r\n" : "\n";
	/* Armor headers (s6.2) up to an empty line. */
	size_t mark = pos;
	while (next_line(text, len, &pos, &s, &n, &eol)) {
		if (rtrim(s, n) == 0)
			break;
		if (memchr(s, ':', n) == NULL) {
			pos = mark; /* no blank line: tolerate, data starts here */
			break;
		}
		/* "Key: Value" text (RFC 4880 s6.2): a control byte would not
		 * survive being written back the same way (found by fuzzing). */
		size_t hn = rtrim(s, n);
		for (size_t i = 0; i < hn; i++) {
			unsigned char ch = (unsigned char)s[i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				sg_error_set(err, "armor: control character 0x%02x in a header line", ch);
				goto out;
			}
		}
		if (!sg_buf_append(&hdrs, s, n + eol)) {
			sg_error_set(err, "armor: headers too long");
			goto out;
		}
		mark = pos;
	}
	/* Base64 lines, an optional "=CRC" line, the END line. */
	bool ended = false;
	char crc_b64[5] = { 0 };
	while (next_line(text, len, &pos, &s, &n, &eol)) {
		n = rtrim(s, n);
		if (n >= 9 && memcmp(s, "-----END ", 9) == 0) {
			size_t want = strlen(armor_r->label);
			if (n != 9 + want + 5 || memcmp(s + 9, armor_r->label, want) != 0) {
				sg_error_set(err, "armor: END line does not match BEGIN");
				goto out;
			}
			armor_r->end_eol = eol > 0;
			ended = true;
			break;
		}
		if (n == 5 && s[0] == '=') {
			memcpy(crc_b64, s + 1, 4);
			armor_r->had_crc = true;
			continue;
		}
		if (n == 0)
			continue;
		for (size_t i = 0; i < n; i++)
			if (!is_b64((unsigned char)s[i])) {
				sg_error_set(err, "armor: bad character 0x%02x", (unsigned char)s[i]);
				goto out;
			}
		if (armor_r->line_len == 0)
			armor_r->line_len = n;
		if (!sg_buf_append(&b64, s, n)) {
			sg_error_set(err, "armor: data larger than the buffer allows");
			goto out;
		}
	}
	if (!ended) {
		sg_error_set(err, "armor: no END line");
		goto out;
	}
	size_t before = bin->len;
	if (b64_decode((const char *)b64.data, b64.len, bin, err) < 0) {
		sg_error_prefix(err, "armor");
		goto out;
	}
	if (armor_r->had_crc) {
		struct sg_buf c;
		sg_buf_init(&c, 8);
		int ok = b64_decode(crc_b64, 4, &c, err);
		uint32_t want = ok > 0 && c.len == 3
				? ((uint32_t)c.data[0] << 16) | ((uint32_t)c.data[1] << 8) | c.data[2]
				: 0xffffffffu;
		sg_buf_free(&c);
		if (want != sg_pgp_crc24(bin->data + before, bin->len - before)) {
			sg_error_set(err, "armor: CRC24 mismatch");
			goto out;
		}
	}
	armor_r->headers = (char *)sg_buf_steal(&hdrs, &n);
	if (armor_r->headers == NULL)
		armor_r->headers = sg_strdup("");
	if (armor_r->line_len == 0)
		armor_r->line_len = 64;
	*start_r = start;
	*end_r = pos;
	ret = 1;
out:
	if (ret != 1)
		sg_pgp_armor_clear(armor_r);
	sg_buf_free(&b64);
	sg_buf_free(&hdrs);
	return ret;
}

static int append(struct sg_buf *out, const void *p, size_t n)
{
	return sg_buf_append(out, p, n);
}

int sg_pgp_armor_write(const struct sg_pgp_armor *armor, const unsigned char *bin, size_t len,
		       struct sg_buf *out, struct sg_error *err)
{
	int ret = -1;
	size_t line = armor->line_len;
	if (line == 0 || line % 4 != 0)
		line = 64; /* keep whole base64 quanta per line */
	char *b64 = sg_malloc(len / 3 * 4 + 8);
	int n = EVP_EncodeBlock((unsigned char *)b64, bin, (int)len);
	const char *eol = armor->eol ? armor->eol : "\n";
	bool ok = sg_buf_printf(out, "-----BEGIN %s-----%s%s%s", armor->label, eol,
				armor->headers ? armor->headers : "", eol);
	for (size_t i = 0; ok && i < (size_t)n; i += line) {
		size_t l = (size_t)n - i < line ? (size_t)n - i : line;
		ok = append(out, b64 + i, l) && sg_buf_append_str(out, eol);
	}
	if (ok && armor->had_crc) {
		uint32_t crc = sg_pgp_crc24(bin, len);
		unsigned char c[3] = { (unsigned char)(crc >> 16), (unsigned char)(crc >> 8),
				       (unsigned char)crc };
		char cb[8];
		EVP_EncodeBlock((unsigned char *)cb, c, 3);
		ok = sg_buf_printf(out, "=%s%s", cb, eol);
	}
	if (ok)
		ok = sg_buf_printf(out, "-----END %s-----%s", armor->label,
				   armor->end_eol ? eol : "");
	if (!ok) {
		sg_error_set(err, "armor: output larger than the buffer allows");
		goto out;
	}
	ret = 1;
out:
	free(b64);
	return ret;
}

int sg_pgp_binary_of(const unsigned char *data, size_t len, struct sg_buf *out,
		     struct sg_error *err)
{
	if (len > 0 && (data[0] & 0x80)) {
		if (!sg_buf_append(out, data, len)) {
			sg_error_set(err, "key data larger than the buffer allows");
			return -1;
		}
		return 1;
	}
	struct sg_pgp_armor a;
	size_t s, e;
	int r = sg_pgp_dearmor((const char *)data, len, &a, &s, &e, out, err);
	if (r == 0)
		sg_error_set(err, "neither OpenPGP packets nor ASCII armor");
	if (r <= 0)
		return -1;
	sg_pgp_armor_clear(&a);
	return 1;
}
