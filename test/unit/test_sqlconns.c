/* lib/sqlconns.c: what a connection believes of its temporary tables is
 * only what statements that really ran left, per connection and session,
 * and anything not seen to run makes it forget. */
#include <criterion/criterion.h>
#include <string.h>

#include "agentguard.h"

/* One statement of conn, as a hook runs it: read against the connection's
 * set, then its outcome. The class it was judged as. */
static enum ag_sql_class stmt(const void *conn, long gen, const char *sql, int ok)
{
	struct ag_sql_temps t;
	int known = ag_sql_temps_of(conn, gen, AG_TEMPS_SENT, &t);
	enum ag_sql_class c = ag_sql_classify_temps(sql, -1, &t);
	if (known)
		ag_sql_will_leave(conn, gen, AG_TEMPS_SENT, &t, sql, strlen(sql));
	ag_sql_ran(conn, gen, NULL, ok, 0);
	return c;
}

static int objs[64];   /* distinct connection addresses */

Test(sqlconns, a_temp_table_that_ran_is_the_connections_to_drop)
{
	const void *a = &objs[0];
	cr_assert_eq(stmt(a, 1, "CREATE TEMP TABLE scratch AS SELECT * FROM users", 1), AG_SQL_DDL);
	/* Its rows are nobody else's either. */
	cr_assert_eq(stmt(a, 1, "UPDATE scratch SET x = 1", 1), AG_SQL_UPDATE);
	cr_assert_eq(stmt(a, 1, "DELETE FROM scratch", 1), AG_SQL_DELETE);
	cr_assert_eq(stmt(a, 1, "DELETE FROM users", 1), AG_SQL_DELETE_ALL);
	cr_assert_eq(stmt(a, 1, "DROP TABLE scratch", 1), AG_SQL_DDL);
	/* Dropped: the name is anyone's again. */
	cr_assert_eq(stmt(a, 1, "DROP TABLE scratch", 1), AG_SQL_DROP_TABLE);
	cr_assert_eq(stmt(a, 1, "UPDATE scratch SET x = 1", 1), AG_SQL_UPDATE_ALL);
	ag_sql_gone(a);
}

Test(sqlconns, a_failed_or_refused_create_leaves_no_belief)
{
	const void *a = &objs[1];
	cr_assert_eq(stmt(a, 1, "CREATE TEMP TABLE users AS SELECT * FROM nonexistent", 0), AG_SQL_DDL);
	cr_assert_eq(stmt(a, 1, "DROP TABLE users", 1), AG_SQL_DROP_TABLE);
	ag_sql_gone(a);
}

Test(sqlconns, any_failure_forgets_what_was_made_before)
{
	/* The failure may have aborted the transaction that made it. */
	const void *a = &objs[2];
	stmt(a, 1, "BEGIN", 1);
	stmt(a, 1, "CREATE TEMP TABLE users(a int)", 1);
	stmt(a, 1, "SELECT 1/0", 0);
	stmt(a, 1, "COMMIT", 1);
	cr_assert_eq(stmt(a, 1, "DROP TABLE users", 1), AG_SQL_DROP_TABLE);
	ag_sql_gone(a);
}

Test(sqlconns, connections_and_sessions_are_apart)
{
	const void *a = &objs[3], *b = &objs[4];
	stmt(a, 1, "CREATE TEMP TABLE t(a int)", 1);
	cr_assert_eq(stmt(b, 1, "DROP TABLE t", 1), AG_SQL_DROP_TABLE);
	/* The same object in a new session (a reset): nothing carries over. */
	cr_assert_eq(stmt(a, 2, "DROP TABLE t", 1), AG_SQL_DROP_TABLE);
	stmt(a, 3, "CREATE TEMP TABLE t(a int)", 1);
	ag_sql_gone(a);
	/* Closed, and the address reused: not inherited. */
	cr_assert_eq(stmt(a, 3, "DROP TABLE t", 1), AG_SQL_DROP_TABLE);
	ag_sql_gone(a);
	ag_sql_gone(b);
}

Test(sqlconns, a_changed_search_path_forgets)
{
	/* After each, a DROP of the temporary table's name may mean the real
	 * table: in any case, at the text's very start or end. */
	static const char *const moves[] = {
		"SET search_path = public, pg_temp",
		"SELECT set_config('search_' || 'path', 'public,pg_temp', false)",
		"SEARCH_PATH",
		"SET search_path TO PG_TEMP",
	};
	const void *a = &objs[5];
	for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++) {
		stmt(a, 1, "CREATE TEMP TABLE users(a int)", 1);
		stmt(a, 1, moves[i], 1);
		cr_assert_eq(stmt(a, 1, "DROP TABLE users", 1), AG_SQL_DROP_TABLE, "after %s", moves[i]);
	}
	/* An underscore elsewhere changes nothing. */
	stmt(a, 1, "CREATE TEMP TABLE users(a int)", 1);
	stmt(a, 1, "SELECT my_col FROM pg_class_x_", 1);
	cr_assert_eq(stmt(a, 1, "DROP TABLE users", 1), AG_SQL_DDL);
	ag_sql_gone(a);
}

Test(sqlconns, an_outcome_never_seen_stops_learning)
{
	/* Sent, never read (or pipelined): the next statement finds it
	 * waiting; from then on nothing is learned. */
	const void *a = &objs[6];
	stmt(a, 1, "CREATE TEMP TABLE t(a int)", 1);
	struct ag_sql_temps t;
	cr_assert(ag_sql_temps_of(a, 1, AG_TEMPS_SENT, &t));
	ag_sql_classify_temps("SELECT 1", -1, &t);
	ag_sql_will_leave(a, 1, AG_TEMPS_SENT, &t, "SELECT 1", 8);
	cr_assert(ag_sql_waiting(a, 1));
	cr_assert_eq(stmt(a, 1, "DROP TABLE t", 1), AG_SQL_DROP_TABLE);
	stmt(a, 1, "CREATE TEMP TABLE u(a int)", 1);
	cr_assert_eq(stmt(a, 1, "DROP TABLE u", 1), AG_SQL_DROP_TABLE);
	ag_sql_gone(a);
	/* Prepared statements run later by name: the same. */
	stmt(a, 1, "CREATE TEMP TABLE u(a int)", 1);
	ag_sql_stuck(a, 1);
	cr_assert_eq(stmt(a, 1, "DROP TABLE u", 1), AG_SQL_DROP_TABLE);
	ag_sql_gone(a);
}

/* SQLite: outcomes paired with their statement handles. */
static enum ag_sql_class prep(const void *db, const void *st, const char *sql, size_t compiled)
{
	struct ag_sql_temps t;
	int known = ag_sql_temps_of(db, 0, AG_TEMPS_PREPARE, &t);
	enum ag_sql_class c = ag_sql_classify_temps(sql, -1, &t);
	if (known)
		ag_sql_will_leave(db, 0, AG_TEMPS_PREPARE, &t, sql, strlen(sql));
	ag_sql_prepared(db, 0, st, sql, compiled);
	return c;
}

Test(sqlconns, sqlite_steps_pair_with_their_statements)
{
	const void *db = &objs[7], *s1 = &objs[8], *s2 = &objs[9];
	const char *two = "create temp table t(a); drop table t";
	/* Only the first statement is compiled: t is made, not dropped. */
	prep(db, s1, two, strlen("create temp table t(a);"));
	/* The shell's own read in between, through sqlite3_exec. */
	struct ag_sql_temps t;
	cr_assert(ag_sql_temps_of(db, 0, AG_TEMPS_CALL, &t));
	ag_sql_will_leave(db, 0, AG_TEMPS_CALL, &t, "SELECT 1", 8);
	ag_sql_ran(db, 0, NULL, 1, 0);
	ag_sql_ran(db, 0, s1, 1, 0);
	cr_assert_eq(prep(db, s2, "drop table t", 12), AG_SQL_DDL);
	ag_sql_ran(db, 0, s2, 1, 0);
	cr_assert_eq(prep(db, s2, "drop table t", 12), AG_SQL_DROP_TABLE);
	ag_sql_gone(db);

	/* Made, then a cached statement that writes is stepped again: its
	 * effect is not the one read, so t is forgotten. */
	prep(db, s1, "create temp table t(a)", 22);
	ag_sql_ran(db, 0, s1, 1, 0);
	ag_sql_ran(db, 0, s2, 1, 0);
	cr_assert_eq(prep(db, s2, "drop table t", 12), AG_SQL_DROP_TABLE);
	ag_sql_gone(db);

	/* A statement that did not finish (an error, or reset before done). */
	prep(db, s1, "create temp table t(a)", 22);
	ag_sql_ran(db, 0, s1, 0, 0);
	cr_assert_eq(prep(db, s2, "drop table t", 12), AG_SQL_DROP_TABLE);
	ag_sql_gone(db);

	/* An exec that drops while a prepared CREATE waits: what the CREATE
	 * was read to leave is stale, and must not bring x back. */
	prep(db, s1, "create temp table x(a)", 22);
	ag_sql_ran(db, 0, s1, 1, 0);
	prep(db, s2, "create temp table y(a)", 22);
	cr_assert(ag_sql_temps_of(db, 0, AG_TEMPS_CALL, &t));
	ag_sql_classify_temps("drop table x", -1, &t);
	ag_sql_will_leave(db, 0, AG_TEMPS_CALL, &t, "drop table x", 12);
	ag_sql_ran(db, 0, NULL, 1, 0);
	ag_sql_ran(db, 0, s2, 1, 0);
	cr_assert_eq(prep(db, s1, "drop table x", 12), AG_SQL_DROP_TABLE);
	ag_sql_gone(db);
}

Test(sqlconns, a_full_table_gives_no_memory_and_no_false_one)
{
	/* More connections than slots: the oldest are pushed out and forget;
	 * none inherits another's. */
	for (int i = 10; i < 60; i++)
		stmt(&objs[i], 1, "CREATE TEMP TABLE t(a int)", 1);
	cr_assert_eq(stmt(&objs[10], 1, "DROP TABLE t", 1), AG_SQL_DROP_TABLE);
	cr_assert_eq(stmt(&objs[59], 1, "DROP TABLE t", 1), AG_SQL_DDL);
	for (int i = 10; i < 60; i++)
		ag_sql_gone(&objs[i]);
}
