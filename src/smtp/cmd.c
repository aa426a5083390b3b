/* Command line parsing for the SMTP engine: the grammar of RFC 5321 4.1.2
 * (paths), RFC 1869/6531/3461/1870/6152 parameters, Postfix XFORWARD. */
#include "smtp/cmd.h"
#include "util/mem.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 5321 4.5.3.1.1-3. */
#define MAX_LOCAL 64
#define MAX_DOMAIN 255
#define MAX_PATH 256

int sg_smtp_split(const char *line, size_t *verb_len_r, const char **args_r)
{
	size_t n = strcspn(line, " ");

	if (n == 0)
		return 0;
	*verb_len_r = n;
	line += n;
	while (*line == ' ')
		line++;
	*args_r = line;
	return 1;
}

void sg_smtp_path_clear(struct sg_smtp_path *path)
{
	free(path->addr);
	free(path->params);
	memset(path, 0, sizeof(*path));
}

static bool is_atext(unsigned char c)
{
	/* c != 0: strchr() finds the terminating NUL too. */
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL) || c >= 0x80;
}

static bool is_letdig(unsigned char c)
{
	return isalnum(c) || c >= 0x80; /* RFC 6531: U-labels in a domain */
}

/* Domain = sub-domain *("." sub-domain), or an address literal. Returns
 * the end of what was parsed, NULL on a syntax error. */
static const char *parse_domain(const char *s)
{
	const char *start = s;

	if (*s == '[') {
		/* RFC 5321 4.1.3: dcontent is %d33-90 / %d94-126. */
		for (s++; *s != ']'; s++)
			if ((unsigned char)*s < 33 || (unsigned char)*s > 126 || *s == '[' || *s == '\\')
				return NULL;
		s++;
		return s - start > 2 && (size_t)(s - start) <= MAX_DOMAIN ? s : NULL;
	}
	for (;;) {
		if (!is_letdig((unsigned char)*s))
			return NULL;
		while (is_letdig((unsigned char)*s) || *s == '-')
			s++;
		if (s[-1] == '-')
			return NULL;
		if (*s != '.')
			break;
		s++;
	}
	return (size_t)(s - start) <= MAX_DOMAIN ? s : NULL;
}

/* Local-part = Dot-string / Quoted-string (RFC 5321 4.1.2). */
static const char *parse_local(const char *s)
{
	const char *start = s;

	if (*s == '"') {
		for (s++; *s != '"'; s++) {
			unsigned char c = (unsigned char)*s;
			if (c == '\\') {
				s++;
				if ((unsigned char)*s < 32 || (unsigned char)*s > 126)
					return NULL;
			} else if (c < 32 || c == 127) {
				return NULL; /* also catches the NUL at the end */
			}
		}
		s++;
	} else {
		for (;;) {
			if (!is_atext((unsigned char)*s))
				return NULL;
			while (is_atext((unsigned char)*s))
				s++;
			if (*s != '.')
				break;
			s++;
		}
	}
	/* 64 octets of local part; the quotes of a quoted string do not count. */
	return (size_t)(s - start) <= MAX_LOCAL + (*start == '"' ? 2 : 0) ? s : NULL;
}

/* A-d-l ":" (a source route): RFC 5321 4.1.2 says to accept and ignore it. */
static const char *skip_source_route(const char *s)
{
	const char *p = s;

	if (*p != '@')
		return s;
	for (;;) {
		if (*p++ != '@' || (p = parse_domain(p)) == NULL)
			return NULL;
		if (*p == ':')
			return p + 1;
		if (*p != ',')
			return NULL;
		p++;
	}
}

static bool is_esmtp_keyword(const char *s, size_t n)
{
	if (n == 0 || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 4.1.2);
 * esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 (RFC 6531). */
static bool valid_params(const char *s)
{
	while (*s != '\0') {
		size_t n = strcspn(s, " =");
		if (!is_esmtp_keyword(s, n))
			return false;
		s += n;
		if (*s == '=') {
			const char *v = ++s;
			while (*s != '\0' && *s != ' ') {
				unsigned char c = (unsigned char)*s++;
				if (c < 33 || c == '=' || c == 127)
					return false;
			}
			if (s == v)
				return false;
		}
		while (*s == ' ')
			s++;
	}
	return true;
}

static int parse_mailbox(const char *s, bool allow_postmaster, const char **end_r)
{
	const char *p = parse_local(s);

	if (p == NULL)
		return -1;
	if (*p != '@') {
		if (allow_postmaster && p - s == 10 && strncasecmp(s, "postmaster", 10) == 0) {
			*end_r = p;
			return 1;
		}
		return -1;
	}
	p = parse_domain(p + 1);
	if (p == NULL)
		return -1;
	*end_r = p;
	return 1;
}

int sg_smtp_parse_path(const char *args, const char *keyword, bool allow_null,
		       bool allow_postmaster, struct sg_smtp_path *path_r)
{
	size_t klen = strlen(keyword);
	const char *p = args, *addr, *end;

	memset(path_r, 0, sizeof(*path_r));
	if (strncasecmp(p, keyword, klen) != 0 || p[klen] != ':')
		return 0;
	p += klen + 1;
	while (*p == ' ') /* "MAIL FROM: <a@b>" is common; Postfix takes it too */
		p++;
	if (*p++ != '<')
		return -1;
	if ((addr = skip_source_route(p)) == NULL)
		return -1;
	if (*addr == '>') {
		if (!allow_null || addr != p)
			return -1;
		end = addr;
	} else if (parse_mailbox(addr, allow_postmaster, &end) < 0 || *end != '>') {
		return -1;
	}
	if ((size_t)(end - addr) > MAX_PATH)
		return -1;
	p = end + 1;
	if (*p != '\0' && *p != ' ')
		return -1;
	while (*p == ' ')
		p++;
	size_t plen = strlen(p);
	while (plen > 0 && p[plen - 1] == ' ')
		plen--;
	char *params = plen > 0 ? sg_strndup(p, plen) : NULL;
	if (params != NULL && !valid_params(params)) {
		free(params);
		return -2;
	}
	path_r->addr = sg_strndup(addr, (size_t)(end - addr));
	path_r->params = params;
	for (const char *q = path_r->addr; *q != '\0'; q++)
		if ((unsigned char)*q >= 0x80)
			path_r->addr_8bit = true;
	return 1;
}

/* ---- ESMTP parameters: one table per command. ---- */

struct param_ctx {
	size_t max_size;
	struct sg_mail_opts *opts;
	struct sg_reply *reply;
};

struct param_def {
	const char *name;
	bool has_value; /* a value is required (else none is allowed) */
	int (*check)(const char *value, struct param_ctx *ctx);
};

/* xtext (RFC 3461 4): printable ASCII but "+" and "=", or "+" HEXCHAR HEXCHAR. */
static bool valid_xtext(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '+') {
			if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
				return false;
			s += 2;
		} else if ((unsigned char)*s < 33 || *s == '=') {
			return false; /* >= 0x80 passes: RFC 6533 utf-8-addr-xtext */
		}
	}
	return true;
}

static int bad_value(struct param_ctx *c, const char *name)
{
	sg_reply_set(c->reply, 501, "5.5.4 Bad %s parameter value", name);
	return 0;
}

static int check_size(const char *v, struct param_ctx *c)
{
	uint64_t n = 0;

	if (*v == '\0' || strlen(v) > 19)
		return bad_value(c, "SIZE");
	for (const char *p = v; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return bad_value(c, "SIZE");
		n = n * 10 + (uint64_t)(*p - '0');
	}
	c->opts->size = n;
	/* RFC 1870 6.1: refuse at MAIL what cannot fit. */
	if (c->max_size > 0 && n > c->max_size) {
		sg_reply_set(c->reply, 552, "5.3.4 Message size exceeds fixed limit");
		return 0;
	}
	return 1;
}

static int check_body(const char *v, struct param_ctx *c)
{
	if (strcasecmp(v, "8BITMIME") == 0)
		c->opts->body_8bit = true;
	else if (strcasecmp(v, "7BIT") != 0)
		/* BINARYMIME needs CHUNKING, which we do not offer (RFC 3030). */
		return bad_value(c, "BODY");
	return 1;
}

static int check_smtputf8(const char *v, struct param_ctx *c)
{
	c->opts->smtputf8 = true;
	return 1;
}

static int check_ret(const char *v, struct param_ctx *c)
{
	return strcasecmp(v, "FULL") == 0 || strcasecmp(v, "HDRS") == 0 ? 1 : bad_value(c, "RET");
}

static int check_envid(const char *v, struct param_ctx *c)
{
	return strlen(v) <= 100 && valid_xtext(v) ? 1 : bad_value(c, "ENVID");
}

/* RFC 3461 4.1: "NEVER" alone, or a list of SUCCESS, FAILURE, DELAY. */
static int check_notify(const char *v, struct param_ctx *c)
{
	static const char *const words[] = { "SUCCESS", "FAILURE", "DELAY" };

	if (strcasecmp(v, "NEVER") == 0)
		return 1;
	while (*v != '\0') {
		size_t n = strcspn(v, ",");
		bool ok = false;
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (n == strlen(words[i]) && strncasecmp(v, words[i], n) == 0)
				ok = true;
		if (!ok)
			return bad_value(c, "NOTIFY");
		v += n;
		if (*v == ',' && *++v == '\0')
			return bad_value(c, "NOTIFY");
	}
	return 1;
}

/* RFC 3461 4.2: ORCPT=addr-type ";" xtext. */
static int check_orcpt(const char *v, struct param_ctx *c)
{
	const char *semi = strchr(v, ';');

	if (semi == NULL || semi == v || strlen(v) > 500 || !valid_xtext(semi + 1) || semi[1] == '\0')
		return bad_value(c, "ORCPT");
	for (const char *p = v; p < semi; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return bad_value(c, "ORCPT");
	return 1;
}

static const struct param_def mail_params[] = {
	{ "SIZE", true, check_size },         /* RFC 1870 */
	{ "BODY", true, check_body },         /* RFC 6152 */
	{ "SMTPUTF8", false, check_smtputf8 },/* RFC 6531 */
	{ "RET", true, check_ret },           /* RFC 3461 */
	{ "ENVID", true, check_envid },       /* RFC 3461 */
	{ NULL, false, NULL },
};

static const struct param_def rcpt_params[] = {
	{ "NOTIFY", true, check_notify },     /* RFC 3461 */
	{ "ORCPT", true, check_orcpt },       /* RFC 3461 */
	{ NULL, false, NULL },
};

static int check_params(const char *params, const struct param_def *defs, struct param_ctx *c)
{
	const char *p = params;
	unsigned seen = 0;
	int ret = 0;
	char *tok = NULL;

	while (p != NULL && *p != '\0') {
		size_t n = strcspn(p, " ");
		free(tok);
		tok = sg_strndup(p, n);
		p += n;
		while (*p == ' ')
			p++;
		char *eq = strchr(tok, '=');
		if (eq != NULL)
			*eq++ = '\0';
		size_t i;
		for (i = 0; defs[i].name != NULL; i++)
			if (strcasecmp(tok, defs[i].name) == 0)
				break;
		if (defs[i].name == NULL) {
			/* RFC 5321 4.1.1.11: unrecognised parameter. */
			sg_reply_set(c->reply, 555, "5.5.4 Unsupported option: %s", tok);
			goto out;
		}
		if (seen & (1u << i)) {
			sg_reply_set(c->reply, 501, "5.5.4 Duplicate %s parameter", defs[i].name);
			goto out;
		}
		seen |= 1u << i;
		if (defs[i].has_value != (eq != NULL)) {
			bad_value(c, defs[i].name);
			goto out;
		}
		if (!defs[i].check(eq != NULL ? eq : "", c))
			goto out;
	}
	ret = 1;
out:
	free(tok);
	return ret;
}

int sg_smtp_mail_params(const char *params, size_t max_size, struct sg_mail_opts *opts_r,
			struct sg_reply *reply_r)
{
	struct param_ctx c = { max_size, opts_r, reply_r };

	memset(opts_r, 0, sizeof(*opts_r));
	return check_params(params, mail_params, &c);
}

int sg_smtp_rcpt_params(const char *params, struct sg_reply *reply_r)
{
	struct sg_mail_opts unused;
	struct param_ctx c = { 0, &unused, reply_r };

	return check_params(params, rcpt_params, &c);
}

/* ---- XFORWARD ---- */

static char **xf_field(struct sg_xforward *xf, const char *name, size_t n)
{
	static const struct {
		const char *name;
		size_t off;
	} attrs[] = {
		{ "NAME", offsetof(struct sg_xforward, name) },
		{ "ADDR", offsetof(struct sg_xforward, addr) },
		{ "PORT", offsetof(struct sg_xforward, port) },
		{ "PROTO", offsetof(struct sg_xforward, proto) },
		{ "HELO", offsetof(struct sg_xforward, helo) },
		{ "IDENT", offsetof(struct sg_xforward, ident) },
		{ "SOURCE", offsetof(struct sg_xforward, source) },
	};

	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if (n == strlen(attrs[i].name) && strncasecmp(name, attrs[i].name, n) == 0)
			return (char **)((char *)xf + attrs[i].off);
	return NULL;
}

static int hexval(unsigned char c)
{
	return isdigit(c) ? c - '0' : toupper(c) - 'A' + 10;
}

/* xtext-decode v[0..n); NULL if malformed or it decodes to a control byte
 * (which would only serve to forge log lines or headers). */
static char *xtext_decode(const char *v, size_t n)
{
	char *out = sg_malloc(n + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '+') {
			if (i + 2 >= n || !isxdigit((unsigned char)v[i + 1]) ||
			    !isxdigit((unsigned char)v[i + 2]))
				goto bad;
			c = (unsigned char)(hexval((unsigned char)v[i + 1]) * 16 +
					    hexval((unsigned char)v[i + 2]));
			i += 2;
		}
		if (c < 32 || c == 127)
			goto bad;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

int sg_smtp_parse_xforward(const char *args, struct sg_xforward *xf, struct sg_reply *reply_r)
{
	struct sg_xforward tmp = { 0 };
	const char *p = args;
	int ret = 0;

	if (*p == '\0') {
		sg_reply_set(reply_r, 501, "5.5.4 Syntax: XFORWARD attribute=value...");
		return 0;
	}
	/* Work on a copy: a bad attribute leaves the old values in place. */
	tmp.name = xf->name != NULL ? sg_strdup(xf->name) : NULL;
	tmp.addr = xf->addr != NULL ? sg_strdup(xf->addr) : NULL;
	tmp.port = xf->port != NULL ? sg_strdup(xf->port) : NULL;
	tmp.proto = xf->proto != NULL ? sg_strdup(xf->proto) : NULL;
	tmp.helo = xf->helo != NULL ? sg_strdup(xf->helo) : NULL;
	tmp.ident = xf->ident != NULL ? sg_strdup(xf->ident) : NULL;
	tmp.source = xf->source != NULL ? sg_strdup(xf->source) : NULL;
	while (*p != '\0') {
		size_t n = strcspn(p, " ");
		const char *eq = memchr(p, '=', n);
		char **field = eq != NULL ? xf_field(&tmp, p, (size_t)(eq - p)) : NULL;
		if (field == NULL) {
			sg_reply_set(reply_r, 501, "5.5.4 Bad XFORWARD attribute name: %.*s",
				     (int)(eq != NULL ? (size_t)(eq - p) : n), p);
			goto out;
		}
		size_t vlen = n - (size_t)(eq + 1 - p);
		char *val = xtext_decode(eq + 1, vlen);
		if (val == NULL || *val == '\0') {
			free(val);
			sg_reply_set(reply_r, 501, "5.5.4 Bad XFORWARD attribute value");
			goto out;
		}
		free(*field);
		*field = val;
		if (strcasecmp(val, "[UNAVAILABLE]") == 0 || strcasecmp(val, "[TEMPUNAVAIL]") == 0) {
			free(*field);
			*field = NULL;
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	sg_xforward_clear(xf);
	*xf = tmp;
	memset(&tmp, 0, sizeof(tmp));
	ret = 1;
out:
	sg_xforward_clear(&tmp);
	return ret;
}
