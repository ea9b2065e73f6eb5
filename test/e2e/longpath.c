/*
 * Operations in a directory tree deeper than PATH_MAX (t_longpath.sh).
 * The kernel limits each path argument to PATH_MAX, not the depth of a
 * tree: every call below passes short arguments, relative to a directory
 * descriptor or to the cwd, and works bare. Each prints one line,
 * "OP RC ERRNO-NAME", so that a bare and a guarded run can be compared.
 *
 *   longpath ROOT build BYTES      make ROOT/dddd.../dddd... (mkdirat, one
 *                                  level at a time) until its absolute name
 *                                  is longer than BYTES; print that name
 *   longpath ROOT path             print the deepest directory's name
 *   longpath ROOT put NAME TEXT    write TEXT into NAME there (put-x: and
 *                                  make it executable)
 *   longpath ROOT cat NAME         print NAME's content (or "-")
 *   longpath ROOT sig              what restore must bring back there: the
 *                                  directory's and each entry's name, type,
 *                                  mode, mtime (ns), size and content
 *   longpath ROOT OP ARGS...       one operation in the deepest directory:
 *     unlink NAME                  unlinkat(dir, NAME)
 *     unlink-cwd NAME              chdir there, unlink(NAME)
 *     rename OLD NEW               renameat(dir, OLD, dir, NEW)
 *     truncate NAME                chdir there, truncate(NAME, 0)
 *     open-trunc NAME              openat(dir, NAME, O_WRONLY | O_TRUNC)
 *     ftruncate NAME               openat(dir, NAME, O_WRONLY), ftruncate(fd, 0)
 *     ftruncate-orphan NAME        the same after closing every directory
 *                                  descriptor and leaving for /
 *     link OLD NEW                 linkat(dir, OLD, dir, NEW)
 *     exec NAME                    chdir there, execv("./NAME")
 *     fexecve NAME                 fexecve(openat(dir, NAME)) (dir stays open)
 *     toolong                      unlinkat(dir, a PATH_MAX-long argument)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LEVEL "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

static int say(const char *op, int rc)
{
	int e = errno;

	printf("%s %d %s\n", op, rc < 0 ? -1 : 0,
	       rc >= 0 ? "0" : e == EACCES ? "EACCES" : e == ENOENT ? "ENOENT"
	       : e == ENAMETOOLONG ? "ENAMETOOLONG" : e == EPERM ? "EPERM" : strerror(e));
	fflush(stdout);
	return rc < 0;
}

/* The deepest directory under root (made when `make`), and its name. */
static int descend(const char *root, size_t bytes, int make, char *name, size_t cap)
{
	int d = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t n = (size_t)snprintf(name, cap, "%s", root);

	if (d < 0) {
		perror(root);
		exit(3);
	}
	for (;;) {
		if (make && n > bytes)
			return d;
		if (make && mkdirat(d, LEVEL, 0755) < 0 && errno != EEXIST) {
			perror("mkdirat");
			exit(3);
		}
		int nd = openat(d, LEVEL, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (nd < 0) {
			if (make)
				exit(3);
			return d;
		}
		close(d);
		d = nd;
		if (n + 1 + sizeof LEVEL >= cap)
			exit(4);
		n += (size_t)snprintf(name + n, cap - n, "/%s", LEVEL);
	}
}

static void sig_line(int d, const char *name)
{
	struct stat st;
	char buf[256] = "";

	if (fstatat(d, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		printf("%s ?\n", name);
		return;
	}
	int fd = S_ISREG(st.st_mode) ? openat(d, name, O_RDONLY | O_CLOEXEC) : -1;
	ssize_t k = fd < 0 ? 0 : read(fd, buf, sizeof buf - 1);
	buf[k > 0 ? k : 0] = 0;
	if (fd >= 0)
		close(fd);
	printf("%s %o %lld.%09ld %lld %s\n", name, (unsigned)st.st_mode, (long long)st.st_mtim.tv_sec,
	       st.st_mtim.tv_nsec, (long long)st.st_size, buf);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int sig(int d)
{
	char *names[256];
	size_t n = 0;
	DIR *dir = fdopendir(dup(d));
	struct dirent *e;

	if (!dir)
		return say("sig", -1);
	while ((e = readdir(dir)) && n < 256)
		if (strcmp(e->d_name, "..") != 0)
			names[n++] = strdup(e->d_name);
	qsort(names, n, sizeof names[0], by_name);
	for (size_t i = 0; i < n; i++)
		sig_line(d, names[i]);
	closedir(dir);
	return 0;
}

int main(int argc, char **argv)
{
	static char name[1 << 16];
	if (argc < 3)
		return 2;
	const char *root = argv[1], *cmd = argv[2];
	const char *a = argc > 3 ? argv[3] : "", *b = argc > 4 ? argv[4] : "";
	int build = !strcmp(cmd, "build");
	if (build && mkdir(root, 0755) < 0 && errno != EEXIST)
		return say("mkdir", -1);
	int d = descend(root, build ? (size_t)atol(a) : 0, build, name, sizeof name);

	if (build || !strcmp(cmd, "path")) {
		printf("%s\n", name);
		return 0;
	}
	if (!strcmp(cmd, "put") || !strcmp(cmd, "put-x")) {
		int fd = openat(d, a, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, b, strlen(b)) < 0 || close(fd) < 0 ||
		    (cmd[3] && fchmodat(d, a, 0755, 0) < 0))
			return say("put", -1);
		return 0;
	}
	if (!strcmp(cmd, "cat")) {
		char buf[4096];
		int fd = openat(d, a, O_RDONLY | O_CLOEXEC);
		ssize_t k = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
		buf[k > 0 ? k : 0] = 0;
		printf("%s\n", fd < 0 ? "-" : buf);
		return 0;
	}
	if (!strcmp(cmd, "sig"))
		return sig(d);
	if (!strcmp(cmd, "unlink"))
		return say(cmd, unlinkat(d, a, 0));
	if (!strcmp(cmd, "unlink-cwd"))
		return fchdir(d) < 0 ? say("fchdir", -1) : say(cmd, unlink(a));
	if (!strcmp(cmd, "rename"))
		return say(cmd, renameat(d, a, d, b));
	if (!strcmp(cmd, "truncate"))
		return fchdir(d) < 0 ? say("fchdir", -1) : say(cmd, truncate(a, 0));
	if (!strcmp(cmd, "open-trunc")) {
		int fd = openat(d, a, O_WRONLY | O_TRUNC | O_CLOEXEC);
		say(cmd, fd);
		return fd < 0;
	}
	if (!strcmp(cmd, "ftruncate") || !strcmp(cmd, "ftruncate-orphan")) {
		int fd = openat(d, a, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return say("openat", -1);
		if (!strcmp(cmd, "ftruncate-orphan") && (close(d) < 0 || chdir("/") < 0))
			return say("chdir", -1);
		return say(cmd, ftruncate(fd, 0));
	}
	if (!strcmp(cmd, "link"))
		return say(cmd, linkat(d, a, d, b, 0));
	if (!strcmp(cmd, "exec")) {
		char prog[NAME_MAX + 3];
		snprintf(prog, sizeof prog, "./%s", a);
		if (fchdir(d) < 0)
			return say("fchdir", -1);
		execv(prog, (char *[]){prog, NULL});
		return say(cmd, -1);
	}
	if (!strcmp(cmd, "fexecve")) {
		int fd = openat(d, a, O_RDONLY);
		if (fd < 0)
			return say("openat", -1);
		fexecve(fd, (char *[]){(char *)a, NULL}, (char *[]){NULL});
		return say(cmd, -1);
	}
	if (!strcmp(cmd, "toolong")) {
		/* "a/a/.../a": PATH_MAX bytes and its NUL, one too many. */
		static char arg[PATH_MAX + 1];
		for (size_t i = 0; i < PATH_MAX; i++)
			arg[i] = i % 2 ? '/' : 'a';
		arg[PATH_MAX - 1] = 'a';
		return say(cmd, unlinkat(d, arg, 0));
	}
	return 2;
}
