# SQLite beyond the SQL hooks, with the real clients (the sqlite3 shell,
# python3's sqlite3, node's better-sqlite3): the online backup API's
# destination (.restore, .backup, Connection.backup), statements on
# ATTACHed databases, ordinary writes that empty a table, and a copy of
# SQLite the hooks never reach. Each time the data must come back with
# `agentguard restore`, and the event must be in the log.

agent_sh() { guard /bin/sh -c '"$@"' agent "$@"; }

users_db() {
	sqlite3 "$1" "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
		INSERT INTO users VALUES (1, 'ada'), (2, 'bob'), (3, 'cy');"
}
users_of() { sqlite3 "$1" "SELECT coalesce(group_concat(id || ':' || name), '') FROM users" 2>&1; }
USERS="1:ada,2:bob,3:cy"
sql_row() {
	db "select sql_class || '|' || database || '|' || decision || '|' || coalesce(rule, '') || '|' || (snapshot is not null)
		from events where op='sql' and $1"
}
snap_of() { db "select snapshot from events where op='sql' and $1"; }

# .restore overwrites the open database through sqlite3_backup_init, with
# no SQL at all: a drop_database of the destination, backed up first.
test_sqlite3_restore_and_backup_snapshot_the_destination() {
	users_db "$WS/prod.db"
	sqlite3 "$WS/other.db" "CREATE TABLE junk(x); INSERT INTO junk VALUES (1);"
	before=$(sqlite3 "$WS/prod.db" .dump)
	out=$(agent_sh sqlite3 prod.db ".restore other.db" 2>&1) || fail "sqlite3 .restore failed: $out"
	assert_eq "$(sqlite3 "$WS/prod.db" .tables)" junk "(the restore ran)"
	# .backup into an existing database overwrites it the same way; into
	# a new file it destroys nothing and is no operation.
	users_db "$WS/keep.db"
	out=$(agent_sh sqlite3 other.db ".backup keep.db" ".backup fresh.db" 2>&1) ||
		fail "sqlite3 .backup failed: $out"
	assert_eq "$(sqlite3 "$WS/keep.db" .tables)" junk
	ingest
	assert_eq "$(sql_row "sql like 'sqlite3_backup_init(%' and database='$WS/prod.db'")" \
		"drop_database|$WS/prod.db|snapshot|sqlite-destructive-snapshot|1"
	assert_eq "$(sql_row "sql like 'sqlite3_backup_init(%' and database='$WS/keep.db'")" \
		"drop_database|$WS/keep.db|snapshot|sqlite-destructive-snapshot|1"
	assert_eq "$(db "select count(*) from events where op='sql' and database='$WS/fresh.db'")" 0
	assert_contains "$(db "select sql from events where op='sql' and database='$WS/prod.db'")" "$WS/other.db"
	out=$("$AG" restore "$(snap_of "database='$WS/prod.db' and sql like 'sqlite3_backup_init(%'")" --overwrite 2>&1) ||
		fail "restore failed: $out"
	assert_eq "$(sqlite3 "$WS/prod.db" .dump)" "$before"
	out=$("$AG" restore "$(snap_of "database='$WS/keep.db' and sql like 'sqlite3_backup_init(%'")" --overwrite 2>&1) ||
		fail "restore failed: $out"
	assert_eq "$(users_of "$WS/keep.db")" "$USERS"
}

# Python's Connection.backup, and a rule that denies it: the call fails
# with SQLite's own "not authorized" and the destination is untouched.
test_python_backup_into_a_database_judged_and_denied() {
	users_db "$WS/prod.db"
	cat > "$T/rules.yaml" <<'YAML'
version: 1
rules:
  - id: no-overwrite-db
    on: sql
    class: [drop_database]
    action: deny
    reason: "no database is overwritten whole"
YAML
	rc=0
	out=$(AGENTGUARD_RULES=$T/rules.yaml agent_sh python3 -c '
import sqlite3
src = sqlite3.connect(":memory:")
src.execute("CREATE TABLE junk(x)")
dst = sqlite3.connect("prod.db")
try:
    src.backup(dst)
    print("ran")
except sqlite3.Error as e:
    print("error:", e)
' 2>&1) || rc=$?
	assert_contains "$out" "error: not authorized"
	assert_eq "$(users_of "$WS/prod.db")" "$USERS"
	ingest
	assert_eq "$(sql_row "sql like 'sqlite3_backup_init(%'")" "drop_database|$WS/prod.db|deny|no-overwrite-db|0"
	# Allowed by the built-in rules: kept first, then overwritten.
	out=$(agent_sh python3 -c '
import sqlite3
src = sqlite3.connect(":memory:")
src.execute("CREATE TABLE junk(x)")
src.backup(sqlite3.connect("prod.db"))
' 2>&1) || fail "backup failed: $out"
	assert_eq "$(sqlite3 "$WS/prod.db" .tables)" junk
	ingest
	s=$(latest_session)
	assert_eq "$(sql_row "session='$s' and sql like 'sqlite3_backup_init(%'")" \
		"drop_database|$WS/prod.db|snapshot|sqlite-destructive-snapshot|1"
	out=$("$AG" restore --session "$s" --overwrite 2>&1) || fail "restore failed: $out"
	assert_eq "$(users_of "$WS/prod.db")" "$USERS"
}

# A statement on an ATTACHed database: its row names that database's file
# and its snapshot is of that database, whether main is in memory, a file,
# or the name is unqualified and only the attached database has it.
test_sqlite_attached_databases_snapshotted_and_named() {
	mkdir -p "$T/elsewhere"
	users_db "$WS/aux.db"
	users_db "$T/elsewhere/far.db"
	sqlite3 "$WS/main.db" "CREATE TABLE notes(x); INSERT INTO notes VALUES (1);"
	out=$(agent_sh sqlite3 :memory: "ATTACH 'aux.db' AS aux; DELETE FROM aux.users" 2>&1) ||
		fail "DELETE on an attached database failed: $out"
	assert_eq "$(users_of "$WS/aux.db")" ""
	ingest
	assert_eq "$(sql_row "sql='DELETE FROM aux.users'")" \
		"delete_all|$WS/aux.db|snapshot|sqlite-destructive-snapshot|1"
	out=$("$AG" restore "$(snap_of "sql='DELETE FROM aux.users'")" --overwrite 2>&1) || fail "restore: $out"
	assert_eq "$(users_of "$WS/aux.db")" "$USERS"

	out=$(agent_sh python3 -c '
import sqlite3, sys
c = sqlite3.connect("main.db")
c.execute("ATTACH ? AS far", (sys.argv[1],))
c.execute("DROP TABLE far.users")
c.execute("ATTACH ? AS aux", ("aux.db",))
c.execute("DELETE FROM users")     # only aux has it
c.commit()
' "$T/elsewhere/far.db" 2>&1) || fail "python on attached databases failed: $out"
	assert_eq "$(users_of "$WS/aux.db")" ""
	assert_eq "$(sqlite3 "$T/elsewhere/far.db" .tables)" ""
	assert_eq "$(sqlite3 "$WS/main.db" "select count(*) from notes")" 1
	ingest
	s=$(latest_session)
	assert_eq "$(sql_row "session='$s' and sql='DROP TABLE far.users'")" \
		"drop_table|$T/elsewhere/far.db|snapshot|sqlite-destructive-snapshot|1"
	assert_eq "$(sql_row "session='$s' and sql='DELETE FROM users'")" \
		"delete_all|$WS/aux.db|snapshot|sqlite-destructive-snapshot|1"
	# far.db lies outside the workspace: restore asks to be told so.
	out=$("$AG" restore --session "$s" --overwrite 2>&1) && fail "restored outside unasked: $out"
	assert_contains "$out" "outside the session's workspace and home"
	out=$("$AG" restore --session "$s" --overwrite --allow-outside 2>&1) || fail "restore: $out"
	assert_eq "$(users_of "$WS/aux.db")" "$USERS"
	assert_eq "$(users_of "$T/elsewhere/far.db")" "$USERS"
}

# A WHERE that selects every row, or a loop of one-row deletes: the first
# change of the session to a workspace database is backed up (once), and a
# tautology is a delete_all, backed up every time.
test_sqlite_ordinary_deletes_kept_once_per_session() {
	users_db "$WS/app.db"
	out=$(agent_sh python3 -c '
import sqlite3
c = sqlite3.connect("app.db")
for i in (1, 2, 3):
    c.execute("DELETE FROM users WHERE id = ?", (i,))
    c.commit()
c.execute("INSERT INTO users VALUES (9, ?)", ("zed",))
c.execute("DELETE FROM users WHERE id > 0")
c.commit()
' 2>&1) || fail "python deletes failed: $out"
	assert_eq "$(users_of "$WS/app.db")" ""
	ingest
	s=$(latest_session)
	assert_eq "$(db "select decision || '|' || rule from events where session='$s' and op='sql' and sql='DELETE FROM users WHERE id = ?'")" \
		"snapshot|sqlite-workspace-keep"
	assert_eq "$(db "select count(*) from events where session='$s' and op='sql' and snapshot is not null")" 1 \
		"(one backup for the whole session)"
	assert_eq "$(db "select sql_class || '|' || decision from events where session='$s' and op='sql' and sql='DELETE FROM users WHERE id > 0'")" \
		"delete|allow"
	out=$("$AG" restore "$(snap_of "session='$s' and snapshot is not null")" --overwrite 2>&1) || fail "restore: $out"
	assert_eq "$(users_of "$WS/app.db")" "$USERS"

	for w in "1" "true" "1=1" "name = name" "(1 = 1) AND 2 > 1" "name LIKE '%'"; do
		out=$(agent_sh sqlite3 app.db "DELETE FROM users WHERE $w" 2>&1) || fail "DELETE WHERE $w: $out"
		assert_eq "$(users_of "$WS/app.db")" ""
		ingest
		assert_eq "$(sql_row "sql='DELETE FROM users WHERE $(sed "s/'/''/g" <<<"$w")'")" \
			"delete_all|$WS/app.db|snapshot|sqlite-destructive-snapshot|1"
		out=$("$AG" restore "$(snap_of "sql='DELETE FROM users WHERE $(sed "s/'/''/g" <<<"$w")'")" --overwrite 2>&1) ||
			fail "restore: $out"
		assert_eq "$(users_of "$WS/app.db")" "$USERS" "(after WHERE $w)"
	done
}

# better-sqlite3 carries its own SQLite, its symbols hidden: no SQL hook
# sees it. Its writable open of the database is a `write`, and the
# built-in rules keep a workspace database the first time.
BSQ=${AG_BETTER_SQLITE3:-/opt/agentguard-test/node_modules}
test_better_sqlite3_database_kept_by_write() {
	[ -d "$BSQ/better-sqlite3" ] || fail "better-sqlite3 is not installed in $BSQ (tools/install-deps.sh)"
	mod=$(find "$BSQ/better-sqlite3/build" -name better_sqlite3.node | head -n 1)
	# It really is hidden: no sqlite3_ entry point exported.
	[ -z "$(nm -D --defined-only "$mod" | awk '$3 ~ /^sqlite3_/')" ] || fail "$mod exports sqlite3_*"
	users_db "$WS/app.db"
	out=$(NODE_PATH=$BSQ agent_sh node -e '
const Database = require("better-sqlite3");
const d = new Database("app.db");
d.pragma("journal_mode = WAL");
d.exec("DELETE FROM users WHERE id > 0; DROP TABLE users; CREATE TABLE x(y)");
d.close();
' 2>&1) || fail "node failed: $out"
	assert_eq "$(sqlite3 "$WS/app.db" .tables)" x
	ingest
	s=$(latest_session)
	assert_eq "$(db "select count(*) from events where session='$s' and op='sql'")" 0 "(no SQL seen)"
	assert_eq "$(db "select decision || '|' || rule || '|' || (snapshot is not null) from events where session='$s' and op='write' and path='$WS/app.db'")" \
		"snapshot|workspace-snapshot|1"
	out=$("$AG" restore --session "$s" --overwrite 2>&1) || fail "restore: $out"
	assert_eq "$(users_of "$WS/app.db")" "$USERS"
	assert_eq "$(sqlite3 "$WS/app.db" "PRAGMA integrity_check")" ok
}
