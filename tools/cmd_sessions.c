/* agentguard sessions: the sessions in the audit log, newest first. */
#include <string.h>

#include "audit.h"
#include "cli.h"

static const char help[] =
"Usage: agentguard sessions [--json] [--state-dir DIR]\n"
"\n"
"List the sessions in the audit log, newest first: id, start, duration,\n"
"events, denials (enforced ones) and the agent's command line. A session\n"
"without an end is still running, or its 'agentguard run' was killed.\n"
"\n"
"Options:\n"
"  --json           one JSON object per session and line\n"
"  --state-dir DIR  where audit.db lives\n";

enum { OPT_JSON = 1 };

static const struct option options[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

/* From the session rows and their tallies: the same time at a million
 * events as at ten (ingest makes a row for every session it meets). */
static const char query[] =
	"SELECT s.id, s.start_ns, s.end_ns, s.argv, s.exit_status, s.halted, s.events,"
	" (SELECT coalesce(sum(n), 0) FROM tallies t WHERE t.session = s.id AND"
	"   t.decision = 'deny' AND t.enforced),"
	" EXISTS (SELECT 1 FROM events e WHERE e.session = s.id AND " AG_AUDIT_NOTABLE
	"   AND e.decision = 'deny' AND substr(e.reason, 1, 14) = 'session halted')"
	" FROM sessions s ORDER BY s.start_ns DESC, s.id DESC";

/* A log without tallies (one only read, never opened for writing since
 * they came): counted from the events. Sessions a guarded process started
 * without `agentguard run` may have no row of their own: they are listed
 * from their events. */
static const char query_counting[] =
	"SELECT s.id, s.start_ns, s.end_ns, s.argv, s.exit_status, s.halted,"
	" (SELECT count(*) FROM events e WHERE e.session = s.id),"
	" (SELECT count(*) FROM events e WHERE e.session = s.id AND e.decision = 'deny'"
	"   AND coalesce(e.enforced, 1)),"
	" EXISTS (SELECT 1 FROM events e WHERE e.session = s.id AND"
	"   substr(e.reason, 1, 14) = 'session halted')"
	" FROM (SELECT id, start_ns, end_ns, argv, exit_status, halted FROM sessions"
	"  UNION ALL SELECT session, min(time_ns), NULL, NULL, NULL, 0 FROM events"
	"  WHERE session NOT IN (SELECT id FROM sessions) GROUP BY session) s"
	" ORDER BY s.start_ns DESC, s.id DESC";

static void json_row(sqlite3_stmt *st, const struct cli_idents *ids)
{
	json_t *o = json_object();
	char t[64];

	json_object_set_new(o, "id", cli_json_str(cli_col(st, 0)));
	json_object_set_new(o, "start_ns", json_integer(sqlite3_column_int64(st, 1)));
	cli_fmt_rfc3339(sqlite3_column_int64(st, 1), t, sizeof t);
	json_object_set_new(o, "start", json_string(t));
	if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
		json_object_set_new(o, "end_ns", json_integer(sqlite3_column_int64(st, 2)));
		cli_fmt_rfc3339(sqlite3_column_int64(st, 2), t, sizeof t);
		json_object_set_new(o, "end", json_string(t));
	}
	cli_ident_json(o, cli_ident_of(ids, cli_col(st, 0)));
	if (cli_col(st, 3)) {
		json_t *a = json_loads(cli_col(st, 3), JSON_DECODE_ANY, NULL);
		json_object_set_new(o, "argv", json_is_array(a) ? a : cli_json_str(cli_col(st, 3)));
		if (!json_is_array(a))
			json_decref(a);
	}
	if (sqlite3_column_type(st, 4) != SQLITE_NULL)
		json_object_set_new(o, "exit_status", json_integer(sqlite3_column_int(st, 4)));
	json_object_set_new(o, "events", json_integer(sqlite3_column_int64(st, 6)));
	json_object_set_new(o, "denials", json_integer(sqlite3_column_int64(st, 7)));
	json_object_set_new(o, "halted",
			    json_boolean(sqlite3_column_int(st, 5) || sqlite3_column_int(st, 8)));
	cli_json_line(stdout, o);
	json_decref(o);
}

static void text_row(sqlite3_stmt *st)
{
	char start[64], dur[32];
	int64_t t0 = sqlite3_column_int64(st, 1);

	cli_fmt_time(t0, 1, start, sizeof start);
	start[19] = 0;   /* seconds are enough here */
	if (sqlite3_column_type(st, 2) != SQLITE_NULL)
		cli_fmt_duration(sqlite3_column_int64(st, 2) - t0, dur, sizeof dur);
	else
		snprintf(dur, sizeof dur, "no end");
	fputs("  ", stdout);
	cli_put(stdout, cli_col(st, 0));
	printf("  %-19s  %8s  %7lld  %7lld  ", start, dur,
	       (long long)sqlite3_column_int64(st, 6), (long long)sqlite3_column_int64(st, 7));
	if (sqlite3_column_int(st, 5) || sqlite3_column_int(st, 8))
		fputs("[HALTED] ", stdout);
	if (cli_col(st, 3))
		cli_put_argv(stdout, cli_col(st, 3), 80);
	else
		fputs("(started outside 'agentguard run')", stdout);
	putchar('\n');
}

static int cmd_sessions(int argc, char **argv)
{
	struct cli_opts co = { 0 };
	struct cli_db d;
	int c, status = CLI_OK, json = 0, rc;
	long n = 0;

	optind = 0;
	while ((c = cli_getopt(argc, argv, options, &co, &status)) != -1) {
		if (c == CLI_OPT_STOP)
			return status;
		if (c == OPT_JSON)
			json = 1;
	}
	if (optind < argc)
		return cli_usage("unexpected argument '%s'", argv[optind]);
	if (cli_db_open(&d, &co, CLI_DB_READ) < 0)
		return CLI_FAIL;
	sqlite3_stmt *st = cli_prepare(&d, ag_audit_has_tallies(d.db) ? query : query_counting);
	struct cli_idents *ids = json ? cli_idents_load(&d) : NULL;
	if (!st) {
		cli_idents_free(ids);
		cli_db_close(&d);
		return CLI_FAIL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!cli_col(st, 0))
			continue;
		if (!json && n == 0) {
			/* The rows' times are local: the header names the zone. */
			char now[64], head[40];
			cli_fmt_time(sqlite3_column_int64(st, 1), 1, now, sizeof now);
			const char *zone = strrchr(now, ' ');
			snprintf(head, sizeof head, "START (%s)", zone ? zone + 1 : "local");
			printf("  %-22s  %-19s  %8s  %7s  %7s  %s\n", "ID", head, "DURATION",
			       "EVENTS", "DENIALS", "AGENT");
		}
		if (json)
			json_row(st, ids);
		else
			text_row(st);
		n++;
	}
	sqlite3_finalize(st);
	cli_idents_free(ids);
	if (rc != SQLITE_DONE) {
		cli_db_error(&d, "cannot list the sessions");
		cli_db_close(&d);
		return CLI_FAIL;
	}
	if (!n && !json)
		printf("no sessions in %s yet\n", d.path);
	cli_db_close(&d);
	return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}

const struct cli_command cli_cmd_sessions = {
	.name = "sessions",
	.summary = "list sessions, newest first",
	.help = help,
	.main = cmd_sessions,
};
