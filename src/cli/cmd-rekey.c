/* sealgate rekey / rekey-msg: re-wrap stored messages (a Maildir, or one
 * message stdin to stdout) for a new key; encrypted content stays as it is. */
#include "cli/cli.h"
#include "config/config.h"
#include "crypto/cms-rewrap.h"
#include "crypto/pgp-rewrap.h"
#include "crypto/x509-parts.h"
#include "deliver/folders.h"
#include "deliver/journal.h"
#include "deliver/maildir.h"
#include "keys/keystore.h"
#include "keys/master.h"
#include "keys/pgp-meta.h"
#include "keys/secret.h"
#include "mime/rekey-msg.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/secret.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
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
	char **drop_files;
	size_t n_drop;
	const char *passphrase_file;
	const char *maildir;
	struct sg_cli_where where;
	const char *master_key, *master_pass_file;
	const char *resync_cmd;
	bool from_store, store_new, keep_old;
};

struct rekey_keys {
	struct sg_pgp_keyring *pgp_old, *pgp_new;
	struct sg_cms_party *cms_old, *cms_new;
	struct sg_pgp_keyring *pgp_drop;  /* --drop-key: lost keys whose PKESKs go */
	bool keep_old;                    /* the old key is the recovery key */
	char *passphrase;
};

static void rekey_usage(FILE *f)
{
	fprintf(f, "usage: sealgate rekey-msg --old-key FILE... --new-key FILE... [--passphrase-file FILE]\n"
		   "                         < in.eml > out.eml\n"
		   "       sealgate rekey ADDR (--old-key FILE... | --from-store) --new-key FILE...\n"
		   "                      --maildir DIR [--passphrase-file FILE] [--store-new]\n"
		   "                      [--resync-cmd CMD] [-c FILE] [--state-dir DIR] [--store SPEC]\n"
		   "                      [--master-key FILE | --master-passphrase-file FILE]\n"
		   "Replaces the old key's PKESK (PGP/MIME) or RecipientInfo (S/MIME) by one for\n"
		   "the new key; every other byte of the message stays the same.\n"
		   "Keys: OpenPGP (armored or binary; old: secret key, new: public key) or PEM\n"
		   "(old: certificate + private key, new: certificate [+ key, see --store-new]);\n"
		   "each option may repeat.\n"
		   "Exit: 0 rewritten, 11 skipped (input copied unchanged; reason on stderr),\n"
		   "3 bad key, 65 malformed message, 1 other failure, 64 usage.\n"
		   "rekey walks DIR (cur/, new/ and Maildir++ .Folder/s): each message is rewritten\n"
		   "atomically (tmp/, fsync, rename over the original keeping its base name and\n"
		   "flags, S=/W= sizes fixed); a journal in DIR resumes after a crash. Run\n"
		   "--from-store: the old secret keys are ADDR's sealed ones in the key store\n"
		   "(OpenPGP, and the one S/MIME key; opened with the master key).\n"
		   "--store-new (one --new-key): checked before the walk to carry ADDR (OpenPGP\n"
		   "user ID; S/MIME: the certificate names ADDR and can be encrypted to); when\n"
		   "none failed, it becomes ADDR's key of its kind in the store (delivery seals\n"
		   "to it; the old public rows of that kind go, their sealed secrets stay). A\n"
		   "private key in the file (OpenPGP secret key; PEM certificate + key) is stored\n"
		   "too, sealed under the master key, with --from-store or store_user_private_keys.\n"
		   "--resync-cmd CMD (or rekey_resync_cmd)\n"
		   "runs after the walk with $1 = ADDR, $2 = DIR, e.g.\n"
		   "  --resync-cmd 'doveadm force-resync -u \"$1\" \"*\"'\n"
		   "Recovery (doc/at-rest.md): --old-key RECOVERY.sec keeps the recovery key's\n"
		   "PKESK (so does --keep-old, and any old key that is the configured recovery_key)\n"
		   "and adds the new key's; --drop-key LOST.pub removes the lost key's PKESKs.\n"
		   "Exit: 0 none failed, 1 some failed (or the resync command did).\n");
}

static void add_str(char ***arr, size_t *n, char *s)
{
	*arr = sg_reallocarray(*arr, *n + 1, sizeof(**arr));
	(*arr)[(*n)++] = s;
}

static int rekey_parse(int argc, char **argv, struct rekey_opts *o, int nargs)
{
	static const struct option longopts[] = {
		{ "old-key", required_argument, NULL, 'o' },
		{ "new-key", required_argument, NULL, 'n' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "maildir", required_argument, NULL, 'm' },
		{ "from-store", no_argument, NULL, 's' },
		{ "store-new", no_argument, NULL, 'N' },
		{ "drop-key", required_argument, NULL, 'D' },
		{ "keep-old", no_argument, NULL, 'K' },
		SG_CLI_WHERE_OPTIONS,
		{ "master-key", required_argument, NULL, 'M' },
		{ "master-passphrase-file", required_argument, NULL, 'P' },
		{ "resync-cmd", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (sg_cli_where_opt(&o->where, c, optarg))
			continue;
		switch (c) {
		case 'M': o->master_key = optarg; break;
		case 'P': o->master_pass_file = optarg; break;
		case 'r': o->resync_cmd = optarg; break;
		case 'N': o->store_new = true; break;
		case 'D': add_str(&o->drop_files, &o->n_drop, optarg); break;
		case 'K': o->keep_old = true; break;
		case 'o': add_str(&o->old_files, &o->n_old, optarg); break;
		case 'n': add_str(&o->new_files, &o->n_new, optarg); break;
		case 'p': o->passphrase_file = optarg; break;
		case 'm': o->maildir = optarg; break;
		case 's': o->from_store = true; break;
		case 'h': rekey_usage(stdout); return 0;
		default: rekey_usage(stderr); return -1;
		}
	}
	/* rekey-msg (no ADDR) has no store to take keys from or give them to */
	bool store_ok = nargs > 0 || (!o->from_store && !o->store_new);
	if (optind != argc - nargs || (o->n_old == 0 && !o->from_store) || o->n_new == 0 ||
	    !store_ok || (o->store_new && o->n_new != 1)) {
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
	sg_pgp_keyring_free(&k->pgp_drop);
	sg_cms_party_free(&k->cms_old);
	sg_cms_party_free(&k->cms_new);
	if (k->passphrase != NULL)
		sg_secret_free(&k->passphrase, strlen(k->passphrase));
}

/* --drop-key: public keys (any number) whose PKESKs are removed. */
static int load_drop(const char *path, struct rekey_keys *k)
{
	struct sg_buf b;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_pgp_keyring *one = NULL;
	int r = -1;
	sg_buf_init(&b, KEYFILE_MAX);
	if (read_file(path, &b) < 0)
		sg_error_set(&err, "%s", strerror(errno));
	else
		r = sg_pgp_keyring_load(b.data, b.len, NULL, &one, &err);
	if (r > 0)
		sg_pgp_keyring_merge(&k->pgp_drop, &one);
	else
		fprintf(stderr, "sealgate rekey: --drop-key %s: %s\n", path, sg_error_msg(&err));
	sg_error_clear(&err);
	sg_buf_free(&b);
	return r;
}

static int load_all_keys(const struct rekey_opts *o, struct rekey_keys *k)
{
	if (o->passphrase_file != NULL && load_passphrase(o->passphrase_file, &k->passphrase) < 0)
		return -1;
	for (size_t i = 0; i < o->n_old; i++)
		if (load_one(o->old_files[i], true, k) < 0)
			return -1;
	for (size_t i = 0; i < o->n_new; i++)
		if (load_one(o->new_files[i], false, k) < 0)
			return -1;
	for (size_t i = 0; i < o->n_drop; i++)
		if (load_drop(o->drop_files[i], k) < 0)
			return -1;
	k->keep_old = o->keep_old;
	return 1;
}

/* ---- the key store (--from-store, --store-new) ---- */

/* --store-new: the new key as the store keeps it, read before the walk.
 * OpenPGP: the transferable public key (+ secret); S/MIME: the certificate
 * as DER (+ the private key as PKCS#8 PEM), as `key generate` stores them. */
struct new_key {
	const char *kind;            /* "pgp" or "x509" */
	const char *purpose;         /* of its sealed secret (keys/keystore.h) */
	const char *fingerprint;     /* borrowed from meta or cert */
	int64_t expires;
	const unsigned char *pub;    /* borrowed from meta or parts */
	size_t pub_len;
	const unsigned char *sec;    /* NULL: the file holds no private key */
	size_t sec_len;
	bool store_secret;           /* sec goes into the store, sealed */
	struct sg_pgp_meta meta;
	bool have_meta;
	struct sg_x509_parts parts;
	struct sg_key *cert;         /* parts.cert_der loaded (fingerprint, address) */
};

struct store_ctx {
	struct sg_cli_store cs;      /* config, store and master key (cli/store-keys.c) */
	struct new_key nk;
};

static void store_ctx_clear(struct store_ctx *sc)
{
	if (sc->nk.have_meta)
		sg_pgp_meta_clear(&sc->nk.meta);
	sg_x509_parts_clear(&sc->nk.parts);
	sg_key_free(&sc->nk.cert);
	sg_cli_store_close(&sc->cs);
}

/* -c and --state-dir; then the store when it is needed. 1; -1 (printed). */
static int open_config(const struct rekey_opts *o, struct store_ctx *sc)
{
	struct sg_error err = SG_ERROR_INIT;
	int ret = -1;
	sc->cs.where = o->where;
	sc->cs.master_key = o->master_key;
	sc->cs.master_pass_file = o->master_pass_file;
	sc->cs.cfg_loaded = true; /* read here, needed with or without the store */
	if (sg_cli_where_config(&o->where, &sc->cs.cfg, &err) < 0)
		goto out;
	if ((o->from_store || o->store_new) && sg_cli_store_open(&sc->cs, &err) < 0)
		goto out;
	ret = 1;
out:
	if (ret < 0)
		fprintf(stderr, "sealgate rekey: %s\n", sg_error_msg(&err));
	sg_error_clear(&err);
	return ret;
}

struct secret_load {
	const char *passphrase;
	struct sg_pgp_keyring *kr;
	struct sg_cms_party *cms;     /* the one stored S/MIME key */
	size_t n_cms;
};

static int take_secret(void *ctx, const struct sg_store_key *row, const unsigned char *plain,
		       size_t len, struct sg_error *why)
{
	struct secret_load *sl = ctx;
	struct sg_pgp_keyring *one = NULL;
	(void)row;
	if (sg_pgp_keyring_load(plain, len, sl->passphrase, &one, why) < 0)
		return -1; /* a stored key we cannot open is an error, not a skip */
	sg_pgp_keyring_merge(&sl->kr, &one);
	return 0; /* go on: every stored key of the user may be an old one */
}

/* An S/MIME secret: PKCS#8 PEM sealed in the store, its certificate the
 * public row (PEM or DER); the CMS re-wrap takes both as one PEM. */
static int take_smime_secret(void *ctx, const struct sg_store_key *row, const unsigned char *plain,
			     size_t len, struct sg_error *why)
{
	struct secret_load *sl = ctx;
	struct sg_buf both;
	int r = -1;
	if (++sl->n_cms > 1) {
		/* one old party per run (crypto/cms-rewrap.h) */
		sg_error_set(why, "more than one S/MIME key stored; name the old one with --old-key");
		return -1;
	}
	sg_buf_init(&both, KEYFILE_MAX);
	if (sg_buf_append(&both, plain, len) == 1 && sg_buf_append(&both, "\n", 1) == 1 &&
	    sg_x509_cert_pem(row->data, row->len, &both, why) == 1)
		r = sg_cms_party_load(both.data, both.len, sl->passphrase, true, &sl->cms, why);
	else if (why->msg == NULL)
		sg_error_set(why, "stored key too large");
	sg_buf_free_secret(&both);
	return r < 0 ? -1 : 0;
}

/* The user's sealed secret keys join the old keys: every OpenPGP one, and
 * the S/MIME one. 1; -1 (printed). */
static int load_store_keys(const char *addr, struct store_ctx *sc, struct rekey_keys *k)
{
	struct sg_error err = SG_ERROR_INIT;
	struct secret_load sl = { k->passphrase, NULL, NULL, 0 };
	size_t n_pgp = 0, n_smime = 0;
	int ret = -1;
	if (sg_cli_store_master(&sc->cs, &err) < 0)
		goto out;
	if (sg_keys_each_secret(sc->cs.store, sc->cs.mk, addr, "pgp", SG_KEYS_PGP_SECRET, take_secret,
				&sl, &n_pgp, &err) < 0 ||
	    sg_keys_each_secret(sc->cs.store, sc->cs.mk, addr, "x509", SG_KEYS_SMIME_SECRET,
				take_smime_secret, &sl, &n_smime, &err) < 0)
		goto out;
	if (n_pgp + n_smime == 0) {
		sg_error_set(&err, "%s: no secret key in the store", addr);
		goto out;
	}
	if (sl.cms != NULL && k->cms_old != NULL) {
		sg_error_set(&err, "%s: an S/MIME key is stored and another given with --old-key", addr);
		goto out;
	}
	sg_pgp_keyring_merge(&k->pgp_old, &sl.kr);
	if (sl.cms != NULL) {
		k->cms_old = sl.cms;
		sl.cms = NULL;
	}
	ret = 1;
out:
	if (ret < 0)
		fprintf(stderr, "sealgate rekey: --from-store: %s\n", sg_error_msg(&err));
	sg_pgp_keyring_free(&sl.kr);
	sg_cms_party_free(&sl.cms);
	sg_error_clear(&err);
	return ret;
}

/* OpenPGP: one of the key's user IDs must be <norm>. 1; -1 with err. */
static int read_new_pgp(const struct sg_buf *b, const char *norm, struct new_key *nk,
			struct sg_error *err)
{
	if (sg_pgp_meta_read(b->data, b->len, &nk->meta, err) < 0)
		return -1;
	nk->have_meta = true;
	nk->kind = "pgp";
	nk->purpose = SG_KEYS_PGP_SECRET;
	nk->fingerprint = nk->meta.fingerprint;
	nk->expires = nk->meta.expires;
	nk->pub = nk->meta.public_data;
	nk->pub_len = nk->meta.public_len;
	nk->sec = nk->meta.secret_data;
	nk->sec_len = nk->meta.secret_len;
	for (size_t i = 0; i < nk->meta.n_addrs; i++)
		if (strcmp(nk->meta.addrs[i], norm) == 0)
			return 1;
	sg_error_set(err, "new key %s has no user ID <%s>", nk->fingerprint, norm);
	return -1;
}

/* S/MIME: the certificate must name <norm> (RFC 8550 s3: subjectAltName
 * rfc822Name, or the subject's emailAddress) and be usable to encrypt to,
 * or delivery would refuse the user after the walk. 1; -1 with err. */
static int read_new_x509(const struct sg_buf *b, const char *passphrase, const char *norm,
			 struct new_key *nk, struct sg_error *err)
{
	enum sg_crypto_status st = SG_CRYPTO_OK;
	if (sg_x509_parts_read(b->data, b->len, passphrase, &nk->parts, err) < 0 ||
	    sg_key_load_mem(nk->parts.cert_der, nk->parts.cert_len, NULL, &nk->cert, &st, err) < 0)
		return -1;
	nk->kind = "x509";
	nk->purpose = SG_KEYS_SMIME_SECRET;
	nk->fingerprint = sg_key_fingerprint(nk->cert);
	nk->expires = nk->parts.expires;
	nk->pub = nk->parts.cert_der;
	nk->pub_len = nk->parts.cert_len;
	nk->sec = nk->parts.key_pem;
	nk->sec_len = nk->parts.key_len;
	if (sg_key_matches_addr(nk->cert, norm) != 1) {
		sg_error_set(err, "new certificate %s does not name <%s>", nk->fingerprint, norm);
		return -1;
	}
	if (sg_key_usable_for_encrypt(nk->cert, time(NULL), &st, err) != 1) {
		sg_error_prefix(err, "new certificate %s: %s", nk->fingerprint, sg_crypto_status_name(st));
		return -1;
	}
	return 1;
}

/* --store-new, before the walk: the new key (OpenPGP or S/MIME) must carry
 * ADDR; when the file holds its private key and the store keeps the user's
 * secret keys (--from-store, or store_user_private_keys), the master key
 * to seal it must load now, not after the mail was rewritten. 1; -1
 * (printed). */
static int check_new_key(const struct rekey_opts *o, const char *addr, const char *passphrase,
			 struct store_ctx *sc)
{
	struct sg_buf b;
	struct sg_error err = SG_ERROR_INIT;
	struct new_key *nk = &sc->nk;
	char *norm = sg_keys_normalize_addr(addr, &err);
	int ret = -1;
	sg_buf_init(&b, KEYFILE_MAX);
	if (norm == NULL)
		goto out;
	if (read_file(o->new_files[0], &b) < 0) {
		sg_error_set(&err, "%s: %s", o->new_files[0], strerror(errno));
		goto out;
	}
	if ((is_pem_cert(&b) ? read_new_x509(&b, passphrase, norm, nk, &err)
			     : read_new_pgp(&b, norm, nk, &err)) < 0)
		goto out;
	nk->store_secret = nk->sec != NULL && (o->from_store || sc->cs.cfg.store_user_private_keys);
	if (nk->store_secret && sg_cli_store_master(&sc->cs, &err) < 0)
		goto out;
	if (nk->sec != NULL && !nk->store_secret)
		fprintf(stderr, "sealgate rekey: --store-new: the new private key will not be stored "
			"(only with --from-store or store_user_private_keys)\n");
	ret = 1;
out:
	if (ret < 0)
		fprintf(stderr, "sealgate rekey: --store-new: %s\n", sg_error_msg(&err));
	sg_buf_free_secret(&b);
	free(norm);
	sg_error_clear(&err);
	return ret;
}

/* --store-new, after a walk with no failure, in one transaction: the new
 * public key becomes the user's key of its kind (delivery seals to it),
 * its private key (when kept, see check_new_key) is sealed under the master
 * key, and the other public rows of that kind go; their sealed secrets
 * stay. 1; -1 (printed). */
static int store_new_key(const char *addr, struct store_ctx *sc)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store_key *rows = NULL;
	const struct new_key *nk = &sc->nk;
	char *norm = sg_keys_normalize_addr(addr, &err);
	size_t n = 0;
	int ret = -1;
	if (norm == NULL || sg_store_key_list(sc->cs.store, norm, &rows, &n, &err) < 0 ||
	    sg_store_begin(sc->cs.store, &err) < 0)
		goto out;
	if (sg_keys_put_public(sc->cs.store, norm, nk->fingerprint, nk->kind, nk->expires, "rekey", "local",
			       nk->pub, nk->pub_len, &err) < 0)
		goto rollback;
	if (nk->store_secret && sg_keys_put_private(sc->cs.store, sc->cs.mk, norm, nk->fingerprint, nk->purpose,
						    nk->sec, nk->sec_len, &err) < 0)
		goto rollback;
	for (size_t i = 0; i < n; i++)
		if (strcmp(rows[i].kind, nk->kind) == 0 && strcmp(rows[i].fingerprint, nk->fingerprint) != 0 &&
		    sg_store_key_delete(sc->cs.store, norm, rows[i].fingerprint, &err) < 0)
			goto rollback;
	if (sg_store_commit(sc->cs.store, &err) < 0)
		goto out;
	fprintf(stderr, "sealgate rekey: %s: the store now seals to %s %s%s\n", norm,
		strcmp(nk->kind, "pgp") == 0 ? "OpenPGP" : "S/MIME", nk->fingerprint,
		nk->store_secret ? " (its private key stored sealed)" : "");
	ret = 1;
	goto out;
rollback:
	sg_store_rollback(sc->cs.store);
out:
	if (ret < 0)
		fprintf(stderr, "sealgate rekey: --store-new: %s\n", sg_error_msg(&err));
	sg_store_keys_free(&rows, n);
	free(norm);
	sg_error_clear(&err);
	return ret;
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
	int pr = rekey_parse(argc, argv, &o, 0);
	if (pr <= 0) {
		ret = pr == 0 ? SG_EXIT_OK : SG_EXIT_USAGE;
		goto out;
	}
	ret = SG_EXIT_BAD_KEY;
	if (load_all_keys(&o, &k) < 0)
		goto out;
	ret = SG_EXIT_FAIL;
	if (read_fd(STDIN_FILENO, &in) < 0) {
		fprintf(stderr, "sealgate rekey-msg: reading stdin failed or message too large\n");
		goto out;
	}
	struct sg_rekey_keys rk = { k.pgp_old, k.pgp_new, k.cms_old, k.cms_new, k.pgp_drop,
				   k.keep_old };
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

/* ---- Maildir walk ---- */

#define JOURNAL_NAME ".sealgate-rekey.journal"
#define TMP_TAG ".sealgate-rekey-"   /* our tmp/ files: NAME TMP_TAG PID */

struct walk {
	const char *root;
	const struct sg_rekey_keys *keys;
	struct sg_journal *journal;
	char **paths;           /* messages to look at: "folder/cur/name" */
	size_t n_paths;
	size_t n_ok, n_skip, n_fail, n_earlier;
	struct sg_buf reasons;  /* "skipped|failed: name: reason" lines */
	struct sg_buf in, out;  /* reused for every message: no regrowth, no fresh pages */
	bool tty;
	struct timespec t0;
};

/* The journal's name for a message: "NAME" in the root folder,
 * ".Sent/NAME" in a sub-folder (journal.h: equal base names in two
 * folders are two entries). folder: the full path. Owned. */
static char *journal_name(const struct walk *w, const char *folder, const char *name)
{
	size_t rl = strlen(w->root);
	if (strncmp(folder, w->root, rl) == 0 && folder[rl] == '/')
		return sg_asprintf("%s/%s", folder + rl + 1, name);
	return sg_strdup(name);
}

/* Line ends that are a bare LF (each one more octet with CRLF). */
static size_t bare_lf_count(const unsigned char *data, size_t len)
{
	size_t n = 0;
	for (const unsigned char *p = data, *end = data + len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
		n += p == data || p[-1] != '\r';
	return n;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

/* like: the original's owner and mode, kept so that the mailbox server
 * (Dovecot runs as the mail user, we as root) can still read it. */
static int write_tmp(const char *path, const unsigned char *data, size_t len,
		     const struct stat *like)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (like != NULL && ((like->st_uid != geteuid() && fchown(fd, like->st_uid, like->st_gid) < 0) ||
			     fchmod(fd, like->st_mode & 0777) < 0)) {
		close(fd);
		unlink(path);
		return -1;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			unlink(path);
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	return close(fd);
}

static void note(struct walk *w, const char *kind, const char *rel, const char *why)
{
	if (!sg_buf_printf(&w->reasons, "  %s: %s: %s\n", kind, rel, why))
		sg_buf_reset(&w->reasons); /* keep going; counts stay right */
}

/* dir/name holds data: its size fields say so after (rewritten in place
 * when present; S= the file size, W= its size with CRLF line ends, RFC 822).
 * 1 renamed; 0 they did; -1 the rename failed. The caller fsyncs dir. */
static int fix_name(const char *dir, const char *name, const unsigned char *data, size_t len)
{
	struct sg_error err = SG_ERROR_INIT;
	int ret = sg_maildir_fix_sizes(dir, name, len, len + bare_lf_count(data, len), false, &err);
	sg_error_clear(&err);
	return ret;
}

/* Replace the message by data: tmp/ file, fsync, exchange with the
 * original (the one atomic step: the message is either old or new, never
 * both or neither), fsync the folder, then the size fields of its name.
 * *sub, *name: where it was read; followed when the mailbox server renames
 * it meanwhile, so the flags it set are kept. 1; -1. */
static int replace_msg(struct walk *w, const char *folder, const char *sub, const char *name,
		       const unsigned char *data, size_t len, const char **why_r)
{
	char *tmp = sg_asprintf("%s/tmp/%s" TMP_TAG "%ld", folder, name, (long)getpid());
	char *path = sg_asprintf("%s/%s/%s", folder, sub, name);
	char *cur = NULL, *dir = NULL;
	char *jname = journal_name(w, folder, name);
	struct sg_error err = SG_ERROR_INIT;
	int ret = -1;
	struct stat st;
	bool have_st = stat(path, &st) == 0;
	if (write_tmp(tmp, data, len, have_st ? &st : NULL) < 0) {
		*why_r = "writing tmp/ file failed";
		goto out;
	}
	sg_journal_begin(w->journal, jname);
	int r = sg_maildir_replace(folder, sub, name, tmp, &sub, &cur, &err);
	if (r <= 0) {
		*why_r = r == 0 ? "expunged meanwhile" : "replacing the file failed";
		goto out;
	}
	dir = sg_asprintf("%s/%s", folder, sub);
	if (fix_name(dir, cur, data, len) < 0) {
		*why_r = "size fields not fixed (rename failed)";
		goto out;
	}
	fsync_dir(dir);
	sg_journal_done(w->journal, jname, len);
	ret = 1;
out:
	sg_error_clear(&err);
	free(jname);
	free(tmp);
	free(path);
	free(cur);
	free(dir);
	return ret;
}

static void one_message(struct walk *w, const char *rel)
{
	/* rel: "<folder>/<cur|new>/<name>" relative to nothing: full path */
	const char *slash = strrchr(rel, '/');
	char *dir = sg_strndup(rel, (size_t)(slash - rel));
	const char *sub = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	char *folder = sg_strndup(dir, (size_t)(sub - dir) - (sub > dir ? 1 : 0));
	char *name = sg_strdup(slash + 1), *moved = NULL;
	struct sg_buf *in = &w->in, *out = &w->out;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_rekey_info info;
	const char *why = NULL;
	sg_buf_reset(in);
	sg_buf_reset(out);
	int r = read_file(rel, in);
	if (r < 0 && errno == ENOENT) {
		/* renamed since the listing: follow it by its base name */
		char *base = sg_maildir_base(name);
		if (sg_maildir_locate(folder, base, &sub, &moved) > 0) {
			char *p = sg_asprintf("%s/%s/%s", folder, sub, moved);
			sg_buf_reset(in);
			r = read_file(p, in);
			free(p);
			free(name);
			name = sg_strdup(moved);
		} else {
			errno = ENOENT;
		}
		free(base);
	}
	if (r < 0) {
		w->n_fail++;
		note(w, "failed", rel, errno == ENOENT ? "vanished (expunged); run again" : "unreadable");
		goto out;
	}
	r = sg_rekey_message(in->data, in->len, w->keys, out, &info, &err);
	if (r < 0) {
		w->n_fail++;
		note(w, "failed", rel, sg_error_msg(&err));
	} else if (r == 0) {
		/* the journal only names it: a re-keyed message is skipped
		 * anyway, the old key being no recipient any more */
		char *jname = journal_name(w, folder, name);
		bool earlier = sg_journal_lookup(w->journal, jname, NULL) != SG_JOURNAL_NONE;
		free(jname);
		if (earlier) {
			/* A run killed between the exchange and the size
			 * fields left the new content under the old name. */
			char *d = sg_asprintf("%s/%s", folder, sub);
			int f = fix_name(d, name, in->data, in->len);
			if (f > 0)
				fsync_dir(d);
			free(d);
			if (f < 0) {
				w->n_fail++;
				note(w, "failed", rel, "size fields not fixed (rename failed)");
			} else {
				w->n_earlier++;
			}
		} else {
			w->n_skip++;
			note(w, "skipped", rel, info.skip_reason);
		}
	} else if (replace_msg(w, folder, sub, name, out->data, out->len, &why) < 0) {
		w->n_fail++;
		note(w, "failed", rel, why);
	} else {
		w->n_ok++;
	}
out:
	sg_error_clear(&err);
	free(dir);
	free(folder);
	free(name);
	free(moved);
}

/* The root folder and Maildir++ sub-folders (".Name"), listed by the walk
 * seal-mailbox shares; the tmp/ leftovers of a killed run in each go. */
static int list_all(struct walk *w)
{
	struct sg_error err = SG_ERROR_INIT;
	char **rels = NULL;
	size_t n = 0;
	int ret = sg_maildir_list_all(w->root, TMP_TAG, &rels, &n, &err);

	if (ret < 0)
		fprintf(stderr, "sealgate rekey: %s\n", sg_error_msg(&err));
	/* one_message() reads "folder/cur/name": the full path */
	w->paths = sg_reallocarray(NULL, n > 0 ? n : 1, sizeof(*w->paths));
	for (size_t i = 0; i < n; i++)
		w->paths[w->n_paths++] = sg_asprintf("%s/%s", w->root, rels[i]);
	sg_maildir_rels_free(&rels, &n);
	sg_error_clear(&err);
	return ret;
}

static double elapsed(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void progress(const struct walk *w, size_t i)
{
	if (!w->tty)
		return;
	double s = elapsed(&w->t0), rate = s > 0 ? (double)i / s : 0;
	double eta = rate > 0 ? (double)(w->n_paths - i) / rate : 0;
	int width = 30, fill = w->n_paths ? (int)((double)width * (double)i / (double)w->n_paths) : width;
	fprintf(stderr, "\r[%.*s%*s] %zu/%zu  %.1f msg/s  ETA %.0fs ", fill,
		"##############################", width - fill, "", i, w->n_paths, rate, eta);
	fflush(stderr);
}

/* Is a key of the configured recovery key file among the old keys? 1/0;
 * -1 unreadable (printed; then the old key's PKESKs go as usual). */
static int recovery_is_old(const char *file, const struct sg_pgp_keyring *old)
{
	struct sg_buf b;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_pgp_keyring *rec = NULL;
	int ret = 0;
	if (file == NULL || file[0] == '\0' || old == NULL)
		return 0;
	sg_buf_init(&b, KEYFILE_MAX);
	if (read_file(file, &b) < 0 || sg_pgp_keyring_load(b.data, b.len, NULL, &rec, &err) < 0) {
		fprintf(stderr, "sealgate rekey: recovery_key %s: %s\n", file,
			err.msg != NULL ? err.msg : strerror(errno));
		ret = -1;
		goto out;
	}
	for (size_t i = 0; i < sg_pgp_keyring_count(rec) && ret == 0; i++)
		for (size_t j = 0; j < sg_pgp_keyring_count(old) && ret == 0; j++)
			ret = memcmp(sg_pgp_keyring_fpr(rec, i), sg_pgp_keyring_fpr(old, j), 20) == 0;
out:
	sg_pgp_keyring_free(&rec);
	sg_error_clear(&err);
	sg_buf_free(&b);
	return ret;
}

/* Tell the mailbox server (Dovecot indexes names and sizes). -1 printed. */
static int resync(const char *cmd, const char *addr, const char *maildir)
{
	struct sg_error err = SG_ERROR_INIT;
	int r = 1;
	if (cmd != NULL && cmd[0] != '\0' && (r = sg_maildir_resync(cmd, addr, maildir, &err)) < 0)
		fprintf(stderr, "sealgate rekey: %s\n", sg_error_msg(&err));
	sg_error_clear(&err);
	return r;
}

int cmd_rekey(int argc, char **argv)
{
	struct rekey_opts o;
	struct rekey_keys k;
	struct store_ctx sc;
	struct walk w;
	int ret = SG_EXIT_USAGE;
	memset(&o, 0, sizeof(o));
	memset(&k, 0, sizeof(k));
	memset(&sc, 0, sizeof(sc));
	memset(&w, 0, sizeof(w));
	sg_buf_init(&w.reasons, 16 << 20);
	sg_buf_init(&w.in, REKEY_MSG_MAX);
	sg_buf_init(&w.out, REKEY_MSG_MAX + REKEY_MSG_MAX / 2);
	int pr = rekey_parse(argc, argv, &o, 1);
	if (pr <= 0) {
		ret = pr == 0 ? SG_EXIT_OK : SG_EXIT_USAGE;
		goto out;
	}
	const char *addr = argv[argc - 1];
	if (o.maildir == NULL) {
		fprintf(stderr, "sealgate rekey: %s: give the user's mail as --maildir DIR\n", addr);
		goto out;
	}
	ret = SG_EXIT_CONFIG;
	if (open_config(&o, &sc) < 0)
		goto out;
	ret = SG_EXIT_BAD_KEY;
	if (load_all_keys(&o, &k) < 0 || (o.from_store && load_store_keys(addr, &sc, &k) < 0) ||
	    (o.store_new && check_new_key(&o, addr, k.passphrase, &sc) < 0))
		goto out;
	if (!k.keep_old && recovery_is_old(sc.cs.cfg.recovery_key, k.pgp_old) > 0) {
		k.keep_old = true;
		fprintf(stderr, "sealgate rekey: the old key is the recovery key: its PKESKs stay\n");
	}
	ret = SG_EXIT_FAIL;
	struct sg_rekey_keys rk = { k.pgp_old, k.pgp_new, k.cms_old, k.cms_new, k.pgp_drop,
				   k.keep_old };
	w.root = o.maildir;
	w.keys = &rk;
	w.tty = isatty(STDERR_FILENO);
	struct sg_error jerr = SG_ERROR_INIT;
	if (sg_journal_open(w.root, JOURNAL_NAME, &w.journal, &jerr) < 0) {
		fprintf(stderr, "sealgate rekey: %s\n", sg_error_msg(&jerr));
		sg_error_clear(&jerr);
		goto out;
	}
	if (list_all(&w) < 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &w.t0);
	for (size_t i = 0; i < w.n_paths; i++) {
		progress(&w, i);
		one_message(&w, w.paths[i]);
	}
	progress(&w, w.n_paths);
	if (w.tty)
		fputc('\n', stderr);
	fprintf(stderr, "sealgate rekey: %s: %zu done, %zu done earlier, %zu skipped, %zu failed (%.1f s)\n%s",
		addr, w.n_ok, w.n_earlier, w.n_skip, w.n_fail, elapsed(&w.t0), sg_buf_str(&w.reasons));
	ret = w.n_fail == 0 ? SG_EXIT_OK : SG_EXIT_FAIL;
	if (resync(o.resync_cmd != NULL ? o.resync_cmd : sc.cs.cfg.rekey_resync_cmd, addr, o.maildir) < 0)
		ret = SG_EXIT_FAIL;
	if (o.store_new && w.n_fail > 0)
		fprintf(stderr, "sealgate rekey: --store-new: not done, %zu message(s) failed\n", w.n_fail);
	else if (o.store_new && store_new_key(addr, &sc) < 0)
		ret = SG_EXIT_FAIL;
out:
	sg_journal_close(&w.journal, false);
	for (size_t i = 0; i < w.n_paths; i++)
		free(w.paths[i]);
	free(w.paths);
	sg_buf_free(&w.reasons);
	sg_buf_free(&w.in);
	sg_buf_free(&w.out);
	free_keys(&k);
	store_ctx_clear(&sc);
	free(o.old_files);
	free(o.new_files);
	free(o.drop_files);
	return ret;
}
