# The report on a real PostgreSQL (dbservers.sh): an allowed DELETE ... WHERE
# on a server cannot be undone, and the report says so.

source "$AG_ROOT/test/e2e/dbservers.sh"
asan_libc_first

test_pg_allowed_delete_is_listed_as_not_restorable() {
	pg_start
	pg_sql -c "CREATE TABLE users(id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO users VALUES (1, 'ada'), (2, 'bob')"
	agrun psql -h "$PG_SOCK" -d test -c "DELETE FROM users WHERE id = 1" >/dev/null 2>&1 ||
		fail "the narrow DELETE did not run"
	assert_eq "$(pg_sql -At -c "SELECT count(*) FROM users")" 1
	local out; out=$("$AG" report)
	assert_contains "$out" "LOST       1 allowed, with nothing kept to undo them"
	assert_contains "$out" "DELETE FROM users WHERE id = 1"
	assert_contains "$out" "NOT RESTORABLE"
	"$AG" report --html "$T/r.html" 2>/dev/null
	assert_contains "$(sed -n '/id=lost/,/<\/section>/p' "$T/r.html")" "DELETE FROM users WHERE id = 1"
	# A read is neither notable nor lost.
	agrun psql -h "$PG_SOCK" -d test -c "SELECT * FROM users" >/dev/null 2>&1
	assert_contains "$("$AG" report)" "LOST       0 allowed"
}
