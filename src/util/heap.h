/* Allocator settings for the long-running server: memory freed after one
 * message is kept for the next instead of going back to the kernel. */
#ifndef SG_UTIL_HEAP_H
#define SG_UTIL_HEAP_H

#include <stddef.h>

/* Below this size an allocation comes from the heap (not its own mmap). */
#define SG_HEAP_MMAP_THRESHOLD ((size_t)4 << 20)
/* Up to this much free memory at the top of each malloc arena is kept. */
#define SG_HEAP_TRIM_THRESHOLD ((size_t)16 << 20)

/* Set the two thresholds above (glibc mallopt; a no-op elsewhere and under
 * the sanitizers' allocators). Process-wide; call once at server start. */
void sg_heap_tune_server(void);

#endif
