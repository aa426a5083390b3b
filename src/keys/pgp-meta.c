/* OpenPGP key metadata and generation over librnp, each call in its own
 * rnp_ffi_t so that nothing is shared between threads. */
#include "keys/pgp-meta.h"
#include "util/mem.h"
#include "util/secret.h"

#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXPORT (16u * 1024 * 1024)

static int export_part(rnp_key_handle_t key, uint32_t which, unsigned char **data_r,
		       size_t *len_r)
{
	rnp_output_t out = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int ok = 0;

	if (rnp_output_to_memory(&out, MAX_EXPORT) != RNP_SUCCESS)
		return 0;
	if (rnp_key_export(key, out, which | RNP_KEY_EXPORT_SUBKEYS) == RNP_SUCCESS &&
	    rnp_output_memory_get_buf(out, &buf, &len, false) == RNP_SUCCESS && len > 0) {
		*data_r = sg_malloc(len);
		memcpy(*data_r, buf, len);
		*len_r = len;
		ok = 1;
	}
	if (buf != NULL && len > 0)
		rnp_buffer_clear(buf, len);   /* may be secret */
	rnp_output_destroy(out);
	return ok;
}

/* The address of a user ID: the part in <...>, else the whole ID if it
 * looks like an address. */
static char *uid_addr(const char *uid)
{
	const char *lt = strrchr(uid, '<');
	const char *gt = lt != NULL ? strchr(lt, '>') : NULL;
	const char *s = uid;
	size_t n = strlen(uid);
	if (lt != NULL && gt != NULL) {
		s = lt + 1;
		n = (size_t)(gt - s);
	}
	char *a = sg_strndup(s, n);
	if (strchr(a, '@') == NULL || strpbrk(a, " <>") != NULL) {
		free(a);
		return NULL;
	}
	for (char *p = a; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return a;
}

static int fill(rnp_key_handle_t key, struct sg_pgp_meta *m, struct sg_error *err)
{
	char *s = NULL;
	uint32_t created = 0, expiry = 0, bits = 0;
	size_t n_uids = 0;
	bool secret = false;

	if (rnp_key_get_fprint(key, &s) != RNP_SUCCESS) {
		sg_error_set(err, "no fingerprint");
		return -1;
	}
	m->fingerprint = sg_strdup(s);
	rnp_buffer_destroy(s);
	s = NULL;
	char *curve = NULL;
	(void)rnp_key_get_alg(key, &s);
	(void)rnp_key_get_bits(key, &bits);
	if (rnp_key_get_curve(key, &curve) == RNP_SUCCESS && curve != NULL)
		m->algo = sg_asprintf("%s %s", s != NULL ? s : "?", curve);
	else
		m->algo = sg_asprintf("%s %u", s != NULL ? s : "?", bits);
	rnp_buffer_destroy(s);
	rnp_buffer_destroy(curve);
	(void)rnp_key_get_creation(key, &created);
	(void)rnp_key_get_expiration(key, &expiry);
	m->created = created;
	m->expires = expiry != 0 ? (int64_t)created + expiry : 0;
	(void)rnp_key_get_uid_count(key, &n_uids);
	for (size_t i = 0; i < n_uids; i++) {
		char *uid = NULL;
		if (rnp_key_get_uid_at(key, i, &uid) != RNP_SUCCESS)
			continue;
		char *a = uid_addr(uid);
		rnp_buffer_destroy(uid);
		if (a == NULL)
			continue;
		m->addrs = sg_reallocarray(m->addrs, m->n_addrs + 1, sizeof(*m->addrs));
		m->addrs[m->n_addrs++] = a;
	}
	if (!export_part(key, RNP_KEY_EXPORT_PUBLIC, &m->public_data, &m->public_len)) {
		sg_error_set(err, "cannot export the public key");
		return -1;
	}
	if (rnp_key_have_secret(key, &secret) == RNP_SUCCESS && secret &&
	    !export_part(key, RNP_KEY_EXPORT_SECRET, &m->secret_data, &m->secret_len)) {
		sg_error_set(err, "cannot export the secret key");
		return -1;
	}
	return 1;
}

static rnp_ffi_t new_ffi(void)
{
	rnp_ffi_t ffi = NULL;
	if (rnp_ffi_create(&ffi, "GPG", "GPG") != RNP_SUCCESS)
		return NULL;
	return ffi;
}

int sg_pgp_meta_read(const void *data, size_t len, struct sg_pgp_meta *m, struct sg_error *err)
{
	rnp_ffi_t ffi = new_ffi();
	rnp_input_t in = NULL;
	rnp_identifier_iterator_t it = NULL;
	rnp_key_handle_t key = NULL;
	const char *id = NULL;
	int ret = -1;

	memset(m, 0, sizeof(*m));
	if (ffi == NULL || rnp_input_from_memory(&in, data, len, false) != RNP_SUCCESS ||
	    rnp_load_keys(ffi, "GPG", in, RNP_LOAD_SAVE_PUBLIC_KEYS | RNP_LOAD_SAVE_SECRET_KEYS) !=
		    RNP_SUCCESS) {
		sg_error_set(err, "not an OpenPGP key");
		goto out;
	}
	if (rnp_identifier_iterator_create(ffi, &it, "fingerprint") != RNP_SUCCESS)
		goto out;
	while (rnp_identifier_iterator_next(it, &id) == RNP_SUCCESS && id != NULL) {
		bool primary = false;
		if (rnp_locate_key(ffi, "fingerprint", id, &key) == RNP_SUCCESS && key != NULL &&
		    rnp_key_is_primary(key, &primary) == RNP_SUCCESS && primary)
			break;
		rnp_key_handle_destroy(key);
		key = NULL;
	}
	if (key == NULL) {
		sg_error_set(err, "no primary key in the input");
		goto out;
	}
	ret = fill(key, m, err);
out:
	if (ret < 0)
		sg_pgp_meta_clear(m);
	rnp_key_handle_destroy(key);
	rnp_identifier_iterator_destroy(it);
	rnp_input_destroy(in);
	rnp_ffi_destroy(ffi);
	return ret;
}

static const struct {
	const char *type;
	const char *alg, *curve;
	const char *sub_alg, *sub_curve;
	uint32_t bits;
} gen_types[] = {
	{ "ed25519", "EDDSA", NULL, "ECDH", "Curve25519", 0 },
	{ "rsa3072", "RSA", NULL, "RSA", NULL, 3072 },
};

int sg_pgp_meta_generate(const char *addr, const char *type, struct sg_pgp_meta *m,
			 struct sg_error *err)
{
	rnp_ffi_t ffi = NULL;
	rnp_op_generate_t op = NULL, sub = NULL;
	rnp_key_handle_t key = NULL;
	char *uid = NULL;
	int ret = -1;
	size_t t;

	memset(m, 0, sizeof(*m));
	for (t = 0; t < sizeof(gen_types) / sizeof(gen_types[0]); t++)
		if (strcmp(gen_types[t].type, type) == 0)
			break;
	if (t == sizeof(gen_types) / sizeof(gen_types[0])) {
		sg_error_set(err, "unknown key type '%s' (ed25519 or rsa3072)", type);
		return -1;
	}
	uid = sg_asprintf("<%s>", addr);
	if ((ffi = new_ffi()) == NULL ||
	    rnp_op_generate_create(&op, ffi, gen_types[t].alg) != RNP_SUCCESS ||
	    (gen_types[t].bits != 0 && rnp_op_generate_set_bits(op, gen_types[t].bits) != RNP_SUCCESS) ||
	    rnp_op_generate_set_userid(op, uid) != RNP_SUCCESS ||
	    rnp_op_generate_add_usage(op, "sign") != RNP_SUCCESS ||
	    rnp_op_generate_add_usage(op, "certify") != RNP_SUCCESS ||
	    rnp_op_generate_set_expiration(op, 0) != RNP_SUCCESS ||
	    rnp_op_generate_execute(op) != RNP_SUCCESS ||
	    rnp_op_generate_get_key(op, &key) != RNP_SUCCESS) {
		sg_error_set(err, "generating the %s primary key failed", type);
		goto out;
	}
	if (rnp_op_generate_subkey_create(&sub, ffi, key, gen_types[t].sub_alg) != RNP_SUCCESS ||
	    (gen_types[t].sub_curve != NULL &&
	     rnp_op_generate_set_curve(sub, gen_types[t].sub_curve) != RNP_SUCCESS) ||
	    (gen_types[t].bits != 0 && rnp_op_generate_set_bits(sub, gen_types[t].bits) != RNP_SUCCESS) ||
	    rnp_op_generate_add_usage(sub, "encrypt") != RNP_SUCCESS ||
	    rnp_op_generate_set_expiration(sub, 0) != RNP_SUCCESS ||
	    rnp_op_generate_execute(sub) != RNP_SUCCESS) {
		sg_error_set(err, "generating the %s encryption subkey failed", type);
		goto out;
	}
	ret = fill(key, m, err);
out:
	if (ret < 0)
		sg_pgp_meta_clear(m);
	free(uid);
	rnp_key_handle_destroy(key);
	rnp_op_generate_destroy(sub);
	rnp_op_generate_destroy(op);
	rnp_ffi_destroy(ffi);
	return ret;
}

void sg_pgp_meta_clear(struct sg_pgp_meta *m)
{
	free(m->fingerprint);
	free(m->algo);
	for (size_t i = 0; i < m->n_addrs; i++)
		free(m->addrs[i]);
	free(m->addrs);
	free(m->public_data);
	if (m->secret_data != NULL)
		sg_secret_free(&m->secret_data, m->secret_len);
	memset(m, 0, sizeof(*m));
}
