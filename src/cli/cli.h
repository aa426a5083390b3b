/* The sealgate command line: one file per subcommand (cmd-NAME.c), each
 * exporting int cmd_NAME(int argc, char **argv) with argv[0] the
 * subcommand's name. Exit codes are the SG_EXIT_* below. */
#ifndef SG_CLI_CLI_H
#define SG_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

/* Exit codes shared by all subcommands (sysexits.h values where they fit,
 * so that scripts and Postfix's pipe(8) understand them). */
#define SG_EXIT_OK 0
#define SG_EXIT_FAIL 1      /* the operation failed; stderr says why */
#define SG_EXIT_USAGE 64    /* EX_USAGE: bad command line */
#define SG_EXIT_DATAERR 65  /* EX_DATAERR: malformed input */
#define SG_EXIT_CONFIG 78   /* EX_CONFIG: bad configuration */
/* seal/unseal: one code per crypto failure class (crypto/crypto.h). */
#define SG_EXIT_NO_KEY 2
#define SG_EXIT_BAD_KEY 3
#define SG_EXIT_KEY_EXPIRED 4
#define SG_EXIT_KEY_REVOKED 5
#define SG_EXIT_WRONG_KEY 6
#define SG_EXIT_TAMPERED 7
#define SG_EXIT_UNKNOWN_SIGNER 8
#define SG_EXIT_BAD_SIGNATURE 9
#define SG_EXIT_UNSUPPORTED 10
#define SG_EXIT_MALFORMED SG_EXIT_DATAERR
/* rekey-msg: the message was left as it was (not encrypted, not for the old key). */
#define SG_EXIT_SKIPPED 11

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
int cmd_seal(int argc, char **argv);
int cmd_unseal(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_rekey_msg(int argc, char **argv);
int cmd_rekey(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_seal_mailbox(int argc, char **argv);
int cmd_key_lookup(int argc, char **argv);
int cmd_domain(int argc, char **argv);

/* Shared by seal/unseal (cmd-seal.c). */
struct sg_key;
struct sg_buf;
/* Exit code for a crypto status (SG_EXIT_*). */
int sg_cli_exit_for_status(int status);
/* Read all of stdin into out, bare LF line ends made CRLF. 1 ok, -1. */
int sg_cli_read_message(struct sg_buf *out, const char *cmd);
/* Load the key files; passphrase_file may be NULL. 1 ok; else an exit code
 * was printed and is returned negated. */
int sg_cli_load_keys(const char *cmd, char **paths, size_t n, const char *passphrase_file,
		     struct sg_key ***keys_r);
void sg_cli_free_keys(struct sg_key **keys, size_t n);
/* librnp prints its own diagnostics on stderr; the CLI promises one line.
 * Silence fd 2 around library calls (not when SEALGATE_DEBUG is set). */
int sg_cli_quiet_begin(void);
void sg_cli_quiet_end(int saved_fd);
/* Write all of data to stdout. 1 ok, -1. */
int sg_cli_write_out(const void *data, size_t len, const char *cmd);
/* The first line of a passphrase file (owned; wipe with sg_secret_free),
 * NULL with err. */
struct sg_error;
char *sg_cli_read_passphrase(const char *path, struct sg_error *err);

/* Where a command finds its configuration and store (cli/where.c): put
 * SG_CLI_WHERE_OPTIONS in the getopt_long table (short options "c:"), offer
 * each option to sg_cli_where_opt first, then build the config with
 * sg_cli_where_config. */
struct sg_cli_where {
	const char *config;    /* -c FILE, or NULL */
	const char *state_dir; /* --state-dir DIR, or NULL */
	const char *store;     /* --store SPEC, or NULL */
};
/* Long-only option values, above every character a command may use. */
enum { SG_CLI_OPT_STATE_DIR = 0x1000, SG_CLI_OPT_STORE };
#define SG_CLI_WHERE_OPTIONS                                           \
	{ "config", required_argument, NULL, 'c' },                    \
	{ "state-dir", required_argument, NULL, SG_CLI_OPT_STATE_DIR }, \
	{ "store", required_argument, NULL, SG_CLI_OPT_STORE }
/* 1 when c is one of the three (recorded in w), 0 when it is not. */
int sg_cli_where_opt(struct sg_cli_where *w, int c, const char *arg);
/* cfg = defaults, then the -c file, then --state-dir/--store over it. cfg
 * is initialised even when this fails (clear it). 1; -1 with err. */
int sg_cli_where_config(const struct sg_cli_where *w, struct sg_config *cfg, struct sg_error *err);

/* The key store for seal/unseal (cli/store-keys.c): set the option fields,
 * the rest is filled on first need. */
struct sg_cli_store {
	struct sg_cli_where where;    /* -c, --state-dir, --store */
	const char *master_key;       /* --master-key FILE (else master_key_file) */
	const char *master_pass_file; /* --master-passphrase-file FILE */
	struct sg_config cfg;
	bool cfg_loaded;
	struct sg_store *store;
	struct sg_master_key *mk;
};
int sg_cli_store_open(struct sg_cli_store *s, struct sg_error *err);
/* Opens the store too. */
int sg_cli_store_master(struct sg_cli_store *s, struct sg_error *err);
void sg_cli_store_close(struct sg_cli_store *s);

#endif
