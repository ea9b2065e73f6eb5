/*
 * cwd: chdir and fchdir. Nothing about them is judged; they only wait
 * while another thread's call that named a file by the cwd's name has not
 * made its real call yet (guard.c, "the cwd"), so the directory the rules
 * saw is the one the call acts in.
 */
#include <errno.h>
#include <unistd.h>

#include "guard.h"

AG_HOOK(int, chdir, (const char *path), (path))
{
	if (ag_cwd_move_begin() < 0)
		return -1;
	int rc = AG_REAL(chdir)(path);
	int e = errno;
	ag_cwd_move_end();
	errno = e;
	return rc;
}

AG_HOOK(int, fchdir, (int fd), (fd))
{
	if (ag_cwd_move_begin() < 0)
		return -1;
	int rc = AG_REAL(fchdir)(fd);
	int e = errno;
	ag_cwd_move_end();
	errno = e;
	return rc;
}
