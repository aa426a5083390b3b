/* CMS RecipientInfo replacement over OpenSSL 3 CMS: the CEK is recovered
 * with the old key and wrapped for the new certificate, nothing else moves. */
#include "crypto/cms-rewrap.h"
#include "crypto/ossl-reason.h"
#include "util/log.h"
#include "util/mem.h"

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

struct sg_cms_party {
	X509 *cert;
	EVP_PKEY *pkey; /* NULL for a new recipient */
};

void sg_cms_party_free(struct sg_cms_party **pp)
{
	struct sg_cms_party *p = *pp;
	if (p == NULL)
		return;
	X509_free(p->cert);
	EVP_PKEY_free(p->pkey);
	free(p);
	*pp = NULL;
}

int sg_cms_party_load(const unsigned char *data, size_t len, const char *passphrase,
		      bool need_key, struct sg_cms_party **p_r, struct sg_error *err)
{
	struct sg_cms_party *p = sg_calloc(1, sizeof(*p));
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	int ret = -1;
	if (bio == NULL || (p->cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		sg_ossl_reason(err, "no PEM certificate");
		goto out;
	}
	if (need_key) {
		BIO_free(bio);
		bio = BIO_new_mem_buf(data, (int)len);
		p->pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)passphrase) : NULL;
		if (p->pkey == NULL) {
			sg_ossl_reason(err, "no (or undecryptable) PEM private key");
			goto out;
		}
		if (X509_check_private_key(p->cert, p->pkey) != 1) {
			sg_ossl_reason(err, "private key does not match the certificate");
			goto out;
		}
	}
	*p_r = p;
	p = NULL;
	ret = 1;
out:
	BIO_free(bio);
	sg_cms_party_free(&p);
	return ret;
}

static CMS_ContentInfo *parse_env(const unsigned char *der, size_t len, bool *auth_r,
				  struct sg_error *err)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	if (cms == NULL) {
		sg_ossl_reason(err, "not CMS");
		return NULL;
	}
	int nid = OBJ_obj2nid(CMS_get0_type(cms));
	if (nid != NID_pkcs7_enveloped && nid != NID_id_smime_ct_authEnvelopedData) {
		sg_error_set(err, "CMS is not EnvelopedData or AuthEnvelopedData");
		CMS_ContentInfo_free(cms);
		return NULL;
	}
	if (auth_r)
		*auth_r = nid == NID_id_smime_ct_authEnvelopedData;
	return cms;
}

int sg_cms_encrypted_content(const unsigned char *der, size_t len, struct sg_buf *out,
			     struct sg_error *err)
{
	CMS_ContentInfo *cms = parse_env(der, len, NULL, err);
	if (cms == NULL)
		return -1;
	ASN1_OCTET_STRING **pos = CMS_get0_content(cms);
	int ret = 0;
	if (pos != NULL && *pos != NULL) {
		ret = sg_buf_append(out, ASN1_STRING_get0_data(*pos), (size_t)ASN1_STRING_length(*pos))
			      ? 1 : -1;
		if (ret < 0)
			sg_error_set(err, "encrypted content larger than the buffer allows");
	}
	CMS_ContentInfo_free(cms);
	return ret;
}

/* Find the old party's RecipientInfo and decrypt the CEK into the CMS
 * structure (where CMS_RecipientInfo_encrypt takes it from). Index or -1
 * when not a recipient; -2 error. */
static int decrypt_old(CMS_ContentInfo *cms, const struct sg_cms_party *old_p, bool *agree_r,
		       struct sg_error *err)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
	for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);
		int type = CMS_RecipientInfo_type(ri);
		if (type == CMS_RECIPINFO_TRANS) {
			if (CMS_RecipientInfo_ktri_cert_cmp(ri, old_p->cert) != 0)
				continue;
			/* set0 takes a reference: setting NULL afterwards frees it */
			EVP_PKEY_up_ref(old_p->pkey);
			CMS_RecipientInfo_set0_pkey(ri, old_p->pkey);
			int ok = CMS_RecipientInfo_decrypt(cms, ri);
			CMS_RecipientInfo_set0_pkey(ri, NULL);
			if (ok != 1) {
				sg_ossl_reason(err, "KeyTransRecipientInfo: decrypting the CEK failed");
				return -2;
			}
			*agree_r = false;
			return i;
		}
		if (type != CMS_RECIPINFO_AGREE)
			continue;
		STACK_OF(CMS_RecipientEncryptedKey) *reks = CMS_RecipientInfo_kari_get0_reks(ri);
		for (int j = 0; j < sk_CMS_RecipientEncryptedKey_num(reks); j++) {
			CMS_RecipientEncryptedKey *rek = sk_CMS_RecipientEncryptedKey_value(reks, j);
			if (CMS_RecipientEncryptedKey_cert_cmp(rek, old_p->cert) != 0)
				continue;
			/* One KeyAgreeRecipientInfo may carry several recipients:
			 * replacing it whole would drop the others. */
			if (sk_CMS_RecipientEncryptedKey_num(reks) != 1) {
				sg_error_set(err, "KeyAgreeRecipientInfo shared with other recipients: not supported");
				return -2;
			}
			int ok = CMS_RecipientInfo_kari_set0_pkey_and_peer(ri, old_p->pkey, NULL) == 1 &&
				 CMS_RecipientInfo_kari_decrypt(cms, ri, rek) == 1;
			CMS_RecipientInfo_kari_set0_pkey(ri, NULL);
			if (!ok) {
				sg_ossl_reason(err, "KeyAgreeRecipientInfo: decrypting the CEK failed");
				return -2;
			}
			*agree_r = true;
			return i;
		}
	}
	return -1;
}

/* Add a RecipientInfo for the new certificate and encrypt the CEK for it,
 * then move it to index at. 1; -1. */
static int add_new(CMS_ContentInfo *cms, const struct sg_cms_party *new_p, int at,
		   struct sg_error *err)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
	CMS_RecipientInfo *ri = CMS_add1_recipient_cert(cms, new_p->cert, CMS_KEY_PARAM);
	if (ri == NULL) {
		sg_ossl_reason(err, "new certificate: cannot make a RecipientInfo");
		return -1;
	}
	if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_AGREE) {
		/* The wrap algorithm normally follows the content cipher, which a
		 * parsed structure does not record; AES-256 key wrap (RFC 3565)
		 * wraps any CEK. */
		EVP_CIPHER_CTX *ctx = CMS_RecipientInfo_kari_get0_ctx(ri);
		EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
		if (EVP_EncryptInit_ex(ctx, EVP_aes_256_wrap(), NULL, NULL, NULL) != 1) {
			sg_ossl_reason(err, "key wrap setup");
			return -1;
		}
	}
	if (CMS_RecipientInfo_encrypt(cms, ri) != 1) {
		sg_ossl_reason(err, "new certificate: encrypting the CEK failed");
		return -1;
	}
	int last = sk_CMS_RecipientInfo_num(ris) - 1;
	if (sk_CMS_RecipientInfo_delete(ris, last) != ri || sk_CMS_RecipientInfo_insert(ris, ri, at) == 0) {
		sg_error_set(err, "RecipientInfo reorder failed");
		return -1;
	}
	return 1;
}

/* OpenSSL has no public CMS_RecipientInfo_free: hand the detached one to a
 * throw-away EnvelopedData, whose free releases it. */
static void ri_free(CMS_RecipientInfo *ri)
{
	if (ri == NULL)
		return;
	CMS_ContentInfo *tmp = CMS_EnvelopedData_create(EVP_aes_128_cbc());
	if (tmp == NULL || sk_CMS_RecipientInfo_push(CMS_get0_RecipientInfos(tmp), ri) == 0)
		sg_panic("cms rewrap: cannot release a RecipientInfo");
	CMS_ContentInfo_free(tmp);
}

int sg_cms_rewrap(const unsigned char *der, size_t len, const struct sg_cms_party *old_p,
		  const struct sg_cms_party *new_p, struct sg_buf *out,
		  struct sg_cms_rewrap_info *info_r, struct sg_error *err)
{
	struct sg_buf c_in, c_out;
	unsigned char *enc = NULL;
	int ret = -1;
	size_t start = out->len;
	memset(info_r, 0, sizeof(*info_r));
	sg_buf_init(&c_in, (size_t)1 << 31);
	sg_buf_init(&c_out, (size_t)1 << 31);
	CMS_ContentInfo *cms = parse_env(der, len, &info_r->authenticated, err);
	if (cms == NULL)
		goto out;
	if (old_p->pkey == NULL) {
		sg_error_set(err, "old recipient has no private key");
		goto out;
	}
	int at = decrypt_old(cms, old_p, &info_r->agree, err);
	if (at == -2)
		goto out;
	if (at == -1) {
		ret = 0;
		goto out;
	}
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
	CMS_RecipientInfo *old_ri = sk_CMS_RecipientInfo_delete(ris, at);
	if (add_new(cms, new_p, at, err) < 0) {
		ri_free(old_ri);
		goto out;
	}
	ri_free(old_ri);
	info_r->recipients = (size_t)sk_CMS_RecipientInfo_num(ris);
	int n = i2d_CMS_ContentInfo(cms, &enc);
	if (n <= 0) {
		sg_ossl_reason(err, "DER encoding failed");
		goto out;
	}
	/* The content must come out exactly as it went in (parse both). */
	if (sg_cms_encrypted_content(der, len, &c_in, err) <= 0 ||
	    sg_cms_encrypted_content(enc, (size_t)n, &c_out, err) <= 0 || c_in.len != c_out.len ||
	    memcmp(c_in.data, c_out.data, c_in.len) != 0) {
		sg_error_set(err, "encryptedContent changed or missing: refusing");
		goto out;
	}
	info_r->content_len = c_in.len;
	if (!sg_buf_append(out, enc, (size_t)n)) {
		sg_error_set(err, "output larger than the buffer allows");
		goto out;
	}
	ret = 1;
out:
	if (ret != 1)
		out->len = start;
	OPENSSL_free(enc);
	CMS_ContentInfo_free(cms);
	sg_buf_free(&c_in);
	sg_buf_free(&c_out);
	return ret;
}
