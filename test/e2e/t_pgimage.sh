# Server pre-images on PostgreSQL (lib/hooks/sql_pq.c): a destructive
# statement runs only after pg_dump has kept what it destroys, and
# `agentguard restore` brings it back exactly.

source "$AG_ROOT/test/e2e/dbservers.sh"
asan_libc_first

agent_sh() { guard /bin/sh -c '"$@"' agent "$@"; }
gpsql() { agent_sh psql -X -v ON_ERROR_STOP=1 -h "$PG_SOCK" -d test "$@"; }

test_pg_scratch() {
	pg_start
	pg_sql -c "CREATE TABLE users(id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO users VALUES (1, 'ada'), (2, 'bob'), (3, 'cy')"
	gpsql -c "DROP TABLE users"
	ingest
	db "select * from events where op='sql'"
	db "select * from snapshots"
	ls -la $AGENTGUARD_STATE_DIR/snapshots/*/
	head -3 $AGENTGUARD_STATE_DIR/snapshots/*/*
	false
}
