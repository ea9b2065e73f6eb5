/* rename: rename, renameat, renameat2. Overwriting an existing target
 * destroys it; that target is what a snapshot keeps. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "guard.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#endif

/* Judge, then rename between the two directories that were judged. */
static int rename_at(struct ag_call *c, int olddir, const char *old, int newdir,
		     const char *new, unsigned flags)
{
	struct stat st;

	ag_begin(c, AG_OP_RENAME);
	if (ag_set_path(c, olddir, old) < 0 || ag_set_target(c, newdir, new) < 0)
		return ag_refuse(c);
	if ((flags & RENAME_NOREPLACE) && c->op.target_exists &&
	    fstatat(c->at.fd, c->at.name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		/* mv's probe: it fails by itself and changes nothing, so it is
		 * no operation (and no snapshot). */
		c->fail_errno = EEXIST;
		return ag_refuse(c);
	}
	/* Neither replaces anything. */
	if (flags & (RENAME_NOREPLACE | RENAME_EXCHANGE))
		c->op.target_exists = 0;
	if (ag_check(c) < 0)
		return ag_refuse(c);
	int rc = flags ? AG_REAL(renameat2)(c->at.fd, c->at.name, c->tat.fd, c->tat.name, flags)
		       : AG_REAL(renameat)(c->at.fd, c->at.name, c->tat.fd, c->tat.name);
	return ag_end(c, rc);
}

AG_HOOK(int, rename, (const char *old, const char *new), (old, new))
{
	struct ag_call c;

	return rename_at(&c, AT_FDCWD, old, AT_FDCWD, new, 0);
}

AG_HOOK(int, renameat, (int olddir, const char *old, int newdir, const char *new),
	(olddir, old, newdir, new))
{
	struct ag_call c;

	return rename_at(&c, olddir, old, newdir, new, 0);
}

AG_HOOK(int, renameat2, (int olddir, const char *old, int newdir, const char *new,
			 unsigned flags), (olddir, old, newdir, new, flags))
{
	struct ag_call c;

	return rename_at(&c, olddir, old, newdir, new, flags);
}
