/*
 * What the kernel layer's supervisor (tools/kernel.c) asks of the library
 * (lib/hooks/kernel.c). The supervisor loads libagentguard.so into itself
 * and completes a reported system call by making the same call through the
 * library's own entry points (unlinkat, renameat2, openat, ...), on the
 * reporting process's behalf: the call is decided, snapshotted, recorded
 * and refused exactly as it would be inside that process, and it acts on
 * what was judged. These names are exported (agentguard_ prefix) and found
 * with dlsym.
 */
#ifndef AGENTGUARD_KERNEL_ABI_H
#define AGENTGUARD_KERNEL_ABI_H

#include <stdint.h>

/* The process a call is made for, as /proc shows it. */
struct agentguard_kproc {
	int pid;                   /* thread group id */
	int ppid;
	uint64_t start;            /* start time (clock ticks since boot) */
	const char *exe;           /* absolute, or NULL */
	const char *cwd;           /* absolute, or NULL */
	const char *const *argv;   /* NULL-terminated, or NULL */
	/* Made inside libc beneath an entry point the library judges itself
	 * (posix_spawn, system) or by libc's own name service and logging
	 * (nscd, DNS, syslog): judged as ever, but an allowed call leaves no
	 * row of its own. */
	int quiet;
};

/* Calls this thread makes into the library until agentguard_kernel_end are
 * recorded for p (pid, exe, argv, cwd) and marked as seen by the kernel
 * layer; `program:` rules match p's exe. p must stay valid meanwhile. */
typedef void agentguard_kernel_begin_fn(const struct agentguard_kproc *p);
typedef void agentguard_kernel_end_fn(void);

/* Judge an exec the supervisor cannot make itself (it lets the process go
 * on if allowed): 0 go ahead, -1 with errno (EACCES) refused. dirfd is the
 * supervisor's descriptor for the process's directory (or AT_FDCWD with an
 * absolute path); flags as execveat's (AT_EMPTY_PATH). */
typedef int agentguard_kernel_exec_fn(int dirfd, const char *path, char *const argv[],
				      int flags);
/* Judge an operation that has no libc call to make it through: op
 * "io_uring" (a ring that would act unseen) or "connect" (a sendto/sendmsg
 * address, judged like a connect to it). 0 go ahead, -1 with errno. */
typedef int agentguard_kernel_judge_fn(const char *op, const void *addr, unsigned addrlen);
/* Record a refusal the supervisor made itself (a call it cannot judge,
 * such as a 32-bit system call): op, subject, reason. */
typedef void agentguard_kernel_refuse_fn(const char *op, const char *path, const char *reason);

/* Counting for the session, which the supervisor alone does under the
 * Landlock floor: a process asks with system call AGENTGUARD_KMSG (which
 * exists nowhere else; the filter always reports it), what = one of these
 * and n, and the supervisor answers through agentguard_kernel_count. */
#define AGENTGUARD_KMSG 1023
enum {
	AGENTGUARD_COUNT_DENIAL = 1,    /* one more denial (n unused) */
	AGENTGUARD_COUNT_RESERVE = 2,   /* n bytes of the snapshot budget: 0 or -EDQUOT */
	AGENTGUARD_COUNT_RELEASE = 3,   /* n reserved bytes given back */
	/* Not counting: take a copy of the caller's spool (tools/kernel.c),
	 * n its name; the next argument 1: before the call returns. */
	AGENTGUARD_COPY_SPOOL = 4,
};
typedef long agentguard_kernel_count_fn(int what, uint64_t n);

#endif
