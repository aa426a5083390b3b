/* Checked allocation wrappers. */
#include "util/mem.h"
#include "util/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *sg_malloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);
	if (p == NULL)
		sg_fatal("out of memory allocating %zu bytes", n);
	return p;
}

void *sg_calloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);
	if (p == NULL)
		sg_fatal("out of memory allocating %zu x %zu bytes", nmemb, size);
	return p;
}

void *sg_realloc(void *p, size_t n)
{
	void *q = realloc(p, n == 0 ? 1 : n);
	if (q == NULL)
		sg_fatal("out of memory reallocating %zu bytes", n);
	return q;
}

void *sg_reallocarray(void *p, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		sg_panic("array size overflow: %zu x %zu", nmemb, size);
	return sg_realloc(p, nmemb * size);
}

char *sg_strdup(const char *s)
{
	return sg_strndup(s, strlen(s));
}

char *sg_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = sg_malloc(len + 1);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *sg_vasprintf(const char *fmt, va_list ap)
{
	char *s;
	if (vasprintf(&s, fmt, ap) < 0)
		sg_fatal("out of memory formatting a string");
	return s;
}

char *sg_asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = sg_vasprintf(fmt, ap);
	va_end(ap);
	return s;
}
