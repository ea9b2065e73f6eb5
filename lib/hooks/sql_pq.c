/*
 * sql, PostgreSQL (libpq): PQexec, PQexecParams, PQprepare, PQsendQuery,
 * PQsendQueryParams, PQsendPrepare; PQgetResult and PQfinish for what a
 * connection's temporary tables are (below).
 *
 * A denied statement is replaced by one that makes the server raise the
 * denial, so the client gets an ordinary error result through its own
 * error path (psql prints "ERROR:  agentguard: denied sql ..."), the
 * connection stays usable, and an open transaction is aborted as any
 * failed statement would abort it.
 *
 * A `snapshot` rule takes a pre-image first (preimage() below): what the
 * statement can destroy is dumped by pg_dump, through a connection of its
 * own with the client's parameters, into the snapshot store, and only
 * then does the statement run. A pre-image that cannot be taken denies it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guard.h"
#include "preimage.h"
#include "wire.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
typedef unsigned int Oid;

static struct {
	PGresult *(*exec)(PGconn *, const char *);
	PGresult *(*exec_params)(PGconn *, const char *, int, const Oid *, const char *const *,
				 const int *, const int *, int);
	PGresult *(*prepare)(PGconn *, const char *, const char *, int, const Oid *);
	int (*send_query)(PGconn *, const char *);
	int (*send_query_params)(PGconn *, const char *, int, const Oid *, const char *const *,
				 const int *, const int *, int);
	int (*send_prepare)(PGconn *, const char *, const char *, int, const Oid *);
	char *(*db)(const PGconn *);
	char *(*host)(const PGconn *);
	char *(*port)(const PGconn *);
	char *(*user)(const PGconn *);
	char *(*pass)(const PGconn *);
	int (*tx_status)(const PGconn *);
	int (*result_status)(const PGresult *);
	int (*ntuples)(const PGresult *);
	char *(*getvalue)(const PGresult *, int, int);
	char *(*result_error)(const PGresult *);
	void (*clear)(PGresult *);
	int (*backend_pid)(const PGconn *);
	PGresult *(*get_result)(PGconn *);
	void (*finish)(PGconn *);
	int (*socket)(const PGconn *);
} P;

/* Interpreters' extension modules load it RTLD_LOCAL. */
static const char *const sonames[] = {"libpq.so.5", NULL};

static void *lookup(const char *name)
{
	return ag_client_sym(sonames, name);
}

static void resolve(void)
{
	P.exec = lookup("PQexec");
	P.exec_params = lookup("PQexecParams");
	P.prepare = lookup("PQprepare");
	P.send_query = lookup("PQsendQuery");
	P.send_query_params = lookup("PQsendQueryParams");
	P.send_prepare = lookup("PQsendPrepare");
	P.db = lookup("PQdb");
	P.host = lookup("PQhost");
	P.port = lookup("PQport");
	P.user = lookup("PQuser");
	P.pass = lookup("PQpass");
	P.tx_status = lookup("PQtransactionStatus");
	P.result_status = lookup("PQresultStatus");
	P.ntuples = lookup("PQntuples");
	P.getvalue = lookup("PQgetvalue");
	P.result_error = lookup("PQresultErrorMessage");
	P.clear = lookup("PQclear");
	P.backend_pid = lookup("PQbackendPID");
	P.get_result = lookup("PQgetResult");
	P.finish = lookup("PQfinish");
	P.socket = lookup("PQsocket");
}

static pthread_once_t resolved = PTHREAD_ONCE_INIT;
#define REAL(field) (pthread_once(&resolved, resolve), P.field)

/* "host/dbname"; a unix socket directory is "localhost": rules must never
 * mistake a server database for a SQLite file path. */
static const char *database(PGconn *conn, char *buf, size_t len)
{
	const char *h = P.host ? P.host(conn) : NULL, *d = P.db ? P.db(conn) : NULL;

	if (!h || !*h || h[0] == '/')
		h = "localhost";
	snprintf(buf, len, "%s/%s", h, d && *d ? d : "?");
	return buf;
}

/* The statement the server runs instead: it raises the denial. Dollar
 * signs are dropped from the message so it cannot end the quoting. */
static void raising(const struct ag_call *c, char *sql, size_t len)
{
	char line[1024], clean[1024];
	size_t n = 0;

	ag_describe(c, line, sizeof line);
	for (const char *p = line; *p && n < sizeof clean - 1; p++)
		if (*p != '$')
			clean[n++] = *p;
	clean[n] = 0;
	snprintf(sql, len, "DO $agentguard$BEGIN RAISE EXCEPTION USING MESSAGE = "
		 "$m$%s$m$, ERRCODE = '42501'; END$agentguard$", clean);
}

/* ---- pre-images ------------------------------------------------------------
 * What the statement names (ag_sql_targets) is resolved on the client's
 * own connection — its search_path, its transaction's view — with a read
 * that cannot fail on bad names (no cast of the agent's text), together
 * with every table whose foreign keys reach those (a cascade empties
 * them too) and their sizes, which are charged to snapshots.max_bytes
 * before anything is copied. pg_dump then dumps exactly that through a
 * connection of its own, into the store; the statement waits for it.
 *
 * pg_dump runs as the guard's own child: from a fixed path (never the
 * agent's PATH), without the library (it writes only to our pipe), with a
 * lock timeout so that a lock the client's own open transaction holds
 * makes the pre-image fail (and the statement be denied) instead of
 * waiting on a statement that waits on it.
 */
enum { TX_IDLE, TX_ACTIVE, TX_INTRANS, TX_INERROR, TX_UNKNOWN };
#define PGRES_TUPLES_OK 2

struct pre {
	PGconn *conn;                    /* the client's libpq connection, or NULL: */
	const struct ag_wire_peer *wire; /* one read on the wire (wire.c) */
	const char *sql;
	size_t len;
};

/* The libpq calls the pre-image makes on the client's connection are the
 * guard's: they pass every hook. Inside the client's transaction the read
 * runs under a savepoint of its own: whatever makes it fail (a statement
 * timeout the client set, a cancel) must not abort the client's
 * transaction. */
#define PGRES_COMMAND_OK 1
static int own_command(PGconn *conn, const char *q)
{
	PGresult *r = P.exec_params(conn, q, 0, NULL, NULL, NULL, NULL, 0);
	int ok = r && P.result_status(r) == PGRES_COMMAND_OK;

	if (r)
		P.clear(r);
	return ok ? 0 : -1;
}

static PGresult *own_query(PGconn *conn, int in_tx, const char *q, int n, const char *const *v)
{
	int sv = ag_sql_enter();
	PGresult *r = NULL;

	if (!in_tx || own_command(conn, "SAVEPOINT agentguard_preimage") == 0) {
		r = P.exec_params(conn, q, n, NULL, v, NULL, NULL, 0);
		if (r && P.result_status(r) != PGRES_TUPLES_OK) {
			P.clear(r);
			r = NULL;
		}
		if (in_tx && ((!r && own_command(conn, "ROLLBACK TO SAVEPOINT agentguard_preimage") < 0) ||
			      own_command(conn, "RELEASE SAVEPOINT agentguard_preimage") < 0) && r) {
			P.clear(r);
			r = NULL;
		}
	}
	ag_sql_leave(sv);
	return r;
}

/* s appended to a text[] literal in out: {"a","b"} */
static int arr_add(char *out, size_t cap, const char *s)
{
	size_t n = strlen(out);

	if (n == 0 && cap > 1)
		out[n++] = '{';
	else if (n && out[n - 1] == '}')
		out[n - 1] = ',';
	if (n + 2 * strlen(s) + 4 >= cap)
		return -1;
	out[n++] = '"';
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			out[n++] = '\\';
		out[n++] = *s;
	}
	out[n++] = '"';
	out[n++] = '}';
	out[n] = 0;
	return 0;
}

/* The tables named, through the connection's search path, and those whose
 * foreign keys reach them; ordinary and partitioned tables only (a
 * temporary one goes with its connection). Each: a pg_dump -t pattern and
 * its size. */
static const char tables_q[] =
	"WITH RECURSIVE want(s, n) AS (SELECT * FROM unnest($1::text[], $2::text[])), "
	"base AS (SELECT (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns "
	"ON ns.oid = c.relnamespace WHERE c.relname = w.n AND (ns.nspname = w.s OR (w.s = '' AND "
	"ns.nspname = ANY (pg_catalog.current_schemas(true)))) ORDER BY "
	"pg_catalog.array_position(pg_catalog.current_schemas(true), ns.nspname) LIMIT 1) AS oid "
	"FROM want w), "
	"t(oid) AS (SELECT oid FROM base WHERE oid IS NOT NULL UNION SELECT con.conrelid FROM "
	"pg_catalog.pg_constraint con JOIN t ON con.confrelid = t.oid WHERE con.contype = 'f') "
	"SELECT pg_catalog.quote_ident(ns.nspname) || '.' || pg_catalog.quote_ident(c.relname), "
	"pg_catalog.pg_total_relation_size(c.oid) FROM t JOIN pg_catalog.pg_class c ON c.oid = t.oid "
	"JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
	"AND c.relpersistence <> 't' ORDER BY 1";
static const char schemas_q[] =
	"SELECT pg_catalog.quote_ident(ns.nspname), coalesce(sum(pg_catalog.pg_total_relation_size("
	"c.oid)) FILTER (WHERE c.relkind IN ('r', 'p', 'm')), 0) FROM pg_catalog.pg_namespace ns "
	"LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid WHERE ns.nspname = "
	"ANY ($1::text[]) GROUP BY ns.nspname ORDER BY 1";
static const char database_q[] =
	"SELECT datname, pg_catalog.pg_database_size(datname) FROM pg_catalog.pg_database "
	"WHERE datname = $1";

/* conninfo value, quoted */
static int ci_add(char *out, size_t cap, const char *key, const char *val)
{
	size_t n = strlen(out);

	if (!val || !*val)
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

/* A program of the PostgreSQL client, from where packages put it: the
 * newest (pg_dump must be at least the server's version), never found
 * through PATH. */
static int pg_tool_path(const char *name, char *out, size_t cap)
{
	glob_t g;
	int rc = -1;
	char pat[96];

	snprintf(pat, sizeof pat, "/usr/lib/postgresql/*/bin/%s", name);
	if (glob(pat, 0, NULL, &g) == 0 && g.gl_pathc) {
		/* Versions sort as numbers: 9.6 < 10 < 15. */
		const char *best = NULL;
		long bv = -1;
		for (size_t i = 0; i < g.gl_pathc; i++) {
			long v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL, 10);
			if (v > bv && access(g.gl_pathv[i], X_OK) == 0) {
				bv = v;
				best = g.gl_pathv[i];
			}
		}
		if (best)
			rc = snprintf(out, cap, "%s", best) < (int)cap ? 0 : -1;
	}
	globfree(&g);
	snprintf(pat, sizeof pat, "/usr/bin/%s", name);
	if (rc < 0 && access(pat, X_OK) == 0)
		rc = snprintf(out, cap, "%s", pat) < (int)cap ? 0 : -1;
	return rc;
}

static int pg_dump_path(char *out, size_t cap)
{
	return pg_tool_path("pg_dump", out, cap);
}

/* One line of pg_dump's complaint: its first "error:" line, or the first. */
static const char *first_error(char *err)
{
	char *p = strstr(err, "error: ");
	char *s = p ? p + 7 : err;
	char *nl;

	while (*s == ' ')
		s++;
	/* "query failed: ERROR: ..." then "query was: ...": the first two. */
	if ((nl = strstr(s, "\npg_dump: detail: Query was")) || (nl = strstr(s, "\npg_dump: error: query was")))
		*nl = 0;
	for (char *q = s; *q; q++)
		if (*q == '\n')
			*q = ' ';
	return s;
}

/* preimage()'s buffers: client threads may run on small stacks. */
struct pre_buf {
	char a1[2048], a2[2048];
	char what[2048], list[2048];
	char conninfo[1024], host[512], dbarg[1100];
	char bin[256], args[AG_SQL_TARGETS * 4][200];
	char *argv[AG_SQL_TARGETS * 4 + 16];
	char e_pass[600], e_home[1024], e_passfile[1024];
	char *envp[12];
	char stmt[240], head[2600], err[600];
	/* the catalog's answer: rows of a name and a size */
	char q[8192], out[16384];
	const char *row[128][2];
};

/* pg_dump's and psql's environment: the client's password as the client
 * had it (given, PGPASSWORD, or .pgpass). */
static void pg_env(const struct pre *pr, struct pre_buf *b)
{
	char **envp = b->envp;
	int ec = 0;

	envp[ec++] = "PATH=/usr/bin:/bin";
	envp[ec++] = "LC_ALL=C";
	envp[ec++] = "PGCONNECT_TIMEOUT=10";
	envp[ec++] = "PGAPPNAME=agentguard-preimage";
	/* Every wait for a lock, not only the first LOCK TABLE. */
	envp[ec++] = "PGOPTIONS=-c lock_timeout=5000 -c statement_timeout=0";
	const char *pw = pr->conn && P.pass ? P.pass(pr->conn) : getenv("PGPASSWORD"),
		   *home = getenv("HOME"), *pf = getenv("PGPASSFILE");
	if (pw && *pw && snprintf(b->e_pass, sizeof b->e_pass, "PGPASSWORD=%s", pw) < (int)sizeof b->e_pass)
		envp[ec++] = b->e_pass;
	if (home && snprintf(b->e_home, sizeof b->e_home, "HOME=%s", home) < (int)sizeof b->e_home)
		envp[ec++] = b->e_home;
	if (pf && snprintf(b->e_passfile, sizeof b->e_passfile, "PGPASSFILE=%s", pf) < (int)sizeof b->e_passfile)
		envp[ec++] = b->e_passfile;
	envp[ec] = NULL;
}

/* The client's connection as conninfo (dbname: another database, or
 * NULL for the client's own). A unix socket "/dir/.s.PGSQL.5432" is
 * host=/dir port=5432. */
static int pg_conninfo(const struct pre *pr, const char *dbname, char *out, size_t cap)
{
	char host[512] = "", port[16] = "";
	const char *user, *db;

	out[0] = 0;
	if (pr->conn) {
		const char *h = P.host ? P.host(pr->conn) : NULL, *pt = P.port ? P.port(pr->conn) : NULL;
		snprintf(host, sizeof host, "%s", h && *h ? h : "");
		snprintf(port, sizeof port, "%s", pt ? pt : "");
		user = P.user ? P.user(pr->conn) : NULL;
		db = P.db ? P.db(pr->conn) : NULL;
	} else {
		const struct ag_wire_peer *w = pr->wire;
		const char *slash = strrchr(w->unix_path, '/');
		if (w->unix_path[0] && slash)
			snprintf(host, sizeof host, "%.*s", slash == w->unix_path ? 1 : (int)(slash - w->unix_path),
				 w->unix_path);
		else
			snprintf(host, sizeof host, "%s", w->addr);
		if (w->port)
			snprintf(port, sizeof port, "%u", w->port);
		user = w->user;
		db = w->db;
	}
	if (ci_add(out, cap, "host", host) < 0 || ci_add(out, cap, "port", port) < 0 ||
	    ci_add(out, cap, "user", user) < 0 || ci_add(out, cap, "dbname", dbname ? dbname : db) < 0)
		return -1;
	return 0;
}

/* q with $1 and $2 as the dollar-quoted vals: for psql, which takes no
 * parameters. -1 when a value holds the quote or it does not fit. */
static int subst(char *out, size_t cap, const char *q, int n, const char *const *v)
{
	static const char tag[] = "$agentguard_v$";
	size_t k = 0;

	for (int i = 0; i < n; i++)
		if (strstr(v[i], tag))
			return -1;
	for (; *q; q++) {
		if (q[0] == '$' && (q[1] == '1' || q[1] == '2') && q[1] - '1' < n) {
			int r = snprintf(out + k, cap - k, "%s%s%s", tag, v[q[1] - '1'], tag);
			if (r < 0 || (size_t)r >= cap - k)
				return -1;
			k += (size_t)r;
			q++;
			continue;
		}
		if (k + 1 >= cap)
			return -1;
		out[k++] = *q;
	}
	out[k] = 0;
	return 0;
}

/* Ask the catalog q (n parameters v): rows of (name, size) in b->row,
 * their count; -1 when it cannot be asked (b->err may say why), -2 for
 * more rows than fit. */
static int catalog(const struct pre *pr, struct pre_buf *b, int tx, const char *q, int n,
		   const char *const *v)
{
	int rows = 0, cap = (int)(sizeof b->row / sizeof b->row[0]);
	size_t k = 0;

	b->err[0] = 0;
	if (pr->conn) {
		PGresult *r = own_query(pr->conn, tx == TX_INTRANS, q, n, v);
		if (!r)
			return -1;
		rows = P.ntuples(r);
		for (int i = 0; i < rows && i < cap; i++)
			for (int j = 0; j < 2; j++) {
				const char *s = P.getvalue(r, i, j);
				size_t l = strlen(s) + 1;
				if (k + l > sizeof b->out) {
					P.clear(r);
					return -2;
				}
				memcpy(b->out + k, s, l);
				b->row[i][j] = b->out + k;
				k += l;
			}
		P.clear(r);
		return rows > cap ? -2 : rows;
	}
	char bin[256], ci[1100];
	if (pg_tool_path("psql", bin, sizeof bin) < 0) {
		snprintf(b->err, sizeof b->err, "no psql is installed (postgresql-client)");
		return -1;
	}
	if (subst(b->q, sizeof b->q, q, n, v) < 0)
		return -2;
	snprintf(ci, sizeof ci, "%s", b->conninfo);
	char *argv[] = {bin, "-X", "-q", "-A", "-t", "-F", "\t", "--no-password", "-v",
			"ON_ERROR_STOP=1", "-d", ci, "-c", b->q, NULL};
	if (ag_preimage_capture(argv, b->envp, b->out, sizeof b->out, b->err, sizeof b->err) < 0)
		return -1;
	/* name TAB size, a line each; anything else is not trusted. */
	for (char *save = NULL, *line = strtok_r(b->out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t');
		if (!tab || strchr(tab + 1, '\t'))
			return -1;
		if (rows == cap)
			return -2;
		*tab = 0;
		b->row[rows][0] = line;
		b->row[rows++][1] = tab + 1;
	}
	return rows;
}

static int preimage_in(struct ag_call *c, struct pre *pr, struct pre_buf *b);

static int preimage(struct ag_call *c, void *arg)
{
	struct pre_buf *b = malloc(sizeof *b);
	if (!b)
		return -1;
	int rc = preimage_in(c, arg, b);
	int e = errno;
	free(b);
	errno = e;
	return rc;
}

static int preimage_in(struct ag_call *c, struct pre *pr, struct pre_buf *b)
{
	PGconn *conn = pr->conn;
	struct ag_sql_targets T;
	struct ag_snapshot *snap = &c->w->snap;
	/* On the wire the transaction is not known: the dump's own
	 * connection sees what is committed, and its lock timeout keeps a
	 * lock the client holds from making it wait for ever. */
	int tx = conn ? P.tx_status(conn) : TX_IDLE;

	/* An aborted transaction or a broken connection runs nothing: the
	 * server refuses the statement by itself. */
	if (tx == TX_INERROR || tx == TX_UNKNOWN)
		return 1;
	if (tx == TX_ACTIVE)
		return pre_fail(c, "agentguard takes a pre-image between statements, and this "
				"connection is still busy with another (asynchronous or pipelined): denied");
	ag_sql_targets(pr->sql, (long)pr->len, 0, &T);
	int ntab = 0, nsch = 0, ndb = 0;
	for (int i = 0; i < T.n; i++) {
		ntab += T.t[i].kind == AG_TARGET_TABLE;
		nsch += T.t[i].kind == AG_TARGET_SCHEMA;
		ndb += T.t[i].kind == AG_TARGET_DATABASE;
	}
	if (T.unknown || !T.n)
		return pre_fail(c, "agentguard cannot tell from the text which tables it destroys, "
				"so it cannot take their pre-image first: denied");
	if ((ndb && T.n > 1) || (nsch && ntab))
		return pre_fail(c, "it destroys tables, schemas or databases together, and a "
				"pre-image is of one kind: run the statements one at a time");
	if (ndb && tx != TX_IDLE)
		return 1;   /* DROP DATABASE cannot run inside a transaction block */

	/* Resolve: on the client's connection, or (a connection read on the
	 * wire, which is in the middle of sending) through psql on one of its
	 * own, with the client's parameters. */
	char *a1 = b->a1, *a2 = b->a2;
	a1[0] = a2[0] = 0;
	for (int i = 0; i < T.n; i++)
		if (arr_add(a1, sizeof b->a1, ndb || nsch ? T.t[i].name : T.t[i].schema) < 0 ||
		    (ntab && arr_add(a2, sizeof b->a2, T.t[i].name) < 0))
			return pre_fail(c, "too many names to resolve for a pre-image");
	const char *vals[2] = {ndb ? T.t[0].name : a1, a2};
	pg_env(pr, b);
	if (pg_conninfo(pr, NULL, b->conninfo, sizeof b->conninfo) < 0)
		return pre_fail(c, "its connection parameters are too long for a pre-image");
	int rows = catalog(pr, b, tx, ndb ? database_q : nsch ? schemas_q : tables_q, ntab ? 2 : 1, vals);
	if (rows == -2)
		return pre_fail(c, "its pre-image names too many tables");
	if (rows < 0)
		return pre_fail(c, "agentguard could not look up what it destroys on the server%s%s%s, "
				"so no pre-image was taken: denied", b->err[0] ? " (" : "",
				b->err[0] ? first_error(b->err) : "", b->err[0] ? ")" : "");
	if (!rows)
		return 1;   /* none of it exists: the statement destroys nothing */
	/* What pg_dump is to dump, and what restore needs to know. */
	char *what = b->what;
	size_t wn = (size_t)snprintf(what, sizeof b->what, "%s", ndb ? "database" : nsch ? "schema" : "table");
	long long est = 0;
	for (int i = 0; i < rows; i++) {
		const char *name = b->row[i][0];
		/* Names go on a comment line of the dump and into the record:
		 * one with a line break or a backslash could end either. */
		for (const char *q = name; *q; q++)
			if ((unsigned char)*q < 0x20 || *q == '\\' || *q == 0x7f)
				return pre_fail(c, "a name it destroys holds control characters or a "
						"backslash, which a pre-image cannot carry safely: denied");
		if (wn + strlen(name) + 2 >= sizeof b->what)
			return pre_fail(c, "its pre-image names too many tables");
		wn += (size_t)snprintf(what + wn, sizeof b->what - wn, " %s", name);
		est += strtoll(b->row[i][1], NULL, 10);
	}

	char *conninfo = b->conninfo;
	if (pg_conninfo(pr, ndb ? T.t[0].name : NULL, conninfo, sizeof b->conninfo) < 0)
		return pre_fail(c, "its connection parameters are too long for a pre-image");

	if (ag_snapshot_charge(est) < 0) {
		if (errno == EDQUOT)
			return pre_fail(c, "its pre-image (%s, about %lld MB) would exceed the session's "
					"snapshots.max_bytes, and nothing is destroyed without one: denied "
					"(ask a human to run it, or to raise the budget)", what, est >> 20);
		return pre_fail(c, "the session's snapshot budget cannot be kept (%s)", strerror(errno));
	}

	if (ag_preimage_store(snap, "pgsql") < 0) {
		ag_snapshot_charge(-est);
		return -1;
	}

	/* pg_dump's arguments and environment: the client's parameters; its
	 * password as the client had it (given, PGPASSWORD, or .pgpass). */
	char *bin = b->bin, *dbarg = b->dbarg, **argv = b->argv;
	int ac = 0, nt = 0;
	if (pg_dump_path(bin, sizeof b->bin) < 0) {
		ag_snapshot_charge(-est);
		return pre_fail(c, "no pg_dump is installed (postgresql-client), so no pre-image can be "
				"taken: denied");
	}
	snprintf(dbarg, sizeof b->dbarg, "--dbname=%s", conninfo);
	argv[ac++] = bin;
	argv[ac++] = "--no-password";
	argv[ac++] = "--lock-wait-timeout=5000";
	argv[ac++] = "--strict-names";
	argv[ac++] = dbarg;
	if (ndb)
		argv[ac++] = "--create";
	/* Each name of `what` after its first word, as -t or -n. */
	char *save = NULL;
	snprintf(b->list, sizeof b->list, "%s", what);
	for (char *tok = ndb ? NULL : strtok_r(strchr(b->list, ' '), " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		if (nt == (int)(sizeof b->args / sizeof b->args[0])) {
			ag_snapshot_charge(-est);
			return pre_fail(c, "its pre-image names too many tables");
		}
		snprintf(b->args[nt], sizeof b->args[nt], "%s%s", nsch ? "--schema=" : "--table=", tok);
		argv[ac++] = b->args[nt++];
	}
	argv[ac] = NULL;
	char **envp = b->envp;

	/* The statement on one comment line. */
	size_t sn = 0;
	for (size_t i = 0; i < pr->len && sn < sizeof b->stmt - 1; i++)
		/* On the dump's first line, a comment: no line break, and no
		 * backslash a client could take for one of its commands. */
		b->stmt[sn++] = pr->sql[i] == '\n' || pr->sql[i] == '\r' ? ' ' : pr->sql[i] == '\\' ? '/' : pr->sql[i];
	b->stmt[sn] = 0;
	char *head = b->head, *err = b->err;
	snprintf(head, sizeof b->head,
		 "-- agentguard pre-image %s: %s, before: %s\n%s", snap->id, what, b->stmt,
		 tx == TX_INTRANS ? "-- agentguard: taken while the client was inside a transaction: this is the "
				    "last committed state; that transaction's own earlier changes are "
				    "not in it\n"
		 : !conn ? "-- agentguard: read on the wire: this is the last committed state (a "
			   "transaction the client had open is not in it)\n" : "");

	long bytes = ag_preimage_run(snap, argv, envp, head, err, sizeof b->err);
	if (bytes < 0) {
		ag_snapshot_charge(-est);
		if (bytes == -1)
			return -1;
		return pre_fail(c, "its pre-image could not be taken (%s), and nothing is destroyed "
				"without one: denied%s", first_error(err),
				!(strstr(err, "lock") || strstr(err, "timeout")) ? ""
				: tx == TX_INTRANS ? " (it waited 5 s for a lock on what it dumps: one this "
				"connection's own open transaction may hold; commit first, or run the "
				"statement outside the transaction)"
				: " (it waited 5 s for a lock on what it dumps, which another connection holds)");
	}
	/* Charge what was kept, not the estimate. */
	if (ag_snapshot_charge(bytes - est) < 0 && bytes > est) {
		unlink(snap->abs);
		return pre_fail(c, "its pre-image (%s, %ld MB) exceeds the session's "
				"snapshots.max_bytes: denied", what, bytes >> 20);
	}
	snap->path = NULL;
	snprintf(snap->link_target, sizeof snap->link_target, "%s%s", what,
		 tx == TX_INTRANS ? " (committed state: the client's open transaction is not in it)" : "");
	/* The record's path: the connection (no password), which restore
	 * connects to. stage/ is done with: it holds it. */
	snprintf(snap->stage, sizeof snap->stage, "%s", conninfo);
	snap->path = snap->stage;
	snap->st.st_mode = S_IFREG | 0600;
	snap->st.st_size = bytes;
	int64_t now = ag_now_ns();
	snap->st.st_mtim.tv_sec = snap->st.st_atim.tv_sec = now / 1000000000;
	snap->st.st_uid = getuid();
	snap->st.st_gid = getgid();
	return 0;
}

/* ---- temporary tables ------------------------------------------------------
 * A statement is read against the temporary tables its connection made
 * (lib/guard.c keeps them), and what it leaves is kept only once its
 * results say it ran: PQexec's at once, a sent one's as PQgetResult hands
 * them over, up to the NULL that ends them. The connection is the PGconn
 * in its server session (the backend's pid: PQreset is another session).
 * A prepared statement runs later by name, unseen: the connection forgets,
 * and never learns again. */
static long session_of(PGconn *conn)
{
	return P.backend_pid ? P.backend_pid(conn) : -1;
}

/* 1: it ran; 0: it failed; -1: not over yet (a COPY waits for its data). */
static int ran(const PGresult *r)
{
	if (!r || !P.result_status)
		return 0;
	switch (P.result_status(r)) {
	case 0: case 1: case 2: case 9: case 10: case 12:   /* EMPTY_QUERY, COMMAND_OK, TUPLES_OK,
							       SINGLE_TUPLE, PIPELINE_SYNC, TUPLES_CHUNK */
		return 1;
	case 3: case 4: case 8:                            /* COPY_OUT, COPY_IN, COPY_BOTH */
		return -1;
	default:
		return 0;
	}
}

enum { RUN, SEND, PREPARE };

/* What the connection remembers is checked against the server before it
 * excuses anything: every table the text drops or empties must be, by
 * the connection's own search order, one of its temporary tables. That
 * catches what reading statements cannot: a function, trigger or DO
 * block that dropped the temporary table out of sight (the name would
 * now reach the real table). 1: they all are (or the statement cannot
 * run anyway: an aborted transaction); 0: not, or it cannot be asked. */
static const char temps_q[] = AG_PG_TEMPS_HEAD "$1" AG_PG_TEMPS_TAIL;

static int temps_real(PGconn *conn, const char *sql)
{
	if (!P.tx_status || !P.exec_params || !P.result_status || !P.ntuples || !P.getvalue || !P.clear)
		return 0;
	int tx = P.tx_status(conn);
	if (tx == TX_INERROR)
		return 1;
	if (tx != TX_IDLE && tx != TX_INTRANS)
		return 0;
	/* Client threads may run on small stacks. */
	struct {
		struct ag_sql_targets T;
		char names[2048];
	} *b = malloc(sizeof *b);
	if (!b)
		return 0;
	int ok = 0;
	b->names[0] = 0;
	ag_sql_targets(sql, -1, 0, &b->T);
	for (int i = 0; !b->T.unknown && i < b->T.n; i++) {
		if (b->T.t[i].kind != AG_TARGET_TABLE)
			continue;
		if (b->T.t[i].schema[0] || arr_add(b->names, sizeof b->names, b->T.t[i].name) < 0) {
			b->names[0] = 0;
			break;
		}
	}
	if (!b->T.unknown && b->names[0]) {
		const char *v[1] = {b->names};
		PGresult *r = own_query(conn, tx == TX_INTRANS, temps_q, 1, v);
		ok = r && P.ntuples(r) == 1 && !strcmp(P.getvalue(r, 0, 0), "0");
		if (r)
			P.clear(r);
	}
	free(b);
	return ok;
}

/* 0: run the real call; -1: refused (run `instead`). */
static int judge(struct ag_call *c, PGconn *conn, const char *sql, char *db, size_t dblen,
		 char *instead, size_t ilen, int how)
{
	struct pre pre = {conn, NULL, sql, strlen(sql)};

	pthread_once(&resolved, resolve);
	/* libpq's own socket: its statements are judged here, not again as
	 * they cross it (wire.c). */
	if (P.socket)
		ag_wire_forget(P.socket(conn));
	if (how == PREPARE) {
		ag_set_sql(c, sql, strlen(sql), database(conn, db, dblen), 0);
		ag_sql_stuck(conn, session_of(conn));
	} else {
		ag_set_sql_on(c, sql, strlen(sql), database(conn, db, dblen), conn,
			      session_of(conn), AG_TEMPS_SENT);
		/* When the connection's memory lowered the class the text
		 * alone gives, the server must agree. */
		if (c->sql_alone != (int)c->op.sql_class && !temps_real(conn, sql))
			c->op.sql_class = c->sql_alone;
	}
	if (P.tx_status && P.exec_params && P.result_status && P.ntuples && P.getvalue && P.clear) {
		c->snap_fn = preimage;
		c->snap_arg = &pre;   /* used only inside ag_check */
	}
	if (ag_check(c) == 0)
		return 0;
	raising(c, instead, ilen);
	return -1;
}

/* The Parse that replaces a refused one fails at once, in its parse
 * analysis (a literal that is no integer): a replacement that only
 * failed when run would meet the client's Bind, whose parameters it does
 * not have. */
static void raising_parse(const struct ag_call *c, char *sql, size_t len)
{
	char line[1024], clean[1024];
	size_t n = 0;

	ag_describe(c, line, sizeof line);
	for (const char *p = line; *p && n < sizeof clean - 1; p++)
		if (*p != '$')
			clean[n++] = *p;
	clean[n] = 0;
	snprintf(sql, len, "SELECT $agentguard$%s$agentguard$::pg_catalog.int4", clean);
}

int ag_pg_wire_judge(struct ag_call *c, const struct ag_wire_peer *p, const char *sql, size_t len,
		     int parse, const char *refuse, const struct ag_sql_temps *held, char *db,
		     size_t dblen, char *instead, size_t ilen)
{
	struct pre pre = {NULL, p, sql, len};

	pthread_once(&resolved, resolve);
	ag_set_sql(c, sql, len, ag_wire_database(p, db, dblen), 0);
	ag_sql_held(c, held);
	c->snap_fn = preimage;
	c->snap_arg = &pre;   /* used only inside ag_check */
	if (refuse)
		ag_check_refuse(c, "agentguard-wire", refuse);
	else if (ag_check(c) == 0)
		return 0;
	if (parse)
		raising_parse(c, instead, ilen);
	else
		raising(c, instead, ilen);
	return 1;
}

/* After the real call: the statement ran (1), failed (0), or its results
 * are still to come through PQgetResult (-1). */
static void outcome(PGconn *conn, int how, int refused, int r)
{
	if (how == PREPARE || (!refused && r < 0))
		return;
	ag_sql_ran(conn, session_of(conn), NULL, !refused && r > 0, 0);
}

/* One body for all six: judge `sql`, then either the real call or, when
 * refused, the raising statement through the same kind of call. The real
 * call runs in the judged statement's scope: libpq's PQexec reaching our
 * PQsendQuery with the same text is that statement, not a new one. */
#define PQ_BODY(ret, field, sql, real_args, refused_call, how, ok, went)        \
	struct ag_call c;                                                       \
	char db_[512], instead_[1400];                                          \
	if (!(sql) || ag_thread.in_sql)                                            \
		return REAL(field) real_args;                                   \
	ag_begin(&c, AG_OP_SQL);                                                \
	int refused_ = judge(&c, conn, sql, db_, sizeof db_, instead_, sizeof instead_, how) < 0; \
	int sv_ = ag_sql_enter();                                               \
	ret r_ = refused_ ? (refused_call) : P.field real_args;                 \
	ag_sql_leave(sv_);                                                      \
	outcome(conn, how, refused_, (went));                                   \
	if (refused_)                                                           \
		ag_refuse_status(&c, 42501);                                    \
	else                                                                    \
		ag_end_status(&c, (ok) ? 0 : 1);                                \
	return r_;

AG_HOOK_VIA(REAL(exec), PGresult *, PQexec, (PGconn *conn, const char *query), (conn, query))
{
	PQ_BODY(PGresult *, exec, query, (conn, query), P.exec(conn, instead_), RUN, r_ != NULL,
		ran(r_))
}

AG_HOOK_VIA(REAL(exec_params), PGresult *, PQexecParams,
	    (PGconn *conn, const char *command, int n, const Oid *types,
	     const char *const *values, const int *lengths, const int *formats, int result_format),
	    (conn, command, n, types, values, lengths, formats, result_format))
{
	PQ_BODY(PGresult *, exec_params, command,
		(conn, command, n, types, values, lengths, formats, result_format),
		P.exec(conn, instead_), RUN, r_ != NULL, ran(r_))
}

AG_HOOK_VIA(REAL(prepare), PGresult *, PQprepare,
	    (PGconn *conn, const char *name, const char *query, int n, const Oid *types),
	    (conn, name, query, n, types))
{
	PQ_BODY(PGresult *, prepare, query, (conn, name, query, n, types),
		P.exec(conn, instead_), PREPARE, r_ != NULL, 0)
}

AG_HOOK_VIA(REAL(send_query), int, PQsendQuery, (PGconn *conn, const char *query),
	    (conn, query))
{
	PQ_BODY(int, send_query, query, (conn, query), P.send_query(conn, instead_), SEND, r_ == 1,
		r_ == 1 ? -1 : 0)
}

AG_HOOK_VIA(REAL(send_query_params), int, PQsendQueryParams,
	    (PGconn *conn, const char *command, int n, const Oid *types,
	     const char *const *values, const int *lengths, const int *formats, int result_format),
	    (conn, command, n, types, values, lengths, formats, result_format))
{
	PQ_BODY(int, send_query_params, command,
		(conn, command, n, types, values, lengths, formats, result_format),
		P.send_query(conn, instead_), SEND, r_ == 1, r_ == 1 ? -1 : 0)
}

AG_HOOK_VIA(REAL(send_prepare), int, PQsendPrepare,
	    (PGconn *conn, const char *name, const char *query, int n, const Oid *types),
	    (conn, name, query, n, types))
{
	PQ_BODY(int, send_prepare, query, (conn, name, query, n, types),
		P.send_query(conn, instead_), PREPARE, r_ == 1, 0)
}

/* The results of a sent statement (or of a COPY PQexec began): a failure
 * among them, or the NULL that ends them, is its outcome. Inside a judged
 * call (PQexec's own reading) the call itself says it. */
AG_HOOK_VIA(REAL(get_result), PGresult *, PQgetResult, (PGconn *conn), (conn))
{
	PGresult *r = REAL(get_result)(conn);
	if (!conn || ag_thread.in_sql)
		return r;
	int e = errno;
	long gen = session_of(conn);
	if (ag_sql_waiting(conn, gen)) {
		int k = r ? ran(r) : 1;
		if (k == 0 || !r)
			ag_sql_ran(conn, gen, NULL, k, 0);
	}
	errno = e;
	return r;
}

AG_HOOK_VIA(REAL(finish), void, PQfinish, (PGconn *conn), (conn))
{
	if (conn)
		ag_sql_gone(conn);
	REAL(finish)(conn);
}
