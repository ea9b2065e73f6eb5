# Server pre-images on PostgreSQL (lib/hooks/sql_pq.c, tools/pgsnap.c): a
# destructive statement runs only after pg_dump has kept what it destroys,
# and `agentguard restore` brings it back exactly: the schema and rows, as
# pg_dump of the database shows them before and after.

source "$AG_ROOT/test/e2e/dbservers.sh"
asan_libc_first

agent_sh() { guard /bin/sh -c '"$@"' agent "$@"; }
gpsql() { agent_sh psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -d test "$@"; }
# The whole test database as pg_dump sees it (no restrict key: it is random).
pg_image() { pg_dump -h "$PG_SOCK" -d "${1:-test}" --no-comments "${@:2}" | grep -v '^\\\(un\)\?restrict '; }

pg_fixture() {
	pg_sql -c "DROP SCHEMA IF EXISTS app CASCADE; DROP TABLE IF EXISTS orders, users, notes CASCADE;
		CREATE TABLE users(id serial PRIMARY KEY, name text NOT NULL UNIQUE, born date);
		CREATE TABLE orders(id int PRIMARY KEY, user_id int REFERENCES users ON DELETE CASCADE, total numeric(8,2));
		CREATE INDEX orders_user ON orders(user_id);
		INSERT INTO users(name, born) VALUES ('ada', '1815-12-10'), ('bob', NULL), (E'c\\ty', '2000-01-01');
		INSERT INTO orders VALUES (1, 1, 9.99), (2, 1, 0.01), (3, 3, 100);
		CREATE TABLE notes(id int, body text);
		INSERT INTO notes SELECT g, repeat('x', g % 50) FROM generate_series(1, 500) g;
		CREATE SCHEMA app; CREATE TABLE app.settings(k text PRIMARY KEY, v text);
		INSERT INTO app.settings VALUES ('theme', 'dark'), ('lang', 'en')"
}

# The snapshot the last sql event of the session took.
last_snap() { ingest; db "select snapshot from events where op='sql' and snapshot is not null order by id desc limit 1"; }

# statement SQL: run it guarded, it succeeds, a pre-image was kept; restore
# brings the database back to what it was (pg_dump identical).
pg_undone() {
	local sql=$1 before after id out
	pg_fixture
	before=$(pg_image)
	out=$(gpsql -c "$sql" 2>&1) || fail "guarded psql -c '$sql' failed: $out" || return 1
	after=$(pg_image)
	[ "$before" != "$after" ] || fail "'$sql' changed nothing" || return 1
	id=$(last_snap)
	[ -n "$id" ] || fail "'$sql': no pre-image recorded" || return 1
	assert_eq "$(db "select kind from snapshots where id='$id'")" pgsql || return 1
	out=$("$AG" restore "$id" 2>&1) || fail "restore $id after '$sql': $out" || return 1
	assert_contains "$out" "1 restored, 0 skipped, 0 failed" || return 1
	# What the statement left is moved aside, not lost: drop the aside
	# schemas before comparing.
	pg_sql -c "DO \$\$DECLARE r record; BEGIN FOR r IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'agentguard_displaced_%' LOOP EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname); END LOOP; END\$\$" ||
		return 1
	pg_sql -c "DO \$\$DECLARE r record; BEGIN FOR r IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'app_displaced_%' LOOP EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname); END LOOP; END\$\$" ||
		return 1
	[ "$(pg_image)" == "$before" ] ||
		{ diff <(echo "$before") <(pg_image) | head -40; fail "'$sql': restore did not bring the database back"; }
}

test_pg_preimages_restore_exactly() {
	pg_start
	pg_undone "DROP TABLE orders"
	pg_undone "DROP TABLE users CASCADE"
	pg_undone "TRUNCATE users CASCADE"
	pg_undone "DELETE FROM users"
	pg_undone "UPDATE notes SET body = 'gone'"
	pg_undone "delete from orders; update users set name = name || '!'"
	pg_undone "DROP SCHEMA app CASCADE"
	pg_undone "ALTER TABLE users DROP COLUMN born"
	# Every statement ran as the snapshot rule decided, and said so.
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and decision='snapshot' and rule='server-destructive-sql' and snapshot is not null")" 8
	assert_eq "$(db "select count(*) from events where op='sql' and decision='deny'")" 0
}

test_pg_drop_database_restored() {
	pg_start
	pg_sql -d postgres -c "CREATE DATABASE shop"
	pg_sql -d shop -c "CREATE TABLE items(id int PRIMARY KEY, name text);
		INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g;
		CREATE VIEW cheap AS SELECT * FROM items WHERE id < 10"
	before=$(pg_image shop)
	out=$(agent_sh psql -X -v ON_ERROR_STOP=1 -h "$PG_SOCK" -d postgres -c "DROP DATABASE shop" 2>&1) ||
		fail "DROP DATABASE: $out"
	assert_eq "$(pg_sql -d postgres -c "select count(*) from pg_database where datname='shop'")" 0
	id=$(last_snap)
	assert_contains "$(db "select link_target from snapshots where id='$id'")" "database shop"
	out=$("$AG" restore "$id" 2>&1) || fail "restore: $out"
	assert_eq "$(pg_image shop)" "$before"
	# Restoring again: what is there now is renamed aside, not lost.
	pg_sql -d shop -c "DELETE FROM items WHERE id > 40"
	"$AG" restore "$id" >/dev/null 2>&1 || fail "second restore"
	assert_eq "$(pg_image shop)" "$before"
	assert_eq "$(pg_sql -d postgres -c "select count(*) from pg_database where datname like 'shop_displaced_%'")" 1
}

test_pg_restore_beside_show_and_undo() {
	pg_start
	pg_fixture
	before=$(pg_sql -c "select string_agg(id || ':' || name, ',' order by id) from users")
	gpsql -c "DELETE FROM notes" || fail "delete"
	id=$(last_snap)
	# show: each table's row count and its first rows.
	out=$("$AG" show --lines 2 "$id")
	assert_contains "$out" "kind      pgsql"
	assert_contains "$out" "table public.notes:"
	assert_contains "$out" "  500 rows"
	assert_contains "$out" '  | 1\tx'
	assert_not_contains "$out" '  | 3\txxx'
	# --to-table: beside the original, which is left alone (empty).
	out=$("$AG" restore --to-table notes_back "$id" 2>&1) || fail "restore --to-table: $out"
	assert_eq "$(pg_sql -c "select count(*) from notes")" 0
	assert_eq "$(pg_sql -c "select count(*), sum(length(body)) from notes_back")" \
		"500|$(pg_sql -c "select sum(g % 50) from generate_series(1, 500) g")"
	pg_sql -c "DROP TABLE notes_back"
	# In place; then the restore itself undone: what it displaced comes back.
	pg_sql -c "INSERT INTO notes VALUES (7, 'written after')"
	out=$("$AG" restore "$id" 2>&1) || fail "restore: $out"
	assert_eq "$(pg_sql -c "select count(*) from notes")" 500
	undo=$(sed -n 's/^undo this restore: agentguard restore --session \([^ ]*\).*/\1/p' <<<"$out")
	[ -n "$undo" ] || fail "restore printed no undo command: $out"
	out=$("$AG" restore --session "$undo" 2>&1) || fail "undo: $out"
	assert_eq "$(pg_sql -c "select string_agg(id || ':' || body, ',') from notes")" "7:written after"
}

# The Replit sequence: every row deleted, 4,000 fake ones in their place,
# success reported. The report shows the deletion with its restore
# command, and the restore brings back the original rows and only those.
test_pg_replit_sequence() {
	pg_start
	pg_sql -c "CREATE TABLE executives(id int PRIMARY KEY, name text NOT NULL, company text);
		INSERT INTO executives SELECT g, 'exec ' || g, 'co ' || (g % 37) FROM generate_series(1, 1206) g"
	orig=$(pg_sql -c "select md5(string_agg(id || name || company, ',' order by id)) from executives")
	cat > "$WS/cleanup.py" <<'PY'
import psycopg2, sys
conn = psycopg2.connect(host=sys.argv[1], dbname="test")
cur = conn.cursor()
cur.execute("DELETE FROM executives")
for i in range(4000):
    cur.execute("INSERT INTO executives VALUES (%s, %s, %s)", (i + 1, "fake %d" % i, "Acme"))
conn.commit()
print("Database cleaned up successfully: 4000 records")
PY
	# Debian's python3, where python3-psycopg2 is (not a python3 earlier on PATH).
	out=$(agent_sh /usr/bin/python3 "$WS/cleanup.py" "$PG_SOCK" 2>&1) || fail "the script failed: $out"
	assert_contains "$out" "cleaned up successfully"
	assert_eq "$(pg_sql -c "select count(*) from executives where company = 'Acme'")" 4000
	ingest
	id=$(db "select snapshot from events where op='sql' and sql_class='delete_all'")
	[ -n "$id" ] || fail "no pre-image of the DELETE"
	report=$("$AG" report)
	assert_contains "$report" "DELETE FROM executives"
	assert_contains "$report" "agentguard restore $id"
	out=$("$AG" restore "$id" 2>&1) || fail "restore: $out"
	assert_eq "$(pg_sql -c "select count(*) from executives")" 1206
	assert_eq "$(pg_sql -c "select md5(string_agg(id || name || company, ',' order by id)) from executives")" "$orig"
	# The fakes are not lost either: aside, where a human can look.
	assert_eq "$(pg_sql -c "select count(*) from pg_tables where tablename='executives' and schemaname like 'agentguard_displaced_%'")" 1
}

# A pre-image that cannot be taken denies the statement, through psql's
# own error path, and the data stays.
test_pg_preimage_impossible_means_denied() {
	pg_start
	pg_fixture
	# Over the budget.
	sed 's/max_bytes: 4GiB/max_bytes: 16KiB/' "$AG_ROOT/rules/default.yaml" > "$T/small.yaml"
	rc=0; out=$(AGENTGUARD_RULES=$T/small.yaml gpsql -c "DELETE FROM notes" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "DELETE over the budget ran: $out"
	assert_contains "$out" "ERROR:  agentguard: denied sql"
	assert_contains "$out" "snapshots.max_bytes"
	assert_eq "$(pg_sql -c "select count(*) from notes")" 500
	# No permission to read what it destroys: the agent's role may delete
	# but not select.
	pg_sql -c "CREATE ROLE agent LOGIN; GRANT DELETE ON notes TO agent; GRANT USAGE ON SCHEMA public TO agent"
	rc=0; out=$(agent_sh psql -X -h "$PG_SOCK" -U agent -d test -c "DELETE FROM notes" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "DELETE without a pre-image ran: $out"
	assert_contains "$out" "ERROR:  agentguard: denied sql"
	assert_contains "$out" "pre-image could not be taken"
	assert_contains "$out" "permission denied"
	assert_eq "$(pg_sql -c "select count(*) from notes")" 500
	# A lock the client's own transaction holds: pg_dump would wait on it
	# forever; the lock timeout makes it fail, and the statement is denied.
	rc=0; out=$(printf 'BEGIN;\nLOCK TABLE notes IN ACCESS EXCLUSIVE MODE;\nDELETE FROM notes;\nCOMMIT;\n' |
		agent_sh timeout 60 psql -X -v ON_ERROR_STOP=1 -h "$PG_SOCK" -d test 2>&1) || rc=$?
	[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "locked DELETE: rc $rc: $out"
	assert_contains "$out" "ERROR:  agentguard: denied sql"
	assert_contains "$out" "open transaction"
	assert_eq "$(pg_sql -c "select count(*) from notes")" 500
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and decision='deny' and rule='server-destructive-sql'")" 3
}

# Inside a transaction the pre-image is the last committed state, and says so.
test_pg_preimage_inside_a_transaction() {
	pg_start
	pg_fixture
	printf "BEGIN;\nINSERT INTO notes VALUES (1000, 'uncommitted');\nINSERT INTO users(name) VALUES ('dee');\nDELETE FROM notes;\nCOMMIT;\n" |
		agent_sh psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -d test || fail "transaction"
	# The pre-image's read inside the transaction left it whole: it committed.
	assert_eq "$(pg_sql -c "select count(*) from users where name = 'dee'")" 1
	assert_eq "$(pg_sql -c "select count(*) from notes")" 0
	id=$(last_snap)
	assert_contains "$(db "select link_target from snapshots where id='$id'")" "committed state"
	out=$("$AG" show "$id")
	assert_contains "$out" "inside a transaction"
	assert_contains "$out" "500 rows"
}

# Text whose victims cannot be read from it (a routine's body) has no
# pre-image: under the built-in rules it is denied, saying why.
test_pg_unreadable_targets_denied() {
	pg_start
	pg_fixture
	rc=0; out=$(gpsql -c 'CREATE FUNCTION wipe() RETURNS void LANGUAGE sql AS $$ DELETE FROM users $$' 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "CREATE FUNCTION ran: $out"
	assert_contains "$out" "cannot tell from the text which tables it destroys"
	assert_eq "$(pg_sql -c "select count(*) from pg_proc where proname = 'wipe'")" 0
	# A name with a line break would end the dump's comment line (and the
	# record's list): no pre-image, denied.
	pg_sql -c $'CREATE TABLE "two\nlines"(a int); INSERT INTO "two\nlines" VALUES (1)'
	rc=0; out=$(gpsql -c $'DROP TABLE "two\nlines"' 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "DROP of a name with a line break ran: $out"
	assert_contains "$out" "control characters"
	assert_eq "$(pg_sql -c $'select count(*) from "two\nlines"')" 1
}

# ---- MariaDB ------------------------------------------------------------

gmariadb() { agent_sh mariadb --socket="$MY_SOCK" -u root test "$@"; }
my_image() { mariadb-dump --no-defaults --socket="$MY_SOCK" -u root --skip-dump-date --skip-comments "${1:-test}"; }

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

# As pg_undone, through Debian's mariadb client (its own copy of the client
# library: judged on send()).
my_undone() {
	local sql=$1 before after id out
	my_fixture
	before=$(my_image)
	out=$(gmariadb -e "$sql" 2>&1) || fail "guarded mariadb -e '$sql' failed: $out" || return 1
	after=$(my_image)
	[ "$before" != "$after" ] || fail "'$sql' changed nothing" || return 1
	id=$(last_snap)
	[ -n "$id" ] || fail "'$sql': no pre-image recorded" || return 1
	assert_eq "$(db "select kind from snapshots where id='$id'")" mysql || return 1
	out=$("$AG" restore "$id" 2>&1) || fail "restore $id after '$sql': $out" || return 1
	assert_contains "$out" "1 restored, 0 skipped, 0 failed" || return 1
	[ "$(my_image)" == "$before" ] ||
		{ diff <(echo "$before") <(my_image) | head -40; fail "'$sql': restore did not bring the database back"; }
}

test_my_preimages_restore_exactly() {
	my_start
	my_undone "DROP TABLE orders"
	my_undone "TRUNCATE TABLE notes"
	my_undone "DELETE FROM users"
	my_undone "UPDATE notes SET body = 'gone'"
	my_undone "ALTER TABLE users DROP COLUMN born"
	ingest
	assert_eq "$(db "select count(*) from events where op='sql' and decision='snapshot' and rule='server-destructive-sql' and snapshot is not null")" 5
	# DELETE FROM users cascaded into orders: both were in its pre-image.
	assert_eq "$(db "select link_target from snapshots where kind='mysql' and id=(select snapshot from events where sql='DELETE FROM users')")" \
		'table `test`.`orders` `test`.`users`'
	# What each restore displaced is aside, in a database of its own.
	[ "$(my_sql -e "select count(*) from information_schema.SCHEMATA where SCHEMA_NAME like 'agentguard_displaced_%'")" -ge 4 ] ||
		fail "nothing kept aside"
	id=$(db "select snapshot from events where sql like 'UPDATE notes SET body%'")
	out=$("$AG" show "$id")
	assert_contains "$out" "table notes:"
	assert_contains "$out" "500 rows"
}

test_my_drop_database_restored() {
	my_start
	my_sql -e "CREATE DATABASE shop; CREATE TABLE shop.items(id int PRIMARY KEY, name text);
		INSERT INTO shop.items SELECT seq, concat('item ', seq) FROM seq_1_to_50"
	before=$(my_image shop)
	out=$(gmariadb -e "DROP DATABASE shop" 2>&1) || fail "DROP DATABASE: $out"
	assert_eq "$(my_sql -e "select count(*) from information_schema.SCHEMATA where SCHEMA_NAME='shop'")" 0
	id=$(last_snap)
	out=$("$AG" restore "$id" 2>&1) || fail "restore: $out"
	assert_eq "$(my_image shop)" "$before"
}

test_my_preimage_over_budget_denied() {
	my_start
	my_fixture
	sed 's/max_bytes: 4GiB/max_bytes: 4KiB/' "$AG_ROOT/rules/default.yaml" > "$T/small.yaml"
	rc=0; out=$(AGENTGUARD_RULES=$T/small.yaml gmariadb -e "DELETE FROM notes" 2>&1) || rc=$?
	[ $rc -ne 0 ] || fail "DELETE over the budget ran: $out"
	assert_contains "$out" "agentguard denied this"
	assert_eq "$(my_sql -e "select count(*) from notes")" 500
	ingest
	assert_contains "$(db "select reason from events where op='sql' and sql='DELETE FROM notes'")" "snapshots.max_bytes"
}
