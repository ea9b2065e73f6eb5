/* Server pre-images: restore and show (see pgsnap.h). */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "pgsnap.h"

extern char **environ;

/* ---- what a record says, read strictly ----------------------------------- */

/* The connection: only these keywords, each 'quoted' (the hook writes
 * them so; anything else in a record is refused). */
struct conn {
	char host[512], port[32], user[128], dbname[128];
};

static int conn_parse(const char *s, struct conn *c)
{
	memset(c, 0, sizeof *c);
	while (*s) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		const char *eq = strchr(s, '=');
		if (!eq || eq[1] != '\'')
			return -1;
		size_t kl = (size_t)(eq - s), cap = 0;
		char *out = NULL;
		if (kl == 4 && !strncmp(s, "host", 4))
			out = c->host, cap = sizeof c->host;
		else if (kl == 4 && !strncmp(s, "port", 4))
			out = c->port, cap = sizeof c->port;
		else if (kl == 4 && !strncmp(s, "user", 4))
			out = c->user, cap = sizeof c->user;
		else if (kl == 6 && !strncmp(s, "dbname", 6))
			out = c->dbname, cap = sizeof c->dbname;
		else
			return -1;
		size_t n = 0;
		for (s = eq + 2; *s && *s != '\''; s++) {
			if (*s == '\\' && s[1])
				s++;
			if (n + 1 >= cap)
				return -1;
			out[n++] = *s;
		}
		if (*s != '\'')
			return -1;
		out[n] = 0;
		s++;
	}
	return c->dbname[0] ? 0 : -1;
}

static int ci_add(char *out, size_t cap, const char *key, const char *val)
{
	size_t n = strlen(out);

	if (!*val)
		return 0;
	if (n + strlen(key) + 2 * strlen(val) + 5 >= cap)
		return -1;
	n += (size_t)sprintf(out + n, "%s%s='", n ? " " : "", key);
	for (; *val; val++) {
		if (*val == '\'' || *val == '\\')
			out[n++] = '\\';
		out[n++] = *val;
	}
	out[n++] = '\'';
	out[n] = 0;
	return 0;
}

static int conn_string(const struct conn *c, const char *dbname, char *out, size_t cap)
{
	out[0] = 0;
	return ci_add(out, cap, "host", c->host) < 0 || ci_add(out, cap, "port", c->port) < 0 ||
	       ci_add(out, cap, "user", c->user) < 0 || ci_add(out, cap, "dbname", dbname) < 0
	       ? -1 : 0;
}

/* What it holds: a kind and names, each one or two parts, each part
 * [a-z_][a-z0-9_$]* or "quoted" (as quote_ident writes them). */
enum { W_TABLE, W_SCHEMA, W_DATABASE };
#define MAXNAMES 64

struct name {
	char part[2][128];   /* raw: schema and name, or the name alone in [1] */
};

struct what {
	int kind, n;
	struct name v[MAXNAMES];
};

static const char *ident(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	if (*s == '"') {
		for (s++; *s; s++) {
			if (*s == '"' && s[1] == '"')
				s++;
			else if (*s == '"')
				break;
			if (n + 1 >= cap)
				return NULL;
			out[n++] = *s;
		}
		if (*s != '"' || !n)
			return NULL;
		out[n] = 0;
		return s + 1;
	}
	if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
		return NULL;
	while ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '$') {
		if (n + 1 >= cap)
			return NULL;
		out[n++] = *s++;
	}
	out[n] = 0;
	return s;
}

static int what_parse(const char *s, struct what *w)
{
	memset(w, 0, sizeof *w);
	if (!strncmp(s, "table ", 6))
		w->kind = W_TABLE, s += 6;
	else if (!strncmp(s, "schema ", 7))
		w->kind = W_SCHEMA, s += 7;
	else if (!strncmp(s, "database ", 9))
		w->kind = W_DATABASE, s += 9;
	else
		return -1;
	while (*s && *s != '(') {
		if (w->n == MAXNAMES)
			return -1;
		struct name *nm = &w->v[w->n++];
		if (w->kind == W_TABLE) {
			if (!(s = ident(s, nm->part[0], sizeof nm->part[0])) || *s++ != '.')
				return -1;
		}
		if (!(s = ident(s, nm->part[1], sizeof nm->part[1])))
			return -1;
		if (*s && *s != ' ')
			return -1;
		while (*s == ' ')
			s++;
	}
	return w->n ? 0 : -1;
}

/* raw between q and q, each character of special preceded by esc: SQL
 * identifiers and literals of both servers. */
static void quote(char *out, size_t cap, const char *raw, char q, char esc, const char *special)
{
	size_t n = 0;

	out[n++] = q;
	for (; *raw && n + 3 < cap; raw++) {
		if (strchr(special, *raw))
			out[n++] = esc;
		out[n++] = *raw;
	}
	out[n++] = q;
	out[n] = 0;
}

/* "ident" and 'literal', quoted for SQL (standard_conforming_strings). */
static void qi(char *out, size_t cap, const char *raw)
{
	quote(out, cap, raw, '"', '"', "\"");
}

static void ql(char *out, size_t cap, const char *raw)
{
	quote(out, cap, raw, '\'', '\'', "'");
}

/* schema.name as SQL */
static void qname(char *out, size_t cap, const struct name *nm)
{
	char a[300], b[300];

	qi(a, sizeof a, nm->part[0]);
	qi(b, sizeof b, nm->part[1]);
	snprintf(out, cap, "%s.%s", a, b);
}

/* A dump is pg_dump's: psql meta-commands in it are only those pg_dump
 * writes (\restrict, \unrestrict, \connect, the end of COPY data). A
 * record is the session's own writing: nothing else in it is run. */
static int dump_plain(const char *file, char *why, size_t whylen)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0;
	int in_copy = 0, rc = 0;

	if (!f) {
		snprintf(why, whylen, "cannot read the pre-image: %s", strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) > 0) {
		if (in_copy) {
			in_copy = strcmp(line, "\\.\n") != 0;
			continue;
		}
		if (!strncmp(line, "COPY ", 5) && strstr(line, " FROM stdin;\n")) {
			in_copy = 1;
			continue;
		}
		if (line[0] == '\\' && strncmp(line, "\\restrict ", 10) && strncmp(line, "\\unrestrict ", 12) &&
		    strncmp(line, "\\connect ", 9)) {
			snprintf(why, whylen, "the pre-image holds a psql command pg_dump does not write: "
				 "refusing to run it");
			rc = -1;
			break;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

/* ---- running psql and pg_dump -------------------------------------------- */

/* argv with stdout into out (NULL: ours); exit status, or -1. */
static int run(char *const argv[], char *out, size_t cap)
{
	int p[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	pid_t pid;

	if (out && pipe2(p, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	if (out)
		posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (out)
		close(p[1]);
	if (e) {
		if (out)
			close(p[0]);
		errno = e;
		return -1;
	}
	size_t n = 0;
	if (out) {
		ssize_t r;
		while ((r = read(p[0], out + n, cap - 1 - n)) > 0 || (r < 0 && errno == EINTR))
			if (r > 0)
				n += (size_t)r;
		out[n] = 0;
		close(p[0]);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int psql_query(const char *conninfo, const char *q, char *out, size_t cap)
{
	char *argv[] = {"psql", "-X", "-q", "-At", "-w", "-v", "ON_ERROR_STOP=1", "-d",
			(char *)conninfo, "-c", (char *)q, NULL};
	return run(argv, out, cap);
}

/* ---- restore --------------------------------------------------------------- */

static void say(const char *verb, const struct pg_item *it, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(const char *verb, const struct pg_item *it, const char *fmt, ...)
{
	char *why = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) < 0)
		why = NULL;
	va_end(ap);
	printf("%s ", verb);
	cli_put(stdout, it->what);
	fputs(" on ", stdout);
	cli_put(stdout, it->conninfo);
	fputs(": ", stdout);
	cli_put(stdout, why ? why : fmt);
	printf(" (snapshot %s)\n", it->id);
	free(why);
}

/* What of w exists now, as pg_dump patterns ("a"."b" ...), into out. */
static int existing(const char *conninfo, const struct what *w, char *out, size_t cap)
{
	char q[16384], one[700], lit[1500];
	size_t n = 0;

	if (w->kind == W_TABLE)
		n = (size_t)snprintf(q, sizeof q, "SELECT n FROM unnest(ARRAY[");
	else
		n = (size_t)snprintf(q, sizeof q, "SELECT pg_catalog.quote_ident(%s) FROM %s WHERE %s IN (",
				     w->kind == W_SCHEMA ? "nspname" : "datname",
				     w->kind == W_SCHEMA ? "pg_catalog.pg_namespace" : "pg_catalog.pg_database",
				     w->kind == W_SCHEMA ? "nspname" : "datname");
	for (int i = 0; i < w->n && n < sizeof q - 2000; i++) {
		if (w->kind == W_TABLE)
			qname(one, sizeof one, &w->v[i]);
		else
			snprintf(one, sizeof one, "%s", w->v[i].part[1]);
		ql(lit, sizeof lit, one);
		n += (size_t)snprintf(q + n, sizeof q - n, "%s%s", i ? ", " : "", lit);
	}
	snprintf(q + n, sizeof q - n, "%s", w->kind == W_TABLE
		 ? "]::text[]) n WHERE pg_catalog.to_regclass(n) IS NOT NULL" : ")");
	if (psql_query(conninfo, q, out, cap) != 0)
		return -1;
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
	size_t l = strlen(out);
	while (l && out[l - 1] == ' ')
		out[--l] = 0;
	return 0;
}

/* What is there now, dumped into the restore's own session: restoring
 * that puts it back. 0 (kept, or nothing there), -1. */
static int keep_current(struct undo *u, const struct pg_item *it, const struct what *w,
			const struct conn *c, char *kept_id, size_t idcap)
{
	char now[8192], ci[1200], dbarg[1300];
	struct ag_snapshot s;

	kept_id[0] = 0;
	if (conn_string(c, w->kind == W_DATABASE ? "postgres" : c->dbname, ci, sizeof ci) < 0 ||
	    existing(ci, w, now, sizeof now) < 0) {
		say("failed", it, "cannot ask the server what is there now");
		return -1;
	}
	if (!now[0])
		return 0;
	if (undo_prepare(u, &s) < 0) {
		say("failed", it, "cannot keep what is there now: %s", strerror(errno));
		return -1;
	}
	char *argv[MAXNAMES + 12];
	char args[MAXNAMES][700];
	int ac = 0, na = 0;
	if (conn_string(c, w->kind == W_DATABASE ? w->v[0].part[1] : c->dbname, ci, sizeof ci) < 0)
		return -1;
	snprintf(dbarg, sizeof dbarg, "--dbname=%s", ci);
	argv[ac++] = "pg_dump";
	argv[ac++] = "--no-password";
	argv[ac++] = "--lock-wait-timeout=5000";
	argv[ac++] = dbarg;
	argv[ac++] = "-f";
	argv[ac++] = s.abs;
	if (w->kind == W_DATABASE)
		argv[ac++] = "--create";
	char copy[sizeof now], *save = NULL;
	snprintf(copy, sizeof copy, "%s", now);
	for (char *t = w->kind == W_DATABASE ? NULL : strtok_r(copy, " ", &save); t && na < MAXNAMES;
	     t = strtok_r(NULL, " ", &save)) {
		snprintf(args[na], sizeof args[na], "%s%s", w->kind == W_SCHEMA ? "--schema=" : "--table=", t);
		argv[ac++] = args[na++];
	}
	argv[ac] = NULL;
	if (run(argv, NULL, 0) != 0) {
		unlink(s.abs);
		say("failed", it, "cannot dump what is there now (pg_dump failed), so it is not "
		    "replaced");
		return -1;
	}
	struct stat st;
	if (stat(s.abs, &st) < 0)
		return -1;
	s.kind = "pgsql";
	s.path = it->conninfo;
	if (ag_fmt(s.link_target, sizeof s.link_target, "%s %s",
		   w->kind == W_TABLE ? "table" : w->kind == W_SCHEMA ? "schema" : "database",
		   now) < 0) {
		unlink(s.abs);
		say("failed", it, "the names of what is there now are too long to record, so it "
		    "is not replaced");
		return -1;
	}
	s.st.st_mode = S_IFREG | 0600;
	s.st.st_size = st.st_size;
	s.st.st_mtim = st.st_mtim;
	s.st.st_uid = getuid();
	s.st.st_gid = getgid();
	if (undo_record(u, it->conninfo, "restore replaced what was here; kept", &s) < 0) {
		unlink(s.abs);
		say("failed", it, "cannot record what it would displace, so nothing is replaced");
		return -1;
	}
	snprintf(kept_id, idcap, "%s", s.id);
	return 0;
}

/* A pre-image's dump is loaded only as the store has it (its recorded
 * sha256) and only if it holds what the server's own dump tool writes. */
static int dump_trusted(const struct pg_item *it, int (*plain)(const char *, char *, size_t))
{
	char why[300], sha[AG_HASH_HEX];

	if (!it->file || !it->sha256 || ag_sha256_file_hex(it->file, sha) < 0 ||
	    strcmp(sha, it->sha256) != 0) {
		say("failed", it, "its dump is missing from the store or was changed since");
		return -1;
	}
	if (plain(it->file, why, sizeof why) < 0) {
		say("failed", it, "%s", why);
		return -1;
	}
	return 0;
}

int pg_restore_item(struct undo *u, const struct pg_item *it, const char *to_table, int dry_run)
{
	struct conn c;
	struct what w;

	if (!it->conninfo || conn_parse(it->conninfo, &c) < 0) {
		say("failed", it, "its record names no connection agentguard can read");
		return -1;
	}
	if (!it->what || what_parse(it->what, &w) < 0) {
		say("failed", it, "its record does not say what it holds in a form agentguard reads");
		return -1;
	}
	if (dump_trusted(it, dump_plain) < 0)
		return -1;
	if (strchr(it->file, '\'') || strchr(it->file, '\n')) {
		say("failed", it, "the store's path cannot be given to psql");
		return -1;
	}
	if (to_table && (w.kind != W_TABLE || w.n != 1)) {
		say("failed", it, "--to-table restores a pre-image of one table; this one holds %d %s",
		    w.n, w.kind == W_TABLE ? "tables" : "schemas or a database");
		return -1;
	}
	if (to_table && (!*to_table || strlen(to_table) > 63)) {
		say("failed", it, "--to-table wants a table name of 1 to 63 bytes");
		return -1;
	}
	if (dry_run) {
		say("would restore", it, "%s", to_table ? "beside the original" : "moving what is there aside");
		return 0;
	}

	/* What is there now, kept where restore can bring it back. */
	char kept[AG_SNAP_ID_MAX] = "", suffix[24];
	if (!to_table && keep_current(u, it, &w, &c, kept, sizeof kept) < 0)
		return -1;
	snprintf(suffix, sizeof suffix, "%s", kept[0] ? kept : it->id);
	suffix[8] = 0;

	char script[] = "/tmp/agentguard-restore.XXXXXX";
	int fd = mkstemp(script);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
	if (!f) {
		say("failed", it, "cannot write its script: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char aside[200], aq[300], one[700], lit[1500], raw[200];
	fprintf(f, "\\set ON_ERROR_STOP 1\nSET client_min_messages = warning;\n");
	if (w.kind == W_TABLE) {
		snprintf(aside, sizeof aside, "agentguard_%s_%s", to_table ? "restore" : "displaced", suffix);
		qi(aq, sizeof aq, aside);
		fprintf(f, "BEGIN;\nCREATE SCHEMA %s;\n", aq);
		for (int i = 0; i < w.n; i++) {
			qname(one, sizeof one, &w.v[i]);
			fprintf(f, "ALTER TABLE IF EXISTS %s SET SCHEMA %s;\n", one, aq);
		}
		fprintf(f, "\\i '%s'\n", it->file);
		if (to_table) {
			char sq[300], nq[300], tq[300], newq[700], sl[700], newl[1500];
			qi(sq, sizeof sq, w.v[0].part[0]);
			qi(nq, sizeof nq, w.v[0].part[1]);
			qi(tq, sizeof tq, to_table);
			qname(one, sizeof one, &w.v[0]);
			snprintf(newq, sizeof newq, "%s.%s", sq, tq);
			ql(sl, sizeof sl, w.v[0].part[0]);
			ql(newl, sizeof newl, newq);
			ql(lit, sizeof lit, suffix);
			fprintf(f, "ALTER TABLE %s RENAME TO %s;\n", one, tq);
			/* Its indexes and sequences are named in the schema: renamed,
			 * or the original's could not come back beside them. */
			fprintf(f,
				"DO $agentguard$DECLARE r record; BEGIN FOR r IN SELECT c.relname, c.relkind "
				"FROM pg_catalog.pg_class c WHERE c.relnamespace = pg_catalog.to_regnamespace(%s) "
				"AND c.oid IN (SELECT indexrelid FROM pg_catalog.pg_index WHERE indrelid = "
				"%s::regclass UNION SELECT objid FROM pg_catalog.pg_depend WHERE refobjid = "
				"%s::regclass AND classid = 'pg_catalog.pg_class'::regclass AND deptype IN "
				"('a', 'i')) LOOP EXECUTE pg_catalog.format('ALTER %%s %%I.%%I RENAME TO %%I', "
				"CASE WHEN r.relkind = 'S' THEN 'SEQUENCE' ELSE 'INDEX' END, %s, r.relname, "
				"left(r.relname, 50) || '_' || %s); END LOOP; END$agentguard$;\n",
				sl, newl, newl, sl, lit);
			fprintf(f, "ALTER TABLE IF EXISTS %s.%s SET SCHEMA %s;\n", aq, nq, sq);
			fprintf(f, "DROP SCHEMA %s;\n", aq);
		} else {
			/* Nothing was there: no empty schema left behind. */
			ql(lit, sizeof lit, aside);
			fprintf(f, "DO $agentguard$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class "
				"WHERE relnamespace = pg_catalog.to_regnamespace(%s)) THEN EXECUTE "
				"'DROP SCHEMA ' || pg_catalog.quote_ident(%s); END IF; END$agentguard$;\n",
				lit, lit);
		}
		fprintf(f, "COMMIT;\n");
	} else {
		if (w.kind == W_SCHEMA)
			fprintf(f, "BEGIN;\n");
		for (int i = 0; i < w.n; i++) {
			snprintf(raw, sizeof raw, "%.40s_displaced_%s", w.v[i].part[1], suffix);
			char stmt[1100], stl[2300];
			qi(aq, sizeof aq, raw);
			qi(one, sizeof one, w.v[i].part[1]);
			ql(lit, sizeof lit, w.v[i].part[1]);
			snprintf(stmt, sizeof stmt, "ALTER %s %s RENAME TO %s",
				 w.kind == W_SCHEMA ? "SCHEMA" : "DATABASE", one, aq);
			ql(stl, sizeof stl, stmt);
			fprintf(f, "DO $agentguard$BEGIN IF EXISTS (SELECT 1 FROM pg_catalog.%s WHERE %s = %s) "
				"THEN EXECUTE %s; END IF; END$agentguard$;\n",
				w.kind == W_SCHEMA ? "pg_namespace" : "pg_database",
				w.kind == W_SCHEMA ? "nspname" : "datname", lit, stl);
		}
		fprintf(f, "\\i '%s'\n", it->file);
		if (w.kind == W_SCHEMA)
			fprintf(f, "COMMIT;\n");
	}
	if (fclose(f) != 0) {
		unlink(script);
		say("failed", it, "cannot write its script");
		return -1;
	}
	char ci[1200];
	if (conn_string(&c, w.kind == W_DATABASE ? "postgres" : c.dbname, ci, sizeof ci) < 0) {
		unlink(script);
		return -1;
	}
	char *argv[] = {"psql", "-X", "-q", "-w", "-d", ci, "-f", script, NULL};
	int rc = run(argv, NULL, 0);
	unlink(script);
	if (rc != 0) {
		say("failed", it, "psql could not load it (its error is above)%s", w.kind == W_DATABASE
		    ? "; a database renamed aside stays under its new name" : "; nothing was changed");
		return -1;
	}
	if (to_table)
		say("restored", it, "beside the original, as %s.%s", w.v[0].part[0], to_table);
	else if (kept[0])
		say("restored", it, "what was there is kept (moved aside, with suffix %s; and as "
		    "snapshot %s)", suffix, kept);
	else
		say("restored", it, "nothing was there");
	return 0;
}

/* ---- show ------------------------------------------------------------------ */

int pg_show(FILE *out, const char *file, long lines)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0;
	long rows = 0;
	int in_copy = 0;
	char table[600] = "";

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (!in_copy && !strncmp(line, "-- agentguard", 13)) {
			fputs(line + 3, out);
			continue;
		}
		if (!in_copy && !strncmp(line, "COPY ", 5) && strstr(line, " FROM stdin;\n")) {
			char *sp = strchr(line + 5, ' ');
			snprintf(table, sizeof table, "%.*s", sp ? (int)(sp - line - 5) : 0, line + 5);
			in_copy = 1;
			rows = 0;
			fputs("table ", out);
			cli_put(out, table);
			fputs(":\n", out);
			continue;
		}
		if (!in_copy)
			continue;
		if (!strcmp(line, "\\.\n")) {
			fprintf(out, "  %ld row%s\n", rows, rows == 1 ? "" : "s");
			in_copy = 0;
			continue;
		}
		if (rows++ < lines) {
			size_t l = strlen(line);
			if (l && line[l - 1] == '\n')
				line[l - 1] = 0;
			fputs("  | ", out);
			cli_put(out, line);
			fputc('\n', out);
		}
	}
	free(line);
	fclose(f);
	return 0;
}

/* ---- MariaDB/MySQL (kind 'mysql') ------------------------------------------
 * The record's path: "socket=PATH user=U database=D" or "host=H port=P
 * user=U database=D"; what it holds: "table `d`.`t`..." or "database `d`". A
 * dump of tables is loaded into a database of its own, then put in place
 * by one RENAME TABLE (atomic in MariaDB and MySQL), what was there moved
 * into agentguard_displaced_SUFFIX by the same statement.
 */
struct myconn {
	char where[600], port[32], user[128], db[128];
	int sock;
};

static int myconn_parse(const char *s, struct myconn *c)
{
	memset(c, 0, sizeof *c);
	const char *u = strstr(s, " user="), *d = u ? strstr(u, " database=") : NULL;
	if (!u || !d || strstr(d + 1, " user=") || strstr(d + 1, " database="))
		return -1;
	const char *wend = u;
	if (!strncmp(s, "socket=", 7)) {
		c->sock = 1;
		s += 7;
	} else if (!strncmp(s, "host=", 5)) {
		const char *p = strstr(s, " port=");
		if (!p || p > u || (size_t)(u - p - 6) >= sizeof c->port)
			return -1;
		memcpy(c->port, p + 6, (size_t)(u - p - 6));
		wend = p;
		s += 5;
	} else {
		return -1;
	}
	if ((size_t)(wend - s) >= sizeof c->where || (size_t)(d - u - 6) >= sizeof c->user ||
	    strlen(d + 10) >= sizeof c->db || !d[10])
		return -1;
	memcpy(c->where, s, (size_t)(wend - s));
	memcpy(c->user, u + 6, (size_t)(d - u - 6));
	strcpy(c->db, d + 10);
	return 0;
}

/* `a`.`b` or `a`: raw parts */
static const char *bq(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	if (*s++ != '`')
		return NULL;
	for (; *s; s++) {
		if (*s == '`' && s[1] == '`')
			s++;
		else if (*s == '`')
			break;
		if (n + 1 >= cap)
			return NULL;
		out[n++] = *s;
	}
	if (*s != '`' || !n)
		return NULL;
	out[n] = 0;
	return s + 1;
}

static int mywhat_parse(const char *s, struct what *w)
{
	memset(w, 0, sizeof *w);
	if (!strncmp(s, "table ", 6))
		w->kind = W_TABLE, s += 6;
	else if (!strncmp(s, "database ", 9))
		w->kind = W_DATABASE, s += 9;
	else
		return -1;
	while (*s) {
		if (w->n == MAXNAMES)
			return -1;
		struct name *nm = &w->v[w->n++];
		if (w->kind == W_TABLE) {
			if (!(s = bq(s, nm->part[0], sizeof nm->part[0])) || *s++ != '.')
				return -1;
		}
		if (!(s = bq(s, nm->part[1], sizeof nm->part[1])))
			return -1;
		if (*s && *s != ' ')
			return -1;
		while (*s == ' ')
			s++;
	}
	/* One database: the hook dumps one at a time. */
	for (int i = 1; w->kind == W_TABLE && i < w->n; i++)
		if (strcmp(w->v[i].part[0], w->v[0].part[0]))
			return -1;
	return w->n ? 0 : -1;
}

static void bqi(char *out, size_t cap, const char *raw)
{
	quote(out, cap, raw, '`', '`', "`");
}

static void mylit(char *out, size_t cap, const char *raw)
{
	quote(out, cap, raw, '\'', '\\', "'\\");
}

/* The client's connection arguments into argv from ac. */
static int myargs(const struct myconn *c, char *buf, size_t cap, char **argv, int ac)
{
	size_t n = 0;
	char *a = buf;

	n += (size_t)snprintf(buf + n, cap - n, "--%s=%s", c->sock ? "socket" : "host", c->where) + 1;
	argv[ac++] = a;
	if (!c->sock) {
		a = buf + n;
		n += (size_t)snprintf(buf + n, cap - n, "--port=%s", c->port) + 1;
		argv[ac++] = a;
	}
	if (c->user[0]) {
		a = buf + n;
		snprintf(buf + n, cap - n, "--user=%s", c->user);
		argv[ac++] = a;
	}
	return ac;
}

/* The client: -e q (out: its output), or with stdin from `in`. */
static int my_client(const struct myconn *c, const char *db, const char *q, const char *in,
		     char *out, size_t cap)
{
	char buf[1400];
	char *argv[16];
	int ac = 0;

	argv[ac++] = "mariadb";
	argv[ac++] = "--batch";
	argv[ac++] = "--skip-column-names";
	ac = myargs(c, buf, sizeof buf, argv, ac);
	if (db) {
		argv[ac++] = "-D";
		argv[ac++] = (char *)db;
	}
	if (q) {
		argv[ac++] = "-e";
		argv[ac++] = (char *)q;
	}
	argv[ac] = NULL;
	if (!in)
		return run(argv, out, cap);
	/* stdin from the dump */
	posix_spawn_file_actions_t fa;
	pid_t pid;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0);
	int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The dump is mariadb-dump's: no client commands (system, source, \!). */
static int mydump_plain(const char *file, char *why, size_t whylen)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;

	if (!f) {
		snprintf(why, whylen, "cannot read the pre-image: %s", strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) > 0) {
		const char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\\' || !strncasecmp(p, "system", 6) || !strncasecmp(p, "source", 6) ||
		    !strncasecmp(p, "pager", 5) || !strncasecmp(p, "tee", 3)) {
			snprintf(why, whylen, "the pre-image holds a client command mariadb-dump does not "
				 "write: refusing to run it");
			rc = -1;
			break;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

int my_restore_item(struct undo *u, const struct pg_item *it, const char *to_table, int dry_run)
{
	struct myconn c;
	struct what w;

	if (!it->conninfo || myconn_parse(it->conninfo, &c) < 0) {
		say("failed", it, "its record names no connection agentguard can read");
		return -1;
	}
	if (!it->what || mywhat_parse(it->what, &w) < 0) {
		say("failed", it, "its record does not say what it holds in a form agentguard reads");
		return -1;
	}
	if (dump_trusted(it, mydump_plain) < 0)
		return -1;
	if (to_table && (w.kind != W_TABLE || w.n != 1 || !*to_table || strlen(to_table) > 64)) {
		say("failed", it, "--to-table restores a pre-image of one table, as a name of 1 to 64 bytes");
		return -1;
	}
	if (dry_run) {
		say("would restore", it, "%s", to_table ? "beside the original" : "moving what is there aside");
		return 0;
	}
	const char *db = w.kind == W_TABLE ? w.v[0].part[0] : w.v[0].part[1];
	char dbq[300], dbl[600], q[16384], now[8192];
	bqi(dbq, sizeof dbq, db);
	mylit(dbl, sizeof dbl, db);

	/* What is there now. */
	size_t n = (size_t)snprintf(q, sizeof q, "SELECT TABLE_NAME FROM information_schema.TABLES "
				    "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'", dbl);
	if (w.kind == W_TABLE) {
		n += (size_t)snprintf(q + n, sizeof q - n, " AND TABLE_NAME IN (");
		for (int i = 0; i < w.n && n < sizeof q - 700; i++) {
			char l[300];
			mylit(l, sizeof l, w.v[i].part[1]);
			n += (size_t)snprintf(q + n, sizeof q - n, "%s%s", i ? ", " : "", l);
		}
		snprintf(q + n, sizeof q - n, ")");
	}
	if (my_client(&c, NULL, q, NULL, now, sizeof now) != 0) {
		say("failed", it, "cannot ask the server what is there now");
		return -1;
	}
	char names[MAXNAMES][130];
	int nn = 0;
	for (char *save = NULL, *l = strtok_r(now, "\n", &save); l && nn < MAXNAMES; l = strtok_r(NULL, "\n", &save))
		snprintf(names[nn++], sizeof names[0], "%s", l);

	/* Kept in the restore's own session first. */
	char kept[AG_SNAP_ID_MAX] = "", suffix[24];
	if (nn && !to_table) {
		struct ag_snapshot s;
		if (undo_prepare(u, &s) < 0) {
			say("failed", it, "cannot keep what is there now: %s", strerror(errno));
			return -1;
		}
		char buf[1400], *argv[MAXNAMES + 16];
		int ac = 0;
		argv[ac++] = "mariadb-dump";
		argv[ac++] = "--single-transaction";
		argv[ac++] = "--skip-extended-insert";
		argv[ac++] = "--skip-triggers";
		argv[ac++] = "--skip-dump-date";
		ac = myargs(&c, buf, sizeof buf, argv, ac);
		char rfile[AG_PATH_MAX + 16];
		snprintf(rfile, sizeof rfile, "--result-file=%s", s.abs);
		argv[ac++] = rfile;
		argv[ac++] = (char *)db;
		for (int i = 0; w.kind == W_TABLE && i < nn; i++)
			argv[ac++] = names[i];
		argv[ac] = NULL;
		struct stat st;
		if (run(argv, NULL, 0) != 0 || stat(s.abs, &st) < 0) {
			unlink(s.abs);
			say("failed", it, "cannot dump what is there now (mariadb-dump failed), so it is not "
			    "replaced");
			return -1;
		}
		s.kind = "mysql";
		s.path = it->conninfo;
		size_t k = (size_t)snprintf(s.link_target, sizeof s.link_target, "%s",
					    w.kind == W_TABLE ? "table" : "database");
		for (int i = 0; i < (w.kind == W_TABLE ? nn : 1); i++) {
			char a[300], b[300];
			bqi(a, sizeof a, db);
			bqi(b, sizeof b, names[i]);
			k += (size_t)snprintf(s.link_target + k, sizeof s.link_target - k, w.kind == W_TABLE
					      ? " %s.%s" : " %s", a, b);
		}
		s.st.st_mode = S_IFREG | 0600;
		s.st.st_size = st.st_size;
		s.st.st_mtim = st.st_mtim;
		s.st.st_uid = getuid();
		s.st.st_gid = getgid();
		if (undo_record(u, it->conninfo, "restore replaced what was here; kept", &s) < 0) {
			unlink(s.abs);
			say("failed", it, "cannot record what it would displace, so nothing is replaced");
			return -1;
		}
		snprintf(kept, sizeof kept, "%s", s.id);
	}
	snprintf(suffix, sizeof suffix, "%s", kept[0] ? kept : it->id);
	suffix[8] = 0;
	char stage[64], sq[100], aside[64], aq[100];
	snprintf(stage, sizeof stage, "agentguard_restore_%s", suffix);
	snprintf(aside, sizeof aside, "agentguard_displaced_%s", suffix);
	bqi(sq, sizeof sq, stage);
	bqi(aq, sizeof aq, aside);

	if (w.kind == W_DATABASE) {
		/* Its tables moved aside, then the dump makes it again. */
		n = 0;
		if (nn) {
			n = (size_t)snprintf(q, sizeof q, "CREATE DATABASE %s; RENAME TABLE ", aq);
			for (int i = 0; i < nn && n < sizeof q - 700; i++) {
				char t[300];
				bqi(t, sizeof t, names[i]);
				n += (size_t)snprintf(q + n, sizeof q - n, "%s%s.%s TO %s.%s", i ? ", " : "",
						      dbq, t, aq, t);
			}
			if (my_client(&c, NULL, q, NULL, now, sizeof now) != 0) {
				say("failed", it, "cannot move what is there aside; nothing was changed");
				return -1;
			}
		}
		if (my_client(&c, NULL, NULL, it->file, NULL, 0) != 0) {
			say("failed", it, "the client could not load it (its error is above)%s",
			    nn ? "; the tables that were there are in the aside database" : "");
			return -1;
		}
		say("restored", it, nn ? "what was there is kept (its tables in database %s; and as "
		    "snapshot %s)" : "nothing was there%s%s", nn ? aside : "", nn ? kept : "");
		return 0;
	}
	if (to_table) {
		/* Loaded into a database of its own, then renamed beside the
		 * original: a foreign key in it would still point there. */
		FILE *f = fopen(it->file, "re");
		char *line = NULL;
		size_t lc = 0;
		int fk = 0;
		while (f && !fk && getline(&line, &lc, f) > 0)
			fk = strstr(line, " FOREIGN KEY ") != NULL;
		free(line);
		if (f)
			fclose(f);
		if (fk) {
			say("failed", it, "--to-table cannot restore a table with foreign keys beside the "
			    "original (they would point elsewhere): restore it in place");
			return -1;
		}
		snprintf(q, sizeof q, "CREATE DATABASE %s", sq);
		if (my_client(&c, NULL, q, NULL, now, sizeof now) != 0 ||
		    my_client(&c, stage, NULL, it->file, NULL, 0) != 0) {
			snprintf(q, sizeof q, "DROP DATABASE IF EXISTS %s", sq);
			my_client(&c, NULL, q, NULL, now, sizeof now);
			say("failed", it, "the client could not load it (its error is above); nothing was "
			    "changed");
			return -1;
		}
		char t[300], to[300];
		bqi(t, sizeof t, w.v[0].part[1]);
		bqi(to, sizeof to, to_table);
		snprintf(q, sizeof q, "RENAME TABLE %s.%s TO %s.%s; DROP DATABASE %s", sq, t, dbq, to, sq);
		if (my_client(&c, NULL, q, NULL, now, sizeof now) != 0) {
			snprintf(q, sizeof q, "DROP DATABASE IF EXISTS %s", sq);
			my_client(&c, NULL, q, NULL, now, sizeof now);
			say("failed", it, "cannot put it in place (the error is above); nothing was changed");
			return -1;
		}
		say("restored", it, "beside the original, as %s.%s", db, to_table);
		return 0;
	}
	/* What is there moved aside by one RENAME TABLE (atomic), then the
	 * dump loaded where it was, so that its foreign keys name the tables
	 * beside it. MariaDB's DDL commits by itself: this is not one
	 * transaction, and a load that fails puts what was there back. */
	char back[16384];
	size_t bn = 0;
	if (nn) {
		n = (size_t)snprintf(q, sizeof q, "CREATE DATABASE IF NOT EXISTS %s; RENAME TABLE ", aq);
		bn = (size_t)snprintf(back, sizeof back, "DROP TABLE IF EXISTS ");
		for (int i = 0; i < nn && n < sizeof q - 700 && bn < sizeof back - 700; i++) {
			char t[300];
			bqi(t, sizeof t, names[i]);
			n += (size_t)snprintf(q + n, sizeof q - n, "%s%s.%s TO %s.%s", i ? ", " : "", dbq, t, aq, t);
			bn += (size_t)snprintf(back + bn, sizeof back - bn, "%s%s.%s", i ? ", " : "", dbq, t);
		}
		bn += (size_t)snprintf(back + bn, sizeof back - bn, "; RENAME TABLE ");
		for (int i = 0; i < nn && bn < sizeof back - 700; i++) {
			char t[300];
			bqi(t, sizeof t, names[i]);
			bn += (size_t)snprintf(back + bn, sizeof back - bn, "%s%s.%s TO %s.%s", i ? ", " : "",
					       aq, t, dbq, t);
		}
		if (my_client(&c, NULL, q, NULL, now, sizeof now) != 0) {
			say("failed", it, "cannot move what is there aside (the error is above); nothing "
			    "was changed");
			return -1;
		}
	}
	if (my_client(&c, db, NULL, it->file, NULL, 0) != 0) {
		if (nn)
			my_client(&c, NULL, back, NULL, now, sizeof now);
		say("failed", it, "the client could not load it (its error is above); what was there "
		    "was put back");
		return -1;
	}
	if (kept[0])
		say("restored", it, "what was there is kept (in database %s; and as snapshot %s)", aside, kept);
	else
		say("restored", it, "nothing was there");
	return 0;
}

int my_show(FILE *out, const char *file, long lines)
{
	FILE *f = fopen(file, "re");
	char *line = NULL;
	size_t cap = 0;
	long rows = 0;
	char table[300] = "";

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		if (!strncmp(line, "-- agentguard", 13)) {
			fputs(line + 3, out);
			continue;
		}
		if (!strncmp(line, "LOCK TABLES `", 13)) {
			char *e = strstr(line, "` WRITE;");
			snprintf(table, sizeof table, "%.*s", e ? (int)(e - line - 13) : 0, line + 13);
			rows = 0;
			fputs("table ", out);
			cli_put(out, table);
			fputs(":\n", out);
			continue;
		}
		if (!strncmp(line, "UNLOCK TABLES;", 14) && table[0]) {
			fprintf(out, "  %ld row%s\n", rows, rows == 1 ? "" : "s");
			table[0] = 0;
			continue;
		}
		if (table[0] && !strncmp(line, "INSERT INTO ", 12)) {
			if (rows++ < lines) {
				char *v = strstr(line, " VALUES ");
				size_t l = strlen(line);
				if (l && line[l - 1] == '\n')
					line[l - 1] = 0;
				fputs("  | ", out);
				cli_put(out, v ? v + 8 : line);
				fputc('\n', out);
			}
		}
	}
	free(line);
	fclose(f);
	return 0;
}
