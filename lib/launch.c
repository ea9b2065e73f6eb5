/* Which program will run, and with what environment. See launch.h. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "launch.h"

extern char **environ;

static const char *const *session_vars;   /* "NAME=value", NULL-terminated */
static size_t session_var_len[64];         /* of each NAME */
static const char *self;                  /* this library, resolved */
static const char *self_given;            /* as LD_PRELOAD named it at start */
static const char *san_rt;                /* make asan: the ASan runtime */

#if defined(__SANITIZE_ADDRESS__)
#include <dlfcn.h>
extern void __asan_init(void);

/* An ASan-built library needs its runtime preloaded ahead of it into
 * programs not built with it, so a child whose environment was wiped
 * (env -i) gets the runtime back along with this library. */
static const char *find_san_rt(void)
{
	Dl_info di;

	return dladdr((void *)__asan_init, &di) && di.dli_fname && di.dli_fname[0] == '/'
		       ? di.dli_fname : NULL;
}
#else
static const char *find_san_rt(void)
{
	return NULL;
}
#endif

void ag_launch_set(const char *const *vars, const char *s, const char *given)
{
	session_vars = vars;
	for (size_t i = 0; vars && vars[i] && i < 64; i++)
		session_var_len[i] = (size_t)(strchrnul(vars[i], '=') - vars[i]);
	self = s;
	self_given = given && *given ? given : s;
	san_rt = find_san_rt();
}

/* ---- resolving ---------------------------------------------------------- */

static int absolute(const char *p, char *out, size_t outlen)
{
	char cwd[AG_PATH_MAX];

	if (p[0] != '/' && !getcwd(cwd, sizeof cwd))
		return -1;
	if (ag_path_lexical(p[0] == '/' ? "/" : cwd, p, out, outlen) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int ag_path_next(const char **cursor, const char *file, char *cand, size_t cap)
{
	size_t flen = strlen(file);

	while (*cursor) {
		const char *p = *cursor, *end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		*cursor = *end ? end + 1 : NULL;
		if (dlen + flen + 2 > cap)
			continue;
		/* An empty entry means the current directory. */
		if (dlen == 0) {
			memcpy(cand, file, flen + 1);
		} else {
			memcpy(cand, p, dlen);
			cand[dlen] = '/';
			memcpy(cand + dlen + 1, file, flen + 1);
		}
		return 1;
	}
	return 0;
}

const char *ag_search_path(void)
{
	const char *path = getenv("PATH");

	return path ? path : "/bin:/usr/bin";   /* glibc's default search path */
}

int ag_launch_resolve(const char *file, char *out, size_t outlen)
{
	char cand[AG_PATH_MAX];
	int seen_eacces = 0;

	if (!file || !*file) {
		errno = ENOENT;
		return -1;
	}
	if (strchr(file, '/'))
		return absolute(file, out, outlen);
	for (const char *cur = ag_search_path(); ag_path_next(&cur, file, cand, sizeof cand);) {
		if (executable(cand))
			return absolute(cand, out, outlen);
		if (errno == EACCES)
			seen_eacces = 1;
	}
	errno = seen_eacces ? EACCES : ENOENT;
	return -1;
}

/* ---- unguarded targets -------------------------------------------------- */

/* 1: a dynamically linked ELF (has an interpreter); 0: static ELF;
 * -1: not ELF. */
static int elf_dynamic(int fd)
{
	unsigned char id[EI_NIDENT];

	if (pread(fd, id, sizeof id, 0) != sizeof id || memcmp(id, ELFMAG, SELFMAG) != 0)
		return -1;
	if (id[EI_CLASS] == ELFCLASS64) {
		Elf64_Ehdr eh;
		if (pread(fd, &eh, sizeof eh, 0) != sizeof eh)
			return -1;
		for (int i = 0; i < eh.e_phnum && i < 256; i++) {
			Elf64_Phdr ph;
			if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) != sizeof ph)
				return -1;
			if (ph.p_type == PT_INTERP)
				return 1;
		}
		return 0;
	}
	if (id[EI_CLASS] == ELFCLASS32) {
		Elf32_Ehdr eh;
		if (pread(fd, &eh, sizeof eh, 0) != sizeof eh)
			return -1;
		for (int i = 0; i < eh.e_phnum && i < 256; i++) {
			Elf32_Phdr ph;
			if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint32_t)i * eh.e_phentsize)) != sizeof ph)
				return -1;
			if (ph.p_type == PT_INTERP)
				return 1;
		}
		return 0;
	}
	return -1;
}

static const char *unguarded_depth(const char *path, int depth)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return NULL;
	/* The loader drops LD_PRELOAD in secure mode: a set-id program that
	 * changes our ids, or one that gains capabilities. Not under
	 * no-new-privs (the kernel layer sets it): there nothing is gained,
	 * the program runs as its caller and is preloaded as usual. */
	/* Once set it cannot be cleared: a yes is asked once per process. */
	static int nnp;
	if (!nnp)
		nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
	if (!nnp) {
		if ((st.st_mode & S_ISUID) && st.st_uid != geteuid())
			return "setuid";
		if ((st.st_mode & S_ISGID) && st.st_gid != getegid())
			return "setgid";
		if (getxattr(path, "security.capability", NULL, 0) > 0)
			return "capabilities";
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	const char *why = NULL;
	int dyn = elf_dynamic(fd);
	if (dyn == 0) {
		why = "static";
	} else if (dyn < 0 && depth == 0) {
		/* A script runs its interpreter: judge that instead. */
		char line[256];
		ssize_t n = pread(fd, line, sizeof line - 1, 0);
		if (n > 2 && line[0] == '#' && line[1] == '!') {
			line[n] = 0;
			char *s = line + 2;
			while (*s == ' ' || *s == '\t')
				s++;
			s[strcspn(s, " \t\n")] = 0;
			if (*s == '/')
				why = unguarded_depth(s, 1);
		}
	}
	close(fd);
	return why;
}

/* The verdict for the last few programs, by inode and change time: a
 * shell starts the same few programs again and again, and reading each
 * one's ELF headers costs six system calls. A trylock, never a wait: this
 * runs in vfork children (whose writes land in the parent, which is what
 * keeps the cache warm). */
static struct verdict {
	dev_t dev;
	ino_t ino;
	struct timespec ctime;
	const char *why;
	int valid;
} verdicts[8];
static unsigned verdicts_next;
static pthread_mutex_t verdicts_mu = PTHREAD_MUTEX_INITIALIZER;

const char *ag_launch_unguarded(const char *path)
{
	struct stat st;

	if (!path || stat(path, &st) < 0)
		return NULL;
	if (pthread_mutex_trylock(&verdicts_mu) == 0) {
		for (unsigned i = 0; i < sizeof verdicts / sizeof verdicts[0]; i++) {
			struct verdict *v = &verdicts[i];
			if (v->valid && v->dev == st.st_dev && v->ino == st.st_ino &&
			    v->ctime.tv_sec == st.st_ctim.tv_sec &&
			    v->ctime.tv_nsec == st.st_ctim.tv_nsec) {
				const char *why = v->why;
				pthread_mutex_unlock(&verdicts_mu);
				return why;
			}
		}
		pthread_mutex_unlock(&verdicts_mu);
	}
	const char *why = unguarded_depth(path, 0);
	if (pthread_mutex_trylock(&verdicts_mu) == 0) {
		verdicts[verdicts_next++ % (sizeof verdicts / sizeof verdicts[0])] =
			(struct verdict){st.st_dev, st.st_ino, st.st_ctim, why, 1};
		pthread_mutex_unlock(&verdicts_mu);
	}
	return why;
}

/* ---- the child's environment ------------------------------------------- */

static int is_var(const char *entry, const char *name, size_t len)
{
	return strncmp(entry, name, len) == 0 && entry[len] == '=';
}

static int ours(const char *entry)
{
	return is_var(entry, "LD_PRELOAD", 10) || strncmp(entry, "AGENTGUARD_", 11) == 0;
}

/* Does the colon/space separated list hold `want`? */
static int list_has(const char *list, const char *want)
{
	size_t wl = strlen(want);

	for (const char *p = list; *p;) {
		size_t l = strcspn(p, ": ");
		if (l == wl && strncmp(p, want, wl) == 0)
			return 1;
		p += l;
		if (*p)
			p++;
	}
	return 0;
}

static const char *first(char *const envp[], const char *name, size_t len)
{
	for (char *const *e = envp; e && *e; e++)
		if (is_var(*e, name, len))
			return *e + len + 1;
	return NULL;
}

/* One pass over envp (an exec's environment can be long, the session's
 * variables are a handful): each entry is looked at once, and only those
 * that are ours are compared. As getenv does, the first of a name counts. */
int ag_launch_env_intact(char *const envp[])
{
	if (!session_vars || !self)
		return 1;   /* nothing to carry (no session) */
	const char *pre = NULL;
	uint64_t seen = 0, good = 0, all = 0;
	size_t nv = 0;

	for (; nv < 64 && session_vars[nv]; nv++)
		all |= 1ull << nv;
	for (char *const *e = envp; e && *e; e++) {
		const char *s = *e;
		if (s[0] == 'L') {
			if (!pre && is_var(s, "LD_PRELOAD", 10))
				pre = s + 11;
			continue;
		}
		if (s[0] != 'A' || strncmp(s, "AGENTGUARD_", 11) != 0)
			continue;
		const char *eq = strchr(s + 11, '=');
		if (!eq)
			continue;
		size_t nl = (size_t)(eq - s);
		for (size_t i = 0; i < nv; i++) {
			const char *v = session_vars[i];
			if (session_var_len[i] != nl || memcmp(v + 11, s + 11, nl - 11) != 0)
				continue;
			if (!(seen & (1ull << i))) {
				seen |= 1ull << i;
				if (strcmp(v + nl + 1, eq + 1) == 0)
					good |= 1ull << i;
			}
			break;
		}
	}
	if (!pre || !(list_has(pre, self) || list_has(pre, self_given)))
		return 0;
	return good == all;
}

size_t ag_launch_env_slots(char *const envp[])
{
	size_t n = 0, s = 0;

	for (char *const *e = envp; e && *e; e++)
		n++;
	for (const char *const *v = session_vars; v && *v; v++)
		s++;
	return n + s + 2;
}

size_t ag_launch_preload_len(char *const envp[])
{
	const char *pre = first(envp, "LD_PRELOAD", 10);

	return strlen("LD_PRELOAD=") + (san_rt ? strlen(san_rt) + 1 : 0) +
	       (self ? strlen(self) : 0) + 1 + (pre ? strlen(pre) : 0) + 1;
}

char *const *ag_launch_env_build(char *const envp[], const char **slots,
				 char *preload, size_t preload_len)
{
	size_t n = 0, off;
	const char *pre = first(envp, "LD_PRELOAD", 10);

	for (char *const *e = envp; e && *e; e++)
		if (!ours(*e))
			slots[n++] = *e;
	for (const char *const *v = session_vars; v && *v; v++)
		slots[n++] = *v;

	/* This library first, then whatever else was preloaded. */
	int rt = san_rt && !(pre && list_has(pre, san_rt));
	off = (size_t)snprintf(preload, preload_len, "LD_PRELOAD=%s%s%s", rt ? san_rt : "",
			       rt ? ":" : "", self ? self : "");
	for (const char *p = pre; p && *p;) {
		size_t l = strcspn(p, ": ");
		int dup = (self && l == strlen(self) && strncmp(p, self, l) == 0) ||
			  (self_given && l == strlen(self_given) && strncmp(p, self_given, l) == 0);
		if (l && !dup && off + l + 2 <= preload_len) {
			preload[off++] = ':';
			memcpy(preload + off, p, l);
			off += l;
			preload[off] = 0;
		}
		p += l;
		if (*p)
			p++;
	}
	slots[n++] = preload;
	slots[n] = NULL;
	return (char *const *)slots;
}

void ag_launch_repair_environ(void)
{
	if (ag_launch_env_intact(environ))
		return;
	size_t pl = ag_launch_preload_len(environ);
	char pre[pl];
	const char *slots[ag_launch_env_slots(environ)];
	ag_launch_env_build(environ, slots, pre, pl);
	setenv("LD_PRELOAD", pre + strlen("LD_PRELOAD="), 1);
	for (const char *const *v = session_vars; v && *v; v++) {
		char name[64];
		size_t nl = (size_t)(strchr(*v, '=') - *v);
		if (nl >= sizeof name)
			continue;
		memcpy(name, *v, nl);
		name[nl] = 0;
		setenv(name, *v + nl + 1, 1);
	}
}
