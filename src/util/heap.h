/* Process-wide malloc settings for the long-running server: keep freed
 * memory in the heap instead of handing it back and faulting it in again. */
#ifndef SG_UTIL_HEAP_H
#define SG_UTIL_HEAP_H

/* Blocks up to SG_HEAP_MMAP_MAX come from the heap (not a fresh mmap per
 * allocation), and a worker's heap is trimmed only above SG_HEAP_TRIM.
 * glibc's defaults (128 KiB) give back the ~300 KiB librnp allocates and
 * frees per OpenPGP encryption on every message, so the next one takes
 * ~75 page faults and a madvise() again: about 200 us of CPU per sealed
 * message on this machine (doc/deliver.md). Call once at start-up. */
#define SG_HEAP_MMAP_MAX (4u * 1024 * 1024)
#define SG_HEAP_TRIM (8u * 1024 * 1024)
void sg_heap_tune(void);

#endif
