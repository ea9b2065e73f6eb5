/*
 * The snapshot store: state_dir/snapshots/<session>/<id>.
 *
 *   kind 'file'     the file itself (moved in when on the same filesystem,
 *                   else reflinked or copied)
 *   kind 'symlink'  the symlink itself (its target text is also in the DB)
 *   kind 'dir'      nothing stored: an empty directory's mode/owner/times
 *   kind 'sqlite'   an online-backup copy of a SQLite database
 *
 * The metadata travels with the event through the spool into the audit
 * DB's `snapshots` table (see audit.h).
 */
#ifndef AGENTGUARD_SNAPSHOT_H
#define AGENTGUARD_SNAPSHOT_H

#include <stdint.h>
#include <sys/stat.h>

#include "agentguard.h"

#define AG_SNAP_ID_MAX 24

struct ag_snapshot {
	char id[AG_SNAP_ID_MAX];       /* 12 random hex digits */
	const char *kind;              /* "file" | "symlink" | "dir" | "sqlite" */
	char path[AG_PATH_MAX];        /* original absolute path */
	char store[AG_PATH_MAX];       /* relative to state dir; "" for dir */
	char link_target[AG_PATH_MAX]; /* symlink only */
	struct stat st;                /* original metadata */
	int moved;                     /* 1: the original is gone (moved into
	                                  the store): the operation is done */
};

/*
 * Preserve what deleting/overwriting/truncating `path` would destroy.
 *   how = AG_SNAP_TAKE:  move it into the store when possible (delete of a
 *                        file or symlink, rename-over of a target)
 *   how = AG_SNAP_COPY:  leave the original in place (truncate)
 * 0 on success (s filled), 1 if there is nothing to preserve (path does
 * not exist), -1 with errno when the snapshot could not be taken.
 */
enum { AG_SNAP_TAKE, AG_SNAP_COPY };
int ag_snapshot_take(const char *state_dir, const char *session,
		     const char *path, int how, uint64_t max_bytes,
		     struct ag_snapshot *s);

/* Copy src to dst (reflink, else copy_file_range, else read/write),
 * creating dst with `mode`, never following a symlink at dst. */
int ag_copy_file(const char *src, const char *dst, mode_t mode);

#endif
