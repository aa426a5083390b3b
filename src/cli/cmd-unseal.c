/* sealgate unseal: decrypt and verify one message read from stdin; a
 * one-line summary of what was found goes to stderr. */
#include "cli/cli.h"
#include "crypto/crypto.h"
#include "mime/seal.h"
#include "util/buf.h"
#include "util/mem.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unseal_opts {
	char **key_files;
	size_t n_keys;
	char **verify_files;
	size_t n_verify;
	const char *passphrase_file;
};

static void unseal_usage(FILE *f)
{
	fprintf(f, "usage: sealgate unseal [--key FILE]... [--passphrase-file FILE] [--verify-key FILE]...\n"
		   "                       < in.eml > out.eml\n"
		   "Decrypts with the secret keys (--key/--cert), verifies signatures against\n"
		   "--verify-key (and --key) keys, restores the protected Subject.\n"
		   "Exit: 0 ok, 2 no key, 3 bad key, 4 signer key expired, 5 signer key revoked,\n"
		   "6 wrong key, 7 tampered, 8 unknown signer, 9 bad signature, 10 unsupported,\n"
		   "65 malformed input, 64 usage. With 9 nothing is written to stdout.\n");
}

static void add_str(char ***arr, size_t *n, char *s)
{
	*arr = sg_reallocarray(*arr, *n + 1, sizeof(**arr));
	(*arr)[(*n)++] = s;
}

static int unseal_parse(int argc, char **argv, struct unseal_opts *o)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "cert", required_argument, NULL, 'k' },
		{ "verify-key", required_argument, NULL, 'v' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'k': add_str(&o->key_files, &o->n_keys, optarg); break;
		case 'v': add_str(&o->verify_files, &o->n_verify, optarg); break;
		case 'p': o->passphrase_file = optarg; break;
		case 'c': case 'd': break; /* accepted; no configuration is read yet */
		case 'h': unseal_usage(stdout); return 0;
		default: unseal_usage(stderr); return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "sealgate unseal: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 1;
}

static const char *sig_name(enum sg_sig_status s)
{
	static const char *const names[] = {
		[SG_SIG_NONE] = "none", [SG_SIG_VALID] = "valid", [SG_SIG_BAD] = "BAD",
		[SG_SIG_UNKNOWN_SIGNER] = "unknown signer", [SG_SIG_KEY_EXPIRED] = "signer key expired",
		[SG_SIG_KEY_REVOKED] = "signer key revoked",
	};
	return (size_t)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static int sig_exit(enum sg_sig_status s)
{
	switch (s) {
	case SG_SIG_BAD: return SG_EXIT_BAD_SIGNATURE;
	case SG_SIG_UNKNOWN_SIGNER: return SG_EXIT_UNKNOWN_SIGNER;
	case SG_SIG_KEY_EXPIRED: return SG_EXIT_KEY_EXPIRED;
	case SG_SIG_KEY_REVOKED: return SG_EXIT_KEY_REVOKED;
	default: return SG_EXIT_OK;
	}
}

static void summary(const struct sg_unseal_result *res)
{
	fprintf(stderr, "sealgate unseal: encrypted: %s; decrypted with: %s; authenticated: %s; signature: %s%s%s%s%s\n",
		res->was_encrypted ? "yes" : "no", res->decrypted_with != NULL ? res->decrypted_with : "-",
		res->authenticated ? "yes" : "no", sig_name(res->sig), res->signer != NULL ? " by " : "",
		res->signer != NULL ? res->signer : "", res->warning != NULL ? "; warning: " : "",
		res->warning != NULL ? res->warning : "");
}

static int unseal_run(struct sg_key **keys, size_t n_keys, struct sg_key **vkeys, size_t n_v)
{
	struct sg_buf in, out;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_unseal_result res;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	int code = SG_EXIT_FAIL;

	memset(&res, 0, sizeof(res));
	sg_buf_init(&in, (size_t)1 << 30);
	sg_buf_init(&out, (size_t)1 << 30);
	if (sg_cli_read_message(&in, "unseal") < 0)
		goto out;
	struct sg_unseal_req req = { keys, n_keys, vkeys, n_v };
	int quiet = sg_cli_quiet_begin();
	int r = sg_unseal(in.data, in.len, &req, &out, &res, &st, &err);
	sg_cli_quiet_end(quiet);
	if (r < 0) {
		fprintf(stderr, "sealgate %s\n", sg_error_msg(&err));
		code = sg_cli_exit_for_status(st);
		if (code == SG_EXIT_OK)
			code = SG_EXIT_FAIL;
		goto out;
	}
	summary(&res);
	code = sig_exit(res.sig);
	/* A bad signature means the content was changed: do not pass it on. */
	if (code != SG_EXIT_BAD_SIGNATURE && sg_cli_write_out(out.data, out.len, "unseal") < 0)
		code = SG_EXIT_FAIL;
out:
	sg_unseal_result_clear(&res);
	sg_error_clear(&err);
	sg_buf_free_secret(&out);
	sg_buf_free(&in);
	return code;
}

int cmd_unseal(int argc, char **argv)
{
	struct unseal_opts o;
	struct sg_key **keys = NULL, **vkeys = NULL;
	int code, r;

	memset(&o, 0, sizeof(o));
	r = unseal_parse(argc, argv, &o);
	if (r <= 0) {
		code = r == 0 ? SG_EXIT_OK : SG_EXIT_USAGE;
		goto out;
	}
	r = sg_cli_load_keys("unseal", o.key_files, o.n_keys, o.passphrase_file, &keys);
	if (r > 0)
		r = sg_cli_load_keys("unseal", o.verify_files, o.n_verify, NULL, &vkeys);
	if (r < 0) {
		code = -r;
		goto out;
	}
	code = unseal_run(keys, o.n_keys, vkeys, o.n_verify);
out:
	sg_cli_free_keys(keys, o.n_keys);
	sg_cli_free_keys(vkeys, o.n_verify);
	free(o.key_files);
	free(o.verify_files);
	return code;
}
