/* Private keys at rest: the master key file's checks, AES-256-GCM sealing
 * with the row bound in the AAD, wrong key vs tampering told apart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys/master.h"
#include "util/mem.h"
#include "util/secret.h"

static char dir[] = "/tmp/sg-master-test.XXXXXX";

static char *path_in(const char *name)
{
	return sg_asprintf("%s/%s", dir, name);
}

static struct sg_master_key *new_file_key(const char *name)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_master_key *mk = NULL;
	char *p = path_in(name);
	assert_int_equal(sg_master_key_create_file(p, &err), 1);
	assert_int_equal(sg_master_key_load_file(p, &mk, &err), 1);
	free(p);
	return mk;
}

static void test_key_file_checks(void **state)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_master_key *mk = NULL;
	struct stat sb;
	char *p = path_in("mk1");
	(void)state;

	assert_int_equal(sg_master_key_create_file(p, &err), 1);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, 32);
	/* Never overwritten. */
	assert_int_equal(sg_master_key_create_file(p, &err), -1);
	assert_int_equal(sg_master_key_load_file(p, &mk, &err), 1);
	sg_master_key_free(&mk);
	assert_null(mk);
	/* Group- or world-readable: refused, naming the mode. */
	static const mode_t bad_modes[] = { 0644, 0640, 0604, 0660 };
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		assert_int_equal(chmod(p, bad_modes[i]), 0);
		assert_int_equal(sg_master_key_load_file(p, &mk, &err), -1);
		assert_null(mk);
		assert_non_null(strstr(sg_error_msg(&err), "group/world"));
	}
	assert_int_equal(chmod(p, 0400), 0);
	assert_int_equal(sg_master_key_load_file(p, &mk, &err), 1);
	sg_master_key_free(&mk);
	/* Wrong size, missing, not a regular file. */
	char *shortp = path_in("short");
	int fd = open(shortp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
	assert_int_equal(sg_master_key_load_file(shortp, &mk, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "exactly 32"));
	assert_int_equal(sg_master_key_load_file("/nonexistent/mk", &mk, &err), -1);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(sg_master_key_load_file(dir, &mk, &err), -1);
	sg_error_clear(&err);
	free(shortp);
	free(p);
}

static void test_seal_roundtrip_and_binding(void **state)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_master_key *mk = new_file_key("mk2");
	unsigned char *blob = NULL, *plain = NULL;
	size_t blob_len = 0, plain_len = 0;
	const char secret[] = "secret key material\x00with a NUL";
	(void)state;

	assert_int_equal(sg_master_seal(mk, "gateway", "FPR1", "sign", secret, sizeof(secret), &blob,
					&blob_len, &err), 1);
	assert_null(memmem(blob, blob_len, "secret key", 10));
	assert_int_equal(sg_master_open(mk, "gateway", "FPR1", "sign", blob, blob_len, &plain,
					&plain_len, &err), 1);
	assert_int_equal(plain_len, sizeof(secret));
	assert_memory_equal(plain, secret, plain_len);
	sg_secret_free(&plain, plain_len);

	/* Two seals of the same plaintext differ (random nonce). */
	unsigned char *blob2 = NULL;
	size_t blob2_len = 0;
	assert_int_equal(sg_master_seal(mk, "gateway", "FPR1", "sign", secret, sizeof(secret),
					&blob2, &blob2_len, &err), 1);
	assert_int_equal(blob2_len, blob_len);
	assert_memory_not_equal(blob, blob2, blob_len);
	free(blob2);

	/* The blob moved to another row does not open (AAD). */
	static const char *const rows[][3] = {
		{ "domain:example.org", "FPR1", "sign" },
		{ "gateway", "FPR2", "sign" },
		{ "gateway", "FPR1", "decrypt" },
		{ "gatewayF", "PR1", "sign" },   /* same concatenation, other split */
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (sg_master_open(mk, rows[i][0], rows[i][1], rows[i][2], blob, blob_len, &plain,
				   &plain_len, &err) != -1)
			fail_msg("row %zu opened", i);
		assert_non_null(strstr(sg_error_msg(&err), "integrity"));
	}
	/* Any flipped byte after the header: tampering. Header bytes: a
	 * clear error too (bad header / wrong key / integrity). */
	for (size_t i = 0; i < blob_len; i++) {
		blob[i] ^= 0x01;
		if (sg_master_open(mk, "gateway", "FPR1", "sign", blob, blob_len, &plain, &plain_len,
				   &err) != -1)
			fail_msg("flipped byte %zu accepted", i);
		blob[i] ^= 0x01;
	}
	assert_int_equal(sg_master_open(mk, "gateway", "FPR1", "sign", blob, blob_len - 1, &plain,
					&plain_len, &err), -1);
	assert_int_equal(sg_master_open(mk, "gateway", "FPR1", "sign", blob, 10, &plain, &plain_len,
					&err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "bad header"));

	/* Another master key: said so, not "tampered". */
	struct sg_master_key *other = new_file_key("mk3");
	assert_int_equal(sg_master_open(other, "gateway", "FPR1", "sign", blob, blob_len, &plain,
					&plain_len, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "wrong master key"));
	sg_master_key_free(&other);
	/* A passphrase key on a key-file blob: named as such. */
	assert_int_equal(sg_master_key_from_passphrase("pw", &other, &err), 1);
	assert_int_equal(sg_master_open(other, "gateway", "FPR1", "sign", blob, blob_len, &plain,
					&plain_len, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "passphrase"));
	sg_master_key_free(&other);
	sg_error_clear(&err);
	free(blob);
	sg_master_key_free(&mk);
}

static void test_passphrase(void **state)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_master_key *mk = NULL, *wrong = NULL;
	unsigned char *blob = NULL, *plain = NULL;
	size_t blob_len = 0, plain_len = 0;
	(void)state;

	assert_int_equal(sg_master_key_from_passphrase("", &mk, &err), -1);
	assert_int_equal(sg_master_key_from_passphrase("correct horse battery", &mk, &err), 1);
	assert_int_equal(sg_master_seal(mk, "a@b.test", "F", "pgp-secret", "xyz", 3, &blob, &blob_len,
					&err), 1);
	assert_int_equal(sg_master_open(mk, "a@b.test", "F", "pgp-secret", blob, blob_len, &plain,
					&plain_len, &err), 1);
	assert_memory_equal(plain, "xyz", 3);
	sg_secret_free(&plain, plain_len);
	assert_int_equal(sg_master_key_from_passphrase("correct horse batterY", &wrong, &err), 1);
	assert_int_equal(sg_master_open(wrong, "a@b.test", "F", "pgp-secret", blob, blob_len, &plain,
					&plain_len, &err), -1);
	assert_non_null(strstr(sg_error_msg(&err), "wrong master key"));
	sg_error_clear(&err);
	sg_master_key_free(&wrong);
	sg_master_key_free(&mk);
	free(blob);
}

static int cleanup(void **state)
{
	char *cmd = sg_asprintf("rm -rf %s", dir);
	int r = system(cmd);
	free(cmd);
	return r == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_file_checks),
		cmocka_unit_test(test_seal_roundtrip_and_binding),
		cmocka_unit_test(test_passphrase),
	};
	if (mkdtemp(dir) == NULL)
		return 1;
	return cmocka_run_group_tests_name("store-master", tests, NULL, cleanup);
}
