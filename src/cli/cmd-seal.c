/* sealgate seal: encrypt and/or sign one message read from stdin, keys
 * from --key files or the key store. Also the helpers that
 * seal and unseal share: key loading, stdin, exit codes. */
#include "cli/cli.h"
#include "config/config.h"
#include "store/store.h"
#include "keys/lookup.h"
#include "keys/secret.h"
#include "crypto/crypto.h"
#include "mime/message.h"
#include "mime/seal.h"
#include "util/buf.h"
#include "util/mem.h"
#include "util/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Largest message accepted on stdin. */
#define SG_CLI_MSG_MAX ((size_t)1 << 30)

static const struct {
	enum sg_crypto_status st;
	int code;
} exit_codes[] = {
	{ SG_CRYPTO_OK, SG_EXIT_OK },
	{ SG_CRYPTO_NO_KEY, SG_EXIT_NO_KEY },
	{ SG_CRYPTO_BAD_KEY, SG_EXIT_BAD_KEY },
	{ SG_CRYPTO_KEY_EXPIRED, SG_EXIT_KEY_EXPIRED },
	{ SG_CRYPTO_KEY_REVOKED, SG_EXIT_KEY_REVOKED },
	{ SG_CRYPTO_WRONG_KEY, SG_EXIT_WRONG_KEY },
	{ SG_CRYPTO_TAMPERED, SG_EXIT_TAMPERED },
	{ SG_CRYPTO_UNKNOWN_SIGNER, SG_EXIT_UNKNOWN_SIGNER },
	{ SG_CRYPTO_MALFORMED, SG_EXIT_MALFORMED },
	{ SG_CRYPTO_UNSUPPORTED, SG_EXIT_UNSUPPORTED },
	{ SG_CRYPTO_INTERNAL, SG_EXIT_FAIL },
};

int sg_cli_exit_for_status(int status)
{
	for (size_t i = 0; i < sizeof(exit_codes) / sizeof(exit_codes[0]); i++)
		if ((int)exit_codes[i].st == status)
			return exit_codes[i].code;
	return SG_EXIT_FAIL;
}

static bool has_bare_lf(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return true;
	return false;
}

int sg_cli_read_message(struct sg_buf *out, const char *cmd)
{
	struct sg_buf raw;
	unsigned char chunk[65536];
	ssize_t n;
	int ret = -1;

	sg_buf_init(&raw, SG_CLI_MSG_MAX);
	while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "sealgate %s: reading stdin: %s\n", cmd, strerror(errno));
			goto out;
		}
		if (sg_buf_append(&raw, chunk, (size_t)n) != 1) {
			fprintf(stderr, "sealgate %s: message larger than %zu bytes\n", cmd, raw.max);
			goto out;
		}
	}
	/* RFC 5322 s2.3: mail is CRLF; files on disk often are not. */
	if (has_bare_lf(raw.data, raw.len)) {
		struct sg_error err = SG_ERROR_INIT;
		if (sg_msg_to_crlf(raw.data, raw.len, out, &err) < 0) {
			fprintf(stderr, "sealgate %s: %s\n", cmd, sg_error_msg(&err));
			sg_error_clear(&err);
			goto out;
		}
	} else {
		sg_buf_free(out);
		*out = raw;
		sg_buf_init(&raw, SG_CLI_MSG_MAX);
	}
	ret = 1;
out:
	sg_buf_free(&raw);
	return ret;
}

int sg_cli_quiet_begin(void)
{
	if (getenv("SEALGATE_DEBUG") != NULL)
		return -1;
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (saved < 0 || null < 0 || dup2(null, STDERR_FILENO) < 0) {
		if (null >= 0)
			close(null);
		if (saved >= 0)
			close(saved);
		return -1;
	}
	close(null);
	return saved;
}

void sg_cli_quiet_end(int saved_fd)
{
	if (saved_fd < 0)
		return;
	dup2(saved_fd, STDERR_FILENO);
	close(saved_fd);
}

int sg_cli_write_out(const void *data, size_t len, const char *cmd)
{
	const unsigned char *p = data;

	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "sealgate %s: writing stdout: %s\n", cmd, strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 1;
}

char *sg_cli_read_passphrase(const char *path, struct sg_error *err)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	if (f == NULL) {
		sg_error_set(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	if (n < 0) {
		free(line);
		return sg_strdup("");
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

int sg_cli_load_keys(const char *cmd, char **paths, size_t n, const char *passphrase_file,
		     struct sg_key ***keys_r)
{
	struct sg_key **keys = sg_calloc(n + 1, sizeof(*keys));
	char *pass = NULL;
	int ret = -SG_EXIT_FAIL;

	if (passphrase_file != NULL) {
		struct sg_error err = SG_ERROR_INIT;
		if ((pass = sg_cli_read_passphrase(passphrase_file, &err)) == NULL) {
			fprintf(stderr, "sealgate %s: %s\n", cmd, sg_error_msg(&err));
			sg_error_clear(&err);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct sg_error err = SG_ERROR_INIT;
		enum sg_crypto_status st = SG_CRYPTO_BAD_KEY;
		int quiet = sg_cli_quiet_begin();
		int r = sg_key_load_file(paths[i], pass, &keys[i], &st, &err);
		sg_cli_quiet_end(quiet);
		if (r < 0) {
			fprintf(stderr, "sealgate %s: key %s\n", cmd, sg_error_msg(&err));
			sg_error_clear(&err);
			ret = -sg_cli_exit_for_status(st);
			goto out;
		}
	}
	*keys_r = keys;
	keys = NULL;
	ret = 1;
out:
	if (pass != NULL)
		sg_secret_free(&pass, strlen(pass));
	sg_cli_free_keys(keys, n);
	return ret;
}

void sg_cli_free_keys(struct sg_key **keys, size_t n)
{
	if (keys == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		sg_key_free(&keys[i]);
	free(keys);
}

/* ---- seal ---- */

struct seal_opts {
	char **to;
	size_t n_to;
	char **key_files;
	size_t n_keys;
	const char *sign_as;
	const char *passphrase_file;
	const char *subject;
	enum sg_seal_format format;
	bool gcm;
	bool opaque;
	struct sg_cli_store st;  /* -c, --state-dir, --master-key: the key store */
};

static void seal_usage(FILE *f)
{
	fprintf(f, "usage: sealgate seal --to ADDR [--to ADDR...] [--sign-as ADDR] [--pgp|--smime]\n"
		   "                     [--key FILE]... [--passphrase-file FILE] [--subject TEXT]\n"
		   "                     [--gcm] [--opaque] [-c FILE | --state-dir DIR]\n"
		   "                     [--master-key FILE | --master-passphrase-file FILE] < in.eml > out.eml\n"
		   "Encrypts to every --to (keys chosen among the --key/--cert files by address,\n"
		   "else from the key store of -c FILE / --state-dir DIR),\n"
		   "signs with --sign-as (its secret key from --key, else the store's sealed\n"
		   "secret key, opened with the master key), or both; with no --to, signs only. The outer Subject\n"
		   "becomes --subject (default \"...\"), the real one travels encrypted.\n"
		   "Exit: 0 ok (also: already encrypted, passed unchanged), 2 no key, 3 bad key,\n"
		   "4 key expired, 5 key revoked, 10 unsupported, 65 malformed input, 64 usage.\n");
}

static void add_str(char ***arr, size_t *n, char *s)
{
	*arr = sg_reallocarray(*arr, *n + 1, sizeof(**arr));
	(*arr)[(*n)++] = s;
}

/* 1 parsed, 0 --help shown, -1 usage error. */
static int seal_parse(int argc, char **argv, struct seal_opts *o)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "sign-as", required_argument, NULL, 's' },
		{ "pgp", no_argument, NULL, 'P' },
		{ "smime", no_argument, NULL, 'S' },
		{ "key", required_argument, NULL, 'k' },
		{ "cert", required_argument, NULL, 'k' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "subject", required_argument, NULL, 'j' },
		{ "gcm", no_argument, NULL, 'g' },
		{ "opaque", no_argument, NULL, 'o' },
		SG_CLI_WHERE_OPTIONS,
		{ "master-key", required_argument, NULL, 'm' },
		{ "master-passphrase-file", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->format = SG_SEAL_PGP;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		/* -c, --state-dir and --store name the key store used when
		 * --key has no key for a recipient. */
		if (sg_cli_where_opt(&o->st.where, c, optarg))
			continue;
		switch (c) {
		case 't': add_str(&o->to, &o->n_to, optarg); break;
		case 's': o->sign_as = optarg; break;
		case 'P': o->format = SG_SEAL_PGP; break;
		case 'S': o->format = SG_SEAL_SMIME; break;
		case 'k': add_str(&o->key_files, &o->n_keys, optarg); break;
		case 'p': o->passphrase_file = optarg; break;
		case 'j': o->subject = optarg; break;
		case 'g': o->gcm = true; break;
		case 'o': o->opaque = true; break;
		case 'm': o->st.master_key = optarg; break;
		case 'M': o->st.master_pass_file = optarg; break;
		case 'h': seal_usage(stdout); return 0;
		default: seal_usage(stderr); return -1;
		}
	}
	if (optind != argc || (o->n_to == 0 && o->sign_as == NULL)) {
		fprintf(stderr, "sealgate seal: need --to ADDR and/or --sign-as ADDR, and no other arguments\n");
		return -1;
	}
	return 1;
}

/* The key for addr among keys: a usable one if any; else the first match,
 * whose status says why it cannot be used. */
static int pick_key(struct sg_key **keys, size_t n, const char *addr, enum sg_key_kind kind, bool for_sign,
		    struct sg_key **key_r, enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_key *first = NULL;
	time_t now = time(NULL);

	for (size_t i = 0; i < n; i++) {
		if (sg_key_kind(keys[i]) != kind || sg_key_matches_addr(keys[i], addr) != 1 ||
		    (for_sign && !sg_key_has_secret(keys[i])))
			continue;
		int ok = for_sign ? sg_key_usable_for_sign(keys[i], now, NULL, NULL)
				  : sg_key_usable_for_encrypt(keys[i], now, NULL, NULL);
		if (ok == 1) {
			*key_r = keys[i];
			return 1;
		}
		if (first == NULL)
			first = keys[i];
	}
	if (first == NULL) {
		*status_r = SG_CRYPTO_NO_KEY;
		sg_error_set(err, "no %s%s key", kind == SG_KEY_PGP ? "OpenPGP" : "X.509", for_sign ? " secret" : "");
		return -1;
	}
	if (for_sign)
		sg_key_usable_for_sign(first, now, status_r, err);
	else
		sg_key_usable_for_encrypt(first, now, status_r, err);
	return -1;
}

/* The key store, opened on first need (most scripted uses pass --key). */
struct store_lookup {
	struct sg_cli_store *st;
	struct sg_keys_lookup *lookup;
};

/* A usable key of kind for addr from the key store: 1, or -1 with the
 * reason (no key, expired, revoked, only a key of the other standard). */
static int store_key(struct store_lookup *sl, const char *addr, enum sg_key_kind kind,
		     struct sg_key **key_r, enum sg_crypto_status *status_r, struct sg_error *err)
{
	if (sl->lookup == NULL) {
		if (sg_cli_store_open(sl->st, err) < 0) {
			*status_r = SG_CRYPTO_INTERNAL;
			return -1;
		}
		sl->lookup = sg_keys_lookup_new(sl->st->store, &sl->st->cfg, NULL, 0);
	}
	int r = sg_keys_find_encrypt(sl->lookup, addr, kind, time(NULL), key_r, status_r, err);
	if (r == 0 && *status_r == SG_CRYPTO_NO_KEY)
		sg_error_set(err, "no %s key (none among the --key files, none in the key store)",
			     kind == SG_KEY_PGP ? "OpenPGP" : "X.509");
	if (r == 1 && sg_key_kind(*key_r) != kind) {
		sg_key_free(key_r);
		*status_r = SG_CRYPTO_NO_KEY;
		sg_error_set(err, "the key store has only %s for it; use %s",
			     kind == SG_KEY_PGP ? "an X.509 certificate" : "an OpenPGP key",
			     kind == SG_KEY_PGP ? "--smime" : "--pgp");
		return -1;
	}
	return r == 1 ? 1 : -1;
}

/* The signer's secret key from the key store (sealed under the master
 * key): 1, or -1 with the reason. */
static int store_signer(struct sg_cli_store *st, const char *addr, enum sg_key_kind kind,
			struct sg_key **key_r, enum sg_crypto_status *status_r, struct sg_error *err)
{
	struct sg_error why = SG_ERROR_INIT;

	*status_r = SG_CRYPTO_INTERNAL;
	if (sg_cli_store_master(st, err) < 0)
		return -1;
	int r = sg_keys_find_signer(st->store, st->mk, addr, kind, time(NULL), key_r, &why);
	if (r == 0) {
		*status_r = SG_CRYPTO_NO_KEY;
		sg_error_set(err, "no usable %s secret key (none among the --key files; key store: %s)",
			     kind == SG_KEY_PGP ? "OpenPGP" : "X.509", sg_error_msg(&why));
	} else if (r < 0) {
		sg_error_set(err, "%s", sg_error_msg(&why));
	}
	sg_error_clear(&why);
	return r == 1 ? 1 : -1;
}

static int seal_run(struct seal_opts *o, struct sg_key **keys)
{
	struct sg_key **recips = sg_calloc(o->n_to + 1, sizeof(*recips));
	struct sg_key **store_keys = sg_calloc(o->n_to + 1, sizeof(*store_keys));
	size_t n_store_keys = 0;
	struct store_lookup lk_store = { &o->st, NULL };
	struct sg_key *signer = NULL, *store_signer_key = NULL;
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	enum sg_key_kind kind = o->format == SG_SEAL_PGP ? SG_KEY_PGP : SG_KEY_X509;
	struct sg_buf in, out;
	enum sg_seal_outcome outcome;
	int code = SG_EXIT_FAIL;

	sg_buf_init(&in, SG_CLI_MSG_MAX);
	sg_buf_init(&out, 2 * SG_CLI_MSG_MAX);
	for (size_t i = 0; i < o->n_to; i++) {
		if (pick_key(keys, o->n_keys, o->to[i], kind, false, &recips[i], &st, &err) == 1)
			continue;
		/* No usable --key for this recipient: ask the key store. */
		if (st == SG_CRYPTO_NO_KEY) {
			sg_error_clear(&err);
			int r = store_key(&lk_store, o->to[i], kind, &store_keys[n_store_keys], &st, &err);
			if (r == 1) {
				recips[i] = store_keys[n_store_keys++];
				continue;
			}
		}
		sg_error_prefix(&err, "recipient %s", o->to[i]);
		goto fail;
	}
	if (o->sign_as != NULL && pick_key(keys, o->n_keys, o->sign_as, kind, true, &signer, &st, &err) < 0) {
		/* No secret key among --key for it: the store's. */
		if (st == SG_CRYPTO_NO_KEY) {
			sg_error_clear(&err);
			if (store_signer(&o->st, o->sign_as, kind, &store_signer_key, &st,
					 &err) == 1)
				signer = store_signer_key;
		}
		if (signer == NULL) {
			sg_error_prefix(&err, "signer %s", o->sign_as);
			goto fail;
		}
	}
	if (sg_cli_read_message(&in, "seal") < 0)
		goto out;
	struct sg_seal_req req = {
		.format = o->format,
		.recipients = recips,
		.n_recipients = o->n_to,
		.signer = signer,
		.neutral_subject = o->subject,
		.smime_gcm = o->gcm,
		.smime_opaque = o->opaque,
	};
	int quiet = sg_cli_quiet_begin();
	int r = sg_seal(in.data, in.len, &req, &out, &outcome, &st, &err);
	sg_cli_quiet_end(quiet);
	if (r < 0) {
		/* sg_seal's message already starts with "seal: " / "smime seal: ". */
		fprintf(stderr, "sealgate %s\n", sg_error_msg(&err));
		code = sg_cli_exit_for_status(st);
		code = code == SG_EXIT_OK ? SG_EXIT_FAIL : code;
		goto out;
	}
	if (outcome == SG_SEAL_ALREADY_ENCRYPTED)
		fprintf(stderr, "sealgate seal: message is already encrypted; passed on unchanged\n");
	code = sg_cli_write_out(out.data, out.len, "seal") == 1 ? SG_EXIT_OK : SG_EXIT_FAIL;
	goto out;
fail:
	fprintf(stderr, "sealgate seal: %s\n", sg_error_msg(&err));
	code = sg_cli_exit_for_status(st);
	if (code == SG_EXIT_OK)
		code = SG_EXIT_FAIL;
out:
	sg_error_clear(&err);
	sg_buf_free(&in);
	sg_buf_free(&out);
	free(recips);
	for (size_t i = 0; i < n_store_keys; i++)
		sg_key_free(&store_keys[i]);
	free(store_keys);
	sg_key_free(&store_signer_key);
	sg_keys_lookup_free(&lk_store.lookup);
	return code;
}

int cmd_seal(int argc, char **argv)
{
	struct seal_opts o;
	struct sg_key **keys = NULL;
	int code;

	memset(&o, 0, sizeof(o));
	int r = seal_parse(argc, argv, &o);
	if (r <= 0) {
		code = r == 0 ? SG_EXIT_OK : SG_EXIT_USAGE;
		goto out;
	}
	r = sg_cli_load_keys("seal", o.key_files, o.n_keys, o.passphrase_file, &keys);
	if (r < 0) {
		code = -r;
		goto out;
	}
	code = seal_run(&o, keys);
out:
	sg_cli_free_keys(keys, o.n_keys);
	sg_cli_store_close(&o.st);
	free(o.to);
	free(o.key_files);
	return code;
}
