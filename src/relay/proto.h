/* The pure parts of the next-hop client, kept apart from the event loop so
 * that unit tests can drive them: reply and EHLO parsing, ESMTP parameter
 * filtering, dot-stuffing, xtext and XFORWARD, queue-ID extraction. */
#ifndef SG_RELAY_PROTO_H
#define SG_RELAY_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/envelope.h"
#include "util/buf.h"
#include "util/error.h"

/* Longest reply we accept from a next hop (all lines together). */
#define SG_RELAY_MAX_REPLY 65536

/* Multi-line reply assembly (RFC 5321 4.2.1): "250-a" "250 b" -> 250 "a\nb". */
struct sg_relay_reply_parser {
	struct sg_buf text;
	int code; /* 0 while no reply is in progress */
};

void sg_relay_reply_parser_init(struct sg_relay_reply_parser *p);
void sg_relay_reply_parser_free(struct sg_relay_reply_parser *p);
/* Feed one line (without CRLF). 1: *reply_r (text owned by the caller) is
 * complete; 0: a continuation line, feed more; -1: malformed (no 3-digit
 * code, codes differ between lines, too long), reason in err. */
int sg_relay_reply_feed(struct sg_relay_reply_parser *p, const char *line, size_t len,
			struct sg_reply *reply_r, struct sg_error *err);

/* Length of a leading enhanced status code (RFC 3463, "2.1.5") in text whose
 * class matches the reply code's class; 0 when there is none. */
size_t sg_relay_enhanced_len(int code, const char *text);
/* Give r a default enhanced status ("4.0.0 ...") when it has none, for a
 * caller that wants uniform replies to its client (the relay itself
 * passes the next hop's replies on verbatim). */
void sg_relay_reply_add_enhanced(struct sg_reply *r);

/* XFORWARD attributes (Postfix XFORWARD_README) as a bit set. */
enum {
	SG_XF_NAME = 1 << 0, SG_XF_ADDR = 1 << 1, SG_XF_PORT = 1 << 2, SG_XF_PROTO = 1 << 3,
	SG_XF_HELO = 1 << 4, SG_XF_IDENT = 1 << 5, SG_XF_SOURCE = 1 << 6,
};

/* What the next hop announced in its EHLO/LHLO reply. */
struct sg_relay_caps {
	bool pipelining, size, eightbitmime, smtputf8, dsn, enhanced, xforward;
	unsigned long size_max; /* 0: no limit announced */
	unsigned xforward_attrs; /* SG_XF_* the next hop accepts */
};

/* ehlo_text: the reply text (lines joined by '\n'; the first is the
 * greeting domain). */
void sg_relay_parse_caps(const char *ehlo_text, struct sg_relay_caps *caps_r);

/* The message needs SMTPUTF8 (RFC 6531) at the next hop. */
bool sg_relay_needs_smtputf8(const struct sg_envelope *env);
/* MAIL FROM parameters for the next hop (owned; "" for none, else with a
 * leading space): only what it supports; SIZE is size, the real one. */
char *sg_relay_mail_params(const struct sg_envelope *env, const struct sg_relay_caps *caps,
			   size_t size);
/* RCPT TO parameters (owned, "" or with a leading space): NOTIFY/ORCPT
 * (RFC 3461) only when DSN is offered, everything else dropped. */
char *sg_relay_rcpt_params(const char *params, const struct sg_relay_caps *caps);

/* Dot-stuffing encoder (RFC 5321 4.5.2) that never copies the input: it
 * cuts the stream into spans to be sent verbatim, each maybe preceded by
 * one inserted '.'. Works across arbitrary chunk boundaries. */
struct sg_dotstuff {
	bool bol;              /* the next byte starts a line */
	unsigned char last[2]; /* the last two bytes of the stream */
	size_t total;          /* bytes of input seen */
};

void sg_dotstuff_init(struct sg_dotstuff *ds);
/* For the input at p (len > 0): returns how many bytes to send verbatim
 * (>= 1), and *dot_r says whether to send a '.' before them. */
size_t sg_dotstuff_span(struct sg_dotstuff *ds, const unsigned char *p, size_t len, bool *dot_r);
/* What ends the DATA: ".\r\n", preceded by a CRLF when the input did not
 * end with one (borrowed, static). */
const char *sg_dotstuff_end(const struct sg_dotstuff *ds);

/* xtext (RFC 3461 4): '+', '=' and bytes outside 33..126 as "+XX". Owned. */
char *sg_xtext_encode(const char *s);
/* The XFORWARD commands for env (each "XFORWARD ...\r\n", at most 512
 * bytes, owned), only with attributes in caps->xforward_attrs. Uses env->xf
 * when it has any attribute, else what we know of our own client. Returns
 * the number of lines (0..2) stored in lines_r[0..1]. */
size_t sg_relay_xforward_lines(const struct sg_envelope *env, const struct sg_relay_caps *caps,
			       char *lines_r[2]);

/* The next hop's queue ID from "... queued as ID" (Postfix), or for LMTP
 * also Dovecot's "2.0.0 <rcpt> ID Saved"; NULL if none. Owned. */
char *sg_relay_queued_as(const char *text, bool lmtp);

#endif
