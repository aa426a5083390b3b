/* The content-filter hook: /bin/sh -c CMD with the message on stdin, stdout
 * collected, the whole run bounded by a time budget (the child's process
 * group is killed when it runs out). */
#include "policy/filter.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define REASON_MAX 200
#define CHUNK 65536

struct run {
	pid_t pid;
	int in, out;              /* our ends: child's stdin (write), stdout (read) */
	const unsigned char *msg;
	size_t len, sent;
	struct sg_buf *output;
	bool overflow;
	struct timespec deadline;
};

static long ms_left(const struct timespec *deadline)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The child: stdin and stdout on the pipes, its own process group (so a
 * timeout kills whatever the shell started), default signal dispositions
 * (we ignore SIGPIPE; exec would pass that on). */
static int spawn(const char *cmd, char *const *envp, struct run *r, char **why_r)
{
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, def;
	char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)cmd, NULL };
	int rc = -1;

	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0) {
		*why_r = sg_asprintf("pipe: %s", strerror(errno));
		close_fd(&pin[0]);
		close_fd(&pin[1]);
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	int e = posix_spawn(&r->pid, "/bin/sh", &fa, &attr, argv, envp != NULL ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pin[0]);
	close(pout[1]);
	if (e != 0) {
		*why_r = sg_asprintf("cannot run /bin/sh: %s", strerror(e));
		close(pin[1]);
		close(pout[0]);
		goto out;
	}
	r->in = pin[1];
	r->out = pout[0];
	fcntl(r->in, F_SETFL, fcntl(r->in, F_GETFL) | O_NONBLOCK);
	fcntl(r->out, F_SETFL, fcntl(r->out, F_GETFL) | O_NONBLOCK);
	rc = 1;
out:
	return rc;
}

static void feed(struct run *r)
{
	size_t n = r->len - r->sent < CHUNK ? r->len - r->sent : CHUNK;
	ssize_t w = n > 0 ? write(r->in, r->msg + r->sent, n) : 0;
	if (w > 0)
		r->sent += (size_t)w;
	/* EPIPE: the filter stopped reading, which is its right (it may
	 * decide from the header); its exit code still decides. */
	if (r->sent == r->len || (w < 0 && errno != EAGAIN && errno != EINTR))
		close_fd(&r->in);
}

static void drain(struct run *r)
{
	unsigned char chunk[CHUNK];
	ssize_t n = read(r->out, chunk, sizeof(chunk));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		close_fd(&r->out);
		return;
	}
	if (n > 0 && !r->overflow && sg_buf_append(r->output, chunk, (size_t)n) != 1)
		r->overflow = true; /* keep reading so the filter is not blocked */
}

/* Exchange data until both pipes are closed or the budget is spent. */
static bool pump(struct run *r)
{
	while (r->in >= 0 || r->out >= 0) {
		struct pollfd pfd[2] = { { r->in, POLLOUT, 0 }, { r->out, POLLIN, 0 } };
		long left = ms_left(&r->deadline);
		if (left == 0)
			return false;
		int n = poll(pfd, 2, (int)(left > 1000 ? 1000 : left));
		if (n < 0 && errno != EINTR)
			return false;
		if (n <= 0)
			continue;
		if (r->in >= 0 && (pfd[0].revents & (POLLOUT | POLLERR | POLLHUP)))
			feed(r);
		if (r->out >= 0 && (pfd[1].revents & (POLLIN | POLLERR | POLLHUP)))
			drain(r);
	}
	return true;
}

/* The exit status, waiting until the deadline; -1 when it ran out. */
static int reap(struct run *r, int *status_r)
{
	for (;;) {
		pid_t w = waitpid(r->pid, status_r, WNOHANG);
		if (w == r->pid)
			return 1;
		if (w < 0 && errno != EINTR)
			return -1;
		if (ms_left(&r->deadline) == 0)
			return -1;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* The first line of the output, printable ASCII only (it goes into an SMTP
 * reply), at most REASON_MAX bytes. */
static char *first_line(const struct sg_buf *out)
{
	size_t n = 0;
	char *s = sg_malloc(REASON_MAX + 1);
	for (size_t i = 0; i < out->len && n < REASON_MAX; i++) {
		unsigned char c = out->data[i];
		if (c == '\n' || c == '\r')
			break;
		s[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	s[n] = '\0';
	if (n == 0) {
		free(s);
		s = sg_strdup("rejected by content filter");
	}
	return s;
}

static enum sg_filter_verdict judge(const struct sg_filter *f, int status, struct sg_buf *output,
				    struct sg_buf *replaced, char **reason_r)
{
	if (WIFSIGNALED(status)) {
		*reason_r = sg_asprintf("filter killed by signal %d", WTERMSIG(status));
		return SG_FILTER_TEMPFAIL;
	}
	int code = WEXITSTATUS(status);
	if (code == 1) {
		*reason_r = first_line(output);
		return SG_FILTER_REJECT;
	}
	if (code != 0) {
		*reason_r = sg_asprintf("filter exit status %d", code);
		return SG_FILTER_TEMPFAIL;
	}
	if (f->rewrite && output->len > 0 && sg_buf_append(replaced, output->data, output->len) != 1) {
		*reason_r = sg_strdup("rewritten message too large");
		return SG_FILTER_TEMPFAIL;
	}
	*reason_r = sg_strdup("accepted");
	return SG_FILTER_ACCEPT;
}

enum sg_filter_verdict sg_filter_run(const struct sg_filter *f, const unsigned char *msg, size_t len,
				     struct sg_buf *replaced, char **reason_r)
{
	struct run r = { .pid = -1, .in = -1, .out = -1, .msg = msg, .len = len };
	struct sg_buf output;
	enum sg_filter_verdict v = SG_FILTER_TEMPFAIL;
	int status = 0;

	*reason_r = NULL;
	sg_buf_init(&output, f->max_output);
	r.output = &output;
	clock_gettime(CLOCK_MONOTONIC, &r.deadline);
	r.deadline.tv_sec += f->timeout;
	if (spawn(f->cmd, f->envp, &r, reason_r) < 0)
		goto out;
	bool done = pump(&r);
	if (!done || reap(&r, &status) < 0) {
		kill(-r.pid, SIGKILL);
		waitpid(r.pid, NULL, 0);
		*reason_r = sg_asprintf("filter did not finish within %us", f->timeout);
		goto out;
	}
	/* A grandchild may still hold the pipe: the group goes with the shell. */
	kill(-r.pid, SIGKILL);
	/* Without rewriting only the first line matters: more is not an error. */
	if (r.overflow && f->rewrite) {
		*reason_r = sg_strdup("filter output too large");
		goto out;
	}
	v = judge(f, status, &output, replaced, reason_r);
out:
	close_fd(&r.in);
	close_fd(&r.out);
	sg_buf_free_secret(&output);
	return v;
}
