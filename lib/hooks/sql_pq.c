/*
 * sql, PostgreSQL (libpq): PQexec, PQexecParams, PQprepare, PQsendQuery,
 * PQsendQueryParams, PQsendPrepare.
 *
 * A denied statement is replaced by one that makes the server raise the
 * denial, so the client gets an ordinary error result through its own
 * error path (psql prints "ERROR:  agentguard: denied sql ..."), the
 * connection stays usable, and an open transaction is aborted as any
 * failed statement would abort it. A server database cannot be
 * snapshotted first, so a `snapshot` rule means deny here.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "guard.h"

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

/* 0: run the real call; -1: refused (run `instead`). */
static int judge(struct ag_call *c, PGconn *conn, const char *sql, char *db, size_t dblen,
		 char *instead, size_t ilen)
{
	pthread_once(&resolved, resolve);
	ag_set_sql(c, sql, strlen(sql), database(conn, db, dblen), 0);
	if (ag_check(c) == 0)
		return 0;
	raising(c, instead, ilen);
	return -1;
}

/* One body for all six: judge `sql`, then either the real call or, when
 * refused, the raising statement through the same kind of call. The real
 * call runs in the judged statement's scope: libpq's PQexec reaching our
 * PQsendQuery with the same text is that statement, not a new one. */
#define PQ_BODY(ret, field, sql, real_args, refused_call, ok)                      \
	struct ag_call c;                                                       \
	char db_[512], instead_[1400];                                          \
	if (!(sql) || ag_thread.in_sql)                                            \
		return REAL(field) real_args;                                   \
	ag_begin(&c, AG_OP_SQL);                                                \
	int refused_ = judge(&c, conn, sql, db_, sizeof db_, instead_, sizeof instead_) < 0; \
	int sv_ = ag_sql_enter();                                               \
	ret r_ = refused_ ? (refused_call) : P.field real_args;                 \
	ag_sql_leave(sv_);                                                      \
	if (refused_)                                                           \
		ag_refuse_status(&c, 42501);                                    \
	else                                                                    \
		ag_end_status(&c, (ok) ? 0 : 1);                                \
	return r_;

AG_HOOK_VIA(REAL(exec), PGresult *, PQexec, (PGconn *conn, const char *query), (conn, query))
{
	PQ_BODY(PGresult *, exec, query, (conn, query), P.exec(conn, instead_), r_ != NULL)
}

AG_HOOK_VIA(REAL(exec_params), PGresult *, PQexecParams,
	    (PGconn *conn, const char *command, int n, const Oid *types,
	     const char *const *values, const int *lengths, const int *formats, int result_format),
	    (conn, command, n, types, values, lengths, formats, result_format))
{
	PQ_BODY(PGresult *, exec_params, command,
		(conn, command, n, types, values, lengths, formats, result_format),
		P.exec(conn, instead_), r_ != NULL)
}

AG_HOOK_VIA(REAL(prepare), PGresult *, PQprepare,
	    (PGconn *conn, const char *name, const char *query, int n, const Oid *types),
	    (conn, name, query, n, types))
{
	PQ_BODY(PGresult *, prepare, query, (conn, name, query, n, types),
		P.exec(conn, instead_), r_ != NULL)
}

AG_HOOK_VIA(REAL(send_query), int, PQsendQuery, (PGconn *conn, const char *query),
	    (conn, query))
{
	PQ_BODY(int, send_query, query, (conn, query), P.send_query(conn, instead_), r_ == 1)
}

AG_HOOK_VIA(REAL(send_query_params), int, PQsendQueryParams,
	    (PGconn *conn, const char *command, int n, const Oid *types,
	     const char *const *values, const int *lengths, const int *formats, int result_format),
	    (conn, command, n, types, values, lengths, formats, result_format))
{
	PQ_BODY(int, send_query_params, command,
		(conn, command, n, types, values, lengths, formats, result_format),
		P.send_query(conn, instead_), r_ == 1)
}

AG_HOOK_VIA(REAL(send_prepare), int, PQsendPrepare,
	    (PGconn *conn, const char *name, const char *query, int n, const Oid *types),
	    (conn, name, query, n, types))
{
	PQ_BODY(int, send_prepare, query, (conn, name, query, n, types),
		P.send_query(conn, instead_), r_ == 1)
}
