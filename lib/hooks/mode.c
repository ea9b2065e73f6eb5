/*
 * mode: chmod, fchmod, fchmodat, chown, fchown, lchown, fchownat.
 *
 * A mode or owner change destroys no byte, but it can give a secret away
 * (a private key from 0600 to 0644 is readable by everyone) or take a file
 * from its owner. It is its own operation, `mode`, rather than a `write`:
 * rules that snapshot every overwrite would otherwise copy a file for each
 * `chmod +x`, and a rule can now say what it means about permissions alone.
 * The subject is the file whose mode changes (a symlink followed, as the
 * call follows it); the record's target says the new and the old value.
 * A snapshot is a copy of the file with its mode and owner, so restore puts
 * both back.
 *
 * The object is held open (O_PATH) while it is judged, and the change is
 * made through that descriptor: a symlink swapped in between changes
 * nothing. A change that changes nothing (the same mode, the same owner)
 * is no operation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"

enum what { W_MODE, W_OWNER };

struct change {
	enum what what;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	char text[80];   /* the record's target */
};

/* Nothing would change: not an operation. */
static int no_change(const struct change *ch, const struct stat *st)
{
	if (ch->what == W_MODE)
		return (ch->mode & 07777) == (st->st_mode & 07777);
	return (ch->uid == (uid_t)-1 || ch->uid == st->st_uid) &&
	       (ch->gid == (gid_t)-1 || ch->gid == st->st_gid);
}

static void describe(struct change *ch, const struct stat *st)
{
	if (ch->what == W_MODE) {
		snprintf(ch->text, sizeof ch->text, "%04o (was %04o)", (unsigned)(ch->mode & 07777),
			 (unsigned)(st->st_mode & 07777));
		return;
	}
	char u[16] = "-", g[16] = "-";
	if (ch->uid != (uid_t)-1)
		snprintf(u, sizeof u, "%u", (unsigned)ch->uid);
	if (ch->gid != (gid_t)-1)
		snprintf(g, sizeof g, "%u", (unsigned)ch->gid);
	snprintf(ch->text, sizeof ch->text, "%s:%s (was %u:%u)", u, g, (unsigned)st->st_uid,
		 (unsigned)st->st_gid);
}

/* The change, made on the descriptor that was judged (the guard's O_PATH
 * one; a caller's own goes to fchmod/fchown as it came). */
static int apply(const struct change *ch, int fd, int is_link)
{
	if (ch->what == W_OWNER)
		return AG_REAL(fchownat)(fd, "", ch->uid, ch->gid, AT_EMPTY_PATH);
	if (is_link) {
		errno = EOPNOTSUPP;   /* Linux keeps no mode on a symlink */
		return -1;
	}
	/* fchmod refuses an O_PATH descriptor; its /proc link reaches the
	 * same inode. */
	char proc[40];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	return AG_REAL(chmod)(proc, ch->mode);
}

/* The guarded body of all seven. fd >= 0: fchmod/fchown on it (path NULL);
 * else (dirfd, path), following a final symlink when `follow`. */
static int change_at(struct ag_call *c, struct change *ch, int fd, int dirfd,
		     const char *path, int follow, int (*real)(const struct change *, int,
							       const char *, int, int),
		     int flags)
{
	struct stat st;
	int obj = fd, own = 0;

	ag_begin(c, AG_OP_MODE);
	if (fd < 0) {
		if (!path || ag_set_path(c, dirfd, path) < 0) {
			ag_skip(c);
			return real(ch, fd, path, dirfd, flags);
		}
		obj = AG_REAL(openat)(c->at.fd, c->at.name,
				      O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
		if (obj < 0) {
			ag_skip(c);
			return real(ch, fd, path, dirfd, flags);   /* fails the same way */
		}
		own = 1;
	}
	int rc = -1;
	if (fstat(obj, &st) < 0 || no_change(ch, &st)) {
		ag_skip(c);
		rc = real(ch, fd, path, dirfd, flags);
		goto out;
	}
	/* The name of what was opened: the judged entry itself, or what a
	 * symlink there led to. */
	struct stat lst;
	if (!own || !c->op.path || fstatat(c->at.fd, c->at.name, &lst, AT_SYMLINK_NOFOLLOW) < 0 ||
	    lst.st_dev != st.st_dev || lst.st_ino != st.st_ino) {
		if (ag_set_fd_path_at(c, obj, own ? c->at.fd : AT_FDCWD, own ? c->at.name : NULL) < 0) {
			ag_skip(c);
			rc = real(ch, fd, path, dirfd, flags);
			goto out;
		}
	}
	if (!ag_protected(c->op.path) && !ag_rules_name(c, AG_OP_MODE)) {
		ag_skip(c);
		rc = real(ch, fd, path, dirfd, flags);
		goto out;
	}
	describe(ch, &st);
	c->op.target = ch->text;
	/* Judged, kept and changed through the descriptor. */
	if (c->at.owned)
		close(c->at.fd);
	c->at.fd = obj;
	c->at.name = "";
	c->at.owned = 0;
	if (ag_check(c) < 0) {
		rc = ag_refuse(c);
		goto out;
	}
	rc = ag_end(c, own ? apply(ch, obj, S_ISLNK(st.st_mode)) : real(ch, fd, path, dirfd, flags));
out:
	if (own) {
		int e = errno;
		close(obj);
		errno = e;
	}
	return rc;
}

/* The real calls, as the caller made them (for what is not judged). */
static int real_chmod(const struct change *ch, int fd, const char *path, int dirfd, int flags)
{
	if (fd >= 0)
		return AG_REAL(fchmod)(fd, ch->mode);
	if (dirfd == AT_FDCWD && flags == -1)
		return AG_REAL(chmod)(path, ch->mode);
	return AG_REAL(fchmodat)(dirfd, path, ch->mode, flags);
}

static int real_chown(const struct change *ch, int fd, const char *path, int dirfd, int flags)
{
	if (fd >= 0 && flags == -3)
		return AG_REAL(fchownat)(fd, "", ch->uid, ch->gid, AT_EMPTY_PATH);
	if (fd >= 0)
		return AG_REAL(fchown)(fd, ch->uid, ch->gid);
	if (flags == -1)
		return AG_REAL(chown)(path, ch->uid, ch->gid);
	if (flags == -2)
		return AG_REAL(lchown)(path, ch->uid, ch->gid);
	return AG_REAL(fchownat)(dirfd, path, ch->uid, ch->gid, flags);
}

AG_HOOK(int, chmod, (const char *path, mode_t mode), (path, mode))
{
	struct ag_call c;
	struct change ch = {.what = W_MODE, .mode = mode};

	return change_at(&c, &ch, -1, AT_FDCWD, path, 1, real_chmod, -1);
}

AG_HOOK(int, fchmod, (int fd, mode_t mode), (fd, mode))
{
	struct ag_call c;
	struct change ch = {.what = W_MODE, .mode = mode};

	if (fd < 0)
		return AG_REAL(fchmod)(fd, mode);
	return change_at(&c, &ch, fd, AT_FDCWD, NULL, 0, real_chmod, 0);
}

AG_HOOK(int, fchmodat, (int dirfd, const char *path, mode_t mode, int flags),
	(dirfd, path, mode, flags))
{
	struct ag_call c;
	struct change ch = {.what = W_MODE, .mode = mode};

	if (flags & ~AT_SYMLINK_NOFOLLOW)
		return AG_REAL(fchmodat)(dirfd, path, mode, flags);
	return change_at(&c, &ch, -1, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), real_chmod,
			 flags);
}

AG_HOOK(int, chown, (const char *path, uid_t uid, gid_t gid), (path, uid, gid))
{
	struct ag_call c;
	struct change ch = {.what = W_OWNER, .uid = uid, .gid = gid};

	return change_at(&c, &ch, -1, AT_FDCWD, path, 1, real_chown, -1);
}

AG_HOOK(int, lchown, (const char *path, uid_t uid, gid_t gid), (path, uid, gid))
{
	struct ag_call c;
	struct change ch = {.what = W_OWNER, .uid = uid, .gid = gid};

	return change_at(&c, &ch, -1, AT_FDCWD, path, 0, real_chown, -2);
}

AG_HOOK(int, fchown, (int fd, uid_t uid, gid_t gid), (fd, uid, gid))
{
	struct ag_call c;
	struct change ch = {.what = W_OWNER, .uid = uid, .gid = gid};

	if (fd < 0)
		return AG_REAL(fchown)(fd, uid, gid);
	return change_at(&c, &ch, fd, AT_FDCWD, NULL, 0, real_chown, 0);
}

AG_HOOK(int, fchownat, (int dirfd, const char *path, uid_t uid, gid_t gid, int flags),
	(dirfd, path, uid, gid, flags))
{
	struct ag_call c;
	struct change ch = {.what = W_OWNER, .uid = uid, .gid = gid};

	/* AT_EMPTY_PATH: the descriptor itself. */
	if (path && !*path && (flags & AT_EMPTY_PATH) && dirfd >= 0)
		return change_at(&c, &ch, dirfd, AT_FDCWD, NULL, 0, real_chown, -3);
	if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
		return AG_REAL(fchownat)(dirfd, path, uid, gid, flags);
	return change_at(&c, &ch, -1, dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), real_chown,
			 flags);
}
