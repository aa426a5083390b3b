/* sealgate version */
#include "cli/cli.h"
#include "version.h"

#include <event2/event.h>
#include <gmime/gmime.h>
#include <openssl/crypto.h>
#include <rnp/rnp.h>
#include <stdio.h>

int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("sealgate %s\n", SG_VERSION);
	printf("libraries: %s, libevent %s, librnp %s, GMime %u.%u.%u\n",
	       OpenSSL_version(OPENSSL_VERSION), event_get_version(), rnp_version_string(),
	       gmime_major_version, gmime_minor_version, gmime_micro_version);
	return SG_EXIT_OK;
}
