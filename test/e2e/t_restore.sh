# Restore takes nothing from a snapshot row on faith: rows come from spools
# the session's own processes wrote, and restore may run as root.

# A session with one real snapshot; prints its id.
one_snapshot() {
	seed victim
	guard rm "$WS/victim" >/dev/null 2>&1
	ingest
	db "select id from snapshots limit 1"
}

# forge ID NEWID COLUMN=VALUE...: a copy of snapshot ID's row with changes.
forge() {
	local id=$1 new=$2; shift 2
	local set="id = '$new'"
	for kv in "$@"; do set="$set, $kv"; done
	db "create temp table f as select * from snapshots where id = '$id';
	    update f set $set; insert into snapshots select * from f;"
}

test_forged_rows_are_refused_and_nothing_is_written() {
	local id; id=$(one_snapshot)
	[ -n "$id" ] || fail "no snapshot"
	local outside=/etc/agentguard-forged.$$
	forge "$id" f1 "path = '$outside'"
	forge "$id" f2 "path = '$WS/../../etc/agentguard-dots.$$'"
	forge "$id" f3 "store = '/etc/passwd'"
	forge "$id" f4 "path = '$WS/suid', mode = $((0100000 | 04755)), uid = 0"
	forge "$id" f5 "path = '$AGENTGUARD_STATE_DIR/rules/planted'"
	rm -f "$WS/victim"
	out=$("$AG" restore f1 f2 f3 f4 f5 2>&1) && fail "restore passed: $out"
	assert_contains "$out" "outside the session's workspace and home"
	assert_contains "$out" "not a plain absolute path"
	assert_contains "$out" "points outside the snapshot store"
	assert_contains "$out" "setuid or setgid: restored only by root with --preserve-owner"
	assert_contains "$out" "in agentguard's state dir"
	assert_contains "$out" "0 restored"
	assert_missing "$outside"; assert_missing "/etc/agentguard-dots.$$"
	assert_missing "$WS/suid"; assert_missing "$WS/victim"
	assert_missing "$AGENTGUARD_STATE_DIR/rules/planted"
	# The real row still restores; an outside path goes where --to says.
	"$AG" restore "$id" >/dev/null || fail "the real snapshot: $("$AG" restore "$id" 2>&1)"
	assert_eq "$(cat "$WS/victim")" "original victim"
	"$AG" restore --to "$T/elsewhere" f1 >/dev/null || fail "--to"
	assert_exists "$T/elsewhere$outside"
	assert_missing "$outside"
}

test_setuid_and_owners_only_with_preserve_owner_as_root() {
	[ "$(id -u)" = 0 ] || return 0
	seed tool
	chown 1234:1234 "$WS/tool"; chmod 4755 "$WS/tool"
	guard rm "$WS/tool" >/dev/null 2>&1
	ingest
	local id; id=$(db "select id from snapshots limit 1")
	out=$("$AG" restore "$id" 2>&1) && fail "a setuid file came back without --preserve-owner: $out"
	assert_missing "$WS/tool"
	"$AG" restore --preserve-owner "$id" >/dev/null || fail "$("$AG" restore --preserve-owner "$id" 2>&1)"
	assert_eq "$(stat -c '%u %g %a' "$WS/tool")" "1234 1234 4755"
	# Without it, a file comes back owned as the directory it lands in.
	rm -f "$WS/tool"; seed plain; chown 1234:1234 "$WS/plain"
	guard rm "$WS/plain" >/dev/null 2>&1; ingest
	id=$(db "select id from snapshots where path = '$WS/plain'")
	chown 4321:4321 "$WS"
	"$AG" restore "$id" >/dev/null || fail "$("$AG" restore "$id" 2>&1)"
	assert_eq "$(stat -c '%u %g' "$WS/plain")" "4321 4321"
}

test_a_large_restore_with_q_says_one_line_and_conflicts_fail() {
	mkdir -p "$WS/tree"
	for i in $(seq 1 2000); do echo "f$i" > "$WS/tree/f$i"; done
	guard rm -rf "$WS/tree" >/dev/null 2>&1
	ingest
	local sid; sid=$(latest_session)
	out=$("$AG" restore -q --session "$sid" 2>&1) || fail "restore -q: $out"
	assert_eq "$(wc -l <<<"$out")" 1 "$out"
	assert_contains "$out" "2001 restored, 0 skipped, 0 failed"
	assert_eq "$(cat "$WS/tree/f1234")" "f1234"
	# Something else there now: skipped, said even with -q, and exit 1.
	echo changed > "$WS/tree/f7"
	out=$("$AG" restore -q --session "$sid" 2>&1) && fail "a conflict passed: $out"
	assert_contains "$out" "1 skipped"
	assert_contains "$out" "skipped $WS/tree/f7: exists"
	assert_eq "$(cat "$WS/tree/f7")" "changed"
}

test_gc_frees_the_store_and_leaves_no_empty_directories() {
	mkdir -p "$WS/a" "$WS/b"
	printf 'one\n' > "$WS/a/1"; printf 'two\n' > "$WS/b/2"; printf 'three\n' > "$WS/b/3"
	agrun sh -c "rm -r $WS/a $WS/b" >/dev/null 2>&1
	local sid; sid=$(latest_session)
	ingest
	# One store directory per source directory.
	assert_eq "$(find "$AGENTGUARD_STATE_DIR/snapshots/$sid" -mindepth 1 -maxdepth 1 -type d | wc -l)" "2"
	out=$("$AG" gc --older-than 0s --dry-run)
	assert_contains "$out" "would free"
	assert_contains "$out" "from 3 snapshots"
	out=$("$AG" gc --older-than 0s)
	assert_contains "$out" "from 3 snapshots"
	assert_missing "$AGENTGUARD_STATE_DIR/snapshots/$sid"
	assert_exists "$AGENTGUARD_STATE_DIR/snapshots"
	assert_eq "$(db "select count(*) from snapshots where session='$sid' and store is not null")" "0"
	"$AG" restore --session "$sid" >/dev/null 2>&1 && fail "restore of collected snapshots should fail"
	"$AG" verify >/dev/null || fail "verify after gc"
}
