/* The snapshot store: keep what an operation is about to destroy. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stddef.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "floor.h"
#include "snapshot.h"

static void make_id(char *out, size_t outlen)
{
	unsigned char r[6];

	if (getrandom(r, sizeof r, GRND_NONBLOCK) != sizeof r) {
		uint64_t x = (uint64_t)ag_mono_ns() ^ ((uint64_t)getpid() << 24);
		memcpy(r, &x, sizeof r);
	}
	snprintf(out, outlen, "%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
		 r[4], r[5]);
}

/* Copy len bytes at off: in the kernel when it can, else through a buffer. */
static int copy_range(int in, int out, off_t off, off_t len)
{
	char buf[1024];   /* small: snapshots are taken on signal stacks too */
	int kernel = 1, viasend = 1;

	while (len > 0) {
		ssize_t n;
		if (kernel) {
			loff_t oi = off, oo = off;
			n = copy_file_range(in, &oi, out, &oo, (size_t)len, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* Not supported here (EXDEV, EINVAL, ENOSYS, ...) or the
				 * file shrank (0): the buffer tells which. */
				kernel = 0;
				continue;
			}
		} else if (viasend) {
			/* Across filesystems of different kinds: sendfile needs no
			 * buffer of ours either. */
			off_t oi = off;
			n = lseek(out, off, SEEK_SET) < 0 ? -1 : sendfile(out, in, &oi, (size_t)len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				viasend = 0;
				continue;
			}
		} else {
			n = pread(in, buf, len < (off_t)sizeof buf ? (size_t)len : sizeof buf, off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;
			if (n == 0)
				return 0;   /* shrank while copying: what is there is copied */
			for (ssize_t w = 0; w < n;) {
				ssize_t m = pwrite(out, buf + w, (size_t)(n - w), off + w);
				if (m < 0 && errno == EINTR)
					continue;
				if (m <= 0) {
					if (m == 0)
						errno = ENOSPC;
					return -1;
				}
				w += m;
			}
		}
		off += n;
		len -= n;
	}
	return 0;
}

static int copy_at(int dirfd, const char *src, const char *dst, mode_t mode)
{
	char proc[40];
	int in;

	if (!*src) {
		/* A descriptor opened for writing: read the same file anew. */
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", dirfd);
		in = open(proc, O_RDONLY | O_CLOEXEC);
	} else {
		in = openat(dirfd, src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	int out = -1, rc = -1;
	struct stat st;

	if (in < 0)
		return -1;
	if (fstat(in, &st) < 0)
		goto done;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto done;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (out < 0)
		goto done;
	/* Cheapest first: share extents (holes and all). */
	if (ioctl(out, FICLONE, in) == 0) {
		rc = 0;
		goto done;
	}
	/* Then only the data: holes stay holes (copy_file_range and read
	 * would fill them with zeros, and a sparse 10 GiB file would take
	 * 10 GiB in the store). Without SEEK_DATA, all of it is data. */
	off_t end = st.st_size, pos = 0;
	while (pos < end) {
		off_t data = lseek(in, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;              /* only a hole from here on */
		off_t hole = data < 0 ? end : lseek(in, data, SEEK_HOLE);
		if (data < 0)
			data = pos;
		if (hole < 0 || hole > end)
			hole = end;
		if (data >= end)
			break;
		if (copy_range(in, out, data, hole - data) < 0)
			goto done;
		pos = hole;
	}
	/* The length, and any hole at the end. */
	if (ftruncate(out, end) < 0)
		goto done;
	rc = 0;
done:;
	int e = errno;
	if (out >= 0 && close(out) < 0 && rc == 0) {
		e = errno;
		rc = -1;
	}
	if (rc < 0 && out >= 0)
		unlink(dst);
	close(in);
	errno = e;
	return rc;
}

int ag_copy_file(const char *src, const char *dst, mode_t mode)
{
	return copy_at(AT_FDCWD, src, dst, mode);
}

int ag_snapshot_take(const char *state_dir, const char *session,
		     const char *path, int how, struct ag_snapshot *s)
{
	return ag_snapshot_take_at(state_dir, session, AT_FDCWD, path, path, how, s);
}

int ag_snapshot_stage(const char *state_dir, const char *session, struct ag_snapshot *s)
{
	return ag_fmt(s->stage, sizeof s->stage, "%s/stage/%s-%s", state_dir, session, s->id);
}

/* Under the floor (lib/floor.c, in the library); the CLI never is. */
__attribute__((weak)) int ag_floor_on(void)
{
	return 0;
}

/* A copy into the store: straight in, or under the floor, which refuses
 * writing there (and would leave an empty file behind, made before the
 * refusal), made in stage/ and moved in. */
static int copy_in(const char *state_dir, const char *session, int dirfd, const char *name,
		   struct ag_snapshot *s)
{
	if (!ag_floor_on())
		return copy_at(dirfd, name, s->abs, 0600);
	if (ag_snapshot_stage(state_dir, session, s) < 0)
		return -1;
	if (copy_at(dirfd, name, s->stage, 0600) < 0)
		return -1;
	if (rename(s->stage, s->abs) < 0) {
		int e = errno;
		unlink(s->stage);
		errno = e;
		return -1;
	}
	return 0;
}

/* fstatat, and the birth time where the filesystem keeps one: statx gives
 * both in the one call. */
static int stat_born(int dirfd, const char *name, int flags, struct stat *st, int64_t *btime)
{
	struct statx x;

	*btime = 0;
	if (statx(dirfd, name, flags, STATX_BASIC_STATS | STATX_BTIME, &x) < 0) {
		if (errno != ENOSYS)
			return -1;
		return fstatat(dirfd, name, st, flags);
	}
	memset(st, 0, sizeof *st);
	st->st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
	st->st_ino = x.stx_ino;
	st->st_mode = x.stx_mode;
	st->st_nlink = x.stx_nlink;
	st->st_uid = x.stx_uid;
	st->st_gid = x.stx_gid;
	st->st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor);
	st->st_size = (off_t)x.stx_size;
	st->st_blksize = x.stx_blksize;
	st->st_blocks = (blkcnt_t)x.stx_blocks;
	st->st_atim = (struct timespec){x.stx_atime.tv_sec, x.stx_atime.tv_nsec};
	st->st_mtim = (struct timespec){x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec};
	st->st_ctim = (struct timespec){x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec};
	if (x.stx_mask & STATX_BTIME)
		*btime = x.stx_btime.tv_sec * 1000000000LL + x.stx_btime.tv_nsec;
	return 0;
}

/* The store directory for what was in path's directory: a hash of that
 * directory's path (collisions only share a directory). */
static void bucket_of(const char *path, char *out, size_t outlen)
{
	uint32_t h = 2166136261u;
	const char *end = path ? strrchr(path, '/') : NULL;

	for (const char *p = path; p && p < end; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	snprintf(out, outlen, "%08x", h);
}

int ag_snapshot_take_at(const char *state_dir, const char *session, int dirfd,
			const char *name, const char *path, int how, struct ag_snapshot *s)
{
	char *abs = s->abs;

	memset(s, 0, offsetof(struct ag_snapshot, link_target));
	s->link_target[0] = 0;
	s->path = path;
	/* An empty name: dirfd is the file itself (an open descriptor). */
	if (stat_born(dirfd, name, *name ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH, &s->st,
		      &s->btime_ns) < 0)
		return errno == ENOENT || errno == ENOTDIR ? 1 : -1;
	make_id(s->id, sizeof s->id);

	if (S_ISDIR(s->st.st_mode)) {
		/* Only an empty directory can go; its mode and times are all it had. */
		s->kind = "dir";
		return 0;
	}
	if (!S_ISREG(s->st.st_mode) && !S_ISLNK(s->st.st_mode)) {
		/* Nothing to store: restore makes a FIFO or device node again from
		 * the metadata (device numbers included); a socket is made by the
		 * program that listens on it, so it is recorded as one that
		 * cannot be brought back. */
		s->kind = S_ISFIFO(s->st.st_mode) ? "fifo"
			: S_ISSOCK(s->st.st_mode) ? "socket"
			: S_ISCHR(s->st.st_mode) || S_ISBLK(s->st.st_mode) ? "device" : "other";
		return 0;
	}
	s->kind = S_ISLNK(s->st.st_mode) ? "symlink" : "file";
	/* One store directory per source directory: a rename into a small
	 * directory costs ext4 about half what one into a directory of ten
	 * thousand entries does (an rm -rf moves every file of a tree). */
	char bucket[16];
	bucket_of(path, bucket, sizeof bucket);
	if (ag_fmt(s->store, sizeof s->store, "snapshots/%s/%s/%s", session, bucket, s->id) < 0 ||
	    ag_fmt(abs, sizeof s->abs, "%s/%s", state_dir, s->store) < 0)
		return -1;

	for (int attempt = 0; attempt < 2; attempt++) {
		int rc;
		/* A delete: moving the file into the store is the deletion
		 * (one rename instead of link + unlink, which doubled rm -rf). */
		if (how == AG_SNAP_MOVE && renameat(dirfd, name, AT_FDCWD, abs) == 0) {
			if (S_ISLNK(s->st.st_mode)) {
				ssize_t n = readlink(abs, s->link_target, sizeof s->link_target - 1);
				s->link_target[n > 0 ? n : 0] = 0;
			}
			s->moved = 1;
			return 0;
		}
		if (how == AG_SNAP_MOVE && errno == ENOENT && !attempt)
			goto mkdir;
		if (S_ISLNK(s->st.st_mode)) {
			ssize_t n = readlinkat(dirfd, name, s->link_target, sizeof s->link_target - 1);
			if (n < 0)
				return -1;
			s->link_target[n] = 0;
			rc = how != AG_SNAP_COPY ? linkat(dirfd, name, AT_FDCWD, abs, 0) : -1;
			if (how == AG_SNAP_COPY || (rc < 0 && errno != ENOENT))
				rc = symlink(s->link_target, abs);
		} else {
			rc = how != AG_SNAP_COPY ? linkat(dirfd, name, AT_FDCWD, abs, 0) : -1;
			if (how == AG_SNAP_COPY || (rc < 0 && errno != ENOENT))
				rc = copy_in(state_dir, session, dirfd, name, s);
		}
		if (rc == 0)
			return 0;
		if (errno != ENOENT || attempt)
			return -1;
mkdir:
		/* First snapshot of the session: make its directory (the state
		 * dir and its snapshots/ first: someone may have removed them), in abs, which then names the entry
		 * again. No path buffer on the stack: this runs in signal
		 * handlers on small alternate stacks. */
		if ((mkdir(state_dir, 0700) < 0 && errno != EEXIST) ||
		    ag_fmt(abs, sizeof s->abs, "%s/snapshots", state_dir) < 0 ||
		    (mkdir(abs, 0700) < 0 && errno != EEXIST) ||
		    ag_fmt(abs, sizeof s->abs, "%s/snapshots/%s", state_dir, session) < 0 ||
		    (mkdir(abs, 0700) < 0 && errno != EEXIST) ||
		    ag_fmt(abs, sizeof s->abs, "%s/snapshots/%s/%s", state_dir, session, bucket) < 0 ||
		    (mkdir(abs, 0700) < 0 && errno != EEXIST) ||
		    ag_fmt(abs, sizeof s->abs, "%s/%s", state_dir, s->store) < 0)
			return -1;
	}
	return -1;
}
