/*
 * Shared by the core unit tests: scratch directories and small file
 * helpers. Criterion runs every test in its own process, so each test
 * makes its own directory and the suite's fini removes it even when an
 * assertion fails.
 */
#ifndef AG_UNIT_HELPERS_H
#define AG_UNIT_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentguard.h"

/* A fresh directory under /tmp, named by its real path: the code under
 * test reports resolved paths, so expectations must not go through a
 * symlinked /tmp. */
static inline void ut_mkdtemp_in(const char *parent, char *out, size_t outlen)
{
	char tmpl[AG_PATH_MAX];

	cr_assert_lt((size_t)snprintf(tmpl, sizeof tmpl, "%s/agentguard-unit.XXXXXX", parent),
		     sizeof tmpl);
	cr_assert_not_null(mkdtemp(tmpl), "mkdtemp in %s: %s", parent, strerror(errno));
	char *real = realpath(tmpl, NULL);
	cr_assert_not_null(real, "realpath %s: %s", tmpl, strerror(errno));
	cr_assert_lt(strlen(real), outlen);
	strcpy(out, real);
	free(real);
}

static inline void ut_mkdtemp(char *out, size_t outlen)
{
	ut_mkdtemp_in("/tmp", out, outlen);
}

static inline int ut_rm_one(const char *p, const struct stat *st, int flag,
			    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(p) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(p) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf that never follows symlinks out of the tree, and only ever
 * touches what ut_mkdtemp made. */
static inline void ut_rmrf(const char *dir)
{
	if (dir && strstr(dir, "/agentguard-unit."))
		nftw(dir, ut_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* snprintf into a buffer that must be big enough. */
static inline __attribute__((format(printf, 3, 4)))
void ut_fmt(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < outlen, "test path too long");
}

static inline void ut_write(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len, "write %s", path);
	close(fd);
}

static inline void ut_write_str(const char *path, const char *s)
{
	ut_write(path, s, strlen(s));
}

/* Whole file into a NUL-terminated malloc'd buffer; *len set if given. */
static inline char *ut_read(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	char *buf = malloc((size_t)st.st_size + 1);
	cr_assert_not_null(buf);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		cr_assert_gt(n, 0, "read %s", path);
		got += (size_t)n;
	}
	close(fd);
	buf[got] = 0;
	if (len)
		*len = got;
	return buf;
}

static inline int ut_is_spool(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return d->d_name[0] != '.' && n > 6 && strcmp(d->d_name + n - 6, ".spool") == 0;
}

/* The *.spool files in state_dir/spool, sorted; returns how many (0 when
 * the directory does not exist) and fills up to max full paths. */
static inline int ut_spools(const char *state_dir, char (*out)[AG_PATH_MAX], int max)
{
	char dir[AG_PATH_MAX];
	struct dirent **names;

	ut_fmt(dir, sizeof dir, "%s/spool", state_dir);
	int n = scandir(dir, &names, ut_is_spool, alphasort);
	if (n < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		if (i < max)
			ut_fmt(out[i], AG_PATH_MAX, "%s/%s", dir, names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return n;
}

#endif
