# The database guard under the built-in rules, with the real clients (psql,
# mariadb, sqlite3, python3) against real servers that each test starts for
# itself on a unix socket (dbservers.sh). Destructive SQL a rule denies must
# be refused on a server, with the data left intact, through the client's
# own error path; on a SQLite file it is snapshotted so that restore brings
# the database back; every statement is an audit row. (PostgreSQL
# pre-images, which the built-in rules take on a server: t_pgimage.sh.)

source "$AG_ROOT/test/e2e/dbservers.sh"
asan_libc_first

# The agent's shell: a client must be started by a guarded process to be
# judged, as an agent's would be.
agent_sh() { guard /bin/sh -c '"$@"' agent "$@"; }

# A server database is named "<host>/<dbname>". For a unix socket the host
# may be its directory or "localhost", but the name must never look like a
# file path: the built-in rules would take it for a SQLite file.
server_db() {
	[[ "$1" == */test && "$1" != /* && "$1" != *,* ]] ||
		fail "database '$1': want one '<host>/test' that is not a path (socket ${PG_SOCK:-}${MY_SOCK:-})"
}

SERVER_RULE="(rule server-destructive-sql: destructive SQL on a database server cannot be undone"

# The built-in rules with the server rule denying, as it did before server
# pre-images (and as a stricter configuration may): how a refusal reaches
# each client is what these tests check.
server_deny_rules() {
	sed -z 's/action: snapshot\n    reason: "destructive SQL on a database server: a pre-image was taken first"/action: deny\n    reason: "destructive SQL on a database server cannot be undone: ask the user to run it"/' \
		"$AG_ROOT/rules/default.yaml" > "$T/deny.yaml"
	grep -q 'server cannot be undone' "$T/deny.yaml" || fail "no server rule to turn into a deny"
	export AGENTGUARD_RULES=$T/deny.yaml
}
USERS="1:ada,2:bob,3:cy"

# ---- PostgreSQL --------------------------------------------------------

# A fresh users table, whatever an earlier statement did to it.
pg_users() {
	pg_sql -c "DROP TABLE IF EXISTS users;
		CREATE TABLE users(id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO users VALUES (1, 'ada'), (2, 'bob'), (3, 'cy')"
}
pg_users_now() { pg_sql -c "SELECT coalesce(string_agg(id || ':' || name, ',' ORDER BY id), '') FROM users" 2>&1 || true; }

gpsql() { agent_sh psql -h "$PG_SOCK" -d test "$@"; }

# pg_denied SQL: psql fails with the server's error carrying the guard's
# denial, and users is untouched.
pg_denied() {
	local out rc=0
	pg_users
	out=$(gpsql -c "$1" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "psql -c '$1' exited 0: $out" || return 1
	grep -q '^ERROR:  agentguard: denied sql' <<<"$out" ||
		fail "psql -c '$1': psql did not report the denial as a server error: $out" || return 1
	assert_contains "$out" "$SERVER_RULE" || return 1
	assert_eq "$(pg_users_now)" "$USERS" "(users after '$1')"
}

test_pg_destructive_statements_denied_data_intact() {
	pg_start
	server_deny_rules
	pg_denied "DROP TABLE users"
	pg_denied "DELETE FROM users"
	pg_denied "TRUNCATE users"
	pg_denied "/* cleanup */ delete from users;"
	pg_denied "SELECT 1; DROP TABLE users"
	pg_denied "WITH d AS (DELETE FROM users RETURNING *) SELECT count(*) FROM d"
	pg_denied "update users set name = 'x'"
	# The denial is raised by a statement that quotes the original: text
	# that tries to end that quoting must not run.
	pg_denied 'DELETE FROM users /* $m$; DROP TABLE users; $agentguard$ '"'"' */'
	# A script file goes through psql's other path, statement by statement.
	pg_users
	printf 'SELECT 1;\nDROP TABLE users;\n' > "$WS/cleanup.sql"
	rc=0; out=$(gpsql -v ON_ERROR_STOP=1 -f cleanup.sql 2>&1) || rc=$?
	assert_eq "$rc" 3 "(psql -f exit status: $out)"
	assert_contains "$out" "ERROR:  agentguard: denied sql"
	assert_eq "$(pg_users_now)" "$USERS"

	ingest
	q="select sql_class || '|' || decision || '|' || rule || '|' || enforced from events where op='sql' and sql="
	assert_eq "$(db "$q'DROP TABLE users'")" "drop_table|deny|server-destructive-sql|1"
	assert_eq "$(db "$q'DELETE FROM users'")" "delete_all|deny|server-destructive-sql|1"
	assert_eq "$(db "$q'TRUNCATE users'")" "truncate|deny|server-destructive-sql|1"
	assert_eq "$(db "$q'/* cleanup */ delete from users;'")" "delete_all|deny|server-destructive-sql|1"
	assert_eq "$(db "$q'SELECT 1; DROP TABLE users'")" "drop_table|deny|server-destructive-sql|1"
	assert_eq "$(db "$q'WITH d AS (DELETE FROM users RETURNING *) SELECT count(*) FROM d'")" \
		"delete_all|deny|server-destructive-sql|1"
	assert_eq "$(db "$q'update users set name = ''x'''")" "update_all|deny|server-destructive-sql|1"
	server_db "$(db "select distinct database from events where op='sql' and decision='deny'")"
	n=$(db "select count(*) from events where op='sql' and decision='deny' and reason like 'destructive SQL on a database server%'")
	assert_eq "$n" 9 "(denied statements with the server rule's reason)"
}

test_pg_narrow_delete_and_reads_run_and_are_logged() {
	pg_start
	pg_users
	out=$(gpsql -c "DELETE FROM users WHERE id = 1" 2>&1) || fail "narrow DELETE failed: $out"
	assert_eq "$out" "DELETE 1"
	assert_eq "$(pg_users_now)" "2:bob,3:cy"
	out=$(gpsql -At -c "SELECT name FROM users ORDER BY id" 2>&1) || fail "SELECT failed: $out"
	assert_eq "$out" $'bob\ncy'
	out=$(gpsql -At -c "INSERT INTO users VALUES (4, 'dee') RETURNING id" 2>&1) || fail "INSERT failed: $out"
	assert_eq "$(head -n 1 <<<"$out")" 4

	ingest
	q="select sql_class || '|' || decision from events where op='sql' and sql="
	assert_eq "$(db "$q'DELETE FROM users WHERE id = 1'")" "delete|allow"
	assert_eq "$(db "$q'SELECT name FROM users ORDER BY id'")" "read|allow"
	assert_eq "$(db "$q'INSERT INTO users VALUES (4, ''dee'') RETURNING id'")" "insert|allow"
	server_db "$(db "select group_concat(distinct database) from events where op='sql'")"
	# Three clients, three sessions, each with its statement.
	assert_eq "$(db "select count(distinct session) from events where op='sql'")" 3
}

# The wrapper form: the agent's psql under `agentguard run` (the kernel
# layer on: it sees the pre-image's pg_dump start), the run's summary
# naming the snapshot, and the session's restore bringing the table back.
test_pg_under_agentguard_run() {
	pg_start
	pg_users
	out=$(agrun psql -h "$PG_SOCK" -d test -c "DROP TABLE users" 2>&1) ||
		fail "agentguard run psql DROP TABLE failed: $out"
	assert_contains "$out" "1 snapshotted"
	s=$(latest_session)
	assert_eq "$(db "select decision from events where session='$s' and op='sql' and sql='DROP TABLE users'")" snapshot
	out=$("$AG" restore --session "$s" 2>&1) || fail "restore --session: $out"
	assert_eq "$(pg_users_now)" "$USERS"
}

# Every libpq entry point, through a small client linked against the real
# libpq (psql itself only uses some of them). No headers needed: the few
# declarations below are libpq's stable ABI.
pqclient() {
	[ -x "$T/pqclient" ] || {
		cat > "$T/pqclient.c" <<'C'
#include <stdio.h>
#include <string.h>
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
PGconn *PQconnectdb(const char *);
int PQstatus(const PGconn *);
char *PQerrorMessage(const PGconn *);
PGresult *PQexec(PGconn *, const char *);
PGresult *PQexecParams(PGconn *, const char *, int, const unsigned *, const char *const *,
		       const int *, const int *, int);
PGresult *PQprepare(PGconn *, const char *, const char *, int, const unsigned *);
PGresult *PQexecPrepared(PGconn *, const char *, int, const char *const *, const int *,
			 const int *, int);
int PQsendQuery(PGconn *, const char *);
int PQsendQueryParams(PGconn *, const char *, int, const unsigned *, const char *const *,
		      const int *, const int *, int);
int PQsendPrepare(PGconn *, const char *, const char *, int, const unsigned *);
PGresult *PQgetResult(PGconn *);
int PQresultStatus(const PGresult *);
char *PQresultErrorMessage(const PGresult *);
void PQclear(PGresult *);
void PQfinish(PGconn *);
enum { FATAL = 7 };

static int bad;
static void check(PGconn *c, PGresult *r)
{
	if (!r) {
		printf("error: %s", PQerrorMessage(c));
		bad = 1;
	} else if (PQresultStatus(r) == FATAL) {
		printf("error: %s", PQresultErrorMessage(r));
		bad = 1;
	}
	PQclear(r);
}
static void drain(PGconn *c, int sent)
{
	PGresult *r;
	if (!sent) {
		printf("error: %s", PQerrorMessage(c));
		bad = 1;
	}
	while ((r = PQgetResult(c)))
		check(c, r);
}
/* pqclient CONNINFO MODE SQL [PARAM] */
int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	PGconn *c = PQconnectdb(argv[1]);
	const char *m = argv[2], *sql = argv[3];
	const char *const *par = (const char *const *)argv + 4;
	int np = argc - 4;
	if (PQstatus(c) != 0) {
		printf("connect: %s", PQerrorMessage(c));
		return 2;
	}
	if (!strcmp(m, "exec"))
		check(c, PQexec(c, sql));
	else if (!strcmp(m, "params"))
		check(c, PQexecParams(c, sql, np, NULL, par, NULL, NULL, 0));
	else if (!strcmp(m, "prepare")) {
		check(c, PQprepare(c, "s", sql, np, NULL));
		if (!bad)
			check(c, PQexecPrepared(c, "s", np, par, NULL, NULL, 0));
	} else if (!strcmp(m, "send"))
		drain(c, PQsendQuery(c, sql));
	else if (!strcmp(m, "sendparams"))
		drain(c, PQsendQueryParams(c, sql, np, NULL, par, NULL, NULL, 0));
	else if (!strcmp(m, "sendprepare")) {
		drain(c, PQsendPrepare(c, "s", sql, np, NULL));
		if (!bad)
			check(c, PQexecPrepared(c, "s", np, par, NULL, NULL, 0));
	} else
		return 2;
	/* The connection stays usable after a refusal. */
	check(c, PQexec(c, "SELECT 1"));
	PQfinish(c);
	if (!bad)
		puts("ok");
	return bad;
}
C
		gcc -O1 -o "$T/pqclient" "$T/pqclient.c" -l:libpq.so.5 || fail "cannot build the libpq client"
	}
	agent_sh "$T/pqclient" "host=$PG_SOCK dbname=test" "$@"
}

test_pg_every_libpq_entry_point() {
	pg_start
	server_deny_rules
	for mode in exec params prepare send sendparams sendprepare; do
		pg_users
		rc=0; out=$(pqclient "$mode" "DELETE FROM users" 2>&1) || rc=$?
		[ $rc -eq 1 ] || fail "$mode DELETE FROM users: exit $rc: $out"
		grep -q '^error: ERROR:  agentguard: denied sql' <<<"$out" ||
			fail "$mode: no error result carrying the denial: $out"
		assert_eq "$(pg_users_now)" "$USERS" "(users after $mode)"
		pg_users
		# Parameters where the entry point takes them.
		case $mode in
		exec | send) narrow=("DELETE FROM users WHERE id = 2") ;;
		*) narrow=('DELETE FROM users WHERE id = $1' 2) ;;
		esac
		out=$(pqclient "$mode" "${narrow[@]}" 2>&1) || fail "$mode narrow DELETE failed: $out"
		assert_eq "$(pg_users_now)" "1:ada,3:cy" "(after $mode narrow DELETE)"
	done
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and sql='DELETE FROM users' and decision='deny'")" 6
	assert_eq "$(db "select count(*) from events where op='sql' and sql like 'DELETE FROM users WHERE id = %' and decision='allow' and sql_class='delete'")" 6
	# Under the built-in rules each entry point takes a pre-image first.
	unset AGENTGUARD_RULES
	for mode in exec params prepare send sendparams sendprepare; do
		pg_users
		out=$(pqclient "$mode" "DELETE FROM users" 2>&1) || fail "$mode DELETE FROM users: $out"
		assert_eq "$(pg_users_now)" "" "(users after $mode)"
	done
	ingest
	assert_eq "$(db "select count(*) from events e join snapshots s on s.id = e.snapshot where e.op='sql' and e.sql='DELETE FROM users' and e.decision='snapshot' and s.kind='pgsql' and s.link_target='table public.users'")" 6
}

# ---- MariaDB -----------------------------------------------------------

my_users() {
	my_sql -e "DROP TABLE IF EXISTS users;
		CREATE TABLE users(id int PRIMARY KEY, name varchar(20) NOT NULL);
		INSERT INTO users VALUES (1, 'ada'), (2, 'bob'), (3, 'cy')"
}
my_users_now() { my_sql -e "SELECT coalesce(group_concat(concat(id, ':', name) ORDER BY id), '') FROM users" 2>&1 || true; }

gmariadb() { agent_sh mariadb --socket="$MY_SOCK" -u root test "$@"; }

# my_denied SQL RULE: the client reports the guard's error and users is untouched.
my_denied() {
	local out rc=0
	my_users
	out=$(gmariadb -e "$1" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "mariadb -e '$1' exited 0: $out" || return 1
	grep -q '^ERROR.*agentguard' <<<"$out" ||
		fail "mariadb -e '$1': the client reported no error from agentguard: $out" || return 1
	assert_contains "$out" "(rule $2: " || return 1
	assert_eq "$(my_users_now)" "$USERS" "(users after '$1')"
}

test_mariadb_destructive_and_safety_off_denied() {
	my_start
	server_deny_rules
	my_denied "DROP TABLE users" server-destructive-sql
	my_denied "DELETE FROM users" server-destructive-sql
	my_denied "TRUNCATE TABLE users" server-destructive-sql
	my_denied "SET sql_safe_updates=0" no-safety-off
	my_denied "SET SESSION sql_safe_updates = OFF; DELETE FROM users" no-safety-off

	my_users
	out=$(gmariadb -N -e "DELETE FROM users WHERE id = 2; SELECT count(*) FROM users" 2>&1) ||
		fail "narrow DELETE failed: $out"
	assert_eq "$out" 2
	assert_eq "$(my_users_now)" "1:ada,3:cy"

	ingest
	q="select sql_class || '|' || decision || '|' || rule from events where op='sql' and sql="
	assert_eq "$(db "$q'DROP TABLE users'")" "drop_table|deny|server-destructive-sql"
	assert_eq "$(db "$q'DELETE FROM users'")" "delete_all|deny|server-destructive-sql"
	assert_eq "$(db "$q'SET sql_safe_updates=0'")" "safety_off|deny|no-safety-off"
	assert_eq "$(db "select decision from events where op='sql' and sql like 'DELETE FROM users WHERE id = 2%'")" allow
}

# The audit row names the database the statement ran on, whether the
# client chose it when connecting or later with USE.
test_mariadb_statements_name_their_database() {
	my_start
	my_sql -e "CREATE DATABASE shop"
	gmariadb -e "SELECT 1 AS connected_to_test" >/dev/null
	agent_sh mariadb --socket="$MY_SOCK" -u root -e "USE shop; SELECT 2 AS used_shop" >/dev/null
	myclient query "SELECT 3 AS library_on_test" >/dev/null
	myclient selectdb "SELECT 4 AS library_selected_shop" >/dev/null
	ingest
	local bad=() row
	for q in connected_to_test:test used_shop:shop library_on_test:test library_selected_shop:shop; do
		row=$(db "select database from events where op='sql' and sql like '%${q%%:*}%'")
		[[ "$row" == */"${q#*:}" && "$row" != /* ]] || bad+=("${q%%:*}: '$row', want '<host>/${q#*:}'")
	done
	[ ${#bad[@]} -eq 0 ] || fail "databases named wrongly: $(printf '\n  %s' "${bad[@]}")"
}

# The client library's entry points (the mariadb program carries its own
# copy of the library; most other clients load libmariadb.so.3).
myclient() {
	[ -x "$T/myclient" ] || {
		cat > "$T/myclient.c" <<'C'
#include <stdio.h>
#include <string.h>
typedef struct st_mysql MYSQL;
typedef struct st_mysql_res MYSQL_RES;
MYSQL *mysql_init(MYSQL *);
MYSQL *mysql_real_connect(MYSQL *, const char *, const char *, const char *, const char *,
			  unsigned, const char *, unsigned long);
int mysql_query(MYSQL *, const char *);
int mysql_real_query(MYSQL *, const char *, unsigned long);
int mysql_send_query(MYSQL *, const char *, unsigned long);
int mysql_read_query_result(MYSQL *);
MYSQL_RES *mysql_store_result(MYSQL *);
void mysql_free_result(MYSQL_RES *);
const char *mysql_error(MYSQL *);
void mysql_close(MYSQL *);
int mysql_select_db(MYSQL *, const char *);

/* myclient SOCKET MODE SQL (MODE selectdb: mysql_select_db shop, then query) */
int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	MYSQL *m = mysql_init(NULL);
	if (!mysql_real_connect(m, NULL, "root", NULL, "test", 0, argv[1], 0)) {
		printf("connect: %s\n", mysql_error(m));
		return 2;
	}
	const char *mode = argv[2], *sql = argv[3];
	int rc;
	if (!strcmp(mode, "query"))
		rc = mysql_query(m, sql);
	else if (!strcmp(mode, "selectdb"))
		rc = mysql_select_db(m, "shop") || mysql_query(m, sql);
	else if (!strcmp(mode, "real"))
		rc = mysql_real_query(m, sql, strlen(sql));
	else if (!strcmp(mode, "send"))
		rc = mysql_send_query(m, sql, strlen(sql)) || mysql_read_query_result(m);
	else
		return 2;
	if (rc)
		printf("error: %s\n", mysql_error(m));
	else
		mysql_free_result(mysql_store_result(m));
	/* The connection stays usable after a refusal. */
	if (mysql_query(m, "SELECT 1")) {
		printf("after: %s\n", mysql_error(m));
		rc = 1;
	}
	mysql_free_result(mysql_store_result(m));
	mysql_close(m);
	if (!rc)
		puts("ok");
	return rc != 0;
}
C
		gcc -O1 -o "$T/myclient" "$T/myclient.c" -l:libmariadb.so.3 || fail "cannot build the libmariadb client"
	}
	agent_sh "$T/myclient" "$MY_SOCK" "$@"
}

test_mariadb_every_client_library_entry_point() {
	my_start
	server_deny_rules
	for mode in query real send; do
		my_users
		rc=0; out=$(myclient "$mode" "DELETE FROM users" 2>&1) || rc=$?
		[ $rc -eq 1 ] || fail "$mode DELETE FROM users: exit $rc: $out"
		grep -q '^error: .*agentguard' <<<"$out" || fail "$mode: no client error from agentguard: $out"
		assert_not_contains "$out" "after:"
		assert_eq "$(my_users_now)" "$USERS" "(users after $mode)"
		out=$(myclient "$mode" "DELETE FROM users WHERE id = 2" 2>&1) || fail "$mode narrow DELETE failed: $out"
		assert_eq "$(my_users_now)" "1:ada,3:cy" "(after $mode narrow DELETE)"
	done
	ingest
	# One row per statement: the library hook and the wire must not both count it.
	assert_eq "$(db "select count(*) from events where op='sql' and sql='DELETE FROM users' and decision='deny'")" 3
	assert_eq "$(db "select count(*) from events where op='sql' and sql='DELETE FROM users WHERE id = 2' and decision='allow'")" 3
	server_db "$(db "select distinct database from events where op='sql' and sql='DELETE FROM users'")"
	# Under the built-in rules each entry point takes a pre-image first,
	# through the parameters mysql_real_connect had (its socket, its user).
	unset AGENTGUARD_RULES
	for mode in query real send; do
		my_users
		out=$(myclient "$mode" "DELETE FROM users" 2>&1) || fail "$mode DELETE FROM users: $out"
		assert_eq "$(my_users_now)" "" "(users after $mode)"
	done
	ingest
	assert_eq "$(db "select count(*) from events e join snapshots s on s.id = e.snapshot where e.op='sql' and e.sql='DELETE FROM users' and e.decision='snapshot' and s.kind='mysql' and s.link_target='table \`test\`.\`users\`' and s.path like 'socket=%'")" 3
}

# The mariadb program's statements are judged on the wire: however the
# client frames them, a destructive one must not get through unjudged.
test_mariadb_client_framing_cannot_slip_past() {
	my_start
	server_deny_rules
	local ran=()
	# slips WHAT CMD...: CMD must fail and leave users intact; every way
	# through is reported, not only the first.
	slips() {
		local what=$1 out
		shift
		my_users
		if out=$("$@" 2>&1) || [ "$(my_users_now)" != "$USERS" ]; then
			ran+=("$what: users now: $(my_users_now | tail -n 1); client said: ${out:0:300}")
		fi
	}
	slips "mariadb --compress" gmariadb --compress -e "DROP TABLE users"
	# Longer than the client's network buffer: sent in several pieces.
	list=$(seq -f 'spare_%g' 1 2000 | paste -sd,)
	slips "a 20 KB DROP TABLE" gmariadb -e "DROP TABLE IF EXISTS users, $list"
	# A NUL byte inside a comment, as --binary-mode sends it.
	printf 'DROP TABLE users /* \0 */;\n' > "$WS/nul.sql"
	slips "a DROP TABLE holding a NUL byte" agent_sh sh -c \
		'mariadb --socket="$1" -u root --comments --binary-mode test < nul.sql' sh "$MY_SOCK"
	[ ${#ran[@]} -eq 0 ] || fail "destructive SQL got past the guard: $(printf '\n  %s' "${ran[@]}")"
	ingest
	n=$(db "select count(*) from events where op='sql' and decision='deny' and sql like 'DROP TABLE%'")
	assert_eq "$n" 3 "(denied DROP TABLE rows)"
}

# ---- SQLite ------------------------------------------------------------

sqlite_prod() {
	sqlite3 "$WS/prod.db" "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
		INSERT INTO users VALUES (1, 'ada'), (2, 'bob'), (3, 'cy');
		CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), total REAL);
		INSERT INTO orders VALUES (10, 1, 9.5), (11, 3, 120.25);
		CREATE INDEX orders_user ON orders(user_id);"
}

test_sqlite3_drop_table_snapshotted_and_restored_by_session() {
	sqlite_prod
	before=$(sqlite3 "$WS/prod.db" .dump)
	out=$(agent_sh sqlite3 prod.db "DROP TABLE users" 2>&1) || fail "sqlite3 DROP TABLE failed: $out"
	assert_not_contains "$out" "agentguard"
	assert_eq "$(sqlite3 "$WS/prod.db" "SELECT count(*) FROM sqlite_master WHERE name = 'users'")" 0 "(the DROP ran)"
	ingest
	s=$(latest_session)
	row=$(db "select sql_class || '|' || database || '|' || decision || '|' || rule || '|' || (snapshot is not null)
		from events where session='$s' and op='sql' and sql='DROP TABLE users'")
	assert_eq "$row" "drop_table|$WS/prod.db|snapshot|sqlite-destructive-snapshot|1"
	out=$("$AG" restore --session "$s" --overwrite 2>&1) || fail "restore failed: $out"
	assert_eq "$(sqlite3 "$WS/prod.db" .dump)" "$before"
	assert_eq "$(sqlite3 "$WS/prod.db" "PRAGMA integrity_check")" ok
}

test_python_sqlite_delete_all_snapshotted_and_restored_by_id() {
	sqlite_prod
	before=$(sqlite3 "$WS/prod.db" .dump)
	out=$(agent_sh python3 -c '
import sqlite3
c = sqlite3.connect("prod.db")
c.execute("DELETE FROM users")
c.commit()
print(c.execute("SELECT count(*) FROM users").fetchone()[0])
' 2>&1) || fail "python DELETE failed: $out"
	assert_eq "$out" 0
	ingest
	s=$(latest_session)
	assert_eq "$(db "select sql_class || '|' || decision || '|' || database from events where session='$s' and op='sql' and sql='DELETE FROM users'")" \
		"delete_all|snapshot|$WS/prod.db"
	id=$(db "select snapshot from events where session='$s' and op='sql' and sql='DELETE FROM users'")
	[ -n "$id" ] || fail "no snapshot id on the DELETE's audit row"
	out=$("$AG" restore "$id" --overwrite 2>&1) || fail "restore $id failed: $out"
	assert_eq "$(sqlite3 "$WS/prod.db" .dump)" "$before"
}

# Python opens a transaction before the first DML and keeps it until
# commit(), so a destructive statement usually meets a connection that is
# already writing; the sqlite3 shell does the same inside BEGIN ... COMMIT.
# The snapshot must still be taken and the statement run.
test_sqlite_destructive_statement_inside_a_transaction() {
	sqlite_prod
	out=$(agent_sh python3 -c '
import sqlite3
c = sqlite3.connect("prod.db")
c.execute("DELETE FROM users WHERE id = 2")
c.execute("DELETE FROM users")
c.commit()
print(c.execute("SELECT count(*) FROM users").fetchone()[0])
' 2>&1) || fail "python DELETE in a transaction failed: $out"
	assert_eq "$out" 0
	ingest
	s=$(latest_session)
	# The session's first change to a workspace database: kept once.
	assert_eq "$(db "select sql_class || '|' || decision || '|' || rule from events where session='$s' and op='sql' and sql='DELETE FROM users WHERE id = 2'")" \
		"delete|snapshot|sqlite-workspace-keep"
	assert_eq "$(db "select decision from events where session='$s' and op='sql' and sql='DELETE FROM users'")" snapshot
	id=$(db "select snapshot from events where session='$s' and op='sql' and sql='DELETE FROM users'")
	out=$("$AG" restore "$id" --overwrite 2>&1) || fail "restore $id failed: $out"
	# Either the state the DELETE met (bob's removal pending) or the last
	# committed one: what matters is that ada and cy come back.
	got=$(sqlite3 "$WS/prod.db" "SELECT group_concat(id || ':' || name) FROM users")
	[[ "$got" == "1:ada,3:cy" || "$got" == "$USERS" ]] || fail "users after restore: '$got'"
	assert_eq "$(sqlite3 "$WS/prod.db" "PRAGMA integrity_check")" ok

	rm -f "$WS/prod.db"; sqlite_prod
	out=$(agent_sh sqlite3 prod.db "BEGIN; UPDATE orders SET total = 0 WHERE id = 10; DELETE FROM users; COMMIT;" 2>&1) ||
		fail "sqlite3 DELETE inside BEGIN/COMMIT failed: $out"
	assert_not_contains "$out" agentguard
	assert_eq "$(sqlite3 "$WS/prod.db" "SELECT count(*) FROM users")" 0
}

# An application's own authorizer keeps working under the guard, and the
# guard keeps judging that application's statements.
test_sqlite_app_authorizer_kept() {
	cat > "$T/app.py" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript("""
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, secret TEXT);
INSERT INTO users VALUES (1, 'ada', 'pw1'), (2, 'bob', 'pw2');
""")
def authorizer(action, arg1, arg2, dbname, source):
    if action == sqlite3.SQLITE_READ and arg1 == "users" and arg2 == "secret":
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_DROP_TABLE:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK
c.set_authorizer(authorizer)
try:
    c.execute("SELECT secret FROM users").fetchall()
    print("secret read")
except sqlite3.DatabaseError as e:
    print("app denied:", e)
print("names:", [r[0] for r in c.execute("SELECT name FROM users ORDER BY id")])
try:
    c.execute("DROP TABLE users")
    print("dropped")
except sqlite3.DatabaseError as e:
    print("app denied:", e)
c.execute("UPDATE users SET name = 'eve' WHERE id = 2")
c.commit()
print("renamed:", c.execute("SELECT name FROM users WHERE id = 2").fetchone()[0])
c.execute("DELETE FROM users")
c.commit()
print("left:", c.execute("SELECT count(*) FROM users").fetchone()[0])
PY
	want=$(cd "$T" && python3 "$T/app.py" "$T/bare.db" 2>&1) || fail "unguarded app failed: $want"
	assert_eq "$want" $'app denied: access to users.secret is prohibited\nnames: [\'ada\', \'bob\']\napp denied: not authorized\nrenamed: eve\nleft: 0'
	out=$(agent_sh python3 "$T/app.py" "$WS/app.db" 2>&1) || fail "guarded app failed: $out"
	assert_eq "$out" "$want"
	ingest
	s=$(latest_session)
	assert_eq "$(db "select decision from events where session='$s' and op='sql' and sql='DELETE FROM users'")" snapshot
	assert_eq "$(db "select decision from events where session='$s' and op='sql' and sql='SELECT name FROM users ORDER BY id'")" allow
	# The app refused its own DROP: nothing was destroyed.
	assert_eq "$(db "select count(*) from events where session='$s' and op='sql' and sql='DROP TABLE users' and decision in ('snapshot', 'allow')")" 1
}

# Test suites drop and recreate tables in throwaway databases all day: an
# in-memory or temporary database has nothing to snapshot and nothing to
# protect, so it is neither refused nor snapshotted.
test_sqlite_in_memory_and_temporary_databases_run() {
	out=$(agent_sh python3 -c '
import sqlite3
for name in (":memory:", ""):
    c = sqlite3.connect(name)
    c.executescript("CREATE TABLE users(id); INSERT INTO users VALUES (1), (2);")
    c.execute("DELETE FROM users")
    c.execute("DROP TABLE users")
    print(repr(name), c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
' 2>&1) || fail "in-memory DROP failed: $out"
	assert_eq "$out" $'\':memory:\' 0\n\'\' 0'
	ingest
	assert_eq "$(db "select group_concat(decision || ':' || database) from events where op='sql' and sql='DROP TABLE users'")" \
		"allow::memory:,allow::memory:"
	assert_eq "$(db "select count(*) from snapshots")" 0
}

# The guard's own log cannot be changed through SQL.
test_sql_on_the_audit_db_denied() {
	agrun true 2>/dev/null
	audit=$AGENTGUARD_STATE_DIR/audit.db
	assert_exists "$audit"
	n=$(db "select count(*) from events")
	[ "$n" -gt 0 ] || fail "agentguard run left no events"
	max=$(db "select max(id) from events")
	rows=$(db "select id, decision, hash from events order by id")
	rc=0; out=$(guard sqlite3 "$audit" "DELETE FROM events" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "DELETE FROM events on the audit DB exited 0: $out"
	# Refusing to open the file for writing stops this too; the statement
	# itself must be refused as well (a connection opened earlier, or one
	# the file layer missed, would otherwise go through).
	assert_contains "$out" "agentguard: denied sql $audit: DELETE FROM events (rule "
	rc=0; out=$(agent_sh python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("UPDATE events SET decision = ?", ("allow",))
c.commit()
' "$audit" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "UPDATE events on the audit DB exited 0: $out"
	assert_contains "$out" "agentguard: denied sql $audit: UPDATE events"
	assert_eq "$(db "select id, decision, hash from events where id <= $max order by id")" "$rows"
	"$AG" verify >/dev/null 2>&1 || fail "verify after the attempts: $("$AG" verify 2>&1)"
}

# A `snapshot` rule of one's own on a server database, on ordinary deletes
# with a WHERE: the pre-image is taken all the same, and restore brings
# the row back.
test_pg_snapshot_rule_on_ordinary_deletes() {
	pg_start
	pg_users
	cat > "$T/rules.yaml" <<'YAML'
version: 1
rules:
  - id: keep-a-copy
    on: sql
    class: [delete, delete_all]
    action: snapshot
    reason: "deletes keep a copy"
YAML
	out=$(AGENTGUARD_RULES=$T/rules.yaml gpsql -c "DELETE FROM users WHERE id = 2" 2>&1) ||
		fail "psql failed: $out"
	assert_eq "$(pg_users_now)" "1:ada,3:cy"
	ingest
	id=$(db "select snapshot from events where op='sql' and rule='keep-a-copy'")
	[ -n "$id" ] || fail "no pre-image"
	"$AG" restore "$id" >/dev/null || fail "restore"
	assert_eq "$(pg_users_now)" "$USERS"
}

# Server SQL that destroys through a side door: a routine whose body drops
# or deletes, a column rewritten by a type change, COPY ... PROGRAM, and
# server functions that destroy objects or end other sessions. A temporary
# table the same text made is its own to drop.
test_pg_side_doors_denied_temp_tables_not() {
	pg_start
	server_deny_rules
	pg_denied "CREATE FUNCTION wipe() RETURNS void LANGUAGE sql AS \$\$ DELETE FROM users \$\$"
	pg_denied "CREATE PROCEDURE zap() LANGUAGE plpgsql AS \$\$BEGIN DROP TABLE users; END\$\$"
	pg_denied "ALTER TABLE users ALTER COLUMN name TYPE varchar(1) USING left(name, 1)"
	out=$(gpsql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()" 2>&1) &&
		fail "pg_terminate_backend ran: $out"
	assert_contains "$out" "(rule no-safety-off"
	pg_denied "SELECT lo_unlink(lo_create(0))"
	pg_denied "SELECT pg_drop_replication_slot('none')"
	out=$(gpsql -c "COPY users FROM PROGRAM 'echo 9,x'" 2>&1) && fail "COPY FROM PROGRAM ran: $out"
	assert_contains "$out" "agentguard: denied sql"
	# The connection's own temporary table, made and dropped in one text.
	out=$(gpsql -c "CREATE TEMP TABLE scratch (a int); INSERT INTO scratch VALUES (1); DROP TABLE scratch" 2>&1) ||
		fail "temp table drop refused: $out"
	# ... but not a real table of the same name dropped after it.
	pg_users
	out=$(gpsql -c "CREATE TEMP TABLE users (a int); DROP TABLE users; DROP TABLE users" 2>&1) &&
		fail "the second DROP TABLE users ran: $out"
	assert_eq "$(pg_users_now)" "$USERS"
	ingest
	assert_eq "$(db "select sql_class from events where op='sql' and sql like 'CREATE FUNCTION wipe%'")" delete_all
	assert_eq "$(db "select sql_class || '|' || decision from events where op='sql' and sql like 'CREATE TEMP TABLE scratch%'")" "ddl|allow"
	assert_eq "$(db "select sql_class from events where op='sql' and sql like 'COPY users FROM PROGRAM%'")" safety_off
}

test_mariadb_procedure_body_denied_temporary_drop_not() {
	my_start
	my_users
	out=$(gmariadb -e "CREATE PROCEDURE zap() BEGIN DROP TABLE users; END" 2>&1) && fail "procedure made: $out"
	assert_contains "$out" "agentguard denied this"
	out=$(gmariadb -e "CREATE TEMPORARY TABLE t1 (a int); DROP TEMPORARY TABLE t1" 2>&1) ||
		fail "DROP TEMPORARY TABLE refused: $out"
	assert_eq "$(my_users_now)" "$USERS"
}
