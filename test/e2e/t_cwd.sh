# Plain names relative to the cwd are judged as getcwd names the cwd
# (lib/guard.c, "the cwd"); chdir and fchdir wait for such calls, so the
# directory judged is the one acted in.

test_relative_deletes_are_judged_where_they_happen_while_another_thread_moves_the_cwd() {
	gcc -O1 -pthread -o "$T/cwdrace" "$AG_ROOT/test/e2e/cwdrace.c"
	a=$WS/a b=$T/tmp/b n=300
	mkdir -p "$a" "$b"
	for i in $(seq 0 $((n - 1))); do printf 'a%s\n' "$i" > "$a/f$i"; printf 'b%s\n' "$i" > "$b/f$i"; done
	out=$(cd "$a" && agrun "$T/cwdrace" "$a" "$b" "$n" 2>&1)
	assert_contains "$out" "$n"
	ingest
	sid=$(latest_session)
	# Each name went from exactly one directory, and the row says which.
	bad=0 seen_a=0 seen_b=0
	for i in $(seq 0 $((n - 1))); do
		row=$(db "select path || ' ' || decision from events where session='$sid' and op='delete'
			  and (path='$a/f$i' or path='$b/f$i')")
		if [ -e "$a/f$i" ] && [ ! -e "$b/f$i" ]; then
			[ "$row" = "$b/f$i allow" ] || { echo "f$i: gone from $b, row: $row"; bad=1; }
			seen_b=$((seen_b + 1))
		elif [ ! -e "$a/f$i" ] && [ -e "$b/f$i" ]; then
			[ "$row" = "$a/f$i snapshot" ] || { echo "f$i: gone from $a, row: $row"; bad=1; }
			seen_a=$((seen_a + 1))
		else
			echo "f$i: in both or in neither"; bad=1
		fi
	done
	assert_eq "$bad" 0
	# Every delete in the workspace was kept.
	assert_eq "$(db "select count(*) from events where session='$sid' and op='delete'
		       and path like '$a/%' and decision='snapshot'")" "$seen_a"
	echo "deletes in a: $seen_a, in b: $seen_b"
}

test_a_relative_delete_in_a_removed_cwd_is_still_judged() {
	# getcwd fails there: the directory is named the long way.
	mkdir -p "$WS/gone"
	out=$(cd "$WS/gone" && agrun sh -c 'rmdir "$PWD" && rm -f nothing; echo rc=$?' 2>&1)
	assert_contains "$out" "rc=0"
}

test_relative_names_still_reach_protected_files() {
	mkdir -p "$HOME/.ssh"; printf 'key\n' > "$HOME/.ssh/id_ed25519"
	out=$(cd "$HOME/.ssh" && agrun rm -f id_ed25519 2>&1) || true
	assert_contains "$out" "denied delete $HOME/.ssh/id_ed25519"
	assert_exists "$HOME/.ssh/id_ed25519"
	out=$(cd "$AGENTGUARD_STATE_DIR" && agrun rm -f audit.db 2>&1) || true
	assert_exists "$AGENTGUARD_STATE_DIR/audit.db"
}
