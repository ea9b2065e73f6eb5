/* agentguard verify: walk the audit log's hash chains. */
#include <string.h>

#include "audit.h"
#include "cli.h"

static const char help[] =
"Usage: agentguard verify [--session ID] [--state-dir DIR]\n"
"\n"
"Check the audit log's tamper evidence: every event's hash covers the one\n"
"before it and the event's own fields, and each session records its last\n"
"hash. Names the first event that was changed, deleted or inserted.\n"
"\n"
"Options:\n"
"  --session ID     check one session (default: all)\n"
"  --state-dir DIR  where audit.db lives\n"
"\n"
"Exit status: 0 intact, 1 tampered with (or the log cannot be read).\n";

enum { OPT_SESSION = 1 };

static const struct option options[] = {
	{ "session", required_argument, NULL, OPT_SESSION },
	{ NULL, 0, NULL, 0 },
};

static int cmd_verify(int argc, char **argv)
{
	struct cli_opts co = { 0 };
	struct cli_db d;
	const char *session_arg = NULL;
	char session[256], msg[1024];
	int c, status = CLI_OK;

	optind = 0;
	while ((c = cli_getopt(argc, argv, options, &co, &status)) != -1) {
		if (c == CLI_OPT_STOP)
			return status;
		if (c == OPT_SESSION)
			session_arg = optarg;
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
	if (d.readonly)
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
