/*
 * The kernel layer's way into the guard (lib/kernel_abi.h). The supervisor
 * in `agentguard run` loads this library into itself and makes a reported
 * call through the library's own entries (unlinkat, openat, ...) with
 * agentguard_kernel_begin naming the process it acts for. What cannot be
 * made on another's behalf (an exec) or has no call (a ring, an address
 * judged for sendto) is judged here.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "guard.h"

#include "kernel_abi.h"

static pthread_once_t noted = PTHREAD_ONCE_INIT;

/* Once, before anything of the supervisor's is counted or recorded. */
static void supervisor_note(void)
{
	pthread_once(&noted, ag_supervisor_note);
}

AG_EXPORT void agentguard_kernel_begin(const struct agentguard_kproc *p)
{
	supervisor_note();
	ag_behalf = p;
}

AG_EXPORT void agentguard_kernel_end(void)
{
	ag_behalf = NULL;
}

AG_EXPORT int agentguard_kernel_exec(int dirfd, const char *path, char *const argv[],
				     int flags)
{
	struct ag_call c;

	ag_begin(&c, AG_OP_EXEC);
	/* execveat(fd, "", AT_EMPTY_PATH) runs the file behind fd. */
	const char *file = (flags & AT_EMPTY_PATH) && path && !*path ? "" : path;
	int set = ag_set_exec(&c, dirfd, file, argv, 0);
	if (set < 0 || (set == 0 && ag_check(&c) < 0))
		return ag_refuse(&c);
	if (set == 0)
		ag_release(&c);
	else
		ag_skip(&c);   /* no such program: the kernel says so itself */
	return 0;
}

AG_EXPORT int agentguard_kernel_judge(const char *op, const void *addr, unsigned addrlen)
{
	struct ag_call c;

	if (op && strcmp(op, "connect") == 0)
		return ag_judge_address(addr, (socklen_t)addrlen);
	if (!op || strcmp(op, "io_uring") != 0) {
		errno = EINVAL;
		return -1;
	}
	ag_begin(&c, AG_OP_IO_URING);
	if (ag_check(&c) < 0)
		return ag_refuse(&c);
	ag_release(&c);
	return 0;
}

AG_EXPORT void agentguard_kernel_refuse(const char *op, const char *path, const char *reason)
{
	struct ag_call c;
	int kind = ag_op_parse(op);

	ag_begin(&c, kind < 0 ? AG_OP_EXEC : (enum ag_op_kind)kind);
	c.op.path = path;
	ag_check_refuse(&c, "agentguard-kernel", reason);
	ag_refuse(&c);
}

AG_EXPORT long agentguard_kernel_count(int what, uint64_t n)
{
	supervisor_note();
	return ag_count(what, n);
}
