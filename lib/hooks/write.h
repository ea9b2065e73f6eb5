/*
 * write: overwriting an existing file in place (lib/hooks/write.c). The
 * open family itself lives in truncate.c, which asks these.
 */
#ifndef AGENTGUARD_HOOKS_WRITE_H
#define AGENTGUARD_HOOKS_WRITE_H

#include <sys/stat.h>

#include "guard.h"

/* An open with these flags can overwrite what the file holds. O_WRONLY
 * with O_APPEND cannot (every write lands at the end, and no writable
 * mapping can be made of it); O_RDWR with O_APPEND can, through mmap. */
static inline int ag_write_flags(int flags)
{
	int acc = flags & O_ACCMODE;

	return acc != O_RDONLY && !(acc == O_WRONLY && (flags & O_APPEND));
}

/* The file was already judged for `write` in this session (by any of its
 * processes) and not refused: a later writable open of it is no new
 * operation. */
int ag_write_seen(const struct stat *st);
/* Remember that it was (after its snapshot is kept). */
void ag_write_mark(const struct stat *st);

/* Judge c (begun, op.path set, c->at pointing at the file) as a `write`
 * of the file st describes. 0: go on; 1: not an operation (no rule on
 * write, or seen already; c is left to the caller to skip); -1 refused. */
int ag_write_judge(struct ag_call *c, const struct stat *st);

#endif
