/* Stored private keys for their users: one loop that opens each sealed
 * secret of an address (signing, re-keying), and the master key loader. */
#include "keys/secret-keys.h"
#include "config/config.h"
#include "keys/keystore.h"
#include "keys/master.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/mem.h"
#include "util/secret.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First line of a passphrase file; owned, wipe with sg_secret_free. */
static char *read_first_line(const char *path, struct sg_error *err)
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
		sg_error_set(err, "%s: empty passphrase file", path);
		if (line != NULL)
			sg_secret_free(&line, cap);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = '\0';
	char *out = sg_strdup(line);
	sg_secret_free(&line, cap);
	return out;
}

int sg_keys_master_load(const struct sg_config *cfg, const char *file, const char *pass_file,
			struct sg_master_key **mk_r, struct sg_error *err)
{
	*mk_r = NULL;
	if (pass_file != NULL) {
		char *pass = read_first_line(pass_file, err);
		if (pass == NULL)
			return -1;
		int r = sg_master_key_from_passphrase(pass, mk_r, err);
		sg_secret_free(&pass, strlen(pass));
		return r;
	}
	if (file == NULL)
		file = cfg->master_key_file;
	if (file == NULL || *file == '\0') {
		sg_error_set(err, "no master key: set master_key_file or give --master-key FILE");
		return -1;
	}
	return sg_master_key_load_file(file, mk_r, err);
}

int sg_keys_each_secret(struct sg_store *store, const struct sg_master_key *mk, const char *addr,
			const char *kind, const char *purpose, sg_keys_secret_fn *fn, void *ctx,
			size_t *n_opened_r, struct sg_error *err)
{
	struct sg_store_key *rows = NULL;
	struct sg_error why = SG_ERROR_INIT;
	size_t n = 0, opened = 0;
	int ret = 0;
	char *norm = sg_keys_normalize_addr(addr, err);

	if (norm == NULL)
		return -1;
	if (sg_store_key_list(store, norm, &rows, &n, err) < 0) {
		ret = -1;
		goto out;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		unsigned char *plain = NULL;
		size_t len = 0;
		if (strcmp(rows[i].kind, kind) != 0)
			continue;
		int r = sg_keys_get_private(store, mk, rows[i].addr, rows[i].fingerprint, purpose,
					    &plain, &len, err);
		if (r < 0) {
			sg_error_prefix(err, "%s %s", norm, rows[i].fingerprint);
			ret = -1;
			break;
		}
		if (r == 0) {
			sg_error_set(&why, "no private key stored for %s", rows[i].fingerprint);
			continue;
		}
		opened++;
		sg_error_clear(&why);
		ret = fn(ctx, &rows[i], plain, len, &why);
		sg_secret_free(&plain, len + 1);
		if (ret < 0)
			sg_error_set(err, "%s %s: %s", norm, rows[i].fingerprint, sg_error_msg(&why));
	}
	if (ret == 0)
		sg_error_set(err, "%s: %s", norm, why.msg != NULL ? why.msg : "no secret key stored");
out:
	if (n_opened_r != NULL)
		*n_opened_r = opened;
	sg_store_keys_free(&rows, n);
	sg_error_clear(&why);
	free(norm);
	return ret;
}
