/* rename: rename, renameat, renameat2. Overwriting an existing target
 * destroys it; that target is what a snapshot keeps. */
#include <fcntl.h>
#include <stdio.h>

#include "guard.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#endif

static int guard_rename(struct ag_call *c, int olddir, const char *old, int newdir,
			const char *new, unsigned flags)
{
	if (ag_set_path(c, olddir, old) < 0 || ag_set_target(c, newdir, new) < 0)
		return -1;
	/* Neither replaces anything. */
	if (flags & (RENAME_NOREPLACE | RENAME_EXCHANGE))
		c->op.target_exists = 0;
	return ag_check(c);
}

AG_EXPORT int rename(const char *old, const char *new)
{
	struct ag_call c;

	if (!ag_begin(&c, AG_OP_RENAME))
		return AG_REAL(rename)(old, new);
	if (guard_rename(&c, AT_FDCWD, old, AT_FDCWD, new, 0) < 0)
		return ag_refuse(&c);
	return ag_end(&c, ag_real.rename(old, new));
}

AG_EXPORT int renameat(int olddir, const char *old, int newdir, const char *new)
{
	struct ag_call c;

	if (!ag_begin(&c, AG_OP_RENAME))
		return AG_REAL(renameat)(olddir, old, newdir, new);
	if (guard_rename(&c, olddir, old, newdir, new, 0) < 0)
		return ag_refuse(&c);
	return ag_end(&c, ag_real.renameat(olddir, old, newdir, new));
}

AG_EXPORT int renameat2(int olddir, const char *old, int newdir, const char *new,
			unsigned flags)
{
	struct ag_call c;

	if (!ag_begin(&c, AG_OP_RENAME))
		return AG_REAL(renameat2)(olddir, old, newdir, new, flags);
	if (guard_rename(&c, olddir, old, newdir, new, flags) < 0)
		return ag_refuse(&c);
	return ag_end(&c, ag_real.renameat2(olddir, old, newdir, new, flags));
}
