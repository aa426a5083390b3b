/* The transform stage between receiving a message and relaying it: the seam
 * where policy and sealing plug in. A transform runs on a worker thread and
 * splits the recipients into groups, each with the bytes to relay for it
 * (the original, or a sealed copy), or refuses recipients with a reply. */
#ifndef SG_GATEWAY_TRANSFORM_H
#define SG_GATEWAY_TRANSFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/envelope.h"
#include "util/error.h"

struct sg_spool;

/* The role of the listener a message came in on (README, "Where sealgate
 * sits"): each role has its own transform. */
enum sg_role {
	SG_ROLE_INBOUND = 0, /* mail from outside: verify, decrypt domain mail, never sign */
	SG_ROLE_OUTBOUND,    /* authenticated submission: policy, seal, sign */
	SG_ROLE_DELIVER,     /* local delivery: seal at rest for the mailbox owner */
	SG_ROLE_COUNT
};

/* Where a group's bytes go next. */
enum sg_route {
	SG_ROUTE_RELAY = 0,  /* the next hop (`relay`) */
	SG_ROUTE_TLS_ONLY,   /* the reinjection listener that enforces TLS (`relay_tls_only`) */
	SG_ROUTE_DELIVER,    /* the mailbox server's LMTP (`deliver_lmtp`, Dovecot) */
	SG_ROUTE_COUNT
};

const char *sg_role_name(enum sg_role role);
const char *sg_route_name(enum sg_route route);

struct sg_transform_group {
	size_t *rcpts;          /* indices into env->rcpts; owned */
	size_t n_rcpts;
	struct sg_spool *msg;   /* owned; NULL: relay the original message */
	char *treatment;        /* for the log ("pass", "e2e", ...); owned */
	enum sg_route route;    /* SG_ROUTE_RELAY unless set */
};

struct sg_transform_out {
	struct sg_transform_group *groups; /* owned */
	size_t n_groups;
	/* Per envelope recipient, or NULL: code 0 if it is in a group, else
	 * its final reply: 4xx/5xx with the reason to refuse it, or 2xx when
	 * the transform itself delivered it (e.g. into a Maildir, fsynced).
	 * Owned; env->n_rcpts long (sg_transform_answer() allocates it). */
	struct sg_reply *answered;
};

struct sg_transform {
	const char *name;
	/* Fill out (zeroed by the caller). 1 on success; -1 on an internal
	 * failure (every recipient then gets 451 4.3.0 with err's text). Must
	 * never place a recipient whose policy demands protection in a group
	 * with unprotected bytes. */
	int (*run)(void *ctx, const struct sg_envelope *env, struct sg_spool *msg,
		   struct sg_transform_out *out, struct sg_error *err);
	void *ctx;
	/* run() does no crypto, disk or look-up work: it may run on the event
	 * loop itself, saving the worker hand-off. */
	bool cheap;
	/* Optional: the same, decided per message from its header section
	 * (must itself be cheap, and thread-safe against run()). */
	bool (*cheap_for)(void *ctx, const struct sg_envelope *env, const struct sg_spool *msg);
};

/* The identity transform: every recipient in one group, bytes unchanged. */
extern const struct sg_transform sg_transform_pass;

/* Helpers for transforms. */
struct sg_transform_group *sg_transform_add_group(struct sg_transform_out *out,
						  const char *treatment, struct sg_spool *msg);
void sg_transform_group_add_rcpt(struct sg_transform_group *g, size_t idx);
/* Give recipient idx its final reply (see answered). */
void sg_transform_answer(struct sg_transform_out *out, size_t n_rcpts, size_t idx, int code,
			 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void sg_transform_out_clear(struct sg_transform_out *out, size_t n_rcpts);

#endif
