/*
 * The event spool: how a guarded process records decisions without
 * opening audit.db.
 *
 * Each process (each exec image) that has something to record gets one
 * file, state_dir/spool/<session>.<pid>.<random>.spool, mapped MAP_SHARED.
 * Appending a record is a memcpy plus a release-store of the header's
 * `used`; the bytes are in the page cache as soon as the store is done,
 * so the record survives the process being killed (SIGKILL) the moment
 * the call returns. The space is reserved with fallocate before it is
 * used, so a full disk is an error at reservation time, never a SIGBUS.
 *
 * `agentguard` (audit.c) moves spools of processes that no longer map
 * them into audit.db and deletes them.
 */
#ifndef AGENTGUARD_SPOOL_H
#define AGENTGUARD_SPOOL_H

#include <pthread.h>
#include <stdint.h>

#include "agentguard.h"
#include "session.h"
#include "snapshot.h"

enum ag_rec_type {
	AG_REC_PROC = 1,     /* the process: exe, argv, cwd, ppid */
	AG_REC_SESSION = 2,  /* a session started in this process */
	AG_REC_EVENT = 3,    /* one decision */
	AG_REC_SNAPSHOT = 4, /* what the previous event preserved */
	AG_REC_GAP = 5,      /* decisions that could not be recorded */
};

/* Field tags inside a record (type-length-value). */
enum ag_tag {
	AG_T_OP = 1, AG_T_PATH, AG_T_TARGET, AG_T_ADDRESS, AG_T_HOST, AG_T_PORT,
	AG_T_SQL, AG_T_SQL_CLASS, AG_T_DATABASE, AG_T_RULE, AG_T_DECISION,
	AG_T_ENFORCED, AG_T_REASON, AG_T_SNAPSHOT, AG_T_CWD, AG_T_ARGV,
	AG_T_EXE, AG_T_PPID,
	/* session */
	AG_T_SESSION, AG_T_MODE, AG_T_ENFORCE, AG_T_RULES, AG_T_RULES_HASH,
	AG_T_WORKSPACE, AG_T_STATE_DIR, AG_T_START,
	/* snapshot */
	AG_T_SNAP_ID, AG_T_KIND, AG_T_MODE_BITS, AG_T_UID, AG_T_GID,
	AG_T_ATIME, AG_T_MTIME, AG_T_SIZE, AG_T_LINK, AG_T_STORE,
	/* gap */
	AG_T_WHAT,
	/* exec */
	AG_T_UNGUARDED, AG_T_PID,
	/* snapshot: the parent directory's times before the session changed it */
	AG_T_PARENT_ATIME, AG_T_PARENT_MTIME,
	/* argv cut at AG_ARGV_MAX: two int64, the bytes and words left out */
	AG_T_ARGV_CUT,
	/* snapshot of a device node: its st_rdev */
	AG_T_RDEV,
	/* kernel layer: the event was seen by the supervisor ("kernel"), for
	 * the process of AG_T_PID/EXE/ARGV/CWD/PPID, started at AG_T_PROC_START */
	AG_T_LAYER, AG_T_PROC_START,
	/* snapshot: the inode's birth time */
	AG_T_BTIME,
	AG_T_MAX
};

/* A record as it sits in the file; fields follow, 8-byte aligned total. */
struct ag_rec {
	uint32_t len;        /* whole record, header included */
	uint16_t type;       /* enum ag_rec_type */
	uint16_t flags;
	int32_t err;         /* event: errno the call returned; -1 unknown */
	uint32_t code;       /* event: its op, decision and enforced flag (AG_REC_CODE),
	                        instead of those three fields; 0: they are fields */
	uint64_t seq;        /* per spool, from 1 */
	int64_t time_ns;
	int64_t latency_ns;
};

#define AG_SPOOL_MAGIC "AGSPOOL1"

struct ag_spool_hdr {
	char magic[8];
	uint32_t hdr_size;
	uint32_t reserved;
	uint64_t used;       /* end of reserved records (compare-and-swap: a
	                        fork child appends to its parent's spool) */
	int64_t pid;
	uint64_t proc_start;
	char session[AG_SESSION_ID_MAX];
	uint64_t seq;        /* last record number given out, shared likewise */
};

/* rec.flags: set once the record is complete. A writer killed mid-record
 * leaves it clear, and readers skip it. */
#define AG_REC_COMMITTED 1

/* A field to append: tag, bytes. Numbers are stored as 8-byte int64.
 * With AG_FIELD_ARGV in tag, data is a NULL-terminated argv that the
 * spool stores as NUL-separated words (whole words, at most AG_ARGV_MAX
 * bytes). What does not fit is counted in an AG_T_ARGV_CUT field the
 * spool adds itself, so a cut argv never reads as a complete one. At
 * most one AG_FIELD_ARGV field per record. */
#define AG_FIELD_ARGV 0x100
#define AG_ARGV_MAX (32u << 10)
struct ag_field {
	uint16_t tag;
	uint32_t len;
	const void *data;
};

/* One process's spool. All state lives here so fork can reset it. */
struct ag_spool {
	int lk;               /* its lock (spool.c): 0 free, 1 held, 2 held and waited for;
	                         a zeroed spool is unlocked */
	char *base;           /* the mapping, NULL until first use */
	size_t cap;           /* bytes mapped (== bytes reserved on disk) */
	unsigned gen;         /* bumps when the mapping is replaced */
	int owner;            /* this process made the file (only it grows it) */
	dev_t dev;
	ino_t ino;
	int failed;           /* creating it failed; retried at most once a second */
	int64_t failed_at;
	uint64_t lost;        /* records that could not be written (reported as a gap) */
	int lost_errno;       /* why the last of them could not */
	int64_t lost_since;
	uint64_t gone;        /* records in spool files deleted under us (a gap too) */
	int64_t gone_since;
	int64_t created_ns;   /* when the mapped file was made (wall clock) */
	uint64_t populated;   /* offsets below this are faulted in (populate) */
	int populate_off;     /* the kernel cannot (before Linux 5.14) */
	unsigned since_check; /* records since the file was last seen in place */
	int64_t checked_at;
	/* The session record, when this process started the session: written
	 * at the head of every spool file it makes, so the session row is not
	 * lost with a spool that could not be made (full disk) or was deleted. */
	const struct ag_field *session_rec;
	int session_nf;
	int64_t session_time;
	char path[AG_PATH_MAX];
	char tmp[AG_PATH_MAX];  /* the file's name while it is made */
	char name[128];       /* basename without ".spool": prefix of event uids */
	/* who writes: fixed when the session is known */
	pid_t pid;            /* the process whose memory this is: a vfork
	                         child that records first makes the file for
	                         its parent, which goes on using it */
	const char *state_dir;
	const char *session;
	const char *const *argv;
	const char *exe;      /* the program, when the caller knows it already */
	/* The directory under state_dir: "spool" (NULL), or "kspool" for
	 * the supervisor's own records, out of the session's reach. */
	const char *dir;
};

/* Where an appended record is, to patch its errno after the real call. */
struct ag_spool_mark {
	unsigned gen;
	size_t off;
};

/* An event's op, decision and enforced flag in its header: three fields
 * fewer to write on every hooked call. The reader shows them as the
 * fields (AG_T_OP, AG_T_DECISION, AG_T_ENFORCED). */
#define AG_REC_CODE(op, decision, enforced) \
	(((uint32_t)(op) + 1) | ((uint32_t)(decision) + 1) << 8 | ((enforced) ? 2u : 1u) << 16)

/* Append one record; 0 on success, -1 when it could not be written (the
 * caller fails closed for anything but a plain allow). An event's code
 * (AG_REC_CODE) or 0 goes into the header. */
int ag_spool_append(struct ag_spool *sp, uint16_t type, int32_t err,
		    int64_t time_ns, int64_t latency_ns,
		    struct ag_field *f, int nf, struct ag_spool_mark *mark);
/* An event with its code; try: -1 with EBUSY rather than wait for the
 * spool's lock (a signal handler that may have interrupted its holder). */
int ag_spool_append_coded(struct ag_spool *sp, int try, uint32_t code, int32_t err,
			  int64_t time_ns, int64_t latency_ns, struct ag_field *f, int nf,
			  struct ag_spool_mark *mark);
void ag_spool_patch_errno(struct ag_spool *sp, const struct ag_spool_mark *m,
			  int err);
/* Remember the session record (f must stay valid for the process's life)
 * and write it now if a spool can be made; else it goes at the head of
 * the next one. 0 if written now. */
int ag_spool_set_session(struct ag_spool *sp, const struct ag_field *f, int nf,
			 int64_t time_ns);
/* Forget the mapping: the next record starts a new file. */
void ag_spool_forget(struct ag_spool *sp);
/* In a fork child: keep appending to the parent's file while it has room
 * (a short-lived child records its exec without making a file of its
 * own); a new file when it has none. */
void ag_spool_after_fork(struct ag_spool *sp);

/* Reading (audit.c). A spool may be damaged (a disk error, a writer
 * killed mid-record, a truncation) or not ours at all, so reading trusts
 * nothing in it: every committed, well-formed record is handed to fn once,
 * and what could not be read is counted in an ag_spool_damage. */
struct ag_spool_view {
	const struct ag_spool_hdr *hdr;  /* a private copy of the header */
	const char *name;     /* uid prefix */
	const char *session;  /* hdr->session if it ends inside its field, else NULL */
};
struct ag_rec_view {
	uint64_t off;         /* where the record is in the file */
	const struct ag_rec *rec;
	const unsigned char *field[AG_T_MAX];  /* NULL when absent */
	uint32_t flen[AG_T_MAX];
};
typedef int (*ag_spool_fn)(void *ctx, const struct ag_spool_view *sv,
			   const struct ag_rec_view *rv);

/* The spool header's size: records start there. */
#define AG_SPOOL_HDR_SIZE 256u

/* Of the file bytes buf[0, len) (from a record's start at file offset
 * off), how many are whole, committed, well-formed records in a row: what
 * a copy of a live spool may take without ever having to change it. */
size_t ag_spool_committed(const unsigned char *buf, size_t len, uint64_t off);

/* No writer makes a record this big (guard.c caps SQL at 64 KiB, argv at
 * AG_ARGV_MAX): a bigger length field is damage. */
#define AG_REC_MAX (4u << 20)
/* Nor a file this big (a new one is started past 64 MiB). */
#define AG_SPOOL_READ_MAX ((int64_t)1 << 30)

struct ag_spool_damage {
	uint64_t bytes;       /* bytes in which no record could be read */
	uint64_t records;     /* records left out: malformed, numbered twice */
	uint64_t unfinished;  /* records their writer never completed */
	uint64_t missing;     /* bytes the header counts that the file lacks */
	uint64_t unmarked;    /* bytes of records past the header's `used` */
	uint64_t first;       /* offset of the first damage, 0 if none */
};

/* Calls fn for each committed record of the spool open on fd (read with
 * pread, never mapped: a file cut short under us cannot SIGBUS). name is
 * the file's name (the uid prefix is taken from it). Returns 0, fn's first
 * nonzero return, or -1 with errno: EINVAL not a spool (no header), EFBIG
 * bigger than any spool, or a read error. dmg may be NULL. A spool still
 * being written shows its unfinished records as damage too. */
int ag_spool_read_fd(int fd, const char *name, ag_spool_fn fn, void *ctx,
		     struct ag_spool_damage *dmg);
/* The same for a path; refuses (EINVAL) anything but a regular file and
 * never follows a symlink or blocks on opening. */
int ag_spool_read(const char *path, ag_spool_fn fn, void *ctx);
/* An int64 field's value (0 when absent). */
int64_t ag_rec_int(const struct ag_rec_view *rv, int tag);

/* A snapshot's metadata as record fields, appended at f[n] (at most 14);
 * the numbers live in v, which must outlast the append. The new n. */
struct ag_snap_vals {
	int64_t mode, uid, gid, at, mt, size, pat, pmt, rdev, bt;
};
int ag_snapshot_fields(const struct ag_snapshot *s, struct ag_field *f, int n,
		       struct ag_snap_vals *v);

#endif
