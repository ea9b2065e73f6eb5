/* ag_sql_targets: the names a destructive statement can destroy, and what
 * must never be taken for one (strings, comments, dollar quotes). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "agentguard.h"

/* "t:schema.name,s:name,d:name" for comparison. */
static const char *shown(const char *sql, int mysql, int *unknown, int *cascade)
{
	static char out[2048];
	struct ag_sql_targets T;
	size_t n = 0;

	ag_sql_targets(sql, -1, mysql, &T);
	out[0] = 0;
	for (int i = 0; i < T.n; i++)
		n += (size_t)snprintf(out + n, sizeof out - n, "%s%c:%s%s%s", i ? "," : "",
				      "tsd"[T.t[i].kind], T.t[i].schema, T.t[i].schema[0] ? "." : "",
				      T.t[i].name);
	if (unknown)
		*unknown = T.unknown;
	if (cascade)
		*cascade = T.cascade;
	return out;
}

#define PG(sql, want) cr_expect_str_eq(shown(sql, 0, NULL, NULL), want, "%s", sql)
#define MY(sql, want) cr_expect_str_eq(shown(sql, 1, NULL, NULL), want, "%s", sql)

Test(sqltargets, each_phrase)
{
	PG("DROP TABLE users", "t:users");
	PG("drop table if exists Users, app.\"Orders\" cascade", "t:users,t:app.Orders");
	PG("TRUNCATE users", "t:users");
	PG("truncate table only a, b *", "t:a,t:b");
	PG("DELETE FROM users", "t:users");
	PG("delete from only public.users where true", "t:public.users");
	PG("UPDATE users SET name = 'x'", "t:users");
	PG("ALTER TABLE IF EXISTS ONLY users DROP COLUMN name", "t:users");
	PG("DROP SCHEMA app CASCADE", "s:app");
	PG("DROP DATABASE IF EXISTS shop", "d:shop");
	PG("DELETE FROM db.app.users", "t:app.users");
	MY("DROP SCHEMA shop", "d:shop");
	MY("DELETE LOW_PRIORITY FROM `Users`", "t:Users");
	MY("DELETE u FROM users u JOIN x ON x.id = u.id", "t:u");
	MY("UPDATE IGNORE Users SET a = 1", "t:Users");
}

Test(sqltargets, wherever_they_stand)
{
	PG("SELECT 1; DROP TABLE users", "t:users");
	PG("WITH d AS (DELETE FROM users RETURNING *) SELECT count(*) FROM d", "t:users");
	PG("/* cleanup */ delete from users;", "t:users");
	PG("DELETE FROM a; TRUNCATE b; DELETE FROM a", "t:a,t:b");
}

Test(sqltargets, not_targets)
{
	PG("SELECT 'DROP TABLE users'", "");
	PG("SELECT $x$ DELETE FROM users $x$", "");
	PG("-- DROP TABLE users\nSELECT 1", "");
	PG("/* DROP /* TABLE */ users */ SELECT 1", "");
	PG("SELECT * FROM t FOR UPDATE", "");
	PG("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 1", "");
	PG("CREATE TABLE c (p int REFERENCES p ON UPDATE CASCADE ON DELETE CASCADE)", "");
	MY("INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = 1", "");
	MY("SELECT 'it''s', \"DROP TABLE x\"", "");
}

Test(sqltargets, unknown_and_cascade)
{
	int u = 0, c = 0;
	char big[200];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = 0;
	char sql[300];
	snprintf(sql, sizeof sql, "DROP TABLE %s", big);
	shown(sql, 0, &u, &c);
	cr_expect(u, "a name over 63 bytes is unknown");
	shown("DROP TABLE", 0, &u, &c);
	cr_expect(u, "no name after DROP TABLE");
	shown("DROP TABLE t CASCADE", 0, &u, &c);
	cr_expect(!u && c);
	shown("CREATE PROCEDURE zap() BEGIN DROP TABLE users; END", 1, &u, NULL);
	cr_expect(u, "a routine's body destroys later");
	shown("CREATE OR REPLACE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM u", 0, &u, NULL);
	cr_expect(u, "a rule's action destroys later");
	shown("CREATE TABLE t (a int); DROP TABLE u", 0, &u, NULL);
	cr_expect(!u, "a table is not a routine");
	char many[1024] = "TRUNCATE ";
	for (int i = 0; i < 20; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "%st%d", i ? "," : "", i);
	shown(many, 0, &u, NULL);
	cr_expect(u, "more names than it holds");
}

Test(sqltargets, cut_text_never_overreads)
{
	const char *texts[] = {"DROP TABLE \"unterminated", "DELETE FROM $q$ never", "/* open",
			       "TRUNCATE a.", "UPDATE 'x", "DROP TABLE a.b."};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
		for (size_t n = 0; n <= strlen(texts[i]); n++) {
			struct ag_sql_targets T;
			ag_sql_targets(texts[i], (long)n, 0, &T);
			ag_sql_targets(texts[i], (long)n, 1, &T);
			cr_expect(T.n <= AG_SQL_TARGETS);
		}
}
