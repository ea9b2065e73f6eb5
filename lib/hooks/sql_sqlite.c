/*
 * sql, SQLite: sqlite3_exec and every sqlite3_prepare variant. A statement
 * that needs a snapshot gets an online backup of the database first; a
 * denied one fails with SQLITE_AUTH ("not authorized" from sqlite3_errmsg),
 * produced by SQLite itself under a refusing authorizer. The application's
 * own authorizer is put back afterwards, which is why sqlite3_set_authorizer
 * is watched too.
 *
 * libsqlite3 may arrive late (Python dlopens it), so its functions are
 * found on first use. Debian's libsqlite3 calls its own API through the
 * PLT: sqlite3_exec reaches our sqlite3_prepare_v2, which is the statement
 * already judged (the client's call runs in its scope, ag_sql_enter); the
 * row callback is the application's and runs outside it.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stddef.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floor.h"
#include "guard.h"

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
typedef struct sqlite3_backup sqlite3_backup;
typedef int (*authorizer_fn)(void *, int, const char *, const char *, const char *,
			     const char *);
typedef int (*exec_cb)(void *, int, char **, char **);

#define SQLITE_OK 0
#define SQLITE_DENY 1
#define SQLITE_ERROR 1
#define SQLITE_AUTH 23
#define SQLITE_DONE 101
#define SQLITE_BUSY 5
#define SQLITE_LOCKED 6
#define SQLITE_OPEN_READONLY 0x1
#define SQLITE_OPEN_READWRITE 0x2
#define SQLITE_OPEN_CREATE 0x4

static struct {
	int (*exec)(sqlite3 *, const char *, exec_cb, void *, char **);
	int (*prepare)(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
	int (*prepare_v2)(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
	int (*prepare_v3)(sqlite3 *, const char *, int, unsigned, sqlite3_stmt **, const char **);
	int (*prepare16)(sqlite3 *, const void *, int, sqlite3_stmt **, const void **);
	int (*prepare16_v2)(sqlite3 *, const void *, int, sqlite3_stmt **, const void **);
	int (*prepare16_v3)(sqlite3 *, const void *, int, unsigned, sqlite3_stmt **, const void **);
	int (*set_authorizer)(sqlite3 *, authorizer_fn, void *);
	int (*close)(sqlite3 *);
	int (*close_v2)(sqlite3 *);
	const char *(*db_filename)(sqlite3 *, const char *);
	const char *(*db_name)(sqlite3 *, int);
	int (*finalize)(sqlite3_stmt *);
	int (*step)(sqlite3_stmt *);
	sqlite3 *(*db_handle)(sqlite3_stmt *);
	int (*stmt_readonly)(sqlite3_stmt *);
	int (*errcode)(sqlite3 *);
	int (*open_v2)(const char *, sqlite3 **, int, const char *);
	sqlite3_backup *(*backup_init)(sqlite3 *, const char *, sqlite3 *, const char *);
	int (*backup_step)(sqlite3_backup *, int);
	int (*backup_finish)(sqlite3_backup *);
	char *(*mprintf)(const char *, ...);
	void (*free)(void *);
} S;

/* Python's _sqlite3 loads it RTLD_LOCAL. */
static const char *const sonames[] = {"libsqlite3.so.0", NULL};

static void *lookup(const char *name)
{
	return ag_client_sym(sonames, name);
}

static void resolve(void)
{
#define R(field, name) S.field = lookup(name)
	R(exec, "sqlite3_exec");
	R(prepare, "sqlite3_prepare");
	R(prepare_v2, "sqlite3_prepare_v2");
	R(prepare_v3, "sqlite3_prepare_v3");
	R(prepare16, "sqlite3_prepare16");
	R(prepare16_v2, "sqlite3_prepare16_v2");
	R(prepare16_v3, "sqlite3_prepare16_v3");
	R(set_authorizer, "sqlite3_set_authorizer");
	R(close, "sqlite3_close");
	R(close_v2, "sqlite3_close_v2");
	R(db_filename, "sqlite3_db_filename");
	R(db_name, "sqlite3_db_name");
	R(finalize, "sqlite3_finalize");
	R(step, "sqlite3_step");
	R(db_handle, "sqlite3_db_handle");
	R(stmt_readonly, "sqlite3_stmt_readonly");
	R(errcode, "sqlite3_errcode");
	R(open_v2, "sqlite3_open_v2");
	R(backup_init, "sqlite3_backup_init");
	R(backup_step, "sqlite3_backup_step");
	R(backup_finish, "sqlite3_backup_finish");
	R(mprintf, "sqlite3_mprintf");
	R(free, "sqlite3_free");
#undef R
}

static pthread_once_t resolved = PTHREAD_ONCE_INIT;
#define REAL(field) (pthread_once(&resolved, resolve), S.field)

/* ---- the application's authorizers --------------------------------------- */

static struct authz {
	sqlite3 *db;
	authorizer_fn fn;
	void *arg;
} authz[64];
static pthread_mutex_t authz_mu = PTHREAD_MUTEX_INITIALIZER;

static void authz_set(sqlite3 *db, authorizer_fn fn, void *arg)
{
	pthread_mutex_lock(&authz_mu);
	struct authz *slot = NULL;
	for (size_t i = 0; i < sizeof authz / sizeof authz[0]; i++) {
		if (authz[i].db == db) {
			slot = &authz[i];
			break;
		}
		if (!slot && !authz[i].db)
			slot = &authz[i];
	}
	if (slot)
		*slot = fn ? (struct authz){db, fn, arg} : (struct authz){0};
	pthread_mutex_unlock(&authz_mu);
}

static struct authz authz_get(sqlite3 *db)
{
	struct authz a = {0};

	pthread_mutex_lock(&authz_mu);
	for (size_t i = 0; i < sizeof authz / sizeof authz[0]; i++)
		if (authz[i].db == db)
			a = authz[i];
	pthread_mutex_unlock(&authz_mu);
	return a;
}

AG_EXPORT int sqlite3_set_authorizer(sqlite3 *db, authorizer_fn fn, void *arg)
{
	authz_set(db, fn, arg);
	return REAL(set_authorizer)(db, fn, arg);
}

AG_EXPORT int sqlite3_close(sqlite3 *db)
{
	authz_set(db, NULL, NULL);
	ag_sql_gone(db);
	return REAL(close)(db);
}

AG_EXPORT int sqlite3_close_v2(sqlite3 *db)
{
	authz_set(db, NULL, NULL);
	ag_sql_gone(db);
	return REAL(close_v2)(db);
}

static int refuse_all(void *a, int op, const char *x, const char *y, const char *z,
		      const char *w)
{
	(void)a, (void)op, (void)x, (void)y, (void)z, (void)w;
	return SQLITE_DENY;
}

/* Run `call` with an authorizer that refuses everything, so SQLite fails it
 * with SQLITE_AUTH and its own error message; then put the application's
 * authorizer back. */
#define REFUSED(db, call)                                                       \
	({                                                                      \
		struct authz a_ = authz_get(db);                                \
		S.set_authorizer(db, refuse_all, NULL);                         \
		int r_ = (call);                                                \
		S.set_authorizer(db, a_.fn, a_.arg);                            \
		r_ == SQLITE_OK ? SQLITE_AUTH : r_;                             \
	})

/* ---- deciding ------------------------------------------------------------ */

/* What a snapshot copies: one database (schema) of a connection. */
struct source {
	sqlite3 *db;
	const char *schema;
};

static int copy_db(sqlite3 *dst, sqlite3 *src, const char *schema)
{
	sqlite3_backup *b = S.backup_init(dst, "main", src, schema);
	int rc = b ? S.backup_step(b, -1) : SQLITE_ERROR;
	int fin = b ? S.backup_finish(b) : SQLITE_ERROR;

	return rc == SQLITE_DONE ? fin : rc;
}

/* snapshot: an online backup of the database into the store. SQLite
 * opens and deletes its own files for it through our hooks: that is the
 * guard's own work (ag_own_enter). */
static int backup(struct ag_call *c, void *arg)
{
	struct source *from = arg;
	sqlite3 *dst = NULL;
	const char *file = c->op.path;
	struct ag_snapshot *snap = &c->w->snap;
	char *abs = snap->abs;

	if (!file || !*file)
		return 1;   /* in memory: nothing outlives the connection */
	memset(snap, 0, offsetof(struct ag_snapshot, link_target));
	if (lstat(file, &snap->st) < 0)
		return errno == ENOENT ? 1 : -1;
	unsigned long long r = (unsigned long long)ag_now_ns() ^ ((unsigned long long)getpid() << 20);
	snprintf(snap->id, sizeof snap->id, "%012llx", r & 0xffffffffffffULL);
	snap->kind = "sqlite";
	snap->path = file;
	snap->parent_at = snap->parent_mt = -1;
	if (ag_fmt(snap->store, sizeof snap->store, "snapshots/%s/%s", ag_session_id(),
		   snap->id) < 0 ||
	    ag_fmt(abs, sizeof snap->abs, "%s/snapshots/%s", ag_state_dir(), ag_session_id()) < 0 ||
	    ag_mkdirs(abs, 0700) < 0 ||
	    ag_fmt(abs, sizeof snap->abs, "%s/%s", ag_state_dir(), snap->store) < 0)
		return -1;
	/* Under the floor the store cannot be written: made in stage/, then
	 * moved in (lib/snapshot.h). */
	const char *to = abs;
	if (ag_floor_on()) {
		if (ag_snapshot_stage(ag_state_dir(), ag_session_id(), snap) < 0)
			return -1;
		to = snap->stage;
	}
	sigset_t saved;
	ag_own_enter(&saved);
	int rc = S.open_v2(to, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK)
		rc = copy_db(dst, from->db, from->schema);
	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		/* The connection is in the middle of writing: keep the last
		 * committed state, read through a connection of our own. */
		sqlite3 *ro = NULL;
		rc = S.open_v2(file, &ro, SQLITE_OPEN_READONLY, NULL);
		if (rc == SQLITE_OK)
			rc = copy_db(dst, ro, "main");
		S.close(ro);
	}
	S.close(dst);
	/* Still the guard's own work: the move out of stage/ is no agent's
	 * rename into the store (which the hard rules refuse). */
	if (rc == SQLITE_OK && to != abs && rename(to, abs) < 0)
		rc = SQLITE_ERROR;
	if (rc != SQLITE_OK && to != abs)
		unlink(to);
	ag_own_leave(&saved);
	if (rc != SQLITE_OK) {
		errno = EIO;
		return -1;
	}
	return 0;
}

/* c judged as a statement on one database of the connection: the row
 * names that database's file, and its snapshot copies that database. */
static int judge_schema(struct ag_call *c, sqlite3 *db, const char *schema, const char *sql,
			size_t len, int cls, int temps)
{
	const char *file = S.db_filename ? S.db_filename(db, schema) : NULL;
	struct source from = {db, schema};

	/* `temps`: read against the connection's temporary tables (the
	 * statement's own row; the others a statement writes are copies):
	 * 2 for sqlite3_exec, which runs it, 1 for a prepare, 0 none. */
	ag_set_sql_on(c, sql, len, file && *file ? file : ":memory:", temps ? db : NULL, 0,
		      temps == 2 ? AG_TEMPS_CALL : AG_TEMPS_PREPARE);
	if (file && *file)
		c->op.path = file;   /* a file: the guard's own files stay protected */
	if (cls >= 0)
		c->op.sql_class = cls;
	if (S.open_v2 && S.backup_init && S.backup_step && S.backup_finish) {
		c->snap_fn = backup;
		c->snap_arg = &from;   /* used only inside ag_check */
	}
	return ag_check(c);
}

/* ---- which databases a statement writes ---------------------------------- */

/* ATTACHed databases: a statement may write any of them (DELETE FROM
 * aux.t, or an unqualified name that only aux has), and the connection's
 * main database may be in memory. SQLite itself tells which: compiled
 * under an authorizer, every action names the database it touches. */
#define MAXDB 8
#define SQLITE_CREATE_INDEX 1
#define SQLITE_CREATE_TABLE 2
#define SQLITE_CREATE_TRIGGER 7
#define SQLITE_CREATE_VIEW 8
#define SQLITE_DELETE 9
#define SQLITE_DROP_INDEX 10
#define SQLITE_DROP_TABLE 11
#define SQLITE_DROP_TRIGGER 16
#define SQLITE_DROP_VIEW 17
#define SQLITE_INSERT 18
#define SQLITE_PRAGMA 19
#define SQLITE_UPDATE 23
#define SQLITE_ALTER_TABLE 26
#define SQLITE_REINDEX 27
#define SQLITE_CREATE_VTABLE 29
#define SQLITE_DROP_VTABLE 30

struct written {
	int n, unknown;
	char name[MAXDB][64];
};

static void note(struct written *w, const char *schema)
{
	if (!schema || !strcmp(schema, "temp"))
		return;   /* gone with the connection */
	for (int i = 0; i < w->n; i++)
		if (!strcmp(w->name[i], schema))
			return;
	if (w->n == MAXDB || strlen(schema) >= sizeof w->name[0]) {
		w->unknown = 1;
		return;
	}
	strcpy(w->name[w->n++], schema);
}

static int probe(void *a, int op, const char *x, const char *y, const char *schema,
		 const char *trigger)
{
	struct written *w = a;

	(void)trigger;
	switch (op) {
	case SQLITE_ALTER_TABLE:
		note(w, x);   /* the one action that names it first */
		break;
	case SQLITE_PRAGMA:
		if (y)
			note(w, schema);   /* a pragma set, not read */
		break;
	case SQLITE_CREATE_INDEX: case SQLITE_CREATE_TABLE: case SQLITE_CREATE_TRIGGER:
	case SQLITE_CREATE_VIEW: case SQLITE_DELETE: case SQLITE_DROP_INDEX:
	case SQLITE_DROP_TABLE: case SQLITE_DROP_TRIGGER: case SQLITE_DROP_VIEW:
	case SQLITE_INSERT: case SQLITE_UPDATE: case SQLITE_REINDEX:
	case SQLITE_CREATE_VTABLE: case SQLITE_DROP_VTABLE:
		note(w, schema);
		break;
	}
	return SQLITE_OK;
}

/* More than main and temp. */
static int attached(sqlite3 *db)
{
	return S.db_name && S.db_name(db, 2);
}

/* Every database of the connection (but temp): what a statement that
 * cannot be compiled yet (it needs an earlier one of the same text) may
 * write. */
static void every_database(sqlite3 *db, struct written *w)
{
	const char *name;

	w->n = w->unknown = 0;
	for (int i = 0; (name = S.db_name(db, i)); i++)
		note(w, name);
}

/* Compile each statement of the text (nothing runs) with the probe as
 * the only authorizer, then put the application's back. */
static void written(sqlite3 *db, const char *sql, size_t len, struct written *w)
{
	struct authz a = authz_get(db);
	const char *p = sql, *end = sql + len;

	if (!S.prepare_v2 || !S.finalize || !S.set_authorizer) {
		every_database(db, w);
		return;
	}
	int sv = ag_sql_enter();
	S.set_authorizer(db, probe, w);
	while (p < end && !w->unknown) {
		sqlite3_stmt *st = NULL;
		const char *tail = NULL;
		if (S.prepare_v2(db, p, (int)(end - p), &st, &tail) != SQLITE_OK)
			w->unknown = 1;
		S.finalize(st);
		if (!tail || tail <= p)
			break;
		p = tail;
	}
	S.set_authorizer(db, a.fn, a.arg);
	ag_sql_leave(sv);
	if (w->unknown)
		every_database(db, w);
}

/* 0: run the real call; -1: refuse it (c already recorded and said). A
 * statement that writes several databases is one row per database, each
 * with its own snapshot; c is the first. */
static int judge(struct ag_call *c, sqlite3 *db, const char *sql, size_t len, int temps)
{
	pthread_once(&resolved, resolve);
	if (!attached(db))
		return judge_schema(c, db, "main", sql, len, -1, temps);
	struct written w = {0};
	written(db, sql, len, &w);
	if (judge_schema(c, db, w.n ? w.name[0] : "main", sql, len, -1, temps) < 0)
		return -1;
	for (int i = 1; i < w.n; i++) {
		struct ag_call x;
		ag_begin(&x, AG_OP_SQL);
		if (judge_schema(&x, db, w.name[i], sql, len, -1, 0) < 0) {
			ag_refuse_status(&x, SQLITE_AUTH);
			return -1;
		}
		ag_end_status(&x, SQLITE_OK);
	}
	return 0;
}

static size_t text_len(const char *sql, int n)
{
	return n < 0 ? strlen(sql) : strnlen(sql, (size_t)n);
}

/* sqlite3_exec calls the application back for every row: that callback
 * is the application's own code, judged like any other, so it runs
 * outside the judged statement's scope. */
struct row_cb {
	exec_cb cb;
	void *arg;
	int outer;      /* ag_thread.in_sql outside the statement */
};

static int row_trampoline(void *a, int n, char **vals, char **cols)
{
	struct row_cb *r = a;
	int inner = ag_thread.in_sql;

	ag_sql_leave(r->outer);
	int rc = r->cb(r->arg, n, vals, cols);
	ag_sql_leave(inner);
	return rc;
}

/* The client's real call, in the judged statement's scope: Debian's
 * libsqlite3 reaches our sqlite3_prepare_v2 from inside sqlite3_exec. */
#define IN_SCOPE(call) ({ int sv_ = ag_sql_enter(); int r_ = (call); ag_sql_leave(sv_); r_; })

/* No text, or the client's own nested call for a statement already
 * judged: straight through. Else start guarding it. */
#define SQLITE_BEGIN(field, args)                                               \
	do {                                                                    \
		if (!sql || ag_thread.in_sql)                                   \
			return REAL(field) args;                                \
		ag_begin(&c, AG_OP_SQL);                                        \
	} while (0)

AG_HOOK_VIA(REAL(exec), int, sqlite3_exec,
	    (sqlite3 *db, const char *sql, exec_cb cb, void *arg, char **errmsg),
	    (db, sql, cb, arg, errmsg))
{
	struct ag_call c;
	struct row_cb r = {cb, arg, ag_thread.in_sql};
	exec_cb tcb = cb ? row_trampoline : NULL;

	SQLITE_BEGIN(exec, (db, sql, cb, arg, errmsg));
	if (judge(&c, db, sql, strlen(sql), 2) < 0) {
		int rc = IN_SCOPE(REFUSED(db, S.exec(db, sql, tcb, &r, errmsg)));
		if (errmsg && S.mprintf && S.free) {
			/* sqlite3_exec hands back a message: make it say why. */
			char line[1024];
			ag_describe(&c, line, sizeof line);
			S.free(*errmsg);
			*errmsg = S.mprintf("%s", line);
		}
		ag_sql_ran(db, 0, NULL, 0, 0);
		return ag_refuse_status(&c, rc);
	}
	int rc = IN_SCOPE(S.exec(db, sql, tcb, &r, errmsg));
	ag_sql_ran(db, 0, NULL, rc == SQLITE_OK, 0);
	return ag_end_status(&c, rc);
}

/* What a prepared statement will leave of the connection's temporary
 * tables: its own text's (up to the tail SQLite hands back; without one,
 * or in UTF-16, not known: it then leaves nothing believed), kept when
 * sqlite3_step reports it done. */
static int prepared(sqlite3 *db, int rc, sqlite3_stmt **st, const char *sql, const char *tail)
{
	sqlite3_stmt *s = rc == SQLITE_OK && st ? *st : NULL;

	/* A read changes no table: the shell compiles its own look at
	 * sqlite_master between compiling a CREATE and running it. */
	if (s && S.stmt_readonly && !S.stmt_readonly(s))
		ag_sql_prepared(db, 0, s, tail ? sql : NULL, tail ? (size_t)(tail - sql) : 0);
	return rc;
}

/* The prepare family: only the first statement of the text is compiled,
 * but the whole text is judged (the rest is what the caller prepares
 * next; judging it now errs on the safe side). */
#define PREPARE(field, name, params, args, u8)                                  \
	AG_HOOK_VIA(REAL(field), int, name, params, args)                       \
	{                                                                       \
		struct ag_call c;                                               \
		SQLITE_BEGIN(field, args);                                      \
		if (judge(&c, db, sql, text_len(sql, n), 1) < 0)                \
			return ag_refuse_status(&c,                             \
				IN_SCOPE(REFUSED(db, S.field args)));           \
		int rc_ = IN_SCOPE(S.field args);   /* before *tail is read */ \
		return ag_end_status(&c, prepared(db, rc_, st, sql,             \
						  u8 && tail ? *tail : NULL));  \
	}

PREPARE(prepare, sqlite3_prepare,
	(sqlite3 *db, const char *sql, int n, sqlite3_stmt **st, const char **tail),
	(db, sql, n, st, tail), 1)
PREPARE(prepare_v2, sqlite3_prepare_v2,
	(sqlite3 *db, const char *sql, int n, sqlite3_stmt **st, const char **tail),
	(db, sql, n, st, tail), 1)
PREPARE(prepare_v3, sqlite3_prepare_v3,
	(sqlite3 *db, const char *sql, int n, unsigned fl, sqlite3_stmt **st, const char **tail),
	(db, sql, n, fl, st, tail), 1)

/* UTF-16 text: judged as UTF-8 (the classifier reads bytes). */
static size_t utf16_to_8(const void *in, int n, char *out, size_t cap)
{
	const uint16_t *u = in;
	size_t units = 0, o = 0;

	if (n < 0)
		while (u[units])
			units++;
	else
		units = (size_t)n / 2;
	for (size_t i = 0; i < units && o + 4 < cap; i++) {
		uint32_t ch = u[i];
		if (ch >= 0xd800 && ch < 0xdc00 && i + 1 < units && u[i + 1] >= 0xdc00 && u[i + 1] < 0xe000)
			ch = 0x10000 + ((ch - 0xd800) << 10) + (u[++i] - 0xdc00);
		if (!ch)
			break;
		if (ch < 0x80) {
			out[o++] = (char)ch;
		} else if (ch < 0x800) {
			out[o++] = (char)(0xc0 | ch >> 6);
			out[o++] = (char)(0x80 | (ch & 0x3f));
		} else if (ch < 0x10000) {
			out[o++] = (char)(0xe0 | ch >> 12);
			out[o++] = (char)(0x80 | (ch >> 6 & 0x3f));
			out[o++] = (char)(0x80 | (ch & 0x3f));
		} else {
			out[o++] = (char)(0xf0 | ch >> 18);
			out[o++] = (char)(0x80 | (ch >> 12 & 0x3f));
			out[o++] = (char)(0x80 | (ch >> 6 & 0x3f));
			out[o++] = (char)(0x80 | (ch & 0x3f));
		}
	}
	out[o] = 0;
	return o;
}

#define PREPARE16(field, name, params, args)                                    \
	AG_HOOK_VIA(REAL(field), int, name, params, args)                       \
	{                                                                       \
		struct ag_call c;                                               \
		SQLITE_BEGIN(field, args);                                      \
		char *u8 = malloc(1 << 16);                                     \
		size_t l = u8 ? utf16_to_8(sql, n, u8, 1 << 16) : 0;           \
		int no = !u8 || judge(&c, db, u8, l, 1) < 0;                    \
		int rc = no ? ag_refuse_status(&c, IN_SCOPE(REFUSED(db, S.field args))) \
			    : ag_end_status(&c, prepared(db, IN_SCOPE(S.field args), st, \
							 NULL, NULL));          \
		free(u8);                                                       \
		return rc;                                                      \
	}

PREPARE16(prepare16, sqlite3_prepare16,
	  (sqlite3 *db, const void *sql, int n, sqlite3_stmt **st, const void **tail),
	  (db, sql, n, st, tail))
PREPARE16(prepare16_v2, sqlite3_prepare16_v2,
	  (sqlite3 *db, const void *sql, int n, sqlite3_stmt **st, const void **tail),
	  (db, sql, n, st, tail))
PREPARE16(prepare16_v3, sqlite3_prepare16_v3,
	  (sqlite3 *db, const void *sql, int n, unsigned fl, sqlite3_stmt **st, const void **tail),
	  (db, sql, n, fl, st, tail))

/* A statement done (or failed): the outcome of the one its connection's
 * temporary tables wait for, or, for another (a cached statement stepped
 * again), what it may have changed. Rows are not outcomes. */
AG_HOOK_VIA(REAL(step), int, sqlite3_step, (sqlite3_stmt *st), (st))
{
	int rc = REAL(step)(st);
	if (rc == 100 /* SQLITE_ROW */ || !st || ag_thread.in_sql || !S.db_handle || !S.stmt_readonly)
		return rc;
	int e = errno;
	ag_sql_ran(S.db_handle(st), 0, st, rc == SQLITE_DONE, S.stmt_readonly(st));
	errno = e;
	return rc;
}

/* ---- the online backup API ----------------------------------------------- */

/* The shell's .restore and .backup, Python's Connection.backup: no SQL,
 * and the destination database's whole content is replaced. Into an
 * existing non-empty file that is a drop_database of the destination (a
 * class of its own would leave every rule that lists the destructive
 * classes blind to it). The guard's own snapshots call the real function
 * (and run as its own work). */
AG_HOOK_VIA(REAL(backup_init), sqlite3_backup *, sqlite3_backup_init,
	    (sqlite3 *dst, const char *dname, sqlite3 *src, const char *sname),
	    (dst, dname, src, sname))
{
	struct ag_call c;
	struct stat st;

	pthread_once(&resolved, resolve);
	const char *to = dname ? dname : "main";
	const char *file = dst && S.db_filename ? S.db_filename(dst, to) : NULL;
	if (ag_thread.in_sql || !file || !*file || stat(file, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size == 0)
		return S.backup_init(dst, dname, src, sname);   /* nothing there to lose */
	const char *from = src && S.db_filename ? S.db_filename(src, sname ? sname : "main") : NULL;
	char text[512];
	int n = snprintf(text, sizeof text, "sqlite3_backup_init(%s <- '%s' %s)", to,
			 from && *from ? from : ":memory:", sname ? sname : "main");
	if (n < 0 || n >= (int)sizeof text)
		n = (int)strlen(text);
	ag_begin(&c, AG_OP_SQL);
	if (judge_schema(&c, dst, to, text, (size_t)n, AG_SQL_DROP_DATABASE, 0) < 0) {
		/* NULL with the error on the destination, as SQLite reports its
		 * own refusals: a statement refused by the authorizer sets it. */
		if (S.exec)
			IN_SCOPE(REFUSED(dst, S.exec(dst, "SELECT 1", NULL, NULL, NULL)));
		ag_refuse_status(&c, SQLITE_AUTH);
		return NULL;
	}
	sqlite3_backup *b = S.backup_init(dst, dname, src, sname);
	ag_end_status(&c, b ? SQLITE_OK : S.errcode ? S.errcode(dst) : SQLITE_ERROR);
	return b;
}
