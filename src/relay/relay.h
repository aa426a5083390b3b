/* The next-hop client: sends a finished message over SMTP or LMTP to the
 * reinjection listener (or Dovecot's LMTP), with connection reuse and
 * PIPELINING, and reports the next hop's per-recipient answers. Runs on
 * the event loop; never blocks. */
#ifndef SG_RELAY_RELAY_H
#define SG_RELAY_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/envelope.h"
#include "smtp/server.h" /* enum sg_smtp_proto */

struct event_base;
struct sg_spool;

struct sg_relay_settings {
	enum sg_smtp_proto proto;   /* what the next hop speaks */
	const char *host;           /* borrowed */
	const char *port;           /* borrowed */
	const char *helo_name;      /* borrowed */
	unsigned connect_timeout_s;
	unsigned command_timeout_s; /* per reply, before DATA's end */
	unsigned data_done_timeout_s; /* for the reply(ies) to the final "." */
	unsigned max_idle;          /* idle connections kept for reuse */
	unsigned idle_timeout_s;    /* an idle connection is closed (QUIT) after this */
	bool xforward;              /* send XFORWARD when the next hop offers it */
};

struct sg_relay_result {
	/* One reply per envelope recipient, in envelope order: the RCPT reply
	 * for those the next hop refused, else its answer to the DATA (LMTP:
	 * that recipient's). Connection failures and timeouts become
	 * 451 4.4.1 / 4.4.2 with the reason. */
	struct sg_reply *replies;
	size_t n;
	char *queued_as;  /* next hop's queue ID from "250 ... queued as X", or NULL */
	char *detail;     /* "127.0.0.1:10026: ..." for the log line */
};

/* Notes on behaviour (relay.c):
 * - The next hop's replies are passed on verbatim; our own failures are
 *   451 4.4.1 (unreachable: DNS, refused, connect timeout, bad greeting),
 *   451 4.4.2 (reply timeout, connection lost before the final reply),
 *   550 5.6.7 (SMTPUTF8 needed, not offered), 552 5.3.4 (above the next
 *   hop's SIZE).
 * - host should be an address: a name is resolved with a blocking
 *   getaddrinfo() (fine for /etc/hosts, stalls the loop on slow DNS), and
 *   only its first address is tried.
 * - At most one retry, on a fresh connection, when a pooled connection
 *   turns out dead before answering MAIL; never after the final ".".
 * - The message is queued to the socket by reference into the spool's
 *   view (at most ~512 KiB at a time), never copied as a whole. */
struct sg_relay;
struct sg_relay_req;

/* res is borrowed for the duration of the call. */
typedef void sg_relay_done_cb(void *ctx, const struct sg_relay_result *res);

struct sg_relay *sg_relay_new(struct event_base *base, const struct sg_relay_settings *set);
/* Send prepend (header lines ending in CRLF, e.g. our Received:, may be
 * NULL) followed by the message in msg. env and msg are borrowed until cb
 * runs or the request is cancelled; prepend is copied. cb is always called
 * later from the event loop, never from inside this call. */
struct sg_relay_req *sg_relay_send(struct sg_relay *relay, const struct sg_envelope *env,
				   const char *prepend, struct sg_spool *msg,
				   sg_relay_done_cb *cb, void *ctx);
/* Abandon a request: its connection is closed without finishing DATA (so
 * the next hop does not take a message we will not acknowledge); cb is
 * not called. Not for a request whose cb is running. */
void sg_relay_cancel(struct sg_relay_req *req);
/* Cancels every request (no callbacks), sends QUIT to idle connections
 * without waiting (best effort) and frees. May be called from a cb. */
void sg_relay_free(struct sg_relay **relay);

#endif
