/* The per-process event spool: see spool.h for why it exists. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "spool.h"

#define SPOOL_INIT (16u << 10)   /* most processes record a handful of events */
#define SPOOL_MAX (64u << 20)    /* then start a new file */
#define HDR_SIZE AG_SPOOL_HDR_SIZE

_Static_assert(sizeof(struct ag_spool_hdr) <= HDR_SIZE, "spool header too big");

/* What of an argv did not fit under AG_ARGV_MAX. */
struct argv_cut {
	int64_t bytes, words;
};

/* The spool's lock, taken for every record and every errno patch: one
 * compare-and-swap to take it and one exchange to give it back when no
 * other thread wants it (a pthread mutex pair costs several times that);
 * a thread that finds it held sleeps on a futex. */
static void lock(struct ag_spool *sp)
{
	int c = 0;

	if (__atomic_compare_exchange_n(&sp->lk, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	if (c != 2)
		c = __atomic_exchange_n(&sp->lk, 2, __ATOMIC_ACQUIRE);
	while (c != 0) {
		syscall(SYS_futex, &sp->lk, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
		c = __atomic_exchange_n(&sp->lk, 2, __ATOMIC_ACQUIRE);
	}
}

static int trylock(struct ag_spool *sp)
{
	int c = 0;

	return __atomic_compare_exchange_n(&sp->lk, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)
		? 0 : -1;
}

static void unlock(struct ag_spool *sp)
{
	if (__atomic_exchange_n(&sp->lk, 0, __ATOMIC_RELEASE) == 2)
		syscall(SYS_futex, &sp->lk, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Bytes an argv takes as NUL-separated words, whole words only; what is
 * left out goes into *cut. Out of line: most records have no argv, and
 * its loops in line cost them their registers. */
static AG_NOINLINE uint32_t argv_len(const char *const *argv, struct argv_cut *cut)
{
	size_t n = 0;

	for (; argv && *argv; argv++) {
		size_t l = strlen(*argv) + 1;
		if (n + l > AG_ARGV_MAX)
			break;
		n += l;
	}
	for (; argv && *argv; argv++) {
		cut->bytes += (int64_t)strlen(*argv) + 1;
		cut->words++;
	}
	return (uint32_t)n;
}

#define CUT_FIELD (1 + 4 + sizeof(struct argv_cut))

static AG_INLINE size_t rec_size(struct ag_field *f, int nf, struct argv_cut *cut)
{
	size_t n = sizeof(struct ag_rec);

	cut->bytes = cut->words = 0;
	for (int i = 0; i < nf; i++) {
		if (!f[i].data)
			continue;
		if (f[i].tag & AG_FIELD_ARGV)
			f[i].len = argv_len(f[i].data, cut);
		n += 1 + 4 + f[i].len;
	}
	if (cut->words)
		n += CUT_FIELD;
	return (n + 7) & ~(size_t)7;
}

static int reserve(const char *path, size_t size, dev_t dev, ino_t ino)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	int rc = -1;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0 && (!ino || (st.st_dev == dev && st.st_ino == ino))) {
		rc = posix_fallocate(fd, 0, (off_t)size);
		if (rc) {
			errno = rc;
			rc = -1;
		}
	} else {
		errno = ESTALE;
	}
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* Create, reserve, map and name a fresh spool. The file gets its final
 * name only once its header is written, so a reader never sees a
 * half-made spool. Paths are built in the spool itself (the first record
 * may be made on a signal stack), and named whole: holding the directory
 * open would cost two more system calls. */
static int spool_create(struct ag_spool *sp, size_t need)
{
	unsigned char rnd[6];
	size_t cap = SPOOL_INIT;

	while (cap < need + HDR_SIZE)
		cap *= 2;
	if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != sizeof rnd) {
		uint64_t t = (uint64_t)ag_mono_ns() ^ (uint64_t)getpid() << 20;
		memcpy(rnd, &t, sizeof rnd);
	}
	pid_t pid = sp->pid ? sp->pid : getpid();
	snprintf(sp->name, sizeof sp->name, "%s.%d.%02x%02x%02x%02x%02x%02x",
		 sp->session, (int)pid, rnd[0], rnd[1], rnd[2], rnd[3],
		 rnd[4], rnd[5]);
	const char *dir = sp->dir ? sp->dir : "spool";
	if (ag_fmt(sp->tmp, sizeof sp->tmp, "%s/%s/.%s.tmp", sp->state_dir, dir, sp->name) < 0 ||
	    ag_fmt(sp->path, sizeof sp->path, "%s/%s/%s.spool", sp->state_dir, dir, sp->name) < 0)
		return -1;
	int fd = open(sp->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* Made anew (someone removed it, or the state dir, meanwhile). */
		char *slash = strrchr(sp->tmp, '/');
		*slash = 0;
		if ((mkdir(sp->state_dir, 0700) < 0 && errno != EEXIST) ||
		    (mkdir(sp->tmp, 0700) < 0 && errno != EEXIST)) {
			if (ag_mkdirs(sp->tmp, 0700) < 0)
				return -1;
		}
		*slash = '/';
		fd = open(sp->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	if (fd < 0)
		return -1;
	struct stat st;
	int rc = posix_fallocate(fd, 0, (off_t)cap);
	if (rc == 0 && fstat(fd, &st) < 0)
		rc = errno;
	char *base = MAP_FAILED;
	if (rc == 0) {
		base = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (base == MAP_FAILED)
			rc = errno;
	}
	/* The mapping is all we keep: programs close descriptors they do not own. */
	close(fd);
	if (rc) {
		unlink(sp->tmp);
		errno = rc;
		return -1;
	}
	struct ag_spool_hdr *h = (struct ag_spool_hdr *)base;
	memcpy(h->magic, AG_SPOOL_MAGIC, 8);
	h->hdr_size = HDR_SIZE;
	h->pid = pid;
	h->proc_start = ag_proc_start(pid);
	snprintf(h->session, sizeof h->session, "%s", sp->session);
	__atomic_store_n(&h->used, (uint64_t)HDR_SIZE, __ATOMIC_RELEASE);
	if (rename(sp->tmp, sp->path) < 0) {
		int e = errno;
		munmap(base, cap);
		unlink(sp->tmp);
		errno = e;
		return -1;
	}
	sp->base = base;
	sp->cap = cap;
	sp->dev = st.st_dev;
	sp->ino = st.st_ino;
	sp->owner = 1;
	sp->gen++;
	/* The header's page is in: the first records need no populate. */
	sp->populated = 4096;
	sp->created_ns = ag_now_ns();
	sp->since_check = 0;
	sp->checked_at = sp->created_ns;
	return 0;
}

/* An argv field: whole words, never past what rec_size counted (another
 * thread may change the argv in between: then the rest is NULs). */
static AG_NOINLINE void put_argv(char *p, uint32_t len, const char *const *argv)
{
	char *end = p + len;

	for (const char *const *a = argv; *a; a++) {
		size_t l = strlen(*a) + 1;
		if (l > (size_t)(end - p))
			break;
		memcpy(p, *a, l);
		p += l;
	}
	memset(p, 0, (size_t)(end - p));
}

static AG_INLINE void put_field(char **p, const struct ag_field *f)
{
	uint32_t len = f->len;
	char *q = *p;

	q[0] = (char)(f->tag & 0xff);
	memcpy(q + 1, &len, 4);
	if (f->tag & AG_FIELD_ARGV)
		put_argv(q + 5, len, f->data);
	else
		memcpy(q + 5, f->data, len);
	*p = q + 5 + len;
}

static int write_proc_record(struct ag_spool *sp);
static int write_session_record(struct ag_spool *sp);

static int open_spool(struct ag_spool *sp, size_t need)
{
	int64_t now = ag_mono_ns();

	if (sp->failed && now - sp->failed_at < 1000000000LL) {
		errno = EIO;
		return -1;
	}
	if (!sp->state_dir || !sp->session) {
		errno = EINVAL;
		return -1;
	}
	if (spool_create(sp, need + 4096) < 0) {
		sp->failed = 1;
		sp->failed_at = now;
		return -1;
	}
	sp->failed = 0;
	if (write_proc_record(sp) < 0)
		return -1;
	return sp->session_rec ? write_session_record(sp) : 0;
}

/* Every SPOOL_CHECK records, or once a second, make sure the mapped file
 * is still the one at sp->path: a long-running process whose state dir
 * was removed would otherwise append to a deleted file nobody reads. The
 * check is a stat, a sixteenth of a system call per record; checking
 * less often was tried (1024) and lost up to that many rows of a process
 * whose state dir was removed under it, which costs more than the call. */
#define SPOOL_CHECK 16

static void spool_gone(struct ag_spool *sp);

/* now: the record's time (no clock read of its own per record). */
static void check_gone(struct ag_spool *sp, int64_t now)
{
	struct stat st;

	if (++sp->since_check < SPOOL_CHECK && now - sp->checked_at < 1000000000LL)
		return;
	sp->since_check = 0;
	sp->checked_at = now;
	if (stat(sp->path, &st) == 0) {
		if (st.st_dev == sp->dev && st.st_ino == sp->ino)
			return;
	} else if (errno != ENOENT && errno != ENOTDIR) {
		return;   /* cannot tell (EACCES, ...): keep writing */
	}
	spool_gone(sp);
}

/* The mapped file is no longer at sp->path. Everything it held is lost
 * with it (the CLI only deletes spools nobody maps, so nothing in it was
 * moved to audit.db). */
static void spool_gone(struct ag_spool *sp)
{
	struct ag_spool_hdr *h = (struct ag_spool_hdr *)sp->base;
	uint64_t n = __atomic_load_n(&h->seq, __ATOMIC_RELAXED);
	if (!sp->gone)
		sp->gone_since = sp->created_ns;
	sp->gone += n;
	munmap(sp->base, sp->cap);
	sp->base = NULL;
	sp->cap = 0;
	sp->gen++;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* Multiple of every page size (4, 16, 64 KiB), so a start rounded down to
 * it is page-aligned anywhere. */
#define POPULATE_ALIGN (64u << 10)
#define POPULATE_STEP (256u << 10)

/* Fault the spool's pages in ahead of the records, one call per 256 KiB,
 * instead of a page fault every 4 KiB (every 30 or so records) on the
 * hooked call that happens to cross it. Where the kernel cannot, the pages
 * fault in one by one as before. */
static void populate(struct ag_spool *sp, uint64_t upto)
{
	if (sp->populate_off)
		return;
	uint64_t from = sp->populated > upto ? upto : sp->populated;
	from &= ~(uint64_t)(POPULATE_ALIGN - 1);
	uint64_t to = from + POPULATE_STEP;
	while (to < upto)
		to += POPULATE_STEP;
	if (to > sp->cap)
		to = sp->cap;
	if (to <= from || madvise(sp->base + from, (size_t)(to - from), MADV_POPULATE_WRITE) < 0) {
		sp->populate_off = errno == EINVAL || errno == ENOSYS;
		sp->populated = upto;
		return;
	}
	sp->populated = to;
}

/* With sp->lk held: reserve `need` bytes; their offset, or -1. Other
 * processes may append to the same file (a fork child to its parent's),
 * so the reservation is a compare-and-swap on the shared header. */
static AG_NOINLINE int64_t reserve_slow(struct ag_spool *sp, size_t need,
						      int64_t now)
{
	if (sp->base)
		check_gone(sp, now);
	for (int tries = 0; tries < 64; tries++) {
		if (!sp->base && open_spool(sp, need) < 0)
			return -1;
		struct ag_spool_hdr *h = (struct ag_spool_hdr *)sp->base;
		uint64_t used = __atomic_load_n(&h->used, __ATOMIC_ACQUIRE);
		if (used + need <= sp->cap) {
			if (__atomic_compare_exchange_n(&h->used, &used, used + need, 0,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				if (used + need > sp->populated)
					populate(sp, used + need);
				return (int64_t)used;
			}
			continue;
		}
		if (!sp->owner) {
			/* The parent's file is full as far as we can see: our own. */
			munmap(sp->base, sp->cap);
			sp->base = NULL;
			continue;
		}
		size_t cap = sp->cap;
		while (cap < used + need)
			cap *= 2;
		if (cap > SPOOL_MAX && used > HDR_SIZE) {
			/* Start a new file; the old one becomes an orphan for the CLI. */
			munmap(sp->base, sp->cap);
			sp->base = NULL;
			continue;
		}
		if (reserve(sp->path, cap, sp->dev, sp->ino) < 0) {
			if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE)
				return -1;
			spool_gone(sp);   /* found out before the check would */
			continue;
		}
		void *nb = mremap(sp->base, sp->cap, cap, MREMAP_MAYMOVE);
		if (nb == MAP_FAILED)
			return -1;
		/* Same file, same offsets: marks taken before the move stay valid. */
		sp->base = nb;
		sp->cap = cap;
	}
	errno = EAGAIN;
	return -1;
}

/* The common case in line: the file is in place (not due for its check),
 * there is room, and it is faulted in. Everything else: reserve_slow. */
static inline int64_t reserve_room(struct ag_spool *sp, size_t need, int64_t now)
{
	struct ag_spool_hdr *h = (struct ag_spool_hdr *)sp->base;

	if (h && sp->since_check + 1 < SPOOL_CHECK && now - sp->checked_at < 1000000000LL) {
		uint64_t used = __atomic_load_n(&h->used, __ATOMIC_ACQUIRE);
		if (used + need <= sp->cap && used + need <= sp->populated &&
		    __atomic_compare_exchange_n(&h->used, &used, used + need, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			sp->since_check++;
			return (int64_t)used;
		}
	}
	return reserve_slow(sp, need, now);
}

/* In line in append (every hooked call); the rest call it out of line. */
static AG_INLINE int
put_record(struct ag_spool *sp, uint16_t type, uint32_t code, int32_t err, int64_t time_ns,
	   int64_t latency_ns, struct ag_field *f, int nf, struct ag_spool_mark *mark)
{
	struct argv_cut cut;
	size_t need = rec_size(f, nf, &cut);

	if (need > UINT32_MAX)
		return -1;
	int64_t at = reserve_room(sp, need, time_ns);
	if (at < 0)
		return -1;
	struct ag_spool_hdr *h = (struct ag_spool_hdr *)sp->base;
	char *rec = sp->base + at;
	/* In place, all but the length: the room is zeros until then. */
	struct ag_rec *r = (struct ag_rec *)rec;
	r->type = type;
	r->err = err;
	r->code = code;
	r->seq = __atomic_add_fetch(&h->seq, 1, __ATOMIC_RELAXED);
	r->time_ns = time_ns;
	r->latency_ns = latency_ns;
	char *p = rec + sizeof *r;
	for (int i = 0; i < nf; i++)
		if (f[i].data)
			put_field(&p, &f[i]);
	if (cut.words) {
		struct ag_field c = {AG_T_ARGV_CUT, sizeof cut, &cut};
		put_field(&p, &c);
	}
	/* At most 7 bytes of padding, in at most three stores. */
	size_t pad = (size_t)(rec + need - p);
	if (pad & 4) {
		memset(p, 0, 4);
		p += 4;
	}
	if (pad & 2) {
		memset(p, 0, 2);
		p += 2;
	}
	if (pad & 1)
		*p = 0;
	/* The length after the fields (a reader that meets the record half
	 * made sees none yet), and the store that makes it count. */
	__atomic_store_n(&r->len, (uint32_t)need, __ATOMIC_RELEASE);
	__atomic_store_n(&r->flags, AG_REC_COMMITTED, __ATOMIC_RELEASE);
	if (mark) {
		mark->gen = sp->gen;
		mark->off = (size_t)at;
	}
	return 0;
}

static AG_NOINLINE int append_locked(struct ag_spool *sp, uint16_t type,
						     int32_t err, int64_t time_ns,
						     struct ag_field *f, int nf)
{
	return put_record(sp, type, 0, err, time_ns, 0, f, nf, NULL);
}

static int write_proc_record(struct ag_spool *sp)
{
	/* Static: written under the spool's lock, and off the caller's stack. */
	static char exe[AG_PATH_MAX], cwd[AG_PATH_MAX];
	/* In a vfork child getppid() names the parent, not the parent's own. */
	int64_t ppid = !sp->pid || sp->pid == getpid() ? getppid() : -1;

	if (sp->exe && sp->exe[0]) {
		snprintf(exe, sizeof exe, "%s", sp->exe);
	} else {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		exe[n > 0 ? n : 0] = 0;
	}
	if (!getcwd(cwd, sizeof cwd))
		cwd[0] = 0;
	struct ag_field f[] = {
		{AG_T_EXE, (uint32_t)strlen(exe), exe},
		{AG_T_CWD, (uint32_t)strlen(cwd), cwd},
		{AG_T_ARGV | AG_FIELD_ARGV, 0, sp->argv},
		{AG_T_PPID, 8, &ppid},
	};
	return append_locked(sp, AG_REC_PROC, 0, ag_now_ns(), f, 4);
}

static int write_session_record(struct ag_spool *sp)
{
	struct ag_field f[24];
	int n = sp->session_nf < 24 ? sp->session_nf : 24;

	/* A copy: appending fills in the argv field's length. */
	memcpy(f, sp->session_rec, (size_t)n * sizeof f[0]);
	return append_locked(sp, AG_REC_SESSION, 0, sp->session_time, f, n);
}

int ag_spool_set_session(struct ag_spool *sp, const struct ag_field *f, int nf,
			 int64_t time_ns)
{
	int rc, e;

	lock(sp);
	sp->session_rec = f;
	sp->session_nf = nf;
	sp->session_time = time_ns;
	/* A new spool starts with it; an open one gets it appended. */
	if (!sp->base)
		rc = open_spool(sp, 0);
	else
		rc = write_session_record(sp);
	e = errno;
	unlock(sp);
	errno = e;
	return rc;
}

/* With sp->lk held, after a record went in: say what went missing. */
static void write_gaps(struct ag_spool *sp)
{
	char what[200];
	int l;

	if (sp->gone) {
		l = snprintf(what, sizeof what, "%llu records may have been lost: the spool "
			     "file holding them was deleted while in use (was the state dir "
			     "removed?)", (unsigned long long)sp->gone);
		struct ag_field g = {AG_T_WHAT, (uint32_t)l, what};
		if (append_locked(sp, AG_REC_GAP, 0, sp->gone_since, &g, 1) == 0)
			sp->gone = 0;
	}
	if (sp->lost) {
		int e = sp->lost_errno;
		int unwritable = e == EROFS || e == EACCES || e == EPERM;
		l = snprintf(what, sizeof what, "%llu decisions could not be recorded%s%s%s",
			     (unsigned long long)sp->lost,
			     unwritable ? " (the state dir could not be written: " : "",
			     unwritable ? strerror(e) : "", unwritable ? ")" : "");
		struct ag_field g = {AG_T_WHAT, (uint32_t)l, what};
		if (append_locked(sp, AG_REC_GAP, 0, sp->lost_since, &g, 1) == 0)
			sp->lost = 0;
	}
}

static AG_INLINE int append(struct ag_spool *sp, int try, uint16_t type, uint32_t code,
			    int32_t err, int64_t time_ns, int64_t latency_ns,
			    struct ag_field *f, int nf, struct ag_spool_mark *mark)
{
	int rc, e;

	if (!try)
		lock(sp);
	else if (trylock(sp) != 0) {
		errno = EBUSY;
		return -1;
	}
	rc = put_record(sp, type, code, err, time_ns, latency_ns, f, nf, mark);
	e = errno;
	if (rc < 0 && type == AG_REC_EVENT) {
		if (!sp->lost++)
			sp->lost_since = time_ns;
		sp->lost_errno = e;
	} else if (rc == 0 && (sp->lost || sp->gone)) {
		write_gaps(sp);
	}
	unlock(sp);
	errno = e;
	return rc;
}

int ag_spool_append(struct ag_spool *sp, uint16_t type, int32_t err,
		    int64_t time_ns, int64_t latency_ns,
		    struct ag_field *f, int nf, struct ag_spool_mark *mark)
{
	return append(sp, 0, type, 0, err, time_ns, latency_ns, f, nf, mark);
}

int ag_spool_append_coded(struct ag_spool *sp, int try, uint32_t code, int32_t err,
			  int64_t time_ns, int64_t latency_ns, struct ag_field *f, int nf,
			  struct ag_spool_mark *mark)
{
	return append(sp, try, AG_REC_EVENT, code, err, time_ns, latency_ns, f, nf, mark);
}

void ag_spool_patch_errno(struct ag_spool *sp, const struct ag_spool_mark *m,
			  int err)
{
	lock(sp);
	if (sp->base && m->gen == sp->gen && m->off + sizeof(struct ag_rec) <= sp->cap) {
		struct ag_rec *r = (struct ag_rec *)(sp->base + m->off);
		r->err = err;
	}
	unlock(sp);
}

void ag_spool_after_fork(struct ag_spool *sp)
{
	/* Threads that held the lock are not in this process. */
	sp->lk = 0;
	sp->owner = 0;
	sp->failed = 0;
	sp->lost = 0;
	sp->gone = 0;
	/* The session row names its starting process: not this one. */
	sp->session_rec = NULL;
}

void ag_spool_forget(struct ag_spool *sp)
{
	if (sp->base)
		munmap(sp->base, sp->cap);
	sp->base = NULL;
	sp->cap = 0;
	sp->failed = 0;
	sp->lost = 0;
	sp->gone = 0;
	sp->lk = 0;
}

/* ---- reading ------------------------------------------------------------ */

int64_t ag_rec_int(const struct ag_rec_view *rv, int tag)
{
	int64_t v = 0;

	if (tag > 0 && tag < AG_T_MAX && rv->field[tag] && rv->flen[tag] == 8)
		memcpy(&v, rv->field[tag], 8);
	return v;
}

/* A window on the file, read with pread: a spool cut short while we read
 * it ends the read instead of killing us with SIGBUS, and a huge file is
 * never mapped or read whole. */
struct reader {
	int fd;
	uint64_t size;
	unsigned char *buf;
	size_t cap, len;   /* buf holds [off, off + len) */
	uint64_t off;
	int err;
};

#define WINDOW (1u << 20)

/* [off, off + len) of the file, valid until the next call; NULL past the
 * end or on a read error. */
static const unsigned char *rd_at(struct reader *rd, uint64_t off, size_t len)
{
	if (off >= rd->off && off - rd->off <= rd->len && len <= rd->len - (off - rd->off))
		return rd->buf + (off - rd->off);
	if (rd->err || off > rd->size || len > rd->size - off)
		return NULL;
	size_t want = len > WINDOW ? len : WINDOW;
	if (want > rd->size - off)
		want = (size_t)(rd->size - off);
	if (want > rd->cap) {
		unsigned char *nb = realloc(rd->buf, want);
		if (!nb) {
			rd->err = ENOMEM;
			return NULL;
		}
		rd->buf = nb;
		rd->cap = want;
	}
	size_t got = 0;
	while (got < want) {
		ssize_t n = pread(rd->fd, rd->buf + got, want - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rd->err = errno;
			break;
		}
		if (n == 0) {
			rd->size = off + got;   /* cut short since we looked */
			break;
		}
		got += (size_t)n;
	}
	rd->off = off;
	rd->len = got;
	return got >= len ? rd->buf : NULL;
}

/* The next 8-aligned offset from off that is not all zero bytes, or the
 * end. Zeros are space reserved by fallocate and never written. */
static uint64_t skip_zeros(struct reader *rd, uint64_t off)
{
	while (off + 8 <= rd->size) {
		size_t n = rd->size - off < WINDOW ? (size_t)(rd->size - off) & ~(size_t)7 : WINDOW;
		const unsigned char *p = rd_at(rd, off, n);
		if (!p)
			return off;
		size_t i = 0;
		while (i < n && !p[i])
			i++;
		if (i < n)
			return off + (i & ~(size_t)7);
		off += n;
	}
	return rd->size;
}

enum { REC_OK, REC_UNFINISHED, REC_BAD };

/* Everything a record must be to be believed: a known type, a number the
 * file can hold, fields that tile the record exactly up to the zero
 * padding the writer leaves. Fills rv. */
/* An event's header code (AG_REC_CODE): a known op, a known decision, an
 * enforced flag, nothing else. */
static int code_ok(uint32_t code)
{
	uint32_t op = code & 0xff, dec = code >> 8 & 0xff, enf = code >> 16;

	return op >= 1 && op <= AG_OP_COUNT && dec >= 1 && dec <= AG_ACTION_COUNT &&
	       (enf == 1 || enf == 2);
}

static int parse_rec(const unsigned char *p, uint64_t maxseq, struct ag_rec_view *rv)
{
	const struct ag_rec *r = (const void *)p;
	const unsigned char *q = p + sizeof *r, *end = p + r->len;

	if (r->type < AG_REC_PROC || r->type > AG_REC_GAP ||
	    (r->flags & ~AG_REC_COMMITTED) || !r->seq || r->seq > maxseq ||
	    (r->code && (r->type != AG_REC_EVENT || !code_ok(r->code))))
		return REC_BAD;
	memset(rv, 0, sizeof *rv);
	rv->rec = r;
	while (q < end && *q) {
		uint32_t len;
		if (end - q < 5)
			return REC_BAD;
		memcpy(&len, q + 1, 4);
		if ((size_t)(end - (q + 5)) < len)
			return REC_BAD;
		if (*q < AG_T_MAX) {
			rv->field[*q] = q + 5;
			rv->flen[*q] = len;
		}
		q += 5 + len;
	}
	if (end - q >= 8)
		return REC_BAD;
	for (; q < end; q++)
		if (*q)
			return REC_BAD;
	if (rv->field[AG_T_ARGV] && rv->flen[AG_T_ARGV] > AG_ARGV_MAX)
		return REC_BAD;
	if (r->code) {
		/* The header's op, decision and enforced flag, shown as the
		 * fields they stand for (and then none of them may be one). */
		static const int64_t flag[2] = {0, 1};
		const char *op = ag_op_name((enum ag_op_kind)((r->code & 0xff) - 1));
		const char *dec = ag_action_name((enum ag_action)((r->code >> 8 & 0xff) - 1));
		if (rv->field[AG_T_OP] || rv->field[AG_T_DECISION] || rv->field[AG_T_ENFORCED])
			return REC_BAD;
		rv->field[AG_T_OP] = (const unsigned char *)op;
		rv->flen[AG_T_OP] = (uint32_t)strlen(op);
		rv->field[AG_T_DECISION] = (const unsigned char *)dec;
		rv->flen[AG_T_DECISION] = (uint32_t)strlen(dec);
		rv->field[AG_T_ENFORCED] = (const unsigned char *)&flag[(r->code >> 16) - 1];
		rv->flen[AG_T_ENFORCED] = 8;
	}
	return __atomic_load_n(&r->flags, __ATOMIC_ACQUIRE) & AG_REC_COMMITTED ? REC_OK
									       : REC_UNFINISHED;
}

static void damage_at(struct ag_spool_damage *d, uint64_t off)
{
	if (!d->first)
		d->first = off;
}

size_t ag_spool_committed(const unsigned char *buf, size_t len, uint64_t off)
{
	size_t at = 0;
	uint64_t maxseq = (off + len) / sizeof(struct ag_rec) + 1;

	while (at + sizeof(struct ag_rec) <= len) {
		struct ag_rec r;
		struct ag_rec_view rv;
		memcpy(&r, buf + at, sizeof r);
		if (r.len < sizeof r || r.len % 8 || r.len > AG_REC_MAX || r.len > len - at ||
		    parse_rec(buf + at, maxseq, &rv) != REC_OK)
			break;
		at += r.len;
	}
	return at;
}

int ag_spool_read_fd(int fd, const char *name, ag_spool_fn fn, void *ctx,
		     struct ag_spool_damage *dmg)
{
	struct ag_spool_damage scratch;
	struct ag_spool_hdr h;
	unsigned char hb[HDR_SIZE];
	struct stat st;

	if (!dmg)
		dmg = &scratch;
	memset(dmg, 0, sizeof *dmg);
	if (fstat(fd, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)HDR_SIZE) {
		errno = EINVAL;
		return -1;
	}
	if (st.st_size > AG_SPOOL_READ_MAX) {
		errno = EFBIG;
		return -1;
	}
	struct reader rd = {.fd = fd, .size = (uint64_t)st.st_size};
	const unsigned char *p = rd_at(&rd, 0, HDR_SIZE);
	if (!p) {
		int e = rd.err ? rd.err : EINVAL;
		free(rd.buf);
		errno = e;
		return -1;
	}
	memcpy(hb, p, HDR_SIZE);
	memcpy(&h, hb, sizeof h);
	if (memcmp(h.magic, AG_SPOOL_MAGIC, 8) != 0 || h.hdr_size != HDR_SIZE) {
		free(rd.buf);
		errno = EINVAL;
		return -1;
	}

	char nm[256];
	const char *slash = strrchr(name, '/');
	snprintf(nm, sizeof nm, "%s", slash ? slash + 1 : name);
	size_t nl = strlen(nm);
	if (nl > 6 && strcmp(nm + nl - 6, ".spool") == 0)
		nm[nl - 6] = 0;
	struct ag_spool_view sv = {
		&h, nm, memchr(h.session, 0, sizeof h.session) ? h.session : NULL,
	};

	uint64_t used = h.used;
	if (used > rd.size) {
		dmg->missing = used - rd.size;
		damage_at(dmg, rd.size);
		used = rd.size;
	}
	/* Record numbers run from 1 and each record takes at least a header:
	 * anything else, and any number seen twice, is not a record we wrote. */
	uint64_t maxseq = (rd.size - HDR_SIZE) / sizeof(struct ag_rec);
	unsigned char *seen = calloc(maxseq / 8 + 1, 1);
	if (!seen) {
		free(rd.buf);
		errno = ENOMEM;
		return -1;
	}

	/* Records up to `used` are what the writers reserved; the walk goes on
	 * to the end of the file so that a header whose `used` was damaged
	 * loses nothing, and past damage it looks for the next record that
	 * parses, 8 bytes at a time, so one bad record costs only itself. */
	int rc = 0;
	uint64_t off = HDR_SIZE, end = HDR_SIZE;
	while (off + sizeof(struct ag_rec) <= rd.size) {
		p = rd_at(&rd, off, sizeof(struct ag_rec));
		if (!p)
			break;
		uint64_t w;
		memcpy(&w, p, 8);
		if (!w) {
			uint64_t next = skip_zeros(&rd, off);
			if (off < used) {
				/* reserved, never written: its writer died */
				uint64_t stop = next < used ? next : used;
				dmg->bytes += stop - off;
				damage_at(dmg, off);
			}
			off = next;
			continue;
		}
		const struct ag_rec *r = (const void *)p;
		uint32_t len = r->len;
		int kind = REC_BAD;
		struct ag_rec_view rv;
		if (len >= sizeof *r && len % 8 == 0 && len <= AG_REC_MAX && len <= rd.size - off &&
		    (p = rd_at(&rd, off, len)))
			kind = parse_rec(p, maxseq, &rv);
		if (kind == REC_BAD) {
			if (rd.err)
				break;
			dmg->bytes += 8;
			damage_at(dmg, off);
			off += 8;
			continue;
		}
		if (off + len > end)
			end = off + len;
		if (kind == REC_UNFINISHED) {
			dmg->unfinished++;
			damage_at(dmg, off);
			off += len;
			continue;
		}
		uint64_t seq = rv.rec->seq;
		if (seen[seq / 8] & (1u << (seq % 8))) {
			dmg->records++;
			damage_at(dmg, off);
			off += len;
			continue;
		}
		seen[seq / 8] |= (unsigned char)(1u << (seq % 8));
		rv.off = off;
		if ((rc = fn(ctx, &sv, &rv)) != 0)
			break;
		off += len;
	}
	if (!rc && off < rd.size && (rd.err || off < used)) {
		/* What could not be read, or a record cut off by the end of the
		 * file, is damage like any other. */
		dmg->bytes += (rd.err ? rd.size : used < rd.size ? used : rd.size) - off;
		damage_at(dmg, off);
	}
	if (end > used) {
		/* Records past the header's end mark: a damaged header (or a
		 * writer still appending, which a reader of a live spool knows). */
		dmg->unmarked = end - used;
		damage_at(dmg, used);
	}
	free(seen);
	free(rd.buf);
	return rc;
}

int ag_spool_read(const char *path, ag_spool_fn fn, void *ctx)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	int rc = ag_spool_read_fd(fd, path, fn, ctx, NULL);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* The fields of a snapshot (into an event's record, or one of its own). */
int ag_snapshot_fields(const struct ag_snapshot *s, struct ag_field *f, int n,
		       struct ag_snap_vals *v)
{
#define ADD(tag, str) do { if (str) f[n++] = (struct ag_field){tag, (uint32_t)strlen(str), str}; } while (0)
#define ADDI(tag, ptr) (f[n++] = (struct ag_field){tag, 8, ptr})
	v->mode = s->st.st_mode;
	v->uid = s->st.st_uid;
	v->gid = s->st.st_gid;
	v->at = (int64_t)s->st.st_atim.tv_sec * 1000000000 + s->st.st_atim.tv_nsec;
	v->mt = (int64_t)s->st.st_mtim.tv_sec * 1000000000 + s->st.st_mtim.tv_nsec;
	v->size = s->st.st_size;
	ADD(AG_T_SNAP_ID, s->id);
	ADD(AG_T_KIND, s->kind);
	ADDI(AG_T_MODE_BITS, &v->mode);
	ADDI(AG_T_UID, &v->uid);
	ADDI(AG_T_GID, &v->gid);
	ADDI(AG_T_ATIME, &v->at);
	ADDI(AG_T_MTIME, &v->mt);
	ADDI(AG_T_SIZE, &v->size);
	ADD(AG_T_SNAPSHOT, s->path);
	if (s->link_target[0])
		ADD(AG_T_LINK, s->link_target);
	if (s->store[0])
		ADD(AG_T_STORE, s->store);
	/* A device node is its numbers: restore makes it again with them. */
	v->rdev = (int64_t)s->st.st_rdev;
	if (S_ISCHR(s->st.st_mode) || S_ISBLK(s->st.st_mode))
		ADDI(AG_T_RDEV, &v->rdev);
	v->bt = s->btime_ns;
	if (v->bt > 0)
		ADDI(AG_T_BTIME, &v->bt);
	v->pat = s->parent_at;
	v->pmt = s->parent_mt;
	if (v->pmt >= 0) {
		ADDI(AG_T_PARENT_ATIME, &v->pat);
		ADDI(AG_T_PARENT_MTIME, &v->pmt);
	}
#undef ADD
#undef ADDI
	return n;
}
