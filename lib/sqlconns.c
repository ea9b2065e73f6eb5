/*
 * The temporary tables each database connection made and still holds, so
 * that a later statement of the same connection dropping one is judged as
 * the DDL it is (lib/guard.c reads them; the client hooks say when a
 * statement ran).
 *
 * What we believe must be a subset of what the server holds: a name the
 * set wrongly keeps would excuse dropping the real table behind it. So a
 * statement is read against a copy, and what it leaves becomes the
 * connection's set only once the client library says the statement ran;
 * one that failed, was refused, or whose outcome is never seen empties the
 * set (a failure can abort a transaction, and its rollback takes the
 * temporary tables made in it). A connection is its client object plus a
 * generation (the server's session: a reset or a reused pointer is another
 * connection). A fixed table, least recently used out; a connection that
 * finds no room simply has no memory, and its drops are judged as
 * anyone's.
 */
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "agentguard.h"

#define CONN_TEMPS 32
static struct conn_temps {
	const void *conn;           /* NULL: free */
	long gen;
	unsigned long used;         /* LRU clock */
	const void *stmt;           /* pending: the prepared statement it is (exact pairing) */
	unsigned char pending;      /* next waits for the statement's outcome */
	unsigned char stuck;        /* outcomes cannot be paired (pipelined, prepared): never learns */
	unsigned char call;         /* call_next waits for a call's outcome (sqlite3_exec) */
	struct ag_sql_temps set, next, call_next;
} conn_temps[CONN_TEMPS];
static pthread_mutex_t conn_temps_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long conn_temps_clock;

/* Whether a text can leave the connection's search order changed, so that
 * an unqualified name finds another schema's table before its temporary
 * one (PostgreSQL's SET search_path = public, pg_temp): then no name the
 * set holds can be trusted to mean the temporary table any more. */
static int reorders_names(const char *sql, size_t len)
{
	static const char *const words[] = {"search_path", "pg_temp", "set_config"};

	/* Each word has an underscore: only those places are looked at (a
	 * compare at every byte of every statement cost more than the rest of
	 * judging a SQLite INSERT). */
	for (const char *u = memchr(sql, '_', len); u; u = memchr(u + 1, '_', len - (size_t)(u + 1 - sql))) {
		for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
			size_t wl = strlen(words[w]), at = (size_t)(strchr(words[w], '_') - words[w]);
			size_t i = (size_t)(u - sql);
			if (i >= at && i - at + wl <= len && !strncasecmp(sql + i - at, words[w], wl))
				return 1;
		}
	}
	return 0;
}

/* The same tables (in any order; made now or before alike). */
static int temps_same(const struct ag_sql_temps *a, const struct ag_sql_temps *b)
{
	if (a->n != b->n)
		return 0;
	for (unsigned i = 0; i < a->n && i < AG_SQL_TEMPS; i++) {
		unsigned j = 0;
		while (j < b->n && j < AG_SQL_TEMPS &&
		       (a->t[i].len != b->t[j].len || a->t[i].quoted != b->t[j].quoted ||
			memcmp(a->t[i].name, b->t[j].name, a->t[i].len)))
			j++;
		if (j >= b->n || j >= AG_SQL_TEMPS)
			return 0;
	}
	return 1;
}

/* Under the lock. A stuck entry is never pushed out: its stubbornness
 * would be lost with it. */
static struct conn_temps *conn_temps_of(const void *conn, long gen, int make)
{
	struct conn_temps *free_ = NULL, *lru = NULL;

	for (int i = 0; i < CONN_TEMPS; i++) {
		struct conn_temps *e = &conn_temps[i];
		if (e->conn == conn && e->gen == gen) {
			e->used = ++conn_temps_clock;
			return e;
		}
		/* The same object, another session: nothing carries over (not
		 * even stuck: that was the old session's statements). */
		if (e->conn == conn)
			memset(e, 0, sizeof *e);
		if (!e->conn) {
			if (!free_)
				free_ = e;
		} else if (!e->stuck && (!lru || e->used < lru->used)) {
			lru = e;
		}
	}
	struct conn_temps *e = free_ ? free_ : lru;
	if (!make || !e)
		return NULL;
	memset(e, 0, sizeof *e);
	e->conn = conn;
	e->gen = gen;
	e->used = ++conn_temps_clock;
	return e;
}

int ag_sql_temps_of(const void *conn, long gen, int how, struct ag_sql_temps *out)
{
	int known = 0;

	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&conn_temps_mu);
	struct conn_temps *e = conn_temps_of(conn, gen, 1);
	if (e && e->pending && how == AG_TEMPS_SENT) {
		/* The last statement's outcome never came back: what it did
		 * is unknown. Without handles of their own, later outcomes
		 * cannot be paired with their statements either (pipelined,
		 * or sent and never read). */
		memset(&e->set, 0, sizeof e->set);
		e->pending = 0;
		e->stuck = 1;
	}
	if (e && !e->stuck) {
		*out = e->set;
		known = 1;
	}
	pthread_mutex_unlock(&conn_temps_mu);
	return known;
}

void ag_sql_will_leave(const void *conn, long gen, int how, const struct ag_sql_temps *next,
		       const char *sql, size_t len)
{
	if (how == AG_TEMPS_PREPARE)
		return;   /* ag_sql_prepared says what will run */
	struct ag_sql_temps t = *next;
	if (reorders_names(sql, len))
		memset(&t, 0, sizeof t);
	pthread_mutex_lock(&conn_temps_mu);
	struct conn_temps *e = conn_temps_of(conn, gen, 0);
	if (e && !e->stuck && how == AG_TEMPS_CALL) {
		/* Beside a prepared statement that waits: the sqlite3 shell
		 * runs its own look at sqlite_master between compiling a
		 * CREATE and running it. */
		e->call_next = t;
		e->call = 1;
	} else if (e && !e->stuck) {
		e->next = t;
		e->pending = 1;
		e->stmt = NULL;
	}
	pthread_mutex_unlock(&conn_temps_mu);
}

/* "temp" in any case, anywhere in s. */
static int says_temp(const char *s, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if ((s[i] | 0x20) == 't' && (s[i + 1] | 0x20) == 'e' && (s[i + 2] | 0x20) == 'm' &&
		    (s[i + 3] | 0x20) == 'p')
			return 1;
	return 0;
}

void ag_sql_prepared(const void *conn, long gen, const void *stmt, const char *sql, size_t len)
{
	if (!stmt)
		return;   /* nothing compiled, nothing will run; a read changes no table */
	pthread_mutex_lock(&conn_temps_mu);
	struct conn_temps *e = conn_temps_of(conn, gen, 1);
	if (e && !e->stuck) {
		/* Another one prepared and not yet run: when it runs, if
		 * ever, its effect is not paired with what is read now. */
		if (e->pending)
			memset(&e->set, 0, sizeof e->set);
		/* Only this much was compiled: what the statement does when
		 * it runs is this part's, not the whole text's. */
		struct ag_sql_temps t = e->set;
		/* Nothing held and nothing made (every way to make one says
		 * "temp": TEMP, TEMPORARY, temp., pg_temp.): nothing left,
		 * without reading the statement a second time. */
		if (sql && (t.n || says_temp(sql, len)))
			ag_sql_classify_temps(sql, (long)len, &t);
		if (!sql || reorders_names(sql, len))
			memset(&t, 0, sizeof t);   /* which part: not known */
		e->next = t;
		e->stmt = stmt;
		e->pending = 1;
	}
	pthread_mutex_unlock(&conn_temps_mu);
}

void ag_sql_ran(const void *conn, long gen, const void *stmt, int ok, int harmless)
{
	pthread_mutex_lock(&conn_temps_mu);
	struct conn_temps *e = conn_temps_of(conn, gen, 0);
	if (e && !e->stuck && e->call && !stmt) {
		e->call = 0;
		/* What the waiting prepared statement will leave was read
		 * from the set before this call: if the call changed it, that
		 * reading is stale (it may bring back a table the call
		 * dropped). */
		if (!ok || !temps_same(&e->call_next, &e->set)) {
			e->set = ok ? e->call_next : (struct ag_sql_temps){0};
			e->pending = 0;
		}
	} else if (e && !e->stuck) {
		if (e->pending && e->stmt == stmt) {
			e->set = ok ? e->next : (struct ag_sql_temps){0};
			e->pending = 0;
		} else if (stmt && (!ok || !harmless)) {
			/* Another of its statements, run again (a cached one
			 * stepped anew) or failed: not the effect that was read. */
			memset(&e->set, 0, sizeof e->set);
		}
	}
	pthread_mutex_unlock(&conn_temps_mu);
}

void ag_sql_stuck(const void *conn, long gen)
{
	pthread_mutex_lock(&conn_temps_mu);
	struct conn_temps *e = conn_temps_of(conn, gen, 1);
	if (e) {
		memset(&e->set, 0, sizeof e->set);
		e->pending = 0;
		e->stuck = 1;
	}
	pthread_mutex_unlock(&conn_temps_mu);
}

int ag_sql_waiting(const void *conn, long gen)
{
	pthread_mutex_lock(&conn_temps_mu);
	struct conn_temps *e = conn_temps_of(conn, gen, 0);
	int w = e && e->pending && !e->stuck;
	pthread_mutex_unlock(&conn_temps_mu);
	return w;
}

void ag_sql_gone(const void *conn)
{
	pthread_mutex_lock(&conn_temps_mu);
	for (int i = 0; i < CONN_TEMPS; i++)
		if (conn_temps[i].conn == conn)
			memset(&conn_temps[i], 0, sizeof conn_temps[i]);
	pthread_mutex_unlock(&conn_temps_mu);
}

