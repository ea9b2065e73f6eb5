/* delete: unlink, unlinkat, remove, rmdir. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"

/* Judge a delete and carry it out in the directory that was judged:
 * refused, done by the snapshot (moved into the store), or the real call. */
static int delete_at(struct ag_call *c, int dirfd, const char *path, int flags)
{
	ag_begin(c, AG_OP_DELETE);
	if (ag_set_path(c, dirfd, path) < 0)
		return ag_refuse(c);
	c->op.is_dir = (flags & AT_REMOVEDIR) != 0;
	switch (ag_check(c)) {
	case -1: return ag_refuse(c);
	case 1: return ag_end(c, 0);
	default: return ag_end(c, AG_REAL(unlinkat)(c->at.fd, c->at.name, flags));
	}
}

AG_HOOK(int, unlink, (const char *path), (path))
{
	struct ag_call c;

	return delete_at(&c, AT_FDCWD, path, 0);
}

AG_HOOK(int, unlinkat, (int dirfd, const char *path, int flags), (dirfd, path, flags))
{
	struct ag_call c;

	return delete_at(&c, dirfd, path, flags);
}

AG_HOOK(int, rmdir, (const char *path), (path))
{
	struct ag_call c;

	return delete_at(&c, AT_FDCWD, path, AT_REMOVEDIR);
}

/* glibc's remove() reaches unlink/rmdir without the PLT: it is unlink, or
 * rmdir for a directory. */
AG_HOOK(int, remove, (const char *path), (path))
{
	struct ag_call c;
	struct stat st;
	int is_dir = path && lstat(path, &st) == 0 && S_ISDIR(st.st_mode);

	return delete_at(&c, AT_FDCWD, path, is_dir ? AT_REMOVEDIR : 0);
}
