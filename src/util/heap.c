/* Malloc settings for `sealgate serve`: freed memory stays in the heap up
 * to a bound, so that per-message buffers do not fault in again each time. */
#include "util/heap.h"

#include <malloc.h>

void sg_heap_tune(void)
{
	/* Setting either turns off glibc's dynamic thresholds (mallopt(3)),
	 * so both are fixed here. Failure only costs speed. */
	(void)mallopt(M_MMAP_THRESHOLD, (int)SG_HEAP_MMAP_MAX);
	(void)mallopt(M_TRIM_THRESHOLD, (int)SG_HEAP_TRIM);
}
