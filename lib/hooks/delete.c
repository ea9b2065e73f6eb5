/* delete: unlink, unlinkat, remove, rmdir. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"

static int guard_delete(struct ag_call *c, int dirfd, const char *path, int is_dir)
{
	if (ag_set_path(c, dirfd, path) < 0)
		return -1;
	c->op.is_dir = is_dir;
	return ag_check(c);
}

/* Each delete: refused, done by the snapshot (moved into the store), or
 * the real call. */
#define DELETE_BODY(check, real_call)                                           \
	switch (check) {                                                        \
	case -1: return ag_refuse(&c);                                          \
	case 1: return ag_end(&c, 0);                                           \
	default: return ag_end(&c, real_call);                                  \
	}

AG_EXPORT int unlink(const char *path)
{
	struct ag_call c;

	if (!ag_begin(&c, AG_OP_DELETE))
		return AG_REAL(unlink)(path);
	DELETE_BODY(guard_delete(&c, AT_FDCWD, path, 0), ag_real.unlink(path))
}

AG_EXPORT int unlinkat(int dirfd, const char *path, int flags)
{
	struct ag_call c;

	if (!ag_begin(&c, AG_OP_DELETE))
		return AG_REAL(unlinkat)(dirfd, path, flags);
	DELETE_BODY(guard_delete(&c, dirfd, path, (flags & AT_REMOVEDIR) != 0),
		    ag_real.unlinkat(dirfd, path, flags))
}

AG_EXPORT int rmdir(const char *path)
{
	struct ag_call c;

	if (!ag_begin(&c, AG_OP_DELETE))
		return AG_REAL(rmdir)(path);
	DELETE_BODY(guard_delete(&c, AT_FDCWD, path, 1), ag_real.rmdir(path))
}

/* glibc's remove() reaches unlink/rmdir without the PLT. */
AG_EXPORT int remove(const char *path)
{
	struct ag_call c;
	struct stat st;

	if (!ag_begin(&c, AG_OP_DELETE))
		return AG_REAL(remove)(path);
	int is_dir = path && lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
	DELETE_BODY(guard_delete(&c, AT_FDCWD, path, is_dir), ag_real.remove(path))
}
