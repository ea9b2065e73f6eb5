/*
 * truncate: every open that can empty an existing file (O_TRUNC, fopen "w"),
 * truncate and ftruncate to a smaller size. Also where writes to the
 * guard's own files are refused, and where an open that can overwrite a
 * file in place (O_WRONLY/O_RDWR without O_TRUNC, fopen "r+") is judged
 * as a `write` (write.c).
 *
 * A truncating open is carried out in two steps so that what is judged is
 * what is emptied: the file is opened without O_TRUNC (in the directory
 * that was judged), the descriptor names the file the kernel found
 * (symlinks followed, as open does), and only then is it judged,
 * snapshotted and truncated through that descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"
#include "write.h"

#define WRITING (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)

/* The open flavours, for the one guarded body they share. */
enum flavour { F_OPEN, F_OPEN64, F_OPENAT, F_OPENAT64, F_OPEN_2, F_OPEN64_2, F_OPENAT_2,
	       F_OPENAT64_2, F_CREAT, F_CREAT64 };

static int real_open(enum flavour f, int dirfd, const char *path, int flags, mode_t mode)
{
	switch (f) {
	case F_OPEN: return AG_REAL(open)(path, flags, mode);
	case F_OPEN64: return AG_REAL(open64)(path, flags, mode);
	case F_OPENAT: return AG_REAL(openat)(dirfd, path, flags, mode);
	case F_OPENAT64: return AG_REAL(openat64)(dirfd, path, flags, mode);
	case F_OPEN_2: return AG_REAL(__open_2)(path, flags);
	case F_OPEN64_2: return AG_REAL(__open64_2)(path, flags);
	case F_OPENAT_2: return AG_REAL(__openat_2)(dirfd, path, flags);
	case F_OPENAT64_2: return AG_REAL(__openat64_2)(dirfd, path, flags);
	case F_CREAT: return AG_REAL(creat)(path, mode);
	case F_CREAT64: return AG_REAL(creat64)(path, mode);
	}
	errno = EINVAL;
	return -1;
}

/* The guard's own files: the name as written (it may not exist yet, or be
 * a symlink that the open would follow into them). */
static int aims_at_protected(struct ag_call *c)
{
	if (ag_protected(c->op.path))
		return 1;
	struct ag_work *w = c->w;
	char *real = w->scratch;
	ssize_t n = readlinkat(c->at.fd, c->at.name, real, sizeof w->scratch - 1);
	if (n <= 0)
		return 0;
	/* A symlink: where it leads (followed to the end, as open would; by
	 * the kernel, from the directory held: the link's own name may be
	 * longer than PATH_MAX). */
	int fd = AG_REAL(openat)(c->at.fd, c->at.name, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char proc[40], *full = w->target;
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	n = readlink(proc, full, sizeof w->target - 1);
	close(fd);
	if (n <= 0)
		return 0;
	full[n] = 0;
	return ag_protected(full);
}

/* From here on the call acts on the descriptor itself (the snapshot
 * reads the file through it): the parent held for the open is done with
 * (it was leaked, one per truncating open, before). */
static void at_descriptor(struct ag_call *c, int fd)
{
	if (c->at.owned)
		close(c->at.fd);
	c->at.fd = fd;
	c->at.name = "";
	c->at.owned = 0;
}

/* op.path for the file open on fd, which the caller reached at c->at (if
 * anywhere): the name ag_set_path made when that entry is the file
 * itself, else the descriptor's (a symlink there was followed). -1: the
 * descriptor has no name (/proc not mounted): judged by name already. */
static int name_opened(struct ag_call *c, int fd)
{
	struct stat st, lst;

	if (c->op.path && c->at.name && *c->at.name && fstat(fd, &st) == 0 &&
	    fstatat(c->at.fd, c->at.name, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_dev == lst.st_dev && st.st_ino == lst.st_ino)
		return 0;
	return ag_set_fd_path_at(c, fd, c->at.fd, c->at.name);
}

/* The decision for a writable open, made on the open descriptor. 0: go on
 * with fd (truncated when `trunc` and allowed); 1: not an operation;
 * -1: refused; -2: the truncation failed (errno says why). An open that
 * does not truncate but can overwrite (`flags`) is a `write`. */
static int judge_fd(struct ag_call *c, int fd, int trunc, int flags)
{
	struct stat st;
	int full = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
	int write = !trunc && full && ag_write_flags(flags);

	/* The editor's hundredth save: one lookup, no /proc, no row. */
	if (write && ag_rules_name(c, AG_OP_WRITE) && ag_write_seen(&st))
		return 1;
	if (name_opened(c, fd) < 0)
		return 1;   /* /proc unreadable: judged by name already */
	int prot = ag_protected(c->op.path);
	if (!prot && !write && (!trunc || !full))
		return 1;   /* nothing to lose */
	at_descriptor(c, fd);
	if (write)
		return ag_write_judge(c, &st);
	if (ag_check(c) < 0)
		return -1;
	if (trunc && AG_REAL(ftruncate)(fd, 0) < 0)
		return -2;
	return 0;
}

/* The judged open's end: fd handed back, or closed and refused. */
static int opened(struct ag_call *c, int fd, int trunc, int flags)
{
	switch (judge_fd(c, fd, trunc, flags)) {
	case 1:
		ag_skip(c);
		return fd;
	case -1:
		close(fd);
		return ag_refuse(c);
	case -2: {
		int e = errno;
		close(fd);
		errno = e;
		return ag_end(c, -1);
	}
	default:
		return ag_end(c, fd);
	}
}

/* A file this session already kept, opened again to be written (the
 * editor's hundredth save): opened as asked, with no parent held and no
 * /proc lookup. What was opened is checked against what was looked up; a
 * file swapped in between is judged on the descriptor like any other. */
static int reopen_seen(struct ag_call *c, enum flavour f, int dirfd, const char *path,
		       int flags, mode_t mode, int *fdp)
{
	struct stat st, now;

	if ((flags & O_TRUNC) || !ag_write_flags(flags) || !ag_rules_name(c, AG_OP_WRITE) ||
	    fstatat(dirfd, path, &st, (flags & O_NOFOLLOW) ? AT_SYMLINK_NOFOLLOW : 0) < 0 ||
	    !S_ISREG(st.st_mode) || !ag_write_seen(&st))
		return 0;
	ag_pause(c);
	int fd = real_open(f, dirfd, path, flags, mode);
	int e = errno;
	ag_resume(c);
	if (fd < 0 || (fstat(fd, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino)) {
		ag_skip(c);
		errno = e;
		*fdp = fd;
		return 1;
	}
	*fdp = opened(c, fd, 0, flags);
	return 1;
}

static __attribute__((noinline)) int guarded_open(enum flavour f, int dirfd, const char *path,
						  int flags, mode_t mode)
{
	struct ag_call c;
	int fd;

	ag_begin(&c, AG_OP_TRUNCATE);
	if (reopen_seen(&c, f, dirfd, path, flags, mode, &fd))
		return fd;
	if (ag_set_path(&c, dirfd, path) < 0) {
		ag_skip(&c);
		return real_open(f, dirfd, path, flags, mode);   /* it fails the same way */
	}
	if (aims_at_protected(&c)) {
		if (ag_check(&c) < 0)
			return ag_refuse(&c);
		return ag_end(&c, real_open(f, dirfd, path, flags, mode));
	}
	/* O_RDONLY|O_TRUNC truncates on Linux but cannot be truncated through
	 * the descriptor: leave that oddity to the kernel. */
	int trunc = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;
	ag_pause(&c);
	fd = AG_REAL(openat)(c.at.fd, c.at.name, trunc ? flags & ~O_TRUNC : flags, mode);
	if (fd < 0)
		return ag_skip(&c), -1;   /* errno is the open's */
	ag_resume(&c);
	return opened(&c, fd, trunc, flags);
}

/* open's mode argument exists only with O_CREAT or O_TMPFILE. */
#define TAKES_MODE(f) (((f) & O_CREAT) || ((f) & O_TMPFILE) == O_TMPFILE)
#define MODE_ARG(flags, last) ({ mode_t m_ = 0; if (TAKES_MODE(flags)) { \
	va_list ap_; va_start(ap_, last); m_ = (mode_t)va_arg(ap_, int); va_end(ap_); } m_; })

/* The thin entries: an open that cannot write passes straight through. */
#define OPEN_ENTRY(name, flavour, params, dirfd, call)                          \
	AG_EXPORT int name params                                               \
	{                                                                       \
		mode_t mode = MODE_ARG(flags, flags);                           \
		if (!(flags & WRITING) || AG_OWN_WORK())                        \
			return AG_REAL(name) call;                              \
		return guarded_open(flavour, dirfd, path, flags, mode);         \
	}
OPEN_ENTRY(open, F_OPEN, (const char *path, int flags, ...), AT_FDCWD, (path, flags, mode))
OPEN_ENTRY(open64, F_OPEN64, (const char *path, int flags, ...), AT_FDCWD, (path, flags, mode))
OPEN_ENTRY(openat, F_OPENAT, (int dirfd, const char *path, int flags, ...), dirfd,
	   (dirfd, path, flags, mode))
OPEN_ENTRY(openat64, F_OPENAT64, (int dirfd, const char *path, int flags, ...), dirfd,
	   (dirfd, path, flags, mode))

#define OPEN2_ENTRY(name, flavour, params, dirfd, call)                         \
	AG_EXPORT int name params                                               \
	{                                                                       \
		if (!(flags & WRITING) || AG_OWN_WORK())                        \
			return AG_REAL(name) call;                              \
		return guarded_open(flavour, dirfd, path, flags, 0);            \
	}
OPEN2_ENTRY(__open_2, F_OPEN_2, (const char *path, int flags), AT_FDCWD, (path, flags))
OPEN2_ENTRY(__open64_2, F_OPEN64_2, (const char *path, int flags), AT_FDCWD, (path, flags))
OPEN2_ENTRY(__openat_2, F_OPENAT_2, (int dirfd, const char *path, int flags), dirfd,
	    (dirfd, path, flags))
OPEN2_ENTRY(__openat64_2, F_OPENAT64_2, (int dirfd, const char *path, int flags), dirfd,
	    (dirfd, path, flags))

AG_EXPORT int creat(const char *path, mode_t mode)
{
	if (AG_OWN_WORK())
		return AG_REAL(creat)(path, mode);
	return guarded_open(F_CREAT, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

AG_EXPORT int creat64(const char *path, mode_t mode)
{
	if (AG_OWN_WORK())
		return AG_REAL(creat64)(path, mode);
	return guarded_open(F_CREAT64, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

/* ---- stdio ------------------------------------------------------------------ */

/* fopen's mode as open flags (glibc's letters: + x e after the first). */
static int fopen_flags(const char *mode)
{
	int f;

	if (!mode)
		return 0;
	switch (mode[0]) {
	case 'w': f = O_WRONLY | O_CREAT | O_TRUNC; break;
	case 'a': f = O_WRONLY | O_CREAT | O_APPEND; break;
	case 'r': f = O_RDONLY; break;
	default: return 0;
	}
	for (const char *m = mode + 1; *m && *m != ','; m++) {
		if (*m == '+')
			f = (f & ~O_ACCMODE) | O_RDWR;
		else if (*m == 'x')
			f |= O_EXCL;
		else if (*m == 'e')
			f |= O_CLOEXEC;
	}
	return f;
}

/* fopen and fopen64: open as above, then a stream on the descriptor. */
static __attribute__((noinline)) FILE *guarded_fopen(const char *path, const char *mode,
						     int flags)
{
	int fd = guarded_open(F_OPEN, AT_FDCWD, path, flags, 0666);

	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, mode);
	if (!f) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return f;
}

AG_EXPORT FILE *fopen(const char *path, const char *mode)
{
	int flags = fopen_flags(mode);

	if (!path || !(flags & WRITING) || AG_OWN_WORK())
		return AG_REAL(fopen)(path, mode);
	return guarded_fopen(path, mode, flags);
}

AG_EXPORT FILE *fopen64(const char *path, const char *mode)
{
	int flags = fopen_flags(mode);

	if (!path || !(flags & WRITING) || AG_OWN_WORK())
		return AG_REAL(fopen64)(path, mode);
	return guarded_fopen(path, mode, flags);
}

/* freopen keeps its stream, and the descriptor number the stream had.
 * The file is opened, judged and (for "w") truncated as fopen's is, by
 * descriptor; the stream is then reopened onto that very file through
 * /proc/self/fd/N, a magic link that names the open file itself and not
 * a path a symlink could be swapped into, and our descriptor is closed.
 * (Reopening with "w" truncates again: the same file, already empty.) */
static __attribute__((noinline)) FILE *guarded_freopen(
	FILE *(*real)(const char *, const char *, FILE *), const char *path,
	const char *mode, FILE *stream, int flags)
{
	int fd = guarded_open(F_OPEN, AT_FDCWD, path, flags | O_CLOEXEC, 0666);

	if (fd < 0) {
		/* Refused, or the open failed: freopen fails as it does bare when
		 * its open fails, with the stream's old file closed (an open of ""
		 * cannot succeed), and the open's errno. */
		int e = errno;
		real("", mode, stream);
		errno = e;
		return NULL;
	}
	/* The file is there now: 'x' (O_EXCL) was for the open just made. */
	char m[64], proc[40];
	const char *use = mode;
	size_t ml = strlen(mode), letters = strcspn(mode, ",");
	if (memchr(mode, 'x', letters) && ml < sizeof m) {
		size_t k = 0;
		for (size_t i = 0; i < ml; i++)
			if (i >= letters || mode[i] != 'x')
				m[k++] = mode[i];
		m[k] = 0;
		use = m;
	}
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	struct stat st;
	/* Without /proc, by name: judged already, but open to a swap. */
	FILE *f = real(stat(proc, &st) == 0 ? proc : path, use, stream);
	int e = errno;
	close(fd);
	errno = e;
	return f;
}

AG_EXPORT FILE *freopen(const char *path, const char *mode, FILE *stream)
{
	int flags = fopen_flags(mode);

	if (!path || !(flags & WRITING) || AG_OWN_WORK())
		return AG_REAL(freopen)(path, mode, stream);
	return guarded_freopen(AG_REAL(freopen), path, mode, stream, flags);
}

AG_EXPORT FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
	int flags = fopen_flags(mode);

	if (!path || !(flags & WRITING) || AG_OWN_WORK())
		return AG_REAL(freopen64)(path, mode, stream);
	return guarded_freopen(AG_REAL(freopen64), path, mode, stream, flags);
}

/* ---- truncate, ftruncate ------------------------------------------------------ */

/* Both act through a descriptor the guard opens or is given, so that what
 * is judged is what shrinks. */
static int judge_shrink(struct ag_call *c, int fd, off_t len)
{
	struct stat st;

	if (name_opened(c, fd) < 0)
		return 1;
	if (!ag_protected(c->op.path) &&
	    (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= len))
		return 1;   /* nothing shrinks: not an operation */
	at_descriptor(c, fd);
	return ag_check(c) < 0 ? -1 : 0;
}

static __attribute__((noinline)) int truncate_by_name(int (*real)(const char *, off_t),
						      const char *path, off_t len)
{
	struct ag_call c;

	ag_begin(&c, AG_OP_TRUNCATE);
	if (ag_set_path(&c, AT_FDCWD, path) < 0) {
		ag_skip(&c);
		return real(path, len);
	}
	if (aims_at_protected(&c))
		return ag_check(&c) < 0 ? ag_refuse(&c) : ag_end(&c, real(path, len));
	int fd = AG_REAL(openat)(c.at.fd, c.at.name, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		ag_skip(&c);
		return real(path, len);   /* fails the same way (or is not a file) */
	}
	int rc = judge_shrink(&c, fd, len);
	if (rc > 0) {
		close(fd);
		ag_skip(&c);
		return real(path, len);
	}
	if (rc < 0) {
		close(fd);
		return ag_refuse(&c);
	}
	rc = AG_REAL(ftruncate)(fd, len);
	int e = errno;
	close(fd);
	errno = e;
	return ag_end(&c, rc);
}

AG_HOOK(int, truncate, (const char *path, off_t len), (path, len))
{
	return truncate_by_name(AG_REAL(truncate), path, len);
}

AG_HOOK(int, truncate64, (const char *path, off_t len), (path, len))
{
	return truncate_by_name(AG_REAL(truncate64), path, len);
}

static int ftruncate_guarded(int (*real)(int, off_t), int fd, off_t len)
{
	struct ag_call c;
	struct stat st;

	/* Growing, or not a regular file: nothing to judge (most calls). */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= len)
		return real(fd, len);
	ag_begin(&c, AG_OP_TRUNCATE);
	int rc = judge_shrink(&c, fd, len);
	if (rc > 0) {
		ag_skip(&c);
		return real(fd, len);
	}
	if (rc < 0)
		return ag_refuse(&c);
	return ag_end(&c, real(fd, len));
}

AG_HOOK(int, ftruncate, (int fd, off_t len), (fd, len))
{
	return ftruncate_guarded(AG_REAL(ftruncate), fd, len);
}

AG_HOOK(int, ftruncate64, (int fd, off_t len), (fd, len))
{
	return ftruncate_guarded(AG_REAL(ftruncate64), fd, len);
}
