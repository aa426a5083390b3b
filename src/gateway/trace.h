/* Trace headers: the Received: line sealgate adds (RFC 5321 §4.4) and
 * mail-loop detection by counting the Received: lines already present. */
#ifndef SG_GATEWAY_TRACE_H
#define SG_GATEWAY_TRACE_H

#include <stddef.h>
#include <time.h>

#include "mail/envelope.h"

/* Our Received: header, folded, ending in CRLF; owned by the caller. */
char *sg_trace_received(const struct sg_envelope *env, const char *hostname, time_t now);

struct sg_trace_count {
	unsigned received;   /* Received: fields in the header section */
	unsigned ours;       /* of those, added by sealgate on hostname */
};

/* Count over the header section of msg (up to the first empty line). */
void sg_trace_count(const unsigned char *msg, size_t len, const char *hostname,
		    struct sg_trace_count *count_r);

#endif
