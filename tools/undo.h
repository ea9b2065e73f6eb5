/*
 * A restore is an operation like any other: a session of its own in the
 * log, whose snapshots keep whatever it replaces or removes and whose rows
 * say what it made where nothing was (kind 'absent'), so that restoring
 * the restore's session puts back what it displaced. What it left at each
 * path goes into the ends table, as `run` records what a session left
 * (cli_record_ends): a later restore of it tells a hand edit made since
 * (a conflict) from its own result.
 */
#ifndef AGENTGUARD_UNDO_H
#define AGENTGUARD_UNDO_H

#include <sys/stat.h>

#include "cli.h"
#include "session.h"
#include "spool.h"

struct undo_end;

struct undo {
	struct cli_db *d;
	char id[AG_SESSION_ID_MAX];
	struct ag_spool sp;
	int on;                     /* recording: the session row is there */
	int pending;                /* begun, the row not made yet */
	int argc;
	char **argv;
	char *workspace, *home, *undoes;
	long kept;                  /* what was displaced and kept */
	struct undo_end *ends;      /* what restore left, for its own undo */
	size_t nends, capends;
};

/* Start the restore's session (workspace and home: where its own undo
 * may write); its row is made with the first thing to record, and if it
 * cannot be, nothing is displaced (said once). 0. */
int undo_begin(struct undo *u, struct cli_db *d, int argc, char **argv,
	       const char *workspace, const char *home, const char *undoes);

/* Keep what is at dir/name (shown as path) before restore replaces it
 * (how = AG_SNAP_TAKE: a hard link, the rename over it is atomic), writes
 * into its inode or changes its mode (AG_SNAP_COPY), or removes it
 * (AG_SNAP_MOVE: moved into the store, which removes it; a directory is
 * recorded and left for the caller to rmdir). 0 kept (or nothing was
 * there), -1 with errno: then it must not be displaced. */
int undo_keep(struct undo *u, int dir, const char *name, const char *path, int how);

/* A snapshot restore takes itself (a server pre-image of what it
 * displaces): undo_prepare names it in the restore's session (s->id,
 * s->store, s->abs, its directory made); the caller fills the rest and
 * undo_record records it. 0, or -1 with errno. */
int undo_prepare(struct undo *u, struct ag_snapshot *s);
int undo_record(struct undo *u, const char *path, const char *reason, const struct ag_snapshot *s);

/* Keep the refs of repository r (shown as path, its git dir) before
 * restore moves them: a git record in the restore's session (gitrefs.h),
 * so restoring that session puts them back. 0, or -1 with errno. */
struct ag_git_repo;
int undo_keep_git(struct undo *u, const struct ag_git_repo *r, const char *path);

/* Restore made path where nothing was (a directory when is_dir). */
int undo_made(struct undo *u, const char *path, int is_dir);

/* What restore left at path (dir/name; sha256 of a file when known, else
 * hashed here; absent when nothing is there now). */
void undo_left(struct undo *u, const char *path, int dir, const char *name, const char *sha);

/* Finish: the rows into the log, what was left into ends, the session's
 * end. Prints the command that undoes the restore when it displaced or
 * made anything. 0 or -1. */
int undo_end(struct undo *u, int quiet);

/* What each path of a session's snapshots (and the names its renames
 * made) holds now: rows of ends for session. `run` calls it when the
 * agent is gone. 0 or -1. */
int cli_record_ends(struct cli_db *d, const char *session);

/* What is at dir/name is what ends recorded (kind, and a file's content:
 * its sha256 unless inode, size and times are those recorded). */
struct end_state {
	int known;                  /* a row was found */
	char kind[16];
	int64_t size, mtime_ns, ctime_ns, ino;
	char sha256[AG_HASH_HEX];
	char link_target[AG_PATH_MAX];
};
/* The row of ends for session and path into e (e->known 0: none); *cache
 * holds the statement between calls (the caller finalizes it). */
int end_lookup(struct cli_db *d, sqlite3_stmt **cache, const char *session, const char *path,
	       struct end_state *e);
int end_matches(int dir, const char *name, const struct end_state *e);

#endif
