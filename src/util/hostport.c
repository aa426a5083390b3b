/* "HOST:PORT" / "[v6]:PORT" parsing for configured endpoints. The port must
 * be numeric (no service names: a config must not depend on /etc/services). */
#include "util/hostport.h"
#include "util/mem.h"

#include <stdbool.h>
#include <string.h>

static bool port_valid(const char *p)
{
	unsigned long v = 0;

	if (*p == '\0' || strlen(p) > 5)
		return false;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	return v >= 1 && v <= 65535;
}

/* Split s into host [start, host_end) and the port string after the colon. */
static int split(const char *s, const char **host_r, size_t *host_len_r, const char **port_r,
		 struct sg_error *err)
{
	const char *colon;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL) {
			sg_error_set(err, "missing ']' after IPv6 address");
			return -1;
		}
		if (close[1] != ':') {
			sg_error_set(err, close[1] == '\0' ? "missing port" : "expected ':' after ']'");
			return -1;
		}
		*host_r = s + 1;
		*host_len_r = (size_t)(close - s - 1);
		*port_r = close + 2;
		return 1;
	}
	colon = strrchr(s, ':');
	if (colon == NULL) {
		sg_error_set(err, "missing port");
		return -1;
	}
	if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
		sg_error_set(err, "IPv6 address must be in brackets: [ADDR]:PORT");
		return -1;
	}
	*host_r = s;
	*host_len_r = (size_t)(colon - s);
	*port_r = colon + 1;
	return 1;
}

int sg_parse_hostport(const char *s, char **host_r, char **port_r, struct sg_error *err)
{
	const char *host, *port;
	size_t host_len;
	int ret = -1;

	*host_r = NULL;
	*port_r = NULL;
	if (split(s, &host, &host_len, &port, err) < 0)
		goto out;
	if (host_len == 0) {
		sg_error_set(err, "empty host");
		goto out;
	}
	if (*port == '\0') {
		sg_error_set(err, "missing port");
		goto out;
	}
	if (!port_valid(port)) {
		sg_error_set(err, "port '%s' is not a number 1-65535", port);
		goto out;
	}
	*host_r = sg_strndup(host, host_len);
	*port_r = sg_strdup(port);
	ret = 1;
out:
	if (ret < 0)
		sg_error_prefix(err, "'%s'", s);
	return ret;
}
