/* Endpoint string parsing. */
#include "util/hostport.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

int sg_parse_hostport(const char *s, char **host_r, char **port_r, struct sg_error *err)
{
	const char *host, *colon;
	size_t hlen;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':') {
			sg_error_set(err, "'%s': expected [ADDRESS]:PORT", s);
			return -1;
		}
		host = s + 1;
		hlen = (size_t)(rb - host);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			sg_error_set(err, "'%s': missing :PORT", s);
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			sg_error_set(err, "'%s': IPv6 addresses need brackets: [ADDRESS]:PORT", s);
			return -1;
		}
		host = s;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0) {
		sg_error_set(err, "'%s': empty host", s);
		return -1;
	}
	const char *port = colon + 1;
	char *end;
	long p = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || p < 1 || p > 65535) {
		sg_error_set(err, "'%s': port must be a number from 1 to 65535", s);
		return -1;
	}
	*host_r = sg_strndup(host, hlen);
	*port_r = sg_strdup(port);
	return 1;
}
