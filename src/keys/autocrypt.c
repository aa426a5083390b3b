/* Autocrypt headers: parsing (Level 1, 2.1), the DKIM condition for taking
 * one (an Authentication-Results field of a trusted verifier), and the
 * one-header-per-sender rule (2.3). */
#include "keys/autocrypt.h"
#include "keys/keystore.h"
#include "mime/message.h"
#include "util/mem.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Autocrypt keys are small (2.1 recommends a minimal key); the remote
 * chain's blob cap applies again when the key is checked. */
#define KEYDATA_MAX (64 * 1024)

void sg_autocrypt_clear(struct sg_autocrypt *ac)
{
	free(ac->addr);
	free(ac->keydata);
	memset(ac, 0, sizeof(*ac));
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* keydata: base64 with folding whitespace anywhere (2.1). 1 or 0. */
static int decode_keydata(const char *text, struct sg_autocrypt *ac, struct sg_error *err)
{
	size_t n = 0, len = strlen(text);
	char *b = sg_malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)text[i]))
			b[n++] = text[i];
	b[n] = '\0';
	int ok = n > 0 && n % 4 == 0 && n / 4 * 3 <= KEYDATA_MAX;
	if (ok) {
		ac->keydata = sg_malloc(n / 4 * 3 + 1);
		int got = EVP_DecodeBlock(ac->keydata, (const unsigned char *)b, (int)n);
		ok = got > 0;
		/* EVP_DecodeBlock counts '=' padding as zero octets. */
		ac->keylen = ok ? (size_t)got - (b[n - 1] == '=') - (b[n - 2] == '=') : 0;
	}
	free(b);
	if (!ok)
		sg_error_set(err, "keydata is not base64 of at most %d bytes", KEYDATA_MAX);
	return ok;
}

static int set_attr(struct sg_autocrypt *ac, const char *name, const char *val,
		    struct sg_error *err)
{
	if (strcasecmp(name, "addr") == 0) {
		free(ac->addr);
		ac->addr = sg_keys_normalize_addr(val, err);
		return ac->addr != NULL;
	}
	if (strcasecmp(name, "prefer-encrypt") == 0) {
		ac->prefer_mutual = strcmp(val, "mutual") == 0;
		return 1;
	}
	if (strcasecmp(name, "keydata") == 0) {
		free(ac->keydata);
		ac->keydata = NULL;
		return decode_keydata(val, ac, err);
	}
	if (name[0] == '_')     /* non-critical, ignored */
		return 1;
	sg_error_set(err, "unknown critical attribute '%s'", name);
	return 0;
}

int sg_autocrypt_parse(const char *value, struct sg_autocrypt *ac_r, struct sg_error *err)
{
	char *copy = sg_strdup(value), *save = NULL;
	int ok = 1;

	memset(ac_r, 0, sizeof(*ac_r));
	for (char *t = strtok_r(copy, ";", &save); t != NULL && ok; t = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(t, '=');
		if (eq == NULL) {
			if (*trim(t) == '\0')
				continue;
			sg_error_set(err, "attribute without '='");
			ok = 0;
			break;
		}
		*eq = '\0';
		ok = set_attr(ac_r, trim(t), trim(eq + 1), err);
	}
	free(copy);
	if (ok && (ac_r->addr == NULL || ac_r->keydata == NULL)) {
		sg_error_set(err, "no %s attribute", ac_r->addr == NULL ? "addr" : "keydata");
		ok = 0;
	}
	if (!ok)
		sg_autocrypt_clear(ac_r);
	return ok;
}

/* Strip RFC 5322 comments (nested, with quoted-pairs): "(...)" -> " ". */
static void strip_comments(char *s)
{
	int depth = 0;
	char *w = s;
	for (char *p = s; *p != '\0'; p++) {
		if (*p == '\\' && p[1] != '\0' && depth > 0) {
			p++;
			continue;
		}
		if (*p == '(') {
			depth++;
			continue;
		}
		if (*p == ')' && depth > 0) {
			if (--depth == 0)
				*w++ = ' ';
			continue;
		}
		if (depth == 0)
			*w++ = *p;
	}
	*w = '\0';
}

static int aligned(const char *signer, const char *domain)
{
	size_t ls = strlen(signer), ld = strlen(domain);
	if (ls == ld)
		return strcasecmp(signer, domain) == 0;
	return ld > ls && strchr(signer, '.') != NULL && domain[ld - ls - 1] == '.' &&
	       strcasecmp(domain + ld - ls, signer) == 0;
}

/* One resinfo ("dkim=pass header.d=x header.s=y"): 1 if a pass aligned
 * with domain. */
static int resinfo_pass(char *ri, const char *domain)
{
	char *save = NULL;
	int pass = 0, match = 0;
	for (char *t = strtok_r(ri, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
		if (strcasecmp(t, "dkim=pass") == 0)
			pass = 1;
		else if (strncasecmp(t, "header.d=", 9) == 0)
			match |= aligned(t + 9, domain);
		else if (strncasecmp(t, "header.i=", 9) == 0 && strchr(t, '@') != NULL)
			match |= aligned(strchr(t, '@') + 1, domain);
	}
	return pass && match;
}

int sg_autocrypt_dkim_pass(const char *ar_value, const char *authserv_id, const char *domain)
{
	char *v = sg_strdup(ar_value), *save = NULL;
	int ok = 0;

	strip_comments(v);
	/* RFC 8601 2.2: authserv-id [version] ; resinfo ; resinfo ... */
	char *id = strtok_r(v, ";", &save);
	char *idsave = NULL, *tok = id != NULL ? strtok_r(id, " \t", &idsave) : NULL;
	if (tok != NULL && strcasecmp(tok, authserv_id) == 0)
		for (char *ri = strtok_r(NULL, ";", &save); ri != NULL && !ok;
		     ri = strtok_r(NULL, ";", &save))
			ok = resinfo_pass(ri, domain);
	free(v);
	return ok;
}

/* The single From address, lower-case; NULL if there is none or several. */
static char *single_from(const struct sg_msg_view *v)
{
	struct sg_msg_field f;
	if (sg_msg_find_field(v, "From", &f) != 1)
		return NULL;
	char *val = sg_msg_field_value(&f), *a = NULL;
	strip_comments(val);
	if (strchr(val, ',') == NULL) {
		char *lt = strrchr(val, '<'), *gt = lt != NULL ? strchr(lt, '>') : NULL;
		a = lt != NULL && gt != NULL ? sg_strndup(lt + 1, (size_t)(gt - lt - 1))
					      : sg_strdup(trim(val));
	}
	free(val);
	char *norm = a != NULL ? sg_keys_normalize_addr(a, NULL) : NULL;
	free(a);
	return norm;
}

/* Walk the fields once: the DKIM verdict and the Autocrypt header(s) for from. */
static void scan(const struct sg_msg_view *v, const char *authserv_id, const char *from,
		struct sg_autocrypt *ac_r, int *dkim_r, int *count_r)
{
	struct sg_msg_field f;
	size_t pos = 0;
	const char *domain = strrchr(from, '@') + 1;

	while (sg_msg_next_field(v, &pos, &f) == 1) {
		bool ar = sg_msg_field_is(&f, "Authentication-Results");
		if (!ar && !sg_msg_field_is(&f, "Autocrypt"))
			continue;
		char *val = sg_msg_field_value(&f);
		if (ar) {
			*dkim_r |= sg_autocrypt_dkim_pass(val, authserv_id, domain);
		} else {
			struct sg_autocrypt ac;
			struct sg_error perr = SG_ERROR_INIT;
			/* Headers for other addresses are ignored (2.3). */
			if (sg_autocrypt_parse(val, &ac, &perr) == 1 && strcmp(ac.addr, from) == 0 &&
			    ++*count_r == 1)
				*ac_r = ac;
			else
				sg_autocrypt_clear(&ac);
			sg_error_clear(&perr);
		}
		free(val);
	}
}

int sg_autocrypt_from_message(const struct sg_msg_view *v, const char *authserv_id,
			      struct sg_autocrypt *ac_r, struct sg_error *err)
{
	int dkim = 0, count = 0;
	char *from = single_from(v);

	memset(ac_r, 0, sizeof(*ac_r));
	if (from == NULL) {
		sg_error_set(err, "no single From address");
		return 0;
	}
	scan(v, authserv_id, from, ac_r, &dkim, &count);
	int ok = 0;
	if (count == 0)
		sg_error_set(err, "no valid Autocrypt header for %s", from);
	else if (count > 1)
		sg_error_set(err, "%d Autocrypt headers for %s: none taken", count, from);
	else if (!dkim)
		sg_error_set(err, "no DKIM pass for %s from %s", from, authserv_id);
	else
		ok = 1;
	if (!ok)
		sg_autocrypt_clear(ac_r);
	free(from);
	return ok;
}
