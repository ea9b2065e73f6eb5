/*
 * A dynamically linked program (built by t_floor.sh) written to get past
 * agentguard: it makes its system calls through the session's gate page
 * (AGENTGUARD_GATE), which the seccomp filter lets pass unreported, as
 * code that read its own environment and memory map could. Only the
 * Landlock floor stands in its way. Prints "OP ARG: ok" or "OP ARG: <errno
 * name>" per operation.
 *
 *   rm P | rmdir P | mv A B | trunc P (open O_TRUNC) | write P (in place)
 *   creat P (a new file) | link A B | kill PID
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

typedef long gate_fn(long nr, long a, long b, long c, long d, long e, long f);
static gate_fn *gate;

static int call(long nr, long a, long b, long c, long d, long e)
{
	long r = gate(nr, a, b, c, d, e, 0);
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return (int)r;
}

static void say(const char *op, const char *arg, int rc)
{
	printf("%s %s: %s\n", op, arg, rc < 0 ? strerrorname_np(errno) : "ok");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *g = getenv("AGENTGUARD_GATE");
	if (!g) {
		puts("no gate");
		return 2;
	}
	/* The library maps the gate before a fork, so each child has it. */
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	gate = (gate_fn *)strtoull(g, NULL, 16);

	for (int i = 1; i < argc; i++) {
		const char *op = argv[i], *a = i + 1 < argc ? argv[i + 1] : "";
		const char *b = i + 2 < argc ? argv[i + 2] : "";
		int rc;
		if (!strcmp(op, "rm")) {
			rc = call(SYS_unlinkat, AT_FDCWD, (long)a, 0, 0, 0);
		} else if (!strcmp(op, "rmdir")) {
			rc = call(SYS_unlinkat, AT_FDCWD, (long)a, AT_REMOVEDIR, 0, 0);
		} else if (!strcmp(op, "mv")) {
			rc = call(SYS_renameat2, AT_FDCWD, (long)a, AT_FDCWD, (long)b, 0);
			i++;
		} else if (!strcmp(op, "link")) {
			rc = call(SYS_linkat, AT_FDCWD, (long)a, AT_FDCWD, (long)b, 0);
			i++;
		} else if (!strcmp(op, "trunc") || !strcmp(op, "write") || !strcmp(op, "creat")) {
			int fl = O_WRONLY | (op[0] == 't' ? O_TRUNC : op[0] == 'c' ? O_CREAT | O_EXCL : 0);
			rc = call(SYS_openat, AT_FDCWD, (long)a, fl, 0600, 0);
			if (rc >= 0) {
				int w = (int)write(rc, "forged\n", 7);
				close(rc);
				rc = w < 0 ? -1 : 0;
			}
		} else if (!strcmp(op, "kill")) {
			rc = call(SYS_kill, atoi(a), SIGKILL, 0, 0, 0);
		} else {
			fprintf(stderr, "kgate: unknown operation %s\n", op);
			return 2;
		}
		say(op, a, rc);
		i++;
	}
	return 0;
}
