/* sealgate serve: placeholder until the gateway pipeline lands. */
#include "cli/cli.h"

#include <stdio.h>

int cmd_serve(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sealgate serve: not built yet\n");
	return SG_EXIT_FAIL;
}
