/* ag_sql_classify: one test per class family, then the ways a classifier
 * gets fooled (quotes, comments, dialects, cut or malformed text), the
 * order of classes across statements, and a short fuzz. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agentguard.h"

#define OTHER AG_SQL_OTHER
#define READ AG_SQL_READ
#define INSERT AG_SQL_INSERT
#define UPDATE AG_SQL_UPDATE
#define DELETE AG_SQL_DELETE
#define DDL AG_SQL_DDL
#define ALTER_DROP AG_SQL_ALTER_DROP
#define UPDATE_ALL AG_SQL_UPDATE_ALL
#define DELETE_ALL AG_SQL_DELETE_ALL
#define TRUNCATE AG_SQL_TRUNCATE
#define DROP_TABLE AG_SQL_DROP_TABLE
#define DROP_DATABASE AG_SQL_DROP_DATABASE
#define SAFETY_OFF AG_SQL_SAFETY_OFF

static void check_len(const char *sql, long len, enum ag_sql_class want)
{
	enum ag_sql_class got = ag_sql_classify(sql, len);
	cr_expect_eq(got, want, "%s: got %s, want %s", sql, ag_sql_class_name(got),
		     ag_sql_class_name(want));
}

/* Both calling conventions must agree. */
static void check(const char *sql, enum ag_sql_class want)
{
	check_len(sql, -1, want);
	check_len(sql, (long)strlen(sql), want);
}

/* The spec's order, most destructive first. */
static const enum ag_sql_class ORDER[] = {
	SAFETY_OFF, DROP_DATABASE, DROP_TABLE, TRUNCATE, DELETE_ALL, UPDATE_ALL,
	ALTER_DROP, DDL, DELETE, UPDATE, INSERT, OTHER, READ,
};
#define NCLASS ((int)(sizeof ORDER / sizeof ORDER[0]))

static int position(enum ag_sql_class c)
{
	for (int i = 0; i < NCLASS; i++)
		if (ORDER[i] == c)
			return i;
	return -1;
}

/* ---- one test per family ------------------------------------------------- */

Test(sqlclass, other_and_empty)
{
	check("", OTHER);
	check("   \n\t ", OTHER);
	check(";", OTHER);
	check(";;; ;", OTHER);
	check("-- only a comment", OTHER);
	check("/* only a comment */", OTHER);
	check("BEGIN", OTHER);
	check("BEGIN TRANSACTION", OTHER);
	check("BEGIN IMMEDIATE", OTHER);
	check("START TRANSACTION", OTHER);
	check("COMMIT", OTHER);
	check("ROLLBACK TO SAVEPOINT a", OTHER);
	check("SAVEPOINT a", OTHER);
	check("SET search_path = app", OTHER);
	check("SET NAMES utf8mb4", OTHER);
	check("SET autocommit = 0", OTHER);
	check("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", OTHER);
	check("SET TIME ZONE 'UTC'", OTHER);
	check("VACUUM", OTHER);
	check("VACUUM INTO '/tmp/copy.db'", OTHER);
	check("ANALYZE t", OTHER);
	check("ANALYZE TABLE t", OTHER);
	check("REINDEX t", OTHER);
	check("LOCK TABLES t WRITE", OTHER);
	check("CALL p(1)", OTHER);
	check("USE shop", OTHER);
	check("ATTACH DATABASE 'x.db' AS x", OTHER);
	check("DETACH x", OTHER);
	check("PRAGMA journal_mode = WAL", OTHER);
	check("PRAGMA foreign_keys = ON", OTHER);
	check("LOAD 'auto_explain'", OTHER);
	check("frobnicate the widgets", OTHER);
	cr_expect_eq(ag_sql_classify(NULL, -1), OTHER);
	cr_expect_eq(ag_sql_classify("DROP TABLE t", 0), OTHER);
}

Test(sqlclass, read)
{
	check("SELECT 1", READ);
	check("select * from users where id = 1", READ);
	check("SELECT * FROM t FOR UPDATE", READ);
	check("SELECT a INTO @x FROM t", READ);
	check("WITH x AS (SELECT 1) SELECT * FROM x", READ);
	check("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) "
	      "SELECT * FROM r", READ);
	check("(SELECT 1) UNION (SELECT 2)", READ);
	check("EXPLAIN SELECT 1", READ);
	check("EXPLAIN QUERY PLAN SELECT 1", READ);
	check("SHOW TABLES", READ);
	check("DESCRIBE users", READ);
	check("DESC users", READ);
	check("VALUES (1), (2)", READ);
	check("TABLE users", READ);
	check("PRAGMA foreign_keys", READ);
	check("PRAGMA table_info(users)", READ);
	check("PRAGMA main.index_list('users')", READ);
	check("COPY t TO STDOUT", READ);
	check("COPY (SELECT * FROM t WHERE x) TO '/tmp/x.csv'", READ);
	check("SELECT 1; SELECT 2;", READ);
}

Test(sqlclass, insert)
{
	check("INSERT INTO t VALUES (1)", INSERT);
	check("insert into t (a, b) select a, b from u where c", INSERT);
	check("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 1", INSERT);
	check("INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = 1", INSERT);
	check("INSERT OR REPLACE INTO t VALUES (1)", INSERT);
	check("REPLACE INTO t VALUES (1)", INSERT);
	check("UPSERT INTO t VALUES (1)", INSERT);
	check("COPY t FROM STDIN", INSERT);
	check("COPY t (a, b) FROM '/tmp/x.csv' WITH (FORMAT csv)", INSERT);
	check("LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t", INSERT);
	check("LOAD XML INFILE 'x.xml' INTO TABLE t", INSERT);
	check("WITH s AS (SELECT 1) INSERT INTO t SELECT * FROM s", INSERT);
	/* column names that are keywords are not statements */
	check("INSERT INTO t (update, delete) VALUES (1, 2)", INSERT);
}

Test(sqlclass, update)
{
	check("UPDATE t SET a = 1 WHERE id = 2", UPDATE);
	check("update t set a = 1 where(id = 2)", UPDATE);
	check("UPDATE t SET a = u.b FROM u WHERE t.id = u.id", UPDATE);
	check("UPDATE t SET a = 1 WHERE CURRENT OF c", UPDATE);
	check("UPDATE t SET a = (SELECT max(b) FROM u) WHERE id = 2", UPDATE);
	check("WITH x AS (SELECT 1) UPDATE t SET a = 1 WHERE id IN (SELECT * FROM x)", UPDATE);
}

Test(sqlclass, update_all)
{
	check("UPDATE users SET admin = 1", UPDATE_ALL);
	check("UPDATE t SET a = 1 LIMIT 5", UPDATE_ALL);
	check("UPDATE t SET a = 1 ORDER BY id LIMIT 5", UPDATE_ALL);
	check("UPDATE a JOIN b ON a.id = b.id SET a.x = 1", UPDATE_ALL);
	check("UPDATE t SET a = 1 RETURNING *", UPDATE_ALL);
}

Test(sqlclass, delete)
{
	check("DELETE FROM t WHERE id = 3", DELETE);
	check("DeLeTe FrOm t wHeRe id=3", DELETE);
	check("DELETE FROM t WHERE id = 1 RETURNING *", DELETE);
	check("DELETE FROM a USING b WHERE a.id = b.id", DELETE);
	check("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id WHERE t2.x = 1", DELETE);
	check("DELETE FROM t WHERE id = 1 ORDER BY id LIMIT 1", DELETE);
	check("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", DELETE);
}

Test(sqlclass, delete_all)
{
	check("DELETE FROM logs", DELETE_ALL);
	check("DELETE FROM t;", DELETE_ALL);
	check("delete from t", DELETE_ALL);
	check("DELETE FROM t LIMIT 10", DELETE_ALL);
	check("DELETE FROM t ORDER BY id LIMIT 10", DELETE_ALL);
	check("DELETE FROM t RETURNING *", DELETE_ALL);
	check("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", DELETE_ALL);
	check("DELETE FROM \"where\"", DELETE_ALL);
	check("DELETE FROM `where`", DELETE_ALL);
	check("DELETE/**/FROM/**/t", DELETE_ALL);
}

Test(sqlclass, ddl)
{
	check("CREATE TABLE t (id int)", DDL);
	check("CREATE TABLE IF NOT EXISTS t (id int)", DDL);
	check("CREATE TEMP TABLE x AS SELECT * FROM u", DDL);
	check("CREATE TABLE x AS SELECT * FROM u WHERE a", DDL);
	check("CREATE TABLE t (delete int, update text)", DDL);
	check("CREATE INDEX i ON t (a)", DDL);
	check("CREATE OR REPLACE VIEW v AS SELECT 1", DDL);
	check("ALTER TABLE t ADD COLUMN c int", DDL);
	check("ALTER TABLE t RENAME TO u", DDL);
	check("ALTER TABLE t ALTER COLUMN c DROP DEFAULT", DDL);
	check("ALTER TABLE t ALTER COLUMN c DROP NOT NULL", DDL);
	check("ALTER TABLE t ALTER c DROP DEFAULT", DDL);
	check("ALTER TABLE t DISABLE KEYS", DDL);
	check("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (b) "
	      "ON DELETE CASCADE", DDL);
	check("ALTER INDEX i RENAME TO j", DDL);
	check("ALTER SYSTEM SET work_mem = '64MB'", DDL);
	check("RENAME TABLE a TO b", DDL);
	check("DROP INDEX i", DDL);
	check("DROP VIEW IF EXISTS v", DDL);
	check("DROP TRIGGER tr", DDL);
	check("DROP FUNCTION f(int)", DDL);
	check("DROP SEQUENCE s", DDL);
	check("DROP MATERIALIZED VIEW mv", DDL);
	check("DROP USER bob", DDL);
	check("GRANT SELECT, INSERT, UPDATE, DELETE ON t TO bob", DDL);
	check("REVOKE DELETE ON t FROM bob", DDL);
	check("COMMENT ON TABLE t IS 'drop me later'", DDL);
	check("SELECT * INTO backup FROM users", DDL);
	check("CREATE FUNCTION f() RETURNS void AS $$ DELETE FROM t WHERE id = 1; $$ LANGUAGE sql",
	      DDL);
	check("CREATE TRIGGER tr AFTER INSERT ON a BEGIN "
	      "DELETE FROM b WHERE id = new.id; END;", DDL);
	check("CREATE RULE r AS ON DELETE TO t DO INSTEAD NOTHING", DDL);
	check("CREATE TRIGGER tr BEFORE UPDATE ON x FOR EACH ROW SET NEW.a = 1", DDL);
	check("CREATE TRIGGER tr BEFORE DELETE ON t FOR EACH ROW EXECUTE FUNCTION f()", DDL);
	check("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO "
	      "DELETE FROM logs WHERE ts < NOW()", DDL);
}

Test(sqlclass, alter_drop)
{
	check("ALTER TABLE t DROP COLUMN c", ALTER_DROP);
	check("ALTER TABLE t DROP c", ALTER_DROP);
	check("alter table t drop constraint fk", ALTER_DROP);
	check("ALTER TABLE t DROP INDEX i", ALTER_DROP);
	check("ALTER TABLE t DROP PRIMARY KEY", ALTER_DROP);
	check("ALTER TABLE t DROP FOREIGN KEY fk", ALTER_DROP);
	check("ALTER TABLE t DROP PARTITION p1", ALTER_DROP);
	check("ALTER TABLE IF EXISTS ONLY t DROP COLUMN IF EXISTS c CASCADE", ALTER_DROP);
	check("ALTER TABLE t ADD COLUMN d int, DROP COLUMN c", ALTER_DROP);
	check("ALTER TYPE addr DROP ATTRIBUTE zip", ALTER_DROP);
	/* CASCADE drops the columns that use the type */
	check("DROP TYPE mood CASCADE", ALTER_DROP);
	check("DROP DOMAIN d CASCADE", ALTER_DROP);
}

Test(sqlclass, truncate)
{
	check("TRUNCATE orders", TRUNCATE);
	check("TRUNCATE TABLE orders", TRUNCATE);
	check("truncate table a, b, c restart identity cascade", TRUNCATE);
	check("TRUNCATE ONLY a", TRUNCATE);
	check("ALTER TABLE t TRUNCATE PARTITION p1", TRUNCATE);
	check("ALTER TABLE t DISCARD TABLESPACE", TRUNCATE);
	check("ALTER TABLE t ENGINE = BLACKHOLE", TRUNCATE);
}

Test(sqlclass, drop_table)
{
	check("DROP TABLE users", DROP_TABLE);
	check("drop table if exists x", DROP_TABLE);
	check("DROP TABLE a, b CASCADE", DROP_TABLE);
	check("DROP FOREIGN TABLE ft", DROP_TABLE);
	check("DROP TABLE \"my table\"", DROP_TABLE);
	/* MariaDB: CREATE OR REPLACE TABLE drops the old table first */
	check("CREATE OR REPLACE TABLE t (a int)", DROP_TABLE);
}

Test(sqlclass, drop_database)
{
	check("DROP DATABASE shop", DROP_DATABASE);
	check("DROP DATABASE IF EXISTS shop", DROP_DATABASE);
	check("DROP SCHEMA app CASCADE", DROP_DATABASE);
	check("drop schema if exists app", DROP_DATABASE);
	check("DROP OWNED BY bob", DROP_DATABASE);
	check("CREATE OR REPLACE DATABASE shop", DROP_DATABASE);
}

Test(sqlclass, safety_off)
{
	check("SET sql_safe_updates = 0", SAFETY_OFF);
	check("SET sql_safe_updates=OFF", SAFETY_OFF);
	check("SET SESSION sql_safe_updates = 0", SAFETY_OFF);
	check("SET GLOBAL SQL_SAFE_UPDATES = false", SAFETY_OFF);
	check("SET @@sql_safe_updates := 0", SAFETY_OFF);
	check("SET @@session.sql_safe_updates = 0", SAFETY_OFF);
	check("SET @@GLOBAL.sql_safe_updates='OFF'", SAFETY_OFF);
	check("SET sql_safe_updates = DEFAULT", SAFETY_OFF);
	check("SET FOREIGN_KEY_CHECKS=0", SAFETY_OFF);
	check("SET a = 1, foreign_key_checks = 0", SAFETY_OFF);
	check("SET @x = 0, @@session.foreign_key_checks = 0", SAFETY_OFF);
	check("SET unique_checks = 0", SAFETY_OFF);
	check("SET sql_log_bin = 0", SAFETY_OFF);
	check("SET GLOBAL read_only = OFF", SAFETY_OFF);
	/* an expression we cannot evaluate counts as off */
	check("SET FOREIGN_KEY_CHECKS = @OLD_FOREIGN_KEY_CHECKS", SAFETY_OFF);
	check("/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, "
	      "FOREIGN_KEY_CHECKS=0 */;", SAFETY_OFF);
	check("PRAGMA foreign_keys=OFF", SAFETY_OFF);
	check("PRAGMA foreign_keys = 0", SAFETY_OFF);
	check("pragma main.foreign_keys = no", SAFETY_OFF);
	check("PRAGMA foreign_keys(false)", SAFETY_OFF);
	check("PRAGMA writable_schema=ON", SAFETY_OFF);
	check("PRAGMA writable_schema = 1", SAFETY_OFF);
	check("PRAGMA ignore_check_constraints = true", SAFETY_OFF);
	check("PRAGMA query_only = 0", SAFETY_OFF);
	check("SET session_replication_role = replica", SAFETY_OFF);
	check("SET session_replication_role TO 'replica'", SAFETY_OFF);
	check("SET LOCAL session_replication_role = replica", SAFETY_OFF);
	check("SELECT set_config('session_replication_role', 'replica', false)", SAFETY_OFF);
	check("ALTER ROLE bob SET session_replication_role = replica", SAFETY_OFF);
	check("ALTER DATABASE d SET default_transaction_read_only = off", SAFETY_OFF);
	check("ALTER TABLE t DISABLE TRIGGER ALL", SAFETY_OFF);
	check("ALTER TABLE t DISABLE TRIGGER USER", SAFETY_OFF);
	check("ALTER TABLE t DISABLE ROW LEVEL SECURITY", SAFETY_OFF);

	/* switching them on, or other settings, is not */
	check("SET sql_safe_updates = 1", OTHER);
	check("SET FOREIGN_KEY_CHECKS = ON", OTHER);
	check("SET foreign_key_checks = DEFAULT", OTHER);
	check("SET @foreign_key_checks = 0", OTHER);
	check("PRAGMA foreign_keys = 1", OTHER);
	check("PRAGMA writable_schema = OFF", OTHER);
	check("SET session_replication_role = origin", OTHER);
	check("SET session_replication_role TO DEFAULT", OTHER);
	check("ALTER TABLE t ENABLE TRIGGER ALL", DDL);
}

/* ---- statement shapes ---------------------------------------------------- */

Test(sqlclass, explain)
{
	check("EXPLAIN DELETE FROM t", READ);
	check("EXPLAIN UPDATE t SET a = 1", READ);
	check("EXPLAIN FORMAT=JSON DELETE FROM t", READ);
	check("EXPLAIN QUERY PLAN DELETE FROM t", READ);
	check("EXPLAIN (ANALYZE false) DELETE FROM t", READ);
	check("EXPLAIN ANALYZE SELECT 1", READ);
	/* ANALYZE runs the statement */
	check("EXPLAIN ANALYZE DELETE FROM t", DELETE_ALL);
	check("EXPLAIN ANALYSE VERBOSE UPDATE t SET a = 1", UPDATE_ALL);
	check("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t WHERE id = 1", DELETE);
	check("EXPLAIN (ANALYZE true, FORMAT JSON) DELETE FROM t", DELETE_ALL);
	check("EXPLAIN ANALYZE FORMAT=TREE DELETE FROM t", DELETE_ALL);
	check("EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", DDL);
	/* MariaDB's ANALYZE <statement> runs it too */
	check("ANALYZE DELETE FROM t", DELETE_ALL);
	check("ANALYZE FORMAT=JSON UPDATE t SET a = 1 WHERE id = 1", UPDATE);
}

Test(sqlclass, data_modifying_ctes)
{
	check("WITH d AS (DELETE FROM users RETURNING *) SELECT count(*) FROM d", DELETE_ALL);
	check("WITH x AS (UPDATE t SET a=1 WHERE id=2 RETURNING *) SELECT 1", UPDATE);
	check("WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT 1", UPDATE_ALL);
	check("WITH a AS (SELECT 1), b AS (DELETE FROM t WHERE x RETURNING *) "
	      "SELECT * FROM b", DELETE);
	check("WITH a AS MATERIALIZED (DELETE FROM t RETURNING *) SELECT * FROM a", DELETE_ALL);
	check("WITH a AS NOT MATERIALIZED (INSERT INTO t VALUES (1) RETURNING *) "
	      "SELECT * FROM a", INSERT);
	check("WITH x AS (SELECT 1) DELETE FROM t", DELETE_ALL);
	check("WITH x AS (SELECT id FROM u WHERE bad) DELETE FROM t", DELETE_ALL);
	check("WITH x AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM x)", DELETE);
	check("with recursive x as (select 1) update t set a = 1", UPDATE_ALL);
	check("COPY (DELETE FROM t RETURNING *) TO STDOUT", DELETE_ALL);
	check("WITH a AS (WITH b AS (SELECT 1) DELETE FROM t RETURNING *) SELECT 1",
	      DELETE_ALL);
}

Test(sqlclass, nested_where_does_not_filter)
{
	check("DELETE FROM t WHERE id IN (SELECT id FROM u WHERE x)", DELETE);
	check("UPDATE t SET a = (SELECT b FROM u WHERE u.id = 1)", UPDATE_ALL);
	check("UPDATE t SET a = (SELECT b FROM u WHERE u.id = t.id) WHERE t.k = 1", UPDATE);
	check("DELETE FROM t USING (SELECT * FROM u WHERE a) s", DELETE_ALL);
	check("UPDATE t SET a = CASE WHEN b THEN 1 ELSE 2 END", UPDATE_ALL);
	check("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d WHERE id = 1",
	      DELETE_ALL);
}

Test(sqlclass, constant_where)
{
	check("DELETE FROM t WHERE 1=1", DELETE_ALL);
	check("DELETE FROM t WHERE 1 = 1 LIMIT 5", DELETE_ALL);
	check("DELETE FROM t WHERE 1", DELETE_ALL);
	check("DELETE FROM t WHERE TRUE", DELETE_ALL);
	check("DELETE FROM t WHERE NOT FALSE", DELETE_ALL);
	check("DELETE FROM t WHERE 'a' = 'a'", DELETE_ALL);
	check("DELETE FROM t WHERE 1 <> 0", DELETE_ALL);
	check("DELETE FROM t WHERE id = id", DELETE_ALL);
	check("DELETE FROM t WHERE id = 7 OR 1 = 1", DELETE_ALL);
	check("UPDATE t SET a = 1 WHERE 2 > 1 ORDER BY id", UPDATE_ALL);
	check("DELETE FROM t WHERE", DELETE_ALL);

	check("DELETE FROM t WHERE 0 = 1", DELETE);
	check("DELETE FROM t WHERE 'a' = 'b'", DELETE);
	check("DELETE FROM t WHERE NULL = NULL", DELETE);
	check("DELETE FROM t WHERE 1 = 1 AND id = 2", DELETE);
	check("DELETE FROM t WHERE a = 1 AND (b = 2 OR 1 = 1)", DELETE);
	check("DELETE FROM t WHERE id = 0", DELETE);
}

/* The whole WHERE evaluated: parentheses, AND of tautologies, IS, LIKE
 * '%', BETWEEN and IN over constants, qualified columns compared with
 * themselves. What cannot be known (id > 0) stays a filter. */
Test(sqlclass, tautological_where)
{
	check("DELETE FROM t WHERE (1=1)", DELETE_ALL);
	check("DELETE FROM t WHERE ((1))", DELETE_ALL);
	check("DELETE FROM t WHERE 1=1 AND 2=2", DELETE_ALL);
	check("DELETE FROM t WHERE true AND id = id", DELETE_ALL);
	check("DELETE FROM t WHERE t.id = t.id", DELETE_ALL);
	check("DELETE FROM t WHERE main.t.id = main.t.id", DELETE_ALL);
	check("DELETE FROM t WHERE \"id\" = \"id\"", DELETE_ALL);
	check("DELETE FROM t WHERE id IS id", DELETE_ALL);
	check("DELETE FROM t WHERE NULL IS NULL", DELETE_ALL);
	check("DELETE FROM t WHERE 1 IS NOT NULL", DELETE_ALL);
	check("DELETE FROM t WHERE NOT 0", DELETE_ALL);
	check("DELETE FROM t WHERE NOT (1 = 0)", DELETE_ALL);
	check("DELETE FROM t WHERE 1.5", DELETE_ALL);
	check("DELETE FROM t WHERE -1", DELETE_ALL);
	check("DELETE FROM t WHERE TRUE = TRUE", DELETE_ALL);
	check("DELETE FROM t WHERE name LIKE '%'", DELETE_ALL);
	check("DELETE FROM t WHERE 1 BETWEEN 0 AND 2", DELETE_ALL);
	check("DELETE FROM t WHERE 1 IN (1, 2)", DELETE_ALL);
	check("DELETE FROM t WHERE 'a' NOT IN ('b')", DELETE_ALL);
	check("DELETE FROM t WHERE (id = 3 OR 1 = 1) AND 2 > 1", DELETE_ALL);
	check("DELETE FROM t WHERE id = 3 OR (1)", DELETE_ALL);
	check("DELETE FROM t WHERE 1 IS NOT DISTINCT FROM 1", DELETE_ALL);
	check("UPDATE t SET a = 1 WHERE (1 = 1) RETURNING id", UPDATE_ALL);
	check("UPDATE t SET a = 1 WHERE a = a", UPDATE_ALL);
	check("WITH d AS (DELETE FROM t WHERE (1=1) RETURNING *) SELECT 1", DELETE_ALL);
	check("DELETE FROM t WHERE 1=1; SELECT 1", DELETE_ALL);

	check("DELETE FROM t WHERE id > 0", DELETE);
	check("DELETE FROM t WHERE (id = 1)", DELETE);
	check("DELETE FROM t WHERE id IS NULL", DELETE);
	check("DELETE FROM t WHERE 1=1 AND id = 2", DELETE);
	check("DELETE FROM t WHERE (1=1) AND (id = 2)", DELETE);
	check("DELETE FROM t WHERE name LIKE 'a%'", DELETE);
	check("DELETE FROM t WHERE NOT 1", DELETE);
	check("DELETE FROM t WHERE NULL", DELETE);
	check("DELETE FROM t WHERE NOT NULL", DELETE);
	check("DELETE FROM t WHERE 3 BETWEEN 0 AND 2", DELETE);
	check("DELETE FROM t WHERE 3 IN (1, 2)", DELETE);
	check("DELETE FROM t WHERE id IN (1, 2)", DELETE);
	check("DELETE FROM t WHERE a.id = b.id", DELETE);
	check("DELETE FROM t WHERE id <> id", DELETE);
	check("DELETE FROM t WHERE abs(1)", DELETE);
	check("DELETE FROM t WHERE 1 - 1", DELETE);
	check("DELETE FROM t WHERE 'x'", DELETE);
	check("DELETE FROM t WHERE 1 IS NOT 1", DELETE);
	check("DELETE FROM t WHERE id = (SELECT id FROM t)", DELETE);
	check("DELETE FROM t WHERE (((((((((((((((((((1)))))))))))))))))))", DELETE);
}

Test(sqlclass, routine_and_block_bodies)
{
	/* visible bodies run later, and count */
	check("CREATE TRIGGER tr AFTER INSERT ON a BEGIN DELETE FROM b; END;", DELETE_ALL);
	check("CREATE TRIGGER tr BEFORE DELETE ON t FOR EACH ROW DELETE FROM u", DELETE_ALL);
	check("CREATE DEFINER=`root`@`localhost` TRIGGER tr BEFORE DELETE ON t "
	      "FOR EACH ROW BEGIN IF OLD.x THEN DELETE FROM u; END IF; END", DELETE_ALL);
	check("CREATE PROCEDURE p() BEGIN DELETE FROM t; END", DELETE_ALL);
	check("CREATE PROCEDURE p() MODIFIES SQL DATA DROP TABLE t", DROP_TABLE);
	check("CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC DELETE FROM t; END", DELETE_ALL);
	check("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO DELETE FROM logs", DELETE_ALL);
	check("CREATE OR REPLACE RULE r AS ON UPDATE TO t DO INSTEAD UPDATE u SET a = 1",
	      UPDATE_ALL);
	check("lbl: BEGIN DELETE FROM t; END", DELETE_ALL);
	check("BEGIN NOT ATOMIC TRUNCATE t; END", TRUNCATE);
	check("IF x THEN DROP TABLE t; END IF", DROP_TABLE);
	check("BEGIN; DELETE FROM t WHERE id = 1; COMMIT;", DELETE);
	check("START TRANSACTION; UPDATE t SET a = 1; COMMIT", UPDATE_ALL);
}

Test(sqlclass, dynamic_sql)
{
	/* a DO block runs now: its body counts */
	check("DO $$ BEGIN DELETE FROM t; END $$", DELETE_ALL);
	check("DO $body$ BEGIN IF true THEN TRUNCATE t; END IF; END $body$", TRUNCATE);
	check("DO 'BEGIN DROP TABLE x; END'", DROP_TABLE);
	check("DO LANGUAGE plpgsql $$ BEGIN UPDATE t SET a = 1 WHERE id = 2; END $$", UPDATE);
	check("DO $$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM t; END $$", OTHER);
	check("DO $$ BEGIN EXECUTE 'DROP TABLE ' || quote_ident(t); END $$", DROP_TABLE);
	check("DO $$ BEGIN EXECUTE format('TRUNCATE %I', t); END $$", TRUNCATE);
	check("DO $$ BEGIN RAISE NOTICE 'DROP TABLE x'; END $$", OTHER);
	check("DO LANGUAGE plpython3u $$ plpy.execute('DROP TABLE x') $$", OTHER);
	check("DO SLEEP(1)", OTHER);
	check("EXECUTE IMMEDIATE 'DROP TABLE t'", DROP_TABLE);
	check("PREPARE s FROM 'DELETE FROM t'", DELETE_ALL);
	check("PREPARE p (int) AS DELETE FROM t WHERE id = $1", DELETE);
	check("PREPARE p AS UPDATE t SET a = 1", UPDATE_ALL);
	check("EXECUTE p(1)", OTHER);
}

Test(sqlclass, several_statements)
{
	check("SELECT 1; DROP TABLE users", DROP_TABLE);
	check("SELECT 1; DROP TABLE users;", DROP_TABLE);
	check("DROP TABLE users; SELECT 1", DROP_TABLE);
	check("INSERT INTO t VALUES (1); DELETE FROM t WHERE id = 1", DELETE);
	check("SET sql_safe_updates = 0; DELETE FROM users", SAFETY_OFF);
	check("BEGIN; SELECT 1; COMMIT", OTHER);
	check("SELECT 1;;;SELECT 2", READ);
	check("SELECT 'a;b'; SELECT 2", READ);
	check("SELECT 'x' FROM t; DELETE FROM u WHERE a = 'b;c'", DELETE);
	check("SELECT 1;\nDROP DATABASE x;\nTRUNCATE t", DROP_DATABASE);
}

/* Every pair of classes, both orders: the more destructive one wins. */
Test(sqlclass, order_of_classes)
{
	static const struct { enum ag_sql_class c; const char *sql; } rep[] = {
		{ SAFETY_OFF, "SET sql_safe_updates = 0" },
		{ DROP_DATABASE, "DROP DATABASE d" },
		{ DROP_TABLE, "DROP TABLE t" },
		{ TRUNCATE, "TRUNCATE t" },
		{ DELETE_ALL, "DELETE FROM t" },
		{ UPDATE_ALL, "UPDATE t SET a = 1" },
		{ ALTER_DROP, "ALTER TABLE t DROP COLUMN c" },
		{ DDL, "CREATE TABLE t (a int)" },
		{ DELETE, "DELETE FROM t WHERE id = 1" },
		{ UPDATE, "UPDATE t SET a = 1 WHERE id = 1" },
		{ INSERT, "INSERT INTO t VALUES (1)" },
		{ OTHER, "BEGIN" },
		{ READ, "SELECT 1" },
	};
	char buf[256];

	cr_assert_eq(sizeof rep / sizeof rep[0], (size_t)NCLASS);
	for (int i = 0; i < NCLASS; i++) {
		check(rep[i].sql, rep[i].c);
		for (int j = 0; j < NCLASS; j++) {
			enum ag_sql_class want = position(rep[i].c) < position(rep[j].c) ?
						 rep[i].c : rep[j].c;
			snprintf(buf, sizeof buf, "%s; %s", rep[i].sql, rep[j].sql);
			check(buf, want);
		}
	}
}

/* ---- what must not fool it ----------------------------------------------- */

Test(sqlclass, comments)
{
	check("/* cleanup */ delete from users;", DELETE_ALL);
	check("-- DROP TABLE x\nSELECT 1", READ);
	check("SELECT 1 -- ; DROP TABLE x", READ);
	check("SELECT 1 /* ; DROP TABLE x */", READ);
	check("SELECT /* DELETE FROM t; */ 1", READ);
	check("DELETE FROM t /* WHERE id = 1 */", DELETE_ALL);
	check("DELETE FROM t -- WHERE id = 1", DELETE_ALL);
	check("DELETE FROM t # WHERE id = 1", DELETE_ALL);
	check("DELETE FROM t WHERE /* x */ id = 1", DELETE);
	check("# DROP TABLE x\nSELECT 1", READ);
	check("/* a */ /* b */ -- c\n/* d */ SELECT 1", READ);
	check("/* outer /* inner */ still a comment in PostgreSQL */ SELECT 1", READ);
	check("/**/DROP/**/TABLE/**/t", DROP_TABLE);
	check("SELECT 1 /*!40101 ; DROP TABLE t */", DROP_TABLE);
	check("SELECT 1 /*M!100101 ; DROP TABLE t */", DROP_TABLE);
	/* after -- a line ends at LF everywhere; at CR in PostgreSQL */
	check("SELECT 1 -- x\r; DROP TABLE t", DROP_TABLE);
	check("SELECT 1 -- x\n; DROP TABLE t", DROP_TABLE);
}

Test(sqlclass, quoting)
{
	check("SELECT 'DROP TABLE x'", READ);
	check("SELECT 'a; DROP TABLE x; --'", READ);
	check("SELECT 'it''s; DROP TABLE x'", READ);
	check("SELECT E'it\\'s; DROP TABLE x'", READ);
	check("SELECT e'\\\\'", READ);
	check("SELECT \"DROP TABLE x\" FROM t", READ);
	check("SELECT \"a\"\"; DROP TABLE x\" FROM t", READ);
	check("SELECT `a;DROP TABLE x` FROM t", READ);
	check("SELECT `a``;DROP TABLE x` FROM t", READ);
	check("INSERT INTO t VALUES ('; DROP TABLE x; --')", INSERT);
	check("INSERT INTO notes VALUES ('Don''t; delete from my list')", INSERT);
	check("UPDATE t SET note = 'WHERE id = 1'", UPDATE_ALL);
	check("UPDATE t SET \"where\" = 1", UPDATE_ALL);
	check("SELECT * FROM drop_table_log", READ);
	check("SELECT deleted, updated FROM t", READ);
	check("SELECT a$b FROM t WHERE x = $1", READ);
	check("SELECT $1::int", READ);
	check("SELECT N'x', X'ff', _utf8mb4'y', B'01' FROM t", READ);
}

Test(sqlclass, dollar_quotes)
{
	check("SELECT $$DROP TABLE users$$", READ);
	check("SELECT $$; DROP TABLE users; $$", READ);
	check("SELECT $tag$ ; DROP TABLE x; $tag$", READ);
	check("SELECT $a$ $b$ ; DROP TABLE x; $b$ $a$", READ);
	check("SELECT $a$ $$ ; DROP TABLE x; $$ $a$", READ);
	check("SELECT $x$ it's \" ` /* -- $x$; SELECT 2", READ);
	check("SELECT $tag$ ; $TAG$ ; DROP TABLE x; $tag$", READ);
	check("SELECT $$a$$; DROP TABLE x", DROP_TABLE);
}

/* Where servers disagree about a quote or a comment, the reading under
 * which more gets destroyed wins. */
Test(sqlclass, dialect_disagreements)
{
	/* PostgreSQL and SQLite: the string ends at \' */
	check("SELECT 'a\\'; DROP TABLE x; --'", DROP_TABLE);
	/* MySQL: \\ is one backslash, the quote after it ends the string */
	check("SELECT 'a\\\\'; DROP TABLE x; --'", DROP_TABLE);
	check("SELECT \"a\\\"; DROP TABLE x; --\"", DROP_TABLE);
	/* MySQL and SQLite close a block comment at the first delimiter */
	check("/* a /* b */ DELETE FROM t; */ SELECT 1", DELETE_ALL);
	/* PostgreSQL does not: the quote is inside its comment */
	check("/* /* */ ' */ ; DROP TABLE x; -- '", DROP_TABLE);
	/* # is an operator outside MySQL */
	check("SELECT 1 # ; DROP TABLE x", DROP_TABLE);
	/* MySQL wants a blank after -- */
	check("SELECT 1 --; DROP TABLE x", DROP_TABLE);
	/* [..] quotes a name in SQLite only */
	check("SELECT [a;DROP TABLE x]", DROP_TABLE);
	check("SELECT a[1] FROM t; SELECT 1", READ);
}

Test(sqlclass, unterminated)
{
	/* what was seen counts, and the text after the opening delimiter is
	 * read again as SQL */
	check("SELECT 'abc", READ);
	check("SELECT 'abc; DROP TABLE x", DROP_TABLE);
	check("SELECT \"abc; DROP TABLE x", DROP_TABLE);
	check("SELECT `abc; DROP TABLE x", DROP_TABLE);
	check("SELECT $a$ abc ; DROP TABLE x", DROP_TABLE);
	check("SELECT 1 /* abc ; DROP TABLE x", DROP_TABLE);
	check("SELECT 1 /* /* */ abc", READ);
	check("DELETE FROM t WHERE name = 'abc", DELETE);
	check("UPDATE t SET a = 'foo WHERE id = 1", UPDATE_ALL);
	check("DELETE FROM t /* WHERE id = 1", DELETE_ALL);
	check("WITH d AS (DELETE FROM users", DELETE_ALL);
	check("DELETE FROM t WHERE id IN (1, 2", DELETE);
	check("SELECT (((", READ);
	check("SELECT )))", READ);
	check("'", OTHER);
	check("\"", OTHER);
	check("/*", OTHER);
	check("$$", OTHER);
	check("E'", OTHER);
	check("'DROP TABLE x", DROP_TABLE);
	check("DROP", DDL);
	check("DROP TABLE", DROP_TABLE);
	check("DELETE", DELETE_ALL);
	check("UPDATE", UPDATE_ALL);
	check("WITH", READ);
}

Test(sqlclass, len_cuts_the_text)
{
	const char *s = "DELETE FROM users WHERE id = 1; DROP TABLE users";

	check_len(s, 17, DELETE_ALL);                     /* "DELETE FROM users" */
	check_len(s, 30, DELETE);
	check_len(s, 31, DELETE);
	check_len(s, 36, DDL);                            /* "...; DROP " */
	check_len(s, (long)strlen(s), DROP_TABLE);
	check_len("SELECT 1; DROP TABLE t", 8, READ);
	check_len("DROP TABLE t", 4, DDL);
	check_len("SELECT 'a'; DROP TABLE t", 9, READ);   /* cut inside the quote */
	/* a NUL inside len is not the end: the server may read past it */
	check_len("SELECT 1\0; DROP TABLE t", 23, DROP_TABLE);
	check_len("SELECT 1\0; DROP TABLE t", -1, READ);
}

/*
 * Text at the very end of a mapped page, the next page inaccessible:
 * reading one byte past len faults.
 */
static char *guarded(const char *s, size_t n, void **map, size_t *maplen)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = ((n / (size_t)page) + 2) * (size_t)page;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(m, MAP_FAILED);
	cr_assert_eq(mprotect(m + len - (size_t)page, (size_t)page, PROT_NONE), 0);
	char *p = m + len - (size_t)page - n;
	memcpy(p, s, n);
	*map = m;
	*maplen = len;
	return p;
}

Test(sqlclass, never_reads_past_len)
{
	static const char *const texts[] = {
		"", "'", "\"", "`", "[", "$", "$$", "$a", "$a$", "E", "E'", "e'\\", "'\\",
		"/", "/*", "/*!", "/*M", "/*M!", "/*!4", "-", "--", "#", "*", "*/", "<",
		"<=", "@", "@@", ":", "1", "1e", "1e-", ".", "DELETE", "DELETE FROM t WHERE",
		"SET @@session.", "SET a =", "PRAGMA", "PRAGMA x(", "PRAGMA x =",
		"EXPLAIN (", "WITH x AS (", "DO $$", "DO $$ BEGIN EXECUTE '",
		"SELECT set_config('session_replication_role'", "CREATE TRIGGER t",
		"CREATE OR", "ALTER TABLE t DROP", "ALTER TABLE t ENGINE", "BEGIN",
		"BEGIN NOT", "IF x", "lbl", "lbl:", "(", "(UPDATE", "(UPDATE t",
		"DELETE FROM t WHERE 1 =", "/* /* */", "SELECT 'a\\", "x -- y",
	};

	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		size_t n = strlen(texts[i]), maplen;
		void *map;
		char *p = guarded(texts[i], n, &map, &maplen);
		for (size_t cut = 0; cut <= n; cut++) {
			enum ag_sql_class c = ag_sql_classify(p + n - cut, (long)cut);
			cr_assert_lt((unsigned)c, AG_SQL_CLASS_COUNT);
			c = ag_sql_classify(p, (long)cut);
			cr_assert_lt((unsigned)c, AG_SQL_CLASS_COUNT);
		}
		munmap(map, maplen);
	}
}

Test(sqlclass, deep_nesting)
{
	char buf[4096];
	size_t n = 0;

	n += (size_t)snprintf(buf + n, sizeof buf - n, "SELECT ");
	for (int i = 0; i < 200; i++)
		buf[n++] = '(';
	n += (size_t)snprintf(buf + n, sizeof buf - n, "DELETE FROM t");
	for (int i = 0; i < 200; i++)
		buf[n++] = ')';
	buf[n] = 0;
	check(buf, DELETE_ALL);

	n = 0;
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "BEGIN ");
	n += (size_t)snprintf(buf + n, sizeof buf - n, "UPDATE t SET a = 1");
	check(buf, UPDATE_ALL);
}

/* Large inputs stay linear: a 4 MB bulk insert, and adversarial shapes. */
Test(sqlclass, large_inputs, .timeout = 20)
{
	size_t cap = 4u << 20, n = 0;
	char *buf = malloc(cap + 64);

	cr_assert_not_null(buf);
	n += (size_t)sprintf(buf, "INSERT INTO t VALUES ");
	while (n < cap)
		n += (size_t)sprintf(buf + n, "(1, 'a\\'b /* -- # $$', \"x\"),");
	buf[n - 1] = ';';
	check_len(buf, (long)n, INSERT);

	static const char *const unit[] = { "(UPDATE a ", "$a", "/*", "(", "'\\", "E'",
					    "(DELETE FROM ", "WITH x AS (", "$$x" };
	for (size_t u = 0; u < sizeof unit / sizeof unit[0]; u++) {
		size_t l = strlen(unit[u]);
		for (n = 0; n + l < cap; n += l)
			memcpy(buf + n, unit[u], l);
		enum ag_sql_class c = ag_sql_classify(buf, (long)n);
		cr_assert_lt((unsigned)c, AG_SQL_CLASS_COUNT);
	}
	free(buf);
}

/* ---- fuzz ---------------------------------------------------------------- */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

Test(sqlclass, fuzz, .timeout = 60)
{
	static const char *const pieces[] = {
		"SELECT ", "DELETE ", "FROM ", "UPDATE ", "SET ", "WHERE ", "INSERT ",
		"INTO ", "DROP ", "TABLE ", "DATABASE ", "TRUNCATE ", "ALTER ", "WITH ",
		"AS ", "EXPLAIN ", "ANALYZE ", "BEGIN ", "END ", "CREATE ", "TRIGGER ",
		"DO ", "EXECUTE ", "PRAGMA ", "MERGE ", "THEN ", "OR ", "1=1 ", "t ", "x ",
		"(", ")", ";", ",", ".", "=", "'", "''", "\"", "`", "[", "]", "$$", "$a$",
		"E'", "\\", "/*", "*/", "/*!", "--", "-- ", "#", "\n", "\r", "@@", "@",
		"sql_safe_updates ", "0 ", "OFF ", "set_config", "replica ", "RETURNING ",
	};
	static char buf[2048];

	for (int iter = 0; iter < 40000; iter++) {
		size_t n = 0, want = rnd() % sizeof buf;
		if (iter & 1) {
			for (; n < want; n++)
				buf[n] = (char)rnd();
		} else {
			while (n < want) {
				const char *p = pieces[rnd() % (sizeof pieces / sizeof pieces[0])];
				size_t l = strlen(p);
				if (n + l > want)
					break;
				memcpy(buf + n, p, l);
				n += l;
			}
		}
		enum ag_sql_class a = ag_sql_classify(buf, (long)n);
		cr_assert_lt((unsigned)a, AG_SQL_CLASS_COUNT);
		cr_assert_eq(ag_sql_classify(buf, (long)n), a, "deterministic");
		/* a prefix never needs more than the whole text's reading to be
		 * computed, and must not crash either */
		enum ag_sql_class b = ag_sql_classify(buf, (long)(n / 2));
		cr_assert_lt((unsigned)b, AG_SQL_CLASS_COUNT);
	}
}

Test(sqlclass, routine_bodies_in_strings)
{
	/* A call (SELECT f(), CALL p()) names nothing to judge: creating the
	 * routine is worth the worst statement of its body. */
	check("CREATE FUNCTION f() RETURNS void AS $$ DELETE FROM t; $$ LANGUAGE sql", DELETE_ALL);
	check("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DELETE FROM t'", DELETE_ALL);
	check("CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $body$ "
	      "BEGIN DROP TABLE users; END $body$", DROP_TABLE);
	check("CREATE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN TRUNCATE t; END$$", TRUNCATE);
	check("CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN UPDATE t SET a = 1; RETURN NEW; "
	      "END $$ LANGUAGE plpgsql", UPDATE_ALL);
	check("CREATE FUNCTION f() RETURNS void AS $$ BEGIN EXECUTE 'DROP SCHEMA app CASCADE'; "
	      "END $$ LANGUAGE plpgsql", DROP_DATABASE);
	check("CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql", DDL);
	check("CREATE FUNCTION f() RETURNS int AS 'obj.so', 'f' LANGUAGE c", DDL);
	check("CREATE FUNCTION f() RETURNS int AS $$ return 1 $$ LANGUAGE plpython3u", DDL);
	/* MariaDB/MySQL bodies are visible SQL */
	check("CREATE PROCEDURE p() BEGIN DROP TABLE t; END", DROP_TABLE);
	check("CREATE DEFINER=CURRENT_USER PROCEDURE p(IN x INT) BEGIN DECLARE n INT; "
	      "DELETE FROM t; END", DELETE_ALL);
	check("CREATE FUNCTION f() RETURNS INT DETERMINISTIC BEGIN TRUNCATE t; RETURN 1; END",
	      TRUNCATE);
	check("SELECT f()", READ);
	check("CALL p()", OTHER);
}

Test(sqlclass, column_type_rewrites)
{
	check("ALTER TABLE t ALTER COLUMN c TYPE int USING c::int", ALTER_DROP);
	check("ALTER TABLE t ALTER COLUMN c TYPE numeric(5,2)", ALTER_DROP);
	check("alter table only t alter c set data type varchar(3)", ALTER_DROP);
	check("ALTER TABLE t ADD COLUMN c int, ALTER COLUMN d TYPE text USING ''", ALTER_DROP);
	check("ALTER TABLE t ADD COLUMN type text", DDL);
	check("ALTER TABLE t ALTER COLUMN type SET DEFAULT 'x'", DDL);
	check("ALTER TABLE t ALTER COLUMN c SET NOT NULL", DDL);
	check("ALTER TYPE mood ADD VALUE 'meh'", DDL);
}

Test(sqlclass, server_programs_and_functions)
{
	/* a shell command on the server */
	check("COPY t FROM PROGRAM 'rm -rf /var/lib/postgresql'", SAFETY_OFF);
	check("COPY t TO PROGRAM 'gzip > /tmp/t.gz'", SAFETY_OFF);
	check("copy t (a) from program 'curl x' with (format csv)", SAFETY_OFF);
	check("COPY t FROM '/tmp/x.csv'", INSERT);
	/* destructive server functions, wherever they are called */
	check("SELECT lo_unlink(16401)", DROP_TABLE);
	check("SELECT pg_catalog.lo_unlink(oid) FROM pg_largeobject_metadata", DROP_TABLE);
	check("SELECT pg_drop_replication_slot('replica1')", DROP_TABLE);
	check("SELECT pg_replication_origin_drop('o')", DROP_TABLE);
	check("SELECT pg_file_unlink('/var/lib/postgresql/data/x')", DROP_TABLE);
	check("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'app'",
	      SAFETY_OFF);
	check("select PG_TERMINATE_BACKEND(123)", SAFETY_OFF);
	check("SELECT lo_export(16401, '/var/lib/postgresql/data/PG_VERSION')", SAFETY_OFF);
	check("SELECT sys_exec('rm -rf /var/lib/mysql')", SAFETY_OFF);
	check("DO $$ BEGIN PERFORM lo_unlink(1); END $$", DROP_TABLE);
	check("SELECT dblink_exec('dbname=prod', 'DROP TABLE users')", DROP_TABLE);
	check("SELECT * FROM dblink('dbname=prod', 'DELETE FROM t RETURNING id') AS x(id int)",
	      DELETE_ALL);
	/* not calls, or harmless ones */
	check("SELECT lo_unlink FROM t", READ);
	check("SELECT pg_cancel_backend(1)", READ);
	check("SELECT lo_import('/tmp/x')", READ);
	check("SELECT 'lo_unlink(1)'", READ);
}

/* One connection's statements in order, each with the class expected. */
static void conn_check(struct ag_sql_temps *t, const char *sql, enum ag_sql_class want)
{
	enum ag_sql_class got = ag_sql_classify_temps(sql, -1, t);
	cr_expect_eq(got, want, "%s: got %s, want %s", sql, ag_sql_class_name(got),
		     ag_sql_class_name(want));
}

Test(sqlclass, temporary_tables_of_the_connection)
{
	struct ag_sql_temps t = {0};

	/* within one text */
	conn_check(&t, "CREATE TEMP TABLE x (a int); DROP TABLE x", DDL);
	cr_expect_eq(t.n, 0);
	conn_check(&t, "CREATE TEMP TABLE x (a int); DROP TABLE x; DROP TABLE x", DROP_TABLE);
	t.n = 0;
	conn_check(&t, "CREATE TEMPORARY TABLE IF NOT EXISTS x (a int); DROP TABLE IF EXISTS x", DDL);
	conn_check(&t, "CREATE TABLE temp.x(a); DROP TABLE x", DDL);
	conn_check(&t, "CREATE TEMP TABLE x AS SELECT 1; TRUNCATE x; DROP TABLE x", DDL);
	/* across texts on one connection */
	t.n = 0;
	conn_check(&t, "CREATE TEMP TABLE scratch (a int)", DDL);
	cr_expect_eq(t.n, 1);
	cr_expect(t.t[0].fresh);
	conn_check(&t, "CREATE GLOBAL TEMPORARY TABLE \"Mixed\" (a int)", DDL);
	conn_check(&t, "INSERT INTO scratch VALUES (1)", INSERT);
	cr_expect(!t.t[0].fresh, "fresh is only for the text just classified");
	conn_check(&t, "TRUNCATE TABLE scratch", DELETE);
	/* changing every row of it is an ordinary change, of it alone */
	conn_check(&t, "UPDATE scratch SET a = 2", UPDATE);
	conn_check(&t, "DELETE FROM scratch", DELETE);
	conn_check(&t, "DELETE FROM ONLY scratch WHERE true", DELETE);
	conn_check(&t, "UPDATE LOW_PRIORITY IGNORE scratch SET a = 1", UPDATE);
	conn_check(&t, "UPDATE scratch SET a = (SELECT count(*) FROM users)", UPDATE);
	conn_check(&t, "DELETE FROM public.scratch", DELETE_ALL);
	conn_check(&t, "DELETE scratch, users FROM scratch JOIN users", DELETE_ALL);
	conn_check(&t, "UPDATE scratch, users SET users.a = 1", UPDATE_ALL);
	conn_check(&t, "UPDATE scratch s, users u SET u.a = 1", UPDATE_ALL);
	conn_check(&t, "UPDATE scratch JOIN users ON true SET users.a = 1", UPDATE_ALL);
	conn_check(&t, "UPDATE scratch AS s SET a = 1", UPDATE);
	conn_check(&t, "UPDATE scratch s SET a = 1", UPDATE);
	conn_check(&t, "UPDATE scratch SET a = 1 FROM users", UPDATE);
	conn_check(&t, "DELETE FROM scratch USING users", DELETE);
	conn_check(&t, "UPDATE users SET a = 1", UPDATE_ALL);
	conn_check(&t, "WITH d AS (DELETE FROM users RETURNING *) UPDATE scratch SET a = 1",
		   DELETE_ALL);
	conn_check(&t, "DROP TABLE mixed", DROP_TABLE);     /* "Mixed" is not mixed */
	conn_check(&t, "DROP TABLE \"Mixed\"", DDL);
	conn_check(&t, "DROP TABLE public.scratch", DROP_TABLE);
	conn_check(&t, "DROP TABLE scratch, users", DROP_TABLE);
	conn_check(&t, "DROP TABLE pg_temp.scratch", DDL);
	conn_check(&t, "DROP TABLE scratch", DROP_TABLE);   /* gone: now anyone's */
	/* what ends a temporary table's life as we know it */
	conn_check(&t, "CREATE TEMP TABLE y (a int) ON COMMIT DROP", DDL);
	conn_check(&t, "DROP TABLE y", DROP_TABLE);
	conn_check(&t, "CREATE TEMP TABLE y (a int)", DDL);
	conn_check(&t, "ROLLBACK", OTHER);
	conn_check(&t, "DROP TABLE y", DROP_TABLE);
	conn_check(&t, "CREATE TEMP TABLE y (a int); DISCARD TEMP; DROP TABLE y", DROP_TABLE);
	conn_check(&t, "CREATE TEMP TABLE y (a int); ALTER TABLE y RENAME TO z; DROP TABLE y",
		   DROP_TABLE);
	conn_check(&t, "CREATE TEMPORARY TABLE y (a int); RENAME TABLE y TO z; DROP TABLE y",
		   DROP_TABLE);
	/* a body that runs later may run anywhere; a DO block runs here */
	conn_check(&t, "CREATE TEMP TABLE w (a int)", DDL);
	conn_check(&t, "CREATE FUNCTION f() RETURNS void AS 'DROP TABLE w' LANGUAGE sql", DROP_TABLE);
	conn_check(&t, "DO $$ BEGIN DROP TABLE w; END $$", DDL);
	/* a text the dialects read differently: only what every reading
	 * agrees was made counts */
	t.n = 0;
	conn_check(&t, "CREATE TEMP TABLE v (a int) # ; CREATE TEMP TABLE u (a int)", DDL);
	conn_check(&t, "DROP TABLE u", DROP_TABLE);
	conn_check(&t, "DROP TABLE v", DDL);
	/* MySQL's DROP TEMPORARY TABLE drops only temporary tables */
	conn_check(&t, "DROP TEMPORARY TABLE anything", DDL);
	conn_check(&t, "DROP TEMPORARY TABLE IF EXISTS a, b", DDL);
	/* without a connection's set, every name is anyone's */
	check("CREATE TEMP TABLE x (a int); DROP TABLE x", DROP_TABLE);
	check("DROP TEMPORARY TABLE t", DDL);
	/* a full set keeps no more */
	t.n = 0;
	char sql[64];
	for (int i = 0; i < AG_SQL_TEMPS + 2; i++) {
		snprintf(sql, sizeof sql, "CREATE TEMP TABLE t%d (a int)", i);
		conn_check(&t, sql, DDL);
	}
	cr_expect_eq(t.n, AG_SQL_TEMPS);
	conn_check(&t, "DROP TABLE t0", DDL);
	snprintf(sql, sizeof sql, "DROP TABLE t%d", AG_SQL_TEMPS + 1);
	conn_check(&t, sql, DROP_TABLE);
}
