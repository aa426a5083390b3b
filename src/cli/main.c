/* sealgate: dispatch to a subcommand. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

const struct sg_cli_command sg_cli_commands[] = {
	{ "serve", cmd_serve, "run the gateway (SMTP/LMTP filter)" },
	{ "seal", cmd_seal, "encrypt and/or sign a message (PGP/MIME, S/MIME) from stdin" },
	{ "unseal", cmd_unseal, "decrypt and verify a message from stdin" },
	{ "seal-mailbox", cmd_seal_mailbox, "seal the mail already in a user's Maildir" },
	{ "key", cmd_key, "manage the key store; publish keys (WKD)" },
	{ "rekey", cmd_rekey, "re-wrap every message of a Maildir for a new key (journal, resumable)" },
	{ "rekey-msg", cmd_rekey_msg, "re-wrap one stored message's session key for a new key (stdin to stdout)" },
	{ "policy", cmd_policy, "explain the outbound policy: policy test --from A --to B" },
	{ "domain", cmd_domain, "domain keys for gateway-to-gateway sealing: init, rotate, status, export" },
	{ "key-lookup", cmd_key_lookup, "find a key through the remote chain (WKD, LDAP, DNS; cached)" },
	{ "version", cmd_version, "print the version" },
	{ "help", cmd_help, "list the subcommands, or explain one" },
	{ NULL, NULL, NULL },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		cmd_help(1, argv);
		return SG_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(argc - 1, argv + 1);
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(argc - 1, argv + 1);
	for (const struct sg_cli_command *c = sg_cli_commands; c->name != NULL; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->run(argc - 1, argv + 1);
	fprintf(stderr, "sealgate: unknown command '%s' (try 'sealgate help')\n", argv[1]);
	return SG_EXIT_USAGE;
}
