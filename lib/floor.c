/*
 * The Landlock floor, as a guarded process sees it (tools/floor.c builds
 * it): which paths its own calls can still change, so that the calls the
 * floor would refuse are made by the supervisor instead.
 *
 * Landlock can only grant. To keep ~/.ssh or the audit log out of reach,
 * the floor grants its rights on every entry that existed beside them, all
 * the way up: their ancestors ("restricted" directories: /, $HOME, ...)
 * get no rights of their own, so a file made later directly in $HOME, or
 * in a directory made there later, is beyond this process's reach. Such a
 * call is judged and made by the supervisor, which stands outside the
 * floor: the library does not judge it itself but makes the system call
 * outside the gate (lib/gate.c), where the kernel layer takes it.
 *
 * The zone file (AGENTGUARD_FLOOR) holds one line per entry, sorted by
 * path: "R<path>" for a restricted directory, "G<path>" for an entry the
 * floor grants (with everything below it). It is searched in place: no
 * allocation, so this works in signal handlers too.
 */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floor.h"
#include "guard.h"

static const char *zone;      /* the mapped file, or NULL */
static size_t zone_len;
static int zone_state;        /* 0 not yet, 1 being loaded, 2 done */
/* AGENTGUARD_FLOOR as the constructor saw it, read when first needed (a
 * store from the constructor was a page fault in every process). */
static const char *zone_path;
static int zone_path_read;

static const char *floor_path(void)
{
	if (!__atomic_load_n(&zone_path_read, __ATOMIC_ACQUIRE)) {
		const char *p = ag_getenv("AGENTGUARD_FLOOR");
		zone_path = p && *p == '/' ? p : NULL;
		__atomic_store_n(&zone_path_read, 1, __ATOMIC_RELEASE);
	}
	return zone_path;
}

int ag_floor_on(void)
{
	return floor_path() != NULL;
}

static void load(void)
{
	int expect = 0;

	if (!__atomic_compare_exchange_n(&zone_state, &expect, 1, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return;
	int fd = AG_REAL(open)(floor_path(), O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p != MAP_FAILED) {
			zone_len = (size_t)st.st_size;
			zone = p;
		}
	}
	if (fd >= 0)
		close(fd);
	__atomic_store_n(&zone_state, 2, __ATOMIC_RELEASE);
}

/* Where the zone's line for path[0, n) starts, or NULL. Binary search on
 * the sorted lines: from a middle byte, back to its line's start. */
static const char *line_of(const char *path, size_t n)
{
	size_t lo = 0, hi = zone_len;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, s = mid;
		while (s > lo && zone[s - 1] != '\n')
			s--;
		const char *nl = memchr(zone + s, '\n', zone_len - s);
		size_t e = nl ? (size_t)(nl - zone) : zone_len;
		if (e - s < 1) {
			lo = e + 1;
			continue;
		}
		size_t ln = e - s - 1;
		int c = memcmp(zone + s + 1, path, ln < n ? ln : n);
		if (c == 0)
			c = ln < n ? -1 : ln > n ? 1 : 0;
		if (c == 0)
			return zone + s;
		if (c < 0)
			lo = e + 1;
		else
			hi = s;
	}
	return NULL;
}

/* The kind of path[0, n)'s line ('R', 'G'), or 0. */
static int kind_of(const char *path, size_t n)
{
	const char *l = line_of(path, n);

	return l ? l[0] : 0;
}

/* The granted entry the last covered path fell under: its offset in the
 * zone (high half) and length (low half), in one word so that threads
 * never see half of another's. */
static uint64_t last_granted;

int ag_floor_covers(const char *path, size_t n)
{
	if (!floor_path() || !path || path[0] != '/')
		return 1;
	if (__atomic_load_n(&zone_state, __ATOMIC_ACQUIRE) != 2)
		load();
	if (!zone || __atomic_load_n(&zone_state, __ATOMIC_ACQUIRE) != 2)
		return 1;   /* no zone (or loading in an interrupted thread): try */
	/* Most calls fall under the entry the last one did (an rm -rf of a
	 * tree in the workspace): that one is tried first. */
	uint64_t lg = __atomic_load_n(&last_granted, __ATOMIC_RELAXED);
	size_t gl = (uint32_t)lg;
	if (lg && gl <= n && memcmp(path, zone + (lg >> 32), gl) == 0 &&
	    (gl == n || path[gl] == '/'))
		return 1;
	if (kind_of("/", 1) != 'R')
		return 1;
	/* Down from "/": restricted directories lead on, a granted entry
	 * covers all below it, anything else (a protected entry, or one made
	 * after the floor was laid) is out of reach. */
	for (size_t i = 1; i <= n; i++) {
		if (i < n && path[i] != '/')
			continue;
		const char *line = line_of(path, i);
		int k = line ? line[0] : 0;
		if (k == 'G') {
			__atomic_store_n(&last_granted, (uint64_t)(line + 1 - zone) << 32 | (uint32_t)i,
					 __ATOMIC_RELAXED);
			return 1;
		}
		if (k != 'R')
			return 0;
	}
	return 0;   /* a restricted directory itself */
}

/* The directory part of an absolute path: its length (1 for "/x"). */
static size_t parent_len(const char *p)
{
	const char *s = strrchr(p, '/');

	return s && s > p ? (size_t)(s - p) : 1;
}

int ag_floor_reaches(const struct ag_op *op)
{
	if (!floor_path())
		return 1;
	switch (op->kind) {
	case AG_OP_DELETE:
	case AG_OP_RENAME:
	case AG_OP_TRUNCATE:
	case AG_OP_WRITE:
	case AG_OP_LINK:
		break;
	default:
		return 1;
	}
	/* Removing, renaming and linking are rights of the directory; writing
	 * and truncating of the file, which an atomic replace may have made
	 * anew since: the directory decides for all of them. */
	if (op->path && op->path[0] == '/' && !ag_floor_covers(op->path, parent_len(op->path)))
		return 0;
	if (op->target && op->target[0] == '/' &&
	    !ag_floor_covers(op->target, parent_len(op->target)))
		return 0;
	return 1;
}
