/* Message spool: memory first, then an unlinked 0600 temp file. */
#include "util/spool.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* On disk, appends are gathered into writes of this size. */
#define SPOOL_WBUF (64 * 1024)

struct sg_spool {
	char *dir;
	size_t mem_max, size_max, size;
	struct sg_buf mem;
	int fd;            /* -1 while in memory */
	unsigned char *wbuf; /* on disk: writes are gathered here (fewer syscalls) */
	size_t wlen;
	int oversize, finished;
	unsigned char *map; /* mmap of fd once finished */
};

struct sg_spool *sg_spool_new(const char *dir, size_t mem_max, size_t size_max)
{
	struct sg_spool *sp = sg_calloc(1, sizeof(*sp));
	sp->dir = sg_strdup(dir);
	sp->mem_max = mem_max < size_max ? mem_max : size_max;
	sp->size_max = size_max;
	sp->fd = -1;
	sg_buf_init(&sp->mem, sp->mem_max);
	return sp;
}

struct sg_spool *sg_spool_from_mem(const void *data, size_t len)
{
	struct sg_spool *sp = sg_spool_new(".", len, len);
	if (!sg_buf_append(&sp->mem, data, len))
		sg_panic("spool: cannot hold %zu bytes", len);
	sp->size = len;
	sp->finished = 1;
	return sp;
}

static int write_all(int fd, const unsigned char *p, size_t len, struct sg_error *err)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sg_error_set(err, "spool write: %s", strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 1;
}

static int move_to_disk(struct sg_spool *sp, struct sg_error *err)
{
	/* O_TMPFILE: the file never has a name; fall back to mkstemp + unlink
	 * on file systems without it. Either way the mode is 0600. */
	int fd = open(sp->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		char *path = sg_asprintf("%s/sealgate-spool.XXXXXX", sp->dir);
		mode_t old = umask(077);
		fd = mkstemp(path);
		umask(old);
		if (fd >= 0)
			unlink(path);
		free(path);
	}
	if (fd < 0) {
		sg_error_set(err, "spool %s: cannot create temp file: %s", sp->dir, strerror(errno));
		return -1;
	}
	if (write_all(fd, sp->mem.data, sp->mem.len, err) < 0) {
		close(fd);
		return -1;
	}
	sg_buf_free(&sp->mem);
	sp->fd = fd;
	sp->wbuf = sg_malloc(SPOOL_WBUF);
	sp->wlen = 0;
	return 1;
}

static int flush_wbuf(struct sg_spool *sp, struct sg_error *err)
{
	if (sp->wlen == 0)
		return 1;
	if (write_all(sp->fd, sp->wbuf, sp->wlen, err) < 0)
		return -1;
	sp->wlen = 0;
	return 1;
}

int sg_spool_append(struct sg_spool *sp, const void *data, size_t len, struct sg_error *err)
{
	sg_assert(!sp->finished);
	if (sp->oversize)
		return 0;
	if (len > sp->size_max - sp->size) {
		sp->oversize = 1;
		sg_buf_free(&sp->mem);
		return 0;
	}
	if (sp->fd < 0 && sg_buf_append(&sp->mem, data, len)) {
		sp->size += len;
		return 1;
	}
	if (sp->fd < 0 && move_to_disk(sp, err) < 0)
		return -1;
	if (sp->wlen + len > SPOOL_WBUF && flush_wbuf(sp, err) < 0)
		return -1;
	if (len >= SPOOL_WBUF) {
		if (write_all(sp->fd, data, len, err) < 0)
			return -1;
	} else {
		memcpy(sp->wbuf + sp->wlen, data, len);
		sp->wlen += len;
	}
	sp->size += len;
	return 1;
}

int sg_spool_finish(struct sg_spool *sp, struct sg_error *err)
{
	if (sp->finished)
		return 1;
	if (sp->oversize) {
		sg_error_set(err, "message exceeds the size limit of %zu bytes", sp->size_max);
		return -1;
	}
	if (sp->fd >= 0 && flush_wbuf(sp, err) < 0)
		return -1;
	if (sp->fd >= 0 && sp->size > 0) {
		void *m = mmap(NULL, sp->size, PROT_READ, MAP_PRIVATE, sp->fd, 0);
		if (m == MAP_FAILED) {
			sg_error_set(err, "spool mmap: %s", strerror(errno));
			return -1;
		}
		sp->map = m;
	}
	sp->finished = 1;
	return 1;
}

int sg_spool_oversize(const struct sg_spool *sp)
{
	return sp->oversize;
}

size_t sg_spool_size(const struct sg_spool *sp)
{
	return sp->size;
}

int sg_spool_on_disk(const struct sg_spool *sp)
{
	return sp->fd >= 0;
}

const unsigned char *sg_spool_data(const struct sg_spool *sp)
{
	static const unsigned char empty[1];
	sg_assert(sp->finished);
	if (sp->map != NULL)
		return sp->map;
	return sp->mem.data != NULL ? sp->mem.data : empty;
}

void sg_spool_free(struct sg_spool **spp)
{
	struct sg_spool *sp = *spp;
	if (sp == NULL)
		return;
	if (sp->map != NULL)
		munmap(sp->map, sp->size);
	if (sp->fd >= 0)
		close(sp->fd);
	sg_buf_free(&sp->mem);
	free(sp->wbuf);
	free(sp->dir);
	free(sp);
	*spp = NULL;
}
