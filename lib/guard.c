/*
 * The guard: where every hooked call is decided, snapshotted, recorded and,
 * if need be, refused. Hooks (lib/hooks/) only translate their arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <signal.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <dlfcn.h>

#include "floor.h"
#include "gate.h"
#include "guard.h"
#include "kernel_abi.h"
#include "launch.h"
#include "session.h"

enum { G_UNSET, G_ACTIVE, G_BROKEN };

/* What every process of a session counts together (a shared mapping). */
struct counters {
	uint64_t denials;          /* the circuit breaker */
	uint64_t snapshot_bytes;   /* against snapshots.max_bytes */
};

static struct {
	/* What every process touches (the constructor writes, the destructor
	 * reads) first, on one page: each page of this is a fault. */
	int state;
	pid_t pid;                  /* this process: not a vfork child's (which
	                               shares our memory and runs no atfork) */
	const char *const *argv;
	pthread_t main_thread;
	uint64_t lease;             /* snapshot budget leased from the supervisor */
	struct ag_session s;
	struct ag_spool spool;
	char caller[AG_PATH_MAX];
	char broken[1024];          /* why every operation is refused */
	char self[AG_PATH_MAX];     /* this library, resolved */
	const char *self_loaded;    /* ... and as the loader names it */
	char rules_src[AG_PATH_MAX];/* the user's rules file, if any */
	size_t state_len;
	/* What the guard owns, compared with every path judged: the state
	 * dir (and all in it), then single files. */
	struct own { const char *s; size_t len; int dir; } own[5];
	int nown;
	struct counters *counters;  /* session-wide, shared by every process */
	char envbuf[8 * AG_PATH_MAX];/* the session's variables for children */
	const char *env[16];
	char preload_given[AG_PATH_MAX];
	int64_t counters_failed;    /* when making them last failed (mono ns) */
	uint64_t unrecorded;        /* decided in a signal handler that
	                               interrupted the guard: not logged */
	int supervisor;             /* loaded into `agentguard run` (kernel.c) */
} G;

__thread struct ag_thread ag_thread __attribute__((tls_model("initial-exec")));
__thread const struct agentguard_kproc *ag_behalf __attribute__((tls_model("initial-exec")));

/* ---- work frames --------------------------------------------------------------
 * A decision's big buffers come from here, not from the caller's stack.
 * Taking and giving back is one atomic operation on a bitmap: safe in
 * signal handlers and vfork children, never a lock. Pages are touched only
 * when a frame is first used. */
#define NFRAMES 64
static struct ag_work frames[NFRAMES];
static uint64_t frames_used;

/* A free frame, or NULL if all 64 are taken right now. */
static AG_INLINE struct ag_work *frame_try(void)
{
	uint64_t used = __atomic_load_n(&frames_used, __ATOMIC_RELAXED);

	while (~used) {
		int i = __builtin_ctzll(~used);
		uint64_t bit = 1ULL << i;
		if (__atomic_compare_exchange_n(&frames_used, &used, used | bit, 0,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			ag_thread.frames |= bit;
			return &frames[i];
		}
	}
	return NULL;
}

/* 64 decisions in flight at once: wait a little for one to end, but
 * never for good (the call is then refused). */
static AG_NOINLINE struct ag_work *frame_wait(void)
{
	for (int spins = 0; spins <= 20000; spins++) {
		sched_yield();
		struct ag_work *w = frame_try();
		if (w)
			return w;
	}
	return NULL;
}

static AG_INLINE struct ag_work *frame_take(void)
{
	struct ag_work *w = frame_try();

	return w ? w : frame_wait();
}

static void frame_give(struct ag_work *w)
{
	uint64_t bit = 1ULL << (w - frames);

	ag_thread.frames &= ~bit;
	__atomic_and_fetch(&frames_used, ~bit, __ATOMIC_RELEASE);
}

struct ag_work *ag_work(struct ag_call *c)
{
	if (!c->w)
		c->w = frame_take();
	return c->w;
}

static int init_once;

static void say(const char *msg, size_t len)
{
	while (len) {
		ssize_t n = write(2, msg, len);
		if (n <= 0)
			return;
		msg += n;
		len -= (size_t)n;
	}
}

static void say_unwritable(int e);

static void record_session(void)
{
	static int64_t enforce;
	/* Static: the spool keeps it to write at the head of every spool file
	 * this process makes, so a session started on a full disk (or whose
	 * spool was deleted) still gets its row once a spool can be made. */
	static struct ag_field f[9];

	enforce = G.s.enforce;
	const char *mode = G.s.mode == AG_MODE_SUPERVISED ? "supervised" : "autonomous";
#define S(tag, str) (struct ag_field){tag, (uint32_t)strlen(str), str}
	f[0] = S(AG_T_SESSION, G.s.id);
	f[1] = (struct ag_field){AG_T_ARGV | AG_FIELD_ARGV, 0, G.argv};
	f[2] = S(AG_T_MODE, mode);
	f[3] = (struct ag_field){AG_T_ENFORCE, 8, &enforce};
	f[4] = S(AG_T_RULES, G.s.rules_name);
	f[5] = S(AG_T_RULES_HASH, G.s.rules_hash);
	f[6] = S(AG_T_WORKSPACE, G.s.workspace);
	f[7] = S(AG_T_STATE_DIR, G.s.state_dir);
	f[8] = (struct ag_field){AG_T_START, 8, &G.s.start_ns};
#undef S
	ag_spool_set_session(&G.spool, f, 9, G.s.start_ns);
}

/* Fail closed, and say why once. */
static void go_broken(const char *err)
{
	G.state = G_BROKEN;
	snprintf(G.broken, sizeof G.broken,
		 "agentguard cannot start (%.900s); refusing every guarded operation", err);
	/* err may quote the rules file: escaped, like every denial. */
	char shown[sizeof G.broken];
	say("agentguard: ", 12);
	say(shown, ag_escape_display(G.broken, strlen(G.broken), shown, sizeof shown));
	say("\n", 1);
}

extern char **environ;

/* A session that starts here goes into this process's environment too, so
 * that children started where no hook sees it (a raw clone and execve)
 * stay in it. Not with setenv: the caller may hold the old array (execvp
 * read `environ` before its hook ran, and the program may have called
 * setenv already, so the array is glibc's to realloc and free). A new
 * array is made and the old one left as it was; glibc's later setenv
 * copies ours rather than freeing it. */
static void environ_add_session(void)
{
	size_t n = 0, k = 0;

	for (char **e = environ; e && *e; e++)
		n++;
	char **ne = malloc((n + 16) * sizeof *ne);
	if (!ne)
		return;   /* children still get the session from the exec hooks */
	for (char **e = environ; e && *e; e++)
		if (strncmp(*e, "AGENTGUARD_", 11) != 0)
			ne[k++] = *e;
	/* Heap strings, as setenv's would be: some programs free what they
	 * find in environ at exit (perl does). */
	for (const char *const *v = G.env; *v; v++)
		if (!(ne[k++] = strdup(*v)))
			k--;
	ne[k] = NULL;
	environ = ne;
}

/* The library as resolved (for children's LD_PRELOAD, and protected):
 * from the session's image when the loader names it as the session's
 * start did, else walked. 0 when it cannot be resolved. */
static int resolve_self(void)
{
	const char *r = G.s.own.given[AG_OWN_LIB] && G.self_loaded &&
			strcmp(G.s.own.given[AG_OWN_LIB], G.self_loaded) == 0
		? G.s.own.real[AG_OWN_LIB] : NULL;

	if (!G.self[0] && G.self_loaded) {
		if (r && strlen(r) < sizeof G.self)
			strcpy(G.self, r);
		else if (!realpath(G.self_loaded, G.self))
			G.self[0] = 0;
	}
	return G.self[0] != 0;
}

/* name, resolved in place: from the image if it was given the same name. */
static void resolve_own(char *name, size_t cap, int which)
{
	static char real[AG_PATH_MAX];
	const char *g = G.s.own.given[which], *r = G.s.own.real[which];

	if (g && r && strcmp(g, name) == 0) {
		if (strlen(r) < cap)
			strcpy(name, r);
	} else if (realpath(name, real)) {
		snprintf(name, cap, "%s", real);
	}
}

/* Protection compares resolved paths. Done once the rules are mapped (a
 * session's image carries its start's resolutions), before anything is
 * judged: start() and the fork handler load the rules right after init. */
static void own_names(void)
{
	static char real[AG_PATH_MAX];

	if (G.nown)
		return;
	size_t sdl = strlen(G.s.state_dir);
	const char *g = G.s.own.given[AG_OWN_KEY];
	/* The key lives in the state dir: resolved with it unless it is a
	 * link itself (one readlink instead of a walk from /). */
	int key_in_sd = !(g && strcmp(g, G.s.key_file) == 0) && G.s.key_file[0] &&
			strncmp(G.s.key_file, G.s.state_dir, sdl) == 0 &&
			G.s.key_file[sdl] == '/' && !strchr(G.s.key_file + sdl + 1, '/') &&
			readlink(G.s.key_file, real, 1) < 0 && errno != ENOENT;
	resolve_own(G.s.state_dir, sizeof G.s.state_dir, AG_OWN_STATE);
	if (key_in_sd) {
		char name[AG_PATH_MAX];
		snprintf(name, sizeof name, "%s", G.s.key_file + sdl);
		if (ag_fmt(G.s.key_file, sizeof G.s.key_file, "%s%s", G.s.state_dir, name) < 0)
			G.s.key_file[0] = 0;
	} else if (G.s.key_file[0]) {
		resolve_own(G.s.key_file, sizeof G.s.key_file, AG_OWN_KEY);
	}
	resolve_self();
	G.state_len = strlen(G.s.state_dir);
	const char *own[] = {G.s.state_dir, G.rules_src, G.self, G.s.key_file,
			     "/etc/ld.so.preload"};
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		if (own[i][0])
			G.own[G.nown++] = (struct own){own[i], strlen(own[i]), i == 0};
}

/* Whether /etc/ld.so.preload names this library (self, resolved; given:
 * the name the loader knows it by): container-wide mode. */
static int in_ld_so_preload(const char *given)
{
	static char buf[4096], real[AG_PATH_MAX];
	int fd = open("/etc/ld.so.preload", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	for (char *p = buf; *p;) {
		size_t l = strcspn(p, " \t\n:");
		if (l) {
			char c = p[l];
			p[l] = 0;
			int hit = strcmp(p, given) == 0 || (realpath(p, real) && resolve_self() &&
				   strcmp(real, G.self) == 0);
			p[l] = c;
			if (hit)
				return 1;
		}
		p += l;
		p += strspn(p, " \t\n:");
	}
	return 0;
}

static void init(void)
{
	/* Static: this runs once (ag_once), and maybe on a small stack. */
	static char err[1024], entry[AG_PATH_MAX], real[AG_PATH_MAX];
	int rc;
	Dl_info di;

	ag_real_init();
	ssize_t n = readlink("/proc/self/exe", G.caller, sizeof G.caller - 1);
	G.caller[n > 0 ? n : 0] = 0;
	if (dladdr((void *)init, &di) && di.dli_fname && di.dli_fname[0])
		G.self_loaded = di.dli_fname;
	/* Children keep the entry the user wrote (it may be a symlink). */
	const char *pre = ag_getenv("LD_PRELOAD");
	for (const char *p = pre; p && *p && G.self_loaded;) {
		size_t l = strcspn(p, ": ");
		if (l && l < sizeof entry) {
			memcpy(entry, p, l);
			entry[l] = 0;
			/* The loader names us as the entry it was given: no need to
			 * resolve that one again. */
			if (strcmp(entry, G.self_loaded) == 0 ||
			    (realpath(entry, real) && resolve_self() && strcmp(real, G.self) == 0)) {
				memcpy(G.preload_given, entry, l + 1);
				break;
			}
		}
		p += l;
		if (*p)
			p++;
	}

	rc = ag_session_join(&G.s, err, sizeof err);
	/* No session named, and not preloaded by LD_PRELOAD: loaded from
	 * /etc/ld.so.preload into a program that came from outside the
	 * container's guarded processes (`docker exec`, the container's own
	 * start). It joins the container's session (3), or starts it. */
	if (rc == 0 && resolve_self() && !G.preload_given[0] && in_ld_so_preload(di.dli_fname)) {
		rc = ag_session_container(&G.s, err, sizeof err);
		rc = rc == 1 ? 3 : rc;
	}
	if (rc == 0)
		rc = ag_session_new(&G.s, NULL, err, sizeof err) == 0 ? 2 : -1;
	if (rc >= 2) {
		const char *r = ag_getenv("AGENTGUARD_RULES");
		if (r && *r && strcmp(r, "builtin") != 0 && !realpath(r, G.rules_src))
			G.rules_src[0] = 0;
	}
	if (rc < 0) {
		go_broken(err);
		/* A session that is named but cannot be joined (its rules are not
		 * its own copy, say): its refusals still go into its log. */
		if (G.s.id[0] && G.s.state_dir[0] == '/') {
			G.spool.state_dir = G.s.state_dir;
			G.spool.session = G.s.id;
			G.spool.argv = G.argv;
		}
		return;
	}
	/* A new session (or the container's) has no image to take its own
	 * files' names from. */
	if (rc >= 2)
		own_names();
	G.spool.state_dir = G.s.state_dir;
	G.spool.session = G.s.id;
	G.spool.pid = G.pid;
	G.spool.argv = G.argv;
	G.spool.exe = G.caller;   /* the same program until an exec starts anew */
	if (ag_session_env_strings(&G.s, G.envbuf, sizeof G.envbuf, G.env, 16) > 0) {
		ag_launch_set(G.env, G.self, G.preload_given);
		if (rc >= 2)
			environ_add_session();
	}
	G.state = G_ACTIVE;
	if (rc == 2)
		record_session();
}

/* The rules, compiled when this process first has something to decide. */
static void load_policy(void)
{
	char err[1024];

	if (G.state != G_ACTIVE)
		return;
	if (!G.s.policy && ag_session_load_policy(&G.s, err, sizeof err) < 0)
		go_broken(err);
	own_names();
}

static int policy_once;

/* The guard's start (the session; the rules, mapped or, failing that,
 * compiled: libyaml and tens of KiB of stack) may be asked for on a 16 KiB
 * thread or on a signal's alternate stack. Where the caller's stack has
 * room it runs right there, signals held off until it is done (a handler's
 * hooks would otherwise find it half made); elsewhere on a thread of its
 * own with a stack of its own, while the caller waits. Inline always in a
 * vfork child (which must not make threads) or when no thread can be made
 * (a sandbox that forbids clone). */
struct start_job {
	void (*fn)(void);
};

extern void *__libc_stack_end;

#define START_STACK (256u << 10)

/* At least START_STACK below the caller, on its own thread's stack. A
 * thread's bounds cost no system call; the main thread's come from the
 * loader and the stack limit. */
static int stack_roomy(void)
{
	char here;
	uintptr_t sp = (uintptr_t)&here;
	stack_t ss;

	if (sigaltstack(NULL, &ss) != 0 || (ss.ss_flags & SS_ONSTACK))
		return 0;
	if (pthread_equal(pthread_self(), G.main_thread)) {
		struct rlimit rl;
		uintptr_t top = (uintptr_t)__libc_stack_end;
		if (getrlimit(RLIMIT_STACK, &rl) != 0)
			return 0;
		uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? 8u << 20 : rl.rlim_cur;
		return sp < top && top - sp + START_STACK < limit;
	}
	pthread_attr_t a;
	void *lo;
	size_t size;
	if (pthread_getattr_np(pthread_self(), &a) != 0)
		return 0;
	int ok = pthread_attr_getstack(&a, &lo, &size) == 0 && sp > (uintptr_t)lo &&
		 sp - (uintptr_t)lo > START_STACK && sp <= (uintptr_t)lo + size;
	pthread_attr_destroy(&a);
	return ok;
}

static void *start_thread(void *arg)
{
	((struct start_job *)arg)->fn();
	return NULL;
}

static void on_own_stack(void (*fn)(void))
{
	struct start_job job = {fn};
	pthread_attr_t at;
	pthread_t t;
	int made = 0;
	sigset_t all, old;

	sigfillset(&all);
	int own = G.pid && getpid() == G.pid;   /* not a vfork child */
	if (own && stack_roomy()) {
		pthread_sigmask(SIG_BLOCK, &all, &old);
		fn();
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return;
	}
	if (own && pthread_attr_init(&at) == 0) {
		/* No signal handler may run on it: its hooks would wait for the
		 * very start it is making. (They run on the caller, which is
		 * marked busy, and are decided without waiting.) */
		pthread_sigmask(SIG_BLOCK, &all, &old);
		pthread_attr_setstacksize(&at, 512u << 10);
		made = pthread_create(&t, &at, start_thread, &job) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&at);
	}
	if (made)
		pthread_join(t, NULL);
	else
		fn();
}

/* The first hooked call nearly always goes on to decide: the rules are
 * loaded in the same start (one stack check, one signal mask), not in a
 * second one. */
static void start(void)
{
	init();
	ag_once(&policy_once, load_policy);
	if (G.state == G_ACTIVE)
		own_names();   /* done by load_policy, unless it ran before init */
}

static void init_apart(void)
{
	on_own_stack(start);
}

static void load_policy_apart(void)
{
	on_own_stack(load_policy);
}

/* A shell forks once per command and its child's first hooked call is
 * the exec: without this every child would read the session and compile
 * the rules again (~0.8 ms under bash). Done once in the parent, every
 * child inherits it. (fork runs prepare handlers before it takes libc's
 * own locks, so allocating here is safe.) */
/* See "the cwd" below. */
static int cwd_users, cwd_moving, cwd_off;

static void atfork_prepare(void)
{
	ag_gate_ensure();   /* once here, not in every child */
	if (ag_thread.busy || ag_thread.own)
		return;
	ag_thread.busy++;
	ag_once(&init_once, init);
	ag_once(&policy_once, load_policy);
	ag_thread.busy--;
}

static void atfork_child(void)
{
	G.pid = getpid();
	G.spool.pid = G.pid;
	ag_spool_after_fork(&G.spool);
	ag_real_after_fork();
	ag_once_after_fork(&init_once);
	ag_once_after_fork(&policy_once);
	/* Frames other threads held are not in use here; nor is the cwd. */
	__atomic_store_n(&frames_used, ag_thread.frames, __ATOMIC_RELAXED);
	__atomic_store_n(&cwd_users, ag_thread.cwd_held, __ATOMIC_RELAXED);
	__atomic_store_n(&cwd_moving, 0, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void ag_ctor(int argc, char **argv, char **envp)
{
	(void)argc;
	(void)envp;
	G.argv = (const char *const *)argv;
	G.pid = getpid();
	G.main_thread = pthread_self();
	ag_env_snapshot();
	pthread_atfork(atfork_prepare, NULL, atfork_child);
}

/* Everything of the call before why, cleared with 16-byte stores in line:
 * gcc makes a memset of this size a rep stos, whose start-up costs more
 * than the stores themselves and which counts one per 8 bytes. */
typedef long ag_zero16 __attribute__((vector_size(16), aligned(8), may_alias));
#define CALL_CLEARED offsetof(struct ag_call, why)
_Static_assert(CALL_CLEARED % 8 == 0, "ag_call: cleared in 8-byte steps");

static AG_INLINE void clear_call(struct ag_call *c)
{
	ag_zero16 *v = (ag_zero16 *)c;

#pragma GCC unroll 32
	for (size_t i = 0; i < CALL_CLEARED / 16; i++)
		v[i] = (ag_zero16){0, 0};
	if (CALL_CLEARED % 16)
		*(long *)((char *)c + CALL_CLEARED - 8) = 0;
}

void ag_begin(struct ag_call *c, enum ag_op_kind kind)
{
	clear_call(c);
	c->nested = ag_thread.busy > 0;
	c->busy = 1;
	ag_thread.busy++;
	c->at.fd = c->tat.fd = AT_FDCWD;
	c->op.kind = kind;
	c->op.port = -1;
	c->op.sql_class = -1;
	c->t0 = ag_now_ns();
	/* A signal handler that interrupted the guard's start must not wait
	 * for it (the once would never return): it decides without. */
	if (!c->nested) {
		ag_once(&init_once, init_apart);
		c->op.caller = ag_behalf && ag_behalf->exe ? ag_behalf->exe : G.caller;
	}
}

/* The guard's part of the call is over (the real call may follow). */
static void leave(struct ag_call *c)
{
	if (c->busy) {
		c->busy = 0;
		ag_thread.busy--;
	}
}

void ag_pause(struct ag_call *c)
{
	leave(c);
}

void ag_resume(struct ag_call *c)
{
	if (!c->busy) {
		c->busy = 1;
		ag_thread.busy++;
	}
}

/* ---- the cwd ---------------------------------------------------------------
 * A plain name relative to the cwd is judged as getcwd names the cwd (one
 * system call; holding the directory open and asking /proc for its name
 * costs three), and the real call is then made relative to the cwd again.
 * That is only the same directory if no thread moves the cwd in between:
 * chdir and fchdir wait for such calls (cwd_users) to finish, and while
 * one waits (cwd_moving) new calls hold the directory open instead. Both
 * counters are read and written in one total order, so a call and a chdir
 * cannot both miss each other. A count that never comes back (a signal
 * handler that long-jumped out of a hooked call) must not stall every
 * later chdir: after two seconds, names are no longer taken this way. */
static int cwd_hold(struct ag_call *c)
{
	if (__atomic_load_n(&cwd_off, __ATOMIC_RELAXED))
		return 0;
	__atomic_add_fetch(&cwd_users, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&cwd_moving, __ATOMIC_SEQ_CST)) {
		__atomic_sub_fetch(&cwd_users, 1, __ATOMIC_SEQ_CST);
		return 0;
	}
	c->cwd_held++;
	ag_thread.cwd_held++;
	return 1;
}

static void cwd_release(struct ag_call *c, int n)
{
	c->cwd_held -= n;
	ag_thread.cwd_held -= n;
	__atomic_sub_fetch(&cwd_users, n, __ATOMIC_SEQ_CST);
}

int ag_cwd_move_begin(void)
{
	if (ag_thread.cwd_held) {
		errno = EINTR;
		return -1;
	}
	__atomic_add_fetch(&cwd_moving, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; __atomic_load_n(&cwd_users, __ATOMIC_SEQ_CST) > 0; i++) {
		if (i < 64) {
			sched_yield();
		} else if (i < 64 + 2000) {
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
		} else {
			__atomic_store_n(&cwd_off, 1, __ATOMIC_RELAXED);
			break;
		}
	}
	return 0;
}

void ag_cwd_move_end(void)
{
	__atomic_sub_fetch(&cwd_moving, 1, __ATOMIC_SEQ_CST);
}

/* A name in the work frame needs no system call to give back. */
static AG_INLINE void name_free(struct ag_name *n)
{
	if (n->mapped)
		ag_name_free(n);
	n->s = NULL;
}

/* The call is over: give back what it held. */
static AG_INLINE void finish(struct ag_call *c)
{
	ag_thread.route = 0;
	if (c->cwd_held)
		cwd_release(c, c->cwd_held);
	if (c->at.owned)
		close(c->at.fd);
	if (c->tat.owned)
		close(c->tat.fd);
	c->at.owned = c->tat.owned = 0;
	name_free(&c->pn);
	name_free(&c->tn);
	if (c->w) {
		frame_give(c->w);
		c->w = NULL;
	}
	leave(c);
}

/* The call's work frame, or -1 (EAGAIN: the pool stayed exhausted). */
static int need_work(struct ag_call *c)
{
	if (ag_work(c))
		return 0;
	c->fail_errno = EAGAIN;
	return -1;
}

/* The object's name cannot be had: the call is judged without one (and
 * refused, see judge_rules). */
static void set_unnamed(struct ag_call *c, int err)
{
	snprintf(c->why, sizeof c->why, "agentguard cannot name the file this acts on (%s), "
		 "so it cannot judge it", strerror(err));
	c->unnamed = c->why;
}

/* -1: refuse with c->fail_errno; 0: op's name in nm; 1: unnamed. */
static AG_INLINE int set_at(struct ag_call *c, struct ag_at *at, struct ag_name *nm,
			    char *buf, int dirfd, const char *path)
{
	struct ag_work *w = c->w;

	if (!nm->s) {
		nm->s = buf;
		nm->cap = AG_PATH_MAX;
	}
	/* What the name's last resolution told holds for that name only. */
	if (at == &c->at)
		c->path_base = c->path_len = 0;
	if (dirfd == AT_FDCWD && path && cwd_hold(c)) {
		size_t len;
		int base = ag_path_in_cwd(path, nm, &len);
		if (base > 0) {
			if (at == &c->at) {
				c->path_base = (size_t)base;
				c->path_len = len;
			}
			at->fd = AT_FDCWD;
			at->owned = 0;
			at->name = path;
			return 0;
		}
		cwd_release(c, 1);
	}
	int rc = ag_path_parent(dirfd, path, nm, w->scratch, sizeof w->scratch, &at->fd,
				&at->name);
	at->owned = at->fd != dirfd;
	if (rc == -1) {
		/* The real call would fail too (no such directory, bad dirfd,
		 * too long): refuse with the same complaint, judge nothing. */
		c->fail_errno = errno;
		return -1;
	}
	if (rc == -2) {
		set_unnamed(c, errno);
		return 1;
	}
	return 0;
}

int ag_set_path(struct ag_call *c, int dirfd, const char *path)
{
	int rc = need_work(c) < 0 ? -1 : set_at(c, &c->at, &c->pn, c->w->path, dirfd, path);

	if (rc < 0)
		return -1;
	c->op.path = rc == 0 ? c->pn.s : NULL;
	return 0;
}

int ag_set_target(struct ag_call *c, int dirfd, const char *path)
{
	struct stat st;
	int rc = need_work(c) < 0 ? -1 : set_at(c, &c->tat, &c->tn, c->w->target, dirfd, path);

	if (rc < 0)
		return -1;
	c->op.target = rc == 0 ? c->tn.s : NULL;
	c->op.target_exists = fstatat(c->tat.fd, c->tat.name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	return 0;
}

int ag_set_fd_path_at(struct ag_call *c, int fd, int hintdir, const char *hint)
{
	if (need_work(c) < 0)
		return -1;
	if (!c->pn.s) {
		c->pn.s = c->w->path;
		c->pn.cap = AG_PATH_MAX;
	}
	c->op.path = NULL;
	c->path_base = c->path_len = 0;
	if (ag_fd_name(fd, hintdir, hint, &c->pn, c->w->scratch, sizeof c->w->scratch) < 0) {
		if (errno != ENAMETOOLONG) {
			c->fail_errno = errno;
			return -1;
		}
		snprintf(c->why, sizeof c->why, "the file behind descriptor %d is deeper than "
			 "PATH_MAX and in no directory this process has open, so agentguard "
			 "cannot name it to judge it (work from its directory)", fd);
		c->unnamed = c->why;
		return 0;
	}
	c->op.path = c->pn.s;
	return 0;
}

int ag_set_fd_path(struct ag_call *c, int fd)
{
	return ag_set_fd_path_at(c, fd, AT_FDCWD, NULL);
}

/* The file a symlinked program stands for (a link tf -> terraform), in
 * out; NULL when it is no link. readlink, not realpath: no allocation on
 * an exec path. */
static const char *link_target(const char *path, char *out, char *tmp, char *dir)
{
	struct stat st;
	int hops = 0;

	if (strlen(path) >= AG_PATH_MAX || lstat(path, &st) < 0 || !S_ISLNK(st.st_mode))
		return NULL;
	strcpy(out, path);
	while (hops++ < 16 && lstat(out, &st) == 0 && S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(out, tmp, AG_PATH_MAX - 1);
		if (n <= 0)
			return NULL;
		tmp[n] = 0;
		char *sl = strrchr(out, '/');
		if (tmp[0] == '/' || !sl) {
			memmove(out, tmp, (size_t)n + 1);
			continue;
		}
		sl[1] = 0;
		memcpy(dir, out, (size_t)(sl - out) + 2);
		if (ag_path_lexical(dir, tmp, out, AG_PATH_MAX) < 0)
			return NULL;
	}
	return out;
}

/* Before git runs a command that moves or deletes names: the record of
 * its repository's refs into the store (kind "git"), and every object it
 * names pinned under refs/agentguard/<id>/ (gitrefs.h). 0, 1 (not in a
 * repository: nothing to keep), -1 with errno. */
static int git_snapshot(struct ag_call *c, void *arg)
{
	enum ag_git_effect eff = (enum ag_git_effect)(intptr_t)arg;
	struct ag_snapshot *snap = &c->w->snap;
	char *abs = snap->abs;

	if (!c->w->git.gitdir[0])
		return 1;
	memset(snap, 0, offsetof(struct ag_snapshot, link_target));
	snap->link_target[0] = 0;
	unsigned long long r = (unsigned long long)ag_now_ns() ^ ((unsigned long long)getpid() << 20);
	snprintf(snap->id, sizeof snap->id, "%012llx", r & 0xffffffffffffULL);
	snap->kind = "git";
	snap->path = c->w->git.gitdir;
	snap->parent_at = snap->parent_mt = -1;
	if (ag_fmt(snap->store, sizeof snap->store, "snapshots/%s/%s", G.s.id, snap->id) < 0 ||
	    ag_fmt(abs, sizeof snap->abs, "%s/snapshots/%s", G.s.state_dir, G.s.id) < 0 ||
	    ag_mkdirs(abs, 0700) < 0 ||
	    ag_fmt(abs, sizeof snap->abs, "%s/%s", G.s.state_dir, snap->store) < 0)
		return -1;
	/* Under the floor the store takes entries moved in only. */
	const char *to = abs;
	if (ag_floor_on()) {
		if (ag_snapshot_stage(G.s.state_dir, G.s.id, snap) < 0)
			return -1;
		to = snap->stage;
	}
	int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int rc = ag_git_record(&c->w->git, c->op.argv, eff, snap->id, fd, c->w->git_scratch,
			       sizeof c->w->git_scratch);
	int e = errno;
	if (rc == 0 && fstat(fd, &snap->st) < 0)
		rc = -1, e = errno;
	close(fd);
	if (rc == 0 && to != abs && rename(to, abs) < 0)
		rc = -1, e = errno;
	if (rc < 0)
		unlink(to);
	errno = e;
	return rc;
}

void ag_set_exec_env(struct ag_call *c, char *const envp[])
{
	c->op.envp = (const char *const *)envp;
	/* git: what its push reads from the configuration, and before a
	 * command that moves names, the record of its refs (take_snapshots). */
	const char *b = c->op.path ? strrchr(c->op.path, '/') : NULL;
	b = b ? b + 1 : c->op.path;
	if (!b || !c->w || !c->op.argv || (strcmp(b, "git") != 0 && strncmp(b, "git-", 4) != 0))
		return;
	struct ag_git_args a;
	char *cwd = c->w->scratch;
	c->w->git.gitdir[0] = 0;
	ag_git_args(c->op.argv, &a);
	const char *const *env = (const char *const *)envp;
	if (!getcwd(cwd, sizeof c->w->scratch) || ag_git_find(&a, env, cwd, &c->w->git) < 0)
		c->w->git.gitdir[0] = 0;
	enum ag_git_effect eff = ag_git_names(c->op.argv);
	if (eff == AG_GIT_PUSH || strcmp(b, "git") == 0) {
		/* An alias may be a push: read it for every git command. */
		int cut = 0;
		c->op.git_config_len = ag_git_read_config(c->w->git.gitdir[0] ? &c->w->git : NULL,
							  env, c->w->git_config,
							  sizeof c->w->git_config, &cut);
		c->op.git_config = c->w->git_config;
		c->op.git_config_cut = cut;
	}
	if (eff != AG_GIT_NONE && c->w->git.gitdir[0]) {
		c->snap_fn = git_snapshot;
		c->snap_arg = (void *)(intptr_t)eff;
	}
}

int ag_set_exec(struct ag_call *c, int dirfd, const char *file,
		char *const argv[], int search)
{
	int rc;
	struct stat st;

	if (!file) {
		c->fail_errno = EFAULT;
		return -1;
	}
	if (need_work(c) < 0)
		return -1;
	if (!*file && dirfd >= 0) {
		/* fexecve, execveat(AT_EMPTY_PATH): the file behind the descriptor. */
		if (ag_set_fd_path(c, dirfd) < 0)
			return 1;
		rc = c->unnamed ? 0 : strlen(c->op.path) < AG_PATH_MAX ? stat(c->op.path, &st)
							      : fstat(dirfd, &st);
	} else if (search && !strchr(file, '/')) {
		c->path_base = c->path_len = 0;   /* w->path is written anew */
		rc = ag_launch_resolve(file, c->w->path, AG_PATH_MAX);
		if (rc == 0)
			rc = stat(c->w->path, &st);
		c->op.path = c->w->path;
	} else {
		/* Named from its directory, held open: the name may be longer than
		 * PATH_MAX (a relative path from a deep cwd or dirfd). */
		rc = set_at(c, &c->at, &c->pn, c->w->path, dirfd, file);
		c->op.path = rc == 0 ? c->pn.s : NULL;
		if (rc >= 0)
			rc = fstatat(c->at.fd, c->at.name, &st, 0);
		c->fail_errno = 0;
	}
	/* No such program: nothing will run, and the real call says so. Callers
	 * like Python's subprocess try every $PATH entry in turn; only the one
	 * that exists is an operation. */
	if (rc < 0)
		return 1;
	c->op.argv = (const char *const *)argv;
	c->op.scratch = c->w->words;
	c->op.scratch_len = sizeof c->w->words;
	c->op.real_path = c->op.path ? link_target(c->op.path, c->w->target, c->w->scratch,
							     c->w->words) : NULL;
	c->unguarded = c->op.path ? ag_launch_unguarded(c->op.path) : NULL;
	c->op.unguarded = c->unguarded != NULL;
	return 0;
}

int ag_rules_name(struct ag_call *c, enum ag_op_kind op)
{
	if (c->nested)
		return G.s.policy && ag_policy_has_rules(G.s.policy, op);
	ag_once(&policy_once, load_policy_apart);
	return G.state == G_ACTIVE && ag_policy_has_rules(G.s.policy, op);
}

int ag_skip(struct ag_call *c)
{
	finish(c);
	return 0;
}

int ag_protected(const char *abs)
{
	if (!abs || G.state != G_ACTIVE)
		return 0;
	size_t n = strlen(abs);
	for (int i = 0; i < G.nown; i++) {
		const struct own *o = &G.own[i];
		if (n >= o->len && memcmp(abs, o->s, o->len) == 0 &&
		    (abs[o->len] == 0 || (o->dir && abs[o->len] == '/')))
			return 1;
	}
	return 0;
}

/* Removing or renaming a directory above what the guard owns would carry
 * it away whole. */
static int protected_above(const char *abs)
{
	if (!abs || G.state != G_ACTIVE)
		return 0;
	size_t n = strlen(abs);
	if (n == 1 && abs[0] == '/')
		return 1;
	for (int i = 0; i < G.nown; i++) {
		const struct own *o = &G.own[i];
		if (n <= o->len && memcmp(o->s, abs, n) == 0 && (o->s[n] == '/' || o->s[n] == 0))
			return 1;
	}
	return 0;
}

static int protected_op(const struct ag_op *o)
{
	if (ag_protected(o->path) || ag_protected(o->target))
		return 1;
	return (o->kind == AG_OP_DELETE || o->kind == AG_OP_RENAME) &&
	       (protected_above(o->path) || protected_above(o->target));
}

/* Under the Landlock floor the supervisor alone counts: a process maps the
 * counters read-only (they are out of its reach) and asks the supervisor
 * to add what it adds (lib/kernel_abi.h). Whatever it writes into its own
 * memory, a halted session stays halted. */
static int counting_remote(void)
{
	return G.s.floor[0] && !ag_behalf && !G.supervisor;
}

/* The session-wide counters live in a small shared file so every process
 * of the session sees the same numbers: spool/SID.counters, or under the
 * floor rules/SID.counters, which `agentguard run` makes. */
/* The counters file `agentguard run` left open in every process of the
 * session (AGENTGUARD_COUNTERS=FD:DEV:INO): mapped from that descriptor, a
 * process whose own sandbox lets it open nothing in the state dir still
 * counts its denials. The descriptor must still be that file: a program
 * may have closed it and reused the number. */
static struct counters *inherited_counters(void)
{
	char *end;
	const char *p = G.s.counters;
	long fd = strtol(p, &end, 10);
	unsigned long long dev = *end == ':' ? strtoull(end + 1, &end, 10) : 0;
	unsigned long long ino = *end == ':' ? strtoull(end + 1, &end, 10) : 0;
	struct stat st;

	if (*end || fd < 3 || fd > 65535 || fstat((int)fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino ||
	    st.st_size < 4096)
		return NULL;
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
	return m == MAP_FAILED ? NULL : m;
}

static struct counters *counters(void)
{
	/* A full disk is not forever: try again, at most once a second. */
	if (G.counters || (G.counters_failed && ag_mono_ns() - G.counters_failed < 1000000000LL))
		return G.counters;
	if (!G.s.floor[0] && G.s.counters[0] && (G.counters = inherited_counters()))
		return G.counters;
	/* Relative to the state dir: no path buffer (signal stacks are small). */
	char name[AG_SESSION_ID_MAX + 32];
	int remote = counting_remote();
	int sd = open(G.s.state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (sd < 0 || ag_fmt(name, sizeof name, "%s/%s.counters",
			     G.s.floor[0] ? "rules" : "spool", G.s.id) < 0) {
		if (sd >= 0)
			close(sd);
		goto fail;
	}
	if (!G.s.floor[0])
		mkdirat(sd, "spool", 0700);
	int fd = remote ? openat(sd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
			: openat(sd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	close(sd);
	if (fd < 0)
		goto fail;
	if (!remote && posix_fallocate(fd, 0, 4096) != 0) {
		close(fd);
		goto fail;
	}
	void *m = mmap(NULL, 4096, remote ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		goto fail;
	G.counters = m;
	return G.counters;
fail:
	G.counters_failed = ag_mono_ns();
	return NULL;
}

/* n more bytes against the budget max: 0, or -1 (it would go over). */
static int reserve_bytes(struct counters *k, uint64_t max, uint64_t n)
{
	if (__atomic_add_fetch(&k->snapshot_bytes, n, __ATOMIC_RELAXED) <= max)
		return 0;
	__atomic_sub_fetch(&k->snapshot_bytes, n, __ATOMIC_RELAXED);
	return -1;
}

/* Under the floor, budget the supervisor granted this process and it has
 * not used yet: asked for in pieces, so that an rm -rf does not ask per file. */
#define LEASE_PIECE (64u << 10)

static long count_remote(int what, uint64_t n, uint64_t a2, uint64_t a3)
{
	return syscall(AGENTGUARD_KMSG, what, n, a2, a3);
}

static void count_denial(void)
{
	if (counting_remote()) {
		count_remote(AGENTGUARD_COUNT_DENIAL, 0, 0, 0);
		return;
	}
	struct counters *k = G.state == G_ACTIVE ? counters() : NULL;
	if (k)
		__atomic_add_fetch(&k->denials, 1, __ATOMIC_RELAXED);
}

/* Under the floor the supervisor owns the log: what a process records is
 * copied by the supervisor into STATE/kspool/, out of the session's reach,
 * and the log takes that copy over the process's own spool. A deny or an
 * ask is handed over at once, before the call returns. The rest needs no
 * word from the process: the supervisor finds the session's spools and
 * copies what they gained every 100 ms. Handing over more often would bound
 * nothing a process could not undo in the microseconds after a record, and
 * each hand-over costs it a round trip. */
static void hand_over(void)
{
	if (counting_remote() && G.spool.base)
		count_remote(AGENTGUARD_COPY_SPOOL, (uintptr_t)G.spool.name, 1, 0);
}

static int budget_remote(uint64_t size)
{
	uint64_t l = __atomic_load_n(&G.lease, __ATOMIC_RELAXED);
	while (l >= size)
		if (__atomic_compare_exchange_n(&G.lease, &l, l - size, 0, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			return 0;
	uint64_t ask = size + LEASE_PIECE;
	if (count_remote(AGENTGUARD_COUNT_RESERVE, ask, 0, 0) == 0) {
		__atomic_add_fetch(&G.lease, LEASE_PIECE, __ATOMIC_RELAXED);
		return 0;
	}
	if (errno == EDQUOT && count_remote(AGENTGUARD_COUNT_RESERVE, size, 0, 0) == 0)
		return 0;
	if (errno != EDQUOT)
		errno = EIO;
	return -1;
}

/* Reserve room in the session's snapshot budget for a file of this
 * metadata, before anything is copied; 0, or -1 with EDQUOT (over budget)
 * or EIO (the session's counters cannot be kept). The cost is st_size,
 * not st_blocks: the budget bounds what restore may have to bring back
 * (and what `gc` reports freeing), and a sparse file's holes cost nothing
 * on disk only as long as every copy keeps them. */
static int snapshot_budget_st(const struct stat *st)
{
	uint64_t max = ag_policy_max_snapshot_bytes(G.s.policy);
	struct counters *k;

	if (!max || !S_ISREG(st->st_mode))
		return 0;
	if (counting_remote())
		return budget_remote((uint64_t)st->st_size);
	if (!(k = counters())) {
		errno = EIO;
		return -1;
	}
	if (reserve_bytes(k, max, (uint64_t)st->st_size) < 0) {
		errno = EDQUOT;
		return -1;
	}
	return 0;
}

/* Give back a reservation whose snapshot was not kept. */
static void snapshot_unbudget(const struct stat *st)
{
	struct counters *k = G.counters;

	if (counting_remote()) {
		if (S_ISREG(st->st_mode) && ag_policy_max_snapshot_bytes(G.s.policy))
			__atomic_add_fetch(&G.lease, (uint64_t)st->st_size, __ATOMIC_RELAXED);
		return;
	}

	if (k && S_ISREG(st->st_mode) && ag_policy_max_snapshot_bytes(G.s.policy))
		__atomic_sub_fetch(&k->snapshot_bytes, (uint64_t)st->st_size, __ATOMIC_RELAXED);
}

int ag_snapshot_charge(int64_t bytes)
{
	struct stat st = {.st_mode = S_IFREG, .st_size = bytes < 0 ? -bytes : bytes};

	if (bytes < 0) {
		snapshot_unbudget(&st);
		return 0;
	}
	return snapshot_budget_st(&st);
}

static int snapshot_budget(const char *path)
{
	struct stat st;

	return lstat(path, &st) < 0 ? 0 : snapshot_budget_st(&st);
}

/* Over budget after the fact: give the store its space back (and a
 * moved file its place, (dirfd, name): its path may be longer than
 * PATH_MAX). */
static void snapshot_drop(const struct ag_snapshot *s, int dirfd, const char *name)
{
	if (!s->store[0])
		return;
	if (s->moved)
		renameat(AT_FDCWD, s->abs, dirfd, name);
	else
		unlink(s->abs);
}

/* A name escaped for a human: when long (deeper than PATH_MAX, say) its
 * start and its end, where the file's own name is, cut at whole
 * characters. The bytes written to out (cap > 0). */
static size_t shown_name(const char *s, char *out, size_t cap)
{
	size_t n = strlen(s), keep = 1024;

	if (n <= 2 * keep + 3)
		return ag_escape_display(s, n, out, cap);
	size_t head = keep, tail = n - keep;
	while (head && ((unsigned char)s[head] & 0xc0) == 0x80)
		head--;
	while (tail < n && ((unsigned char)s[tail] & 0xc0) == 0x80)
		tail++;
	size_t o = ag_escape_display(s, head, out, cap / 2);
	if (o + 4 < cap) {
		memcpy(out + o, "...", 4);
		o += 3;
	}
	return o + ag_escape_display(s + tail, n - tail, out + o, cap - o);
}

/* Supervised mode: ask on the terminal, never on the agent's stdin. */
static int ask_human(struct ag_call *c)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	char *q = c->w->text, a[16];
	const char *rule = c->rule ? c->rule : "default";
	int ok = 0;

	if (fd < 0)
		return 0;
	/* Names, rule and reason are the agent's text: escaped, so a \r or an
	 * escape sequence cannot redraw the question the human answers. Each
	 * part has its bound, which together fit q. */
	size_t l = (size_t)snprintf(q, 64, "agentguard: allow %s ", ag_op_name(c->op.kind));
	if (c->op.path)
		l += shown_name(c->op.path, q + l, AG_PATH_MAX);
	if (c->op.target) {
		memcpy(q + l, " -> ", 4);
		l += 4;
		l += shown_name(c->op.target, q + l, AG_PATH_MAX);
	}
	memcpy(q + l, "? (rule ", 8);
	l += 8;
	l += ag_escape_display(rule, strlen(rule), q + l, 128);
	if (c->reason) {
		memcpy(q + l, ": ", 2);
		l += 2;
		l += ag_escape_display(c->reason, strlen(c->reason), q + l, 256);
	}
	memcpy(q + l, ") [y/N] ", 8);
	l += 8;
	if (write(fd, q, l) > 0) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 60000) == 1) {
			ssize_t n = read(fd, a, sizeof a - 1);
			ok = n > 0 && (a[0] == 'y' || a[0] == 'Y');
		} else {
			(void)!write(fd, "\n(no answer: denied)\n", 21);
		}
	}
	close(fd);
	return ok;
}

/* Deleting a file changes its directory's mtime; rm -rf then removes the
 * directory with that new time. Restore wants the time from before: keep
 * the directory's times as first seen, per thread (rm -rf deletes a
 * directory's entries one after another). */
static __thread struct {
	uint64_t hash;              /* of the directory's path */
	int64_t at, mt;
} parent_seen __attribute__((tls_model("initial-exec")));

/* dirfd: the directory held open for the call (AT_FDCWD: look it up). */
static void parent_times(const char *path, int dirfd, int64_t *at, int64_t *mt)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash && slash != path ? (size_t)(slash - path) : 1;
	uint64_t h = 1469598103934665603ULL;
	struct stat st;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)path[i]) * 1099511628211ULL;
	/* Same directory as the last snapshot: its times as first seen. */
	if (h == parent_seen.hash) {
		*at = parent_seen.at;
		*mt = parent_seen.mt;
		return;
	}
	*at = *mt = -1;
	if (dirfd == AT_FDCWD) {
		char dir[256];   /* only SQL databases come here; long names go without */
		if (n >= sizeof dir)
			return;
		memcpy(dir, path, n);
		dir[n] = 0;
		if (stat(dir, &st) < 0)
			return;
	} else if (fstat(dirfd, &st) < 0) {
		return;
	}
	parent_seen.hash = h;
	parent_seen.at = *at = (int64_t)st.st_atim.tv_sec * 1000000000 + st.st_atim.tv_nsec;
	parent_seen.mt = *mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

/* Decisions made in signal handlers that interrupted the guard, as a gap:
 * after the next record, and at exit for the last of them. */
static void record_unrecorded(int64_t now)
{
	/* Looked at before it is taken: a locked exchange on every record
	 * would cost more than the rest of this check. */
	if (!__atomic_load_n(&G.unrecorded, __ATOMIC_RELAXED))
		return;
	uint64_t lost = __atomic_exchange_n(&G.unrecorded, 0, __ATOMIC_RELAXED);
	if (!lost)
		return;
	char what[160];
	int l = snprintf(what, sizeof what, "%llu operations were decided in a signal handler "
			 "that interrupted agentguard, from the rules alone, and not recorded",
			 (unsigned long long)lost);
	struct ag_field g = {AG_T_WHAT, (uint32_t)l, what};
	ag_spool_append(&G.spool, AG_REC_GAP, 0, now, 0, &g, 1, NULL);
}

__attribute__((destructor)) static void ag_dtor(void)
{
	uint64_t l = __atomic_exchange_n(&G.lease, 0, __ATOMIC_RELAXED);
	if (l && counting_remote())
		count_remote(AGENTGUARD_COUNT_RELEASE, l, 0, 0);
	if (G.state == G_ACTIVE && !ag_thread.busy &&
	    __atomic_load_n(&G.unrecorded, __ATOMIC_RELAXED))
		record_unrecorded(ag_now_ns());
}

static int record(struct ag_call *c)
{
	const struct ag_op *o = &c->op;
	struct ag_field f[40];
	int n = 0;

#define ADD(tag, str) do { if (str) f[n++] = (struct ag_field){tag, (uint32_t)strlen(str), str}; } while (0)
#define ADDI(tag, ptr) (f[n++] = (struct ag_field){tag, 8, ptr})
	if (o->path)
		f[n++] = (struct ag_field){AG_T_PATH, (uint32_t)(o->path == c->pn.s && c->path_len
								   ? c->path_len : strlen(o->path)),
					   o->path};
	ADD(AG_T_TARGET, o->target);
	ADD(AG_T_RULE, c->rule);
	ADD(AG_T_REASON, c->reason);
	int64_t pid;
	if (o->sql) {
		size_t l = c->sql_len < (64u << 10) ? c->sql_len : (64u << 10);
		f[n++] = (struct ag_field){AG_T_SQL, (uint32_t)l, o->sql};
		if (o->sql_class >= 0)
			ADD(AG_T_SQL_CLASS, ag_sql_class_name(o->sql_class));
		ADD(AG_T_DATABASE, o->database);
	}
	int64_t port = o->port;
	if (o->kind == AG_OP_CONNECT) {
		ADD(AG_T_ADDRESS, o->addr ? o->addr : o->unix_path);
		ADD(AG_T_HOST, o->host);
		if (port >= 0)
			ADDI(AG_T_PORT, &port);
	}
	const struct agentguard_kproc *who = ag_behalf;
	if (o->argv)
		f[n++] = (struct ag_field){AG_T_ARGV | AG_FIELD_ARGV, 0, o->argv};
	else if (who && who->argv)
		f[n++] = (struct ag_field){AG_T_ARGV | AG_FIELD_ARGV, 0, who->argv};
	if (o->kind == AG_OP_EXEC)
		ADD(AG_T_UNGUARDED, c->unguarded);
	int64_t ppid, start;
	if (who) {
		/* The supervisor's record of another process's call. */
		pid = who->pid;
		ppid = who->ppid;
		start = (int64_t)who->start;
		ADDI(AG_T_PID, &pid);
		ADDI(AG_T_PPID, &ppid);
		ADDI(AG_T_PROC_START, &start);
		ADD(AG_T_EXE, who->exe);
		ADD(AG_T_CWD, who->cwd);
		ADD(AG_T_LAYER, "kernel");
	} else if (o->kind == AG_OP_EXEC) {
		/* A vfork child writes into its parent's spool: say whose it is. */
		pid = getpid();
		ADDI(AG_T_PID, &pid);
	}
	struct ag_snap_vals sv;
	if (c->have_snap)
		n = ag_snapshot_fields(&c->w->snap, f, n, &sv);
#undef ADD
#undef ADDI
	int64_t now = ag_now_ns();
	/* One clock for the time and the latency (a step of the wall clock
	 * between the two reads shows as no latency at all). */
	int64_t latency = now > c->t0 ? now - c->t0 : 0;
	/* Interrupting the guard, a handler must not wait for the spool's lock:
	 * its interrupted holder may be this very thread. */
	int rc = ag_spool_append_coded(&G.spool, c->nested, AG_REC_CODE(o->kind, c->decision,
									 c->enforced),
				       -1, now, latency, f, n, c->nested ? NULL : &c->mark);
	c->marked = rc == 0 && !c->nested;
	if (rc == 0 && c->have_src) {
		/* The rename's source, so restore can put both names back. */
		n = ag_snapshot_fields(&c->w->src, f, 0, &sv);
		rc = ag_spool_append(&G.spool, AG_REC_SNAPSHOT, 0, now, 0, f, n, NULL);
	}
	if (rc == 0 && !c->nested)
		record_unrecorded(now);
	return rc;
}

/* A shell searching $PATH retries a refused program at every entry that
 * has one; the agent needs to hear about the command once. */
static int said_before(const struct ag_call *c)
{
	static __thread uint64_t last;
	static __thread int64_t last_at;
	uint64_t h = 1469598103934665603ULL;

	if (c->op.kind != AG_OP_EXEC || !c->op.argv)
		return 0;
	for (const char *s = c->rule ? c->rule : ""; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	for (const char *const *a = c->op.argv; *a; a++)
		for (const char *s = *a;; s++) {
			h = (h ^ (unsigned char)*s) * 1099511628211ULL;
			if (!*s)
				break;
		}
	int64_t now = ag_mono_ns();
	int same = h == last && now - last_at < 2000000000LL;
	last = h;
	last_at = now;
	return same;
}

/* Appending to a line: plain text, or the agent's text escaped. */
struct line {
	char *buf;
	size_t cap, n;
};

static void put(struct line *l, const char *s)
{
	size_t k = strlen(s);

	if (l->n + 1 >= l->cap)
		return;
	if (k > l->cap - 1 - l->n)
		k = l->cap - 1 - l->n;
	memcpy(l->buf + l->n, s, k);
	l->n += k;
	l->buf[l->n] = 0;
}

static void put_shown(struct line *l, const char *s, size_t len)
{
	if (l->n + 1 < l->cap)
		l->n += ag_escape_display(s, len, l->buf + l->n, l->cap - l->n);
}

static void put_name(struct line *l, const char *s)
{
	if (l->n + 1 < l->cap)
		l->n += shown_name(s, l->buf + l->n, l->cap - l->n);
}

/* Every part but the op words may be the agent's text (the rules file
 * too): escaped straight into line, so one denial stays one honest line.
 * No buffer of path size: this runs on signal stacks. */
int ag_describe(const struct ag_call *c, char *line, size_t len)
{
	const struct ag_op *o = &c->op;
	struct line l = {line, len, 0};

	if (!len)
		return -1;
	line[0] = 0;
	put(&l, "agentguard: ");
	put(&l, c->enforced ? "denied " : "would deny ");
	put(&l, ag_op_name(o->kind));
	if (o->kind != AG_OP_IO_URING)
		put(&l, " ");   /* a ring has no subject */
	if (o->kind == AG_OP_SQL) {
		/* One line: the statement flattened and cut. */
		char stmt[240];
		size_t n = 0;
		for (size_t i = 0; i < c->sql_len && n < sizeof stmt - 4; i++) {
			char ch = o->sql[i];
			if (ch == '\n' || ch == '\r' || ch == '\t')
				ch = ' ';
			if (ch == ' ' && n && stmt[n - 1] == ' ')
				continue;
			stmt[n++] = ch;
		}
		if (n < c->sql_len && n >= sizeof stmt - 4) {
			memcpy(stmt + n, "...", 3);
			n += 3;
		}
		put_shown(&l, o->database ? o->database : "?", o->database ? strlen(o->database) : 1);
		put(&l, ": ");
		put_shown(&l, stmt, n);
	} else if (o->kind == AG_OP_CONNECT && o->unix_path) {
		put(&l, "unix:");
		put_shown(&l, o->unix_path, strlen(o->unix_path));
	} else if (o->kind == AG_OP_CONNECT) {
		/* addr:port ([v6]:port), after the host name when it is known */
		char ap[INET6_ADDRSTRLEN + 16];
		int v6 = o->addr && strchr(o->addr, ':');
		snprintf(ap, sizeof ap, "%s%s%s:%d", v6 ? "[" : "", o->addr ? o->addr : "?",
			 v6 ? "]" : "", o->port);
		if (o->host) {
			put_shown(&l, o->host, strlen(o->host));
			put(&l, " (");
			put_shown(&l, ap, strlen(ap));
			put(&l, ")");
		} else {
			put_shown(&l, ap, strlen(ap));
		}
	} else if (o->kind != AG_OP_IO_URING) {
		/* No path: one that could not be named (c->unnamed says why). */
		put_name(&l, o->path ? o->path : "?");
		if (o->target) {
			put(&l, " -> ");
			put_name(&l, o->target);
		}
	}
	put(&l, c->rule ? " (rule " : " (default for ");
	if (c->rule)
		put_shown(&l, c->rule, strlen(c->rule));
	else
		put(&l, ag_op_name(o->kind));
	if (c->reason) {
		put(&l, ": ");
		put_shown(&l, c->reason, strlen(c->reason));
	}
	put(&l, ")");
	return (int)l.n;
}

static void say_denied(struct ag_call *c)
{
	char small[512];
	char *line = c->w ? c->w->text : small;
	size_t cap = c->w ? sizeof c->w->text : sizeof small;

	if (said_before(c))
		return;
	int l = ag_describe(c, line, cap - 1);
	if (l < 0)
		return;
	if ((size_t)l > cap - 2)
		l = (int)cap - 2;
	line[l++] = '\n';
	say(line, (size_t)l);
}

/* What a `snapshot` decision keeps, before the call runs. -1: it could not
 * be kept (why says so) and the operation must be denied. */
static int take_snapshots(struct ag_call *c, char *why, size_t whylen)
{
	const struct ag_op *o = &c->op;
	int rc;

	switch (o->kind) {
	case AG_OP_EXEC:
		if (c->snap_fn) {
			/* git moving names: the record of its refs. */
			rc = c->snap_fn(c, c->snap_arg);
			break;
		}
		/* fall through */
	case AG_OP_CONNECT:
		/* Nothing to keep for a program start or a connection: notable only. */
		c->decision = AG_LOG;
		return 0;
	case AG_OP_SQL:
		if (!c->snap_fn) {
			snprintf(why, whylen, "%s; it is on a server, where agentguard cannot take a "
				 "snapshot first, so it is denied", c->reason ? c->reason
				 : "this statement needs a snapshot");
			return -1;
		}
		rc = o->path && snapshot_budget(o->path) < 0 ? -1 : c->snap_fn(c, c->snap_arg);
		if (rc == -2)
			return -1;   /* a server pre-image that could not be taken: c->why says why */
		break;
	default: {
		/* A mode or owner change keeps a copy too: restore then puts the
		 * file back as it was, content and mode, whatever the session did
		 * to it afterwards. */
		int how = o->kind == AG_OP_TRUNCATE || o->kind == AG_OP_WRITE ||
			  o->kind == AG_OP_MODE ? AG_SNAP_COPY
			: o->kind == AG_OP_DELETE ? AG_SNAP_MOVE : AG_SNAP_TAKE;
		const char *victim = NULL;
		const struct ag_at *at = &c->at;
		if (o->kind == AG_OP_RENAME && o->target_exists) {
			victim = o->target;
			at = &c->tat;
		} else if (o->kind != AG_OP_RENAME && o->kind != AG_OP_LINK) {
			victim = o->path;
		}
		/* The directory's times before this operation changes them. */
		int64_t pat = -1, pmt = -1;
		if (victim)
			parent_times(victim, at->fd, &pat, &pmt);
		/* Charged before the copy: a file over budget is refused at once,
		 * not after copying gigabytes only to throw them away. */
		struct stat vst;
		int charged = victim && fstatat(at->fd, at->name, &vst,
						*at->name ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) == 0;
		if (charged && snapshot_budget_st(&vst) < 0) {
			rc = -1;
			break;
		}
		/* By the directory held open and the name in it: what was judged
		 * is what is kept (and, for a delete, moved away). */
		rc = !victim ? 1 : ag_snapshot_take_at(G.s.state_dir, G.s.id, at->fd, at->name,
							victim, how, &c->w->snap);
		int e = errno;
		c->w->snap.parent_at = pat;
		c->w->snap.parent_mt = pmt;
		if (charged && rc != 0)
			snapshot_unbudget(&vst);
		/* It changed between the two looks: charge what was kept. */
		if (charged && rc == 0 && (c->w->snap.st.st_size != vst.st_size ||
					   c->w->snap.st.st_mode != vst.st_mode)) {
			snapshot_unbudget(&vst);
			if (snapshot_budget_st(&c->w->snap.st) < 0) {
				e = errno;
				snapshot_drop(&c->w->snap, at->fd, at->name);
				rc = -1;
			}
		}
		errno = e;
	}
	}
	if (rc < 0 && errno == EDQUOT) {
		snprintf(why, whylen,
			 "the session's snapshots reached snapshots.max_bytes: nothing is "
			 "destroyed without its snapshot; ask a human to free space (agentguard gc)");
		return -1;
	}
	if (rc < 0) {
		snprintf(why, whylen, "snapshot failed (%s): nothing is destroyed without its snapshot",
			 strerror(errno));
		return -1;
	}
	c->have_snap = rc == 0;
	/* A rename also takes the source's name away: keep the file under it
	 * too (a hard link, O(1)), or restore could bring back the old target
	 * but never the file that replaced it. */
	struct stat st;
	if (o->kind == AG_OP_RENAME &&
	    fstatat(c->at.fd, c->at.name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
		int64_t pat, pmt;
		parent_times(o->path, c->at.fd, &pat, &pmt);
		c->have_src = ag_snapshot_take_at(G.s.state_dir, G.s.id, c->at.fd, c->at.name,
						  o->path, AG_SNAP_TAKE, &c->w->src) == 0;
		c->w->src.parent_at = pat;
		c->w->src.parent_mt = pmt;
	}
	return 0;
}

const char *ag_state_dir(void)
{
	return G.s.state_dir;
}

const char *ag_session_id(void)
{
	return G.s.id;
}

void ag_set_sql_on(struct ag_call *c, const char *sql, size_t len, const char *database,
		   const void *conn, long gen, int how)
{
	/* Temporary tables the text itself makes are its own to drop
	 * ("CREATE TEMP TABLE x ...; DROP TABLE x"), and so are those its
	 * connection made before and still holds (sqlconns.c). */
	struct ag_sql_temps temps = {0};
	int known = conn && ag_sql_temps_of(conn, gen, how, &temps);

	c->op.sql = sql;
	c->sql_len = len;
	int held = temps.n > 0;
	c->op.sql_class = ag_sql_classify_temps(sql, (long)len, &temps);
	c->sql_alone = c->op.sql_class;
	if (held) {
		/* Classified a second time only when the memory could matter. */
		struct ag_sql_temps none = {0};
		c->sql_alone = ag_sql_classify_temps(sql, (long)len, &none);
	}
	c->op.database = database;
	if (known)
		ag_sql_will_leave(conn, gen, how, &temps, sql, len);
}

void ag_set_sql(struct ag_call *c, const char *sql, size_t len, const char *database,
		int is_file)
{
	ag_set_sql_on(c, sql, len, database, NULL, 0, 0);
	/* A SQLite file is a file: the guard's own files stay protected. */
	if (is_file)
		c->op.path = database;
}

void ag_sql_held(struct ag_call *c, const struct ag_sql_temps *held)
{
	if (!held)
		return;
	struct ag_sql_temps t = *held;
	c->op.sql_class = ag_sql_classify_temps(c->op.sql, (long)c->sql_len, &t);
}

static void deny(struct ag_call *c, const char *rule, const char *reason)
{
	c->decision = AG_DENY;
	c->enforced = 1;
	c->rule = rule;
	c->reason = reason;
}

/* The object of a delete, rename or link is not there (c->fail_errno says
 * how the real call would fail). Asked only when the rules would do more
 * than allow: an allowed call finds out by itself. */
static int absent(struct ag_call *c)
{
	struct stat st;

	if (c->op.kind != AG_OP_DELETE && c->op.kind != AG_OP_RENAME && c->op.kind != AG_OP_LINK)
		return 0;
	if (!c->at.name || fstatat(c->at.fd, c->at.name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno != ENOENT && errno != ENOTDIR && errno != ENAMETOOLONG)
		return 0;
	c->fail_errno = errno;
	return 1;
}

/* ---- a file's other names ----------------------------------------------------
 * A hard link made before the session (or by a process the guard did not
 * see) is a second name for a credential: truncating, overwriting or
 * chmod-ing it through that name changes the credential. When the file has
 * more than one name, the places the hard deny rules keep (plain paths:
 * ~/.ssh, ~/.aws/credentials, ...) are looked through for the same inode,
 * and the operation is judged under that name as well. Cheap: only files
 * with st_nlink > 1 pay, and the look is bounded (two levels, a few
 * hundred entries per directory). */
struct alias_look {
	dev_t dev;
	ino_t ino;
	char *out;          /* the protected name found, AG_PATH_MAX */
	int found;
};

static int alias_in_dir(struct alias_look *a, int dfd, char *path, size_t len, int depth)
{
	char buf[1024];
	int budget = 512;

	for (;;) {
		long n = syscall(SYS_getdents64, dfd, buf, sizeof buf);
		if (n <= 0)
			return 0;
		for (long off = 0; off < n && budget-- > 0;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(buf + off);
			off += d->reclen;
			if (d->name[0] == '.' && (!d->name[1] || (d->name[1] == '.' && !d->name[2])))
				continue;
			size_t nl = strlen(d->name);
			if (len + 1 + nl >= AG_PATH_MAX)
				continue;
			struct stat st;
			if ((ino_t)d->ino == a->ino && fstatat(dfd, d->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    st.st_dev == a->dev && st.st_ino == a->ino) {
				memcpy(a->out, path, len);
				a->out[len] = '/';
				memcpy(a->out + len + 1, d->name, nl + 1);
				a->found = 1;
				return 1;
			}
			if (d->type == DT_DIR && depth > 0) {
				int sub = openat(dfd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (sub < 0)
					continue;
				path[len] = '/';
				memcpy(path + len + 1, d->name, nl + 1);
				int hit = alias_in_dir(a, sub, path, len + 1 + nl, depth - 1);
				path[len] = 0;
				close(sub);
				if (hit)
					return 1;
			}
		}
		if (budget <= 0)
			return 0;
	}
}

static void alias_look_one(void *ctx, const char *p, size_t len)
{
	struct alias_look *a = ctx;
	struct stat st;
	char path[AG_PATH_MAX];

	if (a->found || len >= sizeof path)
		return;
	memcpy(path, p, len);
	path[len] = 0;
	if (lstat(path, &st) < 0)
		return;
	if (st.st_dev == a->dev && st.st_ino == a->ino) {
		memcpy(a->out, path, len + 1);
		a->found = 1;
		return;
	}
	if (!S_ISDIR(st.st_mode))
		return;
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return;
	alias_in_dir(a, dfd, path, len, 2);
	close(dfd);
}

/* The operation changes a file that is also a credential under another
 * name: judged under that name too, the stricter verdict kept. */
static int alias_kind(enum ag_op_kind k)
{
	return k == AG_OP_TRUNCATE || k == AG_OP_WRITE || k == AG_OP_MODE;
}

static AG_NOINLINE void judge_alias(struct ag_call *c)
{
	const struct ag_op *o = &c->op;
	struct stat st;

	if (c->decision == AG_DENY || !c->w || !c->at.name ||
	    fstatat(c->at.fd, c->at.name, &st, *c->at.name ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) < 0 ||
	    !S_ISREG(st.st_mode) || st.st_nlink < 2)
		return;
	struct alias_look a = {st.st_dev, st.st_ino, c->w->scratch, 0};
	ag_policy_hard_paths(G.s.policy, alias_look_one, &a);
	if (!a.found || (o->path && strcmp(a.out, o->path) == 0))
		return;
	struct ag_op other = *o;
	struct ag_verdict v;
	other.path = a.out;
	ag_decide(G.s.policy, &other, &v);
	if (v.action <= c->decision)
		return;
	c->v = v;
	c->decision = v.action;
	c->rule = v.rule_id;
	snprintf(c->why, sizeof c->why, "this file is also %.120s (a hard link): %.100s", a.out,
		 v.reason ? v.reason : "protected under that name");
	c->reason = c->why;
}

/* The guard's own files first, then the rules. 1 when the rules decided
 * (c->v holds their verdict), 0 when self-protection refused. */
/* A linked worktree of the workspace's repository (git worktree add ../x)
 * is part of the workspace: a file operation there that the rules refuse
 * (not by a hard rule) is judged as the same file inside the workspace
 * would be. Rare: only refusals look. */
/* The last linked worktree this process confirmed: `git worktree remove`
 * deletes the worktree's .git file before the rest of it and the
 * directory itself, which then no longer say whose they are. */
static char linked_last[AG_PATH_MAX];
static int linked_busy;

static int linked_root(const char *ws, const char *path, char *root, size_t len)
{
	int found = ag_git_linked_root(ws, path, root, len);

	if (__atomic_exchange_n(&linked_busy, 1, __ATOMIC_ACQUIRE))
		return found;   /* another thread holds it: no cache this once */
	size_t n = strlen(linked_last);
	if (found)
		snprintf(linked_last, sizeof linked_last, "%s", root);
	else if (n && strncmp(path, linked_last, n) == 0 && (path[n] == '/' || !path[n]) &&
		 ag_fmt(root, len, "%s", linked_last) == 0)
		found = 1;
	__atomic_store_n(&linked_busy, 0, __ATOMIC_RELEASE);
	return found;
}

static void judge_linked(struct ag_call *c)
{
	struct ag_op *o = &c->op;
	char root[AG_PATH_MAX];

	if ((o->kind != AG_OP_DELETE && o->kind != AG_OP_RENAME && o->kind != AG_OP_TRUNCATE &&
	     o->kind != AG_OP_WRITE && o->kind != AG_OP_MODE) || !ag_work(c))
		return;
	const char *ws = G.s.workspace, *path = o->path, *target = o->target;
	int moved = 0;
	if (path && linked_root(ws, path, root, sizeof root) &&
	    ag_fmt(c->w->scratch, sizeof c->w->scratch, "%s%s", ws, path + strlen(root)) == 0) {
		o->path = c->w->scratch;
		moved = 1;
	}
	if (o->kind == AG_OP_RENAME && target && linked_root(ws, target, root, sizeof root) &&
	    ag_fmt(c->w->text, AG_PATH_MAX, "%s%s", ws, target + strlen(root)) == 0) {
		o->target = c->w->text;
		moved = 1;
	}
	if (moved) {
		struct ag_verdict v;
		ag_decide(G.s.policy, o, &v);
		c->v = v;
		c->decision = v.action;
		c->rule = v.rule_id;
		c->reason = v.reason;
	}
	o->path = path;
	o->target = target;
}

/* ---- one directory's verdict ------------------------------------------------
 * rm -rf, a build, an unpacked archive: file after file in one directory.
 * Where the rules judge every file of a directory alike (ag_decide_dir),
 * the thread keeps that verdict for the next call of the same kind in the
 * same directory: a compare of the directory instead of a decision. Not
 * in signal handlers (the memory may be half written) nor for the
 * supervisor's calls on other processes' behalf (another caller each).
 * One directory per thread: its thread-local bytes are in every thread. */
#define DIR_MEMO_MAX 240
struct dir_memo {
	const struct ag_policy *p;
	size_t dl;                  /* "D/"'s length; 0: nothing kept */
	enum ag_op_kind kind;
	int alike;                  /* 0: D's files differ (decide each) */
	struct ag_verdict v;
	char d[DIR_MEMO_MAX];
};
static __thread struct dir_memo dir_memo_kept __attribute__((tls_model("initial-exec")));

static AG_INLINE struct dir_memo *dir_memo(const struct ag_call *c, size_t *dl)
{
	const char *path = c->op.path;
	enum ag_op_kind k = c->op.kind;

	if (!ag_dir_kind(k) || c->nested || ag_behalf || !path || path[0] != '/')
		return NULL;
	/* Where the name starts, if resolving it told (a plain name then). */
	if (c->path_base && path == c->pn.s) {
		*dl = c->path_base;
		if (path[*dl - 1] != '/')
			return NULL;
	} else {
		*dl = (size_t)(strrchr(path, '/') - path) + 1;
		if (!ag_plain_name(path + *dl))
			return NULL;
	}
	return *dl <= DIR_MEMO_MAX ? &dir_memo_kept : NULL;
}

/* Whether something the guard owns is in D, below it, or holds it: then
 * the files of D are not all alike to the guard itself. */
static int own_near(const char *d, size_t dl)
{
	for (int i = 0; i < G.nown; i++) {
		const struct own *o = &G.own[i];
		if (o->len >= dl && memcmp(o->s, d, dl) == 0)
			return 1;
		if (o->dir && dl > o->len && memcmp(d, o->s, o->len) == 0 && d[o->len] == '/')
			return 1;
	}
	return 0;
}

/* Asked once for the directory, and kept even when its files differ:
 * not asked again for every file. */
static AG_NOINLINE int judge_dir_anew(struct ag_call *c, struct dir_memo *m, size_t dl)
{
	int alike = !own_near(c->op.path, dl) && ag_decide_dir(G.s.policy, &c->op, &c->v);
	m->dl = 0;
	memcpy(m->d, c->op.path, dl);
	m->v = c->v;
	m->alike = alike;
	m->kind = c->op.kind;
	m->p = G.s.policy;
	m->dl = dl;
	return alike;
}

/* The op's verdict from what the thread kept for its directory, or kept
 * now: 1 (c->v set), else 0 (decide as usual). */
static AG_INLINE int judge_by_dir(struct ag_call *c)
{
	size_t dl;
	struct dir_memo *m = dir_memo(c, &dl);

	if (!m)
		return 0;
	if (m->dl == dl && m->kind == c->op.kind && m->p == G.s.policy &&
	    memcmp(m->d, c->op.path, dl) == 0) {
		if (m->alike)
			c->v = m->v;
		return m->alike;
	}
	return judge_dir_anew(c, m, dl);
}

static AG_INLINE int judge_rules(struct ag_call *c)
{
	if (c->unnamed) {
		deny(c, "agentguard-unnamed", c->unnamed);
		return 0;
	}
	if (judge_by_dir(c))
		goto judged;
	if (protected_op(&c->op)) {
		deny(c, "agentguard-self",
		     "the guard's own files (audit log, snapshots, rules, library) are protected");
		return 0;
	}
	ag_decide(G.s.policy, &c->op, &c->v);
judged:
	c->decision = c->v.action;
	c->rule = c->v.rule_id;
	c->reason = c->v.reason;
	if (!c->nested && alias_kind(c->op.kind))
		judge_alias(c);
	if (!c->nested && c->decision == AG_DENY && !c->v.hard)
		judge_linked(c);
	return 1;
}

/* A hook entered while the guard was deciding on this thread: a signal
 * handler interrupted it. The guard's locks may be held and its start may
 * be half done, so nothing is recorded or waited for: what the compiled
 * rules plainly allow runs, the rest is refused, and the next record says
 * how many such decisions went unrecorded. */
static int check_nested(struct ag_call *c)
{
	c->enforced = 1;
	if (__atomic_load_n(&G.state, __ATOMIC_ACQUIRE) != G_ACTIVE || !G.s.policy) {
		deny(c, "agentguard-interrupted", "a signal handler interrupted agentguard while "
		     "it was starting; nothing but what the rules plainly allow can run there");
	} else if (judge_rules(c) && c->decision > AG_LOG) {
		deny(c, c->rule, "a signal handler interrupted agentguard deciding another "
		     "call: only what the rules plainly allow can run there");
	}
	/* Recorded when the spool is free (the guard was deciding, not
	 * writing); else counted, and the next record says how many. */
	if (__atomic_load_n(&G.state, __ATOMIC_ACQUIRE) != G_ACTIVE || !G.spool.session ||
	    record(c) < 0)
		__atomic_add_fetch(&G.unrecorded, 1, __ATOMIC_RELAXED);
	leave(c);
	if (c->decision != AG_DENY)
		return 0;
	say_denied(c);
	return -1;
}

/* The object a `once` rule keeps, as the table knows it: the SQLite file,
 * or the file the call acts on. 0: nothing to name (kept every time). */
static int once_stat(const struct ag_call *c, struct stat *st)
{
	if (c->op.kind == AG_OP_SQL)
		return c->op.path && *c->op.path && stat(c->op.path, st) == 0;
	return c->at.name && fstatat(c->at.fd, c->at.name, st,
				     *c->at.name ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) == 0 &&
	       S_ISREG(st->st_mode);
}

int ag_check(struct ag_call *c)
{
	char *why = c->why;

	if (c->nested)
		return check_nested(c);
	if (!ag_behalf && !ag_floor_reaches(&c->op)) {
		/* Beyond the floor: the supervisor judges, makes and records it. */
		ag_thread.route = 1;
		leave(c);
		return 0;
	}
	ag_once(&policy_once, load_policy_apart);
	if (G.state != G_ACTIVE) {
		deny(c, "agentguard-unavailable", G.broken);
		/* The spool needs no policy: the refusal is recorded when the
		 * session is known (rules that will not load, say). */
		if (G.spool.session)
			record(c);
		say_denied(c);
		leave(c);
		return -1;
	}
	c->enforced = 1;
	if (judge_rules(c)) {
		if (c->decision >= AG_SNAPSHOT && absent(c)) {
			/* Nothing there: the call fails by itself, as it would bare
			 * (a deny rule must not turn ENOENT into EACCES: ssh-keygen
			 * -R relies on it), and nothing was destroyed or kept. */
			leave(c);
			return -1;
		}
		if (c->decision == AG_ASK) {
			if (G.s.mode == AG_MODE_AUTONOMOUS) {
				c->decision = AG_DENY;
				c->reason = "needs human approval (autonomous mode never waits)";
			} else if (ag_work(c) && ask_human(c)) {
				c->reason = "approved by a human";
			} else {
				c->decision = AG_DENY;
				c->reason = "a human did not approve it";
			}
		}
		int limit = ag_policy_denial_limit(G.s.policy);
		if (c->decision > AG_LOG && limit > 0) {
			struct counters *k = counters();
			if (k && __atomic_load_n(&k->denials, __ATOMIC_RELAXED) >= (uint64_t)limit)
				deny(c, c->rule,
				     "session halted: too many denials \xe2\x80\x94 hand back to a human");
		}
		if (c->decision == AG_DENY && !G.s.enforce && !c->v.hard)
			c->enforced = 0;
	}
	struct stat once;
	int first = c->decision == AG_SNAPSHOT && c->v.once && once_stat(c, &once);
	if (first && ag_once_seen(&once)) {
		/* Kept already this session: what it held before the session is
		 * safe, and what the session wrote since is the agent's. */
		c->decision = AG_ALLOW;
		c->reason = "kept once already in this session (a `once` rule)";
		first = 0;
	}
	if (c->decision == AG_SNAPSHOT && (!ag_work(c) || take_snapshots(c, why, sizeof c->why) < 0)) {
		say_unwritable(errno);
		if (!c->w)
			snprintf(why, sizeof c->why, "too many decisions at once to take a snapshot");
		c->reason = why;
		c->decision = AG_DENY;
	}
	if (first && c->decision == AG_SNAPSHOT)
		ag_once_mark(&once);
	/* A call libc makes for an entry point already recorded is one event. */
	int quiet = ag_behalf && ag_behalf->quiet && c->decision == AG_ALLOW;
	if (!quiet && record(c) < 0 && c->decision > AG_LOG) {
		say_unwritable(errno);
		snprintf(why, sizeof c->why, "the audit log cannot be written (%s)", strerror(errno));
		c->reason = why;
		c->decision = AG_DENY;
		c->enforced = 1;
	}
	int moved = c->have_snap && c->w->snap.moved;
	if (c->decision == AG_DENY) {
		say_denied(c);
		count_denial();
		if (c->enforced) {
			if (moved)
				/* denied after all: put it back */
				snapshot_drop(&c->w->snap, c->at.fd, c->at.name);
			leave(c);
			return -1;
		}
	}
	leave(c);
	return moved ? 1 : 0;
}

/* The first time this process is refused something because the state
 * dir cannot be written (an agent's own sandbox keeps it read-only, say):
 * what it means and what to do, once, loudly. The refusals themselves are
 * said one by one as usual. errno is kept. */
static void say_unwritable(int e)
{
	static int said;
	char msg[AG_PATH_MAX + 1024];

	if ((e != EROFS && e != EACCES && e != EPERM) || __atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
		return;
	int n = snprintf(msg, sizeof msg,
			 "agentguard: WARNING: the state dir %s cannot be written from this process "
			 "(%s): nothing can be snapshotted or recorded, so every operation that needs "
			 "a snapshot or a record is refused. If the agent's own sandbox makes it "
			 "read-only (Codex in workspace-write or read-only mode), let the sandbox "
			 "write it: in ~/.codex/config.toml, [sandbox_workspace_write] writable_roots "
			 "= [\"%s\"]", G.s.state_dir, strerror(e), G.s.state_dir);
	char shown[sizeof msg];
	if (n > 0) {
		say(shown, ag_escape_display(msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1,
					     shown, sizeof shown));
		say("\n", 1);
	}
	errno = e;
}

/* Refused before any rule is asked (the kernel layer met a call it cannot
 * judge): recorded, said and counted like every denial. */
int ag_check_refuse(struct ag_call *c, const char *rule, const char *reason)
{
	ag_once(&policy_once, load_policy_apart);
	deny(c, rule, reason);
	if (G.spool.session)
		record(c);
	say_denied(c);
	count_denial();
	leave(c);
	return -1;
}

/* This is the supervisor (lib/hooks/kernel.c): its own records go where
 * no process of the session can change them, and it keeps the counters. */
void ag_supervisor_note(void)
{
	G.spool.dir = "kspool";
	G.supervisor = 1;
}

/* The supervisor's side of count_remote (lib/hooks/kernel.c). */
long ag_count(int what, uint64_t n)
{
	ag_once(&init_once, init_apart);
	ag_once(&policy_once, load_policy_apart);
	struct counters *k = G.state == G_ACTIVE ? counters() : NULL;
	uint64_t max = G.state == G_ACTIVE ? ag_policy_max_snapshot_bytes(G.s.policy) : 0;

	if (!k)
		return -EIO;
	switch (what) {
	case AGENTGUARD_COUNT_DENIAL:
		__atomic_add_fetch(&k->denials, 1, __ATOMIC_RELAXED);
		return 0;
	case AGENTGUARD_COUNT_RESERVE:
		return max && reserve_bytes(k, max, n) < 0 ? -EDQUOT : 0;
	case AGENTGUARD_COUNT_RELEASE: {
		uint64_t v = __atomic_load_n(&k->snapshot_bytes, __ATOMIC_RELAXED);
		while (!__atomic_compare_exchange_n(&k->snapshot_bytes, &v, v > n ? v - n : 0, 0,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
		return 0;
	}
	}
	return -EINVAL;
}

/* The outcome into the call's record. Under the busy mark: the spool's
 * lock is taken, and a signal handler must not wait for it. */
static AG_INLINE void patch(struct ag_call *c, int err)
{
	if (!c->marked)
		return;
	ag_thread.busy++;
	ag_spool_patch_errno(&G.spool, &c->mark, err);
	if (c->decision >= AG_ASK)
		hand_over();
	ag_thread.busy--;
}

int ag_end(struct ag_call *c, int rc)
{
	int e = errno;

	patch(c, rc < 0 ? e : 0);
	finish(c);
	errno = e;
	return rc;
}

int ag_end_status(struct ag_call *c, int status)
{
	int e = errno;

	patch(c, status);
	finish(c);
	errno = e;
	return status;
}

int ag_refuse_status(struct ag_call *c, int status)
{
	return ag_end_status(c, status);
}

void ag_release(struct ag_call *c)
{
	int e = errno;

	finish(c);
	errno = e;
}

int ag_after(struct ag_call *c, int rc)
{
	int e = errno;

	patch(c, rc < 0 ? e : 0);
	errno = e;
	return rc;
}

int ag_refuse(struct ag_call *c)
{
	int err = c->fail_errno ? c->fail_errno : EACCES;

	patch(c, err);
	finish(c);
	errno = err;
	return -1;
}

int ag_sql_enter(void)
{
	return ag_thread.in_sql++;
}

void ag_sql_leave(int saved)
{
	ag_thread.in_sql = saved;
}

void ag_own_enter(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, saved);
	ag_thread.own++;
}

void ag_own_leave(const sigset_t *saved)
{
	ag_thread.own--;
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}
