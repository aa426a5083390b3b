/* libFuzzer target: a peer's domain-key bundle ([domain], publish.c).
 * Input: "DOMAIN\n" then the bundle bytes. Parsing must never crash, and a
 * bundle it accepts must hold a domain signing certificate naming DOMAIN
 * and encryption certificates that name it too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "domain/domain.h"
#include "util/log.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_domain_bundle b;
	const uint8_t *nl = memchr(data, '\n', size);

	if (nl == NULL || nl == data || nl - data > 253)
		return 0;
	char *domain = sg_strndup((const char *)data, (size_t)(nl - data));
	const uint8_t *body = nl + 1;
	size_t len = size - (size_t)(nl - data) - 1;
	if (sg_domain_bundle_parse(body, len, domain, &b, &err) == 1) {
		if (!b.signing.ca || !sg_domcert_names(&b.signing, domain))
			sg_panic("accepted a bundle whose signing certificate is wrong");
		for (size_t i = 0; i < b.n_enc; i++)
			if (b.enc[i].ca || !sg_domcert_names(&b.enc[i], domain))
				sg_panic("accepted a wrong encryption certificate");
		long k = sg_domain_bundle_pick(&b, 1900000000);
		if (k >= (long)b.n_enc)
			sg_panic("pick out of range");
		sg_domain_bundle_clear(&b);
	}
	sg_error_clear(&err);
	free(domain);
	return 0;
}
