/* Absolute, normalized paths: what rules match and the audit log records. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentguard.h"

int ag_path_lexical(const char *base, const char *p, char *out, size_t outlen)
{
	size_t n = 0;
	/* Two passes over one grammar: the base (when p is relative), then p. */
	const char *parts[2] = { p[0] == '/' ? NULL : base, p };

	if (outlen < 2)
		return -1;
	out[n++] = '/';
	for (int k = 0; k < 2; k++) {
		const char *s = parts[k];
		if (!s)
			continue;
		while (*s) {
			while (*s == '/')
				s++;
			if (!*s)
				break;
			const char *e = strchrnul(s, '/');
			size_t len = (size_t)(e - s);
			if (len == 1 && s[0] == '.') {
				/* nothing */
			} else if (len == 2 && s[0] == '.' && s[1] == '.') {
				/* Back to the previous separator; "/.." stays "/". */
				if (n > 1) {
					n--;
					while (n > 1 && out[n - 1] != '/')
						n--;
					if (n > 1)
						n--;
				}
			} else {
				if (n > 1)
					out[n++] = '/';
				if (n + len + 1 > outlen)
					return -1;
				memcpy(out + n, s, len);
				n += len;
			}
			s = e;
		}
	}
	if (n >= outlen)
		return -1;
	out[n] = 0;
	return 0;
}

/* Where a relative path starts: the cwd, or the directory behind dirfd as
 * the kernel names it (already free of symlinks). */
/* The last directory descriptor's path. Asking /proc costs ~2.5 us, a
 * stat of the remembered path ~0.8 us: rm -rf and find -delete use one
 * dirfd for a whole directory. A trylock, so that a fork taken while it
 * is held cannot deadlock the child (which then just asks /proc). */
static struct {
	pthread_mutex_t mu;
	int fd;
	dev_t dev;
	ino_t ino;
	char path[AG_PATH_MAX];
} dircache = {PTHREAD_MUTEX_INITIALIZER, -1, 0, 0, ""};

static int cached_dir(int dirfd, const struct stat *st, char *out, size_t outlen)
{
	int hit = 0;

	if (pthread_mutex_trylock(&dircache.mu) != 0)
		return 0;
	if (dircache.fd == dirfd && dircache.dev == st->st_dev && dircache.ino == st->st_ino &&
	    strlen(dircache.path) < outlen) {
		strcpy(out, dircache.path);
		hit = 1;
	}
	pthread_mutex_unlock(&dircache.mu);
	/* Still there under that name (a directory renamed while open is not). */
	struct stat now;
	return hit && stat(out, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

static void remember_dir(int dirfd, const struct stat *st, const char *path)
{
	if (pthread_mutex_trylock(&dircache.mu) != 0)
		return;
	if (strlen(path) < sizeof dircache.path) {
		dircache.fd = dirfd;
		dircache.dev = st->st_dev;
		dircache.ino = st->st_ino;
		strcpy(dircache.path, path);
	}
	pthread_mutex_unlock(&dircache.mu);
}

static int base_of(int dirfd, char *out, size_t outlen)
{
	if (dirfd == AT_FDCWD)
		return getcwd(out, outlen) ? 0 : -1;
	/* The kernel's own complaints about a bad dirfd, not /proc's. */
	struct stat st;
	if (fstat(dirfd, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	if (cached_dir(dirfd, &st, out, outlen))
		return 0;
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", dirfd);
	ssize_t n = readlink(proc, out, outlen - 1);
	if (n < 0)
		return -1;
	if (out[0] != '/') {
		errno = ENOTDIR;
		return -1;
	}
	out[n] = 0;
	remember_dir(dirfd, &st, out);
	return 0;
}

int ag_path_resolve(int dirfd, const char *p, char *out, size_t outlen)
{
	char base[AG_PATH_MAX], tmp[AG_PATH_MAX], joined[AG_PATH_MAX];
	char parent[PATH_MAX];
	size_t len;

	if (!p || !*p) {
		errno = ENOENT;
		return -1;
	}
	len = strlen(p);
	if (len >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (p[0] != '/') {
		if (base_of(dirfd, base, sizeof base) < 0)
			return -1;
	} else {
		strcpy(base, "/");
	}
	memcpy(tmp, p, len + 1);
	while (len > 1 && tmp[len - 1] == '/')
		tmp[--len] = 0;

	char *slash = strrchr(tmp, '/');
	const char *last = slash ? slash + 1 : tmp;
	int dots = strcmp(last, ".") == 0 || strcmp(last, "..") == 0;

	if (!slash && !dots) {
		/* "name" relative to a kernel-named directory: nothing to resolve. */
		if (ag_path_lexical(base, tmp, out, outlen) < 0)
			goto toolong;
		return 0;
	}
	/* Resolve the directory part through the filesystem (symlinked parents,
	 * ".." after a symlink); fall back to lexical rules if it is missing. */
	if (dots) {
		snprintf(joined, sizeof joined, "%s", tmp);
		last = NULL;
	} else if (slash == tmp) {
		strcpy(joined, "/");
	} else {
		*slash = 0;
		if ((size_t)snprintf(joined, sizeof joined, "%s", tmp) >= sizeof joined)
			goto toolong;
	}
	char full[AG_PATH_MAX];
	if (ag_path_lexical(base, "", full, sizeof full) < 0)
		goto toolong;
	if (joined[0] != '/') {
		char j2[AG_PATH_MAX];
		if ((size_t)snprintf(j2, sizeof j2, "%s/%s", full, joined) >= sizeof j2)
			goto toolong;
		memcpy(joined, j2, sizeof joined);
	}
	if (!realpath(joined, parent)) {
		if (ag_path_lexical("/", joined, parent, sizeof parent) < 0)
			goto toolong;
	}
	if (!last) {
		if (strlen(parent) >= outlen)
			goto toolong;
		strcpy(out, parent);
		return 0;
	}
	if (ag_path_lexical(parent, last, out, outlen) < 0)
		goto toolong;
	return 0;
toolong:
	errno = ENAMETOOLONG;
	return -1;
}

/* The directory behind fd, as the kernel names it (free of symlinks).
 * A directory removed while open is named "... (deleted)": that is its
 * old name, which is what rules and the log should see. */
static int fd_name(int fd, char *out, size_t outlen)
{
	char proc[40];
	struct stat st;

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(proc, out, outlen - 1);
	if (n < 0)
		return -1;
	if ((size_t)n >= outlen - 1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	out[n] = 0;
	if (out[0] != '/') {
		errno = ENOTDIR;
		return -1;
	}
	static const char del[] = " (deleted)";
	size_t dl = sizeof del - 1;
	if ((size_t)n > dl && strcmp(out + n - dl, del) == 0 && fstat(fd, &st) == 0 &&
	    st.st_nlink == 0)
		out[n - dl] = 0;
	return 0;
}

int ag_path_parent(int dirfd, const char *p, char *out, size_t outlen, char *scratch,
		   size_t scratchlen, int *pfd, const char **name)
{
	struct stat st;

	*pfd = dirfd;
	*name = p;
	if (!p) {
		errno = EFAULT;
		return -1;
	}
	if (!*p) {
		errno = ENOENT;
		return -1;
	}
	size_t end = strlen(p);
	while (end > 1 && p[end - 1] == '/')
		end--;
	size_t start = end;
	while (start > 0 && p[start - 1] != '/')
		start--;
	size_t llen = end - start;
	const char *last = p + start;
	int whole = llen == 0 || (llen == 1 && last[0] == '.') ||
		    (llen == 2 && last[0] == '.' && last[1] == '.');
	if (whole) {
		/* "/", ".", "..": no name inside a parent to act on (and no
		 * such call can remove or replace anything): judge what the
		 * path names, and let the real call have the original. */
		int fd = openat(dirfd, p, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return ag_path_resolve(dirfd, p, out, outlen);
		int rc = fd_name(fd, out, outlen);
		close(fd);
		return rc;
	}

	int fd;
	if (start == 0 && dirfd != AT_FDCWD) {
		/* A name in the caller's own directory descriptor. */
		if (fstat(dirfd, &st) < 0)
			return -1;
		if (!S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			return -1;
		}
		if (!cached_dir(dirfd, &st, out, outlen)) {
			if (fd_name(dirfd, out, outlen) < 0)
				return -1;
			remember_dir(dirfd, &st, out);
		}
		fd = dirfd;
	} else {
		/* Hold the parent open: the real call then acts in this very
		 * directory, whatever is renamed or swapped meanwhile. */
		if (start == 0) {
			fd = openat(AT_FDCWD, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		} else {
			if (start >= scratchlen) {
				errno = ENAMETOOLONG;
				return -1;
			}
			memcpy(scratch, p, start);
			scratch[start] = 0;
			fd = openat(dirfd, scratch, O_PATH | O_DIRECTORY | O_CLOEXEC);
		}
		if (fd < 0)
			return -1;
		if (fd_name(fd, out, outlen) < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		*pfd = fd;
	}
	size_t bl = strlen(out);
	if (bl + 1 + llen + 1 > outlen) {
		if (fd != dirfd)
			close(fd);
		*pfd = dirfd;
		errno = ENAMETOOLONG;
		return -1;
	}
	if (bl > 1)
		out[bl++] = '/';
	memcpy(out + bl, last, llen);
	out[bl + llen] = 0;
	*name = last;
	return 0;
}
