/*
 * The snapshot store: state_dir/snapshots/<session>/<id> (the store
 * column of the audit DB has the exact path).
 *
 *   kind 'file'     the file itself: a deleted one is moved in (the move is
 *                   the deletion), an overwritten rename target is
 *                   hard-linked in (the real rename then runs and returns
 *                   exactly what it would); across filesystems, copied
 *   kind 'symlink'  the symlink itself (its target text is also in the DB)
 *   kind 'dir'      nothing stored: an empty directory's mode/owner/times
 *   kind 'sqlite'   an online-backup copy of a SQLite database
 *   kind 'fifo'     nothing stored: restore makes it again (mkfifo)
 *   kind 'device'   nothing stored: a device node's numbers (st_rdev) and
 *                   type are in the metadata; restore, as root, mknods it
 *   kind 'socket'   a record only: a socket is made by whoever listens on
 *                   it, and cannot be restored
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
	const char *kind;              /* "file" | "symlink" | "dir" | "sqlite" |
	                                  "fifo" | "device" | "socket" | "other" */
	const char *path;              /* original absolute path (not owned) */
	char store[160];               /* relative to state dir; "" if none */
	struct stat st;                /* original metadata */
	int moved;                     /* AG_SNAP_MOVE: the original is gone */
	int64_t parent_at, parent_mt;  /* its directory's times before (-1: not
	                                  known); filled in by the guard */
	int64_t btime_ns;              /* the inode's birth time (0: unknown): one
	                                  born during the session is the session's
	                                  own, which a session restore leaves be */
	/* Written before they are read: left uncleared (8 KiB). */
	char link_target[AG_PATH_MAX]; /* symlink only */
	char abs[AG_PATH_MAX];         /* the store entry's absolute path */
	char stage[AG_PATH_MAX];       /* where a copy is made first, under a floor */
};

/* Under the Landlock floor (tools/floor.c) the store takes entries moved
 * or linked into it but cannot be written: a copy is made in stage/ and
 * then moved in. s->stage := that place for s->id; 0, or -1 (too long). */
int ag_snapshot_stage(const char *state_dir, const char *session, struct ag_snapshot *s);

/*
 * Preserve what deleting/overwriting/truncating `path` would destroy. The
 * original stays where it is; the caller then runs the real call.
 *   how = AG_SNAP_MOVE:  a delete: move it into the store when possible,
 *                        which deletes it (s->moved), else as TAKE
 *   how = AG_SNAP_TAKE:  the inode is about to lose this name (rename-over):
 *                        a hard link keeps it, else a copy
 *   how = AG_SNAP_COPY:  the contents are about to change (truncate): copy
 * 0 on success (s filled), 1 if there is nothing to preserve (path does
 * not exist), -1 with errno when the snapshot could not be taken.
 * Directories are never moved: only an empty one can go, and its mode and
 * times are all it had.
 * (snapshots.max_bytes is the guard's to enforce: guard.c keeps a
 * session-wide count.)
 */
enum { AG_SNAP_TAKE, AG_SNAP_COPY, AG_SNAP_MOVE };
int ag_snapshot_take(const char *state_dir, const char *session,
		     const char *path, int how, struct ag_snapshot *s);
/* The same for the entry `name` of the directory dirfd (the guard holds
 * the parent it judged open): path is what the metadata records. */
int ag_snapshot_take_at(const char *state_dir, const char *session, int dirfd,
			const char *name, const char *path, int how, struct ag_snapshot *s);

/* Copy src to dst (reflink, else its data extents with copy_file_range,
 * else read/write; holes stay holes), creating dst with `mode`, never
 * following a symlink at dst. */
int ag_copy_file(const char *src, const char *dst, mode_t mode);

#endif
