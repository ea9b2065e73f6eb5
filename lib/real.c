/* libc's own functions, found once. */
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>

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

static void resolve(void **slot, const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	/* Loaded with dlopen (agentguard run starts the agent through our
	 * execvp), RTLD_NEXT may see nothing after us: ask libc itself. Never
	 * our own hook, which would recurse forever. */
	if ((!f || ours(f)) && libc)
		f = dlsym(libc, name);
	if (ours(f))
		f = NULL;
	__atomic_store_n(slot, f, __ATOMIC_RELEASE);
}

/* Where we are and where libc is: needed before any lookup. */
static void where_once(void)
{
	dl_iterate_phdr(find_self, NULL);
	libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
}

static pthread_once_t where = PTHREAD_ONCE_INIT;

void *ag_real_next(const char *name)
{
	pthread_once(&where, where_once);
	/* posix_spawn has an old and a current version; programs link the
	 * current one, and dlsym might hand back either. */
	if (strcmp(name, "posix_spawn") == 0 || strcmp(name, "posix_spawnp") == 0) {
		void *f = dlvsym(RTLD_NEXT, name, "GLIBC_2.15");
		if (!f && libc)
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
		f = ag_real_next(name);
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	}
	return f;
}

static void real_init_once(void)
{
#define R(name) ag_real_get((void **)&ag_real.name, #name)
	R(unlink); R(unlinkat); R(remove); R(rmdir);
	R(rename); R(renameat); R(renameat2);
	R(open); R(open64); R(openat); R(openat64); R(creat); R(creat64);
	R(__open_2); R(__open64_2); R(__openat_2); R(__openat64_2);
	R(fopen); R(fopen64); R(freopen); R(freopen64);
	R(truncate); R(truncate64); R(ftruncate); R(ftruncate64);
	R(execve); R(execv); R(execvp); R(execvpe); R(fexecve); R(execveat);
	R(system); R(popen); R(posix_spawn); R(posix_spawnp);
#undef R
}

void ag_real_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, real_init_once);
}

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
