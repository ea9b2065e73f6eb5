/*
 * The syscall gate: how the library's own real calls get past the kernel
 * layer without being reported a second time.
 *
 * Under `agentguard run` a seccomp filter reports the destructive system
 * calls to the supervisor unless the instruction that made them lies in
 * one page at an address fixed for the session (AGENTGUARD_GATE). Each
 * guarded process maps a few instructions there — "syscall; ret" behind
 * the usual argument shuffle — and the real calls the library has already
 * judged (unlink, rename, writable opens, exec, connect, ...) go through
 * it instead of through libc. Everything else in the process (a static
 * helper it runs, a raw syscall(), libc's own internal calls) still meets
 * the filter.
 *
 * Without a gate (no kernel layer, another architecture, the address
 * taken) the library calls libc as always and the supervisor judges those
 * calls too: slower, never weaker.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "floor.h"
#include "gate.h"
#include "guard.h"

long (*ag_gate)(long nr, long a, long b, long c, long d, long e, long f);

#if defined(__x86_64__)
/* System V argument registers to the kernel's: rdi..r9 and the seventh
 * (stack) argument become rax, rdi, rsi, rdx, r10, r8, r9. */
__asm__(".pushsection .text\n"
	".hidden ag_gate_code\n.hidden ag_gate_code_end\n"
	"ag_gate_code:\n"
	"\tmov %rdi, %rax\n"
	"\tmov %rsi, %rdi\n"
	"\tmov %rdx, %rsi\n"
	"\tmov %rcx, %rdx\n"
	"\tmov %r8, %r10\n"
	"\tmov %r9, %r8\n"
	"\tmov 8(%rsp), %r9\n"
	"\tsyscall\n"
	"\tret\n"
	"ag_gate_code_end:\n"
	".popsection\n");
extern const char ag_gate_code[], ag_gate_code_end[];
#define HAVE_GATE 1
#endif

/* Where the gate goes (AGENTGUARD_GATE, as the constructor saw it); mapped
 * only when a gated call is first needed (most processes — a /bin/true —
 * never need one: its page fault would be the layer's biggest cost for
 * them), or before a fork, so that every child has it already. Read when
 * first needed too: a store from the constructor was a page fault in
 * every process. 1: there is none. */
static uintptr_t gate_at;
static int gate_state;   /* 0 not yet, 1 being mapped, 2 done (mapped or not) */

static uintptr_t gate_addr(void)
{
	uintptr_t a = __atomic_load_n(&gate_at, __ATOMIC_RELAXED);

	if (!a) {
		a = ag_gate_parse(ag_getenv("AGENTGUARD_GATE"));
		__atomic_store_n(&gate_at, a ? a : 1, __ATOMIC_RELAXED);
	}
	return a == 1 ? 0 : a;
}

void ag_gate_ensure(void)
{
#ifdef HAVE_GATE
	int expect = 0;

	/* Not pthread_once: a signal handler may get here while this thread
	 * is mapping it. It then goes without (through libc, to the filter). */
	uintptr_t at = gate_addr();
	if (!at || !__atomic_compare_exchange_n(&gate_state, &expect, 1, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
		return;
	size_t len = (size_t)(ag_gate_code_end - ag_gate_code);
	void *p = mmap((void *)at, AG_GATE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != MAP_FAILED && (uintptr_t)p == at) {
		memcpy(p, ag_gate_code, len);
		if (mprotect(p, AG_GATE_SIZE, PROT_READ | PROT_EXEC) == 0)
			__atomic_store_n(&ag_gate, (void *)p, __ATOMIC_RELEASE);
		else
			munmap(p, AG_GATE_SIZE);
	} else if (p != MAP_FAILED) {
		munmap(p, AG_GATE_SIZE);   /* old kernels map elsewhere instead */
	}
	__atomic_store_n(&gate_state, 2, __ATOMIC_RELEASE);
#endif
}

/* ---- the real calls that go through it --------------------------------------
 * Same contract as libc's: -1 and errno on failure. */

static long ret(long r)
{
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* An open made outside the gate: openat2, which the filter always reports
 * (an append-only or exclusive openat it would let pass). */
static long open_outside(long d, long p, long fl, long m)
{
	struct open_how how = {.flags = (uint64_t)(unsigned)fl, .mode = (uint64_t)(mode_t)m};

	return syscall(SYS_openat2, d, p, &how, sizeof how);
}

/* A real call through the gate, unless the Landlock floor stands in its
 * way (floor.c): then it is made outside the gate, where the kernel layer
 * reports it and the supervisor, which the floor does not bind, judges and
 * makes it. A judged call is routed before it is made; a writable open the
 * library had no reason to judge (a new file, an append) only when the
 * floor refused it. */
static long gate_call(long nr, long a, long b, long c, long d, long e, long f)
{
	if (__builtin_expect(ag_thread.route, 0)) {
		ag_thread.route = 0;
		if (nr == SYS_openat)
			return open_outside(a, b, c, d);
		return syscall(nr, a, b, c, d, e, f);
	}
	long r = ag_gate(nr, a, b, c, d, e, f);
	/* Not the guard's own opens (a snapshot's copy): the supervisor would
	 * judge them as the program's. */
	if (__builtin_expect(r == -EACCES, 0) && nr == SYS_openat && ag_floor_on() &&
	    !ag_thread.busy && !ag_thread.own) {
		/* The kernel makes a new file before the floor refuses to open
		 * it: an exclusive open that met the floor made the file itself,
		 * so the supervisor opens that one (and not a link put there
		 * meanwhile). */
		if (c & O_EXCL)
			c = (c & ~O_EXCL) | O_NOFOLLOW;
		return open_outside(a, b, c, d);
	}
	return ret(r);
}

#define SYS(nr, a, b, c, d, e, f) \
	gate_call((nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static int g_unlink(const char *p) { return (int)SYS(SYS_unlinkat, AT_FDCWD, p, 0, 0, 0, 0); }
static int g_unlinkat(int d, const char *p, int fl) { return (int)SYS(SYS_unlinkat, d, p, fl, 0, 0, 0); }
static int g_rmdir(const char *p) { return (int)SYS(SYS_unlinkat, AT_FDCWD, p, AT_REMOVEDIR, 0, 0, 0); }
static int g_remove(const char *p)
{
	/* As libc's: a file, else a directory (made where the first was). */
	int route = ag_thread.route;
	int rc = g_unlink(p);
	if (rc < 0 && (errno == EISDIR || errno == EPERM)) {
		ag_thread.route = route;
		rc = g_rmdir(p);
	}
	return rc;
}
static int g_rename(const char *a, const char *b)
{
	return (int)SYS(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 0, 0);
}
static int g_renameat(int da, const char *a, int db, const char *b)
{
	return (int)SYS(SYS_renameat2, da, a, db, b, 0, 0);
}
static int g_renameat2(int da, const char *a, int db, const char *b, unsigned fl)
{
	return (int)SYS(SYS_renameat2, da, a, db, b, fl, 0);
}
static int g_truncate(const char *p, off_t len) { return (int)SYS(SYS_truncate, p, len, 0, 0, 0, 0); }
static int g_ftruncate(int fd, off_t len) { return (int)SYS(SYS_ftruncate, fd, len, 0, 0, 0, 0); }
static int g_execve(const char *p, char *const a[], char *const e[])
{
	return (int)SYS(SYS_execve, p, a, e, 0, 0, 0);
}
static int g_execveat(int d, const char *p, char *const a[], char *const e[], int fl)
{
	return (int)SYS(SYS_execveat, d, p, a, e, fl, 0);
}
static int g_fexecve(int fd, char *const a[], char *const e[])
{
	return g_execveat(fd, "", a, e, AT_EMPTY_PATH);
}
static int g_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	return (int)SYS(SYS_connect, fd, sa, len, 0, 0, 0);
}
static int g_link(const char *a, const char *b)
{
	return (int)SYS(SYS_linkat, AT_FDCWD, a, AT_FDCWD, b, 0, 0);
}
static int g_linkat(int da, const char *a, int db, const char *b, int fl)
{
	return (int)SYS(SYS_linkat, da, a, db, b, fl, 0);
}
static int g_symlink(const char *t, const char *p) { return (int)SYS(SYS_symlinkat, t, AT_FDCWD, p, 0, 0, 0); }
static int g_symlinkat(const char *t, int d, const char *p) { return (int)SYS(SYS_symlinkat, t, d, p, 0, 0, 0); }
static int g_mknodat(int d, const char *p, mode_t m, dev_t dev) { return (int)SYS(SYS_mknodat, d, p, m, dev, 0, 0); }
static int g_mknod(const char *p, mode_t m, dev_t dev) { return g_mknodat(AT_FDCWD, p, m, dev); }
static int g_mkfifoat(int d, const char *p, mode_t m) { return g_mknodat(d, p, m | S_IFIFO, 0); }
static int g_mkfifo(const char *p, mode_t m) { return g_mknodat(AT_FDCWD, p, m | S_IFIFO, 0); }
/* mode: the filter stops these too (tools/kernel.c watched64). */
static int g_fchmod(int fd, mode_t m) { return (int)SYS(SYS_fchmod, fd, m, 0, 0, 0, 0); }
static int g_chmod(const char *p, mode_t m) { return (int)SYS(SYS_fchmodat, AT_FDCWD, p, m, 0, 0, 0); }
static int (*libc_fchmodat)(int, const char *, mode_t, int);
static int g_fchmodat(int d, const char *p, mode_t m, int fl)
{
	if (!fl)
		return (int)SYS(SYS_fchmodat, d, p, m, 0, 0, 0);
	/* Only fchmodat2 (Linux 6.6) takes flags; before it libc has its own
	 * way (the filter then reports what it calls). */
	int rc = (int)SYS(452 /* fchmodat2 */, d, p, m, fl, 0, 0);
	return rc < 0 && errno == ENOSYS ? libc_fchmodat(d, p, m, fl) : rc;
}
static int g_fchown(int fd, uid_t u, gid_t g) { return (int)SYS(SYS_fchown, fd, u, g, 0, 0, 0); }
static int g_fchownat(int d, const char *p, uid_t u, gid_t g, int fl)
{
	return (int)SYS(SYS_fchownat, d, p, u, g, fl, 0);
}
static int g_chown(const char *p, uid_t u, gid_t g) { return g_fchownat(AT_FDCWD, p, u, g, 0); }
static int g_lchown(const char *p, uid_t u, gid_t g)
{
	return g_fchownat(AT_FDCWD, p, u, g, AT_SYMLINK_NOFOLLOW);
}
static int g_creat(const char *p, mode_t m)
{
	return (int)SYS(SYS_openat, AT_FDCWD, p, O_CREAT | O_WRONLY | O_TRUNC, m, 0, 0);
}

/* An open goes through the gate only when the filter would stop it (it
 * truncates or can write, tools/kernel.c open_flags): the others stay
 * libc's, cancellation point and all. */
static int (*libc_open)(const char *, int, ...);
static int (*libc_openat)(int, const char *, int, ...);

/* open's mode argument exists only with O_CREAT or O_TMPFILE. */
#define OPEN_MODE(fl) ({ mode_t m_ = 0;                                         \
	if (((fl) & O_CREAT) || ((fl) & O_TMPFILE) == O_TMPFILE) {               \
		va_list ap_; va_start(ap_, fl); m_ = (mode_t)va_arg(ap_, int);   \
		va_end(ap_); }                                                   \
	m_; })

static int gated_open(int d, const char *p, int fl, mode_t m)
{
	return (int)SYS(SYS_openat, d, p, fl | O_LARGEFILE, m, 0, 0);
}
static int reads_only(int fl)
{
	return !(fl & O_TRUNC) && (fl & O_ACCMODE) == O_RDONLY;
}
static int g_openat(int d, const char *p, int fl, ...)
{
	mode_t m = OPEN_MODE(fl);
	return reads_only(fl) ? libc_openat(d, p, fl, m) : gated_open(d, p, fl, m);
}
static int g_open(const char *p, int fl, ...)
{
	mode_t m = OPEN_MODE(fl);
	return reads_only(fl) ? libc_open(p, fl, m) : gated_open(AT_FDCWD, p, fl, m);
}
static int g_fallocate(int fd, int mode, off_t off, off_t len)
{
	return (int)SYS(SYS_fallocate, fd, mode, off, len, 0, 0);
}
static ssize_t (*libc_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
static ssize_t g_sendto(int fd, const void *b, size_t n, int fl, const struct sockaddr *sa,
			socklen_t len)
{
	if (!sa)
		return libc_sendto(fd, b, n, fl, sa, len);
	return SYS(SYS_sendto, fd, b, n, fl, sa, len);
}

/* The gated replacement for a real function, or NULL: the filter never
 * stops it, or there is no gate. lib is libc's function (kept for what
 * needs no gate). */
void *ag_gate_real(const char *name, void *lib)
{
	static const struct { const char *name; void *fn; } table[] = {
		{"unlink", g_unlink}, {"unlinkat", g_unlinkat}, {"rmdir", g_rmdir},
		{"remove", g_remove}, {"rename", g_rename}, {"renameat", g_renameat},
		{"renameat2", g_renameat2}, {"truncate", g_truncate}, {"truncate64", g_truncate},
		{"ftruncate", g_ftruncate}, {"ftruncate64", g_ftruncate},
		{"fallocate", g_fallocate}, {"fallocate64", g_fallocate},
		{"execve", g_execve}, {"execveat", g_execveat}, {"fexecve", g_fexecve},
		{"connect", g_connect}, {"creat", g_creat}, {"creat64", g_creat},
		{"open", g_open}, {"open64", g_open}, {"openat", g_openat}, {"openat64", g_openat},
		{"sendto", g_sendto}, {"link", g_link}, {"linkat", g_linkat},
		{"symlink", g_symlink}, {"symlinkat", g_symlinkat}, {"mknod", g_mknod},
		{"mknodat", g_mknodat}, {"mkfifo", g_mkfifo}, {"mkfifoat", g_mkfifoat},
		{"chmod", g_chmod}, {"fchmod", g_fchmod}, {"fchmodat", g_fchmodat},
		{"chown", g_chown}, {"fchown", g_fchown}, {"lchown", g_lchown},
		{"fchownat", g_fchownat},
	};

	if (!gate_addr() || !lib)
		return NULL;
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		if (strcmp(table[i].name, name) != 0)
			continue;
		ag_gate_ensure();
		if (!__atomic_load_n(&ag_gate, __ATOMIC_ACQUIRE))
			return NULL;
		if (strncmp(name, "openat", 6) == 0)
			libc_openat = lib;
		else if (strncmp(name, "open", 4) == 0)
			libc_open = lib;
		else if (strcmp(name, "sendto") == 0)
			libc_sendto = lib;
		else if (strcmp(name, "fchmodat") == 0)
			libc_fchmodat = lib;
		return table[i].fn;
	}
	return NULL;
}
