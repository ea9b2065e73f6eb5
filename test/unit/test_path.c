/* lib/path.c: the paths rules match and the audit log records. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentguard.h"
#include "helpers.h"

/* ---- ag_path_lexical ------------------------------------------------------ */

struct lex_case {
	const char *base, *p, *want;
};

static const struct lex_case lex_cases[] = {
	{"/a/b", "c", "/a/b/c"},
	{"/a/b", "/x/y", "/x/y"},               /* absolute p ignores base */
	{"/a/b", "./c/.", "/a/b/c"},
	{"/a/b", "../c", "/a/c"},
	{"/a/b", "../../..", "/"},
	{"/a/b", "../../../../x", "/x"},        /* ".." stops at the root */
	{"/", "..", "/"},
	{"/", "/../../etc/../etc/passwd", "/etc/passwd"},
	{"/a", "//x///y//", "/x/y"},
	{"/a/b", "x//y/", "/a/b/x/y"},          /* trailing slash dropped */
	{"/a/b/", "", "/a/b"},
	{"//a//b//", ".", "/a/b"},
	{"/a", "b/../..", "/"},
	{"/a/./b/../c", "d", "/a/c/d"},         /* the base is normalized too */
	{"/a", "b/./../c/./d/..", "/a/c"},
	{"/a", "...", "/a/..."},                /* only "." and ".." are special */
	{"/a", ".hidden/..x/x..", "/a/.hidden/..x/x.."},
	{"/ab", "..", "/"},
	{"/a/bc", "..", "/a"},
	{"/", "", "/"},
};

Test(path_lexical, table)
{
	for (size_t i = 0; i < sizeof lex_cases / sizeof lex_cases[0]; i++) {
		const struct lex_case *c = &lex_cases[i];
		char out[AG_PATH_MAX];
		memset(out, 'Z', sizeof out);
		cr_assert_eq(ag_path_lexical(c->base, c->p, out, sizeof out), 0,
			     "lexical(%s, %s) failed", c->base, c->p);
		cr_expect_str_eq(out, c->want, "lexical(%s, %s) = %s, want %s",
				 c->base, c->p, out, c->want);
	}
}

Test(path_lexical, exact_fit_and_one_short)
{
	char out[8];

	cr_expect_eq(ag_path_lexical("/", "", out, 2), 0);
	cr_expect_str_eq(out, "/");
	cr_expect_eq(ag_path_lexical("/", "", out, 1), -1);
	cr_expect_eq(ag_path_lexical("/", "", out, 0), -1);

	cr_expect_eq(ag_path_lexical("/", "abc", out, 5), 0);
	cr_expect_str_eq(out, "/abc");
	cr_expect_eq(ag_path_lexical("/", "abc", out, 4), -1);

	cr_expect_eq(ag_path_lexical("/", "a/b", out, 5), 0);
	cr_expect_str_eq(out, "/a/b");
	cr_expect_eq(ag_path_lexical("/", "a/b", out, 4), -1);
	/* The limit applies to the base part as well. */
	cr_expect_eq(ag_path_lexical("/abcdef", "x", out, 8), -1);
}

Test(path_lexical, never_writes_past_outlen)
{
	char buf[32];

	memset(buf, 'Z', sizeof buf);
	cr_assert_eq(ag_path_lexical("/base/dir", "some/long/relative/path", buf, 12), -1);
	for (size_t i = 12; i < sizeof buf; i++)
		cr_assert_eq(buf[i], 'Z', "byte %zu past outlen was written", i);
}

Test(path_lexical, component_at_the_limit)
{
	static char name[AG_PATH_MAX + 1];
	char out[AG_PATH_MAX];

	/* "/" + name + NUL must fit in AG_PATH_MAX. */
	memset(name, 'n', AG_PATH_MAX - 2);
	name[AG_PATH_MAX - 2] = 0;
	cr_expect_eq(ag_path_lexical("/", name, out, sizeof out), 0);
	cr_expect_eq(strlen(out), AG_PATH_MAX - 1);

	memset(name, 'n', AG_PATH_MAX - 1);
	name[AG_PATH_MAX - 1] = 0;
	cr_expect_eq(ag_path_lexical("/", name, out, sizeof out), -1);
}

/* ---- ag_path_resolve ------------------------------------------------------ */

/*
 * The tree every resolve test works in (T is a fresh temp dir, the cwd):
 *   T/a/b/c/          directories
 *   T/a/b/c/f         file
 *   T/a/b/c/sl     -> /etc/passwd   (a final symlink: never followed)
 *   T/a/b/c/dl     -> ..            (a symlinked parent that climbs)
 *   T/l            -> a/b/c
 *   T/loop         -> loop
 */
static char T[AG_PATH_MAX];
static char oldcwd[AG_PATH_MAX];

static void tree_setup(void)
{
	char p[AG_PATH_MAX];

	ut_mkdtemp(T, sizeof T);
	cr_assert_not_null(getcwd(oldcwd, sizeof oldcwd));
	ut_fmt(p, sizeof p, "%s/a/b/c", T);
	cr_assert_eq(ag_mkdirs(p, 0755), 0);
	ut_fmt(p, sizeof p, "%s/a/b/c/f", T);
	ut_write_str(p, "x");
	ut_fmt(p, sizeof p, "%s/a/b/c/sl", T);
	cr_assert_eq(symlink("/etc/passwd", p), 0);
	ut_fmt(p, sizeof p, "%s/a/b/c/dl", T);
	cr_assert_eq(symlink("..", p), 0);
	ut_fmt(p, sizeof p, "%s/l", T);
	cr_assert_eq(symlink("a/b/c", p), 0);
	ut_fmt(p, sizeof p, "%s/loop", T);
	cr_assert_eq(symlink("loop", p), 0);
	cr_assert_eq(chdir(T), 0);
}

static void tree_teardown(void)
{
	if (oldcwd[0] && chdir(oldcwd) < 0)
		oldcwd[0] = 0;
	ut_rmrf(T);
}

TestSuite(path_resolve, .init = tree_setup, .fini = tree_teardown);

/* Resolve p against dirfd and compare with T-relative `want` ("" is T). */
static void expect_resolve(int dirfd, const char *p, const char *want)
{
	char out[AG_PATH_MAX], full[AG_PATH_MAX];

	if (want[0] == '/')
		ut_fmt(full, sizeof full, "%s", want);
	else if (want[0])
		ut_fmt(full, sizeof full, "%s/%s", T, want);
	else
		ut_fmt(full, sizeof full, "%s", T);
	memset(out, 0, sizeof out);
	int rc = ag_path_resolve(dirfd, p, out, sizeof out);
	cr_expect_eq(rc, 0, "resolve(%s) failed: %s", p, strerror(errno));
	if (rc == 0)
		cr_expect_str_eq(out, full, "resolve(%s) = %s, want %s", p, out, full);
}

Test(path_resolve, relative_to_cwd)
{
	expect_resolve(AT_FDCWD, "newfile", "newfile");
	expect_resolve(AT_FDCWD, "a/b/c/f", "a/b/c/f");
	expect_resolve(AT_FDCWD, "./a//b/./c/f", "a/b/c/f");
	expect_resolve(AT_FDCWD, "./a//b/", "a/b");
	expect_resolve(AT_FDCWD, ".", "");
	expect_resolve(AT_FDCWD, "a/b/c/../..", "a");
}

Test(path_resolve, dotdot_of_cwd_is_its_parent)
{
	char parent[AG_PATH_MAX];

	ut_fmt(parent, sizeof parent, "%s", T);
	*strrchr(parent, '/') = 0;
	expect_resolve(AT_FDCWD, "..", parent[0] ? parent : "/");
}

Test(path_resolve, absolute_paths)
{
	char p[AG_PATH_MAX];

	expect_resolve(AT_FDCWD, "/", "/");
	ut_fmt(p, sizeof p, "%s/l/f", T);
	expect_resolve(AT_FDCWD, p, "a/b/c/f");
	ut_fmt(p, sizeof p, "%s//a/./b/c/", T);
	expect_resolve(AT_FDCWD, p, "a/b/c");
}

Test(path_resolve, symlinked_parents_are_resolved)
{
	expect_resolve(AT_FDCWD, "l/f", "a/b/c/f");
	expect_resolve(AT_FDCWD, "l/new", "a/b/c/new");
	/* dl -> ".." inside c: c/.. is b, so l/dl/f is a/b/f. */
	expect_resolve(AT_FDCWD, "l/dl/f", "a/b/f");
}

Test(path_resolve, final_symlink_is_not_followed)
{
	expect_resolve(AT_FDCWD, "l", "l");
	expect_resolve(AT_FDCWD, "l/sl", "a/b/c/sl");
	expect_resolve(AT_FDCWD, "a/b/c/dl", "a/b/c/dl");
	expect_resolve(AT_FDCWD, "loop", "loop");
}

Test(path_resolve, dotdot_after_a_symlink_follows_the_kernel)
{
	/* The kernel takes ".." from where the symlink leads, not lexically. */
	expect_resolve(AT_FDCWD, "l/..", "a/b");
	expect_resolve(AT_FDCWD, "l/../x", "a/b/x");
	expect_resolve(AT_FDCWD, "l/../../f", "a/f");
	expect_resolve(AT_FDCWD, "a/b/../b/c/f", "a/b/c/f");
}

Test(path_resolve, missing_parents_fall_back_to_lexical)
{
	expect_resolve(AT_FDCWD, "nope/sub/../f", "nope/f");
	expect_resolve(AT_FDCWD, "nope/deeper/x", "nope/deeper/x");
	expect_resolve(AT_FDCWD, "a/b/nope/../../c", "a/c");
	/* A parent that is a symlink loop cannot be resolved either. */
	expect_resolve(AT_FDCWD, "loop/x", "loop/x");
	/* A parent that is a file. */
	expect_resolve(AT_FDCWD, "a/b/c/f/x", "a/b/c/f/x");
}

Test(path_resolve, relative_to_a_dirfd)
{
	char p[AG_PATH_MAX];

	ut_fmt(p, sizeof p, "%s/a", T);
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	/* Move away so that a cwd-based answer would be wrong. */
	cr_assert_eq(chdir("/"), 0);
	expect_resolve(fd, "x", "a/x");
	expect_resolve(fd, "b/c/f", "a/b/c/f");
	expect_resolve(fd, "../l/f", "a/b/c/f");
	expect_resolve(fd, "..", "");
	expect_resolve(fd, ".", "a");
	close(fd);

	/* A dirfd opened through a symlink names the real directory. */
	ut_fmt(p, sizeof p, "%s/l", T);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	expect_resolve(fd, "f", "a/b/c/f");
	expect_resolve(fd, "sl", "a/b/c/sl");
	close(fd);

	/* O_PATH descriptors are what *at() callers often hold. */
	ut_fmt(p, sizeof p, "%s/a/b", T);
	fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	expect_resolve(fd, "c/sl", "a/b/c/sl");
	close(fd);
}

Test(path_resolve, absolute_path_ignores_dirfd)
{
	char p[AG_PATH_MAX];
	int fd = open("/", O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	close(fd);   /* now certainly not open */
	ut_fmt(p, sizeof p, "%s/l/f", T);
	/* unlinkat(badfd, "/abs") works, so resolving must too. */
	expect_resolve(fd, p, "a/b/c/f");
}

/* The guard refuses a call whose path it cannot resolve with this errno
 * (guard.c path_into), so it must be what the real *at() call returns. */
Test(path_resolve, bad_dirfd_is_ebadf)
{
	char out[AG_PATH_MAX];
	int fd = open("/", O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	close(fd);
	errno = 0;
	cr_expect_eq(unlinkat(fd, "x", 0), -1);
	cr_expect_eq(errno, EBADF, "sanity: the kernel says EBADF");

	errno = 0;
	cr_expect_eq(ag_path_resolve(fd, "x", out, sizeof out), -1);
	cr_expect_eq(errno, EBADF, "closed dirfd %d: errno %d (%s), want EBADF",
		     fd, errno, strerror(errno));

	errno = 0;
	cr_expect_eq(ag_path_resolve(-7, "a/x", out, sizeof out), -1);
	cr_expect_eq(errno, EBADF, "dirfd -7: errno %d (%s), want EBADF",
		     errno, strerror(errno));
}

Test(path_resolve, dirfd_of_a_file_is_enotdir)
{
	char out[AG_PATH_MAX], p[AG_PATH_MAX];

	ut_fmt(p, sizeof p, "%s/a/b/c/f", T);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	errno = 0;
	cr_expect_eq(unlinkat(fd, "x", 0), -1);
	cr_expect_eq(errno, ENOTDIR, "sanity: the kernel says ENOTDIR");

	errno = 0;
	int rc = ag_path_resolve(fd, "x", out, sizeof out);
	cr_expect_eq(rc, -1, "dirfd on a regular file resolved to %s", rc == 0 ? out : "");
	cr_expect_eq(errno, ENOTDIR, "errno %d (%s), want ENOTDIR", errno, strerror(errno));

	/* A pipe is not a directory either. */
	int pp[2];
	cr_assert_eq(pipe(pp), 0);
	errno = 0;
	cr_expect_eq(ag_path_resolve(pp[0], "x", out, sizeof out), -1);
	cr_expect_eq(errno, ENOTDIR);
	close(pp[0]);
	close(pp[1]);
	close(fd);
}

Test(path_resolve, empty_and_too_long)
{
	static char big[AG_PATH_MAX + 8];
	char out[AG_PATH_MAX];

	errno = 0;
	cr_expect_eq(ag_path_resolve(AT_FDCWD, "", out, sizeof out), -1);
	cr_expect_eq(errno, ENOENT);

	memset(big, 'x', AG_PATH_MAX);
	big[AG_PATH_MAX] = 0;
	errno = 0;
	cr_expect_eq(ag_path_resolve(AT_FDCWD, big, out, sizeof out), -1);
	cr_expect_eq(errno, ENAMETOOLONG);

	/* Fits the input limit but not the caller's buffer. */
	char small[8];
	errno = 0;
	cr_expect_eq(ag_path_resolve(AT_FDCWD, "a/b/c/f", small, sizeof small), -1);
	cr_expect_eq(errno, ENAMETOOLONG);
	errno = 0;
	cr_expect_eq(ag_path_resolve(AT_FDCWD, "name", small, sizeof small), -1);
	cr_expect_eq(errno, ENAMETOOLONG);
}

Test(path_resolve, deleted_cwd_fails_like_the_kernel)
{
	char p[AG_PATH_MAX], out[AG_PATH_MAX];

	ut_fmt(p, sizeof p, "%s/gone", T);
	cr_assert_eq(mkdir(p, 0700), 0);
	cr_assert_eq(chdir(p), 0);
	cr_assert_eq(rmdir(p), 0);
	errno = 0;
	cr_expect_eq(ag_path_resolve(AT_FDCWD, "x", out, sizeof out), -1);
	cr_expect_eq(errno, ENOENT);
	/* Absolute paths do not need the cwd. */
	ut_fmt(p, sizeof p, "%s/l/f", T);
	expect_resolve(AT_FDCWD, p, "a/b/c/f");
}

/* ---- names deeper than PATH_MAX ------------------------------------------------
 * A chain of 52 directories of 98 bytes: /proc/self/fd and getcwd cannot
 * name its bottom, calls relative to a descriptor can reach it. */
#define LVL "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
#define DEPTH 52

static char D[AG_PATH_MAX];
static int dfd[DEPTH + 1];
static char want[DEPTH * 128 + AG_PATH_MAX];

static void deep_setup(void)
{
	ut_mkdtemp(D, sizeof D);
	cr_assert_not_null(getcwd(oldcwd, sizeof oldcwd));
	size_t n = (size_t)snprintf(want, sizeof want, "%s", D);
	dfd[0] = open(D, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dfd[0], 0);
	for (int i = 1; i <= DEPTH; i++) {
		cr_assert_eq(mkdirat(dfd[i - 1], LVL, 0755), 0);
		dfd[i] = openat(dfd[i - 1], LVL, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		cr_assert_geq(dfd[i], 0);
		n += (size_t)snprintf(want + n, sizeof want - n, "/%s", LVL);
	}
	int fd = openat(dfd[DEPTH], "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_gt(strlen(want), 5000);
}

/* nftw cannot go that deep: take the chain down from its bottom. */
static void deep_teardown(void)
{
	if (oldcwd[0] && chdir(oldcwd) < 0)
		oldcwd[0] = 0;
	unlinkat(dfd[DEPTH], "f", 0);
	unlinkat(dfd[DEPTH - 5], "l", 0);
	for (int i = DEPTH; i > 0; i--) {
		close(dfd[i]);
		unlinkat(dfd[i - 1], LVL, AT_REMOVEDIR);
	}
	close(dfd[0]);
	ut_rmrf(D);
}

TestSuite(path_deep, .init = deep_setup, .fini = deep_teardown);

static void expect_name(const struct ag_name *n, const char *suffix)
{
	char full[sizeof want + 16];

	snprintf(full, sizeof full, "%s%s", want, suffix);
	cr_expect_str_eq(n->s, full);
}

Test(path_deep, parent_of_a_name_in_a_deep_descriptor)
{
	char buf[AG_PATH_MAX], scratch[AG_PATH_MAX];
	struct ag_name n = {buf, sizeof buf, 0};
	const char *name;
	int pfd;

	cr_assert_eq(ag_path_parent(dfd[DEPTH], "f", &n, scratch, sizeof scratch, &pfd, &name), 0,
		     "%s", strerror(errno));
	expect_name(&n, "/f");
	cr_expect_gt(n.mapped, 0, "a name that long lives in a mapping");
	cr_expect_eq(pfd, dfd[DEPTH]);
	cr_expect_str_eq(name, "f");
	ag_name_free(&n);
	cr_expect_eq(n.mapped, 0);
}

Test(path_deep, parent_from_a_deep_cwd)
{
	char buf[AG_PATH_MAX], scratch[AG_PATH_MAX];
	struct ag_name n = {buf, sizeof buf, 0};
	const char *name;
	int pfd;

	cr_assert_eq(fchdir(dfd[DEPTH - 2]), 0);
	cr_assert_eq(ag_path_parent(AT_FDCWD, LVL "/" LVL "/f", &n, scratch, sizeof scratch, &pfd,
				    &name), 0, "%s", strerror(errno));
	expect_name(&n, "/f");
	cr_expect_neq(pfd, AT_FDCWD, "the parent is held open");
	struct stat a, b;
	cr_assert_eq(fstat(pfd, &a), 0);
	cr_assert_eq(fstat(dfd[DEPTH], &b), 0);
	cr_expect(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	close(pfd);
	ag_name_free(&n);
}

Test(path_deep, an_argument_of_path_max_fails_as_the_kernel_says)
{
	static char big[PATH_MAX + 1];
	char buf[AG_PATH_MAX], scratch[AG_PATH_MAX];
	struct ag_name n = {buf, sizeof buf, 0};
	const char *name;
	int pfd;

	for (size_t i = 0; i < PATH_MAX; i++)
		big[i] = i % 2 ? '/' : 'a';
	big[PATH_MAX - 1] = 'a';
	errno = 0;
	cr_expect_eq(ag_path_parent(dfd[DEPTH], big, &n, scratch, sizeof scratch, &pfd, &name), -1);
	cr_expect_eq(errno, ENAMETOOLONG);
	cr_expect_eq(unlinkat(dfd[DEPTH], big, 0), -1);
	cr_expect_eq(errno, ENAMETOOLONG);
}

Test(path_deep, descriptors_of_deep_files_and_directories)
{
	char buf[AG_PATH_MAX], scratch[AG_PATH_MAX];
	struct ag_name n = {buf, sizeof buf, 0};

	/* A directory: walked up. */
	cr_assert_eq(ag_fd_name(dfd[DEPTH], AT_FDCWD, NULL, &n, scratch, sizeof scratch), 0);
	expect_name(&n, "");
	ag_name_free(&n);

	int fd = openat(dfd[DEPTH], "f", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	/* A file: where the caller opened it... */
	n = (struct ag_name){buf, sizeof buf, 0};
	cr_assert_eq(ag_fd_name(fd, dfd[DEPTH], "f", &n, scratch, sizeof scratch), 0);
	expect_name(&n, "/f");
	ag_name_free(&n);
	/* ... through a symlink there, as open follows it... */
	cr_assert_eq(symlinkat(LVL "/" LVL "/" LVL "/" LVL "/" LVL "/f", dfd[DEPTH - 5], "l"), 0);
	n = (struct ag_name){buf, sizeof buf, 0};
	cr_assert_eq(ag_fd_name(fd, dfd[DEPTH - 5], "l", &n, scratch, sizeof scratch), 0);
	expect_name(&n, "/f");
	ag_name_free(&n);
	/* ... or in a directory this process has open. */
	n = (struct ag_name){buf, sizeof buf, 0};
	cr_assert_eq(ag_fd_name(fd, AT_FDCWD, NULL, &n, scratch, sizeof scratch), 0);
	expect_name(&n, "/f");
	ag_name_free(&n);
	/* Nowhere to be found: no name, rather than a wrong one. */
	cr_assert_eq(chdir("/"), 0);
	cr_assert_eq(close(dfd[DEPTH]), 0);
	n = (struct ag_name){buf, sizeof buf, 0};
	errno = 0;
	cr_expect_eq(ag_fd_name(fd, AT_FDCWD, NULL, &n, scratch, sizeof scratch), -1);
	cr_expect_eq(errno, ENAMETOOLONG);
	dfd[DEPTH] = openat(dfd[DEPTH - 1], LVL, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(fd);
}
