/* The Maildir++ folder walk (root + ".Name" sub-folders): one listing of
 * every message for rekey and seal-mailbox, tmp/ leftovers cleaned per folder. */
#include "deliver/folders.h"
#include "deliver/journal.h"
#include "util/mem.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct list {
	char **rels;
	size_t n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* folder/sub into l as "[folder/]sub/NAME". 1 listed, 0 missing, -1. */
static int list_sub(struct list *l, const char *root, const char *folder, const char *sub,
		    struct sg_error *err)
{
	char *pre = folder[0] != '\0' ? sg_asprintf("%s/%s", folder, sub) : sg_strdup(sub);
	char *dir = sg_asprintf("%s/%s", root, pre);
	DIR *d = opendir(dir);
	struct dirent *de;
	int ret = -1;

	if (d == NULL) {
		if (errno == ENOENT || errno == ENOTDIR) {
			ret = 0;
			goto out;
		}
		sg_error_set(err, "%s: %s", dir, strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		l->rels = sg_reallocarray(l->rels, l->n + 1, sizeof(*l->rels));
		l->rels[l->n++] = sg_asprintf("%s/%s", pre, de->d_name);
	}
	closedir(d);
	ret = 1;
out:
	free(pre);
	free(dir);
	return ret;
}

/* One folder: leftovers out of its tmp/, then cur/ and new/. 1 a mailbox
 * folder (cur/ or new/ there), 0 not one, -1. */
static int list_folder(struct list *l, const char *root, const char *folder, const char *tag,
		       struct sg_error *err)
{
	char *dir = folder[0] != '\0' ? sg_asprintf("%s/%s", root, folder) : sg_strdup(root);
	int c, n;

	if (tag != NULL)
		sg_journal_remove_leftovers(dir, tag);
	free(dir);
	if ((c = list_sub(l, root, folder, "cur", err)) < 0 ||
	    (n = list_sub(l, root, folder, "new", err)) < 0)
		return -1;
	return c > 0 || n > 0;
}

static bool is_subfolder(const char *root, const char *name)
{
	struct stat st;
	char *p;
	bool dir;

	/* Maildir++: ".Name"; "." and ".." are no folders */
	if (name[0] != '.' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	p = sg_asprintf("%s/%s", root, name);
	dir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	free(p);
	return dir;
}

int sg_maildir_list_all(const char *root, const char *tag, char ***rels_r, size_t *n_r,
			struct sg_error *err)
{
	struct list l = { NULL, 0 };
	DIR *d = NULL;
	struct dirent *de;
	int ret = -1, r;

	if ((r = list_folder(&l, root, "", tag, err)) < 0)
		goto out;
	if (r == 0) {
		sg_error_set(err, "%s: no cur/ or new/: not a Maildir", root);
		goto out;
	}
	if ((d = opendir(root)) == NULL) {
		sg_error_set(err, "%s: %s", root, strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (is_subfolder(root, de->d_name) && list_folder(&l, root, de->d_name, tag, err) < 0)
			goto out;
	}
	qsort(l.rels, l.n, sizeof(*l.rels), cmp_str);
	*rels_r = l.rels;
	*n_r = l.n;
	l.rels = NULL;
	l.n = 0;
	ret = 1;
out:
	if (d != NULL)
		closedir(d);
	sg_maildir_rels_free(&l.rels, &l.n);
	return ret;
}

void sg_maildir_rels_free(char ***rels, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*rels)[i]);
	free(*rels);
	*rels = NULL;
	*n = 0;
}

const char *sg_maildir_rel_split(const char *rel, char **folder_r)
{
	/* messages are "sub/NAME" (root) or "FOLDER/sub/NAME": two slashes */
	const char *last = strrchr(rel, '/');
	const char *sub = last;

	while (sub != NULL && sub > rel && sub[-1] != '/')
		sub--;
	if (last == NULL || sub == rel) {
		*folder_r = sg_strdup("");
		return rel;
	}
	*folder_r = sg_strndup(rel, (size_t)(sub - rel) - 1);
	return sub;
}
