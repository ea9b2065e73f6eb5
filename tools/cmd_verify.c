/* agentguard verify: walk the audit log's hash chains. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"

static const char help[] =
"Usage: agentguard verify [--session ID] [--anchors FILE] [--state-dir DIR]\n"
"\n"
"Check the audit log's tamper evidence: every event's hash is keyed with the\n"
"state dir's key and covers the one before it and the event's own fields,\n"
"and each session records its last hash. Names the first event that was\n"
"changed, deleted or inserted. Each session's head at its end is kept in\n"
"STATE/heads, out of the session's reach: the log is checked against it, and\n"
"against heads exported elsewhere with --heads (which a log edited and\n"
"chained again, even with the key, cannot match).\n"
"\n"
"Options:\n"
"  --session ID     check one session (default: all)\n"
"  --anchors FILE   also check against what was exported off the machine: the\n"
"                   JSON Lines of `agentguard export` (every event must still\n"
"                   be in the log with the hash it was exported with; every\n"
"                   session start and end head must match) or heads lines\n"
"  --heads FILE     the same (the older name)\n"
"  --state-dir DIR  where audit.db lives\n"
"\n"
"Exit status: 0 intact, 1 tampered with (or the log cannot be read).\n";

enum { OPT_SESSION = 1, OPT_HEADS };

static const struct option options[] = {
	{ "session", required_argument, NULL, OPT_SESSION },
	{ "heads", required_argument, NULL, OPT_HEADS },
	{ "anchors", required_argument, NULL, OPT_HEADS },
	{ NULL, 0, NULL, 0 },
};

static int cmd_verify(int argc, char **argv)
{
	struct cli_opts co = { 0 };
	struct cli_db d;
	const char *session_arg = NULL, *heads_arg = NULL;
	char session[256], msg[1024];
	int c, status = CLI_OK;

	optind = 0;
	while ((c = cli_getopt(argc, argv, options, &co, &status)) != -1) {
		if (c == CLI_OPT_STOP)
			return status;
		if (c == OPT_SESSION)
			session_arg = optarg;
		if (c == OPT_HEADS)
			heads_arg = optarg;
	}
	if (optind < argc)
		return cli_usage("unexpected argument '%s'", argv[optind]);
	if (cli_db_open(&d, &co, CLI_DB_READ) < 0)
		return CLI_FAIL;
	if (session_arg && cli_find_session(&d, session_arg, session, sizeof session) < 0) {
		cli_db_close(&d);
		return CLI_FAIL;
	}

	msg[0] = 0;
	int rc = ag_audit_verify(d.db, session_arg ? session : NULL, msg, sizeof msg);
	if (rc < 0) {
		cli_err("cannot verify the audit log %s: %s", d.path, msg[0] ? msg : "unknown error");
		cli_db_close(&d);
		return CLI_FAIL;
	}
	/* The heads kept here, then the ones named. */
	long anchored = 0;
	char kept[AG_PATH_MAX + 16];
	snprintf(kept, sizeof kept, "%s/heads", d.state_dir);
	const char *files[2] = {access(kept, F_OK) == 0 ? kept : NULL, heads_arg};
	for (int i = 0; i < 2 && rc == 0; i++) {
		long n = 0;
		if (!files[i])
			continue;
		rc = ag_audit_check_heads(d.db, files[i], msg, sizeof msg, &n);
		if (rc < 0) {
			cli_err("%s", msg);
			cli_db_close(&d);
			return CLI_FAIL;
		}
		if (i == 1)
			anchored = n;
	}
	if (rc > 0) {
		/* A tampered log's ids are the tamperer's text. */
		fputs("audit log TAMPERED WITH: ", stdout);
		cli_put(stdout, msg);
		putchar('\n');
		cli_db_close(&d);
		return CLI_FAIL;
	}

	sqlite3_stmt *st = cli_prepare(&d,
		"SELECT (SELECT count(*) FROM events WHERE ?1 IS NULL OR session = ?1),"
		" (SELECT count(*) FROM (SELECT id FROM sessions WHERE ?1 IS NULL OR id = ?1"
		"  UNION SELECT session FROM events WHERE ?1 IS NULL OR session = ?1))");
	if (!st) {
		cli_db_close(&d);
		return CLI_FAIL;
	}
	sqlite3_bind_text(st, 1, session_arg ? session : NULL, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		cli_db_error(&d, "cannot count the events");
		sqlite3_finalize(st);
		cli_db_close(&d);
		return CLI_FAIL;
	}
	long long ev = sqlite3_column_int64(st, 0), ss = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	printf("audit log intact: %lld event%s in %lld session%s\n", ev, ev == 1 ? "" : "s",
	       ss, ss == 1 ? "" : "s");
	if (heads_arg)
		printf("%ld anchor%s in %s match\n", anchored, anchored == 1 ? "" : "s",
		       heads_arg);
	if (d.copy)
		printf("(checked inside a guarded session: audit.db as of its last checkpoint; "
		       "the events still in spool files were chained here, in memory: run verify "
		       "outside the session to check them once they are in the log)\n");
	else if (d.readonly)
		printf("(events still in spool files were not checked: the log was read-only)\n");
	cli_db_close(&d);
	return CLI_OK;
}

const struct cli_command cli_cmd_verify = {
	.name = "verify",
	.summary = "check the audit log's hash chains for tampering",
	.help = help,
	.main = cmd_verify,
};
