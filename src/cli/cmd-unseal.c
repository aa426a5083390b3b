/* sealgate unseal: decrypt and verify one message read from stdin; a
 * one-line summary of what was found goes to stderr. */
#include "cli/cli.h"
#include "config/config.h"
#include "crypto/crypto.h"
#include "crypto/smime.h"
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
	const char *config;
	const char *revocation; /* --revocation, else the config's smime_revocation */
	char *crl_files;        /* --crl FILE..., joined */
};

static void unseal_usage(FILE *f)
{
	fprintf(f, "usage: sealgate unseal [--key FILE]... [--passphrase-file FILE] [--verify-key FILE]...\n"
		   "                       [-c FILE] [--crl FILE]... [--revocation off|crl|require]\n"
		   "                       < in.eml > out.eml\n"
		   "Decrypts with the secret keys (--key/--cert), verifies signatures against\n"
		   "--verify-key (and --key) keys, restores the protected Subject.\n"
		   "S/MIME signer certificates are checked against CRLs: --crl (implies\n"
		   "--revocation crl) and the config's smime_revocation/smime_crl_files/smime_crl_dir.\n"
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
		{ "crl", required_argument, NULL, 'r' },
		{ "revocation", required_argument, NULL, 'R' },
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
		case 'c': o->config = optarg; break;
		case 'd': break; /* accepted; keys come from --key */
		case 'r': {
			char *joined = sg_asprintf("%s%s%s", o->crl_files != NULL ? o->crl_files : "",
						   o->crl_files != NULL ? " " : "", optarg);
			free(o->crl_files);
			o->crl_files = joined;
			break;
		}
		case 'R': o->revocation = optarg; break;
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

/* CRLs from the config (-c) and the command line; 1 ok, -1 printed. */
static int load_revocation(const struct unseal_opts *o, struct sg_smime_revocation **rev_r)
{
	struct sg_config cfg;
	struct sg_error err = SG_ERROR_INIT;
	int r;

	sg_config_defaults(&cfg);
	r = o->config != NULL ? sg_config_load(&cfg, o->config, &err) : 1;
	if (r > 0) {
		const char *mode = o->revocation != NULL ? o->revocation
				   : o->crl_files != NULL && strcmp(cfg.smime_revocation, "off") == 0
				   ? "crl" : cfg.smime_revocation;
		char *files = sg_asprintf("%s %s", cfg.smime_crl_files,
					  o->crl_files != NULL ? o->crl_files : "");
		r = sg_smime_revocation_load(mode, files, cfg.smime_crl_dir, rev_r, &err);
		free(files);
	}
	if (r < 0)
		fprintf(stderr, "sealgate unseal: %s\n", sg_error_msg(&err));
	sg_error_clear(&err);
	sg_config_clear(&cfg);
	return r < 0 ? -1 : 1;
}

static int unseal_run(struct sg_key **keys, size_t n_keys, struct sg_key **vkeys, size_t n_v,
		      const struct sg_smime_revocation *rev)
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
	struct sg_unseal_req req = { keys, n_keys, vkeys, n_v, rev };
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
	struct sg_smime_revocation *rev = NULL;
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
	if (load_revocation(&o, &rev) < 0) {
		code = SG_EXIT_USAGE;
		goto out;
	}
	code = unseal_run(keys, o.n_keys, vkeys, o.n_verify, rev);
out:
	sg_smime_revocation_free(&rev);
	free(o.crl_files);
	sg_cli_free_keys(keys, o.n_keys);
	sg_cli_free_keys(vkeys, o.n_verify);
	free(o.key_files);
	free(o.verify_files);
	return code;
}
