/* Parsing "HOST:PORT" and "[IPv6]:PORT" endpoint strings (listen addresses,
 * next hops) into host and port, with a reason when the string is bad. */
#ifndef SG_UTIL_HOSTPORT_H
#define SG_UTIL_HOSTPORT_H

#include "util/error.h"

/* 1 with *host_r and *port_r (both owned by the caller; the host without
 * brackets) or -1 with the reason in err (missing port, port not 1-65535,
 * empty host, unbalanced brackets, unbracketed IPv6). */
int sg_parse_hostport(const char *s, char **host_r, char **port_r, struct sg_error *err)
	SG_WARN_UNUSED;

#endif
