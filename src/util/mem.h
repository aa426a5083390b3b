/* Allocation that never returns NULL: running out of memory is a broken
 * environment (sg_fatal), as in Postfix's mymalloc(). */
#ifndef SG_UTIL_MEM_H
#define SG_UTIL_MEM_H

#include <stdarg.h>
#include <stddef.h>

#include "util/error.h"

void *sg_malloc(size_t n);
void *sg_calloc(size_t nmemb, size_t size);
void *sg_realloc(void *p, size_t n);
/* realloc for an array, with the multiplication overflow-checked. */
void *sg_reallocarray(void *p, size_t nmemb, size_t size);
char *sg_strdup(const char *s);
char *sg_strndup(const char *s, size_t n);
char *sg_asprintf(const char *fmt, ...) SG_PRINTF(1, 2);
char *sg_vasprintf(const char *fmt, va_list ap) SG_PRINTF(1, 0);

#endif
