/* lib/audit.c: audit.db, spool ingest, and the hash chain verify walks. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stddef.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentguard.h"
#include "audit.h"
#include "helpers.h"
#include "snapshot.h"
#include "spool.h"

static char S[AG_PATH_MAX];        /* state dir */
static const char *const ARGV[] = {"prog", "arg one", "", "last", NULL};
static const char ARGV_JSON[] = "[\"prog\",\"arg one\",\"\",\"last\"]";

static void setup(void)
{
	ut_mkdtemp(S, sizeof S);
}

static void teardown(void)
{
	ut_rmrf(S);
}

TestSuite(audit_open, .init = setup, .fini = teardown);
TestSuite(audit_ingest, .init = setup, .fini = teardown);
TestSuite(audit_verify, .init = setup, .fini = teardown);

/* ---- small SQL helpers ------------------------------------------------------ */

static sqlite3_stmt *q(sqlite3 *db, const char *fmt, va_list ap)
{
	char *sql = sqlite3_vmprintf(fmt, ap);
	sqlite3_stmt *st = NULL;

	cr_assert_not_null(sql);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
		     sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "no row: %s", sql);
	sqlite3_free(sql);
	return st;
}

/* One integer; sqlite3_mprintf formatting (%Q quotes). */
static int64_t qi(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sqlite3_stmt *st = q(db, fmt, ap);
	va_end(ap);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* One text value, malloc'd; NULL for SQL NULL. */
static char *qs(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sqlite3_stmt *st = q(db, fmt, ap);
	va_end(ap);
	const unsigned char *t = sqlite3_column_text(st, 0);
	char *v = t ? strdup((const char *)t) : NULL;
	sqlite3_finalize(st);
	return v;
}

static int is_null(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sqlite3_stmt *st = q(db, fmt, ap);
	va_end(ap);
	int n = sqlite3_column_type(st, 0) == SQLITE_NULL;
	sqlite3_finalize(st);
	return n;
}

static void sql(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	char *err = NULL;

	va_start(ap, fmt);
	char *s = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	cr_assert_eq(sqlite3_exec(db, s, NULL, NULL, &err), SQLITE_OK, "%s: %s", s, err);
	sqlite3_free(s);
}

static void expect_text(sqlite3 *db, const char *want, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sqlite3_stmt *st = q(db, fmt, ap);
	va_end(ap);
	const unsigned char *t = sqlite3_column_text(st, 0);
	if (!want)
		cr_expect_null(t, "%s: want NULL, got %s", sqlite3_sql(st), (const char *)t);
	else if (!t)
		cr_expect_fail("%s: want %s, got NULL", sqlite3_sql(st), want);
	else
		cr_expect_str_eq((const char *)t, want, "%s", sqlite3_sql(st));
	sqlite3_finalize(st);
}

static sqlite3 *open_rw(void)
{
	char err[1024] = "";
	sqlite3 *db = ag_audit_open(S, 0, err, sizeof err);

	cr_assert_not_null(db, "open: %s", err);
	return db;
}

static long ingest(sqlite3 *db, int all)
{
	char err[1024] = "";
	long n = ag_audit_ingest(db, S, all, err, sizeof err);

	cr_assert_geq(n, 0, "ingest: %s", err);
	return n;
}

static int verify(sqlite3 *db, const char *session, char *msg, size_t msglen)
{
	msg[0] = 0;
	return ag_audit_verify(db, session, msg, msglen);
}

static void expect_intact(sqlite3 *db)
{
	char msg[1024];
	int rc = verify(db, NULL, msg, sizeof msg);

	cr_expect_eq(rc, 0, "verify: %d %s", rc, msg);
}

/* ---- writing spools the way the runtime does (guard.c) ---------------------- */

static void spool_init(struct ag_spool *sp, const char *session)
{
	memset(sp, 0, sizeof *sp);
	sp->state_dir = S;
	sp->session = session;
	sp->argv = ARGV;
}

/* guard.c record_session() */
static void write_session(struct ag_spool *sp, const char *id, int64_t start)
{
	static const char argv[] = "agent\0--flag";
	int64_t enforce = 1;
	char ws[AG_PATH_MAX];

	ut_fmt(ws, sizeof ws, "%s/ws", S);
#define F(tag, s) {tag, (uint32_t)strlen(s), s}
	struct ag_field f[] = {
		F(AG_T_SESSION, id), {AG_T_ARGV, sizeof argv, argv},
		F(AG_T_MODE, "autonomous"), {AG_T_ENFORCE, 8, &enforce},
		F(AG_T_RULES, "builtin:default.yaml"), F(AG_T_RULES_HASH, "cafe"),
		{AG_T_WORKSPACE, (uint32_t)strlen(ws), ws}, {AG_T_STATE_DIR, (uint32_t)strlen(S), S},
		{AG_T_START, 8, &start},
	};
#undef F
	cr_assert_eq(ag_spool_append(sp, AG_REC_SESSION, 0, start, 0, f,
				     (int)(sizeof f / sizeof f[0]), NULL), 0);
}

struct ev {
	const char *op, *path, *target, *decision, *rule, *reason;
	int64_t enforced;
	int32_t err;
	int64_t time_ns, latency_ns;
	const struct ag_snapshot *snap;
};

/* guard.c record() */
static void write_event(struct ag_spool *sp, const struct ev *e, struct ag_spool_mark *mark)
{
	struct ag_field f[24];
	int n = 0;
	int64_t mode, uid, gid, at, mt, size;

#define ADD(tag, s) do { if (s) f[n++] = (struct ag_field){tag, (uint32_t)strlen(s), s}; } while (0)
#define ADDI(tag, p) (f[n++] = (struct ag_field){tag, 8, p})
	ADD(AG_T_OP, e->op);
	ADD(AG_T_PATH, e->path);
	ADD(AG_T_TARGET, e->target);
	ADD(AG_T_DECISION, e->decision);
	ADDI(AG_T_ENFORCED, &e->enforced);
	ADD(AG_T_RULE, e->rule);
	ADD(AG_T_REASON, e->reason);
	if (e->snap) {
		const struct ag_snapshot *s = e->snap;
		mode = s->st.st_mode;
		uid = s->st.st_uid;
		gid = s->st.st_gid;
		at = (int64_t)s->st.st_atim.tv_sec * 1000000000 + s->st.st_atim.tv_nsec;
		mt = (int64_t)s->st.st_mtim.tv_sec * 1000000000 + s->st.st_mtim.tv_nsec;
		size = s->st.st_size;
		ADD(AG_T_SNAP_ID, s->id);
		ADD(AG_T_KIND, s->kind);
		ADDI(AG_T_MODE_BITS, &mode);
		ADDI(AG_T_UID, &uid);
		ADDI(AG_T_GID, &gid);
		ADDI(AG_T_ATIME, &at);
		ADDI(AG_T_MTIME, &mt);
		ADDI(AG_T_SIZE, &size);
		ADD(AG_T_SNAPSHOT, s->path);
		if (s->link_target[0])
			ADD(AG_T_LINK, s->link_target);
		if (s->store[0])
			ADD(AG_T_STORE, s->store);
	}
#undef ADD
#undef ADDI
	cr_assert_eq(ag_spool_append(sp, AG_REC_EVENT, e->err, e->time_ns, e->latency_ns,
				     f, n, mark), 0, "append: %s", strerror(errno));
}

static void write_simple(struct ag_spool *sp, const char *path, int64_t t)
{
	struct ev e = {.op = "delete", .path = path, .decision = "allow", .err = 0,
		       .time_ns = t, .latency_ns = 5};
	write_event(sp, &e, NULL);
}

static void write_gap(struct ag_spool *sp, const char *what, int64_t t)
{
	struct ag_field g = {AG_T_WHAT, (uint32_t)strlen(what), what};
	cr_assert_eq(ag_spool_append(sp, AG_REC_GAP, 0, t, 0, &g, 1, NULL), 0);
}

static int nspools(void)
{
	char paths[8][AG_PATH_MAX];
	return ut_spools(S, paths, 8);
}

/* ---- open ------------------------------------------------------------------- */

Test(audit_open, creates_state_dir_and_schema)
{
	char dir[AG_PATH_MAX], err[1024] = "";
	struct stat st;

	ut_fmt(dir, sizeof dir, "%s/deep/state", S);
	sqlite3 *db = ag_audit_open(dir, 0, err, sizeof err);
	cr_assert_not_null(db, "%s", err);
	cr_assert_eq(stat(dir, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0700);
	static const char *const tables[] = {"meta", "sessions", "events", "snapshots", "gaps"};
	for (size_t i = 0; i < 5; i++)
		cr_expect_eq(qi(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=%Q",
				tables[i]), 1, "table %s", tables[i]);
	expect_text(db, "1", "SELECT value FROM meta WHERE key='schema'");
	expect_text(db, "wal", "PRAGMA journal_mode");
	/* Every column the report's JSON names. */
	static const char *const evcols[] = {
		"id", "uid", "time_ns", "session", "pid", "ppid", "proc_start", "exe", "argv",
		"cwd", "op", "path", "target", "address", "host", "port", "sql", "sql_class",
		"database", "rule", "decision", "enforced", "reason", "errno", "snapshot",
		"latency_ns", "prev_hash", "hash",
	};
	for (size_t i = 0; i < sizeof evcols / sizeof evcols[0]; i++)
		cr_expect_eq(qi(db, "SELECT count(*) FROM pragma_table_info('events') WHERE name=%Q",
				evcols[i]), 1, "events.%s", evcols[i]);
	ag_audit_close(db);

	/* Opening again is fine and keeps one schema row, and one chain key. */
	db = ag_audit_open(dir, 0, err, sizeof err);
	cr_assert_not_null(db, "%s", err);
	cr_expect_eq(qi(db, "SELECT count(*) FROM meta WHERE key = 'schema'"), 1);
	cr_expect_eq(qi(db, "SELECT count(*) FROM meta WHERE key = 'chain_key'"), 1);
	ag_audit_close(db);

	db = ag_audit_open(dir, 1, err, sizeof err);
	cr_assert_not_null(db, "readonly: %s", err);
	cr_expect_neq(sqlite3_exec(db, "INSERT INTO gaps(what) VALUES('x')", NULL, NULL, NULL),
		      SQLITE_OK, "a readonly handle wrote");
	ag_audit_close(db);
}

Test(audit_open, readonly_missing_says_no_audit_log)
{
	char dir[AG_PATH_MAX], err[1024] = "", db_path[AG_PATH_MAX];
	struct stat st;

	cr_expect_null(ag_audit_open(S, 1, err, sizeof err));
	cr_expect_not_null(strstr(err, "no audit log"), "message: %s", err);
	ut_fmt(db_path, sizeof db_path, "%s/audit.db", S);
	cr_expect_eq(lstat(db_path, &st), -1, "a readonly open created the file");

	ut_fmt(dir, sizeof dir, "%s/not-there", S);
	err[0] = 0;
	cr_expect_null(ag_audit_open(dir, 1, err, sizeof err));
	cr_expect_not_null(strstr(err, "no audit log"), "message: %s", err);
	cr_expect_eq(lstat(dir, &st), -1, "a readonly open created the state dir");
}

static void expect_damaged(const void *bytes, size_t len)
{
	char p[AG_PATH_MAX], err[1024];

	ut_fmt(p, sizeof p, "%s/audit.db", S);
	ut_write(p, bytes, len);
	for (int ro = 0; ro < 2; ro++) {
		err[0] = 0;
		sqlite3 *db = ag_audit_open(S, ro, err, sizeof err);
		cr_expect_null(db, "opened a damaged audit log (readonly=%d)", ro);
		if (db)
			ag_audit_close(db);
		cr_expect_not_null(strstr(err, "damaged"), "readonly=%d: %s", ro, err);
		cr_expect_not_null(strstr(err, p), "the message names the file: %s", err);
	}
	/* "nothing was changed" */
	size_t got;
	char *now = ut_read(p, &got);
	cr_expect_eq(got, len);
	cr_expect_eq(memcmp(now, bytes, len), 0);
	free(now);
}

Test(audit_open, garbage_file_is_damaged)
{
	static char junk[8192];
	unsigned x = 99;

	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)rand_r(&x);
	expect_damaged(junk, sizeof junk);
}

Test(audit_open, text_file_is_damaged)
{
	static const char text[] =
		"this was supposed to be a database but somebody wrote notes here\n"
		"and more notes, long enough to be more than a header's worth of bytes,\n"
		"so that nothing about it looks like an empty file to SQLite at all.\n";
	expect_damaged(text, sizeof text - 1);
}

Test(audit_open, db_symlink_is_not_followed)
{
	char link[AG_PATH_MAX], target[AG_PATH_MAX], err[1024] = "";
	struct stat st;

	ut_fmt(target, sizeof target, "%s/elsewhere.db", S);
	ut_fmt(link, sizeof link, "%s/audit.db", S);
	cr_assert_eq(symlink(target, link), 0);
	sqlite3 *db = ag_audit_open(S, 0, err, sizeof err);
	cr_expect_null(db);
	if (db)
		ag_audit_close(db);
	cr_expect_eq(lstat(target, &st), -1, "the symlink's target was created");
}

/* ---- sessions --------------------------------------------------------------- */

Test(audit_open, session_begin_end_latest)
{
	sqlite3 *db = open_rw();
	char err[256], out[64];
	struct ag_session_info a = {
		.id = "s-old", .argv_json = "[\"a\"]", .mode = "supervised", .enforce = 0,
		.rules = "/r.yaml", .rules_hash = "h1", .workspace = "/ws", .state_dir = S,
		.pid = 42, .start_ns = 1000,
	};
	struct ag_session_info b = a;
	b.id = "s-new";
	b.start_ns = 2000;

	cr_expect_eq(ag_audit_latest_session(db, out, sizeof out), -1, "no session yet");
	cr_assert_eq(ag_audit_session_begin(db, &a, err, sizeof err), 0, "%s", err);
	cr_assert_eq(ag_audit_session_begin(db, &b, err, sizeof err), 0, "%s", err);
	cr_assert_eq(ag_audit_session_begin(db, &a, err, sizeof err), 0, "again: %s", err);
	cr_expect_eq(qi(db, "SELECT count(*) FROM sessions"), 2);
	expect_text(db, "supervised", "SELECT mode FROM sessions WHERE id='s-old'");
	expect_text(db, "/r.yaml", "SELECT rules FROM sessions WHERE id='s-old'");
	cr_expect_eq(qi(db, "SELECT pid FROM sessions WHERE id='s-old'"), 42);
	cr_expect_eq(qi(db, "SELECT enforce FROM sessions WHERE id='s-old'"), 0);
	/* A session with no events: head is its genesis, and it verifies. */
	char *g = qs(db, "SELECT genesis FROM sessions WHERE id='s-old'");
	cr_assert_not_null(g);
	cr_expect_eq(strlen(g), 64);
	expect_text(db, g, "SELECT head FROM sessions WHERE id='s-old'");
	free(g);
	expect_intact(db);

	cr_assert_eq(ag_audit_latest_session(db, out, sizeof out), 0);
	cr_expect_str_eq(out, "s-new");
	cr_assert_eq(ag_audit_session_end(db, "s-old", 5000, 3, err, sizeof err), 0, "%s", err);
	cr_expect_eq(qi(db, "SELECT end_ns FROM sessions WHERE id='s-old'"), 5000);
	cr_expect_eq(qi(db, "SELECT exit_status FROM sessions WHERE id='s-old'"), 3);
	cr_expect(is_null(db, "SELECT end_ns FROM sessions WHERE id='s-new'"));
	ag_audit_close(db);
}

/* ---- ingest ----------------------------------------------------------------- */

Test(audit_ingest, no_spools_is_zero)
{
	sqlite3 *db = open_rw();

	cr_expect_eq(ingest(db, 0), 0);
	cr_expect_eq(ingest(db, 1), 0);
	ag_audit_close(db);
}

/* When no process maps a spool, the list of mapped spools is empty and its
 * array NULL; sorting and searching it used to hand qsort and bsearch that
 * NULL, which is undefined (make asan's UBSan stops on it). A finished
 * spool must still be ingested and deleted. */
Test(audit_ingest, finished_spool_when_none_is_mapped)
{
	pid_t kid = fork();
	cr_assert_geq(kid, 0);
	if (kid == 0) {
		struct ag_spool sp;
		spool_init(&sp, "sessN");
		write_session(&sp, "sessN", 10);
		write_simple(&sp, "/n/a", 20);
		_exit(0);
	}
	int status;
	cr_assert_eq(waitpid(kid, &status, 0), kid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 0), 1);
	cr_expect_eq(nspools(), 0);
	cr_expect_eq(qi(db, "SELECT count(*) FROM events WHERE path='/n/a'"), 1);
	ag_audit_close(db);
}

Test(audit_ingest, session_events_and_snapshot_rows)
{
	struct ag_spool sp;
	struct ag_spool_mark m;
	struct ag_snapshot snap;
	char victim[AG_PATH_MAX], dir[AG_PATH_MAX], name[128], cwd[AG_PATH_MAX], exe[AG_PATH_MAX];

	ut_fmt(dir, sizeof dir, "%s/ws", S);
	cr_assert_eq(mkdir(dir, 0755), 0);
	ut_fmt(victim, sizeof victim, "%s/ws/victim.txt", S);
	ut_write_str(victim, "content to keep\n");
	cr_assert_eq(ag_snapshot_take(S, "sessA", victim, AG_SNAP_TAKE, &snap), 0);
	cr_assert_eq(chdir(dir), 0);
	cr_assert_not_null(getcwd(cwd, sizeof cwd));

	spool_init(&sp, "sessA");
	write_session(&sp, "sessA", 777);
	struct ev e1 = {.op = "delete", .path = "/ws/a", .decision = "allow", .err = -1,
			.time_ns = 1001, .latency_ns = 11};
	struct ev e2 = {.op = "rename", .path = "/ws/b", .target = "/ws/c", .decision = "deny",
			.rule = "no-rename", .reason = "because", .enforced = 1, .err = -1,
			.time_ns = 1002, .latency_ns = 12};
	struct ev e3 = {.op = "delete", .path = victim, .decision = "snapshot",
			.rule = "snapshot-workspace", .enforced = 1, .err = 0,
			.time_ns = 1003, .latency_ns = 13, .snap = &snap};
	write_event(&sp, &e1, NULL);
	write_event(&sp, &e2, &m);
	ag_spool_patch_errno(&sp, &m, EACCES);
	write_event(&sp, &e3, NULL);
	write_gap(&sp, "2 decisions could not be recorded", 999);
	snprintf(name, sizeof name, "%s", sp.name);
	/* The writer is done with it, as if it had exited. */
	ag_spool_forget(&sp);
	cr_assert_eq(unlink(victim), 0);
	cr_assert_eq(nspools(), 1);

	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 0), 3);
	cr_expect_eq(nspools(), 0, "an ingested, finished spool is deleted");

	/* sessions */
	cr_expect_eq(qi(db, "SELECT count(*) FROM sessions"), 1);
	expect_text(db, "[\"agent\",\"--flag\"]", "SELECT argv FROM sessions WHERE id='sessA'");
	expect_text(db, "autonomous", "SELECT mode FROM sessions WHERE id='sessA'");
	cr_expect_eq(qi(db, "SELECT enforce FROM sessions WHERE id='sessA'"), 1);
	expect_text(db, "builtin:default.yaml", "SELECT rules FROM sessions WHERE id='sessA'");
	expect_text(db, "cafe", "SELECT rules_hash FROM sessions WHERE id='sessA'");
	expect_text(db, dir, "SELECT workspace FROM sessions WHERE id='sessA'");
	expect_text(db, S, "SELECT state_dir FROM sessions WHERE id='sessA'");
	cr_expect_eq(qi(db, "SELECT pid FROM sessions WHERE id='sessA'"), getpid());
	cr_expect_eq(qi(db, "SELECT start_ns FROM sessions WHERE id='sessA'"), 777);
	cr_expect_eq(qi(db, "SELECT events FROM sessions WHERE id='sessA'"), 3);

	/* events: one row per decision, chain order, process fields from PROC */
	cr_assert_eq(qi(db, "SELECT count(*) FROM events"), 3);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	cr_assert_gt(n, 0);
	exe[n] = 0;
	/* Record seqs: PROC 1, SESSION 2, events 3..5. */
	for (int i = 0; i < 3; i++) {
		char uid[200];
		snprintf(uid, sizeof uid, "%s:%d", name, i + 3);
		int64_t id = qi(db, "SELECT id FROM events WHERE uid=%Q", uid);
		cr_expect_eq(qi(db, "SELECT count(*) FROM events WHERE id < %lld",
				(long long)id), i, "uid %s out of order", uid);
		expect_text(db, "sessA", "SELECT session FROM events WHERE id=%lld", (long long)id);
		cr_expect_eq(qi(db, "SELECT time_ns FROM events WHERE id=%lld", (long long)id), 1001 + i);
		cr_expect_eq(qi(db, "SELECT latency_ns FROM events WHERE id=%lld", (long long)id), 11 + i);
		cr_expect_eq(qi(db, "SELECT pid FROM events WHERE id=%lld", (long long)id), getpid());
		cr_expect_eq(qi(db, "SELECT ppid FROM events WHERE id=%lld", (long long)id), getppid());
		cr_expect_eq(qi(db, "SELECT proc_start FROM events WHERE id=%lld", (long long)id),
			     (int64_t)ag_proc_start(getpid()));
		expect_text(db, exe, "SELECT exe FROM events WHERE id=%lld", (long long)id);
		expect_text(db, ARGV_JSON, "SELECT argv FROM events WHERE id=%lld", (long long)id);
		expect_text(db, cwd, "SELECT cwd FROM events WHERE id=%lld", (long long)id);
		cr_expect(is_null(db, "SELECT address FROM events WHERE id=%lld", (long long)id));
		cr_expect(is_null(db, "SELECT port FROM events WHERE id=%lld", (long long)id));
	}
	char uid1[200], uid2[200], uid3[200];
	snprintf(uid1, sizeof uid1, "%s:3", name);
	snprintf(uid2, sizeof uid2, "%s:4", name);
	snprintf(uid3, sizeof uid3, "%s:5", name);
	expect_text(db, "delete", "SELECT op FROM events WHERE uid=%Q", uid1);
	expect_text(db, "/ws/a", "SELECT path FROM events WHERE uid=%Q", uid1);
	expect_text(db, NULL, "SELECT target FROM events WHERE uid=%Q", uid1);
	expect_text(db, "allow", "SELECT decision FROM events WHERE uid=%Q", uid1);
	expect_text(db, NULL, "SELECT rule FROM events WHERE uid=%Q", uid1);
	cr_expect_eq(qi(db, "SELECT enforced FROM events WHERE uid=%Q", uid1), 0);
	cr_expect(is_null(db, "SELECT errno FROM events WHERE uid=%Q", uid1),
		  "err -1 (the process died inside the call) must be NULL");
	cr_expect(is_null(db, "SELECT snapshot FROM events WHERE uid=%Q", uid1));

	expect_text(db, "rename", "SELECT op FROM events WHERE uid=%Q", uid2);
	expect_text(db, "/ws/c", "SELECT target FROM events WHERE uid=%Q", uid2);
	expect_text(db, "deny", "SELECT decision FROM events WHERE uid=%Q", uid2);
	expect_text(db, "no-rename", "SELECT rule FROM events WHERE uid=%Q", uid2);
	expect_text(db, "because", "SELECT reason FROM events WHERE uid=%Q", uid2);
	cr_expect_eq(qi(db, "SELECT enforced FROM events WHERE uid=%Q", uid2), 1);
	cr_expect_eq(qi(db, "SELECT errno FROM events WHERE uid=%Q", uid2), EACCES);

	expect_text(db, "snapshot", "SELECT decision FROM events WHERE uid=%Q", uid3);
	cr_expect_eq(qi(db, "SELECT errno FROM events WHERE uid=%Q", uid3), 0);
	cr_expect(!is_null(db, "SELECT errno FROM events WHERE uid=%Q", uid3), "errno 0 is not NULL");
	expect_text(db, snap.id, "SELECT snapshot FROM events WHERE uid=%Q", uid3);

	/* the chain: genesis -> e1 -> e2 -> e3 = head */
	char *genesis = qs(db, "SELECT genesis FROM sessions WHERE id='sessA'");
	cr_assert_not_null(genesis);
	expect_text(db, genesis, "SELECT prev_hash FROM events WHERE uid=%Q", uid1);
	char *h1 = qs(db, "SELECT hash FROM events WHERE uid=%Q", uid1);
	char *h3 = qs(db, "SELECT hash FROM events WHERE uid=%Q", uid3);
	cr_assert_not_null(h1);
	cr_assert_not_null(h3);
	cr_expect_eq(strlen(h1), 64);
	cr_expect_eq(strspn(h1, "0123456789abcdef"), 64);
	expect_text(db, h1, "SELECT prev_hash FROM events WHERE uid=%Q", uid2);
	cr_expect_eq(qi(db, "SELECT count(*) FROM events e JOIN events p ON e.prev_hash = p.hash "
			"WHERE e.uid=%Q AND p.uid=%Q", uid3, uid2), 1);
	expect_text(db, h3, "SELECT head FROM sessions WHERE id='sessA'");
	cr_expect_eq(qi(db, "SELECT count(DISTINCT hash) FROM events"), 3);
	free(genesis);
	free(h1);
	free(h3);

	/* the snapshot's metadata */
	cr_assert_eq(qi(db, "SELECT count(*) FROM snapshots"), 1);
	expect_text(db, snap.id, "SELECT id FROM snapshots");
	expect_text(db, "sessA", "SELECT session FROM snapshots");
	expect_text(db, uid3, "SELECT event_uid FROM snapshots");
	expect_text(db, "file", "SELECT kind FROM snapshots");
	expect_text(db, victim, "SELECT path FROM snapshots");
	expect_text(db, snap.store, "SELECT store FROM snapshots");
	expect_text(db, NULL, "SELECT link_target FROM snapshots");
	cr_expect_eq(qi(db, "SELECT mode FROM snapshots"), (int64_t)snap.st.st_mode);
	cr_expect_eq(qi(db, "SELECT uid FROM snapshots"), (int64_t)snap.st.st_uid);
	cr_expect_eq(qi(db, "SELECT gid FROM snapshots"), (int64_t)snap.st.st_gid);
	cr_expect_eq(qi(db, "SELECT size FROM snapshots"), 16);
	cr_expect_eq(qi(db, "SELECT mtime_ns FROM snapshots"),
		     (int64_t)snap.st.st_mtim.tv_sec * 1000000000 + snap.st.st_mtim.tv_nsec);
	cr_expect_eq(qi(db, "SELECT atime_ns FROM snapshots"),
		     (int64_t)snap.st.st_atim.tv_sec * 1000000000 + snap.st.st_atim.tv_nsec);
	cr_expect_eq(qi(db, "SELECT created_ns FROM snapshots"), 1003);
	cr_expect(is_null(db, "SELECT restored_ns FROM snapshots"));
	char sha[AG_HASH_HEX];
	ag_sha256_buf_hex("content to keep\n", 16, sha);
	expect_text(db, sha, "SELECT sha256 FROM snapshots");

	/* the gap */
	cr_assert_eq(qi(db, "SELECT count(*) FROM gaps"), 1);
	expect_text(db, "sessA", "SELECT session FROM gaps");
	expect_text(db, "2 decisions could not be recorded", "SELECT what FROM gaps");
	cr_expect_eq(qi(db, "SELECT time_ns FROM gaps"), 999);
	cr_expect_eq(qi(db, "SELECT pid FROM gaps"), getpid());

	expect_intact(db);
	/* Nothing left to ingest. */
	cr_expect_eq(ingest(db, 1), 0);
	cr_expect_eq(qi(db, "SELECT count(*) FROM events"), 3);
	ag_audit_close(db);
}

Test(audit_ingest, symlink_snapshot_row)
{
	struct ag_spool sp;
	struct ag_snapshot snap;
	char link[AG_PATH_MAX];

	ut_fmt(link, sizeof link, "%s/l", S);
	cr_assert_eq(symlink("../some/target", link), 0);
	cr_assert_eq(ag_snapshot_take(S, "sessL", link, AG_SNAP_TAKE, &snap), 0);
	spool_init(&sp, "sessL");
	struct ev e = {.op = "delete", .path = link, .decision = "snapshot", .err = 0,
		       .time_ns = 5, .snap = &snap};
	write_event(&sp, &e, NULL);
	ag_spool_forget(&sp);

	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 0), 1);
	expect_text(db, "symlink", "SELECT kind FROM snapshots");
	expect_text(db, "../some/target", "SELECT link_target FROM snapshots");
	expect_text(db, snap.store, "SELECT store FROM snapshots");
	expect_text(db, NULL, "SELECT sha256 FROM snapshots");
	/* A session first seen through its events gets a placeholder row. */
	cr_expect_eq(qi(db, "SELECT count(*) FROM sessions WHERE id='sessL'"), 1);
	cr_expect_eq(qi(db, "SELECT events FROM sessions WHERE id='sessL'"), 1);
	expect_intact(db);
	ag_audit_close(db);
}

/* Children write their own spools; once they exit the spools are moved
 * in and deleted, and the session's chain runs through all of them. */
Test(audit_ingest, finished_child_spools_are_moved_and_deleted)
{
	pid_t kids[2];

	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		cr_assert_geq(kids[k], 0);
		if (kids[k] == 0) {
			struct ag_spool sp;
			spool_init(&sp, "sessK");
			if (k == 0)
				write_session(&sp, "sessK", 50);
			write_simple(&sp, k ? "/kid1/a" : "/kid0/a", 100 + k);
			write_simple(&sp, k ? "/kid1/b" : "/kid0/b", 200 + k);
			_exit(0);
		}
		int status;
		cr_assert_eq(waitpid(kids[k], &status, 0), kids[k]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	cr_assert_eq(nspools(), 2);
	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 0), 4);
	cr_expect_eq(nspools(), 0);
	for (int k = 0; k < 2; k++) {
		cr_expect_eq(qi(db, "SELECT count(*) FROM events WHERE pid=%d", (int)kids[k]), 2);
		cr_expect_eq(qi(db, "SELECT count(*) FROM events WHERE pid=%d AND ppid=%d",
				(int)kids[k], (int)getpid()), 2);
	}
	cr_expect_eq(qi(db, "SELECT events FROM sessions WHERE id='sessK'"), 4);
	/* One chain across both spools: every prev_hash is the hash before it. */
	cr_expect_eq(qi(db, "SELECT count(*) FROM events e WHERE e.prev_hash = "
			"(SELECT hash FROM events p WHERE p.id < e.id ORDER BY p.id DESC LIMIT 1)"), 3);
	expect_intact(db);

	/* A later spool of the same session extends the same chain. */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct ag_spool sp;
		spool_init(&sp, "sessK");
		write_simple(&sp, "/later", 300);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_expect_eq(ingest(db, 0), 1);
	char *head = qs(db, "SELECT head FROM sessions WHERE id='sessK'");
	expect_text(db, head, "SELECT hash FROM events WHERE path='/later'");
	free(head);
	cr_expect_eq(qi(db, "SELECT events FROM sessions WHERE id='sessK'"), 5);
	expect_intact(db);
	ag_audit_close(db);
}

Test(audit_ingest, live_writer_is_left_alone)
{
	int ready[2], go[2];

	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(go), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct ag_spool sp;
		char c = 0;
		close(ready[0]);
		close(go[1]);
		spool_init(&sp, "sessLive");
		write_simple(&sp, "/live/1", 1);
		if (write(ready[1], "r", 1) != 1)
			_exit(2);
		/* Hold the mapping until the parent says go. */
		if (read(go[0], &c, 1) < 0)
			_exit(3);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1);

	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 0), 0, "a live spool was ingested");
	cr_expect_eq(nspools(), 1, "a live spool was removed");
	cr_expect_eq(qi(db, "SELECT count(*) FROM events"), 0);

	cr_expect_eq(ingest(db, 1), 1, "all=1 copies a live spool's rows");
	cr_expect_eq(nspools(), 1, "but leaves the file to its writer");
	cr_expect_eq(ingest(db, 1), 0, "and copies nothing twice");

	cr_assert_eq(write(go[1], "g", 1), 1);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_expect_eq(ingest(db, 0), 0, "the rows were already in");
	cr_expect_eq(nspools(), 0, "finished now: deleted");
	cr_expect_eq(qi(db, "SELECT count(*) FROM events"), 1);
	cr_expect_eq(qi(db, "SELECT events FROM sessions WHERE id='sessLive'"), 1);
	expect_intact(db);
	close(ready[0]);
	close(go[1]);
	ag_audit_close(db);
}

Test(audit_ingest, all_copies_our_own_live_spool_once)
{
	struct ag_spool sp;
	struct ag_snapshot snap;
	char f[AG_PATH_MAX];

	ut_fmt(f, sizeof f, "%s/file", S);
	ut_write_str(f, "x");
	cr_assert_eq(ag_snapshot_take(S, "sessOwn", f, AG_SNAP_COPY, &snap), 0);
	spool_init(&sp, "sessOwn");
	write_session(&sp, "sessOwn", 10);
	write_simple(&sp, "/own/1", 11);
	struct ev e = {.op = "truncate", .path = f, .decision = "snapshot", .err = 0,
		       .time_ns = 12, .snap = &snap};
	write_event(&sp, &e, NULL);

	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 0), 0);
	cr_expect_eq(ingest(db, 1), 2);
	cr_expect_eq(ingest(db, 1), 0);
	cr_expect_eq(qi(db, "SELECT count(*) FROM events"), 2);
	cr_expect_eq(qi(db, "SELECT count(*) FROM snapshots"), 1);
	cr_expect_eq(qi(db, "SELECT events FROM sessions WHERE id='sessOwn'"), 2);
	expect_intact(db);

	/* More decisions by the same live writer: only the new one is added. */
	write_simple(&sp, "/own/2", 13);
	cr_expect_eq(ingest(db, 1), 1);
	cr_expect_eq(qi(db, "SELECT count(*) FROM events"), 3);
	expect_text(db, "/own/2", "SELECT path FROM events ORDER BY id DESC LIMIT 1");
	cr_expect_eq(nspools(), 1);
	expect_intact(db);

	/* The writer lets go; the file is finished and goes away. */
	ag_spool_forget(&sp);
	cr_expect_eq(ingest(db, 0), 0);
	cr_expect_eq(nspools(), 0);
	cr_expect_eq(qi(db, "SELECT count(*) FROM events"), 3);
	cr_expect_eq(qi(db, "SELECT events FROM sessions WHERE id='sessOwn'"), 3);
	expect_intact(db);
	ag_audit_close(db);
}

/* audit.h: "re-ingesting is harmless". A gap is a row too. */
Test(audit_ingest, reingesting_a_live_spool_does_not_repeat_its_gap)
{
	struct ag_spool sp;

	spool_init(&sp, "sessGap");
	write_simple(&sp, "/g/1", 1);
	write_gap(&sp, "3 decisions could not be recorded", 2);
	write_simple(&sp, "/g/2", 3);

	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 1), 2);
	cr_expect_eq(ingest(db, 1), 0);
	ag_spool_forget(&sp);
	cr_expect_eq(ingest(db, 0), 0);
	cr_expect_eq(qi(db, "SELECT count(*) FROM events"), 2);
	int64_t gaps = qi(db, "SELECT count(*) FROM gaps");
	cr_expect_eq(gaps, 1, "one gap in the spool, %lld rows in gaps", (long long)gaps);
	ag_audit_close(db);
}

/* A finished spool of session `session` with n events, by a child. */
static void finished_spool(const char *session, int n, int with_session_row)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct ag_spool sp;
		char p[64];
		spool_init(&sp, session);
		if (with_session_row)
			write_session(&sp, session, 5);
		for (int i = 0; i < n; i++) {
			snprintf(p, sizeof p, "/f/%d", i);
			write_simple(&sp, p, 10 + i);
		}
		_exit(0);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Warnings ingest gives, one line each. */
static char warned[16][2 * AG_PATH_MAX];
static int nwarned;

static void collect_warning(const char *msg)
{
	if (nwarned < 16)
		snprintf(warned[nwarned++], sizeof warned[0], "%s", msg);
}

static int warned_about(const char *what)
{
	for (int i = 0; i < nwarned; i++)
		if (strstr(warned[i], what))
			return 1;
	return 0;
}

static int in_damaged(const char *name, struct stat *st)
{
	char p[AG_PATH_MAX];

	ut_fmt(p, sizeof p, "%s/spool/damaged/%s", S, name);
	return lstat(p, st) == 0;
}

Test(audit_ingest, a_file_that_is_not_a_spool_is_moved_aside)
{
	char junk[AG_PATH_MAX], dir[AG_PATH_MAX];
	struct stat st;

	finished_spool("sessJ", 1, 1);
	ut_fmt(dir, sizeof dir, "%s/spool", S);
	ut_fmt(junk, sizeof junk, "%s/aaa-junk.spool", dir);
	ut_write_str(junk, "definitely not a spool");
	ag_audit_set_warn(collect_warning);

	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 0), 1);
	cr_expect_eq(nspools(), 0);
	cr_assert(in_damaged("aaa-junk.spool", &st), "the junk file is not in spool/damaged");
	ut_fmt(junk, sizeof junk, "%s/damaged/aaa-junk.spool", dir);
	char *kept = ut_read(junk, NULL);
	cr_expect_str_eq(kept, "definitely not a spool");
	free(kept);
	cr_expect_eq(qi(db, "SELECT count(*) FROM gaps WHERE what LIKE '%%aaa-junk.spool%%'"), 1);
	cr_expect(warned_about("aaa-junk.spool"));
	/* Seen again (it is no longer there): no second row. */
	cr_expect_eq(ingest(db, 0), 0);
	cr_expect_eq(qi(db, "SELECT count(*) FROM gaps"), 1);
	expect_intact(db);
	ag_audit_close(db);
}

/* Issue 8: a FIFO named *.spool hung every command for good; links were
 * opened through, and nothing said what was there. */
Test(audit_ingest, hostile_entries_are_reported_and_moved_aside_unread, .timeout = 120)
{
	char dir[AG_PATH_MAX], p[AG_PATH_MAX], victim[AG_PATH_MAX];
	struct stat st;
	const char *names[12];
	int n = 0;

	finished_spool("sessH", 2, 1);
	ut_fmt(dir, sizeof dir, "%s/spool", S);
	sqlite3 *db = open_rw();
	ag_audit_set_warn(collect_warning);

#define AT(name) (ut_fmt(p, sizeof p, "%s/%s", dir, name), names[n++] = name, p)
	cr_assert_eq(mkfifo(AT("fifo.spool"), 0600), 0);
	cr_assert_eq(symlink("/dev/zero", AT("zero.spool")), 0);
	cr_assert_eq(symlink("../audit.db", AT("db.spool")), 0);
	ut_fmt(victim, sizeof victim, "%s/fifo-elsewhere", S);
	cr_assert_eq(mkfifo(victim, 0600), 0);
	cr_assert_eq(symlink(victim, AT("tofifo.spool")), 0);
	cr_assert_eq(mkdir(AT("dir.spool"), 0700), 0);
	int sock = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	cr_assert_lt(strlen(AT("sock.spool")), sizeof sa.sun_path);
	strcpy(sa.sun_path, p);
	cr_assert_eq(bind(sock, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
	close(sock);
	/* A huge sparse file, bigger than any spool. */
	int fd = open(AT("sparse.spool"), O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)AG_SPOOL_READ_MAX + 4096), 0);
	close(fd);
	/* A second name for a file outside the spool dir. */
	ut_fmt(victim, sizeof victim, "%s/victim", S);
	ut_write_str(victim, "someone else's");
	cr_assert_eq(link(victim, AT("hard.spool")), 0);
	if (geteuid() == 0) {
		cr_assert_eq(mknod(AT("dev.spool"), S_IFCHR | 0600, makedev(1, 3)), 0);
		/* Not written by the state dir's owner. */
		ut_write_str(AT("foreign.spool"), "x");
		cr_assert_eq(chown(p, 4242, 4242), 0);
	}
#undef AT

	cr_expect_eq(ingest(db, 0), 2, "the one real spool's events");
	cr_expect_eq(nspools(), 0, "something was left in the spool dir");
	for (int i = 0; i < n; i++) {
		cr_expect(in_damaged(names[i], &st), "%s is not in spool/damaged", names[i]);
		cr_expect(warned_about(names[i]), "no warning names %s", names[i]);
		cr_expect_eq(qi(db, "SELECT count(*) FROM gaps WHERE what LIKE 'spool/%q %%'",
				names[i]), 1, "no gap row names %s", names[i]);
	}
	/* Moved as themselves: links are still links, targets untouched. */
	cr_expect(in_damaged("db.spool", &st) && S_ISLNK(st.st_mode));
	cr_expect(in_damaged("fifo.spool", &st) && S_ISFIFO(st.st_mode));
	cr_expect(in_damaged("dir.spool", &st) && S_ISDIR(st.st_mode));
	char *v = ut_read(victim, NULL);
	cr_expect_str_eq(v, "someone else's");
	free(v);
	cr_expect(warned_about("symbolic link (to /dev/zero)"));
	/* The gaps belong to the session the names claim only if the log
	 * knows it; these claim none. */
	cr_expect_eq(qi(db, "SELECT count(*) FROM gaps WHERE session=%Q", AG_AUDIT_UNATTRIBUTED), n);
	cr_expect_eq(qi(db, "SELECT count(*) FROM sessions WHERE id=%Q", AG_AUDIT_UNATTRIBUTED), 1);
	char latest[64];
	cr_assert_eq(ag_audit_latest_session(db, latest, sizeof latest), 0);
	cr_expect_str_eq(latest, "sessH", "the placeholder became the latest session");
	expect_intact(db);
	ag_audit_close(db);
}

/* A FIFO named after a known session is reported in that session. */
Test(audit_ingest, an_entry_named_after_a_session_is_reported_there, .timeout = 60)
{
	char p[AG_PATH_MAX];

	finished_spool("sessN", 1, 1);
	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 0), 1);
	ag_audit_set_warn(collect_warning);
	ut_fmt(p, sizeof p, "%s/spool/sessN.123.abcdef012345.spool", S);
	cr_assert_eq(mkfifo(p, 0600), 0);
	cr_expect_eq(ingest(db, 0), 0);
	cr_expect_eq(qi(db, "SELECT count(*) FROM gaps WHERE session='sessN' AND what LIKE "
			"'%%sessN.123.abcdef012345.spool is a FIFO%%'"), 1);
	ag_audit_close(db);
}

/* Offsets of each record of a spool file, by reading it back. */
struct offs {
	size_t off[64], n, next;
};

static int note_off(void *ctx, const struct ag_spool_view *sv, const struct ag_rec_view *rv)
{
	struct offs *o = ctx;

	(void)sv;
	if (!o->n)
		o->next = 256;
	o->off[o->n++] = o->next;
	o->next += rv->rec->len;
	return 0;
}

static void the_spool(char *out)
{
	char paths[2][AG_PATH_MAX];

	cr_assert_eq(ut_spools(S, paths, 2), 1);
	strcpy(out, paths[0]);
}

/* Issue 8: a damaged spool was dropped and deleted without a word. */
Test(audit_ingest, a_damaged_spool_keeps_its_rows_and_its_evidence)
{
	char path[AG_PATH_MAX], *slash;
	struct offs o = {0};
	struct stat st;

	finished_spool("sessD", 6, 1);   /* PROC, SESSION, 6 events */
	the_spool(path);
	cr_assert_eq(ag_spool_read(path, note_off, &o), 0);
	cr_assert_eq(o.n, 8);
	size_t size;
	char *b = ut_read(path, &size);
	/* Garbage over the third event, and the file cut inside the last. */
	memset(b + o.off[4], 0xee, o.off[5] - o.off[4]);
	ut_write(path, b, o.off[7] + 12);
	free(b);
	slash = strrchr(path, '/');
	ag_audit_set_warn(collect_warning);

	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 0), 4, "every event that reads whole goes in");
	cr_expect_eq(qi(db, "SELECT count(*) FROM events WHERE path IN "
			"('/f/0','/f/1','/f/3','/f/4')"), 4);
	cr_expect_eq(nspools(), 0);
	cr_expect(in_damaged(slash + 1, &st), "the damaged spool was not kept");
	cr_expect_eq(st.st_size, (off_t)(o.off[7] + 12));
	char *what = qs(db, "SELECT what FROM gaps WHERE session='sessD'");
	cr_assert_not_null(what, "no gap row for the damage");
	cr_expect_not_null(strstr(what, slash + 1), "%s", what);
	cr_expect_not_null(strstr(what, "bytes held no readable record"), "%s", what);
	cr_expect_not_null(strstr(what, "kept as spool/damaged/"), "%s", what);
	cr_expect(warned_about(slash + 1));
	free(what);
	expect_intact(db);
	ag_audit_close(db);
}

/* A live spool's tail is being written, not damaged: it is not moved. */
Test(audit_ingest, a_live_spool_is_not_called_damaged)
{
	struct ag_spool sp;

	spool_init(&sp, "sessLv");
	write_simple(&sp, "/lv/1", 1);
	/* As if a second writer had reserved room and not written it yet. */
	struct ag_spool_hdr *h = (struct ag_spool_hdr *)sp.base;
	__atomic_add_fetch(&h->used, 64, __ATOMIC_RELEASE);
	ag_audit_set_warn(collect_warning);
	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 1), 1);
	cr_expect_eq(nspools(), 1);
	cr_expect_eq(qi(db, "SELECT count(*) FROM gaps"), 0);
	cr_expect_eq(nwarned, 0, "%s", warned[0]);
	ag_spool_forget(&sp);
	ag_audit_close(db);
}

static void set_header_session(const char *path, const char *bytes, size_t n)
{
	size_t size;
	char *b = ut_read(path, &size);
	char *f = b + offsetof(struct ag_spool_hdr, session);

	memset(f, 0, AG_SESSION_ID_MAX);
	memcpy(f, bytes, n);
	ut_write(path, b, size);
	free(b);
}

/* Issue 8: a spool whose header named no session went in without a
 * session row (chained from whatever head came before), and verify then
 * called the log tampered with. */
Test(audit_ingest, a_spool_naming_no_valid_session_goes_to_the_placeholder)
{
	static const struct {
		const char *bytes;
		size_t n;
	} bad[] = {
		{"", 0},
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", AG_SESSION_ID_MAX},  /* no NUL */
		{"../etc", 6},
		{"with space", 10},
	};
	char path[AG_PATH_MAX];
	struct stat st;
	sqlite3 *db = open_rw();

	/* An ordinary session first: its head must not be borrowed. */
	finished_spool("sessOk", 2, 1);
	cr_assert_eq(ingest(db, 0), 2);
	ag_audit_set_warn(collect_warning);
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		finished_spool("sessBad", 3, 0);
		the_spool(path);
		set_header_session(path, bad[k].bytes, bad[k].n);
		cr_expect_eq(ingest(db, 0), 3, "case %zu", k);
		cr_expect_eq(nspools(), 0, "case %zu", k);
		cr_expect(in_damaged(strrchr(path, '/') + 1, &st), "case %zu: not kept", k);
		cr_expect_eq(qi(db, "SELECT count(*) FROM events WHERE session=%Q",
				AG_AUDIT_UNATTRIBUTED), (int64_t)(3 * (k + 1)), "case %zu", k);
		cr_expect_eq(qi(db, "SELECT count(*) FROM gaps WHERE session=%Q AND what LIKE "
				"'%%names no valid session%%'", AG_AUDIT_UNATTRIBUTED),
			     (int64_t)(k + 1), "case %zu", k);
		expect_intact(db);
	}
	cr_expect_eq(qi(db, "SELECT count(*) FROM events WHERE session='' OR session IS NULL"), 0);
	cr_expect_eq(qi(db, "SELECT events FROM sessions WHERE id='sessOk'"), 2);
	cr_expect_eq(qi(db, "SELECT count(*) FROM sessions WHERE id=''"), 0);
	ag_audit_close(db);
}

/* A SESSION record whose id is no session id makes no session row. */
Test(audit_ingest, a_malformed_session_record_is_left_out_and_said)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct ag_spool sp;
		spool_init(&sp, "sessM");
		write_session(&sp, "sessM", 5);
		write_session(&sp, "bad id/..", 6);
		write_simple(&sp, "/m/1", 7);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	ag_audit_set_warn(collect_warning);
	sqlite3 *db = open_rw();
	cr_expect_eq(ingest(db, 0), 1);
	cr_expect_eq(qi(db, "SELECT count(*) FROM sessions"), 1);
	cr_expect_eq(qi(db, "SELECT count(*) FROM gaps WHERE session='sessM' AND what LIKE "
			"'%%1 session records named no valid session%%'"), 1);
	expect_intact(db);
	ag_audit_close(db);
}

/* Issue 8: qsort and bsearch were called with a NULL array when no
 * process mapped a spool (undefined behaviour). This binary's qsort
 * stands in for libc's to see it. */
static int qsort_null;

void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	static void (*real)(void *, size_t, size_t, int (*)(const void *, const void *));
	void *volatile b = base;   /* glibc says base is never NULL: do not let gcc believe it */

	if (!b) {
		qsort_null++;
		return;
	}
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "qsort");
	real(base, n, size, cmp);
}

/* In a PID namespace of our own with its own /proc, no other process on
 * the machine (another test run's guarded programs) can map a spool, so
 * the scan is sure to find none. */
static int ingest_in_a_pid_namespace(void);

static int ingest_with_an_empty_proc(void)
{
	/* unshare(CLONE_NEWPID) in a child of our own: the test process's
	 * later children (LeakSanitizer's tracer) stay in this namespace. */
	pid_t outer = fork();
	if (outer < 0)
		return -1;
	if (outer == 0)
		_exit(ingest_in_a_pid_namespace() & 0xff);
	int st;
	if (waitpid(outer, &st, 0) != outer || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st) == 0xff ? -1 : WEXITSTATUS(st);
}

static int ingest_in_a_pid_namespace(void)
{
	if (unshare(CLONE_NEWNS | CLONE_NEWPID) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char err[256];
		if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("proc", "/proc", "proc", 0, NULL) < 0)
			_exit(3);
		sqlite3 *db = ag_audit_open(S, 0, err, sizeof err);
		if (!db || ag_audit_ingest(db, S, 0, err, sizeof err) != 1)
			_exit(4);
		ag_audit_close(db);
		_exit(qsort_null ? 1 : 0);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

Test(audit_ingest, no_live_spool_sorts_no_null_array)
{
	finished_spool("sessQ", 1, 1);
	int rc = ingest_with_an_empty_proc();
	if (rc < 0 || rc >= 3) {
		/* No namespaces here (not root): the machine's /proc will do. */
		sqlite3 *db = open_rw();
		cr_expect_eq(ingest(db, 0), 1);
		ag_audit_close(db);
		rc = qsort_null ? 1 : 0;
	}
	cr_expect_eq(rc, 0, "qsort was called with a NULL array");
	cr_expect_eq(nspools(), 0);
}

/* Ingest stops when asked (the second ^C in agentguard run) and loses
 * nothing: the spools wait for the next one. */
static int stop_now(void)
{
	return 1;
}

Test(audit_ingest, an_interrupt_stops_it_and_keeps_the_spools)
{
	char err[256] = "";

	finished_spool("sessI", 2, 1);
	sqlite3 *db = open_rw();
	ag_audit_set_interrupt(stop_now);
	cr_expect_eq(ag_audit_ingest(db, S, 0, err, sizeof err), -1);
	cr_expect_not_null(strstr(err, "interrupted"), "%s", err);
	cr_expect_eq(nspools(), 1);
	ag_audit_set_interrupt(NULL);
	cr_expect_eq(ingest(db, 0), 2);
	cr_expect_eq(nspools(), 0);
	ag_audit_close(db);
}

/* The spool directory itself is not followed. */
Test(audit_ingest, a_symlinked_spool_dir_is_refused)
{
	char p[AG_PATH_MAX], other[AG_PATH_MAX], err[512] = "";

	sqlite3 *db = open_rw();
	ut_fmt(other, sizeof other, "%s/elsewhere", S);
	cr_assert_eq(mkdir(other, 0700), 0);
	ut_fmt(p, sizeof p, "%s/x.1.2.spool", other);
	ut_write_str(p, "keep me");
	ut_fmt(p, sizeof p, "%s/spool", S);
	cr_assert_eq(symlink(other, p), 0);
	cr_expect_eq(ag_audit_ingest(db, S, 0, err, sizeof err), -1);
	cr_expect_not_null(strstr(err, "spool"), "%s", err);
	ut_fmt(p, sizeof p, "%s/x.1.2.spool", other);
	struct stat st;
	cr_expect_eq(stat(p, &st), 0, "a file behind the link was moved");
	ag_audit_close(db);
}

/* ---- verify ----------------------------------------------------------------- */

/* Session sV with 4 events and session sW with 2, ingested; ids of sV's. */
static sqlite3 *chained_db(int64_t ids[4])
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct ag_spool sp;
		spool_init(&sp, "sV");
		write_session(&sp, "sV", 10);
		struct ev e = {.op = "rename", .path = "/ws/p", .target = "/ws/t",
			       .decision = "deny", .rule = "r", .reason = "why", .enforced = 1,
			       .err = EACCES, .time_ns = 20, .latency_ns = 3};
		write_event(&sp, &e, NULL);
		e.err = -1;
		e.time_ns = 21;
		write_event(&sp, &e, NULL);
		write_simple(&sp, "/ws/3", 22);
		write_simple(&sp, "/ws/4", 23);
		ag_spool_forget(&sp);
		spool_init(&sp, "sW");
		write_session(&sp, "sW", 30);
		write_simple(&sp, "/w/1", 31);
		write_simple(&sp, "/w/2", 32);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	sqlite3 *db = open_rw();
	cr_assert_eq(ingest(db, 0), 6);
	sqlite3_stmt *st;
	cr_assert_eq(sqlite3_prepare_v2(db, "SELECT id FROM events WHERE session='sV' ORDER BY id",
					-1, &st, NULL), SQLITE_OK);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
		ids[i] = sqlite3_column_int64(st, 0);
	}
	cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	expect_intact(db);
	return db;
}

static void expect_bad(sqlite3 *db, const char *session, const char *fmt, ...)
{
	char msg[1024], want[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof want, fmt, ap);
	va_end(ap);
	int rc = verify(db, session, msg, sizeof msg);
	cr_expect_eq(rc, 1, "verify returned %d (%s), want 1 with \"%s\"", rc, msg, want);
	cr_expect_not_null(strstr(msg, want), "message \"%s\" lacks \"%s\"", msg, want);
}

static const char *const CHAINED[] = {
	"uid", "time_ns", "session", "pid", "ppid", "proc_start", "exe", "argv",
	"cwd", "op", "path", "target", "address", "host", "port", "sql",
	"sql_class", "database", "rule", "decision", "enforced", "reason",
	"errno", "snapshot", "latency_ns",
};

Test(audit_verify, intact_is_zero)
{
	int64_t ids[4];
	char msg[256];
	sqlite3 *db = chained_db(ids);

	cr_expect_eq(verify(db, NULL, msg, sizeof msg), 0, "%s", msg);
	cr_expect_eq(verify(db, "sV", msg, sizeof msg), 0, "%s", msg);
	cr_expect_eq(verify(db, "sW", msg, sizeof msg), 0, "%s", msg);
	cr_expect_eq(verify(db, "nope", msg, sizeof msg), -1);
	cr_expect_not_null(strstr(msg, "no session nope"), "%s", msg);
	ag_audit_close(db);
}

Test(audit_verify, any_changed_column_names_its_event)
{
	int64_t ids[4];
	char msg[256];
	sqlite3 *db = chained_db(ids);

	for (size_t i = 0; i < sizeof CHAINED / sizeof CHAINED[0]; i++) {
		const char *c = CHAINED[i];
		/* A middle row is caught by its hash; the last one too, not by the head. */
		const int64_t rows[] = {ids[1], ids[3]};
		for (int r = 0; r < 2; r++) {
			int64_t id = rows[r];
			sql(db, "BEGIN");
			sql(db, "UPDATE events SET \"%w\" = CASE WHEN \"%w\" IS NULL THEN 'forged' "
				"WHEN typeof(\"%w\") = 'integer' THEN \"%w\" + 1 "
				"ELSE \"%w\" || 'x' END WHERE id = %lld",
			    c, c, c, c, c, (long long)id);
			cr_assert_eq(sqlite3_changes(db), 1);
			if (strcmp(c, "session") == 0) {
				/* Moved out of its session: its own chain now lacks it. */
				int rc = verify(db, "sV", msg, sizeof msg);
				cr_expect_eq(rc, 1, "session of event %lld changed: %d %s",
					     (long long)id, rc, msg);
				rc = verify(db, NULL, msg, sizeof msg);
				cr_expect_eq(rc, 1, "session of event %lld changed: %d %s",
					     (long long)id, rc, msg);
			} else {
				expect_bad(db, NULL, "event %lld was changed", (long long)id);
				expect_bad(db, "sV", "event %lld was changed", (long long)id);
				cr_expect_eq(verify(db, "sW", msg, sizeof msg), 0,
					     "another session's chain is not affected: %s", msg);
			}
			sql(db, "ROLLBACK");
		}
	}
	/* The chain's own columns. */
	sql(db, "BEGIN");
	sql(db, "UPDATE events SET hash = 'ab' || substr(hash, 3) WHERE id = %lld", (long long)ids[2]);
	expect_bad(db, NULL, "event %lld was changed", (long long)ids[2]);
	sql(db, "ROLLBACK");
	sql(db, "BEGIN");
	sql(db, "UPDATE events SET prev_hash = 'x' WHERE id = %lld", (long long)ids[2]);
	expect_bad(db, NULL, "event %lld does not follow event %lld", (long long)ids[2],
		   (long long)ids[1]);
	sql(db, "ROLLBACK");
	expect_intact(db);
	ag_audit_close(db);
}

Test(audit_verify, changed_first_event)
{
	int64_t ids[4];
	sqlite3 *db = chained_db(ids);

	sql(db, "UPDATE events SET decision = 'allow' WHERE id = %lld", (long long)ids[0]);
	expect_bad(db, NULL, "event %lld was changed", (long long)ids[0]);
	ag_audit_close(db);
}

Test(audit_verify, deleted_middle_row_names_the_next)
{
	int64_t ids[4];
	sqlite3 *db = chained_db(ids);

	sql(db, "DELETE FROM events WHERE id = %lld", (long long)ids[1]);
	expect_bad(db, NULL, "event %lld does not follow event %lld", (long long)ids[2],
		   (long long)ids[0]);
	expect_bad(db, "sV", "event %lld", (long long)ids[2]);
	ag_audit_close(db);
}

Test(audit_verify, deleted_first_row)
{
	int64_t ids[4];
	sqlite3 *db = chained_db(ids);

	sql(db, "DELETE FROM events WHERE id = %lld", (long long)ids[0]);
	expect_bad(db, NULL, "event %lld is not the first of its chain", (long long)ids[1]);
	ag_audit_close(db);
}

Test(audit_verify, deleted_last_rows)
{
	int64_t ids[4];
	sqlite3 *db = chained_db(ids);

	sql(db, "DELETE FROM events WHERE id = %lld", (long long)ids[3]);
	expect_bad(db, NULL, "rows after event %lld were deleted", (long long)ids[2]);
	sql(db, "DELETE FROM events WHERE id >= %lld AND session = 'sV'", (long long)ids[1]);
	expect_bad(db, NULL, "rows after event %lld were deleted", (long long)ids[0]);
	sql(db, "DELETE FROM events WHERE session = 'sV'");
	expect_bad(db, NULL, "session sV: its events were deleted");
	ag_audit_close(db);
}

Test(audit_verify, deleted_session_row)
{
	int64_t ids[4];
	sqlite3 *db = chained_db(ids);

	sql(db, "DELETE FROM sessions WHERE id = 'sV'");
	expect_bad(db, NULL, "event %lld belongs to session sV, whose record was deleted",
		   (long long)ids[0]);
	ag_audit_close(db);
}

Test(audit_verify, changed_session_head_or_genesis)
{
	int64_t ids[4];
	sqlite3 *db = chained_db(ids);

	sql(db, "BEGIN");
	sql(db, "UPDATE sessions SET head = genesis WHERE id = 'sV'");
	expect_bad(db, NULL, "session sV");
	sql(db, "ROLLBACK");
	sql(db, "UPDATE sessions SET genesis = 'x' WHERE id = 'sW'");
	expect_bad(db, NULL, "session sW: its chain start was changed");
	ag_audit_close(db);
}

/* Copy row `src`'s chained columns into a new row `id` with a new uid. */
static void insert_fake(sqlite3 *db, int64_t id, int64_t src, const char *prev_from,
			const char *hash_from)
{
	sql(db, "INSERT INTO events(id, uid, time_ns, session, pid, ppid, proc_start, exe,"
		" argv, cwd, op, path, target, address, host, port, sql, sql_class, database,"
		" rule, decision, enforced, reason, errno, snapshot, latency_ns, prev_hash, hash)"
		" SELECT %lld, 'fake', time_ns, session, pid, ppid, proc_start, exe, argv, cwd,"
		" op, '/innocent', target, address, host, port, sql, sql_class, database, rule,"
		" 'allow', enforced, reason, errno, snapshot, latency_ns, %s, %s"
		" FROM events WHERE id = %lld",
	    (long long)id, prev_from, hash_from, (long long)src);
	cr_assert_eq(sqlite3_changes(db), 1);
}

Test(audit_verify, inserted_row_at_the_end)
{
	int64_t ids[4];
	sqlite3 *db = chained_db(ids);

	/* Links to the real head; its own hash cannot be right. */
	insert_fake(db, 1000, ids[3], "hash", "hash");
	expect_bad(db, NULL, "event 1000 was changed");
	ag_audit_close(db);
}

Test(audit_verify, inserted_row_in_the_middle)
{
	int64_t ids[4];
	sqlite3 *db = chained_db(ids);

	/* Make room between rows: ids are not chained, their order is. */
	sql(db, "UPDATE events SET id = id * 10");
	expect_intact(db);
	int64_t a = ids[1] * 10, b = ids[2] * 10, mid = a + 5;
	/* A copy of b, linked after a and claiming b's hash. */
	insert_fake(db, mid, b, "prev_hash", "hash");
	expect_bad(db, NULL, "event %lld was changed", (long long)mid);
	sql(db, "DELETE FROM events WHERE id = %lld", (long long)mid);
	expect_intact(db);
	/* A copy of a, claiming a's place in the chain: b no longer follows. */
	insert_fake(db, mid, a, "hash", "'0000000000000000000000000000000000000000000000000000000000000000'");
	expect_bad(db, NULL, "event %lld", (long long)mid);
	ag_audit_close(db);
}

Test(audit_verify, reordered_rows)
{
	int64_t ids[4];
	sqlite3 *db = chained_db(ids);

	sql(db, "UPDATE events SET id = -id WHERE id = %lld", (long long)ids[3]);
	sql(db, "UPDATE events SET id = %lld WHERE id = %lld", (long long)ids[3] + 100,
	    -(long long)ids[3]);
	expect_intact(db);    /* still last: order unchanged */
	sql(db, "UPDATE events SET id = 0 WHERE id = %lld", (long long)ids[3] + 100);
	expect_bad(db, NULL, "event 0 is not the first of its chain");
	ag_audit_close(db);
}

/* root's default state dir lies under /root, where the floor cannot keep a
 * key unreadable: its key lives in /var/lib/agentguard. */
Test(audit_key, where_the_key_lives)
{
	char out[AG_PATH_MAX];

	setenv("HOME", "/home/someone", 1);
	unsetenv("XDG_STATE_HOME");
	unsetenv("AGENTGUARD_KEY_FILE");
	cr_assert_eq(ag_audit_key_path("/srv/state", out, sizeof out), 0);
	cr_expect_str_eq(out, "/srv/state/key");
	cr_assert_eq(ag_audit_key_path("/home/someone/.local/state/agentguard", out, sizeof out), 0);
	cr_expect_str_eq(out, geteuid() == 0 ? AG_ROOT_KEY_FILE
					     : "/home/someone/.local/state/agentguard/key");
	setenv("AGENTGUARD_KEY_FILE", "/keys/k", 1);
	cr_assert_eq(ag_audit_key_path("/srv/state", out, sizeof out), 0);
	cr_expect_str_eq(out, "/keys/k");
	setenv("AGENTGUARD_KEY_FILE", "relative/k", 1);   /* ignored, as a relative XDG value */
	cr_assert_eq(ag_audit_key_path("/srv/state", out, sizeof out), 0);
	cr_expect_str_eq(out, "/srv/state/key");
	unsetenv("AGENTGUARD_KEY_FILE");
}

/* A key an older agentguard left in the state dir moves to where it now
 * lives, and the log it keyed still verifies. */
Test(audit_key, an_old_key_moves_to_its_new_place)
{
	char sd[] = "/tmp/ag-keymove.XXXXXX", err[512], old[256], moved[256];

	cr_assert(mkdtemp(sd));
	snprintf(old, sizeof old, "%s/key", sd);
	snprintf(moved, sizeof moved, "%s/elsewhere/key", sd);
	unsetenv("AGENTGUARD_KEY_FILE");
	sqlite3 *db = ag_audit_open(sd, 0, err, sizeof err);
	cr_assert(db, "%s", err);
	ag_audit_close(db);
	cr_assert_eq(access(old, F_OK), 0);
	char before[80] = "", after[80] = "";
	FILE *f = fopen(old, "r");
	cr_assert(f && fgets(before, sizeof before, f));
	fclose(f);

	setenv("AGENTGUARD_KEY_FILE", moved, 1);
	db = ag_audit_open(sd, 0, err, sizeof err);
	cr_assert(db, "%s", err);
	char msg[512];
	cr_expect_eq(ag_audit_verify(db, NULL, msg, sizeof msg), 0, "%s", msg);
	ag_audit_close(db);
	unsetenv("AGENTGUARD_KEY_FILE");
	cr_expect_neq(access(old, F_OK), 0, "the old key stays behind");
	f = fopen(moved, "r");
	cr_assert(f && fgets(after, sizeof after, f));
	fclose(f);
	cr_expect_str_eq(after, before);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", sd);
	cr_expect_eq(system(cmd), 0);
}

/* What `agentguard run` recorded before the agent started stays: a spool's
 * header (the session's own processes wrote it) fills in only what is
 * unknown, so it cannot move the workspace restore trusts. */
Test(audit_ingest, a_spool_header_cannot_change_what_run_recorded)
{
	struct ag_spool sp;
	char err[256];
	sqlite3 *db = open_rw();
	struct ag_session_info si = {
		.id = "sessR", .argv_json = "[\"agent\"]", .mode = "supervised", .enforce = 1,
		.rules = "/r.yaml", .rules_hash = "beef", .workspace = "/real/ws",
		.state_dir = S, .pid = 1, .start_ns = 5, .kernel = "on", .floor = "on",
		.home = "/home/real",
	};
	cr_assert_eq(ag_audit_session_begin(db, &si, err, sizeof err), 0, "%s", err);

	spool_init(&sp, "sessR");
	write_session(&sp, "sessR", 777);   /* says workspace S/ws, mode autonomous */
	ag_spool_forget(&sp);
	ingest(db, 0);
	expect_text(db, "/real/ws", "SELECT workspace FROM sessions WHERE id='sessR'");
	expect_text(db, "supervised", "SELECT mode FROM sessions WHERE id='sessR'");
	expect_text(db, "/r.yaml", "SELECT rules FROM sessions WHERE id='sessR'");
	expect_text(db, "/home/real", "SELECT home FROM sessions WHERE id='sessR'");
	ag_audit_close(db);
}
