/* OpenPGP session-key re-wrapping on OpenSSL primitives: v4 key parsing
 * (RSA, ECDH Curve25519), secret-key S2K, PKESK v3 decrypt/encrypt. */
#include "crypto/pgp-rewrap.h"
#include "crypto/pgp-packet.h"
#include "util/mem.h"
#include "util/secret.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <string.h>

#define KEY_MAX (1024 * 1024)
#define MSG_HEAD_MAX (1024 * 1024)

/* Curve25519 "legacy" OID 1.3.6.1.4.1.3029.1.5.1 (RFC 9580 s9.2). */
static const unsigned char oid_cv25519[] = { 0x2b, 0x06, 0x01, 0x04, 0x01,
					     0x97, 0x55, 0x01, 0x05, 0x01 };

struct subkey {
	unsigned algo;
	uint32_t created;
	unsigned char fpr[20];
	bool primary;
	bool has_secret;
	bool flags_seen;
	bool can_encrypt;
	EVP_PKEY *pkey;       /* NULL: algorithm not supported here */
	unsigned kdf_hash;    /* ECDH KDF parameters (RFC 6637 s9) */
	unsigned kdf_sym;
};

struct sg_pgp_keyring {
	struct subkey *keys;
	size_t n;
};

/* ---- algorithm tables ---- */

struct sym_info {
	unsigned id;
	size_t key_len;
	const char *cfb;  /* EVP names */
	const char *wrap;
};
static const struct sym_info sym_table[] = {
	{ 7, 16, "AES-128-CFB", "AES-128-WRAP" },
	{ 8, 24, "AES-192-CFB", "AES-192-WRAP" },
	{ 9, 32, "AES-256-CFB", "AES-256-WRAP" },
};

static const struct sym_info *sym_find(unsigned id)
{
	for (size_t i = 0; i < sizeof(sym_table) / sizeof(sym_table[0]); i++)
		if (sym_table[i].id == id)
			return &sym_table[i];
	return NULL;
}

/* Session-key algorithms a PKESK may carry (RFC 4880 s9.2) and key sizes. */
static size_t session_key_len(unsigned id)
{
	switch (id) {
	case 3: return 16;  /* CAST5 */
	case 4: return 16;  /* Blowfish */
	case 2: return 24;  /* TripleDES */
	case 11: return 16; /* Camellia-128 */
	case 12: return 24;
	case 13: return 32;
	case 10: return 32; /* Twofish */
	default: {
		const struct sym_info *s = sym_find(id);
		return s ? s->key_len : 0;
	}
	}
}

static const char *hash_name(unsigned id)
{
	switch (id) {
	case 2: return "SHA1";
	case 8: return "SHA256";
	case 9: return "SHA384";
	case 10: return "SHA512";
	case 11: return "SHA224";
	default: return NULL;
	}
}

/* ---- keyring ---- */

void sg_pgp_keyring_free(struct sg_pgp_keyring **krp)
{
	struct sg_pgp_keyring *kr = *krp;
	if (kr == NULL)
		return;
	for (size_t i = 0; i < kr->n; i++)
		EVP_PKEY_free(kr->keys[i].pkey);
	free(kr->keys);
	free(kr);
	*krp = NULL;
}

void sg_pgp_keyring_merge(struct sg_pgp_keyring **into, struct sg_pgp_keyring **from)
{
	struct sg_pgp_keyring *a = *into, *b = *from;
	if (b == NULL)
		return;
	if (a == NULL) {
		*into = b;
		*from = NULL;
		return;
	}
	a->keys = sg_reallocarray(a->keys, a->n + b->n, sizeof(*a->keys));
	memcpy(a->keys + a->n, b->keys, b->n * sizeof(*b->keys));
	a->n += b->n;
	b->n = 0; /* the EVP_PKEYs now belong to a */
	sg_pgp_keyring_free(from);
}

size_t sg_pgp_keyring_count(const struct sg_pgp_keyring *kr)
{
	return kr->n;
}

const unsigned char *sg_pgp_keyring_fpr(const struct sg_pgp_keyring *kr, size_t i)
{
	return kr->keys[i].fpr;
}

static bool algo_encrypts(unsigned a)
{
	return a == SG_PGP_PK_RSA || a == SG_PGP_PK_RSA_E || a == SG_PGP_PK_ECDH;
}

long sg_pgp_keyring_encryption_key(const struct sg_pgp_keyring *kr)
{
	long best = -1;
	for (size_t i = 0; i < kr->n; i++) {
		const struct subkey *k = &kr->keys[i];
		bool enc = k->flags_seen ? k->can_encrypt : algo_encrypts(k->algo);
		if (!enc || k->pkey == NULL || !algo_encrypts(k->algo))
			continue;
		if (best < 0 || k->created >= kr->keys[best].created)
			best = (long)i;
	}
	return best;
}

/* v4 fingerprint (RFC 4880 s12.2): SHA-1 of 0x99, 2-octet length, body. */
static int fingerprint(const unsigned char *pub, size_t len, unsigned char fpr[20],
		       struct sg_error *err)
{
	unsigned char h[3] = { 0x99, (unsigned char)(len >> 8), (unsigned char)len };
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	int ok = md != NULL && len <= 0xffff && EVP_DigestInit_ex(md, EVP_sha1(), NULL) &&
		 EVP_DigestUpdate(md, h, 3) && EVP_DigestUpdate(md, pub, len) &&
		 EVP_DigestFinal_ex(md, fpr, &n) && n == 20;
	EVP_MD_CTX_free(md);
	if (!ok) {
		sg_error_set(err, "fingerprint: SHA-1 failed");
		return -1;
	}
	return 1;
}

/* Build an RSA EVP_PKEY from big-endian n, e and (secret: v[2..4]) d, p, q. */
static EVP_PKEY *rsa_pkey(const unsigned char *const *v, const size_t *l, bool secret)
{
	BIGNUM *bn[8] = { NULL };
	BN_CTX *ctx = BN_CTX_new();
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pk = NULL;
	int nv = secret ? 5 : 2;
	if (ctx == NULL || bld == NULL)
		goto out;
	for (int i = 0; i < nv; i++)
		if ((bn[i] = BN_bin2bn(v[i], (int)l[i], NULL)) == NULL)
			goto out;
	if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn[0]) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn[1]))
		goto out;
	if (secret) {
		/* OpenSSL wants the CRT values; OpenPGP's u is p^-1 mod q, while
		 * OpenSSL's coefficient is q^-1 mod p, so compute them. */
		BIGNUM *p1 = BN_new(), *q1 = BN_new();
		bn[5] = BN_new();
		bn[6] = BN_new();
		bn[7] = BN_new();
		int ok = p1 && q1 && bn[5] && bn[6] && bn[7] && BN_sub(p1, bn[3], BN_value_one()) &&
			 BN_sub(q1, bn[4], BN_value_one()) && BN_mod(bn[5], bn[2], p1, ctx) &&
			 BN_mod(bn[6], bn[2], q1, ctx) &&
			 BN_mod_inverse(bn[7], bn[4], bn[3], ctx) != NULL;
		BN_free(p1);
		BN_free(q1);
		if (!ok || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, bn[2]) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, bn[3]) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, bn[4]) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, bn[5]) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, bn[6]) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, bn[7]))
			goto out;
	}
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pctx) <= 0 ||
	    EVP_PKEY_fromdata(pctx, &pk, secret ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pk = NULL;
out:
	for (int i = 0; i < 8; i++)
		BN_clear_free(bn[i]);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(pctx);
	BN_CTX_free(ctx);
	return pk;
}

/* Public part of a v4 key packet (RFC 4880 s5.5.2). Fills k (pkey public,
 * for supported algorithms) and remembers the raw public values in pub. */
struct pubvals {
	const unsigned char *v[2];
	size_t l[2];
};

static int parse_public(struct sg_pgp_reader *r, struct subkey *k, struct pubvals *pv,
			struct sg_error *err)
{
	unsigned ver, n;
	const unsigned char *p;
	if (sg_pgp_read_u8(r, &ver, "key version", err) < 0)
		return -1;
	if (ver != 4) {
		sg_error_set(err, "key version %u not supported (v4 only)", ver);
		return -1;
	}
	if (sg_pgp_read_u32(r, &k->created, "key creation time", err) < 0 ||
	    sg_pgp_read_u8(r, &k->algo, "key algorithm", err) < 0)
		return -1;
	switch (k->algo) {
	case SG_PGP_PK_RSA:
	case SG_PGP_PK_RSA_E:
	case 3: /* RSA sign-only */
		if (sg_pgp_read_mpi(r, &pv->v[0], &pv->l[0], "RSA n", err) < 0 ||
		    sg_pgp_read_mpi(r, &pv->v[1], &pv->l[1], "RSA e", err) < 0)
			return -1;
		if (k->algo != 3 && (k->pkey = rsa_pkey(pv->v, pv->l, false)) == NULL) {
			sg_error_set(err, "bad RSA public key");
			return -1;
		}
		return 1;
	case SG_PGP_PK_ECDH: {
		const unsigned char *oid;
		unsigned kl, one;
		if (sg_pgp_read_u8(r, &n, "curve OID length", err) < 0 ||
		    sg_pgp_read_bytes(r, n, &oid, "curve OID", err) < 0 ||
		    sg_pgp_read_mpi(r, &pv->v[0], &pv->l[0], "ECDH point", err) < 0 ||
		    sg_pgp_read_u8(r, &kl, "KDF parameters length", err) < 0 ||
		    sg_pgp_read_bytes(r, kl, &p, "KDF parameters", err) < 0)
			return -1;
		if (kl < 3) {
			sg_error_set(err, "ECDH KDF parameters too short");
			return -1;
		}
		one = p[0];
		k->kdf_hash = p[1];
		k->kdf_sym = p[2];
		if (one != 1 || hash_name(k->kdf_hash) == NULL || sym_find(k->kdf_sym) == NULL) {
			sg_error_set(err, "ECDH KDF parameters not supported");
			return -1;
		}
		if (n != sizeof(oid_cv25519) || memcmp(oid, oid_cv25519, n) != 0)
			return 1; /* NIST/Brainpool curves: listed, unusable here */
		if (pv->l[0] != 33 || pv->v[0][0] != 0x40) {
			sg_error_set(err, "bad Curve25519 point");
			return -1;
		}
		k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pv->v[0] + 1, 32);
		if (k->pkey == NULL) {
			sg_error_set(err, "bad Curve25519 point");
			return -1;
		}
		return 1;
	}
	case 16: /* Elgamal: p, g, y */
		for (int i = 0; i < 3; i++)
			if (sg_pgp_read_mpi(r, &p, &pv->l[0], "Elgamal value", err) < 0)
				return -1;
		return 1;
	case 17: /* DSA: p, q, g, y */
		for (int i = 0; i < 4; i++)
			if (sg_pgp_read_mpi(r, &p, &pv->l[0], "DSA value", err) < 0)
				return -1;
		return 1;
	case 19: /* ECDSA, EdDSA (legacy): OID, point */
	case 22:
		if (sg_pgp_read_u8(r, &n, "curve OID length", err) < 0 ||
		    sg_pgp_read_bytes(r, n, &p, "curve OID", err) < 0 ||
		    sg_pgp_read_mpi(r, &p, &pv->l[0], "EC point", err) < 0)
			return -1;
		return 1;
	default:
		return 0; /* unknown algorithm: the packet's extent is all we know */
	}
}

/* S2K (RFC 4880 s3.7.1): derive key_len octets from the passphrase. */
static int s2k_derive(unsigned type, const char *hname, const unsigned char *salt,
		      uint32_t count, const char *pass, unsigned char *key, size_t key_len,
		      struct sg_error *err)
{
	EVP_MD *md = EVP_MD_fetch(NULL, hname, NULL);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char dig[EVP_MAX_MD_SIZE];
	size_t pl = strlen(pass), done = 0;
	int ret = -1;
	if (md == NULL || ctx == NULL)
		goto fail;
	size_t hl = (size_t)EVP_MD_get_size(md);
	size_t sl = type == 0 ? 0 : 8;
	/* s3.7.1.3: the whole salt||passphrase is hashed at least once */
	size_t total = type == 3 ? count : sl + pl;
	if (total < sl + pl)
		total = sl + pl;
	for (size_t round = 0; done < key_len; round++) {
		/* s3.7.1.1: each further context is preloaded with one more zero */
		static const unsigned char zero = 0;
		if (!EVP_DigestInit_ex(ctx, md, NULL))
			goto fail;
		for (size_t z = 0; z < round; z++)
			if (!EVP_DigestUpdate(ctx, &zero, 1))
				goto fail;
		for (size_t left = total; left > 0;) {
			size_t n = left < sl ? left : sl;
			if (n > 0 && !EVP_DigestUpdate(ctx, salt, n))
				goto fail;
			left -= n;
			n = left < pl ? left : pl;
			if (n > 0 && !EVP_DigestUpdate(ctx, pass, n))
				goto fail;
			left -= n;
		}
		unsigned int got;
		if (!EVP_DigestFinal_ex(ctx, dig, &got))
			goto fail;
		size_t take = key_len - done < hl ? key_len - done : hl;
		memcpy(key + done, dig, take);
		done += take;
	}
	ret = 1;
	goto out;
fail:
	sg_error_set(err, "S2K: %s digest failed", hname);
out:
	sg_memwipe(dig, sizeof(dig));
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(md);
	return ret;
}

/* Decrypt the protected secret MPIs (s5.5.3): AES-CFB with the S2K key,
 * then check SHA-1 (usage 254) or the 2-octet sum (255). Plaintext into
 * plain (secret; caller wipes). 1; 0 no secret (gnu-dummy stub); -1. */
static int unprotect(struct sg_pgp_reader *r, unsigned usage, const char *pass,
		     struct sg_buf *plain, struct sg_error *err)
{
	unsigned sym, s2k, halg, c = 0;
	const unsigned char *salt = NULL, *iv, *p;
	unsigned char key[32];
	EVP_CIPHER *cipher = NULL;
	EVP_CIPHER_CTX *cctx = NULL;
	int ret = -1;
	if (sg_pgp_read_u8(r, &sym, "S2K cipher", err) < 0 ||
	    sg_pgp_read_u8(r, &s2k, "S2K type", err) < 0)
		return -1;
	if (s2k == 101) /* GnuPG extension: secret not present (stub) */
		return 0;
	if (sg_pgp_read_u8(r, &halg, "S2K hash", err) < 0)
		return -1;
	if (s2k == 1 || s2k == 3)
		if (sg_pgp_read_bytes(r, 8, &salt, "S2K salt", err) < 0)
			return -1;
	if (s2k == 3 && sg_pgp_read_u8(r, &c, "S2K count", err) < 0)
		return -1;
	const struct sym_info *si = sym_find(sym);
	if ((s2k != 0 && s2k != 1 && s2k != 3) || si == NULL || hash_name(halg) == NULL) {
		sg_error_set(err, "secret key protection not supported (S2K %u, cipher %u, hash %u)",
			     s2k, sym, halg);
		return -1;
	}
	if (pass == NULL) {
		sg_error_set(err, "secret key is protected and no passphrase was given");
		return -1;
	}
	if (sg_pgp_read_bytes(r, 16, &iv, "secret key IV", err) < 0)
		return -1;
	uint32_t count = ((uint32_t)16 + (c & 15)) << ((c >> 4) + 6);
	if (s2k_derive(s2k, hash_name(halg), salt, count, pass, key, si->key_len, err) < 0)
		goto out;
	size_t n = r->len - r->pos;
	if (sg_pgp_read_bytes(r, n, &p, "secret key data", err) < 0)
		goto out;
	int outl = 0, fin = 0;
	unsigned char *dst;
	if ((cipher = EVP_CIPHER_fetch(NULL, si->cfb, NULL)) == NULL ||
	    (cctx = EVP_CIPHER_CTX_new()) == NULL ||
	    !EVP_DecryptInit_ex(cctx, cipher, NULL, key, iv))
		goto crypt;
	if (!sg_buf_append(plain, "", 0) || plain->max - plain->len < n + 16) {
		sg_error_set(err, "secret key too large");
		goto out;
	}
	if (!sg_buf_append(plain, p, n)) /* reserve, then decrypt in place */
		goto crypt;
	dst = plain->data + plain->len - n;
	if (!EVP_DecryptUpdate(cctx, dst, &outl, p, (int)n) ||
	    !EVP_DecryptFinal_ex(cctx, dst + outl, &fin) || (size_t)(outl + fin) != n)
		goto crypt;
	/* Integrity: SHA-1 of the MPIs (254) or their octet sum (255). */
	if (usage == 254) {
		unsigned char dig[20];
		unsigned int dl = 0;
		if (n < 20 || !EVP_Digest(dst, n - 20, dig, &dl, EVP_sha1(), NULL) ||
		    !sg_memeq_ct(dig, dst + n - 20, 20)) {
			sg_error_set(err, "wrong passphrase (secret key checksum mismatch)");
			goto out;
		}
		plain->len -= 20;
	} else {
		unsigned sum = 0;
		for (size_t i = 0; n >= 2 && i < n - 2; i++)
			sum += dst[i];
		if (n < 2 || (sum & 0xffff) != ((unsigned)dst[n - 2] << 8 | dst[n - 1])) {
			sg_error_set(err, "wrong passphrase (secret key checksum mismatch)");
			goto out;
		}
		plain->len -= 2;
	}
	ret = 1;
	goto out;
crypt:
	sg_error_set(err, "secret key decryption failed");
out:
	sg_memwipe(key, sizeof(key));
	EVP_CIPHER_CTX_free(cctx);
	EVP_CIPHER_free(cipher);
	return ret;
}

/* The secret MPIs of a supported key (s5.5.3): RSA d, p, q, u; ECDH the
 * scalar, stored big-endian for Curve25519 legacy (native order reversed,
 * RFC 9580 s5.5.5.6). Replaces k->pkey by the private key. */
static int secret_values(const unsigned char *s, size_t len, struct subkey *k,
			 const struct pubvals *pv, struct sg_error *err)
{
	struct sg_pgp_reader r;
	sg_pgp_reader_init(&r, s, len);
	EVP_PKEY *pk = NULL;
	if (k->algo == SG_PGP_PK_RSA || k->algo == SG_PGP_PK_RSA_E) {
		const unsigned char *v[5] = { pv->v[0], pv->v[1] };
		size_t l[5] = { pv->l[0], pv->l[1] };
		if (sg_pgp_read_mpi(&r, &v[2], &l[2], "RSA d", err) < 0 ||
		    sg_pgp_read_mpi(&r, &v[3], &l[3], "RSA p", err) < 0 ||
		    sg_pgp_read_mpi(&r, &v[4], &l[4], "RSA q", err) < 0)
			return -1;
		pk = rsa_pkey(v, l, true);
	} else {
		const unsigned char *v;
		size_t l;
		unsigned char native[32], pub[32];
		size_t publen = sizeof(pub);
		if (sg_pgp_read_mpi(&r, &v, &l, "ECDH secret", err) < 0)
			return -1;
		if (l > 32) {
			sg_error_set(err, "bad Curve25519 secret");
			return -1;
		}
		memset(native, 0, sizeof(native));
		for (size_t i = 0; i < l; i++)
			native[i] = v[l - 1 - i];
		pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, native, 32);
		sg_memwipe(native, sizeof(native));
		/* The secret must give the public point: catches byte order errors. */
		if (pk != NULL && (!EVP_PKEY_get_raw_public_key(pk, pub, &publen) ||
				   memcmp(pub, pv->v[0] + 1, 32) != 0)) {
			EVP_PKEY_free(pk);
			sg_error_set(err, "Curve25519 secret does not match its public point");
			return -1;
		}
	}
	if (pk == NULL) {
		sg_error_set(err, "bad secret key values");
		return -1;
	}
	EVP_PKEY_free(k->pkey);
	k->pkey = pk;
	k->has_secret = true;
	return 1;
}

static int parse_secret(struct sg_pgp_reader *r, struct subkey *k, const struct pubvals *pv,
			const char *pass, struct sg_error *err)
{
	unsigned usage;
	struct sg_buf plain;
	int ret = -1;
	sg_buf_init(&plain, KEY_MAX);
	if (sg_pgp_read_u8(r, &usage, "S2K usage", err) < 0)
		return -1;
	if (usage == 0) {
		/* unprotected: MPIs then a 2-octet sum (s5.5.3) */
		if (!sg_buf_append(&plain, r->p + r->pos, r->len - r->pos))
			goto out;
		if (plain.len < 2) {
			sg_error_set(err, "truncated secret key");
			goto out;
		}
		unsigned sum = 0;
		for (size_t i = 0; i < plain.len - 2; i++)
			sum += plain.data[i];
		if ((sum & 0xffff) != ((unsigned)plain.data[plain.len - 2] << 8 | plain.data[plain.len - 1])) {
			sg_error_set(err, "secret key checksum mismatch");
			goto out;
		}
		plain.len -= 2;
	} else if (usage == 254 || usage == 255) {
		int u = unprotect(r, usage, pass, &plain, err);
		if (u <= 0) {
			ret = u;
			goto out;
		}
	} else {
		sg_error_set(err, "secret key protection (usage %u) not supported", usage);
		goto out;
	}
	ret = secret_values(plain.data, plain.len, k, pv, err);
out:
	sg_buf_free_secret(&plain);
	return ret;
}

/* Key flags (RFC 4880 s5.2.3.21) from a v4 self-signature's hashed area. */
static void apply_key_flags(const struct sg_pgp_packet *pkt, struct subkey *k)
{
	const unsigned char *b = pkt->body;
	if (b == NULL || pkt->body_len < 6 || b[0] != 4)
		return;
	unsigned type = b[1];
	bool fits = k->primary ? ((type >= 0x10 && type <= 0x13) || type == 0x1f) : type == 0x18;
	if (!fits)
		return;
	size_t hl = (size_t)b[4] << 8 | b[5];
	if (hl > pkt->body_len - 6)
		return;
	const unsigned char *p = b + 6, *end = b + 6 + hl;
	while (p < end) {
		size_t l = *p++;
		if (l >= 192 && l < 255) {
			if (p >= end)
				return;
			l = ((l - 192) << 8) + *p++ + 192;
		} else if (l == 255) {
			if (end - p < 4)
				return;
			l = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
			p += 4;
		}
		if (l == 0 || l > (size_t)(end - p))
			return;
		if ((p[0] & 0x7f) == 27 && l >= 2) {
			k->flags_seen = true;
			k->can_encrypt = (p[1] & 0x0c) != 0;
		}
		p += l;
	}
}

static int load_key_packet(const struct sg_pgp_packet *pkt, const char *pass, struct subkey *k,
			   struct sg_error *err)
{
	struct sg_pgp_reader r;
	struct pubvals pv;
	memset(&pv, 0, sizeof(pv));
	memset(k, 0, sizeof(*k));
	k->primary = pkt->tag == SG_PGP_TAG_SECRET_KEY || pkt->tag == SG_PGP_TAG_PUBLIC_KEY;
	sg_pgp_reader_init(&r, pkt->body, pkt->body_len);
	int pr = parse_public(&r, k, &pv, err);
	if (pr < 0)
		return -1;
	size_t publen = pr == 0 ? pkt->body_len : r.pos;
	if (pkt->tag == SG_PGP_TAG_PUBLIC_KEY || pkt->tag == SG_PGP_TAG_PUBLIC_SUBKEY)
		publen = pkt->body_len;
	if (pr > 0 && fingerprint(pkt->body, publen, k->fpr, err) < 0)
		return -1;
	bool secret = pkt->tag == SG_PGP_TAG_SECRET_KEY || pkt->tag == SG_PGP_TAG_SECRET_SUBKEY;
	if (!secret || k->pkey == NULL)
		return 1;
	return parse_secret(&r, k, &pv, pass, err);
}

int sg_pgp_keyring_load(const unsigned char *data, size_t len, const char *passphrase,
			struct sg_pgp_keyring **kr_r, struct sg_error *err)
{
	struct sg_buf bin;
	struct sg_pgp_keyring *kr = sg_calloc(1, sizeof(*kr));
	struct sg_pgp_packet pkt;
	size_t pos = 0;
	int r, ret = -1;
	sg_buf_init(&bin, 16 * KEY_MAX);
	if (sg_pgp_binary_of(data, len, &bin, err) < 0)
		goto out;
	while ((r = sg_pgp_packet_next(bin.data, bin.len, &pos, &pkt, err)) > 0) {
		switch (pkt.tag) {
		case SG_PGP_TAG_SECRET_KEY:
		case SG_PGP_TAG_PUBLIC_KEY:
		case SG_PGP_TAG_SECRET_SUBKEY:
		case SG_PGP_TAG_PUBLIC_SUBKEY:
			if (pkt.partial) {
				sg_error_set(err, "key packet with partial length");
				goto out;
			}
			kr->keys = sg_reallocarray(kr->keys, kr->n + 1, sizeof(*kr->keys));
			if (load_key_packet(&pkt, passphrase, &kr->keys[kr->n], err) < 0) {
				EVP_PKEY_free(kr->keys[kr->n].pkey);
				sg_error_prefix(err, "key packet at offset %zu", pkt.off);
				goto out;
			}
			kr->n++;
			break;
		case SG_PGP_TAG_SIGNATURE:
			if (kr->n > 0)
				apply_key_flags(&pkt, &kr->keys[kr->n - 1]);
			break;
		default:
			break;
		}
	}
	if (r < 0)
		goto out;
	if (kr->n == 0) {
		sg_error_set(err, "no key packets");
		goto out;
	}
	*kr_r = kr;
	kr = NULL;
	ret = 1;
out:
	sg_pgp_keyring_free(&kr);
	sg_buf_free_secret(&bin);
	return ret;
}

/* ---- session key block (RFC 4880 s5.1) ---- */

static unsigned checksum(const unsigned char *p, size_t n)
{
	unsigned s = 0;
	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s & 0xffff;
}

/* algo || key || checksum; 1 ok; -1 not a valid block. */
static int sk_from_block(const unsigned char *m, size_t n, struct sg_pgp_session_key *sk,
			 struct sg_error *err)
{
	if (n < 3 || session_key_len(m[0]) != n - 3 ||
	    checksum(m + 1, n - 3) != ((unsigned)m[n - 2] << 8 | m[n - 1])) {
		sg_error_set(err, "decrypted session key is malformed (wrong key or corrupt PKESK)");
		return -1;
	}
	sk->sym_algo = m[0];
	sk->key_len = n - 3;
	memcpy(sk->key, m + 1, n - 3);
	return 1;
}

static size_t sk_to_block(const struct sg_pgp_session_key *sk, unsigned char *m)
{
	unsigned c = checksum(sk->key, sk->key_len);
	m[0] = (unsigned char)sk->sym_algo;
	memcpy(m + 1, sk->key, sk->key_len);
	m[1 + sk->key_len] = (unsigned char)(c >> 8);
	m[2 + sk->key_len] = (unsigned char)c;
	return sk->key_len + 3;
}

/* ---- RSA (RFC 4880 s5.1: m^e mod n of the PKCS#1 v1.5 encoded block) ---- */

static int rsa_crypt(EVP_PKEY *pk, bool enc, const unsigned char *in, size_t inl,
		     unsigned char *out, size_t *outl)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	int ok = ctx != NULL && (enc ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) > 0 &&
		 EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
		 (enc ? EVP_PKEY_encrypt(ctx, out, outl, in, inl)
		      : EVP_PKEY_decrypt(ctx, out, outl, in, inl)) > 0;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static int rsa_decrypt(struct sg_pgp_reader *r, const struct subkey *k,
		       struct sg_pgp_session_key *sk, struct sg_error *err)
{
	const unsigned char *c;
	size_t cl, ml;
	int ret = -1;
	if (sg_pgp_read_mpi(r, &c, &cl, "RSA ciphertext", err) < 0)
		return -1;
	size_t nb = (size_t)EVP_PKEY_get_size(k->pkey);
	if (cl > nb) {
		sg_error_set(err, "RSA ciphertext longer than the modulus");
		return -1;
	}
	unsigned char *in = sg_calloc(1, nb), *m = sg_malloc(nb);
	memcpy(in + nb - cl, c, cl); /* MPIs drop leading zeros */
	ml = nb;
	if (!rsa_crypt(k->pkey, false, in, nb, m, &ml)) {
		sg_error_set(err, "RSA decryption failed (wrong key or corrupt PKESK)");
		goto out;
	}
	ret = sk_from_block(m, ml, sk, err);
out:
	sg_secret_free(&m, nb);
	free(in);
	return ret;
}

static int rsa_encrypt(const struct subkey *k, const unsigned char *m, size_t ml,
		       struct sg_buf *body, struct sg_error *err)
{
	size_t nb = (size_t)EVP_PKEY_get_size(k->pkey), cl = nb;
	unsigned char *c = sg_malloc(nb);
	int ret = -1;
	if (!rsa_crypt(k->pkey, true, m, ml, c, &cl))
		sg_error_set(err, "RSA encryption failed");
	else
		ret = sg_pgp_write_mpi(body, c, cl, err);
	free(c);
	return ret;
}

/* ---- ECDH Curve25519 (RFC 6637 s7-8, legacy point format 0x40||X) ---- */

/* KEK = leftmost bytes of Hash(00 00 00 01 || Z || Param), s7. */
static int ecdh_kek(const struct subkey *k, const unsigned char *z, size_t zl,
		    unsigned char *kek, size_t kek_len, struct sg_error *err)
{
	unsigned char param[64];
	size_t n = 0;
	static const unsigned char ctr[4] = { 0, 0, 0, 1 };
	static const char anon[] = "Anonymous Sender    "; /* 20 octets */
	param[n++] = sizeof(oid_cv25519);
	memcpy(param + n, oid_cv25519, sizeof(oid_cv25519));
	n += sizeof(oid_cv25519);
	param[n++] = SG_PGP_PK_ECDH;
	param[n++] = 3;
	param[n++] = 1;
	param[n++] = (unsigned char)k->kdf_hash;
	param[n++] = (unsigned char)k->kdf_sym;
	memcpy(param + n, anon, 20);
	n += 20;
	memcpy(param + n, k->fpr, 20);
	n += 20;
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	EVP_MD *md = EVP_MD_fetch(NULL, hash_name(k->kdf_hash), NULL);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = md && ctx && EVP_DigestInit_ex(ctx, md, NULL) && EVP_DigestUpdate(ctx, ctr, 4) &&
		 EVP_DigestUpdate(ctx, z, zl) && EVP_DigestUpdate(ctx, param, n) &&
		 EVP_DigestFinal_ex(ctx, dig, &dl) && dl >= kek_len;
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(md);
	if (ok)
		memcpy(kek, dig, kek_len);
	sg_memwipe(dig, sizeof(dig));
	if (!ok)
		sg_error_set(err, "ECDH KDF failed");
	return ok ? 1 : -1;
}

static int x25519(EVP_PKEY *priv, EVP_PKEY *peer, unsigned char z[32])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	size_t zl = 32;
	int ok = ctx && EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_derive_set_peer(ctx, peer) > 0 &&
		 EVP_PKEY_derive(ctx, z, &zl) > 0 && zl == 32;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* AES key wrap (RFC 3394) with kek; 1 ok, 0 failed (unwrap: integrity). */
static int aes_kw(const struct sym_info *si, bool wrap, const unsigned char *kek,
		  const unsigned char *in, size_t inl, unsigned char *out, size_t *outl)
{
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, si->wrap, NULL);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int l1 = 0, l2 = 0;
	int ok = c && ctx && EVP_CipherInit_ex(ctx, c, NULL, kek, NULL, wrap) &&
		 EVP_CipherUpdate(ctx, out, &l1, in, (int)inl) &&
		 EVP_CipherFinal_ex(ctx, out + l1, &l2);
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	*outl = (size_t)(l1 + l2);
	return ok && l1 > 0;
}

static int ecdh_decrypt(struct sg_pgp_reader *r, const struct subkey *k,
			struct sg_pgp_session_key *sk, struct sg_error *err)
{
	const unsigned char *pt, *w;
	size_t pl, ml = 0;
	unsigned wl;
	unsigned char z[32], kek[32], m[64];
	EVP_PKEY *eph = NULL;
	int ret = -1;
	const struct sym_info *si = sym_find(k->kdf_sym);
	if (sg_pgp_read_mpi(r, &pt, &pl, "ECDH ephemeral point", err) < 0 ||
	    sg_pgp_read_u8(r, &wl, "ECDH wrapped key length", err) < 0 ||
	    sg_pgp_read_bytes(r, wl, &w, "ECDH wrapped key", err) < 0)
		return -1;
	if (pl != 33 || pt[0] != 0x40 || wl < 16 || wl > 56 || wl % 8 != 0) {
		sg_error_set(err, "malformed ECDH PKESK");
		return -1;
	}
	if ((eph = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pt + 1, 32)) == NULL ||
	    !x25519(k->pkey, eph, z)) {
		sg_error_set(err, "X25519 failed");
		goto out;
	}
	if (ecdh_kek(k, z, 32, kek, si->key_len, err) < 0)
		goto out;
	if (!aes_kw(si, false, kek, w, wl, m, &ml)) {
		sg_error_set(err, "AES key unwrap failed (wrong key or corrupt PKESK)");
		goto out;
	}
	/* PKCS#5 padding to a multiple of 8 (RFC 6637 s8) */
	unsigned pad = ml > 0 ? m[ml - 1] : 0;
	bool padok = pad >= 1 && pad <= 8 && pad < ml;
	for (unsigned i = 0; padok && i < pad; i++)
		padok = m[ml - 1 - i] == pad;
	if (!padok) {
		sg_error_set(err, "bad session key padding");
		goto out;
	}
	ret = sk_from_block(m, ml - pad, sk, err);
out:
	sg_memwipe(z, sizeof(z));
	sg_memwipe(kek, sizeof(kek));
	sg_memwipe(m, sizeof(m));
	EVP_PKEY_free(eph);
	return ret;
}

static int ecdh_encrypt(const struct subkey *k, const unsigned char *blk, size_t bl,
			struct sg_buf *body, struct sg_error *err)
{
	unsigned char z[32], kek[32], m[48], w[64], pub[33];
	size_t wl = 0, publen = 32;
	EVP_PKEY *eph = NULL;
	EVP_PKEY_CTX *gen = NULL;
	int ret = -1;
	const struct sym_info *si = sym_find(k->kdf_sym);
	size_t pad = 8 - bl % 8;
	memcpy(m, blk, bl);
	memset(m + bl, (int)pad, pad);
	if ((gen = EVP_PKEY_CTX_new_from_name(NULL, "X25519", NULL)) == NULL ||
	    EVP_PKEY_keygen_init(gen) <= 0 || EVP_PKEY_keygen(gen, &eph) <= 0 ||
	    !EVP_PKEY_get_raw_public_key(eph, pub + 1, &publen) || !x25519(eph, k->pkey, z)) {
		sg_error_set(err, "X25519 failed");
		goto out;
	}
	pub[0] = 0x40;
	if (ecdh_kek(k, z, 32, kek, si->key_len, err) < 0)
		goto out;
	if (!aes_kw(si, true, kek, m, bl + pad, w, &wl)) {
		sg_error_set(err, "AES key wrap failed");
		goto out;
	}
	unsigned char wlb = (unsigned char)wl;
	if (sg_pgp_write_mpi(body, pub, 33, err) < 0)
		goto out;
	if (!sg_buf_append(body, &wlb, 1) || !sg_buf_append(body, w, wl)) {
		sg_error_set(err, "output buffer full");
		goto out;
	}
	ret = 1;
out:
	sg_memwipe(z, sizeof(z));
	sg_memwipe(kek, sizeof(kek));
	sg_memwipe(m, sizeof(m));
	EVP_PKEY_free(eph);
	EVP_PKEY_CTX_free(gen);
	return ret;
}

/* ---- PKESK v3 (RFC 4880 s5.1) ---- */

int sg_pgp_pkesk_decrypt(const unsigned char *body, size_t len, const struct sg_pgp_keyring *kr,
			 size_t i, struct sg_pgp_session_key *sk_r, struct sg_error *err)
{
	struct sg_pgp_reader r;
	unsigned ver, algo;
	const unsigned char *kid;
	const struct subkey *k = &kr->keys[i];
	sg_pgp_reader_init(&r, body, len);
	if (sg_pgp_read_u8(&r, &ver, "PKESK version", err) < 0)
		return -1;
	if (ver != 3) {
		sg_error_set(err, "PKESK version %u not supported (v3 only)", ver);
		return -1;
	}
	if (sg_pgp_read_bytes(&r, 8, &kid, "PKESK key id", err) < 0 ||
	    sg_pgp_read_u8(&r, &algo, "PKESK algorithm", err) < 0)
		return -1;
	bool rsa = algo == SG_PGP_PK_RSA || algo == SG_PGP_PK_RSA_E;
	bool krsa = k->algo == SG_PGP_PK_RSA || k->algo == SG_PGP_PK_RSA_E;
	if (!k->has_secret || k->pkey == NULL || (rsa ? !krsa : algo != k->algo))
		return 0;
	if (rsa)
		return rsa_decrypt(&r, k, sk_r, err);
	if (algo == SG_PGP_PK_ECDH)
		return ecdh_decrypt(&r, k, sk_r, err);
	return 0;
}

int sg_pgp_pkesk_encrypt(const struct sg_pgp_session_key *sk, const struct sg_pgp_keyring *kr,
			 size_t i, bool wildcard, struct sg_buf *out, struct sg_error *err)
{
	const struct subkey *k = &kr->keys[i];
	struct sg_buf body;
	unsigned char blk[40];
	int ret = -1;
	sg_buf_init(&body, 4096);
	if (k->pkey == NULL || !algo_encrypts(k->algo) || sk->key_len > 32) {
		sg_error_set(err, "cannot encrypt to key algorithm %u", k->algo);
		goto out;
	}
	unsigned char head[10];
	head[0] = 3;
	if (wildcard)
		memset(head + 1, 0, 8);
	else
		memcpy(head + 1, k->fpr + 12, 8); /* key id: low 64 bits (s12.2) */
	head[9] = (unsigned char)k->algo;
	if (!sg_buf_append(&body, head, sizeof(head)))
		goto out;
	size_t bl = sk_to_block(sk, blk);
	if ((k->algo == SG_PGP_PK_ECDH ? ecdh_encrypt(k, blk, bl, &body, err)
				       : rsa_encrypt(k, blk, bl, &body, err)) < 0)
		goto out;
	if (sg_pgp_packet_write_header(out, SG_PGP_TAG_PKESK, body.len, err) < 0)
		goto out;
	if (!sg_buf_append(out, body.data, body.len)) {
		sg_error_set(err, "output buffer full");
		goto out;
	}
	ret = 1;
out:
	sg_memwipe(blk, sizeof(blk));
	sg_buf_free(&body);
	return ret;
}

/* ---- message ---- */

enum pk_role { ROLE_OTHER, ROLE_OLD, ROLE_NEW, ROLE_DROP };

struct pk_entry {
	struct sg_pgp_packet pkt;
	enum pk_role role;
	bool wildcard;
};

static bool is_wildcard(const unsigned char *kid)
{
	static const unsigned char zero[8];
	return memcmp(kid, zero, 8) == 0;
}

/* Classify one PKESK: does the old keyring own it (decrypting it into sk),
 * or is it already for the new key? 1 classified; -1 the old key's id but
 * it does not decrypt. */
static int classify(struct pk_entry *e, const struct sg_pgp_keyring *old_kr,
		    const unsigned char *new_fpr, struct sg_pgp_session_key *sk, bool *have_sk,
		    struct sg_error *err);

/* Is this PKESK addressed (by key id) to one of kr's keys? */
static bool addressed_to(const struct pk_entry *e, const struct sg_pgp_keyring *kr)
{
	const unsigned char *b = e->pkt.body;
	if (kr == NULL || b == NULL || e->pkt.body_len < 10 || b[0] != 3 || is_wildcard(b + 1))
		return false;
	for (size_t i = 0; i < kr->n; i++)
		if (memcmp(b + 1, kr->keys[i].fpr + 12, 8) == 0)
			return true;
	return false;
}

static int classify(struct pk_entry *e, const struct sg_pgp_keyring *old_kr,
		    const unsigned char *new_fpr, struct sg_pgp_session_key *sk, bool *have_sk,
		    struct sg_error *err)
{
	const unsigned char *b = e->pkt.body;
	e->role = ROLE_OTHER;
	if (b == NULL || e->pkt.body_len < 10 || b[0] != 3)
		return 1; /* v6 or malformed: not ours to judge, copied as is */
	const unsigned char *kid = b + 1;
	e->wildcard = is_wildcard(kid);
	if (!e->wildcard && memcmp(kid, new_fpr + 12, 8) == 0) {
		e->role = ROLE_NEW;
		return 1;
	}
	for (size_t i = 0; i < old_kr->n; i++) {
		if (!e->wildcard && memcmp(kid, old_kr->keys[i].fpr + 12, 8) != 0)
			continue;
		struct sg_pgp_session_key got;
		struct sg_error e2 = SG_ERROR_INIT;
		int r = sg_pgp_pkesk_decrypt(b, e->pkt.body_len, old_kr, i, &got, &e2);
		if (r > 0) {
			if (*have_sk && (got.sym_algo != sk->sym_algo || got.key_len != sk->key_len ||
					 !sg_memeq_ct(got.key, sk->key, got.key_len))) {
				sg_error_set(err, "PKESKs of the old key carry different session keys");
				sg_error_clear(&e2);
				return -1;
			}
			*sk = got;
			*have_sk = true;
			e->role = ROLE_OLD;
		}
		sg_memwipe(&got, sizeof(got));
		if (r < 0 && !e->wildcard) {
			sg_error_set(err, "PKESK for old key %02X%02X%02X%02X%02X%02X%02X%02X: %s",
				     kid[0], kid[1], kid[2], kid[3], kid[4], kid[5], kid[6], kid[7],
				     sg_error_msg(&e2));
			sg_error_clear(&e2);
			return -1;
		}
		sg_error_clear(&e2);
		if (r > 0)
			break;
	}
	return 1;
}

int sg_pgp_rewrap(const unsigned char *msg, size_t len, const struct sg_pgp_keyring *old_kr,
		  const struct sg_pgp_keyring *new_kr, struct sg_buf *out,
		  struct sg_pgp_rewrap_info *info_r, struct sg_error *err)
{
	struct sg_pgp_rewrap_req req = { old_kr, new_kr, NULL, false, false };
	return sg_pgp_rewrap_req(msg, len, &req, out, info_r, err);
}

/* Does this packet header octet (s4.2) start an encrypted data packet? */
static bool is_data_tag(unsigned char c)
{
	unsigned tag = (c & 0x40) ? (c & 0x3fu) : ((c >> 2) & 0x0fu);
	return (c & 0x80) && (tag == SG_PGP_TAG_SEIPD || tag == SG_PGP_TAG_SED || tag == SG_PGP_TAG_AEAD);
}

/* The session-key packets (RFC 4880 s11.3: they come before the encrypted
 * data), classified; *data_off_r the encrypted data packet, whose body is
 * framed (a truncated one is an error) but never looked into. */
static int scan(const unsigned char *msg, size_t len, const struct sg_pgp_rewrap_req *req,
		const unsigned char *new_fpr, struct pk_entry **ents_r, size_t *n_r,
		size_t *data_off_r, struct sg_pgp_session_key *sk, bool *have_sk,
		struct sg_error *err)
{
	struct sg_pgp_packet pkt;
	size_t pos = 0;
	int r;
	for (;;) {
		if (req->prefix_only && pos < len && is_data_tag(msg[pos])) {
			*data_off_r = pos;
			return 1;
		}
		if ((r = sg_pgp_packet_next(msg, len, &pos, &pkt, err)) <= 0)
			break;
		if (pkt.tag == SG_PGP_TAG_SEIPD || pkt.tag == SG_PGP_TAG_SED ||
		    pkt.tag == SG_PGP_TAG_AEAD) {
			*data_off_r = pkt.off;
			return 1;
		}
		if (pkt.tag != SG_PGP_TAG_PKESK && pkt.tag != SG_PGP_TAG_SKESK &&
		    pkt.tag != SG_PGP_TAG_MARKER) {
			sg_error_set(err, "unexpected packet tag %d before the encrypted data", pkt.tag);
			return -1;
		}
		*ents_r = sg_reallocarray(*ents_r, *n_r + 1, sizeof(**ents_r));
		struct pk_entry *e = &(*ents_r)[(*n_r)++];
		e->pkt = pkt;
		e->role = ROLE_OTHER;
		e->wildcard = false;
		if (pkt.tag != SG_PGP_TAG_PKESK)
			continue;
		if (classify(e, req->old_kr, new_fpr, sk, have_sk, err) < 0)
			return -1;
		if (e->role == ROLE_OTHER && addressed_to(e, req->drop_kr))
			e->role = ROLE_DROP;
	}
	if (r == 0)
		sg_error_set(err, "no encrypted data packet in the message");
	return -1;
}

int sg_pgp_rewrap_req(const unsigned char *msg, size_t len, const struct sg_pgp_rewrap_req *req,
		      struct sg_buf *out, struct sg_pgp_rewrap_info *info_r, struct sg_error *err)
{
	struct pk_entry *ents = NULL;
	size_t n = 0, data_off = 0;
	struct sg_pgp_session_key sk;
	bool have_sk = false, new_already = false;
	int ret = -1;
	size_t out_start = out->len;
	memset(info_r, 0, sizeof(*info_r));
	memset(&sk, 0, sizeof(sk));
	long ni = sg_pgp_keyring_encryption_key(req->new_kr);
	if (ni < 0) {
		sg_error_set(err, "new key has no usable encryption (sub)key (RSA or Curve25519)");
		return -1;
	}
	const unsigned char *new_fpr = req->new_kr->keys[ni].fpr;
	if (scan(msg, len, req, new_fpr, &ents, &n, &data_off, &sk, &have_sk, err) < 0)
		goto out;
	size_t n_drop = 0;
	for (size_t i = 0; i < n; i++) {
		new_already |= ents[i].role == ROLE_NEW;
		n_drop += ents[i].role == ROLE_DROP;
	}
	info_r->new_already = new_already;
	if (!have_sk || (req->keep_old && new_already && n_drop == 0)) {
		ret = 0;
		goto out;
	}
	bool placed = false;
	for (size_t i = 0; i < n; i++) {
		const struct pk_entry *e = &ents[i];
		bool keep = e->role == ROLE_OTHER || e->role == ROLE_NEW ||
			    (e->role == ROLE_OLD && req->keep_old);
		if (keep) {
			info_r->kept++;
			if (!sg_buf_append(out, msg + e->pkt.off, e->pkt.raw_len))
				goto full;
		} else if (e->role == ROLE_DROP) {
			info_r->dropped++;
		} else {
			info_r->removed++;
		}
		if (e->role != ROLE_OLD || placed || new_already)
			continue;
		if (sg_pgp_pkesk_encrypt(&sk, req->new_kr, (size_t)ni, e->wildcard, out, err) < 0)
			goto out;
		placed = true;
	}
	info_r->out_data_off = out->len - out_start;
	if (!sg_buf_append(out, msg + data_off, len - data_off))
		goto full;
	info_r->data_off = data_off;
	info_r->sym_algo = sk.sym_algo;
	ret = 1;
	goto out;
full:
	sg_error_set(err, "output larger than the buffer allows");
out:
	if (ret != 1)
		out->len = out_start;
	sg_memwipe(&sk, sizeof(sk));
	free(ents);
	return ret;
}
