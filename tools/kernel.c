/*
 * The kernel layer: what the library cannot reach (static binaries, Go
 * programs, raw system calls, a setuid copy the loader would not preload)
 * is judged here.
 *
 *   the filter     built below, installed in the agent's process before it
 *                  execs, inherited by every descendant: the watched calls
 *                  (delete, rename, truncate, truncating opens, opens and
 *                  fallocate modes that overwrite in place, exec,
 *                  connect, sendto/sendmsg with an address, new names,
 *                  io_uring) are reported to the supervisor unless they come
 *                  from the library's gate page (lib/gate.c), which means
 *                  the library already judged them.
 *   the supervisor threads of `agentguard run` that receive each report,
 *                  read what the call names from /proc, and complete it
 *                  through the library's own entry points (loaded into this
 *                  process, lib/kernel_abi.h) on the caller's behalf: the
 *                  same rules, session, breaker, budget, snapshots and audit
 *                  rows as inside the process, marked as the kernel's. The
 *                  call acts on what was judged: a path is never handed back
 *                  to the kernel to walk again; a file the call opens is
 *                  opened here and put into the caller
 *                  (SECCOMP_IOCTL_NOTIF_ADDFD). Only an exec, which nobody
 *                  can make for another process, is judged and then let go.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <linux/audit.h>
#include <linux/falloc.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "floor.h"
#include "kernel.h"
#include "kernel_abi.h"
#include "spool.h"

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

/* ---- the filter ------------------------------------------------------------ */

#define FALLOC_DROPS (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_ZERO_RANGE | \
		      FALLOC_FL_INSERT_RANGE)

/* x86_64 calls reported whatever their arguments (when not from the gate). */
static const int watched64[] = {
	SYS_unlink, SYS_unlinkat, SYS_rmdir, SYS_rename, SYS_renameat, SYS_renameat2,
	SYS_truncate, SYS_ftruncate, SYS_creat, SYS_execve, SYS_execveat, SYS_connect,
	SYS_openat2, SYS_io_uring_setup, SYS_sendmsg, SYS_sendmmsg, SYS_link, SYS_linkat,
	SYS_symlink, SYS_symlinkat, SYS_mknod, SYS_mknodat,
	/* mode: a key going from 0600 to 0644, an owner changed */
	SYS_chmod, SYS_fchmod, SYS_fchmodat, SYS_fchmodat2, SYS_chown, SYS_fchown, SYS_lchown,
	SYS_fchownat,
};

/* The same calls in the 32-bit ABI (int 0x80 works from 64-bit programs
 * too): reported, and refused, since the supervisor judges the 64-bit
 * calls only. open and openat only with O_TRUNC, socketcall only for
 * connect and the sends. */
static const struct { int nr; const char *op; } watched32[] = {
	{8, "truncate"}, {9, "link"}, {10, "delete"}, {11, "exec"}, {14, "link"},
	{38, "rename"}, {40, "delete"}, {83, "link"}, {92, "truncate"}, {93, "truncate"},
	{193, "truncate"}, {194, "truncate"}, {297, "link"}, {301, "delete"},
	{302, "rename"}, {303, "link"}, {304, "link"}, {345, "connect"}, {353, "rename"},
	{358, "exec"}, {362, "connect"}, {369, "connect"}, {370, "connect"},
	{425, "io_uring"}, {437, "truncate"},
	{15, "mode"}, {16, "mode"}, {94, "mode"}, {95, "mode"}, {182, "mode"}, {198, "mode"},
	{207, "mode"}, {212, "mode"}, {298, "mode"}, {306, "mode"}, {452, "mode"},
};
enum { NR32_OPEN = 5, NR32_OPENAT = 295, NR32_SOCKETCALL = 102 };

/* A tiny assembler: forward jumps to labels, resolved at the end. */
enum { L_NEXT = -1, L_GATE, L_NOTIFY, L_ALLOW, L_ENOSYS, L_OPEN, L_OPENAT, L_SENDTO, L_FALLOC, L_SIG0, L_SIG1, L_NOT64, L_OPEN32, L_OPENAT32, L_SOCK32, L_COUNT };

/* Calls aimed at a process by its pid (argument 0, or 1 for ptrace): the
 * floor keeps them from the supervisor, and these are reported so that
 * the attempt has a row. */
static const int at_pid0[] = {
	SYS_kill, SYS_tkill, SYS_tgkill, SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo,
	SYS_pidfd_open, SYS_process_vm_readv, SYS_process_vm_writev,
};
struct prog {
	struct sock_filter ins[256];
	int jt[256], jf[256];   /* labels, L_NEXT for the next instruction */
	int at[L_COUNT];
	int n, bad;
};

static void emit(struct prog *p, uint16_t code, uint32_t k, int jt, int jf)
{
	if (p->n >= 256) {
		p->bad = 1;
		return;
	}
	p->ins[p->n] = (struct sock_filter)BPF_STMT(code, k);
	p->jt[p->n] = jt;
	p->jf[p->n] = jf;
	p->n++;
}
#define LD(off) emit(p, BPF_LD | BPF_W | BPF_ABS, (off), L_NEXT, L_NEXT)
#define RET(v) emit(p, BPF_RET | BPF_K, (v), L_NEXT, L_NEXT)
#define JEQ(k, t, f) emit(p, BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define JGE(k, t, f) emit(p, BPF_JMP | BPF_JGE | BPF_K, (k), (t), (f))
#define JSET(k, t, f) emit(p, BPF_JMP | BPF_JSET | BPF_K, (k), (t), (f))
#define AND(k) emit(p, BPF_ALU | BPF_AND | BPF_K, (k), L_NEXT, L_NEXT)
#define LABEL(l) (p->at[l] = p->n)
#define ARG_LO(i) ((uint32_t)(offsetof(struct seccomp_data, args) + 8 * (i)))
#define ARG_HI(i) (ARG_LO(i) + 4)

static int resolve_jumps(struct prog *p)
{
	for (int i = 0; i < p->n; i++) {
		if (BPF_CLASS(p->ins[i].code) != BPF_JMP)
			continue;
		int t = p->jt[i] == L_NEXT ? i + 1 : p->at[p->jt[i]];
		int f = p->jf[i] == L_NEXT ? i + 1 : p->at[p->jf[i]];
		if (t <= i || f <= i || t - i - 1 > 255 || f - i - 1 > 255)
			return -1;
		p->ins[i].jt = (uint8_t)(t - i - 1);
		p->ins[i].jf = (uint8_t)(f - i - 1);
	}
	return 0;
}

/* An open's flags (argument i) that the supervisor must see: it truncates,
 * or it can overwrite in place (a `write`) — writable, and neither
 * append-only nor bound to create a new file. */
static void open_flags(struct prog *p, int i, int floor)
{
	LD(ARG_LO(i));
	JSET(O_TRUNC, L_GATE, L_NEXT);
	JSET(O_ACCMODE, L_NEXT, L_ALLOW);
	if (floor)
		JSET(O_CREAT, L_GATE, L_NEXT);
	AND(O_CREAT | O_EXCL);
	JEQ(O_CREAT | O_EXCL, L_ALLOW, L_NEXT);
	LD(ARG_LO(i));
	AND(O_ACCMODE | O_APPEND);
	JEQ(O_WRONLY | O_APPEND, L_ALLOW, L_GATE);
}

static int build_filter(struct prog *p, uintptr_t gate, int floor, pid_t sup)
{
	memset(p, 0, sizeof *p);
	for (int l = 0; l < L_COUNT; l++)
		p->at[l] = -1;
	LD(offsetof(struct seccomp_data, arch));
	JEQ(AUDIT_ARCH_X86_64, L_NEXT, L_NOT64);
	LD(offsetof(struct seccomp_data, nr));
	JGE(0x40000000, L_ENOSYS, L_NEXT);          /* x32: not judged, not run */
	JEQ(AGENTGUARD_KMSG, L_NOTIFY, L_NEXT);     /* the library asks the supervisor */
	for (size_t i = 0; i < sizeof watched64 / sizeof watched64[0]; i++)
		JEQ((uint32_t)watched64[i], L_GATE, L_NEXT);
	JEQ(SYS_open, L_OPEN, L_NEXT);
	JEQ(SYS_openat, L_OPENAT, L_NEXT);
	JEQ(SYS_sendto, L_SENDTO, L_NEXT);
	JEQ(SYS_fallocate, L_FALLOC, L_NEXT);
	if (sup > 0) {
		for (size_t i = 0; i < sizeof at_pid0 / sizeof at_pid0[0]; i++)
			JEQ((uint32_t)at_pid0[i], L_SIG0, L_NEXT);
		JEQ(SYS_ptrace, L_SIG1, L_NEXT);
	}
	RET(SECCOMP_RET_ALLOW);

	LABEL(L_OPEN);
	open_flags(p, 1, floor);
	LABEL(L_OPENAT);
	open_flags(p, 2, floor);
	LABEL(L_FALLOC);                              /* the modes that drop data */
	LD(ARG_LO(1));
	JSET(FALLOC_DROPS, L_GATE, L_ALLOW);
	LABEL(L_SENDTO);                              /* with an address only */
	LD(ARG_LO(4));
	JEQ(0, L_NEXT, L_GATE);
	LD(ARG_HI(4));
	JEQ(0, L_ALLOW, L_GATE);
	if (sup > 0) {
		LABEL(L_SIG0);                        /* aimed at the supervisor */
		LD(ARG_LO(0));
		JEQ((uint32_t)sup, L_NOTIFY, L_ALLOW);
		LABEL(L_SIG1);
		LD(ARG_LO(1));
		JEQ((uint32_t)sup, L_NOTIFY, L_ALLOW);
	}

	LABEL(L_GATE);
	if (gate) {
		uint32_t hi = (uint32_t)((uint64_t)gate >> 32), lo = (uint32_t)gate;
		LD(offsetof(struct seccomp_data, instruction_pointer) + 4);
		JEQ(hi, L_NEXT, L_NOTIFY);
		LD(offsetof(struct seccomp_data, instruction_pointer));
		JGE(lo + AG_GATE_SIZE, L_NOTIFY, L_NEXT);
		JGE(lo, L_ALLOW, L_NOTIFY);
	} else {
		RET(SECCOMP_RET_USER_NOTIF);
	}

	LABEL(L_NOT64);
	JEQ(AUDIT_ARCH_I386, L_NEXT, L_ALLOW);
	LD(offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < sizeof watched32 / sizeof watched32[0]; i++)
		JEQ((uint32_t)watched32[i].nr, L_NOTIFY, L_NEXT);
	JEQ(NR32_OPEN, L_OPEN32, L_NEXT);
	JEQ(NR32_OPENAT, L_OPENAT32, L_NEXT);
	JEQ(NR32_SOCKETCALL, L_SOCK32, L_ALLOW);
	LABEL(L_OPEN32);
	LD(ARG_LO(1));
	JSET(O_TRUNC, L_NOTIFY, L_ALLOW);
	LABEL(L_OPENAT32);
	LD(ARG_LO(2));
	JSET(O_TRUNC, L_NOTIFY, L_ALLOW);
	LABEL(L_SOCK32);                              /* connect, sendto, sendmsg, sendmmsg */
	LD(ARG_LO(0));
	JEQ(3, L_NOTIFY, L_NEXT);
	JEQ(11, L_NOTIFY, L_NEXT);
	JEQ(16, L_NOTIFY, L_NEXT);
	JEQ(20, L_NOTIFY, L_ALLOW);

	/* Every jump is forward: the verdicts come last. */
	LABEL(L_NOTIFY);
	RET(SECCOMP_RET_USER_NOTIF);
	LABEL(L_ALLOW);
	RET(SECCOMP_RET_ALLOW);
	LABEL(L_ENOSYS);
	RET(SECCOMP_RET_ERRNO | ENOSYS);
	return p->bad ? -1 : resolve_jumps(p);
}

int ag_kernel_filter(struct sock_filter *out, size_t cap, uintptr_t gate, int floor, pid_t sup)
{
	struct prog p;

	if (build_filter(&p, gate, floor, sup) < 0 || (size_t)p.n > cap)
		return -1;
	memcpy(out, p.ins, (size_t)p.n * sizeof *out);
	return p.n;
}

uintptr_t ag_kernel_gate_pick(void)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof r, 0) != sizeof r)
		r = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL);
	/* 0x1000_0000_0000 .. 0x3fff_ffff_f000: above where PIE programs and
	 * their heaps are put, below libraries and stacks (0x7f..). The low
	 * word stays below 4 GiB - one page, so gate + size does not wrap. */
	uint64_t hi = 0x1000 + (r >> 32) % 0x3000;
	uint64_t lo = ((uint32_t)r % 0xfffffu) << 12;
	return (uintptr_t)(hi << 32 | lo);
}

/* One message on the socket, with write() (sendmsg would meet the very
 * filter just installed, before anyone listens): a status (0 or errno),
 * the listener's descriptor number in the child, and a reason. The
 * supervisor takes the descriptor with pidfd_getfd. */
struct hello {
	int status;
	int fd;
	int floor;     /* the Landlock floor: 0 laid, else errno (-1: none asked) */
	char why[500];
	char floor_state[700];
};

static const char *floor_said;

static int send_result(int sock, int status, int fd, int floor, const char *why)
{
	struct hello h = {.status = status, .fd = fd, .floor = floor};

	snprintf(h.floor_state, sizeof h.floor_state, "%s", floor_said ? floor_said : "");

	snprintf(h.why, sizeof h.why, "%s", why ? why : "");
	return write(sock, &h, sizeof h) == (ssize_t)sizeof h ? 0 : -1;
}

int ag_kernel_install(int sock, uintptr_t gate, int floor, const char *floor_state, char *err,
		      size_t errlen)
{
	struct prog p;

	floor_said = floor_state;
	/* The library hands what is beyond the floor to the supervisor,
	 * unjudged itself: it may know of a floor only once one is laid. */
	char zone[4096];
	const char *z = getenv("AGENTGUARD_FLOOR");
	snprintf(zone, sizeof zone, "%s", z ? z : "");
	unsetenv("AGENTGUARD_FLOOR");

	/* The child of `agentguard run`: its parent is the supervisor. */
	if (build_filter(&p, gate, floor >= 0, getppid()) < 0) {
		snprintf(err, errlen, "the filter program could not be built");
		send_result(sock, EINVAL, -1, -1, err);
		return -1;
	}
	struct sock_fprog fp = {.len = (unsigned short)p.n, .filter = p.ins};
	/* A setuid or setgid program then runs as its caller, preloaded. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "no-new-privs cannot be set: %s", strerror(errno));
		send_result(sock, errno, -1, -1, err);
		return -1;
	}
	/* Killable-only waits (5.19): a signal must not restart a call the
	 * supervisor is completing (it would run twice). */
	/* SPEC_ALLOW: the filter is about what a program may destroy, not a
	 * side-channel boundary; without it the kernel may slow every process
	 * of the session with speculation mitigations. */
	long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			  SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV |
			  SECCOMP_FILTER_FLAG_SPEC_ALLOW, &fp);
	if (fd < 0 && errno == EINVAL)
		fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			     SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_SPEC_ALLOW, &fp);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "the seccomp filter cannot be installed (%s)%s", strerror(e),
			 e == EBUSY ? ": an outer sandbox already supervises this process"
			 : e == EINVAL || e == ENOSYS ? ": this kernel lacks seccomp user notification"
			 : "");
		send_result(sock, e, -1, -1, err);
		return -1;
	}
	/* The floor only with the supervisor on: what it refuses, the
	 * supervisor makes. Its own system call is not one the filter watches. */
	int fl = -1;
	if (floor >= 0) {
		fl = ag_floor_apply(floor) == 0 ? 0 : errno;
		close(floor);
		if (!fl && zone[0])
			setenv("AGENTGUARD_FLOOR", zone, 1);
	}
	/* The listener stays open here (close-on-exec) until the exec: the
	 * supervisor copies it out of this process meanwhile. */
	return send_result(sock, 0, (int)fd, fl, NULL);
}

int ag_kernel_receive(int sock, int child, int *floor, char *floor_state, size_t fslen,
		      char *err, size_t errlen)
{
	struct hello h = {.status = -1};
	ssize_t n;

	do
		n = read(sock, &h, sizeof h);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof h) {
		snprintf(err, errlen, "the agent's process ended before its filter was set up");
		return -1;
	}
	h.why[sizeof h.why - 1] = 0;
	h.floor_state[sizeof h.floor_state - 1] = 0;
	*floor = h.floor;
	if (h.floor_state[0])
		snprintf(floor_state, fslen, "%s", h.floor_state);
	if (h.status != 0) {
		snprintf(err, errlen, "%s", h.why[0] ? h.why : strerror(h.status));
		return -1;
	}
	int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
	int fd = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, h.fd, 0);
	int e = errno;
	if (pidfd >= 0)
		close(pidfd);
	if (fd < 0) {
		snprintf(err, errlen, "the filter's listener cannot be taken from the agent's process "
			 "(pidfd_getfd: %s)", strerror(e));
		return -1;
	}
	return fd;
}

/* ---- the supervisor ---------------------------------------------------------- */

#define NWORKERS 8
#define ARGV_MAX_WORDS 16384
#define ARGV_MAX_BYTES (1u << 20)

/* The library's entries, found in the copy loaded into this process. */
struct lib {
	agentguard_kernel_begin_fn *begin;
	agentguard_kernel_end_fn *end;
	agentguard_kernel_exec_fn *exec;
	agentguard_kernel_judge_fn *judge;
	agentguard_kernel_refuse_fn *refuse;
	agentguard_kernel_count_fn *count;
	int (*unlinkat)(int, const char *, int);
	int (*renameat2)(int, const char *, int, const char *, unsigned);
	int (*openat)(int, const char *, int, ...);
	int (*truncate)(const char *, off_t);
	int (*ftruncate)(int, off_t);
	int (*fallocate)(int, int, off_t, off_t);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*linkat)(int, const char *, int, const char *, int);
	int (*symlinkat)(const char *, int, const char *);
	int (*mknodat)(int, const char *, mode_t, dev_t);
	int (*fchmodat)(int, const char *, mode_t, int);
	int (*fchmod)(int, mode_t);
	int (*fchownat)(int, const char *, uid_t, gid_t, int);
	int (*fchown)(int, uid_t, gid_t);
};

/* What /proc says of a process image, kept between its calls (a static
 * rm -rf makes thousands): keyed by the process and what changes at each
 * exec — its start time and the addresses of its code and stack, which
 * exec lays out anew. */
struct image {
	int tgid;
	uint64_t start, code, stack;
	char exe[PATH_MAX];
	char *cmdline;
	size_t cmdlen;
};
#define NIMAGES 32

/* A spool the supervisor copies: held open, so that seeing whether it
 * grew is one pread, and a spool ingested and unlinked is noticed by its
 * link count. */
struct spool {
	char name[128];
	uint32_t hash;     /* of name: finding one among thousands stays cheap */
	int fd;
	uint64_t copied;   /* where the copy's records end, as last seen */
};

struct ag_kernel {
	struct image images[NIMAGES];
	unsigned next_image;
	pthread_mutex_t images_mu;
	int listener;
	int stopping;
	/* The spools of the session's processes, found and copied every
	 * 100 ms by the puller (pull_spools): a process need not hand its
	 * spool over, and one that records and then stays quiet cannot keep
	 * its records in its own reach. */
	pthread_mutex_t spools_mu;
	struct spool *spools;
	size_t nspools;
	int spool_dir, kspool_dir;
	pthread_t puller;
	int have_puller;
	pthread_cond_t puller_wake;   /* under spools_mu: stop need not wait out a pause */
	uintptr_t gate;
	void *handle;
	struct lib lib;
	pthread_t workers[NWORKERS];
	int nworkers;
	uint64_t calls;
	/* Who we are, to tell a process that acts with other credentials. */
	char creds[512];
	char mntns[64];
	/* libc and the library as mapped here, to tell libc's own calls
	 * (from_libc). */
	dev_t libc_dev, lib_dev;
	ino_t libc_ino, lib_ino;
	uintptr_t syscall_off, syscall_len;
};

/* One report being handled: the caller and what was read of it. */
struct job {
	struct ag_kernel *k;
	struct seccomp_notif *req;
	struct seccomp_notif_resp *resp;
	int tid, tgid, mem, pidfd;
	struct agentguard_kproc who;
	char exe[PATH_MAX], cwd[PATH_MAX];
	char *cmdline;             /* NUL-separated */
	const char *argv[256];
	char status[4096];
	unsigned umask;
};

static int proc_open(int pid, const char *what, int flags)
{
	char p[64];

	snprintf(p, sizeof p, "/proc/%d/%s", pid, what);
	return open(p, flags | O_CLOEXEC);
}

static ssize_t proc_read(int pid, const char *what, char *buf, size_t cap)
{
	int fd = proc_open(pid, what, O_RDONLY);
	size_t got = 0;

	if (fd < 0)
		return -1;
	while (got + 1 < cap) {
		ssize_t n = read(fd, buf + got, cap - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		/* A /proc file hands over all it has at once when it fits: a
		 * short read is its end (one read less per call). */
		if ((size_t)n < cap - 1 - (got - (size_t)n))
			break;
	}
	close(fd);
	buf[got] = 0;
	return (ssize_t)got;
}

static void proc_link(int pid, const char *what, char *out, size_t cap)
{
	char p[64];

	snprintf(p, sizeof p, "/proc/%d/%s", pid, what);
	ssize_t n = readlink(p, out, cap - 1);
	out[n > 0 ? n : 0] = 0;
}

/* The lines of /proc/PID/status that say what a process may do. */
static void creds_of(const char *status, char *out, size_t cap)
{
	static const char *const keys[] = {"Uid:", "Gid:", "Groups:", "CapEff:", "CapBnd:"};
	size_t off = 0;

	out[0] = 0;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const char *l = strstr(status, keys[i]);
		if (!l)
			continue;
		size_t len = strcspn(l, "\n");
		if (off + len + 2 > cap)
			break;
		memcpy(out + off, l, len);
		off += len;
		out[off++] = '\n';
		out[off] = 0;
	}
}

static long status_num(const char *status, const char *key, int base)
{
	const char *l = strstr(status, key);

	return l ? strtol(l + strlen(key), NULL, base) : -1;
}

/* Read len bytes of the caller's memory; -1 (EFAULT) unless all arrive. */
static int mem_get(struct job *j, uint64_t addr, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(j->mem, (char *)buf + got, len - got, (off_t)(addr + got));
		if (n <= 0) {
			errno = EFAULT;
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

/* A NUL-terminated string of the caller's, page by page (the next page may
 * not be mapped). -1 with EFAULT or ENAMETOOLONG. */
static int mem_str(struct job *j, uint64_t addr, char *buf, size_t cap)
{
	size_t got = 0;

	if (!addr) {
		errno = EFAULT;
		return -1;
	}
	while (got < cap) {
		size_t chunk = 4096 - (size_t)((addr + got) & 4095);
		if (chunk > cap - got)
			chunk = cap - got;
		ssize_t n = pread(j->mem, buf + got, chunk, (off_t)(addr + got));
		if (n <= 0) {
			errno = EFAULT;
			return -1;
		}
		char *z = memchr(buf + got, 0, (size_t)n);
		if (z)
			return 0;
		got += (size_t)n;
	}
	errno = ENAMETOOLONG;
	return -1;
}

/* Who is calling: enough to record it, and to know whether this process
 * may act for it. */
static int job_who(struct job *j)
{
	j->tid = (int)j->req->pid;
	if (proc_read(j->tid, "status", j->status, sizeof j->status) <= 0)
		return -1;
	j->tgid = (int)status_num(j->status, "Tgid:", 10);
	long um = status_num(j->status, "Umask:", 8);
	j->umask = um >= 0 ? (unsigned)um : 022;
	j->who.pid = j->tgid;
	j->who.ppid = (int)status_num(j->status, "PPid:", 10);
	proc_link(j->tid, "cwd", j->cwd, sizeof j->cwd);
	j->who.cwd = j->cwd[0] == '/' ? j->cwd : NULL;
	/* Fields 22 (start), 26 (start of code) and 28 (start of stack),
	 * counted after the name, which may hold spaces. */
	char stat[1024];
	uint64_t field[29] = {0};
	if (proc_read(j->tgid, "stat", stat, sizeof stat) > 0) {
		char *s = strrchr(stat, ')');
		for (int f = 2; s && f < 28; f++) {
			s = strchr(s + 1, ' ');
			if (s)
				field[f + 1] = strtoull(s + 1, NULL, 10);
		}
	}
	j->who.start = field[22];
	j->cmdline = malloc(32 << 10);
	if (!j->cmdline)
		return -1;
	struct ag_kernel *k = j->k;
	ssize_t n = -1;
	pthread_mutex_lock(&k->images_mu);
	for (int i = 0; i < NIMAGES; i++) {
		struct image *im = &k->images[i];
		if (im->tgid == j->tgid && im->start == field[22] && im->code == field[26] &&
		    im->stack == field[28] && im->cmdline) {
			memcpy(j->exe, im->exe, sizeof j->exe);
			memcpy(j->cmdline, im->cmdline, im->cmdlen + 1);
			n = (ssize_t)im->cmdlen;
			break;
		}
	}
	pthread_mutex_unlock(&k->images_mu);
	if (n < 0) {
		proc_link(j->tgid, "exe", j->exe, sizeof j->exe);
		n = proc_read(j->tgid, "cmdline", j->cmdline, 32 << 10);
		char *copy = n >= 0 && field[22] ? malloc((size_t)n + 1) : NULL;
		if (copy) {
			memcpy(copy, j->cmdline, (size_t)n + 1);
			pthread_mutex_lock(&k->images_mu);
			struct image *im = &k->images[k->next_image++ % NIMAGES];
			free(im->cmdline);
			*im = (struct image){.tgid = j->tgid, .start = field[22], .code = field[26],
					     .stack = field[28], .cmdline = copy, .cmdlen = (size_t)n};
			memcpy(im->exe, j->exe, sizeof im->exe);
			pthread_mutex_unlock(&k->images_mu);
		}
	}
	j->who.exe = j->exe[0] == '/' ? j->exe : NULL;
	int w = 0;
	for (ssize_t i = 0; n > 0 && i < n && w < 255; i += (ssize_t)strlen(j->cmdline + i) + 1)
		j->argv[w++] = j->cmdline + i;
	j->argv[w] = NULL;
	j->who.argv = w ? j->argv : NULL;
	j->mem = proc_open(j->tid, "mem", O_RDONLY);
	if (j->mem < 0)
		return -1;
	/* Opened: if the id is still valid, the tid was not reused meanwhile. */
	if (ioctl(j->k->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &j->req->id) < 0)
		return -1;
	return 0;
}

/* May this process act for the caller? Only with its very credentials,
 * root and mount namespace: anything else would act with rights the caller
 * does not have, or on other files than it named. */
static const char *job_foreign(struct job *j)
{
	char c[512], ns[64], root[PATH_MAX];

	creds_of(j->status, c, sizeof c);
	if (strcmp(c, j->k->creds) != 0)
		return "it runs with other credentials than agentguard run, which cannot act for it";
	proc_link(j->tid, "ns/mnt", ns, sizeof ns);
	proc_link(j->tid, "root", root, sizeof root);
	if (strcmp(ns, j->k->mntns) != 0 || strcmp(root, "/") != 0)
		return "it runs in another mount namespace or root, where its paths name other files";
	return NULL;
}

/* The caller's directory descriptor, as one of ours (O_PATH). */
static int job_dir(struct job *j, long dfd)
{
	char what[32];

	if ((int)dfd == AT_FDCWD)
		return proc_open(j->tid, "cwd", O_PATH | O_DIRECTORY);
	if ((int)dfd < 0) {
		errno = EBADF;
		return -1;
	}
	snprintf(what, sizeof what, "fd/%d", (int)dfd);
	int fd = proc_open(j->tid, what, O_PATH);
	if (fd < 0)
		errno = EBADF;
	return fd;
}

/* The caller's open file (the same open file description). */
static int job_fd(struct job *j, long fd)
{
	if (j->pidfd < 0)
		j->pidfd = (int)syscall(SYS_pidfd_open, j->tgid, 0);
	int ours = j->pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, j->pidfd, (int)fd, 0);
	if (ours < 0)
		errno = EBADF;
	return ours;
}

/* What to tell the kernel. */
static void done(struct job *j, long rc)
{
	if (rc < 0) {
		j->resp->error = -errno;
		j->resp->val = 0;
	} else {
		j->resp->error = 0;
		j->resp->val = rc;
	}
}

static void go_on(struct job *j)
{
	j->resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	j->resp->error = 0;
	j->resp->val = 0;
}

/* Put the file we opened for the caller into it as the call's result. */
static int hand_over(struct job *j, int fd, int cloexec)
{
	struct seccomp_notif_addfd a = {
		.id = j->req->id,
		.flags = SECCOMP_ADDFD_FLAG_SEND,
		.srcfd = (uint32_t)fd,
		.newfd_flags = cloexec ? O_CLOEXEC : 0,
	};
	int rc = ioctl(j->k->listener, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
	close(fd);
	return rc;   /* >= 0: answered (the caller's new fd number) */
}

/* "/proc/self/fd/D/rel" names rel under the caller's directory, for the
 * entries that take no directory descriptor (truncate). */
static int under_dir(char *out, size_t cap, int dir, const char *path)
{
	int n = path[0] == '/' ? snprintf(out, cap, "%s", path)
		: snprintf(out, cap, "/proc/self/fd/%d/%s", dir, path);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int read_path(struct job *j, uint64_t addr, char *buf)
{
	return mem_str(j, addr, buf, PATH_MAX);
}

/* Not a place to open for a process: what the supervisor's own /proc would
 * show (its memory, its descriptors, its view of "self"), or a file the
 * process could only reach through /proc's magic links, which the kernel
 * resolves for the supervisor as its own. */
static int procfs(int fd)
{
	struct statfs sf;
	return fstatfs(fd, &sf) < 0 || sf.f_type == PROC_SUPER_MAGIC || sf.f_type == SYSFS_MAGIC ||
	       sf.f_type == PIPEFS_MAGIC || sf.f_type == SOCKFS_MAGIC ||
	       sf.f_type == ANON_INODE_FS_MAGIC;
}

static int not_for_us(int dir, const char *path)
{
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS};
	char parent[PATH_MAX];
	int fd = (int)syscall(SYS_openat2, dir, path, &how, sizeof how);

	if (fd < 0 && errno == ENOENT) {
		/* A new file: where it would be made. */
		const char *slash = strrchr(path, '/');
		if (!slash)
			snprintf(parent, sizeof parent, ".");
		else
			snprintf(parent, sizeof parent, "%.*s",
				 slash == path ? 1 : (int)(slash - path), path);
		fd = (int)syscall(SYS_openat2, dir, parent, &how, sizeof how);
	}
	if (fd < 0)
		return errno == ELOOP || errno == EXDEV;
	int bad = procfs(fd);
	close(fd);
	return bad;
}

/* An open that truncates or can overwrite: opened here, judged and
 * snapshotted by the library's openat, and handed over. 1 when answered by
 * hand_over, 2 when the process makes it itself (nothing to judge: it only
 * reads; or it is in /proc, where only its own view is right, and where
 * the floor binds it). */
static int do_open(struct job *j, long dfd, uint64_t upath, int flags, mode_t mode,
		   uint64_t resolve, char *path)
{
	if (!(flags & O_TRUNC) && ((flags & O_ACCMODE) == O_RDONLY || (flags & O_PATH))) {
		go_on(j);
		return 2;
	}
	if (read_path(j, upath, path) < 0)
		return -1;
	int dir = job_dir(j, dfd);
	if (dir < 0)
		return -1;
	if (not_for_us(dir, path)) {
		close(dir);
		go_on(j);
		return 2;
	}
	struct stat want;
	int known = 0;
	if (resolve) {
		/* openat2's limits (RESOLVE_BENEATH, ...) are the caller's: where
		 * they stop the open it fails as it would; where they let it
		 * through, the library's open below must reach that very file. */
		struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = resolve};
		int pf = (int)syscall(SYS_openat2, dir, path, &how, sizeof how);
		if (pf < 0 && (errno != ENOENT || !(flags & O_CREAT))) {
			int e = errno;
			close(dir);
			errno = e;
			return -1;
		}
		known = pf >= 0 && fstat(pf, &want) == 0;
		if (pf >= 0)
			close(pf);
	}
	/* Our umask is 0 (cmd_run): the caller's applies, as in its own open. */
	int fd = j->k->lib.openat(dir, path, flags | O_CLOEXEC, mode & ~j->umask & 07777);
	int e = errno;
	close(dir);
	if (fd < 0) {
		errno = e;
		return -1;
	}
	struct stat got;
	if (known && (fstat(fd, &got) < 0 || got.st_dev != want.st_dev || got.st_ino != want.st_ino)) {
		close(fd);
		errno = EAGAIN;   /* swapped meanwhile: the caller may try again */
		return -1;
	}
	if (procfs(fd)) {
		/* Swapped in since: one of ours, reached through /proc. */
		close(fd);
		j->k->lib.refuse("write", path, "the file changed under the supervisor to one "
				 "of its own (through /proc): refused");
		errno = EACCES;
		return -1;
	}
	if (hand_over(j, fd, flags & O_CLOEXEC) < 0)
		return -1;
	return 1;
}

/* Read the exec's argv: the rules judge its words. */
static char **read_argv(struct job *j, uint64_t uargv, char **store)
{
	size_t cap = 64, n = 0, used = 0;
	char **v = calloc(cap + 1, sizeof *v);
	char *buf = malloc(ARGV_MAX_BYTES);

	*store = buf;
	if (!v || !buf)
		goto fail;
	for (; uargv; n++) {
		uint64_t p;
		if (n >= ARGV_MAX_WORDS || mem_get(j, uargv + 8 * n, &p, sizeof p) < 0)
			goto fail;
		if (!p)
			break;
		if (used >= ARGV_MAX_BYTES || mem_str(j, p, buf + used, ARGV_MAX_BYTES - used) < 0)
			goto fail;
		if (n == cap) {
			char **nv = realloc(v, (cap * 2 + 1) * sizeof *v);
			if (!nv)
				goto fail;
			v = nv;
			cap *= 2;
		}
		v[n] = buf + used;
		used += strlen(buf + used) + 1;
	}
	v[n] = NULL;
	return v;
fail:
	free(v);
	free(buf);
	*store = NULL;
	return NULL;
}

/* Was this call made inside libc, in a process the library is in? Then it is
 * libc's own: an exec beneath posix_spawn or system, which the library judged
 * and recorded at the entry point, or a connect of the name service (nscd,
 * DNS) or of syslog. It is judged all the same (a program can reach libc's
 * code past the library, through dlsym on libc, say), only not recorded
 * twice when allowed. syscall() is a raw call, never libc's own. */
static int from_libc(struct job *j)
{
	struct ag_kernel *k = j->k;
	uint64_t ip = j->req->data.instruction_pointer;
	char maps[64];
	int lib = 0, in_libc = 0;
	uintptr_t base = 0;

	if (!k->gate || !k->libc_ino)
		return 0;
	snprintf(maps, sizeof maps, "/proc/%d/maps", j->tgid);
	FILE *f = fopen(maps, "re");
	if (!f)
		return 0;
	char line[PATH_MAX + 128];
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi, off, ino;
		unsigned maj, mnr;
		char perm[8];
		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perm, &off, &maj, &mnr,
			   &ino) != 7)
			continue;
		if ((lo == k->gate && perm[2] == 'x') ||
		    (ino == k->lib_ino && (dev_t)makedev(maj, mnr) == k->lib_dev))
			lib = 1;
		if (ino != k->libc_ino || (dev_t)makedev(maj, mnr) != k->libc_dev)
			continue;
		if (off == 0 && !base)
			base = lo;
		if (perm[2] == 'x' && ip >= lo && ip < hi)
			in_libc = 1;
	}
	fclose(f);
	if (!lib || !in_libc || !base)
		return 0;
	return !(ip >= base + k->syscall_off && ip < base + k->syscall_off + k->syscall_len);
}

static int do_exec(struct job *j, long dfd, uint64_t upath, uint64_t uargv, int flags,
		   char *path)
{
	j->who.quiet = from_libc(j);
	if (read_path(j, upath, path) < 0)
		return -1;
	char *store = NULL;
	char **argv = read_argv(j, uargv, &store);
	if (!argv) {
		j->k->lib.refuse("exec", path, "its argv could not be read whole (over 1 MiB or "
				 "16384 words, or unreadable), so it cannot be judged");
		errno = EACCES;
		return -1;
	}
	int dir = path[0] == '/' && !(flags & AT_EMPTY_PATH) ? AT_FDCWD : job_dir(j, dfd);
	int rc = dir == -1 ? -1 : j->k->lib.exec(dir, path, argv, flags);
	int e = errno;
	if (dir >= 0)
		close(dir);
	free(argv);
	free(store);
	/* It is let go only now, and only if it may run: an exec cannot be
	 * made for another process. (Another thread of the caller could still
	 * change its arguments in between; see the README.) */
	if (rc == 0 && ioctl(j->k->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &j->req->id) == 0) {
		go_on(j);
		return 0;
	}
	errno = rc == 0 ? ESRCH : e;
	return -1;
}

/* A sockaddr of the caller's, at most sizeof *ss. */
static int read_addr(struct job *j, uint64_t uaddr, uint64_t len, struct sockaddr_storage *ss,
		     socklen_t *sl)
{
	if (len > sizeof *ss)
		len = sizeof *ss;
	memset(ss, 0, sizeof *ss);
	*sl = (socklen_t)len;
	return mem_get(j, uaddr, ss, (size_t)len);
}

/* A relative unix socket path is the caller's: make it ours. 0, or -1
 * when it does not fit (then judged on the name the caller gave). */
static int unix_rebase(struct job *j, struct sockaddr_storage *ss, socklen_t *sl)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	size_t off = offsetof(struct sockaddr_un, sun_path);

	if (ss->ss_family != AF_UNIX || *sl <= off || un->sun_path[0] == 0 ||
	    un->sun_path[0] == '/')
		return 0;
	char rel[sizeof un->sun_path + 1];
	size_t n = strnlen(un->sun_path, *sl - off);
	memcpy(rel, un->sun_path, n);
	rel[n] = 0;
	int m = snprintf(un->sun_path, sizeof un->sun_path, "%s/%s", j->cwd, rel);
	if (m < 0 || (size_t)m >= sizeof un->sun_path || j->cwd[0] != '/')
		return -1;
	*sl = (socklen_t)(off + (size_t)m + 1);
	return 0;
}

static int do_connect(struct job *j, long fd, uint64_t uaddr, uint64_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	if (read_addr(j, uaddr, len, &ss, &sl) < 0)
		return -1;
	j->who.quiet = from_libc(j);
	if (unix_rebase(j, &ss, &sl) < 0) {
		j->k->lib.refuse("connect", NULL, "the unix socket's relative path is too long to "
				 "be connected for the caller");
		errno = EACCES;
		return -1;
	}
	int s = job_fd(j, fd);
	if (s < 0)
		return -1;
	/* On the caller's socket, from here: it connects where we judged. */
	int rc = j->k->lib.connect(s, (struct sockaddr *)&ss, sl);
	int e = errno;
	close(s);
	errno = e;
	return rc;
}

/* sendto with an address: judged like a connect to it, then sent from here
 * on the caller's socket (the address cannot change after the judging). */
static long do_sendto(struct job *j, const uint64_t *a)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	if (read_addr(j, a[4], a[5], &ss, &sl) < 0)
		return -1;
	j->who.quiet = from_libc(j);
	if (j->k->lib.judge("connect", &ss, sl) < 0)
		return -1;
	size_t len = (size_t)a[2];
	if (len > (4u << 20)) {
		errno = EMSGSIZE;
		return -1;
	}
	char *buf = malloc(len ? len : 1);
	if (!buf || (len && mem_get(j, a[1], buf, len) < 0)) {
		free(buf);
		errno = buf ? EFAULT : ENOMEM;
		return -1;
	}
	int s = job_fd(j, (long)a[0]);
	long rc = -1;
	if (s >= 0) {
		rc = sendto(s, buf, len, (int)a[3] | MSG_NOSIGNAL, (struct sockaddr *)&ss, sl);
		int e = errno;
		close(s);
		/* The caller would have had its SIGPIPE. */
		if (rc < 0 && e == EPIPE && !((int)a[3] & MSG_NOSIGNAL))
			syscall(SYS_tgkill, j->tgid, j->tid, SIGPIPE);
		errno = e;
	}
	free(buf);
	return rc;
}

/* sendmsg/sendmmsg: their addresses are judged like connects. Sent by the
 * caller (its control messages carry its own descriptors). */
static int do_sendmsg(struct job *j, uint64_t umsg, unsigned count, size_t stride)
{
	j->who.quiet = from_libc(j);
	for (unsigned i = 0; i < count && i < 1024; i++) {
		struct msghdr m;
		if (mem_get(j, umsg + i * stride, &m, sizeof m) < 0)
			return -1;
		if (!m.msg_name || !m.msg_namelen)
			continue;
		struct sockaddr_storage ss;
		socklen_t sl;
		if (read_addr(j, (uint64_t)(uintptr_t)m.msg_name, m.msg_namelen, &ss, &sl) < 0)
			return -1;
		unix_rebase(j, &ss, &sl);
		if (j->k->lib.judge("connect", &ss, sl) < 0)
			return -1;
	}
	go_on(j);
	return 0;
}

/* The operation a 64-bit watched call is, for a refusal's row. */
static const char *op64(int nr)
{
	switch (nr) {
	case SYS_unlink: case SYS_unlinkat: case SYS_rmdir: return "delete";
	case SYS_rename: case SYS_renameat: case SYS_renameat2: return "rename";
	case SYS_execve: case SYS_execveat: return "exec";
	case SYS_connect: case SYS_sendto: case SYS_sendmsg: case SYS_sendmmsg: return "connect";
	case SYS_link: case SYS_linkat: case SYS_symlink: case SYS_symlinkat:
	case SYS_mknod: case SYS_mknodat: return "link";
	case SYS_io_uring_setup: return "io_uring";
	case SYS_fallocate: return "write";
	case SYS_chmod: case SYS_fchmod: case SYS_fchmodat: case SYS_fchmodat2:
	case SYS_chown: case SYS_fchown: case SYS_lchown: case SYS_fchownat: return "mode";
	case SYS_kill: case SYS_tkill: case SYS_tgkill: case SYS_rt_sigqueueinfo:
	case SYS_rt_tgsigqueueinfo: case SYS_pidfd_open: case SYS_process_vm_readv:
	case SYS_process_vm_writev: case SYS_ptrace: return "signal";
	default: return "truncate";
	}
}

static const char *op32(int nr)
{
	for (size_t i = 0; i < sizeof watched32 / sizeof watched32[0]; i++)
		if (watched32[i].nr == nr)
			return watched32[i].op;
	return nr == NR32_SOCKETCALL ? "connect" : "truncate";
}

/* One report: fills j->resp, or answers itself (1). */
/* A copy of a process's spool (AGENTGUARD_COPY_SPOOL): the supervisor owns
 * the log. Into STATE/kspool/NAME.spool, where no process of the session
 * can change it, go the committed records of STATE/spool/NAME.spool (the
 * file the process maps: the same bytes) past what the copy has: never
 * anything the copy already holds, so what the process changes afterwards
 * changes nothing here. The log takes this copy over the process's spool
 * (lib/audit.c). */
static int spool_name_ok(const char *name)
{
	const char *sid = getenv("AGENTGUARD_SESSION");
	size_t sl = sid ? strlen(sid) : 0;

	/* SESSION.PID.RANDOM, as spool.c names them, and nothing else. */
	return sid && strncmp(name, sid, sl) == 0 && name[sl] == '.' && !strstr(name, "..") &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
		       strlen(name);
}

/* Copy what spool `sp` has committed past what its copy holds; 0 or -1. */
static int copy_spool(struct ag_kernel *k, struct spool *sp)
{
	int rc = -1, out = -1;
	unsigned char *buf = NULL;
	struct stat st, ist;
	struct ag_spool_hdr h;

	out = openat(k->kspool_dir, sp->name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	/* Processes that share a spool (a fork child) may send at once. */
	if (out < 0 || flock(out, LOCK_EX) < 0 || fstat(out, &st) < 0 || fstat(sp->fd, &ist) < 0 ||
	    !S_ISREG(ist.st_mode) || pread(sp->fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
	    memcmp(h.magic, AG_SPOOL_MAGIC, 8) != 0)
		goto out;
	uint64_t have = (uint64_t)st.st_size, used = h.used;
	if (used > (uint64_t)ist.st_size || used > ((uint64_t)64 << 20))
		used = (uint64_t)ist.st_size < ((uint64_t)64 << 20) ? (uint64_t)ist.st_size : 0;
	if (have < AG_SPOOL_HDR_SIZE) {
		unsigned char hdr[AG_SPOOL_HDR_SIZE];
		if (pread(sp->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
		    pwrite(out, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
			goto out;
		have = AG_SPOOL_HDR_SIZE;
	}
	if (used > have) {
		size_t len = (size_t)(used - have);
		buf = malloc(len);
		if (!buf || pread(sp->fd, buf, len, (off_t)have) != (ssize_t)len)
			goto out;
		size_t n = ag_spool_committed(buf, len, have);
		if (n && pwrite(out, buf, n, (off_t)have) != (ssize_t)n)
			goto out;
		have += n;
	}
	/* The copy's own header says where its records end. */
	if (pwrite(out, &have, sizeof have, offsetof(struct ag_spool_hdr, used)) != sizeof have)
		goto out;
	__atomic_store_n(&sp->copied, have, __ATOMIC_RELAXED);
	rc = 0;
out:;
	int e = errno;
	free(buf);
	if (out >= 0)
		close(out);
	errno = e;
	return rc;
}

#define MAX_SPOOLS 4096

/* The entry for spool NAME (SESSION.PID.RANDOM, without ".spool"), opened
 * and added if it is new; NULL if it cannot be. Under spools_mu. */
static struct spool *spool_find(struct ag_kernel *k, const char *name)
{
	char file[sizeof ((struct spool *)0)->name];
	if (snprintf(file, sizeof file, "%s.spool", name) >= (int)sizeof file)
		return NULL;
	uint32_t h = 2166136261u;
	for (const char *c = file; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	for (size_t i = 0; i < k->nspools; i++)
		if (k->spools[i].hash == h && strcmp(k->spools[i].name, file) == 0)
			return &k->spools[i];
	if (!k->spools || k->nspools >= MAX_SPOOLS || k->spool_dir < 0 || k->kspool_dir < 0 ||
	    !spool_name_ok(name))
		return NULL;
	int fd = openat(k->spool_dir, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	struct spool *sp = &k->spools[k->nspools++];
	snprintf(sp->name, sizeof sp->name, "%s", file);   /* the copy's name too */
	sp->hash = h;
	sp->fd = fd;
	sp->copied = 0;
	return sp;
}

/* What the spool's process committed since the last copy, copied now: a
 * deny or an ask, before the call returns. */
static int copy_named(struct ag_kernel *k, const char *name)
{
	pthread_mutex_lock(&k->spools_mu);
	struct spool *sp = spool_find(k, name);
	int rc = sp ? copy_spool(k, sp) : -1;
	pthread_mutex_unlock(&k->spools_mu);
	return rc;
}

/* New spools of this session in STATE/spool. */
static void find_spools(struct ag_kernel *k)
{
	int fd = dup(k->spool_dir);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	struct dirent *e;
	char name[128];
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n <= 6 || n - 6 >= sizeof name || strcmp(e->d_name + n - 6, ".spool") != 0)
			continue;
		memcpy(name, e->d_name, n - 6);
		name[n - 6] = 0;
		if (!spool_name_ok(name))
			continue;
		pthread_mutex_lock(&k->spools_mu);
		spool_find(k, name);
		pthread_mutex_unlock(&k->spools_mu);
	}
	closedir(d);
}

/* Each spool that grew, copied; one that is gone (ingested: its process
 * ended and the log has it all), forgotten. */
static void pull_all(struct ag_kernel *k, int forget)
{
	pthread_mutex_lock(&k->spools_mu);
	for (size_t i = 0; i < k->nspools; i++) {
		struct spool *sp = &k->spools[i];
		uint64_t used = 0;
		struct stat st;
		if (pread(sp->fd, &used, sizeof used, offsetof(struct ag_spool_hdr, used)) ==
			    (ssize_t)sizeof used &&
		    used > __atomic_load_n(&sp->copied, __ATOMIC_RELAXED))
			copy_spool(k, sp);
		else if (forget && fstat(sp->fd, &st) == 0 && st.st_nlink == 0) {
			close(sp->fd);
			*sp = k->spools[--k->nspools];
			i--;
		}
	}
	pthread_mutex_unlock(&k->spools_mu);
}

static void *pull_spools(void *arg)
{
	struct ag_kernel *k = arg;

	for (unsigned tick = 0;; tick++) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 100 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&k->spools_mu);
		while (!__atomic_load_n(&k->stopping, __ATOMIC_ACQUIRE) &&
		       pthread_cond_timedwait(&k->puller_wake, &k->spools_mu, &ts) == 0)
			;
		pthread_mutex_unlock(&k->spools_mu);
		if (__atomic_load_n(&k->stopping, __ATOMIC_ACQUIRE))
			break;
		find_spools(k);
		pull_all(k, tick % 10 == 9);
	}
	return NULL;
}

static int handle(struct job *j)
{
	struct lib *L = &j->k->lib;
	const uint64_t *a = (const uint64_t *)j->req->data.args;
	int nr = j->req->data.nr;
	char *p1 = malloc(PATH_MAX), *p2 = malloc(PATH_MAX), *x = malloc(PATH_MAX + 64);
	long rc = -1;
	int dir = -1, dir2 = -1, answered = 0;

	if (!p1 || !p2 || !x) {
		errno = ENOMEM;
		goto out;
	}
	if (j->req->data.arch != AUDIT_ARCH_X86_64) {
		L->refuse(op32(nr), NULL, "a 32-bit (i386) system call: the kernel layer judges "
			  "64-bit calls only, so it is refused");
		errno = EACCES;
		goto out;
	}
	switch (nr) {
	case SYS_unlink:
	case SYS_rmdir:
	case SYS_unlinkat: {
		int at = nr == SYS_unlinkat;
		int flags = at ? (int)a[2] : nr == SYS_rmdir ? AT_REMOVEDIR : 0;
		if (read_path(j, a[at], p1) < 0 || (dir = job_dir(j, at ? (long)a[0] : AT_FDCWD)) < 0)
			break;
		rc = L->unlinkat(dir, p1, flags);
		break;
	}
	case SYS_rename:
	case SYS_renameat:
	case SYS_renameat2: {
		int at = nr != SYS_rename;
		if (read_path(j, a[at ? 1 : 0], p1) < 0 || read_path(j, a[at ? 3 : 1], p2) < 0 ||
		    (dir = job_dir(j, at ? (long)a[0] : AT_FDCWD)) < 0 ||
		    (dir2 = job_dir(j, at ? (long)a[2] : AT_FDCWD)) < 0)
			break;
		rc = L->renameat2(dir, p1, dir2, p2, nr == SYS_renameat2 ? (unsigned)a[4] : 0);
		break;
	}
	case SYS_truncate:
		if (read_path(j, a[0], p1) < 0 || (dir = job_dir(j, AT_FDCWD)) < 0 ||
		    under_dir(x, PATH_MAX + 64, dir, p1) < 0)
			break;
		rc = L->truncate(x, (off_t)a[1]);
		break;
	case SYS_ftruncate: {
		int fd = job_fd(j, (long)a[0]);
		if (fd < 0)
			break;
		rc = L->ftruncate(fd, (off_t)a[1]);
		int e = errno;
		close(fd);
		errno = e;
		break;
	}
	case SYS_fallocate: {
		int fd = job_fd(j, (long)a[0]);
		if (fd < 0)
			break;
		rc = L->fallocate(fd, (int)a[1], (off_t)a[2], (off_t)a[3]);
		int e = errno;
		close(fd);
		errno = e;
		break;
	}
	case SYS_open:
	case SYS_creat:
	case SYS_openat: {
		long dfd = nr == SYS_openat ? (long)a[0] : AT_FDCWD;
		uint64_t up = nr == SYS_openat ? a[1] : a[0];
		int flags = nr == SYS_creat ? O_CREAT | O_WRONLY | O_TRUNC
			  : (int)(nr == SYS_openat ? a[2] : a[1]);
		mode_t mode = (mode_t)(nr == SYS_creat ? a[1] : nr == SYS_openat ? a[3] : a[2]);
		rc = do_open(j, dfd, up, flags, mode, 0, p1);
		answered = rc >= 1;
		break;
	}
	case SYS_openat2: {
		struct open_how how = {0};
		if (a[3] < sizeof how || mem_get(j, a[2], &how, sizeof how) < 0) {
			errno = a[3] < sizeof how ? EINVAL : EFAULT;
			break;
		}
		if (how.flags > INT_MAX) {
			errno = EINVAL;
			break;
		}
		rc = do_open(j, (long)a[0], a[1], (int)how.flags, (mode_t)how.mode, how.resolve, p1);
		answered = rc >= 1;
		break;
	}
	case SYS_execve:
	case SYS_execveat: {
		int at = nr == SYS_execveat;
		rc = do_exec(j, at ? (long)a[0] : AT_FDCWD, a[at], a[at + 1], at ? (int)a[4] : 0, p1);
		answered = rc == 0;   /* go_on set */
		break;
	}
	case SYS_connect:
		rc = do_connect(j, (long)a[0], a[1], a[2]);
		break;
	case SYS_sendto:
		rc = do_sendto(j, a);
		break;
	case SYS_sendmsg:
		rc = do_sendmsg(j, a[1], 1, 0);
		answered = rc == 0;
		break;
	case SYS_sendmmsg:
		rc = do_sendmsg(j, a[1], (unsigned)a[2], sizeof(struct mmsghdr));
		answered = rc == 0;
		break;
	case SYS_kill:
	case SYS_tkill:
	case SYS_tgkill:
	case SYS_rt_sigqueueinfo:
	case SYS_rt_tgsigqueueinfo:
	case SYS_pidfd_open:
	case SYS_process_vm_readv:
	case SYS_process_vm_writev:
	case SYS_ptrace:
		/* The filter sends these only when aimed at us. */
		snprintf(x, PATH_MAX, "/proc/%d", (int)getpid());
		L->refuse("signal", x, "aimed at agentguard's supervisor, which the session "
			  "cannot stop, trace or read: refused");
		errno = EPERM;
		break;
	case SYS_io_uring_setup:
		if (L->judge("io_uring", NULL, 0) < 0) {
			errno = EPERM;   /* what a sandbox's refusal looks like: callers fall back */
			break;
		}
		go_on(j);
		rc = 0;
		answered = 1;
		break;
	case SYS_link:
	case SYS_linkat: {
		int at = nr == SYS_linkat;
		if (read_path(j, a[at ? 1 : 0], p1) < 0 || read_path(j, a[at ? 3 : 1], p2) < 0 ||
		    (dir = job_dir(j, at ? (long)a[0] : AT_FDCWD)) < 0 ||
		    (dir2 = job_dir(j, at ? (long)a[2] : AT_FDCWD)) < 0)
			break;
		rc = L->linkat(dir, p1, dir2, p2, at ? (int)a[4] : 0);
		break;
	}
	case SYS_symlink:
	case SYS_symlinkat: {
		int at = nr == SYS_symlinkat;
		if (read_path(j, a[0], p1) < 0 || read_path(j, a[at ? 2 : 1], p2) < 0 ||
		    (dir = job_dir(j, at ? (long)a[1] : AT_FDCWD)) < 0)
			break;
		rc = L->symlinkat(p1, dir, p2);
		break;
	}
	case SYS_mknod:
	case SYS_mknodat: {
		int at = nr == SYS_mknodat;
		mode_t mode = (mode_t)a[at + 1];
		if (read_path(j, a[at], p1) < 0 || (dir = job_dir(j, at ? (long)a[0] : AT_FDCWD)) < 0)
			break;
		rc = L->mknodat(dir, p1, (mode & S_IFMT) | (mode & 07777 & ~j->umask),
				(dev_t)a[at + 2]);
		break;
	}
	case SYS_chmod:
	case SYS_fchmodat:
	case SYS_fchmodat2: {
		int at = nr != SYS_chmod;
		int flags = nr == SYS_fchmodat2 ? (int)a[3] : 0;
		if (read_path(j, a[at], p1) < 0 || (dir = job_dir(j, at ? (long)a[0] : AT_FDCWD)) < 0)
			break;
		rc = L->fchmodat(dir, p1, (mode_t)a[at + 1], flags);
		break;
	}
	case SYS_chown:
	case SYS_lchown:
	case SYS_fchownat: {
		int at = nr == SYS_fchownat;
		int flags = at ? (int)a[4] : nr == SYS_lchown ? AT_SYMLINK_NOFOLLOW : 0;
		if (read_path(j, a[at], p1) < 0 || (dir = job_dir(j, at ? (long)a[0] : AT_FDCWD)) < 0)
			break;
		rc = L->fchownat(dir, p1, (uid_t)a[at + 1], (gid_t)a[at + 2], flags);
		break;
	}
	case SYS_fchmod:
	case SYS_fchown: {
		int fd = job_fd(j, (long)a[0]);
		if (fd < 0)
			break;
		rc = nr == SYS_fchmod ? L->fchmod(fd, (mode_t)a[1])
				      : L->fchown(fd, (uid_t)a[1], (gid_t)a[2]);
		int e = errno;
		close(fd);
		errno = e;
		break;
	}
	default:
		/* Not one of ours (the filter and this table disagree): let it be. */
		go_on(j);
		rc = 0;
		answered = 1;
		break;
	}
out:;
	int e = errno;
	if (dir >= 0)
		close(dir);
	if (dir2 >= 0)
		close(dir2);
	free(p1);
	free(p2);
	free(x);
	errno = e;
	if (answered)
		return rc == 1 ? 1 : 0;
	done(j, rc);
	return 0;
}

/* The library asking (AGENTGUARD_KMSG): counting, or copying its spool
 * before a deny or an ask returns. Neither uses a right of the caller's,
 * so a process with other credentials gets them too, and neither needs to
 * know more of it than where its spool's name is: this stays a short round
 * trip. */
static void serve_kmsg(struct job *j)
{
	const uint64_t *a = (const uint64_t *)j->req->data.args;
	long rc = -1;

	if (a[0] == AGENTGUARD_COPY_SPOOL) {
		char name[128];
		j->tid = (int)j->req->pid;
		j->mem = proc_open(j->tid, "mem", O_RDONLY);
		/* Read, then checked: the name is the caller's, not a reused pid's. */
		if (j->mem < 0 || mem_str(j, a[1], name, sizeof name) < 0 ||
		    ioctl(j->k->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &j->req->id) < 0 ||
		    !spool_name_ok(name))
			errno = EINVAL;
		else
			rc = copy_named(j->k, name);
	} else {
		rc = j->k->lib.count((int)a[0], a[1]);
		if (rc < 0) {
			errno = (int)-rc;
			rc = -1;
		}
	}
	done(j, rc);
}

static void serve_one(struct ag_kernel *k, struct seccomp_notif *req,
		      struct seccomp_notif_resp *resp)
{
	struct job j = {.k = k, .req = req, .resp = resp, .mem = -1, .pidfd = -1};

	memset(resp, 0, sizeof *resp);
	resp->id = req->id;
	if (req->data.nr == AGENTGUARD_KMSG && req->data.arch == AUDIT_ARCH_X86_64) {
		serve_kmsg(&j);
		goto send;
	}
	__atomic_add_fetch(&k->calls, 1, __ATOMIC_RELAXED);
	if (job_who(&j) < 0) {
		/* Gone (killed, exited) or unreadable: nothing to answer, or a
		 * refusal that cannot be misread. */
		resp->error = -EACCES;
		goto send;
	}
	k->lib.begin(&j.who);
	const char *foreign = job_foreign(&j);
	if (foreign) {
		k->lib.refuse(op64(j.req->data.nr), j.exe, foreign);
		resp->error = -EACCES;
	} else if (handle(&j) == 1) {
		k->lib.end();
		goto out;   /* answered with a descriptor */
	}
	k->lib.end();
send:
	if (ioctl(k->listener, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0 && errno != ENOENT) {
		/* ENOENT: the caller is gone. Anything else cannot be fixed here. */
	}
out:
	if (j.mem >= 0)
		close(j.mem);
	if (j.pidfd >= 0)
		close(j.pidfd);
	free(j.cmdline);
}

static void wake(int sig)
{
	(void)sig;
}

static void *worker(void *arg)
{
	struct ag_kernel *k = arg;
	struct seccomp_notif_sizes sz = {0};

	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz) < 0)
		return NULL;
	/* The kernel's structs may be bigger than our headers' (newer kernel). */
	struct seccomp_notif *req = calloc(1, sz.seccomp_notif > sizeof *req ? sz.seccomp_notif
					   : sizeof *req);
	struct seccomp_notif_resp *resp = calloc(1, sz.seccomp_notif_resp > sizeof *resp
						 ? sz.seccomp_notif_resp : sizeof *resp);
	sigset_t only;
	sigfillset(&only);
	sigdelset(&only, SIGUSR2);
	pthread_sigmask(SIG_SETMASK, &only, NULL);
	while (req && resp && !__atomic_load_n(&k->stopping, __ATOMIC_ACQUIRE)) {
		memset(req, 0, sz.seccomp_notif > sizeof *req ? sz.seccomp_notif : sizeof *req);
		if (ioctl(k->listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
			if (errno == EINTR)
				continue;
			if (errno != ENOENT)
				break;
			/* A caller that died first, or no caller left at all: once
			 * every process of the filter is gone, RECV fails at once,
			 * for good (the listener hangs up), and spinning on it would
			 * burn the CPU until we are stopped. */
			struct pollfd pf = {.fd = k->listener, .events = POLLIN};
			if (poll(&pf, 1, -1) < 0 && errno != EINTR)
				break;
			if (pf.revents & (POLLHUP | POLLERR | POLLNVAL))
				break;
			continue;
		}
		serve_one(k, req, resp);
	}
	free(req);
	free(resp);
	return NULL;
}

static int find_libc(struct ag_kernel *k)
{
	Dl_info di;
	const ElfW(Sym) *sym = NULL;
	struct stat st;

	if (!dladdr1((void *)syscall, &di, (void **)&sym, RTLD_DL_SYMENT) || !sym ||
	    !di.dli_fname || stat(di.dli_fname, &st) < 0)
		return -1;
	k->libc_dev = st.st_dev;
	k->libc_ino = st.st_ino;
	k->syscall_off = (uintptr_t)sym->st_value;
	k->syscall_len = sym->st_size ? sym->st_size : 64;
	return 0;
}

/* The supervisor owns the log (under the floor): STATE/spool is watched,
 * STATE/kspool written. A spool is held open from when it is found until it
 * is ingested, so the descriptor limit is raised to hold them all. */
static int start_puller(struct ag_kernel *k)
{
	const char *sd = getenv("AGENTGUARD_STATE_DIR");
	char path[PATH_MAX];
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MAX_SPOOLS + 256) {
		rl.rlim_cur = rl.rlim_max < MAX_SPOOLS + 256 ? rl.rlim_max : MAX_SPOOLS + 256;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (int i = 0; i < 2; i++) {
		if (!sd || snprintf(path, sizeof path, "%s/%s", sd, i ? "kspool" : "spool") >=
				   (int)sizeof path) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -1;
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -1;
		*(i ? &k->kspool_dir : &k->spool_dir) = fd;
	}
	k->spools = calloc(MAX_SPOOLS, sizeof k->spools[0]);
	if (!k->spools || pthread_create(&k->puller, NULL, pull_spools, k) != 0)
		return -1;
	k->have_puller = 1;
	return 0;
}

struct ag_kernel *ag_kernel_start(int listener, const char *lib_path, uintptr_t gate, int own_log,
				  char *err, size_t errlen)
{
	struct ag_kernel *k = calloc(1, sizeof *k);
	char status[4096];

	if (!k) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	k->listener = listener;
	k->gate = gate;
	pthread_mutex_init(&k->images_mu, NULL);
	k->handle = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
	if (!k->handle) {
		snprintf(err, errlen, "cannot load %s into the supervisor: %s", lib_path, dlerror());
		free(k);
		return NULL;
	}
#define SYM(field, name) (*(void **)&k->lib.field = dlsym(k->handle, name))
	if (!SYM(begin, "agentguard_kernel_begin") || !SYM(end, "agentguard_kernel_end") ||
	    !SYM(exec, "agentguard_kernel_exec") || !SYM(judge, "agentguard_kernel_judge") ||
	    !SYM(refuse, "agentguard_kernel_refuse") || !SYM(count, "agentguard_kernel_count") ||
	    !SYM(unlinkat, "unlinkat") ||
	    !SYM(renameat2, "renameat2") || !SYM(openat, "openat") ||
	    !SYM(truncate, "truncate") || !SYM(ftruncate, "ftruncate") ||
	    !SYM(fallocate, "fallocate") ||
	    !SYM(connect, "connect") || !SYM(linkat, "linkat") ||
	    !SYM(symlinkat, "symlinkat") || !SYM(mknodat, "mknodat") ||
	    !SYM(fchmodat, "fchmodat") || !SYM(fchmod, "fchmod") ||
	    !SYM(fchownat, "fchownat") || !SYM(fchown, "fchown")) {
		snprintf(err, errlen, "%s has no kernel-layer entries (an older build?)", lib_path);
		dlclose(k->handle);
		free(k);
		return NULL;
	}
#undef SYM
	proc_read(getpid(), "status", status, sizeof status);
	creds_of(status, k->creds, sizeof k->creds);
	proc_link(getpid(), "ns/mnt", k->mntns, sizeof k->mntns);
	if (find_libc(k) < 0)
		k->libc_ino = 0;
	struct stat lst;
	if (stat(lib_path, &lst) == 0) {
		k->lib_dev = lst.st_dev;
		k->lib_ino = lst.st_ino;
	}
	struct sigaction sa = {.sa_handler = wake};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);   /* no SA_RESTART: it ends a waiting RECV */
	pthread_mutex_init(&k->spools_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->puller_wake, &ca);
	pthread_condattr_destroy(&ca);
	k->spool_dir = k->kspool_dir = -1;
	if (own_log && start_puller(k) < 0) {
		snprintf(err, errlen, "cannot copy the session's spools: %s", strerror(errno));
		dlclose(k->handle);
		free(k);
		return NULL;
	}
	for (int i = 0; i < NWORKERS; i++) {
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, 256u << 10);
		if (pthread_create(&k->workers[k->nworkers], &at, worker, k) == 0)
			k->nworkers++;
		pthread_attr_destroy(&at);
	}
	if (!k->nworkers) {
		snprintf(err, errlen, "cannot start the supervisor's threads");
		dlclose(k->handle);
		free(k);
		return NULL;
	}
	return k;
}

uint64_t ag_kernel_calls(const struct ag_kernel *k)
{
	return k ? __atomic_load_n(&k->calls, __ATOMIC_RELAXED) : 0;
}

void ag_kernel_stop(struct ag_kernel *k)
{
	if (!k)
		return;
	__atomic_store_n(&k->stopping, 1, __ATOMIC_RELEASE);
	/* A worker between its check of `stopping` and its RECV misses one
	 * wake-up: wake it until it is gone. */
	for (int i = 0; i < k->nworkers; i++) {
		for (;;) {
			pthread_kill(k->workers[i], SIGUSR2);
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20 * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (pthread_timedjoin_np(k->workers[i], NULL, &ts) == 0)
				break;
		}
	}
	if (k->have_puller) {
		pthread_mutex_lock(&k->spools_mu);
		pthread_cond_signal(&k->puller_wake);
		pthread_mutex_unlock(&k->spools_mu);
		pthread_join(k->puller, NULL);
	}
	/* A last pull: what the processes recorded until now. */
	if (k->spools) {
		find_spools(k);
		pull_all(k, 0);
		for (size_t i = 0; i < k->nspools; i++)
			close(k->spools[i].fd);
	}
	free(k->spools);
	if (k->spool_dir >= 0)
		close(k->spool_dir);
	if (k->kspool_dir >= 0)
		close(k->kspool_dir);
	close(k->listener);
	for (int i = 0; i < NIMAGES; i++)
		free(k->images[i].cmdline);
	/* The library stays loaded: its spool may still be in use by atexit. */
	free(k);
}
