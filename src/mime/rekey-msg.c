/* Re-keying of stored messages: a byte-exact splice of the re-wrapped
 * payload into the original message (RFC 3156 PGP/MIME, RFC 8551 S/MIME). */
#include "mime/rekey-msg.h"
#include "crypto/pgp-packet.h"
#include "util/mem.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#define PAYLOAD_MAX ((size_t)1 << 30)

/* Offset just past the header block's empty line, or len if none. */
static size_t header_end(const unsigned char *m, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (m[i] != '\n')
			continue;
		if (i + 1 < len && m[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && m[i + 1] == '\r' && m[i + 2] == '\n')
			return i + 3;
	}
	return len;
}

/* The unfolded value of header field name (case-insensitive) within
 * m[0..hlen), lower-cased, owned; NULL if absent. */
static char *header_value(const unsigned char *m, size_t hlen, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < hlen;) {
		size_t eol = i;
		while (eol < hlen && m[eol] != '\n')
			eol++;
		if (eol - i > nl && strncasecmp((const char *)m + i, name, nl) == 0 && m[i + nl] == ':') {
			struct sg_buf v;
			sg_buf_init(&v, 64 * 1024);
			size_t p = i + nl + 1;
			/* continuation lines start with a blank (RFC 5322 s2.2.3) */
			for (;;) {
				for (; p < hlen && m[p] != '\n'; p++)
					if (m[p] != '\r' &&
					    !sg_buf_append(&v, (char[]){ (char)tolower(m[p]) }, 1))
						break;
				if (p + 1 >= hlen || (m[p + 1] != ' ' && m[p + 1] != '\t'))
					break;
				p++;
			}
			size_t l;
			char *s = (char *)sg_buf_steal(&v, &l);
			return s ? s : sg_strdup("");
		}
		i = eol + 1;
	}
	return NULL;
}

/* ---- large PGP/MIME messages: patch the armor instead of rewriting it ----
 *
 * Re-wrapping changes only the session-key packets at the start of the
 * binary; when the new PKESK has the old one's length (same key type and
 * size, the usual case) every later octet stays where it was, so every
 * base64 line after the changed ones stays the same text. Decode just the
 * first lines, re-wrap them, re-encode them with the same line lengths,
 * copy the rest as it is and patch the CRC-24 (RFC 4880 s6) arithmetically:
 * one read and one copy of the message instead of decode + encode + CRC. */

#define SPLICE_MIN ((size_t)128 * 1024)   /* smaller blocks: decoded whole */
#define SPLICE_PREFIX ((size_t)16 * 1024) /* octets decoded to reach the data packet */
#define SPLICE_NA 2                        /* not applicable: take the full path */

static const char begin_pgp[] = "-----BEGIN PGP MESSAGE-----";
static const char end_pgp[] = "-----END PGP MESSAGE-----";

struct b64_line {
	size_t off;   /* text offset of the line */
	size_t len;   /* base64 characters (no line end) */
	size_t next;  /* text offset of the next line */
	size_t bin;   /* binary offset of its first octet */
};

/* The line at p within [p, lim): its length without line end and the
 * offset of the next line. */
static void line_at(const unsigned char *m, size_t p, size_t lim, size_t *l_r, size_t *next_r)
{
	const unsigned char *nl = memchr(m + p, '\n', lim - p);
	size_t e = nl != NULL ? (size_t)(nl - m) : lim;
	*next_r = nl != NULL ? e + 1 : lim;
	*l_r = e > p && m[e - 1] == '\r' ? e - 1 - p : e - p;
}

/* A text marker at the start of a line, searched from off. */
static size_t find_line(const unsigned char *m, size_t len, size_t off, const char *what)
{
	size_t wl = strlen(what);
	while (off < len) {
		const unsigned char *hit = memmem(m + off, len - off, what, wl);
		if (hit == NULL)
			return len;
		size_t at = (size_t)(hit - m);
		if (at == 0 || m[at - 1] == '\n')
			return at;
		off = at + 1;
	}
	return len;
}

struct armor_map {
	size_t begin, data, crc, end, after;  /* text offsets */
	bool has_crc;
	uint32_t crc_old;
	size_t total;                        /* binary octets */
	struct b64_line *lines;              /* the first lines, decoded into pre */
	size_t n_lines;
	struct sg_buf pre;
};

/* Lay out the armored block and decode its first lines. 1; SPLICE_NA. */
static int map_armor(const unsigned char *m, size_t len, size_t body, struct armor_map *a)
{
	size_t p, l, next, chars = 0, pad = 0;
	a->begin = find_line(m, len, body, begin_pgp);
	if (a->begin == len)
		return SPLICE_NA;
	line_at(m, a->begin, len, &l, &p);
	if (l != strlen(begin_pgp))
		return SPLICE_NA;
	for (int h = 0;; h++) { /* armor headers up to the empty line */
		if (p >= len || h > 64)
			return SPLICE_NA;
		line_at(m, p, len, &l, &next);
		p = next;
		if (l == 0)
			break;
	}
	a->data = p;
	a->end = find_line(m, len, p, end_pgp);
	if (a->end == len || a->end - a->data < SPLICE_MIN)
		return SPLICE_NA;
	line_at(m, a->end, len, &l, &a->after);
	/* the checksum line, if any, is the last before END */
	const unsigned char *prev = memrchr(m + a->data, '\n', a->end - 1 - a->data);
	a->crc = prev != NULL ? (size_t)(prev - m) + 1 : a->data;
	a->has_crc = m[a->crc] == '=';
	if (a->has_crc) {
		unsigned char c[4];
		line_at(m, a->crc, a->end, &l, &next);
		if (l != 5 || EVP_DecodeBlock(c, m + a->crc + 1, 4) != 3)
			return SPLICE_NA;
		a->crc_old = (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
	} else {
		a->crc = a->end;
	}
	for (p = a->data; p < a->crc; p = next) {
		line_at(m, p, a->crc, &l, &next);
		if (l % 4 != 0 || l == 0)
			return SPLICE_NA;
		chars += l;
		if (next >= a->crc)
			pad = (m[p + l - 1] == '=') + (m[p + l - 2] == '=');
	}
	a->total = chars / 4 * 3 - pad;
	for (p = a->data; a->pre.len < SPLICE_PREFIX; p = next) {
		unsigned char bin[1024];
		line_at(m, p, a->crc, &l, &next);
		if (next >= a->crc || l > 4 * (sizeof(bin) / 3) ||
		    EVP_DecodeBlock(bin, m + p, (int)l) != (int)(l / 4 * 3))
			return SPLICE_NA; /* the last (padded) line is never in the prefix */
		a->lines = sg_reallocarray(a->lines, a->n_lines + 1, sizeof(*a->lines));
		a->lines[a->n_lines++] = (struct b64_line){ p, l, next, a->pre.len };
		if (!sg_buf_append(&a->pre, bin, l / 4 * 3))
			return SPLICE_NA;
	}
	return 1;
}

/* Re-encode lines [0, j) from newpre, copy the rest, patch the CRC. */
static int splice_out(const unsigned char *m, size_t len, const struct armor_map *a,
		      const unsigned char *newpre, size_t data_off, struct sg_buf *out)
{
	size_t j = 0;
	char enc[1400];
	while (j < a->n_lines && a->lines[j].bin < data_off)
		j++;
	if (j == a->n_lines)
		return SPLICE_NA;
	int ok = sg_buf_append(out, m, a->data);
	for (size_t i = 0; ok && i < j; i++) {
		const struct b64_line *ln = &a->lines[i];
		EVP_EncodeBlock((unsigned char *)enc, newpre + ln->bin, (int)(ln->len / 4 * 3));
		ok = sg_buf_append(out, enc, ln->len) &&
		     sg_buf_append(out, m + ln->off + ln->len, ln->next - ln->off - ln->len);
	}
	ok = ok && sg_buf_append(out, m + a->lines[j].off, a->crc - a->lines[j].off);
	if (ok && a->has_crc) {
		uint32_t crc = sg_pgp_crc24_patch(a->crc_old, a->pre.data, newpre, data_off, a->total);
		unsigned char c[3] = { (unsigned char)(crc >> 16), (unsigned char)(crc >> 8),
				       (unsigned char)crc };
		enc[0] = '=';
		EVP_EncodeBlock((unsigned char *)enc + 1, c, 3);
		ok = sg_buf_append(out, enc, 5) && sg_buf_append(out, m + a->crc + 5, len - a->crc - 5);
	} else if (ok) {
		ok = sg_buf_append(out, m + a->crc, len - a->crc);
	}
	return ok ? 1 : -1;
}

/* 1 rewritten; 0 skipped (reason set); SPLICE_NA: use the full path. */
static int pgp_splice(const unsigned char *msg, size_t len, size_t body,
		      const struct sg_rekey_keys *k, struct sg_buf *out, struct sg_rekey_info *info)
{
	struct armor_map a;
	struct sg_buf newpre;
	struct sg_pgp_rewrap_info ri;
	struct sg_error err = SG_ERROR_INIT;
	size_t start = out->len;
	int ret = SPLICE_NA;
	memset(&a, 0, sizeof(a));
	sg_buf_init(&a.pre, SPLICE_PREFIX + 2048);
	sg_buf_init(&newpre, SPLICE_PREFIX + 1024 * 1024);
	if (k->pgp_old == NULL || k->pgp_new == NULL || map_armor(msg, len, body, &a) != 1)
		goto out;
	struct sg_pgp_rewrap_req req = { k->pgp_old, k->pgp_new, k->pgp_drop, k->keep_old, true };
	int r = sg_pgp_rewrap_req(a.pre.data, a.pre.len, &req, &newpre, &ri, &err);
	if (r == 0) {
		info->skip_reason = ri.new_already ? "the new key is a recipient already"
						   : "the old key is not a recipient";
		ret = 0;
		goto out;
	}
	if (r < 0 || ri.out_data_off != ri.data_off)
		goto out; /* errors are reported by the full path; a new length needs it too */
	r = splice_out(msg, len, &a, newpre.data, ri.data_off, out);
	if (r != 1) {
		out->len = start;
		goto out;
	}
	info->removed = ri.removed;
	info->dropped = ri.dropped;
	info->kept = ri.kept;
	info->payload_off = a.begin;
	info->payload_end_in = a.after;
	info->payload_end_out = out->len - start - (len - a.after);
	ret = 1;
out:
	sg_error_clear(&err);
	sg_buf_free(&a.pre);
	sg_buf_free(&newpre);
	free(a.lines);
	return ret;
}

static int pgp_mime(const unsigned char *msg, size_t len, size_t body, const struct sg_rekey_keys *k,
		    struct sg_buf *out, struct sg_rekey_info *info, struct sg_error *err)
{
	struct sg_pgp_armor armor;
	struct sg_buf bin;
	struct sg_pgp_rewrap_info ri;
	size_t s, e, start = out->len;
	int ret = -1;
	sg_buf_init(&bin, PAYLOAD_MAX);
	memset(&armor, 0, sizeof(armor));
	int sr = pgp_splice(msg, len, body, k, out, info);
	if (sr != SPLICE_NA) {
		sg_buf_free(&bin);
		return sr;
	}
	int r = sg_pgp_dearmor((const char *)msg + body, len - body, &armor, &s, &e, &bin, err);
	if (r == 0 || (r > 0 && strcmp(armor.label, "PGP MESSAGE") != 0)) {
		info->skip_reason = "multipart/encrypted without a PGP MESSAGE block";
		ret = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	if (k->pgp_old == NULL || k->pgp_new == NULL) {
		info->skip_reason = "PGP/MIME message but no OpenPGP keys given";
		ret = 0;
		goto out;
	}
	s += body;
	e += body;
	if (!sg_buf_append(out, msg, s))
		goto full;
	struct sg_buf newbin;
	sg_buf_init(&newbin, PAYLOAD_MAX);
	struct sg_pgp_rewrap_req req = { k->pgp_old, k->pgp_new, k->pgp_drop, k->keep_old, false };
	r = sg_pgp_rewrap_req(bin.data, bin.len, &req, &newbin, &ri, err);
	if (r > 0 && sg_pgp_armor_write(&armor, newbin.data, newbin.len, out, err) < 0)
		r = -1;
	sg_buf_free(&newbin);
	if (r <= 0) {
		if (r == 0)
			info->skip_reason = ri.new_already ? "the new key is a recipient already"
							   : "the old key is not a recipient";
		ret = r;
		goto out;
	}
	info->removed = ri.removed;
	info->dropped = ri.dropped;
	info->kept = ri.kept;
	info->payload_off = s;
	info->payload_end_in = e;
	info->payload_end_out = out->len - start;
	if (!sg_buf_append(out, msg + e, len - e))
		goto full;
	ret = 1;
	goto out;
full:
	sg_error_set(err, "message larger than the buffer allows");
out:
	if (ret != 1)
		out->len = start;
	sg_pgp_armor_clear(&armor);
	sg_buf_free(&bin);
	return ret;
}

/* The base64 body from off: decoded into bin; *end_r past the last base64
 * line (with its line end), *line_r its first line's length, *eol_r. */
static int b64_body(const unsigned char *m, size_t len, size_t off, struct sg_buf *bin,
		    size_t *end_r, size_t *line_r, const char **eol_r, struct sg_error *err)
{
	struct sg_buf t;
	int ret = -1;
	size_t p = off, end = off;
	sg_buf_init(&t, PAYLOAD_MAX / 3 * 4);
	*line_r = 0;
	*eol_r = "\r\n";
	while (p < len) {
		size_t e = p;
		while (e < len && m[e] != '\n')
			e++;
		size_t l = e - p;
		bool cr = l > 0 && m[p + l - 1] == '\r';
		if (cr)
			l--;
		if (l == 0) {
			if (t.len > 0)
				break; /* blank line after the data ends it */
			p = e + 1;
			end = p > len ? len : p;
			continue;
		}
		for (size_t i = 0; i < l; i++) {
			unsigned char c = m[p + i];
			if (!(isalnum(c) || c == '+' || c == '/' || c == '=')) {
				sg_error_set(err, "S/MIME body: not base64");
				goto out;
			}
		}
		if (*line_r == 0) {
			*line_r = l;
			*eol_r = cr ? "\r\n" : "\n";
		}
		if (!sg_buf_append(&t, m + p, l))
			goto big;
		p = e < len ? e + 1 : len;
		end = p;
	}
	if (t.len == 0 || t.len % 4 != 0) {
		sg_error_set(err, "S/MIME body: bad base64 length");
		goto out;
	}
	unsigned char *tmp = sg_malloc(t.len / 4 * 3 + 1);
	int n = EVP_DecodeBlock(tmp, t.data, (int)t.len);
	size_t pad = (t.data[t.len - 1] == '=') + (t.len > 1 && t.data[t.len - 2] == '=');
	int ok = n >= 0 && sg_buf_append(bin, tmp, (size_t)n - pad);
	free(tmp);
	if (!ok) {
		sg_error_set(err, "S/MIME body: bad base64");
		goto out;
	}
	*end_r = end;
	ret = 1;
	goto out;
big:
	sg_error_set(err, "S/MIME body larger than the buffer allows");
out:
	sg_buf_free(&t);
	return ret;
}

static int b64_write(const unsigned char *bin, size_t len, size_t line, const char *eol,
		     bool last_eol, struct sg_buf *out)
{
	if (line == 0 || line % 4 != 0)
		line = 76;
	char *b = sg_malloc(len / 3 * 4 + 8);
	size_t n = (size_t)EVP_EncodeBlock((unsigned char *)b, bin, (int)len);
	int ok = 1;
	for (size_t i = 0; ok && i < n; i += line) {
		size_t l = n - i < line ? n - i : line;
		ok = sg_buf_append(out, b + i, l) && (i + l == n && !last_eol ? 1 : sg_buf_append_str(out, eol));
	}
	free(b);
	return ok;
}

static int smime(const unsigned char *msg, size_t len, size_t body, const struct sg_rekey_keys *k,
		 struct sg_buf *out, struct sg_rekey_info *info, struct sg_error *err)
{
	struct sg_buf der, nder;
	struct sg_cms_rewrap_info ci;
	size_t end, line, start = out->len;
	const char *eol;
	int ret = -1;
	sg_buf_init(&der, PAYLOAD_MAX);
	sg_buf_init(&nder, PAYLOAD_MAX);
	if (k->cms_old == NULL || k->cms_new == NULL) {
		info->skip_reason = "S/MIME message but no certificates given";
		ret = 0;
		goto out;
	}
	char *cte = header_value(msg, body, "Content-Transfer-Encoding");
	bool b64 = cte != NULL && strstr(cte, "base64") != NULL;
	free(cte);
	if (!b64) {
		sg_error_set(err, "S/MIME body is not base64");
		goto out;
	}
	if (b64_body(msg, len, body, &der, &end, &line, &eol, err) < 0)
		goto out;
	int r = sg_cms_rewrap(der.data, der.len, k->cms_old, k->cms_new, &nder, &ci, err);
	if (r <= 0) {
		if (r == 0)
			info->skip_reason = "the old certificate is not a recipient";
		ret = r;
		goto out;
	}
	bool last_eol = end > body && msg[end - 1] == '\n';
	if (!sg_buf_append(out, msg, body) ||
	    !b64_write(nder.data, nder.len, line, eol, last_eol, out)) {
		sg_error_set(err, "message larger than the buffer allows");
		goto out;
	}
	info->payload_off = body;
	info->payload_end_in = end;
	info->payload_end_out = out->len - start;
	info->removed = 1;
	info->kept = ci.recipients - 1;
	if (!sg_buf_append(out, msg + end, len - end)) {
		sg_error_set(err, "message larger than the buffer allows");
		goto out;
	}
	ret = 1;
out:
	if (ret != 1)
		out->len = start;
	sg_buf_free(&der);
	sg_buf_free(&nder);
	return ret;
}

int sg_rekey_message(const unsigned char *msg, size_t len, const struct sg_rekey_keys *keys,
		     struct sg_buf *out, struct sg_rekey_info *info_r, struct sg_error *err)
{
	memset(info_r, 0, sizeof(*info_r));
	size_t body = header_end(msg, len);
	char *ct = header_value(msg, body, "Content-Type");
	int ret = 0;
	if (ct == NULL) {
		info_r->skip_reason = "no Content-Type: not encrypted";
	} else if (strstr(ct, "multipart/encrypted") != NULL) {
		info_r->kind = SG_REKEY_KIND_PGP_MIME;
		ret = pgp_mime(msg, len, body, keys, out, info_r, err);
	} else if (strstr(ct, "application/pkcs7-mime") != NULL ||
		   strstr(ct, "application/x-pkcs7-mime") != NULL) {
		info_r->kind = SG_REKEY_KIND_SMIME;
		if (strstr(ct, "signed-data") != NULL)
			info_r->skip_reason = "S/MIME signed-data: not encrypted";
		else
			ret = smime(msg, len, body, keys, out, info_r, err);
	} else {
		info_r->skip_reason = "not an encrypted message";
	}
	free(ct);
	if (ret < 0)
		sg_error_prefix(err, "rekey");
	return ret;
}
