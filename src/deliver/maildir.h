/* Writing into a Maildir the way qmail's maildir(5) and Dovecot expect:
 * tmp/ -> write -> fsync -> rename into new/ -> fsync new/, so that a
 * message is either wholly there or not at all, and durable when we say so. */
#ifndef SG_DELIVER_MAILDIR_H
#define SG_DELIVER_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

/* Expand a path template for an address: %u the whole address, %n its
 * local part, %d its domain (all lower-cased), %% a '%'. Parts that could
 * leave the tree ('/', a leading '.', control characters) are refused.
 * 1 with *path_r (owned), or -1. */
int sg_maildir_expand(const char *tmpl, const char *addr, char **path_r, struct sg_error *err)
	SG_WARN_UNUSED;

/* Create dir and its tmp/, new/, cur/ (0700, parents too) if missing. 1 or -1. */
int sg_maildir_ensure(const char *dir, struct sg_error *err) SG_WARN_UNUSED;

/* A fresh unique base name "SECS.MusecPpidQcounter.host" (maildir(5);
 * '/' and ':' in the host name escaped as \057 and \072). Owned. */
char *sg_maildir_unique(void);

/* The on-disk bytes of a CRLF message (bare LF lines, as Maildir stores
 * them): their count. W= is the CRLF size (RFC 822 size, Dovecot). */
size_t sg_maildir_lf_size(const unsigned char *msg, size_t len);

/* Write msg (CRLF line ends; stored with LF) into tmp/ under a unique name,
 * fsync it, rename it into new/ as NAME,S=size,W=crlfsize and fsync new/.
 * The folders are made (sg_maildir_ensure) when missing. On any failure nothing is left in tmp/ or new/. 1 with *path_r (the
 * final path, owned; may be NULL), or -1 with err ("disk full", ...). */
int sg_maildir_deliver(const char *dir, const unsigned char *msg, size_t len, char **path_r,
		       struct sg_error *err) SG_WARN_UNUSED;

/* Write msg (CRLF) with LF line ends to the open file fd and fsync it.
 * 1 or -1 (errno text in err). */
int sg_maildir_write_fd(int fd, const unsigned char *msg, size_t len, struct sg_error *err)
	SG_WARN_UNUSED;

/* Tell the mailbox server that files of a Maildir changed under it (after
 * rekey, seal-mailbox): run cmd with /bin/sh -c, the user as $1 and dir as
 * $2 (arguments, never spliced into the command text). 1 exit 0; -1 with
 * the exit status or signal in err. */
int sg_maildir_resync(const char *cmd, const char *user, const char *dir, struct sg_error *err)
	SG_WARN_UNUSED;

/* name with its maildir++ size fields saying s (S=, the file's size) and
 * w (W=, the size with CRLF line ends, RFC822.SIZE): "BASE,S=1,W=2,X=y:2,FS"
 * -> "BASE,S=s,W=w,X=y:2,FS"; the base, other fields and flags kept. add:
 * a missing S= or W= is appended (else a name without them stays so).
 * Owned. */
char *sg_maildir_sized_name(const char *name, size_t s, size_t w, bool add);

/* dir/name holds s bytes (w with CRLF line ends): rename it so that its
 * size fields say so (sg_maildir_sized_name, add as there). 1 renamed, 0
 * they did already, -1 with err. The caller fsyncs dir. */
int sg_maildir_fix_sizes(const char *dir, const char *name, size_t s, size_t w, bool add,
			 struct sg_error *err) SG_WARN_UNUSED;

/* The unique part of a Maildir file name: up to the first ',' or ':'. Owned. */
char *sg_maildir_base(const char *name);

/* Where the message with this base name is now in folder: cur/ or new/
 * (the mailbox server moves new/ -> cur/ and changes flags in the name;
 * maildir(5): the content never changes). 1 with *sub_r ("cur"/"new",
 * static) and *name_r (owned); 0 gone (expunged). */
int sg_maildir_locate(const char *folder, const char *base, const char **sub_r, char **name_r);

/* Put tmp (a whole, fsynced file) in place of the message folder/sub/name
 * and unlink the old content: renameat2(RENAME_EXCHANGE), so that a file
 * renamed meanwhile is followed by its base name and never comes back as
 * a second copy, and its flags are kept. The caller fsyncs the directory.
 * 1 with *sub_r and *name_r (where it is now, owned); 0 expunged meanwhile
 * (tmp removed); -1 with err (tmp removed). */
int sg_maildir_replace(const char *folder, const char *sub, const char *name, const char *tmp,
		       const char **sub_r, char **name_r, struct sg_error *err) SG_WARN_UNUSED;

/* fsync a directory (after a rename into it). 1 or -1. */
int sg_maildir_sync_dir(const char *dir, struct sg_error *err) SG_WARN_UNUSED;

#endif
