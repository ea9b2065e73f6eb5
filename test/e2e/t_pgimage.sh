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
