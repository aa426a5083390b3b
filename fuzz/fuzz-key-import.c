/* libFuzzer target: arbitrary bytes as a fetched key (WKD body, LDAP value,
 * DNS record). The checks every fetched key passes must never crash, and
 * whatever they accept must be within the packet cap and name the address. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys/remote.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_keys_found out;
	const unsigned char *cert;
	size_t clen;

	(void)sg_keys_pgp_count_packets(data, size, SG_KEYS_MAX_PACKETS);
	if (sg_keys_smimea_parse(data, size, &cert, &clen) == 1 && (cert < data || cert + clen > data + size))
		sg_panic("SMIMEA certificate outside the record");
	int r = sg_keys_check_blob("alice@example.test", data, size, &out, &err);
	if (r == 1) {
		if (strcmp(out.kind, "pgp") == 0 &&
		    sg_keys_pgp_count_packets(out.data, out.len, SG_KEYS_MAX_PACKETS) < 0)
			sg_panic("accepted a key past the packet cap");
		free(out.kind);
		free(out.data);
	}
	sg_error_clear(&err);
	return 0;
}
