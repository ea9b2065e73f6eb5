/*
 * libc's own functions, found once, and the core's way to them.
 *
 * The core (session, snapshot, spool, policy loading, hashing, launch,
 * guard.c) is shared with the CLI and calls unlink, rename, open, ... by
 * their plain names. Inside the library those names are our own hooks, so
 * the build renames every such reference in the core's objects to
 * ag_libc_<name> (objcopy --redefine-syms, from lib/interpose.def), and
 * ag_libc_<name> below calls the real function. The core never re-enters
 * its own interposers, whatever it calls, and test/check-exports.sh fails
 * the build if a core object still refers to an interposed name.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include "gate.h"
#include "guard.h"

struct ag_real ag_real;

static void *libc;
/* Where this library is mapped. */
static uintptr_t self_lo, self_hi;
extern const char __ehdr_start __attribute__((visibility("hidden")));

static int find_self(struct dl_phdr_info *info, size_t size, void *unused)
{
	uintptr_t me = (uintptr_t)&__ehdr_start, lo = UINTPTR_MAX, hi = 0;

	(void)size;
	(void)unused;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;
		if (a < lo)
			lo = a;
		if (a + ph->p_memsz > hi)
			hi = a + ph->p_memsz;
	}
	if (me < lo || me >= hi)
		return 0;
	self_lo = lo;
	self_hi = hi;
	return 1;
}

/* Is f one of our own hooks? Judged by where it lives, not by comparing
 * with `unlink`: inside a library loaded with dlopen, that name means
 * libc's unlink. (dladdr would do, but costs ~5 us a call in every
 * process start.) */
static int ours(void *f)
{
	return f && (uintptr_t)f >= self_lo && (uintptr_t)f < self_hi;
}

/* libc itself, for when RTLD_NEXT does not lead to it (and for
 * hooks/dlsym.c): asked only then, since opening even a loaded libc
 * allocates (a process's first malloc: three system calls and its heap's
 * first pages). dlopen hands every thread the same handle. */
void *ag_libc_handle(void)
{
	void *h = __atomic_load_n(&libc, __ATOMIC_ACQUIRE);

	if (!h) {
		h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
		__atomic_store_n(&libc, h, __ATOMIC_RELEASE);
	}
	return h;
}

static void resolve(void **slot, const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	/* Loaded with dlopen (agentguard run starts the agent through our
	 * execvp), RTLD_NEXT may see nothing after us: ask libc itself. Never
	 * our own hook, which would recurse forever. */
	if ((!f || ours(f)) && ag_libc_handle())
		f = dlsym(libc, name);
	if (ours(f))
		f = NULL;
	/* Under the kernel layer, calls it would report go through the gate. */
	void *g = ag_gate_real(name, f);
	if (g)
		f = g;
	__atomic_store_n(slot, f, __ATOMIC_RELEASE);
}

/* Where we are: needed before any lookup. */
static void where_once(void)
{
	dl_iterate_phdr(find_self, NULL);
}

static int where;

void ag_once_slow(int *state, void (*fn)(void))
{
	int v = 0;

	if (__atomic_compare_exchange_n(state, &v, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
		fn();
		if (__atomic_exchange_n(state, AG_ONCE_DONE, __ATOMIC_RELEASE) == 2)
			syscall(SYS_futex, state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
		return;
	}
	while (v != AG_ONCE_DONE) {
		if (v == 1 && !__atomic_compare_exchange_n(state, &v, 2, 0, __ATOMIC_ACQUIRE,
							   __ATOMIC_ACQUIRE))
			continue;   /* v now holds what changed */
		syscall(SYS_futex, state, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
		v = __atomic_load_n(state, __ATOMIC_ACQUIRE);
	}
}

void ag_once_after_fork(int *state)
{
	if (__atomic_load_n(state, __ATOMIC_RELAXED) != AG_ONCE_DONE)
		__atomic_store_n(state, 0, __ATOMIC_RELAXED);
}

/* For lib/hooks/dlsym.c: is f (a function, a return address) ours? */
int ag_real_ours(const void *f)
{
	ag_once(&where, where_once);
	return ours((void *)f);
}

static void *real_next(const char *name)
{
	ag_once(&where, where_once);
	/* posix_spawn has an old and a current version; programs link the
	 * current one, and dlsym might hand back either. */
	if (strcmp(name, "posix_spawn") == 0 || strcmp(name, "posix_spawnp") == 0) {
		void *f = dlvsym(RTLD_NEXT, name, "GLIBC_2.15");
		if (!f && ag_libc_handle())
			f = dlvsym(libc, name, "GLIBC_2.15");
		if (f && !ours(f))
			return f;
	}
	void *f = NULL;
	resolve(&f, name);
	return f;
}

void *ag_real_get(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (!f) {
		f = real_next(name);
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	}
	return f;
}

static void real_init_once(void)
{
#define AG_LIBC(ret, name, params, args) ag_real_get((void **)&ag_real.name, #name);
#define AG_LIBC_VA(ret, name, params) ag_real_get((void **)&ag_real.name, #name);
#define AG_ENTRY(name)
#define AG_CLIENT(name)
#include "interpose.def"
#undef AG_LIBC
#undef AG_LIBC_VA
}

static int real_once;

void ag_real_init(void)
{
	ag_once(&real_once, real_init_once);
}

void ag_real_after_fork(void)
{
	ag_once_after_fork(&where);
	ag_once_after_fork(&real_once);
}

/* ---- the core's calls (see the top of this file) --------------------------- */

#define AG_LIBC(ret, name, params, args) \
	__attribute__((visibility("hidden"))) ret ag_libc_##name params;  \
	ret ag_libc_##name params { return AG_REAL(name) args; }
#define AG_LIBC_VA(ret, name, params)
#include "interpose.def"
#undef AG_LIBC
#undef AG_LIBC_VA
#undef AG_ENTRY
#undef AG_CLIENT

/* open's mode argument exists only with O_CREAT or O_TMPFILE. */
#define VA_MODE(flags, last) ({ mode_t m_ = 0;                                  \
	if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) {           \
		va_list ap_; va_start(ap_, last); m_ = (mode_t)va_arg(ap_, int);   \
		va_end(ap_); }                                                     \
	m_; })

#define OPEN_VA(name, params, args)                                             \
	__attribute__((visibility("hidden"))) int ag_libc_##name params;        \
	int ag_libc_##name params                                              \
	{                                                                       \
		mode_t mode = VA_MODE(flags, flags);                            \
		return AG_REAL(name) args;                                      \
	}
OPEN_VA(open, (const char *path, int flags, ...), (path, flags, mode))
OPEN_VA(open64, (const char *path, int flags, ...), (path, flags, mode))
OPEN_VA(openat, (int dirfd, const char *path, int flags, ...), (dirfd, path, flags, mode))
OPEN_VA(openat64, (int dirfd, const char *path, int flags, ...), (dirfd, path, flags, mode))

void *ag_client_sym(const char *const *sonames, const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	/* A client library loaded RTLD_LOCAL is not after us in the global
	 * scope, but it is loaded all the same. */
	for (const char *const *so = sonames; !f && *so; so++) {
		void *h = dlopen(*so, RTLD_LAZY | RTLD_NOLOAD);
		if (h)
			f = dlsym(h, name);
	}
	return f;
}
