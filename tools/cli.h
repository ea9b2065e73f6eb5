/*
 * What every `agentguard` command shares: option parsing, the state dir,
 * opening the audit log, messages, and the small formatting helpers that
 * keep terminal, JSON and HTML output safe from hostile file names.
 *
 * One file per command (cmd_*.c) holds only that command's logic.
 */
#ifndef AGENTGUARD_CLI_H
#define AGENTGUARD_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "agentguard.h"

/* Exit statuses of every command. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

struct cli_command {
	const char *name;
	const char *summary;   /* one line for `agentguard --help` */
	const char *help;      /* the command's --help text */
	int (*main)(int argc, char **argv);
	int in_order;          /* options end at the first operand (what follows
	                          belongs to another program: run, explain exec) */
};

extern const struct cli_command cli_cmd_run, cli_cmd_report, cli_cmd_restore,
	cli_cmd_verify, cli_cmd_check, cli_cmd_explain, cli_cmd_sessions,
	cli_cmd_gc, cli_cmd_show, cli_cmd_diff, cli_cmd_export;

/* Set by main before a command runs: message prefixes and --help use it. */
extern const struct cli_command *cli_current;

/* "agentguard CMD: ..." on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: the message, a pointer to --help; returns CLI_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- options ------------------------------------------------------------- */

struct cli_opts {
	const char *state_dir;   /* --state-dir, NULL if not given */
};

/* cli_getopt's answer when the command must stop now (--help or a usage
 * error); the exit status is in *status. */
#define CLI_OPT_STOP (-2)

/* A time for a filter, as ns since the epoch: a duration ago (30s, 2h, 7d),
 * now, today, yesterday (midnight UTC), or YYYY-MM-DD[THH:MM[:SS[.frac]]]
 * with an optional Z or +HH:MM (UTC without one). 0, or -1 if it is none. */
int cli_parse_time(const char *s, int64_t *out);
/* Color for a decision's word on f: only on a terminal, never with NO_COLOR
 * set or TERM=dumb. cli_paint gives the start ("" for none), cli_paint_end
 * the matching reset. */
int cli_color(FILE *f);
const char *cli_paint(FILE *f, const char *decision);
const char *cli_paint_end(FILE *f, const char *decision);
/* "agentguard GITHASH (built-in rules sha256 ...)": --version of every command. */
void cli_version(FILE *f);
/*
 * getopt_long over the command's own long options plus --help/-h and
 * --state-dir. Options may follow operands, except for in_order commands,
 * which stop at the first operand (so `run agent -x` and `explain exec rm
 * -rf x` keep the program's options); `--` ends options everywhere. Returns the
 * option's `val`, -1 after the last option (optind is the first operand),
 * or CLI_OPT_STOP. Reset optind to 0 before the first call.
 */
int cli_getopt(int argc, char **argv, const struct option *own,
	       struct cli_opts *co, int *status);

/* Parse a decimal integer option value in [min, max]; -1 with a usage
 * message when malformed. */
int cli_parse_long(const char *opt, const char *s, long min, long max, long *out);

/* The state dir: --state-dir, else $AGENTGUARD_STATE_DIR, else the
 * default; made absolute. 0, or -1 after printing why. */
int cli_state_dir(const struct cli_opts *co, char *out, size_t outlen);

/* 1 when this process runs under the guard (the library is mapped into
 * it): the guard then refuses our writes to its own files, and trying
 * would spend the session's denial budget. */
int cli_guarded(void);

/* ---- the audit log ------------------------------------------------------- */

struct cli_db {
	sqlite3 *db;
	int readonly;                 /* opened read-only (fallback) */
	int copy;                     /* a copy in memory (inside a guarded session) */
	char state_dir[AG_PATH_MAX];
	char path[AG_PATH_MAX];       /* state_dir/audit.db */
};

enum { CLI_DB_READ, CLI_DB_WRITE };

/*
 * Open the audit log and move finished spools into it. With CLI_DB_READ,
 * a log that cannot be written is opened read-only (said on stderr); with
 * CLI_DB_WRITE that is an error. A missing log is "no audit log at PATH".
 * Registers SQL function path_glob(pattern, path) (ag_glob_match).
 * 0, or -1 after printing why.
 */
int cli_db_open(struct cli_db *d, const struct cli_opts *co, int mode);
void cli_db_close(struct cli_db *d);

/* Prepare, printing the SQLite error (and what it likely means) on failure. */
sqlite3_stmt *cli_prepare(struct cli_db *d, const char *sql);
/* Report a failed step/exec; always returns -1. */
int cli_db_error(struct cli_db *d, const char *what);

/* A session named on the command line: an exact id or a unique prefix.
 * 0 with the full id in out, or -1 after printing why. */
int cli_find_session(struct cli_db *d, const char *arg, char *out, size_t outlen);
/* The newest session; 0, or -1 after printing "no sessions". */
int cli_latest_session(struct cli_db *d, char *out, size_t outlen);

/* `run --alert`: an `export --follow` of the session's denials, asks and
 * halt to sink, from the log's present end; it exits after the session's
 * end mark. The child's pid, or -1. */
pid_t cli_alert_start(struct cli_db *d, const char *sink, const char *format,
		      const char *session);
/* 0 when sink and format would do, else -1. */
int cli_alert_check(const char *sink, const char *format);
/* Wait (15 s at most) for it to send what is left. */
void cli_alert_stop(pid_t pid);

/* Column text, or NULL for SQL NULL. */
const char *cli_col(sqlite3_stmt *st, int i);

/* 1 when p is an absolute path of plain components (no "", ".", ".."):
 * what a snapshot's original path must be before anything acts on it. */
int cli_plain_path(const char *p);
/* The file behind a snapshot row's `store` (relative to the state dir). A
 * row pointing outside state_dir/snapshots/ is refused: 0 or -1. */
int cli_store_path(const struct cli_db *d, const char *store, char *out, size_t outlen);

/* The path a `--state-dir` argument would need to be passed again, or NULL
 * when the state dir is the one the commands find by themselves. */
const char *cli_state_dir_arg(const struct cli_opts *co, const struct cli_db *d);

/* The events columns, in the order of audit.h (and of `report --json`);
 * queries select CLI_EVENT_COLS and read them by these indices. */
#define CLI_EVENT_COLS "id, time_ns, session, pid, ppid, proc_start, exe, argv, " \
	"cwd, op, path, target, address, host, port, sql, sql_class, database, " \
	"rule, decision, enforced, reason, errno, snapshot, latency_ns, " \
	"unguarded, coalesce(layer, 'library') AS layer, prev_hash, hash"
enum {
	EV_ID, EV_TIME, EV_SESSION, EV_PID, EV_PPID, EV_PROC_START, EV_EXE,
	EV_ARGV, EV_CWD, EV_OP, EV_PATH, EV_TARGET, EV_ADDRESS, EV_HOST, EV_PORT,
	EV_SQL, EV_SQL_CLASS, EV_DATABASE, EV_RULE, EV_DECISION, EV_ENFORCED,
	EV_REASON, EV_ERRNO, EV_SNAPSHOT, EV_LATENCY, EV_UNGUARDED, EV_LAYER, EV_PREV_HASH,
	EV_HASH, EV_NCOLS
};

/* Where a session ran: machine, user, container (sessions' columns). */
struct cli_ident {
	char *session, *hostname, *user, *container;
	int64_t uid;
	int has_uid;
};
struct cli_idents;
/* Every session's, read once (no query per row); NULL on error. */
struct cli_idents *cli_idents_load(struct cli_db *d);
const struct cli_ident *cli_ident_of(const struct cli_idents *l, const char *session);
void cli_idents_free(struct cli_idents *l);
/* hostname, user, user_id, container into o (those known). */
void cli_ident_json(json_t *o, const struct cli_ident *who);
/* An event row (CLI_EVENT_COLS) as `report --json` and `export` write it:
 * the columns by name (NULL left out), "time" (RFC 3339 UTC), "outcome",
 * "error" (errno's name) and the session's identity. */
json_t *cli_event_json(sqlite3_stmt *ev, const struct cli_ident *who);
/* "denied" (enforced), "succeeded", "failed" (errno set) or "unknown" (the
 * process died inside the call). */
const char *cli_outcome(sqlite3_stmt *ev);
/* "ENOENT" */
const char *cli_errno_name(int e);

/* "would deny" for a deny that monitor mode let through, else the decision. */
const char *cli_decision_label(sqlite3_stmt *ev);
/* What an event acted on, one line: the path (-> target), the command line,
 * host[address]:port, or the SQL [class] on database. */
void cli_put_subject(FILE *f, sqlite3_stmt *ev, size_t max);
/* The session's coverage, a line or two each starting with prefix: the
 * operations each layer saw, whether the kernel layer was on, and the
 * programs that ran without the library. */
void cli_put_coverage(FILE *f, struct cli_db *d, const char *session, const char *prefix);

/* ---- output -------------------------------------------------------------- */

/* Text as ag_escape_display shows it (controls, bidi and invisible
 * characters, invalid UTF-8 as visible escapes, a backslash as \\), so file
 * names cannot rewrite the terminal. NULL prints as "-". */
void cli_put(FILE *f, const char *s);
/* An error that starts "file:line:col: " (a rule file's): the file into
 * out, 0; else -1. */
int cli_located(const char *err, char *out, size_t outlen);
/* As cli_put, cut to at most max bytes with "..." (one line). */
void cli_put_short(FILE *f, const char *s, size_t max);
/* One shell word, quoted when needed, so printed commands can be pasted:
 * a word that needs escapes is written $'...' (bash reads them back). */
void cli_put_word(FILE *f, const char *s);
/* A JSON argv array as shell words (raw text if it is not an array). */
void cli_put_argv(FILE *f, const char *argv_json, size_t max);
/* Text escaped as cli_put does, then HTML-escaped: the page shows a bidi
 * override or a control as the same visible escape the terminal does. */
void cli_put_html(FILE *f, const char *s);
/* HTML-escaped only, for text cli_put* already made (cli_put_subject). */
void cli_put_html_shown(FILE *f, const char *s);

/* A JSON string; invalid UTF-8 bytes become U+FFFD (jansson refuses them). */
json_t *cli_json_str(const char *s);
/* One compact JSON value and a newline; 0 or -1. */
int cli_json_line(FILE *f, json_t *v);

/* Local time with its zone, "2024-05-01 12:00:01.234 +02:00" ("UTC" when
 * local time is UTC); with_date 0: "12:00:01.234". */
void cli_fmt_time(int64_t ns, int with_date, char *out, size_t outlen);
/* RFC 3339 in UTC with nanoseconds: "2024-05-01T10:00:01.234567891Z". */
void cli_fmt_rfc3339(int64_t ns, char *out, size_t outlen);
/* "3m12s", "850ms", "2d4h". */
void cli_fmt_duration(int64_t ns, char *out, size_t outlen);
/* "1.5 MiB" */
void cli_fmt_bytes(uint64_t n, char *out, size_t outlen);

/* Basename of a path (the whole string when it has no slash). */
const char *cli_base(const char *path);

/* A path glob from the command line made absolute: "~/" expands to $HOME,
 * a relative glob is taken from the cwd, a glob starting with "**" is
 * left alone. 0 or -1 (too long). */
int cli_abs_glob(const char *glob, char *out, size_t outlen);

#endif
