/* Test driver for message-level S/MIME: seals or unseals the message on
 * stdin to stdout with certificate/key files named on the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/smime.h"
#include "mime/seal.h"
#include "util/buf.h"
#include "util/mem.h"

#define MAX_MSG (64u * 1024u * 1024u)
#define MAX_KEYS 16

static const char *const status_names[] = { "OK", "NO_KEY", "BAD_KEY", "KEY_EXPIRED",
	"KEY_REVOKED", "WRONG_KEY", "TAMPERED", "UNKNOWN_SIGNER", "MALFORMED", "UNSUPPORTED",
	"INTERNAL" };
static const char *const sig_names[] = { "NONE", "VALID", "BAD", "UNKNOWN_SIGNER",
	"KEY_EXPIRED", "KEY_REVOKED" };

static void usage(void)
{
	fprintf(stderr, "usage: smime-tool seal [--gcm] [--opaque] [--subject S] [--pass P]\n"
			"                       [--sign CERT+KEY] [--to CERT]... < msg\n"
			"       smime-tool unseal [--pass P] [--key CERT+KEY]... [--trust CERT]... < msg\n");
	exit(64);
}

static int read_all(FILE *f, struct sg_buf *b)
{
	unsigned char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (!sg_buf_append(b, chunk, n))
			return -1;
	return ferror(f) ? -1 : 1;
}

static struct sg_key *load(const char *path, const char *pass)
{
	struct sg_key *k = NULL;
	enum sg_crypto_status st;
	struct sg_error err = SG_ERROR_INIT;
	if (sg_key_load_file(path, pass, &k, &st, &err) != 1) {
		fprintf(stderr, "%s: %s\n", path, sg_error_msg(&err));
		exit(70 + (int)st);
	}
	return k;
}

struct keylist {
	struct sg_key *k[MAX_KEYS];
	size_t n;
};

static void push(struct keylist *l, struct sg_key *k)
{
	if (l->n == MAX_KEYS) {
		fprintf(stderr, "too many keys\n");
		exit(64);
	}
	l->k[l->n++] = k;
}

static void free_list(struct keylist *l)
{
	for (size_t i = 0; i < l->n; i++)
		sg_key_free(&l->k[i]);
}

int main(int argc, char **argv)
{
	struct sg_seal_req sreq = { .format = SG_SEAL_SMIME };
	struct sg_unseal_req ureq = { 0 };
	struct sg_unseal_result res = { 0 };
	struct keylist to = { 0 }, keys = { 0 }, trust = { 0 };
	struct sg_key *signer = NULL;
	const char *pass = NULL;
	struct sg_buf in, out;
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	enum sg_seal_outcome outcome = SG_SEAL_SEALED;
	int r;

	if (argc < 2)
		usage();
	bool seal = strcmp(argv[1], "seal") == 0;
	if (!seal && strcmp(argv[1], "unseal") != 0)
		usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--gcm") == 0) { sreq.smime_gcm = true; continue; }
		if (strcmp(a, "--opaque") == 0) { sreq.smime_opaque = true; continue; }
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--subject") == 0) sreq.neutral_subject = v;
		else if (strcmp(a, "--pass") == 0) pass = v;
		else if (strcmp(a, "--sign") == 0) signer = load(v, pass);
		else if (strcmp(a, "--to") == 0) push(&to, load(v, pass));
		else if (strcmp(a, "--key") == 0) push(&keys, load(v, pass));
		else if (strcmp(a, "--trust") == 0) push(&trust, load(v, pass));
		else usage();
	}
	sg_buf_init(&in, MAX_MSG);
	sg_buf_init(&out, MAX_MSG * 2);
	if (read_all(stdin, &in) < 0) {
		fprintf(stderr, "cannot read stdin\n");
		return 74;
	}
	if (seal) {
		sreq.recipients = to.k;
		sreq.n_recipients = to.n;
		sreq.signer = signer;
		r = sg_smime_seal(in.data, in.len, &sreq, &out, &outcome, &st, &err);
	} else {
		ureq.keys = keys.k;
		ureq.n_keys = keys.n;
		ureq.verify_keys = trust.k;
		ureq.n_verify_keys = trust.n;
		r = sg_smime_unseal(in.data, in.len, &ureq, &out, &res, &st, &err);
	}
	if (r == 1 && fwrite(out.data, 1, out.len, stdout) != out.len)
		r = -1;
	fprintf(stderr, "status=%s", status_names[st]);
	if (seal)
		fprintf(stderr, " outcome=%s", outcome == SG_SEAL_SEALED ? "sealed" : "already-encrypted");
	else
		fprintf(stderr, " encrypted=%d authenticated=%d sig=%s signer=%s decrypted_with=%s",
			res.was_encrypted, res.authenticated, sig_names[res.sig],
			res.signer != NULL ? res.signer : "-",
			res.decrypted_with != NULL ? res.decrypted_with : "-");
	if (res.warning != NULL)
		fprintf(stderr, " warning=\"%s\"", res.warning);
	if (r != 1)
		fprintf(stderr, " error=\"%s\"", sg_error_msg(&err));
	fputc('\n', stderr);
	free(res.signer);
	free(res.decrypted_with);
	free(res.warning);
	free_list(&to);
	free_list(&keys);
	free_list(&trust);
	sg_key_free(&signer);
	sg_buf_free(&in);
	sg_buf_free(&out);
	sg_error_clear(&err);
	return r == 1 ? 0 : 10 + (int)st;
}
