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

static void *libc;
static void *self_base;

/* Is f one of our own hooks? Compared by object, not by address: inside a
 * library loaded with dlopen, `unlink` names libc's unlink, not ours. */
static int ours(void *f)
{
	Dl_info di;

	return f && dladdr(f, &di) && di.dli_fbase == self_base;
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

static void real_init_once(void)
{
	Dl_info di;
	if (dladdr((void *)ours, &di))
		self_base = di.dli_fbase;
	libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
#define R(name) resolve((void **)&ag_real.name, #name)
	R(unlink); R(unlinkat); R(remove); R(rmdir);
	R(rename); R(renameat); R(renameat2);
	R(open); R(open64); R(openat); R(openat64); R(creat); R(creat64);
	R(__open_2); R(__open64_2); R(__openat_2); R(__openat64_2);
	R(fopen); R(fopen64); R(freopen); R(freopen64);
	R(truncate); R(truncate64); R(ftruncate); R(ftruncate64);
	R(execve); R(execv); R(execvp); R(execvpe); R(fexecve); R(execveat);
	R(system); R(popen);
	/* posix_spawn has an old and a current version; programs link the
	 * current one, and dlsym might hand back either. */
	void *f = dlvsym(RTLD_NEXT, "posix_spawn", "GLIBC_2.15");
	if (!f && libc)
		f = dlvsym(libc, "posix_spawn", "GLIBC_2.15");
	if (f)
		ag_real.posix_spawn = f;
	else
		R(posix_spawn);
	f = dlvsym(RTLD_NEXT, "posix_spawnp", "GLIBC_2.15");
	if (!f && libc)
		f = dlvsym(libc, "posix_spawnp", "GLIBC_2.15");
	if (f)
		ag_real.posix_spawnp = f;
	else
		R(posix_spawnp);
#undef R
}

void ag_real_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, real_init_once);
}
