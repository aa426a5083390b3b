/* Handling of secrets: wiping that the compiler cannot optimise away, and
 * comparisons whose time does not depend on where the inputs differ. */
#ifndef SG_UTIL_SECRET_H
#define SG_UTIL_SECRET_H

#include <stddef.h>

void sg_memwipe(void *p, size_t n);
/* Wipe n bytes at *p, free them and set *p to NULL. */
void sg_secret_free(void *pp, size_t n);
/* 1 if equal, 0 otherwise; constant time in n. */
int sg_memeq_ct(const void *a, const void *b, size_t n);

#endif
