/* Policy rules: the line parser (table of conditions and modifiers) and
 * the first-match evaluation. */
#include "policy/rules.h"
#include "util/buf.h"
#include "util/mem.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RULES_FILE_MAX (4u * 1024 * 1024)
#define RULES_MAX 100000u

static const char *const treatment_names[SG_TREAT_COUNT] = {
	"e2e", "domain", "tls-only", "portal", "pass", "reject",
};

const char *sg_treatment_name(enum sg_treatment t)
{
	return t < SG_TREAT_COUNT ? treatment_names[t] : "?";
}

const char *sg_missing_name(enum sg_missing m)
{
	static const char *const names[] = { "default", "reject", "defer", "tls-only", "pass", "domain" };
	return m <= SG_MISSING_DOMAIN ? names[m] : "?";
}

/* ---- tokens ---- */

struct token {
	char *key;   /* "to" in to=..., or the bare word */
	char *value; /* NULL for a bare word */
};

static void token_clear(struct token *t)
{
	free(t->key);
	free(t->value);
	t->key = t->value = NULL;
}

/* A double-quoted value with \" and \\ escapes. */
static int read_quoted(const char **pp, const char *end, char **value_r, struct sg_error *err)
{
	const char *p = *pp + 1;
	struct sg_buf b;
	int ret = -1;

	sg_buf_init(&b, 4096);
	for (; p < end && *p != '"'; p++) {
		if (*p == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\'))
			p++;
		if (!sg_buf_append(&b, p, 1)) {
			sg_error_set(err, "quoted value too long");
			goto out;
		}
	}
	if (p == end) {
		sg_error_set(err, "unterminated quoted value");
		goto out;
	}
	*pp = p + 1;
	*value_r = (char *)sg_buf_steal(&b, NULL);
	if (*value_r == NULL)
		*value_r = sg_strdup("");
	ret = 1;
out:
	sg_buf_free(&b);
	return ret;
}

/* Next token of the line [*pp, end): 1 token, 0 end of line (or comment). */
static int next_token(const char **pp, const char *end, struct token *t, struct sg_error *err)
{
	const char *p = *pp, *k;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p == '#') {
		*pp = end;
		return 0;
	}
	k = p;
	while (p < end && *p != ' ' && *p != '\t' && *p != '=' && *p != '"')
		p++;
	if (p < end && *p == '"') {
		sg_error_set(err, "unexpected '\"' (quote values: key=\"...\")");
		return -1;
	}
	t->key = sg_strndup(k, (size_t)(p - k));
	if (p < end && *p == '=') {
		p++;
		if (p < end && *p == '"') {
			if (read_quoted(&p, end, &t->value, err) < 0)
				goto fail;
			if (p < end && *p != ' ' && *p != '\t') {
				sg_error_set(err, "text after a closing quote");
				goto fail;
			}
		} else {
			const char *v = p;
			while (p < end && *p != ' ' && *p != '\t')
				p++;
			if (memchr(v, '"', (size_t)(p - v)) != NULL) {
				sg_error_set(err, "'\"' inside an unquoted value");
				goto fail;
			}
			t->value = sg_strndup(v, (size_t)(p - v));
		}
		if (*t->value == '\0') {
			sg_error_set(err, "%s: empty value", t->key);
			goto fail;
		}
	}
	if (*t->key == '\0') {
		sg_error_set(err, "missing name before '='");
		goto fail;
	}
	*pp = p;
	return 1;
fail:
	token_clear(t);
	return -1;
}

/* ---- conditions and modifiers (tables) ---- */

static int set_header(struct sg_policy_rule *r, const char *v, struct sg_error *err)
{
	const char *colon = strchr(v, ':');
	if (colon == NULL || colon == v) {
		sg_error_set(err, "header: expected \"Name: value\"");
		return -1;
	}
	for (const char *c = v; c < colon; c++) {
		/* RFC 5322 s3.6.8: printable ASCII except ':' */
		if (*c <= ' ' || *c > '~') {
			sg_error_set(err, "header: bad field name");
			return -1;
		}
	}
	const char *val = colon + 1;
	while (*val == ' ' || *val == '\t')
		val++;
	if (*val == '\0') {
		sg_error_set(err, "header: empty value (use * to match any)");
		return -1;
	}
	r->header_name = sg_strndup(v, (size_t)(colon - v));
	r->header_value = sg_strdup(val);
	return 1;
}

static int set_glob(char **field, const char *v, struct sg_error *err)
{
	(void)err;
	*field = sg_strdup(v);
	return 1;
}

static int set_cond(struct sg_policy_rule *r, const char *key, const char *v, struct sg_error *err)
{
	char **field;
	if (strcmp(key, "to") == 0)
		field = &r->to;
	else if (strcmp(key, "from") == 0)
		field = &r->from;
	else if (strcmp(key, "subject") == 0)
		field = &r->subject;
	else if (strcmp(key, "header") == 0)
		field = &r->header_name;
	else {
		sg_error_set(err, "unknown condition '%s' (to, from, subject, header)", key);
		return -1;
	}
	if (*field != NULL) {
		sg_error_set(err, "%s: given twice in one rule", key);
		return -1;
	}
	if (field == &r->header_name)
		return set_header(r, v, err);
	return set_glob(field, v, err);
}

/* Find v in a "|" list: index, or -1. */
static int pick(const char *list, const char *v)
{
	size_t vlen = strlen(v);
	int i = 0;
	for (const char *p = list; *p != '\0'; i++) {
		size_t n = strcspn(p, "|");
		if (n == vlen && strncmp(p, v, n) == 0)
			return i;
		p += n + (p[n] == '|');
	}
	return -1;
}

static int set_modifier(struct sg_policy_rule *r, const char *key, const char *v,
			struct sg_error *err)
{
	static const struct {
		const char *name, *values;
		unsigned treatments; /* bit per treatment it applies to */
	} mods[] = {
		{ "missing", "reject|defer|tls-only|pass|domain", 1u << SG_TREAT_E2E | 1u << SG_TREAT_DOMAIN },
		{ "prefer", "pgp|smime", 1u << SG_TREAT_E2E },
		{ "sign", "no|yes", 1u << SG_TREAT_E2E | 1u << SG_TREAT_PASS | 1u << SG_TREAT_TLS_ONLY },
		{ "text", NULL, 1u << SG_TREAT_REJECT },
	};
	size_t i;
	int idx = 0;

	for (i = 0; i < sizeof(mods) / sizeof(mods[0]); i++)
		if (strcmp(mods[i].name, key) == 0)
			break;
	if (i == sizeof(mods) / sizeof(mods[0])) {
		sg_error_set(err, "unknown modifier '%s' (missing, prefer, sign, text)", key);
		return -1;
	}
	if (!(mods[i].treatments & (1u << r->treatment))) {
		sg_error_set(err, "%s= does not apply to %s", key, sg_treatment_name(r->treatment));
		return -1;
	}
	if (mods[i].values != NULL && (idx = pick(mods[i].values, v)) < 0) {
		sg_error_set(err, "%s: '%s' is not one of %s", key, v, mods[i].values);
		return -1;
	}
	switch (i) {
	case 0:
		if (r->missing)
			goto twice;
		r->missing = (enum sg_missing)(idx + 1);
		if (r->missing == SG_MISSING_DOMAIN && r->treatment != SG_TREAT_E2E) {
			sg_error_set(err, "missing=domain applies to e2e only");
			return -1;
		}
		break;
	case 1: if (r->prefer) goto twice; r->prefer = (enum sg_prefer)(idx + 1); break;
	case 2: if (r->sign) goto twice; r->sign = (enum sg_sign)(idx + 1); break;
	default:
		if (r->text != NULL)
			goto twice;
		for (const char *c = v; *c != '\0'; c++) {
			/* It becomes an SMTP reply: no CR/LF, printable. */
			if ((unsigned char)*c < ' ' || *c == 0x7f) {
				sg_error_set(err, "text: control character");
				return -1;
			}
		}
		r->text = sg_strdup(v);
	}
	return 1;
twice:
	sg_error_set(err, "%s: given twice in one rule", key);
	return -1;
}

static void rule_clear(struct sg_policy_rule *r)
{
	free(r->to);
	free(r->from);
	free(r->subject);
	free(r->header_name);
	free(r->header_value);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

/* One line: CONDITION... TREATMENT [MODIFIER...]. 1 rule, 0 blank, -1. */
static int parse_line(const char *p, const char *end, struct sg_policy_rule *r,
		      struct sg_error *err)
{
	struct token t = { NULL, NULL };
	bool any = false, have_cond = false, have_treat = false;
	int n;

	memset(r, 0, sizeof(*r));
	while ((n = next_token(&p, end, &t, err)) > 0) {
		int ok = 1;
		if (have_treat) {
			if (t.value == NULL) {
				sg_error_set(err, "'%s' after the treatment (modifiers are key=value)", t.key);
				ok = -1;
			} else {
				ok = set_modifier(r, t.key, t.value, err);
			}
		} else if (t.value != NULL) {
			ok = any ? (sg_error_set(err, "'*' matches everything: no other condition"), -1)
				 : set_cond(r, t.key, t.value, err);
			have_cond = true;
		} else if (strcmp(t.key, "*") == 0) {
			if (have_cond || any) {
				sg_error_set(err, "'*' matches everything: no other condition");
				ok = -1;
			}
			any = true;
		} else {
			int ti = pick("e2e|domain|tls-only|portal|pass|reject", t.key);
			if (ti < 0) {
				sg_error_set(err, "unknown treatment '%s' (e2e, domain, tls-only, portal, pass, reject)",
					     t.key);
				ok = -1;
			} else if (!have_cond && !any) {
				sg_error_set(err, "%s: a rule needs a condition first (or '*')", t.key);
				ok = -1;
			}
			r->treatment = (enum sg_treatment)ti;
			have_treat = true;
		}
		token_clear(&t);
		if (ok < 0)
			goto fail;
	}
	if (n < 0)
		goto fail;
	if (!have_cond && !any && !have_treat)
		return 0;
	if (!have_treat) {
		sg_error_set(err, "no treatment (e2e, domain, tls-only, portal, pass, reject)");
		goto fail;
	}
	return 1;
fail:
	rule_clear(r);
	return -1;
}

int sg_policy_rules_parse(const char *name, const char *text, size_t len,
			  struct sg_policy_rules **rules_r, struct sg_error *err)
{
	struct sg_policy_rules *rs = sg_calloc(1, sizeof(*rs));
	const char *p = text, *end = text + len;
	unsigned line = 0;

	rs->name = sg_strdup(name);
	*rules_r = NULL;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		struct sg_policy_rule r;
		line++;
		if (le > p && le[-1] == '\r')
			le--;
		for (const char *c = p; c < le; c++) {
			if (*c == '\0' || (*c != '\t' && (unsigned char)*c < ' ')) {
				sg_error_set(err, "%s:%u: control character in a rule", name, line);
				goto fail;
			}
		}
		int n = parse_line(p, le, &r, err);
		if (n < 0) {
			sg_error_prefix(err, "%s:%u", name, line);
			goto fail;
		}
		if (n > 0) {
			if (rs->n == RULES_MAX) {
				sg_error_set(err, "%s:%u: more than %u rules", name, line, RULES_MAX);
				rule_clear(&r);
				goto fail;
			}
			r.line = line;
			rs->rules = sg_reallocarray(rs->rules, rs->n + 1, sizeof(*rs->rules));
			rs->rules[rs->n++] = r;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	*rules_r = rs;
	return 1;
fail:
	sg_policy_rules_free(&rs);
	return -1;
}

int sg_policy_rules_load(const char *path, struct sg_policy_rules **rules_r, struct sg_error *err)
{
	FILE *f = fopen(path, "rb");
	struct sg_buf b;
	unsigned char chunk[4096];
	size_t n;
	int ret = -1;

	*rules_r = NULL;
	sg_buf_init(&b, RULES_FILE_MAX);
	if (f == NULL) {
		sg_error_set(err, "%s: %s", path, strerror(errno));
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (!sg_buf_append(&b, chunk, n)) {
			sg_error_set(err, "%s: larger than %u bytes", path, RULES_FILE_MAX);
			goto out;
		}
	}
	if (ferror(f)) {
		sg_error_set(err, "%s: read error", path);
		goto out;
	}
	ret = sg_policy_rules_parse(path, (const char *)b.data, b.len, rules_r, err);
out:
	if (f != NULL)
		fclose(f);
	sg_buf_free(&b);
	return ret;
}

void sg_policy_rules_free(struct sg_policy_rules **rsp)
{
	struct sg_policy_rules *rs = *rsp;
	if (rs == NULL)
		return;
	for (size_t i = 0; i < rs->n; i++)
		rule_clear(&rs->rules[i]);
	free(rs->rules);
	free(rs->name);
	free(rs);
	*rsp = NULL;
}

/* ---- matching ---- */

/* An address glob; without '@' it is matched against the domain only. */
static bool addr_match(const char *glob, const char *addr)
{
	if (strcmp(glob, "<>") == 0)
		return *addr == '\0';
	if (strchr(glob, '@') == NULL) {
		const char *at = strrchr(addr, '@');
		return at != NULL && fnmatch(glob, at + 1, FNM_CASEFOLD) == 0;
	}
	return fnmatch(glob, addr, FNM_CASEFOLD) == 0;
}

static bool subject_match(const char *tag, const struct sg_msg_view *v)
{
	struct sg_msg_field f;
	bool ok = false;
	if (v == NULL || sg_msg_find_field(v, "Subject", &f) != 1)
		return false;
	char *s = sg_msg_field_value(&f);
	ok = strcasestr(s, tag) != NULL;
	free(s);
	return ok;
}

static bool header_match(const struct sg_policy_rule *r, const struct sg_msg_view *v)
{
	struct sg_msg_field f;
	size_t pos = 0;
	if (v == NULL)
		return false;
	while (sg_msg_next_field(v, &pos, &f) == 1) {
		if (!sg_msg_field_is(&f, r->header_name))
			continue;
		char *s = sg_msg_field_value(&f);
		bool ok = fnmatch(r->header_value, s, FNM_CASEFOLD) == 0;
		free(s);
		if (ok)
			return true;
	}
	return false;
}

const struct sg_policy_rule *sg_policy_rules_match(const struct sg_policy_rules *rs,
						   const char *sender, const char *rcpt,
						   const struct sg_msg_view *hdr)
{
	if (rs == NULL)
		return NULL;
	for (size_t i = 0; i < rs->n; i++) {
		const struct sg_policy_rule *r = &rs->rules[i];
		if (r->to != NULL && !addr_match(r->to, rcpt))
			continue;
		if (r->from != NULL && !addr_match(r->from, sender))
			continue;
		if (r->subject != NULL && !subject_match(r->subject, hdr))
			continue;
		if (r->header_name != NULL && !header_match(r, hdr))
			continue;
		return r;
	}
	return NULL;
}
