/*
 * The one path every hook takes (guard.c), and the table of the real libc
 * functions (real.c). A hook knows its call's arguments and how its call
 * fails; everything else — re-entrancy, errno, building the operation,
 * deciding, snapshotting, auditing, refusing — lives here once.
 *
 *	int unlink(const char *path)
 *	{
 *		struct ag_call c;
 *		if (!ag_begin(&c, AG_OP_DELETE))
 *			return ag_real.unlink(path);
 *		if (ag_set_path(&c, AT_FDCWD, path) < 0 || ag_check(&c) < 0)
 *			return ag_refuse(&c);
 *		return ag_end(&c, ag_real.unlink(path));
 *	}
 */
#ifndef AGENTGUARD_GUARD_H
#define AGENTGUARD_GUARD_H

#include <stdio.h>
#include <sys/types.h>

#include "agentguard.h"
#include "snapshot.h"
#include "spool.h"

struct ag_real {
	int (*unlink)(const char *);
	int (*unlinkat)(int, const char *, int);
	int (*remove)(const char *);
	int (*rmdir)(const char *);
	int (*rename)(const char *, const char *);
	int (*renameat)(int, const char *, int, const char *);
	int (*renameat2)(int, const char *, int, const char *, unsigned);
	int (*open)(const char *, int, ...);
	int (*open64)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*openat64)(int, const char *, int, ...);
	int (*creat)(const char *, mode_t);
	int (*creat64)(const char *, mode_t);
	int (*__open_2)(const char *, int);
	int (*__open64_2)(const char *, int);
	int (*__openat_2)(int, const char *, int);
	int (*__openat64_2)(int, const char *, int);
	FILE *(*fopen)(const char *, const char *);
	FILE *(*fopen64)(const char *, const char *);
	FILE *(*freopen)(const char *, const char *, FILE *);
	FILE *(*freopen64)(const char *, const char *, FILE *);
	int (*truncate)(const char *, off_t);
	int (*truncate64)(const char *, off_t);
	int (*ftruncate)(int, off_t);
	int (*ftruncate64)(int, off_t);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execv)(const char *, char *const[]);
	int (*execvp)(const char *, char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	int (*execveat)(int, const char *, char *const[], char *const[], int);
	int (*posix_spawn)(pid_t *, const char *, const void *, const void *,
			   char *const[], char *const[]);
	int (*posix_spawnp)(pid_t *, const char *, const void *, const void *,
			    char *const[], char *const[]);
	int (*system)(const char *);
	FILE *(*popen)(const char *, const char *);
};

extern struct ag_real ag_real;

/* glibc declares these only under _FORTIFY_SOURCE; programs built with it
 * call them instead of open/openat. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
/* Resolve the whole table (idempotent): a guarded call's first step. A
 * call passed straight through resolves only its own entry (AG_REAL):
 * most processes never need most of them, and ~40 lookups at every
 * process start cost ~10 us. (glibc's dlsym does not allocate when it
 * succeeds, so resolving inside a hook is safe.) */
void ag_real_init(void);
void *ag_real_get(void **slot, const char *name);
/* A database client library's function, found when first used (the
 * library may be loaded late, by dlopen, and locally): sonames is a
 * NULL-terminated list of the libraries to look in. */
void *ag_client_sym(const char *const *sonames, const char *name);
/* The next definition of `name` after this library (libc's, usually),
 * for hooks outside the table above. */
void *ag_real_next(const char *name);
/* A real function, even when a hook runs before our constructor did
 * (another library's constructor calling unlink, say). */
#define AG_REAL(name) \
	((__typeof__(ag_real.name))ag_real_get((void **)&ag_real.name, #name))

/* One guarded call in flight. Lives on the hook's stack. */
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
	const char *unguarded;     /* exec: why the target runs without us */
	size_t sql_len;            /* sql: bytes of op.sql */
	/* sql: how to snapshot the database before the statement runs (set by
	 * the client's hook; NULL for servers, where snapshot means deny).
	 * Fills c->snap; 0, 1 (nothing to keep), or -1 with errno. */
	int (*snap_fn)(struct ag_call *c, void *arg);
	void *snap_arg;
	int64_t t0;
	/* ag_begin clears everything above. The buffers below (~17 KiB) are
	 * written before they are read, and clearing them would cost every
	 * hooked call. */
	struct ag_snapshot snap;   /* what the operation destroys */
	struct ag_snapshot src;    /* rename: the source, under its old name */
	char why[256];             /* a reason made up on the spot: it must
	                              outlive ag_check (clients quote it later) */
	char path[AG_PATH_MAX];
	char target[AG_PATH_MAX];
};

/* 1: guard this call (c is set up; finish with ag_end or ag_refuse).
 * 0: pass it straight to libc (our own work, or the guard is off). */
int ag_begin(struct ag_call *c, enum ag_op_kind kind);

/* Fill op paths from (dirfd, path); -1 when the path cannot be made
 * absolute and the call must be refused. */
int ag_set_path(struct ag_call *c, int dirfd, const char *path);
int ag_set_target(struct ag_call *c, int dirfd, const char *path);
/* Leave the call alone after all (not an operation, e.g. an open without
 * O_TRUNC of an empty file): nothing is recorded. Returns rc. */
int ag_skip(struct ag_call *c);
/* 1 when the path names something the guard itself owns (audit DB, spool,
 * snapshot store, rules, the library, /etc/ld.so.preload). */
int ag_protected(const char *abs);

/* Decide, snapshot if asked, record. 0: go ahead with the real call;
 * -1: refuse it (already said on stderr and recorded); 1 (deletes only):
 * the snapshot moved the file into the store, which was the deletion:
 * finish with ag_end(c, 0) without the real call. */
int ag_check(struct ag_call *c);

/* After the real call: record its errno, restore errno, return rc. */
int ag_end(struct ag_call *c, int rc);
/* Refuse: errno = EACCES, return -1. */
int ag_refuse(struct ag_call *c);

/* Database clients report a status code, not errno: record `status` as
 * the call's outcome and return it (errno untouched). ag_refuse_status is
 * the same for a refused call whose failure the client itself produced. */
int ag_end_status(struct ag_call *c, int status);
int ag_refuse_status(struct ag_call *c, int status);

/* Calls that may never return (exec) or run a while (system): leave the
 * guard before the real call — a vfork child shares our memory, so a
 * flag left set would switch the guard off in the parent — and record the
 * outcome afterwards with ag_after (which returns rc, errno intact). */
void ag_release(struct ag_call *c);
int ag_after(struct ag_call *c, int rc);

/* sql: the statement (len bytes), its class, the database: a SQLite file
 * (is_file) or "host/dbname". */
void ag_set_sql(struct ag_call *c, const char *sql, size_t len, const char *database,
		int is_file);
/* The one-line denial ("agentguard: denied sql ... (rule r: reason)"),
 * for clients that must carry it in their own error (servers raise it). */
int ag_describe(const struct ag_call *c, char *line, size_t len);
/* Where snapshots go, for hooks that take their own (SQLite backups). */
const char *ag_state_dir(void);
const char *ag_session_id(void);

/* exec: the program (resolved like execvp when `search`), argv, and
 * whether it will run unguarded. 0: decide it; 1: no such program, not an
 * operation (ag_skip, then the real call fails by itself); -1: refuse. */
int ag_set_exec(struct ag_call *c, int dirfd, const char *file,
		char *const argv[], int search);

#endif
