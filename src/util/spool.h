/* sg_spool: one message's bytes, as received or as produced by a transform.
 * Held in memory up to mem_max; beyond that, in a 0600 file under the spool
 * directory that is unlinked as soon as it is created, so that neither a
 * crash nor another local user ever finds a message there. A hard size_max
 * bounds the whole. Writers append; once finished, readers get one
 * contiguous read-only view (the file is mmap()ed). */
#ifndef SG_UTIL_SPOOL_H
#define SG_UTIL_SPOOL_H

#include <stddef.h>

#include "util/error.h"

struct sg_spool;

/* dir is copied. */
struct sg_spool *sg_spool_new(const char *dir, size_t mem_max, size_t size_max);
/* A finished spool holding a copy of data (for transforms' outputs and tests). */
struct sg_spool *sg_spool_from_mem(const void *data, size_t len);
/* 1: appended; 0: size_max would be exceeded (nothing more is kept, the
 * spool is marked oversize); -1: I/O error (disk full...), reason in err. */
int sg_spool_append(struct sg_spool *sp, const void *data, size_t len, struct sg_error *err)
	SG_WARN_UNUSED;
/* Make the contents readable. 1 on success, -1 on error. */
int sg_spool_finish(struct sg_spool *sp, struct sg_error *err) SG_WARN_UNUSED;
int sg_spool_oversize(const struct sg_spool *sp);
size_t sg_spool_size(const struct sg_spool *sp);
int sg_spool_on_disk(const struct sg_spool *sp);
/* The finished contents, borrowed until sg_spool_free(). */
const unsigned char *sg_spool_data(const struct sg_spool *sp);
void sg_spool_free(struct sg_spool **sp);

#endif
