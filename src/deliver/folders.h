/* The folders of a Maildir++ mailbox (the root and every ".Name" sub-folder)
 * and their messages: one listing shared by the in-place walks (rekey, seal-mailbox). */
#ifndef SG_DELIVER_FOLDERS_H
#define SG_DELIVER_FOLDERS_H

#include <stddef.h>

#include "util/error.h"

/* The messages of root and of every Maildir++ sub-folder: a directory
 * root/.NAME holding cur/ or new/ (nested folders are flat: ".Lists.foo").
 * Names starting with '.' inside cur/ and new/ are no messages. Each entry
 * of *rels_r is relative to root, "cur/NAME" or ".Sent/new/NAME", sorted
 * (owned, free with sg_maildir_rels_free). tag: when not NULL, each
 * folder's tmp/ is first cleaned of a killed walk's leftovers
 * (sg_journal_remove_leftovers). A sub-folder lacking cur/ or new/ is
 * listed by what it has; one that cannot be read, or a root without cur/
 * and new/, is an error. 1 or -1 with err. */
int sg_maildir_list_all(const char *root, const char *tag, char ***rels_r, size_t *n_r,
			struct sg_error *err) SG_WARN_UNUSED;

void sg_maildir_rels_free(char ***rels, size_t *n);

/* Split rel ("cur/NAME" or ".Sent/cur/NAME") into its folder ("" for the
 * root, ".Sent"; owned) and the part inside it ("cur/NAME", pointing into
 * rel). */
const char *sg_maildir_rel_split(const char *rel, char **folder_r);

#endif
