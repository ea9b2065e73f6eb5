/* lib/snapshot.c: keeping what a delete, rename-over or truncate destroys. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentguard.h"
#include "helpers.h"
#include "snapshot.h"

static char T[AG_PATH_MAX];      /* scratch: T/ws is the workspace */
static char STATE[AG_PATH_MAX];  /* T/state */
static char OTHER[AG_PATH_MAX];  /* a dir on another filesystem, if made */

static void setup(void)
{
	char p[AG_PATH_MAX];

	ut_mkdtemp(T, sizeof T);
	ut_fmt(STATE, sizeof STATE, "%s/state", T);
	cr_assert_eq(mkdir(STATE, 0700), 0);
	ut_fmt(p, sizeof p, "%s/ws", T);
	cr_assert_eq(mkdir(p, 0755), 0);
	OTHER[0] = 0;
}

static void teardown(void)
{
	ut_rmrf(T);
	if (OTHER[0])
		ut_rmrf(OTHER);
}

TestSuite(snapshot, .init = setup, .fini = teardown);
TestSuite(copy_file, .init = setup, .fini = teardown);

static void ws(char *out, const char *name)
{
	ut_fmt(out, AG_PATH_MAX, "%s/ws/%s", T, name);
}

static void store_abs(char *out, const char *state, const struct ag_snapshot *s)
{
	ut_fmt(out, AG_PATH_MAX, "%s/%s", state, s->store);
}

static void expect_id_and_store(const struct ag_snapshot *s, const char *session)
{
	char want[200];

	cr_expect_eq(strlen(s->id), 12, "id \"%s\"", s->id);
	cr_expect_eq(strspn(s->id, "0123456789abcdef"), 12, "id \"%s\"", s->id);
	/* snapshots/SESSION/BUCKET/ID: one store directory per source directory. */
	ut_fmt(want, sizeof want, "snapshots/%s/", session);
	size_t wl = strlen(want);
	cr_expect_eq(strncmp(s->store, want, wl), 0, "store \"%s\"", s->store);
	const char *bucket = s->store + wl;
	cr_expect_eq(strspn(bucket, "0123456789abcdef"), 8, "store \"%s\"", s->store);
	cr_expect_eq(bucket[8], '/', "store \"%s\"", s->store);
	cr_expect_str_eq(bucket + 9, s->id);
}

Test(snapshot, take_regular_file_is_a_hard_link)
{
	char p[AG_PATH_MAX], st_path[AG_PATH_MAX];
	struct ag_snapshot s;
	struct stat orig, kept;

	ws(p, "notes.txt");
	ut_write_str(p, "precious\n");
	cr_assert_eq(chmod(p, 0640), 0);
	cr_assert_eq(lstat(p, &orig), 0);

	cr_assert_eq(ag_snapshot_take(STATE, "sess1", p, AG_SNAP_TAKE, &s), 0,
		     "%s", strerror(errno));
	cr_expect_str_eq(s.kind, "file");
	cr_expect_eq(s.path, p, "path is the caller's string, not a copy");
	expect_id_and_store(&s, "sess1");
	cr_expect_str_eq(s.link_target, "");
	cr_expect_eq(s.st.st_ino, orig.st_ino);
	cr_expect_eq(s.st.st_size, 9);
	cr_expect_eq(s.st.st_mode, orig.st_mode);
	cr_expect_eq(s.st.st_mtim.tv_nsec, orig.st_mtim.tv_nsec);

	store_abs(st_path, STATE, &s);
	cr_assert_eq(lstat(st_path, &kept), 0, "%s: %s", st_path, strerror(errno));
	cr_expect_eq(kept.st_ino, orig.st_ino, "same inode: a hard link");
	cr_expect_eq(kept.st_dev, orig.st_dev);
	cr_expect_eq(kept.st_nlink, 2);
	/* The original is untouched: the real call has yet to run. */
	char *now = ut_read(p, NULL);
	cr_expect_str_eq(now, "precious\n");
	free(now);
	/* Now the real delete: the content lives on in the store. */
	cr_assert_eq(unlink(p), 0);
	now = ut_read(st_path, NULL);
	cr_expect_str_eq(now, "precious\n");
	free(now);

	/* The store is private. */
	char dir[AG_PATH_MAX];
	struct stat ds;
	ut_fmt(dir, sizeof dir, "%s/snapshots/sess1", STATE);
	cr_assert_eq(stat(dir, &ds), 0);
	cr_expect_eq(ds.st_mode & 0777, 0700);
}

Test(snapshot, take_symlink_keeps_the_link_itself)
{
	char p[AG_PATH_MAX], target[AG_PATH_MAX], st_path[AG_PATH_MAX], buf[AG_PATH_MAX];
	struct ag_snapshot s;
	struct stat kept, orig;

	/* A link to a real file: the file must not be what gets stored. */
	ws(target, "real.txt");
	ut_write_str(target, "the target");
	ws(p, "link");
	cr_assert_eq(symlink("real.txt", p), 0);
	cr_assert_eq(lstat(p, &orig), 0);

	cr_assert_eq(ag_snapshot_take(STATE, "sess1", p, AG_SNAP_TAKE, &s), 0);
	cr_expect_str_eq(s.kind, "symlink");
	expect_id_and_store(&s, "sess1");
	cr_expect_str_eq(s.link_target, "real.txt");
	cr_expect(S_ISLNK(s.st.st_mode));
	store_abs(st_path, STATE, &s);
	cr_assert_eq(lstat(st_path, &kept), 0);
	cr_expect(S_ISLNK(kept.st_mode), "the store holds a symlink");
	ssize_t n = readlink(st_path, buf, sizeof buf - 1);
	cr_assert_gt(n, 0);
	buf[n] = 0;
	cr_expect_str_eq(buf, "real.txt");
	cr_expect_eq(lstat(p, &orig), 0, "the original link is still there");

	/* A dangling link, with a long absolute target. */
	ws(p, "dangling");
	char far[600];
	memset(far, 'd', sizeof far - 1);
	far[0] = '/';
	far[sizeof far - 1] = 0;
	cr_assert_eq(symlink(far, p), 0);
	cr_assert_eq(ag_snapshot_take(STATE, "sess1", p, AG_SNAP_TAKE, &s), 0);
	cr_expect_str_eq(s.kind, "symlink");
	cr_expect_str_eq(s.link_target, far);
	store_abs(st_path, STATE, &s);
	n = readlink(st_path, buf, sizeof buf - 1);
	cr_assert_gt(n, 0);
	buf[n] = 0;
	cr_expect_str_eq(buf, far);
}

Test(snapshot, empty_directory_is_metadata_only)
{
	char p[AG_PATH_MAX], dir[AG_PATH_MAX];
	struct ag_snapshot s;

	ws(p, "emptydir");
	cr_assert_eq(mkdir(p, 0751), 0);
	cr_assert_eq(ag_snapshot_take(STATE, "sess1", p, AG_SNAP_TAKE, &s), 0);
	cr_expect_str_eq(s.kind, "dir");
	cr_expect_str_eq(s.store, "");
	cr_expect_eq(strlen(s.id), 12);
	cr_expect(S_ISDIR(s.st.st_mode));
	cr_expect_eq(s.st.st_mode & 07777, 0751);
	/* Nothing was stored. */
	ut_fmt(dir, sizeof dir, "%s/snapshots/sess1/%s", STATE, s.id);
	struct stat st;
	cr_expect_eq(lstat(dir, &st), -1);
}

Test(snapshot, fifo_is_a_fifo_with_nothing_stored)
{
	char p[AG_PATH_MAX];
	struct ag_snapshot s;

	ws(p, "fifo");
	cr_assert_eq(mkfifo(p, 0600), 0);
	cr_assert_eq(ag_snapshot_take(STATE, "sess1", p, AG_SNAP_TAKE, &s), 0);
	cr_expect_str_eq(s.kind, "fifo");
	cr_expect_str_eq(s.store, "");
}

Test(snapshot, nothing_to_preserve)
{
	char p[AG_PATH_MAX];
	struct ag_snapshot s;

	ws(p, "missing");
	cr_expect_eq(ag_snapshot_take(STATE, "sess1", p, AG_SNAP_TAKE, &s), 1);
	cr_expect_eq(ag_snapshot_take(STATE, "sess1", p, AG_SNAP_COPY, &s), 1);
	ws(p, "nodir/missing");
	cr_expect_eq(ag_snapshot_take(STATE, "sess1", p, AG_SNAP_TAKE, &s), 1);
	/* A parent that is a file (ENOTDIR): nothing there either. */
	ws(p, "file");
	ut_write_str(p, "x");
	ws(p, "file/child");
	cr_expect_eq(ag_snapshot_take(STATE, "sess1", p, AG_SNAP_TAKE, &s), 1);
	/* And no store was made for nothing. */
	char dir[AG_PATH_MAX];
	struct stat st;
	ut_fmt(dir, sizeof dir, "%s/snapshots", STATE);
	cr_expect_eq(lstat(dir, &st), -1);
}

Test(snapshot, copy_is_independent_of_the_original)
{
	char p[AG_PATH_MAX], st_path[AG_PATH_MAX];
	struct ag_snapshot s;
	struct stat orig, kept;

	ws(p, "data.bin");
	ut_write_str(p, "version one");
	cr_assert_eq(lstat(p, &orig), 0);
	cr_assert_eq(ag_snapshot_take(STATE, "sessC", p, AG_SNAP_COPY, &s), 0,
		     "%s", strerror(errno));
	cr_expect_str_eq(s.kind, "file");
	expect_id_and_store(&s, "sessC");
	store_abs(st_path, STATE, &s);
	cr_assert_eq(lstat(st_path, &kept), 0);
	cr_expect_neq(kept.st_ino, orig.st_ino, "a copy, not a link");
	cr_expect(S_ISREG(kept.st_mode));
	cr_expect_eq(kept.st_mode & 0777, 0600);
	cr_expect_eq(s.st.st_size, 11);

	/* The truncate runs, then the file is rewritten in place. */
	int fd = open(p, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "v2", 2), 2);
	close(fd);
	char *snap = ut_read(st_path, NULL);
	cr_expect_str_eq(snap, "version one");
	free(snap);
	char *now = ut_read(p, NULL);
	cr_expect_str_eq(now, "v2");
	free(now);
}

Test(snapshot, copy_of_a_symlink_stores_a_symlink)
{
	char p[AG_PATH_MAX], st_path[AG_PATH_MAX], buf[64];
	struct ag_snapshot s;
	struct stat kept, orig;

	ws(p, "l");
	cr_assert_eq(symlink("somewhere", p), 0);
	cr_assert_eq(lstat(p, &orig), 0);
	cr_assert_eq(ag_snapshot_take(STATE, "sessC", p, AG_SNAP_COPY, &s), 0);
	cr_expect_str_eq(s.kind, "symlink");
	cr_expect_str_eq(s.link_target, "somewhere");
	store_abs(st_path, STATE, &s);
	cr_assert_eq(lstat(st_path, &kept), 0);
	cr_expect(S_ISLNK(kept.st_mode));
	cr_expect_neq(kept.st_ino, orig.st_ino);
	ssize_t n = readlink(st_path, buf, sizeof buf - 1);
	cr_assert_eq(n, 9);
	buf[n] = 0;
	cr_expect_str_eq(buf, "somewhere");
}

Test(snapshot, ids_are_distinct_and_both_kept)
{
	char p[AG_PATH_MAX], a[AG_PATH_MAX], b[AG_PATH_MAX];
	struct ag_snapshot s1, s2;

	ws(p, "f");
	ut_write_str(p, "one");
	cr_assert_eq(ag_snapshot_take(STATE, "sess2", p, AG_SNAP_COPY, &s1), 0);
	ut_write_str(p, "two");
	cr_assert_eq(ag_snapshot_take(STATE, "sess2", p, AG_SNAP_COPY, &s2), 0);
	cr_expect_str_neq(s1.id, s2.id);
	store_abs(a, STATE, &s1);
	store_abs(b, STATE, &s2);
	char *x = ut_read(a, NULL), *y = ut_read(b, NULL);
	cr_expect_str_eq(x, "one");
	cr_expect_str_eq(y, "two");
	free(x);
	free(y);
}

Test(snapshot, stale_enoent_in_errno_does_not_matter)
{
	char p[AG_PATH_MAX], st_path[AG_PATH_MAX];
	struct ag_snapshot s;

	/* Callers arrive with whatever errno their last call left. */
	ws(p, "f");
	ut_write_str(p, "content");
	errno = ENOENT;
	cr_assert_eq(ag_snapshot_take(STATE, "sessE", p, AG_SNAP_COPY, &s), 0,
		     "%s", strerror(errno));
	store_abs(st_path, STATE, &s);
	char *x = ut_read(st_path, NULL);
	cr_expect_str_eq(x, "content");
	free(x);
	errno = ENOENT;
	cr_assert_eq(ag_snapshot_take(STATE, "sessE", p, AG_SNAP_COPY, &s), 0,
		     "second snapshot, store dir exists: %s", strerror(errno));
	store_abs(st_path, STATE, &s);
	x = ut_read(st_path, NULL);
	cr_expect_str_eq(x, "content");
	free(x);
}

Test(snapshot, unusable_store_fails)
{
	char p[AG_PATH_MAX], bad[AG_PATH_MAX];
	struct ag_snapshot s;

	ws(p, "f");
	ut_write_str(p, "x");
	/* A state dir that is a file: no snapshot can be kept there. */
	ut_fmt(bad, sizeof bad, "%s/statefile", T);
	ut_write_str(bad, "not a dir");
	errno = 0;
	cr_expect_eq(ag_snapshot_take(bad, "sess1", p, AG_SNAP_TAKE, &s), -1);
	cr_expect_neq(errno, 0);
	cr_expect_eq(ag_snapshot_take(bad, "sess1", p, AG_SNAP_COPY, &s), -1);
	/* The original is left alone. */
	char *x = ut_read(p, NULL);
	cr_expect_str_eq(x, "x");
	free(x);
}

/* Across filesystems a hard link is impossible: the store gets a copy. */
Test(snapshot, take_across_filesystems_copies)
{
	char p[AG_PATH_MAX], st_path[AG_PATH_MAX], l[AG_PATH_MAX], buf[64];
	struct ag_snapshot s;
	struct stat a, b, kept;

	if (stat("/dev/shm", &b) < 0 || stat(T, &a) < 0 || a.st_dev == b.st_dev)
		cr_skip_test("no second filesystem at /dev/shm");
	ut_mkdtemp_in("/dev/shm", OTHER, sizeof OTHER);

	ws(p, "far.txt");
	ut_write_str(p, "across");
	cr_assert_eq(ag_snapshot_take(OTHER, "sessX", p, AG_SNAP_TAKE, &s), 0,
		     "%s", strerror(errno));
	cr_expect_str_eq(s.kind, "file");
	store_abs(st_path, OTHER, &s);
	cr_assert_eq(lstat(st_path, &kept), 0);
	cr_expect(S_ISREG(kept.st_mode));
	char *x = ut_read(st_path, NULL);
	cr_expect_str_eq(x, "across");
	free(x);
	cr_expect_eq(access(p, F_OK), 0, "the original stays for the real call");

	ws(l, "farlink");
	cr_assert_eq(symlink("far.txt", l), 0);
	cr_assert_eq(ag_snapshot_take(OTHER, "sessX", l, AG_SNAP_TAKE, &s), 0);
	cr_expect_str_eq(s.kind, "symlink");
	store_abs(st_path, OTHER, &s);
	cr_assert_eq(lstat(st_path, &kept), 0);
	cr_expect(S_ISLNK(kept.st_mode));
	ssize_t n = readlink(st_path, buf, sizeof buf - 1);
	cr_assert_eq(n, 7);
	buf[n] = 0;
	cr_expect_str_eq(buf, "far.txt");
}

/* ---- ag_copy_file ----------------------------------------------------------- */

Test(copy_file, copies_bytes_and_mode)
{
	char src[AG_PATH_MAX], dst[AG_PATH_MAX];
	size_t n = (1 << 20) + 12345;
	char *data = malloc(n);

	cr_assert_not_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 2654435761u >> 13);
	ws(src, "src");
	ut_write(src, data, n);
	ws(dst, "dst");
	umask(0);
	cr_assert_eq(ag_copy_file(src, dst, 0640), 0, "%s", strerror(errno));
	size_t got;
	char *back = ut_read(dst, &got);
	cr_assert_eq(got, n);
	cr_expect_eq(memcmp(back, data, n), 0);
	struct stat st;
	cr_assert_eq(lstat(dst, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0640);
	free(back);
	free(data);

	/* Empty files too. */
	ws(src, "empty");
	ut_write(src, "", 0);
	ws(dst, "empty-copy");
	cr_assert_eq(ag_copy_file(src, dst, 0600), 0);
	cr_assert_eq(lstat(dst, &st), 0);
	cr_expect_eq(st.st_size, 0);
}

Test(copy_file, never_overwrites)
{
	char src[AG_PATH_MAX], dst[AG_PATH_MAX];

	ws(src, "src");
	ut_write_str(src, "new");
	ws(dst, "dst");
	ut_write_str(dst, "existing");
	errno = 0;
	cr_expect_eq(ag_copy_file(src, dst, 0600), -1);
	cr_expect_eq(errno, EEXIST);
	char *x = ut_read(dst, NULL);
	cr_expect_str_eq(x, "existing", "a failed copy must not touch (or remove) dst");
	free(x);
}

Test(copy_file, never_follows_a_symlink_at_dst)
{
	char src[AG_PATH_MAX], dst[AG_PATH_MAX], victim[AG_PATH_MAX], absent[AG_PATH_MAX];
	struct stat st;

	ws(src, "src");
	ut_write_str(src, "attacker data");
	/* dst -> an existing file elsewhere. */
	ws(victim, "victim");
	ut_write_str(victim, "keep me");
	ws(dst, "dst");
	cr_assert_eq(symlink(victim, dst), 0);
	errno = 0;
	cr_expect_eq(ag_copy_file(src, dst, 0600), -1);
	cr_expect_eq(errno, EEXIST);
	char *x = ut_read(victim, NULL);
	cr_expect_str_eq(x, "keep me");
	free(x);
	cr_assert_eq(lstat(dst, &st), 0);
	cr_expect(S_ISLNK(st.st_mode), "the symlink itself is left as it was");

	/* dst -> a name that does not exist yet: it must not be created. */
	ws(absent, "created-through-link");
	ws(dst, "dst2");
	cr_assert_eq(symlink(absent, dst), 0);
	cr_expect_eq(ag_copy_file(src, dst, 0600), -1);
	cr_expect_eq(lstat(absent, &st), -1, "the copy went through the symlink");
}

Test(copy_file, bad_sources)
{
	char src[AG_PATH_MAX], dst[AG_PATH_MAX], real[AG_PATH_MAX];
	struct stat st;

	ws(dst, "dst");
	ws(src, "missing");
	errno = 0;
	cr_expect_eq(ag_copy_file(src, dst, 0600), -1);
	cr_expect_eq(errno, ENOENT);

	/* A symlink source is not followed. */
	ws(real, "real");
	ut_write_str(real, "data");
	ws(src, "srclink");
	cr_assert_eq(symlink(real, src), 0);
	errno = 0;
	cr_expect_eq(ag_copy_file(src, dst, 0600), -1);
	cr_expect_eq(errno, ELOOP);

	/* Only regular files. */
	ws(src, "adir");
	cr_assert_eq(mkdir(src, 0700), 0);
	errno = 0;
	cr_expect_eq(ag_copy_file(src, dst, 0600), -1);
	cr_expect_eq(errno, EINVAL);
	cr_expect_eq(lstat(dst, &st), -1, "no dst left behind");
}

Test(copy_file, keeps_holes)
{
	char src[AG_PATH_MAX], dst[AG_PATH_MAX];
	off_t size = 64 << 20;

	ws(src, "sparse");
	int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, "head", 4, 0), 4);
	cr_assert_eq(pwrite(fd, "mid", 3, size / 2), 3);
	cr_assert_eq(ftruncate(fd, size), 0);
	close(fd);
	ws(dst, "copy");
	cr_assert_eq(ag_copy_file(src, dst, 0600), 0, "%s", strerror(errno));
	struct stat st;
	cr_assert_eq(stat(dst, &st), 0);
	cr_expect_eq(st.st_size, size);
	cr_expect_lt(st.st_blocks, 1024, "%lld blocks: the holes were filled",
		     (long long)st.st_blocks);
	size_t n;
	char *a = ut_read(src, &n), *b;
	size_t m;
	b = ut_read(dst, &m);
	cr_assert_eq(n, m);
	cr_expect_eq(memcmp(a, b, n), 0);
	free(a);
	free(b);
}
