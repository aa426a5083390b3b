/* libFuzzer target: the policy rules parser, then a match over the parsed
 * rules, on arbitrary text. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char hdr[] = "Subject: [secure] x\r\nX-Sealgate-Encrypt: yes\r\n\r\n";
	struct sg_policy_rules *rs = NULL;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_msg_view v;

	if (sg_policy_rules_parse("fuzz", (const char *)data, size, &rs, &err) > 0 &&
	    sg_msg_split((const unsigned char *)hdr, strlen(hdr), &v, NULL) == 1) {
		(void)sg_policy_rules_match(rs, "a@a.test", "b@b.test", &v);
		(void)sg_policy_rules_match(rs, "", "x@partner.test", NULL);
	}
	sg_policy_rules_free(&rs);
	sg_error_clear(&err);
	return 0;
}
