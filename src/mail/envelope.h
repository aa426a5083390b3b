/* The SMTP envelope and reply types shared by the protocol engine (smtp/),
 * the next-hop client (relay/) and the pipeline (gateway/). */
#ifndef SG_MAIL_ENVELOPE_H
#define SG_MAIL_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

/* An SMTP reply: code 250, text "2.0.0 Ok: queued as 4F2A1B". A multi-line
 * reply's lines are joined with '\n' in text (no CR, no code prefixes). */
struct sg_reply {
	int code;
	char *text; /* owned */
};

struct sg_rcpt {
	char *addr;   /* without angle brackets; owned */
	char *params; /* raw ESMTP parameters after the address ("NOTIFY=NEVER ORCPT=..."), or NULL */
};

/* What XFORWARD (Postfix's XFORWARD_README) told us about the original client. */
struct sg_xforward {
	char *name, *addr, *port, *proto, *helo, *ident, *source; /* owned, NULL if not given */
};

struct sg_envelope {
	char *mail_from;    /* reverse path without brackets; "" for the null sender */
	char *mail_params;  /* raw MAIL parameters ("BODY=8BITMIME SIZE=123 RET=HDRS"), or NULL */
	struct sg_rcpt *rcpts;
	size_t n_rcpts;
	bool body_8bit, smtputf8;
	/* The session this transaction came in on. */
	char *helo;          /* as the client gave it */
	char *client_addr;   /* peer IP */
	char *client_port;
	bool tls;            /* STARTTLS was done */
	bool lmtp;           /* LMTP (else SMTP) */
	struct sg_xforward xf;
	char *queue_id;      /* ours, e.g. "4F2A1B7C9D" */
};

void sg_reply_set(struct sg_reply *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void sg_reply_copy(struct sg_reply *dst, const struct sg_reply *src);
void sg_reply_clear(struct sg_reply *r);
/* 2, 4 or 5 (the reply's class), 0 if unset. */
int sg_reply_class(const struct sg_reply *r);

void sg_envelope_add_rcpt(struct sg_envelope *env, const char *addr, const char *params);
/* Free all members and zero the struct (not the struct itself). */
void sg_envelope_clear(struct sg_envelope *env);
void sg_xforward_clear(struct sg_xforward *xf);
/* A deep copy into dst (which must be zeroed or cleared). */
void sg_envelope_copy(struct sg_envelope *dst, const struct sg_envelope *src);

/* Value of an ESMTP parameter keyword (case-insensitive) in a raw parameter
 * string: 1 and *value_r (owned, "" for a keyword without =) if present,
 * 0 if absent. */
int sg_esmtp_param(const char *params, const char *keyword, char **value_r);

#endif
