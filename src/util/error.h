/* One error convention for all of sealgate (see doc/STYLE notes in README):
 * functions return -1 on error, 0 for "no / not found", 1 (or a count) for
 * success, and put a human-readable reason into a struct sg_error that each
 * layer may prefix with its own context ("relay: 127.0.0.1:10026: ..."). */
#ifndef SG_UTIL_ERROR_H
#define SG_UTIL_ERROR_H

#include <stdarg.h>

struct sg_error {
	char *msg; /* owned, NULL while no error is set */
};

#define SG_ERROR_INIT { NULL }

#define SG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define SG_WARN_UNUSED __attribute__((warn_unused_result))

/* Replace the message. err may be NULL (the caller does not want a reason). */
void sg_error_set(struct sg_error *err, const char *fmt, ...) SG_PRINTF(2, 3);
/* Add context in front of the existing message: "ctx: old". */
void sg_error_prefix(struct sg_error *err, const char *fmt, ...) SG_PRINTF(2, 3);
/* The message, or "unknown error" when none was set; borrowed from err. */
const char *sg_error_msg(const struct sg_error *err);
void sg_error_clear(struct sg_error *err);

#endif
