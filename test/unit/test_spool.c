/* lib/spool.c: the per-process event file hooks write instead of audit.db. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentguard.h"
#include "helpers.h"
#include "spool.h"

#define HDR 256   /* spool.c HDR_SIZE: where the first record starts */

static char S[AG_PATH_MAX];   /* the state dir */
static const char *const ARGV[] = {"prog", "arg one", "", "last", NULL};

static void setup(void)
{
	ut_mkdtemp(S, sizeof S);
}

static void teardown(void)
{
	ut_rmrf(S);
}

TestSuite(spool, .init = setup, .fini = teardown);
TestSuite(spool_read, .init = setup, .fini = teardown);

static void spool_init(struct ag_spool *sp, const char *state_dir, const char *session)
{
	memset(sp, 0, sizeof *sp);
	sp->state_dir = state_dir;
	sp->session = session;
	sp->argv = ARGV;
}

/* ---- reading everything back ---------------------------------------------- */

struct rec {
	uint16_t type;
	int32_t err;
	uint32_t len;
	uint64_t seq;
	int64_t time_ns, latency_ns;
	char *field[AG_T_MAX];       /* NUL-terminated copies */
	uint32_t flen[AG_T_MAX];
};

struct coll {
	struct rec *r;
	size_t n, cap;
	char name[256];
	struct ag_spool_hdr hdr;
	int stop_after;              /* >0: return 7 after that many records */
	int bad_bounds;              /* a field pointed outside its record */
};

static int collect(void *ctx, const struct ag_spool_view *sv, const struct ag_rec_view *rv)
{
	struct coll *c = ctx;

	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->r = realloc(c->r, c->cap * sizeof *c->r);
		cr_assert_not_null(c->r);
	}
	struct rec *r = &c->r[c->n++];
	memset(r, 0, sizeof *r);
	r->type = rv->rec->type;
	r->err = rv->rec->err;
	r->len = rv->rec->len;
	r->seq = rv->rec->seq;
	r->time_ns = rv->rec->time_ns;
	r->latency_ns = rv->rec->latency_ns;
	const unsigned char *lo = (const unsigned char *)rv->rec;
	const unsigned char *hi = lo + rv->rec->len;
	for (int t = 0; t < AG_T_MAX; t++) {
		if (!rv->field[t])
			continue;
		/* A coded event's op, decision and enforced flag come from its
		 * header, not from its bytes. */
		int coded = rv->rec->code &&
			    (t == AG_T_OP || t == AG_T_DECISION || t == AG_T_ENFORCED);
		if (!coded && (rv->field[t] < lo || rv->field[t] > hi ||
			       rv->flen[t] > (size_t)(hi - rv->field[t])))
			c->bad_bounds = 1;
		r->field[t] = malloc(rv->flen[t] + 1);
		cr_assert_not_null(r->field[t]);
		memcpy(r->field[t], rv->field[t], rv->flen[t]);
		r->field[t][rv->flen[t]] = 0;
		r->flen[t] = rv->flen[t];
	}
	snprintf(c->name, sizeof c->name, "%s", sv->name);
	memcpy(&c->hdr, sv->hdr, sizeof c->hdr);
	if (c->stop_after && (int)c->n >= c->stop_after)
		return 7;
	return 0;
}

static void coll_free(struct coll *c)
{
	for (size_t i = 0; i < c->n; i++)
		for (int t = 0; t < AG_T_MAX; t++)
			free(c->r[i].field[t]);
	free(c->r);
	memset(c, 0, sizeof *c);
}

static void read_all(const char *path, struct coll *c)
{
	memset(c, 0, sizeof *c);
	cr_assert_eq(ag_spool_read(path, collect, c), 0, "read %s: %s", path, strerror(errno));
	cr_expect_not(c->bad_bounds, "a field points outside its record");
}

/* The one spool file of a state dir. */
static void only_spool(const char *state_dir, char *out)
{
	char paths[4][AG_PATH_MAX];
	int n = ut_spools(state_dir, paths, 4);

	cr_assert_eq(n, 1, "%d spool files, want 1", n);
	strcpy(out, paths[0]);
}

static int append_event(struct ag_spool *sp, const char *path, int32_t err,
			int64_t t, struct ag_spool_mark *mark)
{
	struct ag_field f[] = {
		{AG_T_OP, 6, "delete"},
		{AG_T_PATH, (uint32_t)strlen(path), path},
	};
	return ag_spool_append(sp, AG_REC_EVENT, err, t, 11, f, 2, mark);
}

/* ---- writing --------------------------------------------------------------- */

Test(spool, append_then_read_back)
{
	struct ag_spool sp;
	struct ag_spool_mark m1, m2;
	int64_t enforced = 1, port = 5432;
	char cwd[AG_PATH_MAX], exe[AG_PATH_MAX], path[AG_PATH_MAX];

	spool_init(&sp, S, "sessA");
	cr_assert_eq(chdir(S), 0);
	struct ag_field f[] = {
		{AG_T_OP, 6, "delete"},
		{AG_T_PATH, 6, "/w/x.c"},
		{AG_T_ENFORCED, 8, &enforced},
		{AG_T_RULE, 2, "r1"},
		{AG_T_TARGET, 5, NULL},      /* no data: left out */
		{AG_T_REASON, 0, ""},        /* present but empty */
		{AG_T_PORT, 8, &port},
	};
	cr_assert_eq(ag_spool_append(&sp, AG_REC_EVENT, -1, 1000, 17, f, 7, &m1), 0);
	ag_spool_patch_errno(&sp, &m1, ENOENT);
	cr_assert_eq(append_event(&sp, "/w/y", 0, 2000, &m2), 0);
	cr_assert_eq(append_event(&sp, "/w/z", -1, 3000, NULL), 0);

	only_spool(S, path);
	cr_expect_str_eq(path, sp.path);
	/* state/spool/<session>.<pid>.<12 hex>.spool, private to its owner. */
	char want_prefix[128];
	ut_fmt(want_prefix, sizeof want_prefix, "%s/spool/sessA.%d.", S, (int)getpid());
	cr_expect_eq(strncmp(path, want_prefix, strlen(want_prefix)), 0, "%s", path);
	const char *rnd = path + strlen(want_prefix);
	cr_expect_eq(strspn(rnd, "0123456789abcdef"), 12, "%s", path);
	cr_expect_str_eq(rnd + 12, ".spool");
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	char dir[AG_PATH_MAX];
	ut_fmt(dir, sizeof dir, "%s/spool", S);
	cr_assert_eq(stat(dir, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0700);

	struct coll c;
	read_all(path, &c);
	cr_assert_eq(c.n, 4, "%zu records", c.n);

	/* The header names the writer. */
	cr_expect_eq(memcmp(c.hdr.magic, AG_SPOOL_MAGIC, 8), 0);
	cr_expect_eq(c.hdr.hdr_size, HDR);
	cr_expect_eq(c.hdr.pid, getpid());
	cr_expect_eq(c.hdr.proc_start, ag_proc_start(getpid()));
	cr_expect_str_eq(c.hdr.session, "sessA");
	cr_expect_str_eq(c.name, sp.name);
	cr_expect_eq(strncmp(c.name, "sessA.", 6), 0);

	/* A file starts with who wrote it: what ingest fills events.exe/argv/cwd from. */
	struct rec *r = &c.r[0];
	cr_expect_eq(r->type, AG_REC_PROC);
	cr_expect_eq(r->seq, 1);
	cr_assert_not_null(getcwd(cwd, sizeof cwd));
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	cr_assert_gt(n, 0);
	exe[n] = 0;
	cr_assert_not_null(r->field[AG_T_EXE]);
	cr_expect_str_eq(r->field[AG_T_EXE], exe);
	cr_assert_not_null(r->field[AG_T_CWD]);
	cr_expect_str_eq(r->field[AG_T_CWD], cwd);
	cr_assert_not_null(r->field[AG_T_ARGV]);
	static const char want_argv[] = "prog\0arg one\0\0last";
	cr_expect_eq(r->flen[AG_T_ARGV], sizeof want_argv);
	cr_expect_eq(memcmp(r->field[AG_T_ARGV], want_argv, sizeof want_argv), 0);
	int64_t ppid;
	cr_assert_eq(r->flen[AG_T_PPID], 8);
	memcpy(&ppid, r->field[AG_T_PPID], 8);
	cr_expect_eq(ppid, getppid());

	/* The patch is how the real call's errno reaches the log. */
	r = &c.r[1];
	cr_expect_eq(r->type, AG_REC_EVENT);
	cr_expect_eq(r->seq, 2);
	cr_expect_eq(r->err, ENOENT, "patched errno: %d", r->err);
	cr_expect_eq(r->time_ns, 1000);
	cr_expect_eq(r->latency_ns, 17);
	cr_expect_str_eq(r->field[AG_T_OP], "delete");
	cr_expect_str_eq(r->field[AG_T_PATH], "/w/x.c");
	cr_expect_str_eq(r->field[AG_T_RULE], "r1");
	cr_expect_null(r->field[AG_T_TARGET]);
	cr_expect_not_null(r->field[AG_T_REASON]);
	cr_expect_eq(r->flen[AG_T_REASON], 0);
	cr_expect_null(r->field[AG_T_HOST]);
	cr_expect_eq(r->len % 8, 0, "records keep 8-byte alignment");

	r = &c.r[2];
	cr_expect_eq(r->seq, 3);
	cr_expect_eq(r->err, 0);
	cr_expect_str_eq(r->field[AG_T_PATH], "/w/y");
	r = &c.r[3];
	cr_expect_eq(r->seq, 4);
	cr_expect_eq(r->err, -1, "never patched: unknown");
	cr_expect_eq(r->time_ns, 3000);
	coll_free(&c);
	ag_spool_forget(&sp);
}

struct int_ctx {
	int64_t enforced, port, op, missing;
};

static int ints_of_first_event(void *ctx, const struct ag_spool_view *sv,
			       const struct ag_rec_view *rv)
{
	struct int_ctx *x = ctx;

	(void)sv;
	if (rv->rec->type != AG_REC_EVENT)
		return 0;
	x->enforced = ag_rec_int(rv, AG_T_ENFORCED);
	x->port = ag_rec_int(rv, AG_T_PORT);
	x->op = ag_rec_int(rv, AG_T_OP);          /* text, not 8 bytes */
	x->missing = ag_rec_int(rv, AG_T_HOST) + ag_rec_int(rv, 0) +
		     ag_rec_int(rv, AG_T_MAX) + ag_rec_int(rv, -3);
	return 1;
}

Test(spool, int_fields)
{
	struct ag_spool sp;
	int64_t enforced = 1, port = -70000;
	char path[AG_PATH_MAX];

	spool_init(&sp, S, "sessI");
	struct ag_field f[] = {
		{AG_T_OP, 3, "sql"},
		{AG_T_ENFORCED, 8, &enforced},
		{AG_T_PORT, 8, &port},
	};
	cr_assert_eq(ag_spool_append(&sp, AG_REC_EVENT, 0, 1, 1, f, 3, NULL), 0);
	only_spool(S, path);
	struct int_ctx x = {-1, -1, -1, -1};
	cr_expect_eq(ag_spool_read(path, ints_of_first_event, &x), 1,
		     "the callback's nonzero return is passed on");
	cr_expect_eq(x.enforced, 1);
	cr_expect_eq(x.port, -70000);
	cr_expect_eq(x.op, 0);
	cr_expect_eq(x.missing, 0);
	ag_spool_forget(&sp);
}

/* An event whose op, decision and enforced flag ride in its header reads
 * back as if they were fields, and is the smaller for it. */
Test(spool, coded_event_reads_back_as_its_fields)
{
	struct ag_spool sp;
	struct ag_field f[] = {{AG_T_PATH, 4, "/w/x"}};
	char path[AG_PATH_MAX];

	spool_init(&sp, S, "sessC");
	cr_assert_eq(ag_spool_append_coded(&sp, 0, AG_REC_CODE(AG_OP_DELETE, AG_ALLOW, 1), -1,
					   1000, 5, f, 1, NULL), 0);
	cr_assert_eq(ag_spool_append_coded(&sp, 1, AG_REC_CODE(AG_OP_RENAME, AG_DENY, 0), 13,
					   2000, 5, f, 1, NULL), 0);
	cr_assert_eq(append_event(&sp, "/w/x", 0, 3000, NULL), 0);
	only_spool(S, path);
	struct coll c;
	read_all(path, &c);
	struct rec *e[3];
	size_t k = 0;
	for (size_t i = 0; i < c.n && k < 3; i++)
		if (c.r[i].type == AG_REC_EVENT)
			e[k++] = &c.r[i];
	cr_assert_eq(k, 3);
	cr_expect_str_eq(e[0]->field[AG_T_OP], "delete");
	cr_expect_str_eq(e[0]->field[AG_T_DECISION], "allow");
	int64_t v;
	memcpy(&v, e[0]->field[AG_T_ENFORCED], 8);
	cr_expect_eq(v, 1);
	cr_expect_str_eq(e[0]->field[AG_T_PATH], "/w/x");
	cr_expect_str_eq(e[1]->field[AG_T_OP], "rename");
	cr_expect_str_eq(e[1]->field[AG_T_DECISION], "deny");
	memcpy(&v, e[1]->field[AG_T_ENFORCED], 8);
	cr_expect_eq(v, 0);
	cr_expect_eq(e[1]->err, 13);
	/* The fielded event keeps its fields, and no decision it never had. */
	cr_expect_str_eq(e[2]->field[AG_T_OP], "delete");
	cr_expect_null(e[2]->field[AG_T_DECISION]);
	cr_expect_lt(e[0]->len, e[2]->len, "three fields fewer: %u vs %u", e[0]->len, e[2]->len);
	coll_free(&c);
	ag_spool_forget(&sp);
}

static int read_dmg(const char *p, struct coll *c, struct ag_spool_damage *d);

/* The header's code is checked like any field: an unknown op or decision,
 * a code on a record that is no event, or a code with the fields it
 * stands for also in the body, and the record is damage. */
Test(spool_read, a_bad_header_code_is_damage)
{
	static const struct {
		int field_too;
		uint32_t code;
	} cases[] = {
		{0, AG_REC_CODE(AG_OP_COUNT, AG_ALLOW, 1)},
		{0, AG_REC_CODE(AG_OP_DELETE, AG_ACTION_COUNT, 1)},
		{0, AG_REC_CODE(AG_OP_DELETE, AG_ALLOW, 1) | 4u << 16},
		{0, AG_REC_CODE(AG_OP_DELETE, AG_ALLOW, 1) | 1u << 24},
		{1, AG_REC_CODE(AG_OP_DELETE, AG_ALLOW, 1)},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char dir[AG_PATH_MAX], path[AG_PATH_MAX];
		ut_fmt(dir, sizeof dir, "%s/c%zu", S, i);
		struct ag_spool sp;
		spool_init(&sp, dir, "sessD");
		struct ag_field f[] = {{AG_T_PATH, 4, "/w/x"}, {AG_T_DECISION, 5, "allow"}};
		cr_assert_eq(ag_spool_append_coded(&sp, 0, AG_REC_CODE(AG_OP_DELETE, AG_ALLOW, 1), -1,
						   1000, 5, f, cases[i].field_too ? 2 : 1, NULL), 0);
		cr_assert_eq(append_event(&sp, "/w/after", 0, 2000, NULL), 0);
		only_spool(dir, path);
		/* Put the case's code into the coded event's header. */
		int fd = open(path, O_RDWR);
		cr_assert_geq(fd, 0);
		uint64_t off = HDR;
		for (;;) {
			struct ag_rec r;
			cr_assert_eq(pread(fd, &r, sizeof r, (off_t)off), (ssize_t)sizeof r);
			if (r.type == AG_REC_EVENT) {
				r.code = cases[i].code;
				cr_assert_eq(pwrite(fd, &r, sizeof r, (off_t)off), (ssize_t)sizeof r);
				break;
			}
			off += r.len;
		}
		close(fd);
		struct coll c;
		struct ag_spool_damage d;
		memset(&d, 0, sizeof d);
		read_dmg(path, &c, &d);
		int events = 0;
		for (size_t k = 0; k < c.n; k++)
			events += c.r[k].type == AG_REC_EVENT;
		cr_expect_eq(events, 1, "case %zu: only the event after it", i);
		cr_expect(d.records + d.bytes > 0 && d.first, "case %zu: counted as damage", i);
		coll_free(&c);
		ag_spool_forget(&sp);
	}
}

Test(spool, callback_stops_the_walk)
{
	struct ag_spool sp;
	char path[AG_PATH_MAX];

	spool_init(&sp, S, "sessStop");
	for (int i = 0; i < 5; i++)
		cr_assert_eq(append_event(&sp, "/x", 0, i, NULL), 0);
	only_spool(S, path);
	struct coll c = {.stop_after = 2};
	cr_expect_eq(ag_spool_read(path, collect, &c), 7);
	cr_expect_eq(c.n, 2);
	coll_free(&c);
	ag_spool_forget(&sp);
}

Test(spool, grows_past_the_first_mapping)
{
	struct ag_spool sp;
	char path[AG_PATH_MAX], p[64];
	enum { N = 6000 };

	spool_init(&sp, S, "sessG");
	for (int i = 0; i < N; i++) {
		snprintf(p, sizeof p, "/work/file-%06d.txt", i);
		cr_assert_eq(append_event(&sp, p, i % 3 ? 0 : -1, 1000 + i, NULL), 0,
			     "append %d: %s", i, strerror(errno));
	}
	only_spool(S, path);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_gt(st.st_size, 16 << 10, "the file grew");

	struct coll c;
	read_all(path, &c);
	cr_assert_eq(c.n, N + 1, "%zu records", c.n);
	cr_expect_eq(c.r[0].type, AG_REC_PROC);
	for (int i = 0; i < N; i++) {
		struct rec *r = &c.r[i + 1];
		snprintf(p, sizeof p, "/work/file-%06d.txt", i);
		cr_assert_eq(r->type, AG_REC_EVENT);
		cr_assert_eq(r->seq, (uint64_t)i + 2, "record %d has seq %llu", i,
			     (unsigned long long)r->seq);
		cr_assert_eq(r->time_ns, 1000 + i);
		cr_assert_eq(r->err, i % 3 ? 0 : -1);
		cr_assert_str_eq(r->field[AG_T_PATH], p);
	}
	coll_free(&c);
	ag_spool_forget(&sp);
}

Test(spool, one_record_bigger_than_the_first_mapping)
{
	struct ag_spool sp;
	char path[AG_PATH_MAX];
	size_t big = 100 << 10;
	char *sql = malloc(big);

	cr_assert_not_null(sql);
	for (size_t i = 0; i < big; i++)
		sql[i] = (char)('a' + i % 26);
	spool_init(&sp, S, "sessBig");
	struct ag_field f[] = {{AG_T_SQL, (uint32_t)big, sql}};
	cr_assert_eq(ag_spool_append(&sp, AG_REC_EVENT, 0, 1, 0, f, 1, NULL), 0);
	cr_assert_eq(append_event(&sp, "/after", 0, 2, NULL), 0);
	/* And one larger than everything so far, in an existing file. */
	size_t bigger = 300 << 10;
	char *sql2 = malloc(bigger);
	cr_assert_not_null(sql2);
	memset(sql2, 'q', bigger);
	struct ag_field f2[] = {{AG_T_SQL, (uint32_t)bigger, sql2}};
	cr_assert_eq(ag_spool_append(&sp, AG_REC_EVENT, 0, 3, 0, f2, 1, NULL), 0);

	only_spool(S, path);
	struct coll c;
	read_all(path, &c);
	cr_assert_eq(c.n, 4);
	cr_assert_eq(c.r[1].flen[AG_T_SQL], big);
	cr_expect_eq(memcmp(c.r[1].field[AG_T_SQL], sql, big), 0);
	cr_expect_str_eq(c.r[2].field[AG_T_PATH], "/after");
	cr_assert_eq(c.r[3].flen[AG_T_SQL], bigger);
	cr_expect_eq(memcmp(c.r[3].field[AG_T_SQL], sql2, bigger), 0);
	coll_free(&c);
	free(sql);
	free(sql2);
	ag_spool_forget(&sp);
}

struct thr {
	struct ag_spool *sp;
	int id;
};

static void *writer(void *arg)
{
	struct thr *t = arg;
	char p[64];

	for (int i = 0; i < 700; i++) {
		snprintf(p, sizeof p, "/t%d/%d", t->id, i);
		if (append_event(t->sp, p, 0, i, NULL) < 0)
			return (void *)1;
	}
	return NULL;
}

Test(spool, threads_append_concurrently)
{
	struct ag_spool sp;
	pthread_t th[4];
	struct thr t[4];
	char path[AG_PATH_MAX], p[64];

	spool_init(&sp, S, "sessT");
	for (int i = 0; i < 4; i++) {
		t[i] = (struct thr){&sp, i};
		cr_assert_eq(pthread_create(&th[i], NULL, writer, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *rv;
		pthread_join(th[i], &rv);
		cr_expect_null(rv, "thread %d failed to append", i);
	}
	only_spool(S, path);
	struct coll c;
	read_all(path, &c);
	cr_assert_eq(c.n, 1 + 4 * 700);
	int next[4] = {0};
	for (size_t i = 0; i < c.n; i++) {
		cr_assert_eq(c.r[i].seq, i + 1, "seq in file order");
		if (c.r[i].type != AG_REC_EVENT)
			continue;
		int id, k;
		cr_assert_eq(sscanf(c.r[i].field[AG_T_PATH], "/t%d/%d", &id, &k), 2);
		cr_assert(id >= 0 && id < 4);
		snprintf(p, sizeof p, "/t%d/%d", id, next[id]);
		cr_assert_str_eq(c.r[i].field[AG_T_PATH], p, "each thread's events in its order");
		next[id]++;
	}
	for (int i = 0; i < 4; i++)
		cr_expect_eq(next[i], 700);
	coll_free(&c);
	ag_spool_forget(&sp);
}

/* The guard marks its event, runs the real call, then patches the errno in.
 * Another thread's appends in between may grow the mapping; the record is
 * still at the same offset of the same file, so the errno must land. */
Test(spool, patch_errno_after_the_mapping_grew)
{
	struct ag_spool sp;
	struct ag_spool_mark m;
	char path[AG_PATH_MAX];

	spool_init(&sp, S, "sessP");
	cr_assert_eq(append_event(&sp, "/marked", -1, 1, &m), 0);
	for (int i = 0; i < 2000; i++)
		cr_assert_eq(append_event(&sp, "/filler/path/to/grow/the/spool", 0, 2, NULL), 0);
	ag_spool_patch_errno(&sp, &m, EPERM);
	only_spool(S, path);
	struct coll c;
	read_all(path, &c);
	cr_assert_gt(c.n, 2);
	cr_assert_str_eq(c.r[1].field[AG_T_PATH], "/marked");
	cr_expect_eq(c.r[1].err, EPERM,
		     "errno patched after growth was dropped: err is %d, want EPERM (%d)",
		     c.r[1].err, EPERM);
	coll_free(&c);
	ag_spool_forget(&sp);
}

/* A mark from a replaced file must not patch whatever now sits at its offset. */
Test(spool, stale_mark_patches_nothing)
{
	struct ag_spool sp;
	struct ag_spool_mark m1, m2;
	char paths[4][AG_PATH_MAX];

	spool_init(&sp, S, "sessM");
	cr_assert_eq(append_event(&sp, "/one", -1, 1, &m1), 0);
	char first[AG_PATH_MAX];
	strcpy(first, sp.path);
	ag_spool_forget(&sp);
	cr_assert_eq(append_event(&sp, "/one", -1, 1, &m2), 0);
	cr_assert_eq(m1.off, m2.off, "same layout, same offset");
	ag_spool_patch_errno(&sp, &m1, EIO);
	ag_spool_patch_errno(&sp, &m2, ENOSPC);
	ag_spool_forget(&sp);
	/* Patching with nothing mapped is harmless. */
	ag_spool_patch_errno(&sp, &m2, EBUSY);

	cr_assert_eq(ut_spools(S, paths, 4), 2);
	for (int i = 0; i < 2; i++) {
		struct coll c;
		read_all(paths[i], &c);
		cr_assert_eq(c.n, 2);
		int is_first = strcmp(paths[i], first) == 0;
		cr_expect_eq(c.r[1].err, is_first ? -1 : ENOSPC, "%s: err %d", paths[i], c.r[1].err);
		coll_free(&c);
	}
}

Test(spool, forget_starts_a_new_file)
{
	struct ag_spool sp;
	char paths[4][AG_PATH_MAX], first[AG_PATH_MAX];

	spool_init(&sp, S, "sessF");
	cr_assert_eq(append_event(&sp, "/a", 0, 1, NULL), 0);
	cr_assert_eq(append_event(&sp, "/b", 0, 2, NULL), 0);
	strcpy(first, sp.path);
	ag_spool_forget(&sp);
	cr_expect_null(sp.base);
	cr_assert_eq(append_event(&sp, "/c", 0, 3, NULL), 0);
	cr_expect_str_neq(sp.path, first);
	cr_assert_eq(ut_spools(S, paths, 4), 2);

	struct coll c;
	read_all(first, &c);
	cr_assert_eq(c.n, 3, "the old file keeps its records");
	cr_expect_str_eq(c.r[2].field[AG_T_PATH], "/b");
	coll_free(&c);

	read_all(sp.path, &c);
	cr_assert_eq(c.n, 2);
	cr_expect_eq(c.r[0].type, AG_REC_PROC, "a new file starts with its process");
	cr_expect_eq(c.r[0].seq, 1, "seq restarts per file");
	cr_expect_eq(c.r[1].seq, 2);
	cr_expect_str_eq(c.r[1].field[AG_T_PATH], "/c");
	coll_free(&c);
	ag_spool_forget(&sp);
}

Test(spool, fork_child_writes_its_own_spool)
{
	struct ag_spool sp;
	char paths[4][AG_PATH_MAX];

	spool_init(&sp, S, "sessK");
	cr_assert_eq(append_event(&sp, "/parent-1", 0, 1, NULL), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* What the guard's atfork handler does. */
		ag_spool_forget(&sp);
		_exit(append_event(&sp, "/child", 0, 2, NULL) == 0 ? 0 : 1);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child append failed");
	cr_assert_eq(append_event(&sp, "/parent-2", 0, 3, NULL), 0);

	cr_assert_eq(ut_spools(S, paths, 4), 2);
	int seen_parent = 0, seen_child = 0;
	for (int i = 0; i < 2; i++) {
		struct coll c;
		read_all(paths[i], &c);
		if (c.hdr.pid == getpid()) {
			seen_parent = 1;
			cr_expect_str_eq(paths[i], sp.path);
			cr_assert_eq(c.n, 3, "parent spool has %zu records", c.n);
			cr_expect_str_eq(c.r[1].field[AG_T_PATH], "/parent-1");
			cr_expect_str_eq(c.r[2].field[AG_T_PATH], "/parent-2");
			cr_expect_eq(c.r[2].seq, 3);
		} else {
			seen_child = 1;
			cr_expect_eq(c.hdr.pid, pid);
			char want[64];
			snprintf(want, sizeof want, "sessK.%d.", (int)pid);
			cr_expect_eq(strncmp(c.name, want, strlen(want)), 0, "%s", c.name);
			cr_assert_eq(c.n, 2);
			cr_expect_eq(c.r[0].type, AG_REC_PROC);
			int64_t ppid;
			memcpy(&ppid, c.r[0].field[AG_T_PPID], 8);
			cr_expect_eq(ppid, getpid());
			cr_expect_str_eq(c.r[1].field[AG_T_PATH], "/child");
		}
		coll_free(&c);
	}
	cr_expect(seen_parent && seen_child);
	ag_spool_forget(&sp);
}

Test(spool, needs_a_state_dir_and_session)
{
	struct ag_spool sp;

	spool_init(&sp, NULL, "x");
	errno = 0;
	cr_expect_eq(append_event(&sp, "/a", 0, 1, NULL), -1);
	cr_expect_eq(errno, EINVAL);
	spool_init(&sp, S, NULL);
	errno = 0;
	cr_expect_eq(append_event(&sp, "/a", 0, 1, NULL), -1);
	cr_expect_eq(errno, EINVAL);
}

/* ---- failure and the gap it leaves ---------------------------------------- */

struct gapped {
	char state[AG_PATH_MAX];
	struct ag_spool sp;
	int64_t first_lost;
};

/*
 * As root no permission bit stops us, so the state dir is made unusable by
 * putting a regular file where it should be. Loses one SESSION record (not
 * a decision) and four EVENTs: three while broken, one while repaired but
 * inside the one-second retry pause.
 */
static void break_then_repair(struct gapped *g)
{
	ut_fmt(g->state, sizeof g->state, "%s/state", S);
	ut_write_str(g->state, "not a directory");
	spool_init(&g->sp, g->state, "sessGap");

	struct ag_field sf[] = {{AG_T_SESSION, 7, "sessGap"}};
	cr_expect_eq(ag_spool_append(&g->sp, AG_REC_SESSION, 0, 5, 0, sf, 1, NULL), -1);
	g->first_lost = 100;
	for (int i = 0; i < 3; i++)
		cr_expect_eq(append_event(&g->sp, "/lost", -1, g->first_lost + i, NULL), -1,
			     "append %d into an unusable state dir succeeded", i);
	char paths[2][AG_PATH_MAX];
	cr_expect_eq(ut_spools(S, paths, 2), 0);

	cr_assert_eq(unlink(g->state), 0);
	cr_assert_eq(mkdir(g->state, 0700), 0);
	errno = 0;
	cr_expect_eq(append_event(&g->sp, "/lost", -1, 103, NULL), -1,
		     "retried within a second of the failure");
	cr_expect_eq(errno, EIO);
	cr_expect_eq(ut_spools(g->state, paths, 2), 0);
	usleep(1100 * 1000);
}

static const struct rec *find_type(const struct coll *c, int type, size_t *at)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->r[i].type == type) {
			if (at)
				*at = i;
			return &c->r[i];
		}
	return NULL;
}

Test(spool, unwritable_state_dir_then_a_gap_record)
{
	struct gapped g;
	char path[AG_PATH_MAX];

	break_then_repair(&g);
	cr_assert_eq(append_event(&g.sp, "/after-1", -1, 200, NULL), 0, "%s", strerror(errno));
	cr_assert_eq(append_event(&g.sp, "/after-2", -1, 201, NULL), 0);
	cr_assert_eq(append_event(&g.sp, "/after-3", -1, 202, NULL), 0);

	only_spool(g.state, path);
	struct coll c;
	read_all(path, &c);
	size_t at_gap = 0, ngap = 0;
	const struct rec *gap = find_type(&c, AG_REC_GAP, &at_gap);
	for (size_t i = 0; i < c.n; i++)
		ngap += c.r[i].type == AG_REC_GAP;
	cr_assert_not_null(gap, "no GAP record after recovery");
	cr_expect_eq(ngap, 1, "the loss is reported once");
	cr_expect_gt(at_gap, 0, "the process record comes first");
	cr_assert_not_null(gap->field[AG_T_WHAT]);
	cr_expect_str_eq(gap->field[AG_T_WHAT], "4 decisions could not be recorded");
	cr_expect_eq(gap->time_ns, g.first_lost, "the gap is dated at its first loss");

	/* Every event that was accepted is there, in order, none of the lost. */
	const char *want[] = {"/after-1", "/after-2", "/after-3"};
	size_t k = 0;
	for (size_t i = 0; i < c.n; i++) {
		if (c.r[i].type != AG_REC_EVENT)
			continue;
		cr_assert_lt(k, 3);
		cr_expect_str_eq(c.r[i].field[AG_T_PATH], want[k]);
		k++;
	}
	cr_expect_eq(k, 3);
	coll_free(&c);
	ag_spool_forget(&g.sp);
}

/* SPEC §7: "the gap is reported the next time the log can be written". A
 * process that records one more decision after recovery and then exits
 * must leave the gap in its spool. */
Test(spool, gap_reported_with_the_first_record_that_is_written)
{
	struct gapped g;
	char path[AG_PATH_MAX];

	break_then_repair(&g);
	cr_assert_eq(append_event(&g.sp, "/after-1", -1, 200, NULL), 0, "%s", strerror(errno));
	only_spool(g.state, path);
	struct coll c;
	read_all(path, &c);
	const struct rec *gap = find_type(&c, AG_REC_GAP, NULL);
	cr_expect_not_null(gap, "the spool was written again (%zu records) but holds no GAP "
			   "for the 4 lost decisions", c.n);
	coll_free(&c);
	ag_spool_forget(&g.sp);
}

/* ---- reading what is not (quite) a spool ---------------------------------- */

static int count_only(void *ctx, const struct ag_spool_view *sv, const struct ag_rec_view *rv)
{
	(void)sv;
	(void)rv;
	(*(int *)ctx)++;
	return 0;
}

Test(spool_read, not_a_spool)
{
	char p[AG_PATH_MAX], q[AG_PATH_MAX];
	int calls = 0;

	ut_fmt(p, sizeof p, "%s/missing.spool", S);
	errno = 0;
	cr_expect_eq(ag_spool_read(p, count_only, &calls), -1);
	cr_expect_eq(errno, ENOENT);

	ut_fmt(p, sizeof p, "%s/empty.spool", S);
	ut_write(p, "", 0);
	errno = 0;
	cr_expect_eq(ag_spool_read(p, count_only, &calls), -1);
	cr_expect_eq(errno, EINVAL);

	ut_fmt(p, sizeof p, "%s/short.spool", S);
	ut_write(p, AG_SPOOL_MAGIC "\x00\x01\x00\x00", 12);
	errno = 0;
	cr_expect_eq(ag_spool_read(p, count_only, &calls), -1);
	cr_expect_eq(errno, EINVAL);

	/* Right size, wrong magic. */
	char junk[4096];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 131 + 7);
	ut_fmt(p, sizeof p, "%s/junk.spool", S);
	ut_write(p, junk, sizeof junk);
	errno = 0;
	cr_expect_eq(ag_spool_read(p, count_only, &calls), -1);
	cr_expect_eq(errno, EINVAL);

	/* Right magic, wrong header size. */
	struct ag_spool_hdr h = {.hdr_size = 128, .used = 4096};
	memcpy(h.magic, AG_SPOOL_MAGIC, 8);
	memset(junk, 0, sizeof junk);
	memcpy(junk, &h, sizeof h);
	ut_fmt(p, sizeof p, "%s/hdr.spool", S);
	ut_write(p, junk, sizeof junk);
	errno = 0;
	cr_expect_eq(ag_spool_read(p, count_only, &calls), -1);
	cr_expect_eq(errno, EINVAL);

	/* A directory. */
	cr_expect_eq(ag_spool_read(S, count_only, &calls), -1);

	/* A symlink to a good spool is not followed. */
	struct ag_spool sp;
	spool_init(&sp, S, "sessL");
	cr_assert_eq(append_event(&sp, "/x", 0, 1, NULL), 0);
	ut_fmt(q, sizeof q, "%s/link.spool", S);
	cr_assert_eq(symlink(sp.path, q), 0);
	cr_expect_eq(ag_spool_read(q, count_only, &calls), -1);
	cr_expect_eq(calls, 0);
	ag_spool_forget(&sp);
}

/* The header's session id is read as a C string (audit.c binds it): one
 * without a NUL in its field made ingest read on past it, through the
 * records and off the end of a file with no zero byte in it. Such a file
 * is not a spool. */
/* Readers see the session id only as a terminated string: an id with no
 * NUL in its field is handed over as NULL (ingest then files the rows
 * under the placeholder session), never as bytes to run on from. */
static int session_seen(void *ctx, const struct ag_spool_view *sv, const struct ag_rec_view *rv)
{
	(void)rv;
	*(const char **)ctx = sv->session ? sv->session : "(null)";
	return 0;
}

Test(spool_read, session_id_without_nul_is_not_a_string)
{
	char p[AG_PATH_MAX], b[4096];
	const char *seen = NULL;
	struct ag_spool_hdr h = {.hdr_size = HDR, .used = HDR + sizeof(struct ag_rec)};

	memcpy(h.magic, AG_SPOOL_MAGIC, 8);
	memset(h.session, 'A', sizeof h.session);
	memset(b, 0, sizeof b);
	memcpy(b, &h, sizeof h);
	/* One committed record, so that a reader gets to the session. */
	struct ag_rec r = {.len = sizeof r, .type = AG_REC_EVENT, .flags = AG_REC_COMMITTED,
			   .seq = 1};
	memcpy(b + HDR, &r, sizeof r);
	ut_fmt(p, sizeof p, "%s/nonul.spool", S);
	ut_write(p, b, sizeof b);
	cr_expect_eq(ag_spool_read(p, session_seen, &seen), 0);
	cr_expect_str_eq(seen ? seen : "", "(null)", "an unterminated id is not handed over");

	/* The same with the id terminated is handed over as it is. */
	b[offsetof(struct ag_spool_hdr, session) + sizeof h.session - 1] = 0;
	ut_write(p, b, sizeof b);
	seen = NULL;
	cr_expect_eq(ag_spool_read(p, session_seen, &seen), 0);
	cr_expect(seen && seen[0] == 'A' && strlen(seen) == sizeof h.session - 1);
}

/* A finished spool with n events; its bytes and each record's offset. */
struct sample {
	char *bytes;
	size_t size;
	size_t off[64];
	size_t nrec;
	char path[AG_PATH_MAX];
};

static void make_sample(struct sample *s, int nevents)
{
	struct ag_spool sp;
	char p[64];

	cr_assert_lt(nevents, 63);
	spool_init(&sp, S, "sessR");
	for (int i = 0; i < nevents; i++) {
		snprintf(p, sizeof p, "/sample/%d", i);
		cr_assert_eq(append_event(&sp, p, i, i, NULL), 0);
	}
	snprintf(s->path, sizeof s->path, "%s", sp.path);
	ag_spool_forget(&sp);
	s->bytes = ut_read(s->path, &s->size);
	struct coll c;
	read_all(s->path, &c);
	cr_assert_eq(c.n, (size_t)nevents + 1);
	size_t off = HDR;
	for (size_t i = 0; i < c.n; i++) {
		s->off[i] = off;
		off += c.r[i].len;
	}
	s->off[c.n] = off;
	s->nrec = c.n;
	coll_free(&c);
}

static void write_variant(const char *p, const struct sample *s, size_t size)
{
	ut_write(p, s->bytes, size);
}

static void set_used(char *bytes, uint64_t used)
{
	memcpy(bytes + offsetof(struct ag_spool_hdr, used), &used, 8);
}

/* Read a damaged copy; everything delivered must be an intact prefix. */
static size_t read_prefix(const char *p, const struct sample *s)
{
	struct coll c;

	read_all(p, &c);
	cr_assert_leq(c.n, s->nrec);
	for (size_t i = 1; i < c.n; i++) {
		char want[64];
		snprintf(want, sizeof want, "/sample/%zu", i - 1);
		cr_expect_eq(c.r[i].seq, i + 1);
		cr_expect_str_eq(c.r[i].field[AG_T_PATH], want);
	}
	size_t n = c.n;
	coll_free(&c);
	return n;
}

Test(spool_read, truncated_file_gives_the_complete_records)
{
	struct sample s;
	char p[AG_PATH_MAX];

	make_sample(&s, 20);
	ut_fmt(p, sizeof p, "%s/cut.spool", S);
	/* Cut in the middle of record 8 (PROC is record 0). */
	write_variant(p, &s, s.off[8] + 10);
	cr_expect_eq(read_prefix(p, &s), 8);
	/* Cut exactly at a record boundary. */
	write_variant(p, &s, s.off[5]);
	cr_expect_eq(read_prefix(p, &s), 5);
	/* Inside the first record's header. */
	write_variant(p, &s, HDR + 4);
	cr_expect_eq(read_prefix(p, &s), 0);
	free(s.bytes);
}

/* Read p with the damage counted; records into c. */
static int read_dmg(const char *p, struct coll *c, struct ag_spool_damage *d)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0, "open %s: %s", p, strerror(errno));
	memset(c, 0, sizeof *c);
	int rc = ag_spool_read_fd(fd, p, collect, c, d);
	close(fd);
	cr_expect_not(c->bad_bounds, "a field points outside its record");
	return rc;
}

/* Every record of the sample but those in skip[] came out, in order. */
static void expect_all_but(const struct coll *c, const struct sample *s, const int *skip,
			   int nskip)
{
	size_t k = 1;

	cr_assert_gt(c->n, 0);
	cr_expect_eq(c->r[0].type, AG_REC_PROC);
	for (size_t want = 1; want < s->nrec; want++) {
		int skipped = 0;
		for (int j = 0; j < nskip; j++)
			skipped |= (size_t)skip[j] == want;
		if (skipped)
			continue;
		char path[64];
		snprintf(path, sizeof path, "/sample/%zu", want - 1);
		cr_assert_lt(k, c->n, "record %zu is missing (%zu read)", want, c->n);
		cr_expect_str_eq(c->r[k].field[AG_T_PATH], path);
		cr_expect_eq(c->r[k].seq, want + 1);
		k++;
	}
	cr_expect_eq(c->n, k, "%zu records read, want %zu", c->n, k);
}

Test(spool_read, the_header_end_mark_is_not_trusted_over_the_records)
{
	struct sample s;
	struct coll c;
	struct ag_spool_damage d;
	char p[AG_PATH_MAX];

	make_sample(&s, 20);
	ut_fmt(p, sizeof p, "%s/used.spool", S);
	/* A finished spool's intact file says how much was written: records
	 * past a `used` that stops short are still whole records. */
	write_variant(p, &s, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, NULL, 0);
	cr_expect_eq(d.bytes + d.records + d.unfinished + d.missing + d.unmarked, 0,
		     "an intact spool shows damage");
	coll_free(&c);

	set_used(s.bytes, s.off[6]);
	write_variant(p, &s, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, NULL, 0);
	cr_expect_eq(d.unmarked, s.off[s.nrec] - s.off[6]);
	cr_expect_eq(d.first, s.off[6]);
	coll_free(&c);

	set_used(s.bytes, 0);
	write_variant(p, &s, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, NULL, 0);
	cr_expect_gt(d.unmarked, 0);
	coll_free(&c);

	/* `used` beyond the file: read what is there, say what is missing. */
	set_used(s.bytes, UINT64_MAX);
	write_variant(p, &s, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, NULL, 0);
	cr_expect_eq(d.missing, UINT64_MAX - s.size);
	coll_free(&c);
	free(s.bytes);
}

Test(spool_read, an_unfinished_record_is_skipped_and_counted)
{
	struct sample s;
	struct coll c;
	struct ag_spool_damage d;
	char p[AG_PATH_MAX];

	make_sample(&s, 20);
	ut_fmt(p, sizeof p, "%s/unfinished.spool", S);
	uint16_t flags = 0;
	memcpy(s.bytes + s.off[6] + offsetof(struct ag_rec, flags), &flags, 2);
	write_variant(p, &s, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	int skip[] = {6};
	expect_all_but(&c, &s, skip, 1);
	cr_expect_eq(d.unfinished, 1);
	cr_expect_eq(d.first, s.off[6]);
	coll_free(&c);

	/* Reserved, never written: its writer died between the two. */
	memset(s.bytes + s.off[6], 0, s.off[7] - s.off[6]);
	write_variant(p, &s, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, skip, 1);
	cr_expect_eq(d.bytes, s.off[7] - s.off[6]);
	coll_free(&c);
	free(s.bytes);
}

Test(spool_read, a_damaged_record_costs_only_itself)
{
	struct sample s;
	struct coll c;
	struct ag_spool_damage d;
	char p[AG_PATH_MAX];
	uint32_t len;
	int skip4[] = {4}, skip3[] = {3}, skip5[] = {5}, skip8[] = {8};

	make_sample(&s, 20);
	ut_fmt(p, sizeof p, "%s/len.spool", S);
	char *b = malloc(s.size);
	cr_assert_not_null(b);

	/* Shorter than a record header. */
	memcpy(b, s.bytes, s.size);
	len = 3;
	memcpy(b + s.off[4], &len, 4);
	ut_write(p, b, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, skip4, 1);
	cr_expect_eq(d.bytes, s.off[5] - s.off[4]);
	cr_expect_eq(d.first, s.off[4]);
	coll_free(&c);

	/* Reaching past the end of the file. */
	memcpy(b, s.bytes, s.size);
	len = 0xfffffff0u;
	memcpy(b + s.off[4], &len, 4);
	ut_write(p, b, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, skip4, 1);
	coll_free(&c);

	/* A length that lies by swallowing the next two records: they are
	 * found again, the liar is not believed. */
	memcpy(b, s.bytes, s.size);
	len = (uint32_t)(s.off[7] - s.off[4]);
	memcpy(b + s.off[4], &len, 4);
	ut_write(p, b, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, skip4, 1);
	cr_expect_eq(d.bytes, s.off[5] - s.off[4]);
	coll_free(&c);

	/* A field claiming more bytes than its record. */
	memcpy(b, s.bytes, s.size);
	len = 1u << 30;
	memcpy(b + s.off[3] + sizeof(struct ag_rec) + 1, &len, 4);
	ut_write(p, b, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, skip3, 1);
	cr_expect_gt(d.bytes, 0);
	coll_free(&c);

	/* Two records with one number: the second is not a record we wrote
	 * (ingest keys rows by number, so it would vanish silently). */
	memcpy(b, s.bytes, s.size);
	memcpy(b + s.off[5] + offsetof(struct ag_rec, seq),
	       b + s.off[4] + offsetof(struct ag_rec, seq), 8);
	ut_write(p, b, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, skip5, 1);
	cr_expect_eq(d.records, 1);
	coll_free(&c);

	/* A number no file of this size can reach. */
	memcpy(b, s.bytes, s.size);
	uint64_t seq = UINT64_MAX;
	memcpy(b + s.off[5] + offsetof(struct ag_rec, seq), &seq, 8);
	ut_write(p, b, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, skip5, 1);
	coll_free(&c);

	/* Garbage over a record in the middle. */
	memcpy(b, s.bytes, s.size);
	memset(b + s.off[8], 0xa5, s.off[9] - s.off[8]);
	ut_write(p, b, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, skip8, 1);
	cr_expect_eq(d.bytes, s.off[9] - s.off[8]);
	coll_free(&c);

	/* Garbage after the last record. */
	memcpy(b, s.bytes, s.size);
	cr_assert_lt(s.off[s.nrec] + 64, s.size);
	memset(b + s.off[s.nrec], 0x5a, 64);
	ut_write(p, b, s.size);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	expect_all_but(&c, &s, NULL, 0);
	cr_expect_eq(d.bytes, 64);
	cr_expect_eq(d.first, s.off[s.nrec]);
	coll_free(&c);
	free(b);
	free(s.bytes);
}

Test(spool_read, an_argv_bigger_than_any_writer_makes_is_damage)
{
	struct ag_spool sp;
	struct coll c;
	struct ag_spool_damage d;
	size_t big = AG_ARGV_MAX + 8;
	char *words = calloc(big, 1);   /* big empty words: a huge JSON array */

	cr_assert_not_null(words);
	spool_init(&sp, S, "sessArgv");
	struct ag_field f[] = {{AG_T_OP, 4, "exec"}, {AG_T_ARGV, (uint32_t)big, words}};
	cr_assert_eq(ag_spool_append(&sp, AG_REC_EVENT, 0, 1, 0, f, 2, NULL), 0);
	cr_assert_eq(append_event(&sp, "/after", 0, 2, NULL), 0);
	char path[AG_PATH_MAX];
	snprintf(path, sizeof path, "%s", sp.path);
	ag_spool_forget(&sp);
	cr_assert_eq(read_dmg(path, &c, &d), 0);
	cr_assert_eq(c.n, 2, "%zu records", c.n);
	cr_expect_eq(c.r[0].type, AG_REC_PROC);
	cr_expect_str_eq(c.r[1].field[AG_T_PATH], "/after");
	cr_expect_gt(d.bytes, big);
	coll_free(&c);
	free(words);
}

Test(spool_read, truncation_is_counted)
{
	struct sample s;
	struct coll c;
	struct ag_spool_damage d;
	char p[AG_PATH_MAX];

	make_sample(&s, 20);
	ut_fmt(p, sizeof p, "%s/cut.spool", S);
	write_variant(p, &s, s.off[8] + 10);
	cr_assert_eq(read_dmg(p, &c, &d), 0);
	cr_expect_eq(c.n, 8);
	cr_expect_eq(d.missing, s.off[s.nrec] - (s.off[8] + 10));
	cr_expect_gt(d.bytes, 0, "the cut record's bytes");
	coll_free(&c);
	free(s.bytes);
}

Test(spool_read, what_is_not_a_regular_file_is_refused_without_blocking)
{
	char p[AG_PATH_MAX];
	int calls = 0;

	ut_fmt(p, sizeof p, "%s/fifo.spool", S);
	cr_assert_eq(mkfifo(p, 0600), 0);
	errno = 0;
	cr_expect_eq(ag_spool_read(p, count_only, &calls), -1);
	cr_expect_eq(errno, EINVAL);
	ut_fmt(p, sizeof p, "%s/null.spool", S);
	cr_assert_eq(symlink("/dev/zero", p), 0);
	cr_expect_eq(ag_spool_read(p, count_only, &calls), -1);
	cr_expect_eq(calls, 0);
}

/* Random damage anywhere after the header must never crash the reader or
 * hand out a field outside its record. */
Test(spool_read, random_damage_never_crashes)
{
	struct sample s;
	char p[AG_PATH_MAX];
	unsigned seed = 12345;

	make_sample(&s, 40);
	ut_fmt(p, sizeof p, "%s/fuzz.spool", S);
	char *b = malloc(s.size);
	cr_assert_not_null(b);
	for (int iter = 0; iter < 400; iter++) {
		memcpy(b, s.bytes, s.size);
		int flips = 1 + rand_r(&seed) % 16;
		for (int k = 0; k < flips; k++) {
			size_t at = HDR + (size_t)rand_r(&seed) % (s.off[s.nrec] - HDR + 64);
			if (at < s.size)
				b[at] = (char)rand_r(&seed);
		}
		if (iter % 5 == 0)
			set_used(b, (uint64_t)rand_r(&seed) % (s.size * 2));
		size_t size = iter % 7 == 0 ? HDR + (size_t)rand_r(&seed) % (s.size - HDR) : s.size;
		ut_write(p, b, size);
		struct coll c;
		memset(&c, 0, sizeof c);
		cr_assert_eq(ag_spool_read(p, collect, &c), 0, "iteration %d", iter);
		cr_assert_not(c.bad_bounds, "iteration %d: a field outside its record", iter);
		cr_assert_leq(c.n, s.size / sizeof(struct ag_rec));
		coll_free(&c);
	}
	free(b);
	free(s.bytes);
}

/* ---- rows lost or wrong ---------------------------------------------------- */

Test(spool, argv_cut_at_the_cap_is_counted_in_its_own_field)
{
	struct ag_spool sp;
	static char big[1000];
	const char *argv[40];
	char path[AG_PATH_MAX];

	memset(big, 'x', sizeof big - 1);
	argv[0] = "prog";
	for (int i = 1; i < 39; i++)
		argv[i] = big;
	argv[39] = NULL;
	spool_init(&sp, S, "sessC");
	struct ag_field f[] = {
		{AG_T_OP, 4, "exec"},
		{AG_T_ARGV | AG_FIELD_ARGV, 0, argv},
	};
	cr_assert_eq(ag_spool_append(&sp, AG_REC_EVENT, 0, 1, 0, f, 2, NULL), 0);
	cr_assert_eq(append_event(&sp, "/short", 0, 2, NULL), 0);
	only_spool(S, path);
	struct coll c;
	read_all(path, &c);
	cr_assert_eq(c.n, 3);
	/* "prog" and 32 words of 1000 bytes fit in 32 KiB; 6 words do not. */
	cr_expect_eq(c.r[1].flen[AG_T_ARGV], 5 + 32 * 1000);
	cr_assert_not_null(c.r[1].field[AG_T_ARGV_CUT]);
	cr_assert_eq(c.r[1].flen[AG_T_ARGV_CUT], 16);
	int64_t cut[2];
	memcpy(cut, c.r[1].field[AG_T_ARGV_CUT], 16);
	cr_expect_eq(cut[0], 6 * 1000);
	cr_expect_eq(cut[1], 6);
	/* An argv that fits has no such field (the process record's). */
	cr_expect_null(c.r[0].field[AG_T_ARGV_CUT]);
	coll_free(&c);
	ag_spool_forget(&sp);
}

Test(spool, a_deleted_spool_is_replaced_with_a_gap_and_the_session_record)
{
	struct ag_spool sp;
	char dir[AG_PATH_MAX], first[AG_PATH_MAX];
	static int64_t start = 42;
	static struct ag_field sess[] = {
		{AG_T_SESSION, 5, "sessD"},
		{AG_T_START, 8, &start},
	};

	spool_init(&sp, S, "sessD");
	cr_assert_eq(ag_spool_set_session(&sp, sess, 2, 42), 0);
	cr_assert_eq(append_event(&sp, "/a", 0, 1, NULL), 0);
	strcpy(first, sp.path);
	ut_fmt(dir, sizeof dir, "%s/spool", S);
	ut_rmrf(dir);
	/* Looked for at least every 16 records: these are 40. */
	for (int i = 0; i < 40; i++)
		cr_assert_eq(append_event(&sp, "/b", 0, 10 + i, NULL), 0);
	cr_expect_str_neq(sp.path, first);
	struct coll c;
	read_all(sp.path, &c);
	cr_assert_geq(c.n, 4);
	cr_expect_eq(c.r[0].type, AG_REC_PROC);
	cr_expect_eq(c.r[1].type, AG_REC_SESSION, "the session record heads the new file");
	cr_expect_str_eq(c.r[1].field[AG_T_SESSION], "sessD");
	int gaps = 0, events = 0;
	for (size_t i = 0; i < c.n; i++) {
		if (c.r[i].type == AG_REC_GAP) {
			gaps++;
			cr_expect(strstr(c.r[i].field[AG_T_WHAT], "deleted while in use") != NULL,
				  "%s", c.r[i].field[AG_T_WHAT]);
		}
		events += c.r[i].type == AG_REC_EVENT;
	}
	cr_expect_eq(gaps, 1);
	cr_expect_geq(events, 40 - 15);
	coll_free(&c);
	ag_spool_forget(&sp);
}
