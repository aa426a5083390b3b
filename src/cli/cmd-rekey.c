/* sealgate rekey-msg: re-wrap one stored message (stdin to stdout) for a
 * new key, leaving its encrypted content and other recipients untouched. */
#include "cli/cli.h"
#include "crypto/cms-rewrap.h"
#include "crypto/pgp-rewrap.h"
#include "mime/rekey-msg.h"
#include "util/buf.h"
#include "util/mem.h"
#include "util/secret.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REKEY_MSG_MAX ((size_t)1 << 30)
#define KEYFILE_MAX ((size_t)16 << 20)

struct rekey_opts {
	char **old_files;
	size_t n_old;
	char **new_files;
	size_t n_new;
	const char *passphrase_file;
};

struct rekey_keys {
	struct sg_pgp_keyring *pgp_old, *pgp_new;
	struct sg_cms_party *cms_old, *cms_new;
	char *passphrase;
};

static void rekey_usage(FILE *f)
{
	fprintf(f, "usage: sealgate rekey-msg --old-key FILE... --new-key FILE... [--passphrase-file FILE]\n"
		   "                         < in.eml > out.eml\n"
		   "Replaces the old key's PKESK (PGP/MIME) or RecipientInfo (S/MIME) by one for\n"
		   "the new key; every other byte of the message stays the same.\n"
		   "Keys: OpenPGP (armored or binary; old: secret key, new: public key) or PEM\n"
		   "(old: certificate + private key, new: certificate); each option may repeat.\n"
		   "Exit: 0 rewritten, 11 skipped (input copied unchanged; reason on stderr),\n"
		   "3 bad key, 65 malformed message, 1 other failure, 64 usage.\n");
}

static void add_str(char ***arr, size_t *n, char *s)
{
	*arr = sg_reallocarray(*arr, *n + 1, sizeof(**arr));
	(*arr)[(*n)++] = s;
}

static int rekey_parse(int argc, char **argv, struct rekey_opts *o)
{
	static const struct option longopts[] = {
		{ "old-key", required_argument, NULL, 'o' },
		{ "new-key", required_argument, NULL, 'n' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': add_str(&o->old_files, &o->n_old, optarg); break;
		case 'n': add_str(&o->new_files, &o->n_new, optarg); break;
		case 'p': o->passphrase_file = optarg; break;
		case 'h': rekey_usage(stdout); return 0;
		default: rekey_usage(stderr); return -1;
		}
	}
	if (optind != argc || o->n_old == 0 || o->n_new == 0) {
		rekey_usage(stderr);
		return -1;
	}
	return 1;
}

static int read_fd(int fd, struct sg_buf *out)
{
	unsigned char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n == 0)
			return 1;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || !sg_buf_append(out, chunk, (size_t)n))
			return -1;
	}
}

static int read_file(const char *path, struct sg_buf *out)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	int r = read_fd(fileno(f), out);
	fclose(f);
	return r;
}

static bool is_pem_cert(const struct sg_buf *b)
{
	return b->len > 0 && strstr((const char *)b->data, "-----BEGIN CERTIFICATE-----") != NULL;
}

/* Load one key file into the slot of its kind. 1; -1 (printed). */
static int load_one(const char *path, bool old, struct rekey_keys *k)
{
	struct sg_buf b;
	struct sg_error err = SG_ERROR_INIT;
	int r = -1;
	sg_buf_init(&b, KEYFILE_MAX);
	if (read_file(path, &b) < 0) {
		fprintf(stderr, "sealgate rekey-msg: %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (is_pem_cert(&b)) {
		struct sg_cms_party **slot = old ? &k->cms_old : &k->cms_new;
		if (*slot != NULL) {
			sg_error_set(&err, "only one %s certificate", old ? "old" : "new");
			goto fail;
		}
		r = sg_cms_party_load(b.data, b.len, k->passphrase, old, slot, &err);
	} else {
		struct sg_pgp_keyring **slot = old ? &k->pgp_old : &k->pgp_new;
		if (*slot != NULL) {
			sg_error_set(&err, "only one %s OpenPGP key", old ? "old" : "new");
			goto fail;
		}
		r = sg_pgp_keyring_load(b.data, b.len, k->passphrase, slot, &err);
	}
	if (r > 0)
		goto out;
fail:
	r = -1;
	fprintf(stderr, "sealgate rekey-msg: %s: %s\n", path, sg_error_msg(&err));
out:
	sg_error_clear(&err);
	sg_buf_free_secret(&b);
	return r;
}

static int load_passphrase(const char *path, char **pass_r)
{
	struct sg_buf b;
	sg_buf_init(&b, 64 * 1024);
	if (read_file(path, &b) < 0) {
		fprintf(stderr, "sealgate rekey-msg: %s: cannot read passphrase\n", path);
		sg_buf_free_secret(&b);
		return -1;
	}
	size_t n = strcspn(sg_buf_str(&b), "\r\n");
	*pass_r = sg_strndup(sg_buf_str(&b), n);
	sg_buf_free_secret(&b);
	return 1;
}

static void free_keys(struct rekey_keys *k)
{
	sg_pgp_keyring_free(&k->pgp_old);
	sg_pgp_keyring_free(&k->pgp_new);
	sg_cms_party_free(&k->cms_old);
	sg_cms_party_free(&k->cms_new);
	if (k->passphrase != NULL)
		sg_secret_free(&k->passphrase, strlen(k->passphrase));
}

int cmd_rekey_msg(int argc, char **argv)
{
	struct rekey_opts o;
	struct rekey_keys k;
	struct sg_buf in, out;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_rekey_info info;
	int ret = SG_EXIT_USAGE;
	memset(&o, 0, sizeof(o));
	memset(&k, 0, sizeof(k));
	sg_buf_init(&in, REKEY_MSG_MAX);
	sg_buf_init(&out, REKEY_MSG_MAX + REKEY_MSG_MAX / 2);
	int pr = rekey_parse(argc, argv, &o);
	if (pr <= 0) {
		ret = pr == 0 ? SG_EXIT_OK : SG_EXIT_USAGE;
		goto out;
	}
	ret = SG_EXIT_BAD_KEY;
	if (o.passphrase_file != NULL && load_passphrase(o.passphrase_file, &k.passphrase) < 0)
		goto out;
	for (size_t i = 0; i < o.n_old; i++)
		if (load_one(o.old_files[i], true, &k) < 0)
			goto out;
	for (size_t i = 0; i < o.n_new; i++)
		if (load_one(o.new_files[i], false, &k) < 0)
			goto out;
	ret = SG_EXIT_FAIL;
	if (read_fd(STDIN_FILENO, &in) < 0) {
		fprintf(stderr, "sealgate rekey-msg: reading stdin failed or message too large\n");
		goto out;
	}
	struct sg_rekey_keys rk = { k.pgp_old, k.pgp_new, k.cms_old, k.cms_new };
	int r = sg_rekey_message(in.data, in.len, &rk, &out, &info, &err);
	if (r < 0) {
		fprintf(stderr, "sealgate rekey-msg: %s\n", sg_error_msg(&err));
		ret = SG_EXIT_DATAERR;
		goto out;
	}
	if (r == 0) {
		fprintf(stderr, "sealgate rekey-msg: skipped: %s\n", info.skip_reason);
		ret = sg_cli_write_out(in.data, in.len, "rekey-msg") > 0 ? SG_EXIT_SKIPPED : SG_EXIT_FAIL;
		goto out;
	}
	if (sg_cli_write_out(out.data, out.len, "rekey-msg") < 0)
		goto out;
	fprintf(stderr, "sealgate rekey-msg: rewrapped (%s): %zu replaced, %zu other recipient(s) kept\n",
		info.kind == SG_REKEY_KIND_SMIME ? "S/MIME" : "PGP/MIME", info.removed, info.kept);
	ret = SG_EXIT_OK;
out:
	sg_error_clear(&err);
	free_keys(&k);
	free(o.old_files);
	free(o.new_files);
	sg_buf_free(&in);
	sg_buf_free(&out);
	return ret;
}
