/* libc's own functions, found once. */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
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
#undef R
}

void ag_real_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, real_init_once);
}
