/* libFuzzer target: what a next hop says — reply lines, EHLO capability
 * text, "queued as" parsing — and the dot-stuffing encoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/proto.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sg_relay_reply_parser p;
	struct sg_error err = SG_ERROR_INIT;
	const char *s = (const char *)data;

	/* Reply lines, split at LF as the client does. */
	sg_relay_reply_parser_init(&p);
	for (size_t off = 0; off < size;) {
		const char *nl = memchr(s + off, '\n', size - off);
		size_t n = nl != NULL ? (size_t)(nl - (s + off)) : size - off;
		struct sg_reply r = { 0, NULL };
		int ret = sg_relay_reply_feed(&p, s + off, n, &r, &err);
		if (ret > 0 && r.text != NULL) {
			struct sg_relay_caps caps;
			sg_relay_parse_caps(r.text, &caps);
			free(sg_relay_queued_as(r.text, false));
			free(sg_relay_queued_as(r.text, true));
			sg_relay_reply_add_enhanced(&r);
		}
		sg_reply_clear(&r);
		sg_error_clear(&err);
		if (ret < 0)
			break;
		off += n + 1;
	}
	sg_relay_reply_parser_free(&p);

	/* The dot-stuffing encoder over the same bytes as a message. */
	struct sg_dotstuff ds;
	bool dot;
	sg_dotstuff_init(&ds);
	for (size_t off = 0; off < size;) {
		size_t n = sg_dotstuff_span(&ds, data + off, size - off, &dot);
		if (n == 0 && !dot)
			break;
		off += n;
	}
	(void)sg_dotstuff_end(&ds);
	char *x = sg_strndup(s, size);
	free(sg_xtext_encode(x));
	free(x);
	return 0;
}
