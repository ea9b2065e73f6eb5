/* agentguard explain: what the rules would do with one operation, and why. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "launch.h"

static const char help[] =
"Usage: agentguard explain [OPTIONS] OPERATION\n"
"\n"
"Say what the rules decide for one operation, which rule decides it and why,\n"
"every rule that matched (and those an `unless:` carved it out of), and what\n"
"the mode makes of it. Nothing is run.\n"
"\n"
"Operations:\n"
"  delete PATH\n"
"  rename SRC DST\n"
"  truncate PATH\n"
"  exec [--] CMD [ARGS...]       CMD is looked up in PATH as execvp would\n"
"  connect HOST:PORT             also [IPv6]:PORT and unix:/PATH\n"
"  sql [--db DB] STATEMENT       DB: a SQLite file, or host/dbname\n"
"\n"
"Options (before the operation):\n"
"  --rules FILE      rules (default: $AGENTGUARD_RULES, else what a session\n"
"                    here would find: see agentguard-rules(5), LAYERS)\n"
"  --workspace DIR   $WORKSPACE (default: $AGENTGUARD_WORKSPACE, else the rules')\n"
"  --mode MODE       autonomous or supervised (default: $AGENTGUARD_MODE, else\n"
"                    the rules')\n"
"  --monitor         as under 'agentguard run --monitor'\n"
"  --program PROG    the program doing a delete/rename/truncate/connect/sql\n"
"                    (for rules with `program:`; looked up in PATH)\n"
"  --json            one JSON object\n"
"\n"
"Exit status: 0 the operation would go ahead (allowed, logged or snapshotted, or\n"
"refused only in monitor mode), 3 it would be asked about, 4 it would be\n"
"refused; 1 failure, 2 usage error.\n"
"\n"
"Examples:\n"
"  agentguard explain delete ~/.ssh/id_ed25519\n"
"  agentguard explain exec -- terraform destroy -auto-approve\n"
"  agentguard explain --program git delete .git/index.lock\n"
"  agentguard explain sql --db app.db 'DELETE FROM users'\n";

enum { OPT_RULES = 1, OPT_WORKSPACE, OPT_MODE, OPT_MONITOR, OPT_PROGRAM, OPT_JSON };
enum { EXPLAIN_ASK = 3, EXPLAIN_DENY = 4 };

static const struct option options[] = {
	{ "rules", required_argument, NULL, OPT_RULES },
	{ "workspace", required_argument, NULL, OPT_WORKSPACE },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "monitor", no_argument, NULL, OPT_MONITOR },
	{ "program", required_argument, NULL, OPT_PROGRAM },
	{ "json", no_argument, NULL, OPT_JSON },
	{ NULL, 0, NULL, 0 },
};

/* Storage behind the ag_op's pointers and what we learned building it. */
struct subject {
	struct ag_op op;
	char path[AG_PATH_MAX], target[AG_PATH_MAX], caller[AG_PATH_MAX];
	char addr[256], host[256], unix_path[AG_PATH_MAX];
	char database[AG_PATH_MAX];
	char *sql;
	char **argv;
	char note[AG_PATH_MAX + 256];   /* said under the decision */
	char unguarded_why[128];
};

/* ---- building the operation ---------------------------------------------- */

static int resolve(const char *p, char *out, size_t n)
{
	char home[AG_PATH_MAX];
	const char *h = getenv("HOME");

	/* The shell expands ~ only unquoted; accept it quoted too. */
	if (p[0] == '~' && (p[1] == '/' || !p[1]) && h && *h) {
		if (ag_fmt(home, sizeof home, "%s%s", h, p + 1) < 0) {
			cli_err("path too long: %s", p);
			return -1;
		}
		p = home;
	}
	if (ag_path_resolve(AT_FDCWD, p, out, n) < 0) {
		cli_err("cannot make %s absolute: %s", p, strerror(errno));
		return -1;
	}
	return 0;
}

/* What execvp would run (the exec hook's own lookup). 0 found, 1 not
 * found (out holds the name), -1 error. */
static int find_program(const char *cmd, char *out, size_t n)
{
	char found[AG_PATH_MAX];

	if (ag_launch_resolve(cmd, found, sizeof found) < 0) {
		snprintf(out, n, "%s", cmd);
		return 1;
	}
	return resolve(found, out, n) < 0 ? -1 : 0;
}

/* Whether the loader will ignore LD_PRELOAD for this program: the exec
 * hook's own check. */
static int unguarded(const char *path, char *why, size_t n)
{
	const char *w = ag_launch_unguarded(path);

	if (!w)
		return 0;
	snprintf(why, n, "%s %s", cli_base(path),
		 strcmp(w, "static") == 0 ? "is statically linked"
		 : strcmp(w, "capabilities") == 0 ? "has file capabilities"
		 : strcmp(w, "setuid") == 0 ? "is setuid" : "is setgid");
	return 1;
}

static int parse_port(const char *s, int *port)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < 0 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

static int build_connect(struct subject *s, const char *arg)
{
	struct ag_op *op = &s->op;
	const char *colon;
	char hostpart[256];

	op->port = -1;
	if (strncmp(arg, "unix:", 5) == 0) {
		if (!arg[5])
			return cli_usage("unix: needs a socket path, as in unix:/run/postgresql/.s.PGSQL.5432");
		if (ag_path_lexical(s->path, arg + 5, s->unix_path, sizeof s->unix_path) < 0)
			return cli_usage("socket path too long");
		op->unix_path = s->unix_path;
		return 0;
	}
	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');
		if (!close || close[1] != ':')
			return cli_usage("write an IPv6 address with its port as [ADDR]:PORT, not '%s'", arg);
		snprintf(hostpart, sizeof hostpart, "%.*s", (int)(close - arg - 1), arg + 1);
		colon = close + 1;
	} else {
		colon = strrchr(arg, ':');
		if (!colon)
			return cli_usage("connect wants HOST:PORT, [IPv6]:PORT or unix:/PATH, not '%s'", arg);
		if (memchr(arg, ':', (size_t)(colon - arg)))
			return cli_usage("put an IPv6 address in brackets: [%.*s]:%s",
					 (int)(colon - arg), arg, colon + 1);
		snprintf(hostpart, sizeof hostpart, "%.*s", (int)(colon - arg), arg);
	}
	if (!hostpart[0] || parse_port(colon + 1, &op->port) < 0)
		return cli_usage("connect wants HOST:PORT with a port from 0 to 65535, not '%s'", arg);

	unsigned char bin[16];
	if (inet_pton(AF_INET, hostpart, bin) == 1 || inet_pton(AF_INET6, hostpart, bin) == 1) {
		snprintf(s->addr, sizeof s->addr, "%s", hostpart);
		op->addr = s->addr;
		return 0;
	}
	/* A name: rules may match it and, through `cidr:`, its address. */
	snprintf(s->host, sizeof s->host, "%s", hostpart);
	op->host = s->host;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int rc = getaddrinfo(hostpart, NULL, &hints, &res);
	if (rc == 0 && res) {
		void *a = res->ai_family == AF_INET
			  ? (void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
			  : (void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
		if (inet_ntop(res->ai_family, a, s->addr, sizeof s->addr))
			op->addr = s->addr;
	} else {
		snprintf(s->note, sizeof s->note, "%s does not resolve here (%s): only rules on "
			 "the name can match", hostpart, gai_strerror(rc));
	}
	if (res)
		freeaddrinfo(res);
	return 0;
}

/* A SQLite file is a path; anything else is a server's host/dbname. */
static int looks_like_file(const char *db)
{
	static const char *const ext[] = { ".db", ".sqlite", ".sqlite3", ".db3" };
	struct stat st;
	size_t n = strlen(db);

	if (db[0] == '/' || db[0] == '.' || db[0] == '~' || stat(db, &st) == 0)
		return 1;
	for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
		size_t e = strlen(ext[i]);
		if (n > e && strcmp(db + n - e, ext[i]) == 0)
			return 1;
	}
	return 0;
}

static int build_sql(struct subject *s, int argc, char **argv)
{
	const char *db = NULL;
	size_t len = 0;
	int first = -1;

	for (int i = 0; i < argc; i++) {
		if (first < 0 && strcmp(argv[i], "--db") == 0) {
			if (++i >= argc)
				return cli_usage("--db needs a database: a SQLite file or host/dbname");
			db = argv[i];
		} else if (first < 0 && strncmp(argv[i], "--db=", 5) == 0) {
			db = argv[i] + 5;
		} else if (first < 0 && strcmp(argv[i], "--") == 0) {
			first = i + 1;
		} else if (first < 0) {
			first = i;
		}
	}
	if (first < 0 || first >= argc)
		return cli_usage("sql wants a statement: explain sql [--db DB] \"STATEMENT\"");
	/* Unquoted words are one statement, as the user meant. */
	for (int i = first; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if (!(s->sql = malloc(len + 1)))
		return CLI_FAIL;
	s->sql[0] = 0;
	for (int i = first; i < argc; i++) {
		if (i > first)
			strcat(s->sql, " ");
		strcat(s->sql, argv[i]);
	}
	s->op.sql = s->sql;
	s->op.sql_class = (int)ag_sql_classify(s->sql, -1);
	if (db && looks_like_file(db)) {
		if (resolve(db, s->database, sizeof s->database) < 0)
			return CLI_FAIL;
		s->op.path = s->op.database = s->database;
	} else if (db) {
		snprintf(s->database, sizeof s->database, "%s", db);
		s->op.database = s->database;
	}
	return 0;
}

static int build(struct subject *s, int argc, char **argv, const char *program)
{
	struct ag_op *op = &s->op;
	const char *what = argv[0];
	struct stat st;
	int k = ag_op_parse(what);

	op->port = -1;
	op->sql_class = -1;
	if (program) {
		if (find_program(program, s->caller, sizeof s->caller) < 0)
			return CLI_FAIL;
		op->caller = s->caller;
	}
	if (k < 0)
		return cli_usage("unknown operation '%s': use delete, rename, truncate, write, "
				 "mode, exec, connect or sql", what);
	op->kind = (enum ag_op_kind)k;
	argc--;
	argv++;
	switch (op->kind) {
	case AG_OP_DELETE:
	case AG_OP_TRUNCATE:
	case AG_OP_WRITE:
	case AG_OP_MODE:
		if (argc != 1)
			return cli_usage("%s wants one PATH%s", what,
					 argc && argv[0][0] == '-' ? " (options go before the operation)" : "");
		if (resolve(argv[0], s->path, sizeof s->path) < 0)
			return CLI_FAIL;
		op->path = s->path;
		if (lstat(s->path, &st) == 0)
			op->is_dir = op->kind == AG_OP_DELETE && S_ISDIR(st.st_mode);
		else
			snprintf(s->note, sizeof s->note, "%s does not exist now", s->path);
		return 0;
	case AG_OP_RENAME:
		if (argc != 2)
			return cli_usage("rename wants SRC and DST%s",
					 argc && argv[argc - 1][0] == '-' ? " (options go before the operation)" : "");
		if (resolve(argv[0], s->path, sizeof s->path) < 0 ||
		    resolve(argv[1], s->target, sizeof s->target) < 0)
			return CLI_FAIL;
		op->path = s->path;
		op->target = s->target;
		op->target_exists = lstat(s->target, &st) == 0;
		if (!op->target_exists)
			snprintf(s->note, sizeof s->note, "%s does not exist now: the rename "
				 "destroys nothing there", s->target);
		return 0;
	case AG_OP_EXEC:
		if (argc && strcmp(argv[0], "--") == 0) {
			argc--;
			argv++;
		}
		if (argc < 1)
			return cli_usage("exec wants a command: explain exec -- CMD [ARGS...]");
		int rc = find_program(argv[0], s->path, sizeof s->path);
		if (rc < 0)
			return CLI_FAIL;
		if (rc == 1)
			snprintf(s->note, sizeof s->note, "%s is not found in PATH (execvp would "
				 "fail with ENOENT); explained by its name", argv[0]);
		op->path = s->path;
		op->argv = (const char *const *)argv;
		s->argv = argv;
		op->unguarded = rc == 0 && unguarded(s->path, s->unguarded_why,
						     sizeof s->unguarded_why);
		return 0;
	case AG_OP_CONNECT:
		if (argc != 1)
			return cli_usage("connect wants one HOST:PORT, [IPv6]:PORT or unix:/PATH");
		if (!getcwd(s->path, sizeof s->path))
			strcpy(s->path, "/");
		int r2 = build_connect(s, argv[0]);
		s->path[0] = 0;
		return r2;
	case AG_OP_SQL:
		return build_sql(s, argc, argv);
	default:
		return cli_usage("unknown operation '%s'", what);
	}
}

/* ---- deciding and saying -------------------------------------------------- */

struct matched {
	char *rule, *reason, *why;
	const char *origin;      /* in the policy: file:line:col */
	enum ag_action action;
	int excepted;
};

struct matches {
	const struct ag_policy *p;
	struct matched *v;
	size_t n;
	int oom;
};

static char *xdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void on_match(void *ctx, const struct ag_explain_item *it)
{
	struct matches *m = ctx;
	struct matched *v = realloc(m->v, (m->n + 1) * sizeof *v);

	if (!v) {
		m->oom = 1;
		return;
	}
	m->v = v;
	/* `why` is only valid during this call. */
	v[m->n++] = (struct matched){ xdup(it->rule_id), xdup(it->reason), xdup(it->why),
				      ag_policy_rule_origin(m->p, it->rule_id), it->action,
				      it->excepted };
}

struct outcome {
	enum ag_action decision;
	int enforced;
	const char *reason;
	char effect[512];
};

static void outcome(const struct subject *s, const struct ag_verdict *v, enum ag_mode mode,
		    int enforce, struct outcome *o)
{
	const struct ag_op *op = &s->op;

	o->decision = v->action;
	o->enforced = 1;
	o->reason = v->reason;
	switch (v->action) {
	case AG_ALLOW:
		snprintf(o->effect, sizeof o->effect, "it runs untouched (recorded as allow)");
		break;
	case AG_LOG:
		snprintf(o->effect, sizeof o->effect,
			 "it runs untouched and is flagged as notable in the report");
		break;
	case AG_SNAPSHOT:
		if (op->kind == AG_OP_SQL && !op->path)
			snprintf(o->effect, sizeof o->effect, "only SQLite databases can be "
				 "snapshotted: a statement on a server database is denied instead");
		else if (op->kind == AG_OP_RENAME && !op->target_exists)
			snprintf(o->effect, sizeof o->effect, "it runs: nothing at the target "
				 "needs a snapshot");
		else if (op->kind == AG_OP_EXEC || op->kind == AG_OP_CONNECT)
			snprintf(o->effect, sizeof o->effect, "it runs (a %s has nothing to "
				 "snapshot) and is flagged in the report", ag_op_name(op->kind));
		else
			snprintf(o->effect, sizeof o->effect, "what it destroys is snapshotted "
				 "first and it runs ('agentguard restore' brings it back); if the "
				 "snapshot cannot be taken, it is denied");
		break;
	case AG_ASK:
		if (mode == AG_MODE_AUTONOMOUS) {
			o->decision = AG_DENY;
			o->reason = "needs human approval (autonomous mode never waits)";
			snprintf(o->effect, sizeof o->effect, "autonomous mode never waits for a "
				 "human: it is denied as \"needs human approval\" and the request is "
				 "recorded");
		} else {
			snprintf(o->effect, sizeof o->effect, "a human is asked on the terminal "
				 "(/dev/tty); no terminal or no answer in time means deny");
		}
		break;
	default:
		break;
	}
	if (o->decision == AG_DENY) {
		if (!enforce && !v->hard) {
			o->enforced = 0;
			snprintf(o->effect, sizeof o->effect, "monitor mode: it runs, recorded as "
				 "\"would deny\"");
		} else if (v->action == AG_DENY) {
			snprintf(o->effect, sizeof o->effect, "%s%s",
				 op->kind == AG_OP_SQL ? "the statement fails with an error from "
							 "the database client"
				 : "the call fails with EACCES",
				 !enforce ? " (even in monitor mode: the rule is hard)" : "");
		}
	}
}

static void put_op(FILE *f, const struct subject *s)
{
	const struct ag_op *op = &s->op;

	fputs(ag_op_name(op->kind), f);
	fputc(' ', f);
	switch (op->kind) {
	case AG_OP_EXEC:
		for (int i = 0; s->argv[i]; i++) {
			if (i)
				fputc(' ', f);
			cli_put_word(f, s->argv[i]);
		}
		fputs("  [", f);
		cli_put(f, op->path);
		fputc(']', f);
		break;
	case AG_OP_RENAME:
		cli_put(f, op->path);
		fputs(" -> ", f);
		cli_put(f, op->target);
		if (op->target_exists)
			fputs(" (replacing it)", f);
		break;
	case AG_OP_CONNECT:
		if (op->unix_path) {
			fputs("unix:", f);
			cli_put(f, op->unix_path);
			break;
		}
		if (op->host) {
			cli_put(f, op->host);
			if (op->addr) {
				fputs(" [", f);
				cli_put(f, op->addr);
				fputc(']', f);
			}
		} else {
			int v6 = strchr(op->addr, ':') != NULL;
			fputs(v6 ? "[" : "", f);
			cli_put(f, op->addr);
			fputs(v6 ? "]" : "", f);
		}
		fprintf(f, ":%d", op->port);
		break;
	case AG_OP_SQL:
		cli_put(f, op->sql);
		fprintf(f, "  [class %s", ag_sql_class_name((enum ag_sql_class)op->sql_class));
		if (op->database) {
			fputs(", database ", f);
			cli_put(f, op->database);
		}
		fputc(']', f);
		break;
	default:
		cli_put(f, op->path);
		if (op->is_dir)
			fputs(" (a directory)", f);
	}
}

static void text_out(const struct subject *s, const char *rules, enum ag_mode mode,
		     int enforce, const struct ag_verdict *v, const struct matches *m,
		     const struct outcome *o)
{
	printf("operation: ");
	put_op(stdout, s);
	putchar('\n');
	if (s->op.caller) {
		printf("program:   ");
		cli_put(stdout, s->op.caller);
		putchar('\n');
	}
	if (s->op.kind == AG_OP_EXEC) {
		printf("guarded:   %s", s->op.unguarded ? "no: " : "yes");
		if (s->op.unguarded)
			cli_put(stdout, s->unguarded_why);
		putchar('\n');
	}
	printf("rules:     ");
	cli_put(stdout, rules);
	printf("  (%s mode, %s)\n", mode == AG_MODE_SUPERVISED ? "supervised" : "autonomous",
	       enforce ? "enforcing" : "monitor");
	printf("\ndecision:  %s", o->decision == AG_DENY && !o->enforced ? "would deny"
			      : ag_action_name(o->decision));
	if (v->rule_id) {
		printf(" (rule ");
		cli_put(stdout, v->rule_id);
		printf("%s", v->hard ? ", hard" : "");
		if (o->reason) {
			fputs(": ", stdout);
			cli_put(stdout, o->reason);
		}
		putchar(')');
	} else {
		printf(" (no rule applies: the default for %s", ag_op_name(s->op.kind));
		if (o->reason) {
			fputs(": ", stdout);
			cli_put(stdout, o->reason);
		}
		putchar(')');
	}
	putchar('\n');
	if (o->decision != v->action)
		printf("           the rules say %s; %s\n", ag_action_name(v->action),
		       mode == AG_MODE_AUTONOMOUS && v->action == AG_ASK ? "autonomous mode turns that into deny" : "");
	printf("effect:    ");
	cli_put(stdout, o->effect);
	putchar('\n');
	if (o->decision == AG_DENY) {
		/* The line the guard writes to the agent's stderr (guard.c). */
		printf("the agent sees: agentguard: %s %s ", o->enforced ? "denied" : "would deny",
		       ag_op_name(s->op.kind));
		cli_put(stdout, s->op.path ? s->op.path : "");
		if (s->op.target) {
			fputs(" -> ", stdout);
			cli_put(stdout, s->op.target);
		}
		fputs(v->rule_id ? " (rule " : " (default for ", stdout);
		cli_put(stdout, v->rule_id ? v->rule_id : ag_op_name(s->op.kind));
		if (o->reason) {
			fputs(": ", stdout);
			cli_put(stdout, o->reason);
		}
		fputs(")\n", stdout);
	}
	if (s->note[0]) {
		printf("note:      ");
		cli_put(stdout, s->note);
		putchar('\n');
	}
	printf("\nrules that match (%zu):\n", m->n);
	if (!m->n)
		printf("  none\n");
	for (size_t i = 0; i < m->n; i++) {
		printf("  %-9s ", ag_action_name(m->v[i].action));
		cli_put(stdout, m->v[i].rule);
		if (m->v[i].origin) {
			fputs("  (", stdout);
			cli_put(stdout, m->v[i].origin);
			putchar(')');
		}
		if (m->v[i].excepted)
			fputs("  [excepted by its unless:]", stdout);
		else if (v->rule_id && m->v[i].rule && strcmp(m->v[i].rule, v->rule_id) == 0)
			fputs("  [decides]", stdout);
		if (m->v[i].why && *m->v[i].why) {
			fputs("\n            ", stdout);
			cli_put(stdout, m->v[i].why);
		}
		putchar('\n');
	}
	if (s->op.kind != AG_OP_EXEC && !s->op.caller)
		printf("\n(no --program given: `program:` matchers and `unless: {program: ...}` "
		       "see no program)\n");
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, cli_json_str(v));
}

static void json_out(const struct subject *s, const char *rules, enum ag_mode mode,
		     int enforce, const struct ag_verdict *v, const struct matches *m,
		     const struct outcome *o)
{
	const struct ag_op *op = &s->op;
	json_t *j = json_object(), *oj = json_object(), *arr = json_array();

	json_object_set_new(oj, "op", json_string(ag_op_name(op->kind)));
	set_str(oj, "path", op->kind == AG_OP_SQL ? NULL : op->path);
	set_str(oj, "target", op->target);
	if (op->kind == AG_OP_RENAME)
		json_object_set_new(oj, "target_exists", json_boolean(op->target_exists));
	if (op->kind == AG_OP_DELETE)
		json_object_set_new(oj, "is_dir", json_boolean(op->is_dir));
	if (op->kind == AG_OP_EXEC) {
		json_t *a = json_array();
		for (int i = 0; s->argv[i]; i++)
			json_array_append_new(a, cli_json_str(s->argv[i]));
		json_object_set_new(oj, "argv", a);
		json_object_set_new(oj, "unguarded", json_boolean(op->unguarded));
		if (op->unguarded)
			set_str(oj, "unguarded_why", s->unguarded_why);
	}
	set_str(oj, "host", op->host);
	set_str(oj, "address", op->addr);
	if (op->kind == AG_OP_CONNECT && op->port >= 0)
		json_object_set_new(oj, "port", json_integer(op->port));
	set_str(oj, "unix", op->unix_path);
	set_str(oj, "sql", op->sql);
	if (op->kind == AG_OP_SQL)
		json_object_set_new(oj, "sql_class",
				    json_string(ag_sql_class_name((enum ag_sql_class)op->sql_class)));
	set_str(oj, "database", op->database);
	set_str(oj, "program", op->caller);
	json_object_set_new(j, "operation", oj);
	set_str(j, "rules", rules);
	json_object_set_new(j, "mode", json_string(mode == AG_MODE_SUPERVISED ? "supervised"
										: "autonomous"));
	json_object_set_new(j, "enforce", json_boolean(enforce));
	json_object_set_new(j, "decision", json_string(o->decision == AG_DENY && !o->enforced
						       ? "would deny" : ag_action_name(o->decision)));
	json_object_set_new(j, "enforced", json_boolean(o->enforced));
	set_str(j, "rule", v->rule_id);
	set_str(j, "reason", o->reason);
	json_object_set_new(j, "hard", json_boolean(v->hard));
	json_object_set_new(j, "policy_action", json_string(ag_action_name(v->action)));
	json_object_set_new(j, "effect", json_string(o->effect));
	for (size_t i = 0; i < m->n; i++) {
		json_t *r = json_object();
		set_str(r, "rule", m->v[i].rule);
		set_str(r, "origin", m->v[i].origin);
		json_object_set_new(r, "action", json_string(ag_action_name(m->v[i].action)));
		set_str(r, "reason", m->v[i].reason);
		json_object_set_new(r, "excepted", json_boolean(m->v[i].excepted));
		set_str(r, "why", m->v[i].why);
		json_array_append_new(arr, r);
	}
	json_object_set_new(j, "matched", arr);
	set_str(j, "note", s->note[0] ? s->note : NULL);
	cli_json_line(stdout, j);
	json_decref(j);
}

static struct ag_policy *load_rules(const char *file, const char *workspace,
				    const char **name)
{
	char cwd[AG_PATH_MAX], ws[AG_PATH_MAX], err[2048];
	const char *home = getenv("HOME");
	struct ag_policy *p;

	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(getuid());
		home = pw && pw->pw_dir ? pw->pw_dir : "/";
	}
	if (!getcwd(cwd, sizeof cwd))
		strcpy(cwd, "/");
	if (!workspace || !*workspace)
		workspace = getenv("AGENTGUARD_WORKSPACE");
	if (workspace && *workspace) {
		if (ag_path_lexical(cwd, workspace, ws, sizeof ws) < 0) {
			cli_err("workspace path too long: %s", workspace);
			return NULL;
		}
		workspace = ws;
	} else {
		workspace = NULL;
	}
	struct ag_policy_env env = {
		.home = home, .workspace = workspace, .cwd = cwd, .tmpdir = getenv("TMPDIR"),
	};
	/* The rules a session started here would take (layers.c). */
	static char top[AG_PATH_MAX];
	if (!file || !*file)
		file = getenv("AGENTGUARD_RULES");
	if (ag_rules_lookup(file, workspace ? workspace : cwd, top, sizeof top) < 0) {
		cli_err("rules path too long");
		return NULL;
	}
	err[0] = 0;
	*name = strcmp(top, "builtin") == 0 ? "builtin:default.yaml" : top;
	p = ag_policy_load_file(top, &env, err, sizeof err);
	if (!p) {
		if (err[0]) {
			cli_put(stderr, err);   /* it may quote the file */
			fputc('\n', stderr);
		}
		cli_err("cannot load the rules %s%s%s", *name, err[0] ? "" : ": ",
			err[0] ? "" : strerror(errno));
	}
	return p;
}

static int cmd_explain(int argc, char **argv)
{
	struct cli_opts co = { 0 };
	const char *rules_file = NULL, *workspace = NULL, *mode_arg = NULL, *program = NULL;
	int c, status = CLI_OK, json = 0, monitor = 0;

	optind = 0;
	while ((c = cli_getopt(argc, argv, options, &co, &status)) != -1) {
		switch (c) {
		case CLI_OPT_STOP:
			return status;
		case OPT_RULES: rules_file = optarg; break;
		case OPT_WORKSPACE: workspace = optarg; break;
		case OPT_MODE:
			if (strcmp(optarg, "autonomous") && strcmp(optarg, "supervised"))
				return cli_usage("--mode is autonomous or supervised, not '%s'", optarg);
			mode_arg = optarg;
			break;
		case OPT_MONITOR: monitor = 1; break;
		case OPT_PROGRAM: program = optarg; break;
		case OPT_JSON: json = 1; break;
		}
	}
	if (optind >= argc)
		return cli_usage("name an operation: delete PATH, rename SRC DST, truncate PATH, "
				 "exec -- CMD, connect HOST:PORT or sql STATEMENT");

	struct subject *s = calloc(1, sizeof *s);
	if (!s) {
		cli_err("out of memory");
		return CLI_FAIL;
	}
	int rc = build(s, argc - optind, argv + optind, program);
	if (rc != 0) {
		free(s->sql);
		free(s);
		return rc;
	}

	const char *rules_name;
	struct ag_policy *p = load_rules(rules_file, workspace, &rules_name);
	if (!p) {
		free(s->sql);
		free(s);
		return CLI_FAIL;
	}
	enum ag_mode mode = ag_policy_mode(p);
	const char *m = mode_arg ? mode_arg : getenv("AGENTGUARD_MODE");
	if (m && strcmp(m, "supervised") == 0)
		mode = AG_MODE_SUPERVISED;
	else if (m && strcmp(m, "autonomous") == 0)
		mode = AG_MODE_AUTONOMOUS;
	const char *mon = getenv("AGENTGUARD_MONITOR");
	int enforce = ag_policy_enforce(p) && !monitor && !(mon && strcmp(mon, "1") == 0);

	struct matches ms = { .p = p };
	struct ag_verdict v;
	struct outcome o;
	ag_explain(p, &s->op, on_match, &ms, &v);
	outcome(s, &v, mode, enforce, &o);
	if (ms.oom) {
		cli_err("out of memory");
		rc = CLI_FAIL;
	} else {
		if (json)
			json_out(s, rules_name, mode, enforce, &v, &ms, &o);
		else
			text_out(s, rules_name, mode, enforce, &v, &ms, &o);
		/* A script can test the answer: what would really happen. */
		if (o.enforced && o.decision == AG_DENY)
			rc = EXPLAIN_DENY;
		else if (o.enforced && o.decision == AG_ASK)
			rc = EXPLAIN_ASK;
	}
	for (size_t i = 0; i < ms.n; i++) {
		free(ms.v[i].rule);
		free(ms.v[i].reason);
		free(ms.v[i].why);
	}
	free(ms.v);
	ag_policy_free(p);
	free(s->sql);
	free(s);
	if (fflush(stdout) != 0)
		return CLI_FAIL;
	return rc;
}

const struct cli_command cli_cmd_explain = {
	.name = "explain",
	.summary = "say what the rules decide for one operation, and why",
	.help = help,
	.main = cmd_explain,
	.in_order = 1,
};
