/*
 * sql, MySQL/MariaDB (libmariadb, libmysqlclient): mysql_query,
 * mysql_real_query, mysql_send_query.
 *
 * A denied statement is replaced by a SIGNAL that makes the server raise
 * the denial: the client reports it as any server error ("ERROR 1644
 * (45000): agentguard: denied sql ..."). A `snapshot` rule takes a
 * pre-image first (my_preimage below), and denies where it cannot.
 *
 * mysql_real_connect, mysql_select_db and mysql_close are watched only to
 * know which host and database a connection is on: the client library
 * keeps that in a struct whose layout differs between versions.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"
#include "preimage.h"
#include "wire.h"

typedef struct st_mysql MYSQL;
typedef struct st_mysql_res MYSQL_RES;

static struct {
	int (*query)(MYSQL *, const char *);
	int (*real_query)(MYSQL *, const char *, unsigned long);
	int (*send_query)(MYSQL *, const char *, unsigned long);
	MYSQL *(*real_connect)(MYSQL *, const char *, const char *, const char *, const char *,
			       unsigned int, const char *, unsigned long);
	int (*select_db)(MYSQL *, const char *);
	void (*close)(MYSQL *);
	unsigned long (*thread_id)(MYSQL *);
	int (*get_socket)(MYSQL *);
	MYSQL_RES *(*store_result)(MYSQL *);
	char **(*fetch_row)(MYSQL_RES *);
	unsigned (*num_fields)(MYSQL_RES *);
	void (*free_result)(MYSQL_RES *);
	unsigned (*errno_of)(MYSQL *);
} M;

/* Either client library; extension modules load them RTLD_LOCAL. */
static const char *const sonames[] = {"libmariadb.so.3", "libmysqlclient.so.21", NULL};

static void *lookup(const char *name)
{
	return ag_client_sym(sonames, name);
}

static void resolve(void)
{
	M.query = lookup("mysql_query");
	M.real_query = lookup("mysql_real_query");
	M.send_query = lookup("mysql_send_query");
	M.real_connect = lookup("mysql_real_connect");
	M.select_db = lookup("mysql_select_db");
	M.close = lookup("mysql_close");
	M.thread_id = lookup("mysql_thread_id");
	M.get_socket = lookup("mysql_get_socket");
	M.store_result = lookup("mysql_store_result");
	M.fetch_row = lookup("mysql_fetch_row");
	M.num_fields = lookup("mysql_num_fields");
	M.free_result = lookup("mysql_free_result");
	M.errno_of = lookup("mysql_errno");
}

static pthread_once_t resolved = PTHREAD_ONCE_INIT;
#define REAL(field) (pthread_once(&resolved, resolve), M.field)

/* `a` or `a`.`b` into q (cap bytes, NUL-terminated), backquotes doubled;
 * its length. Identifiers are at most 64 characters (sqltargets.c), so
 * cap of 300 never cuts one. */
static size_t my_quoted(char *q, size_t cap, const char *a, const char *b)
{
	const char *parts[2] = {a, b};
	size_t k = 0;

	for (int j = 0; j < 2 && parts[j]; j++) {
		if (j)
			q[k++] = '.';
		q[k++] = '`';
		for (const char *s = parts[j]; *s && k < cap - 4; s++) {
			if (*s == '`')
				q[k++] = '`';
			q[k++] = *s;
		}
		q[k++] = '`';
	}
	q[k] = 0;
	return k;
}

/* ---- which database a connection is on ------------------------------------ */

static struct conn {
	MYSQL *m;
	char host[128];
	char db[128];
	/* For a pre-image's own connections: as the client gave them. */
	char user[128], pass[256], sock[256];
	unsigned port;
} conns[64];
static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;

static void conn_note(MYSQL *m, const char *host, const char *db, int forget)
{
	pthread_mutex_lock(&conns_mu);
	struct conn *slot = NULL;
	for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++) {
		if (conns[i].m == m) {
			slot = &conns[i];
			break;
		}
		if (!slot && !conns[i].m)
			slot = &conns[i];
	}
	if (slot && forget) {
		memset(slot, 0, sizeof *slot);
	} else if (slot) {
		slot->m = m;
		if (host)
			snprintf(slot->host, sizeof slot->host, "%s", *host && host[0] != '/' ? host
				 : "localhost");
		if (db)
			snprintf(slot->db, sizeof slot->db, "%s", db);
	}
	pthread_mutex_unlock(&conns_mu);
}

/* "host/dbname"; a unix socket or an unknown host is "localhost". */
static const char *database(MYSQL *m, char *buf, size_t len)
{
	snprintf(buf, len, "localhost/?");
	pthread_mutex_lock(&conns_mu);
	for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++)
		if (conns[i].m == m)
			snprintf(buf, len, "%s/%s", conns[i].host[0] ? conns[i].host : "localhost",
				 conns[i].db[0] ? conns[i].db : "?");
	pthread_mutex_unlock(&conns_mu);
	return buf;
}

AG_EXPORT MYSQL *mysql_real_connect(MYSQL *m, const char *host, const char *user,
				    const char *pass, const char *db, unsigned int port,
				    const char *sock, unsigned long flags)
{
	MYSQL *r = REAL(real_connect)(m, host, user, pass, db, port, sock, flags);

	if (r) {
		conn_note(r, host ? host : "localhost", db ? db : "", 0);
		pthread_mutex_lock(&conns_mu);
		for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++)
			if (conns[i].m == r) {
				snprintf(conns[i].user, sizeof conns[i].user, "%s", user ? user : "");
				snprintf(conns[i].pass, sizeof conns[i].pass, "%s", pass ? pass : "");
				/* No host, or "localhost": a socket (the client's default
				 * when none is given). */
				int local = !host || !strcmp(host, "localhost");
				snprintf(conns[i].sock, sizeof conns[i].sock, "%s", !local ? ""
					 : sock ? sock : "/run/mysqld/mysqld.sock");
				conns[i].port = port;
			}
		pthread_mutex_unlock(&conns_mu);
	}
	return r;
}

AG_EXPORT int mysql_select_db(MYSQL *m, const char *db)
{
	int r = REAL(select_db)(m, db);

	if (r == 0)
		conn_note(m, NULL, db, 0);
	return r;
}

AG_EXPORT void mysql_close(MYSQL *m)
{
	conn_note(m, NULL, NULL, 1);
	ag_sql_gone(m);
	REAL(close)(m);
}

#define MAXT 32

/* ---- pre-images ------------------------------------------------------------
 * As for PostgreSQL (sql_pq.c): the names the text destroys, resolved in
 * the connection's current database, with every table whose foreign keys
 * reach them, their sizes charged to snapshots.max_bytes, then
 * mariadb-dump of exactly that into the store, through connections of
 * its own with the client's socket or host and port, user and password
 * (the one given to mysql_real_connect; MYSQL_PWD and ~/.my.cnf are read
 * by the tools themselves). The catalog is read by the `mariadb` client
 * as a child: on the wire path the client's own connection is in the
 * middle of sending, and cannot be asked anything.
 */
struct my_pre {
	const char *text;
	size_t text_len;
	char host[128], sock[256], user[128], pass[256], db[128];
	unsigned port;
};

/* The tools, from where packages put them: never the agent's PATH. */
static const char *tool(const char *const *names)
{
	for (; *names; names++)
		if (access(*names, X_OK) == 0)
			return *names;
	return NULL;
}
static const char *const client_bins[] = {"/usr/bin/mariadb", "/usr/bin/mysql", NULL};
static const char *const dump_bins[] = {"/usr/bin/mariadb-dump", "/usr/bin/mysqldump", NULL};

/* A 'string' for MySQL: quotes and backslashes escaped. */
static int my_lit(char *out, size_t cap, const char *s)
{
	size_t n = strlen(out);

	if (n + 2 * strlen(s) + 4 >= cap)
		return -1;
	out[n++] = '\'';
	for (; *s; s++) {
		if (*s == '\'' || *s == '\\')
			out[n++] = '\\';
		out[n++] = *s;
	}
	out[n++] = '\'';
	out[n] = 0;
	return 0;
}

struct my_buf {
	char conn[4][300];         /* --socket= / --host= --port=, --user= */
	char *argv[MAXT + 24];
	char args[MAXT][200];
	char e_pass[300], e_home[1024];
	char *envp[8];
	char q[8192], out[8192], in[4096];
	char names[MAXT][65];
	char what[2600], head[2900], stmt[240], err[600], ci[900];
};

static int my_conn_args(const struct my_pre *p, struct my_buf *b, char **argv, int ac)
{
	if (p->sock[0]) {
		snprintf(b->conn[0], sizeof b->conn[0], "--socket=%s", p->sock);
		argv[ac++] = b->conn[0];
	} else {
		snprintf(b->conn[0], sizeof b->conn[0], "--host=%s", p->host[0] ? p->host : "localhost");
		snprintf(b->conn[1], sizeof b->conn[1], "--port=%u", p->port ? p->port : 3306);
		argv[ac++] = b->conn[0];
		argv[ac++] = b->conn[1];
	}
	if (p->user[0]) {
		snprintf(b->conn[2], sizeof b->conn[2], "--user=%s", p->user);
		argv[ac++] = b->conn[2];
	}
	return ac;
}

static void my_env(const struct my_pre *p, struct my_buf *b)
{
	int ec = 0;
	const char *home = getenv("HOME"), *pw = p->pass[0] ? p->pass : getenv("MYSQL_PWD");

	b->envp[ec++] = "PATH=/usr/bin:/bin";
	b->envp[ec++] = "LC_ALL=C";
	if (pw && snprintf(b->e_pass, sizeof b->e_pass, "MYSQL_PWD=%s", pw) < (int)sizeof b->e_pass)
		b->envp[ec++] = b->e_pass;
	if (home && snprintf(b->e_home, sizeof b->e_home, "HOME=%s", home) < (int)sizeof b->e_home)
		b->envp[ec++] = b->e_home;
	b->envp[ec] = NULL;
}

/* Run the client with -e q; its output lines in b->out. 0 or -1. */
static int my_catalog(const struct my_pre *p, struct my_buf *b)
{
	const char *bin = tool(client_bins);
	char *argv[16];
	int ac = 0;

	if (!bin)
		return -1;
	argv[ac++] = (char *)bin;
	argv[ac++] = "--batch";
	argv[ac++] = "--skip-column-names";
	ac = my_conn_args(p, b, argv, ac);
	argv[ac++] = "-e";
	argv[ac++] = b->q;
	argv[ac] = NULL;
	return ag_preimage_capture(argv, b->envp, b->out, sizeof b->out, b->err, sizeof b->err);
}

static int my_preimage_in(struct ag_call *c, struct my_pre *p, struct my_buf *b)
{
	struct ag_snapshot *snap = &c->w->snap;
	struct ag_sql_targets T;
	int n = 0, ndb = 0;
	const char *db = NULL;

	ag_sql_targets(p->text, (long)p->text_len, 1, &T);
	if (T.unknown || !T.n)
		return pre_fail(c, "agentguard cannot tell from the text which tables it destroys, "
				"so it cannot take their pre-image first: denied");
	for (int i = 0; i < T.n; i++) {
		const char *d = T.t[i].kind == AG_TARGET_DATABASE ? T.t[i].name
			      : T.t[i].schema[0] ? T.t[i].schema : p->db;
		ndb += T.t[i].kind == AG_TARGET_DATABASE;
		if (!d[0])
			return pre_fail(c, "it names a table without a database, and the connection "
					"has none selected: no pre-image can be taken, denied");
		if (db && strcmp(db, d))
			return pre_fail(c, "it destroys tables of more than one database, and a "
					"pre-image is of one: run the statements one at a time");
		db = d;
	}
	if (ndb && T.n > 1)
		return pre_fail(c, "it destroys a database and more: run the statements one at a time");
	for (const char *q = db; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == '\\' || *q == 0x7f)
			return pre_fail(c, "its database's name holds control characters or a backslash, "
					"which a pre-image cannot carry safely: denied");
	my_env(p, b);

	/* What exists, and what reaches it by foreign keys, until nothing new. */
	if (!ndb)
		for (int i = 0; i < T.n; i++)
			snprintf(b->names[n++], sizeof b->names[0], "%s", T.t[i].name);
	int have = ndb ? 1 : 0;
	for (int round = 0; !ndb && round < 8; round++) {
		b->q[0] = 0;
		char lits[4096] = "", dbl[300] = "";
		for (int i = 0; i < n; i++) {
			if (i)
				strcat(lits, ",");
			if (my_lit(lits, sizeof lits, b->names[i]) < 0)
				return pre_fail(c, "too many names to resolve for a pre-image");
		}
		my_lit(dbl, sizeof dbl, db);
		/* A query cut short could ask about fewer tables: refused instead. */
		if (ag_fmt(b->q, sizeof b->q,
			   "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
			   "TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME IN (%s) UNION SELECT TABLE_NAME FROM "
			   "information_schema.REFERENTIAL_CONSTRAINTS WHERE UNIQUE_CONSTRAINT_SCHEMA = %s "
			   "AND REFERENCED_TABLE_NAME IN (%s) AND CONSTRAINT_SCHEMA = %s", dbl, lits, dbl,
			   lits, dbl) < 0)
			return pre_fail(c, "too many names to resolve for a pre-image");
		if (my_catalog(p, b) < 0)
			return pre_fail(c, "agentguard could not look up what it destroys on the server "
					"(%s), so no pre-image was taken: denied", b->err[0] ? b->err : "no mariadb client");
		int m = 0;
		char got[MAXT][65];
		for (char *save = NULL, *line = strtok_r(b->out, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			if (m == MAXT || strlen(line) >= sizeof got[0])
				return pre_fail(c, "its pre-image names too many tables");
			/* The client prints a backslash, tab or line break in a name
			 * escaped; such a name cannot be carried safely. */
			if (strchr(line, '\\') || strchr(line, '\t'))
				return pre_fail(c, "a name it destroys holds control characters or a "
						"backslash, which a pre-image cannot carry safely: denied");
			snprintf(got[m++], sizeof got[0], "%s", line);
		}
		int same = m == have;
		have = m;
		memcpy(b->names, got, sizeof got[0] * (size_t)m);
		n = m;
		if (same || !m)
			break;
	}
	if (!have)
		return 1;   /* none of it exists: nothing is destroyed */

	/* Its size, charged first. */
	char dbl[300] = "";
	my_lit(dbl, sizeof dbl, db);
	if (ndb) {
		snprintf(b->q, sizeof b->q, "SELECT COUNT(*), COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) "
			 "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", dbl);
		snprintf(b->q + strlen(b->q), sizeof b->q - strlen(b->q), " HAVING (SELECT COUNT(*) FROM "
			 "information_schema.SCHEMATA WHERE SCHEMA_NAME = %s) > 0", dbl);
	} else {
		char lits[4096] = "";
		for (int i = 0; i < n; i++) {
			if (i)
				strcat(lits, ",");
			my_lit(lits, sizeof lits, b->names[i]);
		}
		snprintf(b->q, sizeof b->q, "SELECT COUNT(*), COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) "
			 "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN (%s)",
			 dbl, lits);
	}
	if (my_catalog(p, b) < 0)
		return pre_fail(c, "agentguard could not look up what it destroys on the server (%s): "
				"denied", b->err);
	if (!b->out[0])
		return 1;   /* no such database */
	long long est = strtoll(strchr(b->out, '\t') ? strchr(b->out, '\t') + 1 : "0", NULL, 10);

	/* what: "table `db`.`t` ..." or "database `db`" */
	size_t wn = (size_t)snprintf(b->what, sizeof b->what, "%s", ndb ? "database" : "table");
	for (int i = 0; i < (ndb ? 1 : n); i++) {
		char q[300];
		size_t k = my_quoted(q, sizeof q, db, ndb ? NULL : b->names[i]);
		if (wn + k + 2 >= sizeof b->what)
			return pre_fail(c, "its pre-image names too many tables");
		wn += (size_t)snprintf(b->what + wn, sizeof b->what - wn, " %s", q);
	}
	if (ag_snapshot_charge(est) < 0) {
		if (errno == EDQUOT)
			return pre_fail(c, "its pre-image (%s, about %lld MB) would exceed the session's "
					"snapshots.max_bytes, and nothing is destroyed without one: denied "
					"(ask a human to run it, or to raise the budget)", b->what, est >> 20);
		return pre_fail(c, "the session's snapshot budget cannot be kept (%s)", strerror(errno));
	}
	if (ag_preimage_store(snap, "mysql") < 0) {
		ag_snapshot_charge(-est);
		return -1;
	}
	const char *bin = tool(dump_bins);
	if (!bin) {
		ag_snapshot_charge(-est);
		return pre_fail(c, "no mariadb-dump is installed, so no pre-image can be taken: denied");
	}
	int ac = 0;
	char **argv = b->argv;
	argv[ac++] = (char *)bin;
	argv[ac++] = "--single-transaction";
	argv[ac++] = "--skip-extended-insert";   /* a row a line: show counts them */
	argv[ac++] = "--skip-triggers";          /* they would keep restore's rename from crossing databases */
	argv[ac++] = "--skip-dump-date";
	ac = my_conn_args(p, b, argv, ac);
	if (ndb)
		argv[ac++] = "--databases";
	argv[ac++] = (char *)db;
	for (int i = 0; !ndb && i < n; i++)
		argv[ac++] = b->names[i];
	argv[ac] = NULL;
	size_t sn = 0;
	for (size_t i = 0; i < p->text_len && sn < sizeof b->stmt - 1; i++)
		/* On the dump's first line, a comment: no line break, and no
		 * backslash a client could take for one of its commands. */
		b->stmt[sn++] = p->text[i] == '\n' || p->text[i] == '\r' ? ' ' : p->text[i] == '\\' ? '/' : p->text[i];
	b->stmt[sn] = 0;
	snprintf(b->head, sizeof b->head, "-- agentguard pre-image %s: %s, before: %s\n", snap->id,
		 b->what, b->stmt);
	long bytes = ag_preimage_run(snap, argv, b->envp, b->head, b->err, sizeof b->err);
	if (bytes < 0) {
		ag_snapshot_charge(-est);
		if (bytes == -1)
			return -1;
		for (char *q = b->err; *q; q++)
			if (*q == '\n')
				*q = ' ';
		return pre_fail(c, "its pre-image could not be taken (%s), and nothing is destroyed "
				"without one: denied", b->err);
	}
	if (ag_snapshot_charge(bytes - est) < 0 && bytes > est) {
		unlink(snap->abs);
		return pre_fail(c, "its pre-image (%s, %ld MB) exceeds the session's "
				"snapshots.max_bytes: denied", b->what, bytes >> 20);
	}
	/* The record's path: the connection (no password); stage/ is done with. */
	b->ci[0] = 0;
	size_t k = 0;
	if (p->sock[0])
		k += (size_t)snprintf(b->ci + k, sizeof b->ci - k, "socket=%s", p->sock);
	else
		k += (size_t)snprintf(b->ci + k, sizeof b->ci - k, "host=%s port=%u",
				      p->host[0] ? p->host : "localhost", p->port ? p->port : 3306);
	snprintf(b->ci + k, sizeof b->ci - k, " user=%s database=%s", p->user[0] ? p->user : "", db);
	snprintf(snap->stage, sizeof snap->stage, "%s", b->ci);
	snap->path = snap->stage;
	snprintf(snap->link_target, sizeof snap->link_target, "%s", b->what);
	snap->st.st_mode = S_IFREG | 0600;
	snap->st.st_size = bytes;
	int64_t now = ag_now_ns();
	snap->st.st_mtim.tv_sec = snap->st.st_atim.tv_sec = now / 1000000000;
	snap->st.st_uid = getuid();
	snap->st.st_gid = getgid();
	return 0;
}

static int my_preimage(struct ag_call *c, void *arg)
{
	struct my_buf *b = malloc(sizeof *b);
	if (!b)
		return -1;
	int rc = my_preimage_in(c, arg, b);
	int e = errno;
	free(b);
	errno = e;
	return rc;
}

/* A library connection's parameters, as mysql_real_connect had them. */
static void pre_of_conn(MYSQL *m, struct my_pre *p)
{
	pthread_mutex_lock(&conns_mu);
	for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++)
		if (conns[i].m == m) {
			snprintf(p->host, sizeof p->host, "%s", conns[i].host);
			snprintf(p->sock, sizeof p->sock, "%s", conns[i].sock);
			snprintf(p->user, sizeof p->user, "%s", conns[i].user);
			snprintf(p->pass, sizeof p->pass, "%s", conns[i].pass);
			snprintf(p->db, sizeof p->db, "%s", conns[i].db);
			p->port = conns[i].port;
		}
	pthread_mutex_unlock(&conns_mu);
}

/* ---- deciding ------------------------------------------------------------ */

/* The statement the server runs instead: it raises the denial. */
static void raising(const struct ag_call *c, char *sql, size_t len)
{
	char line[1024], clean[129];
	size_t n = 0;

	/* MESSAGE_TEXT holds 128 characters: the rule and reason first (the
	 * client shows the statement itself); quotes and backslashes dropped
	 * so the message cannot end the string. */
	snprintf(line, sizeof line, "agentguard denied this (rule %s): %s",
		 c->rule ? c->rule : "default", c->reason ? c->reason : "not allowed");
	for (const char *p = line; *p && n < sizeof clean - 1; p++)
		if (*p != '\'' && *p != '\\')
			clean[n++] = *p;
	clean[n] = 0;
	snprintf(sql, len, "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'", clean);
}

/* A connection's session: the server's thread id (an automatic reconnect
 * is another session, without the temporary tables of the first). */
static long session_of(MYSQL *m)
{
	return M.thread_id ? (long)M.thread_id(m) : -1;
}

size_t ag_my_show_create(char *q, size_t cap, const struct ag_sql_target *t, int bounded)
{
	/* A real table another session holds an exclusive lock on would make
	 * the question wait for lock_wait_timeout (a day by default): MariaDB
	 * can bound one statement's wait; MySQL cannot say so (a syntax
	 * error, 1064), and is asked plainly. */
	size_t n = (size_t)snprintf(q, cap, "%sSHOW CREATE TABLE ",
				    bounded ? "SET STATEMENT lock_wait_timeout = 2 FOR " : "");
	return n + (t->schema[0] ? my_quoted(q + n, cap - n, t->schema, t->name)
				 : my_quoted(q + n, cap - n, t->name, NULL));
}

/* The server agrees that every table the statement names is one of the
 * connection's temporary tables (asked on the connection itself, which
 * is idle between the client's statements: SHOW CREATE TABLE says
 * TEMPORARY for one the session holds, and it shadows any real table of
 * the name). The memory of what the connection made can be wrong: a
 * procedure, trigger or prepared statement may have dropped the
 * temporary table out of sight, and DROP TABLE would then drop the real
 * table behind the name. 1, or 0 (then the statement is judged as the
 * text alone reads). */
static int temps_real(MYSQL *m, const char *sql, size_t len)
{
	if (!M.real_query || !M.store_result || !M.fetch_row || !M.num_fields || !M.free_result)
		return 0;
	/* Client threads may run on small stacks. */
	struct ag_sql_targets *T = malloc(sizeof *T);
	if (!T)
		return 0;
	ag_sql_targets(sql, (long)len, 1, T);
	int ok = !T->unknown && T->n > 0;
	int sv = ag_sql_enter();
	for (int i = 0; ok && i < T->n; i++) {
		const struct ag_sql_target *t = &T->t[i];
		char q[400];
		if (t->kind != AG_TARGET_TABLE) {
			ok = 0;
			break;
		}
		size_t n = ag_my_show_create(q, sizeof q, t, 1);
		int rc = M.real_query(m, q, (unsigned long)n);
		if (rc != 0 && M.errno_of && M.errno_of(m) == AG_MY_PARSE_ERROR)
			rc = M.real_query(m, q, (unsigned long)ag_my_show_create(q, sizeof q, t, 0));
		if (rc != 0) {
			ok = 0;
			break;
		}
		MYSQL_RES *r = M.store_result(m);
		char **row = r ? M.fetch_row(r) : NULL;
		ok = row && M.num_fields(r) >= 2 && row[1] &&
		     strncmp(row[1], "CREATE TEMPORARY TABLE", 22) == 0;
		if (r)
			M.free_result(r);
	}
	ag_sql_leave(sv);
	free(T);
	return ok;
}

/* One body for the three: judge `sql`, then the real call (inside the
 * judged statement's scope: the library's own send() of it is that
 * statement) or, when refused, the raising statement the same way.
 * Read against the connection's temporary tables (lib/guard.c); what it
 * leaves is kept when the call returns 0: mysql_real_query's 0 means it
 * ran. mysql_send_query's outcome comes later, unseen here: the next
 * statement finds it still waiting, and the connection stops learning.
 * (The wire path, below, does not learn either: its outcome is in a
 * reply the guard does not read.) */
#define MY_BODY(field, sql, len, real_args, refused_call, sync)                     \
	struct ag_call c;                                                       \
	char db_[300], instead_[400];                                           \
	if (!(sql) || ag_thread.in_sql)                                            \
		return REAL(field) real_args;                                   \
	ag_begin(&c, AG_OP_SQL);                                                \
	pthread_once(&resolved, resolve);                                       \
	long gen_ = session_of(m);                                              \
	if (M.get_socket) /* the library's own socket: judged here, not on it */ \
		ag_wire_forget(M.get_socket(m));                                \
	ag_set_sql_on(&c, sql, len, database(m, db_, sizeof db_), m, gen_, AG_TEMPS_SENT); \
	if (c.sql_alone != (int)c.op.sql_class && !temps_real(m, sql, len))     \
		c.op.sql_class = c.sql_alone; /* the server must agree */       \
	struct my_pre pre_;                                                     \
	memset(&pre_, 0, sizeof pre_);                                          \
	pre_.text = (sql);                                                      \
	pre_.text_len = (len);                                                  \
	pre_of_conn(m, &pre_);                                                  \
	c.snap_fn = my_preimage;                                                \
	c.snap_arg = &pre_;                                                     \
	int refused_ = ag_check(&c) < 0;                                        \
	if (refused_)                                                           \
		/* Its error reaches the client where the real one's would. */ \
		raising(&c, instead_, sizeof instead_);                         \
	int sv_ = ag_sql_enter();                                               \
	int r_ = refused_ ? (refused_call) : M.field real_args;                 \
	ag_sql_leave(sv_);                                                      \
	if (refused_ || (sync))                                                 \
		ag_sql_ran(m, gen_, NULL, !refused_ && r_ == 0, 0);             \
	return refused_ ? ag_refuse_status(&c, r_) : ag_end_status(&c, r_);

AG_HOOK_VIA(REAL(query), int, mysql_query, (MYSQL *m, const char *q), (m, q))
{
	MY_BODY(query, q, q ? strlen(q) : 0, (m, q), M.query(m, instead_), 1)
}

AG_HOOK_VIA(REAL(real_query), int, mysql_real_query, (MYSQL *m, const char *q, unsigned long len), (m, q, len))
{
	MY_BODY(real_query, q, len, (m, q, len),
		M.real_query(m, instead_, (unsigned long)strlen(instead_)), 1)
}

AG_HOOK_VIA(REAL(send_query), int, mysql_send_query, (MYSQL *m, const char *q, unsigned long len), (m, q, len))
{
	MY_BODY(send_query, q, len, (m, q, len),
		M.send_query(m, instead_, (unsigned long)strlen(instead_)), 0)
}

/* A statement read on the wire by wire.c (mysql2, and the mariadb
 * client). A refused COM_STMT_PREPARE is replaced by the prepare of the
 * same SIGNAL: the prepare succeeds with no parameters, and its execution
 * raises the denial. */
int ag_my_wire_judge(struct ag_call *c, const struct ag_wire_peer *p, const char *sql, size_t len,
		     int parse, const char *refuse, const struct ag_sql_temps *held, char *db,
		     size_t dblen, char *instead, size_t ilen)
{
	struct my_pre pre;

	(void)parse;
	memset(&pre, 0, sizeof pre);
	pre.text = sql;
	pre.text_len = len;
	if (p->unix_path[0])
		snprintf(pre.sock, sizeof pre.sock, "%s", p->unix_path);
	snprintf(pre.host, sizeof pre.host, "%s", p->addr);
	pre.port = p->port;
	snprintf(pre.user, sizeof pre.user, "%s", p->user);
	snprintf(pre.db, sizeof pre.db, "%s", p->db);
	ag_set_sql(c, sql, len, ag_wire_database(p, db, dblen), 0);
	ag_sql_held(c, held);
	c->snap_fn = my_preimage;
	c->snap_arg = &pre;   /* used only inside ag_check */
	if (refuse)
		ag_check_refuse(c, "agentguard-wire", refuse);
	else if (ag_check(c) == 0)
		return 0;
	raising(c, instead, ilen);
	return 1;
}

/* ---- the wire ------------------------------------------------------------
 * Debian's `mariadb` client carries its own copy of the client library:
 * its mysql_real_query never passes through a hook. What it cannot avoid
 * is libc's send(). A COM_QUERY packet is [3-byte length][sequence 0]
 * [0x03][SQL]; a whole one in a single send, on a stream socket, whose
 * payload reads as text, is judged here. (Clients using the shared library
 * were judged in mysql_real_query already: the guard's depth flag lets
 * their send pass.)
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#define real_send AG_REAL(send)

static int stream_socket(int fd)
{
	int type;
	socklen_t tl = sizeof type;

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM;
}

/* The start of a COM_QUERY packet: its payload length, else 0. (A NUL
 * inside the statement is legal SQL text to the server: it does not make
 * the packet anything else.) */
static size_t com_query(const unsigned char *b, size_t len)
{
	if (len < 6 || b[3] != 0 || b[4] != 0x03)
		return 0;
	return (size_t)(b[0] | b[1] << 8 | b[2] << 16);
}

/* A query longer than one send() arrives in pieces: keep them until the
 * packet is whole, then judge all of it. Judging the first piece alone
 * would let a statement hide past its end. */
static struct pending {
	int fd;
	unsigned char *buf;
	size_t have, want;
} pending[8];
static pthread_mutex_t pending_mu = PTHREAD_MUTEX_INITIALIZER;
/* How many are held: 0 nearly always, so other programs' sends never
 * touch the lock. */
static int npending;

static struct pending *pending_for(int fd)
{
	for (size_t i = 0; i < sizeof pending / sizeof pending[0]; i++)
		if (pending[i].buf && pending[i].fd == fd)
			return &pending[i];
	return NULL;
}

/* Which database each connection is on, learned from the wire: the
 * handshake response when it names one, COM_INIT_DB when the client
 * switches (`USE db`). */
static struct {
	int fd;
	char db[64];
	char user[64];   /* from the handshake response */
} wire_db[16];
static pthread_mutex_t wire_db_mu = PTHREAD_MUTEX_INITIALIZER;

static void wire_db_set(int fd, const unsigned char *db, size_t len, const char *user)
{
	if (len >= sizeof wire_db[0].db || memchr(db, 0, len))
		return;
	pthread_mutex_lock(&wire_db_mu);
	size_t slot = 0;
	for (size_t i = 0; i < sizeof wire_db / sizeof wire_db[0]; i++) {
		if (wire_db[i].fd == fd + 1) {
			slot = i;
			break;
		}
		if (!wire_db[i].fd)
			slot = i;
	}
	wire_db[slot].fd = fd + 1;   /* +1: zero means free */
	memcpy(wire_db[slot].db, db, len);
	wire_db[slot].db[len] = 0;
	if (user)
		snprintf(wire_db[slot].user, sizeof wire_db[slot].user, "%s", user);
	pthread_mutex_unlock(&wire_db_mu);
}

static void wire_db_get(int fd, char *out, size_t len, char *user, size_t ulen)
{
	snprintf(out, len, "?");
	if (user)
		user[0] = 0;
	pthread_mutex_lock(&wire_db_mu);
	for (size_t i = 0; i < sizeof wire_db / sizeof wire_db[0]; i++)
		if (wire_db[i].fd == fd + 1) {
			if (wire_db[i].db[0])
				snprintf(out, len, "%s", wire_db[i].db);
			if (user)
				snprintf(user, ulen, "%s", wire_db[i].user);
		}
	pthread_mutex_unlock(&wire_db_mu);
}

/* Client packets that name a database. */
static void wire_note_db(int fd, const unsigned char *b, size_t len)
{
	size_t payload = len >= 4 ? (size_t)(b[0] | b[1] << 8 | b[2] << 16) : 0;

	if (!payload || payload + 4 != len)
		return;
	const unsigned char *p = b + 4, *end = b + len;
	if (b[3] == 0 && p[0] == 0x02) {                /* COM_INIT_DB */
		wire_db_set(fd, p + 1, payload - 1, NULL);
		return;
	}
	if (b[3] != 1 || payload < 33)                  /* handshake response */
		return;
	uint32_t caps = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			(uint32_t)p[3] << 24;
	if (!(caps & 0x200))                            /* CLIENT_PROTOCOL_41 */
		return;
	p += 32;
	const unsigned char *user_end = memchr(p, 0, (size_t)(end - p));
	if (!user_end)
		return;
	char user[64] = "";
	if ((size_t)(user_end - p) < sizeof user)
		memcpy(user, p, (size_t)(user_end - p));
	p = user_end + 1;
	if (caps & 0x200000) {                          /* length-encoded auth data */
		if (p >= end || *p >= 0xfb)
			return;
		p += 1 + *p;
	} else if (caps & 0x8000) {                     /* secure connection */
		if (p >= end)
			return;
		p += 1 + *p;
	} else {
		const unsigned char *z = memchr(p, 0, (size_t)(end - p));
		if (!z)
			return;
		p = z + 1;
	}
	const unsigned char *z = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
	if ((caps & 0x8) && z)                          /* CLIENT_CONNECT_WITH_DB */
		wire_db_set(fd, p, (size_t)(z - p), user);
	else
		wire_db_set(fd, (const unsigned char *)"", 0, user);
}

/* "host/db": the peer, "localhost" for a unix socket. */
static const char *peer(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char host[INET6_ADDRSTRLEN] = "localhost";

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
	}
	char db[64];
	wire_db_get(fd, db, sizeof db, NULL, 0);
	snprintf(buf, len, "%s/%s", host, db);
	return buf;
}

/* A wire connection's parameters: the peer (a socket's path, or address
 * and port), the user and database the handshake named. The password is
 * not on the wire: the tools find it where the client did (MYSQL_PWD,
 * ~/.my.cnf). */
static void pre_of_fd(int fd, struct my_pre *p)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_UNIX) {
			struct sockaddr_un *un = (struct sockaddr_un *)&ss;
			if (sl > offsetof(struct sockaddr_un, sun_path) && un->sun_path[0])
				snprintf(p->sock, sizeof p->sock, "%.*s",
					 (int)(sl - offsetof(struct sockaddr_un, sun_path)), un->sun_path);
		} else if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, p->host, sizeof p->host);
			p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, p->host, sizeof p->host);
			p->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	wire_db_get(fd, p->db, sizeof p->db, p->user, sizeof p->user);
	if (!strcmp(p->db, "?"))
		p->db[0] = 0;
}

/* 0: send as is; 1: refused, `out` holds the packet to send instead. */
static int wire_judge(struct ag_call *c, int fd, const unsigned char *b, size_t len,
		      unsigned char *out, size_t *outlen)
{
	char db[300], sql[400];

	struct my_pre pre = {.text = (const char *)b + 5, .text_len = len - 5};
	ag_set_sql(c, (const char *)b + 5, len - 5, peer(fd, db, sizeof db), 0);
	pre_of_fd(fd, &pre);
	c->snap_fn = my_preimage;
	c->snap_arg = &pre;   /* used only inside ag_check */
	if (ag_check(c) == 0)
		return 0;
	raising(c, sql, sizeof sql);
	size_t n = strlen(sql) + 1;
	out[0] = (unsigned char)(n & 0xff);
	out[1] = (unsigned char)(n >> 8 & 0xff);
	out[2] = (unsigned char)(n >> 16 & 0xff);
	out[3] = 0;
	out[4] = 0x03;
	memcpy(out + 5, sql, n - 1);
	*outlen = n + 4;
	return 1;
}

/* Send a whole packet (the query, or the refusal in its place). */
static ssize_t send_all(ssize_t (*snd)(int, const void *, size_t, int), int fd,
			const unsigned char *b, size_t len, int flags)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = snd(fd, b + off, len - off, flags & ~MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return (ssize_t)len;
}

/* Judge one whole COM_QUERY packet and send it, or the refusal. Returns
 * `reported` (what the caller is told was sent) or -1. */
static ssize_t judge_and_send(ssize_t (*snd)(int, const void *, size_t, int), int fd,
			      const unsigned char *pkt, size_t len, int flags, ssize_t reported)
{
	struct ag_call c;
	unsigned char out[420];
	size_t outlen = 0;

	ag_begin(&c, AG_OP_SQL);
	if (!wire_judge(&c, fd, pkt, len, out, &outlen)) {
		ssize_t r = send_all(snd, fd, pkt, len, flags);
		ag_end_status(&c, r < 0 ? errno : 0);
		return r < 0 ? -1 : reported;
	}
	/* The client sent its query; the server answers with the denial. */
	ssize_t r = send_all(snd, fd, out, outlen, flags);
	int e = errno;
	ag_refuse_status(&c, 1644);
	errno = e;
	return r < 0 ? -1 : reported;
}

static ssize_t send_direct(int fd, const void *b, size_t n, int flags)
{
	return real_send(fd, b, n, flags);
}

/* ---- the compressed protocol (mariadb --compress) -------------------------
 * Each write is wrapped: [3-byte length][sequence][3-byte uncompressed
 * length], then either the packets as they are (uncompressed length 0) or
 * zlib data. A query inside is judged like any other; a refused one is
 * replaced by the refusal, sent uncompressed in a wrapper of its own.
 */
static int compressed(const unsigned char *b, size_t len)
{
	if (len < 7 + 5 || (size_t)(b[0] | b[1] << 8 | b[2] << 16) + 7 != len)
		return 0;
	size_t raw = (size_t)(b[4] | b[5] << 8 | b[6] << 16);
	/* Raw: a whole COM_QUERY inside. Compressed: a zlib stream. */
	return raw ? b[7] == 0x78 : com_query(b + 7, len - 7) + 4 == len - 7;
}

static int (*z_uncompress)(unsigned char *, unsigned long *, const unsigned char *,
			   unsigned long);

static ssize_t wire_compressed(int fd, const unsigned char *b, size_t len, int flags)
{
	size_t raw = (size_t)(b[4] | b[5] << 8 | b[6] << 16);
	const unsigned char *inner = b + 7;
	size_t ilen = len - 7;
	unsigned char *buf = NULL;

	if (raw) {
		if (!z_uncompress) {
			void *h = dlopen("libz.so.1", RTLD_LAZY | RTLD_LOCAL);
			z_uncompress = h ? dlsym(h, "uncompress") : NULL;
		}
		unsigned long out = raw;
		if (!z_uncompress || !(buf = malloc(raw)) ||
		    z_uncompress(buf, &out, b + 7, (unsigned long)(len - 7)) != 0 || out != raw) {
			/* Cannot look inside: refuse rather than let it through unjudged. */
			free(buf);
			errno = EPROTO;
			return -1;
		}
		inner = buf;
		ilen = raw;
	}
	size_t payload = com_query(inner, ilen);
	if (!payload || payload + 4 != ilen) {
		free(buf);
		return send_all(send_direct, fd, b, len, flags) < 0 ? -1 : (ssize_t)len;
	}
	struct ag_call c;
	unsigned char out[7 + 420];
	size_t outlen = 0;
	ag_begin(&c, AG_OP_SQL);
	if (!wire_judge(&c, fd, inner, ilen, out + 7, &outlen)) {
		free(buf);
		ssize_t r = send_all(send_direct, fd, b, len, flags);
		ag_end_status(&c, r < 0 ? errno : 0);
		return r < 0 ? -1 : (ssize_t)len;
	}
	free(buf);
	out[0] = (unsigned char)(outlen & 0xff);
	out[1] = (unsigned char)(outlen >> 8 & 0xff);
	out[2] = (unsigned char)(outlen >> 16 & 0xff);
	out[3] = b[3];
	out[4] = out[5] = out[6] = 0;
	ssize_t r = send_all(send_direct, fd, out, outlen + 7, flags);
	int e = errno;
	ag_refuse_status(&c, 1644);
	errno = e;
	return r < 0 ? -1 : (ssize_t)len;
}

static __attribute__((noinline)) ssize_t wire(int fd, const unsigned char *b, size_t len, int flags,
		    ssize_t (*pass)(int, const void *, size_t, int))
{
	struct pending *p = NULL;
	if (__atomic_load_n(&npending, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&pending_mu);
		p = pending_for(fd);
		if (!p)
			pthread_mutex_unlock(&pending_mu);
	}
	if (p) {
		/* The rest of a query held back: add it, judge when whole. */
		size_t take = len < p->want - p->have ? len : p->want - p->have;
		memcpy(p->buf + p->have, b, take);
		p->have += take;
		if (p->have < p->want) {
			pthread_mutex_unlock(&pending_mu);
			return (ssize_t)len;
		}
		unsigned char *pkt = p->buf;
		size_t plen = p->want;
		memset(p, 0, sizeof *p);
		__atomic_sub_fetch(&npending, 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&pending_mu);
		ssize_t r = judge_and_send(send_direct, fd, pkt, plen, flags, (ssize_t)take);
		free(pkt);
		if (r >= 0 && take < len) {
			/* More after the packet in this send: judged the same way. */
			ssize_t r2 = wire(fd, b + take, len - take, flags, pass);
			return r2 < 0 ? -1 : (ssize_t)(take + (size_t)r2);
		}
		return r;
	}

	size_t payload = com_query(b, len);
	if (!payload) {
		/* A handshake or a database switch: remember the database. */
		if (len >= 5 && len <= 4096 && (b[3] == 1 || (b[3] == 0 && b[4] == 0x02)) &&
		    (size_t)(b[0] | b[1] << 8 | b[2] << 16) + 4 == len && stream_socket(fd))
			wire_note_db(fd, b, len);
		else if (compressed(b, len) && stream_socket(fd))
			return wire_compressed(fd, b, len, flags);
		return pass(fd, b, len, flags);
	}
	if (!stream_socket(fd))
		return pass(fd, b, len, flags);
	if (payload + 4 <= len) {
		ssize_t r = judge_and_send(send_direct, fd, b, payload + 4, flags,
					   (ssize_t)(payload + 4));
		if (r >= 0 && payload + 4 < len) {
			/* Several packets in one send: each judged. */
			ssize_t r2 = wire(fd, b + payload + 4, len - payload - 4, flags, pass);
			return r2 < 0 ? -1 : (ssize_t)(payload + 4 + (size_t)r2);
		}
		return r;
	}
	/* The first piece of a longer query. */
	unsigned char *buf = malloc(payload + 4);
	pthread_mutex_lock(&pending_mu);
	struct pending *slot = NULL;
	for (size_t i = 0; buf && i < sizeof pending / sizeof pending[0]; i++)
		if (!pending[i].buf) {
			slot = &pending[i];
			break;
		}
	if (!slot) {
		pthread_mutex_unlock(&pending_mu);
		free(buf);
		/* Cannot hold it back: refuse rather than let it through unjudged. */
		errno = ENOBUFS;
		return -1;
	}
	memcpy(buf, b, len);
	*slot = (struct pending){fd, buf, len, payload + 4};
	__atomic_add_fetch(&npending, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&pending_mu);
	return (ssize_t)len;
}

static ssize_t pass_send(int fd, const void *b, size_t n, int flags)
{
	return real_send(fd, b, n, flags);
}

/* Passed straight through: the guard's own work, a statement the client
 * library was already judged for (mysql_real_query sending it), and what
 * is too short to be a query when none is held back. */
static int wire_passes(const void *buf, size_t len)
{
	return !buf || AG_OWN_WORK() || ag_thread.in_sql ||
	       (len < 6 && !__atomic_load_n(&npending, __ATOMIC_RELAXED));
}

/* A descriptor wire.c reads (a connection it saw start) goes there. */
static __attribute__((noinline)) ssize_t to_wire(int fd, const void *buf, size_t len, int flags,
						 const void *ra)
{
	struct iovec v = {(void *)buf, len};
	return ag_wire_writev(fd, &v, 1, AG_WIRE_SEND, flags, ra);
}

AG_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	if (AG_WIRE_ON(fd) && buf && !AG_OWN_WORK() && !ag_thread.in_sql)
		return to_wire(fd, buf, len, flags, __builtin_return_address(0));
	if (wire_passes(buf, len))
		return AG_REAL(send)(fd, buf, len, flags);
	return wire(fd, buf, len, flags, pass_send);
}

/* sendto with no address is send (glibc's send is sendto underneath, and
 * clients call either). With MSG_FASTOPEN and an address it is a connect
 * (TCP Fast Open: the SYN carries the data), judged as one (connect.c). */
AG_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
			 const struct sockaddr *to, socklen_t tolen)
{
	if (to && (flags & MSG_FASTOPEN) && !AG_OWN_WORK())
		return ag_sendto_connect(fd, buf, len, flags, to, tolen);
	if (AG_WIRE_ON(fd) && buf && !AG_OWN_WORK() && !ag_thread.in_sql)
		return to_wire(fd, buf, len, flags, __builtin_return_address(0));
	if (to || wire_passes(buf, len))
		return AG_REAL(sendto)(fd, buf, len, flags, to, tolen);
	return wire(fd, buf, len, flags, pass_send);
}
