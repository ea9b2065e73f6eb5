# A session restore reverses the session, and is itself a session that a
# restore reverses: real programs under `agentguard run`, the undo command
# it prints, and the disk and database compared byte for byte.

# What the workspace holds: names, types, modes, sizes, link targets and
# every file's content (mtimes too, but not of $WS itself, which a restore
# changes by making and removing names in it).
ws_sig() { tree_sig "$WS"; }

# The command after "undo (N snapshots): " in run's summary, or after
# "undo this restore: " in restore's output, run with this build's CLI.
undo_from() {
	local cmd
	cmd=$(grep -o -e 'undo ([0-9]* snapshots\?): agentguard restore [^(]*' -e 'undo this restore: agentguard restore .*' <<<"$1" |
	      sed -e 's/^undo ([0-9]* snapshots\?): agentguard //' -e 's/^undo this restore: agentguard //' -e 's/ *$//')
	[ -n "$cmd" ] || { fail "no undo command in: $1"; return 1; }
	# shellcheck disable=SC2086
	"$AG" $cmd
}

messy_agent() {
	cat > "$T/agent.sh" <<-'EOF'
	set -e
	rm a.txt                                  # a delete
	: > b.txt                                 # a truncation
	echo overwritten > c.txt                  # an overwrite
	mv d.txt e.txt                            # a rename over a file
	mv f.txt g.txt                            # a rename onto a new name
	rm -rf tree                               # a tree
	vim -es -N -c '%s/original/VIM/' -c wq v.txt         # an editor (swap files)
	sed -i 's/original/SED/' s.txt            # sed's temporary file renamed over
	python3 -c '
	import os, tempfile
	fd, t = tempfile.mkstemp(dir=".")         # an agent tool atomic save
	os.write(fd, b"saved by python\n"); os.close(fd); os.replace(t, "p.txt")'
	sqlite3 app.db 'DROP TABLE users'
	EOF
}

test_the_printed_undo_reverses_a_messy_session_and_its_undo_brings_the_end_back() {
	command -v vim >/dev/null || fail "vim is not installed (tools/install-deps.sh installs it)"
	seed a.txt b.txt c.txt d.txt e.txt f.txt v.txt s.txt p.txt
	make_tree "$WS/tree"
	sqlite3 "$WS/app.db" "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);
	                      INSERT INTO users(name) VALUES ('ada'), ('grace');
	                      CREATE TABLE keep(x); INSERT INTO keep VALUES (42);"
	local before end after
	before=$(ws_sig)
	messy_agent
	out=$(agrun bash "$T/agent.sh" 2>&1) || fail "the agent failed: $out"
	end=$(ws_sig)
	[ "$before" != "$end" ] || fail "the agent changed nothing"
	assert_eq "$(sqlite3 "$WS/app.db" .tables)" "keep"
	# The editor's and the tools' temporary files were made and gone
	# within the session: they have snapshots, and no restore brings them
	# back.
	assert_contains "$(db "select group_concat(path) from snapshots")" "/.v.txt.swp"

	rout=$(undo_from "$out") || fail "the printed undo failed: $rout"
	after=$(ws_sig)
	assert_eq "$after" "$before" "(the undo did not bring the workspace back: $rout)"
	assert_eq "$(sqlite3 "$WS/app.db" 'select name from users order by id' | paste -sd,)" "ada,grace"
	assert_eq "$(find "$WS" -name '*.swp*' -o -name 'tmp*' -o -name 'sed*' -o -name '.agentguard-restore*' | wc -l)" 0
	assert_contains "$rout" "removed $WS/g.txt: nothing was here before"
	assert_contains "$rout" "were left as they are"

	# The restore is a session: undoing it brings the session's end back.
	r2=$(undo_from "$rout") || fail "undoing the restore failed: $r2"
	assert_eq "$(ws_sig)" "$end" "(the restore's undo did not bring the session's end back: $r2)"
	assert_eq "$(sqlite3 "$WS/app.db" .tables)" "keep"
	# And that one too: back to before the session.
	r3=$(undo_from "$r2") || fail "undoing the undo failed: $r3"
	assert_eq "$(ws_sig)" "$before"
	"$AG" verify >/dev/null || fail "verify: $("$AG" verify 2>&1)"
	assert_eq "$(db "select count(*) from sessions where undoes is not null")" 3
}

test_a_file_changed_by_hand_after_the_session_is_a_conflict_left_alone() {
	seed x y z
	agrun sh -c 'echo by the agent > x; echo by the agent > y; rm z' >/dev/null 2>&1 ||
		fail "the agent failed"
	local s; s=$(latest_session)
	echo "by hand" > "$WS/x"
	out=$("$AG" restore --session "$s" 2>&1) && fail "a conflict passed: $out"
	assert_contains "$out" "skipped $WS/x: changed after the session"
	assert_eq "$(cat "$WS/x")" "by hand"
	assert_eq "$(cat "$WS/y")" "original y"
	assert_eq "$(cat "$WS/z")" "original z"
	assert_contains "$out" "2 restored, 1 skipped, 0 failed"
	# What the session left, or what was there before, is no conflict.
	out=$("$AG" restore --session "$s" 2>&1) && fail "the conflict is gone: $out"
	assert_not_contains "$out" "skipped $WS/y: changed"
	# --force replaces it, and keeps it: the undo gives the hand edit back.
	out=$("$AG" restore --force --session "$s" 2>&1) || fail "--force: $out"
	assert_eq "$(cat "$WS/x")" "original x"
	undo_from "$out" >/dev/null || fail "undo of --force"
	assert_eq "$(cat "$WS/x")" "by hand"
}

test_restore_by_time_and_by_path() {
	seed a b c
	cat > "$T/agent.sh" <<-EOF
	rm a; sleep 0.3; date -u +%Y-%m-%dT%H:%M:%S.%NZ > "$T/mid"; sleep 0.3; rm b c
	EOF
	agrun sh "$T/agent.sh" >/dev/null 2>&1 || fail "the agent failed"
	local s; s=$(latest_session)
	out=$("$AG" restore --session "$s" --before "$(cat "$T/mid")" 2>&1) || fail "--before: $out"
	assert_exists "$WS/a"; assert_missing "$WS/b"; assert_missing "$WS/c"
	out=$("$AG" restore --session "$s" --path '**/c' 2>&1) || fail "--path: $out"
	assert_exists "$WS/c"; assert_missing "$WS/b"
	"$AG" restore --session "$s" --before soonish >/dev/null 2>&1 && fail "a bad --before passed"
	# A named time is a time: nothing of this session is older than yesterday.
	out=$("$AG" restore --session "$s" --before yesterday 2>&1)
	assert_not_contains "$out" "restored $WS"
	return 0
}

test_show_and_diff_a_text_file_and_a_database() {
	printf 'first line\nsecond line\n' > "$WS/notes.txt"
	sqlite3 "$WS/app.db" "CREATE TABLE users(x); INSERT INTO users VALUES (1), (2);
	                      CREATE TABLE audit(y);"
	agrun sh -c 'echo replaced > notes.txt; sqlite3 app.db "DROP TABLE users"' >/dev/null 2>&1 ||
		fail "the agent failed"
	local t d
	t=$(db "select id from snapshots where path = '$WS/notes.txt'")
	d=$(db "select id from snapshots where path = '$WS/app.db' order by created_ns limit 1")
	out=$("$AG" show "$t") || fail "show: $out"
	assert_contains "$out" "path      $WS/notes.txt"
	assert_contains "$out" "  | second line"
	assert_contains "$out" "taken before truncate"
	out=$("$AG" show "${d:0:6}") || fail "show by prefix: $out"
	assert_contains "$out" "a SQLite database with 2 tables:"
	assert_contains "$out" "  users: 2 rows"
	out=$("$AG" diff "$t") && fail "diff of a changed file passed: $out"
	assert_contains "$out" "-second line"
	assert_contains "$out" "+replaced"
	out=$("$AG" diff "$d") && fail "diff of a changed database passed: $out"
	assert_contains "$out" "- table users (2 rows): in the snapshot, not there now"
	"$AG" restore --session "$(latest_session)" >/dev/null || fail "restore"
	out=$("$AG" diff "$t") || fail "diff after the restore: $out"
	assert_contains "$out" "the same content as snapshot $t"
	"$AG" show nosuchid >/dev/null 2>&1 && fail "show of a missing id passed"
	return 0
}
