/* Parsing of "HOST:PORT" / "[v6]:PORT" endpoint strings. No name lookups
 * here: the caller decides whether the host must be numeric. */
#include "util/hostport.h"
#include "util/mem.h"

#include <string.h>

static int valid_port(const char *p)
{
	unsigned long v = 0;

	if (*p == '\0' || strlen(p) > 5)
		return 0;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	return v >= 1 && v <= 65535;
}

int sg_parse_hostport(const char *s, char **host_r, char **port_r, struct sg_error *err)
{
	const char *host, *host_end, *colon;

	*host_r = NULL;
	*port_r = NULL;
	if (s == NULL || *s == '\0') {
		sg_error_set(err, "empty address");
		return -1;
	}
	if (*s == '[') {
		host = s + 1;
		host_end = strchr(host, ']');
		if (host_end == NULL || host_end[1] != ':') {
			sg_error_set(err, "%s: expected [ADDRESS]:PORT", s);
			return -1;
		}
		colon = host_end + 1;
	} else {
		host = s;
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
			/* No port, or an IPv6 address without brackets (ambiguous). */
			sg_error_set(err, "%s: expected HOST:PORT or [IPv6]:PORT", s);
			return -1;
		}
		host_end = colon;
	}
	if (host_end == host) {
		sg_error_set(err, "%s: empty host", s);
		return -1;
	}
	if (!valid_port(colon + 1)) {
		sg_error_set(err, "%s: bad port", s);
		return -1;
	}
	*host_r = sg_strndup(host, (size_t)(host_end - host));
	*port_r = sg_strdup(colon + 1);
	return 1;
}
