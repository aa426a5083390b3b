/* Allocator settings for sealgate serve. glibc gives a worker thread's
 * arena back with madvise(MADV_DONTNEED) whenever its free top passes the
 * trim threshold (128 KiB): with librnp's stream buffers that happened 1.6
 * times per sealed 10 KiB message. In a threaded process every such call
 * is a TLB shoot-down IPI to the other CPUs, and the pages fault back in
 * (zeroed) for the next message: about 500 us of 1000 per message on the
 * 2-vCPU bench host (doc/policy.md "Speed"). */
#include "util/heap.h"

#include <stdlib.h> /* __GLIBC__ */
#ifdef __GLIBC__
#include <malloc.h>
#endif

void sg_heap_tune_server(void)
{
#ifdef __GLIBC__
	/* Either setting turns off glibc's sliding thresholds, so both are
	 * set: messages up to a few MiB stay in the heap, bigger ones are
	 * mapped and unmapped on their own as before. */
	mallopt(M_MMAP_THRESHOLD, (int)SG_HEAP_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, (int)SG_HEAP_TRIM_THRESHOLD);
#endif
}
