/* Parsing "HOST:PORT" and "[v6]:PORT" endpoint strings. */
#ifndef SG_UTIL_HOSTPORT_H
#define SG_UTIL_HOSTPORT_H

#include "util/error.h"

/* 1 with *host_r and *port_r (owned), or -1 with the reason in err. */
int sg_parse_hostport(const char *s, char **host_r, char **port_r, struct sg_error *err);

#endif
