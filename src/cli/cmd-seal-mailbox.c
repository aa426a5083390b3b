/* sealgate seal-mailbox: seal the mail a user already has in a Maildir
 * (stored before sealgate, or appended over IMAP), one message at a time. */
#include "cli/cli.h"
#include "config/config.h"
#include "deliver/deliver.h"
#include "deliver/folders.h"
#include "deliver/journal.h"
#include "deliver/maildir.h"
#include "keys/lookup.h"
#include "mime/message.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX ((size_t)1 << 30)
#define JOURNAL_NAME ".sealgate-seal-mailbox.journal"
#define TMP_TAG ".sealgate-seal-"   /* our tmp/ files: NAME TMP_TAG PID */

static const char usage[] =
	"usage: sealgate seal-mailbox ADDR --maildir DIR [--key FILE]\n"
	"                             [-c FILE] [--state-dir DIR] [--store SPEC] [--subject TEXT]\n"
	"                             [--resync-cmd CMD]\n"
	"\n"
	"Seal every not yet encrypted message in DIR/new and DIR/cur and in every\n"
	"Maildir++ sub-folder (DIR/.Sent, DIR/.Lists.foo, ...) to ADDR's key\n"
	"(--key FILE, else the key store), one message at a time: the sealed copy is\n"
	"written to its folder's tmp/, fsynced and renamed over the original, keeping\n"
	"its base name and flags (S= and W= are updated). A journal in DIR\n"
	"(" JOURNAL_NAME ") resumes a run that was stopped: messages it\n"
	"lists as sealed are skipped without being read, one it lists as begun is\n"
	"examined (already encrypted ones are skipped); it is removed when a run ends\n"
	"with no failure. recovery_key (config) is added as a second recipient.\n"
	"Tell Dovecot afterwards: --resync-cmd CMD (or\n"
	"rekey_resync_cmd) runs with $1 = ADDR, $2 = DIR, e.g.\n"
	"  --resync-cmd 'doveadm force-resync -u \"$1\" \"*\"'\n"
	"Exit: 0 all done or skipped, 1 some failed, 2 no key, 64 usage.\n";

struct failure {
	char *name;
	char *reason;
};

struct folder_count {
	char *name;          /* "" the root (INBOX), ".Sent" */
	size_t done, earlier, skipped_enc, failed;
};

struct job {
	const char *root;    /* the Maildir (--maildir) */
	const char *maildir; /* the folder of the message at hand: root or root/.Name */
	const char *folder;  /* its name: "" or ".Name" */
	struct sg_key *key;
	struct sg_key *recovery;  /* recovery_key or NULL */
	const char *subject;
	const char *resync_cmd;
	char **paths;        /* [.Folder/]sub/name relative to root */
	size_t n_paths;
	struct folder_count *folders;
	size_t n_folders;
	struct sg_journal *journal;
	size_t done, earlier, skipped_enc, failed;
	struct failure *fails;
	struct timespec start;
	bool tty;
};

/* The journal's name for the message name of the folder at hand:
 * "NAME" in the root, ".Sent/NAME" in a sub-folder (journal.h). Owned. */
static char *journal_name(const struct job *j, const char *name)
{
	return j->folder[0] != '\0' ? sg_asprintf("%s/%s", j->folder, name) : sg_strdup(name);
}

static int read_file(const char *path, struct sg_buf *crlf, struct sg_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct sg_buf raw;
	unsigned char chunk[65536];
	ssize_t n;
	int ret = -1;

	sg_buf_init(&raw, MSG_MAX);
	if (fd < 0) {
		sg_error_set(err, "open: %s", strerror(errno));
		goto out;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sg_error_set(err, "read: %s", strerror(errno));
			goto out;
		}
		if (!sg_buf_append(&raw, chunk, (size_t)n)) {
			sg_error_set(err, "larger than %zu bytes", raw.max);
			goto out;
		}
	}
	/* Maildir holds LF lines; sealing works on RFC 5322 CRLF. */
	if (sg_msg_to_crlf(raw.data, raw.len, crlf, err) < 0)
		goto out;
	ret = 1;
out:
	if (fd >= 0)
		close(fd);
	sg_buf_free(&raw);
	return ret;
}

/* Tests only: SEALGATE_TEST_PAUSE_AT=N stops the process (SIGSTOP) just
 * after the Nth sealed copy took the original's place, before its size
 * fields and its "done" line, so that a test can kill -9 at that point. */
static void test_pause(const struct job *j)
{
	const char *at = getenv("SEALGATE_TEST_PAUSE_AT");
	if (at != NULL && strtoull(at, NULL, 10) == j->done + 1)
		raise(SIGSTOP);
}

static int write_sealed(struct job *j, const char *rel, const unsigned char *data, size_t len,
			struct sg_error *err)
{
	const char *slash = strchr(rel, '/');
	char *base = sg_maildir_base(slash + 1);
	char *tmp = sg_asprintf("%s/tmp/%s" TMP_TAG "%ld", j->maildir, base, (long)getpid());
	char *orig = sg_asprintf("%s/%s", j->maildir, rel);
	char *sub = sg_strndup(rel, (size_t)(slash - rel));
	char *cur = NULL, *subdir = NULL;
	char *jname = journal_name(j, slash + 1);
	const char *now_sub = sub;
	int fd = -1, ret = -1;
	struct stat st;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		sg_error_set(err, "create %s: %s", tmp, strerror(errno));
		goto out;
	}
	/* Keep the owner and mode the mailbox server gave it (best effort). */
	if (stat(orig, &st) == 0 && (fchown(fd, st.st_uid, st.st_gid) < 0 ||
				     fchmod(fd, st.st_mode & 0777) < 0))
		sg_log_debug("seal-mailbox: %s: keeping owner/mode: %s", rel, strerror(errno));
	if (sg_maildir_write_fd(fd, data, len, err) < 0)
		goto out;
	close(fd);
	fd = -1;
	sg_journal_begin(j->journal, jname);
	/* In place of the original under its own name, in one step (the
	 * plaintext is gone as the sealed copy appears), following it if the
	 * mailbox server renamed it meanwhile. Then the size fields; a crash
	 * in between leaves a sealed file with stale S=/W=, which the next
	 * run fixes (fix_sizes()). */
	int r = sg_maildir_replace(j->maildir, sub, slash + 1, tmp, &now_sub, &cur, err);
	if (r <= 0) {
		if (r == 0)
			sg_error_set(err, "expunged while sealing");
		goto out;
	}
	test_pause(j);
	subdir = sg_asprintf("%s/%s", j->maildir, now_sub);
	if (sg_maildir_sync_dir(subdir, err) < 0)
		goto out;
	int renamed = sg_maildir_fix_sizes(subdir, cur, sg_maildir_lf_size(data, len), len, true, err);
	if (renamed < 0 || (renamed > 0 && sg_maildir_sync_dir(subdir, err) < 0))
		goto out;
	sg_journal_done(j->journal, jname, sg_maildir_lf_size(data, len));
	ret = 1;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		unlink(tmp); /* already gone once replaced */
	free(base);
	free(jname);
	free(tmp);
	free(orig);
	free(sub);
	free(cur);
	free(subdir);
	return ret;
}

/* An encrypted file whose S= disagrees with its size (a run stopped between
 * its two renames): put the size fields right; ours (the journal says we
 * began it): add them when missing, as a finished run would have. 1
 * renamed, 0 nothing to do. */
static int fix_sizes(struct job *j, const char *rel, const struct sg_buf *crlf, bool ours,
		     struct sg_error *err)
{
	const char *slash = strchr(rel, '/');
	const char *name = slash + 1;
	const char *sfield = strstr(name, ",S=");
	size_t lf = sg_maildir_lf_size(crlf->data, crlf->len);

	if (sfield == NULL ? !ours : (size_t)strtoull(sfield + 3, NULL, 10) == lf)
		return 0;
	char *dir = sg_asprintf("%s/%.*s", j->maildir, (int)(slash - rel), rel);
	int ret = sg_maildir_fix_sizes(dir, name, lf, crlf->len, true, err);
	free(dir);
	return ret;
}

static void add_failure(struct job *j, const char *rel, const char *reason)
{
	j->fails = sg_reallocarray(j->fails, j->failed + 1, sizeof(*j->fails));
	j->fails[j->failed].name = journal_name(j, rel); /* relative to the root */
	j->fails[j->failed++].reason = sg_strdup(reason);
}

/* rel ("sub/name") renamed since the listing (the mailbox server moved
 * it to cur/ or changed its flags): its new rel, owned; NULL if gone. */
static char *follow(const struct job *j, const char *rel)
{
	char *base = sg_maildir_base(strchr(rel, '/') + 1), *name = NULL, *now = NULL;
	const char *sub = NULL;
	if (sg_maildir_locate(j->maildir, base, &sub, &name) > 0) {
		now = sg_asprintf("%s/%s", sub, name);
		if (strcmp(now, rel) == 0) { /* not moved: unreadable as it is */
			free(now);
			now = NULL;
		}
	}
	free(base);
	free(name);
	return now;
}

/* Journalled done by an earlier run, and still the file it wrote (same
 * size: a plaintext put back under the same name, from a backup, is
 * sealed again, not skipped)? Decided without reading the message. */
static bool sealed_earlier(const struct job *j, const char *rel, enum sg_journal_state js,
			   int64_t size)
{
	struct stat st;
	char *path = sg_asprintf("%s/%s", j->maildir, rel), *moved = NULL;
	bool same = false;
	if (js != SG_JOURNAL_DONE || size < 0)
		goto out;
	if (stat(path, &st) < 0 && (moved = follow(j, rel)) != NULL) {
		free(path);
		path = sg_asprintf("%s/%s", j->maildir, moved);
	}
	same = stat(path, &st) == 0 && st.st_size == size;
out:
	free(path);
	free(moved);
	return same;
}

static void seal_in_folder(struct job *j, const char *rel)
{
	char *path = sg_asprintf("%s/%s", j->maildir, rel), *moved = NULL;
	struct sg_buf msg;
	struct sg_error err = SG_ERROR_INIT;
	unsigned char *sealed = NULL;
	size_t slen = 0;
	enum sg_seal_outcome outcome = SG_SEAL_SEALED;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	int64_t jsize = -1;
	char *jname = journal_name(j, strchr(rel, '/') + 1);
	enum sg_journal_state js = sg_journal_lookup(j->journal, jname, &jsize);

	sg_buf_init(&msg, 2 * MSG_MAX);
	if (sealed_earlier(j, rel, js, jsize)) {
		j->earlier++;
		goto out;
	}
	if (read_file(path, &msg, &err) < 0) {
		if ((moved = follow(j, rel)) == NULL)
			goto failed;
		rel = moved;
		free(path);
		path = sg_asprintf("%s/%s", j->maildir, rel);
		sg_buf_reset(&msg);
		sg_error_clear(&err);
		if (read_file(path, &msg, &err) < 0)
			goto failed;
	}
	if (sg_deliver_seal(msg.data, msg.len, j->key, j->recovery, j->subject, &sealed, &slen,
			    &outcome, &st, &err) < 0) {
		sg_error_prefix(&err, "%s", sg_crypto_status_name(st));
		goto failed;
	}
	if (outcome == SG_SEAL_ALREADY_ENCRYPTED) {
		if (fix_sizes(j, rel, &msg, js != SG_JOURNAL_NONE, &err) < 0)
			goto failed;
		j->skipped_enc++;
		goto out;
	}
	if (write_sealed(j, rel, sealed, slen, &err) < 0)
		goto failed;
	j->done++;
	goto out;
failed:
	add_failure(j, rel, sg_error_msg(&err));
out:
	free(sealed);
	free(jname);
	free(path);
	free(moved);
	sg_buf_free(&msg);
	sg_error_clear(&err);
}

static struct folder_count *folder_count(struct job *j, const char *folder)
{
	for (size_t i = 0; i < j->n_folders; i++)
		if (strcmp(j->folders[i].name, folder) == 0)
			return &j->folders[i];
	j->folders = sg_reallocarray(j->folders, j->n_folders + 1, sizeof(*j->folders));
	j->folders[j->n_folders] = (struct folder_count){ sg_strdup(folder), 0, 0, 0, 0 };
	return &j->folders[j->n_folders++];
}

/* rel: relative to the root, "cur/NAME" or ".Sent/cur/NAME": sealed in
 * its folder (its tmp/, its cur/ and new/), counted for the folder too. */
static void seal_one(struct job *j, const char *rel)
{
	char *folder = NULL;
	const char *inner = sg_maildir_rel_split(rel, &folder);
	char *dir = folder[0] != '\0' ? sg_asprintf("%s/%s", j->root, folder) : sg_strdup(j->root);
	size_t done = j->done, earlier = j->earlier, skipped = j->skipped_enc, failed = j->failed;

	j->maildir = dir;
	j->folder = folder;
	seal_in_folder(j, inner);
	struct folder_count *fc = folder_count(j, folder);
	fc->done += j->done - done;
	fc->earlier += j->earlier - earlier;
	fc->skipped_enc += j->skipped_enc - skipped;
	fc->failed += j->failed - failed;
	j->maildir = j->folder = NULL;
	free(dir);
	free(folder);
}

static double elapsed(const struct job *j)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - j->start.tv_sec) + (double)(now.tv_nsec - j->start.tv_nsec) / 1e9;
}

static void progress(const struct job *j, size_t i, bool last)
{
	if (!j->tty)
		return;
	double t = elapsed(j), rate = t > 0 ? (double)i / t : 0;
	double eta = rate > 0 ? (double)(j->n_paths - i) / rate : 0;
	fprintf(stderr, "\rseal-mailbox: %zu/%zu (%3zu%%) %.1f msg/s, ETA %.0fs   %s", i, j->n_paths,
		j->n_paths > 0 ? i * 100 / j->n_paths : 100, rate, eta, last ? "\n" : "");
}

static int load_key(const char *addr, const char *key_file, struct sg_config *cfg,
		    struct sg_key **key_r)
{
	struct sg_error err = SG_ERROR_INIT;
	enum sg_crypto_status st = SG_CRYPTO_OK;
	struct sg_store *store = NULL;
	struct sg_keys_lookup *lk = NULL;
	int ret = -1;

	if (key_file != NULL) {
		if (sg_key_load_file(key_file, NULL, key_r, &st, &err) < 0)
			goto out;
		if (sg_key_usable_for_encrypt(*key_r, time(NULL), &st, &err) != 1)
			goto out;
		ret = 1;
		goto out;
	}
	if (sg_store_open_config(cfg, NULL, &store, &err) < 0) {
		st = SG_CRYPTO_INTERNAL;
		goto out;
	}
	lk = sg_keys_lookup_new(store, NULL, NULL, SG_LOOKUP_LOCAL);
	enum sg_key_kind pref = strcmp(cfg->deliver_format, "smime") == 0 ? SG_KEY_X509 :
				strcmp(cfg->deliver_format, "pgp") == 0 ? SG_KEY_PGP : 0;
	if (sg_keys_find_encrypt(lk, addr, pref, time(NULL), key_r, &st, &err) == 1)
		ret = 1;
out:
	if (ret < 0) {
		fprintf(stderr, "sealgate seal-mailbox: key for %s: %s\n", addr, sg_error_msg(&err));
		sg_key_free(key_r);
	}
	sg_keys_lookup_free(&lk);
	sg_store_close(&store);
	sg_error_clear(&err);
	return ret < 0 ? -(st == SG_CRYPTO_INTERNAL ? SG_EXIT_FAIL : SG_EXIT_NO_KEY) : 1;
}

static void summary(const struct job *j)
{
	double t = elapsed(j);
	printf("seal-mailbox: %zu sealed, %zu sealed earlier (journal), %zu skipped (already encrypted), "
	       "%zu failed, in %.1fs\n", j->done, j->earlier, j->skipped_enc, j->failed, t);
	/* per folder when there are several (the root is Dovecot's INBOX) */
	for (size_t i = 0; j->n_folders > 1 && i < j->n_folders; i++) {
		const struct folder_count *f = &j->folders[i];
		printf("  %s: %zu sealed, %zu sealed earlier, %zu skipped, %zu failed\n",
		       f->name[0] != '\0' ? f->name : "INBOX (root)", f->done, f->earlier,
		       f->skipped_enc, f->failed);
	}
	for (size_t i = 0; i < j->failed; i++)
		printf("  failed %s: %s\n", j->fails[i].name, j->fails[i].reason);
}

int cmd_seal_mailbox(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "maildir", required_argument, NULL, 'm' },
		{ "key", required_argument, NULL, 'k' },
		SG_CLI_WHERE_OPTIONS,
		{ "subject", required_argument, NULL, 'j' },
		{ "resync-cmd", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sg_cli_where where = { 0 };
	const char *key_file = NULL, *subject = NULL;
	struct job j;
	struct sg_config cfg = { 0 }; /* sg_config_clear copes with all-zero */
	struct sg_error err = SG_ERROR_INIT;
	int c, ret = SG_EXIT_USAGE;

	memset(&j, 0, sizeof(j));
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		if (sg_cli_where_opt(&where, c, optarg))
			continue;
		switch (c) {
		case 'm': j.root = optarg; break;
		case 'k': key_file = optarg; break;
		case 'j': subject = optarg; break;
		case 'r': j.resync_cmd = optarg; break;
		case 'h': fputs(usage, stdout); ret = SG_EXIT_OK; goto out;
		default: fputs(usage, stderr); goto out;
		}
	}
	if (optind + 1 != argc || j.root == NULL) {
		fputs(usage, stderr);
		goto out;
	}
	if (sg_cli_where_config(&where, &cfg, &err) < 0) {
		fprintf(stderr, "sealgate seal-mailbox: %s\n", sg_error_msg(&err));
		ret = SG_EXIT_CONFIG;
		goto out;
	}
	j.subject = subject != NULL ? subject : cfg.deliver_subject;
	if (j.resync_cmd == NULL)
		j.resync_cmd = cfg.rekey_resync_cmd;
	int r = load_key(argv[optind], key_file, &cfg, &j.key);
	if (r < 0) {
		ret = -r;
		goto out;
	}
	if (sg_deliver_recovery_load(cfg.recovery_key, &j.recovery, &err) < 0) {
		fprintf(stderr, "sealgate seal-mailbox: %s\n", sg_error_msg(&err));
		ret = SG_EXIT_CONFIG;
		goto out;
	}
	ret = SG_EXIT_FAIL;
	/* the journal first: its lock keeps a second run out of the tmp/ clean-up */
	if (sg_journal_open(j.root, JOURNAL_NAME, &j.journal, &err) < 0 ||
	    sg_maildir_list_all(j.root, TMP_TAG, &j.paths, &j.n_paths, &err) < 0) {
		fprintf(stderr, "sealgate seal-mailbox: %s\n", sg_error_msg(&err));
		goto out;
	}
	j.tty = isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &j.start);
	printf("seal-mailbox: %zu message(s) in %s and its sub-folders, key %s\n", j.n_paths,
	       j.root, sg_key_fingerprint(j.key));
	fflush(stdout);
	for (size_t i = 0; i < j.n_paths; i++) {
		seal_one(&j, j.paths[i]);
		progress(&j, i + 1, i + 1 == j.n_paths);
	}
	summary(&j);
	ret = j.failed == 0 ? SG_EXIT_OK : SG_EXIT_FAIL;
	/* complete and clean: nothing to resume; a later run reads everything */
	sg_journal_close(&j.journal, j.failed == 0);
	if (j.resync_cmd[0] != '\0' && sg_maildir_resync(j.resync_cmd, argv[optind], j.root, &err) < 0) {
		fprintf(stderr, "sealgate seal-mailbox: %s\n", sg_error_msg(&err));
		ret = SG_EXIT_FAIL;
	}
out:
	sg_journal_close(&j.journal, false);
	sg_maildir_rels_free(&j.paths, &j.n_paths);
	for (size_t i = 0; i < j.n_folders; i++)
		free(j.folders[i].name);
	free(j.folders);
	for (size_t i = 0; i < j.failed; i++) {
		free(j.fails[i].name);
		free(j.fails[i].reason);
	}
	free(j.fails);
	sg_key_free(&j.key);
	sg_key_free(&j.recovery);
	sg_config_clear(&cfg);
	sg_error_clear(&err);
	return ret;
}
