/* The next-hop client's protocol pieces that need no socket: parsing what
 * the next hop says and encoding what we send (see proto.h). */
#include "relay/proto.h"
#include "util/mem.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sg_relay_reply_parser_init(struct sg_relay_reply_parser *p)
{
	sg_buf_init(&p->text, SG_RELAY_MAX_REPLY);
	p->code = 0;
}

void sg_relay_reply_parser_free(struct sg_relay_reply_parser *p)
{
	sg_buf_free(&p->text);
	p->code = 0;
}

static int line_code(const char *line, size_t len)
{
	if (len < 3 || line[0] < '2' || line[0] > '5' || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
}

int sg_relay_reply_feed(struct sg_relay_reply_parser *p, const char *line, size_t len,
			struct sg_reply *reply_r, struct sg_error *err)
{
	int code = line_code(line, len);
	bool last = len <= 3 || line[3] == ' ';
	size_t tlen = len > 4 ? len - 4 : 0;
	int ret = -1;

	if (code < 0) {
		sg_error_set(err, "malformed reply line '%.*s'", (int)(len > 80 ? 80 : len), line);
		goto out;
	}
	if (p->code != 0 && p->code != code) {
		sg_error_set(err, "reply code changed from %d to %d within a multi-line reply",
			     p->code, code);
		goto out;
	}
	/* RFC 5321 4.2.1: a multi-line reply's lines are joined; we use '\n'. */
	if ((p->code != 0 && !sg_buf_append(&p->text, "\n", 1)) ||
	    (tlen > 0 && !sg_buf_append(&p->text, line + 4, tlen))) {
		sg_error_set(err, "reply longer than %d bytes", SG_RELAY_MAX_REPLY);
		goto out;
	}
	p->code = code;
	if (!last)
		return 0;
	reply_r->code = code;
	reply_r->text = (char *)sg_buf_steal(&p->text, NULL);
	if (reply_r->text == NULL)
		reply_r->text = sg_strdup("");
	p->code = 0;
	return 1;
out:
	sg_buf_reset(&p->text);
	p->code = 0;
	return ret;
}

/* One to three digits; returns how many. */
static size_t digits(const char *s, size_t max)
{
	size_t n = 0;
	while (n < max && isdigit((unsigned char)s[n]))
		n++;
	return n;
}

size_t sg_relay_enhanced_len(int code, const char *text)
{
	size_t i = 0, n;

	if (text == NULL || text[0] != '0' + code / 100 || text[1] != '.')
		return 0;
	i = 2;
	if ((n = digits(text + i, 3)) == 0 || text[i + n] != '.')
		return 0;
	i += n + 1;
	if ((n = digits(text + i, 3)) == 0)
		return 0;
	i += n;
	return text[i] == '\0' || text[i] == ' ' || text[i] == '\n' ? i : 0;
}

void sg_relay_reply_add_enhanced(struct sg_reply *r)
{
	char *t;

	if (r->code < 200 || r->code > 599 || sg_relay_enhanced_len(r->code, r->text) > 0)
		return;
	t = sg_asprintf("%d.0.0%s%s", r->code / 100, r->text != NULL && r->text[0] ? " " : "",
			r->text != NULL ? r->text : "");
	free(r->text);
	r->text = t;
}

/* EHLO keyword table (RFC 5321 4.1.1.1 and the extensions we pass on). */
static const struct {
	const char *kw;
	size_t off;
} cap_table[] = {
	{ "PIPELINING", offsetof(struct sg_relay_caps, pipelining) },
	{ "SIZE", offsetof(struct sg_relay_caps, size) },
	{ "8BITMIME", offsetof(struct sg_relay_caps, eightbitmime) },
	{ "SMTPUTF8", offsetof(struct sg_relay_caps, smtputf8) },
	{ "DSN", offsetof(struct sg_relay_caps, dsn) },
	{ "ENHANCEDSTATUSCODES", offsetof(struct sg_relay_caps, enhanced) },
	{ "XFORWARD", offsetof(struct sg_relay_caps, xforward) },
};

static const struct {
	const char *name;
	unsigned bit;
	size_t off; /* in struct sg_xforward */
} xf_table[] = {
	{ "NAME", SG_XF_NAME, offsetof(struct sg_xforward, name) },
	{ "ADDR", SG_XF_ADDR, offsetof(struct sg_xforward, addr) },
	{ "PORT", SG_XF_PORT, offsetof(struct sg_xforward, port) },
	{ "PROTO", SG_XF_PROTO, offsetof(struct sg_xforward, proto) },
	{ "HELO", SG_XF_HELO, offsetof(struct sg_xforward, helo) },
	{ "IDENT", SG_XF_IDENT, offsetof(struct sg_xforward, ident) },
	{ "SOURCE", SG_XF_SOURCE, offsetof(struct sg_xforward, source) },
};

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

static unsigned xf_attr_bit(const char *w, size_t len)
{
	for (size_t i = 0; i < N_ELEM(xf_table); i++)
		if (strlen(xf_table[i].name) == len && strncasecmp(w, xf_table[i].name, len) == 0)
			return xf_table[i].bit;
	return 0;
}

static void parse_cap_line(const char *line, size_t len, struct sg_relay_caps *caps)
{
	size_t kwlen = 0;
	const char *args;

	while (kwlen < len && line[kwlen] != ' ' && line[kwlen] != '=')
		kwlen++;
	args = line + kwlen;
	for (size_t i = 0; i < N_ELEM(cap_table); i++) {
		if (strlen(cap_table[i].kw) != kwlen || strncasecmp(line, cap_table[i].kw, kwlen) != 0)
			continue;
		*(bool *)((char *)caps + cap_table[i].off) = true;
	}
	if (kwlen == 4 && strncasecmp(line, "SIZE", 4) == 0 && args < line + len)
		caps->size_max = strtoul(args + 1, NULL, 10);
	if (kwlen == 8 && strncasecmp(line, "XFORWARD", 8) == 0) {
		const char *p = args, *end = line + len;
		while (p < end) {
			while (p < end && *p == ' ')
				p++;
			const char *w = p;
			while (p < end && *p != ' ')
				p++;
			caps->xforward_attrs |= xf_attr_bit(w, (size_t)(p - w));
		}
	}
}

void sg_relay_parse_caps(const char *ehlo_text, struct sg_relay_caps *caps_r)
{
	const char *p = strchr(ehlo_text, '\n');

	memset(caps_r, 0, sizeof(*caps_r));
	/* The first line is the greeting domain, not a keyword (RFC 5321 4.1.1.1). */
	while (p != NULL) {
		const char *line = p + 1, *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
		parse_cap_line(line, len, caps_r);
		p = nl;
	}
}

static void strappend(char **s, const char *fmt, ...) SG_PRINTF(2, 3);
static void strappend(char **s, const char *fmt, ...)
{
	va_list ap;
	char *add, *joined;

	va_start(ap, fmt);
	add = sg_vasprintf(fmt, ap);
	va_end(ap);
	joined = sg_asprintf("%s%s", *s, add);
	free(add);
	free(*s);
	*s = joined;
}

bool sg_relay_needs_smtputf8(const struct sg_envelope *env)
{
	return env->smtputf8 || sg_esmtp_param(env->mail_params, "SMTPUTF8", NULL) == 1;
}

/* Copy KEYWORD=value from params to *out if present. */
static void pass_param(char **out, const char *params, const char *kw)
{
	char *v = NULL;

	if (sg_esmtp_param(params, kw, &v) != 1)
		return;
	strappend(out, " %s=%s", kw, v);
	free(v);
}

char *sg_relay_mail_params(const struct sg_envelope *env, const struct sg_relay_caps *caps,
			   size_t size)
{
	char *out = sg_strdup(""), *body = NULL;

	/* RFC 1870: the size we will actually send, not what our client claimed. */
	if (caps->size)
		strappend(&out, " SIZE=%zu", size);
	/* RFC 6152: BODY= only to a next hop that knows it; BINARYMIME needs
	 * BDAT, which we do not use, so only 7BIT and 8BITMIME pass. */
	if (sg_esmtp_param(env->mail_params, "BODY", &body) != 1 && env->body_8bit)
		body = sg_strdup("8BITMIME");
	if (body != NULL && caps->eightbitmime &&
	    (strcasecmp(body, "7BIT") == 0 || strcasecmp(body, "8BITMIME") == 0))
		strappend(&out, " BODY=%s", body);
	free(body);
	if (caps->smtputf8 && sg_relay_needs_smtputf8(env))
		strappend(&out, " SMTPUTF8");
	if (caps->dsn) {
		pass_param(&out, env->mail_params, "RET");
		pass_param(&out, env->mail_params, "ENVID");
	}
	return out;
}

char *sg_relay_rcpt_params(const char *params, const struct sg_relay_caps *caps)
{
	char *out = sg_strdup("");

	if (caps->dsn) {
		pass_param(&out, params, "NOTIFY");
		pass_param(&out, params, "ORCPT");
	}
	return out;
}

void sg_dotstuff_init(struct sg_dotstuff *ds)
{
	memset(ds, 0, sizeof(*ds));
	ds->bol = true;
}

size_t sg_dotstuff_span(struct sg_dotstuff *ds, const unsigned char *p, size_t len, bool *dot_r)
{
	const unsigned char *hit;
	size_t n;

	*dot_r = ds->bol && p[0] == '.';
	/* Everything up to and including the next "\n." goes out as is.
	 * memchr() for the rarer '.' beats memmem() on mail text. */
	hit = NULL;
	for (const unsigned char *q = p + 1; q < p + len;) {
		const unsigned char *d = memchr(q, '.', (size_t)(p + len - q));
		if (d == NULL)
			break;
		if (d[-1] == '\n') {
			hit = d - 1;
			break;
		}
		q = d + 1;
	}
	n = hit != NULL ? (size_t)(hit - p) + 1 : len;
	ds->bol = p[n - 1] == '\n';
	if (n >= 2) {
		ds->last[0] = p[n - 2];
		ds->last[1] = p[n - 1];
	} else {
		ds->last[0] = ds->last[1];
		ds->last[1] = p[0];
	}
	ds->total += n;
	return n;
}

const char *sg_dotstuff_end(const struct sg_dotstuff *ds)
{
	if (ds->total == 0 || (ds->total >= 2 && ds->last[0] == '\r' && ds->last[1] == '\n'))
		return ".\r\n";
	return "\r\n.\r\n";
}

char *sg_xtext_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(s), j = 0;
	char *out = sg_malloc(len * 3 + 1);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126 || c == '+' || c == '=') {
			out[j++] = '+';
			out[j++] = hex[c >> 4];
			out[j++] = hex[c & 15];
		} else {
			out[j++] = (char)c;
		}
	}
	out[j] = '\0';
	return out;
}

#define XF_LINE_MAX 512 /* XFORWARD_README: command lines up to 512 bytes */
#define XF_PREFIX "XFORWARD"

static bool xf_given(const struct sg_xforward *xf)
{
	for (size_t i = 0; i < N_ELEM(xf_table); i++)
		if (*(char *const *)((const char *)xf + xf_table[i].off) != NULL)
			return true;
	return false;
}

/* What we know of our own client when nobody forwarded anything to us. */
static void xf_from_session(const struct sg_envelope *env, struct sg_xforward *xf)
{
	memset(xf, 0, sizeof(*xf));
	xf->addr = env->client_addr;
	xf->port = env->client_port;
	xf->helo = env->helo;
	xf->proto = env->lmtp ? "LMTP" : "ESMTP";
	xf->ident = env->queue_id;
}

/* "NAME=value" tokens; values too long for a line become [UNAVAILABLE]. */
static size_t xf_tokens(const struct sg_xforward *xf, unsigned attrs, char **tok)
{
	size_t n = 0;

	for (size_t i = 0; i < N_ELEM(xf_table); i++) {
		const char *v = *(char *const *)((const char *)xf + xf_table[i].off);
		if ((attrs & xf_table[i].bit) == 0)
			continue;
		char *enc = v != NULL && v[0] != '\0' ? sg_xtext_encode(v) : NULL;
		tok[n] = sg_asprintf("%s=%s", xf_table[i].name, enc != NULL ? enc : "[UNAVAILABLE]");
		if (strlen(tok[n]) + sizeof(XF_PREFIX " \r\n") > XF_LINE_MAX) {
			free(tok[n]);
			tok[n] = sg_asprintf("%s=[UNAVAILABLE]", xf_table[i].name);
		}
		free(enc);
		n++;
	}
	return n;
}

/* Pack tokens into lines of at most XF_LINE_MAX bytes; returns the count. */
static size_t xf_pack(char **tok, size_t n, char **lines, size_t max_lines)
{
	size_t nl = 0;
	char *cur = NULL;

	for (size_t i = 0; i < n; i++) {
		if (cur != NULL && strlen(cur) + 1 + strlen(tok[i]) + 2 > XF_LINE_MAX) {
			if (nl < max_lines)
				lines[nl] = sg_asprintf("%s\r\n", cur);
			nl++;
			free(cur);
			cur = NULL;
		}
		if (cur == NULL)
			cur = sg_strdup(XF_PREFIX);
		strappend(&cur, " %s", tok[i]);
	}
	if (cur != NULL) {
		if (nl < max_lines)
			lines[nl] = sg_asprintf("%s\r\n", cur);
		nl++;
		free(cur);
	}
	return nl;
}

/* The longest token that still has a value: the one to give up. */
static size_t xf_longest(char **tok, size_t n)
{
	size_t best = 0, best_len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(tok[i]);
		if (l > best_len && strstr(tok[i], "=[UNAVAILABLE]") == NULL) {
			best = i;
			best_len = l;
		}
	}
	return best;
}

size_t sg_relay_xforward_lines(const struct sg_envelope *env, const struct sg_relay_caps *caps,
			       char *lines_r[2])
{
	struct sg_xforward own;
	const struct sg_xforward *xf = &env->xf;
	char *tok[N_ELEM(xf_table)];
	size_t n, nl;

	lines_r[0] = lines_r[1] = NULL;
	if (!caps->xforward || caps->xforward_attrs == 0)
		return 0;
	if (!xf_given(xf)) {
		xf_from_session(env, &own);
		xf = &own;
	}
	n = xf_tokens(xf, caps->xforward_attrs, tok);
	/* At most two commands: drop the longest value until they fit. */
	while ((nl = xf_pack(tok, n, lines_r, 2)) > 2) {
		for (size_t i = 0; i < 2; i++) {
			free(lines_r[i]);
			lines_r[i] = NULL;
		}
		size_t k = xf_longest(tok, n);
		char *eq = strchr(tok[k], '=');
		char *t = sg_asprintf("%.*s=[UNAVAILABLE]", (int)(eq - tok[k]), tok[k]);
		free(tok[k]);
		tok[k] = t;
	}
	for (size_t i = 0; i < n; i++)
		free(tok[i]);
	return nl;
}

static char *token_at(const char *p)
{
	size_t n = strcspn(p, " \n\r\t");
	return n > 0 ? sg_strndup(p, n) : NULL;
}

char *sg_relay_queued_as(const char *text, bool lmtp)
{
	const char *p;

	if (text == NULL)
		return NULL;
	p = strcasestr(text, "queued as ");
	if (p != NULL)
		return token_at(p + strlen("queued as "));
	/* Dovecot LMTP: "2.0.0 <rcpt> ID Saved". */
	if (lmtp && (p = strstr(text, "> ")) != NULL && strstr(p, " Saved") != NULL)
		return token_at(p + 2);
	return NULL;
}
