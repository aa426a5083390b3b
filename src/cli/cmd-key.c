/* sealgate key: the key store from the command line (import, list, show,
 * export, delete, generate), the master key, and WKD publishing. */
#include "cli/cli.h"
#include "config/config.h"
#include "crypto/crypto.h"
#include "http/wkd-server.h"
#include "keys/held.h"
#include "keys/keystore.h"
#include "keys/master.h"
#include "keys/pgp-meta.h"
#include "keys/secret.h"
#include "keys/wkd.h"
#include "keys/x509-gen.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/secret.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_INPUT_MAX (16u * 1024 * 1024)

struct key_opts {
	struct sg_cli_where where;
	const char *master_key, *master_pass_file;
	const char *passphrase_file, *type, *listen, *submission, *domains;
	const char *tls_cert, *tls_key, *fingerprint, *addr;
	bool smime, with_secret, secret, gateway;
	char **args;
	int n_args;
};

struct key_ctx {
	struct key_opts o;
	struct sg_config cfg;
	struct sg_store *store;
	struct sg_error err;
};

typedef int key_handler(struct key_ctx *ctx);

/* ---- helpers ---- */

static int fail(struct key_ctx *ctx, int code)
{
	fprintf(stderr, "sealgate key: %s\n", sg_error_msg(&ctx->err));
	return code;
}

/* Read a file ("-": stdin) up to max bytes. The result is NUL-terminated. */
static int read_input(const char *path, size_t max, struct sg_buf *b, struct sg_error *err)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char chunk[8192];
	size_t n;
	int ret = 1;

	if (f == NULL) {
		sg_error_set(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	sg_buf_init(b, max);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (!sg_buf_append(b, chunk, n)) {
			sg_error_set(err, "%s: larger than %zu bytes", path, max);
			ret = -1;
			break;
		}
	if (ret > 0 && ferror(f)) {
		sg_error_set(err, "%s: read error", path);
		ret = -1;
	}
	if (f != stdin)
		fclose(f);
	sg_memwipe(chunk, sizeof(chunk));
	return ret;
}

/* The first line of a passphrase file, wiped by the caller. */
static char *read_passphrase(const char *path, struct sg_error *err)
{
	struct sg_buf b;
	if (read_input(path, 4096, &b, err) < 0) {
		sg_buf_free_secret(&b);
		return NULL;
	}
	size_t len = 0;
	char *p = (char *)sg_buf_steal(&b, &len);
	p[strcspn(p, "\r\n")] = '\0';
	return p;
}

static void free_passphrase(char **p)
{
	if (*p != NULL)
		sg_secret_free(p, strlen(*p));
}

/* The master key: --master-passphrase-file, else --master-key or
 * master_key_file. It must not live in the state dir (a copy of the
 * database alone must not be enough to read the private keys). */
static int load_master(struct key_ctx *ctx, struct sg_master_key **mk_r)
{
	const char *file = ctx->o.master_key != NULL ? ctx->o.master_key : ctx->cfg.master_key_file;
	char *pass = NULL;

	*mk_r = NULL;
	if (ctx->o.master_pass_file != NULL &&
	    (pass = read_passphrase(ctx->o.master_pass_file, &ctx->err)) == NULL)
		return -1;
	int r = sg_keys_master_load(file, pass, ctx->cfg.state_dir, mk_r, &ctx->err);
	free_passphrase(&pass);
	return r;
}

static int open_store(struct key_ctx *ctx)
{
	return sg_store_open_config(&ctx->cfg, NULL, &ctx->store, &ctx->err);
}

/* expiry: a date in the past is marked "(expired)"; 0 means never. */
static char *fmt_date(int64_t t, bool expiry)
{
	struct tm tm;
	char s[32];
	time_t tt = (time_t)t;
	if (t == 0)
		return sg_strdup("never");
	if (t < 0)
		return sg_strdup("?");
	if (gmtime_r(&tt, &tm) == NULL || strftime(s, sizeof(s), "%Y-%m-%d", &tm) == 0)
		return sg_strdup("?");
	return sg_asprintf("%s%s", s, expiry && t < time(NULL) ? " (expired)" : "");
}

/* ---- subcommands ---- */

static int key_init_master(struct key_ctx *ctx)
{
	const char *file = ctx->o.master_key != NULL ? ctx->o.master_key : ctx->cfg.master_key_file;
	if (file == NULL || *file == '\0') {
		fprintf(stderr, "sealgate key init-master: need --master-key FILE\n");
		return SG_EXIT_USAGE;
	}
	if (sg_master_key_create_file(file, &ctx->err) < 0)
		return fail(ctx, SG_EXIT_FAIL);
	printf("master key written to %s (mode 0600); keep it off the mail volume and back it up\n",
	       file);
	return SG_EXIT_OK;
}

static int store_secret(struct key_ctx *ctx, const char *addr, const struct sg_pgp_meta *m)
{
	struct sg_master_key *mk = NULL;
	int r = load_master(ctx, &mk);
	if (r > 0)
		r = sg_keys_put_private(ctx->store, mk, addr, m->fingerprint, SG_KEYS_PGP_SECRET,
					m->secret_data, m->secret_len, &ctx->err);
	sg_master_key_free(&mk);
	return r;
}

/* Check the key is fit to be someone's key: usable for encryption now
 * (not expired, not revoked, has an encryption subkey). */
static int check_usable(struct key_ctx *ctx, const struct sg_key *key, const char *what)
{
	enum sg_crypto_status st = SG_CRYPTO_OK;
	if (sg_key_usable_for_encrypt(key, time(NULL), &st, &ctx->err) == 1)
		return 1;
	sg_error_prefix(&ctx->err, "%s: %s", what, sg_crypto_status_name(st));
	return -1;
}

static int import_pgp(struct key_ctx *ctx, const struct sg_key *key, const struct sg_buf *in,
		      const char *what)
{
	struct sg_pgp_meta m;
	char **addrs = NULL;
	size_t n_addrs = 0;
	int ret = SG_EXIT_DATAERR;

	if (sg_pgp_meta_read(in->data, in->len, &m, &ctx->err) < 0) {
		sg_error_prefix(&ctx->err, "%s", what);
		return fail(ctx, SG_EXIT_DATAERR);
	}
	if (ctx->o.addr != NULL) {
		if (sg_key_matches_addr(key, ctx->o.addr) != 1) {
			sg_error_set(&ctx->err, "%s: user ID mismatch: key %s has no user ID <%s>",
				     what, m.fingerprint, ctx->o.addr);
			goto out;
		}
		addrs = (char **)&ctx->o.addr;
		n_addrs = 1;
	} else {
		addrs = m.addrs;
		n_addrs = m.n_addrs;
	}
	if (n_addrs == 0) {
		sg_error_set(&ctx->err, "%s: key %s has no user ID with an address", what,
			     m.fingerprint);
		goto out;
	}
	if (check_usable(ctx, key, what) < 0)
		goto out;
	ret = SG_EXIT_FAIL;
	for (size_t i = 0; i < n_addrs; i++) {
		if (sg_keys_put_public(ctx->store, addrs[i], m.fingerprint, "pgp", m.expires, "import",
				       "configured", m.public_data, m.public_len, &ctx->err) < 0)
			goto out;
		if (m.secret_data != NULL && (ctx->o.with_secret || ctx->cfg.store_user_private_keys) &&
		    store_secret(ctx, addrs[i], &m) < 0)
			goto out;
		printf("imported %s %s for %s\n", m.algo, m.fingerprint, addrs[i]);
	}
	if (m.secret_data != NULL && !ctx->o.with_secret && !ctx->cfg.store_user_private_keys)
		fprintf(stderr, "sealgate key: %s: secret key not stored (only the public part; "
			"--with-secret keeps it sealed under the master key)\n", what);
	ret = SG_EXIT_OK;
out:
	sg_pgp_meta_clear(&m);
	return ret == SG_EXIT_OK ? ret : fail(ctx, ret);
}

/* X.509: crypto/smime.h can parse and check a certificate but not yet
 * export it, so only a certificate without a private key is stored, as
 * given, under the address it names (--addr). */
static int import_x509(struct key_ctx *ctx, const struct sg_key *key, const struct sg_buf *in,
		       const char *what)
{
	if (sg_key_has_secret(key)) {
		sg_error_set(&ctx->err, "%s: X.509 input with a private key is not supported yet", what);
		return fail(ctx, SG_EXIT_DATAERR);
	}
	if (ctx->o.addr == NULL) {
		sg_error_set(&ctx->err, "%s: an X.509 certificate needs --addr ADDR", what);
		return fail(ctx, SG_EXIT_USAGE);
	}
	if (sg_key_matches_addr(key, ctx->o.addr) != 1) {
		sg_error_set(&ctx->err, "%s: certificate does not name %s", what, ctx->o.addr);
		return fail(ctx, SG_EXIT_DATAERR);
	}
	if (check_usable(ctx, key, what) < 0)
		return fail(ctx, SG_EXIT_DATAERR);
	if (sg_keys_put_public(ctx->store, ctx->o.addr, sg_key_fingerprint(key), "x509", -1, "import",
			       "configured", in->data, in->len, &ctx->err) < 0)
		return fail(ctx, SG_EXIT_FAIL);
	printf("imported X.509 %s for %s\n", sg_key_fingerprint(key), ctx->o.addr);
	return SG_EXIT_OK;
}

static int key_import(struct key_ctx *ctx)
{
	const char *path = ctx->o.args[0];
	struct sg_buf in;
	struct sg_key *key = NULL;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	char *pass = NULL;
	int ret = SG_EXIT_DATAERR;

	if (read_input(path, KEY_INPUT_MAX, &in, &ctx->err) < 0) {
		sg_buf_free_secret(&in);
		return fail(ctx, SG_EXIT_FAIL);
	}
	if (ctx->o.passphrase_file != NULL &&
	    (pass = read_passphrase(ctx->o.passphrase_file, &ctx->err)) == NULL) {
		ret = fail(ctx, SG_EXIT_FAIL);
		goto out;
	}
	if (in.len == 0) {
		sg_error_set(&ctx->err, "%s: empty input", path);
		ret = fail(ctx, SG_EXIT_DATAERR);
		goto out;
	}
	if (sg_key_load_mem(in.data, in.len, pass, &key, &st, &ctx->err) < 0) {
		sg_error_prefix(&ctx->err, "%s: %s", path, sg_crypto_status_name(st));
		ret = fail(ctx, SG_EXIT_DATAERR);
		goto out;
	}
	ret = sg_key_kind(key) == SG_KEY_PGP ? import_pgp(ctx, key, &in, path)
					      : import_x509(ctx, key, &in, path);
out:
	sg_key_free(&key);
	free_passphrase(&pass);
	sg_buf_free_secret(&in);
	return ret;
}

/* One line of the `key list` tables; when is a unix time (an expiry: 0 = never). */
static void print_row(const char *addr, const char *kind, const char *fpr, int64_t when,
		      bool expiry, const char *source, const char *trust)
{
	char *date = fmt_date(when, expiry);
	printf("%-32s %-5s %-40s %-18s %-10s %s\n", addr, kind, fpr, date, source, trust);
	free(date);
}

static void print_header(const char *date_column)
{
	printf("%-32s %-5s %-40s %-18s %-10s %s\n", "ADDRESS", "TYPE", "FINGERPRINT", date_column,
	       "SOURCE", "TRUST");
}

/* After the table: keys a directory gave that differ from the known ones,
 * held by key_change = hold until approved or rejected. addr NULL: all. */
static int list_held(struct key_ctx *ctx, const char *addr)
{
	struct sg_keys_held *held = NULL;
	size_t n = 0;
	int r = sg_keys_held_list(ctx->store, addr, &held, &n, &ctx->err);

	if (r > 0) {
		printf("\nHELD for approval (key_change = hold; the old key stays in use):\n"
		       "  sealgate key approve|reject ADDR FINGERPRINT\n");
		print_header("FETCHED");
	}
	for (size_t i = 0; i < n; i++)
		print_row(held[i].addr, held[i].kind, held[i].fingerprint, held[i].fetched_at,
			  false, held[i].source, held[i].trust);
	sg_keys_held_free(&held, n);
	return r;
}

static int key_list(struct key_ctx *ctx)
{
	struct sg_store_key *keys = NULL;
	size_t n = 0;
	char *addr = NULL;

	if (ctx->o.n_args > 0 &&
	    (addr = sg_keys_normalize_addr(ctx->o.args[0], &ctx->err)) == NULL)
		return fail(ctx, SG_EXIT_USAGE);
	int r = sg_store_key_list(ctx->store, addr, &keys, &n, &ctx->err);
	if (r >= 0) {
		print_header("EXPIRES");
		for (size_t i = 0; i < n; i++)
			print_row(keys[i].addr, keys[i].kind, keys[i].fingerprint, keys[i].expires,
				  true, keys[i].source, keys[i].trust);
		r = list_held(ctx, addr);
	}
	sg_store_keys_free(&keys, n);
	free(addr);
	return r < 0 ? fail(ctx, SG_EXIT_FAIL) : SG_EXIT_OK;
}

/* The keys of ADDR (one with --fingerprint); 0 with a message if none. */
static int addr_keys(struct key_ctx *ctx, struct sg_store_key **keys_r, size_t *n_r)
{
	char *addr = sg_keys_normalize_addr(ctx->o.args[0], &ctx->err);
	int r;

	*keys_r = NULL;
	*n_r = 0;
	if (addr == NULL)
		return -1;
	if (ctx->o.fingerprint != NULL) {
		struct sg_store_key k;
		r = sg_store_key_get(ctx->store, addr, ctx->o.fingerprint, &k, &ctx->err);
		if (r > 0) {
			*keys_r = sg_malloc(sizeof(k));
			**keys_r = k;
			*n_r = 1;
		}
	} else {
		r = sg_store_key_list(ctx->store, addr, keys_r, n_r, &ctx->err);
	}
	if (r == 0)
		sg_error_set(&ctx->err, "no key for %s%s%s", addr,
			     ctx->o.fingerprint != NULL ? " with fingerprint " : "",
			     ctx->o.fingerprint != NULL ? ctx->o.fingerprint : "");
	free(addr);
	return r;
}

static int key_show(struct key_ctx *ctx)
{
	struct sg_store_key *keys = NULL;
	size_t n = 0;
	int r = addr_keys(ctx, &keys, &n);
	if (r <= 0)
		return fail(ctx, SG_EXIT_FAIL);
	for (size_t i = 0; i < n; i++) {
		struct sg_store_key *k = &keys[i];
		char *exp = fmt_date(k->expires, true), *created = fmt_date(k->created, false);
		printf("address:     %s\ntype:        %s\nfingerprint: %s\nexpires:     %s\n"
		       "stored:      %s\nsource:      %s\ntrust:       %s\nsize:        %zu bytes\n",
		       k->addr, k->kind, k->fingerprint, exp, created, k->source, k->trust, k->len);
		if (strcmp(k->kind, "pgp") == 0)
			printf("wkd:         /.well-known/openpgpkey/%s/hu/%s\n", k->domain,
			       k->wkd_hash);
		if (i + 1 < n)
			printf("\n");
		free(exp);
		free(created);
	}
	sg_store_keys_free(&keys, n);
	return SG_EXIT_OK;
}

static const char *secret_purpose(const struct sg_store_key *k)
{
	return strcmp(k->kind, "x509") == 0 ? SG_KEYS_SMIME_SECRET : SG_KEYS_PGP_SECRET;
}

/* --secret: the sealed secret key, opened with the master key (backup,
 * recovery); an error names a wrong master key or a tampered row. */
static int export_secret(struct key_ctx *ctx, const struct sg_store_key *k)
{
	struct sg_master_key *mk = NULL;
	unsigned char *plain = NULL;
	size_t len = 0;
	int r = load_master(ctx, &mk);
	if (r > 0)
		r = sg_keys_get_private(ctx->store, mk, k->addr, k->fingerprint, secret_purpose(k),
					&plain, &len, &ctx->err);
	sg_master_key_free(&mk);
	if (r == 0)
		sg_error_set(&ctx->err, "no secret key stored for %s %s", k->addr, k->fingerprint);
	if (r > 0 && fwrite(plain, 1, len, stdout) != len)
		r = -1;
	if (plain != NULL)
		sg_secret_free(&plain, len);
	return r;
}

static int key_export(struct key_ctx *ctx)
{
	struct sg_store_key *keys = NULL;
	size_t n = 0;
	int ret = SG_EXIT_OK;
	if (addr_keys(ctx, &keys, &n) <= 0)
		return fail(ctx, SG_EXIT_FAIL);
	for (size_t i = 0; i < n && ret == SG_EXIT_OK; i++) {
		if (ctx->o.secret) {
			if (export_secret(ctx, &keys[i]) <= 0)
				ret = fail(ctx, SG_EXIT_FAIL);
		} else if (fwrite(keys[i].data, 1, keys[i].len, stdout) != keys[i].len) {
			ret = SG_EXIT_FAIL;
		}
	}
	if (fflush(stdout) != 0)
		ret = SG_EXIT_FAIL;
	sg_store_keys_free(&keys, n);
	return ret;
}

static int key_delete(struct key_ctx *ctx)
{
	struct sg_store_key *keys = NULL;
	size_t n = 0;
	int ret = SG_EXIT_FAIL;

	if (addr_keys(ctx, &keys, &n) <= 0)
		return fail(ctx, SG_EXIT_FAIL);
	/* Public rows and any sealed secret of the same key go together. */
	if (sg_store_begin(ctx->store, &ctx->err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (sg_store_key_delete(ctx->store, keys[i].addr, keys[i].fingerprint, &ctx->err) < 0 ||
		    sg_store_secret_delete(ctx->store, keys[i].addr, keys[i].fingerprint,
					   secret_purpose(&keys[i]), &ctx->err) < 0) {
			sg_store_rollback(ctx->store);
			goto out;
		}
	}
	if (sg_store_commit(ctx->store, &ctx->err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		printf("deleted %s %s\n", keys[i].addr, keys[i].fingerprint);
	ret = SG_EXIT_OK;
out:
	sg_store_keys_free(&keys, n);
	return ret == SG_EXIT_OK ? ret : fail(ctx, ret);
}

/* Public certificate and sealed private key in one transaction. */
static int store_generated(struct key_ctx *ctx, const struct sg_master_key *mk, const char *addr,
			   const char *fpr, const char *kind, int64_t expires, const void *pub,
			   size_t pub_len, const char *purpose, const void *sec, size_t sec_len)
{
	if (sg_store_begin(ctx->store, &ctx->err) < 0)
		return -1;
	if (sg_keys_put_public(ctx->store, addr, fpr, kind, expires, "generate", "local", pub,
			       pub_len, &ctx->err) < 0 ||
	    sg_keys_put_private(ctx->store, mk, addr, fpr, purpose, sec, sec_len, &ctx->err) < 0) {
		sg_store_rollback(ctx->store);
		return -1;
	}
	return sg_store_commit(ctx->store, &ctx->err);
}

/* --smime: a self-signed certificate naming addr; its fingerprint is the
 * one `key import` would give the same certificate. */
static int generate_smime(struct key_ctx *ctx, const char *addr)
{
	struct sg_x509_gen g = { 0 };
	struct sg_master_key *mk = NULL;
	struct sg_key *cert = NULL;
	enum sg_crypto_status st;
	int ret = SG_EXIT_FAIL;

	if (load_master(ctx, &mk) < 0)
		return fail(ctx, SG_EXIT_CONFIG);
	if (sg_x509_generate(addr, ctx->o.type != NULL ? ctx->o.type : "rsa3072",
			     ctx->cfg.smime_cert_days, &g, &ctx->err) < 0) {
		ret = SG_EXIT_USAGE;
		goto out;
	}
	if (sg_key_load_mem(g.cert_der, g.cert_len, NULL, &cert, &st, &ctx->err) != 1)
		goto out;
	if (store_generated(ctx, mk, addr, sg_key_fingerprint(cert), "x509", g.expires, g.cert_der,
			    g.cert_len, SG_KEYS_SMIME_SECRET, g.key_pem, g.key_len) < 0)
		goto out;
	printf("generated S/MIME %s %s for %s\n", g.algo, sg_key_fingerprint(cert), addr);
	ret = SG_EXIT_OK;
out:
	sg_key_free(&cert);
	sg_x509_gen_clear(&g);
	sg_master_key_free(&mk);
	return ret == SG_EXIT_OK ? ret : fail(ctx, ret);
}

static int key_generate(struct key_ctx *ctx)
{
	struct sg_pgp_meta m;
	struct sg_master_key *mk = NULL;
	/* --gateway: the key clients encrypt submissions to (gateway_address). */
	const char *want = ctx->o.n_args > 0 ? ctx->o.args[0] : ctx->o.gateway ? ctx->cfg.gateway_address : "";
	char *addr = sg_keys_normalize_addr(want, &ctx->err);
	int ret = SG_EXIT_FAIL;

	if (addr == NULL) {
		if (ctx->o.gateway && ctx->o.n_args == 0)
			sg_error_set(&ctx->err, "--gateway: set gateway_address in the config (-c FILE)");
		return fail(ctx, SG_EXIT_USAGE);
	}
	if (ctx->o.smime) {
		ret = generate_smime(ctx, addr);
		free(addr);
		return ret;
	}
	/* Load the master key first: a generated secret is never stored in clear. */
	if (load_master(ctx, &mk) < 0) {
		free(addr);
		return fail(ctx, SG_EXIT_CONFIG);
	}
	memset(&m, 0, sizeof(m));
	if (sg_pgp_meta_generate(addr, ctx->o.type != NULL ? ctx->o.type : "ed25519", &m,
				 &ctx->err) < 0)
		goto out;
	if (store_generated(ctx, mk, addr, m.fingerprint, "pgp", m.expires, m.public_data,
			    m.public_len, SG_KEYS_PGP_SECRET, m.secret_data, m.secret_len) < 0)
		goto out;
	printf("generated %s %s for %s\n", m.algo, m.fingerprint, addr);
	ret = SG_EXIT_OK;
out:
	sg_pgp_meta_clear(&m);
	sg_master_key_free(&mk);
	free(addr);
	return ret == SG_EXIT_OK ? ret : fail(ctx, ret);
}

/* approve / reject ADDR FINGERPRINT: the admin's word on a held key. */
static int resolve_held(struct key_ctx *ctx, bool approve)
{
	char *addr = sg_keys_normalize_addr(ctx->o.args[0], &ctx->err);
	if (addr == NULL)
		return fail(ctx, SG_EXIT_USAGE);
	int r = sg_keys_held_resolve(ctx->store, addr, ctx->o.args[1], approve, (int64_t)time(NULL),
				     ctx->cfg.lookup_cache_ttl, &ctx->err);
	if (r > 0) {
		printf("%s %s %s\n", approve ? "approved" : "rejected", addr, ctx->o.args[1]);
		sg_log_warn("KEY CHANGE: %s: held key %s %s by the administrator", addr,
			    ctx->o.args[1], approve ? "approved" : "rejected");
	}
	free(addr);
	return r > 0 ? SG_EXIT_OK : fail(ctx, r == 0 ? SG_EXIT_NO_KEY : SG_EXIT_FAIL);
}

static int key_approve(struct key_ctx *ctx)
{
	return resolve_held(ctx, true);
}

static int key_reject(struct key_ctx *ctx)
{
	return resolve_held(ctx, false);
}

static int key_export_wkd(struct key_ctx *ctx)
{
	const char *sub = ctx->o.submission != NULL ? ctx->o.submission
						    : ctx->cfg.wkd_submission_address;
	int n = sg_wkd_export(ctx->store, ctx->o.args[0], sub, &ctx->err);
	if (n < 0)
		return fail(ctx, SG_EXIT_FAIL);
	printf("wrote %d key(s) to %s/.well-known/openpgpkey\n", n, ctx->o.args[0]);
	return SG_EXIT_OK;
}

static int key_serve_wkd(struct key_ctx *ctx)
{
	struct sg_wkd_server_config sc = {
		.listen = ctx->o.listen != NULL ? ctx->o.listen : ctx->cfg.wkd_listen,
		.tls_cert_file = ctx->o.tls_cert != NULL ? ctx->o.tls_cert : ctx->cfg.wkd_tls_cert_file,
		.tls_key_file = ctx->o.tls_key != NULL ? ctx->o.tls_key : ctx->cfg.wkd_tls_key_file,
		.submission_address = ctx->o.submission != NULL ? ctx->o.submission
								: ctx->cfg.wkd_submission_address,
		.domains = ctx->o.domains != NULL ? ctx->o.domains : ctx->cfg.wkd_domains,
	};
	struct sg_wkd_server *srv = NULL;
	sigset_t set;
	int sig = 0;

	if (sc.listen == NULL || *sc.listen == '\0') {
		fprintf(stderr, "sealgate key serve-wkd: need --listen ADDR:PORT or wkd_listen\n");
		return SG_EXIT_USAGE;
	}
	/* Block the stop signals before the server thread starts, so that
	 * only sigwait() below sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (sg_wkd_server_start(&sc, ctx->store, &srv, &ctx->err) < 0)
		return fail(ctx, SG_EXIT_FAIL);
	printf("wkd: serving %s on %s port %u\n",
	       sc.tls_cert_file != NULL && *sc.tls_cert_file != '\0' ? "https" : "http", sc.listen,
	       sg_wkd_server_port(srv));
	fflush(stdout);
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		;
	sg_wkd_server_stop(&srv);
	return SG_EXIT_OK;
}

static const struct {
	const char *name;
	key_handler *run;
	int min_args, max_args;
	bool store;
	const char *usage;
} subcommands[] = {
	{ "init-master", key_init_master, 0, 0, false, "init-master --master-key FILE" },
	{ "import", key_import, 1, 1, true,
	  "import FILE|- [--addr ADDR] [--passphrase-file F] [--with-secret]" },
	{ "list", key_list, 0, 1, true, "list [ADDR]" },
	{ "show", key_show, 1, 1, true, "show ADDR [--fingerprint FPR]" },
	{ "export", key_export, 1, 1, true, "export ADDR [--fingerprint FPR] [--secret]" },
	{ "delete", key_delete, 1, 1, true, "delete ADDR [--fingerprint FPR]" },
	{ "generate", key_generate, 0, 1, true,
	  "generate ADDR | --gateway [--type ed25519|rsa3072] | generate ADDR --smime [--type rsa3072|p256]" },
	{ "approve", key_approve, 2, 2, true, "approve ADDR FINGERPRINT   (a key held by key_change = hold)" },
	{ "reject", key_reject, 2, 2, true, "reject ADDR FINGERPRINT" },
	{ "export-wkd", key_export_wkd, 1, 1, true, "export-wkd DIR [--submission-address ADDR]" },
	{ "serve-wkd", key_serve_wkd, 0, 0, true,
	  "serve-wkd --listen ADDR:PORT [--tls-cert F --tls-key F] [--domains 'a.org b.org']" },
};
#define N_SUB (sizeof(subcommands) / sizeof(subcommands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: sealgate key SUBCOMMAND [-c FILE] [--state-dir DIR] [--store SPEC]\n"
		   "                    [--master-key FILE | --master-passphrase-file FILE] ...\n");
	for (size_t i = 0; i < N_SUB; i++)
		fprintf(f, "  sealgate key %s\n", subcommands[i].usage);
	fprintf(f, "  sealgate key lookup ADDR [--source wkd|ldap|dns] [--no-cache] [--pending] "
		   "(see sealgate key lookup --help)\n");
}

/* 1 parsed, 0 --help shown, -1 usage error. */
static int parse(int argc, char **argv, struct key_opts *o)
{
	static const struct option longopts[] = {
		SG_CLI_WHERE_OPTIONS,
		{ "master-key", required_argument, NULL, 'm' },
		{ "master-passphrase-file", required_argument, NULL, 'M' },
		{ "passphrase-file", required_argument, NULL, 'p' },
		{ "type", required_argument, NULL, 't' },
		{ "smime", no_argument, NULL, 'x' },
		{ "with-secret", no_argument, NULL, 'w' },
		{ "secret", no_argument, NULL, 'z' },
		{ "gateway", no_argument, NULL, 'g' },
		{ "addr", required_argument, NULL, 'a' },
		{ "fingerprint", required_argument, NULL, 'f' },
		{ "listen", required_argument, NULL, 'l' },
		{ "submission-address", required_argument, NULL, 's' },
		{ "domains", required_argument, NULL, 'D' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (sg_cli_where_opt(&o->where, c, optarg))
			continue;
		switch (c) {
		case 'm': o->master_key = optarg; break;
		case 'M': o->master_pass_file = optarg; break;
		case 'p': o->passphrase_file = optarg; break;
		case 't': o->type = optarg; break;
		case 'x': o->smime = true; break;
		case 'w': o->with_secret = true; break;
		case 'z': o->secret = true; break;
		case 'g': o->gateway = true; break;
		case 'a': o->addr = optarg; break;
		case 'f': o->fingerprint = optarg; break;
		case 'l': o->listen = optarg; break;
		case 's': o->submission = optarg; break;
		case 'D': o->domains = optarg; break;
		case 'C': o->tls_cert = optarg; break;
		case 'K': o->tls_key = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return -1;
		}
	}
	o->args = argv + optind;
	o->n_args = argc - optind;
	return 1;
}

static int configure(struct key_ctx *ctx)
{
	return sg_cli_where_config(&ctx->o.where, &ctx->cfg, &ctx->err);
}

int cmd_key(int argc, char **argv)
{
	struct key_ctx ctx;
	size_t i;
	int ret;

	memset(&ctx, 0, sizeof(ctx));
	/* "key lookup" is the remote chain's command (cmd-key-lookup.c). */
	if (argc > 1 && strcmp(argv[1], "lookup") == 0)
		return cmd_key_lookup(argc - 1, argv + 1);
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? SG_EXIT_USAGE : SG_EXIT_OK;
	}
	for (i = 0; i < N_SUB; i++)
		if (strcmp(argv[1], subcommands[i].name) == 0)
			break;
	if (i == N_SUB) {
		fprintf(stderr, "sealgate key: unknown subcommand '%s'\n", argv[1]);
		usage(stderr);
		return SG_EXIT_USAGE;
	}
	int p = parse(argc - 1, argv + 1, &ctx.o);
	if (p <= 0)
		return p == 0 ? SG_EXIT_OK : SG_EXIT_USAGE;
	if (ctx.o.n_args < subcommands[i].min_args || ctx.o.n_args > subcommands[i].max_args) {
		fprintf(stderr, "usage: sealgate key %s\n", subcommands[i].usage);
		return SG_EXIT_USAGE;
	}
	sg_log_open("sealgate/key", SG_LOG_STDERR, NULL);
	if (configure(&ctx) < 0) {
		ret = fail(&ctx, SG_EXIT_CONFIG);
		goto out;
	}
	if (subcommands[i].store && open_store(&ctx) < 0) {
		ret = fail(&ctx, SG_EXIT_FAIL);
		goto out;
	}
	ret = subcommands[i].run(&ctx);
out:
	sg_store_close(&ctx.store);
	sg_config_clear(&ctx.cfg);
	sg_error_clear(&ctx.err);
	return ret;
}
