/* Absolute, normalized paths: what rules match and the audit log records. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
 * old name, which is what rules and the log should see. ENAMETOOLONG when
 * the name does not fit outlen, or is longer than the kernel prints. */
/* "/proc/self/fd/N": snprintf costs ~800 instructions, a tenth of a
 * hooked call. */
static void proc_fd(char *out, int fd)
{
	static const char pre[] = "/proc/self/fd/";
	char d[12];
	unsigned v = fd < 0 ? 0u : (unsigned)fd;
	int n = 0;

	memcpy(out, pre, sizeof pre - 1);
	out += sizeof pre - 1;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*out++ = d[--n];
	*out = 0;
}

static int fd_name(int fd, char *out, size_t outlen)
{
	char proc[40];
	struct stat st;

	proc_fd(proc, fd);
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

/* ---- names longer than the kernel prints -------------------------------------
 * /proc/self/fd and the getcwd system call stop at a page, but a tree may
 * be deeper, and calls relative to a descriptor or the cwd work at any
 * depth. Such a name is put together by walking "..": each directory's
 * name is found among its parent's entries by its inode. Only the part
 * the kernel cannot print is walked. Memory comes from mmap, never malloc
 * (this runs in signal handlers) and never the stack (small stacks). */

void ag_name_free(struct ag_name *n)
{
	if (n->mapped)
		munmap(n->s, n->mapped);
	n->mapped = 0;
	n->s = NULL;
	n->cap = 0;
}

static char *map(size_t len)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

static size_t map_size(size_t need)
{
	size_t cap = 16384;

	while (cap < need)
		cap *= 2;
	return cap;
}

/* Room for need bytes in n, keeping its first `keep`. */
static int name_room(struct ag_name *n, size_t need, size_t keep)
{
	if (need <= n->cap)
		return 0;
	if (need > AG_NAME_MAX + 1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	size_t cap = map_size(need);
	char *m = map(cap);
	if (!m)
		return -1;
	memcpy(m, n->s, keep);
	ag_name_free(n);
	n->s = m;
	n->cap = n->mapped = cap;
	return 0;
}

/* Append "/" and len bytes of s to the name in n (which is "/" or a
 * directory's name). */
static int name_join(struct ag_name *n, const char *s, size_t len)
{
	size_t bl = strlen(n->s);

	if (bl == 1)
		bl = 0;   /* "/" + "x" is "/x" */
	if (name_room(n, bl + 1 + len + 1, bl + 1) < 0)
		return -1;
	n->s[bl] = '/';
	memcpy(n->s + bl + 1, s, len);
	n->s[bl + 1 + len] = 0;
	return 0;
}

/* A name built from its end: the text is b[pos..cap). */
struct rbuf {
	char *b;
	size_t cap, pos;
};

static int rb_prepend(struct rbuf *r, const char *s, size_t len)
{
	if (!len)
		return 0;
	if (len > r->pos) {
		size_t used = r->cap - r->pos;
		if (used + len > AG_NAME_MAX) {
			errno = ENAMETOOLONG;
			return -1;
		}
		size_t cap = map_size(used + len);
		char *m = map(cap);
		if (!m)
			return -1;
		if (r->b) {
			memcpy(m + cap - used, r->b + r->pos, used);
			munmap(r->b, r->cap);
		}
		r->b = m;
		r->pos = cap - used;
		r->cap = cap;
	}
	r->pos -= len;
	memcpy(r->b + r->pos, s, len);
	return 0;
}

/* Find the entry of directory dir that is the inode of st, and prepend
 * "/entry" to r (or, r NULL, copy the entry into name, NAME_MAX + 1
 * bytes). Entries list the inode they cover, so a mount point is only
 * found by a second pass that stats the directories. 0, or -1 (ENOENT:
 * not there). */
static int find_entry(int dir, const struct stat *st, struct rbuf *r, char *name, char *buf,
		      size_t buflen)
{
	int passes = S_ISDIR(st->st_mode) ? 2 : 1;

	for (int pass = 0; pass < passes; pass++) {
		if (lseek(dir, 0, SEEK_SET) < 0)
			return -1;
		for (;;) {
			ssize_t n = getdents64(dir, buf, buflen);
			if (n < 0)
				return -1;
			if (n == 0)
				break;
			for (ssize_t off = 0; off < n;) {
				struct dirent64 *d = (struct dirent64 *)(buf + off);
				const char *e = d->d_name;
				struct stat est;
				off += d->d_reclen;
				if (e[0] == '.' && (!e[1] || (e[1] == '.' && !e[2])))
					continue;
				if (pass == 0 ? d->d_ino != st->st_ino
					      : d->d_type != DT_DIR && d->d_type != DT_UNKNOWN)
					continue;
				if (fstatat(dir, e, &est, AT_SYMLINK_NOFOLLOW) < 0 ||
				    est.st_dev != st->st_dev || est.st_ino != st->st_ino)
					continue;
				size_t l = strlen(e);
				if (!r) {
					if (l > NAME_MAX)
						continue;
					memcpy(name, e, l + 1);
					return 0;
				}
				if (rb_prepend(r, e, l) < 0 || rb_prepend(r, "/", 1) < 0)
					return -1;
				return 0;
			}
		}
	}
	errno = ENOENT;
	return -1;
}

/* The name of directory fd into out, however deep. scratch: PATH_MAX. */
static int dir_name(int fd, struct ag_name *out, char *scratch, size_t scratchlen)
{
	if (fd_name(fd, out->s, out->cap) == 0)
		return 0;
	if (errno != ENAMETOOLONG)
		return -1;
	struct rbuf r = {NULL, 0, 0};
	int cur = fcntl(fd, F_DUPFD_CLOEXEC, 0), rc = -1;
	if (cur < 0)
		return -1;
	for (;;) {
		struct stat cst, pst;
		if (fstat(cur, &cst) < 0)
			break;
		int par = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (par < 0)
			break;
		if (fstat(par, &pst) < 0) {
			close(par);
			break;
		}
		if (pst.st_dev == cst.st_dev && pst.st_ino == cst.st_ino) {
			close(par);   /* the root: r is the whole name */
			rc = 0;
			break;
		}
		if (find_entry(par, &cst, &r, NULL, scratch, scratchlen) < 0) {
			close(par);   /* ENOENT: removed (what is in it is gone too) */
			break;
		}
		close(cur);
		cur = par;
		/* Once what is left is short enough, the kernel names it. */
		if (fd_name(cur, scratch, scratchlen) == 0) {
			size_t hl = strlen(scratch);
			rc = rb_prepend(&r, scratch, hl == 1 ? 0 : hl);
			break;
		}
		if (errno != ENAMETOOLONG)
			break;
	}
	int e = errno;
	close(cur);
	if (rc == 0) {
		size_t len = r.cap - r.pos;
		if (name_room(out, len + 2, 0) < 0) {
			rc = -1;
			e = errno;
		} else if (len) {
			memcpy(out->s, r.b + r.pos, len);
			out->s[len] = 0;
		} else {
			strcpy(out->s, "/");
		}
	}
	if (r.b)
		munmap(r.b, r.cap);
	errno = e;
	return rc;
}

/* (dir, name) is st: its name into out. dir may be AT_FDCWD. */
static int join_at(int dir, const char *name, size_t len, struct ag_name *out, char *scratch,
		   size_t scratchlen)
{
	int fd = dir == AT_FDCWD ? openat(AT_FDCWD, ".", O_PATH | O_DIRECTORY | O_CLOEXEC) : dir;

	if (fd < 0)
		return -1;
	int rc = dir_name(fd, out, scratch, scratchlen);
	int e = errno;
	if (fd != dir)
		close(fd);
	errno = e;
	return rc < 0 ? -1 : name_join(out, name, len);
}

/* Where the caller opened the file: (dir, name), following symlinks there
 * as open did, until the entry is st itself. */
static int by_hint(int dir, const char *hint, const struct stat *st, struct ag_name *out,
		   char *scratch, size_t scratchlen)
{
	char name[NAME_MAX + 1];
	int d = dir, rc = -1;
	size_t len = strlen(hint);

	while (len > 1 && hint[len - 1] == '/')
		len--;
	if (len > NAME_MAX || memchr(hint, '/', len))
		return -1;   /* one component (a parent already held), as the guard passes */
	memcpy(name, hint, len);
	name[len] = 0;
	for (int hop = 0; hop < 40; hop++) {
		struct stat lst;
		if (fstatat(d, name, &lst, AT_SYMLINK_NOFOLLOW) < 0)
			break;
		if (lst.st_dev == st->st_dev && lst.st_ino == st->st_ino) {
			rc = join_at(d, name, strlen(name), out, scratch, scratchlen);
			break;
		}
		if (!S_ISLNK(lst.st_mode))
			break;
		ssize_t n = readlinkat(d, name, scratch, scratchlen - 1);
		if (n <= 0)
			break;
		scratch[n] = 0;
		while (n > 1 && scratch[n - 1] == '/')
			scratch[--n] = 0;
		char *slash = strrchr(scratch, '/');
		const char *last = slash ? slash + 1 : scratch;
		size_t ll = strlen(last);
		if (!ll || ll > NAME_MAX || !strcmp(last, ".") || !strcmp(last, ".."))
			break;
		memmove(name, last, ll + 1);
		if (slash) {
			/* The link's directory part, from where the link is. */
			if (slash == scratch)
				scratch[1] = 0;
			else
				*slash = 0;
			int nd = openat(d, scratch, O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (nd < 0)
				break;
			if (d != dir)
				close(d);
			d = nd;
		}
	}
	if (d != dir)
		close(d);
	return rc;
}

/* An entry of the directory fd dir (any kind of descriptor) that is st. */
static int in_dir(int dir, const struct stat *st, struct ag_name *out, char *scratch,
		  size_t scratchlen)
{
	char name[NAME_MAX + 1];
	int rd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (rd < 0)
		return -1;
	int rc = find_entry(rd, st, NULL, name, scratch, scratchlen);
	if (rc == 0)
		rc = join_at(rd, name, strlen(name), out, scratch, scratchlen);
	close(rd);
	return rc;
}

/* Every directory this process has open, but `skip`. */
static int in_open_dirs(int skip, const struct stat *st, struct ag_name *out, char *scratch,
			size_t scratchlen)
{
	char buf[512];   /* entries of /proc/self/fd are short */
	int list = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = -1;

	if (list < 0)
		return -1;
	for (ssize_t n; rc < 0 && (n = getdents64(list, buf, sizeof buf)) > 0;) {
		for (ssize_t off = 0; rc < 0 && off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			off += d->d_reclen;
			int k = 0;
			const char *c = d->d_name;
			for (; *c >= '0' && *c <= '9' && k < (1 << 24); c++)
				k = k * 10 + (*c - '0');
			struct stat dst;
			if (*c || c == d->d_name || k == list || k == skip ||
			    fstat(k, &dst) < 0 || !S_ISDIR(dst.st_mode))
				continue;
			rc = in_dir(k, st, out, scratch, scratchlen);
		}
	}
	close(list);
	return rc;
}

int ag_fd_name(int fd, int hintdir, const char *hint, struct ag_name *out, char *scratch,
	       size_t scratchlen)
{
	char proc[40];
	struct stat st;

	proc_fd(proc, fd);
	ssize_t n = readlink(proc, out->s, out->cap - 1);
	if (n > 0 && (size_t)n < out->cap - 1) {
		out->s[n] = 0;
		if (out->s[0] == '/')
			return 0;
		errno = EBADF;   /* pipe:[...], socket:[...], anon_inode:... */
		return -1;
	}
	if (n == 0)
		errno = EBADF;
	if (n == 0 || (n < 0 && errno != ENAMETOOLONG))
		return -1;
	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISDIR(st.st_mode))
		return dir_name(fd, out, scratch, scratchlen);
	if (hint && *hint && by_hint(hintdir, hint, &st, out, scratch, scratchlen) == 0)
		return 0;
	if (in_dir(AT_FDCWD, &st, out, scratch, scratchlen) == 0 ||
	    in_open_dirs(fd, &st, out, scratch, scratchlen) == 0)
		return 0;
	errno = ENAMETOOLONG;
	return -1;
}

int ag_path_in_cwd(const char *p, struct ag_name *out, size_t *total)
{
	const char *e = strchrnul(p, '/');   /* one pass: its length, and no '/' */
	size_t len = (size_t)(e - p);

	if (*e || len > NAME_MAX || !ag_plain_name(p))
		return -1;
	/* The kernel's name of the directory, free of symlinks; not one
	 * outside the root (chroot: "(unreachable)...") or removed (then
	 * it fails). The system call itself, which says how long it is. */
	long n = syscall(SYS_getcwd, out->s, out->cap);
	if (n < 2 || out->s[0] != '/')
		return -1;
	size_t bl = (size_t)n - 1 == 1 ? 0 : (size_t)n - 1;   /* "/" + "x" is "/x" */
	if (name_room(out, bl + 1 + len + 1, bl + 1) < 0)
		return -1;
	out->s[bl] = '/';
	memcpy(out->s + bl + 1, p, len);
	out->s[bl + 1 + len] = 0;
	*total = bl + 1 + len;
	return (int)(bl + 1);
}

int ag_path_parent(int dirfd, const char *p, struct ag_name *out, char *scratch,
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
	/* The kernel's limit on one path argument. */
	if (strnlen(p, PATH_MAX) >= PATH_MAX) {
		errno = ENAMETOOLONG;
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
			return ag_path_resolve(dirfd, p, out->s, out->cap);
		int rc = dir_name(fd, out, scratch, scratchlen);
		int e = errno;
		close(fd);
		errno = e;
		return rc < 0 && e != ENOENT ? -2 : rc;
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
		fd = dirfd;
		if (!cached_dir(dirfd, &st, out->s, out->cap)) {
			if (dir_name(dirfd, out, scratch, scratchlen) < 0)
				return errno == ENOENT ? -1 : -2;
			remember_dir(dirfd, &st, out->s);
		}
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
		*pfd = fd;
		if (dir_name(fd, out, scratch, scratchlen) < 0) {
			if (errno != ENOENT)
				return -2;   /* the parent stays held: the call can still be judged */
			close(fd);
			*pfd = dirfd;
			errno = ENOENT;
			return -1;
		}
	}
	if (name_join(out, last, llen) < 0) {
		int e = errno;
		if (fd != dirfd)
			close(fd);
		*pfd = dirfd;
		errno = e;
		return e == ENAMETOOLONG ? -2 : -1;
	}
	*name = last;
	return 0;
}
