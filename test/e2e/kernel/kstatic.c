/*
 * A statically linked program (built with cc -static by t_kernel.sh) that
 * does what the library cannot see: each argument pair is one operation,
 * made through the C library of a static binary or as a raw system call.
 * Prints "OP ARG: ok" or "OP ARG: <errno name>" per operation.
 *
 *   rm P | rmdir P | mv A B | trunc P | ftrunc P | creat P | raw-unlink P
 *   openat2-trunc P | link A B | symlink A B | exec PROG [ARGS...] (last)
 *   connect IP:PORT | sendto IP:PORT | uring | tree P (fork, threads,
 *   vfork and exec, each deleting P.N) | i386-unlink P (int 0x80)
 *   become UID (drop to that uid and gid, as a root agent may)
 *   noseccomp-exec PROG [ARGS...]: exec PROG where seccomp() fails with
 *   ENOSYS (as on a kernel without it, or in a sandbox that forbids it)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

static int say(const char *op, const char *arg, int rc)
{
	printf("%s %s: %s\n", op, arg, rc < 0 ? strerrorname_np(errno) : "ok");
	fflush(stdout);
	return rc;
}

static int addr_of(const char *s, struct sockaddr_in *in)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof host)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	memset(in, 0, sizeof *in);
	in->sin_family = AF_INET;
	in->sin_port = htons((unsigned short)atoi(colon + 1));
	return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : -1;
}

static const char *tree_base;

static void *thread_rm(void *arg)
{
	char p[4096];
	snprintf(p, sizeof p, "%s.%ld", tree_base, (long)arg);
	say("thread-rm", p, unlink(p));
	return NULL;
}

static int tree(const char *base)
{
	char p[4096];
	pthread_t t[4];

	tree_base = base;
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, thread_rm, (void *)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 4; i < 8; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			snprintf(p, sizeof p, "%s.%d", base, i);
			say("fork-rm", p, unlink(p));
			_exit(0);
		}
		waitpid(pid, NULL, 0);
	}
	/* vfork: the child shares our memory until it execs itself. */
	snprintf(p, sizeof p, "%s.8", base);
	pid_t pid = vfork();
	if (pid == 0) {
		char *argv[] = {"/proc/self/exe", "rm", p, NULL};
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The 32-bit ABI from a 64-bit program; the path must sit below 4 GiB
 * (a static, non-PIE binary's data does). */
static char low_path[4096];

static int i386_unlink(const char *p)
{
	long rc;

	snprintf(low_path, sizeof low_path, "%s", p);
	__asm__ volatile("int $0x80" : "=a"(rc) : "a"(10), "b"((long)(uintptr_t)low_path)
			 : "memory", "r8", "r9", "r10", "r11");
	if (rc < 0) {
		errno = (int)-rc;
		return -1;
	}
	return 0;
}

static int noseccomp_exec(char **argv)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_seccomp, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fp = {.len = 4, .filter = f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) < 0)
		return -1;
	execv(argv[0], argv);
	return -1;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *op = argv[i], *a = i + 1 < argc ? argv[i + 1] : "";
		const char *b = i + 2 < argc ? argv[i + 2] : "";
		int fd;
		i++;
		if (!strcmp(op, "rm")) {
			say(op, a, unlink(a));
		} else if (!strcmp(op, "rmdir")) {
			say(op, a, rmdir(a));
		} else if (!strcmp(op, "raw-unlink")) {
			say(op, a, (int)syscall(SYS_unlinkat, AT_FDCWD, a, 0));
		} else if (!strcmp(op, "mv")) {
			say(op, a, rename(a, b));
			i++;
		} else if (!strcmp(op, "link")) {
			say(op, a, link(a, b));
			i++;
		} else if (!strcmp(op, "symlink")) {
			say(op, a, symlink(a, b));
			i++;
		} else if (!strcmp(op, "trunc") || !strcmp(op, "creat")) {
			fd = !strcmp(op, "trunc") ? open(a, O_WRONLY | O_TRUNC) : creat(a, 0666);
			if (say(op, a, fd) >= 0) {
				if (write(fd, "rewritten\n", 10) != 10)
					return 3;
				close(fd);
			}
		} else if (!strcmp(op, "ftrunc")) {
			fd = open(a, O_RDWR);
			if (fd < 0 || say(op, a, ftruncate(fd, 0)) < 0)
				continue;
			close(fd);
		} else if (!strcmp(op, "overwrite")) {
			/* In place, no truncation: what opencode's Bun does. */
			fd = open(a, O_WRONLY);
			if (say(op, a, fd) >= 0) {
				if (write(fd, "OVER", 4) != 4)
					return 3;
				close(fd);
			}
		} else if (!strcmp(op, "punch")) {
			fd = open(a, O_RDWR);
			if (fd < 0 || say(op, a, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
							   0, 4096)) < 0)
				continue;
			close(fd);
		} else if (!strcmp(op, "openat2-trunc")) {
			struct open_how how = {.flags = O_WRONLY | O_TRUNC};
			fd = (int)syscall(SYS_openat2, AT_FDCWD, a, &how, sizeof how);
			if (say(op, a, fd) >= 0)
				close(fd);
		} else if (!strcmp(op, "connect") || !strcmp(op, "sendto")) {
			struct sockaddr_in in;
			if (addr_of(a, &in) < 0)
				return 2;
			int tcp = !strcmp(op, "connect");
			int s = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK, 0);
			int rc = tcp ? connect(s, (struct sockaddr *)&in, sizeof in)
				     : (int)sendto(s, "x", 1, 0, (struct sockaddr *)&in, sizeof in);
			if (rc < 0 && errno == EINPROGRESS)
				rc = 0;
			say(op, a, rc);
			close(s);
		} else if (!strcmp(op, "uring")) {
			struct io_uring_params p;
			memset(&p, 0, sizeof p);
			fd = (int)syscall(SYS_io_uring_setup, 4, &p);
			if (say(op, "setup", fd) >= 0)
				close(fd);
			i--;
		} else if (!strcmp(op, "become")) {
			uid_t u = (uid_t)atoi(a);
			say(op, a, setgroups(0, NULL) < 0 || setgid(u) < 0 ? -1 : setuid(u));
		} else if (!strcmp(op, "i386-unlink")) {
			say(op, a, i386_unlink(a));
		} else if (!strcmp(op, "noseccomp-exec")) {
			return say(op, a, noseccomp_exec(argv + i)) ? 126 : 126;
		} else if (!strcmp(op, "tree")) {
			say(op, a, tree(a));
		} else if (!strcmp(op, "exec")) {
			execv(a, argv + i);
			return say(op, a, -1) ? 126 : 126;
		} else {
			fprintf(stderr, "kstatic: unknown operation %s\n", op);
			return 2;
		}
	}
	return 0;
}
