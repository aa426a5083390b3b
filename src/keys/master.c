/* Master-key handling and the sealed-blob format for private keys at rest:
 * "SGMK" 1 kdf salt[16] keyid[8] nonce[12] ciphertext tag[16]. */
#include "keys/master.h"
#include "util/buf.h"
#include "util/mem.h"
#include "util/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { KDF_FILE = 1, KDF_SCRYPT = 2 };

#define MAGIC "SGMK"
#define SALT_LEN 16
#define KEYID_LEN 8
#define NONCE_LEN 12           /* GCM's native IV size (SP 800-38D 8.2) */
#define TAG_LEN 16
#define HDR_LEN (4 + 1 + 1 + SALT_LEN + KEYID_LEN + NONCE_LEN)
#define OFF_KDF 5
#define OFF_SALT 6
#define OFF_KEYID (OFF_SALT + SALT_LEN)
#define OFF_NONCE (OFF_KEYID + KEYID_LEN)

/* scrypt cost: 32 MiB, ~0.1 s; RFC 7914's interactive-use figures. */
#define SCRYPT_N 32768
#define SCRYPT_R 8
#define SCRYPT_P 1

struct sg_master_key {
	int kdf;
	unsigned char key[SG_MASTER_KEY_LEN];   /* KDF_FILE */
	char *passphrase;                       /* KDF_SCRYPT, wiped on free */
	size_t passphrase_len;
};

int sg_master_key_create_file(const char *path, struct sg_error *err)
{
	unsigned char key[SG_MASTER_KEY_LEN];
	int fd = -1, ret = -1;

	if (RAND_priv_bytes(key, sizeof(key)) != 1) {
		sg_error_set(err, "master key: no randomness");
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		sg_error_set(err, "master key %s: %s", path, strerror(errno));
		goto out;
	}
	/* The umask could only narrow 0600, but make sure. */
	if (fchmod(fd, 0600) < 0 || write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) ||
	    fsync(fd) < 0) {
		sg_error_set(err, "master key %s: %s", path, strerror(errno));
		(void)unlink(path);
		goto out;
	}
	ret = 1;
out:
	if (fd >= 0)
		close(fd);
	sg_memwipe(key, sizeof(key));
	return ret;
}

int sg_master_key_load_file(const char *path, struct sg_master_key **mk_r, struct sg_error *err)
{
	struct sg_master_key *mk = NULL;
	struct stat sb;
	int fd = -1, ret = -1;
	unsigned char extra;

	*mk_r = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		sg_error_set(err, "master key %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		sg_error_set(err, "master key %s: not a regular file", path);
		goto out;
	}
	if ((sb.st_mode & 077) != 0) {
		sg_error_set(err, "master key %s: mode %04o is group/world-accessible; "
			     "refusing it (chmod 600)", path, (unsigned)(sb.st_mode & 07777));
		goto out;
	}
	mk = sg_calloc(1, sizeof(*mk));
	mk->kdf = KDF_FILE;
	if (read(fd, mk->key, sizeof(mk->key)) != (ssize_t)sizeof(mk->key) ||
	    read(fd, &extra, 1) != 0) {
		sg_error_set(err, "master key %s: must be exactly %d bytes", path,
			     SG_MASTER_KEY_LEN);
		goto out;
	}
	*mk_r = mk;
	mk = NULL;
	ret = 1;
out:
	if (fd >= 0)
		close(fd);
	sg_master_key_free(&mk);
	return ret;
}

int sg_master_key_from_passphrase(const char *passphrase, struct sg_master_key **mk_r,
				  struct sg_error *err)
{
	*mk_r = NULL;
	if (passphrase == NULL || *passphrase == '\0') {
		sg_error_set(err, "master key: empty passphrase");
		return -1;
	}
	struct sg_master_key *mk = sg_calloc(1, sizeof(*mk));
	mk->kdf = KDF_SCRYPT;
	mk->passphrase_len = strlen(passphrase);
	mk->passphrase = sg_strdup(passphrase);
	*mk_r = mk;
	return 1;
}

void sg_master_key_free(struct sg_master_key **mkp)
{
	struct sg_master_key *mk = *mkp;
	if (mk == NULL)
		return;
	if (mk->passphrase != NULL)
		sg_secret_free(&mk->passphrase, mk->passphrase_len);
	sg_secret_free(mkp, sizeof(*mk));
}

/* The AES key for one blob: the file key itself, or scrypt(passphrase, salt). */
static int blob_key(const struct sg_master_key *mk, const unsigned char *salt,
		    unsigned char key_r[SG_MASTER_KEY_LEN], struct sg_error *err)
{
	if (mk->kdf == KDF_FILE) {
		memcpy(key_r, mk->key, SG_MASTER_KEY_LEN);
		return 1;
	}
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	uint64_t n = SCRYPT_N;
	uint32_t r = SCRYPT_R, p = SCRYPT_P;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, mk->passphrase,
						  mk->passphrase_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, SALT_LEN),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
		OSSL_PARAM_construct_end(),
	};
	int ok = ctx != NULL && EVP_KDF_derive(ctx, key_r, SG_MASTER_KEY_LEN, params) == 1;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	if (!ok)
		sg_error_set(err, "master key: scrypt failed");
	return ok ? 1 : -1;
}

/* A short public tag of the AES key, so that "wrong master key" can be
 * told apart from "tampered blob" without trying to decrypt. */
static int key_id(const unsigned char key[SG_MASTER_KEY_LEN], unsigned char id_r[KEYID_LEN])
{
	static const char label[] = "sealgate master key id v1";
	unsigned char mac[32];
	size_t mac_len = 0;
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, SG_MASTER_KEY_LEN, (const unsigned char *)label,
		      sizeof(label) - 1, mac, sizeof(mac), &mac_len) == NULL)
		return -1;
	memcpy(id_r, mac, KEYID_LEN);
	return 1;
}

/* AAD: the header, then each row field length-prefixed, so that
 * ("a", "bc") and ("ab", "c") differ. */
static int build_aad(struct sg_buf *aad, const unsigned char *hdr, const char *owner,
		     const char *fingerprint, const char *purpose)
{
	const char *fields[] = { owner, fingerprint, purpose };
	if (!sg_buf_append(aad, hdr, HDR_LEN))
		return 0;
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(fields[i]);
		unsigned char len[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16),
					 (unsigned char)(n >> 8), (unsigned char)n };
		if (!sg_buf_append(aad, len, 4) || !sg_buf_append(aad, fields[i], n))
			return 0;
	}
	return 1;
}

static int gcm(int enc, const unsigned char *key, const unsigned char *nonce,
	       const struct sg_buf *aad, const unsigned char *in, size_t in_len,
	       unsigned char *out, unsigned char *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, ok = 0;

	if (ctx == NULL || in_len > INT32_MAX)
		goto out;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &len, aad->data, (int)aad->len) != 1 ||
	    EVP_CipherUpdate(ctx, out, &len, in, (int)in_len) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + len, &len) != 1)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

int sg_master_seal(const struct sg_master_key *mk, const char *owner, const char *fingerprint,
		   const char *purpose, const void *plain, size_t plain_len, unsigned char **blob_r,
		   size_t *blob_len_r, struct sg_error *err)
{
	unsigned char key[SG_MASTER_KEY_LEN];
	unsigned char *blob = NULL;
	size_t blob_len = HDR_LEN + plain_len + TAG_LEN;
	struct sg_buf aad;
	int ret = -1;

	*blob_r = NULL;
	*blob_len_r = 0;
	sg_buf_init(&aad, 64 * 1024);
	blob = sg_calloc(1, blob_len);
	memcpy(blob, MAGIC, 4);
	blob[4] = 1;
	blob[OFF_KDF] = (unsigned char)mk->kdf;
	/* A fresh random nonce per blob: few blobs per key, far from the
	 * 2^32 limit of random 96-bit GCM nonces. */
	if ((mk->kdf == KDF_SCRYPT && RAND_bytes(blob + OFF_SALT, SALT_LEN) != 1) ||
	    RAND_bytes(blob + OFF_NONCE, NONCE_LEN) != 1) {
		sg_error_set(err, "seal: no randomness");
		goto out;
	}
	if (blob_key(mk, blob + OFF_SALT, key, err) < 0)
		goto out;
	if (key_id(key, blob + OFF_KEYID) < 0 ||
	    !build_aad(&aad, blob, owner, fingerprint, purpose) ||
	    !gcm(1, key, blob + OFF_NONCE, &aad, plain, plain_len, blob + HDR_LEN,
		 blob + HDR_LEN + plain_len)) {
		sg_error_set(err, "seal: encryption failed");
		goto out;
	}
	*blob_r = blob;
	*blob_len_r = blob_len;
	blob = NULL;
	ret = 1;
out:
	sg_memwipe(key, sizeof(key));
	sg_buf_free(&aad);
	if (blob != NULL)
		sg_secret_free(&blob, blob_len);
	return ret;
}

int sg_master_open(const struct sg_master_key *mk, const char *owner, const char *fingerprint,
		   const char *purpose, const unsigned char *blob, size_t blob_len,
		   unsigned char **plain_r, size_t *plain_len_r, struct sg_error *err)
{
	unsigned char key[SG_MASTER_KEY_LEN];
	unsigned char id[KEYID_LEN];
	unsigned char tag[TAG_LEN];
	unsigned char *plain = NULL;
	size_t plain_len = 0;
	struct sg_buf aad;
	int ret = -1;

	*plain_r = NULL;
	*plain_len_r = 0;
	sg_buf_init(&aad, 64 * 1024);
	if (blob_len < HDR_LEN + TAG_LEN || memcmp(blob, MAGIC, 4) != 0 || blob[4] != 1 ||
	    (blob[OFF_KDF] != KDF_FILE && blob[OFF_KDF] != KDF_SCRYPT)) {
		sg_error_set(err, "not a sealed private key (bad header)");
		goto out;
	}
	if (blob[OFF_KDF] != mk->kdf) {
		sg_error_set(err, "sealed under a master %s, but a master %s was given",
			     blob[OFF_KDF] == KDF_FILE ? "key file" : "passphrase",
			     mk->kdf == KDF_FILE ? "key file" : "passphrase");
		goto out;
	}
	if (blob_key(mk, blob + OFF_SALT, key, err) < 0 || key_id(key, id) < 0)
		goto out;
	if (!sg_memeq_ct(id, blob + OFF_KEYID, KEYID_LEN)) {
		sg_error_set(err, "wrong master key (this blob was sealed under another one)");
		goto out;
	}
	plain_len = blob_len - HDR_LEN - TAG_LEN;
	plain = sg_malloc(plain_len + 1);
	memcpy(tag, blob + blob_len - TAG_LEN, TAG_LEN);
	if (!build_aad(&aad, blob, owner, fingerprint, purpose) ||
	    !gcm(0, key, blob + OFF_NONCE, &aad, blob + HDR_LEN, plain_len, plain, tag)) {
		sg_error_set(err, "integrity check failed: blob tampered with or moved "
			     "from another row");
		goto out;
	}
	plain[plain_len] = '\0';
	*plain_r = plain;
	*plain_len_r = plain_len;
	plain = NULL;
	ret = 1;
out:
	sg_memwipe(key, sizeof(key));
	sg_buf_free(&aad);
	if (plain != NULL)
		sg_secret_free(&plain, plain_len + 1);
	return ret;
}
