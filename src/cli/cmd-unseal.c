/* sealgate unseal: decrypt and verify one message read from stdin, with
 * --key files or the key store's sealed secret keys; a one-line summary of
 * what was found goes to stderr. */
#include "cli/cli.h"
#include "config/config.h"
#include "crypto/crypto.h"
#include "crypto/pgp.h"
#include "crypto/smime.h"
#include "keys/keystore.h"
#include "keys/secret.h"
#include "mime/message.h"
#include "mime/seal.h"
#include "store/store.h"
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
	struct sg_cli_store st;  /* without --key: the key store's secret keys */
	const char *revocation; /* --revocation, else the config's smime_revocation */
	char *crl_files;        /* --crl FILE..., joined */
};

static void unseal_usage(FILE *f)
{
	fprintf(f, "usage: sealgate unseal [--key FILE]... [--passphrase-file FILE] [--verify-key FILE]...\n"
		   "                       [-c FILE | --state-dir DIR]\n"
		   "                       [--master-key FILE | --master-passphrase-file FILE]\n"
		   "                       [--crl FILE]... [--revocation off|crl|require] < in.eml > out.eml\n"
		   "Decrypts with the secret keys (--key/--cert; without --key, the key store's\n"
		   "secret keys that the message is addressed to, opened with the master key),\n"
		   "verifies signatures against --verify-key (and --key) keys, or without them\n"
		   "the stored keys of the From address; restores the protected Subject.\n"
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
		SG_CLI_WHERE_OPTIONS,
		{ "master-key", required_argument, NULL, 'm' },
		{ "master-passphrase-file", required_argument, NULL, 'M' },
		{ "crl", required_argument, NULL, 'r' },
		{ "revocation", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (sg_cli_where_opt(&o->st.where, c, optarg))
			continue;
		switch (c) {
		case 'k': add_str(&o->key_files, &o->n_keys, optarg); break;
		case 'v': add_str(&o->verify_files, &o->n_verify, optarg); break;
		case 'p': o->passphrase_file = optarg; break;
		case 'm': o->st.master_key = optarg; break;
		case 'M': o->st.master_pass_file = optarg; break;
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

	r = sg_cli_where_config(&o->st.where, &cfg, &err);
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

/* ---- keys from the key store ---- */

struct keyid_set {
	char **ids;
	size_t n;
};

static bool has_recipient_keyid(const struct sg_key *pub, void *ctx)
{
	const struct keyid_set *set = ctx;
	const struct sg_pgp_key *k = sg_key_pgp(pub);

	for (size_t i = 0; k != NULL && i < set->n; i++)
		if (sg_pgp_key_has_keyid(k, set->ids[i]) == 1)
			return true;
	return false;
}

static void free_ids(struct keyid_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->ids[i]);
	free(set->ids);
}

/* The stored secret keys the message is encrypted to: OpenPGP keys whose
 * (sub)key IDs its PKESKs name (every stored one when a recipient is
 * hidden); for S/MIME every stored X.509 key (sg_unseal picks the one a
 * RecipientInfo names before any private-key operation). 1 (maybe none:
 * not encrypted); -1 with status and err. */
static int store_secrets(struct unseal_opts *o, const struct sg_msg_view *v, struct sg_key ***keys_r,
			 size_t *n_r, enum sg_crypto_status *status_r, struct sg_error *err)
{
	enum sg_msg_class cls = sg_msg_classify(v);
	struct keyid_set set = { NULL, 0 };
	bool hidden = false;
	enum sg_key_kind kind = SG_KEY_PGP;
	int ret = -1;

	*status_r = SG_CRYPTO_INTERNAL;
	if (cls == SG_MSG_SMIME_ENCRYPTED)
		kind = SG_KEY_X509;
	else if (cls != SG_MSG_PGP_ENCRYPTED && cls != SG_MSG_PGP_INLINE)
		return 1;
	if (kind == SG_KEY_PGP && sg_pgp_message_recipients(v->data, v->len, &set.ids, &set.n, &hidden, err) < 0)
		goto out;
	if (sg_cli_store_master(&o->st, err) < 0) {
		*status_r = SG_CRYPTO_NO_KEY; /* no --key, and the store's keys cannot be opened */
		sg_error_prefix(err, "no %s secret key given with --key, and none from the key store",
				kind == SG_KEY_PGP ? "OpenPGP" : "X.509");
		goto out;
	}
	int r = sg_keys_find_secrets(o->st.store, o->st.mk, kind,
				     kind == SG_KEY_PGP && !hidden ? has_recipient_keyid : NULL, &set, keys_r, n_r, err);
	if (r < 0)
		goto out;
	if (*n_r == 0) {
		*status_r = SG_CRYPTO_NO_KEY;
		if (set.n > 0)
			sg_error_set(err, "no OpenPGP secret key in the key store for this message "
				     "(recipient key ID%s %s%s)", set.n > 1 ? "s" : "", set.ids[0],
				     set.n > 1 ? ", ..." : "");
		else
			sg_error_set(err, "no %s secret key in the key store for this message",
				     kind == SG_KEY_PGP ? "OpenPGP" : "X.509");
		goto out;
	}
	ret = 1;
out:
	free_ids(&set);
	return ret;
}

/* The From address's stored public keys, to verify its signature with. */
static void store_verify_keys(struct unseal_opts *o, const struct sg_msg_view *v, struct sg_key ***keys_r,
			      size_t *n_r)
{
	struct sg_msg_field f;
	struct sg_store_key *rows = NULL;
	size_t n = 0;
	char *from = NULL, *addr = NULL;

	if (sg_msg_find_field(v, "From", &f) != 1 || sg_cli_store_open(&o->st, NULL) < 0)
		return;
	from = sg_msg_field_value(&f);
	char *lt = strrchr(from, '<'), *gt = lt != NULL ? strchr(lt, '>') : NULL;
	if (gt != NULL)
		*gt = '\0';
	addr = sg_keys_normalize_addr(lt != NULL ? lt + 1 : from, NULL);
	if (addr != NULL && sg_store_key_list(o->st.store, addr, &rows, &n, NULL) == 1)
		for (size_t i = 0; i < n; i++) {
			struct sg_key *k = NULL;
			enum sg_crypto_status st;
			if (sg_key_load_mem(rows[i].data, rows[i].len, NULL, &k, &st, NULL) != 1)
				continue;
			*keys_r = sg_reallocarray(*keys_r, *n_r + 1, sizeof(**keys_r));
			(*keys_r)[(*n_r)++] = k;
		}
	sg_store_keys_free(&rows, n);
	free(addr);
	free(from);
}

static int unseal_run(const struct sg_buf *in, struct sg_key **keys, size_t n_keys, struct sg_key **vkeys,
		      size_t n_v, const struct sg_smime_revocation *rev)
{
	struct sg_buf out;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_unseal_result res;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	int code = SG_EXIT_FAIL;

	memset(&res, 0, sizeof(res));
	sg_buf_init(&out, (size_t)1 << 30);
	struct sg_unseal_req req = { keys, n_keys, vkeys, n_v, rev };
	int quiet = sg_cli_quiet_begin();
	int r = sg_unseal(in->data, in->len, &req, &out, &res, &st, &err);
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
	return code;
}

/* Without --key: secret keys (and, without --verify-key, the sender's
 * keys) from the key store. 1, or -1 with status and err. */
static int keys_from_store(struct unseal_opts *o, const struct sg_buf *in, struct sg_key ***keys_r,
			   size_t *n_r, struct sg_key ***vkeys_r, size_t *n_v_r,
			   enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_msg_view v;

	*status_r = SG_CRYPTO_MALFORMED;
	if (sg_msg_split(in->data, in->len, &v, err) < 0 || store_secrets(o, &v, keys_r, n_r, status_r, err) < 0)
		return -1;
	if (*n_v_r == 0)
		store_verify_keys(o, &v, vkeys_r, n_v_r);
	return 1;
}

int cmd_unseal(int argc, char **argv)
{
	struct unseal_opts o;
	struct sg_key **keys = NULL, **vkeys = NULL;
	struct sg_buf in;
	struct sg_smime_revocation *rev = NULL;
	int code, r;

	memset(&o, 0, sizeof(o));
	sg_buf_init(&in, (size_t)1 << 30);
	r = unseal_parse(argc, argv, &o);
	if (r <= 0) {
		code = r == 0 ? SG_EXIT_OK : SG_EXIT_USAGE;
		goto out;
	}
	r = sg_cli_load_keys("unseal", o.key_files, o.n_keys, o.passphrase_file, &keys);
	if (r > 0)
		r = sg_cli_load_keys("unseal", o.verify_files, o.n_verify, NULL, &vkeys);
	if (r > 0 && sg_cli_read_message(&in, "unseal") < 0)
		r = -SG_EXIT_FAIL;
	if (r > 0 && o.n_keys == 0) {
		struct sg_error err = SG_ERROR_INIT;
		enum sg_crypto_status st = SG_CRYPTO_OK;
		int quiet = sg_cli_quiet_begin();
		r = keys_from_store(&o, &in, &keys, &o.n_keys, &vkeys, &o.n_verify, &st, &err);
		sg_cli_quiet_end(quiet);
		if (r < 0) {
			fprintf(stderr, "sealgate unseal: %s\n", sg_error_msg(&err));
			r = -sg_cli_exit_for_status(st);
		}
		sg_error_clear(&err);
	}
	if (r < 0) {
		code = -r;
		goto out;
	}
	if (load_revocation(&o, &rev) < 0) {
		code = SG_EXIT_USAGE;
		goto out;
	}
	code = unseal_run(&in, keys, o.n_keys, vkeys, o.n_verify, rev);
out:
	sg_smime_revocation_free(&rev);
	free(o.crl_files);
	sg_cli_free_keys(keys, o.n_keys);
	sg_cli_free_keys(vkeys, o.n_verify);
	sg_cli_store_close(&o.st);
	sg_buf_free(&in);
	free(o.key_files);
	free(o.verify_files);
	return code;
}
