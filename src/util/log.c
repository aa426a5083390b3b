/* Log sink: stderr or syslog, one line per call, thread-safe. */
#include "util/log.h"
#include "util/mem.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char *log_program;
static enum sg_log_target log_target = SG_LOG_STDERR;
static int log_debug;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* getpid() is a system call per line (glibc no longer caches it): keep it,
 * and refresh it in a forked child. */
static pid_t log_pid;
static pthread_once_t log_pid_once = PTHREAD_ONCE_INIT;

static const struct { const char *name; int facility; } facilities[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

int sg_log_open(const char *program, enum sg_log_target target, const char *facility)
{
	int fac = -1;

	if (target == SG_LOG_SYSLOG) {
		for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
			if (strcasecmp(facilities[i].name, facility) == 0)
				fac = facilities[i].facility;
		if (fac < 0)
			return -1;
	}
	pthread_mutex_lock(&log_lock);
	free(log_program);
	log_program = sg_strdup(program);
	if (log_target == SG_LOG_SYSLOG)
		closelog();
	log_target = target;
	if (target == SG_LOG_SYSLOG)
		openlog(log_program, LOG_PID | LOG_NDELAY, fac);
	pthread_mutex_unlock(&log_lock);
	return 1;
}

void sg_log_set_debug(int on)
{
	log_debug = on;
}

static void log_pid_refresh(void)
{
	log_pid = getpid();
}

static void log_pid_init(void)
{
	log_pid_refresh();
	(void)pthread_atfork(NULL, NULL, log_pid_refresh);
}

static void vlog(int prio, const char *label, const char *fmt, va_list ap) SG_PRINTF(3, 0);
static void vlog(int prio, const char *label, const char *fmt, va_list ap)
{
	char *msg;

	/* Not sg_vasprintf(): that calls sg_fatal() on failure, which lands here. */
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = strdup("(out of memory formatting a log line)");
	if (msg == NULL)
		return;

	/* One event, one line: a newline smuggled in through a client's input
	 * must not forge a second log line. */
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	pthread_once(&log_pid_once, log_pid_init);
	pthread_mutex_lock(&log_lock);
	if (log_target == SG_LOG_SYSLOG) {
		syslog(prio, "%s%s", label, msg);
	} else {
		char ts[32];
		struct timespec now;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s[%ld]: %s%s\n", ts, now.tv_nsec / 1000000L,
			log_program != NULL ? log_program : "sealgate", (long)log_pid, label, msg);
		fflush(stderr);
	}
	pthread_mutex_unlock(&log_lock);
	free(msg);
}

#define DEFINE_LOG(name, prio, label) \
	void name(const char *fmt, ...) \
	{ \
		va_list ap; \
		va_start(ap, fmt); \
		vlog(prio, label, fmt, ap); \
		va_end(ap); \
	}

DEFINE_LOG(sg_log_info, LOG_INFO, "")
DEFINE_LOG(sg_log_warn, LOG_WARNING, "warning: ")
DEFINE_LOG(sg_log_error, LOG_ERR, "error: ")

void sg_log_debug(const char *fmt, ...)
{
	va_list ap;
	if (!log_debug)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, "debug: ", fmt, ap);
	va_end(ap);
}

void sg_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_CRIT, "fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}

void sg_panic_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	char where[256];
	snprintf(where, sizeof(where), "panic: %s:%d: ", file, line);
	va_start(ap, fmt);
	vlog(LOG_CRIT, where, fmt, ap);
	va_end(ap);
	abort();
}
