/*
 * exec: every way of starting a program. Each entry point is hooked on its
 * own because glibc's system, popen, posix_spawnp and execvp reach the
 * kernel without passing through a hooked execve.
 *
 * Every child gets the library and the session back in its environment,
 * whatever the caller passed (env -i, unsetenv, an explicit envp).
 * Nothing on these paths allocates or takes a lock after the decision:
 * a vfork child runs them in its parent's memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gate.h"
#include "guard.h"
#include "launch.h"

extern char **environ;

int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags);

/* execvp's search with our environment: the real execvp would read
 * `environ`, which the caller may have stripped. */
static int exec_search(const char *file, char *const argv[], char *const envp[])
{
	char cand[AG_PATH_MAX];
	int eacces = 0;

	if (strchr(file, '/'))
		return AG_REAL(execve)(file, argv, envp);
	for (const char *cur = ag_search_path(); ag_path_next(&cur, file, cand, sizeof cand);) {
		AG_REAL(execve)(cand, argv, envp);
		if (errno == ENOEXEC) {
			/* A script without #!: the shell runs it, as execvp does. */
			size_t argc = 0;
			while (argv[argc])
				argc++;
			const char *sh[argc + 2];
			sh[0] = "/bin/sh";
			sh[1] = cand;
			for (size_t i = 1; i <= argc; i++)
				sh[i + 1] = argv[i];
			AG_REAL(execve)("/bin/sh", (char *const *)sh, envp);
			return -1;
		}
		if (errno == EACCES)
			eacces = 1;
		else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE &&
			 errno != ENODEV && errno != ETIMEDOUT)
			return -1;
	}
	errno = eacces ? EACCES : ENOENT;
	return -1;
}

/* Under AddressSanitizer: a vfork child's frames never return (it execs),
 * and their poisoned redzones stay behind in the stack the parent shares;
 * clear them, as ASan does before any call that does not return. */
#if defined(__SANITIZE_ADDRESS__)
void __asan_handle_no_return(void);
#define asan_before_exec() __asan_handle_no_return()
#else
#define asan_before_exec() ((void)0)
#endif

/* envp for the calls that take the caller's `environ`: read only after the
 * guard has started (the start may replace the array, and the array the
 * caller saw before its hook ran must not be what the child gets). */
#define ENVIRON ((char *const *)-1)

/* The shared body of the exec family: decide, then exec with the child's
 * environment. `search`: PATH lookup as execvp does. */
static __attribute__((noinline)) int do_exec(int dirfd, const char *file, char *const argv[],
					     char *const envp_in[], int search, int flags)
{
	struct ag_call c;

	ag_begin(&c, AG_OP_EXEC);
	char *const *envp = envp_in == ENVIRON ? environ : envp_in;
	int set = ag_set_exec(&c, dirfd, file, argv, search);
	if (set == 0)
		ag_set_exec_env(&c, envp);
	if (set < 0 || (set == 0 && ag_check(&c) < 0))
		return ag_refuse(&c);
	AG_CHILD_ENV(envp, env);
	if (set == 0)
		ag_release(&c);
	else
		ag_skip(&c);
	int rc;
	asan_before_exec();
	if (dirfd != AT_FDCWD || flags)
		rc = AG_REAL(execveat)(dirfd, file, argv, env, flags);
	else if (search && env == envp && !ag_gate)
		rc = AG_REAL(execvpe)(file, argv, env);   /* under the gate: our search, whose
							     execve goes through it */
	else if (search)
		rc = exec_search(file, argv, env);
	else
		rc = AG_REAL(execve)(file, argv, env);
	return ag_after(&c, rc);
}

AG_HOOK(int, execve, (const char *path, char *const argv[], char *const envp[]),
	(path, argv, envp))
{
	return do_exec(AT_FDCWD, path, argv, envp, 0, 0);
}

AG_HOOK(int, execv, (const char *path, char *const argv[]), (path, argv))
{
	return do_exec(AT_FDCWD, path, argv, ENVIRON, 0, 0);
}

AG_HOOK(int, execvp, (const char *file, char *const argv[]), (file, argv))
{
	return do_exec(AT_FDCWD, file, argv, ENVIRON, 1, 0);
}

AG_HOOK(int, execvpe, (const char *file, char *const argv[], char *const envp[]),
	(file, argv, envp))
{
	return do_exec(AT_FDCWD, file, argv, envp, 1, 0);
}

AG_HOOK(int, execveat, (int dirfd, const char *path, char *const argv[], char *const envp[],
			int flags), (dirfd, path, argv, envp, flags))
{
	return do_exec(dirfd, path, argv, envp, 0, flags);
}

AG_HOOK(int, fexecve, (int fd, char *const argv[], char *const envp[]), (fd, argv, envp))
{
	return do_exec(fd, "", argv, envp, 0, AT_EMPTY_PATH);
}

/* The execl family: collect the variadic arguments on the stack. */
#define COLLECT_ARGS(first, argv, envp_out)                                 \
	va_list ap_;                                                        \
	size_t argc_ = 1;                                                   \
	va_start(ap_, first);                                               \
	while (va_arg(ap_, const char *))                                   \
		argc_++;                                                    \
	va_end(ap_);                                                        \
	const char *argv[argc_ + 1];                                        \
	argv[0] = first;                                                    \
	va_start(ap_, first);                                               \
	for (size_t i_ = 1; i_ <= argc_; i_++)                              \
		argv[i_] = va_arg(ap_, const char *);                       \
	envp_out;                                                           \
	va_end(ap_)

AG_EXPORT int execl(const char *path, const char *arg, ...)
{
	COLLECT_ARGS(arg, argv, (void)0);
	if (AG_OWN_WORK())
		return AG_REAL(execv)(path, (char *const *)argv);
	return do_exec(AT_FDCWD, path, (char *const *)argv, ENVIRON, 0, 0);
}

AG_EXPORT int execlp(const char *file, const char *arg, ...)
{
	COLLECT_ARGS(arg, argv, (void)0);
	if (AG_OWN_WORK())
		return AG_REAL(execvp)(file, (char *const *)argv);
	return do_exec(AT_FDCWD, file, (char *const *)argv, ENVIRON, 1, 0);
}

AG_EXPORT int execle(const char *path, const char *arg, ...)
{
	char *const *envp;
	COLLECT_ARGS(arg, argv, envp = va_arg(ap_, char *const *));
	if (AG_OWN_WORK())
		return AG_REAL(execve)(path, (char *const *)argv, envp);
	return do_exec(AT_FDCWD, path, (char *const *)argv, envp, 0, 0);
}

static __attribute__((noinline)) int do_spawn(pid_t *pid, const char *file,
					      const posix_spawn_file_actions_t *fa,
					      const posix_spawnattr_t *attr, char *const argv[],
					      char *const envp[], int search)
{
	struct ag_call c;

	ag_begin(&c, AG_OP_EXEC);
	int set = ag_set_exec(&c, AT_FDCWD, file, argv, search);
	if (set == 0)
		ag_set_exec_env(&c, envp ? envp : environ);
	if (set < 0) {
		ag_refuse(&c);
		return EFAULT;
	}
	if (set == 0 && ag_check(&c) < 0) {
		/* posix_spawn reports failure in its return value; errno stays. */
		int e = errno;
		ag_refuse(&c);
		errno = e;
		return EACCES;
	}
	AG_CHILD_ENV(envp, env);
	if (set == 0)
		ag_release(&c);
	else
		ag_skip(&c);
	int rc = (search ? AG_REAL(posix_spawnp) : AG_REAL(posix_spawn))(pid, file, fa, attr,
									  argv, env);
	int e = errno;
	errno = rc;
	ag_after(&c, rc ? -1 : 0);
	errno = e;
	return rc;
}

AG_HOOK(int, posix_spawn, (pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			   const posix_spawnattr_t *attr, char *const argv[], char *const envp[]),
	(pid, path, fa, attr, argv, envp))
{
	return do_spawn(pid, path, fa, attr, argv, envp, 0);
}

AG_HOOK(int, posix_spawnp, (pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			    const posix_spawnattr_t *attr, char *const argv[], char *const envp[]),
	(pid, file, fa, attr, argv, envp))
{
	return do_spawn(pid, file, fa, attr, argv, envp, 1);
}

/* system() and popen() run "/bin/sh -c CMD" with `environ`: judge that,
 * put the session back into environ if it was stripped, and let the shell
 * (guarded too) judge what it runs. */
static int guard_shell(struct ag_call *c, const char *cmd)
{
	const char *argv[] = {"sh", "-c", cmd, NULL};

	if (ag_set_exec(c, AT_FDCWD, "/bin/sh", (char *const *)argv, 0) != 0 || ag_check(c) < 0)
		return -1;
	ag_launch_repair_environ();
	/* argv is on this frame: the record was written, forget the pointer. */
	c->op.argv = NULL;
	return 0;
}

AG_HOOK(int, system, (const char *cmd), (cmd))
{
	struct ag_call c;

	if (!cmd)
		return AG_REAL(system)(cmd);
	ag_begin(&c, AG_OP_EXEC);
	if (guard_shell(&c, cmd) < 0) {
		ag_refuse(&c);
		/* What system() returns when the shell cannot run. */
		return W_EXITCODE(127, 0);
	}
	ag_release(&c);
	int rc = AG_REAL(system)(cmd);
	return ag_after(&c, rc);
}

AG_HOOK(FILE *, popen, (const char *cmd, const char *mode), (cmd, mode))
{
	struct ag_call c;

	if (!cmd)
		return AG_REAL(popen)(cmd, mode);
	ag_begin(&c, AG_OP_EXEC);
	if (guard_shell(&c, cmd) < 0) {
		ag_refuse(&c);
		return NULL;
	}
	ag_release(&c);
	FILE *f = AG_REAL(popen)(cmd, mode);
	ag_after(&c, f ? 0 : -1);
	return f;
}
