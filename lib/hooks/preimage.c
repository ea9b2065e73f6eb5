/* Server pre-images: the store entry and the dump tool (preimage.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "floor.h"
#include "preimage.h"

/* -2 with c->why saying why (the statement is then denied). */
int ag_pre_fail(struct ag_call *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof c->why, fmt, ap);
	va_end(ap);
	return -2;
}

/* Run argv into fd `out` after `head`; its stderr's start in
 * err. Bytes written, or -1. */
static long run_dump(char *const argv[], char *const envp[], int out, const char *head,
		     char *err, size_t errcap)
{
	int po[2], pe[2];
	long total = 0;

	err[0] = 0;
	if (pipe2(po, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]);
		close(po[1]);
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	sigemptyset(&none);
	sigfillset(&dfl);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawnattr_init(&at);
	/* Our signals are blocked while the guard works: not the child's. */
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int e = AG_REAL(posix_spawn)(&pid, argv[0], &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(po[1]);
	close(pe[1]);
	if (e) {
		close(po[0]);
		close(pe[0]);
		errno = e;
		return -1;
	}
	size_t hl = strlen(head), en = 0;
	int failed = write(out, head, hl) != (ssize_t)hl;
	total = (long)hl;
	struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
	char buf[16384];
	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		/* A tool that says nothing for this long waits on something (a
		 * lock another connection holds, a server that went away): the
		 * statement must not wait on it forever. */
		int ready = poll(fds, 2, AG_PREIMAGE_IDLE_MS);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0) {
			kill(pid, SIGKILL);
			if (ready == 0)
				snprintf(err, errcap, "%s did nothing for %d s: killed", argv[0],
					 AG_PREIMAGE_IDLE_MS / 1000);
			failed = 1;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !fds[i].revents)
				continue;
			ssize_t n = read(fds[i].fd, buf, sizeof buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				continue;
			}
			if (i == 1) {
				size_t take = (size_t)n < errcap - 1 - en ? (size_t)n : errcap - 1 - en;
				memcpy(err + en, buf, take);
				err[en += take] = 0;
				continue;
			}
			for (ssize_t w = 0; w < n && !failed;) {
				ssize_t m = write(out, buf + w, (size_t)(n - w));
				if (m < 0 && errno == EINTR)
					continue;
				if (m <= 0)
					failed = 1;
				else
					w += m;
			}
			total += n;
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = -1;   /* reaped by someone else: not known to be whole */
			break;
		}
	}
	if (failed || status != 0) {
		if (!err[0])
			snprintf(err, errcap, "%s %s", argv[0], failed ? "could not be written to the store"
				 : "exited with an error");
		errno = EIO;
		return -1;
	}
	return total;
}

int ag_preimage_store(struct ag_snapshot *snap, const char *kind)
{
	char *abs = snap->abs;

	memset(snap, 0, offsetof(struct ag_snapshot, link_target));
	snap->link_target[0] = 0;
	unsigned long long rnd = (unsigned long long)ag_now_ns() ^ ((unsigned long long)getpid() << 20);
	snprintf(snap->id, sizeof snap->id, "%012llx", rnd & 0xffffffffffffULL);
	snap->kind = kind;
	snap->parent_at = snap->parent_mt = -1;
	if (ag_fmt(snap->store, sizeof snap->store, "snapshots/%s/%s", ag_session_id(), snap->id) < 0 ||
	    ag_fmt(abs, sizeof snap->abs, "%s/snapshots/%s", ag_state_dir(), ag_session_id()) < 0 ||
	    ag_mkdirs(abs, 0700) < 0 ||
	    ag_fmt(abs, sizeof snap->abs, "%s/%s", ag_state_dir(), snap->store) < 0 ||
	    (ag_floor_on() && ag_snapshot_stage(ag_state_dir(), ag_session_id(), snap) < 0))
		return -1;
	return 0;
}

long ag_preimage_run(struct ag_snapshot *snap, char *const argv[], char *const envp[],
		     const char *head, char *err, size_t errcap)
{
	/* Under the floor the store cannot be written: made in stage/, then
	 * moved in (lib/snapshot.h). */
	const char *to = ag_floor_on() ? snap->stage : snap->abs;
	sigset_t saved;

	err[0] = 0;
	ag_own_enter(&saved);
	int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	long bytes = fd < 0 ? -1 : run_dump(argv, envp, fd, head, err, errcap);
	int e = errno;
	if (fd >= 0 && close(fd) < 0 && bytes >= 0)
		bytes = -1;
	if (bytes >= 0 && to != snap->abs && rename(to, snap->abs) < 0)
		bytes = -1;
	if (bytes < 0 && fd >= 0)
		unlink(to);
	ag_own_leave(&saved);
	if (bytes < 0) {
		errno = e;
		if (fd < 0)
			return -1;
		if (!err[0])
			snprintf(err, errcap, "%s could not be written to the store", argv[0]);
		return -3;
	}
	return bytes;
}

int ag_preimage_capture(char *const argv[], char *const envp[], char *out, size_t cap, char *err,
			size_t errcap)
{
	sigset_t saved;
	int rc = -1;

	out[0] = err[0] = 0;
	ag_own_enter(&saved);
	int fd = memfd_create("agentguard-catalog", MFD_CLOEXEC);
	if (fd >= 0 && run_dump(argv, envp, fd, "", err, errcap) >= 0) {
		ssize_t n = pread(fd, out, cap - 1, 0);
		if (n >= 0) {
			out[n] = 0;
			rc = 0;
		}
	}
	if (fd >= 0)
		close(fd);
	ag_own_leave(&saved);
	for (char *q = err; *q; q++)
		if (*q == '\n')
			*q = ' ';
	return rc;
}
