/*
 * link: a new name for an existing file (link, linkat), a symlink, a FIFO
 * or a device node (symlink, symlinkat, mkfifo, mkfifoat, mknod, mknodat).
 *
 * None of these destroys anything, but each can reach the guard's own
 * files: a hard link to audit.db in the workspace is audit.db, writable
 * under a name no protection knows; a FIFO named *.spool in the spool
 * directory would stall every reader. So they are judged when they touch
 * what the guard owns (always refused) or when the rules name `link`;
 * otherwise they pass through unrecorded.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"

/* 0: go ahead in c->at / c->tat; -1: refuse; 1: not judged, pass. */
static int judge_link(struct ag_call *c, int olddir, const char *old, int follow,
		      int newdir, const char *new)
{
	ag_begin(c, AG_OP_LINK);
	if (old && ag_set_path(c, olddir, old) < 0)
		return -1;
	if (ag_set_target(c, newdir, new) < 0)
		return -1;
	/* Linking through a symlink links what it leads to: named by the
	 * kernel from the directory held (the link's own name may be longer
	 * than PATH_MAX, and realpath stops there). */
	if (old && follow && c->op.path) {
		int fd = AG_REAL(openat)(c->at.fd, c->at.name, O_PATH | O_CLOEXEC);
		char proc[40];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
		ssize_t n = fd < 0 ? -1 : readlink(proc, c->w->scratch, sizeof c->w->scratch - 1);
		if (fd >= 0)
			close(fd);
		if (n > 0 && c->w->scratch[0] == '/') {
			c->w->scratch[n] = 0;
			c->op.path = c->w->scratch;
		}
	}
	if (!ag_protected(c->op.path) && !ag_protected(c->op.target) &&
	    !ag_rules_name(c, AG_OP_LINK)) {
		ag_skip(c);
		return 1;
	}
	c->op.target_exists = 0;
	return ag_check(c) < 0 ? -1 : 0;
}

AG_HOOK(int, link, (const char *old, const char *new), (old, new))
{
	struct ag_call c;

	switch (judge_link(&c, AT_FDCWD, old, 0, AT_FDCWD, new)) {
	case -1: return ag_refuse(&c);
	case 1: return AG_REAL(link)(old, new);
	default: return ag_end(&c, AG_REAL(linkat)(c.at.fd, c.at.name, c.tat.fd, c.tat.name, 0));
	}
}

AG_HOOK(int, linkat, (int olddir, const char *old, int newdir, const char *new, int flags),
	(olddir, old, newdir, new, flags))
{
	struct ag_call c;

	if (old && !*old && (flags & AT_EMPTY_PATH)) {
		/* The file behind a descriptor gets a name. */
		ag_begin(&c, AG_OP_LINK);
		if (ag_set_fd_path(&c, olddir) < 0 || ag_set_target(&c, newdir, new) < 0) {
			ag_skip(&c);
			return AG_REAL(linkat)(olddir, old, newdir, new, flags);
		}
		if (!ag_protected(c.op.path) && !ag_protected(c.op.target) &&
		    !ag_rules_name(&c, AG_OP_LINK)) {
			ag_skip(&c);
			return AG_REAL(linkat)(olddir, old, newdir, new, flags);
		}
		if (ag_check(&c) < 0)
			return ag_refuse(&c);
		return ag_end(&c, AG_REAL(linkat)(olddir, old, c.tat.fd, c.tat.name, flags));
	}
	switch (judge_link(&c, olddir, old, flags & AT_SYMLINK_FOLLOW, newdir, new)) {
	case -1: return ag_refuse(&c);
	case 1: return AG_REAL(linkat)(olddir, old, newdir, new, flags);
	default:
		return ag_end(&c, AG_REAL(linkat)(c.at.fd, c.at.name, c.tat.fd, c.tat.name, flags));
	}
}

/* A symlink's text is not a file operation; its new name is. */
AG_HOOK(int, symlink, (const char *text, const char *new), (text, new))
{
	struct ag_call c;

	switch (judge_link(&c, AT_FDCWD, NULL, 0, AT_FDCWD, new)) {
	case -1: return ag_refuse(&c);
	case 1: return AG_REAL(symlink)(text, new);
	default: return ag_end(&c, AG_REAL(symlinkat)(text, c.tat.fd, c.tat.name));
	}
}

AG_HOOK(int, symlinkat, (const char *text, int newdir, const char *new), (text, newdir, new))
{
	struct ag_call c;

	switch (judge_link(&c, AT_FDCWD, NULL, 0, newdir, new)) {
	case -1: return ag_refuse(&c);
	case 1: return AG_REAL(symlinkat)(text, newdir, new);
	default: return ag_end(&c, AG_REAL(symlinkat)(text, c.tat.fd, c.tat.name));
	}
}

AG_HOOK(int, mkfifo, (const char *path, mode_t mode), (path, mode))
{
	struct ag_call c;

	switch (judge_link(&c, AT_FDCWD, NULL, 0, AT_FDCWD, path)) {
	case -1: return ag_refuse(&c);
	case 1: return AG_REAL(mkfifo)(path, mode);
	default: return ag_end(&c, AG_REAL(mkfifoat)(c.tat.fd, c.tat.name, mode));
	}
}

AG_HOOK(int, mkfifoat, (int dirfd, const char *path, mode_t mode), (dirfd, path, mode))
{
	struct ag_call c;

	switch (judge_link(&c, AT_FDCWD, NULL, 0, dirfd, path)) {
	case -1: return ag_refuse(&c);
	case 1: return AG_REAL(mkfifoat)(dirfd, path, mode);
	default: return ag_end(&c, AG_REAL(mkfifoat)(c.tat.fd, c.tat.name, mode));
	}
}

AG_HOOK(int, mknod, (const char *path, mode_t mode, dev_t dev), (path, mode, dev))
{
	struct ag_call c;

	switch (judge_link(&c, AT_FDCWD, NULL, 0, AT_FDCWD, path)) {
	case -1: return ag_refuse(&c);
	case 1: return AG_REAL(mknod)(path, mode, dev);
	default: return ag_end(&c, AG_REAL(mknodat)(c.tat.fd, c.tat.name, mode, dev));
	}
}

AG_HOOK(int, mknodat, (int dirfd, const char *path, mode_t mode, dev_t dev),
	(dirfd, path, mode, dev))
{
	struct ag_call c;

	switch (judge_link(&c, AT_FDCWD, NULL, 0, dirfd, path)) {
	case -1: return ag_refuse(&c);
	case 1: return AG_REAL(mknodat)(dirfd, path, mode, dev);
	default: return ag_end(&c, AG_REAL(mknodat)(c.tat.fd, c.tat.name, mode, dev));
	}
}
