/*
 * The audit log: audit.db in the state dir (SQLite, WAL, busy_timeout).
 *
 * Guarded processes never open audit.db: a hook appends its event to the
 * process's spool file (spool.c; a memcpy into a shared file mapping, so
 * the row survives SIGKILL the moment the call returns). The CLI moves
 * finished spools into audit.db (ag_audit_ingest), extending each
 * session's hash chain as it inserts.
 *
 * Schema (column names are the JSON field names of `report --json`):
 *
 *   sessions(id TEXT PK, argv TEXT json array, mode TEXT, enforce INT,
 *            rules TEXT (file or "builtin:default.yaml"), rules_hash TEXT,
 *            workspace TEXT, state_dir TEXT, pid INT, start_ns INT,
 *            end_ns INT, exit_status INT, genesis TEXT, head TEXT,
 *            events INT, halted INT, undoes TEXT (a restore's session, mode
 *            'restore': "session S" or "snapshots" it restored), hostname TEXT,
 *            user TEXT, user_id INT, container TEXT (where it ran: the
 *            machine, the user and the container id of whoever recorded it
 *            first; NULL in rows from before they were kept))
 *   events(id INTEGER PK (chain order), uid TEXT UNIQUE, time_ns INT,
 *          session TEXT, pid INT, ppid INT, proc_start INT, exe TEXT,
 *          argv TEXT json array (cut at 32 KiB: then its last element is
 *          {"truncated_bytes": N, "truncated_words": M}), cwd TEXT, op TEXT, path TEXT, target TEXT,
 *          address TEXT, host TEXT, port INT, sql TEXT, sql_class TEXT,
 *          database TEXT, rule TEXT, decision TEXT, enforced INT,
 *          reason TEXT, errno INT (NULL: unknown, the process died inside
 *          the call), snapshot TEXT, latency_ns INT, unguarded TEXT (exec:
 *          why the program runs without the library: static, setuid,
 *          setgid, capabilities), prev_hash TEXT, hash TEXT)
 *   snapshots(id TEXT PK, session TEXT, event_uid TEXT, kind TEXT
 *          ('file'|'symlink'|'dir'|'sqlite'|'fifo'|'device'|'socket'), path TEXT, mode INT, uid INT,
 *          gid INT, atime_ns INT, mtime_ns INT, size INT, sha256 TEXT,
 *          link_target TEXT, store TEXT (path relative to state dir, NULL
 *          for 'dir'), created_ns INT, restored_ns INT, parent_atime_ns INT,
 *          parent_mtime_ns INT (the times of the directory holding `path`
 *          before the session first deleted anything in it: restore puts
 *          them back on that directory), rdev INT (kind 'device': st_rdev;
 *          its type, block or character, is in mode), btime_ns INT (the
 *          inode's birth time, NULL unknown: one born during the session is
 *          the session's own)); kind 'absent': a restore made `path` where
 *          nothing was (mode S_IFDIR: a directory), and restoring that row
 *          takes away what is there
 *   ends(session TEXT, path TEXT, kind TEXT ('absent'|'file'|'symlink'|'dir'|
 *        'other'), mode INT, size INT, mtime_ns INT, ctime_ns INT, ino INT,
 *        sha256 TEXT, link_target TEXT; PK (session, path)): what a session
 *        left at each path it snapshotted or renamed onto, recorded by `run`
 *        when the agent is gone (and by a restore for its own session): a
 *        session restore replaces that, and calls anything else a conflict
 *   gaps(id INTEGER PK, uid TEXT UNIQUE, session TEXT, time_ns INT, pid INT,
 *        what TEXT)
 *   marks(id INTEGER PK, session TEXT, kind TEXT ('start'|'end'|'halt'),
 *        time_ns INT, after_event INT (the newest events.id when it was
 *        written: where it sits in `export`'s stream), events INT, head TEXT
 *        (the session's count and head then), exit_status INT (end))
 *
 * Hash chain, per session: genesis = sha256 of the session's canonical
 * fields; each event's hash = sha256(prev_hash "\n" canonical event fields);
 * sessions.head is the hash of the last event (genesis if none).
 */
#ifndef AGENTGUARD_AUDIT_H
#define AGENTGUARD_AUDIT_H

#include <sqlite3.h>
#include <stdint.h>

#include "agentguard.h"

/* Open (and create/upgrade) state_dir/audit.db. Returns NULL and writes a
 * message into err on failure (corrupt file, unwritable dir, ...). */
sqlite3 *ag_audit_open(const char *state_dir, int readonly, char *err,
		       size_t errlen);
void ag_audit_close(sqlite3 *db);

struct ag_session_info {
	const char *id;
	const char *argv_json;   /* JSON array text */
	const char *mode;        /* "autonomous" | "supervised" */
	int enforce;
	const char *rules;       /* path, or "builtin:default.yaml" */
	const char *rules_hash;
	const char *workspace;
	const char *state_dir;
	int64_t pid;
	int64_t start_ns;
	const char *kernel;      /* the kernel layer: "on", or "off: why" (NULL: unknown) */
	const char *floor;       /* its Landlock floor: "on: ...", or "off: why" */
	const char *home;        /* the agent's HOME: restore may write there */
};

/* Insert the session row (with its genesis hash) if it is not there. */
int ag_audit_session_begin(sqlite3 *db, const struct ag_session_info *s,
			   char *err, size_t errlen);
/* Record the end of a session run by `agentguard run` (or of a container's,
 * whose exit status is AG_EXIT_UNKNOWN: NULL in the log). */
#define AG_EXIT_UNKNOWN (-1000)
int ag_audit_session_end(sqlite3 *db, const char *id, int64_t end_ns,
			 int exit_status, char *err, size_t errlen);

/* Move every finished spool under state_dir/spool into audit.db (and the
 * snapshot metadata they carry). Spools of live processes are left alone
 * unless `all` is set (then their rows so far are copied; re-ingesting is
 * harmless, rows are keyed by uid). Returns the number of events
 * ingested, or -1 with a message in err. */
long ag_audit_ingest(sqlite3 *db, const char *state_dir, int all,
		     char *err, size_t errlen);
/* `all` for a copy: every spool's rows, live or not, and nothing in the
 * state dir is changed (no spool deleted or moved aside). */
#define AG_INGEST_COPY 2

/*
 * Tallies: what the summaries count, kept as the events go in, so that
 * `sessions`, the run's summary and `report` cost the same at a million
 * events as at ten. One row per session and kind of event:
 *   tallies(session, op, decision, enforced, layer, snap, failed, lost, n)
 * op and decision as in events ('' when absent), enforced 0/1 (absent
 * counts as 1), layer 'library' or 'kernel', snap: a snapshot was kept,
 * failed: the call failed by itself (errno > 0), lost: AG_AUDIT_LOST.
 * They are not chained (the events are): verify recounts them from the
 * events and says when they differ. A log written before them gets them
 * counted once, when it is first opened for writing
 * (ag_audit_has_tallies says whether they are there).
 */
int ag_audit_has_tallies(sqlite3 *db);

/* An allowed change that destroyed something with nothing kept to undo
 * it, over events' columns: server SQL that changes or drops, and what a
 * `log` rule let delete, rename, truncate or overwrite. */
#define AG_AUDIT_LOST \
	"(decision IN ('allow', 'log') AND snapshot IS NULL AND coalesce(errno, 0) = 0 AND" \
	" ((op = 'sql' AND sql_class IN ('update', 'delete', 'update_all', 'delete_all'," \
	"   'truncate', 'drop_table', 'drop_database', 'alter_drop', 'ddl') AND" \
	"   substr(coalesce(database, ''), 1, 1) <> '/' AND coalesce(database, '') <> ':memory:')" \
	"  OR (decision = 'log' AND op IN ('delete', 'rename', 'truncate', 'write'))))"

/* Every event a summary lists one by one (not only counts) is among
 * these; the partial index events_notable holds exactly them, in
 * (session, id) order. SQLite uses it only for a query that repeats this
 * text as one of its AND-ed terms. */
#define AG_AUDIT_NOTABLE "(decision <> 'allow' OR op IN ('sql', 'exec'))"

/* A read-only view for a guarded process (which may write nothing of the
 * guard's): an in-memory copy of audit.db as of its last checkpoint (none
 * if there is none yet) with every spool's rows added, nothing on disk
 * changed. NULL with err. */
sqlite3 *ag_audit_open_copy(const char *state_dir, char *err, size_t errlen);

/*
 * What ingest does with what is not a good spool. The spool directory is
 * written by the guarded processes, so it may hold anything: nothing in it
 * is followed, opened in a way that can block, mapped, or trusted.
 *  - Not a spool of ours (a symlink, FIFO, socket, device, directory, a
 *    file of another uid or with a second name, no spool header, too big):
 *    left unread and moved into spool/damaged/.
 *  - A damaged spool (cut short, garbage between or after records, lying
 *    lengths, numbers seen twice, records never completed): every record
 *    that reads whole goes in, and the file is moved into spool/damaged/.
 *  - A spool whose header names no valid session: its rows go under the
 *    placeholder session AG_AUDIT_UNATTRIBUTED (never under "", which no
 *    session row could vouch for), and the file is kept in spool/damaged/.
 * Each such file is one row in gaps (under the session its header or name
 * claims when the log knows it, else the placeholder) saying what it was,
 * what could not be read, and where it went, and one warning line.
 */
#define AG_AUDIT_UNATTRIBUTED "(unattributed)"

/* Where warnings go (one line each, no newline); NULL: stderr. */
void ag_audit_set_warn(void (*fn)(const char *msg));
/* Asked between spools, every 1024 records and while audit.db is busy:
 * nonzero stops the ingest ("interrupted"; what was not committed stays in
 * the spools for the next one). NULL: never. */
void ag_audit_set_interrupt(int (*fn)(void));

/* Walk every session's chain (or one). On the first bad row, writes a
 * description ("event 42 was changed", "event 17 is missing: event 18
 * does not link to 16", ...) into msg and returns 1; 0 if intact; -1 on
 * error. */
/* Append session's head to STATE/heads (at its end): 0 or -1. */
int ag_audit_write_head(sqlite3 *db, const char *state_dir, const char *session,
			char *err, size_t errlen);
/* Check the log against the heads in file (STATE/heads, or heads exported
 * from it): 0 all match (*checked of them), 1 one does not (msg says
 * which), -1 the file cannot be read. */
int ag_audit_check_heads(sqlite3 *db, const char *file, char *msg, size_t msglen,
			 long *checked);

/* Where the chain's key is: $AGENTGUARD_KEY_FILE, else STATE/key, but for
 * root's default state dir AG_ROOT_KEY_FILE. */
int ag_audit_key_path(const char *state_dir, char *out, size_t len);

int ag_audit_verify(sqlite3 *db, const char *session, char *msg,
		    size_t msglen);

/* The newest session id into out (an agent's before a restore's); 0 ok, -1 none. */
int ag_audit_latest_session(sqlite3 *db, char *out, size_t outlen);

#endif
