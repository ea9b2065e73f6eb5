/*
 * agentguard show / diff: what a snapshot holds, and how it differs from
 * what is at its path now. The store's files are read, never changed; a
 * database is opened immutable (no journal, no -wal, nothing written).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "pgsnap.h"
#include "gitrestore.h"

extern char **environ;

static const char show_help[] =
"Usage: agentguard show [--lines N] [--state-dir DIR] SNAPID\n"
"\n"
"What a snapshot holds: its path, kind, the operation and session that took\n"
"it, mode, owner, size, times and sha256, whether its content is still in\n"
"the store and unchanged; then a preview: the first N lines of a text file\n"
"(20), the first bytes of a binary one, a symlink's target, or the tables of\n"
"a SQLite database with their row counts. A unique prefix of the id is\n"
"enough ('agentguard report' lists them).\n"
"\n"
"Options:\n"
"  --lines N        lines of text to show (0: none)\n"
"  --state-dir DIR  where audit.db and snapshots/ live\n";

static const char diff_help[] =
"Usage: agentguard diff [--state-dir DIR] SNAPID\n"
"\n"
"Compare a snapshot with what is at its path now: the same, missing now, a\n"
"unified diff of a text file (by diff -u), the sizes of binary files, the\n"
"tables of a SQLite database and their row counts on either side, a\n"
"symlink's target, and the mode. The exit status is 0 when the path holds\n"
"what the snapshot holds, 1 when it differs or cannot be compared.\n"
"\n"
"Options:\n"
"  --state-dir DIR  where audit.db and snapshots/ live\n";

enum { OPT_LINES = 1 };

static const struct option show_options[] = {
	{ "lines", required_argument, NULL, OPT_LINES },
	{ NULL, 0, NULL, 0 },
};

static const struct option diff_options[] = {
	{ NULL, 0, NULL, 0 },
};

struct snap {
	char *id, *session, *kind, *path, *sha256, *link_target, *store;
	int64_t mode, uid, gid, size, mtime_ns, created_ns, restored_ns;
	int has_mode;
	char *op, *rule, *exe;
	char src[AG_PATH_MAX + AG_PATH_MAX];   /* the store file, "" if none */
	int src_ok;                 /* in the store, a regular file */
};

static char *dup_col(sqlite3_stmt *st, int i)
{
	return cli_col(st, i) ? strdup(cli_col(st, i)) : NULL;
}

static void snap_free(struct snap *s)
{
	free(s->id); free(s->session); free(s->kind); free(s->path); free(s->sha256);
	free(s->link_target); free(s->store); free(s->op); free(s->rule); free(s->exe);
}

/* The snapshot with this id or unique prefix: 0, or -1 after saying why. */
static int find_snap(struct cli_db *d, const char *arg, struct snap *s)
{
	sqlite3_stmt *st = cli_prepare(d,
		"SELECT p.id, p.session, p.kind, p.path, p.mode, p.uid, p.gid, p.size, p.mtime_ns, "
		"p.sha256, p.link_target, p.store, p.created_ns, p.restored_ns, e.op, e.rule, e.exe "
		"FROM snapshots p LEFT JOIN events e ON e.uid = p.event_uid "
		"WHERE p.id = ?1 OR (substr(p.id, 1, length(?1)) = ?1 AND NOT EXISTS "
		"(SELECT 1 FROM snapshots WHERE id = ?1)) LIMIT 2");
	int n = 0;

	memset(s, 0, sizeof *s);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW && n++ == 0) {
		s->id = dup_col(st, 0);
		s->session = dup_col(st, 1);
		s->kind = dup_col(st, 2);
		s->path = dup_col(st, 3);
		s->has_mode = sqlite3_column_type(st, 4) != SQLITE_NULL;
		s->mode = sqlite3_column_int64(st, 4);
		s->uid = sqlite3_column_int64(st, 5);
		s->gid = sqlite3_column_int64(st, 6);
		s->size = sqlite3_column_int64(st, 7);
		s->mtime_ns = sqlite3_column_int64(st, 8);
		s->sha256 = dup_col(st, 9);
		s->link_target = dup_col(st, 10);
		s->store = dup_col(st, 11);
		s->created_ns = sqlite3_column_int64(st, 12);
		s->restored_ns = sqlite3_column_int64(st, 13);
		s->op = dup_col(st, 14);
		s->rule = dup_col(st, 15);
		s->exe = dup_col(st, 16);
	}
	sqlite3_finalize(st);
	if (n == 0) {
		cli_err("no snapshot with the id '%s' in %s (see 'agentguard report')", arg, d->path);
		return -1;
	}
	if (n > 1) {
		cli_err("ambiguous snapshot id '%s': give more of it", arg);
		snap_free(s);
		return -1;
	}
	if (!s->id || !s->kind || !s->path) {
		cli_err("the snapshot record '%s' has no kind or path", arg);
		snap_free(s);
		return -1;
	}
	struct stat st2;
	if (s->store && cli_store_path(d, s->store, s->src, sizeof s->src) == 0 &&
	    lstat(s->src, &st2) == 0 && S_ISREG(st2.st_mode))
		s->src_ok = 1;
	return 0;
}

/* The SQLite database file's magic. */
static int is_sqlite(const char *file)
{
	char head[16];
	int fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	ssize_t n = fd < 0 ? -1 : read(fd, head, sizeof head);

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)sizeof head && memcmp(head, "SQLite format 3", 16) == 0;
}

struct table {
	char *name;
	long long rows;   /* -1: cannot be counted */
};

/* The tables of the database in file, read as it is (immutable: no journal
 * is read or made, nothing written), sorted by name. -1 if it cannot be
 * opened. */
static int tables_of(const char *file, struct table **out, size_t *nout)
{
	char *uri = sqlite3_mprintf("file:%s?immutable=1", file);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct table *v = NULL;
	size_t n = 0;
	int rc = -1;

	*out = NULL;
	*nout = 0;
	if (!uri || sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table' "
			       "ORDER BY name", -1, &st, NULL) != SQLITE_OK)
		goto out;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		struct table *nv = name ? realloc(v, (n + 1) * sizeof *v) : NULL;
		if (!nv)
			continue;
		v = nv;
		v[n].name = strdup(name);
		v[n].rows = -1;
		char *q = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", name);
		sqlite3_stmt *c = NULL;
		if (q && sqlite3_prepare_v2(db, q, -1, &c, NULL) == SQLITE_OK &&
		    sqlite3_step(c) == SQLITE_ROW)
			v[n].rows = sqlite3_column_int64(c, 0);
		sqlite3_finalize(c);
		sqlite3_free(q);
		if (v[n].name)
			n++;
	}
	rc = 0;
	*out = v;
	*nout = n;
	v = NULL;
out:
	free(v);
	sqlite3_finalize(st);
	sqlite3_close(db);
	sqlite3_free(uri);
	return rc;
}

static void tables_free(struct table *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

static void put_rows(long long rows)
{
	if (rows < 0)
		fputs("rows cannot be counted", stdout);
	else
		printf("%lld row%s", rows, rows == 1 ? "" : "s");
}

/* The first lines of a text file, or the first bytes of a binary one. */
static void preview(const char *file, long lines)
{
	char buf[8192];
	int fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);

	if (fd >= 0)
		close(fd);
	if (n < 0) {
		printf("  (cannot read it: %s)\n", strerror(errno));
		return;
	}
	if (n == 0) {
		puts("  (empty)");
		return;
	}
	if (memchr(buf, 0, (size_t)n)) {
		printf("  binary; the first bytes:\n ");
		for (ssize_t i = 0; i < n && i < 64; i++)
			printf("%s%02x", i && i % 16 == 0 ? "\n " : " ", (unsigned char)buf[i]);
		putchar('\n');
		return;
	}
	buf[n] = 0;
	char *p = buf;
	long shown = 0;
	while (*p && shown < lines) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		fputs("  | ", stdout);
		cli_put(stdout, p);
		putchar('\n');
		shown++;
		if (!nl)
			break;
		p = nl + 1;
	}
	if (shown == lines && *p)
		printf("  ... (--lines shows more)\n");
}

static int cmd_show(int argc, char **argv)
{
	struct cli_opts co = { 0 };
	struct cli_db d;
	struct snap s;
	long lines = 20;
	int c, status = CLI_OK;
	char when[64], sz[32];

	optind = 0;
	while ((c = cli_getopt(argc, argv, show_options, &co, &status)) != -1) {
		if (c == CLI_OPT_STOP)
			return status;
		if (c == OPT_LINES && cli_parse_long("--lines", optarg, 0, 1000000, &lines) < 0)
			return CLI_USAGE;
	}
	if (optind != argc - 1)
		return cli_usage("name one snapshot id");
	if (cli_db_open(&d, &co, CLI_DB_READ) < 0)
		return CLI_FAIL;
	if (find_snap(&d, argv[optind], &s) < 0) {
		cli_db_close(&d);
		return CLI_FAIL;
	}
	printf("snapshot ");
	cli_put(stdout, s.id);
	printf("\n  path      ");
	cli_put(stdout, s.path);
	printf("\n  kind      ");
	cli_put(stdout, s.kind);
	if (strcmp(s.kind, "absent") == 0)
		fputs(" (nothing was there: restoring it takes away what is there, keeping it)", stdout);
	printf("\n  session   ");
	cli_put(stdout, s.session ? s.session : "?");
	if (s.op) {
		fputs(", taken before ", stdout);
		cli_put(stdout, s.op);
		if (s.exe) {
			fputs(" by ", stdout);
			cli_put(stdout, cli_base(s.exe));
		}
		if (s.rule) {
			fputs(" (rule ", stdout);
			cli_put(stdout, s.rule);
			putchar(')');
		}
	}
	cli_fmt_time(s.created_ns, 1, when, sizeof when);
	printf("\n  taken     %s\n", when);
	if (s.has_mode && strcmp(s.kind, "absent") != 0)
		printf("  mode      %04llo, owner %lld:%lld\n", (unsigned long long)(s.mode & 07777),
		       (long long)s.uid, (long long)s.gid);
	int pg = strcmp(s.kind, "pgsql") == 0, my = strcmp(s.kind, "mysql") == 0;
	if (strcmp(s.kind, "file") == 0 || strcmp(s.kind, "sqlite") == 0 || pg || my) {
		cli_fmt_bytes((uint64_t)s.size, sz, sizeof sz);
		cli_fmt_time(s.mtime_ns, 1, when, sizeof when);
		printf("  size      %lld bytes", (long long)s.size);
		if (s.size >= 1024)
			printf(" (%s)", sz);
		printf(", modified %s\n", when);
		printf("  sha256    %s\n", s.sha256 ? s.sha256 : "(not recorded)");
		fputs("  store     ", stdout);
		if (!s.src_ok) {
			puts("missing: its content is no longer in the store (agentguard gc)");
		} else {
			char hex[AG_HASH_HEX];
			cli_put(stdout, s.src);
			puts(s.sha256 && ag_sha256_file_hex(s.src, hex) == 0 && strcmp(hex, s.sha256) != 0
			     ? " (CHANGED: it no longer matches its sha256)" : "");
		}
	}
	if (s.link_target) {
		fputs(pg || my ? "  holds     " : "  target    ", stdout);
		cli_put(stdout, s.link_target);
		putchar('\n');
	}
	if (s.restored_ns) {
		cli_fmt_time(s.restored_ns, 1, when, sizeof when);
		printf("  restored  %s\n", when);
	}
	if (s.src_ok && strcmp(s.kind, "git") == 0) {
		puts("the refs git could change, recorded before it ran:");
		git_record_show(s.src, stdout);
	} else if (s.src_ok && is_sqlite(s.src)) {
		struct table *t;
		size_t n;
		if (tables_of(s.src, &t, &n) < 0) {
			puts("a SQLite database that cannot be opened");
		} else {
			printf("a SQLite database with %zu table%s:\n", n, n == 1 ? "" : "s");
			for (size_t i = 0; i < n; i++) {
				fputs("  ", stdout);
				cli_put(stdout, t[i].name);
				fputs(": ", stdout);
				put_rows(t[i].rows);
				putchar('\n');
			}
			tables_free(t, n);
		}
	} else if (s.src_ok && pg) {
		/* A server pre-image: its tables' rows, as pg_dump wrote them. */
		puts("a PostgreSQL pre-image (pg_dump):");
		if (pg_show(stdout, s.src, lines) < 0)
			puts("  (it cannot be read)");
	} else if (s.src_ok && my) {
		puts("a MariaDB/MySQL pre-image (mariadb-dump):");
		if (my_show(stdout, s.src, lines) < 0)
			puts("  (it cannot be read)");
	} else if (s.src_ok && lines > 0) {
		puts("content:");
		preview(s.src, lines);
	}
	snap_free(&s);
	cli_db_close(&d);
	return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}

/* ---- diff ---------------------------------------------------------------- */

/* Table by table: what the snapshot has and what the database has now. */
static int diff_tables(const struct snap *s, const char *now)
{
	struct table *a, *b;
	size_t na, nb, i = 0, j = 0;
	int differ = 0;

	if (tables_of(s->src, &a, &na) < 0) {
		puts("the snapshot's database cannot be opened");
		return 1;
	}
	if (tables_of(now, &b, &nb) < 0) {
		tables_free(a, na);
		puts("the database there now cannot be opened");
		return 1;
	}
	while (i < na || j < nb) {
		int c = i >= na ? 1 : j >= nb ? -1 : strcmp(a[i].name, b[j].name);
		if (c < 0) {
			fputs("- table ", stdout);
			cli_put(stdout, a[i].name);
			fputs(" (", stdout);
			put_rows(a[i].rows);
			puts("): in the snapshot, not there now");
			i++;
			differ = 1;
		} else if (c > 0) {
			fputs("+ table ", stdout);
			cli_put(stdout, b[j].name);
			fputs(" (", stdout);
			put_rows(b[j].rows);
			puts("): there now, not in the snapshot");
			j++;
			differ = 1;
		} else {
			if (a[i].rows != b[j].rows) {
				fputs("~ table ", stdout);
				cli_put(stdout, a[i].name);
				fputs(": ", stdout);
				put_rows(a[i].rows);
				fputs(" in the snapshot, ", stdout);
				put_rows(b[j].rows);
				puts(" now");
				differ = 1;
			}
			i++;
			j++;
		}
	}
	tables_free(a, na);
	tables_free(b, nb);
	if (!differ)
		puts("the same tables with the same row counts (the rows themselves may differ)");
	return 1;
}

/* diff -u of the two files; 0 when diff is not there to run. */
static int run_diff(const struct snap *s, int fd)
{
	char now[64], l1[AG_PATH_MAX + 64], l2[AG_PATH_MAX + 16];
	pid_t pid;
	int ws;

	snprintf(now, sizeof now, "/proc/self/fd/%d", fd);
	snprintf(l1, sizeof l1, "snapshot %s", s->id);
	snprintf(l2, sizeof l2, "%s (now)", s->path);
	char *args[] = { "diff", "-u", "--label", l1, "--label", l2, (char *)s->src, now, NULL };
	fflush(stdout);
	if (posix_spawnp(&pid, "diff", NULL, NULL, args, environ) != 0)
		return 0;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(ws) && WEXITSTATUS(ws) <= 1;
}

static int cmd_diff(int argc, char **argv)
{
	struct cli_opts co = { 0 };
	struct cli_db d;
	struct snap s;
	struct stat st;
	int c, status = CLI_OK, differ = 0;

	optind = 0;
	while ((c = cli_getopt(argc, argv, diff_options, &co, &status)) != -1)
		if (c == CLI_OPT_STOP)
			return status;
	if (optind != argc - 1)
		return cli_usage("name one snapshot id");
	if (cli_db_open(&d, &co, CLI_DB_READ) < 0)
		return CLI_FAIL;
	if (find_snap(&d, argv[optind], &s) < 0) {
		cli_db_close(&d);
		return CLI_FAIL;
	}
	if (strcmp(s.kind, "pgsql") == 0 || strcmp(s.kind, "mysql") == 0) {
		/* Its "path" is a connection, not a file to compare with. */
		printf("snapshot %s is a server pre-image: 'agentguard show %s' says what it holds; "
		       "the server is not compared\n", s.id, s.id);
		snap_free(&s);
		cli_db_close(&d);
		return CLI_FAIL;
	}
	if (strcmp(s.kind, "git") == 0) {
		/* The recorded refs against the repository's now. */
		int rc = s.src_ok ? git_record_diff(s.src, stdout) : -1;
		if (!s.src_ok)
			puts("the record is not in the store (or changed)");
		snap_free(&s);
		cli_db_close(&d);
		return rc == 0 ? CLI_OK : CLI_FAIL;
	}
	int absent_then = strcmp(s.kind, "absent") == 0;
	int file = strcmp(s.kind, "file") == 0 || strcmp(s.kind, "sqlite") == 0;
	/* What is there now, not following a symlink at the path itself. */
	int have = lstat(s.path, &st) == 0;
	int fd = have && S_ISREG(st.st_mode) ? open(s.path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) : -1;

	cli_put(stdout, s.path);
	if (!have && absent_then) {
		puts(": not there now, nor in the snapshot");
	} else if (!have) {
		printf(": not there now; snapshot %s holds %s\n", s.id, s.kind);
		differ = 1;
	} else if (absent_then) {
		puts(": there now; nothing was there in the snapshot");
		differ = 1;
	} else if (file && !S_ISREG(st.st_mode)) {
		puts(": not a regular file now");
		differ = 1;
	} else if (file && !s.src_ok) {
		puts(": the snapshot's content is no longer in the store (agentguard gc)");
		differ = 1;
	} else if (file) {
		/* By its path, which lstat found a regular file (the hash and
		 * magic are read without following a symlink put there since). */
		char hex[AG_HASH_HEX];
		int same = fd >= 0 && s.sha256 && ag_sha256_file_hex(s.path, hex) == 0 &&
			   strcmp(hex, s.sha256) == 0;
		if (same) {
			printf(": the same content as snapshot %s\n", s.id);
		} else if (is_sqlite(s.src) && fd >= 0 && is_sqlite(s.path)) {
			printf(": a SQLite database, changed since snapshot %s:\n", s.id);
			differ = diff_tables(&s, s.path);
		} else {
			char a[32], b[32];
			cli_fmt_bytes((uint64_t)s.size, a, sizeof a);
			cli_fmt_bytes((uint64_t)st.st_size, b, sizeof b);
			printf(": changed since snapshot %s (%s then, %s now)\n", s.id, a, b);
			differ = 1;
			if (fd >= 0 && !run_diff(&s, fd))
				puts("(diff -u is not installed: no line-by-line comparison)");
		}
	} else if (strcmp(s.kind, "symlink") == 0) {
		char t[AG_PATH_MAX];
		ssize_t n = S_ISLNK(st.st_mode) ? readlink(s.path, t, sizeof t - 1) : -1;
		t[n > 0 ? n : 0] = 0;
		differ = n < 0 || !s.link_target || strcmp(t, s.link_target) != 0;
		fputs(differ ? ": a symlink to " : ": the same symlink, to ", stdout);
		cli_put(stdout, s.link_target ? s.link_target : "?");
		if (differ) {
			fputs(" in the snapshot; now ", stdout);
			if (n >= 0) {
				fputs("to ", stdout);
				cli_put(stdout, t);
			} else {
				fputs("not a symlink", stdout);
			}
		}
		putchar('\n');
	} else {
		printf(": %s in the snapshot, %s now\n", s.kind,
		       S_ISDIR(st.st_mode) ? "a directory" : "something");
		differ = strcmp(s.kind, "dir") != 0 || !S_ISDIR(st.st_mode);
	}
	if (have && !absent_then && s.has_mode && !S_ISLNK(st.st_mode) &&
	    (st.st_mode & 07777) != (s.mode & 07777)) {
		printf("mode %04llo in the snapshot, %04o now\n", (unsigned long long)(s.mode & 07777),
		       (unsigned)(st.st_mode & 07777));
		differ = 1;
	}
	if (fd >= 0)
		close(fd);
	snap_free(&s);
	cli_db_close(&d);
	if (fflush(stdout) != 0)
		return CLI_FAIL;
	return differ ? CLI_FAIL : CLI_OK;
}

const struct cli_command cli_cmd_show = {
	.name = "show",
	.summary = "what a snapshot holds: metadata, a text preview, a database's tables",
	.help = show_help,
	.main = cmd_show,
};

const struct cli_command cli_cmd_diff = {
	.name = "diff",
	.summary = "compare a snapshot with what is at its path now",
	.help = diff_help,
	.main = cmd_diff,
};
