/* agentguard gc: trim the snapshot store, keeping the audit trail. */
#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"

static const char help[] =
"Usage: agentguard gc --older-than DURATION [--dry-run] [--state-dir DIR]\n"
"\n"
"Delete the stored content of snapshots taken more than DURATION ago (7d,\n"
"12h, 30m, ...), and session directories left empty. The snapshots' records\n"
"stay in the audit log (marked as removed), so reports still show what was\n"
"snapshotted; those snapshots can no longer be restored.\n"
"\n"
"Options:\n"
"  --older-than DUR  required: how old a snapshot must be to go\n"
"  --dry-run         say how much would be freed, delete nothing\n"
"  --state-dir DIR   where audit.db and snapshots/ live\n";

enum { OPT_OLDER = 1, OPT_DRY_RUN };

static const struct option options[] = {
	{ "older-than", required_argument, NULL, OPT_OLDER },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ NULL, 0, NULL, 0 },
};

static int exec_sql(struct cli_db *d, const char *sql)
{
	if (sqlite3_exec(d->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return cli_db_error(d, "cannot update the audit log");
	return 0;
}

/* A store directory left empty, and the ones above it up to snapshots/
 * (a session's, holding one directory per source directory). rmdir only
 * succeeds on an empty one, which is the point. */
static void rmdir_up(const struct cli_db *d, char *dir)
{
	char top[AG_PATH_MAX + 16];
	size_t tl = (size_t)snprintf(top, sizeof top, "%s/snapshots", d->state_dir);

	while (strlen(dir) > tl && strncmp(dir, top, tl) == 0 && dir[tl] == '/' &&
	       rmdir(dir) == 0) {
		char *slash = strrchr(dir, '/');
		*slash = 0;
	}
}

/* What removing the store's names frees on disk: an inode's blocks, once,
 * and only when no name outside the ones removed is left (a snapshot of a
 * file that is still there frees nothing). */
struct inodes {
	struct ino { dev_t dev; ino_t ino; nlink_t nlink, ours; blkcnt_t blocks; } *v;
	size_t n, cap;
};

static void inode_add(struct inodes *in, const struct stat *st)
{
	if (in->n == in->cap) {
		size_t cap = in->cap ? 2 * in->cap : 256;
		struct ino *v = realloc(in->v, cap * sizeof *v);
		if (!v)
			return;
		in->v = v;
		in->cap = cap;
	}
	in->v[in->n++] = (struct ino){ st->st_dev, st->st_ino, st->st_nlink, 1, st->st_blocks };
}

static int ino_cmp(const void *a, const void *b)
{
	const struct ino *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static uint64_t inode_freed(struct inodes *in)
{
	uint64_t n = 0;

	if (in->n)
		qsort(in->v, in->n, sizeof *in->v, ino_cmp);
	for (size_t i = 0, j; i < in->n; i = j) {
		nlink_t ours = 0;
		for (j = i; j < in->n && ino_cmp(&in->v[i], &in->v[j]) == 0; j++)
			ours++;
		if (ours >= in->v[i].nlink)
			n += (uint64_t)in->v[i].blocks * 512;
	}
	free(in->v);
	in->v = NULL;
	in->n = in->cap = 0;
	return n;
}

static int cmd_gc(int argc, char **argv)
{
	struct cli_opts co = { 0 };
	struct cli_db d;
	int c, status = CLI_OK, dry = 0, rc;
	int64_t age = -1;
	long count = 0, errors = 0;
	uint64_t bytes = 0;
	struct inodes in = { 0 };

	optind = 0;
	while ((c = cli_getopt(argc, argv, options, &co, &status)) != -1) {
		switch (c) {
		case CLI_OPT_STOP:
			return status;
		case OPT_OLDER:
			if (ag_parse_duration(optarg, &age) < 0)
				return cli_usage("--older-than wants a duration like 7d, 12h or 30m, not '%s'",
						 optarg);
			break;
		case OPT_DRY_RUN: dry = 1; break;
		}
	}
	if (optind < argc)
		return cli_usage("unexpected argument '%s'", argv[optind]);
	if (age < 0)
		return cli_usage("say how old snapshots must be: --older-than 7d, say");
	if (cli_db_open(&d, &co, dry ? CLI_DB_READ : CLI_DB_WRITE) < 0)
		return CLI_FAIL;

	int64_t cutoff = ag_now_ns() - age;
	sqlite3_stmt *sel = cli_prepare(&d, "SELECT id, store FROM snapshots WHERE "
					    "store IS NOT NULL AND created_ns < ?1 ORDER BY store");
	sqlite3_stmt *upd = dry ? NULL : cli_prepare(&d, "UPDATE snapshots SET store = NULL "
							 "WHERE id = ?1");
	if (!sel || (!dry && !upd))
		goto fail;
	/* One transaction: gc holds the write lock briefly, not once per file. */
	if (!dry && exec_sql(&d, "BEGIN IMMEDIATE") < 0)
		goto fail;
	sqlite3_bind_int64(sel, 1, cutoff);
	char lastdir[AG_PATH_MAX] = "";
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		char path[AG_PATH_MAX + AG_PATH_MAX];
		struct stat st;
		const char *id = cli_col(sel, 0);
		if (cli_store_path(&d, cli_col(sel, 1), path, sizeof path) < 0) {
			cli_warn("snapshot %s points outside the snapshot store (%s); left alone",
				 id ? id : "?", cli_col(sel, 1));
			errors++;
			continue;
		}
		/* Content already gone (an interrupted gc) still gets its row marked. */
		int present = lstat(path, &st) == 0;
		if (present && !dry && unlink(path) < 0) {
			cli_warn("cannot delete %s: %s", path, strerror(errno));
			errors++;
			continue;
		}
		if (present) {
			bytes += (uint64_t)st.st_size;
			inode_add(&in, &st);
		}
		count++;
		if (!dry) {
			sqlite3_reset(upd);
			sqlite3_bind_text(upd, 1, id, -1, SQLITE_STATIC);
			if (sqlite3_step(upd) != SQLITE_DONE) {
				cli_db_error(&d, "cannot mark a snapshot as removed");
				exec_sql(&d, "ROLLBACK");
				goto fail;
			}
			/* Rows come sorted by store, so each store dir once. */
			char *dir = dirname(path);
			if (strcmp(dir, lastdir) != 0) {
				if (lastdir[0])
					rmdir_up(&d, lastdir);
				snprintf(lastdir, sizeof lastdir, "%s", dir);
			}
		}
	}
	if (lastdir[0])
		rmdir_up(&d, lastdir);
	if (rc != SQLITE_DONE) {
		cli_db_error(&d, "cannot read the snapshots");
		if (!dry)
			exec_sql(&d, "ROLLBACK");
		goto fail;
	}
	if (!dry && exec_sql(&d, "COMMIT") < 0)
		goto fail;
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	cli_db_close(&d);

	char human[32], disk[32], when[64];
	uint64_t used = inode_freed(&in);
	cli_fmt_bytes(used, disk, sizeof disk);
	cli_fmt_bytes(bytes, human, sizeof human);
	cli_fmt_time(cutoff, 1, when, sizeof when);
	printf("%s %s on disk", dry ? "would free" : "freed", disk);
	if (used >= 1024)
		printf(" (%llu bytes)", (unsigned long long)used);
	printf(", %s of content, from %ld snapshot%s taken before %s\n", human, count,
	       count == 1 ? "" : "s", when);
	if (errors)
		printf("%ld snapshot%s could not be removed (see above)\n", errors,
		       errors == 1 ? "" : "s");
	return errors ? CLI_FAIL : CLI_OK;

fail:
	free(in.v);
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	cli_db_close(&d);
	return CLI_FAIL;
}

const struct cli_command cli_cmd_gc = {
	.name = "gc",
	.summary = "delete old snapshot content, keep the records",
	.help = help,
	.main = cmd_gc,
};
