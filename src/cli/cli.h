/* The sealgate command line: one file per subcommand (cmd-NAME.c), each
 * exporting int cmd_NAME(int argc, char **argv) with argv[0] the
 * subcommand's name. Exit codes are the SG_EXIT_* below. */
#ifndef SG_CLI_CLI_H
#define SG_CLI_CLI_H

/* Exit codes shared by all subcommands (sysexits.h values where they fit,
 * so that scripts and Postfix's pipe(8) understand them). */
#define SG_EXIT_OK 0
#define SG_EXIT_FAIL 1      /* the operation failed; stderr says why */
#define SG_EXIT_USAGE 64    /* EX_USAGE: bad command line */
#define SG_EXIT_DATAERR 65  /* EX_DATAERR: malformed input */
#define SG_EXIT_CONFIG 78   /* EX_CONFIG: bad configuration */

struct sg_cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

/* NULL-terminated table in main.c. */
extern const struct sg_cli_command sg_cli_commands[];

int cmd_help(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
