/* cli-batch: several sealgate subcommands in one process, each with its own
 * stdin and stdout files, through sealgate's own dispatcher (src/cli/main.c
 * is compiled in). For tests/integration/test_valgrind.py: one valgrind
 * start-up (about 60 libraries relocated and their symbols read, ~2 s of
 * CPU under memcheck) instead of one per command, and one leak check at
 * exit that still sees every command's leaks.
 *
 * usage: cli-batch IN OUT SUBCOMMAND [ARG...] [-- IN OUT SUBCOMMAND [ARG...]]...
 * Commands run in order (a later one may read an earlier one's OUT); each
 * prints "cli-batch: N: exit C" to stderr. Stops at the first non-zero
 * exit and exits with it; 0 when all succeed, 64 on bad usage. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sg_cli_main(int argc, char **argv);
#define main sg_cli_main
#include "../src/cli/main.c"
#undef main

/* Point fd at path (opened with flags); 0 or -1. */
static int redirect(int fd, const char *path, int flags)
{
	int f = open(path, flags | O_CLOEXEC, 0600);

	if (f < 0) {
		perror(path);
		return -1;
	}
	if (dup2(f, fd) < 0) {
		perror("dup2");
		close(f);
		return -1;
	}
	close(f);
	return 0;
}

/* args: IN OUT SUBCOMMAND ARG..., n of them. */
static int run_one(char **args, int n)
{
	char **argv = calloc((size_t)n, sizeof(*argv));
	int rc;

	if (argv == NULL)
		return 70;
	fflush(stdout);
	if (redirect(STDIN_FILENO, args[0], O_RDONLY) < 0 ||
	    redirect(STDOUT_FILENO, args[1], O_WRONLY | O_CREAT | O_TRUNC) < 0) {
		free(argv);
		return 66;
	}
	argv[0] = "sealgate";
	for (int i = 2; i < n; i++)
		argv[i - 1] = args[i];
	optind = 0; /* getopt_long() starts afresh for each command */
	rc = sg_cli_main(n - 1, argv);
	fflush(stdout);
	free(argv);
	return rc;
}

int main(int argc, char **argv)
{
	int start = 1, nr = 0, rc = 0;

	while (start < argc && rc == 0) {
		int end = start;
		while (end < argc && strcmp(argv[end], "--") != 0)
			end++;
		if (end - start < 3) {
			fprintf(stderr, "usage: cli-batch IN OUT SUBCOMMAND [ARG...] [-- ...]...\n");
			return 64;
		}
		rc = run_one(argv + start, end - start);
		fprintf(stderr, "cli-batch: %d: exit %d\n", ++nr, rc);
		start = end + 1;
	}
	return rc;
}
