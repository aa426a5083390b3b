/* The transform stage between receiving a message and relaying it: the seam
 * where policy and sealing plug in. A transform runs on a worker thread and
 * splits the recipients into groups, each with the bytes to relay for it
 * (the original, or a sealed copy), or refuses recipients with a reply. */
#ifndef SG_GATEWAY_TRANSFORM_H
#define SG_GATEWAY_TRANSFORM_H

#include <stddef.h>

#include "mail/envelope.h"
#include "util/error.h"

struct sg_spool;

struct sg_transform_group {
	size_t *rcpts;          /* indices into env->rcpts; owned */
	size_t n_rcpts;
	struct sg_spool *msg;   /* owned; NULL: relay the original message */
	char *treatment;        /* for the log ("pass", "e2e", ...); owned */
};

struct sg_transform_out {
	struct sg_transform_group *groups; /* owned */
	size_t n_groups;
	/* Per envelope recipient: code 0 if it is in a group, else the reply
	 * that refuses it (4xx/5xx with the reason). Owned, env->n_rcpts long. */
	struct sg_reply *refused;
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
};

/* The identity transform: every recipient in one group, bytes unchanged. */
extern const struct sg_transform sg_transform_pass;

/* Helpers for transforms. */
struct sg_transform_group *sg_transform_add_group(struct sg_transform_out *out,
						  const char *treatment, struct sg_spool *msg);
void sg_transform_group_add_rcpt(struct sg_transform_group *g, size_t idx);
void sg_transform_out_clear(struct sg_transform_out *out, size_t n_rcpts);

#endif
