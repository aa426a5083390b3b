/* The journal of a walk that rewrites a Maildir's messages in place (rekey,
 * seal-mailbox): what an earlier, interrupted run did, so that a re-run resumes. */
#ifndef SG_DELIVER_JOURNAL_H
#define SG_DELIVER_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* DIR/NAME (one journal at the Maildir root for all its folders), one line
 * per step, keyed by the message's base name (the part of a Maildir name
 * before ',' or ':', which survives the mailbox server's renames) and, in a
 * Maildir++ sub-folder, its folder: "BASE" or ".Sent/BASE" (' ', '%' and
 * control characters as %XX). The same base name can be in two folders:
 * Dovecot's IMAP COPY hard-links a message under its base name. "begin BASE" once the new content is whole and fsynced in tmp/,
 * just before it replaces the message; "done BASE SIZE" once the
 * replacement and its new name are fsynced (SIZE: the file's size then).
 * Lines are flushed, not fsynced: "done" comes after the directory fsync,
 * so a line lost to a power cut costs a re-read, never a wrong skip. */
struct sg_journal;

enum sg_journal_state {
	SG_JOURNAL_NONE = 0, /* not in the journal */
	SG_JOURNAL_BEGUN,    /* begun, not done: stopped around the exchange, so
			      * the message holds the old content or the new */
	SG_JOURNAL_DONE,     /* replaced */
};

/* Read DIR/NAME (what earlier runs wrote; the last line for a base name
 * counts) and keep it open for appending, made if missing. An exclusive
 * lock on it refuses a second run on the same Maildir at the same time.
 * 1 with *j_r; -1 with err. */
int sg_journal_open(const char *dir, const char *name, struct sg_journal **j_r,
		    struct sg_error *err) SG_WARN_UNUSED;

/* What earlier runs wrote for the message named name: a Maildir file name
 * in the root folder, "FOLDER/NAME" in a sub-folder (".Sent/1.M2P3.host:2,S");
 * its base is taken. DONE sets *size_r to the size then (-1: not
 * recorded, a journal of an older version); size_r may be NULL. */
enum sg_journal_state sg_journal_lookup(const struct sg_journal *j, const char *name,
					int64_t *size_r);

/* Append "begin KEY" / "done KEY SIZE" for the message named name (as in
 * sg_journal_lookup). */
void sg_journal_begin(struct sg_journal *j, const char *name);
void sg_journal_done(struct sg_journal *j, const char *name, uint64_t size);

/* Close and unlock; remove: delete the file first (a run that finished
 * with no failure: nothing is left to resume). */
void sg_journal_close(struct sg_journal **j, bool remove);

/* Files in folder/tmp/ named "...<tag><digits>" (a walk's NAME TAG PID),
 * left by a killed run (their message is whole: old or new content; the
 * file may be the old plaintext, exchanged out): unlinked. Other writers'
 * files in tmp/ (a delivery in progress) stay. */
void sg_journal_remove_leftovers(const char *folder, const char *tag);

#endif
