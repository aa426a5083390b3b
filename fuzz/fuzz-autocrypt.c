/* libFuzzer target: arbitrary bytes as an inbound message for Autocrypt
 * harvesting (header parsing, Authentication-Results, the From rule). It
 * must never crash, and what it accepts must name the From address. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys/autocrypt.h"
#include "mime/message.h"
#include "util/log.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sg_msg_view v;
	struct sg_autocrypt ac;
	struct sg_error err = SG_ERROR_INIT;

	if (sg_msg_split(data, size, &v, NULL) == 1 &&
	    sg_autocrypt_from_message(&v, "mx.test", &ac, &err) == 1) {
		if (ac.addr == NULL || ac.keydata == NULL || strchr(ac.addr, '@') == NULL)
			sg_panic("accepted an Autocrypt header without addr or keydata");
		sg_autocrypt_clear(&ac);
	}
	sg_error_clear(&err);
	/* The same bytes as one header value and one A-R value. */
	char *s = sg_strndup((const char *)data, size);
	if (sg_autocrypt_parse(s, &ac, &err) == 1)
		sg_autocrypt_clear(&ac);
	(void)sg_autocrypt_dkim_pass(s, "mx.test", "b.test");
	free(s);
	sg_error_clear(&err);
	return 0;
}
