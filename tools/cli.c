/* The plumbing every command shares; see cli.h. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "session.h"

const struct cli_command *cli_current;

/* Messages name files, rows and arguments: shown escaped (cli_put), so
 * that one message stays one line. */
static void vmsg(const char *kind, const char *fmt, va_list ap)
{
	char *msg = NULL;

	fprintf(stderr, "agentguard%s%s: %s", cli_current ? " " : "",
		cli_current ? cli_current->name : "", kind);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	cli_put(stderr, msg ? msg : fmt);
	free(msg);
	fputc('\n', stderr);
}

void cli_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("warning: ", fmt, ap);
	va_end(ap);
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg("", fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'agentguard %s%s--help'.\n",
		cli_current ? cli_current->name : "", cli_current ? " " : "");
	return CLI_USAGE;
}

/* ---- options ------------------------------------------------------------- */

enum { OPT_STATE_DIR = 0x7000, OPT_VERSION };

#ifndef AG_GIT_HASH
#define AG_GIT_HASH "unknown"
#endif

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int cli_parse_time(const char *s, int64_t *out)
{
	int64_t dur, now = ag_now_ns(), day = 86400ll * 1000000000;

	if (ag_parse_duration(s, &dur) == 0) {
		*out = now - dur;
		return *out > 0 ? 0 : -1;
	}
	if (strcmp(s, "now") == 0) {
		*out = now;
		return 0;
	}
	if (strcmp(s, "today") == 0 || strcmp(s, "yesterday") == 0) {
		*out = now - now % day - (s[0] == 'y' ? day : 0);
		return 0;
	}
	/* YYYY-MM-DD[(T| )HH:MM[:SS[.frac]]][Z|(+|-)HH:MM], UTC unless a zone says */
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	const char *e = s + n;
	if (*e == 'T' || *e == ' ') {
		if (sscanf(e + 1, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5)
			return -1;
		e += 1 + n;
		if (*e == ':') {
			if (sscanf(e + 1, "%2d%n", &sec, &n) != 1 || n != 2)
				return -1;
			e += 1 + n;
		}
	}
	int64_t frac = 0, scale = 1000000000;
	if (*e == '.')
		for (e++; *e >= '0' && *e <= '9'; e++)
			if (scale > 1) {
				scale /= 10;
				frac += (*e - '0') * scale;
			}
	int64_t off = 0;
	if (*e == 'Z') {
		e++;
	} else if (*e == '+' || *e == '-') {
		int oh, om;
		if (sscanf(e + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
			return -1;
		off = (e[0] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
		e += 1 + n;
	}
	if (*e || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - off;
	if (t < 0)
		return -1;
	*out = t * 1000000000 + frac;
	return 0;
}

void cli_version(FILE *f)
{
	fprintf(f, "agentguard %s (built-in rules sha256 %.16s)\n", AG_GIT_HASH,
		ag_default_rules_hash);
}

int cli_getopt(int argc, char **argv, const struct option *own,
	       struct cli_opts *co, int *status)
{
	static struct option all[66];
	char shorts[40] = "";
	size_t n = 0, ns = 0;

	/* A command's option whose value is a letter has that short form. */
	for (const struct option *o = own; o && o->name && n < 61; o++) {
		all[n++] = *o;
		if (o->val > 0 && o->val < 128 && isalpha(o->val) && ns + 2 < sizeof shorts) {
			shorts[ns++] = (char)o->val;
			if (o->has_arg == required_argument)
				shorts[ns++] = ':';
		}
	}
	char optstring[48];
	snprintf(optstring, sizeof optstring, "%s:h%s", cli_current->in_order ? "+" : "", shorts);
	all[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	all[n++] = (struct option){ "state-dir", required_argument, NULL, OPT_STATE_DIR };
	all[n++] = (struct option){ "version", no_argument, NULL, OPT_VERSION };
	all[n] = (struct option){ NULL, 0, NULL, 0 };

	opterr = 0;
	for (;;) {
		/* "+": stop at the first operand; ":": tell a missing value apart. */
		int c = getopt_long(argc, argv, optstring, all, NULL);
		switch (c) {
		case 'h':
			fputs(cli_current->help, stdout);
			*status = CLI_OK;
			return CLI_OPT_STOP;
		case OPT_VERSION:
			cli_version(stdout);
			*status = CLI_OK;
			return CLI_OPT_STOP;
		case OPT_STATE_DIR:
			if (!*optarg) {
				*status = cli_usage("--state-dir needs a directory");
				return CLI_OPT_STOP;
			}
			co->state_dir = optarg;
			continue;
		case '?':
			if (optopt)
				*status = cli_usage("unknown option '-%c'", optopt);
			else
				*status = cli_usage("unknown option '%s'", argv[optind - 1]);
			return CLI_OPT_STOP;
		case ':':
			*status = cli_usage("option '%s' needs a value", argv[optind - 1]);
			return CLI_OPT_STOP;
		default:
			return c;
		}
	}
}

int cli_parse_long(const char *opt, const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max) {
		cli_usage("%s wants a number from %ld to %ld, not '%s'", opt, min, max, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* The state dir by its real name: SQLite refuses a log whose path passes
 * through a symlink (SQLITE_OPEN_NOFOLLOW), and a home whose ~/.local is
 * one is common. What does not exist yet keeps its name under the nearest
 * existing ancestor's real one. */
static void real_state_dir(char *out, size_t outlen)
{
	char real[AG_PATH_MAX], tail[AG_PATH_MAX];
	size_t n = strlen(out);

	while (n > 1) {
		char c = out[n];
		out[n] = 0;
		int ok = realpath(out, real) != NULL;
		out[n] = c;
		if (ok) {
			/* Too long resolved: kept as given (the log then says why). */
			if (ag_fmt(tail, sizeof tail, "%s%s", strcmp(real, "/") ? real : "",
				   out + n) == 0 && strlen(tail) < outlen)
				strcpy(out, tail);
			return;
		}
		while (n > 1 && out[n - 1] != '/')
			n--;
		if (n > 1)
			n--;   /* the slash before the component */
	}
}

static int state_dir_as_given(const struct cli_opts *co, char *out, size_t outlen)
{
	const char *v = co->state_dir;
	char cwd[AG_PATH_MAX];

	if (!v || !*v)
		v = getenv("AGENTGUARD_STATE_DIR");
	if (v && *v) {
		if (!getcwd(cwd, sizeof cwd)) {
			if (v[0] != '/') {
				cli_err("cannot find the current directory (%s) to resolve the state dir %s: give an absolute path",
					strerror(errno), v);
				return -1;
			}
			strcpy(cwd, "/");
		}
		if (ag_path_lexical(cwd, v, out, outlen) < 0) {
			cli_err("state dir path is too long: %s", v);
			return -1;
		}
		return 0;
	}
	if (ag_default_state_dir(out, outlen) < 0) {
		cli_err("cannot find the state dir: set HOME, AGENTGUARD_STATE_DIR or pass --state-dir");
		return -1;
	}
	return 0;
}

int cli_state_dir(const struct cli_opts *co, char *out, size_t outlen)
{
	if (state_dir_as_given(co, out, outlen) < 0)
		return -1;
	real_state_dir(out, outlen);
	return 0;
}

int cli_guarded(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[AG_PATH_MAX + 128];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, "/libagentguard") != NULL;
	fclose(f);
	return found;
}

/* ---- the audit log ------------------------------------------------------- */

/* path_glob(pattern, path): 1 when path matches, NULL stays NULL. */
static void sql_path_glob(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const unsigned char *pat = sqlite3_value_text(argv[0]);
	const unsigned char *path = sqlite3_value_text(argv[1]);

	(void)argc;
	if (!pat || !path) {
		sqlite3_result_null(ctx);
		return;
	}
	sqlite3_result_int(ctx, ag_glob_match((const char *)pat, (const char *)path));
}

static int is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * Container sessions whose container is gone (ag_container_over): their
 * end goes into the log; in the log itself (not a copy) their file goes
 * too, as nothing can join them any more.
 */
static void container_ends(struct cli_db *d, int copy)
{
	char dir[AG_PATH_MAX], sid[AG_SESSION_ID_MAX], why[200], err[512];
	int64_t start;

	if (ag_fmt(dir, sizeof dir, "%s/containers", d->state_dir) < 0)
		return;
	DIR *dd = opendir(dir);
	if (!dd)
		return;
	struct dirent *e;
	while ((e = readdir(dd))) {
		if (e->d_name[0] == '.' || ag_container_over(dir, e->d_name, sid, sizeof sid, &start,
							       why, sizeof why) != 1)
			continue;
		sqlite3_stmt *st = NULL;
		int open_end = 0;
		if (sqlite3_prepare_v2(d->db, "SELECT end_ns IS NULL FROM sessions WHERE id=?", -1,
				       &st, NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
			open_end = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
		}
		sqlite3_finalize(st);
		if (open_end && ag_audit_session_end(d->db, sid, ag_now_ns(), AG_EXIT_UNKNOWN, err,
						     sizeof err) < 0) {
			cli_warn("%s", err);
			continue;
		}
		if (!copy) {
			if (open_end)
				cli_warn("container session %s has ended: %s", sid, why);
			unlinkat(dirfd(dd), e->d_name, 0);
		}
	}
	closedir(dd);
}

int cli_db_open(struct cli_db *d, const struct cli_opts *co, int mode)
{
	char err[1024], err2[1024], spool[AG_PATH_MAX + 8];
	struct stat st;

	memset(d, 0, sizeof *d);
	if (cli_state_dir(co, d->state_dir, sizeof d->state_dir) < 0)
		return -1;
	if (ag_fmt(d->path, sizeof d->path, "%s/audit.db", d->state_dir) < 0 ||
	    ag_fmt(spool, sizeof spool, "%s/spool", d->state_dir) < 0) {
		cli_err("state dir path is too long: %s", d->state_dir);
		return -1;
	}
	int have_db = stat(d->path, &st) == 0;
	if (!have_db && errno != ENOENT) {
		cli_err("cannot read the audit log %s: %s", d->path, strerror(errno));
		return -1;
	}
	if (!have_db && !is_dir(spool)) {
		cli_err("no audit log at %s: nothing has run under agentguard with this state dir yet "
			"(start with 'agentguard run -- AGENT ...', or point --state-dir or "
			"AGENTGUARD_STATE_DIR at the right directory)", d->path);
		return -1;
	}
	if (have_db && !S_ISREG(st.st_mode)) {
		cli_err("the audit log %s is not a regular file: move it aside", d->path);
		return -1;
	}

	if (cli_guarded()) {
		/* The guard protects its own files from every process it is in,
		 * this one too: writing would be refused (and counted against the
		 * session's denials). Reading needs no write: a copy in memory. */
		if (mode == CLI_DB_WRITE) {
			cli_err("this runs inside a guarded session, and the guard protects its "
				"audit log and snapshots from every process in it: run this "
				"command outside the session (report, sessions, verify, show and "
				"export work here, read-only)");
			return -1;
		}
		d->db = ag_audit_open_copy(d->state_dir, err, sizeof err);
		if (!d->db) {
			cli_err("%s", err);
			return -1;
		}
		d->readonly = d->copy = 1;
		cli_warn("this runs inside a guarded session: read-only, from a copy of the audit "
			 "log as of its last checkpoint plus the events still in %s (nothing is "
			 "written; run it outside the session to move them into the log)", spool);
		container_ends(d, 1);
	} else if ((d->db = ag_audit_open(d->state_dir, 0, err, sizeof err))) {
		if (ag_audit_ingest(d->db, d->state_dir, 0, err, sizeof err) < 0)
			cli_warn("could not move new events into the audit log: %s; "
				 "showing what it already holds", err);
		container_ends(d, 0);
	} else if (mode == CLI_DB_WRITE || !have_db) {
		cli_err("%s", err);
		return -1;
	} else {
		/* A log we may read but not write (another user's, a read-only
		 * mount): show it; the spools wait for someone who can. */
		d->db = ag_audit_open(d->state_dir, 1, err2, sizeof err2);
		if (!d->db) {
			/* audit.c's message names the file and what to do. */
			cli_err("%s", err2);
			return -1;
		}
		d->readonly = 1;
		cli_warn("cannot write the audit log (%s); reading it read-only, so "
			 "events not yet moved in from %s are not shown", err, spool);
	}
	if (sqlite3_create_function(d->db, "path_glob", 2,
				    SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
				    sql_path_glob, NULL, NULL) != SQLITE_OK) {
		cli_err("cannot set up queries on %s: %s", d->path, sqlite3_errmsg(d->db));
		cli_db_close(d);
		return -1;
	}
	return 0;
}

void cli_db_close(struct cli_db *d)
{
	if (d->db)
		ag_audit_close(d->db);
	d->db = NULL;
}

int cli_db_error(struct cli_db *d, const char *what)
{
	const char *m = sqlite3_errmsg(d->db);

	if (strstr(m, "no such table") || strstr(m, "no such column"))
		cli_err("%s: %s: %s is not an agentguard audit log of this version "
			"(move it aside to start a new one)", what, m, d->path);
	else
		cli_err("%s: %s (audit log %s)", what, m, d->path);
	return -1;
}

sqlite3_stmt *cli_prepare(struct cli_db *d, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) {
		cli_db_error(d, "cannot query the audit log");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

const char *cli_col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

int cli_find_session(struct cli_db *d, const char *arg, char *out, size_t outlen)
{
	/* Exact first, then a unique prefix: ids are long, people paste parts. */
	static const char *const q[2] = {
		"SELECT id FROM sessions WHERE id = ?1 "
		"UNION SELECT session FROM events WHERE session = ?1 LIMIT 1",
		"SELECT id FROM sessions WHERE substr(id, 1, length(?1)) = ?1 "
		"UNION SELECT DISTINCT session FROM events "
		"WHERE substr(session, 1, length(?1)) = ?1 LIMIT 3",
	};
	char found[3][128];
	int n = 0;

	for (int k = 0; k < 2 && n == 0; k++) {
		sqlite3_stmt *st = cli_prepare(d, q[k]);
		if (!st)
			return -1;
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 3)
			snprintf(found[n++], sizeof found[0], "%s", cli_col(st, 0));
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			cli_db_error(d, "cannot look up the session");
			sqlite3_finalize(st);
			return -1;
		}
		sqlite3_finalize(st);
	}
	if (n == 0) {
		cli_err("no session '%s' in the audit log %s (list them with 'agentguard sessions')",
			arg, d->path);
		return -1;
	}
	if (n > 1) {
		cli_err("session '%s' is ambiguous: it could be %s, %s%s; give more of the id",
			arg, found[0], found[1], n > 2 ? ", ..." : "");
		return -1;
	}
	if (ag_fmt(out, outlen, "%s", found[0]) < 0) {
		cli_err("session id too long: %s", found[0]);
		return -1;
	}
	return 0;
}

int cli_latest_session(struct cli_db *d, char *out, size_t outlen)
{
	if (ag_audit_latest_session(d->db, out, outlen) < 0) {
		cli_err("the audit log %s holds no sessions yet", d->path);
		return -1;
	}
	return 0;
}

int cli_plain_path(const char *p)
{
	if (!p || p[0] != '/' || !p[1])
		return 0;
	for (const char *s = p + 1;;) {
		const char *e = strchrnul(s, '/');
		size_t n = (size_t)(e - s);
		if (n == 0 || n > 255 || (n == 1 && s[0] == '.') ||
		    (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		if (!*e)
			return 1;
		s = e + 1;
	}
}

int cli_store_path(const struct cli_db *d, const char *store, char *out, size_t outlen)
{
	char tmp[AG_PATH_MAX + 2];

	/* A tampered row must not make restore read, or gc delete, any file. */
	if (!store || strncmp(store, "snapshots/", 10) != 0 ||
	    ag_fmt(tmp, sizeof tmp, "/%s", store) < 0 || !cli_plain_path(tmp))
		return -1;
	return ag_fmt(out, outlen, "%s/%s", d->state_dir, store);
}

const char *cli_state_dir_arg(const struct cli_opts *co, const struct cli_db *d)
{
	return co->state_dir ? d->state_dir : NULL;
}

/* ---- output -------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s, 0 if the bytes there are not
 * one (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n;
	unsigned min, cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, min = 0x80, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, min = 0x800, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* ag_escape_display into a buffer of our own: at most max bytes of
 * escapes, then "...". NULL when out of memory. */
static char *escaped(const char *s, size_t max)
{
	size_t n = strlen(s);
	/* No character grows more than fourfold. */
	size_t cap = n < ((size_t)-1 - 8) / 4 ? 4 * n + 1 : (size_t)-1;
	char *buf;

	if (max < (size_t)-1 - 4 && cap > max + 4)
		cap = max + 4;
	buf = malloc(cap);
	if (buf)
		ag_escape_display(s, n, buf, cap);
	return buf;
}

static void put_escaped(FILE *f, const char *str, size_t max)
{
	char *buf;

	if (!str) {
		fputc('-', f);
		return;
	}
	buf = escaped(str, max);
	fputs(buf ? buf : "?", f);
	free(buf);
}

void cli_put(FILE *f, const char *s)
{
	put_escaped(f, s, (size_t)-1 / 2);
}

void cli_put_short(FILE *f, const char *s, size_t max)
{
	put_escaped(f, s, max);
}

void cli_put_word(FILE *f, const char *s)
{
	static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789_@%+=:,./-";
	char *e;

	if (!s)
		s = "";
	if (*s && strspn(s, safe) == strlen(s)) {
		fputs(s, f);
		return;
	}
	e = escaped(s, (size_t)-1 / 2);
	if (!e) {
		fputs("'?'", f);
		return;
	}
	if (strcmp(e, s) != 0) {
		/* Something had to be escaped: bash's $'...' reads our escapes
		 * back as the very bytes, so the word still pastes. */
		fputs("$'", f);
		for (const char *p = e; *p; p++) {
			if (*p == '\'')
				fputc('\\', f);
			fputc(*p, f);
		}
		fputc('\'', f);
	} else {
		fputc('\'', f);
		for (const char *p = s; *p; p++) {
			if (*p == '\'')
				fputs("'\\''", f);
			else
				fputc(*p, f);
		}
		fputc('\'', f);
	}
	free(e);
}

void cli_put_argv(FILE *f, const char *argv_json, size_t max)
{
	json_t *a = argv_json ? json_loads(argv_json, JSON_DECODE_ANY, NULL) : NULL;
	char *buf = NULL;
	size_t len = 0, i;
	json_t *v;
	FILE *m;

	if (!json_is_array(a) || !(m = open_memstream(&buf, &len))) {
		cli_put_short(f, argv_json, max);
		json_decref(a);
		return;
	}
	json_t *cut = NULL;
	json_array_foreach(a, i, v) {
		/* The spool's mark of an argv cut at 32 KiB: the only non-string. */
		if (json_is_object(v) && json_object_get(v, "truncated_bytes")) {
			cut = v;
			continue;
		}
		if (i)
			fputc(' ', m);
		cli_put_word(m, json_is_string(v) ? json_string_value(v) : "?");
	}
	fclose(m);
	/* Shown even when the line is cut short below. */
	char note[128] = "";
	if (cut)
		snprintf(note, sizeof note, " [argv truncated: %" JSON_INTEGER_FORMAT
			 " more bytes, %" JSON_INTEGER_FORMAT " more words not recorded]",
			 json_integer_value(json_object_get(cut, "truncated_bytes")),
			 json_integer_value(json_object_get(cut, "truncated_words")));
	json_decref(a);
	/* Already escaped, so cutting cannot expose a control character; back
	 * up to a character boundary. */
	if (len > max) {
		while (max > 0 && ((unsigned char)buf[max] & 0xc0) == 0x80)
			max--;
		fwrite(buf, 1, max, f);
		fputs("...", f);
	} else {
		fwrite(buf, 1, len, f);
	}
	fputs(note, f);
	free(buf);
}

void cli_put_html_shown(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	if (!s)
		return;
	while (*s) {
		size_t n = utf8_len(s);
		if (n == 0 || (n == 1 && (*s < 0x20 || *s == 0x7f))) {
			/* Not what cli_put makes: never raw into the page. */
			fprintf(f, "\\x%02x", *s);
			s++;
			continue;
		}
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fwrite(s, 1, n, f);
		}
		s += n;
	}
}

void cli_put_html(FILE *f, const char *str)
{
	char *e;

	if (!str)
		return;
	e = escaped(str, (size_t)-1 / 2);
	cli_put_html_shown(f, e ? e : "?");
	free(e);
}

json_t *cli_json_str(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len = strlen(str), o = 0;
	char *buf = malloc(len * 3 + 1);
	json_t *j;

	if (!buf)
		return NULL;
	while (*s) {
		size_t n = utf8_len(s);
		if (n == 0) {
			memcpy(buf + o, "\xef\xbf\xbd", 3);
			o += 3;
			s++;
		} else {
			memcpy(buf + o, s, n);
			o += n;
			s += n;
		}
	}
	j = json_stringn(buf, o);
	free(buf);
	return j;
}

int cli_json_line(FILE *f, json_t *v)
{
	if (json_dumpf(v, f, JSON_COMPACT | JSON_ENCODE_ANY) < 0)
		return -1;
	return fputc('\n', f) == EOF ? -1 : 0;
}

void cli_fmt_time(int64_t ns, int with_date, char *out, size_t outlen)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	char buf[64];

	if (ns <= 0 || !localtime_r(&t, &tm)) {
		snprintf(out, outlen, "-");
		return;
	}
	strftime(buf, sizeof buf, with_date ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &tm);
	if (!with_date) {
		snprintf(out, outlen, "%s.%03d", buf, (int)(ns % 1000000000 / 1000000));
		return;
	}
	/* A time read on another machine needs its zone. */
	char zone[40];
	int off = (int)(tm.tm_gmtoff % 86400);
	if (off == 0)
		snprintf(zone, sizeof zone, "UTC");
	else
		snprintf(zone, sizeof zone, "%c%02d:%02d", off < 0 ? '-' : '+',
			 abs(off) / 3600, abs(off) % 3600 / 60);
	snprintf(out, outlen, "%s.%03d %s", buf, (int)(ns % 1000000000 / 1000000), zone);
}

void cli_fmt_rfc3339(int64_t ns, char *out, size_t outlen)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	char buf[64];

	if (ns < 0 || !gmtime_r(&t, &tm)) {
		snprintf(out, outlen, "-");
		return;
	}
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%09dZ", buf, (int)(ns % 1000000000));
}

void cli_fmt_duration(int64_t ns, char *out, size_t outlen)
{
	int64_t s = ns / 1000000000;

	if (ns < 0)
		snprintf(out, outlen, "-");
	else if (ns < 1000000000)
		snprintf(out, outlen, "%dms", (int)(ns / 1000000));
	else if (s < 60)
		snprintf(out, outlen, "%d.%ds", (int)s, (int)(ns % 1000000000 / 100000000));
	else if (s < 3600)
		snprintf(out, outlen, "%dm%02ds", (int)(s / 60), (int)(s % 60));
	else if (s < 86400)
		snprintf(out, outlen, "%dh%02dm", (int)(s / 3600), (int)(s % 3600 / 60));
	else
		snprintf(out, outlen, "%dd%dh", (int)(s / 86400), (int)(s % 86400 / 3600));
}

void cli_fmt_bytes(uint64_t n, char *out, size_t outlen)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(out, outlen, "%llu bytes", (unsigned long long)n);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(out, outlen, "%.1f %s", v, unit[u]);
}

const char *cli_base(const char *path)
{
	const char *s;

	if (!path)
		return NULL;
	s = strrchr(path, '/');
	return s && s[1] ? s + 1 : path;
}

int cli_abs_glob(const char *glob, char *out, size_t outlen)
{
	char cwd[AG_PATH_MAX];
	const char *home = getenv("HOME");

	if (glob[0] == '/' || strncmp(glob, "**", 2) == 0)
		return ag_fmt(out, outlen, "%s", glob);
	if (glob[0] == '~' && (glob[1] == '/' || !glob[1]) && home && *home)
		return ag_fmt(out, outlen, "%s%s", home, glob + 1);
	if (!getcwd(cwd, sizeof cwd))
		return -1;
	if (strncmp(glob, "./", 2) == 0)
		glob += 2;
	return ag_fmt(out, outlen, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", glob);
}

int cli_color(FILE *f)
{
	const char *no = getenv("NO_COLOR"), *term = getenv("TERM");

	return !(no && *no) && !(term && strcmp(term, "dumb") == 0) && isatty(fileno(f));
}

const char *cli_paint(FILE *f, const char *decision)
{
	if (!decision || !cli_color(f))
		return "";
	if (strcmp(decision, "deny") == 0 || strcmp(decision, "denied") == 0)
		return "\033[1;31m";
	if (strcmp(decision, "would deny") == 0 || strcmp(decision, "ask") == 0)
		return "\033[1;35m";
	if (strcmp(decision, "snapshot") == 0)
		return "\033[33m";
	return "";
}

const char *cli_paint_end(FILE *f, const char *decision)
{
	return *cli_paint(f, decision) ? "\033[0m" : "";
}

const char *cli_decision_label(sqlite3_stmt *ev)
{
	const char *d = cli_col(ev, EV_DECISION);

	if (d && strcmp(d, "deny") == 0 &&
	    sqlite3_column_type(ev, EV_ENFORCED) != SQLITE_NULL &&
	    !sqlite3_column_int(ev, EV_ENFORCED))
		return "would deny";
	return d ? d : "?";
}

void cli_put_subject(FILE *f, sqlite3_stmt *ev, size_t max)
{
	const char *op = cli_col(ev, EV_OP);
	const char *path = cli_col(ev, EV_PATH);

	if (!op)
		op = "";
	if (strcmp(op, "exec") == 0 && cli_col(ev, EV_ARGV)) {
		cli_put_argv(f, cli_col(ev, EV_ARGV), max);
		if (path && strchr(path, '/') && strcmp(cli_base(path), path) != 0) {
			fputs("  [", f);
			cli_put_short(f, path, max);
			fputc(']', f);
		}
		if (cli_col(ev, EV_UNGUARDED)) {
			fputs("  (runs unguarded: ", f);
			cli_put(f, cli_col(ev, EV_UNGUARDED));
			fputc(')', f);
		}
	} else if (strcmp(op, "connect") == 0) {
		const char *host = cli_col(ev, EV_HOST), *addr = cli_col(ev, EV_ADDRESS);
		if (host) {
			cli_put_short(f, host, max);
			if (addr && strcmp(addr, host) != 0) {
				fputc('[', f);
				cli_put_short(f, addr, max);
				fputc(']', f);
			}
		} else if (addr) {
			int v6 = strchr(addr, ':') != NULL;
			if (v6 && sqlite3_column_type(ev, EV_PORT) != SQLITE_NULL)
				fputc('[', f);
			cli_put_short(f, addr, max);
			if (v6 && sqlite3_column_type(ev, EV_PORT) != SQLITE_NULL)
				fputc(']', f);
		} else {
			cli_put_short(f, path, max);
		}
		if (sqlite3_column_type(ev, EV_PORT) != SQLITE_NULL &&
		    sqlite3_column_int(ev, EV_PORT) >= 0)
			fprintf(f, ":%d", sqlite3_column_int(ev, EV_PORT));
	} else if (strcmp(op, "sql") == 0) {
		cli_put_short(f, cli_col(ev, EV_SQL), max);
		if (cli_col(ev, EV_SQL_CLASS)) {
			fputs(" [", f);
			cli_put(f, cli_col(ev, EV_SQL_CLASS));
			fputc(']', f);
		}
		if (cli_col(ev, EV_DATABASE)) {
			fputs(" on ", f);
			cli_put_short(f, cli_col(ev, EV_DATABASE), max);
		}
	} else {
		cli_put_short(f, path, max);
		if (cli_col(ev, EV_TARGET)) {
			fputs(" -> ", f);
			cli_put_short(f, cli_col(ev, EV_TARGET), max);
		}
	}
}

/* ---- coverage ------------------------------------------------------------ */

void cli_put_coverage(FILE *f, struct cli_db *d, const char *session, const char *prefix)
{
	sqlite3_stmt *st = NULL;
	char *kernel = NULL;
	long lib = 0, kern = 0, ung = 0;

	/* Logs older than the kernel layer have no such column: "unknown". */
	if (sqlite3_prepare_v2(d->db, "SELECT kernel FROM sessions WHERE id = ?1", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && cli_col(st, 0))
			kernel = strdup(cli_col(st, 0));
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(d->db, ag_audit_has_tallies(d->db)
			       ? "SELECT coalesce(sum(n) FILTER (WHERE layer <> 'kernel'), 0), "
				 "coalesce(sum(n) FILTER (WHERE layer = 'kernel'), 0) FROM tallies "
				 "WHERE session = ?1"
			       : "SELECT count(*) FILTER (WHERE coalesce(layer, 'library') "
				 "<> 'kernel'), count(*) FILTER (WHERE layer = 'kernel') FROM events "
				 "WHERE session = ?1", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			lib = sqlite3_column_int64(st, 0);
			kern = sqlite3_column_int64(st, 1);
		}
	} else {
		/* No layer column: every row is the library's. */
		sqlite3_finalize(st);
		st = cli_prepare(d, "SELECT count(*) FROM events WHERE session = ?1");
		if (st) {
			sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW)
				lib = sqlite3_column_int64(st, 0);
		}
	}
	sqlite3_finalize(st);
	int on = kernel && strcmp(kernel, "on") == 0;
	fprintf(f, "%scoverage: %ld operations seen by the library, %ld by the kernel layer (",
		prefix, lib, kern);
	if (on)
		fputs("on", f);
	else if (kernel)
		cli_put(f, kernel);
	else
		fputs("not recorded for this session", f);
	fputs(")\n", f);

	st = cli_prepare(d, "SELECT path, count(*), min(unguarded) FROM events WHERE session = ?1 "
			    "AND " AG_AUDIT_NOTABLE " AND op = 'exec' AND unguarded IS NOT NULL "
			    "GROUP BY path ORDER BY min(id)");
	if (!st) {
		free(kernel);
		return;
	}
	sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (ung == 0)
			fprintf(f, "%sprograms that ran without the library (%s): ", prefix,
				on ? "the kernel layer watched them" : "nothing watched them");
		if (ung < 8) {
			fputs(ung ? ", " : "", f);
			cli_put(f, cli_col(st, 0));
			fputs(" (", f);
			cli_put(f, cli_col(st, 2));
			fputc(')', f);
		}
		ung++;
	}
	if (ung > 8)
		fprintf(f, " and %ld more", ung - 8);
	if (ung)
		fputc('\n', f);
	sqlite3_finalize(st);
	free(kernel);
}

/* ---- events as JSON ------------------------------------------------------ */

struct cli_idents {
	struct cli_ident *v;
	size_t n;
};

static int ident_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cli_ident *)a)->session,
		      ((const struct cli_ident *)b)->session);
}

struct cli_idents *cli_idents_load(struct cli_db *d)
{
	struct cli_idents *l = calloc(1, sizeof *l);
	sqlite3_stmt *st = NULL;
	size_t cap = 0;

	if (!l)
		return NULL;
	/* A log from before these columns, opened read-only: none known. */
	if (sqlite3_prepare_v2(d->db, "SELECT id, hostname, user, user_id, container "
			       "FROM sessions ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return l;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (l->n == cap) {
			cap = cap ? 2 * cap : 64;
			struct cli_ident *v = realloc(l->v, cap * sizeof *v);
			if (!v)
				break;
			l->v = v;
		}
		struct cli_ident *e = &l->v[l->n++];
		memset(e, 0, sizeof *e);
		for (int i = 0; i < 5; i++) {
			const char *c = i == 3 ? NULL : cli_col(st, i);
			char *dup = c ? strdup(c) : NULL;
			if (i == 0) e->session = dup ? dup : strdup("");
			if (i == 1) e->hostname = dup;
			if (i == 2) e->user = dup;
			if (i == 4) e->container = dup;
		}
		e->has_uid = sqlite3_column_type(st, 3) != SQLITE_NULL;
		e->uid = sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);
	if (l->n)
		qsort(l->v, l->n, sizeof *l->v, ident_cmp);
	return l;
}

const struct cli_ident *cli_ident_of(const struct cli_idents *l, const char *session)
{
	struct cli_ident key = { .session = (char *)session };

	if (!l || !session || !l->n)
		return NULL;
	return bsearch(&key, l->v, l->n, sizeof *l->v, ident_cmp);
}

void cli_idents_free(struct cli_idents *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].session);
		free(l->v[i].hostname);
		free(l->v[i].user);
		free(l->v[i].container);
	}
	free(l->v);
	free(l);
}

void cli_ident_json(json_t *o, const struct cli_ident *who)
{
	if (!who)
		return;
	if (who->hostname)
		json_object_set_new(o, "hostname", cli_json_str(who->hostname));
	if (who->user)
		json_object_set_new(o, "user", cli_json_str(who->user));
	if (who->has_uid)
		json_object_set_new(o, "user_id", json_integer(who->uid));
	if (who->container)
		json_object_set_new(o, "container", cli_json_str(who->container));
}

const char *cli_outcome(sqlite3_stmt *ev)
{
	const char *d = cli_col(ev, EV_DECISION);

	if (d && strcmp(d, "deny") == 0 && (sqlite3_column_type(ev, EV_ENFORCED) == SQLITE_NULL ||
					   sqlite3_column_int(ev, EV_ENFORCED)))
		return "denied";
	if (sqlite3_column_type(ev, EV_ERRNO) == SQLITE_NULL) {
		/* An exec that never returned replaced the process: it worked. */
		const char *op = cli_col(ev, EV_OP);
		return op && strcmp(op, "exec") == 0 ? "succeeded" : "unknown";
	}
	return sqlite3_column_int(ev, EV_ERRNO) == 0 ? "succeeded" : "failed";
}

const char *cli_errno_name(int e)
{
	const char *n = e > 0 ? strerrorname_np(e) : NULL;
	return n ? n : "E?";
}

json_t *cli_event_json(sqlite3_stmt *st, const struct cli_ident *who)
{
	json_t *o = json_object();
	char t[64];

	for (int i = 0; i < EV_NCOLS; i++) {
		const char *name = sqlite3_column_name(st, i);
		json_t *v = NULL;
		switch (sqlite3_column_type(st, i)) {
		case SQLITE_NULL:
			continue;
		case SQLITE_INTEGER:
			if (i == EV_ENFORCED)
				v = json_boolean(sqlite3_column_int(st, i));
			else
				v = json_integer(sqlite3_column_int64(st, i));
			break;
		case SQLITE_FLOAT:
			v = json_real(sqlite3_column_double(st, i));
			break;
		default:
			if (i == EV_ARGV) {
				v = json_loads(cli_col(st, i), JSON_DECODE_ANY, NULL);
				if (!json_is_array(v)) {
					json_decref(v);
					v = NULL;
				}
			}
			if (!v)
				v = cli_json_str(cli_col(st, i));
		}
		json_object_set_new(o, name, v);
		if (i == EV_TIME) {
			cli_fmt_rfc3339(sqlite3_column_int64(st, i), t, sizeof t);
			json_object_set_new(o, "time", json_string(t));
		}
	}
	/* What came of the call, and why it failed. */
	const char *outcome = cli_outcome(st);
	json_object_set_new(o, "outcome", json_string(outcome));
	if (strcmp(outcome, "failed") == 0 || strcmp(outcome, "denied") == 0) {
		int e = sqlite3_column_int(st, EV_ERRNO);
		if (sqlite3_column_type(st, EV_ERRNO) != SQLITE_NULL && e > 0)
			json_object_set_new(o, "error", json_string(cli_errno_name(e)));
	}
	cli_ident_json(o, who);
	return o;
}

int cli_located(const char *err, char *out, size_t outlen)
{
	for (const char *p = strchr(err, ':'); p; p = strchr(p + 1, ':')) {
		const char *q = p + 1;
		size_t a = strspn(q, "0123456789");
		if (!a || q[a] != ':')
			continue;
		size_t b = strspn(q + a + 1, "0123456789");
		if (!b || strncmp(q + a + 1 + b, ": ", 2) != 0)
			continue;
		if ((size_t)(p - err) >= outlen || p == err)
			return -1;
		memcpy(out, err, (size_t)(p - err));
		out[p - err] = 0;
		return 0;
	}
	return -1;
}
