/* SMTP command line parsing (RFC 5321 4.1): verb and arguments, MAIL/RCPT
 * paths and ESMTP parameters, XFORWARD attributes. Pure functions. */
#ifndef SG_SMTP_CMD_H
#define SG_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/envelope.h"

/* Split a command line (without CRLF) into verb and arguments. The verb is
 * borrowed from line up to verb_len; *args_r points into line (after the
 * spaces that follow the verb; "" if none). 1, or 0 for a line that is
 * not a command (empty, or starting with a space). */
int sg_smtp_split(const char *line, size_t *verb_len_r, const char **args_r);

struct sg_smtp_path {
	char *addr;    /* without brackets, source route dropped; "" for <> */
	char *params;  /* raw parameters after the path, NULL if none */
	bool addr_8bit; /* the address has non-ASCII bytes (needs SMTPUTF8) */
};

/* Parse "FROM:<addr> params" (keyword "FROM") or "TO:<addr> params" from a
 * MAIL/RCPT argument string. 1 ok (path filled, owned by the caller), 0 no
 * "KEYWORD:" prefix, -1 bad address syntax (the reply is the caller's: 501
 * 5.1.7 for MAIL, 501 5.1.3 for RCPT), -2 bad parameter syntax. The null
 * path <> is allowed only with allow_null; a bare "Postmaster" (RFC 5321
 * 4.1.1.3) only with allow_postmaster. */
int sg_smtp_parse_path(const char *args, const char *keyword, bool allow_null,
		       bool allow_postmaster, struct sg_smtp_path *path_r);
void sg_smtp_path_clear(struct sg_smtp_path *path);

struct sg_mail_opts {
	uint64_t size;  /* SIZE=, 0 if not given */
	bool body_8bit, smtputf8;
};

/* Check MAIL parameters (may be NULL). 1 ok, or 0 with reply_r set (555
 * 5.5.4 unknown, 501 5.5.4 bad value, 552 5.3.4 SIZE too big when
 * max_size > 0). */
int sg_smtp_mail_params(const char *params, size_t max_size, struct sg_mail_opts *opts_r,
			struct sg_reply *reply_r);
/* Check RCPT parameters (NOTIFY, ORCPT). 1, or 0 with reply_r set. */
int sg_smtp_rcpt_params(const char *params, struct sg_reply *reply_r);

/* Apply "NAME=value ADDR=value ..." (Postfix XFORWARD_README) to xf:
 * xtext-decoded, "[UNAVAILABLE]"/"[TEMPUNAVAIL]" unset the attribute.
 * 1, or 0 with reply_r set (501 5.5.4); xf is unchanged then. */
int sg_smtp_parse_xforward(const char *args, struct sg_xforward *xf, struct sg_reply *reply_r);

#endif
