/*
 * restore of a git record (a snapshot of kind "git", lib/gitrefs.h): the
 * refs it recorded are put back in one `git update-ref --stdin`
 * transaction (each checked against its value now, so nothing moved
 * meanwhile is overwritten unseen), HEAD and the stash's reflog too; what
 * they pointed to before is kept as a git record of the restore's own
 * session. For a push, the remote cannot be changed from here: the exact
 * `git push` that puts it back is printed, and run with --push.
 */
#ifndef AGENTGUARD_GITRESTORE_H
#define AGENTGUARD_GITRESTORE_H

#include "undo.h"

struct git_restore {
	int dry_run, push, quiet;
	int session;                 /* a session restore: .git's files came back first */
	struct undo *u;              /* NULL: a dry run, nothing is kept */
	long restored, failed;       /* refs put back, items that failed */
};

/* Restore snapshot id, whose record is the store file `record` (its
 * sha256 already checked) of the repository at gitdir. */
void git_restore_item(struct git_restore *g, const char *id, const char *record,
		      const char *gitdir);

/* What a record holds, for agentguard show: its lines, made readable. */
int git_record_show(const char *record, FILE *out);

/* agentguard diff: each recorded ref against what it is now ("same" when
 * none moved). 0 same, 1 different, -1 unreadable. */
int git_record_diff(const char *record, FILE *out);

#endif
