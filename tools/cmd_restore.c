/*
 * agentguard restore: put snapshots back.
 *
 * Everything under the target tree is reached from a directory fd, one
 * component at a time with O_NOFOLLOW, and created with *at() calls
 * relative to its parent: a symlink planted in the tree (by the agent,
 * say) can never redirect a restore somewhere else. New content is built
 * under a temporary name and renamed into place, so a reader never sees
 * a half-restored file. What a restore replaces or removes is kept first
 * (undo.c): a restore is a session, and restoring that undoes it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "gitrefs.h"
#include "gitrestore.h"
#include "snapshot.h"
#include "pgsnap.h"
#include "undo.h"

static const char help[] =
"Usage: agentguard restore [OPTIONS] SNAPID...\n"
"       agentguard restore [OPTIONS] --session ID [--path GLOB] [--before T]\n"
"\n"
"Put snapshotted files, symlinks, directories, SQLite databases and git refs\n"
"back (a git record: the refs a git command moved, in one 'git update-ref'\n"
"transaction, HEAD and the stash's entries; for a push, the 'git push' that\n"
"puts the remote back is printed, and run with --push):\n"
"content, mode, access and modification times, and the owner when run as\n"
"root. FIFOs are made again, and device nodes too when run as root; a socket\n"
"cannot be restored (the program that listens on it makes it): it is\n"
"reported, and is a failure only when asked for by its id. Snapshot ids are\n"
"in 'agentguard report' (a unique prefix is enough); 'agentguard show' and\n"
"'agentguard diff' say what one holds.\n"
"\n"
"With --session, the session is reversed: every path goes back to its state\n"
"before the session's first destructive operation on it (the earliest\n"
"snapshot; restore a later one by its id), a name the session's rename gave\n"
"a file (mv a b: b) is taken away again, and what the session made itself\n"
"(files born during it: temporary files, an editor's swap file, a temporary\n"
"file saved over its final name) is neither brought back nor removed.\n"
"What the session left at a path is replaced; anything else there (changed\n"
"after the session: neither what the session left, as 'agentguard run'\n"
"recorded it at the end, nor what was there before) is a conflict, skipped\n"
"unless --force. Directories are made first, then files and links, then\n"
"directory modes and times are set.\n"
"\n"
"A restore is itself recorded as a session: whatever it replaces or removes\n"
"is kept in the snapshot store first, and what it makes is noted, so\n"
"'agentguard restore --session' of the restore (the command it prints)\n"
"undoes it.\n"
"\n"
"Options:\n"
"  --session ID     reverse the whole session\n"
"  --path GLOB      with --session: only paths matching GLOB (*, ?, **)\n"
"  --before T       with --session: only what the session did before T (a UTC\n"
"                   time, 2026-05-01T12:00:00Z, or a duration ago: 30s, 15m, 2h)\n"
"  --dry-run        say what would happen, change nothing\n"
"  --to DIR         restore under DIR + the original absolute path\n"
"  --force          replace what is there even if it is not what the session\n"
"                   left (what it replaces is kept); --overwrite is the same\n"
"  --keep-both      restore next to what exists, as NAME.restored-SNAPID\n"
"  --allow-outside  restore paths outside the session's workspace and home\n"
"  --preserve-owner as root: restore the recorded owner, and setuid/setgid bits\n"
"  --to-table NAME  a server pre-image of one table: restore it beside the\n"
"                   original, as NAME in the same schema\n"
"  --push           git: run the 'git push' that puts a remote back after a\n"
"                   push (without it, the command is printed)\n"
"  -q, --quiet      only failures, conflicts and the summary line\n"
"  --state-dir DIR  where audit.db and snapshots/ live\n"
"\n"
"A snapshot record is not taken on faith (the session's own processes wrote\n"
"it): its path must lie in the session's workspace or home (or --to DIR, or\n"
"--allow-outside), and never in the state dir; its content must be in the\n"
"store and match its sha256; a setuid or setgid mode is restored only by root\n"
"with --preserve-owner, and as root without it a file gets the owner of the\n"
"directory it is restored into.\n"
"\n"
"By id, with --to, or for a session whose end was not recorded (not run by\n"
"'agentguard run'), nothing that exists is replaced without --force: such\n"
"items are skipped and reported. A symlink on the way to a path is never\n"
"followed; that item fails. Every item is reported (-q: only failures and\n"
"conflicts); the exit status is 1 if any failed or was skipped because\n"
"something else is there.\n";

enum { OPT_SESSION = 1, OPT_PATH, OPT_DRY_RUN, OPT_TO, OPT_OVERWRITE, OPT_KEEP_BOTH,
       OPT_ALLOW_OUTSIDE, OPT_PRESERVE_OWNER, OPT_BEFORE, OPT_TO_TABLE, OPT_PUSH, OPT_QUIET = 'q' };

static const struct option options[] = {
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "path", required_argument, NULL, OPT_PATH },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "to", required_argument, NULL, OPT_TO },
	{ "force", no_argument, NULL, OPT_OVERWRITE },
	{ "overwrite", no_argument, NULL, OPT_OVERWRITE },
	{ "before", required_argument, NULL, OPT_BEFORE },
	{ "keep-both", no_argument, NULL, OPT_KEEP_BOTH },
	{ "allow-outside", no_argument, NULL, OPT_ALLOW_OUTSIDE },
	{ "preserve-owner", no_argument, NULL, OPT_PRESERVE_OWNER },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "to-table", required_argument, NULL, OPT_TO_TABLE },
	{ "push", no_argument, NULL, OPT_PUSH },
	{ NULL, 0, NULL, 0 },
};

enum kind { K_FILE, K_SYMLINK, K_DIR, K_SQLITE, K_FIFO, K_DEVICE, K_SOCKET, K_OTHER, K_ABSENT,
	    K_PGSQL, K_MYSQL, K_GIT };

struct item {
	char *id, *path, *link_target, *store, *sha256;
	enum kind kind;
	mode_t mode;
	mode_t fmt;                 /* S_IFMT bits of the original */
	uid_t uid;
	gid_t gid;
	int has_owner, has_mode;
	int parents_owner;          /* as root without --preserve-owner: owned as its
	                               directory is, not as the row says */
	struct timespec times[2];   /* atime, mtime; UTIME_OMIT when unknown */
	int64_t created;
	int dir_done;               /* dir: created or (overwrite) adopted */
	struct timespec ptimes[2];  /* the parent directory's times before the
	                               session first deleted anything in it */
	int has_ptimes;
	int changed_parent;         /* restoring it changed its parent's times */
	int64_t btime;              /* the kept inode's birth time (0: unknown) */
	int64_t restored_ns;        /* when it was put back (0: not) */
};

struct restore {
	struct cli_db d;
	struct cli_opts co;
	int dry_run, overwrite, keep_both, allow_outside, preserve_owner, quiet, push;
	size_t done, total;         /* for the progress line */
	int progress;
	const char *to;
	int root;                   /* fd of the target tree's top */
	int root_missing;           /* dry run: --to DIR does not exist yet */
	char to_abs[AG_PATH_MAX];
	long restored, skipped, failed, superseded;
	long conflicts;             /* skips that --overwrite/--keep-both would settle */
	long unrestorable;          /* sockets met in a --session restore */
	int by_id;                  /* items were asked for by id */
	/* A session restore: the session, when it started, whether `run`
	 * recorded what it left (the ends table), and the cutoff of --before. */
	char session[256];
	int64_t session_start, before_ns;
	int has_ends;
	sqlite3_stmt *end_st;
	long own;                   /* made during the session: left as they are */
	long removed;
	struct undo u;              /* this restore, recorded as a session */
};

static void item_free(struct item *it)
{
	free(it->id);
	free(it->path);
	free(it->link_target);
	free(it->store);
	free(it->sha256);
}

/* ---- loading ------------------------------------------------------------- */

#define SNAP_COLS "id, kind, path, mode, uid, gid, atime_ns, mtime_ns, sha256, " \
		  "link_target, store, created_ns, parent_atime_ns, parent_mtime_ns, btime_ns"

static struct timespec ns_time(sqlite3_stmt *st, int i)
{
	struct timespec t = { 0, UTIME_OMIT };
	int64_t ns;

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return t;
	ns = sqlite3_column_int64(st, i);
	t.tv_sec = ns / 1000000000;
	t.tv_nsec = ns % 1000000000;
	if (t.tv_nsec < 0) {
		t.tv_sec--;
		t.tv_nsec += 1000000000;
	}
	return t;
}

static char *dup_col(sqlite3_stmt *st, int i)
{
	return cli_col(st, i) ? strdup(cli_col(st, i)) : NULL;
}

/* 0, or -1 when the row is unusable (reason in why). */
static int item_from_row(sqlite3_stmt *st, struct item *it, const char **why)
{
	static const char *const kinds[] = { "file", "symlink", "dir", "sqlite", "fifo",
					     "device", "socket", "other", "absent", "pgsql",
					     "mysql", "git" };
	const char *k = cli_col(st, 1);

	memset(it, 0, sizeof *it);
	it->id = dup_col(st, 0);
	it->path = dup_col(st, 2);
	it->has_mode = sqlite3_column_type(st, 3) != SQLITE_NULL;
	it->mode = (mode_t)sqlite3_column_int(st, 3) & 07777;
	it->fmt = (mode_t)sqlite3_column_int(st, 3) & S_IFMT;
	it->has_owner = sqlite3_column_type(st, 4) != SQLITE_NULL &&
			sqlite3_column_type(st, 5) != SQLITE_NULL;
	it->uid = (uid_t)sqlite3_column_int64(st, 4);
	it->gid = (gid_t)sqlite3_column_int64(st, 5);
	it->times[0] = ns_time(st, 6);
	it->times[1] = ns_time(st, 7);
	it->sha256 = dup_col(st, 8);
	it->link_target = dup_col(st, 9);
	it->store = dup_col(st, 10);
	it->created = sqlite3_column_int64(st, 11);
	it->ptimes[0] = ns_time(st, 12);
	it->ptimes[1] = ns_time(st, 13);
	it->has_ptimes = it->ptimes[0].tv_nsec != UTIME_OMIT || it->ptimes[1].tv_nsec != UTIME_OMIT;
	it->btime = sqlite3_column_int64(st, 14);
	if (!it->id || !it->path) {
		*why = "the snapshot record has no id or path";
		return -1;
	}
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (k && strcmp(k, kinds[i]) == 0) {
			it->kind = (enum kind)i;
			/* Older logs called FIFOs, sockets and devices 'other'; the
			 * mode still says which. */
			if (it->kind == K_OTHER)
				it->kind = S_ISFIFO(it->fmt) ? K_FIFO : S_ISSOCK(it->fmt) ? K_SOCKET
					 : S_ISCHR(it->fmt) || S_ISBLK(it->fmt) ? K_DEVICE : K_OTHER;
			return 0;
		}
	*why = "the snapshot record has an unknown kind";
	return -1;
}

struct items {
	struct item *v;
	size_t n;
};

static int items_push(struct items *l, const struct item *it)
{
	struct item *v = realloc(l->v, (l->n + 1) * sizeof *v);

	if (!v)
		return -1;
	l->v = v;
	v[l->n++] = *it;
	return 0;
}

static void items_free(struct items *l)
{
	for (size_t i = 0; i < l->n; i++)
		item_free(&l->v[i]);
	free(l->v);
}

/* "VERB PATH: WHY", escaped: the reasons carry rows' text (ids, store names). */
static void say(const char *verb, const char *path, const char *fmt, va_list ap)
{
	char *why = NULL;

	printf("%s ", verb);
	cli_put(stdout, path);
	fputs(": ", stdout);
	if (vasprintf(&why, fmt, ap) < 0)
		why = NULL;
	cli_put(stdout, why ? why : fmt);
	free(why);
	putchar('\n');
}

static void fail(struct restore *r, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct restore *r, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(r->dry_run ? "would fail" : "failed", path, fmt, ap);
	va_end(ap);
	r->failed++;
}

/* An item left as it is: said unless -q; a conflict is what --overwrite or
 * --keep-both would have settled, and makes the exit status 1. */
static void skip(struct restore *r, const char *dest, int conflict, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void skip(struct restore *r, const char *dest, int conflict, const char *fmt, ...)
{
	va_list ap;

	r->skipped++;
	r->conflicts += conflict;
	if (r->quiet && !conflict)
		return;
	va_start(ap, fmt);
	say(r->dry_run ? "would skip" : "skipped", dest, fmt, ap);
	va_end(ap);
}

static int load_ids(struct restore *r, char **ids, int n, struct items *l)
{
	sqlite3_stmt *st = cli_prepare(&r->d,
		"SELECT " SNAP_COLS " FROM snapshots WHERE id = ?1 UNION ALL "
		"SELECT * FROM (SELECT " SNAP_COLS " FROM snapshots WHERE "
		"substr(id, 1, length(?1)) = ?1 AND NOT EXISTS "
		"(SELECT 1 FROM snapshots WHERE id = ?1) LIMIT 2)");

	if (!st)
		return -1;
	for (int i = 0; i < n; i++) {
		struct item it;
		const char *why = NULL;
		int found = 0, bad = 0;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW)
			if (found++ == 0 && item_from_row(st, &it, &why) < 0)
				bad = 1;
		if (found == 0) {
			fail(r, ids[i], "no snapshot with this id in %s (see 'agentguard report')",
			     r->d.path);
		} else if (bad) {
			fail(r, ids[i], "%s", why);
			item_free(&it);
		} else if (found > 1) {
			fail(r, ids[i], "ambiguous snapshot id: give more of it");
			item_free(&it);
		} else if (items_push(l, &it) < 0) {
			item_free(&it);
			sqlite3_finalize(st);
			cli_err("out of memory");
			return -1;
		}
	}
	sqlite3_finalize(st);
	return 0;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->path, ((const struct item *)b)->path);
}

/* The session's renames onto a name where nothing was, of a file that was
 * there before the session: that name was absent before, and goes again
 * when the file comes back under its old one (mv a b: a returns, b goes).
 * A rename of a file the session made itself (a temporary file saved
 * over its final name) is the session making that name: left as it is. */
static int load_renamed_onto(struct restore *r, const char *glob, struct items *l)
{
	sqlite3_stmt *st = cli_prepare(&r->d,
		"SELECT e.id, e.target, e.time_ns FROM events e WHERE e.session = ?1 "
		"AND e.op = 'rename' AND e.decision = 'snapshot' AND e.snapshot IS NULL "
		"AND (e.errno IS NULL OR e.errno = 0) AND e.target IS NOT NULL "
		"AND (?2 IS NULL OR path_glob(?2, e.target)) AND (?3 IS NULL OR e.time_ns < ?3) "
		"AND EXISTS (SELECT 1 FROM snapshots s WHERE s.event_uid = e.uid AND "
		"s.path = e.path AND (s.btime_ns IS NULL OR s.btime_ns < ?4)) "
		"ORDER BY e.target, e.time_ns");
	size_t n = l->n;
	int rc;

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, r->session, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, glob, -1, SQLITE_STATIC);
	if (r->before_ns)
		sqlite3_bind_int64(st, 3, r->before_ns);
	sqlite3_bind_int64(st, 4, r->session_start);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *target = cli_col(st, 1);
		int64_t t = sqlite3_column_int64(st, 2);
		struct item key = { .path = (char *)target }, *it;
		if (!target)
			continue;
		it = n ? bsearch(&key, l->v, n, sizeof l->v[0], by_path) : NULL;
		if (it && (it->kind == K_ABSENT || it->created < t))
			continue;   /* known before then */
		struct item a = { 0 };
		if (asprintf(&a.id, "rename@%lld", (long long)sqlite3_column_int64(st, 0)) < 0)
			a.id = NULL;
		a.path = strdup(target);
		a.kind = K_ABSENT;
		a.created = t;
		a.times[0].tv_nsec = a.times[1].tv_nsec = UTIME_OMIT;
		if (!a.id || !a.path) {
			item_free(&a);
			rc = SQLITE_NOMEM;
			break;
		}
		if (it) {
			/* Its snapshot came later: what it held was the session's. */
			item_free(it);
			*it = a;
			r->superseded++;
		} else if (items_push(l, &a) < 0) {
			item_free(&a);
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return cli_db_error(&r->d, "cannot read the session's renames");
	return 0;
}

static int load_session(struct restore *r, const char *session, const char *glob,
			struct items *l)
{
	sqlite3_stmt *st;
	int rc;

	if (cli_find_session(&r->d, session, r->session, sizeof r->session) < 0)
		return -1;
	st = cli_prepare(&r->d, "SELECT start_ns, EXISTS (SELECT 1 FROM ends WHERE session = ?1) "
				"FROM sessions WHERE id = ?1");
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, r->session, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		r->session_start = sqlite3_column_int64(st, 0);
		r->has_ends = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	/* Earliest first, so the first row per path is the one kept. */
	st = cli_prepare(&r->d, "SELECT " SNAP_COLS " FROM snapshots WHERE session = ?1 "
				"AND (?2 IS NULL OR path_glob(?2, path)) "
				"AND (?3 IS NULL OR created_ns < ?3) "
				"ORDER BY path, CASE WHEN kind IN ('pgsql', 'mysql') THEN link_target END, "
				"created_ns, rowid");
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, r->session, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, glob, -1, SQLITE_STATIC);
	if (r->before_ns)
		sqlite3_bind_int64(st, 3, r->before_ns);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct item it;
		const char *why = NULL;
		if (item_from_row(st, &it, &why) < 0) {
			fail(r, it.id ? it.id : "?", "%s", why);
			item_free(&it);
			continue;
		}
		/* Server pre-images of one database: the earliest of each
		 * set of tables. */
		const struct item *last = l->n ? &l->v[l->n - 1] : NULL;
		if (last && strcmp(last->path, it.path) == 0 &&
		    ((it.kind != K_PGSQL && it.kind != K_MYSQL) ||
		     (last->kind == it.kind && last->link_target &&
		     it.link_target && strcmp(last->link_target, it.link_target) == 0))) {
			r->superseded++;
			item_free(&it);
			continue;
		}
		if (items_push(l, &it) < 0) {
			item_free(&it);
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return cli_db_error(&r->d, "cannot read the snapshots");
	if (load_renamed_onto(r, glob, l) < 0)
		return -1;
	/* What the session made itself (its inode was born during it: a
	 * temporary file, an editor's swap file, a file it wrote and then
	 * rewrote) was not there before it: not brought back. */
	size_t keep = 0;
	for (size_t i = 0; i < l->n; i++) {
		struct item *it = &l->v[i];
		if (it->kind != K_ABSENT && it->btime > 0 && r->session_start > 0 &&
		    it->btime >= r->session_start) {
			if (!r->quiet) {
				printf("left ");
				cli_put(stdout, it->path);
				printf(": the session made it (snapshot %s); restore it by its id "
				       "if it is wanted\n", it->id);
			}
			r->own++;
			item_free(it);
			continue;
		}
		l->v[keep++] = *it;
	}
	l->n = keep;
	if (l->n == 0 && !r->failed && !r->own)
		printf("session %s has no snapshots%s\n", r->session, glob ? " matching the path" : "");
	return 0;
}

/* ---- the target tree ----------------------------------------------------- */

/* What the user sees for an item: where it goes. */
static void dest_of(const struct restore *r, const struct item *it, char *out, size_t n)
{
	if (!r->to || ag_fmt(out, n, "%s%s", strcmp(r->to_abs, "/") ? r->to_abs : "",
			     it->path) < 0)
		snprintf(out, n, "%s", it->path);
}

/* Restore made a directory (walked: its path under the target tree): its
 * own undo takes it away again. */
static void made_dir(struct restore *r, const char *walked, int parent, const char *name)
{
	char dest[AG_PATH_MAX + AG_PATH_MAX];

	if (!r->to || ag_fmt(dest, sizeof dest, "%s%s", strcmp(r->to_abs, "/") ? r->to_abs : "",
			     walked) < 0)
		snprintf(dest, sizeof dest, "%s", walked);
	undo_made(&r->u, dest, 1);
	undo_left(&r->u, dest, parent, name, NULL);
}

/*
 * Open the directory that holds path's last component, walking from the
 * root one component at a time without following symlinks, creating
 * missing directories unless this is a dry run. Returns the fd, -1 on
 * failure (why filled), or -2 in a dry run when a parent does not exist
 * (then nothing below it exists either).
 */
static int open_parent(struct restore *r, const char *path, const char **last,
		       char *why, size_t whylen)
{
	char walked[AG_PATH_MAX] = "";
	int fd;
	const char *s = path + 1;

	if (r->root_missing)
		return -2;
	fd = dup(r->root);
	if (fd < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	for (;;) {
		const char *e = strchr(s, '/');
		if (!e) {
			*last = s;
			return fd;
		}
		char comp[256];
		size_t n = (size_t)(e - s);
		memcpy(comp, s, n);
		comp[n] = 0;
		strncat(walked, "/", sizeof walked - strlen(walked) - 1);
		strncat(walked, comp, sizeof walked - strlen(walked) - 1);
		int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT) {
			if (r->dry_run) {
				close(fd);
				return -2;
			}
			if (mkdirat(fd, comp, 0777) < 0 && errno != EEXIST) {
				snprintf(why, whylen, "cannot create the directory %s: %s", walked,
					 strerror(errno));
				close(fd);
				return -1;
			}
			made_dir(r, walked, fd, comp);
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0) {
			int e2 = errno;
			struct stat st;
			if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
				snprintf(why, whylen, "%s is a symlink; refusing to follow it out of "
					 "the target tree (move it away, or restore with --to DIR)", walked);
			else if (e2 == ENOTDIR)
				snprintf(why, whylen, "%s is not a directory (move it away, or "
					 "restore with --to DIR)", walked);
			else
				snprintf(why, whylen, "cannot open %s: %s", walked, strerror(e2));
			close(fd);
			return -1;
		}
		close(fd);
		fd = nfd;
		s = e + 1;
	}
}

static int same_content(int dir, const char *name, const struct item *it)
{
	char proc[64 + 256], hex[AG_HASH_HEX];

	if (!it->sha256 || (it->kind != K_FILE && it->kind != K_SQLITE))
		return 0;
	snprintf(proc, sizeof proc, "/proc/self/fd/%d/%s", dir, name);
	return ag_sha256_file_hex(proc, hex) == 0 && strcmp(hex, it->sha256) == 0;
}

/* The owner to give what is restored into dir: 0, or 1 none to give. */
static int owner_of(int dir, const struct item *it, uid_t *uid, gid_t *gid)
{
	struct stat st;

	if (geteuid() != 0)
		return 1;
	if (it->parents_owner) {
		if (fstat(dir, &st) < 0)
			return 1;
		*uid = st.st_uid;
		*gid = st.st_gid;
		return 0;
	}
	if (!it->has_owner)
		return 1;
	*uid = it->uid;
	*gid = it->gid;
	return 0;
}

/* What is there has another mode, or (for root, who can put it back)
 * another owner, than the snapshot recorded. */
static int meta_differs(int dir, const struct stat *st, const struct item *it)
{
	uid_t uid;
	gid_t gid;
	int own = owner_of(dir, it, &uid, &gid) == 0;

	return (it->has_mode && (st->st_mode & 07777) != it->mode) ||
	       (own && (st->st_uid != uid || st->st_gid != gid));
}

/* Mode, owner and times onto what is at dir/name (not following it). */
static int set_meta(int dir, const char *name, const struct item *it)
{
	uid_t uid;
	gid_t gid;
	int own = owner_of(dir, it, &uid, &gid) == 0;

	if (it->kind == K_SYMLINK) {
		if (own && fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			return -1;
		return utimensat(dir, name, it->times, AT_SYMLINK_NOFOLLOW);
	}
	int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
			(it->kind == K_DIR ? O_DIRECTORY : 0));
	if (fd < 0)
		return -1;
	/* Owner before mode: chown clears setuid/setgid bits. */
	int rc = 0;
	if (own && fchown(fd, uid, gid) < 0)
		rc = -1;
	if (rc == 0 && it->has_mode && fchmod(fd, it->mode) < 0)
		rc = -1;
	if (rc == 0 && futimens(fd, it->times) < 0)
		rc = -1;
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* The same for a FIFO or device node, which must not be opened (a FIFO's
 * open waits for a writer; a device's does whatever the driver does): an
 * O_PATH descriptor pins the inode, and /proc/self/fd reaches it. */
static int set_meta_node(int dir, const char *name, const struct item *it)
{
	int fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	char proc[64];
	struct stat st;
	int rc = 0;

	if (fd < 0)
		return -1;
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (fstat(fd, &st) < 0) {
		rc = -1;
	} else if ((st.st_mode & S_IFMT) != it->fmt) {
		errno = EINVAL;     /* not what was just made there */
		rc = -1;
	}
	uid_t uid;
	gid_t gid;
	if (rc == 0 && owner_of(dir, it, &uid, &gid) == 0 &&
	    fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0)
		rc = -1;
	if (rc == 0 && it->has_mode && chmod(proc, it->mode) < 0)
		rc = -1;
	if (rc == 0 && utimensat(AT_FDCWD, proc, it->times, 0) < 0)
		rc = -1;
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* A device node's numbers (a column newer logs have). */
static int item_rdev(struct restore *r, const struct item *it, dev_t *rdev)
{
	sqlite3_stmt *st = cli_prepare(&r->d, "SELECT rdev FROM snapshots WHERE id = ?1");
	int rc = -1;

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, it->id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*rdev = (dev_t)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Move tmp to name: atomically replacing only with --overwrite. */
static int place(int dir, const char *tmp, const char *name, int overwrite)
{
	if (overwrite)
		return renameat(dir, tmp, dir, name);
	if (renameat2(dir, tmp, dir, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* Filesystems without RENAME_NOREPLACE: link refuses to replace too. */
	if (linkat(dir, tmp, dir, name, 0) < 0)
		return -1;
	unlinkat(dir, tmp, 0);
	return 0;
}

/* The file st is also an entry of the snapshot store beside src (a rename's
 * source is kept by a hard link): its other name is a snapshot, which a
 * write into the inode would change. */
static int in_store(const char *src, const struct stat *st)
{
	char dirp[AG_PATH_MAX];
	const char *slash = strrchr(src, '/');
	struct stat s2;
	int hit = 0;

	if (!slash || (size_t)(slash - src) >= sizeof dirp)
		return 1;
	memcpy(dirp, src, (size_t)(slash - src));
	dirp[slash - src] = 0;
	DIR *d = opendir(dirp);
	if (!d)
		return 1;
	for (struct dirent *e; !hit && (e = readdir(d));)
		hit = e->d_ino == st->st_ino && fstatat(dirfd(d), e->d_name, &s2, AT_SYMLINK_NOFOLLOW) == 0 &&
		      s2.st_dev == st->st_dev && s2.st_ino == st->st_ino;
	closedir(d);
	return hit;
}

/* The content of dir/tmp written over dir/name's own inode. */
static int into_inode(int dir, const char *tmp, const char *name)
{
	int in = openat(dir, tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int out = in < 0 ? -1 : openat(dir, name, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
	char buf[65536];
	ssize_t n = 0;
	int rc = out < 0 ? -1 : 0;

	while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0)
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w <= 0) {
				rc = -1;
				break;
			}
			off += w;
		}
	if (n < 0 || (out >= 0 && fsync(out) < 0))
		rc = -1;
	int e = errno;
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	errno = e;
	return rc;
}

/* A live database's -wal or -journal would be replayed over a restored file. */
static int sqlite_busy(int dir, const char *name, char *why, size_t whylen)
{
	static const char *const sfx[] = { "-wal", "-journal" };
	char side[300];
	struct stat st;

	for (int i = 0; i < 2; i++) {
		snprintf(side, sizeof side, "%s%s", name, sfx[i]);
		if (fstatat(dir, side, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_size > 0) {
			snprintf(why, whylen, "%s%s exists: a program may have the database "
				 "open, and it would be replayed over the restored copy; close "
				 "the database first, or restore with --keep-both or --to DIR",
				 cli_base(side), "");
			return 1;
		}
	}
	return 0;
}

static void print_done(struct restore *r, const char *verb, const char *dest,
		       const char *as, const struct item *it)
{
	if (r->quiet)
		return;
	printf("%s ", verb);
	cli_put(stdout, dest);
	if (as) {
		fputs(" as ", stdout);
		cli_put(stdout, as);
	}
	fputs(" (", stdout);
	cli_put(stdout, it->id);
	if (r->to) {
		fputs(", from ", stdout);
		cli_put(stdout, it->path);
	}
	fputs(")\n", stdout);
}

/* A git record: its content checked like any snapshot's, then the refs
 * (gitrestore.c). With --to there is nowhere else to put refs: refused. */
static void restore_git(struct restore *r, struct item *it)
{
	char abs[AG_PATH_MAX], sha[AG_HASH_HEX];

	if (r->to) {
		fail(r, it->path, "git refs are restored in their repository, not under --to "
		     "(snapshot %s)", it->id);
		return;
	}
	if (!it->store || ag_fmt(abs, sizeof abs, "%s/%s", r->d.state_dir, it->store) < 0 ||
	    ag_sha256_file_hex(abs, sha) < 0 || !it->sha256 || strcmp(sha, it->sha256) != 0) {
		fail(r, it->path, "its record is missing from the store or changed (snapshot %s)",
		     it->id);
		return;
	}
	struct git_restore g = {.dry_run = r->dry_run, .push = r->push, .quiet = r->quiet,
				.session = r->session[0] != 0,
				.u = r->dry_run ? NULL : &r->u};
	git_restore_item(&g, it->id, abs, it->path);
	r->restored += g.restored;
	r->failed += g.failed;
	if (!g.failed)
		it->restored_ns = ag_now_ns();
}

/* ---- the three passes ---------------------------------------------------- */

static void restore_dir(struct restore *r, struct item *it)
{
	char dest[AG_PATH_MAX + AG_PATH_MAX], why[AG_PATH_MAX + 200];
	const char *name;
	struct stat st;

	dest_of(r, it, dest, sizeof dest);
	int dir = open_parent(r, it->path, &name, why, sizeof why);
	if (dir == -1) {
		fail(r, dest, "%s", why);
		return;
	}
	if (dir == -2) {
		print_done(r, "would restore", dest, NULL, it);
		r->restored++;
		return;
	}
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			fail(r, dest, "%s is there; move it away or restore with --to DIR",
			     S_ISLNK(st.st_mode) ? "a symlink (never followed)" : "a file");
		} else if (r->overwrite) {
			/* Its mode and times are set in the last pass. */
			it->dir_done = 1;
			print_done(r, r->dry_run ? "would restore" : "restored", dest, NULL, it);
			r->restored++;
		} else if (r->session[0] && !r->to) {
			it->dir_done = 1;
			skip(r, dest, 0, "directory exists (what was in it is restored into it, and "
			     "its mode and times are set back)");
		} else {
			skip(r, dest, 0, "directory exists (what was in it is still restored into "
			     "it; --force also resets its mode and times)");
		}
	} else if (r->dry_run) {
		print_done(r, "would restore", dest, NULL, it);
		r->restored++;
	} else if (mkdirat(dir, name, 0700) < 0) {
		/* 0700 until the last pass: a read-only directory must still take
		 * what is restored into it. */
		fail(r, dest, "cannot create the directory: %s", strerror(errno));
	} else {
		it->dir_done = 1;
		it->changed_parent = 1;
		undo_made(&r->u, dest, 1);
		undo_left(&r->u, dest, dir, name, NULL);
		print_done(r, "restored", dest, NULL, it);
		r->restored++;
	}
	close(dir);
}

/* Something else is at dest: 1 when restore may replace it (what it
 * replaces is kept), else 0 after saying why not. A session restore
 * replaces what the session left there; a change made after the session
 * (neither what it left nor what was there before) is a conflict. */
static int may_replace(struct restore *r, const struct item *it, int dir, const char *name,
		       const char *dest)
{
	struct end_state e;

	if (r->overwrite)
		return 1;
	if (!r->session[0] || r->to) {
		skip(r, dest, 1, "exists (--force replaces it, keeping what it replaces; "
		     "--keep-both restores next to it)");
		return 0;
	}
	if (end_lookup(&r->d, &r->end_st, r->session, it->path, &e) == 0 && e.known) {
		if (end_matches(dir, name, &e))
			return 1;
		skip(r, dest, 1, "changed after the session: it is neither what the session left "
		     "nor what was there before, so it is left as it is (--force replaces it, "
		     "keeping it)");
		return 0;
	}
	skip(r, dest, 1, "exists, and what the session left there was not recorded (it was "
	     "not run by 'agentguard run'), so a later change cannot be told from the "
	     "session's own (--force replaces it, keeping it; --keep-both restores next to it)");
	return 0;
}

/* The name restore is about to write in dir: dest's directory and name. */
static void path_in(const char *dest, const char *name, char *out, size_t n)
{
	const char *slash = strrchr(dest, '/');
	int dl = slash ? (int)(slash - dest) : 0;

	if (ag_fmt(out, n, "%.*s/%s", dl, dest, name) < 0)
		snprintf(out, n, "%s", dest);
}

static void restore_leaf(struct restore *r, struct item *it)
{
	char dest[AG_PATH_MAX + AG_PATH_MAX], why[AG_PATH_MAX + 300];
	char kept[300], tmp[64], src[AG_PATH_MAX + AG_PATH_MAX], proc[64 + 300];
	const char *name, *as = NULL;
	struct stat st;
	int replacing = 0;

	dev_t rdev = 0;
	int node = it->kind == K_FIFO || it->kind == K_DEVICE;

	dest_of(r, it, dest, sizeof dest);
	if (it->kind == K_DEVICE && item_rdev(r, it, &rdev) < 0) {
		fail(r, dest, "the snapshot record has no device numbers (taken by an older "
		     "agentguard); make it again with mknod");
		return;
	}
	if (node) {
		/* Made from the metadata alone. */
	} else if ((it->kind == K_FILE || it->kind == K_SQLITE)) {
		if (!it->store) {
			fail(r, dest, "its content is no longer in the snapshot store (removed by "
			     "'agentguard gc')");
			return;
		}
		if (cli_store_path(&r->d, it->store, src, sizeof src) < 0) {
			fail(r, dest, "the snapshot record points outside the snapshot store; "
			     "refusing it (check the log with 'agentguard verify')");
			return;
		}
		if (lstat(src, &st) < 0 || !S_ISREG(st.st_mode)) {
			fail(r, dest, "its content %s is missing from the snapshot store", src);
			return;
		}
	} else if (!it->link_target) {
		fail(r, dest, "the snapshot record has no link target");
		return;
	}

	int dir = open_parent(r, it->path, &name, why, sizeof why);
	if (dir == -1) {
		fail(r, dest, "%s", why);
		return;
	}
	if (dir == -2) {
		print_done(r, "would restore", dest, NULL, it);
		r->restored++;
		return;
	}
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (same_content(dir, name, it) && S_ISREG(st.st_mode) && meta_differs(dir, &st, it)) {
			/* The content is there; what the session changed is the
			 * mode or owner (chmod, chown): those go back. */
			if (!r->dry_run && undo_keep(&r->u, dir, name, dest, AG_SNAP_COPY) < 0) {
				fail(r, dest, "cannot keep what is there (%s), so it is left as it is",
				     strerror(errno));
				goto out;
			}
			if (!r->dry_run && set_meta(dir, name, it) < 0) {
				fail(r, dest, "cannot set its mode, owner or times: %s", strerror(errno));
				goto out;
			}
			if (!r->dry_run)
				undo_left(&r->u, dest, dir, name, it->sha256);
			print_done(r, r->dry_run ? "would restore" : "restored", dest, NULL, it);
			r->restored++;
			goto out;
		}
		if (same_content(dir, name, it) && S_ISREG(st.st_mode)) {
			skip(r, dest, 0, "already has the content of snapshot %s", it->id);
			goto out;
		}
		if (r->keep_both) {
			snprintf(kept, sizeof kept, "%.*s.restored-%s", 200, name, it->id);
			if (fstatat(dir, kept, &st, AT_SYMLINK_NOFOLLOW) == 0) {
				skip(r, dest, 1, "exists, and so does %s", kept);
				goto out;
			}
			as = kept;
			name = kept;
		} else if (may_replace(r, it, dir, name, dest)) {
			replacing = 1;
		} else {
			goto out;
		}
		if (replacing && S_ISDIR(st.st_mode)) {
			fail(r, dest, "a directory is there; move it away or restore with --keep-both");
			goto out;
		}
	}
	if (it->kind == K_SQLITE && !as && sqlite_busy(dir, name, why, sizeof why)) {
		fail(r, dest, "%s", why);
		goto out;
	}
	if (r->dry_run) {
		print_done(r, "would restore", dest, as, it);
		r->restored++;
		goto out;
	}

	snprintf(tmp, sizeof tmp, ".agentguard-restore-%s-%d", it->id, (int)getpid());
	int made;
	if (it->kind == K_SYMLINK) {
		made = symlinkat(it->link_target, dir, tmp);
	} else if (it->kind == K_FIFO) {
		made = mkfifoat(dir, tmp, 0600);
	} else if (it->kind == K_DEVICE) {
		made = mknodat(dir, tmp, it->fmt | 0600, rdev);
		if (made < 0 && errno == EPERM) {
			fail(r, dest, "making a device node needs root: run restore as root");
			goto out;
		}
	} else {
		/* ag_copy_file takes paths: reach the temp file through the parent
		 * fd, so the walk above is still what decides where it lands. */
		snprintf(proc, sizeof proc, "/proc/self/fd/%d/%s", dir, tmp);
		made = ag_copy_file(src, proc, 0600);
	}
	if (made < 0) {
		fail(r, dest, "cannot write it: %s", strerror(errno));
		goto out;
	}
	if (!node && it->kind != K_SYMLINK && it->sha256) {
		char hex[AG_HASH_HEX];
		if (ag_sha256_file_hex(proc, hex) < 0 || strcmp(hex, it->sha256) != 0) {
			fail(r, dest, "the stored content does not match its recorded sha256 "
			     "(the snapshot store was changed); nothing was restored");
			unlinkat(dir, tmp, 0);
			goto out;
		}
	}
	if ((node ? set_meta_node(dir, tmp, it) : set_meta(dir, tmp, it)) < 0) {
		fail(r, dest, "cannot set its mode, owner or times: %s", strerror(errno));
		unlinkat(dir, tmp, 0);
		goto out;
	}
	/* A file with other names (a hard link elsewhere, say a key's): its
	 * content goes back into that very inode, so every name has it again;
	 * a rename over it would give this name a new file and leave the
	 * others as the session left them. */
	char made_at[AG_PATH_MAX + AG_PATH_MAX];
	path_in(dest, name, made_at, sizeof made_at);
	if (replacing && it->kind == K_FILE && S_ISREG(st.st_mode) && st.st_nlink > 1 &&
	    !in_store(src, &st)) {
		if (undo_keep(&r->u, dir, name, made_at, AG_SNAP_COPY) < 0) {
			fail(r, dest, "cannot keep what is there (%s), so it is left as it is",
			     strerror(errno));
			unlinkat(dir, tmp, 0);
			goto out;
		}
		int rc = into_inode(dir, tmp, name);
		int e = errno;
		unlinkat(dir, tmp, 0);
		if (rc < 0) {
			fail(r, dest, "cannot write it back into the file: %s", strerror(e));
			goto out;
		}
		if (set_meta(dir, name, it) < 0)
			printf("note: could not put back the mode or times of %s: %s\n", dest,
			       strerror(errno));
		undo_left(&r->u, made_at, dir, name, it->sha256);
		print_done(r, "restored", dest, NULL, it);
		r->restored++;
		goto out;
	}
	if (replacing && undo_keep(&r->u, dir, name, made_at, AG_SNAP_TAKE) < 0) {
		fail(r, dest, "cannot keep what is there (%s), so it is left as it is",
		     strerror(errno));
		unlinkat(dir, tmp, 0);
		goto out;
	}
	if (place(dir, tmp, name, replacing) < 0) {
		int e = errno;
		unlinkat(dir, tmp, 0);
		if (e == EEXIST) {
			skip(r, dest, 1, "exists (it appeared while restoring; use --overwrite "
			     "or --keep-both)");
		} else {
			fail(r, dest, "cannot put it in place: %s", strerror(e));
		}
		goto out;
	}
	if (!replacing)
		undo_made(&r->u, made_at, 0);
	undo_left(&r->u, made_at, dir, name,
		  it->kind == K_FILE || it->kind == K_SQLITE ? it->sha256 : NULL);
	print_done(r, "restored", dest, as, it);
	r->restored++;
	it->changed_parent = 1;
	it->restored_ns = ag_now_ns();
out:
	close(dir);
}

/* Nothing was at the path before the session (a name its rename made, or
 * what an undone restore made): what is there goes, kept in the store. A
 * directory goes only when empty, after what was in it (its own pass). */
static void restore_absent(struct restore *r, struct item *it, int dirs)
{
	char dest[AG_PATH_MAX + AG_PATH_MAX], why[AG_PATH_MAX + 200];
	const char *name;
	struct stat st;

	if ((S_ISDIR(it->fmt) ? 1 : 0) != dirs)
		return;
	dest_of(r, it, dest, sizeof dest);
	int dir = open_parent(r, it->path, &name, why, sizeof why);
	if (dir == -2)
		return;     /* dry run, and its directory is not there: nor is it */
	if (dir == -1) {
		fail(r, dest, "%s", why);
		return;
	}
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		/* Not there now either: as it was. */
		close(dir);
		return;
	}
	if (dirs && !S_ISDIR(st.st_mode)) {
		skip(r, dest, 1, "a directory was made here, and something else is here now; "
		     "left as it is");
		goto out;
	}
	if (!may_replace(r, it, dir, name, dest))
		goto out;
	if (r->dry_run) {
		if (!r->quiet) {
			printf("would remove ");
			cli_put(stdout, dest);
			printf(": nothing was here before (%s)\n", it->id);
		}
		r->removed++;
		goto out;
	}
	if (dirs) {
		/* An empty directory's mode and times are kept; one that is not
		 * empty holds what someone put there since: it stays. */
		int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *dd = fd < 0 ? NULL : fdopendir(fd);
		int empty = 1;
		for (struct dirent *e; dd && empty && (e = readdir(dd));)
			empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
		if (dd)
			closedir(dd);
		else if (fd >= 0)
			close(fd);
		if (!empty) {
			skip(r, dest, 0, "a directory restore made, not empty now: left as it is");
			goto out;
		}
	}
	if (undo_keep(&r->u, dir, name, dest, AG_SNAP_MOVE) < 0 ||
	    (dirs && unlinkat(dir, name, AT_REMOVEDIR) < 0)) {
		fail(r, dest, "cannot take it away, keeping it: %s", strerror(errno));
		goto out;
	}
	undo_left(&r->u, dest, dir, name, NULL);
	if (!r->quiet) {
		printf("removed ");
		cli_put(stdout, dest);
		printf(": nothing was here before (%s); kept, as the undo below says\n", it->id);
	}
	r->removed++;
out:
	close(dir);
}

static void dir_meta(struct restore *r, const struct item *it)
{
	char dest[AG_PATH_MAX + AG_PATH_MAX], why[AG_PATH_MAX + 200];
	const char *name;
	int dir = open_parent(r, it->path, &name, why, sizeof why);

	dest_of(r, it, dest, sizeof dest);
	if (dir < 0) {
		fail(r, dest, "cannot set its mode and times: %s", why);
		return;
	}
	if (set_meta(dir, name, it) < 0)
		fail(r, dest, "cannot set its mode, owner or times: %s", strerror(errno));
	close(dir);
}

/* A socket has no content: the program that listens on it makes it. Asked
 * for by id, that is a failure; met in a session, a note. */
static void not_restorable(struct restore *r, const struct item *it)
{
	char dest[AG_PATH_MAX + AG_PATH_MAX];
	const char *what = it->kind == K_SOCKET
		? "a socket cannot be restored: it has no content, and the program that "
		  "listens on it makes it again"
		: "this kind of file cannot be restored";

	dest_of(r, it, dest, sizeof dest);
	if (r->by_id) {
		fail(r, dest, "%s (snapshot %s)", what, it->id);
		return;
	}
	printf("not restorable ");
	cli_put(stdout, dest);
	printf(": %s (snapshot %s)\n", what, it->id);
	r->unrestorable++;
}

/* Parents before children. */
static int by_depth(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	size_t lx = strlen(x->path), ly = strlen(y->path);

	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x->path, y->path);
}

static size_t dir_len(const struct item *it)
{
	return (size_t)(strrchr(it->path, '/') - it->path);
}

static int same_dir(const struct item *a, const struct item *b)
{
	return dir_len(a) == dir_len(b) && memcmp(a->path, b->path, dir_len(a)) == 0;
}

/* Items in one directory together, the earliest snapshot first. */
static int by_parent(const void *a, const void *b)
{
	const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
	size_t lx = dir_len(x), ly = dir_len(y);
	int c = memcmp(x->path, y->path, lx < ly ? lx : ly);

	if (c || lx != ly)
		return c ? c : lx < ly ? -1 : 1;
	return x->created < y->created ? -1 : x->created > y->created;
}

/* Restoring into a directory changed its times: put back what they were
 * before the session first deleted something in it. */
static void parent_times(struct restore *r, struct items *l)
{
	struct item **v = malloc(l->n * sizeof *v);
	size_t n = 0;

	if (!v)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].changed_parent && l->v[i].has_ptimes)
			v[n++] = &l->v[i];
	qsort(v, n, sizeof *v, by_parent);
	for (size_t i = 0; i < n; i++) {
		char why[AG_PATH_MAX + 200];
		const char *name;
		if (i && same_dir(v[i - 1], v[i]))
			continue;
		int dir = open_parent(r, v[i]->path, &name, why, sizeof why);
		if (dir < 0 || futimens(dir, v[i]->ptimes) < 0) {
			printf("note: could not put back the times of the directory holding ");
			cli_put(stdout, v[i]->path);
			fputs(": ", stdout);
			cli_put(stdout, dir < 0 ? why : strerror(errno));
			putchar('\n');
		}
		if (dir >= 0)
			close(dir);
	}
	free(v);
}

/* When each snapshot was restored, in one transaction: one per item
 * would be a commit per file. */
static void mark_restored(struct restore *r, const struct items *l)
{
	sqlite3_stmt *st = NULL;

	for (size_t i = 0; i < l->n; i++) {
		if (!l->v[i].restored_ns)
			continue;
		if (!st) {
			if (r->d.readonly ||
			    !(st = cli_prepare(&r->d, "UPDATE snapshots SET restored_ns = ?1 WHERE id = ?2")))
				return;
			sqlite3_exec(r->d.db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		}
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, l->v[i].restored_ns);
		sqlite3_bind_text(st, 2, l->v[i].id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			cli_warn("cannot record that %s was restored: %s", l->v[i].id,
				 sqlite3_errmsg(r->d.db));
	}
	if (st) {
		sqlite3_finalize(st);
		if (sqlite3_exec(r->d.db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			cli_warn("cannot record what was restored: %s", sqlite3_errmsg(r->d.db));
	}
}

static int run_passes(struct restore *r, struct items *l)
{
	if (l->n)
		qsort(l->v, l->n, sizeof l->v[0], by_depth);   /* v may be NULL */
	for (size_t i = 0; i < l->n; i++) {
		struct item *it = &l->v[i];
		char dest[AG_PATH_MAX + AG_PATH_MAX];
		if (!cli_plain_path(it->path)) {
			dest_of(r, it, dest, sizeof dest);
			fail(r, dest, "not a plain absolute path; refusing it (snapshot %s)", it->id);
			it->kind = (enum kind)-1;
		}
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].kind == K_DIR)
			restore_dir(r, &l->v[i]);
	/* Long restores say how far they are, on a terminal that is not
	 * already scrolling a line per item. */
	r->progress = l->n >= 200 && isatty(2) && (r->quiet || !isatty(1));
	for (size_t i = 0; i < l->n; i++) {
		if (r->progress && i % 100 == 0)
			fprintf(stderr, "\rrestoring: %zu of %zu", i, l->n);
		if (l->v[i].kind == K_FILE || l->v[i].kind == K_SYMLINK ||
		    l->v[i].kind == K_SQLITE || l->v[i].kind == K_FIFO ||
		    l->v[i].kind == K_DEVICE)
			restore_leaf(r, &l->v[i]);
		else if (l->v[i].kind == K_SOCKET || l->v[i].kind == K_OTHER)
			not_restorable(r, &l->v[i]);
		else if (l->v[i].kind == K_ABSENT)
			restore_absent(r, &l->v[i], 0);
	}
	/* git records last: the files of .git a session restore put back
	 * come first, and the refs are then made exactly what was recorded. */
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].kind == K_GIT)
			restore_git(r, &l->v[i]);
	/* Directories that were not there, deepest first, once emptied. */
	for (size_t i = l->n; i-- > 0;)
		if (l->v[i].kind == K_ABSENT)
			restore_absent(r, &l->v[i], 1);
	if (r->progress)
		fprintf(stderr, "\rrestoring: %zu of %zu\n", l->n, l->n);
	/* Last: creating children changed the directories' times. */
	for (size_t i = l->n; i-- > 0;)
		if (l->v[i].kind == K_DIR && l->v[i].dir_done && !r->dry_run)
			dir_meta(r, &l->v[i]);
	if (!r->dry_run)
		parent_times(r, l);
	mark_restored(r, l);
	return 0;
}

/* ---- distrust -------------------------------------------------------------
 * A snapshot row comes from a spool the session's own processes wrote: a
 * forged one must not make restore (run as root, say) write where the
 * session had no business, or hand out a setuid file. */

static int beneath(const char *p, const char *dir)
{
	size_t n = dir ? strlen(dir) : 0;

	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (!n || dir[0] != '/')
		return 0;
	return n == 1 || (strncmp(p, dir, n) == 0 && (p[n] == '/' || !p[n]));
}

/* NULL when the item may be restored, else why not. */
static const char *untrusted(struct restore *r, sqlite3_stmt *st, const struct item *it)
{
	if (!cli_plain_path(it->path))
		return "its recorded path is not a plain absolute path (empty, '.' or '..' "
		       "parts): refusing it (check the log with 'agentguard verify')";
	if ((it->mode & (S_ISUID | S_ISGID)) && !r->preserve_owner && it->kind != K_DIR)
		return "its recorded mode is setuid or setgid: restored only by root with "
		       "--preserve-owner";
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, it->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->session[0] ? r->session : NULL, -1, SQLITE_STATIC);
	const char *ws = NULL, *home = NULL, *sd = NULL;
	if (sqlite3_step(st) == SQLITE_ROW) {
		ws = cli_col(st, 0);
		home = cli_col(st, 1);
		sd = cli_col(st, 2);
	}
	if (!home)
		home = getenv("HOME");   /* an older log: the restorer's own */
	if (beneath(it->path, sd) || beneath(it->path, r->d.state_dir))
		return "its recorded path is in agentguard's state dir: refusing it";
	if (r->to || r->allow_outside)
		return NULL;
	if (beneath(it->path, ws) || beneath(it->path, home))
		return NULL;
	/* A linked worktree of the workspace's repository (still there) is
	 * part of the workspace (lib/gitrefs.h). */
	char root[AG_PATH_MAX];
	if (ws && ag_git_linked_root(ws, it->path, root, sizeof root))
		return NULL;
	return "its recorded path is outside the session's workspace and home: refusing "
	       "it (--to DIR restores under DIR, --allow-outside where it was)";
}

static void distrust(struct restore *r, struct items *l)
{
	/* An item without a row of its own (a name a rename made) is the
	 * restored session's. */
	sqlite3_stmt *st = cli_prepare(&r->d, "SELECT s.workspace, s.home, s.state_dir FROM "
				       "sessions s WHERE s.id = coalesce((SELECT session FROM "
				       "snapshots WHERE id = ?1), ?2)");
	size_t keep = 0;

	for (size_t i = 0; i < l->n; i++) {
		struct item *it = &l->v[i];
		const char *why = st ? untrusted(r, st, it) : "the log cannot be read";
		if (why) {
			char dest[AG_PATH_MAX + AG_PATH_MAX];
			dest_of(r, it, dest, sizeof dest);
			fail(r, dest, "%s", why);
			item_free(it);
			continue;
		}
		it->parents_owner = geteuid() == 0 && !r->preserve_owner;
		l->v[keep++] = *it;
	}
	l->n = keep;
	if (st)
		sqlite3_finalize(st);
}

static int open_root(struct restore *r)
{
	const char *top = "/";

	if (r->to) {
		char cwd[AG_PATH_MAX];
		if (!getcwd(cwd, sizeof cwd) ||
		    ag_path_lexical(cwd, r->to, r->to_abs, sizeof r->to_abs) < 0) {
			cli_err("cannot make --to %s absolute: %s", r->to, strerror(errno));
			return -1;
		}
		top = r->to_abs;
		if (access(top, F_OK) < 0 && errno == ENOENT) {
			if (r->dry_run) {
				r->root_missing = 1;
				r->root = -1;
				return 0;
			}
			if (ag_mkdirs(top, 0777) < 0) {
				cli_err("cannot create --to %s: %s", top, strerror(errno));
				return -1;
			}
		}
	}
	r->root = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->root < 0) {
		cli_err("cannot open %s: %s", top, strerror(errno));
		return -1;
	}
	return 0;
}

/* --before T: a UTC time (seconds, optional fraction, optional Z), or a
 * duration ago. */

/* Where the restore's own undo may write: the restored session's
 * workspace and home, or --to DIR. */
static void begin_recording(struct restore *r, const struct items *l, int argc, char **argv)
{
	sqlite3_stmt *st = cli_prepare(&r->d, "SELECT workspace, home FROM sessions WHERE id = "
				       "coalesce(?1, (SELECT session FROM snapshots WHERE id = ?2))");
	char undoes[300];

	if (!st)
		return;
	sqlite3_bind_text(st, 1, r->session[0] ? r->session : NULL, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, l->v[0].id, -1, SQLITE_STATIC);
	const char *ws = NULL, *home = NULL;
	if (sqlite3_step(st) == SQLITE_ROW) {
		ws = cli_col(st, 0);
		home = cli_col(st, 1);
	}
	snprintf(undoes, sizeof undoes, "%s%s", r->session[0] ? "session " : "snapshots",
		 r->session[0] ? r->session : "");
	undo_begin(&r->u, &r->d, argc, argv, r->to ? r->to_abs : ws, home, undoes);
	sqlite3_finalize(st);
}

/* Server pre-images are put back by the server's own client, not into
 * the tree (pgsnap.c): taken out of l here. Their undo is the restore's
 * session, begun first. */
static void restore_servers(struct restore *r, struct items *l, const char *to_table, int argc,
			    char **argv, int *recording)
{
	size_t keep = 0, n = 0;

	for (size_t i = 0; i < l->n; i++)
		n += l->v[i].kind == K_PGSQL || l->v[i].kind == K_MYSQL;
	if (!n) {
		if (to_table)
			fail(r, "--to-table", "goes with a server pre-image (kind pgsql or mysql)");
		return;
	}
	if (to_table && n > 1) {
		fail(r, "--to-table", "name one pre-image with it");
		return;
	}
	if (!r->dry_run && !*recording) {
		begin_recording(r, l, argc, argv);
		*recording = 1;
	}
	for (size_t i = 0; i < l->n; i++) {
		struct item *it = &l->v[i];
		if (it->kind != K_PGSQL && it->kind != K_MYSQL) {
			l->v[keep++] = *it;
			continue;
		}
		char file[AG_PATH_MAX + AG_PATH_MAX];
		struct pg_item p = {it->id, it->path, it->link_target,
				    cli_store_path(&r->d, it->store, file, sizeof file) == 0 ? file : NULL,
				    it->sha256};
		if ((it->kind == K_PGSQL ? pg_restore_item : my_restore_item)(&r->u, &p, to_table,
									      r->dry_run) == 0) {
			r->restored++;
			it->restored_ns = r->dry_run ? 0 : ag_now_ns();
			struct items one = {it, 1};
			mark_restored(r, &one);
		} else {
			r->failed++;
		}
		item_free(it);
	}
	l->n = keep;
}

static int cmd_restore(int argc, char **argv)
{
	const char *to_table = NULL;
	int recording = 0;
	struct restore r = { .root = -1 };
	struct items l = { 0 };
	const char *session = NULL, *glob_arg = NULL;
	char glob[AG_PATH_MAX];
	int c, status = CLI_OK;

	optind = 0;
	while ((c = cli_getopt(argc, argv, options, &r.co, &status)) != -1) {
		switch (c) {
		case CLI_OPT_STOP:
			return status;
		case OPT_SESSION: session = optarg; break;
		case OPT_PATH: glob_arg = optarg; break;
		case OPT_DRY_RUN: r.dry_run = 1; break;
		case OPT_TO:
			if (!*optarg)
				return cli_usage("--to needs a directory");
			r.to = optarg;
			break;
		case OPT_OVERWRITE: r.overwrite = 1; break;
		case OPT_KEEP_BOTH: r.keep_both = 1; break;
		case OPT_ALLOW_OUTSIDE: r.allow_outside = 1; break;
		case OPT_PRESERVE_OWNER: r.preserve_owner = 1; break;
		case OPT_QUIET: r.quiet = 1; break;
		case OPT_TO_TABLE: to_table = optarg; break;
		case OPT_PUSH: r.push = 1; break;
		case OPT_BEFORE:
			if (cli_parse_time(optarg, &r.before_ns) < 0)
				return cli_usage("--before wants a time (2026-05-01T12:00:00Z, UTC) or "
						 "a duration ago (30s, 15m, 2h, 7d), not '%s'", optarg);
			break;
		}
	}
	if (!session && optind >= argc)
		return cli_usage("name snapshot ids, or --session ID");
	if (session && optind < argc)
		return cli_usage("give snapshot ids or --session, not both");
	if (glob_arg && !session)
		return cli_usage("--path goes with --session");
	if (r.before_ns && !session)
		return cli_usage("--before goes with --session");
	if (r.overwrite && r.keep_both)
		return cli_usage("--overwrite and --keep-both do not go together");
	if (glob_arg && (!*glob_arg || cli_abs_glob(glob_arg, glob, sizeof glob) < 0))
		return cli_usage("--path glob is empty or too long: '%s'", glob_arg);

	if (cli_db_open(&r.d, &r.co, CLI_DB_READ) < 0)
		return CLI_FAIL;
	if (r.d.copy && !r.dry_run) {
		/* Its writes would be judged by the guard like the agent's (and
		 * each refusal counted against the session's denials), and it
		 * could record nothing: the log is out of reach here. */
		cli_err("this runs inside a guarded session: restore writes files and the audit "
			"log, so run it outside the session (--dry-run works here)");
		cli_db_close(&r.d);
		return CLI_FAIL;
	}
	r.by_id = !session;
	int rc = session ? load_session(&r, session, glob_arg ? glob : NULL, &l)
			 : load_ids(&r, argv + optind, argc - optind, &l);
	if (rc == 0 && r.preserve_owner && geteuid() != 0) {
		cli_err("--preserve-owner needs root: only root can give a file to another "
			"owner or restore a setuid or setgid bit");
		rc = -1;
	}
	if (rc == 0)
		restore_servers(&r, &l, to_table, argc, argv, &recording);
	if (rc == 0)
		distrust(&r, &l);
	if (rc == 0 && l.n && open_root(&r) < 0)
		rc = -1;
	/* The restore is a session of its own: what it displaces is kept
	 * there, and restoring that session undoes it. */
	if (rc == 0 && l.n && !r.dry_run && !recording)
		begin_recording(&r, &l, argc, argv);
	if (rc == 0 && l.n)
		run_passes(&r, &l);
	if (r.root >= 0)
		close(r.root);
	items_free(&l);
	if (r.end_st)
		sqlite3_finalize(r.end_st);
	if (undo_end(&r.u, 1) < 0)
		r.failed++;
	if (rc < 0) {
		cli_db_close(&r.d);
		return CLI_FAIL;
	}

	if (r.dry_run)
		printf("dry run: %ld would be restored, %ld skipped, %ld would fail; nothing "
		       "was changed\n", r.restored + r.removed, r.skipped, r.failed);
	else
		printf("%ld restored, %ld skipped, %ld failed\n", r.restored + r.removed, r.skipped,
		       r.failed);
	if (r.own)
		printf("%ld made by the session itself (temporary files and the like) %s left as "
		       "%s\n", r.own, r.own == 1 ? "was" : "were", r.own == 1 ? "it is" : "they are");
	if (r.u.kept && !r.quiet) {
		printf("undo this restore: agentguard restore --session ");
		cli_put_word(stdout, r.u.id);
		const char *sd = cli_state_dir_arg(&r.co, &r.d);
		if (sd) {
			fputs(" --state-dir ", stdout);
			cli_put_word(stdout, sd);
		}
		putchar('\n');
	}
	cli_db_close(&r.d);
	if (r.unrestorable)
		printf("%ld not restorable (sockets: reported above; not a failure)\n",
		       r.unrestorable);
	if (r.conflicts)
		printf("skipped items are not what the session left: --force replaces them "
		       "(keeping what it replaces), --keep-both restores next to them\n");
	if (r.superseded)
		printf("%ld later snapshot%s of the same paths %s not used (the earliest one "
		       "is); restore one by its id to get that state\n", r.superseded,
		       r.superseded == 1 ? "" : "s", r.superseded == 1 ? "was" : "were");
	if (fflush(stdout) != 0)
		return CLI_FAIL;
	/* Anything asked for and not put back is a failure of the command. */
	return r.failed || r.conflicts ? CLI_FAIL : CLI_OK;
}

const struct cli_command cli_cmd_restore = {
	.name = "restore",
	.summary = "put snapshots back, or reverse a whole session (itself undoable)",
	.help = help,
	.main = cmd_restore,
};
