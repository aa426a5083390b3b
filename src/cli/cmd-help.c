/* sealgate help [COMMAND] */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

int cmd_help(int argc, char **argv)
{
	if (argc >= 2) {
		for (const struct sg_cli_command *c = sg_cli_commands; c->name != NULL; c++) {
			if (strcmp(argv[1], c->name) == 0) {
				char *sub[] = { (char *)c->name, (char *)"--help", NULL };
				return c->run(2, sub);
			}
		}
		fprintf(stderr, "sealgate: unknown command '%s'\n", argv[1]);
		return SG_EXIT_USAGE;
	}
	printf("usage: sealgate COMMAND [OPTIONS]\n\n"
	       "sealgate is a secure mail gateway: it seals mail (OpenPGP, S/MIME) on its way\n"
	       "through Postfix. Every command takes -c FILE (configuration) and\n"
	       "--state-dir DIR (where state lives; default ./var).\n\ncommands:\n");
	for (const struct sg_cli_command *c = sg_cli_commands; c->name != NULL; c++)
		printf("  %-10s %s\n", c->name, c->summary);
	printf("\n'sealgate help COMMAND' or 'sealgate COMMAND --help' explains one; see also sealgate(8).\n");
	return SG_EXIT_OK;
}
