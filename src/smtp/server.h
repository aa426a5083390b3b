/* The SMTP/LMTP protocol engine (RFC 5321, RFC 2033) on libevent. It reads
 * commands and DATA, enforces the limits, and hands each complete
 * transaction to its caller through callbacks; it never decides what
 * happens to a message (that is gateway/'s job), as Dovecot's lib-smtp
 * server does with smtp_server_callbacks. */
#ifndef SG_SMTP_SERVER_H
#define SG_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/envelope.h"
#include "util/error.h"

struct event_base;
struct ssl_ctx_st;
struct sg_spool;

enum sg_smtp_proto { SG_PROTO_SMTP, SG_PROTO_LMTP };

struct sg_smtp_settings {
	enum sg_smtp_proto proto;
	const char *hostname;        /* greeting, EHLO reply; borrowed */
	size_t max_line;             /* longest command line and DATA line accepted,
				      * counting its CRLF (RFC 5321 4.5.3.1.4/6); 0: 1000 */
	size_t max_message_size;     /* advertised with SIZE; 552 5.3.4 beyond */
	unsigned max_recipients;     /* 452 4.5.3 beyond; 0: no cap */
	unsigned max_sessions;       /* accept() pauses at the cap; 0: no cap */
	unsigned max_errors;         /* 421 and close after this many bad commands; 0: never */
	unsigned command_timeout_s;  /* idle between commands; 0: none */
	unsigned data_timeout_s;     /* idle during DATA; 0: none */
	const char *spool_dir;       /* borrowed */
	size_t spool_mem_max;        /* larger messages go to a temp file */
	struct ssl_ctx_st *tls_ctx;  /* borrowed; NULL: no STARTTLS (see smtp/tls.h) */
	bool xforward;               /* accept XFORWARD from this listener's clients */
};

struct sg_smtp_server;
struct sg_smtp_txn;

struct sg_smtp_callbacks {
	/* A transaction's DATA is complete and spooled. The callee must
	 * eventually call sg_smtp_txn_finish() once, from the event loop's
	 * thread (now or later), unless abort() is called first. */
	void (*data)(void *ctx, struct sg_smtp_txn *txn);
	/* The client went away (or the server is being freed) while data()
	 * work was pending: the callee stops, and must not call
	 * sg_smtp_txn_finish(); txn is freed when this returns. */
	void (*abort)(void *ctx, struct sg_smtp_txn *txn);
	/* Optional: decide on a recipient at RCPT time. Return 1 to accept,
	 * or 0 after filling reply_r with a 4xx/5xx. NULL accepts all. */
	int (*rcpt)(void *ctx, const struct sg_envelope *env, const char *addr,
		    struct sg_reply *reply_r);
	/* Optional: the last session ended after sg_smtp_server_shutdown(). */
	void (*drained)(void *ctx);
};

/* set and cb are copied (the strings they point to are borrowed). */
struct sg_smtp_server *sg_smtp_server_new(struct event_base *base,
					  const struct sg_smtp_settings *set,
					  const struct sg_smtp_callbacks *cb, void *ctx);
/* Bind and listen on "ADDR:PORT" ("[v6]:PORT" too). 1 or -1. */
int sg_smtp_server_listen(struct sg_smtp_server *srv, const char *addr_port,
			  struct sg_error *err) SG_WARN_UNUSED;
/* Listen on an already bound socket (taken over). */
int sg_smtp_server_listen_fd(struct sg_smtp_server *srv, int fd, struct sg_error *err)
	SG_WARN_UNUSED;
/* Stop accepting; idle sessions get 421 4.3.2 and close; sessions in a
 * transaction finish it first. drained() is called when none are left. */
void sg_smtp_server_shutdown(struct sg_smtp_server *srv);
unsigned sg_smtp_server_sessions(const struct sg_smtp_server *srv);
void sg_smtp_server_free(struct sg_smtp_server **srv);

/* Accessors for a transaction handed to data(); all borrowed from txn. */
const struct sg_envelope *sg_smtp_txn_envelope(const struct sg_smtp_txn *txn);
struct sg_spool *sg_smtp_txn_spool(struct sg_smtp_txn *txn);
/* Answer the DATA. LMTP: n == number of accepted recipients, replies in
 * envelope order. SMTP: n == 1. The replies are copied. */
void sg_smtp_txn_finish(struct sg_smtp_txn *txn, const struct sg_reply *replies, size_t n);

#endif
