/* Key store operations that need more than one module: address
 * normalisation, WKD hash columns, sealing private keys. */
#include "keys/keystore.h"
#include "keys/master.h"
#include "keys/wkd.h"
#include "store/store.h"
#include "util/mem.h"
#include "util/secret.h"

#include <stdlib.h>
#include <string.h>

char *sg_keys_normalize_addr(const char *addr, struct sg_error *err)
{
	const char *at = strrchr(addr, '@');
	if (at == NULL || at == addr || at[1] == '\0' || strlen(addr) > 320) {
		sg_error_set(err, "'%s' is not an address (local@domain)", addr);
		return NULL;
	}
	for (const char *p = addr; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == '/') {
			sg_error_set(err, "'%s': character not allowed in an address", addr);
			return NULL;
		}
	char *r = sg_strdup(addr);
	for (char *p = r; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return r;
}

int sg_keys_put_public(struct sg_store *store, const char *addr, const char *fingerprint,
		       const char *kind, int64_t expires, const char *source, const char *trust,
		       const void *data, size_t len, struct sg_error *err)
{
	struct sg_store_key k = { 0 };
	char *norm = sg_keys_normalize_addr(addr, err);
	int ret = -1;

	if (norm == NULL)
		return -1;
	if (sg_wkd_hash(norm, &k.wkd_hash, &k.domain, err) < 0)
		goto out;
	k.addr = norm;
	k.fingerprint = (char *)fingerprint;
	k.kind = (char *)kind;
	k.expires = expires;
	k.source = (char *)source;
	k.trust = (char *)trust;
	k.data = (unsigned char *)data;
	k.len = len;
	ret = sg_store_key_put(store, &k, err);
out:
	free(norm);
	free(k.wkd_hash);
	free(k.domain);
	return ret;
}

int sg_keys_put_private(struct sg_store *store, const struct sg_master_key *mk,
			const char *owner, const char *fingerprint, const char *purpose,
			const void *plain, size_t len, struct sg_error *err)
{
	struct sg_store_secret s = { 0 };
	int ret;

	if (sg_master_seal(mk, owner, fingerprint, purpose, plain, len, &s.blob, &s.len, err) < 0)
		return -1;
	s.owner = (char *)owner;
	s.fingerprint = (char *)fingerprint;
	s.purpose = (char *)purpose;
	ret = sg_store_secret_put(store, &s, err);
	free(s.blob);
	return ret;
}

int sg_keys_get_private(struct sg_store *store, const struct sg_master_key *mk,
			const char *owner, const char *fingerprint, const char *purpose,
			unsigned char **plain_r, size_t *len_r, struct sg_error *err)
{
	struct sg_store_secret s;
	*plain_r = NULL;
	*len_r = 0;
	int r = sg_store_secret_get(store, owner, fingerprint, purpose, &s, err);
	if (r <= 0)
		return r;
	r = sg_master_open(mk, owner, fingerprint, purpose, s.blob, s.len, plain_r, len_r, err);
	if (r < 0)
		sg_error_prefix(err, "private key %s/%s (%s)", owner, fingerprint, purpose);
	sg_store_secret_clear(&s);
	return r;
}
