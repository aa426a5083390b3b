/* The resume journal of the in-place Maildir walks (rekey, seal-mailbox):
 * "begin"/"done" lines per message base name, read back sorted for lookups. */
#include "deliver/journal.h"
#include "deliver/maildir.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

struct entry {
	char *base;
	size_t seq;                 /* line number: the last line for a base counts */
	enum sg_journal_state state;
	int64_t size;
};

struct sg_journal {
	char *path;
	FILE *f;
	struct entry *e;            /* sorted by base, one per base (after load) */
	size_t n;
};

static const struct {
	const char *word;
	enum sg_journal_state state;
} words[] = {
	{ "begin ", SG_JOURNAL_BEGUN },
	{ "done ", SG_JOURNAL_DONE },
};

/* The journal key of a message: its base name in the root folder, its
 * folder and base ("FOLDER/BASE") in a Maildir++ sub-folder, so that the
 * same base name in two folders (Dovecot's COPY hard-links a message under
 * its own base name) are two entries. Bytes that would break a line (' ',
 * control characters) and '%' are written %XX; base names never hold them,
 * so a journal of an older version (bare base names, root folder) reads the same. */
static char *key_of(const char *name)
{
	const char *slash = strrchr(name, '/');
	char *base = sg_maildir_base(slash != NULL ? slash + 1 : name);
	char *raw = slash != NULL ? sg_asprintf("%.*s/%s", (int)(slash - name), name, base)
				  : sg_strdup(base);
	struct sg_buf b;

	sg_buf_init(&b, 3 * strlen(raw) + 16);
	for (const unsigned char *p = (const unsigned char *)raw; *p != '\0'; p++) {
		bool esc = *p <= ' ' || *p == 0x7f || *p == '%';
		if (!(esc ? sg_buf_printf(&b, "%%%02X", *p) : sg_buf_append(&b, p, 1)))
			sg_panic("journal key too long"); /* sized above: cannot happen */
	}
	free(raw);
	free(base);
	return (char *)sg_buf_steal(&b, NULL);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->base, y->base);
	return c != 0 ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* "begin BASE" or "done BASE [SIZE]"; anything else (a line cut short by
 * a kill) is ignored. */
static void add_line(struct sg_journal *j, char *line, size_t seq)
{
	line[strcspn(line, "\n")] = '\0';
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t wl = strlen(words[i].word);
		if (strncmp(line, words[i].word, wl) != 0 || line[wl] == '\0')
			continue;
		char *base = line + wl, *sp = strchr(base, ' ');
		int64_t size = -1;
		if (sp != NULL) {
			*sp = '\0';
			char *end = NULL;
			errno = 0;
			long long v = strtoll(sp + 1, &end, 10);
			if (errno == 0 && end != sp + 1 && *end == '\0' && v >= 0)
				size = v;
		}
		j->e = sg_reallocarray(j->e, j->n + 1, sizeof(*j->e));
		j->e[j->n++] = (struct entry){ sg_strdup(base), seq, words[i].state, size };
		return;
	}
}

/* Sort, then keep the last entry of each base. */
static void settle(struct sg_journal *j)
{
	size_t out = 0;
	if (j->n == 0)
		return;
	qsort(j->e, j->n, sizeof(*j->e), cmp_entry);
	for (size_t i = 0; i < j->n; i++) {
		if (i + 1 < j->n && strcmp(j->e[i].base, j->e[i + 1].base) == 0) {
			free(j->e[i].base);
			continue;
		}
		j->e[out++] = j->e[i];
	}
	j->n = out;
}

static void load(struct sg_journal *j, FILE *f)
{
	char *line = NULL;
	size_t cap = 0, seq = 0;
	while (getline(&line, &cap, f) > 0)
		add_line(j, line, seq++);
	free(line);
	settle(j);
}

static void journal_free(struct sg_journal *j)
{
	for (size_t i = 0; i < j->n; i++)
		free(j->e[i].base);
	free(j->e);
	free(j->path);
	free(j);
}

int sg_journal_open(const char *dir, const char *name, struct sg_journal **j_r,
		    struct sg_error *err)
{
	struct sg_journal *j = sg_calloc(1, sizeof(*j));
	j->path = sg_asprintf("%s/%s", dir, name);
	/* "a+": made if missing, read from the start, written at the end */
	j->f = fopen(j->path, "a+e");
	if (j->f == NULL) {
		sg_error_set(err, "journal %s: %s", j->path, strerror(errno));
		goto fail;
	}
	if (flock(fileno(j->f), LOCK_EX | LOCK_NB) < 0) {
		sg_error_set(err, "journal %s: %s", j->path,
			     errno == EWOULDBLOCK ? "locked: another run is working on this Maildir"
						  : strerror(errno));
		goto fail;
	}
	rewind(j->f);
	load(j, j->f);
	*j_r = j;
	return 1;
fail:
	if (j->f != NULL)
		fclose(j->f);
	journal_free(j);
	return -1;
}

static int cmp_key(const void *key, const void *e)
{
	return strcmp(key, ((const struct entry *)e)->base);
}

enum sg_journal_state sg_journal_lookup(const struct sg_journal *j, const char *name,
					int64_t *size_r)
{
	char *key = key_of(name);
	/* settle() left one entry per base, sorted by base */
	const struct entry *hit = j->n > 0 ? bsearch(key, j->e, j->n, sizeof(*j->e), cmp_key) : NULL;

	free(key);
	if (size_r != NULL)
		*size_r = hit != NULL ? hit->size : -1;
	return hit != NULL ? hit->state : SG_JOURNAL_NONE;
}

static void append(struct sg_journal *j, const char *word, const char *name, const char *tail)
{
	char *b = key_of(name);
	fprintf(j->f, "%s %s%s\n", word, b, tail);
	fflush(j->f);
	free(b);
}

void sg_journal_begin(struct sg_journal *j, const char *name)
{
	append(j, "begin", name, "");
}

void sg_journal_done(struct sg_journal *j, const char *name, uint64_t size)
{
	char *tail = sg_asprintf(" %" PRIu64, size);
	append(j, "done", name, tail);
	free(tail);
}

void sg_journal_close(struct sg_journal **jp, bool remove)
{
	struct sg_journal *j = *jp;
	if (j == NULL)
		return;
	/* unlink while still locked: a run starting now makes a fresh one */
	if (remove)
		unlink(j->path);
	fclose(j->f);
	journal_free(j);
	*jp = NULL;
}

/* name ends in tag followed by digits only (the last occurrence of tag) */
static bool ours(const char *name, const char *tag)
{
	const char *t = NULL;
	for (const char *p = strstr(name, tag); p != NULL; p = strstr(p + 1, tag))
		t = p;
	if (t == NULL)
		return false;
	t += strlen(tag);
	return *t != '\0' && strspn(t, "0123456789") == strlen(t);
}

void sg_journal_remove_leftovers(const char *folder, const char *tag)
{
	char *tmpd = sg_asprintf("%s/tmp", folder);
	DIR *d = opendir(tmpd);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (!ours(de->d_name, tag))
			continue;
		char *p = sg_asprintf("%s/%s", tmpd, de->d_name);
		unlink(p);
		free(p);
	}
	if (d != NULL)
		closedir(d);
	free(tmpd);
}
