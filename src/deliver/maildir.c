/* Maildir delivery: unique names, tmp/ -> new/ with fsync at each step
 * (maildir(5); Dovecot's maildir-save.c does the same). */
#include "deliver/maildir.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* A part of an address that may become a path component. */
static int safe_part(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == '\\' || iscntrl((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Mailbox paths are lower case, as Dovecot's %Ln/%Ld make them: "Alice@"
 * and "alice@" are one mailbox (and one key, keys/ normalises the same way). */
static int append_lower(struct sg_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)s[i]);
		if (!sg_buf_append(b, &c, 1))
			return 0;
	}
	return 1;
}

int sg_maildir_expand(const char *tmpl, const char *addr, char **path_r, struct sg_error *err)
{
	const char *at = strrchr(addr, '@');
	size_t nlen = at != NULL ? (size_t)(at - addr) : strlen(addr);
	const char *dom = at != NULL ? at + 1 : "";
	struct sg_buf b;
	int ok = 1, ret = -1;

	*path_r = NULL;
	if (!safe_part(addr, strlen(addr)) || !safe_part(addr, nlen) ||
	    (at != NULL && !safe_part(dom, strlen(dom)))) {
		sg_error_set(err, "address '%s' cannot name a mailbox path", addr);
		return -1;
	}
	sg_buf_init(&b, 4096);
	for (const char *p = tmpl; *p != '\0' && ok; p++) {
		if (*p != '%') {
			ok = sg_buf_append(&b, p, 1);
			continue;
		}
		switch (*++p) {
		case 'u': ok = append_lower(&b, addr, strlen(addr)); break;
		case 'n': ok = append_lower(&b, addr, nlen); break;
		case 'd': ok = append_lower(&b, dom, strlen(dom)); break;
		case '%': ok = sg_buf_append(&b, "%", 1); break;
		default:
			sg_error_set(err, "maildir template '%s': unknown %%-escape", tmpl);
			goto out;
		}
	}
	if (!ok) {
		sg_error_set(err, "maildir path for %s is too long", addr);
		goto out;
	}
	*path_r = (char *)sg_buf_steal(&b, NULL);
	ret = 1;
out:
	sg_buf_free(&b);
	return ret;
}

static int mkdir_p(const char *path, struct sg_error *err)
{
	char *p = sg_strdup(path);
	int ret = -1;

	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			sg_error_set(err, "mkdir %s: %s", p, strerror(errno));
			goto out;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	ret = 1;
out:
	free(p);
	return ret;
}

int sg_maildir_ensure(const char *dir, struct sg_error *err)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	int ret = -1;

	if (mkdir_p(dir, err) < 0)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		char *sub = sg_asprintf("%s/%s", dir, subs[i]);
		struct stat st;
		if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
			sg_error_set(err, "mkdir %s: %s", sub, strerror(errno));
			free(sub);
			goto out;
		}
		if (stat(sub, &st) < 0 || !S_ISDIR(st.st_mode)) {
			sg_error_set(err, "%s: not a directory", sub);
			free(sub);
			goto out;
		}
		free(sub);
	}
	ret = 1;
out:
	return ret;
}

/* The host part of unique names, escaped once: gethostname() per message
 * is a system call on the delivery path for a value that does not change. */
static char *unique_host;
static pthread_once_t unique_host_once = PTHREAD_ONCE_INIT;

static void unique_host_init(void)
{
	struct sg_buf host;
	size_t hmax = 256;
	char *hn = sg_malloc(hmax + 1);

	sg_buf_init(&host, 4 * hmax);
	if (gethostname(hn, hmax) != 0)
		hn[0] = '\0';
	hn[hmax] = '\0';
	for (const char *p = hn; *p != '\0'; p++) {
		int ok = *p == '/' ? sg_buf_append_str(&host, "\\057") :
			 *p == ':' ? sg_buf_append_str(&host, "\\072") :
			 *p == ',' ? sg_buf_append_str(&host, "\\054") : sg_buf_append(&host, p, 1);
		if (!ok)
			break;
	}
	free(hn);
	unique_host = host.len > 0 ? (char *)sg_buf_steal(&host, NULL) : sg_strdup("localhost");
	sg_buf_free(&host);
}

char *sg_maildir_unique(void)
{
	static atomic_ulong counter;
	struct timeval tv;

	pthread_once(&unique_host_once, unique_host_init);
	gettimeofday(&tv, NULL);
	return sg_asprintf("%lld.M%06ldP%ldQ%lu.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
			   (long)getpid(), atomic_fetch_add(&counter, 1) + 1, unique_host);
}

size_t sg_maildir_lf_size(const unsigned char *msg, size_t len)
{
	size_t n = len;
	for (size_t i = 0; i + 1 < len; i++)
		if (msg[i] == '\r' && msg[i + 1] == '\n')
			n--;
	return n;
}

char *sg_maildir_sized_name(const char *name, size_t s, size_t w, bool add)
{
	const char *info = strchr(name, ':');
	const char *end = info != NULL ? info : name + strlen(name);
	const char *p = strchr(name, ',');
	bool have_s = false, have_w = false;
	struct sg_buf b;
	bool ok;

	if (p == NULL || p > end)
		p = end;
	sg_buf_init(&b, strlen(name) + 48);
	ok = sg_buf_append(&b, name, (size_t)(p - name));
	while (ok && p < end) { /* p at a ',' */
		const char *f = p + 1, *comma = memchr(f, ',', (size_t)(end - f));
		const char *fe = comma != NULL ? comma : end;
		if (fe - f >= 2 && f[0] == 'S' && f[1] == '=') {
			ok = sg_buf_printf(&b, ",S=%zu", s);
			have_s = true;
		} else if (fe - f >= 2 && f[0] == 'W' && f[1] == '=') {
			ok = sg_buf_printf(&b, ",W=%zu", w);
			have_w = true;
		} else {
			ok = sg_buf_append(&b, p, (size_t)(fe - p));
		}
		p = fe;
	}
	if (ok && add && !have_s)
		ok = sg_buf_printf(&b, ",S=%zu", s);
	if (ok && add && !have_w)
		ok = sg_buf_printf(&b, ",W=%zu", w);
	if (ok && info != NULL)
		ok = sg_buf_append_str(&b, info);
	if (!ok)
		sg_panic("maildir: file name too long");
	return (char *)sg_buf_steal(&b, NULL);
}

int sg_maildir_fix_sizes(const char *dir, const char *name, size_t s, size_t w, bool add,
			 struct sg_error *err)
{
	char *want = sg_maildir_sized_name(name, s, w, add);
	int ret = 0;

	if (strcmp(want, name) != 0) {
		char *from = sg_asprintf("%s/%s", dir, name), *to = sg_asprintf("%s/%s", dir, want);
		ret = 1;
		if (rename(from, to) < 0) {
			sg_error_set(err, "fixing the size fields of %s: %s", name, strerror(errno));
			ret = -1;
		}
		free(from);
		free(to);
	}
	free(want);
	return ret;
}

static int write_all(int fd, const unsigned char *p, size_t n, struct sg_error *err)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			sg_error_set(err, "write: %s", strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 1;
}

int sg_maildir_write_fd(int fd, const unsigned char *msg, size_t len, struct sg_error *err)
{
	unsigned char chunk[65536];
	size_t used = 0, i = 0;

	/* CRLF -> LF in chunks: Maildir files hold bare LF lines. Spans up to
	 * the next CR are copied whole. */
	while (i < len) {
		const unsigned char *cr = memchr(msg + i, '\r', len - i);
		size_t span = (cr != NULL ? (size_t)(cr - msg) : len) - i;
		if (span > sizeof(chunk) - used)
			span = sizeof(chunk) - used;
		memcpy(chunk + used, msg + i, span);
		used += span;
		i += span;
		if (used < sizeof(chunk) && i < len) {
			/* at a CR: dropped before LF, kept otherwise */
			if (!(i + 1 < len && msg[i + 1] == '\n'))
				chunk[used++] = msg[i];
			i++;
		}
		if (used == sizeof(chunk)) {
			if (write_all(fd, chunk, used, err) < 0)
				return -1;
			used = 0;
		}
	}
	if (used > 0 && write_all(fd, chunk, used, err) < 0)
		return -1;
	if (fsync(fd) < 0) {
		sg_error_set(err, "fsync: %s", strerror(errno));
		return -1;
	}
	return 1;
}

int sg_maildir_sync_dir(const char *dir, struct sg_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = -1;

	if (fd < 0) {
		sg_error_set(err, "open %s: %s", dir, strerror(errno));
		return -1;
	}
	if (fsync(fd) < 0)
		sg_error_set(err, "fsync %s: %s", dir, strerror(errno));
	else
		ret = 1;
	close(fd);
	return ret;
}

/* Create tmp/NAME exclusively. The folders are made on first use (ENOENT)
 * rather than checked per message: eight mkdir()s and three stat()s per
 * delivery were a third of the system calls on this path. */
static int create_tmp(const char *dir, const char *tmp, int *fd_r, struct sg_error *err)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0 && errno == ENOENT) {
		if (sg_maildir_ensure(dir, err) < 0)
			return -1;
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0) {
		sg_error_set(err, "create %s: %s", tmp, strerror(errno));
		return -1;
	}
	*fd_r = fd;
	return 1;
}

/* rename() tmp into new/ (made again if it went away meanwhile). link()
 * would refuse an existing name; rename() is what Dovecot does and the
 * name is unique to this process and moment. */
static int move_to_new(const char *dir, const char *tmp, const char *dst, struct sg_error *err)
{
	int r = rename(tmp, dst);

	if (r < 0 && errno == ENOENT) {
		if (sg_maildir_ensure(dir, err) < 0)
			return -1;
		r = rename(tmp, dst);
	}
	if (r < 0) {
		sg_error_set(err, "rename into %s/new: %s", dir, strerror(errno));
		return -1;
	}
	return 1;
}

int sg_maildir_deliver(const char *dir, const unsigned char *msg, size_t len, char **path_r,
		       struct sg_error *err)
{
	char *base = sg_maildir_unique();
	char *tmp = sg_asprintf("%s/tmp/%s", dir, base);
	char *newdir = sg_asprintf("%s/new", dir);
	char *dst = sg_asprintf("%s/%s,S=%zu,W=%zu", newdir, base, sg_maildir_lf_size(msg, len), len);
	int fd = -1, ret = -1;
	int renamed = 0;

	if (path_r != NULL)
		*path_r = NULL;
	if (create_tmp(dir, tmp, &fd, err) < 0)
		goto out;
	if (sg_maildir_write_fd(fd, msg, len, err) < 0) {
		sg_error_prefix(err, "%s", tmp);
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		sg_error_set(err, "close %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (move_to_new(dir, tmp, dst, err) < 0)
		goto out;
	renamed = 1;
	/* Durable only once the directory entry is (fsync(2), "Notes"). */
	if (sg_maildir_sync_dir(newdir, err) < 0)
		goto out;
	if (path_r != NULL) {
		*path_r = dst;
		dst = NULL;
	}
	ret = 1;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0) {
		/* Nothing half-written stays behind: we answer 4xx, so the
		 * sender retries and a leftover would be a duplicate. */
		unlink(renamed ? dst : tmp);
	}
	free(base);
	free(tmp);
	free(newdir);
	free(dst);
	return ret;
}

int sg_maildir_resync(const char *cmd, const char *user, const char *dir, struct sg_error *err)
{
	int status = 0;
	pid_t pid = fork();
	if (pid < 0) {
		sg_error_set(err, "resync: fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, "sealgate-resync", user, dir, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			sg_error_set(err, "resync: wait: %s", strerror(errno));
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 1;
	if (WIFEXITED(status))
		sg_error_set(err, "resync command exited with %d: %s", WEXITSTATUS(status), cmd);
	else
		sg_error_set(err, "resync command killed by signal %d: %s", WTERMSIG(status), cmd);
	return -1;
}

char *sg_maildir_base(const char *name)
{
	return sg_strndup(name, strcspn(name, ",:"));
}

int sg_maildir_locate(const char *folder, const char *base, const char **sub_r, char **name_r)
{
	static const char *const subs[] = { "cur", "new" };
	size_t bl = strlen(base);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		char *dir = sg_asprintf("%s/%s", folder, subs[i]);
		DIR *d = opendir(dir);
		struct dirent *de;
		free(dir);
		while (d != NULL && (de = readdir(d)) != NULL) {
			if (strncmp(de->d_name, base, bl) == 0 &&
			    (de->d_name[bl] == '\0' || de->d_name[bl] == ',' || de->d_name[bl] == ':')) {
				*sub_r = subs[i];
				*name_r = sg_strdup(de->d_name);
				closedir(d);
				return 1;
			}
		}
		if (d != NULL)
			closedir(d);
	}
	return 0;
}

/* How often a message renamed under us is followed before giving up. */
#define RENAMED_TRIES 5

int sg_maildir_replace(const char *folder, const char *sub, const char *name, const char *tmp,
		       const char **sub_r, char **name_r, struct sg_error *err)
{
	char *base = sg_maildir_base(name), *cur = sg_strdup(name), *path = NULL;
	int ret = -1;
	for (int tries = 0;; tries++) {
		free(path);
		path = sg_asprintf("%s/%s/%s", folder, sub, cur);
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) == 0)
			break;
		int e = errno;
		free(cur);
		cur = NULL;
		if (e != ENOENT) {
			sg_error_set(err, "exchange with %s: %s", path, strerror(e));
			goto fail;
		}
		if (tries + 1 == RENAMED_TRIES) {
			sg_error_set(err, "%s: renamed again and again meanwhile; run again", base);
			goto fail;
		}
		if (sg_maildir_locate(folder, base, &sub, &cur) <= 0) {
			ret = 0; /* expunged meanwhile */
			goto fail;
		}
	}
	unlink(tmp); /* now the old content */
	*sub_r = sub;
	*name_r = cur;
	cur = NULL;
	ret = 1;
	goto out;
fail:
	unlink(tmp);
out:
	free(base);
	free(cur);
	free(path);
	return ret;
}
