/* "HOST:PORT" and "[IPv6]:PORT" endpoint strings, as used for listeners
 * (smtp/) and next hops (relay/). */
#ifndef SG_UTIL_HOSTPORT_H
#define SG_UTIL_HOSTPORT_H

#include "util/error.h"

/* Split s into host and port (both owned by the caller). The port must be
 * a number 1..65535; an IPv6 address must be in brackets. 1 or -1. */
int sg_parse_hostport(const char *s, char **host_r, char **port_r, struct sg_error *err)
	SG_WARN_UNUSED;

#endif
