/* The content-filter hook: an external command that sees the plaintext of
 * an outbound message on stdin and answers with its exit code. */
#ifndef SG_POLICY_FILTER_H
#define SG_POLICY_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/error.h"

enum sg_filter_verdict {
	SG_FILTER_ACCEPT = 0, /* exit 0 */
	SG_FILTER_REJECT,     /* exit 1: 554 5.7.1 with the first stdout line */
	SG_FILTER_TEMPFAIL,   /* any other exit, a signal, the time budget, spawn failure */
};

struct sg_filter {
	const char *cmd;     /* run by /bin/sh -c; borrowed */
	unsigned timeout;    /* seconds for the whole run */
	bool rewrite;        /* exit 0 with output: the output replaces the message */
	char *const *envp;   /* the filter's environment; NULL: ours */
	size_t max_output;   /* stdout kept; beyond it: a temporary failure when rewriting, else ignored */
};

/* Run f over msg (borrowed). Returns the verdict; *reason_r (owned, never
 * NULL) says why for REJECT (the filter's first stdout line) and TEMPFAIL
 * (for the log). On ACCEPT with f->rewrite and a non-empty stdout, the
 * output is appended to replaced (else replaced is left empty). Called on
 * a worker thread: it blocks for up to f->timeout seconds. */
enum sg_filter_verdict sg_filter_run(const struct sg_filter *f, const unsigned char *msg, size_t len,
				     struct sg_buf *replaced, char **reason_r);

#endif
