/*
 * agentguard core: the types and functions shared by the preload library
 * (lib/hooks/, lib/guard.c) and the CLI (tools/).
 *
 * Everything here is hidden in libagentguard.so (built with
 * -fvisibility=hidden); only interposed libc/client symbols and
 * agentguard_-prefixed names are exported.
 *
 * Map of the core:
 *   layers.c   which rule files a session uses (extends:, lookup, managed)
 *   policy.c   YAML text -> immutable compiled policy; rule `tests` examples
 *   match.c    globs, argv flag normalization, CIDR, the matchers of a rule
 *   decide.c   decide(policy, op) -> verdict; explain (every rule that matched)
 *   path.c     absolute, normalized paths
 *   hash.c     SHA-256 (nettle)
 *   spool.c    per-process append-only event spool (what hooks write)
 *   audit.c    audit.db: schema, ingest of spools, hash chain, verify
 *   snapshot.c the snapshot store (take / restore)
 *   session.c  session start/inherit, state dir, the runtime's fixed settings
 *   guard.c    the one path every hook goes through: decide, snapshot, audit, act
 */
#ifndef AGENTGUARD_H
#define AGENTGUARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#define AG_EXPORT __attribute__((visibility("default")))
/* The hook path's own small parts go in line where they are used, whatever
 * the compiler estimates: a call costs the registers it saves, and an
 * unmatched call is counted (test/e2e/t_counts.sh). What that path meets
 * only sometimes stays out of line, so it does not take their registers. */
#define AG_INLINE inline __attribute__((always_inline))
#define AG_NOINLINE __attribute__((noinline))

/* ---- operations ---------------------------------------------------------- */

enum ag_op_kind {
	AG_OP_DELETE,
	AG_OP_RENAME,
	AG_OP_TRUNCATE,
	AG_OP_EXEC,
	AG_OP_CONNECT,
	AG_OP_SQL,
	AG_OP_LINK,      /* a new name for a file, or a special file */
	AG_OP_IO_URING,  /* a ring whose operations no filter sees (kernel layer) */
	AG_OP_WRITE,     /* an existing file opened to be overwritten in place */
	AG_OP_SIGNAL,    /* a signal to the supervisor: always refused, never ruled */
	AG_OP_MODE,      /* a file's mode or owner changed (chmod, chown) */
	AG_OP_COUNT
};

/* Ordered by strictness: a larger value is stricter. */
enum ag_action {
	AG_ALLOW,
	AG_LOG,
	AG_SNAPSHOT,
	AG_ASK,
	AG_DENY,
	AG_ACTION_COUNT
};

enum ag_sql_class {
	AG_SQL_OTHER,
	AG_SQL_READ,
	AG_SQL_INSERT,
	AG_SQL_UPDATE,
	AG_SQL_DELETE,
	AG_SQL_DDL,
	AG_SQL_ALTER_DROP,
	AG_SQL_UPDATE_ALL,
	AG_SQL_DELETE_ALL,
	AG_SQL_TRUNCATE,
	AG_SQL_DROP_TABLE,
	AG_SQL_DROP_DATABASE,
	AG_SQL_SAFETY_OFF,
	/* Not a statement's class: a database connection whose statements the
	 * guard cannot read (TLS, GSS encryption), recorded once when it
	 * starts (lib/hooks/wire.c). No text classifies as it. */
	AG_SQL_UNGUARDED,
	AG_SQL_CLASS_COUNT
};

const char *ag_op_name(enum ag_op_kind op);          /* "delete", ... */
int ag_op_parse(const char *name);                   /* -1 if unknown */
const char *ag_action_name(enum ag_action a);        /* "allow", ... */
int ag_action_parse(const char *name);               /* -1 if unknown */
const char *ag_sql_class_name(enum ag_sql_class c);  /* "drop_table", ... */
int ag_sql_class_parse(const char *name);            /* -1 if unknown */

/*
 * One normalized operation. Fields that do not apply are NULL / -1 / 0.
 * All paths are absolute and normalized (see path.c).
 */
struct ag_op {
	enum ag_op_kind kind;
	const char *path;        /* delete/truncate/write: the file; rename: source;
	                            exec: resolved program path; sql: sqlite file */
	const char *target;      /* rename: target path; link: the new name;
	                            mode: the new mode or owner and the old, as
	                            text ("0777 (was 0600)"), never matched */
	int target_exists;       /* rename: target exists (will be destroyed) */
	int is_dir;              /* delete: the path is a directory (rmdir) */
	const char *const *argv; /* exec: argv, NULL-terminated (argv[0] first) */
	int unguarded;           /* exec: target will run without the library */
	const char *host;        /* connect: host name when known */
	const char *addr;        /* connect: numeric address text */
	int port;                /* connect: port, -1 if none */
	const char *unix_path;   /* connect: AF_UNIX socket path */
	const char *sql;         /* sql: statement text */
	int sql_class;           /* sql: enum ag_sql_class, -1 unknown */
	const char *database;    /* sql: sqlite file path, or "host/dbname" */
	const char *caller;      /* absolute path of the calling program's exe;
	                            `program:` matches it for non-exec ops */
	const char *real_path;   /* exec: the file behind a symlinked program, if
	                            its name differs (a link tf -> terraform) */
	const char *const *envp; /* exec: the child's environment, or NULL */
	char *scratch;           /* exec: room for the words decide makes (a
	                            remote command split), or NULL */
	size_t scratch_len;
	const char *git_config;  /* exec of git: the configuration its push
	                            reads (repository and user files), or NULL */
	size_t git_config_len;
	int git_config_cut;      /* ... too long to be read whole */
};

/* ---- policy (policy.c, match.c, decide.c) -------------------------------- */

struct ag_policy;

/* What $HOME, ~, $WORKSPACE and $TMPDIR expand to when rules compile. */
struct ag_policy_env {
	const char *home;       /* required */
	const char *workspace;  /* if non-NULL, overrides the rules' workspace: */
	const char *cwd;        /* base for a relative `workspace:`; required */
	const char *tmpdir;     /* NULL -> "/tmp" */
	int no_examples;        /* the text was checked when its session started,
	                           `tests:` and all: a process joining it does not
	                           run them again (their paths are read against the
	                           starter's cwd, and they cost most of a compile) */
};

/*
 * Parse, validate and compile a rule set. `name` is what error messages
 * call the file. On error returns NULL and writes one line
 * "name:line:col: what is wrong" (no trailing newline) into err.
 * Rules' `tests` examples are run (unless env->no_examples); a failing
 * example is an error.
 * The result is immutable; free with ag_policy_free.
 */
struct ag_policy *ag_policy_load(const char *name, const char *text, size_t len,
				 const struct ag_policy_env *env,
				 char *err, size_t errlen);
/* Reads the file, then ag_policy_load. */
struct ag_policy *ag_policy_load_file(const char *path,
				      const struct ag_policy_env *env,
				      char *err, size_t errlen);
void ag_policy_free(struct ag_policy *p);

/*
 * A session's compiled policy as a file (lib/pimage.c): written once when
 * the session starts, mapped read-only by each of its processes in place
 * of compiling. env->home and env->workspace must be absolute. The mapper
 * returns NULL whenever the image is not exactly this build's compile of
 * these inputs (the caller then compiles), and the rules' hash with it.
 *
 * The image also carries the guard's own files as the session's start
 * named them and as they resolved then (own, NULL for none): a process
 * given the same names takes the resolved ones instead of walking each
 * with realpath (a readlink per component). Trusted like the policy: the
 * image is the session's own protected file.
 */
enum { AG_OWN_STATE, AG_OWN_KEY, AG_OWN_LIB, AG_OWN_N };
struct ag_own_names {
	const char *given[AG_OWN_N], *real[AG_OWN_N];   /* NULL: not known */
};
int ag_policy_image_write(const char *path, const char *name, const char *text, size_t len,
			  const struct ag_policy_env *env, const char *rules_hash,
			  const struct ag_own_names *own, char *err, size_t errlen);
struct ag_policy *ag_policy_image_map(const char *path, const struct ag_policy_env *env,
				      char rules_hash[65], struct ag_own_names *own);

/* The built-in rules (rules/default.yaml compiled in). */
extern const char ag_default_rules[];
extern const size_t ag_default_rules_len;
extern const char ag_default_rules_hash[];   /* its SHA-256, hex, from the build */

/* ---- rule layers (layers.c) ---------------------------------------------- */

#define AG_LAYERS_MAX 10
struct ag_layer {
	const char *name;        /* split: not NUL-terminated, name_len long */
	size_t name_len;
	const char *text;
	size_t len;
	int managed;             /* the machine's managed.yaml: over everything */
};
/* Where the rules come from: `given` (--rules, $AGENTGUARD_RULES), else
 * WORKSPACE/.agentguard.yaml, ${XDG_CONFIG_HOME:-~/.config}/agentguard/
 * rules.yaml, SYSCONFDIR/rules.yaml, else "builtin". */
int ag_rules_lookup(const char *given, const char *workspace, char *out, size_t outlen);
/* $AGENTGUARD_SYSCONFDIR, else /etc/agentguard. */
const char *ag_rules_sysconfdir(void);
struct ag_rules_text {
	char *text;              /* ag_default_rules when builtin */
	size_t len;
	int builtin;             /* the built-in set alone */
	int nlayers;
	char name[4096];         /* "top.yaml + managed.yaml": for logs and messages */
};
/* `top` ("builtin" or a file), what it extends and the managed file over
 * it, as the one text ag_policy_load reads (a bundle when more than one).
 * 0, or -1 with "file:line:col: what" in err. */
int ag_rules_resolve(const char *top, struct ag_rules_text *out, char *err, size_t errlen);
void ag_rules_text_free(struct ag_rules_text *t);
int ag_layers_is_bundle(const char *text, size_t len);
/* A text's top-level `extends:` value: 1 found, 0 none (or not a mapping:
 * the compiler says what is wrong), -1 not a string. */
int ag_rules_extends(const char *text, size_t len, char *out, size_t outlen, int *line,
		     int *col);
/* A bundle's layers, lowest first: their count, or -1 if it is damaged. */
int ag_layers_split(const char *text, size_t len, struct ag_layer *out, int max);

enum ag_mode { AG_MODE_AUTONOMOUS, AG_MODE_SUPERVISED };

enum ag_mode ag_policy_mode(const struct ag_policy *p);
int ag_policy_enforce(const struct ag_policy *p);          /* enforce: */
const char *ag_policy_workspace(const struct ag_policy *p); /* absolute */
uint64_t ag_policy_max_snapshot_bytes(const struct ag_policy *p); /* 0 = none */
int ag_policy_denial_limit(const struct ag_policy *p);     /* 0 = none */
size_t ag_policy_rule_count(const struct ag_policy *p);
struct ag_rule_info {
	const char *id;
	enum ag_action action;
	const char *origin;      /* "file:line:col", and " (overrides file:line:col)" */
	int layer;               /* ag_policy_layer's index */
	int locked;
};
/* Rule i, in file order. 0, or -1 past the end. */
int ag_policy_rule_info(const struct ag_policy *p, size_t i, struct ag_rule_info *out);
const char *ag_policy_rule_origin(const struct ag_policy *p, const char *id);
/* The rule files it was compiled from, lowest first. 0, or -1 past the end. */
int ag_policy_layer(const struct ag_policy *p, int i, const char **name, int *managed);
/* What the hard deny rules on files keep from being deleted, renamed,
 * truncated or written, as plain paths (a file, or a directory and all
 * below it): fn(ctx, path, len) for each. Returns how many of those rules'
 * paths are not plain (a wildcard inside, an exception) and so not given. */
int ag_policy_hard_paths(const struct ag_policy *p,
			 void (*fn)(void *ctx, const char *path, size_t len), void *ctx);
/* Some rule of p names op in its `on:` (cheap: callers skip the rest). */
int ag_policy_has_rules(const struct ag_policy *p, enum ag_op_kind op);

struct ag_verdict {
	enum ag_action action;   /* what the policy says (before mode/enforce) */
	const char *rule_id;     /* NULL when the op's default decided */
	const char *reason;      /* NULL if the rule gave none */
	int hard;                /* the deciding rule is `hard: true` */
	int once;                /* ... `once: true`: one snapshot per object per session */
};

/*
 * Pure: among matching rules the strictest action wins (ties: the first
 * in file order). No match: the op's default (`defaults:`), else allow.
 * Thread-safe, allocation-free, no locks.
 */
void ag_decide(const struct ag_policy *p, const struct ag_op *op,
	       struct ag_verdict *v);

/*
 * Pure, like ag_decide: 1 when op's verdict (into v) is the same for every
 * file directly in op->path's directory, whatever its name, so a caller
 * may use it for the next such op of the same kind and caller; 0 when it
 * may differ by name, or cannot be told (v is then not set). Only for
 * delete, truncate, write and mode of an absolute path, with at most
 * AG_DIR_RULES rules on the op (more: the index decides faster).
 */
#define AG_DIR_RULES 64
int ag_decide_dir(const struct ag_policy *p, const struct ag_op *op, struct ag_verdict *v);

/* The kinds ag_decide_dir answers for. */
static inline int ag_dir_kind(enum ag_op_kind k)
{
	return k == AG_OP_DELETE || k == AG_OP_TRUNCATE || k == AG_OP_WRITE || k == AG_OP_MODE;
}

/* A last component (no '/' in it) that names a file of its directory:
 * not empty, ".", nor "..". */
static inline int ag_plain_name(const char *b)
{
	return b[0] && !(b[0] == '.' && (!b[1] || (b[1] == '.' && !b[2])));
}

/* explain: called once per rule whose matchers match op (before `unless`
 * is applied), saying whether `unless` carved the op out, and why. */
struct ag_explain_item {
	const char *rule_id;
	enum ag_action action;
	const char *reason;
	int excepted;            /* 1: matched but `unless` applied */
	const char *why;         /* e.g. "path matches a workspace glob";
	                            valid only during the callback */
};
typedef void (*ag_explain_fn)(void *ctx, const struct ag_explain_item *item);
void ag_explain(const struct ag_policy *p, const struct ag_op *op,
		ag_explain_fn fn, void *ctx, struct ag_verdict *v);

/* ---- matching primitives (match.c; pure) --------------------------------- */

/* Path glob: `*` `?` `[..]` within one component, `**` any number of
 * components; "dir/ **" (no space) also matches "dir" itself. Returns 1 on match. */
int ag_glob_match(const char *pattern, const char *path);

/* ---- SQL classes (sqlclass.c; pure) -------------------------------------- */

/* Class of a SQL string: when it holds several statements, the most
 * destructive one's class (order: safety_off, drop_database, drop_table,
 * truncate, delete_all, update_all, alter_drop, ddl, delete, update,
 * insert, other, read). len < 0: NUL-terminated. */
enum ag_sql_class ag_sql_classify(const char *sql, long len);

/* The temporary tables one database connection made (the hooks keep one
 * set per connection): dropping or truncating only those destroys nobody's
 * data. Names as written (quotes stripped, `quoted` kept: PostgreSQL folds
 * an unquoted name, so "Foo" and Foo differ); a name the set does not hold
 * is anyone's table. */
#define AG_SQL_TEMPS 8
#define AG_SQL_TEMP_NAME 64
struct ag_sql_temps {
	unsigned n;
	struct ag_sql_temp {
		unsigned char len, quoted;
		unsigned char fresh;   /* made by the text just classified */
		char name[AG_SQL_TEMP_NAME];
	} t[AG_SQL_TEMPS];
};
/* ag_sql_classify, reading the statements in order against *temps (NULL:
 * none) and leaving in it what the connection holds after them: CREATE
 * TEMP TABLE adds (fresh), DROP removes, ROLLBACK/DISCARD empties, a
 * rename or ALTER of one forgets it. Whether the text ran is the caller's
 * to know: it keeps the result only if so. */
enum ag_sql_class ag_sql_classify_temps(const char *sql, long len, struct ag_sql_temps *temps);

/* ---- temporary tables per connection (sqlconns.c; a lock, no I/O) -------- */

/* A connection is `conn` (its client object: PGconn *, MYSQL *, sqlite3 *)
 * in session `gen` (the server's, when the client can tell: a reset or a
 * reused pointer is another connection). What a statement would leave
 * waits for its outcome (ag_sql_ran), and nothing else makes the
 * connection believe in a temporary table. How outcomes are paired with
 * statements: */
enum {
	AG_TEMPS_SENT,     /* by order only: one sent before the last one's outcome
			      came back makes the connection forget, and never
			      learn again (pipelined, or sent and never read) */
	AG_TEMPS_CALL,     /* one call that returns the outcome (sqlite3_exec) */
	AG_TEMPS_PREPARE,  /* compiled only: ag_sql_prepared says what will run */
};
/* The set to read a statement of conn against, into *out: 1, or 0 when the
 * connection has no memory (no room, or it stopped learning). */
int ag_sql_temps_of(const void *conn, long gen, int how, struct ag_sql_temps *out);
/* What the statement read (sql) would leave: kept when ag_sql_ran says it
 * ran. A text that can change the search order (search_path) leaves none. */
void ag_sql_will_leave(const void *conn, long gen, int how, const struct ag_sql_temps *next,
		       const char *sql, size_t len);
/* SQLite: a statement that writes was compiled as `stmt` from the first
 * len bytes of sql (NULL: which part is not known), and its outcome comes
 * from sqlite3_step. (A read, or a failed compile, is not told.) */
void ag_sql_prepared(const void *conn, long gen, const void *stmt, const char *sql, size_t len);
/* The outcome of conn's statement (`stmt`, or NULL when it has no handle):
 * ok, it ran; otherwise it failed, was refused, or it is not known. A
 * statement that is not the one waiting (SQLite's cached one stepped
 * again) empties what the connection believes unless it ran and is
 * harmless (reads only). */
void ag_sql_ran(const void *conn, long gen, const void *stmt, int ok, int harmless);
/* conn ran something whose effect cannot be read (a prepared statement
 * executed later by name): it forgets, and never learns again. */
void ag_sql_stuck(const void *conn, long gen);
/* A statement of conn waits for its outcome. */
int ag_sql_waiting(const void *conn, long gen);
/* conn is closed: what it held goes with it. */
void ag_sql_gone(const void *conn);

/* What a destructive statement names (sqltargets.c; pure): the tables of
 * DROP TABLE, TRUNCATE, DELETE, UPDATE and ALTER TABLE, the schemas of
 * DROP SCHEMA, the databases of DROP DATABASE (and MySQL's DROP SCHEMA),
 * wherever in the text they stand. Unquoted names are folded to lower
 * case unless `mysql`. `unknown`: something there could not be read (a
 * name too long, too many names): the caller must not rely on the list.
 * `cascade`: CASCADE appears. */
#define AG_SQL_TARGETS 16
enum { AG_TARGET_TABLE, AG_TARGET_SCHEMA, AG_TARGET_DATABASE };
struct ag_sql_targets {
	int n, unknown, cascade;
	struct ag_sql_target {
		int kind;
		char schema[64];   /* "" when not qualified */
		char name[64];
	} t[AG_SQL_TARGETS];
};
void ag_sql_targets(const char *sql, long len, int mysql, struct ag_sql_targets *out);

/* ---- paths (path.c) ------------------------------------------------------ */

#define AG_PATH_MAX 4096

/* Pure: join `p` onto absolute `base` (ignored when p is absolute) and
 * remove ".", "..", and repeated slashes. Returns 0, or -1 if too long. */
int ag_path_lexical(const char *base, const char *p, char *out, size_t outlen);

/* Absolute path of `p` relative to dirfd (AT_FDCWD for the cwd), with every
 * symlinked parent directory resolved; the last component is kept as is
 * (not followed). Returns 0, or -1 with errno. */
int ag_path_resolve(int dirfd, const char *p, char *out, size_t outlen);

/* A judged name, which may be longer than PATH_MAX: the kernel limits each
 * path argument to PATH_MAX, not the depth of a tree, so a call relative
 * to a deep directory descriptor or a deep cwd names a file whose absolute
 * name is longer. It starts in the caller's buffer (s, cap) and moves to
 * an anonymous mapping when it outgrows it (no malloc: names are made in
 * signal handlers too); ag_name_free gives the mapping back. Names longer
 * than AG_NAME_MAX are not made (ENAMETOOLONG). */
struct ag_name {
	char *s;
	size_t cap;
	size_t mapped;   /* >0: s is a mapping of this many bytes */
};
#define AG_NAME_MAX (1u << 20)
void ag_name_free(struct ag_name *n);

/* For an operation on the last component of (dirfd, p): open its parent
 * directory (*pfd, O_PATH; the caller closes it when it is not dirfd),
 * point *name at the last component inside p (trailing slashes kept, as
 * the real call must see them), and write the absolute path of that
 * directory (free of symlinks), joined with the name, into out, however
 * long. scratch (at least PATH_MAX bytes) is used meanwhile. For "/", "."
 * and ".." (nothing to act on inside a parent) *pfd and *name are dirfd
 * and p. Returns 0; -1 with the errno the real call would have failed
 * with (p itself PATH_MAX or longer: ENAMETOOLONG, as the kernel says);
 * -2 when the parent is open in *pfd but its name cannot be had (errno:
 * an ancestor that cannot be read, say), and out holds nothing. */
int ag_path_parent(int dirfd, const char *p, struct ag_name *out, char *scratch,
		   size_t scratchlen, int *pfd, const char **name);

/* A plain name (no '/', not "." or "..") in the cwd: out is the cwd as
 * getcwd names it, joined with p; one system call where ag_path_parent
 * makes three. The caller must keep the cwd from moving until its real
 * call is made (guard.c). Where p starts in out (after the cwd's '/'),
 * and out's length in *len; or -1: use ag_path_parent. */
int ag_path_in_cwd(const char *p, struct ag_name *out, size_t *len);

/* The absolute name of what descriptor fd is open on, however long. For a
 * directory it is found by walking up; a file deeper than the kernel
 * names (/proc/self/fd stops at a page) can only be found by its inode in
 * a directory: the one (hintdir, hint) names, if given (where the caller
 * opened it; symlinks there are followed), then the cwd, then each
 * directory this process has open. 0, or -1 with errno (ENAMETOOLONG: it
 * was found nowhere; EBADF: not a file with a name, a pipe say). */
int ag_fd_name(int fd, int hintdir, const char *hint, struct ag_name *out, char *scratch,
	       size_t scratchlen);

/* ---- hashing (hash.c) ---------------------------------------------------- */

#define AG_HASH_HEX 65   /* 64 hex digits + NUL */
struct ag_sha256 { unsigned char ctx[128]; };
void ag_sha256_init(struct ag_sha256 *h);
void ag_sha256_update(struct ag_sha256 *h, const void *data, size_t len);
void ag_sha256_hex(struct ag_sha256 *h, char out[AG_HASH_HEX]);
/* The 32 bytes themselves (the context is spent, as with _hex). */
void ag_sha256_digest(struct ag_sha256 *h, unsigned char out[32]);
void ag_sha256_buf_hex(const void *data, size_t len, char out[AG_HASH_HEX]);
/* SHA-256 of a file's contents; 0 or -1 with errno. */
int ag_sha256_file_hex(const char *path, char out[AG_HASH_HEX]);

/* ---- small shared helpers (util.c) --------------------------------------- */

/* snprintf that fails (-1, errno ENAMETOOLONG) instead of truncating. */
int ag_fmt(char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* CLOCK_REALTIME, in line: every hooked call reads it twice. */
static AG_INLINE int64_t ag_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
int64_t ag_mono_ns(void);                    /* CLOCK_MONOTONIC */
/* Parse "4GiB", "512MB", "100" -> bytes. 0 ok, -1 malformed. */
int ag_parse_size(const char *s, uint64_t *out);
/* Parse "7d", "2h", "30m", "45s" -> ns. 0 ok, -1 malformed. */
int ag_parse_duration(const char *s, int64_t *out);
/* mkdir -p with mode; 0 or -1 with errno. */
int ag_mkdirs(const char *path, mode_t mode);
/* Write data to path atomically (a temporary name, then rename), mode
 * 0400: what a session freezes (its rules, their image) is never rewritten
 * in place. 0, or -1 with errno. */
int ag_write_frozen(const char *path, const void *data, size_t len);
/* A whole regular file of at most AG_RULES_MAX bytes into a NUL-terminated
 * heap buffer; NULL with errno (EINVAL: not a regular file, EFBIG: larger). */
#define AG_RULES_MAX (16u << 20)
char *ag_read_file(const char *path, size_t *len);
/* getenv, except that after ag_env_snapshot (the library's constructor)
 * the session's variables, HOME, XDG_STATE_HOME, TMPDIR and LD_PRELOAD
 * read as they were when the process started. */
const char *ag_getenv(const char *name);
void ag_env_snapshot(void);
/* The default state dir: ${XDG_STATE_HOME:-$HOME/.local/state}/agentguard */
int ag_default_state_dir(char *out, size_t outlen);

/* The chain key of root's default state dir (lib/audit.c). */
#define AG_ROOT_KEY_FILE "/var/lib/agentguard/key"
/*
 * Text made safe to show on a terminal or to a human deciding: control
 * characters (C0, DEL, C1), bidi marks, embeddings, overrides and
 * isolates, zero-width and other invisible formatting characters, line
 * and paragraph separators and bytes that are not valid UTF-8 are shown
 * as visible escapes (\n \r \t, \x1b, \u202e, \xff for a stray byte),
 * and a backslash as \\, so no escape can be forged. Valid printable
 * UTF-8 is kept. Writes at most outlen bytes, always NUL-terminated
 * (unless outlen is 0); when the result does not fit it is cut after a
 * whole character or escape and ends in "...". Returns the length
 * written. in may be NULL (empty). Pure, allocation-free and
 * async-signal-safe: hooks call it in signal handlers and vfork children.
 */
size_t ag_escape_display(const char *in, size_t len, char *out, size_t outlen);
/* Start time of a process (clock ticks since boot, /proc/PID/stat field 22);
 * 0 if unknown. */
uint64_t ag_proc_start(pid_t pid);
/* The container this process runs in: the 64-hex-digit id docker, podman,
 * containerd or CRI-O show in its cgroup or mounts, else "". */
void ag_container_id(char *out, size_t len);

#endif
