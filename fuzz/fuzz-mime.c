/* libFuzzer target for the MIME layer: the classifier, the splitters and
 * sg_unseal (with a test key, so that decryption paths are reached). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "mime/message.h"
#include "mime/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The seeds in fuzz/corpus/mime/ are encrypted to and signed by it. */
#include "test-key.h"

static struct sg_key *key;

static void load_key(void)
{
	enum sg_crypto_status st;

	if (key == NULL && sg_key_load_mem(test_key, sizeof(test_key) - 1, NULL, &key, &st, NULL) != 1)
		abort();
}

static void fuzz_message(const uint8_t *data, size_t size)
{
	struct sg_msg_view v;
	struct sg_msg_ctype ct;
	struct sg_msg_bodypart *parts = NULL;
	size_t n = 0;

	if (sg_msg_split(data, size, &v, NULL) != 1)
		return;
	(void)sg_msg_classify(&v);
	if (sg_msg_get_ctype(&v, &ct, NULL) == 1 && ct.boundary != NULL &&
	    sg_msg_multipart_split(data + v.body_off, size - v.body_off, ct.boundary, &parts, &n, NULL) == 1)
		free(parts);
	sg_msg_ctype_clear(&ct);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sg_key *keys[1];
	struct sg_unseal_req req;
	struct sg_unseal_result res;
	struct sg_buf out;
	enum sg_crypto_status st;

	load_key();
	keys[0] = key;
	req.keys = keys;
	req.n_keys = 1;
	req.verify_keys = keys;
	req.n_verify_keys = 1;
	fuzz_message(data, size);
	sg_buf_init(&out, 64u << 20);
	int r = sg_unseal(data, size, &req, &out, &res, &st, NULL);
	/* The contract: no output unless it worked. */
	if (r < 0 && out.len != 0)
		abort();
	if (r == 1)
		sg_unseal_result_clear(&res);
	sg_buf_free(&out);
	return 0;
}
