/* Logging in Postfix's style: "sealgate/serve[pid]: QUEUEID: to=<...>, ...".
 * One line per event, to stderr (with a timestamp) or syslog. Never log a
 * Subject, a body or key material. Postfix's msg.c keeps the three kinds of
 * failure apart and so do we:
 *   a client's bad input -> a protocol reply (and maybe sg_log_info),
 *   a broken environment at start-up -> sg_fatal() (exit 1),
 *   a bug -> sg_panic() (abort with location). */
#ifndef SG_UTIL_LOG_H
#define SG_UTIL_LOG_H

#include "util/error.h"

enum sg_log_target { SG_LOG_STDERR, SG_LOG_SYSLOG };

/* program: "sealgate/serve" etc.; copied. facility: syslog facility name
 * ("mail", "local0"...), only used with SG_LOG_SYSLOG. Returns -1 for an
 * unknown facility name. Safe to call again (SIGHUP). */
int sg_log_open(const char *program, enum sg_log_target target, const char *facility);
void sg_log_set_debug(int on);

void sg_log_debug(const char *fmt, ...) SG_PRINTF(1, 2);
void sg_log_info(const char *fmt, ...) SG_PRINTF(1, 2);
void sg_log_warn(const char *fmt, ...) SG_PRINTF(1, 2);
void sg_log_error(const char *fmt, ...) SG_PRINTF(1, 2);
void sg_fatal(const char *fmt, ...) SG_PRINTF(1, 2) __attribute__((noreturn));
void sg_panic_at(const char *file, int line, const char *fmt, ...) SG_PRINTF(3, 4)
	__attribute__((noreturn));
#define sg_panic(...) sg_panic_at(__FILE__, __LINE__, __VA_ARGS__)
#define sg_assert(x) \
	do { if (!(x)) sg_panic("assertion failed: %s", #x); } while (0)

#endif
