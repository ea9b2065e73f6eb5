/* libc's own functions, found once. */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>

#include "guard.h"

struct ag_real ag_real;

static void resolve(void **slot, const char *name, void *ours)
{
	void *f = dlsym(RTLD_NEXT, name);

	/* RTLD_NEXT can only give our own hook back if the library were loaded
	 * twice; calling it would recurse forever. */
	if (f == ours)
		f = NULL;
	__atomic_store_n(slot, f, __ATOMIC_RELEASE);
}

static void real_init_once(void)
{
#define R(name) resolve((void **)&ag_real.name, #name, (void *)name)
	R(unlink); R(unlinkat); R(remove); R(rmdir);
	R(rename); R(renameat); R(renameat2);
	R(open); R(open64); R(openat); R(openat64); R(creat); R(creat64);
	R(__open_2); R(__open64_2); R(__openat_2); R(__openat64_2);
	R(fopen); R(fopen64); R(freopen); R(freopen64);
	R(truncate); R(truncate64); R(ftruncate); R(ftruncate64);
	R(execve); R(execv); R(execvp); R(execvpe); R(fexecve); R(execveat);
	R(system); R(popen);
#undef R
	/* posix_spawn has an old and a current version; programs link the
	 * current one, and dlsym might hand back either. */
	void *f = dlvsym(RTLD_NEXT, "posix_spawn", "GLIBC_2.15");
	ag_real.posix_spawn = f ? f : dlsym(RTLD_NEXT, "posix_spawn");
	f = dlvsym(RTLD_NEXT, "posix_spawnp", "GLIBC_2.15");
	ag_real.posix_spawnp = f ? f : dlsym(RTLD_NEXT, "posix_spawnp");
}

void ag_real_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, real_init_once);
}
