/* Policy rules: a declarative file of one rule per line, first match wins,
 * each giving a recipient one treatment (doc/policy.md). Parse errors are
 * "file:line: message"; matching is pure (no keys, no I/O). */
#ifndef SG_POLICY_RULES_H
#define SG_POLICY_RULES_H

#include <stddef.h>

#include "mime/message.h"
#include "util/error.h"

enum sg_treatment {
	SG_TREAT_E2E = 0,  /* the recipient's own key (OpenPGP or S/MIME) */
	SG_TREAT_DOMAIN,   /* the recipient domain's key ([domain]; not built yet) */
	SG_TREAT_TLS_ONLY, /* route SG_ROUTE_TLS_ONLY, bytes unchanged */
	SG_TREAT_PORTAL,   /* hold for the web portal (not built yet) */
	SG_TREAT_PASS,     /* relay unchanged */
	SG_TREAT_REJECT,   /* 5.7.x with the rule's text */
	SG_TREAT_COUNT
};

/* What to do when e2e/domain has no usable key. DEFAULT: the configured
 * policy_missing_key (reject or defer). */
enum sg_missing { SG_MISSING_DEFAULT = 0, SG_MISSING_REJECT, SG_MISSING_DEFER,
		  SG_MISSING_TLS_ONLY, SG_MISSING_PASS,
		  SG_MISSING_DOMAIN /* e2e: the recipient domain's key instead ([domain]) */ };
/* Sign with the sender's key? DEFAULT: the configured policy_sign. */
enum sg_sign { SG_SIGN_DEFAULT = 0, SG_SIGN_NO, SG_SIGN_YES };
/* Which kind of key to prefer when the recipient has both. */
enum sg_prefer { SG_PREFER_DEFAULT = 0, SG_PREFER_PGP, SG_PREFER_SMIME };

struct sg_policy_rule {
	char *to;            /* recipient glob ("*@b.test"; no '@': domain glob), or NULL */
	char *from;          /* envelope sender glob ("<>": the null sender), or NULL */
	char *subject;       /* tag the Subject contains (case-insensitive), or NULL */
	char *header_name;   /* a header field... */
	char *header_value;  /* ...whose value matches this glob (case-insensitive) */
	enum sg_treatment treatment;
	enum sg_missing missing;
	enum sg_sign sign;
	enum sg_prefer prefer;
	char *text;          /* reject: the reply text, or NULL */
	unsigned line;       /* where it was defined */
};

struct sg_policy_rules {
	char *name;          /* the file name, for "file:line" */
	struct sg_policy_rule *rules;
	size_t n;
};

const char *sg_treatment_name(enum sg_treatment t);
const char *sg_missing_name(enum sg_missing m);

/* Parse text (name is used in messages and copied). 1 with *rules_r
 * (owned), or -1 with "name:line: message" in err. */
int sg_policy_rules_parse(const char *name, const char *text, size_t len,
			  struct sg_policy_rules **rules_r, struct sg_error *err) SG_WARN_UNUSED;
int sg_policy_rules_load(const char *path, struct sg_policy_rules **rules_r,
			 struct sg_error *err) SG_WARN_UNUSED;
void sg_policy_rules_free(struct sg_policy_rules **rules);

/* The first rule that matches recipient rcpt of a message from sender
 * (envelope, "" for the null sender) whose header block is hdr (may be
 * NULL: no header conditions match); NULL if none does. */
const struct sg_policy_rule *sg_policy_rules_match(const struct sg_policy_rules *rules,
						   const char *sender, const char *rcpt,
						   const struct sg_msg_view *hdr);

#endif
