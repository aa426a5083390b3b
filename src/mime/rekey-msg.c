/* Re-keying of stored messages: a byte-exact splice of the re-wrapped
 * payload into the original message (RFC 3156 PGP/MIME, RFC 8551 S/MIME). */
#include "mime/rekey-msg.h"
#include "crypto/pgp-packet.h"
#include "util/mem.h"

#include <ctype.h>
#include <openssl/evp.h>
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
	struct sg_pgp_rewrap_req req = { k->pgp_old, k->pgp_new, k->pgp_drop, k->keep_old };
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
