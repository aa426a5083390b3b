/* WKD hashing, request-path parsing and the exported tree
 * (draft-koch-openpgp-webkey-service-15 §3.1 and §4). */
#include "keys/wkd.h"
#include "store/store.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char zb32[] = "ybndrfg8ejkmcpqxot1uwisza345h769";

#define PREFIX "/.well-known/openpgpkey/"

void sg_zbase32_encode(const unsigned char *in, size_t len, char *out, size_t out_size)
{
	size_t o = 0;
	unsigned buf = 0;
	int bits = 0;

	for (size_t i = 0; i < len; i++) {
		buf = (buf << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			if (o + 1 < out_size)
				out[o++] = zb32[(buf >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0 && o + 1 < out_size)
		out[o++] = zb32[(buf << (5 - bits)) & 31];
	if (out_size > 0)
		out[o] = '\0';
}

static bool domain_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.';
}

static char *lower_ascii(const char *s, size_t n)
{
	char *r = sg_strndup(s, n);
	for (char *p = r; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return r;
}

int sg_wkd_hash(const char *addr, char **hash_r, char **domain_r, struct sg_error *err)
{
	const char *at = strrchr(addr, '@');
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char *local = NULL;
	int ret = -1;

	if (hash_r != NULL)
		*hash_r = NULL;
	if (domain_r != NULL)
		*domain_r = NULL;
	if (at == NULL || at == addr || at[1] == '\0' || strchr(at + 1, '/') != NULL) {
		sg_error_set(err, "'%s' is not an address (local@domain)", addr);
		return -1;
	}
	for (const char *p = at + 1; *p != '\0'; p++)
		if (!domain_char(*p)) {
			sg_error_set(err, "'%s': bad character in domain", addr);
			return -1;
		}
	/* §3.1: the local part is mapped to lower case (ASCII only), then
	 * hashed with SHA-1 and encoded with z-base-32. */
	local = lower_ascii(addr, (size_t)(at - addr));
	if (EVP_Digest(local, strlen(local), md, &md_len, EVP_sha1(), NULL) != 1) {
		sg_error_set(err, "SHA-1 failed");
		goto out;
	}
	if (hash_r != NULL) {
		*hash_r = sg_malloc(SG_WKD_HASH_LEN + 1);
		sg_zbase32_encode(md, md_len, *hash_r, SG_WKD_HASH_LEN + 1);
	}
	if (domain_r != NULL)
		*domain_r = lower_ascii(at + 1, strlen(at + 1));
	ret = 1;
out:
	free(local);
	return ret;
}

static bool is_hash(const char *s, size_t n)
{
	if (n != SG_WKD_HASH_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(zb32, s[i]) == NULL)
			return false;
	return true;
}

static bool is_domain(const char *s, size_t n)
{
	if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!domain_char(s[i]) || (s[i] == '.' && i + 1 < n && s[i + 1] == '.'))
			return false;
	return true;
}

/* The tail after PREFIX or PREFIX DOMAIN/: "hu/HASH", "policy",
 * "submission-address". */
static int parse_tail(const char *s, size_t n, struct sg_wkd_req *req)
{
	static const struct {
		const char *name;
		enum sg_wkd_req_type type;
	} files[] = {
		{ "policy", SG_WKD_REQ_POLICY },
		{ "submission-address", SG_WKD_REQ_SUBMISSION_ADDRESS },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (n == strlen(files[i].name) && memcmp(s, files[i].name, n) == 0) {
			req->type = files[i].type;
			return 1;
		}
	if (n > 3 && memcmp(s, "hu/", 3) == 0 && is_hash(s + 3, n - 3)) {
		req->type = SG_WKD_REQ_KEY;
		req->hash = sg_strndup(s + 3, n - 3);
		return 1;
	}
	return 0;
}

int sg_wkd_parse_path(const char *path, size_t len, struct sg_wkd_req *req_r)
{
	const size_t plen = sizeof(PREFIX) - 1;
	memset(req_r, 0, sizeof(*req_r));

	if (len > SG_WKD_PATH_MAX || len <= plen || memcmp(path, PREFIX, plen) != 0)
		return 0;
	/* Only the characters a WKD path can contain: no '%' (nothing here
	 * needs escaping, so escapes are refused, not decoded), no NUL,
	 * no '\\'; dots only inside a domain, never "..". */
	for (size_t i = 0; i < len; i++) {
		char c = path[i];
		if (!domain_char(c) && c != '/' && c != '_')
			return 0;
		if (c == '.' && i + 1 < len && path[i + 1] == '.')
			return 0;
		if (c == '/' && i + 1 < len && path[i + 1] == '/')
			return 0;
	}
	const char *s = path + plen;
	size_t n = len - plen;
	if (parse_tail(s, n, req_r) > 0)
		return 1;
	/* Advanced layout: DOMAIN/tail. */
	const char *slash = memchr(s, '/', n);
	if (slash == NULL || !is_domain(s, (size_t)(slash - s)))
		return 0;
	if (parse_tail(slash + 1, n - (size_t)(slash - s) - 1, req_r) <= 0)
		return 0;
	req_r->domain = lower_ascii(s, (size_t)(slash - s));
	return 1;
}

void sg_wkd_req_clear(struct sg_wkd_req *req)
{
	free(req->domain);
	free(req->hash);
	memset(req, 0, sizeof(*req));
}

/* ---- export ---- */

struct written {
	char **paths;
	size_t n;
};

static bool seen(struct written *w, const char *path)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->paths[i], path) == 0)
			return true;
	w->paths = sg_reallocarray(w->paths, w->n + 1, sizeof(*w->paths));
	w->paths[w->n++] = sg_strdup(path);
	return false;
}

static int mkdirs(const char *path, struct sg_error *err)
{
	char *p = sg_strdup(path);
	int ret = 1;
	for (char *s = p + 1; ret > 0; s++) {
		bool end = *s == '\0';
		if (*s != '/' && !end)
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			sg_error_set(err, "mkdir %s: %s", p, strerror(errno));
			ret = -1;
		}
		if (end)
			break;
		*s = '/';
	}
	free(p);
	return ret;
}

/* Write (first time in this export) or append (several keys for one
 * hash: a WKD response may hold more than one key, §3.1). */
static int write_file(struct written *w, const char *path, const void *data, size_t len,
		      struct sg_error *err)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
	flags |= seen(w, path) ? O_APPEND : O_TRUNC;
	int fd = open(path, flags, 0644);
	if (fd < 0) {
		sg_error_set(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	const unsigned char *p = data;
	while (len > 0) {
		ssize_t r = write(fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			sg_error_set(err, "%s: write: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	if (close(fd) < 0) {
		sg_error_set(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 1;
}

/* One layout's files for one key: base is ".../openpgpkey" (direct) or
 * ".../openpgpkey/DOMAIN" (advanced). */
static int export_key(struct written *w, const char *base, const struct sg_store_key *k,
		      const char *submission, struct sg_error *err)
{
	char *hu = sg_asprintf("%s/hu", base);
	char *keyfile = sg_asprintf("%s/%s", hu, k->wkd_hash);
	char *policy = sg_asprintf("%s/policy", base);
	char *sub = sg_asprintf("%s/submission-address", base);
	char *sub_text = sg_asprintf("%s\n", submission != NULL ? submission : "");
	int ret = -1;

	if (mkdirs(hu, err) < 0 || write_file(w, keyfile, k->data, k->len, err) < 0)
		goto out;
	/* An empty policy file: the draft's way to say "WKD is offered". */
	if (!seen(w, policy) && write_file(w, policy, "", 0, err) < 0)
		goto out;
	if (submission != NULL && *submission != '\0' && !seen(w, sub) &&
	    write_file(w, sub, sub_text, strlen(sub_text), err) < 0)
		goto out;
	ret = 1;
out:
	free(hu);
	free(keyfile);
	free(policy);
	free(sub);
	free(sub_text);
	return ret;
}

int sg_wkd_export(struct sg_store *store, const char *dir, const char *submission,
		  struct sg_error *err)
{
	struct sg_store_key *keys = NULL;
	struct written w = { NULL, 0 };
	size_t n = 0;
	int count = 0, ret = -1;
	char *direct = sg_asprintf("%s/.well-known/openpgpkey", dir);

	if (sg_store_key_list(store, NULL, &keys, &n, err) < 0)
		goto out;
	if (mkdirs(direct, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].kind, "pgp") != 0 || keys[i].wkd_hash[0] == '\0')
			continue;
		char *adv = sg_asprintf("%s/%s", direct, keys[i].domain);
		int r = export_key(&w, adv, &keys[i], submission, err);
		free(adv);
		if (r < 0 || export_key(&w, direct, &keys[i], submission, err) < 0)
			goto out;
		count++;
	}
	/* The direct layout's policy file even when there are no keys. */
	char *policy = sg_asprintf("%s/policy", direct);
	int r = seen(&w, policy) ? 1 : write_file(&w, policy, "", 0, err);
	free(policy);
	if (r < 0)
		goto out;
	ret = count;
out:
	if (ret < 0)
		sg_error_prefix(err, "export-wkd %s", dir);
	for (size_t i = 0; i < w.n; i++)
		free(w.paths[i]);
	free(w.paths);
	free(direct);
	sg_store_keys_free(&keys, n);
	return ret;
}
