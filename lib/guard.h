/*
 * The one path every hook takes (guard.c), and the table of the real libc
 * functions (real.c). A hook knows its call's arguments and how its call
 * fails; everything else — who may pass, errno, building the operation,
 * deciding, snapshotting, auditing, refusing — lives here once.
 *
 * Each exported entry is thin: AG_HOOK makes it pass the call straight to
 * libc when the guard's own work is calling (a frame of a few bytes), and
 * otherwise call the hook's guarded body, a separate function:
 *
 *	AG_HOOK(int, unlink, (const char *path), (path))
 *	{
 *		struct ag_call c;
 *		ag_begin(&c, AG_OP_DELETE);
 *		if (ag_set_path(&c, AT_FDCWD, path) < 0 || ag_check(&c) < 0)
 *			return ag_refuse(&c);
 *		return ag_end(&c, ag_real.unlinkat(c.at.fd, c.at.name, 0));
 *	}
 *
 * The real call acts on what was judged: ag_set_path holds the resolved
 * parent directory open (c.at.fd) and the hook calls the *at variant with
 * the last component (c.at.name), so no symlink swapped in between can
 * change the call's object.
 */
#ifndef AGENTGUARD_GUARD_H
#define AGENTGUARD_GUARD_H

#include <netdb.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "agentguard.h"
#include "gitrefs.h"
#include "snapshot.h"
#include "spool.h"

/* The real functions, one per AG_LIBC/AG_LIBC_VA line of interpose.def. */
struct ag_real {
#define AG_LIBC(ret, name, params, args) ret (*name) params;
#define AG_LIBC_VA(ret, name, params) ret (*name) params;
#define AG_ENTRY(name)
#define AG_CLIENT(name)
#include "interpose.def"
#undef AG_LIBC
#undef AG_LIBC_VA
#undef AG_ENTRY
#undef AG_CLIENT
};

extern struct ag_real ag_real;

/* glibc declares these only under _FORTIFY_SOURCE; programs built with it
 * call them instead of open/openat. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

/* Resolve the whole table (idempotent). A call passed straight through
 * resolves only its own entry (AG_REAL): most processes never need most
 * of them. (glibc's dlsym does not allocate when it succeeds, so
 * resolving inside a hook is safe.) */
void ag_real_init(void);
/* Is f (a function, a return address) inside this library? */
int ag_real_ours(const void *f);
void *ag_real_get(void **slot, const char *name);
/* A database client library's function, found when first used (the
 * library may be loaded late, by dlopen, and locally): sonames is a
 * NULL-terminated list of the libraries to look in. */
void *ag_client_sym(const char *const *sonames, const char *name);
/* A real function, even when a hook runs before our constructor did
 * (another library's constructor calling unlink, say). */
#define AG_REAL(name) \
	((__typeof__(ag_real.name))ag_real_get((void **)&ag_real.name, #name))

/* Run fn once per process, like pthread_once but without its futex wake
 * on every first run (glibc wakes whether anyone waits or not: four
 * system calls in a process's first decision). 0 never run, 1 running,
 * 2 running with a waiter, 3 done. As with pthread_once, fn must not
 * wait for its own state; a fork child forgets runs that were under way
 * in other threads (ag_once_after_fork: no thread will finish them). */
#define AG_ONCE_DONE 3
void ag_once_slow(int *state, void (*fn)(void));
void ag_once_after_fork(int *state);
void ag_real_after_fork(void);
static inline void ag_once(int *state, void (*fn)(void))
{
	if (__atomic_load_n(state, __ATOMIC_ACQUIRE) != AG_ONCE_DONE)
		ag_once_slow(state, fn);
}

/* ---- who may pass ----------------------------------------------------------
 * Per thread, and nothing else: a mark that means only "the guard's own
 * work". User code running inside a hooked call (a callback, a signal
 * handler) is judged like any other code.
 */
struct ag_thread {
	/* >0 while the guard calls into code that comes back through our
	 * hooks on its behalf (SQLite's own file calls while the guard takes
	 * a backup). Signals are blocked meanwhile, so no user code runs. */
	int own;
	/* >0 while the guard decides a call on this thread. A hook entered
	 * then interrupted the guard (a signal handler): its locks may be
	 * held, so that call is decided from the policy alone. */
	int busy;
	/* >0 while a database client runs a statement the guard already
	 * judged: the client's own nested API calls and its socket writes
	 * for it are that statement, not new ones. */
	int in_sql;
	/* The work frames this thread holds (guard.c), for fork. */
	uint64_t frames;
	/* The next real call is beyond the Landlock floor (floor.c): it goes
	 * to the supervisor, outside the gate, unjudged here. */
	int route;
	/* The calls on this thread that named a file by the cwd's name and
	 * keep the cwd still until their real call is made (guard.c). */
	int cwd_held;
};
extern __thread struct ag_thread ag_thread __attribute__((tls_model("initial-exec")));

/* Set while the kernel layer's supervisor makes a call on another
 * process's behalf (lib/kernel_abi.h): whom the record names. */
struct agentguard_kproc;
extern __thread const struct agentguard_kproc *ag_behalf
	__attribute__((tls_model("initial-exec")));
/* The supervisor counts for a process under the floor (guard.c): what is
 * one of AGENTGUARD_COUNT_*; 0 or a negative errno. */
long ag_count(int what, uint64_t n);
/* This process is the supervisor: its records go to STATE/kspool. */
void ag_supervisor_note(void);

#define AG_OWN_WORK() __builtin_expect(ag_thread.own != 0, 0)

/* An exported entry and its guarded body (see the top of this file);
 * AG_HOOK_VIA names the real function itself (a client library's). */
#define AG_HOOK_VIA(real, ret, name, params, args)                              \
	static ret guarded_##name params;                                      \
	AG_EXPORT ret name params                                               \
	{                                                                       \
		if (AG_OWN_WORK())                                              \
			return (real) args;                                     \
		return guarded_##name args;                                     \
	}                                                                       \
	static AG_NOINLINE ret guarded_##name params
#define AG_HOOK(ret, name, params, args) AG_HOOK_VIA(AG_REAL(name), ret, name, params, args)

/* chdir and fchdir (hooks/cwd.c) wait until no call that named a file by
 * the cwd's name is between its naming and its real call. -1 (EINTR):
 * called from a signal handler that interrupted such a call on this
 * thread, which waiting would deadlock. */
int ag_cwd_move_begin(void);
void ag_cwd_move_end(void);

/* ---- one guarded call -------------------------------------------------- */

/* Where the real call acts: a directory held open and a name in it. */
struct ag_at {
	int fd;              /* the parent directory (O_PATH), or AT_FDCWD */
	int owned;           /* fd is ours to close */
	const char *name;    /* the last component, as the caller wrote it */
};

/* Buffers a decision needs (~20 KiB), from a pool rather than the
 * caller's stack: threads run on 16 KiB stacks and signal handlers on
 * SIGSTKSZ alternate stacks. Held from the first ag_set_* until the call
 * ends (ag_end, ag_refuse, ag_release). */
struct ag_work {
	struct ag_snapshot snap;   /* what the operation destroys */
	struct ag_snapshot src;    /* rename: the source, under its old name */
	char path[AG_PATH_MAX];
	char target[AG_PATH_MAX];
	char text[AG_PATH_MAX * 2 + 1024];  /* the deny line, the question */
	char scratch[AG_PATH_MAX];
	char words[8192];          /* exec: what decide unwraps (cmdview.c) */
	struct ag_git_repo git;    /* exec of git: its repository (gitrefs.h) */
	char git_config[4096];     /* ... the configuration a push reads */
	char git_scratch[16384];   /* ... room to read its refs */
};

/* One guarded call in flight. Lives on the hook's stack: keep it small. */
struct ag_call {
	struct ag_op op;
	struct ag_verdict v;
	enum ag_action decision;   /* what happens, after mode/enforce/breaker */
	int enforced;
	const char *rule;
	const char *reason;
	int have_snap;
	int have_src;
	struct ag_spool_mark mark;
	int marked;
	int fail_errno;            /* refuse with this instead of EACCES */
	int nested;                /* entered while the guard was busy (see ag_thread) */
	int cwd_held;              /* names taken from getcwd: the cwd is kept still */
	int busy;                  /* this call holds ag_thread.busy */
	const char *unguarded;     /* exec: why the target runs without us */
	size_t sql_len;            /* sql: bytes of op.sql */
	int sql_alone;             /* sql: op.sql_class as the text alone gives it,
	                              without the connection's temporary tables
	                              (a hook that lowered it asks the server) */
	/* sql: how to snapshot the database before the statement runs (set by
	 * the client's hook; NULL for servers, where snapshot means deny).
	 * Fills c->w->snap; 0, 1 (nothing to keep), or -1 with errno. */
	int (*snap_fn)(struct ag_call *c, void *arg);
	/* (-2: it could not be taken, and c->why says why: a server
	 * pre-image knows better than errno.) */
	void *snap_arg;
	int64_t t0;                /* when the hook was entered (wall clock) */
	size_t path_base;          /* where op.path's last component starts, 0: not known */
	size_t path_len;           /* and its length, 0: not known */
	struct ag_at at;           /* ag_set_path: where the real call acts */
	struct ag_at tat;          /* ag_set_target: the same for the target */
	struct ag_name pn, tn;     /* op.path and op.target: in w, or mapped
	                              when longer (given back with the call) */
	const char *unnamed;       /* why the object could not be named: the
	                              call is then refused, and recorded */
	struct ag_work *w;         /* NULL until a buffer is needed */
	char why[256];             /* a reason made up on the spot: it must
	                              outlive ag_check (clients quote it later) */
};

/* Start guarding a call: always succeeds (the thin entry already let the
 * guard's own work through). */
void ag_begin(struct ag_call *c, enum ag_op_kind kind);

/* The call's work frame (taken from the pool on first use). NULL only if
 * the pool stayed exhausted; the call is then refused. */
struct ag_work *ag_work(struct ag_call *c);

/* Fill op.path from (dirfd, path) and hold its parent open in c->at; -1
 * when the path cannot be resolved and the call must be refused with
 * c->fail_errno (the real call would have failed the same way). A parent
 * that is there but cannot be named (an ancestor deeper than PATH_MAX
 * that cannot be read): 0, op.path NULL and c->unnamed set.
 * ag_set_target does the same for op.target and c->tat (rename, link). */
int ag_set_path(struct ag_call *c, int dirfd, const char *path);
int ag_set_target(struct ag_call *c, int dirfd, const char *path);
/* Fill op.path with the file behind a descriptor (ftruncate, fexecve).
 * ag_set_fd_path_at first looks for it at (hintdir, hint), where the
 * caller opened it: a file deeper than PATH_MAX has no name the kernel
 * will print. Either way, when it cannot be named at all, c->unnamed
 * says so (and the call is refused by ag_check). */
int ag_set_fd_path(struct ag_call *c, int fd);
int ag_set_fd_path_at(struct ag_call *c, int fd, int hintdir, const char *hint);
/* The session's rules say something about op (they are compiled now if
 * they were not yet). */
int ag_rules_name(struct ag_call *c, enum ag_op_kind op);
/* Around a real call made before the decision (an open that may block on
 * a FIFO): user code that a signal runs meanwhile is judged in full, not
 * as an interruption of the guard. */
void ag_pause(struct ag_call *c);
void ag_resume(struct ag_call *c);
/* Leave the call alone after all (not an operation, e.g. an open without
 * O_TRUNC of an empty file): nothing is recorded. Returns 0. */
int ag_skip(struct ag_call *c);
/* 1 when the path names something the guard itself owns (audit DB, spool,
 * snapshot store, rules, the library, /etc/ld.so.preload), or a directory
 * above one of them (renaming it would carry them away). */
int ag_protected(const char *abs);

/* A `once` rule's snapshot of the file st describes was kept in this
 * session, by any of its processes (lib/hooks/write.c keeps the table). */
int ag_once_seen(const struct stat *st);
void ag_once_mark(const struct stat *st);

/* Decide, snapshot if asked, record. 0: go ahead with the real call;
 * -1: refuse it (already said on stderr and recorded); 1 (deletes only):
 * the snapshot moved the file into the store, which was the deletion:
 * finish with ag_end(c, 0) without the real call. */
int ag_check(struct ag_call *c);
/* Refuse the call as rule `rule` with `reason` without asking the rules
 * (recorded, said, counted by the breaker); -1. */
int ag_check_refuse(struct ag_call *c, const char *rule, const char *reason);
/* Judge a connection to sa without making it (connect.c): 0, or -1 with
 * errno when refused. */
int ag_judge_address(const struct sockaddr *sa, socklen_t len);
/* sendto with MSG_FASTOPEN and an address: a connect, judged, then sent. */
ssize_t ag_sendto_connect(int fd, const void *buf, size_t len, int flags,
			  const struct sockaddr *to, socklen_t tolen);

/* After the real call: record its errno, restore errno, return rc. */
int ag_end(struct ag_call *c, int rc);
/* Refuse: errno = EACCES (or c->fail_errno), return -1. */
int ag_refuse(struct ag_call *c);

/* Database clients report a status code, not errno: record `status` as
 * the call's outcome and return it (errno untouched). ag_refuse_status is
 * the same for a refused call whose failure the client itself produced. */
int ag_end_status(struct ag_call *c, int status);
int ag_refuse_status(struct ag_call *c, int status);

/* Calls that may never return (exec) or run a while (system): leave the
 * guard before the real call — a vfork child shares our memory, so a
 * frame or flag left held would be lost to the parent — and record the
 * outcome afterwards with ag_after (which returns rc, errno intact). */
void ag_release(struct ag_call *c);
int ag_after(struct ag_call *c, int rc);

/* sql: the statement (len bytes), its class, the database: a SQLite file
 * (is_file) or "host/dbname". */
void ag_set_sql(struct ag_call *c, const char *sql, size_t len, const char *database,
		int is_file);
/* ...read again with `held` (may be NULL: nothing) as the connection's
 * temporary tables: what the server said they are. */
void ag_sql_held(struct ag_call *c, const struct ag_sql_temps *held);
/* The same for a statement of connection `conn` (its client object) in
 * session `gen`, read against the temporary tables that connection made
 * before and still holds (lib/sqlconns.c; `how`: AG_TEMPS_*). What it
 * would leave waits for its outcome, which the hook tells ag_sql_ran. */
void ag_set_sql_on(struct ag_call *c, const char *sql, size_t len, const char *database,
		   const void *conn, long gen, int how);
/* Around a client's real call for a statement already judged (see
 * ag_thread.sql). ag_sql_leave returns what ag_sql_enter saved: user code
 * the client calls back (sqlite3_exec's row callback) runs outside. */
int ag_sql_enter(void);
void ag_sql_leave(int saved);
/* The guard's own calls into a client library (a SQLite backup): signals
 * blocked, hooks passed through. */
void ag_own_enter(sigset_t *saved);
void ag_own_leave(const sigset_t *saved);
/* The one-line denial ("agentguard: denied sql ... (rule r: reason)"),
 * for clients that must carry it in their own error (servers raise it). */
int ag_describe(const struct ag_call *c, char *line, size_t len);
/* Charge a snapshot of `bytes` to the session's snapshots.max_bytes
 * before it is taken (a negative amount gives back): 0, or -1 with EDQUOT
 * (over budget) or EIO. For hooks that take their own (server pre-images). */
int ag_snapshot_charge(int64_t bytes);
/* Where snapshots go, for hooks that take their own (SQLite backups). */
const char *ag_state_dir(void);
const char *ag_session_id(void);

/* exec: the program (resolved like execvp when `search`), argv, and
 * whether it will run unguarded. 0: decide it; 1: no such program, not an
 * operation (ag_skip, then the real call fails by itself); -1: refuse. */
/* exec: the environment the child gets (terraform reads arguments from
 * it). After a successful ag_set_exec. */
void ag_set_exec_env(struct ag_call *c, char *const envp[]);
int ag_set_exec(struct ag_call *c, int dirfd, const char *file,
		char *const argv[], int search);

#endif
