/*
 * write: an existing, non-empty regular file opened to be overwritten in
 * place (truncate.c's open family asks ag_write_judge), and fallocate's
 * modes that drop or shift what a file holds.
 *
 * Once per file per session: an editor saves the same file hundreds of
 * times, and only the first save destroys what was there before the
 * session. The session keeps a table of the files already judged, shared
 * by all its processes (and the kernel layer's supervisor): a mapped file
 * under the state dir's spool/, next to the breaker's counters, so that a
 * second open of the same file costs one lookup in memory — no row, no
 * snapshot, no system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "write.h"

/* 2^17 slots of one 64-bit key: 1 MiB of address space, a sparse file
 * (only the pages touched take disk), room for far more files than a
 * session edits. A full neighbourhood just means "not seen": the file is
 * judged (and kept) again, which costs but loses nothing. */
#define SLOTS (1u << 17)
#define PROBES 64

static uint64_t *table;
static int64_t table_failed;   /* when mapping it last failed (mono ns) */

static uint64_t *get_table(void)
{
	uint64_t *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);

	if (t)
		return t;
	/* A full disk is not forever: try again, at most once a second. */
	int64_t f = __atomic_load_n(&table_failed, __ATOMIC_RELAXED);
	if (f && ag_mono_ns() - f < 1000000000LL)
		return NULL;
	const char *dir = ag_state_dir(), *sid = ag_session_id();
	char name[160];
	if (!dir || !dir[0] || !sid || !sid[0] ||
	    snprintf(name, sizeof name, "spool/%s.written", sid) >= (int)sizeof name)
		goto fail;
	int sd = AG_REAL(openat)(AT_FDCWD, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (sd < 0)
		goto fail;
	mkdirat(sd, "spool", 0700);
	int fd = AG_REAL(openat)(sd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	close(sd);
	if (fd < 0)
		goto fail;
	struct stat st;
	size_t len = (size_t)SLOTS * sizeof(uint64_t);
	if (fstat(fd, &st) < 0 || ((size_t)st.st_size < len && AG_REAL(ftruncate)(fd, (off_t)len) < 0)) {
		close(fd);
		goto fail;
	}
	t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (t == MAP_FAILED)
		goto fail;
	uint64_t *none = NULL;
	if (!__atomic_compare_exchange_n(&table, &none, t, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		munmap(t, len);   /* another thread mapped it first */
		t = none;
	}
	return t;
fail:
	__atomic_store_n(&table_failed, ag_mono_ns(), __ATOMIC_RELAXED);
	return NULL;
}

/* One 64-bit key per file. Two files sharing a key (odds ~n^2/2^64) would
 * let the second's first open pass unkept: accepted. Never 0 (empty). */
static uint64_t key_of(const struct stat *st)
{
	uint64_t k = (uint64_t)st->st_ino * 0x9e3779b97f4a7c15ull;
	k ^= ((uint64_t)st->st_dev + 0x632be59bd9b4e019ull) * 0xc2b2ae3d27d4eb4full;
	k ^= k >> 31;
	k *= 0xbf58476d1ce4e5b9ull;
	k ^= k >> 29;
	return k ? k : 1;
}

static int seen_key(uint64_t k)
{
	uint64_t *t = get_table();

	if (!t)
		return 0;
	for (unsigned i = 0; i < PROBES; i++) {
		uint64_t v = __atomic_load_n(&t[(k + i) & (SLOTS - 1)], __ATOMIC_ACQUIRE);
		if (v == k)
			return 1;
		if (!v)
			return 0;
	}
	return 0;
}

static void mark_key(uint64_t k)
{
	uint64_t *t = get_table();

	if (!t)
		return;
	for (unsigned i = 0; i < PROBES; i++) {
		uint64_t *slot = &t[(k + i) & (SLOTS - 1)], v = 0;
		if (__atomic_compare_exchange_n(slot, &v, k, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ||
		    v == k)
			return;
	}
}

int ag_write_seen(const struct stat *st)
{
	return seen_key(key_of(st));
}

void ag_write_mark(const struct stat *st)
{
	mark_key(key_of(st));
}

/* A `once` rule's snapshot (guard.c) lives in the same table under other
 * keys: a file kept as a `write` (its bytes at the first open) still gets
 * its first SQLite backup (consistent, its WAL included). */
static uint64_t once_key(const struct stat *st)
{
	uint64_t k = key_of(st) ^ 0x5bd1e9955bd1e995ull;

	return k ? k : 2;
}

int ag_once_seen(const struct stat *st)
{
	return seen_key(once_key(st));
}

void ag_once_mark(const struct stat *st)
{
	mark_key(once_key(st));
}

int ag_write_judge(struct ag_call *c, const struct stat *st)
{
	/* The guard's own files are refused whatever the rules say. */
	if (ag_protected(c->op.path)) {
		c->op.kind = AG_OP_WRITE;
		return ag_check(c) < 0 ? -1 : 0;
	}
	if (!ag_rules_name(c, AG_OP_WRITE) || ag_write_seen(st))
		return 1;
	c->op.kind = AG_OP_WRITE;
	if (ag_check(c) < 0)
		return -1;
	/* Marked only once kept (or allowed): two processes racing on the
	 * first open both keep it, neither lets the other write unkept. A
	 * denial that is only reported (enforce: false) is reported again. */
	if (c->decision != AG_DENY)
		ag_write_mark(st);
	return 0;
}

/* ---- fallocate -------------------------------------------------------------- */

/* The modes that drop data or move it (ZERO_RANGE overwrites with zeros;
 * COLLAPSE and INSERT shift everything after the range). Plain allocation
 * and KEEP_SIZE alone destroy nothing. */
#define DROPS (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_ZERO_RANGE | \
	       FALLOC_FL_INSERT_RANGE)

static int fallocate_guarded(int (*real)(int, int, off_t, off_t), int fd, int mode, off_t off,
			     off_t len)
{
	struct ag_call c;
	struct stat st;

	if (!(mode & DROPS) || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
		return real(fd, mode, off, len);
	ag_begin(&c, AG_OP_WRITE);
	if (ag_set_fd_path(&c, fd) < 0) {
		ag_skip(&c);
		return real(fd, mode, off, len);   /* not ours to name: the call decides */
	}
	/* The snapshot reads the file through the descriptor itself. */
	c.at.fd = fd;
	c.at.name = "";
	c.at.owned = 0;
	int rc = ag_write_judge(&c, &st);
	if (rc < 0)
		return ag_refuse(&c);
	if (rc > 0) {
		ag_skip(&c);
		return real(fd, mode, off, len);
	}
	return ag_end(&c, real(fd, mode, off, len));
}

AG_HOOK(int, fallocate, (int fd, int mode, off_t off, off_t len), (fd, mode, off, len))
{
	return fallocate_guarded(AG_REAL(fallocate), fd, mode, off, len);
}

AG_HOOK(int, fallocate64, (int fd, int mode, off_t off, off_t len), (fd, mode, off, len))
{
	return fallocate_guarded(AG_REAL(fallocate64), fd, mode, off, len);
}
