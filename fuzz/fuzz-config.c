/* libFuzzer target: the configuration parser on arbitrary text. */
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sg_config cfg;
	struct sg_error err = SG_ERROR_INIT;

	sg_config_defaults(&cfg);
	if (sg_config_parse(&cfg, "fuzz", (const char *)data, size, &err) > 0)
		(void)sg_config_check(&cfg, &err);
	sg_error_clear(&err);
	sg_config_clear(&cfg);
	return 0;
}
