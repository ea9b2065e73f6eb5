# Clients that speak the PostgreSQL or MySQL protocol themselves (node's pg
# and mysql2: no libpq, no libmysqlclient), read at the socket
# (lib/hooks/wire.c): each statement judged like any other, pre-images
# before destructive ones and restore that brings the data back exactly,
# denials through the client's own error path, the extended protocol and
# prepared statements, messages split across writes, other sockets left
# alone, and TLS recorded as unguarded.

source "$AG_ROOT/test/e2e/dbservers.sh"
asan_libc_first

NODE_MODS=${AG_NODE_MODULES:-/opt/agentguard-test/node_modules}
CLIENT=$AG_ROOT/test/e2e/wire_client.js

need_node() {
	command -v node >/dev/null || fail "no node (tools/install-deps.sh)" || return 1
	[ -d "$NODE_MODS/pg" ] && [ -d "$NODE_MODS/mysql2" ] ||
		fail "pg and mysql2 are not installed in $NODE_MODS (tools/install-deps.sh)"
}

agent_sh() { guard /bin/sh -c '"$@"' agent "$@"; }
# node_pg DB STATEMENT...: node's pg, guarded, on the test server.
node_pg() { NODE_PATH=$NODE_MODS PGHOST=$PG_SOCK PGUSER=$PG_USER agent_sh node "$CLIENT" pg "$@"; }
node_my() { NODE_PATH=$NODE_MODS MYSQL_SOCK=$MY_SOCK agent_sh node "$CLIENT" mysql "$@"; }

pg_image() { pg_dump -h "$PG_SOCK" -d "${1:-test}" --no-comments "${@:2}" | grep -v '^\\\(un\)\?restrict '; }
my_image() { mariadb-dump --no-defaults --socket="$MY_SOCK" -u root --skip-dump-date --skip-comments "${1:-test}"; }
last_snap() { ingest; db "select snapshot from events where op='sql' and snapshot is not null order by id desc limit 1"; }

pg_fixture() {
	pg_sql -c "DROP SCHEMA IF EXISTS app CASCADE; DROP TABLE IF EXISTS orders, users, notes CASCADE;
		CREATE TABLE users(id serial PRIMARY KEY, name text NOT NULL UNIQUE, born date);
		CREATE TABLE orders(id int PRIMARY KEY, user_id int REFERENCES users ON DELETE CASCADE, total numeric(8,2));
		INSERT INTO users(name, born) VALUES ('ada', '1815-12-10'), ('bob', NULL), (E'c\\ty', '2000-01-01');
		INSERT INTO orders VALUES (1, 1, 9.99), (2, 1, 0.01), (3, 3, 100);
		CREATE TABLE notes(id int, body text);
		INSERT INTO notes SELECT g, repeat('x', g % 50) FROM generate_series(1, 500) g;
		CREATE SCHEMA app; CREATE TABLE app.settings(k text PRIMARY KEY, v text);
		INSERT INTO app.settings VALUES ('theme', 'dark'), ('lang', 'en')"
}

my_fixture() {
	my_sql -e "DROP TABLE IF EXISTS orders, users, notes;
		CREATE TABLE users(id int AUTO_INCREMENT PRIMARY KEY, name varchar(20) NOT NULL UNIQUE, born date) ENGINE=InnoDB;
		CREATE TABLE orders(id int PRIMARY KEY, user_id int, total decimal(8,2), KEY (user_id),
			FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE) ENGINE=InnoDB;
		INSERT INTO users(name, born) VALUES ('ada', '1815-12-10'), ('bob', NULL), ('c''y', '2000-01-01');
		INSERT INTO orders VALUES (1, 1, 9.99), (2, 1, 0.01), (3, 3, 100);
		CREATE TABLE notes(id int, body text);
		INSERT INTO notes SELECT seq, repeat('x', seq % 50) FROM seq_1_to_500"
}

drop_aside_pg() {
	pg_sql -c "DO \$\$DECLARE r record; BEGIN FOR r IN SELECT nspname FROM pg_namespace WHERE nspname LIKE '%displaced_%' LOOP EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname); END LOOP; END\$\$"
}

# undone SERVER FIXTURE IMAGE DB STATEMENT: the statement runs through the
# node client under the built-in rules, changes the database, took a
# pre-image; restore brings the database back as its dump was.
undone() {
	local server=$1 fixture=$2 image=$3 dbname=$4 sql=$5 before id out prev
	$fixture
	before=$($image)
	prev=$(last_snap 2>/dev/null) || prev=
	out=$(node_$server "$dbname" "$sql" 2>&1) || fail "node $server '$sql': $out" || return 1
	assert_contains "$out" "ok" || return 1
	[ "$before" != "$($image)" ] || fail "'$sql' changed nothing" || return 1
	id=$(last_snap)
	[ -n "$id" ] && [ "$id" != "$prev" ] || fail "'$sql': no pre-image recorded" || return 1
	assert_eq "$(db "select decision || '|' || rule from events where snapshot='$id'")" \
		"snapshot|server-destructive-sql" || return 1
	out=$("$AG" restore "$id" 2>&1) || fail "restore $id after '$sql': $out" || return 1
	assert_contains "$out" "1 restored, 0 skipped, 0 failed" || return 1
	[ "$server" != pg ] || drop_aside_pg || return 1
	[ "$($image)" == "$before" ] ||
		{ diff <(echo "$before") <($image) | head -30; fail "'$sql': restore did not bring the database back"; }
}

test_wire_pg_preimages_restore_exactly() {
	need_node
	pg_start
	undone pg pg_fixture pg_image test "DROP TABLE orders"
	undone pg pg_fixture pg_image test "TRUNCATE users CASCADE"
	undone pg pg_fixture pg_image test "DELETE FROM notes"
	undone pg pg_fixture pg_image test "UPDATE notes SET body = 'gone'"
	undone pg pg_fixture pg_image test "DROP SCHEMA app CASCADE"
	# The extended protocol: Parse, Bind, Execute.
	undone pg pg_fixture pg_image test "P:UPDATE notes SET body = \$1|gone"
	undone pg pg_fixture pg_image test "N:DELETE FROM users"
	ingest
	# What the wire said: the database from the startup message.
	assert_eq "$(db "select count(distinct database) || ' ' || min(database) from events where op='sql'")" "1 localhost/test"
	assert_eq "$(db "select count(*) from events where op='sql' and decision='deny'")" 0
}

test_wire_pg_drop_database_restored() {
	need_node
	pg_start
	pg_sql -d postgres -c "CREATE DATABASE shop"
	pg_sql -d shop -c "CREATE TABLE items(id int PRIMARY KEY, name text);
		INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g"
	before=$(pg_image shop)
	out=$(node_pg postgres "DROP DATABASE shop" 2>&1) || fail "DROP DATABASE: $out"
	assert_eq "$(pg_sql -d postgres -c "select count(*) from pg_database where datname='shop'")" 0
	id=$(last_snap)
	assert_contains "$(db "select link_target from snapshots where id='$id'")" "database shop"
	out=$("$AG" restore "$id" 2>&1) || fail "restore: $out"
	assert_eq "$(pg_image shop)" "$before"
}

test_wire_my_preimages_restore_exactly() {
	need_node
	my_start
	undone my my_fixture my_image test "DROP TABLE orders"
	undone my my_fixture my_image test "TRUNCATE TABLE notes"
	undone my my_fixture my_image test "DELETE FROM users"
	undone my my_fixture my_image test "UPDATE notes SET body = 'gone'"
	# Prepared statements: COM_STMT_PREPARE, then EXECUTE.
	undone my my_fixture my_image test "P:UPDATE notes SET body = ?|gone"
	undone my my_fixture my_image test "P:DELETE FROM notes"
	ingest
	assert_eq "$(db "select link_target from snapshots where kind='mysql' and id=(select snapshot from events where sql='DELETE FROM users')")" \
		'table `test`.`orders` `test`.`users`'
	assert_eq "$(db "select count(*) from events where op='sql' and decision='deny'")" 0
}

test_wire_my_drop_schema_and_database_restored() {
	need_node
	my_start
	my_sql -e "CREATE DATABASE shop; CREATE TABLE shop.items(id int PRIMARY KEY, name text);
		INSERT INTO shop.items SELECT seq, concat('item ', seq) FROM seq_1_to_50"
	before=$(my_image shop)
	# A database the connection is not on, and MySQL's word for it.
	out=$(node_my test "DROP SCHEMA shop" 2>&1) || fail "DROP SCHEMA: $out"
	assert_eq "$(my_sql -e "select count(*) from information_schema.SCHEMATA where SCHEMA_NAME='shop'")" 0
	out=$("$AG" restore "$(last_snap)" 2>&1) || fail "restore: $out"
	assert_eq "$(my_image shop)" "$before"
	out=$(node_my test "DROP DATABASE shop" 2>&1) || fail "DROP DATABASE: $out"
	out=$("$AG" restore "$(last_snap)" 2>&1) || fail "restore: $out"
	assert_eq "$(my_image shop)" "$before"
}

# A rule that denies: the client's own error, the table intact, and the
# connection still in step (the next statement on it runs).
deny_rules() {
	cat "$AG_ROOT/rules/default.yaml" > "$T/deny.yaml"
	cat >> "$T/deny.yaml" <<'EOF'

  - id: no-drops
    on: sql
    class: [drop_table, delete_all]
    action: deny
    reason: "no dropping here"
EOF
}

# Both servers with their fixtures, and the deny rules at hand.
both_servers() {
	need_node
	pg_start
	my_start
	pg_fixture
	my_fixture
	deny_rules
}

test_wire_pg_denied_through_the_client() {
	need_node
	pg_start
	pg_fixture
	deny_rules
	rc=0; out=$(AGENTGUARD_RULES=$T/deny.yaml node_pg test "DROP TABLE notes" \
		"P:DELETE FROM notes WHERE \$1::int > 0 OR true|1" "SELECT 1" "P:SELECT \$1::int|7" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "the denied statements ran: $out"
	assert_contains "$out" "error agentguard: denied sql localhost/test: DROP TABLE notes (rule no-drops: no dropping here)"
	# Parse refused: an error that carries the denial.
	assert_contains "$out" 'error invalid input syntax for type integer: "agentguard: denied sql localhost/test: DELETE FROM notes'
	# ... and the connection went on.
	assert_eq "$(grep -c '^ok 1$' <<<"$out")" 2 "$out"
	assert_contains "$out" "agentguard: denied sql localhost/test: DROP TABLE notes"
	assert_eq "$(pg_sql -c "select count(*) from notes")" 500
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and decision='deny' and rule='no-drops'")" 2
}

test_wire_my_denied_through_the_client() {
	need_node
	my_start
	my_fixture
	deny_rules
	rc=0; out=$(AGENTGUARD_RULES=$T/deny.yaml node_my test "DROP TABLE notes" "P:DELETE FROM notes" \
		"SELECT 1" "P:SELECT ? + 1|1" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "the denied statements ran: $out"
	assert_eq "$(grep -c '^error agentguard denied this (rule no-drops): no dropping here' <<<"$out")" 2 "$out"
	assert_eq "$(grep -c '^ok 1$' <<<"$out")" 2 "$out"
	assert_eq "$(my_sql -e "select count(*) from notes")" 500
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and decision='deny' and rule='no-drops'")" 2
}

# A temporary table the connection holds is its own to empty and drop:
# the server is asked, on the client's own connection between its
# statements, and the client never sees the question (its statements'
# answers stay in step). A temporary table dropped out of sight (a
# function, a procedure) makes the real table behind the name anyone's.
test_wire_temp_tables_are_the_connections_own() {
	both_servers
	pg_sql -c "CREATE FUNCTION gone() RETURNS void LANGUAGE plpgsql AS \$f\$BEGIN EXECUTE chr(68) || 'ROP TABLE notes'; END\$f\$"
	printf '%s\n' 'DELIMITER //' "CREATE PROCEDURE gone() BEGIN SET @q = CONCAT('DR', 'OP TEMPORARY TABLE notes');
		PREPARE s FROM @q; EXECUTE s; END//" | my_sql
	export AGENTGUARD_RULES=$T/deny.yaml
	out=$(node_pg test "CREATE TEMP TABLE scratch AS SELECT * FROM notes" "UPDATE scratch SET body = 'x'" \
		"S:DELETE FROM scratch" "P:DELETE FROM scratch WHERE \$1::int > 0 OR true|1" "DROP TABLE scratch" \
		"SELECT * FROM users" 2>&1) || fail "node pg: $out" || return 1
	assert_eq "$(tr '\n' ' ' <<<"$out")" "ok 500 ok 500 ok 500 ok 0 ok null ok 3 " || return 1
	out=$(node_my test "CREATE TEMPORARY TABLE scratch AS SELECT * FROM notes" "UPDATE scratch SET body = 'x'" \
		"S:DELETE FROM scratch" "DROP TABLE scratch" "SELECT * FROM users" 2>&1) || fail "node mysql2: $out" || return 1
	assert_eq "$(tr '\n' ' ' <<<"$out")" "ok 500 ok 500 ok 500 ok 0 ok 3 " || return 1
	ingest
	assert_eq "$(db "select group_concat(c, ' ') from (select sql_class || ':' || decision c from events
		where op='sql' and (sql like 'DROP%' or sql like 'DELETE%' or sql like 'UPDATE%') order by time_ns)")" \
		"update:allow delete:allow delete:allow ddl:allow update:allow delete:allow ddl:allow"
	# Out of sight: the real notes are behind the name again.
	rc=0; out=$(node_pg test "CREATE TEMP TABLE notes(a int)" "SELECT gone()" "DROP TABLE notes" 2>&1) || rc=$?
	assert_contains "$out" "error agentguard: denied sql localhost/test: DROP TABLE notes" || return 1
	rc=0; out=$(node_my test "CREATE TEMPORARY TABLE notes(a int)" "CALL gone()" "DELETE FROM notes" 2>&1) || rc=$?
	assert_contains "$out" "error agentguard denied this (rule no-drops)" || return 1
	assert_eq "$(pg_sql -c "select count(*) from notes")" 500
	assert_eq "$(my_sql -e "select count(*) from notes")" 500
	# The guard's question runs no function of the session's: a schema of
	# its own first in search_path, with an unnest that writes, is passed by.
	pg_sql -c "CREATE SCHEMA evil; CREATE TABLE public.marks(a int);
		CREATE FUNCTION evil.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS
		\$f\$BEGIN INSERT INTO public.marks VALUES (1); RETURN QUERY SELECT pg_catalog.unnest(\$1); END\$f\$"
	out=$(node_pg test "SET search_path = evil, pg_catalog, public" "CREATE TEMP TABLE scratch(a int)" \
		"DROP TABLE scratch" 2>&1) || fail "node pg: $out" || return 1
	assert_eq "$(tr '\n' ' ' <<<"$out")" "ok null ok null ok null " || return 1
	assert_eq "$(pg_sql -c "select count(*) from marks")" 0
}

# Every write the driver makes cut into 3-byte pieces: headers and
# statements span calls, and are still read whole.
test_wire_statements_split_across_writes() {
	both_servers
	out=$(node_pg test "S:DELETE FROM orders" "S:SELECT count(*) FROM notes" "P:UPDATE notes SET body = \$1|s" 2>&1) ||
		fail "split pg: $out"
	assert_eq "$(pg_sql -c "select count(*) from orders")" 0
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and sql='DELETE FROM orders' and decision='snapshot' and snapshot is not null")" 1
	out=$(node_my test "S:DELETE FROM orders" "S:SELECT 1" 2>&1) || fail "split mysql: $out"
	assert_eq "$(my_sql -e "select count(*) from orders")" 0
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and sql='DELETE FROM orders' and database='localhost/test' and decision='snapshot'")" 2
	# Denied, split: nothing of it reaches the server.
	rc=0; out=$(AGENTGUARD_RULES=$T/deny.yaml node_pg test "S:DROP TABLE notes" 2>&1) || rc=$?
	assert_contains "$out" "error agentguard: denied sql"
	rc=0; out=$(AGENTGUARD_RULES=$T/deny.yaml node_my test "S:DROP TABLE notes" 2>&1) || rc=$?
	assert_contains "$out" "error agentguard denied this"
	assert_eq "$(pg_sql -c "select count(*) from notes")" 500
	assert_eq "$(my_sql -e "select count(*) from notes")" 500
}

# Every call that can write to a socket is read (write, writev with a
# message cut across iovecs, send, sendto, sendmsg), and a descriptor
# number reused by dup2, dup3 or after close is no connection any more.
test_wire_every_write_call() {
	pg_start
	pg_sql -c "CREATE TABLE t1(a int); CREATE TABLE t2(a int); CREATE TABLE t3(a int);
		CREATE TABLE t4(a int); CREATE TABLE t5(a int); CREATE TABLE a(a int)"
	gcc -O1 -o "$T/wire_calls" "$AG_ROOT/test/e2e/wire_calls.c" || fail "build wire_calls"
	deny_rules
	out=$(AGENTGUARD_RULES=$T/deny.yaml agent_sh "$T/wire_calls" "$PG_SOCK/.s.PGSQL.5432" "$PG_USER" test 2>/dev/null) ||
		fail "wire_calls: $out"
	local call
	for call in write writev send sendto sendmsg; do
		assert_contains "$out" "$call: E agentguard: denied sql localhost/test: DELETE FROM t" || return 1
	done
	for call in dup2 dup3 close; do
		assert_contains "$out" "$call: unchanged" || return 1
	done
	# Each read call followed: a temporary table's drop was asked about.
	for call in read readv recv recvfrom recvmsg; do
		assert_contains "$out" "$call: C DROP TABLE" || return 1
	done
	# Pipelined: no question between the two; both answers the client's own.
	assert_contains "$out" "pipelined first: C SELECT 1" || return 1
	assert_contains "$out" "pipelined second: E agentguard: denied sql localhost/test: DROP TABLE piped" || return 1
	assert_contains "$out" "overlapped first: C SELECT 1" || return 1
	assert_contains "$out" "overlapped second: C DO" || return 1
	assert_contains "$out" "overlapped third: E agentguard: denied sql localhost/test: DROP TABLE piped2" || return 1
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and decision='deny' and rule='no-drops'")" 7
	assert_eq "$(db "select count(*) from events where op='sql' and sql like 'DROP TABLE a%'")" 0
	assert_eq "$(pg_sql -c "select count(*) from pg_tables where tablename in ('t1','t2','t3','t4','t5','a')")" 6
}

# Bytes that look like statements on sockets that are no database
# connection go through untouched, and nothing is recorded.
test_wire_other_sockets_unaffected() {
	need_node
	cat > "$T/echo.js" <<'EOF'
const net = require('net'), path = process.argv[2];
// A PostgreSQL Query and a MySQL COM_QUERY, byte for byte, as a stranger's data.
const q = 'DROP TABLE users\0';
const pg = Buffer.concat([Buffer.from('Q'), Buffer.alloc(4), Buffer.from(q)]);
pg.writeUInt32BE(4 + q.length, 1);
const my = Buffer.concat([Buffer.from([q.length, 0, 0, 0, 3]), Buffer.from(q)]);
const data = Buffer.concat([pg, my, pg]);
const srv = net.createServer(s => s.pipe(s)).listen(path, () => {
	const c = net.connect(path, () => { c.write(pg); c.write(Buffer.concat([my, pg])); });
	let got = Buffer.alloc(0);
	c.on('data', d => {
		got = Buffer.concat([got, d]);
		if (got.length >= data.length) {
			console.log(got.equals(data) ? 'same' : 'changed');
			c.end(); srv.close();
		}
	});
});
EOF
	out=$(agent_sh node "$T/echo.js" "$T/echo.sock" 2>&1) || fail "echo: $out"
	assert_eq "$out" same
	# A file and a pipe, written through the hooked write().
	agent_sh sh -c 'printf "Q\0\0\0\025DROP TABLE users\0" > out.bin; printf "\0\0\0\010\004\322\026/" | cat > pipe.bin' ||
		fail "file writes"
	assert_eq "$(od -An -c out.bin | tr -d ' \n')" 'Q\0\0\0025DROPTABLEusers\0'
	assert_eq "$(wc -c < pipe.bin)" 8
	ingest
	assert_eq "$(db "select count(*) from events where op='sql'")" 0
}

# TLS: the statements cannot be read. The connection is recorded as an
# unguarded database connection (built-in: log), and a rule can deny it.
test_wire_tls_recorded_as_unguarded() {
	need_node
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	mkdir -p "$T/tls"
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
		-keyout "$T/tls/server.key" -out "$T/tls/server.crt" >/dev/null 2>&1 || fail "openssl"
	[ "$(id -u)" -ne 0 ] || chown -R postgres: "$T/tls"
	chmod 600 "$T/tls/server.key"
	chmod o+x "$T/tls"
	# The server and every client take the port from PGPORT.
	export PGPORT=$port
	PG_SERVER_OPTS="-c ssl=on -c ssl_cert_file=$T/tls/server.crt -c ssl_key_file=$T/tls/server.key -c listen_addresses=127.0.0.1" \
		pg_start
	pg_fixture
	out=$(NODE_PATH=$NODE_MODS PGHOST=127.0.0.1:$port PGUSER=$PG_USER WIRE_TLS=1 \
		agent_sh node "$CLIENT" pg test "SELECT count(*) FROM notes" 2>&1) || fail "TLS client: $out"
	assert_eq "$out" "ok 1"
	ingest
	assert_eq "$(db "select decision || '|' || rule || '|' || sql_class || '|' || database from events where op='sql'")" \
		"log|unguarded-database|unguarded|127.0.0.1/?"
	# The same over psql with sslmode=require: libpq's hooks read its
	# statements before they are encrypted; nothing is unguarded.
	out=$(agent_sh psql -X -At "host=127.0.0.1 port=$port dbname=test sslmode=require" \
		-c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>&1) || fail "psql: $out"
	assert_eq "$out" t
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and sql_class='unguarded'")" 1
	assert_eq "$(db "select count(*) from events where op='sql' and sql like 'SELECT ssl%'")" 1
	# A rule that denies it: the client's connection fails.
	cp "$AG_ROOT/rules/default.yaml" "$T/tls.yaml"
	printf '\n  - id: no-unguarded\n    on: sql\n    class: [unguarded]\n    action: deny\n    reason: "read or nothing"\n' >> "$T/tls.yaml"
	rc=0; out=$(AGENTGUARD_RULES=$T/tls.yaml NODE_PATH=$NODE_MODS PGHOST=127.0.0.1:$port PGUSER=$PG_USER \
		WIRE_TLS=1 agent_sh node "$CLIENT" pg test "SELECT 1" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "the unguarded connection ran: $out"
	assert_contains "$out" "connect error"
	assert_contains "$out" "agentguard: denied sql 127.0.0.1/?"
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and decision='deny' and rule='no-unguarded'")" 1
}
