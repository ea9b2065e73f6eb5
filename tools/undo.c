/* A restore as a session of its own, and what sessions leave (undo.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "gitrefs.h"
#include "undo.h"

struct undo_end {
	char *path;
	char kind[16];
	int64_t mode, size, mtime_ns, ctime_ns, ino;
	char sha256[AG_HASH_HEX];
	char *link_target;
};

static void random_hex(char *out, size_t nbytes)
{
	unsigned char r[16];

	if (nbytes > sizeof r)
		nbytes = sizeof r;
	if (getrandom(r, nbytes, GRND_NONBLOCK) != (ssize_t)nbytes) {
		uint64_t x = (uint64_t)ag_now_ns() ^ ((uint64_t)getpid() << 32);
		for (size_t i = 0; i < nbytes; i++)
			r[i] = (unsigned char)(x >> (8 * (i % 8)));
	}
	for (size_t i = 0; i < nbytes; i++)
		sprintf(out + 2 * i, "%02x", r[i]);
}

int undo_begin(struct undo *u, struct cli_db *d, int argc, char **argv,
	       const char *workspace, const char *home, const char *undoes)
{
	memset(u, 0, sizeof *u);
	u->d = d;
	u->argc = argc;
	u->argv = argv;
	u->workspace = workspace ? strdup(workspace) : NULL;
	u->home = home ? strdup(home) : NULL;
	u->undoes = undoes ? strdup(undoes) : NULL;
	u->pending = 1;
	return 0;
}

/* The session row, when there is first something to record: a restore
 * that changes nothing is no session. */
static int start(struct undo *u)
{
	char err[1024], rnd[8];
	time_t t = time(NULL);
	struct tm tm;
	int argc = u->argc;
	char **argv = u->argv;
	struct cli_db *d = u->d;

	if (!u->pending)
		return u->on ? 0 : -1;
	u->pending = 0;
	gmtime_r(&t, &tm);
	strftime(u->id, sizeof u->id, "%Y%m%d-%H%M%S-", &tm);
	random_hex(rnd, 3);
	strncat(u->id, rnd, sizeof u->id - strlen(u->id) - 1);

	json_t *a = json_array();
	for (int i = 0; a && i < argc; i++) {
		json_t *w = json_string(argv[i]);   /* NULL: not UTF-8 */
		json_array_append_new(a, w ? w : json_string("?"));
	}
	char *argv_json = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	struct ag_session_info info = {
		.id = u->id, .argv_json = argv_json ? argv_json : "[]", .mode = "restore",
		.enforce = 1, .rules = "(none: a restore)", .rules_hash = "",
		.workspace = u->workspace, .state_dir = d->state_dir, .pid = getpid(),
		.start_ns = ag_now_ns(), .home = u->home,
	};
	int rc = ag_audit_session_begin(d->db, &info, err, sizeof err);
	free(argv_json);
	if (rc < 0) {
		cli_err("%s: nothing it would displace can be kept, so nothing is restored", err);
		return -1;
	}
	sqlite3_stmt *st = cli_prepare(d, "UPDATE sessions SET undoes = ?1 WHERE id = ?2");
	if (st) {
		sqlite3_bind_text(st, 1, u->undoes, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, u->id, -1, SQLITE_STATIC);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	u->sp.lk = 0;
	u->sp.state_dir = d->state_dir;
	u->sp.session = u->id;
	u->sp.argv = (const char *const *)argv;
	u->sp.pid = getpid();
	u->on = 1;
	return 0;
}

static int record(struct undo *u, const char *path, const char *reason,
		  const struct ag_snapshot *s)
{
	struct ag_field f[32];
	struct ag_snap_vals v;
	int64_t enforced = 1;
	int n = 0;

#define ADD(tag, str) (f[n++] = (struct ag_field){tag, (uint32_t)strlen(str), str})
	ADD(AG_T_OP, "restore");
	ADD(AG_T_PATH, path);
	ADD(AG_T_DECISION, "snapshot");
	f[n++] = (struct ag_field){AG_T_ENFORCED, 8, &enforced};
	ADD(AG_T_RULE, "restore");
	ADD(AG_T_REASON, reason);
#undef ADD
	n = ag_snapshot_fields(s, f, n, &v);
	return ag_spool_append(&u->sp, AG_REC_EVENT, 0, ag_now_ns(), 0, f, n, NULL);
}

int undo_keep(struct undo *u, int dir, const char *name, const char *path, int how)
{
	struct ag_snapshot s;

	if (start(u) < 0) {
		errno = EROFS;
		return -1;
	}
	/* The directory's times before restore changes it: its own undo puts
	 * them back, as a session restore does for the guard's snapshots. */
	struct stat pst;
	int have_p = fstat(dir, &pst) == 0;
	int rc = ag_snapshot_take_at(u->d->state_dir, u->id, dir, name, path, how, &s);
	if (rc == 1)
		return 0;
	if (rc < 0)
		return -1;
	s.parent_at = have_p ? pst.st_atim.tv_sec * 1000000000LL + pst.st_atim.tv_nsec : -1;
	s.parent_mt = have_p ? pst.st_mtim.tv_sec * 1000000000LL + pst.st_mtim.tv_nsec : -1;
	if (record(u, path, how == AG_SNAP_MOVE ? "restore removed what was here; kept"
			    : "restore replaced what was here; kept", &s) < 0) {
		/* Not recorded: put it back as it was, and do not displace it. */
		int e = errno;
		if (s.moved)
			renameat(AT_FDCWD, s.abs, dir, name);
		else if (s.store[0])
			unlink(s.abs);
		errno = e;
		return -1;
	}
	if (how == AG_SNAP_MOVE && !s.moved && !S_ISDIR(s.st.st_mode) && unlinkat(dir, name, 0) < 0)
		return -1;
	u->kept++;
	return 0;
}

int undo_prepare(struct undo *u, struct ag_snapshot *s)
{
	if (start(u) < 0) {
		errno = EROFS;
		return -1;
	}
	memset(s, 0, offsetof(struct ag_snapshot, link_target));
	s->link_target[0] = 0;
	random_hex(s->id, 6);
	s->parent_at = s->parent_mt = -1;
	if (ag_fmt(s->store, sizeof s->store, "snapshots/%s/%s", u->id, s->id) < 0 ||
	    ag_fmt(s->abs, sizeof s->abs, "%s/snapshots/%s", u->d->state_dir, u->id) < 0 ||
	    ag_mkdirs(s->abs, 0700) < 0 ||
	    ag_fmt(s->abs, sizeof s->abs, "%s/%s", u->d->state_dir, s->store) < 0)
		return -1;
	return 0;
}

int undo_record(struct undo *u, const char *path, const char *reason, const struct ag_snapshot *s)
{
	if (record(u, path, reason, s) < 0)
		return -1;
	u->kept++;
	return 0;
}

int undo_keep_git(struct undo *u, const struct ag_git_repo *r, const char *path)
{
	struct ag_snapshot s;
	char *scratch = NULL;

	if (start(u) < 0) {
		errno = EROFS;
		return -1;
	}
	memset(&s, 0, offsetof(struct ag_snapshot, link_target));
	s.link_target[0] = 0;
	random_hex(s.id, 6);
	s.kind = "git";
	s.path = path;
	s.parent_at = s.parent_mt = -1;
	if (ag_fmt(s.store, sizeof s.store, "snapshots/%s/%s", u->id, s.id) < 0 ||
	    ag_fmt(s.abs, sizeof s.abs, "%s/snapshots/%s", u->d->state_dir, u->id) < 0 ||
	    ag_mkdirs(s.abs, 0700) < 0 ||
	    ag_fmt(s.abs, sizeof s.abs, "%s/%s", u->d->state_dir, s.store) < 0 ||
	    !(scratch = malloc(32768)))
		return -1;
	int fd = open(s.abs, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = fd < 0 ? -1 : ag_git_record(r, NULL, AG_GIT_REFS, s.id, fd, scratch, 32768);
	int e = errno;
	if (rc == 0 && fstat(fd, &s.st) < 0)
		rc = -1, e = errno;
	if (fd >= 0)
		close(fd);
	free(scratch);
	if (rc == 0 && record(u, path, "restore moved these refs: what they were is kept", &s) < 0)
		rc = -1, e = errno;
	if (rc < 0) {
		unlink(s.abs);
		errno = e;
		return -1;
	}
	u->kept++;
	return 0;
}

int undo_made(struct undo *u, const char *path, int is_dir)
{
	struct ag_snapshot s;

	if (start(u) < 0)
		return 0;
	memset(&s, 0, offsetof(struct ag_snapshot, link_target));
	s.link_target[0] = 0;
	random_hex(s.id, 6);
	s.kind = "absent";
	s.path = path;
	s.st.st_mode = is_dir ? S_IFDIR : 0;
	s.parent_at = s.parent_mt = -1;
	u->kept++;
	return record(u, path, is_dir ? "restore made this directory; nothing was here"
			      : "restore made this; nothing was here", &s);
}

/* What is at dir/name now, as an end row (sha: known, else hashed). */
static void end_now(int dir, const char *name, const char *sha, struct undo_end *e)
{
	struct stat st;
	char proc[64 + AG_PATH_MAX];

	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		snprintf(e->kind, sizeof e->kind, "absent");
		return;
	}
	e->mode = st.st_mode;
	e->size = st.st_size;
	e->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	e->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
	e->ino = (int64_t)st.st_ino;
	snprintf(e->kind, sizeof e->kind, "%s", S_ISREG(st.st_mode) ? "file"
		 : S_ISLNK(st.st_mode) ? "symlink" : S_ISDIR(st.st_mode) ? "dir" : "other");
	if (S_ISREG(st.st_mode) && sha) {
		snprintf(e->sha256, sizeof e->sha256, "%s", sha);
	} else if (S_ISREG(st.st_mode)) {
		if (dir != AT_FDCWD)
			snprintf(proc, sizeof proc, "/proc/self/fd/%d/%s", dir, name);
		if (ag_sha256_file_hex(dir != AT_FDCWD ? proc : name, e->sha256) < 0)
			e->sha256[0] = 0;
	}
	if (S_ISLNK(st.st_mode)) {
		char t[AG_PATH_MAX];
		ssize_t n = readlinkat(dir, name, t, sizeof t - 1);
		t[n > 0 ? n : 0] = 0;
		e->link_target = strdup(t);
	}
}

void undo_left(struct undo *u, const char *path, int dir, const char *name, const char *sha)
{
	if (!u->on)
		return;
	if (u->nends == u->capends) {
		size_t cap = u->capends ? 2 * u->capends : 64;
		struct undo_end *v = realloc(u->ends, cap * sizeof *v);
		if (!v)
			return;   /* its undo then calls this path a conflict: safe */
		u->ends = v;
		u->capends = cap;
	}
	struct undo_end *e = &u->ends[u->nends];
	memset(e, 0, sizeof *e);
	e->path = strdup(path);
	if (!e->path)
		return;
	end_now(dir, name, sha, e);
	u->nends++;
}

static int put_ends(struct cli_db *d, const char *session, struct undo_end *v, size_t n)
{
	sqlite3_stmt *st = cli_prepare(d, "INSERT OR REPLACE INTO ends(session, path, kind, mode, "
				       "size, mtime_ns, ctime_ns, ino, sha256, link_target) "
				       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
	int rc = 0;

	if (!st)
		return -1;
	sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, v[i].path, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, v[i].kind, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, v[i].mode);
		sqlite3_bind_int64(st, 5, v[i].size);
		sqlite3_bind_int64(st, 6, v[i].mtime_ns);
		sqlite3_bind_int64(st, 7, v[i].ctime_ns);
		sqlite3_bind_int64(st, 8, v[i].ino);
		if (v[i].sha256[0])
			sqlite3_bind_text(st, 9, v[i].sha256, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 9);
		sqlite3_bind_text(st, 10, v[i].link_target, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = -1;
	}
	sqlite3_finalize(st);
	if (sqlite3_exec(d->db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		rc = -1;
	if (rc < 0)
		cli_warn("cannot record what session %s left: %s", session, sqlite3_errmsg(d->db));
	return rc;
}

static void free_ends(struct undo_end *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].link_target);
	}
	free(v);
}

int undo_end(struct undo *u, int quiet)
{
	char err[1024];
	int rc = 0;

	free(u->workspace);
	free(u->home);
	free(u->undoes);
	u->workspace = u->home = u->undoes = NULL;
	if (!u->on) {
		free_ends(u->ends, u->nends);
		u->ends = NULL;
		u->nends = 0;
		return 0;
	}
	ag_spool_forget(&u->sp);
	if (ag_audit_ingest(u->d->db, u->d->state_dir, 1, err, sizeof err) < 0) {
		cli_warn("%s", err);
		rc = -1;
	}
	if (put_ends(u->d, u->id, u->ends, u->nends) < 0)
		rc = -1;
	free_ends(u->ends, u->nends);
	u->ends = NULL;
	u->nends = 0;
	if (ag_audit_session_end(u->d->db, u->id, ag_now_ns(), 0, err, sizeof err) < 0 ||
	    ag_audit_write_head(u->d->db, u->d->state_dir, u->id, err, sizeof err) < 0) {
		cli_warn("%s", err);
		rc = -1;
	}
	if (u->kept && !quiet) {
		printf("undo this restore: agentguard restore --session ");
		cli_put_word(stdout, u->id);
		putchar('\n');
	}
	u->on = 0;
	return rc;
}

int cli_record_ends(struct cli_db *d, const char *session)
{
	/* Every name the session's snapshots kept, and the names its
	 * snapshotted renames made. */
	sqlite3_stmt *st = cli_prepare(d, "SELECT path FROM snapshots WHERE session = ?1 "
				       "UNION SELECT target FROM events WHERE session = ?1 AND "
				       "op = 'rename' AND decision = 'snapshot' AND target IS NOT NULL");
	struct undo_end *v = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p = cli_col(st, 0);
		if (!p || !cli_plain_path(p))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			struct undo_end *nv = realloc(v, cap * sizeof *nv);
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		memset(&v[n], 0, sizeof v[n]);
		if (!(v[n].path = strdup(p))) {
			rc = SQLITE_NOMEM;
			break;
		}
		end_now(AT_FDCWD, p, NULL, &v[n]);
		n++;
	}
	sqlite3_finalize(st);
	int out = rc == SQLITE_DONE ? put_ends(d, session, v, n) : cli_db_error(d, "cannot read the snapshots");
	free_ends(v, n);
	return out;
}

int end_lookup(struct cli_db *d, sqlite3_stmt **cache, const char *session, const char *path,
	       struct end_state *e)
{
	memset(e, 0, sizeof *e);
	if (!*cache)
		*cache = cli_prepare(d, "SELECT kind, size, mtime_ns, ctime_ns, ino, sha256, "
				     "link_target FROM ends WHERE session = ?1 AND path = ?2");
	sqlite3_stmt *st = *cache;
	if (!st)
		return -1;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, session, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW) {
		e->known = 1;
		snprintf(e->kind, sizeof e->kind, "%s", cli_col(st, 0) ? cli_col(st, 0) : "");
		e->size = sqlite3_column_int64(st, 1);
		e->mtime_ns = sqlite3_column_int64(st, 2);
		e->ctime_ns = sqlite3_column_int64(st, 3);
		e->ino = sqlite3_column_int64(st, 4);
		snprintf(e->sha256, sizeof e->sha256, "%s", cli_col(st, 5) ? cli_col(st, 5) : "");
		snprintf(e->link_target, sizeof e->link_target, "%s",
			 cli_col(st, 6) ? cli_col(st, 6) : "");
	}
	sqlite3_reset(st);
	return 0;
}

int end_matches(int dir, const char *name, const struct end_state *e)
{
	struct stat st;

	if (!e->known)
		return 0;
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT && strcmp(e->kind, "absent") == 0;
	if (strcmp(e->kind, "file") == 0) {
		char proc[64 + AG_PATH_MAX], hex[AG_HASH_HEX];
		if (!S_ISREG(st.st_mode) || st.st_size != e->size)
			return 0;
		int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		int64_t ct = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
		if ((int64_t)st.st_ino == e->ino && mt == e->mtime_ns && ct == e->ctime_ns)
			return 1;
		snprintf(proc, sizeof proc, "/proc/self/fd/%d/%s", dir, name);
		return e->sha256[0] && ag_sha256_file_hex(proc, hex) == 0 &&
		       strcmp(hex, e->sha256) == 0;
	}
	if (strcmp(e->kind, "symlink") == 0) {
		char t[AG_PATH_MAX];
		ssize_t n = S_ISLNK(st.st_mode) ? readlinkat(dir, name, t, sizeof t - 1) : -1;
		if (n < 0)
			return 0;
		t[n] = 0;
		return strcmp(t, e->link_target) == 0;
	}
	if (strcmp(e->kind, "dir") == 0)
		return S_ISDIR(st.st_mode);
	return strcmp(e->kind, "other") == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode) &&
	       !S_ISDIR(st.st_mode);
}
