/* Received: header generation and loop detection. */
#include "gateway/trace.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *sg_trace_received(const struct sg_envelope *env, const char *hostname, time_t now)
{
	char date[64];
	struct tm tm;
	const char *with;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* RFC 3848 protocol types. */
	if (env->lmtp)
		with = env->tls ? "LMTPS" : "LMTP";
	else
		with = env->tls ? "ESMTPS" : "ESMTP";
	/* "for <rcpt>" only with a single recipient: with several it would
	 * tell each recipient who else got the message (Postfix does the same). */
	char *for_part = env->n_rcpts == 1 ? sg_asprintf("\r\n\tfor <%s>", env->rcpts[0].addr)
					   : sg_strdup("");
	char *r = sg_asprintf("Received: from %s ([%s])\r\n\tby %s (sealgate) with %s id %s%s;\r\n\t%s\r\n",
			      env->helo != NULL && env->helo[0] != '\0' ? env->helo : "unknown",
			      env->client_addr != NULL ? env->client_addr : "unknown", hostname, with,
			      env->queue_id != NULL ? env->queue_id : "unknown", for_part, date);
	free(for_part);
	return r;
}

/* Does the unfolded field value contain "by HOSTNAME (sealgate)"? */
static int is_ours(const unsigned char *v, size_t len, const char *hostname)
{
	char *needle = sg_asprintf("by %s (sealgate)", hostname);
	size_t nlen = strlen(needle);
	int found = 0;
	/* Compare ignoring folding whitespace differences: collapse runs of
	 * WSP/CR/LF to one space first. */
	char *flat = sg_malloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		int ws = v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n';
		if (ws) {
			if (n > 0 && flat[n - 1] != ' ')
				flat[n++] = ' ';
		} else {
			flat[n++] = (char)v[i];
		}
	}
	flat[n] = '\0';
	for (size_t i = 0; i + nlen <= n && !found; i++)
		found = strncasecmp(flat + i, needle, nlen) == 0;
	free(flat);
	free(needle);
	return found;
}

void sg_trace_count(const unsigned char *msg, size_t len, const char *hostname,
		    struct sg_trace_count *count_r)
{
	size_t pos = 0;

	memset(count_r, 0, sizeof(*count_r));
	while (pos < len) {
		/* One field: a line plus its continuation lines. */
		size_t start = pos;
		const unsigned char *nl = memchr(msg + pos, '\n', len - pos);
		size_t eol = nl != NULL ? (size_t)(nl - msg) + 1 : len;
		if (eol - start <= 2 && (msg[start] == '\r' || msg[start] == '\n'))
			break; /* empty line: end of the header section */
		pos = eol;
		while (pos < len && (msg[pos] == ' ' || msg[pos] == '\t')) {
			nl = memchr(msg + pos, '\n', len - pos);
			pos = nl != NULL ? (size_t)(nl - msg) + 1 : len;
		}
		if (pos - start > 9 && strncasecmp((const char *)msg + start, "Received:", 9) == 0) {
			count_r->received++;
			if (is_ours(msg + start + 9, pos - start - 9, hostname))
				count_r->ours++;
		}
	}
}
