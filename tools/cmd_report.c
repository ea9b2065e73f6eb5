/* agentguard report: what a session did, as text, JSON Lines or one HTML page. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"

static const char help[] =
"Usage: agentguard report [--session ID | --all] [FILTERS] [--json] [--html FILE]\n"
"\n"
"Show what guarded sessions did: the session (agent, mode, rules, workspace,\n"
"start, end, exit status), counts per operation and decision, and a timeline\n"
"of the notable events (log, snapshot, ask, deny, would deny) with their rule\n"
"and reason, and for each snapshot the command that restores it.\n"
"\n"
"Which sessions (default: the latest one):\n"
"  --session ID     one session (a unique prefix of the id is enough)\n"
"  --all            every session\n"
"  --since TIME     events from TIME on: a duration ago (30s, 15m, 2h, 7d),\n"
"                   today, yesterday, or 2026-12-01[T10:00[:00]] (UTC, or with\n"
"                   Z or +HH:MM); without --session this looks at every session\n"
"  --until TIME     events before TIME (the same forms)\n"
"Filters:\n"
"  --op OP          delete, rename, truncate, write, exec, connect or sql\n"
"  --decision D     allow, log, snapshot, ask, deny, or would-deny\n"
"                   (also shows that decision in the timeline)\n"
"  --rule ID        events decided by this rule\n"
"  --path GLOB      events on paths matching GLOB (*, ?, **; a relative\n"
"                   glob is taken from the current directory)\n"
"  --pid N          events of process N\n"
"Output:\n"
"  --full           list every notable event (runs of like events, as from\n"
"                   an `rm -rf`, are otherwise folded after the first few)\n"
"  --json           JSON Lines on stdout: every matching event, allow included,\n"
"                   with the audit log's column names; NULL fields left out\n"
"  --html FILE      one self-contained page with a visual timeline ('-': stdout)\n"
"  --state-dir DIR  where audit.db lives\n";

enum { OPT_SESSION = 1, OPT_ALL, OPT_SINCE, OPT_UNTIL, OPT_OP, OPT_DECISION, OPT_RULE, OPT_PATH, OPT_PID,
       OPT_JSON, OPT_HTML, OPT_FULL };

static const struct option options[] = {
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "op", required_argument, NULL, OPT_OP },
	{ "decision", required_argument, NULL, OPT_DECISION },
	{ "rule", required_argument, NULL, OPT_RULE },
	{ "path", required_argument, NULL, OPT_PATH },
	{ "pid", required_argument, NULL, OPT_PID },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "html", required_argument, NULL, OPT_HTML },
	{ "full", no_argument, NULL, OPT_FULL },
	{ NULL, 0, NULL, 0 },
};

struct report {
	struct cli_db d;
	struct cli_opts co;
	const char *session_arg;
	int all;
	int64_t since_ns;          /* absolute; 0: none */
	int64_t until_ns;          /* absolute, exclusive; 0: none */
	const char *op, *decision, *rule, *html;
	int would_deny;            /* --decision would-deny */
	char glob[AG_PATH_MAX];    /* "" when none */
	long pid;                  /* -1 when none */
	int json;
	int full;                  /* --full: no folding of like events */
};

/* Columns of the counts table: the five decisions, then "would deny". */
#define NDEC (AG_ACTION_COUNT + 1)
static const char *const dec_label[NDEC] = {
	"allow", "log", "snapshot", "ask", "deny", "would deny",
};

static int dec_index(const char *label)
{
	for (int i = 0; i < NDEC; i++)
		if (strcmp(label, dec_label[i]) == 0)
			return i;
	return -1;
}

static int filtered(const struct report *r)
{
	return r->since_ns || r->until_ns || r->op || r->decision || r->rule || r->glob[0] || r->pid >= 0;
}

/* What was let through, changed something and left nothing to undo it
 * with, is AG_AUDIT_LOST (audit.h): a call that failed changed nothing. */

/* The filters as SQL with named parameters; bind() fills the same names.
 * notable: only what the timeline shows. */
static void where(const struct report *r, const char *session, int notable,
		  char *buf, size_t n)
{
	snprintf(buf, n, " WHERE 1");
#define ADD(s) strncat(buf, s, n - strlen(buf) - 1)
	if (session)
		ADD(" AND session = :session");
	if (r->since_ns)
		ADD(" AND time_ns >= :since");
	if (r->until_ns)
		ADD(" AND time_ns < :until");
	if (r->op)
		ADD(" AND op = :op");
	if (r->would_deny)
		ADD(" AND decision = 'deny' AND enforced = 0");
	else if (r->decision)
		ADD(" AND decision = :decision");
	if (r->rule)
		ADD(" AND rule = :rule");
	if (r->glob[0])
		ADD(" AND (path_glob(:glob, path) OR path_glob(:glob, target))");
	if (r->pid >= 0)
		ADD(" AND pid = :pid");
	if (notable && !r->decision)
		ADD(" AND (decision IN ('log', 'snapshot', 'ask', 'deny') OR " AG_AUDIT_LOST ")");
	/* Every such row is in the partial index: naming it lets SQLite read
	 * only those instead of every event. */
	if (notable)
		ADD(" AND " AG_AUDIT_NOTABLE);
#undef ADD
}

/* The filters the tallies can apply (audit.h): none on time, rule, path
 * or pid. 1 and the WHERE clause over tallies, or 0. */
static int tally_where(const struct report *r, const char *session, char *buf, size_t n)
{
	if (r->since_ns || r->until_ns || r->rule || r->glob[0] || r->pid >= 0 ||
	    !ag_audit_has_tallies(r->d.db))
		return 0;
	snprintf(buf, n, " WHERE 1%s%s%s", session ? " AND session = :session" : "",
		 r->op ? " AND op = :op" : "",
		 r->would_deny ? " AND decision = 'deny' AND enforced = 0"
		 : r->decision ? " AND decision = :decision" : "");
	return 1;
}

static void bind_text(sqlite3_stmt *st, const char *name, const char *v)
{
	int i = sqlite3_bind_parameter_index(st, name);

	if (i)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static void bind(const struct report *r, const char *session, sqlite3_stmt *st)
{
	int i;

	bind_text(st, ":session", session);
	bind_text(st, ":op", r->op);
	bind_text(st, ":decision", r->decision);
	bind_text(st, ":rule", r->rule);
	bind_text(st, ":glob", r->glob);
	if ((i = sqlite3_bind_parameter_index(st, ":since")))
		sqlite3_bind_int64(st, i, r->since_ns);
	if ((i = sqlite3_bind_parameter_index(st, ":until")))
		sqlite3_bind_int64(st, i, r->until_ns);
	if ((i = sqlite3_bind_parameter_index(st, ":pid")))
		sqlite3_bind_int64(st, i, r->pid);
}

static sqlite3_stmt *query(struct report *r, const char *head, const char *session,
			   int notable, const char *tail)
{
	char w[1024], sql[2048];
	sqlite3_stmt *st;

	where(r, session, notable, w, sizeof w);
	snprintf(sql, sizeof sql, "%s%s%s", head, w, tail);
	st = cli_prepare(&r->d, sql);
	if (st)
		bind(r, session, st);
	return st;
}

/* The same over the tallies, when they can answer (tally_where): head
 * reads tallies; else NULL and *none = 1 (ask the events). */
static sqlite3_stmt *query_tallies(struct report *r, const char *head, const char *session,
				   const char *tail, int *none)
{
	char w[512], sql[2048];
	sqlite3_stmt *st;

	*none = !tally_where(r, session, w, sizeof w);
	if (*none)
		return NULL;
	snprintf(sql, sizeof sql, "%s%s%s", head, w, tail);
	st = cli_prepare(&r->d, sql);
	if (st)
		bind(r, session, st);
	return st;
}

/* ---- the session list ---------------------------------------------------- */

struct idlist {
	char **v;
	size_t n;
};

static void idlist_free(struct idlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int idlist_add(struct idlist *l, const char *id)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof *v);

	if (!v)
		return -1;
	l->v = v;
	if (!(v[l->n] = strdup(id)))
		return -1;
	l->n++;
	return 0;
}

/* Which sessions the text and HTML reports cover, oldest first. */
static int pick_sessions(struct report *r, struct idlist *l)
{
	char id[256];

	if (r->session_arg || (!r->all && !r->since_ns && !r->until_ns)) {
		if (r->session_arg ? cli_find_session(&r->d, r->session_arg, id, sizeof id)
				   : cli_latest_session(&r->d, id, sizeof id))
			return -1;
		return idlist_add(l, id);
	}
	/* Sessions the guard started without `agentguard run` may exist only
	 * as events; a session with nothing matching the filters is left out. */
	sqlite3_stmt *st = query(r,
		"SELECT s, min(t) FROM ("
		" SELECT id AS s, start_ns AS t FROM sessions WHERE :unfiltered"
		" UNION ALL SELECT session, min(time_ns) FROM events", NULL, 0,
		" GROUP BY session) GROUP BY s ORDER BY min(t), s");
	if (!st)
		return -1;
	sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":unfiltered"), !filtered(r));
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (cli_col(st, 0) && idlist_add(l, cli_col(st, 0)) < 0)
			break;
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return cli_db_error(&r->d, "cannot list the sessions");
	if (l->n == 0)
		fprintf(stderr, "agentguard report: no events match\n");
	return 0;
}

/* ---- counts -------------------------------------------------------------- */

struct counts {
	char op[AG_OP_COUNT + 2][16];  /* op names in first-seen order */
	long n[AG_OP_COUNT + 2][NDEC + 1];
	int nops;
	long total[NDEC + 1];
};

static int get_counts(struct report *r, const char *session, struct counts *c)
{
	int none;
	sqlite3_stmt *st = query_tallies(r, "SELECT op, decision, enforced, sum(n) FROM tallies",
					 session, " GROUP BY op, decision, enforced", &none);
	if (none)
		st = query(r, "SELECT op, decision, enforced, count(*) FROM events", session, 0,
			   " GROUP BY op, decision, enforced");

	memset(c, 0, sizeof *c);
	if (!st)
		return -1;
	/* Rows in the order of enum ag_op_kind, unknown ops last. */
	for (int k = 0; k < AG_OP_COUNT; k++)
		snprintf(c->op[k], sizeof c->op[k], "%s", ag_op_name(k));
	c->nops = AG_OP_COUNT;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *op = cli_col(st, 0) ? cli_col(st, 0) : "?";
		const char *dec = cli_col(st, 1) ? cli_col(st, 1) : "?";
		int k = ag_op_parse(op), j = dec_index(dec);
		if (k < 0) {
			k = AG_OP_COUNT + 1;
			snprintf(c->op[k], sizeof c->op[k], "other");
		}
		if (j == AG_DENY && sqlite3_column_type(st, 2) != SQLITE_NULL &&
		    !sqlite3_column_int(st, 2))
			j = AG_ACTION_COUNT;
		long n = sqlite3_column_int64(st, 3);
		if (j >= 0) {
			c->n[k][j] += n;
			c->total[j] += n;
		}
		c->n[k][NDEC] += n;
		c->total[NDEC] += n;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return cli_db_error(&r->d, "cannot count the events");
	return 0;
}

/* ---- the verdict ---------------------------------------------------------- */

/* What a reader needs first: what was destroyed and can be brought back,
 * what cannot, what was blocked, what ran unwatched, and whether the log
 * itself holds. From the tallies where the filters allow (audit.h), else
 * one pass over the session's events. */
struct verdict {
	long restorable, lost, denied, asked, would, unguarded, failed;
	int tampered;              /* verify would fail */
	int partial;               /* only the heads were checked */
	char why[512];
};

/* Past this many events a report checks the session's heads only (the
 * last row's hash, STATE/heads), not every row: a full walk costs about
 * 7 us a row. `agentguard verify` always walks every row. */
#define VERIFY_ROWS 250000

/* A report of a tampered log must say so: what follows may be the
 * tamperer's text. 1 (why says what) or 0. */
static int report_verify(struct report *r, const char *session, char *why, size_t len,
			 int *partial)
{
	sqlite3_stmt *st = cli_prepare(&r->d, ag_audit_has_tallies(r->d.db)
		? "SELECT coalesce(sum(events), 0) FROM sessions WHERE ?1 IS NULL OR id = ?1"
		: "SELECT count(*) FROM events WHERE ?1 IS NULL OR session = ?1");
	long long n = 0;

	*partial = 0;
	why[0] = 0;
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (n <= VERIFY_ROWS) {
		int rc = ag_audit_verify(r->d.db, session, why, len);
		if (rc < 0 && !why[0])
			snprintf(why, len, "the chain could not be checked");
		return rc != 0;
	}
	*partial = 1;
	st = cli_prepare(&r->d, "SELECT id FROM sessions WHERE (?1 IS NULL OR id = ?1) AND "
				"head IS NOT coalesce((SELECT hash FROM events e WHERE e.session = "
				"sessions.id ORDER BY e.id DESC LIMIT 1), genesis) LIMIT 1");
	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(why, len, "session %s: its last row is not its head (rows were deleted "
			 "or added)", cli_col(st, 0) ? cli_col(st, 0) : "?");
		sqlite3_finalize(st);
		return 1;
	}
	sqlite3_finalize(st);
	char heads[AG_PATH_MAX + 16];
	long checked;
	snprintf(heads, sizeof heads, "%s/heads", r->d.state_dir);
	if (access(heads, F_OK) == 0 &&
	    ag_audit_check_heads(r->d.db, heads, why, len, &checked) == 1)
		return 1;
	why[0] = 0;
	return 0;
}

static int get_verdict(struct report *r, const char *session, struct verdict *v)
{
	int none;
	sqlite3_stmt *st = query_tallies(r,
		"SELECT"
		" coalesce(sum(n) FILTER (WHERE snap AND NOT failed), 0),"
		" coalesce(sum(n) FILTER (WHERE lost), 0),"
		" coalesce(sum(n) FILTER (WHERE decision = 'deny' AND enforced), 0),"
		" coalesce(sum(n) FILTER (WHERE decision = 'ask'), 0),"
		" coalesce(sum(n) FILTER (WHERE decision = 'deny' AND NOT enforced), 0),"
		" 0,"
		" coalesce(sum(n) FILTER (WHERE decision <> 'deny' AND failed), 0)"
		" FROM tallies", session, "", &none);
	if (none)
		st = query(r,
			"SELECT"
			" sum(snapshot IS NOT NULL AND coalesce(errno, 0) = 0),"
			" sum(" AG_AUDIT_LOST "),"
			" sum(decision = 'deny' AND coalesce(enforced, 1)),"
			" sum(decision = 'ask'),"
			" sum(decision = 'deny' AND enforced = 0),"
			" count(DISTINCT CASE WHEN op = 'exec' AND unguarded IS NOT NULL THEN path END),"
			" sum(decision <> 'deny' AND errno > 0)"
			" FROM events", session, 0, "");

	memset(v, 0, sizeof *v);
	if (!st)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW) {
		long *out[] = {&v->restorable, &v->lost, &v->denied, &v->asked, &v->would,
			       &v->unguarded, &v->failed};
		for (int i = 0; i < 7; i++)
			*out[i] = sqlite3_column_int64(st, i);
	}
	sqlite3_finalize(st);
	if (!none) {
		/* Programs, not events: from the rows themselves, through the
		 * partial index (every exec is in it). */
		st = query(r, "SELECT count(DISTINCT path) FROM events", session, 0,
			   " AND " AG_AUDIT_NOTABLE " AND op = 'exec' AND unguarded IS NOT NULL");
		if (st && sqlite3_step(st) == SQLITE_ROW)
			v->unguarded = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	v->tampered = report_verify(r, session, v->why, sizeof v->why, &v->partial);
	return 0;
}

static void put_undo_session(FILE *f, struct report *r, const char *session)
{
	const char *sd = cli_state_dir_arg(&r->co, &r->d);

	fputs("agentguard restore --session ", f);
	cli_put_word(f, session);
	if (sd) {
		fputs(" --state-dir ", f);
		cli_put_word(f, sd);
	}
}

static void text_verdict(FILE *f, struct report *r, const char *session, const struct verdict *v)
{
	fputs("\nVerdict\n", f);
	if (v->tampered) {
		fputs("  WARNING    the audit log does not verify: ", f);
		cli_put(f, v->why);
		fputs("\n             (what follows may have been rewritten; agentguard verify)\n", f);
	} else if (v->partial) {
		fputs("  log        heads match (every row: agentguard verify)\n", f);
	} else {
		fputs("  log        intact (agentguard verify)\n", f);
	}
	fprintf(f, "  restorable %ld destroyed or overwritten, kept", v->restorable);
	if (v->restorable) {
		fputs(": ", f);
		put_undo_session(f, r, session);
	}
	fprintf(f, "\n  LOST       %ld allowed, with nothing kept to undo them%s\n", v->lost,
		v->lost ? " (marked NOT RESTORABLE below)" : "");
	fprintf(f, "  blocked    %ld denied, %ld asked", v->denied, v->asked);
	if (v->would)
		fprintf(f, ", %ld would have been denied (monitor mode let them through)", v->would);
	fputc('\n', f);
	if (v->failed)
		fprintf(f, "  failed     %ld allowed calls failed by themselves (nothing changed)\n",
			v->failed);
	if (v->unguarded)
		fprintf(f, "  unguarded  %ld program%s ran without the library (see coverage)\n",
			v->unguarded, v->unguarded == 1 ? "" : "s");
}

/* ---- text ---------------------------------------------------------------- */

struct sess {
	int found;
	char *argv, *mode, *rules, *rules_hash, *workspace;
	int enforce, has_enforce, halted, has_exit, exit_status;
	int64_t pid, start_ns, end_ns, events;
};

static char *dup_col(sqlite3_stmt *st, int i)
{
	return cli_col(st, i) ? strdup(cli_col(st, i)) : NULL;
}

static void sess_free(struct sess *s)
{
	free(s->argv);
	free(s->mode);
	free(s->rules);
	free(s->rules_hash);
	free(s->workspace);
}

static int get_sess(struct report *r, const char *id, struct sess *s)
{
	/* With tallies the row's own count is kept right (audit.h). */
	sqlite3_stmt *st = cli_prepare(&r->d, ag_audit_has_tallies(r->d.db)
		? "SELECT argv, mode, enforce, rules, rules_hash, workspace, pid, start_ns, "
		  "end_ns, exit_status, halted, events FROM sessions WHERE id = ?1"
		: "SELECT argv, mode, enforce, rules, rules_hash, workspace, pid, start_ns, "
		  "end_ns, exit_status, halted, "
		  "(SELECT count(*) FROM events WHERE session = ?1) FROM sessions WHERE id = ?1");

	memset(s, 0, sizeof *s);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		s->found = 1;
		s->argv = dup_col(st, 0);
		s->mode = dup_col(st, 1);
		s->has_enforce = sqlite3_column_type(st, 2) != SQLITE_NULL;
		s->enforce = sqlite3_column_int(st, 2);
		s->rules = dup_col(st, 3);
		s->rules_hash = dup_col(st, 4);
		s->workspace = dup_col(st, 5);
		s->pid = sqlite3_column_int64(st, 6);
		s->start_ns = sqlite3_column_int64(st, 7);
		s->end_ns = sqlite3_column_int64(st, 8);
		s->has_exit = sqlite3_column_type(st, 9) != SQLITE_NULL;
		s->exit_status = sqlite3_column_int(st, 9);
		s->halted = sqlite3_column_int(st, 10);
		s->events = sqlite3_column_int64(st, 11);
	}
	sqlite3_finalize(st);
	/* Halting is also visible in the events, whatever the session row says. */
	st = cli_prepare(&r->d, "SELECT 1 FROM events WHERE session = ?1 AND " AG_AUDIT_NOTABLE
				" AND decision = 'deny' AND substr(reason, 1, 14) = 'session halted'"
				" LIMIT 1");
	if (!st) {
		sess_free(s);
		return -1;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		s->halted = 1;
	sqlite3_finalize(st);
	if (!s->found) {
		st = cli_prepare(&r->d, "SELECT min(time_ns), max(time_ns), count(*) "
					"FROM events WHERE session = ?1");
		if (!st)
			return -1;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			s->start_ns = sqlite3_column_int64(st, 0);
			s->events = sqlite3_column_int64(st, 2);
		}
		sqlite3_finalize(st);
	}
	return 0;
}

static void text_header(FILE *f, const char *id, const struct sess *s)
{
	char a[64], b[64], dur[32];

	fputs("Session ", f);
	cli_put(f, id);
	fputc('\n', f);
	if (!s->found) {
		fputs("  (no session record: started by a guarded process outside "
		      "'agentguard run')\n", f);
	} else {
		fputs("  agent      ", f);
		cli_put_argv(f, s->argv, 400);
		fputs("\n  mode       ", f);
		cli_put(f, s->mode);
		if (s->has_enforce)
			fputs(s->enforce ? ", enforcing\n"
					 : ", monitor (only hard rules block; the rest is 'would deny')\n", f);
		else
			fputc('\n', f);
		fputs("  rules      ", f);
		cli_put(f, s->rules);
		if (s->rules_hash) {
			fputs(" (sha256 ", f);
			cli_put_short(f, s->rules_hash, 16);
			fputs(")", f);
		}
		fputs("\n  workspace  ", f);
		cli_put(f, s->workspace);
		fputc('\n', f);
	}
	cli_fmt_time(s->start_ns, 1, a, sizeof a);
	fprintf(f, "  started    %s", a);
	if (s->found && s->pid > 0)
		fprintf(f, " (agent pid %lld)", (long long)s->pid);
	fputc('\n', f);
	if (s->end_ns > 0) {
		cli_fmt_time(s->end_ns, 1, b, sizeof b);
		cli_fmt_duration(s->end_ns - s->start_ns, dur, sizeof dur);
		fprintf(f, "  ended      %s (%s)", b, dur);
		if (s->has_exit)
			fprintf(f, ", exit status %d", s->exit_status);
		fputc('\n', f);
	} else {
		fputs("  ended      - (still running, or killed before it could record its end)\n", f);
	}
	fprintf(f, "  events     %lld\n", (long long)s->events);
	if (s->halted)
		fputs("  HALTED     the circuit breaker stopped the session after too many "
		      "denials\n", f);
}

static void text_counts(FILE *f, const struct counts *c, int filt)
{
	fprintf(f, "\nCounts%s\n  %-9s", filt ? " (matching the filters)" : "", "");
	for (int j = 0; j < NDEC; j++)
		fprintf(f, " %*s", j == AG_ACTION_COUNT ? 10 : 8, dec_label[j]);
	fprintf(f, " %8s\n", "total");
	for (int k = 0; k < AG_OP_COUNT + 2; k++) {
		if (!c->n[k][NDEC])
			continue;
		fprintf(f, "  %-9s", c->op[k]);
		for (int j = 0; j <= NDEC; j++)
			fprintf(f, " %*ld", j == AG_ACTION_COUNT ? 10 : 8, c->n[k][j]);
		fputc('\n', f);
	}
	fprintf(f, "  %-9s", "total");
	for (int j = 0; j <= NDEC; j++)
		fprintf(f, " %*ld", j == AG_ACTION_COUNT ? 10 : 8, c->total[j]);
	fputc('\n', f);
}

/* A run of like events (one process, op, decision and rule in a row, as
 * an `rm -rf` makes): the first few are shown, the rest summed up with
 * the directory they share, so the timeline stays readable. */
#define RUN_SHOWN 3

struct run {
	char key[768];          /* program, op, decision, rule */
	char exe[256];
	long shown, hidden;
	int64_t last_ns;
	char prefix[AG_PATH_MAX];
	int same;               /* every event of the run on one path */
	int snapshots;
};

static void run_key(sqlite3_stmt *st, char *out, size_t n)
{
	const char *exe = cli_base(cli_col(st, EV_EXE));

	snprintf(out, n, "%.200s\x01%s\x01%s\x01%.200s", exe ? exe : "",
		 cli_col(st, EV_OP) ? cli_col(st, EV_OP) : "", cli_decision_label(st),
		 cli_col(st, EV_RULE) ? cli_col(st, EV_RULE) : "");
}

/* Shorten prefix to the directory part it shares with path. */
static void common_dir(char *prefix, const char *path)
{
	size_t i = 0;

	if (!path) {
		prefix[0] = 0;
		return;
	}
	while (prefix[i] && prefix[i] == path[i])
		i++;
	if (prefix[i] == 0 && (path[i] == '/' || path[i] == 0))
		return;
	while (i > 0 && prefix[i] != '/')
		i--;
	prefix[i] = 0;
}

static void run_flush(FILE *f, struct run *run, const char *session, const char *sd)
{
	char t[64];

	if (run->hidden) {
		cli_fmt_time(run->last_ns, 0, t, sizeof t);
		fprintf(f, "  ... and %ld more like these by ", run->hidden);
		cli_put(f, run->exe);
		fprintf(f, ", until %s", t);
		if (run->prefix[0]) {
			fputs(run->same ? ", all on " : ", all under ", f);
			cli_put(f, run->prefix);
		}
		fputc('\n', f);
		if (run->snapshots && run->prefix[0]) {
			fputs("      undo them all: agentguard restore --session ", f);
			cli_put_word(f, session);
			fputs(" --path ", f);
			char glob[AG_PATH_MAX + 4];
			snprintf(glob, sizeof glob, "%s%s", run->prefix, run->same ? "" : "/**");
			cli_put_word(f, glob);
			if (sd) {
				fputs(" --state-dir ", f);
				cli_put_word(f, sd);
			}
			fputc('\n', f);
		}
		fputs("      (--full lists every one)\n", f);
	}
	run->shown = run->hidden = 0;
	run->key[0] = 0;
}

/* A socket's snapshot is a record only: offering to restore it would be a lie. */
static int snapshot_is_socket(struct report *r, const char *id)
{
	sqlite3_stmt *st = cli_prepare(&r->d, "SELECT kind FROM snapshots WHERE id = ?1");
	int sock = 0;

	if (!st)
		return 0;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && cli_col(st, 0))
		sock = strcmp(cli_col(st, 0), "socket") == 0;
	sqlite3_finalize(st);
	return sock;
}

static int text_timeline(FILE *f, struct report *r, const char *session,
			 const struct sess *s)
{
	sqlite3_stmt *st = query(r, "SELECT " CLI_EVENT_COLS ", " AG_AUDIT_LOST " FROM events",
				 session, 1, " ORDER BY time_ns, id");
	const char *sd = cli_state_dir_arg(&r->co, &r->d);
	struct run run = { 0 };
	long n = 0;
	int rc;

	if (!st)
		return -1;
	fputs("\nTimeline (notable events)\n", f);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char t[64], key[sizeof run.key];
		int64_t tn = sqlite3_column_int64(st, EV_TIME);
		long long pid = sqlite3_column_int64(st, EV_PID);
		const char *path = cli_col(st, EV_PATH);

		n++;
		run_key(st, key, sizeof key);
		if (strcmp(key, run.key) != 0) {
			run_flush(f, &run, session, sd);
			snprintf(run.exe, sizeof run.exe, "%s", cli_base(cli_col(st, EV_EXE)) ?
				 cli_base(cli_col(st, EV_EXE)) : "?");
			snprintf(run.key, sizeof run.key, "%s", key);
			snprintf(run.prefix, sizeof run.prefix, "%s", path ? path : "");
			run.snapshots = 0;
			run.same = 1;
		} else if (!path || strcmp(path, run.prefix) != 0) {
			run.same = 0;
			common_dir(run.prefix, path);
		}
		if (cli_col(st, EV_SNAPSHOT))
			run.snapshots = 1;
		if (!r->full && run.shown >= RUN_SHOWN) {
			run.hidden++;
			run.last_ns = tn;
			continue;
		}
		run.shown++;
		/* Dates only when the event is not on the session's first day. */
		cli_fmt_time(tn, s->start_ns <= 0 || tn / 86400000000000LL !=
					 s->start_ns / 86400000000000LL, t, sizeof t);
		/* The row's words too: a spool can be written to by hand. */
		char dec[64], op[64];
		const char *opv = cli_col(st, EV_OP) ? cli_col(st, EV_OP) : "?";
		ag_escape_display(cli_decision_label(st), strlen(cli_decision_label(st)),
				  dec, sizeof dec);
		ag_escape_display(opv, strlen(opv), op, sizeof op);
		fprintf(f, "  %s  %s%-10s%s %-8s ", t, cli_paint(f, dec), dec, cli_paint_end(f, dec),
			op);
		cli_put_subject(f, st, 300);
		fprintf(f, "\n      pid %lld ", pid);
		cli_put(f, cli_base(cli_col(st, EV_EXE)));
		fputs("  rule ", f);
		cli_put(f, cli_col(st, EV_RULE) ? cli_col(st, EV_RULE) : "(op default)");
		if (cli_col(st, EV_REASON)) {
			fputs(": ", f);
			cli_put(f, cli_col(st, EV_REASON));
		}
		fputc('\n', f);
		if (strcmp(cli_outcome(st), "failed") == 0) {
			int e = sqlite3_column_int(st, EV_ERRNO);
			fprintf(f, "      failed: %s (%s): nothing was changed\n", cli_errno_name(e),
				strerror(e));
		} else if (sqlite3_column_int(st, EV_NCOLS)) {
			fputs("      NOT RESTORABLE: allowed, and nothing was kept to undo it\n", f);
		}
		if (cli_col(st, EV_SNAPSHOT) && snapshot_is_socket(r, cli_col(st, EV_SNAPSHOT))) {
			fputs("      (a socket: recorded, but it cannot be restored)\n", f);
		} else if (cli_col(st, EV_SNAPSHOT)) {
			fputs("      undo: agentguard restore ", f);
			cli_put_word(f, cli_col(st, EV_SNAPSHOT));
			if (sd) {
				fputs(" --state-dir ", f);
				cli_put_word(f, sd);
			}
			fputc('\n', f);
		}
	}
	run_flush(f, &run, session, sd);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return cli_db_error(&r->d, "cannot read the events");
	if (!n)
		fputs(r->decision ? "  (none)\n" : "  (none: every matching operation was "
		      "allowed; --decision allow lists them)\n", f);
	return 0;
}

static int text_gaps(FILE *f, struct report *r, const char *session)
{
	sqlite3_stmt *st = cli_prepare(&r->d, "SELECT time_ns, pid, what FROM gaps "
					      "WHERE session = ?1 ORDER BY time_ns, id");
	int first = 1;

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char t[64];
		if (first)
			fputs("\nGaps (decisions that could not be recorded)\n", f);
		first = 0;
		cli_fmt_time(sqlite3_column_int64(st, 0), 1, t, sizeof t);
		fprintf(f, "  %s  pid %lld  ", t, (long long)sqlite3_column_int64(st, 1));
		cli_put(f, cli_col(st, 2));
		fputc('\n', f);
	}
	sqlite3_finalize(st);
	return 0;
}

static int text_report(struct report *r, const struct idlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct sess s;
		struct counts c;
		if (i)
			fputs("\n\n", stdout);
		if (get_sess(r, l->v[i], &s) < 0)
			return -1;
		text_header(stdout, l->v[i], &s);
		cli_put_coverage(stdout, &r->d, l->v[i], "  ");
		struct verdict v;
		int rc = get_verdict(r, l->v[i], &v);
		if (rc == 0)
			text_verdict(stdout, r, l->v[i], &v);
		if (rc == 0)
			rc = get_counts(r, l->v[i], &c);
		if (rc == 0) {
			text_counts(stdout, &c, filtered(r));
			rc = text_timeline(stdout, r, l->v[i], &s);
		}
		if (rc == 0)
			rc = text_gaps(stdout, r, l->v[i]);
		sess_free(&s);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* ---- JSON Lines ---------------------------------------------------------- */

static int json_report(struct report *r, const char *session)
{
	/* Time order: processes' spools reach the log in any order. */
	sqlite3_stmt *st = query(r, "SELECT " CLI_EVENT_COLS " FROM events", session, 0,
				 " ORDER BY time_ns, id");
	struct cli_idents *ids = cli_idents_load(&r->d);
	int rc;

	if (!st || !ids) {
		sqlite3_finalize(st);
		cli_idents_free(ids);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = cli_event_json(st, cli_ident_of(ids, cli_col(st, EV_SESSION)));
		int bad = cli_json_line(stdout, o);
		json_decref(o);
		if (bad < 0) {
			sqlite3_finalize(st);
			cli_idents_free(ids);
			cli_err("cannot write the report: %s", strerror(errno));
			return -1;
		}
	}
	sqlite3_finalize(st);
	cli_idents_free(ids);
	if (rc != SQLITE_DONE)
		return cli_db_error(&r->d, "cannot read the events");
	return 0;
}

/* ---- HTML ---------------------------------------------------------------- */

static const char css[] =
"*{box-sizing:border-box}"
"body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;padding:1.5em 2em;max-width:90em;"
"color:#1f2937;background:#fff}"
"h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.2em;border-bottom:1px solid #ddd;"
"padding-bottom:.2em;margin-top:1.5em}h3{font-size:1.05em;margin:1.4em 0 .4em}"
"table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left;vertical-align:top}"
"table.hdr th{color:#6b7280;font-weight:normal}"
"table.counts td{text-align:right}table.counts td:first-child{text-align:left}"
"table.counts th,table.evt th,table.procs th{border-bottom:1px solid #ccc}"
"table.evt,table.procs{width:100%;table-layout:auto}"
"table.evt tr:nth-child(even),table.procs tr:nth-child(even){background:#f9fafb}"
"table.evt td,table.procs td{font-size:13px}"
"table.evt td:nth-child(1){white-space:nowrap;width:7em}"
"table.evt td:nth-child(2),table.evt td:nth-child(3){white-space:nowrap;width:6em}"
"table.evt td:nth-child(5){white-space:nowrap}"
"code,.mono{font-family:ui-monospace,monospace;overflow-wrap:anywhere}"
"#verdict{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}"
".card{flex:1 1 14em;border:1px solid #d1d5db;border-left-width:6px;border-radius:4px;"
"padding:.6em .9em;min-width:0}.card b{font-size:1.15em}.card p{margin:.2em 0}"
".card code{display:block;font-size:12px;margin-top:.3em}"
".card.ok{border-left-color:#16a34a}.card.warn{border-left-color:#f59e0b}"
".card.bad{border-left-color:#dc2626;background:#fef2f2}"
".halt{background:#fee2e2;border:1px solid #dc2626;padding:.5em 1em}"
"#timeline .tlgrid{display:grid;grid-template-columns:7em 1fr 5em;gap:2px .6em;"
"align-items:center}"
".lname{text-align:right;font-size:12px;color:#6b7280}.lcount{font-size:12px}"
"svg.lane{width:100%;height:22px;background:#f9fafb;display:block}"
".axis{display:flex;justify-content:space-between;font-size:12px;color:#6b7280;"
"margin:0 5.6em 0 7.6em}"
"svg.d-allow rect{fill:#9ca3af}svg.d-log rect{fill:#3b82f6}svg.d-snapshot rect{fill:#f59e0b}"
"svg.d-ask rect{fill:#a855f7}svg.d-deny rect{fill:#dc2626}svg.d-would rect{fill:#ea580c}"
"td.dec{font-weight:600}td.dec.d-log{color:#2563eb}td.dec.d-snapshot{color:#b45309}"
"td.dec.d-ask{color:#7e22ce}td.dec.d-deny{color:#dc2626}td.dec.d-would{color:#ea580c}"
".run{margin:.6em 0 1em}.why{margin:.2em 0;font-size:13px}.fold{margin:.2em 0;color:#374151}"
"details.more>summary{cursor:pointer;color:#2563eb;font-size:13px}"
".failed{color:#b91c1c;font-weight:600}.lost{color:#fff;background:#dc2626;padding:0 .3em;"
"border-radius:3px;font-size:12px}"
".note{color:#6b7280;font-size:13px}"
"#filters{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #eee;"
"z-index:1}#filters label{margin-right:.8em;font-size:13px}"
"tr:target{outline:2px solid #2563eb}";

static const char *dec_class(const char *label)
{
	static const char *const cls[NDEC] = {
		"d-allow", "d-log", "d-snapshot", "d-ask", "d-deny", "d-would",
	};
	int j = dec_index(label);

	return j >= 0 ? cls[j] : "d-allow";
}

/* What cli_put_subject prints, as a string (terminal escapes included,
 * which also keeps the page free of control characters). */
static char *subject_text(sqlite3_stmt *st, size_t max)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return NULL;
	cli_put_subject(m, st, max);
	fclose(m);
	return buf;
}

static void html_row(FILE *f, const char *k, const char *v, int mono)
{
	fprintf(f, "<tr><th>%s</th><td%s>", k, mono ? " class=mono" : "");
	cli_put_html(f, v ? v : "-");
	fputs("</td></tr>\n", f);
}

static void html_verdict(FILE *f, struct report *r, const char *session, const struct verdict *v);

static void html_header(FILE *f, struct report *r, const char *id, const struct sess *s,
			const struct verdict *v)
{
	char a[64], b[64], dur[32], buf[128];
	char *argv = NULL;
	size_t len;

	fputs("<h2>Session <code>", f);
	cli_put_html(f, id);
	fputs("</code></h2>\n", f);
	if (s->halted)
		fputs("<p class=halt><b>Halted:</b> the circuit breaker stopped this session "
		      "after too many denials. Hand back to a human.</p>\n", f);
	html_verdict(f, r, id, v);
	fputs("<table class=hdr>\n", f);
	if (s->found) {
		FILE *m = open_memstream(&argv, &len);
		if (m) {
			cli_put_argv(m, s->argv, 2000);
			fclose(m);
		}
		/* cli_put_argv has escaped it already. */
		fputs("<tr><th>agent</th><td class=mono>", f);
		cli_put_html_shown(f, argv ? argv : "-");
		fputs("</td></tr>\n", f);
		free(argv);
		snprintf(buf, sizeof buf, "%s%s", s->mode ? s->mode : "-",
			 !s->has_enforce ? "" : s->enforce ? ", enforcing" : ", monitor (would deny)");
		html_row(f, "mode", buf, 0);
		html_row(f, "rules", s->rules, 1);
		html_row(f, "rules sha256", s->rules_hash, 1);
		html_row(f, "workspace", s->workspace, 1);
	} else {
		html_row(f, "session", "no session record (started outside 'agentguard run')", 0);
	}
	cli_fmt_time(s->start_ns, 1, a, sizeof a);
	html_row(f, "started", a, 0);
	if (s->end_ns > 0) {
		cli_fmt_time(s->end_ns, 1, b, sizeof b);
		cli_fmt_duration(s->end_ns - s->start_ns, dur, sizeof dur);
		if (s->has_exit)
			snprintf(buf, sizeof buf, "%s (%s), exit status %d", b, dur, s->exit_status);
		else
			snprintf(buf, sizeof buf, "%s (%s)", b, dur);
		html_row(f, "ended", buf, 0);
	} else {
		html_row(f, "ended", "- (still running, or killed before it recorded its end)", 0);
	}
	snprintf(buf, sizeof buf, "%lld", (long long)s->events);
	html_row(f, "events", buf, 0);
	fputs("</table>\n", f);
}

static void html_counts(FILE *f, const struct counts *c)
{
	fputs("<h3>Counts</h3>\n<table class=counts><tr><th></th>", f);
	for (int j = 0; j < NDEC; j++)
		fprintf(f, "<th>%s</th>", dec_label[j]);
	fputs("<th>total</th></tr>\n", f);
	for (int k = 0; k < AG_OP_COUNT + 2; k++) {
		if (!c->n[k][NDEC])
			continue;
		fputs("<tr><td>", f);
		cli_put_html(f, c->op[k]);
		fputs("</td>", f);
		for (int j = 0; j <= NDEC; j++)
			fprintf(f, "<td>%ld</td>", c->n[k][j]);
		fputs("</tr>\n", f);
	}
	fputs("<tr><td><b>total</b></td>", f);
	for (int j = 0; j <= NDEC; j++)
		fprintf(f, "<td><b>%ld</b></td>", c->total[j]);
	fputs("</tr></table>\n", f);
}

/* Timeline columns: one scan counts every event into a bucket per
 * decision, so a million events draw as fast as a hundred. */
#define BUCKETS 120
/* Rows a folded run keeps in its page (the rest: --full in the text report),
 * and rows the page shows in all: the page stays small at any size. */
#define RUN_KEPT 40
#define PAGE_ROWS 3000

static int html_timeline(FILE *f, struct report *r, const char *session,
			 const struct sess *s)
{
	sqlite3_stmt *st;
	int64_t t0 = s->start_ns, t1 = s->end_ns;
	char a[64], b[64];
	static long n[NDEC][BUCKETS];
	long top = 1;

	memset(n, 0, sizeof n);
	/* The span: the session's, widened to every event shown. */
	st = query(r, "SELECT min(time_ns), max(time_ns) FROM events", session, 0, "");
	if (!st)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		int64_t lo = sqlite3_column_int64(st, 0), hi = sqlite3_column_int64(st, 1);
		if (t0 <= 0 || lo < t0)
			t0 = lo;
		if (t1 <= 0 || hi > t1)
			t1 = hi;
	}
	sqlite3_finalize(st);
	if (t1 <= t0)
		t1 = t0 + 1;
	char head[256];
	snprintf(head, sizeof head,
		 "SELECT min(%d, max(0, (time_ns - %lld) * %d / %lld)), decision, enforced, count(*) "
		 "FROM events", BUCKETS - 1, (long long)t0, BUCKETS, (long long)(t1 - t0 + 1));
	st = query(r, head, session, 0, " GROUP BY 1, 2, 3");
	if (!st)
		return -1;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int k = sqlite3_column_int(st, 0), j = dec_index(cli_col(st, 1) ? cli_col(st, 1) : "?");
		if (j == AG_DENY && sqlite3_column_type(st, 2) != SQLITE_NULL && !sqlite3_column_int(st, 2))
			j = AG_ACTION_COUNT;
		if (j < 0 || k < 0 || k >= BUCKETS)
			continue;
		n[j][k] += sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);
	fputs("<section id=timeline><h3>Timeline</h3>\n<div class=tlgrid>\n", f);
	for (int j = NDEC - 1; j >= 0; j--) {
		long sum = 0, peak = 0;
		for (int k = 0; k < BUCKETS; k++) {
			sum += n[j][k];
			if (n[j][k] > peak)
				peak = n[j][k];
		}
		top = peak > top ? peak : top;
		/* Each lane to its own peak: ten denials must show beside a
		 * million allows. The count says how many. */
		fprintf(f, "<div class=lname>%s</div><svg class=\"lane %s\" viewBox=\"0 0 %d 20\" "
			"preserveAspectRatio=none role=img aria-label=\"%s: %ld\">", dec_label[j],
			dec_class(dec_label[j]), BUCKETS, dec_label[j], sum);
		for (int k = 0; k < BUCKETS && peak; k++) {
			if (!n[j][k])
				continue;
			double h = 2 + 18.0 * (double)n[j][k] / (double)peak;
			fprintf(f, "<rect x=%d y=%.1f width=1 height=%.1f><title>%ld</title></rect>", k,
				20 - h, h, n[j][k]);
		}
		fprintf(f, "</svg><div class=lcount>%ld</div>\n", sum);
	}
	cli_fmt_time(t0, 1, a, sizeof a);
	cli_fmt_time(t1, 1, b, sizeof b);
	fprintf(f, "</div>\n<div class=axis><span>%s</span><span>%s</span></div>\n</section>\n", a, b);
	(void)top;
	return 0;
}

/* The pids the rows named, for the process table. */
struct pids {
	long long *v;
	size_t n, cap;
};

static void pids_add(struct pids *p, long long pid)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i] == pid)
			return;
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 64;
		long long *v = realloc(p->v, cap * sizeof *v);
		if (!v)
			return;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = pid;
}

struct html_rows {
	long shown;                 /* rows in the page */
	struct pids pids;
};

static void html_event_row(FILE *f, sqlite3_stmt *st, int unrec, struct html_rows *h)
{
	char t[64];
	const char *label = cli_decision_label(st);
	char *subj = subject_text(st, 1000);
	long long pid = sqlite3_column_int64(st, EV_PID);

	cli_fmt_time(sqlite3_column_int64(st, EV_TIME), 0, t, sizeof t);
	fprintf(f, "<tr id=e%lld data-dec=\"%s\" data-op=\"", (long long)sqlite3_column_int64(st, EV_ID),
		dec_class(label));
	cli_put_html(f, cli_col(st, EV_OP));
	fputs("\" data-rule=\"", f);
	cli_put_html(f, cli_col(st, EV_RULE) ? cli_col(st, EV_RULE) : "");
	fputs("\" data-proc=\"", f);
	cli_put_html(f, cli_base(cli_col(st, EV_EXE)));
	fprintf(f, " %lld\"><td>%s</td><td class=\"dec %s\">", pid, t, dec_class(label));
	cli_put_html(f, label);
	fputs("</td><td>", f);
	cli_put_html(f, cli_col(st, EV_OP));
	fputs("</td><td class=\"mono subj\">", f);
	cli_put_html_shown(f, subj);
	if (strcmp(cli_outcome(st), "failed") == 0) {
		int e = sqlite3_column_int(st, EV_ERRNO);
		fprintf(f, " <span class=failed>failed: %s</span>", cli_errno_name(e));
	}
	if (unrec)
		fputs(" <span class=lost>not restorable</span>", f);
	fprintf(f, "</td><td><a href=\"#p%lld\">%lld</a> <span class=mono>", pid, pid);
	cli_put_html(f, cli_base(cli_col(st, EV_EXE)));
	fputs("</span></td><td class=mono>", f);
	if (cli_col(st, EV_SNAPSHOT)) {
		fputs("agentguard restore ", f);
		cli_put_html(f, cli_col(st, EV_SNAPSHOT));
	}
	fputs("</td></tr>\n", f);
	free(subj);
	pids_add(&h->pids, pid);
	h->shown++;
}

static const char table_head[] =
	"<table class=evt><thead><tr><th>time</th><th>decision</th><th>op</th><th>what</th>"
	"<th>process</th><th>undo</th></tr></thead>\n";

/* A run as the text report folds it: its rule and reason once, the first
 * RUN_SHOWN rows, the rest inside a <details> (up to RUN_KEPT of them). */
struct hrun {
	char key[768];
	char exe[256], rule[256], reason[512];
	char prefix[AG_PATH_MAX];
	int same, snapshots, open_details;
	long rows, hidden;
	int64_t last_ns;
};

static void hrun_end(FILE *f, struct hrun *run, struct report *r, const char *session)
{
	char t[64];

	if (!run->key[0])
		return;
	if (!run->open_details)
		fputs("</tbody></table>\n", f);
	if (run->open_details) {
		fputs("</tbody></table>", f);
		if (run->hidden > RUN_KEPT)
			fprintf(f, "<p class=note>%ld more not in this page: "
				"<code>agentguard report --full</code> lists every one.</p>",
				run->hidden - RUN_KEPT);
		fputs("</details>\n", f);
		/* The summary is written last: it counts the run. */
		cli_fmt_time(run->last_ns, 0, t, sizeof t);
		fprintf(f, "<p class=fold data-n=%ld>&hellip; and %ld more like these by ", run->hidden,
			run->hidden);
		cli_put_html(f, run->exe);
		fprintf(f, ", until %s", t);
		if (run->prefix[0]) {
			fputs(run->same ? ", all on " : ", all under ", f);
			fputs("<code>", f);
			cli_put_html(f, run->prefix);
			fputs("</code>", f);
		}
		if (run->snapshots && run->prefix[0]) {
			fputs(" &mdash; undo them all: <code>", f);
			char *cmd = NULL;
			size_t len = 0;
			FILE *m = open_memstream(&cmd, &len);
			if (m) {
				put_undo_session(m, r, session);
				fprintf(m, " --path ");
				char glob[AG_PATH_MAX + 4];
				snprintf(glob, sizeof glob, "%s%s", run->prefix, run->same ? "" : "/**");
				cli_put_word(m, glob);
				fclose(m);
				cli_put_html_shown(f, cmd);
			}
			free(cmd);
			fputs("</code>", f);
		}
		fputs("</p>\n", f);
	}
	fputs("</div>\n", f);
	memset(run, 0, sizeof *run);
}

/* One section of rows (a WHERE on top of the filters), folded in runs. */
static int html_section(FILE *f, struct report *r, const char *session, const char *id,
			const char *title, const char *cond, long shown, struct html_rows *h)
{
	char tail[512];
	snprintf(tail, sizeof tail, " AND (%s) ORDER BY time_ns, id", cond);
	sqlite3_stmt *st = query(r, "SELECT " CLI_EVENT_COLS ", " AG_AUDIT_LOST " FROM events",
				 session, 1, tail);
	struct hrun run = { 0 };
	long n = 0, cut = 0;
	int rc;

	if (!st)
		return -1;
	fprintf(f, "<section id=%s class=rows><h3>%s</h3>\n", id, title);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char key[sizeof run.key];
		const char *path = cli_col(st, EV_PATH);
		n++;
		run_key(st, key, sizeof key);
		if (strcmp(key, run.key) != 0) {
			hrun_end(f, &run, r, session);
			snprintf(run.key, sizeof run.key, "%s", key);
			snprintf(run.exe, sizeof run.exe, "%s", cli_base(cli_col(st, EV_EXE)) ?
				 cli_base(cli_col(st, EV_EXE)) : "?");
			snprintf(run.prefix, sizeof run.prefix, "%s", path ? path : "");
			run.same = 1;
			fputs("<div class=run><p class=why><b>", f);
			cli_put_html(f, cli_decision_label(st));
			fputs("</b> ", f);
			cli_put_html(f, cli_col(st, EV_OP));
			fputs(" by <code>", f);
			cli_put_html(f, run.exe);
			fputs("</code> &mdash; rule <code>", f);
			cli_put_html(f, cli_col(st, EV_RULE) ? cli_col(st, EV_RULE) : "(op default)");
			fputs("</code>", f);
			if (cli_col(st, EV_REASON)) {
				fputs(": ", f);
				cli_put_html(f, cli_col(st, EV_REASON));
			}
			fputs("</p>\n", f);
			fputs(table_head, f);
			fputs("<tbody>", f);
		} else if (!path || strcmp(path, run.prefix) != 0) {
			run.same = 0;
			common_dir(run.prefix, path);
		}
		if (cli_col(st, EV_SNAPSHOT))
			run.snapshots = 1;
		run.rows++;
		if (run.rows == shown + 1) {
			fputs("</tbody></table>\n<details class=more><summary>show them</summary>", f);
			fputs(table_head, f);
			fputs("<tbody>", f);
			run.open_details = 1;
		}
		if (run.rows > shown) {
			run.hidden++;
			run.last_ns = sqlite3_column_int64(st, EV_TIME);
			if (run.hidden > RUN_KEPT)
				continue;
		}
		if (h->shown >= PAGE_ROWS) {
			cut++;
			continue;
		}
		html_event_row(f, st, sqlite3_column_int(st, EV_NCOLS), h);
	}
	hrun_end(f, &run, r, session);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return cli_db_error(&r->d, "cannot read the events");
	if (!n)
		fputs("<p class=none>None.</p>\n", f);
	if (cut)
		fprintf(f, "<p class=note>%ld rows left out of this page; the text report "
			"(<code>agentguard report</code>) has them.</p>\n", cut);
	fputs("</section>\n", f);
	return 0;
}

/* The processes the rows name, with their parents: pid, ppid, program and
 * command line, each a link target of the rows. */
static int html_procs(FILE *f, struct report *r, const char *session, struct html_rows *h)
{
	fputs("<section id=procs><h3>Processes</h3>\n<table class=procs><thead><tr><th>pid</th>"
	      "<th>parent</th><th>program</th><th>command line</th></tr></thead><tbody>\n", f);
	/* Up to 8 generations up; each pass one query for the pids it adds
	 * (a process's latest row: its program after any exec). */
	sqlite3_stmt *st = cli_prepare(&r->d,
		"SELECT pid, ppid, exe, argv, max(id) FROM events WHERE session = ?1 AND "
		"pid IN (SELECT value FROM json_each(?2)) GROUP BY pid ORDER BY pid");
	if (!st)
		return -1;
	size_t done = 0;
	for (int gen = 0; gen < 8 && done < h->pids.n && done < 2000; gen++) {
		size_t upto = h->pids.n < 2000 ? h->pids.n : 2000;
		json_t *list = json_array();
		for (size_t i = done; i < upto; i++)
			json_array_append_new(list, json_integer(h->pids.v[i]));
		char *text = json_dumps(list, JSON_COMPACT);
		json_decref(list);
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, text ? text : "[]", -1, SQLITE_TRANSIENT);
		free(text);
		while (sqlite3_step(st) == SQLITE_ROW) {
			long long pid = sqlite3_column_int64(st, 0), ppid = sqlite3_column_int64(st, 1);
			fprintf(f, "<tr id=p%lld><td>%lld</td><td><a href=\"#p%lld\">%lld</a></td>"
				"<td class=mono>", pid, pid, ppid, ppid);
			cli_put_html(f, cli_col(st, 2));
			fputs("</td><td class=mono>", f);
			char *argv = NULL;
			size_t len = 0;
			FILE *m = open_memstream(&argv, &len);
			if (m) {
				cli_put_argv(m, cli_col(st, 3), 600);
				fclose(m);
			}
			cli_put_html_shown(f, argv ? argv : "-");
			free(argv);
			fputs("</td></tr>\n", f);
			pids_add(&h->pids, ppid);
		}
		done = upto;
	}
	sqlite3_finalize(st);
	fputs("</tbody></table></section>\n", f);
	return 0;
}

static void html_verdict(FILE *f, struct report *r, const char *session, const struct verdict *v)
{
	fputs("<section id=verdict>\n", f);
	if (v->tampered) {
		fputs("<div class=\"card bad\"><b>Log does not verify</b><p>", f);
		cli_put_html(f, v->why);
		fputs("</p><p>What this page shows may have been rewritten.</p>"
		      "<code>agentguard verify</code></div>\n", f);
	}
	fprintf(f, "<div class=\"card %s\"><b>%ld restorable</b><p>destroyed or overwritten, "
		"and kept</p>", v->restorable ? "warn" : "ok", v->restorable);
	if (v->restorable) {
		fputs("<code>", f);
		char *cmd = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&cmd, &len);
		if (m) {
			put_undo_session(m, r, session);
			fclose(m);
			cli_put_html_shown(f, cmd);
		}
		free(cmd);
		fputs("</code>", f);
	}
	fputs("</div>\n", f);
	fprintf(f, "<div class=\"card %s\"><b>%ld not restorable</b><p>allowed, with nothing "
		"kept to undo them</p>%s</div>\n", v->lost ? "bad" : "ok", v->lost,
		v->lost ? "<a href=\"#lost\">see them</a>" : "");
	fprintf(f, "<div class=\"card %s\"><b>%ld blocked</b><p>%ld denied, %ld asked",
		v->denied + v->asked ? "warn" : "ok", v->denied + v->asked, v->denied, v->asked);
	if (v->would)
		fprintf(f, ", %ld would have been denied", v->would);
	fputs("</p>", f);
	if (v->denied + v->asked + v->would)
		fputs("<a href=\"#blocked\">see them</a>", f);
	fputs("</div>\n", f);
	fprintf(f, "<div class=\"card %s\"><b>%ld unguarded</b><p>programs that ran without "
		"the library</p></div>\n", v->unguarded ? "warn" : "ok", v->unguarded);
	if (!v->tampered)
		fprintf(f, "<div class=\"card ok\"><b>log %s</b><p>%s</p>"
			"<code>agentguard verify</code></div>\n", v->partial ? "heads match" : "intact",
			v->partial ? "its heads check; verify checks every row" : "every row's hash checks");
	fputs("</section>\n", f);
}

/* Filters: rows hide by their data attributes; nothing leaves the page. */
static const char script[] =
"(function(){var f=document.getElementById('filters');if(!f)return;"
"function v(n){return f.elements[n].value.trim().toLowerCase()}"
"function apply(){var op=v('op'),d=v('dec'),ru=v('rule'),p=v('path'),pr=v('proc');"
"document.querySelectorAll('table.evt tbody tr').forEach(function(t){"
"var s=t.querySelector('.subj');var ok=(!op||t.dataset.op===op)&&(!d||t.dataset.dec==='d-'+d)"
"&&(!ru||t.dataset.rule.toLowerCase().indexOf(ru)>=0)"
"&&(!p||(s&&s.textContent.toLowerCase().indexOf(p)>=0))"
"&&(!pr||t.dataset.proc.toLowerCase().indexOf(pr)>=0);t.hidden=!ok});"
"if(op||d||ru||p||pr)document.querySelectorAll('details.more').forEach(function(x){x.open=true})}"
"f.addEventListener('input',apply)})();";

static const char filters[] =
"<form id=filters onsubmit=\"return false\"><b>Filter</b> "
"<label>op <select name=op><option value=\"\">any</option><option>delete</option>"
"<option>rename</option><option>truncate</option><option>write</option><option>exec</option>"
"<option>connect</option><option>sql</option></select></label> "
"<label>decision <select name=dec><option value=\"\">any</option><option>deny</option>"
"<option value=would>would deny</option><option>ask</option><option>snapshot</option>"
"<option>log</option><option>allow</option></select></label> "
"<label>rule <input name=rule size=14></label> <label>path <input name=path size=18></label> "
"<label>process <input name=proc size=10 placeholder=\"name or pid\"></label></form>\n";

static int html_events(FILE *f, struct report *r, const char *session)
{
	struct html_rows h = { 0 };
	int rc;

	fputs(filters, f);
	/* Denials and asks first: what a reader must see before any fold. */
	/* Denials and asks first, and unfolded (past a hundred in a row, as a
	 * halted session makes, they fold too). */
	rc = html_section(f, r, session, "blocked", "Blocked and asked",
			  "decision IN ('deny', 'ask')", 100, &h);
	if (rc == 0)
		rc = html_section(f, r, session, "lost", "Not restorable (allowed, nothing kept)",
				  AG_AUDIT_LOST, RUN_SHOWN, &h);
	if (rc == 0)
		rc = html_section(f, r, session, "kept", "Snapshotted and logged",
				  "decision NOT IN ('deny', 'ask') AND NOT " AG_AUDIT_LOST, RUN_SHOWN, &h);
	if (rc == 0)
		rc = html_procs(f, r, session, &h);
	free(h.pids.v);
	return rc;
}

static int html_gaps(FILE *f, struct report *r, const char *session)
{
	sqlite3_stmt *st = cli_prepare(&r->d, "SELECT time_ns, pid, what FROM gaps "
					      "WHERE session = ?1 ORDER BY time_ns, id");
	int first = 1;

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, session, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char t[64];
		if (first)
			fputs("<h3>Gaps (decisions that could not be recorded)</h3>\n"
			      "<table class=procs><tr><th>time</th><th>pid</th><th>what</th></tr>\n", f);
		first = 0;
		cli_fmt_time(sqlite3_column_int64(st, 0), 1, t, sizeof t);
		fprintf(f, "<tr><td>%s</td><td>%lld</td><td>", t,
			(long long)sqlite3_column_int64(st, 1));
		cli_put_html(f, cli_col(st, 2));
		fputs("</td></tr>\n", f);
	}
	if (!first)
		fputs("</table>\n", f);
	sqlite3_finalize(st);
	return 0;
}

static int html_report(struct report *r, const struct idlist *l)
{
	int to_stdout = strcmp(r->html, "-") == 0;
	FILE *f = to_stdout ? stdout : fopen(r->html, "w");
	int rc = 0;

	if (!f) {
		cli_err("cannot write %s: %s", r->html, strerror(errno));
		return -1;
	}
	fputs("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\n"
	      "<meta name=viewport content=\"width=device-width\">\n<title>agentguard report", f);
	if (l->n == 1) {
		fputs(" ", f);
		cli_put_html(f, l->v[0]);
	}
	fprintf(f, "</title>\n<style>%s</style>\n</head><body>\n<h1>agentguard report</h1>\n", css);
	if (filtered(r))
		fputs("<p>Only events matching the report's filters are shown.</p>\n", f);
	for (size_t i = 0; i < l->n && rc == 0; i++) {
		struct sess s;
		struct counts c;
		if (get_sess(r, l->v[i], &s) < 0) {
			rc = -1;
			break;
		}
		struct verdict v;
		rc = get_verdict(r, l->v[i], &v);
		if (rc < 0) {
			sess_free(&s);
			break;
		}
		html_header(f, r, l->v[i], &s, &v);
		rc = get_counts(r, l->v[i], &c);
		if (rc == 0) {
			html_counts(f, &c);
			rc = html_timeline(f, r, l->v[i], &s);
		}
		if (rc == 0)
			rc = html_events(f, r, l->v[i]);
		if (rc == 0)
			rc = html_gaps(f, r, l->v[i]);
		sess_free(&s);
	}
	fprintf(f, "<script>%s</script>\n</body></html>\n", script);
	if (fflush(f) != 0 || ferror(f)) {
		cli_err("cannot write %s: %s", r->html, strerror(errno));
		rc = -1;
	}
	if (!to_stdout && fclose(f) != 0 && rc == 0) {
		cli_err("cannot write %s: %s", r->html, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && !to_stdout)
		fprintf(stderr, "agentguard report: wrote %s\n", r->html);
	return rc;
}

/* ---- main ---------------------------------------------------------------- */

static int cmd_report(int argc, char **argv)
{
	struct report r = { .pid = -1 };
	struct idlist l = { 0 };
	int c, status = CLI_OK;

	optind = 0;
	while ((c = cli_getopt(argc, argv, options, &r.co, &status)) != -1) {
		switch (c) {
		case CLI_OPT_STOP:
			return status;
		case OPT_SESSION: r.session_arg = optarg; break;
		case OPT_ALL: r.all = 1; break;
		case OPT_SINCE:
		case OPT_UNTIL: {
			int64_t t;
			if (cli_parse_time(optarg, &t) < 0)
				return cli_usage("--%s wants a time: 30s, 2h or 7d ago, today, or "
						 "2026-12-01T10:00 (UTC), not '%s'",
						 c == OPT_SINCE ? "since" : "until", optarg);
			*(c == OPT_SINCE ? &r.since_ns : &r.until_ns) = t > 0 ? t : 1;
			break;
		}
		case OPT_OP:
			if (ag_op_parse(optarg) < 0)
				return cli_usage("--op is delete, rename, truncate, write, exec, connect or sql, not '%s'",
						 optarg);
			r.op = optarg;
			break;
		case OPT_DECISION:
			if (strcmp(optarg, "would-deny") == 0 || strcmp(optarg, "would deny") == 0) {
				r.would_deny = 1;
				r.decision = "would deny";
			} else if (ag_action_parse(optarg) < 0) {
				return cli_usage("--decision is allow, log, snapshot, ask, deny or would-deny, not '%s'",
						 optarg);
			} else {
				r.decision = optarg;
			}
			break;
		case OPT_RULE: r.rule = optarg; break;
		case OPT_PATH:
			if (!*optarg || cli_abs_glob(optarg, r.glob, sizeof r.glob) < 0)
				return cli_usage("--path glob is empty or too long: '%s'", optarg);
			break;
		case OPT_PID:
			if (cli_parse_long("--pid", optarg, 1, 0x7fffffff, &r.pid) < 0)
				return CLI_USAGE;
			break;
		case OPT_JSON: r.json = 1; break;
		case OPT_FULL: r.full = 1; break;
		case OPT_HTML:
			if (!*optarg)
				return cli_usage("--html needs a file name ('-' for stdout)");
			r.html = optarg;
			break;
		}
	}
	if (optind < argc)
		return cli_usage("unexpected argument '%s'", argv[optind]);
	if (r.session_arg && r.all)
		return cli_usage("--session and --all do not go together");
	if (r.json && r.html && strcmp(r.html, "-") == 0)
		return cli_usage("--json and --html - would both write to stdout");

	if (cli_db_open(&r.d, &r.co, CLI_DB_READ) < 0)
		return CLI_FAIL;
	int rc = pick_sessions(&r, &l);
	if (rc == 0 && r.json) {
		const char *one = r.session_arg || (!r.all && !r.since_ns && !r.until_ns) ? l.v[0] : NULL;
		char why[512] = "";
		int partial;
		if (report_verify(&r, one, why, sizeof why, &partial))
			cli_warn("the audit log does not verify (%s): these rows may have been "
				 "rewritten", why);
		rc = json_report(&r, one);
	}
	if (rc == 0 && r.html)
		rc = html_report(&r, &l);
	if (rc == 0 && !r.json && !r.html)
		rc = text_report(&r, &l);
	if (fflush(stdout) != 0 && rc == 0) {
		cli_err("cannot write the report: %s", strerror(errno));
		rc = -1;
	}
	idlist_free(&l);
	cli_db_close(&r.d);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

const struct cli_command cli_cmd_report = {
	.name = "report",
	.summary = "show what a session did: counts, timeline, restore commands (text, JSON, HTML)",
	.help = help,
	.main = cmd_report,
};
