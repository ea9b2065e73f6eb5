/*
 * truncate: every open that can empty an existing file (O_TRUNC, fopen "w"),
 * truncate and ftruncate to a smaller size. Also where writes to the
 * guard's own files are refused.
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

#define WRITING (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)

enum { GO, REFUSE, PASS };

/* The file a truncation hits: symlinks followed, as open and truncate do. */
static int follow(struct ag_call *c)
{
	char real[AG_PATH_MAX];
	struct stat st;

	if (lstat(c->path, &st) == 0 && S_ISLNK(st.st_mode) && realpath(c->path, real))
		snprintf(c->path, sizeof c->path, "%s", real);
	return 0;
}

static int shrinks(const char *path, off_t len)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > len;
}

/* Shared by every open flavour. */
static int guard_open(struct ag_call *c, int dirfd, const char *path, int flags)
{
	if (!(flags & WRITING) || !ag_begin(c, AG_OP_TRUNCATE))
		return PASS;
	if (ag_set_path(c, dirfd, path) < 0) {
		ag_skip(c);
		return PASS;   /* the real open reports the bad path itself */
	}
	follow(c);
	if (ag_protected(c->path))
		return ag_check(c) < 0 ? REFUSE : GO;
	if (!(flags & O_TRUNC) || !shrinks(c->path, 0)) {
		ag_skip(c);
		return PASS;
	}
	return ag_check(c) < 0 ? REFUSE : GO;
}

static int fopen_flags(const char *mode)
{
	if (!mode)
		return 0;
	switch (mode[0]) {
	case 'w': return O_WRONLY | O_CREAT | O_TRUNC;
	case 'a': return O_WRONLY | O_CREAT | O_APPEND;
	case 'r': return strchr(mode, '+') ? O_RDWR : 0;
	default: return 0;
	}
}

/* open's mode argument exists only with O_CREAT or O_TMPFILE. */
#define TAKES_MODE(f) (((f) & O_CREAT) || ((f) & O_TMPFILE) == O_TMPFILE)
#define MODE_ARG(flags, last) ({ mode_t m_ = 0; if (TAKES_MODE(flags)) { \
	va_list ap_; va_start(ap_, last); m_ = (mode_t)va_arg(ap_, int); va_end(ap_); } m_; })

#define OPEN_BODY(name, dirfd, call)                                   \
	struct ag_call c;                                              \
	switch (guard_open(&c, dirfd, path, flags)) {                  \
	case GO: return ag_end(&c, ag_real.name call);                 \
	case REFUSE: return ag_refuse(&c);                             \
	default: return AG_REAL(name) call;                            \
	}

AG_EXPORT int open(const char *path, int flags, ...)
{
	mode_t mode = MODE_ARG(flags, flags);
	OPEN_BODY(open, AT_FDCWD, (path, flags, mode))
}

AG_EXPORT int open64(const char *path, int flags, ...)
{
	mode_t mode = MODE_ARG(flags, flags);
	OPEN_BODY(open64, AT_FDCWD, (path, flags, mode))
}

AG_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = MODE_ARG(flags, flags);
	OPEN_BODY(openat, dirfd, (dirfd, path, flags, mode))
}

AG_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = MODE_ARG(flags, flags);
	OPEN_BODY(openat64, dirfd, (dirfd, path, flags, mode))
}

AG_EXPORT int __open_2(const char *path, int flags)
{
	OPEN_BODY(__open_2, AT_FDCWD, (path, flags))
}

AG_EXPORT int __open64_2(const char *path, int flags)
{
	OPEN_BODY(__open64_2, AT_FDCWD, (path, flags))
}

AG_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	OPEN_BODY(__openat_2, dirfd, (dirfd, path, flags))
}

AG_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	OPEN_BODY(__openat64_2, dirfd, (dirfd, path, flags))
}

AG_EXPORT int creat(const char *path, mode_t mode)
{
	int flags = O_CREAT | O_WRONLY | O_TRUNC;
	OPEN_BODY(creat, AT_FDCWD, (path, mode))
}

AG_EXPORT int creat64(const char *path, mode_t mode)
{
	int flags = O_CREAT | O_WRONLY | O_TRUNC;
	OPEN_BODY(creat64, AT_FDCWD, (path, mode))
}

/* The stdio flavours fail with NULL. */
#define FOPEN_BODY(name, call)                                         \
	struct ag_call c;                                              \
	int flags = fopen_flags(mode);                                 \
	switch (path ? guard_open(&c, AT_FDCWD, path, flags) : PASS) { \
	case GO: {                                                     \
		FILE *f_ = ag_real.name call;                          \
		ag_end(&c, f_ ? 0 : -1);                               \
		return f_;                                             \
	}                                                              \
	case REFUSE: ag_refuse(&c); return NULL;                       \
	default: return AG_REAL(name) call;                            \
	}

AG_EXPORT FILE *fopen(const char *path, const char *mode)
{
	FOPEN_BODY(fopen, (path, mode))
}

AG_EXPORT FILE *fopen64(const char *path, const char *mode)
{
	FOPEN_BODY(fopen64, (path, mode))
}

AG_EXPORT FILE *freopen(const char *path, const char *mode, FILE *stream)
{
	FOPEN_BODY(freopen, (path, mode, stream))
}

AG_EXPORT FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
	FOPEN_BODY(freopen64, (path, mode, stream))
}

static int guard_truncate(struct ag_call *c, const char *path, off_t len)
{
	if (!ag_begin(c, AG_OP_TRUNCATE))
		return PASS;
	if (ag_set_path(c, AT_FDCWD, path) < 0) {
		ag_skip(c);
		return PASS;
	}
	follow(c);
	if (!ag_protected(c->path) && !shrinks(c->path, len)) {
		ag_skip(c);
		return PASS;
	}
	return ag_check(c) < 0 ? REFUSE : GO;
}

static int guard_ftruncate(struct ag_call *c, int fd, off_t len)
{
	struct stat st;
	char proc[64];

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= len ||
	    !ag_begin(c, AG_OP_TRUNCATE))
		return PASS;
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, c->path, sizeof c->path - 1);
	if (n <= 0 || c->path[0] != '/') {
		ag_skip(c);
		return PASS;
	}
	c->path[n] = 0;
	c->op.path = c->path;
	return ag_check(c) < 0 ? REFUSE : GO;
}

#define TRUNC_BODY(name, guard, arg)                                   \
	struct ag_call c;                                              \
	switch (guard(&c, arg, len)) {                                 \
	case GO: return ag_end(&c, ag_real.name(arg, len));            \
	case REFUSE: return ag_refuse(&c);                             \
	default: return AG_REAL(name)(arg, len);                       \
	}

AG_EXPORT int truncate(const char *path, off_t len)
{
	TRUNC_BODY(truncate, guard_truncate, path)
}

AG_EXPORT int truncate64(const char *path, off_t len)
{
	TRUNC_BODY(truncate64, guard_truncate, path)
}

AG_EXPORT int ftruncate(int fd, off_t len)
{
	TRUNC_BODY(ftruncate, guard_ftruncate, fd)
}

AG_EXPORT int ftruncate64(int fd, off_t len)
{
	TRUNC_BODY(ftruncate64, guard_ftruncate, fd)
}
